//! The support desk: each request runs as one transaction that locks the ticket, applies
//! the domain rule with the clock's "now", stores the ticket and its new history, and
//! queues the events. The scheduler uses the same path for what the clock decides.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use crate::SupportError;
use crate::clock::Clock;
use crate::config::{MailIntake, Policies};
use crate::domain::Actor;
use crate::domain::calendar::BusinessCalendar;
use crate::domain::indicator::{self, IndicatorConfig, Report};
use crate::domain::mail;
use crate::domain::ticket::{Deadlines, NewTicket, Rules, Status, Ticket};
use crate::events::{self, CallEvent};
use crate::people::Directory;
use crate::store::{Filter, Quarantined, Store};

/// A ticket with its deadlines as they stand (none once closed).
#[derive(Clone, Debug)]
pub struct View {
    pub ticket: Ticket,
    pub deadlines: Option<Deadlines>,
}

pub struct Desk {
    store: Store,
    calendar: BusinessCalendar,
    policies: Policies,
    indicator: IndicatorConfig,
    mail: MailIntake,
    people: Directory,
    clock: Arc<dyn Clock>,
}

/// What became of an inbound e-mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailOutcome {
    Opened(Uuid),
    Replied(Uuid),
    /// The same Message-ID came before; nothing changed.
    Duplicate(Uuid),
    /// Kept aside, with the reason.
    Quarantined {
        id: Uuid,
        reason: String,
    },
}

impl Desk {
    pub fn new(
        store: Store,
        calendar: BusinessCalendar,
        policies: Policies,
        indicator: IndicatorConfig,
        mail: MailIntake,
        people: Directory,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Desk {
            store,
            calendar,
            policies,
            indicator,
            mail,
            people,
            clock,
        }
    }

    pub fn people(&self) -> &Directory {
        &self.people
    }

    pub fn mail_intake(&self) -> &MailIntake {
        &self.mail
    }

    /// Queues the record of one API call for the proof store.
    pub async fn record_call(&self, call: &CallEvent) -> Result<(), SupportError> {
        let event = events::of_call(call, self.clock.now())?;
        let mut client = self.store.pool().get().await?;
        let tx = client.transaction().await?;
        relais_bus::enqueue(&tx, &event).await?;
        self.store.commit(tx).await
    }

    fn rules(&self, ticket: &Ticket) -> Result<Rules<'_>, SupportError> {
        Ok(Rules {
            calendar: &self.calendar,
            policy: self.policies.get(&ticket.policy)?,
        })
    }

    fn view(&self, ticket: Ticket) -> Result<View, SupportError> {
        let deadlines = if ticket.status == Status::Closed {
            None
        } else {
            Some(ticket.deadlines(self.rules(&ticket)?)?)
        };
        Ok(View { ticket, deadlines })
    }

    pub async fn open(&self, actor: &Actor, new: NewTicket) -> Result<View, SupportError> {
        let mut client = self.store.pool().get().await?;
        let tx = client.transaction().await?;
        let ticket = self.open_in(&tx, actor, new).await?;
        self.store.commit(tx).await?;
        self.view(ticket)
    }

    async fn open_in(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        actor: &Actor,
        new: NewTicket,
    ) -> Result<Ticket, SupportError> {
        let now = self.clock.now();
        let policy = self.policies.for_partner(&new.partner)?;
        let ticket = Ticket::open(Uuid::new_v4(), new, actor, now, policy)?;
        let next_due = ticket.next_due(self.rules(&ticket)?)?;
        self.store.insert(tx, &ticket, next_due).await?;
        for event in events::of_change(None, &ticket, 0)? {
            relais_bus::enqueue(tx, &event).await?;
        }
        tracing::info!(ticket = %ticket.id, partner = %ticket.partner, severity = ticket.severity.level(), "ticket opened");
        Ok(ticket)
    }

    /// Applies `change` to ticket `id` as `actor`, after checking the actor may see it.
    pub async fn change<F>(&self, actor: &Actor, id: Uuid, change: F) -> Result<View, SupportError>
    where
        F: FnOnce(&mut Ticket, Rules<'_>, Timestamp) -> Result<(), SupportError>,
    {
        let mut client = self.store.pool().get().await?;
        let tx = client.transaction().await?;
        let ticket = self.change_in(&tx, actor, id, change).await?;
        self.store.commit(tx).await?;
        self.view(ticket)
    }

    async fn change_in<F>(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        actor: &Actor,
        id: Uuid,
        change: F,
    ) -> Result<Ticket, SupportError>
    where
        F: FnOnce(&mut Ticket, Rules<'_>, Timestamp) -> Result<(), SupportError>,
    {
        let mut ticket = self.store.lock(tx, id).await?;
        ticket.check_visible(actor)?;
        let before = ticket.clone();
        let known = ticket.history.len();
        let rules = self.rules(&ticket)?;
        // The clock is read once the row is locked, so history stays in order.
        change(&mut ticket, rules, self.clock.now())?;
        self.save(tx, Some(&before), &ticket, known).await?;
        Ok(ticket)
    }

    /// An e-mail from a partner's contact opens a ticket, or is a reply on the ticket of
    /// the message it answers. Anything unusable is kept aside with the reason; when the
    /// registry cannot say who wrote, the mail is not taken (the caller keeps it).
    pub async fn intake(&self, raw: &[u8]) -> Result<MailOutcome, SupportError> {
        let now = self.clock.now();
        let aside = |reason: String| async move {
            let sender = mail::sender(raw);
            let id = self
                .store
                .quarantine(now, sender.as_deref(), &reason, raw)
                .await?;
            // The reason may name the sender: it stays in the quarantine, out of the logs.
            tracing::warn!(quarantine = %id, "inbound mail kept aside");
            Ok(MailOutcome::Quarantined { id, reason })
        };
        let message = match mail::parse(raw) {
            Ok(m) => m,
            Err(reason) => return aside(format!("malformed: {reason}")).await,
        };
        let partner = match self.people.person(&message.from).await? {
            Some(Actor::Contact { partner, .. }) => partner,
            Some(_) => {
                let reason = format!("{} is support staff, not a partner's contact", message.from);
                return aside(reason).await;
            }
            None => return aside(format!("unknown sender {}", message.from)).await,
        };
        let actor = Actor::Contact {
            partner: partner.clone(),
            name: message.from.clone(),
        };
        let mut client = self.store.pool().get().await?;
        let tx = client.transaction().await?;
        if let Some(ticket) = self
            .store
            .mail_ticket(&tx, std::slice::from_ref(&message.message_id))
            .await?
        {
            return Ok(MailOutcome::Duplicate(ticket));
        }
        let (outcome, ticket) = match self.store.mail_ticket(&tx, &message.replies_to).await? {
            Some(id) => {
                let (body, files) = (message.body.clone(), message.attachments.clone());
                let replied = self
                    .change_in(&tx, &actor, id, |t, _, at| {
                        t.comment(&actor, at, &body, files)
                    })
                    .await;
                match replied {
                    Ok(_) => (MailOutcome::Replied(id), id),
                    // A closed ticket, or another partner's: a person must look at it.
                    Err(
                        e @ (SupportError::Forbidden(_)
                        | SupportError::Conflict(_)
                        | SupportError::Invalid(_)),
                    ) => {
                        drop(tx);
                        return aside(format!("reply to ticket {id} refused: {e}")).await;
                    }
                    Err(e) => return Err(e),
                }
            }
            None => {
                let new = NewTicket {
                    partner: partner.clone(),
                    scope: self.mail.scope,
                    severity: None,
                    subject: message.subject.clone(),
                    body: message.body.clone(),
                    attachments: message.attachments.clone(),
                };
                let id = self.open_in(&tx, &actor, new).await?.id;
                (MailOutcome::Opened(id), id)
            }
        };
        self.store
            .record_mail(&tx, &message.message_id, ticket, now)
            .await?;
        self.store.commit(tx).await?;
        Ok(outcome)
    }

    pub async fn quarantined(
        &self,
        actor: &Actor,
        limit: i64,
    ) -> Result<Vec<Quarantined>, SupportError> {
        actor.require_staff("read mail kept aside")?;
        self.store.quarantined(limit).await
    }

    async fn save(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        before: Option<&Ticket>,
        ticket: &Ticket,
        known: usize,
    ) -> Result<(), SupportError> {
        let next_due = ticket.next_due(self.rules(ticket)?)?;
        self.store.update(tx, ticket, known, next_due).await?;
        for event in events::of_change(before, ticket, known)? {
            relais_bus::enqueue(tx, &event).await?;
        }
        Ok(())
    }

    pub async fn get(&self, actor: &Actor, id: Uuid) -> Result<View, SupportError> {
        let ticket = self.store.get(id).await?;
        ticket.check_visible(actor)?;
        self.view(ticket)
    }

    /// A contact lists their own partner's tickets only.
    pub async fn list(&self, actor: &Actor, mut filter: Filter) -> Result<Vec<View>, SupportError> {
        if let Actor::Contact { partner, .. } = actor {
            match &filter.partner {
                Some(asked) if asked != partner => {
                    return Err(SupportError::Forbidden(
                        "a contact lists their own partner's tickets only".into(),
                    ));
                }
                _ => filter.partner = Some(partner.clone()),
            }
        }
        self.store
            .list(&filter)
            .await?
            .into_iter()
            .map(|t| self.view(t))
            .collect()
    }

    pub async fn indicator(
        &self,
        actor: &Actor,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Report, SupportError> {
        actor.require_staff("read the indicator")?;
        let incidents = self.store.incidents(from, to).await?;
        indicator::compute(
            &incidents,
            from,
            to,
            self.clock.now(),
            &self.calendar,
            &self.indicator,
        )
    }

    /// What the gauges show: the indicator over the `window` that ends now, and how many
    /// tickets are in each status.
    pub async fn gauges(
        &self,
        window: SignedDuration,
    ) -> Result<(Report, Vec<(Status, i64)>), SupportError> {
        let to = self.clock.now();
        let from = to
            .checked_sub(window)
            .map_err(|e| SupportError::Config(format!("support.metrics_window_days: {e}")))?;
        let incidents = self.store.incidents(from, to).await?;
        let report = indicator::compute(&incidents, from, to, to, &self.calendar, &self.indicator)?;
        let counted = self.store.count_by_status().await?;
        let by_status = Status::ALL
            .into_iter()
            .map(|status| {
                let n = counted
                    .iter()
                    .find(|(s, _)| s == status.as_str())
                    .map_or(0, |(_, n)| *n);
                (status, n)
            })
            .collect();
        Ok((report, by_status))
    }

    pub fn indicator_config(&self) -> &IndicatorConfig {
        &self.indicator
    }

    /// Applies every deadline that has passed; returns how many tickets changed.
    pub async fn run_due(&self) -> Result<usize, SupportError> {
        let now = self.clock.now();
        let mut changed = 0;
        for id in self.store.due(now, 200).await? {
            let mut client = self.store.pool().get().await?;
            let tx = client.transaction().await?;
            let mut ticket = self.store.lock(&tx, id).await?;
            let before = ticket.clone();
            let known = ticket.history.len();
            let rules = self.rules(&ticket)?;
            // Another replica may have handled it already: then nothing is due.
            if ticket.tick(now, rules)? {
                changed += 1;
                tracing::info!(ticket = %id, status = ticket.status.as_str(), assignee = ticket.assignee.as_str(), "deadline applied");
            }
            self.save(&tx, Some(&before), &ticket, known).await?;
            self.store.commit(tx).await?;
        }
        Ok(changed)
    }
}

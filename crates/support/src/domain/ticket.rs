//! A ticket and everything that may happen to it. Each change checks who acts, checks the
//! ticket's state, and appends to the history; [`Ticket::tick`] applies what the clock
//! alone decides (escalations, overdue marks, automatic closes).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::calendar::BusinessCalendar;
use super::policy::Policy;
use super::{Actor, PartnerKind, PartnerRef, Scope, Severity, StaffRole};
use crate::SupportError;

const MAX_SUBJECT: usize = 200;
const MAX_BODY: usize = 64 * 1024;

/// What a ticket is judged against.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    pub calendar: &'a BusinessCalendar,
    pub policy: &'a Policy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Received, not yet taken in hand by support.
    Open,
    InProgress,
    /// Support asked the partner for information; the silence clock runs.
    AwaitingPartner,
    /// Support resolved it and told the partner; the no-remark clock runs.
    Resolved,
    Closed,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Open,
        Status::InProgress,
        Status::AwaitingPartner,
        Status::Resolved,
        Status::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::InProgress => "in_progress",
            Status::AwaitingPartner => "awaiting_partner",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    /// Support still has work to do.
    pub fn is_active(self) -> bool {
        !matches!(self, Status::Resolved | Status::Closed)
    }
}

/// The four ways a ticket may close (FranceConnect annex §2.2.3, AgentConnect annex §3.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Resolved, and the partner confirmed (in writing, or orally as recorded by staff).
    ConfirmedByPartner,
    /// Not resolved, and both parties agreed in writing to close.
    AgreedUnresolved,
    /// The partner did not answer support's request within the configured business days.
    PartnerUnresponsive,
    /// Resolved, notified, and no remark from the partner within the configured delay.
    ResolvedWithoutRemark,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ConfirmedByPartner => "confirmed_by_partner",
            CloseReason::AgreedUnresolved => "agreed_unresolved",
            CloseReason::PartnerUnresponsive => "partner_unresponsive",
            CloseReason::ResolvedWithoutRemark => "resolved_without_remark",
        }
    }
}

/// A file sent with a message; only its description is kept here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
}

/// One line of a ticket's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    Opened {
        scope: Scope,
        severity: Severity,
        subject: String,
        body: String,
        attachments: Vec<Attachment>,
    },
    Acknowledged,
    AcknowledgementOverdue {
        due_at: Timestamp,
    },
    Commented {
        body: String,
        attachments: Vec<Attachment>,
    },
    InformationRequested {
        body: String,
    },
    PartnerAnswered,
    InactivityWarning {
        close_at: Timestamp,
    },
    SeverityChanged {
        from: Severity,
        to: Severity,
    },
    Assigned {
        to: StaffRole,
    },
    Escalated {
        to: Vec<StaffRole>,
        due_at: Timestamp,
    },
    DeadlineMissed {
        due_at: Timestamp,
    },
    BlockingDeclared {
        fix_by: Timestamp,
    },
    BlockingFixOverdue {
        due_at: Timestamp,
    },
    Resolved {
        body: String,
    },
    /// A partner's remark on a resolved ticket: support takes it up again.
    Reopened,
    CloseAgreed {
        statement: String,
    },
    ResolutionConfirmed {
        note: String,
    },
    Closed {
        reason: CloseReason,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: Timestamp,
    pub actor: Actor,
    pub action: Action,
}

/// What a new ticket says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTicket {
    pub partner: PartnerRef,
    pub scope: Scope,
    /// Only staff may set it; otherwise it follows from the scope.
    pub severity: Option<Severity>,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<Attachment>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: Uuid,
    pub partner: PartnerRef,
    pub scope: Scope,
    pub severity: Severity,
    pub subject: String,
    pub status: Status,
    pub assignee: StaffRole,
    /// The name of the deadline policy the ticket is judged by.
    pub policy: String,
    pub opened_at: Timestamp,
    /// When the severity in force was assigned: its deadlines run from then.
    pub severity_set_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledgement_overdue_at: Option<Timestamp>,
    pub escalated_at: Option<Timestamp>,
    pub deadline_missed_at: Option<Timestamp>,
    pub blocking_since: Option<Timestamp>,
    pub blocking_overdue_at: Option<Timestamp>,
    pub awaiting_partner_since: Option<Timestamp>,
    pub inactivity_warned_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub partner_agreed_at: Option<Timestamp>,
    pub staff_agreed_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub close_reason: Option<CloseReason>,
    pub history: Vec<HistoryEntry>,
}

/// Every deadline of a ticket as it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    pub acknowledge_by: Timestamp,
    pub escalate_at: Timestamp,
    pub resolve_by: Timestamp,
    pub blocking_fix_by: Option<Timestamp>,
    pub inactivity_warning_at: Option<Timestamp>,
    pub inactivity_close_at: Option<Timestamp>,
    pub no_remark_close_at: Option<Timestamp>,
}

/// Something the clock alone makes happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Milestone {
    AcknowledgementOverdue,
    Escalate,
    DeadlineMissed,
    BlockingFixOverdue,
    InactivityWarning,
    InactivityClose,
    NoRemarkClose,
}

fn text(field: &str, value: &str, max: usize) -> Result<String, SupportError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(SupportError::Invalid(format!("{field} must not be empty")));
    }
    if value.len() > max {
        return Err(SupportError::Invalid(format!(
            "{field} is longer than {max} bytes"
        )));
    }
    Ok(value.to_owned())
}

impl Ticket {
    /// A new ticket, filed by a partner's contact (for their own partner only) or by staff.
    pub fn open(
        id: Uuid,
        new: NewTicket,
        actor: &Actor,
        at: Timestamp,
        policy: &Policy,
    ) -> Result<Ticket, SupportError> {
        match actor {
            Actor::Contact { partner, .. } => {
                if *partner != new.partner {
                    return Err(SupportError::Forbidden(
                        "a contact files tickets for their own partner only".into(),
                    ));
                }
                if new.severity.is_some() {
                    return Err(SupportError::Forbidden(
                        "only support staff assign the severity".into(),
                    ));
                }
            }
            Actor::Staff { .. } | Actor::System => {}
        }
        let subject = text("subject", &new.subject, MAX_SUBJECT)?;
        let body = text("body", &new.body, MAX_BODY)?;
        let severity = new.severity.unwrap_or(new.scope.default_severity());
        let mut ticket = Ticket {
            id,
            partner: new.partner,
            scope: new.scope,
            severity,
            subject: subject.clone(),
            status: Status::Open,
            assignee: policy.initial_assignee,
            policy: policy.name.clone(),
            opened_at: at,
            severity_set_at: at,
            acknowledged_at: None,
            acknowledgement_overdue_at: None,
            escalated_at: None,
            deadline_missed_at: None,
            blocking_since: None,
            blocking_overdue_at: None,
            awaiting_partner_since: None,
            inactivity_warned_at: None,
            resolved_at: None,
            partner_agreed_at: None,
            staff_agreed_at: None,
            closed_at: None,
            close_reason: None,
            history: Vec::new(),
        };
        ticket.record(
            actor,
            at,
            Action::Opened {
                scope: new.scope,
                severity,
                subject,
                body,
                attachments: new.attachments,
            },
        );
        Ok(ticket)
    }

    fn record(&mut self, actor: &Actor, at: Timestamp, action: Action) {
        self.history.push(HistoryEntry {
            at,
            actor: actor.clone(),
            action,
        });
    }

    /// Refuses an actor who may not see this ticket.
    pub fn check_visible(&self, actor: &Actor) -> Result<(), SupportError> {
        if actor.may_see(&self.partner) {
            Ok(())
        } else {
            Err(SupportError::Forbidden(
                "this ticket belongs to another partner".into(),
            ))
        }
    }

    /// Refuses a change to a ticket that is not being worked on (resolved or closed).
    fn check_active(&self) -> Result<(), SupportError> {
        if self.status.is_active() {
            Ok(())
        } else {
            Err(SupportError::Conflict(format!(
                "the ticket is {}",
                self.status.as_str()
            )))
        }
    }

    fn check_not_closed(&self) -> Result<(), SupportError> {
        if self.status == Status::Closed {
            Err(SupportError::Conflict("the ticket is closed".into()))
        } else {
            Ok(())
        }
    }

    fn close(&mut self, actor: &Actor, at: Timestamp, reason: CloseReason) {
        self.status = Status::Closed;
        self.closed_at = Some(at);
        self.close_reason = Some(reason);
        self.record(actor, at, Action::Closed { reason });
    }

    /// Staff handling an unacknowledged ticket acknowledges it.
    fn take_in_hand(&mut self, actor: &Actor, at: Timestamp) {
        if self.status == Status::Open {
            self.status = Status::InProgress;
            self.acknowledged_at = Some(at);
            self.record(actor, at, Action::Acknowledged);
        }
    }

    /// The IdP this ticket keeps disabled right now: an incident (not an information
    /// request) scoped to one identity provider, until support resolves it.
    pub fn disabled_idp(&self) -> Option<&str> {
        let incident = self.partner.kind == PartnerKind::Idp
            && self.scope == Scope::OnePartner
            && self.severity != Severity::INFO;
        (incident && self.status.is_active()).then_some(self.partner.id.as_str())
    }

    /// An operating incident, counted by the resolution indicator.
    pub fn is_operating_incident(&self) -> bool {
        self.severity != Severity::INFO && self.scope != Scope::InformationRequest
    }

    pub fn acknowledge(&mut self, actor: &Actor, at: Timestamp) -> Result<(), SupportError> {
        actor.require_staff("acknowledge a ticket")?;
        if self.status != Status::Open {
            return Err(SupportError::Conflict(
                "the ticket is already acknowledged".into(),
            ));
        }
        self.take_in_hand(actor, at);
        Ok(())
    }

    /// A message on the ticket. From the partner it answers a request for information,
    /// or, on a resolved ticket, is a remark that puts support back to work.
    pub fn comment(
        &mut self,
        actor: &Actor,
        at: Timestamp,
        body: &str,
        attachments: Vec<Attachment>,
    ) -> Result<(), SupportError> {
        self.check_visible(actor)?;
        self.check_not_closed()?;
        let body = text("body", body, MAX_BODY)?;
        self.record(actor, at, Action::Commented { body, attachments });
        if actor.is_staff() {
            self.take_in_hand(actor, at);
            return Ok(());
        }
        match self.status {
            Status::AwaitingPartner => {
                self.status = Status::InProgress;
                self.awaiting_partner_since = None;
                self.inactivity_warned_at = None;
                self.record(actor, at, Action::PartnerAnswered);
            }
            Status::Resolved => {
                self.status = Status::InProgress;
                self.resolved_at = None;
                self.record(actor, at, Action::Reopened);
            }
            Status::Open | Status::InProgress | Status::Closed => {}
        }
        Ok(())
    }

    /// Support needs something from the partner: the silence clock starts (again).
    pub fn request_information(
        &mut self,
        actor: &Actor,
        at: Timestamp,
        body: &str,
    ) -> Result<(), SupportError> {
        actor.require_staff("ask the partner for information")?;
        self.check_active()?;
        let body = text("body", body, MAX_BODY)?;
        self.take_in_hand(actor, at);
        self.status = Status::AwaitingPartner;
        self.awaiting_partner_since = Some(at);
        self.inactivity_warned_at = None;
        self.record(actor, at, Action::InformationRequested { body });
        Ok(())
    }

    /// Support's analysis changes the severity; its deadlines run anew from now.
    pub fn set_severity(
        &mut self,
        actor: &Actor,
        at: Timestamp,
        severity: Severity,
    ) -> Result<(), SupportError> {
        actor.require_staff("set the severity")?;
        self.check_not_closed()?;
        if severity == self.severity {
            return Err(SupportError::Conflict(format!(
                "the severity is already {}",
                severity.level()
            )));
        }
        let from = self.severity;
        self.severity = severity;
        self.severity_set_at = at;
        self.escalated_at = None;
        self.deadline_missed_at = None;
        self.record(actor, at, Action::SeverityChanged { from, to: severity });
        Ok(())
    }

    pub fn assign(
        &mut self,
        actor: &Actor,
        at: Timestamp,
        to: StaffRole,
    ) -> Result<(), SupportError> {
        actor.require_staff("assign a ticket")?;
        self.check_not_closed()?;
        self.assignee = to;
        self.record(actor, at, Action::Assigned { to });
        Ok(())
    }

    /// Support takes the ticket into account as a blocking anomaly: the fix deadline runs.
    pub fn declare_blocking(
        &mut self,
        actor: &Actor,
        at: Timestamp,
        rules: Rules<'_>,
    ) -> Result<(), SupportError> {
        actor.require_staff("declare a blocking anomaly")?;
        self.check_active()?;
        if self.blocking_since.is_some() {
            return Err(SupportError::Conflict(
                "the anomaly is already declared blocking".into(),
            ));
        }
        let fix_by = rules.policy.blocking_fix.after(rules.calendar, at)?;
        self.take_in_hand(actor, at);
        self.blocking_since = Some(at);
        self.record(actor, at, Action::BlockingDeclared { fix_by });
        Ok(())
    }

    /// Support resolved the ticket; the partner is told and may confirm or remark.
    pub fn resolve(
        &mut self,
        actor: &Actor,
        at: Timestamp,
        body: &str,
    ) -> Result<(), SupportError> {
        actor.require_staff("resolve a ticket")?;
        self.check_active()?;
        let body = text("body", body, MAX_BODY)?;
        self.take_in_hand(actor, at);
        self.status = Status::Resolved;
        self.resolved_at = Some(at);
        self.awaiting_partner_since = None;
        self.inactivity_warned_at = None;
        self.record(actor, at, Action::Resolved { body });
        Ok(())
    }

    /// The partner confirms the resolution: the ticket closes. Staff may record an oral
    /// confirmation, saying when and from whom in the note.
    pub fn confirm_resolution(
        &mut self,
        actor: &Actor,
        at: Timestamp,
        note: &str,
    ) -> Result<(), SupportError> {
        self.check_visible(actor)?;
        let note = match actor {
            Actor::Contact { .. } => note.trim().to_owned(),
            Actor::Staff { .. } => text("note of the partner's oral confirmation", note, MAX_BODY)?,
            Actor::System => {
                return Err(SupportError::Forbidden(
                    "only the partner confirms a resolution".into(),
                ));
            }
        };
        if self.status != Status::Resolved {
            return Err(SupportError::Conflict(
                "only a resolved ticket can be confirmed".into(),
            ));
        }
        self.record(actor, at, Action::ResolutionConfirmed { note });
        self.close(actor, at, CloseReason::ConfirmedByPartner);
        Ok(())
    }

    /// One party's written agreement to close an unresolved ticket; it closes once both
    /// the partner and support agreed.
    pub fn agree_to_close(
        &mut self,
        actor: &Actor,
        at: Timestamp,
        statement: &str,
    ) -> Result<(), SupportError> {
        self.check_visible(actor)?;
        let statement = text("written agreement", statement, MAX_BODY)?;
        if self.status == Status::Resolved {
            return Err(SupportError::Conflict(
                "the ticket is resolved: the partner confirms the resolution instead".into(),
            ));
        }
        self.check_not_closed()?;
        match actor {
            Actor::Contact { .. } => self.partner_agreed_at = Some(at),
            Actor::Staff { .. } => self.staff_agreed_at = Some(at),
            Actor::System => {
                return Err(SupportError::Forbidden(
                    "an agreement is given by a person".into(),
                ));
            }
        }
        self.record(actor, at, Action::CloseAgreed { statement });
        if self.partner_agreed_at.is_some() && self.staff_agreed_at.is_some() {
            self.close(actor, at, CloseReason::AgreedUnresolved);
        }
        Ok(())
    }

    /// Every deadline of the ticket now.
    pub fn deadlines(&self, rules: Rules<'_>) -> Result<Deadlines, SupportError> {
        let (cal, policy) = (rules.calendar, rules.policy);
        let level = policy.level(self.severity)?;
        let closing = policy.closing;
        let (warning_at, close_at) = match self.awaiting_partner_since {
            Some(since) if self.status == Status::AwaitingPartner => {
                let silence = closing.partner_silence_business_days;
                let notice = closing.warning_before_business_days;
                let warning = cal.add_business_days(since, silence - notice)?;
                let mut close = cal.add_business_days(since, silence)?;
                // However late the warning went out, the partner gets the full notice.
                if let Some(warned) = self.inactivity_warned_at {
                    close = close.max(cal.add_business_days(warned, notice)?);
                }
                (Some(warning), Some(close))
            }
            _ => (None, None),
        };
        let no_remark_close_at = match self.resolved_at {
            Some(resolved) if self.status == Status::Resolved => {
                Some(cal.add_business_days(resolved, closing.no_remark_business_days)?)
            }
            _ => None,
        };
        Ok(Deadlines {
            acknowledge_by: policy.acknowledge_within.after(cal, self.opened_at)?,
            escalate_at: level.escalate_after.after(cal, self.severity_set_at)?,
            resolve_by: level.total.after(cal, self.severity_set_at)?,
            blocking_fix_by: self
                .blocking_since
                .map(|since| policy.blocking_fix.after(cal, since))
                .transpose()?,
            inactivity_warning_at: warning_at,
            inactivity_close_at: close_at,
            no_remark_close_at,
        })
    }

    /// The earliest thing the clock will do to this ticket, and when.
    fn next_milestone(
        &self,
        rules: Rules<'_>,
    ) -> Result<Option<(Timestamp, Milestone)>, SupportError> {
        if self.status == Status::Closed {
            return Ok(None);
        }
        let d = self.deadlines(rules)?;
        let active = self.status.is_active();
        let candidates = [
            (
                self.status == Status::Open && self.acknowledgement_overdue_at.is_none(),
                Some(d.acknowledge_by),
                Milestone::AcknowledgementOverdue,
            ),
            (
                active && self.escalated_at.is_none(),
                Some(d.escalate_at),
                Milestone::Escalate,
            ),
            (
                active && self.deadline_missed_at.is_none(),
                Some(d.resolve_by),
                Milestone::DeadlineMissed,
            ),
            (
                active && self.blocking_overdue_at.is_none(),
                d.blocking_fix_by,
                Milestone::BlockingFixOverdue,
            ),
            (
                self.inactivity_warned_at.is_none(),
                d.inactivity_warning_at,
                Milestone::InactivityWarning,
            ),
            (
                self.inactivity_warned_at.is_some(),
                d.inactivity_close_at,
                Milestone::InactivityClose,
            ),
            (true, d.no_remark_close_at, Milestone::NoRemarkClose),
        ];
        Ok(candidates
            .into_iter()
            .filter_map(|(pending, due, m)| pending.then_some(due).flatten().map(|t| (t, m)))
            .min_by_key(|(t, _)| *t))
    }

    /// When the scheduler must look at this ticket next; `None` once closed.
    pub fn next_due(&self, rules: Rules<'_>) -> Result<Option<Timestamp>, SupportError> {
        Ok(self.next_milestone(rules)?.map(|(t, _)| t))
    }

    /// Applies, in order, everything due by `now`. Returns whether anything happened.
    pub fn tick(&mut self, now: Timestamp, rules: Rules<'_>) -> Result<bool, SupportError> {
        let system = Actor::System;
        let mut changed = false;
        // Each milestone applies once; seven is the most that can be due together.
        for _ in 0..8 {
            let Some((due_at, milestone)) = self.next_milestone(rules)? else {
                break;
            };
            if due_at > now {
                break;
            }
            changed = true;
            match milestone {
                Milestone::AcknowledgementOverdue => {
                    self.acknowledgement_overdue_at = Some(now);
                    self.record(&system, now, Action::AcknowledgementOverdue { due_at });
                }
                Milestone::Escalate => {
                    let to = rules.policy.level(self.severity)?.escalate_to.clone();
                    if let Some(first) = to.first() {
                        self.assignee = *first;
                    }
                    self.escalated_at = Some(now);
                    self.record(&system, now, Action::Escalated { to, due_at });
                }
                Milestone::DeadlineMissed => {
                    self.deadline_missed_at = Some(now);
                    self.record(&system, now, Action::DeadlineMissed { due_at });
                }
                Milestone::BlockingFixOverdue => {
                    self.blocking_overdue_at = Some(now);
                    self.record(&system, now, Action::BlockingFixOverdue { due_at });
                }
                Milestone::InactivityWarning => {
                    self.inactivity_warned_at = Some(now);
                    let close_at = self.deadlines(rules)?.inactivity_close_at.unwrap_or(now);
                    self.record(&system, now, Action::InactivityWarning { close_at });
                }
                Milestone::InactivityClose => {
                    self.close(&system, now, CloseReason::PartnerUnresponsive);
                }
                Milestone::NoRemarkClose => {
                    self.close(&system, now, CloseReason::ResolvedWithoutRemark);
                }
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use jiff::civil::DateTime;
    use jiff::tz::TimeZoneDatabase;

    use super::*;
    use crate::domain::calendar::CalendarConfig;

    fn paris(s: &str) -> Timestamp {
        let dt: DateTime = s.parse().unwrap();
        let tz = TimeZoneDatabase::bundled().get("Europe/Paris").unwrap();
        dt.to_zoned(tz).unwrap().timestamp()
    }

    struct World {
        calendar: BusinessCalendar,
        fc: Policy,
        ac: Policy,
    }

    impl World {
        fn new() -> Self {
            World {
                calendar: BusinessCalendar::new(&CalendarConfig::default()).unwrap(),
                fc: Policy::franceconnect().unwrap(),
                ac: Policy::agentconnect().unwrap(),
            }
        }

        fn fc(&self) -> Rules<'_> {
            Rules {
                calendar: &self.calendar,
                policy: &self.fc,
            }
        }

        fn ac(&self) -> Rules<'_> {
            Rules {
                calendar: &self.calendar,
                policy: &self.ac,
            }
        }
    }

    fn idp_a() -> PartnerRef {
        PartnerRef::idp("idp-a").unwrap()
    }

    fn contact() -> Actor {
        Actor::Contact {
            partner: idp_a(),
            name: "ops@idp-a.example".into(),
        }
    }

    fn other_contact() -> Actor {
        Actor::Contact {
            partner: PartnerRef::sp("sp-b").unwrap(),
            name: "dev@sp-b.example".into(),
        }
    }

    fn staff(role: StaffRole) -> Actor {
        Actor::Staff {
            role,
            name: format!("agent-{}", role.as_str()),
        }
    }

    fn new_ticket(scope: Scope, severity: Option<Severity>) -> NewTicket {
        NewTicket {
            partner: idp_a(),
            scope,
            severity,
            subject: "Sign-in fails".into(),
            body: "Every user gets an error after the IdP.".into(),
            attachments: vec![],
        }
    }

    /// A ticket of idp-a opened by staff with `severity` at `at`.
    fn opened(severity: u8, at: Timestamp, policy: &Policy) -> Ticket {
        Ticket::open(
            Uuid::new_v4(),
            new_ticket(Scope::OneUser, Some(Severity::new(severity).unwrap())),
            &staff(StaffRole::Level1),
            at,
            policy,
        )
        .unwrap()
    }

    fn actions(t: &Ticket) -> Vec<&Action> {
        t.history.iter().map(|h| &h.action).collect()
    }

    /// Monday 3 March 2025, 10:00 in Paris: a plain week with no holiday.
    fn monday() -> Timestamp {
        paris("2025-03-03T10:00")
    }

    #[test]
    fn every_row_of_the_franceconnect_table() {
        let w = World::new();
        // (severity, escalation due, total due, escalated to), hand-computed from Monday
        // 10:00 with days of 9:30–18:00.
        let rows = [
            (
                1,
                "2025-03-03T11:00",
                "2025-03-03T12:00",
                StaffRole::ProductionManager,
            ),
            (2, "2025-03-03T12:30", "2025-03-03T14:00", StaffRole::Level3),
            // 8 h end exactly at Monday's close; 12 h = 8 + 4 on Tuesday.
            (3, "2025-03-03T18:00", "2025-03-04T13:30", StaffRole::Level2),
            // 15 h = 8 + 7; 24 h = 8 + 8.5 + 7.5.
            (4, "2025-03-04T16:30", "2025-03-05T17:00", StaffRole::Level1),
            (5, "2025-03-04T16:30", "2025-03-05T17:00", StaffRole::Level1),
        ];
        for (severity, escalate, total, to) in rows {
            let mut t = opened(severity, monday(), &w.fc);
            t.acknowledge(&staff(StaffRole::Level1), monday()).unwrap();
            let d = t.deadlines(w.fc()).unwrap();
            assert_eq!(d.escalate_at, paris(escalate), "severity {severity}");
            assert_eq!(d.resolve_by, paris(total), "severity {severity}");
            assert_eq!(t.next_due(w.fc()).unwrap(), Some(paris(escalate)));

            // A second before: nothing. At the time: escalated, once.
            let before = paris(escalate) - jiff::SignedDuration::from_secs(1);
            assert!(!t.tick(before, w.fc()).unwrap(), "severity {severity}");
            assert!(t.tick(paris(escalate), w.fc()).unwrap());
            assert_eq!(t.assignee, to, "severity {severity}");
            assert_eq!(t.escalated_at, Some(paris(escalate)));
            assert!(!t.tick(paris(escalate), w.fc()).unwrap(), "only once");
            assert!(t.tick(paris(total), w.fc()).unwrap());
            assert_eq!(t.deadline_missed_at, Some(paris(total)));
            let escalations: Vec<_> = actions(&t)
                .into_iter()
                .filter(|a| matches!(a, Action::Escalated { .. } | Action::DeadlineMissed { .. }))
                .cloned()
                .collect();
            assert_eq!(
                escalations,
                [
                    Action::Escalated {
                        to: vec![to],
                        due_at: paris(escalate)
                    },
                    Action::DeadlineMissed {
                        due_at: paris(total)
                    }
                ]
            );
        }
    }

    #[test]
    fn every_row_of_the_agentconnect_table() {
        let w = World::new();
        use StaffRole::*;
        // Business days from Monday 3 March 2025 10:00: the same time 2, 5 or 8 business
        // days later.
        let rows = [
            (1, "2025-03-05T10:00", vec![ProductionManager, ProductOwner]),
            (2, "2025-03-05T10:00", vec![ProductOwner]),
            (3, "2025-03-10T10:00", vec![ProductOwner]),
            (4, "2025-03-10T10:00", vec![PartnerRelations, ProductOwner]),
            (5, "2025-03-13T10:00", vec![PartnerRelations]),
        ];
        for (severity, due, to) in rows {
            let mut t = opened(severity, monday(), &w.ac);
            assert_eq!(t.assignee, Level2, "AgentConnect support starts at level 2");
            t.acknowledge(&staff(Level2), monday()).unwrap();
            let d = t.deadlines(w.ac()).unwrap();
            assert_eq!(d.escalate_at, paris(due), "priority {severity}");
            assert_eq!(d.resolve_by, paris(due), "priority {severity}");
            assert!(t.tick(paris(due), w.ac()).unwrap());
            assert_eq!(t.assignee, to[0]);
            assert!(actions(&t).contains(&&Action::Escalated {
                to: to.clone(),
                due_at: paris(due)
            }));
            assert!(actions(&t).contains(&&Action::DeadlineMissed { due_at: paris(due) }));
        }
    }

    #[test]
    fn business_days_count_over_easter() {
        let w = World::new();
        // Friday before Easter Monday 2025, 17:30, priority 1: two business days are
        // Tuesday and Wednesday.
        let t = opened(1, paris("2025-04-18T17:30"), &w.ac);
        assert_eq!(
            t.deadlines(w.ac()).unwrap().resolve_by,
            paris("2025-04-23T17:30")
        );
        // FranceConnect severity 1: 30 minutes Friday, 30 Tuesday; total on Tuesday 11:00.
        let t = opened(1, paris("2025-04-18T17:30"), &w.fc);
        let d = t.deadlines(w.fc()).unwrap();
        assert_eq!(d.escalate_at, paris("2025-04-22T10:00"));
        assert_eq!(d.resolve_by, paris("2025-04-22T11:00"));
    }

    #[test]
    fn resolving_in_time_prevents_escalation() {
        let w = World::new();
        let mut t = opened(1, monday(), &w.fc);
        t.resolve(
            &staff(StaffRole::Level1),
            paris("2025-03-03T10:45"),
            "Fixed",
        )
        .unwrap();
        t.tick(paris("2025-03-03T12:30"), w.fc()).unwrap();
        assert_eq!(t.escalated_at, None);
        assert_eq!(t.deadline_missed_at, None);
        assert_eq!(t.assignee, StaffRole::Level1);
    }

    #[test]
    fn changing_the_severity_restarts_its_deadlines() {
        let w = World::new();
        let mut t = opened(4, monday(), &w.fc);
        let l3 = staff(StaffRole::Level3);
        t.set_severity(&l3, paris("2025-03-03T14:00"), Severity::CRITICAL)
            .unwrap();
        let d = t.deadlines(w.fc()).unwrap();
        assert_eq!(d.escalate_at, paris("2025-03-03T15:00"));
        assert_eq!(d.resolve_by, paris("2025-03-03T16:00"));
        assert!(matches!(
            t.set_severity(&l3, monday(), Severity::CRITICAL),
            Err(SupportError::Conflict(_))
        ));
        assert!(matches!(
            t.set_severity(&contact(), monday(), Severity::INFO),
            Err(SupportError::Forbidden(_))
        ));
    }

    #[test]
    fn acknowledgement_is_due_within_48_business_hours() {
        let w = World::new();
        let mut late = opened(4, monday(), &w.fc);
        // 8 + 8.5 × 4 = 42 on Friday's close, 6 more on Monday 10 March: 15:30.
        let due = paris("2025-03-10T15:30");
        assert_eq!(late.deadlines(w.fc()).unwrap().acknowledge_by, due);
        late.tick(paris("2025-03-10T15:29"), w.fc()).unwrap();
        assert_eq!(late.acknowledgement_overdue_at, None);
        late.tick(due, w.fc()).unwrap();
        assert_eq!(late.acknowledgement_overdue_at, Some(due));
        assert!(actions(&late).contains(&&Action::AcknowledgementOverdue { due_at: due }));
        // Acknowledged late still counts as acknowledged.
        late.acknowledge(&staff(StaffRole::Level1), paris("2025-03-11T09:30"))
            .unwrap();
        assert_eq!(late.status, Status::InProgress);

        let mut on_time = opened(4, monday(), &w.fc);
        on_time
            .acknowledge(&staff(StaffRole::Level1), paris("2025-03-04T09:45"))
            .unwrap();
        on_time.tick(paris("2025-03-20T10:00"), w.fc()).unwrap();
        assert_eq!(on_time.acknowledgement_overdue_at, None);
        assert!(matches!(
            on_time.acknowledge(&staff(StaffRole::Level1), monday()),
            Err(SupportError::Conflict(_))
        ));
        assert!(matches!(
            opened(4, monday(), &w.fc).acknowledge(&contact(), monday()),
            Err(SupportError::Forbidden(_))
        ));
    }

    #[test]
    fn a_blocking_anomaly_must_be_fixed_within_four_business_hours() {
        let w = World::new();
        let mut t = opened(2, monday(), &w.fc);
        let l3 = staff(StaffRole::Level3);
        // Taken into account Tuesday 16:00: two hours Tuesday, two Wednesday → 11:30.
        t.declare_blocking(&l3, paris("2025-03-04T16:00"), w.fc())
            .unwrap();
        let due = paris("2025-03-05T11:30");
        assert_eq!(t.deadlines(w.fc()).unwrap().blocking_fix_by, Some(due));
        assert!(matches!(
            t.declare_blocking(&l3, monday(), w.fc()),
            Err(SupportError::Conflict(_))
        ));
        t.tick(due, w.fc()).unwrap();
        assert_eq!(t.blocking_overdue_at, Some(due));

        let mut fixed = opened(2, monday(), &w.fc);
        fixed
            .declare_blocking(&l3, paris("2025-03-04T16:00"), w.fc())
            .unwrap();
        fixed
            .resolve(&l3, paris("2025-03-05T11:00"), "Hotfix deployed")
            .unwrap();
        fixed.tick(paris("2025-03-06T10:00"), w.fc()).unwrap();
        assert_eq!(fixed.blocking_overdue_at, None);
        assert!(matches!(
            opened(2, monday(), &w.fc).declare_blocking(&contact(), monday(), w.fc()),
            Err(SupportError::Forbidden(_))
        ));
    }

    #[test]
    fn closing_rule_resolved_and_confirmed_by_the_partner() {
        let w = World::new();
        let l1 = staff(StaffRole::Level1);
        let mut t = Ticket::open(
            Uuid::new_v4(),
            new_ticket(Scope::OneUser, None),
            &contact(),
            monday(),
            &w.fc,
        )
        .unwrap();
        assert_eq!(t.severity, Severity::MINOR);
        // Not before it is resolved.
        assert!(matches!(
            t.confirm_resolution(&contact(), monday(), ""),
            Err(SupportError::Conflict(_))
        ));
        t.resolve(&l1, paris("2025-03-03T11:00"), "Cache purged")
            .unwrap();
        // Nobody else's contact, and staff only with a note of the oral confirmation.
        assert!(matches!(
            t.confirm_resolution(&other_contact(), monday(), "ok"),
            Err(SupportError::Forbidden(_))
        ));
        assert!(matches!(
            t.confirm_resolution(&l1, monday(), "  "),
            Err(SupportError::Invalid(_))
        ));
        t.confirm_resolution(&contact(), paris("2025-03-03T11:30"), "Works again, thanks")
            .unwrap();
        assert_eq!(t.status, Status::Closed);
        assert_eq!(t.close_reason, Some(CloseReason::ConfirmedByPartner));
        assert_eq!(t.closed_at, Some(paris("2025-03-03T11:30")));
        assert!(matches!(
            t.comment(&contact(), monday(), "more", vec![]),
            Err(SupportError::Conflict(_))
        ));

        let mut oral = opened(3, monday(), &w.fc);
        oral.resolve(&l1, monday(), "Fixed").unwrap();
        oral.confirm_resolution(&l1, monday(), "Confirmed by phone by M. Martin, 10:20")
            .unwrap();
        assert_eq!(oral.close_reason, Some(CloseReason::ConfirmedByPartner));
    }

    #[test]
    fn closing_rule_unresolved_but_both_agree_in_writing() {
        let w = World::new();
        let l2 = staff(StaffRole::Level2);
        let mut t = opened(3, monday(), &w.fc);
        assert!(matches!(
            t.agree_to_close(&contact(), monday(), " "),
            Err(SupportError::Invalid(_))
        ));
        assert!(matches!(
            t.agree_to_close(&other_contact(), monday(), "yes"),
            Err(SupportError::Forbidden(_))
        ));
        t.agree_to_close(
            &contact(),
            paris("2025-03-04T10:00"),
            "We replace this flow; close it",
        )
        .unwrap();
        assert_eq!(t.status, Status::Open, "one party alone does not close");
        t.agree_to_close(&l2, paris("2025-03-04T11:00"), "Agreed, closing unresolved")
            .unwrap();
        assert_eq!(t.status, Status::Closed);
        assert_eq!(t.close_reason, Some(CloseReason::AgreedUnresolved));
        assert_eq!(t.resolved_at, None);

        // Staff first, then the partner, closes too.
        let mut t = opened(3, monday(), &w.fc);
        t.agree_to_close(&l2, monday(), "Proposed").unwrap();
        assert_eq!(t.status, Status::Open);
        t.agree_to_close(&contact(), monday(), "Accepted").unwrap();
        assert_eq!(t.close_reason, Some(CloseReason::AgreedUnresolved));

        // A resolved ticket is confirmed, not agreed away.
        let mut resolved = opened(3, monday(), &w.fc);
        resolved.resolve(&l2, monday(), "Done").unwrap();
        assert!(matches!(
            resolved.agree_to_close(&contact(), monday(), "ok"),
            Err(SupportError::Conflict(_))
        ));
    }

    #[test]
    fn closing_rule_ten_business_days_of_partner_silence_with_a_warning_before() {
        let w = World::new();
        let l1 = staff(StaffRole::Level1);
        let mut t = opened(4, monday(), &w.fc);
        t.request_information(&l1, monday(), "Which client_id and at what time?")
            .unwrap();
        assert_eq!(t.status, Status::AwaitingPartner);
        let d = t.deadlines(w.fc()).unwrap();
        // Eight business days: Thursday 13 March; ten: Monday 17 March, 10:00.
        assert_eq!(d.inactivity_warning_at, Some(paris("2025-03-13T10:00")));
        assert_eq!(d.inactivity_close_at, Some(paris("2025-03-17T10:00")));

        t.tick(paris("2025-03-13T09:59"), w.fc()).unwrap();
        assert_eq!(t.inactivity_warned_at, None);
        t.tick(paris("2025-03-13T10:00"), w.fc()).unwrap();
        assert_eq!(t.inactivity_warned_at, Some(paris("2025-03-13T10:00")));
        assert!(actions(&t).contains(&&Action::InactivityWarning {
            close_at: paris("2025-03-17T10:00")
        }));
        assert_eq!(t.status, Status::AwaitingPartner);
        t.tick(paris("2025-03-17T10:00"), w.fc()).unwrap();
        assert_eq!(t.status, Status::Closed);
        assert_eq!(t.close_reason, Some(CloseReason::PartnerUnresponsive));
        assert_eq!(t.history.last().unwrap().actor, Actor::System);
        assert_eq!(t.next_due(w.fc()).unwrap(), None);

        // An answer stops the clock.
        let mut answered = opened(4, monday(), &w.fc);
        answered
            .request_information(&l1, monday(), "Logs?")
            .unwrap();
        answered
            .comment(
                &contact(),
                paris("2025-03-14T10:00"),
                "Here they are",
                vec![],
            )
            .unwrap();
        assert_eq!(answered.status, Status::InProgress);
        assert!(actions(&answered).contains(&&Action::PartnerAnswered));
        answered.tick(paris("2025-03-24T10:00"), w.fc()).unwrap();
        assert_ne!(answered.status, Status::Closed);

        // A scheduler that was down warns first and gives the full two days' notice.
        let mut late = opened(4, monday(), &w.fc);
        late.request_information(&l1, monday(), "Logs?").unwrap();
        late.tick(paris("2025-03-17T10:00"), w.fc()).unwrap();
        assert_eq!(late.status, Status::AwaitingPartner);
        assert!(actions(&late).contains(&&Action::InactivityWarning {
            close_at: paris("2025-03-19T10:00")
        }));
        late.tick(paris("2025-03-19T09:59"), w.fc()).unwrap();
        assert_eq!(late.status, Status::AwaitingPartner);
        late.tick(paris("2025-03-19T10:00"), w.fc()).unwrap();
        assert_eq!(late.close_reason, Some(CloseReason::PartnerUnresponsive));
    }

    #[test]
    fn closing_rule_resolved_notified_and_no_remark() {
        let w = World::new();
        let l1 = staff(StaffRole::Level1);
        let mut t = opened(4, monday(), &w.fc);
        t.resolve(&l1, monday(), "Certificate renewed").unwrap();
        let due = paris("2025-03-10T10:00");
        assert_eq!(t.deadlines(w.fc()).unwrap().no_remark_close_at, Some(due));
        t.tick(paris("2025-03-10T09:59"), w.fc()).unwrap();
        assert_eq!(t.status, Status::Resolved);
        t.tick(due, w.fc()).unwrap();
        assert_eq!(t.close_reason, Some(CloseReason::ResolvedWithoutRemark));

        // A remark puts support back to work: no automatic close.
        let mut remarked = opened(4, monday(), &w.fc);
        remarked
            .resolve(&l1, monday(), "Certificate renewed")
            .unwrap();
        remarked
            .comment(
                &contact(),
                paris("2025-03-05T10:00"),
                "Still failing for some users",
                vec![],
            )
            .unwrap();
        assert_eq!(remarked.status, Status::InProgress);
        assert_eq!(remarked.resolved_at, None);
        assert!(actions(&remarked).contains(&&Action::Reopened));
        remarked.tick(paris("2025-03-20T10:00"), w.fc()).unwrap();
        assert_ne!(remarked.status, Status::Closed);
        // A staff comment on a resolved ticket is not a remark.
        let mut noted = opened(4, monday(), &w.fc);
        noted.resolve(&l1, monday(), "Done").unwrap();
        noted
            .comment(&l1, monday(), "Internal note", vec![])
            .unwrap();
        assert_eq!(noted.status, Status::Resolved);
    }

    #[test]
    fn contacts_act_for_their_own_partner_only() {
        let w = World::new();
        let other = other_contact();
        let mut t = opened(3, monday(), &w.fc);
        assert!(t.check_visible(&other).is_err());
        assert!(t.check_visible(&contact()).is_ok());
        assert!(matches!(
            t.comment(&other, monday(), "hi", vec![]),
            Err(SupportError::Forbidden(_))
        ));
        for refused in [
            t.clone().resolve(&contact(), monday(), "x"),
            t.clone().request_information(&contact(), monday(), "x"),
            t.clone().assign(&contact(), monday(), StaffRole::Level3),
        ] {
            assert!(
                matches!(refused, Err(SupportError::Forbidden(_))),
                "{refused:?}"
            );
        }
        let err = Ticket::open(
            Uuid::new_v4(),
            new_ticket(Scope::OneUser, None),
            &other,
            monday(),
            &w.fc,
        )
        .unwrap_err();
        assert!(matches!(err, SupportError::Forbidden(_)));
        let err = Ticket::open(
            Uuid::new_v4(),
            new_ticket(Scope::OneUser, Some(Severity::CRITICAL)),
            &contact(),
            monday(),
            &w.fc,
        )
        .unwrap_err();
        assert!(err.to_string().contains("severity"), "{err}");
        let mut blank = new_ticket(Scope::OneUser, None);
        blank.subject = "   ".into();
        assert!(matches!(
            Ticket::open(Uuid::new_v4(), blank, &contact(), monday(), &w.fc),
            Err(SupportError::Invalid(_))
        ));
    }

    #[test]
    fn an_incident_of_one_idp_disables_it_until_resolved() {
        let w = World::new();
        let l3 = staff(StaffRole::Level3);
        let mut t = Ticket::open(
            Uuid::new_v4(),
            new_ticket(Scope::OnePartner, None),
            &contact(),
            monday(),
            &w.fc,
        )
        .unwrap();
        assert_eq!(t.severity, Severity::MAJOR);
        assert_eq!(t.disabled_idp(), Some("idp-a"));
        t.request_information(&l3, monday(), "Since when?").unwrap();
        assert_eq!(t.disabled_idp(), Some("idp-a"), "still an incident");
        t.resolve(&l3, monday(), "Keys rotated").unwrap();
        assert_eq!(t.disabled_idp(), None);
        t.comment(&contact(), monday(), "Not for everyone", vec![])
            .unwrap();
        assert_eq!(t.disabled_idp(), Some("idp-a"), "reopened: disabled again");

        // Not for an SP, another scope, or an information request.
        let mut sp = new_ticket(Scope::OnePartner, None);
        sp.partner = PartnerRef::sp("sp-b").unwrap();
        let sp = Ticket::open(Uuid::new_v4(), sp, &l3, monday(), &w.fc).unwrap();
        assert_eq!(sp.disabled_idp(), None);
        let users = Ticket::open(
            Uuid::new_v4(),
            new_ticket(Scope::SeveralUsers, None),
            &contact(),
            monday(),
            &w.fc,
        )
        .unwrap();
        assert_eq!(users.disabled_idp(), None);
        let mut info = opened(3, monday(), &w.fc);
        info.scope = Scope::OnePartner;
        assert_eq!(info.disabled_idp(), Some("idp-a"));
        info.set_severity(&l3, monday(), Severity::INFO).unwrap();
        assert_eq!(info.disabled_idp(), None);
    }

    #[test]
    fn the_history_says_who_did_what_and_when() {
        let w = World::new();
        let l1 = staff(StaffRole::Level1);
        let mut t = Ticket::open(
            Uuid::new_v4(),
            new_ticket(Scope::OneUser, None),
            &contact(),
            monday(),
            &w.fc,
        )
        .unwrap();
        t.comment(&l1, paris("2025-03-03T10:05"), "Looking", vec![])
            .unwrap();
        t.assign(&l1, paris("2025-03-03T10:06"), StaffRole::Level3)
            .unwrap();
        let lines: Vec<(Timestamp, String, &str)> = t
            .history
            .iter()
            .map(|h| {
                let kind = match &h.action {
                    Action::Opened { .. } => "opened",
                    Action::Commented { .. } => "commented",
                    Action::Acknowledged => "acknowledged",
                    Action::Assigned { .. } => "assigned",
                    _ => "other",
                };
                (h.at, h.actor.to_string(), kind)
            })
            .collect();
        assert_eq!(
            lines,
            [
                (
                    monday(),
                    "ops@idp-a.example (idp:idp-a)".to_owned(),
                    "opened"
                ),
                (
                    paris("2025-03-03T10:05"),
                    "agent-level1 (level1)".to_owned(),
                    "commented"
                ),
                (
                    paris("2025-03-03T10:05"),
                    "agent-level1 (level1)".to_owned(),
                    "acknowledged"
                ),
                (
                    paris("2025-03-03T10:06"),
                    "agent-level1 (level1)".to_owned(),
                    "assigned"
                ),
            ]
        );
        assert_eq!(t.assignee, StaffRole::Level3);
        // The history survives a round trip through JSON, as stored.
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Ticket>(&json).unwrap(), t);
    }
}

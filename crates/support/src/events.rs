//! What the support service publishes. `support.ticket.<change>` tells of a ticket's
//! life (with `notify_partner` set for critical and major ones, whose partner must be
//! told); `support.incident.opened` / `support.incident.resolved` tell the registry to
//! disable an identity provider while an incident scoped to it is unresolved, and to
//! enable it again after.

use relais_bus::{Event, Payload};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::SupportError;
use crate::domain::ticket::{Action, Ticket};

pub use relais_bus::events::SUPPORT_EVENTS;
/// Binding pattern for ticket changes (what the notifier mails).
pub const TICKET_EVENTS: &str = "support.ticket.*";
/// Binding pattern for IdP incidents (what the registry acts on).
pub const INCIDENT_EVENTS: &str = "support.incident.*";

pub const SOURCE: &str = "support";

/// A call of the support API and its outcome, refusals included, for the proof store.
/// Kind: `support.call`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEvent {
    /// The gRPC method (`GetTicket`, `OpenTicket`…).
    pub method: String,
    /// Who called, as the ticket history names them, or how they failed to say.
    pub caller: String,
    /// The ticket named by the request or opened by it, as given.
    #[serde(default)]
    pub ticket_id: Option<String>,
    /// `ok`, or the stable error code returned.
    pub outcome: String,
    /// The refusal's reason.
    #[serde(default)]
    pub detail: Option<String>,
    /// The client address and request id the gateway gave the HTTP request.
    #[serde(default)]
    pub source_ip: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
}

impl Payload for CallEvent {
    fn kind(&self) -> String {
        "support.call".to_owned()
    }
}

/// A ticket changed. Kind: `support.ticket.<change>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketEvent {
    pub change: String,
    pub ticket_id: Uuid,
    pub partner_kind: String,
    pub partner_id: String,
    pub severity: u8,
    pub status: String,
    pub assignee: String,
    /// Who is now responsible, on an escalation.
    #[serde(default)]
    pub escalated_to: Vec<String>,
    #[serde(default)]
    pub close_reason: Option<String>,
    /// A critical or major event: the partner's contacts are to be told.
    pub notify_partner: bool,
}

impl Payload for TicketEvent {
    fn kind(&self) -> String {
        format!("support.ticket.{}", self.change)
    }
}

pub use relais_bus::events::{IncidentEvent, IncidentState};

/// The change name of a history action that others hear of; `None` for messages.
pub fn change_name(action: &Action) -> Option<&'static str> {
    Some(match action {
        Action::Opened { .. } => "opened",
        Action::Acknowledged => "acknowledged",
        Action::AcknowledgementOverdue { .. } => "acknowledgement_overdue",
        Action::InformationRequested { .. } => "information_requested",
        Action::InactivityWarning { .. } => "inactivity_warning",
        Action::SeverityChanged { .. } => "severity_changed",
        Action::Assigned { .. } => "assigned",
        Action::Escalated { .. } => "escalated",
        Action::DeadlineMissed { .. } => "deadline_missed",
        Action::BlockingDeclared { .. } => "blocking_declared",
        Action::BlockingFixOverdue { .. } => "blocking_fix_overdue",
        Action::Resolved { .. } => "resolved",
        Action::Reopened => "reopened",
        Action::Closed { .. } => "closed",
        Action::Commented { .. }
        | Action::PartnerAnswered
        | Action::CloseAgreed { .. }
        | Action::ResolutionConfirmed { .. } => return None,
    })
}

fn occurred(at: jiff::Timestamp) -> Result<time::OffsetDateTime, SupportError> {
    time::OffsetDateTime::from_unix_timestamp_nanos(at.as_nanosecond())
        .map_err(|e| SupportError::Invalid(format!("time out of range: {e}")))
}

/// The event that records one API call, at `at`.
pub fn of_call(call: &CallEvent, at: jiff::Timestamp) -> Result<Event, SupportError> {
    Ok(Event::from_payload_at(
        Uuid::new_v4(),
        occurred(at)?,
        SOURCE,
        call,
    )?)
}

/// The events of a change: one per new history entry others hear of, and the incident
/// start or end when the ticket started or stopped keeping an IdP disabled.
pub fn of_change(
    before: Option<&Ticket>,
    after: &Ticket,
    known: usize,
) -> Result<Vec<Event>, SupportError> {
    let mut events = Vec::new();
    for entry in after.history.iter().skip(known) {
        let Some(change) = change_name(&entry.action) else {
            continue;
        };
        let (escalated_to, close_reason) = match &entry.action {
            Action::Escalated { to, .. } => {
                (to.iter().map(|r| r.as_str().to_owned()).collect(), None)
            }
            Action::Closed { reason } => (Vec::new(), Some(reason.as_str().to_owned())),
            _ => (Vec::new(), None),
        };
        let payload = TicketEvent {
            change: change.to_owned(),
            ticket_id: after.id,
            partner_kind: after.partner.kind.as_str().to_owned(),
            partner_id: after.partner.id.clone(),
            severity: after.severity.level(),
            status: after.status.as_str().to_owned(),
            assignee: after.assignee.as_str().to_owned(),
            escalated_to,
            close_reason,
            notify_partner: after.severity.is_notified(),
        };
        events.push(Event::from_payload_at(
            Uuid::new_v4(),
            occurred(entry.at)?,
            SOURCE,
            &payload,
        )?);
    }
    let was = before.and_then(Ticket::disabled_idp);
    let now = after.disabled_idp();
    if was != now {
        let at = after.history.last().map_or(after.opened_at, |h| h.at);
        for (idp, state) in [(was, IncidentState::Resolved), (now, IncidentState::Opened)] {
            if let Some(idp) = idp {
                let payload = IncidentEvent {
                    idp_id: idp.to_owned(),
                    ticket_id: after.id,
                    state,
                };
                events.push(Event::from_payload_at(
                    Uuid::new_v4(),
                    occurred(at)?,
                    SOURCE,
                    &payload,
                )?);
            }
        }
    }
    Ok(events)
}

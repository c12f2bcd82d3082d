//! The support service's gRPC face: parses each request into domain types at the edge,
//! hands it to the desk, and renders tickets back.

use std::sync::Arc;

use jiff::Timestamp;
use relais_proto::support::v1 as pb;
use relais_proto::support::v1::support_server::Support;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::SupportError;
use crate::desk::{Desk, MailOutcome, View};
use crate::domain::indicator::Share;
use crate::domain::ticket::{Action, Attachment, NewTicket, Status as TicketStatus};
use crate::domain::{Actor, PartnerKind, PartnerRef, Scope, Severity, StaffRole};
use crate::events::{CallEvent, change_name};
use crate::store::Filter;

pub struct SupportService {
    desk: Arc<Desk>,
}

impl SupportService {
    pub fn new(desk: Arc<Desk>) -> Self {
        SupportService { desk }
    }
}

fn partner_kind(v: i32) -> Result<PartnerKind, SupportError> {
    PartnerKind::from_proto(v)
        .ok_or_else(|| SupportError::Invalid("partner_kind must be sp or idp".into()))
}

/// The caller named directly (trusted internal callers), or the access token to check.
enum Credential {
    Direct(Actor),
    Token(String),
}

fn credential(caller: Option<pb::Caller>) -> Result<Credential, SupportError> {
    if let Some(pb::caller::Who::AccessToken(token)) = caller.as_ref().and_then(|c| c.who.as_ref())
    {
        return Ok(Credential::Token(token.clone()));
    }
    direct(caller).map(Credential::Direct)
}

fn direct(caller: Option<pb::Caller>) -> Result<Actor, SupportError> {
    match caller.and_then(|c| c.who) {
        Some(pb::caller::Who::Contact(c)) => {
            if c.email.trim().is_empty() {
                return Err(SupportError::Forbidden("the contact has no e-mail".into()));
            }
            Ok(Actor::Contact {
                partner: PartnerRef::new(partner_kind(c.partner_kind)?, c.partner_id)?,
                name: c.email,
            })
        }
        Some(pb::caller::Who::Staff(s)) => {
            if s.name.trim().is_empty() {
                return Err(SupportError::Forbidden(
                    "the staff member has no name".into(),
                ));
            }
            Ok(Actor::Staff {
                role: StaffRole::parse(&s.role)?,
                name: s.name,
            })
        }
        Some(pb::caller::Who::AccessToken(_)) | None => {
            Err(SupportError::Unauthenticated("no caller".into()))
        }
    }
}

fn ticket_id(s: &str) -> Result<Uuid, SupportError> {
    Uuid::parse_str(s).map_err(|_| SupportError::NotFound)
}

fn scope(s: &str) -> Result<Scope, SupportError> {
    Scope::ALL
        .into_iter()
        .find(|sc| sc.as_str() == s)
        .ok_or_else(|| SupportError::Invalid(format!("unknown scope {s:?}")))
}

fn status(s: &str) -> Result<TicketStatus, SupportError> {
    TicketStatus::ALL
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| SupportError::Invalid(format!("unknown status {s:?}")))
}

fn severity(level: u32) -> Result<Severity, SupportError> {
    Severity::new(u8::try_from(level).unwrap_or(u8::MAX))
}

fn timestamp(field: &str, s: &str) -> Result<Timestamp, SupportError> {
    s.parse()
        .map_err(|_| SupportError::Invalid(format!("{field} must be an RFC 3339 time")))
}

fn attachments(list: Vec<pb::Attachment>) -> Result<Vec<Attachment>, SupportError> {
    list.into_iter()
        .map(|a| {
            let hex = a.sha256.len() == 64 && a.sha256.chars().all(|c| c.is_ascii_hexdigit());
            if a.file_name.trim().is_empty() || !hex {
                return Err(SupportError::Invalid(
                    "an attachment needs a file name and a hex SHA-256".into(),
                ));
            }
            Ok(Attachment {
                file_name: a.file_name,
                content_type: a.content_type,
                size: a.size,
                sha256: a.sha256.to_ascii_lowercase(),
            })
        })
        .collect()
}

fn time(t: Option<Timestamp>) -> String {
    t.map(|t| t.to_string()).unwrap_or_default()
}

fn render(view: View) -> pb::Ticket {
    let View {
        ticket: t,
        deadlines: d,
    } = view;
    let history = t
        .history
        .iter()
        .map(|h| pb::HistoryEntry {
            at: h.at.to_string(),
            actor: h.actor.to_string(),
            action: action_name(&h.action).to_owned(),
            details: serde_json::to_string(&h.action).unwrap_or_default(),
        })
        .collect();
    pb::Ticket {
        id: t.id.to_string(),
        partner_kind: t.partner.kind.to_proto(),
        partner_id: t.partner.id.clone(),
        scope: t.scope.as_str().to_owned(),
        severity: u32::from(t.severity.level()),
        severity_name: t.severity.name().to_owned(),
        subject: t.subject.clone(),
        status: t.status.as_str().to_owned(),
        assignee: t.assignee.as_str().to_owned(),
        policy: t.policy.clone(),
        opened_at: t.opened_at.to_string(),
        acknowledged_at: time(t.acknowledged_at),
        acknowledge_by: time(d.map(|d| d.acknowledge_by)),
        escalate_at: time(d.map(|d| d.escalate_at)),
        resolve_by: time(d.map(|d| d.resolve_by)),
        escalated_at: time(t.escalated_at),
        deadline_missed_at: time(t.deadline_missed_at),
        acknowledgement_overdue_at: time(t.acknowledgement_overdue_at),
        blocking_since: time(t.blocking_since),
        blocking_fix_by: time(d.and_then(|d| d.blocking_fix_by)),
        inactivity_close_at: time(d.and_then(|d| d.inactivity_close_at)),
        no_remark_close_at: time(d.and_then(|d| d.no_remark_close_at)),
        resolved_at: time(t.resolved_at),
        closed_at: time(t.closed_at),
        close_reason: t
            .close_reason
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        disabled_idp: t.disabled_idp().unwrap_or_default().to_owned(),
        history,
    }
}

fn action_name(action: &Action) -> &'static str {
    change_name(action).unwrap_or(match action {
        Action::Commented { .. } => "commented",
        Action::PartnerAnswered => "partner_answered",
        Action::CloseAgreed { .. } => "close_agreed",
        _ => "resolution_confirmed",
    })
}

fn share(s: &Share) -> pb::Share {
    pb::Share {
        received: s.received,
        resolved_in_time: s.resolved_in_time,
        late: s.late,
        pending: s.pending,
        percent: s.percent,
        meets_target: s.meets_target.unwrap_or(false),
    }
}

type Reply = Result<Response<pb::Ticket>, Status>;

/// Where a call came from, as the gateway saw it (gRPC metadata `relais-source-ip`,
/// `relais-request-id`): recorded with the call, to match the HTTP request.
struct Origin {
    ip: Option<String>,
    request_id: Option<String>,
    /// Whether the caller may name the person it acts for instead of giving their access
    /// token: an operator's tool, or anyone on a plaintext (development) link.
    names_callers: bool,
}

impl Origin {
    fn of<T>(request: &Request<T>) -> Self {
        let text = |key: &str| {
            let value = request.metadata().get(key)?.to_str().ok()?;
            // Bounded and printable: it goes into the proof store.
            let fits = !value.is_empty()
                && value.len() <= 64
                && value.chars().all(|c| c.is_ascii_graphic());
            fits.then(|| value.to_owned())
        };
        let names_callers = match relais_runtime::peer::caller(request) {
            Some(relais_runtime::Caller::Verified(peer)) => {
                peer.role == relais_runtime::Role::Operator
            }
            Some(relais_runtime::Caller::Unverified) => true,
            None => false,
        };
        Origin {
            ip: text("relais-source-ip"),
            request_id: text("relais-request-id"),
            names_callers,
        }
    }
}

/// Whether a call changes tickets: only a change that happened is answered when its
/// record cannot be kept; a read or a refusal is not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Change,
}

impl SupportService {
    async fn actor(
        &self,
        origin: &Origin,
        caller: Option<pb::Caller>,
    ) -> Result<Actor, SupportError> {
        match credential(caller)? {
            Credential::Direct(actor) if origin.names_callers => Ok(actor),
            // The gateway passes access tokens; anyone else naming a contact or a staff
            // member would act as them.
            Credential::Direct(_) => Err(SupportError::Forbidden(
                "only an operator's tool names the caller; send the access token".into(),
            )),
            Credential::Token(token) => self.desk.people().bearer(&token).await,
        }
    }

    /// Runs one call as its caller and records it, whatever the outcome.
    async fn traced<T, F, Fut>(
        &self,
        origin: &Origin,
        method: &'static str,
        kind: Kind,
        caller: Option<pb::Caller>,
        ticket: &str,
        work: F,
    ) -> Result<Response<T>, Status>
    where
        F: FnOnce(Actor) -> Fut,
        Fut: std::future::Future<Output = Result<(T, Option<String>), SupportError>>,
    {
        let (who, result) = match self.actor(origin, caller).await {
            Ok(actor) => (actor.to_string(), work(actor).await),
            Err(e) => ("unidentified caller".to_owned(), Err(e)),
        };
        self.record(origin, method, kind, who, ticket, &result)
            .await?;
        result
            .map(|(answer, _)| Response::new(answer))
            .map_err(Status::from)
    }

    async fn record<T>(
        &self,
        origin: &Origin,
        method: &'static str,
        kind: Kind,
        caller: String,
        ticket: &str,
        result: &Result<(T, Option<String>), SupportError>,
    ) -> Result<(), Status> {
        let (outcome, detail, opened) = match result {
            Ok((_, opened)) => ("ok", None, opened.clone()),
            Err(e) => (e.code(), Some(e.to_string()), None),
        };
        let call = CallEvent {
            method: method.to_owned(),
            caller,
            ticket_id: opened.or_else(|| (!ticket.is_empty()).then(|| ticket.to_owned())),
            outcome: outcome.to_owned(),
            detail,
            source_ip: origin.ip.clone(),
            request_id: origin.request_id.clone(),
        };
        if let Err(e) = self.desk.record_call(&call).await {
            tracing::error!(error = %e, method, outcome, "support call not recorded");
            // A change that happened is in the ticket's history (and its events): its
            // answer stands. A read or a refusal is not given unrecorded.
            if kind == Kind::Read || result.is_err() {
                return Err(Status::from(e));
            }
        }
        Ok(())
    }

    async fn apply<F>(
        &self,
        origin: &Origin,
        method: &'static str,
        caller: Option<pb::Caller>,
        id: &str,
        change: F,
    ) -> Reply
    where
        F: FnOnce(
            &mut crate::domain::ticket::Ticket,
            crate::domain::ticket::Rules<'_>,
            Timestamp,
            &Actor,
        ) -> Result<(), SupportError>,
    {
        self.traced(
            origin,
            method,
            Kind::Change,
            caller,
            id,
            |actor| async move {
                let id = ticket_id(id)?;
                let view = self
                    .desk
                    .change(&actor, id, |t, rules, now| change(t, rules, now, &actor))
                    .await?;
                Ok((render(view), None))
            },
        )
        .await
    }

    fn intake_allowed(&self, presented: &str) -> Result<(), SupportError> {
        let expected = self.desk.mail_intake().secret.expose();
        if expected.is_empty() {
            return Err(SupportError::Forbidden(
                "mail intake over the API is off (support.mail_intake_secret)".into(),
            ));
        }
        // Digests compared: equal length, no early exit on the secret's bytes.
        let digest = |s: &str| <sha2::Sha256 as sha2::Digest>::digest(s.as_bytes());
        if digest(presented) != digest(expected) {
            return Err(SupportError::Unauthenticated(
                "wrong mail intake secret".into(),
            ));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Support for SupportService {
    async fn open_ticket(&self, request: Request<pb::OpenTicketRequest>) -> Reply {
        let origin = Origin::of(&request);
        let req = request.into_inner();
        let caller = req.caller.clone();
        self.traced(
            &origin,
            "OpenTicket",
            Kind::Change,
            caller,
            "",
            |actor| async move {
                let new = NewTicket {
                    partner: PartnerRef::new(partner_kind(req.partner_kind)?, req.partner_id)?,
                    scope: scope(&req.scope)?,
                    severity: match req.severity {
                        0 => None,
                        level => Some(severity(level)?),
                    },
                    subject: req.subject,
                    body: req.body,
                    attachments: attachments(req.attachments)?,
                };
                let view = self.desk.open(&actor, new).await?;
                let id = view.ticket.id.to_string();
                Ok((render(view), Some(id)))
            },
        )
        .await
    }

    async fn get_ticket(&self, request: Request<pb::TicketRequest>) -> Reply {
        let origin = Origin::of(&request);
        let req = request.into_inner();
        let id = req.ticket_id.clone();
        self.traced(
            &origin,
            "GetTicket",
            Kind::Read,
            req.caller,
            &id,
            |actor| async move {
                let view = self.desk.get(&actor, ticket_id(&req.ticket_id)?).await?;
                Ok((render(view), None))
            },
        )
        .await
    }

    async fn list_tickets(
        &self,
        request: Request<pb::ListTicketsRequest>,
    ) -> Result<Response<pb::ListTicketsResponse>, Status> {
        let origin = Origin::of(&request);
        let req = request.into_inner();
        let caller = req.caller.clone();
        self.traced(
            &origin,
            "ListTickets",
            Kind::Read,
            caller,
            "",
            |actor| async move {
                let partner = match (req.partner_kind, req.partner_id.is_empty()) {
                    (0, true) => None,
                    (kind, _) => Some(PartnerRef::new(partner_kind(kind)?, req.partner_id)?),
                };
                let filter = Filter {
                    partner,
                    status: (!req.status.is_empty())
                        .then(|| status(&req.status))
                        .transpose()?,
                    limit: match req.limit {
                        0 => 100,
                        n => i64::from(n.min(500)),
                    },
                };
                let tickets = self
                    .desk
                    .list(&actor, filter)
                    .await?
                    .into_iter()
                    .map(render)
                    .collect();
                Ok((pb::ListTicketsResponse { tickets }, None))
            },
        )
        .await
    }

    async fn acknowledge(&self, request: Request<pb::TicketRequest>) -> Reply {
        let origin = Origin::of(&request);
        let req = request.into_inner();
        self.apply(
            &origin,
            "Acknowledge",
            req.caller,
            &req.ticket_id,
            |t, _, now, a| t.acknowledge(a, now),
        )
        .await
    }

    async fn comment(&self, request: Request<pb::CommentRequest>) -> Reply {
        let origin = Origin::of(&request);
        let req = request.into_inner();
        let files = attachments(req.attachments);
        self.apply(
            &origin,
            "Comment",
            req.caller,
            &req.ticket_id,
            |t, _, now, a| t.comment(a, now, &req.body, files?),
        )
        .await
    }

    async fn request_information(&self, request: Request<pb::TextRequest>) -> Reply {
        let origin = Origin::of(&request);
        let req = request.into_inner();
        self.apply(
            &origin,
            "RequestInformation",
            req.caller,
            &req.ticket_id,
            |t, _, now, a| t.request_information(a, now, &req.text),
        )
        .await
    }

    async fn set_severity(&self, request: Request<pb::SetSeverityRequest>) -> Reply {
        let origin = Origin::of(&request);
        let req = request.into_inner();
        let level = severity(req.severity);
        self.apply(
            &origin,
            "SetSeverity",
            req.caller,
            &req.ticket_id,
            |t, _, now, a| t.set_severity(a, now, level?),
        )
        .await
    }

    async fn assign(&self, request: Request<pb::AssignRequest>) -> Reply {
        let origin = Origin::of(&request);
        let req = request.into_inner();
        let role = StaffRole::parse(&req.role);
        self.apply(
            &origin,
            "Assign",
            req.caller,
            &req.ticket_id,
            |t, _, now, a| t.assign(a, now, role?),
        )
        .await
    }

    async fn declare_blocking(&self, request: Request<pb::TicketRequest>) -> Reply {
        let origin = Origin::of(&request);
        let req = request.into_inner();
        self.apply(
            &origin,
            "DeclareBlocking",
            req.caller,
            &req.ticket_id,
            |t, rules, now, a| t.declare_blocking(a, now, rules),
        )
        .await
    }

    async fn resolve(&self, request: Request<pb::TextRequest>) -> Reply {
        let origin = Origin::of(&request);
        let req = request.into_inner();
        self.apply(
            &origin,
            "Resolve",
            req.caller,
            &req.ticket_id,
            |t, _, now, a| t.resolve(a, now, &req.text),
        )
        .await
    }

    async fn confirm_resolution(&self, request: Request<pb::TextRequest>) -> Reply {
        let origin = Origin::of(&request);
        let req = request.into_inner();
        self.apply(
            &origin,
            "ConfirmResolution",
            req.caller,
            &req.ticket_id,
            |t, _, now, a| t.confirm_resolution(a, now, &req.text),
        )
        .await
    }

    async fn agree_to_close(&self, request: Request<pb::TextRequest>) -> Reply {
        let origin = Origin::of(&request);
        let req = request.into_inner();
        self.apply(
            &origin,
            "AgreeToClose",
            req.caller,
            &req.ticket_id,
            |t, _, now, a| t.agree_to_close(a, now, &req.text),
        )
        .await
    }

    async fn submit_mail(
        &self,
        request: Request<pb::SubmitMailRequest>,
    ) -> Result<Response<pb::SubmitMailResponse>, Status> {
        let origin = Origin::of(&request);
        let req = request.into_inner();
        let result = async {
            self.intake_allowed(&req.intake_secret)?;
            let (outcome, ticket, quarantine, reason) = match self.desk.intake(&req.raw).await? {
                MailOutcome::Opened(id) => ("opened", Some(id), None, String::new()),
                MailOutcome::Replied(id) => ("replied", Some(id), None, String::new()),
                MailOutcome::Duplicate(id) => ("duplicate", Some(id), None, String::new()),
                MailOutcome::Quarantined { id, reason } => ("quarantined", None, Some(id), reason),
            };
            let text = |id: Option<Uuid>| id.map(|i| i.to_string()).unwrap_or_default();
            let answer = pb::SubmitMailResponse {
                outcome: outcome.to_owned(),
                ticket_id: text(ticket),
                quarantine_id: text(quarantine),
                reason,
            };
            Ok((answer, ticket.map(|t| t.to_string())))
        }
        .await;
        self.record(
            &origin,
            "SubmitMail",
            Kind::Change,
            "mail gateway".into(),
            "",
            &result,
        )
        .await?;
        result
            .map(|(answer, _)| Response::new(answer))
            .map_err(Status::from)
    }

    async fn list_quarantined_mail(
        &self,
        request: Request<pb::ListQuarantinedMailRequest>,
    ) -> Result<Response<pb::ListQuarantinedMailResponse>, Status> {
        let origin = Origin::of(&request);
        let req = request.into_inner();
        self.traced(
            &origin,
            "ListQuarantinedMail",
            Kind::Read,
            req.caller,
            "",
            |actor| async move {
                let limit = match req.limit {
                    0 => 100,
                    n => i64::from(n.min(500)),
                };
                let mails = self
                    .desk
                    .quarantined(&actor, limit)
                    .await?
                    .into_iter()
                    .map(|q| pb::QuarantinedMail {
                        id: q.id.to_string(),
                        received_at: q.received_at.to_string(),
                        sender: q.sender.unwrap_or_default(),
                        reason: q.reason,
                        size: q.size as u64,
                    })
                    .collect();
                Ok((pb::ListQuarantinedMailResponse { mails }, None))
            },
        )
        .await
    }

    async fn get_indicator(
        &self,
        request: Request<pb::GetIndicatorRequest>,
    ) -> Result<Response<pb::Indicator>, Status> {
        let origin = Origin::of(&request);
        let req = request.into_inner();
        let caller = req.caller.clone();
        self.traced(
            &origin,
            "GetIndicator",
            Kind::Read,
            caller,
            "",
            |actor| async move {
                let from = timestamp("from", &req.from)?;
                let to = timestamp("to", &req.to)?;
                let report = self.desk.indicator(&actor, from, to).await?;
                let indicator = pb::Indicator {
                    from: report.from.to_string(),
                    to: report.to.to_string(),
                    target_percent: report.target_percent,
                    resolution_business_hours: self
                        .desk
                        .indicator_config()
                        .resolution_business_hours,
                    overall: Some(share(&report.overall)),
                    per_partner: report
                        .per_partner
                        .iter()
                        .map(|(p, s)| pb::PartnerShare {
                            partner_kind: p.kind.to_proto(),
                            partner_id: p.id.clone(),
                            share: Some(share(s)),
                        })
                        .collect(),
                };
                Ok((indicator, None))
            },
        )
        .await
    }
}

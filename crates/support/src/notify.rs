//! E-mail to a partner's contacts when a critical or major ticket of theirs is opened,
//! escalated or resolved. The notifier consumes the service's own `support.ticket.*`
//! events from a queue of its own and sends each mail inside the transaction that marks
//! the event processed (the inbox): a relay that is down or refuses rolls the event back
//! to the queue, so mail is delayed, never lost, and an event already mailed is skipped.
//! SMTP cannot join the transaction: should the process die between the relay's
//! acceptance and the commit, the mail is sent again, with the same Message-ID (made of
//! the event id), by which mail stores recognise the copy. That Message-ID is also
//! recorded in the ticket's thread, so a contact's reply lands on the ticket.

use std::time::Duration;

use deadpool_postgres::Transaction;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use relais_bus::{Event, EventHandler, HandlerError};

use crate::SupportError;
use crate::config::SmtpConfig;
use crate::domain::{PartnerKind, PartnerRef, Severity};
use crate::events::TicketEvent;
use crate::people::Directory;
use crate::store;

/// The ticket changes that are mailed when the ticket is critical or major.
pub const MAILED_CHANGES: [&str; 3] = ["opened", "escalated", "resolved"];

/// The SMTP relay and the sender, checked once at start.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

fn smtp_error(field: &str, reason: impl std::fmt::Display) -> SupportError {
    SupportError::Config(format!("support.smtp.{field}: {reason}"))
}

impl Mailer {
    /// The mailer `config` describes, or none when no relay is configured. No I/O.
    pub fn from_config(config: &SmtpConfig) -> Result<Option<Mailer>, SupportError> {
        let host = config.host.trim();
        if host.is_empty() {
            return Ok(None);
        }
        if config.port == 0 {
            return Err(smtp_error("port", "must be a port number (1-65535)"));
        }
        if config.timeout_ms == 0 {
            return Err(smtp_error("timeout_ms", "must be at least 1"));
        }
        let from: Mailbox = config.from.trim().parse().map_err(|e| {
            smtp_error(
                "from",
                format!("{:?} is not an e-mail address: {e}", config.from),
            )
        })?;
        let credentials = match (config.username.is_empty(), config.password.is_empty()) {
            (true, true) => None,
            (false, false) if config.starttls => Some(Credentials::new(
                config.username.expose().to_owned(),
                config.password.expose().to_owned(),
            )),
            (false, false) => {
                return Err(smtp_error(
                    "starttls",
                    "must be true when credentials are set (they never travel in clear)",
                ));
            }
            _ => {
                return Err(smtp_error("password", "username and password go together"));
            }
        };
        let builder = if config.starttls {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| smtp_error("host", e))?
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        };
        let hello = match config.hello_name.trim() {
            "" => from.email.domain().to_owned(),
            name => name.to_owned(),
        };
        let mut builder = builder
            .port(config.port)
            .timeout(Some(Duration::from_millis(config.timeout_ms)))
            .hello_name(ClientId::Domain(hello));
        if let Some(credentials) = credentials {
            builder = builder.credentials(credentials);
        }
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
        }))
    }

    /// The domain of the sender, which names the messages sent.
    fn domain(&self) -> &str {
        self.from.email.domain()
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): out-of-office replies are not sent back
/// to an automatic message, so they do not open tickets.
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// The consumer's handler: mails the events that call for it to the partner's contacts
/// as the registry lists them when the event is handled.
pub struct Notifier {
    mailer: Mailer,
    people: Directory,
}

impl Notifier {
    pub fn new(mailer: Mailer, people: Directory) -> Self {
        Notifier { mailer, people }
    }

    /// The message-id (without angle brackets) of the mail sent for `event`.
    pub fn message_id(&self, event: &Event) -> String {
        // Lowercased as the intake compares them.
        format!("{}@{}", event.id.simple(), self.mailer.domain()).to_ascii_lowercase()
    }

    fn compose(
        &self,
        event: &TicketEvent,
        message_id: &str,
        to: &[Address],
        subject: &str,
    ) -> Result<Message, SupportError> {
        let severity = Severity::new(event.severity)?;
        let mut body = format!(
            "A {name} ticket of {kind}:{id} was {change}.\n\n\
             Ticket: {ticket}\n\
             Subject: {subject}\n\
             Severity: {level} ({name})\n\
             Status: {status}\n\
             Handled by: {assignee}\n",
            name = severity.name(),
            kind = event.partner_kind,
            id = event.partner_id,
            change = event.change,
            ticket = event.ticket_id,
            level = severity.level(),
            status = event.status,
            assignee = event.assignee,
        );
        if !event.escalated_to.is_empty() {
            body.push_str(&format!(
                "Escalated to: {}\n",
                event.escalated_to.join(", ")
            ));
        }
        body.push_str("\nReply to this message to add to the ticket.\n");
        let recipients: Mailboxes = to
            .iter()
            .map(|a| Mailbox::new(None, a.clone()))
            .collect::<Vec<_>>()
            .into();
        Message::builder()
            .from(self.mailer.from.clone())
            .mailbox(lettre::message::header::To::from(recipients))
            .subject(format!(
                "[Relais support] Ticket {} {}: severity {} ({})",
                event.ticket_id,
                event.change,
                severity.level(),
                severity.name()
            ))
            .message_id(Some(format!("<{message_id}>")))
            .header(AutoSubmitted)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| SupportError::Invalid(format!("notification not composed: {e}")))
    }
}

#[relais_bus::async_trait]
impl EventHandler for Notifier {
    async fn handle(&self, tx: &Transaction<'_>, event: &Event) -> Result<(), HandlerError> {
        // Our own events: one that does not read back would never read back, so it is
        // logged and skipped rather than retried forever.
        let ticket: TicketEvent = match event.payload() {
            Ok(t) => t,
            Err(error) => {
                tracing::error!(event_id = %event.id, kind = %event.kind, %error, "ticket event unreadable; not mailed");
                return Ok(());
            }
        };
        if !ticket.notify_partner || !MAILED_CHANGES.contains(&ticket.change.as_str()) {
            return Ok(());
        }
        let kind = match ticket.partner_kind.as_str() {
            "sp" => Some(PartnerKind::Sp),
            "idp" => Some(PartnerKind::Idp),
            _ => None,
        };
        let Some(partner) = kind.and_then(|k| PartnerRef::new(k, ticket.partner_id.clone()).ok())
        else {
            tracing::error!(event_id = %event.id, "ticket event names no valid partner; not mailed");
            return Ok(());
        };
        // The registry down: the event is retried, the mail waits.
        let mut to = Vec::new();
        for address in self.people.contacts(&partner).await? {
            match address.parse::<Address>() {
                Ok(a) => to.push(a),
                Err(e) => {
                    tracing::error!(%partner, error = %e, "a registry contact's address is not usable")
                }
            }
        }
        if to.is_empty() {
            tracing::warn!(ticket = %ticket.ticket_id, %partner, "no contact to notify of a {} ticket", ticket.change);
            return Ok(());
        }
        let to = &to;
        let Some(subject) = store::ticket_subject(tx, ticket.ticket_id).await? else {
            tracing::error!(ticket = %ticket.ticket_id, "ticket of an event not found; not mailed");
            return Ok(());
        };
        let message_id = self.message_id(event);
        let at = jiff::Timestamp::from_nanosecond(event.occurred_at.unix_timestamp_nanos())?;
        store::record_outbound(tx, &message_id, ticket.ticket_id, at).await?;
        let message = self.compose(&ticket, &message_id, to, &subject)?;
        self.mailer.transport.send(message).await?;
        // Addresses are not logged: the count says enough.
        tracing::info!(ticket = %ticket.ticket_id, event_id = %event.id, change = %ticket.change, recipients = to.len(), "partner notified by e-mail");
        Ok(())
    }

    // A mail sent cannot be rolled back with a failed batch.
    fn batches(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use relais_config::Secret;

    use super::*;

    fn relay() -> SmtpConfig {
        SmtpConfig {
            host: "smtp.example.org".into(),
            from: "Relais support <support@relais.example>".into(),
            ..SmtpConfig::default()
        }
    }

    #[test]
    fn no_host_no_mail() {
        assert!(
            Mailer::from_config(&SmtpConfig::default())
                .unwrap()
                .is_none()
        );
        let mailer = Mailer::from_config(&relay()).unwrap().unwrap();
        assert_eq!(mailer.domain(), "relais.example");
        let with_credentials = SmtpConfig {
            username: Secret::new("relais"),
            password: Secret::new("s3cret"),
            ..relay()
        };
        assert!(Mailer::from_config(&with_credentials).unwrap().is_some());
    }

    #[test]
    fn bad_relay_settings_name_the_field() {
        let cases = [
            (SmtpConfig { port: 0, ..relay() }, "support.smtp.port"),
            (
                SmtpConfig {
                    timeout_ms: 0,
                    ..relay()
                },
                "support.smtp.timeout_ms",
            ),
            (
                SmtpConfig {
                    from: "support".into(),
                    ..relay()
                },
                "support.smtp.from",
            ),
            (
                SmtpConfig {
                    from: String::new(),
                    ..relay()
                },
                "support.smtp.from",
            ),
            (
                SmtpConfig {
                    username: Secret::new("relais"),
                    ..relay()
                },
                "support.smtp.password",
            ),
            (
                SmtpConfig {
                    username: Secret::new("relais"),
                    password: Secret::new("s3cret"),
                    starttls: false,
                    ..relay()
                },
                "support.smtp.starttls",
            ),
        ];
        for (config, field) in cases {
            let err = Mailer::from_config(&config).err().unwrap().to_string();
            assert!(err.contains(field), "{err} should name {field}");
            assert!(!err.contains("s3cret"));
        }
    }
}

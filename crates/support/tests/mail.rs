use relais_proto::support::v1 as pb;
use relais_support::SupportConfig;
use tonic::Code;

use relais_config::Secret;

use crate::common::{IDP, INTAKE_SECRET, Support, contact, staff};

fn mail(from: &str, id: &str, in_reply_to: Option<&str>, body: &str) -> Vec<u8> {
    let reply = in_reply_to
        .map(|r| format!("In-Reply-To: <{r}>\r\n"))
        .unwrap_or_default();
    format!(
        "From: {from}\r\nTo: support@relais.example\r\nSubject: Erreur à la connexion\r\n\
Message-ID: <{id}>\r\n{reply}MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n\
--b1\r\nContent-Type: application/json\r\nContent-Disposition: attachment; filename=\"har.json\"\r\n\r\n{{}}\r\n\
--b1--\r\n"
    )
    .into_bytes()
}

async fn submit(support: &mut Support, raw: Vec<u8>) -> pb::SubmitMailResponse {
    support
        .client
        .submit_mail(pb::SubmitMailRequest {
            raw,
            intake_secret: INTAKE_SECRET.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn mail_opens_tickets_threads_replies_and_keeps_the_unusable_aside() {
    let config = SupportConfig {
        mail_intake_secret: Secret::new(INTAKE_SECRET),
        ..SupportConfig::default()
    };
    let mut support = Support::start_with(config).await;

    let first = mail(
        "OPS@idp-a.example",
        "m1@idp-a.example",
        None,
        "Plus aucune connexion.",
    );
    let opened = submit(&mut support, first.clone()).await;
    assert_eq!(opened.outcome, "opened");
    let ticket = support.get(contact(IDP, "idp-a"), &opened.ticket_id).await;
    assert_eq!(ticket.partner_id, "idp-a");
    assert_eq!(ticket.subject, "Erreur à la connexion");
    assert_eq!(ticket.scope, "information_request");
    assert_eq!(ticket.history[0].actor, "ops@idp-a.example (idp:idp-a)");
    assert!(ticket.history[0].details.contains("Plus aucune connexion."));
    assert!(ticket.history[0].details.contains("har.json"));

    // Posted twice: recognised, nothing added.
    let again = submit(&mut support, first).await;
    assert_eq!(again.outcome, "duplicate");
    assert_eq!(again.ticket_id, opened.ticket_id);

    // A reply lands on its thread.
    let reply = mail(
        "ops@idp-a.example",
        "m2@idp-a.example",
        Some("M1@idp-a.example"),
        "Les journaux sont joints.",
    );
    let replied = submit(&mut support, reply).await;
    assert_eq!(replied.outcome, "replied");
    assert_eq!(replied.ticket_id, opened.ticket_id);
    let ticket = support.get(staff("level1"), &opened.ticket_id).await;
    let actions: Vec<&str> = ticket.history.iter().map(|h| h.action.as_str()).collect();
    assert_eq!(actions, ["opened", "commented"]);
    assert!(
        ticket.history[1]
            .details
            .contains("Les journaux sont joints.")
    );

    // Kept aside, each with its reason: an unknown sender, a malformed message, and
    // another partner's contact answering idp-a's thread.
    let stranger = submit(
        &mut support,
        mail(
            "someone@elsewhere.example",
            "m3@elsewhere.example",
            None,
            "Bonjour",
        ),
    )
    .await;
    assert_eq!(stranger.outcome, "quarantined");
    assert_eq!(stranger.reason, "unknown sender someone@elsewhere.example");
    let malformed = submit(
        &mut support,
        b"Subject: no sender\r\nMessage-ID: <m4@x>\r\n\r\nbody\r\n".to_vec(),
    )
    .await;
    assert_eq!(malformed.outcome, "quarantined");
    assert_eq!(malformed.reason, "malformed: no sender address (From)");
    let intruder = submit(
        &mut support,
        mail(
            "dev@sp-b.example",
            "m5@sp-b.example",
            Some("m1@idp-a.example"),
            "Moi aussi",
        ),
    )
    .await;
    assert_eq!(intruder.outcome, "quarantined");
    assert!(
        intruder.reason.contains("another partner"),
        "{}",
        intruder.reason
    );
    let untouched = support.get(staff("level1"), &opened.ticket_id).await;
    assert_eq!(untouched.history.len(), 2);

    let aside = support
        .client
        .list_quarantined_mail(pb::ListQuarantinedMailRequest {
            caller: Some(staff("level1")),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .mails;
    let mut reasons: Vec<(&str, &str)> = aside
        .iter()
        .map(|m| (m.sender.as_str(), m.reason.as_str()))
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3);
    assert_eq!(reasons[0].0, "", "the malformed one has no sender");
    assert_eq!(reasons[1].0, "dev@sp-b.example");
    assert_eq!(reasons[2].0, "someone@elsewhere.example");
    assert!(aside.iter().all(|m| m.size > 0));
    let refused = support
        .client
        .list_quarantined_mail(pb::ListQuarantinedMailRequest {
            caller: Some(contact(IDP, "idp-a")),
            limit: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    support.stop().await;
}

#[tokio::test]
async fn only_the_mail_gateway_posts_mail_and_staff_mail_is_not_a_partners() {
    let config = SupportConfig {
        mail_intake_secret: Secret::new(INTAKE_SECRET),
        ..SupportConfig::default()
    };
    let mut support = Support::start_with(config).await;
    let raw = mail("ops@idp-a.example", "s1@idp-a.example", None, "Bonjour");

    // Without the deployment's secret, or with another, nothing is taken in.
    for secret in ["", "mail-intake-secret-of-the-tests-012345678", "x"] {
        let refused = support
            .client
            .submit_mail(pb::SubmitMailRequest {
                raw: raw.clone(),
                intake_secret: secret.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{secret:?}");
    }
    let none = support
        .client
        .list_tickets(pb::ListTicketsRequest {
            caller: Some(staff("level1")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tickets;
    assert!(none.is_empty());

    // A staff member writing to the intake is kept aside: staff are nobody's contact.
    let from_staff = submit(
        &mut support,
        mail("N1@relais.example", "s2@relais.example", None, "Test"),
    )
    .await;
    assert_eq!(from_staff.outcome, "quarantined");
    assert_eq!(
        from_staff.reason,
        "n1@relais.example is support staff, not a partner's contact"
    );
    let opened = submit(&mut support, raw).await;
    assert_eq!(opened.outcome, "opened");
    support.stop().await;

    // No secret configured: the API intake is off whatever is presented.
    let mut off = Support::start().await;
    let refused = off
        .client
        .submit_mail(pb::SubmitMailRequest {
            raw: mail("ops@idp-a.example", "s3@idp-a.example", None, "x"),
            intake_secret: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    off.stop().await;
}

/// Logs a `Vec` collects, for what a test's lines say.
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A sender's address is personal data: mail kept aside (unknown sender, staff writing
/// as a partner) is logged by its quarantine id only, the reason naming the sender kept
/// in the quarantine for staff.
#[tokio::test]
async fn a_senders_address_is_never_logged() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    // The test's runtime has one thread: every line of the call is written here.
    let _guard = tracing::subscriber::set_default(subscriber);
    let config = SupportConfig {
        mail_intake_secret: Secret::new(INTAKE_SECRET),
        ..SupportConfig::default()
    };
    let mut support = Support::start_with(config).await;
    let unknown = submit(
        &mut support,
        mail(
            "stranger@elsewhere.example",
            "u1@elsewhere.example",
            None,
            "Bonjour",
        ),
    )
    .await;
    assert_eq!(unknown.outcome, "quarantined");
    assert!(unknown.reason.contains("stranger@elsewhere.example"));
    let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("inbound mail kept aside"), "{logged}");
    assert!(!logged.contains("stranger@elsewhere.example"), "{logged}");
    assert!(!logged.contains("elsewhere.example"), "{logged}");
    support.stop().await;
}

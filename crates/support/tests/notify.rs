use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use mail_parser::MessageParser;
use relais_proto::support::v1 as pb;
use relais_support::{SmtpConfig, SupportConfig};

use crate::common::{IDP, INTAKE_SECRET, Support, contact, paris, staff, text};
use crate::smtp_sink::{Received, SmtpSink};

fn config(sink: &SmtpSink, starttls: bool) -> SupportConfig {
    SupportConfig {
        mail_intake_secret: relais_config::Secret::new(INTAKE_SECRET),
        smtp: SmtpConfig {
            host: "127.0.0.1".into(),
            port: sink.port(),
            from: "Relais support <support@relais.example>".into(),
            starttls,
            timeout_ms: 5_000,
            ..SmtpConfig::default()
        },
        ..SupportConfig::default()
    }
}

struct Mail {
    to: Vec<String>,
    subject: String,
    message_id: String,
    auto_submitted: String,
    body: String,
}

fn read(received: &Received) -> Mail {
    let message = MessageParser::default()
        .parse(received.data.as_bytes())
        .unwrap();
    let mut to = received.to.clone();
    to.sort();
    assert_eq!(received.from, "support@relais.example");
    Mail {
        to,
        subject: message.subject().unwrap().to_owned(),
        message_id: message.message_id().unwrap().to_owned(),
        auto_submitted: message
            .header_raw("Auto-Submitted")
            .unwrap()
            .trim()
            .to_owned(),
        body: message.body_text(0).unwrap().into_owned(),
    }
}

#[tokio::test]
async fn critical_events_mail_the_partners_contacts_once_even_across_a_relay_outage() {
    let sink = SmtpSink::start().await;
    let mut support = Support::start_with(config(&sink, false)).await;
    support.wait_notifier().await;
    let mut events = support.listen("support.ticket.*").await;

    // The relay is down when a critical ticket opens: the mail waits, and is retried.
    sink.set_down(true);
    let ticket = support
        .open(contact(IDP, "idp-a"), (IDP, "idp-a"), "all_partners", 0)
        .await;
    assert_eq!(ticket.severity, 1);
    sink.wait("the relay to be tried twice", |s| s.refused() >= 2)
        .await;
    assert!(sink.messages().is_empty());
    sink.set_down(false);
    let opened = read(&sink.wait_messages(1, "the opening's mail").await[0]);
    assert_eq!(opened.to, ["cto@idp-a.example", "ops@idp-a.example"]);
    assert_eq!(
        opened.subject,
        format!(
            "[Relais support] Ticket {} opened: severity 1 (critical)",
            ticket.id
        )
    );
    assert_eq!(opened.auto_submitted, "auto-generated");
    assert!(
        opened.body.contains("Subject: Sign-in fails"),
        "{}",
        opened.body
    );
    let opened_event = events
        .wait_for("the opening", |e| e.kind == "support.ticket.opened")
        .await;
    assert_eq!(
        opened.message_id,
        format!("{}@relais.example", opened_event.id.simple())
    );

    // Its hour passes: the escalation is mailed.
    support.clock.set(paris("2025-03-03T11:00"));
    let escalated = read(&sink.wait_messages(2, "the escalation's mail").await[1]);
    assert_eq!(
        escalated.subject,
        format!(
            "[Relais support] Ticket {} escalated: severity 1 (critical)",
            ticket.id
        )
    );
    assert!(
        escalated.body.contains("Escalated to: production_manager"),
        "{}",
        escalated.body
    );

    // A minor ticket is not mailed; the resolution of the critical one is. The events
    // leave in that order, so the next mail shows the minor one was passed over.
    support
        .open(contact(IDP, "idp-a"), (IDP, "idp-a"), "one_user", 0)
        .await;
    support
        .client
        .resolve(text(staff("level3"), &ticket.id, "Certificate renewed"))
        .await
        .unwrap();
    let mails = sink.wait_messages(3, "the resolution's mail").await;
    let resolved = read(&mails[2]);
    assert_eq!(
        resolved.subject,
        format!(
            "[Relais support] Ticket {} resolved: severity 1 (critical)",
            ticket.id
        )
    );
    assert_eq!(resolved.to, opened.to);

    // The broker delivers at least once: the opening delivered again is not mailed again.
    // A copy under a new event id, published after it, shows the first was handled.
    let connection = support.bus.connect().await;
    let channel = connection.create_channel().await.unwrap();
    let mut fresh = opened_event.clone();
    fresh.id = uuid::Uuid::new_v4();
    for event in [&opened_event, &fresh] {
        channel
            .basic_publish(
                support.bus.exchange(),
                &event.kind,
                BasicPublishOptions::default(),
                &event.to_json().unwrap(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mails = sink.wait_messages(4, "the fresh copy's mail").await;
    assert_eq!(mails.len(), 4);
    let ids: Vec<String> = mails.iter().map(|m| read(m).message_id).collect();
    assert_eq!(ids[3], format!("{}@relais.example", fresh.id.simple()));
    assert_eq!(ids.iter().filter(|id| **id == opened.message_id).count(), 1);
    let _ = connection.close(200, "done").await;

    // A contact's reply to the notification lands on the ticket.
    let reply = format!(
        "From: ops@idp-a.example\r\nSubject: Re: {}\r\nMessage-ID: <r1@idp-a.example>\r\n\
In-Reply-To: <{}>\r\n\r\nStill failing for some users.\r\n",
        opened.subject, opened.message_id
    );
    let replied = support
        .client
        .submit_mail(pb::SubmitMailRequest {
            raw: reply.into_bytes(),
            intake_secret: INTAKE_SECRET.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (replied.outcome.as_str(), replied.ticket_id.as_str()),
        ("replied", ticket.id.as_str())
    );
    support.stop().await;
}

#[tokio::test]
async fn a_relay_without_starttls_gets_no_mail_when_starttls_is_required() {
    let sink = SmtpSink::start().await;
    let mut support = Support::start_with(config(&sink, true)).await;
    support.wait_notifier().await;
    support
        .open(contact(IDP, "idp-a"), (IDP, "idp-a"), "one_partner", 0)
        .await;
    // The sink offers no STARTTLS: each try ends before any message is given.
    sink.wait("two tries", |s| s.sessions() >= 2).await;
    assert!(sink.messages().is_empty());
    support.stop().await;
}

use relais_proto::support::v1 as pb;
use relais_support::events::TicketEvent;

use crate::common::{IDP, SP, Support, contact, paris, staff, text};

#[tokio::test]
async fn the_scheduler_escalates_a_critical_ticket_when_its_hour_passes() {
    let mut support = Support::start().await;
    let mut events = support.listen("support.ticket.*").await;
    let ticket = support
        .open(staff("level1"), (IDP, "idp-a"), "all_partners", 0)
        .await;
    assert_eq!(ticket.severity, 1);
    let opened: TicketEvent = events
        .wait_for("the ticket opened", |e| e.kind == "support.ticket.opened")
        .await
        .payload()
        .unwrap();
    assert_eq!(opened.ticket_id.to_string(), ticket.id);
    assert!(
        opened.notify_partner,
        "critical events are notified to the partner"
    );

    support.clock.set(paris("2025-03-03T11:00"));
    let escalated = support
        .wait_ticket(&ticket.id, "the escalation", |t| !t.escalated_at.is_empty())
        .await;
    assert_eq!(escalated.assignee, "production_manager");
    assert_eq!(escalated.escalated_at, "2025-03-03T10:00:00Z");
    assert_eq!(escalated.deadline_missed_at, "");
    let last = escalated.history.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.actor.as_str()),
        ("escalated", "system")
    );
    let event: TicketEvent = events
        .wait_for("the escalation event", |e| {
            e.kind == "support.ticket.escalated"
        })
        .await
        .payload()
        .unwrap();
    assert_eq!(event.ticket_id.to_string(), ticket.id);
    assert_eq!(event.escalated_to, ["production_manager"]);
    assert_eq!(event.assignee, "production_manager");
    assert!(event.notify_partner);

    // Two hours in: the total time is missed too.
    support.clock.set(paris("2025-03-03T12:00"));
    let missed = support
        .wait_ticket(&ticket.id, "the missed deadline", |t| {
            !t.deadline_missed_at.is_empty()
        })
        .await;
    assert_eq!(missed.deadline_missed_at, "2025-03-03T11:00:00Z");
    events
        .wait_for("the missed deadline event", |e| {
            e.kind == "support.ticket.deadline_missed"
        })
        .await;
    // Escalated once only.
    let escalations = missed
        .history
        .iter()
        .filter(|h| h.action == "escalated")
        .count();
    assert_eq!(escalations, 1);
    support.stop().await;
}

#[tokio::test]
async fn an_agentconnect_partner_is_judged_in_business_days() {
    let config = relais_support::SupportConfig {
        partner_policies: [("sp:sp-ac".to_owned(), "agentconnect".to_owned())].into(),
        ..Default::default()
    };
    let mut support = Support::start_with(config).await;
    let ticket = support
        .open(contact(SP, "sp-ac"), (SP, "sp-ac"), "one_partner", 0)
        .await;
    assert_eq!(ticket.policy, "agentconnect");
    assert_eq!(ticket.assignee, "level2");
    // Priority 2: two business days, Wednesday 10:00 (09:00 UTC).
    assert_eq!(ticket.resolve_by, "2025-03-05T09:00:00Z");
    support.clock.set(paris("2025-03-05T10:00"));
    let escalated = support
        .wait_ticket(&ticket.id, "the escalation", |t| !t.escalated_at.is_empty())
        .await;
    assert_eq!(escalated.assignee, "product_owner");
    support.stop().await;
}

#[tokio::test]
async fn a_silent_partner_is_warned_then_its_ticket_closes_after_ten_business_days() {
    let mut support = Support::start().await;
    let mut events = support.listen("support.ticket.*").await;
    let ticket = support
        .open(contact(SP, "sp-a"), (SP, "sp-a"), "one_user", 0)
        .await;
    let asked = support
        .client
        .request_information(text(
            staff("level1"),
            &ticket.id,
            "Which client_id, and when?",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(asked.status, "awaiting_partner");
    assert_eq!(asked.inactivity_close_at, "2025-03-17T09:00:00Z");

    support.clock.set(paris("2025-03-13T10:00"));
    let warning: TicketEvent = events
        .wait_for("the warning", |e| {
            e.kind == "support.ticket.inactivity_warning"
        })
        .await
        .payload()
        .unwrap();
    assert_eq!(warning.partner_id, "sp-a");
    assert_eq!(
        support.get(staff("level1"), &ticket.id).await.status,
        "awaiting_partner"
    );
    support.clock.set(paris("2025-03-17T10:00"));
    let closed = support
        .wait_ticket(&ticket.id, "the automatic close", |t| t.status == "closed")
        .await;
    assert_eq!(closed.close_reason, "partner_unresponsive");
    let event: TicketEvent = events
        .wait_for("the close event", |e| e.kind == "support.ticket.closed")
        .await
        .payload()
        .unwrap();
    assert_eq!(event.close_reason.as_deref(), Some("partner_unresponsive"));
    support.stop().await;
}

#[tokio::test]
async fn a_resolved_ticket_without_remark_closes_and_a_remark_keeps_it_open() {
    let mut support = Support::start().await;
    let quiet = support
        .open(contact(SP, "sp-a"), (SP, "sp-a"), "one_user", 0)
        .await;
    let talkative = support
        .open(contact(SP, "sp-a"), (SP, "sp-a"), "one_user", 0)
        .await;
    for t in [&quiet, &talkative] {
        support
            .client
            .resolve(text(staff("level1"), &t.id, "Fixed on our side"))
            .await
            .unwrap();
    }
    support.clock.set(paris("2025-03-05T10:00"));
    let remarked = support
        .client
        .comment(pb::CommentRequest {
            caller: Some(contact(SP, "sp-a")),
            ticket_id: talkative.id.clone(),
            body: "Still failing for one user".into(),
            attachments: vec![pb::Attachment {
                file_name: "har.json".into(),
                content_type: "application/json".into(),
                size: 1234,
                sha256: "ab".repeat(32),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(remarked.status, "in_progress");
    support.clock.set(paris("2025-03-10T10:00"));
    let closed = support
        .wait_ticket(&quiet.id, "the automatic close", |t| t.status == "closed")
        .await;
    assert_eq!(closed.close_reason, "resolved_without_remark");
    let still = support.get(staff("level1"), &talkative.id).await;
    assert_eq!(still.status, "in_progress");
    assert!(still.history.iter().any(|h| h.action == "reopened"));
    assert!(still.history.iter().any(|h| h.details.contains("har.json")));
    support.stop().await;
}

#[tokio::test]
async fn both_parties_agree_in_writing_to_close_an_unresolved_ticket() {
    let mut support = Support::start().await;
    let ticket = support
        .open(contact(SP, "sp-a"), (SP, "sp-a"), "several_users", 0)
        .await;
    let half = support
        .client
        .agree_to_close(text(
            contact(SP, "sp-a"),
            &ticket.id,
            "We drop this flow; please close",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(half.status, "open");
    let closed = support
        .client
        .agree_to_close(text(staff("level2"), &ticket.id, "Agreed"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(closed.status, "closed");
    assert_eq!(closed.close_reason, "agreed_unresolved");
    support.stop().await;
}

#[tokio::test]
async fn the_indicator_counts_incidents_resolved_within_24_business_hours() {
    let mut support = Support::start().await;
    let fast = support
        .open(contact(IDP, "idp-a"), (IDP, "idp-a"), "one_user", 0)
        .await;
    let slow = support
        .open(contact(SP, "sp-a"), (SP, "sp-a"), "one_user", 0)
        .await;
    // Information requests are not incidents.
    support
        .open(contact(SP, "sp-a"), (SP, "sp-a"), "information_request", 0)
        .await;
    support.clock.set(paris("2025-03-03T15:00"));
    support
        .client
        .resolve(text(staff("level1"), &fast.id, "Done"))
        .await
        .unwrap();
    // Monday 10:00 + 24 business hours = Wednesday 17:00; resolved Thursday.
    support.clock.set(paris("2025-03-06T10:00"));
    support
        .client
        .resolve(text(staff("level1"), &slow.id, "Done"))
        .await
        .unwrap();
    let indicator = support
        .client
        .get_indicator(pb::GetIndicatorRequest {
            caller: Some(staff("product_owner")),
            from: "2025-03-01T00:00:00Z".into(),
            to: "2025-04-01T00:00:00Z".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(indicator.target_percent, 95.0);
    assert_eq!(indicator.resolution_business_hours, 24);
    let overall = indicator.overall.unwrap();
    assert_eq!(
        (overall.received, overall.resolved_in_time, overall.late),
        (2, 1, 1)
    );
    assert_eq!(overall.percent, Some(50.0));
    assert!(!overall.meets_target);
    let per: Vec<(String, u64, Option<f64>)> = indicator
        .per_partner
        .into_iter()
        .map(|p| {
            let s = p.share.unwrap();
            (p.partner_id, s.received, s.percent)
        })
        .collect();
    assert_eq!(
        per,
        [
            ("sp-a".to_owned(), 1, Some(0.0)),
            ("idp-a".to_owned(), 1, Some(100.0)),
        ]
    );
    support.stop().await;
}

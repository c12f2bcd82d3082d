use relais_proto::support::v1 as pb;
use tonic::Code;

use crate::common::{IDP, SP, Support, contact, error_code, monday, open_request, staff, text};

#[tokio::test]
async fn a_partner_files_and_follows_its_own_tickets_and_nobody_elses() {
    let mut support = Support::start().await;
    let own = contact(IDP, "idp-a");
    let other = contact(SP, "sp-b");

    let ticket = support
        .open(own.clone(), (IDP, "idp-a"), "several_users", 0)
        .await;
    assert_eq!(ticket.severity, 3, "several users: medium");
    assert_eq!(ticket.status, "open");
    assert_eq!(ticket.assignee, "level1");
    assert_eq!(ticket.policy, "franceconnect");
    assert_eq!(ticket.opened_at, monday().to_string());
    // 8 h from Monday 10:00 end at 18:00; 12 h on Tuesday 13:30 (UTC+1 in March).
    assert_eq!(ticket.escalate_at, "2025-03-03T17:00:00Z");
    assert_eq!(ticket.resolve_by, "2025-03-04T12:30:00Z");
    assert_eq!(ticket.acknowledge_by, "2025-03-10T14:30:00Z");
    let theirs = support
        .open(other.clone(), (SP, "sp-b"), "one_user", 0)
        .await;

    // The partner sees its ticket with its history; staff see both.
    let seen = support.get(own.clone(), &ticket.id).await;
    assert_eq!(seen.history.len(), 1);
    assert_eq!(seen.history[0].action, "opened");
    assert_eq!(seen.history[0].actor, "ops@idp-a.example (idp:idp-a)");
    let listed = support
        .client
        .list_tickets(pb::ListTicketsRequest {
            caller: Some(own.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tickets;
    assert_eq!(
        listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        [ticket.id.as_str()]
    );
    let all = support
        .client
        .list_tickets(pb::ListTicketsRequest {
            caller: Some(staff("level1")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tickets;
    assert_eq!(all.len(), 2);

    // Every refusal, with its code.
    let refusals: Vec<(&str, tonic::Status)> = vec![
        (
            "another partner's ticket",
            support
                .client
                .get_ticket(pb::TicketRequest {
                    caller: Some(own.clone()),
                    ticket_id: theirs.id.clone(),
                })
                .await
                .unwrap_err(),
        ),
        (
            "a comment on another partner's ticket",
            support
                .client
                .comment(pb::CommentRequest {
                    caller: Some(own.clone()),
                    ticket_id: theirs.id.clone(),
                    body: "hello".into(),
                    attachments: vec![],
                })
                .await
                .unwrap_err(),
        ),
        (
            "another partner's list",
            support
                .client
                .list_tickets(pb::ListTicketsRequest {
                    caller: Some(own.clone()),
                    partner_kind: SP,
                    partner_id: "sp-b".into(),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
        ),
        (
            "a ticket for another partner",
            support
                .client
                .open_ticket(open_request(own.clone(), (SP, "sp-b"), "one_user", 0))
                .await
                .unwrap_err(),
        ),
        (
            "a severity set by a partner",
            support
                .client
                .open_ticket(open_request(own.clone(), (IDP, "idp-a"), "one_user", 1))
                .await
                .unwrap_err(),
        ),
        (
            "a partner resolving",
            support
                .client
                .resolve(text(own.clone(), &ticket.id, "done"))
                .await
                .unwrap_err(),
        ),
        (
            "a partner acknowledging",
            support
                .client
                .acknowledge(pb::TicketRequest {
                    caller: Some(own.clone()),
                    ticket_id: ticket.id.clone(),
                })
                .await
                .unwrap_err(),
        ),
        (
            "a partner changing the severity",
            support
                .client
                .set_severity(pb::SetSeverityRequest {
                    caller: Some(own.clone()),
                    ticket_id: ticket.id.clone(),
                    severity: 1,
                })
                .await
                .unwrap_err(),
        ),
        (
            "a partner assigning",
            support
                .client
                .assign(pb::AssignRequest {
                    caller: Some(own.clone()),
                    ticket_id: ticket.id.clone(),
                    role: "level3".into(),
                })
                .await
                .unwrap_err(),
        ),
        (
            "a partner asking itself for information",
            support
                .client
                .request_information(text(own.clone(), &ticket.id, "?"))
                .await
                .unwrap_err(),
        ),
        (
            "a partner declaring a blocking anomaly",
            support
                .client
                .declare_blocking(pb::TicketRequest {
                    caller: Some(own.clone()),
                    ticket_id: ticket.id.clone(),
                })
                .await
                .unwrap_err(),
        ),
        (
            "a partner reading the indicator",
            support
                .client
                .get_indicator(pb::GetIndicatorRequest {
                    caller: Some(own.clone()),
                    from: "2025-01-01T00:00:00Z".into(),
                    to: "2026-01-01T00:00:00Z".into(),
                })
                .await
                .unwrap_err(),
        ),
        (
            "no caller",
            support
                .client
                .get_ticket(pb::TicketRequest {
                    caller: None,
                    ticket_id: ticket.id.clone(),
                })
                .await
                .unwrap_err(),
        ),
        (
            "an unknown staff role",
            support
                .client
                .get_ticket(pb::TicketRequest {
                    caller: Some(staff("janitor")),
                    ticket_id: ticket.id.clone(),
                })
                .await
                .unwrap_err(),
        ),
    ];
    for (what, status) in &refusals {
        match *what {
            "an unknown staff role" => {
                assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
            }
            "no caller" => {
                assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
                assert_eq!(error_code(status), "invalid_token", "{what}");
            }
            _ => {
                assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
                assert_eq!(error_code(status), "forbidden", "{what}");
            }
        }
    }
    // Nothing was changed by the refused calls.
    let after = support.get(staff("level1"), &ticket.id).await;
    assert_eq!(after.history.len(), 1);
    assert_eq!(after.status, "open");

    let unknown = support
        .client
        .get_ticket(pb::TicketRequest {
            caller: Some(staff("level1")),
            ticket_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(error_code(&unknown), "unknown_ticket");
    support.stop().await;
}

#[tokio::test]
async fn staff_handle_a_ticket_to_its_close_and_the_history_says_who_did_what() {
    let mut support = Support::start().await;
    let own = contact(SP, "sp-a");
    let ticket = support.open(own.clone(), (SP, "sp-a"), "one_user", 0).await;
    let id = ticket.id.as_str();
    support.clock.advance(jiff::SignedDuration::from_mins(5));
    support
        .client
        .acknowledge(pb::TicketRequest {
            caller: Some(staff("level1")),
            ticket_id: id.into(),
        })
        .await
        .unwrap();
    support
        .client
        .assign(pb::AssignRequest {
            caller: Some(staff("level1")),
            ticket_id: id.into(),
            role: "level3".into(),
        })
        .await
        .unwrap();
    let resolved = support
        .client
        .resolve(text(staff("level3"), id, "Redirect URI corrected"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.status, "resolved");
    assert_eq!(resolved.no_remark_close_at, "2025-03-10T09:05:00Z");
    // Confirmation is the partner's.
    let twice = support
        .client
        .acknowledge(pb::TicketRequest {
            caller: Some(staff("level1")),
            ticket_id: id.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    assert_eq!(error_code(&twice), "invalid_state");
    let closed = support
        .client
        .confirm_resolution(text(own.clone(), id, "Works, thanks"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(closed.status, "closed");
    assert_eq!(closed.close_reason, "confirmed_by_partner");
    let history: Vec<(String, String)> = support
        .get(own, id)
        .await
        .history
        .into_iter()
        .map(|h| (h.action, h.actor))
        .collect();
    let expected = [
        ("opened", "ops@sp-a.example (sp:sp-a)"),
        ("acknowledged", "agent-level1 (level1)"),
        ("assigned", "agent-level1 (level1)"),
        ("resolved", "agent-level3 (level3)"),
        ("resolution_confirmed", "ops@sp-a.example (sp:sp-a)"),
        ("closed", "ops@sp-a.example (sp:sp-a)"),
    ];
    assert_eq!(history, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    support.stop().await;
}

#[tokio::test]
async fn every_call_is_recorded_with_its_caller_and_outcome_refusals_included() {
    use relais_support::events::CallEvent;
    let mut support = Support::start().await;
    let mut calls = support.listen("support.call").await;
    let mut next = async || -> CallEvent {
        calls
            .wait_for("a call record", |_| true)
            .await
            .payload()
            .unwrap()
    };

    let ticket = support
        .open(contact(IDP, "idp-a"), (IDP, "idp-a"), "one_user", 0)
        .await;
    let opened = next().await;
    assert_eq!(
        (opened.method.as_str(), opened.outcome.as_str()),
        ("OpenTicket", "ok")
    );
    assert_eq!(opened.caller, "ops@idp-a.example (idp:idp-a)");
    assert_eq!(opened.ticket_id.as_deref(), Some(ticket.id.as_str()));

    // Another partner's contact reading it: refused, and the attempt is on record.
    let refused = support
        .client
        .get_ticket(pb::TicketRequest {
            caller: Some(contact(SP, "sp-b")),
            ticket_id: ticket.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let attempt = next().await;
    assert_eq!(attempt.method, "GetTicket");
    assert_eq!(attempt.outcome, "forbidden");
    assert_eq!(attempt.caller, "ops@sp-b.example (sp:sp-b)");
    assert_eq!(attempt.ticket_id.as_deref(), Some(ticket.id.as_str()));
    assert!(attempt.detail.is_some());

    // No caller at all, and an access token nobody can check (oidc-front down here):
    // both refused and recorded; the token itself is never written down.
    let anonymous = support
        .client
        .list_tickets(pb::ListTicketsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let record = next().await;
    assert_eq!(
        (record.caller.as_str(), record.outcome.as_str()),
        ("unidentified caller", "invalid_token")
    );
    let token = "opaque-token-value-0123456789";
    let unchecked = support
        .client
        .list_tickets(pb::ListTicketsRequest {
            caller: Some(pb::Caller {
                who: Some(pb::caller::Who::AccessToken(token.into())),
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unchecked.code(), Code::Unavailable);
    let record = next().await;
    assert_eq!(record.outcome, "service_unavailable");
    assert!(!serde_json::to_string(&record).unwrap().contains(token));

    // Staff reading: recorded as who they are.
    support.get(staff("level2"), &ticket.id).await;
    let read = next().await;
    assert_eq!(
        (
            read.method.as_str(),
            read.caller.as_str(),
            read.outcome.as_str()
        ),
        ("GetTicket", "agent-level2 (level2)", "ok")
    );
    support.stop().await;
}

#[tokio::test]
async fn nothing_is_read_or_refused_unrecorded() {
    let mut support = Support::start().await;
    let ticket = support
        .open(contact(IDP, "idp-a"), (IDP, "idp-a"), "one_user", 0)
        .await;
    // The outbox refuses every write from now on: no call can be recorded.
    let sql = support.db.pool(relais_support::SCHEMA, 1).await;
    let admin = sql.get().await.unwrap();
    admin
        .batch_execute("ALTER TABLE outbox ADD CONSTRAINT no_write CHECK (false) NOT VALID")
        .await
        .unwrap();

    let read = support
        .client
        .get_ticket(pb::TicketRequest {
            caller: Some(staff("level1")),
            ticket_id: ticket.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        read.code(),
        Code::Unavailable,
        "a read is not served unrecorded"
    );
    // A refused change changed nothing: its refusal is not given unrecorded either.
    let refusal = support
        .client
        .acknowledge(pb::TicketRequest {
            caller: Some(contact(IDP, "idp-a")),
            ticket_id: ticket.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refusal.code(), Code::Unavailable, "nor a refusal");

    admin
        .batch_execute("ALTER TABLE outbox DROP CONSTRAINT no_write")
        .await
        .unwrap();
    let served = support.get(staff("level1"), &ticket.id).await;
    assert_eq!(served.id, ticket.id);
    support.stop().await;
}

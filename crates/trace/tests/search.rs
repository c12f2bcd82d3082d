#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Investigations: each selection and the window against real sign-ins, keyset pages
//! while connections keep arriving, refused page tokens, and every lookup in the log
//! before its answer (none for a refused one; none answered when it cannot be recorded).

use relais_bus::Event;
use relais_bus::events::{ConnectionStep, Outcome};
use relais_proto::trace::v1::{
    SearchConnectionsRequest, SearchConnectionsResponse, SubjectAt,
    search_connections_request::Selection,
};
use serde_json::Value;
use time::Duration;
use tonic::Code;

use crate::common::{BROWSER_IP, SignIn, Trace, base_time, rfc3339, sign_in, step};

fn ask(selection: Selection) -> SearchConnectionsRequest {
    SearchConnectionsRequest {
        case: "CASE-42".into(),
        reason: "requisition of 3 December".into(),
        selection: Some(selection),
        ..SearchConnectionsRequest::default()
    }
}

async fn search(trace: &mut Trace, r: SearchConnectionsRequest) -> SearchConnectionsResponse {
    trace
        .client
        .search_connections(r)
        .await
        .unwrap()
        .into_inner()
}

fn ids(r: &SearchConnectionsResponse) -> Vec<&str> {
    r.connections
        .iter()
        .map(|c| c.connection_id.as_str())
        .collect()
}

/// The refusal's gRPC code and stable code.
async fn refused(trace: &mut Trace, r: SearchConnectionsRequest) -> (Code, String) {
    let status = trace.client.search_connections(r).await.unwrap_err();
    (
        status.code(),
        relais_runtime::error_code(&status)
            .unwrap_or("")
            .to_string(),
    )
}

/// The payloads of the log's `trace.lookup` records, in the log's order.
async fn lookups(trace: &Trace) -> Vec<(String, Value)> {
    trace
        .sql
        .get()
        .await
        .unwrap()
        .query(
            "SELECT event_id::text, body FROM events WHERE kind = 'trace.lookup' ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(r.get::<_, &str>(1)).unwrap();
            (r.get(0), body["payload"].clone())
        })
        .collect()
}

fn at(partner: &str, sub: &str) -> SubjectAt {
    SubjectAt {
        partner_id: partner.into(),
        sub: sub.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_selection_finds_its_connections_in_the_window_and_each_lookup_is_recorded() {
    let mut trace = Trace::start().await;
    let base = base_time();
    let alice = |c| SignIn {
        connection_id: c,
        sp_id: "sp-a",
        sub_fs: "fs-alice",
        account_id: "acc-alice",
    };
    let alice1 = sign_in(&alice("c-alice-1"), base);
    let alice2 = sign_in(&alice("c-alice-2"), base + Duration::hours(1));
    let bob = sign_in(
        &SignIn {
            connection_id: "c-bob",
            sp_id: "sp-b",
            sub_fs: "fs-bob",
            account_id: "acc-bob",
        },
        base,
    );
    // A sign-in begun from an IPv6 address.
    let v6 = step(
        "c-v6",
        ConnectionStep::AuthorizeInitiated,
        Outcome::Success,
        base,
        5,
        ("2001:db8::7", 40_000),
        |e| e.sp_id = Some("sp-a".into()),
    );
    let all: Vec<&Event> = alice1
        .iter()
        .chain(&alice2)
        .chain(&bob)
        .chain([&v6])
        .collect();
    trace.record(&all).await;

    let newest_first = vec!["c-alice-2", "c-alice-1"];
    let r = search(&mut trace, ask(Selection::AccountId("acc-alice".into()))).await;
    assert_eq!(ids(&r), newest_first);
    assert!(r.next_page_token.is_empty());
    assert_eq!(
        r.connections[0].started_at,
        rfc3339(base + Duration::hours(1))
    );
    assert_eq!(r.connections[0].sub_fs, "fs-alice");
    assert!(r.connections[0].steps.is_empty(), "a list holds summaries");
    let r = search(
        &mut trace,
        ask(Selection::SubFi(at("idp-a", "fi-acc-alice"))),
    )
    .await;
    assert_eq!(ids(&r), newest_first);
    let r = search(&mut trace, ask(Selection::SubFs(at("sp-a", "fs-alice")))).await;
    assert_eq!(ids(&r), newest_first);
    // The SUB FS is the SP's own: the same at another SP is somebody else.
    let r = search(&mut trace, ask(Selection::SubFs(at("sp-b", "fs-alice")))).await;
    assert_eq!(ids(&r), Vec::<&str>::new());
    let r = search(&mut trace, ask(Selection::SourceIp(BROWSER_IP.into()))).await;
    assert_eq!(ids(&r), vec!["c-alice-2", "c-bob", "c-alice-1"]);
    // Addresses are compared parsed: another spelling of the same one finds it.
    let r = search(
        &mut trace,
        ask(Selection::SourceIp("2001:0DB8:0:0::7".into())),
    )
    .await;
    assert_eq!(ids(&r), vec!["c-v6"]);
    let mapped = format!("::ffff:{BROWSER_IP}");
    let r = search(&mut trace, ask(Selection::SourceIp(mapped))).await;
    assert_eq!(r.connections.len(), 3);
    // One connection comes whole.
    let r = search(&mut trace, ask(Selection::ConnectionId("c-bob".into()))).await;
    assert_eq!(ids(&r), vec!["c-bob"]);
    assert_eq!(r.connections[0].steps.len(), 7);

    // The window is [from, to).
    let half = base + Duration::minutes(30);
    let window = |from: String, to: String| SearchConnectionsRequest {
        from,
        to,
        ..ask(Selection::AccountId("acc-alice".into()))
    };
    let r = search(&mut trace, window(rfc3339(half), String::new())).await;
    assert_eq!(ids(&r), vec!["c-alice-2"]);
    let r = search(&mut trace, window(String::new(), rfc3339(half))).await;
    assert_eq!(ids(&r), vec!["c-alice-1"]);
    let r = search(
        &mut trace,
        window(rfc3339(base), rfc3339(base + Duration::hours(1))),
    )
    .await;
    assert_eq!(ids(&r), vec!["c-alice-1"], "to is excluded, from included");
    let answered = 11;

    // Refused, and so not recorded: a bad address, a bad or empty window.
    for (r, code) in [
        (
            ask(Selection::SourceIp("203.0.113.300".into())),
            "invalid_selection",
        ),
        (
            ask(Selection::SourceIp("bob's laptop".into())),
            "invalid_selection",
        ),
        (ask(Selection::AccountId(" ".into())), "invalid_selection"),
        (ask(Selection::SubFi(at("idp-a", ""))), "invalid_selection"),
        (window("yesterday".into(), String::new()), "invalid_window"),
        (window(rfc3339(half), rfc3339(half)), "invalid_window"),
        (window(rfc3339(half), rfc3339(base)), "invalid_window"),
    ] {
        assert_eq!(
            refused(&mut trace, r).await,
            (Code::InvalidArgument, code.to_string())
        );
    }

    // Every answered lookup is in the log: who, what, why, how many, which.
    let recorded = lookups(&trace).await;
    assert_eq!(recorded.len(), answered);
    let (event_id, first) = &recorded[0];
    assert_eq!(first["case"], "CASE-42");
    assert_eq!(first["reason"], "requisition of 3 December");
    assert_eq!(first["operator"], "unverified (plaintext connection)");
    assert_eq!(first["selection"]["kind"], "account_id");
    assert_eq!(first["selection"]["values"]["account_id"], "acc-alice");
    assert_eq!(first["returned"], 2);
    assert_eq!(first["connections"], serde_json::json!(newest_first));
    let last = &recorded[answered - 1].1;
    assert_eq!(last["window"]["from"], rfc3339(base));
    assert_eq!(last["window"]["to"], rfc3339(base + Duration::hours(1)));
    // It is a leaf of the log like any record, and the log verifies.
    let r = search(&mut trace, ask(Selection::AccountId("acc-bob".into()))).await;
    assert!(
        lookups(&trace)
            .await
            .iter()
            .any(|(id, _)| *id == r.lookup_event_id)
    );
    assert_ne!(*event_id, r.lookup_event_id);
    assert!(trace.verify().await.intact);
    trace.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_their_key_while_connections_arrive_and_forged_tokens_are_refused() {
    let mut trace = Trace::start().await;
    let base = base_time();
    let ids_of: Vec<String> = (0..7).map(|i| format!("c-p{i}")).collect();
    let sign_ins: Vec<Vec<Event>> = ids_of
        .iter()
        .enumerate()
        .map(|(i, id)| {
            sign_in(
                &SignIn {
                    connection_id: id,
                    sp_id: "sp-a",
                    sub_fs: "fs-p",
                    account_id: "acc-p",
                },
                base + Duration::minutes(i64::try_from(i).unwrap()),
            )
        })
        .collect();
    let all: Vec<&Event> = sign_ins.iter().flatten().collect();
    trace.record(&all).await;

    let page = |token: &str| SearchConnectionsRequest {
        page_size: 3,
        page_token: token.into(),
        ..ask(Selection::AccountId("acc-p".into()))
    };
    let first = search(&mut trace, page("")).await;
    assert_eq!(ids(&first), vec!["c-p6", "c-p5", "c-p4"]);
    assert!(!first.next_page_token.is_empty());

    // Newer sign-ins arrive between pages: the next pages neither shift nor repeat.
    let newer = sign_in(
        &SignIn {
            connection_id: "c-new",
            sp_id: "sp-a",
            sub_fs: "fs-p",
            account_id: "acc-p",
        },
        base + Duration::hours(2),
    );
    trace.record(&newer.iter().collect::<Vec<_>>()).await;
    let second = search(&mut trace, page(&first.next_page_token)).await;
    assert_eq!(ids(&second), vec!["c-p3", "c-p2", "c-p1"]);
    let third = search(&mut trace, page(&second.next_page_token)).await;
    assert_eq!(ids(&third), vec!["c-p0"]);
    assert!(third.next_page_token.is_empty(), "the last page");
    // A new first page has the newcomer.
    assert_eq!(ids(&search(&mut trace, page("")).await)[0], "c-new");
    let recorded = lookups(&trace).await;
    assert_eq!(recorded.len(), 4);
    assert_eq!(recorded[1].1["page"], true);
    assert_eq!(recorded[1].1["returned"], 3);

    // A token is only the service's own, for the selection and window it was made for.
    let token = first.next_page_token.clone();
    let mut flipped = token.clone().into_bytes();
    let i = flipped.len() / 2;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let other_selection = SearchConnectionsRequest {
        page_size: 3,
        page_token: token.clone(),
        ..ask(Selection::AccountId("acc-other".into()))
    };
    let other_window = SearchConnectionsRequest {
        from: rfc3339(base),
        ..page(&token)
    };
    for r in [
        page("not a token"),
        page("AAAA"),
        page(&flipped),
        page(&token[..token.len() - 2]),
        other_selection,
        other_window,
    ] {
        assert_eq!(
            refused(&mut trace, r).await,
            (Code::InvalidArgument, "invalid_page_token".to_string())
        );
    }
    // A page is at most 500.
    let big = SearchConnectionsRequest {
        page_size: 501,
        ..page("")
    };
    assert_eq!(refused(&mut trace, big).await.0, Code::InvalidArgument);
    let max = SearchConnectionsRequest {
        page_size: 500,
        ..page("")
    };
    assert_eq!(search(&mut trace, max).await.connections.len(), 8);
    assert_eq!(lookups(&trace).await.len(), 5, "refusals are not lookups");

    // Another replica of the log, or this one restarted, takes the same token.
    let mut trace = trace.restart().await;
    let again = search(&mut trace, page(&first.next_page_token)).await;
    assert_eq!(ids(&again), vec!["c-p3", "c-p2", "c-p1"]);
    trace.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_without_a_case_or_selection_is_refused_and_nothing_is_recorded() {
    let mut trace = Trace::start().await;
    let base = base_time();
    let events = sign_in(
        &SignIn {
            connection_id: "c-1",
            sp_id: "sp-a",
            sub_fs: "fs-1",
            account_id: "acc-1",
        },
        base,
    );
    trace.record(&events.iter().collect::<Vec<_>>()).await;
    let before = trace.bodies().await.len();
    for (case, code) in [
        (String::new(), "invalid_case"),
        ("   ".to_string(), "invalid_case"),
        ("x".repeat(201), "invalid_case"),
    ] {
        let r = SearchConnectionsRequest {
            case,
            ..ask(Selection::AccountId("acc-1".into()))
        };
        assert_eq!(
            refused(&mut trace, r).await,
            (Code::InvalidArgument, code.to_string())
        );
    }
    let long_reason = SearchConnectionsRequest {
        reason: "x".repeat(1001),
        ..ask(Selection::AccountId("acc-1".into()))
    };
    assert_eq!(
        refused(&mut trace, long_reason).await.0,
        Code::InvalidArgument
    );
    let nothing = SearchConnectionsRequest {
        selection: None,
        ..ask(Selection::AccountId("acc-1".into()))
    };
    assert_eq!(
        refused(&mut trace, nothing).await,
        (Code::InvalidArgument, "invalid_selection".to_string())
    );
    assert!(lookups(&trace).await.is_empty());
    assert_eq!(trace.bodies().await.len(), before, "the log did not grow");
    // The longest case is fine.
    let r = SearchConnectionsRequest {
        case: "x".repeat(200),
        ..ask(Selection::AccountId("acc-1".into()))
    };
    assert_eq!(ids(&search(&mut trace, r).await), vec!["c-1"]);
    trace.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_that_cannot_be_recorded_is_not_answered() {
    let mut trace = Trace::start().await;
    let events = sign_in(
        &SignIn {
            connection_id: "c-1",
            sp_id: "sp-a",
            sub_fs: "fs-1",
            account_id: "acc-1",
        },
        base_time(),
    );
    trace.record(&events.iter().collect::<Vec<_>>()).await;
    // The store refuses lookup records (as a full disk or a revoked grant would).
    let sql = trace.sql.get().await.unwrap();
    sql.batch_execute(
        "ALTER TABLE events ADD CONSTRAINT no_lookups CHECK (kind <> 'trace.lookup') NOT VALID",
    )
    .await
    .unwrap();
    assert_eq!(
        refused(&mut trace, ask(Selection::AccountId("acc-1".into()))).await,
        (Code::Unavailable, "lookup_not_recorded".to_string())
    );
    sql.batch_execute("ALTER TABLE events DROP CONSTRAINT no_lookups")
        .await
        .unwrap();
    drop(sql);
    assert!(lookups(&trace).await.is_empty());
    // The log is whole: the refused record left nothing half written.
    assert!(trace.verify().await.intact);
    let r = search(&mut trace, ask(Selection::AccountId("acc-1".into()))).await;
    assert_eq!(ids(&r), vec!["c-1"]);
    assert_eq!(lookups(&trace).await.len(), 1);
    trace.stop().await;
}

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use relais_bus::events::{ConnectionStep, Outcome};
use relais_proto::trace::v1::{Connection, GetConnectionRequest, ListConnectionsRequest};
use time::Duration;
use tonic::Code;

use crate::common::{BROWSER_IP, SP_SERVER_IP, SignIn, Trace, base_time, rfc3339, sign_in, step};

fn kinds(c: &Connection) -> Vec<&str> {
    c.steps.iter().map(|s| s.kind.as_str()).collect()
}

#[tokio::test]
async fn a_complete_sign_in_delivered_out_of_order_is_summed_up_whole() {
    let mut trace = Trace::start().await;
    let base = base_time();
    let who = SignIn {
        connection_id: "cnx-full",
        sp_id: "sp-a",
        sub_fs: "fs-1",
        account_id: "acct-1",
    };
    let events = sign_in(&who, base);
    let [
        authorize,
        redirected,
        verified,
        code,
        token,
        userinfo,
        ended,
    ] = &events[..]
    else {
        unreachable!()
    };

    // The SP's server calls come first: they say nothing of where the user is.
    trace.record(&[token, userinfo]).await;
    let early = trace.connection("cnx-full").await;
    assert_eq!(early.source_ip, "", "the SP's server is not the user");
    assert_eq!(early.source_port, 0);
    assert_eq!(early.outcome, "succeeded");

    // The rest, shuffled: the browser's later steps arrive before its first.
    trace
        .record(&[ended, code, verified, authorize, redirected])
        .await;
    let c = trace.connection("cnx-full").await;
    assert_eq!(c.connection_id, "cnx-full");
    assert_eq!(c.started_at, rfc3339(base));
    assert_eq!(c.updated_at, rfc3339(base + Duration::seconds(600)));
    // Where the sign-in started: the browser, at its first request.
    assert_eq!(c.source_ip, BROWSER_IP);
    assert_eq!(c.source_port, 50_000);
    assert_eq!(c.sp_id, "sp-a");
    assert_eq!(c.idp_id, "idp-a");
    assert_eq!(c.acr, "eidas2");
    assert_eq!(c.sub_fi, "fi-acct-1");
    assert_eq!(c.sub_fs, "fs-1");
    assert_eq!(c.account_id, "acct-1");
    assert_eq!(c.outcome, "logged_out");
    assert_eq!(c.error_code, "");

    // Every step, in the order they happened, each with its own origin.
    assert_eq!(
        kinds(&c),
        [
            "authorize_initiated",
            "idp_redirected",
            "identity_verified",
            "code_issued",
            "token_issued",
            "userinfo_served",
            "session_ended"
        ]
    );
    for (shown, sent) in c.steps.iter().zip(&events) {
        assert_eq!(shown.event_id, sent.id.to_string());
        assert_eq!(shown.occurred_at, rfc3339(sent.occurred_at));
        assert_eq!(shown.outcome, "success");
    }
    let token_step = &c.steps[4];
    assert_eq!(
        (token_step.source_ip.as_str(), token_step.source_port),
        (SP_SERVER_IP, 44_321)
    );
    let code_step = &c.steps[3];
    assert_eq!(
        (code_step.source_ip.as_str(), code_step.source_port),
        (BROWSER_IP, 50_003)
    );

    let missing = trace
        .client
        .get_connection(GetConnectionRequest {
            connection_id: "cnx-none".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    trace.stop().await;
}

fn ids(connections: &[Connection]) -> Vec<&str> {
    connections
        .iter()
        .map(|c| c.connection_id.as_str())
        .collect()
}

#[tokio::test]
async fn connections_are_found_by_sp_by_subject_and_by_account() {
    let mut trace = Trace::start().await;
    let base = base_time();
    let people = [
        ("cnx-1", "sp-a", "fs-1", "acct-1"),
        ("cnx-2", "sp-a", "fs-2", "acct-2"),
        // The first user again, at another SP.
        ("cnx-3", "sp-b", "fs-3", "acct-1"),
    ];
    let mut events = Vec::new();
    for (i, (connection_id, sp_id, sub_fs, account_id)) in people.into_iter().enumerate() {
        let who = SignIn {
            connection_id,
            sp_id,
            sub_fs,
            account_id,
        };
        let at = base + Duration::minutes(i64::try_from(i).unwrap());
        events.extend(sign_in(&who, at));
    }
    trace.record(&events.iter().collect::<Vec<_>>()).await;

    let mut list = async |sp_id: &str, sub_fs: &str, account_id: &str, limit: u32| {
        let response = trace
            .client
            .list_connections(ListConnectionsRequest {
                sp_id: sp_id.into(),
                sub_fs: sub_fs.into(),
                account_id: account_id.into(),
                limit,
            })
            .await
            .unwrap()
            .into_inner();
        response.connections
    };
    // No filter, no limit: all of them, newest first.
    assert_eq!(ids(&list("", "", "", 0).await), ["cnx-3", "cnx-2", "cnx-1"]);
    assert_eq!(ids(&list("sp-a", "", "", 0).await), ["cnx-2", "cnx-1"]);
    assert_eq!(ids(&list("sp-b", "", "", 0).await), ["cnx-3"]);
    assert_eq!(ids(&list("", "fs-2", "", 0).await), ["cnx-2"]);
    assert_eq!(ids(&list("", "", "acct-1", 0).await), ["cnx-3", "cnx-1"]);
    assert_eq!(ids(&list("sp-a", "", "acct-1", 0).await), ["cnx-1"]);
    assert!(list("sp-b", "fs-1", "", 0).await.is_empty());
    assert_eq!(ids(&list("", "", "", 2).await), ["cnx-3", "cnx-2"]);
    // Listed connections carry their summary.
    let found = list("", "fs-3", "", 0).await;
    assert_eq!(found[0].account_id, "acct-1");
    assert_eq!(found[0].sp_id, "sp-b");
    assert_eq!(found[0].source_ip, BROWSER_IP);

    trace.stop().await;
}

#[tokio::test]
async fn an_event_delivered_twice_is_stored_once() {
    let mut trace = Trace::start().await;
    let base = base_time();
    let events = sign_in(
        &SignIn {
            connection_id: "cnx-dup",
            sp_id: "sp-a",
            sub_fs: "fs-1",
            account_id: "acct-1",
        },
        base,
    );
    trace.record(&[&events[0]]).await;
    // Published again, as a relay whose confirm was lost does; then another event, which
    // the consumer reaches only after the duplicate.
    trace.wait_outbox_drained().await;
    trace.record(&[&events[0], &events[1]]).await;

    assert_eq!(trace.stored_count(&[events[0].id]).await, 1);
    // The log's unique event id is the deduplication: no inbox row is kept beside it.
    let inbox: i64 = trace
        .sql
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM inbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(inbox, 0);
    let c = trace.connection("cnx-dup").await;
    assert_eq!(kinds(&c), ["authorize_initiated", "idp_redirected"]);
    let chain = trace.verify().await;
    assert!(chain.intact);
    assert_eq!(chain.events, 2);

    trace.stop().await;
}

#[tokio::test]
async fn a_failed_step_fails_the_connection_with_its_code() {
    let mut trace = Trace::start().await;
    let base = base_time();
    let (ok, ko) = (Outcome::Success, Outcome::Failure);
    let browser = |port| (BROWSER_IP, port);
    // The user refused at the IdP.
    let denied = [
        step(
            "cnx-denied",
            ConnectionStep::AuthorizeInitiated,
            ok,
            base,
            0,
            browser(50_000),
            |e| {
                e.sp_id = Some("sp-a".into());
            },
        ),
        step(
            "cnx-denied",
            ConnectionStep::IdpRedirected,
            ok,
            base,
            1,
            browser(50_001),
            |e| {
                e.idp_id = Some("idp-a".into());
            },
        ),
        step(
            "cnx-denied",
            ConnectionStep::IdpCallback,
            ko,
            base,
            9,
            browser(50_002),
            |e| {
                e.error_code = Some("access_denied".into());
            },
        ),
    ];
    // The hub refused the request itself.
    let refused = [
        step(
            "cnx-refused",
            ConnectionStep::AuthorizeInitiated,
            ok,
            base,
            0,
            browser(50_010),
            |e| {
                e.sp_id = Some("sp-a".into());
            },
        ),
        step(
            "cnx-refused",
            ConnectionStep::Failed,
            ko,
            base,
            1,
            browser(50_011),
            |e| {
                e.error_code = Some("invalid_scope".into());
            },
        ),
    ];
    trace
        .record(&denied.iter().chain(&refused).collect::<Vec<_>>())
        .await;

    let c = trace.connection("cnx-denied").await;
    assert_eq!(c.outcome, "failed");
    assert_eq!(c.error_code, "access_denied");
    assert_eq!(
        c.steps
            .iter()
            .map(|s| s.outcome.as_str())
            .collect::<Vec<_>>(),
        ["success", "success", "failure"]
    );
    let c = trace.connection("cnx-refused").await;
    assert_eq!(c.outcome, "failed");
    assert_eq!(c.error_code, "invalid_scope");
    assert_eq!(kinds(&c), ["authorize_initiated", "failed"]);

    trace.stop().await;
}

#[tokio::test]
async fn a_failure_after_success_keeps_the_success_and_records_the_code() {
    let mut trace = Trace::start().await;
    let base = base_time();
    let who = SignIn {
        connection_id: "cnx-replay",
        sp_id: "sp-a",
        sub_fs: "fs-1",
        account_id: "acct-1",
    };
    // Signed in up to the token; then the SP's server replays the code.
    let mut events: Vec<_> = sign_in(&who, base).into_iter().take(5).collect();
    events.push(step(
        "cnx-replay",
        ConnectionStep::Failed,
        Outcome::Failure,
        base,
        40,
        (SP_SERVER_IP, 44_400),
        |e| {
            e.sp_id = Some("sp-a".into());
            e.error_code = Some("invalid_grant".into());
        },
    ));
    trace.record(&events.iter().collect::<Vec<_>>()).await;

    let c = trace.connection("cnx-replay").await;
    assert_eq!(c.outcome, "succeeded");
    assert_eq!(c.error_code, "invalid_grant");
    assert_eq!(c.steps.len(), 6);
    let last = &c.steps[5];
    assert_eq!(
        (last.kind.as_str(), last.outcome.as_str()),
        ("failed", "failure")
    );
    // The replay came from the SP's server: the user's address stays.
    assert_eq!((c.source_ip.as_str(), c.source_port), (BROWSER_IP, 50_000));

    trace.stop().await;
}

#[tokio::test]
async fn a_sign_in_recorded_as_one_record_lists_each_step_with_its_own_time_and_address() {
    use relais_bus::events::TimelineStep;
    let mut trace = Trace::start().await;
    let base = base_time();
    let at = |secs: i64, port: u16, step| TimelineStep {
        step,
        at: base + Duration::seconds(secs),
        source_ip: Some(BROWSER_IP.to_string()),
        source_port: Some(port),
        request_id: Some(format!("req-{port}")),
    };
    let record = step(
        "cnx-record",
        ConnectionStep::CodeIssued,
        Outcome::Success,
        base,
        30,
        (BROWSER_IP, 50_010),
        |e| {
            e.sp_id = Some("sp-a".to_owned());
            e.idp_id = Some("idp-a".to_owned());
            e.acr_asked = Some("eidas1".to_owned());
            e.acr = Some("eidas2".to_owned());
            e.sub_fi = Some("fi-1".to_owned());
            e.sub_fs = Some("fs-1".to_owned());
            e.account_id = Some("acct-1".to_owned());
            e.timeline = vec![
                at(0, 50_000, ConnectionStep::AuthorizeInitiated),
                at(0, 50_000, ConnectionStep::ChooserShown),
                at(5, 50_001, ConnectionStep::IdpChosen),
                at(5, 50_001, ConnectionStep::IdpRedirected),
                at(29, 50_010, ConnectionStep::IdpCallback),
                at(30, 50_010, ConnectionStep::IdentityVerified),
            ];
        },
    );
    trace.record(&[&record]).await;
    let c = trace.connection("cnx-record").await;
    // Started when the browser came to /authorize, from where it came.
    assert_eq!(c.started_at, rfc3339(base));
    assert_eq!(c.source_ip, BROWSER_IP);
    assert_eq!(c.source_port, 50_000);
    assert_eq!(c.outcome, "succeeded");
    assert_eq!(c.sub_fi, "fi-1");
    assert_eq!(
        kinds(&c),
        [
            "authorize_initiated",
            "chooser_shown",
            "idp_chosen",
            "idp_redirected",
            "idp_callback",
            "identity_verified",
            "code_issued"
        ]
    );
    assert_eq!(c.steps[2].occurred_at, rfc3339(base + Duration::seconds(5)));
    assert_eq!(c.steps[2].source_port, 50_001);
    // One record in the chain: its steps are named by it and their place.
    assert_eq!(c.steps[0].event_id, format!("{}#1", record.id));
    assert_eq!(c.steps[6].event_id, record.id.to_string());
}

/// The rows of these connections, as the store keeps them.
async fn summary_rows(tx: &deadpool_postgres::Transaction<'_>, ids: &[&str]) -> Vec<String> {
    tx.query(
        "SELECT row_to_json(c)::text FROM connections c WHERE connection_id = ANY($1) \
         ORDER BY connection_id",
        &[&ids],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test]
async fn a_batch_sums_up_its_connections_as_its_events_one_by_one_would() {
    use relais_bus::events::TimelineStep;
    let trace = Trace::start().await;
    let base = base_time();
    let who = SignIn {
        connection_id: "cnx-batch",
        sp_id: "sp-a",
        sub_fs: "fs-1",
        account_id: "acct-1",
    };
    // Not logged out: that outcome would hide how the others combine.
    let mut events: Vec<_> = sign_in(&who, base)
        .into_iter()
        .filter(|e| e.kind != "connection.session_ended")
        .collect();
    assert_eq!(events.len(), 6);
    // A replay of the code, refused after the success, from another server, naming
    // other values: which step's value wins shows.
    events.push(step(
        "cnx-batch",
        ConnectionStep::TokenIssued,
        Outcome::Failure,
        base,
        40,
        ("192.0.2.99", 40_000),
        |e| {
            e.error_code = Some("invalid_grant".to_owned());
            e.sp_id = Some("sp-z".to_owned());
            e.acr = Some("eidas3".to_owned());
        },
    ));
    // Another connection in the same batch: one record with its timeline, then its token.
    let record = step(
        "cnx-other",
        ConnectionStep::CodeIssued,
        Outcome::Success,
        base,
        30,
        (BROWSER_IP, 51_010),
        |e| {
            e.sp_id = Some("sp-b".to_owned());
            e.idp_id = Some("idp-b".to_owned());
            e.acr = Some("eidas1".to_owned());
            e.timeline = vec![TimelineStep {
                step: ConnectionStep::AuthorizeInitiated,
                at: base - Duration::seconds(3),
                source_ip: Some("203.0.113.77".to_owned()),
                source_port: Some(51_000),
                request_id: None,
            }];
        },
    );
    let token = step(
        "cnx-other",
        ConnectionStep::TokenIssued,
        Outcome::Success,
        base,
        31,
        (SP_SERVER_IP, 44_000),
        |e| e.sub_fs = Some("fs-2".to_owned()),
    );
    events.push(record);
    events.push(token);

    let ids = ["cnx-batch", "cnx-other"];
    let mut client = trace.sql.get().await.unwrap();
    // Many orders of the same events: each batch gives what one event at a time gives.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..24 {
        let mut order: Vec<&relais_bus::Event> = events.iter().collect();
        for i in (1..order.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let j = usize::try_from(seed % (i as u64 + 1)).unwrap();
            order.swap(i, j);
        }
        let tx = client.transaction().await.unwrap();
        relais_trace::append(&tx, &order).await.unwrap();
        let batched = summary_rows(&tx, &ids).await;
        tx.rollback().await.unwrap();

        let tx = client.transaction().await.unwrap();
        for event in &order {
            relais_trace::append(&tx, &[event]).await.unwrap();
        }
        let alone = summary_rows(&tx, &ids).await;
        tx.rollback().await.unwrap();
        assert_eq!(batched.len(), 2);
        assert_eq!(batched, alone, "round {round}");
    }
    drop(client);
    trace.stop().await;
}

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::{SignIn, Trace, base_time, sign_in};

/// A trace holding the five first steps of a sign-in, at seq 1 to 5, checked intact.
async fn five_events() -> Trace {
    let mut trace = Trace::start().await;
    let events = sign_in(
        &SignIn {
            connection_id: "cnx-chain",
            sp_id: "sp-a",
            sub_fs: "fs-1",
            account_id: "acct-1",
        },
        base_time(),
    );
    // One at a time, so that seq follows the list.
    for event in &events[..5] {
        trace.record(&[event]).await;
    }
    let chain = trace.verify().await;
    assert!(chain.intact, "{chain:?}");
    assert_eq!(chain.events, 5);
    assert_eq!(chain.broken_at_seq, 0);
    trace
}

async fn assert_broken_at(trace: &mut Trace, seq: i64) {
    let chain = trace.verify().await;
    assert!(!chain.intact, "{chain:?}");
    assert_eq!(chain.broken_at_seq, seq, "{chain:?}");
}

#[tokio::test]
async fn an_altered_body_breaks_the_chain_at_its_event() {
    let mut trace = five_events().await;
    // identity_verified: another person's subject.
    trace
        .tamper(&[
            "UPDATE events SET body = replace(body, 'fi-acct-1', 'fi-acct-9') \
                   WHERE seq = 3 AND body LIKE '%fi-acct-1%'",
        ])
        .await;
    assert_broken_at(&mut trace, 3).await;
    trace.stop().await;
}

#[tokio::test]
async fn an_altered_link_breaks_the_chain_at_its_event() {
    let mut trace = five_events().await;
    // The body is untouched; only the stored link to the event before it is.
    trace
        .tamper(&["UPDATE events SET prev_hash = sha256(prev_hash) WHERE seq = 3"])
        .await;
    assert_broken_at(&mut trace, 3).await;
    trace.stop().await;
}

#[tokio::test]
async fn a_deleted_event_breaks_the_chain_where_it_was() {
    let mut trace = five_events().await;
    trace.tamper(&["DELETE FROM events WHERE seq = 3"]).await;
    assert_broken_at(&mut trace, 3).await;
    trace.stop().await;
}

#[tokio::test]
async fn a_deleted_newest_event_breaks_the_chain_at_its_place() {
    let mut trace = five_events().await;
    trace.tamper(&["DELETE FROM events WHERE seq = 5"]).await;
    assert_broken_at(&mut trace, 5).await;
    trace.stop().await;
}

#[tokio::test]
async fn two_swapped_events_break_the_chain_at_the_first() {
    let mut trace = five_events().await;
    // The rows of seq 2 and 3 trade places, their hashes with them.
    trace
        .tamper(&[
            "UPDATE events SET seq = -2 WHERE seq = 2",
            "UPDATE events SET seq = 2 WHERE seq = 3",
            "UPDATE events SET seq = 3 WHERE seq = -2",
        ])
        .await;
    assert_broken_at(&mut trace, 2).await;
    trace.stop().await;
}

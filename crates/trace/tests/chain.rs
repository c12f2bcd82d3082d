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

#[tokio::test]
async fn a_chain_growing_while_it_is_checked_is_found_intact() {
    let mut trace = Trace::start().await;
    let ids: Vec<String> = (0..40).map(|i| format!("cnx-growing-{i}")).collect();
    let batches: Vec<Vec<relais_bus::Event>> = ids
        .iter()
        .map(|id| {
            sign_in(
                &SignIn {
                    connection_id: id,
                    sp_id: "sp-a",
                    sub_fs: "fs-1",
                    account_id: "acct-1",
                },
                base_time(),
            )
        })
        .collect();
    let all: Vec<&relais_bus::Event> = batches.iter().flatten().collect();
    // Appends commit one sign-in at a time while the chain is verified over and over:
    // each check sees one consistent state, never a head ahead of its events.
    let publishing = async {
        for batch in &batches {
            trace.publish(&batch.iter().collect::<Vec<_>>()).await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    let client = trace.client.clone();
    let checking = async move {
        let mut client = client;
        let mut checks = 0;
        let mut broken = Vec::new();
        while checks < 60 {
            let chain = client
                .verify_chain(relais_proto::trace::v1::VerifyChainRequest {})
                .await
                .unwrap()
                .into_inner();
            if !chain.intact {
                broken.push(chain);
            }
            checks += 1;
        }
        broken
    };
    let ((), broken) = tokio::join!(publishing, checking);
    assert!(broken.is_empty(), "{broken:?}");
    trace.wait_stored(&all).await;
    let chain = trace.verify().await;
    assert!(chain.intact, "{chain:?}");
    assert_eq!(chain.events, i64::try_from(all.len()).unwrap());
    trace.stop().await;
}

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Tampering with the stored log, directly in PostgreSQL, and what verification names.

use relais_trace::tree::{self, Frontier};

use crate::common::{SignIn, Trace, base_time, sign_in};

/// A log holding the five first steps of a sign-in, at seq 1 to 5, checked intact.
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
    let log = trace.verify().await;
    assert!(log.intact, "{log:?}");
    assert_eq!(log.events, 5);
    assert_eq!(log.broken_at_seq, 0);
    assert_eq!(log.tree_size, 5);
    trace
}

async fn assert_broken_at(trace: &mut Trace, seq: i64) {
    let log = trace.verify().await;
    assert!(!log.intact, "{log:?}");
    assert_eq!(log.broken_at_seq, seq, "{log:?}");
    assert!(!log.reason.is_empty(), "{log:?}");
}

/// The stored index of record `seq`'s leaf hash.
fn leaf_index(seq: u64) -> i64 {
    tree::stored_range(seq - 1, seq).0 as i64
}

/// What someone with write access to the database and no signing key can do: the tree's
/// hashes and head recomputed from the records as they now are.
pub async fn recompute_tree(trace: &Trace) {
    let bodies = trace.bodies().await;
    let mut frontier = Frontier::empty();
    let (mut idx, mut hashes) = (Vec::new(), Vec::new());
    for body in &bodies {
        for (i, h) in frontier.push(tree::leaf_hash(body)).unwrap() {
            idx.push(i as i64);
            hashes.push(h.0.to_vec());
        }
    }
    let frontier_hashes: Vec<Vec<u8>> = frontier.hashes().iter().map(|h| h.0.to_vec()).collect();
    let mut client = trace.sql.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.execute("DELETE FROM tree_hashes", &[]).await.unwrap();
    tx.execute(
        "INSERT INTO tree_hashes (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
        &[&idx, &hashes],
    )
    .await
    .unwrap();
    tx.execute(
        "UPDATE tree_head SET size = $1, root = $2, frontier = $3",
        &[
            &(bodies.len() as i64),
            &frontier.root().unwrap().0.to_vec(),
            &frontier_hashes,
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn an_altered_body_is_named_at_its_record() {
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
async fn an_altered_leaf_hash_is_named_at_its_record() {
    let mut trace = five_events().await;
    // The body is untouched; only its hash in the tree is.
    let sql = format!(
        "UPDATE tree_hashes SET hash = sha256(hash) WHERE idx = {}",
        leaf_index(3)
    );
    trace.tamper(&[&sql]).await;
    assert_broken_at(&mut trace, 3).await;
    trace.stop().await;
}

#[tokio::test]
async fn a_deleted_record_is_named_where_it_was() {
    let mut trace = five_events().await;
    trace.tamper(&["DELETE FROM events WHERE seq = 3"]).await;
    assert_broken_at(&mut trace, 3).await;
    trace.stop().await;
}

#[tokio::test]
async fn a_deleted_newest_record_is_named_at_its_place() {
    let mut trace = five_events().await;
    trace.tamper(&["DELETE FROM events WHERE seq = 5"]).await;
    assert_broken_at(&mut trace, 5).await;
    trace.stop().await;
}

#[tokio::test]
async fn two_swapped_records_are_named_at_the_first() {
    let mut trace = five_events().await;
    // The rows of seq 2 and 3 trade places.
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
async fn a_rewritten_head_is_named() {
    let mut trace = five_events().await;
    trace
        .tamper(&["UPDATE tree_head SET root = sha256(root)"])
        .await;
    assert_broken_at(&mut trace, 5).await;
    trace.stop().await;
}

#[tokio::test]
async fn a_record_rewritten_with_its_tree_recomputed_is_named_by_its_signed_checkpoint() {
    let mut trace = Trace::start().await;
    let events = sign_in(
        &SignIn {
            connection_id: "cnx-rewritten",
            sp_id: "sp-a",
            sub_fs: "fs-1",
            account_id: "acct-1",
        },
        base_time(),
    );
    // A checkpoint after each record; the last one is also kept outside, as a witness would.
    let mut held = String::new();
    for event in &events[..5] {
        trace.record(&[event]).await;
        held = trace.make_checkpoint().await.note;
    }
    trace
        .tamper(&[
            "UPDATE events SET body = replace(body, 'fi-acct-1', 'fi-acct-9') \
                   WHERE seq = 3 AND body LIKE '%fi-acct-1%'",
        ])
        .await;
    recompute_tree(&trace).await;
    // The tree agrees with the records again; the checkpoints signed before do not.
    let log = trace.verify().await;
    assert!(!log.intact, "{log:?}");
    assert_eq!(log.broken_at_seq, 3, "{log:?}");
    assert!(log.reason.contains("checkpoint"), "{log:?}");
    // Removing the stored checkpoints does not help against one held outside.
    trace
        .tamper(&["DELETE FROM checkpoints WHERE size = 3"])
        .await;
    trace
        .tamper(&["DELETE FROM checkpoints WHERE size = 4"])
        .await;
    trace
        .tamper(&["DELETE FROM checkpoints WHERE size = 5"])
        .await;
    let log = trace.verify_against(&held).await;
    assert!(!log.intact, "{log:?}");
    assert_eq!(log.broken_at_seq, 3, "{log:?}");
    assert!(log.reason.contains("checkpoint given"), "{log:?}");
    trace.stop().await;
}

#[tokio::test]
async fn a_forged_checkpoint_is_named() {
    let mut trace = five_events().await;
    let made = trace.make_checkpoint().await;
    assert_eq!(made.tree_size, 5);
    // The note's root line replaced by another root: its signature no longer holds.
    let other = tree::leaf_hash("another root").to_string();
    let forged = made.note.replacen(
        &tree::to_hash(&made.root_hash).unwrap().to_string(),
        &other,
        1,
    );
    assert_ne!(forged, made.note);
    trace
        .tamper(&[&format!(
            "UPDATE checkpoints SET note = '{forged}' WHERE size = 5"
        )])
        .await;
    let log = trace.verify().await;
    assert!(!log.intact, "{log:?}");
    assert!(log.reason.contains("checkpoint"), "{log:?}");
    trace.stop().await;
}

#[tokio::test]
async fn a_log_cut_below_a_signed_checkpoint_is_named() {
    let mut trace = five_events().await;
    trace.make_checkpoint().await;
    // The newest record and its hashes removed, the head set back consistently.
    trace.tamper(&["DELETE FROM events WHERE seq = 5"]).await;
    recompute_tree(&trace).await;
    let log = trace.verify().await;
    assert!(!log.intact, "{log:?}");
    assert_eq!(log.broken_at_seq, 5, "{log:?}");
    assert!(log.reason.contains("checkpoint covers 5"), "{log:?}");
    trace.stop().await;
}

#[tokio::test]
async fn a_checkpoint_given_is_checked_and_one_of_another_key_refused() {
    let mut trace = five_events().await;
    let made = trace.make_checkpoint().await;
    let log = trace.verify_against(&made.note).await;
    assert!(log.intact, "{log:?}");
    assert!(log.checkpoints_checked >= 2, "{log:?}");
    let origin = relais_trace::TraceConfig::default().origin;
    let (private, _) = relais_trace::checkpoint::generate_key(&origin).unwrap();
    let stranger = relais_trace::checkpoint::CheckpointKey::parse(private.expose(), &origin)
        .unwrap()
        .sign(5, tree::to_hash(&made.root_hash).unwrap())
        .unwrap();
    let refused = trace
        .client
        .verify_chain(relais_proto::trace::v1::VerifyChainRequest {
            checkpoint: stranger,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
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
    // Appends commit one sign-in at a time while the log is verified over and over: each
    // check sees one consistent state, never a head ahead of its records.
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
            let log = client
                .verify_chain(relais_proto::trace::v1::VerifyChainRequest::default())
                .await
                .unwrap()
                .into_inner();
            if !log.intact {
                broken.push(log);
            }
            checks += 1;
        }
        broken
    };
    let ((), broken) = tokio::join!(publishing, checking);
    assert!(broken.is_empty(), "{broken:?}");
    trace.wait_stored(&all).await;
    let log = trace.verify().await;
    assert!(log.intact, "{log:?}");
    assert_eq!(log.events, i64::try_from(all.len()).unwrap());
    trace.stop().await;
}

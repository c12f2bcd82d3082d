#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A store of the hash-chain days (migrations V1 and V2, records chained with
//! SHA-256(previous || body)) upgraded to the log: its records become the log's first
//! leaves, in seq order, and stay verifiable.

use ct_merkle::InclusionProof;
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use relais_config::{DatabaseConfig, Secret};
use relais_proto::trace::v1::{GetInclusionProofRequest, get_inclusion_proof_request::Record};
use relais_testkit::TestDb;
use sha2::{Digest, Sha256};

use crate::common::{SignIn, Trace, base_time, sign_in};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// A database as the chain left it: the schema up to V2 and `records` chained in order.
async fn chained_store(records: &[relais_bus::Event]) -> TestDb {
    let db = TestDb::create().await;
    let config = DatabaseConfig {
        url: Secret::new(db.url()),
        pool_size: 1,
        ..DatabaseConfig::default()
    };
    let pool = relais_runtime::pg_pool(&config, relais_trace::SCHEMA)
        .await
        .unwrap();
    relais_runtime::migrate(
        &pool,
        relais_trace::SCHEMA,
        embedded::migrations::runner().set_target(refinery::Target::Version(2)),
    )
    .await
    .unwrap();
    let client = pool.get().await.unwrap();
    let mut prev = vec![0u8; 32];
    for (i, event) in records.iter().enumerate() {
        let body = serde_json::to_string(event).unwrap();
        let hash = Sha256::new()
            .chain_update(&prev)
            .chain_update(body.as_bytes())
            .finalize()
            .to_vec();
        client
            .execute(
                "INSERT INTO events (seq, event_id, kind, occurred_at, source, body, prev_hash, \
                 hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &(i as i64 + 1),
                    &event.id,
                    &event.kind,
                    &event.occurred_at,
                    &event.source,
                    &body,
                    &prev,
                    &hash,
                ],
            )
            .await
            .unwrap();
        prev = hash;
    }
    client
        .execute(
            "UPDATE chain_head SET seq = $1, hash = $2",
            &[&(records.len() as i64), &prev],
        )
        .await
        .unwrap();
    db
}

fn records(id: &str) -> Vec<relais_bus::Event> {
    sign_in(
        &SignIn {
            connection_id: id,
            sp_id: "sp-a",
            sub_fs: "fs-1",
            account_id: "acct-1",
        },
        base_time(),
    )
}

#[tokio::test]
async fn a_legacy_chain_is_moved_into_the_log_and_stays_verifiable() {
    let old = records("cnx-legacy");
    let db = chained_store(&old).await;
    let mut trace = Trace::start_on(db).await;
    let log = trace.verify().await;
    assert!(log.intact, "{log:?}");
    assert_eq!(log.events, old.len() as i64);
    // The log's leaves are the chain's records in seq order.
    let bodies = trace.bodies().await;
    let expected: Vec<String> = old
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    assert_eq!(bodies, expected);
    let mut ct = MemoryBackedTree::<sha2_ct::Sha256, Vec<u8>>::new();
    for b in &bodies {
        ct.push(b.clone().into_bytes());
    }
    assert_eq!(log.root_hash, ct.root().as_bytes().as_slice());

    // New records follow them; an old one is proven in the new tree.
    let new = records("cnx-after");
    trace.record(&new.iter().collect::<Vec<_>>()).await;
    let checkpoint = trace.make_checkpoint().await;
    assert_eq!(checkpoint.tree_size, (old.len() + new.len()) as u64);
    let proof = trace
        .client
        .get_inclusion_proof(GetInclusionProofRequest {
            record: Some(Record::EventId(old[2].id.to_string())),
            tree_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(proof.leaf_index, 2);
    assert_eq!(proof.root_hash, checkpoint.root_hash);
    let mut ct = MemoryBackedTree::<sha2_ct::Sha256, Vec<u8>>::new();
    for b in trace.bodies().await {
        ct.push(b.into_bytes());
    }
    ct.root()
        .verify_inclusion(
            &proof.body.clone().into_bytes(),
            2,
            &InclusionProof::try_from_bytes(proof.hashes.concat()).unwrap(),
        )
        .unwrap();
    let log = trace.verify().await;
    assert!(log.intact, "{log:?}");
    assert_eq!(log.events, (old.len() + new.len()) as i64);
    trace.stop().await;
}

#[tokio::test]
async fn a_legacy_chain_altered_before_the_move_stops_the_service_naming_the_record() {
    let db = chained_store(&records("cnx-legacy-altered")).await;
    let pool = db.pool(relais_trace::SCHEMA, 1).await;
    pool.get()
        .await
        .unwrap()
        .execute(
            "UPDATE events SET body = replace(body, 'fi-acct-1', 'fi-acct-9') WHERE seq = 3",
            &[],
        )
        .await
        .unwrap();
    drop(pool);
    let Err((e, db, bus)) = Trace::try_start_on(db).await else {
        panic!("the service took over an altered chain");
    };
    assert!(
        matches!(e, relais_trace::TraceError::LegacyChain { seq: 3, .. }),
        "{e}"
    );
    bus.cleanup().await;
    db.cleanup().await;
}

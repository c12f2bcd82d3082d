#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Retention: months of synthetic records (through the real append path, received in the
//! past), the oldest month purged; what is left verifies, and nothing personal of what was
//! purged is left in any table.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ct_merkle::InclusionProof;
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use relais_bus::Event;
use relais_bus::events::{ConnectionStep, Outcome};
use relais_proto::trace::v1::{
    ExportCaseRequest, GetConsistencyProofRequest, GetInclusionProofRequest, PurgeRequest,
    PurgeResponse, export_case_request::Subject, get_inclusion_proof_request::Record,
};
use relais_trace::retention::months_before;
use relais_trace::{TraceConfig, proof_file, tree};
use sha2_ct::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::common::{Trace, base_time, step};

/// A sign-in's four records from `ip`, `seconds` after `at`: its subjects are named after
/// `who`, so that a scan finds them.
fn sign_in(id: &str, who: &str, ip: &str, at: OffsetDateTime) -> Vec<Event> {
    use ConnectionStep::*;
    let ok = Outcome::Success;
    let sp = "sp-retention";
    vec![
        step(id, AuthorizeInitiated, ok, at, 0, (ip, 50_000), |e| {
            e.sp_id = Some(sp.into());
        }),
        step(id, IdentityVerified, ok, at, 10, (ip, 50_001), |e| {
            e.idp_id = Some("idp-a".into());
            e.acr = Some("eidas2".into());
            e.sub_fi = Some(format!("fi-{who}"));
        }),
        step(id, CodeIssued, ok, at, 11, (ip, 50_002), |e| {
            e.sp_id = Some(sp.into());
            e.idp_id = Some("idp-a".into());
            e.acr = Some("eidas2".into());
            e.sub_fi = Some(format!("fi-{who}"));
            e.sub_fs = Some(format!("fs-{who}"));
            e.account_id = Some(format!("acc-{who}"));
            e.session_id = Some(format!("sid-{id}"));
        }),
        step(id, TokenIssued, ok, at, 12, (ip, 44_000), |e| {
            e.sp_id = Some(sp.into());
            e.sub_fs = Some(format!("fs-{who}"));
            e.account_id = Some(format!("acc-{who}"));
        }),
    ]
}

/// Appends `events` through the log's own append, as received at their time: the store's
/// clock then (`received_at` is not in the records' bodies, so not in the tree).
async fn append_received_then(t: &Trace, events: &[Event]) {
    let mut client = t.sql.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let refs: Vec<&Event> = events.iter().collect();
    relais_trace::append(&tx, &refs).await.unwrap();
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    tx.execute(
        "UPDATE events SET received_at = occurred_at WHERE event_id = ANY($1)",
        &[&ids],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// A day into the month that began `months` ago: clear of the retention's limit.
fn month_ago(now: OffsetDateTime, months: u32) -> OffsetDateTime {
    months_before(now, months).unwrap() + time::Duration::days(1)
}

async fn purge(t: &mut Trace, dry_run: bool) -> PurgeResponse {
    t.client
        .purge(PurgeRequest { dry_run })
        .await
        .unwrap()
        .into_inner()
}

/// How many rows of every table of the trace schema hold `value` anywhere.
async fn rows_holding(t: &Trace, value: &str) -> Vec<(String, i64)> {
    let client = t.sql.get().await.unwrap();
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
            &[&relais_trace::SCHEMA],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.len() >= 8, "{tables:?}");
    let mut found = Vec::new();
    for table in tables {
        let n: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM \"{table}\" r WHERE strpos(r::text, $1) > 0"),
                &[&value],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            found.push((table, n));
        }
    }
    found
}

async fn count(t: &Trace, sql: &str) -> i64 {
    t.sql
        .get()
        .await
        .unwrap()
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

fn config(months: u32, batch: u32) -> TraceConfig {
    TraceConfig {
        retention_months: months,
        purge_batch: batch,
        ..TraceConfig::default()
    }
}

#[tokio::test]
async fn the_oldest_month_is_purged_and_the_rest_still_verifies() {
    let mut t = Trace::start_with(config(3, 3)).await;
    let now = base_time();
    // Four months ago (past a retention of 3): two sign-ins, and the start of one whose
    // session ended two months ago (it straddles the cut).
    let old_a = sign_in("c-old-a", "old-a", "192.0.2.11", month_ago(now, 4));
    let old_b = sign_in("c-old-b", "old-b", "192.0.2.12", month_ago(now, 4));
    let mut straddle = sign_in("c-straddle", "old-c", "192.0.2.13", month_ago(now, 4));
    straddle.truncate(3);
    append_received_then(&t, &old_a).await;
    // A checkpoint below the cut: kept, and still checked.
    let early = t.make_checkpoint().await;
    append_received_then(&t, &old_b).await;
    append_received_then(&t, &straddle).await;
    let cut = i64::try_from(old_a.len() + old_b.len() + straddle.len()).unwrap();
    // Two months ago and one: kept.
    let ended = step(
        "c-straddle",
        ConnectionStep::SessionEnded,
        Outcome::Success,
        month_ago(now, 2),
        0,
        ("198.51.100.13", 50_100),
        |e| {
            e.sp_id = Some("sp-retention".into());
            e.session_id = Some("sid-c-straddle".into());
        },
    );
    let kept_a = sign_in("c-kept-a", "kept-a", "198.51.100.21", month_ago(now, 2));
    append_received_then(&t, std::slice::from_ref(&ended)).await;
    append_received_then(&t, &kept_a).await;
    let kept_b = sign_in("c-kept-b", "kept-b", "198.51.100.22", month_ago(now, 1));
    append_received_then(&t, &kept_b).await;
    // And now, through the bus.
    let fresh = sign_in("c-fresh", "fresh", "198.51.100.23", now);
    t.record(&fresh.iter().collect::<Vec<_>>()).await;
    let before_checkpoint = t.make_checkpoint().await;

    let purged_values = [
        "192.0.2.11",
        "192.0.2.12",
        "192.0.2.13",
        "fi-old-a",
        "fs-old-b",
        "acc-old-c",
        "fi-old-c",
    ];
    for v in purged_values {
        assert!(!rows_holding(&t, v).await.is_empty(), "{v} is stored");
    }
    let kept_ids = ["c-kept-a", "c-kept-b", "c-fresh"];
    let mut kept = Vec::new();
    for id in kept_ids {
        kept.push(t.connection(id).await);
    }
    let all_before = t.bodies().await;
    let events_before = count(&t, "SELECT count(*) FROM events").await;

    // A dry run says what would go, and changes nothing.
    let dry = purge(&mut t, true).await;
    assert!(dry.dry_run);
    assert_eq!(dry.purged_up_to_seq, cut);
    assert_eq!(dry.records, u64::try_from(cut).unwrap());
    assert_eq!((dry.connections_removed, dry.connections_rebuilt), (2, 1));
    assert_eq!(dry.retention_months, 3);
    assert!(dry.purge_event_id.is_empty());
    assert_eq!(
        count(&t, "SELECT count(*) FROM events").await,
        events_before
    );
    assert_eq!(count(&t, "SELECT count(*) FROM purges").await, 0);
    assert_eq!(
        count(
            &t,
            &format!("SELECT count(*) FROM checkpoints WHERE size = {cut}")
        )
        .await,
        0
    );

    let done = purge(&mut t, false).await;
    assert!(!done.dry_run);
    assert_eq!(done.purged_up_to_seq, cut);
    assert_eq!(done.checkpoint_size, u64::try_from(cut).unwrap());
    assert_eq!(done.records, u64::try_from(cut).unwrap());
    assert_eq!((done.connections_removed, done.connections_rebuilt), (2, 1));
    // The cut's checkpoint is the tree of the records purged, as they were.
    let ct_cut: MemoryBackedTree<Sha256, Vec<u8>> = {
        let mut tree = MemoryBackedTree::new();
        for b in &all_before[..usize::try_from(cut).unwrap()] {
            tree.push(b.clone().into_bytes());
        }
        tree
    };
    assert_eq!(done.checkpoint_root, ct_cut.root().as_bytes().to_vec());

    // Gone: the records up to the cut, the summaries only they held, and every trace of
    // their subjects and addresses, in every table.
    assert_eq!(
        count(
            &t,
            &format!("SELECT count(*) FROM events WHERE seq <= {cut}")
        )
        .await,
        0
    );
    for v in purged_values {
        assert_eq!(
            rows_holding(&t, v).await,
            Vec::new(),
            "{v} survived the purge"
        );
    }
    for id in ["c-old-a", "c-old-b"] {
        let missing = t
            .client
            .get_connection(relais_proto::trace::v1::GetConnectionRequest {
                connection_id: id.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound, "{id}");
    }
    // Kept as they were.
    for (id, before) in kept_ids.iter().zip(&kept) {
        assert_eq!(&t.connection(id).await, before, "{id}");
    }
    // The straddling connection: only what its kept record holds.
    let s = t.connection("c-straddle").await;
    assert_eq!(s.steps.len(), 1);
    assert_eq!(s.steps[0].event_id, ended.id.to_string());
    // The browser's address was in the purged records only (a logout's is not taken).
    assert_eq!(s.source_ip, "");
    assert_eq!((s.sub_fi.as_str(), s.sub_fs.as_str()), ("", ""));
    assert_eq!(s.account_id, "");
    assert_eq!(s.sp_id, "sp-retention");

    // The purge is a record of the log, after the cut.
    let client = t.sql.get().await.unwrap();
    let record = client
        .query_one(
            "SELECT seq, event_id, body FROM events WHERE kind = 'trace.purged'",
            &[],
        )
        .await
        .unwrap();
    let seq: i64 = record.get(0);
    assert_eq!(record.get::<_, Uuid>(1).to_string(), done.purge_event_id);
    assert!(seq > cut);
    let body: serde_json::Value = serde_json::from_str(record.get::<_, &str>(2)).unwrap();
    let payload = &body["payload"];
    assert_eq!(payload["cut_seq"], cut);
    assert_eq!(payload["records"], cut);
    assert_eq!(payload["connections_removed"], 2);
    assert_eq!(payload["connections_rebuilt"], 1);
    assert_eq!(payload["retention_months"], 3);
    assert_eq!(
        payload["checkpoint_root"],
        tree::to_hash(&done.checkpoint_root).unwrap().to_string()
    );
    drop(client);

    // The log verifies from the cut's checkpoint, the one below it checked too.
    let v = t.verify().await;
    assert!(v.intact, "{}", v.reason);
    assert_eq!(v.purged_up_to_seq, cut);
    assert_eq!(v.events, i64::try_from(v.tree_size).unwrap() - cut);
    assert!(v.checkpoints_checked >= 3, "{}", v.checkpoints_checked);
    // Against a checkpoint kept from before the purge, below the cut or above it.
    assert!(t.verify_against(&early.note).await.intact);
    assert!(t.verify_against(&before_checkpoint.note).await.intact);

    // Proofs of the records kept verify against the tree of every record ever appended.
    let latest = t.make_checkpoint().await;
    let mut all = all_before.clone();
    let after: Vec<String> = t
        .sql
        .get()
        .await
        .unwrap()
        .query(
            "SELECT body FROM events WHERE seq > $1 ORDER BY seq",
            &[&i64::try_from(all_before.len()).unwrap()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    all.extend(after);
    assert_eq!(all.len() as u64, latest.tree_size);
    let mut ct: MemoryBackedTree<Sha256, Vec<u8>> = MemoryBackedTree::new();
    for b in &all {
        ct.push(b.clone().into_bytes());
    }
    assert_eq!(latest.root_hash, ct.root().as_bytes().to_vec());
    for e in [&ended, &kept_a[0], &kept_b[3], &fresh[2]] {
        let p = t
            .client
            .get_inclusion_proof(GetInclusionProofRequest {
                record: Some(Record::EventId(e.id.to_string())),
                tree_size: latest.tree_size,
            })
            .await
            .unwrap()
            .into_inner();
        let proof = InclusionProof::<Sha256>::try_from_bytes(p.hashes.concat()).unwrap();
        ct.root()
            .verify_inclusion(&p.body.clone().into_bytes(), p.leaf_index, &proof)
            .unwrap();
        assert!(i64::try_from(p.leaf_index).unwrap() >= cut);
    }
    // A purged record's proof is refused, by its place and by its id.
    for leaf in [0, u64::try_from(cut).unwrap() - 1] {
        let refused = t
            .client
            .get_inclusion_proof(GetInclusionProofRequest {
                record: Some(Record::LeafIndex(leaf)),
                tree_size: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::NotFound);
        assert_eq!(relais_runtime::error_code(&refused), Some("record_purged"));
    }
    let refused = t
        .client
        .get_inclusion_proof(GetInclusionProofRequest {
            record: Some(Record::EventId(old_a[0].id.to_string())),
            tree_size: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);
    // The checkpoint below the cut still extends to the latest: its hashes are kept.
    let c = t
        .client
        .get_consistency_proof(GetConsistencyProofRequest {
            old_size: early.tree_size,
            new_size: latest.tree_size,
        })
        .await
        .unwrap()
        .into_inner();
    let hashes: Vec<tree::Hash> = c.hashes.iter().map(|h| tree::to_hash(h).unwrap()).collect();
    tree::check_consistency(
        &hashes,
        latest.tree_size,
        tree::to_hash(&latest.root_hash).unwrap(),
        early.tree_size,
        tree::to_hash(&early.root_hash).unwrap(),
    )
    .unwrap();

    // Exports: a purged subject has nothing; the straddling connection only its kept record.
    let export = |subject, case: &str| ExportCaseRequest {
        case: case.into(),
        reason: "retention test".into(),
        subject: Some(subject),
        ..ExportCaseRequest::default()
    };
    let none = t
        .client
        .export_case(export(Subject::AccountId("acc-old-a".into()), "CASE-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(none.connections, 0);
    let straddling = t
        .client
        .export_case(export(Subject::ConnectionId("c-straddle".into()), "CASE-2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(straddling.connections, 1);
    let file = proof_file::parse(&straddling.proof_file).unwrap();
    let cut_size = u64::try_from(cut).unwrap();
    assert!(file.records.iter().all(|r| r.leaf_index >= cut_size));
    assert!(
        file.records
            .iter()
            .any(|r| r.body.contains(&ended.id.to_string()))
    );

    // Again: nothing more to purge, nothing recorded.
    let again = purge(&mut t, false).await;
    assert_eq!((again.records, again.connections_removed), (0, 0));
    assert_eq!(again.purged_up_to_seq, cut);
    assert!(again.purge_event_id.is_empty());
    assert_eq!(count(&t, "SELECT count(*) FROM purges").await, 1);
    assert_eq!(
        count(
            &t,
            "SELECT count(*) FROM events WHERE kind = 'trace.purged'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&t, "SELECT count(*) FROM purges WHERE finished_at IS NULL").await,
        0
    );
    // A cut written into the store without its record in the log (to hide the records
    // below it) does not verify, though a checkpoint was signed at that size.
    assert!(v.intact);
    t.tamper(&[&format!(
        "INSERT INTO purges (cut, event_id, older_than, finished_at) \
         VALUES ({}, gen_random_uuid(), now(), now())",
        latest.tree_size
    )])
    .await;
    let forged = t.verify().await;
    assert!(!forged.intact);
    assert!(
        forged.reason.contains("no purge recorded"),
        "{}",
        forged.reason
    );
    t.stop().await;
}

#[tokio::test]
async fn a_purge_while_events_arrive_loses_none_of_them() {
    let mut t = Trace::start_with(config(1, 40)).await;
    let now = base_time();
    let mut old = Vec::new();
    for i in 0..150 {
        old.extend(sign_in(
            &format!("c-old-{i}"),
            &format!("old-{i}"),
            "192.0.2.50",
            month_ago(now, 2) + time::Duration::minutes(i),
        ));
    }
    for chunk in old.chunks(100) {
        append_received_then(&t, chunk).await;
    }
    let cut = i64::try_from(old.len()).unwrap();

    let purging = AtomicBool::new(true);
    let client = t.client.clone();
    let published = std::sync::Mutex::new(Vec::new());
    let (done, ()) = tokio::join!(
        async {
            let mut client = client;
            let r = client.purge(PurgeRequest { dry_run: false }).await;
            purging.store(false, Ordering::SeqCst);
            r.unwrap().into_inner()
        },
        async {
            let mut i = 0;
            while purging.load(Ordering::SeqCst) || i < 3 {
                let events = sign_in(
                    &format!("c-new-{i}"),
                    &format!("new-{i}"),
                    "198.51.100.50",
                    base_time(),
                );
                t.publish(&events.iter().collect::<Vec<_>>()).await;
                published.lock().unwrap().extend(events);
                i += 1;
            }
        }
    );
    let published = published.into_inner().unwrap();
    assert_eq!(done.purged_up_to_seq, cut);
    assert_eq!(done.records, u64::try_from(cut).unwrap());
    assert_eq!(done.connections_removed, 150);
    t.wait_stored(&published.iter().collect::<Vec<_>>()).await;
    // Every event published is stored, once, and folded into its connection.
    let ids: Vec<Uuid> = published.iter().map(|e| e.id).collect();
    let row = t
        .sql
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*), count(DISTINCT event_id) FROM events WHERE event_id = ANY($1)",
            &[&ids],
        )
        .await
        .unwrap();
    let n = i64::try_from(ids.len()).unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (n, n));
    let connections: i64 = count(
        &t,
        "SELECT count(*) FROM connections WHERE connection_id LIKE 'c-new-%' \
         AND account_id LIKE 'acc-new-%'",
    )
    .await;
    assert_eq!(connections, n / 4);
    assert_eq!(
        count(
            &t,
            "SELECT count(*) FROM connections WHERE connection_id LIKE 'c-old-%'"
        )
        .await,
        0
    );
    let v = t.verify().await;
    assert!(v.intact, "{}", v.reason);
    assert_eq!(v.purged_up_to_seq, cut);
    t.stop().await;
}

#[test]
fn a_retention_of_zero_months_and_an_empty_batch_are_refused() {
    let ok = TraceConfig::default();
    assert_eq!(ok.retention_months, 36);
    ok.validate("http://127.0.0.1:8080").unwrap();
    for bad in [
        TraceConfig {
            retention_months: 0,
            ..TraceConfig::default()
        },
        TraceConfig {
            retention_months: 1201,
            ..TraceConfig::default()
        },
        TraceConfig {
            purge_interval_seconds: 0,
            ..TraceConfig::default()
        },
        TraceConfig {
            purge_batch: 0,
            ..TraceConfig::default()
        },
    ] {
        assert!(bad.validate("http://127.0.0.1:8080").is_err());
    }
    // Calendar months, the day clamped: 31 March less one month is 28 or 29 February.
    let march = time::macros::datetime!(2026-03-31 12:00 UTC);
    assert_eq!(
        months_before(march, 1).unwrap(),
        time::macros::datetime!(2026-02-28 12:00 UTC)
    );
    assert_eq!(
        months_before(march, 36).unwrap(),
        time::macros::datetime!(2023-03-31 12:00 UTC)
    );
}

/// The closing note's numbers (not a timed test): `RELAIS_BENCH_MONTHS` months (36) of
/// `RELAIS_BENCH_SIGN_INS` sign-ins a month (500, four records each), then the oldest
/// month purged while events keep arriving through the bus.
#[tokio::test]
#[ignore = "a measurement: cargo nextest run -p relais-trace --run-ignored only purge_benchmark"]
async fn purge_benchmark() {
    let env = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let months = env("RELAIS_BENCH_MONTHS", 36);
    let per_month = env("RELAIS_BENCH_SIGN_INS", 500);
    let mut t = Trace::start_with(config(months - 1, 1000)).await;
    let now = base_time();
    let started = Instant::now();
    for m in (1..=months).rev() {
        let at = month_ago(now, m);
        let mut events = Vec::new();
        for i in 0..per_month {
            events.extend(sign_in(
                &format!("c-{m}-{i}"),
                &format!("{m}-{i}"),
                "192.0.2.77",
                at + time::Duration::seconds(i64::from(i) * 60),
            ));
        }
        for chunk in events.chunks(400) {
            append_received_then(&t, chunk).await;
        }
    }
    // A store that has lived 36 months has its planner statistics: so has this one.
    t.sql
        .get()
        .await
        .unwrap()
        .batch_execute("ANALYZE events; ANALYZE connections")
        .await
        .unwrap();
    let total = count(&t, "SELECT count(*) FROM events").await;
    println!(
        "{months} months × {per_month} sign-ins: {total} records appended in {:?}",
        started.elapsed()
    );
    let purging = AtomicBool::new(true);
    let client = t.client.clone();
    let published = std::sync::Mutex::new(Vec::new());
    let began = Instant::now();
    let ((done, took), ()) = tokio::join!(
        async {
            let mut client = client;
            let r = client.purge(PurgeRequest { dry_run: false }).await;
            let took = began.elapsed();
            purging.store(false, Ordering::SeqCst);
            (r.unwrap().into_inner(), took)
        },
        async {
            let mut i = 0;
            while purging.load(Ordering::SeqCst) {
                let events = sign_in(
                    &format!("c-new-{i}"),
                    &format!("new-{i}"),
                    "198.51.100.77",
                    base_time(),
                );
                t.publish(&events.iter().collect::<Vec<_>>()).await;
                published.lock().unwrap().extend(events);
                i += 1;
            }
        }
    );
    let published = published.into_inner().unwrap();
    t.wait_stored(&published.iter().collect::<Vec<_>>()).await;
    println!(
        "purge of one month: {} records, {} connections in {took:?}; {} events published \
         meanwhile, all stored",
        done.records,
        done.connections_removed,
        published.len()
    );
    // Whole-log verification is bounded by the server's request timeout: a large log may
    // outlast it, which says nothing about the purge.
    let began = Instant::now();
    match t
        .client
        .verify_chain(relais_proto::trace::v1::VerifyChainRequest::default())
        .await
    {
        Ok(v) => {
            let v = v.into_inner();
            assert!(v.intact, "{}", v.reason);
            println!(
                "VerifyChain after: {} records from seq {} in {:?}",
                v.events,
                v.purged_up_to_seq,
                began.elapsed()
            );
        }
        Err(e) => println!(
            "VerifyChain after: not answered in {:?}: {e}",
            began.elapsed()
        ),
    }
    t.stop().await;
}

#[tokio::test]
async fn a_purge_interrupted_is_finished_by_the_next_one_under_its_own_record() {
    let mut t = Trace::start_with(config(1, 1)).await;
    let now = base_time();
    let mut old = Vec::new();
    for i in 0..300 {
        old.extend(sign_in(
            &format!("c-old-{i}"),
            &format!("old-{i}"),
            "192.0.2.60",
            month_ago(now, 2) + time::Duration::minutes(i),
        ));
    }
    for chunk in old.chunks(250) {
        append_received_then(&t, chunk).await;
    }
    let cut = i64::try_from(old.len()).unwrap();
    let below = format!("SELECT count(*) FROM events WHERE seq <= {cut}");

    // The operator's call dropped mid-way: the chunk under way rolls back, the rest stays.
    let mut client = t.client.clone();
    let call = tokio::spawn(async move { client.purge(PurgeRequest { dry_run: false }).await });
    crate::common::wait_until("the purge to be under way", || async {
        let left = count(&t, &below).await;
        left > 0 && left < cut - 8
    })
    .await;
    call.abort();
    let _ = call.await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let left = count(&t, &below).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(count(&t, &below).await, left, "the purge went on");
    assert!(left > 0 && left < cut);
    assert_eq!(
        count(&t, "SELECT count(*) FROM purges WHERE finished_at IS NULL").await,
        1
    );
    // Half done, the log verifies from the cut, and what is left below it is purged
    // all the same.
    let v = t.verify().await;
    assert!(v.intact, "{}", v.reason);
    assert_eq!(v.purged_up_to_seq, cut);
    let refused = t
        .client
        .get_inclusion_proof(GetInclusionProofRequest {
            record: Some(Record::EventId(old.last().unwrap().id.to_string())),
            tree_size: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(relais_runtime::error_code(&refused), Some("record_purged"));
    let last = t.connection("c-old-299").await;
    assert!(last.steps.is_empty(), "{:?}", last.steps);

    // Run again: the same purge is finished, under its one record.
    let again = purge(&mut t, false).await;
    assert_eq!(again.purged_up_to_seq, cut);
    assert_eq!(again.records, u64::try_from(left).unwrap());
    assert!(again.purge_event_id.is_empty());
    assert_eq!(count(&t, &below).await, 0);
    assert_eq!(
        count(
            &t,
            "SELECT count(*) FROM connections WHERE connection_id LIKE 'c-old-%'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &t,
            "SELECT count(*) FROM events WHERE kind = 'trace.purged'"
        )
        .await,
        1
    );
    // The row counts what the run that finished it removed.
    assert_eq!(
        count(
            &t,
            "SELECT records FROM purges WHERE finished_at IS NOT NULL"
        )
        .await,
        left
    );
    assert!(t.verify().await.intact);
    t.stop().await;
}

#[tokio::test]
async fn the_purge_runs_every_interval_on_its_own() {
    let mut t = Trace::start_with(TraceConfig {
        purge_interval_seconds: 1,
        ..config(3, 1000)
    })
    .await;
    let now = base_time();
    let old = sign_in("c-old", "old", "192.0.2.70", month_ago(now, 4));
    append_received_then(&t, &old).await;
    let kept = sign_in("c-kept", "kept", "198.51.100.70", month_ago(now, 2));
    append_received_then(&t, &kept).await;
    crate::common::wait_until("the scheduled purge", || async {
        count(
            &t,
            "SELECT count(*) FROM purges WHERE finished_at IS NOT NULL",
        )
        .await
            == 1
    })
    .await;
    assert_eq!(
        count(
            &t,
            "SELECT count(*) FROM events WHERE connection_id = 'c-old'"
        )
        .await,
        0
    );
    assert_eq!(t.connection("c-kept").await.steps.len(), 4);
    assert!(rows_holding(&t, "192.0.2.70").await.is_empty());
    let v = t.verify().await;
    assert!(v.intact, "{}", v.reason);
    assert_eq!(v.purged_up_to_seq, 4);
    t.stop().await;
}

//! Measurements for the closing notes, not timed tests: run by hand, e.g.
//! `RELAIS_BENCH_SIGN_INS=10000 cargo test --release -p relais-trace --test main -- --ignored ingest_benchmark --nocapture`.

use std::time::Instant;

use relais_bus::Event;
use uuid::Uuid;

use crate::common::{SignIn, Trace, base_time, sign_in, wait_until};

/// Ingest through the outbox, the relay, RabbitMQ and the consumer into the log: every
/// record queued at once, then the time until the last is stored; each stored once and
/// the log intact after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test --release -p relais-trace --test main -- --ignored ingest_benchmark --nocapture"]
async fn ingest_benchmark() {
    let sign_ins: usize = std::env::var("RELAIS_BENCH_SIGN_INS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let mut trace = Trace::start().await;
    let base = base_time();
    let ids: Vec<String> = (0..sign_ins).map(|i| format!("cnx-{i}")).collect();
    let events: Vec<Event> = ids
        .iter()
        .flat_map(|id| {
            sign_in(
                &SignIn {
                    connection_id: id,
                    sp_id: "sp-a",
                    sub_fs: "fs-1",
                    account_id: "acct-1",
                },
                base,
            )
        })
        .collect();
    let started = Instant::now();
    for chunk in events.chunks(500) {
        let refs: Vec<&Event> = chunk.iter().collect();
        trace.publish(&refs).await;
    }
    let queued = started.elapsed();
    let all: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let total = i64::try_from(all.len()).unwrap();
    wait_until("every record to be stored", || async {
        trace.stored_count(&all).await == total
    })
    .await;
    let elapsed = started.elapsed();
    println!(
        "{} records ({} connections) queued in {:.2} s, all stored after {:.2} s: {:.0} records/s",
        all.len(),
        sign_ins,
        queued.as_secs_f64(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64()
    );
    let chain = trace.verify().await;
    assert!(chain.intact, "{chain:?}");
    assert_eq!(chain.events, total);
    trace.stop().await;
}

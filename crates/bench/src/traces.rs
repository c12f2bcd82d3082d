//! Once the load stops: wait for the events to drain through the outbox, RabbitMQ and
//! the trace consumer, then check that every completed sign-in is stored exactly once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::stack::Stack;

/// The records every successful sign-in leaves in the trace store: the sign-in itself
/// (`code_issued`, every earlier step in its timeline), then the SP's token and userinfo
/// requests.
pub const FULL_FLOW: &[&str] = &["code_issued", "token_issued", "userinfo_served"];

/// What waits between the hub and the trace store.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Backlog {
    pub outbox_rows: i64,
    pub trace_queue_ready: u64,
    pub trace_events: i64,
}

pub async fn backlog(stack: &Stack, db: &tokio_postgres::Client) -> Backlog {
    let mut outbox_rows = 0;
    let schemas = db
        .query(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'",
            &[],
        )
        .await
        .unwrap_or_default();
    for row in schemas {
        let Ok(schema) = row.try_get::<_, String>(0) else {
            continue;
        };
        // The name comes from the catalogue; quoted all the same.
        let sql = format!(
            "SELECT count(*) FROM \"{}\".outbox",
            schema.replace('"', "")
        );
        if let Ok(r) = db.query_one(&sql, &[]).await {
            outbox_rows += r.try_get::<_, i64>(0).unwrap_or(0);
        }
    }
    let trace_events = db
        .query_one("SELECT count(*) FROM trace.events", &[])
        .await
        .ok()
        .and_then(|r| r.try_get::<_, i64>(0).ok())
        .unwrap_or(0);
    Backlog {
        outbox_rows,
        trace_queue_ready: stack.bus.trace_queue_depth().await,
        trace_events,
    }
}

/// The verdict on a set of completed sign-ins.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TraceCheck {
    pub expected: u64,
    /// Stored once, outcome `succeeded`, every step exactly once.
    pub complete: u64,
    /// Missing altogether, or missing a step, when the wait ended.
    pub lost: u64,
    /// A step stored twice, or the session in two connections.
    pub doubled: u64,
    pub steps_expected: usize,
    /// From the end of the load until everything was in (or the wait gave up).
    pub drain_seconds: f64,
    pub timed_out: bool,
    pub backlog_at_end_of_load: Backlog,
    /// Events the trace store took in per second while draining (its capacity when a
    /// backlog was left).
    pub drain_events_per_second: f64,
    pub examples: Vec<String>,
}

#[derive(Default)]
struct Seen {
    /// connection id → (outcome, step → count)
    connections: HashMap<String, (String, BTreeMap<String, i64>)>,
}

async fn look(
    db: &tokio_postgres::Client,
    sids: &[String],
) -> anyhow::Result<HashMap<String, Seen>> {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    // Each session once: one signing in several times (single sign-on) would otherwise
    // be read, and its steps counted, once per chunk it falls in.
    let unique: Vec<&String> = sids
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for chunk in unique.chunks(5000) {
        let rows = db
            .query(
                "SELECT c.session_id, c.connection_id, c.outcome, e.kind, count(*) \
                 FROM trace.connections c JOIN trace.events e ON e.connection_id = c.connection_id \
                 WHERE c.session_id = ANY($1) GROUP BY 1, 2, 3, 4",
                &[&chunk],
            )
            .await?;
        for r in rows {
            let sid: String = r.try_get(0)?;
            let connection: String = r.try_get(1)?;
            let outcome: String = r.try_get(2)?;
            let kind: String = r.try_get(3)?;
            let n: i64 = r.try_get(4)?;
            let entry = seen
                .entry(sid)
                .or_default()
                .connections
                .entry(connection)
                .or_insert_with(|| (outcome, BTreeMap::new()));
            let step = kind.trim_start_matches("connection.").to_string();
            *entry.1.entry(step).or_default() += n;
        }
    }
    Ok(seen)
}

/// A session appears in `sids` once per sign-in it served (single sign-on signs in
/// several times from one session): it must hold that many connections, each complete.
fn judge(sids: &[String], steps: &[&str], seen: &HashMap<String, Seen>) -> TraceCheck {
    let mut check = TraceCheck {
        expected: u64::try_from(sids.len()).unwrap_or(0),
        steps_expected: steps.len(),
        ..TraceCheck::default()
    };
    let mut sign_ins: BTreeMap<&str, u64> = BTreeMap::new();
    for sid in sids {
        *sign_ins.entry(sid.as_str()).or_default() += 1;
    }
    let example = |check: &mut TraceCheck, text: String| {
        if check.examples.len() < 5 {
            check.examples.push(text);
        }
    };
    for (sid, expected) in sign_ins {
        let Some(s) = seen.get(sid) else {
            check.lost += expected;
            example(&mut check, format!("session {sid}: no connection"));
            continue;
        };
        // A sign-in that failed after its code (token or userinfo refused, cut at the
        // end) leaves an incomplete connection the bench did not count: not a doubling.
        let mut complete = 0u64;
        let mut incomplete = 0u64;
        for (outcome, counts) in s.connections.values() {
            let twice = steps
                .iter()
                .any(|k| counts.get(*k).copied().unwrap_or(0) > 1);
            let missing = steps
                .iter()
                .any(|k| counts.get(*k).copied().unwrap_or(0) == 0);
            if twice {
                check.doubled += 1;
                example(
                    &mut check,
                    format!("session {sid}: a step twice: {counts:?}"),
                );
            } else if missing || outcome != "succeeded" {
                incomplete += 1;
            } else {
                complete += 1;
            }
        }
        if complete > expected {
            check.doubled += complete - expected;
            example(
                &mut check,
                format!("session {sid}: {complete} complete connections for {expected} sign-ins"),
            );
        } else if complete < expected {
            check.lost += expected - complete;
            example(
                &mut check,
                format!(
                    "session {sid}: {complete} complete connections ({incomplete} incomplete) for {expected} sign-ins"
                ),
            );
        }
        check.complete += complete.min(expected);
    }
    check
}

/// Waits (up to `timeout`) until every sign-in in `sids` is stored with `steps` and
/// nothing is left in the outboxes or the queue, then judges.
pub async fn check(
    stack: &Stack,
    db: &tokio_postgres::Client,
    sids: &[String],
    steps: &[&str],
    timeout: Duration,
) -> anyhow::Result<TraceCheck> {
    let started = Instant::now();
    let at_end = backlog(stack, db).await;
    let mut timed_out = false;
    let verdict = loop {
        let seen = look(db, sids).await?;
        let verdict = judge(sids, steps, &seen);
        let settled = verdict.complete + verdict.doubled >= verdict.expected;
        if settled {
            let b = backlog(stack, db).await;
            if b.outbox_rows == 0 && b.trace_queue_ready == 0 {
                break verdict;
            }
        }
        if started.elapsed() >= timeout {
            timed_out = true;
            break verdict;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let drain_seconds = started.elapsed().as_secs_f64();
    let after = backlog(stack, db).await;
    let drained = (after.trace_events - at_end.trace_events) as f64;
    Ok(TraceCheck {
        drain_seconds,
        timed_out,
        drain_events_per_second: if drain_seconds > 0.5 {
            drained / drain_seconds
        } else {
            0.0
        },
        backlog_at_end_of_load: at_end,
        ..verdict
    })
}

/// Waits until nothing moves between the hub and the trace store (outboxes and queue
/// empty, event count steady), or until `until`.
pub async fn quiet(stack: &Stack, db: &tokio_postgres::Client, until: Instant) -> bool {
    let mut last = -1;
    while Instant::now() < until {
        let b = backlog(stack, db).await;
        if b.outbox_rows == 0 && b.trace_queue_ready == 0 && b.trace_events == last {
            return true;
        }
        last = b.trace_events;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// The trace service's own check of its log (the records against the tree, its head and checkpoints).
#[derive(Clone, Debug, Serialize)]
pub struct Chain {
    pub intact: bool,
    pub events: i64,
}

pub async fn verify_chain(stack: &Stack) -> anyhow::Result<Chain> {
    use relais_proto::trace::v1::VerifyChainRequest;
    use relais_proto::trace::v1::trace_client::TraceClient;
    let channel = relais_runtime::LocalServices::new(&stack.grpc)
        .for_service(relais_runtime::Role::Operator)
        .channel(
            relais_runtime::Role::Trace,
            &relais_runtime::grpc_url(stack.trace_addr),
        )?;
    let mut client = TraceClient::new(channel);
    let answer = client
        .verify_chain(VerifyChainRequest::default())
        .await?
        .into_inner();
    Ok(Chain {
        intact: answer.intact,
        events: answer.events,
    })
}

//! CPU seconds and resident memory of the processes (or, inside the bench process, the
//! runtimes' threads) under load, read from /proc while a point runs.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const PERIOD: Duration = Duration::from_millis(500);

/// Name of the usage rows splitting the bench database's backends by `application_name`
/// (not starting with `postgres`, so that sums over the cluster count them once).
pub const PG_APP_PREFIX: &str = "  PostgreSQL backends of ";

/// Thread-name prefixes of the bench's runtimes.
pub const HUB_THREADS: &str = "bench-hub";
pub const IDP_THREADS: &str = "bench-idp";
pub const LOAD_THREADS: &str = "bench-load";
/// The main thread's name (it drives the load generator's runtime).
const MAIN_THREAD: &str = "relais-bench";

/// What is watched under one name.
#[derive(Clone, Debug)]
pub enum Source {
    Pid(u32),
    /// Threads of this process whose name starts with one of these.
    OwnThreads(Vec<&'static str>),
    /// Backends connected to the bench database.
    PgBackends(String),
    /// Every other `postgres` process: background writers and other clients' backends.
    PgOther(String),
    /// RabbitMQ's Erlang VM.
    Beam,
}

#[derive(Clone, Debug)]
pub struct Watch {
    pub name: String,
    pub source: Source,
}

impl Watch {
    pub fn new(name: impl Into<String>, source: Source) -> Watch {
        Watch {
            name: name.into(),
            source,
        }
    }
}

/// One group's usage over the sampled window.
#[derive(Clone, Debug, Serialize)]
pub struct Usage {
    pub name: String,
    pub cpu_seconds: f64,
    /// CPU seconds per second of wall time: cores kept busy.
    pub cores: f64,
    /// Highest sampled sum of resident memory less shared memory, MB (none for threads).
    pub rss_peak_mb: Option<f64>,
    /// The kernel's high-water mark of a single process, MB.
    pub hwm_mb: Option<f64>,
    pub processes: usize,
}

#[derive(Default)]
struct Tracked {
    /// First and last CPU ticks seen per pid or tid.
    ticks: HashMap<u32, (u64, u64)>,
    rss_peak_kb: Option<u64>,
    hwm_kb: Option<u64>,
}

/// What a sampler saw.
#[derive(Clone, Debug, Default)]
pub struct Sampled {
    pub usage: Vec<Usage>,
    /// Bench-database backends not idle, on average per sample, by state and wait event
    /// (`active:CPU` is running; `active:IO:WALSync` waits for a commit's flush…).
    pub pg_activity: BTreeMap<String, f64>,
    /// What PostgreSQL counted over the window: the bench database's commits and
    /// rollbacks, and the cluster's WAL records, bytes, flushes and full-page images (`pg_stat_wal`).
    pub pg_counters: BTreeMap<String, f64>,
}

/// The counters of [`Sampled::pg_counters`] now.
async fn pg_counters(admin: &tokio_postgres::Client, db: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if let Ok(r) = admin
        .query_one(
            "SELECT xact_commit::float8, xact_rollback::float8 FROM pg_stat_database \
             WHERE datname = $1",
            &[&db],
        )
        .await
    {
        out.insert("commits".into(), r.try_get(0).unwrap_or(0.0));
        out.insert("rollbacks".into(), r.try_get(1).unwrap_or(0.0));
    }
    if let Ok(r) = admin
        .query_one(
            "SELECT wal_records::float8, wal_bytes::float8, wal_sync::float8, wal_fpi::float8 \
             FROM pg_stat_wal",
            &[],
        )
        .await
    {
        out.insert("wal_records".into(), r.try_get(0).unwrap_or(0.0));
        out.insert("wal_bytes".into(), r.try_get(1).unwrap_or(0.0));
        out.insert("wal_syncs".into(), r.try_get(2).unwrap_or(0.0));
        // Full-page images: what a checkpoint makes the next change of each page write.
        out.insert("wal_full_pages".into(), r.try_get(3).unwrap_or(0.0));
    }
    out
}

pub struct Sampler {
    stop: CancellationToken,
    task: JoinHandle<Sampled>,
}

impl Sampler {
    /// Samples `watches` from `from` (now if past) until `until` or [`Sampler::finish`].
    pub fn start(
        watches: Vec<Watch>,
        admin: tokio_postgres::Client,
        from: Instant,
        until: Instant,
    ) -> Sampler {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(from) => {}
                _ = token.cancelled() => {}
            }
            let started = Instant::now();
            let clock = clock_ticks().await;
            let beam = pids_named("beam.smp");
            let mut tracked: Vec<Tracked> = watches.iter().map(|_| Tracked::default()).collect();
            let mut by_app: BTreeMap<String, Tracked> = BTreeMap::new();
            let db = watches.iter().find_map(|w| match &w.source {
                Source::PgBackends(db) => Some(db.clone()),
                _ => None,
            });
            let mut activity: BTreeMap<String, u64> = BTreeMap::new();
            let counters_before = match &db {
                Some(db) => pg_counters(&admin, db).await,
                None => BTreeMap::new(),
            };
            let mut samples = 0u64;
            let mut first = true;
            loop {
                sample(&watches, &mut tracked, &mut by_app, &admin, &beam, first).await;
                first = false;
                if let Some(db) = &db {
                    pg_activity(&admin, db, &mut activity).await;
                    samples += 1;
                }
                let next = (Instant::now() + PERIOD).min(until);
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {}
                    _ = token.cancelled() => break,
                }
                if Instant::now() >= until {
                    break;
                }
            }
            sample(&watches, &mut tracked, &mut by_app, &admin, &beam, false).await;
            let pg_counters = match &db {
                Some(db) => pg_counters(&admin, db)
                    .await
                    .into_iter()
                    .map(|(k, v)| {
                        let before = counters_before.get(&k).copied().unwrap_or(0.0);
                        (k, v - before)
                    })
                    .collect(),
                None => BTreeMap::new(),
            };
            let wall = started.elapsed().as_secs_f64().max(1e-3);
            let per_sample = samples.max(1) as f64;
            let pg_activity = activity
                .into_iter()
                .map(|(k, n)| (k, n as f64 / per_sample))
                .collect();
            let usage_of = |name: String, t: Tracked| {
                let ticks: u64 = t.ticks.values().map(|(a, b)| b.saturating_sub(*a)).sum();
                let cpu = ticks as f64 / clock;
                Usage {
                    name,
                    cpu_seconds: cpu,
                    cores: cpu / wall,
                    rss_peak_mb: t.rss_peak_kb.map(|kb| kb as f64 / 1024.0),
                    hwm_mb: t.hwm_kb.map(|kb| kb as f64 / 1024.0),
                    processes: t.ticks.len(),
                }
            };
            let mut usage: Vec<Usage> = watches
                .iter()
                .zip(tracked)
                .map(|(w, t)| usage_of(w.name.clone(), t))
                .collect();
            // The bench database's backends again, split by the service that opened them.
            usage.extend(
                by_app
                    .into_iter()
                    .map(|(app, t)| usage_of(format!("{PG_APP_PREFIX}{app}"), t)),
            );
            Sampled {
                usage,
                pg_activity,
                pg_counters,
            }
        });
        Sampler { stop, task }
    }

    pub async fn finish(self) -> Sampled {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

async fn clock_ticks() -> f64 {
    let out = tokio::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .await;
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

async fn sample(
    watches: &[Watch],
    tracked: &mut [Tracked],
    by_app: &mut BTreeMap<String, Tracked>,
    admin: &tokio_postgres::Client,
    beam: &[u32],
    first: bool,
) {
    let mut backends: HashMap<String, HashMap<u32, String>> = HashMap::new();
    for w in watches {
        if let Source::PgBackends(db) | Source::PgOther(db) = &w.source
            && !backends.contains_key(db)
        {
            backends.insert(db.clone(), pg_backends(admin, db).await);
        }
    }
    let bench_db = watches.iter().find_map(|w| match &w.source {
        Source::PgBackends(db) => Some(db),
        _ => None,
    });
    if let Some(apps) = bench_db.and_then(|db| backends.get(db)) {
        for (pid, app) in apps {
            if let Some(ticks) = stat_ticks(&format!("/proc/{pid}")) {
                let base = if first { ticks } else { 0 };
                let t = by_app.entry(app.clone()).or_default();
                t.ticks.entry(*pid).or_insert((base, ticks)).1 = ticks;
            }
        }
    }
    for (w, t) in watches.iter().zip(tracked.iter_mut()) {
        let reading = match &w.source {
            Source::Pid(pid) => {
                let path = format!("/proc/{pid}");
                Reading {
                    cpu: stat_ticks(&path).map(|c| (*pid, c)).into_iter().collect(),
                    memory: memory_kb(&path),
                }
            }
            Source::OwnThreads(prefixes) => Reading {
                cpu: own_threads(prefixes),
                memory: None,
            },
            Source::PgBackends(db) => {
                let pids: Vec<u32> = backends
                    .get(db)
                    .map(|s| s.keys().copied().collect())
                    .unwrap_or_default();
                processes(&pids)
            }
            Source::PgOther(db) => {
                let ours = backends.get(db);
                let pids: Vec<u32> = pids_named("postgres")
                    .into_iter()
                    .filter(|p| !ours.is_some_and(|o| o.contains_key(p)))
                    .collect();
                processes(&pids)
            }
            Source::Beam => processes(beam),
        };
        for (id, ticks) in reading.cpu {
            // A process that appears mid-window started after the window: its time counts from 0.
            let base = if first { ticks } else { 0 };
            let entry = t.ticks.entry(id).or_insert((base, ticks));
            entry.1 = ticks;
        }
        if let Some((rss, hwm)) = reading.memory {
            t.rss_peak_kb = Some(t.rss_peak_kb.unwrap_or(0).max(rss));
            if let Some(hwm) = hwm {
                t.hwm_kb = Some(t.hwm_kb.unwrap_or(0).max(hwm));
            }
        }
    }
}

/// CPU ticks per pid or tid; resident memory and high-water mark in kB.
struct Reading {
    cpu: Vec<(u32, u64)>,
    memory: Option<(u64, Option<u64>)>,
}

/// A group of processes: the high-water mark only when it is a single process.
fn processes(pids: &[u32]) -> Reading {
    let mut cpu = Vec::new();
    let mut rss = 0;
    for pid in pids {
        let path = format!("/proc/{pid}");
        if let Some(c) = stat_ticks(&path) {
            cpu.push((*pid, c));
        }
        if let Some((kb, _)) = memory_kb(&path) {
            rss += kb;
        }
    }
    let hwm = if pids.len() == 1 {
        memory_kb(&format!("/proc/{}", pids[0])).and_then(|(_, h)| h)
    } else {
        None
    };
    Reading {
        cpu,
        memory: Some((rss, hwm)),
    }
}

async fn pg_activity(admin: &tokio_postgres::Client, db: &str, counts: &mut BTreeMap<String, u64>) {
    let rows = admin
        .query(
            "SELECT coalesce(state, ''), coalesce(wait_event_type, 'CPU'), coalesce(wait_event, '') \
             FROM pg_stat_activity WHERE datname = $1 AND state IS DISTINCT FROM 'idle' \
             AND backend_type = 'client backend'",
            &[&db],
        )
        .await
        .unwrap_or_default();
    for r in rows {
        let part = |i: usize| r.try_get::<_, String>(i).unwrap_or_default();
        let key = [part(0), part(1), part(2)]
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(":");
        *counts.entry(key).or_default() += 1;
    }
}

/// The bench database's backends and the `application_name` each was opened with.
async fn pg_backends(admin: &tokio_postgres::Client, db: &str) -> HashMap<u32, String> {
    let rows = admin
        .query(
            "SELECT pid, coalesce(nullif(application_name, ''), 'unnamed') \
             FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .await
        .unwrap_or_default();
    rows.iter()
        .filter_map(|r| {
            let pid = u32::try_from(r.try_get::<_, i32>(0).ok()?).ok()?;
            Some((pid, r.try_get::<_, String>(1).ok()?))
        })
        .collect()
}

/// utime + stime of `/proc/<pid>[/task/<tid>]/stat`, in clock ticks.
fn stat_ticks(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("{path}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn comm_of_stat(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("{path}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    Some(text.get(open + 1..close)?.to_string())
}

/// Resident memory less shared memory, and the high-water mark, in kB.
fn memory_kb(path: &str) -> Option<(u64, Option<u64>)> {
    let text = std::fs::read_to_string(format!("{path}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    let rss = field("VmRSS:")?;
    let shared = field("RssShmem:").unwrap_or(0);
    Some((rss.saturating_sub(shared), field("VmHWM:")))
}

fn own_threads(prefixes: &[&str]) -> Vec<(u32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let path = format!("/proc/self/task/{tid}");
            let comm = comm_of_stat(&path)?;
            prefixes.iter().any(|p| comm.starts_with(p)).then_some(())?;
            Some((tid, stat_ticks(&path)?))
        })
        .collect()
}

fn pids_named(name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .collect()
}

/// The groups of one stack: the bench process and its runtimes, the hub's children,
/// PostgreSQL and RabbitMQ.
pub fn watches(children: &[(String, u32)], in_process_hub: bool, db: &str) -> Vec<Watch> {
    let me = std::process::id();
    let mut w = Vec::new();
    if in_process_hub {
        w.push(Watch::new(
            "bench process (load generator + hub + demo IdP)",
            Source::Pid(me),
        ));
        w.push(Watch::new(
            "  hub threads",
            Source::OwnThreads(vec![HUB_THREADS]),
        ));
    } else {
        w.push(Watch::new(
            "bench process (load generator + demo IdP)",
            Source::Pid(me),
        ));
    }
    w.push(Watch::new(
        "  demo IdP threads",
        Source::OwnThreads(vec![IDP_THREADS]),
    ));
    w.push(Watch::new(
        "  load generator threads",
        Source::OwnThreads(vec![LOAD_THREADS, MAIN_THREAD]),
    ));
    for (name, pid) in children {
        w.push(Watch::new(name.clone(), Source::Pid(*pid)));
    }
    w.push(Watch::new(
        "postgres backends (bench database)",
        Source::PgBackends(db.to_string()),
    ));
    w.push(Watch::new(
        "postgres other processes (shared server)",
        Source::PgOther(db.to_string()),
    ));
    w.push(Watch::new("rabbitmq (beam, shared broker)", Source::Beam));
    w
}

//! Results: the JSON document under `bench/results/`, and the Markdown tables printed at
//! the end (and pasted into the README).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::load::Latency;
use crate::procs::{PG_APP_PREFIX, Usage};
use crate::traces::{Chain, TraceCheck};

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub memory_mb: u64,
    pub cpu_model: String,
    pub kernel: String,
    pub postgres: String,
    /// 1-, 5- and 15-minute load averages when the run started (the machine is shared).
    pub load_average_at_start: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub warmup_seconds: f64,
    pub warmup_max_seconds: f64,
    pub duration_seconds: f64,
    pub token_prep_seconds: f64,
    pub token_concurrency: usize,
    pub idps_per_sp: usize,
    pub rs256_every: usize,
    pub pool_size: usize,
    pub notes: Vec<String>,
}

/// One point of the sweep: a mode, a registry, a number of virtual users.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub mode: String,
    pub sps: usize,
    pub idps: usize,
    pub users: usize,
    /// Sign-ins by single sign-on from each virtual user's hub session.
    #[serde(default)]
    pub sso: bool,
    pub seconds: f64,
    /// Until every virtual user had completed a sign-in (at least the minimum).
    pub warmup_seconds: f64,
    pub completed: u64,
    pub flows_per_second: f64,
    pub per_second: Vec<u64>,
    pub flow: Latency,
    pub steps: BTreeMap<String, Latency>,
    pub errors: BTreeMap<String, u64>,
    pub error_samples: BTreeMap<String, String>,
    pub warmup_completed: u64,
    pub tail_completed: u64,
    pub cut_at_end: u64,
    pub processes: Vec<Usage>,
    pub pg_activity: BTreeMap<String, f64>,
    /// PostgreSQL's counters over the window (commits, WAL records, bytes, flushes).
    pub pg_counters: BTreeMap<String, f64>,
    pub traces: TraceCheck,
    pub load_average_before: String,
}

/// The token endpoint alone.
#[derive(Clone, Debug, Serialize)]
pub struct TokenPoint {
    pub mode: String,
    pub sps: usize,
    pub idps: usize,
    pub concurrency: usize,
    pub codes_prepared: usize,
    /// Of which for SPs signing RS256.
    pub rs256_codes: usize,
    pub prep_seconds: f64,
    pub prep_errors: BTreeMap<String, u64>,
    pub ok: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub latency: Latency,
    pub errors: BTreeMap<String, u64>,
    pub error_samples: BTreeMap<String, String>,
    pub unused_codes: u64,
    pub quiet_before: bool,
    pub processes: Vec<Usage>,
    pub pg_activity: BTreeMap<String, f64>,
    pub pg_counters: BTreeMap<String, f64>,
    pub traces: TraceCheck,
}

/// One hub started, seeded and stopped.
#[derive(Clone, Debug, Serialize)]
pub struct StackSummary {
    pub mode: String,
    pub sps: usize,
    pub idps: usize,
    pub setup_seconds: f64,
    pub chain: Option<Chain>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Micro {
    pub name: String,
    pub mean_ns: f64,
    pub median_ns: f64,
    pub per_second: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub date: String,
    pub commit: String,
    pub dirty: bool,
    pub smoke: bool,
    pub machine: Machine,
    pub settings: Settings,
    pub stacks: Vec<StackSummary>,
    pub points: Vec<Point>,
    pub token: Vec<TokenPoint>,
    pub micro: Vec<Micro>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub async fn machine(db: &tokio_postgres::Client) -> Machine {
    let meminfo = read("/proc/meminfo");
    let memory_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let postgres = db
        .query_one("SHOW server_version", &[])
        .await
        .ok()
        .and_then(|r| r.try_get::<_, String>(0).ok())
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_mb: memory_kb / 1024,
        cpu_model,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        postgres,
        load_average_at_start: load_average(),
    }
}

pub fn load_average() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The short commit and whether the work tree differs from it (read-only git calls).
pub fn commit() -> (String, bool) {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
    };
    let commit = run(&["rev-parse", "--short=12", "HEAD"])
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.trim().is_empty());
    (commit, dirty)
}

pub fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

/// Criterion's estimates under `dir` (`target/criterion/<group>/<bench>/new/estimates.json`).
pub fn criterion(dir: &Path) -> Vec<Micro> {
    let mut out = Vec::new();
    let Ok(groups) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut groups: Vec<PathBuf> = groups.filter_map(Result::ok).map(|e| e.path()).collect();
    groups.sort();
    for group in groups {
        let Ok(benches) = std::fs::read_dir(&group) else {
            continue;
        };
        let mut benches: Vec<PathBuf> = benches.filter_map(Result::ok).map(|e| e.path()).collect();
        benches.sort();
        for bench in benches {
            let file = bench.join("new").join("estimates.json");
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let point = |name: &str| {
                v.get(name)
                    .and_then(|e| e.get("point_estimate"))
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
            };
            let name = |p: &Path| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("")
                    .to_string()
            };
            let mean = point("mean");
            out.push(Micro {
                name: format!("{}/{}", name(&group), name(&bench)),
                mean_ns: mean,
                median_ns: point("median"),
                per_second: if mean > 0.0 { 1e9 / mean } else { 0.0 },
            });
        }
    }
    out
}

fn usage<'a>(p: &'a [Usage], name: &str) -> Option<&'a Usage> {
    p.iter().find(|u| u.name == name)
}

/// The hub's cores and peak memory: its processes, or its threads when in-process.
fn hub_cost(mode: &str, p: &[Usage]) -> (f64, Option<f64>) {
    match mode {
        "in-process" => {
            let cores = usage(p, "  hub threads").map_or(0.0, |u| u.cores);
            let rss = p.first().and_then(|u| u.rss_peak_mb);
            (cores, rss)
        }
        _ => {
            let hub: Vec<&Usage> = p.iter().filter(|u| u.name.starts_with("relais ")).collect();
            let cores = hub.iter().map(|u| u.cores).sum();
            let rss = hub.iter().filter_map(|u| u.rss_peak_mb).sum();
            (cores, Some(rss))
        }
    }
}

fn pg_cores(p: &[Usage]) -> f64 {
    usage(p, "postgres backends (bench database)").map_or(0.0, |u| u.cores)
}

fn mb(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.0}"))
}

fn traces(t: &TraceCheck) -> String {
    let mut s = format!("{}/{}", t.complete, t.expected);
    if t.lost > 0 || t.doubled > 0 {
        let _ = write!(s, " (lost {}, doubled {})", t.lost, t.doubled);
    }
    if t.timed_out {
        s.push_str(" timeout");
    }
    s
}

/// The short tables printed at the end.
pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(
        s,
        "Measured {} at {}{} on {} × {} ({} MB RAM, Linux {}, PostgreSQL {}), load average at start {}; \
         PostgreSQL, RabbitMQ, the demo IdP and the load generator on the same machine. \
         Each point: a warm-up of {} s or more, until every virtual user completed a sign-in \
         (at most {} s), then {} s measured.\n",
        r.date,
        r.commit,
        if r.dirty {
            " (uncommitted changes)"
        } else {
            ""
        },
        m.nproc,
        m.cpu_model,
        m.memory_mb,
        m.kernel,
        m.postgres,
        m.load_average_at_start,
        r.settings.warmup_seconds,
        r.settings.warmup_max_seconds,
        r.settings.duration_seconds,
    );
    let _ = writeln!(
        s,
        "| mode | SPs | IdPs | VUs | sign-ins/s | p50 ms | p95 ms | p99 ms | max ms | errors | traces stored | drain s | hub cores | hub peak MB | PG cores |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"
    );
    for p in &r.points {
        let (cores, rss) = hub_cost(&p.mode, &p.processes);
        let errors: u64 = p.errors.values().sum();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {}{} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {:.1} | {:.2} | {} | {:.2} |",
            p.mode,
            p.sps,
            p.idps,
            p.users,
            if p.sso { " SSO" } else { "" },
            p.flows_per_second,
            p.flow.p50,
            p.flow.p95,
            p.flow.p99,
            p.flow.max,
            errors,
            traces(&p.traces),
            p.traces.drain_seconds,
            cores,
            mb(rss),
            pg_cores(&p.processes),
        );
    }
    let _ = writeln!(
        s,
        "\nCost per completed sign-in (CPU ms; PostgreSQL: every process of the cluster; WAL and flushes cluster-wide):\n"
    );
    let _ = writeln!(
        s,
        "| mode | SPs | VUs | hub | PostgreSQL | RabbitMQ | whole hub | commits | WAL KB | WAL flushes |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for p in &r.points {
        let n = p.completed.max(1) as f64;
        let window = p.seconds.max(1e-3);
        let (hub_cores, _) = hub_cost(&p.mode, &p.processes);
        let ms = |cores: f64| cores * window * 1000.0 / p.completed.max(1) as f64;
        let pg: f64 = p
            .processes
            .iter()
            .filter(|u| u.name.starts_with("postgres"))
            .map(|u| u.cores)
            .sum();
        let mq = usage(&p.processes, "rabbitmq (beam, shared broker)").map_or(0.0, |u| u.cores);
        let counter = |k: &str| p.pg_counters.get(k).copied().unwrap_or(0.0) / n;
        let _ = writeln!(
            s,
            "| {} | {} | {}{} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} |",
            p.mode,
            p.sps,
            p.users,
            if p.sso { " SSO" } else { "" },
            ms(hub_cores),
            ms(pg),
            ms(mq),
            ms(hub_cores + pg + mq),
            counter("commits"),
            counter("wal_bytes") / 1024.0,
            counter("wal_syncs"),
        );
    }
    let apps: std::collections::BTreeSet<&str> = r
        .points
        .iter()
        .flat_map(|p| p.processes.iter())
        .filter_map(|u| u.name.strip_prefix(PG_APP_PREFIX))
        .collect();
    if !apps.is_empty() {
        let _ = writeln!(
            s,
            "\nPostgreSQL backends per completed sign-in by the service that opened them (CPU ms):\n"
        );
        let _ = write!(s, "| mode | SPs | VUs |");
        for app in &apps {
            let _ = write!(s, " {app} |");
        }
        let _ = write!(s, "\n|---|---:|---:|");
        for _ in &apps {
            s.push_str("---:|");
        }
        s.push('\n');
        for p in &r.points {
            let per = p.seconds.max(1e-3) * 1000.0 / p.completed.max(1) as f64;
            let _ = write!(
                s,
                "| {} | {} | {}{} |",
                p.mode,
                p.sps,
                p.users,
                if p.sso { " SSO" } else { "" }
            );
            for app in &apps {
                let name = format!("{}{app}", PG_APP_PREFIX);
                let cores = usage(&p.processes, &name).map_or(0.0, |u| u.cores);
                let _ = write!(s, " {:.2} |", cores * per);
            }
            s.push('\n');
        }
    }
    if let Some(p) = r.points.iter().filter(|p| !p.sso).max_by(|a, b| {
        a.flows_per_second
            .partial_cmp(&b.flows_per_second)
            .unwrap_or(std::cmp::Ordering::Equal)
    }) {
        let _ = writeln!(
            s,
            "\nPer hop at the best point ({}, {} SPs, {} VUs), ms:\n",
            p.mode, p.sps, p.users
        );
        let _ = writeln!(s, "| hop | p50 | p95 | p99 | max |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        for (name, l) in &p.steps {
            let _ = writeln!(
                s,
                "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
                l.p50, l.p95, l.p99, l.max
            );
        }
    }
    if !r.token.is_empty() {
        let _ = writeln!(s, "\nToken endpoint alone (codes prepared in advance):\n");
        let _ = writeln!(
            s,
            "| mode | SPs | concurrency | codes | requests/s | p50 ms | p99 ms | errors | traces stored | hub cores |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|");
        for t in &r.token {
            let errors: u64 = t.errors.values().sum();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {} | {} | {:.2} |",
                t.mode,
                t.sps,
                t.concurrency,
                t.codes_prepared,
                t.requests_per_second,
                t.latency.p50,
                t.latency.p99,
                errors,
                traces(&t.traces),
                hub_cost(&t.mode, &t.processes).0,
            );
        }
    }
    if !r.micro.is_empty() {
        let _ = writeln!(s, "\nMicrobenchmarks (criterion, one core):\n");
        let _ = writeln!(s, "| bench | mean µs | per second |");
        let _ = writeln!(s, "|---|---:|---:|");
        for m in &r.micro {
            let _ = writeln!(
                s,
                "| {} | {:.2} | {:.0} |",
                m.name,
                m.mean_ns / 1000.0,
                m.per_second
            );
        }
    }
    let failed: Vec<&StackSummary> = r.stacks.iter().filter(|x| x.error.is_some()).collect();
    for f in failed {
        let _ = writeln!(
            s,
            "\nStack {} {}x{} failed: {}",
            f.mode,
            f.sps,
            f.idps,
            f.error.as_deref().unwrap_or("")
        );
    }
    s
}

/// Writes `<dir>/<date>-<commit>.json` and `.md` (or the file asked for).
pub fn write(r: &Results, dir: &Path, file: Option<&Path>) -> anyhow::Result<PathBuf> {
    let json = match file {
        Some(f) => f.to_path_buf(),
        None => {
            std::fs::create_dir_all(dir)?;
            dir.join(format!("{}-{}.json", r.date, r.commit))
        }
    };
    std::fs::write(&json, serde_json::to_string_pretty(r)? + "\n")?;
    std::fs::write(json.with_extension("md"), markdown(r))?;
    Ok(json)
}

//! `relais-bench`: how many complete brokered sign-ins per second Relais carries, where
//! the time goes, what each process costs, and whether every sign-in reached the proof
//! store exactly once. It starts a hub with its own database and exchange (in-process,
//! as one `relais all` process, or one process per service), the demo IdP in-process,
//! seeds N SPs and M IdPs, and drives virtual users through the whole flow (SP redirect,
//! chooser, IdP, callback, token, userinfo) for a warm-up then a measured window; then
//! the token endpoint alone on codes prepared in advance. Results go to
//! `bench/results/<date>-<commit>.json` and a Markdown table. Loopback only, bounded in
//! time; `--smoke` runs a few seconds of it to prove the harness works.

mod flow;
mod load;
mod options;
mod procs;
mod report;
mod stack;
mod traces;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use tokio::time::Instant;

use crate::load::Latency;
use crate::options::CODE_WINDOW;
use crate::options::{Mode, Options, Registry, USAGE};
use crate::report::{Point, Results, Settings, StackSummary, TokenPoint};
use crate::stack::{Runtimes, Spec, Stack};
use crate::traces::FULL_FLOW;

/// Longest wait for a fresh hub to complete its first sign-in (seeding 10,000 SPs).
const READY_TIMEOUT: Duration = Duration::from_secs(180);

fn runtime(name: &'static str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(name)
        .enable_all()
        .build()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("relais-bench: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtimes = (
        runtime(procs::LOAD_THREADS),
        runtime(procs::HUB_THREADS),
        runtime(procs::IDP_THREADS),
    );
    let (Ok(load), Ok(hub), Ok(idp)) = runtimes else {
        eprintln!("relais-bench: cannot start the runtimes");
        return ExitCode::FAILURE;
    };
    let handles = Runtimes {
        hub: hub.handle().clone(),
        idp: idp.handle().clone(),
    };
    let outcome = load.block_on(async {
        tokio::select! {
            r = run(options, handles) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; stacks removed")),
        }
    });
    hub.shutdown_timeout(Duration::from_secs(2));
    idp.shutdown_timeout(Duration::from_secs(2));
    load.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "relais-bench: some sign-ins failed to complete or to be traced exactly once"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("relais-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every stack of the sweep; true when each point completed sign-ins and every one
/// of them was traced exactly once.
async fn run(options: Options, runtimes: Runtimes) -> anyhow::Result<bool> {
    let admin = stack::admin_client().await?;
    let (commit, dirty) = match &options.commit {
        Some(c) => (c.clone(), false),
        None => report::commit(),
    };
    let mut results = Results {
        date: report::today(),
        commit,
        dirty,
        smoke: options.smoke,
        machine: report::machine(&admin).await,
        settings: Settings {
            warmup_seconds: options.warmup.as_secs_f64(),
            warmup_max_seconds: options.warmup_max.as_secs_f64(),
            duration_seconds: options.duration.as_secs_f64(),
            token_prep_seconds: options.token_prep.as_secs_f64(),
            token_concurrency: options.token_concurrency,
            idps_per_sp: options.idps_per_sp,
            rs256_every: options.rs256_every,
            pool_size: options.pool_size,
            notes: notes(),
        },
        stacks: Vec::new(),
        points: Vec::new(),
        token: Vec::new(),
        micro: Vec::new(),
    };
    let mut good = true;
    for mode in &options.modes {
        for registry in &options.registries {
            let spec = Spec {
                mode: *mode,
                registry: *registry,
                idps_per_sp: options.idps_per_sp,
                rs256_every: options.rs256_every,
                pool_size: options.pool_size,
                relais_bin: options.relais_bin.clone(),
            };
            eprintln!(
                "== {} hub, {} SPs, {} IdPs",
                mode.name(),
                registry.sps,
                registry.idps
            );
            let mut summary = StackSummary {
                mode: mode.name().into(),
                sps: registry.sps,
                idps: registry.idps,
                setup_seconds: 0.0,
                chain: None,
                error: None,
            };
            match Stack::start(spec, runtimes.clone()).await {
                Ok(mut stack) => {
                    let first = registry == &options.registries[0];
                    let outcome = run_stack(&mut stack, &options, first, &mut results).await;
                    summary.setup_seconds = stack.setup_seconds;
                    summary.chain = traces::verify_chain(&stack).await.ok();
                    if let Err(e) = outcome {
                        summary.error = Some(format!("{e:#}; {}", stack.child_logs()));
                    }
                    stack.stop().await;
                }
                Err(e) => summary.error = Some(format!("{e:#}")),
            }
            if let Some(e) = &summary.error {
                eprintln!("   failed: {e}");
                good = false;
            }
            if summary.chain.as_ref().is_some_and(|c| !c.intact) {
                eprintln!("   the trace chain is broken");
                good = false;
            }
            results.stacks.push(summary);
        }
    }
    if let Some(dir) = &options.criterion {
        results.micro = report::criterion(dir);
    }
    for p in &results.points {
        good &= p.completed > 0 && p.traces.lost == 0 && p.traces.doubled == 0;
    }
    for t in &results.token {
        good &= t.ok > 0 && t.traces.lost == 0 && t.traces.doubled == 0;
    }
    if options.write {
        let path = report::write(&results, &options.results_dir, options.json.as_deref())?;
        eprintln!("results written to {}", path.display());
    }
    // A closed stdout (`| head`) is not worth a failure once the results are written.
    let _ = writeln!(std::io::stdout().lock(), "{}", report::markdown(&results));
    Ok(good)
}

fn notes() -> Vec<String> {
    vec![
        "Each flow: a fresh cookie jar, state and nonce, a random SP, a random IdP of its chooser and a random demo identity (4 identities × M IdPs, so up to 4M hub accounts).".into(),
        "Every IdP of the registry is the one in-process demo IdP under another id.".into(),
        "in-process: the bench process holds the load generator, the hub and the demo IdP; their CPU is split by runtime thread names, memory is the whole process.".into(),
        "hub peak MB: sum of the hub processes' sampled peaks (in-process: the whole bench process).".into(),
        "PostgreSQL 'other processes' and RabbitMQ are shared with whatever else runs on the machine.".into(),
        "The SP checks the ID token's nonce, audience and subject but not its signature (not the hub's cost).".into(),
    ]
}

fn latencies(tally: &load::Tally) -> BTreeMap<String, Latency> {
    flow::Step::ALL
        .iter()
        .zip(&tally.steps)
        .map(|(s, h)| (format!("{}. {}", s.index() + 1, s.name()), Latency::of(h)))
        .collect()
}

async fn run_stack(
    stack: &mut Stack,
    options: &Options,
    first: bool,
    results: &mut Results,
) -> anyhow::Result<()> {
    load::wait_ready(stack, READY_TIMEOUT).await?;
    eprintln!("   ready in {:.1} s", stack.setup_seconds);
    let db = stack.db.client().await?;
    let sp_http = flow::http_client(1024)?;
    let Registry { sps, idps } = stack.spec.registry;
    let mode = stack.spec.mode;
    // The concurrency sweep on the first registry; the others at a few points.
    let sweep = if first {
        &options.concurrency
    } else {
        &options.large_concurrency
    };
    // Then, on the first registry, sign-ins by single sign-on (no chooser, no IdP).
    let sso_sweep = if first {
        options.sso_concurrency.as_slice()
    } else {
        &[]
    };
    let points = sweep
        .iter()
        .map(|u| (*u, false))
        .chain(sso_sweep.iter().map(|u| (*u, true)));
    for (users, sso) in points {
        let load_before = report::load_average();
        let browsers = load::browsers(users)?;
        let watches = procs::watches(&stack.children, mode == Mode::InProcess, &stack.db.name);
        let admin = stack.db.admin().await?;
        let timing = load::Timing {
            warmup: options.warmup,
            warmup_max: options.warmup_max.max(options.warmup),
            duration: options.duration,
        };
        let started = Instant::now();
        let (tally, window, sampler) =
            load::run_flows(stack, browsers, timing, sso, &sp_http, |w| {
                procs::Sampler::start(watches, admin, w.start, w.end)
            })
            .await?;
        let sampled = sampler.finish().await;
        let check =
            traces::check(stack, &db, &tally.sids, FULL_FLOW, options.drain_timeout).await?;
        stack.children_alive().map_err(anyhow::Error::msg)?;
        let seconds = options.duration.as_secs_f64();
        let point = Point {
            mode: mode.name().into(),
            sps,
            idps,
            users,
            sso,
            seconds,
            warmup_seconds: (window.start - started).as_secs_f64(),
            completed: tally.completed,
            flows_per_second: tally.completed as f64 / seconds,
            per_second: tally.per_second.clone(),
            flow: Latency::of(&tally.flow),
            steps: latencies(&tally),
            errors: tally.errors.clone(),
            error_samples: tally.error_samples.clone(),
            warmup_completed: tally.warmup_completed,
            tail_completed: tally.tail_completed,
            cut_at_end: tally.cut,
            processes: sampled.usage,
            pg_activity: sampled.pg_activity,
            pg_counters: sampled.pg_counters,
            traces: check,
            load_average_before: load_before,
        };
        eprintln!(
            "   {users:>5} VUs{}: {:>7.1} sign-ins/s, p50 {:.1} ms, p99 {:.1} ms, {} errors, traces {}/{} (lost {}, doubled {}, drained in {:.1} s)",
            if sso { " (SSO)" } else { "" },
            point.flows_per_second,
            point.flow.p50,
            point.flow.p99,
            tally.errors_in_window(),
            point.traces.complete,
            point.traces.expected,
            point.traces.lost,
            point.traces.doubled,
            point.traces.drain_seconds,
        );
        for (kind, n) in &point.errors {
            eprintln!("         {n} × {kind}");
        }
        if tally.warmup_errors + tally.tail_errors + tally.cut > 0 {
            eprintln!(
                "         outside the window: {} failed in the warm-up, {} after it, {} cut",
                tally.warmup_errors, tally.tail_errors, tally.cut
            );
        }
        if !point.errors.is_empty() {
            eprintln!("   hub warnings and errors:{}", stack.child_problems());
        }
        results.points.push(point);
    }
    if first && !options.token_prep.is_zero() {
        let token = token_endpoint(stack, options, &db, &sp_http).await?;
        eprintln!(
            "   token endpoint: {:.0} requests/s on {} codes, p50 {:.1} ms, p99 {:.1} ms, {} errors, traces {}/{}",
            token.requests_per_second,
            token.codes_prepared,
            token.latency.p50,
            token.latency.p99,
            token.errors.values().sum::<u64>(),
            token.traces.complete,
            token.traces.expected,
        );
        results.token.push(token);
    }
    Ok(())
}

/// Codes prepared by browsers for `token_prep`, then redeemed as fast as the hub goes.
async fn token_endpoint(
    stack: &mut Stack,
    options: &Options,
    db: &tokio_postgres::Client,
    sp_http: &reqwest::Client,
) -> anyhow::Result<TokenPoint> {
    let prep_started = Instant::now();
    let users = options.token_concurrency.clamp(10, 100);
    let prepared = load::prepare_codes(stack, users, options.token_prep).await?;
    let codes_prepared = prepared.codes.len();
    let rs256_codes = prepared
        .codes
        .iter()
        .filter(|(i, _)| stack.sps[*i].rs256)
        .count();
    let prep_seconds = prepared.seconds;
    let prep_errors = prepared.errors.clone();
    // Let the preparation's events settle so they do not compete, while codes stay valid.
    let quiet_before = traces::quiet(stack, db, prep_started + CODE_WINDOW / 2).await;
    let stop = prep_started + CODE_WINDOW;
    let now = Instant::now();
    let sampler = procs::Sampler::start(
        procs::watches(
            &stack.children,
            stack.spec.mode == Mode::InProcess,
            &stack.db.name,
        ),
        stack.db.admin().await?,
        now,
        stop,
    );
    let run = load::redeem_codes(stack, prepared, options.token_concurrency, stop, sp_http).await?;
    let sampled = sampler.finish().await;
    let steps: Vec<&str> = FULL_FLOW
        .iter()
        .copied()
        .filter(|s| *s != "userinfo_served")
        .collect();
    let check = traces::check(stack, db, &run.sids, &steps, options.drain_timeout).await?;
    stack.children_alive().map_err(anyhow::Error::msg)?;
    Ok(TokenPoint {
        mode: stack.spec.mode.name().into(),
        sps: stack.spec.registry.sps,
        idps: stack.spec.registry.idps,
        concurrency: options.token_concurrency,
        codes_prepared,
        rs256_codes,
        prep_seconds,
        prep_errors,
        ok: run.ok,
        seconds: run.seconds,
        requests_per_second: if run.seconds > 0.0 {
            run.ok as f64 / run.seconds
        } else {
            0.0
        },
        latency: Latency::of(&run.latency),
        errors: run.errors,
        error_samples: run.error_samples,
        unused_codes: run.unused,
        quiet_before,
        processes: sampled.usage,
        pg_activity: sampled.pg_activity,
        pg_counters: sampled.pg_counters,
        traces: check,
    })
}

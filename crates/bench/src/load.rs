//! The load generator: virtual users doing whole sign-ins for a warm-up then a measured
//! window, and the token endpoint alone on codes prepared in advance.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use relais_demo_idp::TEST_IDENTITIES;
use serde::Serialize;
use tokio::time::Instant;

use crate::flow::{self, Browser, Code, FlowError, Step, Target, Timings};
use crate::stack::{Sp, Stack};

/// Time a virtual user may take to finish its last sign-in after the window closes.
const GRACE: Duration = Duration::from_secs(35);

/// Latency histograms in microseconds, up to two minutes.
fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 120_000_000, 3)?)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Latency summary in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// What virtual users saw, merged.
pub struct Tally {
    pub steps: Vec<Histogram<u64>>,
    pub flow: Histogram<u64>,
    /// Flows completed inside the measured window.
    pub completed: u64,
    pub warmup_completed: u64,
    /// Completed after the window closed (counted for traces only).
    pub tail_completed: u64,
    pub errors: BTreeMap<String, u64>,
    pub error_samples: BTreeMap<String, String>,
    pub warmup_errors: u64,
    pub tail_errors: u64,
    /// Sign-ins cut when the grace after the window ran out.
    pub cut: u64,
    pub per_second: Vec<u64>,
    /// Hub session of every completed flow, whenever it completed.
    pub sids: Vec<String>,
}

impl Tally {
    fn new(seconds: usize) -> anyhow::Result<Tally> {
        Ok(Tally {
            steps: Step::ALL
                .iter()
                .map(|_| histogram())
                .collect::<anyhow::Result<_>>()?,
            flow: histogram()?,
            completed: 0,
            warmup_completed: 0,
            tail_completed: 0,
            errors: BTreeMap::new(),
            error_samples: BTreeMap::new(),
            warmup_errors: 0,
            tail_errors: 0,
            cut: 0,
            per_second: vec![0; seconds],
            sids: Vec::new(),
        })
    }

    fn error(&mut self, e: &FlowError) {
        let key = e.key();
        *self.errors.entry(key.clone()).or_default() += 1;
        self.error_samples
            .entry(key)
            .or_insert_with(|| e.detail.clone());
    }

    fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        for (mine, theirs) in self.steps.iter_mut().zip(&other.steps) {
            mine.add(theirs)?;
        }
        self.flow.add(&other.flow)?;
        self.completed += other.completed;
        self.warmup_completed += other.warmup_completed;
        self.tail_completed += other.tail_completed;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in other.error_samples {
            self.error_samples.entry(k).or_insert(v);
        }
        self.warmup_errors += other.warmup_errors;
        self.tail_errors += other.tail_errors;
        self.cut += other.cut;
        for (mine, theirs) in self.per_second.iter_mut().zip(&other.per_second) {
            *mine += theirs;
        }
        self.sids.extend(other.sids);
        Ok(())
    }

    pub fn errors_in_window(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The measured window, fixed when the warm-up ends.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

/// What every virtual user shares.
struct Shared {
    hub: String,
    idp_issuer: String,
    sps: Arc<Vec<Sp>>,
    sp_http: reqwest::Client,
    window: OnceLock<Window>,
    completions: AtomicU64,
    /// Longest a sign-in may take while the window is not fixed yet.
    flow_cap: Duration,
    slots: usize,
    /// After its first sign-in, each virtual user signs in by single sign-on.
    sso: bool,
}

enum Phase {
    Warmup,
    Window(Instant),
    Tail,
}

impl Shared {
    fn phase(&self, at: Instant) -> Phase {
        match self.window.get() {
            Some(w) if at > w.end => Phase::Tail,
            Some(w) if at >= w.start => Phase::Window(w.start),
            _ => Phase::Warmup,
        }
    }
}

fn pick<'a>(rng: &mut StdRng, sps: &'a [Sp]) -> (&'a Sp, &'a str, &'static str) {
    let sp = &sps[rng.gen_range(0..sps.len())];
    let idp = sp.idp_ids[rng.gen_range(0..sp.idp_ids.len())].as_str();
    let identity = TEST_IDENTITIES[rng.gen_range(0..TEST_IDENTITIES.len())].id;
    (sp, idp, identity)
}

async fn virtual_user(shared: Arc<Shared>, mut browser: Browser) -> anyhow::Result<Tally> {
    let mut tally = Tally::new(shared.slots)?;
    let mut rng = StdRng::from_entropy();
    let mut has_session = false;
    loop {
        let started = Instant::now();
        let hard_stop = match shared.window.get() {
            Some(w) if started >= w.end => break,
            Some(w) => w.end + GRACE,
            None => started + shared.flow_cap,
        };
        let (sp, idp_id, identity) = pick(&mut rng, &shared.sps);
        let target = Target {
            hub: &shared.hub,
            idp_issuer: &shared.idp_issuer,
            sp,
            idp_id,
            identity,
        };
        let mut timings: Timings = [None; 7];
        let by_sso = shared.sso && has_session;
        let run = async {
            if by_sso {
                flow::sso_sign_in(&mut browser, &shared.sp_http, &target, &mut timings).await
            } else {
                flow::sign_in(&mut browser, &shared.sp_http, &target, &mut timings).await
            }
        };
        let Ok(result) = tokio::time::timeout_at(hard_stop, run).await else {
            tally.cut += 1;
            if shared.window.get().is_some() {
                break;
            }
            continue;
        };
        let ended = Instant::now();
        let phase = shared.phase(ended);
        if let Phase::Window(_) = phase {
            for (h, t) in tally.steps.iter_mut().zip(timings) {
                if let Some(t) = t {
                    h.saturating_record(micros(t));
                }
            }
        }
        has_session = result.is_ok();
        match result {
            Ok(sid) => {
                shared.completions.fetch_add(1, Ordering::Relaxed);
                tally.sids.push(sid);
                match phase {
                    Phase::Window(start) => {
                        tally.completed += 1;
                        tally.flow.saturating_record(micros(ended - started));
                        let slot = usize::try_from((ended - start).as_secs()).unwrap_or(0);
                        if let Some(n) = tally.per_second.get_mut(slot) {
                            *n += 1;
                        }
                    }
                    Phase::Warmup => tally.warmup_completed += 1,
                    Phase::Tail => tally.tail_completed += 1,
                }
            }
            Err(e) => {
                match phase {
                    Phase::Window(_) => tally.error(&e),
                    Phase::Warmup => tally.warmup_errors += 1,
                    Phase::Tail => tally.tail_errors += 1,
                }
                // A failing hub must not turn virtual users into a busy loop.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    Ok(tally)
}

/// One browser per virtual user, built before the clock starts.
pub fn browsers(users: usize) -> anyhow::Result<Vec<Browser>> {
    (0..users).map(|_| Browser::new()).collect()
}

/// How long a point lasts.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// The warm-up lasts at least this long…
    pub warmup: Duration,
    /// …and until every virtual user completed a sign-in, or this long at most.
    pub warmup_max: Duration,
    pub duration: Duration,
}

/// Runs one virtual user per browser; when the warm-up ends, `on_window` is called
/// with the measured window (to start what measures it) and its result returned.
pub async fn run_flows<S>(
    stack: &Stack,
    browsers: Vec<Browser>,
    timing: Timing,
    sso: bool,
    sp_http: &reqwest::Client,
    on_window: impl FnOnce(Window) -> S,
) -> anyhow::Result<(Tally, Window, S)> {
    let users = u64::try_from(browsers.len()).unwrap_or(u64::MAX);
    let slots = usize::try_from(timing.duration.as_secs()).unwrap_or(0) + 1;
    let shared = Arc::new(Shared {
        hub: stack.hub_url.clone(),
        idp_issuer: stack.idp_issuer.clone(),
        sps: Arc::clone(&stack.sps),
        sp_http: sp_http.clone(),
        window: OnceLock::new(),
        completions: AtomicU64::new(0),
        flow_cap: timing.warmup_max + timing.duration + GRACE,
        slots,
        sso,
    });
    let started = Instant::now();
    let handles: Vec<_> = browsers
        .into_iter()
        .map(|b| tokio::spawn(virtual_user(Arc::clone(&shared), b)))
        .collect();
    tokio::time::sleep(timing.warmup).await;
    while shared.completions.load(Ordering::Relaxed) < users
        && started.elapsed() < timing.warmup_max
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = Instant::now();
    let window = Window {
        start: now,
        end: now + timing.duration,
    };
    let window = *shared.window.get_or_init(|| window);
    let measuring = on_window(window);
    let mut tally = Tally::new(slots)?;
    for h in handles {
        tally.merge(h.await??)?;
    }
    Ok((tally, window, measuring))
}

/// One sign-in that must go through: proves the stack is up (the registry may still be
/// seeding) and fills nothing but the caches the first request fills anyway.
pub async fn wait_ready(stack: &mut Stack, timeout: Duration) -> anyhow::Result<String> {
    let sp_http = flow::http_client(4)?;
    let mut browser = Browser::new()?;
    let give_up = Instant::now() + timeout;
    let mut last = String::from("no attempt");
    while Instant::now() < give_up {
        if let Err(e) = stack.children_alive() {
            anyhow::bail!("{e}");
        }
        let sp = &stack.sps[stack.sps.len() - 1];
        let target = Target {
            hub: &stack.hub_url,
            idp_issuer: &stack.idp_issuer,
            sp,
            idp_id: &sp.idp_ids[0],
            identity: TEST_IDENTITIES[0].id,
        };
        let mut timings: Timings = [None; 7];
        match flow::sign_in(&mut browser, &sp_http, &target, &mut timings).await {
            Ok(sid) => return Ok(sid),
            Err(e) => last = format!("{}: {}", e.key(), e.detail),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the hub never completed a sign-in within {timeout:?}; last: {last}")
}

/// Codes obtained through the browser part of the flow, for the token endpoint alone.
pub struct Prepared {
    pub codes: Vec<(usize, Code)>,
    pub seconds: f64,
    pub errors: BTreeMap<String, u64>,
}

/// Runs `users` browsers to the code for `duration`.
pub async fn prepare_codes(
    stack: &Stack,
    users: usize,
    duration: Duration,
) -> anyhow::Result<Prepared> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut handles = Vec::new();
    for _ in 0..users {
        let mut browser = Browser::new()?;
        let hub = stack.hub_url.clone();
        let idp_issuer = stack.idp_issuer.clone();
        let sps = Arc::clone(&stack.sps);
        handles.push(tokio::spawn(async move {
            let mut rng = StdRng::from_entropy();
            let mut codes = Vec::new();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            while Instant::now() < deadline {
                let i = rng.gen_range(0..sps.len());
                let (_, idp_id, identity) = pick(&mut rng, &sps[i..=i]);
                let target = Target {
                    hub: &hub,
                    idp_issuer: &idp_issuer,
                    sp: &sps[i],
                    idp_id,
                    identity,
                };
                let mut timings: Timings = [None; 7];
                let run = flow::browse_to_code(&mut browser, &target, &mut timings);
                match tokio::time::timeout_at(deadline + GRACE, run).await {
                    Ok(Ok(code)) => codes.push((i, code)),
                    Ok(Err(e)) => *errors.entry(e.key()).or_default() += 1,
                    Err(_) => break,
                }
            }
            (codes, errors)
        }));
    }
    let mut prepared = Prepared {
        codes: Vec::new(),
        seconds: 0.0,
        errors: BTreeMap::new(),
    };
    for h in handles {
        let (codes, errors) = h.await?;
        prepared.codes.extend(codes);
        for (k, v) in errors {
            *prepared.errors.entry(k).or_default() += v;
        }
    }
    prepared.seconds = started.elapsed().as_secs_f64();
    Ok(prepared)
}

/// The token endpoint alone: what the redemption of prepared codes gave.
pub struct TokenRun {
    pub latency: Histogram<u64>,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub error_samples: BTreeMap<String, String>,
    pub seconds: f64,
    pub unused: u64,
    pub sids: Vec<String>,
}

/// Redeems every prepared code with `concurrency` SP back ends until `stop`.
pub async fn redeem_codes(
    stack: &Stack,
    prepared: Prepared,
    concurrency: usize,
    stop: Instant,
    sp_http: &reqwest::Client,
) -> anyhow::Result<TokenRun> {
    let codes = Arc::new(prepared.codes);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..concurrency {
        let codes = Arc::clone(&codes);
        let next = Arc::clone(&next);
        let sps = Arc::clone(&stack.sps);
        let hub = stack.hub_url.clone();
        let sp_http = sp_http.clone();
        handles.push(tokio::spawn(async move {
            let mut latency = histogram()?;
            let mut tally = Tally::new(0)?;
            let mut ok = 0u64;
            while Instant::now() < stop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some((i, code)) = codes.get(n) else { break };
                let mut timings: Timings = [None; 7];
                let sent = Instant::now();
                match flow::redeem(&sp_http, &hub, &sps[*i], code, &mut timings).await {
                    Ok(tokens) => {
                        latency.saturating_record(micros(sent.elapsed()));
                        tally.sids.push(tokens.sid);
                        ok += 1;
                    }
                    Err(e) => tally.error(&e),
                }
            }
            anyhow::Ok((latency, tally, ok, Instant::now()))
        }));
    }
    let mut run = TokenRun {
        latency: histogram()?,
        ok: 0,
        errors: BTreeMap::new(),
        error_samples: BTreeMap::new(),
        seconds: 0.0,
        unused: 0,
        sids: Vec::new(),
    };
    let mut last = started;
    for h in handles {
        let (latency, tally, ok, ended) = h.await??;
        run.latency.add(&latency)?;
        run.ok += ok;
        for (k, v) in tally.errors {
            *run.errors.entry(k).or_default() += v;
        }
        for (k, v) in tally.error_samples {
            run.error_samples.entry(k).or_insert(v);
        }
        run.sids.extend(tally.sids);
        last = last.max(ended);
    }
    run.seconds = (last - started).as_secs_f64();
    let used = next.load(Ordering::Relaxed).min(codes.len());
    run.unused = u64::try_from(codes.len() - used).unwrap_or(0);
    Ok(run)
}

//! Command-line options: what to sweep and for how long.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

/// Codes live 60 s: every prepared one is redeemed (or dropped) within this.
pub const CODE_WINDOW: Duration = Duration::from_secs(55);

pub const USAGE: &str = "usage: relais-bench [--smoke] [options]
  --smoke                   a few seconds, tiny load, in-process hub: proves the harness works
  --modes LIST              in-process,all-process,processes (default: in-process,processes)
  --registries LIST         SPSxIDPS pairs (default: 10x100,10000x100)
  --concurrency LIST        virtual users per point, first registry (default: 1,10,100,1000)
  --large-concurrency LIST  virtual users per point, other registries (default: 10,100)
  --sso-concurrency LIST    virtual users per single sign-on point, first registry; each
                            signs in once, then by SSO from its hub session; none skips
                            them (default: 100)
  --warmup SECS             per point, not measured, at least (default: 3)
  --warmup-max SECS         and until every virtual user completed a sign-in, at most (default: 60)
  --duration SECS           measured time per point (default: 10)
  --token-prep SECS         codes prepared for the token endpoint test, first registry
                            only, at most 27 s (codes live 60 s); 0 skips it (default: 8)
  --token-concurrency N     concurrent token requests (default: 50)
  --idps-per-sp N           IdPs on each SP's chooser (default: 10)
  --rs256-every N           every Nth SP signs its ID tokens RS256, 0 for none (default: 10)
  --pool-size N             PostgreSQL pool of each hub service (default: 10)
  --drain-timeout SECS      wait for the trace store to catch up (default: 90)
  --relais-bin PATH         the relais binary (default: beside this one)
  --results-dir DIR         where <date>-<commit>.json/.md go (default: bench/results)
  --json FILE               write the JSON there instead
  --criterion DIR           fold criterion estimates from DIR (target/criterion) into the results
  --commit ID               the commit the binaries were built from (default: git HEAD here)
  --no-write                print only";

/// How the hub runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `relais::start` with every service, inside the bench process.
    InProcess,
    /// One `relais all` child process.
    AllProcess,
    /// One child process per service.
    Processes,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::InProcess => "in-process",
            Mode::AllProcess => "all-process",
            Mode::Processes => "processes",
        }
    }

    fn parse(s: &str) -> anyhow::Result<Mode> {
        Ok(match s {
            "in-process" => Mode::InProcess,
            "all-process" => Mode::AllProcess,
            "processes" => Mode::Processes,
            other => bail!("unknown mode {other}"),
        })
    }
}

/// The size of the seeded registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registry {
    pub sps: usize,
    pub idps: usize,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub smoke: bool,
    pub modes: Vec<Mode>,
    pub registries: Vec<Registry>,
    pub concurrency: Vec<usize>,
    pub large_concurrency: Vec<usize>,
    pub sso_concurrency: Vec<usize>,
    pub warmup: Duration,
    pub warmup_max: Duration,
    pub duration: Duration,
    pub token_prep: Duration,
    pub token_concurrency: usize,
    pub idps_per_sp: usize,
    pub rs256_every: usize,
    pub pool_size: usize,
    pub drain_timeout: Duration,
    pub relais_bin: Option<PathBuf>,
    pub results_dir: PathBuf,
    pub json: Option<PathBuf>,
    pub criterion: Option<PathBuf>,
    pub commit: Option<String>,
    pub write: bool,
}

impl Options {
    fn full() -> Options {
        Options {
            smoke: false,
            modes: vec![Mode::InProcess, Mode::Processes],
            registries: vec![
                Registry { sps: 10, idps: 100 },
                Registry {
                    sps: 10_000,
                    idps: 100,
                },
            ],
            concurrency: vec![1, 10, 100, 1000],
            large_concurrency: vec![10, 100],
            sso_concurrency: vec![100],
            warmup: Duration::from_secs(3),
            warmup_max: Duration::from_secs(60),
            duration: Duration::from_secs(10),
            token_prep: Duration::from_secs(8),
            token_concurrency: 50,
            idps_per_sp: 10,
            rs256_every: 10,
            pool_size: 10,
            drain_timeout: Duration::from_secs(90),
            relais_bin: None,
            results_dir: PathBuf::from("bench/results"),
            json: None,
            criterion: None,
            commit: None,
            write: true,
        }
    }

    fn smoke() -> Options {
        Options {
            smoke: true,
            modes: vec![Mode::InProcess],
            registries: vec![Registry { sps: 3, idps: 2 }],
            concurrency: vec![4],
            large_concurrency: vec![4],
            sso_concurrency: vec![4],
            warmup: Duration::from_secs(1),
            warmup_max: Duration::from_secs(10),
            duration: Duration::from_secs(2),
            token_prep: Duration::from_secs(1),
            token_concurrency: 4,
            idps_per_sp: 2,
            rs256_every: 2,
            pool_size: 4,
            drain_timeout: Duration::from_secs(60),
            write: false,
            ..Options::full()
        }
    }

    /// Parses the arguments after the program name.
    pub fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut o = if args.iter().any(|a| a == "--smoke") {
            Options::smoke()
        } else {
            Options::full()
        };
        let mut i = 0;
        while i < args.len() {
            let flag = args[i].as_str();
            let mut value = || -> anyhow::Result<&str> {
                i += 1;
                args.get(i)
                    .map(String::as_str)
                    .ok_or_else(|| anyhow!("{flag} needs a value"))
            };
            match flag {
                "--smoke" => {}
                "--modes" => o.modes = list(value()?, Mode::parse)?,
                "--registries" => o.registries = list(value()?, registry)?,
                "--concurrency" => o.concurrency = list(value()?, number)?,
                "--large-concurrency" => o.large_concurrency = list(value()?, number)?,
                // "none" skips the SSO points.
                "--sso-concurrency" => {
                    let v = value()?;
                    o.sso_concurrency = if v == "none" {
                        Vec::new()
                    } else {
                        list(v, number)?
                    };
                }
                "--warmup" => o.warmup = seconds(value()?)?,
                "--warmup-max" => o.warmup_max = seconds(value()?)?,
                "--duration" => o.duration = seconds(value()?)?,
                "--token-prep" => o.token_prep = seconds(value()?)?,
                "--token-concurrency" => o.token_concurrency = number(value()?)?,
                "--idps-per-sp" => o.idps_per_sp = number(value()?)?,
                "--rs256-every" => o.rs256_every = number(value()?)?,
                "--pool-size" => o.pool_size = number(value()?)?,
                "--drain-timeout" => o.drain_timeout = seconds(value()?)?,
                "--relais-bin" => o.relais_bin = Some(PathBuf::from(value()?)),
                "--results-dir" => o.results_dir = PathBuf::from(value()?),
                "--json" => {
                    o.json = Some(PathBuf::from(value()?));
                    o.write = true;
                }
                "--criterion" => o.criterion = Some(PathBuf::from(value()?)),
                "--commit" => o.commit = Some(value()?.to_string()),
                "--no-write" => o.write = false,
                other => bail!("unknown argument {other}"),
            }
            i += 1;
        }
        if o.duration.is_zero()
            || o.concurrency.contains(&0)
            || o.large_concurrency.contains(&0)
            || o.sso_concurrency.contains(&0)
            || o.token_concurrency == 0
        {
            bail!("durations and concurrency must be positive");
        }
        // Preparing, then letting its events settle (until half the window), then
        // redeeming must all fit in a code's life, or every redemption fails.
        if o.token_prep >= CODE_WINDOW / 2 {
            bail!(
                "--token-prep is at most {} s: codes live 60 s",
                (CODE_WINDOW / 2).as_secs()
            );
        }
        if o.registries.iter().any(|r| r.sps == 0 || r.idps == 0) || o.idps_per_sp == 0 {
            bail!("a registry needs at least one SP and one IdP");
        }
        Ok(o)
    }
}

fn list<T>(text: &str, one: impl Fn(&str) -> anyhow::Result<T>) -> anyhow::Result<Vec<T>> {
    let items = text
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| one(s.trim()))
        .collect::<anyhow::Result<Vec<T>>>()?;
    if items.is_empty() {
        bail!("empty list {text:?}");
    }
    Ok(items)
}

fn number(text: &str) -> anyhow::Result<usize> {
    text.replace('_', "")
        .parse()
        .with_context(|| format!("not a number: {text}"))
}

fn seconds(text: &str) -> anyhow::Result<Duration> {
    let s: f64 = text
        .parse()
        .with_context(|| format!("not a number of seconds: {text}"))?;
    if !(0.0..=3600.0).contains(&s) {
        bail!("seconds out of range: {text}");
    }
    Ok(Duration::from_secs_f64(s))
}

fn registry(text: &str) -> anyhow::Result<Registry> {
    let (sps, idps) = text
        .split_once('x')
        .ok_or_else(|| anyhow!("a registry is SPSxIDPS, e.g. 10000x100: {text}"))?;
    Ok(Registry {
        sps: number(sps)?,
        idps: number(idps)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_token_preparation_longer_than_a_codes_life_is_refused() {
        let long = Options::parse(&args(&["--token-prep", "2000"]));
        assert!(long.is_err_and(|e| e.to_string().contains("--token-prep")));
        let edge = Options::parse(&args(&["--token-prep", "28"]));
        assert!(edge.is_err());
        let fine = Options::parse(&args(&["--token-prep", "8"]));
        assert!(fine.is_ok_and(|o| o.token_prep == Duration::from_secs(8)));
    }
}

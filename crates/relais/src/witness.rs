//! `relais trace witness …` and `relais trace witness-key …`: the witness an independent
//! party runs with its own key (C2SP tlog-witness), without the hub's configuration,
//! database or network.

use std::path::Path;
use std::process::ExitCode;

use relais_trace::cosignature::{self, WitnessKey};
use relais_trace::witness::Witness;
use relais_trace::witness_server::WitnessService;

pub const USAGE: &str = "usage: relais trace witness --key KEY_FILE --state STATE_FILE --log VKEY|VKEY_FILE [--log …] [--listen ADDR]
       relais trace witness-key NAME FILE   (a new witness key named NAME, e.g. witness.example.org/w1)";

/// Where the witness listens unless told: loopback (a reverse proxy publishes it).
const LISTEN: &str = "127.0.0.1:7190";

/// The text of `value`, or of the file it names.
fn text_or_file(value: &str) -> Result<String, String> {
    if Path::new(value).is_file() {
        std::fs::read_to_string(value).map_err(|e| format!("{value}: {e}"))
    } else {
        Ok(value.to_string())
    }
}

/// `witness-key NAME FILE`: the private key written to FILE (0600, never over a file), the
/// verifier key printed, for the logs and the verifiers.
pub fn key(args: &[String]) -> ExitCode {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (Some(name), Some(file), None) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let written = cosignature::generate_key(name)
        .map_err(|e| e.to_string())
        .and_then(|(private, public)| {
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(file)
                .map_err(|e| format!("{file}: {e}"))?;
            writeln!(out, "{}", private.expose()).map_err(|e| format!("{file}: {e}"))?;
            Ok(public)
        });
    match written {
        Ok(public) => {
            println!("witness key {name} written to {file}");
            println!(
                "verifier key (give it to the logs, as trace.witnesses[].key, and to verifiers):"
            );
            println!("{public}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("relais trace witness-key: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    key: String,
    state: String,
    logs: Vec<String>,
    listen: String,
}

fn options(args: &[String]) -> Result<Options, String> {
    let (mut key, mut state, mut logs, mut listen) = (None, None, Vec::new(), LISTEN.to_string());
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let mut value = || {
            words
                .next()
                .cloned()
                .ok_or_else(|| format!("{word} needs a value"))
        };
        match word.as_str() {
            "--key" => key = Some(value()?),
            "--state" => state = Some(value()?),
            "--log" => logs.push(text_or_file(&value()?)?.trim().to_string()),
            "--listen" => listen = value()?,
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    if logs.is_empty() {
        return Err("--log is required (the verifier key of a log witnessed)".into());
    }
    Ok(Options {
        key: key.ok_or("--key is required")?,
        state: state.ok_or("--state is required")?,
        logs,
        listen,
    })
}

/// `witness …`: serves until SIGTERM.
pub fn run(args: &[String]) -> ExitCode {
    let o = match options(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("relais trace witness: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    relais_telemetry::init(&relais_telemetry::TelemetryConfig::default());
    let witness = std::fs::read_to_string(&o.key)
        .map_err(|e| format!("{}: {e}", o.key))
        .and_then(|k| WitnessKey::parse(&k).map_err(|e| format!("{}: {e}", o.key)))
        .and_then(|k| Witness::new(k, &o.logs).map_err(|e| e.to_string()))
        .and_then(|w| {
            WitnessService::open(w.clone(), Path::new(&o.state))
                .map(|s| (w, s))
                .map_err(|e| e.to_string())
        });
    let (witness, service) = match witness {
        Ok(w) => w,
        Err(e) => {
            eprintln!("relais trace witness: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relais: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match relais_runtime::bind(&o.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("relais trace witness: {e}");
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(addr) => println!(
                "relais witness {} listening on {addr}\nverifier key: {}",
                witness.key().name(),
                witness.key().verifier_key()
            ),
            Err(e) => eprintln!("relais trace witness: {e}"),
        }
        let shutdown = relais_runtime::Shutdown::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            relais_runtime::termination_signal().await;
            stop.cancel();
        });
        match service.serve(listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("relais trace witness: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

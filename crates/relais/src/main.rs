//! `relais <service> [--config FILE]`: runs one service, or `all` of them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use relais::{RelaisConfig, Service};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str =
    "usage: relais <all|gateway|oidc-front|idp-bridge|registry|trace|support|check-config> [--config FILE]
       relais trace verify --file FILE --key VKEY [--witness-key WKEY …]   (checks a proof file offline)
       relais trace witness --key KEY_FILE --state FILE --log VKEY [--log …] [--listen ADDR]
       relais trace witness-key NAME FILE   (a witness's new key)
Settings come from defaults, then FILE (or $RELAIS_CONFIG), then RELAIS__SECTION__FIELD variables.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Offline: no configuration, no database, no network.
    if args.first().map(String::as_str) == Some("trace") {
        match args.get(1).map(String::as_str) {
            Some("verify") => return relais::verify::run(&args[2..]),
            // The witness is another party's: its own flags, not the hub's configuration.
            Some("witness") => return relais::witness::run(&args[2..]),
            Some("witness-key") => return relais::witness::key(&args[2..]),
            _ => {}
        }
    }
    let mut command = None;
    let mut rest: Vec<String> = Vec::new();
    let mut file = std::env::var_os("RELAIS_CONFIG").map(PathBuf::from);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--config" | "-c" => {
                let Some(path) = args.get(i + 1) else {
                    eprintln!("--config needs a file\n{USAGE}");
                    return ExitCode::from(2);
                };
                file = Some(PathBuf::from(path));
                i += 1;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other if command.is_none() => command = Some(other.to_string()),
            other if command.as_deref() == Some("admin") => rest.push(other.to_string()),
            other => {
                eprintln!("unexpected argument {other}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
        i += 1;
    }
    let Some(command) = command else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let services: Vec<Service> = match command.as_str() {
        "all" | "check-config" | "admin" => Service::ALL.to_vec(),
        name => match Service::parse(name) {
            Some(s) => vec![s],
            None => {
                eprintln!("unknown service {name}\n{USAGE}");
                return ExitCode::from(2);
            }
        },
    };
    let config: RelaisConfig = match relais_config::load(file.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("relais: {e}");
            return ExitCode::from(2);
        }
    };
    if command == "admin" {
        if rest.first().is_none_or(|c| c == "help") {
            println!("{}", relais::admin::USAGE);
            return ExitCode::SUCCESS;
        }
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
        return match runtime.block_on(relais::admin::run(&config, &rest)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("relais admin: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // A key-encryption key file is needed only where its service runs.
    let files = || {
        config.check_files()?;
        if services.contains(&Service::Registry) {
            config.check_registry_key_files()?;
        }
        if services.contains(&Service::OidcFront) {
            config.check_key_files()
        } else {
            Ok(())
        }
    };
    if let Err(e) = config.validate().and_then(|()| files()) {
        eprintln!("relais: {e}");
        return ExitCode::from(2);
    }
    if command == "check-config" {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    relais_telemetry::init(&config.telemetry);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
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
        let shutdown = relais_runtime::Shutdown::new();
        let hub = match relais::start(config, &services, shutdown.clone()).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("relais: {e}");
                return ExitCode::FAILURE;
            }
        };
        for (s, addr) in &hub.addrs {
            println!("relais {} listening on {addr}", s.name());
        }
        relais_runtime::termination_signal().await;
        tracing::info!("stopping");
        hub.stop(Duration::from_secs(10)).await;
        ExitCode::SUCCESS
    })
}

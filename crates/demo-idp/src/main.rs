//! `demo-idp <config.toml>` (or `DEMO_IDP_CONFIG=<config.toml> demo-idp`): serves the demo IdP
//! until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use relais_demo_idp::{DemoIdpConfig, Error};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    relais_telemetry::init(&relais_telemetry::TelemetryConfig::default());
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo-idp: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Error> {
    let Some(path) = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("DEMO_IDP_CONFIG").ok())
    else {
        return Err(Error::Config {
            field: "<config file>".into(),
            reason: "usage: demo-idp <config.toml> (or set DEMO_IDP_CONFIG)".into(),
        });
    };
    let text = std::fs::read_to_string(&path).map_err(|source| Error::ConfigFile {
        path: path.clone(),
        source,
    })?;
    let config = DemoIdpConfig::from_toml(&text)?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let shutdown = CancellationToken::new();
    let handle = relais_demo_idp::start(config, listener, shutdown.clone()).await?;
    println!("demo IdP issuer: {}", handle.issuer());
    relais_runtime::termination_signal().await;
    shutdown.cancel();
    handle.join().await
}

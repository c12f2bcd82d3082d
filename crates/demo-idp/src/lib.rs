//! A small but genuine OpenID Connect provider, one identity provider among any others for the
//! Relais hub: discovery, JWKS, authorization code flow with PKCE, userinfo and RP-initiated
//! logout, with made-up test identities at each eIDAS level and failures that can be switched on
//! ([`Scenario`]) so a relying party's error paths can be driven. `make run` lets a person sign
//! in through it; the hub's tests start it with [`start`] on a port of their own.
//!
//! It keeps everything in memory and must never hold or release real personal data, never serve
//! anything but its own test identities, and never accept scenario changes from a peer that is
//! not on the loopback interface.
//!
//! The login form at `POST /authorize/login` has the fields `request_id` (hidden; see
//! [`login_request_id`]), `identity` (a [`TestIdentity::id`]), `scenario` (a [`Scenario`] name)
//! and `action` (`login` or `cancel`); it needs the `demo_idp_browser` cookie set by the page.

mod authorize;
mod config;
mod error;
mod html;
mod identities;
mod keys;
mod routes;
mod scenario;
mod state;
mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{ClientConfig, DemoIdpConfig, Secret};
pub use error::Error;
pub use html::login_request_id;
pub use identities::{Acr, TEST_IDENTITIES, TestIdentity, luhn_valid};
pub use scenario::{Scenario, UnknownScenario};
pub use state::ScenarioSetting;

use state::{AppState, lock};

/// A running demo IdP.
pub struct DemoIdpHandle {
    addr: SocketAddr,
    issuer: String,
    app: Arc<AppState>,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

/// Starts serving on `listener` until `shutdown` is cancelled (or [`DemoIdpHandle::stop`]).
pub async fn start(
    config: DemoIdpConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<DemoIdpHandle, Error> {
    config.validate()?;
    let addr = listener.local_addr()?;
    let issuer = if config.public_url.is_empty() {
        format!("http://{addr}")
    } else {
        config.public_url.trim_end_matches('/').to_owned()
    };
    let keys = keys::SigningKeys::generate()?;
    let app = Arc::new(AppState::new(issuer.clone(), config, keys));
    // A child token: stopping this IdP must not stop whoever shares the parent.
    let shutdown = shutdown.child_token();
    let service = routes::router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let stopped = shutdown.clone();
    let task = tokio::spawn(async move {
        axum::serve(listener, service)
            .with_graceful_shutdown(stopped.cancelled_owned())
            .await
    });
    tracing::info!(%issuer, "demo IdP listening");
    Ok(DemoIdpHandle {
        addr,
        issuer,
        app,
        shutdown,
        task,
    })
}

impl DemoIdpHandle {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The issuer, without a trailing slash; discovery is at `<issuer>/.well-known/openid-configuration`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn scenario(&self) -> ScenarioSetting {
        self.app.setting()
    }

    /// The failure committed by logins whose form does not choose another.
    pub fn set_scenario(&self, scenario: Scenario) {
        lock(&self.app.setting).scenario = scenario;
    }

    /// The wait of the [`Scenario::Delay`] scenario.
    /// Signs from now on with a new key under a new `kid` (key rotation), publishing
    /// only the new key.
    pub fn rotate_key(&self) -> Result<(), Error> {
        self.app.set_keys(keys::SigningKeys::generate()?);
        Ok(())
    }

    /// Signs `claims` with this IdP's published key as a JWS of type `typ`: what it would
    /// send its relying parties (e.g. a `logout+jwt` logout token), for their tests.
    pub fn sign(
        &self,
        claims: serde_json::Map<String, serde_json::Value>,
        typ: &str,
    ) -> Result<String, Error> {
        self.app.keys().sign_typed(claims, typ, false)
    }

    pub fn set_delay(&self, delay: Duration) {
        lock(&self.app.setting).delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    }

    /// A token cancelled when this IdP is told to stop.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the server has stopped (after its shutdown token is cancelled).
    pub async fn join(self) -> Result<(), Error> {
        self.task.await??;
        Ok(())
    }

    /// Stops accepting connections, lets requests in flight finish, and waits.
    pub async fn stop(self) -> Result<(), Error> {
        self.shutdown.cancel();
        self.join().await
    }
}

//! A small web application that signs in with Relais (or any OpenID provider) through the
//! standard `openidconnect` crate with its default checks, then shows what it received: the
//! claims, the acr, the raw ID token and its decoded parts. It is what an SP developer would
//! write, used by `make run` and by tests that drive the hub as a real relying party would.
//!
//! It keeps its sessions in memory and must never weaken a check to make a sign-in pass (state,
//! RFC 9207 `iss`, PKCE, signature, audience, expiry, nonce, acr), never log a code or token, and
//! never be used with real accounts.

mod backchannel;
mod config;
mod error;
mod oidc;
mod pages;
mod routes;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{DemoSpConfig, Secret};
pub use error::Error;

/// A running demo SP.
pub struct DemoSpHandle {
    addr: SocketAddr,
    url: String,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

/// Starts serving on `listener` until `shutdown` is cancelled (or [`DemoSpHandle::stop`]).
/// The provider is discovered at the first sign-in, so it may start after this SP.
pub async fn start(
    config: DemoSpConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<DemoSpHandle, Error> {
    config.validate()?;
    let addr = listener.local_addr()?;
    let url = if config.public_url.is_empty() {
        format!("http://{addr}")
    } else {
        config.public_url.trim_end_matches('/').to_owned()
    };
    // No redirects: openidconnect's advice against SSRF through discovery and token calls.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let app = Arc::new(routes::AppState {
        http,
        provider: oidc::ProviderCache::new(
            config.issuer.clone(),
            config.client_id.clone(),
            config.client_secret.expose().to_owned(),
            redirect_uri(&url),
        ),
        scopes: config.scopes.clone(),
        acr_values: config.acr_values.clone(),
        support_api: config
            .show_access_token
            .then(|| format!("{}/api/support/v1", config.issuer.trim_end_matches('/'))),
        post_logout_uri: post_logout_redirect_uri(&url),
        sessions: Mutex::new(HashMap::new()),
        logout_jtis: Mutex::new(HashMap::new()),
        cookie_name: routes::cookie_name(&config.client_id),
    });
    let shutdown = shutdown.child_token();
    let stopped = shutdown.clone();
    let router = routes::router(app);
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stopped.cancelled_owned())
            .await
    });
    tracing::info!(%url, "demo SP listening");
    Ok(DemoSpHandle {
        addr,
        url,
        shutdown,
        task,
    })
}

/// The redirect URI an SP at `public_url` registers: `<public_url>/callback`.
pub fn redirect_uri(public_url: &str) -> String {
    format!("{}/callback", public_url.trim_end_matches('/'))
}

/// The post-logout redirect URI an SP at `public_url` registers: `<public_url>/logged-out`.
pub fn post_logout_redirect_uri(public_url: &str) -> String {
    format!("{}/logged-out", public_url.trim_end_matches('/'))
}

/// The back-channel logout URI an SP at `public_url` registers: `<public_url>/backchannel-logout`.
pub fn backchannel_logout_uri(public_url: &str) -> String {
    format!("{}/backchannel-logout", public_url.trim_end_matches('/'))
}

impl DemoSpHandle {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The SP's base URL, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn redirect_uri(&self) -> String {
        redirect_uri(&self.url)
    }

    pub fn post_logout_redirect_uri(&self) -> String {
        post_logout_redirect_uri(&self.url)
    }

    /// A token cancelled when this SP is told to stop.
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

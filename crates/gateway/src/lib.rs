//! The gateway is Relais's only HTTP surface, for browsers and for service providers'
//! back ends. It terminates TLS, enforces request limits and timeouts, sets the security
//! headers on every response, reads and writes the hub's cookies, turns each request into
//! a call to the oidc-front gRPC service and renders what comes back (redirects, the IdP
//! chooser, error pages, JSON answers). Under `/api/support/v1` it maps the support API's
//! JSON to the support gRPC service and serves its OpenAPI document; under
//! `/api/investigations/v1` the investigation API, to the proof store's `SearchConnections`. It owns nothing persistent and holds no business
//! rules: HTTP only. Every protocol decision (validation, which error, which redirect) is
//! oidc-front's; the only errors the gateway produces itself are about HTTP (a request it
//! cannot parse, a page that does not exist, a backend it cannot reach).

mod account;
mod config;
mod error;
mod forwarded;
mod investigate_api;
mod pages;
mod proxy_protocol;
mod render;
mod request;
mod routes;
mod server;
mod support_api;
mod tls;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{GatewayConfig, TlsConfig};
pub use error::GatewayError;
pub use forwarded::{ForwardedHeader, ProxyNetwork};
pub use routes::Backends;

/// Serves the gateway on `listener` until `shutdown` is cancelled, then stops accepting,
/// lets requests in flight finish (within the request timeout) and ends the task.
///
/// Fails before serving if the configuration is invalid or the TLS files cannot be used.
pub async fn start(
    config: GatewayConfig,
    listener: TcpListener,
    backends: Backends,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>, GatewayError> {
    config.validate()?;
    let acceptor = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let state = Arc::new(routes::AppState::new(&config, backends));
    let app = routes::router(state);
    match listener.local_addr() {
        Ok(addr) => tracing::info!(
            %addr,
            tls = acceptor.is_some(),
            proxy_protocol = config.proxy_protocol,
            "gateway listening"
        ),
        Err(e) => tracing::warn!(error = %e, "gateway listening on an unknown address"),
    }
    let listening = server::Listening {
        tls: acceptor,
        proxy_protocol: config.proxy_protocol.then(|| {
            Arc::new(forwarded::Forwarding::new(
                &config.trusted_proxies,
                config.forwarded_header,
            ))
        }),
    };
    let timeout = config.request_timeout();
    Ok(tokio::spawn(server::serve(
        listener, app, listening, shutdown, timeout,
    )))
}

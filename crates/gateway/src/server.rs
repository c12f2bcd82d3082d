//! The accept loop: an optional PROXY protocol header from trusted load balancers, optional
//! TLS, HTTP/1.1 and HTTP/2 through hyper with header limits, the peer address handed to the
//! router, and a graceful drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::forwarded::Forwarding;
use crate::proxy_protocol;

/// Header count and size bounds: far above what a browser or an SP sends, low enough
/// that a client cannot make the gateway buffer much.
const MAX_HEADERS: usize = 64;
const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_H2_STREAMS: u32 = 100;

/// What every connection goes through before HTTP.
#[derive(Clone)]
pub(crate) struct Listening {
    pub(crate) tls: Option<TlsAcceptor>,
    /// Set when every connection must open with a PROXY header: the proxies it may come from.
    pub(crate) proxy_protocol: Option<Arc<Forwarding>>,
}

pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    listening: Listening,
    shutdown: CancellationToken,
    request_timeout: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(request_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(MAX_H2_STREAMS);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "gateway cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            app.clone(),
            listening.clone(),
            builder.clone(),
            graceful.watcher(),
            request_timeout,
        ));
    }
    drop(listener);
    // Keep-alive connections close at once; a request in flight has at most the request
    // timeout left, plus a moment to write its answer.
    let grace = request_timeout + Duration::from_secs(1);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("gateway connections still open after the grace period");
    }
    tracing::info!("gateway stopped");
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    listening: Listening,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
    handshake_timeout: Duration,
) {
    // The header comes first, before any TLS byte; its source is the peer from then on.
    let peer = match &listening.proxy_protocol {
        None => peer,
        Some(trusted) => match proxied_peer(&mut stream, peer, trusted, handshake_timeout).await {
            Some(source) => source,
            None => return,
        },
    };
    let service =
        TowerToHyperService::new(app.map_request(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        }));
    let result = match listening.tls {
        None => {
            watcher
                .watch(builder.serve_connection(TokioIo::new(stream), service))
                .await
        }
        Some(acceptor) => {
            let stream =
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            watcher
                .watch(builder.serve_connection(TokioIo::new(stream), service))
                .await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// The source a trusted load balancer names in its PROXY header (its own address for a
/// `LOCAL` health check), or `None` to close the connection: an untrusted peer, a missing
/// or bad header, or one that does not come in time.
async fn proxied_peer(
    stream: &mut TcpStream,
    peer: SocketAddr,
    trusted: &Forwarding,
    timeout: Duration,
) -> Option<SocketAddr> {
    if !trusted.trusts(peer.ip()) {
        tracing::debug!(%peer, "connection from outside gateway.trusted_proxies closed");
        return None;
    }
    match tokio::time::timeout(timeout, proxy_protocol::read_header(stream)).await {
        Ok(Ok(source)) => Some(source.unwrap_or(peer)),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "PROXY protocol header refused");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "PROXY protocol header timed out");
            None
        }
    }
}

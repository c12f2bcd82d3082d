//! The PROXY protocol from trusted load balancers: the header's source address and port
//! reach oidc-front, before HTTP or TLS; an untrusted peer, a connection without the
//! header and a header that does not come are closed. The sources in the headers are only
//! data: every connection is to 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ppp::v2::{Builder, Command, Protocol, Version};
use relais_gateway::GatewayConfig;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::{self, Call, RawResponse, raw, redirect};

const AUTHORIZE: &str = "GET /authorize?client_id=sp1 HTTP/1.1\r\nHost: relais.test\r\n\
     X-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n";

fn behind_the_balancer(trusted: &[&str]) -> impl FnOnce(&mut GatewayConfig) {
    let trusted: Vec<_> = trusted.iter().map(|n| n.parse().unwrap()).collect();
    move |c| {
        c.trusted_proxies = trusted;
        c.proxy_protocol = true;
    }
}

/// A v2 `PROXY` header for a TCP connection from `source` (to the balancer's port 443).
fn v2(source: &str) -> Vec<u8> {
    let source: SocketAddr = source.parse().unwrap();
    let destination: SocketAddr = if source.is_ipv4() {
        "192.0.2.1:443".parse().unwrap()
    } else {
        "[2001:db8::1]:443".parse().unwrap()
    };
    Builder::with_addresses(
        Version::Two | Command::Proxy,
        Protocol::Stream,
        (source, destination),
    )
    .build()
    .unwrap()
}

/// Sends `bytes` on a fresh connection and reads everything back; an empty answer (or a
/// reset) means the gateway closed the connection without answering.
async fn exchange(gw: &support::Harness, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    // The gateway may have closed already: what it answered is what counts.
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the gateway neither answered nor closed the connection");
    if read.is_err() {
        answer.clear();
    }
    answer
}

fn sources(gw: &support::Harness) -> Vec<(String, u32)> {
    gw.fake
        .calls()
        .into_iter()
        .map(|c| match c {
            Call::Authorize(r) => {
                let s = r.source.unwrap();
                (s.ip, s.port)
            }
            other => panic!("{other:?}"),
        })
        .collect()
}

fn status(answer: &[u8]) -> &str {
    let text = std::str::from_utf8(answer).unwrap();
    text.split(' ').nth(1).unwrap_or("")
}

#[tokio::test]
async fn a_proxy_v2_header_gives_the_source_address_and_port() {
    let gw = support::start(behind_the_balancer(&["127.0.0.1"])).await;
    gw.fake.answer_flow(redirect("https://sp.example/"));
    for source in ["203.0.113.7:4711", "[2001:db8::7]:4711"] {
        let mut bytes = v2(source);
        bytes.extend_from_slice(AUTHORIZE.as_bytes());
        assert_eq!(status(&exchange(&gw, &bytes).await), "303");
    }
    // The header's source is not trusted, so the X-Forwarded-For it sent is ignored.
    assert_eq!(
        sources(&gw),
        [("203.0.113.7".into(), 4711), ("2001:db8::7".into(), 4711)]
    );
}

#[tokio::test]
async fn the_proxy_source_is_the_peer_the_forwarded_for_walk_starts_from() {
    // The balancer forwards for an HTTP proxy of ours in 10.0.0.0/8.
    let gw = support::start(behind_the_balancer(&["127.0.0.1", "10.0.0.0/8"])).await;
    gw.fake.answer_flow(redirect("https://sp.example/"));
    let mut bytes = v2("10.0.0.5:39000");
    bytes.extend_from_slice(
        b"GET /authorize HTTP/1.1\r\nHost: relais.test\r\n\
          X-Forwarded-For: 6.6.6.6, 198.51.100.20\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&exchange(&gw, &bytes).await), "303");
    assert_eq!(sources(&gw), [("198.51.100.20".into(), 0)]);
}

#[tokio::test]
async fn a_proxy_v1_header_and_a_local_health_check_are_accepted() {
    let gw = support::start(behind_the_balancer(&["127.0.0.1"])).await;
    gw.fake.answer_flow(redirect("https://sp.example/"));
    let v1 = format!("PROXY TCP4 203.0.113.7 192.0.2.1 4711 443\r\n{AUTHORIZE}");
    assert_eq!(status(&exchange(&gw, v1.as_bytes()).await), "303");
    assert_eq!(sources(&gw), [("203.0.113.7".into(), 4711)]);

    // A balancer's own health check: LOCAL, no addresses.
    let mut local = Builder::new(Version::Two | Command::Local, 0)
        .build()
        .unwrap();
    local.extend_from_slice(
        b"GET /healthz HTTP/1.1\r\nHost: relais.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&exchange(&gw, &local).await), "200");
}

#[tokio::test]
async fn a_proxy_header_from_an_untrusted_peer_is_refused() {
    // 127.0.0.1, where the test connects from, is not the balancer.
    let gw = support::start(behind_the_balancer(&["192.0.2.0/24"])).await;
    gw.fake.answer_flow(redirect("https://sp.example/"));
    let mut bytes = v2("203.0.113.7:4711");
    bytes.extend_from_slice(AUTHORIZE.as_bytes());
    assert_eq!(exchange(&gw, &bytes).await, b"");
    assert!(gw.fake.calls().is_empty());
}

#[tokio::test]
async fn a_connection_without_the_header_is_refused_when_it_is_required() {
    let gw = support::start(behind_the_balancer(&["127.0.0.1"])).await;
    gw.fake.answer_flow(redirect("https://sp.example/"));
    assert_eq!(exchange(&gw, AUTHORIZE.as_bytes()).await, b"");
    // A v1 line that is not one.
    let bad = format!("PROXY TCP4 nowhere\r\n{AUTHORIZE}");
    assert_eq!(exchange(&gw, bad.as_bytes()).await, b"");
    assert!(gw.fake.calls().is_empty());
}

#[tokio::test]
async fn a_header_that_does_not_come_in_time_closes_the_connection() {
    let gw = support::start(|c| {
        behind_the_balancer(&["127.0.0.1"])(c);
        c.request_timeout_ms = 300;
    })
    .await;
    let started = std::time::Instant::now();
    // Half a header, then silence.
    assert_eq!(
        exchange_silent(&gw, &v2("203.0.113.7:4711")[..10]).await,
        b""
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// Like `exchange`, but keeps its side open: only the gateway can end the connection.
async fn exchange_silent(gw: &support::Harness, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the gateway did not close a connection whose header never came");
    if read.is_err() {
        answer.clear();
    }
    answer
}

#[tokio::test]
async fn a_proxy_header_comes_before_the_tls_handshake() {
    let t = crate::tls::start_tls_with(behind_the_balancer(&["127.0.0.1"])).await;
    t.gw.fake.answer_flow(redirect("https://sp.example/"));
    let mut tcp = TcpStream::connect(t.gw.addr).await.unwrap();
    tcp.write_all(&v2("203.0.113.7:4711")).await.unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(t.roots.clone())
            .with_no_client_auth();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let response: RawResponse = raw(&mut tls, AUTHORIZE).await;
    assert_eq!(response.status, 303);
    assert_eq!(sources(&t.gw), [("203.0.113.7".into(), 4711)]);
}

//! HTTPS: a TLS 1.3 and a TLS 1.2 handshake work with a self-signed certificate; a client
//! that offers at most TLS 1.1 gets no ServerHello.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ProtocolVersion, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::{self, raw};

pub(crate) struct TlsGateway {
    pub(crate) gw: support::Harness,
    pub(crate) roots: RootCertStore,
    _dir: TempDir,
}

/// A directory removed when the test ends.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start_tls() -> TlsGateway {
    start_tls_with(|_| {}).await
}

/// A gateway serving HTTPS with a fresh self-signed certificate for `localhost`, with
/// `edit` applied to its configuration.
pub(crate) async fn start_tls_with(
    edit: impl FnOnce(&mut relais_gateway::GatewayConfig),
) -> TlsGateway {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("relais-gateway-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, key.cert.pem()).unwrap();
    std::fs::write(&key_path, key.signing_key.serialize_pem()).unwrap();
    let gw = support::start(|c| {
        c.allow_plain_http = false;
        c.tls = Some(relais_gateway::TlsConfig {
            cert_path,
            key_path,
        });
        edit(c);
    })
    .await;
    let mut roots = RootCertStore::empty();
    roots.add(key.cert.der().clone()).unwrap();
    TlsGateway {
        gw,
        roots,
        _dir: TempDir(dir),
    }
}

async fn handshake(
    t: &TlsGateway,
    version: &'static rustls::SupportedProtocolVersion,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(t.roots.clone())
        .with_no_client_auth();
    let tcp = TcpStream::connect(t.gw.addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn tls13_serves_with_hsts() {
    let t = start_tls().await;
    let mut stream = handshake(&t, &rustls::version::TLS13).await;
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    let response = raw(
        &mut stream,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "ok");
    assert_eq!(
        response.header("strict-transport-security"),
        Some("max-age=63072000")
    );
}

#[tokio::test]
async fn tls12_uses_an_ecdhe_aead_suite() {
    let t = start_tls().await;
    let mut stream = handshake(&t, &rustls::version::TLS12).await;
    let suite = stream.get_ref().1.negotiated_cipher_suite().unwrap();
    let name = format!("{:?}", suite.suite());
    assert!(name.starts_with("TLS_ECDHE_"), "{name}");
    assert!(
        name.contains("_GCM_") || name.contains("CHACHA20_POLY1305"),
        "{name}"
    );
    let response = raw(
        &mut stream,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 200);
}

/// A ClientHello written by hand, since rustls cannot speak TLS 1.1 at all: the same
/// hello is sent as TLS 1.2 (accepted) and as TLS 1.1 (refused), so that the version
/// alone makes the difference.
fn client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut body = version.to_vec();
    body.extend([0x42; 32]); // random
    body.push(0); // no session id
    // ECDHE-ECDSA with AES-GCM, then the CBC suites old clients offer.
    let suites: [u16; 5] = [0xc02b, 0xc02c, 0xc013, 0xc009, 0x002f];
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend(s.to_be_bytes());
    }
    body.extend([1, 0]); // compression: null only
    let host = b"localhost";
    let mut sni = ((host.len() + 3) as u16).to_be_bytes().to_vec();
    sni.push(0);
    sni.extend((host.len() as u16).to_be_bytes());
    sni.extend(host);
    let extensions: [(u16, Vec<u8>); 4] = [
        (0x0000, sni),
        (0x000a, vec![0, 4, 0x00, 0x1d, 0x00, 0x17]), // x25519, secp256r1
        (0x000b, vec![1, 0]),                         // uncompressed points
        (0x000d, vec![0, 4, 0x04, 0x03, 0x08, 0x04]), // ecdsa_p256_sha256, rsa_pss_sha256
    ];
    let mut encoded = Vec::new();
    for (kind, data) in extensions {
        encoded.extend(kind.to_be_bytes());
        encoded.extend((data.len() as u16).to_be_bytes());
        encoded.extend(data);
    }
    body.extend((encoded.len() as u16).to_be_bytes());
    body.extend(encoded);
    let mut handshake = vec![0x01];
    handshake.extend(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

/// The first record the server sends back: its content type and first bytes.
async fn first_answer(t: &TlsGateway, hello: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(t.gw.addr).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut answer = vec![0; 16];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer.truncate(n);
    answer
}

#[tokio::test]
async fn a_tls11_client_is_refused() {
    let t = start_tls().await;
    let tls12 = first_answer(&t, &client_hello([0x03, 0x03])).await;
    // Handshake record (22) holding a ServerHello (2).
    assert_eq!(
        (tls12.first(), tls12.get(5)),
        (Some(&0x16), Some(&0x02)),
        "{tls12:?}"
    );
    let tls11 = first_answer(&t, &client_hello([0x03, 0x02])).await;
    // A fatal (2) alert record (21): protocol_version (70).
    assert_eq!(
        (tls11.first(), tls11.get(5), tls11.get(6)),
        (Some(&0x15), Some(&0x02), Some(&70)),
        "{tls11:?}"
    );
}

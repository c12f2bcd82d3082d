//! mTLS between services (rustls, ring, TLS 1.3 only): one identity's certificate, key
//! and CA, read again every `grpc.reload_seconds` when a connection is made; the server's
//! accept loop and the client's connector.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::RuntimeError;
use crate::peer::{Peer, PeerConnection, Transport};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at most; beyond, connections wait in the listen backlog.
const MAX_HANDSHAKES: usize = 256;

/// Where one identity's files are.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub ca_file: String,
    pub cert_file: String,
    pub key_file: String,
}

/// One identity's TLS settings, server and client side, kept fresh from its files.
pub struct Material {
    files: TlsFiles,
    /// The identity its certificate must carry (any operator when `None`).
    expected: Option<Peer>,
    reload: Duration,
    state: Mutex<Loaded>,
}

struct Loaded {
    bytes: Vec<u8>,
    checked: Instant,
    peer: Peer,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

fn tls_error(file: &str, reason: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Tls(format!("{file}: {reason}"))
}

impl Material {
    /// Reads the files now: a missing or wrong file fails here, at start.
    pub fn load(
        files: TlsFiles,
        expected: Option<Peer>,
        reload: Duration,
    ) -> Result<Arc<Material>, RuntimeError> {
        let bytes = read_all(&files)?;
        let loaded = build(&files, expected.as_ref(), bytes)?;
        Ok(Arc::new(Material {
            files,
            expected,
            reload,
            state: Mutex::new(loaded),
        }))
    }

    /// The identity the certificate carries.
    pub fn peer(&self) -> Peer {
        self.lock().peer.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        // Replaced whole under the lock: a panic cannot leave it half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current configurations, after reading the files again if it is time to.
    fn current(&self) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let mut state = self.lock();
        if state.checked.elapsed() >= self.reload {
            state.checked = Instant::now();
            match read_all(&self.files) {
                Ok(bytes) if bytes != state.bytes => {
                    match build(&self.files, self.expected.as_ref(), bytes) {
                        Ok(fresh) => {
                            tracing::info!(identity = %fresh.peer.dns_name(), "gRPC certificates reloaded");
                            *state = fresh;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "new gRPC certificates refused; the previous ones stay");
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "gRPC certificates unreadable; the previous ones stay")
                }
            }
        }
        (state.server.clone(), state.client.clone())
    }

    /// The TLS settings a server of this identity uses for its next connection.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current().0
    }

    /// The TLS settings a client of this identity uses for its next connection.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.current().1
    }
}

/// Each file by its path, links followed anew: a Kubernetes Secret's `..data` link swapped
/// is taken. A read across a swap mixes versions only until the next reload.
fn read_all(files: &TlsFiles) -> Result<Vec<u8>, RuntimeError> {
    let mut all = Vec::new();
    for file in [&files.ca_file, &files.cert_file, &files.key_file] {
        all.extend(std::fs::read(file).map_err(|e| tls_error(file, e))?);
        all.push(0);
    }
    Ok(all)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(
    files: &TlsFiles,
    expected: Option<&Peer>,
    bytes: Vec<u8>,
) -> Result<Loaded, RuntimeError> {
    let certs = |file: &str| -> Result<Vec<CertificateDer<'static>>, RuntimeError> {
        let certs = CertificateDer::pem_file_iter(file)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| tls_error(file, e))?;
        if certs.is_empty() {
            return Err(tls_error(file, "no certificate in the file"));
        }
        Ok(certs)
    };
    let mut roots = RootCertStore::empty();
    for ca in certs(&files.ca_file)? {
        roots.add(ca).map_err(|e| tls_error(&files.ca_file, e))?;
    }
    let roots = Arc::new(roots);
    let chain = certs(&files.cert_file)?;
    let key =
        PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| tls_error(&files.key_file, e))?;
    let peer = chain.first().and_then(peer_of).ok_or_else(|| {
        tls_error(
            &files.cert_file,
            "no Relais identity (*.relais.internal) in its SAN",
        )
    })?;
    match expected {
        Some(want) if *want != peer => {
            return Err(tls_error(
                &files.cert_file,
                format!("is {}, not {}", peer.dns_name(), want.dns_name()),
            ));
        }
        None if peer.role != crate::peer::Role::Operator => {
            return Err(tls_error(
                &files.cert_file,
                format!("is {}, not an operator's", peer.dns_name()),
            ));
        }
        _ => {}
    }
    let h2 = vec![b"h2".to_vec()];
    // No certificate is let through the handshake so that the guard answers UNAUTHENTICATED
    // in gRPC terms; a certificate that fails verification ends the handshake.
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls_error(&files.ca_file, e))?;
    let mut server = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| RuntimeError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| tls_error(&files.key_file, e))?;
    server.alpn_protocols = h2.clone();
    let mut client = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| RuntimeError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| tls_error(&files.key_file, e))?;
    client.alpn_protocols = h2;
    Ok(Loaded {
        bytes,
        checked: Instant::now(),
        peer,
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

/// The Relais identity in a (verified) certificate's SAN; none if there are several.
pub fn peer_of(cert: &CertificateDer<'_>) -> Option<Peer> {
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    let mut peers = cert.valid_dns_names().filter_map(Peer::from_dns_name);
    let peer = peers.next()?;
    peers.next().is_none().then_some(peer)
}

/// A connection with what the server knows of its peer (tonic puts it on every request).
pub struct Conn<T> {
    io: T,
    info: PeerConnection,
}

impl<T> tonic::transport::server::Connected for Conn<T> {
    type ConnectInfo = PeerConnection;

    fn connect_info(&self) -> PeerConnection {
        self.info.clone()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Conn<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Conn<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

pub type TlsConn = Conn<tokio_rustls::server::TlsStream<TcpStream>>;
pub type PlainConn = Conn<TcpStream>;

impl PlainConn {
    pub fn plain(io: TcpStream) -> PlainConn {
        let remote = io.peer_addr().ok();
        // Nagle's algorithm would hold each small gRPC frame for a delayed ACK.
        let _ = io.set_nodelay(true);
        Conn {
            io,
            info: PeerConnection {
                remote,
                transport: Transport::Plaintext,
            },
        }
    }
}

/// Accepts TCP connections and completes their handshakes concurrently (a slow or silent
/// client holds only its own task, [`MAX_HANDSHAKES`] at a time); handshakes that fail are
/// dropped and logged.
pub fn accept_tls(
    listener: TcpListener,
    material: Arc<Material>,
    shutdown: CancellationToken,
) -> tokio::sync::mpsc::Receiver<TlsConn> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let slot = tokio::select! {
                _ = shutdown.cancelled() => return,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
            };
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "gRPC accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = tokio_rustls::TlsAcceptor::from(material.server_config());
            let tx = tx.clone();
            tokio::spawn(async move {
                let _slot = slot;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let peer = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(peer_of);
                        let conn = Conn {
                            io: tls,
                            info: PeerConnection {
                                remote: Some(remote),
                                transport: Transport::Tls(peer),
                            },
                        };
                        let _ = tx.send(conn).await;
                    }
                    Ok(Err(e)) => tracing::warn!(%remote, error = %e, "gRPC TLS handshake refused"),
                    Err(_) => tracing::warn!(%remote, "gRPC TLS handshake timed out"),
                }
            });
        }
    });
    rx
}

/// Opens TLS connections to one service, checking that its certificate is that service's
/// whatever address it is reached at.
#[derive(Clone)]
pub struct Connector {
    pub(crate) material: Arc<Material>,
    pub(crate) server: ServerName<'static>,
}

type ClientIo = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;

impl tower::Service<http::Uri> for Connector {
    type Response = ClientIo;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<ClientIo>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.material.client_config());
        let server = self.server.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host in the URL"))?;
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(server, tcp).await?;
            Ok(hyper_util::rt::TokioIo::new(tls))
        })
    }
}

//! The HTTPS server configuration: TLS 1.2 and 1.3 only, ECDHE key exchange with AEAD
//! suites only (AES-GCM, ChaCha20-Poly1305), as the ANSSI recommends.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::{cipher_suite as suite, default_provider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::error::GatewayError;

/// Every suite rustls offers is AEAD, and every TLS 1.2 one ECDHE; listing them pins that
/// choice against a future default that would add others.
const SUITES: [rustls::SupportedCipherSuite; 9] = [
    suite::TLS13_AES_256_GCM_SHA384,
    suite::TLS13_AES_128_GCM_SHA256,
    suite::TLS13_CHACHA20_POLY1305_SHA256,
    suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

pub(crate) fn acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, GatewayError> {
    let cert_file = tls.cert_path.display().to_string();
    let key_file = tls.key_path.display().to_string();
    let certs = CertificateDer::pem_file_iter(&tls.cert_path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error(&cert_file, e))?;
    if certs.is_empty() {
        return Err(tls_error(&cert_file, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_path).map_err(|e| tls_error(&key_file, e))?;
    let provider = CryptoProvider {
        cipher_suites: SUITES.to_vec(),
        ..default_provider()
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| tls_error(&cert_file, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls_error(&key_file, e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn tls_error(path: &str, reason: impl std::fmt::Display) -> GatewayError {
    GatewayError::Tls {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

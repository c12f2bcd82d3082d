//! TLS to PostgreSQL as libpq's `sslmode` has it, through rustls with ring (the one
//! crypto provider of the workspace): `prefer` and `require` encrypt and check the
//! certificate only when a CA file is given, `verify-ca` checks it was issued by that CA,
//! `verify-full` that it was, for the host connected to.

use std::sync::Arc;

use relais_config::{DatabaseConfig, SslMode};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::RuntimeError;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Applies `mode` to `pg` and gives the connector that speaks it.
pub fn connector(
    db: &DatabaseConfig,
    mode: SslMode,
    pg: &mut tokio_postgres::Config,
) -> Result<MakeRustlsConnect, RuntimeError> {
    pg.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    let ca_file = db.ca_file.trim();
    let verifier: Arc<dyn ServerCertVerifier> = if ca_file.is_empty() {
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) {
            return Err(RuntimeError::Database(format!(
                "sslmode {} needs database.ca_file",
                mode.name()
            )));
        }
        Arc::new(Unverified)
    } else {
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca_file)
            .map_err(|e| RuntimeError::Database(format!("database.ca_file {ca_file}: {e}")))?;
        for cert in certs {
            let cert = cert
                .map_err(|e| RuntimeError::Database(format!("database.ca_file {ca_file}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| RuntimeError::Database(format!("database.ca_file {ca_file}: {e}")))?;
        }
        if roots.is_empty() {
            return Err(RuntimeError::Database(format!(
                "database.ca_file {ca_file}: no certificate in it"
            )));
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| RuntimeError::Database(format!("database.ca_file {ca_file}: {e}")))?;
        if mode == SslMode::VerifyFull {
            webpki
        } else {
            Arc::new(AnyName(webpki))
        }
    };
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| RuntimeError::Database(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The handshake's signatures checked with the provider's algorithms.
fn supported() -> rustls::crypto::WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// `require` or `prefer` without a CA: encryption against a passive listener only, as
/// libpq does (the handshake itself is still checked).
#[derive(Debug)]
struct Unverified;

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &supported())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &supported())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        supported().supported_schemes()
    }
}

/// `verify-ca`: the chain checked against the CA, whatever name the certificate is for
/// (webpki checks the chain before the name, so a name error means the chain held).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use relais_config::{DatabaseConfig, Secret, SslMode};
    use relais_testkit::TestDb;

    /// Whether the connection `db` gives the schema's pool is encrypted, or why none opened.
    async fn encrypted(db: &DatabaseConfig) -> Result<bool, String> {
        let pool = crate::pg_pool(db, "tls_check")
            .await
            .map_err(|e| e.to_string())?;
        let client = pool.get().await.map_err(|e| e.to_string())?;
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    }

    fn config(url: String, sslmode: SslMode, ca_file: &std::path::Path) -> DatabaseConfig {
        DatabaseConfig {
            url: Secret::new(url),
            pool_size: 1,
            sslmode,
            ca_file: ca_file.display().to_string(),
            ..DatabaseConfig::default()
        }
    }

    #[tokio::test]
    async fn sslmode_is_honoured_and_verify_full_checks_the_ca_and_the_host() {
        let db = TestDb::create().await;
        let server_cert = db.server_tls().await;
        let dir = std::env::temp_dir().join(format!("relais-pg-tls-{}", uuid_like()));
        std::fs::create_dir_all(&dir).unwrap();
        let server_ca = dir.join("server.pem");
        std::fs::write(&server_ca, &server_cert).unwrap();
        // A CA that issued nothing the server holds.
        crate::pki::init(&dir.join("other"), 1, 1).unwrap();
        let other_ca = dir.join("other").join("ca.pem");
        let none = std::path::Path::new("");
        let url = db.url().to_string();
        let localhost = url.replace("127.0.0.1", "localhost");

        let with = |query: &str| format!("{url}?{query}");
        assert_eq!(
            encrypted(&config(with("sslmode=require"), SslMode::Disable, none)).await,
            Ok(true)
        );
        assert_eq!(
            encrypted(&config(url.clone(), SslMode::Require, none)).await,
            Ok(true)
        );
        assert_eq!(
            encrypted(&config(url.clone(), SslMode::Prefer, none)).await,
            Ok(true)
        );
        assert_eq!(
            encrypted(&config(with("sslmode=disable"), SslMode::Require, none)).await,
            Ok(false)
        );
        // The server's own certificate as the CA, for the name it carries.
        assert_eq!(
            encrypted(&config(localhost.clone(), SslMode::VerifyFull, &server_ca)).await,
            Ok(true)
        );
        assert_eq!(
            encrypted(&config(url.clone(), SslMode::VerifyCa, &server_ca)).await,
            Ok(true)
        );
        // Another CA, or another name than the certificate's, is refused.
        for (target, mode, ca) in [
            (&localhost, SslMode::VerifyFull, &other_ca),
            (&url, SslMode::VerifyCa, &other_ca),
            (&url, SslMode::VerifyFull, &server_ca),
            (&localhost, SslMode::Require, &other_ca),
        ] {
            let err = encrypted(&config(target.clone(), mode, ca))
                .await
                .expect_err(&format!("{target} {mode:?} {ca:?} was accepted"));
            assert!(err.contains("certificate"), "{mode:?}: {err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
        db.cleanup().await;
    }

    fn uuid_like() -> String {
        format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        )
    }
}

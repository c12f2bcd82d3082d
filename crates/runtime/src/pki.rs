//! The deployment's certificates (`relais admin pki init|issue`, and tests): a CA and one
//! certificate per service or operator, its identity as a DNS name in the SAN. Keys are
//! ECDSA P-256 and written readable by their owner only.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::RuntimeError;
use crate::peer::{Peer, Role};

/// A PEM certificate and its PEM private key.
pub struct Pem {
    pub cert: String,
    pub key: String,
}

fn pki_error(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Tls(format!("certificate generation: {e}"))
}

/// The CA's name and usages; a certificate it issues names it as its issuer.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "Relais services CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A new CA for one deployment, valid from now for `days`.
pub fn new_ca(days: i64) -> Result<Pem, RuntimeError> {
    let key = KeyPair::generate().map_err(pki_error)?;
    let mut params = ca_params();
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(days);
    let cert = params.self_signed(&key).map_err(pki_error)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A certificate for `peer` signed by `ca`, valid between the two instants.
pub fn issue(
    ca: &Pem,
    peer: &Peer,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Pem, RuntimeError> {
    let ca_key = KeyPair::from_pem(&ca.key).map_err(pki_error)?;
    // Signing needs the CA's name and key only (not its validity), both rebuilt here.
    let issuer = Issuer::new(ca_params(), ca_key);
    let key = KeyPair::generate().map_err(pki_error)?;
    let mut params = CertificateParams::new(vec![peer.dns_name()]).map_err(pki_error)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, peer.dns_name());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // An operator only calls; a service serves and calls.
    params.extended_key_usages = match peer.role {
        Role::Operator => vec![ExtendedKeyUsagePurpose::ClientAuth],
        _ => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer).map_err(pki_error)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A certificate for `peer` valid from now for `days`.
pub fn issue_for_days(ca: &Pem, peer: &Peer, days: i64) -> Result<Pem, RuntimeError> {
    let now = OffsetDateTime::now_utc();
    issue(
        ca,
        peer,
        now - Duration::minutes(5),
        now + Duration::days(days),
    )
}

/// The file names in a PKI directory: `ca.pem`, `ca.key`, `<identity>.pem`, `<identity>.key`
/// (`operator.pem` for an operator, whatever their name).
pub fn cert_path(dir: &Path, role: Role) -> PathBuf {
    dir.join(format!("{}.pem", role.name()))
}

pub fn key_path(dir: &Path, role: Role) -> PathBuf {
    dir.join(format!("{}.key", role.name()))
}

pub fn ca_path(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}

/// Makes `dir` a new deployment's PKI: a CA (valid `ca_days`) and a certificate for every
/// service (valid `days`). Refuses to overwrite an existing CA.
pub fn init(dir: &Path, ca_days: i64, days: i64) -> Result<(), RuntimeError> {
    if ca_path(dir).exists() {
        return Err(RuntimeError::Tls(format!(
            "{} exists: a deployment has one CA (issue certificates from it with `pki issue`)",
            ca_path(dir).display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| pki_error(format!("{}: {e}", dir.display())))?;
    let ca = new_ca(ca_days)?;
    write(&ca_path(dir), &ca.cert, false)?;
    write(&dir.join("ca.key"), &ca.key, true)?;
    for role in Role::ALL.into_iter().filter(|r| *r != Role::Operator) {
        issue_into(dir, &Peer::service(role), days)?;
    }
    Ok(())
}

/// Issues (or renews) `peer`'s certificate from the CA in `dir`.
pub fn issue_into(dir: &Path, peer: &Peer, days: i64) -> Result<(), RuntimeError> {
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).map_err(|e| pki_error(format!("{}: {e}", p.display())))
    };
    let ca = Pem {
        cert: read(ca_path(dir))?,
        key: read(dir.join("ca.key"))?,
    };
    let pem = issue_for_days(&ca, peer, days)?;
    // The key first: a reload between the two writes then meets a key its old certificate
    // does not match, refuses it and keeps the previous pair.
    write(&key_path(dir, peer.role), &pem.key, true)?;
    write(&cert_path(dir, peer.role), &pem.cert, false)
}

/// Writes `text` to `path` through a temporary file renamed over it (a reader never sees
/// half a file); `secret` files are readable by their owner only.
pub fn write(path: &Path, text: &str, secret: bool) -> Result<(), RuntimeError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let fail = |e: std::io::Error| pki_error(format!("{}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(&tmp).map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

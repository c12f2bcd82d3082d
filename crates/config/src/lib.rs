//! Configuration loading for every Relais binary: defaults, then a TOML file, then
//! `RELAIS__SECTION__FIELD` environment variables, each layer overriding the one before.
//! Unknown fields are rejected by the config types themselves (`deny_unknown_fields`).
//! This crate does no I/O beyond reading the one file it is given, and never prints a
//! [`Secret`].

use std::fmt;
use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod kek;
pub use kek::{DEVELOPMENT_KEK, KekFields, KekSettings};

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(String),
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("invalid configuration: `{field}` {reason}")]
    Invalid { field: String, reason: String },
}

impl ConfigError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Loads `T` from its defaults, the TOML file if given, and the environment.
///
/// `env` is the environment to read (a list of `(name, value)`), so tests need not touch
/// the process environment; binaries pass `std::env::vars()`.
pub fn load<T>(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::MissingFile(path.display().to_string()));
        }
        figment = figment.merge(Toml::file(path));
    }
    let vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("RELAIS__"))
        .collect();
    figment = figment.merge(env_layer(vars));
    figment
        .extract()
        .map_err(|e| ConfigError::Parse(e.to_string()))
}

/// Parses a TOML document (defaults first), for configs embedded in tests or tools.
pub fn from_toml_str<T>(toml: &str) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    Figment::from(Serialized::defaults(T::default()))
        .merge(Toml::string(toml))
        .extract()
        .map_err(|e| ConfigError::Parse(e.to_string()))
}

/// Nests `RELAIS__A__B=v` as `{a: {b: v}}`, values parsed as figment parses env values.
fn env_layer(vars: Vec<(String, String)>) -> Serialized<Dict> {
    let mut root = Dict::new();
    for (key, raw) in vars {
        let path: Vec<String> = key
            .trim_start_matches("RELAIS__")
            .split("__")
            .map(str::to_lowercase)
            .collect();
        let value: Value = raw.parse().unwrap_or_else(|_| Value::from(raw.clone()));
        insert(&mut root, &path, value);
    }
    Serialized::defaults(root)
}

fn insert(dict: &mut Dict, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            } else {
                let mut inner = Dict::new();
                insert(&mut inner, rest, value);
                *entry = Value::from(inner);
            }
        }
    }
}

/// A value that must never reach a log: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The languages the hub's pages are written in, the first being the default.
pub const PAGE_LANGUAGES: [&str; 2] = ["fr", "en"];

/// The language of a page: the first of `ui_locales` (space-separated, OIDC), then of
/// `Accept-Language` (in its order; weights are not weighed), that the hub writes;
/// French otherwise. The one rule the gateway and oidc-front both follow, so that a page
/// never changes language between them.
pub fn page_language(ui_locales: &str, accept_language: &str) -> &'static str {
    let prefs = ui_locales.split(' ').chain(
        accept_language
            .split(',')
            .map(|p| p.split(';').next().unwrap_or("")),
    );
    for p in prefs {
        let lang = p
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_lowercase();
        if let Some(known) = PAGE_LANGUAGES.iter().find(|l| **l == lang) {
            return known;
        }
    }
    PAGE_LANGUAGES[0]
}

/// An e-mail address's shape: one local part (64 at most) and a dotted domain of letters,
/// digits and hyphens, 254 characters in all, no spaces. Enough to refuse a typo in a
/// setting, a seed or an IdP's claim; not a full RFC 5321 parser.
pub fn is_email_address(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
}

/// The PostgreSQL database shared by the services (each owns a schema in it).
///
/// `{service}` in `url` and `password_file` is replaced by the schema of the service
/// connecting (`registry`, `oidc_front`, `trace`, `support`), so that one setting gives
/// each service a role of its own, in `relais all` as in split processes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// A libpq-style URL, e.g. `postgres://relais_{service}@db.internal:5432/relais`.
    pub url: Secret,
    /// Connections per service pool.
    pub pool_size: usize,
    /// A file holding the password of the URL's user (a trailing newline ignored), e.g.
    /// `/run/secrets/relais-db-{service}`; empty: the URL's own, if any.
    pub password_file: String,
    /// The administrative connection `relais admin db-roles` creates the roles with; no
    /// service reads it.
    pub admin_url: Secret,
    /// TLS to PostgreSQL, as libpq's `sslmode`; a `sslmode` in the URL wins.
    pub sslmode: SslMode,
    /// PEM file of the CA that issued the server's certificate: checked with `verify-ca`
    /// and `verify-full` (required there), and with `prefer` and `require` when set, as
    /// libpq does with a root certificate.
    pub ca_file: String,
}

/// libpq's `sslmode`: how a connection to PostgreSQL is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP: the hub's default, as in earlier releases (on loopback TLS protects
    /// nothing and costs a handshake per connection; off it, refused).
    #[default]
    Disable,
    /// TLS if the server offers it, plain TCP otherwise (libpq's default).
    Prefer,
    /// TLS or no connection; the certificate checked only against `ca_file` if set.
    Require,
    /// TLS with a certificate issued by `ca_file`'s CA, for any host name.
    VerifyCa,
    /// TLS with a certificate issued by `ca_file`'s CA for the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A PostgreSQL URL split into what `tokio-postgres` parses and the `sslmode` it does not
/// know all of (`verify-ca`, `verify-full`).
fn split_sslmode(field: &str, url: &str) -> Result<(String, Option<SslMode>), ConfigError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    let mut mode = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslmode", value)) => {
                mode = Some(SslMode::parse(value).ok_or_else(|| {
                    ConfigError::invalid(
                        field,
                        format!(
                            "has sslmode={value}: disable, prefer, require, verify-ca or \
                             verify-full"
                        ),
                    )
                })?);
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, mode))
}

/// The placeholder of `database.url` and `database.password_file`.
pub const SERVICE_PLACEHOLDER: &str = "{service}";

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: Secret::new("postgres://postgres@127.0.0.1:5432/relais"),
            pool_size: 16,
            password_file: String::new(),
            admin_url: Secret::new(""),
            sslmode: SslMode::Disable,
            ca_file: String::new(),
        }
    }
}

impl DatabaseConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let is_pg = |u: &str| u.starts_with("postgres://") || u.starts_with("postgresql://");
        if !is_pg(self.url.expose()) {
            return Err(ConfigError::invalid(
                "database.url",
                "must be a postgres:// URL",
            ));
        }
        if !self.admin_url.is_empty() && !is_pg(self.admin_url.expose()) {
            return Err(ConfigError::invalid(
                "database.admin_url",
                "must be a postgres:// URL",
            ));
        }
        if self.pool_size == 0 {
            return Err(ConfigError::invalid(
                "database.pool_size",
                "must be at least 1",
            ));
        }
        self.check_tls("database.url", self.url.expose())?;
        // The administrative link carries a role that creates roles: no weaker than the
        // services' own.
        if !self.admin_url.is_empty() {
            self.check_tls("database.admin_url", self.admin_url.expose())?;
        }
        Ok(())
    }

    /// The TLS rule of a link to PostgreSQL given by `field`: verification needs its CA,
    /// and off this machine the link is encrypted without falling back to clear.
    fn check_tls(&self, field: &str, url: &str) -> Result<(), ConfigError> {
        let (url, mode) = split_sslmode(field, url)?;
        let mode = mode.unwrap_or(self.sslmode);
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && self.ca_file.trim().is_empty()
        {
            return Err(ConfigError::invalid(
                "database.ca_file",
                format!(
                    "must be set with sslmode {}: the CA the server's certificate is checked against",
                    mode.name()
                ),
            ));
        }
        if matches!(mode, SslMode::Disable | SslMode::Prefer) && !is_local_database(&url) {
            // The services' link is named by the mode's field, as it always was; the
            // administrative one by its own URL, the link at fault.
            let (named, what) = if field == "database.url" {
                ("database.sslmode", "is")
            } else {
                (field, "has sslmode")
            };
            return Err(ConfigError::invalid(
                named,
                format!(
                    "{what} {} and the database is not on this machine: `disable` sends \
                     passwords and identity data in clear, and `prefer` falls back to clear \
                     whenever someone on the path answers that TLS is not offered; use \
                     verify-full (or verify-ca, require) in database.sslmode or the URL",
                    mode.name()
                ),
            ));
        }
        Ok(())
    }

    /// `url` without its `sslmode`, and the mode in force (the URL's, or `sslmode`).
    pub fn connection(&self, url: &str) -> Result<(String, SslMode), ConfigError> {
        let (url, mode) = split_sslmode("database.url", url)?;
        Ok((url, mode.unwrap_or(self.sslmode)))
    }

    /// The URL `schema`'s service connects with.
    pub fn url_for(&self, schema: &str) -> Secret {
        Secret::new(self.url.expose().replace(SERVICE_PLACEHOLDER, schema))
    }

    /// The password file of `schema`'s service, if one is set.
    pub fn password_file_for(&self, schema: &str) -> Option<String> {
        let file = self.password_file.trim();
        (!file.is_empty()).then(|| file.replace(SERVICE_PLACEHOLDER, schema))
    }

    /// Whether each service connects as a role of its own.
    pub fn has_service_roles(&self) -> bool {
        self.url.expose().contains(SERVICE_PLACEHOLDER)
    }
}

/// How the services' gRPC links are secured, shared by every service of the hub.
///
/// Each service presents its own certificate (identity `<service>.relais.internal` in the
/// SAN) from the deployment's CA and checks its peer's; `{service}` in `cert_file` and
/// `key_file` is replaced by the service's name (`operator` for `relais admin`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// PEM file of the deployment's CA (the only issuer a peer certificate may have).
    pub ca_file: String,
    /// PEM certificate chain of the service, e.g. `/etc/relais/tls/{service}.pem`.
    pub cert_file: String,
    /// PEM private key of the service, e.g. `/etc/relais/tls/{service}.key`.
    pub key_file: String,
    /// Plain HTTP/2 between services, no certificate and no caller identity: development
    /// on loopback only (refused when the issuer or a listen address is not loopback).
    pub insecure_plaintext: bool,
    /// How often the three files are read again (a renewed certificate or CA is used for
    /// the connections opened after that).
    pub reload_seconds: u32,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            insecure_plaintext: false,
            reload_seconds: 60,
        }
    }
}

impl GrpcConfig {
    /// `issuer` is the hub's public URL; `listens` the gRPC addresses served (`[section, addr]`).
    pub fn validate(&self, issuer: &str, listens: &[(&str, &str)]) -> Result<(), ConfigError> {
        if self.insecure_plaintext {
            if !is_loopback_url(issuer) {
                return Err(ConfigError::invalid(
                    "grpc.insecure_plaintext",
                    format!("is for development on loopback only, and the issuer {issuer} is not"),
                ));
            }
            for (field, addr) in listens {
                let host = addr.rsplit_once(':').map_or(*addr, |(h, _)| h);
                if !addr.is_empty() && !is_loopback_host(host) {
                    return Err(ConfigError::invalid(
                        "grpc.insecure_plaintext",
                        format!("is for development on loopback only, and {field} is {addr}"),
                    ));
                }
            }
            return Ok(());
        }
        for (field, value) in [
            ("grpc.ca_file", &self.ca_file),
            ("grpc.cert_file", &self.cert_file),
            ("grpc.key_file", &self.key_file),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::invalid(
                    field,
                    "must be set: services authenticate each other with certificates \
                     (`relais admin pki init DIR` makes them; grpc.insecure_plaintext is for \
                     development on loopback)",
                ));
            }
        }
        if self.reload_seconds == 0 {
            return Err(ConfigError::invalid(
                "grpc.reload_seconds",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The path of `template` (`cert_file` or `key_file`) for `service`.
    pub fn path_for(template: &str, service: &str) -> String {
        template.replace("{service}", service)
    }
}

/// Whether a PostgreSQL URL reaches a server on this machine: a loopback host, or a Unix
/// socket (no host, or a `host=/path` parameter).
fn is_local_database(url: &str) -> bool {
    let param = url.split_once('?').and_then(|(_, q)| {
        q.split('&')
            .find_map(|p| p.strip_prefix("host="))
            .map(|h| h.replace("%2F", "/").replace("%2f", "/"))
    });
    let host = param.unwrap_or_else(|| url_host(url).to_string());
    // Several hosts (`a,b`) are local only if each is.
    host.split(',')
        .all(|h| h.is_empty() || h.starts_with('/') || is_loopback_host(h))
}

/// Whether `http(s)://host[:port]/…` names this machine (`localhost`, a loopback address):
/// where development settings are allowed.
pub fn is_loopback_url(url: &str) -> bool {
    is_loopback_host(url_host(url))
}

/// Words in every development key the hub ships (its defaults and `make run`'s file):
/// such a key is public, so it protects nothing.
const DEVELOPMENT_KEY_MARKERS: [&str; 2] = ["change-me", "not-for-production"];

/// The most bits a key of this length can carry given its alphabet: 4 per hexadecimal
/// digit, 6 per base64 character (padding not counted), about 6.5 per printable ASCII
/// character, 8 per byte otherwise. The hub cannot measure a key's entropy; this refuses
/// only keys too short to hold 256 bits however they were made.
pub fn key_bits(key: &str) -> u32 {
    let body = key.trim_end_matches('=');
    let per_char = if !body.is_empty() && body.chars().all(|c| c.is_ascii_hexdigit()) {
        4.0
    } else if body
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '/'))
    {
        6.0
    } else if body.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        95f64.log2()
    } else {
        return u32::try_from(body.len().saturating_mul(8)).unwrap_or(u32::MAX);
    };
    // Whole bits only; lengths are far below f64's exact range.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bits = (body.chars().count() as f64 * per_char).floor() as u32;
    bits
}

/// Whether `key` is one of the development keys the hub ships.
pub fn is_development_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    DEVELOPMENT_KEY_MARKERS.iter().any(|m| lower.contains(m))
}

/// A deployment's key (`field`) must be its own and carry 256 bits: a development
/// default, or a key too short, is refused when `issuer` is not loopback (on loopback,
/// development and tests use them freely).
pub fn check_deployment_key(field: &str, key: &str, issuer: &str) -> Result<(), ConfigError> {
    if is_loopback_host(url_host(issuer)) {
        return Ok(());
    }
    if is_development_key(key) {
        return Err(ConfigError::invalid(
            field,
            format!(
                "is a development key, public in the hub's sources, and the issuer {issuer} is \
                 not loopback: set a key of your own (e.g. `openssl rand -base64 32`)"
            ),
        ));
    }
    let bits = key_bits(key);
    if bits < 256 {
        return Err(ConfigError::invalid(
            field,
            format!(
                "carries at most {bits} bits and the issuer {issuer} is not loopback: a key \
                 needs 256 (64 hexadecimal digits, 43 base64 characters; \
                 e.g. `openssl rand -base64 32`)"
            ),
        ));
    }
    Ok(())
}

/// The host of `http(s)://host[:port]/…`, without IPv6 brackets.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_first_language_the_hub_writes_wins_in_the_order_given() {
        assert_eq!(page_language("", "de,en;q=0.5,fr;q=0.9"), "en");
        assert_eq!(page_language("", "en-GB,fr"), "en");
        assert_eq!(page_language("", "de"), "fr");
        assert_eq!(page_language("", ""), "fr");
        assert_eq!(page_language("de en", "fr"), "en");
        assert_eq!(page_language("FR", "en"), "fr");
    }

    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Root {
        database: DatabaseConfig,
        name: String,
    }

    #[test]
    fn e_mail_addresses_are_told_from_typos() {
        for good in ["a@b.example", "Jean.Dupont+x@exemple.gouv.fr"] {
            assert!(is_email_address(good), "{good}");
        }
        let long = format!("{}@b.example", "a".repeat(65));
        for bad in [
            "",
            "a",
            "a@b",
            "@b.example",
            "a b@c.example",
            "a@.example",
            "a@b.example.",
            "a@b_c.example",
            long.as_str(),
        ] {
            assert!(!is_email_address(bad), "{bad}");
        }
    }

    #[test]
    fn layers_override_in_order() {
        let dir = std::env::temp_dir().join(format!("relais-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "name = \"from-file\"\n[database]\npool_size = 3\n").unwrap();
        let env = vec![
            ("RELAIS__NAME".to_string(), "from-env".to_string()),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let root: Root = load(Some(&file), env).unwrap();
        assert_eq!(root.name, "from-env");
        assert_eq!(root.database.pool_size, 3);
        let nested: Root = load(
            Some(&file),
            vec![("RELAIS__DATABASE__POOL_SIZE".to_string(), "7".to_string())],
        )
        .unwrap();
        assert_eq!(nested.database.pool_size, 7);
        assert_eq!(nested.name, "from-file");
    }

    #[test]
    fn unknown_fields_and_missing_files_are_refused() {
        let err = from_toml_str::<Root>("nmae = \"typo\"").unwrap_err();
        assert!(err.to_string().contains("nmae"), "{err}");
        let err = load::<Root>(Some(Path::new("/nonexistent/relais.toml")), vec![]).unwrap_err();
        assert!(matches!(err, ConfigError::MissingFile(_)));
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        let db = DatabaseConfig::default();
        assert!(!format!("{db:?}").contains("postgres://"));
    }

    #[test]
    fn validation_names_the_field() {
        let db = DatabaseConfig {
            url: Secret::new("mysql://x"),
            pool_size: 1,
            ..DatabaseConfig::default()
        };
        assert!(
            db.validate()
                .unwrap_err()
                .to_string()
                .contains("database.url")
        );
    }

    #[test]
    fn database_tls_is_required_off_this_machine_and_verification_needs_its_ca() {
        let db = |url: &str, sslmode: SslMode, ca_file: &str| DatabaseConfig {
            url: Secret::new(url),
            sslmode,
            ca_file: ca_file.into(),
            ..DatabaseConfig::default()
        };
        let remote = "postgres://relais_{service}@db.example:5432/relais";
        for mode in [SslMode::Disable, SslMode::Prefer] {
            let err = db(remote, mode, "").validate().unwrap_err();
            assert!(err.to_string().contains("database.sslmode"), "{err}");
            let err = db(
                &format!("{remote}?sslmode={}", mode.name()),
                SslMode::VerifyFull,
                "ca.pem",
            )
            .validate()
            .unwrap_err();
            assert!(err.to_string().contains("database.sslmode"), "{err}");
            let err = db("postgres://u@/relais?host=db.example", mode, "")
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains("database.sslmode"), "{err}");
            for local in [
                "postgres://postgres@127.0.0.1:5432/relais",
                "postgres://postgres@localhost/relais",
                "postgres://postgres@[::1]/relais",
                "postgres://postgres@/relais?host=/run/postgresql",
                "postgres://postgres@/relais?host=%2Frun%2Fpostgresql",
            ] {
                db(local, mode, "").validate().unwrap();
            }
        }
        db(remote, SslMode::Require, "").validate().unwrap();
        db(&format!("{remote}?sslmode=require"), SslMode::Disable, "")
            .validate()
            .unwrap();
        for mode in ["verify-ca", "verify-full"] {
            let err = db(&format!("{remote}?sslmode={mode}"), SslMode::Prefer, "")
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains("database.ca_file"), "{err}");
            db(
                &format!("{remote}?sslmode={mode}"),
                SslMode::Prefer,
                "ca.pem",
            )
            .validate()
            .unwrap();
        }
        let err = db(&format!("{remote}?sslmode=allow"), SslMode::Prefer, "")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("database.url"), "{err}");
        let config = db(
            "postgres://u@h/relais?application_name=x&sslmode=verify-full&connect_timeout=3",
            SslMode::Prefer,
            "ca.pem",
        );
        assert_eq!(
            config.connection(config.url.expose()).unwrap(),
            (
                "postgres://u@h/relais?application_name=x&connect_timeout=3".to_string(),
                SslMode::VerifyFull
            )
        );
        assert_eq!(
            config.connection("postgres://u@h/relais").unwrap().1,
            SslMode::Prefer
        );
        assert_eq!(DatabaseConfig::default().sslmode, SslMode::Disable);
    }

    /// The administrative URL (a role that creates roles) is held to the services' rule:
    /// a remote one in clear, or falling back to clear, is refused naming it, even when
    /// the services' own link is encrypted.
    #[test]
    fn the_admin_url_follows_the_sslmode_rule_off_this_machine() {
        let db = |admin: &str, sslmode: SslMode, ca_file: &str| DatabaseConfig {
            url: Secret::new("postgres://relais_{service}@db.example/relais?sslmode=require"),
            admin_url: Secret::new(admin),
            sslmode,
            ca_file: ca_file.into(),
            ..DatabaseConfig::default()
        };
        let remote = "postgres://admin@db.example/relais";
        for mode in [SslMode::Disable, SslMode::Prefer] {
            let err = db(remote, mode, "ca.pem").validate().unwrap_err();
            assert!(err.to_string().contains("`database.admin_url`"), "{err}");
            assert!(err.to_string().contains(mode.name()), "{err}");
            // The URL's own mode wins over an encrypted default.
            let err = db(
                &format!("{remote}?sslmode={}", mode.name()),
                SslMode::VerifyFull,
                "ca.pem",
            )
            .validate()
            .unwrap_err();
            assert!(err.to_string().contains("`database.admin_url`"), "{err}");
            let err = db("postgres://admin@/relais?host=db.example", mode, "ca.pem")
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains("`database.admin_url`"), "{err}");
            // On this machine, as for the services' URL.
            db("postgres://postgres@127.0.0.1/relais", mode, "ca.pem")
                .validate()
                .unwrap();
        }
        db(
            &format!("{remote}?sslmode=require"),
            SslMode::Disable,
            "ca.pem",
        )
        .validate()
        .unwrap();
        db(remote, SslMode::VerifyFull, "ca.pem")
            .validate()
            .unwrap();
        let err = db(&format!("{remote}?sslmode=verify-ca"), SslMode::Require, "")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("database.ca_file"), "{err}");
        let err = db(
            &format!("{remote}?sslmode=allow"),
            SslMode::VerifyFull,
            "ca.pem",
        )
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("`database.admin_url`"), "{err}");
        // No administrative URL: nothing to check.
        db("", SslMode::Disable, "ca.pem").validate().unwrap();
    }

    #[test]
    fn each_service_has_its_own_role_and_password_file() {
        let db = DatabaseConfig {
            url: Secret::new("postgres://relais_{service}@db/relais"),
            password_file: "/run/secrets/db-{service}".into(),
            ..DatabaseConfig::default()
        };
        assert!(db.has_service_roles());
        assert_eq!(
            db.url_for("oidc_front").expose(),
            "postgres://relais_oidc_front@db/relais"
        );
        assert_eq!(
            db.password_file_for("trace").as_deref(),
            Some("/run/secrets/db-trace")
        );
        assert!(!DatabaseConfig::default().has_service_roles());
        assert_eq!(DatabaseConfig::default().password_file_for("trace"), None);
    }

    #[test]
    fn a_development_or_short_key_is_refused_off_loopback_naming_its_field() {
        let field = "oidc_front.subject_key";
        let strong = "q5Vx1pJ0m1S8uYyK2b6Zr9Wc3Lh7Tn4Ae0Gd5Fo8Ikw"; // 43 base64: 258 bits
        for issuer in ["https://relais.example", "http://10.0.0.1:8000"] {
            for weak in [
                "change-me-subject-key-0123456789abcdef",
                "demo-subject-key-not-for-production-0123456789",
                "only-thirty-two-characters-long!",
                &"ab12".repeat(15), // 60 hexadecimal digits: 240 bits
            ] {
                let err = check_deployment_key(field, weak, issuer).unwrap_err();
                assert!(err.to_string().contains(field), "{weak}: {err}");
            }
            check_deployment_key(field, strong, issuer).unwrap();
            check_deployment_key(field, &"ab12".repeat(16), issuer).unwrap();
        }
        for issuer in [
            "http://127.0.0.1:8000",
            "http://localhost",
            "http://[::1]:80",
        ] {
            check_deployment_key(field, "change-me-subject-key-0123456789abcdef", issuer).unwrap();
        }
        assert_eq!(key_bits(&"f".repeat(64)), 256);
        assert_eq!(
            key_bits("q5Vx1pJ0m1S8uYyK2b6Zr9Wc3Lh7Tn4Ae0Gd5Fo8Ikw="),
            258
        );
        assert_eq!(key_bits(&"é".repeat(16)), 256);
    }

    #[test]
    fn plaintext_grpc_is_refused_off_loopback_and_tls_needs_its_files() {
        let tls = GrpcConfig::default();
        let err = tls.validate("https://relais.example", &[]).unwrap_err();
        assert!(err.to_string().contains("grpc.ca_file"), "{err}");
        let plain = GrpcConfig {
            insecure_plaintext: true,
            ..GrpcConfig::default()
        };
        for issuer in [
            "http://127.0.0.1:8000",
            "http://localhost",
            "http://[::1]:80/x",
        ] {
            plain
                .validate(issuer, &[("registry.listen", "127.0.0.1:7101")])
                .unwrap();
        }
        for issuer in [
            "https://relais.example",
            "http://10.0.0.1:8000",
            "http://127.0.0.1.example",
        ] {
            let err = plain.validate(issuer, &[]).unwrap_err();
            assert!(
                err.to_string().contains("grpc.insecure_plaintext"),
                "{issuer}: {err}"
            );
        }
        let err = plain
            .validate(
                "http://127.0.0.1:8000",
                &[("registry.listen", "0.0.0.0:7101")],
            )
            .unwrap_err();
        assert!(err.to_string().contains("registry.listen"), "{err}");
        let files = GrpcConfig {
            ca_file: "ca.pem".into(),
            cert_file: "{service}.pem".into(),
            key_file: "{service}.key".into(),
            ..GrpcConfig::default()
        };
        files.validate("https://relais.example", &[]).unwrap();
        assert_eq!(
            GrpcConfig::path_for(&files.cert_file, "registry"),
            "registry.pem"
        );
    }
}

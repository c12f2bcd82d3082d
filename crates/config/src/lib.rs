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
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// A libpq-style URL, e.g. `postgres://postgres@127.0.0.1:5432/relais`.
    pub url: Secret,
    /// Connections per service pool.
    pub pool_size: usize,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: Secret::new("postgres://postgres@127.0.0.1:5432/relais"),
            pool_size: 16,
        }
    }
}

impl DatabaseConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.url.expose().starts_with("postgres://")
            && !self.url.expose().starts_with("postgresql://")
        {
            return Err(ConfigError::invalid(
                "database.url",
                "must be a postgres:// URL",
            ));
        }
        if self.pool_size == 0 {
            return Err(ConfigError::invalid(
                "database.pool_size",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
        };
        assert!(
            db.validate()
                .unwrap_err()
                .to_string()
                .contains("database.url")
        );
    }
}

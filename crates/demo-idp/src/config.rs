//! Configuration: parsed from TOML, checked by [`DemoIdpConfig::validate`] with no I/O.

use std::net::SocketAddr;

use serde::Deserialize;
use url::Url;

use crate::Error;
use crate::scenario::Scenario;

/// Everything the demo IdP needs to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoIdpConfig {
    /// The issuer, e.g. `http://127.0.0.1:8600`. Empty: `http://<bound address>`.
    pub public_url: String,
    /// Where the binary listens; the library uses the listener it is given.
    pub listen: SocketAddr,
    /// The relying parties allowed to sign in here.
    pub clients: Vec<ClientConfig>,
    /// Lifetime of an authorization code, in seconds.
    pub code_lifetime_secs: u64,
    /// Lifetime of an access token, in seconds.
    pub access_token_lifetime_secs: u64,
    /// Lifetime of an ID token, in seconds.
    pub id_token_lifetime_secs: u64,
    /// The failure scenario in force when the IdP starts.
    pub scenario: Scenario,
    /// The wait of the `delay` scenario before the token response, in milliseconds.
    pub delay_ms: u64,
    /// Keep a session per browser after a login, as most IdPs do, and answer the next
    /// authorization requests from it without the login page, whatever acr they ask,
    /// unless `prompt=login` (or `max_age` exceeded) asks to authenticate again: the
    /// IdP a hub's step-up must cope with.
    pub sessions: bool,
}

impl Default for DemoIdpConfig {
    fn default() -> Self {
        Self {
            public_url: String::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8600)),
            clients: Vec::new(),
            code_lifetime_secs: 60,
            access_token_lifetime_secs: 3600,
            id_token_lifetime_secs: 300,
            scenario: Scenario::None,
            delay_ms: 3000,
            sessions: false,
        }
    }
}

/// One registered relying party.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub client_id: String,
    pub client_secret: Secret,
    /// Compared byte for byte with the `redirect_uri` of each request.
    pub redirect_uris: Vec<String>,
    /// Compared byte for byte with the `post_logout_redirect_uri` of a logout.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
}

pub use relais_config::Secret;

impl DemoIdpConfig {
    /// Parses a TOML document; unknown fields are refused.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let config: Self = toml::from_str(text).map_err(|e| Error::ConfigSyntax(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the fields one by one, naming the first one that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        if !self.public_url.is_empty() {
            check_base_url(&self.public_url).map_err(|reason| Error::Config {
                field: "public_url".into(),
                reason,
            })?;
        }
        if self.code_lifetime_secs == 0 || self.code_lifetime_secs > 600 {
            return Err(Error::Config {
                field: "code_lifetime_secs".into(),
                reason: "must be between 1 and 600".into(),
            });
        }
        for (field, value) in [
            (
                "access_token_lifetime_secs",
                self.access_token_lifetime_secs,
            ),
            ("id_token_lifetime_secs", self.id_token_lifetime_secs),
        ] {
            if value == 0 {
                return Err(Error::Config {
                    field: field.into(),
                    reason: "must be at least 1".into(),
                });
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, client) in self.clients.iter().enumerate() {
            let field = |name: &str| format!("clients[{i}].{name}");
            if client.client_id.is_empty() {
                return Err(Error::Config {
                    field: field("client_id"),
                    reason: "must not be empty".into(),
                });
            }
            if !seen.insert(client.client_id.as_str()) {
                return Err(Error::Config {
                    field: field("client_id"),
                    reason: format!("{} is registered twice", client.client_id),
                });
            }
            if client.client_secret.expose().is_empty() {
                return Err(Error::Config {
                    field: field("client_secret"),
                    reason: "must not be empty".into(),
                });
            }
            if client.redirect_uris.is_empty() {
                return Err(Error::Config {
                    field: field("redirect_uris"),
                    reason: "at least one is needed".into(),
                });
            }
            for uri in client
                .redirect_uris
                .iter()
                .chain(&client.post_logout_redirect_uris)
            {
                check_redirect_uri(uri).map_err(|reason| Error::Config {
                    field: field("redirect_uris"),
                    reason: format!("{uri}: {reason}"),
                })?;
            }
        }
        Ok(())
    }
}

fn check_base_url(value: &str) -> Result<(), String> {
    let url = Url::parse(value).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must have no query and no fragment".into());
    }
    Ok(())
}

fn check_redirect_uri(value: &str) -> Result<(), String> {
    let url = Url::parse(value).map_err(|e| e.to_string())?;
    if url.fragment().is_some() {
        return Err("must have no fragment".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn parses_a_full_file() {
        let config = DemoIdpConfig::from_toml(
            r#"
            public_url = "http://127.0.0.1:8600"
            listen = "127.0.0.1:8600"
            scenario = "lower_acr"
            [[clients]]
            client_id = "relais"
            client_secret = "s3cret"
            redirect_uris = ["http://127.0.0.1:8080/idp/callback"]
            "#,
        )
        .unwrap();
        assert_eq!(config.clients[0].client_id, "relais");
        assert_eq!(config.scenario, Scenario::LowerAcr);
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn names_the_faulty_field() {
        let err = DemoIdpConfig::from_toml(
            r#"
            [[clients]]
            client_id = "relais"
            client_secret = "x"
            redirect_uris = ["not a url"]
            "#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("clients[0].redirect_uris"),
            "{err}"
        );
        let err = DemoIdpConfig::from_toml("colour = 1").unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}

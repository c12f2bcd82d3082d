//! Configuration: parsed from TOML, checked by [`DemoSpConfig::validate`] with no I/O.

use std::net::SocketAddr;

use serde::Deserialize;
use url::Url;

use crate::Error;

/// Everything the demo SP needs to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoSpConfig {
    /// The OpenID provider to sign in with (Relais, or any other), exactly as its `iss`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// This SP's own base URL. Empty: `http://<bound address>`.
    /// The redirect URI is `<public_url>/callback`, the post-logout one `<public_url>/logged-out`.
    pub public_url: String,
    /// Where the binary listens; the library uses the listener it is given.
    pub listen: SocketAddr,
    /// Scopes asked by default (`openid` is always asked).
    pub scopes: Vec<String>,
    /// `acr_values` asked by default; empty asks none.
    pub acr_values: Vec<String>,
    /// Show the access token after sign-in, with how to call the support API with it
    /// (the demo support console); never for an ordinary SP.
    pub show_access_token: bool,
}

impl Default for DemoSpConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            client_id: String::new(),
            client_secret: Secret::new(""),
            public_url: String::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            scopes: ["openid", "given_name", "usual_name", "family_name", "email"]
                .map(String::from)
                .to_vec(),
            acr_values: vec!["eidas1".into()],
            show_access_token: false,
        }
    }
}

pub use relais_config::Secret;

impl DemoSpConfig {
    /// Parses a TOML document; unknown fields are refused.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let config: Self = toml::from_str(text).map_err(|e| Error::ConfigSyntax(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the fields one by one, naming the first one that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        let wrong = |field: &str, reason: String| Error::Config {
            field: field.into(),
            reason,
        };
        check_base_url(&self.issuer).map_err(|reason| wrong("issuer", reason))?;
        if !self.public_url.is_empty() {
            check_base_url(&self.public_url).map_err(|reason| wrong("public_url", reason))?;
        }
        if self.client_id.is_empty() {
            return Err(wrong("client_id", "must not be empty".into()));
        }
        if self.client_secret.expose().is_empty() {
            return Err(wrong("client_secret", "must not be empty".into()));
        }
        for scope in &self.scopes {
            if scope.is_empty() || scope.contains(char::is_whitespace) {
                return Err(wrong("scopes", format!("{scope:?} is not a scope")));
            }
        }
        Ok(())
    }
}

fn check_base_url(value: &str) -> Result<(), String> {
    let url = Url::parse(value).map_err(|e| format!("{value:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must have no query and no fragment".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn parses_and_hides_the_secret() {
        let config = DemoSpConfig::from_toml(
            r#"
            issuer = "http://127.0.0.1:8080"
            client_id = "demo-sp"
            client_secret = "s3cret"
            acr_values = ["eidas2"]
            "#,
        )
        .unwrap();
        assert_eq!(config.acr_values, ["eidas2"]);
        assert!(config.scopes.contains(&"usual_name".to_owned()));
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn names_the_faulty_field() {
        let err = DemoSpConfig::from_toml("client_id = \"x\"\nclient_secret = \"y\"").unwrap_err();
        assert!(err.to_string().contains("`issuer`"), "{err}");
        let err = DemoSpConfig::from_toml(
            "issuer = \"http://a\"\nclient_id = \"x\"\nclient_secret = \"y\"\nscopes = [\"a b\"]",
        )
        .unwrap_err();
        assert!(err.to_string().contains("`scopes`"), "{err}");
    }
}

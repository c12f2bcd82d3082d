//! The hub's signing keys, their JWKS, and the discovery document that announces them.

use relais_jose::{Alg, KeySet, SigningKey};
use serde_json::json;

use crate::config::OidcFrontConfig;
use crate::domain::claims;
use crate::error::FrontError;

/// The hub's signing keys and their JWKS.
pub struct Keys {
    pub es256: SigningKey,
    pub rs256: SigningKey,
    pub public: KeySet,
    pub jwks_json: String,
}

impl Keys {
    pub fn new(keys: Vec<SigningKey>) -> Result<Keys, FrontError> {
        let mut es = None;
        let mut rs = None;
        for k in keys {
            match k.alg() {
                Alg::Es256 => es = Some(k),
                Alg::Rs256 => rs = Some(k),
            }
        }
        let (Some(es256), Some(rs256)) = (es, rs) else {
            return Err(FrontError::Internal("a signing key is missing".into()));
        };
        let public = KeySet::from_signing_keys([&es256, &rs256])?;
        let jwks_json = public.to_jwks_json();
        Ok(Keys {
            es256,
            rs256,
            public,
            jwks_json,
        })
    }

    pub fn for_alg(&self, alg: Alg) -> &SigningKey {
        match alg {
            Alg::Rs256 => &self.rs256,
            Alg::Es256 => &self.es256,
        }
    }
}

/// The discovery document: only what the hub really does.
pub fn discovery(config: &OidcFrontConfig) -> String {
    let iss = &config.issuer;
    json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/authorize"),
            "token_endpoint": format!("{iss}/token"),
            "userinfo_endpoint": format!("{iss}/userinfo"),
            "jwks_uri": format!("{iss}/jwks"),
            "end_session_endpoint": format!("{iss}/end_session"),
            "revocation_endpoint": format!("{iss}/revoke"),
            "introspection_endpoint": format!("{iss}/introspect"),
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "scopes_supported": claims::scopes_supported(),
            "claims_supported": claims::claims_supported(),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
            "userinfo_signing_alg_values_supported": ["ES256", "RS256"],
            "id_token_encryption_alg_values_supported": ["RSA-OAEP-256", "ECDH-ES"],
            "id_token_encryption_enc_values_supported": ["A256GCM"],
            "userinfo_encryption_alg_values_supported": ["RSA-OAEP-256", "ECDH-ES"],
            "userinfo_encryption_enc_values_supported": ["A256GCM"],
            "code_challenge_methods_supported": ["S256"],
            "acr_values_supported": config.acr_levels,
            "claims_parameter_supported": true,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "require_request_uri_registration": false,
            "authorization_response_iss_parameter_supported": true,
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "ui_locales_supported": ["fr", "en"],
            "claim_types_supported": ["normal"],
            "frontchannel_logout_supported": false,
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
        })
        .to_string()
}

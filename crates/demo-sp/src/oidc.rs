//! The OpenID Connect side, through the `openidconnect` crate with its defaults: discovery
//! (cached), the client, and the few checks the crate leaves to its users.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreGenderClaim, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalClaims, AdditionalProviderMetadata, ClientId, ClientSecret, EndSessionUrl,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, LogoutProviderMetadata,
    ProviderMetadata, RedirectUrl, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::Error;

/// RFC 9207's discovery field, which `openidconnect` does not model.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct IssParameterMetadata {
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}
impl AdditionalProviderMetadata for IssParameterMetadata {}

type Metadata = ProviderMetadata<
    LogoutProviderMetadata<IssParameterMetadata>,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The client as built from discovery: authorization endpoint known, token and userinfo maybe.
pub(crate) type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Userinfo claims beyond the standard ones (`usual_name`, `chorusdt:matricule`, ...), kept as sent.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct OtherClaims {
    #[serde(flatten)]
    pub claims: BTreeMap<String, Value>,
}
impl AdditionalClaims for OtherClaims {}

pub(crate) type UserInfo = UserInfoClaims<OtherClaims, CoreGenderClaim>;

/// What discovery told about the provider.
pub(crate) struct Provider {
    pub client: OidcClient,
    pub issuer: String,
    pub end_session: Option<EndSessionUrl>,
    pub sends_iss: bool,
    /// Where the provider publishes its keys (logout tokens are checked against them).
    pub jwks_uri: String,
}

/// How long discovery (and so the provider's keys) is trusted before being fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(300);

pub(crate) struct ProviderCache {
    issuer: String,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    cached: Mutex<Option<(Instant, std::sync::Arc<Provider>)>>,
}

impl ProviderCache {
    pub(crate) fn new(
        issuer: String,
        client_id: String,
        client_secret: String,
        redirect_uri: String,
    ) -> Self {
        Self {
            issuer,
            client_id,
            client_secret,
            redirect_uri,
            cached: Mutex::new(None),
        }
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The provider, discovered at most once per [`DISCOVERY_TTL`]; failures are not cached.
    pub(crate) async fn get(
        &self,
        http: &reqwest::Client,
    ) -> Result<std::sync::Arc<Provider>, Error> {
        let mut cached = self.cached.lock().await;
        if let Some((fetched, provider)) = cached.as_ref()
            && fetched.elapsed() < DISCOVERY_TTL
        {
            return Ok(provider.clone());
        }
        let issuer =
            IssuerUrl::new(self.issuer.clone()).map_err(|e| Error::Discovery(e.to_string()))?;
        let metadata = Metadata::discover_async(issuer, http)
            .await
            .map_err(|e| Error::Discovery(error_chain(&e)))?;
        let extra = &metadata.additional_metadata();
        let end_session = extra.end_session_endpoint.clone();
        let sends_iss = extra
            .additional_metadata
            .authorization_response_iss_parameter_supported;
        let issuer = metadata.issuer().as_str().to_owned();
        let jwks_uri = metadata.jwks_uri().url().as_str().to_owned();
        let redirect_uri = RedirectUrl::new(self.redirect_uri.clone())
            .map_err(|e| Error::Discovery(e.to_string()))?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.client_id.clone()),
            Some(ClientSecret::new(self.client_secret.clone())),
        )
        .set_redirect_uri(redirect_uri);
        let provider = std::sync::Arc::new(Provider {
            client,
            issuer,
            end_session,
            sends_iss,
            jwks_uri,
        });
        *cached = Some((Instant::now(), provider.clone()));
        Ok(provider)
    }
}

/// An error and its sources, on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn eidas_rank(acr: &str) -> Option<u8> {
    match acr {
        "eidas1" => Some(1),
        "eidas2" => Some(2),
        "eidas3" => Some(3),
        _ => None,
    }
}

/// Whether `got` is at least what `asked` requires: one of the values asked, or an eIDAS level
/// at least the lowest eIDAS level asked. Nothing asked accepts anything.
pub(crate) fn acr_satisfies(asked: &[String], got: Option<&str>) -> bool {
    if asked.is_empty() {
        return true;
    }
    let Some(got) = got else {
        return false;
    };
    if asked.iter().any(|acr| acr == got) {
        return true;
    }
    match (
        asked.iter().filter_map(|acr| eidas_rank(acr)).min(),
        eidas_rank(got),
    ) {
        (Some(required), Some(obtained)) => obtained >= required,
        _ => false,
    }
}

/// A JWT's header and payload as indented JSON, for display only (nothing is checked here).
pub(crate) fn decode_jwt_parts(jwt: &str) -> (String, String) {
    let mut parts = jwt.split('.');
    let mut decode = || {
        parts
            .next()
            .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|json| serde_json::to_string_pretty(&json).ok())
            .unwrap_or_else(|| "(illisible)".to_owned())
    };
    let header = decode();
    let payload = decode();
    (header, payload)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn asked(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn acr_must_reach_the_lowest_level_asked() {
        assert!(acr_satisfies(&[], None));
        assert!(acr_satisfies(&asked(&["eidas2"]), Some("eidas3")));
        assert!(acr_satisfies(&asked(&["eidas2", "eidas3"]), Some("eidas2")));
        assert!(!acr_satisfies(&asked(&["eidas2"]), Some("eidas1")));
        assert!(!acr_satisfies(&asked(&["eidas1"]), None));
        assert!(acr_satisfies(&asked(&["custom"]), Some("custom")));
        assert!(!acr_satisfies(&asked(&["custom"]), Some("eidas3")));
    }

    #[test]
    fn decodes_header_and_payload() {
        let jwt = format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#)
        );
        let (header, payload) = decode_jwt_parts(&jwt);
        assert!(header.contains("\"alg\": \"ES256\""));
        assert!(payload.contains("\"sub\": \"x\""));
        assert_eq!(decode_jwt_parts("garbage").1, "(illisible)");
    }
}

//! OpenID Connect toward one IdP, with the `openidconnect` crate: discovery (cached),
//! the authorization URL, the code exchange and every check of the answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreGenderClaim, CoreGrantType, CoreIdTokenClaims, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AccessToken, AdditionalClaims, AdditionalProviderMetadata, AuthType,
    AuthenticationContextClass, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, IssuerUrl, LoginHint, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, ProviderMetadata, RedirectUrl, Scope, TokenResponse, UserInfoClaims,
    UserInfoError,
};
use relais_proto::registry::v1 as reg;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use crate::error::BridgeError;

/// Every claim beyond the standard ones (`usual_name`, `siret`, `chorusdt:matricule`…).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExtraClaims(pub HashMap<String, Value>);
impl AdditionalClaims for ExtraClaims {}

/// What an IdP's discovery says beyond OIDC Core: its logout endpoint (RP-Initiated
/// Logout) and whether it sends `iss` on callbacks (RFC 9207).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IdpExtraMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
}
impl AdditionalProviderMetadata for IdpExtraMetadata {}

pub type IdpMetadata = ProviderMetadata<
    IdpExtraMetadata,
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

type Cached = (Instant, Arc<IdpMetadata>);

/// Discovery documents (with the IdP's keys), per issuer.
#[derive(Clone)]
pub struct Idps {
    http: openidconnect::reqwest::Client,
    ttl: Duration,
    metadata: Arc<RwLock<HashMap<String, Cached>>>,
}

/// What the browser is sent to the IdP with.
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// What an IdP vouched for, after every check.
pub struct Identity {
    pub sub: String,
    pub acr: String,
    pub amr: Vec<String>,
    pub auth_time: i64,
    pub claims: Map<String, Value>,
    pub id_token: String,
}

impl Idps {
    pub fn new(timeout: Duration, ttl: Duration) -> Result<Idps, BridgeError> {
        let http = openidconnect::reqwest::ClientBuilder::new()
            // Never follow an IdP's redirects (SSRF).
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .map_err(|e| BridgeError::Unavailable(format!("http client: {e}")))?;
        Ok(Idps {
            http,
            ttl,
            metadata: Arc::default(),
        })
    }

    async fn metadata(&self, issuer: &str) -> Result<Arc<IdpMetadata>, BridgeError> {
        if let Some((at, m)) = self.metadata.read().await.get(issuer)
            && at.elapsed() < self.ttl
        {
            return Ok(Arc::clone(m));
        }
        let url = IssuerUrl::new(issuer.to_string())
            .map_err(|e| BridgeError::Discovery(e.to_string()))?;
        let m = IdpMetadata::discover_async(url, &self.http)
            .await
            .map_err(|e| BridgeError::Discovery(error_chain(&e)))?;
        let m = Arc::new(m);
        self.metadata
            .write()
            .await
            .insert(issuer.to_string(), (Instant::now(), Arc::clone(&m)));
        Ok(m)
    }

    async fn client(
        &self,
        idp: &reg::IdentityProvider,
        callback_url: &str,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        BridgeError,
    > {
        let metadata = self.metadata(&idp.issuer).await?;
        let redirect = RedirectUrl::new(callback_url.to_string())
            .map_err(|e| BridgeError::Invalid(e.to_string()))?;
        let auth_type = if idp.token_endpoint_auth_method == "client_secret_post" {
            AuthType::RequestBody
        } else {
            AuthType::BasicAuth
        };
        Ok(CoreClient::from_provider_metadata(
            (*metadata).clone(),
            ClientId::new(idp.client_id.clone()),
            Some(ClientSecret::new(idp.client_secret.clone())),
        )
        .set_redirect_uri(redirect)
        .set_auth_type(auth_type))
    }

    /// The URL of the IdP's authorization endpoint for a new round trip.
    #[allow(clippy::too_many_arguments)]
    pub async fn authorization(
        &self,
        idp: &reg::IdentityProvider,
        callback_url: &str,
        scopes: &[String],
        acr_values: &[String],
        login_hint: &str,
        sp_id: &str,
        sp_name: &str,
    ) -> Result<Authorization, BridgeError> {
        let client = self.client(idp, callback_url).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256_len(32);
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                || CsrfToken::new_random_len(32),
                || Nonce::new_random_len(32),
            )
            .set_pkce_challenge(challenge)
            // The French hubs' convention: the IdP learns which SP the user signs in to.
            .add_extra_param("sp_id", sp_id.to_string())
            .add_extra_param("sp_name", sp_name.to_string());
        for s in scopes {
            if s != "openid" && (idp.scopes.is_empty() || idp.scopes.contains(s)) {
                request = request.add_scope(Scope::new(s.clone()));
            }
        }
        // The IdP is asked for the lowest acceptable level it offers.
        if let Some(acr) = acr_values.iter().find(|a| idp.acr_values.contains(a)) {
            request = request.add_auth_context_value(AuthenticationContextClass::new(acr.clone()));
        }
        if !login_hint.is_empty() {
            request = request.set_login_hint(LoginHint::new(login_hint.to_string()));
        }
        let (url, state, nonce) = request.url();
        Ok(Authorization {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the code and checks everything the IdP answered.
    #[allow(clippy::too_many_arguments)]
    pub async fn identity(
        &self,
        idp: &reg::IdentityProvider,
        callback_url: &str,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
        acr_values: &[String],
        required_claims: &[String],
    ) -> Result<Identity, BridgeError> {
        let client = self.client(idp, callback_url).await?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| BridgeError::TokenRequest(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| BridgeError::TokenRequest(error_chain(&e)))?;
        let id_token = tokens.id_token().ok_or(BridgeError::NoIdToken)?;
        let verifier = client.id_token_verifier();
        let claims: &CoreIdTokenClaims = id_token
            .claims(&verifier, &Nonce::new(nonce.to_string()))
            .map_err(claims_error)?;
        let acr = claims.auth_context_ref().map(|a| a.to_string());
        if !acr.as_ref().is_some_and(|a| acr_values.contains(a)) {
            return Err(BridgeError::AcrTooLow { got: acr });
        }
        let sub = claims.subject().clone();
        let amr = claims
            .auth_method_refs()
            .map(|v| v.iter().map(|a| a.to_string()).collect())
            .unwrap_or_default();
        let auth_time = claims.auth_time().map(|t| t.timestamp()).unwrap_or(0);
        let userinfo: UserInfoClaims<ExtraClaims, CoreGenderClaim> = client
            .user_info(
                AccessToken::new(tokens.access_token().secret().clone()),
                Some(sub.clone()),
            )
            .map_err(|e| BridgeError::Userinfo(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                UserInfoError::ClaimsVerification(ClaimsVerificationError::InvalidSubject(_)) => {
                    BridgeError::UserinfoSubject
                }
                other => BridgeError::Userinfo(error_chain(&other)),
            })?;
        let claims_json = match serde_json::to_value(&userinfo) {
            Ok(Value::Object(m)) => m,
            _ => return Err(BridgeError::Userinfo("claims are not a JSON object".into())),
        };
        for c in required_claims {
            let present = claims_json
                .get(c)
                .is_some_and(|v| !v.is_null() && v.as_str() != Some(""));
            if !present {
                return Err(BridgeError::MissingClaim(c.clone()));
            }
        }
        Ok(Identity {
            sub: sub.to_string(),
            acr: acr.unwrap_or_default(),
            amr,
            auth_time,
            claims: claims_json,
            id_token: id_token.to_string(),
        })
    }

    /// The IdP's end_session URL, if it has one.
    pub async fn logout_url(
        &self,
        idp: &reg::IdentityProvider,
        id_token_hint: &str,
        state: &str,
        post_logout_redirect_uri: &str,
    ) -> Result<Option<String>, BridgeError> {
        let metadata = self.metadata(&idp.issuer).await?;
        let raw =
            serde_json::to_value(&*metadata).map_err(|e| BridgeError::Discovery(e.to_string()))?;
        let Some(endpoint) = raw.get("end_session_endpoint").and_then(Value::as_str) else {
            return Ok(None);
        };
        let mut url = url::Url::parse(endpoint)
            .map_err(|e| BridgeError::Discovery(format!("end_session_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("id_token_hint", id_token_hint)
            .append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
            .append_pair("state", state);
        Ok(Some(url.into()))
    }

    /// The issuer an IdP's discovery announced, and whether it promises `iss` on
    /// every callback.
    pub async fn issuer(&self, idp: &reg::IdentityProvider) -> Result<(String, bool), BridgeError> {
        let m = self.metadata(&idp.issuer).await?;
        let sends_iss = m
            .additional_metadata()
            .authorization_response_iss_parameter_supported
            .unwrap_or(false);
        Ok((m.issuer().to_string(), sends_iss))
    }
}

fn claims_error(e: ClaimsVerificationError) -> BridgeError {
    match e {
        ClaimsVerificationError::Expired(_) => BridgeError::Expired,
        ClaimsVerificationError::InvalidAudience(_) => BridgeError::Audience,
        ClaimsVerificationError::InvalidIssuer(_) => BridgeError::TokenIssuer,
        ClaimsVerificationError::InvalidNonce(_) => BridgeError::Nonce,
        ClaimsVerificationError::SignatureVerification(s) => BridgeError::Signature(s.to_string()),
        other => BridgeError::IdToken(other.to_string()),
    }
}

/// An error and its causes in one line (the IdP's own message included).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

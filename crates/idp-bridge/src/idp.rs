//! OpenID Connect toward one IdP, with the `openidconnect` crate: discovery (cached),
//! the authorization URL, the code exchange and every check of the answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType,
    CoreClientAuthMethod, CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreIdToken,
    CoreIdTokenClaims, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreSubjectIdentifierType, CoreTokenIntrospectionResponse, CoreTokenResponse,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AdditionalClaims, AdditionalProviderMetadata, AuthType,
    AuthenticationContextClass, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, IssuerUrl, JsonWebKey, LoginHint, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, ProviderMetadata, RedirectUrl, Scope, TokenResponse, UserInfoClaims,
    UserInfoError,
};
use relais_proto::registry::v1 as reg;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use crate::error::BridgeError;
use crate::jwk::{ALLOWED_ALGS, IdpKey};

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
    IdpKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type Cached = (Instant, Arc<IdpMetadata>);

/// A client and what it was built from: building one copies the whole metadata.
struct BuiltClient {
    metadata: Arc<IdpMetadata>,
    registration: (String, String, String, String),
    client: Arc<BridgeClient>,
}

/// How the bridge treats IdPs' documents and tokens.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub timeout: Duration,
    /// How long discovery and keys are kept.
    pub ttl: Duration,
    /// Least time between two key fetches for an unknown `kid`.
    pub refresh_min: Duration,
    pub skew_seconds: i64,
    /// Oldest acceptable `iat`: the time a browser may spend at the IdP.
    pub max_age_seconds: i64,
}

/// Discovery documents (with the IdP's keys), per issuer.
#[derive(Clone)]
pub struct Idps {
    http: openidconnect::reqwest::Client,
    settings: Settings,
    metadata: Arc<RwLock<HashMap<String, Cached>>>,
    /// The client built for each IdP, reused while its metadata and registration hold.
    clients: Arc<std::sync::Mutex<HashMap<String, BuiltClient>>>,
    /// When each issuer's keys were last fetched for an unknown `kid`.
    refreshed: Arc<std::sync::Mutex<HashMap<String, Instant>>>,
    /// Hosts besides the issuer's where an IdP's endpoints may be.
    endpoint_hosts: Arc<[String]>,
}

/// How recent the IdP's authentication must be.
#[derive(Clone, Copy, Debug, Default)]
pub struct Freshness {
    /// `prompt=login`: authenticate again whatever the IdP's session.
    pub force_login: bool,
    /// `max_age` in seconds.
    pub max_age: Option<i64>,
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
    pub fn new(settings: Settings, endpoint_hosts: &[String]) -> Result<Idps, BridgeError> {
        let http = openidconnect::reqwest::ClientBuilder::new()
            // Never follow an IdP's redirects (SSRF).
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .build()
            .map_err(|e| BridgeError::Unavailable(format!("http client: {e}")))?;
        Ok(Idps {
            http,
            settings,
            metadata: Arc::default(),
            clients: Arc::default(),
            refreshed: Arc::default(),
            endpoint_hosts: endpoint_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
        })
    }

    /// Forgets an issuer's keys so the next use fetches them again, at most once per
    /// `refresh_min`; false when that was done too recently.
    fn may_refresh(&self, issuer: &str) -> bool {
        let mut last = match self.refreshed.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        match last.get(issuer) {
            Some(at) if now.duration_since(*at) < self.settings.refresh_min => false,
            _ => {
                last.insert(issuer.to_string(), now);
                true
            }
        }
    }

    async fn metadata(&self, issuer: &str) -> Result<Arc<IdpMetadata>, BridgeError> {
        if let Some((at, m)) = self.metadata.read().await.get(issuer)
            && at.elapsed() < self.settings.ttl
        {
            return Ok(Arc::clone(m));
        }
        // Nothing is fetched from an issuer, or an endpoint, the hub would not call.
        check_endpoint(issuer, "issuer", issuer, &self.endpoint_hosts)?;
        let url = IssuerUrl::new(issuer.to_string())
            .map_err(|e| BridgeError::Discovery(e.to_string()))?;
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let answer = self
            .http
            .get(&discovery)
            .header("accept", "application/json")
            .send()
            .await
            .and_then(openidconnect::reqwest::Response::error_for_status)
            .map_err(|e| BridgeError::Discovery(error_chain(&e)))?;
        let body = answer
            .bytes()
            .await
            .map_err(|e| BridgeError::Discovery(error_chain(&e)))?;
        let mut m: IdpMetadata = serde_json::from_slice(&body)
            .map_err(|e| BridgeError::Discovery(format!("discovery document: {e}")))?;
        if m.issuer() != &url {
            return Err(BridgeError::Discovery(format!(
                "the discovery document names the issuer {}",
                m.issuer().as_str()
            )));
        }
        check_endpoints(issuer, &m, &self.endpoint_hosts)?;
        let jwks = openidconnect::JsonWebKeySet::fetch_async(m.jwks_uri(), &self.http)
            .await
            .map_err(|e| BridgeError::Discovery(error_chain(&e)))?;
        m = m.set_jwks(jwks);
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
    ) -> Result<Arc<BridgeClient>, BridgeError> {
        let metadata = self.metadata(&idp.issuer).await?;
        let registration = (
            idp.client_id.clone(),
            idp.client_secret.clone(),
            idp.token_endpoint_auth_method.clone(),
            callback_url.to_string(),
        );
        let mut clients = match self.clients.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(built) = clients.get(&idp.id)
            && Arc::ptr_eq(&built.metadata, &metadata)
            && built.registration == registration
        {
            return Ok(Arc::clone(&built.client));
        }
        let redirect = RedirectUrl::new(callback_url.to_string())
            .map_err(|e| BridgeError::Invalid(e.to_string()))?;
        let auth_type = if idp.token_endpoint_auth_method == "client_secret_post" {
            AuthType::RequestBody
        } else {
            AuthType::BasicAuth
        };
        let client = Arc::new(
            BridgeClient::from_provider_metadata(
                (*metadata).clone(),
                ClientId::new(idp.client_id.clone()),
                Some(ClientSecret::new(idp.client_secret.clone())),
            )
            .set_redirect_uri(redirect)
            .set_auth_type(auth_type),
        );
        clients.insert(
            idp.id.clone(),
            BuiltClient {
                metadata,
                registration,
                client: Arc::clone(&client),
            },
        );
        Ok(client)
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
        fresh: Freshness,
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
        // And, where it reads the claims parameter, as an essential claim: a compliant
        // IdP must then authenticate the user again rather than answer a lower level.
        let acceptable: Vec<&String> = acr_values
            .iter()
            .filter(|a| idp.acr_values.contains(a))
            .collect();
        let reads_claims = self
            .metadata(&idp.issuer)
            .await?
            .claims_parameter_supported()
            .unwrap_or(false);
        if reads_claims && !acceptable.is_empty() {
            let claims = serde_json::json!({
                "id_token": { "acr": { "essential": true, "values": acceptable } }
            });
            request = request.add_extra_param("claims", claims.to_string());
        }
        if !login_hint.is_empty() {
            request = request.set_login_hint(LoginHint::new(login_hint.to_string()));
        }
        // What the SP asked of the authentication, asked of the IdP in turn.
        if fresh.force_login {
            request = request.add_prompt(CoreAuthPrompt::Login);
        }
        if let Some(max_age) = fresh.max_age.and_then(|m| u64::try_from(m).ok()) {
            request = request.set_max_age(Duration::from_secs(max_age));
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
        let nonce = Nonce::new(nonce.to_string());
        let mut client = client;
        let mut verified = self.verify(&client, id_token, &nonce);
        // An unknown kid may be a key the IdP rotated in: fetch its keys again, rarely.
        if matches!(verified, Err(BridgeError::Signature(_)))
            && !kid_is_known(&*self.metadata(&idp.issuer).await?, id_token)
            && self.may_refresh(&idp.issuer)
        {
            self.metadata.write().await.remove(&idp.issuer);
            client = self.client(idp, callback_url).await?;
            verified = self.verify(&client, id_token, &nonce);
        }
        let claims = verified?;
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(|e| BridgeError::Signature(e.to_string()))?;
            let verifier = client.id_token_verifier();
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| BridgeError::Signature(e.to_string()))?;
            let actual = AccessTokenHash::from_token(tokens.access_token(), alg, key)
                .map_err(|e| BridgeError::IdToken(e.to_string()))?;
            if actual != *expected {
                return Err(BridgeError::AtHash);
            }
        }
        if let Some(azp) = claims.authorized_party()
            && azp.as_str() != idp.client_id
        {
            return Err(BridgeError::Audience);
        }
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
        crate::claims::validate(&claims_json)
            .map_err(|crate::claims::InvalidClaim(name)| BridgeError::InvalidClaim(name))?;
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

    /// Signature, iss, aud, exp (with skew), nonce and iat within the accepted window.
    fn verify(
        &self,
        client: &BridgeClient,
        id_token: &CoreIdToken,
        nonce: &Nonce,
    ) -> Result<CoreIdTokenClaims, BridgeError> {
        let skew = self.settings.skew_seconds;
        let max_age = self.settings.max_age_seconds;
        // The hub's algorithms, whatever the IdP's metadata lists.
        let verifier = client
            .id_token_verifier()
            .set_allowed_algs(ALLOWED_ALGS)
            .set_issue_time_verifier_fn(move |iat| {
                let age = unix_now() - iat.timestamp();
                if age < -skew || age > max_age + skew {
                    Err(format!("iat is {age} s from now"))
                } else {
                    Ok(())
                }
            });
        let claims = id_token.claims(&verifier, nonce).map_err(claims_error)?;
        Ok(claims.clone())
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

/// The client built from an IdP's discovery: authorization endpoint set, token and
/// userinfo endpoints as discovered.
type BridgeClient = openidconnect::Client<
    openidconnect::EmptyAdditionalClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    IdpKey,
    CoreAuthPrompt,
    openidconnect::StandardErrorResponse<CoreErrorResponseType>,
    CoreTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// Every URL of an IdP's discovery the hub may call must pass [`check_endpoint`].
fn check_endpoints(issuer: &str, m: &IdpMetadata, hosts: &[String]) -> Result<(), BridgeError> {
    let mut urls = vec![
        (
            "authorization_endpoint",
            m.authorization_endpoint().as_str(),
        ),
        ("jwks_uri", m.jwks_uri().as_str()),
    ];
    urls.extend(m.token_endpoint().map(|u| ("token_endpoint", u.as_str())));
    urls.extend(
        m.userinfo_endpoint()
            .map(|u| ("userinfo_endpoint", u.as_str())),
    );
    urls.extend(
        m.additional_metadata()
            .end_session_endpoint
            .as_deref()
            .map(|u| ("end_session_endpoint", u)),
    );
    for (name, url) in urls {
        check_endpoint(issuer, name, url, hosts)?;
    }
    Ok(())
}

/// An IdP URL the hub calls or sends the browser to: https (http only on loopback, for
/// development and tests), on the issuer's host or one of `hosts`. A token endpoint
/// elsewhere would receive the client secret and the code; a JWKS elsewhere would
/// choose the keys the IdP's tokens verify with.
pub fn check_endpoint(
    issuer: &str,
    name: &str,
    url: &str,
    hosts: &[String],
) -> Result<(), BridgeError> {
    let refuse = |why: &str| BridgeError::EndpointNotAllowed(format!("{name} {url}: {why}"));
    let parsed = url::Url::parse(url).map_err(|_| refuse("not an absolute URL"))?;
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    match parsed.scheme() {
        "https" => {}
        "http" if relais_config::is_loopback_url(url) => {}
        _ => return Err(refuse("not https (http only on loopback)")),
    }
    let issuer_host = url::Url::parse(issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    if host.is_empty() || (host != issuer_host && !hosts.contains(&host)) {
        return Err(refuse(
            "not on the issuer's host nor in idp_bridge.idp_endpoint_hosts",
        ));
    }
    Ok(())
}

/// Whether the token's `kid` is among the IdP's keys as last fetched.
fn kid_is_known(metadata: &IdpMetadata, id_token: &CoreIdToken) -> bool {
    let Some(kid) = token_kid(&id_token.to_string()) else {
        return true;
    };
    metadata
        .jwks()
        .keys()
        .iter()
        .any(|k| k.key_id().is_some_and(|id| id.as_str() == kid))
}

fn token_kid(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.get("kid")?.as_str().map(str::to_string)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The attacks a discovery document could carry: an endpoint in clear, or on a host
    /// that is not the IdP's (its token endpoint would get the client secret and the
    /// code, its JWKS would pick the keys), an issuer in clear off loopback.
    #[test]
    fn endpoints_in_clear_or_off_the_issuers_host_are_refused() {
        let issuer = "https://idp.example/realm";
        let none: &[String] = &[];
        for ok in [
            "https://idp.example/token",
            "https://IDP.example:8443/token",
        ] {
            check_endpoint(issuer, "token_endpoint", ok, none).unwrap();
        }
        for bad in [
            "http://idp.example/token",
            "https://evil.example/token",
            "https://idp.example.evil.example/token",
            "ftp://idp.example/token",
            "/token",
            "https://user@/token",
        ] {
            let err = check_endpoint(issuer, "token_endpoint", bad, none).unwrap_err();
            assert_eq!(err.code(), "idp_endpoint_not_allowed", "{bad}");
            assert!(err.to_string().contains("token_endpoint"), "{err}");
        }
        // A host the operator vouched for.
        let allowed = ["api.idp.example".to_string()];
        check_endpoint(
            issuer,
            "token_endpoint",
            "https://api.idp.example/t",
            &allowed,
        )
        .unwrap();
        assert!(
            check_endpoint(
                issuer,
                "token_endpoint",
                "http://api.idp.example/t",
                &allowed
            )
            .is_err()
        );
        // Loopback in clear, for development and tests only.
        let local = "http://127.0.0.1:8600";
        check_endpoint(local, "issuer", local, none).unwrap();
        check_endpoint(local, "jwks_uri", "http://127.0.0.1:8600/jwks", none).unwrap();
        for bad in ["http://idp.example", "http://10.0.0.1"] {
            let err = check_endpoint(bad, "issuer", bad, none).unwrap_err();
            assert_eq!(err.code(), "idp_endpoint_not_allowed", "{bad}");
        }
        // A loopback endpoint for a remote issuer is off its host (SSRF toward the hub).
        assert!(check_endpoint(issuer, "jwks_uri", "http://127.0.0.1/jwks", none).is_err());
    }
}

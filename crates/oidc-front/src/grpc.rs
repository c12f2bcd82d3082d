//! The front's gRPC face: each call runs one step of the OpenID Connect flow.

use std::sync::Arc;

use relais_bus::Event;
use relais_bus::events::{ConnectionEvent, ConnectionStep, Outcome};
use relais_jose::{Alg, KeySet, SigningKey};
use relais_proto::idp_bridge::v1 as bridge;
use relais_proto::idp_bridge::v1::idp_bridge_client::IdpBridgeClient;
use relais_proto::oidc_front::v1 as pb;
use relais_proto::oidc_front::v1::oidc_front_server::OidcFront;
use relais_proto::registry::v1::{self as reg, PartnerStatus};
use relais_runtime::GrpcChannel as Channel;
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::config::OidcFrontConfig;
use crate::domain::acr::AcrLadder;
use crate::domain::authorize::{self, Params};
use crate::domain::claims;
use crate::domain::client_auth::{PRIVATE_KEY_JWT, client_credentials};
use crate::domain::secrets::{
    at_hash, constant_time_eq, pkce_s256, random_token, sha256, subject_for,
};
use crate::error::{FrontError, Surface};
use crate::partners::{Partners, error_code, unavailable};
use crate::responses::{
    error_page, error_redirect, json_error, json_ok, notice, redirect, with_query,
};
use crate::store::{Consumed, Flow, Grant, Session, Store};

pub const SOURCE: &str = "oidc-front";

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

    fn for_alg(&self, alg: &str) -> &SigningKey {
        match alg {
            "RS256" => &self.rs256,
            _ => &self.es256,
        }
    }
}

pub struct Front {
    pub config: OidcFrontConfig,
    pub store: Store,
    pub partners: Partners,
    pub bridge: IdpBridgeClient<Channel>,
    pub keys: Arc<Keys>,
    pub ladder: AcrLadder,
    pub discovery_json: String,
}

/// Why an authorization request stops, and how the SP hears of it.
enum Refusal {
    Page(FrontError),
    Redirect(FrontError, String, Option<String>),
}

impl From<FrontError> for Refusal {
    fn from(e: FrontError) -> Self {
        Refusal::Page(e)
    }
}

struct Ctx<'a> {
    source: &'a pb::Source,
    locale: String,
}

fn params_of(list: Vec<pb::Param>) -> Params {
    Params::new(list.into_iter().map(|p| (p.name, p.value)).collect())
}

fn cookie(value: String, max_age: u32) -> Option<pb::CookieUpdate> {
    Some(pb::CookieUpdate {
        value,
        remove: false,
        max_age_seconds: i64::from(max_age),
    })
}

fn remove_cookie() -> Option<pb::CookieUpdate> {
    Some(pb::CookieUpdate {
        value: String::new(),
        remove: true,
        max_age_seconds: 0,
    })
}

fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

impl Front {
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
            "prompt_values_supported": ["login", "consent", "select_account"],
            "ui_locales_supported": ["fr", "en"],
            "claim_types_supported": ["normal"],
            "frontchannel_logout_supported": false,
            "backchannel_logout_supported": false,
        })
        .to_string()
    }

    fn event(
        &self,
        connection_id: Uuid,
        step: ConnectionStep,
        outcome: Outcome,
        source: &pb::Source,
        fill: impl FnOnce(&mut ConnectionEvent),
    ) -> Result<Event, FrontError> {
        let mut e = ConnectionEvent::new(connection_id.to_string(), step, outcome);
        e.source_ip = Some(source.ip.clone()).filter(|s| !s.is_empty());
        e.source_port = u16::try_from(source.port).ok().filter(|p| *p != 0);
        e.request_id = Some(source.request_id.clone()).filter(|s| !s.is_empty());
        fill(&mut e);
        Ok(Event::from_payload(SOURCE, &e)?)
    }

    /// A failure step for the trace; best effort, the refusal is shown either way.
    async fn trace_failure(
        &self,
        connection_id: Uuid,
        flow_hash: Option<&[u8]>,
        err: &FrontError,
        source: &pb::Source,
        fill: impl FnOnce(&mut ConnectionEvent),
    ) {
        let code = err.code();
        let event = self.event(
            connection_id,
            ConnectionStep::Failed,
            Outcome::Failure,
            source,
            |e| {
                e.error_code = Some(code);
                fill(e);
            },
        );
        let result = match event {
            Ok(ev) => self.store.record_failure(flow_hash, &[ev]).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "could not record a failed step");
        }
    }

    fn visible_idps<'a>(
        &self,
        sp: &reg::ServiceProvider,
        idps: &'a [reg::IdentityProvider],
    ) -> Vec<&'a reg::IdentityProvider> {
        idps.iter()
            .filter(|i| i.status == PartnerStatus::Active as i32)
            .filter(|i| sp.idp_ids.contains(&i.id))
            .collect()
    }

    async fn active_sp(&self, client_id: &str) -> Result<Arc<reg::ServiceProvider>, FrontError> {
        let sp = self.partners.sp(client_id).await?;
        if sp.status != PartnerStatus::Active as i32 {
            return Err(FrontError::ClientSuspended);
        }
        Ok(sp)
    }

    async fn authorize_flow(
        &self,
        params: &Params,
        ctx: &Ctx<'_>,
        connection_id: Uuid,
    ) -> Result<pb::FlowResponse, Refusal> {
        let (client_id, redirect_uri) = authorize::client_and_redirect(params)?;
        let sp = self.active_sp(&client_id).await?;
        if !sp.redirect_uris.contains(&redirect_uri) {
            return Err(Refusal::Page(FrontError::RedirectUriMismatch));
        }
        let to_sp = |e: FrontError| {
            if e.info().surface == Surface::Page && !matches!(e, FrontError::Unavailable(_)) {
                Refusal::Page(e)
            } else {
                Refusal::Redirect(e, redirect_uri.clone(), authorize::echo_state(params))
            }
        };
        let default_acr = self.ladder.levels().first().cloned().unwrap_or_default();
        let request = authorize::validate(
            params,
            &sp,
            redirect_uri.clone(),
            &self.ladder,
            &default_acr,
        )
        .map_err(to_sp)?;
        // A hint must be an ID token this hub issued to this client.
        if let Some(hint) = params.single("id_token_hint").map_err(to_sp)? {
            let for_this_client = self.verify_hint(hint).is_ok_and(|c| match c.get("aud") {
                Some(Value::String(a)) => *a == sp.client_id,
                Some(Value::Array(list)) => list.iter().any(|a| *a == sp.client_id.as_str()),
                _ => false,
            });
            if !for_this_client {
                return Err(Refusal::Redirect(
                    FrontError::InvalidIdTokenHint,
                    redirect_uri.clone(),
                    authorize::echo_state(params),
                ));
            }
        }
        let idps = self.partners.idps().await.map_err(to_sp)?;
        let visible = self.visible_idps(&sp, &idps);
        let flow_cookie = random_token();
        let flow = Flow {
            id_hash: sha256(&flow_cookie),
            connection_id,
            client_id: sp.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            state: request.state.clone(),
            nonce: request.nonce.clone(),
            scopes: request.scopes.clone(),
            acr_min: request.acr_min.clone(),
            login_hint: request.login_hint.clone(),
            code_challenge: request.code_challenge.clone(),
            locale: ctx.locale.clone(),
            csrf: random_token(),
            idp_id: None,
            status: "choosing".into(),
            expires_at: OffsetDateTime::now_utc()
                + Duration::seconds(i64::from(self.config.flow_ttl_seconds)),
        };
        let hinted = request.idp_hint.as_deref().and_then(|h| {
            visible
                .iter()
                .find(|i| i.id == h && self.ladder.any_reaches(&i.acr_values, &flow.acr_min))
        });
        let started = self
            .event(
                connection_id,
                ConnectionStep::AuthorizeInitiated,
                Outcome::Success,
                ctx.source,
                |e| e.sp_id = Some(sp.client_id.clone()),
            )
            .map_err(to_sp)?;
        let mut response = if let Some(idp) = hinted {
            self.store
                .insert_flow(&flow, &[started])
                .await
                .map_err(to_sp)?;
            self.send_to_idp(&flow, &sp, idp, ctx).await?
        } else {
            let shown = self
                .event(
                    connection_id,
                    ConnectionStep::ChooserShown,
                    Outcome::Success,
                    ctx.source,
                    |e| e.sp_id = Some(sp.client_id.clone()),
                )
                .map_err(to_sp)?;
            self.store
                .insert_flow(&flow, &[started, shown])
                .await
                .map_err(to_sp)?;
            self.chooser(&flow, &sp, &visible, ctx)
        };
        response.flow_cookie = cookie(flow_cookie, self.config.flow_ttl_seconds);
        Ok(response)
    }

    fn chooser(
        &self,
        flow: &Flow,
        sp: &reg::ServiceProvider,
        visible: &[&reg::IdentityProvider],
        ctx: &Ctx<'_>,
    ) -> pb::FlowResponse {
        let idps = visible
            .iter()
            .map(|i| {
                let available = self.ladder.any_reaches(&i.acr_values, &flow.acr_min);
                pb::ChooserIdp {
                    id: i.id.clone(),
                    name: i.name.clone(),
                    available,
                    unavailable_reason: if available {
                        String::new()
                    } else {
                        "acr_not_supported".into()
                    },
                }
            })
            .collect();
        pb::FlowResponse {
            outcome: Some(pb::flow_response::Outcome::Chooser(pb::Chooser {
                csrf: flow.csrf.clone(),
                sp_name: sp.name.clone(),
                locale: ctx.locale.clone(),
                idps,
                acr_asked: flow.acr_min.clone(),
            })),
            ..Default::default()
        }
    }

    /// Moves the flow to the IdP and asks the bridge where to send the browser.
    async fn send_to_idp(
        &self,
        flow: &Flow,
        sp: &reg::ServiceProvider,
        idp: &reg::IdentityProvider,
        ctx: &Ctx<'_>,
    ) -> Result<pb::FlowResponse, Refusal> {
        let chosen = self.event(
            flow.connection_id,
            ConnectionStep::IdpChosen,
            Outcome::Success,
            ctx.source,
            |e| {
                e.sp_id = Some(sp.client_id.clone());
                e.idp_id = Some(idp.id.clone());
            },
        )?;
        if !self
            .store
            .advance_flow(
                &flow.id_hash,
                "choosing",
                "at_idp",
                Some(&idp.id),
                &[chosen],
            )
            .await?
        {
            return Err(Refusal::Page(FrontError::FlowExpired));
        }
        let answer = self
            .bridge
            .clone()
            .start_login(bridge::StartLoginRequest {
                flow_id: flow.connection_id.to_string(),
                idp_id: idp.id.clone(),
                sp_id: sp.client_id.clone(),
                sp_name: sp.name.clone(),
                acr_values: self.ladder.at_least(&flow.acr_min),
                login_hint: flow.login_hint.clone().unwrap_or_default(),
                scopes: flow.scopes.clone(),
                source_ip: ctx.source.ip.clone(),
                source_port: ctx.source.port,
                request_id: ctx.source.request_id.clone(),
                required_claims: claims::required_from_idp(&claims::released_claims(
                    &flow.scopes,
                    &sp.claims,
                )),
            })
            .await;
        match answer {
            Ok(r) => Ok(redirect(r.into_inner().authorization_url)),
            Err(s) => Err(Refusal::Page(bridge_error(&s))),
        }
    }

    async fn choose(&self, req: pb::ChooseIdpRequest) -> pb::FlowResponse {
        let source = req.source.clone().unwrap_or_default();
        let flow_hash = sha256(&req.flow);
        let flow = match self.store.flow(&flow_hash).await {
            Ok(Some(f)) if f.status == "choosing" => f,
            Ok(_) => return error_page(&FrontError::FlowExpired, "fr", &source.request_id),
            Err(e) => return error_page(&e, "fr", &source.request_id),
        };
        let ctx = Ctx {
            source: &source,
            locale: flow.locale.clone(),
        };
        let result = async {
            if !constant_time_eq(&req.csrf, &flow.csrf) {
                return Err(Refusal::Page(FrontError::CsrfMismatch));
            }
            let sp = self.active_sp(&flow.client_id).await?;
            let idps = self.partners.idps().await?;
            let visible = self.visible_idps(&sp, &idps);
            let idp = visible
                .iter()
                .find(|i| {
                    i.id == req.idp_id && self.ladder.any_reaches(&i.acr_values, &flow.acr_min)
                })
                .ok_or(Refusal::Page(FrontError::IdpNotAvailable))?;
            self.send_to_idp(&flow, &sp, idp, &ctx).await
        }
        .await;
        match result {
            Ok(r) => r,
            Err(Refusal::Page(e) | Refusal::Redirect(e, _, _)) => {
                let failed = !matches!(e, FrontError::CsrfMismatch | FrontError::IdpNotAvailable);
                self.trace_failure(
                    flow.connection_id,
                    failed.then_some(flow_hash.as_slice()),
                    &e,
                    &source,
                    |ev| ev.sp_id = Some(flow.client_id.clone()),
                )
                .await;
                error_page(&e, &flow.locale, &source.request_id)
            }
        }
    }

    async fn callback(&self, req: pb::IdpCallbackRequest) -> pb::FlowResponse {
        let source = req.source.clone().unwrap_or_default();
        let flow_hash = sha256(&req.flow);
        let flow = match self.store.flow(&flow_hash).await {
            Ok(Some(f)) if f.status == "at_idp" => f,
            Ok(_) => return error_page(&FrontError::FlowExpired, "fr", &source.request_id),
            Err(e) => return error_page(&e, "fr", &source.request_id),
        };
        let params = params_of(req.params);
        match self.finish(&flow, &params, &source).await {
            Ok(r) => r,
            Err(e) => {
                self.trace_failure(flow.connection_id, Some(&flow_hash), &e, &source, |ev| {
                    ev.sp_id = Some(flow.client_id.clone());
                    ev.idp_id = flow.idp_id.clone();
                })
                .await;
                error_page(&e, &flow.locale, &source.request_id)
            }
        }
    }

    async fn finish(
        &self,
        flow: &Flow,
        params: &Params,
        source: &pb::Source,
    ) -> Result<pb::FlowResponse, FrontError> {
        let get = |n: &str| -> Result<String, FrontError> {
            Ok(params.single(n)?.unwrap_or("").to_string())
        };
        let identity = self
            .bridge
            .clone()
            .finish_login(bridge::FinishLoginRequest {
                flow_id: flow.connection_id.to_string(),
                state: get("state")?,
                code: get("code")?,
                iss: get("iss")?,
                error: get("error")?,
                error_description: get("error_description")?,
                source_ip: source.ip.clone(),
                source_port: source.port,
                request_id: source.request_id.clone(),
            })
            .await
            .map_err(|s| bridge_error(&s))?
            .into_inner();
        // The bridge checked the acr; checked again here as the SP relies on it.
        let reached = self
            .ladder
            .rank(&identity.acr)
            .zip(self.ladder.rank(&flow.acr_min))
            .is_some_and(|(got, min)| got >= min);
        if !reached || Some(identity.idp_id.as_str()) != flow.idp_id.as_deref() {
            return Err(FrontError::Idp {
                code: "idp_acr_too_low".into(),
                message: "the assurance level obtained is below the one asked".into(),
            });
        }
        let sp = self.active_sp(&flow.client_id).await?;
        let account_id = self
            .store
            .account_for(&identity.idp_id, &identity.sub)
            .await?;
        let sub_fs = subject_for(
            self.config.subject_key.expose().as_bytes(),
            &account_id.to_string(),
            &sp.sector_identifier,
        );
        let released = claims::released_claims(&flow.scopes, &sp.claims);
        let idp_claims: Map<String, Value> =
            serde_json::from_str(&identity.claims_json).unwrap_or_default();
        let mut granted = Map::new();
        for name in &released {
            match name.as_str() {
                "sub" => {}
                "idp_id" => {
                    granted.insert(name.clone(), Value::from(identity.idp_id.clone()));
                }
                "idp_acr" => {
                    granted.insert(name.clone(), Value::from(identity.acr.clone()));
                }
                _ => {
                    if let Some(v) = idp_claims.get(name) {
                        granted.insert(name.clone(), v.clone());
                    }
                }
            }
        }
        let now = OffsetDateTime::now_utc();
        let auth_time = OffsetDateTime::from_unix_timestamp(identity.auth_time)
            .ok()
            .filter(|_| identity.auth_time > 0)
            .unwrap_or(now);
        let session_cookie = random_token();
        let session = Session {
            sid: Uuid::new_v4(),
            connection_id: flow.connection_id,
            account_id,
            idp_id: identity.idp_id.clone(),
            sub_fi: identity.sub.clone(),
            idp_id_token: identity.id_token.clone(),
            acr: identity.acr.clone(),
            ended: false,
            expires_at: now + Duration::seconds(i64::from(self.config.session_ttl_seconds)),
            logout_redirect_uri: None,
            logout_client_state: None,
            logout_client_id: None,
        };
        let code = random_token();
        let grant = Grant {
            code_hash: sha256(&code),
            connection_id: flow.connection_id,
            sid: session.sid,
            client_id: sp.client_id.clone(),
            redirect_uri: flow.redirect_uri.clone(),
            nonce: flow.nonce.clone(),
            scopes: flow.scopes.clone(),
            code_challenge: flow.code_challenge.clone(),
            acr: identity.acr.clone(),
            amr: identity.amr.clone(),
            auth_time,
            account_id,
            idp_id: identity.idp_id.clone(),
            sub_fi: identity.sub.clone(),
            sub_fs: sub_fs.clone(),
            claims: Value::Object(granted),
            expires_at: now + Duration::seconds(i64::from(self.config.code_ttl_seconds)),
        };
        let issued = self.event(
            flow.connection_id,
            ConnectionStep::CodeIssued,
            Outcome::Success,
            source,
            |e| {
                e.sp_id = Some(sp.client_id.clone());
                e.idp_id = Some(identity.idp_id.clone());
                e.acr = Some(identity.acr.clone());
                e.sub_fi = Some(identity.sub.clone());
                e.sub_fs = Some(sub_fs.clone());
                e.account_id = Some(account_id.to_string());
                e.session_id = Some(session.sid.to_string());
            },
        )?;
        let session_hash = sha256(&session_cookie);
        if !self
            .store
            .complete_flow(
                &flow.id_hash,
                &session_hash,
                &session,
                auth_time,
                &grant,
                &[issued],
            )
            .await?
        {
            return Err(FrontError::FlowExpired);
        }
        let url = with_query(
            &flow.redirect_uri,
            &[
                ("code", &code),
                ("state", &flow.state),
                ("iss", &self.config.issuer),
            ],
        )?;
        let mut response = redirect(url);
        response.flow_cookie = remove_cookie();
        // A new session id after the IdP callback: no fixation.
        response.session_cookie = cookie(session_cookie, self.config.session_ttl_seconds);
        Ok(response)
    }

    /// A back-channel call (token, revocation, introspection) behind the brute-force
    /// guard: a blocked client or address is refused before anything else, and each
    /// failure that looks like guessing counts toward a block.
    async fn guarded<F, Fut>(&self, req: pb::TokenRequest, call: F) -> pb::ApiResponse
    where
        F: FnOnce(pb::TokenRequest, pb::Source) -> Fut,
        Fut: std::future::Future<Output = Result<Value, FrontError>>,
    {
        let source = req.source.clone().unwrap_or_default();
        let basic = req.authorization.trim_start().starts_with("Basic ");
        let params = params_of(req.params.clone());
        let mut subjects = Vec::new();
        if let Ok((client_id, _, _)) = client_credentials(&req.authorization, &params) {
            subjects.push(format!("client:{client_id}"));
        }
        if !source.ip.is_empty() {
            subjects.push(format!("ip:{}", source.ip));
        }
        let result = match self.store.blocked_until(&subjects).await {
            Ok(Some(until)) => Err(blocked_for(until)),
            Ok(None) => call(req, source.clone()).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result
            && e.counts_as_attack()
        {
            match self
                .store
                .record_auth_failure(&subjects, &self.config.throttle_limits())
                .await
            {
                Ok(Some(until)) => {
                    tracing::warn!(subjects = ?subjects, until = %until, "blocked after repeated failures")
                }
                Ok(None) => {}
                Err(err) => tracing::error!(error = %err, "could not count a failure"),
            }
        }
        match result {
            Ok(v) => json_ok(&v),
            Err(e) => json_error(&e, basic.then_some("Basic"), &source.request_id),
        }
    }

    async fn token(&self, req: pb::TokenRequest) -> pb::ApiResponse {
        self.guarded(req, |req, source| async move {
            self.token_inner(req, &source).await
        })
        .await
    }

    async fn token_inner(
        &self,
        req: pb::TokenRequest,
        source: &pb::Source,
    ) -> Result<Value, FrontError> {
        let params = params_of(req.params);
        let sp = self.authenticate(&req.authorization, &params).await?;
        let client_id = sp.client_id.clone();
        match params.single("grant_type")? {
            Some("authorization_code") => {}
            _ => return Err(FrontError::UnsupportedGrantType),
        }
        let code = params.single("code")?.ok_or(FrontError::CodeMissing)?;
        let grant = match self.store.consume_code(&sha256(code)).await? {
            Consumed::Fresh(g) => g,
            Consumed::Reused(g) => {
                let err = FrontError::CodeReused;
                self.trace_failure(g.connection_id, None, &err, source, |e| {
                    e.sp_id = Some(client_id.clone());
                })
                .await;
                return Err(err);
            }
            Consumed::Missing => return Err(FrontError::CodeInvalid),
        };
        if grant.client_id != sp.client_id {
            let err = FrontError::CodeClientMismatch;
            self.trace_failure(grant.connection_id, None, &err, source, |e| {
                e.sp_id = Some(client_id.clone());
            })
            .await;
            return Err(err);
        }
        let now = OffsetDateTime::now_utc();
        if grant.expires_at <= now {
            return Err(FrontError::CodeInvalid);
        }
        if params.single("redirect_uri")? != Some(grant.redirect_uri.as_str()) {
            return Err(FrontError::TokenRedirectUriMismatch);
        }
        match (&grant.code_challenge, params.single("code_verifier")?) {
            (None, None) => {}
            (Some(challenge), Some(verifier))
                if (43..=128).contains(&verifier.len())
                    && constant_time_eq(&pkce_s256(verifier), challenge) => {}
            _ => return Err(FrontError::PkceFailed),
        }
        let access_token = random_token();
        let at_ttl = i64::from(self.config.access_token_ttl_seconds);
        let key = self.keys.for_alg(&sp.id_token_signed_response_alg);
        let mut c = Map::new();
        c.insert("iss".into(), Value::from(self.config.issuer.clone()));
        c.insert("sub".into(), Value::from(grant.sub_fs.clone()));
        c.insert("aud".into(), Value::from(sp.client_id.clone()));
        c.insert(
            "exp".into(),
            Value::from(ts(now) + i64::from(self.config.id_token_ttl_seconds)),
        );
        c.insert("iat".into(), Value::from(ts(now)));
        c.insert("auth_time".into(), Value::from(ts(grant.auth_time)));
        c.insert("nonce".into(), Value::from(grant.nonce.clone()));
        c.insert("acr".into(), Value::from(grant.acr.clone()));
        if !grant.amr.is_empty() {
            c.insert("amr".into(), Value::from(grant.amr.clone()));
        }
        c.insert("sid".into(), Value::from(grant.sid.to_string()));
        c.insert("at_hash".into(), Value::from(at_hash(&access_token)));
        let id_token = key.sign(&c, "JWT")?;
        let id_token = if sp.id_token_encrypted_response_alg.is_empty() {
            id_token
        } else {
            relais_jose::encrypt(
                id_token.as_bytes(),
                Some("JWT"),
                &sp.jwks,
                &sp.id_token_encrypted_response_alg,
                &sp.id_token_encrypted_response_enc,
            )?
        };
        let issued = self.event(
            grant.connection_id,
            ConnectionStep::TokenIssued,
            Outcome::Success,
            source,
            |e| {
                e.sp_id = Some(sp.client_id.clone());
                e.idp_id = Some(grant.idp_id.clone());
                e.acr = Some(grant.acr.clone());
                e.sub_fs = Some(grant.sub_fs.clone());
                e.account_id = Some(grant.account_id.to_string());
                e.session_id = Some(grant.sid.to_string());
            },
        )?;
        self.store
            .insert_access_token(
                &sha256(&access_token),
                &grant,
                now + Duration::seconds(at_ttl),
                &[issued],
            )
            .await?;
        Ok(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": at_ttl,
            "id_token": id_token,
            "scope": grant.scopes.join(" "),
        }))
    }

    /// Userinfo as the SP registered it: JSON, a signed JWT, encrypted, or both.
    fn userinfo_answer(
        &self,
        mut claims: Map<String, Value>,
        sp: &reg::ServiceProvider,
    ) -> Result<pb::ApiResponse, FrontError> {
        let signed = !sp.userinfo_signed_response_alg.is_empty();
        let encrypted = !sp.userinfo_encrypted_response_alg.is_empty();
        if !signed && !encrypted {
            return Ok(json_ok(&Value::Object(claims)));
        }
        let (payload, cty) = if signed {
            claims.insert("iss".into(), Value::from(self.config.issuer.clone()));
            claims.insert("aud".into(), Value::from(sp.client_id.clone()));
            claims.insert("iat".into(), Value::from(ts(OffsetDateTime::now_utc())));
            let key = self.keys.for_alg(&sp.userinfo_signed_response_alg);
            (key.sign(&claims, "JWT")?, Some("JWT"))
        } else {
            (Value::Object(claims).to_string(), None)
        };
        let body = if encrypted {
            relais_jose::encrypt(
                payload.as_bytes(),
                cty,
                &sp.jwks,
                &sp.userinfo_encrypted_response_alg,
                &sp.userinfo_encrypted_response_enc,
            )?
        } else {
            payload
        };
        Ok(pb::ApiResponse {
            http_status: 200,
            content_type: "application/jwt".into(),
            body,
            www_authenticate: String::new(),
            retry_after_seconds: 0,
        })
    }

    /// The client calling a back-channel endpoint, authenticated by the registry.
    async fn authenticate(
        &self,
        authorization: &str,
        params: &Params,
    ) -> Result<Arc<reg::ServiceProvider>, FrontError> {
        params.check_no_duplicates()?;
        let (client_id, secret, method) = client_credentials(authorization, params)?;
        if method == PRIVATE_KEY_JWT {
            return self.verify_assertion(&client_id, &secret).await;
        }
        self.partners
            .authenticate(&client_id, &secret, method)
            .await
    }

    /// private_key_jwt (RFC 7523): the assertion is signed by a key the SP registered,
    /// names the SP as `iss` and `sub`, is meant for this hub, is short-lived, and its
    /// `jti` is used once.
    async fn verify_assertion(
        &self,
        client_id: &str,
        assertion: &str,
    ) -> Result<Arc<reg::ServiceProvider>, FrontError> {
        let sp = match self.partners.sp(client_id).await {
            Ok(sp) => sp,
            Err(FrontError::UnknownClient) => return Err(FrontError::ClientAuthFailed),
            Err(e) => return Err(e),
        };
        if sp.token_endpoint_auth_method != PRIVATE_KEY_JWT {
            return Err(FrontError::ClientAuthMethodMismatch(
                sp.token_endpoint_auth_method.clone(),
            ));
        }
        let keys = KeySet::from_jwks_json(&sp.jwks).map_err(|_| FrontError::ClientAuthFailed)?;
        let claims = keys
            .verify(assertion)
            .map_err(|_| FrontError::ClientAuthFailed)?;
        let text = |n: &str| claims.get(n).and_then(Value::as_str);
        let issuer = &self.config.issuer;
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == issuer || *a == format!("{issuer}/token"),
            Some(Value::Array(list)) => list.iter().any(|a| {
                a.as_str()
                    .is_some_and(|a| a == issuer || a == format!("{issuer}/token"))
            }),
            _ => false,
        };
        let now = ts(OffsetDateTime::now_utc());
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        // Short-lived: an assertion valid for hours could be replayed once its jti is purged.
        let fresh = exp > now && exp <= now + 600;
        let jti = text("jti").filter(|j| !j.is_empty() && j.len() <= 256);
        if text("iss") != Some(client_id)
            || text("sub") != Some(client_id)
            || !audience_ok
            || !fresh
        {
            return Err(FrontError::ClientAuthFailed);
        }
        let Some(jti) = jti else {
            return Err(FrontError::ClientAuthFailed);
        };
        let expires =
            OffsetDateTime::from_unix_timestamp(exp).map_err(|_| FrontError::ClientAuthFailed)?;
        if !self
            .store
            .use_assertion(
                &sha256(&format!("{client_id}\u{0}{jti}")),
                client_id,
                expires,
            )
            .await?
        {
            return Err(FrontError::ClientAuthFailed);
        }
        if sp.status != PartnerStatus::Active as i32 {
            return Err(FrontError::ClientSuspended);
        }
        Ok(sp)
    }

    /// The `token` of a revocation or introspection request, and its hint checked.
    fn presented_token(params: &Params) -> Result<String, FrontError> {
        match params.single("token_type_hint")? {
            None | Some("access_token") | Some("refresh_token") => {}
            Some(_) => return Err(FrontError::UnsupportedTokenType),
        }
        Ok(params
            .single("token")?
            .ok_or(FrontError::TokenParamMissing)?
            .to_string())
    }

    async fn revoke(&self, req: pb::TokenRequest) -> pb::ApiResponse {
        self.guarded(req, |req, source| async move {
            let params = params_of(req.params);
            let sp = self.authenticate(&req.authorization, &params).await?;
            let token = Self::presented_token(&params)?;
            // RFC 7009 §2.2: an unknown or foreign token is answered as a success.
            if let Some(connection) = self
                .store
                .revoke_token(&sha256(&token), &sp.client_id)
                .await?
            {
                let revoked = self.event(
                    connection,
                    ConnectionStep::TokenRevoked,
                    Outcome::Success,
                    &source,
                    |e| e.sp_id = Some(sp.client_id.clone()),
                )?;
                self.store.record_events(&[revoked]).await?;
            }
            Ok(json!({}))
        })
        .await
    }

    async fn introspect(&self, req: pb::TokenRequest) -> pb::ApiResponse {
        self.guarded(req, |req, _source| async move {
            let params = params_of(req.params);
            let sp = self.authenticate(&req.authorization, &params).await?;
            let token = Self::presented_token(&params)?;
            // Only the client a token was issued to learns anything about it.
            let record = self
                .store
                .token_record(&sha256(&token), &sp.client_id)
                .await?;
            Ok(match record {
                Some(r) if r.active => json!({
                    "active": true,
                    "scope": r.scopes.join(" "),
                    "client_id": r.token.client_id,
                    "token_type": "Bearer",
                    "exp": ts(r.expires_at),
                    "iat": ts(r.issued_at),
                    "sub": r.token.sub_fs,
                    "aud": r.token.client_id,
                    "iss": self.config.issuer,
                    "acr": r.token.acr,
                }),
                _ => json!({ "active": false }),
            })
        })
        .await
    }

    async fn userinfo(&self, req: pb::UserInfoRequest) -> pb::ApiResponse {
        let source = req.source.clone().unwrap_or_default();
        match self.userinfo_inner(req, &source).await {
            Ok(answer) => answer,
            Err(e) => json_error(&e, Some("Bearer"), &source.request_id),
        }
    }

    async fn userinfo_inner(
        &self,
        req: pb::UserInfoRequest,
        source: &pb::Source,
    ) -> Result<pb::ApiResponse, FrontError> {
        let params = params_of(req.params);
        let header = req
            .authorization
            .trim()
            .strip_prefix("Bearer ")
            .map(str::trim);
        let token = match (header, params.single("access_token")?) {
            (Some(_), Some(_)) => return Err(FrontError::MultipleClientAuth),
            (Some(t), None) | (None, Some(t)) => t.to_string(),
            (None, None) => return Err(FrontError::InvalidToken),
        };
        let at = self
            .store
            .access_token(&sha256(&token))
            .await?
            .ok_or(FrontError::InvalidToken)?;
        // A suspended SP's tokens stop working at once.
        let sp = self
            .active_sp(&at.client_id)
            .await
            .map_err(|_| FrontError::InvalidToken)?;
        let mut body = match at.claims {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        body.insert("sub".into(), Value::from(at.sub_fs.clone()));
        let served = self.event(
            at.connection_id,
            ConnectionStep::UserinfoServed,
            Outcome::Success,
            source,
            |e| {
                e.sp_id = Some(at.client_id.clone());
                e.idp_id = Some(at.idp_id.clone());
                e.acr = Some(at.acr.clone());
                e.sub_fs = Some(at.sub_fs.clone());
                e.account_id = Some(at.account_id.to_string());
            },
        )?;
        self.store.record_events(&[served]).await?;
        self.userinfo_answer(body, &sp)
    }

    async fn end_session(&self, req: pb::EndSessionRequest) -> pb::FlowResponse {
        let source = req.source.clone().unwrap_or_default();
        let params = params_of(req.params);
        let locale = authorize::locale(&params, &source.accept_language);
        match self
            .end_session_inner(&params, &req.session, &source, &locale)
            .await
        {
            Ok(r) => r,
            Err(e) => error_page(&e, &locale, &source.request_id),
        }
    }

    async fn end_session_inner(
        &self,
        params: &Params,
        session_cookie: &str,
        source: &pb::Source,
        locale: &str,
    ) -> Result<pb::FlowResponse, FrontError> {
        params.check_no_duplicates()?;
        let hint = match params.single("id_token_hint")? {
            Some(h) => Some(self.verify_hint(h)?),
            None => None,
        };
        let hint_client = hint.as_ref().and_then(|c| match c.get("aud") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_string),
            _ => None,
        });
        let client_id = match (params.single("client_id")?, hint_client) {
            (Some(c), Some(h)) if c != h => return Err(FrontError::InvalidIdTokenHint),
            (Some(c), _) => Some(c.to_string()),
            (None, h) => h,
        };
        let back = match params.single("post_logout_redirect_uri")? {
            Some(uri) => {
                let client = client_id
                    .as_deref()
                    .ok_or(FrontError::PostLogoutRedirectUriMismatch)?;
                let sp = self.partners.sp(client).await?;
                if !sp.post_logout_redirect_uris.iter().any(|u| u == uri) {
                    return Err(FrontError::PostLogoutRedirectUriMismatch);
                }
                Some(uri.to_string())
            }
            None => None,
        };
        let sp_state = params.single("state")?.map(str::to_string);
        let by_cookie = if session_cookie.is_empty() {
            None
        } else {
            self.store
                .session_by_cookie(&sha256(session_cookie))
                .await?
        };
        let session = match by_cookie {
            Some(s) => Some(s),
            None => match hint
                .as_ref()
                .and_then(|c| c.get("sid"))
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
            {
                Some(sid) => self.store.session_by_sid(sid).await?,
                None => None,
            },
        };
        let done = |back: Option<String>| -> Result<pb::FlowResponse, FrontError> {
            let mut r = match back {
                Some(uri) => {
                    let mut pairs = Vec::new();
                    if let Some(s) = &sp_state {
                        pairs.push(("state", s.as_str()));
                    }
                    redirect(with_query(&uri, &pairs)?)
                }
                None => notice("signed_out", signed_out_message(locale), locale),
            };
            r.session_cookie = remove_cookie();
            Ok(r)
        };
        let Some(session) = session.filter(|s| !s.ended) else {
            return done(back);
        };
        let requested = self.event(
            session.connection_id,
            ConnectionStep::LogoutRequested,
            Outcome::Success,
            source,
            |e| {
                e.sp_id = client_id.clone();
                e.idp_id = Some(session.idp_id.clone());
                e.session_id = Some(session.sid.to_string());
                e.account_id = Some(session.account_id.to_string());
            },
        )?;
        let logout_state = random_token();
        let idp_url = self
            .bridge
            .clone()
            .logout_url(bridge::LogoutUrlRequest {
                idp_id: session.idp_id.clone(),
                id_token_hint: session.idp_id_token.clone(),
                state: logout_state.clone(),
            })
            .await
            .map(|r| r.into_inner().url)
            .unwrap_or_else(|s| {
                // The hub session still ends; the IdP's may outlive it.
                tracing::warn!(error = %s.message(), "IdP logout URL unavailable");
                String::new()
            });
        if idp_url.is_empty() {
            let ended = self.event(
                session.connection_id,
                ConnectionStep::SessionEnded,
                Outcome::Success,
                source,
                |e| {
                    e.sp_id = client_id.clone();
                    e.session_id = Some(session.sid.to_string());
                },
            )?;
            self.store
                .end_session(session.sid, None, None, None, None, &[requested, ended])
                .await?;
            return done(back);
        }
        self.store
            .end_session(
                session.sid,
                Some(&sha256(&logout_state)),
                back.as_deref(),
                sp_state.as_deref(),
                client_id.as_deref(),
                &[requested],
            )
            .await?;
        let mut r = redirect(idp_url);
        r.session_cookie = remove_cookie();
        Ok(r)
    }

    fn verify_hint(&self, token: &str) -> Result<Map<String, Value>, FrontError> {
        let claims = self
            .keys
            .public
            .verify(token)
            .map_err(|_| FrontError::InvalidIdTokenHint)?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
            return Err(FrontError::InvalidIdTokenHint);
        }
        Ok(claims)
    }

    async fn logout_callback(&self, req: pb::LogoutCallbackRequest) -> pb::FlowResponse {
        let source = req.source.clone().unwrap_or_default();
        let params = params_of(req.params);
        let locale = authorize::locale(&params, &source.accept_language);
        let result = async {
            let state = params.single("state")?.ok_or(FrontError::FlowExpired)?;
            let session = self
                .store
                .take_logout(&sha256(state))
                .await?
                .ok_or(FrontError::FlowExpired)?;
            let fill = |e: &mut ConnectionEvent| {
                e.sp_id = session.logout_client_id.clone();
                e.idp_id = Some(session.idp_id.clone());
                e.session_id = Some(session.sid.to_string());
            };
            let propagated = self.event(
                session.connection_id,
                ConnectionStep::LogoutPropagated,
                Outcome::Success,
                &source,
                fill,
            )?;
            let ended = self.event(
                session.connection_id,
                ConnectionStep::SessionEnded,
                Outcome::Success,
                &source,
                fill,
            )?;
            self.store.record_events(&[propagated, ended]).await?;
            let mut r = match &session.logout_redirect_uri {
                Some(uri) => {
                    let mut pairs = Vec::new();
                    if let Some(s) = &session.logout_client_state {
                        pairs.push(("state", s.as_str()));
                    }
                    redirect(with_query(uri, &pairs)?)
                }
                None => notice("signed_out", signed_out_message(&locale), &locale),
            };
            r.session_cookie = remove_cookie();
            Ok::<_, FrontError>(r)
        }
        .await;
        result.unwrap_or_else(|e| error_page(&e, &locale, &source.request_id))
    }
}

fn signed_out_message(locale: &str) -> &'static str {
    if locale == "en" {
        "You are signed out of Relais."
    } else {
        "Vous êtes déconnecté de Relais."
    }
}

fn blocked_for(until: OffsetDateTime) -> FrontError {
    let secs = (until - OffsetDateTime::now_utc()).whole_seconds().max(1);
    FrontError::ClientBlocked(u32::try_from(secs).unwrap_or(u32::MAX))
}

/// The stable code the bridge put on a failure, as a front error.
fn bridge_error(status: &tonic::Status) -> FrontError {
    match error_code(status) {
        Some(code) => FrontError::Idp {
            code,
            message: status.message().to_string(),
        },
        None => unavailable("identity provider bridge", status),
    }
}

#[tonic::async_trait]
impl OidcFront for Front {
    async fn discovery(&self, _r: Request<pb::Empty>) -> Result<Response<pb::Json>, Status> {
        Ok(Response::new(pb::Json {
            json: self.discovery_json.clone(),
        }))
    }

    async fn jwks(&self, _r: Request<pb::Empty>) -> Result<Response<pb::Json>, Status> {
        Ok(Response::new(pb::Json {
            json: self.keys.jwks_json.clone(),
        }))
    }

    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::FlowResponse>, Status> {
        let req = request.into_inner();
        let source = req.source.unwrap_or_default();
        let params = params_of(req.params);
        let ctx = Ctx {
            locale: authorize::locale(&params, &source.accept_language),
            source: &source,
        };
        let connection_id = Uuid::new_v4();
        let response = match self.authorize_flow(&params, &ctx, connection_id).await {
            Ok(r) => r,
            Err(refusal) => {
                let (err, back) = match refusal {
                    Refusal::Page(e) => (e, None),
                    Refusal::Redirect(e, uri, state) => (e, Some((uri, state))),
                };
                let sp_id = params
                    .single("client_id")
                    .ok()
                    .flatten()
                    .map(str::to_string);
                self.trace_failure(connection_id, None, &err, &source, |e| e.sp_id = sp_id)
                    .await;
                match back {
                    Some((uri, state)) => error_redirect(
                        &err,
                        &uri,
                        state.as_deref(),
                        &self.config.issuer,
                        &source.request_id,
                    ),
                    None => error_page(&err, &ctx.locale, &source.request_id),
                }
            }
        };
        Ok(Response::new(response))
    }

    async fn choose_idp(
        &self,
        request: Request<pb::ChooseIdpRequest>,
    ) -> Result<Response<pb::FlowResponse>, Status> {
        Ok(Response::new(self.choose(request.into_inner()).await))
    }

    async fn idp_callback(
        &self,
        request: Request<pb::IdpCallbackRequest>,
    ) -> Result<Response<pb::FlowResponse>, Status> {
        Ok(Response::new(self.callback(request.into_inner()).await))
    }

    async fn token(
        &self,
        request: Request<pb::TokenRequest>,
    ) -> Result<Response<pb::ApiResponse>, Status> {
        Ok(Response::new(
            Front::token(self, request.into_inner()).await,
        ))
    }

    async fn user_info(
        &self,
        request: Request<pb::UserInfoRequest>,
    ) -> Result<Response<pb::ApiResponse>, Status> {
        Ok(Response::new(self.userinfo(request.into_inner()).await))
    }

    async fn revoke(
        &self,
        request: Request<pb::TokenRequest>,
    ) -> Result<Response<pb::ApiResponse>, Status> {
        Ok(Response::new(
            Front::revoke(self, request.into_inner()).await,
        ))
    }

    async fn introspect(
        &self,
        request: Request<pb::TokenRequest>,
    ) -> Result<Response<pb::ApiResponse>, Status> {
        Ok(Response::new(
            Front::introspect(self, request.into_inner()).await,
        ))
    }

    async fn list_blocks(&self, _r: Request<pb::Empty>) -> Result<Response<pb::Blocks>, Status> {
        let blocks = self
            .store
            .blocks()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
            .into_iter()
            .map(|(subject, until, blocks, failures)| pb::Block {
                subject,
                blocked_until: until
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                blocks,
                failures,
            })
            .collect();
        Ok(Response::new(pb::Blocks { blocks }))
    }

    async fn clear_block(
        &self,
        request: Request<pb::ClearBlockRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let subject = request.into_inner().subject;
        let cleared = self
            .store
            .clear_block(&subject)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        if !cleared {
            return Err(Status::not_found("no such subject"));
        }
        tracing::info!(subject = %subject, "block lifted by an operator");
        Ok(Response::new(pb::Empty {}))
    }

    async fn verify_access_token(
        &self,
        request: Request<pb::VerifyAccessTokenRequest>,
    ) -> Result<Response<pb::VerifiedAccessToken>, Status> {
        let req = request.into_inner();
        let invalid = || {
            relais_runtime::status_with_code(
                tonic::Code::Unauthenticated,
                "the access token is not live or not this client's".into(),
                "invalid_token",
            )
        };
        let at = self
            .store
            .access_token(&sha256(&req.token))
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
            .ok_or_else(invalid)?;
        // Only the client it was issued to, and only while that client is active.
        if req.client_id.is_empty() || at.client_id != req.client_id {
            return Err(invalid());
        }
        self.active_sp(&at.client_id).await.map_err(|_| invalid())?;
        Ok(Response::new(pb::VerifiedAccessToken {
            sub: at.sub_fs,
            acr: at.acr,
            idp_id: at.idp_id,
            claims_json: at.claims.to_string(),
        }))
    }

    async fn end_session(
        &self,
        request: Request<pb::EndSessionRequest>,
    ) -> Result<Response<pb::FlowResponse>, Status> {
        Ok(Response::new(
            Front::end_session(self, request.into_inner()).await,
        ))
    }

    async fn logout_callback(
        &self,
        request: Request<pb::LogoutCallbackRequest>,
    ) -> Result<Response<pb::FlowResponse>, Status> {
        Ok(Response::new(
            Front::logout_callback(self, request.into_inner()).await,
        ))
    }
}

//! The browser's sign-in: authorize, the chooser, the IdP round trip and its answer.
//! Nothing is written until the IdP answers; then the account, the session, the code's
//! grant and every step of the connection are one transaction.

use relais_bus::events::{ConnectionStep, Outcome};
use relais_proto::idp_bridge::v1 as bridge;
use relais_proto::oidc_front::v1 as pb;
use relais_proto::registry::v1 as reg;
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::domain::accounts::{self, AccountMapping};
use crate::domain::authorize::{self, Params};
use crate::domain::claims;
use crate::domain::flow::{Flow, FlowStatus};
use crate::domain::id_token;
use crate::domain::refusals::Verdict;
use crate::domain::secrets::{constant_time_eq, random_token, sha256, subject_for};
use crate::domain::types::{Locale, RedirectUri};
use crate::error::{FrontError, Surface};
use crate::events::{self, millis};
use crate::front::{Front, bridge_error, cookie, grant_of, params_of, remove_cookie};
use crate::responses::{error_page, error_redirect, redirect, with_query};
use crate::store::{Completion, Session};

/// Why an authorization request stops, and how the SP hears of it.
enum Refusal {
    Page(FrontError),
    Redirect(FrontError, RedirectUri, Option<String>),
}

impl From<FrontError> for Refusal {
    fn from(e: FrontError) -> Self {
        Refusal::Page(e)
    }
}

impl Refusal {
    fn error(&self) -> &FrontError {
        match self {
            Refusal::Page(e) | Refusal::Redirect(e, _, _) => e,
        }
    }
}

/// An SP known and active, and a redirect URI it registered: from here on refusals may
/// go back to it.
struct TrustedClient {
    sp: std::sync::Arc<reg::ServiceProvider>,
    redirect_uri: RedirectUri,
}

pub(crate) fn locale_of(source: &pb::Source) -> Locale {
    authorize::locale(&Params::new(Vec::new()), &source.accept_language)
}

impl Front {
    pub async fn authorize(&self, req: pb::AuthorizeRequest) -> pb::FlowResponse {
        let source = req.source.unwrap_or_default();
        let session_cookie = req.session;
        let params = params_of(req.params);
        let locale = authorize::locale(&params, &source.accept_language);
        // Until the client and its redirect URI are known, nothing is recorded: anyone
        // may send anything to /authorize.
        let client = match self.trusted_client(&params).await {
            Ok(client) => client,
            Err(e) => return self.untrusted_refusal(e, locale, &source),
        };
        let mut flow = Flow {
            connection_id: Uuid::new_v4().to_string(),
            client_id: client.sp.client_id.clone(),
            sp_name: client.sp.name.clone(),
            locale: locale.as_str().to_string(),
            ..Default::default()
        };
        let now = self.clock.now();
        flow.push(
            ConnectionStep::AuthorizeInitiated,
            millis(now),
            &source.ip,
            source.port,
            &source.request_id,
        );
        match self
            .authorize_flow(&params, &client, &mut flow, &session_cookie, &source, now)
            .await
        {
            Ok(r) => r,
            Err(refusal) => {
                // A known client's refusal is recorded, within the address's budget of
                // refusals: past it, nothing is written (the proof store cannot be grown
                // at will with a valid client id). prompt=none's answers are not refusals.
                let answer = matches!(
                    refusal.error(),
                    FrontError::LoginRequired | FrontError::InteractionRequired
                );
                if !answer
                    && let Verdict::Slow(seconds) = self
                        .refusals
                        .count(address_of(&source), std::time::Instant::now())
                {
                    return error_page(
                        &FrontError::TooManyRefusals(seconds),
                        flow.locale(),
                        &source.request_id,
                    );
                }
                self.record_failed_flow(&flow, refusal.error(), &source)
                    .await;
                match refusal {
                    Refusal::Redirect(err, uri, state) => error_redirect(
                        &err,
                        uri.as_str(),
                        state.as_deref(),
                        &self.config.issuer,
                        &source.request_id,
                    ),
                    Refusal::Page(err) => error_page(&err, flow.locale(), &source.request_id),
                }
            }
        }
    }

    /// A refusal before the client is known: nothing written, counted per address, and an
    /// address sending too many is told to wait.
    fn untrusted_refusal(
        &self,
        e: FrontError,
        locale: Locale,
        source: &pb::Source,
    ) -> pb::FlowResponse {
        if matches!(e, FrontError::Unavailable(_) | FrontError::Internal(_)) {
            return error_page(&e, locale, &source.request_id);
        }
        match self
            .refusals
            .count(address_of(source), std::time::Instant::now())
        {
            Verdict::Refuse => error_page(&e, locale, &source.request_id),
            Verdict::Slow(seconds) => {
                let (refused, limited) = self.refusals.totals();
                tracing::warn!(
                    refused,
                    limited,
                    "an address sends many refused authorization requests"
                );
                error_page(
                    &FrontError::TooManyRefusals(seconds),
                    locale,
                    &source.request_id,
                )
            }
        }
    }

    /// The SP of an authorization request, active, with the exact redirect URI it
    /// registered; errors here are pages (the redirect URI cannot be trusted).
    async fn trusted_client(&self, params: &Params) -> Result<TrustedClient, FrontError> {
        let (client_id, redirect_uri) = authorize::client_and_redirect(params)?;
        let sp = self.active_sp(client_id.as_str()).await?;
        let redirect_uri = RedirectUri::parse(redirect_uri)?;
        if !redirect_uri.is_among(&sp.redirect_uris) {
            return Err(FrontError::RedirectUriMismatch);
        }
        Ok(TrustedClient { sp, redirect_uri })
    }

    async fn authorize_flow(
        &self,
        params: &Params,
        client: &TrustedClient,
        flow: &mut Flow,
        session_cookie: &str,
        source: &pb::Source,
        now: OffsetDateTime,
    ) -> Result<pb::FlowResponse, Refusal> {
        let sp = &*client.sp;
        let to_sp = |e: FrontError| {
            if e.info().surface == Surface::Page && !matches!(e, FrontError::Unavailable(_)) {
                Refusal::Page(e)
            } else {
                Refusal::Redirect(
                    e,
                    client.redirect_uri.clone(),
                    authorize::echo_state(params),
                )
            }
        };
        let request = authorize::validate(params, sp, client.redirect_uri.clone(), &self.ladder)
            .map_err(to_sp)?;
        // A hint must be an ID token this hub issued to this client.
        let hint = match params.single("id_token_hint").map_err(to_sp)? {
            Some(hint) => {
                let claims = self
                    .verify_hint(hint)
                    .ok()
                    .filter(|c| id_token::is_for(c, &sp.client_id));
                let Some(claims) = claims else {
                    return Err(Refusal::Redirect(
                        FrontError::InvalidIdTokenHint,
                        client.redirect_uri.clone(),
                        authorize::echo_state(params),
                    ));
                };
                Some(claims)
            }
            None => None,
        };
        flow.redirect_uri = request.redirect_uri.as_str().to_string();
        flow.state = request.state.clone();
        flow.nonce = request.nonce.clone();
        flow.scopes = request.scopes.as_slice().to_vec();
        flow.acr_min = request.acr_min.to_string();
        flow.login_hint = request.login_hint.clone();
        flow.code_challenge = request.code_challenge.clone();
        flow.csrf = random_token();
        flow.set_stage(FlowStatus::Choosing);
        flow.expires_at =
            (now + Duration::seconds(i64::from(self.config.flow_ttl_seconds))).unix_timestamp();
        flow.force_login = request.prompt.login;
        flow.max_age = request.max_age;
        // The hub session answers when it may; prompt=none must be answered by it.
        let session = self
            .live_session(session_cookie, now)
            .await
            .map_err(to_sp)?;
        if request.prompt.none || self.sso_open(sp) {
            match self.usable_session(session.as_ref(), sp, &request, hint.as_ref(), now) {
                Ok(()) => {
                    if let Some(session) = &session {
                        return self
                            .sso_sign_in(flow, sp, session, source, now)
                            .await
                            .map_err(to_sp);
                    }
                }
                Err(why) if request.prompt.none => return Err(to_sp(why)),
                Err(_) => {}
            }
        }
        // Step-up: the IdP of a lower session is asked to authenticate again.
        flow.lower_at_idp = self.lower_at_idp(session.as_ref(), &request.acr_min);
        let idps = self.partners.idps().await.map_err(to_sp)?;
        let visible = self.visible_idps(sp, &idps);
        let hinted = request.idp_hint.as_deref().and_then(|h| {
            visible
                .iter()
                .find(|i| i.id == h && self.ladder.any_reaches(&i.acr_values, &flow.acr_min))
        });
        if let Some(idp) = hinted {
            return self.send_to_idp(flow, sp, idp, source).await;
        }
        flow.push(
            ConnectionStep::ChooserShown,
            millis(now),
            &source.ip,
            source.port,
            &source.request_id,
        );
        let sealed = flow.seal(&self.sealer).map_err(to_sp)?;
        let mut response = self.chooser(flow, sp, &visible);
        response.flow_cookie = cookie(sealed, self.config.flow_ttl_seconds);
        Ok(response)
    }

    pub(crate) fn chooser(
        &self,
        flow: &Flow,
        sp: &reg::ServiceProvider,
        visible: &[&reg::IdentityProvider],
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
                locale: flow.locale().as_str().to_string(),
                idps,
                acr_asked: flow.acr_min.clone(),
                acr_rank: self
                    .ladder
                    .rank(&flow.acr_min)
                    .and_then(|r| u32::try_from(r + 1).ok())
                    .unwrap_or(0),
                acr_levels: u32::try_from(self.ladder.levels().len()).unwrap_or(0),
            })),
            ..Default::default()
        }
    }

    /// Asks the bridge for the IdP round trip and sends the browser there, the flow (with
    /// the bridge's sealed round trip) in its cookie.
    async fn send_to_idp(
        &self,
        flow: &mut Flow,
        sp: &reg::ServiceProvider,
        idp: &reg::IdentityProvider,
        source: &pb::Source,
    ) -> Result<pb::FlowResponse, Refusal> {
        let chosen_at = self.clock.now();
        flow.idp_id = Some(idp.id.clone());
        flow.push(
            ConnectionStep::IdpChosen,
            millis(chosen_at),
            &source.ip,
            source.port,
            &source.request_id,
        );
        let answer = self
            .bridge
            .clone()
            .start_login(bridge::StartLoginRequest {
                flow_id: flow.connection_id.clone(),
                idp_id: idp.id.clone(),
                sp_id: sp.client_id.clone(),
                sp_name: sp.name.clone(),
                acr_values: self.ladder.at_least(&flow.acr_min),
                login_hint: flow.login_hint.clone().unwrap_or_default(),
                scopes: self.idp_scopes(&flow.scopes),
                source_ip: source.ip.clone(),
                source_port: source.port,
                request_id: source.request_id.clone(),
                required_claims: self.required_from_idp(&flow.scopes, sp),
                force_login: flow.force_login
                    || flow.lower_at_idp.as_deref() == Some(idp.id.as_str()),
                max_age: flow.max_age,
            })
            .await
            .map_err(|s| Refusal::Page(bridge_error(&s)))?
            .into_inner();
        flow.set_stage(FlowStatus::AtIdp);
        flow.round_trip = answer.round_trip;
        flow.push(
            ConnectionStep::IdpRedirected,
            millis(self.clock.now()),
            &source.ip,
            source.port,
            &source.request_id,
        );
        let sealed = flow.seal(&self.sealer)?;
        let mut response = redirect(answer.authorization_url);
        response.flow_cookie = cookie(sealed, self.config.flow_ttl_seconds);
        Ok(response)
    }

    /// The scopes asked of the IdP: the SP's, and the pivot identity when accounts are
    /// mapped from it.
    fn idp_scopes(&self, scopes: &[String]) -> Vec<String> {
        let mut out = scopes.to_vec();
        if self.config.accounts == AccountMapping::PivotIdentity
            && !out.iter().any(|s| s == accounts::PIVOT_SCOPE)
        {
            out.push(accounts::PIVOT_SCOPE.to_string());
        }
        out
    }

    /// The claims the IdP must give: those the SP will receive, and the pivot identity
    /// when accounts are mapped from it.
    fn required_from_idp(&self, scopes: &[String], sp: &reg::ServiceProvider) -> Vec<String> {
        let mut out = claims::required_from_idp(&claims::released_claims(scopes, &sp.claims));
        if self.config.accounts == AccountMapping::PivotIdentity {
            for c in accounts::pivot_required() {
                if !out.iter().any(|o| o == c) {
                    out.push(c.to_string());
                }
            }
        }
        out
    }

    pub async fn choose(&self, req: pb::ChooseIdpRequest) -> pb::FlowResponse {
        let source = req.source.clone().unwrap_or_default();
        let now = self.clock.now().unix_timestamp();
        // From the chooser, or back to it from the IdP: a new round trip either way.
        let mut flow = match Flow::open(&self.sealer, &req.flow, now) {
            Ok(f) => f,
            Err(e) => return error_page(&e, locale_of(&source), &source.request_id),
        };
        // Not failures of the sign-in: the chooser can be used again.
        if !constant_time_eq(&req.csrf, &flow.csrf) {
            return self.with_ways_out(
                error_page(&FrontError::CsrfMismatch, flow.locale(), &source.request_id),
                &flow,
                &FrontError::CsrfMismatch,
            );
        }
        let result = async {
            let sp = self.active_sp(&flow.client_id).await?;
            let idps = self.partners.idps().await?;
            let visible = self.visible_idps(&sp, &idps);
            let idp = visible
                .iter()
                .find(|i| {
                    i.id == req.idp_id && self.ladder.any_reaches(&i.acr_values, &flow.acr_min)
                })
                .ok_or(Refusal::Page(FrontError::IdpNotAvailable))?;
            self.send_to_idp(&mut flow, &sp, idp, &source).await
        }
        .await;
        match result {
            Ok(r) => r,
            Err(Refusal::Page(FrontError::IdpNotAvailable)) => self.with_ways_out(
                error_page(
                    &FrontError::IdpNotAvailable,
                    flow.locale(),
                    &source.request_id,
                ),
                &flow,
                &FrontError::IdpNotAvailable,
            ),
            Err(refusal) => self.failed_attempt(&flow, refusal.error(), &source).await,
        }
    }

    pub async fn callback(&self, req: pb::IdpCallbackRequest) -> pb::FlowResponse {
        let source = req.source.clone().unwrap_or_default();
        let now = self.clock.now();
        let mut flow = match Flow::open(&self.sealer, &req.flow, now.unix_timestamp()) {
            Ok(f) if f.at(FlowStatus::AtIdp) => f,
            Ok(_) => {
                return error_page(
                    &FrontError::FlowExpired,
                    locale_of(&source),
                    &source.request_id,
                );
            }
            Err(e) => return error_page(&e, locale_of(&source), &source.request_id),
        };
        flow.push(
            ConnectionStep::IdpCallback,
            millis(now),
            &source.ip,
            source.port,
            &source.request_id,
        );
        let params = params_of(req.params);
        match self.finish(&flow, &params, &source).await {
            Ok(mut response) => {
                response.flow_cookie = remove_cookie();
                response
            }
            Err(e) => self.failed_attempt(&flow, &e, &source).await,
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
                flow_id: flow.connection_id.clone(),
                state: get("state")?,
                code: get("code")?,
                iss: get("iss")?,
                error: get("error")?,
                error_description: get("error_description")?,
                source_ip: source.ip.clone(),
                source_port: source.port,
                request_id: source.request_id.clone(),
                round_trip: flow.round_trip.clone(),
            })
            .await
            .map_err(|s| bridge_error(&s))?
            .into_inner();
        let verified_at = self.clock.now();
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
        let connection_id = Uuid::parse_str(&flow.connection_id)
            .map_err(|_| FrontError::Internal("a flow without a connection id".into()))?;
        let released = claims::released_claims(&flow.scopes, &sp.claims);
        let idp_claims: Map<String, Value> =
            serde_json::from_str(&identity.claims_json).unwrap_or_default();
        let granted = claims::granted(&released, &identity.idp_id, &identity.acr, &idp_claims);
        let now = self.clock.now();
        let auth_time = OffsetDateTime::from_unix_timestamp(identity.auth_time)
            .ok()
            .filter(|_| identity.auth_time > 0)
            .unwrap_or(now);
        if !fresh_enough(flow, identity.auth_time, now) {
            return Err(FrontError::StaleAuthentication);
        }
        let pivot = match self.config.accounts {
            AccountMapping::IdpSubject => None,
            AccountMapping::PivotIdentity => Some(
                accounts::pivot_key(self.config.subject_key.expose().as_bytes(), &idp_claims)
                    .ok_or_else(|| FrontError::Idp {
                        code: "idp_claim_missing".into(),
                        message: "the pivot identity is incomplete".into(),
                    })?,
            ),
        };
        let session_cookie = random_token();
        let code = random_token();
        let subject_key = self.config.subject_key.expose().as_bytes();
        let build = |account_id: Uuid| -> Result<Completion, FrontError> {
            let sub_fs = subject_for(subject_key, &account_id.to_string(), &sp.sector_identifier);
            let session = Session {
                sid: Uuid::new_v4(),
                connection_id,
                account_id,
                idp_id: identity.idp_id.clone(),
                sub_fi: identity.sub.clone(),
                idp_id_token: identity.id_token.clone(),
                acr: identity.acr.clone(),
                amr: identity.amr.clone(),
                auth_time,
                idp_claims: Value::Object(idp_claims.clone()),
                ended: false,
                expires_at: now + Duration::seconds(i64::from(self.config.session_ttl_seconds)),
                logout_redirect_uri: None,
                logout_client_state: None,
                logout_client_id: None,
            };
            let grant = grant_of(
                flow,
                &session,
                connection_id,
                &code,
                sub_fs.clone(),
                Value::Object(granted.clone()),
                now + Duration::seconds(i64::from(self.config.code_ttl_seconds)),
            );
            let mut flow = flow.clone();
            flow.push(
                ConnectionStep::IdentityVerified,
                millis(verified_at),
                &source.ip,
                source.port,
                &source.request_id,
            );
            let record = events::sign_in_record(
                &flow,
                now,
                ConnectionStep::CodeIssued,
                Outcome::Success,
                source,
                |e| {
                    e.idp_id = Some(identity.idp_id.clone());
                    e.acr = Some(identity.acr.clone());
                    e.sub_fi = Some(identity.sub.clone());
                    e.sub_fs = Some(sub_fs.clone());
                    e.account_id = Some(account_id.to_string());
                    e.session_id = Some(session.sid.to_string());
                },
            )?;
            Ok(Completion {
                session_hash: sha256(&session_cookie),
                session,
                grant,
                events: vec![record],
            })
        };
        let account_id = accounts::account_id(
            subject_key,
            &identity.idp_id,
            &identity.sub,
            pivot.as_deref(),
        )
        .ok_or_else(|| FrontError::Internal("the subject key is unusable".into()))?;
        // A replayed callback of a completed flow finds its connection taken.
        if !self
            .store
            .complete_sign_in(
                account_id,
                &identity.idp_id,
                &identity.sub,
                pivot.as_deref(),
                build,
            )
            .await?
        {
            return Err(FrontError::FlowExpired);
        }
        self.metrics.signed_in("idp");
        let url = with_query(
            &flow.redirect_uri,
            &[
                ("code", &code),
                ("state", &flow.state),
                ("iss", &self.config.issuer),
            ],
        )?;
        let mut response = redirect(url);
        // A new session id after the IdP callback: no fixation.
        response.session_cookie = cookie(session_cookie, self.config.session_ttl_seconds);
        Ok(response)
    }
}

/// Leeway for the IdP's clock in `auth_time`.
const AUTH_TIME_SKEW_SECONDS: i64 = 60;

/// Whether the IdP's `auth_time` (unix seconds, 0 if it gave none) is as recent as the SP
/// asked: after the sign-in started for `prompt=login`, within `max_age`.
fn fresh_enough(flow: &Flow, auth_time: i64, now: OffsetDateTime) -> bool {
    if !flow.force_login && flow.max_age.is_none() {
        return true;
    }
    let started = flow.steps.first().map_or(0, |s| s.at_ms / 1000);
    let after_start = !flow.force_login || auth_time + AUTH_TIME_SKEW_SECONDS >= started;
    let within_max_age = flow
        .max_age
        .is_none_or(|m| now.unix_timestamp() - auth_time <= m + AUTH_TIME_SKEW_SECONDS);
    auth_time > 0 && after_start && within_max_age
}

/// The address refusals are counted under.
fn address_of(source: &pb::Source) -> &str {
    if source.ip.is_empty() {
        "unknown"
    } else {
        &source.ip
    }
}

//! RP-initiated logout: the hub session ends, the IdP is asked to end its own, and the
//! browser comes back to the SP.

use relais_bus::events::{ConnectionEvent, ConnectionStep, Outcome};
use relais_proto::idp_bridge::v1 as bridge;
use relais_proto::oidc_front::v1 as pb;

use crate::domain::authorize::{self, Params};
use crate::domain::id_token;
use crate::domain::logout_confirmation::Confirmation;
use crate::domain::secrets::{random_token, sha256};
use crate::domain::types::{Locale, RedirectUri};
use crate::error::FrontError;
use crate::events;
use crate::front::{Front, params_of, remove_cookie};
use crate::responses::{error_page, notice, redirect, with_query};
use crate::store::Session;

impl Front {
    pub async fn end_session(&self, req: pb::EndSessionRequest) -> pb::FlowResponse {
        let source = req.source.clone().unwrap_or_default();
        let params = params_of(req.params);
        let locale = authorize::locale(&params, &source.accept_language);
        match self
            .end_session_inner(&params, &req.session, &source, locale)
            .await
        {
            Ok(r) => r,
            Err(e) => error_page(&e, locale, &source.request_id),
        }
    }

    async fn end_session_inner(
        &self,
        params: &Params,
        session_cookie: &str,
        source: &pb::Source,
        locale: Locale,
    ) -> Result<pb::FlowResponse, FrontError> {
        params.check_no_duplicates()?;
        let now = self.clock.now();
        let hint = match params.single("id_token_hint")? {
            Some(h) => Some(self.verify_hint(h)?),
            None => None,
        };
        // An expired ID token still names the session it came from (RP-Initiated Logout
        // §2), but none older than a session lives: such a hint names no live session.
        if let Some(claims) = &hint {
            let iat = claims.get("iat").and_then(serde_json::Value::as_i64);
            let oldest = now.unix_timestamp() - i64::from(self.config.session_ttl_seconds);
            if !iat.is_some_and(|iat| iat >= oldest && iat <= now.unix_timestamp() + 60) {
                return Err(FrontError::InvalidIdTokenHint);
            }
        }
        let hint_client = hint
            .as_ref()
            .and_then(|c| id_token::client_of(c))
            .map(str::to_string);
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
                let uri = RedirectUri::parse(uri)
                    .ok()
                    .filter(|u| u.is_among(&sp.post_logout_redirect_uris))
                    .ok_or(FrontError::PostLogoutRedirectUriMismatch)?;
                Some(uri)
            }
            None => None,
        };
        let sp_state = params.single("state")?.map(str::to_string);
        let back = back.map(|u| u.as_str().to_string());
        // Only the browser holding the session ends it: a hint names a session, it does
        // not prove its holder (any SP back end has one), and the IdP's own ID token
        // rides on the redirect that follows. An expired session is over: its IdP token
        // is not handed on to end it.
        let Some(session) = self.live_session(session_cookie, now).await? else {
            return signed_out(back.as_deref(), sp_state.as_deref(), locale);
        };
        // A hint of this very session shows the SP asked (RP-Initiated Logout §2);
        // anything else may be a cross-site request: the person is asked first.
        let hinted_sid = hint
            .as_ref()
            .and_then(|c| c.get("sid"))
            .and_then(serde_json::Value::as_str);
        if hinted_sid == Some(session.sid.to_string().as_str()) {
            return self
                .end_live_session(&session, client_id, back, sp_state, source, locale)
                .await;
        }
        let sp_name = match &client_id {
            Some(c) => self.partners.sp(c).await?.name.clone(),
            None => String::new(),
        };
        let token = Confirmation {
            sid: session.sid.to_string(),
            client_id,
            post_logout_redirect_uri: back,
            state: sp_state,
            locale: locale.as_str().to_string(),
        }
        .seal(&self.sealer, now.unix_timestamp())?;
        Ok(pb::FlowResponse {
            outcome: Some(pb::flow_response::Outcome::LogoutConfirm(
                pb::LogoutConfirm {
                    token,
                    locale: locale.as_str().to_string(),
                    sp_name,
                },
            )),
            ..Default::default()
        })
    }

    /// The answer of the confirmation page: a valid token of this browser's live session
    /// ends it as a logout the SP asked for.
    pub async fn confirm_end_session(&self, req: pb::ConfirmEndSessionRequest) -> pb::FlowResponse {
        let source = req.source.clone().unwrap_or_default();
        let accept = authorize::locale(&params_of(Vec::new()), &source.accept_language);
        let result = async {
            let now = self.clock.now().unix_timestamp();
            let c = Confirmation::open(&self.sealer, &req.token, now)?;
            let locale = Locale::parse(&c.locale);
            if req.stay {
                return Ok(notice(
                    "still_signed_in",
                    still_signed_in_message(locale),
                    locale,
                ));
            }
            let Some(session) = self.live_session(&req.session, self.clock.now()).await? else {
                return signed_out(
                    c.post_logout_redirect_uri.as_deref(),
                    c.state.as_deref(),
                    locale,
                );
            };
            // Sealed for another browser's session: replayed or planted, it ends nothing.
            if session.sid.to_string() != c.sid {
                return Err(FrontError::LogoutConfirmationInvalid);
            }
            self.end_live_session(
                &session,
                c.client_id,
                c.post_logout_redirect_uri,
                c.state,
                &source,
                locale,
            )
            .await
        }
        .await;
        result.unwrap_or_else(|e| error_page(&e, accept, &source.request_id))
    }

    async fn end_live_session(
        &self,
        session: &Session,
        client_id: Option<String>,
        back: Option<String>,
        sp_state: Option<String>,
        source: &pb::Source,
        locale: Locale,
    ) -> Result<pb::FlowResponse, FrontError> {
        let requested = events::at(
            self.clock.now(),
            &session.connection_id.to_string(),
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
        // Queued with the end of the session: delivered whatever happens next.
        let notices = self.backchannel_notices(session).await?;
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
            let ended = events::at(
                self.clock.now(),
                &session.connection_id.to_string(),
                ConnectionStep::SessionEnded,
                Outcome::Success,
                source,
                |e| {
                    e.sp_id = client_id.clone();
                    e.session_id = Some(session.sid.to_string());
                },
            )?;
            let mut events = vec![requested, ended];
            events.extend(notices);
            self.store
                .end_session(session.sid, None, None, None, None, &events)
                .await?;
            return signed_out(back.as_deref(), sp_state.as_deref(), locale);
        }
        self.store
            .end_session(
                session.sid,
                Some(&sha256(&logout_state)),
                back.as_deref(),
                sp_state.as_deref(),
                client_id.as_deref(),
                &[vec![requested], notices].concat(),
            )
            .await?;
        let mut r = redirect(idp_url);
        r.session_cookie = remove_cookie();
        Ok(r)
    }

    pub async fn logout_callback(&self, req: pb::LogoutCallbackRequest) -> pb::FlowResponse {
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
            let propagated = events::at(
                self.clock.now(),
                &session.connection_id.to_string(),
                ConnectionStep::LogoutPropagated,
                Outcome::Success,
                &source,
                fill,
            )?;
            let ended = events::at(
                self.clock.now(),
                &session.connection_id.to_string(),
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
                None => notice("signed_out", signed_out_message(locale), locale),
            };
            r.session_cookie = remove_cookie();
            Ok::<_, FrontError>(r)
        }
        .await;
        result.unwrap_or_else(|e| error_page(&e, locale, &source.request_id))
    }
}

/// The end of a logout without the IdP: back to the SP (with its `state`), or a notice.
fn signed_out(
    back: Option<&str>,
    state: Option<&str>,
    locale: Locale,
) -> Result<pb::FlowResponse, FrontError> {
    let mut r = match back {
        Some(uri) => {
            let mut pairs = Vec::new();
            if let Some(s) = state {
                pairs.push(("state", s));
            }
            redirect(with_query(uri, &pairs)?)
        }
        None => notice("signed_out", signed_out_message(locale), locale),
    };
    r.session_cookie = remove_cookie();
    Ok(r)
}

fn still_signed_in_message(locale: Locale) -> &'static str {
    match locale {
        Locale::En => "You are still signed in to Relais.",
        Locale::Fr => "Vous êtes toujours connecté à Relais.",
    }
}

fn signed_out_message(locale: Locale) -> &'static str {
    match locale {
        Locale::En => "You are signed out of Relais.",
        Locale::Fr => "Vous êtes déconnecté de Relais.",
    }
}

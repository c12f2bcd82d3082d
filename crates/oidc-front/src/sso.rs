//! Single sign-on (OIDC Core §3.1.2.1): a live hub session answers an authorization
//! request without the chooser or the IdP, when the deployment and the SP allow it and the
//! session satisfies the request (acr, `max_age`, `prompt`, `id_token_hint`, claims).

use relais_bus::events::{ConnectionStep, Outcome};
use relais_proto::oidc_front::v1 as pb;
use relais_proto::registry::v1 as reg;
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::domain::acr::Acr;
use crate::domain::authorize::AuthorizeRequest;
use crate::domain::claims;
use crate::domain::flow::Flow;
use crate::domain::secrets::{random_token, sha256, subject_for};
use crate::error::FrontError;
use crate::events;
use crate::front::{Front, grant_of};
use crate::responses::{redirect, with_query};
use crate::store::Session;

impl Front {
    /// Whether single sign-on is open to `sp` at all; when it is not, the session is not
    /// even looked up (unless `prompt=none` needs the reason).
    pub fn sso_open(&self, sp: &reg::ServiceProvider) -> bool {
        self.config.sso_enabled && sp.sso
    }

    /// The browser's live hub session, if its cookie names one.
    pub async fn live_session(
        &self,
        cookie: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, FrontError> {
        if cookie.is_empty() {
            return Ok(None);
        }
        Ok(self
            .store
            .session_by_cookie(&sha256(cookie))
            .await?
            .filter(|s| !s.ended && s.expires_at > now))
    }

    /// The session, if it may answer this request; otherwise the error a `prompt=none`
    /// request gets.
    pub fn usable_session(
        &self,
        session: Option<&Session>,
        sp: &reg::ServiceProvider,
        request: &AuthorizeRequest,
        hint: Option<&Map<String, Value>>,
        now: OffsetDateTime,
    ) -> Result<(), FrontError> {
        let Some(session) = session else {
            return Err(FrontError::LoginRequired);
        };
        if !self.sso_open(sp) {
            return Err(FrontError::InteractionRequired);
        }
        let allowed = if sp.sso_acr_values.is_empty() {
            &sp.acr_values
        } else {
            &sp.sso_acr_values
        };
        // FranceConnect's allowedSsoAcrs: the level the SP asks must be one single sign-on
        // may serve, and the session's must reach it.
        let acr_ok = request.acr_min.is_among(allowed)
            && self
                .ladder
                .rank(&session.acr)
                .zip(self.ladder.rank(request.acr_min.as_str()))
                .is_some_and(|(got, min)| got >= min);
        let recent = request
            .max_age
            .is_none_or(|m| (now - session.auth_time).whole_seconds() <= m);
        // The hint names the person at this SP: the session must be theirs.
        let same_person = hint.is_none_or(|c| {
            c.get("sub").and_then(Value::as_str) == Some(self.subject(session, sp).as_str())
        });
        let idp_claims = session.idp_claims.as_object();
        let has_claims = claims::required_from_idp(&claims::released_claims(
            request.scopes.as_slice(),
            &sp.claims,
        ))
        .iter()
        .all(|c| idp_claims.is_some_and(|m| m.contains_key(c)));
        if request.prompt.login || !acr_ok || !recent || !same_person || !has_claims {
            return Err(FrontError::LoginRequired);
        }
        Ok(())
    }

    /// The IdP where `session` is known to be of a lower level than `acr_min`.
    pub fn lower_at_idp(&self, session: Option<&Session>, acr_min: &Acr) -> Option<String> {
        let s = session?;
        let lower = self
            .ladder
            .rank(&s.acr)
            .zip(self.ladder.rank(acr_min.as_str()))
            .is_some_and(|(got, min)| got < min);
        lower.then(|| s.idp_id.clone())
    }

    fn subject(&self, session: &Session, sp: &reg::ServiceProvider) -> String {
        subject_for(
            self.config.subject_key.expose().as_bytes(),
            &session.account_id.to_string(),
            &sp.sector_identifier,
        )
    }

    /// Signs the user in at `sp` from `session`: a code under the session and the
    /// connection's record (marked as single sign-on), in one statement.
    pub async fn sso_sign_in(
        &self,
        flow: &Flow,
        sp: &reg::ServiceProvider,
        session: &Session,
        source: &pb::Source,
        now: OffsetDateTime,
    ) -> Result<pb::FlowResponse, FrontError> {
        let connection_id = Uuid::parse_str(&flow.connection_id)
            .map_err(|_| FrontError::Internal("a flow without a connection id".into()))?;
        let released = claims::released_claims(&flow.scopes, &sp.claims);
        let empty = Map::new();
        let granted = claims::granted(
            &released,
            &session.idp_id,
            &session.acr,
            session.idp_claims.as_object().unwrap_or(&empty),
        );
        let sub_fs = self.subject(session, sp);
        let code = random_token();
        let grant = grant_of(
            flow,
            session,
            connection_id,
            &code,
            sub_fs.clone(),
            Value::Object(granted),
            now + Duration::seconds(i64::from(self.config.code_ttl_seconds)),
        );
        let record = events::sign_in_record(
            flow,
            now,
            ConnectionStep::CodeIssued,
            Outcome::Success,
            source,
            |e| {
                e.sso = true;
                e.idp_id = Some(session.idp_id.clone());
                e.acr = Some(session.acr.clone());
                e.sub_fi = Some(session.sub_fi.clone());
                e.sub_fs = Some(sub_fs.clone());
                e.account_id = Some(session.account_id.to_string());
                e.session_id = Some(session.sid.to_string());
            },
        )?;
        // Refused in the statement: a suspension (or logout) may have come since the
        // session was read.
        if !self.store.insert_grant(&grant, &[record]).await? {
            return Err(
                match self.store.account_suspended(session.account_id).await? {
                    Some(true) => FrontError::AccountSuspended,
                    _ => FrontError::LoginRequired,
                },
            );
        }
        self.metrics.signed_in("sso");
        Ok(redirect(with_query(
            &flow.redirect_uri,
            &[
                ("code", &code),
                ("state", &flow.state),
                ("iss", &self.config.issuer),
            ],
        )?))
    }
}

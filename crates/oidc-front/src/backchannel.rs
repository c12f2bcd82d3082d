//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a hub session ends,
//! each SP it signed the user in at, and that registered a `backchannel_logout_uri`, is
//! POSTed a logout token signed like its ID tokens. The notices are queued with the end
//! of the session (the outbox) and delivered from the front's own queue, so the browser
//! never waits for an SP, a broker outage only delays them, and an SP that does not answer
//! is tried again on a schedule, then recorded as not told.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Transaction;
use relais_bus::events::{BackchannelLogout, ConnectionEvent, ConnectionStep, Outcome};
use relais_bus::{Event, EventHandler, HandlerError, Outbox, async_trait};
use relais_proto::registry::v1 as reg;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::domain::secrets::random_token;
use crate::error::FrontError;
use crate::events;
use crate::keys::Keys;
use crate::partners::Partners;

/// The event the spec defines for a logout token.
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Long enough for a delivery and its clock skew, short enough not to be replayed later.
pub(crate) const LOGOUT_TOKEN_TTL_SECONDS: i64 = 120;
/// What a failed delivery is recorded with once it is given up.
pub const GIVEN_UP: &str = "backchannel_logout_failed";

/// The logout token's claims for one SP (§2.4): no `nonce`, the event, and both the
/// subject and the session the SP's ID tokens named.
pub fn logout_claims(
    issuer: &str,
    notice: &BackchannelLogout,
    now: OffsetDateTime,
) -> Map<String, Value> {
    let iat = now.unix_timestamp();
    let mut c = Map::new();
    c.insert("iss".into(), Value::from(issuer));
    c.insert("aud".into(), Value::from(notice.client_id.clone()));
    c.insert("iat".into(), Value::from(iat));
    c.insert("exp".into(), Value::from(iat + LOGOUT_TOKEN_TTL_SECONDS));
    c.insert("jti".into(), Value::from(random_token()));
    c.insert("sub".into(), Value::from(notice.sub.clone()));
    c.insert("sid".into(), Value::from(notice.sid.clone()));
    c.insert("events".into(), json!({ LOGOUT_EVENT: {} }));
    c
}

impl crate::front::Front {
    /// The notices owed when `session` ends: one per SP it signed the user in at that
    /// registered a back-channel endpoint.
    pub(crate) async fn backchannel_notices(
        &self,
        session: &crate::store::Session,
    ) -> Result<Vec<Event>, FrontError> {
        let mut notices = Vec::new();
        for (client_id, sub, connection_id) in self.store.session_clients(session.sid).await? {
            let wants = match self.partners.sp(&client_id).await {
                Ok(sp) => !sp.backchannel_logout_uri.is_empty(),
                Err(FrontError::UnknownClient) => false,
                // The registry away: queued anyway, the SP is looked up on delivery.
                Err(_) => true,
            };
            if wants {
                let notice = BackchannelLogout {
                    connection_id: connection_id.to_string(),
                    client_id,
                    sub,
                    sid: session.sid.to_string(),
                };
                notices.push(Event::from_payload(events::SOURCE, &notice)?);
            }
        }
        Ok(notices)
    }
}

/// Delivers the notices of the front's queue, one at a time per worker.
pub struct Notifier {
    pub issuer: String,
    pub keys: Arc<Keys>,
    pub partners: Partners,
    pub http: reqwest::Client,
    pub outbox: Outbox,
    pub clock: Arc<dyn crate::clock::Clock>,
}

impl Notifier {
    /// An HTTP client that never follows a redirect (a token must reach only the URI the
    /// SP registered) and gives up after `timeout`.
    pub fn client(timeout: Duration) -> Result<reqwest::Client, FrontError> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent("relais-backchannel-logout")
            .build()
            .map_err(|e| FrontError::Internal(format!("back-channel HTTP client: {e}")))
    }

    fn token(
        &self,
        sp: &reg::ServiceProvider,
        notice: &BackchannelLogout,
    ) -> Result<String, FrontError> {
        let claims = logout_claims(&self.issuer, notice, self.clock.now());
        let signed = self
            .keys
            .signer(crate::domain::types::id_token_alg(sp))?
            .sign(&claims, "logout+jwt")?;
        if sp.id_token_encrypted_response_alg.is_empty() {
            return Ok(signed);
        }
        // Encrypted the way the SP's ID tokens are (§2.4).
        Ok(relais_jose::encrypt(
            signed.as_bytes(),
            Some("JWT"),
            &sp.jwks,
            &sp.id_token_encrypted_response_alg,
            &sp.id_token_encrypted_response_enc,
        )?)
    }

    fn record(
        &self,
        notice: &BackchannelLogout,
        outcome: Outcome,
        error_code: Option<&str>,
    ) -> Result<Event, FrontError> {
        events::at(
            self.clock.now(),
            &notice.connection_id,
            ConnectionStep::LogoutNotified,
            outcome,
            &Default::default(),
            |e: &mut ConnectionEvent| {
                e.sp_id = Some(notice.client_id.clone());
                e.session_id = Some(notice.sid.clone());
                e.sub_fs = Some(notice.sub.clone());
                e.error_code = error_code.map(str::to_string);
            },
        )
    }
}

#[async_trait]
impl EventHandler for Notifier {
    async fn handle(&self, tx: &Transaction<'_>, event: &Event) -> Result<(), HandlerError> {
        let notice: BackchannelLogout = event.payload()?;
        // Looked up now: an SP that removed its endpoint, or left, is not called.
        let sp = match self.partners.sp(&notice.client_id).await {
            Ok(sp) => sp,
            Err(FrontError::UnknownClient) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if sp.backchannel_logout_uri.is_empty() {
            return Ok(());
        }
        let token = self.token(&sp, &notice)?;
        let answer = self
            .http
            .post(&sp.backchannel_logout_uri)
            .header(reqwest::header::CACHE_CONTROL, "no-store")
            .form(&[("logout_token", token.as_str())])
            .send()
            .await
            .map_err(|e| format!("SP back-channel endpoint unreachable: {}", e.without_url()))?;
        if !answer.status().is_success() {
            return Err(format!("SP back-channel endpoint answered {}", answer.status()).into());
        }
        relais_bus::enqueue(tx, &self.record(&notice, Outcome::Success, None)?).await?;
        Ok(())
    }

    /// It calls out: a failed batch retried event by event would call twice.
    fn batches(&self) -> bool {
        false
    }

    fn committed(&self) {
        self.outbox.wake();
    }

    async fn abandoned(
        &self,
        tx: &Transaction<'_>,
        event: &Event,
        attempts: u32,
        error: &str,
    ) -> Result<(), HandlerError> {
        let notice: BackchannelLogout = event.payload()?;
        tracing::warn!(
            client_id = %notice.client_id,
            attempts,
            error,
            "back-channel logout given up: the SP was not told"
        );
        relais_bus::enqueue(tx, &self.record(&notice, Outcome::Failure, Some(GIVEN_UP))?).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logout_token_names_the_subject_and_session_and_carries_no_nonce() {
        let notice = BackchannelLogout {
            connection_id: "c".into(),
            client_id: "sp".into(),
            sub: "sub-fs".into(),
            sid: "sid-1".into(),
        };
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let c = logout_claims("https://hub", &notice, now);
        assert_eq!(c["iss"], "https://hub");
        assert_eq!(c["aud"], "sp");
        assert_eq!(c["sub"], "sub-fs");
        assert_eq!(c["sid"], "sid-1");
        assert_eq!(
            c["exp"].as_i64(),
            Some(1_000_000 + LOGOUT_TOKEN_TTL_SECONDS)
        );
        assert_eq!(c["events"][LOGOUT_EVENT], json!({}));
        // §2.4: a nonce is forbidden, so a logout token cannot pass for an ID token.
        assert!(!c.contains_key("nonce"));
        let other = logout_claims("https://hub", &notice, now);
        assert_ne!(c["jti"], other["jti"], "each token has its own jti");
    }
}

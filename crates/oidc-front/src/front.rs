//! The front's state and what its flows, token endpoints and logout share.

use std::sync::Arc;

use relais_bus::events::PartnerStatus;
use relais_bus::events::{ConnectionStep, Outcome};
use relais_jose::Sealer;
use relais_proto::idp_bridge::v1::idp_bridge_client::IdpBridgeClient;
use relais_proto::oidc_front::v1 as pb;
use relais_proto::registry::v1 as reg;
use relais_runtime::GrpcChannel as Channel;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::config::OidcFrontConfig;
use crate::domain::acr::AcrLadder;
use crate::domain::authorize::Params;
use crate::domain::flow::Flow;
use crate::error::FrontError;
use crate::events;
use crate::keys::Keys;
use crate::partners::{Partners, error_code, unavailable};
use crate::store::{Grant, Session, Store};

pub struct Front {
    pub config: OidcFrontConfig,
    pub store: Store,
    pub partners: Partners,
    pub bridge: IdpBridgeClient<Channel>,
    pub keys: Arc<Keys>,
    /// Where the keys come from: reloads and rotations.
    pub signing: Arc<crate::signing::SigningKeys>,
    pub ladder: AcrLadder,
    pub discovery_json: String,
    /// Seals the browsers' flow cookies.
    pub sealer: Sealer,
    /// Authorization requests refused before their client is known, per address.
    pub refusals: crate::domain::refusals::Refusals,
    /// Every instant the front reads (the store's SQL included).
    pub clock: Arc<dyn crate::clock::Clock>,
    pub metrics: FrontMetrics,
}

/// What operators count of sign-ins, at `/metrics`.
pub struct FrontMetrics {
    /// Codes issued, by path: `idp` (the IdP answered) or `sso` (from the hub session).
    sign_ins: relais_telemetry::metrics::Counters,
    /// Sign-ins that ended in a failure, by the hub's error code.
    failures: relais_telemetry::metrics::Counters,
    /// Brute-force blocks begun, by what is blocked.
    blocks: relais_telemetry::metrics::Counters,
}

impl FrontMetrics {
    pub fn new() -> Self {
        use relais_telemetry::metrics::counters;
        FrontMetrics {
            sign_ins: counters(
                "sign_ins",
                "Sign-ins that issued a code to the SP, by path (idp: the IdP answered; sso: from the hub session)",
            ),
            failures: counters(
                "sign_in_failures",
                "Sign-ins that ended in a failure, by the hub's error code (docs/errors.md)",
            ),
            blocks: counters(
                "back_channel_blocks",
                "Brute-force blocks begun on the back channel, by what is blocked (client: its own failures after authentication; client_address: a client id named from one address; address: an address, whose verified clients are still served)",
            ),
        }
    }

    pub fn signed_in(&self, path: &str) {
        self.sign_ins
            .get_or_create(&vec![("path".into(), path.into())])
            .inc();
    }

    pub fn blocked(&self, kind: &str) {
        self.blocks
            .get_or_create(&vec![("kind".into(), kind.into())])
            .inc();
    }

    pub fn failed(&self, code: &str) {
        self.failures
            .get_or_create(&vec![("code".into(), code.into())])
            .inc();
    }
}

impl Default for FrontMetrics {
    fn default() -> Self {
        Self::new()
    }
}

pub fn params_of(list: Vec<pb::Param>) -> Params {
    Params::new(list.into_iter().map(|p| (p.name, p.value)).collect())
}

pub fn cookie(value: String, max_age: u32) -> Option<pb::CookieUpdate> {
    Some(pb::CookieUpdate {
        value,
        remove: false,
        max_age_seconds: i64::from(max_age),
    })
}

pub fn remove_cookie() -> Option<pb::CookieUpdate> {
    Some(pb::CookieUpdate {
        value: String::new(),
        remove: true,
        max_age_seconds: 0,
    })
}

pub fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// The grant of `code` for `flow`'s request, to the person and authentication of
/// `session`, under connection `connection_id`.
pub fn grant_of(
    flow: &Flow,
    session: &Session,
    connection_id: uuid::Uuid,
    code: &str,
    sub_fs: String,
    claims: Value,
    expires_at: OffsetDateTime,
) -> Grant {
    Grant {
        code_hash: crate::domain::secrets::sha256(code),
        connection_id,
        sid: session.sid,
        client_id: flow.client_id.clone(),
        redirect_uri: flow.redirect_uri.clone(),
        nonce: flow.nonce.clone(),
        scopes: flow.scopes.clone(),
        code_challenge: flow.code_challenge.clone(),
        acr: session.acr.clone(),
        amr: session.amr.clone(),
        auth_time: session.auth_time,
        account_id: session.account_id,
        idp_id: session.idp_id.clone(),
        sub_fi: session.sub_fi.clone(),
        sub_fs,
        claims,
        used: false,
        expires_at,
    }
}

/// The stable code the bridge put on a failure, as a front error.
pub fn bridge_error(status: &tonic::Status) -> FrontError {
    match error_code(status) {
        Some(code) => FrontError::Idp {
            code,
            message: status.message().to_string(),
        },
        None => unavailable("identity provider bridge", status),
    }
}

impl Front {
    pub fn visible_idps<'a>(
        &self,
        sp: &reg::ServiceProvider,
        idps: &'a [reg::IdentityProvider],
    ) -> Vec<&'a reg::IdentityProvider> {
        idps.iter()
            .filter(|i| PartnerStatus::Active.is(i.status))
            .filter(|i| sp.idp_ids.contains(&i.id))
            .collect()
    }

    pub async fn active_sp(
        &self,
        client_id: &str,
    ) -> Result<Arc<reg::ServiceProvider>, FrontError> {
        let sp = self.partners.sp(client_id).await?;
        if !PartnerStatus::Active.is(sp.status) {
            return Err(FrontError::ClientSuspended);
        }
        Ok(sp)
    }

    /// A sign-in that failed: its record, with the steps it took, in one durable write.
    /// Best effort: the refusal is shown either way.
    pub async fn record_failed_flow(&self, flow: &Flow, err: &FrontError, source: &pb::Source) {
        self.metrics.failed(&err.code());
        let result = async {
            let record = events::sign_in_record(
                flow,
                self.clock.now(),
                ConnectionStep::Failed,
                Outcome::Failure,
                source,
                |e| e.error_code = Some(err.code()),
            )?;
            self.store.record_events(&[record]).await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "could not record a failed sign-in");
        }
    }

    /// A failure of a later request of a connection (token endpoint); best effort.
    pub async fn record_failure(
        &self,
        connection_id: &str,
        err: &FrontError,
        source: &pb::Source,
        sp_id: &str,
    ) {
        let result = async {
            let failed = events::at(
                self.clock.now(),
                connection_id,
                ConnectionStep::Failed,
                Outcome::Failure,
                source,
                |e| {
                    e.error_code = Some(err.code());
                    e.sp_id = Some(sp_id.to_string());
                },
            )?;
            self.store.record_events(&[failed]).await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "could not record a failed step");
        }
    }

    /// The claims of an ID token this hub issued (signature and issuer checked).
    pub fn verify_hint(&self, token: &str) -> Result<Map<String, Value>, FrontError> {
        let claims = self
            .keys
            .verify(token)
            .map_err(|_| FrontError::InvalidIdTokenHint)?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
            return Err(FrontError::InvalidIdTokenHint);
        }
        Ok(claims)
    }
}

//! The bridge's gRPC face. It writes nothing: a round trip is sealed and handed to the
//! caller, and the steps it takes are recorded by oidc-front with the connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use relais_jose::Sealer;
use relais_proto::idp_bridge::v1 as pb;
use relais_proto::idp_bridge::v1::idp_bridge_server::IdpBridge;
use relais_proto::registry::v1::registry_client::RegistryClient;
use relais_proto::registry::v1::{self as reg, PartnerStatus};
use relais_runtime::GrpcChannel as Channel;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tokio::sync::RwLock;
use tonic::{Request, Response, Status};

use crate::config::IdpBridgeConfig;
use crate::error::BridgeError;
use crate::idp::Idps;

/// Associated data of a sealed round trip: no other sealed box opens as one.
const ROUND_TRIP: &str = "idp_round_trip";

pub struct Bridge {
    pub config: IdpBridgeConfig,
    pub registry: RegistryClient<Channel>,
    pub idps: Idps,
    pub sealer: Sealer,
    /// IdP records as the registry last gave them, for `registry_cache_ms`.
    pub records: IdpRecords,
}

/// Registry records of IdPs, each kept a short while: a sign-in needs its IdP's record
/// at the start and at the callback, and asking the registry each time cost a call and a
/// query per step.
#[derive(Default)]
pub struct IdpRecords(RwLock<HashMap<String, (Instant, Arc<reg::IdentityProvider>)>>);

/// One trip of a browser to an IdP and back, sealed into the caller's flow. The PKCE
/// verifier and nonce are secrets toward the IdP, so the box is the bridge's alone.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RoundTrip {
    #[prost(string, tag = "1")]
    pub flow_id: String,
    #[prost(string, tag = "2")]
    pub idp_id: String,
    #[prost(string, tag = "3")]
    pub sp_id: String,
    /// SHA-256 of the state sent to the IdP: the callback must bring it back.
    #[prost(bytes = "vec", tag = "4")]
    pub state_hash: Vec<u8>,
    #[prost(string, tag = "5")]
    pub nonce: String,
    #[prost(string, tag = "6")]
    pub pkce_verifier: String,
    #[prost(string, repeated, tag = "7")]
    pub acr_values: Vec<String>,
    #[prost(string, repeated, tag = "8")]
    pub required_claims: Vec<String>,
}

fn sha256(v: &str) -> Vec<u8> {
    Sha256::digest(v.as_bytes()).to_vec()
}

impl Bridge {
    async fn idp(&self, id: &str) -> Result<Arc<reg::IdentityProvider>, BridgeError> {
        let ttl = Duration::from_millis(self.config.registry_cache_ms);
        let cached = self.records.0.read().await.get(id).cloned();
        let idp = match cached {
            Some((at, idp)) if at.elapsed() < ttl => idp,
            _ => {
                let idp = Arc::new(self.fetch_idp(id).await?);
                let mut records = self.records.0.write().await;
                // Records of IdPs no longer asked for do not pile up.
                records.retain(|_, (at, _)| at.elapsed() < ttl);
                if !ttl.is_zero() {
                    records.insert(id.to_string(), (Instant::now(), Arc::clone(&idp)));
                }
                idp
            }
        };
        if idp.status != PartnerStatus::Active as i32 {
            return Err(BridgeError::IdpDisabled);
        }
        Ok(idp)
    }

    async fn fetch_idp(&self, id: &str) -> Result<reg::IdentityProvider, BridgeError> {
        let idp = self
            .registry
            .clone()
            .get_identity_provider(reg::GetIdentityProviderRequest { id: id.to_string() })
            .await
            .map_err(|s| match s.code() {
                tonic::Code::NotFound => BridgeError::UnknownIdp,
                _ => BridgeError::Unavailable(format!("registry: {}", s.message())),
            })?
            .into_inner();
        Ok(idp)
    }

    async fn start(
        &self,
        req: pb::StartLoginRequest,
    ) -> Result<pb::StartLoginResponse, BridgeError> {
        if req.flow_id.is_empty() {
            return Err(BridgeError::Invalid("flow_id is empty".into()));
        }
        let idp = self.idp(&req.idp_id).await?;
        let auth = self
            .idps
            .authorization(
                &idp,
                &self.config.callback_url,
                &req.scopes,
                &req.acr_values,
                &req.login_hint,
                &req.sp_id,
                &req.sp_name,
                crate::idp::Freshness {
                    force_login: req.force_login,
                    max_age: req.max_age,
                },
            )
            .await?;
        let trip = RoundTrip {
            flow_id: req.flow_id,
            idp_id: idp.id.clone(),
            sp_id: req.sp_id,
            state_hash: sha256(&auth.state),
            nonce: auth.nonce,
            pkce_verifier: auth.pkce_verifier,
            acr_values: req.acr_values,
            required_claims: req.required_claims,
        };
        let expires = OffsetDateTime::now_utc().unix_timestamp()
            + i64::from(self.config.round_trip_ttl_seconds);
        let round_trip = self
            .sealer
            .seal(ROUND_TRIP, &trip.encode_to_vec(), expires)
            .map_err(|e| BridgeError::Invalid(format!("sealing the round trip: {e}")))?;
        Ok(pb::StartLoginResponse {
            authorization_url: auth.url,
            round_trip,
        })
    }

    /// The round trip of this flow whose state the callback brought back: forged,
    /// expired, another flow's or another state's, it is refused alike.
    fn round_trip(&self, req: &pb::FinishLoginRequest) -> Result<RoundTrip, BridgeError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let plain = self
            .sealer
            .open(ROUND_TRIP, &req.round_trip, now)
            .map_err(|e| {
                tracing::info!(reason = %e, "round trip refused");
                BridgeError::StateMismatch
            })?;
        let trip = RoundTrip::decode(plain.as_slice()).map_err(|_| BridgeError::StateMismatch)?;
        let same_state = bool::from(trip.state_hash.ct_eq(&sha256(&req.state)));
        if req.flow_id.is_empty() || trip.flow_id != req.flow_id || !same_state {
            return Err(BridgeError::StateMismatch);
        }
        Ok(trip)
    }

    async fn finish(
        &self,
        req: &pb::FinishLoginRequest,
        trip: &RoundTrip,
    ) -> Result<pb::FinishLoginResponse, BridgeError> {
        let idp = self.idp(&trip.idp_id).await?;
        // RFC 9207: an `iss` naming another IdP means a mix-up attack; an IdP that
        // promises `iss` and omits it is refused too.
        let (issuer, sends_iss) = self.idps.issuer(&idp).await?;
        if (!req.iss.is_empty() && req.iss != issuer) || (req.iss.is_empty() && sends_iss) {
            return Err(BridgeError::IssuerMismatch);
        }
        if !req.error.is_empty() {
            let mut text = req.error.clone();
            if !req.error_description.is_empty() {
                text.push_str(": ");
                text.push_str(&req.error_description);
            }
            let text: String = text.chars().take(300).collect();
            return Err(if req.error == "access_denied" {
                BridgeError::Denied(text)
            } else {
                BridgeError::IdpError(text)
            });
        }
        if req.code.is_empty() {
            return Err(BridgeError::IdpError("no code in the callback".into()));
        }
        let identity = self
            .idps
            .identity(
                &idp,
                &self.config.callback_url,
                &req.code,
                &trip.nonce,
                &trip.pkce_verifier,
                &trip.acr_values,
                &trip.required_claims,
            )
            .await?;
        Ok(pb::FinishLoginResponse {
            idp_id: idp.id.clone(),
            sub: identity.sub,
            acr: identity.acr,
            amr: identity.amr,
            claims_json: serde_json::Value::Object(identity.claims).to_string(),
            id_token: identity.id_token,
            auth_time: identity.auth_time,
        })
    }
}

#[tonic::async_trait]
impl IdpBridge for Bridge {
    async fn start_login(
        &self,
        request: Request<pb::StartLoginRequest>,
    ) -> Result<Response<pb::StartLoginResponse>, Status> {
        let req = request.into_inner();
        let idp_id = req.idp_id.clone();
        match self.start(req).await {
            Ok(answer) => Ok(Response::new(answer)),
            Err(e) => {
                tracing::warn!(idp = %idp_id, code = e.code(), error = %e, "IdP round trip not started");
                Err(e.into())
            }
        }
    }

    async fn finish_login(
        &self,
        request: Request<pb::FinishLoginRequest>,
    ) -> Result<Response<pb::FinishLoginResponse>, Status> {
        let req = request.into_inner();
        // The state must be the one this browser's flow sent (login CSRF, mix of flows).
        let trip = self.round_trip(&req)?;
        match self.finish(&req, &trip).await {
            Ok(r) => Ok(Response::new(r)),
            Err(e) => {
                tracing::warn!(idp = %trip.idp_id, code = e.code(), error = %e, "IdP sign-in refused");
                // The front records the failure with this code; the IdP is named there.
                Err(e.into())
            }
        }
    }

    async fn logout_url(
        &self,
        request: Request<pb::LogoutUrlRequest>,
    ) -> Result<Response<pb::LogoutUrlResponse>, Status> {
        let req = request.into_inner();
        let idp = self.idp(&req.idp_id).await?;
        let url = self
            .idps
            .logout_url(
                &idp,
                &req.id_token_hint,
                &req.state,
                &self.config.logout_callback_url,
            )
            .await?
            .unwrap_or_default();
        Ok(Response::new(pb::LogoutUrlResponse { url }))
    }
}

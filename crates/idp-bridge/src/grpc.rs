//! The bridge's gRPC face.

use relais_bus::Event;
use relais_bus::events::{ConnectionEvent, ConnectionStep, Outcome};
use relais_proto::idp_bridge::v1 as pb;
use relais_proto::idp_bridge::v1::idp_bridge_server::IdpBridge;
use relais_proto::registry::v1::registry_client::RegistryClient;
use relais_proto::registry::v1::{self as reg, PartnerStatus};
use relais_runtime::GrpcChannel as Channel;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use tonic::{Request, Response, Status};

use crate::config::IdpBridgeConfig;
use crate::error::BridgeError;
use crate::idp::Idps;
use crate::store::{RoundTrip, Store};

pub const SOURCE: &str = "idp-bridge";

pub struct Bridge {
    pub config: IdpBridgeConfig,
    pub store: Store,
    pub registry: RegistryClient<Channel>,
    pub idps: Idps,
}

fn sha256(v: &str) -> Vec<u8> {
    Sha256::digest(v.as_bytes()).to_vec()
}

struct Src<'a> {
    ip: &'a str,
    port: u32,
    request_id: &'a str,
}

fn event(
    flow_id: &str,
    step: ConnectionStep,
    outcome: Outcome,
    src: &Src<'_>,
    fill: impl FnOnce(&mut ConnectionEvent),
) -> Result<Event, BridgeError> {
    let mut e = ConnectionEvent::new(flow_id, step, outcome);
    e.source_ip = Some(src.ip.to_string()).filter(|s| !s.is_empty());
    e.source_port = u16::try_from(src.port).ok().filter(|p| *p != 0);
    e.request_id = Some(src.request_id.to_string()).filter(|s| !s.is_empty());
    fill(&mut e);
    Ok(Event::from_payload(SOURCE, &e)?)
}

impl Bridge {
    async fn idp(&self, id: &str) -> Result<reg::IdentityProvider, BridgeError> {
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
        if idp.status != PartnerStatus::Active as i32 {
            return Err(BridgeError::IdpDisabled);
        }
        Ok(idp)
    }

    async fn start(&self, req: pb::StartLoginRequest) -> Result<String, BridgeError> {
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
            )
            .await?;
        let trip = RoundTrip {
            flow_id: req.flow_id.clone(),
            idp_id: idp.id.clone(),
            sp_id: req.sp_id.clone(),
            nonce: auth.nonce,
            pkce_verifier: auth.pkce_verifier,
            acr_values: req.acr_values.clone(),
            required_claims: req.required_claims.clone(),
        };
        let src = Src {
            ip: &req.source_ip,
            port: req.source_port,
            request_id: &req.request_id,
        };
        let redirected = event(
            &req.flow_id,
            ConnectionStep::IdpRedirected,
            Outcome::Success,
            &src,
            |e| {
                e.sp_id = Some(req.sp_id.clone());
                e.idp_id = Some(idp.id.clone());
            },
        )?;
        let expires = OffsetDateTime::now_utc()
            + Duration::seconds(i64::from(self.config.round_trip_ttl_seconds));
        self.store
            .insert(&sha256(&auth.state), &trip, expires, &[redirected])
            .await?;
        Ok(auth.url)
    }

    async fn finish(
        &self,
        req: &pb::FinishLoginRequest,
        src: &Src<'_>,
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
            return Err(BridgeError::IdpError(text.chars().take(300).collect()));
        }
        if req.code.is_empty() {
            return Err(BridgeError::IdpError("no code in the callback".into()));
        }
        let callback = event(
            &trip.flow_id,
            ConnectionStep::IdpCallback,
            Outcome::Success,
            src,
            |e| {
                e.sp_id = Some(trip.sp_id.clone());
                e.idp_id = Some(idp.id.clone());
            },
        )?;
        self.store.record(&[callback]).await?;
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
        let verified = event(
            &trip.flow_id,
            ConnectionStep::IdentityVerified,
            Outcome::Success,
            src,
            |e| {
                e.sp_id = Some(trip.sp_id.clone());
                e.idp_id = Some(idp.id.clone());
                e.acr = Some(identity.acr.clone());
                e.sub_fi = Some(identity.sub.clone());
            },
        )?;
        self.store.record(&[verified]).await?;
        Ok(pb::FinishLoginResponse {
            idp_id: idp.id,
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
            Ok(authorization_url) => {
                Ok(Response::new(pb::StartLoginResponse { authorization_url }))
            }
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
        let src = Src {
            ip: &req.source_ip,
            port: req.source_port,
            request_id: &req.request_id,
        };
        // The state must be one this browser's flow sent (login CSRF, replay).
        let trip = match self.store.take(&sha256(&req.state), &req.flow_id).await {
            Ok(Some(t)) => t,
            Ok(None) => return Err(BridgeError::StateMismatch.into()),
            Err(e) => return Err(e.into()),
        };
        match self.finish(&req, &src, &trip).await {
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

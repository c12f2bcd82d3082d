//! The registry's gRPC face.

use std::sync::Arc;

use relais_bus::events::{PartnerKind, PartnerStatus};
use relais_jose::envelope::Keks;
use relais_proto::registry::v1 as pb;
use relais_proto::registry::v1::registry_server::Registry;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use crate::RegistryError;
use crate::domain::SecretHasher;
use crate::secrets;
use crate::store::{Store, StoredIdp};

pub struct RegistryService {
    store: Store,
    keks: Arc<Keks>,
    hasher: SecretHasher,
    secret_lifetime_days: u32,
}

impl RegistryService {
    pub fn new(
        store: Store,
        keks: Arc<Keks>,
        hasher: SecretHasher,
        secret_lifetime_days: u32,
    ) -> Self {
        RegistryService {
            store,
            keks,
            hasher,
            secret_lifetime_days,
        }
    }

    /// The IdP as its caller may see it: its client secret opened only when `shown`; one
    /// that does not open fails the call (the bridge would otherwise present a wrong one).
    fn answer(
        &self,
        stored: StoredIdp,
        shown: bool,
    ) -> Result<pb::IdentityProvider, RegistryError> {
        let mut idp = stored.idp;
        if shown {
            let sealed = stored.sealed_secret.unwrap_or_default();
            idp.client_secret = secrets::open(&self.keks, &idp.id, &sealed)?;
        }
        Ok(idp)
    }
}

/// A client secret: 32 bytes from the OS CSPRNG (256 bits), base64url.
fn new_secret() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn status_from_proto(v: i32) -> Result<PartnerStatus, RegistryError> {
    PartnerStatus::from_proto(v)
        .ok_or_else(|| RegistryError::Invalid("status must be active or suspended".into()))
}

#[tonic::async_trait]
impl Registry for RegistryService {
    async fn get_service_provider(
        &self,
        request: Request<pb::GetServiceProviderRequest>,
    ) -> Result<Response<pb::ServiceProvider>, Status> {
        let stored = self
            .store
            .service_provider(&request.into_inner().client_id)
            .await?;
        Ok(Response::new(stored.sp))
    }

    async fn authenticate_client(
        &self,
        request: Request<pb::AuthenticateClientRequest>,
    ) -> Result<Response<pb::AuthenticatedClient>, Status> {
        let req = request.into_inner();
        let stored = match self.store.service_provider(&req.client_id).await {
            Ok(s) => s,
            // An unknown client and a bad secret look the same to the caller.
            Err(RegistryError::UnknownClient) => return Err(RegistryError::BadCredentials.into()),
            Err(e) => return Err(e.into()),
        };
        let now = OffsetDateTime::now_utc();
        let current = self.hasher.matches(&req.client_secret, &stored.secret_hash);
        // The secret being rotated out works until the end of the overlap, not after.
        let previous = !current
            && stored
                .previous_secret_hash
                .as_deref()
                .is_some_and(|h| self.hasher.matches(&req.client_secret, h));
        if !current && !previous {
            return Err(RegistryError::BadCredentials.into());
        }
        if stored.sp.token_endpoint_auth_method != req.method {
            return Err(
                RegistryError::WrongAuthMethod(stored.sp.token_endpoint_auth_method).into(),
            );
        }
        let expires = if current {
            Some(stored.secret_expires_at)
        } else {
            stored.previous_secret_expires_at
        };
        let expires = match expires {
            Some(e) if e > now => e,
            _ => return Err(RegistryError::SecretExpired.into()),
        };
        if !PartnerStatus::Active.is(stored.sp.status) {
            return Err(RegistryError::Suspended.into());
        }
        Ok(Response::new(pb::AuthenticatedClient {
            service_provider: Some(stored.sp),
            secret_expires_at: expires.unix_timestamp(),
        }))
    }

    async fn get_identity_provider(
        &self,
        request: Request<pb::GetIdentityProviderRequest>,
    ) -> Result<Response<pb::IdentityProvider>, Status> {
        let shown = secrets_shown(&request);
        let stored = self
            .store
            .identity_provider(&request.into_inner().id)
            .await?;
        Ok(Response::new(self.answer(stored, shown)?))
    }

    async fn find_person(
        &self,
        request: Request<pb::FindPersonRequest>,
    ) -> Result<Response<pb::Person>, Status> {
        let person = self.store.person(&request.into_inner().email).await?;
        Ok(Response::new(person))
    }

    async fn bind_person(
        &self,
        request: Request<pb::BindPersonRequest>,
    ) -> Result<Response<pb::Person>, Status> {
        let req = request.into_inner();
        let person = self
            .store
            .bind_person(&req.email, &req.idp_id, &req.idp_sub)
            .await?;
        Ok(Response::new(person))
    }

    async fn list_contacts(
        &self,
        request: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        let req = request.into_inner();
        let contacts = self
            .store
            .contacts(&req.partner_kind, &req.partner_id)
            .await?;
        Ok(Response::new(pb::ListContactsResponse { contacts }))
    }

    async fn list_identity_providers(
        &self,
        request: Request<pb::ListIdentityProvidersRequest>,
    ) -> Result<Response<pb::ListIdentityProvidersResponse>, Status> {
        let shown = secrets_shown(&request);
        let identity_providers = self
            .store
            .identity_providers()
            .await?
            .into_iter()
            .map(|stored| self.answer(stored, shown))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListIdentityProvidersResponse {
            identity_providers,
        }))
    }

    async fn set_service_provider_status(
        &self,
        request: Request<pb::SetStatusRequest>,
    ) -> Result<Response<pb::ServiceProvider>, Status> {
        let req = request.into_inner();
        let status = status_from_proto(req.status)?;
        self.store
            .set_status(PartnerKind::Sp, &req.id, status, &req.reason)
            .await?;
        let stored = self.store.service_provider(&req.id).await?;
        tracing::info!(client_id = %req.id, status = status.as_str(), "service provider status changed");
        Ok(Response::new(stored.sp))
    }

    async fn rotate_client_secret(
        &self,
        request: Request<pb::RotateClientSecretRequest>,
    ) -> Result<Response<pb::RotateClientSecretResponse>, Status> {
        let req = request.into_inner();
        let secret = new_secret();
        let now = OffsetDateTime::now_utc();
        let expires_at = now + time::Duration::days(i64::from(self.secret_lifetime_days));
        let previous_until = now + time::Duration::seconds(i64::from(req.overlap_seconds));
        self.store
            .rotate_secret(
                &req.client_id,
                &self.hasher.hash(&secret),
                expires_at,
                previous_until,
            )
            .await?;
        tracing::info!(client_id = %req.client_id, overlap = req.overlap_seconds, "client secret rotated");
        let rfc3339 = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let stored = self.store.service_provider(&req.client_id).await?;
        Ok(Response::new(pb::RotateClientSecretResponse {
            client_secret: secret,
            expires_at: rfc3339(expires_at),
            previous_expires_at: stored
                .previous_secret_expires_at
                .map(rfc3339)
                .unwrap_or_default(),
        }))
    }

    async fn set_identity_provider_status(
        &self,
        request: Request<pb::SetStatusRequest>,
    ) -> Result<Response<pb::IdentityProvider>, Status> {
        let req = request.into_inner();
        let status = status_from_proto(req.status)?;
        self.store
            .set_status(PartnerKind::Idp, &req.id, status, &req.reason)
            .await?;
        tracing::info!(idp = %req.id, status = status.as_str(), "identity provider status changed");
        // The operator sees the IdP without its secret.
        Ok(Response::new(
            self.store.identity_provider(&req.id).await?.idp,
        ))
    }
}

/// An IdP's client secret goes only to the bridge, the one service that authenticates to
/// IdPs (and to anyone on a development plaintext link, where nobody is identified).
fn secrets_shown<T>(request: &Request<T>) -> bool {
    match relais_runtime::peer::caller(request) {
        Some(relais_runtime::Caller::Verified(peer)) => {
            peer.role == relais_runtime::Role::IdpBridge
        }
        Some(relais_runtime::Caller::Unverified) => true,
        None => false,
    }
}

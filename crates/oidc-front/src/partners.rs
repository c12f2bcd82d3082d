//! Partner records from the registry, cached; the bus tells when to forget them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relais_bus::events::{PartnerEvent, PartnerKind};
use relais_bus::{Event, EventHandler, HandlerError};
use relais_proto::registry::v1 as pb;
use relais_proto::registry::v1::registry_client::RegistryClient;
use relais_runtime::GrpcChannel as Channel;
use tokio::sync::RwLock;

use crate::error::FrontError;

/// The stable code another service put on a failure, if any.
pub fn error_code(status: &tonic::Status) -> Option<String> {
    relais_runtime::error_code(status).map(str::to_string)
}

pub fn unavailable(what: &str, status: &tonic::Status) -> FrontError {
    FrontError::Unavailable(format!("{what}: {}", status.message()))
}

type Cached<T> = (Instant, T);
type IdpList = Arc<Vec<pb::IdentityProvider>>;

/// Most secrets remembered per client: its current one, the one being rotated out, and
/// room for a rotation in flight.
const SECRETS_PER_CLIENT: usize = 3;

/// A right secret the registry accepted: remembered so that each token request does not
/// cost a registry call, until the cache's ttl, the secret's own expiry, or a change of
/// the client heard on the bus (suspension, rotation), whichever comes first.
struct KnownSecret {
    digest: [u8; 32],
    method: String,
    at: Instant,
    expires_at: i64,
    sp: Arc<pb::ServiceProvider>,
}

fn secret_digest(secret: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes()).into()
}

#[derive(Clone)]
pub struct Partners {
    client: RegistryClient<Channel>,
    ttl: Duration,
    /// Bumped by every change heard on the bus: an answer fetched before a change must
    /// not be cached after it (it may predate the change).
    generation: Arc<std::sync::atomic::AtomicU64>,
    sps: Arc<RwLock<HashMap<String, Cached<Arc<pb::ServiceProvider>>>>>,
    idps: Arc<RwLock<Option<Cached<IdpList>>>>,
    secrets: Arc<RwLock<HashMap<String, Vec<KnownSecret>>>>,
}

impl Partners {
    pub fn new(client: RegistryClient<Channel>, ttl: Duration) -> Self {
        Partners {
            client,
            ttl,
            generation: Arc::default(),
            sps: Arc::default(),
            idps: Arc::default(),
            secrets: Arc::default(),
        }
    }

    /// A service provider, whatever its status.
    pub async fn sp(&self, client_id: &str) -> Result<Arc<pb::ServiceProvider>, FrontError> {
        if let Some((at, sp)) = self.sps.read().await.get(client_id)
            && at.elapsed() < self.ttl
        {
            return Ok(Arc::clone(sp));
        }
        let generation = self.generation();
        let answer = self
            .client
            .clone()
            .get_service_provider(pb::GetServiceProviderRequest {
                client_id: client_id.to_string(),
            })
            .await;
        match answer {
            Ok(r) => {
                let sp = Arc::new(r.into_inner());
                let mut cache = self.sps.write().await;
                if self.generation() == generation {
                    cache.insert(client_id.to_string(), (Instant::now(), Arc::clone(&sp)));
                }
                Ok(sp)
            }
            Err(s) if s.code() == tonic::Code::NotFound => Err(FrontError::UnknownClient),
            Err(s) => Err(unavailable("registry", &s)),
        }
    }

    pub async fn idps(&self) -> Result<IdpList, FrontError> {
        if let Some((at, list)) = self.idps.read().await.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(Arc::clone(list));
        }
        let generation = self.generation();
        let list = self
            .client
            .clone()
            .list_identity_providers(pb::ListIdentityProvidersRequest {})
            .await
            .map_err(|s| unavailable("registry", &s))?
            .into_inner()
            .identity_providers;
        let list = Arc::new(list);
        let mut cache = self.idps.write().await;
        if self.generation() == generation {
            *cache = Some((Instant::now(), Arc::clone(&list)));
        }
        Ok(list)
    }

    /// Checks a client's credentials: a secret the registry accepted a moment ago is
    /// accepted again without asking it; anything else goes to the registry.
    pub async fn authenticate(
        &self,
        client_id: &str,
        secret: &str,
        method: &str,
    ) -> Result<Arc<pb::ServiceProvider>, FrontError> {
        let digest = secret_digest(secret);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Some(known) = self.secrets.read().await.get(client_id)
            && let Some(hit) = known.iter().find(|k| {
                bool::from(subtle::ConstantTimeEq::ct_eq(&k.digest[..], &digest[..]))
                    && k.method == method
                    && k.at.elapsed() < self.ttl
                    && now < k.expires_at
            })
        {
            return Ok(Arc::clone(&hit.sp));
        }
        let generation = self.generation();
        let answer = self
            .client
            .clone()
            .authenticate_client(pb::AuthenticateClientRequest {
                client_id: client_id.to_string(),
                client_secret: secret.to_string(),
                method: method.to_string(),
            })
            .await;
        let answer = match answer {
            Ok(r) => r.into_inner(),
            Err(s) => {
                return Err(match error_code(&s).as_deref() {
                    Some("client_suspended") => FrontError::ClientSuspended,
                    Some("client_secret_expired") => FrontError::ClientSecretExpired,
                    Some("client_auth_method_mismatch") => {
                        // The registry's message ends with the registered method.
                        let method = s.message().rsplit(' ').next().unwrap_or_default();
                        FrontError::ClientAuthMethodMismatch(method.to_string())
                    }
                    Some(_) => FrontError::ClientAuthFailed,
                    None => unavailable("registry", &s),
                });
            }
        };
        let sp = Arc::new(
            answer
                .service_provider
                .ok_or_else(|| FrontError::Unavailable("registry: empty answer".into()))?,
        );
        let mut cache = self.secrets.write().await;
        if self.generation() == generation {
            let known = cache.entry(client_id.to_string()).or_default();
            known.retain(|k| k.digest != digest || k.method != method);
            if known.len() >= SECRETS_PER_CLIENT {
                known.remove(0);
            }
            known.push(KnownSecret {
                digest,
                method: method.to_string(),
                at: Instant::now(),
                expires_at: answer.secret_expires_at,
                sp: Arc::clone(&sp),
            });
        }
        Ok(sp)
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub async fn forget_sp(&self, client_id: &str) {
        let mut cache = self.sps.write().await;
        let mut secrets = self.secrets.write().await;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        cache.remove(client_id);
        secrets.remove(client_id);
    }

    /// Forgets every partner: after missing changes, nothing cached can be trusted.
    pub async fn forget_all(&self) {
        let mut sps = self.sps.write().await;
        let mut secrets = self.secrets.write().await;
        let mut idps = self.idps.write().await;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        sps.clear();
        secrets.clear();
        *idps = None;
    }

    pub async fn forget_idps(&self) {
        let mut cache = self.idps.write().await;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        *cache = None;
    }
}

/// Drops cached records when the registry announces a change.
pub struct PartnerChanges(pub Partners);

#[relais_bus::async_trait]
impl EventHandler for PartnerChanges {
    async fn handle(
        &self,
        _tx: &deadpool_postgres::Transaction<'_>,
        event: &Event,
    ) -> Result<(), HandlerError> {
        if let Ok(change) = event.payload::<PartnerEvent>() {
            match change.partner {
                PartnerKind::Sp => self.0.forget_sp(&change.partner_id).await,
                PartnerKind::Idp => self.0.forget_idps().await,
            }
        }
        Ok(())
    }

    /// Changes published while this front's queue was away were not kept for it.
    async fn connected(&self) {
        self.0.forget_all().await;
    }
}

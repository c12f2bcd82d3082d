//! Who looks through the gateway's REST investigation API: a person the registry holds
//! with the role `investigator`, signed in through Relais to the investigation client
//! (scope `email`) at one of the configured acr levels, as the IdP identity they are
//! enrolled with (bound at first use when the registry names only the IdP). The same
//! admission as support's staff: the gateway passes the token through, trace checks it,
//! so a gateway cannot look on behalf of anyone without that person's live token.

use relais_proto::oidc_front::v1::oidc_front_client::OidcFrontClient;
use relais_proto::oidc_front::v1::{VerifiedAccessToken, VerifyAccessTokenRequest};
use relais_proto::registry::v1::registry_client::RegistryClient;
use relais_proto::registry::v1::{BindPersonRequest, FindPersonRequest, Person};
use std::sync::{Arc, Mutex};

use relais_bus::people::Admission;
use relais_runtime::{ACR_VALUES_KEY, GrpcChannel, LocalServices, Role, status_with_code};
use tonic::{Code, Status};

pub const ROLE: &str = "investigator";
pub const INVALID_TOKEN: &str = "invalid_token";
pub const INSUFFICIENT_AUTHENTICATION: &str = "insufficient_user_authentication";
pub const FORBIDDEN: &str = "forbidden";
pub const IDENTITY_MISMATCH: &str = "identity_mismatch";

pub(crate) type Clients = (RegistryClient<GrpcChannel>, OidcFrontClient<GrpcChannel>);

#[derive(Clone)]
pub struct Directory {
    local: LocalServices,
    registry_url: String,
    front_url: String,
    /// Made at the first lookup: trace starts before oidc-front, which may then run in
    /// this process and be reached there.
    clients: Arc<Mutex<Option<Clients>>>,
    client_id: String,
    acr_values: Vec<String>,
}

pub(crate) fn unavailable(what: &str, status: &Status) -> Status {
    tracing::warn!(
        service = what,
        message = status.message(),
        "investigator check failed"
    );
    status_with_code(
        Code::Unavailable,
        format!("{what} is unavailable"),
        "service_unavailable",
    )
}

fn forbidden(code: &'static str, message: String) -> Status {
    status_with_code(Code::PermissionDenied, message, code)
}

impl Directory {
    pub fn new(
        local: LocalServices,
        registry_url: String,
        front_url: String,
        client_id: String,
        acr_values: Vec<String>,
    ) -> Self {
        Directory {
            local,
            registry_url,
            front_url,
            clients: Arc::new(Mutex::new(None)),
            client_id,
            acr_values,
        }
    }

    pub(crate) fn clients(&self) -> Result<Clients, Status> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = clients.as_ref() {
            return Ok(c.clone());
        }
        let link = |to: Role, url: &str| {
            self.local
                .channel(to, url)
                .map_err(|e| unavailable(to.name(), &Status::internal(e.to_string())))
        };
        let made = (
            RegistryClient::new(link(Role::Registry, &self.registry_url)?),
            OidcFrontClient::new(link(Role::OidcFront, &self.front_url)?),
        );
        *clients = Some(made.clone());
        Ok(made)
    }

    /// The investigator's e-mail address behind `token`, or the refusal.
    pub async fn bearer(&self, token: &str) -> Result<String, Status> {
        let (registry, front) = self.clients()?;
        let request = VerifyAccessTokenRequest {
            token: token.to_owned(),
            client_id: self.client_id.clone(),
        };
        let verified = match front.clone().verify_access_token(request).await {
            Ok(v) => v.into_inner(),
            Err(status) if status.code() == Code::Unauthenticated => {
                return Err(status_with_code(
                    Code::Unauthenticated,
                    "the access token is invalid, expired, revoked or not the investigation \
                     client's"
                        .into(),
                    INVALID_TOKEN,
                ));
            }
            Err(status) => return Err(unavailable("oidc-front", &status)),
        };
        let claims: serde_json::Value = serde_json::from_str(&verified.claims_json)
            .map_err(|_| unavailable("oidc-front", &Status::internal("claims do not read")))?;
        let Some(email) = claims.get("email").and_then(|e| e.as_str()) else {
            return Err(forbidden(
                FORBIDDEN,
                "the access token carries no e-mail address (scope email)".into(),
            ));
        };
        let person = person(&registry, email)
            .await?
            .ok_or_else(|| forbidden(FORBIDDEN, format!("{email} is not an investigator")))?;
        let person = match admission(&person, &verified, &self.acr_values)? {
            Admission::Bound => person,
            Admission::FirstUse => {
                let request = BindPersonRequest {
                    email: person.email.clone(),
                    idp_id: verified.idp_id.clone(),
                    idp_sub: verified.sub_fi.clone(),
                };
                let bound = registry
                    .clone()
                    .bind_person(request)
                    .await
                    .map_err(|s| unavailable("registry", &s))?
                    .into_inner();
                // Another first use may have come in between: it must be this one.
                match admission(&bound, &verified, &self.acr_values)? {
                    Admission::Bound => bound,
                    Admission::FirstUse => {
                        return Err(unavailable(
                            "registry",
                            &Status::internal("the person was not bound"),
                        ));
                    }
                }
            }
        };
        Ok(person.email)
    }
}

async fn person(
    registry: &RegistryClient<GrpcChannel>,
    email: &str,
) -> Result<Option<Person>, Status> {
    let request = FindPersonRequest {
        email: email.to_owned(),
    };
    match registry.clone().find_person(request).await {
        Ok(person) => Ok(Some(person.into_inner())),
        Err(status) if status.code() == Code::NotFound => Ok(None),
        Err(status) => Err(unavailable("registry", &status)),
    }
}

/// The role, then the sign-in's level, then the enrolled IdP and subject. Refusals never
/// say which subject is enrolled.
fn admission(
    person: &Person,
    token: &VerifiedAccessToken,
    acr_values: &[String],
) -> Result<Admission, Status> {
    let mismatch = |why: &str| forbidden(IDENTITY_MISMATCH, format!("{}: {why}", person.email));
    if person.role != ROLE {
        return Err(forbidden(
            FORBIDDEN,
            format!("{} is not an investigator", person.email),
        ));
    }
    if !acr_values.contains(&token.acr) {
        let mut status = status_with_code(
            Code::Unauthenticated,
            format!(
                "an investigator signs in at {}; sign in again",
                acr_values.join(" or ")
            ),
            INSUFFICIENT_AUTHENTICATION,
        );
        if let Ok(levels) = tonic::metadata::MetadataValue::try_from(acr_values.join(" ")) {
            status.metadata_mut().insert(ACR_VALUES_KEY, levels);
        }
        return Err(status);
    }
    relais_bus::people::enrolled_identity(person, token).map_err(mismatch)
}

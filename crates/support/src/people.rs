//! Who is calling: the registry knows partners' contacts and support staff by e-mail
//! address; oidc-front knows whether an access token is live and whose it is. Support
//! keeps no copy of either, so a contact removed from the registry loses access at once.

use relais_proto::oidc_front::v1::VerifyAccessTokenRequest;
use relais_proto::oidc_front::v1::oidc_front_client::OidcFrontClient;
use relais_proto::registry::v1::registry_client::RegistryClient;
use relais_proto::registry::v1::{FindPersonRequest, ListContactsRequest, Person};
use relais_runtime::GrpcChannel;
use tonic::Code;

use crate::SupportError;
use crate::domain::{Actor, PartnerKind, PartnerRef, StaffRole};

#[derive(Clone)]
pub struct Directory {
    registry: RegistryClient<GrpcChannel>,
    front: OidcFrontClient<GrpcChannel>,
    /// Only tokens issued to this client open the support API.
    console_client_id: String,
}

fn unavailable(what: &str, status: &tonic::Status) -> SupportError {
    SupportError::Upstream(format!("{what}: {}", status.message()))
}

impl Directory {
    pub fn new(
        registry: RegistryClient<GrpcChannel>,
        front: OidcFrontClient<GrpcChannel>,
        console_client_id: String,
    ) -> Self {
        Directory {
            registry,
            front,
            console_client_id,
        }
    }

    /// The actor an address stands for; `None` for anybody the registry does not know.
    pub async fn person(&self, email: &str) -> Result<Option<Actor>, SupportError> {
        let request = FindPersonRequest {
            email: email.to_owned(),
        };
        match self.registry.clone().find_person(request).await {
            Ok(person) => actor(person.into_inner()).map(Some),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(unavailable("registry", &status)),
        }
    }

    /// The addresses of a partner's authorised contacts.
    pub async fn contacts(&self, partner: &PartnerRef) -> Result<Vec<String>, SupportError> {
        let request = ListContactsRequest {
            partner_kind: partner.kind.as_str().to_owned(),
            partner_id: partner.id.clone(),
        };
        let listed = self
            .registry
            .clone()
            .list_contacts(request)
            .await
            .map_err(|status| unavailable("registry", &status))?;
        Ok(listed
            .into_inner()
            .contacts
            .into_iter()
            .map(|p| p.email)
            .collect())
    }

    /// The actor behind an access token of the support console: the token must be live
    /// and the console's, carry the `email` claim (scope `email`), and that address
    /// must be a contact or staff member in the registry.
    pub async fn bearer(&self, token: &str) -> Result<Actor, SupportError> {
        if token.is_empty() {
            return Err(SupportError::Unauthenticated("no access token".into()));
        }
        let request = VerifyAccessTokenRequest {
            token: token.to_owned(),
            client_id: self.console_client_id.clone(),
        };
        let verified = match self.front.clone().verify_access_token(request).await {
            Ok(v) => v.into_inner(),
            Err(status) if status.code() == Code::Unauthenticated => {
                return Err(SupportError::Unauthenticated(
                    "the access token is invalid, expired, revoked or not the support console's"
                        .into(),
                ));
            }
            Err(status) => return Err(unavailable("oidc-front", &status)),
        };
        let claims: serde_json::Value = serde_json::from_str(&verified.claims_json)
            .map_err(|e| SupportError::Upstream(format!("token claims do not read: {e}")))?;
        let Some(email) = claims.get("email").and_then(|e| e.as_str()) else {
            return Err(SupportError::Forbidden(
                "the access token carries no e-mail address (scope email)".into(),
            ));
        };
        self.person(email).await?.ok_or_else(|| {
            SupportError::Forbidden(format!(
                "{email} is neither a partner's contact nor support staff"
            ))
        })
    }
}

fn actor(person: Person) -> Result<Actor, SupportError> {
    let bad = |what: &str| SupportError::Upstream(format!("registry person {what}"));
    if person.role == "contact" {
        let kind = PartnerKind::parse(&person.partner_kind).ok_or_else(|| bad("has no partner"))?;
        let partner = PartnerRef::new(kind, person.partner_id).map_err(|_| bad("partner"))?;
        return Ok(Actor::Contact {
            partner,
            name: person.email,
        });
    }
    let role = StaffRole::parse(&person.role).map_err(|_| bad("role"))?;
    Ok(Actor::Staff {
        role,
        name: person.email,
    })
}

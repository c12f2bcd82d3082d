//! Who is calling: the registry knows partners' contacts and support staff by e-mail
//! address and by the IdP identity they are enrolled with; oidc-front knows whether an
//! access token is live and whose sign-in it came from. Support keeps no copy of either,
//! so a contact removed from the registry loses access at once.

use relais_bus::people::Admission;
use relais_proto::oidc_front::v1::oidc_front_client::OidcFrontClient;
use relais_proto::oidc_front::v1::{VerifiedAccessToken, VerifyAccessTokenRequest};
use relais_proto::registry::v1::registry_client::RegistryClient;
use relais_proto::registry::v1::{
    BindPersonRequest, FindPersonRequest, ListContactsRequest, Person,
};
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
    /// The levels a staff member's sign-in must have.
    staff_acr_values: Vec<String>,
}

fn unavailable(what: &str, status: &tonic::Status) -> SupportError {
    SupportError::Upstream(format!("{what}: {}", status.message()))
}

impl Directory {
    pub fn new(
        registry: RegistryClient<GrpcChannel>,
        front: OidcFrontClient<GrpcChannel>,
        console_client_id: String,
        staff_acr_values: Vec<String>,
    ) -> Self {
        Directory {
            registry,
            front,
            console_client_id,
            staff_acr_values,
        }
    }

    /// The actor an address stands for; `None` for anybody the registry does not know.
    pub async fn person(&self, email: &str) -> Result<Option<Actor>, SupportError> {
        self.registry_person(email).await?.map(actor).transpose()
    }

    async fn registry_person(&self, email: &str) -> Result<Option<Person>, SupportError> {
        let request = FindPersonRequest {
            email: email.to_owned(),
        };
        match self.registry.clone().find_person(request).await {
            Ok(person) => Ok(Some(person.into_inner())),
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
    /// and the console's, carry the `email` claim (scope `email`), that address must be
    /// a contact or staff member in the registry, and the sign-in must be the IdP
    /// identity the person is enrolled with (bound at their first use if the registry
    /// names only the IdP); staff need a sign-in at one of `staff_acr_values`.
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
        let person = self.registry_person(email).await?.ok_or_else(|| {
            SupportError::Forbidden(format!(
                "{email} is neither a partner's contact nor support staff"
            ))
        })?;
        let person = match admission(&person, &verified, &self.staff_acr_values)? {
            Admission::Bound => person,
            Admission::FirstUse => {
                let request = BindPersonRequest {
                    email: person.email.clone(),
                    idp_id: verified.idp_id.clone(),
                    idp_sub: verified.sub_fi.clone(),
                };
                let bound = self
                    .registry
                    .clone()
                    .bind_person(request)
                    .await
                    .map_err(|status| unavailable("registry", &status))?
                    .into_inner();
                // Another first use may have come in between: it must be this one.
                match admission(&bound, &verified, &self.staff_acr_values)? {
                    Admission::Bound => bound,
                    Admission::FirstUse => {
                        return Err(SupportError::Upstream(
                            "the registry did not bind the person".into(),
                        ));
                    }
                }
            }
        };
        actor(person)
    }
}

/// Checks a sign-in against the person it claims by e-mail: staff's acr level, then the
/// enrolled IdP and subject. Refusals never say which subject is enrolled.
fn admission(
    person: &Person,
    token: &VerifiedAccessToken,
    staff_acr_values: &[String],
) -> Result<Admission, SupportError> {
    let mismatch = |why: &str| SupportError::IdentityMismatch(format!("{}: {why}", person.email));
    if person.role != "contact" && !staff_acr_values.contains(&token.acr) {
        return Err(SupportError::InsufficientAuthentication(
            staff_acr_values.to_vec(),
        ));
    }
    relais_bus::people::enrolled_identity(person, token).map_err(mismatch)
}

fn actor(person: Person) -> Result<Actor, SupportError> {
    let bad = |what: &str| SupportError::Upstream(format!("registry person {what}"));
    if person.role == "investigator" {
        // Investigators look up connections in the proof store, not tickets.
        return Err(SupportError::Forbidden(format!(
            "{} is an investigator, not support staff",
            person.email
        )));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn staff() -> Vec<String> {
        vec!["eidas2".into(), "eidas3".into()]
    }

    fn person(role: &str, idp: &str, sub: &str) -> Person {
        Person {
            email: "p@example.org".into(),
            name: "P".into(),
            role: role.into(),
            partner_kind: if role == "contact" { "sp" } else { "" }.into(),
            partner_id: if role == "contact" { "sp-a" } else { "" }.into(),
            idp_id: idp.into(),
            idp_sub: sub.into(),
        }
    }

    fn token(idp: &str, sub_fi: &str, acr: &str) -> VerifiedAccessToken {
        VerifiedAccessToken {
            sub: "fs".into(),
            acr: acr.into(),
            idp_id: idp.into(),
            claims_json: "{}".into(),
            sub_fi: sub_fi.into(),
            account_id: String::new(),
        }
    }

    fn code(r: Result<Admission, SupportError>) -> &'static str {
        match r {
            Ok(Admission::Bound) => "bound",
            Ok(Admission::FirstUse) => "first_use",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn only_the_enrolled_identity_is_admitted() {
        let bound = person("contact", "idp-a", "sub-1");
        for (t, expected) in [
            (token("idp-a", "sub-1", "eidas1"), "bound"),
            // The same e-mail claim from another IdP, or another person at the same IdP.
            (token("idp-b", "sub-1", "eidas1"), "identity_mismatch"),
            (token("idp-a", "sub-2", "eidas1"), "identity_mismatch"),
            (token("idp-a", "", "eidas1"), "identity_mismatch"),
        ] {
            assert_eq!(code(admission(&bound, &t, &staff())), expected, "{t:?}");
        }
    }

    #[test]
    fn a_first_use_binds_only_through_the_enrolled_idp() {
        let enrolled = person("contact", "idp-a", "");
        let t = token("idp-a", "sub-1", "eidas1");
        assert_eq!(code(admission(&enrolled, &t, &staff())), "first_use");
        let other = token("idp-b", "sub-1", "eidas1");
        assert_eq!(
            code(admission(&enrolled, &other, &staff())),
            "identity_mismatch"
        );
        // Not enrolled with an IdP: nobody is admitted on an e-mail claim alone.
        let bare = person("contact", "", "");
        assert_eq!(code(admission(&bare, &t, &staff())), "identity_mismatch");
    }

    #[test]
    fn staff_need_a_sign_in_at_a_staff_level() {
        let member = person("level1", "idp-a", "sub-1");
        let low = admission(&member, &token("idp-a", "sub-1", "eidas1"), &staff());
        assert!(
            matches!(&low, Err(SupportError::InsufficientAuthentication(l)) if *l == staff()),
            "{low:?}"
        );
        for acr in ["eidas2", "eidas3"] {
            let t = token("idp-a", "sub-1", acr);
            assert_eq!(code(admission(&member, &t, &staff())), "bound");
        }
        // A contact at eidas1 is fine.
        let contact = person("contact", "idp-a", "sub-1");
        let t = token("idp-a", "sub-1", "eidas1");
        assert_eq!(code(admission(&contact, &t, &staff())), "bound");
    }
}

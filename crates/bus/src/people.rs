//! People the registry enrolls (support's staff and contacts, investigators) are admitted
//! as the IdP identity they were enrolled with, never on an e-mail claim alone: the one
//! rule every service that admits them applies.

use relais_proto::oidc_front::v1::VerifiedAccessToken;
use relais_proto::registry::v1::Person;

/// How the sign-in behind a token stands to a person's enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The sign-in is the person's enrolled identity.
    Bound,
    /// The person's enrolled IdP signed them in; their subject is not recorded yet (the
    /// caller binds it through the registry).
    FirstUse,
}

/// Whether `token`'s sign-in is `person`'s enrolled identity; if not, why, in words that
/// never say which subject is enrolled.
pub fn enrolled_identity(
    person: &Person,
    token: &VerifiedAccessToken,
) -> Result<Admission, &'static str> {
    if person.idp_id.is_empty() {
        return Err("enrolled with no identity provider");
    }
    if token.idp_id != person.idp_id {
        return Err("signs in through another identity provider");
    }
    if token.sub_fi.is_empty() {
        return Err("the sign-in behind this token is gone; sign in again");
    }
    if person.idp_sub.is_empty() {
        return Ok(Admission::FirstUse);
    }
    if person.idp_sub != token.sub_fi {
        return Err("enrolled with another identity at its provider");
    }
    Ok(Admission::Bound)
}

//! The token of the logout confirmation page: what `/end_session` validated, sealed for
//! this purpose only, bound to the browser's session and short-lived, so the form it
//! rides on ends that session and no other (logout CSRF, RP-Initiated Logout 1.0 §2).

use relais_jose::Sealer;

use crate::error::FrontError;

/// Associated data: a flow cookie or any other sealed box does not open as one.
pub const PURPOSE: &str = "relais_logout_confirm";

/// Long enough to read the page, short enough that a copied token is soon worthless.
pub const TTL_SECONDS: i64 = 300;

/// A logout the person is asked to confirm.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Confirmation {
    /// The hub session it ends; another browser's session does not match.
    #[prost(string, tag = "1")]
    pub sid: String,
    #[prost(string, optional, tag = "2")]
    pub client_id: Option<String>,
    /// Already checked against the client's registered URIs.
    #[prost(string, optional, tag = "3")]
    pub post_logout_redirect_uri: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub state: Option<String>,
    #[prost(string, tag = "5")]
    pub locale: String,
}

impl Confirmation {
    pub fn seal(&self, sealer: &Sealer, now: i64) -> Result<String, FrontError> {
        sealer
            .seal(
                PURPOSE,
                &prost::Message::encode_to_vec(self),
                now + TTL_SECONDS,
            )
            .map_err(|e| FrontError::Internal(format!("sealing a logout confirmation: {e}")))
    }

    /// Forged, of another purpose, expired or empty: refused alike.
    pub fn open(sealer: &Sealer, token: &str, now: i64) -> Result<Confirmation, FrontError> {
        if token.is_empty() {
            return Err(FrontError::LogoutConfirmationInvalid);
        }
        let plain = sealer.open(PURPOSE, token, now).map_err(|e| {
            tracing::info!(reason = %e, "logout confirmation refused");
            FrontError::LogoutConfirmationInvalid
        })?;
        <Confirmation as prost::Message>::decode(plain.as_slice())
            .map_err(|_| FrontError::LogoutConfirmationInvalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&["a logout confirmation key of enough length"]).unwrap()
    }

    fn confirmation() -> Confirmation {
        Confirmation {
            sid: "s1".into(),
            client_id: Some("sp".into()),
            post_logout_redirect_uri: Some("https://sp.example/out".into()),
            state: Some("st".into()),
            locale: "en".into(),
        }
    }

    #[test]
    fn opens_what_it_sealed_until_it_expires() {
        let s = sealer();
        let token = confirmation().seal(&s, 1_000).unwrap();
        assert_eq!(
            Confirmation::open(&s, &token, 1_000).unwrap(),
            confirmation()
        );
        assert!(matches!(
            Confirmation::open(&s, &token, 1_000 + TTL_SECONDS),
            Err(FrontError::LogoutConfirmationInvalid)
        ));
    }

    #[test]
    fn refuses_another_purpose_another_key_and_garbage() {
        let s = sealer();
        let flow_box = s.seal(crate::domain::flow::PURPOSE, b"", 2_000).unwrap();
        let other = Sealer::new(&["another key of enough length, not this hub's"]).unwrap();
        let foreign = confirmation().seal(&other, 1_000).unwrap();
        for bad in [flow_box.as_str(), foreign.as_str(), "", "not-a-box"] {
            assert!(
                matches!(
                    Confirmation::open(&s, bad, 1_000),
                    Err(FrontError::LogoutConfirmationInvalid)
                ),
                "{bad}"
            );
        }
    }
}

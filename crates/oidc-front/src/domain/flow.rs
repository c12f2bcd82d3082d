//! A sign-in in progress, from `/authorize` to the IdP's answer. It is never stored: it
//! travels sealed (encrypted and authenticated, with its expiry) in the browser's flow
//! cookie, so any replica serves any step and nothing is written until the IdP answers.
//! The steps taken so far ride along and become the connection's proof at the one
//! durable write.

use relais_bus::events::ConnectionStep;
use relais_jose::Sealer;

use crate::domain::types::Locale;
use crate::error::FrontError;

/// Associated data of the flow cookie: a box sealed for anything else does not open here.
pub const PURPOSE: &str = "relais_flow";

/// Browsers keep 4,096 bytes per cookie, name and attributes included.
pub const MAX_COOKIE_LEN: usize = 3_800;

/// Room kept at the chooser for what the IdP round trip adds (the bridge's sealed box
/// and two steps), so a flow that fits at `/authorize` still fits at the IdP.
const ROUND_TRIP_ROOM: usize = 900;

/// Where the browser is in the flow (sealed in the cookie as its number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
pub enum FlowStatus {
    /// The chooser is shown.
    Choosing = 0,
    /// Sent to the IdP; its answer is awaited.
    AtIdp = 1,
}

/// One step already taken, with where the browser spoke from.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Step {
    /// [`ConnectionStep::as_str`].
    #[prost(string, tag = "1")]
    pub step: String,
    /// Unix milliseconds.
    #[prost(int64, tag = "2")]
    pub at_ms: i64,
    #[prost(string, tag = "3")]
    pub ip: String,
    #[prost(uint32, tag = "4")]
    pub port: u32,
    #[prost(string, tag = "5")]
    pub request_id: String,
}

/// What the front must remember between `/authorize` and the IdP's callback.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Flow {
    #[prost(string, tag = "1")]
    pub connection_id: String,
    #[prost(string, tag = "2")]
    pub client_id: String,
    #[prost(string, tag = "3")]
    pub redirect_uri: String,
    #[prost(string, tag = "4")]
    pub state: String,
    #[prost(string, tag = "5")]
    pub nonce: String,
    #[prost(string, repeated, tag = "6")]
    pub scopes: Vec<String>,
    #[prost(string, tag = "7")]
    pub acr_min: String,
    #[prost(string, optional, tag = "8")]
    pub login_hint: Option<String>,
    #[prost(string, optional, tag = "9")]
    pub code_challenge: Option<String>,
    #[prost(string, tag = "10")]
    pub locale: String,
    /// The chooser form's anti-CSRF token.
    #[prost(string, tag = "11")]
    pub csrf: String,
    #[prost(string, optional, tag = "12")]
    pub idp_id: Option<String>,
    #[prost(enumeration = "FlowStatus", tag = "13")]
    pub stage: i32,
    /// The bridge's own sealed round trip (state, nonce, PKCE verifier toward the IdP),
    /// opaque here.
    #[prost(string, tag = "14")]
    pub round_trip: String,
    #[prost(message, repeated, tag = "15")]
    pub steps: Vec<Step>,
    /// Unix seconds; also sealed into the box's header.
    #[prost(int64, tag = "16")]
    pub expires_at: i64,
    /// `prompt=login`: the IdP must authenticate the user again.
    #[prost(bool, tag = "17")]
    pub force_login: bool,
    /// The SP's `max_age`, in seconds.
    #[prost(int64, optional, tag = "18")]
    pub max_age: Option<i64>,
    /// For the way back to it on an error page.
    #[prost(string, tag = "19")]
    pub sp_name: String,
    /// The IdP where this browser's hub session is of a lower level than asked: sent
    /// there, the user must authenticate again (step-up).
    #[prost(string, optional, tag = "20")]
    pub lower_at_idp: Option<String>,
}

impl Flow {
    pub fn at(&self, status: FlowStatus) -> bool {
        self.stage == status as i32
    }

    /// The page language chosen at `/authorize`.
    pub fn locale(&self) -> Locale {
        Locale::parse(&self.locale)
    }

    /// After a failed attempt, the same request tried again from the chooser: a new
    /// connection that started with the same authorization request.
    pub fn retried(&self, connection_id: String, csrf: String) -> Flow {
        Flow {
            connection_id,
            csrf,
            idp_id: None,
            stage: FlowStatus::Choosing as i32,
            round_trip: String::new(),
            steps: self.steps.first().cloned().into_iter().collect(),
            ..self.clone()
        }
    }

    pub fn push(
        &mut self,
        step: ConnectionStep,
        at_ms: i64,
        ip: &str,
        port: u32,
        request_id: &str,
    ) {
        self.steps.push(Step {
            step: step.as_str().to_string(),
            at_ms,
            ip: ip.to_string(),
            port,
            request_id: request_id.to_string(),
        });
    }

    /// The cookie value; too long for a browser to keep is refused rather than lost.
    pub fn seal(&self, sealer: &Sealer) -> Result<String, FrontError> {
        let sealed = sealer
            .seal(
                PURPOSE,
                &prost::Message::encode_to_vec(self),
                self.expires_at,
            )
            .map_err(|e| FrontError::Internal(format!("sealing the flow: {e}")))?;
        let room = if self.at(FlowStatus::Choosing) {
            ROUND_TRIP_ROOM
        } else {
            0
        };
        if sealed.len() + room > MAX_COOKIE_LEN {
            return Err(FrontError::FlowTooLarge);
        }
        Ok(sealed)
    }

    /// The flow of a cookie: forged, sealed for another purpose or by an unknown key,
    /// expired, or absent, it is an expired sign-in to the browser.
    pub fn open(sealer: &Sealer, cookie: &str, now: i64) -> Result<Flow, FrontError> {
        if cookie.is_empty() {
            return Err(FrontError::FlowExpired);
        }
        let plain = sealer.open(PURPOSE, cookie, now).map_err(|e| {
            tracing::info!(reason = %e, "flow cookie refused");
            FrontError::FlowExpired
        })?;
        <Flow as prost::Message>::decode(plain.as_slice()).map_err(|_| FrontError::FlowExpired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(key: &str) -> Sealer {
        Sealer::new(&[key]).unwrap()
    }

    fn flow() -> Flow {
        Flow {
            connection_id: "c".into(),
            client_id: "sp".into(),
            redirect_uri: "https://sp.example/cb".into(),
            state: "s".repeat(43),
            nonce: "n".repeat(43),
            scopes: vec!["openid".into()],
            acr_min: "eidas1".into(),
            locale: "fr".into(),
            csrf: "x".into(),
            expires_at: 1_000,
            ..Default::default()
        }
    }

    #[test]
    fn a_flow_round_trips_through_its_cookie_and_nothing_else_opens_it() {
        let s = sealer("flow-key-of-at-least-thirty-two-chars");
        let mut f = flow();
        f.push(
            ConnectionStep::AuthorizeInitiated,
            5,
            "192.0.2.1",
            4242,
            "r",
        );
        let cookie = f.seal(&s).unwrap();
        assert_eq!(Flow::open(&s, &cookie, 999).unwrap(), f);
        assert!(matches!(
            Flow::open(&s, &cookie, 1_000),
            Err(FrontError::FlowExpired)
        ));
        let other = sealer("another-key-of-at-least-thirty-two-chars");
        assert!(matches!(
            Flow::open(&other, &cookie, 0),
            Err(FrontError::FlowExpired)
        ));
        // A box of another purpose (the bridge's round trip) is no flow.
        let foreign = s.seal("idp_round_trip", b"\x0a\x01c", 1_000).unwrap();
        assert!(matches!(
            Flow::open(&s, &foreign, 0),
            Err(FrontError::FlowExpired)
        ));
        assert!(matches!(
            Flow::open(&s, "", 0),
            Err(FrontError::FlowExpired)
        ));
    }

    #[test]
    fn a_flow_too_long_for_a_cookie_is_refused() {
        let s = sealer("flow-key-of-at-least-thirty-two-chars");
        let mut f = flow();
        f.state = "s".repeat(512);
        f.nonce = "n".repeat(512);
        f.login_hint = Some("l".repeat(256));
        f.redirect_uri = format!("https://sp.example/{}", "p".repeat(1500));
        assert!(matches!(f.seal(&s), Err(FrontError::FlowTooLarge)));
    }
}

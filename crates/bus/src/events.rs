//! The typed payloads that travel on the bus, and the routing patterns to bind them.

use serde::{Deserialize, Serialize};

use relais_proto::registry::v1 as registry_pb;
use relais_proto::support::v1 as support_pb;

use crate::event::Payload;

/// Binding pattern for every connection step.
pub const CONNECTION_EVENTS: &str = "connection.#";
/// Binding pattern for everything support publishes: ticket changes, incidents, and
/// each call of its API (`support.call`).
pub const SUPPORT_EVENTS: &str = "support.#";

/// The kind of an operator's call, recorded by the service called before it runs
/// (`relais_runtime::OperatorCall`); the proof store keeps them.
pub const OPERATOR_CALL: &str = "operator.call";
/// Binds every operator record.
pub const OPERATOR_EVENTS: &str = "operator.#";
/// Binding pattern for incidents opened and resolved by support.
pub const INCIDENT_EVENTS: &str = "support.incident.*";

/// Binding pattern for every partner change (SPs and IdPs).
pub const PARTNER_EVENTS: &str = "registry.*.updated";

/// A record of a connection, published by the service that performed its step; the trace
/// service keeps them as proof. Kind: `connection.<step>`. A sign-in is one record (its
/// `code_issued`, or its `failed`) carrying every step before it in `timeline`; later
/// requests of the connection (token, userinfo, logout) are records of their own, linked
/// by `connection_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionEvent {
    /// Ties together every step of one sign-in.
    pub connection_id: String,
    pub step: ConnectionStep,
    pub outcome: Outcome,
    /// The hub's error code when `outcome` is failure.
    pub error_code: Option<String>,
    pub source_ip: Option<String>,
    pub source_port: Option<u16>,
    pub session_id: Option<String>,
    pub sp_id: Option<String>,
    pub idp_id: Option<String>,
    pub acr: Option<String>,
    /// The subject the IdP gave ("SUB FI").
    pub sub_fi: Option<String>,
    /// The subject given to the SP ("SUB FS").
    pub sub_fs: Option<String>,
    pub account_id: Option<String>,
    pub request_id: Option<String>,
    /// The lowest acr the SP accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr_asked: Option<String>,
    /// A sign-in answered from the hub session, without the IdP (single sign-on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sso: bool,
    /// The steps taken before this one, oldest first, each with its own time and address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineStep>,
}

/// One step of a sign-in inside its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineStep {
    pub step: ConnectionStep,
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    pub source_ip: Option<String>,
    pub source_port: Option<u16>,
    pub request_id: Option<String>,
}

impl ConnectionEvent {
    /// A step with every optional detail empty; set the ones known at that step.
    pub fn new(connection_id: impl Into<String>, step: ConnectionStep, outcome: Outcome) -> Self {
        Self {
            connection_id: connection_id.into(),
            step,
            outcome,
            error_code: None,
            source_ip: None,
            source_port: None,
            session_id: None,
            sp_id: None,
            idp_id: None,
            acr: None,
            sub_fi: None,
            sub_fs: None,
            account_id: None,
            request_id: None,
            acr_asked: None,
            sso: false,
            timeline: Vec::new(),
        }
    }
}

impl Payload for ConnectionEvent {
    fn kind(&self) -> String {
        format!("connection.{}", self.step.as_str())
    }
}

/// The steps of a sign-in, in the order they usually happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStep {
    AuthorizeInitiated,
    ChooserShown,
    IdpChosen,
    IdpRedirected,
    IdpCallback,
    IdentityVerified,
    CodeIssued,
    TokenIssued,
    UserinfoServed,
    TokenRevoked,
    LogoutRequested,
    LogoutPropagated,
    SessionEnded,
    /// An SP told of the logout on its back channel (or given up after every retry).
    LogoutNotified,
    Failed,
}

impl ConnectionStep {
    pub const ALL: [Self; 15] = [
        Self::AuthorizeInitiated,
        Self::ChooserShown,
        Self::IdpChosen,
        Self::IdpRedirected,
        Self::IdpCallback,
        Self::IdentityVerified,
        Self::CodeIssued,
        Self::TokenIssued,
        Self::UserinfoServed,
        Self::TokenRevoked,
        Self::LogoutRequested,
        Self::LogoutPropagated,
        Self::SessionEnded,
        Self::LogoutNotified,
        Self::Failed,
    ];

    /// The snake_case name, as in JSON and in the routing key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizeInitiated => "authorize_initiated",
            Self::ChooserShown => "chooser_shown",
            Self::IdpChosen => "idp_chosen",
            Self::IdpRedirected => "idp_redirected",
            Self::IdpCallback => "idp_callback",
            Self::IdentityVerified => "identity_verified",
            Self::CodeIssued => "code_issued",
            Self::TokenIssued => "token_issued",
            Self::UserinfoServed => "userinfo_served",
            Self::TokenRevoked => "token_revoked",
            Self::LogoutRequested => "logout_requested",
            Self::LogoutPropagated => "logout_propagated",
            Self::SessionEnded => "session_ended",
            Self::LogoutNotified => "logout_notified",
            Self::Failed => "failed",
        }
    }
}

/// Binding pattern for the back-channel logout notices the front owes to SPs.
pub const BACKCHANNEL_LOGOUTS: &str = "logout.backchannel";

/// A logout an SP registered to hear of on its back channel (OpenID Connect Back-Channel
/// Logout 1.0), queued with the end of the session it belonged to. Kind:
/// `logout.backchannel`; only the front consumes it (the SP's address is looked up when
/// it is delivered, so a changed registration is followed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackchannelLogout {
    /// The connection that signed the user in at this SP.
    pub connection_id: String,
    pub client_id: String,
    /// The subject this SP knows the user by ("SUB FS").
    pub sub: String,
    /// The hub session, as the SP's ID tokens gave it in `sid`.
    pub sid: String,
}

impl Payload for BackchannelLogout {
    fn kind(&self) -> String {
        BACKCHANNEL_LOGOUTS.to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

/// A partner's status changed in the registry. Kind: `registry.sp.updated` or
/// `registry.idp.updated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerEvent {
    pub partner: PartnerKind,
    pub partner_id: String,
    pub status: PartnerStatus,
}

impl Payload for PartnerEvent {
    fn kind(&self) -> String {
        format!("registry.{}.updated", self.partner.as_str())
    }
}

/// Whether `id` may name a partner: 1-128 characters among A-Z a-z 0-9 - _ . (what the
/// registry enrols, so anything else names nobody).
pub fn is_partner_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A service provider or an identity provider: the one kind of partner every service
/// speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartnerKind {
    Sp,
    Idp,
}

impl PartnerKind {
    /// As stored (`partner_kind` columns) and written in `sp:<id>` / `idp:<id>` keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sp => "sp",
            Self::Idp => "idp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sp" => Some(Self::Sp),
            "idp" => Some(Self::Idp),
            _ => None,
        }
    }

    /// From support's gRPC enum; unspecified names no kind.
    pub fn from_proto(v: i32) -> Option<Self> {
        match support_pb::PartnerKind::try_from(v) {
            Ok(support_pb::PartnerKind::Sp) => Some(Self::Sp),
            Ok(support_pb::PartnerKind::Idp) => Some(Self::Idp),
            _ => None,
        }
    }

    pub fn to_proto(self) -> i32 {
        match self {
            Self::Sp => support_pb::PartnerKind::Sp as i32,
            Self::Idp => support_pb::PartnerKind::Idp as i32,
        }
    }
}

/// Where a partner stands: the one status of the registry's `status` columns, its gRPC
/// enum and the bus. Each has its own spelling, converted here only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PartnerStatus {
    /// May sign users in. On the bus `production`, as published since the first events.
    #[serde(rename = "production")]
    Active,
    /// Stopped at once (security, breach, identity theft, an incident on an IdP); may
    /// come back.
    #[serde(rename = "suspended")]
    Suspended,
}

impl PartnerStatus {
    /// As stored in the registry (`active`, `suspended`) and written in its seed file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            _ => None,
        }
    }

    /// From the registry's gRPC enum; unspecified (or a value this build does not
    /// know) is no status.
    pub fn from_proto(v: i32) -> Option<Self> {
        match registry_pb::PartnerStatus::try_from(v) {
            Ok(registry_pb::PartnerStatus::Active) => Some(Self::Active),
            Ok(registry_pb::PartnerStatus::Suspended) => Some(Self::Suspended),
            _ => None,
        }
    }

    pub fn to_proto(self) -> i32 {
        match self {
            Self::Active => registry_pb::PartnerStatus::Active as i32,
            Self::Suspended => registry_pb::PartnerStatus::Suspended as i32,
        }
    }

    /// Whether a record's gRPC status (`status` of a service or identity provider) is
    /// this one.
    pub fn is(self, proto: i32) -> bool {
        Self::from_proto(proto) == Some(self)
    }
}

/// A [`PartnerStatus`] as its stored text, for files that spell it so (the registry's
/// seed): `#[serde(with = "relais_bus::events::status_text")]`.
pub mod status_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use super::PartnerStatus;

    pub fn serialize<S: Serializer>(status: &PartnerStatus, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(status.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PartnerStatus, D::Error> {
        let text = String::deserialize(d)?;
        PartnerStatus::parse(&text).ok_or_else(|| {
            D::Error::custom(format!(
                "unknown status {text:?} (one of active, suspended)"
            ))
        })
    }
}

/// An incident scoped to one IdP started or ended: the registry disables the IdP until
/// every incident on it is resolved. Kind: `support.incident.opened` / `.resolved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentEvent {
    pub idp_id: String,
    pub ticket_id: uuid::Uuid,
    pub state: IncidentState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Opened,
    Resolved,
}

impl Payload for IncidentEvent {
    fn kind(&self) -> String {
        match self.state {
            IncidentState::Opened => "support.incident.opened".into(),
            IncidentState::Resolved => "support.incident.resolved".into(),
        }
    }
}

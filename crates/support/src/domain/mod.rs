//! The rules of support, with no I/O: business time, deadline policies, tickets and
//! their transitions, who may do what, and the resolution indicator. Every function takes
//! the current instant as an argument; nothing here reads a clock.

pub mod calendar;
pub mod indicator;
pub mod mail;
pub mod policy;
pub mod ticket;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::SupportError;

/// Severity (FranceConnect) or priority (AgentConnect), 1 the most urgent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Severity(u8);

impl Severity {
    pub const CRITICAL: Severity = Severity(1);
    pub const MAJOR: Severity = Severity(2);
    pub const MEDIUM: Severity = Severity(3);
    pub const MINOR: Severity = Severity(4);
    pub const INFO: Severity = Severity(5);
    pub const ALL: [Severity; 5] = [
        Self::CRITICAL,
        Self::MAJOR,
        Self::MEDIUM,
        Self::MINOR,
        Self::INFO,
    ];

    pub fn new(level: u8) -> Result<Self, SupportError> {
        if (1..=5).contains(&level) {
            Ok(Severity(level))
        } else {
            Err(SupportError::Invalid(format!(
                "severity must be 1 (critical) to 5 (info), not {level}"
            )))
        }
    }

    pub fn level(self) -> u8 {
        self.0
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "critical",
            2 => "major",
            3 => "medium",
            4 => "minor",
            _ => "info",
        }
    }

    /// Critical and major events are notified to the partner they affect.
    pub fn is_notified(self) -> bool {
        self <= Self::MAJOR
    }
}

impl TryFrom<u8> for Severity {
    type Error = SupportError;

    fn try_from(level: u8) -> Result<Self, SupportError> {
        Severity::new(level)
    }
}

impl From<Severity> for u8 {
    fn from(s: Severity) -> u8 {
        s.0
    }
}

/// Whom a malfunction touches (the seeds' "niveaux de priorité des incidents").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    AllPartners,
    /// One partner ("site").
    OnePartner,
    SeveralUsers,
    OneUser,
    InformationRequest,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::AllPartners,
        Scope::OnePartner,
        Scope::SeveralUsers,
        Scope::OneUser,
        Scope::InformationRequest,
    ];

    /// The severity the seeds associate with the scope, until support analyses the ticket.
    pub fn default_severity(self) -> Severity {
        match self {
            Scope::AllPartners => Severity::CRITICAL,
            Scope::OnePartner => Severity::MAJOR,
            Scope::SeveralUsers => Severity::MEDIUM,
            Scope::OneUser => Severity::MINOR,
            Scope::InformationRequest => Severity::INFO,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::AllPartners => "all_partners",
            Scope::OnePartner => "one_partner",
            Scope::SeveralUsers => "several_users",
            Scope::OneUser => "one_user",
            Scope::InformationRequest => "information_request",
        }
    }
}

/// The support chain, from first answer to management.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    Level1,
    /// Non-technical requests (enrolment…).
    Level2,
    /// Technical incidents that need a developer.
    Level3,
    ProductionManager,
    ProductOwner,
    /// AgentConnect's "responsable des relations partenaires".
    PartnerRelations,
}

impl StaffRole {
    pub const ALL: [StaffRole; 6] = [
        StaffRole::Level1,
        StaffRole::Level2,
        StaffRole::Level3,
        StaffRole::ProductionManager,
        StaffRole::ProductOwner,
        StaffRole::PartnerRelations,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::Level1 => "level1",
            StaffRole::Level2 => "level2",
            StaffRole::Level3 => "level3",
            StaffRole::ProductionManager => "production_manager",
            StaffRole::ProductOwner => "product_owner",
            StaffRole::PartnerRelations => "partner_relations",
        }
    }

    pub fn parse(s: &str) -> Result<Self, SupportError> {
        StaffRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| SupportError::Invalid(format!("unknown staff role {s:?}")))
    }
}

pub use relais_bus::events::PartnerKind;

/// A service provider or identity provider, by its registry id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartnerRef {
    pub kind: PartnerKind,
    pub id: String,
}

impl PartnerRef {
    pub fn new(kind: PartnerKind, id: impl Into<String>) -> Result<Self, SupportError> {
        let id = id.into();
        if relais_bus::events::is_partner_id(&id) {
            Ok(PartnerRef { kind, id })
        } else {
            Err(SupportError::Invalid(format!(
                "partner id {id:?}: 1-128 characters among A-Z a-z 0-9 - _ ."
            )))
        }
    }

    pub fn sp(id: impl Into<String>) -> Result<Self, SupportError> {
        Self::new(PartnerKind::Sp, id)
    }

    pub fn idp(id: impl Into<String>) -> Result<Self, SupportError> {
        Self::new(PartnerKind::Idp, id)
    }
}

impl fmt::Display for PartnerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.id)
    }
}

/// Who does something to a ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// An authorised contact declared by a partner (their e-mail address).
    Contact {
        partner: PartnerRef,
        name: String,
    },
    Staff {
        role: StaffRole,
        name: String,
    },
    /// The service itself: the scheduler's escalations and automatic closes.
    System,
}

impl Actor {
    pub fn is_staff(&self) -> bool {
        matches!(self, Actor::Staff { .. } | Actor::System)
    }

    /// Whether this actor may see tickets of `partner`: a contact only its own partner's.
    pub fn may_see(&self, partner: &PartnerRef) -> bool {
        match self {
            Actor::Contact { partner: own, .. } => own == partner,
            Actor::Staff { .. } | Actor::System => true,
        }
    }

    pub fn require_staff(&self, what: &str) -> Result<(), SupportError> {
        if self.is_staff() {
            Ok(())
        } else {
            Err(SupportError::Forbidden(format!(
                "only support staff may {what}"
            )))
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Contact { partner, name } => write!(f, "{name} ({partner})"),
            Actor::Staff { role, name } => write!(f, "{name} ({})", role.as_str()),
            Actor::System => f.write_str("system"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn severities_are_one_to_five() {
        assert!(Severity::new(0).is_err());
        assert!(Severity::new(6).is_err());
        assert_eq!(Severity::new(2).unwrap(), Severity::MAJOR);
        assert!(Severity::CRITICAL.is_notified() && Severity::MAJOR.is_notified());
        assert!(!Severity::MEDIUM.is_notified());
        let parsed: Result<Severity, _> = serde_json::from_str("7");
        assert!(parsed.is_err());
    }

    #[test]
    fn scopes_map_to_the_seeds_severities() {
        let levels: Vec<u8> = Scope::ALL
            .iter()
            .map(|s| s.default_severity().level())
            .collect();
        assert_eq!(levels, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_contact_sees_only_its_own_partner() {
        let own = PartnerRef::idp("idp-a").unwrap();
        let other = PartnerRef::idp("idp-b").unwrap();
        let same_id_other_kind = PartnerRef::sp("idp-a").unwrap();
        let contact = Actor::Contact {
            partner: own.clone(),
            name: "ops@idp-a.example".into(),
        };
        assert!(contact.may_see(&own));
        assert!(!contact.may_see(&other));
        assert!(!contact.may_see(&same_id_other_kind));
        assert!(contact.require_staff("resolve").is_err());
        let staff = Actor::Staff {
            role: StaffRole::Level1,
            name: "n1".into(),
        };
        assert!(staff.may_see(&other) && staff.require_staff("resolve").is_ok());
        assert!(PartnerRef::sp("bad id").is_err());
    }
}

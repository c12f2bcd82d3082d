use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use relais_config::Secret;
use serde::{Deserialize, Serialize};

use crate::SupportError;
use crate::domain::calendar::{BusinessCalendar, CalendarConfig};
use crate::domain::indicator::IndicatorConfig;
use crate::domain::policy::Policy;
use crate::domain::{PartnerKind, PartnerRef, Scope};

/// Settings of the support service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupportConfig {
    /// gRPC listen address (port 0: any free port).
    pub listen: String,
    pub calendar: CalendarConfig,
    /// The policy of partners not listed in `partner_policies`: `franceconnect`,
    /// `agentconnect`, or one from `policy_files`.
    pub default_policy: String,
    /// Extra deadline tables (TOML, the format of `crates/support/config/`); one with the
    /// name of a shipped table replaces it.
    pub policy_files: Vec<String>,
    /// Per-partner policy, keyed `sp:<client_id>` or `idp:<id>`.
    pub partner_policies: BTreeMap<String, String>,
    pub indicator: IndicatorConfig,
    /// How often the scheduler looks for deadlines that passed.
    pub scheduler_interval_ms: u64,
    /// The registry: partners' authorised contacts and support staff, by e-mail address.
    pub registry_url: String,
    /// oidc-front: whether an access token presented to the support API is live.
    pub oidc_front_url: String,
    /// The client the support console signs people in as (a service provider of the
    /// registry, scope `email`): only access tokens issued to it open the support API.
    pub console_client_id: String,
    /// The acr levels a staff member's sign-in must have reached (contacts: any level).
    pub staff_acr_values: Vec<String>,
    /// What the mail gateway presents to post raw messages (`SubmitMail`,
    /// `POST /api/support/v1/mail`); empty: only the Maildir intake takes mail.
    pub mail_intake_secret: Secret,
    /// The scope of a ticket opened by e-mail, until support analyses it.
    pub mail_scope: String,
    /// A Maildir folder whose new messages go through the mail intake; empty: none.
    pub mail_dir: String,
    /// How often `mail_dir` is looked at.
    pub mail_poll_interval_ms: u64,
    /// The SMTP relay that tells partners' contacts of critical and major events.
    pub smtp: SmtpConfig,
    /// Where `/metrics` is served (Prometheus text format), e.g. `127.0.0.1:9105`;
    /// port 0 picks a free port; empty: not served.
    pub metrics_listen: String,
    /// The indicator gauge covers incidents received in this many days up to now.
    pub metrics_window_days: u32,
}

/// The relay partners' notifications go through. No host: no e-mail is sent (the
/// events still are).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// The relay's host name or address; empty disables e-mail notifications.
    pub host: String,
    pub port: u16,
    /// The sender (`support@example.org` or `Relais support <support@example.org>`);
    /// contacts' replies to it come back through the mail intake.
    pub from: String,
    /// The name given in EHLO; empty: the domain of `from`.
    pub hello_name: String,
    /// Credentials, if the relay asks for them (only over STARTTLS).
    pub username: Secret,
    pub password: Secret,
    /// STARTTLS required, the relay's certificate checked against the web PKI roots; set
    /// false only for a relay on the same host or a trusted link.
    pub starttls: bool,
    /// How long one SMTP exchange may take before it counts as failed (and is retried).
    pub timeout_ms: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 25,
            from: String::new(),
            hello_name: String::new(),
            username: Secret::default(),
            password: Secret::default(),
            starttls: true,
            timeout_ms: 10_000,
        }
    }
}

impl Default for SupportConfig {
    fn default() -> Self {
        SupportConfig {
            listen: "127.0.0.1:7105".into(),
            calendar: CalendarConfig::default(),
            default_policy: "franceconnect".into(),
            policy_files: Vec::new(),
            partner_policies: BTreeMap::new(),
            indicator: IndicatorConfig::default(),
            scheduler_interval_ms: 30_000,
            registry_url: "http://127.0.0.1:7101".into(),
            oidc_front_url: "http://127.0.0.1:7102".into(),
            console_client_id: "support-console".into(),
            staff_acr_values: vec!["eidas2".into(), "eidas3".into()],
            mail_intake_secret: Secret::default(),
            mail_scope: "information_request".into(),
            mail_dir: String::new(),
            mail_poll_interval_ms: 10_000,
            smtp: SmtpConfig::default(),
            metrics_listen: String::new(),
            metrics_window_days: 30,
        }
    }
}

/// What mail from a partner's contact opens, and who may post raw mail.
#[derive(Clone, Debug)]
pub struct MailIntake {
    pub scope: Scope,
    pub secret: Secret,
}

/// The deadline policies in force and who is judged by which.
#[derive(Clone, Debug)]
pub struct Policies {
    default: String,
    by_name: BTreeMap<String, Policy>,
    by_partner: BTreeMap<PartnerRef, String>,
}

impl Policies {
    pub fn get(&self, name: &str) -> Result<&Policy, SupportError> {
        self.by_name
            .get(name)
            .ok_or_else(|| SupportError::Config(format!("no deadline policy named {name:?}")))
    }

    /// The policy a new ticket of `partner` is judged by.
    pub fn for_partner(&self, partner: &PartnerRef) -> Result<&Policy, SupportError> {
        self.get(self.by_partner.get(partner).unwrap_or(&self.default))
    }
}

fn parse_partner_key(field: &str, key: &str) -> Result<PartnerRef, SupportError> {
    let bad = || {
        SupportError::Config(format!(
            "support.{field}: {key:?} must be sp:<client_id> or idp:<id>"
        ))
    };
    let (kind, id) = key.split_once(':').ok_or_else(bad)?;
    let kind = PartnerKind::parse(kind).ok_or_else(bad)?;
    PartnerRef::new(kind, id).map_err(|_| bad())
}

impl SupportConfig {
    /// Checks everything and builds the calendar and policies; reads the policy files.
    pub fn mail_intake(&self) -> Result<MailIntake, SupportError> {
        let scope = Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == self.mail_scope)
            .ok_or_else(|| {
                SupportError::Config(format!(
                    "support.mail_scope: unknown scope {:?}",
                    self.mail_scope
                ))
            })?;
        if self.staff_acr_values.is_empty()
            || self.staff_acr_values.iter().any(|a| a.trim().is_empty())
        {
            return Err(SupportError::Config(
                "support.staff_acr_values must list at least one acr level".into(),
            ));
        }
        if self.console_client_id.trim().is_empty() {
            return Err(SupportError::Config(
                "support.console_client_id must name the support console's client".into(),
            ));
        }
        let secret = self.mail_intake_secret.expose();
        if !secret.is_empty() && secret.len() < 32 {
            return Err(SupportError::Config(
                "support.mail_intake_secret must be at least 32 characters".into(),
            ));
        }
        Ok(MailIntake {
            scope,
            secret: self.mail_intake_secret.clone(),
        })
    }

    /// The Maildir folder to poll, if any. No I/O.
    pub fn mail_dir(&self) -> Result<Option<PathBuf>, SupportError> {
        if self.mail_dir.trim().is_empty() {
            return Ok(None);
        }
        if self.mail_poll_interval_ms == 0 {
            return Err(SupportError::Config(
                "support.mail_poll_interval_ms must be at least 1".into(),
            ));
        }
        Ok(Some(PathBuf::from(self.mail_dir.trim())))
    }

    /// The address `/metrics` is served on, if any. No I/O.
    pub fn metrics_listen(&self) -> Result<Option<SocketAddr>, SupportError> {
        let listen = self.metrics_listen.trim();
        if listen.is_empty() {
            return Ok(None);
        }
        if !(1..=3660).contains(&self.metrics_window_days) {
            return Err(SupportError::Config(
                "support.metrics_window_days must be between 1 and 3660".into(),
            ));
        }
        listen.parse().map(Some).map_err(|_| {
            SupportError::Config(format!(
                "support.metrics_listen: {listen:?} is not an address:port such as 127.0.0.1:9105"
            ))
        })
    }

    pub fn load(&self) -> Result<(BusinessCalendar, Policies), SupportError> {
        let calendar = BusinessCalendar::new(&self.calendar)?;
        self.indicator.validate()?;
        if self.scheduler_interval_ms == 0 {
            return Err(SupportError::Config(
                "support.scheduler_interval_ms must be at least 1".into(),
            ));
        }
        let mut by_name = BTreeMap::new();
        for policy in [Policy::franceconnect()?, Policy::agentconnect()?] {
            by_name.insert(policy.name.clone(), policy);
        }
        for path in &self.policy_files {
            let text = std::fs::read_to_string(path)
                .map_err(|e| SupportError::Config(format!("support.policy_files: {path}: {e}")))?;
            let policy =
                Policy::parse(&text).map_err(|e| SupportError::Config(format!("{path}: {e}")))?;
            by_name.insert(policy.name.clone(), policy);
        }
        let mut by_partner = BTreeMap::new();
        for (key, name) in &self.partner_policies {
            if !by_name.contains_key(name) {
                return Err(SupportError::Config(format!(
                    "support.partner_policies.{key}: no policy named {name:?}"
                )));
            }
            by_partner.insert(parse_partner_key("partner_policies", key)?, name.clone());
        }
        if !by_name.contains_key(&self.default_policy) {
            return Err(SupportError::Config(format!(
                "support.default_policy: no policy named {:?}",
                self.default_policy
            )));
        }
        Ok((
            calendar,
            Policies {
                default: self.default_policy.clone(),
                by_name,
                by_partner,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn partners_pick_a_policy_and_the_rest_get_the_default() {
        let config: SupportConfig = relais_config::from_toml_str(
            r#"
default_policy = "agentconnect"
[partner_policies]
"idp:idp-a" = "franceconnect"
[calendar]
regions = ["alsace_moselle"]
"#,
        )
        .unwrap();
        let (calendar, policies) = config.load().unwrap();
        let idp_a = PartnerRef::idp("idp-a").unwrap();
        let sp_a = PartnerRef::sp("idp-a").unwrap();
        assert_eq!(policies.for_partner(&idp_a).unwrap().name, "franceconnect");
        assert_eq!(policies.for_partner(&sp_a).unwrap().name, "agentconnect");
        let good_friday = "2025-04-18".parse().unwrap();
        assert!(calendar.is_holiday(good_friday).unwrap());
    }

    #[test]
    fn bad_settings_name_the_field() {
        let cases = [
            ("default_policy = \"itil\"", "support.default_policy"),
            (
                "partner_policies = { \"rp:x\" = \"franceconnect\" }",
                "support.partner_policies",
            ),
            (
                "partner_policies = { \"sp:x\" = \"none\" }",
                "support.partner_policies.sp:x",
            ),
            (
                "policy_files = [\"/nonexistent/p.toml\"]",
                "support.policy_files",
            ),
            ("scheduler_interval_ms = 0", "support.scheduler_interval_ms"),
            (
                "[indicator]\ntarget_percent = 120.0",
                "indicator.target_percent",
            ),
            ("[calendar]\nopens_at = \"25:00\"", "calendar.opens_at"),
            ("mail_scope = \"everything\"", "support.mail_scope"),
            ("console_client_id = \" \"", "support.console_client_id"),
            (
                "mail_intake_secret = \"short\"",
                "support.mail_intake_secret",
            ),
            (
                "mail_dir = \"/var/mail/support\"\nmail_poll_interval_ms = 0",
                "support.mail_poll_interval_ms",
            ),
            ("metrics_listen = \"localhost\"", "support.metrics_listen"),
            (
                "metrics_listen = \"127.0.0.1:0\"\nmetrics_window_days = 0",
                "support.metrics_window_days",
            ),
        ];
        for (toml, field) in cases {
            let config: SupportConfig = relais_config::from_toml_str(toml).unwrap();
            let err = config
                .load()
                .and_then(|_| config.mail_intake())
                .and_then(|_| config.mail_dir())
                .and_then(|_| config.metrics_listen())
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
        assert!(relais_config::from_toml_str::<SupportConfig>("colour = 1").is_err());
    }
}

//! Deadline policies: a table of severities with their escalation and total processing
//! times, the delays of the closing rules, and the acknowledgement and blocking-anomaly
//! deadlines. Policies are TOML files; the two of the seeds ship in `config/`.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::calendar::BusinessCalendar;
use super::{Severity, StaffRole};
use crate::SupportError;

/// The FranceConnect table, as shipped.
pub const FRANCECONNECT: &str = include_str!("../../config/franceconnect.toml");
/// The AgentConnect table, as shipped.
pub const AGENTCONNECT: &str = include_str!("../../config/agentconnect.toml");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineUnit {
    BusinessHours,
    BusinessDays,
}

/// An amount of business time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusinessSpan {
    Minutes(i64),
    Days(u32),
}

impl BusinessSpan {
    /// The instant this span of business time after `at`.
    pub fn after(
        self,
        calendar: &BusinessCalendar,
        at: Timestamp,
    ) -> Result<Timestamp, SupportError> {
        match self {
            BusinessSpan::Minutes(m) => {
                calendar.add_business_time(at, SignedDuration::from_mins(m))
            }
            BusinessSpan::Days(d) => calendar.add_business_days(at, d),
        }
    }

    fn parse(unit: DeadlineUnit, value: f64, field: &str) -> Result<Self, SupportError> {
        let bad = |why: &str| SupportError::Config(format!("{field}: {why}"));
        if !value.is_finite() || value <= 0.0 {
            return Err(bad("must be a positive number"));
        }
        match unit {
            DeadlineUnit::BusinessHours => {
                let minutes = value * 60.0;
                if minutes.fract() != 0.0 || minutes > 1e9 {
                    return Err(bad("must be a whole number of minutes"));
                }
                // Exact: whole and bounded, checked above.
                Ok(BusinessSpan::Minutes(minutes as i64))
            }
            DeadlineUnit::BusinessDays => {
                if value.fract() != 0.0 || value > 3650.0 {
                    return Err(bad("must be a whole number of days"));
                }
                Ok(BusinessSpan::Days(value as u32))
            }
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    name: String,
    title: String,
    unit: DeadlineUnit,
    initial_assignee: StaffRole,
    acknowledge_within_business_hours: f64,
    blocking_fix_business_hours: f64,
    closing: ClosingRules,
    levels: Vec<LevelFile>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelFile {
    severity: Severity,
    label: String,
    /// In `unit`; absent means "at the total time".
    escalate_after: Option<f64>,
    total: f64,
    escalate_to: Vec<StaffRole>,
}

/// The delays of the automatic closing rules, in business days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosingRules {
    /// No answer from the partner for this long after support asked: closed.
    pub partner_silence_business_days: u32,
    /// The partner is warned this long before that close.
    pub warning_before_business_days: u32,
    /// Resolved, notified, and no remark for this long: closed.
    pub no_remark_business_days: u32,
}

/// One row of a deadline table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Level {
    pub severity: Severity,
    pub label: String,
    pub escalate_after: BusinessSpan,
    pub total: BusinessSpan,
    /// Who is responsible once escalated; the first becomes the assignee.
    pub escalate_to: Vec<StaffRole>,
}

/// A validated deadline policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub title: String,
    pub unit: DeadlineUnit,
    pub initial_assignee: StaffRole,
    pub acknowledge_within: BusinessSpan,
    pub blocking_fix: BusinessSpan,
    pub closing: ClosingRules,
    levels: Vec<Level>,
}

impl Policy {
    /// Parses and checks a policy file: every severity 1–5 exactly once, escalation no
    /// later than the total time, whole minutes or whole days.
    pub fn parse(text: &str) -> Result<Policy, SupportError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| SupportError::Config(format!("policy: {e}")))?;
        let name = file.name.clone();
        let err = |why: String| SupportError::Config(format!("policy {name}: {why}"));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            return Err(err("name must be lowercase letters and _".into()));
        }
        let closing = file.closing;
        if closing.partner_silence_business_days == 0
            || closing.warning_before_business_days >= closing.partner_silence_business_days
        {
            return Err(err(
                "closing: the warning must come after the silence starts and before the close"
                    .into(),
            ));
        }
        if closing.no_remark_business_days == 0 {
            return Err(err(
                "closing.no_remark_business_days must be positive".into()
            ));
        }
        let mut levels = Vec::with_capacity(5);
        for severity in Severity::ALL {
            let rows: Vec<&LevelFile> = file
                .levels
                .iter()
                .filter(|l| l.severity == severity)
                .collect();
            let [row] = rows[..] else {
                return Err(err(format!(
                    "severity {} must appear exactly once",
                    severity.level()
                )));
            };
            let field = |f: &str| format!("policy {name}: severity {}: {f}", severity.level());
            let total = BusinessSpan::parse(file.unit, row.total, &field("total"))?;
            let escalate_after = match row.escalate_after {
                Some(v) => BusinessSpan::parse(file.unit, v, &field("escalate_after"))?,
                None => total,
            };
            let later = match (escalate_after, total) {
                (BusinessSpan::Minutes(a), BusinessSpan::Minutes(t)) => a > t,
                (BusinessSpan::Days(a), BusinessSpan::Days(t)) => a > t,
                _ => true,
            };
            if later {
                return Err(err(format!(
                    "severity {}: escalation must not come after the total time",
                    severity.level()
                )));
            }
            if row.escalate_to.is_empty() {
                return Err(err(format!(
                    "severity {}: escalate_to names no one",
                    severity.level()
                )));
            }
            levels.push(Level {
                severity,
                label: row.label.clone(),
                escalate_after,
                total,
                escalate_to: row.escalate_to.clone(),
            });
        }
        if file.levels.len() != 5 {
            return Err(err("exactly five severities".into()));
        }
        Ok(Policy {
            acknowledge_within: BusinessSpan::parse(
                DeadlineUnit::BusinessHours,
                file.acknowledge_within_business_hours,
                &format!("policy {name}: acknowledge_within_business_hours"),
            )?,
            blocking_fix: BusinessSpan::parse(
                DeadlineUnit::BusinessHours,
                file.blocking_fix_business_hours,
                &format!("policy {name}: blocking_fix_business_hours"),
            )?,
            name: file.name,
            title: file.title,
            unit: file.unit,
            initial_assignee: file.initial_assignee,
            closing,
            levels,
        })
    }

    pub fn franceconnect() -> Result<Policy, SupportError> {
        Policy::parse(FRANCECONNECT)
    }

    pub fn agentconnect() -> Result<Policy, SupportError> {
        Policy::parse(AGENTCONNECT)
    }

    pub fn level(&self, severity: Severity) -> Result<&Level, SupportError> {
        self.levels
            .iter()
            .find(|l| l.severity == severity)
            .ok_or_else(|| SupportError::Config(format!("policy {}: no severity row", self.name)))
    }

    pub fn levels(&self) -> &[Level] {
        &self.levels
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::domain::StaffRole::*;

    #[test]
    fn the_franceconnect_table_as_shipped() {
        let p = Policy::franceconnect().unwrap();
        assert_eq!(p.name, "franceconnect");
        assert_eq!(p.unit, DeadlineUnit::BusinessHours);
        let rows: Vec<(u8, i64, i64, Vec<StaffRole>)> = p
            .levels()
            .iter()
            .map(|l| {
                let (BusinessSpan::Minutes(a), BusinessSpan::Minutes(t)) =
                    (l.escalate_after, l.total)
                else {
                    panic!("hours expected")
                };
                (l.severity.level(), a, t, l.escalate_to.clone())
            })
            .collect();
        assert_eq!(
            rows,
            [
                (1, 60, 120, vec![ProductionManager]),
                (2, 150, 240, vec![Level3]),
                (3, 480, 720, vec![Level2]),
                (4, 900, 1440, vec![Level1]),
                (5, 900, 1440, vec![Level1]),
            ]
        );
        assert_eq!(p.acknowledge_within, BusinessSpan::Minutes(48 * 60));
        assert_eq!(p.blocking_fix, BusinessSpan::Minutes(4 * 60));
        assert_eq!(p.closing.partner_silence_business_days, 10);
    }

    #[test]
    fn the_agentconnect_table_as_shipped() {
        let p = Policy::agentconnect().unwrap();
        assert_eq!(p.unit, DeadlineUnit::BusinessDays);
        let rows: Vec<(u8, BusinessSpan, BusinessSpan, Vec<StaffRole>)> = p
            .levels()
            .iter()
            .map(|l| {
                (
                    l.severity.level(),
                    l.escalate_after,
                    l.total,
                    l.escalate_to.clone(),
                )
            })
            .collect();
        use BusinessSpan::Days;
        assert_eq!(
            rows,
            [
                (1, Days(2), Days(2), vec![ProductionManager, ProductOwner]),
                (2, Days(2), Days(2), vec![ProductOwner]),
                (3, Days(5), Days(5), vec![ProductOwner]),
                (4, Days(5), Days(5), vec![PartnerRelations, ProductOwner]),
                (5, Days(8), Days(8), vec![PartnerRelations]),
            ]
        );
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        let cases = [
            (
                "severity = 5",
                "severity = 4",
                "severity 4 must appear exactly once",
            ),
            (
                "escalate_after = 2.5",
                "escalate_after = 2.51",
                "whole number of minutes",
            ),
            (
                "escalate_after = 1\n",
                "escalate_after = 3\n",
                "must not come after",
            ),
            (
                "escalate_to = [\"level3\"]",
                "escalate_to = []",
                "names no one",
            ),
            (
                "escalate_to = [\"level3\"]",
                "escalate_to = [\"boss\"]",
                "unknown variant",
            ),
            (
                "warning_before_business_days = 2",
                "warning_before_business_days = 10",
                "warning",
            ),
            ("total = 2\n", "total = 2\nextra = 1\n", "unknown field"),
        ];
        for (from, to, expected) in cases {
            let text = FRANCECONNECT.replacen(from, to, 1);
            assert_ne!(text, FRANCECONNECT, "{from} not found");
            let err = Policy::parse(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should say {expected}");
        }
        let days = AGENTCONNECT.replacen("total = 8", "total = 7.5", 1);
        let err = Policy::parse(&days).unwrap_err().to_string();
        assert!(err.contains("whole number of days"), "{err}");
    }
}

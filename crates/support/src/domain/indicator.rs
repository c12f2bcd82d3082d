//! The quality indicator of the seeds: the share of operating incidents (security
//! incidents included, information requests excluded) resolved within 24 business hours
//! of their reception, target 95 %, over any period, per partner and overall.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::PartnerRef;
use super::calendar::BusinessCalendar;
use crate::SupportError;

/// How the indicator is computed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndicatorConfig {
    /// An incident counts as resolved in time within this many business hours.
    pub resolution_business_hours: u32,
    /// The target share, in percent.
    pub target_percent: f64,
}

impl Default for IndicatorConfig {
    fn default() -> Self {
        IndicatorConfig {
            resolution_business_hours: 24,
            target_percent: 95.0,
        }
    }
}

impl IndicatorConfig {
    pub fn validate(&self) -> Result<(), SupportError> {
        if self.resolution_business_hours == 0 {
            return Err(SupportError::Config(
                "indicator.resolution_business_hours must be positive".into(),
            ));
        }
        if !(0.0..=100.0).contains(&self.target_percent) {
            return Err(SupportError::Config(
                "indicator.target_percent must be between 0 and 100".into(),
            ));
        }
        Ok(())
    }
}

/// What the indicator needs of one incident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    pub partner: PartnerRef,
    pub received_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

/// The count for one partner, or for all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// Incidents received in the period.
    pub received: u64,
    pub resolved_in_time: u64,
    /// Resolved late, or not resolved and already past the limit.
    pub late: u64,
    /// Not resolved yet and still within the limit: not judged yet.
    pub pending: u64,
    /// `resolved_in_time / (received - pending)` in percent; `None` when nothing is judged.
    pub percent: Option<f64>,
    pub meets_target: Option<bool>,
}

impl Share {
    fn finish(&mut self, target: f64) {
        let judged = self.resolved_in_time + self.late;
        self.percent = (judged > 0).then(|| 100.0 * self.resolved_in_time as f64 / judged as f64);
        self.meets_target = self.percent.map(|p| p >= target);
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub from: Timestamp,
    pub to: Timestamp,
    pub target_percent: f64,
    pub overall: Share,
    pub per_partner: BTreeMap<PartnerRef, Share>,
}

/// The indicator over incidents received in `[from, to)`, judged at `now`.
pub fn compute(
    incidents: &[Incident],
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
    calendar: &BusinessCalendar,
    config: &IndicatorConfig,
) -> Result<Report, SupportError> {
    if to <= from {
        return Err(SupportError::Invalid(
            "the period must end after it starts".into(),
        ));
    }
    let limit = SignedDuration::from_hours(i64::from(config.resolution_business_hours));
    let mut overall = Share::default();
    let mut per_partner: BTreeMap<PartnerRef, Share> = BTreeMap::new();
    for incident in incidents
        .iter()
        .filter(|i| from <= i.received_at && i.received_at < to)
    {
        let outcome = match incident.resolved_at {
            Some(resolved) => {
                if calendar.business_time_between(incident.received_at, resolved)? <= limit {
                    Outcome::InTime
                } else {
                    Outcome::Late
                }
            }
            None => {
                if calendar.business_time_between(incident.received_at, now)? > limit {
                    Outcome::Late
                } else {
                    Outcome::Pending
                }
            }
        };
        for share in [
            &mut overall,
            per_partner.entry(incident.partner.clone()).or_default(),
        ] {
            share.received += 1;
            match outcome {
                Outcome::InTime => share.resolved_in_time += 1,
                Outcome::Late => share.late += 1,
                Outcome::Pending => share.pending += 1,
            }
        }
    }
    overall.finish(config.target_percent);
    for share in per_partner.values_mut() {
        share.finish(config.target_percent);
    }
    Ok(Report {
        from,
        to,
        target_percent: config.target_percent,
        overall,
        per_partner,
    })
}

#[derive(Clone, Copy)]
enum Outcome {
    InTime,
    Late,
    Pending,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use jiff::civil::DateTime;
    use jiff::tz::TimeZoneDatabase;

    use super::*;
    use crate::domain::calendar::CalendarConfig;

    fn paris(s: &str) -> Timestamp {
        let dt: DateTime = s.parse().unwrap();
        let tz = TimeZoneDatabase::bundled().get("Europe/Paris").unwrap();
        dt.to_zoned(tz).unwrap().timestamp()
    }

    fn incident(partner: &str, received: &str, resolved: Option<&str>) -> Incident {
        Incident {
            partner: PartnerRef::idp(partner).unwrap(),
            received_at: paris(received),
            resolved_at: resolved.map(paris),
        }
    }

    #[test]
    fn share_resolved_within_24_business_hours_per_partner_and_overall() {
        let cal = BusinessCalendar::new(&CalendarConfig::default()).unwrap();
        let config = IndicatorConfig::default();
        let incidents = vec![
            // Friday 17:30 before Easter Monday; 24 business hours end Thursday 16:00.
            incident("idp-a", "2025-04-18T17:30", Some("2025-04-24T16:00")),
            incident("idp-a", "2025-04-18T17:30", Some("2025-04-24T16:01")),
            // Within the day.
            incident("idp-a", "2025-04-22T10:00", Some("2025-04-22T12:00")),
            incident("idp-b", "2025-04-23T10:00", Some("2025-04-23T11:00")),
            // Not resolved, 24 business hours passed by `now`: late.
            incident("idp-b", "2025-04-22T10:00", None),
            // Not resolved, still within its 24 hours: pending.
            incident("idp-b", "2025-04-28T10:00", None),
            // Outside the period.
            incident("idp-b", "2025-05-05T10:00", Some("2025-05-05T11:00")),
        ];
        let report = compute(
            &incidents,
            paris("2025-04-01T00:00"),
            paris("2025-05-01T00:00"),
            paris("2025-04-29T10:00"),
            &cal,
            &config,
        )
        .unwrap();
        assert_eq!(report.overall.received, 6);
        assert_eq!(report.overall.resolved_in_time, 3);
        assert_eq!(report.overall.late, 2);
        assert_eq!(report.overall.pending, 1);
        assert_eq!(report.overall.percent, Some(60.0));
        assert_eq!(report.overall.meets_target, Some(false));
        let a = report.per_partner[&PartnerRef::idp("idp-a").unwrap()];
        assert_eq!((a.received, a.resolved_in_time, a.late), (3, 2, 1));
        let b = report.per_partner[&PartnerRef::idp("idp-b").unwrap()];
        assert_eq!(
            (b.received, b.resolved_in_time, b.late, b.pending),
            (3, 1, 1, 1)
        );
        assert_eq!(b.percent, Some(50.0));

        // Two days: two in time, one late.
        let good = compute(
            &incidents,
            paris("2025-04-22T00:00"),
            paris("2025-04-24T00:00"),
            paris("2025-04-29T10:00"),
            &cal,
            &config,
        )
        .unwrap();
        assert_eq!(good.overall.received, 3);
        assert_eq!(good.overall.percent, Some(200.0 / 3.0));
        let only_in_time = compute(
            &incidents,
            paris("2025-04-23T00:00"),
            paris("2025-04-24T00:00"),
            paris("2025-04-29T10:00"),
            &cal,
            &config,
        )
        .unwrap();
        assert_eq!(only_in_time.overall.percent, Some(100.0));
        assert_eq!(only_in_time.overall.meets_target, Some(true));

        let empty = compute(
            &incidents,
            paris("2024-01-01T00:00"),
            paris("2024-02-01T00:00"),
            paris("2025-04-29T10:00"),
            &cal,
            &config,
        )
        .unwrap();
        assert_eq!(empty.overall.percent, None);
        assert!(empty.per_partner.is_empty());
        assert!(
            compute(
                &incidents,
                paris("2025-05-01T00:00"),
                paris("2025-04-01T00:00"),
                paris("2025-04-29T10:00"),
                &cal,
                &config
            )
            .is_err()
        );
    }
}

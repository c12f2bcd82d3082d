//! Business time: the hours support is open, in its time zone, holidays excluded.
//!
//! Instants are `jiff::Timestamp`s; every window is computed from civil dates and times in
//! the zone and only then turned into instants, so a daylight-saving change shifts the
//! window in UTC and never its length in local time.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::SupportError;

/// How far a search for the next business day may go before the calendar is declared
/// closed for good (a configuration that closes every day).
const HORIZON_DAYS: u32 = 3_660;

/// Holidays defined by rule, valid every year.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HolidayRules {
    /// Same date every year, `MM-DD`.
    pub fixed: Vec<String>,
    /// Days after Easter Sunday (1 Easter Monday, 39 Ascension, 50 Whit Monday, -2 Good Friday).
    pub easter_offsets: Vec<i16>,
}

/// The business calendar as configured. The defaults are the French one: Europe/Paris,
/// Monday to Friday 9:30–18:00, national public holidays, with Alsace-Moselle's extra
/// days defined but not applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalendarConfig {
    /// IANA zone name.
    pub time_zone: String,
    /// Local opening time, `HH:MM`.
    pub opens_at: String,
    /// Local closing time, `HH:MM` (the window ends just before it).
    pub closes_at: String,
    /// English day names, lowercase.
    pub working_days: Vec<String>,
    /// Holidays everywhere the service runs.
    pub holidays: HolidayRules,
    /// Named extra sets that a deployment may apply (`alsace_moselle`).
    pub regional_sets: BTreeMap<String, HolidayRules>,
    /// Names of `regional_sets` in force.
    pub regions: Vec<String>,
    /// One-off closures, `YYYY-MM-DD`.
    pub closed_dates: Vec<String>,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
        CalendarConfig {
            time_zone: "Europe/Paris".into(),
            opens_at: "09:30".into(),
            closes_at: "18:00".into(),
            working_days: strings(&["monday", "tuesday", "wednesday", "thursday", "friday"]),
            holidays: HolidayRules {
                // New Year, Labour Day, Victory in Europe, Bastille Day, Assumption,
                // All Saints, Armistice, Christmas.
                fixed: strings(&[
                    "01-01", "05-01", "05-08", "07-14", "08-15", "11-01", "11-11", "12-25",
                ]),
                // Easter Monday, Ascension, Whit Monday.
                easter_offsets: vec![1, 39, 50],
            },
            regional_sets: BTreeMap::from([(
                "alsace_moselle".to_owned(),
                HolidayRules {
                    // St Stephen's Day; Good Friday.
                    fixed: strings(&["12-26"]),
                    easter_offsets: vec![-2],
                },
            )]),
            regions: Vec::new(),
            closed_dates: Vec::new(),
        }
    }
}

/// A validated calendar: knows when support is open and does arithmetic in business time.
#[derive(Clone, Debug)]
pub struct BusinessCalendar {
    tz: TimeZone,
    opens: Time,
    closes: Time,
    working: [bool; 7],
    fixed: BTreeSet<(i8, i8)>,
    easter_offsets: BTreeSet<i16>,
    closed: BTreeSet<Date>,
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> SupportError {
    SupportError::Config(format!("calendar.{field}: {reason}"))
}

fn calendar_error(e: jiff::Error) -> SupportError {
    SupportError::Calendar(e.to_string())
}

fn parse_weekday(name: &str) -> Option<Weekday> {
    Some(match name {
        "monday" => Weekday::Monday,
        "tuesday" => Weekday::Tuesday,
        "wednesday" => Weekday::Wednesday,
        "thursday" => Weekday::Thursday,
        "friday" => Weekday::Friday,
        "saturday" => Weekday::Saturday,
        "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

fn parse_month_day(field: &str, s: &str) -> Result<(i8, i8), SupportError> {
    let bad = || invalid(field, format!("{s:?} is not a MM-DD date"));
    let (m, d) = s.split_once('-').ok_or_else(bad)?;
    let (m, d): (i8, i8) = (m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    // 2024 is a leap year: 02-29 is accepted.
    Date::new(2024, m, d).map_err(|_| bad())?;
    Ok((m, d))
}

/// Easter Sunday of `year` in the Gregorian calendar (the anonymous algorithm, as given by
/// Meeus).
pub fn easter_sunday(year: i16) -> Result<Date, SupportError> {
    let y = i32::from(year);
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let n = h + l - 7 * m + 114;
    let (month, day) = (n / 31, n % 31 + 1);
    let to_i8 = |v: i32| i8::try_from(v).map_err(|e| SupportError::Calendar(e.to_string()));
    Date::new(year, to_i8(month)?, to_i8(day)?).map_err(calendar_error)
}

impl BusinessCalendar {
    pub fn new(config: &CalendarConfig) -> Result<Self, SupportError> {
        let tz = TimeZoneDatabase::bundled()
            .get(&config.time_zone)
            .map_err(|e| invalid("time_zone", e))?;
        let opens: Time = config
            .opens_at
            .parse()
            .map_err(|e| invalid("opens_at", e))?;
        let closes: Time = config
            .closes_at
            .parse()
            .map_err(|e| invalid("closes_at", e))?;
        if opens >= closes {
            return Err(invalid("closes_at", "must come after opens_at"));
        }
        let mut working = [false; 7];
        for name in &config.working_days {
            let day = parse_weekday(name)
                .ok_or_else(|| invalid("working_days", format!("unknown day {name:?}")))?;
            working[usize::from(day.to_monday_zero_offset().unsigned_abs())] = true;
        }
        if !working.contains(&true) {
            return Err(invalid("working_days", "at least one day"));
        }
        let mut fixed = BTreeSet::new();
        let mut easter_offsets = BTreeSet::new();
        let mut add = |field: &str, rules: &HolidayRules| -> Result<(), SupportError> {
            for s in &rules.fixed {
                fixed.insert(parse_month_day(field, s)?);
            }
            for &offset in &rules.easter_offsets {
                if !(-100..=100).contains(&offset) {
                    return Err(invalid(
                        field,
                        format!("easter offset {offset} out of range"),
                    ));
                }
                easter_offsets.insert(offset);
            }
            Ok(())
        };
        add("holidays", &config.holidays)?;
        for region in &config.regions {
            let rules = config
                .regional_sets
                .get(region)
                .ok_or_else(|| invalid("regions", format!("no regional set {region:?}")))?;
            add("regional_sets", rules)?;
        }
        let closed = config
            .closed_dates
            .iter()
            .map(|s| {
                s.parse::<Date>()
                    .map_err(|_| invalid("closed_dates", format!("{s:?} is not a YYYY-MM-DD date")))
            })
            .collect::<Result<_, _>>()?;
        Ok(BusinessCalendar {
            tz,
            opens,
            closes,
            working,
            fixed,
            easter_offsets,
            closed,
        })
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// Whether `date` is a public holiday (or a configured closure).
    pub fn is_holiday(&self, date: Date) -> Result<bool, SupportError> {
        if self.closed.contains(&date) || self.fixed.contains(&(date.month(), date.day())) {
            return Ok(true);
        }
        if self.easter_offsets.is_empty() {
            return Ok(false);
        }
        let easter = easter_sunday(date.year())?;
        let offset = date.since(easter).map_err(calendar_error)?.get_days();
        Ok(i16::try_from(offset).is_ok_and(|o| self.easter_offsets.contains(&o)))
    }

    pub fn is_business_day(&self, date: Date) -> Result<bool, SupportError> {
        let weekday = usize::from(date.weekday().to_monday_zero_offset().unsigned_abs());
        Ok(self.working[weekday] && !self.is_holiday(date)?)
    }

    /// The local date of an instant.
    pub fn local_date(&self, at: Timestamp) -> Date {
        self.tz.to_datetime(at).date()
    }

    fn instant(&self, date: Date, time: Time) -> Result<Timestamp, SupportError> {
        self.tz
            .to_ambiguous_timestamp(DateTime::from_parts(date, time))
            .compatible()
            .map_err(calendar_error)
    }

    /// The opening window of a business day, as instants: `[open, close)`.
    fn window(&self, date: Date) -> Result<(Timestamp, Timestamp), SupportError> {
        Ok((
            self.instant(date, self.opens)?,
            self.instant(date, self.closes)?,
        ))
    }

    fn next_day(date: Date) -> Result<Date, SupportError> {
        date.tomorrow().map_err(calendar_error)
    }

    fn closed_for_good(at: Timestamp) -> SupportError {
        SupportError::Calendar(format!(
            "no business hours within {HORIZON_DAYS} days after {at}"
        ))
    }

    pub fn is_open(&self, at: Timestamp) -> Result<bool, SupportError> {
        let date = self.local_date(at);
        if !self.is_business_day(date)? {
            return Ok(false);
        }
        let (open, close) = self.window(date)?;
        Ok(open <= at && at < close)
    }

    /// `at` itself when support is open then, else the next opening.
    pub fn next_opening(&self, at: Timestamp) -> Result<Timestamp, SupportError> {
        self.add_business_time(at, SignedDuration::ZERO)
    }

    /// The instant when `amount` of business time has passed after `at`. Time outside
    /// business hours does not count; a deadline falling exactly at closing time stays
    /// on that day.
    pub fn add_business_time(
        &self,
        at: Timestamp,
        amount: SignedDuration,
    ) -> Result<Timestamp, SupportError> {
        if amount.is_negative() {
            return Err(SupportError::Calendar(
                "cannot add a negative duration".into(),
            ));
        }
        let mut remaining = amount;
        let mut date = self.local_date(at);
        for _ in 0..HORIZON_DAYS {
            if self.is_business_day(date)? {
                let (open, close) = self.window(date)?;
                let start = at.max(open);
                if start < close {
                    let available = close.duration_since(start);
                    if remaining <= available {
                        return start.checked_add(remaining).map_err(calendar_error);
                    }
                    remaining -= available;
                }
            }
            date = Self::next_day(date)?;
        }
        Err(Self::closed_for_good(at))
    }

    pub fn add_business_hours(&self, at: Timestamp, hours: i64) -> Result<Timestamp, SupportError> {
        self.add_business_time(at, SignedDuration::from_hours(hours))
    }

    /// The same local time of day `days` business days later, counting from the next
    /// opening when `at` falls outside business hours.
    pub fn add_business_days(&self, at: Timestamp, days: u32) -> Result<Timestamp, SupportError> {
        let start = self.next_opening(at)?;
        let local = self.tz.to_datetime(start);
        let mut date = local.date();
        let mut left = days;
        let mut steps = 0;
        while left > 0 {
            steps += 1;
            if steps > HORIZON_DAYS {
                return Err(Self::closed_for_good(at));
            }
            date = Self::next_day(date)?;
            if self.is_business_day(date)? {
                left -= 1;
            }
        }
        self.instant(date, local.time())
    }

    /// Business time elapsed from `from` to `to` (zero when `to` is not after `from`).
    pub fn business_time_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<SignedDuration, SupportError> {
        let mut total = SignedDuration::ZERO;
        if to <= from {
            return Ok(total);
        }
        let last = self.local_date(to);
        let mut date = self.local_date(from);
        while date <= last {
            if self.is_business_day(date)? {
                let (open, close) = self.window(date)?;
                let (start, end) = (from.max(open), to.min(close));
                if start < end {
                    total += end.duration_since(start);
                }
            }
            date = Self::next_day(date)?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A local Paris time written as the people who checked it by hand read it.
    pub(crate) fn paris(s: &str) -> Timestamp {
        let dt: DateTime = s.parse().unwrap();
        let tz = TimeZoneDatabase::bundled().get("Europe/Paris").unwrap();
        dt.to_zoned(tz).unwrap().timestamp()
    }

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn france() -> BusinessCalendar {
        BusinessCalendar::new(&CalendarConfig::default()).unwrap()
    }

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn easter_sundays_match_the_published_dates() {
        for (year, expected) in [
            (2008, "2008-03-23"),
            (2019, "2019-04-21"),
            (2024, "2024-03-31"),
            (2025, "2025-04-20"),
            (2026, "2026-04-05"),
            (2027, "2027-03-28"),
            (2038, "2038-04-25"),
        ] {
            assert_eq!(easter_sunday(year).unwrap(), date(expected), "{year}");
        }
    }

    #[test]
    fn french_public_holidays_of_2025_and_2026() {
        let cal = france();
        for d in [
            "2025-01-01",
            "2025-04-21", // Easter Monday
            "2025-05-01",
            "2025-05-08",
            "2025-05-29", // Ascension
            "2025-06-09", // Whit Monday
            "2025-07-14",
            "2025-08-15",
            "2025-11-01",
            "2025-11-11",
            "2025-12-25",
            "2026-04-06", // Easter Monday
            "2026-05-14", // Ascension
            "2026-05-25", // Whit Monday
        ] {
            assert!(cal.is_holiday(date(d)).unwrap(), "{d} is a holiday");
            assert!(!cal.is_business_day(date(d)).unwrap(), "{d} is closed");
        }
        // Good Friday and St Stephen's Day are not national holidays.
        for d in ["2025-04-18", "2025-12-26", "2025-04-22", "2025-05-30"] {
            assert!(!cal.is_holiday(date(d)).unwrap(), "{d} is not a holiday");
            assert!(cal.is_business_day(date(d)).unwrap(), "{d} is open");
        }
        assert!(
            !cal.is_business_day(date("2025-04-19")).unwrap(),
            "Saturday"
        );
        assert!(!cal.is_business_day(date("2025-04-20")).unwrap(), "Sunday");
    }

    #[test]
    fn alsace_moselle_adds_good_friday_and_st_stephens_day_when_configured() {
        let config = CalendarConfig {
            regions: vec!["alsace_moselle".into()],
            ..CalendarConfig::default()
        };
        let cal = BusinessCalendar::new(&config).unwrap();
        for d in [
            "2025-04-18",
            "2025-12-26",
            "2026-04-03",
            "2025-12-25",
            "2025-04-21",
        ] {
            assert!(cal.is_holiday(date(d)).unwrap(), "{d}");
        }
        // Opened Thursday 17:00 before Good Friday 2025: one hour Thursday, then Tuesday
        // (Good Friday, the weekend and Easter Monday are closed).
        assert_eq!(
            cal.add_business_hours(paris("2025-04-17T17:00"), 2)
                .unwrap(),
            paris("2025-04-22T10:30")
        );
        // Nationally, the Friday counts.
        assert_eq!(
            france()
                .add_business_hours(paris("2025-04-17T17:00"), 2)
                .unwrap(),
            paris("2025-04-18T10:30")
        );
    }

    #[test]
    fn bad_configuration_names_the_field() {
        type Spoil = fn(&mut CalendarConfig);
        let cases: [(Spoil, &str); 6] = [
            (|c| c.time_zone = "Europe/Nowhere".into(), "time_zone"),
            (|c| c.opens_at = "9h30".into(), "opens_at"),
            (|c| c.closes_at = "09:00".into(), "closes_at"),
            (|c| c.working_days = vec!["lundi".into()], "working_days"),
            (|c| c.regions = vec!["bretagne".into()], "regions"),
            (|c| c.holidays.fixed = vec!["02-30".into()], "holidays"),
        ];
        for (spoil, field) in cases {
            let mut config = CalendarConfig::default();
            spoil(&mut config);
            let err = BusinessCalendar::new(&config).unwrap_err().to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
    }

    #[test]
    fn opening_hours_are_half_open() {
        let cal = france();
        assert!(!cal.is_open(paris("2025-03-05T09:29:59")).unwrap());
        assert!(cal.is_open(paris("2025-03-05T09:30")).unwrap());
        assert!(cal.is_open(paris("2025-03-05T17:59:59")).unwrap());
        assert!(!cal.is_open(paris("2025-03-05T18:00")).unwrap());
        assert!(!cal.is_open(paris("2025-03-08T11:00")).unwrap(), "Saturday");
    }

    #[test]
    fn friday_half_past_five_before_easter_monday_resumes_on_tuesday() {
        let cal = france();
        let opened = paris("2025-04-18T17:30");
        // 30 minutes on Friday; Saturday, Sunday and Easter Monday are closed.
        assert_eq!(
            cal.add_business_hours(opened, 1).unwrap(),
            paris("2025-04-22T10:00")
        );
        assert_eq!(
            cal.add_business_hours(opened, 2).unwrap(),
            paris("2025-04-22T11:00")
        );
        // 0.5 + 8.5 on Tuesday = 9 hours: 15 hours end Wednesday at 15:30.
        assert_eq!(
            cal.add_business_hours(opened, 15).unwrap(),
            paris("2025-04-23T15:30")
        );
        // 24 hours: 0.5 + 8.5 + 8.5 = 17.5, 6.5 more on Thursday → 16:00.
        assert_eq!(
            cal.add_business_hours(opened, 24).unwrap(),
            paris("2025-04-24T16:00")
        );
        // Two business days: Tuesday, Wednesday, at the same time of day.
        assert_eq!(
            cal.add_business_days(opened, 2).unwrap(),
            paris("2025-04-23T17:30")
        );
        assert_eq!(
            cal.business_time_between(opened, paris("2025-04-22T10:00"))
                .unwrap(),
            SignedDuration::from_hours(1)
        );
    }

    #[test]
    fn a_ticket_opened_at_night_counts_from_the_next_opening() {
        let cal = france();
        let night = paris("2025-03-11T23:40"); // a Tuesday
        assert_eq!(cal.next_opening(night).unwrap(), paris("2025-03-12T09:30"));
        assert_eq!(
            cal.add_business_hours(night, 1).unwrap(),
            paris("2025-03-12T10:30")
        );
        // 8.5 hours fill Wednesday exactly: the deadline is its closing time.
        assert_eq!(
            cal.add_business_time(night, SignedDuration::from_mins(510))
                .unwrap(),
            paris("2025-03-12T18:00")
        );
        assert_eq!(
            cal.add_business_hours(night, 12).unwrap(),
            paris("2025-03-13T13:00")
        );
        assert_eq!(
            cal.add_business_days(night, 2).unwrap(),
            paris("2025-03-14T09:30")
        );
        // Early morning too.
        assert_eq!(
            cal.add_business_hours(paris("2025-03-12T04:00"), 2)
                .unwrap(),
            paris("2025-03-12T11:30")
        );
        assert_eq!(
            cal.business_time_between(night, paris("2025-03-12T09:30"))
                .unwrap(),
            SignedDuration::ZERO
        );
    }

    #[test]
    fn across_the_spring_change_to_summer_time() {
        // Clocks go forward on Sunday 2025-03-30: Friday is UTC+1, Monday UTC+2.
        let cal = france();
        let opened = paris("2025-03-28T16:00");
        assert_eq!(opened, utc("2025-03-28T15:00Z"));
        let due = cal.add_business_hours(opened, 4).unwrap();
        // Two hours Friday, two Monday: 11:30 in Paris, 09:30 UTC (not 10:30).
        assert_eq!(due, paris("2025-03-31T11:30"));
        assert_eq!(due, utc("2025-03-31T09:30Z"));
        assert_eq!(
            cal.business_time_between(opened, due).unwrap(),
            SignedDuration::from_hours(4)
        );
        // 66.5 hours of wall clock elapsed, of which 4 were business hours.
        assert_eq!(
            due.duration_since(opened),
            SignedDuration::from_mins(66 * 60 + 30)
        );
        assert_eq!(
            cal.add_business_days(opened, 1).unwrap(),
            utc("2025-03-31T14:00Z")
        );
    }

    #[test]
    fn across_the_autumn_change_to_winter_time() {
        // Clocks go back on Sunday 2025-10-26: Friday is UTC+2, Monday UTC+1.
        let cal = france();
        let opened = paris("2025-10-24T17:00");
        assert_eq!(opened, utc("2025-10-24T15:00Z"));
        let due = cal.add_business_hours(opened, 3).unwrap();
        assert_eq!(due, paris("2025-10-27T11:30"));
        assert_eq!(due, utc("2025-10-27T10:30Z"));
        // A ticket sent during the repeated hour, 02:30 local, twice.
        let first = utc("2025-10-26T00:30Z");
        let second = utc("2025-10-26T01:30Z");
        for at in [first, second] {
            assert_eq!(cal.next_opening(at).unwrap(), utc("2025-10-27T08:30Z"));
        }
        assert_eq!(
            cal.business_time_between(opened, due).unwrap(),
            SignedDuration::from_hours(3)
        );
    }

    #[test]
    fn spanning_christmas_and_new_year() {
        let cal = france();
        // Tuesday 23 December 2025, 15:00; 25 December and 1 January are closed,
        // 26 December and 31 December are open, the weekends are closed.
        let opened = paris("2025-12-23T15:00");
        // 3 (Tue) + 8.5 (Wed 24) + 8.5 (Fri 26) + 8.5 (Mon 29) = 28.5; 48 - 28.5 = 19.5:
        // 8.5 Tue 30, 8.5 Wed 31, 2.5 on Friday 2 January → 12:00.
        assert_eq!(
            cal.add_business_hours(opened, 48).unwrap(),
            paris("2026-01-02T12:00")
        );
        assert_eq!(
            cal.add_business_hours(opened, 24).unwrap(),
            paris("2025-12-29T13:30")
        );
        // Ten business days: 24, 26, 29, 30, 31, 2, 5, 6, 7, 8 → Thursday 8 January.
        assert_eq!(
            cal.add_business_days(opened, 10).unwrap(),
            paris("2026-01-08T15:00")
        );
        assert_eq!(
            cal.business_time_between(opened, paris("2026-01-02T12:00"))
                .unwrap(),
            SignedDuration::from_hours(48)
        );
    }

    #[test]
    fn a_calendar_closed_every_day_says_so() {
        let config = CalendarConfig {
            working_days: vec!["monday".into()],
            closed_dates: (0..120)
                .map(|w| (date("2025-01-06") + jiff::Span::new().weeks(w)).to_string())
                .collect(),
            ..CalendarConfig::default()
        };
        let cal = BusinessCalendar::new(&config).unwrap();
        // 120 Mondays from 6 January 2025 are closed, the last on 19 April 2027.
        assert_eq!(
            cal.add_business_hours(paris("2025-01-01T10:00"), 1)
                .unwrap(),
            paris("2027-04-26T10:30")
        );
        let never = CalendarConfig {
            working_days: vec!["monday".into()],
            closed_dates: (0..600)
                .map(|w| (date("2025-01-06") + jiff::Span::new().weeks(w)).to_string())
                .collect(),
            ..CalendarConfig::default()
        };
        let cal = BusinessCalendar::new(&never).unwrap();
        let err = cal
            .add_business_hours(paris("2025-01-01T10:00"), 1)
            .unwrap_err();
        assert!(matches!(err, SupportError::Calendar(_)), "{err}");
    }
}

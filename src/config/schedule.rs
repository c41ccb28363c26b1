//! Cron schedules (the "time" trigger): besides the periodic rule (`schedule_interval_days`
//! after the last deployment), a policy may name daily / weekly / monthly retrains by cron
//! expression. A schedule is *due* for a model when one of its occurrences falls after the
//! last time it fired for that model (or, if it never has, after the active version was
//! deployed) and at or before now — so a missed tick fires once, late, and never twice.
//!
//! Expressions are Vixie-cron's five fields (an optional leading seconds field, `L`, `W`,
//! `#`, and the `@daily` / `@weekly` / `@monthly` nicknames are accepted), parsed by the
//! `croner` crate and evaluated in the schedule's time zone (UTC unless it names an IANA
//! zone). The training window of a schedule is its own `window_days`, else the policy's
//! `window_monthly_days` (3 years) when the schedule fires at most monthly, else
//! `window_time_days`.

use std::str::FromStr;

use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A gap between occurrences from which a schedule counts as monthly (its window is
/// `window_monthly_days`).
const MONTHLY_GAP_DAYS: i64 = 28;

/// One named cron schedule of the policy (`[[schedules]]` in TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronSchedule {
    /// Name shown in reasons and the audit log (e.g. `weekly`).
    pub name: String,
    /// Cron expression, e.g. `0 3 * * MON` (Mondays 03:00) or `@monthly`.
    pub cron: String,
    /// Training window in days (default: monthly cadence → `window_monthly_days`, else
    /// `window_time_days`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_days: Option<usize>,
    /// IANA time zone the expression is read in (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The models it applies to (empty: every model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

/// A schedule with its expression parsed and its zone resolved.
#[derive(Debug, Clone)]
pub struct ParsedSchedule {
    /// The schedule as configured.
    pub schedule: CronSchedule,
    cron: Cron,
    tz: TimeZone,
}

impl CronSchedule {
    /// A schedule `name` firing on `cron` in UTC, for every model.
    pub fn new(name: impl Into<String>, cron: impl Into<String>) -> Self {
        CronSchedule { name: name.into(), cron: cron.into(), window_days: None, time_zone: None, models: Vec::new() }
    }

    /// Parse the expression and resolve the zone; errors name `field` (e.g. `schedules[0]`).
    pub fn parse(&self, field: &str) -> Result<ParsedSchedule> {
        if self.name.trim().is_empty() {
            return Err(Error::param(format!("{field}.name"), "must not be empty"));
        }
        let cron = Cron::from_str(self.cron.trim()).map_err(|e| {
            Error::param(format!("{field}.cron"), format!("`{}` is not a cron expression: {e}", self.cron))
        })?;
        let tz = match &self.time_zone {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name)
                .map_err(|e| Error::param(format!("{field}.time_zone"), format!("unknown time zone `{name}`: {e}")))?,
        };
        if self.window_days == Some(0) {
            return Err(Error::param(format!("{field}.window_days"), "must be at least 1"));
        }
        let parsed = ParsedSchedule { schedule: self.clone(), cron, tz };
        // An expression that never fires (e.g. 30 February) is a configuration error.
        parsed
            .next_after(Timestamp::UNIX_EPOCH)?
            .ok_or_else(|| Error::param(format!("{field}.cron"), format!("`{}` never fires", self.cron)))?;
        Ok(parsed)
    }

    /// Whether it applies to `model_id`.
    pub fn applies_to(&self, model_id: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model_id)
    }
}

impl ParsedSchedule {
    fn zoned(&self, t: Timestamp) -> Zoned {
        t.to_zoned(self.tz.clone())
    }

    /// The first occurrence strictly after `t` (`None` if there is none).
    pub fn next_after(&self, t: Timestamp) -> Result<Option<Timestamp>> {
        match self.cron.find_next_occurrence(&self.zoned(t), false) {
            Ok(z) => Ok(Some(z.timestamp())),
            Err(croner::errors::CronError::TimeSearchLimitExceeded) => Ok(None),
            Err(e) => Err(Error::param(format!("schedule `{}`", self.schedule.name), e.to_string())),
        }
    }

    /// The latest occurrence in `(after, upto]`, if any: the schedule is due.
    pub fn due_between(&self, after: Timestamp, upto: Timestamp) -> Result<Option<Timestamp>> {
        if upto <= after {
            return Ok(None);
        }
        match self.cron.find_previous_occurrence(&self.zoned(upto), true) {
            Ok(z) if z.timestamp() > after => Ok(Some(z.timestamp())),
            Ok(_) | Err(croner::errors::CronError::TimeSearchLimitExceeded) => Ok(None),
            Err(e) => Err(Error::param(format!("schedule `{}`", self.schedule.name), e.to_string())),
        }
    }

    /// Whether consecutive occurrences (from `from`) are at least four weeks apart.
    pub fn is_monthly(&self, from: Timestamp) -> bool {
        let Ok(Some(a)) = self.next_after(from) else { return false };
        let Ok(Some(b)) = self.next_after(a) else { return false };
        b.duration_since(a) >= SignedDuration::from_hours(24 * MONTHLY_GAP_DAYS)
    }

    /// Training window in days: the schedule's own, else monthly → `monthly_days`, else
    /// `default_days`.
    pub fn window_days(&self, from: Timestamp, default_days: usize, monthly_days: usize) -> usize {
        self.schedule.window_days.unwrap_or(if self.is_monthly(from) { monthly_days } else { default_days })
    }
}

/// Parse every schedule of a policy; errors name `schedules[i]`.
pub fn parse_all(schedules: &[CronSchedule]) -> Result<Vec<ParsedSchedule>> {
    let mut seen = std::collections::BTreeSet::new();
    schedules
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if !seen.insert(s.name.as_str()) {
                return Err(Error::param(format!("schedules[{i}].name"), format!("`{}` is used twice", s.name)));
            }
            s.parse(&format!("schedules[{i}]"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn due_means_an_occurrence_after_the_last_firing_and_not_after_now() {
        let weekly = CronSchedule::new("weekly", "0 3 * * MON").parse("s").unwrap();
        // 2026-11-23 is a Monday.
        let fired = ts("2026-11-16T03:00:00Z");
        assert_eq!(weekly.due_between(fired, ts("2026-11-23T02:59:59Z")).unwrap(), None);
        assert_eq!(weekly.due_between(fired, ts("2026-11-23T03:00:00Z")).unwrap(), Some(ts("2026-11-23T03:00:00Z")));
        // A missed week fires once, for the latest occurrence.
        assert_eq!(weekly.due_between(fired, ts("2026-12-08T00:00:00Z")).unwrap(), Some(ts("2026-12-07T03:00:00Z")));
        // Having fired at that occurrence, it is not due again until the next one.
        assert_eq!(weekly.due_between(ts("2026-11-23T03:00:00Z"), ts("2026-11-29T00:00:00Z")).unwrap(), None);
        assert_eq!(weekly.next_after(ts("2026-11-23T03:00:00Z")).unwrap(), Some(ts("2026-11-30T03:00:00Z")));
    }

    #[test]
    fn time_zones_move_the_wall_clock_hour() {
        let mut s = CronSchedule::new("ny", "0 9 * * *");
        s.time_zone = Some("America/New_York".into());
        let p = s.parse("s").unwrap();
        // 09:00 in New York on 24 November 2026 (EST, UTC−5) is 14:00 UTC.
        assert_eq!(p.next_after(ts("2026-11-24T00:00:00Z")).unwrap(), Some(ts("2026-11-24T14:00:00Z")));
    }

    #[test]
    fn windows_follow_the_cadence() {
        let from = ts("2026-11-24T00:00:00Z");
        let monthly = CronSchedule::new("monthly", "@monthly").parse("s").unwrap();
        let daily = CronSchedule::new("daily", "30 0 * * *").parse("s").unwrap();
        assert!(monthly.is_monthly(from) && !daily.is_monthly(from));
        assert_eq!(monthly.window_days(from, 90, 1095), 1095);
        assert_eq!(daily.window_days(from, 90, 1095), 90);
        let mut own = CronSchedule::new("own", "@monthly");
        own.window_days = Some(400);
        assert_eq!(own.parse("s").unwrap().window_days(from, 90, 1095), 400);
    }

    #[test]
    fn bad_schedules_are_errors_naming_the_field() {
        let field = |s: CronSchedule| match parse_all(&[CronSchedule::new("ok", "@daily"), s]) {
            Err(Error::InvalidParam { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(CronSchedule::new("x", "61 * * * *")), "schedules[1].cron");
        assert_eq!(field(CronSchedule::new("x", "every day")), "schedules[1].cron");
        assert_eq!(field(CronSchedule::new("ok", "@weekly")), "schedules[1].name");
        assert_eq!(field(CronSchedule::new(" ", "@weekly")), "schedules[1].name");
        assert_eq!(
            field(CronSchedule { time_zone: Some("Mars/Olympus".into()), ..CronSchedule::new("x", "@daily") }),
            "schedules[1].time_zone"
        );
        assert_eq!(
            field(CronSchedule { window_days: Some(0), ..CronSchedule::new("x", "@daily") }),
            "schedules[1].window_days"
        );
        assert_eq!(field(CronSchedule::new("x", "0 0 30 2 *")), "schedules[1].cron");
        let s = CronSchedule { models: vec!["a".into()], ..CronSchedule::new("x", "@daily") };
        assert!(s.applies_to("a") && !s.applies_to("b"));
        assert!(CronSchedule::new("x", "@daily").applies_to("b"));
    }
}

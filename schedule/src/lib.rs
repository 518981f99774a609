//! EventBridge Scheduler's schedule expressions without I/O.
//!
//! A [`Schedule`] is an expression (`at(2030-01-01T09:00:00)`,
//! `rate(5 minutes)`, `cron(0 9 ? * MON-FRI *)`, see [`cron`]) in a time
//! zone (`ScheduleExpressionTimezone`, UTC by default), with an optional
//! start and end; [`Schedule::next_after`] gives the first fire time after
//! an instant. Times are milliseconds since the Unix epoch.
//!
//! A `rate()` fires every interval after its anchor: its `StartDate`, or
//! when it was created. `at()` fires once, whatever the start and end.
//!
//! ```
//! use mayfly_schedule::Schedule;
//!
//! let created = 1_700_000_000_000;
//! let every_5 = Schedule::new("rate(5 minutes)", None, None, None, created).unwrap();
//! assert_eq!(every_5.next_after(created), Some(created + 300_000));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cron;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Why an expression or a time zone is refused: words for Scheduler's
/// `ValidationException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpressionError {
    /// The expression is not one Scheduler takes.
    #[error("Invalid Schedule Expression {0}")]
    Invalid(String),
    /// The time zone is not an IANA name.
    #[error("Invalid time zone {0}")]
    TimeZone(String),
}

/// What fires when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    /// Once, at this local time.
    At(NaiveDateTime),
    /// Every this many seconds.
    Rate(i64),
    /// At the times the cron names.
    Cron(cron::Cron),
}

impl Expression {
    /// Parses `at(...)`, `rate(...)` or `cron(...)`.
    pub fn parse(text: &str) -> Result<Expression, ExpressionError> {
        let invalid = || ExpressionError::Invalid(text.to_string());
        let (kind, rest) = text.split_once('(').ok_or_else(invalid)?;
        let inner = rest.strip_suffix(')').ok_or_else(invalid)?;
        match kind {
            "at" => NaiveDateTime::parse_from_str(inner, "%Y-%m-%dT%H:%M:%S")
                .map(Expression::At)
                .map_err(|_| invalid()),
            "rate" => {
                let (value, unit) = inner.trim().split_once(' ').ok_or_else(invalid)?;
                let value: i64 = value.parse().map_err(|_| invalid())?;
                let seconds = match (unit.trim(), value) {
                    ("minute", 1) | ("minutes", 2..) => 60,
                    ("hour", 1) | ("hours", 2..) => 3_600,
                    ("day", 1) | ("days", 2..) => 86_400,
                    _ => return Err(invalid()),
                };
                value
                    .checked_mul(seconds)
                    .filter(|s| *s <= 10 * 366 * 86_400)
                    .map(Expression::Rate)
                    .ok_or_else(invalid)
            }
            "cron" => cron::Cron::parse(inner).map(Expression::Cron),
            _ => Err(invalid()),
        }
    }
}

/// A parsed time zone: an IANA name (`Europe/Paris`), UTC by default.
pub fn time_zone(name: Option<&str>) -> Result<Tz, ExpressionError> {
    match name {
        None | Some("") | Some("UTC") => Ok(Tz::UTC),
        Some(name) => name
            .parse::<Tz>()
            .map_err(|_| ExpressionError::TimeZone(name.to_string())),
    }
}

/// How far ahead a cron is searched for its next day (beyond it, it has
/// none: `cron(0 0 31 2 ? *)`).
const SEARCH_DAYS: i64 = 366 * 9;

/// An expression with its time zone, bounds and anchor.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    expression: Expression,
    zone: Tz,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    created_ms: i64,
}

impl Schedule {
    /// A schedule of `expression` in `zone`, from `start_ms` to `end_ms`
    /// (each optional), created at `created_ms`.
    pub fn new(
        expression: &str,
        zone: Option<&str>,
        start_ms: Option<i64>,
        end_ms: Option<i64>,
        created_ms: i64,
    ) -> Result<Schedule, ExpressionError> {
        Ok(Schedule {
            expression: Expression::parse(expression)?,
            zone: time_zone(zone)?,
            start_ms,
            end_ms,
            created_ms,
        })
    }

    /// Whether it fires once only (`at()`).
    pub fn is_one_time(&self) -> bool {
        matches!(self.expression, Expression::At(_))
    }

    /// The instant of a local time in the zone: the earlier of two in a
    /// fold, none in a gap.
    fn instant(&self, local: NaiveDateTime) -> Option<i64> {
        match self.zone.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.timestamp_millis()),
            LocalResult::None => None,
        }
    }

    fn within_bounds(&self, at: i64) -> bool {
        self.start_ms.is_none_or(|s| at >= s) && self.end_ms.is_none_or(|e| at <= e)
    }

    /// The first fire time strictly after `after_ms`, if there is one.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match &self.expression {
            Expression::At(local) => self.instant(*local).filter(|t| *t > after_ms),
            Expression::Rate(seconds) => {
                let step = seconds * 1000;
                let anchor = self.start_ms.unwrap_or(self.created_ms);
                let from = after_ms.max(anchor);
                let k = (from - anchor) / step + 1;
                let at = anchor.checked_add(k.checked_mul(step)?)?;
                self.end_ms.is_none_or(|e| at <= e).then_some(at)
            }
            Expression::Cron(cron) => {
                let from = after_ms.max(self.start_ms.unwrap_or(i64::MIN).saturating_sub(1));
                let local = DateTime::<Utc>::from_timestamp_millis(from)?
                    .with_timezone(&self.zone)
                    .naive_local();
                let mut day: NaiveDate = local.date();
                for _ in 0..SEARCH_DAYS {
                    if cron.matches_date(day) {
                        for (h, m) in cron.times() {
                            let Some(at) = day.and_hms_opt(h, m, 0).and_then(|t| self.instant(t))
                            else {
                                continue;
                            };
                            if at > from {
                                return self.within_bounds(at).then_some(at);
                            }
                        }
                    }
                    day = day.checked_add_signed(Duration::days(1))?;
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn at_fires_once_at_its_local_time() {
        let s = Schedule::new(
            "at(2030-03-01T09:30:00)",
            Some("Europe/Paris"),
            None,
            None,
            0,
        )
        .unwrap();
        assert!(s.is_one_time());
        let at = ms("2030-03-01T08:30:00Z");
        assert_eq!(s.next_after(0), Some(at));
        assert_eq!(s.next_after(at), None);
    }

    #[test]
    fn rate_counts_from_its_start_or_creation_and_stops_at_its_end() {
        let created = ms("2025-01-01T00:00:10Z");
        let s = Schedule::new("rate(1 minute)", None, None, None, created).unwrap();
        assert_eq!(s.next_after(created), Some(created + 60_000));
        assert_eq!(s.next_after(created + 60_000), Some(created + 120_000));
        assert_eq!(s.next_after(created + 61_000), Some(created + 120_000));
        let start = ms("2025-06-01T00:00:00Z");
        let bounded = Schedule::new(
            "rate(2 hours)",
            None,
            Some(start),
            Some(start + 5 * 3_600_000),
            created,
        )
        .unwrap();
        assert_eq!(bounded.next_after(created), Some(start + 7_200_000));
        assert_eq!(
            bounded.next_after(start + 7_200_000),
            Some(start + 14_400_000)
        );
        assert_eq!(bounded.next_after(start + 14_400_000), None);
    }

    #[test]
    fn cron_follows_its_zone_across_daylight_saving() {
        // 09:00 in New York is 14:00 UTC in winter, 13:00 in summer.
        let s =
            Schedule::new("cron(0 9 * * ? *)", Some("America/New_York"), None, None, 0).unwrap();
        assert_eq!(
            s.next_after(ms("2025-03-07T15:00:00Z")),
            Some(ms("2025-03-08T14:00:00Z"))
        );
        assert_eq!(
            s.next_after(ms("2025-03-08T15:00:00Z")),
            Some(ms("2025-03-09T13:00:00Z"))
        );
        let weekdays = Schedule::new("cron(30 8 ? * MON-FRI *)", None, None, None, 0).unwrap();
        // Friday 2025-01-10 after 08:30: next is Monday the 13th.
        assert_eq!(
            weekdays.next_after(ms("2025-01-10T09:00:00Z")),
            Some(ms("2025-01-13T08:30:00Z"))
        );
        let never = Schedule::new("cron(0 0 31 2 ? *)", None, None, None, 0).unwrap();
        assert_eq!(never.next_after(ms("2025-01-01T00:00:00Z")), None);
        let bounded = Schedule::new(
            "cron(0 * * * ? *)",
            None,
            Some(ms("2025-01-01T05:30:00Z")),
            Some(ms("2025-01-01T07:00:00Z")),
            0,
        )
        .unwrap();
        assert_eq!(bounded.next_after(0), Some(ms("2025-01-01T06:00:00Z")));
        assert_eq!(bounded.next_after(ms("2025-01-01T07:00:00Z")), None);
    }

    #[test]
    fn bad_expressions_and_zones_are_refused() {
        for bad in [
            "rate(1 minutes)",
            "rate(2 minute)",
            "rate(0 minutes)",
            "rate(5 weeks)",
            "at(2030-13-01T00:00:00)",
            "at(2030-01-01 00:00:00)",
            "every(5 minutes)",
            "cron(0 9 * * *)",
            "rate(5 minutes",
        ] {
            assert!(Expression::parse(bad).is_err(), "{bad}");
        }
        assert!(time_zone(Some("Mars/Olympus")).is_err());
        assert_eq!(time_zone(Some("Asia/Tokyo")).unwrap(), Tz::Asia__Tokyo);
    }
}

//! EventBridge's six-field cron: `minutes hours day-of-month month
//! day-of-week year`, with `,` `-` `*` `/` everywhere, `?` for one of the
//! two day fields, names (`JAN`, `MON`), `L` (last day of the month, or
//! `5L` the last Thursday), `W` (`15W`, the weekday nearest the 15th) and
//! `#` (`6#3`, the third Friday). Days of the week count from 1, Sunday.

use chrono::{Datelike, NaiveDate, Weekday};

use crate::ExpressionError;

/// A set of allowed values of one field, as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Values(u128);

impl Values {
    fn has(self, v: u32) -> bool {
        v < 128 && self.0 & (1u128 << v) != 0
    }
}

/// The day-of-month field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Days {
    /// `?`: the other day field decides.
    Any,
    /// These days.
    Listed(Values),
    /// `L`: the month's last day.
    Last,
    /// `nW`: the weekday nearest day n, within the month.
    NearestWeekday(u32),
}

/// The day-of-week field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Weekdays {
    /// `?`.
    Any,
    /// These days (1 Sunday … 7 Saturday).
    Listed(Values),
    /// `nL`: the month's last weekday n.
    Last(u32),
    /// `n#k`: the month's kth weekday n.
    Nth(u32, u32),
}

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Values,
    hours: Values,
    days: Days,
    months: Values,
    weekdays: Weekdays,
    /// Years since 1970 (bit 0 is 1970), up to 2199 in two masks.
    years: (Values, Values),
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn bad(text: &str, why: &str) -> ExpressionError {
    ExpressionError::Invalid(format!("cron field '{text}': {why}"))
}

/// One value: a number, or a name from `names` (1-based).
fn value(text: &str, names: &[&str], range: (u32, u32)) -> Result<u32, ExpressionError> {
    let upper = text.to_ascii_uppercase();
    let v = match names.iter().position(|n| *n == upper) {
        Some(i) => i as u32 + 1,
        None => text.parse::<u32>().map_err(|_| bad(text, "not a number"))?,
    };
    if v < range.0 || v > range.1 {
        return Err(bad(text, &format!("out of range {}-{}", range.0, range.1)));
    }
    Ok(v)
}

/// A field of `,`-separated `*`, `a`, `a-b`, each with an optional `/step`.
fn values(
    text: &str,
    names: &[&str],
    range: (u32, u32),
    offset: u32,
) -> Result<Vec<u32>, ExpressionError> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let (span, step) = match part.split_once('/') {
            Some((span, step)) => {
                let step: u32 = step.parse().map_err(|_| bad(part, "a bad step"))?;
                if step == 0 {
                    return Err(bad(part, "a step of 0"));
                }
                (span, step)
            }
            None => (part, 1),
        };
        let (low, high) = if span == "*" {
            range
        } else if let Some((a, b)) = span.split_once('-') {
            (value(a, names, range)?, value(b, names, range)?)
        } else {
            let v = value(span, names, range)?;
            // `a/step` runs from a to the end of the range.
            (v, if part.contains('/') { range.1 } else { v })
        };
        if low > high {
            return Err(bad(part, "a range that runs backwards"));
        }
        out.extend((low..=high).step_by(step as usize).map(|v| v - offset));
    }
    Ok(out)
}

fn mask(list: &[u32]) -> Values {
    Values(list.iter().fold(0u128, |m, v| m | (1u128 << v)))
}

impl Cron {
    /// Parses the six fields.
    pub fn parse(text: &str) -> Result<Cron, ExpressionError> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minutes, hours, days, months, weekdays, years] = fields[..] else {
            return Err(ExpressionError::Invalid(format!(
                "cron({text}) has {} fields; it needs six: minutes hours day-of-month month \
                 day-of-week year",
                fields.len()
            )));
        };
        let minutes = mask(&values(minutes, &[], (0, 59), 0)?);
        let hours = mask(&values(hours, &[], (0, 23), 0)?);
        let months = mask(&values(months, &MONTHS, (1, 12), 0)?);
        let year_list = values(years, &[], (1970, 2199), 1970)?;
        let years = (
            mask(
                &year_list
                    .iter()
                    .copied()
                    .filter(|y| *y < 128)
                    .collect::<Vec<_>>(),
            ),
            mask(
                &year_list
                    .iter()
                    .filter(|y| **y >= 128)
                    .map(|y| y - 128)
                    .collect::<Vec<_>>(),
            ),
        );
        let days = match days {
            "?" => Days::Any,
            "L" | "l" => Days::Last,
            d if d.ends_with(['W', 'w']) => {
                Days::NearestWeekday(value(&d[..d.len() - 1], &[], (1, 31))?)
            }
            d => Days::Listed(mask(&values(d, &[], (1, 31), 0)?)),
        };
        let weekdays = match weekdays {
            "?" => Weekdays::Any,
            w if w.ends_with(['L', 'l']) && w.len() > 1 => {
                Weekdays::Last(value(&w[..w.len() - 1], &WEEKDAYS, (1, 7))?)
            }
            w if w.contains('#') => {
                let (day, nth) = w.split_once('#').unwrap_or((w, ""));
                let nth: u32 = nth.parse().map_err(|_| bad(w, "a bad #"))?;
                if !(1..=5).contains(&nth) {
                    return Err(bad(w, "# must be 1 to 5"));
                }
                Weekdays::Nth(value(day, &WEEKDAYS, (1, 7))?, nth)
            }
            w => Weekdays::Listed(mask(&values(w, &WEEKDAYS, (1, 7), 0)?)),
        };
        match (&days, &weekdays) {
            (Days::Any, Weekdays::Any) => {
                return Err(ExpressionError::Invalid(
                    "cron: only one of day-of-month and day-of-week may be '?'".into(),
                ))
            }
            (Days::Any, _) | (_, Weekdays::Any) => {}
            _ => {
                return Err(ExpressionError::Invalid(
                    "cron: one of day-of-month and day-of-week must be '?'".into(),
                ))
            }
        }
        Ok(Cron {
            minutes,
            hours,
            days,
            months,
            weekdays,
            years,
        })
    }

    /// Whether the cron fires on `date` (some time of that day).
    pub fn matches_date(&self, date: NaiveDate) -> bool {
        let year = date.year();
        if !(1970..=2199).contains(&year) {
            return false;
        }
        let offset = (year - 1970) as u32;
        let year_ok = if offset < 128 {
            self.years.0.has(offset)
        } else {
            self.years.1.has(offset - 128)
        };
        if !year_ok || !self.months.has(date.month()) {
            return false;
        }
        let last = last_day(date);
        let day_ok = match &self.days {
            Days::Any => true,
            Days::Listed(days) => days.has(date.day()),
            Days::Last => date.day() == last,
            Days::NearestWeekday(n) => date.day() == nearest_weekday(date, *n, last),
        };
        let weekday = date.weekday().num_days_from_sunday() + 1;
        let weekday_ok = match &self.weekdays {
            Weekdays::Any => true,
            Weekdays::Listed(days) => days.has(weekday),
            Weekdays::Last(d) => weekday == *d && date.day() + 7 > last,
            Weekdays::Nth(d, n) => weekday == *d && (date.day() - 1) / 7 + 1 == *n,
        };
        day_ok && weekday_ok
    }

    /// The hours and minutes of a day it fires at, in order.
    pub fn times(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        (0..24).filter(|h| self.hours.has(*h)).flat_map(move |h| {
            (0..60)
                .filter(|m| self.minutes.has(*m))
                .map(move |m| (h, m))
        })
    }
}

fn last_day(date: NaiveDate) -> u32 {
    let (y, m) = (date.year(), date.month());
    let next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    next.and_then(|d| d.pred_opt()).map_or(28, |d| d.day())
}

/// The weekday nearest day `n` of `date`'s month, not leaving the month.
fn nearest_weekday(date: NaiveDate, n: u32, last: u32) -> u32 {
    let n = n.min(last);
    let Some(day) = date.with_day(n) else {
        return n;
    };
    match day.weekday() {
        Weekday::Sat if n == 1 => 3,
        Weekday::Sat => n - 1,
        Weekday::Sun if n == last => n - 2,
        Weekday::Sun => n + 1,
        _ => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn fields_parse_with_lists_ranges_steps_and_names() {
        let cron = Cron::parse("0/15 8-10 ? JAN-MAR MON-FRI *").unwrap();
        let times: Vec<_> = cron.times().collect();
        assert_eq!(times.len(), 12);
        assert_eq!(times[0], (8, 0));
        assert_eq!(times[11], (10, 45));
        // 2025-01-06 is a Monday; 2025-01-05 a Sunday; April is out.
        assert!(cron.matches_date(date(2025, 1, 6)));
        assert!(!cron.matches_date(date(2025, 1, 5)));
        assert!(!cron.matches_date(date(2025, 4, 7)));
    }

    #[test]
    fn last_nearest_and_nth_days() {
        let last = Cron::parse("0 12 L * ? *").unwrap();
        assert!(last.matches_date(date(2024, 2, 29)));
        assert!(!last.matches_date(date(2024, 2, 28)));
        // 2025-03-15 is a Saturday: the nearest weekday is Friday the 14th.
        let nearest = Cron::parse("0 12 15W * ? *").unwrap();
        assert!(nearest.matches_date(date(2025, 3, 14)));
        assert!(!nearest.matches_date(date(2025, 3, 15)));
        // The third Friday of June 2025 is the 20th; the last Friday the 27th.
        let third = Cron::parse("0 12 ? * 6#3 *").unwrap();
        assert!(third.matches_date(date(2025, 6, 20)));
        assert!(!third.matches_date(date(2025, 6, 13)));
        let last_friday = Cron::parse("0 12 ? * 6L *").unwrap();
        assert!(last_friday.matches_date(date(2025, 6, 27)));
        assert!(!last_friday.matches_date(date(2025, 6, 20)));
        let year = Cron::parse("0 0 1 1 ? 2030").unwrap();
        assert!(year.matches_date(date(2030, 1, 1)));
        assert!(!year.matches_date(date(2031, 1, 1)));
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for bad in [
            "0 12 * * *",
            "0 12 ? * ? *",
            "0 12 1 * MON *",
            "60 12 ? * MON *",
            "0 24 ? * MON *",
            "0 12 ? * 8 *",
            "0 12 ? * MON 1969",
            "0/0 12 ? * MON *",
            "5-1 12 ? * MON *",
            "0 12 ? * 6#6 *",
            "x 12 ? * MON *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }
}

//! Calendar dates from day numbers and back (proleptic Gregorian, UTC),
//! after Howard Hinnant's `civil_from_days` and `days_from_civil`: what the
//! host needs to write Lambda's timestamps and log stream names without a
//! date library.
//!
//! ```
//! use mayfly_proto::date::{civil_from_days, days_from_civil};
//! assert_eq!(civil_from_days(0), (1970, 1, 1));
//! assert_eq!(civil_from_days(11_016), (2000, 2, 29));
//! assert_eq!(days_from_civil(2024, 1, 1), 19_723);
//! ```

/// Days since 1970-01-01 to (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01: the inverse of
/// [`civil_from_days`].
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDThh:mm:ss.sss` followed by `zone` (`+0000` as Lambda writes
/// `LastModified`, `Z` in RFC 3339) to milliseconds since the Unix epoch;
/// `None` if the text is not in that form.
///
/// ```
/// use mayfly_proto::date::parse_utc_ms;
/// assert_eq!(parse_utc_ms("1970-01-02T00:00:01.250Z", "Z"), Some(86_401_250));
/// assert_eq!(parse_utc_ms("1970-01-02T00:00:01.250Z", "+0000"), None);
/// ```
pub fn parse_utc_ms(text: &str, zone: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 23 + zone.len()
        || text.get(23..) != Some(zone)
        || b[4] != b'-'
        || b[10] != b'T'
        || b[19] != b'.'
    {
        return None;
    }
    let num = |range: core::ops::Range<usize>| text.get(range)?.parse::<u64>().ok();
    let (y, m, d) = (num(0..4)? as i64, num(5..7)? as u32, num(8..10)? as u32);
    let (hh, mm, ss, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    let days = u64::try_from(days_from_civil(y, m, d)).ok()?;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        let mut previous = civil_from_days(-1);
        for day in 0..146_097 {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
            assert!((y, m, d) > previous);
            previous = (y, m, d);
        }
    }
}

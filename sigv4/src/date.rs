//! Timestamps in the two forms SigV4 uses: the ISO 8601 basic form of
//! `X-Amz-Date` (`20150830T123600Z`) and the HTTP `Date` header form
//! (IMF-fixdate, `Sun, 30 Aug 2015 12:36:00 GMT`).
//!
//! Only UTC and only what SigV4 needs; no calendar crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, or `None` before 1970 or after year 9999.
pub(crate) fn unix_seconds(time: SystemTime) -> Option<i64> {
    let secs = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    // 253402300799 = 9999-12-31T23:59:59Z, the last time a 4-digit year holds.
    if secs > 253_402_300_799 {
        return None;
    }
    i64::try_from(secs).ok()
}

/// The [`SystemTime`] for whole seconds since the Unix epoch.
pub(crate) fn from_unix_seconds(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.max(0).unsigned_abs())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn seconds_from_fields(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || d == 0
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || s > 59
    {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s))
}

/// Formats seconds since the epoch as `YYYYMMDDTHHMMSSZ`.
pub(crate) fn format_amz_date(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `YYYYMMDDTHHMMSSZ` (exactly 16 characters) into seconds since the epoch.
pub(crate) fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' || !s.is_ascii() {
        return None;
    }
    seconds_from_fields(
        i64::from(digits(&s[0..4])?),
        digits(&s[4..6])?,
        digits(&s[6..8])?,
        digits(&s[9..11])?,
        digits(&s[11..13])?,
        digits(&s[13..15])?,
    )
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses an HTTP date in IMF-fixdate form (`Sun, 30 Aug 2015 12:36:00 GMT`),
/// or with a numeric zero offset as botocore writes it when it signs with a
/// `Date` header (`Mon, 15 Jan 2024 10:30:00 -0000`, Python's
/// `email.utils.formatdate`). The weekday is accepted as written and not
/// cross-checked.
pub(crate) fn parse_http_date(s: &str) -> Option<i64> {
    let (_weekday, rest) = s.trim().split_once(", ")?;
    let mut parts = rest.split(' ');
    let day = digits(parts.next()?)?;
    let month_name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? as u32 + 1;
    let year = digits(parts.next()?)?;
    let clock = parts.next()?;
    let zone = parts.next()?;
    if !matches!(zone, "GMT" | "UTC" | "+0000" | "-0000") || parts.next().is_some() {
        return None;
    }
    let mut hms = clock.split(':');
    let (h, mi, sec) = (
        digits(hms.next()?)?,
        digits(hms.next()?)?,
        digits(hms.next()?)?,
    );
    if hms.next().is_some() {
        return None;
    }
    seconds_from_fields(i64::from(year), month, day, h, mi, sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_amz_dates() {
        assert_eq!(format_amz_date(0), "19700101T000000Z");
        assert_eq!(format_amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("20240229T235959Z"), Some(1_709_251_199));
        for secs in [
            0,
            951_782_400,
            1_709_251_199,
            4_102_444_800,
            253_402_300_799,
        ] {
            assert_eq!(parse_amz_date(&format_amz_date(secs)), Some(secs));
        }
    }

    #[test]
    fn rejects_malformed_amz_dates() {
        for bad in [
            "",
            "20150830",
            "20150830T123600",
            "20150830 123600Z",
            "2015-08-30T12:36:00Z",
            "20230229T000000Z",
            "20151301T000000Z",
            "20150830T246000Z",
            "+0150830T123600Z",
            "19691231T235959Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_http_dates() {
        assert_eq!(
            parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT"),
            Some(1_440_938_160)
        );
        assert_eq!(
            parse_http_date("Mon, 15 Jan 2024 10:30:00 -0000"),
            Some(1_705_314_600)
        );
        assert_eq!(parse_http_date("Sun, 30 Aug 2015 12:36:00 +0100"), None);
        assert_eq!(parse_http_date("Sunday, 30-Aug-15 12:36:00 GMT"), None);
        assert_eq!(parse_http_date("Sun, 31 Sep 2015 12:36:00 GMT"), None);
    }

    #[test]
    fn system_time_bounds() {
        assert_eq!(unix_seconds(UNIX_EPOCH), Some(0));
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(1)), None);
        assert_eq!(
            unix_seconds(from_unix_seconds(1_440_938_160)),
            Some(1_440_938_160)
        );
    }
}

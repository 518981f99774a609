//! Timestamps as Lambda writes them: `2024-01-01T00:00:00.000+0000`.

use std::time::{SystemTime, UNIX_EPOCH};

use mayfly_proto::date::civil_from_days;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Formats milliseconds since the Unix epoch the way Lambda formats
/// `LastModified`: `YYYY-MM-DDThh:mm:ss.sss+0000` (UTC).
pub fn format_timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let millis = ms % 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}+0000",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// The same instant in RFC 3339 with a `Z` (`2026-01-02T03:04:05.678Z`), as
/// Lambda writes timestamps in JSON documents it sends.
pub fn format_rfc3339(ms: u64) -> String {
    let text = format_timestamp(ms);
    match text.strip_suffix("+0000") {
        Some(local) => format!("{local}Z"),
        None => text,
    }
}

/// Reads a timestamp written by [`format_timestamp`] back into
/// milliseconds since the Unix epoch; `None` if it is not in that form.
pub fn parse_timestamp_ms(text: &str) -> Option<u64> {
    mayfly_proto::date::parse_utc_ms(text, "+0000")
}

/// The current time formatted by [`format_timestamp`].
pub(crate) fn now_timestamp() -> String {
    format_timestamp(now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_formats() {
        for ms in [0, 1_704_067_200_000, 1_709_251_199_999, 4_102_444_800_123] {
            assert_eq!(parse_timestamp_ms(&format_timestamp(ms)), Some(ms));
        }
        assert_eq!(parse_timestamp_ms("2024-01-01T00:00:00Z"), None);
    }

    #[test]
    fn formats_like_lambda() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(
            format_timestamp(1_704_067_200_000),
            "2024-01-01T00:00:00.000+0000"
        );
        // 2024-02-29T23:59:59.999Z (a leap day)
        assert_eq!(
            format_timestamp(1_709_251_199_999),
            "2024-02-29T23:59:59.999+0000"
        );
        assert_eq!(
            format_timestamp(951_782_400_123),
            "2000-02-29T00:00:00.123+0000"
        );
    }
}

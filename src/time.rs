//! UTC timestamps as text: the one spelling of a millisecond instant that every report, log
//! line and error uses. Parsing the pipeline's time words lives in [`crate::config::time`].

use chrono::DateTime;

/// `2024-01-01T00:00:00.000Z` (always with milliseconds): reports and logs.
pub fn fmt_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    )
}

/// `2024-01-01T00:00:00Z`, with milliseconds only when they are not zero: plans and messages.
pub fn format_utc(ms: i64) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(t) if ms % 1000 == 0 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => format!("{ms}ms"),
    }
}

/// An RFC 3339 instant (as the reports write them) back to epoch milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        let ms = 1_704_067_200_123;
        assert_eq!(fmt_ms(ms), "2024-01-01T00:00:00.123Z");
        assert_eq!(parse_rfc3339_ms(&fmt_ms(ms)), Some(ms));
        assert_eq!(format_utc(1_704_067_200_000), "2024-01-01T00:00:00Z");
        assert_eq!(format_utc(ms), "2024-01-01T00:00:00.123Z");
        assert_eq!(parse_rfc3339_ms("not a time"), None);
    }
}

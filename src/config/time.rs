//! Time expressions as written in pipeline files and on the command line (`--from`, `--to`).
//!
//! Accepted forms:
//! - an ISO date, `2020-07-05`: 00:00 UTC that day; also written as the notebook does,
//!   `5 July 2020` or `5 Jul 2020` (day, English month name, year);
//! - an ISO datetime with `Z` or an offset: `2024-01-01T12:00:00Z`, `2024-01-01T12:00:00+02:00`
//!   (fractional seconds allowed, a space instead of `T` too);
//! - epoch milliseconds, `1593907200000` (values below `100000000000`, i.e. before 1973, are
//!   rejected as probably being epoch *seconds*);
//! - `now`, `today` (00:00 UTC of the current day), `yesterday` (00:00 UTC of the day before);
//! - `N <unit> ago` with unit `minute(s)`/`min(s)`, `hour(s)`, `day(s)`, `week(s)`.
//!
//! A datetime without `Z` or an offset is rejected: which time zone was meant is a guess, and
//! guessing local time is the classic cause of off-by-hours data. Append `Z` for UTC.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use crate::config::model::TimeSpec;
use crate::interval::{DAY_MS, HOUR_MS, MINUTE_MS, WEEK_MS};

/// Epoch-millisecond values below this are taken for epoch seconds and rejected (1973-03-03).
pub const MIN_EPOCH_MS: i64 = 100_000_000_000;

/// The latest instant accepted (9999-12-31T23:59:59.999Z).
pub const MAX_EPOCH_MS: i64 = 253_402_300_799_999;

/// Why a time expression was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// A datetime without time zone.
    #[error(
        "datetime `{input}` has no time zone; write `{input}Z` for UTC or add an offset such as `+02:00`"
    )]
    Naive {
        /// What was given.
        input: String,
    },
    /// A number too small to be epoch milliseconds.
    #[error(
        "`{input}` looks like epoch seconds, not milliseconds; write `{input}000` for epoch milliseconds"
    )]
    EpochSeconds {
        /// What was given.
        input: String,
    },
    /// An instant outside 1970..=9999.
    #[error("time `{input}` is out of range; expected a time between 1970 and 9999")]
    OutOfRange {
        /// What was given.
        input: String,
    },
    /// An `N <unit> ago` with a bad number or unit.
    #[error(
        "cannot read `{input}` as a relative time; expected `N minutes|hours|days|weeks ago` with N a whole number, such as `3 days ago`"
    )]
    BadRelative {
        /// What was given.
        input: String,
    },
    /// Nothing matched.
    #[error(
        "cannot read `{input}` as a time; expected an ISO date (`2020-07-05` or `5 July 2020`), an ISO datetime with `Z` or an offset (`2024-01-01T00:00:00Z`), epoch milliseconds, `now`, `today`, `yesterday` or `N days ago`"
    )]
    Unparsable {
        /// What was given.
        input: String,
    },
}

/// Parse a time expression (see the module docs for the accepted forms).
pub fn parse_time(input: &str) -> Result<TimeSpec, TimeError> {
    let s = input.trim();
    let shown = || s.escape_debug().to_string();
    match s {
        "now" => return Ok(TimeSpec::Now),
        "today" => return Ok(TimeSpec::Today),
        "yesterday" => return Ok(TimeSpec::Yesterday),
        _ => {}
    }
    if let Some(rest) = s.strip_suffix(" ago") {
        return parse_ago(rest).ok_or_else(|| TimeError::BadRelative { input: shown() });
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = s
            .parse()
            .map_err(|_| TimeError::OutOfRange { input: shown() })?;
        if ms < MIN_EPOCH_MS {
            return Err(TimeError::EpochSeconds { input: shown() });
        }
        return at(ms, s);
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%d %B %Y"));
    if let Ok(d) = date {
        let ms = d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis())
            .ok_or_else(|| TimeError::OutOfRange { input: shown() })?;
        return at(ms, s);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return at(t.timestamp_millis(), s);
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if NaiveDateTime::parse_from_str(s, f).is_ok() {
            return Err(TimeError::Naive { input: shown() });
        }
    }
    // A datetime with only hours and minutes but a zone: `2024-01-01T12:00Z`.
    if let Some(base) = s.strip_suffix('Z')
        && let Ok(t) = NaiveDateTime::parse_from_str(base, "%Y-%m-%dT%H:%M")
    {
        return at(t.and_utc().timestamp_millis(), s);
    }
    Err(TimeError::Unparsable { input: shown() })
}

fn at(ms: i64, s: &str) -> Result<TimeSpec, TimeError> {
    if (0..=MAX_EPOCH_MS).contains(&ms) {
        Ok(TimeSpec::At(ms))
    } else {
        Err(TimeError::OutOfRange {
            input: s.escape_debug().to_string(),
        })
    }
}

/// `N <unit>` (the part before ` ago`).
fn parse_ago(rest: &str) -> Option<TimeSpec> {
    let mut parts = rest.split_whitespace();
    let n: i64 = parts.next()?.parse().ok()?;
    let unit = parts.next()?;
    if parts.next().is_some() || n < 0 {
        return None;
    }
    let len = match unit {
        "minute" | "minutes" | "min" | "mins" => MINUTE_MS,
        "hour" | "hours" => HOUR_MS,
        "day" | "days" => DAY_MS,
        "week" | "weeks" => WEEK_MS,
        _ => return None,
    };
    let ms = n.checked_mul(len)?;
    (ms <= MAX_EPOCH_MS).then_some(TimeSpec::Ago(ms))
}

/// Whether `start < end` can be decided without knowing "now", and if so, whether it holds.
/// Absolute times compare directly; `now` and `N ago` compare among themselves.
pub fn ordered(start: TimeSpec, end: TimeSpec) -> Option<bool> {
    let rel = |t: TimeSpec| match t {
        TimeSpec::Now => Some(0),
        TimeSpec::Ago(d) => Some(d),
        _ => None,
    };
    match (start, end) {
        (TimeSpec::At(a), TimeSpec::At(b)) => Some(a < b),
        _ => match (rel(start), rel(end)) {
            (Some(a), Some(b)) => Some(a > b),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn absolute_forms() {
        let d = ms("2020-07-05T00:00:00Z");
        assert_eq!(parse_time("2020-07-05"), Ok(TimeSpec::At(d)));
        assert_eq!(parse_time("5 July 2020"), Ok(TimeSpec::At(d)));
        assert_eq!(parse_time("5 Jul 2020"), Ok(TimeSpec::At(d)));
        assert_eq!(parse_time("05 july 2020"), Ok(TimeSpec::At(d)));
        assert_eq!(parse_time("2020-07-05T00:00:00Z"), Ok(TimeSpec::At(d)));
        assert_eq!(parse_time("2020-07-05T02:00:00+02:00"), Ok(TimeSpec::At(d)));
        assert_eq!(parse_time("2020-07-05 00:00:00Z"), Ok(TimeSpec::At(d)));
        assert_eq!(parse_time("2020-07-05T00:00Z"), Ok(TimeSpec::At(d)));
        assert_eq!(
            parse_time("2020-07-05T00:00:00.250Z"),
            Ok(TimeSpec::At(d + 250))
        );
        assert_eq!(parse_time("1593907200000"), Ok(TimeSpec::At(d)));
        assert_eq!(parse_time(" 2020-07-05 "), Ok(TimeSpec::At(d)));
    }

    #[test]
    fn relative_forms() {
        assert_eq!(parse_time("now"), Ok(TimeSpec::Now));
        assert_eq!(parse_time("today"), Ok(TimeSpec::Today));
        assert_eq!(parse_time("yesterday"), Ok(TimeSpec::Yesterday));
        assert_eq!(parse_time("3 days ago"), Ok(TimeSpec::Ago(3 * DAY_MS)));
        assert_eq!(parse_time("1 day ago"), Ok(TimeSpec::Ago(DAY_MS)));
        assert_eq!(parse_time("2 hours ago"), Ok(TimeSpec::Ago(2 * HOUR_MS)));
        assert_eq!(
            parse_time("90 minutes ago"),
            Ok(TimeSpec::Ago(90 * MINUTE_MS))
        );
        assert_eq!(parse_time("5 mins ago"), Ok(TimeSpec::Ago(5 * MINUTE_MS)));
        assert_eq!(parse_time("2 weeks ago"), Ok(TimeSpec::Ago(2 * WEEK_MS)));
        assert_eq!(parse_time("0 days ago"), Ok(TimeSpec::Ago(0)));
    }

    #[test]
    fn naive_datetimes_are_rejected_with_a_hint() {
        for s in [
            "2024-01-01T12:00:00",
            "2024-01-01 12:00:00",
            "2024-01-01T12:00",
        ] {
            let e = parse_time(s).unwrap_err();
            assert!(matches!(e, TimeError::Naive { .. }), "{s}: {e}");
            assert!(e.to_string().contains(&format!("`{s}Z`")), "{e}");
        }
    }

    #[test]
    fn garbage_is_rejected() {
        for s in [
            "",
            "tomorrow",
            "2024-13-01",
            "2024-02-30",
            "07/05/2020",
            "-5 days ago",
            "3 fortnights ago",
            "three days ago",
            "3 days",
            "Now",
            "1e12",
            "99999999999999999999999",
        ] {
            assert!(parse_time(s).is_err(), "{s:?} should not parse");
        }
        assert!(matches!(
            parse_time("1593907200"),
            Err(TimeError::EpochSeconds { .. })
        ));
        assert!(matches!(
            parse_time("1969-12-31"),
            Err(TimeError::OutOfRange { .. })
        ));
    }

    #[test]
    fn ordering_is_known_only_when_now_does_not_matter() {
        assert_eq!(ordered(TimeSpec::At(1), TimeSpec::At(2)), Some(true));
        assert_eq!(ordered(TimeSpec::At(2), TimeSpec::At(2)), Some(false));
        assert_eq!(ordered(TimeSpec::Ago(5), TimeSpec::Now), Some(true));
        assert_eq!(ordered(TimeSpec::Ago(5), TimeSpec::Ago(7)), Some(false));
        assert_eq!(ordered(TimeSpec::At(2), TimeSpec::Now), None);
        assert_eq!(ordered(TimeSpec::Today, TimeSpec::Yesterday), None);
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(t in 0i64..MAX_EPOCH_MS) {
            let dt = DateTime::from_timestamp_millis(t).unwrap();
            let s = dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            prop_assert_eq!(parse_time(&s), Ok(TimeSpec::At(t)));
        }

        #[test]
        fn epoch_ms_round_trips(t in MIN_EPOCH_MS..MAX_EPOCH_MS) {
            prop_assert_eq!(parse_time(&t.to_string()), Ok(TimeSpec::At(t)));
        }

        #[test]
        fn dates_are_utc_midnight(days in 0i64..2_900_000) {
            let t = days * DAY_MS;
            let s = DateTime::from_timestamp_millis(t).unwrap().format("%Y-%m-%d").to_string();
            prop_assert_eq!(parse_time(&s), Ok(TimeSpec::At(t)));
        }

        #[test]
        fn ago_is_n_units(n in 0i64..100_000, u in 0usize..4) {
            let (name, len) = [("minutes", MINUTE_MS), ("hours", HOUR_MS), ("days", DAY_MS), ("weeks", WEEK_MS)][u];
            prop_assert_eq!(parse_time(&format!("{n} {name} ago")), Ok(TimeSpec::Ago(n * len)));
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse_time(&s);
        }
    }
}

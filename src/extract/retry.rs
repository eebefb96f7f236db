//! The retry policy as data: a pure classification of an exchange reply (ok, retry after a
//! delay, rate-limited, banned until an instant, fatal) and the full-jitter backoff schedule
//! that `backon` drives. No I/O here: the client feeds in status, headers and body, and the
//! pager acts on the [`Verdict`].

use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Why a request is being retried; also the key of the "retries by cause" metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryCause {
    /// HTTP 5xx (or 408, futures' backend timeout).
    Server,
    /// The request timed out.
    Timeout,
    /// The connection failed or was reset.
    Connection,
    /// The body was truncated, not JSON, or failed validation (wrong fields, unsorted rows).
    BadBody,
    /// HTTP 429: too much weight; waited out `Retry-After`.
    RateLimited,
    /// The page held malformed rows (off the grid, close time outside the candle).
    InvalidRow,
    /// An empty page where the exchange has candles after it.
    EmptyReply,
}

impl RetryCause {
    /// Every cause, in metrics order.
    pub const ALL: [RetryCause; 7] = [
        RetryCause::Server,
        RetryCause::Timeout,
        RetryCause::Connection,
        RetryCause::BadBody,
        RetryCause::RateLimited,
        RetryCause::InvalidRow,
        RetryCause::EmptyReply,
    ];

    /// A short machine-friendly name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryCause::Server => "server",
            RetryCause::Timeout => "timeout",
            RetryCause::Connection => "connection",
            RetryCause::BadBody => "bad_body",
            RetryCause::RateLimited => "rate_limited",
            RetryCause::InvalidRow => "invalid_row",
            RetryCause::EmptyReply => "empty_reply",
        }
    }

    /// Index into per-cause counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What to do with a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: use the body.
    Ok,
    /// Transient failure: retry with backoff (counts against `max_retries`).
    Retry(RetryCause),
    /// 429: stop sending until `retry_after_ms` has passed, shrink our share, then retry.
    RateLimited {
        /// How long the exchange asks us to wait (from `Retry-After`, seconds).
        retry_after_ms: u64,
    },
    /// 418: the IP is banned until `until_ms` (exchange clock, ms since the epoch).
    Banned {
        /// End of the ban.
        until_ms: i64,
    },
    /// Not worth retrying (4xx with an exchange error code, 404, 451 ...).
    Fatal {
        /// HTTP status.
        status: u16,
        /// The exchange's error code, when the body carried one (`-1121`).
        code: Option<i64>,
        /// The exchange's message, or a short description of the reply.
        msg: String,
    },
}

/// The `Retry-After` used when a 429 arrives without one: wait for the rest of a typical
/// minute window is too long to guess, so a few seconds, after which the budget's own window
/// accounting takes over.
pub const DEFAULT_RETRY_AFTER_MS: u64 = 5_000;

/// Classify a reply from its status, `Retry-After` header and body. `now_ms` is the exchange's
/// clock, used to turn a 418's relative `Retry-After` into an absolute ban end.
pub fn classify(status: u16, retry_after: Option<&str>, body: &[u8], now_ms: i64) -> Verdict {
    let retry_after_ms = retry_after
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|s| s.saturating_mul(1000));
    match status {
        // `{"code":-1003,"msg":...}` with a 2xx is the exchange's error all the same (a proxy
        // or an overloaded gateway can send one): retried, its message kept.
        200..=299 if exchange_error(body).is_some() => Verdict::Retry(RetryCause::BadBody),
        200..=299 => Verdict::Ok,
        429 => Verdict::RateLimited {
            retry_after_ms: retry_after_ms.unwrap_or(DEFAULT_RETRY_AFTER_MS),
        },
        418 => {
            // Prefer Retry-After (documented, seconds); fall back to the "banned until %s"
            // epoch in the message; then to the shortest documented ban (2 minutes).
            let until = match retry_after_ms {
                Some(ms) => now_ms.saturating_add(ms as i64),
                None => ban_until_from_body(body).unwrap_or(now_ms + 120_000),
            };
            Verdict::Banned { until_ms: until }
        }
        408 | 500..=599 => Verdict::Retry(RetryCause::Server),
        _ => {
            let (code, msg) = match error_body(body) {
                Some((c, m)) => (Some(c), m),
                None => (None, format!("http status {status}")),
            };
            Verdict::Fatal { status, code, msg }
        }
    }
}

/// `{"code": -1121, "msg": "Invalid symbol."}` → `(-1121, "Invalid symbol.")`.
pub fn error_body(body: &[u8]) -> Option<(i64, String)> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        code: i64,
        #[serde(default)]
        msg: String,
    }
    let e: ErrorBody = serde_json::from_slice(body).ok()?;
    Some((e.code, e.msg))
}

/// The exchange's error object (`{"code": ..., "msg": ...}`) when the body is one. Cheap for
/// data: only a body starting with `{` is parsed.
pub fn exchange_error(body: &[u8]) -> Option<(i64, String)> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    error_body(body)
}

/// `http 503` plus the exchange's error when the body carries one:
/// `http 200, exchange error -1003: Too many requests queued.`.
pub fn describe_reply(status: u16, body: &[u8]) -> String {
    match exchange_error(body) {
        Some((code, msg)) => format!("http {status}, exchange error {code}: {msg}"),
        None => format!("http {status}"),
    }
}

/// The epoch-ms in "IP banned until 1659146400000." messages.
fn ban_until_from_body(body: &[u8]) -> Option<i64> {
    let (_, msg) = error_body(body)?;
    let rest = &msg[msg.find("until ")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The backoff policy: full jitter (uniform in `[0, min(cap, base * 2^attempt)]`) with a cap
/// and a retry limit.
///
/// Full jitter spreads the retries of many workers hit by the same outage, so they do not
/// return in lockstep; the cap keeps one bad window from stalling a task for minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The first retry's upper bound.
    pub base: Duration,
    /// The largest upper bound any retry uses.
    pub cap: Duration,
    /// Retries after the first attempt before giving up.
    pub max_retries: u32,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
            max_retries: 5,
        }
    }
}

impl BackoffPolicy {
    /// The upper bound of the delay before retry number `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before retry number `attempt` given a uniform sample `unit` in `[0, 1)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The schedule as a `backon` builder, seeded so tests are reproducible.
    pub fn jittered(&self, seed: u64) -> FullJitter {
        FullJitter {
            policy: *self,
            attempt: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

/// A full-jitter backoff iterator; `backon` accepts any `Iterator<Item = Duration>`.
#[derive(Debug, Clone)]
pub struct FullJitter {
    policy: BackoffPolicy,
    attempt: u32,
    rng: ChaCha8Rng,
}

impl Iterator for FullJitter {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.attempt >= self.policy.max_retries {
            return None;
        }
        let d = self.policy.delay(self.attempt, self.rng.random::<f64>());
        self.attempt += 1;
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_success_and_transient_failures() {
        assert_eq!(classify(200, None, b"[]", 0), Verdict::Ok);
        assert_eq!(classify(200, None, br#"{"serverTime":1}"#, 0), Verdict::Ok);
        let err = br#" {"code":-1003,"msg":"Too many requests queued."}"#;
        assert_eq!(
            classify(200, None, err, 0),
            Verdict::Retry(RetryCause::BadBody)
        );
        assert_eq!(
            describe_reply(200, err),
            "http 200, exchange error -1003: Too many requests queued."
        );
        assert_eq!(describe_reply(502, b"<html>"), "http 502");
        assert_eq!(
            classify(503, None, b"", 0),
            Verdict::Retry(RetryCause::Server)
        );
        assert_eq!(
            classify(500, None, b"<html>", 0),
            Verdict::Retry(RetryCause::Server)
        );
        assert_eq!(
            classify(408, None, b"", 0),
            Verdict::Retry(RetryCause::Server)
        );
    }

    #[test]
    fn rate_limit_uses_retry_after_seconds() {
        let body = br#"{"code":-1003,"msg":"Too much request weight used"}"#;
        assert_eq!(
            classify(429, Some("7"), body, 0),
            Verdict::RateLimited {
                retry_after_ms: 7_000
            }
        );
        assert_eq!(
            classify(429, None, body, 0),
            Verdict::RateLimited {
                retry_after_ms: DEFAULT_RETRY_AFTER_MS
            }
        );
    }

    #[test]
    fn ban_end_comes_from_retry_after_then_the_message() {
        assert_eq!(
            classify(418, Some("120"), b"", 1_000),
            Verdict::Banned { until_ms: 121_000 }
        );
        let body = br#"{"code":-1003,"msg":"Way too much request weight used; IP banned until 1659146400000. Please use WebSocket Streams"}"#;
        assert_eq!(
            classify(418, None, body, 5),
            Verdict::Banned {
                until_ms: 1_659_146_400_000
            }
        );
        assert_eq!(
            classify(418, None, b"", 5),
            Verdict::Banned { until_ms: 120_005 }
        );
    }

    #[test]
    fn exchange_error_codes_are_fatal_with_code_and_text() {
        let v = classify(400, None, br#"{"code":-1121,"msg":"Invalid symbol."}"#, 0);
        assert_eq!(
            v,
            Verdict::Fatal {
                status: 400,
                code: Some(-1121),
                msg: "Invalid symbol.".into()
            }
        );
        let v = classify(404, None, b"not found", 0);
        assert_eq!(
            v,
            Verdict::Fatal {
                status: 404,
                code: None,
                msg: "http status 404".into()
            }
        );
    }

    #[test]
    fn backoff_is_capped_exponential_with_full_jitter() {
        let p = BackoffPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_retries: 6,
        };
        assert_eq!(p.ceiling(0), Duration::from_millis(100));
        assert_eq!(p.ceiling(3), Duration::from_millis(800));
        assert_eq!(p.ceiling(4), Duration::from_secs(1));
        assert_eq!(p.ceiling(40), Duration::from_secs(1));
        assert_eq!(p.delay(2, 0.5), Duration::from_millis(200));
        assert_eq!(p.delay(2, 0.0), Duration::ZERO);
        let delays: Vec<Duration> = p.jittered(7).collect();
        assert_eq!(delays.len(), 6);
        for (i, d) in delays.iter().enumerate() {
            assert!(*d <= p.ceiling(i as u32), "retry {i}: {d:?}");
        }
        // Reproducible for one seed; different seeds spread.
        assert_eq!(delays, p.jittered(7).collect::<Vec<_>>());
        assert_ne!(delays, p.jittered(8).collect::<Vec<_>>());
    }
}

//! Fault injection for tests: latency (fixed and jittered), 5xx replies, connection resets
//! (before headers or mid-body), truncated and non-JSON (HTML) bodies, slow bodies, forced 429s
//! and 418 bans, either at chosen request numbers or at random with a seed; and the hostile
//! replies of issue 24: a klines row off the interval grid, a row closing before it opens, a
//! row of zero prices, an empty klines page in the middle of history, a `302` redirect to
//! another address, a 429 with a day-long `Retry-After`, an exchange error object with HTTP
//! 200, an implausible used-weight header, and a `/time` clock skewed from the data
//! ([`FaultPlan::time_skew_ms`]).
//!
//! Requests are numbered from 1 in arrival order (the simulator's own `/__sim/` endpoints are
//! not counted). Every decision is a pure function of `(seed, request number)`, so a run with
//! the same seed and the same request order sees the same faults.
//!
//! Weight: 5xx and HTML replies are answered before any work and add no weight; resets,
//! truncated and slow bodies happen after the request was processed and add its weight.

use std::collections::BTreeMap;

use super::data::{mix, unit};

/// One kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// HTTP 500 with `{"code":-1000,...}`.
    InternalError,
    /// HTTP 503 `Service Unavailable.` (futures wording).
    ServiceUnavailable,
    /// Close the connection before sending any header.
    ResetBeforeHeaders,
    /// Send the headers and half of the body, then drop the connection.
    ResetMidBody,
    /// HTTP 200 with the body cut in half (invalid JSON, consistent Content-Length).
    TruncatedBody,
    /// HTTP 502 with an HTML error page, as a proxy would send.
    HtmlBody,
    /// The full body, sent in small chunks with a delay between them.
    SlowBody,
    /// HTTP 429 as if the weight limit were reached.
    TooManyRequests,
    /// HTTP 418: the client is banned (ban lengths grow as for real bans).
    Ban,
    /// A klines reply whose middle row opens 1234 ms after its grid slot (close time moved
    /// with it). Other endpoints are answered normally.
    OffGridRow,
    /// A klines reply whose middle row closes 1 ms before it opens.
    CloseBeforeOpen,
    /// A klines reply whose middle row has open = high = low = close = `0.00000000`.
    ZeroPriceRow,
    /// A klines reply of `[]` (HTTP 200), as if the exchange had no candles there.
    EmptyPage,
    /// HTTP 302 to [`FaultPlan::redirect_to`] (same path and query); a 502 when unset.
    Redirect,
    /// HTTP 429 with `Retry-After: 86400` (a day).
    HugeRetryAfter,
    /// HTTP 200 with the body `{"code":-1003,"msg":"Too many requests queued."}`.
    JsonErrorOk,
    /// The normal reply with a used-weight header of 999999.
    HugeWeightHeader,
}

impl FaultKind {
    /// The name used in stats (`internal_error`, `reset_before_headers`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::InternalError => "internal_error",
            FaultKind::ServiceUnavailable => "service_unavailable",
            FaultKind::ResetBeforeHeaders => "reset_before_headers",
            FaultKind::ResetMidBody => "reset_mid_body",
            FaultKind::TruncatedBody => "truncated_body",
            FaultKind::HtmlBody => "html_body",
            FaultKind::SlowBody => "slow_body",
            FaultKind::TooManyRequests => "too_many_requests",
            FaultKind::Ban => "ban",
            FaultKind::OffGridRow => "off_grid_row",
            FaultKind::CloseBeforeOpen => "close_before_open",
            FaultKind::ZeroPriceRow => "zero_price_row",
            FaultKind::EmptyPage => "empty_page",
            FaultKind::Redirect => "redirect",
            FaultKind::HugeRetryAfter => "huge_retry_after",
            FaultKind::JsonErrorOk => "json_error_ok",
            FaultKind::HugeWeightHeader => "huge_weight_header",
        }
    }
}

/// Added latency per request: `fixed_ms` plus a uniform `[0, jitter_ms]` drawn from the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    /// Always added.
    pub fixed_ms: u64,
    /// Upper bound of the random part.
    pub jitter_ms: u64,
}

/// The faults of one run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultPlan {
    /// Seed of the random decisions (latency jitter and random faults).
    pub seed: u64,
    /// Latency added to every request.
    pub latency: Latency,
    /// Faults at chosen request numbers (1-based).
    pub at: BTreeMap<u64, FaultKind>,
    /// Faults at random: each request gets at most one, kind `k` with probability `p`.
    pub random: Vec<(FaultKind, f64)>,
    /// Delay between the chunks of a slow body.
    pub slow_chunk_delay_ms: u64,
    /// Where [`FaultKind::Redirect`] points (`http://host:port`, no path).
    pub redirect_to: Option<String>,
    /// Added to the time `/time` (and `exchangeInfo.serverTime`) answers, never to the data:
    /// an exchange clock running ahead (positive) or behind the candles it serves.
    pub time_skew_ms: i64,
}

impl FaultPlan {
    /// No faults and no latency.
    pub fn none() -> Self {
        Self::default()
    }

    /// Add a fault at request number `n` (1-based).
    #[must_use]
    pub fn at(mut self, n: u64, kind: FaultKind) -> Self {
        self.at.insert(n, kind);
        self
    }

    /// Add a random fault of `kind` with probability `p` per request.
    #[must_use]
    pub fn random(mut self, kind: FaultKind, p: f64) -> Self {
        self.random.push((kind, p));
        self
    }

    /// Answer [`FaultKind::Redirect`] with a `302` to `url` (`http://host:port`).
    #[must_use]
    pub fn redirect_to(mut self, url: impl Into<String>) -> Self {
        self.redirect_to = Some(url.into());
        self
    }

    /// Skew the clock `/time` reports by `ms` (see [`FaultPlan::time_skew_ms`]).
    #[must_use]
    pub fn skew_clock(mut self, ms: i64) -> Self {
        self.time_skew_ms = ms;
        self
    }

    /// The fault for request `n`, if any.
    pub fn fault_for(&self, n: u64) -> Option<FaultKind> {
        if let Some(k) = self.at.get(&n) {
            return Some(*k);
        }
        if self.random.is_empty() {
            return None;
        }
        let u = unit(mix(self.seed ^ mix(n ^ 0xFA17)));
        let mut acc = 0.0;
        for (kind, p) in &self.random {
            acc += p;
            if u < acc {
                return Some(*kind);
            }
        }
        None
    }

    /// The latency for request `n`, in ms.
    pub fn latency_for(&self, n: u64) -> u64 {
        let Latency {
            fixed_ms,
            jitter_ms,
        } = self.latency;
        if jitter_ms == 0 {
            return fixed_ms;
        }
        let u = unit(mix(self.seed ^ mix(n ^ 0x1A7E)));
        fixed_ms + (u * (jitter_ms + 1) as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_faults_win_and_random_faults_are_seeded() {
        let plan = FaultPlan {
            seed: 9,
            ..FaultPlan::none()
        }
        .at(3, FaultKind::Ban)
        .random(FaultKind::InternalError, 0.25);
        assert_eq!(plan.fault_for(3), Some(FaultKind::Ban));
        let a: Vec<_> = (1..2000).map(|n| plan.fault_for(n)).collect();
        let b: Vec<_> = (1..2000).map(|n| plan.clone().fault_for(n)).collect();
        assert_eq!(a, b);
        let hits = a.iter().filter(|f| f.is_some()).count();
        assert!((400..600).contains(&hits), "{hits}");
        assert_eq!(FaultPlan::none().fault_for(1), None);
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let plan = FaultPlan {
            latency: Latency {
                fixed_ms: 5,
                jitter_ms: 10,
            },
            ..FaultPlan::none()
        };
        let l: Vec<u64> = (1..500).map(|n| plan.latency_for(n)).collect();
        assert!(l.iter().all(|v| (5..=15).contains(v)));
        assert!(l.iter().any(|v| *v != l[0]));
    }
}

//! Observability for tests: what the simulator served, in-process ([`super::SimHandle::stats`])
//! and as JSON at `GET /__sim/stats`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::market::Market;

/// Weight used in one rate-limit window of one market (all clients together).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowWeight {
    /// The market.
    pub market: Market,
    /// Window start, wall-clock ms.
    pub window_start_ms: i64,
    /// Weight accepted in the window.
    pub weight: u64,
}

/// A snapshot of the simulator's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SimStats {
    /// Requests per path (`/api/v3/klines`, ...; unknown paths under `other`).
    pub requests: BTreeMap<String, u64>,
    /// All requests (excluding `/__sim/`).
    pub requests_total: u64,
    /// Kline rows served.
    pub rows_served: u64,
    /// Weight per window, oldest first.
    pub weight_windows: Vec<WindowWeight>,
    /// The largest weight of any window.
    pub max_window_weight: u64,
    /// HTTP 429 replies sent (limit reached or injected).
    pub sent_429: u64,
    /// HTTP 418 replies sent (bans, injected or earned).
    pub sent_418: u64,
    /// Faults injected, by kind (`reset_mid_body`, ...).
    pub faults: BTreeMap<String, u64>,
}

/// The mutable counters behind [`SimStats`].
#[derive(Debug, Default)]
pub(crate) struct StatsInner {
    pub(crate) requests: BTreeMap<String, u64>,
    pub(crate) rows_served: u64,
    pub(crate) sent_429: u64,
    pub(crate) sent_418: u64,
    pub(crate) faults: BTreeMap<String, u64>,
}

impl StatsInner {
    pub(crate) fn snapshot(&self, history: &[(Market, i64, u64)]) -> SimStats {
        let weight_windows: Vec<WindowWeight> = history
            .iter()
            .map(|&(market, window_start_ms, weight)| WindowWeight {
                market,
                window_start_ms,
                weight,
            })
            .collect();
        SimStats {
            requests: self.requests.clone(),
            requests_total: self.requests.values().sum(),
            rows_served: self.rows_served,
            max_window_weight: weight_windows.iter().map(|w| w.weight).max().unwrap_or(0),
            weight_windows,
            sent_429: self.sent_429,
            sent_418: self.sent_418,
            faults: self.faults.clone(),
        }
    }
}

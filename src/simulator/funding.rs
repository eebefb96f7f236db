//! The simulator's funding-rate history (`/fapi/v1/fundingRate`, `/dapi/v1/fundingRate`):
//! deterministic records per perpetual symbol and the endpoint's own request limit.
//!
//! # Records
//!
//! One record every 8 hours from the first 00:00/08:00/16:00 UTC boundary after the symbol's
//! listing until now (or its delisting), each `fundingTime` 0 to 6 ms past the boundary (as on
//! the exchange, where it is never exactly on the hour). Rates are `0.0001` (the usual
//! interest-only rate) plus a 30-day triangle cycle of ±0.0002 and noise of ±0.00005, so they
//! change sign from time to time; they are exact to 8 decimals. `markPrice` is the close of the
//! simulator's minute candle containing the funding time, with 8 decimals; USDⓈ-M records
//! before 2020-01-01 carry `""` (as old records on the exchange do) and COIN-M records carry no
//! `markPrice` (its documented reply has none). COIN-M symbols without `_PERP` (delivery
//! contracts) have no records (`[]`, as documented).
//!
//! # Choices where the reference is silent
//!
//! - `symbol` is required on both markets (USDⓈ-M without it would mix symbols): `-1102`.
//! - `limit` outside `1..=1000`: `-1130`; default 100. `startTime > endTime`: `-1023`.
//! - Neither `startTime` nor `endTime`: the most recent `limit` records; only `endTime`: the
//!   most recent `limit` up to it; otherwise the first `limit` from `startTime` (inclusive)
//!   up to `endTime` (inclusive).
//! - The limit of 500 requests per 5 minutes per IP ([`default_limits`]) counts only
//!   requests it admits; over it the reply is 429 with `Retry-After` (then 418 bans for
//!   clients that keep going, as for weight), and such a reply adds no weight.

use std::collections::BTreeMap;

use super::SimHandle;
use super::data::{SymbolData, mix};
use super::limits::{LimitsConfig, RateWindow, WindowUnit};
use crate::market::Market;
use crate::symbol::Symbol;

/// The funding interval.
pub const INTERVAL_MS: i64 = 8 * 3_600_000;
/// USDⓈ-M records before this instant (2020-01-01) have an empty `markPrice`.
pub const MARK_PRICE_SINCE_MS: i64 = 1_577_836_800_000;

/// The funding endpoints' default limit: 500 requests per 5 minutes on each futures market.
pub fn default_limits() -> LimitsConfig {
    LimitsConfig {
        window: RateWindow {
            unit: WindowUnit::Minute,
            num: 5,
        },
        weight_limit: Market::ALL
            .iter()
            .map(|m| (*m, 500))
            .collect::<BTreeMap<_, _>>(),
        ..LimitsConfig::default()
    }
}

/// One record as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundingRow {
    /// `fundingTime`, ms.
    pub funding_time: i64,
    /// `fundingRate`, 8 decimals.
    pub funding_rate: String,
    /// `markPrice`: `None` where the field is absent (COIN-M), `Some("")` for old records.
    pub mark_price: Option<String>,
}

/// `text` (a decimal) with exactly `dec` decimals, padded with zeros (mark prices are sent
/// with 8 decimals).
fn fixed_decimals(text: &str, dec: usize) -> String {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut frac = frac.to_owned();
    frac.truncate(dec);
    format!("{int}.{frac:0<dec$}")
}

/// Whether `symbol` on `market` has funding (perpetual contracts only).
fn perpetual(market: Market, symbol: &str) -> bool {
    match market {
        Market::Spot => false,
        Market::UsdM => true,
        Market::CoinM => symbol.ends_with("_PERP"),
    }
}

/// The first funding boundary strictly after `t`.
fn first_after(t: i64) -> i64 {
    (t.div_euclid(INTERVAL_MS) + 1) * INTERVAL_MS
}

/// Record `k` of `sd`: its time and rate (pure functions of the symbol's key and `k`).
fn record(sd: &SymbolData, market: Market, first: i64, k: i64, now: i64) -> FundingRow {
    let key = sd.key();
    let h = mix(key ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let boundary = first + k * INTERVAL_MS;
    let funding_time = boundary + (h % 7) as i64;
    // A 90-record (30-day) triangle wave in [-10_000, 10_000], phase per symbol.
    let p = (k + (key % 90) as i64).rem_euclid(90);
    let tri = (2 * p - 90).abs() * 10_000 / 45 - 10_000;
    let noise = ((h >> 8) % 10_001) as i64 - 5_000;
    let rate_e8 = 10_000 + 2 * tri + noise;
    let mark_price = match market {
        Market::CoinM => None,
        _ if funding_time < MARK_PRICE_SINCE_MS => Some(String::new()),
        _ => Some(
            sd.price_now(market, funding_time.min(now))
                .map_or_else(String::new, |p| fixed_decimals(&p, 8)),
        ),
    };
    FundingRow {
        funding_time,
        funding_rate: super::data::fixed(i128::from(rate_e8), 8, 8),
        mark_price,
    }
}

/// The index range of records of `sd` existing at `now`: `first` boundary and count.
fn span(sd: &SymbolData, market: Market, now: i64) -> (i64, i64) {
    let first = first_after(sd.spec.listed_ms);
    if !perpetual(market, &sd.spec.symbol) {
        return (first, 0);
    }
    let mut last = now;
    if let Some(d) = sd.spec.delisted_ms {
        last = last.min(d - 1);
    }
    // Record k exists when its boundary (and so its time, a few ms later) is at most `last`
    // minus the jitter: keep it simple and exact by checking the boundary + 6 ms.
    let n = if last < first + 6 {
        0
    } else {
        (last - first - 6) / INTERVAL_MS + 1
    };
    (first, n.max(0))
}

/// The records a query selects: `[from, to]` (inclusive), the first `limit` (`last: false`)
/// or the last `limit` (`last: true`).
pub(crate) fn select(
    sd: &SymbolData,
    market: Market,
    (from, to): (i64, i64),
    limit: usize,
    last: bool,
    now: i64,
) -> Vec<FundingRow> {
    let (first, n) = span(sd, market, now);
    if n == 0 || from > to {
        return Vec::new();
    }
    // Candidate indices by boundary; the jitter (0..=6 ms) is checked on the record.
    let lo = (from.saturating_sub(6).saturating_sub(first).max(0) + INTERVAL_MS - 1) / INTERVAL_MS;
    let lo = lo.saturating_sub(1).max(0);
    let hi = if to < first {
        -1
    } else {
        ((to - first) / INTERVAL_MS).min(n - 1)
    };
    if hi < lo {
        return Vec::new();
    }
    let in_range = |r: &FundingRow| (from..=to).contains(&r.funding_time);
    let limit = limit as i64;
    if last {
        let mut out: Vec<FundingRow> = (lo..=hi)
            .rev()
            .map(|k| record(sd, market, first, k, now))
            .filter(in_range)
            .take(limit as usize)
            .collect();
        out.reverse();
        out
    } else {
        (lo..=hi)
            .map(|k| record(sd, market, first, k, now))
            .filter(in_range)
            .take(limit as usize)
            .collect()
    }
}

/// Binance's JSON array for `rows`, times in µs when `micros`.
pub(crate) fn to_json(symbol: &str, rows: &[FundingRow], micros: bool) -> String {
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let t = if micros {
                r.funding_time * 1000
            } else {
                r.funding_time
            };
            let mut o = serde_json::json!({
                "symbol": symbol,
                "fundingTime": t,
                "fundingRate": r.funding_rate,
            });
            if let (Some(m), Some(map)) = (&r.mark_price, o.as_object_mut()) {
                map.insert("markPrice".to_owned(), serde_json::Value::from(m.as_str()));
            }
            o
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

impl SimHandle {
    /// The funding records the exchange holds for `symbol` with funding times in
    /// `[start_ms, end_ms)`, as of the data clock's now (the same code serves requests).
    pub fn expected_funding(
        &self,
        market: Market,
        symbol: &Symbol,
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<FundingRow> {
        let now = self.now_ms();
        self.shared
            .universe
            .symbol(market, symbol.as_str())
            .filter(|s| s.spec.listed_ms <= now)
            .map(|s| select(s, market, (start_ms, end_ms - 1), usize::MAX, false, now))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::data::{SymbolSpec, Universe};

    fn universe() -> Universe {
        let mut specs = BTreeMap::new();
        specs.insert(
            Market::UsdM,
            vec![SymbolSpec::synthetic(
                "BTCUSDT",
                "BTC",
                "USDT",
                1_568_000_000_000,
                30_000.0,
            )],
        );
        Universe::new(42, &specs)
    }

    #[test]
    fn records_are_8h_apart_a_few_ms_past_the_boundary_with_sign_changes() {
        let u = universe();
        let sd = u.symbol(Market::UsdM, "BTCUSDT").unwrap();
        let now = 1_600_000_000_000;
        let rows = select(sd, Market::UsdM, (0, now), usize::MAX, false, now);
        assert!(rows.len() > 300);
        assert!(rows[0].funding_time > 1_568_000_000_000);
        for w in rows.windows(2) {
            let d = w[1].funding_time - w[0].funding_time;
            assert!((INTERVAL_MS - 6..=INTERVAL_MS + 6).contains(&d), "{d}");
        }
        assert!(
            rows.iter()
                .all(|r| (0..7).contains(&(r.funding_time % INTERVAL_MS)))
        );
        let neg = rows
            .iter()
            .filter(|r| r.funding_rate.starts_with('-'))
            .count();
        assert!(neg > 0 && neg < rows.len() / 2, "{neg}");
        assert_eq!(rows[0].mark_price.as_deref(), Some(""));
        let late = rows.last().unwrap();
        assert!(late.mark_price.as_deref().is_some_and(|m| m.len() > 9));
        // Deterministic.
        assert_eq!(
            rows,
            select(sd, Market::UsdM, (0, now), usize::MAX, false, now)
        );
    }

    #[test]
    fn selections_respect_bounds_limit_and_direction() {
        let u = universe();
        let sd = u.symbol(Market::UsdM, "BTCUSDT").unwrap();
        let now = 1_600_000_000_000;
        let all = select(sd, Market::UsdM, (0, now), usize::MAX, false, now);
        let t = all[10].funding_time;
        let first = select(sd, Market::UsdM, (t, now), 3, false, now);
        assert_eq!(first, all[10..13]);
        let after = select(sd, Market::UsdM, (t + 1, now), 1, false, now);
        assert_eq!(after, all[11..12]);
        let last = select(sd, Market::UsdM, (0, t), 2, true, now);
        assert_eq!(last, all[9..11]);
        assert!(select(sd, Market::UsdM, (t, t - 1), 5, false, now).is_empty());
        assert!(select(sd, Market::CoinM, (0, now), 5, false, now).is_empty());
    }
}

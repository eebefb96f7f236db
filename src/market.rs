//! Markets (spot, USDⓈ-M futures, COIN-M futures) and the exchange facts that differ between
//! them: base URLs, path prefixes, page limits, request weights, default weight budgets,
//! supported intervals, COIN-M's 200-day kline window and the archive path segment.
//!
//! Everything here is a plain table lookup taken from `binance-api.md`; the pager, the planner
//! and the simulator all read the same table so they can never disagree.

use std::fmt;
use std::str::FromStr;

use crate::interval::{DAY_MS, Interval};

/// A Binance market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Market {
    /// Spot, `https://api.binance.com/api/v3`.
    Spot,
    /// USDⓈ-M futures, `https://fapi.binance.com/fapi/v1`.
    UsdM,
    /// COIN-M futures, `https://dapi.binance.com/dapi/v1`.
    CoinM,
}

impl Market {
    /// Every market.
    pub const ALL: [Market; 3] = [Market::Spot, Market::UsdM, Market::CoinM];

    /// The pipeline spelling (`spot`, `usdm`, `coinm`), also the `market=` partition value.
    pub fn as_str(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::UsdM => "usdm",
            Market::CoinM => "coinm",
        }
    }

    /// The production REST base URL.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Market::Spot => "https://api.binance.com",
            Market::UsdM => "https://fapi.binance.com",
            Market::CoinM => "https://dapi.binance.com",
        }
    }

    /// The REST path prefix (`/api/v3`, `/fapi/v1`, `/dapi/v1`).
    pub fn api_prefix(self) -> &'static str {
        match self {
            Market::Spot => "/api/v3",
            Market::UsdM => "/fapi/v1",
            Market::CoinM => "/dapi/v1",
        }
    }

    /// The largest `limit` the klines endpoint accepts.
    pub fn max_kline_limit(self) -> u32 {
        match self {
            Market::Spot => 1000,
            Market::UsdM | Market::CoinM => 1500,
        }
    }

    /// The `limit` the klines endpoint uses when none is sent.
    pub fn default_kline_limit(self) -> u32 {
        500
    }

    /// The request weight of one klines call with the given `limit`.
    ///
    /// Spot: 2 regardless of limit. Futures: `[1,100)` -> 1, `[100,500)` -> 2,
    /// `[500,1000]` -> 5, above 1000 -> 10.
    pub fn kline_weight(self, limit: u32) -> u32 {
        match self {
            Market::Spot => 2,
            Market::UsdM | Market::CoinM => match limit {
                0..100 => 1,
                100..500 => 2,
                500..=1000 => 5,
                _ => 10,
            },
        }
    }

    /// The page size that fetches the most candles per unit of weight, from the weight table:
    /// 1000 on spot (weight 2 whatever the limit); 499 on futures (weight 2, about 250 candles
    /// per weight, against 200 at 1000/weight 5 and 150 at 1500/weight 10). The largest such
    /// size wins ties.
    pub fn best_kline_page(self) -> u32 {
        let mut best = 1;
        for limit in 1..=self.max_kline_limit() {
            // limit/w(limit) >= best/w(best), without floats.
            let (wa, wb) = (self.kline_weight(limit), self.kline_weight(best));
            if u64::from(limit) * u64::from(wb) >= u64::from(best) * u64::from(wa) {
                best = limit;
            }
        }
        best
    }

    /// The weight of `exchangeInfo`.
    pub fn exchange_info_weight(self) -> u32 {
        match self {
            Market::Spot => 20,
            Market::UsdM | Market::CoinM => 1,
        }
    }

    /// The default per-minute `REQUEST_WEIGHT` limit, used only until `exchangeInfo` says otherwise.
    pub fn default_weight_limit(self) -> u32 {
        match self {
            Market::Spot => 6000,
            Market::UsdM | Market::CoinM => 2400,
        }
    }

    /// Whether the market serves klines at this interval (`1s` is spot only).
    pub fn supports(self, interval: Interval) -> bool {
        !(interval == Interval::S1 && self != Market::Spot)
    }

    /// The longest `endTime - startTime` a klines request may span (COIN-M: 200 days).
    pub fn max_kline_window_ms(self) -> Option<i64> {
        match self {
            Market::CoinM => Some(200 * DAY_MS),
            Market::Spot | Market::UsdM => None,
        }
    }

    /// The weight of `/ticker/price`: `single` = one `symbol` (spot 2, futures 1); otherwise
    /// every symbol, or on spot a `symbols` list (spot 4, futures 2).
    pub fn ticker_price_weight(self, single: bool) -> u32 {
        let futures = if single { 1 } else { 2 };
        match self {
            Market::Spot => futures * 2,
            Market::UsdM | Market::CoinM => futures,
        }
    }

    /// Whether `/ticker/price` takes a `symbols` list (spot only; futures take one `symbol`
    /// or none).
    pub fn ticker_price_takes_list(self) -> bool {
        self == Market::Spot
    }

    /// The `limit` `/depth` uses when none is sent (spot 100, futures 500).
    pub fn default_depth_limit(self) -> u32 {
        match self {
            Market::Spot => 100,
            Market::UsdM | Market::CoinM => 500,
        }
    }

    /// The `/depth` limits futures accept.
    pub const FUTURES_DEPTH_LIMITS: [u32; 7] = [5, 10, 20, 50, 100, 500, 1000];

    /// Whether `/depth` accepts this `limit` as such: spot any of `1..=5000` (more is silently
    /// cut to 5000), futures only [`Market::FUTURES_DEPTH_LIMITS`].
    pub fn valid_depth_limit(self, limit: u32) -> bool {
        match self {
            Market::Spot => (1..=5000).contains(&limit),
            Market::UsdM | Market::CoinM => Market::FUTURES_DEPTH_LIMITS.contains(&limit),
        }
    }

    /// The levels per side `/depth` serves for a requested `limit`, and the request weight.
    ///
    /// Spot: limit clamped to `1..=5000`; weight 5 up to 100, 25 up to 500, 50 up to 1000,
    /// 250 above. Futures: limit rounded up to the next valid value; weight 2 up to 50, 5 at
    /// 100, 10 at 500, 20 at 1000.
    pub fn depth_levels(self, limit: u32) -> (u32, u32) {
        match self {
            Market::Spot => {
                let l = limit.clamp(1, 5000);
                let w = match l {
                    ..=100 => 5,
                    101..=500 => 25,
                    501..=1000 => 50,
                    _ => 250,
                };
                (l, w)
            }
            Market::UsdM | Market::CoinM => {
                let l = Market::FUTURES_DEPTH_LIMITS
                    .into_iter()
                    .find(|v| *v >= limit)
                    .unwrap_or(1000);
                let w = match l {
                    ..=50 => 2,
                    51..=100 => 5,
                    101..=500 => 10,
                    _ => 20,
                };
                (l, w)
            }
        }
    }

    /// The data.binance.vision path segment (`spot`, `futures/um`, `futures/cm`).
    pub fn archive_segment(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::UsdM => "futures/um",
            Market::CoinM => "futures/cm",
        }
    }
}

impl fmt::Display for Market {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for an unknown market name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown market `{0}`; expected one of `spot`, `usdm`, `coinm`")]
pub struct ParseMarketError(String);

impl FromStr for Market {
    type Err = ParseMarketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Market::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| ParseMarketError(s.to_owned()))
    }
}

impl serde::Serialize for Market {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Market {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn futures_weights_follow_the_limit_table() {
        let w: Vec<u32> = [1, 99, 100, 499, 500, 1000, 1001, 1500]
            .iter()
            .map(|l| Market::UsdM.kline_weight(*l))
            .collect();
        assert_eq!(w, [1, 1, 2, 2, 5, 5, 10, 10]);
        assert_eq!(Market::Spot.kline_weight(1000), 2);
        assert_eq!(Market::Spot.best_kline_page(), 1000);
        assert_eq!(Market::UsdM.best_kline_page(), 499);
        assert_eq!(Market::CoinM.best_kline_page(), 499);
    }

    #[test]
    fn snapshot_weights_follow_the_reference_tables() {
        assert_eq!(Market::Spot.ticker_price_weight(true), 2);
        assert_eq!(Market::Spot.ticker_price_weight(false), 4);
        assert_eq!(Market::UsdM.ticker_price_weight(true), 1);
        assert_eq!(Market::CoinM.ticker_price_weight(false), 2);
        let spot: Vec<(u32, u32)> = [1, 100, 101, 500, 501, 1000, 1001, 5000, 9999]
            .iter()
            .map(|l| Market::Spot.depth_levels(*l))
            .collect();
        assert_eq!(
            spot,
            [
                (1, 5),
                (100, 5),
                (101, 25),
                (500, 25),
                (501, 50),
                (1000, 50),
                (1001, 250),
                (5000, 250),
                (5000, 250)
            ]
        );
        let fut: Vec<(u32, u32)> = [5, 7, 50, 100, 500, 1000, 2000]
            .iter()
            .map(|l| Market::UsdM.depth_levels(*l))
            .collect();
        assert_eq!(
            fut,
            [
                (5, 2),
                (10, 2),
                (50, 2),
                (100, 5),
                (500, 10),
                (1000, 20),
                (1000, 20)
            ]
        );
        assert!(Market::Spot.valid_depth_limit(37));
        assert!(!Market::CoinM.valid_depth_limit(37));
        assert!(!Market::Spot.valid_depth_limit(5001));
    }

    #[test]
    fn one_second_klines_are_spot_only() {
        assert!(Market::Spot.supports(Interval::S1));
        assert!(!Market::UsdM.supports(Interval::S1));
        assert!(!Market::CoinM.supports(Interval::S1));
        assert!(Market::CoinM.supports(Interval::Mo1));
    }

    #[test]
    fn names_round_trip() {
        for m in Market::ALL {
            assert_eq!(m.as_str().parse::<Market>().unwrap(), m);
        }
        assert!("Spot".parse::<Market>().is_err());
    }
}

//! Request-weight accounting: fixed wall-clock windows per (client IP, market), the
//! `X-MBX-USED-WEIGHT-<n><letter>` header, 429 when a request would exceed the limit, and 418
//! bans (growing for repeat offenders) for clients that keep sending after 429s.
//!
//! Chosen behaviour where the reference is silent (binance-api.md §10):
//! - Windows are aligned to the wall clock (`floor(now / window)`), like the real `1M` counter
//!   that resets at each minute.
//! - A request that is answered 429 or 418 adds no weight; every other answer (including
//!   400 errors) adds the endpoint's weight.
//! - The used-weight header accompanies every reply, 429 and 418 included.
//! - After the first 429 of a window, `ban_after_429s` further over-limit requests in that
//!   window are answered 429 too; the next one starts a ban. Bans last
//!   `ban_base × 2^(earlier bans)`, capped at 3 days.
//!
//! This module is synchronous and takes the wall-clock time as an argument, so its rules are
//! unit-tested without sleeping.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::market::Market;

/// The unit of a rate-limit window, as exchangeInfo spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowUnit {
    /// `SECOND`, header letter `S`.
    Second,
    /// `MINUTE`, header letter `M`.
    Minute,
    /// `HOUR`, header letter `H`.
    Hour,
    /// `DAY`, header letter `D`.
    Day,
}

/// A rate-limit window: `interval_num` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateWindow {
    /// The unit.
    pub unit: WindowUnit,
    /// How many units.
    pub num: u32,
}

impl RateWindow {
    /// Binance's one-minute window.
    pub const ONE_MINUTE: RateWindow = RateWindow {
        unit: WindowUnit::Minute,
        num: 1,
    };

    /// `num` seconds (e.g. 10 for fast benchmarks).
    pub fn seconds(num: u32) -> Self {
        Self {
            unit: WindowUnit::Second,
            num: num.max(1),
        }
    }

    /// The window length in ms.
    pub fn ms(self) -> i64 {
        let unit = match self.unit {
            WindowUnit::Second => 1_000,
            WindowUnit::Minute => 60_000,
            WindowUnit::Hour => 3_600_000,
            WindowUnit::Day => 86_400_000,
        };
        unit * i64::from(self.num.max(1))
    }

    /// exchangeInfo's `interval` value (`SECOND`, `MINUTE`, ...).
    pub fn interval_str(self) -> &'static str {
        match self.unit {
            WindowUnit::Second => "SECOND",
            WindowUnit::Minute => "MINUTE",
            WindowUnit::Hour => "HOUR",
            WindowUnit::Day => "DAY",
        }
    }

    /// The used-weight header name, e.g. `x-mbx-used-weight-1m` (HTTP names are
    /// case-insensitive; Binance's spelling is `X-MBX-USED-WEIGHT-1M`).
    pub fn header_name(self) -> String {
        let letter = match self.unit {
            WindowUnit::Second => 's',
            WindowUnit::Minute => 'm',
            WindowUnit::Hour => 'h',
            WindowUnit::Day => 'd',
        };
        format!("x-mbx-used-weight-{}{letter}", self.num)
    }
}

/// Weight limits and ban policy.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// The window every limit is counted in.
    pub window: RateWindow,
    /// REQUEST_WEIGHT limit per market (defaults: the market's own, 6000 spot, 2400 futures).
    pub weight_limit: BTreeMap<Market, u32>,
    /// Length of a first ban.
    pub ban_base: Duration,
    /// Longest ban.
    pub ban_max: Duration,
    /// Further over-limit requests tolerated (answered 429) in a window after its first 429.
    pub ban_after_429s: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            window: RateWindow::ONE_MINUTE,
            weight_limit: Market::ALL
                .iter()
                .map(|m| (*m, m.default_weight_limit()))
                .collect(),
            ban_base: Duration::from_secs(120),
            ban_max: Duration::from_secs(3 * 86_400),
            ban_after_429s: 2,
        }
    }
}

impl LimitsConfig {
    /// The weight limit of `market`.
    pub fn limit(&self, market: Market) -> u32 {
        self.weight_limit
            .get(&market)
            .copied()
            .unwrap_or_else(|| market.default_weight_limit())
    }
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Serve it; `used` is the window's weight including this request.
    Allowed { used: u64 },
    /// 429: `retry_after` seconds until the window ends.
    TooMany { used: u64, retry_after: u64 },
    /// 418: banned until `until_ms`; `retry_after` seconds until then.
    Banned {
        used: u64,
        until_ms: i64,
        retry_after: u64,
    },
}

#[derive(Debug, Default, Clone)]
struct ClientState {
    window: i64,
    used: u64,
    rejected: u32,
    banned_until: i64,
    bans: u32,
}

/// The limiter shared by all requests of a simulator.
#[derive(Debug)]
pub(crate) struct Limiter {
    cfg: LimitsConfig,
    clients: Mutex<HashMap<(IpAddr, Market), ClientState>>,
    /// Total weight per (market, window start), for stats.
    history: Mutex<BTreeMap<(Market, i64), u64>>,
}

fn secs_until(now: i64, t: i64) -> u64 {
    u64::try_from((t - now).max(0)).unwrap_or(0).div_ceil(1000)
}

impl Limiter {
    pub(crate) fn new(cfg: LimitsConfig) -> Self {
        Self {
            cfg,
            clients: Mutex::new(HashMap::new()),
            history: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn config(&self) -> &LimitsConfig {
        &self.cfg
    }

    fn with_client<T>(
        &self,
        ip: IpAddr,
        market: Market,
        now: i64,
        f: impl FnOnce(&mut ClientState, i64) -> T,
    ) -> T {
        let len = self.cfg.window.ms();
        let window = now.div_euclid(len) * len;
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = clients.entry((ip, market)).or_default();
        if st.window != window {
            st.window = window;
            st.used = 0;
            st.rejected = 0;
        }
        f(st, window + len)
    }

    fn start_ban(&self, st: &mut ClientState, now: i64) -> i64 {
        let factor = 1u32.checked_shl(st.bans.min(30)).unwrap_or(u32::MAX);
        let len = self
            .cfg
            .ban_base
            .saturating_mul(factor)
            .min(self.cfg.ban_max);
        st.bans += 1;
        st.banned_until = now + i64::try_from(len.as_millis()).unwrap_or(i64::MAX / 2);
        st.banned_until
    }

    /// Account a request of `weight` from `ip` on `market` at wall-clock `now` (ms).
    pub(crate) fn check(&self, ip: IpAddr, market: Market, weight: u32, now: i64) -> Verdict {
        let limit = u64::from(self.cfg.limit(market));
        let verdict = self.with_client(ip, market, now, |st, window_end| {
            if now < st.banned_until {
                return Verdict::Banned {
                    used: st.used,
                    until_ms: st.banned_until,
                    retry_after: secs_until(now, st.banned_until),
                };
            }
            if st.used + u64::from(weight) > limit {
                st.rejected += 1;
                if st.rejected > self.cfg.ban_after_429s + 1 {
                    let until = self.start_ban(st, now);
                    return Verdict::Banned {
                        used: st.used,
                        until_ms: until,
                        retry_after: secs_until(now, until),
                    };
                }
                return Verdict::TooMany {
                    used: st.used,
                    retry_after: secs_until(now, window_end).max(1),
                };
            }
            st.used += u64::from(weight);
            Verdict::Allowed { used: st.used }
        });
        if let Verdict::Allowed { .. } = verdict {
            let len = self.cfg.window.ms();
            let mut h = self
                .history
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *h.entry((market, now.div_euclid(len) * len)).or_default() += u64::from(weight);
        }
        verdict
    }

    /// A forced 429 (fault injection): the answer an over-limit request would get, without
    /// counting toward a ban.
    pub(crate) fn forced_429(&self, ip: IpAddr, market: Market, now: i64) -> Verdict {
        self.with_client(ip, market, now, |st, end| Verdict::TooMany {
            used: st.used,
            retry_after: secs_until(now, end).max(1),
        })
    }

    /// A forced ban (fault injection): bans the client as if it had ignored 429s.
    pub(crate) fn forced_ban(&self, ip: IpAddr, market: Market, now: i64) -> Verdict {
        self.with_client(ip, market, now, |st, _| {
            let until = self.start_ban(st, now);
            Verdict::Banned {
                used: st.used,
                until_ms: until,
                retry_after: secs_until(now, until),
            }
        })
    }

    /// The weight `ip` has used in the current window of `market`.
    pub(crate) fn used(&self, ip: IpAddr, market: Market, now: i64) -> u64 {
        self.with_client(ip, market, now, |st, _| st.used)
    }

    /// Total weight per (market, window start).
    pub(crate) fn history(&self) -> Vec<(Market, i64, u64)> {
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|((m, w), v)| (*m, *w, *v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn limiter(limit: u32) -> Limiter {
        let mut cfg = LimitsConfig {
            window: RateWindow::seconds(10),
            ban_base: Duration::from_secs(2),
            ..LimitsConfig::default()
        };
        cfg.weight_limit.insert(Market::Spot, limit);
        Limiter::new(cfg)
    }

    #[test]
    fn header_names_follow_the_window() {
        assert_eq!(RateWindow::ONE_MINUTE.header_name(), "x-mbx-used-weight-1m");
        assert_eq!(
            RateWindow::seconds(10).header_name(),
            "x-mbx-used-weight-10s"
        );
        assert_eq!(RateWindow::seconds(10).interval_str(), "SECOND");
    }

    #[test]
    fn weight_accumulates_within_a_window_and_resets_after() {
        let l = limiter(10);
        let t = 1_000_000;
        assert_eq!(
            l.check(IP, Market::Spot, 4, t),
            Verdict::Allowed { used: 4 }
        );
        assert_eq!(
            l.check(IP, Market::Spot, 6, t + 9_999),
            Verdict::Allowed { used: 10 }
        );
        assert_eq!(
            l.check(IP, Market::Spot, 1, t + 9_999),
            Verdict::TooMany {
                used: 10,
                retry_after: 1
            }
        );
        assert_eq!(
            l.check(IP, Market::Spot, 1, t + 10_000),
            Verdict::Allowed { used: 1 }
        );
        // Markets count separately.
        assert_eq!(
            l.check(IP, Market::UsdM, 5, t),
            Verdict::Allowed { used: 5 }
        );
        let h = l.history();
        assert_eq!(h[0], (Market::Spot, t, 10));
    }

    #[test]
    fn retry_after_counts_to_the_window_end() {
        let l = limiter(1);
        let t = 2_000_000;
        l.check(IP, Market::Spot, 1, t);
        assert_eq!(
            l.check(IP, Market::Spot, 1, t + 1_500),
            Verdict::TooMany {
                used: 1,
                retry_after: 9
            }
        );
    }

    #[test]
    fn persisting_after_429s_bans_and_bans_grow() {
        let l = limiter(1);
        let t = 3_000_000;
        l.check(IP, Market::Spot, 1, t);
        for _ in 0..3 {
            assert!(matches!(
                l.check(IP, Market::Spot, 1, t),
                Verdict::TooMany { .. }
            ));
        }
        let v = l.check(IP, Market::Spot, 1, t);
        assert_eq!(
            v,
            Verdict::Banned {
                used: 1,
                until_ms: t + 2_000,
                retry_after: 2
            }
        );
        // Still banned, even in a new window... until the ban ends.
        assert!(matches!(
            l.check(IP, Market::Spot, 1, t + 1_999),
            Verdict::Banned { .. }
        ));
        let after = t + 10_000;
        assert_eq!(
            l.check(IP, Market::Spot, 1, after),
            Verdict::Allowed { used: 1 }
        );
        for _ in 0..3 {
            l.check(IP, Market::Spot, 1, after);
        }
        // Second ban is twice as long.
        assert_eq!(
            l.check(IP, Market::Spot, 1, after),
            Verdict::Banned {
                used: 1,
                until_ms: after + 4_000,
                retry_after: 4
            }
        );
    }

    #[test]
    fn forced_faults_answer_like_the_real_thing() {
        let l = limiter(100);
        let t = 4_000_000;
        l.check(IP, Market::Spot, 3, t);
        assert_eq!(
            l.forced_429(IP, Market::Spot, t + 2_000),
            Verdict::TooMany {
                used: 3,
                retry_after: 8
            }
        );
        assert!(matches!(
            l.forced_ban(IP, Market::Spot, t),
            Verdict::Banned { retry_after: 2, .. }
        ));
        assert!(matches!(
            l.check(IP, Market::Spot, 1, t + 1),
            Verdict::Banned { .. }
        ));
        assert_eq!(l.used(IP, Market::Spot, t), 3);
    }
}

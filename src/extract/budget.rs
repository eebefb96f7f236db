//! The one request-weight budget every worker shares.
//!
//! Binance counts request weight per IP in fixed wall-clock windows (`REQUEST_WEIGHT` in
//! `exchangeInfo.rateLimits`, e.g. 6000 per 1 MINUTE) and reports the running total in
//! `X-MBX-USED-WEIGHT-<n><unit>` on every reply. The budget here mirrors that counter:
//! weight is accounted *before* a request is sent, so workers burst up to the allowed share of
//! the window and then wait for the next window (no even pacing below the limit); every reply's
//! header corrects the count upwards (other clients on the same IP, requests we did not see).
//! At a window boundary the new window starts with everything the exchange may count in it:
//! requests still in flight, and replies that came back within the clock guard before the
//! boundary (the exchange may have counted them just after it). One 429 with requests in
//! flight is several over-limit requests, and exchanges ban for that, so the count errs high.
//!
//! [`BudgetState`] is the pure accounting (unit-tested across window rollover, header
//! correction, 429 and 418); [`WeightBudget`] wraps it for concurrent async workers.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::interval::{DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS};

/// A `REQUEST_WEIGHT` rate limit as declared by `exchangeInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightLimit {
    /// Weight allowed per window.
    pub limit: u32,
    /// The window's unit letter as used in the header suffix: `S`, `M`, `H` or `D`.
    pub unit: char,
    /// Units per window (`intervalNum`).
    pub num: u32,
}

impl WeightLimit {
    /// Build from a `rateLimits` entry's `interval` (`SECOND`, `MINUTE`, `HOUR`, `DAY`),
    /// `intervalNum` and `limit`; `None` for an unknown interval or a zero window.
    pub fn from_rate_limit(interval: &str, num: u32, limit: u32) -> Option<WeightLimit> {
        let unit = match interval {
            "SECOND" => 'S',
            "MINUTE" => 'M',
            "HOUR" => 'H',
            "DAY" => 'D',
            _ => return None,
        };
        (num > 0 && limit > 0).then_some(WeightLimit { limit, unit, num })
    }

    /// One minute of `limit` weight (the documented default until `exchangeInfo` answers).
    pub fn per_minute(limit: u32) -> WeightLimit {
        WeightLimit {
            limit,
            unit: 'M',
            num: 1,
        }
    }

    /// The window length in ms.
    pub fn window_ms(&self) -> i64 {
        let unit = match self.unit {
            'S' => SECOND_MS,
            'H' => HOUR_MS,
            'D' => DAY_MS,
            _ => MINUTE_MS,
        };
        unit * i64::from(self.num)
    }

    /// The reply header carrying this window's used weight, lowercase (HTTP header names are
    /// case-insensitive; `http` stores them lowercase): `x-mbx-used-weight-1m`.
    pub fn header_name(&self) -> String {
        format!(
            "x-mbx-used-weight-{}{}",
            self.num,
            self.unit.to_ascii_lowercase()
        )
    }
}

/// The answer to "may I send a request of this weight now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send now; the weight was counted in the window starting at `window`.
    Go {
        /// Start of the window the weight was counted in (exchange clock).
        window: i64,
    },
    /// Ask again at this instant (exchange clock, ms).
    WaitUntil(i64),
}

/// Pure weight accounting for one fixed window at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetState {
    limit: WeightLimit,
    share: f64,
    min_share: f64,
    /// A window is considered started only `guard_ms` after its boundary, to absorb the error
    /// of our estimate of the exchange clock.
    guard_ms: i64,
    window_start: i64,
    used: u32,
    inflight: u32,
    paused_until: i64,
    /// Completions (our clock, weight) recent enough that the exchange may have counted them
    /// in the next window: a reply that came back just before the boundary by our clock may
    /// have been counted just after it by the exchange's (clock error, a busy server).
    recent: std::collections::VecDeque<(i64, u32)>,
    /// Whether `limit` is the exchange's own (from `exchangeInfo`, or accepted as the
    /// default after it): see [`BudgetState::provisional`].
    limit_known: bool,
    /// While the limit is not known: the highest used-weight header seen and when.
    early_used: u32,
    early_at: i64,
    /// While the limit is not known: an accepted (2xx) reply reported more weight used than
    /// the placeholder limit, so the placeholder is not the exchange's limit (see
    /// [`BudgetState::accepted`]).
    placeholder_disproved: bool,
}

impl BudgetState {
    /// A budget allowing `share` (0, 1] of `limit`, rolling windows `guard_ms` after the
    /// exchange's boundaries.
    pub fn new(limit: WeightLimit, share: f64, guard_ms: i64) -> BudgetState {
        let share = if share.is_finite() {
            share.clamp(0.01, 1.0)
        } else {
            1.0
        };
        BudgetState {
            limit,
            share,
            min_share: (share / 2.0).max(0.01),
            guard_ms: guard_ms.max(0),
            window_start: i64::MIN,
            used: 0,
            inflight: 0,
            paused_until: i64::MIN,
            recent: std::collections::VecDeque::new(),
            limit_known: true,
            early_used: 0,
            early_at: i64::MIN,
            placeholder_disproved: false,
        }
    }

    /// [`BudgetState::new`] with `limit` only a placeholder (the market's documented default)
    /// until [`BudgetState::set_limit`] brings the exchange's own from `exchangeInfo`.
    ///
    /// Until then a used-weight header is not judged against the placeholder's *share*: it is
    /// kept aside and folded into the count once the real limit is set (when it is from the
    /// same window). Meanwhile a request is held back only when the header plus its weight
    /// would pass the placeholder limit itself. So a run that starts after another client used
    /// 90 % of 6000 in this minute does not sit idle until the next minute on an exchange whose
    /// limit is far higher, and on the real exchange (whose limit is the default) the start-up
    /// requests still never pass it.
    pub fn provisional(limit: WeightLimit, share: f64, guard_ms: i64) -> BudgetState {
        BudgetState {
            limit_known: false,
            ..BudgetState::new(limit, share, guard_ms)
        }
    }

    /// Whether the limit in force is the exchange's (see [`BudgetState::provisional`]).
    pub fn limit_known(&self) -> bool {
        self.limit_known
    }

    /// The start of the window containing `t` (exchange clock), for the limit in force.
    fn window_of(&self, t: i64) -> i64 {
        let t = t.saturating_sub(self.guard_ms);
        t - t.rem_euclid(self.limit.window_ms())
    }

    /// The held-back header, when it is from the current window.
    fn early_in_window(&self) -> u32 {
        if self.early_used > 0 && self.window_of(self.early_at) == self.window_start {
            self.early_used
        } else {
            0
        }
    }

    /// Replace the limit (from `exchangeInfo`) at `now`. The weight already counted stays
    /// counted in the window of the new length that contains `now`: the exchange counted it
    /// there too.
    ///
    /// A used-weight header held back while the limit was provisional counts now, if it was
    /// read in the window that contains `now`.
    pub fn set_limit(&mut self, limit: WeightLimit, now: i64) {
        self.limit = limit;
        self.window_start = self.window_of(now);
        if !self.limit_known {
            let early = self.early_in_window();
            if is_plausible_used_weight(early, limit.limit) {
                self.used = self.used.max(early);
            }
            self.limit_known = true;
            self.early_used = 0;
        }
    }

    /// The limit in force.
    pub fn limit(&self) -> WeightLimit {
        self.limit
    }

    /// The weight this run may use per window: `floor(limit * share)`, at least 1.
    pub fn allowed(&self) -> u32 {
        ((f64::from(self.limit.limit) * self.share).floor() as u32).max(1)
    }

    /// The current share of the limit.
    pub fn share(&self) -> f64 {
        self.share
    }

    /// Weight counted in the current window.
    pub fn used(&self) -> u32 {
        self.used
    }

    fn roll(&mut self, now: i64) {
        let w = self.limit.window_ms();
        let t = now - self.guard_ms;
        let start = t - t.rem_euclid(w);
        if start > self.window_start {
            self.window_start = start;
            // Requests still in flight may be counted by the exchange in the new window, and
            // so may those that completed within the guard before its boundary. Counting
            // them here too costs a little of the window when it matters at all; missing one
            // is a 429, and with requests in flight a 429 soon becomes a ban.
            let since = start - self.guard_ms;
            let late: u32 = self
                .recent
                .iter()
                .filter(|(t, _)| *t >= since)
                .map(|(_, w)| *w)
                .sum();
            self.used = self.inflight.saturating_add(late);
        }
    }

    /// Ask to send a request of `weight` at `now` (exchange clock, ms).
    pub fn try_acquire(&mut self, now: i64, weight: u32) -> Admit {
        if now < self.paused_until {
            return Admit::WaitUntil(self.paused_until);
        }
        self.roll(now);
        // A request heavier than the whole allowance may still go alone into an empty window.
        let own = self.used.saturating_add(weight) <= self.allowed()
            || (self.used == 0 && self.inflight == 0);
        // Before the limit is known, others' weight (the header) is judged against the
        // placeholder limit in full, not our share of it.
        let others = self.limit_known
            || self.placeholder_disproved
            || self.early_in_window().max(self.used).saturating_add(weight) <= self.limit.limit;
        if own && others {
            self.used = self.used.saturating_add(weight);
            self.inflight = self.inflight.saturating_add(weight);
            Admit::Go {
                window: self.window_start,
            }
        } else {
            Admit::WaitUntil(self.window_start + self.limit.window_ms() + self.guard_ms)
        }
    }

    /// Record a reply to a request of `weight` admitted in `window`; `header_used` is the
    /// reply's used-weight header, if any. A header from the window the request was counted in
    /// raises our count (never lowers it: our count includes requests still in flight).
    pub fn complete(&mut self, now: i64, window: i64, weight: u32, header_used: Option<u32>) {
        self.inflight = self.inflight.saturating_sub(weight);
        // Only completions after the next boundary's guard can matter to a later rollover.
        let keep_from = self
            .window_start
            .saturating_add(self.limit.window_ms() - self.guard_ms);
        while self.recent.front().is_some_and(|(t, _)| *t < keep_from) {
            self.recent.pop_front();
        }
        if now >= keep_from {
            self.recent.push_back((now, weight));
        }
        self.roll(now);
        // Plausibility is judged against the exchange's limit: a header held back while the
        // limit is the placeholder is judged when the limit arrives (`set_limit`).
        if let Some(h) = header_used
            && window == self.window_start
        {
            if !self.limit_known {
                if h >= self.early_used || self.early_in_window() == 0 {
                    self.early_used = h;
                    self.early_at = now;
                }
            } else if is_plausible_used_weight(h, self.limit.limit) {
                self.used = self.used.max(h);
            }
        }
    }

    /// Whether a reply's used-weight header is one to believe (see
    /// [`is_plausible_used_weight`]); before the exchange's limit is known every header is.
    pub fn header_is_plausible(&self, used: u32) -> bool {
        !self.limit_known || is_plausible_used_weight(used, self.limit.limit)
    }

    /// An accepted (2xx) reply reported `used` weight in its window. The exchange refuses
    /// requests past its limit (429), so while the limit is still the placeholder an accepted
    /// count above it proves the exchange's limit is higher: the remaining start-up requests
    /// (`exchangeInfo`) are then no longer held back by the placeholder, and the limit
    /// `exchangeInfo` brings governs from there. On an exchange whose limit is the default an
    /// accepted count never exceeds it, so nothing changes there.
    pub fn accepted(&mut self, used: u32) {
        if !self.limit_known && used > self.limit.limit {
            self.placeholder_disproved = true;
        }
    }

    /// Release a request that was admitted but never sent.
    pub fn cancel(&mut self, window: i64, weight: u32) {
        self.inflight = self.inflight.saturating_sub(weight);
        if window == self.window_start {
            self.used = self.used.saturating_sub(weight);
        }
    }

    /// A 429: the exchange's count is past its limit. Close the current window, pause until
    /// `Retry-After` has passed and shrink our share (others use this IP too).
    pub fn on_rate_limited(&mut self, now: i64, retry_after_ms: u64) {
        self.roll(now);
        self.used = self.used.max(self.limit.limit);
        self.share = (self.share * 0.9).max(self.min_share);
        self.pause_until(now.saturating_add(retry_after_ms as i64));
    }

    /// Send nothing before `until` (a 418 ban end or a 429's `Retry-After`).
    pub fn pause_until(&mut self, until: i64) {
        self.paused_until = self.paused_until.max(until);
    }

    /// The instant before which nothing is sent.
    pub fn paused_until(&self) -> i64 {
        self.paused_until
    }
}

/// Whether a used-weight header of `used` is believable against a limit of `limit`: the
/// exchange refuses requests past its limit (429), so its count never runs far beyond it. A
/// header above twice the limit (a proxy's or a broken exchange's number, e.g. 999999 against
/// 6000) is ignored, so one bad header cannot stall a run to one request per window.
pub fn is_plausible_used_weight(used: u32, limit: u32) -> bool {
    used <= limit.saturating_mul(2)
}

/// The shortest bound of a wait for the next weight window: one Binance window (a minute),
/// however small `max_ban_wait_secs` is, so a full budget never stops a run by itself.
pub const MIN_WINDOW_WAIT_MS: i64 = 60_000;

/// A wait longer than allowed: the instant (rate-limit clock, ms) it would have ended, and
/// whether it was a pause (429 `Retry-After`, 418 ban) rather than a full weight window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTooLong {
    /// When the wait would end.
    pub until_ms: i64,
    /// A 429/418 pause (`true`) or a weight window (`false`).
    pub paused: bool,
}

/// Our estimate of the exchange's clock: local wall clock plus an offset measured from
/// `/time`, so a simulator with a fake clock works too.
///
/// Two readings: [`ExchangeClock::now_ms`] (the exchange's data clock: which candles have
/// closed) and [`ExchangeClock::window_now_ms`] (the clock the rate-limit windows follow). On
/// the real exchange both are its wall clock, and a small offset is our own clock's skew. An
/// offset larger than [`MAX_WALL_SKEW_MS`] means the exchange's `/time` is not a wall clock (a
/// simulator replaying the past), so rate-limit windows stay on our wall clock.
#[derive(Debug)]
pub struct ExchangeClock {
    offset_ms: AtomicI64,
    /// The wall clock at creation and the monotonic instant it was read at: local time moves
    /// with the monotonic clock from there (tokio's, so tests can pause it).
    origin: (i64, tokio::time::Instant),
}

/// Whether a candle has closed is decided on the earlier of the exchange's clock and ours: an
/// exchange (or a proxy) whose `/time` runs ahead must not make a still-forming candle look
/// closed, and a local clock running ahead must not either. A simulator replaying the past
/// has a clock far behind ours, and its clock rules.
pub fn closed_cut(exchange_ms: i64, local_ms: i64) -> i64 {
    exchange_ms.min(local_ms)
}

/// Clocks further apart than this are warned about at the start of a run.
pub const CLOCK_WARN_MS: i64 = 5_000;

/// The largest offset between our clock and the exchange's that is taken as clock skew.
pub const MAX_WALL_SKEW_MS: i64 = 60_000;

impl Default for ExchangeClock {
    fn default() -> ExchangeClock {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        ExchangeClock {
            offset_ms: AtomicI64::new(0),
            origin: (wall, tokio::time::Instant::now()),
        }
    }
}

impl ExchangeClock {
    /// The local clock in ms since the epoch: the wall clock read when the clock was made,
    /// advanced by the monotonic clock since (a run never sees its clock step backwards).
    pub fn local_ms(&self) -> i64 {
        self.origin.0 + self.origin.1.elapsed().as_millis() as i64
    }

    /// Set the offset from a `/time` reply `server_ms` observed between `sent_ms` and
    /// `received_ms` (local clock): assume the server read its clock half way.
    pub fn calibrate(&self, server_ms: i64, sent_ms: i64, received_ms: i64) {
        let mid = sent_ms + (received_ms - sent_ms) / 2;
        self.offset_ms.store(server_ms - mid, Ordering::Relaxed);
    }

    /// The exchange's current time, ms.
    pub fn now_ms(&self) -> i64 {
        self.local_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// The instant before which a candle's close must lie for it to count as closed: the
    /// earlier of the exchange's clock and ours ([`closed_cut`]).
    pub fn closed_cut_ms(&self) -> i64 {
        closed_cut(self.now_ms(), self.local_ms())
    }

    /// The measured offset of the exchange's clock from ours, ms (positive: it runs ahead).
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// The time rate-limit windows follow, ms (see the type's docs).
    pub fn window_now_ms(&self) -> i64 {
        let off = self.offset_ms.load(Ordering::Relaxed);
        self.local_ms()
            + if off.abs() <= MAX_WALL_SKEW_MS {
                off
            } else {
                0
            }
    }
}

/// The shared budget: [`BudgetState`] behind a lock, with async waiting.
#[derive(Debug)]
pub struct WeightBudget {
    state: Mutex<BudgetState>,
    clock: ExchangeClock,
    /// Requests that had to wait for a later window (or a pause) before they were admitted.
    waits: AtomicU64,
}

/// Weight admitted for one request; hand it back with [`WeightBudget::complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The window it was counted in.
    pub window: i64,
    /// Its weight.
    pub weight: u32,
}

impl WeightBudget {
    /// A shared budget over `state`, reading time from `clock`.
    pub fn new(state: BudgetState, clock: ExchangeClock) -> WeightBudget {
        WeightBudget {
            state: Mutex::new(state),
            clock,
            waits: AtomicU64::new(0),
        }
    }

    /// How many requests waited before they were admitted (each counted once).
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// The exchange clock.
    pub fn clock(&self) -> &ExchangeClock {
        &self.clock
    }

    /// Run `f` on the state (short, never across an await).
    pub fn with<R>(&self, f: impl FnOnce(&mut BudgetState) -> R) -> R {
        let mut g = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    /// Wait until a request of `weight` fits, then count it; give up (without waiting) when
    /// the wait would be longer than `max_pause_ms` for a 429/418 pause, or longer than
    /// `max_pause_ms`, at least [`MIN_WINDOW_WAIT_MS`] and one whole window of this budget's
    /// limit, for the next window.
    pub async fn acquire_within(
        &self,
        weight: u32,
        max_pause_ms: i64,
    ) -> Result<Admission, WaitTooLong> {
        let mut waited = false;
        loop {
            let now = self.clock.window_now_ms();
            let (admit, paused, window_ms) = self.with(|s| {
                let paused = s.paused_until() > now;
                (s.try_acquire(now, weight), paused, s.limit().window_ms())
            });
            match admit {
                Admit::Go { window } => return Ok(Admission { window, weight }),
                Admit::WaitUntil(t) => {
                    let bound = if paused {
                        max_pause_ms
                    } else {
                        max_pause_ms.max(MIN_WINDOW_WAIT_MS).max(window_ms)
                    };
                    if t.saturating_sub(now) > bound {
                        return Err(WaitTooLong {
                            until_ms: t,
                            paused,
                        });
                    }
                    if !waited {
                        waited = true;
                        self.waits.fetch_add(1, Ordering::Relaxed);
                    }
                    let wait = (t - now).clamp(1, 60_000) as u64;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
            }
        }
    }

    /// Record the reply to an admitted request. Returns `false` when the reply's used-weight
    /// header was implausible and ignored ([`is_plausible_used_weight`]).
    pub fn complete(&self, a: Admission, header_used: Option<u32>) -> bool {
        let now = self.clock.window_now_ms();
        self.with(|s| {
            let plausible = header_used.is_none_or(|h| s.header_is_plausible(h));
            s.complete(now, a.window, a.weight, header_used);
            plausible
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(limit: u32, share: f64) -> BudgetState {
        BudgetState::new(WeightLimit::per_minute(limit), share, 0)
    }

    #[test]
    fn rate_limit_entries_map_to_windows_and_headers() {
        let l = WeightLimit::from_rate_limit("MINUTE", 1, 6000).unwrap();
        assert_eq!(l.window_ms(), 60_000);
        assert_eq!(l.header_name(), "x-mbx-used-weight-1m");
        let l = WeightLimit::from_rate_limit("SECOND", 10, 300).unwrap();
        assert_eq!(l.window_ms(), 10_000);
        assert_eq!(l.header_name(), "x-mbx-used-weight-10s");
        assert!(WeightLimit::from_rate_limit("FORTNIGHT", 1, 1).is_none());
        assert!(WeightLimit::from_rate_limit("MINUTE", 0, 1).is_none());
    }

    #[test]
    fn bursts_to_the_share_then_waits_for_the_next_window() {
        let mut s = state(100, 0.5);
        let t0 = 120_000;
        for i in 0..25 {
            assert_eq!(
                s.try_acquire(t0 + i, 2),
                Admit::Go { window: t0 },
                "request {i}"
            );
        }
        assert_eq!(s.used(), 50);
        assert_eq!(s.try_acquire(t0 + 30, 2), Admit::WaitUntil(180_000));
        for _ in 0..25 {
            s.complete(t0 + 40, t0, 2, None);
        }
        // Next window: the whole allowance again.
        assert_eq!(s.try_acquire(180_000, 2), Admit::Go { window: 180_000 });
        assert_eq!(s.used(), 2);
    }

    #[test]
    fn in_flight_weight_carries_into_the_next_window() {
        let mut s = state(10, 1.0);
        assert_eq!(s.try_acquire(59_990, 4), Admit::Go { window: 0 });
        // Still in flight at the rollover: it may land in the new window.
        assert_eq!(s.try_acquire(60_001, 4), Admit::Go { window: 60_000 });
        assert_eq!(s.used(), 8);
        assert_eq!(s.try_acquire(60_002, 4), Admit::WaitUntil(120_000));
    }

    #[test]
    fn headers_correct_the_count_upwards_only_within_their_window() {
        let mut s = state(100, 1.0);
        let a = s.try_acquire(1_000, 2);
        assert_eq!(a, Admit::Go { window: 0 });
        s.complete(1_100, 0, 2, Some(90)); // someone else on this IP used 88
        assert_eq!(s.used(), 90);
        s.complete(1_200, 0, 0, Some(10)); // a stale, lower count never lowers ours
        assert_eq!(s.used(), 90);
        assert!(matches!(s.try_acquire(1_300, 20), Admit::WaitUntil(60_000)));
        // A late reply from the previous window does not touch the new one.
        assert!(matches!(
            s.try_acquire(60_000, 2),
            Admit::Go { window: 60_000 }
        ));
        s.complete(60_010, 0, 2, Some(99));
        assert_eq!(s.used(), 2);
    }

    #[test]
    fn the_closed_cut_takes_the_earlier_clock() {
        assert_eq!(closed_cut(10_000, 3_600_000), 10_000);
        assert_eq!(closed_cut(3_600_000 + 5, 5), 5);
    }

    #[test]
    fn an_implausible_header_is_ignored() {
        let mut s = state(100, 1.0);
        assert_eq!(s.try_acquire(1_000, 2), Admit::Go { window: 0 });
        s.complete(1_100, 0, 2, Some(999_999));
        assert_eq!(s.used(), 2, "a header far above the limit is not believed");
        s.complete(1_100, 0, 0, Some(150));
        assert_eq!(s.used(), 150, "one a little over the limit is");
        assert!(is_plausible_used_weight(200, 100));
        assert!(!is_plausible_used_weight(201, 100));
    }

    #[test]
    fn guard_delays_the_rollover() {
        let mut s = BudgetState::new(WeightLimit::per_minute(4), 1.0, 200);
        assert!(matches!(s.try_acquire(1_000, 4), Admit::Go { .. }));
        s.complete(1_001, 0, 4, None);
        // The first 200 ms after the boundary still count as the old window.
        assert_eq!(s.try_acquire(60_100, 1), Admit::WaitUntil(60_200));
        assert!(matches!(s.try_acquire(60_200, 1), Admit::Go { .. }));
    }

    #[test]
    fn replies_just_before_the_boundary_count_in_the_next_window_too() {
        let mut s = BudgetState::new(WeightLimit::per_minute(10), 1.0, 200);
        // Early in the window: the exchange surely counted these in the first window.
        assert!(matches!(s.try_acquire(1_000, 2), Admit::Go { window: 0 }));
        s.complete(1_050, 0, 2, None);
        // Within the guard before the boundary: the exchange may count them after it.
        for t in [59_850, 59_900] {
            assert!(matches!(s.try_acquire(t, 2), Admit::Go { window: 0 }));
            s.complete(t + 40, 0, 2, None);
        }
        // Still in flight at the rollover.
        assert!(matches!(s.try_acquire(60_100, 2), Admit::Go { window: 0 }));
        assert!(matches!(
            s.try_acquire(60_200, 1),
            Admit::Go { window: 60_000 }
        ));
        assert_eq!(s.used(), 2 + 2 + 2 + 1);
        assert_eq!(s.try_acquire(60_300, 4), Admit::WaitUntil(120_200));
        // Nothing near the next boundary: the window after starts from what is in flight.
        s.complete(60_400, 0, 2, None);
        s.complete(60_450, 60_000, 1, None);
        assert!(matches!(
            s.try_acquire(120_200, 10),
            Admit::Go { window: 120_000 }
        ));
    }

    #[test]
    fn a_429_closes_the_window_pauses_and_shrinks_the_share() {
        let mut s = state(1000, 1.0);
        assert!(matches!(s.try_acquire(5_000, 2), Admit::Go { .. }));
        s.on_rate_limited(5_100, 3_000);
        assert_eq!(s.try_acquire(6_000, 2), Admit::WaitUntil(8_100));
        // After Retry-After, still nothing in this window.
        assert_eq!(s.try_acquire(9_000, 2), Admit::WaitUntil(60_000));
        assert!((s.share() - 0.9).abs() < 1e-9);
        assert_eq!(s.allowed(), 900);
        assert!(matches!(
            s.try_acquire(60_000, 2),
            Admit::Go { window: 60_000 }
        ));
        // The share never falls below half of the configured one.
        for _ in 0..50 {
            s.on_rate_limited(61_000, 0);
        }
        assert_eq!(s.allowed(), 500);
    }

    #[test]
    fn a_ban_blocks_every_request_until_it_ends() {
        let mut s = state(1000, 1.0);
        s.pause_until(500_000);
        assert_eq!(s.try_acquire(100_000, 1), Admit::WaitUntil(500_000));
        assert!(matches!(s.try_acquire(500_000, 1), Admit::Go { .. }));
    }

    #[test]
    fn a_request_heavier_than_the_allowance_goes_alone() {
        let mut s = state(10, 0.5);
        assert!(matches!(s.try_acquire(0, 20), Admit::Go { .. }));
        assert!(matches!(s.try_acquire(1, 1), Admit::WaitUntil(60_000)));
    }

    #[test]
    fn a_new_limit_keeps_the_weight_already_counted() {
        let mut s = state(6000, 1.0);
        assert!(matches!(s.try_acquire(61_500, 21), Admit::Go { .. }));
        s.complete(61_600, 60_000, 21, None);
        // exchangeInfo declares 100 per 1 second: the 21 already spent count in this second.
        s.set_limit(
            WeightLimit::from_rate_limit("SECOND", 1, 100).unwrap(),
            61_700,
        );
        assert_eq!(s.used(), 21);
        assert!(matches!(
            s.try_acquire(61_800, 79),
            Admit::Go { window: 61_000 }
        ));
        assert_eq!(s.try_acquire(61_900, 1), Admit::WaitUntil(62_000));
        assert!(matches!(
            s.try_acquire(62_000, 1),
            Admit::Go { window: 62_000 }
        ));
    }

    #[test]
    fn before_exchange_info_a_high_header_is_held_until_the_real_limit_is_known() {
        // Another client used 5500 of this minute; the exchange's limit turns out to be 4e9.
        let mut s = BudgetState::provisional(WeightLimit::per_minute(6000), 0.9, 0);
        assert!(matches!(s.try_acquire(1_000, 1), Admit::Go { window: 0 }));
        s.complete(1_010, 0, 1, Some(5_501));
        // exchangeInfo (20) still fits under 6000 in full: no wait for the next minute.
        assert!(matches!(s.try_acquire(1_020, 20), Admit::Go { window: 0 }));
        s.complete(1_030, 0, 20, Some(5_521));
        s.set_limit(WeightLimit::per_minute(4_000_000_000), 1_040);
        assert!(s.limit_known());
        assert_eq!(s.used(), 5_521, "the header counts once the limit is known");
        assert!(matches!(s.try_acquire(1_050, 2), Admit::Go { window: 0 }));
    }

    #[test]
    fn before_exchange_info_the_default_limit_itself_is_never_passed() {
        let mut s = BudgetState::provisional(WeightLimit::per_minute(6000), 0.9, 0);
        assert!(matches!(s.try_acquire(1_000, 1), Admit::Go { .. }));
        s.complete(1_010, 0, 1, Some(5_990));
        assert_eq!(s.try_acquire(1_020, 20), Admit::WaitUntil(60_000));
        // The next minute the exchange starts from zero.
        assert!(matches!(
            s.try_acquire(60_000, 20),
            Admit::Go { window: 60_000 }
        ));
    }

    #[test]
    fn an_accepted_count_above_the_default_proves_a_higher_limit() {
        // Other runs used 6300 of this minute on an exchange whose limit is 4e9: `/time`
        // was accepted with that count, so 6000 is not the limit and `exchangeInfo` goes now
        // instead of at the next minute.
        let mut s = BudgetState::provisional(WeightLimit::per_minute(6000), 0.9, 0);
        assert!(matches!(s.try_acquire(1_000, 1), Admit::Go { window: 0 }));
        s.complete(1_010, 0, 1, Some(6_300));
        assert_eq!(s.try_acquire(1_020, 20), Admit::WaitUntil(60_000));
        s.accepted(6_300);
        assert!(matches!(s.try_acquire(1_020, 20), Admit::Go { window: 0 }));
        s.complete(1_030, 0, 20, Some(6_320));
        s.set_limit(WeightLimit::per_minute(4_000_000_000), 1_040);
        assert_eq!(s.used(), 6_320);
        assert!(matches!(s.try_acquire(1_050, 2), Admit::Go { window: 0 }));
        // An accepted count within the default proves nothing: the default still holds.
        let mut s = BudgetState::provisional(WeightLimit::per_minute(6000), 0.9, 0);
        assert!(matches!(s.try_acquire(1_000, 1), Admit::Go { .. }));
        s.complete(1_010, 0, 1, Some(5_990));
        s.accepted(5_990);
        assert_eq!(s.try_acquire(1_020, 20), Admit::WaitUntil(60_000));
        // Once the limit is known the accepted count plays no part.
        let mut s = state(6000, 0.9);
        s.accepted(7_000);
        assert!(matches!(s.try_acquire(1_020, 20), Admit::Go { .. }));
    }

    #[test]
    fn a_header_far_above_the_default_is_judged_against_the_exchanges_limit() {
        // Earlier runs used 64,171 of this minute on an exchange whose limit is 4e9: not
        // implausible there, so it is neither warned about nor dropped.
        let mut s = BudgetState::provisional(WeightLimit::per_minute(6000), 0.9, 0);
        assert!(matches!(s.try_acquire(1_000, 1), Admit::Go { .. }));
        assert!(s.header_is_plausible(64_171));
        s.complete(1_010, 0, 1, Some(64_171));
        s.accepted(64_171);
        s.set_limit(WeightLimit::per_minute(4_000_000_000), 1_020);
        assert_eq!(s.used(), 64_171);
        // A proxy's 999999 against Binance's 6000 stays ignored once the limit is known.
        let mut s = BudgetState::provisional(WeightLimit::per_minute(6000), 0.9, 0);
        assert!(matches!(s.try_acquire(1_000, 1), Admit::Go { .. }));
        s.complete(1_010, 0, 1, Some(999_999));
        s.set_limit(WeightLimit::per_minute(6000), 1_020);
        assert!(s.used() < 100, "{}", s.used());
        assert!(!s.header_is_plausible(999_999));
        assert!(matches!(s.try_acquire(1_030, 2), Admit::Go { .. }));
    }

    #[test]
    fn without_a_declared_limit_the_default_judges_the_held_header() {
        let mut s = BudgetState::provisional(WeightLimit::per_minute(6000), 0.9, 0);
        assert!(matches!(s.try_acquire(1_000, 1), Admit::Go { .. }));
        s.complete(1_010, 0, 1, Some(5_500));
        // exchangeInfo did not answer: the default is the limit, and 5500 is over its 90 %.
        s.set_limit(s.limit(), 1_020);
        assert_eq!(s.used(), 5_500);
        assert_eq!(s.try_acquire(1_030, 2), Admit::WaitUntil(60_000));
        // A header from a window that has ended is not carried into the next one.
        let mut s = BudgetState::provisional(WeightLimit::per_minute(6000), 0.9, 0);
        assert!(matches!(s.try_acquire(59_000, 1), Admit::Go { .. }));
        s.complete(59_010, 0, 1, Some(5_500));
        s.set_limit(s.limit(), 60_500);
        assert!(s.used() < 100, "{}", s.used());
        assert!(matches!(
            s.try_acquire(60_600, 2),
            Admit::Go { window: 60_000 }
        ));
    }

    #[test]
    fn cancel_returns_unsent_weight() {
        let mut s = state(10, 1.0);
        assert!(matches!(s.try_acquire(0, 6), Admit::Go { window: 0 }));
        s.cancel(0, 6);
        assert_eq!(s.used(), 0);
        assert!(matches!(s.try_acquire(1, 10), Admit::Go { .. }));
    }

    #[test]
    fn clock_offset_is_measured_at_the_midpoint() {
        let c = ExchangeClock::default();
        c.calibrate(1_000_000, 10, 30);
        let now = c.now_ms();
        let expected = c.local_ms() + (1_000_000 - 20);
        assert!((now - expected).abs() < 1_000);
        // A fake (replay) clock does not move the rate-limit windows.
        assert!((c.window_now_ms() - c.local_ms()).abs() < 1_000);
        let local = c.local_ms();
        c.calibrate(local + 2_000, local, local);
        assert!((c.window_now_ms() - c.now_ms()).abs() < 1_000);
    }

    /// A reply claiming 999999 of 6000 used this minute (a proxy's number) must not hold the
    /// next request until the next window: it goes at once (virtual time does not move), and
    /// the header is reported as implausible.
    #[tokio::test(start_paused = true)]
    async fn an_implausible_header_never_makes_a_request_wait() {
        let budget = WeightBudget::new(
            BudgetState::new(WeightLimit::per_minute(6000), 1.0, 0),
            ExchangeClock::default(),
        );
        let started = tokio::time::Instant::now();
        for _ in 0..5 {
            let a = budget.acquire_within(2, 300_000).await.unwrap();
            assert!(
                !budget.complete(a, Some(999_999)),
                "reported as implausible"
            );
        }
        assert_eq!(started.elapsed(), Duration::ZERO, "no request waited");
        // A believable header near the limit does hold the next request to the next window.
        let a = budget.acquire_within(2, 300_000).await.unwrap();
        assert!(budget.complete(a, Some(6000)));
        let _ = budget.acquire_within(2, 300_000).await.unwrap();
        assert!(started.elapsed() > Duration::ZERO, "this one waited");
    }

    /// A 429 pause longer than the bound is not waited out: `acquire_within` gives up at once
    /// (virtual time does not move), saying until when it would have waited.
    #[tokio::test(start_paused = true)]
    async fn a_pause_longer_than_the_bound_is_not_waited() {
        let budget = WeightBudget::new(
            BudgetState::new(WeightLimit::per_minute(100), 1.0, 0),
            ExchangeClock::default(),
        );
        let now = budget.clock().window_now_ms();
        budget.with(|s| s.on_rate_limited(now, 86_400_000));
        let started = tokio::time::Instant::now();
        let err = budget.acquire_within(1, 300_000).await.unwrap_err();
        assert!(err.paused);
        assert!(err.until_ms >= now + 86_400_000, "{err:?}");
        assert_eq!(started.elapsed(), Duration::ZERO, "it did not wait");
        // Within the bound, the pause is waited out.
        let budget = WeightBudget::new(
            BudgetState::new(WeightLimit::per_minute(100), 1.0, 0),
            ExchangeClock::default(),
        );
        let now = budget.clock().window_now_ms();
        budget.with(|s| s.on_rate_limited(now, 10_000));
        assert!(budget.acquire_within(1, 300_000).await.is_ok());
        assert!(started.elapsed() >= Duration::from_secs(10));
    }

    /// The async side in virtual time: a request that does not fit the window waits for the
    /// next one (and no longer), without the test sleeping for real.
    #[tokio::test(start_paused = true)]
    async fn a_full_window_waits_for_the_next_one() {
        let budget = WeightBudget::new(
            BudgetState::new(WeightLimit::per_minute(100), 1.0, 0),
            ExchangeClock::default(),
        );
        let started = tokio::time::Instant::now();
        let first = budget.acquire_within(60, 0).await.unwrap();
        budget.complete(first, Some(60));
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "the first request goes at once"
        );
        assert_eq!(budget.waits(), 0);
        let second = budget.acquire_within(60, 0).await.unwrap();
        let waited = started.elapsed();
        assert_eq!(
            second.window,
            first.window + 60_000,
            "counted in the next window"
        );
        let to_boundary = (first.window + 60_000) - budget.clock().local_ms();
        assert!(to_boundary <= 0, "it went at the boundary, not before");
        assert!(
            waited <= Duration::from_secs(60),
            "it waited {waited:?}, at most a window"
        );
        assert_eq!(budget.waits(), 1, "one request waited, counted once");
    }
}

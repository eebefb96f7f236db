//! Page planning and page screening: plain functions, no I/O.
//!
//! A task (market × symbol × interval × `[start, end)`) is cut into page windows laid on the
//! interval grid (calendar-aware for `1w` and `1M` via [`Interval`]), each holding at most one
//! page of candles, so windows are independent and can be fetched concurrently, then
//! reassembled in order. Every request sends both bounds (`startTime` = window start,
//! `endTime` = window end − 1) and `limit` = the number of grid slots in the window, which
//! keeps futures requests in the cheapest weight bracket and satisfies COIN-M's 200-day rule.
//! Should a window's page come back full before reaching the window's end, the next request
//! starts at the last open time plus one interval (never `last + 1`).
//!
//! [`screen_page`] decides what happens to each row of a reply: kept, dropped with a count
//! (off the grid, outside the window, already emitted, wrong close time), held back (still
//! forming), or the whole page rejected for a retry (too many rows, not sorted). Rows off the
//! grid or closing outside their candle are *malformed* ([`Screen::malformed`]): the exchange
//! sent a candle we cannot take, so the pager retries the page and, if they persist, reports
//! them as quality findings and records their grid slots ([`slot_windows`]) for a refetch;
//! they are never dropped silently.
//!
//! [`is_suspect_empty`] decides when an empty reply is suspect (inside the exchange's
//! history): it is retried, then reported.

use crate::interval::{GridWalk, Interval};
use crate::market::Market;
use crate::transform::quality::Check;

/// One klines request's bounds: rows with open time in `[start, end)`, at most `limit` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageWindow {
    /// First open time asked for (aligned), sent as `startTime`.
    pub start: i64,
    /// Exclusive end; `endTime` is `end - 1`.
    pub end: i64,
    /// The `limit` sent: the number of grid slots in the window.
    pub limit: u32,
}

impl PageWindow {
    /// The inclusive `endTime` parameter.
    pub fn end_time(&self) -> i64 {
        self.end - 1
    }
}

/// The number of slots a window starting at `start` may hold on `market`: `page`, reduced on
/// COIN-M so that `endTime - startTime` stays within the 200-day rule.
fn slots_from(market: Market, interval: Interval, start: i64, page: u32) -> u32 {
    let page = page.clamp(1, market.max_kline_limit());
    let Some(max_span) = market.max_kline_window_ms() else {
        return page;
    };
    let fits = |n: u32| interval.add(start, i64::from(n)) - 1 - start <= max_span;
    if fits(page) {
        return page;
    }
    // Largest n with fits(n); fits is monotone. Binary search (1M is calendar-dependent).
    let (mut lo, mut hi) = (1u32, page);
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) { lo = mid } else { hi = mid }
    }
    lo
}

/// The page windows covering `[start, end)` on `interval`'s grid, in order.
pub fn plan_windows(
    market: Market,
    interval: Interval,
    start: i64,
    end: i64,
    page: u32,
) -> impl Iterator<Item = PageWindow> {
    let mut cursor = interval.ceil(start);
    std::iter::from_fn(move || {
        if cursor >= end {
            return None;
        }
        let w = window_from(market, interval, cursor, end, page);
        cursor = w.end;
        Some(w)
    })
}

/// The window starting at the aligned `start`, ending at most at `end`.
pub fn window_from(
    market: Market,
    interval: Interval,
    start: i64,
    end: i64,
    page: u32,
) -> PageWindow {
    let n = slots_from(market, interval, start, page);
    let w_end = interval.add(start, i64::from(n)).min(end);
    let slots = interval.count_in(start, w_end).clamp(1, i64::from(n));
    PageWindow {
        start,
        end: w_end,
        limit: slots as u32,
    }
}

/// How many page windows (requests) `[start, end)` needs, for estimates.
pub fn count_windows(market: Market, interval: Interval, start: i64, end: i64, page: u32) -> usize {
    plan_windows(market, interval, start, end, page).count()
}

/// After a page with `rows` rows whose last open time is `last_open`: the continuation window
/// when the page was full but did not reach the window's end, else `None`.
pub fn continuation(
    market: Market,
    interval: Interval,
    window: &PageWindow,
    rows: usize,
    last_open: Option<i64>,
) -> Option<PageWindow> {
    let last = last_open?;
    if rows < window.limit as usize {
        return None;
    }
    let next = interval.next(interval.floor(last));
    (next > window.start && next < window.end)
        .then(|| window_from(market, interval, next, window.end, window.limit))
}

/// A reply that is rejected as a whole (retry the page; fail the task when retries run out).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageProblem {
    /// More rows than `limit`.
    #[error("page has {got} rows, more than the `limit` of {limit}")]
    TooManyRows {
        /// Rows received.
        got: usize,
        /// Limit sent.
        limit: u32,
    },
    /// Open times not strictly increasing (unsorted or duplicated rows).
    #[error("rows not in strictly increasing open time at row {at} (`{prev}` then `{next}`)")]
    NotSorted {
        /// Row index.
        at: usize,
        /// The previous open time.
        prev: i64,
        /// The offending open time.
        next: i64,
    },
}

/// What to do with each row of a page that passed the whole-page checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Screen {
    /// `Some(mask)` (true = keep) when some rows are dropped or held back; `None` = keep all.
    pub keep: Option<Vec<bool>>,
    /// Rows kept.
    pub kept: usize,
    /// Rows whose open time is not on the interval grid (dropped).
    pub off_grid: usize,
    /// Rows outside the asked window (dropped).
    pub outside: usize,
    /// Rows at or before the last open time already emitted for the task (dropped).
    pub duplicate: usize,
    /// Rows whose close time lies outside `[open, regular close]` (dropped). A close time
    /// before the regular one is real: a candle cut short by a trading halt.
    pub bad_close: usize,
    /// Rows not yet closed (held back).
    pub held_back: usize,
    /// The last open time of any row on the grid (for continuation), kept or not.
    pub last_open: Option<i64>,
    /// The malformed rows (off the grid, close time outside the candle): the finding and
    /// the row's open time, in page order.
    pub malformed: Vec<(Check, i64)>,
}

impl Screen {
    /// Whether the page held malformed rows.
    pub fn has_malformed(&self) -> bool {
        !self.malformed.is_empty()
    }
}

/// The grid slots (`[floor(t), next(floor(t)))`) of the open times `times`, merged where they
/// touch: the windows a refetch of malformed rows asks for.
pub fn slot_windows(interval: Interval, times: &[i64]) -> Vec<(i64, i64)> {
    let slots = times
        .iter()
        .map(|&t| {
            let s = interval.floor(t);
            (s, interval.next(s))
        })
        .collect();
    crate::window::coalesce(slots)
}

/// Whether an empty reply for a window is suspect: the exchange answered `[]` for a whole
/// window (`rows_received == 0`) inside its history: it sent candles before it
/// (`earlier_rows`) and has candles after it (`later_rows`), or the symbol is trading and
/// the window lies after its listing (`trading`: a trading symbol has a candle in every
/// page-sized window of its history; a whole page of outage does not happen). Empty windows
/// before a listing or at the end of a delisted symbol's history are the exchange's own gaps.
pub fn is_suspect_empty(
    rows_received: usize,
    earlier_rows: bool,
    later_rows: bool,
    trading: bool,
) -> bool {
    rows_received == 0 && (trading || (earlier_rows && later_rows))
}

/// Screen one page: `open`/`close` are its rows' open and close times; `after` is the last
/// open time already emitted for the task; rows with `close >= closed_before` are still forming
/// and held back (`None` keeps them).
pub fn screen_page(
    interval: Interval,
    window: &PageWindow,
    after: Option<i64>,
    closed_before: Option<i64>,
    open: &[i64],
    close: &[i64],
) -> Result<Screen, PageProblem> {
    if open.len() > window.limit as usize {
        return Err(PageProblem::TooManyRows {
            got: open.len(),
            limit: window.limit,
        });
    }
    if let Some(at) = open.windows(2).position(|p| p[0] >= p[1]) {
        return Err(PageProblem::NotSorted {
            at: at + 1,
            prev: open[at],
            next: open[at + 1],
        });
    }
    let mut s = Screen::default();
    let mut mask = Vec::new();
    let mut grid = GridWalk::new(interval);
    for (i, (&o, &c)) in open.iter().zip(close).enumerate() {
        let verdict = if !grid.is_aligned(o) {
            s.malformed.push((Check::OffGrid, o));
            &mut s.off_grid
        } else if o < window.start || o >= window.end {
            &mut s.outside
        } else if after.is_some_and(|a| o <= a) {
            &mut s.duplicate
        } else if c < o || c > grid.close_time(o) {
            s.malformed.push((Check::CloseOutsideCandle, o));
            &mut s.bad_close
        } else if closed_before.is_some_and(|t| c >= t) {
            &mut s.held_back
        } else {
            s.kept += 1;
            if !mask.is_empty() {
                mask.push(true);
            }
            continue;
        };
        *verdict += 1;
        if mask.is_empty() {
            mask = vec![true; i];
        }
        mask.push(false);
    }
    s.last_open = open.iter().rev().copied().find(|&o| interval.is_aligned(o));
    if s.kept < open.len() {
        mask.resize(open.len(), false);
        s.keep = Some(mask);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::interval::{DAY_MS, HOUR_MS};

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn best_pages_follow_the_weight_tables() {
        assert_eq!(Market::Spot.best_kline_page(), 1000);
        assert_eq!(Market::UsdM.best_kline_page(), 499);
        assert_eq!(Market::UsdM.kline_weight(499), 2);
    }

    #[test]
    fn windows_tile_the_range_on_the_grid() {
        let start = ms("2024-01-01T00:30:00Z");
        let end = ms("2024-03-01T00:00:00Z");
        let w: Vec<_> = plan_windows(Market::Spot, Interval::H1, start, end, 1000).collect();
        assert_eq!(w[0].start, ms("2024-01-01T01:00:00Z"));
        assert_eq!(w[0].end, w[0].start + 1000 * HOUR_MS);
        assert_eq!(w[0].limit, 1000);
        assert_eq!(w[0].end_time(), w[1].start - 1);
        let last = w.last().unwrap();
        assert_eq!(last.end, end);
        let total: i64 = w.iter().map(|x| i64::from(x.limit)).sum();
        assert_eq!(total, Interval::H1.count_in(start, end));
        assert_eq!(
            count_windows(Market::Spot, Interval::H1, start, end, 1000),
            w.len()
        );
        assert_eq!(
            plan_windows(Market::Spot, Interval::H1, end, end, 1000).count(),
            0
        );
    }

    #[test]
    fn coinm_windows_stay_within_200_days() {
        let start = ms("2020-01-01T00:00:00Z");
        let end = ms("2026-01-01T00:00:00Z");
        for i in Interval::ALL {
            if !Market::CoinM.supports(i) {
                continue;
            }
            for w in plan_windows(Market::CoinM, i, start, end, 499) {
                assert!(w.end_time() - w.start <= 200 * DAY_MS, "{i}: {w:?}");
                assert!(w.limit <= 499);
            }
        }
        let d: Vec<_> = plan_windows(Market::CoinM, Interval::D1, start, end, 499).collect();
        assert_eq!(d[0].limit, 200);
        assert_eq!(d[0].end_time() - d[0].start, 200 * DAY_MS - 1);
        // Months: 6 calendar months fit (at most 184 days), 7 do not.
        let m: Vec<_> = plan_windows(Market::CoinM, Interval::Mo1, start, end, 499).collect();
        assert_eq!(m[0].limit, 6);
        assert_eq!(m[0].end, ms("2020-07-01T00:00:00Z"));
        assert_eq!(m.len(), 12);
    }

    #[test]
    fn month_and_week_windows_are_calendar_aligned() {
        let start = ms("2017-08-17T00:00:00Z");
        let end = ms("2024-02-15T00:00:00Z");
        let m: Vec<_> = plan_windows(Market::Spot, Interval::Mo1, start, end, 10).collect();
        assert_eq!(m[0].start, ms("2017-09-01T00:00:00Z"));
        assert_eq!(m[0].end, ms("2018-07-01T00:00:00Z"));
        assert_eq!(m.last().unwrap().end, end);
        let w: Vec<_> = plan_windows(Market::Spot, Interval::W1, start, end, 1000).collect();
        assert_eq!(w[0].start, ms("2017-08-21T00:00:00Z")); // a Monday
    }

    #[test]
    fn continuation_starts_one_interval_after_the_last_open() {
        let w = PageWindow {
            start: 0,
            end: 10 * HOUR_MS,
            limit: 4,
        };
        let c = continuation(Market::Spot, Interval::H1, &w, 4, Some(3 * HOUR_MS)).unwrap();
        assert_eq!(c.start, 4 * HOUR_MS);
        assert_eq!(c.end, 8 * HOUR_MS);
        assert_eq!(
            continuation(Market::Spot, Interval::H1, &w, 3, Some(3 * HOUR_MS)),
            None
        );
        assert_eq!(
            continuation(Market::Spot, Interval::H1, &w, 4, Some(9 * HOUR_MS)),
            None
        );
        assert_eq!(continuation(Market::Spot, Interval::H1, &w, 0, None), None);
    }

    #[test]
    fn screening_drops_and_holds_back_with_counts() {
        let h = HOUR_MS;
        let w = PageWindow {
            start: 10 * h,
            end: 20 * h,
            limit: 10,
        };
        let close = |o: i64| o + h - 1;
        let open = [9 * h, 10 * h, 11 * h + 5, 12 * h, 13 * h, 19 * h];
        let mut cl: Vec<i64> = open.iter().map(|&o| close(o)).collect();
        cl[4] = 15 * h; // closes after the next candle opens
        cl[3] = 12 * h + 7; // cut short by a halt: kept
        let s = screen_page(
            Interval::H1,
            &w,
            Some(10 * h),
            Some(19 * h + 10),
            &open,
            &cl,
        )
        .unwrap();
        assert_eq!(s.keep, Some(vec![false, false, false, true, false, false]));
        assert_eq!(
            (s.outside, s.duplicate, s.off_grid, s.bad_close, s.held_back),
            (1, 1, 1, 1, 1)
        );
        assert_eq!(s.kept, 1);
        assert_eq!(s.last_open, Some(19 * h));
        assert_eq!(
            s.malformed,
            vec![
                (Check::OffGrid, 11 * h + 5),
                (Check::CloseOutsideCandle, 13 * h)
            ]
        );
        assert_eq!(
            slot_windows(Interval::H1, &[11 * h + 5, 13 * h, 12 * h]),
            vec![(11 * h, 14 * h)]
        );
        assert_eq!(
            slot_windows(Interval::H1, &[11 * h + 5, 13 * h]),
            vec![(11 * h, 12 * h), (13 * h, 14 * h)]
        );
        assert!(is_suspect_empty(0, true, true, false));
        assert!(!is_suspect_empty(0, true, false, false));
        assert!(!is_suspect_empty(0, false, true, false));
        assert!(is_suspect_empty(0, false, false, true));
        assert!(!is_suspect_empty(3, true, true, true));
        let all = screen_page(Interval::H1, &w, None, None, &open[1..2], &cl[1..2]).unwrap();
        assert_eq!(all.keep, None);
        assert_eq!(all.kept, 1);
    }

    #[test]
    fn screening_rejects_unsorted_or_oversized_pages() {
        let w = PageWindow {
            start: 0,
            end: 3 * HOUR_MS,
            limit: 2,
        };
        let o = [0, HOUR_MS, 2 * HOUR_MS];
        let c = o.map(|x| x + HOUR_MS - 1);
        assert_eq!(
            screen_page(Interval::H1, &w, None, None, &o, &c),
            Err(PageProblem::TooManyRows { got: 3, limit: 2 })
        );
        let w = PageWindow { limit: 3, ..w };
        let o = [0, HOUR_MS, HOUR_MS];
        assert!(matches!(
            screen_page(Interval::H1, &w, None, None, &o, &c),
            Err(PageProblem::NotSorted { at: 2, .. })
        ));
    }

    /// A fake exchange over a set of open times. `fault` mangles a reply: 0 none, 1 adds a row
    /// from before the window, 2 adds an off-grid row, 3 swaps two rows (unsorted).
    fn fake_exchange(data: &BTreeSet<i64>, i: Interval, w: &PageWindow, fault: u8) -> Vec<i64> {
        let mut rows: Vec<i64> = data
            .range(w.start..=w.end_time())
            .copied()
            .take(w.limit as usize)
            .collect();
        match fault {
            1 => rows.insert(0, i.prev(w.start)),
            2 if !rows.is_empty() => {
                let x = rows[0] + 1;
                rows.insert(1, x);
                rows.truncate(w.limit as usize);
            }
            3 if rows.len() > 1 => rows.swap(0, 1),
            _ => {}
        }
        rows
    }

    fn any_interval() -> impl Strategy<Value = Interval> {
        proptest::sample::select(Interval::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn pages_concatenate_into_the_exact_series(
            i in any_interval(),
            market in proptest::sample::select(Market::ALL.to_vec()),
            start in 1_500_000_000_000i64..1_700_000_000_000,
            slots in 0i64..3_000,
            page in 1u32..1_200,
            holes in proptest::collection::vec((0i64..3_000, 0i64..200), 0..6),
            faults in proptest::collection::vec(0u8..4, 1..50),
        ) {
            prop_assume!(market.supports(i));
            let first = i.ceil(start);
            let end = i.add(first, slots) + 1;
            let holes: Vec<(i64, i64)> = holes.iter().map(|&(a, n)| (i.add(first, a), i.add(first, a + n))).collect();
            let data: BTreeSet<i64> = (0..=slots)
                .map(|k| i.add(first, k))
                .filter(|o| !holes.iter().any(|&(a, b)| *o >= a && *o < b))
                .collect();
            let mut out = Vec::new();
            let mut after = None;
            let mut call = 0usize;
            let mut queue: std::collections::VecDeque<PageWindow> = plan_windows(market, i, start, end, page).collect();
            while let Some(w) = queue.pop_front() {
                prop_assert!(w.limit <= market.max_kline_limit());
                if let Some(span) = market.max_kline_window_ms() {
                    prop_assert!(w.end_time() - w.start <= span);
                }
                // Retry a rejected page (as the pager does) until it passes.
                let (rows, screen) = loop {
                    let fault = faults[call % faults.len()];
                    call += 1;
                    let rows = fake_exchange(&data, i, &w, if call > 1_000 { 0 } else { fault });
                    let close: Vec<i64> = rows.iter().map(|&o| i.close_time(i.floor(o))).collect();
                    if let Ok(s) = screen_page(i, &w, after, None, &rows, &close) {
                        break (rows, s);
                    }
                };
                let n = rows.len();
                for (k, o) in rows.into_iter().enumerate() {
                    if screen.keep.as_ref().is_none_or(|m| m[k]) {
                        after = Some(o);
                        out.push(o);
                    }
                }
                if let Some(c) = continuation(market, i, &w, n, screen.last_open) {
                    queue.push_front(c);
                }
            }
            let expected: Vec<i64> = data.range(start..end).copied().collect();
            prop_assert_eq!(out, expected);
        }
    }
}

//! Statistics of one kline series (one market × symbol × interval, or one partition of it),
//! as a mergeable value: rows, first/last open time, gaps on the interval grid, the range's
//! open/high/low/close, volume, quote volume and trades totals, VWAP, log-return moments and
//! annualised volatility, and a `describe()` table per numeric column.
//!
//! A series is folded chunk by chunk in open-time order; `merge` joins two consecutive parts
//! (the gap and the log return across the seam are accounted for), so statistics of parts
//! merged in order equal the statistics of the whole.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::sketch::{ColumnStats, Describe, Moments};
use crate::interval::{DAY_MS, Interval};

pub use crate::transform::schema::NUMERIC_COLUMNS;

/// A borrowed, column-oriented view of ordered kline rows (prices as `f64`).
#[derive(Debug, Clone, Copy)]
pub struct KlineView<'a> {
    /// Open times, ms, strictly increasing.
    pub open_time: &'a [i64],
    /// Open prices.
    pub open: &'a [f64],
    /// High prices.
    pub high: &'a [f64],
    /// Low prices.
    pub low: &'a [f64],
    /// Close prices.
    pub close: &'a [f64],
    /// Base volume.
    pub volume: &'a [f64],
    /// Quote volume.
    pub quote_volume: &'a [f64],
    /// Trade counts.
    pub trades: &'a [f64],
    /// Taker buy base volume.
    pub taker_buy_base_volume: &'a [f64],
    /// Taker buy quote volume.
    pub taker_buy_quote_volume: &'a [f64],
}

impl KlineView<'_> {
    fn columns(&self) -> [&[f64]; 9] {
        [
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.quote_volume,
            self.trades,
            self.taker_buy_base_volume,
            self.taker_buy_quote_volume,
        ]
    }
}

/// Why candles are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapCause {
    /// The exchange answered and has no candles there (an outage, a halt).
    ExchangeNone,
    /// We failed to fetch that range (retries exhausted, a ban, an interruption).
    FetchFailed,
    /// The exchange sent rows there that were malformed (off the interval grid, closing
    /// before they open or after the candle), still after retries; they were not written.
    InvalidRow,
    /// The exchange answered an empty page there although it has candles after it, still
    /// after retries: a suspect gap, not the exchange's own.
    EmptyReply,
}

impl GapCause {
    /// The cause the summary gives a gap inside a window pending in `_resume.json` for
    /// `reason`.
    pub fn of_pending(reason: crate::load::resume::Reason) -> GapCause {
        use crate::load::resume::Reason;
        match reason {
            Reason::InvalidRow => GapCause::InvalidRow,
            Reason::EmptyReply => GapCause::EmptyReply,
            Reason::InFlight | Reason::Stopped | Reason::FetchFailed | Reason::TaskFailed => {
                GapCause::FetchFailed
            }
        }
    }

    /// The snake_case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            GapCause::ExchangeNone => "exchange_none",
            GapCause::FetchFailed => "fetch_failed",
            GapCause::InvalidRow => "invalid_row",
            GapCause::EmptyReply => "empty_reply",
        }
    }

    /// Whether the gap is ours to refetch (the next run and `kline-etl repair` do), as
    /// opposed to the exchange's own gap.
    pub fn is_ours(self) -> bool {
        self != GapCause::ExchangeNone
    }

    /// The cause of a gap attributed `new` after `self`: a specific cause (malformed rows,
    /// empty reply) is never turned back into a plain fetch failure.
    #[must_use]
    pub fn overlaid_with(self, new: GapCause) -> GapCause {
        match (self, new) {
            (GapCause::InvalidRow | GapCause::EmptyReply, GapCause::FetchFailed) => self,
            _ => new,
        }
    }
}

/// A run of missing candles: open times `start, start + 1 interval, …` up to (not including)
/// `end`, the next open time present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// First missing open time (ms).
    pub start: i64,
    /// The first open time after the gap that is present (ms, exclusive end).
    pub end: i64,
    /// Number of missing candles.
    pub missing: i64,
    /// Why they are missing.
    pub cause: GapCause,
}

/// Mergeable statistics of an ordered kline series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesStats {
    /// Rows observed.
    pub rows: u64,
    /// First open time (ms).
    pub first_open: Option<i64>,
    /// Last open time (ms).
    pub last_open: Option<i64>,
    /// Open of the first candle.
    pub open: Option<f64>,
    /// Highest high.
    pub high: Option<f64>,
    /// Lowest low.
    pub low: Option<f64>,
    /// Close of the last candle.
    pub close: Option<f64>,
    /// Close of the first candle (needed to join log returns across a seam).
    pub first_close: Option<f64>,
    /// Log returns `ln(close_i / close_{i-1})` between consecutive rows.
    pub log_returns: Moments,
    /// Missing runs on the interval grid between first and last open time.
    pub gaps: Vec<Gap>,
    /// `describe()` material per numeric column.
    pub columns: BTreeMap<String, ColumnStats>,
}

impl SeriesStats {
    /// Statistics of one ordered chunk.
    pub fn from_view(interval: Interval, v: &KlineView<'_>) -> SeriesStats {
        let n = v.open_time.len();
        let mut s = SeriesStats::default();
        if n == 0 {
            return s;
        }
        s.rows = n as u64;
        s.first_open = v.open_time.first().copied();
        s.last_open = v.open_time.last().copied();
        s.open = v.open.first().copied();
        s.close = v.close.last().copied();
        s.first_close = v.close.first().copied();
        s.high = v
            .high
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .reduce(f64::max);
        s.low = v
            .low
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .reduce(f64::min);
        let returns: Vec<f64> = v
            .close
            .windows(2)
            .filter_map(|w| log_return(w[0], w[1]))
            .collect();
        s.log_returns = Moments::of_slice(&returns);
        match interval.fixed_ms() {
            // Fixed-width intervals: a gap is a step longer than one interval (one comparison
            // a row; measured: `push_gap` on every row made the partition statistics 6 %
            // slower, with `Interval::add` inlined).
            Some(width) => {
                for w in v.open_time.windows(2) {
                    if w[1] > w[0].saturating_add(width) {
                        push_gap(&mut s.gaps, interval, w[0], w[1]);
                    }
                }
            }
            None => {
                for w in v.open_time.windows(2) {
                    push_gap(&mut s.gaps, interval, w[0], w[1]);
                }
            }
        }
        for (name, col) in NUMERIC_COLUMNS.iter().zip(v.columns()) {
            s.columns
                .insert((*name).to_owned(), ColumnStats::of_slice(col));
        }
        s
    }

    /// Fold in an ordered chunk that follows everything seen so far.
    pub fn observe(&mut self, interval: Interval, v: &KlineView<'_>) {
        let part = SeriesStats::from_view(interval, v);
        self.merge(interval, &part);
    }

    /// Join `next`, a series part that starts after this one ends.
    pub fn merge(&mut self, interval: Interval, next: &SeriesStats) {
        if next.rows == 0 {
            return;
        }
        if self.rows == 0 {
            *self = next.clone();
            return;
        }
        if let (Some(a), Some(b)) = (self.last_open, next.first_open) {
            push_gap(&mut self.gaps, interval, a, b);
        }
        if let (Some(a), Some(b)) = (self.close, next.first_close) {
            push_return(&mut self.log_returns, a, b);
        }
        self.log_returns.merge(&next.log_returns);
        self.gaps.extend_from_slice(&next.gaps);
        self.rows += next.rows;
        self.last_open = next.last_open;
        self.close = next.close;
        self.high = max_opt(self.high, next.high);
        self.low = min_opt(self.low, next.low);
        for (name, c) in &next.columns {
            self.columns.entry(name.clone()).or_default().merge(c);
        }
    }

    /// Total of a column (`volume`, `quote_volume`, `trades`, …).
    pub fn total(&self, column: &str) -> f64 {
        self.columns.get(column).map_or(0.0, |c| c.sum)
    }

    /// Volume-weighted average price: quote volume / base volume.
    pub fn vwap(&self) -> Option<f64> {
        let v = self.total("volume");
        (v > 0.0).then(|| self.total("quote_volume") / v)
    }

    /// Rows the grid expects between the first and last open time (inclusive).
    pub fn expected_rows(&self, interval: Interval) -> i64 {
        match (self.first_open, self.last_open) {
            (Some(a), Some(b)) => interval.count_in(a, interval.next(b)),
            _ => 0,
        }
    }

    /// Missing candles in total.
    pub fn missing(&self) -> i64 {
        self.gaps.iter().map(|g| g.missing).sum()
    }

    /// Standard deviation of log returns scaled to a 365-day year (crypto trades every day).
    pub fn annualised_volatility(&self, interval: Interval) -> Option<f64> {
        let periods = 365.0 * DAY_MS as f64 / interval.nominal_ms() as f64;
        self.log_returns.std().map(|s| s * periods.sqrt())
    }

    /// The `describe()` table: one row per numeric column, in schema order.
    pub fn describe(&self) -> Vec<(&'static str, Describe)> {
        NUMERIC_COLUMNS
            .iter()
            .filter_map(|n| self.columns.get(*n).map(|c| (*n, c.describe())))
            .collect()
    }

    /// Mark the gaps that fall inside any of the `failed` windows (`[start, end)`) as
    /// [`GapCause::FetchFailed`].
    pub fn attribute_gaps(&mut self, failed: &[(i64, i64)]) {
        for g in &mut self.gaps {
            if failed.iter().any(|(s, e)| g.start < *e && *s < g.end) {
                g.cause = GapCause::FetchFailed;
            }
        }
    }
}

/// The log return from `prev` to `next`, when both are positive numbers.
fn log_return(prev: f64, next: f64) -> Option<f64> {
    (prev > 0.0 && next > 0.0 && prev.is_finite() && next.is_finite()).then(|| (next / prev).ln())
}

fn push_return(m: &mut Moments, prev: f64, next: f64) {
    if let Some(r) = log_return(prev, next) {
        m.push(r);
    }
}

fn push_gap(gaps: &mut Vec<Gap>, interval: Interval, prev_open: i64, next_open: i64) {
    let expected = interval.next(prev_open);
    if next_open > expected {
        gaps.push(Gap {
            start: expected,
            end: next_open,
            missing: interval.count_in(expected, next_open),
            cause: GapCause::ExchangeNone,
        });
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interval::HOUR_MS;
    use proptest::prelude::*;

    struct Cols {
        t: Vec<i64>,
        o: Vec<f64>,
        h: Vec<f64>,
        l: Vec<f64>,
        c: Vec<f64>,
        v: Vec<f64>,
        q: Vec<f64>,
        n: Vec<f64>,
        tb: Vec<f64>,
        tq: Vec<f64>,
    }

    impl Cols {
        fn new(times: &[i64]) -> Cols {
            let c: Vec<f64> = times
                .iter()
                .map(|t| 100.0 + (*t / HOUR_MS % 7) as f64)
                .collect();
            Cols {
                t: times.to_vec(),
                o: c.iter().map(|x| x - 0.5).collect(),
                h: c.iter().map(|x| x + 1.0).collect(),
                l: c.iter().map(|x| x - 1.0).collect(),
                v: vec![2.0; times.len()],
                q: c.iter().map(|x| x * 2.0).collect(),
                n: vec![10.0; times.len()],
                tb: vec![1.0; times.len()],
                tq: c.clone(),
                c,
            }
        }

        fn view(&self, r: std::ops::Range<usize>) -> KlineView<'_> {
            KlineView {
                open_time: &self.t[r.clone()],
                open: &self.o[r.clone()],
                high: &self.h[r.clone()],
                low: &self.l[r.clone()],
                close: &self.c[r.clone()],
                volume: &self.v[r.clone()],
                quote_volume: &self.q[r.clone()],
                trades: &self.n[r.clone()],
                taker_buy_base_volume: &self.tb[r.clone()],
                taker_buy_quote_volume: &self.tq[r],
            }
        }
    }

    #[test]
    fn gaps_are_found_and_counted() {
        let times: Vec<i64> = [0, 1, 2, 5, 6, 9].iter().map(|i| i * HOUR_MS).collect();
        let cols = Cols::new(&times);
        let s = SeriesStats::from_view(Interval::H1, &cols.view(0..times.len()));
        assert_eq!(s.rows, 6);
        assert_eq!(s.expected_rows(Interval::H1), 10);
        assert_eq!(s.missing(), 4);
        assert_eq!(
            s.gaps,
            vec![
                Gap {
                    start: 3 * HOUR_MS,
                    end: 5 * HOUR_MS,
                    missing: 2,
                    cause: GapCause::ExchangeNone
                },
                Gap {
                    start: 7 * HOUR_MS,
                    end: 9 * HOUR_MS,
                    missing: 2,
                    cause: GapCause::ExchangeNone
                },
            ]
        );
        let mut s2 = s.clone();
        s2.attribute_gaps(&[(8 * HOUR_MS, 9 * HOUR_MS)]);
        assert_eq!(s2.gaps[0].cause, GapCause::ExchangeNone);
        assert_eq!(s2.gaps[1].cause, GapCause::FetchFailed);
    }

    #[test]
    fn totals_vwap_and_range_are_right() {
        let times: Vec<i64> = (0..24).map(|i| i * HOUR_MS).collect();
        let cols = Cols::new(&times);
        let s = SeriesStats::from_view(Interval::H1, &cols.view(0..24));
        assert_eq!(s.total("volume"), 48.0);
        let q: f64 = cols.q.iter().sum();
        assert!((s.vwap().unwrap() - q / 48.0).abs() < 1e-12);
        assert_eq!(s.open, Some(cols.o[0]));
        assert_eq!(s.close, Some(cols.c[23]));
        assert_eq!(s.high, Some(107.0));
        assert_eq!(s.low, Some(99.0));
        assert_eq!(s.log_returns.count, 23);
        let first_to_last = (cols.c[23] / cols.c[0]).ln();
        assert!((s.log_returns.mean * 23.0 - first_to_last).abs() < 1e-12);
        assert!(s.annualised_volatility(Interval::H1).unwrap() > 0.0);
        assert_eq!(s.describe().len(), 9);
    }

    proptest! {
        #[test]
        fn merging_ordered_parts_equals_the_whole(
            steps in proptest::collection::vec(1i64..4, 2..120),
            cuts in proptest::collection::vec(0usize..120, 0..4),
        ) {
            let mut t = 0;
            let times: Vec<i64> = steps.iter().map(|s| { t += s * HOUR_MS; t }).collect();
            let cols = Cols::new(&times);
            let n = times.len();
            let whole = SeriesStats::from_view(Interval::H1, &cols.view(0..n));
            let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c.min(n)).collect();
            bounds.push(0);
            bounds.push(n);
            bounds.sort_unstable();
            let mut merged = SeriesStats::default();
            for w in bounds.windows(2) {
                merged.observe(Interval::H1, &cols.view(w[0]..w[1]));
            }
            prop_assert_eq!(merged.rows, whole.rows);
            prop_assert_eq!(&merged.gaps, &whole.gaps);
            prop_assert_eq!(merged.first_open, whole.first_open);
            prop_assert_eq!(merged.last_open, whole.last_open);
            prop_assert_eq!(merged.high, whole.high);
            prop_assert_eq!(merged.low, whole.low);
            prop_assert_eq!(merged.close, whole.close);
            prop_assert_eq!(merged.log_returns.count, whole.log_returns.count);
            prop_assert!((merged.log_returns.mean - whole.log_returns.mean).abs() < 1e-9);
            for (name, c) in &whole.columns {
                let m = &merged.columns[name];
                prop_assert_eq!(&m.sketch, &c.sketch);
                prop_assert!((m.sum - c.sum).abs() < 1e-6);
            }
        }
    }
}

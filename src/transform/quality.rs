//! Quality checks on klines: the interval grid, order and uniqueness of open times, and the
//! OHLCV invariants. A pure function ([`check`]) returns a mergeable [`QualityReport`] (page →
//! partition → task → run). Whether violations fail a task is the caller's decision
//! (`transform.on_violation`); this module only counts.
//!
//! Two kinds of findings:
//! - **violations** ([`Check::is_violation`]): data that breaks an invariant (off-grid open time,
//!   duplicate, out of order, `high < max(open, close)`, `low > min(open, close)`, negative
//!   volume, taker volume above the total, a close time outside its candle, a zero or
//!   negative price, except for premium-index rates, which may be either: [`check_with`]);
//! - **exchange irregularities** that are real and kept: a close time earlier than the regular
//!   `next open - 1 ms`, as in the 2023-03-24 spot outage candle (close `1679661581646` instead
//!   of `1679662799999`). They are counted so a report can show them, never failed on.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Column, KlineRows};
use crate::interval::{GridWalk, Interval};

/// How many example open times a report keeps per check (the earliest ones).
pub const MAX_EXAMPLES: usize = 5;

/// One kind of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// `open_time` is not on the interval's grid.
    OffGrid,
    /// The same `open_time` appears more than once.
    Duplicate,
    /// `open_time` is smaller than the previous row's.
    Unsorted,
    /// `high < max(open, close)` (or `high < low`).
    HighTooLow,
    /// `low > min(open, close)`.
    LowTooHigh,
    /// A volume column is negative.
    NegativeVolume,
    /// `taker_buy_base_volume > volume` or `taker_buy_quote_volume > quote_volume`.
    TakerAboveTotal,
    /// `close_time` is before `open_time` or after the candle's regular close.
    CloseOutsideCandle,
    /// An open, high, low or close of zero or below (a traded price never is).
    NonPositivePrice,
    /// `close_time` is earlier than the regular close but inside the candle: the exchange's own
    /// data (an outage candle). Not a violation.
    EarlyClose,
}

impl Check {
    /// Whether this finding breaks an invariant (as opposed to a real exchange irregularity).
    pub fn is_violation(self) -> bool {
        self != Check::EarlyClose
    }

    /// The snake_case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Check::OffGrid => "off_grid",
            Check::Duplicate => "duplicate",
            Check::Unsorted => "unsorted",
            Check::HighTooLow => "high_too_low",
            Check::LowTooHigh => "low_too_high",
            Check::NegativeVolume => "negative_volume",
            Check::TakerAboveTotal => "taker_above_total",
            Check::CloseOutsideCandle => "close_outside_candle",
            Check::NonPositivePrice => "non_positive_price",
            Check::EarlyClose => "early_close",
        }
    }
}

/// Findings in some rows: counts per check and the earliest few open times as examples.
/// Mergeable: `a.merge(b)` equals checking the rows of both (except order/duplicate checks
/// across the boundary of two separately checked sets, which the loader's merge handles).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QualityReport {
    /// Rows checked.
    pub rows: u64,
    /// Findings per check (checks with none are absent).
    pub counts: BTreeMap<Check, u64>,
    /// Up to [`MAX_EXAMPLES`] earliest open times (ms) per check, ascending.
    pub examples: BTreeMap<Check, Vec<i64>>,
}

impl QualityReport {
    /// Record one finding at `open_time`.
    pub fn record(&mut self, check: Check, open_time: i64) {
        *self.counts.entry(check).or_default() += 1;
        let ex = self.examples.entry(check).or_default();
        if let Err(pos) = ex.binary_search(&open_time)
            && pos < MAX_EXAMPLES
        {
            ex.insert(pos, open_time);
            ex.truncate(MAX_EXAMPLES);
        }
    }

    /// Add `other`'s findings to these.
    pub fn merge(&mut self, other: &QualityReport) {
        self.rows += other.rows;
        for (check, n) in &other.counts {
            *self.counts.entry(*check).or_default() += n;
        }
        for (check, times) in &other.examples {
            let ex = self.examples.entry(*check).or_default();
            ex.extend(times);
            ex.sort_unstable();
            ex.dedup();
            ex.truncate(MAX_EXAMPLES);
        }
    }

    /// The number of findings of `check`.
    pub fn count(&self, check: Check) -> u64 {
        self.counts.get(&check).copied().unwrap_or(0)
    }

    /// Total violations (findings that break an invariant).
    pub fn violations(&self) -> u64 {
        self.counts
            .iter()
            .filter(|(c, _)| c.is_violation())
            .map(|(_, n)| n)
            .sum()
    }

    /// Whether there are no violations (exchange irregularities allowed).
    pub fn is_clean(&self) -> bool {
        self.violations() == 0
    }

    /// A one-line summary such as `2 violations: high_too_low 2 (2024-01-01T00:00:00.000Z, …)`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(c, n)| {
                let ex: Vec<String> = self
                    .examples
                    .get(c)
                    .map(|v| v.iter().map(|t| crate::time::fmt_ms(*t)).collect())
                    .unwrap_or_default();
                format!("{} {n} ({})", c.name(), ex.join(", "))
            })
            .collect();
        format!("{} violations: {}", self.violations(), parts.join("; "))
    }
}

/// Check every row of `rows` against `interval`'s grid and the kline invariants, prices
/// included (see [`check_with`]).
pub fn check(rows: &KlineRows, interval: Interval) -> QualityReport {
    check_with(rows, interval, false)
}

/// [`check`]; with `signed_prices` (premium-index klines, whose values are rates around
/// zero) a zero or negative price is not a finding.
pub fn check_with(rows: &KlineRows, interval: Interval, signed_prices: bool) -> QualityReport {
    let mut r = QualityReport {
        rows: rows.len() as u64,
        ..QualityReport::default()
    };
    let open = &rows.open_time;
    let mut sorted = true;
    let mut grid = GridWalk::new(interval);
    for (i, &t) in open.iter().enumerate() {
        if !grid.is_aligned(t) {
            r.record(Check::OffGrid, t);
        }
        if i > 0 {
            if t < open[i - 1] {
                r.record(Check::Unsorted, t);
                sorted = false;
            } else if t == open[i - 1] {
                r.record(Check::Duplicate, t);
            }
        }
        let close = rows.close_time[i];
        let regular = grid.close_time(t);
        if close < t || close > regular {
            r.record(Check::CloseOutsideCandle, t);
        } else if close < regular {
            r.record(Check::EarlyClose, t);
        }
    }
    if !sorted {
        // Adjacent comparison misses non-adjacent duplicates in unsorted rows: recount.
        r.counts.remove(&Check::Duplicate);
        r.examples.remove(&Check::Duplicate);
        let mut s = open.clone();
        s.sort_unstable();
        for w in s.windows(2) {
            if w[0] == w[1] {
                r.record(Check::Duplicate, w[1]);
            }
        }
    }
    match rows.price_type() {
        crate::config::PriceType::Float64 => {
            values::<f64>(rows, &mut r, signed_prices, |c| match c {
                Column::Float64(v) => v,
                Column::Decimal(_) => &[],
            });
        }
        crate::config::PriceType::Decimal => {
            values::<i128>(rows, &mut r, signed_prices, |c| match c {
                Column::Decimal(v) => v,
                Column::Float64(_) => &[],
            });
        }
    }
    r
}

fn values<T: PartialOrd + Copy + Default>(
    rows: &KlineRows,
    report: &mut QualityReport,
    signed_prices: bool,
    get: impl Fn(&Column) -> &[T],
) {
    let [open, high, low, close, vol, qvol, tbase, tquote] = rows.columns().map(get);
    let n = rows.len();
    if [open, high, low, close, vol, qvol, tbase, tquote]
        .iter()
        .any(|col| col.len() != n)
    {
        return;
    }
    let zero = T::default();
    for i in 0..n {
        let t = rows.open_time[i];
        if high[i] < open[i] || high[i] < close[i] || high[i] < low[i] {
            report.record(Check::HighTooLow, t);
        }
        if low[i] > open[i] || low[i] > close[i] {
            report.record(Check::LowTooHigh, t);
        }
        if vol[i] < zero || qvol[i] < zero || tbase[i] < zero || tquote[i] < zero {
            report.record(Check::NegativeVolume, t);
        }
        if tbase[i] > vol[i] || tquote[i] > qvol[i] {
            report.record(Check::TakerAboveTotal, t);
        }
        if !signed_prices
            && [open[i], high[i], low[i], close[i]]
                .iter()
                .any(|p| *p <= zero)
        {
            report.record(Check::NonPositivePrice, t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PriceType;
    use crate::interval::HOUR_MS;

    const T0: i64 = 1_672_531_200_000; // 2023-01-01T00:00Z

    fn rows(n: usize) -> KlineRows {
        let mut r = KlineRows::empty(PriceType::Decimal);
        for i in 0..n {
            let t = T0 + i as i64 * HOUR_MS;
            r.open_time.push(t);
            r.close_time.push(t + HOUR_MS - 1);
            r.trades.push(1);
            for (col, val) in r
                .columns_mut()
                .into_iter()
                .zip([10, 12, 9, 11, 5, 50, 2, 20])
            {
                if let Column::Decimal(v) = col {
                    v.push(val);
                }
            }
        }
        r
    }

    fn set(r: &mut KlineRows, col: usize, i: usize, val: i128) {
        if let Column::Decimal(v) = r.columns_mut()[col] {
            v[i] = val;
        }
    }

    #[test]
    fn clean_rows_are_clean() {
        let rep = check(&rows(10), Interval::H1);
        assert_eq!(rep.rows, 10);
        assert!(rep.is_clean(), "{}", rep.summary());
        assert!(rep.counts.is_empty());
    }

    #[test]
    fn each_violation_is_counted_with_examples() {
        let mut r = rows(8);
        set(&mut r, 1, 0, 9); // high below open
        set(&mut r, 2, 1, 11); // low above open
        set(&mut r, 4, 2, -1); // negative volume (and taker above total)
        set(&mut r, 7, 3, 51); // taker quote above quote volume
        r.open_time[4] += 1; // off grid
        r.close_time[4] += 1;
        r.close_time[5] = r.open_time[5] + 1000; // early close: exchange irregularity
        r.close_time[6] = r.open_time[6] + 2 * HOUR_MS; // close after the candle
        let rep = check(&r, Interval::H1);
        assert_eq!(rep.count(Check::HighTooLow), 1);
        assert_eq!(rep.count(Check::LowTooHigh), 1);
        assert_eq!(rep.count(Check::NegativeVolume), 1);
        assert_eq!(rep.count(Check::TakerAboveTotal), 2);
        assert_eq!(rep.count(Check::OffGrid), 1);
        assert_eq!(rep.count(Check::EarlyClose), 1);
        assert_eq!(rep.count(Check::CloseOutsideCandle), 1);
        assert_eq!(rep.violations(), 7);
        assert_eq!(rep.examples[&Check::HighTooLow], vec![T0]);
        assert!(
            rep.summary()
                .contains("high_too_low 1 (2023-01-01T00:00:00.000Z)")
        );
    }

    #[test]
    fn zero_prices_are_findings_except_for_rates() {
        let mut r = rows(3);
        for col in 0..4 {
            set(&mut r, col, 1, 0);
        }
        let rep = check(&r, Interval::H1);
        assert_eq!(rep.count(Check::NonPositivePrice), 1);
        assert_eq!(rep.examples[&Check::NonPositivePrice], vec![T0 + HOUR_MS]);
        assert!(!rep.is_clean());
        assert_eq!(
            check_with(&r, Interval::H1, true).count(Check::NonPositivePrice),
            0
        );
    }

    #[test]
    fn order_and_duplicates() {
        let r = rows(5);
        let dup = r.take(&[0, 1, 1, 2]);
        let rep = check(&dup, Interval::H1);
        assert_eq!(rep.count(Check::Duplicate), 1);
        assert_eq!(rep.count(Check::Unsorted), 0);
        let shuffled = r.take(&[2, 0, 1, 2, 4]);
        let rep = check(&shuffled, Interval::H1);
        assert_eq!(rep.count(Check::Unsorted), 1);
        assert_eq!(rep.count(Check::Duplicate), 1);
        assert_eq!(rep.examples[&Check::Duplicate], vec![T0 + 2 * HOUR_MS]);
    }

    #[test]
    fn examples_keep_the_earliest_few() {
        let mut rep = QualityReport::default();
        for t in (0..20).rev() {
            rep.record(Check::OffGrid, t);
        }
        assert_eq!(rep.examples[&Check::OffGrid], vec![0, 1, 2, 3, 4]);
        assert_eq!(rep.count(Check::OffGrid), 20);
    }

    proptest::proptest! {
        #[test]
        fn merge_equals_checking_the_concatenation(n in 1usize..40, cut in 0usize..40, bad in proptest::collection::vec(0usize..40, 0..10)) {
            let mut r = rows(n);
            for b in bad { if b < n { set(&mut r, 1, b, 1); } }
            let cut = cut.min(n);
            let mut a = check(&r.slice(0, cut), Interval::H1);
            let b = check(&r.slice(cut, n - cut), Interval::H1);
            a.merge(&b);
            proptest::prop_assert_eq!(a, check(&r, Interval::H1));
        }
    }
}

//! Statistics of one symbol's stored funding-rate history: counts, first and last funding
//! times, the funding interval, mean/min/max rate, the annualised mean rate, sign changes,
//! mark-price coverage and gaps (funding events missing between two stored ones). Pure.

use serde::{Deserialize, Serialize};

use super::rows::FundingRecord;
use crate::market::Market;
use crate::time::fmt_ms;

const HOUR_MS: i64 = 3_600_000;
/// The funding interval of most perpetual contracts; used when a series has one record.
pub const DEFAULT_INTERVAL_HOURS: i64 = 8;

/// A stretch without funding events where the series' interval says there should be some.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FundingGap {
    /// The last stored funding time before the gap (UTC).
    pub after: String,
    /// The first stored funding time after it (UTC).
    pub before: String,
    /// Funding events missing between them.
    pub missing: i64,
}

/// The statistics of one market × symbol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesStats {
    /// Market.
    pub market: Market,
    /// Symbol.
    pub symbol: String,
    /// Records stored.
    pub records: u64,
    /// First stored funding time (UTC).
    pub first_funding_time: Option<String>,
    /// Last stored funding time (UTC).
    pub last_funding_time: Option<String>,
    /// The funding interval in hours: the most common spacing of consecutive records,
    /// rounded to the hour (8 for most contracts).
    pub interval_hours: i64,
    /// Mean funding rate per interval.
    pub mean_rate: Option<f64>,
    /// Lowest rate.
    pub min_rate: Option<f64>,
    /// When it was paid (UTC).
    pub min_rate_time: Option<String>,
    /// Highest rate.
    pub max_rate: Option<f64>,
    /// When it was paid (UTC).
    pub max_rate_time: Option<String>,
    /// `mean_rate` × funding events per 365-day year (`24 / interval_hours × 365`).
    pub annualized_mean_rate: Option<f64>,
    /// Records with a positive rate (longs pay shorts).
    pub positive: u64,
    /// Records with a negative rate (shorts pay longs).
    pub negative: u64,
    /// Times the sign flipped between consecutive non-zero rates.
    pub sign_changes: u64,
    /// Records without a mark price (the exchange sent none).
    pub mark_price_nulls: u64,
    /// Lowest mark price.
    pub mark_price_min: Option<f64>,
    /// Highest mark price.
    pub mark_price_max: Option<f64>,
    /// Funding events missing between the first and the last record.
    pub missing: i64,
    /// Where they are missing.
    pub gaps: Vec<FundingGap>,
}

/// The modal spacing of consecutive records, in whole hours (at least 1).
pub fn interval_hours(records: &[FundingRecord]) -> i64 {
    let mut counts = std::collections::BTreeMap::<i64, usize>::new();
    for w in records.windows(2) {
        let h = ((w[1].funding_time - w[0].funding_time) as f64 / HOUR_MS as f64).round() as i64;
        if h >= 1 {
            *counts.entry(h).or_default() += 1;
        }
    }
    // Most frequent; ties go to the shorter spacing (a gap never looks like the interval).
    counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map_or(DEFAULT_INTERVAL_HOURS, |(h, _)| *h)
}

/// Gaps: consecutive records more than 1.5 intervals apart; `round(spacing / interval) - 1`
/// events are missing in each (funding times drift by milliseconds, never by hours).
pub fn gaps(records: &[FundingRecord], interval_h: i64) -> Vec<FundingGap> {
    let step = interval_h.max(1) * HOUR_MS;
    records
        .windows(2)
        .filter_map(|w| {
            let d = w[1].funding_time - w[0].funding_time;
            (d * 2 > step * 3).then(|| FundingGap {
                after: fmt_ms(w[0].funding_time),
                before: fmt_ms(w[1].funding_time),
                missing: ((d as f64 / step as f64).round() as i64 - 1).max(1),
            })
        })
        .collect()
}

/// The statistics of `records` (sorted by funding time, unique).
pub fn series_stats(market: Market, symbol: &str, records: &[FundingRecord]) -> SeriesStats {
    let interval_h = interval_hours(records);
    let rates: Vec<(i64, f64)> = records
        .iter()
        .map(|r| (r.funding_time, r.funding_rate.as_f64()))
        .collect();
    let mean =
        (!rates.is_empty()).then(|| rates.iter().map(|(_, x)| x).sum::<f64>() / rates.len() as f64);
    let min = rates.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1));
    let max = rates.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
    let mut sign_changes = 0;
    let mut last_sign = 0.0;
    for (_, x) in &rates {
        if *x != 0.0 {
            let s = x.signum();
            if last_sign != 0.0 && s != last_sign {
                sign_changes += 1;
            }
            last_sign = s;
        }
    }
    let marks: Vec<f64> = records
        .iter()
        .filter_map(|r| r.mark_price.map(super::rows::Value::as_f64))
        .collect();
    let gaps = gaps(records, interval_h);
    SeriesStats {
        market,
        symbol: symbol.to_owned(),
        records: records.len() as u64,
        first_funding_time: records.first().map(|r| fmt_ms(r.funding_time)),
        last_funding_time: records.last().map(|r| fmt_ms(r.funding_time)),
        interval_hours: interval_h,
        mean_rate: mean,
        min_rate: min.map(|m| m.1),
        min_rate_time: min.map(|m| fmt_ms(m.0)),
        max_rate: max.map(|m| m.1),
        max_rate_time: max.map(|m| fmt_ms(m.0)),
        annualized_mean_rate: mean.map(|m| m * (24.0 / interval_h as f64) * 365.0),
        positive: rates.iter().filter(|(_, x)| *x > 0.0).count() as u64,
        negative: rates.iter().filter(|(_, x)| *x < 0.0).count() as u64,
        sign_changes,
        mark_price_nulls: (records.len() - marks.len()) as u64,
        mark_price_min: marks.iter().copied().reduce(f64::min),
        mark_price_max: marks.iter().copied().reduce(f64::max),
        missing: gaps.iter().map(|g| g.missing).sum(),
        gaps,
    }
}

/// The statistics as a readable table, one line per series.
pub fn render_table(series: &[SeriesStats]) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{:<6} {:<14} {:>7} {:<25} {:<25} {:>3} {:>12} {:>12} {:>12} {:>9} {:>7}\n",
        "market",
        "symbol",
        "records",
        "first",
        "last",
        "h",
        "mean rate",
        "min rate",
        "max rate",
        "annual",
        "missing"
    );
    let num = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |x| format!("{x:.8}"));
    for s in series {
        let _ = writeln!(
            out,
            "{:<6} {:<14} {:>7} {:<25} {:<25} {:>3} {:>12} {:>12} {:>12} {:>9} {:>7}",
            s.market.as_str(),
            s.symbol,
            s.records,
            s.first_funding_time.as_deref().unwrap_or("-"),
            s.last_funding_time.as_deref().unwrap_or("-"),
            s.interval_hours,
            num(s.mean_rate),
            num(s.min_rate),
            num(s.max_rate),
            s.annualized_mean_rate
                .map_or_else(|| "-".to_owned(), |x| format!("{:.2}%", x * 100.0)),
            s.missing
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::rows::Value;
    use super::*;

    const H8: i64 = 8 * HOUR_MS;

    fn rec(t: i64, rate: f64, mark: Option<f64>) -> FundingRecord {
        FundingRecord {
            funding_time: t,
            funding_rate: Value::Float(rate),
            mark_price: mark.map(Value::Float),
        }
    }

    #[test]
    fn statistics_of_a_series_with_a_gap_and_sign_changes() {
        let t0 = 1_704_067_200_000; // 2024-01-01T00:00:00Z
        let r = vec![
            rec(t0 + 1, 0.0001, None),
            rec(t0 + H8 + 3, -0.0002, Some(100.0)),
            rec(t0 + 2 * H8 + 2, 0.0, Some(101.0)),
            rec(t0 + 3 * H8 + 5, 0.0003, Some(99.0)),
            // 16:00 and 00:00 missing: two events.
            rec(t0 + 6 * H8 + 4, 0.0001, Some(102.0)),
        ];
        let s = series_stats(Market::UsdM, "BTCUSDT", &r);
        assert_eq!(s.records, 5);
        assert_eq!(s.interval_hours, 8);
        assert_eq!(
            s.first_funding_time.as_deref(),
            Some("2024-01-01T00:00:00.001Z")
        );
        assert!((s.mean_rate.unwrap() - 0.00006).abs() < 1e-12);
        assert!((s.annualized_mean_rate.unwrap() - 0.00006 * 1095.0).abs() < 1e-9);
        assert_eq!(s.min_rate, Some(-0.0002));
        assert_eq!(s.min_rate_time.as_deref(), Some("2024-01-01T08:00:00.003Z"));
        assert_eq!(s.max_rate, Some(0.0003));
        assert_eq!((s.positive, s.negative, s.sign_changes), (3, 1, 2));
        assert_eq!(s.mark_price_nulls, 1);
        assert_eq!(
            (s.mark_price_min, s.mark_price_max),
            (Some(99.0), Some(102.0))
        );
        assert_eq!(s.missing, 2);
        assert_eq!(s.gaps.len(), 1);
        assert_eq!(s.gaps[0].after, "2024-01-02T00:00:00.005Z");
    }

    #[test]
    fn a_four_hour_contract_has_no_gaps_at_four_hours() {
        let r: Vec<_> = (0..10)
            .map(|i| rec(i * 4 * HOUR_MS + 2, 0.0001, None))
            .collect();
        let s = series_stats(Market::UsdM, "X", &r);
        assert_eq!((s.interval_hours, s.missing), (4, 0));
        assert!((s.annualized_mean_rate.unwrap() - 0.0001 * 2190.0).abs() < 1e-9);
    }

    #[test]
    fn an_empty_series_has_no_figures() {
        let s = series_stats(Market::CoinM, "BTCUSD_PERP", &[]);
        assert_eq!((s.records, s.interval_hours, s.mean_rate), (0, 8, None));
        assert!(render_table(&[s]).contains("BTCUSD_PERP"));
    }
}

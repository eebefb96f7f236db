//! The run report: `_kline_etl/summary.json` (stable, documented, machine-readable) and the same series
//! table as `_kline_etl/summary.parq` for warehouses, plus the readable table printed at the end of
//! `run` and by `kline-etl summary`.
//!
//! `_kline_etl/summary.json` layout (schema version [`REPORT_VERSION`]):
//!
//! ```text
//! { "report_version": 1, "tool": {"name", "version"},
//!   "pipeline": {"name", "hash"} | null,         // hash: SHA-256 of the pipeline file bytes
//!   "run": { … } | null,                         // null when recomputed from files alone
//!   "series": [ { "market", "symbol", "interval", "rows", "expected_rows", "missing",
//!                 "first_open_time", "last_open_time", "gaps": [{start, end, missing, cause}],
//!                 "open", "high", "low", "close", "volume", "quote_volume", "trades", "vwap",
//!                 "log_return_mean", "log_return_std", "annualised_volatility",
//!                 "describe": { column: {count, mean, std, min, 25%, 50%, 75%, max} },
//!                 "partitions": [ {"path", "rows", "bytes", "first_open_time", "last_open_time",
//!                                  "expected_rows", "missing", "gaps", OHLC, totals, "vwap",
//!                                  "quality": {check: n}} ] } ] }
//! ```
//! Times are RFC 3339 UTC strings with milliseconds.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::series::{Gap, GapCause, KlineView, SeriesStats};
use super::sketch::Describe;
use crate::interval::Interval;
use crate::market::Market;
use crate::time::fmt_ms;
use crate::transform::{Column, KlineRows};

/// Version of the `_kline_etl/summary.json` layout; bumped on any incompatible change.
pub const REPORT_VERSION: u32 = 1;

fn as_f64(c: &Column) -> std::borrow::Cow<'_, [f64]> {
    match c {
        Column::Float64(v) => std::borrow::Cow::Borrowed(v.as_slice()),
        Column::Decimal(v) => std::borrow::Cow::Owned(v.iter().map(|x| *x as f64 / 1e8).collect()),
    }
}

/// Statistics of ordered kline rows.
pub fn series_stats(interval: Interval, rows: &KlineRows) -> SeriesStats {
    let open = as_f64(&rows.open);
    let high = as_f64(&rows.high);
    let low = as_f64(&rows.low);
    let close = as_f64(&rows.close);
    let volume = as_f64(&rows.volume);
    let quote = as_f64(&rows.quote_volume);
    let tbb = as_f64(&rows.taker_buy_base_volume);
    let tbq = as_f64(&rows.taker_buy_quote_volume);
    let trades: Vec<f64> = rows.trades.iter().map(|t| *t as f64).collect();
    SeriesStats::from_view(
        interval,
        &KlineView {
            open_time: &rows.open_time,
            open: &open,
            high: &high,
            low: &low,
            close: &close,
            volume: &volume,
            quote_volume: &quote,
            trades: &trades,
            taker_buy_base_volume: &tbb,
            taker_buy_quote_volume: &tbq,
        },
    )
}

/// What a stretch of candles holds: counts, coverage, gaps, OHLC range and totals. Shared by
/// the series and partition reports (flattened into both in JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeReport {
    /// Rows.
    pub rows: u64,
    /// Rows the interval grid expects between the first and last open time.
    pub expected_rows: i64,
    /// Missing candles (sum over gaps).
    pub missing: i64,
    /// First open time.
    pub first_open_time: Option<String>,
    /// Last open time.
    pub last_open_time: Option<String>,
    /// Gaps (for a partition: inside it; a gap across a seam is in the series' list).
    pub gaps: Vec<GapReport>,
    /// First open.
    pub open: Option<f64>,
    /// Highest high.
    pub high: Option<f64>,
    /// Lowest low.
    pub low: Option<f64>,
    /// Last close.
    pub close: Option<f64>,
    /// Total base volume.
    pub volume: f64,
    /// Total quote volume.
    pub quote_volume: f64,
    /// Total trades.
    pub trades: f64,
    /// Quote volume / base volume.
    pub vwap: Option<f64>,
}

impl RangeReport {
    /// The report of `s`, candles at `interval`.
    pub fn new(interval: Interval, s: &SeriesStats) -> RangeReport {
        RangeReport {
            rows: s.rows,
            expected_rows: s.expected_rows(interval),
            missing: s.missing(),
            first_open_time: s.first_open.map(fmt_ms),
            last_open_time: s.last_open.map(fmt_ms),
            gaps: s.gaps.iter().map(GapReport::from).collect(),
            open: s.open,
            high: s.high,
            low: s.low,
            close: s.close,
            volume: s.total("volume"),
            quote_volume: s.total("quote_volume"),
            trades: s.total("trades"),
            vwap: s.vwap(),
        }
    }
}

/// One partition file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionReport {
    /// Path relative to the output root.
    pub path: String,
    /// File size.
    pub bytes: u64,
    /// What the file holds.
    #[serde(flatten)]
    pub range: RangeReport,
    /// Quality-check findings in the file (see `transform::quality`), by check.
    pub quality: BTreeMap<String, u64>,
}

/// A gap, with readable times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapReport {
    /// First missing open time.
    pub start: String,
    /// First open time present after the gap (exclusive end).
    pub end: String,
    /// Missing candles.
    pub missing: i64,
    /// `exchange_none`, `fetch_failed`, `invalid_row` or `empty_reply`.
    pub cause: GapCause,
}

impl From<&Gap> for GapReport {
    fn from(g: &Gap) -> Self {
        GapReport {
            start: fmt_ms(g.start),
            end: fmt_ms(g.end),
            missing: g.missing,
            cause: g.cause,
        }
    }
}

/// Statistics of one market × symbol × interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesReport {
    /// Market.
    pub market: Market,
    /// Symbol.
    pub symbol: String,
    /// Interval.
    pub interval: Interval,
    /// What the series holds.
    #[serde(flatten)]
    pub range: RangeReport,
    /// Mean log return per candle.
    pub log_return_mean: Option<f64>,
    /// Standard deviation of log returns per candle.
    pub log_return_std: Option<f64>,
    /// `log_return_std` scaled to 365 days.
    pub annualised_volatility: Option<f64>,
    /// `describe()` per numeric column.
    pub describe: BTreeMap<String, Describe>,
    /// Files.
    pub partitions: Vec<PartitionReport>,
}

impl SeriesReport {
    /// Build the report of a series from its statistics.
    pub fn new(
        market: Market,
        symbol: &str,
        interval: Interval,
        s: &SeriesStats,
        partitions: Vec<PartitionReport>,
    ) -> SeriesReport {
        SeriesReport {
            market,
            symbol: symbol.to_owned(),
            interval,
            range: RangeReport::new(interval, s),
            log_return_mean: (s.log_returns.count > 0).then_some(s.log_returns.mean),
            log_return_std: s.log_returns.std(),
            annualised_volatility: s.annualised_volatility(interval),
            describe: s
                .describe()
                .into_iter()
                .map(|(k, d)| (k.to_owned(), d))
                .collect(),
            partitions,
        }
    }
}

/// The tool that wrote a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// `kline-etl`.
    pub name: String,
    /// Crate version.
    pub version: String,
}

impl Default for ToolInfo {
    fn default() -> Self {
        ToolInfo {
            name: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The pipeline a report belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineInfo {
    /// `name`.
    pub name: String,
    /// SHA-256 (hex) of the pipeline file as read (before `${VAR}` interpolation, so secrets
    /// never enter the hash input's record).
    pub hash: String,
}

/// `_kline_etl/summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report<R> {
    /// [`REPORT_VERSION`].
    pub report_version: u32,
    /// Who wrote it.
    pub tool: ToolInfo,
    /// The pipeline, when written by `run`.
    pub pipeline: Option<PipelineInfo>,
    /// The run's own figures, when written by `run`.
    pub run: Option<R>,
    /// Per series statistics of the data on disk.
    pub series: Vec<SeriesReport>,
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "-".to_owned(),
        Some(x) if x.abs() >= 1e6 => format!("{x:.0}"),
        Some(x) if x.abs() >= 1.0 => format!("{x:.2}"),
        Some(x) => format!("{x:.8}"),
    }
}

/// The readable table: one line per series, then the gaps.
pub fn render_table(series: &[SeriesReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<6} {:<14} {:<4} {:>9} {:>9} {:>7}  {:<24} {:<24} {:>12} {:>12} {:>12} {:>14} {:>8}",
        "market",
        "symbol",
        "int",
        "rows",
        "expected",
        "missing",
        "first open (UTC)",
        "last open (UTC)",
        "low",
        "high",
        "close",
        "volume",
        "ann.vol"
    );
    for s in series {
        let _ = writeln!(
            out,
            "{:<6} {:<14} {:<4} {:>9} {:>9} {:>7}  {:<24} {:<24} {:>12} {:>12} {:>12} {:>14} {:>8}",
            s.market.as_str(),
            s.symbol,
            s.interval.as_str(),
            s.range.rows,
            s.range.expected_rows,
            s.range.missing,
            s.range.first_open_time.as_deref().unwrap_or("-"),
            s.range.last_open_time.as_deref().unwrap_or("-"),
            num(s.range.low),
            num(s.range.high),
            num(s.range.close),
            num(Some(s.range.volume)),
            s.annualised_volatility
                .map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0)),
        );
    }
    for s in series {
        for g in &s.range.gaps {
            let cause = match g.cause {
                GapCause::ExchangeNone => "exchange returned none",
                GapCause::FetchFailed => "fetch failed",
                GapCause::InvalidRow => "malformed rows from the exchange, not written",
                GapCause::EmptyReply => "empty reply inside the exchange's history",
            };
            let _ = writeln!(
                out,
                "gap: {} {} {}: {} candle(s) missing from {} to {} ({cause})",
                s.market, s.symbol, s.interval, g.missing, g.start, g.end
            );
        }
    }
    out
}

/// Reads one statistic out of a `describe()` row.
type Getter = fn(&Describe) -> Option<f64>;

/// The `describe()` table of one series, laid out like pandas prints it.
pub fn render_describe(s: &SeriesReport) -> String {
    let mut out = String::new();
    // Schema order, as pandas prints the columns.
    let cols: Vec<(&str, &Describe)> = super::series::NUMERIC_COLUMNS
        .iter()
        .filter_map(|n| s.describe.get(*n).map(|d| (*n, d)))
        .collect();
    let _ = write!(out, "{:<6}", "");
    for (name, _) in &cols {
        let _ = write!(out, " {name:>22}");
    }
    out.push('\n');
    let rows: [(&str, Getter); 8] = [
        ("count", |d| Some(d.count as f64)),
        ("mean", |d| d.mean),
        ("std", |d| d.std),
        ("min", |d| d.min),
        ("25%", |d| d.p25),
        ("50%", |d| d.p50),
        ("75%", |d| d.p75),
        ("max", |d| d.max),
    ];
    for (label, get) in rows {
        let _ = write!(out, "{label:<6}");
        for (_, d) in &cols {
            let _ = write!(out, " {:>22}", num(get(d)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PriceType, TransformOptions};
    use crate::symbol::Symbol;
    use crate::transform::{KlineContext, parse_klines};

    fn rows(body: &str, prices: PriceType) -> KlineRows {
        let symbol: Symbol = "BTCUSDT".parse().unwrap();
        let options = TransformOptions {
            prices,
            ..TransformOptions::default()
        };
        let ctx = KlineContext {
            market: Market::Spot,
            symbol: &symbol,
            interval: Interval::H1,
            options: &options,
        };
        parse_klines(body.as_bytes(), &ctx).unwrap()
    }

    const PAGE: &str = r#"[[0,"10.0","12.0","9.0","11.0","2.0",3599999,"22.0",5,"1.0","11.0","0"],[3600000,"11.0","13.0","10.0","12.0","3.0",7199999,"36.0",6,"1.0","12.0","0"],[10800000,"12.0","12.5","11.5","12.0","1.0",14399999,"12.0",1,"0.5","6.0","0"]]"#;

    #[test]
    fn float_and_decimal_rows_give_the_same_report() {
        let f = series_stats(Interval::H1, &rows(PAGE, PriceType::Float64));
        let d = series_stats(Interval::H1, &rows(PAGE, PriceType::Decimal));
        let rf = SeriesReport::new(Market::Spot, "BTCUSDT", Interval::H1, &f, vec![]);
        let rd = SeriesReport::new(Market::Spot, "BTCUSDT", Interval::H1, &d, vec![]);
        assert_eq!(rf, rd);
        assert_eq!(rf.range.rows, 3);
        assert_eq!(rf.range.expected_rows, 4);
        assert_eq!(rf.range.missing, 1);
        assert_eq!(rf.range.gaps[0].start, "1970-01-01T02:00:00.000Z");
        assert_eq!(rf.range.volume, 6.0);
        assert_eq!(rf.range.trades, 12.0);
        assert_eq!(rf.range.vwap, Some(70.0 / 6.0));
        assert_eq!(rf.range.high, Some(13.0));
        assert_eq!(rf.range.low, Some(9.0));
        let table = render_table(std::slice::from_ref(&rf));
        assert!(
            table.contains("gap: spot BTCUSDT 1h: 1 candle(s) missing"),
            "{table}"
        );
        let desc = render_describe(&rf);
        assert!(
            desc.contains("count") && desc.contains("quote_volume"),
            "{desc}"
        );
    }
}

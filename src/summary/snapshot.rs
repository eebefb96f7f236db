//! Statistics of the snapshot datasets for `_kline_etl/summary.json` (written under
//! `<root>/<dataset>/_kline_etl/summary.json`): per ticker snapshot the symbols and price extremes, per
//! order book the best prices, spread and depth figures. Pure functions over typed rows.

use serde::{Deserialize, Serialize};

use super::report::{PipelineInfo, ToolInfo};
use crate::time::fmt_ms;
use crate::transform::depth::{DepthQuality, DepthRows, Side, check_depth};
use crate::transform::ticker::{TickerRows, non_positive_prices};

/// A symbol and its price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolPrice {
    /// The symbol.
    pub symbol: String,
    /// Its price.
    pub price: f64,
}

/// One ticker snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TickerStats {
    /// `spot`, `usdm` or `coinm`.
    pub market: String,
    /// Snapshot time (UTC).
    pub snapshot_time: String,
    /// Symbols in the snapshot.
    pub symbols: usize,
    /// The lowest price.
    pub min: Option<SymbolPrice>,
    /// The highest price.
    pub max: Option<SymbolPrice>,
    /// Symbols whose price is not positive (quality finding).
    pub non_positive: Vec<String>,
}

/// Statistics of one ticker snapshot.
pub fn ticker_stats(rows: &TickerRows) -> TickerStats {
    let at = |i: usize| SymbolPrice {
        symbol: rows.symbol[i].clone(),
        price: rows.price.f64_at(i),
    };
    let by_price = |a: &usize, b: &usize| rows.price.f64_at(*a).total_cmp(&rows.price.f64_at(*b));
    TickerStats {
        market: rows.market.as_str().to_owned(),
        snapshot_time: fmt_ms(rows.snapshot_ms),
        symbols: rows.len(),
        min: (0..rows.len()).min_by(by_price).map(at),
        max: (0..rows.len()).max_by(by_price).map(at),
        non_positive: non_positive_prices(rows),
    }
}

/// One side of a book.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SideStats {
    /// Levels.
    pub levels: usize,
    /// Best price.
    pub best: Option<f64>,
    /// Worst (deepest) price.
    pub worst: Option<f64>,
    /// Total quantity.
    pub quantity: f64,
    /// Total price × quantity (quote asset; COIN-M: USD of contracts × price).
    pub notional: f64,
    /// Price × quantity of the levels within 1% of the mid price.
    pub notional_within_1pct: f64,
}

/// One order-book snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepthStats {
    /// `spot`, `usdm` or `coinm`.
    pub market: String,
    /// The symbol.
    pub symbol: String,
    /// Snapshot time (UTC).
    pub snapshot_time: String,
    /// The book's `lastUpdateId`.
    pub last_update_id: i64,
    /// `(best bid + best ask) / 2`.
    pub mid: Option<f64>,
    /// `best ask - best bid`.
    pub spread: Option<f64>,
    /// Spread in basis points of the mid.
    pub spread_bps: Option<f64>,
    /// Bids.
    pub bids: SideStats,
    /// Asks.
    pub asks: SideStats,
    /// Book checks.
    pub quality: DepthQuality,
}

fn side_stats(rows: &DepthRows, side: Side, mid: Option<f64>) -> SideStats {
    let mut s = SideStats::default();
    for i in rows.side_rows(side) {
        let (p, q) = (rows.price.f64_at(i), rows.quantity.f64_at(i));
        s.levels += 1;
        s.best.get_or_insert(p);
        s.worst = Some(p);
        s.quantity += q;
        s.notional += p * q;
        if mid.is_some_and(|m| m > 0.0 && ((p - m) / m).abs() <= 0.01) {
            s.notional_within_1pct += p * q;
        }
    }
    s
}

/// Statistics of one order book.
pub fn depth_stats(rows: &DepthRows) -> DepthStats {
    let (bid, ask) = (rows.best(Side::Bid), rows.best(Side::Ask));
    let mid = bid.zip(ask).map(|(b, a)| f64::midpoint(b, a));
    let spread = bid.zip(ask).map(|(b, a)| a - b);
    DepthStats {
        market: rows.market.as_str().to_owned(),
        symbol: rows.symbol.to_string(),
        snapshot_time: fmt_ms(rows.snapshot_ms),
        last_update_id: rows.last_update_id,
        mid,
        spread,
        spread_bps: spread
            .zip(mid)
            .filter(|(_, m)| *m > 0.0)
            .map(|(s, m)| s / m * 10_000.0),
        bids: side_stats(rows, Side::Bid, mid),
        asks: side_stats(rows, Side::Ask, mid),
        quality: check_depth(rows),
    }
}

/// A symbol whose snapshot failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFailure {
    /// The symbol (or `*` for a whole-market request).
    pub symbol: String,
    /// Why.
    pub error: String,
}

/// The `run` section of a snapshot dataset's `_kline_etl/summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRunInfo {
    /// When the run started (UTC).
    pub started_at: String,
    /// When it finished.
    pub finished_at: String,
    /// Wall time, ms.
    pub elapsed_ms: u64,
    /// `ok`, `tasks_failed`, `resumable`, `output`, ...
    pub outcome: String,
    /// The process exit code.
    pub exit_code: u8,
    /// The symbols asked for (resolved from a selector), or `["*"]` for the whole market.
    pub symbols: Vec<String>,
    /// `depth_limit` (depth only).
    pub depth_limit: Option<u32>,
    /// Requests sent (every attempt, `/time` and `exchangeInfo` included).
    pub requests: u64,
    /// Request weight used.
    pub weight_used: u64,
    /// The exchange's weight limit per window.
    pub weight_limit: u32,
    /// The share of it this run may use.
    pub weight_share: f64,
    /// HTTP 429 replies received.
    pub http_429: u64,
    /// HTTP 418 replies received.
    pub http_418: u64,
    /// Retries by cause.
    pub retries: std::collections::BTreeMap<String, u64>,
    /// Rows written.
    pub rows_written: u64,
    /// Snapshot files written.
    pub files_written: u64,
    /// Of which replaced a file of the same snapshot (a rerun).
    pub files_replaced: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Symbols that failed.
    pub failures: Vec<SnapshotFailure>,
}

/// `<root>/<dataset>/_kline_etl/summary.json` of a snapshot dataset: the same header as the klines
/// report (`report_version`, `tool`, `pipeline`, `run`), then the snapshot statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotReport {
    /// [`super::report::REPORT_VERSION`].
    pub report_version: u32,
    /// Who wrote it.
    pub tool: ToolInfo,
    /// The pipeline.
    pub pipeline: Option<PipelineInfo>,
    /// The run's own figures.
    pub run: Option<SnapshotRunInfo>,
    /// `ticker_price` or `depth`.
    pub dataset: String,
    /// Snapshot files of the dataset on disk (all runs).
    pub files_on_disk: usize,
    /// The ticker snapshot of this run (ticker_price).
    pub ticker: Option<TickerStats>,
    /// The order books of this run (depth), by symbol.
    pub depth: Vec<DepthStats>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TransformOptions;
    use crate::market::Market;
    use crate::transform::depth::parse_depth;
    use crate::transform::ticker::parse_ticker_price;

    fn opts() -> TransformOptions {
        TransformOptions::default()
    }

    #[test]
    fn book_figures_from_a_small_book() {
        let body = br#"{"lastUpdateId":7,"bids":[["99","2"],["90","1"]],"asks":[["101","1"],["200","3"]]}"#;
        let s: crate::symbol::Symbol = "BTCUSDT".parse().unwrap();
        let d = depth_stats(&parse_depth(body, Market::Spot, &s, 0, &opts()).unwrap());
        assert_eq!(d.mid, Some(100.0));
        assert_eq!(d.spread, Some(2.0));
        assert_eq!(d.spread_bps, Some(200.0));
        assert_eq!(
            (d.bids.levels, d.bids.best, d.bids.worst),
            (2, Some(99.0), Some(90.0))
        );
        assert!((d.bids.quantity - 3.0).abs() < 1e-12);
        assert!((d.bids.notional - 288.0).abs() < 1e-9);
        assert!((d.bids.notional_within_1pct - 198.0).abs() < 1e-9);
        assert!((d.asks.notional_within_1pct - 101.0).abs() < 1e-9);
        assert_eq!(d.quality.violations(), 0);
    }

    #[test]
    fn ticker_extremes() {
        let body = br#"[{"symbol":"A","price":"3"},{"symbol":"B","price":"0.5"},{"symbol":"C","price":"0"}]"#;
        let t = ticker_stats(&parse_ticker_price(body, Market::Spot, 0, None, &opts()).unwrap());
        assert_eq!(t.symbols, 3);
        assert_eq!(t.min.unwrap().symbol, "C");
        assert_eq!(t.max.unwrap().symbol, "A");
        assert_eq!(t.non_positive, ["C"]);
    }
}

//! Summary: statistics that notebooks get from `describe()`, kept as mergeable values so they
//! are folded per page, per partition and per run without holding history in memory, plus
//! the machine-readable `_kline_etl/summary.json` run report.
//!
//! - [`sketch`]: one numeric column (moments, min/max, quantile sketch).
//! - [`series`]: one kline series (gaps, OHLC range, totals, VWAP, returns, volatility).
//! - [`report`]: `_kline_etl/summary.json` / `summary.parq` and the readable tables.
//! - [`dataset`]: statistics and chart data recomputed from the Parquet files alone.
//! - [`table`]: `_kline_etl/summary.parq`, the series statistics as one flat table.
//! - [`snapshot`]: ticker and order-book statistics of the snapshot datasets.
//! - [`chart`]: the candlestick + volume + moving-average chart (SVG, PNG).

pub mod chart;
pub mod dataset;
pub mod report;
pub mod series;
pub mod sketch;
pub mod snapshot;
pub mod table;

pub use series::{Gap, GapCause, KlineView, SeriesStats};
pub use sketch::{ColumnStats, Describe, Moments};

//! Ticker price snapshots: the `/ticker/price` reply of any market into typed rows
//! ([`TickerRows`]) and their Arrow batch, plus the shared pieces of both snapshot datasets
//! (typed price columns, the snapshot-time column). Pure, synchronous code.
//!
//! # Columns (`ticker_price` dataset)
//!
//! | column | Arrow type | notes |
//! |---|---|---|
//! | `snapshot_time` | `Timestamp(ms or µs, "UTC")` | when the snapshot was taken (whole second, exchange clock) |
//! | `symbol` | `Utf8` | e.g. `BTCUSDT`, `BTCUSD_PERP` |
//! | `price` | `Float64` or `Decimal128(38, 8)` | last price; `transform.prices` |
//!
//! Rows are sorted by symbol, one per symbol. All columns are non-null.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::{ArrayRef, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::Deserialize;

use super::schema::{to_value_array, ts_type, value_type};
use super::{Column, SchemaError};
use crate::config::{PriceType, TimeUnit, TransformOptions};
use crate::market::Market;
use crate::symbol::Symbol;

/// A snapshot reply that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotParseError {
    /// The body is not the JSON shape the endpoint documents.
    #[error("cannot read the `{endpoint}` reply: {reason}")]
    Shape {
        /// `/ticker/price` or `/depth`.
        endpoint: &'static str,
        /// What serde said.
        reason: String,
    },
    /// A price or quantity is not a decimal number the output type can hold.
    #[error("`{endpoint}` value `{value}` for `{symbol}` is not a usable number: {reason}")]
    Value {
        /// `/ticker/price` or `/depth`.
        endpoint: &'static str,
        /// The symbol concerned.
        symbol: String,
        /// The offending text.
        value: String,
        /// Why.
        reason: String,
    },
}

/// Parse one decimal text into the price type's representation, appending it to `col`.
pub(crate) fn push_value(col: &mut Column, text: &str) -> Result<(), String> {
    match col {
        Column::Float64(v) => {
            let x: f64 = text
                .parse()
                .map_err(|_| format!("`{text}` is not a number"))?;
            if !x.is_finite() {
                return Err(format!("`{text}` is out of range"));
            }
            v.push(x);
        }
        Column::Decimal(v) => v.push(super::parse::parse_decimal_str(text)?),
    }
    Ok(())
}

/// An empty column of the price type.
pub(crate) fn empty_column(prices: PriceType, cap: usize) -> Column {
    match prices {
        PriceType::Float64 => Column::Float64(Vec::with_capacity(cap)),
        PriceType::Decimal => Column::Decimal(Vec::with_capacity(cap)),
    }
}

/// A timestamp column of `n` copies of `ms`, in the output unit.
pub(crate) fn time_column(ms: i64, n: usize, unit: TimeUnit) -> Result<ArrayRef, SchemaError> {
    Ok(match unit {
        TimeUnit::Millisecond => {
            Arc::new(TimestampMillisecondArray::from(vec![ms; n]).with_timezone("UTC"))
        }
        TimeUnit::Microsecond => {
            let us = ms.checked_mul(1000).ok_or_else(|| SchemaError::Value {
                column: "snapshot_time",
                reason: "the time overflows microseconds".to_owned(),
            })?;
            Arc::new(TimestampMicrosecondArray::from(vec![us; n]).with_timezone("UTC"))
        }
    })
}

/// One `/ticker/price` element (spot: `symbol`, `price`; futures add `time`, COIN-M `ps`).
#[derive(Debug, Deserialize)]
struct RawTicker {
    symbol: String,
    price: String,
    #[serde(default)]
    time: Option<i64>,
}

/// A single object (spot and USDⓈ-M with `symbol`) or an array (everything else).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawTickers {
    One(RawTicker),
    Many(Vec<RawTicker>),
}

/// One ticker snapshot of one market, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct TickerRows {
    /// The market.
    pub market: Market,
    /// Snapshot time, ms (whole second).
    pub snapshot_ms: i64,
    /// Symbols, sorted, unique.
    pub symbol: Vec<String>,
    /// Prices, aligned with `symbol`.
    pub price: Column,
}

impl TickerRows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.symbol.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.symbol.is_empty()
    }

    /// Add the rows of another reply of the same snapshot (per-symbol requests), keeping this
    /// snapshot's time, the rows sorted by symbol and the first row of a symbol.
    pub fn absorb(&mut self, other: &TickerRows) {
        let mut idx: Vec<(String, usize, bool)> = Vec::with_capacity(self.len() + other.len());
        idx.extend(
            self.symbol
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), i, true)),
        );
        idx.extend(
            other
                .symbol
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), i, false)),
        );
        // Stable: for equal symbols, this snapshot's row comes first and wins.
        idx.sort_by(|a, b| a.0.cmp(&b.0));
        idx.dedup_by(|a, b| a.0 == b.0);
        self.price = match (&self.price, &other.price) {
            (Column::Decimal(a), Column::Decimal(b)) => Column::Decimal(
                idx.iter()
                    .map(|(_, i, mine)| if *mine { a[*i] } else { b[*i] })
                    .collect(),
            ),
            (a, b) => Column::Float64(
                idx.iter()
                    .map(|(_, i, mine)| if *mine { a.f64_at(*i) } else { b.f64_at(*i) })
                    .collect(),
            ),
        };
        self.symbol = idx.into_iter().map(|(s, _, _)| s).collect();
    }
}

/// The exchange time a reply states (futures `time`), if any: the latest one.
fn stated_time(rows: &[RawTicker]) -> Option<i64> {
    rows.iter().filter_map(|r| r.time).max()
}

/// Parse a `/ticker/price` body. `clock_ms` is the exchange clock when the reply arrived (used
/// when the reply states no time, as on spot); the snapshot time is the reply's time or the
/// clock, floored to the second. `keep`, when given, keeps only those symbols (futures replies
/// to a list are the whole market). Duplicate symbols keep their first row.
pub fn parse_ticker_price(
    body: &[u8],
    market: Market,
    clock_ms: i64,
    keep: Option<&[Symbol]>,
    options: &TransformOptions,
) -> Result<TickerRows, SnapshotParseError> {
    let raw: RawTickers = serde_json::from_slice(body).map_err(|e| SnapshotParseError::Shape {
        endpoint: "/ticker/price",
        reason: e.to_string(),
    })?;
    let mut rows = match raw {
        RawTickers::One(r) => vec![r],
        RawTickers::Many(v) => v,
    };
    let t = stated_time(&rows).unwrap_or(clock_ms);
    let snapshot_ms = t - t.rem_euclid(1000);
    if let Some(keep) = keep {
        rows.retain(|r| keep.iter().any(|s| s.as_str() == r.symbol));
    }
    rows.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    rows.dedup_by(|a, b| a.symbol == b.symbol);
    let mut price = empty_column(options.prices, rows.len());
    let mut symbol = Vec::with_capacity(rows.len());
    for r in rows {
        push_value(&mut price, &r.price).map_err(|reason| SnapshotParseError::Value {
            endpoint: "/ticker/price",
            symbol: r.symbol.clone(),
            value: r.price.clone(),
            reason,
        })?;
        symbol.push(r.symbol);
    }
    Ok(TickerRows {
        market,
        snapshot_ms,
        symbol,
        price,
    })
}

/// Symbols whose price is not positive (a quality finding: delisted or halted symbols).
pub fn non_positive_prices(rows: &TickerRows) -> Vec<String> {
    (0..rows.len())
        .filter(|&i| rows.price.f64_at(i) <= 0.0)
        .map(|i| rows.symbol[i].clone())
        .collect()
}

/// The Arrow schema of the `ticker_price` dataset.
pub fn ticker_schema(prices: PriceType, unit: TimeUnit) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("snapshot_time", ts_type(unit), false),
        Field::new("symbol", DataType::Utf8, false),
        Field::new("price", value_type(prices), false),
    ]))
}

/// The rows as an Arrow batch of [`ticker_schema`].
pub fn ticker_batch(rows: &TickerRows, unit: TimeUnit) -> Result<RecordBatch, SchemaError> {
    let schema = ticker_schema(rows.price.price_type(), unit);
    let cols: Vec<ArrayRef> = vec![
        time_column(rows.snapshot_ms, rows.len(), unit)?,
        Arc::new(StringArray::from(rows.symbol.clone())),
        to_value_array(rows.price.clone())?,
    ];
    RecordBatch::try_new(schema, cols).map_err(SchemaError::Arrow)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::transform::tests::opts;

    #[test]
    fn spot_list_parses_sorted_with_the_clock_time() {
        let body =
            br#"[{"symbol":"ETHUSDT","price":"2000.10"},{"symbol":"BTCUSDT","price":"30000.5"}]"#;
        let r = parse_ticker_price(
            body,
            Market::Spot,
            1_700_000_000_123,
            None,
            &opts(PriceType::Float64),
        )
        .unwrap();
        assert_eq!(r.symbol, ["BTCUSDT", "ETHUSDT"]);
        assert_eq!(r.price, Column::Float64(vec![30000.5, 2000.1]));
        assert_eq!(r.snapshot_ms, 1_700_000_000_000);
    }

    #[test]
    fn futures_single_object_uses_its_time_and_decimals_are_exact() {
        let body = br#"{"symbol":"BTCUSDT","price":"6000.01","time":1589437530011}"#;
        let r = parse_ticker_price(body, Market::UsdM, 1, None, &opts(PriceType::Decimal)).unwrap();
        assert_eq!(r.snapshot_ms, 1_589_437_530_000);
        assert_eq!(r.price, Column::Decimal(vec![600_001_000_000]));
    }

    #[test]
    fn a_selection_filters_the_whole_market_reply() {
        let body = br#"[{"symbol":"BTCUSD_PERP","ps":"BTCUSD","price":"1","time":5000},{"symbol":"ETHUSD_PERP","ps":"ETHUSD","price":"2","time":5000}]"#;
        let keep = ["ETHUSD_PERP".parse::<Symbol>().unwrap()];
        let r = parse_ticker_price(
            body,
            Market::CoinM,
            1,
            Some(&keep),
            &opts(PriceType::Float64),
        )
        .unwrap();
        assert_eq!(r.symbol, ["ETHUSD_PERP"]);
        let batch = ticker_batch(&r, TimeUnit::Microsecond).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema().field(0).name(), "snapshot_time");
    }

    #[test]
    fn bad_bodies_and_values_are_errors_not_panics() {
        let o = opts(PriceType::Float64);
        assert!(parse_ticker_price(b"<html>", Market::Spot, 0, None, &o).is_err());
        assert!(parse_ticker_price(br#"{"code":-1121}"#, Market::Spot, 0, None, &o).is_err());
        let e = parse_ticker_price(
            br#"[{"symbol":"A","price":"x"}]"#,
            Market::Spot,
            0,
            None,
            &o,
        )
        .unwrap_err();
        assert!(e.to_string().contains("`x`"), "{e}");
    }

    #[test]
    fn per_symbol_replies_merge_sorted() {
        let o = opts(PriceType::Decimal);
        let mut a = parse_ticker_price(
            br#"{"symbol":"XRPUSDT","price":"0.5"}"#,
            Market::Spot,
            7_000,
            None,
            &o,
        )
        .unwrap();
        let b = parse_ticker_price(
            br#"{"symbol":"BTCUSDT","price":"3"}"#,
            Market::Spot,
            9_000,
            None,
            &o,
        )
        .unwrap();
        a.absorb(&b);
        assert_eq!(a.symbol, ["BTCUSDT", "XRPUSDT"]);
        assert_eq!(a.price, Column::Decimal(vec![300_000_000, 50_000_000]));
        assert_eq!(a.snapshot_ms, 7_000);
    }

    #[test]
    fn zero_prices_are_reported() {
        let body = br#"[{"symbol":"A","price":"0.0"},{"symbol":"B","price":"1"}]"#;
        let r = parse_ticker_price(body, Market::Spot, 0, None, &opts(PriceType::Float64)).unwrap();
        assert_eq!(non_positive_prices(&r), ["A"]);
    }
}

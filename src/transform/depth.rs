//! Order-book snapshots: a `/depth` reply into typed rows ([`DepthRows`], one per level and
//! side), the book checks, and the Arrow batch. Pure, synchronous code.
//!
//! # Columns (`depth` dataset)
//!
//! | column | Arrow type | notes |
//! |---|---|---|
//! | `snapshot_time` | `Timestamp(ms or µs, "UTC")` | whole second: futures' transaction time `T`, spot the exchange clock |
//! | `symbol` | `Dictionary(Int32, Utf8)` | also the `symbol=` directory (dictionary for the same reason as klines) |
//! | `last_update_id` | `Int64` | the book's `lastUpdateId` |
//! | `side` | `Utf8` | `bid` or `ask` |
//! | `level` | `Int32` | 1 = best price of the side, 2 = next, ... |
//! | `price` | `Float64` or `Decimal128(38, 8)` | `transform.prices` |
//! | `quantity` | same | base asset (COIN-M: contracts) |
//!
//! Rows: the bids from level 1 down, then the asks from level 1 up.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::{ArrayRef, Int32Array, Int64Array, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use super::schema::{label_array, label_type, to_value_array, ts_type, value_type};
use super::ticker::{SnapshotParseError, empty_column, push_value, time_column};
use super::{Column, SchemaError};
use crate::config::{PriceType, TimeUnit, TransformOptions};
use crate::market::Market;
use crate::symbol::Symbol;

/// A book side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Buy orders, best (highest) first.
    Bid,
    /// Sell orders, best (lowest) first.
    Ask,
}

impl Side {
    /// `bid` or `ask`, the `side` column's values.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Bid => "bid",
            Side::Ask => "ask",
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawDepth {
    #[serde(rename = "lastUpdateId")]
    last_update_id: i64,
    #[serde(rename = "T", default)]
    transaction_time: Option<i64>,
    bids: Vec<(String, String)>,
    asks: Vec<(String, String)>,
}

/// One order-book snapshot of one symbol, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthRows {
    /// The market.
    pub market: Market,
    /// The symbol.
    pub symbol: Symbol,
    /// Snapshot time, ms (whole second).
    pub snapshot_ms: i64,
    /// `lastUpdateId`.
    pub last_update_id: i64,
    /// Side per row.
    pub side: Vec<Side>,
    /// Level per row (1 = best).
    pub level: Vec<i32>,
    /// Price per row.
    pub price: Column,
    /// Quantity per row.
    pub quantity: Column,
}

impl DepthRows {
    /// Number of rows (levels of both sides).
    pub fn len(&self) -> usize {
        self.side.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.side.is_empty()
    }

    /// Row indexes of one side, best first.
    pub fn side_rows(&self, side: Side) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(move |&i| self.side[i] == side)
    }

    /// Best price of a side.
    pub fn best(&self, side: Side) -> Option<f64> {
        self.side_rows(side).next().map(|i| self.price.f64_at(i))
    }
}

/// Parse a `/depth` body. `clock_ms` is the exchange clock when the reply arrived (spot states
/// no time); the snapshot time is futures' `T` or the clock, floored to the second.
pub fn parse_depth(
    body: &[u8],
    market: Market,
    symbol: &Symbol,
    clock_ms: i64,
    options: &TransformOptions,
) -> Result<DepthRows, SnapshotParseError> {
    let raw: RawDepth = serde_json::from_slice(body).map_err(|e| SnapshotParseError::Shape {
        endpoint: "/depth",
        reason: e.to_string(),
    })?;
    let t = raw.transaction_time.unwrap_or(clock_ms);
    let n = raw.bids.len() + raw.asks.len();
    let mut rows = DepthRows {
        market,
        symbol: symbol.clone(),
        snapshot_ms: t - t.rem_euclid(1000),
        last_update_id: raw.last_update_id,
        side: Vec::with_capacity(n),
        level: Vec::with_capacity(n),
        price: empty_column(options.prices, n),
        quantity: empty_column(options.prices, n),
    };
    for (side, levels) in [(Side::Bid, raw.bids), (Side::Ask, raw.asks)] {
        for (i, (p, q)) in levels.into_iter().enumerate() {
            for (col, text) in [(&mut rows.price, &p), (&mut rows.quantity, &q)] {
                push_value(col, text).map_err(|reason| SnapshotParseError::Value {
                    endpoint: "/depth",
                    symbol: symbol.to_string(),
                    value: text.clone(),
                    reason,
                })?;
            }
            rows.side.push(side);
            rows.level.push(i32::try_from(i + 1).unwrap_or(i32::MAX));
        }
    }
    Ok(rows)
}

/// What the book checks found (all zero / `false` for a plausible book).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepthQuality {
    /// Levels whose price or quantity is not positive.
    pub non_positive: u64,
    /// Bid levels not strictly below the previous bid.
    pub bids_not_descending: u64,
    /// Ask levels not strictly above the previous ask.
    pub asks_not_ascending: u64,
    /// Best bid at or above best ask.
    pub crossed: bool,
}

impl DepthQuality {
    /// Number of violations.
    pub fn violations(&self) -> u64 {
        self.non_positive
            + self.bids_not_descending
            + self.asks_not_ascending
            + u64::from(self.crossed)
    }
}

/// Check a book: positive prices and quantities, bids strictly descending, asks strictly
/// ascending, best bid below best ask.
pub fn check_depth(rows: &DepthRows) -> DepthQuality {
    let mut q = DepthQuality::default();
    for i in 0..rows.len() {
        if rows.price.f64_at(i) <= 0.0 || rows.quantity.f64_at(i) <= 0.0 {
            q.non_positive += 1;
        }
    }
    for (side, out) in [
        (Side::Bid, &mut q.bids_not_descending),
        (Side::Ask, &mut q.asks_not_ascending),
    ] {
        let idx: Vec<usize> = rows.side_rows(side).collect();
        for w in idx.windows(2) {
            let (a, b) = (rows.price.f64_at(w[0]), rows.price.f64_at(w[1]));
            let ok = match side {
                Side::Bid => b < a,
                Side::Ask => b > a,
            };
            if !ok {
                *out += 1;
            }
        }
    }
    if let (Some(b), Some(a)) = (rows.best(Side::Bid), rows.best(Side::Ask)) {
        q.crossed = b >= a;
    }
    q
}

/// The Arrow schema of the `depth` dataset.
pub fn depth_schema(prices: PriceType, unit: TimeUnit) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("snapshot_time", ts_type(unit), false),
        Field::new("symbol", label_type(), false),
        Field::new("last_update_id", DataType::Int64, false),
        Field::new("side", DataType::Utf8, false),
        Field::new("level", DataType::Int32, false),
        Field::new("price", value_type(prices), false),
        Field::new("quantity", value_type(prices), false),
    ]))
}

/// The rows as an Arrow batch of [`depth_schema`].
pub fn depth_batch(rows: &DepthRows, unit: TimeUnit) -> Result<RecordBatch, SchemaError> {
    let n = rows.len();
    let schema = depth_schema(rows.price.price_type(), unit);
    let cols: Vec<ArrayRef> = vec![
        time_column(rows.snapshot_ms, n, unit)?,
        label_array(rows.symbol.as_str(), n),
        Arc::new(Int64Array::from(vec![rows.last_update_id; n])),
        Arc::new(StringArray::from_iter_values(
            rows.side.iter().map(|s| s.as_str()),
        )),
        Arc::new(Int32Array::from(rows.level.clone())),
        to_value_array(rows.price.clone())?,
        to_value_array(rows.quantity.clone())?,
    ];
    RecordBatch::try_new(schema, cols).map_err(SchemaError::Arrow)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::transform::tests::opts;

    fn sym() -> Symbol {
        "BTCUSDT".parse().unwrap()
    }

    const BOOK: &[u8] = br#"{"lastUpdateId":1027024,"E":1589436922972,"T":1589436922959,"bids":[["4.00000000","431.00000000"],["3.99","1"]],"asks":[["4.00000200","12.00000000"]]}"#;

    #[test]
    fn a_futures_book_parses_bids_then_asks_with_its_time() {
        let r = parse_depth(BOOK, Market::UsdM, &sym(), 0, &opts(PriceType::Float64)).unwrap();
        assert_eq!(r.snapshot_ms, 1_589_436_922_000);
        assert_eq!(r.last_update_id, 1_027_024);
        assert_eq!(r.side, [Side::Bid, Side::Bid, Side::Ask]);
        assert_eq!(r.level, [1, 2, 1]);
        assert_eq!(r.best(Side::Bid), Some(4.0));
        assert_eq!(check_depth(&r), DepthQuality::default());
        let b = depth_batch(&r, TimeUnit::Millisecond).unwrap();
        assert_eq!(b.num_rows(), 3);
        assert_eq!(b.num_columns(), 7);
    }

    #[test]
    fn decimal_books_are_exact() {
        let r = parse_depth(BOOK, Market::Spot, &sym(), 1_500, &opts(PriceType::Decimal)).unwrap();
        assert_eq!(
            r.price,
            Column::Decimal(vec![400_000_000, 399_000_000, 400_000_200])
        );
    }

    #[test]
    fn implausible_books_are_found() {
        let body =
            br#"{"lastUpdateId":1,"bids":[["5","1"],["6","0"]],"asks":[["5","1"],["4","1"]]}"#;
        let r = parse_depth(body, Market::Spot, &sym(), 0, &opts(PriceType::Float64)).unwrap();
        let q = check_depth(&r);
        assert_eq!(q.non_positive, 1);
        assert_eq!(q.bids_not_descending, 1);
        assert_eq!(q.asks_not_ascending, 1);
        assert!(q.crossed);
        assert_eq!(q.violations(), 4);
    }

    proptest::proptest! {
        /// Any book with a gap between the sides and strictly sorted levels passes every check,
        /// round-trips through the batch, and is exact in decimal mode.
        #[test]
        fn sorted_books_pass_and_round_trip(
            mid in 10_000i64..10_000_000,
            bid_steps in proptest::collection::vec(1i64..50, 1..40),
            ask_steps in proptest::collection::vec(1i64..50, 1..40),
            qty in 1i64..1_000_000,
        ) {
            let fmt = |ticks: i64| format!("{}.{:02}", ticks / 100, ticks % 100);
            let mut p = mid;
            let bids: Vec<String> = bid_steps.iter().map(|s| { p -= s; format!("[\"{}\",\"{}\"]", fmt(p), fmt(qty)) }).collect();
            let mut p = mid;
            let asks: Vec<String> = ask_steps.iter().map(|s| { p += s; format!("[\"{}\",\"{}\"]", fmt(p), fmt(qty)) }).collect();
            let body = format!(
                "{{\"lastUpdateId\":1,\"bids\":[{}],\"asks\":[{}]}}",
                bids.join(","),
                asks.join(",")
            );
            let r = parse_depth(body.as_bytes(), Market::Spot, &sym(), 0, &opts(PriceType::Decimal)).unwrap();
            proptest::prop_assert_eq!(check_depth(&r), DepthQuality::default());
            proptest::prop_assert_eq!(r.len(), bid_steps.len() + ask_steps.len());
            let best_bid = i128::from(mid - bid_steps[0]) * 1_000_000;
            if let Column::Decimal(v) = &r.price {
                proptest::prop_assert_eq!(v[0], best_bid);
            }
            let b = depth_batch(&r, TimeUnit::Microsecond).unwrap();
            proptest::prop_assert_eq!(b.num_rows(), r.len());
        }
    }

    #[test]
    fn bad_bodies_are_errors() {
        let o = opts(PriceType::Float64);
        assert!(parse_depth(b"[]", Market::Spot, &sym(), 0, &o).is_err());
        assert!(
            parse_depth(
                br#"{"lastUpdateId":1,"bids":[["x","1"]],"asks":[]}"#,
                Market::Spot,
                &sym(),
                0,
                &o
            )
            .is_err()
        );
    }
}

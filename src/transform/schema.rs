//! The output schema: the one definition of the columns, their Arrow types and the Parquet
//! key-value metadata, used by the writer, the reader and the tests. Owns the conversion
//! between [`KlineRows`] and Arrow [`RecordBatch`]es in both directions.
//!
//! # Columns (schema version 2)
//!
//! | column | Arrow type | notes |
//! |---|---|---|
//! | `open_time` | `Timestamp(ms or µs, "UTC")` | candle open; `transform.time_unit` |
//! | `close_time` | `Timestamp(ms or µs, "UTC")` | as sent by the exchange (see below) |
//! | `open`, `high`, `low`, `close` | `Float64` or `Decimal128(38, 8)` | `transform.prices` |
//! | `volume` | same | base asset volume |
//! | `quote_volume` | same | quote asset volume |
//! | `taker_buy_base_volume` | same | |
//! | `taker_buy_quote_volume` | same | |
//! | `trades` | `Int64` | number of trades (`Int64`: every reader handles it; `UInt64` is awkward in Java/Spark) |
//! | `interval` | `Utf8` | Binance spelling, e.g. `1h`, `1M` (dictionary-encoded in the file) |
//!
//! All columns are non-null. The exchange's 12th field ("ignore") is dropped.
//!
//! Mark-price, index-price and premium-index klines (see [`crate::config::KlineFamily`]) have
//! no volumes: their files omit [`VOLUME_COLUMNS`] ([`project_family`]) and
//! [`from_record_batch`] reads such files back with zero volumes.
//!
//! `market`, `symbol` and the `year` are partition values: they live in the hive path only
//! (`market=spot/symbol=BTCUSDT/year=2024/`), as every hive writer does, and in each file's
//! key-value metadata. `interval` is a plain string column: it is not a hive key, because
//! Spark would infer `interval=1d` as the double `1.0` (see [`crate::layout`]). Schema version
//! 1 (layout 1) also stored `symbol`, and both as dictionaries; [`from_record_batch`] reads
//! either (it reads neither column). Checked by `tests/python/interop.py`.
//!
//! In `us` mode, `open_time` is `open_ms * 1000` and `close_time` is
//! `(close_ms + 1) * 1000 - 1`: the last microsecond of the candle (`…59.999999`), not
//! `…59.999000`, so that `close_time = next open - 1 unit` holds in either unit.
//!
//! # Parquet key-value metadata
//!
//! `kline_etl.schema_version` ([`SCHEMA_VERSION`]), `kline_etl.pipeline`, `kline_etl.market`,
//! `kline_etl.source`, `kline_etl.time_unit` (`ms`/`us`), `kline_etl.prices`
//! (`float64`/`decimal`), `kline_etl.version` (the tool version). Nothing time- or
//! run-dependent is written, so identical rows give identical bytes.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, Decimal128Array, DictionaryArray, Float64Array, Int32Array, Int64Array,
    StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit as ArrowTimeUnit};

use super::{Column, KlineContext, KlineRows, VALUE_COLUMNS};
use crate::config::{PriceType, TimeUnit};

/// The schema version written to `kline_etl.schema_version` (2 since layout 2). Files of a
/// newer version are refused (never overwritten) by the loader; version 1 files are read (by
/// `kline-etl migrate`).
pub const SCHEMA_VERSION: u32 = 2;
/// The oldest schema version the reader understands.
pub const OLDEST_SCHEMA_VERSION: u32 = 1;
/// Metadata key prefix.
pub const META_PREFIX: &str = "kline_etl.";
/// Metadata key of the schema version.
pub const META_SCHEMA_VERSION: &str = "kline_etl.schema_version";
/// Decimal precision and scale of price/volume columns in `decimal` mode.
pub const DECIMAL_PRECISION: u8 = 38;
/// See [`DECIMAL_PRECISION`].
pub const DECIMAL_SCALE: i8 = 8;

/// A batch that does not match the output schema, or rows that cannot be represented in it.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A column is missing or has the wrong type.
    #[error("column `{column}` is {found}, expected {expected}")]
    Column {
        /// Column name.
        column: String,
        /// What was found (`missing` or a type).
        found: String,
        /// The expected type.
        expected: String,
    },
    /// A value does not fit the output type (µs overflow, trade count beyond `i64`, a null).
    #[error("column `{column}` has a value that does not fit: {reason}")]
    Value {
        /// Column name.
        column: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Arrow refused the batch.
    #[error("cannot build the record batch")]
    Arrow(#[source] arrow_schema::ArrowError),
}

pub(crate) fn ts_type(unit: TimeUnit) -> DataType {
    let u = match unit {
        TimeUnit::Millisecond => ArrowTimeUnit::Millisecond,
        TimeUnit::Microsecond => ArrowTimeUnit::Microsecond,
    };
    DataType::Timestamp(u, Some("UTC".into()))
}

pub(crate) fn value_type(prices: PriceType) -> DataType {
    match prices {
        PriceType::Float64 => DataType::Float64,
        PriceType::Decimal => DataType::Decimal128(DECIMAL_PRECISION, DECIMAL_SCALE),
    }
}

/// The Arrow schema of the output for these options (without key-value metadata).
pub fn arrow_schema(prices: PriceType, time_unit: TimeUnit) -> SchemaRef {
    let mut fields = Vec::with_capacity(12);
    fields.push(Field::new("open_time", ts_type(time_unit), false));
    fields.push(Field::new("close_time", ts_type(time_unit), false));
    for name in VALUE_COLUMNS {
        fields.push(Field::new(name, value_type(prices), false));
    }
    fields.push(Field::new("trades", DataType::Int64, false));
    fields.push(Field::new("interval", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// The type of the depth snapshots' `symbol` column.
pub fn label_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// A column of `n` copies of `value`, as a dictionary with one entry.
pub(crate) fn label_array(value: &str, n: usize) -> ArrayRef {
    let keys = Int32Array::from(vec![0; n]);
    let values: ArrayRef = Arc::new(StringArray::from(vec![value]));
    // One value, every key 0: always valid, except when there are no rows at all.
    match DictionaryArray::<Int32Type>::try_new(keys, values) {
        Ok(a) => Arc::new(a),
        Err(_) => arrow_array::new_empty_array(&label_type()),
    }
}

/// The spelling of a time unit in metadata and docs.
pub fn time_unit_str(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
    }
}

/// The spelling of a price type in metadata and docs.
pub fn price_type_str(prices: PriceType) -> &'static str {
    match prices {
        PriceType::Float64 => "float64",
        PriceType::Decimal => "decimal",
    }
}

fn to_time_array(ms: Vec<i64>, unit: TimeUnit, close: bool) -> Result<ArrayRef, SchemaError> {
    let column = if close { "close_time" } else { "open_time" };
    Ok(match unit {
        TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::from(ms).with_timezone("UTC")),
        TimeUnit::Microsecond => {
            let us: Option<Vec<i64>> = ms
                .into_iter()
                .map(|t| {
                    if close {
                        t.checked_add(1)?.checked_mul(1000)?.checked_sub(1)
                    } else {
                        t.checked_mul(1000)
                    }
                })
                .collect();
            let us = us.ok_or_else(|| SchemaError::Value {
                column,
                reason: "a time overflows microseconds".to_owned(),
            })?;
            Arc::new(TimestampMicrosecondArray::from(us).with_timezone("UTC"))
        }
    })
}

pub(crate) fn to_value_array(c: Column) -> Result<ArrayRef, SchemaError> {
    Ok(match c {
        Column::Float64(v) => Arc::new(Float64Array::from(v)),
        Column::Decimal(v) => Arc::new(
            Decimal128Array::from(v)
                .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)
                .map_err(SchemaError::Arrow)?,
        ),
    })
}

/// Build the output batch for `rows` (see the module docs for the columns).
pub fn to_record_batch(
    rows: &KlineRows,
    ctx: &KlineContext<'_>,
) -> Result<RecordBatch, SchemaError> {
    into_record_batch(rows.clone(), ctx)
}

/// Like [`to_record_batch`], moving the columns instead of copying them.
pub fn into_record_batch(
    rows: KlineRows,
    ctx: &KlineContext<'_>,
) -> Result<RecordBatch, SchemaError> {
    let n = rows.len();
    let prices = rows.price_type();
    let schema = arrow_schema(prices, ctx.options.time_unit);
    let KlineRows {
        open_time,
        close_time,
        open,
        high,
        low,
        close,
        volume,
        quote_volume,
        taker_buy_base_volume,
        taker_buy_quote_volume,
        trades,
    } = rows;
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(13);
    cols.push(to_time_array(open_time, ctx.options.time_unit, false)?);
    cols.push(to_time_array(close_time, ctx.options.time_unit, true)?);
    for c in [
        open,
        high,
        low,
        close,
        volume,
        quote_volume,
        taker_buy_base_volume,
        taker_buy_quote_volume,
    ] {
        if c.price_type() != prices {
            return Err(SchemaError::Value {
                column: "open",
                reason: "value columns of mixed price types".to_owned(),
            });
        }
        cols.push(to_value_array(c)?);
    }
    if trades.iter().any(|&t| i64::try_from(t).is_err()) {
        return Err(SchemaError::Value {
            column: "trades",
            reason: "a trade count exceeds the Int64 range".to_owned(),
        });
    }
    // Every count fits (checked above): converted in place, in the column's own allocation.
    let trades: Vec<i64> = trades
        .into_iter()
        .map(|t| i64::try_from(t).unwrap_or(i64::MAX))
        .collect();
    cols.push(Arc::new(Int64Array::from(trades)));
    cols.push(Arc::new(StringArray::from_iter_values(
        std::iter::repeat_n(ctx.interval.as_str(), n),
    )));
    RecordBatch::try_new(schema, cols).map_err(SchemaError::Arrow)
}

fn column<'b>(
    batch: &'b RecordBatch,
    name: &str,
    expected: &DataType,
) -> Result<&'b ArrayRef, SchemaError> {
    let bad = |found: String| SchemaError::Column {
        column: name.to_owned(),
        found,
        expected: expected.to_string(),
    };
    let c = batch
        .column_by_name(name)
        .ok_or_else(|| bad("missing".to_owned()))?;
    if c.data_type() != expected {
        return Err(bad(c.data_type().to_string()));
    }
    if c.null_count() > 0 {
        return Err(bad(format!("{} with nulls", c.data_type())));
    }
    Ok(c)
}

fn from_time_array(
    batch: &RecordBatch,
    name: &str,
    unit: TimeUnit,
    close: bool,
) -> Result<Vec<i64>, SchemaError> {
    let c = column(batch, name, &ts_type(unit))?;
    Ok(match unit {
        TimeUnit::Millisecond => c
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .map(|a| a.values().to_vec())
            .unwrap_or_default(),
        TimeUnit::Microsecond => c
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .map(|a| {
                a.values()
                    .iter()
                    .map(|&us| {
                        if close {
                            (us + 1).div_euclid(1000) - 1
                        } else {
                            us.div_euclid(1000)
                        }
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Names of the numeric kline columns, in schema order (the ones statistics are kept for).
pub const NUMERIC_COLUMNS: [&str; 9] = [
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
];

/// The columns mark-price, index-price and premium-index klines do not have (Binance sends
/// `"0"` for them; they are not written as fake zeros).
pub const VOLUME_COLUMNS: [&str; 5] = [
    "volume",
    "quote_volume",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
    "trades",
];

/// The output batch of a kline family: the full batch for families with volumes, without
/// [`VOLUME_COLUMNS`] for the others.
pub fn project_family(
    batch: &RecordBatch,
    family: crate::config::KlineFamily,
) -> Result<RecordBatch, SchemaError> {
    if family.has_volumes() {
        return Ok(batch.clone());
    }
    let schema = batch.schema();
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| !VOLUME_COLUMNS.contains(&schema.field(i).name().as_str()))
        .collect();
    batch.project(&keep).map_err(SchemaError::Arrow)
}

/// Read a batch in the output schema back into rows (the inverse of [`to_record_batch`]).
/// The price type and time unit are given (from the file's metadata) and checked.
pub fn from_record_batch(
    batch: &RecordBatch,
    prices: PriceType,
    time_unit: TimeUnit,
) -> Result<KlineRows, SchemaError> {
    let mut rows = KlineRows::empty(prices);
    rows.open_time = from_time_array(batch, "open_time", time_unit, false)?;
    rows.close_time = from_time_array(batch, "close_time", time_unit, true)?;
    let vt = value_type(prices);
    // Mark/index/premium-index klines store no volume columns: they read back as zeros.
    let no_volumes = VOLUME_COLUMNS
        .iter()
        .all(|name| batch.column_by_name(name).is_none());
    let n = rows.open_time.len();
    let mut values = Vec::with_capacity(8);
    for name in VALUE_COLUMNS {
        if no_volumes && VOLUME_COLUMNS.contains(&name) {
            values.push(match prices {
                PriceType::Float64 => Column::Float64(vec![0.0; n]),
                PriceType::Decimal => Column::Decimal(vec![0; n]),
            });
            continue;
        }
        let c = column(batch, name, &vt)?;
        values.push(match prices {
            PriceType::Float64 => Column::Float64(
                c.as_any()
                    .downcast_ref::<Float64Array>()
                    .map(|a| a.values().to_vec())
                    .unwrap_or_default(),
            ),
            PriceType::Decimal => Column::Decimal(
                c.as_any()
                    .downcast_ref::<Decimal128Array>()
                    .map(|a| a.values().to_vec())
                    .unwrap_or_default(),
            ),
        });
    }
    let mut it = values.into_iter();
    for slot in [
        &mut rows.open,
        &mut rows.high,
        &mut rows.low,
        &mut rows.close,
        &mut rows.volume,
        &mut rows.quote_volume,
        &mut rows.taker_buy_base_volume,
        &mut rows.taker_buy_quote_volume,
    ] {
        if let Some(c) = it.next() {
            *slot = c;
        }
    }
    if no_volumes {
        rows.trades = vec![0; n];
        return Ok(rows);
    }
    let trades = column(batch, "trades", &DataType::Int64)?;
    let trades: Option<Vec<u64>> = trades
        .as_any()
        .downcast_ref::<Int64Array>()
        .map(|a| a.values().iter().map(|&t| u64::try_from(t).ok()).collect())
        .unwrap_or_default();
    rows.trades = trades.ok_or_else(|| SchemaError::Value {
        column: "trades",
        reason: "a negative trade count".to_owned(),
    })?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TransformOptions;
    use crate::interval::Interval;
    use crate::market::Market;
    use crate::symbol::Symbol;

    /// One candle opening 2023-01-01T00:00Z and closing at `close_ms`, every value column
    /// 2844286547.50404090.
    fn one_row(prices: PriceType, close_ms: i64, trades: u64) -> KlineRows {
        let mut rows = KlineRows::empty(prices);
        rows.open_time.push(1_672_531_200_000);
        rows.close_time.push(close_ms);
        for c in rows.columns_mut() {
            match c {
                Column::Decimal(v) => v.push(284_428_654_750_404_090),
                Column::Float64(v) => v.push(2_844_286_547.504_040_9),
            }
        }
        rows.trades.push(trades);
        rows
    }

    #[test]
    fn microsecond_close_is_the_last_microsecond() {
        let sym: Symbol = "BTCUSDT".parse().unwrap();
        let opts = TransformOptions {
            prices: PriceType::Decimal,
            time_unit: TimeUnit::Microsecond,
            ..TransformOptions::default()
        };
        let ctx = KlineContext {
            market: Market::Spot,
            symbol: &sym,
            interval: Interval::H1,
            options: &opts,
        };
        let rows = one_row(PriceType::Decimal, 1_672_534_799_999, 7);
        let batch = to_record_batch(&rows, &ctx).unwrap();
        let close = batch
            .column(1)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(close.value(0), 1_672_534_799_999_999);
        assert_eq!(
            batch.schema().as_ref(),
            arrow_schema(PriceType::Decimal, TimeUnit::Microsecond).as_ref()
        );
        let back = from_record_batch(&batch, PriceType::Decimal, TimeUnit::Microsecond).unwrap();
        assert_eq!(back, rows);
        let e = from_record_batch(&batch, PriceType::Float64, TimeUnit::Microsecond).unwrap_err();
        assert!(
            e.to_string()
                .contains("column `open` is Decimal128(38, 8), expected Float64"),
            "{e}"
        );
    }

    #[test]
    fn trade_counts_convert_in_place_and_refuse_what_int64_cannot_hold() {
        let sym: Symbol = "BTCUSDT".parse().unwrap();
        let opts = TransformOptions::default();
        let ctx = KlineContext {
            market: Market::Spot,
            symbol: &sym,
            interval: Interval::M1,
            options: &opts,
        };
        let rows_with = |trades| one_row(opts.prices, 1_672_531_259_999, trades);
        let max = i64::MAX.unsigned_abs();
        let batch = into_record_batch(rows_with(max), &ctx).unwrap();
        let trades = batch
            .column_by_name("trades")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(trades.value(0), i64::MAX);
        let e = into_record_batch(rows_with(max + 1), &ctx).unwrap_err();
        assert!(e.to_string().contains("exceeds the Int64 range"), "{e}");
    }
}

//! The funding-rate row: parsing a `/fundingRate` reply into typed records, the Arrow schema
//! and batch of the output, and reading a stored partition back. Pure, synchronous code.
//!
//! # Columns
//!
//! | column | Arrow type | notes |
//! |---|---|---|
//! | `funding_time` | `Timestamp(ms or µs, "UTC")` | `transform.time_unit`; a few ms past 00:00, 08:00, 16:00 UTC |
//! | `funding_rate` | `Float64` or `Decimal128(38, 8)` | `transform.prices`; signed, per funding interval |
//! | `mark_price` | `Float64` or `Decimal128(38, 8)`, nullable | null where the exchange sends `""` or nothing (old records, COIN-M) |
//!
//! Rows are sorted by `funding_time`, unique per symbol. `market` and `symbol` are partition
//! values, in the hive path only (layout 2, [`crate::layout`]); layout 1's files also had a
//! dictionary `symbol` column, which [`read_partition`] ignores.

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::{
    Array, ArrayRef, Decimal128Array, Float64Array, TimestampMicrosecondArray,
    TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit as ArrowTimeUnit};
use serde::Deserialize;

use crate::config::{PriceType, TimeUnit};
use crate::transform::parse::{MICROS_THRESHOLD, parse_decimal_str};
use crate::transform::schema::{DECIMAL_PRECISION, DECIMAL_SCALE};

/// A rate or price as the output stores it.
#[derive(Debug, Clone, Copy)]
pub enum Value {
    /// `transform.prices: float64`.
    Float(f64),
    /// `transform.prices: decimal`: the value × 10^8.
    Decimal(i128),
}

impl PartialEq for Value {
    /// Bitwise for floats: a re-sent identical record is equal, any change is a change.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Decimal(a), Value::Decimal(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    /// The value as `f64` (for statistics, not for storage).
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Float(x) => x,
            Value::Decimal(v) => v as f64 / 1e8,
        }
    }

    /// Parse decimal text into the price type's representation.
    pub fn parse(text: &str, prices: PriceType) -> Result<Value, String> {
        match prices {
            PriceType::Float64 => {
                let x: f64 = text
                    .parse()
                    .map_err(|_| format!("`{text}` is not a number"))?;
                if x.is_finite() {
                    Ok(Value::Float(x))
                } else {
                    Err(format!("`{text}` is out of range"))
                }
            }
            PriceType::Decimal => parse_decimal_str(text).map(Value::Decimal),
        }
    }
}

/// One funding event of one symbol.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FundingRecord {
    /// `fundingTime`, ms since the epoch (UTC).
    pub funding_time: i64,
    /// `fundingRate`.
    pub funding_rate: Value,
    /// `markPrice`; `None` where the exchange sent `""` or no field.
    pub mark_price: Option<Value>,
}

/// A reply that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowsError {
    /// The body is not the documented JSON array of records.
    #[error("cannot read the `/fundingRate` reply for `{symbol}`: {reason}")]
    Shape {
        /// The symbol asked for.
        symbol: String,
        /// What serde said.
        reason: String,
    },
    /// A record of another symbol (the exchange answered a different question).
    #[error("the `/fundingRate` reply for `{asked}` holds a record of `{found}`")]
    WrongSymbol {
        /// The symbol asked for.
        asked: String,
        /// The symbol in the record.
        found: String,
    },
    /// A rate or price is not a number the output type can hold.
    #[error("`/fundingRate` value `{value}` of `{symbol}` at {time} is not usable: {reason}", time = crate::time::fmt_ms(*funding_time))]
    Value {
        /// The symbol.
        symbol: String,
        /// The record's funding time, ms.
        funding_time: i64,
        /// The offending text.
        value: String,
        /// Why.
        reason: String,
    },
}

/// One element of the reply: `{"symbol", "fundingTime", "fundingRate", "markPrice"}`
/// (`markPrice` is missing on COIN-M and `""` on old USDⓈ-M records).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecord {
    symbol: String,
    funding_time: i64,
    funding_rate: String,
    #[serde(default)]
    mark_price: Option<String>,
}

/// Parse a `/fundingRate` reply for `symbol` into records in the order received. Times sent
/// in µs (values of 16 digits) are read as µs.
pub fn parse_reply(
    body: &[u8],
    symbol: &str,
    prices: PriceType,
) -> Result<Vec<FundingRecord>, RowsError> {
    let raw: Vec<RawRecord> = serde_json::from_slice(body).map_err(|e| RowsError::Shape {
        symbol: symbol.to_owned(),
        reason: e.to_string(),
    })?;
    raw.into_iter()
        .map(|r| {
            if r.symbol != symbol {
                return Err(RowsError::WrongSymbol {
                    asked: symbol.to_owned(),
                    found: r.symbol,
                });
            }
            let funding_time = if r.funding_time >= MICROS_THRESHOLD {
                r.funding_time / 1000
            } else {
                r.funding_time
            };
            let value = |text: &str| {
                Value::parse(text, prices).map_err(|reason| RowsError::Value {
                    symbol: symbol.to_owned(),
                    funding_time,
                    value: text.to_owned(),
                    reason,
                })
            };
            let funding_rate = value(&r.funding_rate)?;
            let mark_price = match r.mark_price.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(t) => Some(value(t)?),
            };
            Ok(FundingRecord {
                funding_time,
                funding_rate,
                mark_price,
            })
        })
        .collect()
}

fn ts_type(unit: TimeUnit) -> DataType {
    let u = match unit {
        TimeUnit::Millisecond => ArrowTimeUnit::Millisecond,
        TimeUnit::Microsecond => ArrowTimeUnit::Microsecond,
    };
    DataType::Timestamp(u, Some("UTC".into()))
}

fn value_type(prices: PriceType) -> DataType {
    match prices {
        PriceType::Float64 => DataType::Float64,
        PriceType::Decimal => DataType::Decimal128(DECIMAL_PRECISION, DECIMAL_SCALE),
    }
}

/// The output schema for these options.
pub fn schema(prices: PriceType, unit: TimeUnit) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("funding_time", ts_type(unit), false),
        Field::new("funding_rate", value_type(prices), false),
        Field::new("mark_price", value_type(prices), true),
    ]))
}

/// A batch building or reading problem.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A time overflows µs.
    #[error("funding time {0} ms overflows microseconds")]
    Overflow(i64),
    /// A value of the wrong price type (rows of mixed types cannot be written).
    #[error("a value is not of the output price type `{0}`")]
    Mixed(&'static str),
    /// Arrow refused the batch.
    #[error("cannot build the record batch")]
    Arrow(#[source] arrow_schema::ArrowError),
    /// A stored file is not a funding-rate partition of the pipeline's types.
    #[error(
        "`{path}` is not a funding_rate partition of this pipeline's types ({reason}); write to another `output.path` or delete it"
    )]
    Foreign {
        /// The file.
        path: String,
        /// What does not match.
        reason: String,
    },
    /// A stored file cannot be read.
    #[error("cannot read `{path}`")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A stored file cannot be opened.
    #[error("cannot open `{path}`")]
    Open {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn values_array(vals: Vec<Option<Value>>, prices: PriceType) -> Result<ArrayRef, BatchError> {
    Ok(match prices {
        PriceType::Float64 => {
            let v: Result<Vec<Option<f64>>, BatchError> = vals
                .into_iter()
                .map(|v| match v {
                    None => Ok(None),
                    Some(Value::Float(x)) => Ok(Some(x)),
                    Some(Value::Decimal(_)) => Err(BatchError::Mixed("float64")),
                })
                .collect();
            Arc::new(Float64Array::from(v?))
        }
        PriceType::Decimal => {
            let v: Result<Vec<Option<i128>>, BatchError> = vals
                .into_iter()
                .map(|v| match v {
                    None => Ok(None),
                    Some(Value::Decimal(x)) => Ok(Some(x)),
                    Some(Value::Float(_)) => Err(BatchError::Mixed("decimal")),
                })
                .collect();
            Arc::new(
                Decimal128Array::from(v?)
                    .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)
                    .map_err(BatchError::Arrow)?,
            )
        }
    })
}

/// The output batch of one symbol's `records` (already sorted and unique).
pub fn to_batch(
    records: &[FundingRecord],
    prices: PriceType,
    unit: TimeUnit,
) -> Result<RecordBatch, BatchError> {
    let times: Vec<i64> = records.iter().map(|r| r.funding_time).collect();
    let time: ArrayRef = match unit {
        TimeUnit::Millisecond => {
            Arc::new(TimestampMillisecondArray::from(times).with_timezone("UTC"))
        }
        TimeUnit::Microsecond => {
            let us: Result<Vec<i64>, BatchError> = times
                .into_iter()
                .map(|t| t.checked_mul(1000).ok_or(BatchError::Overflow(t)))
                .collect();
            Arc::new(TimestampMicrosecondArray::from(us?).with_timezone("UTC"))
        }
    };
    let rate = values_array(
        records.iter().map(|r| Some(r.funding_rate)).collect(),
        prices,
    )?;
    let mark = values_array(records.iter().map(|r| r.mark_price).collect(), prices)?;
    RecordBatch::try_new(schema(prices, unit), vec![time, rate, mark]).map_err(BatchError::Arrow)
}

fn value_at(a: &dyn Array, i: usize) -> Option<Value> {
    if a.is_null(i) {
        return None;
    }
    if let Some(f) = a.as_any().downcast_ref::<Float64Array>() {
        return Some(Value::Float(f.value(i)));
    }
    a.as_any()
        .downcast_ref::<Decimal128Array>()
        .map(|d| Value::Decimal(d.value(i)))
}

/// Read a stored partition back into records; the file must have this pipeline's schema
/// (price type and time unit), or it is reported as foreign.
pub fn read_partition(
    path: &Path,
    prices: PriceType,
    unit: TimeUnit,
) -> Result<Vec<FundingRecord>, BatchError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let shown = path.display().to_string();
    let file = fs_err::File::open(path).map_err(|source| BatchError::Open {
        path: shown.clone(),
        source,
    })?;
    let read = |source| BatchError::Read {
        path: shown.clone(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0).map_err(read)?;
    let want = schema(prices, unit);
    let found = builder.schema();
    // Layout 1 also stored `symbol` (a dictionary column, now in the path only): such files
    // are read (by `kline-etl migrate`), the column ignored.
    let kept: Vec<&arrow_schema::FieldRef> = found
        .fields()
        .iter()
        .filter(|f| f.name() != "symbol")
        .collect();
    let same = want.fields().len() == kept.len()
        && want
            .fields()
            .iter()
            .zip(kept.iter())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if !same {
        return Err(BatchError::Foreign {
            path: shown.clone(),
            reason: format!(
                "its columns are {}",
                found
                    .fields()
                    .iter()
                    .map(|f| format!("{} {}", f.name(), f.data_type()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let mut out = Vec::new();
    for batch in builder.build().map_err(read)? {
        let batch = batch.map_err(|e| read(e.into()))?;
        let col = |name: &str| batch.column_by_name(name).cloned();
        let (Some(time), Some(rate), Some(mark)) =
            (col("funding_time"), col("funding_rate"), col("mark_price"))
        else {
            return Err(BatchError::Foreign {
                path: shown.clone(),
                reason: "a column is missing".to_owned(),
            });
        };
        let times: Vec<i64> = match unit {
            TimeUnit::Millisecond => time
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .map(|a| a.values().to_vec()),
            TimeUnit::Microsecond => time
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .map(|a| a.values().iter().map(|t| t.div_euclid(1000)).collect()),
        }
        .unwrap_or_default();
        for (i, t) in times.into_iter().enumerate() {
            let Some(funding_rate) = value_at(rate.as_ref(), i) else {
                return Err(BatchError::Foreign {
                    path: shown.clone(),
                    reason: "a null funding_rate".to_owned(),
                });
            };
            out.push(FundingRecord {
                funding_time: t,
                funding_rate,
                mark_price: value_at(mark.as_ref(), i),
            });
        }
    }
    Ok(out)
}

/// The price type and time unit a stored partition was written with, from its schema.
pub fn stored_types(path: &Path) -> Result<(PriceType, TimeUnit), BatchError> {
    let shown = path.display().to_string();
    let file = fs_err::File::open(path).map_err(|source| BatchError::Open {
        path: shown.clone(),
        source,
    })?;
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0)
            .map_err(|source| BatchError::Read {
                path: shown.clone(),
                source,
            })?;
    let s = builder.schema();
    let ty = |name: &str| s.field_with_name(name).ok().map(|f| f.data_type().clone());
    let unit = match ty("funding_time") {
        Some(DataType::Timestamp(ArrowTimeUnit::Millisecond, _)) => Some(TimeUnit::Millisecond),
        Some(DataType::Timestamp(ArrowTimeUnit::Microsecond, _)) => Some(TimeUnit::Microsecond),
        _ => None,
    };
    let prices = match ty("funding_rate") {
        Some(DataType::Float64) => Some(PriceType::Float64),
        Some(DataType::Decimal128(..)) => Some(PriceType::Decimal),
        _ => None,
    };
    match (prices, unit) {
        (Some(p), Some(u)) => Ok((p, u)),
        _ => Err(BatchError::Foreign {
            path: shown,
            reason: "no `funding_time` timestamp or `funding_rate` number column".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"[
        {"symbol":"BTCUSDT","fundingTime":1570608000000,"fundingRate":"-0.03750000","markPrice":""},
        {"symbol":"BTCUSDT","fundingTime":1570636800003,"fundingRate":"0.00010000","markPrice":"34287.54619963"}
    ]"#;

    #[test]
    fn empty_mark_prices_are_null_and_values_keep_their_digits() {
        let r = parse_reply(BODY, "BTCUSDT", PriceType::Decimal).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].funding_rate, Value::Decimal(-3_750_000));
        assert_eq!(r[0].mark_price, None);
        assert_eq!(r[1].funding_time, 1_570_636_800_003);
        assert_eq!(r[1].mark_price, Some(Value::Decimal(3_428_754_619_963)));
        let f = parse_reply(BODY, "BTCUSDT", PriceType::Float64).unwrap();
        assert_eq!(f[1].funding_rate, Value::Float(0.0001));
    }

    #[test]
    fn coinm_records_without_mark_price_and_micros_times_parse() {
        let body = br#"[{"symbol":"BTCUSD_PERP","fundingTime":1596038400000123,"fundingRate":"-0.00300000"}]"#;
        let r = parse_reply(body, "BTCUSD_PERP", PriceType::Float64).unwrap();
        assert_eq!(r[0].funding_time, 1_596_038_400_000);
        assert_eq!(r[0].mark_price, None);
    }

    #[test]
    fn bad_replies_say_what_is_wrong() {
        let e = parse_reply(BODY, "ETHUSDT", PriceType::Float64).unwrap_err();
        assert!(matches!(e, RowsError::WrongSymbol { .. }), "{e}");
        let e = parse_reply(br#"{"code":-1121}"#, "X", PriceType::Float64).unwrap_err();
        assert!(matches!(e, RowsError::Shape { .. }), "{e}");
        let body = br#"[{"symbol":"X","fundingTime":1,"fundingRate":"abc"}]"#;
        let e = parse_reply(body, "X", PriceType::Float64).unwrap_err();
        assert!(e.to_string().contains("`abc`"), "{e}");
        let body = br#"[{"symbol":"X","fundingTime":1,"fundingRate":"0.1234567891"}]"#;
        assert!(parse_reply(body, "X", PriceType::Decimal).is_err());
    }

    #[test]
    fn batches_round_trip_through_parquet_in_both_units_and_types() {
        for prices in [PriceType::Float64, PriceType::Decimal] {
            for unit in [TimeUnit::Millisecond, TimeUnit::Microsecond] {
                let recs = parse_reply(BODY, "BTCUSDT", prices).unwrap();
                let batch = to_batch(&recs, prices, unit).unwrap();
                assert_eq!(batch.column(2).null_count(), 1);
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("p.parquet");
                let mut w = parquet::arrow::ArrowWriter::try_new(
                    fs_err::File::create(&path).unwrap().into_parts().0,
                    batch.schema(),
                    None,
                )
                .unwrap();
                w.write(&batch).unwrap();
                w.close().unwrap();
                assert_eq!(read_partition(&path, prices, unit).unwrap(), recs);
                let other = if prices == PriceType::Float64 {
                    PriceType::Decimal
                } else {
                    PriceType::Float64
                };
                assert!(matches!(
                    read_partition(&path, other, unit),
                    Err(BatchError::Foreign { .. })
                ));
            }
        }
    }
}

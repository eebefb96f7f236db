//! `_kline_etl/summary.parq`: the per-series statistics of `_kline_etl/summary.json` as one flat table a
//! warehouse can load (one row per market × symbol × interval).
//!
//! Columns: `market`, `symbol`, `interval` (Utf8); `rows`, `expected_rows`, `missing`, `gaps`
//! (Int64); `first_open_time`, `last_open_time` (`Timestamp(ms, "UTC")`); `open`, `high`,
//! `low`, `close`, `volume`, `quote_volume`, `trades`, `vwap`, `log_return_mean`,
//! `log_return_std`, `annualised_volatility` (Float64); then for each numeric kline column `c`
//! the `describe()` figures `c_mean`, `c_std`, `c_min`, `c_p25`, `c_p50`, `c_p75`, `c_max`
//! (Float64). Nullable where a figure needs more rows than there are.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
use arrow_schema::ArrowError;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

use super::report::SeriesReport;
use super::series::NUMERIC_COLUMNS;
use super::sketch::Describe;

fn ms(text: Option<&String>) -> Option<i64> {
    text.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|d| d.timestamp_millis())
}

type Stat = (&'static str, fn(&Describe) -> Option<f64>);
type IntCol = (&'static str, fn(&SeriesReport) -> i64);
type FloatCol = (&'static str, fn(&SeriesReport) -> Option<f64>);

const STATS: [Stat; 7] = [
    ("mean", |d| d.mean),
    ("std", |d| d.std),
    ("min", |d| d.min),
    ("p25", |d| d.p25),
    ("p50", |d| d.p50),
    ("p75", |d| d.p75),
    ("max", |d| d.max),
];

/// The series table as one record batch.
pub fn series_batch(series: &[SeriesReport]) -> Result<RecordBatch, ArrowError> {
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    let mut text = |name: &str, f: &dyn Fn(&SeriesReport) -> String| {
        fields.push(Field::new(name, DataType::Utf8, false));
        cols.push(Arc::new(StringArray::from_iter_values(
            series.iter().map(f),
        )));
    };
    text("market", &|s| s.market.as_str().to_owned());
    text("symbol", &|s| s.symbol.clone());
    text("interval", &|s| s.interval.as_str().to_owned());
    let ints: [IntCol; 4] = [
        ("rows", |s| s.range.rows as i64),
        ("expected_rows", |s| s.range.expected_rows),
        ("missing", |s| s.range.missing),
        ("gaps", |s| s.range.gaps.len() as i64),
    ];
    for (name, f) in ints {
        fields.push(Field::new(name, DataType::Int64, false));
        cols.push(Arc::new(Int64Array::from_iter_values(series.iter().map(f))));
    }
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    for (name, f) in [
        (
            "first_open_time",
            (|s| ms(s.range.first_open_time.as_ref())) as fn(&SeriesReport) -> Option<i64>,
        ),
        ("last_open_time", |s| ms(s.range.last_open_time.as_ref())),
    ] {
        fields.push(Field::new(name, ts.clone(), true));
        cols.push(Arc::new(
            TimestampMillisecondArray::from(series.iter().map(f).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ));
    }
    let floats: [FloatCol; 11] = [
        ("open", |s| s.range.open),
        ("high", |s| s.range.high),
        ("low", |s| s.range.low),
        ("close", |s| s.range.close),
        ("volume", |s| Some(s.range.volume)),
        ("quote_volume", |s| Some(s.range.quote_volume)),
        ("trades", |s| Some(s.range.trades)),
        ("vwap", |s| s.range.vwap),
        ("log_return_mean", |s| s.log_return_mean),
        ("log_return_std", |s| s.log_return_std),
        ("annualised_volatility", |s| s.annualised_volatility),
    ];
    for (name, f) in floats {
        fields.push(Field::new(name, DataType::Float64, true));
        cols.push(Arc::new(Float64Array::from(
            series.iter().map(f).collect::<Vec<_>>(),
        )));
    }
    for col in NUMERIC_COLUMNS {
        for (stat, get) in STATS {
            fields.push(Field::new(format!("{col}_{stat}"), DataType::Float64, true));
            let values: Vec<Option<f64>> = series
                .iter()
                .map(|s| s.describe.get(col).and_then(get))
                .collect();
            cols.push(Arc::new(Float64Array::from(values)));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
}

/// The series table encoded as a zstd Parquet file.
pub fn series_parquet(series: &[SeriesReport]) -> Result<Vec<u8>, ParquetError> {
    let batch = series_batch(series)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(concat!("kline-etl ", env!("CARGO_PKG_VERSION")).to_owned())
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    w.write(&batch)?;
    w.close()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interval::Interval;
    use crate::market::Market;
    use crate::summary::series::SeriesStats;
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn table_round_trips_through_parquet() {
        let s = SeriesReport::new(
            Market::Spot,
            "BTCUSDT",
            Interval::H1,
            &SeriesStats::default(),
            vec![],
        );
        let bytes = series_parquet(&[s.clone(), s]).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(batches[0].num_rows(), 2);
        assert_eq!(batches[0].num_columns(), 3 + 4 + 2 + 11 + 9 * 7);
        assert!(batches[0].schema().field_with_name("close_p50").is_ok());
    }
}

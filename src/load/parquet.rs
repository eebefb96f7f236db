//! Parquet encoding and decoding of one partition: explicit `WriterProperties`, the key-value
//! metadata, reading a partition file back (checking it is ours and of a schema version we
//! understand), and the newest open time from column statistics. No directory logic (see
//! [`super::DatasetWriter`]).

use std::path::Path;

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression as PqCompression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, ParquetMetaData, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;

use super::{LoadError, WriteOptions};
use crate::config::{Compression, PriceType, TimeUnit};
use crate::load::partition::{Expected, PartitionKey, expected_of_path};
use crate::transform::KlineRows;
use crate::transform::schema::{
    self, META_SCHEMA_VERSION, OLDEST_SCHEMA_VERSION, SCHEMA_VERSION, price_type_str, time_unit_str,
};

/// What a partition file's metadata says about its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// `kline_etl.prices`.
    pub prices: PriceType,
    /// `kline_etl.time_unit`.
    pub time_unit: TimeUnit,
    /// Rows in the file (from the footer).
    pub rows: u64,
    /// Premium-index klines (`kline_etl.kline_family`): prices are rates, signed.
    pub signed_prices: bool,
}

pub(crate) fn compression(c: Compression) -> Result<PqCompression, parquet::errors::ParquetError> {
    Ok(match c {
        Compression::Zstd(level) => PqCompression::ZSTD(ZstdLevel::try_new(level)?),
        Compression::Snappy => PqCompression::SNAPPY,
        Compression::None => PqCompression::UNCOMPRESSED,
    })
}

/// The key-value metadata written to every file: nothing run- or time-dependent, so identical
/// rows give identical bytes.
pub fn key_value_metadata(key: &PartitionKey, opts: &WriteOptions) -> Vec<KeyValue> {
    let kv = |k: &str, v: &str| KeyValue::new(format!("kline_etl.{k}"), v.to_owned());
    vec![
        KeyValue::new(META_SCHEMA_VERSION.to_owned(), SCHEMA_VERSION.to_string()),
        kv("pipeline", &opts.pipeline),
        kv("market", key.task.market.as_str()),
        kv("source", &opts.source),
        kv("symbol", key.task.symbol.as_str()),
        kv("interval", key.task.interval.as_str()),
        kv("time_unit", time_unit_str(opts.transform.time_unit)),
        kv("prices", price_type_str(opts.transform.prices)),
        kv("version", env!("CARGO_PKG_VERSION")),
    ]
}

/// Columns zstd cannot shrink: quote volumes are price x volume with 8 decimals, so their
/// mantissas are close to random. On real Binance 1m klines zstd level 1 keeps 93-95 % of
/// their bytes (FILUSDT 2023-05: 0.947 and 0.926; BTCUSDT 1h: 0.947 and 0.949), and they were
/// about 8 % of a run's CPU. With `zstd` they are stored uncompressed: 2 % larger files for 8 %
/// less CPU (README, "CPU per candle"). Every Parquet reader takes a codec per column chunk.
///
/// `trades` is delta-encoded ([`DELTA_ENCODED`]): bit-packed deltas of counts that move by a
/// few hundred a minute are already dense, and zstd over them saves under 0.1 % (real FILUSDT
/// and BTCUSDT months: 1,003 KB with zstd level 1, 1,004 KB without).
pub const UNCOMPRESSED_WITH_ZSTD: [&str; 3] = ["quote_volume", "taker_buy_quote_volume", "trades"];

/// Integer columns written with `DELTA_BINARY_PACKED` instead of `PLAIN`: the times step by
/// one interval (the deltas pack to almost nothing), and trade counts are small integers that
/// bit-pack to 10-14 bits from 64. For `trades` on real Binance months (FILUSDT 1m April-June
/// 2023, BTCUSDT 1h; pyarrow, five passes) plain + zstd level 1 kept 986 KB in 19 ms, delta alone
/// 1,004 KB (1.8 % more) in 7 ms.
/// Every reader we test handles it (it is in the Parquet format since 2.0 and the times always
/// used it).
pub const DELTA_ENCODED: [&str; 3] = ["open_time", "close_time", "trades"];

/// The writer properties: compression per config (but see [`UNCOMPRESSED_WITH_ZSTD`]),
/// row-group size per config, page-level statistics (which also writes the column and offset
/// indexes), sorted by `open_time`, dictionary encoding only for the constant
/// `symbol`/`interval` columns (numeric columns are near-unique, where a dictionary only
/// costs), and `metadata` as the key-value metadata.
pub fn writer_properties(
    opts: &WriteOptions,
    metadata: Vec<KeyValue>,
) -> Result<WriterProperties, parquet::errors::ParquetError> {
    let mut builder = WriterProperties::builder();
    for column in DELTA_ENCODED {
        builder =
            builder.set_column_encoding(ColumnPath::from(column), Encoding::DELTA_BINARY_PACKED);
    }
    if matches!(opts.compression, Compression::Zstd(_)) {
        for column in UNCOMPRESSED_WITH_ZSTD {
            builder = builder
                .set_column_compression(ColumnPath::from(column), PqCompression::UNCOMPRESSED);
        }
    }
    Ok(builder
        .set_compression(compression(opts.compression)?)
        .set_max_row_group_row_count(Some(opts.row_group_rows.max(1)))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: 0,
            descending: false,
            nulls_first: false,
        }]))
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from("symbol"), true)
        .set_column_dictionary_enabled(ColumnPath::from("interval"), true)
        .set_key_value_metadata(Some(metadata))
        .build())
}

/// [`encode`] for a kline family other than traded-price klines: the same properties plus
/// `kline_etl.kline_family` (and `kline_etl.contract_type` for continuous klines).
pub fn encode_family(
    batch: &RecordBatch,
    key: &PartitionKey,
    opts: &WriteOptions,
    family: crate::config::KlineFamily,
    extra: &[KeyValue],
    path: &Path,
) -> Result<Vec<u8>, LoadError> {
    let mut kv = extra.to_vec();
    kv.push(KeyValue::new(
        "kline_etl.kline_family".to_owned(),
        family.as_str().to_owned(),
    ));
    if let Some(c) = family.contract_type() {
        kv.push(KeyValue::new(
            "kline_etl.contract_type".to_owned(),
            c.as_str().to_owned(),
        ));
    }
    encode(batch, key, opts, &kv, path)
}

/// Key-value metadata holding a partition's summary statistics, written by the run
/// (see `summary::dataset`) so a later summary can read them instead of the rows.
pub const META_STATS: &str = "kline_etl.stats";

/// Encode one partition's batch into Parquet bytes, with `extra` key-value metadata after
/// the standard entries ([`key_value_metadata`]).
pub fn encode(
    batch: &RecordBatch,
    key: &PartitionKey,
    opts: &WriteOptions,
    extra: &[KeyValue],
    path: &Path,
) -> Result<Vec<u8>, LoadError> {
    let enc = |source| LoadError::Encode {
        path: path.to_owned(),
        source,
    };
    let mut kv = key_value_metadata(key, opts);
    kv.extend_from_slice(extra);
    let props = writer_properties(opts, kv).map_err(enc)?;
    let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).map_err(enc)?;
    w.write(batch).map_err(enc)?;
    w.into_inner().map_err(enc)
}

fn meta_value<'m>(meta: &'m ParquetMetaData, key: &str) -> Option<&'m str> {
    meta.file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_deref())
}

/// Check a file's footer: ours, a schema version we understand, known price type and unit.
pub fn file_info(meta: &ParquetMetaData, path: &Path) -> Result<FileInfo, LoadError> {
    let foreign = |reason: &str| LoadError::Foreign {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let version = meta_value(meta, META_SCHEMA_VERSION)
        .ok_or_else(|| foreign("it has no `kline_etl.schema_version` metadata"))?;
    match version.parse::<u32>() {
        Ok(v) if (OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&v) => {}
        Ok(v) if v > SCHEMA_VERSION => {
            return Err(LoadError::NewerSchema {
                path: path.to_owned(),
                found: version.to_owned(),
            });
        }
        _ => return Err(foreign(&format!("unknown schema version `{version}`"))),
    }
    let prices = match meta_value(meta, "kline_etl.prices") {
        Some("float64") => PriceType::Float64,
        Some("decimal") => PriceType::Decimal,
        _ => return Err(foreign("`kline_etl.prices` is missing or unknown")),
    };
    let time_unit = match meta_value(meta, "kline_etl.time_unit") {
        Some("ms") => TimeUnit::Millisecond,
        Some("us") => TimeUnit::Microsecond,
        _ => return Err(foreign("`kline_etl.time_unit` is missing or unknown")),
    };
    Ok(FileInfo {
        prices,
        time_unit,
        rows: u64::try_from(meta.file_metadata().num_rows()).unwrap_or(0),
        signed_prices: meta_value(meta, "kline_etl.kline_family") == Some("premium_index"),
    })
}

/// Check a file's own metadata and `open_time` bounds against what its place in the layout
/// says it holds ([`Expected`]): `kline_etl.market`, `kline_etl.symbol` and
/// `kline_etl.interval` must name its series, and its open times must lie in its period
/// directory's span. A mismatch is [`LoadError::Foreign`] naming both; `bounds` that are
/// unknown from the footer are checked once the rows are read.
pub fn check_identity(
    meta: &ParquetMetaData,
    bounds: FooterBounds,
    expected: &Expected,
    path: &Path,
) -> Result<(), LoadError> {
    check_series(meta, expected, path)?;
    check_span(bounds, expected, path)
}

fn foreign(path: &Path, reason: String) -> LoadError {
    LoadError::Foreign {
        path: path.to_owned(),
        reason,
    }
}

/// The series half of [`check_identity`]: the file's own metadata names its directories.
fn check_series(meta: &ParquetMetaData, expected: &Expected, path: &Path) -> Result<(), LoadError> {
    let foreign = |reason| foreign(path, reason);
    let task = &expected.task;
    for (key, want) in [
        ("market", task.market.as_str()),
        ("symbol", task.symbol.as_str()),
        ("interval", task.interval.as_str()),
    ] {
        match meta_value(meta, &format!("kline_etl.{key}")) {
            Some(v) if v == want => {}
            Some(v) => {
                return Err(foreign(format!(
                    "it holds {key} `{v}` but sits under `{key}={want}`: a foreign file"
                )));
            }
            None => {
                return Err(foreign(format!(
                    "it has no `kline_etl.{key}` metadata to check against `{key}={want}`"
                )));
            }
        }
    }
    Ok(())
}

/// The time half of [`check_identity`]: open times inside the period directory's span.
fn check_span(bounds: FooterBounds, expected: &Expected, path: &Path) -> Result<(), LoadError> {
    if let (FooterBounds::Range(lo, hi), Some((start, end))) = (bounds, expected.span)
        && (lo < start || hi >= end)
    {
        return Err(foreign(
            path,
            format!(
                "its rows open from `{}` to `{}`, outside its partition `{}`: a foreign file",
                crate::time::fmt_ms(lo),
                crate::time::fmt_ms(hi),
                expected.period_dir.as_deref().unwrap_or("-")
            ),
        ));
    }
    Ok(())
}

/// Open a partition file's footer, refusing what is not a regular file (a directory or a FIFO
/// where a partition belongs is an output error, and opening a FIFO would block).
fn open(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<std::fs::File>, LoadError> {
    let kind = fs_err::metadata(path)?.file_type();
    if !kind.is_file() {
        return Err(LoadError::NotAFile {
            path: path.to_owned(),
        });
    }
    let file = fs_err::File::open(path)?;
    ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0).map_err(|source| {
        LoadError::Corrupt {
            path: path.to_owned(),
            source,
        }
    })
}

/// [`open`], [`file_info`] and, for a file inside the layout, [`check_identity`] against its
/// path ([`expected_of_path`]): every reader below goes through this.
fn open_checked(
    path: &Path,
) -> Result<
    (
        ParquetRecordBatchReaderBuilder<std::fs::File>,
        FileInfo,
        FooterBounds,
    ),
    LoadError,
> {
    let b = open(path)?;
    let info = file_info(b.metadata(), path)?;
    let bounds = footer_bounds(b.metadata(), &info);
    if let Some(expected) = expected_of_path(path) {
        check_identity(b.metadata(), bounds, &expected, path)?;
    }
    Ok((b, info, bounds))
}

/// The Arrow schema and row count of any Parquet file (a Delta table's schema comes from
/// its files), without key-value metadata.
pub fn arrow_schema_of(path: &Path) -> Result<(arrow_schema::SchemaRef, u64), LoadError> {
    let file = fs_err::File::open(path)?;
    let b = ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0).map_err(|source| {
        LoadError::Corrupt {
            path: path.to_owned(),
            source,
        }
    })?;
    let fields = b.schema().fields().clone();
    let rows = b.metadata().file_metadata().num_rows() as u64;
    Ok((std::sync::Arc::new(arrow_schema::Schema::new(fields)), rows))
}

/// Read only the footer of a partition file and check it (see [`file_info`]).
pub fn read_info(path: &Path) -> Result<FileInfo, LoadError> {
    Ok(open_checked(path)?.1)
}

/// Read a whole partition file back into rows, checking that it is a kline-etl file of a schema
/// version this build understands, and that it is the partition its path names.
pub fn read_file(path: &Path) -> Result<(KlineRows, FileInfo), LoadError> {
    let (b, info, bounds) = open_checked(path)?;
    let corrupt = |source| LoadError::Corrupt {
        path: path.to_owned(),
        source,
    };
    let reader = b.with_batch_size(65_536).build().map_err(corrupt)?;
    let mut rows = KlineRows::with_capacity(info.prices, info.rows as usize);
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(e.into()))?;
        let part = schema::from_record_batch(&batch, info.prices, info.time_unit).map_err(|e| {
            LoadError::Foreign {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        })?;
        rows.append(part);
    }
    if rows.len() as u64 != info.rows {
        return Err(LoadError::Foreign {
            path: path.to_owned(),
            reason: format!(
                "the footer says {} rows, the data has {}",
                info.rows,
                rows.len()
            ),
        });
    }
    if bounds == FooterBounds::Unknown
        && let Some(expected) = expected_of_path(path)
    {
        let lo = rows.open_time.iter().min().copied();
        let hi = rows.open_time.iter().max().copied();
        if let Some((lo, hi)) = lo.zip(hi) {
            check_span(FooterBounds::Range(lo, hi), &expected, path)?;
        }
    }
    Ok((rows, info))
}

/// The largest `open_time` (ms) in a partition file, from the row-group statistics when they
/// are present, else by reading the column.
pub fn max_open_time(path: &Path) -> Result<Option<i64>, LoadError> {
    Ok(open_time_bounds(path)?.map(|(_, max)| max))
}

/// The smallest and largest `open_time` (ms) in a partition file, from the row-group
/// statistics when they are present, else by reading the column.
pub fn open_time_bounds(path: &Path) -> Result<Option<(i64, i64)>, LoadError> {
    let (_, _, bounds) = open_checked(path)?;
    match bounds {
        FooterBounds::Empty => Ok(None),
        FooterBounds::Range(lo, hi) => Ok(Some((lo, hi))),
        FooterBounds::Unknown => {
            let (rows, _) = read_file(path)?;
            let lo = rows.open_time.iter().min().copied();
            let hi = rows.open_time.iter().max().copied();
            Ok(lo.zip(hi))
        }
    }
}

/// The `open_time` range (ms) a file's row-group statistics show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FooterBounds {
    /// No rows.
    Empty,
    /// The smallest and largest open time.
    Range(i64, i64),
    /// A row group has no statistics: only reading the column tells.
    Unknown,
}

/// A partition file's footer: what [`read_footer`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Footer {
    /// The checked kline-etl metadata.
    pub info: FileInfo,
    /// The `open_time` range the row-group statistics show.
    pub bounds: FooterBounds,
    /// The value of the requested key-value metadata entry, if present.
    pub value: Option<String>,
    /// The smallest and largest value of each numeric column (prices and decimals as `f64`,
    /// decimals divided by 10^8) from the row-group statistics; a column is absent when a
    /// non-empty row group has no statistics for it.
    pub columns: std::collections::BTreeMap<String, (f64, f64)>,
}

/// Per numeric column, the `(min, max)` the row-group statistics show, as `f64` the way the
/// summary sees values ([`crate::transform::Column::f64_at`]).
fn column_bounds(meta: &ParquetMetaData) -> std::collections::BTreeMap<String, (f64, f64)> {
    let mut out = std::collections::BTreeMap::new();
    let schema = meta.file_metadata().schema_descr();
    for (i, col) in schema.columns().iter().enumerate() {
        let name = col.name();
        if !crate::transform::schema::NUMERIC_COLUMNS.contains(&name) {
            continue;
        }
        let mut acc: Option<(f64, f64)> = None;
        let mut complete = true;
        for rg in meta.row_groups() {
            if rg.num_rows() == 0 {
                continue;
            }
            let bounds = rg.column(i).statistics().and_then(|st| match st {
                Statistics::Double(s) => s.min_opt().copied().zip(s.max_opt().copied()),
                Statistics::Int64(s) => s
                    .min_opt()
                    .zip(s.max_opt())
                    .map(|(a, b)| (*a as f64, *b as f64)),
                Statistics::FixedLenByteArray(s) => {
                    let dec = |b: &[u8]| decimal_of_be(b).map(|v| v as f64 / 1e8);
                    dec(s.min_bytes_opt()?).zip(dec(s.max_bytes_opt()?))
                }
                _ => None,
            });
            match bounds {
                Some((lo, hi)) => acc = Some(acc.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi)))),
                None => complete = false,
            }
        }
        if let (true, Some(b)) = (complete, acc) {
            out.insert(name.to_owned(), b);
        }
    }
    out
}

/// A big-endian two's-complement integer of up to 16 bytes (a Parquet decimal's bytes).
fn decimal_of_be(b: &[u8]) -> Option<i128> {
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    let fill = if b[0] & 0x80 != 0 { 0xFF } else { 0 };
    let mut buf = [fill; 16];
    buf[16 - b.len()..].copy_from_slice(b);
    Some(i128::from_be_bytes(buf))
}

/// Read only the footer of a partition file: its checked metadata, the `open_time` bounds
/// and the key-value metadata entry `key` (for example [`META_STATS`]).
pub fn read_footer(path: &Path, key: &str) -> Result<Footer, LoadError> {
    let (b, info, bounds) = open_checked(path)?;
    Ok(Footer {
        bounds,
        value: meta_value(b.metadata(), key).map(str::to_owned),
        columns: column_bounds(b.metadata()),
        info,
    })
}

/// The `open_time` bounds (ms) from the row-group statistics.
fn footer_bounds(meta: &ParquetMetaData, info: &FileInfo) -> FooterBounds {
    let mut bounds: Option<(i64, i64)> = None;
    let mut complete = true;
    for rg in meta.row_groups() {
        match rg.column(0).statistics() {
            Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
                (Some(&lo), Some(&hi)) => {
                    bounds = Some(bounds.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
                }
                _ if rg.num_rows() == 0 => {}
                _ => complete = false,
            },
            _ if rg.num_rows() == 0 => {}
            _ => complete = false,
        }
    }
    if !complete {
        return FooterBounds::Unknown;
    }
    let ms = |v: i64| match info.time_unit {
        TimeUnit::Millisecond => v,
        TimeUnit::Microsecond => v.div_euclid(1000),
    };
    match bounds {
        Some((lo, hi)) => FooterBounds::Range(ms(lo), ms(hi)),
        None => FooterBounds::Empty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PartitionSpec, PriceType, TransformOptions};
    use crate::interval::Interval;
    use crate::load::partition::{Period, TaskKey};
    use crate::market::Market;
    use crate::transform::{Column, KlineContext};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    /// The codec of every column of a small 1m partition encoded with `compression`.
    fn codecs(compression: Compression) -> Vec<(String, PqCompression)> {
        chunks(compression)
            .into_iter()
            .map(|(c, codec, _)| (c, codec))
            .collect()
    }

    /// Every column chunk of a 100-row test file: path, codec, encodings.
    fn chunks(compression: Compression) -> Vec<(String, PqCompression, Vec<Encoding>)> {
        let opts = WriteOptions {
            pipeline: "t".to_owned(),
            source: "simulator".to_owned(),
            transform: TransformOptions::default(),
            compression,
            row_group_rows: 1_000,
            partition: PartitionSpec::Auto,
        };
        let task = TaskKey {
            market: Market::Spot,
            symbol: "BTCUSDT".parse().unwrap(),
            interval: Interval::M1,
        };
        let ctx = KlineContext {
            market: task.market,
            symbol: &task.symbol,
            interval: task.interval,
            options: &opts.transform,
        };
        let mut rows = KlineRows::empty(PriceType::Float64);
        rows.open_time = (0..100).map(|i| i * 60_000).collect();
        rows.close_time = rows.open_time.iter().map(|t| t + 59_999).collect();
        rows.trades = vec![7; 100];
        for c in rows.columns_mut() {
            *c = Column::Float64(
                (0..100)
                    .map(|i| 1.0 + f64::from(i) * 0.123_456_78)
                    .collect(),
            );
        }
        let batch = crate::transform::schema::into_record_batch(rows, &ctx).unwrap();
        let key = PartitionKey {
            task,
            period: Period::Month(1970, 1),
        };
        let bytes = encode(&batch, &key, &opts, &[], Path::new("t.parquet")).unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        let rg = reader.metadata().row_group(0);
        rg.columns()
            .iter()
            .map(|c| {
                (
                    c.column_path().string(),
                    c.compression(),
                    c.encodings().collect(),
                )
            })
            .collect()
    }

    #[test]
    fn times_and_trade_counts_are_delta_encoded_with_every_codec() {
        for compression in [Compression::Zstd(1), Compression::Snappy, Compression::None] {
            let chunks = chunks(compression);
            for (column, _, encodings) in &chunks {
                let delta = encodings.contains(&Encoding::DELTA_BINARY_PACKED);
                assert_eq!(
                    delta,
                    DELTA_ENCODED.contains(&column.as_str()),
                    "{column}: {encodings:?}"
                );
            }
            assert!(chunks.iter().any(|(c, _, _)| c == "trades"));
        }
    }

    #[test]
    fn with_zstd_only_the_quote_volumes_and_trade_counts_are_stored_uncompressed() {
        let zstd = codecs(Compression::Zstd(1));
        assert_eq!(zstd.len(), 12, "{zstd:?}");
        for (column, codec) in &zstd {
            if UNCOMPRESSED_WITH_ZSTD.contains(&column.as_str()) {
                assert_eq!(*codec, PqCompression::UNCOMPRESSED, "{column}");
            } else {
                assert!(
                    matches!(codec, PqCompression::ZSTD(_)),
                    "{column}: {codec:?}"
                );
            }
        }
        // Other codecs apply to every column, as configured.
        for (column, codec) in codecs(Compression::Snappy) {
            assert_eq!(codec, PqCompression::SNAPPY, "{column}");
        }
    }
}

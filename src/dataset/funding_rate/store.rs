//! The funding-rate dataset on disk: its layout, reading a symbol's stored history, and
//! merging new records into partitions by `funding_time` with atomic, byte-stable writes.
//!
//! Layout (version 2, names in [`crate::layout`]):
//! `<output.path>/funding_rate/market=usdm/symbol=BTCUSDT/year=2024/funding_rate-2024.parquet`
//! (`output.partition`: `auto`, `year` and `none` give a file per year, `month`
//! `funding_rate-2024-01.parquet`, `day` `funding_rate-2024-01-05.parquet`, always under
//! `year=`), plus `_kline_etl/summary.json` and `_kline_etl/.lock`. `market` and `symbol` are
//! in the path only. A record belongs to the partition of its funding time. A partition is rewritten only when its records change, so a rerun that brings nothing
//! new leaves every file byte-identical.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::rows::{BatchError, FundingRecord, read_partition, to_batch};
use crate::config::PartitionSpec;
use crate::layout;
use crate::load::delta::Table;
use crate::load::partition::{Granularity, Period};
use crate::load::{LoadError, WriteOptions};
use crate::market::Market;
use crate::transform::schema::{price_type_str, time_unit_str};

/// The dataset's directory name under `output.path`.
pub const DIR: &str = "funding_rate";

/// `<root>/funding_rate`.
pub fn dataset_dir(root: &Path) -> PathBuf {
    layout::dataset_dir(root, crate::config::Dataset::FundingRate)
}

/// `<root>/funding_rate/market=<m>/symbol=<s>`.
pub fn series_dir(root: &Path, market: Market, symbol: &str) -> PathBuf {
    layout::funding_series_dir(root, market, symbol)
}

/// The granularity of `output.partition` for funding rates (`auto`: a year, about 1,100
/// records at 8 h; `none` is a year too, since every file is under its `year=`).
pub fn granularity(spec: PartitionSpec) -> Granularity {
    match spec {
        PartitionSpec::Auto | PartitionSpec::Year | PartitionSpec::None => Granularity::Year,
        PartitionSpec::Month => Granularity::Month,
        PartitionSpec::Day => Granularity::Day,
    }
}

/// The partition file of `period` in a series directory.
pub fn partition_path(series: &Path, period: Period) -> PathBuf {
    let (y, label) = period.label();
    layout::funding_file(series, y, &label)
}

/// Every stored partition file under `dir` (recursively; dot- and underscore-prefixed names
/// skipped), sorted.
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    crate::load::snapshot::parquet_files(dir)
}

/// The (market, symbol) series stored under `root`, from the directory names.
pub fn stored_series(root: &Path) -> Result<Vec<(Market, String)>, LoadError> {
    let mut out = Vec::new();
    let dir = dataset_dir(root);
    if !dir.is_dir() {
        return Ok(out);
    }
    for m in fs_err::read_dir(&dir)? {
        let m = m?.path();
        let Some(market) = m
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| layout::hive_value(n, layout::MARKET))
            .and_then(|n| n.parse::<Market>().ok())
        else {
            continue;
        };
        if !m.is_dir() {
            continue;
        }
        for s in fs_err::read_dir(&m)? {
            let s = s?.path();
            if let Some(sym) = s
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| layout::hive_value(n, layout::SYMBOL))
                && s.is_dir()
            {
                out.push((market, sym.to_owned()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Why the stored data could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be listed, written or renamed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A stored file is unreadable or foreign, or a batch could not be built.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// Parquet refused to encode.
    #[error("cannot encode `{path}`")]
    Encode {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: parquet::errors::ParquetError,
    },
}

impl StoreError {
    /// The exit code: a foreign or unreadable stored file is a problem of the output (4).
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        match self {
            StoreError::Load(e) => e.exit_code(),
            _ => crate::exit::ExitCode::Output,
        }
    }
}

/// Everything stored for one series, sorted by funding time and unique (a time found in two
/// files, which only a change of `output.partition` can cause, keeps the later file's copy).
pub fn read_series(
    root: &Path,
    market: Market,
    symbol: &str,
    opts: &WriteOptions,
    table: Option<&Table>,
) -> Result<Vec<FundingRecord>, StoreError> {
    let mut all = BTreeMap::new();
    let dir = series_dir(root, market, symbol);
    let files = match table {
        Some(t) => t.current_files_under(&dir),
        None => files_under(&dir)?,
    };
    for f in files {
        for r in read_partition(&f, opts.transform.prices, opts.transform.time_unit)? {
            all.insert(r.funding_time, r);
        }
    }
    Ok(all.into_values().collect())
}

/// What merging a symbol's new records did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MergeCounts {
    /// Records not stored before.
    pub new: u64,
    /// Stored records whose values changed.
    pub replaced: u64,
    /// Partition files (re)written.
    pub files_written: u64,
    /// Bytes of those files.
    pub bytes_written: u64,
}

/// The klines' writer properties (compression, row groups, page statistics, sorted by the
/// first column, a dictionary only for `symbol`) with this dataset's key-value metadata:
/// nothing run- or time-dependent, so the same records give the same bytes.
fn properties(
    opts: &WriteOptions,
    market: Market,
    symbol: &str,
) -> Result<WriterProperties, parquet::errors::ParquetError> {
    let kv = |k: &str, v: &str| KeyValue::new(format!("kline_etl.{k}"), v.to_owned());
    crate::load::parquet::writer_properties(
        opts,
        vec![
            kv("dataset", DIR),
            kv("pipeline", &opts.pipeline),
            kv("market", market.as_str()),
            kv("symbol", symbol),
            kv("source", &opts.source),
            kv("time_unit", time_unit_str(opts.transform.time_unit)),
            kv("prices", price_type_str(opts.transform.prices)),
            kv("version", env!("CARGO_PKG_VERSION")),
        ],
    )
}

/// Merge `incoming` (sorted, unique) into the stored partitions of `symbol`: per partition
/// touched, stored records are kept, new times added and changed values replaced; a
/// partition is written (atomically) only when something in it changed.
pub fn merge_write(
    root: &Path,
    market: Market,
    symbol: &str,
    incoming: &[FundingRecord],
    opts: &WriteOptions,
    table: Option<&Table>,
) -> Result<MergeCounts, StoreError> {
    let g = granularity(opts.partition);
    let series = series_dir(root, market, symbol);
    let mut by_period: BTreeMap<Period, Vec<FundingRecord>> = BTreeMap::new();
    for r in incoming {
        by_period
            .entry(Period::of(g, r.funding_time))
            .or_default()
            .push(*r);
    }
    let mut counts = MergeCounts::default();
    for (period, records) in by_period {
        let path = partition_path(&series, period);
        let current = match table {
            Some(t) => t.current_file(&path),
            None => path.is_file().then(|| path.clone()),
        };
        let mut merged: BTreeMap<i64, FundingRecord> = if let Some(current) = &current {
            read_partition(current, opts.transform.prices, opts.transform.time_unit)?
                .into_iter()
                .map(|r| (r.funding_time, r))
                .collect()
        } else {
            BTreeMap::new()
        };
        let mut changed = false;
        for r in records {
            match merged.insert(r.funding_time, r) {
                None => {
                    counts.new += 1;
                    changed = true;
                }
                Some(old) if old != r => {
                    counts.replaced += 1;
                    changed = true;
                }
                Some(_) => {}
            }
        }
        if !changed {
            continue;
        }
        let rows: Vec<FundingRecord> = merged.into_values().collect();
        let batch = to_batch(&rows, opts.transform.prices, opts.transform.time_unit)?;
        let enc = |source| StoreError::Encode {
            path: path.clone(),
            source,
        };
        let props = properties(opts, market, symbol).map_err(enc)?;
        let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).map_err(enc)?;
        w.write(&batch).map_err(enc)?;
        let bytes = w.into_inner().map_err(enc)?;
        // Read the temporary file back before it replaces the old one. A Delta table's file
        // is a new version under a name of its own.
        let (prices, unit, n) = (opts.transform.prices, opts.transform.time_unit, rows.len());
        let target = match table {
            Some(_) => crate::load::delta::versioned_path(&path, &bytes),
            None => path.clone(),
        };
        crate::load::atomic::write_atomic(
            &target,
            &bytes,
            |tmp| match read_partition(tmp, prices, unit) {
                Ok(back) if back.len() == n => Ok(()),
                Ok(back) => Err(LoadError::Io(std::io::Error::other(format!(
                    "read back {} of {n} records from `{}`",
                    back.len(),
                    tmp.display()
                )))),
                Err(e) => Err(LoadError::Io(std::io::Error::other(e.to_string()))),
            },
            |_| false,
        )?;
        if let Some(t) = table {
            let time = rows.first().zip(rows.last()).map(|(a, b)| {
                (
                    "funding_time",
                    a.funding_time,
                    b.funding_time,
                    arrow_schema::TimeUnit::Millisecond,
                )
            });
            let stats = crate::load::delta::stats_json(n as u64, time);
            t.stage(&path, &target, bytes.len() as u64, &batch.schema(), stats)?;
        }
        counts.files_written += 1;
        counts.bytes_written += bytes.len() as u64;
    }
    Ok(counts)
}

/// A key-value metadata entry of a stored file (`kline_etl.<key>`), `None` when absent or
/// unreadable.
fn footer_value(path: &Path, key: &str) -> Option<String> {
    let file = fs_err::File::open(path).ok()?.into_parts().0;
    let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).ok()?;
    b.metadata()
        .file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == format!("kline_etl.{key}"))
        .and_then(|kv| kv.value.clone())
}

/// What converting the layout-1 funding-rate files did (or would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrateCounts {
    /// Layout-1 files converted.
    pub files: usize,
    /// Records in them.
    pub rows: u64,
    /// Reports moved into `_kline_etl/`.
    pub reports: usize,
}

/// `kline-etl migrate` for the funding-rate dataset under `root`: each layout-1 file
/// (`…/part.parquet`) is merged into its layout-2 partitions, every record read back from them
/// and compared, and only then removed; then layout 1's `_summary.json` moves into
/// `_kline_etl/`, the old lock file and the empty directories go. Killed at any point, a rerun finishes (merging is
/// idempotent). One line per step to `log`; `dry_run` changes nothing.
pub fn migrate_v1(
    root: &Path,
    dry_run: bool,
    log: &mut dyn std::io::Write,
) -> Result<MigrateCounts, StoreError> {
    use crate::load::legacy;
    let dir = dataset_dir(root);
    let mut counts = MigrateCounts::default();
    if !legacy::is_old_funding(&dir) {
        return Ok(counts);
    }
    let would = if dry_run { "would " } else { "" };
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let lock = if dry_run {
        None
    } else {
        let wait = std::time::Duration::ZERO;
        let old = crate::load::lock::acquire_file(
            dir.join(layout::v1::LOCK_FILE),
            "kline-etl migrate",
            wait,
        )?;
        let new = crate::load::lock::acquire_file(
            layout::funding_lock_file(root),
            "kline-etl migrate",
            wait,
        )?;
        Some((old, new))
    };
    for (market, symbol, old) in legacy::old_funding_files(&dir) {
        let (prices, time_unit) = super::rows::stored_types(&old)?;
        let records = read_partition(&old, prices, time_unit)?;
        let spec = match old
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
        {
            Some(n) if layout::hive_value(n, layout::MONTH).is_some() => PartitionSpec::Month,
            Some(n) if layout::hive_value(n, layout::DATE).is_some() => PartitionSpec::Day,
            _ => PartitionSpec::Year,
        };
        let opts = WriteOptions {
            pipeline: footer_value(&old, "pipeline").unwrap_or_default(),
            source: footer_value(&old, "source").unwrap_or_default(),
            transform: crate::config::TransformOptions {
                prices,
                time_unit,
                ..crate::config::TransformOptions::default()
            },
            compression: crate::config::Compression::Zstd(
                crate::config::validate::DEFAULT_ZSTD_LEVEL,
            ),
            row_group_rows: crate::config::validate::DEFAULT_ROW_GROUP_ROWS,
            partition: spec,
        };
        let _ = writeln!(
            log,
            "{would}convert {} ({} records)",
            rel(&old),
            records.len()
        );
        counts.files += 1;
        counts.rows += records.len() as u64;
        if dry_run {
            continue;
        }
        merge_write(root, market, &symbol, &records, &opts, None)?;
        verify_converted(root, market, &symbol, &records, &opts, &old)?;
        fs_err::remove_file(&old).map_err(LoadError::from)?;
    }
    let from = dir.join(layout::v1::SUMMARY_JSON);
    if from.is_file() {
        let to = layout::funding_summary_file(root);
        let _ = writeln!(log, "{would}move {} -> {}", rel(&from), rel(&to));
        counts.reports += 1;
        if !dry_run {
            if let Some(parent) = to.parent() {
                fs_err::create_dir_all(parent).map_err(LoadError::from)?;
            }
            fs_err::rename(&from, &to).map_err(LoadError::from)?;
        }
    }
    if !dry_run {
        drop(lock);
        let _ = fs_err::remove_file(dir.join(layout::v1::LOCK_FILE));
        legacy::remove_empty_dirs(&dir);
    }
    Ok(counts)
}

/// Every record of a layout-1 file is in the layout-2 partition it belongs to, equal.
fn verify_converted(
    root: &Path,
    market: Market,
    symbol: &str,
    records: &[FundingRecord],
    opts: &WriteOptions,
    old: &Path,
) -> Result<(), StoreError> {
    let series = series_dir(root, market, symbol);
    let g = granularity(opts.partition);
    let mut by_file: BTreeMap<PathBuf, Vec<&FundingRecord>> = BTreeMap::new();
    for r in records {
        by_file
            .entry(partition_path(&series, Period::of(g, r.funding_time)))
            .or_default()
            .push(r);
    }
    for (path, want) in by_file {
        let stored: BTreeMap<i64, FundingRecord> =
            read_partition(&path, opts.transform.prices, opts.transform.time_unit)?
                .into_iter()
                .map(|r| (r.funding_time, r))
                .collect();
        if want.iter().any(|r| stored.get(&r.funding_time) != Some(*r)) {
            return Err(StoreError::Load(LoadError::MigrateVerify {
                path: old.to_owned(),
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::rows::Value;
    use super::*;
    use crate::config::{Compression, PriceType, TimeUnit, TransformOptions};

    fn opts(partition: PartitionSpec, prices: PriceType) -> WriteOptions {
        WriteOptions {
            pipeline: "t".into(),
            source: "simulator".into(),
            transform: TransformOptions {
                prices,
                time_unit: TimeUnit::Microsecond,
                ..TransformOptions::default()
            },
            compression: Compression::Zstd(3),
            row_group_rows: 131_072,
            partition,
        }
    }

    fn rec(t: i64, rate: i128) -> FundingRecord {
        FundingRecord {
            funding_time: t,
            funding_rate: Value::Decimal(rate),
            mark_price: None,
        }
    }

    #[test]
    fn merges_by_funding_time_and_leaves_unchanged_partitions_alone() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(PartitionSpec::Auto, PriceType::Decimal);
        let y2023 = 1_703_980_800_001; // 2023-12-31T00:00:00.001Z
        let y2024 = 1_704_067_200_002; // 2024-01-01T00:00:00.002Z
        let first = merge_write(
            dir.path(),
            Market::UsdM,
            "BTCUSDT",
            &[rec(y2023, 1), rec(y2024, 2)],
            &o,
            None,
        )
        .unwrap();
        assert_eq!((first.new, first.files_written), (2, 2));
        let p2023 = dir
            .path()
            .join("funding_rate/market=usdm/symbol=BTCUSDT/year=2023/funding_rate-2023.parquet");
        let before = fs_err::read(&p2023).unwrap();
        // The same record again plus a new one in 2024: 2023 is not rewritten.
        let again = merge_write(
            dir.path(),
            Market::UsdM,
            "BTCUSDT",
            &[rec(y2024, 2), rec(y2024 + 8 * 3_600_000, 3)],
            &o,
            None,
        )
        .unwrap();
        assert_eq!((again.new, again.replaced, again.files_written), (1, 0, 1));
        assert_eq!(fs_err::read(&p2023).unwrap(), before);
        // A changed value replaces the stored one.
        let fix = merge_write(
            dir.path(),
            Market::UsdM,
            "BTCUSDT",
            &[rec(y2023, 7)],
            &o,
            None,
        )
        .unwrap();
        assert_eq!((fix.new, fix.replaced), (0, 1));
        let all = read_series(dir.path(), Market::UsdM, "BTCUSDT", &o, None).unwrap();
        let rates: Vec<Value> = all.iter().map(|r| r.funding_rate).collect();
        assert_eq!(
            rates,
            [Value::Decimal(7), Value::Decimal(2), Value::Decimal(3)]
        );
        assert_eq!(
            stored_series(dir.path()).unwrap(),
            vec![(Market::UsdM, "BTCUSDT".to_owned())]
        );
        // Files of another price type are refused, not mixed.
        let e = read_series(
            dir.path(),
            Market::UsdM,
            "BTCUSDT",
            &opts(PartitionSpec::Auto, PriceType::Float64),
            None,
        );
        assert!(e.is_err());
    }

    /// A layout-1 file (with its `symbol` column, under `month=`), as kline-etl wrote it
    /// before layout 2.
    fn write_v1(path: &Path, records: &[FundingRecord], o: &WriteOptions) {
        use std::sync::Arc;
        let b = to_batch(records, o.transform.prices, o.transform.time_unit).unwrap();
        let mut fields: Vec<arrow_schema::FieldRef> = b.schema().fields().to_vec();
        let sym = arrow_schema::Field::new("symbol", crate::transform::schema::label_type(), false);
        fields.insert(1, Arc::new(sym));
        let mut cols = b.columns().to_vec();
        cols.insert(
            1,
            crate::transform::schema::label_array("BTCUSDT", records.len()),
        );
        let schema = Arc::new(arrow_schema::Schema::new(fields));
        let batch = arrow_array::RecordBatch::try_new(schema.clone(), cols).unwrap();
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        let mut w = ArrowWriter::try_new(Vec::new(), schema, None).unwrap();
        w.write(&batch).unwrap();
        fs_err::write(path, w.into_inner().unwrap()).unwrap();
    }

    #[test]
    fn layout_one_files_are_converted_verified_and_only_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let o = opts(PartitionSpec::Month, PriceType::Decimal);
        let jan = 1_704_067_200_002; // 2024-01-01T00:00:00.002Z
        let recs = [rec(jan, 1), rec(jan + 8 * 3_600_000, -2)];
        let old_dir = root.join("funding_rate/market=usdm/symbol=BTCUSDT");
        let old = old_dir.join("month=2024-01/part.parquet");
        write_v1(&old, &recs, &o);
        fs_err::write(root.join("funding_rate/_summary.json"), b"{}").unwrap();
        let e = crate::load::legacy::refuse_old_funding(root).unwrap_err();
        assert!(e.to_string().contains("kline-etl migrate"), "{e}");
        // A dry run lists and changes nothing.
        let mut log = Vec::new();
        let dry = migrate_v1(root, true, &mut log).unwrap();
        assert_eq!((dry.files, dry.rows, dry.reports), (1, 2, 1));
        assert!(old.is_file());
        assert!(String::from_utf8_lossy(&log).contains("would convert funding_rate/market=usdm/symbol=BTCUSDT/month=2024-01/part.parquet (2 records)"));
        let done = migrate_v1(root, false, &mut Vec::new()).unwrap();
        assert_eq!(done, dry);
        assert!(!old.exists() && !old_dir.join("month=2024-01").exists());
        let new = old_dir.join("year=2024/funding_rate-2024-01.parquet");
        assert_eq!(
            read_partition(&new, PriceType::Decimal, TimeUnit::Microsecond).unwrap(),
            recs
        );
        assert!(root.join("funding_rate/_kline_etl/summary.json").is_file());
        assert!(!root.join("funding_rate/_summary.json").exists());
        crate::load::legacy::refuse_old_funding(root).unwrap();
        // Nothing left to do.
        assert_eq!(
            migrate_v1(root, false, &mut Vec::new()).unwrap(),
            MigrateCounts::default()
        );
    }

    #[test]
    fn partition_specs_spell_one_set_of_hive_keys() {
        let s = Path::new("s");
        let t = 1_704_067_200_002;
        let path = |spec| partition_path(s, Period::of(granularity(spec), t));
        assert_eq!(
            path(PartitionSpec::Auto),
            Path::new("s/year=2024/funding_rate-2024.parquet")
        );
        assert_eq!(
            path(PartitionSpec::Month),
            Path::new("s/year=2024/funding_rate-2024-01.parquet")
        );
        assert_eq!(
            path(PartitionSpec::Day),
            Path::new("s/year=2024/funding_rate-2024-01-01.parquet")
        );
        assert_eq!(path(PartitionSpec::None), path(PartitionSpec::Year));
    }
}

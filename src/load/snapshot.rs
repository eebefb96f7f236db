//! Where and how snapshot files are written: one Parquet file per snapshot, named by its
//! snapshot time, replaced atomically ([`super::atomic::write_atomic`]) so a rerun for the same
//! snapshot time overwrites instead of duplicating.
//!
//! Layout (hive style, like klines):
//!
//! ```text
//! <root>/ticker_price/market=spot/date=2026-11-25/20261125T120000Z.parquet
//! <root>/depth/market=spot/date=2026-11-25/BTCUSDT-20261125T120000Z.parquet
//! ```
//!
//! The file name is the snapshot time (UTC, whole second), so files sort by time and a
//! day's snapshots are one `date=` directory.

use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::{LoadError, WriteOptions};
use crate::config::Dataset;
use crate::market::Market;
use crate::transform::schema::{price_type_str, time_unit_str};

pub use crate::layout::{depth_path, snapshot_file_name, ticker_path};

/// What writing a snapshot file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotWrite {
    /// The file.
    pub path: PathBuf,
    /// Rows in it.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Whether a file of the same snapshot was replaced (a rerun).
    pub replaced: bool,
}

/// Where snapshot files go: the output root, the write options, and with `output.format:
/// delta` the dataset's table (the file is staged for its commit).
#[derive(Debug, Clone, Copy)]
pub struct SnapshotSink<'a> {
    /// The output root.
    pub root: &'a Path,
    /// The write options.
    pub opts: &'a WriteOptions,
    /// The dataset's Delta table.
    pub table: Option<&'a super::delta::Table>,
}

/// Encode `batch` and write it atomically to `root/relative`. Metadata names the dataset,
/// pipeline, market, source, time unit and price type (nothing run-dependent, so the same
/// snapshot gives the same bytes).
pub fn write_snapshot(
    sink: &SnapshotSink<'_>,
    relative: &Path,
    batch: &RecordBatch,
    dataset: Dataset,
    market: Market,
) -> Result<SnapshotWrite, LoadError> {
    let opts = sink.opts;
    let path = sink.root.join(relative);
    let enc = |source| LoadError::Encode {
        path: path.clone(),
        source,
    };
    let kv = |k: &str, v: &str| KeyValue::new(format!("kline_etl.{k}"), v.to_owned());
    let props = WriterProperties::builder()
        .set_compression(super::parquet::compression(opts.compression).map_err(enc)?)
        .set_max_row_group_row_count(Some(opts.row_group_rows.max(1)))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_key_value_metadata(Some(vec![
            kv("dataset", dataset.as_str()),
            kv("pipeline", &opts.pipeline),
            kv("market", market.as_str()),
            kv("source", &opts.source),
            kv("time_unit", time_unit_str(opts.transform.time_unit)),
            kv("prices", price_type_str(opts.transform.prices)),
            kv("version", env!("CARGO_PKG_VERSION")),
        ]))
        .build();
    let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).map_err(enc)?;
    w.write(batch).map_err(enc)?;
    let bytes = w.into_inner().map_err(enc)?;
    let (path, replaced) = match sink.table {
        // A table's files are never replaced: a rerun's snapshot of the same time is a new
        // version of the file, under a name of its own.
        Some(table) => {
            let file = super::delta::versioned_path(&path, &bytes);
            let replaced = table.current_file(&path).is_some();
            super::atomic::write_atomic(&file, &bytes, |_| Ok(()), |_| false)?;
            let stats = super::delta::stats_json(batch.num_rows() as u64, None);
            table.stage(&path, &file, bytes.len() as u64, &batch.schema(), stats)?;
            (file, replaced)
        }
        None => {
            let replaced = path.is_file();
            super::atomic::write_atomic(&path, &bytes, |_| Ok(()), |_| false)?;
            (path, replaced)
        }
    };
    Ok(SnapshotWrite {
        path,
        rows: batch.num_rows() as u64,
        bytes: bytes.len() as u64,
        replaced,
    })
}

/// Snapshot files of a dataset under `root` (`.parquet`, not dot-prefixed), sorted.
pub fn snapshot_files(root: &Path, dataset: Dataset) -> Result<Vec<PathBuf>, LoadError> {
    parquet_files(&crate::layout::dataset_dir(root, dataset))
}

/// Every `.parquet` file under `dir`, recursively, skipping dot- and underscore-prefixed
/// names (temporary files, `_kline_etl/`), sorted; empty when `dir` does not exist. In a
/// Delta table only the files its log holds.
pub fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
        for e in fs_err::read_dir(dir)? {
            let p = e?.path();
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if crate::layout::is_hidden(&name) {
                continue;
            }
            if p.is_dir() {
                walk(&p, out)?;
            } else if name.ends_with(".parquet") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    if dir.is_dir() {
        walk(dir, &mut out)?;
    }
    super::delta::retain_live(&mut out, super::delta::live_files_of(dir)?.as_deref());
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbol::Symbol;

    #[test]
    fn paths_are_hive_style_and_named_by_time() {
        let t = 1_764_072_000_000; // 2025-11-25T12:00:00Z
        assert_eq!(
            ticker_path(Market::UsdM, t),
            PathBuf::from("ticker_price/market=usdm/date=2025-11-25/20251125T120000Z.parquet")
        );
        let s: Symbol = "BTCUSDT".parse().unwrap();
        assert_eq!(
            depth_path(Market::Spot, &s, t),
            PathBuf::from("depth/market=spot/date=2025-11-25/BTCUSDT-20251125T120000Z.parquet")
        );
    }
}

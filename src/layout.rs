//! Every name kline-etl gives to something on disk, in one place: the dataset directories
//! under an output root, the hive keys and their order, partition directory and file names,
//! snapshot file names, kline family roots, and the run's own files (summary, resume file,
//! lock, archive manifest, quarantine, object-store mirror record). Nothing else in the crate
//! spells a path; it calls these. Pure functions, no I/O.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use crate::config::{Dataset, KlineFamily, Pipeline};
use crate::interval::Interval;
use crate::market::Market;
use crate::shard::Shard;
use crate::symbol::Symbol;

/// Hive key of the market level (`market=spot`).
pub const MARKET: &str = "market";
/// Hive key of the symbol level (`symbol=BTCUSDT`).
pub const SYMBOL: &str = "symbol";
/// Hive key of the interval level (`interval=1h`).
pub const INTERVAL: &str = "interval";
/// Hive key of a yearly partition (`year=2024`).
pub const YEAR: &str = "year";
/// Hive key of a monthly partition (`month=2024-01`).
pub const MONTH: &str = "month";
/// Hive key of a daily partition and of snapshot days (`date=2024-01-05`).
pub const DATE: &str = "date";
/// Hive key of a continuous-klines contract type (`contract_type=PERPETUAL`).
pub const CONTRACT_TYPE: &str = "contract_type";

/// The file name of every kline partition (deterministic, so reruns replace rather than add).
pub const PARTITION_FILE: &str = "part.parquet";
/// The dataset lock file in a klines directory.
pub const LOCK_FILE: &str = ".kline-etl.lock";
/// The resume file in a klines directory.
pub const RESUME_FILE: &str = "_resume.json";
/// The stem of the run summary files (`_summary.json`, `_summary.parquet`).
pub const SUMMARY_STEM: &str = "_summary";
/// The archive source's record of ingested files, in a klines directory.
pub const ARCHIVE_MANIFEST_FILE: &str = "_archive_manifest.json";
/// Where archive files that failed verification are kept, under an output root.
pub const QUARANTINE_DIR: &str = "_quarantine";
/// The object-store mirror's own record, at the mirror root (never uploaded).
pub const MIRROR_FILE: &str = ".kline-etl-mirror.json";

/// `key=value`, one hive directory segment.
pub fn hive(key: &str, value: impl Display) -> String {
    format!("{key}={value}")
}

/// The value of a hive segment `name` for `key` (`market=spot` → `spot`), `None` when `name` is
/// not that key's segment.
pub fn hive_value<'a>(name: &'a str, key: &str) -> Option<&'a str> {
    name.strip_prefix(key)?.strip_prefix('=')
}

/// Whether a directory entry is the tool's own or a temporary (`.` or `_` prefixed), which
/// scans skip as every hive reader does.
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// The directory of a dataset under an output root (`<root>/klines`, `<root>/depth`).
pub fn dataset_dir(root: &Path, dataset: Dataset) -> PathBuf {
    root.join(dataset.as_str())
}

/// The klines directory of an output root (a pipeline's, or a kline family's root).
pub fn klines_dir(root: &Path) -> PathBuf {
    dataset_dir(root, Dataset::Klines)
}

/// The output root of a pipeline's klines: `output.path`, or a futures kline family's own
/// root under it ([`family_root`]).
pub fn kline_root(p: &Pipeline) -> PathBuf {
    p.output.path.join(family_root(p.kline_family))
}

/// Where a kline family's output root lives, relative to `output.path`: the output root itself
/// for [`KlineFamily::Trades`], otherwise a root of its own (`mark_price`, `index_price`,
/// `premium_index`, `continuous/contract_type=PERPETUAL`).
pub fn family_root(family: KlineFamily) -> PathBuf {
    match family {
        KlineFamily::Trades => PathBuf::new(),
        KlineFamily::Continuous(c) => {
            PathBuf::from(family.as_str()).join(hive(CONTRACT_TYPE, c.as_str()))
        }
        other => PathBuf::from(other.as_str()),
    }
}

/// A series' directory relative to the output root:
/// `klines/market=spot/symbol=BTCUSDT/interval=1h`.
pub fn series_dir(market: Market, symbol: &Symbol, interval: Interval) -> PathBuf {
    PathBuf::from(Dataset::Klines.as_str())
        .join(hive(MARKET, market.as_str()))
        .join(hive(SYMBOL, symbol.as_str()))
        .join(hive(INTERVAL, interval.as_str()))
}

/// `year=2024`.
pub fn year_dir(y: i32) -> String {
    hive(YEAR, format_args!("{y:04}"))
}

/// `month=2024-01`.
pub fn month_dir(y: i32, m: u32) -> String {
    hive(MONTH, format_args!("{y:04}-{m:02}"))
}

/// `date=2024-01-05`.
pub fn date_dir(y: i32, m: u32, d: u32) -> String {
    hive(DATE, format_args!("{y:04}-{m:02}-{d:02}"))
}

/// `.kline-etl.lock` (or one per shard, `.kline-etl.shard-2-of-4.lock`) in the klines directory.
pub fn lock_file(root: &Path, shard: Option<Shard>) -> PathBuf {
    match shard {
        None => klines_dir(root).join(LOCK_FILE),
        Some(s) => klines_dir(root).join(format!(".kline-etl.{s}.lock")),
    }
}

/// `_resume.json` (or one per shard, `_resume.shard-2-of-4.json`) in the klines directory.
pub fn resume_file(root: &Path, shard: Option<Shard>) -> PathBuf {
    let name = match shard {
        None => RESUME_FILE.to_owned(),
        Some(s) => format!("_resume.{s}.json"),
    };
    klines_dir(root).join(name)
}

/// The shard a per-shard resume file name belongs to (`_resume.shard-2-of-4.json`).
pub fn resume_shard(name: &str) -> Option<Shard> {
    name.strip_prefix("_resume.")?
        .strip_suffix(".json")?
        .parse::<Shard>()
        .ok()
}

/// `_summary.json` and `_summary.parquet` (per shard `_summary.shard-I-of-N.*`) in the klines
/// directory.
pub fn summary_files(root: &Path, shard: Option<Shard>) -> (PathBuf, PathBuf) {
    let stem = shard.map_or_else(
        || SUMMARY_STEM.to_owned(),
        |s| format!("{SUMMARY_STEM}.{s}"),
    );
    let dir = klines_dir(root);
    (
        dir.join(format!("{stem}.json")),
        dir.join(format!("{stem}.parquet")),
    )
}

/// The run summary of the whole (unsharded) klines dataset, `_summary.json`.
pub fn summary_json(root: &Path) -> PathBuf {
    summary_files(root, None).0
}

/// The run summary of a snapshot dataset, `<root>/<dataset>/_summary.json`.
pub fn snapshot_summary_file(root: &Path, dataset: &str) -> PathBuf {
    root.join(dataset).join(format!("{SUMMARY_STEM}.json"))
}

/// `<root>/klines/_archive_manifest.json`.
pub fn archive_manifest_file(root: &Path) -> PathBuf {
    klines_dir(root).join(ARCHIVE_MANIFEST_FILE)
}

/// `<root>/_quarantine`.
pub fn quarantine_dir(root: &Path) -> PathBuf {
    root.join(QUARANTINE_DIR)
}

/// `date=YYYY-MM-DD` of a snapshot time (UTC).
pub fn snapshot_date_dir(snapshot_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(snapshot_ms).map_or_else(
        || hive(DATE, "invalid"),
        |d| hive(DATE, d.format("%Y-%m-%d")),
    )
}

/// The file name of a snapshot: `20261125T120000Z.parquet`.
pub fn snapshot_file_name(snapshot_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(snapshot_ms).map_or_else(
        || format!("{snapshot_ms}.parquet"),
        |d| d.format("%Y%m%dT%H%M%SZ.parquet").to_string(),
    )
}

/// The file of a ticker snapshot, relative to the output root.
pub fn ticker_path(market: Market, snapshot_ms: i64) -> PathBuf {
    PathBuf::from(Dataset::TickerPrice.as_str())
        .join(hive(MARKET, market))
        .join(snapshot_date_dir(snapshot_ms))
        .join(snapshot_file_name(snapshot_ms))
}

/// The file of one symbol's order-book snapshot, relative to the output root.
pub fn depth_path(market: Market, symbol: &Symbol, snapshot_ms: i64) -> PathBuf {
    PathBuf::from(Dataset::Depth.as_str())
        .join(hive(MARKET, market))
        .join(hive(SYMBOL, symbol))
        .join(snapshot_date_dir(snapshot_ms))
        .join(snapshot_file_name(snapshot_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spelled_once_here() {
        let root = Path::new("/out");
        assert_eq!(
            lock_file(root, None),
            Path::new("/out/klines/.kline-etl.lock")
        );
        let shard: Shard = "2/4".parse().unwrap();
        assert_eq!(
            resume_file(root, Some(shard)),
            Path::new("/out/klines/_resume.shard-2-of-4.json")
        );
        assert_eq!(resume_shard("_resume.shard-2-of-4.json"), Some(shard));
        assert_eq!(resume_shard("_resume.json"), None);
        assert_eq!(
            summary_files(root, None).1,
            Path::new("/out/klines/_summary.parquet")
        );
        assert_eq!(hive_value("market=spot", MARKET), Some("spot"));
        assert_eq!(hive_value("marketing=x", MARKET), None);
        assert_eq!(month_dir(2024, 1), "month=2024-01");
    }
}

//! Every name kline-etl gives to something on disk, in one place: the dataset directories
//! under an output root, the hive keys and their order, partition file names, snapshot file
//! names, kline family roots, and the run's own files (summary, resume file, lock, archive
//! manifest, quarantine, object-store mirror record). Nothing else in the crate spells a path;
//! it calls these. Pure functions, no I/O. The names of layout version 1 (for `kline-etl
//! migrate`) are in [`v1`].
//!
//! # Layout version 2: the dataset directory is one table
//!
//! ```text
//! <output.path>/klines/                                   the table (every market, symbol, interval)
//!   market=spot/symbol=BTCUSDT/year=2024/1h-2024.parquet         1h .. 12h, 1d, 3d, 1w, 1M: a file per year
//!   market=spot/symbol=BTCUSDT/year=2024/1m-2024-01.parquet      1m .. 30m: a file per month
//!   market=spot/symbol=BTCUSDT/year=2024/1s-2024-01-05.parquet   1s: a file per day
//!   _kline_etl/summary.json, summary.parq, resume.json, archive_manifest.json, .lock (per shard: *.shard-I-of-N.*)
//! ```
//!
//! Why each choice (every reader's behaviour is checked by `tests/python/interop.py`):
//!
//! - **One set of hive keys, in one order, for every interval**: `market`, `symbol`, `year`.
//!   Spark refuses a directory whose leaves have different keys
//!   (`CONFLICTING_PARTITION_COLUMN_NAMES`), DuckDB and polars refuse one glob over them ("Hive
//!   partition mismatch"); with the same keys everywhere, `spark.read.parquet(DIR)`,
//!   `read_parquet('DIR/**/*.parquet', hive_partitioning=true)` and `scan_parquet` read any
//!   mix of intervals and markets as one table.
//! - **`interval` is a column in the files, not a hive key.** Spark infers a partition value's
//!   type from the values, and Java's `Double.parseDouble` accepts `1d` and `3d` (a `d` suffix
//!   means double): a dataset holding only daily klines would read `interval=1d` as the double
//!   `1.0`. A string column in the file is a string in every reader, whatever it holds. The
//!   file name starts with the interval, so a warehouse listing still shows it, and each file
//!   holds one interval (its footer statistics let readers skip the others).
//! - **Partition values live in the path only** (`market`, `symbol`, `year`), as Spark,
//!   pyarrow `write_dataset`, polars and DuckDB `PARTITION_BY` write them: a column in both
//!   the file and the path makes readers disagree on its type (`pyarrow.dataset` refused the
//!   dictionary `symbol` of layout 1). Each file's key-value metadata still names its market,
//!   symbol and interval.
//! - **`year` is the time key**: an integer in every reader (Spark `int`, pyarrow `int32`,
//!   polars `Int64`, DuckDB `BIGINT`); `month=2024-01` or `date=` would be a string in some
//!   readers and a date in others. Files are as large as the interval allows and never tiny
//!   for fine intervals: a month of 1m (44,640 rows), a day of 1s (86,400), a year of 1h
//!   (8,784); a coarse interval has a file per year (365 daily rows), since the key is there
//!   for every interval.
//! - **The run's own files are in `_kline_etl/`, none named `*.parquet`** (the per-series
//!   statistics table is `summary.parq`): Spark and pyarrow skip `_`-prefixed directories, but
//!   a DuckDB or polars `**/*.parquet` glob does not, and the statistics table once came back as
//!   data rows.
//! - Snapshot datasets (`ticker_price/market=spot/date=2024-01-05/<time>.parquet`,
//!   `depth/market=spot/date=2024-01-05/BTCUSDT-<time>.parquet`, `symbol` a column of both;
//!   `date` is a string in pyarrow and pandas, a date in DuckDB, polars and Spark), the
//!   funding-rate history
//!   (`funding_rate/market=usdm/symbol=BTCUSDT/year=2024/funding_rate-2024.parquet`) and each
//!   kline family's root follow the same rules: one table per dataset directory, partition
//!   values in the path only, reports in `_kline_etl/`.

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
/// Hive key of the interval level of layout 1 (`interval=1h`; a file column in layout 2).
pub const INTERVAL: &str = "interval";
/// Hive key of a yearly partition (`year=2024`).
pub const YEAR: &str = "year";
/// Hive key of a monthly partition of layout 1 (`month=2024-01`).
pub const MONTH: &str = "month";
/// Hive key of snapshot days (`date=2024-01-05`), and of layout 1's daily partitions.
pub const DATE: &str = "date";
/// Hive key of a continuous-klines contract type (`contract_type=PERPETUAL`).
pub const CONTRACT_TYPE: &str = "contract_type";

/// The layout version this build writes (see the module docs); datasets in an older one are
/// refused until `kline-etl migrate` converts them.
pub const LAYOUT_VERSION: u32 = 2;
/// The directory of the run's own files in a dataset directory (skipped by every hive reader).
pub const STATE_DIR: &str = "_kline_etl";
/// The dataset lock file in [`STATE_DIR`] (dot-prefixed: never uploaded to an object store).
pub const LOCK_FILE: &str = ".lock";
/// The resume file in [`STATE_DIR`].
pub const RESUME_FILE: &str = "resume.json";
/// The stem of the run summary files (`summary.json`, `summary.parq`) in [`STATE_DIR`].
pub const SUMMARY_STEM: &str = "summary";
/// The run summary in [`STATE_DIR`].
pub const SUMMARY_JSON: &str = "summary.json";
/// The extension of the per-series statistics table: Parquet, but not `*.parquet`, so that no
/// data glob picks it up.
pub const SUMMARY_TABLE_EXT: &str = "parq";
/// The archive source's record of ingested files, in [`STATE_DIR`].
pub const ARCHIVE_MANIFEST_FILE: &str = "archive_manifest.json";
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

/// A symbol's directory relative to the output root, shared by its intervals:
/// `klines/market=spot/symbol=BTCUSDT`.
pub fn symbol_dir(market: Market, symbol: &Symbol) -> PathBuf {
    PathBuf::from(Dataset::Klines.as_str())
        .join(hive(MARKET, market.as_str()))
        .join(hive(SYMBOL, symbol.as_str()))
}

/// `year=2024`.
pub fn year_dir(y: i32) -> String {
    hive(YEAR, format_args!("{y:04}"))
}

/// The file of one partition relative to the output root:
/// `klines/market=spot/symbol=BTCUSDT/year=2024/1m-2024-01.parquet`, where `period` is the
/// partition's span (`2024`, `2024-01`, `2024-01-05`) inside the year `y`.
pub fn partition_file(
    market: Market,
    symbol: &Symbol,
    interval: Interval,
    y: i32,
    period: &str,
) -> PathBuf {
    symbol_dir(market, symbol)
        .join(year_dir(y))
        .join(format!("{}-{period}.parquet", interval.as_str()))
}

/// A Delta table's file of a partition (`output.format: delta`): the partition file's name
/// with a tag of its content, `1h-2024.0123456789abcdef.parquet`. Table files are never
/// replaced, so each version of a partition has a name of its own.
pub fn versioned_file(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let stem = name.strip_suffix(".parquet").unwrap_or(&name);
    path.with_file_name(format!("{stem}.{tag}.parquet"))
}

/// A file name without the version tag of [`versioned_file`] (`1h-2024.0123456789abcdef.parquet`
/// -> `1h-2024.parquet`); other names as they are.
pub fn unversioned(name: &str) -> std::borrow::Cow<'_, str> {
    if let Some(stem) = name.strip_suffix(".parquet")
        && let Some((base, tag)) = stem.rsplit_once('.')
        && tag.len() == VERSION_TAG_LEN
        && tag.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return format!("{base}.parquet").into();
    }
    name.into()
}

/// Whether a file name is one kline-etl writes into a dataset (a kline or funding-rate
/// partition file, a snapshot file; versioned or not). A Delta table holding other files was
/// rewritten by another tool (a compaction).
pub fn is_dataset_file(name: &str) -> bool {
    let name = unversioned(name);
    let Some(stem) = name.strip_suffix(".parquet") else {
        return false;
    };
    if partition_file_interval(&name).is_some() {
        return true;
    }
    if let Some(period) = stem.strip_prefix("funding_rate-") {
        return !period.is_empty() && period.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    }
    // Snapshots: `[SYMBOL-]YYYYMMDDTHHMMSSZ`.
    let time = stem.rsplit('-').next().unwrap_or(stem);
    time.len() == 16
        && time.ends_with('Z')
        && time.as_bytes()[8] == b'T'
        && time.bytes().filter(u8::is_ascii_digit).count() == 14
}

/// Hex digits of a [`versioned_file`] tag.
pub const VERSION_TAG_LEN: usize = 16;

/// The interval a partition file name belongs to (`1m-2024-01.parquet` → `1m`), `None` for a
/// name that is not a partition file (temporaries are dot-prefixed and never match).
pub fn partition_file_interval(name: &str) -> Option<Interval> {
    let name = unversioned(name);
    let stem = name.strip_suffix(".parquet")?;
    let (iv, period) = stem.split_once('-')?;
    if period.is_empty() || !period.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    iv.parse().ok()
}

/// The directory of the run's own files in the klines directory of `root`.
pub fn state_dir(root: &Path) -> PathBuf {
    state_dir_of(&klines_dir(root))
}

/// The directory of the run's own files in a dataset directory.
pub fn state_dir_of(dataset_dir: &Path) -> PathBuf {
    dataset_dir.join(STATE_DIR)
}

/// `_kline_etl/.lock` (or one per shard, `.lock.shard-2-of-4`).
pub fn lock_file(root: &Path, shard: Option<Shard>) -> PathBuf {
    match shard {
        None => state_dir(root).join(LOCK_FILE),
        Some(s) => state_dir(root).join(format!("{LOCK_FILE}.{s}")),
    }
}

/// `_kline_etl/resume.json` (or one per shard, `resume.shard-2-of-4.json`).
pub fn resume_file(root: &Path, shard: Option<Shard>) -> PathBuf {
    let name = match shard {
        None => RESUME_FILE.to_owned(),
        Some(s) => format!("resume.{s}.json"),
    };
    state_dir(root).join(name)
}

/// The shard a per-shard resume file name belongs to (`resume.shard-2-of-4.json`).
pub fn resume_shard(name: &str) -> Option<Shard> {
    name.strip_prefix("resume.")?
        .strip_suffix(".json")?
        .parse::<Shard>()
        .ok()
}

/// `_kline_etl/summary.json` and `summary.parq` (per shard `summary.shard-I-of-N.*`).
pub fn summary_files(root: &Path, shard: Option<Shard>) -> (PathBuf, PathBuf) {
    let stem = shard.map_or_else(
        || SUMMARY_STEM.to_owned(),
        |s| format!("{SUMMARY_STEM}.{s}"),
    );
    let dir = state_dir(root);
    (
        dir.join(format!("{stem}.json")),
        dir.join(format!("{stem}.{SUMMARY_TABLE_EXT}")),
    )
}

/// The run summary of the whole (unsharded) klines dataset.
pub fn summary_json(root: &Path) -> PathBuf {
    summary_files(root, None).0
}

/// The run summary of a snapshot dataset, `<root>/<dataset>/_kline_etl/summary.json`.
pub fn snapshot_summary_file(root: &Path, dataset: &str) -> PathBuf {
    state_dir_of(&root.join(dataset)).join(SUMMARY_JSON)
}

/// `<root>/klines/_kline_etl/archive_manifest.json` (one per shard,
/// `archive_manifest.shard-2-of-4.json`: shards run at once, and each records the archive
/// files of its own series).
pub fn archive_manifest_file(root: &Path, shard: Option<Shard>) -> PathBuf {
    match shard {
        None => state_dir(root).join(ARCHIVE_MANIFEST_FILE),
        Some(s) => state_dir(root).join(format!("archive_manifest.{s}.json")),
    }
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

/// The file of one symbol's order-book snapshot, relative to the output root:
/// `depth/market=spot/date=2024-01-05/BTCUSDT-20240105T120000Z.parquet`. The symbol is a
/// column of the file and the start of its name, not a hive key: `ticker_price` and `depth`
/// have the same keys (`market`, `date`), and no value is in both a path and a file.
pub fn depth_path(market: Market, symbol: &Symbol, snapshot_ms: i64) -> PathBuf {
    PathBuf::from(Dataset::Depth.as_str())
        .join(hive(MARKET, market))
        .join(snapshot_date_dir(snapshot_ms))
        .join(format!("{symbol}-{}", snapshot_file_name(snapshot_ms)))
}

/// A funding-rate series' directory: `<root>/funding_rate/market=usdm/symbol=BTCUSDT`.
pub fn funding_series_dir(root: &Path, market: Market, symbol: &str) -> PathBuf {
    dataset_dir(root, Dataset::FundingRate)
        .join(hive(MARKET, market.as_str()))
        .join(hive(SYMBOL, symbol))
}

/// A funding-rate partition file in a series directory: `year=2024/funding_rate-2024.parquet`
/// (`period` as in [`partition_file`]).
pub fn funding_file(series: &Path, y: i32, period: &str) -> PathBuf {
    series.join(year_dir(y)).join(format!(
        "{}-{period}.parquet",
        Dataset::FundingRate.as_str()
    ))
}

/// The funding-rate dataset's run report, `<root>/funding_rate/_kline_etl/summary.json`.
pub fn funding_summary_file(root: &Path) -> PathBuf {
    snapshot_summary_file(root, Dataset::FundingRate.as_str())
}

/// The funding-rate dataset's lock, `<root>/funding_rate/_kline_etl/.lock`.
pub fn funding_lock_file(root: &Path) -> PathBuf {
    state_dir_of(&dataset_dir(root, Dataset::FundingRate)).join(LOCK_FILE)
}

/// The names of layout version 1, read only by `kline-etl migrate` and by the check that
/// refuses to mix layouts.
pub mod v1 {
    use std::path::{Path, PathBuf};

    use super::{
        ARCHIVE_MANIFEST_FILE, RESUME_FILE, SUMMARY_JSON as V2_SUMMARY_JSON, SUMMARY_STEM,
        SUMMARY_TABLE_EXT, state_dir,
    };

    /// Every layout-1 partition file's name.
    pub const PARTITION_FILE: &str = "part.parquet";
    /// The layout-1 lock file in the klines directory.
    pub const LOCK_FILE: &str = ".kline-etl.lock";
    /// The layout-1 run summary in a dataset directory.
    pub const SUMMARY_JSON: &str = "_summary.json";

    /// Where a layout-1 depth snapshot (`market=M/symbol=S/date=D/T.parquet`, relative to the
    /// depth directory) goes in layout 2 (`market=M/date=D/S-T.parquet`); `None` for any
    /// other path.
    pub fn depth_file_v2(rel: &Path) -> Option<PathBuf> {
        let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
        let [m, s, d, f] = parts.as_slice() else {
            return None;
        };
        let symbol = super::hive_value(s, super::SYMBOL)?;
        if super::hive_value(m, super::MARKET).is_none()
            || super::hive_value(d, super::DATE).is_none()
            || !f.ends_with(".parquet")
        {
            return None;
        }
        Some(PathBuf::from(m).join(d).join(format!("{symbol}-{f}")))
    }

    /// Whether `name` is one of layout 1's report, resume, manifest or lock files in a klines
    /// directory.
    pub fn is_state_file(name: &str) -> bool {
        name.starts_with("_summary.")
            || name.starts_with("_resume.")
            || name == "_archive_manifest.json"
            || (name.starts_with(".kline-etl.") && name.rsplit('.').next() == Some("lock"))
    }

    /// Where a layout-1 state file of the klines root `root` goes in layout 2 (`None` for the
    /// lock files, which are removed).
    pub fn state_file_v2(root: &Path, name: &str) -> Option<PathBuf> {
        let dir = state_dir(root);
        if name == "_archive_manifest.json" {
            return Some(dir.join(ARCHIVE_MANIFEST_FILE));
        }
        if name == "_resume.json" {
            return Some(dir.join(RESUME_FILE));
        }
        if let Some(rest) = name.strip_prefix("_resume.") {
            return Some(dir.join(format!("resume.{rest}")));
        }
        if name == SUMMARY_JSON {
            return Some(dir.join(V2_SUMMARY_JSON));
        }
        if let Some(rest) = name.strip_prefix("_summary.") {
            let rest = rest
                .strip_suffix("parquet")
                .map_or_else(|| rest.to_owned(), |r| format!("{r}{SUMMARY_TABLE_EXT}"));
            return Some(dir.join(format!("{SUMMARY_STEM}.{rest}")));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spelled_once_here() {
        let root = Path::new("/out");
        assert_eq!(
            lock_file(root, None),
            Path::new("/out/klines/_kline_etl/.lock")
        );
        let shard: Shard = "2/4".parse().unwrap();
        assert_eq!(
            resume_file(root, Some(shard)),
            Path::new("/out/klines/_kline_etl/resume.shard-2-of-4.json")
        );
        assert_eq!(resume_shard("resume.shard-2-of-4.json"), Some(shard));
        assert_eq!(resume_shard("resume.json"), None);
        assert_eq!(
            summary_files(root, None).1,
            Path::new("/out/klines/_kline_etl/summary.parq")
        );
        assert_eq!(hive_value("market=spot", MARKET), Some("spot"));
        assert_eq!(hive_value("marketing=x", MARKET), None);
    }

    #[test]
    fn delta_files_are_the_partition_file_with_a_content_tag() {
        let p = Path::new("klines/market=spot/symbol=BTCUSDT/year=2024/1m-2024-01.parquet");
        let v = versioned_file(p, "0123456789abcdef");
        assert_eq!(
            v,
            Path::new(
                "klines/market=spot/symbol=BTCUSDT/year=2024/1m-2024-01.0123456789abcdef.parquet"
            )
        );
        let name = v.file_name().unwrap().to_str().unwrap();
        assert_eq!(unversioned(name), "1m-2024-01.parquet");
        assert_eq!(partition_file_interval(name), Some(Interval::M1));
        for ours in [
            name,
            "1m-2024-01.parquet",
            "funding_rate-2024.0123456789abcdef.parquet",
            "20261125T120000Z.parquet",
            "BTCUSDT-20261125T120000Z.0123456789abcdef.parquet",
        ] {
            assert!(is_dataset_file(ours), "{ours}");
        }
        for foreign in [
            "part-00000-1b2c3d.c000.snappy.parquet",
            "x.parquet",
            "1m-2024-01.csv",
        ] {
            assert!(!is_dataset_file(foreign), "{foreign}");
        }
        // Not a tag: left as it is.
        for other in [
            "1m-2024-01.parquet",
            "a.b.parquet",
            "20261125T120000Z.parquet",
            "x.0123456789abcdeg.parquet",
        ] {
            assert_eq!(unversioned(other), other);
        }
    }

    #[test]
    fn partition_files_name_their_interval() {
        let s: Symbol = "BTCUSDT".parse().unwrap();
        let p = partition_file(Market::Spot, &s, Interval::M1, 2024, "2024-01");
        assert_eq!(
            p,
            Path::new("klines/market=spot/symbol=BTCUSDT/year=2024/1m-2024-01.parquet")
        );
        assert_eq!(
            partition_file_interval("1m-2024-01.parquet"),
            Some(Interval::M1)
        );
        assert_eq!(
            partition_file_interval("1M-2024.parquet"),
            Some(Interval::Mo1)
        );
        assert_eq!(
            partition_file_interval("1d-2024.parquet"),
            Some(Interval::D1)
        );
        for bad in [
            ".1m-2024.parquet.tmp-1-1",
            "1m.parquet",
            "part.parquet",
            "1x-2024.parquet",
            "1m-2024.csv",
            "1m-x.parquet",
        ] {
            assert_eq!(partition_file_interval(bad), None, "{bad}");
        }
    }

    #[test]
    fn layout_one_state_files_move_into_the_state_dir() {
        let root = Path::new("/out");
        let d = Path::new("/out/klines/_kline_etl");
        for (old, new) in [
            ("_summary.json", "summary.json"),
            ("_summary.parquet", "summary.parq"),
            ("_summary.shard-1-of-2.json", "summary.shard-1-of-2.json"),
            ("_summary.shard-1-of-2.parquet", "summary.shard-1-of-2.parq"),
            ("_resume.json", "resume.json"),
            ("_resume.shard-1-of-2.json", "resume.shard-1-of-2.json"),
            ("_archive_manifest.json", "archive_manifest.json"),
        ] {
            assert!(v1::is_state_file(old), "{old}");
            assert_eq!(v1::state_file_v2(root, old), Some(d.join(new)), "{old}");
        }
        assert!(v1::is_state_file(".kline-etl.lock"));
        assert!(v1::is_state_file(".kline-etl.shard-1-of-2.lock"));
        assert_eq!(v1::state_file_v2(root, ".kline-etl.lock"), None);
        assert!(!v1::is_state_file("market=spot"));
        assert_eq!(
            v1::depth_file_v2(Path::new(
                "market=spot/symbol=BTCUSDT/date=2024-01-05/20240105T120000Z.parquet"
            )),
            Some(PathBuf::from(
                "market=spot/date=2024-01-05/BTCUSDT-20240105T120000Z.parquet"
            ))
        );
        assert_eq!(
            v1::depth_file_v2(Path::new("market=spot/date=2024-01-05/x.parquet")),
            None
        );
    }
}

//! Datasets in layout version 1 (kline-etl before layout 2): how to recognise one, so that no
//! run ever mixes the two layouts, and where its files are, for `kline-etl migrate`. The names
//! of layout 1 are spelled in [`crate::layout::v1`]; this module does the directory walking.
//!
//! A klines directory is in layout 1 when it holds one of layout 1's report files
//! (`_summary.json`, `_summary.parquet`, `_resume.json`, `_archive_manifest.json`, their
//! per-shard forms) or a series directory `market=…/symbol=…/interval=…`. A snapshot dataset
//! is in layout 1 when it holds `_summary.json` at its top; the funding-rate dataset when it
//! holds `_summary.json` at its top or a `part.parquet` file.

use std::path::{Path, PathBuf};

use super::LoadError;
use super::partition::{Granularity, TaskKey};
use crate::interval::Interval;
use crate::layout::{self, hive_value, v1};
use crate::market::Market;
use crate::symbol::Symbol;

/// One layout-1 partition file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldPartition {
    /// Its series.
    pub task: TaskKey,
    /// The granularity its directory names (`year=`, `month=`, `date=`, none).
    pub granularity: Granularity,
    /// The file.
    pub path: PathBuf,
}

fn names(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = fs_err::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The report, resume, manifest and lock files of layout 1 in a klines directory.
pub fn old_state_files(klines: &Path) -> Vec<PathBuf> {
    names(klines)
        .into_iter()
        .filter(|(n, p)| p.is_file() && v1::is_state_file(n))
        .map(|(_, p)| p)
        .collect()
}

/// The series directories of layout 1 (`market=…/symbol=…/interval=…`) in a klines directory.
pub fn old_series_dirs(klines: &Path) -> Vec<(TaskKey, PathBuf)> {
    let mut out = Vec::new();
    for (m, m_path) in names(klines) {
        let Some(market) = hive_value(&m, layout::MARKET).and_then(|v| v.parse::<Market>().ok())
        else {
            continue;
        };
        for (s, s_path) in names(&m_path) {
            let Some(symbol) =
                hive_value(&s, layout::SYMBOL).and_then(|v| v.parse::<Symbol>().ok())
            else {
                continue;
            };
            for (i, i_path) in names(&s_path) {
                let Some(interval) =
                    hive_value(&i, layout::INTERVAL).and_then(|v| v.parse::<Interval>().ok())
                else {
                    continue;
                };
                if i_path.is_dir() {
                    let task = TaskKey {
                        market,
                        symbol: symbol.clone(),
                        interval,
                    };
                    out.push((task, i_path));
                }
            }
        }
    }
    out
}

/// Whether the klines directory `klines` is in layout 1.
pub fn is_old_klines(klines: &Path) -> bool {
    // Lock files alone (dot-prefixed) are no dataset: migrate itself leaves none behind.
    old_state_files(klines).iter().any(|p| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
    }) || !old_series_dirs(klines).is_empty()
}

/// Whether the snapshot dataset directory `dir` is in layout 1: its report at the top, or
/// (depth) a `market=…/symbol=…` directory.
pub fn is_old_snapshot(dir: &Path) -> bool {
    dir.join(v1::SUMMARY_JSON).is_file() || !old_depth_files(dir).is_empty()
}

/// The layout-1 depth snapshot files of a dataset directory
/// (`market=…/symbol=…/date=…/<time>.parquet`), with where each goes in layout 2.
pub fn old_depth_files(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for (m, m_path) in names(dir) {
        if hive_value(&m, layout::MARKET).is_none() {
            continue;
        }
        for (s, s_path) in names(&m_path) {
            if hive_value(&s, layout::SYMBOL).is_none() {
                continue;
            }
            for (d, d_path) in names(&s_path) {
                for (f, f_path) in names(&d_path) {
                    let rel = PathBuf::from(&m).join(&s).join(&d).join(&f);
                    if let Some(to) = v1::depth_file_v2(&rel) {
                        out.push((f_path, dir.join(to)));
                    }
                }
            }
        }
    }
    out
}

/// Refuse to work on a layout-1 klines dataset: [`LoadError::OldLayout`] naming the output root.
pub fn refuse_old_klines(root: &Path) -> Result<(), LoadError> {
    let klines = layout::klines_dir(root);
    if is_old_klines(&klines) {
        return Err(LoadError::OldLayout {
            path: klines,
            root: root.to_owned(),
        });
    }
    Ok(())
}

/// Refuse to write a layout-1 snapshot dataset: [`LoadError::OldLayout`] naming the output root.
pub fn refuse_old_snapshot(root: &Path, dataset: crate::config::Dataset) -> Result<(), LoadError> {
    let dir = layout::dataset_dir(root, dataset);
    if is_old_snapshot(&dir) {
        return Err(LoadError::OldLayout {
            path: dir,
            root: root.to_owned(),
        });
    }
    Ok(())
}

/// Whether the funding-rate dataset directory `dir` is in layout 1 (its report at the top, or
/// a `part.parquet` partition file anywhere in it).
pub fn is_old_funding(dir: &Path) -> bool {
    dir.join(v1::SUMMARY_JSON).is_file() || !old_funding_files(dir).is_empty()
}

/// The layout-1 partition files (`part.parquet`) of a funding-rate dataset directory, with
/// their market and symbol from the path.
pub fn old_funding_files(dir: &Path) -> Vec<(Market, String, PathBuf)> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for (name, p) in names(d) {
            if layout::is_hidden(&name) {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else if name == v1::PARTITION_FILE {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for (m, m_path) in names(dir) {
        let Some(market) = hive_value(&m, layout::MARKET).and_then(|v| v.parse::<Market>().ok())
        else {
            continue;
        };
        for (s, s_path) in names(&m_path) {
            let Some(symbol) = hive_value(&s, layout::SYMBOL) else {
                continue;
            };
            let mut files = Vec::new();
            walk(&s_path, &mut files);
            out.extend(files.into_iter().map(|f| (market, symbol.to_owned(), f)));
        }
    }
    out
}

/// Refuse to work on a layout-1 funding-rate dataset: [`LoadError::OldLayout`] naming the
/// output root.
pub fn refuse_old_funding(root: &Path) -> Result<(), LoadError> {
    let dir = layout::dataset_dir(root, crate::config::Dataset::FundingRate);
    if is_old_funding(&dir) {
        return Err(LoadError::OldLayout {
            path: dir,
            root: root.to_owned(),
        });
    }
    Ok(())
}

/// The partition files of layout 1 in a klines directory, series by series.
pub fn old_partitions(klines: &Path) -> Vec<OldPartition> {
    let mut out = Vec::new();
    for (task, dir) in old_series_dirs(klines) {
        for (name, path) in names(&dir) {
            if name == v1::PARTITION_FILE && path.is_file() {
                out.push(OldPartition {
                    task: task.clone(),
                    granularity: Granularity::Year,
                    path,
                });
                continue;
            }
            let granularity = if hive_value(&name, layout::YEAR).is_some() {
                Granularity::Year
            } else if hive_value(&name, layout::MONTH).is_some() {
                Granularity::Month
            } else if hive_value(&name, layout::DATE).is_some() {
                Granularity::Day
            } else {
                continue;
            };
            let file = path.join(v1::PARTITION_FILE);
            if file.is_file() {
                out.push(OldPartition {
                    task: task.clone(),
                    granularity,
                    path: file,
                });
            }
        }
    }
    out
}

/// Remove the empty directories below `dir` (never a non-empty one); the removed ones.
pub fn remove_empty_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for (_, p) in names(dir) {
        if p.is_dir() {
            removed.extend(remove_empty_dirs(&p));
            if names(&p).is_empty() && fs_err::remove_dir(&p).is_ok() {
                removed.push(p);
            }
        }
    }
    removed
}

/// Remove the now empty directories of layout 1's series trees (never a non-empty one).
pub fn remove_empty_series_dirs(klines: &Path) -> Vec<PathBuf> {
    fn prune(dir: &Path, removed: &mut Vec<PathBuf>) -> bool {
        for (_, p) in names(dir) {
            if p.is_dir() {
                prune(&p, removed);
            }
        }
        let empty = names(dir).is_empty();
        if empty && fs_err::remove_dir(dir).is_ok() {
            removed.push(dir.to_owned());
        }
        empty
    }
    let mut removed = Vec::new();
    for (_, dir) in old_series_dirs(klines) {
        prune(&dir, &mut removed);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_layout_one() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("klines");
        fs_err::create_dir_all(&k).unwrap();
        assert!(!is_old_klines(&k), "an empty directory is not layout 1");
        fs_err::write(k.join(v1::LOCK_FILE), b"").unwrap();
        assert!(!is_old_klines(&k), "a lock file alone is no dataset");
        let s = k.join("market=spot/symbol=BTCUSDT/interval=1d");
        fs_err::create_dir_all(&s).unwrap();
        fs_err::write(s.join("part.parquet"), b"x").unwrap();
        let y = k.join("market=spot/symbol=BTCUSDT/interval=1h/year=2024");
        fs_err::create_dir_all(&y).unwrap();
        fs_err::write(y.join("part.parquet"), b"x").unwrap();
        assert!(is_old_klines(&k));
        let parts = old_partitions(&k);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].task.interval, Interval::D1);
        assert_eq!(parts[1].granularity, Granularity::Year);
        for p in &parts {
            fs_err::remove_file(&p.path).unwrap();
        }
        assert_eq!(remove_empty_series_dirs(&k).len(), 3);
        assert!(!is_old_klines(&k));
        assert!(k.join("market=spot/symbol=BTCUSDT").is_dir());
    }
}

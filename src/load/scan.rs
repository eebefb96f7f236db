//! What is on disk: the kline series (market × symbol × interval) under an output root and
//! their partition files, found by walking the hive layout
//! (`market=…/symbol=…/year=…/<interval>-<period>.parquet`, see [`crate::layout`]). Used by
//! `summary`, `status`, `chart` and incremental runs; the data is the state, so nothing here
//! trusts a manifest.
//!
//! In a Delta table (`output.format: delta`) only the files its log holds count: earlier
//! versions and files of a run that died before committing are ignored.
//!
//! Directories that do not parse as `market=…`, `symbol=…`, `year=…` are skipped with a
//! warning; entries starting with `.` (temporary files) or `_` (`_kline_etl/`) are ignored, as
//! every hive reader does. A dataset still in layout 1 is an error naming `kline-etl migrate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::LoadError;
use super::partition::TaskKey;
use crate::interval::Interval;
use crate::layout::{self, hive_value};
use crate::market::Market;
use crate::symbol::Symbol;

/// One series on disk and its partition files, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesFiles {
    /// The series.
    pub task: TaskKey,
    /// Its partition files (`year=2024/1h-2024.parquet`, …), sorted by path.
    pub files: Vec<PathBuf>,
}

fn entries(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for e in fs_err::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !crate::layout::is_hidden(&name) {
            out.push((name, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// A partition file name's entry, refused when it is not a regular file: a directory (or FIFO,
/// device) named like a partition file is not an empty stretch of history but an output error.
fn regular(path: PathBuf) -> std::io::Result<PathBuf> {
    if fs_err::metadata(&path)?.is_file() {
        Ok(path)
    } else {
        Err(std::io::Error::other(format!(
            "`{}` is not a regular file but sits where a partition file belongs; move it away",
            path.display()
        )))
    }
}

/// The partition files of one series, sorted by path (so by time: `year=` directories, then
/// the period in the name); none when the series is not stored.
pub fn series_files(root: &Path, task: &TaskKey) -> Result<Vec<PathBuf>, LoadError> {
    let dir = root.join(task.symbol_dir());
    let live = super::delta::live_files(&crate::layout::klines_dir(root))?;
    let mut out = Vec::new();
    if dir.is_dir() {
        for (y_name, y_path) in entries(&dir)? {
            if hive_value(&y_name, layout::YEAR).is_none() || !y_path.is_dir() {
                continue;
            }
            for (name, path) in entries(&y_path)? {
                if layout::partition_file_interval(&name) == Some(task.interval)
                    && live.as_ref().is_none_or(|l| l.contains(&path))
                {
                    out.push(regular(path)?);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The first and the last file of each name shape (a year, month or day file; a series holds
/// more than one shape only when `output.partition` changed): the files whose footers bound a
/// series' stored times. `files` are sorted by path.
pub fn ends_per_shape(files: &[PathBuf]) -> Vec<&PathBuf> {
    let mut ends: std::collections::BTreeMap<usize, (&PathBuf, &PathBuf)> =
        std::collections::BTreeMap::new();
    for f in files {
        let shape = f.file_name().map_or(0, std::ffi::OsStr::len);
        ends.entry(shape).or_insert((f, f)).1 = f;
    }
    let mut out: Vec<&PathBuf> = ends.values().flat_map(|&(a, b)| [a, b]).collect();
    out.sort();
    out.dedup();
    out
}

/// Every kline series under `root` (the pipeline's `output.path`), ordered by market, symbol
/// and interval spelling. A missing root or `klines` directory is an empty dataset, not an
/// error; a layout-1 dataset is [`LoadError::OldLayout`].
pub fn scan(root: &Path) -> Result<Vec<SeriesFiles>, LoadError> {
    let klines = crate::layout::klines_dir(root);
    if !klines.is_dir() {
        return Ok(Vec::new());
    }
    super::legacy::refuse_old_klines(root)?;
    let live = super::delta::live_files(&klines)?;
    let mut out = Vec::new();
    for (m_name, m_path) in entries(&klines)? {
        let Some(market) =
            hive_value(&m_name, layout::MARKET).and_then(|v| v.parse::<Market>().ok())
        else {
            skip(&m_path);
            continue;
        };
        if !m_path.is_dir() {
            continue;
        }
        for (s_name, s_path) in entries(&m_path)? {
            let Some(symbol) =
                hive_value(&s_name, layout::SYMBOL).and_then(|v| v.parse::<Symbol>().ok())
            else {
                skip(&s_path);
                continue;
            };
            let mut series: BTreeMap<&'static str, (Interval, Vec<PathBuf>)> = BTreeMap::new();
            for (y_name, y_path) in entries(&s_path)? {
                if hive_value(&y_name, layout::YEAR).is_none() || !y_path.is_dir() {
                    skip(&y_path);
                    continue;
                }
                for (name, path) in entries(&y_path)? {
                    if let Some(iv) = layout::partition_file_interval(&name)
                        && live.as_ref().is_none_or(|l| l.contains(&path))
                    {
                        series
                            .entry(iv.as_str())
                            .or_insert((iv, Vec::new()))
                            .1
                            .push(regular(path)?);
                    }
                }
            }
            for (interval, mut files) in series.into_values() {
                files.sort();
                out.push(SeriesFiles {
                    task: TaskKey {
                        market,
                        symbol: symbol.clone(),
                        interval,
                    },
                    files,
                });
            }
        }
    }
    Ok(out)
}

fn skip(path: &Path) {
    tracing::warn!(path = %path.display(), "skipping a directory that is not part of the kline-etl layout");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_series_and_ignores_temporaries_and_strays() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let s = root.join("klines/market=spot/symbol=BTCUSDT");
        for y in ["2023", "2024"] {
            let d = s.join(format!("year={y}"));
            fs_err::create_dir_all(&d).unwrap();
            fs_err::write(d.join(format!("1h-{y}.parquet")), b"x").unwrap();
            fs_err::write(d.join(format!(".1h-{y}.parquet.tmp-1-1")), b"x").unwrap();
            fs_err::write(d.join(format!("1d-{y}.parquet")), b"x").unwrap();
        }
        fs_err::write(s.join("year=2024/notes.txt"), b"x").unwrap();
        fs_err::create_dir_all(root.join("klines/market=spot/symbol=bad..name")).unwrap();
        fs_err::create_dir_all(root.join("klines/notes")).unwrap();
        fs_err::create_dir_all(root.join("klines/_kline_etl")).unwrap();
        let found = scan(root).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].task.interval, Interval::D1);
        assert_eq!(found[1].task.interval, Interval::H1);
        assert_eq!(found[1].files.len(), 2);
        assert!(found[1].files[0].ends_with("year=2023/1h-2023.parquet"));
        assert_eq!(series_files(root, &found[1].task).unwrap(), found[1].files);
        assert!(scan(&root.join("missing")).unwrap().is_empty());
        // A layout-1 series directory makes the dataset one to migrate first.
        fs_err::create_dir_all(s.join("interval=1h")).unwrap();
        let e = scan(root).unwrap_err();
        assert!(e.to_string().contains("kline-etl migrate"), "{e}");
    }

    #[test]
    fn ends_per_shape_bound_the_series() {
        let f: Vec<PathBuf> = [
            "year=2023/1m-2023-11.parquet",
            "year=2023/1m-2023-12.parquet",
            "year=2024/1m-2024-01.parquet",
            "year=2024/1m-2024.parquet",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let ends = ends_per_shape(&f);
        assert_eq!(ends, [&f[0], &f[2], &f[3]]);
    }
}

//! What is on disk: the kline series (market × symbol × interval directories) under an output
//! root and their partition files, found by walking the hive layout. Used by `summary`,
//! `chart` and incremental runs; the data is the state, so nothing here trusts a manifest.
//!
//! Directories that do not parse as `market=…`, `symbol=…`, `interval=…` are skipped with a
//! warning; entries starting with `.` (temporary files) or `_` (`_summary.json`) are ignored,
//! as every hive reader does.

use std::path::{Path, PathBuf};

use super::partition::{FILE_NAME, TaskKey};
use crate::interval::Interval;
use crate::layout::{self, hive_value};
use crate::market::Market;
use crate::symbol::Symbol;

/// One series on disk and its partition files, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesFiles {
    /// The series.
    pub task: TaskKey,
    /// Its `part.parquet` files.
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

/// The partition files of one series, sorted by path (none when the series is not stored).
pub fn series_files(root: &Path, task: &TaskKey) -> std::io::Result<Vec<PathBuf>> {
    let dir = root.join(task.relative_dir());
    let mut out = Vec::new();
    if dir.is_dir() {
        collect_files(&dir, &mut out)?;
    }
    out.sort();
    Ok(out)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for (name, path) in entries(dir)? {
        if name == FILE_NAME {
            // A directory (or FIFO, device) named like a partition file is not an empty
            // stretch of history: it is an output error, reported as such.
            if !fs_err::metadata(&path)?.is_file() {
                return Err(std::io::Error::other(format!(
                    "`{}` is not a regular file but sits where a partition file belongs; move it away",
                    path.display()
                )));
            }
            out.push(path);
        } else if path.is_dir() {
            collect_files(&path, out)?;
        }
    }
    Ok(())
}

/// Every kline series under `root` (the pipeline's `output.path`). A missing root or
/// `klines` directory is an empty dataset, not an error.
pub fn scan(root: &Path) -> std::io::Result<Vec<SeriesFiles>> {
    let klines = crate::layout::klines_dir(root);
    if !klines.is_dir() {
        return Ok(Vec::new());
    }
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
            for (i_name, i_path) in entries(&s_path)? {
                let Some(interval) =
                    hive_value(&i_name, layout::INTERVAL).and_then(|v| v.parse::<Interval>().ok())
                else {
                    skip(&i_path);
                    continue;
                };
                let mut files = Vec::new();
                collect_files(&i_path, &mut files)?;
                if !files.is_empty() {
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
        let s = root.join("klines/market=spot/symbol=BTCUSDT/interval=1h");
        for y in ["year=2023", "year=2024"] {
            fs_err::create_dir_all(s.join(y)).unwrap();
            fs_err::write(s.join(y).join("part.parquet"), b"x").unwrap();
            fs_err::write(s.join(y).join(".part.parquet.tmp-1-1"), b"x").unwrap();
        }
        let d = root.join("klines/market=spot/symbol=BTCUSDT/interval=1d");
        fs_err::create_dir_all(&d).unwrap();
        fs_err::write(d.join("part.parquet"), b"x").unwrap();
        fs_err::create_dir_all(root.join("klines/market=spot/symbol=bad..name")).unwrap();
        fs_err::create_dir_all(root.join("klines/notes")).unwrap();
        let found = scan(root).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].task.interval, Interval::D1);
        assert_eq!(found[1].task.interval, Interval::H1);
        assert_eq!(found[1].files.len(), 2);
        assert!(found[1].files[0].ends_with("year=2023/part.parquet"));
        assert!(scan(&root.join("missing")).unwrap().is_empty());
    }
}

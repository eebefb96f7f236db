//! What one series holds, read from its partition files' footers: the first and last stored
//! open time (where an incremental run's head and tail start) and the last stored open time
//! inside a window (where an unfinished window resumes). The data is the state: nothing here
//! reads a manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::partition::{FILE_NAME, TaskKey};
use super::{LoadError, parquet};

/// The first and last stored open times (ms) of a series, or `None` when nothing is stored.
///
/// Partition directories of one kind (`year=…`, `month=…`, `day=…`) sort by time as text, so
/// only the oldest and the newest file of each kind found (and an unpartitioned
/// `part.parquet`) have their footers read: a nightly no-op over many series stays cheap.
pub fn series_bounds(root: &Path, task: &TaskKey) -> Result<Option<(i64, i64)>, LoadError> {
    let dir = root.join(task.relative_dir());
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut kinds: BTreeMap<String, (String, String)> = BTreeMap::new();
    for e in fs_err::read_dir(&dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if crate::layout::is_hidden(&name) || !e.path().is_dir() {
            continue;
        }
        if let Some((kind, _)) = name.split_once('=') {
            let slot = kinds
                .entry(kind.to_owned())
                .or_insert_with(|| (name.clone(), name.clone()));
            if name < slot.0 {
                slot.0.clone_from(&name);
            }
            if name > slot.1 {
                slot.1 = name;
            }
        }
    }
    let mut candidates: Vec<PathBuf> = vec![dir.join(FILE_NAME)];
    for (oldest, newest) in kinds.values() {
        candidates.push(dir.join(oldest).join(FILE_NAME));
        candidates.push(dir.join(newest).join(FILE_NAME));
    }
    candidates.sort();
    candidates.dedup();
    let mut bounds: Option<(i64, i64)> = None;
    // Anything at a partition path is read: a non-file there is refused, not skipped.
    for file in candidates
        .iter()
        .filter(|f| fs_err::symlink_metadata(f).is_ok())
    {
        if let Some((lo, hi)) = parquet::open_time_bounds(file)? {
            bounds = Some(bounds.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
    }
    Ok(bounds)
}

/// The last stored open time of a series inside `[start, end)`, or `None`.
pub fn last_stored_in(
    root: &Path,
    task: &TaskKey,
    start: i64,
    end: i64,
) -> Result<Option<i64>, LoadError> {
    let mut best: Option<i64> = None;
    for file in super::scan::series_files(root, task)? {
        let Some((lo, hi)) = parquet::open_time_bounds(&file)? else {
            continue;
        };
        if lo >= end || hi < start || best.is_some_and(|b| hi <= b) {
            continue;
        }
        let found = if hi < end {
            Some(hi)
        } else {
            // The file straddles the window's end: read its open times.
            let (rows, _) = parquet::read_file(&file)?;
            rows.open_time
                .iter()
                .copied()
                .filter(|t| (start..end).contains(t))
                .max()
        };
        if let Some(t) = found.filter(|t| *t >= start) {
            best = Some(best.map_or(t, |b| b.max(t)));
        }
    }
    Ok(best)
}

//! What one series holds, read from its partition files' footers: the first and last stored
//! open time (where an incremental run's head and tail start) and the last stored open time
//! inside a window (where an unfinished window resumes). The data is the state: nothing here
//! reads a manifest.

use std::path::Path;

use super::partition::TaskKey;
use super::{LoadError, parquet};

/// The first and last stored open times (ms) of a series, or `None` when nothing is stored.
///
/// A series' files sort by time as paths (`year=…/<interval>-<period>.parquet`), so only the
/// first and the last file of each name shape have their footers read
/// ([`super::scan::ends_per_shape`]): a nightly no-op over many series stays cheap.
pub fn series_bounds(root: &Path, task: &TaskKey) -> Result<Option<(i64, i64)>, LoadError> {
    let files = super::scan::series_files(root, task)?;
    let mut bounds: Option<(i64, i64)> = None;
    for file in super::scan::ends_per_shape(&files) {
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

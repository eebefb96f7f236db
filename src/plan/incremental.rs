//! Incremental planning: which windows of a series still need fetching, given what is stored
//! and what earlier runs left unfinished. The rules are plain functions on half-open
//! [`Window`]s; [`incremental_tasks`] and [`repair_tasks`] read the state on disk (partition
//! footers, the resume file, the last summary) and turn the windows into tasks. `run`,
//! `run --dry-run` and `plan` all call them: there is one planner.
//!
//! The rules:
//! - The data on disk is the state. A series with stored candles from `first` to `last` needs
//!   the requested range minus `[first, last)`: the missing head (an earlier start than the
//!   data) and the tail from `last` on (the last stored candle is fetched again and re-checked).
//! - Windows a previous run planned but did not finish (it crashed, was interrupted, was
//!   banned, or a window's retries ran out) are kept in the resume file
//!   ([`crate::load::resume`]) and fetched again from the last candle stored inside them.
//! - `--full-refresh` fetches the whole requested range.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::extract::KlineTask;
use crate::load::resume::Pending;
use crate::load::{LoadError, TaskKey, state};
use crate::symbol::Symbol;
use crate::time::parse_rfc3339_ms;
use crate::window::{Window, coalesce, subtract};

/// Why the state on disk could not be turned into tasks.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A partition file or the resume file could not be read.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// `repair` needs the last run's summary, and there is none.
    #[error(
        "`repair` works from the last run's summary `{path}`, which cannot be read; run the pipeline first"
    )]
    NoSummary {
        /// Where it was looked for.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// The summary file is not one kline-etl wrote.
    #[error("`{path}` is not a kline-etl summary ({reason}); run the pipeline to rewrite it")]
    NotASummary {
        /// The file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
}

impl PlanError {
    /// The exit code: an unreadable partition is an output problem, a missing summary a
    /// usage one (run the pipeline first).
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        match self {
            PlanError::Load(e) => e.exit_code(),
            PlanError::NoSummary { .. } | PlanError::NotASummary { .. } => {
                crate::exit::ExitCode::Usage
            }
        }
    }
}

/// The windows to fetch for one series.
///
/// - `requested`: the run's resolved range.
/// - `stored`: the first and last stored open times, if anything is stored.
/// - `pending`: unfinished windows of earlier runs, already moved to start at the last candle
///   stored inside them (see [`resume_point`]).
/// - `full_refresh`: ignore what is stored.
pub fn windows_to_fetch(
    requested: Window,
    stored: Option<(i64, i64)>,
    pending: &[Window],
    full_refresh: bool,
) -> Vec<Window> {
    let mut out = match stored {
        Some((first, last)) if !full_refresh => subtract(requested, &[(first, last)]),
        _ => vec![requested],
    };
    out.extend_from_slice(pending);
    coalesce(out)
}

/// Where an unfinished window resumes: at the last candle stored inside it (fetched again and
/// re-checked, like the tail of a series), or at its start when nothing inside it is stored.
pub fn resume_point(window: Window, last_stored_inside: Option<i64>) -> Window {
    match last_stored_inside {
        Some(t) if t >= window.0 && t < window.1 => (t, window.1),
        _ => window,
    }
}

/// The tasks of a run, and per series the stretches of earlier unfinished windows found
/// already stored (they are done, the window resumes after them).
pub type Planned = (Vec<KlineTask>, BTreeMap<TaskKey, Vec<Window>>);

/// Unfinished windows of `key` moved to start at the last candle stored inside each; the
/// stored stretches before those points go to `covered`.
fn resume_pending(
    root: &Path,
    key: &TaskKey,
    pending: &[Pending],
    covered: &mut BTreeMap<TaskKey, Vec<Window>>,
) -> Result<Vec<Window>, LoadError> {
    let mut resumed = Vec::new();
    for p in pending.iter().filter(|p| p.task() == *key) {
        let w = p.window();
        let last = state::last_stored_in(root, key, w.0, w.1)?;
        let r = if p.reason.refetch_whole() {
            w
        } else {
            resume_point(w, last)
        };
        if r.0 > w.0 {
            covered.entry(key.clone()).or_default().push((w.0, r.0));
        }
        resumed.push(r);
    }
    Ok(resumed)
}

fn task_of(key: &TaskKey, (start_ms, end_ms): Window) -> KlineTask {
    KlineTask {
        market: key.market,
        symbol: key.symbol.clone(),
        interval: key.interval,
        start_ms,
        end_ms,
    }
}

/// Tasks of an incremental run: per series, the requested range minus what is stored, plus
/// the unfinished windows of earlier runs from where they stopped. `requested` gives the
/// range per interval (a relative start is aligned to each interval's boundary:
/// [`crate::config::TimeRange::start_for`]).
pub fn incremental_tasks(
    root: &Path,
    series: &[TaskKey],
    pending: &[Pending],
    requested: &dyn Fn(crate::interval::Interval) -> Window,
    full_refresh: bool,
) -> Result<Planned, LoadError> {
    let mut tasks = Vec::new();
    let mut covered = BTreeMap::new();
    for key in series {
        let resumed = resume_pending(root, key, pending, &mut covered)?;
        let stored = if full_refresh {
            None
        } else {
            state::series_bounds(root, key)?
        };
        let requested = requested(key.interval);
        for w in windows_to_fetch(requested, stored, &resumed, full_refresh) {
            tasks.push(task_of(key, w));
        }
    }
    Ok((tasks, covered))
}

/// Tasks of `kline-etl repair`: the windows earlier runs left unfinished (failed fetches,
/// failed or stopped tasks, runs that were killed) and the gaps the last `_kline_etl/summary.json`
/// lists as failed fetches (with `exchange_gaps`, also the exchange's own gaps) of the
/// pipeline's series; never the range's head or tail.
pub fn repair_tasks(
    root: &Path,
    series: &[TaskKey],
    pending: &[Pending],
    exchange_gaps: bool,
) -> Result<Planned, PlanError> {
    let path = crate::layout::summary_json(root);
    let doc: RepairSummary = match fs_err::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| PlanError::NotASummary {
            path: path.clone(),
            reason: e.to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !pending.is_empty() => {
            RepairSummary { series: Vec::new() }
        }
        Err(source) => return Err(PlanError::NoSummary { path, source }),
    };
    let mut gaps: BTreeMap<TaskKey, Vec<Window>> = BTreeMap::new();
    for s in doc.series {
        let Ok(symbol) = s.symbol.parse::<Symbol>() else {
            continue;
        };
        let key = TaskKey {
            market: s.market,
            symbol,
            interval: s.interval,
        };
        gaps.entry(key).or_default().extend(
            s.gaps
                .iter()
                .filter(|g| g.cause.is_ours() || exchange_gaps)
                .filter_map(|g| Some((parse_rfc3339_ms(&g.start)?, parse_rfc3339_ms(&g.end)?))),
        );
    }
    let mut tasks = Vec::new();
    let mut covered = BTreeMap::new();
    for key in series {
        let mut windows = resume_pending(root, key, pending, &mut covered)?;
        windows.extend(gaps.remove(key).unwrap_or_default());
        for w in coalesce(windows) {
            tasks.push(task_of(key, w));
        }
    }
    Ok((tasks, covered))
}

/// The part of `_kline_etl/summary.json` that `repair` reads.
#[derive(serde::Deserialize)]
struct RepairSummary {
    series: Vec<RepairSeries>,
}

#[derive(serde::Deserialize)]
struct RepairSeries {
    market: crate::market::Market,
    symbol: String,
    interval: crate::interval::Interval,
    #[serde(default)]
    gaps: Vec<crate::summary::report::GapReport>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nothing_stored_fetches_the_range() {
        assert_eq!(windows_to_fetch((0, 100), None, &[], false), [(0, 100)]);
    }

    #[test]
    fn stored_data_leaves_the_tail_from_the_last_stored_candle() {
        assert_eq!(
            windows_to_fetch((0, 100), Some((0, 80)), &[], false),
            [(80, 100)]
        );
    }

    #[test]
    fn an_earlier_start_fetches_only_the_missing_head_and_the_tail() {
        assert_eq!(
            windows_to_fetch((0, 100), Some((40, 99)), &[], false),
            [(0, 40), (99, 100)]
        );
    }

    #[test]
    fn data_outside_the_range_does_not_shrink_it() {
        assert_eq!(
            windows_to_fetch((0, 100), Some((200, 300)), &[], false),
            [(0, 100)]
        );
        assert_eq!(
            windows_to_fetch((500, 600), Some((200, 300)), &[], false),
            [(500, 600)]
        );
    }

    #[test]
    fn full_refresh_and_pending_windows_add_up() {
        assert_eq!(
            windows_to_fetch((0, 100), Some((0, 80)), &[(10, 20)], true),
            [(0, 100)]
        );
        assert_eq!(
            windows_to_fetch((50, 100), Some((0, 80)), &[(10, 20)], false),
            [(10, 20), (80, 100)]
        );
    }

    #[test]
    fn resume_points() {
        assert_eq!(resume_point((10, 20), Some(15)), (15, 20));
        assert_eq!(resume_point((10, 20), None), (10, 20));
        assert_eq!(resume_point((10, 20), Some(25)), (10, 20));
    }

    proptest! {
        /// Stored ∪ to-fetch covers the requested range with no gap, and nothing stored is
        /// fetched again except the last stored candle.
        #[test]
        fn fetch_plus_stored_covers_the_range(
            a in 0i64..1000, len in 1i64..1000, first in 0i64..2000, slen in 0i64..1000,
        ) {
            let requested = (a, a + len);
            let stored = (first, first + slen);
            let fetch = windows_to_fetch(requested, Some(stored), &[], false);
            for t in requested.0..requested.1 {
                let in_fetch = fetch.iter().any(|(s, e)| (*s..*e).contains(&t));
                let in_stored = (stored.0..=stored.1).contains(&t);
                prop_assert!(in_fetch || in_stored, "{t} uncovered");
                if in_fetch && in_stored {
                    prop_assert_eq!(t, stored.1, "stored {} fetched again", t);
                }
            }
            for w in fetch.windows(2) {
                prop_assert!(w[0].1 < w[1].0, "windows overlap or touch: {:?}", w);
            }
        }

    }
}

//! The resume file, `<root>/klines/_kline_etl/resume.json`: windows that runs planned but did not finish.
//!
//! A run adds every window it is about to fetch (reason `in_flight`) before it starts, and at
//! the end rewrites the file with what is still unfinished: the rest of a task stopped by
//! Ctrl-C, SIGTERM or a ban (`stopped`), a task that failed (`task_failed`), windows whose
//! retries ran out (`fetch_failed`). A run killed outright leaves its `in_flight` windows, so
//! the next run knows which stretches may be incomplete and fetches them again from the last
//! candle stored inside each.
//!
//! The file only ever *adds* work; it is never trusted over the data. A missing or damaged file
//! costs nothing but a warning: the summary then shows any stretch a crash left unfinished as a
//! gap, which `kline-etl repair` (with `--exchange-gaps`) fetches again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LoadError;
use super::partition::TaskKey;
use crate::interval::Interval;
use crate::market::Market;
use crate::symbol::Symbol;
use crate::time::fmt_ms;
use crate::window::{Window, subtract};

/// The file name under `<root>/klines/`.
pub const FILE_NAME: &str = crate::layout::RESUME_FILE;
const VERSION: u32 = 1;

/// Why a window is unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A run was fetching it and did not report back (it was killed or crashed).
    InFlight,
    /// A run stopped before it (Ctrl-C, SIGTERM, a ban longer than `max_ban_wait_secs`).
    Stopped,
    /// Its retries ran out.
    FetchFailed,
    /// Its task failed (for example the exchange refused the symbol).
    TaskFailed,
    /// The exchange sent malformed rows there (still after retries); they were not written.
    InvalidRow,
    /// The exchange answered an empty page there although it has candles after it.
    EmptyReply,
}

impl Reason {
    /// Whether a rerun fetches the whole window again, rather than resuming from the last
    /// candle stored inside it: candles are missing in its middle, not only at its end.
    pub fn refetch_whole(self) -> bool {
        matches!(self, Reason::InvalidRow | Reason::EmptyReply)
    }
}

/// One unfinished window of one series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// `spot`, `usdm`, `coinm`.
    pub market: Market,
    /// The symbol.
    pub symbol: Symbol,
    /// The interval.
    pub interval: Interval,
    /// Window start (ms, inclusive).
    pub start_ms: i64,
    /// Window end (ms, exclusive).
    pub end_ms: i64,
    /// Window start, for people reading the file.
    pub start: String,
    /// Window end, for people reading the file.
    pub end: String,
    /// Why it is unfinished.
    pub reason: Reason,
}

impl Pending {
    /// A pending window of `task`.
    pub fn new(task: &TaskKey, w: Window, reason: Reason) -> Self {
        Pending {
            market: task.market,
            symbol: task.symbol.clone(),
            interval: task.interval,
            start_ms: w.0,
            end_ms: w.1,
            start: fmt_ms(w.0),
            end: fmt_ms(w.1),
            reason,
        }
    }

    /// The series it belongs to.
    pub fn task(&self) -> TaskKey {
        TaskKey {
            market: self.market,
            symbol: self.symbol.clone(),
            interval: self.interval,
        }
    }

    /// The window.
    pub fn window(&self) -> Window {
        (self.start_ms, self.end_ms)
    }
}

/// The file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeFile {
    /// Format version.
    pub version: u32,
    /// When it was last written.
    pub updated_at: String,
    /// The unfinished windows.
    pub pending: Vec<Pending>,
}

/// Where the resume file of an output root lives (`_kline_etl/resume.json`, or one per shard:
/// `_kline_etl/resume.shard-2-of-4.json`, so sharded runs never write each other's).
pub fn path(root: &Path, shard: Option<crate::shard::Shard>) -> PathBuf {
    crate::layout::resume_file(root, shard)
}

/// Every resume file under `root` (unsharded and per shard), read together.
pub fn read_all(root: &Path) -> Vec<Pending> {
    let mut out = read(root, None);
    if let Ok(entries) = fs_err::read_dir(crate::layout::state_dir(root)) {
        let mut shards: Vec<Option<crate::shard::Shard>> = entries
            .flatten()
            .filter_map(|e| crate::layout::resume_shard(&e.file_name().to_string_lossy()))
            .map(Some)
            .collect();
        shards.sort();
        for s in shards {
            out.extend(read(root, s));
        }
    }
    out
}

/// Read a resume file; a missing file is empty, a damaged one is reported and treated as
/// empty (it only ever adds work).
pub fn read(root: &Path, shard: Option<crate::shard::Shard>) -> Vec<Pending> {
    let p = path(root, shard);
    let text = match fs_err::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(
                "cannot read the resume file: {e}; unfinished windows of earlier runs are not retried (`kline-etl repair --exchange-gaps` refetches every gap)"
            );
            return Vec::new();
        }
    };
    match serde_json::from_str::<ResumeFile>(&text) {
        Ok(f) if f.version <= VERSION => f.pending,
        Ok(f) => {
            tracing::warn!(path = %p.display(), version = f.version, "the resume file was written by a newer kline-etl; ignoring it");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!(path = %p.display(), "the resume file is damaged ({e}); ignoring it (`kline-etl repair --exchange-gaps` refetches every gap)");
            Vec::new()
        }
    }
}

/// The pending windows of `series` that lie outside `range` (an earlier run with another
/// range or `--from`/`--to` left them): a run still fetches them, and says so.
pub fn outside_range<'a>(
    pending: &'a [Pending],
    series: &'a [TaskKey],
    range: Window,
) -> impl Iterator<Item = &'a Pending> {
    pending.iter().filter(move |p| {
        (p.end_ms <= range.0 || p.start_ms >= range.1) && series.contains(&p.task())
    })
}

/// Log [`outside_range`]'s windows, one line each.
pub fn log_outside_range(pending: &[Pending], series: &[TaskKey], range: Window) {
    for p in outside_range(pending, series, range) {
        tracing::warn!(
            market = %p.market,
            symbol = %p.symbol,
            interval = %p.interval,
            start = %p.start,
            end = %p.end,
            reason = ?p.reason,
            "an earlier run left this window unfinished outside the pipeline's range; fetching it too"
        );
    }
}

/// Replace the resume file atomically (removing it when nothing is pending).
pub fn write(
    root: &Path,
    shard: Option<crate::shard::Shard>,
    pending: &[Pending],
) -> Result<(), LoadError> {
    let p = path(root, shard);
    if pending.is_empty() {
        return match fs_err::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        };
    }
    let mut sorted = pending.to_vec();
    sorted.sort_by(|a, b| {
        (a.market, &a.symbol, a.interval, a.start_ms, a.reason)
            .cmp(&(b.market, &b.symbol, b.interval, b.start_ms, b.reason))
    });
    sorted.dedup();
    let file = ResumeFile {
        version: VERSION,
        updated_at: fmt_ms(chrono::Utc::now().timestamp_millis()),
        pending: sorted,
    };
    super::atomic::write_json(&p, &file)
}

/// What becomes of a window a run found empty inside the exchange's history, still after its
/// retries (`empty_reply`), given the windows pending before the run (`before`).
///
/// The first time, the emptiness is *suspect*: the window is recorded (`empty_reply`) and the
/// next normal run fetches it again, once. When that later run gets the same emptiness
/// (the part of `w` inside a window `before` already holds as `empty_reply` for the series),
/// the gap is *confirmed*: the exchange's own (an outage, `exchange_none`), no longer pending,
/// and only `kline-etl repair --exchange-gaps` asks for it again. So a real outage costs one
/// extra fetch and is never refetched forever, and a transient empty reply is refetched.
///
/// Returns the parts of `w` that stay suspect and the parts now confirmed.
pub fn settle_empty_reply(
    before: &[Pending],
    task: &TaskKey,
    w: Window,
) -> (Vec<Window>, Vec<Window>) {
    let seen: Vec<Window> = before
        .iter()
        .filter(|p| p.reason == Reason::EmptyReply && p.task() == *task)
        .map(|p| (p.start_ms.max(w.0), p.end_ms.min(w.1)))
        .filter(|(s, e)| s < e)
        .collect();
    let confirmed = crate::window::coalesce(seen);
    (subtract(w, &confirmed), confirmed)
}

/// What is still pending after a run: every earlier window minus what the run finished, plus
/// what the run left unfinished. `done` holds, per series, the windows fetched completely.
pub fn carry_over(
    before: &[Pending],
    done: &BTreeMap<TaskKey, Vec<Window>>,
    unfinished: Vec<Pending>,
) -> Vec<Pending> {
    let mut out = Vec::new();
    for p in before {
        let task = p.task();
        let finished = done.get(&task).map_or(&[][..], Vec::as_slice);
        for w in subtract(p.window(), finished) {
            out.push(Pending::new(&task, w, p.reason));
        }
    }
    out.extend(unfinished);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sym: &str) -> TaskKey {
        TaskKey {
            market: Market::Spot,
            symbol: sym.parse().unwrap(),
            interval: Interval::H1,
        }
    }

    #[test]
    fn windows_outside_the_range_are_found() {
        let p = vec![
            Pending::new(&key("BTCUSDT"), (0, 100), Reason::FetchFailed),
            Pending::new(&key("BTCUSDT"), (500, 600), Reason::Stopped),
            Pending::new(&key("ETHUSDT"), (0, 100), Reason::FetchFailed),
        ];
        let series = [key("BTCUSDT")];
        let found: Vec<_> = outside_range(&p, &series, (100, 550)).collect();
        assert_eq!(found, [&p[0]]);
        assert!(Reason::InvalidRow.refetch_whole() && !Reason::InFlight.refetch_whole());
    }

    #[test]
    fn round_trips_and_an_empty_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path(), None).is_empty());
        let p = vec![Pending::new(
            &key("BTCUSDT"),
            (0, 3_600_000),
            Reason::InFlight,
        )];
        write(dir.path(), None, &p).unwrap();
        assert_eq!(read(dir.path(), None), p);
        let shard: crate::shard::Shard = "shard-2-of-3".parse().unwrap();
        write(dir.path(), Some(shard), &p).unwrap();
        assert_eq!(read_all(dir.path()).len(), 2);
        write(dir.path(), None, &[]).unwrap();
        assert!(!path(dir.path(), None).exists());
    }

    #[test]
    fn a_damaged_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path(), None);
        fs_err::create_dir_all(file.parent().unwrap()).unwrap();
        fs_err::write(&file, b"{not json").unwrap();
        assert!(read(dir.path(), None).is_empty());
    }

    #[test]
    fn an_empty_reply_is_suspect_once_and_confirmed_the_second_time() {
        let btc = key("BTCUSDT");
        // First time: nothing pending there, so the whole window stays suspect.
        let (suspect, confirmed) = settle_empty_reply(&[], &btc, (100, 200));
        assert_eq!((suspect, confirmed), (vec![(100, 200)], vec![]));
        // A window pending for another reason, or another series' empty reply, is no
        // confirmation.
        let other = [
            Pending::new(&btc, (100, 200), Reason::FetchFailed),
            Pending::new(&key("ETHUSDT"), (100, 200), Reason::EmptyReply),
        ];
        let (suspect, confirmed) = settle_empty_reply(&other, &btc, (100, 200));
        assert_eq!((suspect, confirmed), (vec![(100, 200)], vec![]));
        // The next run sees the same emptiness: confirmed (the exchange's own gap).
        let before = [Pending::new(&btc, (100, 200), Reason::EmptyReply)];
        let (suspect, confirmed) = settle_empty_reply(&before, &btc, (100, 200));
        assert_eq!((suspect, confirmed), (vec![], vec![(100, 200)]));
        // Only the part seen empty twice is confirmed; the new part is suspect.
        let (suspect, confirmed) = settle_empty_reply(&before, &btc, (150, 300));
        assert_eq!((suspect, confirmed), (vec![(200, 300)], vec![(150, 200)]));
    }

    #[test]
    fn carry_over_subtracts_finished_windows_per_series() {
        let before = vec![
            Pending::new(&key("BTCUSDT"), (0, 100), Reason::InFlight),
            Pending::new(&key("ETHUSDT"), (0, 100), Reason::FetchFailed),
        ];
        let done = BTreeMap::from([(key("BTCUSDT"), vec![(0, 40), (60, 100)])]);
        let after = carry_over(
            &before,
            &done,
            vec![Pending::new(&key("BTCUSDT"), (200, 300), Reason::Stopped)],
        );
        let windows: Vec<(String, Window, Reason)> = after
            .iter()
            .map(|p| (p.symbol.to_string(), p.window(), p.reason))
            .collect();
        assert_eq!(
            windows,
            [
                ("BTCUSDT".into(), (40, 60), Reason::InFlight),
                ("ETHUSDT".into(), (0, 100), Reason::FetchFailed),
                ("BTCUSDT".into(), (200, 300), Reason::Stopped),
            ]
        );
    }
}

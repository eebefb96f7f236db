//! Extraction metrics: lock-free counters per task and per run (requests, weight, retries by
//! cause, 429s and 418s, rows, rows held back or dropped), their serialisable snapshots, and
//! the [`Progress`] trait a progress display implements (so this module never depends on
//! indicatif).

use std::sync::atomic::{AtomicU64, Ordering};

use super::retry::RetryCause;

/// Live counters, shared by the workers of one task (or of the whole run).
#[derive(Debug, Default)]
pub struct Counters {
    requests: AtomicU64,
    weight: AtomicU64,
    retries: [AtomicU64; RetryCause::ALL.len()],
    http_429: AtomicU64,
    http_418: AtomicU64,
    rows: AtomicU64,
    held_back: AtomicU64,
    dropped_off_grid: AtomicU64,
    dropped_outside: AtomicU64,
    dropped_duplicate: AtomicU64,
    dropped_bad_close: AtomicU64,
    empty_pages: AtomicU64,
}

/// A point-in-time copy of [`Counters`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MetricsSnapshot {
    /// Requests sent (every attempt).
    pub requests: u64,
    /// Request weight accounted.
    pub weight: u64,
    /// Retries by cause, in [`RetryCause::ALL`] order.
    pub retries: [u64; RetryCause::ALL.len()],
    /// 429 replies.
    pub http_429: u64,
    /// 418 replies.
    pub http_418: u64,
    /// Rows delivered.
    pub rows: u64,
    /// Rows held back because the candle was still forming.
    pub held_back: u64,
    /// Rows dropped: open time off the interval grid.
    pub dropped_off_grid: u64,
    /// Rows dropped: outside the asked window.
    pub dropped_outside: u64,
    /// Rows dropped: already delivered.
    pub dropped_duplicate: u64,
    /// Rows dropped: irregular close time.
    pub dropped_bad_close: u64,
    /// Pages for which the exchange returned no rows.
    pub empty_pages: u64,
    /// Wall-clock time, ms.
    pub elapsed_ms: u64,
}

impl MetricsSnapshot {
    /// Total retries.
    pub fn total_retries(&self) -> u64 {
        self.retries.iter().sum()
    }

    /// Retries for one cause.
    pub fn retries_for(&self, cause: RetryCause) -> u64 {
        self.retries[cause.index()]
    }

    /// All dropped rows.
    pub fn dropped(&self) -> u64 {
        self.dropped_off_grid
            + self.dropped_outside
            + self.dropped_duplicate
            + self.dropped_bad_close
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    /// A request of `weight` was sent.
    pub fn request(&self, weight: u32) {
        add(&self.requests, 1);
        add(&self.weight, u64::from(weight));
    }

    /// A retry for `cause`.
    pub fn retry(&self, cause: RetryCause) {
        add(&self.retries[cause.index()], 1);
    }

    /// A 429 reply.
    pub fn rate_limited(&self) {
        add(&self.http_429, 1);
    }

    /// A 418 reply.
    pub fn banned(&self) {
        add(&self.http_418, 1);
    }

    /// The outcome of one screened page.
    pub fn page(&self, s: &super::paging::Screen) {
        add(&self.rows, s.kept as u64);
        add(&self.held_back, s.held_back as u64);
        add(&self.dropped_off_grid, s.off_grid as u64);
        add(&self.dropped_outside, s.outside as u64);
        add(&self.dropped_duplicate, s.duplicate as u64);
        add(&self.dropped_bad_close, s.bad_close as u64);
        if s.last_open.is_none() {
            add(&self.empty_pages, 1);
        }
    }

    /// A copy of the counters, stamped with `elapsed_ms`.
    pub fn snapshot(&self, elapsed_ms: u64) -> MetricsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            requests: g(&self.requests),
            weight: g(&self.weight),
            retries: std::array::from_fn(|i| g(&self.retries[i])),
            http_429: g(&self.http_429),
            http_418: g(&self.http_418),
            rows: g(&self.rows),
            held_back: g(&self.held_back),
            dropped_off_grid: g(&self.dropped_off_grid),
            dropped_outside: g(&self.dropped_outside),
            dropped_duplicate: g(&self.dropped_duplicate),
            dropped_bad_close: g(&self.dropped_bad_close),
            empty_pages: g(&self.empty_pages),
            elapsed_ms,
        }
    }
}

/// Counts into a task's counters and the run's at once.
#[derive(Debug, Clone, Copy)]
pub struct Meter<'a> {
    /// The task's counters.
    pub task: &'a Counters,
    /// The run's counters.
    pub run: &'a Counters,
}

impl Meter<'_> {
    /// Apply `f` to both.
    pub fn each(&self, f: impl Fn(&Counters)) {
        f(self.task);
        f(self.run);
    }
}

/// A series (task) as planned before the first request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTask {
    /// `BTCUSDT 1h`.
    pub label: String,
    /// Closed candles the window holds.
    pub candles: u64,
    /// REST page windows the window takes.
    pub pages: u64,
}

/// Hooks for a progress display; every method has a no-op default. Called from worker tasks,
/// so implementations must be cheap and must not block.
pub trait Progress: Send + Sync {
    /// The run's tasks with their planned totals, indexed by [`super::TaskId`]; called before
    /// the first kline request.
    fn tasks_planned(&self, _tasks: &[PlannedTask]) {}
    /// The archive part of a task resolved into `files` archive files, leaving `rest_pages`
    /// REST page windows for the part no file covers.
    fn archive_planned(&self, _task: super::TaskId, _files: usize, _rest_pages: usize) {}
    /// An archive file of a task was read, or given up on.
    fn archive_file_done(&self, _task: super::TaskId) {}
    /// The archive part of a task is over (early, when a file hands over to REST).
    fn archive_finished(&self, _task: super::TaskId) {}
    /// The REST part of a task starts: `pages` page windows for `candles` closed candles
    /// (after the listing probe and the archive part moved its start).
    fn task_started(&self, _task: super::TaskId, _pages: usize, _candles: u64) {}
    /// A REST page window of a task finished (with its continuations).
    fn page_done(&self, _task: super::TaskId) {}
    /// Rows of a task were delivered.
    fn rows(&self, _task: super::TaskId, _rows: usize) {}
    /// A request was sent.
    fn request(&self, _weight: u32) {}
    /// A task finished.
    fn task_done(&self, _task: super::TaskId, _outcome: &super::TaskOutcome) {}
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_snapshot_what_was_counted() {
        let (t, r) = (Counters::default(), Counters::default());
        let m = Meter { task: &t, run: &r };
        m.each(|c| c.request(2));
        m.each(|c| c.retry(RetryCause::Server));
        m.each(Counters::rate_limited);
        m.each(|c| {
            c.page(&super::super::paging::Screen {
                kept: 5,
                held_back: 1,
                outside: 2,
                last_open: Some(1),
                ..Default::default()
            });
        });
        let s = r.snapshot(7);
        assert_eq!(
            (s.requests, s.weight, s.http_429, s.rows, s.held_back),
            (1, 2, 1, 5, 1)
        );
        assert_eq!(s.retries_for(RetryCause::Server), 1);
        assert_eq!((s.total_retries(), s.dropped(), s.elapsed_ms), (1, 2, 7));
        assert_eq!(t.snapshot(0).rows, 5);
    }
}

//! The `run` section of `_kline_etl/summary.json`: one line per task and the run's figures (requests,
//! weight, budget use, retries, rows, files, timings), and writing the report files next to
//! the data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::extract::{FailedWindow, MetricsSnapshot};
use crate::load::LoadError;
use crate::summary::report::Report;
use crate::summary::table::series_parquet;
use crate::transform::quality::QualityReport;

/// One task's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    /// Market.
    pub market: String,
    /// Symbol.
    pub symbol: String,
    /// Interval.
    pub interval: String,
    /// Requested window start (after incremental adjustment).
    pub start: String,
    /// Requested window end (exclusive).
    pub end: String,
    /// `complete`, `failed`, `stopped`.
    pub status: String,
    /// Failure reason, when failed.
    pub error: Option<String>,
    /// Where a rerun resumes, when stopped.
    pub resume_from: Option<String>,
    /// Windows that could not be fetched.
    pub failed_windows: Vec<FailedWindow>,
    /// Requests sent.
    pub requests: u64,
    /// Weight used.
    pub weight: u64,
    /// Rows received (closed candles).
    pub rows: u64,
    /// Still-forming candles held back.
    pub rows_held_back: u64,
    /// Rows dropped as invalid (off grid, outside the window, duplicates, bad close time).
    pub rows_dropped: u64,
    /// Partition files written or rewritten.
    pub files_written: u64,
    /// Rows not on disk before.
    pub rows_new: u64,
    /// Stored rows replaced by different values.
    pub rows_replaced: u64,
    /// Quality findings.
    pub quality: QualityReport,
}

/// The `run` section of `_kline_etl/summary.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunInfo {
    /// When the run started (UTC).
    pub started_at: String,
    /// When it finished.
    pub finished_at: String,
    /// Wall time, ms.
    pub elapsed_ms: u64,
    /// `ok`, `tasks_failed`, `resumable`, `output`, ...: the exit code's name, as the run's
    /// last log line says it.
    pub outcome: String,
    /// Why a `resumable` run stopped early: `interrupt` (Ctrl-C, SIGTERM) or `ban` (a 418
    /// outlasting `max_ban_wait_secs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    /// The process exit code.
    pub exit_code: u8,
    /// Resolved range start (UTC).
    pub range_start: String,
    /// Resolved range end (UTC, exclusive).
    pub range_end: String,
    /// The symbols the run covered (explicit or resolved from a selector).
    pub symbols: Vec<String>,
    /// Task counts.
    pub tasks_total: usize,
    /// Tasks completed.
    pub tasks_ok: usize,
    /// Tasks failed.
    pub tasks_failed: usize,
    /// Tasks stopped early (ban, interrupt): rerun to resume.
    pub tasks_stopped: usize,
    /// Requests sent.
    pub requests: u64,
    /// Request weight used.
    pub weight_used: u64,
    /// The exchange's weight limit per window.
    pub weight_limit: u32,
    /// The window the limit applies to, e.g. `1M` (minute).
    pub weight_window: String,
    /// The share of the budget in force at the end (shrinks after a 429).
    pub weight_share: f64,
    /// Weight used / (limit × rate-limit windows the extraction spanned): how much of the
    /// exchange's budget the run used (a short run that fits in one window reads low).
    pub budget_utilisation: f64,
    /// Requests that waited for the weight budget (a later window, a 429 or 418 pause) before
    /// they were sent, each counted once.
    pub budget_waits: u64,
    /// Retries by cause.
    pub retries: BTreeMap<String, u64>,
    /// HTTP 429 replies received.
    pub http_429: u64,
    /// HTTP 418 replies received.
    pub http_418: u64,
    /// Closed candles received.
    pub rows_fetched: u64,
    /// Still-forming candles held back.
    pub rows_held_back: u64,
    /// New rows written.
    pub rows_new: u64,
    /// Partition files written.
    pub files_written: u64,
    /// Bytes of partition files written.
    pub bytes_written: u64,
    /// With `output.format: delta`: the table version this run committed (absent when it
    /// changed nothing, or the format is `parquet`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_version: Option<u64>,
    /// Time spent fetching (the extractor's wall time), ms.
    pub extract_ms: u64,
    /// Time spent writing after the last page arrived, ms.
    pub load_tail_ms: u64,
    /// Time spent computing the summary, ms.
    pub summary_ms: u64,
    /// Per task.
    pub tasks: Vec<TaskReport>,
    /// The archive part (`source.mode: auto | archive`): files, issues, where REST took over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<crate::extract::archive::ArchiveSummary>,
}

/// Retries by cause, every cause listed (zeros included), as the report spells them.
pub fn retries_by_cause(m: &MetricsSnapshot) -> BTreeMap<String, u64> {
    crate::extract::retry::RetryCause::ALL
        .iter()
        .map(|c| (c.as_str().to_owned(), m.retries_for(*c)))
        .collect()
}

/// Write `_kline_etl/summary.json` and `_kline_etl/summary.parq` under `<root>/klines/`, atomically (with
/// `--shard I/N`: `summary.shard-I-of-N.json` and `.parq`, one pair per shard).
pub fn write_report<R: Serialize>(
    root: &Path,
    shard: Option<crate::shard::Shard>,
    report: &Report<R>,
) -> Result<PathBuf, LoadError> {
    let (json_path, pq_path) = crate::layout::summary_files(root, shard);
    let json = serde_json::to_string_pretty(report).map_err(|source| LoadError::Report {
        path: json_path.clone(),
        source,
    })?;
    // Error texts quote the exchange, which may echo what it was sent: no secret is written.
    let mut json = crate::config::redact(&json).into_owned().into_bytes();
    json.push(b'\n');
    crate::load::atomic::write_atomic(&json_path, &json, |_| Ok(()), |_| false)?;
    let pq = series_parquet(&report.series).map_err(|source| LoadError::Encode {
        path: pq_path.clone(),
        source,
    })?;
    crate::load::atomic::write_atomic(&pq_path, &pq, |_| Ok(()), |_| false)?;
    Ok(json_path)
}

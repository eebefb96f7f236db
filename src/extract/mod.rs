//! Extraction: page kline history out of the exchange's REST API at the full weight budget,
//! never past it.
//!
//! - [`client`]: the HTTP edge (reqwest + rustls, gzip, timeouts, bounded bodies, API key
//!   only as a sensitive header) and the `/time` and `/exchangeInfo` helpers.
//! - [`paging`]: pure page-window planning and page screening.
//! - [`retry`]: the pure retry policy (reply classification, full-jitter backoff).
//! - [`budget`]: the request-weight budget shared by every worker.
//! - [`pager`]: the [`Extractor`] that ties them together: many page windows in flight across
//!   and within tasks, reassembled in order and sent over a bounded channel.
//! - [`metrics`]: counters per task and run, and the [`Progress`] hooks.
//! - [`snapshot`]: the snapshot datasets' requests (`/ticker/price`, `/depth`) through the
//!   same session and budget.
//!
//! Output contract: for each task, [`ExtractEvent::Rows`] chunks strictly in open-time order
//! without duplicates, then exactly one [`ExtractEvent::TaskDone`]; the run ends with a
//! [`RunReport`].

pub mod archive;
pub mod budget;
pub mod client;
pub mod metrics;
pub mod pager;
pub mod paging;
pub mod retry;
pub mod snapshot;

use std::fmt;

pub use metrics::{MetricsSnapshot, NoProgress, Progress};
pub use pager::{EndpointLimit, ExtractConfig, Extractor, Session};

use crate::exit::ExitCode;
use crate::interval::Interval;
use crate::market::Market;
use crate::symbol::Symbol;
use crate::transform::KlineRows;

/// Identifies a task within one run: its index in the task list given to
/// [`Extractor::run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct TaskId(pub usize);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.0)
    }
}

/// One unit of work: a symbol's klines at one interval over `[start_ms, end_ms)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlineTask {
    /// Market (must be the extractor's).
    pub market: Market,
    /// Symbol.
    pub symbol: Symbol,
    /// Interval.
    pub interval: Interval,
    /// Inclusive start, ms.
    pub start_ms: i64,
    /// Exclusive end, ms.
    pub end_ms: i64,
}

impl fmt::Display for KlineTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.market, self.symbol, self.interval)
    }
}

/// What the extractor sends downstream.
#[derive(Debug)]
pub enum ExtractEvent {
    /// Rows of one task, in open-time order, continuing where the previous chunk ended.
    Rows {
        /// The task.
        task: TaskId,
        /// The rows.
        rows: KlineRows,
        /// Held while the event waits in the channel, released once the loader has taken the
        /// rows: the sender's own bound on rows in flight when its chunks are larger than a
        /// page (archive files go whole, [`archive::QUEUED_FILES`] at most). `None` for REST
        /// pages, which the channel's capacity bounds.
        hold: Option<tokio::sync::OwnedSemaphorePermit>,
    },
    /// A task is finished; no more rows follow for it.
    TaskDone {
        /// The task.
        task: TaskId,
        /// How it ended.
        outcome: TaskOutcome,
    },
}

/// A page window that could not be fetched completely: retries ran out, the exchange sent
/// malformed rows, or it answered nothing where it has data after (as opposed to a window the
/// exchange has no candles for).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailedWindow {
    /// Start, ms (inclusive).
    pub start: i64,
    /// End, ms (exclusive).
    pub end: i64,
    /// Why.
    pub reason: String,
    /// The kind of failure (and the cause its gaps get in the summary).
    pub cause: WindowCause,
}

/// Why a window's candles are missing although the exchange was asked for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowCause {
    /// Retries ran out (or the task failed there).
    #[default]
    FetchFailed,
    /// The exchange sent rows there that are malformed (off the interval grid, closing before
    /// they open or after the candle), still after retries; they were not written.
    InvalidRow,
    /// The exchange answered an empty page there although it has candles after it, still after
    /// retries.
    EmptyReply,
}

impl From<WindowCause> for crate::load::resume::Reason {
    fn from(c: WindowCause) -> Self {
        match c {
            WindowCause::FetchFailed => Self::FetchFailed,
            WindowCause::InvalidRow => Self::InvalidRow,
            WindowCause::EmptyReply => Self::EmptyReply,
        }
    }
}

/// Why a task failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The exchange rejected the request (4xx with an error code).
    #[error("{task}: the exchange rejected the request: http {status}, code `{code}`: {msg}")]
    Rejected {
        /// `market symbol interval`.
        task: String,
        /// HTTP status.
        status: u16,
        /// Exchange error code, or `none`.
        code: String,
        /// Exchange message.
        msg: String,
    },
    /// Retries ran out.
    #[error(
        "{task}: giving up on the window from {} to {} after {attempts} attempts: {last}",
        crate::time::fmt_ms(*start),
        crate::time::fmt_ms(*end)
    )]
    RetriesExhausted {
        /// `market symbol interval`.
        task: String,
        /// Window start, ms.
        start: i64,
        /// Window end, ms.
        end: i64,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The task's market is not the extractor's.
    #[error("{task}: this extractor serves market `{expected}`")]
    WrongMarket {
        /// `market symbol interval`.
        task: String,
        /// The extractor's market.
        expected: Market,
    },
    /// The market has no klines at this interval (`1s` on futures).
    #[error("{task}: the market has no klines at this interval")]
    Unsupported {
        /// `market symbol interval`.
        task: String,
    },
    /// Malformed rows with `transform.on_violation: fail` (nothing of that window written).
    #[error(
        "{task}: the exchange sent malformed rows in the window from {} to {} (still after retries), nothing of it written (`on_violation: fail`): {summary}",
        crate::time::fmt_ms(*start),
        crate::time::fmt_ms(*end)
    )]
    InvalidRows {
        /// `market symbol interval`.
        task: String,
        /// Window start, ms.
        start: i64,
        /// Window end, ms.
        end: i64,
        /// The findings' one-line summary.
        summary: String,
    },
}

/// How a task ended, with its metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOutcome {
    /// Completed, failed or stopped.
    pub status: TaskStatus,
    /// The first open time the exchange has for this symbol × interval, when probed.
    pub listed_from: Option<i64>,
    /// Windows that could not be fetched completely (see [`WindowCause`]).
    pub failed_windows: Vec<FailedWindow>,
    /// Quality findings of rows the exchange sent that were not delivered (malformed rows).
    pub quality: crate::transform::QualityReport,
    /// The task's counters.
    pub metrics: MetricsSnapshot,
}

/// The end state of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    /// Every window was fetched; missing candles are ones the exchange does not have.
    Complete,
    /// The task failed; rows up to the failure were delivered.
    Failed(TaskError),
    /// The run stopped (ban, cancellation) before this task finished; rows before
    /// `resume_from` were delivered in full.
    Stopped {
        /// Where a rerun must resume, ms.
        resume_from: i64,
    },
}

/// The run's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum RunOutcome {
    /// Every task completed.
    Ok,
    /// Some tasks failed; the others completed.
    TasksFailed,
    /// An IP ban outlasted the configured wait: partial, resumable.
    BannedResumable {
        /// Ban end, exchange clock, ms.
        until_ms: i64,
    },
    /// Cancelled (Ctrl-C): partial, resumable.
    Cancelled,
}

impl RunOutcome {
    /// The process exit code this outcome maps to.
    pub fn exit_code(self) -> ExitCode {
        match self {
            RunOutcome::Ok => ExitCode::Ok,
            RunOutcome::TasksFailed => ExitCode::TasksFailed,
            RunOutcome::BannedResumable { .. } | RunOutcome::Cancelled => ExitCode::Resumable,
        }
    }
}

/// What [`Extractor::run`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// Outcome.
    pub outcome: RunOutcome,
    /// Run-level counters.
    pub metrics: MetricsSnapshot,
    /// The weight limit in force at the end (`exchangeInfo` or default), per window.
    pub weight_limit: budget::WeightLimit,
    /// The share of it in force at the end (shrinks after 429s).
    pub weight_share: f64,
    /// Requests that waited for the weight budget (a later window, a 429 or 418 pause) before
    /// they were sent, each counted once.
    pub budget_waits: u64,
}

/// The run could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The HTTP client could not be built.
    #[error("cannot create the http client")]
    Client(#[source] client::TransportError),
    /// `/time` could not be read.
    #[error("cannot read the exchange's clock")]
    ServerTime(#[source] client::HelperError),
}

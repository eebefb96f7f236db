//! `kline-etl status`: what an output dataset holds per market × symbol × interval (first and
//! last candle, rows, missing candles, gaps by cause, windows waiting to be resumed) and how
//! the last run ended, from the files themselves, `_kline_etl/summary.json` and `_kline_etl/resume.json`. Like
//! freqtrade's `list-data`, with the quality numbers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::interval::Interval;
use crate::load::LoadError;
use crate::load::lock::{self, Owner};
use crate::load::resume::{self, Reason};
use crate::market::Market;
use crate::summary::series::GapCause;

/// The status of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesStatus {
    /// Market.
    pub market: Market,
    /// Symbol.
    pub symbol: String,
    /// Interval.
    pub interval: Interval,
    /// First stored open time.
    pub first_open_time: Option<String>,
    /// Last stored open time.
    pub last_open_time: Option<String>,
    /// Rows stored.
    pub rows: u64,
    /// Candles missing between the first and the last.
    pub missing: i64,
    /// Gaps the exchange has no data for.
    pub gaps_exchange: usize,
    /// Gaps we failed to fetch (`kline-etl repair` refetches them), including the suspect
    /// ones below.
    pub gaps_fetch_failed: usize,
    /// Of those, gaps where the exchange sent malformed rows (`invalid_row`).
    pub gaps_invalid_row: usize,
    /// Of those, gaps where the exchange answered empty inside its history (`empty_reply`).
    pub gaps_empty_reply: usize,
    /// Windows a later run resumes (interrupted, failed or in flight when a run died).
    pub pending_windows: usize,
    /// How this series' tasks ended in the last run (`complete`, `failed`, `stopped`), or
    /// `-` when the last run did not touch it.
    pub last_run: String,
}

/// The last run, from `_kline_etl/summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    /// The pipeline's name.
    pub pipeline: Option<String>,
    /// Start (UTC).
    pub started_at: String,
    /// End (UTC).
    pub finished_at: String,
    /// `ok`, `tasks_failed`, `resumable`, …: the run's own word (exit code name).
    pub outcome: String,
    /// Why a resumable run stopped: `interrupt` or `ban`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    /// Its exit code.
    pub exit_code: u8,
}

/// The status of an output dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The output root.
    pub root: String,
    /// The run writing the dataset now, if any.
    pub running: Option<Owner>,
    /// The last run that finished.
    pub last_run: Option<LastRun>,
    /// Windows planned by a run that never reported back (it was killed): the next run
    /// resumes them.
    pub interrupted_windows: usize,
    /// Per series.
    pub series: Vec<SeriesStatus>,
    /// The funding-rate dataset under the same root, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub funding_rate: Option<crate::dataset::funding_rate::FundingStatus>,
}

#[derive(Deserialize)]
struct SummaryDoc {
    pipeline: Option<PipelineDoc>,
    run: Option<RunDoc>,
}

#[derive(Deserialize)]
struct PipelineDoc {
    name: String,
}

#[derive(Deserialize)]
struct RunDoc {
    started_at: String,
    finished_at: String,
    outcome: String,
    #[serde(default)]
    stopped_by: Option<String>,
    exit_code: u8,
    #[serde(default)]
    tasks: Vec<TaskDoc>,
}

#[derive(Deserialize)]
struct TaskDoc {
    market: Market,
    symbol: String,
    interval: Interval,
    status: String,
}

/// Read the status of the dataset under `root` (reads every partition file once).
pub fn status(root: &Path) -> Result<Status, LoadError> {
    let pending = resume::read_all(root);
    let mut series = crate::summary::dataset::summarize(root)?;
    crate::summary::dataset::attribute_pending(&mut series, &pending);
    let doc: Option<SummaryDoc> = fs_err::read_to_string(crate::layout::summary_json(root))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let mut task_status: BTreeMap<(Market, String, Interval), String> = BTreeMap::new();
    let last_run = doc.and_then(|d| {
        let run = d.run?;
        for t in run.tasks {
            let slot = task_status
                .entry((t.market, t.symbol, t.interval))
                .or_insert_with(|| "complete".to_owned());
            if t.status != "complete" && *slot != "failed" {
                *slot = t.status;
            }
        }
        Some(LastRun {
            pipeline: d.pipeline.map(|p| p.name),
            started_at: run.started_at,
            finished_at: run.finished_at,
            outcome: crate::exit::outcome_word(&run.outcome).to_owned(),
            stopped_by: run.stopped_by,
            exit_code: run.exit_code,
        })
    });
    let running = lock::holder(root);
    let interrupted_windows = if running.is_some() {
        0
    } else {
        pending
            .iter()
            .filter(|p| p.reason == Reason::InFlight)
            .count()
    };
    let series = series
        .into_iter()
        .map(|s| {
            let count = |cause| s.range.gaps.iter().filter(|g| g.cause == cause).count();
            SeriesStatus {
                market: s.market,
                interval: s.interval,
                first_open_time: s.range.first_open_time.clone(),
                last_open_time: s.range.last_open_time.clone(),
                rows: s.range.rows,
                missing: s.range.missing,
                gaps_exchange: count(GapCause::ExchangeNone),
                gaps_fetch_failed: s.range.gaps.iter().filter(|g| g.cause.is_ours()).count(),
                gaps_invalid_row: count(GapCause::InvalidRow),
                gaps_empty_reply: count(GapCause::EmptyReply),
                pending_windows: pending
                    .iter()
                    .filter(|p| {
                        p.market == s.market
                            && p.symbol.as_str() == s.symbol
                            && p.interval == s.interval
                    })
                    .count(),
                last_run: task_status
                    .get(&(s.market, s.symbol.clone(), s.interval))
                    .cloned()
                    .unwrap_or_else(|| "-".to_owned()),
                symbol: s.symbol,
            }
        })
        .collect();
    let funding_rate = crate::dataset::funding_rate::status(root).map_err(|e| match e {
        crate::dataset::funding_rate::store::StoreError::Load(l) => l,
        other => LoadError::Io(std::io::Error::other(other.to_string())),
    })?;
    Ok(Status {
        funding_rate,
        root: root.display().to_string(),
        running,
        last_run,
        interrupted_windows,
        series,
    })
}

/// The status as a readable table.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    match &s.running {
        Some(o) => {
            let _ = writeln!(
                out,
                "running: pid {} on `{}` (pipeline `{}`) since {}",
                o.pid, o.host, o.pipeline, o.since
            );
        }
        None => out.push_str("running: no\n"),
    }
    match &s.last_run {
        Some(r) => {
            let _ = writeln!(
                out,
                "last run: {} ({}) {} → {}: {}{} (exit {})",
                r.pipeline.as_deref().unwrap_or("-"),
                s.root,
                r.started_at,
                r.finished_at,
                r.outcome,
                r.stopped_by.as_deref().map_or(String::new(), |b| format!(
                    ", stopped by {b}; the next run resumes"
                )),
                r.exit_code
            );
        }
        None => out.push_str("last run: none recorded\n"),
    }
    if s.interrupted_windows > 0 {
        let _ = writeln!(
            out,
            "interrupted: a run was killed with {} window(s) in flight; the next run resumes them",
            s.interrupted_windows
        );
    }
    let _ = writeln!(
        out,
        "\n{:<6} {:<14} {:<4} {:<25} {:<25} {:>9} {:>8} {:>5} {:>6} {:>7} {:<8}",
        "market",
        "symbol",
        "int",
        "first",
        "last",
        "rows",
        "missing",
        "gaps",
        "failed",
        "pending",
        "last run"
    );
    for r in &s.series {
        let _ = writeln!(
            out,
            "{:<6} {:<14} {:<4} {:<25} {:<25} {:>9} {:>8} {:>5} {:>6} {:>7} {:<8}",
            r.market.as_str(),
            r.symbol,
            r.interval.as_str(),
            r.first_open_time.as_deref().unwrap_or("-"),
            r.last_open_time.as_deref().unwrap_or("-"),
            r.rows,
            r.missing,
            r.gaps_exchange,
            r.gaps_fetch_failed,
            r.pending_windows,
            r.last_run
        );
    }
    if let Some(f) = &s.funding_rate {
        out.push_str(&crate::dataset::funding_rate::render_status(f));
    }
    if s.series.iter().any(|r| r.gaps_fetch_failed > 0) {
        out.push_str(
            "\n`failed` gaps could not be fetched; `kline-etl repair PIPELINE` refetches them\n",
        );
    }
    let invalid: usize = s.series.iter().map(|r| r.gaps_invalid_row).sum();
    let empty: usize = s.series.iter().map(|r| r.gaps_empty_reply).sum();
    if invalid + empty > 0 {
        let _ = writeln!(
            out,
            "of the `failed` gaps, {invalid} hold malformed rows the exchange sent (`invalid_row`) and {empty} an empty reply inside its history (`empty_reply`)"
        );
    }
    out
}

//! `dataset: funding_rate`: the funding-rate history of perpetual futures, USDⓈ-M
//! (`GET /fapi/v1/fundingRate`) and COIN-M (`GET /dapi/v1/fundingRate`), as one module.
//!
//! - [`request`]: the query, the paging decision, the endpoint's own limit (500 requests per
//!   5 minutes per IP, shared with `fundingInfo`) and the paging loop through the shared
//!   [`crate::extract::Session`] (weight budget, retries, 429/418 handling).
//! - [`rows`]: the record type, reply parsing, the Arrow schema and reading files back.
//! - [`store`]: the layout under `<output.path>/funding_rate`, merge by `funding_time` and
//!   atomic, byte-stable partition writes.
//! - [`stats`]: per-series statistics for `_kline_etl/summary.json`, `summary` and `status`.
//! - this file: the run (connect, resolve symbols, plan windows from the data on disk, fetch,
//!   merge, report) and the `status`/`summary` entry points.
//!
//! # Incremental runs
//!
//! The data on disk is the state. Per symbol the run fetches from the last stored funding
//! time (that record is fetched again and compared; an unchanged record rewrites nothing) to
//! `range.end`, so a nightly run costs one request per symbol. Records before the first stored
//! one are asked for once: `_kline_etl/summary.json` remembers per series the earliest `range.start` a
//! run completed (`requested_from`), so a symbol listed after `range.start` is not asked again
//! every night. `--full-refresh` fetches the whole range.

pub mod request;
pub mod rows;
pub mod stats;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use self::request::{FetchError, WindowFetch, fetch_window};
use self::rows::FundingRecord;
use self::stats::{SeriesStats, series_stats};
use self::store::{MergeCounts, StoreError, dataset_dir, merge_write, read_series};
use crate::config::Pipeline;
use crate::error::error_chain;
use crate::exit::ExitCode;
use crate::extract::Session;
use crate::extract::snapshot::RequestError;
use crate::load::delta::Table;
use crate::load::lock::{self, Owner};
use crate::load::{LoadError, WriteOptions};
use crate::market::Market;
use crate::plan::symbols::symbols_of;
use crate::run::{Output, RunContext, RunError, RunMode, RunOptions, RunResult, blocking};
use crate::summary::report::{PipelineInfo, REPORT_VERSION, ToolInfo};
use crate::symbol::Symbol;
use crate::time::fmt_ms;

/// A half-open window `[start, end)`, ms.
pub type Window = (i64, i64);

/// The windows to fetch for one symbol: everything requested when nothing is stored (or with
/// `full_refresh`); otherwise the head before the first stored record (unless an earlier
/// complete run already asked from `requested_from <= start`) and the tail from the last
/// stored record on (that record is fetched again).
pub fn plan_windows(
    (start, end): Window,
    stored: Option<Window>,
    requested_from: Option<i64>,
    full_refresh: bool,
) -> Vec<Window> {
    if start >= end {
        return Vec::new();
    }
    let Some((first, last)) = stored.filter(|_| !full_refresh) else {
        return vec![(start, end)];
    };
    let mut out = Vec::new();
    let head_end = first.min(end);
    if start < head_end && requested_from.is_none_or(|c| start < c) {
        out.push((start, head_end));
    }
    let tail_start = last.max(start);
    if tail_start < end && out.last().is_none_or(|w| w.1 <= tail_start) {
        out.push((tail_start, end));
    }
    out
}

/// One symbol's line in the run report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolRun {
    /// Symbol.
    pub symbol: String,
    /// Windows fetched (UTC `[start, end)`).
    pub windows: Vec<[String; 2]>,
    /// `complete`, `failed` or `stopped`.
    pub status: String,
    /// Why it failed or stopped.
    pub error: Option<String>,
    /// Requests sent.
    pub requests: u64,
    /// Records received inside the windows.
    pub records: u64,
    /// Records not stored before.
    pub records_new: u64,
    /// Stored records whose values changed.
    pub records_replaced: u64,
    /// Partition files written.
    pub files_written: u64,
}

/// The `run` section of `funding_rate/_kline_etl/summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FundingRunInfo {
    /// When the run started (UTC).
    pub started_at: String,
    /// When it finished.
    pub finished_at: String,
    /// Wall time, ms.
    pub elapsed_ms: u64,
    /// `ok`, `tasks_failed`, `resumable`, `output`.
    pub outcome: String,
    /// The process exit code.
    pub exit_code: u8,
    /// Resolved range start (UTC).
    pub range_start: String,
    /// Resolved range end (UTC, exclusive).
    pub range_end: String,
    /// The symbols the run covered.
    pub symbols: Vec<String>,
    /// Requests sent (all endpoints).
    pub requests: u64,
    /// Weight used.
    pub weight_used: u64,
    /// The funding endpoints' own limit, e.g. `500/5M` (requests per window).
    pub request_limit: String,
    /// HTTP 429 replies received.
    pub http_429: u64,
    /// HTTP 418 replies received.
    pub http_418: u64,
    /// Retries by cause.
    pub retries: BTreeMap<String, u64>,
    /// Records received.
    pub records_fetched: u64,
    /// Records not stored before.
    pub records_new: u64,
    /// Partition files written.
    pub files_written: u64,
    /// Bytes of partition files written.
    pub bytes_written: u64,
    /// Per symbol.
    pub tasks: Vec<SymbolRun>,
}

/// One series in `_kline_etl/summary.json`: its statistics and how far back runs have asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesReport {
    /// The statistics of what is stored.
    #[serde(flatten)]
    pub stats: SeriesStats,
    /// The earliest `range.start` a complete run asked from (UTC): records before the first
    /// stored one and after this do not exist on the exchange.
    pub requested_from: Option<String>,
}

/// `<output.path>/funding_rate/_kline_etl/summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FundingReport {
    /// Layout version.
    pub report_version: u32,
    /// The tool.
    pub tool: ToolInfo,
    /// `funding_rate`.
    pub dataset: String,
    /// The pipeline, when written by a run.
    pub pipeline: Option<PipelineInfo>,
    /// The run, when written by a run.
    pub run: Option<FundingRunInfo>,
    /// Per stored series.
    pub series: Vec<SeriesReport>,
}

/// Where the report lives.
pub fn summary_path(root: &Path) -> PathBuf {
    crate::layout::funding_summary_file(root)
}

/// The last report's `requested_from` per (market, symbol).
fn previous_requested_from(root: &Path) -> BTreeMap<(Market, String), i64> {
    let Some(doc) = fs_err::read_to_string(summary_path(root))
        .ok()
        .and_then(|t| serde_json::from_str::<FundingReport>(&t).ok())
    else {
        return BTreeMap::new();
    };
    doc.series
        .into_iter()
        .filter_map(|s| {
            let t = crate::time::parse_rfc3339_ms(s.requested_from.as_deref()?)?;
            Some(((s.stats.market, s.stats.symbol), t))
        })
        .collect()
}

/// One symbol's fetch: its windows and what came back.
struct SymbolFetch {
    symbol: Symbol,
    windows: Vec<Window>,
    fetched: WindowFetch,
    /// Whether the window reaching back to `range.start` completed.
    head_complete: bool,
}

async fn fetch_symbol(
    session: &Session,
    p: &Pipeline,
    symbol: Symbol,
    windows: Vec<Window>,
    range_start: i64,
    cancel: &watch::Receiver<bool>,
) -> SymbolFetch {
    let mut out = WindowFetch::default();
    let mut head_complete = false;
    for &w in &windows {
        let f = fetch_window(session, symbol.as_str(), w, p.transform.prices, cancel).await;
        out.requests += f.requests;
        out.records.extend(f.records);
        if f.error.is_some() {
            out.error = f.error;
            break;
        }
        head_complete |= w.0 == range_start;
    }
    SymbolFetch {
        symbol,
        windows,
        fetched: out,
        head_complete,
    }
}

/// Run a `funding_rate` pipeline against `base_url` (dispatched from
/// [`crate::dataset::run_pipeline`], which starts the simulator when asked).
///
/// # Errors
/// [`RunError`] when the run cannot start (exchange unreachable, selector matches nothing,
/// dataset locked) or the report cannot be written; per-symbol failures are in the report
/// and the exit code.
pub async fn run(ctx: RunContext<'_>) -> Result<RunResult, RunError> {
    let (p, opts) = (ctx.pipeline, ctx.opts);
    if opts.mode != RunMode::Incremental || opts.shard.is_some() {
        return Err(RunError::Unsupported(
            "`repair` and `--shard` apply to kline datasets; a funding_rate run resumes from the data on disk by itself (use `run`, or `run --full-refresh`)".to_owned(),
        ));
    }
    let mut cfg = ctx.extract_config();
    cfg.endpoint_limits.push(request::endpoint_limit());
    let concurrency = cfg.concurrency.max(1);
    let session = ctx.connect(cfg).await?;
    let symbols = symbols_of(p, &session)?;
    let (range_start, range_end) = p.range.resolve(session.now_ms());
    let root = p.output.path.clone();
    crate::load::legacy::refuse_old_funding(&root)?;
    let output = Output::open_at(p, crate::layout::funding_lock_file(&root), opts).await?;
    let table = Output::table(p, &dataset_dir(&root), store::DIR)?;
    let wopts = WriteOptions::from_pipeline(p);
    let market = p.source.market;
    let previous = previous_requested_from(&root);
    let mut planned = Vec::new();
    let mut store_failures = Vec::new();
    for s in &symbols {
        match read_series(&root, market, s.as_str(), &wopts, table.as_deref()) {
            Ok(stored) => {
                let bounds = stored
                    .first()
                    .zip(stored.last())
                    .map(|(a, b)| (a.funding_time, b.funding_time));
                let prev = previous.get(&(market, s.to_string())).copied();
                let w = plan_windows((range_start, range_end), bounds, prev, opts.full_refresh);
                planned.push((s.clone(), w));
            }
            Err(e) => store_failures.push((s.clone(), e)),
        }
    }
    tracing::info!(symbols = planned.len(), start = %fmt_ms(range_start), end = %fmt_ms(range_end), "planned funding-rate windows");
    ctx.progress.tasks_planned(
        &planned
            .iter()
            .map(|(s, windows)| {
                let (records, pages) = windows.iter().fold((0, 0), |(r, q), (a, b)| {
                    let (records, requests, _) = plan_cost(*a, *b);
                    (r + records.max(0) as u64, q + requests)
                });
                crate::extract::metrics::PlannedTask {
                    label: s.to_string(),
                    candles: records,
                    pages,
                }
            })
            .collect::<Vec<_>>(),
    );
    let session = &session;
    let cancel = &ctx.cancel;
    let fetched: Vec<SymbolFetch> = futures::stream::iter(planned)
        .map(|(s, w)| fetch_symbol(session, p, s, w, range_start, cancel))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let written = {
        let (root, wopts, table) = (root.clone(), wopts.clone(), table.clone());
        blocking("funding-rate writer", move || {
            write_all(&root, market, fetched, &wopts, table.as_deref())
        })
        .await?
    };
    // Every file written is durable: one Delta commit holds them all.
    output.commit(table.as_deref()).await?;
    let (report, exit) = report(
        p,
        opts,
        session,
        &symbols,
        (range_start, range_end),
        &written,
        store_failures,
        &previous,
        (ctx.started, ctx.started_at.clone()),
    );
    let summary = summary_path(&root);
    write_report(&summary, &report)?;
    output.close().await?;
    let series: Vec<SeriesStats> = report.series.iter().map(|s| s.stats.clone()).collect();
    Ok(RunResult {
        exit,
        summary_path: summary,
        table: stats::render_table(&series),
    })
}

/// What writing one symbol's records did.
struct Written {
    fetch: SymbolFetch,
    merged: Result<MergeCounts, StoreError>,
    /// The whole stored series after the write.
    stored: Result<Vec<FundingRecord>, StoreError>,
}

fn write_all(
    root: &Path,
    market: Market,
    fetched: Vec<SymbolFetch>,
    opts: &WriteOptions,
    table: Option<&Table>,
) -> Vec<Written> {
    let mut out: Vec<Written> = fetched
        .into_iter()
        .map(|fetch| {
            let merged = merge_write(
                root,
                market,
                fetch.symbol.as_str(),
                &fetch.fetched.records,
                opts,
                table,
            );
            let stored = read_series(root, market, fetch.symbol.as_str(), opts, table);
            Written {
                fetch,
                merged,
                stored,
            }
        })
        .collect();
    out.sort_by(|a, b| a.fetch.symbol.cmp(&b.fetch.symbol));
    out
}

fn status_of(w: &Written) -> (&'static str, Option<String>) {
    match (&w.fetch.fetched.error, &w.merged) {
        (_, Err(e)) => ("failed", Some(error_chain(e))),
        (Some(FetchError::Request(RequestError::Halted)), _) => ("stopped", Some("the run stopped (cancelled, or banned longer than `max_ban_wait_secs`); rerun to resume".to_owned())),
        (Some(e), _) => ("failed", Some(e.to_string())),
        (None, Ok(_)) => ("complete", None),
    }
}

#[allow(clippy::too_many_arguments)] // the run's parts, gathered once
fn report(
    p: &Pipeline,
    opts: &RunOptions,
    session: &Session,
    symbols: &[Symbol],
    (range_start, range_end): Window,
    written: &[Written],
    store_failures: Vec<(Symbol, StoreError)>,
    previous: &BTreeMap<(Market, String), i64>,
    (started, started_at): (Instant, String),
) -> (FundingReport, ExitCode) {
    let market = p.source.market;
    let m = session.metrics();
    let mut tasks = Vec::new();
    let mut series = Vec::new();
    for w in written {
        let (status, error) = status_of(w);
        let counts = w.merged.as_ref().copied().unwrap_or_default();
        let name = w.fetch.symbol.to_string();
        tasks.push(SymbolRun {
            symbol: name.clone(),
            windows: w
                .fetch
                .windows
                .iter()
                .map(|(a, b)| [fmt_ms(*a), fmt_ms(*b)])
                .collect(),
            status: status.to_owned(),
            error,
            requests: w.fetch.fetched.requests,
            records: w.fetch.fetched.records.len() as u64,
            records_new: counts.new,
            records_replaced: counts.replaced,
            files_written: counts.files_written,
        });
        let prev = previous.get(&(market, name.clone())).copied();
        let requested_from = if w.fetch.head_complete && w.merged.is_ok() {
            Some(prev.map_or(range_start, |c| c.min(range_start)))
        } else {
            prev
        };
        if let Ok(stored) = &w.stored {
            series.push(SeriesReport {
                stats: series_stats(market, &name, stored),
                requested_from: requested_from.map(fmt_ms),
            });
        }
    }
    for (s, e) in store_failures {
        tasks.push(SymbolRun {
            symbol: s.to_string(),
            windows: Vec::new(),
            status: "failed".to_owned(),
            error: Some(error_chain(&e)),
            requests: 0,
            records: 0,
            records_new: 0,
            records_replaced: 0,
            files_written: 0,
        });
    }
    let halted = tasks.iter().any(|t| t.status == "stopped");
    let output_error = written.iter().any(|w| w.merged.is_err());
    let failed = tasks.iter().any(|t| t.status == "failed");
    let exit = if output_error {
        ExitCode::Output
    } else if halted {
        ExitCode::Resumable
    } else if failed {
        ExitCode::TasksFailed
    } else {
        ExitCode::Ok
    };
    let run = FundingRunInfo {
        started_at,
        finished_at: fmt_ms(chrono::Utc::now().timestamp_millis()),
        elapsed_ms: started.elapsed().as_millis() as u64,
        outcome: if halted && !output_error {
            "resumable".to_owned()
        } else {
            exit.name().to_owned()
        },
        exit_code: exit.code(),
        range_start: fmt_ms(range_start),
        range_end: fmt_ms(range_end),
        symbols: symbols.iter().map(ToString::to_string).collect(),
        requests: m.requests,
        weight_used: m.weight,
        request_limit: format!(
            "{}/{}M",
            request::REQUESTS_PER_WINDOW,
            request::WINDOW_MINUTES
        ),
        http_429: m.http_429,
        http_418: m.http_418,
        retries: crate::extract::retry::RetryCause::ALL
            .iter()
            .map(|c| (c.as_str().to_owned(), m.retries_for(*c)))
            .collect(),
        records_fetched: tasks.iter().map(|t| t.records).sum(),
        records_new: tasks.iter().map(|t| t.records_new).sum(),
        files_written: tasks.iter().map(|t| t.files_written).sum(),
        bytes_written: written
            .iter()
            .filter_map(|w| w.merged.as_ref().ok())
            .map(|c| c.bytes_written)
            .sum(),
        tasks,
    };
    let report = FundingReport {
        report_version: REPORT_VERSION,
        tool: ToolInfo::default(),
        dataset: store::DIR.to_owned(),
        pipeline: Some(PipelineInfo {
            name: p.name.clone(),
            hash: opts.pipeline_hash.clone().unwrap_or_default(),
        }),
        run: Some(run),
        series,
    };
    (report, exit)
}

/// Expected records, requests and weight of one symbol over `[start, end)` for `plan`: one
/// record per 8 hours, pages of 1000, at least one request.
pub fn plan_cost(start: i64, end: i64) -> (i64, u64, u64) {
    let records = (end - start).max(0) / (stats::DEFAULT_INTERVAL_HOURS * 3_600_000);
    let requests = (records.max(1) as u64).div_ceil(request::PAGE_LIMIT as u64);
    (
        records,
        requests,
        requests * u64::from(request::REQUEST_WEIGHT),
    )
}

/// Write the report atomically (no secret is written: error texts may quote the exchange).
fn write_report(path: &Path, report: &FundingReport) -> Result<(), LoadError> {
    let json = serde_json::to_string_pretty(report).map_err(|source| LoadError::Report {
        path: path.to_path_buf(),
        source,
    })?;
    let mut json = crate::config::redact(&json).into_owned().into_bytes();
    json.push(b'\n');
    crate::load::atomic::write_atomic(path, &json, |_| Ok(()), |_| false)
}

/// The statistics of every series stored under `root` (any price type and time unit), for
/// `kline-etl summary`; empty when the root holds no funding rates.
pub fn summarize(root: &Path) -> Result<Vec<SeriesStats>, StoreError> {
    crate::load::legacy::refuse_old_funding(root)?;
    let mut out = Vec::new();
    for (market, symbol) in store::stored_series(root)? {
        let mut all = BTreeMap::new();
        for f in store::files_under(&store::series_dir(root, market, &symbol))? {
            let (prices, unit) = rows::stored_types(&f)?;
            for r in rows::read_partition(&f, prices, unit)? {
                all.insert(r.funding_time, r);
            }
        }
        let records: Vec<FundingRecord> = all.into_values().collect();
        out.push(series_stats(market, &symbol, &records));
    }
    Ok(out)
}

/// The `funding_rate` part of `kline-etl status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FundingStatus {
    /// The run writing the dataset now, if any.
    pub running: Option<Owner>,
    /// The last run: its outcome and exit code, from `_kline_etl/summary.json`.
    pub last_run: Option<String>,
    /// Per stored series.
    pub series: Vec<SeriesStats>,
}

/// The status of the funding-rate dataset under `root`; `None` when there is none.
pub fn status(root: &Path) -> Result<Option<FundingStatus>, StoreError> {
    if !dataset_dir(root).is_dir() {
        return Ok(None);
    }
    let last_run = fs_err::read_to_string(summary_path(root))
        .ok()
        .and_then(|t| serde_json::from_str::<FundingReport>(&t).ok())
        .and_then(|d| {
            let name = d.pipeline.map(|p| p.name).unwrap_or_default();
            d.run.map(|r| {
                format!(
                    "{name} {} → {}: {} (exit {})",
                    r.started_at, r.finished_at, r.outcome, r.exit_code
                )
            })
        });
    Ok(Some(FundingStatus {
        running: lock::holder_file(&crate::layout::funding_lock_file(root)),
        last_run,
        series: summarize(root)?,
    }))
}

/// The status as readable text.
pub fn render_status(s: &FundingStatus) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("\nfunding_rate\n");
    match &s.running {
        Some(o) => {
            let _ = writeln!(
                out,
                "running: pid {} (pipeline `{}`) since {}",
                o.pid, o.pipeline, o.since
            );
        }
        None => out.push_str("running: no\n"),
    }
    let _ = writeln!(
        out,
        "last run: {}",
        s.last_run.as_deref().unwrap_or("none recorded")
    );
    out.push_str(&stats::render_table(&s.series));
    out
}

/// `kline-etl summary --json` for a root holding only funding rates: the statistics in the
/// report shape, without a run section.
pub fn summary_doc(series: Vec<SeriesStats>) -> FundingReport {
    FundingReport {
        report_version: REPORT_VERSION,
        tool: ToolInfo::default(),
        dataset: store::DIR.to_owned(),
        pipeline: None,
        run: None,
        series: series
            .into_iter()
            .map(|stats| SeriesReport {
                stats,
                requested_from: None,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: i64 = 86_400_000;

    #[test]
    fn nothing_stored_fetches_the_range() {
        assert_eq!(
            plan_windows((0, 10 * D), None, None, false),
            vec![(0, 10 * D)]
        );
        assert!(plan_windows((5, 5), None, None, false).is_empty());
    }

    #[test]
    fn a_nightly_run_fetches_from_the_last_stored_record_only() {
        let stored = Some((2 * D + 1, 9 * D + 3));
        // An earlier complete run asked from 0: the head is known not to exist.
        assert_eq!(
            plan_windows((0, 10 * D), stored, Some(0), false),
            vec![(9 * D + 3, 10 * D)]
        );
        // No record of that: the head is asked for once.
        assert_eq!(
            plan_windows((0, 10 * D), stored, None, false),
            vec![(0, 2 * D + 1), (9 * D + 3, 10 * D)]
        );
        // The range now starts earlier than any run asked.
        assert_eq!(
            plan_windows((-D, 10 * D), stored, Some(0), false),
            vec![(-D, 2 * D + 1), (9 * D + 3, 10 * D)]
        );
        assert_eq!(
            plan_windows((0, 10 * D), stored, Some(0), true),
            vec![(0, 10 * D)]
        );
    }

    #[test]
    fn stored_data_outside_the_range_does_not_widen_it() {
        // Everything stored is after the range: only the range itself.
        assert_eq!(
            plan_windows((0, D), Some((5 * D, 6 * D)), None, false),
            vec![(0, D)]
        );
        // Everything stored is before it: from the range start.
        assert_eq!(
            plan_windows((8 * D, 9 * D), Some((D, 2 * D)), Some(0), false),
            vec![(8 * D, 9 * D)]
        );
        // The range ends before the last stored record: only the missing head.
        assert_eq!(
            plan_windows((0, 3 * D), Some((D, 5 * D)), None, false),
            vec![(0, D)]
        );
    }
}

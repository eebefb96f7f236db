//! Running a pipeline end to end: resolve symbols and the time range against the exchange,
//! turn the data on disk into the incremental task list, drive the extractor, feed its ordered
//! pages to the loader on a dedicated thread, then write the run report (`_summary.json`,
//! `_summary.parquet`) next to the data.
//!
//! This module owns the wiring only: paging and budgets live in [`crate::extract`], typing in
//! [`crate::transform`], files in [`crate::load`], statistics in [`crate::summary`].
//!
//! # Incremental runs
//!
//! The data on disk is the state. For each symbol × interval, when the output already holds
//! candles inside the requested range, the run starts at the last stored open time (that
//! candle is fetched again and re-checked; the merge keeps files byte-identical when nothing
//! changed) instead of `range.start`. `--full-refresh` fetches the whole range. A nightly run
//! with nothing new therefore costs one small request per symbol × interval.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::config::{Dataset, Endpoint, Pipeline, SymbolSelection, SymbolSelector};
use crate::exit::ExitCode;
use crate::extract::client::ExchangeInfo;
use crate::extract::{
    ExtractConfig, ExtractEvent, Extractor, FailedWindow, KlineTask, Progress, RunOutcome,
    TaskStatus,
};
use crate::incremental::{self, Window};
use crate::load::resume::{self, Pending, Reason};
use crate::load::{DatasetWriter, LoadError, TaskKey, TaskSink, WriteOptions, state};
use crate::simulator::{SimConfig, SimHandle, Simulator};
use crate::summary::dataset::{Collector, summarize_with};
use crate::summary::report::{PipelineInfo, Report, SeriesReport, ToolInfo, render_table};
use crate::summary::table::series_parquet;
use crate::symbol::Symbol;
use crate::transform::fmt_ms;
use crate::transform::quality::QualityReport;

/// Run behaviour from the command line (the data the job produces is in the pipeline).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Fetch the whole range even where data is on disk.
    pub full_refresh: bool,
    /// Page requests in flight at once (default 8).
    pub concurrency: Option<usize>,
    /// SHA-256 of the pipeline file, for the report.
    pub pipeline_hash: Option<String>,
    /// Print the summary table on stderr at the end.
    pub print_table: bool,
    /// How long to wait for another run writing the same dataset (0: fail at once, exit 5).
    pub lock_wait: std::time::Duration,
    /// A normal run, or `kline-etl repair`.
    pub mode: RunMode,
    /// `--shard I/N`: only the series this shard owns (see [`crate::plan::Shard`]).
    pub shard: Option<crate::plan::Shard>,
    /// `--recheck-archive`: re-check archive files ingested by earlier runs for upstream
    /// replacement (otherwise a nightly run asks the archive nothing about its past).
    pub recheck_archive: bool,
}

/// What a run fetches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RunMode {
    /// The range, incrementally (what is stored is skipped), plus unfinished windows of
    /// earlier runs.
    #[default]
    Incremental,
    /// `kline-etl repair`: exactly the gaps `_summary.json` lists as failed fetches, and with
    /// `exchange_gaps` also the gaps the exchange had no data for (to re-check them).
    Repair {
        /// Also re-check `exchange_none` gaps.
        exchange_gaps: bool,
    },
}

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The pipeline asks for something this build does not do.
    #[error("{0}")]
    Unsupported(String),
    /// The built-in simulator could not start.
    #[error("cannot start the built-in simulator")]
    Simulator(#[source] crate::simulator::SimError),
    /// The exchange could not be reached or answered nonsense before any task started.
    #[error("cannot talk to the exchange at `{base_url}`: {reason}")]
    Exchange {
        /// The base URL.
        base_url: String,
        /// What went wrong.
        reason: String,
    },
    /// A symbol selector matched nothing, or too much.
    #[error("{0}")]
    Symbols(String),
    /// Writing the report failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The extractor could not start.
    #[error(transparent)]
    Extract(#[from] crate::extract::ExtractError),
    /// The object store output could not be read or written.
    #[error(transparent)]
    Remote(#[from] crate::load::remote::RemoteError),
}

impl RunError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            RunError::Unsupported(_) | RunError::Symbols(_) => ExitCode::Usage,
            RunError::Load(e) => e.exit_code(),
            RunError::Remote(e) => e.exit_code(),
            RunError::Simulator(_) => ExitCode::Internal,
            RunError::Exchange { .. } | RunError::Extract(_) => ExitCode::TasksFailed,
        }
    }
}

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

/// The `run` section of `_summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// When the run started (UTC).
    pub started_at: String,
    /// When it finished.
    pub finished_at: String,
    /// Wall time, ms.
    pub elapsed_ms: u64,
    /// `ok`, `tasks_failed`, `resumable`, `output`, ...
    pub outcome: String,
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

/// What a run produced.
#[derive(Debug)]
pub struct RunResult {
    /// The exit code the process should end with.
    pub exit: ExitCode,
    /// The report written to `_summary.json`.
    pub report: Report<RunInfo>,
    /// Where it was written.
    pub summary_path: PathBuf,
}

/// The default number of page requests in flight.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Run a validated pipeline. `cancel` set to `true` stops it cleanly (resumable).
pub async fn run_pipeline(
    p: &Pipeline,
    opts: &RunOptions,
    progress: Arc<dyn Progress>,
    cancel: watch::Receiver<bool>,
) -> Result<RunResult, RunError> {
    let started = Instant::now();
    let started_at = fmt_ms(chrono::Utc::now().timestamp_millis());

    // The simulator, when the pipeline asks for it, lives exactly as long as the run.
    let (sim, base_url) = endpoint(p).await?;
    if sim.is_some() {
        tracing::info!(url = %base_url, "started the built-in simulator");
    }
    let result = run_against(p, opts, &base_url, progress, cancel, started, started_at).await;
    if let Some(h) = sim {
        h.shutdown().await;
    }
    result
}

async fn run_against(
    p: &Pipeline,
    opts: &RunOptions,
    base_url: &str,
    progress: Arc<dyn Progress>,
    cancel: watch::Receiver<bool>,
    started: Instant,
    started_at: String,
) -> Result<RunResult, RunError> {
    // Snapshot datasets (ticker_price, depth) have their own orchestration.
    if p.dataset != Dataset::Klines {
        return crate::snapshot::run_snapshot(
            p, opts, base_url, progress, cancel, started, started_at,
        )
        .await;
    }
    // One connection: the exchange's clock and exchangeInfo, read through the shared weight
    // budget, serve range resolution, symbol selection and the extraction alike.
    let mut cfg = ExtractConfig::from_source(&p.source, base_url, p.transform);
    cfg.concurrency = opts.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    cfg.kline_family = p.kline_family;
    let session = Extractor::new(cfg)
        .with_progress(Arc::clone(&progress))
        .connect()
        .await
        .map_err(|e| RunError::Exchange {
            base_url: base_url.to_owned(),
            reason: error_chain(&e),
        })?;
    let now = session.now_ms();
    let symbols = symbols_of(p, &session, base_url)?;
    let (range_start, range_end) = p.range.resolve(now);
    // `output.path`, or a futures kline family's own root under it.
    let root = p.kline_root();

    // One writer per dataset: taken before the state on disk is read.
    let lock = {
        let (root, name, wait) = (root.clone(), p.name.clone(), opts.lock_wait);
        let shard = opts.shard;
        tokio::task::spawn_blocking(move || crate::load::lock::acquire(&root, shard, &name, wait))
            .await
            .map_err(|e| RunError::Load(LoadError::Io(std::io::Error::other(e.to_string()))))??
    };
    // An object store output: the run works on a local mirror brought up to date first.
    let remote = match &p.output.remote {
        Some(url) => {
            let remote = crate::load::remote::open(url, &p.output.path)?;
            let pulled = remote.pull().await?;
            tracing::info!(store = %url, files = pulled.files, bytes = pulled.bytes, "mirrored the object store");
            Some(remote)
        }
        None => None,
    };

    let series: Vec<TaskKey> = symbols
        .iter()
        .flat_map(|symbol| {
            p.intervals.iter().map(|interval| TaskKey {
                market: p.source.market,
                symbol: symbol.clone(),
                interval: *interval,
            })
        })
        .filter(|k| {
            opts.shard
                .is_none_or(|s| s.owns(k.market, k.symbol.as_str(), k.interval))
        })
        .collect();
    let pending_before = resume::read(&root, opts.shard);
    resume::log_outside_range(&pending_before, &series, (range_start, range_end));
    let (mut tasks, covered) = match opts.mode {
        RunMode::Incremental => incremental_tasks(
            &root,
            &series,
            &pending_before,
            (range_start, range_end),
            opts.full_refresh,
        )?,
        RunMode::Repair { exchange_gaps } => {
            repair_tasks(&root, &series, &pending_before, exchange_gaps)?
        }
    };
    tracing::info!(
        tasks = tasks.len(),
        start = %fmt_ms(range_start),
        end = %fmt_ms(range_end),
        "planned"
    );
    // Until the run reports back, every planned window may be incomplete on disk.
    let mut in_flight = pending_before.clone();
    in_flight.extend(tasks.iter().map(|t| {
        Pending::new(
            &TaskKey {
                market: t.market,
                symbol: t.symbol.clone(),
                interval: t.interval,
            },
            (t.start_ms, t.end_ms),
            Reason::InFlight,
        )
    }));
    if !tasks.is_empty() {
        resume::write(&root, opts.shard, &in_flight)?;
    }

    progress.tasks_planned(
        &tasks
            .iter()
            .map(|t| format!("{} {}", t.symbol, t.interval))
            .collect::<Vec<_>>(),
    );
    let (tx, rx) = mpsc::channel::<ExtractEvent>(64);

    // Encoding is CPU work: it runs on its own thread, fed through a bounded channel.
    // The summary's statistics of every partition written come from the rows in memory.
    let collector = Arc::new(
        Collector::new(root.clone())
            .with_signed_prices(p.kline_family == crate::config::KlineFamily::PremiumIndex),
    );
    let writer = DatasetWriter::new(root.clone(), WriteOptions::from_pipeline(p))
        .with_family(p.kline_family)
        .with_observer(collector.clone());
    let keys: Vec<TaskKey> = tasks
        .iter()
        .map(|t| TaskKey {
            market: t.market,
            symbol: t.symbol.clone(),
            interval: t.interval,
        })
        .collect();
    let loader = std::thread::Builder::new()
        .name("kline-etl-load".into())
        .spawn(move || load_loop(rx, &writer, &keys))
        .map_err(|e| RunError::Load(LoadError::Io(e)))?;

    let task_list = tasks.clone();
    let extract_started = Instant::now();
    // Archive-first history (issue 9): each task's archive part (data.binance.vision files)
    // feeds the loader first, then its REST remainder starts where the archive part ended.
    let archive = crate::extract::archive::ArchiveSource::from_pipeline(p, base_url);
    let mut archive_summary = match &archive {
        Some(a) => Some(
            a.run_tasks(
                &mut tasks,
                if opts.recheck_archive {
                    range_start
                } else {
                    i64::MAX
                },
                now,
                &tx,
                progress.as_ref(),
                &cancel,
            )
            .await,
        ),
        None => None,
    };
    let extracted = session.run(tasks, tx, cancel).await;
    let extract_ms = extract_started.elapsed().as_millis() as u64;
    let tail_started = Instant::now();
    let (mut outcomes, loaded) = loader.join().unwrap_or_else(|_| {
        (
            HashMap::new(),
            HashMap::from([(usize::MAX, Err("the loader thread panicked".into()))]),
        )
    });
    let load_tail_ms = tail_started.elapsed().as_millis() as u64;
    let extracted = extracted?;

    // Per task: what the extractor and the loader say.
    let mut reports = Vec::with_capacity(task_list.len());
    let mut any_load_error: Option<ExitCode> = None;
    let (mut ok, mut failed, mut stopped) = (0, 0, 0);
    let mut done: BTreeMap<TaskKey, Vec<Window>> = covered;
    let mut unfinished: Vec<Pending> = Vec::new();
    for (i, t) in task_list.iter().enumerate() {
        let ex = outcomes.remove(&i);
        let ld = loaded.get(&i);
        let key = TaskKey {
            market: t.market,
            symbol: t.symbol.clone(),
            interval: t.interval,
        };
        let mut r = TaskReport {
            market: t.market.as_str().to_owned(),
            symbol: t.symbol.to_string(),
            interval: t.interval.as_str().to_owned(),
            start: fmt_ms(t.start_ms),
            end: fmt_ms(t.end_ms),
            status: "complete".into(),
            error: None,
            resume_from: None,
            failed_windows: Vec::new(),
            requests: 0,
            weight: 0,
            rows: 0,
            rows_held_back: 0,
            rows_dropped: 0,
            files_written: 0,
            rows_new: 0,
            rows_replaced: 0,
            quality: QualityReport::default(),
        };
        if let Some(o) = &ex {
            r.requests = o.metrics.requests;
            r.weight = o.metrics.weight;
            r.rows = o.metrics.rows;
            r.rows_held_back = o.metrics.held_back;
            r.rows_dropped = o.metrics.dropped();
            r.failed_windows.clone_from(&o.failed_windows);
            match &o.status {
                TaskStatus::Complete => {}
                TaskStatus::Failed(e) => {
                    r.status = "failed".into();
                    r.error = Some(e.to_string());
                }
                TaskStatus::Stopped { resume_from } => {
                    r.status = "stopped".into();
                    r.resume_from = Some(fmt_ms(*resume_from));
                }
            }
            for w in &o.failed_windows {
                unfinished.push(Pending::new(&key, (w.start, w.end), w.cause.into()));
            }
        }
        match ld {
            Some(Ok(out)) => {
                r.quality = out.quality.clone();
                for part in &out.partitions {
                    r.rows_new += part.rows_new;
                    r.rows_replaced += part.rows_replaced;
                    if part.rewritten {
                        r.files_written += 1;
                    }
                }
            }
            Some(Err(e)) => {
                r.status = "failed".into();
                r.error = Some(e.clone());
                any_load_error.get_or_insert(ExitCode::Output);
            }
            None => {}
        }
        // Malformed rows the extractor did not deliver are findings too.
        if let Some(o) = &ex {
            r.quality.merge(&o.quality);
        }
        let window = (t.start_ms, t.end_ms);
        match (r.status.as_str(), ex.as_ref().map(|o| &o.status)) {
            ("complete", _) => {
                ok += 1;
                done.entry(key).or_default().push(window);
            }
            ("failed", _) => {
                failed += 1;
                unfinished.push(Pending::new(&key, window, Reason::TaskFailed));
            }
            (_, Some(TaskStatus::Stopped { resume_from })) => {
                stopped += 1;
                done.entry(key.clone())
                    .or_default()
                    .push((t.start_ms, *resume_from));
                unfinished.push(Pending::new(
                    &key,
                    (*resume_from, t.end_ms),
                    Reason::Stopped,
                ));
            }
            _ => {
                stopped += 1;
                unfinished.push(Pending::new(&key, window, Reason::Stopped));
            }
        }
        reports.push(r);
    }
    if let Some(Err(e)) = loaded.get(&usize::MAX) {
        tracing::error!("{e}");
        any_load_error = Some(ExitCode::Internal);
    }
    // The archive manifest records files only once their rows are committed; short files
    // get REST's row count for their window.
    if let (Some(a), Some(summary), None) = (&archive, &mut archive_summary, any_load_error)
        && let Err(e) = a.finish(summary)
    {
        tracing::error!("{}", error_chain(&e));
        any_load_error = Some(e.exit_code());
    }

    // Statistics of the data on disk (the source of truth), with gaps inside windows we
    // failed to fetch marked as such.
    let summary_started = Instant::now();
    let root_for_summary = root.clone();
    let mut series: Vec<SeriesReport> =
        tokio::task::spawn_blocking(move || summarize_with(&root_for_summary, Some(&collector)))
            .await
            .map_err(|e| RunError::Load(LoadError::Io(std::io::Error::other(e.to_string()))))??;
    let pending_after = resume::carry_over(&pending_before, &done, unfinished);
    resume::write(&root, opts.shard, &pending_after)?;
    crate::summary::dataset::attribute_pending(&mut series, &pending_after);
    let summary_ms = summary_started.elapsed().as_millis() as u64;

    let mut exit = match (extracted.outcome, any_load_error) {
        (_, Some(code)) => code,
        (o, None) => o.exit_code(),
    };
    if exit == ExitCode::Ok
        && archive_summary
            .as_ref()
            .is_some_and(crate::extract::archive::ArchiveSummary::left_gaps)
    {
        exit = ExitCode::TasksFailed; // `mode: archive` and a file could not be used
    }
    let m = &extracted.metrics;
    let info = RunInfo {
        started_at,
        finished_at: fmt_ms(chrono::Utc::now().timestamp_millis()),
        elapsed_ms: started.elapsed().as_millis() as u64,
        outcome: match extracted.outcome {
            RunOutcome::BannedResumable { .. } => "banned_resumable".to_owned(),
            RunOutcome::Cancelled => "cancelled".to_owned(),
            _ => exit.name().to_owned(),
        },
        exit_code: exit.code(),
        range_start: fmt_ms(range_start),
        range_end: fmt_ms(range_end),
        symbols: symbols.iter().map(ToString::to_string).collect(),
        tasks_total: task_list.len(),
        tasks_ok: ok,
        tasks_failed: failed,
        tasks_stopped: stopped,
        requests: m.requests,
        weight_used: m.weight,
        weight_limit: extracted.weight_limit.limit,
        weight_window: format!(
            "{}{}",
            extracted.weight_limit.num, extracted.weight_limit.unit
        ),
        weight_share: extracted.weight_share,
        budget_utilisation: {
            let window = extracted.weight_limit.window_ms().max(1) as u64;
            let windows = extract_ms.div_ceil(window).max(1);
            m.weight as f64 / (f64::from(extracted.weight_limit.limit.max(1)) * windows as f64)
        },
        retries: crate::extract::retry::RetryCause::ALL
            .iter()
            .map(|c| (c.as_str().to_owned(), m.retries_for(*c)))
            .collect(),
        http_429: m.http_429,
        http_418: m.http_418,
        rows_fetched: m.rows,
        rows_held_back: m.held_back,
        rows_new: reports.iter().map(|r| r.rows_new).sum(),
        files_written: reports.iter().map(|r| r.files_written).sum(),
        bytes_written: loaded
            .values()
            .filter_map(|r| r.as_ref().ok())
            .flat_map(|o| o.partitions.iter())
            .filter(|w| w.rewritten)
            .map(|w| w.bytes)
            .sum(),
        extract_ms,
        load_tail_ms,
        summary_ms,
        tasks: reports,
        archive: archive_summary,
    };
    let report = Report {
        report_version: crate::summary::report::REPORT_VERSION,
        tool: ToolInfo::default(),
        pipeline: Some(PipelineInfo {
            name: p.name.clone(),
            hash: opts.pipeline_hash.clone().unwrap_or_default(),
        }),
        run: Some(info),
        series,
    };
    let summary_path = write_report(&root, opts.shard, &report)?;
    if let Some(remote) = &remote {
        let pushed = remote.push().await?;
        tracing::info!(store = %remote.url(), files = pushed.files, bytes = pushed.bytes, "uploaded to the object store");
    }
    drop(lock);
    if opts.print_table {
        eprint!("{}", render_table(&report.series));
    }
    Ok(RunResult {
        exit,
        report,
        summary_path,
    })
}

/// Write `_summary.json` and `_summary.parquet` under `<root>/klines/`, atomically (with
/// `--shard I/N`: `_summary.shard-I-of-N.json` and `.parquet`, one pair per shard).
pub fn write_report<R: Serialize>(
    root: &Path,
    shard: Option<crate::plan::Shard>,
    report: &Report<R>,
) -> Result<PathBuf, LoadError> {
    let dir = root.join("klines");
    let stem = shard.map_or_else(|| "_summary".to_owned(), |s| format!("_summary.{s}"));
    let json_path = dir.join(format!("{stem}.json"));
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| LoadError::Io(std::io::Error::other(e)))?;
    // Error texts quote the exchange, which may echo what it was sent: no secret is written.
    let mut json = crate::config::redact(&json).into_owned().into_bytes();
    json.push(b'\n');
    crate::load::atomic::write_atomic(&json_path, &json, |_| Ok(()), |_| false)?;
    let pq_path = dir.join(format!("{stem}.parquet"));
    let pq = series_parquet(&report.series).map_err(|source| LoadError::Encode {
        path: pq_path.clone(),
        source,
    })?;
    crate::load::atomic::write_atomic(&pq_path, &pq, |_| Ok(()), |_| false)?;
    Ok(json_path)
}

/// What the loader wrote per task (by task index).
type LoadResults = HashMap<usize, Result<crate::load::TaskOutcome, String>>;
/// How the extractor said each task ended (by task index).
type ExtractResults = HashMap<usize, crate::extract::TaskOutcome>;

/// The loader thread: one [`TaskSink`] per task, fed in order.
fn load_loop(
    mut rx: mpsc::Receiver<ExtractEvent>,
    writer: &DatasetWriter,
    keys: &[TaskKey],
) -> (ExtractResults, LoadResults) {
    let mut sinks: HashMap<usize, TaskSink> = HashMap::new();
    let mut results: LoadResults = HashMap::new();
    let mut extracted: ExtractResults = HashMap::new();
    while let Some(ev) = rx.blocking_recv() {
        match ev {
            ExtractEvent::Rows { task, rows } => {
                if results.contains_key(&task.0) {
                    continue; // this task's load already failed; drop its rows
                }
                let sink = sinks
                    .entry(task.0)
                    .or_insert_with(|| TaskSink::new(writer.clone(), keys[task.0].clone()));
                if let Err(e) = sink.push(rows) {
                    tracing::error!(task = %keys[task.0].symbol, "{}", error_chain(&e));
                    sinks.remove(&task.0);
                    results.insert(task.0, Err(error_chain(&e)));
                }
            }
            ExtractEvent::TaskDone { task, outcome } => {
                extracted.insert(task.0, outcome);
                if let Some(sink) = sinks.remove(&task.0) {
                    let r = sink.finish().map_err(|e| error_chain(&e));
                    if let Err(e) = &r {
                        tracing::error!(task = %keys[task.0].symbol, "{e}");
                    }
                    results.insert(task.0, r);
                }
            }
        }
    }
    // A channel closed without TaskDone (extractor error): still commit what arrived, since
    // every partition written is complete and consistent on its own.
    for (task, sink) in sinks {
        results.insert(task, sink.finish().map_err(|e| error_chain(&e)));
    }
    (extracted, results)
}

fn parse_utc(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The tasks of a run, and per series the stretches of earlier unfinished windows found
/// already stored (they are done, the window resumes after them).
type Planned = (Vec<KlineTask>, BTreeMap<TaskKey, Vec<Window>>);

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
            incremental::resume_point(w, last)
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
/// the unfinished windows of earlier runs from where they stopped.
fn incremental_tasks(
    root: &Path,
    series: &[TaskKey],
    pending: &[Pending],
    requested: Window,
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
        for w in incremental::windows_to_fetch(requested, stored, &resumed, full_refresh) {
            tasks.push(task_of(key, w));
        }
    }
    Ok((tasks, covered))
}

/// Tasks of `kline-etl repair`: the windows earlier runs left unfinished (failed fetches,
/// failed or stopped tasks, runs that were killed) and the gaps the last `_summary.json`
/// lists as failed fetches (with `exchange_gaps`, also the exchange's own gaps) of the
/// pipeline's series; never the range's head or tail.
fn repair_tasks(
    root: &Path,
    series: &[TaskKey],
    pending: &[Pending],
    exchange_gaps: bool,
) -> Result<Planned, RunError> {
    let path = root.join("klines").join("_summary.json");
    let doc: RepairSummary = match fs_err::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            RunError::Symbols(format!(
                "`{}` is not a kline-etl summary ({e}); run the pipeline to rewrite it",
                path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !pending.is_empty() => {
            RepairSummary { series: Vec::new() }
        }
        Err(e) => {
            return Err(RunError::Symbols(format!(
                "`repair` works from the last run's summary, which cannot be read ({e}); run the pipeline first"
            )));
        }
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
                .filter_map(|g| Some((parse_utc(&g.start)?, parse_utc(&g.end)?))),
        );
    }
    let mut tasks = Vec::new();
    let mut covered = BTreeMap::new();
    for key in series {
        let mut windows = resume_pending(root, key, pending, &mut covered)?;
        windows.extend(gaps.remove(key).unwrap_or_default());
        for w in incremental::coalesce(windows) {
            tasks.push(task_of(key, w));
        }
    }
    Ok((tasks, covered))
}

/// The part of `_summary.json` that `repair` reads.
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

/// The pipeline's symbols: its list, or its selector resolved against the session's
/// `exchangeInfo`.
fn symbols_of(
    p: &Pipeline,
    session: &crate::extract::Session,
    base_url: &str,
) -> Result<Vec<Symbol>, RunError> {
    match &p.symbols {
        SymbolSelection::List(l) => Ok(l.clone()),
        SymbolSelection::Selector(sel) => {
            let info = session.exchange_info().ok_or_else(|| RunError::Exchange {
                base_url: base_url.to_owned(),
                reason: "exchangeInfo is unavailable, so the symbol selector cannot be resolved"
                    .to_owned(),
            })?;
            select_symbols(info, sel)
        }
    }
}

/// The exchange base URL a pipeline talks to, starting the built-in simulator when the
/// pipeline asks for it (the caller shuts the handle down when done).
async fn endpoint(p: &Pipeline) -> Result<(Option<SimHandle>, String), RunError> {
    Ok(match &p.source.endpoint {
        Endpoint::Url(u) => (None, u.clone()),
        Endpoint::Simulator(settings) => {
            let h = Simulator::start(SimConfig::from_settings(settings, p.source.market))
                .await
                .map_err(RunError::Simulator)?;
            let url = h.base_url();
            (Some(h), url)
        }
    })
}

/// Resolve the pipeline's symbols against the exchange (starting the built-in simulator when
/// the pipeline uses it) without fetching anything else: `kline-etl plan --resolve`.
pub async fn resolve_symbols(p: &Pipeline) -> Result<Vec<Symbol>, RunError> {
    let (sim, base_url) = endpoint(p).await?;
    let cfg = ExtractConfig::from_source(&p.source, &base_url, p.transform);
    let result = match Extractor::new(cfg).connect().await {
        Ok(session) => symbols_of(p, &session, &base_url),
        Err(e) => Err(RunError::Exchange {
            base_url: base_url.clone(),
            reason: error_chain(&e),
        }),
    };
    if let Some(h) = sim {
        h.shutdown().await;
    }
    result
}

/// Resolve a selector against `exchangeInfo`: quote assets, status, regex, max.
pub fn select_symbols(info: &ExchangeInfo, sel: &SymbolSelector) -> Result<Vec<Symbol>, RunError> {
    let re = sel
        .regex
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| RunError::Symbols(format!("invalid symbol regex: {e}")))?;
    let mut out = Vec::new();
    for s in &info.symbols {
        if !sel.quote.is_empty() && !sel.quote.contains(&s.quote_asset) {
            continue;
        }
        if !sel.include_inactive && s.trading_status() != Some("TRADING") {
            continue;
        }
        if let Some(re) = &re
            && !re.is_match(&s.symbol)
        {
            continue;
        }
        match s.symbol.parse::<Symbol>() {
            Ok(sym) => out.push(sym),
            Err(e) => tracing::warn!("skipping exchange symbol: {e}"),
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(RunError::Symbols(
            "the symbol selector matched no symbol on the exchange; widen `quote`/`regex` or set `include_inactive: true`".into(),
        ));
    }
    if let Some(max) = sel.max
        && out.len() > max
    {
        return Err(RunError::Symbols(format!(
            "the symbol selector matched {} symbols, more than `max: {max}`; narrow it or raise `max`",
            out.len()
        )));
    }
    Ok(out)
}

/// `error: a: b: c` style text of an error and its causes, each once.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

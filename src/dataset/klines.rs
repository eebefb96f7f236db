//! The klines dataset (and every futures kline family): candles of market × symbol ×
//! interval, paged from `/klines` (or the family's endpoint), archive files first where the
//! pipeline allows, written as hive-partitioned Parquet under `<root>/klines/`.
//!
//! A kline run, in order: connect; resolve the symbols and the range against the exchange's
//! clock; take the dataset lock (and mirror an object store); plan the windows from the data
//! on disk and the resume file ([`crate::plan::incremental`], the planner `plan` and
//! `--dry-run` use too); mark them in flight in the resume file; extract (archive part, then
//! REST) into the loader thread; account for every task; recompute the series statistics
//! from the files; carry unfinished windows over; write `_kline_etl/summary.json`.
//!
//! The pieces each step uses: requests and paging in [`crate::extract`] (`pager`,
//! `paging`, `archive`), rows and schema in [`crate::transform`] (`parse`, `schema`,
//! `quality`), partitioning and the merge key (open time) in [`crate::load`] (`partition`,
//! `merge`), statistics in [`crate::summary`] (`series`, `dataset`).
//!
//! # Incremental runs
//!
//! The data on disk is the state. For each symbol × interval, when the output already holds
//! candles inside the requested range, the run starts at the last stored open time (that
//! candle is fetched again and re-checked; the merge keeps files byte-identical when nothing
//! changed) instead of `range.start`. `--full-refresh` fetches the whole range. A nightly run
//! with nothing new therefore costs one small request per symbol × interval.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::error::error_chain;
use crate::exit::ExitCode;
use crate::extract::archive::{ArchiveSource, ArchiveSummary};
use crate::extract::{
    ExtractEvent, FailedWindow, KlineTask, RunOutcome, RunReport, TaskStatus, WindowCause,
};
use crate::load::resume::{self, Pending, Reason};
use crate::load::{DatasetWriter, TaskKey, WriteOptions};
use crate::plan::incremental::{Planned, incremental_tasks, repair_tasks};
use crate::plan::kline_series;
use crate::plan::symbols::symbols_of;
use crate::run::loader::{self, ExtractResults, LoadResults};
use crate::run::report::retries_by_cause;
use crate::run::{
    Output, RunContext, RunError, RunInfo, RunMode, RunOptions, RunResult, TaskReport, blocking,
    write_report,
};
use crate::summary::dataset::{Collector, attribute_pending, summarize_with};
use crate::summary::report::{PipelineInfo, REPORT_VERSION, Report, ToolInfo, render_table};
use crate::time::fmt_ms;
use crate::transform::quality::QualityReport;
use crate::window::Window;

/// Run a kline pipeline.
pub async fn run(ctx: RunContext<'_>) -> Result<RunResult, RunError> {
    let (p, opts) = (ctx.pipeline, ctx.opts);
    // A layout-1 dataset is never extended (nor asked about over the network): exit 4, naming
    // `kline-etl migrate`.
    crate::load::legacy::refuse_old_klines(&crate::layout::kline_root(p))?;
    let session = ctx.connect(ctx.extract_config()).await?;
    let now = session.now_ms();
    let symbols = symbols_of(p, &session)?;
    let range = p.range.resolve(now);
    // `output.path`, or a futures kline family's own root under it.
    let root = crate::layout::kline_root(p);
    let output = Output::open(p, &root, opts).await?;
    let table = Output::table(p, &crate::layout::klines_dir(&root), &table_name(p))?;

    let series = kline_series(p, &symbols, opts.shard);
    let pending_before = resume::read(&root, opts.shard);
    resume::log_outside_range(&pending_before, &series, range);
    let requested = |iv| (p.range.start_for(iv, range.0), range.1);
    let (mut tasks, covered) = plan_tasks(&root, &series, &pending_before, &requested, opts)?;
    tracing::info!(
        series = series.len(),
        windows = tasks.len(),
        start = %fmt_ms(range.0),
        end = %fmt_ms(range.1),
        "planned"
    );
    mark_in_flight(&root, opts, &pending_before, &tasks)?;
    ctx.progress
        .tasks_planned(&crate::progress::model::plan_tasks(&tasks, now));

    // Encoding is CPU work: it runs on the loader thread and its encoder threads, fed
    // through a bounded channel.
    // The summary's statistics of every partition written come from the rows in memory.
    let (tx, rx) = mpsc::channel::<ExtractEvent>(16);
    let collector = Arc::new(
        Collector::new(root.clone())
            .with_signed_prices(p.kline_family == crate::config::KlineFamily::PremiumIndex),
    );
    let writer = writer_for(p, &root, collector.clone(), table.clone());
    let handle = loader::spawn(rx, writer, tasks.iter().map(key_of).collect())
        .map_err(|e| RunError::Load(e.into()))?;

    let task_list = tasks.clone();
    let extract_started = Instant::now();
    // Archive-first history: each task's archive part (data.binance.vision files) feeds the
    // loader first, then its REST remainder starts where the archive part ended.
    let archive = ArchiveSource::from_pipeline(p, ctx.base_url).map(|a| a.with_shard(opts.shard));
    let mut archive_summary = match &archive {
        Some(a) => {
            let recheck_before = if opts.recheck_archive {
                range.0
            } else {
                i64::MAX
            };
            let progress = ctx.progress.as_ref();
            Some(
                a.run_tasks(&mut tasks, recheck_before, now, &tx, progress, &ctx.cancel)
                    .await,
            )
        }
        None => None,
    };
    let extracted = session.run(tasks, tx, ctx.cancel.clone()).await;
    let extract_ms = extract_started.elapsed().as_millis() as u64;
    let tail_started = Instant::now();
    let (outcomes, loaded) = loader::join(handle)?;
    let load_tail_ms = tail_started.elapsed().as_millis() as u64;
    let extracted = extracted?;
    // Every file the loader wrote is durable: one Delta commit holds them all.
    let committed = output.commit(table.as_deref()).await?;

    let mut tally = Tally::new(covered, pending_before.clone());
    let reports = tally.tasks(&task_list, outcomes, &loaded);
    // The archive manifest records files only once their rows are committed; short files
    // get REST's row count for their window.
    if let (Some(a), Some(summary), None) = (&archive, &mut archive_summary, tally.load_error)
        && let Err(e) = a.finish(summary)
    {
        tracing::error!("{}", error_chain(&e));
        tally.load_error = Some(e.exit_code());
    }

    // Statistics of the data on disk (the source of truth), with gaps inside windows we
    // failed to fetch marked as such.
    let summary_started = Instant::now();
    let root_for_summary = root.clone();
    let mut series_reports = blocking("summary", move || {
        summarize_with(&root_for_summary, Some(&collector))
    })
    .await??;
    let pending_after = resume::carry_over(&pending_before, &tally.done, tally.unfinished);
    resume::write(&root, opts.shard, &pending_after)?;
    attribute_pending(&mut series_reports, &pending_after);
    let summary_ms = summary_started.elapsed().as_millis() as u64;

    let exit = exit_code(&extracted, tally.load_error, archive_summary.as_ref());
    let info = RunInfo {
        started_at: ctx.started_at.clone(),
        finished_at: fmt_ms(chrono::Utc::now().timestamp_millis()),
        elapsed_ms: ctx.started.elapsed().as_millis() as u64,
        outcome: exit.name().to_owned(),
        stopped_by: stopped_by(extracted.outcome),
        exit_code: exit.code(),
        range_start: fmt_ms(range.0),
        range_end: fmt_ms(range.1),
        symbols: symbols.iter().map(ToString::to_string).collect(),
        tasks_total: task_list.len(),
        tasks_ok: tally.ok,
        tasks_failed: tally.failed,
        tasks_stopped: tally.stopped,
        rows_new: reports.iter().map(|r| r.rows_new).sum(),
        files_written: reports.iter().map(|r| r.files_written).sum(),
        bytes_written: bytes_written(&loaded),
        delta_version: committed.map(|c| c.version),
        extract_ms,
        load_tail_ms,
        summary_ms,
        tasks: reports,
        archive: archive_summary,
        ..exchange_figures(&extracted, extract_ms)
    };
    let report = Report {
        report_version: REPORT_VERSION,
        tool: ToolInfo::default(),
        pipeline: Some(PipelineInfo {
            name: p.name.clone(),
            hash: opts.pipeline_hash.clone().unwrap_or_default(),
        }),
        run: Some(info),
        series: series_reports,
    };
    let summary_path = write_report(&root, opts.shard, &report)?;
    output.close().await?;
    Ok(RunResult {
        exit,
        summary_path,
        table: render_table(&report.series),
    })
}

/// The run's partition writer: the family's columns, the summary's collector as its observer,
/// and with `output.format: delta` the table its files are staged in.
fn writer_for(
    p: &crate::config::Pipeline,
    root: &Path,
    collector: Arc<Collector>,
    table: Option<Arc<crate::load::delta::Table>>,
) -> DatasetWriter {
    let writer = DatasetWriter::new(root.to_owned(), WriteOptions::from_pipeline(p))
        .with_family(p.kline_family)
        .with_observer(collector);
    match table {
        Some(t) => writer.with_table(t),
        None => writer,
    }
}

/// The name of a kline table in its Delta metadata: `klines`, or the kline family's.
fn table_name(p: &crate::config::Pipeline) -> String {
    match p.kline_family {
        crate::config::KlineFamily::Trades => "klines".to_owned(),
        other => format!("{}_klines", other.as_str()),
    }
}

/// The windows a run fetches, from the data on disk and the resume file: the one planner
/// behind `run`, `run --dry-run` and `plan`.
pub fn plan_tasks(
    root: &Path,
    series: &[TaskKey],
    pending: &[Pending],
    requested: &dyn Fn(crate::interval::Interval) -> Window,
    opts: &RunOptions,
) -> Result<Planned, RunError> {
    Ok(match opts.mode {
        RunMode::Incremental => {
            incremental_tasks(root, series, pending, requested, opts.full_refresh)?
        }
        RunMode::Repair { exchange_gaps } => repair_tasks(root, series, pending, exchange_gaps)?,
    })
}

/// Until the run reports back, every planned window may be incomplete on disk: a run killed
/// now resumes them.
fn mark_in_flight(
    root: &Path,
    opts: &RunOptions,
    pending_before: &[Pending],
    tasks: &[KlineTask],
) -> Result<(), RunError> {
    if tasks.is_empty() {
        return Ok(());
    }
    let mut in_flight = pending_before.to_vec();
    in_flight.extend(
        tasks
            .iter()
            .map(|t| Pending::new(&key_of(t), (t.start_ms, t.end_ms), Reason::InFlight)),
    );
    resume::write(root, opts.shard, &in_flight)?;
    Ok(())
}

fn key_of(t: &KlineTask) -> TaskKey {
    TaskKey {
        market: t.market,
        symbol: t.symbol.clone(),
        interval: t.interval,
    }
}

/// Per task, what the extractor and the loader said, folded into the run's counts, the
/// windows now done and the windows left for the next run.
struct Tally {
    ok: usize,
    failed: usize,
    stopped: usize,
    done: BTreeMap<TaskKey, Vec<Window>>,
    unfinished: Vec<Pending>,
    load_error: Option<ExitCode>,
    /// The windows pending before the run (an `empty_reply` seen again is confirmed).
    before: Vec<Pending>,
}

impl Tally {
    fn new(covered: BTreeMap<TaskKey, Vec<Window>>, before: Vec<Pending>) -> Tally {
        Tally {
            before,
            ok: 0,
            failed: 0,
            stopped: 0,
            done: covered,
            unfinished: Vec::new(),
            load_error: None,
        }
    }

    /// The report line of every task, counting each as ok, failed or stopped.
    fn tasks(
        &mut self,
        tasks: &[KlineTask],
        mut outcomes: ExtractResults,
        loaded: &LoadResults,
    ) -> Vec<TaskReport> {
        tasks
            .iter()
            .enumerate()
            .map(|(i, t)| self.task(t, outcomes.remove(&i).as_ref(), loaded.get(&i)))
            .collect()
    }

    fn task(
        &mut self,
        t: &KlineTask,
        ex: Option<&crate::extract::TaskOutcome>,
        ld: Option<&Result<crate::load::TaskOutcome, crate::load::LoadError>>,
    ) -> TaskReport {
        let key = key_of(t);
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
        if let Some(o) = ex {
            r.requests = o.metrics.requests;
            r.weight = o.metrics.weight;
            r.rows = o.metrics.rows;
            r.rows_held_back = o.metrics.held_back;
            r.rows_dropped = o.metrics.dropped();
            r.failed_windows = self.failed_windows(&key, &o.failed_windows);
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
            for w in &r.failed_windows {
                self.unfinished
                    .push(Pending::new(&key, (w.start, w.end), w.cause.into()));
            }
        }
        match ld {
            Some(Ok(out)) => {
                r.quality = out.quality.clone();
                for part in &out.partitions {
                    r.rows_new += part.rows_new;
                    r.rows_replaced += part.rows_replaced;
                    r.files_written += u64::from(part.rewritten);
                }
            }
            Some(Err(e)) => {
                r.status = "failed".into();
                r.error = Some(error_chain(e));
                // A quality failure (`on_violation: fail`) fails the task (exit 1); an output
                // error (exit 4) outranks it.
                let code = e.exit_code();
                if self.load_error != Some(ExitCode::Output) {
                    self.load_error = Some(code);
                }
            }
            None => {}
        }
        // Malformed rows the extractor did not deliver are findings too.
        if let Some(o) = ex {
            r.quality.merge(&o.quality);
        }
        self.count(&key, t, &r.status, ex.map(|o| &o.status));
        r
    }

    /// A task's failed windows as the report and the resume file keep them: an empty reply
    /// seen again where an earlier run saw one is the exchange's own gap
    /// ([`resume::settle_empty_reply`]): logged, no longer a failed window.
    fn failed_windows(&self, key: &TaskKey, windows: &[FailedWindow]) -> Vec<FailedWindow> {
        let mut out = Vec::with_capacity(windows.len());
        for w in windows {
            if w.cause != WindowCause::EmptyReply {
                out.push(w.clone());
                continue;
            }
            let (suspect, confirmed) =
                resume::settle_empty_reply(&self.before, key, (w.start, w.end));
            for (start, end) in confirmed {
                tracing::warn!(
                    market = %key.market,
                    symbol = %key.symbol,
                    interval = %key.interval,
                    start = %fmt_ms(start),
                    end = %fmt_ms(end),
                    "the exchange answered this window empty again, as in an earlier run: confirmed as its own gap (`exchange_none`), not fetched again (`kline-etl repair --exchange-gaps` does)"
                );
            }
            out.extend(suspect.into_iter().map(|(start, end)| FailedWindow {
                start,
                end,
                ..w.clone()
            }));
        }
        out
    }

    fn count(&mut self, key: &TaskKey, t: &KlineTask, status: &str, ex: Option<&TaskStatus>) {
        let window = (t.start_ms, t.end_ms);
        match (status, ex) {
            ("complete", _) => {
                self.ok += 1;
                self.done.entry(key.clone()).or_default().push(window);
            }
            ("failed", _) => {
                self.failed += 1;
                self.unfinished
                    .push(Pending::new(key, window, Reason::TaskFailed));
            }
            (_, Some(TaskStatus::Stopped { resume_from })) => {
                self.stopped += 1;
                self.done
                    .entry(key.clone())
                    .or_default()
                    .push((t.start_ms, *resume_from));
                self.unfinished
                    .push(Pending::new(key, (*resume_from, t.end_ms), Reason::Stopped));
            }
            _ => {
                self.stopped += 1;
                self.unfinished
                    .push(Pending::new(key, window, Reason::Stopped));
            }
        }
    }
}

/// The run's exit code: a load error outranks the extractor's outcome; with `mode: archive`
/// a file that could not be used fails the run.
fn exit_code(
    extracted: &RunReport,
    load_error: Option<ExitCode>,
    archive: Option<&ArchiveSummary>,
) -> ExitCode {
    let exit = load_error.unwrap_or_else(|| extracted.outcome.exit_code());
    if exit == ExitCode::Ok && archive.is_some_and(ArchiveSummary::left_gaps) {
        ExitCode::TasksFailed
    } else {
        exit
    }
}

/// The report's `stopped_by`: why a resumable run stopped early (its `outcome` is the exit
/// code's name, `resumable`, as the run's last log line says).
fn stopped_by(outcome: RunOutcome) -> Option<String> {
    match outcome {
        RunOutcome::BannedResumable { .. } => Some("ban".to_owned()),
        RunOutcome::Cancelled => Some("interrupt".to_owned()),
        _ => None,
    }
}

/// Bytes of the partition files the run (re)wrote.
fn bytes_written(loaded: &LoadResults) -> u64 {
    loaded
        .values()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|o| o.partitions.iter())
        .filter(|w| w.rewritten)
        .map(|w| w.bytes)
        .sum()
}

/// The run's exchange-side figures (requests, weight, budget use, retries, 429s, rows
/// fetched); the caller fills in the rest.
fn exchange_figures(extracted: &RunReport, extract_ms: u64) -> RunInfo {
    let m = &extracted.metrics;
    let limit = &extracted.weight_limit;
    let windows = extract_ms.div_ceil(limit.window_ms().max(1) as u64).max(1);
    RunInfo {
        requests: m.requests,
        weight_used: m.weight,
        weight_limit: limit.limit,
        weight_window: format!("{}{}", limit.num, limit.unit),
        weight_share: extracted.weight_share,
        budget_utilisation: m.weight as f64 / (f64::from(limit.limit.max(1)) * windows as f64),
        budget_waits: extracted.budget_waits,
        retries: retries_by_cause(m),
        http_429: m.http_429,
        http_418: m.http_418,
        rows_fetched: m.rows,
        rows_held_back: m.held_back,
        ..RunInfo::default()
    }
}

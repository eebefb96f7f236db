//! Archive-first history: kline files in the data.binance.vision layout (monthly and daily
//! zipped CSVs with `.CHECKSUM` sidecars) feed a task's older part; REST fetches the rest.
//!
//! - [`plan`] (pure) splits a [`KlineTask`] into archive files and a REST remainder: monthly
//!   files for whole months published long enough ago, daily files for the published days of
//!   partial or recent months, REST from the first day that may not be published yet. The
//!   pieces tile the task's window without gaps or overlaps (property-tested).
//! - [`csv`] (pure) reads one CSV: header sniffing, timestamp unit per file, plausibility.
//! - [`checksum`] (pure) SHA-256 and the `.CHECKSUM` format.
//! - [`inflate`] (pure) a zip's CSV inflated in one call when it is small enough.
//! - [`download`]: the HTTP edge, the manifest of ingested files and the quarantine.
//! - [`ArchiveSource`]: runs a task's archive part ([`ArchiveSource::fetch_part`]) and sends
//!   its rows, in time order and a file at a time, into the same channel the REST extractor
//!   uses; the caller then starts the REST remainder where the archive part ended.
//!
//! Files that fail verification (checksum mismatch after a retry, a zip that does not open, a
//! CSV that does not parse or holds implausible dates) are quarantined and reported, never
//! ingested; a missing or short file is reported too. In `auto` mode the archive part stops at
//! the first such file and REST takes over from its start, so the stitched series has no gap;
//! in `archive` mode the file is skipped and the gap reported.

pub mod checksum;
pub mod csv;
pub mod download;
pub mod inflate;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufReader, Cursor};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use self::csv::{FileReader, ReadError, SourceUnit};
use self::download::{ArchiveClient, GetError, Manifest, ManifestEntry};
use super::{ExtractEvent, KlineTask, Progress, TaskId};
use crate::config::{Endpoint, Pipeline, SourceMode, TransformOptions};
use crate::interval::{DAY_MS, Interval};
use crate::load::LoadError;
use crate::market::Market;
use crate::time::fmt_ms;
use crate::transform::{KlineContext, KlineRows};

/// The public archive.
pub const DEFAULT_ARCHIVE_URL: &str = "https://data.binance.vision";

/// How long after its period ends a file is assumed published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lags {
    /// Daily files ("the next day").
    pub daily_ms: i64,
    /// Monthly files ("the first Monday of the month").
    pub monthly_ms: i64,
}

impl Default for Lags {
    fn default() -> Self {
        Lags {
            daily_ms: DAY_MS,
            monthly_ms: 7 * DAY_MS,
        }
    }
}

/// Monthly or daily file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// `monthly/…-YYYY-MM.zip`.
    Monthly,
    /// `daily/…-YYYY-MM-DD.zip`.
    Daily,
}

/// One archive file of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveFile {
    /// Monthly or daily.
    pub period: Period,
    /// The file's period `[start, end)` (open times), ms.
    pub start_ms: i64,
    /// End of the period (exclusive).
    pub end_ms: i64,
    /// The part of it the task takes, `[take_start, take_end)`.
    pub take_start: i64,
    /// End of the part taken (exclusive).
    pub take_end: i64,
}

impl ArchiveFile {
    /// `data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip`.
    pub fn path(&self, market: Market, symbol: &str, interval: Interval) -> String {
        let iv = interval.archive_str();
        let date = chrono::DateTime::from_timestamp_millis(self.start_ms).unwrap_or_default();
        let (dir, stamp) = match self.period {
            Period::Monthly => ("monthly", date.format("%Y-%m").to_string()),
            Period::Daily => ("daily", date.format("%Y-%m-%d").to_string()),
        };
        format!(
            "data/{}/{dir}/klines/{symbol}/{iv}/{symbol}-{iv}-{stamp}.zip",
            market.archive_segment()
        )
    }
}

/// A task split into archive files and the REST remainder `[rest_start, task.end_ms)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePlan {
    /// Files in time order; their `take` windows tile `[task.start_ms, rest_start)`.
    pub files: Vec<ArchiveFile>,
    /// Where REST takes over.
    pub rest_start: i64,
}

/// Whether the archive has daily files at `interval` (`1s`…`1d`, as the official scripts).
pub fn has_daily_files(interval: Interval) -> bool {
    !matches!(interval, Interval::D3 | Interval::W1 | Interval::Mo1)
}

/// Split `task` into archive files published by `now_ms` (per `lags`) and a REST remainder.
///
/// Whole months published for at least `lags.monthly_ms` come from monthly files; the days of
/// partial or recent months from daily files published for `lags.daily_ms` (for intervals with
/// no daily files, a published monthly file is taken in part); REST from the first day or
/// month not yet assumed published. Pure.
pub fn plan(task: &KlineTask, now_ms: i64, lags: Lags) -> ArchivePlan {
    let (s, e) = (task.start_ms, task.end_ms);
    let mut files = Vec::new();
    let mut t = s;
    let daily = has_daily_files(task.interval);
    while t < e {
        let month = Interval::Mo1.floor(t);
        let month_end = Interval::Mo1.next(month);
        let month_published = month_end.saturating_add(lags.monthly_ms) <= now_ms;
        if month_published && (whole_month(task.interval, month, month_end, t, e) || !daily) {
            files.push(ArchiveFile {
                period: Period::Monthly,
                start_ms: month,
                end_ms: month_end,
                take_start: t,
                take_end: month_end.min(e),
            });
            t = month_end;
            continue;
        }
        if !daily {
            break;
        }
        let day = Interval::D1.floor(t);
        let day_end = day + DAY_MS;
        if day_end.saturating_add(lags.daily_ms) > now_ms {
            break;
        }
        files.push(ArchiveFile {
            period: Period::Daily,
            start_ms: day,
            end_ms: day_end,
            take_start: t,
            take_end: day_end.min(e),
        });
        t = day_end;
    }
    ArchivePlan {
        files,
        rest_start: t.min(e).max(s),
    }
}

/// Whether the window `[t, e)` takes every candle of the month `[month, month_end)`: no
/// candle of `interval` opens in the month before `t` or at or after `e`. The window's end is
/// exclusive and need not be on the grid: a calendar year ending `2023-12-31T23:59:59.999Z`
/// takes the candle opening at 23:59, so December is a whole month (one monthly file, not 31
/// daily ones).
fn whole_month(interval: Interval, month: i64, month_end: i64, t: i64, e: i64) -> bool {
    interval.ceil(month) >= t && interval.ceil(e) >= month_end
}

// ---------------------------------------------------------------------------------------------
// The run report.

/// What happened to one file that was not simply ingested (or was ingested with a note).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct FileIssue {
    /// The archive path.
    pub file: String,
    /// `missing`, `checksum_mismatch`, `bad_checksum_file`, `corrupt_zip`, `bad_csv`,
    /// `short`, `replaced`, `not_published`, and the notes `header_row`, `source_unit_us`.
    pub kind: String,
    /// Details (expected vs found).
    pub detail: String,
    /// Whether its rows were ingested.
    pub ingested: bool,
    /// Where the bad file was kept aside.
    pub quarantined_to: Option<PathBuf>,
    /// Where REST took over because of it (auto mode).
    pub rest_from: Option<String>,
    /// Short files: rows the file holds in the window taken from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_rows: Option<u64>,
    /// Short files: rows the interval grid expects there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grid_rows: Option<u64>,
    /// Short files in `auto` mode: rows REST delivered for the same window (the re-check).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rest_rows: Option<u64>,
    /// The window to re-check: market, symbol, interval, start, end.
    #[serde(skip)]
    window: Option<(Market, String, Interval, i64, i64)>,
}

/// One task's archive part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskArchive {
    /// Symbol.
    pub symbol: String,
    /// Interval.
    pub interval: String,
    /// Files planned.
    pub files_planned: u64,
    /// Files ingested.
    pub files_ingested: u64,
    /// Rows sent from files.
    pub rows: u64,
    /// Where REST took over (`null`: no REST part).
    pub rest_from: Option<String>,
}

/// The `run.archive` section of `_kline_etl/summary.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ArchiveSummary {
    /// `auto` or `archive`.
    pub mode: String,
    /// The archive's base URL.
    pub archive_url: String,
    /// Files planned.
    pub files_planned: u64,
    /// Files ingested (including replaced ones).
    pub files_ingested: u64,
    /// Files replaced upstream since the last run, re-ingested.
    pub files_replaced: u64,
    /// Files that were not published (404).
    pub files_missing: u64,
    /// Files that failed verification, kept under `_quarantine/`.
    pub files_quarantined: u64,
    /// Files with fewer rows than the interval grid.
    pub files_short: u64,
    /// HTTP requests sent to the archive.
    pub requests: u64,
    /// Zip bytes downloaded.
    pub bytes: u64,
    /// Rows sent from files.
    pub rows: u64,
    /// Wall time of the archive parts, ms.
    pub elapsed_ms: u64,
    /// Per task.
    pub tasks: Vec<TaskArchive>,
    /// Every file that was missing, bad, short, replaced or noteworthy.
    pub issues: Vec<FileIssue>,
}

impl ArchiveSummary {
    /// In `archive` mode, whether a published period could not be used (a missing, bad or
    /// unreadable file: the run then fails, since nothing else fills it). The recent part no
    /// file covers yet (`not_published`) is reported but is not a failure.
    pub fn left_gaps(&self) -> bool {
        self.mode == SourceMode::Archive.as_str()
            && self
                .issues
                .iter()
                .any(|i| !i.ingested && i.kind != "replaced" && i.kind != "not_published")
    }
}

// ---------------------------------------------------------------------------------------------
// Running the archive part.

/// Verified bytes of one file, or why not.
enum Got {
    Ok {
        zip: Bytes,
        sha256: String,
        last_modified: Option<String>,
    },
    Missing(String),
    Bad {
        kind: &'static str,
        detail: String,
        body: Bytes,
    },
}

/// What reading one verified file gave.
struct Read {
    /// The rows inside the file's take window, in time order.
    rows: KlineRows,
    header: bool,
    unit: Option<SourceUnit>,
}

/// A planned file, downloaded and (when it verified) read.
enum Ready {
    Ok {
        zip: Bytes,
        sha256: String,
        last_modified: Option<String>,
        /// Boxed: the rows' columns would make every variant as large.
        read: Result<Box<Read>, (&'static str, String)>,
    },
    Missing(String),
    Bad {
        kind: &'static str,
        detail: String,
        body: Bytes,
    },
}

/// What became of one planned file.
enum Taken {
    /// Its rows (this many) went to the loader.
    Sent(u64),
    /// Not ingested; the next file is tried (archive mode).
    Skipped,
    /// REST takes over at the file's start (auto mode), or the loader is gone.
    Stop,
}

/// The archive side of a run: client, manifest, options. Built from the pipeline; `None` in
/// `rest` mode.
#[derive(Debug)]
pub struct ArchiveSource {
    client: ArchiveClient,
    mode: SourceMode,
    market: Market,
    root: PathBuf,
    transform: TransformOptions,
    /// Files downloaded at once.
    pub concurrency: usize,
    /// Publication lags assumed by the planner.
    pub lags: Lags,
    manifest: Mutex<Manifest>,
    /// The run's shard (`--shard I/N`): its manifest is its own file.
    shard: Option<crate::shard::Shard>,
    dirty: AtomicBool,
    /// Set after a transport error: the archive is not tried again in this run.
    unreachable: AtomicBool,
    summary: Mutex<ArchiveSummary>,
    /// Inflated-text buffers kept for the next files read ([`KEEP_TEXTS`] of up to
    /// [`KEEP_TEXT_BYTES`]): a fresh buffer per file costs a page fault per 4 KiB of text.
    texts: Mutex<Vec<Vec<u8>>>,
    /// Files sent and not yet taken by the loader ([`QUEUED_FILES`] permits).
    queued: Arc<tokio::sync::Semaphore>,
}

/// Read files sent whole that may wait for the loader at once: with the files being read
/// (one per core), the archive part's rows in memory are bounded by files, not by the
/// channel's 64 events.
pub const QUEUED_FILES: usize = 2;

/// Inflated-text buffers kept between files: files are read one per core at once.
const KEEP_TEXTS: usize = 4;

/// The largest inflated-text buffer kept for the next file (a month of 1m is about 6.6 MB).
const KEEP_TEXT_BYTES: usize = 16 << 20;

/// `m` locked; a lock poisoned by a panicking holder is taken as it is (the data guarded here
/// stays consistent between statements).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Retries for one file whose checksum does not match before it is quarantined.
const CHECKSUM_RETRIES: u32 = 1;

impl ArchiveSource {
    /// The archive source of a pipeline run against `base_url` (the simulator's URL when the
    /// pipeline uses `source.simulator`). `None` in `rest` mode or when the HTTP client
    /// cannot be built (then everything goes through REST, with a warning).
    pub fn from_pipeline(p: &Pipeline, base_url: &str) -> Option<ArchiveSource> {
        // The archive holds traded-price klines only here; the other families use REST.
        if p.source.mode == SourceMode::Rest || p.kline_family != crate::config::KlineFamily::Trades
        {
            return None;
        }
        // The official exchange publishes its files on data.binance.vision; any other base URL
        // (a proxy, a simulator, a compatible exchange) is asked for the same layout under
        // `/data/` on its own host, and a 404 there simply hands the range to REST.
        let official = |u: &str| {
            let u = u.trim_end_matches('/');
            Market::ALL
                .iter()
                .any(|m| u.eq_ignore_ascii_case(m.default_base_url()))
        };
        let url = match (&p.source.archive_url, &p.source.endpoint) {
            (Some(u), _) => u.clone(),
            (None, Endpoint::Url(u)) if official(u) => DEFAULT_ARCHIVE_URL.to_owned(),
            (None, _) => base_url.to_owned(),
        };
        let timeout = Duration::from_secs(p.source.timeout_secs.max(1) * 4);
        match ArchiveClient::new(&url, timeout, p.source.max_retries.min(2)) {
            Ok(client) => Some(ArchiveSource::new(
                client,
                p.source.mode,
                p.source.market,
                p.output.path.clone(),
                p.transform,
            )),
            Err(e) => {
                tracing::warn!("archive disabled, using REST only: {e}");
                None
            }
        }
    }

    /// An archive source writing its manifest and quarantine under `root`.
    pub fn new(
        client: ArchiveClient,
        mode: SourceMode,
        market: Market,
        root: PathBuf,
        transform: TransformOptions,
    ) -> ArchiveSource {
        let manifest = Manifest::load(&root, None);
        let summary = ArchiveSummary {
            mode: mode.as_str().to_owned(),
            archive_url: client.base().to_owned(),
            ..ArchiveSummary::default()
        };
        ArchiveSource {
            client,
            mode,
            market,
            root,
            transform,
            concurrency: 8,
            lags: Lags::default(),
            manifest: Mutex::new(manifest),
            shard: None,
            dirty: AtomicBool::new(false),
            unreachable: AtomicBool::new(false),
            summary: Mutex::new(summary),
            texts: Mutex::new(Vec::new()),
            queued: Arc::new(tokio::sync::Semaphore::new(QUEUED_FILES)),
        }
    }

    /// Run the archive part of every task in order (task `i` is `TaskId(i)`), then move each
    /// task's start to where REST must take over (its end in `archive` mode). `recheck_from`
    /// is the pipeline's resolved range start: ingested files between it and a task's start
    /// are re-checked for upstream replacement.
    pub async fn run_tasks(
        &self,
        tasks: &mut [KlineTask],
        recheck_from: i64,
        now_ms: i64,
        tx: &mpsc::Sender<ExtractEvent>,
        progress: &dyn Progress,
        cancel: &watch::Receiver<bool>,
    ) -> ArchiveSummary {
        let started = Instant::now();
        for (i, task) in tasks.iter_mut().enumerate() {
            if *cancel.borrow() {
                break;
            }
            let rest_start = self
                .fetch_part(TaskId(i), task, recheck_from, now_ms, tx, progress, cancel)
                .await;
            task.start_ms = rest_start;
        }
        let mut s = lock(&self.summary);
        s.elapsed_ms = started.elapsed().as_millis() as u64;
        s.clone()
    }

    /// After the loader committed the rows: count what REST delivered for each short file's
    /// window (the re-check) into `summary`, and write the manifest.
    pub fn finish(&self, summary: &mut ArchiveSummary) -> Result<(), LoadError> {
        for issue in &mut summary.issues {
            let Some((market, symbol, interval, start, end)) = issue.window.take() else {
                continue;
            };
            let Ok(sym) = symbol.parse::<crate::symbol::Symbol>() else {
                continue;
            };
            let rows = crate::summary::dataset::read_series(&self.root, market, &sym, interval)?;
            let n = rows.map_or(0, |r| {
                r.open_time
                    .iter()
                    .filter(|t| (start..end).contains(*t))
                    .count() as u64
            });
            issue.rest_rows = Some(n);
            let file_rows = issue.file_rows.unwrap_or(0);
            let _ = write!(
                issue.detail,
                "; REST has {n} rows there ({} more than the file)",
                n.saturating_sub(file_rows)
            );
        }
        self.save_manifest()
    }

    /// The source of one shard of a sharded run: it records the archive files of its series in
    /// a manifest of its own, since shards run at the same time.
    #[must_use]
    pub fn with_shard(mut self, shard: Option<crate::shard::Shard>) -> Self {
        self.manifest = Mutex::new(Manifest::load(&self.root, shard));
        self.shard = shard;
        self
    }

    /// Write the manifest (call once the loader has committed the rows).
    pub fn save_manifest(&self) -> Result<(), LoadError> {
        if !self.dirty.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let m = lock(&self.manifest).clone();
        m.save(&self.root, self.shard)
    }

    fn issue(&self, issue: FileIssue) {
        tracing::warn!(file = %issue.file, kind = %issue.kind, "archive: {}", issue.detail);
        lock(&self.summary).issues.push(issue);
    }

    /// The archive part of one task: replaced files first, then the plan's files in order.
    /// Returns where REST takes over.
    #[allow(clippy::too_many_arguments)]
    pub async fn fetch_part(
        &self,
        id: TaskId,
        task: &KlineTask,
        recheck_from: i64,
        now_ms: i64,
        tx: &mpsc::Sender<ExtractEvent>,
        progress: &dyn Progress,
        cancel: &watch::Receiver<bool>,
    ) -> i64 {
        let symbol = task.symbol.as_str();
        let (mut rows_sent, mut ingested) = self
            .reingest_replaced(id, task, recheck_from, tx, progress)
            .await;

        let plan = plan(task, now_ms, self.lags);
        let i = task.interval;
        progress.archive_planned(
            id,
            plan.files.len(),
            crate::extract::paging::count_windows(
                task.market,
                i,
                plan.rest_start,
                task.end_ms.min(i.next(i.floor(now_ms))),
                task.market.best_kline_page(),
            ),
        );
        lock(&self.summary).files_planned += plan.files.len() as u64;
        let paths: Vec<String> = plan
            .files
            .iter()
            .map(|f| f.path(self.market, symbol, task.interval))
            .collect();
        // Downloads run `concurrency` ahead; files are read (inflated, parsed, checked) as
        // they arrive, one per core at once, while earlier files' rows go to the loader. At
        // most that many read files wait in memory.
        let read_ahead = std::thread::available_parallelism()
            .map_or(2, std::num::NonZero::get)
            .clamp(1, self.concurrency.max(1));
        let mut downloads = futures::stream::iter(paths.iter().cloned())
            .map(|p| async move { self.download(&p).await })
            .buffered(self.concurrency.max(1))
            .zip(futures::stream::iter(plan.files.iter().copied()))
            .map(|(got, file)| async move {
                match got {
                    Got::Ok {
                        zip,
                        sha256,
                        last_modified,
                    } => Ready::Ok {
                        read: self.read(task, &file, zip.clone()).await.map(Box::new),
                        zip,
                        sha256,
                        last_modified,
                    },
                    Got::Missing(detail) => Ready::Missing(detail),
                    Got::Bad { kind, detail, body } => Ready::Bad { kind, detail, body },
                }
            })
            .buffered(read_ahead);
        let mut rest_start = plan.rest_start;
        for (file, path) in plan.files.iter().zip(&paths) {
            let got = if *cancel.borrow() {
                None
            } else {
                downloads.next().await
            };
            let Some(got) = got else {
                rest_start = file.take_start;
                break;
            };
            progress.request(0);
            progress.archive_file_done(id);
            match self.take(id, task, file, path, got, tx, progress).await {
                Taken::Sent(n) => {
                    rows_sent += n;
                    ingested += 1;
                }
                Taken::Skipped => {}
                Taken::Stop => {
                    rest_start = file.take_start;
                    break;
                }
            }
        }
        drop(downloads);
        progress.archive_finished(id);
        if self.mode != SourceMode::Auto {
            if plan.rest_start < task.end_ms {
                self.not_published(task, plan.rest_start);
            }
            rest_start = task.end_ms;
        }
        let mut s = lock(&self.summary);
        s.files_ingested += ingested;
        s.rows += rows_sent;
        s.tasks.push(TaskArchive {
            symbol: symbol.to_owned(),
            interval: task.interval.as_str().to_owned(),
            files_planned: plan.files.len() as u64,
            files_ingested: ingested,
            rows: rows_sent,
            rest_from: (rest_start < task.end_ms).then(|| fmt_ms(rest_start)),
        });
        rest_start
    }

    /// Upstream replacements of files ingested by earlier runs, before this task's start: the
    /// `.CHECKSUM` requests run concurrently; changed files are re-ingested in order. The
    /// rows sent and the files ingested.
    async fn reingest_replaced(
        &self,
        id: TaskId,
        task: &KlineTask,
        recheck_from: i64,
        tx: &mpsc::Sender<ExtractEvent>,
        progress: &dyn Progress,
    ) -> (u64, u64) {
        let (mut rows_sent, mut ingested) = (0, 0);
        let candidates = self.replacement_candidates(task, recheck_from);
        let mut changed: Vec<(String, ManifestEntry)> = futures::stream::iter(candidates)
            .map(|(path, entry)| async move {
                let ck = self.get_counted(&format!("{path}.CHECKSUM")).await.ok()?;
                let sha = checksum::parse_checksum(&String::from_utf8_lossy(&ck.body)).ok();
                let same = sha.as_deref() == Some(entry.sha256.as_str())
                    && ck.last_modified == entry.last_modified;
                (!same).then_some((path, entry))
            })
            .buffered(self.concurrency.max(1) * 4)
            .filter_map(std::future::ready)
            .collect()
            .await;
        changed.sort_by_key(|(_, e)| e.start_ms);
        for (path, entry) in changed {
            let file = ArchiveFile {
                period: if path.contains("/monthly/") {
                    Period::Monthly
                } else {
                    Period::Daily
                },
                start_ms: entry.start_ms,
                end_ms: entry.end_ms,
                take_start: entry.start_ms.max(recheck_from),
                take_end: entry.end_ms.min(task.start_ms),
            };
            let (zip, sha256, last_modified) = match self.download(&path).await {
                Got::Ok {
                    zip,
                    sha256,
                    last_modified,
                } => (zip, sha256, last_modified),
                Got::Missing(_) => continue,
                Got::Bad { kind, detail, body } => {
                    self.bad(&path, kind, detail, &body, None, false);
                    continue;
                }
            };
            let read = match self.read(task, &file, zip.clone()).await {
                Ok(read) => read,
                Err((kind, detail)) => {
                    self.bad(&path, kind, detail, &zip, None, false);
                    continue;
                }
            };
            let n = read.rows.len() as u64;
            match self.send(id, read.rows, tx, progress).await {
                Ok(()) => {
                    rows_sent += n;
                    ingested += 1;
                    lock(&self.summary).files_replaced += 1;
                    self.issue(FileIssue {
                        file: path.clone(),
                        kind: "replaced".into(),
                        detail: format!(
                            "checksum `{}` replaced upstream by `{sha256}`; partition rebuilt",
                            entry.sha256
                        ),
                        ingested: true,
                        quarantined_to: None,
                        rest_from: None,
                        ..FileIssue::default()
                    });
                    self.record(&path, task, &file, sha256, last_modified, n);
                }
                Err((kind, detail)) => self.bad(&path, kind, detail, &zip, None, false),
            }
        }
        (rows_sent, ingested)
    }

    /// One planned file, downloaded and read: checked against the interval grid, its rows
    /// sent to the loader, recorded in the manifest. A missing, bad or (in `auto` mode)
    /// short file hands the rest to REST in `auto` mode and is skipped in `archive` mode.
    #[allow(clippy::too_many_arguments)]
    async fn take(
        &self,
        id: TaskId,
        task: &KlineTask,
        file: &ArchiveFile,
        path: &str,
        got: Ready,
        tx: &mpsc::Sender<ExtractEvent>,
        progress: &dyn Progress,
    ) -> Taken {
        let auto = self.mode == SourceMode::Auto;
        let failed = if auto { Taken::Stop } else { Taken::Skipped };
        let stop_at = auto.then(|| fmt_ms(file.take_start));
        let (zip, sha256, last_modified, read) = match got {
            Ready::Missing(detail) => {
                lock(&self.summary).files_missing += 1;
                self.issue(FileIssue {
                    file: path.to_owned(),
                    kind: "missing".into(),
                    detail,
                    ingested: false,
                    quarantined_to: None,
                    rest_from: stop_at,
                    ..FileIssue::default()
                });
                return failed;
            }
            Ready::Bad { kind, detail, body } => {
                self.bad(path, kind, detail, &body, stop_at, true);
                return failed;
            }
            Ready::Ok {
                zip,
                sha256,
                last_modified,
                read,
            } => (zip, sha256, last_modified, read),
        };
        let counted = match read {
            Ok(r) => *r,
            Err((kind, detail)) => {
                self.bad(path, kind, detail, &zip, stop_at, true);
                return failed;
            }
        };
        // Row count against the grid first: a short file is re-fetched by REST.
        let expected = task.interval.count_in(file.take_start, file.take_end) as u64;
        let rows_in_take = counted.rows.len() as u64;
        if rows_in_take < expected {
            self.short(path, task, file, rows_in_take, expected);
            if auto {
                return Taken::Stop;
            }
        }
        if counted.header && self.market == Market::Spot {
            self.note(path, "header_row", "a header row in a spot file; skipped");
        }
        if counted.unit == Some(SourceUnit::Us) {
            self.note(
                path,
                "source_unit_us",
                "timestamps in microseconds; normalised to milliseconds",
            );
        }
        match self.send(id, counted.rows, tx, progress).await {
            Ok(()) => {
                self.record(path, task, file, sha256, last_modified, rows_in_take);
                Taken::Sent(rows_in_take)
            }
            Err((kind, detail)) => {
                // The loader is gone: nothing more can be written.
                self.bad(path, kind, detail, &zip, stop_at, true);
                Taken::Stop
            }
        }
    }

    /// A file with fewer rows than the interval grid has in its take window.
    fn short(&self, path: &str, task: &KlineTask, file: &ArchiveFile, rows: u64, expected: u64) {
        let auto = self.mode == SourceMode::Auto;
        lock(&self.summary).files_short += 1;
        self.issue(FileIssue {
            file: path.to_owned(),
            kind: "short".into(),
            detail: format!(
                "{rows} of {expected} rows on the interval grid in `{}`..`{}`{}",
                fmt_ms(file.take_start),
                fmt_ms(file.take_end),
                if auto {
                    "; re-fetched through REST"
                } else {
                    "; ingested as is (archive mode)"
                }
            ),
            ingested: !auto,
            quarantined_to: None,
            rest_from: auto.then(|| fmt_ms(file.take_start)),
            file_rows: Some(rows),
            grid_rows: Some(expected),
            rest_rows: None,
            window: auto.then(|| {
                (
                    task.market,
                    task.symbol.to_string(),
                    task.interval,
                    file.take_start,
                    file.take_end,
                )
            }),
        });
    }

    /// Archive mode: the part of the task past the published files, which it does not fetch.
    fn not_published(&self, task: &KlineTask, rest_start: i64) {
        lock(&self.summary).issues.push(FileIssue {
            file: format!(
                "data/{}/daily/klines/{}/{}/",
                self.market.archive_segment(),
                task.symbol.as_str(),
                task.interval.archive_str()
            ),
            kind: "not_published".into(),
            detail: format!(
                "`{}`..`{}` is not covered by published files yet; archive mode fetches nothing through REST",
                fmt_ms(rest_start),
                fmt_ms(task.end_ms)
            ),
            ..FileIssue::default()
        });
    }

    fn note(&self, path: &str, kind: &str, detail: &str) {
        lock(&self.summary).issues.push(FileIssue {
            file: path.to_owned(),
            kind: kind.to_owned(),
            detail: detail.to_owned(),
            ingested: true,
            quarantined_to: None,
            rest_from: None,
            ..FileIssue::default()
        });
    }

    fn bad(
        &self,
        path: &str,
        kind: &str,
        detail: String,
        body: &[u8],
        rest_from: Option<String>,
        count: bool,
    ) {
        let quarantined_to = match download::quarantine(&self.root, path, body) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!(file = %path, "cannot quarantine: {e}");
                None
            }
        };
        if count {
            lock(&self.summary).files_quarantined += 1;
        }
        self.issue(FileIssue {
            file: path.to_owned(),
            kind: kind.to_owned(),
            detail,
            ingested: false,
            quarantined_to,
            rest_from,
            ..FileIssue::default()
        });
    }

    fn record(
        &self,
        path: &str,
        task: &KlineTask,
        file: &ArchiveFile,
        sha256: String,
        last_modified: Option<String>,
        rows: u64,
    ) {
        let mut m = lock(&self.manifest);
        m.version = 1;
        m.files.insert(
            path.to_owned(),
            ManifestEntry {
                market: task.market.as_str().to_owned(),
                symbol: task.symbol.to_string(),
                interval: task.interval.as_str().to_owned(),
                start_ms: file.start_ms,
                end_ms: file.end_ms,
                sha256,
                last_modified,
                rows,
            },
        );
        self.dirty.store(true, Ordering::SeqCst);
    }

    fn replacement_candidates(
        &self,
        task: &KlineTask,
        recheck_from: i64,
    ) -> BTreeMap<String, ManifestEntry> {
        let m = lock(&self.manifest);
        m.files
            .iter()
            .filter(|(_, e)| {
                e.market == task.market.as_str()
                    && e.symbol == task.symbol.as_str()
                    && e.interval == task.interval.as_str()
                    && e.end_ms > recheck_from
                    && e.end_ms <= task.start_ms
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    async fn get_counted(&self, path: &str) -> Result<download::Fetched, GetError> {
        if self.unreachable.load(Ordering::SeqCst) {
            return Err(GetError::Transport(format!(
                "the archive at `{}` was unreachable earlier in this run",
                self.client.base()
            )));
        }
        lock(&self.summary).requests += 1;
        let r = self.client.get(path).await;
        if let Err(GetError::Transport(e)) = &r
            && !self.unreachable.swap(true, Ordering::SeqCst)
        {
            tracing::warn!(
                archive = %self.client.base(),
                "archive unreachable, using REST for the rest of the run: {e}"
            );
        }
        r
    }

    /// `.CHECKSUM` then the zip, verified; a mismatch is retried, then reported as bad.
    async fn download(&self, path: &str) -> Got {
        let ck = match self.get_counted(&format!("{path}.CHECKSUM")).await {
            Ok(c) => c,
            Err(GetError::NotFound) => {
                return Got::Missing("no `.CHECKSUM` file (http 404)".into());
            }
            Err(e) => return Got::Missing(format!("cannot fetch `.CHECKSUM`: {e}")),
        };
        let expected = match checksum::parse_checksum(&String::from_utf8_lossy(&ck.body)) {
            Ok(s) => s,
            Err(e) => {
                return Got::Bad {
                    kind: "bad_checksum_file",
                    detail: e,
                    body: ck.body,
                };
            }
        };
        let mut attempt = 0;
        loop {
            let zip = match self.get_counted(path).await {
                Ok(z) => z,
                Err(GetError::NotFound) => return Got::Missing("no zip file (http 404)".into()),
                Err(e) => return Got::Missing(format!("cannot fetch the zip: {e}")),
            };
            lock(&self.summary).bytes += zip.body.len() as u64;
            let body = zip.body.clone();
            let found = tokio::task::spawn_blocking(move || checksum::sha256_hex(&body))
                .await
                .unwrap_or_default();
            if found == expected {
                return Got::Ok {
                    zip: zip.body,
                    sha256: expected,
                    last_modified: ck.last_modified,
                };
            }
            if attempt >= CHECKSUM_RETRIES {
                return Got::Bad {
                    kind: "checksum_mismatch",
                    detail: format!(
                        "sha-256 `{found}` does not match `.CHECKSUM` `{expected}` after {} attempts",
                        attempt + 1
                    ),
                    body: zip.body,
                };
            }
            attempt += 1;
        }
    }

    /// Read a downloaded file on the blocking pool: inflate, parse and check every row, keep
    /// the take window's rows.
    async fn read(
        &self,
        task: &KlineTask,
        file: &ArchiveFile,
        zip: Bytes,
    ) -> Result<Read, (&'static str, String)> {
        let (task, file, opts) = (task.clone(), *file, self.transform);
        let mut text = lock(&self.texts).pop().unwrap_or_default();
        let (read, text) = tokio::task::spawn_blocking(move || {
            let read = read_zip(&task, &file, opts, &zip, &mut text);
            (read, text)
        })
        .await
        .map_err(|e| ("internal", e.to_string()))?;
        let mut texts = lock(&self.texts);
        if text.capacity() <= KEEP_TEXT_BYTES && texts.len() < KEEP_TEXTS {
            texts.push(text);
        }
        read
    }

    /// Send a read file's rows to the loader as one chunk (no copy: a monthly file of a
    /// monthly partition becomes the partition's buffer), once fewer than [`QUEUED_FILES`]
    /// files wait for the loader.
    async fn send(
        &self,
        id: TaskId,
        rows: KlineRows,
        tx: &mpsc::Sender<ExtractEvent>,
        progress: &dyn Progress,
    ) -> Result<(), (&'static str, String)> {
        let stopped = || ("internal", "the loader stopped".to_owned());
        let hold = Arc::clone(&self.queued)
            .acquire_owned()
            .await
            .map_err(|_| stopped())?;
        let n = rows.len();
        let event = ExtractEvent::Rows {
            task: id,
            rows,
            hold: Some(hold),
        };
        tx.send(event).await.map_err(|_| stopped())?;
        progress.rows(id, n);
        Ok(())
    }
}

/// Read one zip: its single CSV, every row checked, inflated whole ([`inflate::whole`]) or,
/// for a large entry, as it is parsed; the rows of the file's take window. `text` is the
/// buffer a whole entry inflates into.
fn read_zip(
    task: &KlineTask,
    file: &ArchiveFile,
    opts: TransformOptions,
    zip: &[u8],
    text: &mut Vec<u8>,
) -> Result<Read, (&'static str, String)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip))
        .map_err(|e| ("corrupt_zip", format!("cannot open the zip: {e}")))?;
    if archive.is_empty() {
        return Err(("corrupt_zip", "the zip holds no file".into()));
    }
    let whole = inflate::whole(&mut archive, zip, inflate::WHOLE_MAX, text)
        .map_err(|e| ("corrupt_zip", e))?;
    let ctx = KlineContext {
        market: task.market,
        symbol: &task.symbol,
        interval: task.interval,
        options: &opts,
    };
    let mut reader = FileReader::new(ctx, (file.start_ms, file.end_ms));
    let read = if whole {
        reader.read(&text[..])
    } else {
        let entry = archive
            .by_index(0)
            .map_err(|e| ("corrupt_zip", format!("cannot open the zip's csv: {e}")))?;
        reader.read(BufReader::with_capacity(1 << 16, entry))
    };
    read.map_err(|e| match e {
        ReadError::Inflate(e) => ("corrupt_zip", format!("cannot inflate the csv: {e}")),
        ReadError::Csv(e) => ("bad_csv", e.to_string()),
    })?;
    let (header, unit) = (reader.header, reader.unit);
    let rows = reader.finish();
    let inside = |t: Option<&i64>| t.is_some_and(|t| (file.take_start..file.take_end).contains(t));
    let rows =
        if rows.is_empty() || (inside(rows.open_time.first()) && inside(rows.open_time.last())) {
            rows // the common case, a file taken whole: no copy
        } else {
            rows.retain_range(file.take_start, file.take_end)
        };
    Ok(Read { rows, header, unit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbol::Symbol;
    use proptest::prelude::*;

    fn ms(y: i32, m: u32, d: u32) -> i64 {
        chrono::NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    fn task(interval: Interval, start: i64, end: i64) -> KlineTask {
        KlineTask {
            market: Market::Spot,
            symbol: "BTCUSDT".parse::<Symbol>().unwrap(),
            interval,
            start_ms: start,
            end_ms: end,
        }
    }

    fn check_tiling(t: &KlineTask, p: &ArchivePlan) {
        let mut at = t.start_ms;
        for f in &p.files {
            assert_eq!(f.take_start, at, "gap or overlap at a seam: {p:?}");
            assert!(f.take_end > f.take_start);
            assert!(f.start_ms <= f.take_start && f.take_end <= f.end_ms);
            at = f.take_end;
        }
        assert_eq!(p.rest_start, at.min(t.end_ms).max(t.start_ms));
        assert!(p.rest_start <= t.end_ms || t.end_ms <= t.start_ms);
    }

    #[test]
    fn a_year_is_months_then_days_then_rest() {
        let now = ms(2026, 11, 25) + 10 * 3_600_000;
        let t = task(Interval::M1, ms(2025, 11, 25), now);
        let p = plan(&t, now, Lags::default());
        check_tiling(&t, &p);
        let monthly = p
            .files
            .iter()
            .filter(|f| f.period == Period::Monthly)
            .count();
        let daily = p.files.iter().filter(|f| f.period == Period::Daily).count();
        // Nov 25..30 2025 as days, Dec 2025..Oct 2026 as months, Nov 1..23 2026 as days.
        assert_eq!((monthly, daily), (11, 6 + 23));
        assert_eq!(p.rest_start, ms(2026, 11, 24));
        assert_eq!(
            p.files[6].path(Market::Spot, "BTCUSDT", Interval::M1),
            "data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2025-12.zip"
        );
        assert_eq!(
            p.files[0].path(Market::UsdM, "BTCUSDT", Interval::M1),
            "data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2025-11-25.zip"
        );
    }

    #[test]
    fn a_calendar_year_ending_just_before_midnight_is_twelve_monthly_files() {
        let now = ms(2026, 11, 25);
        // `end: 2023-12-31T23:59:59.999Z` (exclusive): the 23:59 candle is in the window.
        for (start, end) in [
            (ms(2023, 1, 1), ms(2024, 1, 1) - 1),
            (ms(2023, 1, 1), ms(2024, 1, 1)),
            (ms(2023, 1, 1), ms(2024, 1, 1) - 59_999),
        ] {
            let t = task(Interval::M1, start, end);
            let p = plan(&t, now, Lags::default());
            check_tiling(&t, &p);
            assert_eq!(p.files.len(), 12, "{p:?}");
            assert!(p.files.iter().all(|f| f.period == Period::Monthly));
            assert_eq!(p.files[11].take_end, end);
            assert_eq!(p.rest_start, end);
        }
        // One ms earlier the 23:59 candle is outside the window: December is not whole.
        let t = task(Interval::M1, ms(2023, 1, 1), ms(2024, 1, 1) - 60_000);
        let p = plan(&t, now, Lags::default());
        check_tiling(&t, &p);
        let monthly = p
            .files
            .iter()
            .filter(|f| f.period == Period::Monthly)
            .count();
        assert_eq!((monthly, p.files.len()), (11, 11 + 31));
        // The same at the start: a window opening 1 ms after the month keeps its 00:00 candle
        // out, so that month is read from daily files.
        let t = task(Interval::M1, ms(2023, 1, 1) + 1, ms(2023, 3, 1));
        let p = plan(&t, now, Lags::default());
        assert_eq!(p.files.len(), 31 + 1, "{p:?}");
    }

    #[test]
    fn last_month_is_daily_until_its_monthly_file_is_due() {
        let now = ms(2026, 11, 3);
        let t = task(Interval::H1, ms(2026, 10, 1), now);
        let p = plan(&t, now, Lags::default());
        check_tiling(&t, &p);
        assert!(p.files.iter().all(|f| f.period == Period::Daily));
        assert_eq!(p.rest_start, ms(2026, 11, 2));
    }

    #[test]
    fn monthly_interval_uses_1mo_and_no_dailies() {
        let now = ms(2026, 11, 25);
        let t = task(Interval::Mo1, ms(2026, 1, 1), now);
        let p = plan(&t, now, Lags::default());
        check_tiling(&t, &p);
        assert_eq!(p.files.len(), 10);
        assert_eq!(
            p.files[0].path(Market::Spot, "BTCUSDT", Interval::Mo1),
            "data/spot/monthly/klines/BTCUSDT/1mo/BTCUSDT-1mo-2026-01.zip"
        );
        assert_eq!(p.rest_start, ms(2026, 11, 1));
    }

    #[test]
    fn nothing_published_is_all_rest() {
        let now = ms(2026, 11, 25) + 3_600_000;
        let t = task(Interval::M1, ms(2026, 11, 24) + 60_000, now);
        let p = plan(&t, now, Lags::default());
        assert!(p.files.is_empty());
        assert_eq!(p.rest_start, t.start_ms);
    }

    fn opts() -> TransformOptions {
        TransformOptions::default()
    }

    #[test]
    fn read_zip_filters_to_the_take_window_and_rejects_broken_zips() {
        let day = ms(2024, 1, 1);
        let mut csv = String::new();
        for i in 0..1440 {
            let o = day + i * 60_000;
            let _ = writeln!(csv, "{o},1.0,2.0,0.5,1.5,10,{},15,3,5,7.5,0", o + 59_999);
        }
        let zip = crate::simulator::archive::zip_one("x.csv", csv.as_bytes()).unwrap();
        let t = task(Interval::M1, day + 600_000, day + DAY_MS);
        let file = ArchiveFile {
            period: Period::Daily,
            start_ms: day,
            end_ms: day + DAY_MS,
            take_start: day + 600_000,
            take_end: day + DAY_MS,
        };
        let r = read_zip(&t, &file, opts(), &zip, &mut Vec::new())
            .unwrap_or_else(|(k, d)| panic!("{k}: {d}"));
        assert!(r.rows.open_time.iter().all(|&o| o >= day + 600_000));
        assert_eq!(r.rows.len(), 1430);
        let whole = ArchiveFile {
            take_start: day,
            ..file
        };
        assert_eq!(
            read_zip(&t, &whole, opts(), &zip, &mut Vec::new())
                .ok()
                .unwrap()
                .rows
                .len(),
            1440
        );
        let cut = &zip[..zip.len() / 2];
        let err = read_zip(&t, &file, opts(), cut, &mut Vec::new())
            .err()
            .unwrap();
        assert_eq!(err.0, "corrupt_zip");
        // A file that belongs to another day is implausible.
        let other = ArchiveFile {
            start_ms: day + DAY_MS,
            end_ms: day + 2 * DAY_MS,
            ..file
        };
        let err = read_zip(&t, &other, opts(), &zip, &mut Vec::new())
            .err()
            .unwrap();
        assert_eq!(err.0, "bad_csv");
    }

    #[test]
    fn only_unusable_published_files_fail_an_archive_run() {
        let issue = |kind: &str, ingested| FileIssue {
            kind: kind.into(),
            ingested,
            ..FileIssue::default()
        };
        let mut s = ArchiveSummary {
            mode: "archive".into(),
            issues: vec![issue("not_published", false), issue("short", true)],
            ..ArchiveSummary::default()
        };
        assert!(!s.left_gaps());
        s.issues.push(issue("missing", false));
        assert!(s.left_gaps());
        s.mode = "auto".into();
        assert!(!s.left_gaps(), "auto fills gaps through REST");
    }

    proptest! {
        #[test]
        fn plans_tile_the_task_without_gap_or_overlap(
            start in 1_500_000_000_000i64..1_800_000_000_000,
            len in 0i64..(400 * DAY_MS),
            now_after in -(40 * DAY_MS)..(400 * DAY_MS),
            iv in 0usize..Interval::ALL.len(),
            daily_lag in 0i64..(3 * DAY_MS),
            monthly_lag in 0i64..(10 * DAY_MS),
        ) {
            let t = task(Interval::ALL[iv], start, start + len);
            let now = start + len + now_after;
            let p = plan(&t, now, Lags { daily_ms: daily_lag, monthly_ms: monthly_lag });
            check_tiling(&t, &p);
            for f in &p.files {
                let lag = match f.period { Period::Daily => daily_lag, Period::Monthly => monthly_lag };
                prop_assert!(f.end_ms + lag <= now, "unpublished file planned");
                // A daily file only for a month the window does not take whole (or that is
                // not published yet).
                if f.period == Period::Daily {
                    let month = Interval::Mo1.floor(f.start_ms);
                    let month_end = Interval::Mo1.next(month);
                    let iv = t.interval;
                    let whole = iv.count_in(month, month_end) == iv.count_in(month.max(t.start_ms), month_end.min(t.end_ms));
                    prop_assert!(!whole || month_end + monthly_lag > now, "daily files for a whole month: {:?}", f);
                }
            }
        }
    }
}

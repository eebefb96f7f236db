//! What every dataset's run shares: the command line's run options, the errors that stop a
//! run, its result, the exchange endpoint (starting the built-in simulator when the pipeline
//! asks for it), the connected session, and the output guard (the dataset lock and the
//! object-store mirror). The per-dataset orchestration lives in [`crate::dataset`]; the
//! loader thread in [`loader`]; the `run` section of `_kline_etl/summary.json` in [`report`].

pub mod loader;
pub mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::config::{Endpoint, OutputFormat, Pipeline};
use crate::error::error_chain;
use crate::exit::ExitCode;
use crate::extract::{ExtractConfig, Extractor, Progress, Session};
use crate::load::LoadError;
use crate::load::delta::Table;
use crate::load::delta::log::LogStore;
use crate::load::lock::DatasetLock;
use crate::load::remote::{Remote, RemoteError};
use crate::plan::incremental::PlanError;
use crate::plan::symbols::SymbolError;
use crate::simulator::SimHandle;
#[cfg(feature = "simulator")]
use crate::simulator::{SimConfig, Simulator};

pub use report::{RunInfo, TaskReport, write_report};

/// Run behaviour from the command line (the data the job produces is in the pipeline).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Fetch the whole range even where data is on disk.
    pub full_refresh: bool,
    /// Page requests in flight at once (default 8).
    pub concurrency: Option<usize>,
    /// SHA-256 of the pipeline file, for the report.
    pub pipeline_hash: Option<String>,
    /// Print the summary table at the end.
    pub print_table: bool,
    /// How long to wait for another run writing the same dataset (0: fail at once, exit 5).
    pub lock_wait: std::time::Duration,
    /// A normal run, or `kline-etl repair`.
    pub mode: RunMode,
    /// `--shard I/N`: only the series this shard owns (see [`crate::shard::Shard`]).
    pub shard: Option<crate::shard::Shard>,
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
    /// `kline-etl repair`: exactly the gaps `_kline_etl/summary.json` lists as failed fetches, and with
    /// `exchange_gaps` also the gaps the exchange had no data for (to re-check them).
    Repair {
        /// Also re-check `exchange_none` gaps.
        exchange_gaps: bool,
    },
}

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The pipeline asks for something this dataset does not do.
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
    #[error(transparent)]
    Symbols(#[from] SymbolError),
    /// The state on disk could not be planned from.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Writing the data or the report failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The extractor could not start.
    #[error(transparent)]
    Extract(#[from] crate::extract::ExtractError),
    /// The object store output could not be read or written.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// A worker thread of the run died (a bug).
    #[error("the {what} thread of the run failed: {reason}")]
    Worker {
        /// Which worker.
        what: &'static str,
        /// The join error.
        reason: String,
    },
}

impl RunError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            RunError::Unsupported(_) => ExitCode::Usage,
            RunError::Symbols(e) => e.exit_code(),
            RunError::Plan(e) => e.exit_code(),
            RunError::Load(e) => e.exit_code(),
            RunError::Remote(e) => e.exit_code(),
            RunError::Simulator(_) | RunError::Worker { .. } => ExitCode::Internal,
            RunError::Exchange { .. } | RunError::Extract(_) => ExitCode::TasksFailed,
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunResult {
    /// The exit code the process should end with.
    pub exit: ExitCode,
    /// Where the run report (`_kline_etl/summary.json`) was written.
    pub summary_path: PathBuf,
    /// The run's summary table, for the terminal.
    pub table: String,
}

/// The default number of page requests in flight.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Everything a dataset's run needs from its caller.
pub struct RunContext<'a> {
    /// The validated pipeline.
    pub pipeline: &'a Pipeline,
    /// The command line's run options.
    pub opts: &'a RunOptions,
    /// Where requests go (the simulator's loopback URL when it runs in-process).
    pub base_url: &'a str,
    /// Progress display.
    pub progress: Arc<dyn Progress>,
    /// Set to `true` to stop cleanly (resumable).
    pub cancel: watch::Receiver<bool>,
    /// When the run started.
    pub started: Instant,
    /// The same, as UTC text for the report.
    pub started_at: String,
}

impl RunContext<'_> {
    /// The extractor's settings for this run: the pipeline's source and transform, the
    /// command line's concurrency.
    pub fn extract_config(&self) -> ExtractConfig {
        let p = self.pipeline;
        let mut cfg = ExtractConfig::from_source(&p.source, self.base_url, p.transform);
        cfg.concurrency = self.opts.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        cfg.kline_family = p.kline_family;
        cfg
    }

    /// Connect: the exchange's clock and `exchangeInfo`, read through the shared weight
    /// budget that the whole run then uses.
    pub async fn connect(&self, cfg: ExtractConfig) -> Result<Session, RunError> {
        Extractor::new(cfg)
            .with_progress(Arc::clone(&self.progress))
            .connect()
            .await
            .map_err(|e| RunError::Exchange {
                base_url: self.base_url.to_owned(),
                reason: error_chain(&e),
            })
    }
}

/// The exchange a pipeline talks to: its URL, or the built-in simulator started in-process
/// for as long as the run lasts.
pub struct Exchange {
    sim: Option<SimHandle>,
    /// The base URL requests go to.
    pub base_url: String,
}

impl Exchange {
    /// Start the simulator when the pipeline asks for it.
    #[cfg_attr(
        not(feature = "simulator"),
        expect(
            clippy::unused_async,
            reason = "only the simulator is started asynchronously"
        )
    )]
    pub async fn start(p: &Pipeline) -> Result<Exchange, RunError> {
        Ok(match &p.source.endpoint {
            Endpoint::Url(u) => Exchange {
                sim: None,
                base_url: u.clone(),
            },
            #[cfg(not(feature = "simulator"))]
            Endpoint::Simulator(_) => {
                return Err(RunError::Unsupported(
                    crate::simulator::NOT_BUILT.to_owned(),
                ));
            }
            #[cfg(feature = "simulator")]
            Endpoint::Simulator(settings) => {
                let h = Simulator::start(SimConfig::from_settings(settings, p.source.market))
                    .await
                    .map_err(RunError::Simulator)?;
                let base_url = h.base_url();
                tracing::info!(url = %base_url, "started the built-in simulator");
                Exchange {
                    sim: Some(h),
                    base_url,
                }
            }
        })
    }

    /// Stop the simulator, if one was started.
    pub async fn shutdown(self) {
        if let Some(h) = self.sim {
            h.shutdown().await;
        }
    }
}

/// A dataset's output while a run writes it: the one-writer lock, taken before the state on
/// disk is read, and the object store's local mirror, brought up to date first.
pub struct Output {
    lock: Option<DatasetLock>,
    remote: Option<Remote>,
}

impl Output {
    /// Take the lock of the dataset under `root` (waiting up to `--lock-wait`) and pull the
    /// object store's copy when the output is one.
    pub async fn open(p: &Pipeline, root: &Path, opts: &RunOptions) -> Result<Output, RunError> {
        Output::open_at(p, crate::layout::lock_file(root, opts.shard), opts).await
    }

    /// [`Output::open`] for a dataset whose lock file is `lock_path` (a dataset with a
    /// directory of its own, such as `<root>/funding_rate/_kline_etl/.lock`).
    pub async fn open_at(
        p: &Pipeline,
        lock_path: PathBuf,
        opts: &RunOptions,
    ) -> Result<Output, RunError> {
        let (name, wait) = (p.name.clone(), opts.lock_wait);
        let lock = blocking("lock", move || {
            crate::load::lock::acquire_file(lock_path, &name, wait)
        })
        .await??;
        let mut output = Output::unlocked(p).await?;
        output.lock = Some(lock);
        Ok(output)
    }

    /// The output without a lock (snapshot datasets: each run writes files of its own): with
    /// an object store, its mirror brought up to date.
    pub async fn unlocked(p: &Pipeline) -> Result<Output, RunError> {
        let remote = match &p.output.remote {
            Some(url) => {
                let remote = crate::load::remote::open(url, &p.output.path)?;
                let pulled = remote.pull().await?;
                tracing::info!(store = %url, files = pulled.files, bytes = pulled.bytes, "mirrored the object store");
                Some(remote)
            }
            None => None,
        };
        Ok(Output { lock: None, remote })
    }

    /// The Delta table of the dataset directory `dir` (named `name`) when `output.format` is
    /// `delta`; `None` for the `parquet` format, which refuses a directory that is a Delta
    /// table (its hive tree holds every version's files: read as a hive tree, rows would
    /// repeat).
    pub fn table(p: &Pipeline, dir: &Path, name: &str) -> Result<Option<Arc<Table>>, RunError> {
        match p.output.format {
            OutputFormat::Delta => Ok(Some(Table::open(dir, name)?)),
            OutputFormat::Parquet if crate::load::delta::is_table(dir) => {
                Err(RunError::Load(LoadError::Delta {
                    path: dir.to_owned(),
                    reason: "the directory is a Delta table but the pipeline has `output.format: parquet`; set `output.format: delta` (or write to another output.path)".into(),
                }))
            }
            OutputFormat::Parquet => Ok(None),
        }
    }

    /// Commit what the run staged in `table` as one version, after every file it adds is
    /// durable (on an object store: uploaded first). No table or nothing staged: nothing.
    pub async fn commit(
        &self,
        table: Option<&Table>,
    ) -> Result<Option<crate::load::delta::Committed>, RunError> {
        let Some(table) = table else { return Ok(None) };
        let committed = match &self.remote {
            None => table.commit(LogStore::Local(table.dir()), "WRITE").await?,
            Some(remote) => {
                if table.pending() > 0 {
                    remote.push().await?;
                }
                let rel = crate::load::delta::slash_relative(remote.mirror(), table.dir())
                    .unwrap_or_default();
                let store = LogStore::Remote {
                    remote,
                    mirror: table.dir(),
                    table: &rel,
                };
                table.commit(store, "WRITE").await?
            }
        };
        Ok(committed)
    }

    /// Upload what the run wrote (data before reports), then release the lock.
    pub async fn close(self) -> Result<(), RunError> {
        if let Some(remote) = &self.remote {
            let pushed = remote.push().await?;
            tracing::info!(store = %remote.url(), files = pushed.files, bytes = pushed.bytes, "uploaded to the object store");
        }
        drop(self.lock);
        Ok(())
    }
}

/// Run blocking file work off the async workers; a worker that dies is a [`RunError::Worker`].
pub async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RunError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RunError::Worker {
            what,
            reason: e.to_string(),
        })
}

//! Load: hive-partitioned, atomic, idempotent Parquet writes of typed klines.
//!
//! - [`partition`]: which file a candle goes to (pure).
//! - [`merge`]: existing + incoming rows, de-duplicated by open time (pure).
//! - [`parquet`]: encoding, the writer properties and reading files back.
//! - [`atomic`]: temporary file, fsync, rename, fsync the directory.
//! - [`scan`]: which series and partition files are on disk.
//! - [`snapshot`]: the snapshot datasets' files (`ticker_price`, `depth`): one file per
//!   snapshot, named by its time.
//! - [`state`]: what one series holds (first and last open time), read from file footers;
//!   the state incremental runs start from.
//! - [`resume`]: `_kline_etl/resume.json`, windows earlier runs left unfinished.
//! - [`lock`]: the one-writer-per-dataset lock.
//! - [`legacy`]: datasets in layout version 1: recognised (and refused), found for migration.
//! - [`migrate`]: converting a layout-1 dataset to layout 2 in place, file by file.
//! - [`delta`]: Delta Lake tables (`output.format: delta`): versioned file names, the
//!   transaction log, one commit per table per run.
//! - [`remote`]: object store outputs (`s3://…`), mirrored to a local directory around a run.
//! - [`DatasetWriter`]: writes one partition: read the existing file (if any), merge, encode,
//!   write to a dot-prefixed temporary file in the same directory, fsync, read the footer back
//!   to check it, rename into place, fsync the directory. A reader never sees a partial file.
//! - [`TaskSink`]: receives the ordered chunks of one market × symbol × interval task, buffers
//!   only the current partition, and writes each partition once it is complete.
//!   [`PartitionBuffer`] (the buffering) and [`DatasetWriter::check_and_prepare`] (the CPU
//!   part of a write) are its parts, shared with the run's loader (`run::loader`), which
//!   prepares many tasks' partitions on encoder threads and commits them in order.
//!
//! Everything here is synchronous CPU and file work; async callers run it on a blocking thread.
//!
//! # Guarantees
//!
//! - File names are deterministic (`year=2024/1h-2024.parquet`, see [`crate::layout`]) and no metadata
//!   depends on time or randomness, so rerunning a pipeline over the same range leaves
//!   byte-identical files (an unchanged partition is not even rewritten; so a changed
//!   `output.compression` or `row_group_rows` applies to partitions as they next change).
//! - An existing file that is corrupt, truncated, foreign, of another price type or time unit,
//!   or of a newer schema version is an error naming the path ([`ExitCode::Output`]) and is
//!   never overwritten.
//! - A crash leaves at most a stale `.1h-2024.parquet.tmp-<pid>-<n>` file, which every hive
//!   reader ignores (dot prefix) and the next successful write of that partition removes
//!   (another running process's temporary file is never removed: [`atomic::remove_stale_temps`]).

pub mod atomic;
pub mod delta;
pub mod legacy;
pub mod lock;
pub mod merge;
pub mod migrate;
pub mod parquet;
pub mod partition;
pub mod remote;
pub mod resume;
pub mod scan;
pub mod snapshot;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{
    Compression, Endpoint, KlineFamily, OnViolation, PartitionSpec, Pipeline, TransformOptions,
};
use crate::exit::ExitCode;
use crate::interval::Interval;
use crate::market::Market;
use crate::symbol::Symbol;
use crate::transform::quality::{self, QualityReport};
use crate::transform::{KlineContext, KlineRows, SchemaError};

pub use merge::MergeReport;
pub use partition::{Granularity, PartitionKey, Period, TaskKey};

/// Why a partition could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file-system operation failed (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Writing a file failed (a full disk, a read-only or missing directory): nothing was
    /// replaced, and the message names the file as well as the failing operation.
    #[error("cannot write `{path}`: {source}; what was there is unchanged")]
    Write {
        /// The file being written (the partition, report or resume file).
        path: PathBuf,
        /// The failure (for a full disk: `No space left on device (os error 28)`).
        #[source]
        source: std::io::Error,
    },
    /// An existing file is not readable Parquet (truncated, corrupt).
    #[error("existing file `{path}` is not a readable Parquet file; it was left untouched")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The Parquet error.
        #[source]
        source: ::parquet::errors::ParquetError,
    },
    /// An existing file is Parquet but not a kline-etl partition of this schema.
    #[error(
        "existing file `{path}` is not a kline-etl partition ({reason}); it was left untouched"
    )]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// Something other than a regular file (a directory, a FIFO, a device) sits where a
    /// partition file belongs.
    #[error(
        "`{path}` is not a regular file but sits where a partition file belongs; move it away (it was left untouched)"
    )]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// An existing file was written by a newer kline-etl.
    #[error(
        "existing file `{path}` has schema version `{found}`, newer than this kline-etl understands; upgrade kline-etl (the file was left untouched)"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: String,
    },
    /// An existing file was written with other transform options.
    #[error(
        "existing file `{path}` holds {found} but the pipeline asks for {wanted}; write to another output path or convert the dataset (the file was left untouched)"
    )]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// What the file has.
        found: String,
        /// What the pipeline wants.
        wanted: String,
    },
    /// Encoding failed.
    #[error("cannot encode `{path}`")]
    Encode {
        /// The destination file.
        path: PathBuf,
        /// The Parquet error.
        #[source]
        source: ::parquet::errors::ParquetError,
    },
    /// The rows cannot be represented in the output schema.
    #[error("cannot build the columns of `{path}`")]
    Schema {
        /// The destination file.
        path: PathBuf,
        /// The schema error.
        #[source]
        source: SchemaError,
    },
    /// The freshly written temporary file did not read back as expected.
    #[error("written file `{path}` failed the read-back check: {reason}")]
    Verify {
        /// The temporary file.
        path: PathBuf,
        /// What did not match.
        reason: String,
    },
    /// A row was handed to the wrong partition (a bug in the caller).
    #[error("row with open time `{open_time}` does not belong to partition `{path}`")]
    WrongPartition {
        /// The partition file.
        path: PathBuf,
        /// The offending open time (ms).
        open_time: i64,
    },
    /// Quality violations with `transform.on_violation: fail`; the partition was not written.
    #[error("quality checks failed for `{path}`, nothing written: {summary}")]
    Quality {
        /// The partition file that was not written.
        path: PathBuf,
        /// The report's one-line summary.
        summary: String,
    },
    /// Another run holds the dataset lock.
    #[error(
        "the dataset is locked by {holder} (lock file `{path}`, waited {waited_secs} s); wait for that run to finish, or pass `--lock-wait SECS` to wait for it"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it.
        holder: String,
        /// How long this run waited.
        waited_secs: u64,
    },
    /// The dataset is in layout version 1: runs neither read nor extend it until it is
    /// converted.
    #[error(
        "`{path}` holds a dataset in layout version 1 (written by an earlier kline-etl); this release writes layout version {version} and never mixes the two: convert it in place with `kline-etl migrate {root}` (`--dry-run` lists what it would do)",
        version = crate::layout::LAYOUT_VERSION,
        root = root.display()
    )]
    OldLayout {
        /// The layout-1 dataset directory.
        path: PathBuf,
        /// The output root to pass to `kline-etl migrate`.
        root: PathBuf,
    },
    /// A partition converted by `kline-etl migrate` does not read back with the old file's rows
    /// (the old file is kept).
    #[error(
        "`{path}` does not hold the rows of the layout-1 file it was converted from; the old file is kept, nothing was removed"
    )]
    MigrateVerify {
        /// The converted file.
        path: PathBuf,
    },
    /// A report or state file (`_kline_etl/summary.json`, `_kline_etl/resume.json`, a manifest) could not be
    /// serialised (a bug: its types always serialise).
    #[error("cannot serialise `{path}`")]
    Report {
        /// The file that was not written.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A Delta table's log cannot be read or committed to (see [`delta`]).
    #[error("Delta table `{path}`: {reason}")]
    Delta {
        /// The table (or its log).
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// Another writer committed a change to a partition this run wrote too, meanwhile: this
    /// run committed nothing (its files stay unreferenced) and its rerun redoes the work.
    #[error("Delta table `{path}`: {reason}")]
    Conflict {
        /// The table.
        path: PathBuf,
        /// Which version and partition.
        reason: String,
    },
    /// A test-only injected failure (see [`DatasetWriter::inject_fault`]).
    #[error("injected failure before renaming `{path}` into place")]
    Injected {
        /// The temporary file left behind.
        path: PathBuf,
    },
}

impl LoadError {
    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            LoadError::Quality { .. } => ExitCode::TasksFailed,
            LoadError::WrongPartition { .. } | LoadError::Report { .. } => ExitCode::Internal,
            LoadError::Locked { .. } => ExitCode::Locked,
            LoadError::Conflict { .. } => ExitCode::Resumable,
            _ => ExitCode::Output,
        }
    }
}

/// How files are written: derived from a pipeline by [`WriteOptions::from_pipeline`].
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOptions {
    /// The pipeline name (Parquet metadata `kline_etl.pipeline`).
    pub pipeline: String,
    /// Where the data came from (`kline_etl.source`): the base URL, or `simulator`.
    pub source: String,
    /// Typing options (price type, time unit, on-violation policy).
    pub transform: TransformOptions,
    /// `output.compression`.
    pub compression: Compression,
    /// `output.row_group_rows`.
    pub row_group_rows: usize,
    /// `output.partition`.
    pub partition: PartitionSpec,
}

impl WriteOptions {
    /// The write options of a pipeline.
    pub fn from_pipeline(p: &Pipeline) -> Self {
        WriteOptions {
            pipeline: p.name.clone(),
            source: match &p.source.endpoint {
                Endpoint::Url(u) => u.clone(),
                Endpoint::Simulator(_) => "simulator".to_owned(),
            },
            transform: p.transform,
            compression: p.output.compression,
            row_group_rows: p.output.row_group_rows,
            partition: p.output.partition,
        }
    }
}

/// What writing one partition did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The partition file.
    pub path: PathBuf,
    /// Rows in the file now.
    pub rows_written: u64,
    /// Rows that were not in the file before.
    pub rows_new: u64,
    /// Stored rows replaced by different incoming rows (conflicts).
    pub rows_replaced: u64,
    /// Incoming rows identical to stored ones.
    pub rows_unchanged: u64,
    /// Earliest open times (ms) of conflicts.
    pub conflicts: Vec<i64>,
    /// File size in bytes.
    pub bytes: u64,
    /// Whether the file was (re)written; `false` when nothing changed.
    pub rewritten: bool,
}

/// A partition ready to be committed: [`DatasetWriter::prepare`]'s result.
#[derive(Debug)]
pub struct Prepared {
    /// Where the bytes go: the partition file, or in a Delta table its versioned file.
    path: PathBuf,
    /// The partition file's unversioned path (the observer's and the table's key).
    canonical: PathBuf,
    /// For a Delta table: the file's schema and its add's statistics.
    delta: Option<(arrow_schema::SchemaRef, String)>,
    rows_total: u64,
    report: MergeReport,
    /// The new file's bytes; `None` when the stored file already holds exactly these rows.
    bytes: Option<Vec<u8>>,
}

impl Prepared {
    /// The partition file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Test hooks for crash-safety tests.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Stop after the temporary file is written and fsynced, before the rename.
    BeforeRename,
}

/// Sees the full contents of every partition a [`DatasetWriter`] stores, so a caller can
/// derive per-partition facts (the run summary's statistics) from rows already in memory
/// instead of reading the files back.
///
/// [`WriteObserver::staged`] comes before the file is replaced; only a following
/// [`WriteObserver::committed`] for the same path means the file on disk now holds exactly
/// those rows (a failed write is never committed).
pub trait WriteObserver: Send + Sync + std::fmt::Debug {
    /// `rows` are about to become the whole content of partition `key` at `path`. The
    /// returned `(key, value)` pairs are stored in the file's key-value metadata when the file
    /// is (re)written. `checked`, when given, is `quality::check(rows, key's interval)`,
    /// already computed by the writer's caller.
    fn staged(
        &self,
        key: &PartitionKey,
        path: &Path,
        rows: &KlineRows,
        checked: Option<&QualityReport>,
    ) -> Vec<(String, String)>;
    /// The file at `path` (`bytes` long) now holds the rows last staged for the partition
    /// file `staged` (the same path, except in a Delta table, whose files are versioned).
    fn committed(&self, staged: &Path, path: &Path, bytes: u64);
}

/// Writes partitions under one output root. Cheap to clone; synchronous.
#[derive(Debug, Clone)]
pub struct DatasetWriter {
    root: PathBuf,
    opts: WriteOptions,
    fault: Option<Fault>,
    family: KlineFamily,
    observer: Option<Arc<dyn WriteObserver>>,
    table: Option<Arc<delta::Table>>,
}

impl DatasetWriter {
    /// A writer for the dataset under `root` (the pipeline's `output.path`).
    pub fn new(root: impl Into<PathBuf>, opts: WriteOptions) -> Self {
        DatasetWriter {
            root: root.into(),
            opts,
            fault: None,
            family: KlineFamily::Trades,
            observer: None,
            table: None,
        }
    }

    /// Write into a Delta table (`output.format: delta`): files get versioned names, are
    /// never replaced, and are staged in `table` for its commit ([`delta`]).
    #[must_use]
    pub fn with_table(mut self, table: Arc<delta::Table>) -> Self {
        self.table = Some(table);
        self
    }

    /// Show every partition written (or found unchanged) to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn WriteObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Write a kline family other than traded-price klines: families without volumes (mark,
    /// index, premium index) store only the time and OHLC columns (plus `symbol`,
    /// `interval`); every family's files name it in `kline_etl.kline_family`. (Where the
    /// family's files go is the writer's root: see [`crate::layout::kline_root`].)
    #[must_use]
    pub fn with_family(mut self, family: KlineFamily) -> Self {
        self.family = family;
        self
    }

    /// The output root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The write options.
    pub fn options(&self) -> &WriteOptions {
        &self.opts
    }

    /// The absolute path of a partition's file.
    pub fn path_of(&self, key: &PartitionKey) -> PathBuf {
        self.root.join(key.relative_path())
    }

    /// Make the next writes fail at `fault` (tests only).
    #[doc(hidden)]
    pub fn inject_fault(&mut self, fault: Option<Fault>) {
        self.fault = fault;
    }

    /// Write `rows` (all of them inside `key`'s period) into the partition `key`, merging them
    /// with the rows already stored there: de-duplicated by open time, incoming rows winning.
    /// The file is replaced atomically; an unchanged partition is left as it is.
    pub fn write_partition(
        &self,
        key: &PartitionKey,
        rows: KlineRows,
    ) -> Result<WriteOutcome, LoadError> {
        let prepared = self.prepare(key, rows)?;
        self.commit(prepared)
    }

    /// The CPU part of [`DatasetWriter::write_partition`], which may run on another thread:
    /// read the stored rows, merge, summarise (the observer's `staged`), encode. Nothing on
    /// disk changes until [`DatasetWriter::commit`]; two preparations of the same partition
    /// must not overlap a commit of it (see [`loader`]).
    pub fn prepare(&self, key: &PartitionKey, rows: KlineRows) -> Result<Prepared, LoadError> {
        self.prepare_checked(key, rows, None)
    }

    /// An empty [`PartitionBuffer`] for `task`, partitioned as this writer writes.
    pub fn partition_buffer(&self, task: TaskKey) -> PartitionBuffer {
        PartitionBuffer::new(task, self.opts.partition)
    }

    /// The CPU part of writing a complete partition of a task: the quality check (with
    /// `on_violation: fail` a partition with violations is not written:
    /// [`LoadError::Quality`]) and [`DatasetWriter::prepare`]. The report and the prepared
    /// write, for [`DatasetWriter::commit`].
    pub fn check_and_prepare(
        &self,
        key: &PartitionKey,
        rows: KlineRows,
    ) -> Result<(QualityReport, Prepared), LoadError> {
        let signed = self.family == KlineFamily::PremiumIndex;
        let report = quality::check_with(&rows, key.task.interval, signed);
        if !report.is_clean() {
            if self.opts.transform.on_violation == OnViolation::Fail {
                return Err(LoadError::Quality {
                    path: self.path_of(key),
                    summary: report.summary(),
                });
            }
            tracing::warn!(
                path = %self.path_of(key).display(),
                "quality findings (written, `on_violation: report`): {}",
                report.summary()
            );
        }
        let prepared = self.prepare_checked(key, rows, Some(&report))?;
        Ok((report, prepared))
    }

    /// [`DatasetWriter::prepare`] of rows whose quality report (`quality::check` of `rows`)
    /// the caller has computed already: when the partition is new, its rows are exactly those
    /// rows and the observer is handed the report instead of checking them again.
    fn prepare_checked(
        &self,
        key: &PartitionKey,
        rows: KlineRows,
        checked: Option<&QualityReport>,
    ) -> Result<Prepared, LoadError> {
        let path = self.path_of(key);
        // The period's bounds once, not per row (they are calendar arithmetic).
        let range = key.period.range_ms();
        let inside = |t: i64| range.is_none_or(|(start, end)| (start..end).contains(&t));
        if let Some(&t) = rows.open_time.iter().find(|&&t| !inside(t)) {
            return Err(LoadError::WrongPartition { path, open_time: t });
        }
        // Compare and summarise what the file will hold, not fields it does not store.
        let rows = if self.family.has_volumes() {
            rows
        } else {
            rows.without_volumes()
        };
        // In a Delta table the partition's current file is the one the log (or this run)
        // says; otherwise the partition file. `symlink_metadata`, not `exists`: a dangling
        // link or a directory in the way is refused by the reader, never replaced.
        let current = match &self.table {
            Some(t) => t.current_file(&path),
            None => fs_err::symlink_metadata(&path)
                .is_ok()
                .then(|| path.clone()),
        };
        let existing = if let Some(current) = &current {
            let (old, info) = parquet::read_file(current)?;
            let want = (self.opts.transform.prices, self.opts.transform.time_unit);
            if (info.prices, info.time_unit) != want {
                let show = |(p, u)| {
                    format!(
                        "prices `{}` with time unit `{}`",
                        crate::transform::schema::price_type_str(p),
                        crate::transform::schema::time_unit_str(u)
                    )
                };
                return Err(LoadError::Incompatible {
                    path,
                    found: show((info.prices, info.time_unit)),
                    wanted: show(want),
                });
            }
            Some(old)
        } else {
            None
        };
        let had_file = existing.is_some();
        // A new partition of ordered rows stores exactly the rows the report is about.
        let checked =
            checked.filter(|_| !had_file && self.family.has_volumes() && rows.is_strictly_sorted());
        let empty = KlineRows::empty(rows.price_type());
        let (merged, report) = merge::merge(existing.unwrap_or(empty), rows);
        let rows_total = merged.len() as u64;
        // Open times are milliseconds in memory, whatever the file's time unit.
        let merged_bounds = merged
            .open_time
            .first()
            .zip(merged.open_time.last())
            .map(|(a, b)| (*a, *b));
        let notes: Vec<::parquet::file::metadata::KeyValue> = match &self.observer {
            Some(o) => o
                .staged(key, &path, &merged, checked)
                .into_iter()
                .map(|(k, v)| ::parquet::file::metadata::KeyValue::new(k, v))
                .collect(),
            None => Vec::new(),
        };
        if had_file && !report.changed() {
            return Ok(Prepared {
                canonical: path,
                path: current.unwrap_or_default(),
                delta: None,
                rows_total,
                report,
                bytes: None,
            });
        }
        let ctx = KlineContext {
            market: key.task.market,
            symbol: &key.task.symbol,
            interval: key.task.interval,
            options: &self.opts.transform,
        };
        let batch =
            crate::transform::schema::into_record_batch(merged, &ctx).map_err(|source| {
                LoadError::Schema {
                    path: path.clone(),
                    source,
                }
            })?;
        let (bytes, schema) = if self.family == KlineFamily::Trades {
            let bytes = parquet::encode(&batch, key, &self.opts, &notes, &path)?;
            (bytes, batch.schema())
        } else {
            let batch = crate::transform::schema::project_family(&batch, self.family).map_err(
                |source| LoadError::Schema {
                    path: path.clone(),
                    source,
                },
            )?;
            let bytes =
                parquet::encode_family(&batch, key, &self.opts, self.family, &notes, &path)?;
            (bytes, batch.schema())
        };
        let (target, delta) = match &self.table {
            Some(_) => {
                let bounds = merged_bounds
                    .map(|(a, b)| ("open_time", a, b, arrow_schema::TimeUnit::Millisecond));
                let stats = delta::stats_json(rows_total, bounds);
                (delta::versioned_path(&path, &bytes), Some((schema, stats)))
            }
            None => (path.clone(), None),
        };
        Ok(Prepared {
            path: target,
            canonical: path,
            delta,
            rows_total,
            report,
            bytes: Some(bytes),
        })
    }

    /// The I/O part of [`DatasetWriter::write_partition`]: replace the file atomically with
    /// the prepared bytes (an unchanged partition is left as it is) and tell the observer.
    pub fn commit(&self, p: Prepared) -> Result<WriteOutcome, LoadError> {
        let Prepared {
            path,
            canonical,
            delta,
            rows_total,
            report,
            bytes,
        } = p;
        let (len, rewritten) = match bytes {
            None => (fs_err::metadata(&path)?.len(), false),
            Some(bytes) => {
                self.replace_atomically(&path, &bytes, rows_total)?;
                (bytes.len() as u64, true)
            }
        };
        if let (Some(table), Some((schema, stats))) = (&self.table, delta) {
            table.stage(&canonical, &path, len, &schema, stats)?;
        }
        if let Some(o) = &self.observer {
            o.committed(&canonical, &path, len);
        }
        Ok(WriteOutcome {
            path,
            rows_written: rows_total,
            rows_new: report.new,
            rows_replaced: report.replaced,
            rows_unchanged: report.unchanged,
            conflicts: report.conflict_examples,
            bytes: len,
            rewritten,
        })
    }

    /// Write `bytes` to a temporary sibling of `path`, fsync, check it reads back with
    /// `rows` rows, rename it over `path` and fsync the directory ([`atomic::write_atomic`]).
    fn replace_atomically(&self, path: &Path, bytes: &[u8], rows: u64) -> Result<(), LoadError> {
        let fault = self.fault;
        atomic::write_atomic(
            path,
            bytes,
            |tmp| {
                let info = parquet::read_info(tmp)?;
                if info.rows != rows {
                    return Err(LoadError::Verify {
                        path: tmp.to_owned(),
                        reason: format!("footer says {} rows, expected {rows}", info.rows),
                    });
                }
                if fault == Some(Fault::BeforeRename) {
                    return Err(LoadError::Injected {
                        path: tmp.to_owned(),
                    });
                }
                Ok(())
            },
            |e| matches!(e, LoadError::Injected { .. }),
        )
    }
}

/// Read one partition file back into rows (sorted by open time, as written). Errors name the
/// path: corrupt, foreign or newer-schema files are refused.
pub fn read_partition(path: &Path) -> Result<KlineRows, LoadError> {
    parquet::read_file(path).map(|(rows, _)| rows)
}

/// The newest stored open time (ms) of one market × symbol × interval under `root`, or `None`
/// when nothing is stored. Reads only the footer statistics of the newest partition file of
/// each granularity found (partition directories sort by time as text).
pub fn last_open_time(
    root: &Path,
    market: Market,
    symbol: &Symbol,
    interval: Interval,
) -> Result<Option<i64>, LoadError> {
    let task = TaskKey {
        market,
        symbol: symbol.clone(),
        interval,
    };
    let files = scan::series_files(root, &task)?;
    let mut best: Option<i64> = None;
    // The newest file of each name shape holds the newest candle.
    for file in scan::ends_per_shape(&files) {
        if let Some(t) = parquet::max_open_time(file)? {
            best = Some(best.map_or(t, |b| b.max(t)));
        }
    }
    Ok(best)
}

/// What a task's sink wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskOutcome {
    /// One entry per partition written (or found unchanged), in time order.
    pub partitions: Vec<WriteOutcome>,
    /// Quality findings over every row received.
    pub quality: QualityReport,
}

/// The partition of one task being filled: chunks (pages) in time order go in, complete
/// partitions come out. Each partition's columns are allocated once, sized for the period's
/// candles, not grown page by page (or are the first chunk's own, when it has that room).
#[derive(Debug)]
pub struct PartitionBuffer {
    task: TaskKey,
    spec: PartitionSpec,
    current: Option<(PartitionKey, KlineRows)>,
}

impl PartitionBuffer {
    /// An empty buffer for `task`, partitioned by `spec`.
    pub fn new(task: TaskKey, spec: PartitionSpec) -> Self {
        PartitionBuffer {
            task,
            spec,
            current: None,
        }
    }

    /// Append the next chunk; the partitions it completes (those before the chunk's last
    /// partition), in time order.
    pub fn push(&mut self, rows: KlineRows) -> Vec<(PartitionKey, KlineRows)> {
        let mut done = Vec::new();
        for (key, part) in partition::split(rows, &self.task, self.spec) {
            match &mut self.current {
                Some((cur, buf)) if *cur == key => buf.append(part),
                _ => {
                    let room = capacity_of(&key);
                    let buf = if part.capacity() >= room {
                        // A chunk with room for the whole period (an archive file of the
                        // partition's period) becomes the buffer: no copy.
                        part
                    } else {
                        let mut buf = KlineRows::with_capacity(part.price_type(), room);
                        buf.append(part);
                        buf
                    };
                    done.extend(self.current.replace((key, buf)));
                }
            }
        }
        done
    }

    /// The partition being filled, taken out (the task sends no more rows).
    pub fn take(&mut self) -> Option<(PartitionKey, KlineRows)> {
        self.current.take()
    }
}

/// Room for every candle of `key`'s period (capped at 2^17 rows, for 1s candles).
fn capacity_of(key: &PartitionKey) -> usize {
    key.period.range_ms().map_or(0, |(start, end)| {
        key.task.interval.count_in(start, end).clamp(0, 1 << 17) as usize
    })
}

/// Receives the ordered chunks (pages) of one market × symbol × interval task and writes them
/// partition by partition, on the caller's thread. Only the current partition is buffered: a
/// partition is written when a chunk arrives for a later one, and at [`TaskSink::finish`].
/// Memory is bounded by one partition (plus a chunk), never the whole history.
///
/// Every flushed partition is quality-checked first; with `on_violation: fail` a partition with
/// violations is not written and [`LoadError::Quality`] is returned (partitions flushed before
/// stay written: each is complete and consistent on its own).
#[derive(Debug)]
pub struct TaskSink {
    writer: DatasetWriter,
    buffer: PartitionBuffer,
    outcome: TaskOutcome,
}

impl TaskSink {
    /// A sink for `task`, writing through `writer`.
    pub fn new(writer: DatasetWriter, task: TaskKey) -> Self {
        TaskSink {
            buffer: writer.partition_buffer(task),
            writer,
            outcome: TaskOutcome::default(),
        }
    }

    /// Accept the next chunk of rows (normally one page, in time order).
    pub fn push(&mut self, rows: KlineRows) -> Result<(), LoadError> {
        for (key, rows) in self.buffer.push(rows) {
            self.write(&key, rows)?;
        }
        Ok(())
    }

    fn write(&mut self, key: &PartitionKey, rows: KlineRows) -> Result<(), LoadError> {
        let (report, prepared) = self.writer.check_and_prepare(key, rows)?;
        self.outcome.quality.merge(&report);
        let out = self.writer.commit(prepared)?;
        self.outcome.partitions.push(out);
        Ok(())
    }

    /// Write the last buffered partition and return what the task wrote.
    pub fn finish(mut self) -> Result<TaskOutcome, LoadError> {
        if let Some((key, rows)) = self.buffer.take() {
            self.write(&key, rows)?;
        }
        Ok(self.outcome)
    }
}

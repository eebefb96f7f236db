//! The loader of a kline run: the extractor's ordered pages go, through a bounded channel, to
//! one thread owning a [`Loader`]: it buffers each task's current partition and writes every
//! partition once it is complete, with the CPU work of writing (quality checks, merge,
//! statistics, Parquet encoding) spread over encoder threads, off the async workers.
//!
//! The [`Loader`] owns the order of writes, not their content (that is [`DatasetWriter`]):
//!
//! - A completed partition becomes a *job*: [`DatasetWriter::check_and_prepare`] on an encoder
//!   thread. Jobs of all tasks go into one first-in-first-out queue, and the thread that owns
//!   the [`Loader`] commits them ([`DatasetWriter::commit`]: the atomic replace and the
//!   observer's `committed`) strictly in the order they were queued. So files, their bytes,
//!   the observer's calls and each task's outcome are exactly what one thread writing the
//!   partitions one after the other gives; only the preparing overlaps.
//! - A job for a partition whose earlier job is still queued waits for that one to commit
//!   first (two windows of one series may share a month): a preparation always reads the file
//!   as the earlier writes left it.
//! - Once a task's partition fails (quality with `on_violation: fail`, I/O), its later jobs
//!   are dropped uncommitted and its later rows ignored, as a sequential writer stops at the
//!   first failure; partitions committed before stay written (each is complete on its own).
//! - Memory: at most `workers + 1` prepared or preparing partitions besides the one buffered
//!   per task.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::error::error_chain;
use crate::extract::ExtractEvent;
use crate::load::{
    DatasetWriter, LoadError, PartitionBuffer, PartitionKey, Prepared, TaskKey, TaskOutcome,
};
use crate::run::RunError;
use crate::transform::KlineRows;
use crate::transform::quality::QualityReport;

/// What the loader wrote per task (by task index).
pub type LoadResults = HashMap<usize, Result<TaskOutcome, LoadError>>;
/// How the extractor said each task ended (by task index).
pub type ExtractResults = HashMap<usize, crate::extract::TaskOutcome>;

/// Start the loader thread for the tasks `keys` (by task index), with
/// [`default_workers`] encoder threads.
pub fn spawn(
    rx: mpsc::Receiver<ExtractEvent>,
    writer: DatasetWriter,
    keys: Vec<TaskKey>,
) -> std::io::Result<std::thread::JoinHandle<(ExtractResults, LoadResults)>> {
    std::thread::Builder::new()
        .name("kline-etl-load".into())
        .spawn(move || load_loop(rx, writer, &keys))
}

/// Wait for the loader (a loader that panicked is a bug: [`RunError::Worker`]).
pub fn join(
    handle: std::thread::JoinHandle<(ExtractResults, LoadResults)>,
) -> Result<(ExtractResults, LoadResults), RunError> {
    handle.join().map_err(|_| RunError::Worker {
        what: "loader",
        reason: "it panicked".to_owned(),
    })
}

/// The loader thread: a [`Loader`] fed in order.
fn load_loop(
    mut rx: mpsc::Receiver<ExtractEvent>,
    writer: DatasetWriter,
    keys: &[TaskKey],
) -> (ExtractResults, LoadResults) {
    let mut loader = Loader::new(writer, keys.to_vec(), default_workers());
    let mut extracted: ExtractResults = HashMap::new();
    while let Some(ev) = rx.blocking_recv() {
        match ev {
            ExtractEvent::Rows { task, rows, hold } => {
                loader.push(task.0, rows);
                drop(hold);
            }
            ExtractEvent::TaskDone { task, outcome } => {
                extracted.insert(task.0, outcome);
                loader.task_done(task.0);
            }
        }
    }
    // A channel closed without TaskDone (extractor error): still commit what arrived, since
    // every partition written is complete and consistent on its own.
    let results = loader.finish();
    for (task, r) in &results {
        if let (Err(e), Some(key)) = (r, keys.get(*task)) {
            tracing::error!(task = %key.symbol, "{}", error_chain(e));
        }
    }
    (extracted, results)
}

/// What a job hands back: the partition's quality findings and the prepared write.
type JobResult = Result<(QualityReport, Prepared), LoadError>;
type Job = Box<dyn FnOnce() + Send>;

/// Worker threads running jobs (closures) in the order they are handed in.
#[derive(Debug)]
struct Pool {
    jobs: Option<std_mpsc::Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    fn new(workers: usize) -> std::io::Result<Pool> {
        let (tx, rx) = std_mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let rx = Arc::clone(&rx);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("kline-etl-encode-{i}"))
                    .spawn(move || {
                        loop {
                            // The lock is held only to take the next job.
                            let job = {
                                let rx =
                                    rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                                rx.recv()
                            };
                            match job {
                                Ok(job) => job(),
                                Err(_) => break, // the loader is done
                            }
                        }
                    })?,
            );
        }
        Ok(Pool {
            jobs: Some(tx),
            threads,
        })
    }

    /// Run `job` on a worker; `false` when no worker is left (then the caller runs it).
    fn run(&self, job: Job) -> Result<(), Job> {
        match &self.jobs {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// How many workers prepare partitions by default: one per core, at most 4 (beyond that the
/// pages, not the encoding, set the pace, and each worker holds a partition in memory).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// One task's state: the partition being filled and what was committed.
#[derive(Debug)]
struct TaskState {
    buffer: PartitionBuffer,
    outcome: TaskOutcome,
    /// The task's load failed: its later rows and jobs are dropped.
    failed: bool,
    /// Its error, until taken.
    error: Option<LoadError>,
}

/// A queued job.
struct Queued {
    task: usize,
    path: PathBuf,
    result: std_mpsc::Receiver<JobResult>,
}

/// The loader of one run (see the module docs). Tasks are numbered by the caller; `keys[i]`
/// is task `i`'s series.
pub struct Loader {
    writer: DatasetWriter,
    keys: Vec<TaskKey>,
    tasks: HashMap<usize, TaskState>,
    queue: VecDeque<Queued>,
    /// Queued jobs per partition file.
    queued_paths: HashMap<PathBuf, usize>,
    pool: Option<Pool>,
    max_queued: usize,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("tasks", &self.tasks.len())
            .field("queued", &self.queue.len())
            .field(
                "workers",
                &self.pool.as_ref().map_or(0, |p| p.threads.len()),
            )
            .finish_non_exhaustive()
    }
}

impl Loader {
    /// A loader writing through `writer`, preparing partitions on `workers` threads (0: on
    /// the caller's thread, each partition committed as soon as it is complete).
    pub fn new(writer: DatasetWriter, keys: Vec<TaskKey>, workers: usize) -> Self {
        let pool = if workers == 0 {
            None
        } else {
            match Pool::new(workers) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!("cannot start encoder threads ({e}); encoding on one thread");
                    None
                }
            }
        };
        let max_queued = pool.as_ref().map_or(0, |p| p.threads.len() + 1);
        Loader {
            writer,
            keys,
            tasks: HashMap::new(),
            queue: VecDeque::new(),
            queued_paths: HashMap::new(),
            pool,
            max_queued,
        }
    }

    /// Accept the next chunk of task `task`'s rows (normally one page, in time order).
    /// Rows of a task whose load has failed, or of a task number without a key, are dropped.
    pub fn push(&mut self, task: usize, rows: KlineRows) {
        let Some(key) = self.keys.get(task) else {
            return;
        };
        let writer = &self.writer;
        let state = self.tasks.entry(task).or_insert_with(|| TaskState {
            buffer: writer.partition_buffer(key.clone()),
            outcome: TaskOutcome::default(),
            failed: false,
            error: None,
        });
        if state.failed {
            return;
        }
        for (k, rows) in state.buffer.push(rows) {
            self.submit(task, k, rows);
        }
    }

    /// Task `task` sends no more rows: its last partition is written.
    pub fn task_done(&mut self, task: usize) {
        let done = self.tasks.get_mut(&task).and_then(|s| s.buffer.take());
        if let Some((k, rows)) = done {
            self.submit(task, k, rows);
        }
    }

    /// The error of task `task`, taken out (the task stays failed: later rows are dropped).
    /// Meaningful once its jobs are committed: at once without workers, else after
    /// [`Loader::finish`].
    pub fn take_error(&mut self, task: usize) -> Option<LoadError> {
        self.tasks.get_mut(&task)?.error.take()
    }

    /// Write every partition still buffered and wait for all jobs: each task's outcome (or
    /// its first error), by task number. Tasks that never received a row are absent.
    pub fn finish(mut self) -> LoadResults {
        let mut open: Vec<usize> = self.tasks.keys().copied().collect();
        open.sort_unstable();
        for task in open {
            self.task_done(task);
        }
        while !self.queue.is_empty() {
            self.commit_front();
        }
        self.tasks
            .drain()
            .map(|(task, s)| {
                if s.failed {
                    let e = s.error.unwrap_or_else(|| {
                        LoadError::Io(std::io::Error::other("an earlier error stopped this task"))
                    });
                    (task, Err(e))
                } else {
                    (task, Ok(s.outcome))
                }
            })
            .collect()
    }

    fn submit(&mut self, task: usize, key: PartitionKey, rows: KlineRows) {
        if self.tasks.get(&task).is_some_and(|s| s.failed) {
            return;
        }
        let path = self.writer.path_of(&key);
        // A preparation reads the file as every earlier write of it left it.
        while self.queued_paths.contains_key(&path) {
            self.commit_front();
        }
        while self.queue.len() >= self.max_queued.max(1) {
            self.commit_front();
        }
        let (tx, rx) = std_mpsc::sync_channel::<JobResult>(1);
        let writer = self.writer.clone();
        let job: Job = Box::new(move || {
            let _ = tx.send(writer.check_and_prepare(&key, rows));
        });
        if let Some(job) = match &self.pool {
            Some(pool) => pool.run(job).err(),
            None => Some(job),
        } {
            job();
        }
        *self.queued_paths.entry(path.clone()).or_default() += 1;
        self.queue.push_back(Queued {
            task,
            path,
            result: rx,
        });
        if self.pool.is_none() {
            self.commit_front();
        }
    }

    /// Wait for the oldest job and commit it (or drop it, when its task has failed).
    fn commit_front(&mut self) {
        let Some(q) = self.queue.pop_front() else {
            return;
        };
        if let Some(n) = self.queued_paths.get_mut(&q.path) {
            *n -= 1;
            if *n == 0 {
                self.queued_paths.remove(&q.path);
            }
        }
        let result = q.result.recv().unwrap_or_else(|_| {
            Err(LoadError::Io(std::io::Error::other(format!(
                "the encoder preparing `{}` stopped",
                q.path.display()
            ))))
        });
        let Some(state) = self.tasks.get_mut(&q.task) else {
            return;
        };
        if state.failed {
            return;
        }
        let committed = result.and_then(|(report, prepared)| {
            state.outcome.quality.merge(&report);
            self.writer.commit(prepared)
        });
        match committed {
            Ok(out) => state.outcome.partitions.push(out),
            Err(e) => {
                state.failed = true;
                state.error = Some(e);
                state.buffer.take();
            }
        }
    }
}

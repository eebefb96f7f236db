//! The loader thread of a kline run: the extractor's ordered pages go, through a bounded
//! channel, to one [`TaskSink`] per task (typing, checks, partition merges and atomic writes
//! are CPU work, kept off the async workers).

use std::collections::HashMap;

use tokio::sync::mpsc;

use crate::error::error_chain;
use crate::extract::ExtractEvent;
use crate::load::{DatasetWriter, LoadError, TaskKey, TaskSink};
use crate::run::RunError;

/// What the loader wrote per task (by task index).
pub type LoadResults = HashMap<usize, Result<crate::load::TaskOutcome, LoadError>>;
/// How the extractor said each task ended (by task index).
pub type ExtractResults = HashMap<usize, crate::extract::TaskOutcome>;

/// Start the loader thread for the tasks `keys` (by task index).
pub fn spawn(
    rx: mpsc::Receiver<ExtractEvent>,
    writer: DatasetWriter,
    keys: Vec<TaskKey>,
) -> std::io::Result<std::thread::JoinHandle<(ExtractResults, LoadResults)>> {
    std::thread::Builder::new()
        .name("kline-etl-load".into())
        .spawn(move || load_loop(rx, &writer, &keys))
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
                    results.insert(task.0, Err(e));
                }
            }
            ExtractEvent::TaskDone { task, outcome } => {
                extracted.insert(task.0, outcome);
                if let Some(sink) = sinks.remove(&task.0) {
                    let r = sink.finish();
                    if let Err(e) = &r {
                        tracing::error!(task = %keys[task.0].symbol, "{}", error_chain(e));
                    }
                    results.insert(task.0, r);
                }
            }
        }
    }
    // A channel closed without TaskDone (extractor error): still commit what arrived, since
    // every partition written is complete and consistent on its own.
    for (task, sink) in sinks {
        results.insert(task, sink.finish());
    }
    (extracted, results)
}

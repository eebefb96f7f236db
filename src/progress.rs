//! The progress display on stderr (indicatif): an overall bar of page requests with candles,
//! rate and ETA, and one line per task in flight (`BTCUSDT 1h  12/30 pages · 11,000 candles`).
//! The extractor only sees the [`Progress`] trait; this is the terminal implementation, used
//! when stderr is a terminal and neither `-q` nor `--no-progress` was given.
//!
//! Log lines are passed through [`crate::config::redact`] (no registered secret is ever
//! printed) and must not garble the bars: [`LogWriter`] is the writer the logger uses, and while
//! a display is active it prints each line through [`MultiProgress::suspend`], which clears
//! the bars, writes the line and redraws them below it.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::extract::{Progress, TaskId, TaskOutcome};

/// The display currently drawn, if any (log lines are printed through it).
static ACTIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Per-task lines shown at once; more tasks in flight are summed up in the overall bar.
const MAX_TASK_LINES: usize = 8;

/// The overall bar and the per-task lines.
#[derive(Debug)]
pub struct Bar {
    multi: MultiProgress,
    overall: ProgressBar,
    rows: AtomicU64,
    labels: Mutex<Vec<String>>,
    lines: Mutex<HashMap<usize, (ProgressBar, u64)>>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Bar {
    /// A display drawn on stderr; log lines go above it until [`Bar::finish`].
    pub fn new() -> Bar {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(style(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} pages · {msg} · {per_sec} · eta {eta}",
        ));
        *ACTIVE.lock().unwrap_or_else(PoisonError::into_inner) = Some(multi.clone());
        Bar {
            multi,
            overall,
            rows: AtomicU64::new(0),
            labels: Mutex::new(Vec::new()),
            lines: Mutex::new(HashMap::new()),
        }
    }

    /// Remove the display from the screen.
    pub fn finish(&self) {
        for (line, _) in self
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, v)| v)
        {
            line.finish_and_clear();
        }
        self.overall.finish_and_clear();
        *ACTIVE.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Default for Bar {
    fn default() -> Self {
        Bar::new()
    }
}

impl Progress for Bar {
    fn tasks_planned(&self, labels: &[String]) {
        labels.clone_into(&mut self.labels.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn task_started(&self, task: TaskId, pages: usize) {
        self.overall.inc_length(pages as u64);
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() >= MAX_TASK_LINES {
            return;
        }
        let label = self
            .labels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(task.0)
            .cloned()
            .unwrap_or_else(|| format!("task {}", task.0));
        let line = self.multi.add(ProgressBar::new(pages as u64));
        line.set_style(style("  {prefix:<22} {pos:>5}/{len} pages · {msg}"));
        line.set_prefix(label);
        line.set_message("0 candles");
        lines.insert(task.0, (line, 0));
    }

    fn rows(&self, task: TaskId, rows: usize) {
        let total = self.rows.fetch_add(rows as u64, Ordering::Relaxed) + rows as u64;
        self.overall.set_message(format!("{total} candles"));
        if let Some((line, n)) = self
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&task.0)
        {
            *n += rows as u64;
            line.inc(1);
            line.set_message(format!("{n} candles"));
        }
    }

    fn request(&self, _weight: u32) {
        self.overall.inc(1);
    }

    fn task_done(&self, task: TaskId, _outcome: &TaskOutcome) {
        if let Some((line, _)) = self
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&task.0)
        {
            line.finish_and_clear();
        }
    }
}

/// The logger's writer: stderr, through the active progress display when there is one.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let text = String::from_utf8_lossy(buf);
        let redacted = crate::config::redact(&text);
        let buf = redacted.as_bytes();
        let active = ACTIVE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match active {
            Some(multi) => multi.suspend(|| std::io::stderr().lock().write_all(buf)),
            None => std::io::stderr().lock().write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter
    }
}

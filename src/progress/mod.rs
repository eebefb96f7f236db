//! The progress display on stderr (indicatif): an overall bar of candles with REST pages,
//! archive files, series, the rate in candles/s and an ETA, and one line per series in flight
//! (`BTCUSDT 1h  12/30 pages · 11,000/30,000 candles`). What it shows is [`model::Model`], a
//! plain struct with the counting rules (totals from the plan, corrected as the run learns;
//! done never above total); this module only draws it. The extractor only sees the
//! [`Progress`] trait; the display is used when stderr is a terminal, the log format is text
//! and neither `-q` nor `--no-progress` was given. The last frame stays on screen when the
//! run ends.
//!
//! Log lines are passed through [`crate::config::redact`] (no registered secret is ever
//! printed) and must not garble the bars: [`LogWriter`] is the writer the logger uses, and while
//! a display is active it prints each line through [`MultiProgress::suspend`], which clears
//! the bars, writes the line and redraws them below it.

pub mod model;

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::extract::{Progress, TaskId, TaskOutcome, TaskStatus};
use model::{Model, PlannedTask};

/// The display currently drawn, if any (log lines are printed through it).
static ACTIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Per-series lines shown at once; more series in flight are summed up in the overall bar.
const MAX_TASK_LINES: usize = 8;

/// The overall bar and the per-series lines, drawn from one [`Model`].
#[derive(Debug)]
pub struct Bar {
    multi: MultiProgress,
    overall: ProgressBar,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    model: Model,
    lines: HashMap<usize, ProgressBar>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Bar {
    /// A display drawn on stderr; log lines go above it until [`Bar::finish`].
    pub fn new() -> Bar {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(style("{spinner} [{elapsed_precise}] {bar:30} {msg}"));
        *ACTIVE.lock().unwrap_or_else(PoisonError::into_inner) = Some(multi.clone());
        Bar {
            multi,
            overall,
            started: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    /// Apply `f` to the model and redraw the overall bar and the series' line.
    fn update(&self, task: Option<usize>, f: impl FnOnce(&mut Model)) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut st.model);
        let totals = st.model.totals(self.started.elapsed());
        self.overall.set_length(totals.candles.total);
        self.overall.set_position(totals.candles.done);
        self.overall
            .set_message(st.model.frame(self.started.elapsed()));
        if let Some(t) = task
            && let Some(text) = st.model.series_line(t)
        {
            if let Some(line) = st.lines.get(&t) {
                line.set_message(text);
            } else if st.lines.len() < MAX_TASK_LINES
                && st
                    .model
                    .series()
                    .get(t)
                    .is_some_and(|s| matches!(s.state, model::State::Active))
            {
                let line = self.multi.add(ProgressBar::new(0));
                line.set_style(style("  {msg}"));
                line.set_message(text);
                st.lines.insert(t, line);
            }
        }
    }

    /// Leave the last frame on screen (the per-series lines are removed).
    pub fn finish(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, line) in st.lines.drain() {
            line.finish_and_clear();
        }
        if st.model.series().is_empty() {
            // Nothing was planned (a snapshot run): nothing to leave on screen.
            self.overall.finish_and_clear();
        } else {
            let frame = st.model.frame(self.started.elapsed());
            self.overall.set_style(style("{bar:30} {msg} · {elapsed}"));
            self.overall.finish_with_message(frame);
            // The frame stays; what follows starts on the next line.
            let _ = std::io::stderr().write_all(b"\n");
        }
        *ACTIVE.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Default for Bar {
    fn default() -> Self {
        Bar::new()
    }
}

impl Progress for Bar {
    fn tasks_planned(&self, tasks: &[PlannedTask]) {
        self.update(None, |m| *m = Model::new(tasks));
    }

    fn archive_planned(&self, task: TaskId, files: usize, rest_pages: usize) {
        self.update(Some(task.0), |m| {
            m.archive_planned(task.0, files as u64, rest_pages as u64);
        });
    }

    fn archive_file_done(&self, task: TaskId) {
        self.update(Some(task.0), |m| m.archive_file_done(task.0));
    }

    fn archive_finished(&self, task: TaskId) {
        self.update(Some(task.0), |m| m.archive_finished(task.0));
    }

    fn task_started(&self, task: TaskId, pages: usize, candles: u64) {
        self.update(Some(task.0), |m| {
            m.rest_planned(task.0, pages as u64, candles);
        });
    }

    fn page_done(&self, task: TaskId) {
        self.update(Some(task.0), |m| m.page_done(task.0));
    }

    fn rows(&self, task: TaskId, rows: usize) {
        self.update(Some(task.0), |m| m.rows(task.0, rows as u64));
    }

    fn task_done(&self, task: TaskId, outcome: &TaskOutcome) {
        let complete = matches!(outcome.status, TaskStatus::Complete);
        self.update(None, |m| m.task_done(task.0, complete));
        let line = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .lines
            .remove(&task.0);
        if let Some(line) = line {
            line.finish_and_clear();
        }
    }
}

/// Run `f` (which writes to the terminal) with the active display, if any, cleared, and
/// redraw it below what `f` wrote.
pub fn suspended<R>(f: impl FnOnce() -> R) -> R {
    let active = ACTIVE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    match active {
        Some(multi) => multi.suspend(f),
        None => f(),
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
        suspended(|| std::io::stderr().lock().write_all(buf))
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

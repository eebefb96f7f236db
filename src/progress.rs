//! The progress display on stderr (indicatif): one bar of page requests with rate and ETA.
//! The extractor only sees the [`Progress`] trait; this is the terminal implementation, used
//! when stderr is a terminal and neither `-q` nor `--no-progress` was given. Log lines are
//! printed above the bar through [`ProgressBar::suspend`]-free `println` so they never garble it.

use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::extract::{Progress, TaskId, TaskOutcome};

/// An indicatif bar counting page requests against the planned total.
#[derive(Debug)]
pub struct Bar {
    bar: ProgressBar,
    rows: AtomicU64,
}

impl Bar {
    /// A bar drawn on stderr.
    pub fn new() -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} pages · {msg} · eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Bar {
            bar,
            rows: AtomicU64::new(0),
        }
    }

    /// Remove the bar from the screen.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Default for Bar {
    fn default() -> Self {
        Bar::new()
    }
}

impl Progress for Bar {
    fn task_started(&self, _task: TaskId, pages: usize) {
        self.bar.inc_length(pages as u64);
    }

    fn rows(&self, _task: TaskId, rows: usize) {
        let total = self.rows.fetch_add(rows as u64, Ordering::Relaxed) + rows as u64;
        self.bar.set_message(format!("{total} candles"));
    }

    fn request(&self, _weight: u32) {
        self.bar.inc(1);
    }

    fn task_done(&self, _task: TaskId, _outcome: &TaskOutcome) {}
}

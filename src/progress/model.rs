//! What the progress display shows, as a plain struct: per series, candles, REST pages and
//! archive files done against their totals. The totals are known before the first request
//! (from the run's task list, [`plan_tasks`]) and corrected as the run learns more: the
//! listing probe moves a series' start (fewer pages), the archive part resolves into files
//! (and a shorter REST remainder), and a finished series' totals become what it actually
//! had (the exchange's gaps are not owed). Done is never above total, the rate has its unit
//! (candles/s) and the ETA comes from the observed rate.
//!
//! The terminal bars in [`super`] draw [`Model::frame`]; nothing here does I/O or reads a
//! clock (elapsed time is passed in), so every rule is unit tested.

use std::fmt::Write as _;
use std::time::Duration;

use crate::extract::KlineTask;
use crate::extract::paging::count_windows;

pub use crate::extract::metrics::PlannedTask;

/// The planned totals of `tasks` at the exchange time `now_ms`, as the pager will walk them
/// (windows end at the candle forming at `now_ms`; only closed candles are owed).
pub fn plan_tasks(tasks: &[KlineTask], now_ms: i64) -> Vec<PlannedTask> {
    tasks
        .iter()
        .map(|t| {
            let i = t.interval;
            let end = t.end_ms.min(i.next(i.floor(now_ms)));
            let closed_end = t.end_ms.min(i.floor(now_ms));
            PlannedTask {
                label: format!("{} {}", t.symbol, t.interval),
                candles: i.count_in(t.start_ms, closed_end).max(0) as u64,
                pages: count_windows(t.market, i, t.start_ms, end, t.market.best_kline_page())
                    as u64,
            }
        })
        .collect()
}

/// Where a series is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started.
    Waiting,
    /// Being fetched.
    Active,
    /// Finished with everything it could have.
    Complete,
    /// Failed or stopped: a rerun resumes it.
    Unfinished,
}

/// Done and total of one measure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Done so far.
    pub done: u64,
    /// Expected in all (never below `done`).
    pub total: u64,
}

impl Count {
    fn add(&mut self, n: u64) {
        self.done += n;
        self.total = self.total.max(self.done);
    }

    /// The total becomes `done + remaining` (a correction once more is known).
    fn remaining(&mut self, remaining: u64) {
        self.total = self.done + remaining;
    }

    fn settle(&mut self) {
        self.total = self.done;
    }
}

/// One series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// `BTCUSDT 1h`.
    pub label: String,
    /// Candles delivered.
    pub candles: Count,
    /// REST page windows.
    pub pages: Count,
    /// Archive files.
    pub files: Count,
    /// Where it is.
    pub state: State,
}

/// The whole run's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    series: Vec<Series>,
}

/// The run summed up at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Totals {
    /// Candles.
    pub candles: Count,
    /// REST pages.
    pub pages: Count,
    /// Archive files.
    pub files: Count,
    /// Series finished (complete or not).
    pub series_done: usize,
    /// Series in all.
    pub series: usize,
    /// Series that failed or stopped.
    pub unfinished: usize,
    /// Candles per second so far.
    pub rate: f64,
    /// Time left at that rate (`None` before the first candle).
    pub eta: Option<Duration>,
}

impl Model {
    /// The run's series, before the first request.
    pub fn new(tasks: &[PlannedTask]) -> Model {
        Model {
            series: tasks
                .iter()
                .map(|t| Series {
                    label: t.label.clone(),
                    candles: Count {
                        done: 0,
                        total: t.candles,
                    },
                    pages: Count {
                        done: 0,
                        total: t.pages,
                    },
                    files: Count::default(),
                    state: State::Waiting,
                })
                .collect(),
        }
    }

    fn get(&mut self, task: usize) -> Option<&mut Series> {
        self.series.get_mut(task)
    }

    /// The archive part of a series resolved into `files` files and `rest_pages` REST page
    /// windows for the part no file covers.
    pub fn archive_planned(&mut self, task: usize, files: u64, rest_pages: u64) {
        if let Some(s) = self.get(task) {
            s.state = State::Active;
            s.files.remaining(files);
            s.pages.remaining(rest_pages);
        }
    }

    /// An archive file of a series was read (or given up on: REST takes over from it).
    pub fn archive_file_done(&mut self, task: usize) {
        if let Some(s) = self.get(task) {
            s.files.add(1);
        }
    }

    /// The archive part ended early (a missing or bad file hands over to REST): the files
    /// not read are no longer owed.
    pub fn archive_finished(&mut self, task: usize) {
        if let Some(s) = self.get(task) {
            s.files.settle();
        }
    }

    /// The REST part of a series starts with `pages` page windows for `candles` closed
    /// candles (after the listing probe and the archive part).
    pub fn rest_planned(&mut self, task: usize, pages: u64, candles: u64) {
        if let Some(s) = self.get(task) {
            s.state = State::Active;
            s.pages.remaining(pages);
            s.candles.remaining(candles);
        }
    }

    /// A REST page window finished.
    pub fn page_done(&mut self, task: usize) {
        if let Some(s) = self.get(task) {
            s.pages.add(1);
        }
    }

    /// Candles of a series were delivered.
    pub fn rows(&mut self, task: usize, n: u64) {
        if let Some(s) = self.get(task) {
            s.state = State::Active;
            s.candles.add(n);
        }
    }

    /// A series ended. A complete one owes nothing more (the exchange's own gaps are not
    /// candles to wait for); an unfinished one keeps its totals, so the frame shows what is
    /// left for the rerun.
    pub fn task_done(&mut self, task: usize, complete: bool) {
        if let Some(s) = self.get(task) {
            if complete {
                s.candles.settle();
                s.pages.settle();
                s.files.settle();
                s.state = State::Complete;
            } else {
                s.state = State::Unfinished;
            }
        }
    }

    /// The series (in task order).
    pub fn series(&self) -> &[Series] {
        &self.series
    }

    /// The sums, the rate and the ETA after `elapsed`.
    pub fn totals(&self, elapsed: Duration) -> Totals {
        let mut t = Totals {
            candles: Count::default(),
            pages: Count::default(),
            files: Count::default(),
            series_done: 0,
            series: self.series.len(),
            unfinished: 0,
            rate: 0.0,
            eta: None,
        };
        for s in &self.series {
            for (sum, c) in [
                (&mut t.candles, s.candles),
                (&mut t.pages, s.pages),
                (&mut t.files, s.files),
            ] {
                sum.done += c.done;
                sum.total += c.total;
            }
            match s.state {
                State::Complete => t.series_done += 1,
                State::Unfinished => {
                    t.series_done += 1;
                    t.unfinished += 1;
                }
                State::Waiting | State::Active => {}
            }
        }
        let secs = elapsed.as_secs_f64();
        if secs > 0.0 {
            t.rate = t.candles.done as f64 / secs;
        }
        if t.rate > 0.0 {
            let left = t.candles.total.saturating_sub(t.candles.done) as f64 / t.rate;
            t.eta = Some(Duration::from_secs_f64(left.min(1e9)));
        }
        t
    }

    /// The overall line: `1,200/1,440 candles · 2/2 pages · 1/1 files · 1/2 series ·
    /// 3,456 candles/s · eta 2s`.
    pub fn frame(&self, elapsed: Duration) -> String {
        let t = self.totals(elapsed);
        let mut s = format!(
            "{}/{} candles · {}/{} pages",
            thousands(t.candles.done),
            thousands(t.candles.total),
            thousands(t.pages.done),
            thousands(t.pages.total)
        );
        if t.files.total > 0 {
            let _ = write!(
                s,
                " · {}/{} files",
                thousands(t.files.done),
                thousands(t.files.total)
            );
        }
        let _ = write!(s, " · {}/{} series", t.series_done, t.series);
        if t.unfinished > 0 {
            let _ = write!(s, " ({} unfinished)", t.unfinished);
        }
        let _ = write!(s, " · {} candles/s", rate(t.rate));
        if t.series_done < t.series {
            match t.eta {
                Some(d) => {
                    let _ = write!(s, " · eta {}", duration(d));
                }
                None => s.push_str(" · eta -"),
            }
        }
        s
    }

    /// A series' line: `BTCUSDT 1h  12/30 pages · 11,000/30,000 candles`.
    pub fn series_line(&self, task: usize) -> Option<String> {
        let s = self.series.get(task)?;
        let mut line = format!(
            "{:<22} {}/{} pages",
            s.label,
            thousands(s.pages.done),
            thousands(s.pages.total)
        );
        if s.files.total > 0 {
            let _ = write!(
                line,
                " · {}/{} files",
                thousands(s.files.done),
                thousands(s.files.total)
            );
        }
        let _ = write!(
            line,
            " · {}/{} candles",
            thousands(s.candles.done),
            thousands(s.candles.total)
        );
        Some(line)
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate with sensible precision: `0.5`, `12.3`, `144`, `12,345`.
fn rate(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.1}")
    } else {
        thousands(r.round() as u64)
    }
}

/// `42s`, `3m 05s`, `2h 07m`.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn planned(candles: u64, pages: u64) -> PlannedTask {
        PlannedTask {
            label: "BTCUSDT 1h".into(),
            candles,
            pages,
        }
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn totals_are_known_before_the_first_request() {
        let m = Model::new(&[planned(1440, 2), planned(60, 1)]);
        let t = m.totals(Duration::ZERO);
        assert_eq!(
            t.candles,
            Count {
                done: 0,
                total: 1500
            }
        );
        assert_eq!(t.pages, Count { done: 0, total: 3 });
        assert_eq!(t.eta, None);
        assert_eq!(
            m.frame(Duration::ZERO),
            "0/1,500 candles · 0/3 pages · 0/2 series · 0.0 candles/s · eta -"
        );
    }

    #[test]
    fn the_listing_probe_and_the_archive_correct_the_totals() {
        let mut m = Model::new(&[planned(10_000, 10)]);
        // The archive covers most of it with 3 files; REST then plans the rest.
        m.archive_planned(0, 3, 4);
        assert_eq!(m.totals(SEC).pages, Count { done: 0, total: 4 });
        for _ in 0..3 {
            m.rows(0, 2000);
            m.archive_file_done(0);
        }
        m.rest_planned(0, 4, 3500);
        let s = &m.series()[0];
        assert_eq!(s.files, Count { done: 3, total: 3 });
        assert_eq!(s.pages, Count { done: 0, total: 4 });
        assert_eq!(
            s.candles,
            Count {
                done: 6000,
                total: 9500
            }
        );
        // The probe finds a later listing: fewer pages than planned.
        let mut m = Model::new(&[planned(10_000, 10)]);
        m.rest_planned(0, 2, 1500);
        assert_eq!(m.totals(SEC).pages.total, 2);
        assert_eq!(m.totals(SEC).candles.total, 1500);
    }

    #[test]
    fn a_complete_series_owes_nothing_more_and_an_unfinished_one_shows_what_is_left() {
        let mut m = Model::new(&[planned(100, 1), planned(100, 1)]);
        m.rows(0, 90); // the exchange had a gap of 10
        m.page_done(0);
        m.task_done(0, true);
        m.rows(1, 40);
        m.task_done(1, false);
        let t = m.totals(SEC);
        assert_eq!(
            t.candles,
            Count {
                done: 130,
                total: 190
            }
        );
        assert_eq!(t.pages, Count { done: 1, total: 2 });
        assert_eq!((t.series_done, t.unfinished), (2, 1));
        let f = m.frame(SEC);
        assert!(
            f.starts_with("130/190 candles · 1/2 pages · 2/2 series (1 unfinished)"),
            "{f}"
        );
        assert!(!f.contains("eta"), "no eta once every series ended: {f}");
    }

    #[test]
    fn rate_has_its_unit_and_the_eta_follows_it() {
        let mut m = Model::new(&[planned(3000, 3)]);
        m.rows(0, 1000);
        m.page_done(0);
        let t = m.totals(Duration::from_secs(2));
        assert_eq!(t.rate, 500.0);
        assert_eq!(t.eta, Some(Duration::from_secs(4)));
        assert_eq!(
            m.frame(Duration::from_secs(2)),
            "1,000/3,000 candles · 1/3 pages · 0/1 series · 500 candles/s · eta 4s"
        );
        assert_eq!(
            m.series_line(0).unwrap(),
            "BTCUSDT 1h             1/3 pages · 1,000/3,000 candles"
        );
    }

    #[test]
    fn unknown_tasks_are_ignored() {
        let mut m = Model::new(&[planned(1, 1)]);
        m.rows(7, 5);
        m.page_done(7);
        m.task_done(7, true);
        assert_eq!(m.totals(SEC).candles.done, 0);
        assert!(m.series_line(7).is_none());
    }

    #[test]
    fn formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(rate(0.25), "0.2");
        assert_eq!(rate(144.3947), "144");
        assert_eq!(duration(Duration::from_secs(185)), "3m 05s");
        assert_eq!(duration(Duration::from_secs(7620)), "2h 07m");
    }

    #[test]
    fn plan_tasks_counts_closed_candles_and_page_windows() {
        use crate::interval::{DAY_MS, Interval};
        use crate::market::Market;
        let now = 1_700_000_000_000;
        let day = Interval::D1.floor(now);
        let task = KlineTask {
            market: Market::Spot,
            symbol: "BTCUSDT".parse().unwrap(),
            interval: Interval::H1,
            start_ms: day - 30 * DAY_MS,
            end_ms: now,
        };
        let p = plan_tasks(&[task], now);
        let hours_today = (Interval::H1.floor(now) - day) / 3_600_000;
        assert_eq!(p[0].candles, 720 + hours_today as u64);
        assert_eq!(p[0].pages, 1);
        assert_eq!(p[0].label, "BTCUSDT 1h");
    }

    #[derive(Debug, Clone)]
    enum Ev {
        Archive(u64, u64),
        File,
        Rest(u64, u64),
        Page,
        Rows(u64),
        Done(bool),
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            (0u64..5, 0u64..5).prop_map(|(f, p)| Ev::Archive(f, p)),
            Just(Ev::File),
            (0u64..5, 0u64..5000).prop_map(|(p, c)| Ev::Rest(p, c)),
            Just(Ev::Page),
            (0u64..2000).prop_map(Ev::Rows),
            any::<bool>().prop_map(Ev::Done),
        ]
    }

    proptest! {
        /// Whatever order events arrive in, done never exceeds total.
        #[test]
        fn done_never_exceeds_total(evs in proptest::collection::vec((0usize..3, ev()), 0..60)) {
            let mut m = Model::new(&[planned(1000, 1), planned(0, 0), planned(50, 2)]);
            for (task, e) in evs {
                match e {
                    Ev::Archive(f, p) => m.archive_planned(task, f, p),
                    Ev::File => m.archive_file_done(task),
                    Ev::Rest(p, c) => m.rest_planned(task, p, c),
                    Ev::Page => m.page_done(task),
                    Ev::Rows(n) => m.rows(task, n),
                    Ev::Done(ok) => m.task_done(task, ok),
                }
                let t = m.totals(SEC);
                for c in [t.candles, t.pages, t.files] {
                    prop_assert!(c.done <= c.total, "{c:?}");
                }
                for s in m.series() {
                    for c in [s.candles, s.pages, s.files] {
                        prop_assert!(c.done <= c.total, "{c:?}");
                    }
                }
            }
        }
    }
}

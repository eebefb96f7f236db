//! Hive partitioning from the data's own time: which partition a candle belongs to, how a
//! partition is spelled as a path, and a pure [`split`] of rows into partitions. No I/O.
//!
//! Layout: `<root>/klines/market=spot/symbol=BTCUSDT/interval=1h/<period>/part.parquet` (a
//! futures kline family has a root of its own under `output.path`, see
//! [`crate::layout::kline_root`]), where `<period>` depends on the granularity:
//!
//! | granularity | directory | `auto` for intervals |
//! |---|---|---|
//! | day | `date=2024-01-05` | `1s` (86,400 rows a day) |
//! | month | `month=2024-01` | `1m` .. `30m` (1,488 .. 44,640 rows) |
//! | year | `year=2024` | `1h` .. `12h` (730 .. 8,784 rows) |
//! | none | (no directory) | `1d`, `3d`, `1w`, `1M` (at most a few thousand rows ever) |
//!
//! A candle belongs to the partition of its **open time** (a `1w` candle opening on Monday
//! 2024-12-30 is in `year=2024` even though most of it lies in 2025).
//!
//! Spellings were chosen for the readers (checked by `tests/python/interop.py` with pyarrow,
//! pandas, polars and DuckDB): `year=2024` is inferred as an integer everywhere (fine: it is
//! one); `month=2024-01` stays a string in every reader (none turns it into a date or number);
//! `date=2024-01-05` is a date in polars and DuckDB and a string in pyarrow/pandas, correct
//! either way. `market`, `symbol` and `interval` are strings (dictionary/categorical in
//! pandas). The interval directory uses Binance's spelling (`interval=1M` for months,
//! `interval=1m` for minutes), the same value as the in-file `interval` column, so hive readers
//! and single-file readers agree. On a case-insensitive file system `1m` and `1M` of one symbol
//! would share a directory; use one of the two per output root there.
//!
//! Intervals of different granularity have different hive keys, and polars and DuckDB refuse
//! a single scan over files with different keys ("Hive partition mismatch"). Scan one interval
//! at a time, e.g. `read_parquet('klines/market=*/symbol=*/interval=1h/**/*.parquet',
//! hive_partitioning = true)`; pyarrow and pandas read the whole tree (missing keys are null).

use std::path::PathBuf;

use chrono::{Datelike, NaiveDate};

use crate::config::PartitionSpec;
use crate::interval::{DAY_MS, Interval};
use crate::layout;
use crate::market::Market;
use crate::symbol::Symbol;
use crate::transform::KlineRows;

/// The file name of every partition (deterministic, so reruns replace rather than add).
pub const FILE_NAME: &str = crate::layout::PARTITION_FILE;

/// How finely a task's rows are split into files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granularity {
    /// One file for the whole history.
    None,
    /// One file per UTC calendar year.
    Year,
    /// One file per UTC calendar month.
    Month,
    /// One file per UTC day.
    Day,
}

impl Granularity {
    /// The granularity for `interval` under `spec` (`auto` picks by interval, see module docs).
    pub fn of(interval: Interval, spec: PartitionSpec) -> Granularity {
        match spec {
            PartitionSpec::None => Granularity::None,
            PartitionSpec::Year => Granularity::Year,
            PartitionSpec::Month => Granularity::Month,
            PartitionSpec::Day => Granularity::Day,
            PartitionSpec::Auto => match interval {
                Interval::S1 => Granularity::Day,
                Interval::M1 | Interval::M3 | Interval::M5 | Interval::M15 | Interval::M30 => {
                    Granularity::Month
                }
                Interval::H1
                | Interval::H2
                | Interval::H4
                | Interval::H6
                | Interval::H8
                | Interval::H12 => Granularity::Year,
                Interval::D1 | Interval::D3 | Interval::W1 | Interval::Mo1 => Granularity::None,
            },
        }
    }
}

/// The time span of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    /// Everything (granularity `none`).
    All,
    /// A UTC calendar year.
    Year(i32),
    /// A UTC calendar month (1-12).
    Month(i32, u32),
    /// A UTC day.
    Day(i32, u32, u32),
}

fn date_of(t: i64) -> NaiveDate {
    let days = t.div_euclid(DAY_MS);
    i32::try_from(days + 719_163)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .unwrap_or(if days < 0 {
            NaiveDate::MIN
        } else {
            NaiveDate::MAX
        })
}

fn ms_of(d: Option<NaiveDate>) -> Option<i64> {
    d.and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

impl Period {
    /// The period of granularity `g` containing the instant `t` (ms).
    pub fn of(g: Granularity, t: i64) -> Period {
        let d = date_of(t);
        match g {
            Granularity::None => Period::All,
            Granularity::Year => Period::Year(d.year()),
            Granularity::Month => Period::Month(d.year(), d.month()),
            Granularity::Day => Period::Day(d.year(), d.month(), d.day()),
        }
    }

    /// `[start, end)` of the period in ms; `None` for [`Period::All`].
    pub fn range_ms(self) -> Option<(i64, i64)> {
        let (start, end) = match self {
            Period::All => return None,
            Period::Year(y) => (
                NaiveDate::from_ymd_opt(y, 1, 1),
                NaiveDate::from_ymd_opt(y + 1, 1, 1),
            ),
            Period::Month(y, m) => {
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (
                    NaiveDate::from_ymd_opt(y, m, 1),
                    NaiveDate::from_ymd_opt(ny, nm, 1),
                )
            }
            Period::Day(y, m, d) => {
                let s = NaiveDate::from_ymd_opt(y, m, d);
                (s, s.and_then(|s| s.succ_opt()))
            }
        };
        Some((ms_of(start)?, ms_of(end).unwrap_or(i64::MAX)))
    }

    /// The hive directory segment (`year=2024`, `month=2024-01`, `date=2024-01-05`), `None` for
    /// [`Period::All`].
    pub fn dir(self) -> Option<String> {
        match self {
            Period::All => None,
            Period::Year(y) => Some(layout::year_dir(y)),
            Period::Month(y, m) => Some(layout::month_dir(y, m)),
            Period::Day(y, m, d) => Some(layout::date_dir(y, m, d)),
        }
    }
}

/// One market × symbol × interval: the unit the extractor fetches and the directory it owns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskKey {
    /// Market.
    pub market: Market,
    /// Symbol.
    pub symbol: Symbol,
    /// Interval.
    pub interval: Interval,
}

impl TaskKey {
    /// `klines/market=spot/symbol=BTCUSDT/interval=1h`, relative to the output root.
    pub fn relative_dir(&self) -> PathBuf {
        layout::series_dir(self.market, &self.symbol, self.interval)
    }
}

/// One partition: a task and a period. Spelled as a path by [`PartitionKey::relative_path`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    /// The task the partition belongs to.
    pub task: TaskKey,
    /// The period it covers.
    pub period: Period,
}

impl PartitionKey {
    /// The partition directory relative to the output root.
    pub fn relative_dir(&self) -> PathBuf {
        let dir = self.task.relative_dir();
        match self.period.dir() {
            Some(p) => dir.join(p),
            None => dir,
        }
    }

    /// The partition file relative to the output root (`…/year=2024/part.parquet`).
    pub fn relative_path(&self) -> PathBuf {
        self.relative_dir().join(FILE_NAME)
    }

    /// Whether the open time `t` belongs to this partition.
    pub fn contains(&self, t: i64) -> bool {
        self.period
            .range_ms()
            .is_none_or(|(start, end)| (start..end).contains(&t))
    }
}

/// What a partition file must hold, by where it sits: its series and, when the series is
/// partitioned by time, the `[start, end)` span (ms) its open times must lie in. Every file
/// is checked against this before it is read or merged ([`super::parquet`]); a file that
/// does not match is foreign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The series of its directory.
    pub task: TaskKey,
    /// The span of its period directory (`None`: unpartitioned, any time).
    pub span: Option<(i64, i64)>,
    /// The period directory as spelled (`month=2024-03`), for messages.
    pub period_dir: Option<String>,
}

impl PartitionKey {
    /// What this partition's file must hold.
    pub fn expected(&self) -> Expected {
        Expected {
            task: self.task.clone(),
            span: self.period.range_ms(),
            period_dir: self.period.dir(),
        }
    }
}

impl Period {
    /// The period a hive directory segment names (`year=2024`, `month=2024-01`,
    /// `date=2024-01-05`): the inverse of [`Period::dir`].
    pub fn from_dir(segment: &str) -> Option<Period> {
        let (key, value) = segment.split_once('=')?;
        let num = |s: &str| s.parse::<u32>().ok();
        let period = match key {
            "year" if value.len() == 4 => Period::Year(value.parse().ok()?),
            "month" => {
                let (y, m) = value.split_once('-')?;
                Period::Month(y.parse().ok()?, num(m)?)
            }
            "date" => {
                let mut it = value.splitn(3, '-');
                let (y, m, d) = (it.next()?, it.next()?, it.next()?);
                Period::Day(y.parse().ok()?, num(m)?, num(d)?)
            }
            _ => return None,
        };
        // Only spellings this layout writes (`month=2024-1` or `month=2024-13` are not).
        (period.dir().as_deref() == Some(segment) && period.range_ms().is_some()).then_some(period)
    }
}

/// What the file at `path` must hold, from its directories
/// (`…/market=…/symbol=…/interval=…[/<period>]/<file>`); `None` when the path is not in the
/// layout (a file given directly, outside any dataset).
pub fn expected_of_path(path: &std::path::Path) -> Option<Expected> {
    let mut dirs = path
        .parent()?
        .components()
        .rev()
        .map(|c| c.as_os_str().to_str());
    let mut next = dirs.next()??;
    let period = match Period::from_dir(next) {
        Some(p) => {
            next = dirs.next()??;
            Some(p)
        }
        None => None,
    };
    let value = |seg: &str, key: &str| seg.strip_prefix(key)?.strip_prefix('=').map(str::to_owned);
    let interval: Interval = value(next, "interval")?.parse().ok()?;
    let symbol: Symbol = value(dirs.next()??, "symbol")?.parse().ok()?;
    let market: Market = value(dirs.next()??, "market")?.parse().ok()?;
    Some(Expected {
        task: TaskKey {
            market,
            symbol,
            interval,
        },
        span: period.and_then(Period::range_ms),
        period_dir: period.and_then(Period::dir),
    })
}

/// Split rows into partitions by the period of each row's open time. Partitions come out in
/// time order; rows inside each keep their relative order (a stable sort by open time, so
/// sorted input stays as it is). Rows are neither dropped nor de-duplicated here.
pub fn split(
    rows: KlineRows,
    task: &TaskKey,
    spec: PartitionSpec,
) -> Vec<(PartitionKey, KlineRows)> {
    let g = Granularity::of(task.interval, spec);
    let key = |period| PartitionKey {
        task: task.clone(),
        period,
    };
    if rows.is_empty() {
        return Vec::new();
    }
    let sorted_rows = if rows.open_time.windows(2).all(|w| w[0] <= w[1]) {
        rows
    } else {
        let mut idx: Vec<usize> = (0..rows.len()).collect();
        idx.sort_by_key(|&i| rows.open_time[i]);
        rows.take(&idx)
    };
    if g == Granularity::None {
        return vec![(key(Period::All), sorted_rows)];
    }
    // The common case, a page inside one partition, moves the rows without copying.
    let first = Period::of(g, sorted_rows.open_time[0]);
    let first_end = first.range_ms().map_or(i64::MAX, |(_, e)| e);
    if sorted_rows.open_time.last().is_some_and(|&t| t < first_end) {
        return vec![(key(first), sorted_rows)];
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < sorted_rows.len() {
        let period = Period::of(g, sorted_rows.open_time[start]);
        let end_ms = period.range_ms().map_or(i64::MAX, |(_, e)| e);
        let len = sorted_rows.open_time[start..].partition_point(|&t| t < end_ms);
        out.push((key(period), sorted_rows.slice(start, len)));
        start += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PriceType;
    use proptest::prelude::*;

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    fn task(interval: Interval) -> TaskKey {
        TaskKey {
            market: Market::Spot,
            symbol: "BTCUSDT".parse().unwrap(),
            interval,
        }
    }

    #[test]
    fn the_expected_identity_is_read_back_from_every_layout_path() {
        for (interval, t) in [
            (Interval::H1, ms("2024-05-01T00:00:00Z")),
            (Interval::M1, ms("2024-03-31T23:59:00Z")),
            (Interval::S1, ms("2024-02-29T12:00:00Z")),
            (Interval::D1, ms("2024-01-01T00:00:00Z")),
        ] {
            let g = Granularity::of(interval, PartitionSpec::Auto);
            let key = PartitionKey {
                task: task(interval),
                period: Period::of(g, t),
            };
            let path = std::path::Path::new("/data/out").join(key.relative_path());
            assert_eq!(expected_of_path(&path), Some(key.expected()), "{path:?}");
            let tmp = path.with_file_name(".part.parquet.tmp-1-1");
            assert_eq!(expected_of_path(&tmp), Some(key.expected()));
        }
        assert_eq!(
            expected_of_path(std::path::Path::new("/tmp/part.parquet")),
            None
        );
        assert_eq!(Period::from_dir("month=2024-1"), None);
        assert_eq!(Period::from_dir("month=2024-13"), None);
        assert_eq!(Period::from_dir("date=2024-02-30"), None);
        assert_eq!(Period::from_dir("year=2024"), Some(Period::Year(2024)));
    }

    fn rows_at(times: &[i64]) -> KlineRows {
        let mut r = KlineRows::empty(PriceType::Float64);
        for &t in times {
            r.open_time.push(t);
            r.close_time.push(t + 1);
            r.trades.push(0);
        }
        for c in r.columns_mut() {
            *c = crate::transform::Column::Float64(vec![1.0; times.len()]);
        }
        r
    }

    #[test]
    fn auto_granularity_by_interval() {
        let g = |i| Granularity::of(i, PartitionSpec::Auto);
        assert_eq!(g(Interval::S1), Granularity::Day);
        assert_eq!(g(Interval::M1), Granularity::Month);
        assert_eq!(g(Interval::M30), Granularity::Month);
        assert_eq!(g(Interval::H1), Granularity::Year);
        assert_eq!(g(Interval::H12), Granularity::Year);
        assert_eq!(g(Interval::D1), Granularity::None);
        assert_eq!(g(Interval::Mo1), Granularity::None);
        assert_eq!(
            Granularity::of(Interval::D1, PartitionSpec::Month),
            Granularity::Month
        );
    }

    #[test]
    fn paths_are_hive_style() {
        let k = PartitionKey {
            task: task(Interval::H1),
            period: Period::of(Granularity::Year, ms("2024-06-01T00:00:00Z")),
        };
        assert_eq!(
            k.relative_path(),
            PathBuf::from("klines/market=spot/symbol=BTCUSDT/interval=1h/year=2024/part.parquet")
        );
        let m = Period::of(Granularity::Month, ms("2024-01-31T23:59:59Z"));
        assert_eq!(m.dir().unwrap(), "month=2024-01");
        let d = Period::of(Granularity::Day, ms("2024-02-29T12:00:00Z"));
        assert_eq!(d.dir().unwrap(), "date=2024-02-29");
        assert_eq!(
            d.range_ms(),
            Some((ms("2024-02-29T00:00:00Z"), ms("2024-03-01T00:00:00Z")))
        );
        assert_eq!(
            Period::Month(2024, 12).range_ms(),
            Some((ms("2024-12-01T00:00:00Z"), ms("2025-01-01T00:00:00Z")))
        );
        let all = PartitionKey {
            task: task(Interval::Mo1),
            period: Period::All,
        };
        assert_eq!(
            all.relative_path(),
            PathBuf::from("klines/market=spot/symbol=BTCUSDT/interval=1M/part.parquet")
        );
    }

    #[test]
    fn a_week_straddling_a_year_belongs_to_its_open() {
        // Monday 2024-12-30 opens a week that ends in 2025.
        let open = ms("2024-12-30T00:00:00Z");
        assert!(Interval::W1.is_aligned(open));
        let next = Interval::W1.next(open);
        let parts = split(
            rows_at(&[open, next]),
            &task(Interval::W1),
            PartitionSpec::Year,
        );
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0.period, Period::Year(2024));
        assert_eq!(parts[0].1.open_time, vec![open]);
        assert_eq!(parts[1].0.period, Period::Year(2025));
        // Straddling a month: Monday 2024-01-29 -> February.
        let open = ms("2024-01-29T00:00:00Z");
        let parts = split(rows_at(&[open]), &task(Interval::W1), PartitionSpec::Month);
        assert_eq!(parts[0].0.period, Period::Month(2024, 1));
    }

    #[test]
    fn months_and_leap_days() {
        let jan = ms("2024-01-01T00:00:00Z");
        let opens: Vec<i64> = (0..14).map(|n| Interval::Mo1.add(jan, n)).collect();
        let parts = split(rows_at(&opens), &task(Interval::Mo1), PartitionSpec::Year);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].1.len(), 12);
        assert_eq!(parts[1].1.len(), 2);
        assert_eq!(
            split(rows_at(&opens), &task(Interval::Mo1), PartitionSpec::Auto).len(),
            1
        );
        // 1s candles around the leap day: 23:59:59 on Feb 28, Feb 29 and Mar 1.
        let t = ms("2024-02-29T00:00:00Z");
        let parts = split(
            rows_at(&[t - 1000, t, t + DAY_MS - 1000, t + DAY_MS]),
            &task(Interval::S1),
            PartitionSpec::Auto,
        );
        let dirs: Vec<String> = parts.iter().map(|(k, _)| k.period.dir().unwrap()).collect();
        assert_eq!(
            dirs,
            ["date=2024-02-28", "date=2024-02-29", "date=2024-03-01"]
        );
        assert_eq!(parts[1].1.len(), 2);
    }

    proptest! {
        #[test]
        fn split_then_concat_keeps_the_rows(mut times in proptest::collection::vec(1_500_000_000_000i64..1_800_000_000_000, 0..200), spec in proptest::sample::select(vec![PartitionSpec::Auto, PartitionSpec::None, PartitionSpec::Year, PartitionSpec::Month, PartitionSpec::Day])) {
            let parts = split(rows_at(&times), &task(Interval::M1), spec);
            let mut all = Vec::new();
            for (k, r) in &parts {
                prop_assert!(r.open_time.iter().all(|t| k.contains(*t)));
                all.extend_from_slice(&r.open_time);
            }
            times.sort_unstable();
            prop_assert_eq!(all, times);
            prop_assert!(parts.windows(2).all(|w| w[0].0.period < w[1].0.period));
        }
    }
}

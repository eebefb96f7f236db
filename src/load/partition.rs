//! Hive partitioning from the data's own time: which partition a candle belongs to, how a
//! partition is spelled as a path ([`crate::layout`]), and a pure [`split`] of rows into
//! partitions. No I/O.
//!
//! Layout (version 2, see [`crate::layout`] for why):
//! `<root>/klines/market=spot/symbol=BTCUSDT/year=2024/<interval>-<period>.parquet` (a futures
//! kline family has a root of its own under `output.path`, see
//! [`crate::layout::kline_root`]). Every interval has the same hive keys; the file
//! granularity depends on the interval:
//!
//! | granularity | file | `auto` for intervals |
//! |---|---|---|
//! | day | `year=2024/1s-2024-01-05.parquet` | `1s` (86,400 rows a day) |
//! | month | `year=2024/1m-2024-01.parquet` | `1m` .. `30m` (1,488 .. 44,640 rows) |
//! | year | `year=2024/1h-2024.parquet` | `1h` .. `1M` (12 .. 8,784 rows) |
//!
//! `output.partition: none` is the same as `year` since layout 2 (the `year` key is there for
//! every interval, so one file cannot span years).
//!
//! A candle belongs to the partition of its **open time** (a `1w` candle opening on Monday
//! 2024-12-30 is in `year=2024` even though most of it lies in 2025). On a case-insensitive
//! file system the `1m` and `1M` files of one symbol and year differ by name (`1m-2024-01`
//! against `1M-2024`), unless `output.partition` gives both the same granularity.

use std::path::PathBuf;

use chrono::{Datelike, NaiveDate};

use crate::config::PartitionSpec;
use crate::interval::{DAY_MS, Interval};
use crate::layout;
use crate::market::Market;
use crate::symbol::Symbol;
use crate::transform::KlineRows;

/// How finely a task's rows are split into files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granularity {
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
            PartitionSpec::None | PartitionSpec::Year => Granularity::Year,
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
                | Interval::H12
                | Interval::D1
                | Interval::D3
                | Interval::W1
                | Interval::Mo1 => Granularity::Year,
            },
        }
    }
}

/// The time span of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
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
            Granularity::Year => Period::Year(d.year()),
            Granularity::Month => Period::Month(d.year(), d.month()),
            Granularity::Day => Period::Day(d.year(), d.month(), d.day()),
        }
    }

    /// `[start, end)` of the period in ms (`None` only outside chrono's dates).
    pub fn range_ms(self) -> Option<(i64, i64)> {
        let (start, end) = match self {
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

    /// The year the period lies in and its spelling in a file name (`2024`, `2024-01`,
    /// `2024-01-05`).
    pub fn label(self) -> (i32, String) {
        match self {
            Period::Year(y) => (y, format!("{y:04}")),
            Period::Month(y, m) => (y, format!("{y:04}-{m:02}")),
            Period::Day(y, m, d) => (y, format!("{y:04}-{m:02}-{d:02}")),
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
    /// `klines/market=spot/symbol=BTCUSDT`, relative to the output root: the directory that
    /// holds this series' files (among the symbol's other intervals).
    pub fn symbol_dir(&self) -> PathBuf {
        layout::symbol_dir(self.market, &self.symbol)
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
    /// The partition file relative to the output root
    /// (`klines/market=spot/symbol=BTCUSDT/year=2024/1h-2024.parquet`).
    pub fn relative_path(&self) -> PathBuf {
        let (year, label) = self.period.label();
        layout::partition_file(
            self.task.market,
            &self.task.symbol,
            self.task.interval,
            year,
            &label,
        )
    }

    /// Whether the open time `t` belongs to this partition.
    pub fn contains(&self, t: i64) -> bool {
        self.period
            .range_ms()
            .is_none_or(|(start, end)| (start..end).contains(&t))
    }
}

/// What a partition file must hold, by where it sits: its series and the `[start, end)` span
/// (ms) its open times must lie in. Every file is checked against this before it is read or
/// merged ([`super::parquet`]); a file that does not match is foreign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The series of its directories and name.
    pub task: TaskKey,
    /// The span of its period (`None`: any time).
    pub span: Option<(i64, i64)>,
    /// The partition as spelled (`year=2024/1m-2024-03`), for messages.
    pub period_dir: Option<String>,
}

impl PartitionKey {
    /// What this partition's file must hold.
    pub fn expected(&self) -> Expected {
        let (year, label) = self.period.label();
        Expected {
            task: self.task.clone(),
            span: self.period.range_ms(),
            period_dir: Some(format!(
                "{}/{}-{label}",
                layout::year_dir(year),
                self.task.interval.as_str()
            )),
        }
    }
}

impl Period {
    /// The period a partition file name spells after its interval (`2024`, `2024-01`,
    /// `2024-01-05`): the inverse of [`Period::label`].
    pub fn from_label(label: &str) -> Option<Period> {
        let num = |s: &str| s.parse::<u32>().ok();
        let parts: Vec<&str> = label.split('-').collect();
        let period = match parts.as_slice() {
            [y] => Period::Year(y.parse().ok()?),
            [y, m] => Period::Month(y.parse().ok()?, num(m)?),
            [y, m, d] => Period::Day(y.parse().ok()?, num(m)?, num(d)?),
            _ => return None,
        };
        // Only spellings this layout writes (`2024-1` or `2024-13` are not).
        (period.label().1 == label && period.range_ms().is_some()).then_some(period)
    }
}

/// What the file at `path` must hold, from its directories and name
/// (`…/market=…/symbol=…/year=…/<interval>-<period>.parquet`, or that file's dot-prefixed
/// temporary `.<name>.tmp-…`); `None` when the path is not in the layout (a file given
/// directly, outside any dataset, or a layout-1 file being migrated).
pub fn expected_of_path(path: &std::path::Path) -> Option<Expected> {
    let name = path.file_name()?.to_str()?;
    let name = match name.strip_prefix('.') {
        Some(tmp) => tmp.split_once(".tmp-")?.0,
        None => name,
    };
    let name = layout::unversioned(name);
    let (iv, label) = name.strip_suffix(".parquet")?.split_once('-')?;
    let interval: Interval = iv.parse().ok()?;
    let period = Period::from_label(label)?;
    let mut dirs = path
        .parent()?
        .components()
        .rev()
        .map(|c| c.as_os_str().to_str());
    let year_seg = dirs.next()??;
    let value = |seg: &str, key: &str| layout::hive_value(seg, key).map(str::to_owned);
    let year = value(year_seg, layout::YEAR)?;
    let symbol: Symbol = value(dirs.next()??, layout::SYMBOL)?.parse().ok()?;
    let market: Market = value(dirs.next()??, layout::MARKET)?.parse().ok()?;
    // A file under another year's directory holds no row that belongs there.
    let in_its_year = year == format!("{:04}", period.label().0);
    Some(Expected {
        task: TaskKey {
            market,
            symbol,
            interval,
        },
        span: if in_its_year {
            period.range_ms()
        } else {
            Some((0, 0))
        },
        period_dir: Some(format!("{year_seg}/{iv}-{label}")),
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
            let name = path.file_name().unwrap().to_str().unwrap();
            let tmp = path.with_file_name(format!(".{name}.tmp-1-1"));
            assert_eq!(expected_of_path(&tmp), Some(key.expected()));
        }
        assert_eq!(
            expected_of_path(std::path::Path::new("/tmp/part.parquet")),
            None
        );
        assert_eq!(
            expected_of_path(std::path::Path::new(
                "/o/klines/market=spot/symbol=BTCUSDT/interval=1h/year=2024/part.parquet"
            )),
            None,
            "a layout-1 file"
        );
        let moved = expected_of_path(std::path::Path::new(
            "/o/klines/market=spot/symbol=BTCUSDT/year=2023/1h-2024.parquet",
        ))
        .unwrap();
        assert_eq!(
            moved.span,
            Some((0, 0)),
            "no row belongs under another year"
        );
        assert_eq!(Period::from_label("2024-1"), None);
        assert_eq!(Period::from_label("2024-13"), None);
        assert_eq!(Period::from_label("2024-02-30"), None);
        assert_eq!(Period::from_label("2024"), Some(Period::Year(2024)));
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
        assert_eq!(g(Interval::D1), Granularity::Year);
        assert_eq!(g(Interval::Mo1), Granularity::Year);
        assert_eq!(
            Granularity::of(Interval::Mo1, PartitionSpec::None),
            Granularity::Year
        );
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
            PathBuf::from("klines/market=spot/symbol=BTCUSDT/year=2024/1h-2024.parquet")
        );
        let m = Period::of(Granularity::Month, ms("2024-01-31T23:59:59Z"));
        assert_eq!(m.label(), (2024, "2024-01".to_owned()));
        let d = Period::of(Granularity::Day, ms("2024-02-29T12:00:00Z"));
        assert_eq!(d.label(), (2024, "2024-02-29".to_owned()));
        assert_eq!(
            d.range_ms(),
            Some((ms("2024-02-29T00:00:00Z"), ms("2024-03-01T00:00:00Z")))
        );
        assert_eq!(
            Period::Month(2024, 12).range_ms(),
            Some((ms("2024-12-01T00:00:00Z"), ms("2025-01-01T00:00:00Z")))
        );
        let monthly = PartitionKey {
            task: task(Interval::Mo1),
            period: Period::Year(2024),
        };
        assert_eq!(
            monthly.relative_path(),
            PathBuf::from("klines/market=spot/symbol=BTCUSDT/year=2024/1M-2024.parquet")
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
            2
        );
        // 1s candles around the leap day: 23:59:59 on Feb 28, Feb 29 and Mar 1.
        let t = ms("2024-02-29T00:00:00Z");
        let parts = split(
            rows_at(&[t - 1000, t, t + DAY_MS - 1000, t + DAY_MS]),
            &task(Interval::S1),
            PartitionSpec::Auto,
        );
        let days: Vec<String> = parts.iter().map(|(k, _)| k.period.label().1).collect();
        assert_eq!(days, ["2024-02-28", "2024-02-29", "2024-03-01"]);
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

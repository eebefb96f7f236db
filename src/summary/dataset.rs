//! Statistics and chart data of a dataset from its Parquet files alone (`kline-etl summary`,
//! `kline-etl chart`, `status`, and the dataset part of `_kline_etl/summary.json`): any dataset written
//! by the tool, whatever run wrote it.
//!
//! Three sources, cheapest first: the partitions a run just wrote, collected from the rows in
//! memory ([`Collector`]); the statistics a run stored in each file's footer
//! (`kline_etl.stats`), used when they match the file; and the file's rows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::chart::Candle;
use super::report::{PartitionReport, RangeReport, SeriesReport, series_stats};
use super::series::{GapCause, SeriesStats};
use crate::interval::Interval;
use crate::load::parquet::{FooterBounds, META_STATS, read_file, read_footer};
use crate::load::scan::{SeriesFiles, scan};
use crate::load::{LoadError, PartitionKey, TaskKey, WriteObserver};
use crate::market::Market;
use crate::symbol::Symbol;
use crate::transform::KlineRows;
use crate::transform::quality;

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The statistics and report of one partition file's rows.
fn partition_of(
    root: &Path,
    interval: Interval,
    path: &Path,
    (rows, signed_prices): (&KlineRows, bool),
    bytes: u64,
    checked: Option<&quality::QualityReport>,
) -> (SeriesStats, PartitionReport) {
    let stats = series_stats(interval, rows);
    let fresh;
    let report = match checked {
        Some(r) => r,
        None => {
            fresh = quality::check_with(rows, interval, signed_prices);
            &fresh
        }
    };
    let quality = report
        .counts
        .iter()
        .map(|(check, n)| (check.name().to_owned(), *n))
        .collect();
    let report = PartitionReport {
        path: relative(root, path),
        bytes,
        range: RangeReport::new(interval, &stats),
        quality,
    };
    (stats, report)
}

/// Version of the statistics record in [`META_STATS`]; a record of another version is
/// ignored (the file's rows are read instead).
const STATS_VERSION: u32 = 1;

/// What a run stores in each partition's footer under [`META_STATS`]: the partition's
/// statistics, so a later summary reads a few kilobytes instead of the rows.
#[derive(Debug, Serialize, Deserialize)]
struct FooterStats {
    v: u32,
    stats: SeriesStats,
    quality: QualityCounts,
}

/// Quality-check findings by check name.
type QualityCounts = BTreeMap<String, u64>;

/// Whether statistics `s` agree with a file's own Parquet column statistics `columns`: the
/// minimum and maximum of every numeric column the file has statistics for, and at least the
/// four prices' (a file whose statistics cannot vouch for the record is read instead).
fn stats_match_columns(s: &SeriesStats, columns: &BTreeMap<String, (f64, f64)>) -> bool {
    if s.rows == 0 {
        return true;
    }
    let prices_present = ["open", "high", "low", "close"]
        .iter()
        .all(|c| columns.contains_key(*c));
    prices_present
        && columns.iter().all(|(name, (lo, hi))| {
            s.columns
                .get(name)
                .is_some_and(|c| c.min == Some(*lo) && c.max == Some(*hi))
        })
}

/// The statistics stored in a partition's footer, if there are any and they describe the
/// file as it is: same version, same row count, same first and last open time, and the same
/// minimum and maximum of every numeric column as the file's own Parquet statistics (a file
/// rewritten or edited by another tool that kept our metadata is read instead).
fn footer_stats(path: &Path) -> Result<Option<(SeriesStats, QualityCounts)>, LoadError> {
    let footer = read_footer(path, META_STATS)?;
    let Some(text) = footer.value else {
        return Ok(None);
    };
    let Ok(record) = serde_json::from_str::<FooterStats>(&text) else {
        return Ok(None);
    };
    let s = &record.stats;
    let bounds = match s.first_open.zip(s.last_open) {
        Some((lo, hi)) => FooterBounds::Range(lo, hi),
        None => FooterBounds::Empty,
    };
    let matches = record.v == STATS_VERSION
        && s.rows == footer.info.rows
        && footer.bounds == bounds
        && stats_match_columns(s, &footer.columns);
    Ok(matches.then_some((record.stats, record.quality)))
}

/// Summarise one partition file: from the statistics in its footer when they match it,
/// else from its rows.
fn read_partition(
    root: &Path,
    interval: Interval,
    path: &Path,
) -> Result<(SeriesStats, PartitionReport), LoadError> {
    let bytes = fs_err::metadata(path)?.len();
    if let Some((stats, quality)) = footer_stats(path)? {
        let report = PartitionReport {
            path: relative(root, path),
            bytes,
            range: RangeReport::new(interval, &stats),
            quality,
        };
        return Ok((stats, report));
    }
    let (rows, info) = read_file(path)?;
    Ok(partition_of(
        root,
        interval,
        path,
        (&rows, info.signed_prices),
        bytes,
        None,
    ))
}

/// Join the non-overlapping parts of a series (each the statistics of one or more
/// consecutive partitions) and the reports of its partitions (by first open time) into its
/// report.
fn series_report(
    series: &SeriesFiles,
    mut chunks: Vec<SeriesStats>,
    mut reports: Vec<(Option<i64>, PartitionReport)>,
) -> SeriesReport {
    let interval = series.task.interval;
    // In time order (paths sort by period within one granularity; this also covers a dataset
    // whose partitioning was changed between runs).
    chunks.sort_by_key(|c| c.first_open);
    reports.sort_by_key(|(first, _)| *first);
    let mut total = SeriesStats::default();
    for c in &chunks {
        total.merge(interval, c);
    }
    SeriesReport::new(
        series.task.market,
        series.task.symbol.as_str(),
        interval,
        &total,
        reports.into_iter().map(|(_, r)| r).collect(),
    )
}

/// Statistics of one series from its files (read one partition at a time).
pub fn summarize_series(root: &Path, series: &SeriesFiles) -> Result<SeriesReport, LoadError> {
    let interval = series.task.interval;
    let mut chunks = Vec::with_capacity(series.files.len());
    let mut reports = Vec::with_capacity(series.files.len());
    for path in &series.files {
        let (stats, report) = read_partition(root, interval, path)?;
        reports.push((stats.first_open, report));
        chunks.push(stats);
    }
    Ok(series_report(series, chunks, reports))
}

/// Statistics of every series under `root`.
pub fn summarize(root: &Path) -> Result<Vec<SeriesReport>, LoadError> {
    summarize_with(root, None)
}

/// [`summarize`], taking the partitions a run just wrote from `collected` (built from the
/// rows in memory as they were written) and reading only the other files.
///
/// The result is the statistics of the files on disk either way: a series whose collected
/// parts cannot be proven to match them (a partition written twice, a collected file that is
/// gone, an unread file inside a collected stretch) is read back whole. Totals may differ
/// from a full re-read only in the last bits of floating-point sums, which are added up in a
/// different grouping.
pub fn summarize_with(
    root: &Path,
    collected: Option<&Collector>,
) -> Result<Vec<SeriesReport>, LoadError> {
    let mut collected = collected.map(Collector::take).unwrap_or_default();
    scan(root)?
        .iter()
        .map(|s| match collected.series.remove(&s.task) {
            Some(c) => summarize_collected(root, s, c),
            None => summarize_series(root, s),
        })
        .collect()
}

fn summarize_collected(
    root: &Path,
    series: &SeriesFiles,
    collected: CollectedSeries,
) -> Result<SeriesReport, LoadError> {
    let interval = series.task.interval;
    let on_disk: HashSet<&Path> = series.files.iter().map(PathBuf::as_path).collect();
    let trusted = !collected.rewritten
        && collected
            .partitions
            .keys()
            .all(|p| on_disk.contains(p.as_path()));
    if !trusted {
        return summarize_series(root, series);
    }
    // Parts to merge in time order: the collected stretches, and every other file read back.
    let mut chunks = Vec::with_capacity(collected.stretches.len());
    let mut reports = Vec::with_capacity(series.files.len());
    for path in &series.files {
        if collected.partitions.contains_key(path) {
            continue;
        }
        let (stats, report) = read_partition(root, interval, path)?;
        reports.push((stats.first_open, report));
        chunks.push(stats);
    }
    chunks.extend(collected.stretches);
    reports.extend(collected.partitions.into_values());
    chunks.sort_by_key(|s| s.first_open);
    let disjoint = chunks
        .windows(2)
        .all(|w| match (w[0].last_open, w[1].first_open) {
            (Some(a), Some(b)) => a < b,
            _ => true,
        });
    if !disjoint {
        return summarize_series(root, series);
    }
    Ok(series_report(series, chunks, reports))
}

/// Collects the statistics of every partition a [`crate::load::DatasetWriter`] writes, from
/// the rows it has in memory (see [`crate::load::WriteObserver`]), for
/// [`summarize_with`]. Consecutive partitions of a series are merged as they arrive, so
/// memory is one small report per partition plus one set of statistics per stretch of
/// consecutive partitions, not per partition.
#[derive(Debug)]
pub struct Collector {
    root: PathBuf,
    state: Mutex<Collected>,
    /// Premium-index klines: prices are signed rates (no `non_positive_price` findings).
    signed_prices: bool,
}

#[derive(Debug, Default)]
struct Collected {
    staged: HashMap<PathBuf, (TaskKey, SeriesStats, PartitionReport)>,
    series: HashMap<TaskKey, CollectedSeries>,
}

#[derive(Debug, Default)]
struct CollectedSeries {
    /// Merged statistics of runs of consecutive partitions, in arrival order.
    stretches: Vec<SeriesStats>,
    /// Each committed partition's first open time and report.
    partitions: HashMap<PathBuf, (Option<i64>, PartitionReport)>,
    /// A partition was committed twice: its first statistics are in a stretch, stale.
    rewritten: bool,
}

impl Collector {
    /// A collector for the dataset under `root` (the writer's root).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Collector {
            root: root.into(),
            state: Mutex::new(Collected::default()),
            signed_prices: false,
        }
    }

    /// The rows it sees are premium-index rates (signed): see [`quality::check_with`].
    #[must_use]
    pub fn with_signed_prices(mut self, signed: bool) -> Self {
        self.signed_prices = signed;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Collected> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters: at worst a series falls back to reading its files.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take(&self) -> Collected {
        std::mem::take(&mut *self.lock())
    }
}

impl WriteObserver for Collector {
    fn staged(
        &self,
        key: &PartitionKey,
        path: &Path,
        rows: &KlineRows,
        checked: Option<&quality::QualityReport>,
    ) -> Vec<(String, String)> {
        let (stats, report) = partition_of(
            &self.root,
            key.task.interval,
            path,
            (rows, self.signed_prices),
            0,
            checked,
        );
        let record = FooterStats {
            v: STATS_VERSION,
            stats,
            quality: report.quality.clone(),
        };
        // Non-finite totals (absurd volumes) do not survive JSON; such a file is read back.
        let note = serde_json::to_string(&record)
            .ok()
            .map(|json| (META_STATS.to_owned(), json));
        self.lock()
            .staged
            .insert(path.to_owned(), (key.task.clone(), record.stats, report));
        note.into_iter().collect()
    }

    fn committed(&self, staged: &Path, path: &Path, bytes: u64) {
        let mut state = self.lock();
        let Some((task, stats, mut report)) = state.staged.remove(staged) else {
            return;
        };
        report.bytes = bytes;
        if staged != path {
            report.path = relative(&self.root, path);
        }
        let interval = task.interval;
        let series = state.series.entry(task).or_default();
        let first = stats.first_open;
        if series
            .partitions
            .insert(path.to_owned(), (first, report))
            .is_some()
        {
            series.rewritten = true;
        }
        match series.stretches.last_mut() {
            Some(last) if matches!((last.last_open, stats.first_open), (Some(a), Some(b)) if a < b) =>
            {
                last.merge(interval, &stats);
            }
            _ => series.stretches.push(stats),
        }
    }
}

/// The rows of one series, in time order, or `None` when the dataset has no such series.
pub fn read_series(
    root: &Path,
    market: Market,
    symbol: &Symbol,
    interval: Interval,
) -> Result<Option<KlineRows>, LoadError> {
    let wanted = TaskKey {
        market,
        symbol: symbol.clone(),
        interval,
    };
    let Some(series) = scan(root)?.into_iter().find(|s| s.task == wanted) else {
        return Ok(None);
    };
    let mut parts = Vec::with_capacity(series.files.len());
    for path in &series.files {
        parts.push(read_file(path)?.0);
    }
    parts.sort_by_key(|r| r.open_time.first().copied());
    let mut iter = parts.into_iter();
    let Some(mut all) = iter.next() else {
        return Ok(None);
    };
    for p in iter {
        all.append(p);
    }
    Ok(Some(all))
}

/// Chart candles from typed rows.
pub fn candles(rows: &KlineRows) -> Vec<Candle> {
    (0..rows.len())
        .map(|i| Candle {
            open_time: rows.open_time[i],
            open: rows.open.f64_at(i),
            high: rows.high.f64_at(i),
            low: rows.low.f64_at(i),
            close: rows.close.f64_at(i),
            volume: rows.volume.f64_at(i),
        })
        .collect()
}

/// Mark gaps that overlap windows still pending in the resume file (fetches that failed, were
/// stopped or never reported back) as `fetch_failed`, or `invalid_row` / `empty_reply` for
/// windows of malformed rows and empty replies inside history; the others are the exchange's
/// own gaps.
pub fn attribute_pending(series: &mut [SeriesReport], pending: &[crate::load::resume::Pending]) {
    let parse = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
    };
    for p in pending {
        let Some(s) = series.iter_mut().find(|s| {
            s.market == p.market && s.symbol == p.symbol.as_str() && s.interval == p.interval
        }) else {
            continue;
        };
        let partition_gaps = s
            .partitions
            .iter_mut()
            .flat_map(|p| p.range.gaps.iter_mut());
        for g in s.range.gaps.iter_mut().chain(partition_gaps) {
            let (Some(start), Some(end)) = (parse(&g.start), parse(&g.end)) else {
                continue;
            };
            if p.start_ms < end && start < p.end_ms {
                g.cause = g.cause.overlaid_with(GapCause::of_pending(p.reason));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Compression, PartitionSpec, PriceType, TransformOptions};
    use crate::load::partition::split;
    use crate::load::{DatasetWriter, Fault, WriteOptions};
    use crate::transform::Column;
    use std::sync::Arc;

    const MIN: i64 = 60_000;
    const JAN: i64 = 1_704_067_200_000; // 2024-01-01

    fn task(symbol: &str) -> TaskKey {
        TaskKey {
            market: Market::Spot,
            symbol: symbol.parse().unwrap(),
            interval: Interval::M1,
        }
    }

    /// Minute candles opening at `from + i·(minutes)·MIN` for `n` steps, with values that
    /// depend on the time only (so rewriting a minute gives the same row).
    fn rows(start: i64, count: i64, step: i64) -> KlineRows {
        let mut out = KlineRows::with_capacity(PriceType::Float64, count as usize);
        for i in 0..count {
            let open = start + i * step * MIN;
            let price = 100.0 + ((open / MIN) % 97) as f64 * 0.25;
            out.open_time.push(open);
            out.close_time.push(open + MIN - 1);
            for (column, value) in [
                (&mut out.open, price),
                (&mut out.high, price + 1.0),
                (&mut out.low, price - 1.0),
                (&mut out.close, price + 0.5),
                (&mut out.volume, price * 3.0),
                (&mut out.quote_volume, price * price),
                (&mut out.taker_buy_base_volume, price),
                (&mut out.taker_buy_quote_volume, price * 2.0),
            ] {
                let Column::Float64(values) = column else {
                    unreachable!()
                };
                values.push(value);
            }
            out.trades.push((open / MIN % 13) as u64);
        }
        out
    }

    fn writer(root: &Path) -> DatasetWriter {
        DatasetWriter::new(
            root,
            WriteOptions {
                pipeline: "t".into(),
                source: "simulator".into(),
                transform: TransformOptions::default(),
                compression: Compression::Zstd(1),
                row_group_rows: 100_000,
                partition: PartitionSpec::Month,
            },
        )
    }

    fn write(w: &DatasetWriter, t: &TaskKey, r: KlineRows) {
        for (key, part) in split(r, t, PartitionSpec::Month) {
            w.write_partition(&key, part).unwrap();
        }
    }

    /// Equal as JSON, numbers within a relative 1e-9 (sums grouped differently).
    fn assert_close(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!(
                    (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs())),
                    "{at}: {x} vs {y}"
                );
            }
            (Value::Array(x), Value::Array(y)) => {
                assert_eq!(x.len(), y.len(), "{at}");
                for (i, (x, y)) in x.iter().zip(y).enumerate() {
                    assert_close(x, y, &format!("{at}[{i}]"));
                }
            }
            (Value::Object(x), Value::Object(y)) => {
                assert_eq!(
                    x.keys().collect::<Vec<_>>(),
                    y.keys().collect::<Vec<_>>(),
                    "{at}"
                );
                for (k, v) in x {
                    assert_close(v, &y[k], &format!("{at}.{k}"));
                }
            }
            _ => assert_eq!(a, b, "{at}"),
        }
    }

    fn same(collected: &[SeriesReport], read: &[SeriesReport]) {
        assert_close(
            &serde_json::to_value(collected).unwrap(),
            &serde_json::to_value(read).unwrap(),
            "series",
        );
    }

    #[test]
    fn collected_statistics_equal_the_files_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (a, b) = (task("AAAUSDT"), task("BBBUSDT"));
        // An earlier run: January and February of A (with a hole in February).
        write(&writer(root), &a, rows(JAN, 31 * 1440, 1));
        write(&writer(root), &a, rows(JAN + 31 * 1440 * MIN, 400, 5));
        // This run: the end of February (merged into the stored file) to May; all of B.
        let collector = Arc::new(Collector::new(root));
        let w = writer(root).with_observer(collector.clone());
        write(&w, &a, rows(JAN + 58 * 1440 * MIN, 70 * 1440, 1));
        write(&w, &b, rows(JAN, 45 * 1440, 1));
        let with = summarize_with(root, Some(&collector)).unwrap();
        let read = summarize(root).unwrap();
        assert_eq!(with.len(), 2);
        same(&with, &read);
        assert_eq!(with[0].partitions.len(), 5); // January .. May
    }

    #[test]
    fn collected_files_are_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let a = task("AAAUSDT");
        let collector = Arc::new(Collector::new(root));
        write(
            &writer(root).with_observer(collector.clone()),
            &a,
            rows(JAN, 100, 1),
        );
        // Behind the collector's back (no run does this): the file gains rows.
        write(&writer(root), &a, rows(JAN + 100 * MIN, 50, 1));
        let with = summarize_with(root, Some(&collector)).unwrap();
        assert_eq!(
            with[0].range.rows, 100,
            "the collected statistics were used"
        );
        assert_eq!(summarize(root).unwrap()[0].range.rows, 150);
    }

    #[test]
    fn a_partition_written_twice_or_not_at_all_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let a = task("AAAUSDT");
        let collector = Arc::new(Collector::new(root));
        let mut w = writer(root).with_observer(collector.clone());
        write(&w, &a, rows(JAN, 40 * 1440, 1));
        // The same January partition again, with more rows: the first statistics are stale.
        write(&w, &a, rows(JAN + 10 * MIN, 100, 7));
        // A failed write (the file is not replaced) is never committed.
        w.inject_fault(Some(Fault::BeforeRename));
        let bad = split(rows(JAN + 45 * 1440 * MIN, 10, 1), &a, PartitionSpec::Month);
        assert!(w.write_partition(&bad[0].0, bad[0].1.clone()).is_err());
        same(
            &summarize_with(root, Some(&collector)).unwrap(),
            &summarize(root).unwrap(),
        );
    }

    /// The summary of every file from its rows, ignoring footers (the reference).
    fn from_rows(root: &Path) -> Vec<SeriesReport> {
        scan(root)
            .unwrap()
            .iter()
            .map(|series| {
                let (chunks, reports) = series
                    .files
                    .iter()
                    .map(|path| {
                        let (rows, info) = read_file(path).unwrap();
                        let bytes = fs_err::metadata(path).unwrap().len();
                        let (stats, report) = partition_of(
                            root,
                            series.task.interval,
                            path,
                            (&rows, info.signed_prices),
                            bytes,
                            None,
                        );
                        let first = stats.first_open;
                        (stats, (first, report))
                    })
                    .unzip();
                series_report(series, chunks, reports)
            })
            .collect()
    }

    #[test]
    fn footer_statistics_are_used_when_they_match_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (a, b) = (task("AAAUSDT"), task("BBBUSDT"));
        let collector = Arc::new(Collector::new(root));
        write(
            &writer(root).with_observer(collector),
            &a,
            rows(JAN, 40 * 1440, 1),
        );
        // Written without statistics (as by an older version).
        write(&writer(root), &b, rows(JAN, 3 * 1440, 2));
        let files: Vec<PathBuf> = scan(root)
            .unwrap()
            .into_iter()
            .flat_map(|s| s.files)
            .collect();
        let with_stats: Vec<bool> = files
            .iter()
            .map(|f| footer_stats(f).unwrap().is_some())
            .collect();
        assert_eq!(with_stats, [true, true, false]);
        same(&summarize(root).unwrap(), &from_rows(root));
    }

    #[test]
    fn footer_statistics_that_do_not_match_the_rows_are_ignored() {
        use crate::load::parquet::encode;
        use crate::transform::KlineContext;
        use ::parquet::file::metadata::KeyValue;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let a = task("AAAUSDT");
        let collector = Arc::new(Collector::new(root));
        let w = writer(root).with_observer(collector);
        write(&w, &a, rows(JAN, 100, 1));
        let path = scan(root).unwrap()[0].files[0].clone();
        let note = read_footer(&path, META_STATS).unwrap().value.unwrap();
        // Another tool rewrites the file with other rows but keeps our metadata.
        let (key, part) = split(rows(JAN, 50, 2), &a, PartitionSpec::Month).remove(0);
        let ctx = KlineContext {
            market: a.market,
            symbol: &a.symbol,
            interval: a.interval,
            options: &w.options().transform,
        };
        let batch = crate::transform::schema::into_record_batch(part, &ctx).unwrap();
        let bytes = encode(
            &batch,
            &key,
            w.options(),
            &[KeyValue::new(META_STATS.to_owned(), note)],
            &path,
        )
        .unwrap();
        std::fs::write(&path, bytes).unwrap();
        assert!(footer_stats(&path).unwrap().is_none());
        let s = summarize(root).unwrap();
        assert_eq!(s[0].range.rows, 50);
        same(&s, &from_rows(root));
    }

    #[test]
    fn an_unread_file_inside_a_collected_stretch_is_merged_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let a = task("AAAUSDT");
        // February exists from before; this run writes January and March only.
        write(&writer(root), &a, rows(JAN + 31 * 1440 * MIN, 29 * 1440, 1));
        let collector = Arc::new(Collector::new(root));
        let w = writer(root).with_observer(collector.clone());
        write(&w, &a, rows(JAN, 31 * 1440, 1));
        write(&w, &a, rows(JAN + 60 * 1440 * MIN, 31 * 1440, 1));
        let with = summarize_with(root, Some(&collector)).unwrap();
        same(&with, &summarize(root).unwrap());
        assert_eq!(with[0].range.missing, 0);
    }
}

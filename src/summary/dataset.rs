//! Statistics and chart data recomputed from the Parquet files alone (`kline-etl summary`,
//! `kline-etl chart`, and the dataset part of `_summary.json`): any dataset written by the
//! tool, whatever run wrote it.

use std::path::Path;

use super::chart::Candle;
use super::report::{PartitionReport, RangeReport, SeriesReport, series_stats};
use super::series::SeriesStats;
use crate::interval::Interval;
use crate::load::scan::{SeriesFiles, scan};
use crate::load::{LoadError, TaskKey, parquet::read_file};
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

/// Statistics of one series from its files (read one partition at a time).
pub fn summarize_series(root: &Path, series: &SeriesFiles) -> Result<SeriesReport, LoadError> {
    let interval = series.task.interval;
    let mut parts: Vec<(SeriesStats, PartitionReport)> = Vec::with_capacity(series.files.len());
    for path in &series.files {
        let (rows, _) = read_file(path)?;
        let stats = series_stats(interval, &rows);
        let quality = quality::check(&rows, interval)
            .counts
            .iter()
            .map(|(check, n)| (check.name().to_owned(), *n))
            .collect();
        let bytes = fs_err::metadata(path)?.len();
        let report = PartitionReport {
            path: relative(root, path),
            bytes,
            range: RangeReport::new(interval, &stats),
            quality,
        };
        parts.push((stats, report));
    }
    // Partitions in time order (paths sort by period within one granularity; this also
    // covers a dataset whose partitioning was changed between runs).
    parts.sort_by_key(|(s, _)| s.first_open);
    let mut total = SeriesStats::default();
    let mut files = Vec::with_capacity(parts.len());
    for (s, p) in parts {
        total.merge(interval, &s);
        files.push(p);
    }
    Ok(SeriesReport::new(
        series.task.market,
        series.task.symbol.as_str(),
        interval,
        &total,
        files,
    ))
}

/// Statistics of every series under `root`.
pub fn summarize(root: &Path) -> Result<Vec<SeriesReport>, LoadError> {
    scan(root)?
        .iter()
        .map(|s| summarize_series(root, s))
        .collect()
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
/// stopped or never reported back) as `fetch_failed`; the others are the exchange's own gaps.
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
                g.cause = super::series::GapCause::FetchFailed;
            }
        }
    }
}

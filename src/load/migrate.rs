//! The conversion behind `kline-etl migrate PATH [--dry-run]` ([`crate::commands::migrate`]):
//! convert a dataset written in layout version 1 into layout version 2 ([`crate::layout`]), in
//! place.
//!
//! `PATH` is an output root (or a pipeline file); every klines directory under it is converted:
//! the root's own, and those of the kline family roots (`mark_price`, `index_price`,
//! `premium_index`, `continuous/contract_type=…`); the snapshot datasets' reports move too.
//!
//! One step at a time, each safe to be killed at any point:
//!
//! 1. every layout-1 partition file is read, split into its layout-2 partitions, each written
//!    atomically by the ordinary writer (merged with what a killed earlier migrate may have
//!    written there already), read back and compared row by row with the old file, and only
//!    then is the old file removed. Killed before the removal, the rerun converts the file
//!    again, which changes nothing (the merge is idempotent); killed after it, nothing is left
//!    to do for that file.
//! 2. the reports (`_summary.*`, `_resume*.json`, `_archive_manifest.json`) are renamed into
//!    `_kline_etl/` (a rename is atomic), the layout-1 lock file removed, then the empty series
//!    directories.
//!
//! The dataset lock is held throughout, and layout 1's lock must be free (a run of an older
//! release on the same dataset makes migrate stop with exit 5). `--dry-run` lists the steps and
//! touches nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Compression, ContractType, KlineFamily, PartitionSpec, TransformOptions};
use crate::layout::{self, v1};
use crate::load::legacy::{self, OldPartition};
use crate::load::partition::{self, Granularity, PartitionKey};
use crate::load::{DatasetWriter, LoadError, WriteObserver, WriteOptions, parquet};
use crate::transform::KlineRows;

/// Test hook: after this many converted partition files (written and verified, the old file not
/// yet removed) the process aborts, as if killed. Used by the integration tests only.
pub const KILL_AFTER_ENV: &str = "KLINE_ETL_MIGRATE_KILL_AFTER";

/// Makes the observer that the writer of an output root shows every partition to (the
/// summary's statistics stored in each file's metadata, as a run stores them). The caller
/// supplies it, so that the load layer does not depend on the summary.
pub type ObserverFor<'a> = &'a dyn Fn(&Path) -> std::sync::Arc<dyn WriteObserver>;

/// What a migration did (or, with `--dry-run`, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// Layout-1 partition files converted.
    pub files_converted: usize,
    /// Rows in them.
    pub rows: u64,
    /// Layout-2 files written.
    pub files_written: usize,
    /// Reports moved into `_kline_etl/`.
    pub reports_moved: usize,
    /// Files and directories of layout 1 removed (after conversion).
    pub removed: usize,
}

/// The klines roots under an output root: the root itself and each kline family's root.
fn kline_roots(root: &Path) -> Vec<(PathBuf, Option<KlineFamily>)> {
    let mut out = vec![(root.to_owned(), None)];
    for f in [
        KlineFamily::MarkPrice,
        KlineFamily::IndexPrice,
        KlineFamily::PremiumIndex,
        KlineFamily::Continuous(ContractType::Perpetual),
        KlineFamily::Continuous(ContractType::CurrentQuarter),
        KlineFamily::Continuous(ContractType::NextQuarter),
    ] {
        let r = root.join(layout::family_root(f));
        if r.is_dir() {
            out.push((r, Some(f)));
        }
    }
    out
}

/// Whether anything under the output root `root` is still in layout 1.
pub fn needs_migration(root: &Path) -> bool {
    kline_roots(root)
        .iter()
        .any(|(r, _)| legacy::is_old_klines(&layout::klines_dir(r)))
        || snapshot_dirs(root)
            .iter()
            .any(|d| legacy::is_old_snapshot(d))
        || legacy::is_old_funding(&layout::dataset_dir(
            root,
            crate::config::Dataset::FundingRate,
        ))
}

fn snapshot_dirs(root: &Path) -> Vec<PathBuf> {
    [
        crate::config::Dataset::TickerPrice,
        crate::config::Dataset::Depth,
    ]
    .into_iter()
    .map(|d| layout::dataset_dir(root, d))
    .filter(|d| d.is_dir())
    .collect()
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// The family a layout-1 file names in its metadata (`kline_etl.kline_family`), or `fallback`.
fn file_family(path: &Path, fallback: Option<KlineFamily>) -> Result<KlineFamily, LoadError> {
    let family = parquet::read_footer(path, "kline_etl.kline_family")?.value;
    let contract = parquet::read_footer(path, "kline_etl.contract_type")?.value;
    let contract = match contract.as_deref() {
        Some("CURRENT_QUARTER") => ContractType::CurrentQuarter,
        Some("NEXT_QUARTER") => ContractType::NextQuarter,
        _ => ContractType::Perpetual,
    };
    Ok(match family.as_deref() {
        Some("mark_price") => KlineFamily::MarkPrice,
        Some("index_price") => KlineFamily::IndexPrice,
        Some("premium_index") => KlineFamily::PremiumIndex,
        Some("continuous") => KlineFamily::Continuous(contract),
        Some(_) => KlineFamily::Trades,
        None => fallback.unwrap_or(KlineFamily::Trades),
    })
}

fn write_options(path: &Path, old: &OldPartition) -> Result<WriteOptions, LoadError> {
    let pipeline = parquet::read_footer(path, "kline_etl.pipeline")?;
    let source = parquet::read_footer(path, "kline_etl.source")?.value;
    Ok(WriteOptions {
        pipeline: pipeline.value.unwrap_or_default(),
        source: source.unwrap_or_default(),
        transform: TransformOptions {
            prices: pipeline.info.prices,
            time_unit: pipeline.info.time_unit,
            ..TransformOptions::default()
        },
        compression: Compression::Zstd(crate::config::validate::DEFAULT_ZSTD_LEVEL),
        row_group_rows: crate::config::validate::DEFAULT_ROW_GROUP_ROWS,
        partition: match old.granularity {
            Granularity::Month => PartitionSpec::Month,
            Granularity::Day => PartitionSpec::Day,
            Granularity::Year => PartitionSpec::Year,
        },
    })
}

/// Every row of `want` is in the file at `path`, equal in every column.
fn verify(path: &Path, want: &KlineRows) -> Result<(), LoadError> {
    let (got, _) = parquet::read_file(path)?;
    let idx: Option<Vec<usize>> = want
        .open_time
        .iter()
        .map(|t| got.open_time.binary_search(t).ok())
        .collect();
    let same = idx.is_some_and(|idx| &got.take(&idx) == want);
    if same {
        Ok(())
    } else {
        Err(LoadError::MigrateVerify {
            path: path.to_owned(),
        })
    }
}

/// Convert one layout-1 partition file; returns the layout-2 files it went to and its rows.
fn convert(
    root: &Path,
    old: &OldPartition,
    family: Option<KlineFamily>,
    dry_run: bool,
    observer: ObserverFor<'_>,
) -> Result<(Vec<PathBuf>, u64), LoadError> {
    let (rows, _) = parquet::read_file(&old.path)?;
    let n = rows.len() as u64;
    let opts = write_options(&old.path, old)?;
    let family = file_family(&old.path, family)?;
    let rows = if family.has_volumes() {
        rows
    } else {
        rows.without_volumes()
    };
    let parts: Vec<(PartitionKey, KlineRows)> = partition::split(rows, &old.task, opts.partition);
    let writer = DatasetWriter::new(root, opts)
        .with_family(family)
        .with_observer(observer(root));
    let mut out = Vec::with_capacity(parts.len());
    for (key, part) in parts {
        let path = writer.path_of(&key);
        if !dry_run {
            writer.write_partition(&key, part.clone())?;
            verify(&path, &part)?;
        }
        out.push(path);
    }
    Ok((out, n))
}

fn kill_after() -> Option<usize> {
    std::env::var(KILL_AFTER_ENV).ok()?.parse().ok()
}

/// Migrate everything under the output root `root`, writing one line per step to `log`; each
/// klines root's writer gets `observer(kline root)`.
pub fn migrate(
    root: &Path,
    dry_run: bool,
    log: &mut dyn Write,
    observer: ObserverFor<'_>,
) -> Result<MigrateReport, LoadError> {
    let mut report = MigrateReport::default();
    let say = |log: &mut dyn Write, line: String| {
        let _ = writeln!(log, "{}{line}", if dry_run { "would " } else { "" });
    };
    for (kroot, family) in kline_roots(root) {
        let klines = layout::klines_dir(&kroot);
        if !legacy::is_old_klines(&klines) {
            continue;
        }
        // Hold the dataset lock, and make sure no older release holds layout 1's.
        let _lock = if dry_run {
            None
        } else {
            let old_lock = crate::load::lock::acquire_file(
                klines.join(v1::LOCK_FILE),
                "kline-etl migrate",
                Duration::ZERO,
            )?;
            let new_lock =
                crate::load::lock::acquire_any(&kroot, None, "kline-etl migrate", Duration::ZERO)?;
            Some((old_lock, new_lock))
        };
        for old in legacy::old_partitions(&klines) {
            let (to, rows) = convert(&kroot, &old, family, dry_run, observer)?;
            let targets: Vec<String> = to.iter().map(|p| rel(root, p)).collect();
            say(
                log,
                format!(
                    "convert {} ({rows} rows) -> {}",
                    rel(root, &old.path),
                    targets.join(", ")
                ),
            );
            report.files_converted += 1;
            report.files_written += to.len();
            report.rows += rows;
            if !dry_run {
                if kill_after().is_some_and(|n| report.files_converted >= n) {
                    let _ = log.flush();
                    std::process::abort();
                }
                fs_err::remove_file(&old.path)?;
                report.removed += 1;
            }
        }
        for from in legacy::old_state_files(&klines) {
            let name = from
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match v1::state_file_v2(&kroot, &name) {
                Some(to) => {
                    say(
                        log,
                        format!("move {} -> {}", rel(root, &from), rel(root, &to)),
                    );
                    if !dry_run {
                        if let Some(parent) = to.parent() {
                            fs_err::create_dir_all(parent)?;
                        }
                        fs_err::rename(&from, &to)?;
                    }
                    report.reports_moved += 1;
                }
                None => {
                    say(log, format!("remove {}", rel(root, &from)));
                    if !dry_run {
                        fs_err::remove_file(&from)?;
                        report.removed += 1;
                    }
                }
            }
        }
        if dry_run {
            for (_, dir) in legacy::old_series_dirs(&klines) {
                say(log, format!("remove {} (once empty)", rel(root, &dir)));
            }
        } else {
            for dir in legacy::remove_empty_series_dirs(&klines) {
                say(log, format!("removed {}", rel(root, &dir)));
                report.removed += 1;
            }
        }
    }
    for dir in snapshot_dirs(root) {
        if legacy::is_old_snapshot(&dir) {
            migrate_snapshot(root, &dir, dry_run, log, &mut report)?;
        }
    }
    Ok(report)
}

/// A snapshot dataset: each layout-1 depth file renamed to its layout-2 name (a rename is
/// atomic and keeps the bytes), the report moved into `_kline_etl/`, empty directories removed.
fn migrate_snapshot(
    root: &Path,
    dir: &Path,
    dry_run: bool,
    log: &mut dyn Write,
    report: &mut MigrateReport,
) -> Result<(), LoadError> {
    let would = if dry_run { "would " } else { "" };
    for (from, to) in legacy::old_depth_files(dir) {
        let _ = writeln!(
            log,
            "{would}move {} -> {}",
            rel(root, &from),
            rel(root, &to)
        );
        report.files_converted += 1;
        report.files_written += 1;
        if !dry_run {
            if let Some(parent) = to.parent() {
                fs_err::create_dir_all(parent)?;
            }
            fs_err::rename(&from, &to)?;
        }
    }
    let from = dir.join(v1::SUMMARY_JSON);
    if from.is_file() {
        let to = layout::state_dir_of(dir).join(layout::SUMMARY_JSON);
        let _ = writeln!(
            log,
            "{would}move {} -> {}",
            rel(root, &from),
            rel(root, &to)
        );
        if !dry_run {
            fs_err::create_dir_all(layout::state_dir_of(dir))?;
            fs_err::rename(&from, &to)?;
        }
        report.reports_moved += 1;
    }
    if !dry_run {
        report.removed += legacy::remove_empty_dirs(dir).len();
    }
    Ok(())
}

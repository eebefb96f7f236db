//! `kline-etl run` and `kline-etl repair`: validate every pipeline first, then run them in
//! order with Ctrl-C/SIGTERM handling and progress; the exit code is the worst of the runs'.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::{GlobalArgs, RepairArgs, RunArgs};
use crate::config::Pipeline;
use crate::exit::ExitCode;
use crate::plan;
use crate::run::{RunMode, RunOptions};

use super::{load_with_range, now_ms, print, report, runtime, worse};

/// Validates every pipeline first (nothing is fetched or written if any is invalid), then runs
/// them in order. The exit code is the worst of the runs'.
pub fn run(args: &RunArgs, global: &GlobalArgs) -> ExitCode {
    let mut pipelines = Vec::new();
    for path in &args.pipelines {
        match load_with_range(path, &args.range) {
            Some(mut p) => {
                let over = args.symbols.as_deref().or(args.intervals.as_deref());
                if over.is_some()
                    && let Err(e) = crate::config::override_series(
                        &mut p,
                        args.symbols.as_deref(),
                        args.intervals.as_deref(),
                    )
                {
                    report(&e);
                    return ExitCode::Usage;
                }
                pipelines.push((path, p));
            }
            None => return ExitCode::Usage,
        }
    }
    if args.dry_run {
        // The same planner as the run: what is on disk and in the resume file is skipped.
        let now = now_ms();
        for (_, p) in &pipelines {
            match plan::build_on_disk(p, now, args.full_refresh, args.shard) {
                Ok(plan) => print(&format!("{plan}\n")),
                Err(e) => {
                    report(&e);
                    return e.exit_code();
                }
            }
        }
        return ExitCode::Ok;
    }
    let base = RunOptions {
        full_refresh: args.full_refresh,
        concurrency: args.concurrency.map(usize::from),
        pipeline_hash: None,
        print_table: global.quiet == 0,
        lock_wait: std::time::Duration::from_secs(args.lock.lock_wait),
        mode: RunMode::Incremental,
        shard: args.shard,
        recheck_archive: args.recheck_archive,
    };
    run_all(&pipelines, &base, global)
}

/// `kline-etl repair`: the same run, with tasks taken from the summary's failed fetches.
pub fn repair(args: &RepairArgs, global: &GlobalArgs) -> ExitCode {
    let Some(p) = load_with_range(&args.pipeline, &crate::cli::RangeOverride::default()) else {
        return ExitCode::Usage;
    };
    let base = RunOptions {
        full_refresh: false,
        concurrency: args.concurrency.map(usize::from),
        pipeline_hash: None,
        print_table: global.quiet == 0,
        lock_wait: std::time::Duration::from_secs(args.lock.lock_wait),
        mode: RunMode::Repair {
            exchange_gaps: args.exchange_gaps,
        },
        shard: args.shard,
        recheck_archive: false,
    };
    run_all(&[(&args.pipeline, p)], &base, global)
}

/// Run pipelines in order with Ctrl-C/SIGTERM handling and progress; the exit code is the
/// worst of the runs'.
pub fn run_all(
    pipelines: &[(&PathBuf, Pipeline)],
    base: &RunOptions,
    global: &GlobalArgs,
) -> ExitCode {
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(watch_signals(cancel_tx));
        let show_bar = !global.no_progress
            && global.quiet == 0
            && global.log_format == crate::cli::LogFormat::Text
            && std::io::stderr().is_terminal();
        let mut worst = ExitCode::Ok;
        for (path, p) in pipelines {
            let opts = RunOptions {
                pipeline_hash: fs_err::read(path)
                    .ok()
                    .map(|b| sha256_hex(&b))
                    .or_else(|| base.pipeline_hash.clone()),
                ..base.clone()
            };
            let bar = show_bar.then(|| Arc::new(crate::progress::Bar::new()));
            let progress: Arc<dyn crate::extract::Progress> = match &bar {
                Some(b) => b.clone(),
                None => Arc::new(crate::extract::NoProgress),
            };
            let result = crate::dataset::run_pipeline(p, &opts, progress, cancel_rx.clone()).await;
            if let Some(b) = bar {
                b.finish();
            }
            let code = match result {
                Ok(r) => {
                    if opts.print_table {
                        print(&r.table);
                    }
                    tracing::info!(
                        pipeline = %p.name,
                        outcome = %r.exit.name(),
                        summary = %r.summary_path.display(),
                        "run finished"
                    );
                    r.exit
                }
                Err(e) => {
                    report(&e);
                    e.exit_code()
                }
            };
            worst = worse(worst, code);
            if *cancel_rx.borrow() {
                break;
            }
        }
        worst
    })
}

/// First Ctrl-C or SIGTERM: stop cleanly (in-flight requests abandoned, finished partitions
/// kept, summary written, exit 3). Second Ctrl-C: exit at once with 3.
pub async fn watch_signals(cancel: tokio::sync::watch::Sender<bool>) {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    loop {
        #[cfg(unix)]
        let got = match term.as_mut() {
            Some(t) => tokio::select! {
                r = tokio::signal::ctrl_c() => r.is_ok(),
                r = t.recv() => r.is_some(),
            },
            None => tokio::signal::ctrl_c().await.is_ok(),
        };
        #[cfg(not(unix))]
        let got = tokio::signal::ctrl_c().await.is_ok();
        if !got {
            return;
        }
        if *cancel.borrow() {
            crate::console::notice(
                "interrupted again: exiting now (finished partitions are kept; rerun to resume)",
            );
            std::process::exit(i32::from(ExitCode::Resumable.code()));
        }
        crate::console::notice(
            "interrupted: stopping cleanly (press Ctrl-C again to exit at once)",
        );
        let _ = cancel.send(true);
    }
}

pub use crate::digest::sha256_hex;

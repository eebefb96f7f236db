//! The `kline-etl` binary: parse the command line, set up logging, dispatch, map the outcome
//! to an exit code (see `kline_etl::exit`).

use std::error::Error;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;
use kline_etl::cli::{
    ChartArgs, Cli, Command, GlobalArgs, LogFormat, PlanArgs, RepairArgs, RunArgs, SimulateArgs,
    StatusArgs, SummaryArgs, ValidateArgs,
};
use kline_etl::config::{self, ConfigError, Pipeline};
use kline_etl::exit::ExitCode;
use kline_etl::market::Market;
use kline_etl::plan;
use kline_etl::run::{RunMode, RunOptions};
#[cfg(feature = "simulator")]
use kline_etl::simulator::SimConfig;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    init_tracing(&cli.global);
    let code = match cli.command {
        Command::Validate(args) => validate(&args),
        Command::Plan(args) => plan_cmd(&args),
        Command::Run(args) => run(&args, &cli.global),
        Command::Repair(args) => repair(&args, &cli.global),
        Command::Status(args) => status(&args),
        Command::Simulate(args) => simulate(&args),
        Command::Summary(args) => summary(&args),
        Command::Chart(args) => chart(&args),
    };
    code.into()
}

/// Logs go to stderr (colours only on a terminal without `NO_COLOR`); `RUST_LOG` wins over
/// `-v`/`-q`.
fn init_tracing(g: &GlobalArgs) {
    let level = match (i16::from(g.verbose) - i16::from(g.quiet)).clamp(-2, 2) {
        -2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "info,kline_etl=debug",
        _ => "debug,kline_etl=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(kline_etl::progress::LogWriter);
    let _ = match g.log_format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The process environment, for `${VAR}` interpolation.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Print `error: …` and each cause once (with every registered secret redacted).
fn report(e: &dyn Error) {
    let mut msg = format!("error: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(msg, "\n  caused by: {s}");
        source = s.source();
    }
    eprintln!("{}", config::redact(&msg));
}

/// A panic is a bug: print it once (secrets redacted) with a request to report it, and exit
/// with the documented internal-error code (70) instead of Rust's 101.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error (a bug in kline-etl): {}{at}\n  please report it with the command line and pipeline file; files already written are complete and consistent",
            config::redact(&what)
        );
        std::process::exit(i32::from(ExitCode::Internal.code()));
    }));
}

fn load(path: &Path) -> Result<Pipeline, ConfigError> {
    let p = config::load(path, &process_env)?;
    tracing::debug!(path = %path.display(), pipeline = %p.name, "pipeline is valid");
    Ok(p)
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn validate(args: &ValidateArgs) -> ExitCode {
    let mut failed = false;
    for path in &args.pipelines {
        match load(path) {
            Ok(p) => {
                let symbols = match &p.symbols {
                    config::SymbolSelection::List(l) => format!("{} symbol(s)", l.len()),
                    config::SymbolSelection::Selector(_) => "a symbol selector".to_owned(),
                };
                let intervals = if p.intervals.is_empty() {
                    String::new()
                } else {
                    format!(", {} interval(s)", p.intervals.len())
                };
                print(&format!(
                    "ok: `{}` ({}: {} {}, {symbols}{intervals})\n",
                    path.display(),
                    p.name,
                    p.source.market,
                    p.dataset.as_str(),
                ));
            }
            Err(e) => {
                report(&e);
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::Usage
    } else {
        ExitCode::Ok
    }
}

/// Load a pipeline and apply `--from`/`--to`.
fn load_with_range(path: &Path, range: &kline_etl::cli::RangeOverride) -> Option<Pipeline> {
    let mut p = match load(path) {
        Ok(p) => p,
        Err(e) => {
            report(&e);
            return None;
        }
    };
    if let Err(e) = config::override_range(&mut p, range.from.as_deref(), range.to.as_deref()) {
        report(&e);
        return None;
    }
    Some(p)
}

fn plan_cmd(args: &PlanArgs) -> ExitCode {
    let Some(p) = load_with_range(&args.pipeline, &args.range) else {
        return ExitCode::Usage;
    };
    let now = match args.now.as_deref().map(config::parse_time) {
        None => now_ms(),
        Some(Ok(t)) => t.resolve(now_ms()),
        Some(Err(e)) => {
            report(&e);
            return ExitCode::Usage;
        }
    };
    if let Err(e) = config::resolve_range(&p, now) {
        report(&e);
        return ExitCode::Usage;
    }
    let mut plan = plan::build(&p, now);
    if args.resolve && matches!(p.symbols, config::SymbolSelection::Selector(_)) {
        let runtime = match runtime() {
            Ok(r) => r,
            Err(code) => return code,
        };
        let symbols = match runtime.block_on(kline_etl::run::resolve_symbols(&p)) {
            Ok(s) => s,
            Err(e) => {
                report(&e);
                return e.exit_code();
            }
        };
        let selector = plan.selector.take();
        let mut listed = p.clone();
        listed.symbols = config::SymbolSelection::List(symbols.clone());
        plan = plan::build(&listed, now);
        plan.selector = selector;
        plan.resolved_symbols = Some(symbols.iter().map(ToString::to_string).collect());
    }
    if args.json {
        match serde_json::to_string_pretty(&plan) {
            Ok(s) => print(&format!("{s}\n")),
            Err(e) => {
                report(&e);
                return ExitCode::Internal;
            }
        }
    } else {
        print(&plan.to_string());
    }
    ExitCode::Ok
}

/// Validates every pipeline first (nothing is fetched or written if any is invalid), then runs
/// them in order. The exit code is the worst of the runs'.
fn run(args: &RunArgs, global: &GlobalArgs) -> ExitCode {
    let mut pipelines = Vec::new();
    for path in &args.pipelines {
        match load_with_range(path, &args.range) {
            Some(p) => pipelines.push((path, p)),
            None => return ExitCode::Usage,
        }
    }
    if args.dry_run {
        let now = now_ms();
        for (_, p) in &pipelines {
            print(&format!("{}\n", plan::build(p, now)));
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
fn repair(args: &RepairArgs, global: &GlobalArgs) -> ExitCode {
    let Some(p) = load_with_range(&args.pipeline, &kline_etl::cli::RangeOverride::default()) else {
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
fn run_all(pipelines: &[(&PathBuf, Pipeline)], base: &RunOptions, global: &GlobalArgs) -> ExitCode {
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(watch_signals(cancel_tx));
        let show_bar = !global.no_progress && global.quiet == 0 && std::io::stderr().is_terminal();
        let mut worst = ExitCode::Ok;
        for (path, p) in pipelines {
            let opts = RunOptions {
                pipeline_hash: fs_err::read(path).ok().map(|b| sha256_hex(&b)),
                ..base.clone()
            };
            let bar = show_bar.then(|| Arc::new(kline_etl::progress::Bar::new()));
            let progress: Arc<dyn kline_etl::extract::Progress> = match &bar {
                Some(b) => b.clone(),
                None => Arc::new(kline_etl::extract::NoProgress),
            };
            let result = kline_etl::run::run_pipeline(p, &opts, progress, cancel_rx.clone()).await;
            if let Some(b) = bar {
                b.finish();
            }
            let code = match result {
                Ok(r) => {
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

/// A multi-threaded tokio runtime, or the exit code for failing to build one.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            report(&e);
            ExitCode::Internal
        })
}

/// The more severe of two exit codes (usage and internal errors outrank partial results).
fn worse(a: ExitCode, b: ExitCode) -> ExitCode {
    let rank = |c: ExitCode| match c {
        ExitCode::Ok => 0,
        ExitCode::TasksFailed => 1,
        ExitCode::Resumable => 2,
        ExitCode::Locked => 3,
        ExitCode::Output => 4,
        ExitCode::Usage => 5,
        ExitCode::Internal => 6,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// First Ctrl-C or SIGTERM: stop cleanly (in-flight requests abandoned, finished partitions
/// kept, summary written, exit 3). Second Ctrl-C: exit at once with 3.
async fn watch_signals(cancel: tokio::sync::watch::Sender<bool>) {
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
            eprintln!(
                "interrupted again: exiting now (finished partitions are kept; rerun to resume)"
            );
            std::process::exit(i32::from(ExitCode::Resumable.code()));
        }
        eprintln!("interrupted: stopping cleanly (press Ctrl-C again to exit at once)");
        let _ = cancel.send(true);
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(not(feature = "simulator"))]
fn simulate(_: &SimulateArgs) -> ExitCode {
    eprintln!("error: {}", kline_etl::simulator::NOT_BUILT);
    ExitCode::Usage
}

#[cfg(feature = "simulator")]
fn simulate(args: &SimulateArgs) -> ExitCode {
    let mut config = SimConfig::default()
        .with_seed(args.seed)
        .with_extra_spot_symbols(args.extra_symbols);
    config.faults.latency.fixed_ms = args.latency_ms;
    if let Some(m) = args
        .market
        .as_deref()
        .and_then(|m| m.parse::<Market>().ok())
    {
        config.symbols.retain(|k, _| *k == m);
    }
    if args.window_secs != 60 {
        config = config.with_window(kline_etl::simulator::RateWindow::seconds(args.window_secs));
    }
    if let Some(limit) = args.weight_limit {
        for market in Market::ALL {
            config = config.with_weight_limit(market, limit);
        }
    }
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(kline_etl::simulator::serve_until_ctrl_c(config, args.port)) {
        Ok(()) => ExitCode::Ok,
        Err(e) => {
            report(&e);
            ExitCode::Usage
        }
    }
}

/// `PATH` is an output root, or a pipeline file whose `output.path` is the root.
fn output_root(path: &Path) -> Result<PathBuf, ExitCode> {
    let is_pipeline = path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    if is_pipeline {
        return load(path).map(|p| p.kline_root()).map_err(|e| {
            report(&e);
            ExitCode::Usage
        });
    }
    if !path.is_dir() {
        eprintln!(
            "error: `{}` is neither an output directory nor a pipeline file",
            path.display()
        );
        return Err(ExitCode::Usage);
    }
    Ok(path.to_owned())
}

fn summary(args: &SummaryArgs) -> ExitCode {
    let root = match output_root(&args.path) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let mut series = match kline_etl::summary::dataset::summarize(&root) {
        Ok(s) => s,
        Err(e) => {
            report(&e);
            return e.exit_code();
        }
    };
    kline_etl::summary::dataset::attribute_pending(
        &mut series,
        &kline_etl::load::resume::read_all(&root),
    );
    if series.is_empty() {
        eprintln!("note: no kline data under `{}`", root.display());
    }
    if args.json {
        let doc = kline_etl::summary::report::Report::<()> {
            report_version: kline_etl::summary::report::REPORT_VERSION,
            tool: kline_etl::summary::report::ToolInfo::default(),
            pipeline: None,
            run: None,
            series,
        };
        match serde_json::to_string_pretty(&doc) {
            Ok(s) => print(&format!("{s}\n")),
            Err(e) => {
                report(&e);
                return ExitCode::Internal;
            }
        }
        return ExitCode::Ok;
    }
    let mut out = kline_etl::summary::report::render_table(&series);
    if args.describe {
        for s in &series {
            let _ = write!(out, "\n{} {} {}\n", s.market, s.symbol, s.interval);
            out.push_str(&kline_etl::summary::report::render_describe(s));
        }
    }
    print(&out);
    ExitCode::Ok
}

fn status(args: &StatusArgs) -> ExitCode {
    let root = match output_root(&args.path) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let st = match kline_etl::status::status(&root) {
        Ok(s) => s,
        Err(e) => {
            report(&e);
            return e.exit_code();
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&st) {
            Ok(s) => print(&format!("{s}\n")),
            Err(e) => {
                report(&e);
                return ExitCode::Internal;
            }
        }
    } else {
        print(&kline_etl::status::render(&st));
    }
    ExitCode::Ok
}

fn chart(args: &ChartArgs) -> ExitCode {
    use kline_etl::summary::chart::{ChartSpec, render_png, render_svg};
    let usage = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::Usage
    };
    let root = match output_root(&args.path) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let market: Market = match args.market.parse() {
        Ok(m) => m,
        Err(e) => return usage(format!("{e}")),
    };
    let symbol: kline_etl::symbol::Symbol = match args.symbol.parse() {
        Ok(s) => s,
        Err(e) => return usage(format!("{e}")),
    };
    let interval: kline_etl::interval::Interval = match args.interval.parse() {
        Ok(i) => i,
        Err(e) => return usage(format!("{e}")),
    };
    let mut mav = Vec::new();
    for w in args.mav.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match w.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => mav.push(n),
            _ => {
                return usage(format!(
                    "`--mav` takes whole numbers from 1 to 1000, found `{w}`"
                ));
            }
        }
    }
    let ext = args
        .output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let png = match ext.as_deref() {
        Some("png") => true,
        Some("svg") => false,
        _ => {
            return usage(format!(
                "`--output {}` must end in `.svg` or `.png`",
                args.output.display()
            ));
        }
    };
    let rows = match kline_etl::summary::dataset::read_series(&root, market, &symbol, interval) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return usage(format!(
                "no {market} {symbol} {interval} data under `{}`; run a pipeline first or check the names",
                root.display()
            ));
        }
        Err(e) => {
            report(&e);
            return e.exit_code();
        }
    };
    let candles = kline_etl::summary::dataset::candles(&rows);
    let spec = ChartSpec {
        title: format!("{symbol} {interval} ({market})"),
        interval,
        width: args.width,
        height: args.height,
        mav,
        last: Some(args.last as usize),
    };
    let bytes = if png {
        render_png(&candles, &spec)
    } else {
        render_svg(&candles, &spec).map(String::into_bytes)
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => return usage(format!("{e}")),
    };
    if let Err(e) =
        kline_etl::load::atomic::write_atomic(&args.output, &bytes, |_| Ok(()), |_| false)
    {
        report(&e);
        return ExitCode::Output;
    }
    eprintln!(
        "wrote `{}` ({} candles)",
        args.output.display(),
        candles.len().min(args.last as usize)
    );
    ExitCode::Ok
}

/// The current time in whole seconds (plans read better without milliseconds).
fn now_ms() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    now - now % 1000
}

//! The `kline-etl` binary: parse the command line, set up logging, dispatch, map the outcome
//! to an exit code (see `kline_etl::exit`).

use std::error::Error;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::Path;

use clap::Parser;
use kline_etl::cli::{Cli, Command, GlobalArgs, LogFormat, PlanArgs, RunArgs, ValidateArgs};
use kline_etl::config::{self, ConfigError, Pipeline};
use kline_etl::exit::ExitCode;
use kline_etl::plan;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.global);
    let code = match cli.command {
        Command::Validate(args) => validate(&args),
        Command::Plan(args) => plan_cmd(&args),
        Command::Run(args) => run(&args),
        Command::Simulate(_) => not_implemented("simulate"),
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
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match g.log_format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The process environment, for `${VAR}` interpolation.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Print `error: …` and each cause once.
fn report(e: &dyn Error) {
    let mut msg = format!("error: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(msg, "\n  caused by: {s}");
        source = s.source();
    }
    eprintln!("{msg}");
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
                print(&format!(
                    "ok: `{}` ({}: {} {}, {symbols}, {} interval(s))\n",
                    path.display(),
                    p.name,
                    p.source.market,
                    p.dataset.as_str(),
                    p.intervals.len()
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
    let plan = plan::build(&p, now);
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

/// Validates every pipeline first (nothing is fetched or written if any is invalid). The lead
/// wires the real run on merge.
fn run(args: &RunArgs) -> ExitCode {
    let mut pipelines = Vec::new();
    for path in &args.pipelines {
        match load_with_range(path, &args.range) {
            Some(p) => pipelines.push(p),
            None => return ExitCode::Usage,
        }
    }
    let now = now_ms();
    for p in &pipelines {
        if let Err(e) = config::resolve_range(p, now) {
            report(&e);
            return ExitCode::Usage;
        }
    }
    if args.dry_run {
        for p in &pipelines {
            print(&format!("{}\n", plan::build(p, now)));
        }
        return ExitCode::Ok;
    }
    not_implemented("run")
}

/// The current time in whole seconds (plans read better without milliseconds).
fn now_ms() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    now - now % 1000
}

fn not_implemented(what: &str) -> ExitCode {
    eprintln!("error: `{what}` is not implemented in this build");
    ExitCode::Internal
}

//! One module per command; each takes its parsed arguments and returns the process's
//! [`ExitCode`]. What they share (loading a pipeline, printing results on stdout and errors on
//! stderr, the async runtime) is here.

pub mod chart;
pub mod plan;
pub mod run;
pub mod simulate;
pub mod status;
pub mod summary;
pub mod validate;

use std::error::Error;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::{Command, GlobalArgs};
use crate::config::{self, ConfigError, Pipeline};
use crate::exit::ExitCode;

/// Run one command.
pub fn dispatch(command: Command, global: &GlobalArgs) -> ExitCode {
    match command {
        Command::Validate(args) => validate::validate(&args),
        Command::Plan(args) => plan::plan(&args),
        Command::Run(args) => run::run(&args, global),
        Command::Repair(args) => run::repair(&args, global),
        Command::Status(args) => status::status(&args),
        Command::Simulate(args) => simulate::simulate(&args),
        Command::Summary(args) => summary::summary(&args),
        Command::Chart(args) => chart::chart(&args),
    }
}

/// The process environment, for `${VAR}` interpolation.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Print `error: …` and each cause once (with every registered secret redacted).
pub fn report(e: &dyn Error) {
    let mut msg = format!("error: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(msg, "\n  caused by: {s}");
        source = s.source();
    }
    eprintln!("{}", config::redact(&msg));
}

pub fn load(path: &Path) -> Result<Pipeline, ConfigError> {
    let p = config::load(path, &process_env)?;
    tracing::debug!(path = %path.display(), pipeline = %p.name, "pipeline is valid");
    Ok(p)
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Load a pipeline and apply `--from`/`--to`.
pub fn load_with_range(path: &Path, range: &crate::cli::RangeOverride) -> Option<Pipeline> {
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

/// A multi-threaded tokio runtime, or the exit code for failing to build one.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            report(&e);
            ExitCode::Internal
        })
}

/// The more severe of two exit codes (usage and internal errors outrank partial results).
pub fn worse(a: ExitCode, b: ExitCode) -> ExitCode {
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

/// `PATH` is an output root, or a pipeline file whose `output.path` is the root.
pub fn output_root(path: &Path) -> Result<PathBuf, ExitCode> {
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

/// The current time in whole seconds (plans read better without milliseconds).
pub fn now_ms() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    now - now % 1000
}

/// Print `value` as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(s) => {
            print(&format!("{s}\n"));
            ExitCode::Ok
        }
        Err(e) => {
            report(&e);
            ExitCode::Internal
        }
    }
}

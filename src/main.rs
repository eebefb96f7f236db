//! The `kline-etl` binary: parse the command line, set up logging, run the command
//! ([`kline_etl::commands`]), exit with its code (see `kline_etl::exit`).

use std::io::IsTerminal;

use clap::Parser;
use kline_etl::cli::{Cli, GlobalArgs, LogFormat};
use kline_etl::exit::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    init_tracing(&cli.global);
    kline_etl::commands::dispatch(cli.command, &cli.global).into()
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
    // JSON: `timestamp`, `level`, `message` and the event's fields at the top level.
    kline_etl::console::set_json(g.log_format == LogFormat::Json);
    let _ = match g.log_format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .try_init(),
    };
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
        kline_etl::console::error(&format!(
            "internal error (a bug in kline-etl): {what}{at}\n  please report it with the command line and pipeline file; files already written are complete and consistent"
        ));
        std::process::exit(i32::from(ExitCode::Internal.code()));
    }));
}

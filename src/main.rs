//! The `kline-etl` binary: parse the command line, set up logging, run the command
//! ([`kline_etl::commands`]), exit with its code (see `kline_etl::exit`).

use std::io::IsTerminal;

use clap::Parser;
use kline_etl::cli::{Cli, GlobalArgs, LogFormat};
use kline_etl::exit::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
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

/// glibc's malloc gives each new thread its own arena, up to 8 per core (16 on 2 cores), and
/// each arena keeps the high-water mark of the partition columns, pages and encoder buffers
/// freed in it. A run has about 20 threads (async workers, parsing, encoders, the loader), so
/// 16 arenas each retained a share of the same 60 MB live set: 105-115 MiB peak RSS for the
/// 16-million-candle benchmark, 84-87 MiB with two arenas for 1.5-5 % more CPU (README,
/// "Memory: malloc arenas"). `MALLOC_ARENA_MAX` in the environment wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(
    unsafe_code,
    reason = "mallopt is the only way to tune glibc malloc in-process"
)]
fn limit_malloc_arenas() {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let set = std::env::var_os("MALLOC_ARENA_MAX").is_some();
    if let Some(arenas) = malloc_arenas(cores, set) {
        // SAFETY: mallopt only sets a malloc parameter (taking malloc's own lock); it is
        // called before any other thread exists, and a refused value (0) leaves the default.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

/// How many malloc arenas to allow on `cores` cores: one per core, 2 to 4 (the parse and
/// encode threads contend little: each allocates a few large buffers per page or partition);
/// none when the user set `MALLOC_ARENA_MAX`.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), expect(dead_code))]
fn malloc_arenas(cores: usize, user_set: bool) -> Option<i32> {
    (!user_set).then(|| cores.clamp(2, 4) as i32)
}

#[cfg(test)]
mod tests {
    use super::malloc_arenas;

    #[test]
    fn malloc_arenas_follow_the_cores_within_two_to_four() {
        assert_eq!(malloc_arenas(1, false), Some(2));
        assert_eq!(malloc_arenas(2, false), Some(2));
        assert_eq!(malloc_arenas(3, false), Some(3));
        assert_eq!(malloc_arenas(64, false), Some(4));
    }

    #[test]
    fn a_user_set_malloc_arena_max_is_left_alone() {
        assert_eq!(malloc_arenas(2, true), None);
    }
}

//! The `kline-etl` binary: parse the command line, set up logging, run the command
//! ([`kline_etl::commands`]), exit with its code (see `kline_etl::exit`).

use std::io::IsTerminal;

use clap::Parser;
use kline_etl::cli::{Cli, GlobalArgs, LogFormat};
use kline_etl::exit::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    tune_malloc();
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

/// glibc malloc settings for a run (README, "Memory: malloc arenas"), applied before any
/// other thread exists; a setting whose `MALLOC_*` variable is in the environment is left to
/// glibc, which reads it itself.
///
/// - Arenas: glibc gives each new thread its own arena, up to 8 per core (16 on 2 cores), and
///   each keeps the high-water mark of the page, column and encoder buffers freed in it. A run
///   has about 20 threads (async workers, parsing, encoders, the loader), so 16 arenas each
///   retained a share of the same 60 MB live set: 105-115 MiB peak RSS for the 16 M candle
///   benchmark, 84-87 MiB with one arena per core (2 to 4).
/// - Fixed mmap and trim thresholds: glibc's dynamic ones start at 128 KiB and follow the
///   largest block freed, so the top of each heap was handed back to the kernel and faulted in
///   again, zeroed, page by page, many times a run (anonymous page faults were 16 % of the REST
///   job's CPU). With 4 MiB / 16 MiB freed memory is reused instead (a third
///   of the faults, about 3 MB more peak RSS). `GLIBC_TUNABLES` settings are overridden.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(
    unsafe_code,
    reason = "mallopt is the only way to tune glibc malloc in-process"
)]
fn tune_malloc() {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    for (param, var, value) in malloc_settings(cores) {
        if std::env::var_os(var).is_none() {
            // SAFETY: mallopt only sets a malloc parameter (taking malloc's own lock); it is
            // called before any other thread exists, and a refused value leaves the default.
            unsafe { libc::mallopt(param, value) };
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

/// Each `mallopt` parameter with the environment variable that overrides it and its value for
/// `cores` cores: one arena per core, 2 to 4 (the parse and encode threads contend little:
/// each allocates a few large buffers per page or partition), blocks of 4 MiB and more mapped
/// on their own, and up to 16 MiB free at the top of a heap kept for reuse (bytes).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn malloc_settings(cores: usize) -> [(libc::c_int, &'static str, libc::c_int); 3] {
    [
        (
            libc::M_ARENA_MAX,
            "MALLOC_ARENA_MAX",
            cores.clamp(2, 4) as libc::c_int,
        ),
        (libc::M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", 4 << 20),
        (libc::M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", 16 << 20),
    ]
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::malloc_settings;

    #[test]
    fn malloc_arenas_follow_the_cores_within_two_to_four() {
        let arenas = |cores| {
            let [(param, var, n), ..] = malloc_settings(cores);
            assert_eq!((param, var), (libc::M_ARENA_MAX, "MALLOC_ARENA_MAX"));
            n
        };
        assert_eq!(arenas(1), 2);
        assert_eq!(arenas(2), 2);
        assert_eq!(arenas(3), 3);
        assert_eq!(arenas(64), 4);
    }

    #[test]
    fn freed_memory_is_kept_for_reuse_above_the_mmap_threshold() {
        let [_, (p_mmap, v_mmap, mmap), (p_trim, v_trim, trim)] = malloc_settings(2);
        assert_eq!(
            (p_mmap, v_mmap, p_trim, v_trim),
            (
                libc::M_MMAP_THRESHOLD,
                "MALLOC_MMAP_THRESHOLD_",
                libc::M_TRIM_THRESHOLD,
                "MALLOC_TRIM_THRESHOLD_"
            )
        );
        assert_eq!(mmap, 4 << 20);
        assert!(
            trim >= 2 * mmap,
            "a freed mapped-size block must not be trimmed at once"
        );
    }
}

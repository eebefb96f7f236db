//! The command line (clap derive). Run behaviour lives here (verbosity, progress, concurrency,
//! dry run); what a job fetches and writes lives in the pipeline file.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// Declarative Binance kline ETL: REST pages to typed, hive-partitioned Parquet.
///
/// A pipeline file (YAML) says what to fetch and where to write it; see `pipelines/` for
/// commented examples. Exit codes: 0 ok, 1 some tasks failed, 2 usage or invalid pipeline,
/// 3 stopped early but resumable, 4 output error, 5 locked, 70 internal error.
#[derive(Debug, Parser)]
#[command(
    name = "kline-etl",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Examples:\n  \
        kline-etl validate pipelines/*.yaml\n  \
        kline-etl plan pipelines/nightly.yaml\n  \
        kline-etl run pipelines/btcusdt-daily.yaml --from 2024-01-01\n  \
        kline-etl -q --log-format json run pipelines/nightly.yaml"
)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options that apply to every subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More log output (-v debug, -vv trace). `RUST_LOG` overrides.
    #[arg(short, long, action = ArgAction::Count, global = true, help_heading = "Global options")]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(
        short,
        long,
        action = ArgAction::Count,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    pub quiet: u8,
    /// Log format on stderr.
    #[arg(
        long,
        value_enum,
        default_value_t = LogFormat::Text,
        global = true,
        help_heading = "Global options"
    )]
    pub log_format: LogFormat,
    /// Do not draw progress bars.
    #[arg(long, global = true, help_heading = "Global options")]
    pub no_progress: bool,
}

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run pipelines: fetch, transform and write Parquet.
    Run(RunArgs),
    /// Check pipeline files without touching the network or the output directory.
    Validate(ValidateArgs),
    /// Show the tasks a pipeline resolves to, with request and weight estimates.
    Plan(PlanArgs),
    /// Serve the built-in Binance-compatible simulator on loopback.
    Simulate(SimulateArgs),
    /// Refetch exactly the ranges the last run's summary lists as failed fetches.
    Repair(RepairArgs),
    /// Show what is on disk per series: first, last, rows, gaps, and the last run's result.
    Status(StatusArgs),
    /// Recompute and print statistics from the Parquet files alone (any dataset written by
    /// kline-etl).
    Summary(SummaryArgs),
    /// Draw the candlestick chart (candles, volume panel, moving averages) to SVG or PNG.
    Chart(ChartArgs),
    /// Convert a dataset written in layout version 1 to layout version 2, in place.
    Migrate(MigrateArgs),
    /// Fetch klines (or a ticker or order-book snapshot) without writing a pipeline file:
    /// `kline-etl fetch BTCUSDT 1d --start 2020-07-05`.
    Fetch(FetchArgs),
    /// Write an annotated starter pipeline file.
    Init(InitArgs),
    /// Print shell completions (bash, zsh, fish, powershell) on stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout.
    Man,
}

/// `kline-etl run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline files to run, in order.
    #[arg(required = true, value_name = "PIPELINE")]
    pub pipelines: Vec<PathBuf>,
    #[command(flatten)]
    pub range: RangeOverride,
    /// Override `symbols` (comma-separated: `BTCUSDT,ETHUSDT`).
    #[arg(long, value_name = "A,B,...")]
    pub symbols: Option<String>,
    /// Override `intervals` (comma-separated: `1h,1d`).
    #[arg(long, value_name = "I,J,...")]
    pub intervals: Option<String>,
    /// Ignore existing output and refetch the whole range.
    #[arg(long)]
    pub full_refresh: bool,
    /// Tasks fetched concurrently (1 to 64).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: Option<u16>,
    /// Show what would be fetched and written, then stop (no network, no files).
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub lock: LockArgs,
    /// With `source.mode: auto | archive`, also ask the archive whether files ingested by
    /// earlier runs in the range were replaced upstream (one small `.CHECKSUM` request per
    /// file) and rebuild those partitions.
    #[arg(long)]
    pub recheck_archive: bool,
    /// Run only shard I of N (`2/4`): the series whose stable hash falls to it, so N processes
    /// (on N hosts, with N weight budgets) fill one dataset without coordinating.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<crate::shard::Shard>,
}

/// `--shard I/N`.
fn parse_shard(s: &str) -> Result<crate::shard::Shard, String> {
    s.parse()
}

/// How a run waits for another run writing the same dataset.
#[derive(Debug, Args, Default)]
pub struct LockArgs {
    /// Seconds to wait for another run writing the same output dataset to finish (default 0:
    /// exit at once with code 5).
    #[arg(long, value_name = "SECS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub lock_wait: u64,
}

/// `kline-etl repair`.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The pipeline whose dataset to repair.
    #[arg(value_name = "PIPELINE")]
    pub pipeline: PathBuf,
    /// Also refetch the gaps the exchange had no candles for (to re-check them).
    #[arg(long)]
    pub exchange_gaps: bool,
    /// Tasks fetched concurrently (1 to 64).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: Option<u16>,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Repair only shard I of N (`2/4`), as `run --shard` wrote it.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<crate::shard::Shard>,
}

/// `kline-etl status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// An output root (the pipeline's `output.path`) or a pipeline file.
    #[arg(value_name = "PIPELINE|PATH")]
    pub path: PathBuf,
    /// Print the status as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `kline-etl migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// An output root (the pipeline's `output.path`) or a pipeline file.
    #[arg(value_name = "PIPELINE|PATH")]
    pub path: PathBuf,
    /// List what would be converted, moved and removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `--from`/`--to`: override the pipeline's `range`.
#[derive(Debug, Args, Default)]
pub struct RangeOverride {
    /// Override `range.start` (`2024-01-01`, `2024-01-01T12:00:00Z`, epoch ms, `3 days ago`, …).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// Override `range.end` (same forms as `--from`).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub to: Option<String>,
}

/// `kline-etl validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Pipeline files to check; all are checked and every problem is reported.
    #[arg(required = true, value_name = "PIPELINE")]
    pub pipelines: Vec<PathBuf>,
}

/// `kline-etl plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The pipeline file.
    #[arg(value_name = "PIPELINE")]
    pub pipeline: PathBuf,
    #[command(flatten)]
    pub range: RangeOverride,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Resolve a symbol selector against the exchange's `exchangeInfo` (one request of weight
    /// 20; the built-in simulator when the pipeline uses it) and plan each symbol.
    #[arg(long)]
    pub resolve: bool,
    /// List every series with its shard when the pipeline runs as N shards (`run --shard
    /// I/N`), and the candles each shard is expected to fetch: what an orchestrator fans out
    /// over (`--json`: `shards.series[].shard`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub shards: Option<u32>,
    /// Resolve relative times against this instant instead of the clock (for reproducible
    /// output in tests and docs).
    #[arg(long, value_name = "TIME", hide = true)]
    pub now: Option<String>,
}

/// `kline-etl simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Port on 127.0.0.1 (0 picks a free one and prints it).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Seed of the synthetic markets.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Serve only this market (default: all three).
    #[arg(long, value_parser = ["spot", "usdm", "coinm"])]
    pub market: Option<String>,
    /// Fixed latency added to every reply, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// REQUEST_WEIGHT limit per window of every served market (default: the market's own,
    /// 6000 spot, 2400 futures); e.g. 4000000000 for no practical limit.
    #[arg(long, value_name = "WEIGHT")]
    pub weight_limit: Option<u32>,
    /// Length of the rate-limit window in seconds (default 60, Binance's one minute); shorter
    /// windows make budget benchmarks quick.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub window_secs: u32,
    /// Add this many synthetic spot symbols `SIM01USDT`, `SIM02USDT`, ... (listed
    /// 2020-01-01) to the default universe, for many-symbol benchmarks.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub extra_symbols: u32,
    /// Keep every rendered page of closed candles in memory and answer a repeated request from
    /// there: a server that costs next to nothing, for client CPU benchmarks (memory grows with
    /// the pages served, about 200 bytes per candle).
    #[arg(long)]
    pub memo_pages: bool,
}

/// `kline-etl summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// An output root (the pipeline's `output.path`, e.g. `data/binance`) or a pipeline file.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Print the summary as JSON on stdout (the `series` part of `_kline_etl/summary.json`).
    #[arg(long)]
    pub json: bool,
    /// Also print the `describe()` table of every series.
    #[arg(long)]
    pub describe: bool,
}

/// `kline-etl chart`.
#[derive(Debug, Args)]
pub struct ChartArgs {
    /// An output root (the pipeline's `output.path`) or a pipeline file.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// The symbol to draw.
    #[arg(long)]
    pub symbol: String,
    /// The interval to draw (Binance spelling: `1d`, `1h`, `1M`, ...).
    #[arg(long)]
    pub interval: String,
    /// The market (`spot`, `usdm`, `coinm`).
    #[arg(long, default_value = "spot")]
    pub market: String,
    /// Draw only the last N candles (moving averages still use the earlier ones).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub last: u32,
    /// Moving-average windows of the close, comma-separated (empty for none).
    #[arg(
        long,
        value_name = "N,N,...",
        default_value = "10,20,30",
        value_delimiter = ','
    )]
    pub mav: Vec<String>,
    /// Image width in pixels (200 to 8000).
    #[arg(long, default_value_t = 1200)]
    pub width: u32,
    /// Image height in pixels (200 to 8000).
    #[arg(long, default_value_t = 700)]
    pub height: u32,
    /// Output file; `.svg` or `.png` chooses the format.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// `kline-etl fetch`.
#[derive(Debug, Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "each bool is a clap flag; `--ticker`/`--depth` conflict in clap, not in a type"
)]
#[command(after_help = "Examples:\n  \
    kline-etl fetch BTCUSDT 1d --start 2020-07-05\n  \
    kline-etl fetch BTCUSDT,ETHUSDT 1h,1d --start '30 days ago' --simulator\n  \
    kline-etl fetch --ticker BTCUSDT,ETHUSDT\n  \
    kline-etl fetch --depth BTCUSDT --depth-limit 20")]
pub struct FetchArgs {
    /// Symbols, comma-separated (`BTCUSDT,ETHUSDT`). With `--ticker`, optional: every trading
    /// symbol.
    #[arg(value_name = "SYMBOLS")]
    pub symbols: Option<String>,
    /// Kline intervals, comma-separated (`1h,1d`); klines only.
    #[arg(value_name = "INTERVALS")]
    pub intervals: Option<String>,
    /// First candle (same forms as `range.start`: `2020-07-05`, `5 July 2020`, epoch ms,
    /// `30 days ago`, ...); klines only, required for them.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub start: Option<String>,
    /// End of the range, exclusive (default `now`).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub end: Option<String>,
    /// The market: `spot`, `usdm` or `coinm`.
    #[arg(long, value_name = "MARKET", default_value = "spot")]
    pub market: String,
    /// The exchange's base URL (default: the market's production URL).
    #[arg(long, value_name = "URL", conflicts_with = "simulator")]
    pub base_url: Option<String>,
    /// Use the built-in simulator (offline, synthetic prices) instead of the exchange.
    #[arg(long)]
    pub simulator: bool,
    /// The output root (the pipeline's `output.path`).
    #[arg(short, long, value_name = "PATH", default_value = crate::config::validate::DEFAULT_OUTPUT_PATH)]
    pub output: String,
    /// Price columns: `float64` or `decimal` (exact `Decimal128(38, 8)`).
    #[arg(long, value_name = "TYPE", default_value = "float64")]
    pub prices: String,
    /// The output format (`output.format`): `parquet` (a hive tree) or `delta` (a Delta Lake
    /// table per dataset).
    #[arg(long, value_name = "FORMAT", default_value = "parquet")]
    pub format: String,
    /// A ticker-price snapshot (`dataset: ticker_price`) instead of klines.
    #[arg(long, conflicts_with_all = ["depth", "start", "end"])]
    pub ticker: bool,
    /// An order-book snapshot of each symbol (`dataset: depth`) instead of klines.
    #[arg(long, conflicts_with_all = ["start", "end"])]
    pub depth: bool,
    /// Levels per side of the order book (spot `1..=5000`, futures `5 10 20 50 100 500 1000`).
    #[arg(long, value_name = "N", requires = "depth")]
    pub depth_limit: Option<u32>,
    /// Page requests in flight at once (1 to 64).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: Option<u16>,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Print the pipeline this fetch runs (save it to run it with `kline-etl run`) and stop.
    #[arg(long)]
    pub print_pipeline: bool,
}

/// `kline-etl init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write the starter pipeline.
    #[arg(value_name = "PATH", default_value = "pipeline.yaml")]
    pub path: PathBuf,
}

/// `kline-etl completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for (print them on stdout; see the README for where
    /// each shell looks for them).
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Shells with completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
    /// PowerShell.
    Powershell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_flags_parse() {
        let cli = Cli::try_parse_from([
            "kline-etl",
            "-vv",
            "run",
            "a.yaml",
            "b.yaml",
            "--from",
            "3 days ago",
            "--concurrency",
            "8",
            "--dry-run",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.global.verbose, 2);
        assert_eq!(cli.global.log_format, LogFormat::Json);
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert_eq!(r.pipelines.len(), 2);
        assert_eq!(r.range.from.as_deref(), Some("3 days ago"));
        assert_eq!(r.concurrency, Some(8));
        assert!(r.dry_run);
    }

    #[test]
    fn concurrency_is_bounded() {
        for bad in ["0", "65", "-1"] {
            assert!(
                Cli::try_parse_from(["kline-etl", "run", "a.yaml", "--concurrency", bad]).is_err(),
                "{bad}"
            );
        }
        assert!(Cli::try_parse_from(["kline-etl", "validate"]).is_err());
        assert!(Cli::try_parse_from(["kline-etl", "-v", "-q", "validate", "a"]).is_err());
    }
}

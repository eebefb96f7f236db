//! The validated pipeline: what the rest of the tool consumes once a pipeline file has been
//! read, interpolated, deserialised and checked. Every value here is already valid; nothing
//! downstream re-validates config.

use std::fmt;
use std::path::PathBuf;

use crate::interval::Interval;
use crate::market::Market;
use crate::symbol::Symbol;

/// A fully validated pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// `name`: identifies the job in logs, summaries and Parquet metadata.
    pub name: String,
    /// `source`: where data comes from.
    pub source: Source,
    /// `dataset`: what is fetched.
    pub dataset: Dataset,
    /// `symbols`: which symbols.
    pub symbols: SymbolSelection,
    /// `intervals`: kline intervals (klines dataset only; empty otherwise).
    pub intervals: Vec<Interval>,
    /// `range`: the time range, still relative (`now`, `30 days ago`) until resolved.
    pub range: TimeRange,
    /// `transform`: typing and checks.
    pub transform: TransformOptions,
    /// `output`: where and how files are written.
    pub output: OutputOptions,
}

/// `source`: the exchange endpoint and how hard we may use it.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// `source.market`.
    pub market: Market,
    /// `source.base_url` or `source.simulator`.
    pub endpoint: Endpoint,
    /// `source.api_key`: sent only as `X-MBX-APIKEY`; never logged or written.
    pub api_key: Option<Secret>,
    /// `source.weight_share`: fraction (0, 1] of the per-minute weight budget this run may use.
    pub weight_share: f64,
    /// `source.max_ban_wait_secs`: the longest 418 ban the run waits out before stopping with
    /// the resumable exit code.
    pub max_ban_wait_secs: u64,
    /// `source.timeout_secs`: per-request timeout.
    pub timeout_secs: u64,
    /// `source.max_retries`: retries per request for 5xx, timeouts, resets and bad bodies.
    pub max_retries: u32,
    /// `source.mode`: archive files, REST, or both (`auto`).
    pub mode: SourceMode,
    /// `source.archive_url`: the archive's base URL when set; `None` means the default
    /// (`https://data.binance.vision`, or the simulator's own URL with `source.simulator`).
    pub archive_url: Option<String>,
}

/// `source.mode`: where kline history comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceMode {
    /// Archive files for published whole months and days, REST for the rest (default).
    #[default]
    Auto,
    /// Archive files only; what no file covers is reported, not fetched.
    Archive,
    /// REST only.
    Rest,
}

impl SourceMode {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceMode::Auto => "auto",
            SourceMode::Archive => "archive",
            SourceMode::Rest => "rest",
        }
    }
}

/// Where requests go.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// A real (or externally run) exchange at this base URL, e.g. `https://api.binance.com`.
    Url(String),
    /// The built-in simulator, started in-process for the run (offline demo and tests).
    Simulator(SimulatorSettings),
}

/// `source.simulator`: settings of the built-in simulator when a pipeline asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorSettings {
    /// `seed`: the synthetic markets' random seed.
    pub seed: u64,
    /// `latency_ms`: fixed latency added to each reply.
    pub latency_ms: u64,
    /// `weight_limit`: per-minute weight limit the simulator enforces (default: the market's).
    pub weight_limit: Option<u32>,
}

/// An API key. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The secret value, for the one place that sends it (the HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `dataset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// Historical candlesticks.
    Klines,
    /// Latest price snapshots (`/ticker/price`).
    TickerPrice,
    /// Order-book snapshots (`/depth`).
    Depth,
}

impl Dataset {
    /// The pipeline spelling, also the dataset's directory name under `output.path`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dataset::Klines => "klines",
            Dataset::TickerPrice => "ticker_price",
            Dataset::Depth => "depth",
        }
    }
}

/// `symbols`: an explicit list or a selector resolved against `exchangeInfo`.
#[derive(Debug, Clone, PartialEq)]
pub enum SymbolSelection {
    /// `symbols: [BTCUSDT, ETHUSDT]`.
    List(Vec<Symbol>),
    /// `symbols: { quote: [USDT], status: TRADING, regex: "^BTC" }`.
    Selector(SymbolSelector),
}

/// A symbol selector; all given conditions must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolSelector {
    /// Quote assets to keep (`USDT`, `BTC`); empty = any.
    pub quote: Vec<String>,
    /// Keep symbols not currently `TRADING` (delisted, halted) too.
    pub include_inactive: bool,
    /// A regular expression the symbol must match (as text; compiled at validation).
    pub regex: Option<String>,
    /// Upper bound on the number of symbols selected (safety against a too-wide selector).
    pub max: Option<usize>,
}

/// A point in time as written in a pipeline, resolved against "now" when a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    /// An absolute instant, ms since the epoch (UTC).
    At(i64),
    /// `now`.
    Now,
    /// `today`: 00:00 UTC of the current day.
    Today,
    /// `yesterday`: 00:00 UTC of the previous day.
    Yesterday,
    /// `N <unit> ago`, as a length in ms subtracted from now.
    Ago(i64),
}

impl TimeSpec {
    /// The instant this spec denotes when the current time is `now_ms`.
    pub fn resolve(self, now_ms: i64) -> i64 {
        let day = crate::interval::DAY_MS;
        match self {
            TimeSpec::At(t) => t,
            TimeSpec::Now => now_ms,
            TimeSpec::Today => now_ms - now_ms.rem_euclid(day),
            TimeSpec::Yesterday => now_ms - now_ms.rem_euclid(day) - day,
            TimeSpec::Ago(d) => now_ms - d,
        }
    }
}

/// `range`: half-open `[start, end)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// `range.start`.
    pub start: TimeSpec,
    /// `range.end` (default `now`).
    pub end: TimeSpec,
}

impl TimeRange {
    /// The range in ms, `[start, end)`, resolved at `now_ms`.
    pub fn resolve(&self, now_ms: i64) -> (i64, i64) {
        (self.start.resolve(now_ms), self.end.resolve(now_ms))
    }
}

/// `transform.prices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PriceType {
    /// `float64` (default): what notebooks expect.
    Float64,
    /// `decimal`: `Decimal128(38, 8)`, exact, for warehouses.
    Decimal,
}

/// `transform.time_unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// `ms` (default): `Timestamp(Millisecond, "UTC")`.
    Millisecond,
    /// `us`: `Timestamp(Microsecond, "UTC")`.
    Microsecond,
}

/// What to do when a quality check fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnViolation {
    /// `report` (default): keep the rows, count and report the violations.
    Report,
    /// `fail`: fail the task; nothing of it is written.
    Fail,
}

/// `transform`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformOptions {
    /// `transform.prices`.
    pub prices: PriceType,
    /// `transform.time_unit`.
    pub time_unit: TimeUnit,
    /// `transform.include_forming`: also write the still-forming candle (default false).
    pub include_forming: bool,
    /// `transform.on_violation`.
    pub on_violation: OnViolation,
}

/// `output.partition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartitionSpec {
    /// `auto` (default): chosen per interval so files are neither tiny nor huge.
    Auto,
    /// `none`: one file per symbol × interval.
    None,
    /// `year`.
    Year,
    /// `month`.
    Month,
    /// `day`.
    Day,
}

/// `output.compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// `zstd` (default level 3) or `zstd:N`.
    Zstd(i32),
    /// `snappy`.
    Snappy,
    /// `none`.
    None,
}

/// `output`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputOptions {
    /// `output.path`: the output root (default `data/binance`).
    pub path: PathBuf,
    /// `output.partition`.
    pub partition: PartitionSpec,
    /// `output.compression`.
    pub compression: Compression,
    /// `output.row_group_rows`: rows per Parquet row group.
    pub row_group_rows: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2".into());
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn relative_times_resolve_in_utc() {
        let now = 1_700_000_000_000; // 2023-11-14T22:13:20Z
        assert_eq!(TimeSpec::Today.resolve(now), 1_699_920_000_000);
        assert_eq!(TimeSpec::Yesterday.resolve(now), 1_699_833_600_000);
        assert_eq!(TimeSpec::Ago(3_600_000).resolve(now), now - 3_600_000);
    }
}

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
    /// `kline_family` (+ `contract_type`): which kline endpoint (klines dataset only;
    /// [`KlineFamily::Trades`] otherwise).
    pub kline_family: KlineFamily,
    /// `depth_limit`: order-book levels per side (depth dataset only; `None` otherwise).
    pub depth_limit: Option<u32>,
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

/// An API key. Its `Debug` and `Display` never show the value, and every secret created is
/// registered so that [`redact`] removes it from any text (log lines, error chains, panic
/// messages) as a second line of defence.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// Every secret value seen by this process (see [`redact`]).
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Values shorter than this are not registered (redacting `1` would mangle every number).
const MIN_REDACTED_LEN: usize = 6;

/// `text` with every registered secret replaced by `<redacted>`.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    let secrets = SECRETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out = std::borrow::Cow::Borrowed(text);
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = std::borrow::Cow::Owned(out.replace(s.as_str(), "<redacted>"));
        }
    }
    out
}

impl Secret {
    /// Wrap a secret value (and register it for [`redact`]).
    pub fn new(value: String) -> Self {
        if value.len() >= MIN_REDACTED_LEN {
            let mut secrets = SECRETS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !secrets.contains(&value) {
                secrets.push(value.clone());
            }
        }
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
    /// Funding-rate history of perpetual futures (`/fundingRate`, USDⓈ-M and COIN-M):
    /// [`crate::dataset::funding_rate`].
    FundingRate,
}

impl Dataset {
    /// The pipeline spelling, also the dataset's directory name under `output.path`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dataset::Klines => "klines",
            Dataset::TickerPrice => "ticker_price",
            Dataset::Depth => "depth",
            Dataset::FundingRate => "funding_rate",
        }
    }

    /// Whether the dataset is a history over `range` (klines, funding rates) rather than a
    /// snapshot taken now.
    pub fn has_range(self) -> bool {
        matches!(self, Dataset::Klines | Dataset::FundingRate)
    }
}

/// `kline_family`: which of Binance's kline endpoints a klines pipeline reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KlineFamily {
    /// `trades` (default): `/klines`, candles of traded prices with volumes.
    Trades,
    /// `mark_price`: `/markPriceKlines` (futures only), by `symbol`.
    MarkPrice,
    /// `index_price`: `/indexPriceKlines` (futures only), by `pair`.
    IndexPrice,
    /// `premium_index`: `/premiumIndexKlines` (futures only), by `symbol`.
    PremiumIndex,
    /// `continuous`: `/continuousKlines` (futures only), by `pair` and `contract_type`.
    Continuous(ContractType),
}

impl KlineFamily {
    /// The pipeline spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KlineFamily::Trades => "trades",
            KlineFamily::MarkPrice => "mark_price",
            KlineFamily::IndexPrice => "index_price",
            KlineFamily::PremiumIndex => "premium_index",
            KlineFamily::Continuous(_) => "continuous",
        }
    }

    /// The endpoint under the market prefix (`/klines`, `/markPriceKlines`, ...).
    pub fn endpoint(self) -> &'static str {
        match self {
            KlineFamily::Trades => "/klines",
            KlineFamily::MarkPrice => "/markPriceKlines",
            KlineFamily::IndexPrice => "/indexPriceKlines",
            KlineFamily::PremiumIndex => "/premiumIndexKlines",
            KlineFamily::Continuous(_) => "/continuousKlines",
        }
    }

    /// The query parameter naming the instrument: `pair` for index-price and continuous
    /// klines, `symbol` otherwise.
    pub fn symbol_param(self) -> &'static str {
        match self {
            KlineFamily::IndexPrice | KlineFamily::Continuous(_) => "pair",
            _ => "symbol",
        }
    }

    /// Whether the rows carry volumes, trade counts and taker figures (only traded-price
    /// klines do; Binance sends `"0"` for them in mark/index/premium rows).
    pub fn has_volumes(self) -> bool {
        matches!(self, KlineFamily::Trades | KlineFamily::Continuous(_))
    }

    /// The contract type of continuous klines.
    pub fn contract_type(self) -> Option<ContractType> {
        match self {
            KlineFamily::Continuous(c) => Some(c),
            _ => None,
        }
    }
}

/// `contract_type` of continuous klines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContractType {
    /// `PERPETUAL` (default).
    Perpetual,
    /// `CURRENT_QUARTER`.
    CurrentQuarter,
    /// `NEXT_QUARTER`.
    NextQuarter,
}

impl ContractType {
    /// Binance's spelling, also the `contract_type=` partition value.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractType::Perpetual => "PERPETUAL",
            ContractType::CurrentQuarter => "CURRENT_QUARTER",
            ContractType::NextQuarter => "NEXT_QUARTER",
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

    /// The first open time of `interval` the range asks for, given the resolved start. A
    /// relative start (`30 days ago`, `today`, `now`) means the candle that instant falls
    /// in, so it is aligned down to the interval's boundary: `30 days ago` is exactly 30
    /// daily candles (the forming one held back) or 720 hourly ones. An absolute start is
    /// taken as written (the first candle opening at or after it).
    pub fn start_for(&self, interval: crate::interval::Interval, resolved_start: i64) -> i64 {
        match self.start {
            TimeSpec::At(_) => resolved_start,
            TimeSpec::Now | TimeSpec::Today | TimeSpec::Yesterday | TimeSpec::Ago(_) => {
                interval.floor(resolved_start)
            }
        }
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

/// The defaults of a pipeline without a `transform` section: `float64` prices, `ms` times,
/// closed candles only, violations reported.
impl Default for TransformOptions {
    fn default() -> Self {
        TransformOptions {
            prices: PriceType::Float64,
            time_unit: TimeUnit::Millisecond,
            include_forming: false,
            on_violation: OnViolation::Report,
        }
    }
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
    /// `zstd` (default level 1) or `zstd:N`.
    Zstd(i32),
    /// `snappy`.
    Snappy,
    /// `none`.
    None,
}

/// `output`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputOptions {
    /// The local output root: `output.path` (default `data/binance`), or with an object store
    /// `output.path`, the local mirror (`output.staging`) the run works in.
    pub path: PathBuf,
    /// `output.path` when it is an object store URL (`s3://bucket/prefix`, ...): files are
    /// mirrored from it before the run and uploaded to it after.
    pub remote: Option<String>,
    /// `output.format`.
    pub format: OutputFormat,
    /// `output.partition`.
    pub partition: PartitionSpec,
    /// `output.compression`.
    pub compression: Compression,
    /// `output.row_group_rows`: rows per Parquet row group.
    pub row_group_rows: usize,
}

/// `output.format`: how a dataset directory is a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// `parquet`: a hive tree of Parquet files, the directory names carrying the partition
    /// values (the default).
    #[default]
    Parquet,
    /// `delta`: a Delta Lake table (the same files, plus `_delta_log/`; see
    /// `load::delta`).
    Delta,
}

impl OutputFormat {
    /// The spelling in a pipeline.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Parquet => "parquet",
            OutputFormat::Delta => "delta",
        }
    }
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
    fn registered_secrets_are_redacted_from_any_text() {
        let _ = Secret::new("sk-live-0123456789".into());
        let _ = Secret::new("12".into());
        assert_eq!(
            redact("error: key sk-live-0123456789 refused (code -2014, 12 ms)"),
            "error: key <redacted> refused (code -2014, 12 ms)"
        );
        assert!(matches!(
            redact("nothing here"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn relative_times_resolve_in_utc() {
        let now = 1_700_000_000_000; // 2023-11-14T22:13:20Z
        assert_eq!(TimeSpec::Today.resolve(now), 1_699_920_000_000);
        assert_eq!(TimeSpec::Yesterday.resolve(now), 1_699_833_600_000);
        assert_eq!(TimeSpec::Ago(3_600_000).resolve(now), now - 3_600_000);
    }

    #[test]
    fn relative_starts_align_to_the_interval() {
        use crate::interval::{DAY_MS, HOUR_MS, Interval};
        let now = 1_699_999_999_000; // 2023-11-14T22:13:19Z
        let r = TimeRange {
            start: TimeSpec::Ago(30 * DAY_MS),
            end: TimeSpec::Now,
        };
        let (start, end) = r.resolve(now);
        // Closed candles only: the one forming at `now` is held back.
        for (iv, n) in [
            (Interval::D1, 30),
            (Interval::H1, 720),
            (Interval::M1, 43_200),
        ] {
            let first = r.start_for(iv, start);
            assert_eq!(first, iv.floor(start));
            assert_eq!(iv.count_in(first, end.min(iv.floor(now))), n, "{iv}");
        }
        let abs = TimeRange {
            start: TimeSpec::At(now - 30 * DAY_MS),
            end: TimeSpec::Now,
        };
        assert_eq!(
            abs.start_for(Interval::D1, now - 30 * DAY_MS),
            now - 30 * DAY_MS
        );
        assert_eq!(r.start_for(Interval::H1, now - HOUR_MS / 2) % HOUR_MS, 0);
    }
}

//! Stage 2: check a [`RawPipeline`] and build the validated [`Pipeline`], collecting every
//! problem (with its line, column and field path) instead of stopping at the first.

use std::collections::HashSet;
use std::fmt::Display;
use std::path::PathBuf;

use serde_saphyr::{Location, Spanned};

use super::Diagnostic;
use super::interpolate::interpolate;
use super::model::{
    Compression, ContractType, Dataset, Endpoint, KlineFamily, OnViolation, OutputFormat,
    OutputOptions, PartitionSpec, Pipeline, PriceType, Secret, SimulatorSettings, Source,
    SourceMode, SymbolSelection, SymbolSelector, TimeRange, TimeSpec, TimeUnit, TransformOptions,
};
use super::raw::{
    RawOutput, RawPipeline, RawRange, RawSelector, RawSimulator, RawSource, RawSymbols,
    RawTransform, SText,
};
use super::time::{ordered, parse_time};
use crate::interval::Interval;
use crate::market::Market;
use crate::symbol::Symbol;

/// Default `source.weight_share`.
pub const DEFAULT_WEIGHT_SHARE: f64 = 0.9;
/// Default `source.max_ban_wait_secs`.
pub const DEFAULT_MAX_BAN_WAIT_SECS: u64 = 300;
/// Default `source.timeout_secs`.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Default `source.max_retries`.
pub const DEFAULT_MAX_RETRIES: u32 = 8;
/// Default `source.simulator.seed`.
pub const DEFAULT_SIMULATOR_SEED: u64 = 42;
/// Default `output.path`.
pub const DEFAULT_OUTPUT_PATH: &str = "data/binance";
/// Default `output.row_group_rows`.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 131_072;
/// Default zstd level for `compression: zstd`: level 1, chosen by measurement (README
/// "Benchmarks", CPU per candle: less CPU than level 3 for slightly larger files).
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// Collects diagnostics while validating.
struct Ctx<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    /// The clock at validation time, for ranges that mix relative and absolute times.
    now_ms: i64,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn at(&mut self, loc: Location, path: &str, message: impl Display) {
        self.diags.push(Diagnostic {
            line: loc.line() as usize,
            column: loc.column() as usize,
            path: path.to_owned(),
            message: message.to_string(),
        });
    }

    fn missing(&mut self, path: &str, message: impl Display) {
        self.diags.push(Diagnostic {
            line: 1,
            column: 1,
            path: path.to_owned(),
            message: message.to_string(),
        });
    }

    /// One of a fixed set of spellings.
    fn choice<T: Copy>(
        &mut self,
        v: Option<&SText>,
        path: &str,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(v) = v else { return default };
        let s = v.value.0.as_str();
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == s) {
            return *t;
        }
        let names: Vec<String> = options.iter().map(|(n, _)| format!("`{n}`")).collect();
        self.at(
            v.referenced,
            path,
            format_args!(
                "unknown value `{}`; expected one of {}",
                s.escape_debug(),
                names.join(", ")
            ),
        );
        default
    }

    /// An integer within `lo..=hi`.
    fn int(&mut self, v: Option<&Spanned<i64>>, path: &str, lo: i64, hi: i64, default: i64) -> i64 {
        let Some(v) = v else { return default };
        if (lo..=hi).contains(&v.value) {
            v.value
        } else {
            self.at(
                v.referenced,
                path,
                format_args!(
                    "expected a whole number from {lo} to {hi}; found `{}`",
                    v.value
                ),
            );
            default
        }
    }

    /// Interpolated text.
    fn interp(&mut self, v: &SText, path: &str) -> Option<String> {
        match interpolate(&v.value.0, self.env) {
            Ok(s) => Some(s),
            Err(e) => {
                self.at(v.referenced, path, e);
                None
            }
        }
    }
}

/// Validate a raw pipeline. On failure, returns every problem found.
pub(super) fn validate(
    raw: &RawPipeline,
    env: &dyn Fn(&str) -> Option<String>,
    now_ms: i64,
) -> Result<Pipeline, Vec<Diagnostic>> {
    let mut cx = Ctx {
        env,
        now_ms,
        diags: Vec::new(),
    };
    let name = name(&mut cx, raw.name.as_ref());
    let source = source(&mut cx, raw.source.as_ref());
    let dataset = cx.choice(
        raw.dataset.as_ref(),
        "dataset",
        &[
            ("klines", Dataset::Klines),
            ("ticker_price", Dataset::TickerPrice),
            ("depth", Dataset::Depth),
            ("funding_rate", Dataset::FundingRate),
        ],
        Dataset::Klines,
    );
    if let Some(v) = &raw.dataset
        && dataset == Dataset::FundingRate
        && source.market == Market::Spot
    {
        cx.at(
            v.referenced,
            "dataset",
            "spot has no funding rate: `funding_rate` needs `source.market: usdm` or `coinm`",
        );
    }
    let symbols = symbols(&mut cx, raw.symbols.as_ref());
    let intervals = intervals(&mut cx, raw.intervals.as_ref(), dataset, source.market);
    let range = range(&mut cx, raw.range.as_ref(), dataset);
    let kline_family = kline_family(&mut cx, raw, dataset, source.market);
    let depth_limit = depth_limit(&mut cx, raw.depth_limit.as_ref(), dataset, source.market);
    let transform = transform(&mut cx, raw.transform.as_ref());
    let output = output(&mut cx, raw.output.as_ref());
    if cx.diags.is_empty() {
        Ok(Pipeline {
            name,
            source,
            dataset,
            symbols,
            intervals,
            kline_family,
            depth_limit,
            range,
            transform,
            output,
        })
    } else {
        cx.diags.sort_by_key(|d| (d.line, d.column));
        Err(cx.diags)
    }
}

fn name(cx: &mut Ctx<'_>, v: Option<&SText>) -> String {
    let Some(v) = v else {
        cx.missing(
            "name",
            "missing required key `name`; expected something like `name: btcusdt-daily`",
        );
        return String::new();
    };
    let s = &v.value.0;
    let ok = (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        cx.at(
            v.referenced,
            "name",
            format_args!(
                "invalid name `{}`; expected 1 to 64 characters of `A-Z a-z 0-9 _ . -`",
                s.escape_debug()
            ),
        );
    }
    s.clone()
}

/// `source.base_url` or `source.simulator` (at most one), else the market's production URL.
fn endpoint(cx: &mut Ctx<'_>, raw: &RawSource, market: Market) -> Endpoint {
    match (&raw.base_url, &raw.simulator) {
        (Some(url), Some(_)) => {
            cx.at(
                url.referenced,
                "source.base_url",
                "`base_url` and `simulator` cannot both be set; remove one",
            );
            Endpoint::Url(market.default_base_url().to_owned())
        }
        (Some(url), None) => {
            let s = cx.interp(url, "source.base_url").unwrap_or_default();
            if let Err(e) = check_url(&s) {
                cx.at(url.referenced, "source.base_url", e);
            }
            Endpoint::Url(s.trim_end_matches('/').to_owned())
        }
        (None, Some(sim)) => simulator_settings(cx, sim),
        (None, None) => Endpoint::Url(market.default_base_url().to_owned()),
    }
}

/// `source.simulator`: the built-in simulator's seed, latency and weight limit.
fn simulator_settings(cx: &mut Ctx<'_>, sim: &Spanned<RawSimulator>) -> Endpoint {
    let s = &sim.value;
    let seed = match &s.seed {
        Some(v) if v.value < 0 => {
            cx.at(
                v.referenced,
                "source.simulator.seed",
                format_args!("expected a whole number of at least 0; found `{}`", v.value),
            );
            DEFAULT_SIMULATOR_SEED
        }
        Some(v) => v.value as u64,
        None => DEFAULT_SIMULATOR_SEED,
    };
    let latency_ms = cx.int(
        s.latency_ms.as_ref(),
        "source.simulator.latency_ms",
        0,
        60_000,
        0,
    ) as u64;
    let weight_limit = s.weight_limit.as_ref().map(|_| {
        cx.int(
            s.weight_limit.as_ref(),
            "source.simulator.weight_limit",
            1,
            i64::from(u32::MAX),
            1,
        ) as u32
    });
    Endpoint::Simulator(SimulatorSettings {
        seed,
        latency_ms,
        weight_limit,
    })
}

fn source(cx: &mut Ctx<'_>, raw: Option<&RawSource>) -> Source {
    let empty = RawSource {
        market: None,
        base_url: None,
        simulator: None,
        api_key: None,
        weight_share: None,
        max_ban_wait_secs: None,
        timeout_secs: None,
        max_retries: None,
        mode: None,
        archive_url: None,
    };
    let raw = raw.unwrap_or(&empty);
    let market_options: Vec<(&str, Market)> =
        Market::ALL.iter().map(|m| (m.as_str(), *m)).collect();
    let market = cx.choice(
        raw.market.as_ref(),
        "source.market",
        &market_options,
        Market::Spot,
    );
    let endpoint = endpoint(cx, raw, market);
    let api_key = raw
        .api_key
        .as_ref()
        .and_then(|k| cx.interp(k, "source.api_key"))
        .filter(|k| !k.is_empty())
        .map(Secret::new);
    let weight_share = match &raw.weight_share {
        Some(v) if v.value > 0.0 && v.value <= 1.0 => v.value,
        Some(v) => {
            cx.at(
                v.referenced,
                "source.weight_share",
                format_args!(
                    "expected a fraction greater than 0 and at most 1, such as `0.9`; found `{}`",
                    v.value
                ),
            );
            DEFAULT_WEIGHT_SHARE
        }
        None => DEFAULT_WEIGHT_SHARE,
    };
    let mode = cx.choice(
        raw.mode.as_ref(),
        "source.mode",
        &[
            ("auto", SourceMode::Auto),
            ("archive", SourceMode::Archive),
            ("rest", SourceMode::Rest),
        ],
        SourceMode::Auto,
    );
    let archive_url = raw.archive_url.as_ref().and_then(|url| {
        let s = cx.interp(url, "source.archive_url")?;
        if let Err(e) = check_url(&s) {
            cx.at(url.referenced, "source.archive_url", e);
        }
        Some(s.trim_end_matches('/').to_owned())
    });
    Source {
        mode,
        archive_url,
        market,
        endpoint,
        api_key,
        weight_share,
        max_ban_wait_secs: cx.int(
            raw.max_ban_wait_secs.as_ref(),
            "source.max_ban_wait_secs",
            0,
            86_400,
            DEFAULT_MAX_BAN_WAIT_SECS as i64,
        ) as u64,
        timeout_secs: cx.int(
            raw.timeout_secs.as_ref(),
            "source.timeout_secs",
            1,
            600,
            DEFAULT_TIMEOUT_SECS as i64,
        ) as u64,
        max_retries: cx.int(
            raw.max_retries.as_ref(),
            "source.max_retries",
            0,
            100,
            i64::from(DEFAULT_MAX_RETRIES),
        ) as u32,
    }
}

/// A base URL: `http(s)://host[:port]`, optionally with a trailing `/`.
fn check_url(s: &str) -> Result<(), String> {
    let shown = s.escape_debug();
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("invalid base url `{shown}`; expected an `http://` or `https://` url")
        })?;
    let host = rest.trim_end_matches('/');
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '@'))
    {
        return Err(format!(
            "invalid base url `{shown}`; expected scheme and host only, such as `https://api.binance.com` or `http://127.0.0.1:8080`"
        ));
    }
    Ok(())
}

fn symbols(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawSymbols>>) -> SymbolSelection {
    let Some(raw) = raw else {
        cx.missing(
            "symbols",
            "missing required key `symbols`; expected a list such as `[BTCUSDT]` or a selector such as `{ quote: [USDT] }`",
        );
        return SymbolSelection::List(Vec::new());
    };
    match &raw.value {
        RawSymbols::List(list) => {
            if list.is_empty() {
                cx.at(
                    raw.referenced,
                    "symbols",
                    "the symbol list is empty; expected at least one symbol such as `BTCUSDT`",
                );
            }
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for (i, s) in list.iter().enumerate() {
                let path = format!("symbols[{i}]");
                match check_symbol(&s.value.0, &mut seen) {
                    Ok(sym) => out.push(sym),
                    Err(e) => cx.at(s.referenced, &path, e),
                }
            }
            SymbolSelection::List(out)
        }
        RawSymbols::Selector(sel) => SymbolSelection::Selector(selector(cx, sel)),
    }
}

fn selector(cx: &mut Ctx<'_>, sel: &RawSelector) -> SymbolSelector {
    let mut quote = Vec::new();
    for (i, q) in sel.quote.iter().flatten().enumerate() {
        let s = &q.value.0;
        if s.is_empty()
            || s.len() > 16
            || !s
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            cx.at(
                q.referenced,
                &format!("symbols.quote[{i}]"),
                format_args!(
                    "invalid quote asset `{}`; expected upper-case letters and digits such as `USDT`",
                    s.escape_debug()
                ),
            );
        } else {
            quote.push(s.clone());
        }
    }
    let regex = sel.regex.as_ref().map(|r| {
        if let Err(e) = regex::Regex::new(&r.value.0) {
            let text = e.to_string();
            let msg = text
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .unwrap_or(&text)
                .to_owned();
            cx.at(
                r.referenced,
                "symbols.regex",
                format_args!(
                    "invalid regular expression `{}`: {msg}",
                    r.value.0.escape_debug()
                ),
            );
        }
        r.value.0.clone()
    });
    let max = sel
        .max
        .as_ref()
        .map(|_| cx.int(sel.max.as_ref(), "symbols.max", 1, 100_000, 1) as usize);
    SymbolSelector {
        quote,
        include_inactive: sel.include_inactive.unwrap_or(false),
        regex,
        max,
    }
}

fn intervals(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<Vec<SText>>>,
    dataset: Dataset,
    market: Market,
) -> Vec<Interval> {
    let Some(raw) = raw else {
        if dataset == Dataset::Klines {
            cx.missing(
                "intervals",
                "missing required key `intervals` (the klines dataset needs it); expected a list such as `[1d, 1h]`",
            );
        }
        return Vec::new();
    };
    if dataset != Dataset::Klines {
        cx.at(
            raw.referenced,
            "intervals",
            format_args!(
                "`intervals` applies to the klines dataset only, not `{}`; remove it",
                dataset.as_str()
            ),
        );
        return Vec::new();
    }
    if raw.value.is_empty() {
        cx.at(
            raw.referenced,
            "intervals",
            "the interval list is empty; expected at least one interval such as `1d`",
        );
    }
    let mut out: Vec<Interval> = Vec::new();
    for (i, v) in raw.value.iter().enumerate() {
        let path = format!("intervals[{i}]");
        match check_interval(&v.value.0, &out, market) {
            Ok(iv) => out.push(iv),
            Err(e) => cx.at(v.referenced, &path, e),
        }
    }
    out
}

/// One entry of a symbol list: a valid symbol not seen before (added to `seen`).
pub(super) fn check_symbol(s: &str, seen: &mut HashSet<Symbol>) -> Result<Symbol, String> {
    let sym = s.parse::<Symbol>().map_err(|e| e.to_string())?;
    if seen.insert(sym.clone()) {
        Ok(sym)
    } else {
        Err(format!("duplicate symbol `{sym}`"))
    }
}

/// One entry of an interval list: a known interval, not in `seen`, that `market` serves.
pub(super) fn check_interval(
    s: &str,
    seen: &[Interval],
    market: Market,
) -> Result<Interval, String> {
    let iv = s.parse::<Interval>().map_err(|e| e.to_string())?;
    if seen.contains(&iv) {
        Err(format!("duplicate interval `{iv}`"))
    } else if !market.supports(iv) {
        Err(format!(
            "interval `{iv}` is not available on the `{market}` market"
        ))
    } else {
        Ok(iv)
    }
}

/// `kline_family` and `contract_type`.
fn kline_family(
    cx: &mut Ctx<'_>,
    raw: &RawPipeline,
    dataset: Dataset,
    market: Market,
) -> KlineFamily {
    if let Some(v) = &raw.kline_family
        && dataset != Dataset::Klines
    {
        cx.at(
            v.referenced,
            "kline_family",
            format_args!(
                "`kline_family` applies to the klines dataset only, not `{}`; remove it",
                dataset.as_str()
            ),
        );
        return KlineFamily::Trades;
    }
    let contract = cx.choice(
        raw.contract_type.as_ref(),
        "contract_type",
        &[
            ("PERPETUAL", ContractType::Perpetual),
            ("CURRENT_QUARTER", ContractType::CurrentQuarter),
            ("NEXT_QUARTER", ContractType::NextQuarter),
        ],
        ContractType::Perpetual,
    );
    let family = cx.choice(
        raw.kline_family.as_ref(),
        "kline_family",
        &[
            ("trades", KlineFamily::Trades),
            ("mark_price", KlineFamily::MarkPrice),
            ("index_price", KlineFamily::IndexPrice),
            ("premium_index", KlineFamily::PremiumIndex),
            ("continuous", KlineFamily::Continuous(contract)),
        ],
        KlineFamily::Trades,
    );
    if let Some(v) = &raw.kline_family
        && family != KlineFamily::Trades
        && market == Market::Spot
    {
        cx.at(
            v.referenced,
            "kline_family",
            format_args!(
                "kline family `{}` exists on the futures markets only (`source.market: usdm` or `coinm`), not on `spot`",
                family.as_str()
            ),
        );
    }
    if let Some(v) = &raw.contract_type
        && family.contract_type().is_none()
    {
        cx.at(
            v.referenced,
            "contract_type",
            "`contract_type` applies to `kline_family: continuous` only; remove it or set the family",
        );
    }
    family
}

/// `depth_limit`: per market, the limits `/depth` serves as asked.
fn depth_limit(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<i64>>,
    dataset: Dataset,
    market: Market,
) -> Option<u32> {
    if dataset != Dataset::Depth {
        if let Some(v) = raw {
            cx.at(
                v.referenced,
                "depth_limit",
                format_args!(
                    "`depth_limit` applies to the depth dataset only, not `{}`; remove it",
                    dataset.as_str()
                ),
            );
        }
        return None;
    }
    let Some(v) = raw else {
        return Some(market.default_depth_limit());
    };
    match u32::try_from(v.value) {
        Ok(l) if market.valid_depth_limit(l) => Some(l),
        _ => {
            let expected = if market == Market::Spot {
                "a whole number from 1 to 5000".to_owned()
            } else {
                let l: Vec<String> = Market::FUTURES_DEPTH_LIMITS
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                format!("one of {}", l.join(", "))
            };
            cx.at(
                v.referenced,
                "depth_limit",
                format_args!(
                    "`{}` is not a depth limit of the `{market}` market; expected {expected}",
                    v.value
                ),
            );
            Some(market.default_depth_limit())
        }
    }
}

fn range(cx: &mut Ctx<'_>, raw: Option<&RawRange>, dataset: Dataset) -> TimeRange {
    let fallback = TimeRange {
        start: TimeSpec::Now,
        end: TimeSpec::Now,
    };
    let Some(raw) = raw else {
        if dataset.has_range() {
            cx.missing(
                "range",
                format_args!("missing required key `range` (the {} dataset needs it); expected something like `range: {{ start: 2020-07-05 }}`", dataset.as_str()),
            );
        }
        return fallback;
    };
    if !dataset.has_range() {
        // Snapshot datasets take one snapshot per run, "now".
        let at = raw.start.as_ref().or(raw.end.as_ref());
        if let Some(v) = at {
            cx.at(
                v.referenced,
                "range",
                format_args!(
                    "`range` applies to the klines dataset only; a `{}` run takes one snapshot, now; remove it",
                    dataset.as_str()
                ),
            );
        }
        return fallback;
    }
    let mut time = |v: &SText, path: &str| match parse_time(&v.value.0) {
        Ok(t) => Some(t),
        Err(e) => {
            cx.at(v.referenced, path, e);
            None
        }
    };
    let start = raw.start.as_ref().map(|v| (v, time(v, "range.start")));
    let end = raw.end.as_ref().map(|v| (v, time(v, "range.end")));
    let Some((start_v, start)) = start else {
        cx.missing(
            "range.start",
            "missing required key `range.start`; expected a time such as `2020-07-05` or `30 days ago`",
        );
        return fallback;
    };
    let end_t = match end {
        Some((_, t)) => t,
        None => Some(TimeSpec::Now),
    };
    let (Some(start), Some(end_t)) = (start, end_t) else {
        return fallback;
    };
    let (ok, resolved) = match ordered(start, end_t) {
        Some(ok) => (ok, String::new()),
        // Relative words meet absolute times (or `today`): decided against the clock now,
        // so a schedule cannot succeed doing nothing forever.
        None => {
            let (s, e) = (start.resolve(cx.now_ms), end_t.resolve(cx.now_ms));
            (
                s < e,
                format!(
                    " (resolved now: [`{}`, `{}`))",
                    crate::time::format_utc(s),
                    crate::time::format_utc(e)
                ),
            )
        }
    };
    if !ok {
        cx.at(
            start_v.referenced,
            "range.start",
            format_args!(
                "range start `{}` is not before its end `{}`{resolved}; the range is `[start, end)`",
                start_v.value.0,
                end.map_or("now", |(v, _)| v.value.0.as_str())
            ),
        );
    }
    TimeRange { start, end: end_t }
}

fn transform(cx: &mut Ctx<'_>, raw: Option<&RawTransform>) -> TransformOptions {
    let (prices, time_unit, include_forming, on_violation) = match raw {
        Some(r) => (
            r.prices.as_ref(),
            r.time_unit.as_ref(),
            r.include_forming,
            r.on_violation.as_ref(),
        ),
        None => (None, None, None, None),
    };
    let d = TransformOptions::default();
    TransformOptions {
        prices: cx.choice(
            prices,
            "transform.prices",
            &[
                ("float64", PriceType::Float64),
                ("decimal", PriceType::Decimal),
            ],
            d.prices,
        ),
        time_unit: cx.choice(
            time_unit,
            "transform.time_unit",
            &[("ms", TimeUnit::Millisecond), ("us", TimeUnit::Microsecond)],
            d.time_unit,
        ),
        include_forming: include_forming.unwrap_or(d.include_forming),
        on_violation: cx.choice(
            on_violation,
            "transform.on_violation",
            &[("report", OnViolation::Report), ("fail", OnViolation::Fail)],
            d.on_violation,
        ),
    }
}

/// Object store schemes `output.path` accepts.
const STORE_SCHEMES: &[&str] = &["s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "file"];

/// Check an object store URL: a known scheme, a bucket (or an absolute `file://` path).
fn remote_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s.trim()).map_err(|e| {
        format!(
            "invalid object store URL `{}`: {e}; expected e.g. `s3://bucket/prefix`",
            s.escape_debug()
        )
    })?;
    if !STORE_SCHEMES.contains(&url.scheme()) {
        return Err(format!(
            "unsupported object store scheme `{}://`; expected one of s3://, gs://, az://, abfs://, file://",
            url.scheme()
        ));
    }
    if url.scheme() != "file" && url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "object store URL `{s}` has no bucket; expected e.g. `{}://bucket/prefix`",
            url.scheme()
        ));
    }
    if url.path().split('/').any(|seg| seg == "..") {
        return Err(format!("object store URL `{s}` must not contain `..`"));
    }
    Ok(url)
}

/// The default local mirror of an object store output:
/// `${XDG_CACHE_HOME:-$HOME/.cache}/kline-etl/<scheme>/<bucket>/<prefix>`.
fn default_staging(env: &dyn Fn(&str) -> Option<String>, url: &url::Url) -> PathBuf {
    let base = env("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".kline-etl-cache"));
    let mut dir = base.join("kline-etl").join(url.scheme());
    if let Some(host) = url.host_str() {
        dir.push(host);
    }
    for seg in url.path().split('/').filter(|s| !s.is_empty() && *s != ".") {
        dir.push(seg);
    }
    dir
}

fn output(cx: &mut Ctx<'_>, raw: Option<&RawOutput>) -> OutputOptions {
    let mut out = OutputOptions {
        path: PathBuf::from(DEFAULT_OUTPUT_PATH),
        remote: None,
        format: OutputFormat::Parquet,
        partition: PartitionSpec::Auto,
        compression: Compression::Zstd(DEFAULT_ZSTD_LEVEL),
        row_group_rows: DEFAULT_ROW_GROUP_ROWS,
    };
    let Some(raw) = raw else { return out };
    if let Some(p) = &raw.path
        && let Some(s) = cx.interp(p, "output.path")
    {
        if s.trim().is_empty() || s.contains('\0') {
            cx.at(
                p.referenced,
                "output.path",
                format_args!(
                    "invalid output path `{}`; expected a directory such as `data/binance`",
                    s.escape_debug()
                ),
            );
        }
        if s.contains("://") {
            match remote_url(&s) {
                Ok(url) => {
                    out.path = default_staging(cx.env, &url);
                    out.remote = Some(url.to_string());
                }
                Err(why) => cx.at(p.referenced, "output.path", why),
            }
        } else {
            out.path = PathBuf::from(s);
        }
    }
    if let Some(st) = &raw.staging
        && let Some(s) = cx.interp(st, "output.staging")
    {
        if out.remote.is_none() {
            cx.at(
                st.referenced,
                "output.staging",
                "`output.staging` applies only when `output.path` is an object store URL such as `s3://bucket/prefix`; remove it",
            );
        } else if s.trim().is_empty() || s.contains('\0') {
            cx.at(
                st.referenced,
                "output.staging",
                format_args!("invalid staging directory `{}`", s.escape_debug()),
            );
        } else {
            out.path = PathBuf::from(s);
        }
    }
    out.format = cx.choice(
        raw.format.as_ref(),
        "output.format",
        &[
            ("parquet", OutputFormat::Parquet),
            ("delta", OutputFormat::Delta),
        ],
        OutputFormat::Parquet,
    );
    out.partition = cx.choice(
        raw.partition.as_ref(),
        "output.partition",
        &[
            ("auto", PartitionSpec::Auto),
            ("none", PartitionSpec::None),
            ("year", PartitionSpec::Year),
            ("month", PartitionSpec::Month),
            ("day", PartitionSpec::Day),
        ],
        PartitionSpec::Auto,
    );
    if let Some(c) = &raw.compression {
        match parse_compression(&c.value.0) {
            Some(comp) => out.compression = comp,
            None => cx.at(
                c.referenced,
                "output.compression",
                format_args!(
                    "unknown compression `{}`; expected `zstd`, `zstd:N` with N from 1 to 22, `snappy` or `none`",
                    c.value.0.escape_debug()
                ),
            ),
        }
    }
    out.row_group_rows = cx.int(
        raw.row_group_rows.as_ref(),
        "output.row_group_rows",
        1024,
        10_000_000,
        DEFAULT_ROW_GROUP_ROWS as i64,
    ) as usize;
    out
}

fn parse_compression(s: &str) -> Option<Compression> {
    match s {
        "zstd" => Some(Compression::Zstd(DEFAULT_ZSTD_LEVEL)),
        "snappy" => Some(Compression::Snappy),
        "none" => Some(Compression::None),
        _ => {
            let level: i32 = s.strip_prefix("zstd:")?.parse().ok()?;
            (1..=22)
                .contains(&level)
                .then_some(Compression::Zstd(level))
        }
    }
}

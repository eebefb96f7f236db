//! The YAML shape of a pipeline file, as serde sees it (stage 1 of 2).
//!
//! Every struct rejects unknown keys. Values that need checking beyond their YAML type (enums,
//! times, symbols, ranges of numbers) are read as spanned text or numbers here and checked in
//! [`super::validate`], so that all such problems are reported together, each with its line and
//! column. This module is the reference for the pipeline file format: every key below is
//! documented with its default and an example.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A scalar read as text whatever its YAML type, so `start: 1593907200000` (an integer) and
/// `start: 2020-07-05` (a string) both reach the validator, which then says what it expected.
#[derive(Debug, Clone, PartialEq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar (text or number)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A spanned text scalar.
pub type SText = Spanned<Text>;

/// The whole pipeline file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    /// `name` (required): identifies the job in logs, summaries and Parquet metadata.
    /// 1 to 64 characters of `A-Z a-z 0-9 _ . -`. Example: `name: btcusdt-daily`.
    pub name: Option<SText>,
    /// `source`: the exchange endpoint and how hard we may use it. Optional (all defaults).
    pub source: Option<RawSource>,
    /// `dataset`: `klines` (default), `ticker_price`, `depth` or `funding_rate` (futures
    /// only: the funding-rate history of perpetual contracts, with `range` and `symbols` as for
    /// klines and no `intervals`).
    pub dataset: Option<SText>,
    /// `symbols` (required): a non-empty list without duplicates, e.g. `[BTCUSDT, ETHUSDT]`,
    /// or a selector map resolved against `exchangeInfo` at run time, e.g.
    /// `{ quote: [USDT], regex: "^(BTC|ETH)", include_inactive: false, max: 50 }`.
    /// Symbols are Binance's spelling: upper case, `A-Z 0-9 _`, no `/`.
    pub symbols: Option<Spanned<RawSymbols>>,
    /// `intervals` (required for klines): Binance's case-sensitive spellings, non-empty, no
    /// duplicates: `1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M` (`1m` is a minute, `1M`
    /// a month; `1s` is spot only). Example: `intervals: [1d, 1h]`.
    pub intervals: Option<Spanned<Vec<SText>>>,
    /// `kline_family` (klines only): `trades` (default: `/klines`), or on futures markets
    /// `mark_price`, `index_price` (symbols are pairs, e.g. `BTCUSDT`, `BTCUSD`),
    /// `premium_index`, `continuous` (pairs, with `contract_type`). Example:
    /// `kline_family: mark_price`.
    pub kline_family: Option<SText>,
    /// `contract_type` (continuous klines only): `PERPETUAL` (default), `CURRENT_QUARTER` or
    /// `NEXT_QUARTER`.
    pub contract_type: Option<SText>,
    /// `depth_limit` (depth only): order-book levels per side. Spot `1..=5000` (default
    /// `100`); futures one of `5 10 20 50 100 500 1000` (default `500`). The request weight
    /// grows with it (spot 5/25/50/250, futures 2/5/10/20).
    pub depth_limit: Option<Spanned<i64>>,
    /// `range` (required for klines and funding_rate): the half-open UTC range `[start, end)` of
    /// candle open times (funding_rate: of funding times).
    pub range: Option<RawRange>,
    /// `transform`: typing and quality checks. Optional (all defaults).
    pub transform: Option<RawTransform>,
    /// `output`: where and how files are written. Optional (all defaults).
    pub output: Option<RawOutput>,
}

/// `source`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// `source.market`: `spot` (default), `usdm` (USDⓈ-M futures) or `coinm` (COIN-M futures).
    pub market: Option<SText>,
    /// `source.base_url`: an `http://` or `https://` URL without path, query or fragment.
    /// Default: the market's production URL (`https://api.binance.com`,
    /// `https://fapi.binance.com`, `https://dapi.binance.com`). `${VAR}` is interpolated.
    /// Cannot be combined with `simulator`.
    pub base_url: Option<SText>,
    /// `source.simulator`: run against the built-in simulator instead of an exchange, e.g.
    /// `simulator: { seed: 42 }`. Cannot be combined with `base_url`.
    pub simulator: Option<Spanned<RawSimulator>>,
    /// `source.api_key`: optional, sent only as the `X-MBX-APIKEY` header, never logged or
    /// written. `${VAR}` is interpolated; an empty value means no key. Example:
    /// `api_key: ${BINANCE_API_KEY:-}`.
    pub api_key: Option<SText>,
    /// `source.weight_share`: the fraction, in `(0, 1]`, of the exchange's per-minute request
    /// weight budget this run may use. Default `0.9`.
    pub weight_share: Option<Spanned<f64>>,
    /// `source.max_ban_wait_secs`: the longest wait the run sits out before it stops with the
    /// resumable exit code 3: an IP ban (HTTP 418), a 429's `Retry-After`, or the next weight
    /// window (for which at least 60 s, one Binance window, is always allowed). Default `300`,
    /// at most `86400`.
    pub max_ban_wait_secs: Option<Spanned<i64>>,
    /// `source.timeout_secs`: per-request timeout in seconds, `1..=600`. Default `30`.
    pub timeout_secs: Option<Spanned<i64>>,
    /// `source.max_retries`: retries per request for 5xx, timeouts, resets and truncated
    /// bodies, `0..=100`. Default `8`.
    pub max_retries: Option<Spanned<i64>>,
    /// `source.mode`: where kline history comes from: `auto` (default: data.binance.vision
    /// files for published months and days, REST for the rest), `archive` (files only) or
    /// `rest` (REST only).
    pub mode: Option<SText>,
    /// `source.archive_url`: the data.binance.vision-style archive, an `http://` or `https://`
    /// URL without path. Default `https://data.binance.vision` (with `simulator`: the
    /// simulator's own URL). `${VAR}` is interpolated.
    pub archive_url: Option<SText>,
}

/// `source.simulator`: all keys optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimulator {
    /// `seed`: the synthetic markets' random seed. Default `42`.
    pub seed: Option<Spanned<i64>>,
    /// `latency_ms`: fixed latency added to each reply, `0..=60000`. Default `0`.
    pub latency_ms: Option<Spanned<i64>>,
    /// `weight_limit`: per-minute weight limit the simulator enforces, at least 1. Default:
    /// the market's own limit (6000 spot, 2400 futures).
    pub weight_limit: Option<Spanned<i64>>,
}

/// `symbols`: a list or a selector map.
#[derive(Debug)]
pub enum RawSymbols {
    /// `[BTCUSDT, ETHUSDT]`.
    List(Vec<SText>),
    /// `{ quote: [USDT], regex: "^BTC" }`.
    Selector(RawSelector),
}

/// `symbols` as a selector; every given condition must hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSelector {
    /// `quote`: quote assets to keep, e.g. `[USDT, FDUSD]`. Default: any.
    pub quote: Option<Vec<SText>>,
    /// `regex`: a regular expression the symbol must match, e.g. `"^(BTC|ETH)"`. Default: any.
    pub regex: Option<SText>,
    /// `include_inactive`: also keep symbols not currently `TRADING`. Default `false`.
    pub include_inactive: Option<bool>,
    /// `max`: fail if more than this many symbols are selected (at least 1). Default: no limit.
    pub max: Option<Spanned<i64>>,
}

impl<'de> Deserialize<'de> for RawSymbols {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSymbols;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of symbols such as `[BTCUSDT, ETHUSDT]` or a selector map")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawSymbols, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<SText>()? {
                    out.push(s);
                }
                Ok(RawSymbols::List(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawSymbols, A::Error> {
                RawSelector::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawSymbols::Selector)
            }
        }
        d.deserialize_any(V)
    }
}

/// `range`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRange {
    /// `range.start` (required for klines and funding_rate). One of: an ISO date (`2020-07-05`, meaning 00:00
    /// UTC), an ISO datetime with `Z` or an offset (`2024-01-01T12:00:00Z`,
    /// `2024-01-01T12:00:00+02:00`), epoch milliseconds (`1593907200000`), `now`, `today`,
    /// `yesterday` (00:00 UTC), or `N minutes|hours|days|weeks ago`. A datetime without `Z` or
    /// offset is rejected (append `Z` for UTC). A relative start is aligned down to each
    /// interval's boundary (`30 days ago` is 30 daily or 720 hourly candles).
    pub start: Option<SText>,
    /// `range.end`: same forms as `start`. Default `now`. Exclusive.
    pub end: Option<SText>,
}

/// `transform`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransform {
    /// `transform.prices`: `float64` (default, what notebooks expect) or `decimal`
    /// (`Decimal128(38, 8)`, exact, for warehouses).
    pub prices: Option<SText>,
    /// `transform.time_unit`: `ms` (default) or `us`; timestamps are always UTC.
    pub time_unit: Option<SText>,
    /// `transform.include_forming`: also write the still-forming candle. Default `false`.
    pub include_forming: Option<bool>,
    /// `transform.on_violation`: what a failed quality check does: `report` (default: keep the
    /// rows, count and report) or `fail` (fail the task, write nothing of it).
    pub on_violation: Option<SText>,
}

/// `output`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// `output.path`: the output root: a directory (default `data/binance`) or an object
    /// store URL (`s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
    /// `file:///abs/path`). `${VAR}` is interpolated.
    pub path: Option<SText>,
    /// `output.staging`: with an object store `path`, the local mirror a run works in
    /// (default `${XDG_CACHE_HOME:-~/.cache}/kline-etl/<scheme>/<bucket>/<prefix>`).
    pub staging: Option<SText>,
    /// `output.format`: `parquet` (default: a hive tree of Parquet files) or `delta` (each
    /// dataset a Delta Lake table).
    pub format: Option<SText>,
    /// `output.partition`: `auto` (default: chosen per interval), `none`, `year`, `month` or
    /// `day`.
    pub partition: Option<SText>,
    /// `output.compression`: `zstd` (default, level 1), `zstd:N` with `N` in `1..=22`,
    /// `snappy` or `none`.
    pub compression: Option<SText>,
    /// `output.row_group_rows`: rows per Parquet row group, `1024..=10000000`. Default `131072`.
    pub row_group_rows: Option<Spanned<i64>>,
}

//! The simulator's market data: the symbol universe, the deterministic synthetic markets, the
//! replayed real data files, and the kline query engine that both the HTTP handlers and the
//! ground-truth API ([`super::SimHandle::expected_klines`]) call, so the two can never disagree.
//!
//! # Synthetic markets
//!
//! The base grid is one minute. Every one-minute candle is a pure function of
//! `(seed, market, symbol, minute index)`: the log price at each minute boundary is a sum of
//! 18 octaves of linearly interpolated value noise (octave `k` has knots every `2^k` minutes
//! and amplitude `sqrt(2^k)`), which behaves like a random walk up to ~90 days and stays
//! bounded beyond. Knot values come from a splitmix64 hash of the coordinates, so any candle
//! can be generated without generating its predecessors. Prices are integer ticks and volumes
//! integer lots, so aggregation is exact:
//! `high >= max(open, close)`, `low <= min(open, close)`, `taker <= volume`, and
//! `quote = volume × vwap` with `low <= vwap <= high` (COIN-M: base volume = contracts ×
//! contract size / vwap).
//!
//! Candles of every other interval are aggregates of the one-minute candles they contain
//! (open of the first, close of the last, max of highs, min of lows, sums of volumes and
//! counts); `1s` candles subdivide their minute so that 60 seconds aggregate exactly to it.
//! Closed hourly and daily aggregates are cached, so `1d`, `1w` and `1M` pages are cheap.
//!
//! A minute exists iff `listed <= open`, `open < delisted`, `open <= now` and no outage covers
//! it. An outage `[start, end)` removes the minutes opening in it, and the minute containing
//! an unaligned `start` closes early at `start - 1` (as the real 2023-03-24 spot halt did); a
//! candle of any interval whose last minute closed early carries that close time. A candle
//! exists iff at least one of its minutes exists; its open time is always the grid open. The
//! candle containing `now` is still forming: its last minute is scaled by the elapsed fraction,
//! so its close, high, low and volumes change until it closes.
//!
//! # Replayed data
//!
//! A symbol can be backed by real rows (the CSV and JSON formats of the fixtures, with or
//! without a header, ms or µs timestamps) per interval. Such a symbol serves exactly those
//! rows (those opening at or before `now`) and nothing for other intervals.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::interval::{DAY_MS, HOUR_MS, Interval, MINUTE_MS, SECOND_MS};
use crate::market::Market;

/// Timestamps at or above this are taken as microseconds (10^14 ms is the year 5138).
pub const MICROS_THRESHOLD: i64 = 100_000_000_000_000;

/// Number of noise octaves in the price walk.
const OCTAVES: usize = 18;

/// One kline row exactly as the exchange serves it (the 12 fields, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlineRow {
    /// Open time, ms.
    pub open_time: i64,
    /// Open price.
    pub open: String,
    /// High price.
    pub high: String,
    /// Low price.
    pub low: String,
    /// Close price.
    pub close: String,
    /// Volume (base asset; COIN-M: contracts).
    pub volume: String,
    /// Close time, ms.
    pub close_time: i64,
    /// Quote asset volume (COIN-M: base asset volume).
    pub quote_volume: String,
    /// Number of trades.
    pub trades: u64,
    /// Taker buy base asset volume (COIN-M: contracts).
    pub taker_buy_base_volume: String,
    /// Taker buy quote asset volume (COIN-M: base asset volume).
    pub taker_buy_quote_volume: String,
    /// The unused twelfth field.
    pub ignore: String,
}

impl KlineRow {
    /// The row as Binance's JSON array: ints for the times and trade count, strings otherwise.
    pub fn to_json(&self) -> [serde_json::Value; 12] {
        use serde_json::Value;
        [
            Value::from(self.open_time),
            Value::from(self.open.clone()),
            Value::from(self.high.clone()),
            Value::from(self.low.clone()),
            Value::from(self.close.clone()),
            Value::from(self.volume.clone()),
            Value::from(self.close_time),
            Value::from(self.quote_volume.clone()),
            Value::from(self.trades),
            Value::from(self.taker_buy_base_volume.clone()),
            Value::from(self.taker_buy_quote_volume.clone()),
            Value::from(self.ignore.clone()),
        ]
    }

    /// Append the row's compact JSON to `out`; `micros` switches the two times to µs.
    pub fn write_json(&self, out: &mut Vec<u8>, micros: bool) {
        let (open, close) = wire_times(self.open_time, self.close_time, micros);
        // Hand-written (no `write!`): the klines handler renders millions of rows.
        let quoted = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        };
        out.push(b'[');
        push_int(out, open);
        quoted(out, &self.open);
        quoted(out, &self.high);
        quoted(out, &self.low);
        quoted(out, &self.close);
        quoted(out, &self.volume);
        out.push(b',');
        push_int(out, close);
        quoted(out, &self.quote_volume);
        out.push(b',');
        push_digits(out, u128::from(self.trades));
        quoted(out, &self.taker_buy_base_volume);
        quoted(out, &self.taker_buy_quote_volume);
        quoted(out, &self.ignore);
        out.push(b']');
    }
}

/// A time span with no trading: minutes opening in `[start_ms, end_ms)` do not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// First instant without trading (need not be minute-aligned).
    pub start_ms: i64,
    /// First instant with trading again.
    pub end_ms: i64,
}

/// One symbol of the simulated universe.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolSpec {
    /// The symbol, e.g. `BTCUSDT`.
    pub symbol: String,
    /// Base asset, e.g. `BTC`.
    pub base_asset: String,
    /// Quote asset, e.g. `USDT` (COIN-M: `USD`).
    pub quote_asset: String,
    /// Listing time (floored to the minute).
    pub listed_ms: i64,
    /// Delisting time: no candle opens at or after it.
    pub delisted_ms: Option<i64>,
    /// Trading halts.
    pub outages: Vec<Outage>,
    /// Typical price.
    pub price: f64,
    /// Decimals of the tick size.
    pub price_decimals: u32,
    /// Decimals of the lot size (COIN-M: 0, volumes are contracts).
    pub qty_decimals: u32,
    /// Standard deviation of the log price over one minute.
    pub volatility: f64,
    /// Mean volume per minute in base units (COIN-M: contracts).
    pub minute_volume: f64,
    /// Mean trade size in base units (COIN-M: contracts).
    pub trade_size: f64,
    /// COIN-M contract size in quote units (USD); `None` elsewhere.
    pub contract_size: Option<u32>,
    /// Real rows per interval; when non-empty the symbol serves only these.
    pub replay: BTreeMap<Interval, Arc<[KlineRow]>>,
}

impl SymbolSpec {
    /// A synthetic symbol with the given listing time and typical price; other fields default
    /// to plausible values (2 price decimals when the price is above 10, 4 below).
    pub fn synthetic(symbol: &str, base: &str, quote: &str, listed_ms: i64, price: f64) -> Self {
        let price_decimals = if price >= 1000.0 {
            2
        } else if price >= 10.0 {
            3
        } else {
            4
        };
        Self {
            symbol: symbol.to_owned(),
            base_asset: base.to_owned(),
            quote_asset: quote.to_owned(),
            listed_ms,
            delisted_ms: None,
            outages: Vec::new(),
            price,
            price_decimals,
            qty_decimals: 8 - price_decimals - 1,
            volatility: 0.0012,
            minute_volume: 200_000.0 / price,
            trade_size: 300.0 / price,
            contract_size: None,
            replay: BTreeMap::new(),
        }
    }

    /// Whether `t` lies in one of the outages.
    fn in_outage(&self, t: i64) -> bool {
        self.outages.iter().any(|o| o.start_ms <= t && t < o.end_ms)
    }
}

/// Read real kline rows from a fixture file: CSV (with or without the header line) or a JSON
/// array of 12-element arrays; µs timestamps are converted to ms.
pub fn read_rows(path: &Path) -> Result<Vec<KlineRow>, ReplayError> {
    let text = fs_err::read_to_string(path).map_err(|source| ReplayError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut rows = parse_rows(&text).map_err(|reason| ReplayError::Parse {
        path: path.display().to_string(),
        reason,
    })?;
    rows.sort_by_key(|r| r.open_time);
    rows.dedup_by_key(|r| r.open_time);
    Ok(rows)
}

/// Why a replay file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be read.
    #[error("cannot read replay file")]
    Io {
        /// The file.
        path: String,
        /// The I/O error (names the path).
        #[source]
        source: std::io::Error,
    },
    /// The file is not kline CSV or JSON.
    #[error("replay file `{path}` is not kline data: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with the line.
        reason: String,
    },
}

fn to_ms(t: i64) -> i64 {
    if t >= MICROS_THRESHOLD { t / 1000 } else { t }
}

/// Parse CSV or JSON kline text (see [`read_rows`]).
pub fn parse_rows(text: &str) -> Result<Vec<KlineRow>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let raw: Vec<Vec<serde_json::Value>> =
            serde_json::from_str(trimmed).map_err(|e| format!("invalid JSON: {e}"))?;
        raw.iter()
            .enumerate()
            .map(|(i, r)| {
                let fields: Vec<String> = r
                    .iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                row_from_fields(&fields).map_err(|e| format!("row {}: {e}", i + 1))
            })
            .collect()
    } else {
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || (i == 0 && line.starts_with("open_time")) {
                continue;
            }
            let fields: Vec<String> = line.split(',').map(str::to_owned).collect();
            rows.push(row_from_fields(&fields).map_err(|e| format!("line {}: {e}", i + 1))?);
        }
        Ok(rows)
    }
}

fn row_from_fields(f: &[String]) -> Result<KlineRow, String> {
    if f.len() != 12 {
        return Err(format!("expected 12 fields, found {}", f.len()));
    }
    let int = |i: usize| -> Result<i64, String> {
        f[i].trim()
            .parse::<i64>()
            .map_err(|_| format!("field {i} `{}` is not an integer", f[i]))
    };
    Ok(KlineRow {
        open_time: to_ms(int(0)?),
        open: f[1].clone(),
        high: f[2].clone(),
        low: f[3].clone(),
        close: f[4].clone(),
        volume: f[5].clone(),
        close_time: to_ms(int(6)?),
        quote_volume: f[7].clone(),
        trades: u64::try_from(int(8)?).map_err(|_| "negative trade count".to_owned())?,
        taker_buy_base_volume: f[9].clone(),
        taker_buy_quote_volume: f[10].clone(),
        ignore: f[11].clone(),
    })
}

/// splitmix64: the counter-based hash behind every random number of the simulator.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform number in `[0, 1)` from a hash.
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn key_of(seed: u64, market: Market, symbol: &str) -> u64 {
    let mut h = mix(seed ^ (market as u64 + 1).wrapping_mul(0x1000_0000_01B3));
    for b in symbol.bytes() {
        h = mix(h ^ u64::from(b));
    }
    h
}

/// An integer-unit candle (prices in ticks, volumes in lots, quote in the symbol's quote unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candle {
    pub(crate) open_time: i64,
    pub(crate) close_time: i64,
    /// Whether the last minute closed early (outage).
    pub(crate) cut: bool,
    pub(crate) open: i64,
    pub(crate) high: i64,
    pub(crate) low: i64,
    pub(crate) close: i64,
    pub(crate) volume: i64,
    pub(crate) quote: i128,
    pub(crate) trades: i64,
    pub(crate) taker: i64,
    pub(crate) taker_quote: i128,
}

impl Candle {
    fn merge(acc: Option<Candle>, next: Option<Candle>) -> Option<Candle> {
        match (acc, next) {
            (None, n) => n,
            (a, None) => a,
            (Some(a), Some(b)) => Some(Candle {
                open_time: a.open_time,
                close_time: b.close_time,
                cut: b.cut,
                open: a.open,
                high: a.high.max(b.high),
                low: a.low.min(b.low),
                close: b.close,
                volume: a.volume + b.volume,
                quote: a.quote + b.quote,
                trades: a.trades + b.trades,
                taker: a.taker + b.taker,
                taker_quote: a.taker_quote + b.taker_quote,
            }),
        }
    }
}

/// Sequential evaluator of the price walk: keeps each octave's current knots so stepping one
/// minute costs one interpolation per octave and a hash only when a knot changes.
struct Walk {
    key: u64,
    knots: [(i64, f64, f64); OCTAVES],
    /// `sqrt(2^k)` per octave.
    scale: [f64; OCTAVES],
}

impl Walk {
    fn new(key: u64) -> Self {
        Self {
            key,
            knots: [(i64::MIN, 0.0, 0.0); OCTAVES],
            scale: std::array::from_fn(|k| ((1i64 << k) as f64).sqrt()),
        }
    }

    fn knot(&self, k: usize, j: i64) -> f64 {
        let h = mix(self.key ^ mix((k as u64) << 56 ^ j as u64));
        (unit(h) * 2.0 - 1.0) * 1.732_050_8
    }

    /// The walk's log-price offset at minute boundary `i` (minutes since the epoch), in units of
    /// the per-minute volatility.
    fn level(&mut self, i: i64) -> f64 {
        let mut sum = 0.0;
        for k in 0..OCTAVES {
            // Spans are powers of two: floor division is a shift, the remainder a mask, and
            // dividing by the span is exact either way.
            let span = 1i64 << k;
            let j = i >> k;
            if self.knots[k].0 != j {
                self.knots[k] = (j, self.knot(k, j), self.knot(k, j + 1));
            }
            let (_, a, b) = self.knots[k];
            let frac = (i & (span - 1)) as f64 / span as f64;
            sum += (a + (b - a) * frac) * self.scale[k];
        }
        // Normalise so the per-minute step has roughly unit standard deviation.
        sum / (OCTAVES as f64).sqrt()
    }
}

/// Cache level of closed aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Level {
    Hour,
    Day,
}

/// One symbol with its hash key and aggregate cache.
#[derive(Debug)]
pub(crate) struct SymbolData {
    pub(crate) spec: SymbolSpec,
    key: u64,
    listed: i64,
    cache: Mutex<HashMap<(Level, i64), Option<Candle>>>,
}

/// The symbols of one market.
#[derive(Debug)]
pub(crate) struct MarketData {
    pub(crate) symbols: Vec<SymbolData>,
}

/// All markets of a simulator.
#[derive(Debug)]
pub(crate) struct Universe {
    pub(crate) markets: Vec<MarketData>,
}

impl Universe {
    pub(crate) fn new(seed: u64, specs: &BTreeMap<Market, Vec<SymbolSpec>>) -> Self {
        let markets = Market::ALL
            .iter()
            .map(|&market| MarketData {
                symbols: specs
                    .get(&market)
                    .map(|v| {
                        v.iter()
                            .map(|s| SymbolData {
                                key: key_of(seed, market, &s.symbol),
                                listed: Interval::M1.floor(s.listed_ms),
                                spec: s.clone(),
                                cache: Mutex::new(HashMap::new()),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        Self { markets }
    }

    pub(crate) fn market(&self, market: Market) -> &MarketData {
        // `new` creates every market in `Market::ALL` order.
        &self.markets[market as usize]
    }

    pub(crate) fn symbol(&self, market: Market, symbol: &str) -> Option<&SymbolData> {
        self.market(market)
            .symbols
            .iter()
            .find(|s| s.spec.symbol == symbol)
    }
}

/// Which candles a kline query selects (already resolved from the request's parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selection {
    /// The first `limit` candles opening in `[from, to]`.
    First { from: i64, to: i64, limit: usize },
    /// The last `limit` candles opening in `[from, to]`.
    Last { from: i64, to: i64, limit: usize },
}

impl SymbolData {
    /// The symbol's hash key (seed × market × name), for per-symbol random streams.
    pub(crate) fn key(&self) -> u64 {
        self.key
    }

    /// The first and last instants at which a candle may open, given `now`.
    fn bounds(&self, now: i64) -> (i64, i64) {
        let mut last = now;
        if let Some(d) = self.spec.delisted_ms {
            last = last.min(d - 1);
        }
        (self.listed, last)
    }

    /// The minute candle opening at `m` (minute-aligned), as of `now`.
    #[allow(clippy::many_single_char_names)] // candle math reads best as o/h/l/c, m, t, u
    fn minute(&self, walk: &mut Walk, m: i64, now: i64) -> Option<Candle> {
        let (first, last) = self.bounds(now);
        if m < first || m > last || self.spec.in_outage(m) {
            return None;
        }
        let s = &self.spec;
        let idx = m.div_euclid(MINUTE_MS);
        let scale = 10f64.powi(s.price_decimals as i32);
        let sigma = s.volatility;
        let to_ticks = |lvl: f64| ((s.price * (lvl * sigma).exp() * scale).round() as i64).max(1);
        let open = to_ticks(walk.level(idx));
        let mut close = to_ticks(walk.level(idx + 1));
        let mut h = mix(self.key ^ mix(idx as u64 ^ 0x5EED));
        let mut u = || {
            h = mix(h);
            unit(h)
        };
        let (u1, u2, u3, u4, u5, u6) = (u(), u(), u(), u(), u(), u());
        let base = open as f64;
        let mut up = (u1 * u1 * sigma * base * 1.5).floor() as i64;
        let mut down = (u2 * u2 * sigma * base * 1.5).floor() as i64;
        let move_size = ((close - open).abs() as f64 / (sigma * base)).min(4.0);
        let lots = 10f64.powi(s.qty_decimals as i32);
        let mut volume =
            (s.minute_volume * (0.25 + 1.5 * u3) * (1.0 + 0.3 * move_size) * lots) as i64;
        let mut taker = (volume as f64 * (0.3 + 0.4 * u4)) as i64;
        let mut trades = if volume == 0 {
            0
        } else {
            ((volume as f64 / (s.trade_size * lots)) * (0.5 + u5)).max(1.0) as i64
        };
        let mut close_time = m + MINUTE_MS - 1;
        let mut cut = false;
        if let Some(o) = s
            .outages
            .iter()
            .find(|o| o.start_ms > m && o.start_ms < m + MINUTE_MS)
        {
            close_time = o.start_ms - 1;
            cut = true;
        }
        if now < m + MINUTE_MS {
            // Still forming: scale the minute by the elapsed fraction.
            let f = (now - m) as f64 / MINUTE_MS as f64;
            close = open + ((close - open) as f64 * f).round() as i64;
            up = (up as f64 * f) as i64;
            down = (down as f64 * f) as i64;
            volume = (volume as f64 * f) as i64;
            taker = (taker as f64 * f) as i64;
            trades = (trades as f64 * f) as i64;
        }
        let high = open.max(close) + up;
        let low = (open.min(close) - down).max(1);
        let vwap = low + ((high - low) as f64 * u6).round() as i64;
        Some(Candle {
            open_time: m,
            close_time,
            cut,
            open,
            high,
            low,
            close,
            volume,
            quote: self.quote(volume, vwap),
            trades,
            taker,
            taker_quote: self.quote(taker, vwap),
        })
    }

    /// Quote amount of `volume` lots at `vwap` ticks, in the symbol's quote unit.
    fn quote(&self, volume: i64, vwap: i64) -> i128 {
        match self.spec.contract_size {
            None => i128::from(volume) * i128::from(vwap),
            Some(cs) => {
                let num =
                    i128::from(volume) * i128::from(cs) * 10i128.pow(8 + self.spec.price_decimals);
                num / i128::from(vwap.max(1))
            }
        }
    }

    /// Decimals of the quote unit.
    fn quote_decimals(&self) -> u32 {
        match self.spec.contract_size {
            None => self.spec.price_decimals + self.spec.qty_decimals,
            Some(_) => 8,
        }
    }

    fn cached(&self, level: Level, start: i64) -> Option<Candle> {
        if let Ok(c) = self.cache.lock()
            && let Some(v) = c.get(&(level, start))
        {
            return *v;
        }
        let (len, below) = match level {
            Level::Hour => (HOUR_MS, None),
            Level::Day => (DAY_MS, Some(Level::Hour)),
        };
        let mut walk = Walk::new(self.key);
        let v = self.aggregate_with(&mut walk, start, start + len, i64::MAX, below);
        if let Ok(mut c) = self.cache.lock() {
            c.insert((level, start), v);
        }
        v
    }

    /// Aggregate the minutes opening in `[start, end)` as of `now`.
    fn aggregate(&self, walk: &mut Walk, start: i64, end: i64, now: i64) -> Option<Candle> {
        self.aggregate_with(walk, start, end, now, Some(Level::Day))
    }

    /// [`Self::aggregate`] using cached levels up to `top` only.
    fn aggregate_with(
        &self,
        walk: &mut Walk,
        start: i64,
        end: i64,
        now: i64,
        top: Option<Level>,
    ) -> Option<Candle> {
        let use_day = top == Some(Level::Day);
        let use_hour = top.is_some();
        let (first, last) = self.bounds(now);
        let mut t = start.max(first);
        let end = end.min(last.saturating_add(1));
        let mut acc = None;
        while t < end {
            let closed = |len: i64| t % len == 0 && t + len <= end && t + len <= now;
            if use_day && closed(DAY_MS) {
                acc = Candle::merge(acc, self.cached(Level::Day, t));
                t += DAY_MS;
            } else if use_hour && closed(HOUR_MS) {
                acc = Candle::merge(acc, self.cached(Level::Hour, t));
                t += HOUR_MS;
            } else {
                acc = Candle::merge(acc, self.minute(walk, t, now));
                t += MINUTE_MS;
            }
        }
        acc
    }

    /// The candle of `interval` opening at the aligned `open`, as of `now`.
    fn candle(&self, walk: &mut Walk, interval: Interval, open: i64, now: i64) -> Option<Candle> {
        if interval == Interval::S1 {
            return self.second(walk, open, now);
        }
        let close = interval.close_time(open);
        let mut c = if interval == Interval::M1 {
            self.minute(walk, open, now)?
        } else {
            self.aggregate(walk, open, close + 1, now)?
        };
        c.open_time = open;
        if !c.cut {
            c.close_time = close;
        }
        Some(c)
    }

    /// The `1s` candle opening at `t`: the minute split into 60 seconds that aggregate to it.
    /// Every second's range contains the minute's vwap, so each second's quote volume is its
    /// volume × that vwap.
    #[allow(clippy::many_single_char_names)] // candle math reads best as o/h/l/c, m, t, u
    fn second(&self, walk: &mut Walk, t: i64, now: i64) -> Option<Candle> {
        let m = Interval::M1.floor(t);
        // Generate the closed minute (seconds of a forming minute use the closed values).
        let full = self.minute(walk, m, i64::MAX)?;
        if t > now || (full.cut && t > full.close_time) {
            return None;
        }
        let k = (t - m) / SECOND_MS;
        let mut h = mix(self.key ^ mix(m as u64 ^ 0x5EC0));
        let mut draws = [0f64; 60];
        for d in &mut draws {
            h = mix(h);
            *d = unit(h);
        }
        let pick_hi = (draws[0] * 60.0) as i64;
        let pick_lo = (draws[1] * 60.0) as i64;
        let vwap = if full.volume > 0 {
            self.vwap_of(&full)
        } else {
            full.open
        };
        // Path of closes: a straight line from open to close with hashed wiggles.
        let path = |i: i64| -> i64 {
            if i < 0 {
                return full.open;
            }
            if i >= 59 {
                return full.close;
            }
            let base = full.open + (full.close - full.open) * (i + 1) / 60;
            let w = (draws[(i as usize + 2) % 60] - 0.5) * (full.high - full.low) as f64 * 0.5;
            (base + w as i64).clamp(full.low, full.high)
        };
        let open = path(k - 1);
        let close = path(k);
        let mut high = open.max(close).max(vwap);
        let mut low = open.min(close).min(vwap);
        if k == pick_hi {
            high = full.high;
        }
        if k == pick_lo {
            low = full.low;
        }
        // Split volume, taker volume and trades by weights; the last second takes the rest.
        let weights: Vec<f64> = draws.iter().map(|d| 0.2 + d).collect();
        let total: f64 = weights.iter().sum();
        let share = |amount: i64| -> i64 {
            let part = |i: usize| (amount as f64 * weights[i] / total).floor() as i64;
            if k == 59 {
                amount - (0..59).map(part).sum::<i64>()
            } else {
                part(k as usize)
            }
        };
        let volume = share(full.volume);
        let taker = share(full.taker).min(volume);
        let trades = if volume == 0 {
            0
        } else {
            share(full.trades).max(1)
        };
        Some(Candle {
            open_time: t,
            close_time: if full.cut && t + SECOND_MS > full.close_time {
                full.close_time
            } else {
                t + SECOND_MS - 1
            },
            cut: false,
            open,
            high,
            low,
            close,
            volume,
            quote: self.quote(volume, vwap),
            trades,
            taker,
            taker_quote: self.quote(taker, vwap),
        })
    }

    /// Recover the vwap used for a minute (the quote is volume × vwap exactly).
    fn vwap_of(&self, c: &Candle) -> i64 {
        match self.spec.contract_size {
            None => (c.quote / i128::from(c.volume.max(1))) as i64,
            Some(_) => {
                // Regenerate: not invertible exactly; the mid of the range is within it.
                i64::midpoint(c.high, c.low)
            }
        }
    }

    fn format(&self, market: Market, c: &Candle) -> KlineRow {
        let s = &self.spec;
        let (pd, qd, vd) = self.wire_decimals(market);
        let price = |v: i64| fixed(i128::from(v), s.price_decimals, pd);
        let qty = |v: i64| fixed(i128::from(v), s.qty_decimals, qd);
        let quote = |v: i128| fixed(v, self.quote_decimals(), vd);
        KlineRow {
            open_time: c.open_time,
            open: price(c.open),
            high: price(c.high),
            low: price(c.low),
            close: price(c.close),
            volume: qty(c.volume),
            close_time: c.close_time,
            quote_volume: quote(c.quote),
            trades: c.trades.max(0) as u64,
            taker_buy_base_volume: qty(c.taker),
            taker_buy_quote_volume: quote(c.taker_quote),
            ignore: "0".to_owned(),
        }
    }

    /// The current price (close of the minute containing `now`), formatted.
    pub(crate) fn price_now(&self, market: Market, now: i64) -> Option<String> {
        if let Some(rows) = self.spec.replay.values().next() {
            return rows
                .iter()
                .rev()
                .find(|r| r.open_time <= now)
                .map(|r| r.close.clone());
        }
        let mut walk = Walk::new(self.key);
        let c = self.minute(&mut walk, Interval::M1.floor(now), now)?;
        Some(self.format(market, &c).close)
    }

    /// The current price in ticks (what [`Self::price_now`] prints), the mid of the synthetic
    /// order book, so the book's best bid and ask straddle the ticker price.
    pub(crate) fn price_ticks_now(&self, now: i64) -> i64 {
        let mut walk = Walk::new(self.key);
        let (_, last) = self.bounds(now);
        let t = Interval::M1.floor(now.min(last).max(self.listed));
        self.minute(&mut walk, t, now).map_or(1, |c| c.close)
    }

    /// Run a kline selection as of `now`.
    pub(crate) fn klines(
        &self,
        market: Market,
        interval: Interval,
        sel: Selection,
        now: i64,
    ) -> Vec<KlineRow> {
        if !self.spec.replay.is_empty() {
            return self.replay_klines(interval, sel, now);
        }
        self.candles(interval, sel, now)
            .iter()
            .map(|c| self.format(market, c))
            .collect()
    }

    /// [`Self::klines`] rendered straight into `out` as Binance's JSON array of arrays (no
    /// intermediate strings: the klines endpoint's hot path). Returns the number of rows.
    pub(crate) fn klines_json(
        &self,
        market: Market,
        interval: Interval,
        sel: Selection,
        now: i64,
        micros: bool,
        out: &mut Vec<u8>,
    ) -> usize {
        if self.spec.replay.is_empty() {
            let candles = self.candles(interval, sel, now);
            out.reserve(candles.len() * 200 + 2);
            out.push(b'[');
            for (i, c) in candles.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                self.write_json(market, c, micros, out);
            }
            out.push(b']');
            candles.len()
        } else {
            let rows = self.replay_klines(interval, sel, now);
            write_rows_json(&rows, micros, out);
            rows.len()
        }
    }

    /// Decimals of prices, quantities and quote amounts on the wire: spot always prints 8,
    /// futures their contract's own.
    fn wire_decimals(&self, market: Market) -> (u32, u32, u32) {
        if market == Market::Spot {
            (8, 8, 8)
        } else {
            (
                self.spec.price_decimals,
                self.spec.qty_decimals,
                self.quote_decimals(),
            )
        }
    }

    /// `self.format(market, c).write_json(out, micros)`, without the strings.
    fn write_json(&self, market: Market, c: &Candle, micros: bool, out: &mut Vec<u8>) {
        let s = &self.spec;
        let (pd, qd, vd) = self.wire_decimals(market);
        let (open_time, close_time) = wire_times(c.open_time, c.close_time, micros);
        let quoted = |out: &mut Vec<u8>, v: i128, dec: u32, to: u32| {
            out.extend_from_slice(b",\"");
            push_fixed(out, v, dec, to);
            out.push(b'"');
        };
        out.push(b'[');
        push_int(out, open_time);
        for p in [c.open, c.high, c.low, c.close] {
            quoted(out, i128::from(p), s.price_decimals, pd);
        }
        quoted(out, i128::from(c.volume), s.qty_decimals, qd);
        out.push(b',');
        push_int(out, close_time);
        quoted(out, c.quote, self.quote_decimals(), vd);
        out.push(b',');
        push_digits(out, u128::from(c.trades.max(0) as u64));
        quoted(out, i128::from(c.taker), s.qty_decimals, qd);
        quoted(out, c.taker_quote, self.quote_decimals(), vd);
        out.extend_from_slice(b",\"0\"]");
    }

    /// The generated candles selected by `sel` (not replayed symbols).
    fn candles(&self, interval: Interval, sel: Selection, now: i64) -> Vec<Candle> {
        let (first, last) = self.bounds(now);
        if last < first {
            return Vec::new();
        }
        let mut walk = Walk::new(self.key);
        let mut out = Vec::new();
        match sel {
            Selection::First { from, to, limit } => {
                let mut open = interval.ceil(from.max(interval.floor(first)));
                let to = to.min(last);
                while open <= to && out.len() < limit {
                    if let Some(c) = self.candle(&mut walk, interval, open, now) {
                        out.push(c);
                    }
                    open = interval.next(open);
                }
            }
            Selection::Last { from, to, limit } => {
                let from = from.max(interval.floor(first));
                let mut open = interval.floor(to.min(last));
                let mut opens = Vec::new();
                while open >= from && opens.len() < limit {
                    // Backwards over a forward walk would thrash the knot cache; collect opens.
                    if self.exists(interval, open, now) {
                        opens.push(open);
                    }
                    open = interval.prev(open);
                }
                opens.reverse();
                for o in opens {
                    if let Some(c) = self.candle(&mut walk, interval, o, now) {
                        out.push(c);
                    }
                }
            }
        }
        out
    }

    /// Whether any minute of the candle opening at `open` exists (cheap: no generation).
    fn exists(&self, interval: Interval, open: i64, now: i64) -> bool {
        let (first, last) = self.bounds(now);
        let end = interval.next(open).min(last.saturating_add(1));
        let mut t = Interval::M1.floor(open).max(first);
        while t < end {
            if !self.spec.in_outage(t) {
                return true;
            }
            // Jump to the end of the outage containing t.
            let skip = self
                .spec
                .outages
                .iter()
                .filter(|o| o.start_ms <= t && t < o.end_ms)
                .map(|o| Interval::M1.ceil(o.end_ms))
                .max()
                .unwrap_or(t + MINUTE_MS);
            t = skip.max(t + MINUTE_MS);
        }
        false
    }

    fn replay_klines(&self, interval: Interval, sel: Selection, now: i64) -> Vec<KlineRow> {
        let Some(rows) = self.spec.replay.get(&interval) else {
            return Vec::new();
        };
        let visible = rows.partition_point(|r| r.open_time <= now);
        let rows = &rows[..visible];
        match sel {
            Selection::First { from, to, limit } => {
                let a = rows.partition_point(|r| r.open_time < from);
                rows[a..]
                    .iter()
                    .take_while(|r| r.open_time <= to)
                    .take(limit)
                    .cloned()
                    .collect()
            }
            Selection::Last { from, to, limit } => {
                let a = rows.partition_point(|r| r.open_time < from);
                let b = rows.partition_point(|r| r.open_time <= to).max(a);
                let a = a.max(b.saturating_sub(limit));
                rows[a..b].to_vec()
            }
        }
    }

    /// The closed candles opening in `[start, end)` as of `now` (the ground truth).
    pub(crate) fn closed_klines(
        &self,
        market: Market,
        interval: Interval,
        start: i64,
        end: i64,
        now: i64,
    ) -> Vec<KlineRow> {
        if end <= start {
            return Vec::new();
        }
        let mut rows = self.klines(
            market,
            interval,
            Selection::First {
                from: start,
                to: end - 1,
                limit: usize::MAX,
            },
            now,
        );
        rows.retain(|r| r.close_time < now && interval.close_time(r.open_time) < now);
        rows
    }
}

/// Format the integer `v` having `dec` decimals with `out` decimals (`out >= dec` pads zeros;
/// fewer truncates toward zero).
pub(crate) fn fixed(v: i128, dec: u32, out: u32) -> String {
    let mut s = Vec::with_capacity(24);
    push_fixed(&mut s, v, dec, out);
    // Only ASCII digits, '-' and '.' were written.
    String::from_utf8(s).unwrap_or_default()
}

/// [`fixed`] appended to `buf`: the simulator's hot path renders millions of these, so no
/// `format!` and no allocation beyond `buf`'s growth.
#[allow(clippy::many_single_char_names)] // short names for a tiny numeric routine
pub(crate) fn push_fixed(buf: &mut Vec<u8>, v: i128, dec: u32, out: u32) {
    let (v, dec) = if out < dec {
        (v / 10i128.pow(dec - out), out)
    } else {
        (v, dec)
    };
    if v < 0 {
        buf.push(b'-');
    }
    let a = v.unsigned_abs();
    // u64 arithmetic when it fits (always, for the simulator's own values): u128 division is
    // a slow library call.
    let (int, frac) = match u64::try_from(a) {
        Ok(a) if dec <= 19 => {
            let p = 10u64.pow(dec);
            (u128::from(a / p), u128::from(a % p))
        }
        _ => {
            let p = 10u128.pow(dec);
            (a / p, a % p)
        }
    };
    push_digits(buf, int);
    if out > 0 {
        buf.push(b'.');
        // The fraction zero-padded to `dec` digits (as `{frac:0dec$}` would: one digit when
        // `dec` is 0), then zeros up to `out`.
        let width = dec.max(1) as usize;
        let start = buf.len();
        buf.resize(start + width, b'0');
        let mut i = buf.len();
        if let Ok(mut x) = u64::try_from(frac) {
            while x > 0 {
                i -= 1;
                buf[i] = b'0' + (x % 10) as u8;
                x /= 10;
            }
        } else {
            let mut x = frac;
            while x > 0 {
                i -= 1;
                buf[i] = b'0' + (x % 10) as u8;
                x /= 10;
            }
        }
        buf.resize(buf.len() + (out - dec) as usize, b'0');
    }
}

/// The decimal digits of `v` (at least one).
fn push_digits(buf: &mut Vec<u8>, v: u128) {
    let mut tmp = [0u8; 40];
    let mut i = tmp.len();
    if let Ok(mut x) = u64::try_from(v) {
        loop {
            i -= 1;
            tmp[i] = b'0' + (x % 10) as u8;
            x /= 10;
            if x == 0 {
                break;
            }
        }
    } else {
        let mut x = v;
        loop {
            i -= 1;
            tmp[i] = b'0' + (x % 10) as u8;
            x /= 10;
            if x == 0 {
                break;
            }
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// A signed integer's decimal digits.
/// Open and close time as sent: ms, or µs (the close time then ends in 999 µs).
fn wire_times(open_ms: i64, close_ms: i64, micros: bool) -> (i64, i64) {
    if micros {
        (open_ms * 1000, close_ms * 1000 + 999)
    } else {
        (open_ms, close_ms)
    }
}

/// `rows` as Binance's JSON array of arrays, appended to `out`.
pub(crate) fn write_rows_json(rows: &[KlineRow], micros: bool, out: &mut Vec<u8>) {
    out.reserve(rows.len() * 200 + 2);
    out.push(b'[');
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        r.write_json(out, micros);
    }
    out.push(b']');
}

fn push_int(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    push_digits(buf, u128::from(v.unsigned_abs()));
}

#[cfg(test)]
#[allow(clippy::float_cmp, clippy::many_single_char_names)] // values parse from exact decimal strings
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    fn data(spec: SymbolSpec) -> SymbolData {
        SymbolData {
            key: key_of(7, Market::Spot, &spec.symbol),
            listed: Interval::M1.floor(spec.listed_ms),
            spec,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn btc() -> SymbolData {
        data(SymbolSpec::synthetic(
            "BTCUSDT",
            "BTC",
            "USDT",
            T0 - 400 * DAY_MS,
            30000.0,
        ))
    }

    fn first(from: i64, to: i64, limit: usize) -> Selection {
        Selection::First { from, to, limit }
    }

    fn num(s: &str) -> f64 {
        s.parse().unwrap()
    }

    #[test]
    fn formats_fixed_decimals() {
        assert_eq!(fixed(1_234_567, 2, 8), "12345.67000000");
        assert_eq!(fixed(5, 3, 3), "0.005");
        assert_eq!(fixed(206, 0, 0), "206");
        assert_eq!(fixed(123_456_789, 8, 4), "1.2345");
        assert_eq!(fixed(-5, 3, 4), "-0.0050");
        assert_eq!(fixed(0, 0, 2), "0.000"); // as `{frac:00$}` did: one digit, then the padding
        assert_eq!(
            fixed(i128::from(u64::MAX) * 100, 2, 2),
            "18446744073709551615.00"
        );
    }

    #[test]
    fn klines_json_is_the_rendering_of_klines() {
        let mut futures =
            SymbolSpec::synthetic("BTCUSD_PERP", "BTC", "USD", T0 - 400 * DAY_MS, 30000.0);
        futures.price_decimals = 1;
        futures.qty_decimals = 0;
        for d in [btc(), data(futures)] {
            for market in [Market::Spot, Market::UsdM, Market::CoinM] {
                for (interval, sel) in [
                    (Interval::M1, first(T0, T0 + 600 * 60_000, 500)),
                    (Interval::H1, first(T0 - 90 * DAY_MS, T0, 1000)),
                    (
                        Interval::M1,
                        Selection::Last {
                            from: T0,
                            to: T0 + DAY_MS,
                            limit: 7,
                        },
                    ),
                ] {
                    for micros in [false, true] {
                        let rows = d.klines(market, interval, sel, T0 + DAY_MS);
                        let mut want = Vec::new();
                        write_rows_json(&rows, micros, &mut want);
                        let mut got = Vec::new();
                        let n = d.klines_json(market, interval, sel, T0 + DAY_MS, micros, &mut got);
                        assert_eq!(n, rows.len());
                        assert_eq!(
                            String::from_utf8(got).unwrap(),
                            String::from_utf8(want).unwrap()
                        );
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn push_fixed_is_the_format_rendering(v in any::<i64>(), wide in any::<bool>(), dec in 0u32..12, out in 0u32..12) {
            let v = if wide { i128::from(v) * 1_000_000_007 } else { i128::from(v) };
            let (w, d) = if out < dec { (v / 10i128.pow(dec - out), out) } else { (v, dec) };
            let p = 10i128.pow(d);
            let mut want = if w < 0 { "-".to_owned() } else { String::new() };
            want += &(w.unsigned_abs() / p.unsigned_abs()).to_string();
            if out > 0 {
                let frac = w.unsigned_abs() % p.unsigned_abs();
                let pad = "0".repeat((out - d) as usize);
                want = format!("{want}.{frac:0width$}{pad}", width = d as usize);
            }
            prop_assert_eq!(fixed(v, dec, out), want);
        }
    }

    #[test]
    fn write_json_is_the_serde_rendering() {
        let row = btc().klines(
            Market::Spot,
            Interval::M1,
            first(T0, T0 + 5 * 60_000, 5),
            T0 + DAY_MS,
        );
        for micros in [false, true] {
            for r in &row {
                let mut out = Vec::new();
                r.write_json(&mut out, micros);
                let mut v = r.to_json();
                if micros {
                    v[0] = serde_json::Value::from(r.open_time * 1000);
                    v[6] = serde_json::Value::from(r.close_time * 1000 + 999);
                }
                assert_eq!(out, serde_json::to_vec(&v).unwrap());
            }
        }
    }

    #[test]
    fn rows_are_consistent_and_deterministic() {
        let s = btc();
        let now = T0 + 10 * DAY_MS;
        let a = s.klines(
            Market::Spot,
            Interval::M1,
            first(T0, T0 + DAY_MS, 1000),
            now,
        );
        let b = btc().klines(
            Market::Spot,
            Interval::M1,
            first(T0, T0 + DAY_MS, 1000),
            now,
        );
        assert_eq!(a.len(), 1000);
        assert_eq!(a, b);
        for r in &a {
            let (o, h, l, c) = (num(&r.open), num(&r.high), num(&r.low), num(&r.close));
            assert!(h >= o.max(c) && l <= o.min(c), "{r:?}");
            let v = num(&r.volume);
            assert!(num(&r.taker_buy_base_volume) <= v);
            let q = num(&r.quote_volume);
            assert!(q >= v * l * 0.999_999 && q <= v * h * 1.000_001, "{r:?}");
            assert_eq!(r.open.split('.').nth(1).unwrap().len(), 8);
        }
        // Opens continue the previous close.
        assert!(a.windows(2).all(|w| w[0].close == w[1].open));
    }

    #[test]
    fn higher_intervals_aggregate_minutes() {
        let s = btc();
        let now = T0 + 10 * DAY_MS;
        let day = Interval::D1.ceil(T0);
        let d = s.klines(Market::Spot, Interval::D1, first(day, day, 1), now);
        let m = s.klines(
            Market::Spot,
            Interval::M1,
            first(day, day + DAY_MS - 1, 1440),
            now,
        );
        let h = s.klines(
            Market::Spot,
            Interval::H1,
            first(day, day + DAY_MS - 1, 24),
            now,
        );
        assert_eq!(m.len(), 1440);
        assert_eq!(h.len(), 24);
        let max = |rows: &[KlineRow]| rows.iter().map(|r| num(&r.high)).fold(0.0, f64::max);
        let min = |rows: &[KlineRow]| rows.iter().map(|r| num(&r.low)).fold(f64::MAX, f64::min);
        let sum_trades = |rows: &[KlineRow]| rows.iter().map(|r| r.trades).sum::<u64>();
        assert_eq!(num(&d[0].high), max(&m));
        assert_eq!(num(&d[0].low), min(&m));
        assert_eq!(d[0].trades, sum_trades(&m));
        assert_eq!(d[0].trades, sum_trades(&h));
        assert_eq!(d[0].open, m[0].open);
        assert_eq!(d[0].close, m[1439].close);
        assert_eq!(d[0].close_time, day + DAY_MS - 1);
        assert_eq!(h[5].high, {
            let slice = &m[300..360];
            let best = slice
                .iter()
                .max_by(|a, b| num(&a.high).total_cmp(&num(&b.high)));
            best.unwrap().high.clone()
        });
    }

    #[test]
    fn seconds_aggregate_to_their_minute() {
        let s = btc();
        let now = T0 + DAY_MS;
        let m0 = Interval::M1.ceil(T0);
        let m = s.klines(Market::Spot, Interval::M1, first(m0, m0, 1), now);
        let secs = s.klines(
            Market::Spot,
            Interval::S1,
            first(m0, m0 + 59_999, 1000),
            now,
        );
        assert_eq!(secs.len(), 60);
        assert_eq!(secs[0].open, m[0].open);
        assert_eq!(secs[59].close, m[0].close);
        let vol: f64 = secs.iter().map(|r| num(&r.volume)).sum();
        assert!((vol - num(&m[0].volume)).abs() < 1e-6);
        assert_eq!(secs.iter().map(|r| r.trades).sum::<u64>(), m[0].trades);
        let hi = secs.iter().map(|r| num(&r.high)).fold(0.0, f64::max);
        assert_eq!(hi, num(&m[0].high));
    }

    #[test]
    fn outage_removes_minutes_and_cuts_the_close() {
        let mut spec = SymbolSpec::synthetic("X", "X", "USDT", T0 - DAY_MS, 10.0);
        let hour = Interval::H1.ceil(T0);
        let cut = hour + 39 * MINUTE_MS + 41_647;
        spec.outages.push(Outage {
            start_ms: cut,
            end_ms: hour + 2 * HOUR_MS,
        });
        let s = data(spec);
        let now = T0 + DAY_MS;
        let h = s.klines(
            Market::Spot,
            Interval::H1,
            first(hour, hour + 3 * HOUR_MS - 1, 10),
            now,
        );
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].close_time, cut - 1);
        assert_eq!(h[1].open_time, hour + 2 * HOUR_MS);
        let m = s.klines(
            Market::Spot,
            Interval::M1,
            first(hour, hour + HOUR_MS, 100),
            now,
        );
        assert_eq!(m.len(), 40);
        assert_eq!(m[39].close_time, cut - 1);
    }

    #[test]
    fn forming_candle_changes_until_it_closes() {
        let s = btc();
        let open = Interval::H1.ceil(T0);
        let at = |now| s.klines(Market::Spot, Interval::H1, first(open, open, 1), now);
        let a = at(open + 10 * MINUTE_MS + 5_000);
        let b = at(open + 40 * MINUTE_MS);
        let closed = at(open + 2 * HOUR_MS);
        assert_ne!(a[0].volume, b[0].volume);
        assert_ne!(b[0], closed[0]);
        assert_eq!(closed[0], at(open + 3 * HOUR_MS)[0]);
        assert!(num(&a[0].volume) < num(&closed[0].volume));
    }

    #[test]
    fn parses_fixture_formats() {
        let csv = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n\
                   1735689600000000,1.0,2.0,0.5,1.5,10,1735693199999999,15,3,5,7.5,0\n";
        let rows = parse_rows(csv).unwrap();
        assert_eq!(rows[0].open_time, 1_735_689_600_000);
        assert_eq!(rows[0].close_time, 1_735_693_199_999);
        let json = r#"[[1,"1","2","0.5","1.5","10",2,"15",3,"5","7.5","0"]]"#;
        assert_eq!(parse_rows(json).unwrap()[0].trades, 3);
        assert!(parse_rows("1,2,3\n").is_err());
    }

    proptest! {
        #[test]
        fn every_interval_is_ohlc_consistent(i in proptest::sample::select(Interval::ALL.to_vec()), off in 0i64..(300 * DAY_MS)) {
            let s = btc();
            let now = T0 + 400 * DAY_MS;
            let limit = if i == Interval::S1 || i == Interval::M1 { 50 } else { 3 };
            let rows = s.klines(Market::Spot, i, first(T0 - 390 * DAY_MS + off, now, limit), now);
            prop_assert!(!rows.is_empty());
            for r in rows {
                let (o, h, l, c) = (num(&r.open), num(&r.high), num(&r.low), num(&r.close));
                prop_assert!(h >= o.max(c) && l <= o.min(c) && l > 0.0);
                prop_assert!(num(&r.taker_buy_base_volume) <= num(&r.volume));
                prop_assert!(i.is_aligned(r.open_time));
                prop_assert_eq!(r.close_time, i.close_time(r.open_time));
            }
        }
    }
}

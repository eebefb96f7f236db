//! Transform: exchange rows (JSON `/klines` pages) into typed columns ([`KlineRows`]) and Arrow
//! record batches, plus the quality checks. Pure, synchronous code: no I/O, no async runtime.
//!
//! - [`parse_klines`] scans one page body into [`KlineRows`] (columnar, times in ms).
//! - [`schema`] is the one definition of the output schema and Parquet metadata.
//! - [`quality`] checks rows against the interval grid and the OHLCV invariants.
//! - [`ticker`] and [`depth`] type the snapshot datasets (`/ticker/price`, `/depth`).
//!
//! This module does not decide where rows go (that is [`crate::load`]).
//!
//! # Time units
//!
//! Inside [`KlineRows`] times are always `i64` milliseconds since the epoch, UTC. Binance can
//! answer in microseconds (spot `timeUnit=MICROSECOND`, and the data.binance.vision spot files
//! since 2025). The unit is detected per page: open times `>= 10^14` are microseconds (in ms
//! that would be the year 5138; in µs, 1973), so the whole page is divided by 1000
//! (floor division, so a µs close time `…59_999_999` becomes `…59_999` ms). A page that mixes
//! both units is a [`ParseError`].

pub mod depth;
pub mod parse;
pub mod quality;
pub mod schema;
pub mod ticker;

use std::fmt;

use arrow_array::RecordBatch;

use crate::config::{PriceType, TransformOptions};
use crate::interval::Interval;
use crate::market::Market;
use crate::symbol::Symbol;
use crate::time::fmt_ms;

pub use quality::QualityReport;
pub use schema::SchemaError;

/// What a page is about: needed to type its values and to name it in errors.
#[derive(Debug, Clone, Copy)]
pub struct KlineContext<'a> {
    /// The market the page came from.
    pub market: Market,
    /// The symbol requested.
    pub symbol: &'a Symbol,
    /// The interval requested.
    pub interval: Interval,
    /// Typing options (prices as float64 or decimal, output time unit).
    pub options: &'a TransformOptions,
}

/// A page (or a field of it) that could not be parsed. Names the symbol, interval, row, the
/// row's open time when it was read, and the field (see [`ParseErrorInfo`], reachable through
/// `Deref`). Boxed so that `Result<KlineRows, ParseError>` stays small.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(Box<ParseErrorInfo>);

/// The details of a [`ParseError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse klines page for `{symbol}` `{interval}`{location}: {reason}")]
pub struct ParseErrorInfo {
    /// The symbol of the page.
    pub symbol: String,
    /// The interval of the page.
    pub interval: Interval,
    /// Index of the offending row in the page, when the error is inside a row.
    pub row: Option<usize>,
    /// The offending row's open time (ms), when it was read.
    pub open_time: Option<i64>,
    /// The offending field (`open_time`, `high`, …), when the error is inside a field.
    pub field: Option<&'static str>,
    /// What is wrong, with the offending value in backticks.
    pub reason: String,
    location: String,
}

impl std::ops::Deref for ParseError {
    type Target = ParseErrorInfo;
    fn deref(&self) -> &ParseErrorInfo {
        &self.0
    }
}

impl ParseError {
    fn new(
        ctx: &KlineContext<'_>,
        row: Option<usize>,
        open_time: Option<i64>,
        field: Option<&'static str>,
        reason: String,
    ) -> Self {
        use std::fmt::Write as _;
        let mut location = String::new();
        if let Some(r) = row {
            let _ = write!(location, " at row {r}");
        }
        if let Some(t) = open_time {
            let _ = write!(location, " (open time `{}`)", fmt_ms(t));
        }
        if let Some(f) = field {
            let _ = write!(location, ", field `{f}`");
        }
        ParseError(Box::new(ParseErrorInfo {
            symbol: ctx.symbol.to_string(),
            interval: ctx.interval,
            row,
            open_time,
            field,
            reason,
            location,
        }))
    }
}

/// A price or volume column: `f64`, or exact decimals as `i128` with scale 8 (`1.5` is
/// `150_000_000`), as chosen by `transform.prices`.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// `transform.prices: float64`.
    Float64(Vec<f64>),
    /// `transform.prices: decimal`: `Decimal128(38, 8)` values.
    Decimal(Vec<i128>),
}

impl Column {
    /// Values held without reallocating.
    pub fn capacity(&self) -> usize {
        match self {
            Column::Float64(v) => v.capacity(),
            Column::Decimal(v) => v.capacity(),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Column::Float64(v) => v.len(),
            Column::Decimal(v) => v.len(),
        }
    }

    /// Whether the column is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Which price type this column holds.
    pub fn price_type(&self) -> PriceType {
        match self {
            Column::Float64(_) => PriceType::Float64,
            Column::Decimal(_) => PriceType::Decimal,
        }
    }

    /// Value `i` as `f64` (decimals divided by 10^8; for statistics, not for storage).
    pub fn f64_at(&self, i: usize) -> f64 {
        match self {
            Column::Float64(v) => v[i],
            Column::Decimal(v) => v[i] as f64 / 1e8,
        }
    }

    /// Whether values `i` of `self` and `j` of `other` are equal (same type required; values
    /// of different types are never equal).
    pub fn value_eq(&self, i: usize, other: &Column, j: usize) -> bool {
        match (self, other) {
            // Bitwise float equality: a re-sent identical candle is equal, and -0.0 vs 0.0 or
            // NaN (never produced by the parser) would count as a change.
            (Column::Float64(a), Column::Float64(b)) => a[i].to_bits() == b[j].to_bits(),
            (Column::Decimal(a), Column::Decimal(b)) => a[i] == b[j],
            _ => false,
        }
    }

    fn slice(&self, start: usize, len: usize) -> Column {
        match self {
            Column::Float64(v) => Column::Float64(v[start..start + len].to_vec()),
            Column::Decimal(v) => Column::Decimal(v[start..start + len].to_vec()),
        }
    }

    fn take(&self, idx: &[usize]) -> Column {
        match self {
            Column::Float64(v) => Column::Float64(idx.iter().map(|&i| v[i]).collect()),
            Column::Decimal(v) => Column::Decimal(idx.iter().map(|&i| v[i]).collect()),
        }
    }

    fn append(&mut self, other: Column) -> Result<(), PriceType> {
        match (self, other) {
            (Column::Float64(a), Column::Float64(mut b)) => a.append(&mut b),
            (Column::Decimal(a), Column::Decimal(mut b)) => a.append(&mut b),
            (_, other) => return Err(other.price_type()),
        }
        Ok(())
    }
}

/// Typed klines of one market × symbol × interval, column by column. Times are ms since the
/// epoch, UTC (see the module docs for µs pages). The exchange's "ignore" field is dropped.
///
/// All columns have the same length; all price/volume columns have the same [`PriceType`].
#[derive(Debug, Clone, PartialEq)]
pub struct KlineRows {
    /// Candle open times, ms.
    pub open_time: Vec<i64>,
    /// Candle close times as the exchange sent them, ms.
    pub close_time: Vec<i64>,
    /// Open price.
    pub open: Column,
    /// High price.
    pub high: Column,
    /// Low price.
    pub low: Column,
    /// Close price.
    pub close: Column,
    /// Base asset volume.
    pub volume: Column,
    /// Quote asset volume.
    pub quote_volume: Column,
    /// Taker buy base asset volume.
    pub taker_buy_base_volume: Column,
    /// Taker buy quote asset volume.
    pub taker_buy_quote_volume: Column,
    /// Number of trades.
    pub trades: Vec<u64>,
}

/// Names of the eight price/volume columns, in schema order (see [`KlineRows::columns`]).
pub const VALUE_COLUMNS: [&str; 8] = [
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
];

impl KlineRows {
    /// These rows as a file of a kline family without volumes reads them back: volumes, quote
    /// volumes, taker volumes and trade counts zero (see
    /// [`schema::project_family`]). Merging and statistics then see what is stored.
    #[must_use]
    pub fn without_volumes(mut self) -> Self {
        let n = self.len();
        let zeros = |c: &mut Column| {
            *c = match c {
                Column::Float64(_) => Column::Float64(vec![0.0; n]),
                Column::Decimal(_) => Column::Decimal(vec![0; n]),
            };
        };
        for c in [
            &mut self.volume,
            &mut self.quote_volume,
            &mut self.taker_buy_base_volume,
            &mut self.taker_buy_quote_volume,
        ] {
            zeros(c);
        }
        self.trades = vec![0; n];
        self
    }

    /// No rows, with price columns of type `prices`.
    pub fn empty(prices: PriceType) -> Self {
        Self::with_capacity(prices, 0)
    }

    /// No rows, with room for `cap`.
    pub fn with_capacity(prices: PriceType, cap: usize) -> Self {
        let c = || parse::empty_column(prices, cap);
        KlineRows {
            open_time: Vec::with_capacity(cap),
            close_time: Vec::with_capacity(cap),
            open: c(),
            high: c(),
            low: c(),
            close: c(),
            volume: c(),
            quote_volume: c(),
            taker_buy_base_volume: c(),
            taker_buy_quote_volume: c(),
            trades: Vec::with_capacity(cap),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.open_time.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.open_time.is_empty()
    }

    /// The price type of the value columns.
    pub fn price_type(&self) -> PriceType {
        self.open.price_type()
    }

    /// The eight price/volume columns in schema order ([`VALUE_COLUMNS`]).
    pub fn columns(&self) -> [&Column; 8] {
        [
            &self.open,
            &self.high,
            &self.low,
            &self.close,
            &self.volume,
            &self.quote_volume,
            &self.taker_buy_base_volume,
            &self.taker_buy_quote_volume,
        ]
    }

    /// The eight price/volume columns, mutably, in schema order.
    pub fn columns_mut(&mut self) -> [&mut Column; 8] {
        [
            &mut self.open,
            &mut self.high,
            &mut self.low,
            &mut self.close,
            &mut self.volume,
            &mut self.quote_volume,
            &mut self.taker_buy_base_volume,
            &mut self.taker_buy_quote_volume,
        ]
    }

    /// How many rows these columns hold without reallocating (the least of the columns').
    pub fn capacity(&self) -> usize {
        let times = self
            .open_time
            .capacity()
            .min(self.close_time.capacity())
            .min(self.trades.capacity());
        self.columns()
            .iter()
            .map(|c| c.capacity())
            .fold(times, usize::min)
    }

    /// Append `other`'s rows after these.
    ///
    /// # Panics
    /// If the price types differ (a programming error: one task has one price type).
    pub fn append(&mut self, mut other: KlineRows) {
        assert_eq!(
            self.price_type(),
            other.price_type(),
            "appending klines of different price types"
        );
        self.open_time.append(&mut other.open_time);
        self.close_time.append(&mut other.close_time);
        self.trades.append(&mut other.trades);
        let KlineRows {
            open,
            high,
            low,
            close,
            volume,
            quote_volume,
            taker_buy_base_volume,
            taker_buy_quote_volume,
            ..
        } = other;
        let others = [
            open,
            high,
            low,
            close,
            volume,
            quote_volume,
            taker_buy_base_volume,
            taker_buy_quote_volume,
        ];
        for (mine, theirs) in self.columns_mut().into_iter().zip(others) {
            // Types were checked above for `open`; every column shares it.
            let _ = mine.append(theirs);
        }
    }

    /// Rows `start..start + len` as a new value.
    ///
    /// # Panics
    /// If the range is out of bounds.
    #[must_use]
    pub fn slice(&self, start: usize, len: usize) -> KlineRows {
        let [open, high, low, close, volume, quote_volume, tbb, tbq] =
            self.columns().map(|c| c.slice(start, len));
        KlineRows {
            open_time: self.open_time[start..start + len].to_vec(),
            close_time: self.close_time[start..start + len].to_vec(),
            open,
            high,
            low,
            close,
            volume,
            quote_volume,
            taker_buy_base_volume: tbb,
            taker_buy_quote_volume: tbq,
            trades: self.trades[start..start + len].to_vec(),
        }
    }

    /// The rows at `idx`, in that order.
    ///
    /// # Panics
    /// If an index is out of bounds.
    #[must_use]
    pub fn take(&self, idx: &[usize]) -> KlineRows {
        let [open, high, low, close, volume, quote_volume, tbb, tbq] =
            self.columns().map(|c| c.take(idx));
        KlineRows {
            open_time: idx.iter().map(|&i| self.open_time[i]).collect(),
            close_time: idx.iter().map(|&i| self.close_time[i]).collect(),
            open,
            high,
            low,
            close,
            volume,
            quote_volume,
            taker_buy_base_volume: tbb,
            taker_buy_quote_volume: tbq,
            trades: idx.iter().map(|&i| self.trades[i]).collect(),
        }
    }

    /// The rows whose open time lies in `[start, end)`, in their current order.
    #[must_use]
    pub fn retain_range(&self, start: i64, end: i64) -> KlineRows {
        let idx: Vec<usize> = (0..self.len())
            .filter(|&i| (start..end).contains(&self.open_time[i]))
            .collect();
        self.take(&idx)
    }

    /// The rows whose candle has closed by `now_ms` (`close_time < now_ms`): what is written
    /// unless `transform.include_forming` is set. The still-forming candle is the last one of
    /// the newest page.
    #[must_use]
    pub fn closed_before(&self, now_ms: i64) -> KlineRows {
        if self.close_time.iter().all(|&c| c < now_ms) {
            return self.clone();
        }
        let idx: Vec<usize> = (0..self.len())
            .filter(|&i| self.close_time[i] < now_ms)
            .collect();
        self.take(&idx)
    }

    /// Whether open times are strictly increasing (sorted, no duplicates).
    pub fn is_strictly_sorted(&self) -> bool {
        self.open_time.windows(2).all(|w| w[0] < w[1])
    }

    /// Whether row `i` of `self` and row `j` of `other` hold the same values in every column.
    pub fn row_eq(&self, i: usize, other: &KlineRows, j: usize) -> bool {
        self.open_time[i] == other.open_time[j]
            && self.close_time[i] == other.close_time[j]
            && self.trades[i] == other.trades[j]
            && self
                .columns()
                .iter()
                .zip(other.columns())
                .all(|(a, b)| a.value_eq(i, b, j))
    }

    /// Build the Arrow record batch of these rows in the output schema ([`schema`]).
    pub fn to_record_batch(&self, ctx: &KlineContext<'_>) -> Result<RecordBatch, SchemaError> {
        schema::to_record_batch(self, ctx)
    }
}

/// Parse one exchange page (the JSON body of `/klines`: an array of 12-element arrays) into
/// typed rows.
///
/// Values are parsed from the borrowed text in one pass: prices and volumes as correctly rounded
/// `f64` or exact `Decimal128(38, 8)` integers per `ctx.options.prices`; times as ms (µs pages
/// are detected and converted, see the module docs). A value that does not parse (wrong field
/// count, non-numeric string, NaN or infinity, a negative price or trade count, too many
/// decimals, a body that is not an array) is a [`ParseError`], never a panic. Rows are returned
/// in page order; checks on order and the grid are [`quality::check`]'s job.
pub fn parse_klines(body: &[u8], ctx: &KlineContext<'_>) -> Result<KlineRows, ParseError> {
    parse::parse_page(body, ctx, false)
}

/// [`parse_klines`] for premium-index klines, whose OHLC values are rates that can be
/// negative (every other check is the same).
pub fn parse_signed_klines(body: &[u8], ctx: &KlineContext<'_>) -> Result<KlineRows, ParseError> {
    parse::parse_page(body, ctx, true)
}

impl fmt::Display for KlineRows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.open_time.first(), self.open_time.last()) {
            (Some(a), Some(b)) => {
                write!(f, "{} klines {}..={}", self.len(), fmt_ms(*a), fmt_ms(*b))
            }
            _ => f.write_str("0 klines"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn opts(prices: PriceType) -> TransformOptions {
        TransformOptions {
            prices,
            ..TransformOptions::default()
        }
    }

    fn parse(body: &str, prices: PriceType) -> Result<KlineRows, ParseError> {
        let sym: Symbol = "BTCUSDT".parse().unwrap();
        let o = opts(prices);
        let ctx = KlineContext {
            market: Market::Spot,
            symbol: &sym,
            interval: Interval::H1,
            options: &o,
        };
        parse_klines(body.as_bytes(), &ctx)
    }

    const ROW: &str = r#"[1672531200000,"16541.77000000","16545.70000000","16508.39000000","16529.67000000","4364.83570000",1672534799999,"72146594.60310200",96626,"2233.22772000","36912922.04151300","0"]"#;

    #[test]
    fn parses_a_compact_page() {
        let rows = parse(&format!("[{ROW},{ROW}]"), PriceType::Float64).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.open_time[0], 1_672_531_200_000);
        assert_eq!(rows.close_time[1], 1_672_534_799_999);
        assert_eq!(rows.high, Column::Float64(vec![16545.7, 16545.7]));
        assert_eq!(rows.trades, vec![96626, 96626]);
        let d = parse(&format!("[{ROW}]"), PriceType::Decimal).unwrap();
        assert_eq!(d.quote_volume, Column::Decimal(vec![7_214_659_460_310_200]));
    }

    #[test]
    fn accepts_whitespace_and_numbers_in_either_spelling() {
        let body =
            "[ [ \"1672531200000\" , 1.5, 2 ,1, 1.5 ,\n 0 ,1672534799999,0,\"0\",0,0, 0 ] ]\n";
        let rows = parse(body, PriceType::Decimal).unwrap();
        assert_eq!(rows.open, Column::Decimal(vec![150_000_000]));
        assert!(parse("[]", PriceType::Float64).unwrap().is_empty());
        assert!(parse(" [ ] ", PriceType::Float64).unwrap().is_empty());
    }

    #[test]
    fn detects_microsecond_pages() {
        let body = r#"[[1672531200000000,"1","1","1","1","0",1672534799999999,"0",0,"0","0","0"]]"#;
        let rows = parse(body, PriceType::Float64).unwrap();
        assert_eq!(rows.open_time, vec![1_672_531_200_000]);
        assert_eq!(rows.close_time, vec![1_672_534_799_999]);
        let mixed = format!(
            r#"[[1672531200000000,"1","1","1","1","0",1672534799999999,"0",0,"0","0","0"],{ROW}]"#
        );
        let e = parse(&mixed, PriceType::Float64).unwrap_err();
        assert_eq!(e.field, Some("open_time"));
        assert!(e.reason.contains("mixes"), "{e}");
    }

    #[test]
    fn bad_input_is_an_error_naming_the_field() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("{}", None, "not a JSON array"),
            ("", None, "not a JSON array"),
            ("[1]", None, "expected a kline array"),
            ("[[1672531200000,\"1\"]]", Some("high"), "2 fields"),
            (
                &ROW.replace("\"16545.70000000\"", "\"abc\""),
                Some("high"),
                "`abc` is not a number",
            ),
            (
                &ROW.replace("\"16545.70000000\"", "\"NaN\""),
                Some("high"),
                "NaN",
            ),
            (
                &ROW.replace("\"16508.39000000\"", "\"-1\""),
                Some("low"),
                "negative price",
            ),
            (&ROW.replace("96626", "-3"), Some("trades"), "negative"),
            (
                &ROW.replace(",\"0\"]", ",\"0\",1]"),
                Some("ignore"),
                "more than 12",
            ),
            (
                &ROW.replace("96626", "null"),
                Some("trades"),
                "not an integer",
            ),
            (
                &ROW.replace("\"16545.70000000\"", "[1]"),
                Some("high"),
                "expected a number",
            ),
            (&format!("x{ROW}"), None, "not a JSON array"),
            (&format!("[{ROW}"), None, "expected `,` or `]`"),
            (&format!("[{ROW}] x"), None, "trailing"),
        ];
        for (body, field, msg) in cases {
            let body = if body.starts_with("[1672531200000,") {
                format!("[{body}]")
            } else {
                (*body).to_owned()
            };
            let e = parse(&body, PriceType::Float64).unwrap_err();
            assert_eq!(e.field, *field, "{body}: {e}");
            let text = e.to_string();
            assert!(text.contains(msg), "{body}: {text}");
            assert!(text.contains("`BTCUSDT` `1h`"), "{text}");
            if field.is_some_and(|f| f != "open_time") {
                assert!(
                    text.contains("open time `2023-01-01T00:00:00.000Z`"),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn slice_take_append_retain() {
        let rows = parse(
            &format!("[{ROW},{}]", ROW.replace("1672531200000", "1672534800000")),
            PriceType::Decimal,
        )
        .unwrap();
        let mut a = rows.slice(0, 1);
        let b = rows.slice(1, 1);
        a.append(b);
        assert_eq!(a, rows);
        assert_eq!(
            rows.take(&[1, 0]).open_time,
            vec![1_672_534_800_000, 1_672_531_200_000]
        );
        assert_eq!(rows.retain_range(1_672_534_800_000, i64::MAX).len(), 1);
        // Both rows carry close time 1672534799999: forming until just after it.
        assert_eq!(rows.closed_before(1_672_534_799_999).len(), 0);
        assert_eq!(rows.closed_before(1_672_534_800_000).len(), 2);
        assert!(rows.row_eq(0, &rows, 0));
        assert!(!rows.row_eq(0, &rows, 1));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse(&String::from_utf8_lossy(&body), PriceType::Decimal);
        }

        #[test]
        fn truncated_pages_never_panic(cut in 0usize..ROW.len() + 2) {
            let body = format!("[{ROW}]");
            let _ = parse(&body[..cut.min(body.len())], PriceType::Float64);
        }
    }
}

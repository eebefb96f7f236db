//! The page scanner: one pass over a `/klines` JSON body, no `serde_json::Value` tree and no
//! per-value allocation. Owns JSON tokenising, number syntax, exact decimal parsing and the
//! µs-page detection; it does not own the column layout (see [`super::KlineRows`]).
//!
//! Accepted input: a JSON array of 12-element arrays. Each field may be a JSON number or a JSON
//! string holding a number (Binance sends ints for the times and the trade count, strings for
//! prices and volumes; other clients re-encode them), so both spellings are accepted for every
//! field. The 12th field ("ignore") may be any scalar and is dropped.

use super::{Column, KlineContext, KlineRows, ParseError};
use crate::config::PriceType;

/// Open times at or above this are microseconds (10^14 ms is the year 5138; 10^14 µs is 1973).
pub const MICROS_THRESHOLD: i64 = 100_000_000_000_000;

/// Decimal scale of [`Column::Decimal`] values (Binance's 8 decimal places).
pub const DECIMAL_SCALE: u32 = 8;
/// The largest absolute value `Decimal128(38, 8)` holds (38 digits).
const DECIMAL_MAX: i128 = 10_i128.pow(38) - 1;

/// Field names in exchange order (index = position in the 12-element array).
pub const FIELD_NAMES: [&str; 12] = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
    "ignore",
];

/// One scalar JSON token: the raw text of a number or the contents of a string.
#[derive(Clone, Copy)]
struct Token<'a> {
    text: &'a [u8],
    /// The string contained a backslash escape (never valid in a numeric field).
    escaped: bool,
}

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.pos) {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.pos).copied()
    }

    fn describe(&self) -> String {
        match self.b.get(self.pos) {
            None => "end of input".to_owned(),
            Some(c) if c.is_ascii_graphic() => format!("`{}`", char::from(*c)),
            Some(c) => format!("byte 0x{c:02x}"),
        }
    }

    /// A scalar: a string (contents) or a bare number/literal.
    fn token(&mut self) -> Result<Token<'a>, String> {
        self.ws();
        match self.b.get(self.pos) {
            Some(b'"') => {
                let start = self.pos + 1;
                let mut i = start;
                let mut escaped = false;
                loop {
                    let rest = self.b.get(i..).unwrap_or_default();
                    match rest.iter().position(|&c| c == b'"' || c == b'\\') {
                        None => return Err("unterminated string".to_owned()),
                        Some(n) if rest[n] == b'"' => {
                            i += n;
                            break;
                        }
                        Some(n) => {
                            escaped = true;
                            i += n + 2;
                        }
                    }
                }
                self.pos = i + 1;
                Ok(Token {
                    text: &self.b[start..i],
                    escaped,
                })
            }
            Some(b'[' | b'{') => Err(format!(
                "expected a number or string, found {}",
                self.describe()
            )),
            Some(_) => {
                let start = self.pos;
                while let Some(c) = self.b.get(self.pos) {
                    if matches!(c, b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t' | b'"') {
                        break;
                    }
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(format!("expected a value, found {}", self.describe()));
                }
                Ok(Token {
                    text: &self.b[start..self.pos],
                    escaped: false,
                })
            }
            None => Err("unexpected end of input".to_owned()),
        }
    }
}

/// Row-level failure before it is given its context.
struct FieldError {
    field: usize,
    reason: String,
}

fn show(text: &[u8]) -> String {
    let s = String::from_utf8_lossy(text);
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out.escape_debug().to_string()
}

/// Parse a JSON integer token (`-?[0-9]+`) to `i64`.
fn parse_int(t: Token<'_>) -> Result<i64, String> {
    let text = t.text;
    let (neg, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        _ => (false, text),
    };
    if t.escaped || digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!("`{}` is not an integer", show(text)));
    }
    let mut v: i64 = 0;
    for d in digits {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(d - b'0')))
            .ok_or_else(|| format!("`{}` is out of range", show(text)))?;
    }
    Ok(if neg { -v } else { v })
}

/// The parts of a number in JSON syntax: `-?digits(.digits)?([eE][+-]?digits)?`.
struct NumParts<'a> {
    neg: bool,
    int: &'a [u8],
    frac: &'a [u8],
    exp: i32,
}

fn split_number(t: Token<'_>) -> Result<NumParts<'_>, String> {
    let bad = || format!("`{}` is not a number", show(t.text));
    if t.escaped {
        return Err(bad());
    }
    let mut s = t.text;
    let neg = s.first() == Some(&b'-');
    if neg {
        s = &s[1..];
    }
    let int_len = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if int_len == 0 {
        return Err(bad());
    }
    let int = &s[..int_len];
    s = &s[int_len..];
    let mut frac: &[u8] = &[];
    if s.first() == Some(&b'.') {
        let n = s[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err(bad());
        }
        frac = &s[1..=n];
        s = &s[n + 1..];
    }
    let mut exp = 0i32;
    if matches!(s.first(), Some(b'e' | b'E')) {
        s = &s[1..];
        let eneg = s.first() == Some(&b'-');
        if matches!(s.first(), Some(b'-' | b'+')) {
            s = &s[1..];
        }
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) || s.len() > 4 {
            return Err(bad());
        }
        for d in s {
            exp = exp * 10 + i32::from(d - b'0');
        }
        if eneg {
            exp = -exp;
        }
        s = &[];
    }
    if !s.is_empty() {
        return Err(bad());
    }
    Ok(NumParts {
        neg,
        int,
        frac,
        exp,
    })
}

/// Exact powers of ten as `f64` (every one up to 10^22 is representable).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// What the one-pass float scanner found.
enum Scanned {
    /// A plain decimal inside the fast path: the correctly rounded value.
    Value(f64),
    /// A plain decimal (`-?d+(.d+)?`) with more than 15 significant digits: valid syntax, to be
    /// rounded by the standard library.
    Plain,
    /// Anything else (exponent, bad syntax): the validating slow path decides.
    Other,
}

/// Clinger's fast path in one pass over the text: with at most 15 significant digits the
/// digits form an integer below 2^53 and `10^k` (k <= 22) is exact, so one IEEE division is the
/// correctly rounded result. Applies to the common `-?d+(.d+)?` with at
/// most 15 significant digits (trailing zeros of the fraction do not count).
#[inline]
fn scan_f64(text: &[u8]) -> Scanned {
    let (neg, s) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        _ => (false, text),
    };
    let mut m: u64 = 0;
    let mut sig = 0u32;
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        if m != 0 || c != b'0' {
            sig += 1;
        }
        if sig <= 15 {
            m = m * 10 + u64::from(c - b'0');
        }
        i += 1;
    }
    if i == 0 {
        return Scanned::Other;
    }
    let mut frac_len = 0usize;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        let mut zeros = 0usize;
        while let Some(&c) = s.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            if c == b'0' {
                zeros += 1;
            } else if sig <= 15 {
                // Apply the zeros seen since the last non-zero digit, then this digit.
                for _ in 0..zeros {
                    m *= 10;
                    if m != 0 {
                        sig += 1;
                    }
                }
                frac_len += zeros + 1;
                zeros = 0;
                m = m * 10 + u64::from(c - b'0');
                sig += 1;
            } else {
                sig += 1;
            }
            i += 1;
        }
        if i == start {
            return Scanned::Other;
        }
    }
    if i != s.len() {
        return Scanned::Other;
    }
    if sig > 15 || frac_len >= POW10.len() {
        return Scanned::Plain;
    }
    let v = m as f64 / POW10[frac_len];
    Scanned::Value(if neg { -v } else { v })
}

#[cfg(test)]
fn fast_f64_text(text: &[u8]) -> Option<f64> {
    match scan_f64(text) {
        Scanned::Value(v) => Some(v),
        Scanned::Plain | Scanned::Other => None,
    }
}

/// Parse a decimal token to `f64` (correctly rounded; NaN, inf and overflow rejected).
fn parse_f64(t: Token<'_>) -> Result<f64, String> {
    if t.escaped {
        return Err(format!("`{}` is not a number", show(t.text)));
    }
    match scan_f64(t.text) {
        Scanned::Value(v) => return Ok(v),
        Scanned::Plain => {}
        Scanned::Other => {
            split_number(t)?;
        }
    }
    // Syntax was checked above, so the text is ASCII and a plain decimal literal.
    let s =
        std::str::from_utf8(t.text).map_err(|_| format!("`{}` is not a number", show(t.text)))?;
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{}` is not a number", show(t.text)))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("`{}` is out of range", show(t.text)))
    }
}

/// Parse decimal text (`"2844286547.50404090"`) exactly to an `i128` with scale 8, as the
/// parser does in `decimal` mode (no float round trip). More than 8 non-zero decimal places, or
/// more than 38 digits, is an error rather than a silent rounding.
pub fn parse_decimal_str(text: &str) -> Result<i128, String> {
    parse_decimal(Token {
        text: text.as_bytes(),
        escaped: false,
    })
}

/// One pass over the common `-?d+(.d{1,8})?` with at most 18 digits: `None` otherwise (the
/// validating slow path then decides).
#[inline]
fn fast_decimal_text(text: &[u8]) -> Option<i128> {
    const POW: [u64; 9] = [
        1,
        10,
        100,
        1_000,
        10_000,
        100_000,
        1_000_000,
        10_000_000,
        100_000_000,
    ];
    let (neg, s) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        _ => (false, text),
    };
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut m: u64 = 0;
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        m = m * 10 + u64::from(c - b'0');
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let mut frac_len = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        while let Some(&c) = s.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            m = m * 10 + u64::from(c - b'0');
            i += 1;
            frac_len += 1;
        }
        if frac_len == 0 || frac_len > 8 {
            return None;
        }
    }
    if i != s.len() {
        return None;
    }
    let v = i128::from(m) * i128::from(POW[8 - frac_len]);
    Some(if neg { -v } else { v })
}

fn parse_decimal(t: Token<'_>) -> Result<i128, String> {
    if !t.escaped
        && let Some(v) = fast_decimal_text(t.text)
    {
        return Ok(v);
    }
    parse_decimal_slow(t)
}

/// The general exact parser (exponents, long fractions with trailing zeros, 38 digits).
fn parse_decimal_slow(t: Token<'_>) -> Result<i128, String> {
    let p = split_number(t)?;
    let overflow = || format!("`{}` does not fit Decimal128(38, 8)", show(t.text));
    // value = digits(int ++ frac) * 10^(exp - frac.len()); wanted: value * 10^8.
    let shift = i64::from(p.exp) - p.frac.len() as i64 + i64::from(DECIMAL_SCALE);
    let digits = p.int.iter().chain(p.frac.iter());
    let total = p.int.len() + p.frac.len();
    // Digits beyond the kept ones (when shift < 0) must all be zero.
    let keep = if shift < 0 {
        total.saturating_sub(shift.unsigned_abs() as usize)
    } else {
        total
    };
    let mut v: i128 = 0;
    for (i, d) in digits.enumerate() {
        let d = i128::from(d - b'0');
        if i < keep {
            if v == 0 && d == 0 {
                continue;
            }
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(d))
                .ok_or_else(overflow)?;
        } else if d != 0 {
            return Err(format!(
                "`{}` has more than {DECIMAL_SCALE} decimal places",
                show(t.text)
            ));
        }
    }
    if shift > 0 && v != 0 {
        let pow = u32::try_from(shift).map_err(|_| overflow())?;
        let m = 10_i128.checked_pow(pow).ok_or_else(overflow)?;
        v = v.checked_mul(m).ok_or_else(overflow)?;
    }
    if v > DECIMAL_MAX {
        return Err(overflow());
    }
    Ok(if p.neg { -v } else { v })
}

/// A price/volume value type: `f64` or exact `i128` (scale 8). Lets the row loop be
/// monomorphised per page instead of dispatching on the column type for every value.
trait Value: Copy + Default {
    fn parse(t: Token<'_>) -> Result<Self, String>;
    /// The value `m / 10^frac_len` (`frac_len <= 8`, `m < 10^18`), or `None` when this type
    /// cannot take it exactly (the general path then decides).
    fn from_fixed(m: u64, frac_len: usize) -> Option<Self>;
    /// `text`, already scanned as `d+(.d+)?` (at most 10 + 8 digits), where
    /// [`from_fixed`](Self::from_fixed) declined it.
    fn from_plain(text: &[u8]) -> Option<Self> {
        Self::parse(Token {
            text,
            escaped: false,
        })
        .ok()
    }
    fn is_negative(self) -> bool;
    fn vec(c: &mut Column) -> Option<&mut Vec<Self>>;
}

impl Value for f64 {
    #[inline]
    fn parse(t: Token<'_>) -> Result<Self, String> {
        parse_f64(t)
    }
    #[inline]
    fn from_fixed(m: u64, frac_len: usize) -> Option<Self> {
        // Clinger's fast path: m and 10^frac_len are exact, so one division rounds correctly.
        (m <= 1 << 53).then(|| m as f64 / POW10[frac_len])
    }
    #[inline]
    fn from_plain(text: &[u8]) -> Option<Self> {
        // Syntax known, so straight to the correctly rounded parser (Eisel-Lemire), without
        // the general path's second scan; at most 18 digits is always finite.
        std::str::from_utf8(text).ok()?.parse().ok()
    }
    #[inline]
    fn is_negative(self) -> bool {
        self < 0.0
    }
    fn vec(c: &mut Column) -> Option<&mut Vec<Self>> {
        match c {
            Column::Float64(v) => Some(v),
            Column::Decimal(_) => None,
        }
    }
}

impl Value for i128 {
    #[inline]
    fn parse(t: Token<'_>) -> Result<Self, String> {
        parse_decimal(t)
    }
    #[inline]
    fn from_fixed(m: u64, frac_len: usize) -> Option<Self> {
        Some(i128::from(m) * 10_i128.pow(DECIMAL_SCALE - frac_len as u32))
    }
    #[inline]
    fn is_negative(self) -> bool {
        self < 0
    }
    fn vec(c: &mut Column) -> Option<&mut Vec<Self>> {
        match c {
            Column::Decimal(v) => Some(v),
            Column::Float64(_) => None,
        }
    }
}

/// One parsed row before it is pushed.
#[derive(Clone, Copy)]
struct Row<T> {
    open_time: i64,
    close_time: i64,
    /// open, high, low, close, volume, quote_volume, taker base, taker quote.
    values: [T; 8],
    trades: u64,
}

/// Parse one page; see [`super::parse_klines`].
/// `signed` accepts negative OHLC values (premium-index klines, whose values are rates).
pub(super) fn parse_page(
    body: &[u8],
    ctx: &KlineContext<'_>,
    signed: bool,
) -> Result<KlineRows, ParseError> {
    let mut rows = KlineRows::with_capacity(ctx.options.prices, body.len() / 150 + 1);
    match ctx.options.prices {
        PriceType::Float64 => parse_page_typed::<f64>(body, ctx, &mut rows, signed)?,
        PriceType::Decimal => parse_page_typed::<i128>(body, ctx, &mut rows, signed)?,
    }
    Ok(rows)
}

fn parse_page_typed<T: Value>(
    body: &[u8],
    ctx: &KlineContext<'_>,
    rows: &mut KlineRows,
    signed: bool,
) -> Result<(), ParseError> {
    let mut sc = Scanner { b: body, pos: 0 };
    let page_err = |reason: String| ParseError::new(ctx, None, None, None, reason);
    if sc.peek() != Some(b'[') {
        return Err(page_err(format!(
            "the page is not a JSON array (found {})",
            sc.describe()
        )));
    }
    sc.pos += 1;
    let Some(mut cols) = Columns::<T>::of(rows) else {
        return Err(page_err("internal: column type mismatch".to_owned()));
    };
    let mut micros: Option<bool> = None;
    if sc.peek() == Some(b']') {
        sc.pos += 1;
    } else {
        loop {
            let row = cols.open_time.len();
            cols.push(page_row::<T>(&mut sc, ctx, row, &mut micros, signed)?);
            match sc.peek() {
                Some(b',') => sc.pos += 1,
                Some(b']') => {
                    sc.pos += 1;
                    break;
                }
                _ => {
                    return Err(page_err(format!(
                        "expected `,` or `]` after row {row}, found {}",
                        sc.describe()
                    )));
                }
            }
        }
    }
    if sc.peek().is_some() {
        return Err(page_err(format!(
            "trailing data after the array: {}",
            sc.describe()
        )));
    }
    Ok(())
}

/// Row `row` of a page, at its opening `[`: the fast path, else the general parser (which
/// also explains every error).
#[inline]
fn page_row<T: Value>(
    sc: &mut Scanner<'_>,
    ctx: &KlineContext<'_>,
    row: usize,
    micros: &mut Option<bool>,
    signed: bool,
) -> Result<Row<T>, ParseError> {
    if sc.peek() != Some(b'[') {
        return Err(ParseError::new(
            ctx,
            Some(row),
            None,
            None,
            format!("expected a kline array, found {}", sc.describe()),
        ));
    }
    sc.pos += 1;
    let mut fast = FastRow::<true> {
        b: sc.b,
        pos: sc.pos,
    };
    let mut fast_micros = *micros;
    if let Some(r) = fast.row::<T>(&mut fast_micros) {
        sc.pos = fast.pos;
        *micros = fast_micros;
        return Ok(r);
    }
    let mut first_open = None;
    parse_row::<T>(sc, micros, &mut first_open, signed).map_err(|e| {
        ParseError::new(
            ctx,
            Some(row),
            first_open,
            Some(FIELD_NAMES[e.field.min(11)]),
            e.reason,
        )
    })
}

/// After field `field`: a `,` (fields 0-10) or the closing `]` (field 11).
#[inline]
fn separator(sc: &mut Scanner<'_>, field: usize) -> Result<(), FieldError> {
    match sc.peek() {
        Some(b',') if field < 11 => sc.pos += 1,
        Some(b']') if field == 11 => sc.pos += 1,
        Some(b']') => {
            return Err(FieldError {
                field: field + 1,
                reason: format!("missing: the kline has {} fields, expected 12", field + 1),
            });
        }
        Some(b',') => {
            return Err(FieldError {
                field: 11,
                reason: "the kline has more than 12 fields".to_owned(),
            });
        }
        _ => {
            return Err(FieldError {
                field,
                reason: format!("expected `,` or `]`, found {}", sc.describe()),
            });
        }
    }
    Ok(())
}

/// A time field (0 or 6) in ms, checking the page's unit (see the module docs of `transform`).
#[inline]
fn time_field(
    sc: &mut Scanner<'_>,
    field: usize,
    micros: &mut Option<bool>,
) -> Result<i64, FieldError> {
    let fe = |reason: String| FieldError { field, reason };
    let raw = parse_int(sc.token().map_err(fe)?).map_err(fe)?;
    let ms = page_time_ms(raw, micros).ok_or_else(|| {
        fe(format!(
            "`{raw}` mixes millisecond and microsecond times in one page"
        ))
    })?;
    separator(sc, field)?;
    Ok(ms)
}

/// A time field's value in ms. The page's unit is decided by its first time (see
/// [`MICROS_THRESHOLD`]); `None` when `raw` is in the other unit.
#[inline]
fn page_time_ms(raw: i64, micros: &mut Option<bool>) -> Option<i64> {
    let is_us = raw >= MICROS_THRESHOLD;
    (*micros.get_or_insert(is_us) == is_us).then(|| if is_us { raw.div_euclid(1000) } else { raw })
}

/// A price (fields 1-4, never negative unless `signed`) or volume field.
#[inline]
fn value_field<T: Value>(
    sc: &mut Scanner<'_>,
    field: usize,
    signed: bool,
) -> Result<T, FieldError> {
    let fe = |reason: String| FieldError { field, reason };
    let t = sc.token().map_err(fe)?;
    let v = T::parse(t).map_err(fe)?;
    if field <= 4 && !signed && v.is_negative() {
        return Err(fe(format!("`{}` is a negative price", show(t.text))));
    }
    separator(sc, field)?;
    Ok(v)
}

/// Eight ASCII digits (most significant first) as their value, or `None` if any byte is not
/// a digit: a few multiplications instead of eight dependent steps (the SWAR method of
/// simdjson and fast_float).
#[inline]
fn eight_digits(b: &[u8]) -> Option<u64> {
    let chunk: [u8; 8] = b.get(..8)?.try_into().ok()?;
    let v = u64::from_le_bytes(chunk);
    // Every byte 0x30..=0x39: high nibble 3, and adding 6 does not carry into it.
    let all_digits = (v & 0xF0F0_F0F0_F0F0_F0F0)
        | ((v.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) >> 4)
        == 0x3333_3333_3333_3333;
    if !all_digits {
        return None;
    }
    let v = (v & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561) >> 8;
    let v = (v & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601) >> 16;
    Some((v & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001) >> 32)
}

/// The common shape of a page's rows, scanned without tokens: Binance's own rendering,
/// `[int,"d.d",…,int,"d.d",int,"d.d","d.d","…"]` with no whitespace, non-negative numbers,
/// at most 10 integer and 8 fraction digits. Anything else returns `None` and the row is
/// parsed by [`parse_row`], which also produces every error; the values are identical
/// either way (both are exact or correctly rounded).
///
/// `QUOTED` is the JSON page shape (values in quotes, the row closed by `]`); without it the
/// same scanner reads a data.binance.vision CSV line (bare values, the row ending with the
/// line): see [`push_csv_line`].
struct FastRow<'a, const QUOTED: bool> {
    b: &'a [u8],
    pos: usize,
}

impl<const QUOTED: bool> FastRow<'_, QUOTED> {
    #[inline]
    fn byte(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.pos) == Some(&c)).then(|| self.pos += 1)
    }

    /// A run of 1..=`max` digits as an integer, and its length.
    #[inline]
    fn digits(&mut self, max: usize) -> Option<(u64, usize)> {
        self.more_digits(self.pos, 0, max)
    }

    /// [`digits`](Self::digits) for a run that began at `start` and whose digits before
    /// `self.pos` have the value `v`.
    #[inline]
    fn more_digits(&mut self, start: usize, mut v: u64, max: usize) -> Option<(u64, usize)> {
        while let Some(&c) = self.b.get(self.pos) {
            if !c.is_ascii_digit() {
                break;
            }
            v = v * 10 + u64::from(c - b'0');
            self.pos += 1;
            if self.pos - start > max {
                return None;
            }
        }
        let n = self.pos - start;
        (n > 0).then_some((v, n))
    }

    /// A bare integer followed by `,`.
    #[inline]
    fn int(&mut self) -> Option<u64> {
        let (v, _) = self.digits(18)?;
        self.byte(b',')?;
        Some(v)
    }

    /// `"d+(.d+)?"` followed by `,` (or by `end`).
    #[inline]
    fn value<T: Value>(&mut self, end: u8) -> Option<T> {
        if QUOTED {
            self.byte(b'"')?;
        }
        let start = self.pos;
        let (int, _) = self.digits(10)?;
        let (m, frac_len) = if self.byte(b'.').is_some() {
            if let Some(f) = self.b.get(self.pos..).and_then(eight_digits) {
                self.pos += 8;
                (int * 100_000_000 + f, 8)
            } else {
                let (f, n) = self.digits(8)?;
                (int * 10u64.pow(n as u32) + f, n)
            }
        } else {
            (int, 0)
        };
        let text = &self.b[start..self.pos];
        if QUOTED {
            self.byte(b'"')?;
        }
        self.byte(end)?;
        // Digits beyond what the type takes exactly (a large f64 quote volume): this one
        // field goes through the correctly rounded parser, the row stays on this path.
        T::from_fixed(m, frac_len).or_else(|| T::from_plain(text))
    }

    /// [`int`](Self::int) for a number that usually has 8 digits or more (a time: 13 in ms,
    /// 16 in us): its first eight digits in one SWAR step, the rest one by one.
    #[inline]
    fn long_int(&mut self) -> Option<u64> {
        let start = self.pos;
        let head = self.b.get(start..).and_then(eight_digits);
        if head.is_some() {
            self.pos += 8;
        }
        let (v, _) = self.more_digits(start, head.unwrap_or(0), 18)?;
        self.byte(b',')?;
        Some(v)
    }

    /// A time in the page's unit (`micros`, decided by the first time seen), in ms.
    #[inline]
    fn time(&mut self, micros: &mut Option<bool>) -> Option<i64> {
        page_time_ms(i64::try_from(self.long_int()?).ok()?, micros)
    }

    /// One row from just after its `[` through its `]`.
    #[inline]
    fn row<T: Value>(&mut self, micros: &mut Option<bool>) -> Option<Row<T>> {
        let open_time = self.time(micros)?;
        let mut values = [T::default(); 8];
        for v in &mut values[..5] {
            *v = self.value(b',')?;
        }
        let close_time = self.time(micros)?;
        values[5] = self.value(b',')?;
        let trades = self.int()?;
        values[6] = self.value(b',')?;
        values[7] = self.value(b',')?;
        if QUOTED {
            // The ignored twelfth field: any string without escapes.
            self.byte(b'"')?;
            let len = self
                .b
                .get(self.pos..)?
                .iter()
                .position(|&c| c == b'"' || c == b'\\')?;
            self.pos += len;
            self.byte(b'"')?;
            self.byte(b']')?;
        } else {
            // The ignored twelfth field: the rest of the line, one plain field.
            let rest = self.b.get(self.pos..)?;
            // A single bare token, as the general parser takes it (anything else goes there).
            let bare = |c: &u8| {
                !matches!(
                    c,
                    b',' | b']' | b'}' | b'[' | b'{' | b'"' | b' ' | b'\n' | b'\r' | b'\t'
                )
            };
            if rest.is_empty() || !rest.iter().all(bare) {
                return None;
            }
            self.pos = self.b.len();
        }
        Some(Row {
            open_time,
            close_time,
            values,
            trades,
        })
    }
}

/// Parse the 12 fields of one row (the `[` is consumed). `first_open` is set as soon as the
/// open time is read, so errors in later fields can name it.
fn parse_row<T: Value>(
    sc: &mut Scanner<'_>,
    micros: &mut Option<bool>,
    first_open: &mut Option<i64>,
    signed: bool,
) -> Result<Row<T>, FieldError> {
    let open_time = time_field(sc, 0, micros)?;
    *first_open = Some(open_time);
    let mut values = [T::default(); 8];
    for (slot, field) in values[..5].iter_mut().zip(1..=5) {
        *slot = value_field(sc, field, signed)?;
    }
    let close_time = time_field(sc, 6, micros)?;
    values[5] = value_field(sc, 7, signed)?;
    let trades = {
        let fe = |reason: String| FieldError { field: 8, reason };
        let raw = parse_int(sc.token().map_err(fe)?).map_err(fe)?;
        let n = u64::try_from(raw)
            .map_err(|_| fe(format!("`{raw}` is negative; a trade count is >= 0")))?;
        separator(sc, 8)?;
        n
    };
    values[6] = value_field(sc, 9, signed)?;
    values[7] = value_field(sc, 10, signed)?;
    sc.token()
        .map_err(|reason| FieldError { field: 11, reason })?;
    separator(sc, 11)?;
    Ok(Row {
        open_time,
        close_time,
        values,
        trades,
    })
}

/// The typed columns of [`KlineRows`] of one value type, borrowed for pushing rows.
struct Columns<'r, T> {
    open_time: &'r mut Vec<i64>,
    close_time: &'r mut Vec<i64>,
    values: [&'r mut Vec<T>; 8],
    trades: &'r mut Vec<u64>,
}

impl<'r, T: Value> Columns<'r, T> {
    /// `None` when the rows' price type is not `T`.
    fn of(rows: &'r mut KlineRows) -> Option<Self> {
        let KlineRows {
            open_time,
            close_time,
            open,
            high,
            low,
            close,
            volume,
            quote_volume,
            taker_buy_base_volume,
            taker_buy_quote_volume,
            trades,
        } = rows;
        Some(Columns {
            open_time,
            close_time,
            values: [
                T::vec(open)?,
                T::vec(high)?,
                T::vec(low)?,
                T::vec(close)?,
                T::vec(volume)?,
                T::vec(quote_volume)?,
                T::vec(taker_buy_base_volume)?,
                T::vec(taker_buy_quote_volume)?,
            ],
            trades,
        })
    }

    #[inline]
    fn push(&mut self, row: Row<T>) {
        self.open_time.push(row.open_time);
        self.close_time.push(row.close_time);
        for (col, v) in self.values.iter_mut().zip(row.values) {
            col.push(v);
        }
        self.trades.push(row.trades);
    }
}

/// A CSV line the row parser refused: which field (exchange order, see [`FIELD_NAMES`]) and
/// why, with the offending value in backticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvLineError {
    /// The offending field's name, when the error is inside a field.
    pub field: Option<&'static str>,
    /// What is wrong.
    pub reason: String,
}

/// Parse one data line of a data.binance.vision kline CSV (the 12 fields of a `/klines` row,
/// bare, comma-separated, no line end) onto the end of `rows`, whose price type decides the
/// value type. `micros` is the file's time unit, decided by its first time (see
/// [`MICROS_THRESHOLD`]); a line in the other unit is an error.
///
/// Binance's rendering (`1499040000000,0.01634790,…,308,…,0`) takes the same one-pass scanner
/// as REST pages; any other line (spaces, exponents, long fractions, a bad value) is read by
/// the general page parser as the JSON array `[line]`, which also explains every error. Both
/// paths give identical values (tested).
pub fn push_csv_line(
    line: &[u8],
    rows: &mut KlineRows,
    micros: &mut Option<bool>,
) -> Result<(), CsvLineError> {
    match rows.price_type() {
        PriceType::Float64 => push_csv_typed::<f64>(line, rows, micros),
        PriceType::Decimal => push_csv_typed::<i128>(line, rows, micros),
    }
}

fn push_csv_typed<T: Value>(
    line: &[u8],
    rows: &mut KlineRows,
    micros: &mut Option<bool>,
) -> Result<(), CsvLineError> {
    let row = csv_row::<T>(line, micros)?;
    match Columns::<T>::of(rows) {
        Some(mut c) => {
            c.push(row);
            Ok(())
        }
        None => Err(CsvLineError {
            field: None,
            reason: "internal: column type mismatch".to_owned(),
        }),
    }
}

/// One CSV line as a row: the fast path, else the general parser over `[line]`.
fn csv_row<T: Value>(line: &[u8], micros: &mut Option<bool>) -> Result<Row<T>, CsvLineError> {
    let mut fast = FastRow::<false> { b: line, pos: 0 };
    let mut fast_micros = *micros;
    if let Some(r) = fast.row::<T>(&mut fast_micros) {
        *micros = fast_micros;
        return Ok(r);
    }
    let mut wrapped = Vec::with_capacity(line.len() + 2);
    wrapped.push(b'[');
    wrapped.extend_from_slice(line);
    wrapped.push(b']');
    let mut sc = Scanner {
        b: &wrapped,
        pos: 1,
    };
    let mut first_open = None;
    let row =
        parse_row::<T>(&mut sc, micros, &mut first_open, false).map_err(|e| CsvLineError {
            field: Some(FIELD_NAMES[e.field.min(11)]),
            reason: e.reason,
        })?;
    if sc.peek().is_some() {
        return Err(CsvLineError {
            field: None,
            reason: format!("unexpected {} after the 12th field", sc.describe()),
        });
    }
    Ok(row)
}

/// `PriceType` → an empty column of that type.
pub(super) fn empty_column(prices: PriceType, cap: usize) -> Column {
    match prices {
        PriceType::Float64 => Column::Float64(Vec::with_capacity(cap)),
        PriceType::Decimal => Column::Decimal(Vec::with_capacity(cap)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Result<i128, String> {
        parse_decimal_str(s)
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(dec("2844286547.50404090"), Ok(284_428_654_750_404_090));
        assert_eq!(dec("0.00002853"), Ok(2853));
        assert_eq!(dec("5.685"), Ok(568_500_000));
        assert_eq!(dec("0"), Ok(0));
        assert_eq!(dec("-1.5"), Ok(-150_000_000));
        assert_eq!(dec("1e-8"), Ok(1));
        assert_eq!(dec("1.5E2"), Ok(15_000_000_000));
        assert_eq!(dec("1.000000000000"), Ok(100_000_000));
        assert_eq!(dec("000123.1"), Ok(12_310_000_000));
        assert!(dec("1.000000001").unwrap_err().contains("more than 8"));
        assert!(dec(&"9".repeat(31)).unwrap_err().contains("does not fit"));
        assert_eq!(dec(&"9".repeat(30)), Ok(10_i128.pow(38) - 100_000_000));
        for bad in [
            "", "-", "1.", ".5", "1e", "NaN", "inf", "+1", "1,5", "0x10", "1 2",
        ] {
            assert!(dec(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn eight_digits_reads_only_digits() {
        assert_eq!(eight_digits(b"12345678"), Some(12_345_678));
        assert_eq!(eight_digits(b"00000001xyz"), Some(1));
        assert_eq!(eight_digits(b"99999999"), Some(99_999_999));
        for bad in [
            &b"1234567"[..],
            b"1234567/",
            b"1234567:",
            b"12345.78",
            b"1234567\x00",
            b"\xb1234567",
        ] {
            assert_eq!(eight_digits(bad), None, "{bad:?}");
        }
    }

    /// Both row parsers on `text` (starting after the row's `[`): the fast one, if it takes
    /// the row, must agree with the general one exactly.
    fn both<T: Value + PartialEq + std::fmt::Debug>(text: &str) -> (bool, Option<Row<T>>) {
        let mut micros = None;
        let fast = FastRow::<true> {
            b: text.as_bytes(),
            pos: 0,
        }
        .row::<T>(&mut micros);
        let mut sc = Scanner {
            b: text.as_bytes(),
            pos: 0,
        };
        let (mut micros2, mut first) = (None, None);
        let slow = parse_row::<T>(&mut sc, &mut micros2, &mut first, false).ok();
        if let Some(f) = &fast {
            let s = slow
                .as_ref()
                .expect("the general parser refused a row the fast one took");
            assert_eq!(
                (f.open_time, f.close_time, f.trades),
                (s.open_time, s.close_time, s.trades)
            );
            assert_eq!(f.values, s.values, "{text}");
            assert_eq!(micros, micros2);
        }
        (fast.is_some(), slow)
    }

    #[test]
    fn the_fast_row_path_takes_binances_rendering_and_leaves_the_rest() {
        let binance = r#"1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"]"#;
        assert!(both::<f64>(binance).0);
        assert!(both::<i128>(binance).0);
        // Quote volumes with more digits than an f64 takes exactly (m > 2^53): still the fast
        // path, rounded as the general parser rounds them.
        let big = r#"1672531200000,"16541.77000000","16545.00000000","16500.00000000","16520.01000000","1234.56789000",1672534799999,"2844286547.50404090",308,"617.28394500","1422143273.75202045","0"]"#;
        assert!(both::<f64>(big).0);
        assert!(both::<i128>(big).0);
        // Microsecond pages, short fractions, integers: still the fast path.
        let micros =
            r#"1499040000000000,"1.5","2","0.1","1.25","3",1499644799999999,"0",0,"0.0","1","x"]"#;
        assert!(both::<f64>(micros).0);
        // Everything unusual goes to the general parser (which accepts or explains it).
        for other in [
            r#"1499040000000, "1.5","2","0.1","1.25","3",1499644799999,"0",0,"0","1","0"]"#,
            r#"1499040000000,1.5,"2","0.1","1.25","3",1499644799999,"0",0,"0","1","0"]"#,
            r#"1499040000000,"-1.5","2","0.1","1.25","3",1499644799999,"0",0,"0","1","0"]"#,
            r#"1499040000000,"1.123456789","2","0.1","1.25","3",1499644799999,"0",0,"0","1","0"]"#,
            r#"1499040000000,"1e3","2","0.1","1.25","3",1499644799999,"0",0,"0","1","0"]"#,
            r#"1499040000000,"12345678901.5","2","0.1","1.25","3",1499644799999,"0",0,"0","1","0"]"#,
            r#"1499040000000,"1.5","2","0.1","1.25","3",1499644799999,"0","7",0,"1","0"]"#,
            r#"1499040000000,"1.5","2","0.1","1.25","3",1499644799999,"0",0,"0","1",0]"#,
            r#"1499040000000,"1.5","2","0.1","1.25","3",1499644799999,"0",0,"0","1","\u0030"]"#,
            r#"1499040000000,"1.5","2","0.1","1.25","3",1499644799999999,"0",0,"0","1","0"]"#,
            r#"1499040000000,"1.5","2","0.1","1.25","3",1499644799999,"0",0,"0","1","0","0"]"#,
            r#"1499040000000,"1.5","2","0.1","1.25","3",1499644799999,"0",0,"0","1"]"#,
            // More digits than a time of the fast path takes (19).
            r#"1499040000000000000,"1.5","2","0.1","1.25","3",1499644799999,"0",0,"0","1","0"]"#,
        ] {
            assert!(!both::<f64>(other).0, "{other}");
            assert!(!both::<i128>(other).0, "{other}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_fast_row_path_agrees_with_the_general_one(
            open in 0i64..4_000_000_000_000,
            micros: bool,
            ints in proptest::collection::vec(0u64..10_000_000_000, 8),
            fracs in proptest::collection::vec(0u64..100_000_000, 8),
            widths in proptest::collection::vec(0usize..10, 8),
            trades in 0u64..10_000_000,
        ) {
            let t = |ms: i64| if micros { ms * 1000 } else { ms };
            let v: Vec<String> = (0..8)
                .map(|i| match widths[i] {
                    0 => ints[i].to_string(),
                    9 => format!("{}.{:08}", ints[i] / 10, fracs[i]),
                    w => format!("{}.{}", ints[i], fracs[i] % 10u64.pow(w as u32)),
                })
                .collect();
            let text = format!(
                r#"{},"{}","{}","{}","{}","{}",{},"{}",{trades},"{}","{}","0"]"#,
                t(open), v[0], v[1], v[2], v[3], v[4], t(open + 59_999), v[5], v[6], v[7]
            );
            let (took, slow) = both::<f64>(&text);
            proptest::prop_assert!(slow.is_some());
            proptest::prop_assert!(took);
            let (took, _) = both::<i128>(&text);
            proptest::prop_assert!(took);
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_float_path_is_correctly_rounded(int in 0u64..100_000_000_000, frac in 0u64..100_000_000, width in 0usize..12, zeros in 0usize..4, neg: bool) {
            let text = format!("{}{int}.{frac:0width$}{}", if neg { "-" } else { "" }, "0".repeat(zeros));
            let t = Token { text: text.as_bytes(), escaped: false };
            let want: f64 = text.parse().unwrap();
            proptest::prop_assert_eq!(parse_f64(t).unwrap().to_bits(), want.to_bits(), "{}", text);
            if let Some(v) = fast_f64_text(text.as_bytes()) {
                proptest::prop_assert_eq!(v.to_bits(), want.to_bits(), "{}", text);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_decimal_path_matches_the_exact_parser(int in 0u64..10_000_000_000, frac in 0u64..100_000_000, width in 0usize..10, neg: bool) {
            let sign = if neg { "-" } else { "" };
            let text = if width == 0 { format!("{sign}{int}") } else { format!("{sign}{int}.{frac:0width$}") };
            let t = Token { text: text.as_bytes(), escaped: false };
            if let Some(v) = fast_decimal_text(t.text) {
                proptest::prop_assert_eq!(Ok(v), parse_decimal_slow(t), "{}", text);
            }
        }
    }

    #[test]
    fn floats_reject_non_finite() {
        let t = |s: &'static str| Token {
            text: s.as_bytes(),
            escaped: false,
        };
        assert_eq!(parse_f64(t("16541.77000000")), Ok(16541.77));
        assert!(parse_f64(t("NaN")).is_err());
        assert!(parse_f64(t("inf")).is_err());
        assert!(parse_f64(t("Infinity")).is_err());
        assert!(parse_f64(t("1e999")).is_err());
        assert_eq!(parse_int(t("1672531200000")), Ok(1_672_531_200_000));
        assert!(parse_int(t("1.0")).is_err());
        assert!(parse_int(t("99999999999999999999")).is_err());
    }
}

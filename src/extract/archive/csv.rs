//! Pure CSV reading of data.binance.vision kline files: header sniffing, per-file timestamp unit
//! detection, typing into [`KlineRows`] and the plausibility check (every open time inside the
//! file's month or day). No I/O beyond the [`BufRead`] the caller hands in (the inflating zip
//! entry, read as it inflates).
//!
//! Typing is not duplicated here: each line goes through
//! [`crate::transform::parse::push_csv_line`], the REST page scanner's fast row path in its
//! CSV form (Binance's CSV is as regular as its JSON), with the same general parser behind it,
//! so archive and REST rows get identical values (prices, decimals, µs → ms flooring).

use std::io::BufRead;

use crate::time::fmt_ms;
use crate::transform::parse::{MICROS_THRESHOLD, push_csv_line};
use crate::transform::{KlineContext, KlineRows};

/// The header row futures files carry (spot files have none).
pub const HEADER: &str = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore";

/// The unit a file's timestamps are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceUnit {
    /// Milliseconds (spot before 2025, futures).
    Ms,
    /// Microseconds (spot from 2025-01-01).
    Us,
}

impl SourceUnit {
    /// `ms` or `us`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceUnit::Ms => "ms",
            SourceUnit::Us => "us",
        }
    }
}

/// A CSV file that cannot be ingested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// The first line is neither data nor the known header.
    #[error("unexpected header row `{0}`")]
    Header(String),
    /// A line does not parse.
    #[error("line {line}: {reason}")]
    Parse {
        /// 1-based line number in the file.
        line: usize,
        /// Why.
        reason: String,
    },
    /// Timestamps switch unit inside the file.
    #[error("line {line}: timestamp unit changes from `{file}` to `{found}` inside the file")]
    MixedUnits {
        /// 1-based line number.
        line: usize,
        /// The file's unit (from its first data row).
        file: &'static str,
        /// The unit found on this line.
        found: &'static str,
    },
    /// An open time outside the file's period (wrong unit, wrong file).
    #[error("line {line}: open time `{open}` lies outside the file's period `{start}`..`{end}`")]
    Implausible {
        /// 1-based line number.
        line: usize,
        /// The open time (after unit normalisation).
        open: String,
        /// Period start.
        start: String,
        /// Period end (exclusive).
        end: String,
    },
    /// Open times are not strictly increasing.
    #[error("line {line}: open time `{open}` does not follow the previous row")]
    Order {
        /// 1-based line number.
        line: usize,
        /// The open time.
        open: String,
    },
}

/// What sniffing the first line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstLine {
    /// The known header row: skip it.
    Header,
    /// A data row.
    Data,
}

/// Sniff the first line of a file: the known header, or data (its first field is an integer).
pub fn sniff(line: &str) -> Result<FirstLine, CsvError> {
    let line = line.trim_start_matches('\u{feff}').trim();
    let first = line.split(',').next().unwrap_or_default();
    if !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(FirstLine::Data);
    }
    if line.eq_ignore_ascii_case(HEADER) || line.starts_with("open_time,") {
        return Ok(FirstLine::Header);
    }
    let shown: String = line.chars().take(60).collect();
    Err(CsvError::Header(shown))
}

/// The unit of a raw open-time field (`>= 10^14` is microseconds).
pub fn unit_of(line: &str) -> Option<SourceUnit> {
    let first = line.trim().split(',').next()?;
    let v: i64 = first.parse().ok()?;
    Some(if v >= MICROS_THRESHOLD {
        SourceUnit::Us
    } else {
        SourceUnit::Ms
    })
}

/// Why a file could not be read: the inflate stream broke, or the CSV is bad.
#[derive(Debug)]
pub enum ReadError {
    /// Reading (inflating) the bytes failed.
    Inflate(std::io::Error),
    /// The CSV does not pass.
    Csv(CsvError),
}

/// Reads one file's lines into checked, typed rows.
///
/// Feed lines with [`FileReader::line`] (or a whole stream with [`FileReader::read`]), then
/// take the rows with [`FileReader::finish`]. Every row is checked: the header only on the
/// first line, one timestamp unit per file, open times strictly increasing and inside
/// `[period_start, period_end)`.
#[derive(Debug)]
pub struct FileReader {
    period: (i64, i64),
    line_no: usize,
    /// Whether the file had a header row.
    pub header: bool,
    /// The unit of the file's timestamps (from its first data row).
    pub unit: Option<SourceUnit>,
    /// Data rows read.
    pub rows: u64,
    micros: Option<bool>,
    out: KlineRows,
}

impl FileReader {
    /// A reader for a file covering open times in `[period.0, period.1)`. The rows are
    /// allocated once for every candle `ctx.interval` has in the period.
    pub fn new(ctx: KlineContext<'_>, period: (i64, i64)) -> Self {
        let cap = ctx.interval.count_in(period.0, period.1).clamp(0, 1 << 20) as usize;
        FileReader {
            out: KlineRows::with_capacity(ctx.options.prices, cap),
            period,
            line_no: 0,
            header: false,
            unit: None,
            rows: 0,
            micros: None,
        }
    }

    /// Read every line of `input` (a file's whole text, as it inflates): lines end with `\n`
    /// or `\r\n`; the last one may lack it.
    pub fn read(&mut self, mut input: impl BufRead) -> Result<(), ReadError> {
        let mut partial: Vec<u8> = Vec::new();
        loop {
            let buf = match input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadError::Inflate(e)),
            };
            if buf.is_empty() {
                break;
            }
            let mut start = 0;
            while let Some(n) = memchr::memchr(b'\n', &buf[start..]) {
                let line = &buf[start..start + n];
                if partial.is_empty() {
                    self.line(line).map_err(ReadError::Csv)?;
                } else {
                    partial.extend_from_slice(line);
                    self.line(&partial).map_err(ReadError::Csv)?;
                    partial.clear();
                }
                start += n + 1;
            }
            partial.extend_from_slice(&buf[start..]);
            let used = buf.len();
            input.consume(used);
        }
        if !partial.is_empty() {
            self.line(&partial).map_err(ReadError::Csv)?;
        }
        Ok(())
    }

    /// Accept the next line (with or without its line end).
    pub fn line(&mut self, line: &[u8]) -> Result<(), CsvError> {
        self.line_no += 1;
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // Data lines start with a digit; anything else is looked at closely.
        if !line.first().is_some_and(u8::is_ascii_digit) {
            let text = String::from_utf8_lossy(line);
            if text.trim().is_empty() {
                return Ok(());
            }
            if self.line_no == 1 && sniff(&text)? == FirstLine::Header {
                self.header = true;
                return Ok(());
            }
        }
        if let Err(e) = push_csv_line(line, &mut self.out, &mut self.micros) {
            return Err(self.explain(line, e));
        }
        let unit = if self.micros == Some(true) {
            SourceUnit::Us
        } else {
            SourceUnit::Ms
        };
        self.unit = Some(unit);
        self.rows += 1;
        let n = self.out.len();
        let open = self.out.open_time[n - 1];
        let (start, end) = self.period;
        if !(start..end).contains(&open) {
            return Err(CsvError::Implausible {
                line: self.line_no,
                open: fmt_ms(open),
                start: fmt_ms(start),
                end: fmt_ms(end),
            });
        }
        if n > 1 && open <= self.out.open_time[n - 2] {
            return Err(CsvError::Order {
                line: self.line_no,
                open: fmt_ms(open),
            });
        }
        Ok(())
    }

    /// The error for a line the row parser refused: a unit change, a first field that is
    /// not a time, or the parser's own reason.
    fn explain(&self, line: &[u8], e: crate::transform::parse::CsvLineError) -> CsvError {
        let text = String::from_utf8_lossy(line);
        let Some(found) = unit_of(&text) else {
            return CsvError::Parse {
                line: self.line_no,
                reason: format!(
                    "expected an integer open time, found `{}`",
                    text.split(',').next().unwrap_or_default()
                ),
            };
        };
        match self.unit {
            Some(file) if file != found => CsvError::MixedUnits {
                line: self.line_no,
                file: file.as_str(),
                found: found.as_str(),
            },
            _ => CsvError::Parse {
                line: self.line_no,
                reason: match e.field {
                    Some(f) => format!("field `{f}`: {}", e.reason),
                    None => e.reason,
                },
            },
        }
    }

    /// The rows read, in file order.
    pub fn finish(self) -> KlineRows {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PriceType, TransformOptions};
    use crate::interval::Interval;
    use crate::market::Market;
    use crate::symbol::Symbol;

    fn opts() -> TransformOptions {
        TransformOptions::default()
    }

    const JAN_2024: i64 = 1_704_067_200_000;
    const JAN_2025: i64 = 1_735_689_600_000;

    fn ctx() -> KlineContext<'static> {
        let sym: &'static Symbol = Box::leak(Box::new("BTCUSDT".parse::<Symbol>().unwrap()));
        let o: &'static TransformOptions = Box::leak(Box::new(opts()));
        KlineContext {
            market: Market::Spot,
            symbol: sym,
            interval: Interval::M1,
            options: o,
        }
    }

    /// The rows, header flag and unit of a file of `lines`.
    type Read = (KlineRows, bool, Option<SourceUnit>);

    fn read(lines: &[String], period: (i64, i64)) -> Result<Read, CsvError> {
        let mut r = FileReader::new(ctx(), period);
        for l in lines {
            r.line(l.as_bytes())?;
        }
        let (header, unit) = (r.header, r.unit);
        Ok((r.finish(), header, unit))
    }

    fn row(open: i64, micros: bool) -> String {
        let (o, c) = if micros {
            (open * 1000, (open + 59_999) * 1000 + 999)
        } else {
            (open, open + 59_999)
        };
        format!("{o},42000.10,42001.00,41999.50,42000.00,1.5,{c},63000.15,12,0.7,29400.07,0")
    }

    #[test]
    fn sniffs_header_and_data() {
        assert_eq!(sniff(HEADER).unwrap(), FirstLine::Header);
        assert_eq!(sniff(&row(JAN_2024, false)).unwrap(), FirstLine::Data);
        assert!(matches!(sniff("foo,bar"), Err(CsvError::Header(_))));
    }

    #[test]
    fn reads_ms_and_us_files_to_the_same_rows() {
        let day = (JAN_2025, JAN_2025 + 86_400_000);
        let ms: Vec<String> = (0..3).map(|i| row(JAN_2025 + i * 60_000, false)).collect();
        let us: Vec<String> = (0..3).map(|i| row(JAN_2025 + i * 60_000, true)).collect();
        let (a, _, ua) = read(&ms, day).unwrap();
        let (b, _, ub) = read(&us, day).unwrap();
        assert_eq!(a, b);
        assert_eq!((ua, ub), (Some(SourceUnit::Ms), Some(SourceUnit::Us)));
        assert_eq!(a.close_time[0], JAN_2025 + 59_999);
    }

    #[test]
    fn header_is_skipped_and_noted() {
        let mut lines = vec![HEADER.to_owned()];
        lines.extend((0..2).map(|i| row(JAN_2024 + i * 60_000, false)));
        let (rows, header, _) = read(&lines, (JAN_2024, JAN_2024 + 86_400_000)).unwrap();
        assert!(header);
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn implausible_dates_are_rejected() {
        // A µs file read as if it belonged to 2024: its rows are in 2025.
        let lines = vec![row(JAN_2025, true)];
        let err = read(&lines, (JAN_2024, JAN_2024 + 86_400_000)).unwrap_err();
        assert!(
            matches!(err, CsvError::Implausible { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn mixed_units_and_disorder_are_rejected() {
        let day = (JAN_2025, JAN_2025 + 86_400_000);
        let lines = vec![row(JAN_2025, false), row(JAN_2025 + 60_000, true)];
        assert!(matches!(
            read(&lines, day).unwrap_err(),
            CsvError::MixedUnits { line: 2, .. }
        ));
        let lines = vec![row(JAN_2025 + 60_000, false), row(JAN_2025, false)];
        assert!(matches!(
            read(&lines, day).unwrap_err(),
            CsvError::Order { line: 2, .. }
        ));
    }

    #[test]
    fn bad_fields_name_their_line() {
        let day = (JAN_2025, JAN_2025 + 86_400_000);
        let lines = vec![row(JAN_2025, false), format!("{JAN_2025},x")];
        let err = read(&lines, day).unwrap_err();
        assert!(matches!(err, CsvError::Parse { line: 2, .. }), "{err}");
    }

    #[test]
    fn a_stream_reads_like_its_lines_whatever_the_line_ends_and_buffer_size() {
        let day = (JAN_2025, JAN_2025 + 86_400_000);
        let lines: Vec<String> = (0..50).map(|i| row(JAN_2025 + i * 60_000, false)).collect();
        let (want, _, _) = read(&lines, day).unwrap();
        for (sep, last) in [("\n", "\n"), ("\r\n", ""), ("\n", "")] {
            let text = format!("{HEADER}{sep}{}{last}", lines.join(sep));
            for cap in [1, 7, 64, 1 << 16] {
                let mut r = FileReader::new(ctx(), day);
                let input = std::io::BufReader::with_capacity(cap, text.as_bytes());
                r.read(input).unwrap();
                assert!(r.header);
                assert_eq!(r.rows, 50);
                assert_eq!(r.finish(), want, "{sep:?} {cap}");
            }
        }
    }

    #[test]
    fn the_csv_fast_path_gives_what_the_general_page_parser_gives() {
        // The data.binance.vision rendering and variants the fast path leaves to the general
        // parser: each line must give the rows `[line]` gives as a REST page, or both refuse.
        let lines = [
            "1499040000000,0.01634790,0.80000000,0.01575800,0.01577100,148976.11427815,1499644799999,2434.19055334,308,1756.87402397,28.46694368,0",
            "1735689600000000,93576.00000000,93610.93000000,93537.50000000,93610.93000000,8.21827000,1735689659999999,768978.68081880,2270,3.50620000,328055.06287270,0",
            "1499040000000,1.5,2,0.1,1.25,3,1499644799999,0,0,0,1,0",
            "1499040000000, 1.5,2,0.1,1.25,3,1499644799999,0,0,0,1,0",
            "1499040000000,1e3,2,0.1,1.25,3,1499644799999,0,0,0,1,0",
            "1499040000000,1.123456789,2,0.1,1.25,3,1499644799999,0,0,0,1,0",
            "1499040000000,123456789012345.5,2,0.1,1.25,3,1499644799999,99999999999.99999999,0,0,1,0",
            "1499040000000,1.5,2,0.1,1.25,3,1499644799999,0,0,0,1,0 ",
            "1499040000000,1.5,2,0.1,1.25,3,1499644799999,0,0,0,1,\"x\"",
            "1499040000000,1.5,2,0.1,1.25,3,1499644799999,0,0,0,1",
            "1499040000000,1.5,2,0.1,1.25,3,1499644799999,0,0,0,1,0,0",
            "1499040000000,-1.5,2,0.1,1.25,3,1499644799999,0,0,0,1,0",
            "1499040000000,x,2,0.1,1.25,3,1499644799999,0,0,0,1,0",
            "1499040000000,1.5,2,0.1,1.25,3,1499644799999,0,7.5,0,1,0",
            "1499040000000,1.5,2,0.1,1.25,3,1499644799999,0,0,0,1,]",
            "1499040000000,1.5,2,0.1,1.25,3,1499644799999999,0,0,0,1,0",
        ];
        for prices in [PriceType::Float64, PriceType::Decimal] {
            for line in lines {
                assert_same(line, prices);
            }
        }
    }

    /// `line` through the CSV reader's row parser and, as `[[line]]`, through the REST page
    /// parser: the same rows, or both refuse.
    fn assert_same(line: &str, prices: PriceType) {
        let sym = "BTCUSDT".parse::<Symbol>().unwrap();
        let o = TransformOptions { prices, ..opts() };
        let ctx = KlineContext {
            market: Market::Spot,
            symbol: &sym,
            interval: Interval::M1,
            options: &o,
        };
        let mut csv = KlineRows::empty(prices);
        let mut micros = None;
        let a = push_csv_line(line.as_bytes(), &mut csv, &mut micros).map(|()| csv);
        let b = crate::transform::parse_klines(format!("[[{line}]]").as_bytes(), &ctx);
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{line}"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("{line}: csv {a:?} vs page {b:?}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn csv_lines_parse_as_their_page_does(
            open in 0i64..4_000_000_000_000,
            micros: bool,
            ints in proptest::collection::vec(0u64..100_000_000_000, 8),
            fracs in proptest::collection::vec(0u64..1_000_000_000, 8),
            widths in proptest::collection::vec(0usize..11, 8),
            trades in 0u64..10_000_000,
            decimal: bool,
            noise in proptest::option::of((0usize..120, proptest::sample::select(vec![" ", "e", "-", ".", ",", "x", "\"", "9"]))),
        ) {
            let t = |ms: i64| if micros { ms * 1000 } else { ms };
            let v: Vec<String> = (0..8)
                .map(|i| match widths[i] {
                    0 => ints[i].to_string(),
                    w => format!("{}.{:0w$}", ints[i], fracs[i] % 10u64.pow(w.min(9) as u32), w = w.min(9)),
                })
                .collect();
            let mut line = format!(
                "{},{},{},{},{},{},{},{},{trades},{},{},0",
                t(open), v[0], v[1], v[2], v[3], v[4], t(open + 59_999), v[5], v[6], v[7]
            );
            if let Some((at, what)) = noise {
                let at = at.min(line.len());
                line.insert_str(at, what);
            }
            let prices = if decimal { PriceType::Decimal } else { PriceType::Float64 };
            assert_same(&line, prices);
        }
    }
}

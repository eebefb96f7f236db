//! Pure CSV reading of data.binance.vision kline files: header sniffing, per-file timestamp unit
//! detection, chunking into typed [`KlineRows`] and the plausibility check (every open time
//! inside the file's month or day). No I/O: the caller hands in lines from the unzipped CSV.
//!
//! Typing is not duplicated here: a chunk of CSV lines is turned into the JSON array shape of a
//! `/klines` page and parsed by [`crate::transform::parse_klines`], so archive and REST rows go
//! through one parser and produce identical values (prices, decimals, µs → ms flooring).

use crate::time::fmt_ms;
use crate::transform::parse::MICROS_THRESHOLD;
use crate::transform::{KlineContext, KlineRows, parse_klines};

/// The header row futures files carry (spot files have none).
pub const HEADER: &str = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore";

/// Lines per parsed chunk (a REST page's worth): bounded memory whatever the file size, and
/// the loader channel holds no more rows than it does for REST pages.
pub const CHUNK_ROWS: usize = 1_000;

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

/// Reads one file's lines into checked chunks of [`KlineRows`].
///
/// Feed lines with [`FileReader::line`]; it returns a full chunk every [`CHUNK_ROWS`] data
/// rows; call [`FileReader::finish`] for the last one. Every row is checked: the header only
/// on the first line, one timestamp unit per file, open times strictly increasing and inside
/// `[period_start, period_end)`.
#[derive(Debug)]
pub struct FileReader<'a> {
    ctx: KlineContext<'a>,
    period: (i64, i64),
    line_no: usize,
    /// Whether the file had a header row.
    pub header: bool,
    /// The unit of the file's timestamps (from its first data row).
    pub unit: Option<SourceUnit>,
    /// Data rows read.
    pub rows: u64,
    last_open: Option<i64>,
    buf: Vec<u8>,
    buf_rows: usize,
    buf_first_line: usize,
}

impl<'a> FileReader<'a> {
    /// A reader for a file covering open times in `[period.0, period.1)`.
    pub fn new(ctx: KlineContext<'a>, period: (i64, i64)) -> Self {
        FileReader {
            ctx,
            period,
            line_no: 0,
            header: false,
            unit: None,
            rows: 0,
            last_open: None,
            buf: Vec::with_capacity(CHUNK_ROWS * 160),
            buf_rows: 0,
            buf_first_line: 1,
        }
    }

    /// Accept the next line (without its newline).
    pub fn line(&mut self, line: &str) -> Result<Option<KlineRows>, CsvError> {
        self.line_no += 1;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return Ok(None);
        }
        if self.line_no == 1 && sniff(line)? == FirstLine::Header {
            self.header = true;
            return Ok(None);
        }
        let unit = unit_of(line).ok_or_else(|| CsvError::Parse {
            line: self.line_no,
            reason: format!(
                "expected an integer open time, found `{}`",
                line.split(',').next().unwrap_or_default()
            ),
        })?;
        match self.unit {
            None => self.unit = Some(unit),
            Some(u) if u != unit => {
                return Err(CsvError::MixedUnits {
                    line: self.line_no,
                    file: u.as_str(),
                    found: unit.as_str(),
                });
            }
            Some(_) => {}
        }
        if self.buf_rows == 0 {
            self.buf.clear();
            self.buf.push(b'[');
            self.buf_first_line = self.line_no;
        } else {
            self.buf.push(b',');
        }
        self.buf.push(b'[');
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.push(b']');
        self.buf_rows += 1;
        self.rows += 1;
        if self.buf_rows >= CHUNK_ROWS {
            return self.flush().map(Some);
        }
        Ok(None)
    }

    /// The last chunk (empty when nothing is buffered).
    pub fn finish(&mut self) -> Result<KlineRows, CsvError> {
        self.flush()
    }

    fn flush(&mut self) -> Result<KlineRows, CsvError> {
        if self.buf_rows == 0 {
            return Ok(KlineRows::empty(self.ctx.options.prices));
        }
        self.buf.push(b']');
        let first = self.buf_first_line;
        self.buf_rows = 0;
        let rows = parse_klines(&self.buf, &self.ctx).map_err(|e| CsvError::Parse {
            line: first + e.row.unwrap_or(0),
            reason: e.reason.clone(),
        })?;
        let (start, end) = self.period;
        for (i, &open) in rows.open_time.iter().enumerate() {
            let line = first + i;
            if !(start..end).contains(&open) {
                return Err(CsvError::Implausible {
                    line,
                    open: fmt_ms(open),
                    start: fmt_ms(start),
                    end: fmt_ms(end),
                });
            }
            if self.last_open.is_some_and(|l| open <= l) {
                return Err(CsvError::Order {
                    line,
                    open: fmt_ms(open),
                });
            }
            self.last_open = Some(open);
        }
        Ok(rows)
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

    fn read(
        lines: &[String],
        period: (i64, i64),
    ) -> Result<(KlineRows, FileReader<'static>), CsvError> {
        let sym: &'static Symbol = Box::leak(Box::new("BTCUSDT".parse::<Symbol>().unwrap()));
        let o: &'static TransformOptions = Box::leak(Box::new(opts()));
        let ctx = KlineContext {
            market: Market::Spot,
            symbol: sym,
            interval: Interval::M1,
            options: o,
        };
        let mut r = FileReader::new(ctx, period);
        let mut out = KlineRows::empty(PriceType::Float64);
        for l in lines {
            if let Some(c) = r.line(l)? {
                out.append(c);
            }
        }
        out.append(r.finish()?);
        Ok((out, r))
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
        let (a, ra) = read(&ms, day).unwrap();
        let (b, rb) = read(&us, day).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            (ra.unit, rb.unit),
            (Some(SourceUnit::Ms), Some(SourceUnit::Us))
        );
        assert_eq!(a.close_time[0], JAN_2025 + 59_999);
    }

    #[test]
    fn header_is_skipped_and_noted() {
        let mut lines = vec![HEADER.to_owned()];
        lines.extend((0..2).map(|i| row(JAN_2024 + i * 60_000, false)));
        let (rows, r) = read(&lines, (JAN_2024, JAN_2024 + 86_400_000)).unwrap();
        assert!(r.header);
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
    fn chunks_are_bounded() {
        let day = (JAN_2025, JAN_2025 + 86_400_000);
        let sym = "BTCUSDT".parse::<Symbol>().unwrap();
        let o = opts();
        let ctx = KlineContext {
            market: Market::Spot,
            symbol: &sym,
            interval: Interval::M1,
            options: &o,
        };
        let mut r = FileReader::new(ctx, day);
        let mut chunks = 0;
        for i in 0..1440 {
            if let Some(c) = r.line(&row(JAN_2025 + i * 60_000, false)).unwrap() {
                assert!(c.len() <= CHUNK_ROWS);
                chunks += 1;
            }
        }
        assert_eq!(chunks, 1440 / CHUNK_ROWS);
        assert_eq!(r.rows, 1440);
    }
}

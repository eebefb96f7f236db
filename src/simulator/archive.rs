//! The simulator's data.binance.vision: `/data/{spot|futures/um|futures/cm}/{monthly|daily}/
//! klines/SYMBOL/INTERVAL/SYMBOL-INTERVAL-{YYYY-MM|YYYY-MM-DD}.zip` and `.CHECKSUM`, built from
//! the same synthetic candles the REST endpoints serve ([`super::data`]).
//!
//! Layout choices, after the real archive (binance-api.md §7): `1mo` for `1M`; spot files carry
//! no header, futures files from 2022-05 on do; spot files from 2025-01-01 on are in
//! microseconds; a file is published `daily_lag_ms` after its day ends (`monthly_lag_ms` after
//! its month ends) and answers 404 before that, for an unknown symbol, an unparsable path or a
//! period without candles. `Last-Modified` is the publication time.
//!
//! Faults per file name ([`ArchiveFault`]): missing, wrong checksum, truncated zip (with the
//! checksum of the truncated bytes, so only the unzip fails), a header row where none is
//! expected, microsecond timestamps, rows dropped, and an upstream replacement (one value
//! changed, a newer `Last-Modified`). Archive requests get the configured latency and count in
//! the stats under `archive`; they carry no request weight (the archive is not rate limited).

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

pub use super::state::{ArchiveConfig, ArchiveFault};
use super::state::{Built, Shared};
use crate::extract::archive::checksum::checksum_line;
use crate::extract::archive::csv::HEADER;
use crate::interval::{DAY_MS, Interval};
use crate::market::Market;

/// A parsed archive path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FilePath {
    market: Market,
    monthly: bool,
    symbol: String,
    interval: Interval,
    start: i64,
    end: i64,
    name: String,
    checksum: bool,
}

fn parse_path(path: &str) -> Option<FilePath> {
    let rest = path.strip_prefix("/data/")?;
    let (market, rest) = if let Some(r) = rest.strip_prefix("spot/") {
        (Market::Spot, r)
    } else if let Some(r) = rest.strip_prefix("futures/um/") {
        (Market::UsdM, r)
    } else {
        (Market::CoinM, rest.strip_prefix("futures/cm/")?)
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [period, "klines", symbol, iv, file] = parts.as_slice() else {
        return None;
    };
    let monthly = match *period {
        "monthly" => true,
        "daily" => false,
        _ => return None,
    };
    let interval = Interval::ALL.into_iter().find(|i| i.archive_str() == *iv)?;
    let (stem, checksum) = match file.strip_suffix(".CHECKSUM") {
        Some(s) => (s, true),
        None => (*file, false),
    };
    let stem = stem.strip_suffix(".zip")?;
    let date = stem.strip_prefix(&format!("{symbol}-{iv}-"))?;
    let start = if monthly {
        chrono::NaiveDate::parse_from_str(&format!("{date}-01"), "%Y-%m-%d").ok()?
    } else {
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?
    };
    if (monthly && date.len() != 7) || (!monthly && date.len() != 10) {
        return None;
    }
    let start = start.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    let end = if monthly {
        Interval::Mo1.next(start)
    } else {
        start + DAY_MS
    };
    Some(FilePath {
        market,
        monthly,
        symbol: (*symbol).to_owned(),
        interval,
        start,
        end,
        name: format!("{stem}.zip"),
        checksum,
    })
}

/// 2025-01-01: spot archive files switch to microseconds.
const SPOT_MICROS_FROM: i64 = 1_735_689_600_000;
/// 2022-05-01: futures archive files carry a header row from about here on.
const FUTURES_HEADER_FROM: i64 = 1_651_363_200_000;

fn http_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn build(sh: &Shared, f: &FilePath, now: i64) -> Option<Built> {
    let cfg = &sh.archive;
    let fault = cfg.faults.get(&f.name).copied();
    let lag = if f.monthly {
        cfg.monthly_lag_ms
    } else {
        cfg.daily_lag_ms
    };
    let published = f.end.saturating_add(lag);
    if now < published || fault == Some(ArchiveFault::Missing) {
        return None;
    }
    let s = sh.universe.symbol(f.market, &f.symbol)?;
    if s.spec.listed_ms > now || !f.market.supports(f.interval) {
        return None;
    }
    let mut rows = s.closed_klines(f.market, f.interval, f.start, f.end, now);
    if rows.is_empty() {
        return None;
    }
    if let Some(ArchiveFault::DropRows(n)) = fault {
        let mid = rows.len() / 2;
        let n = n.min(rows.len() - mid);
        rows.drain(mid..mid + n);
    }
    if fault == Some(ArchiveFault::Replaced) {
        rows[0].trades += 1;
    }
    let micros = fault == Some(ArchiveFault::Micros)
        || (f.market == Market::Spot && f.start >= SPOT_MICROS_FROM);
    let header = fault == Some(ArchiveFault::HeaderRow)
        || (f.market != Market::Spot && f.start >= FUTURES_HEADER_FROM);
    let mut csv = Vec::with_capacity(rows.len() * 120);
    if header {
        csv.extend_from_slice(HEADER.as_bytes());
        csv.push(b'\n');
    }
    for r in &rows {
        let (open, close) = if micros {
            (r.open_time * 1000, r.close_time * 1000 + 999)
        } else {
            (r.open_time, r.close_time)
        };
        let _ = writeln!(
            csv,
            "{open},{},{},{},{},{},{close},{},{},{},{},{}",
            r.open,
            r.high,
            r.low,
            r.close,
            r.volume,
            r.quote_volume,
            r.trades,
            r.taker_buy_base_volume,
            r.taker_buy_quote_volume,
            r.ignore
        );
    }
    let csv_name = format!("{}.csv", f.name.trim_end_matches(".zip"));
    let mut zip = zip_one(&csv_name, &csv)?;
    if fault == Some(ArchiveFault::TruncatedZip) {
        zip.truncate(zip.len() / 2);
    }
    let checksum = if fault == Some(ArchiveFault::BadChecksum) {
        checksum_line(b"not the zip", &f.name)
    } else {
        checksum_line(&zip, &f.name)
    };
    let modified = if fault == Some(ArchiveFault::Replaced) {
        published + DAY_MS
    } else {
        published
    };
    Some(Built {
        zip: Bytes::from(zip),
        checksum: Bytes::from(checksum),
        last_modified: http_date(modified),
    })
}

/// A zip holding one deflated file.
pub(crate) fn zip_one(name: &str, data: &[u8]) -> Option<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    w.start_file(name, opts).ok()?;
    w.write_all(data).ok()?;
    w.finish().ok().map(std::io::Cursor::into_inner)
}

/// Serve one `/data/...` request (called by the server's router before the API routes).
pub(crate) async fn handle(sh: &Arc<Shared>, path: &str) -> Response {
    let n = sh.counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    sh.record(|s| *s.requests.entry("archive".to_owned()).or_default() += 1);
    let delay = sh.faults.latency_for(n);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let now = sh.clock.now();
    let built = parse_path(path).and_then(|f| {
        let key = format!("{}|{}", f.name, f.market.as_str());
        let cached = sh
            .archive_cache
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned();
        let b = match cached {
            Some(b) => b,
            None => {
                let b = build(sh, &f, now).map(Arc::new);
                // Only published files are cached: an unpublished one may appear later.
                if b.is_some() {
                    sh.archive_cache
                        .0
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(key, b.clone());
                }
                b
            }
        };
        b.map(|b| (b, f.checksum))
    });
    let mut resp = match &built {
        Some((b, checksum)) => {
            let body = if *checksum {
                b.checksum.clone()
            } else {
                b.zip.clone()
            };
            let mut r = Response::new(axum::body::Body::from(body));
            let ct = if *checksum {
                "text/plain"
            } else {
                "application/zip"
            };
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            if let Ok(v) = HeaderValue::from_str(&b.last_modified) {
                r.headers_mut().insert(header::LAST_MODIFIED, v);
            }
            r
        }
        None => Response::new(axum::body::Body::empty()),
    };
    if built.is_none() {
        *resp.status_mut() = StatusCode::NOT_FOUND;
    }
    resp
}

/// The period `[start, end)` a file name covers (for tests and benches).
pub fn file_period(path: &str) -> Option<(i64, i64)> {
    parse_path(path).map(|f| (f.start, f.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_archive_paths() {
        let f =
            parse_path("/data/spot/monthly/klines/BTCUSDT/1mo/BTCUSDT-1mo-2024-02.zip").unwrap();
        assert_eq!(
            (f.market, f.monthly, f.interval, f.checksum),
            (Market::Spot, true, Interval::Mo1, false)
        );
        assert_eq!(f.end - f.start, 29 * DAY_MS);
        let f = parse_path(
            "/data/futures/cm/daily/klines/BTCUSD_PERP/1m/BTCUSD_PERP-1m-2024-02-29.zip.CHECKSUM",
        )
        .unwrap();
        assert_eq!(
            (f.market, f.monthly, f.checksum),
            (Market::CoinM, false, true)
        );
        assert_eq!(f.name, "BTCUSD_PERP-1m-2024-02-29.zip");
        for bad in [
            "/data/spot/monthly/klines/BTCUSDT/1M/BTCUSDT-1M-2024-02.zip",
            "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-02.zip",
            "/data/spot/monthly/klines/BTCUSDT/1m/ETHUSDT-1m-2024-02.zip",
            "/data/options/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-02.zip",
            "/data/spot/monthly/trades/BTCUSDT/1m/BTCUSDT-1m-2024-02.zip",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn zips_round_trip() {
        let z = zip_one("a.csv", b"1,2,3\n").unwrap();
        let mut a = zip::ZipArchive::new(std::io::Cursor::new(z)).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut a.by_index(0).unwrap(), &mut s).unwrap();
        assert_eq!(s, "1,2,3\n");
    }
}

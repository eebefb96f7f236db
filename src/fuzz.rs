//! Fuzzing entry points: each takes arbitrary bytes, feeds them to one parser the way the tool
//! does, and checks the invariants that must hold for any input (no panic, no overflow, errors
//! that say where, results that are internally consistent). The cargo-fuzz targets in `fuzz/`
//! call these, and the integration test `fuzz_regressions` replays the committed corpus and
//! every crash ever found through them, so CI guards the fixes without running a fuzzer.
//!
//! Not part of the stable API.

use crate::config::{PriceType, TimeUnit, TransformOptions, parse_str, parse_time};
use crate::interval::Interval;
use crate::market::Market;
use crate::symbol::Symbol;
use crate::transform::{KlineContext, parse_klines};

/// A pipeline file: parsing and validation never panic; an error names the file; a valid
/// pipeline is internally consistent.
pub fn pipeline(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| (name == "FUZZ_VAR").then(|| "1".to_owned());
    match parse_str("fuzz.yaml", text, &env) {
        Ok(p) => {
            assert!(!p.name.is_empty());
            assert!(p.source.weight_share > 0.0 && p.source.weight_share <= 1.0);
            for i in &p.intervals {
                assert!(p.source.market.supports(*i));
            }
            let now = 1_717_201_800_000;
            let (start, end) = p.range.resolve(now);
            let _ = crate::plan::build(&p, now);
            let _ = (start, end);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("fuzz.yaml"),
                "error without the file name: {msg}"
            );
        }
    }
}

/// A time expression (`2024-01-01`, `3 days ago`, epoch ms, ...): no panic, and a parsed
/// time resolves without overflow for any "now" in the plausible range.
pub fn time(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = parse_time(text) {
        for now in [0, 1_717_201_800_000, 4_102_444_800_000] {
            let _ = spec.resolve(now);
        }
    }
}

/// An interval name and a timestamp: parsing never panics, and the grid arithmetic holds
/// (`floor(t) <= t < next(floor(t))`, `count_in` of one candle is 1) for any time in
/// 1970..2200.
pub fn interval(data: &[u8]) {
    let (name, rest) = data.split_at(data.len().min(4));
    let Ok(text) = std::str::from_utf8(name) else {
        return;
    };
    let Ok(i) = text.trim().parse::<Interval>() else {
        let _ = Interval::suggest(text);
        return;
    };
    let mut raw = [0u8; 8];
    for (d, s) in raw.iter_mut().zip(rest) {
        *d = *s;
    }
    let t = (i64::from_le_bytes(raw)).rem_euclid(7_258_118_400_000); // up to 2200-01-01
    let open = i.floor(t);
    let next = i.next(open);
    assert!(
        open <= t && t < next,
        "{i}: floor({t}) = {open}, next = {next}"
    );
    assert!(i.is_aligned(open));
    assert_eq!(i.prev(next), open);
    assert_eq!(i.count_in(open, next), 1);
    assert_eq!(i.close_time(open), next - 1);
}

/// A `/klines` reply body: the page parser never panics on any bytes, for every market and
/// typing option; a parsed page has columns of one length.
pub fn klines_page(data: &[u8]) {
    let symbol: Symbol = match "BTCUSDT".parse() {
        Ok(s) => s,
        Err(_) => return,
    };
    for (market, prices, unit) in [
        (Market::Spot, PriceType::Float64, TimeUnit::Millisecond),
        (Market::UsdM, PriceType::Decimal, TimeUnit::Microsecond),
    ] {
        let options = TransformOptions {
            prices,
            time_unit: unit,
            ..TransformOptions::default()
        };
        for interval in [Interval::M1, Interval::Mo1] {
            let ctx = KlineContext {
                market,
                symbol: &symbol,
                interval,
                options: &options,
            };
            if let Ok(rows) = parse_klines(data, &ctx) {
                let n = rows.len();
                assert_eq!(rows.close_time.len(), n);
                assert_eq!(rows.trades.len(), n);
                let _ = crate::transform::quality::check(&rows, interval);
            }
        }
    }
}

/// An archive CSV file (data.binance.vision layout): header sniffing, unit detection and row
/// checks never panic on any bytes; a read file's rows lie inside the file's period, strictly
/// increasing.
pub fn archive_csv(data: &[u8]) {
    let Ok(symbol) = "BTCUSDT".parse::<Symbol>() else {
        return;
    };
    let options = TransformOptions::default();
    let ctx = KlineContext {
        market: Market::Spot,
        symbol: &symbol,
        interval: Interval::M1,
        options: &options,
    };
    // 2024-01-01 .. 2024-02-01, a monthly 1m file.
    let period = (1_704_067_200_000, 1_706_745_600_000);
    let mut reader = crate::extract::archive::csv::FileReader::new(ctx, period);
    if reader.read(data).is_ok() {
        let rows = reader.finish().open_time;
        assert!(
            rows.iter().all(|t| (period.0..period.1).contains(t)),
            "row outside the period"
        );
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "rows not increasing");
    }
}

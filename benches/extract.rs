//! Extractor benchmarks against the built-in simulator.
//!
//! - `extract/unlimited_1m_100k_rows`: CPU-bound paging (no latency, no weight limit): 100 pages
//!   of 1000 one-minute klines fetched, parsed on the worker and screened, end to end through
//!   the bounded channel. Throughput in rows.
//! - `archive/inflate_month_1m/{whole,streamed}`: one month of BTCUSDT 1m from the simulator's
//!   archive (a 2.2 MB zip, 6.6 MB of CSV) inflated by [`inflate::whole`] (libdeflate, one call,
//!   a reused buffer, CRC-32 checked) and by the zip crate's streaming reader through a 64 KiB
//!   buffer (what every archive file took before, and what entries over 64 MiB still take).
//!   Throughput in bytes of CSV.
//! - Weight-budget utilisation (run once and printed, not timed): a backfill against the
//!   simulator declaring 2-second windows of 300 weight, long enough to span many windows.
//!   Prints the weight of every window, the utilisation of the full windows and the 429/418
//!   counts. Goal: >= 95% of the budget, zero 429s.

use std::io::{BufRead, BufReader, Cursor};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kline_etl::config::{OnViolation, PriceType, TimeUnit, TransformOptions};
use kline_etl::extract::archive::inflate;
use kline_etl::extract::{ExtractConfig, ExtractEvent, Extractor, KlineTask, RunReport};
use kline_etl::interval::{Interval, MINUTE_MS};
use kline_etl::market::Market;
use kline_etl::simulator::{FaultPlan, Latency, RateWindow, SimConfig, SimHandle, Simulator};
use tokio::sync::{mpsc, watch};

/// 2024-06-01T00:00:00Z, the fixed data clock.
const NOW: i64 = 1_717_200_000_000;

fn opts() -> TransformOptions {
    TransformOptions {
        prices: PriceType::Float64,
        time_unit: TimeUnit::Millisecond,
        include_forming: false,
        on_violation: OnViolation::Report,
    }
}

async fn backfill(sim: &SimHandle, cfg: ExtractConfig, tasks: Vec<KlineTask>) -> (RunReport, u64) {
    let _ = sim;
    let (tx, mut rx) = mpsc::channel(16);
    let (_keep, cancel) = watch::channel(false);
    let consume = async move {
        let mut rows = 0u64;
        while let Some(ev) = rx.recv().await {
            if let ExtractEvent::Rows { rows: r, .. } = ev {
                rows += r.len() as u64;
            }
        }
        rows
    };
    let (report, rows) = tokio::join!(Extractor::new(cfg).run(tasks, tx, cancel), consume);
    (report.expect("extractor starts"), rows)
}

fn task(symbol: &str, start: i64, end: i64) -> KlineTask {
    KlineTask {
        market: Market::Spot,
        symbol: symbol.parse().expect("valid symbol"),
        interval: Interval::M1,
        start_ms: start,
        end_ms: end,
    }
}

/// The runtime every bench drives the simulator and the client on: two workers, as on the
/// 2-core machine the figures come from.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn unlimited(c: &mut Criterion) {
    let rt = runtime();
    let sim = rt
        .block_on(Simulator::start(
            // One-second windows: the simulator's used-weight count (it never refuses here)
            // restarts often, so the extractor's default limit, in force until exchangeInfo
            // answers, is never reached by the bench's accumulated weight.
            SimConfig::default()
                .with_now(NOW)
                .with_window(RateWindow::seconds(1))
                .with_weight_limit(Market::Spot, u32::MAX),
        ))
        .expect("simulator starts");
    let mut group = c.benchmark_group("extract");
    group.sample_size(10);
    group.throughput(Throughput::Elements(100_000));
    let mut k = 0i64;
    group.bench_function("unlimited_1m_100k_rows", |b| {
        b.iter(|| {
            // A different range each time, walking back from now.
            k = k % 20 + 1;
            let end = NOW - k * 100_000 * MINUTE_MS;
            let mut cfg = ExtractConfig::new(Market::Spot, sim.base_url(), opts());
            cfg.probe_listing = false;
            let (report, rows) = rt.block_on(backfill(
                &sim,
                cfg,
                vec![task("ETHUSDT", end - 100_000 * MINUTE_MS, end)],
            ));
            assert_eq!(rows, 100_000, "ETHUSDT has no gaps");
            if std::env::var_os("EXTRACT_BENCH_VERBOSE").is_some() {
                eprintln!("k={k} {:?}", report.metrics);
            }
        });
    });
    group.finish();
}

fn utilisation(_c: &mut Criterion) {
    const LIMIT: u32 = 300;
    let rt = runtime();
    let sim = rt
        .block_on(Simulator::start(
            SimConfig::default()
                .with_now(NOW)
                .with_window(RateWindow::seconds(2))
                .with_weight_limit(Market::Spot, LIMIT)
                .with_faults(FaultPlan {
                    latency: Latency {
                        fixed_ms: 2,
                        jitter_ms: 3,
                    },
                    ..FaultPlan::none()
                }),
        ))
        .expect("simulator starts");
    // 2,000 pages of weight 2 over 4 symbols: about 13 windows of 300.
    let days = 500 * 1000 / 1440;
    let tasks = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT"]
        .iter()
        .map(|s| task(s, NOW - days * 1440 * MINUTE_MS, NOW))
        .collect();
    let mut cfg = ExtractConfig::new(Market::Spot, sim.base_url(), opts());
    cfg.weight_share = 1.0;
    cfg.window_guard_ms = 100;
    cfg.timeout = Duration::from_secs(10);
    let (report, rows) = rt.block_on(backfill(&sim, cfg, tasks));
    let stats = sim.stats();
    let w: Vec<u64> = stats.weight_windows.iter().map(|w| w.weight).collect();
    let full = &w[1..w.len().saturating_sub(1).max(1)];
    let used: u64 = full.iter().sum();
    let pct = 100.0 * used as f64 / (full.len() as f64 * f64::from(LIMIT));
    eprintln!(
        "extract/budget: {rows} rows, {} requests, window weights {w:?} (limit {LIMIT} per 2 s); \
         full windows at {pct:.1}% of the limit; 429s {} 418s {}; outcome {:?}; {} ms",
        report.metrics.requests,
        stats.sent_429,
        stats.sent_418,
        report.outcome,
        report.metrics.elapsed_ms
    );
}

fn archive(c: &mut Criterion) {
    let rt = runtime();
    let sim = rt
        .block_on(Simulator::start(SimConfig::default().with_now(NOW)))
        .expect("simulator starts");
    let url = format!(
        "{}/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2023-05.zip",
        sim.base_url()
    );
    let zip = rt
        .block_on(async { reqwest::get(&url).await?.error_for_status()?.bytes().await })
        .expect("the simulator serves the month");
    let mut text = Vec::new();
    let mut a = zip::ZipArchive::new(Cursor::new(&zip[..])).expect("a zip");
    assert!(inflate::whole(&mut a, &zip, inflate::WHOLE_MAX, &mut text).expect("inflates"));
    let mut group = c.benchmark_group("archive/inflate_month_1m");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("whole", |b| {
        b.iter(|| {
            let mut a = zip::ZipArchive::new(Cursor::new(&zip[..])).expect("a zip");
            assert!(inflate::whole(&mut a, &zip, inflate::WHOLE_MAX, &mut text).expect("inflates"));
        });
    });
    group.bench_function("streamed", |b| {
        b.iter(|| {
            let mut a = zip::ZipArchive::new(Cursor::new(&zip[..])).expect("a zip");
            let entry = a.by_index(0).expect("an entry");
            let mut r = BufReader::with_capacity(1 << 16, entry);
            let mut n = 0;
            loop {
                let got = r.fill_buf().expect("inflates").len();
                if got == 0 {
                    break;
                }
                n += got;
                r.consume(got);
            }
            assert_eq!(n, text.len());
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = utilisation, unlimited, archive
}
criterion_main!(benches);

//! Simulator throughput: pages of 1000 one-minute klines generated (ground-truth path, no
//! HTTP) and served over loopback HTTP to a reqwest client, both on ONE thread (a
//! current-thread tokio runtime runs server and client), no latency, no weight limit.
//! Goal: at least 200 pages of 1000 klines per second.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kline_etl::interval::{Interval, MINUTE_MS};
use kline_etl::market::Market;
use kline_etl::simulator::{SimConfig, Simulator};
use kline_etl::symbol::Symbol;

/// 2024-06-01T00:00:00Z, the fixed data clock.
const NOW: i64 = 1_717_200_000_000;
const PAGE: i64 = 1000;

fn pages(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let sim = rt
        .block_on(Simulator::start(
            SimConfig::default()
                .with_now(NOW)
                .with_weight_limit(Market::Spot, u32::MAX)
                .with_weight_limit(Market::UsdM, u32::MAX),
        ))
        .expect("simulator starts");
    kline_etl::tls::ensure_provider(); // reqwest needs the TLS provider
    let client = reqwest::Client::new();
    let symbol: Symbol = "BTCUSDT".parse().expect("valid symbol");

    let mut group = c.benchmark_group("simulator");
    group.throughput(Throughput::Elements(PAGE as u64));

    // Walk back from now one page at a time so every page is new work.
    let mut k = 0i64;
    group.bench_function("generate_1m_page_1000", |b| {
        b.iter(|| {
            k = (k + 1) % 2000;
            let start = NOW - (k + 1) * PAGE * MINUTE_MS;
            let rows = sim.expected_klines(
                Market::Spot,
                &symbol,
                Interval::M1,
                start,
                start + PAGE * MINUTE_MS,
            );
            assert_eq!(rows.len(), 1000);
            black_box(rows)
        });
    });

    for (name, market_path, symbol) in [
        ("serve_spot_1m_page_1000", "/api/v3", "BTCUSDT"),
        ("serve_usdm_1m_page_1000", "/fapi/v1", "ETHUSDT"),
    ] {
        let mut k = 0i64;
        group.bench_function(name, |b| {
            b.iter(|| {
                k = (k + 1) % 2000;
                let start = NOW - (k + 1) * PAGE * MINUTE_MS;
                let url = format!(
                    "{}{market_path}/klines?symbol={symbol}&interval=1m&startTime={start}&limit=1000",
                    sim.base_url()
                );
                let body = rt.block_on(async {
                    let resp = client.get(&url).send().await.expect("request");
                    assert!(resp.status().is_success());
                    resp.bytes().await.expect("body")
                });
                black_box(body)
            });
        });
    }

    // Daily pages hit the aggregate cache after the first pass.
    group.throughput(Throughput::Elements(1000));
    group.bench_function("serve_spot_1d_page_1000_cached", |b| {
        let url = format!(
            "{}/api/v3/klines?symbol=ETHUSDT&interval=1d&startTime=0&limit=1000",
            sim.base_url()
        );
        b.iter(|| {
            let body = rt.block_on(async {
                client
                    .get(&url)
                    .send()
                    .await
                    .expect("request")
                    .bytes()
                    .await
                    .expect("body")
            });
            black_box(body)
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).without_plots();
    targets = pages
}
criterion_main!(benches);

//! Throughput of the transform and load path, in rows per second, on realistic 1000-row
//! `/klines` pages generated from the real BTCUSDT 1h spot fixture (8-decimal strings).
//!
//! Run: `cargo bench --bench transform -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use kline_etl::config::{
    Compression, OnViolation, PartitionSpec, PriceType, TimeUnit, TransformOptions,
};
use kline_etl::interval::{HOUR_MS, Interval};
use kline_etl::load::{DatasetWriter, PartitionKey, Period, TaskKey, TaskSink, WriteOptions};
use kline_etl::market::Market;
use kline_etl::symbol::Symbol;
use kline_etl::transform::{KlineContext, parse_klines};

const PAGE_ROWS: usize = 1000;
/// Pages per "pages -> Parquet" iteration: 44 pages ≈ a month of 1m candles (44,640).
const PAGES: usize = 44;

/// `n` pages of 1000 rows: the fixture's rows cycled, open/close times shifted to stay on a
/// contiguous 1h grid, every other field verbatim.
fn pages(n: usize) -> Vec<String> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for m in 1..=5 {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
            "tests/fixtures/real/intabyu-interview-at/BTCUSDT-1h-2023-0{m}.csv"
        ));
        let text = std::fs::read_to_string(p).expect("fixture present");
        rows.extend(
            text.lines()
                .filter(|l| !l.starts_with("open_time"))
                .map(|l| l.split(',').map(str::to_owned).collect()),
        );
    }
    let t0: i64 = 1_672_531_200_000;
    (0..n)
        .map(|p| {
            let body: Vec<String> = (0..PAGE_ROWS)
                .map(|i| {
                    let k = p * PAGE_ROWS + i;
                    let f = &rows[k % rows.len()];
                    let open = t0 + k as i64 * HOUR_MS;
                    format!(
                        r#"[{open},"{}","{}","{}","{}","{}",{},"{}",{},"{}","{}","{}"]"#,
                        f[1],
                        f[2],
                        f[3],
                        f[4],
                        f[5],
                        open + HOUR_MS - 1,
                        f[7],
                        f[8],
                        f[9],
                        f[10],
                        f[11]
                    )
                })
                .collect();
            format!("[{}]", body.join(","))
        })
        .collect()
}

fn options(prices: PriceType) -> WriteOptions {
    WriteOptions {
        pipeline: "bench".to_owned(),
        source: "simulator".to_owned(),
        transform: TransformOptions {
            prices,
            time_unit: TimeUnit::Millisecond,
            include_forming: false,
            on_violation: OnViolation::Report,
        },
        // The pipelines' default (`compression: zstd`).
        compression: Compression::Zstd(kline_etl::config::validate::DEFAULT_ZSTD_LEVEL),
        row_group_rows: 100_000,
        partition: PartitionSpec::None,
    }
}

fn bench(c: &mut Criterion) {
    let symbol: Symbol = "BTCUSDT".parse().expect("valid symbol");
    let one = pages(1).remove(0);
    let many = pages(PAGES);
    for prices in [PriceType::Float64, PriceType::Decimal] {
        let name = match prices {
            PriceType::Float64 => "float64",
            PriceType::Decimal => "decimal",
        };
        let o = options(prices);
        let ctx = KlineContext {
            market: Market::Spot,
            symbol: &symbol,
            interval: Interval::H1,
            options: &o.transform,
        };
        let mut g = c.benchmark_group(format!("transform/{name}"));
        g.throughput(Throughput::Elements(PAGE_ROWS as u64));
        g.bench_function("parse_page", |b| {
            b.iter(|| parse_klines(black_box(one.as_bytes()), &ctx).expect("parses"));
        });
        g.bench_function("parse_page_to_batch", |b| {
            b.iter(|| {
                parse_klines(black_box(one.as_bytes()), &ctx)
                    .expect("parses")
                    .to_record_batch(&ctx)
                    .expect("batch")
            });
        });
        g.finish();

        let task = TaskKey {
            market: Market::Spot,
            symbol: symbol.clone(),
            interval: Interval::H1,
        };
        let mut g = c.benchmark_group(format!("load/{name}"));
        g.throughput(Throughput::Elements((PAGES * PAGE_ROWS) as u64));
        g.sample_size(10);
        // Pages -> one zstd Parquet file in memory (parse, columns, encode; no file I/O).
        g.bench_function("pages_to_parquet_bytes", |b| {
            let key = PartitionKey {
                task: task.clone(),
                period: Period::Year(2024),
            };
            b.iter(|| {
                // Sized for the month, as the loader sizes a partition's buffer.
                let mut rows =
                    kline_etl::transform::KlineRows::with_capacity(prices, PAGES * PAGE_ROWS);
                for p in &many {
                    rows.append(parse_klines(p.as_bytes(), &ctx).expect("parses"));
                }
                let batch = rows.to_record_batch(&ctx).expect("batch");
                kline_etl::load::parquet::encode(&batch, &key, &o, &[], Path::new("bench"))
                    .expect("encodes")
            });
        });
        // Pages -> TaskSink -> file on disk (temp file, fsync, read-back check, rename).
        g.bench_function("pages_to_parquet_file", |b| {
            b.iter_batched(
                || tempfile::tempdir().expect("tempdir"),
                |dir| {
                    let mut sink =
                        TaskSink::new(DatasetWriter::new(dir.path(), o.clone()), task.clone());
                    for p in &many {
                        sink.push(parse_klines(p.as_bytes(), &ctx).expect("parses"))
                            .expect("pushes");
                    }
                    sink.finish().expect("writes");
                    dir
                },
                BatchSize::PerIteration,
            );
        });
        // The run summary's statistics of one partition (describe() sketches, returns, gaps).
        let month = {
            let mut rows =
                kline_etl::transform::KlineRows::with_capacity(prices, PAGES * PAGE_ROWS);
            for p in &many {
                rows.append(parse_klines(p.as_bytes(), &ctx).expect("parses"));
            }
            rows
        };
        g.bench_function("partition_statistics", |b| {
            b.iter(|| kline_etl::summary::report::series_stats(Interval::H1, black_box(&month)));
        });
        // The same month as archive CSV lines (data.binance.vision rendering), read and typed.
        let csv: String = many
            .iter()
            .flat_map(|p| {
                p.trim_start_matches("[[")
                    .trim_end_matches("]]")
                    .split("],[")
                    .map(|row| format!("{}\n", row.replace('"', "")))
                    .collect::<Vec<_>>()
            })
            .collect();
        g.bench_function("archive_csv_to_rows", |b| {
            let period = (month.open_time[0], month.open_time[month.len() - 1] + 1);
            b.iter(|| {
                let mut r = kline_etl::extract::archive::csv::FileReader::new(ctx, period);
                r.read(black_box(csv.as_bytes())).expect("reads");
                r.finish()
            });
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    // No plots: the crate's `plotters` features (ab_glyph, for `chart`) make criterion's plot
    // backend need a registered font, which the bench has no business setting up.
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);

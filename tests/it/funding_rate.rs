//! `dataset: funding_rate` end to end against the simulator: exactly the records the exchange
//! serves (USDⓈ-M and COIN-M, float64 and decimal, ms and µs), an incremental rerun costing
//! one request per symbol and rewriting nothing, the endpoint's own request limit respected
//! (and a 429 from it waited out), validation, and the example pipeline with `status` and
//! `summary`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kline_etl::config::{Pipeline, PriceType, TimeUnit, TransformOptions, parse_str};
use kline_etl::dataset::funding_rate::request::{PATH, fetch_window};
use kline_etl::dataset::funding_rate::rows::{FundingRecord, Value, read_partition};
use kline_etl::dataset::funding_rate::store::files_under;
use kline_etl::dataset::run_pipeline;
use kline_etl::extract::budget::WeightLimit;
use kline_etl::extract::{EndpointLimit, ExtractConfig, Extractor, NoProgress};
use kline_etl::market::Market;
use kline_etl::run::{RunOptions, RunResult};
use kline_etl::simulator::funding::FundingRow;
use kline_etl::simulator::{RateWindow, SimConfig, SimHandle, Simulator};
use kline_etl::symbol::Symbol;

use crate::harness::{cli, repo, stderr};

/// 2024-06-01T00:30:00Z: the simulator's frozen "now".
const NOW: i64 = 1_717_201_800_000;
const H8: i64 = 8 * 3_600_000;

async fn sim(cfg: SimConfig) -> SimHandle {
    Simulator::start(cfg.with_now(NOW)).await.unwrap()
}

fn pipeline(h: &SimHandle, out: &Path, market: &str, symbols: &str, transform: &str) -> Pipeline {
    let text = format!(
        "name: it-funding\nsource:\n  base_url: {}\n  market: {market}\ndataset: funding_rate\nsymbols: {symbols}\nrange:\n  start: 2019-01-01\n  end: now\n{transform}output:\n  path: {}\n",
        h.base_url(),
        out.display()
    );
    parse_str("it.yaml", &text, &|_| None).unwrap()
}

async fn run(p: &Pipeline) -> RunResult {
    let (_tx, rx) = tokio::sync::watch::channel(false);
    run_pipeline(p, &RunOptions::default(), Arc::new(NoProgress), rx)
        .await
        .unwrap()
}

fn requests(h: &SimHandle, path: &str) -> u64 {
    h.stats().requests.get(path).copied().unwrap_or(0)
}

fn series_dir(out: &Path, market: &str, symbol: &str) -> PathBuf {
    out.join(format!("funding_rate/market={market}/symbol={symbol}"))
}

fn stored(
    out: &Path,
    market: &str,
    symbol: &str,
    prices: PriceType,
    unit: TimeUnit,
) -> Vec<FundingRecord> {
    let mut all = Vec::new();
    for f in files_under(&series_dir(out, market, symbol)).unwrap() {
        all.extend(read_partition(&f, prices, unit).unwrap());
    }
    all
}

fn value(text: &str, prices: PriceType) -> Value {
    Value::parse(text, prices).unwrap()
}

/// The stored records equal the simulator's, field by field.
fn assert_exact(got: &[FundingRecord], want: &[FundingRow], prices: PriceType) {
    assert_eq!(got.len(), want.len(), "record count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.funding_time, w.funding_time);
        assert_eq!(
            g.funding_rate,
            value(&w.funding_rate, prices),
            "rate at {}",
            w.funding_time
        );
        let mark = w.mark_price.as_deref().filter(|m| !m.is_empty());
        assert_eq!(
            g.mark_price,
            mark.map(|m| value(m, prices)),
            "mark at {}",
            w.funding_time
        );
    }
}

fn hashes(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_under(dir)
        .unwrap()
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(out.join("funding_rate/_kline_etl/summary.json")).unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usdm_history_is_exactly_what_the_exchange_serves_and_a_rerun_costs_one_request_per_symbol()
{
    let h = sim(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let p = pipeline(&h, &out, "usdm", "[BTCUSDT, ETHUSDT]", "");
    let r = run(&p).await;
    assert_eq!(r.exit.code(), 0);
    let start = 1_546_300_800_000; // 2019-01-01
    let mut pages = 0;
    for s in ["BTCUSDT", "ETHUSDT"] {
        let want = h.expected_funding(Market::UsdM, &s.parse::<Symbol>().unwrap(), start, NOW);
        assert!(want.len() > 4_000, "{s}: {}", want.len());
        // Records start at listing, a few ms past the hour, with `""` mark prices early on.
        assert!(want.iter().all(|w| (0..7).contains(&(w.funding_time % H8))));
        assert!(want.iter().any(|w| w.mark_price.as_deref() == Some("")));
        let got = stored(&out, "usdm", s, PriceType::Float64, TimeUnit::Millisecond);
        assert_exact(&got, &want, PriceType::Float64);
        pages += want.len().div_ceil(1000) as u64;
        // One file per year.
        assert!(
            series_dir(&out, "usdm", s)
                .join("year=2024/funding_rate-2024.parquet")
                .is_file()
        );
    }
    // Pages of 1000 and nothing else: the records fit in `pages` requests exactly.
    assert_eq!(requests(&h, "/fapi/v1/fundingRate"), pages);
    let doc = summary(&out);
    assert_eq!(doc["dataset"], "funding_rate");
    assert_eq!(doc["run"]["http_429"], 0);
    assert_eq!(doc["run"]["request_limit"], "500/5M");
    let btc = &doc["series"][0];
    assert_eq!(btc["symbol"], "BTCUSDT");
    assert_eq!(btc["interval_hours"], 8);
    assert_eq!(btc["missing"], 0);
    assert!(btc["negative"].as_u64().unwrap() > 0, "sign changes: {btc}");
    assert!(btc["mark_price_nulls"].as_u64().unwrap() > 0);
    let annual = btc["annualized_mean_rate"].as_f64().unwrap();
    let mean = btc["mean_rate"].as_f64().unwrap();
    assert!((annual - mean * 1095.0).abs() < 1e-9);
    assert_eq!(btc["requested_from"], "2019-01-01T00:00:00.000Z");

    // The nightly rerun: one request per symbol, nothing new, every file byte-identical.
    let before = hashes(&out.join("funding_rate"));
    let n0 = requests(&h, "/fapi/v1/fundingRate");
    let r = run(&p).await;
    assert_eq!(r.exit.code(), 0);
    assert_eq!(requests(&h, "/fapi/v1/fundingRate") - n0, 2);
    assert_eq!(
        hashes(&out.join("funding_rate")),
        before,
        "a rerun changed bytes"
    );
    let doc = summary(&out);
    assert_eq!(doc["run"]["records_new"], 0);
    assert_eq!(doc["run"]["files_written"], 0);

    // Sixteen hours later: two new records per symbol, still one request each; only the
    // current year's file is rewritten.
    h.advance(2 * H8);
    let n0 = requests(&h, "/fapi/v1/fundingRate");
    let r = run(&p).await;
    assert_eq!(r.exit.code(), 0);
    assert_eq!(requests(&h, "/fapi/v1/fundingRate") - n0, 2);
    let doc = summary(&out);
    assert_eq!(doc["run"]["records_new"], 4);
    assert_eq!(doc["run"]["files_written"], 2);
    let after = hashes(&out.join("funding_rate"));
    let changed: Vec<&PathBuf> = after
        .iter()
        .filter(|(p, b)| before.get(*p) != Some(*b))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(
        changed
            .iter()
            .all(|p| p.to_string_lossy().contains("year=2024"))
    );
    let want = h.expected_funding(
        Market::UsdM,
        &"BTCUSDT".parse().unwrap(),
        start,
        NOW + 2 * H8,
    );
    let got = stored(
        &out,
        "usdm",
        "BTCUSDT",
        PriceType::Float64,
        TimeUnit::Millisecond,
    );
    assert_exact(&got, &want, PriceType::Float64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinm_decimal_microseconds_and_usdm_decimal_are_exact() {
    let h = sim(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let transform = "transform:\n  prices: decimal\n  time_unit: us\n";
    let out = dir.path().join("coinm");
    let p = pipeline(&h, &out, "coinm", "[BTCUSD_PERP]", transform);
    assert_eq!(run(&p).await.exit.code(), 0);
    let want = h.expected_funding(Market::CoinM, &"BTCUSD_PERP".parse().unwrap(), 0, NOW);
    let got = stored(
        &out,
        "coinm",
        "BTCUSD_PERP",
        PriceType::Decimal,
        TimeUnit::Microsecond,
    );
    assert_exact(&got, &want, PriceType::Decimal);
    // COIN-M replies carry no mark price: the column is all null, not zero.
    assert!(got.iter().all(|r| r.mark_price.is_none()));
    assert!(requests(&h, "/dapi/v1/fundingRate") >= 2);
    // The files really are µs and Decimal128(38, 8).
    let f = files_under(&series_dir(&out, "coinm", "BTCUSD_PERP")).unwrap();
    let meta = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&f[0]).unwrap(),
    )
    .unwrap();
    let schema = meta.schema();
    assert_eq!(
        schema.field(0).data_type(),
        &arrow::datatypes::DataType::Timestamp(
            arrow::datatypes::TimeUnit::Microsecond,
            Some("UTC".into())
        )
    );
    assert_eq!(
        schema.field(2).data_type(),
        &arrow::datatypes::DataType::Decimal128(38, 8)
    );

    let out = dir.path().join("usdm");
    let p = pipeline(
        &h,
        &out,
        "usdm",
        "[SOLUSDT]",
        "transform:\n  prices: decimal\n",
    );
    assert_eq!(run(&p).await.exit.code(), 0);
    let want = h.expected_funding(Market::UsdM, &"SOLUSDT".parse().unwrap(), 0, NOW);
    let got = stored(
        &out,
        "usdm",
        "SOLUSDT",
        PriceType::Decimal,
        TimeUnit::Millisecond,
    );
    assert_exact(&got, &want, PriceType::Decimal);
    assert!(got.iter().any(|r| r.mark_price.is_some()));
}

/// A session whose `/fundingRate` limit is `limit` requests per `secs` seconds.
async fn session(
    h: &SimHandle,
    market: Market,
    limit: u32,
    secs: u32,
) -> kline_etl::extract::Session {
    let mut cfg = ExtractConfig::new(market, h.base_url(), TransformOptions::default());
    cfg.weight_share = 1.0;
    cfg.endpoint_limits.push(EndpointLimit {
        paths: vec![PATH],
        limit: WeightLimit {
            limit,
            unit: 'S',
            num: secs,
        },
    });
    Extractor::new(cfg).connect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_limit_is_respected_without_a_single_429() {
    // The exchange allows 4 funding requests per 2 s; the client knows it.
    let h = sim(SimConfig::default().with_funding_limit(4, RateWindow::seconds(2))).await;
    let s = session(&h, Market::UsdM, 4, 2).await;
    let (_tx, cancel) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    // Ten one-page windows: three windows of the limit at least.
    for i in 0..10 {
        let t0 = 1_704_067_200_000 + i * 10 * H8;
        let f = fetch_window(
            &s,
            "BTCUSDT",
            (t0, t0 + 3 * H8),
            PriceType::Float64,
            &cancel,
        )
        .await;
        assert!(f.error.is_none(), "{:?}", f.error);
        assert_eq!((f.requests, f.records.len()), (1, 3));
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(h.stats().sent_429, 0);
    assert_eq!(s.metrics().http_429, 0);
    assert_eq!(requests(&h, "/fapi/v1/fundingRate"), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_from_the_funding_limit_is_waited_out_and_the_history_is_complete() {
    // The exchange allows 2 per 2 s, the client believes 100: it gets 429s, pauses for
    // Retry-After and the window, and carries on.
    let cfg = SimConfig::default()
        .with_window(RateWindow::seconds(2))
        .with_funding_limit(2, RateWindow::seconds(2));
    let h = sim(cfg).await;
    let s = session(&h, Market::UsdM, 100, 2).await;
    let (_tx, cancel) = tokio::sync::watch::channel(false);
    let f = fetch_window(&s, "BTCUSDT", (0, NOW), PriceType::Decimal, &cancel).await;
    assert!(f.error.is_none(), "{:?}", f.error);
    assert!(f.requests >= 5);
    let want = h.expected_funding(Market::UsdM, &"BTCUSDT".parse().unwrap(), 0, NOW);
    assert_exact(&f.records, &want, PriceType::Decimal);
    assert!(s.metrics().http_429 >= 1, "the test needs at least one 429");
    assert_eq!(
        h.stats().sent_418,
        0,
        "a 429 was followed by more requests in its window"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_and_intervals_are_configuration_errors() {
    let spot = "name: x\nsource: { market: spot }\ndataset: funding_rate\nsymbols: [BTCUSDT]\nrange: { start: 2024-01-01 }\n";
    let e = parse_str("x.yaml", spot, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("spot has no funding rate"), "{e}");
    let iv = "name: x\nsource: { market: usdm }\ndataset: funding_rate\nsymbols: [BTCUSDT]\nintervals: [8h]\nrange: { start: 2024-01-01 }\n";
    let e = parse_str("x.yaml", iv, &|_| None).unwrap_err().to_string();
    assert!(
        e.contains("`intervals` applies to the klines dataset only"),
        "{e}"
    );
    let no_range =
        "name: x\nsource: { market: coinm }\ndataset: funding_rate\nsymbols: [BTCUSD_PERP]\n";
    let e = parse_str("x.yaml", no_range, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("the funding_rate dataset needs it"), "{e}");
    // Through the binary: exit 2.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spot.yaml");
    std::fs::write(&path, spot).unwrap();
    let o = cli(dir.path(), &["validate", path.to_str().unwrap()], &[]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_pipeline_runs_offline_and_status_and_summary_show_it() {
    let cwd = tempfile::tempdir().unwrap();
    let example = repo().join("pipelines/usdm-funding-rate.yaml");
    let example = example.to_str().unwrap();
    let first = cli(cwd.path(), &["run", example], &[]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let out = cwd.path().join("data/futures");
    let files = hashes(&out.join("funding_rate"));
    assert!(
        files
            .keys()
            .any(|p| p.ends_with("market=usdm/symbol=ETHUSDT/year=2024/funding_rate-2024.parquet"))
    );
    let again = cli(cwd.path(), &["-q", "run", example], &[]).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(hashes(&out.join("funding_rate")), files);
    let doc = summary(&out);
    let tasks = doc["run"]["tasks"].as_array().unwrap();
    assert!(tasks.iter().all(|t| t["requests"] == 1), "{tasks:?}");

    let st = cli(cwd.path(), &["status", "data/futures"], &[]).await;
    let text = String::from_utf8_lossy(&st.stdout);
    assert_eq!(st.status.code(), Some(0), "{}", stderr(&st));
    assert!(
        text.contains("funding_rate") && text.contains("ETHUSDT"),
        "{text}"
    );
    let sm = cli(cwd.path(), &["summary", "--json", "data/futures"], &[]).await;
    assert_eq!(sm.status.code(), Some(0), "{}", stderr(&sm));
    let doc: serde_json::Value = serde_json::from_slice(&sm.stdout).unwrap();
    assert_eq!(doc["series"].as_array().unwrap().len(), 2);
    assert_eq!(doc["series"][0]["interval_hours"], 8);
}

#[test]
fn the_pipeline_reference_documents_the_dataset() {
    let raw = std::fs::read_to_string(repo().join("src/config/raw.rs")).unwrap();
    let reference = std::fs::read_to_string(repo().join("docs/pipeline-reference.md")).unwrap();
    for text in [&raw, &reference] {
        assert!(text.contains("funding_rate"), "funding_rate undocumented");
    }
}

/// The dataset as pyarrow and pandas read it (`tests/python/interop_funding.py`), in both
/// price types and time units; runs when `KLINE_ETL_PYTHON` names a Python with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_readers_read_funding_rates() {
    let Some(python) = std::env::var_os("KLINE_ETL_PYTHON") else {
        eprintln!("skipping python_readers_read_funding_rates: set KLINE_ETL_PYTHON to run it");
        return;
    };
    let h = sim(SimConfig::default()).await;
    for (market, symbols, transform, prices, unit) in [
        ("usdm", "[BTCUSDT, ETHUSDT]", "", "float64", "ms"),
        (
            "coinm",
            "[BTCUSD_PERP, ETHUSD_PERP]",
            "transform:\n  prices: decimal\n  time_unit: us\n",
            "decimal",
            "us",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let p = pipeline(&h, &out, market, symbols, transform);
        assert_eq!(run(&p).await.exit.code(), 0);
        let rows: u64 = summary(&out)["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["records"].as_u64().unwrap())
            .sum();
        let script = repo().join("tests/python/interop_funding.py");
        let o = std::process::Command::new(&python)
            .arg(&script)
            .arg(out.join("funding_rate"))
            .args([prices, unit, &rows.to_string()])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "interop_funding.py failed for {market}:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

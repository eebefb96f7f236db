//! Snapshot datasets (`ticker_price`, `depth`) and the futures kline families (mark price,
//! index price, premium index, continuous) end to end against the simulator, per market:
//! what is written, where, typed how; the weight of every request kind (the simulator's
//! used-weight windows); bad symbols failing alone; reruns of the same snapshot not
//! duplicating; and the simulator's own answers for the new endpoints.

// h, p, r, b: the simulator, a pipeline, a run result, a record batch, in every test.
#![allow(clippy::many_single_char_names)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Decimal128Type, Float64Type, Int64Type, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use kline_etl::config::{Pipeline, parse_str};
use kline_etl::dataset::run_pipeline;
use kline_etl::exit::ExitCode;
use kline_etl::extract::NoProgress;
use kline_etl::run::{RunOptions, RunResult};
use kline_etl::simulator::{
    FaultKind, FaultPlan, RateWindow, SimConfig, SimHandle, Simulator, WindowUnit,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

/// 2024-06-01T00:30:00Z, a whole second: the simulator's frozen "now".
const NOW: i64 = 1_717_201_800_000;

async fn sim() -> SimHandle {
    sim_with(SimConfig::default()).await
}

async fn sim_with(cfg: SimConfig) -> SimHandle {
    // A day-long weight window: every request of a test lands in one window.
    let cfg = cfg.with_now(NOW).with_window(RateWindow {
        unit: WindowUnit::Day,
        num: 1,
    });
    Simulator::start(cfg).await.unwrap()
}

fn pipeline(h: &SimHandle, out: &Path, body: &str) -> Pipeline {
    let text = format!(
        "name: it-snap\nsource:\n  base_url: {}\n  MARKET\n{body}\noutput:\n  path: {}\n",
        h.base_url(),
        out.display()
    );
    // The market line is part of `body` when given; drop the placeholder otherwise.
    let text = match body.lines().find(|l| l.starts_with("market:")) {
        Some(m) => text.replace("MARKET", m).replace(&format!("\n{m}"), ""),
        None => text.replace("  MARKET\n", ""),
    };
    parse_str("it.yaml", &text, &|_| None).unwrap()
}

async fn run(p: &Pipeline) -> RunResult {
    let (_tx, rx) = tokio::sync::watch::channel(false);
    run_pipeline(p, &RunOptions::default(), Arc::new(NoProgress), rx)
        .await
        .unwrap()
}

/// The run's `_summary.json`.
fn report_of(r: &RunResult) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(&r.summary_path).unwrap()).unwrap()
}

/// Weight the simulator accepted so far (all markets, one day window).
fn weight(h: &SimHandle) -> u64 {
    h.stats().weight_windows.iter().map(|w| w.weight).sum()
}

fn requests(h: &SimHandle, path: &str) -> u64 {
    h.stats().requests.get(path).copied().unwrap_or(0)
}

fn read(path: &Path) -> RecordBatch {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = r.map(Result::unwrap).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn names(b: &RecordBatch) -> Vec<String> {
    b.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

fn strings(b: &RecordBatch, col: &str) -> Vec<String> {
    let c = b.column_by_name(col).unwrap();
    let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap();
    c.as_string::<i32>()
        .iter()
        .map(|s| s.unwrap().to_owned())
        .collect()
}

fn f64s(b: &RecordBatch, col: &str) -> Vec<f64> {
    b.column_by_name(col)
        .unwrap()
        .as_primitive::<Float64Type>()
        .values()
        .to_vec()
}

fn summary(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The close of the latest 1m candle (the one containing "now") as the simulator serves it.
async fn last_close(h: &SimHandle, prefix: &str, symbol: &str) -> f64 {
    let url = format!(
        "{}{prefix}/klines?symbol={symbol}&interval=1m&limit=1",
        h.base_url()
    );
    kline_etl::tls::ensure_provider(); // reqwest needs the TLS provider
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v[0][4].as_str().unwrap().parse().unwrap()
}

fn ticker_file(out: &Path, market: &str) -> PathBuf {
    out.join(format!(
        "ticker_price/market={market}/date=2024-06-01/20240601T003000Z.parquet"
    ))
}

#[tokio::test]
async fn spot_ticker_list_is_one_request_of_weight_4_and_agrees_with_the_last_candle() {
    let h = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        &h,
        dir.path(),
        "dataset: ticker_price\nsymbols: [ETHUSDT, BTCUSDT]",
    );
    let r = run(&p).await;
    assert_eq!(r.exit, ExitCode::Ok);
    assert_eq!(requests(&h, "/api/v3/ticker/price"), 1);
    // /time 1 + exchangeInfo 20 + ticker/price with `symbols` 4.
    assert_eq!(weight(&h), 25);
    let b = read(&ticker_file(dir.path(), "spot"));
    assert_eq!(names(&b), ["snapshot_time", "symbol", "price"]);
    assert_eq!(strings(&b, "symbol"), ["BTCUSDT", "ETHUSDT"]);
    let t = b.column(0).as_primitive::<TimestampMillisecondType>();
    assert!(t.values().iter().all(|&v| v == NOW));
    let prices = f64s(&b, "price");
    assert_eq!(prices[0], last_close(&h, "/api/v3", "BTCUSDT").await);
    assert_eq!(prices[1], last_close(&h, "/api/v3", "ETHUSDT").await);
    // At a minute boundary the forming candle has not moved yet: the price is also the close
    // of the latest closed 1m candle.
    let url = format!(
        "{}/api/v3/klines?symbol=BTCUSDT&interval=1m&endTime={}&limit=1",
        h.base_url(),
        NOW - 1
    );
    kline_etl::tls::ensure_provider(); // reqwest needs the TLS provider
    let closed: Value =
        serde_json::from_str(&reqwest::get(url).await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(closed[0][6].as_i64(), Some(NOW - 1));
    assert_eq!(
        closed[0][4].as_str().unwrap().parse::<f64>().unwrap(),
        prices[0]
    );
    let s = summary(&r.summary_path);
    assert_eq!(
        r.summary_path,
        dir.path().join("ticker_price/_kline_etl/summary.json")
    );
    assert_eq!(s["ticker"]["symbols"], 2);
    assert_eq!(s["run"]["weight_used"], 25);
    assert_eq!(s["files_on_disk"], 1);
}

#[tokio::test]
async fn rerunning_the_same_snapshot_replaces_it_instead_of_duplicating() {
    let h = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(&h, dir.path(), "dataset: ticker_price\nsymbols: [BTCUSDT]");
    run(&p).await;
    let file = ticker_file(dir.path(), "spot");
    let first = std::fs::read(&file).unwrap();
    let r = run(&p).await;
    assert_eq!(r.exit, ExitCode::Ok);
    assert_eq!(std::fs::read(&file).unwrap(), first);
    let s = summary(&r.summary_path);
    assert_eq!(
        (
            s["files_on_disk"].as_u64(),
            s["run"]["files_replaced"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // One symbol: `symbol=` at weight 2, twice.
    assert_eq!(weight(&h), 2 * (1 + 20 + 2));
    // A later snapshot is appended.
    h.advance(60_000);
    run(&p).await;
    let files = std::fs::read_dir(file.parent().unwrap()).unwrap().count();
    assert_eq!(files, 2);
}

#[tokio::test]
async fn repair_is_refused_for_snapshot_datasets() {
    let h = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(&h, dir.path(), "dataset: depth\nsymbols: [BTCUSDT]");
    let opts = RunOptions {
        mode: kline_etl::run::RunMode::Repair {
            exchange_gaps: false,
        },
        ..RunOptions::default()
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let e = run_pipeline(&p, &opts, Arc::new(NoProgress), rx)
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::Usage);
    assert!(
        e.to_string().contains("`repair` applies to kline datasets"),
        "{e}"
    );
    assert_eq!(requests(&h, "/api/v3/depth"), 0);
}

#[tokio::test]
async fn a_bad_spot_symbol_fails_alone() {
    let h = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        &h,
        dir.path(),
        "dataset: ticker_price\nsymbols: [BTCUSDT, NOPEUSDT]",
    );
    let r = run(&p).await;
    assert_eq!(r.exit, ExitCode::TasksFailed);
    // The list is refused (-1121), then each symbol alone: 4 + 2 + 2.
    assert_eq!(requests(&h, "/api/v3/ticker/price"), 3);
    assert_eq!(weight(&h), 21 + 4 + 2 + 2);
    let b = read(&ticker_file(dir.path(), "spot"));
    assert_eq!(strings(&b, "symbol"), ["BTCUSDT"]);
    let s = summary(&r.summary_path);
    let f = &s["run"]["failures"][0];
    assert_eq!(f["symbol"], "NOPEUSDT");
    assert!(f["error"].as_str().unwrap().contains("-1121"), "{f}");
}

#[tokio::test]
async fn futures_tickers_weigh_2_for_the_market_and_1_for_one_symbol_and_type_decimals() {
    let h = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        &h,
        dir.path(),
        "market: usdm\ndataset: ticker_price\nsymbols: [BTCUSDT, ETHUSDT, NOPEUSDT]\ntransform: { prices: decimal }",
    );
    let r = run(&p).await;
    // Futures take no list: the whole market (weight 2), filtered; the unknown symbol is
    // missing from it and fails alone.
    assert_eq!(r.exit, ExitCode::TasksFailed);
    assert_eq!(weight(&h), 1 + 1 + 2);
    let b = read(&ticker_file(dir.path(), "usdm"));
    assert_eq!(strings(&b, "symbol"), ["BTCUSDT", "ETHUSDT"]);
    let price = b.column_by_name("price").unwrap();
    assert_eq!(
        price.data_type(),
        &arrow::datatypes::DataType::Decimal128(38, 8)
    );
    let btc = price.as_primitive::<Decimal128Type>().value(0) as f64 / 1e8;
    assert_eq!(btc, last_close(&h, "/fapi/v1", "BTCUSDT").await);

    let p = pipeline(
        &h,
        dir.path(),
        "market: coinm\ndataset: ticker_price\nsymbols: [BTCUSD_PERP]",
    );
    let before = weight(&h);
    assert_eq!(run(&p).await.exit, ExitCode::Ok);
    assert_eq!(weight(&h) - before, 1 + 1 + 1);
    let b = read(&ticker_file(dir.path(), "coinm"));
    assert_eq!(strings(&b, "symbol"), ["BTCUSD_PERP"]);
}

#[tokio::test]
async fn a_ticker_selector_reads_the_whole_market_once() {
    let h = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        &h,
        dir.path(),
        "dataset: ticker_price\nsymbols: { quote: [USDT] }",
    );
    assert_eq!(run(&p).await.exit, ExitCode::Ok);
    assert_eq!(weight(&h), 1 + 20 + 4);
    let b = read(&ticker_file(dir.path(), "spot"));
    let syms = strings(&b, "symbol");
    // Every trading USDT symbol listed by then (LUNAUSDT is delisted, NEWUSDT not listed).
    assert_eq!(
        syms,
        [
            "ADAUSDT", "BNBUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"
        ]
    );
    assert!(f64s(&b, "price").iter().all(|p| *p > 0.0));
}

fn depth_file(out: &Path, market: &str, symbol: &str) -> PathBuf {
    out.join(format!(
        "depth/market={market}/date=2024-06-01/{symbol}-20240601T003000Z.parquet"
    ))
}

/// The plausibility of one stored book: sorted sides, best bid < best ask, levels 1..=n.
fn check_book(b: &RecordBatch, levels: usize) -> (f64, f64, i64) {
    let side = strings(b, "side");
    let price = f64s(b, "price");
    let qty = f64s(b, "quantity");
    let level: Vec<i32> = b
        .column_by_name("level")
        .unwrap()
        .as_primitive::<arrow::datatypes::Int32Type>()
        .values()
        .to_vec();
    let bids: Vec<f64> = (0..b.num_rows())
        .filter(|&i| side[i] == "bid")
        .map(|i| price[i])
        .collect();
    let asks: Vec<f64> = (0..b.num_rows())
        .filter(|&i| side[i] == "ask")
        .map(|i| price[i])
        .collect();
    assert_eq!((bids.len(), asks.len()), (levels, levels));
    assert!(bids.windows(2).all(|w| w[1] < w[0]), "bids descend");
    assert!(asks.windows(2).all(|w| w[1] > w[0]), "asks ascend");
    assert!(bids[0] < asks[0], "best bid below best ask");
    assert!(qty.iter().all(|q| *q > 0.0));
    assert_eq!(level[0], 1);
    assert_eq!(level[levels - 1], i32::try_from(levels).unwrap());
    let id = b
        .column_by_name("last_update_id")
        .unwrap()
        .as_primitive::<Int64Type>()
        .value(0);
    (bids[0], asks[0], id)
}

#[tokio::test]
async fn spot_depth_weighs_by_limit_and_stores_plausible_books() {
    let h = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        &h,
        dir.path(),
        "dataset: depth\ndepth_limit: 500\nsymbols: [BTCUSDT, ETHUSDT, NOPEUSDT]",
    );
    let r = run(&p).await;
    assert_eq!(r.exit, ExitCode::TasksFailed);
    // limit 500 weighs 25 per book, the refused one included.
    assert_eq!(weight(&h), 1 + 20 + 3 * 25);
    let b = read(&depth_file(dir.path(), "spot", "BTCUSDT"));
    assert_eq!(
        names(&b),
        [
            "snapshot_time",
            "symbol",
            "last_update_id",
            "side",
            "level",
            "price",
            "quantity"
        ]
    );
    let (bid, ask, id) = check_book(&b, 500);
    // The book straddles the ticker price (the latest candle's close).
    let last = last_close(&h, "/api/v3", "BTCUSDT").await;
    assert!(bid < last && last < ask, "{bid} < {last} < {ask}");
    check_book(&read(&depth_file(dir.path(), "spot", "ETHUSDT")), 500);
    assert!(
        !dir.path()
            .join("depth/market=spot/date=2024-06-01/NOPEUSDT-20240601T003000Z.parquet")
            .exists()
    );

    let s = summary(&r.summary_path);
    assert_eq!(
        r.summary_path,
        dir.path().join("depth/_kline_etl/summary.json")
    );
    let d = &s["depth"][0];
    assert_eq!(d["symbol"], "BTCUSDT");
    assert_eq!(d["bids"]["levels"], 500);
    assert!(d["spread"].as_f64().unwrap() > 0.0);
    assert_eq!(d["quality"]["crossed"], false);
    assert_eq!(s["run"]["failures"][0]["symbol"], "NOPEUSDT");

    // A later snapshot: a new file, a larger lastUpdateId.
    h.advance(5_000);
    let p = pipeline(
        &h,
        dir.path(),
        "dataset: depth\ndepth_limit: 5000\nsymbols: [BTCUSDT]",
    );
    let before = weight(&h);
    assert_eq!(run(&p).await.exit, ExitCode::Ok);
    assert_eq!(weight(&h) - before, 1 + 20 + 250);
    let later = dir
        .path()
        .join("depth/market=spot/date=2024-06-01/BTCUSDT-20240601T003005Z.parquet");
    let (_, _, id2) = check_book(&read(&later), 5000);
    assert!(id2 > id);
}

#[tokio::test]
async fn futures_depth_weights_follow_their_table() {
    let h = sim().await;
    let dir = tempfile::tempdir().unwrap();
    for (market, symbol, limit, w) in [
        ("usdm", "BTCUSDT", 1000, 20),
        ("usdm", "ETHUSDT", 100, 5),
        ("coinm", "BTCUSD_PERP", 5, 2),
        ("coinm", "ETHUSD_PERP", 500, 10),
    ] {
        let p = pipeline(
            &h,
            dir.path(),
            &format!("market: {market}\ndataset: depth\ndepth_limit: {limit}\nsymbols: [{symbol}]"),
        );
        let before = weight(&h);
        assert_eq!(run(&p).await.exit, ExitCode::Ok, "{market} {symbol}");
        assert_eq!(
            weight(&h) - before,
            1 + 1 + w,
            "{market} {symbol} limit {limit}"
        );
        check_book(&read(&depth_file(dir.path(), market, symbol)), limit);
    }
}

#[tokio::test]
async fn snapshot_requests_are_retried_like_pages() {
    // Requests 1 and 2 are /time and exchangeInfo; the first two /depth attempts fail.
    let faults = FaultPlan::none()
        .at(3, FaultKind::InternalError)
        .at(4, FaultKind::TruncatedBody);
    let h = sim_with(SimConfig::default().with_faults(faults)).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        &h,
        dir.path(),
        "dataset: depth
depth_limit: 10
symbols: [BTCUSDT]",
    );
    let r = run(&p).await;
    assert_eq!(r.exit, ExitCode::Ok);
    assert_eq!(requests(&h, "/api/v3/depth"), 3);
    check_book(&read(&depth_file(dir.path(), "spot", "BTCUSDT")), 10);
    let retries = &report_of(&r)["run"]["retries"];
    let total: u64 = retries
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 2, "{retries}");
}

#[tokio::test]
async fn a_long_ban_stops_a_snapshot_run_as_resumable() {
    let h = sim_with(
        SimConfig::default()
            .with_ban_base(std::time::Duration::from_secs(600))
            .with_faults(FaultPlan::none().at(3, FaultKind::Ban)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        &h,
        dir.path(),
        "dataset: ticker_price
symbols: [BTCUSDT]",
    );
    let r = run(&p).await;
    assert_eq!(r.exit, ExitCode::Resumable);
    assert!(!dir.path().join("ticker_price/market=spot").exists());
    let s = summary(&r.summary_path);
    assert_eq!(s["run"]["outcome"], "resumable");
    assert_eq!(s["run"]["http_418"], 1);
}

#[test]
fn plans_weigh_snapshots_like_the_run() {
    let plan = |text: &str| {
        let p = parse_str("x.yaml", &format!("name: x\n{text}\n"), &|_| None).unwrap();
        let plan = kline_etl::plan::build(&p, NOW);
        (plan.total_requests, plan.total_weight)
    };
    assert_eq!(
        plan("dataset: ticker_price\nsymbols: [BTCUSDT, ETHUSDT]"),
        (1, 4)
    );
    assert_eq!(plan("dataset: ticker_price\nsymbols: [BTCUSDT]"), (1, 2));
    // A selector: exchangeInfo (20) + the whole market (4).
    assert_eq!(
        plan("dataset: ticker_price\nsymbols: { quote: [USDT] }"),
        (2, 24)
    );
    assert_eq!(
        plan("source: { market: usdm }\ndataset: ticker_price\nsymbols: [BTCUSDT, ETHUSDT]"),
        (1, 2)
    );
    assert_eq!(
        plan("dataset: depth\ndepth_limit: 500\nsymbols: [BTCUSDT, ETHUSDT]"),
        (2, 50)
    );
    assert_eq!(plan("dataset: depth\nsymbols: [BTCUSDT]"), (1, 5));
    assert_eq!(
        plan(
            "source: { market: coinm }\ndataset: depth\ndepth_limit: 1000\nsymbols: [BTCUSD_PERP]"
        ),
        (1, 20)
    );
}

#[tokio::test]
async fn depth_limits_are_checked_per_market_at_validation() {
    let bad = |text: &str| {
        parse_str("x.yaml", text, &|_| None)
            .unwrap_err()
            .to_string()
    };
    let e = bad(
        "name: x\nsource: { market: usdm }\ndataset: depth\ndepth_limit: 37\nsymbols: [BTCUSDT]\n",
    );
    assert!(
        e.contains("4:14") && e.contains("one of 5, 10, 20, 50, 100, 500, 1000"),
        "{e}"
    );
    let e = bad("name: x\ndataset: depth\ndepth_limit: 5001\nsymbols: [BTCUSDT]\n");
    assert!(e.contains("from 1 to 5000"), "{e}");
    let e = bad("name: x\ndataset: ticker_price\ndepth_limit: 5\nsymbols: [BTCUSDT]\n");
    assert!(e.contains("depth dataset only"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Kline families.

fn family_pipeline(
    h: &SimHandle,
    out: &Path,
    market: &str,
    family: &str,
    symbols: &str,
) -> Pipeline {
    pipeline(
        h,
        out,
        &format!(
            "market: {market}\nkline_family: {family}\nsymbols: {symbols}\nintervals: [1h]\nrange: {{ start: 2024-05-30, end: 2024-06-01 }}"
        ),
    )
}

fn part(out: &Path, family: &str, market: &str, symbol: &str) -> PathBuf {
    out.join(format!(
        "{family}/klines/market={market}/symbol={symbol}/year=2024/1h-2024.parquet"
    ))
}

#[tokio::test]
async fn mark_index_and_premium_klines_store_only_meaningful_columns() {
    let h = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "usdm",
            "mark_price",
            "BTCUSDT",
            "/fapi/v1/markPriceKlines",
            "mark_price",
        ),
        (
            "usdm",
            "index_price",
            "BTCUSDT",
            "/fapi/v1/indexPriceKlines",
            "index_price",
        ),
        (
            "usdm",
            "premium_index",
            "ETHUSDT",
            "/fapi/v1/premiumIndexKlines",
            "premium_index",
        ),
        (
            "coinm",
            "mark_price",
            "BTCUSD_PERP",
            "/dapi/v1/markPriceKlines",
            "mark_price",
        ),
        (
            "coinm",
            "index_price",
            "BTCUSD",
            "/dapi/v1/indexPriceKlines",
            "index_price",
        ),
    ];
    for (market, family, symbol, path, root) in cases {
        let p = family_pipeline(&h, dir.path(), market, family, &format!("[{symbol}]"));
        let r = run(&p).await;
        assert_eq!(r.exit, ExitCode::Ok, "{market} {family}");
        assert!(requests(&h, path) >= 1, "{path}");
        let b = read(&part(dir.path(), root, market, symbol));
        assert_eq!(
            names(&b),
            [
                "open_time",
                "close_time",
                "open",
                "high",
                "low",
                "close",
                "interval"
            ],
            "{market} {family}"
        );
        assert_eq!(b.num_rows(), 48, "{market} {family}");
        assert_eq!(
            r.summary_path,
            dir.path().join(root).join("klines/_kline_etl/summary.json")
        );
        let (high, low) = (f64s(&b, "high"), f64s(&b, "low"));
        assert!(high.iter().zip(&low).all(|(h, l)| h >= l));
        if family == "premium_index" {
            // Rates around zero, negative ones included.
            assert!(low.iter().any(|v| *v < 0.0) && high.iter().all(|v| v.abs() < 0.01));
        }
    }
    // Rerun: nothing new, files unchanged, no volume columns appear.
    let p = family_pipeline(&h, dir.path(), "usdm", "mark_price", "[BTCUSDT]");
    let f = part(dir.path(), "mark_price", "usdm", "BTCUSDT");
    let before = std::fs::read(&f).unwrap();
    assert_eq!(run(&p).await.exit, ExitCode::Ok);
    assert_eq!(std::fs::read(&f).unwrap(), before);
    // Trade klines of the same symbol are untouched by the families.
    assert!(!dir.path().join("klines").exists());
}

#[tokio::test]
async fn continuous_klines_are_by_pair_and_contract_type_with_volumes() {
    let h = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = family_pipeline(&h, dir.path(), "usdm", "continuous", "[BTCUSDT]");
    assert_eq!(run(&p).await.exit, ExitCode::Ok);
    let f = dir.path().join(
        "continuous/contract_type=PERPETUAL/klines/market=usdm/symbol=BTCUSDT/year=2024/1h-2024.parquet",
    );
    let b = read(&f);
    assert_eq!(b.num_rows(), 48);
    assert!(names(&b).contains(&"volume".to_owned()) && names(&b).contains(&"trades".to_owned()));
    assert!(requests(&h, "/fapi/v1/continuousKlines") >= 1);
    // Another contract type is another directory.
    p.kline_family =
        kline_etl::config::KlineFamily::Continuous(kline_etl::config::ContractType::CurrentQuarter);
    assert_eq!(run(&p).await.exit, ExitCode::Ok);
    assert!(
        dir.path()
            .join("continuous/contract_type=CURRENT_QUARTER/klines/market=usdm")
            .is_dir()
    );
    // COIN-M continuous klines by pair, under the 200-day rule.
    let p = family_pipeline(&h, dir.path(), "coinm", "continuous", "[ETHUSD]");
    assert_eq!(run(&p).await.exit, ExitCode::Ok);
    assert!(requests(&h, "/dapi/v1/continuousKlines") >= 1);
}

#[tokio::test]
async fn a_bad_pair_fails_its_task() {
    let h = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let p = family_pipeline(&h, dir.path(), "usdm", "index_price", "[BTCUSDT, NOPEUSDT]");
    let r = run(&p).await;
    assert_eq!(r.exit, ExitCode::TasksFailed);
    assert!(part(dir.path(), "index_price", "usdm", "BTCUSDT").is_file());
    let report = report_of(&r);
    let bad = report["run"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["symbol"] == "NOPEUSDT")
        .unwrap();
    assert!(
        bad["error"].as_str().unwrap_or("").contains("-1121"),
        "{bad}"
    );
}

#[tokio::test]
async fn kline_families_are_futures_only_at_validation() {
    let e = parse_str(
        "x.yaml",
        "name: x\nkline_family: mark_price\nsymbols: [BTCUSDT]\nintervals: [1h]\nrange: { start: 2024-01-01 }\n",
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("2:15") && e.contains("futures markets only"),
        "{e}"
    );
    let e = parse_str(
        "x.yaml",
        "name: x\nsource: { market: usdm }\ncontract_type: PERPETUAL\nsymbols: [BTCUSDT]\nintervals: [1h]\nrange: { start: 2024-01-01 }\n",
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("kline_family: continuous"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// The simulator's answers for the family endpoints.

async fn get(h: &SimHandle, path: &str) -> (u16, u64, Value) {
    kline_etl::tls::ensure_provider(); // reqwest needs the TLS provider
    let resp = reqwest::get(format!("{}{path}", h.base_url()))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let w = resp
        .headers()
        .get("x-mbx-used-weight-1d")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        w,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn family_endpoints_validate_like_binance_and_weigh_by_limit() {
    let h = sim().await;
    let (s, _, v) = get(&h, "/fapi/v1/indexPriceKlines?symbol=BTCUSDT&interval=1h").await;
    assert_eq!((s, v["code"].as_i64()), (400, Some(-1102)));
    assert!(v["msg"].as_str().unwrap().contains("'pair'"));
    let (s, _, v) = get(
        &h,
        "/fapi/v1/continuousKlines?pair=BTCUSDT&contractType=WEEKLY&interval=1h",
    )
    .await;
    assert_eq!((s, v["code"].as_i64()), (400, Some(-1130)));
    let (s, _, v) = get(&h, "/fapi/v1/continuousKlines?pair=BTCUSDT&interval=1h").await;
    assert_eq!((s, v["code"].as_i64()), (400, Some(-1102)));
    let (s, _, v) = get(&h, "/fapi/v1/markPriceKlines?symbol=NOPEUSDT&interval=1h").await;
    assert_eq!((s, v["code"].as_i64()), (400, Some(-1121)));
    let (s, _, v) = get(
        &h,
        "/dapi/v1/premiumIndexKlines?symbol=BTCUSD_PERP&interval=1s",
    )
    .await;
    assert_eq!((s, v["code"].as_i64()), (400, Some(-1120)));
    let (s, _, _) = get(&h, "/api/v3/markPriceKlines?symbol=BTCUSDT&interval=1h").await;
    assert_eq!(s, 404);
    // Weight by limit, as klines: 1 below 100, 5 at the default 500, 10 above 1000.
    let (_, w0, v) = get(
        &h,
        "/fapi/v1/markPriceKlines?symbol=BTCUSDT&interval=1m&limit=99",
    )
    .await;
    assert_eq!(v.as_array().unwrap().len(), 99);
    // Mark rows: OHLC and times; volumes "0"; field 8 counts one-second samples.
    assert_eq!(
        (v[0][5].as_str(), v[0][7].as_str(), v[0][8].as_i64()),
        (Some("0"), Some("0"), Some(60))
    );
    let (_, w1, _) = get(&h, "/fapi/v1/markPriceKlines?symbol=BTCUSDT&interval=1m").await;
    // The families share the klines' limits and COIN-M's 200-day window.
    let (s, _, v) = get(
        &h,
        "/fapi/v1/premiumIndexKlines?symbol=BTCUSDT&interval=1m&limit=1501",
    )
    .await;
    assert_eq!((s, v["code"].as_i64()), (400, Some(-1130)));
    let (s, _, v) = get(
        &h,
        "/dapi/v1/markPriceKlines?symbol=BTCUSD_PERP&interval=1d&startTime=1600000000000&endTime=1700000000000",
    )
    .await;
    assert_eq!((s, v["code"].as_i64()), (400, Some(-1127)));
    let (_, w2, _) = get(
        &h,
        "/dapi/v1/indexPriceKlines?pair=BTCUSD&interval=1m&limit=1500",
    )
    .await;
    // COIN-M's counter: the refused premium and mark requests (default limit 500: 5 each),
    // then 10 for limit 1500.
    assert_eq!((w1 - w0, w2), (5, 5 + 5 + 10));
}

// ---------------------------------------------------------------------------------------------
// Interop.

/// Writes every new dataset (both price types and time units) and reads it back with pyarrow,
/// pandas, polars and DuckDB via `tests/python/interop_snapshots.py`.
#[tokio::test]
async fn python_readers_agree_on_snapshots_and_families() {
    let Some(python) = std::env::var_os("KLINE_ETL_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "KLINE_ETL_PYTHON must point at a Python with pyarrow, pandas, polars and duckdb in CI"
        );
        eprintln!("skipping python_readers_agree_on_snapshots_and_families: set KLINE_ETL_PYTHON");
        return;
    };
    let h = sim().await;
    for (prices, unit) in [("float64", "ms"), ("decimal", "us")] {
        let dir = tempfile::tempdir().unwrap();
        let t = format!("transform: {{ prices: {prices}, time_unit: {unit} }}");
        for body in [
            format!("dataset: ticker_price\nsymbols: [BTCUSDT, ETHUSDT]\n{t}"),
            format!("dataset: depth\ndepth_limit: 50\nsymbols: [BTCUSDT, ETHUSDT]\n{t}"),
            format!(
                "market: usdm\nkline_family: mark_price\nsymbols: [BTCUSDT]\nintervals: [1h]\nrange: {{ start: 2024-05-01, end: 2024-06-01 }}\n{t}"
            ),
            format!(
                "market: usdm\nkline_family: continuous\nsymbols: [BTCUSDT]\nintervals: [1h]\nrange: {{ start: 2024-05-01, end: 2024-06-01 }}\n{t}"
            ),
        ] {
            let p = pipeline(&h, dir.path(), &body);
            assert_eq!(run(&p).await.exit, ExitCode::Ok, "{body}");
        }
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/interop_snapshots.py");
        let mut cmd = std::process::Command::new(&python);
        cmd.arg(&script).arg(dir.path()).arg(prices).arg(unit);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "interop_snapshots.py failed for {prices} {unit}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A family's root is an output root: `summary` and `status` given the pipeline file read the
/// family's klines, not the trade klines.
#[tokio::test]
async fn summary_and_status_read_a_family_through_its_pipeline() {
    let h = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        format!(
            "name: it-family\nsource:\n  market: usdm\n  base_url: {}\nkline_family: premium_index\nsymbols: [SOLUSDT]\nintervals: [1h]\nrange: {{ start: 2024-05-30, end: 2024-06-01 }}\noutput:\n  path: {}\n",
            h.base_url(),
            dir.path().display()
        ),
    )
    .unwrap();
    let p = kline_etl::config::load(&file, &|_| None).unwrap();
    assert_eq!(run(&p).await.exit, ExitCode::Ok);
    for sub in ["summary", "status"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kline-etl"))
            .args([sub, file.to_str().unwrap()])
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{sub}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("SOLUSDT") && stdout.contains("48"),
            "{sub}: {stdout}"
        );
    }
}

/// A snapshot dataset on an object store: the run's file is uploaded (it was once written to
/// the local mirror only), and a second host with an empty mirror counts the store's files.
#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_on_an_object_store_are_uploaded() {
    use crate::harness::{cli, stderr};
    use crate::store::{aws_env, download, moto};
    let Some(moto) = moto().await else {
        return;
    };
    let created = reqwest::Client::new()
        .put(format!("{}/snaps", moto.url))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{created:?}");
    let sim = crate::harness::simulator().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let env = aws_env(&moto.url);
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for (host, format) in [(1, "parquet"), (2, "parquet"), (3, "delta")] {
        let text = format!(
            "name: snaps\nsource:\n  base_url: {}\ndataset: depth\ndepth_limit: 5\nsymbols: [BTCUSDT]\noutput:\n  path: s3://snaps/{format}\n  staging: mirror-{host}\n  format: {format}\n",
            sim.base_url()
        );
        std::fs::write(dir.join(format!("h{host}.yaml")), text).unwrap();
        let o = cli(dir, &["-q", "run", &format!("h{host}.yaml")], &envs).await;
        assert_eq!(o.status.code(), Some(0), "host {host}: {}", stderr(&o));
        sim.advance(60_000);
    }
    let got = dir.join("downloaded");
    let keys = download(&moto.url, "snaps", "", &got).await;
    let data = |prefix: &str| {
        keys.iter()
            .filter(|k| k.starts_with(prefix) && k.ends_with(".parquet"))
            .count()
    };
    assert_eq!(data("parquet/depth/market=spot/"), 2, "{keys:?}");
    assert_eq!(data("delta/depth/market=spot/"), 1, "{keys:?}");
    assert!(
        keys.contains(&"delta/depth/_delta_log/00000000000000000000.json".to_owned()),
        "{keys:?}"
    );
    // Host 2 started from an empty mirror: it counted host 1's file from the store.
    let s: Value = serde_json::from_str(
        &std::fs::read_to_string(got.join("parquet/depth/_kline_etl/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s["files_on_disk"], 2, "{s}");
    sim.shutdown().await;
}

//! Issue 24, "never silently wrong": each hostile reply, foreign file, skewed clock and leaked
//! key case against the simulator's fault switches. Every row the exchange sent is written or
//! reported with its own cause; foreign files are refused (exit 4) and left alone; waits are
//! bounded; redirects are never followed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kline_etl::interval::{HOUR_MS, Interval, MINUTE_MS};
use kline_etl::market::Market;
use kline_etl::simulator::{
    ClockMode, FaultKind, FaultPlan, Outage, SimConfig, SimHandle, Simulator, SymbolSpec,
};
use kline_etl::summary::dataset::read_series;
use kline_etl::symbol::Symbol;

use crate::harness::{
    NOW, assert_same, cli, cli_guarded, file_hashes, stderr, summary_json, truth,
};

const MAY_1: i64 = 1_714_521_600_000; // 2024-05-01
const JAN_1: i64 = 1_704_067_200_000; // 2024-01-01

async fn sim_with(faults: FaultPlan) -> SimHandle {
    Simulator::start(
        SimConfig {
            clock: ClockMode::Fixed(NOW),
            ..SimConfig::default()
        }
        .with_faults(faults),
    )
    .await
    .unwrap()
}

/// A one-symbol `1h` pipeline from `start` (`2024-05-01`: one page, no listing probe; so the
/// requests are 1 `/time`, 2 `exchangeInfo`, 3 the page, 4.. its retries).
fn pipeline(dir: &Path, url: &str, start: &str, extra_source: &str, extra: &str) -> PathBuf {
    let text = format!(
        "name: never-wrong\nsource:\n  base_url: {url}\n  mode: rest\n  max_retries: 2\n{extra_source}symbols: [BTCUSDT]\nintervals: [1h]\nrange:\n  start: {start}\n  end: now\n{extra}output:\n  path: out\n"
    );
    let p = dir.join("pipeline.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

async fn run(dir: &Path, p: &Path, more: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        p.to_str().unwrap(),
        "--concurrency",
        "1",
        "--no-progress",
    ];
    args.extend_from_slice(more);
    cli(dir, &args, &[]).await
}

/// A hang guard for runs that must not wait (a day-long `Retry-After`, a stalled budget): far
/// longer than any such run takes, never what a test asserts (see [`cli_guarded`]).
const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(600);

async fn run_guarded(dir: &Path, p: &Path) -> std::process::Output {
    let args = [
        "run",
        p.to_str().unwrap(),
        "--concurrency",
        "1",
        "--no-progress",
    ];
    cli_guarded(dir, &args, &[], HANG_GUARD).await
}

fn btc() -> Symbol {
    "BTCUSDT".parse().unwrap()
}

fn assert_equals_sim(sim: &SimHandle, dir: &Path, start: i64) {
    let got = read_series(&dir.join("out"), Market::Spot, &btc(), Interval::H1)
        .unwrap()
        .unwrap();
    let want = truth(sim, &btc(), Interval::H1, start, Interval::H1.floor(NOW));
    assert_same(&got, &want, "BTCUSDT 1h");
}

fn gap_causes(summary: &serde_json::Value) -> Vec<String> {
    summary["series"][0]["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["cause"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_row_is_a_finding_with_its_own_cause_and_is_refetched() {
    for (kind, check) in [
        (FaultKind::OffGridRow, "off_grid"),
        (FaultKind::CloseBeforeOpen, "close_outside_candle"),
    ] {
        // The page and both of its retries carry the malformed row.
        let sim = sim_with(FaultPlan::none().at(3, kind).at(4, kind).at(5, kind)).await;
        let dir = tempfile::tempdir().unwrap();
        let p = pipeline(dir.path(), &sim.base_url(), "2024-05-01", "", "");
        let out = run(dir.path(), &p, &[]).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert!(err.contains("malformed rows from the exchange"), "{err}");
        let s = summary_json(dir.path());
        let task = &s["run"]["tasks"][0];
        assert_eq!(task["quality"]["counts"][check], 1, "{task}");
        assert_eq!(s["run"]["retries"]["invalid_row"], 2);
        assert_eq!(task["failed_windows"][0]["cause"], "invalid_row");
        assert_eq!(gap_causes(&s), ["invalid_row"], "never `exchange_none`");
        // `status` and `summary` show it too.
        let st = cli(dir.path(), &["status", "out", "--json"], &[]).await;
        let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        assert_eq!(st["series"][0]["gaps_invalid_row"], 1);
        assert_eq!(st["series"][0]["gaps_fetch_failed"], 1);
        let sm = cli(dir.path(), &["summary", "out", "--json"], &[]).await;
        let sm: serde_json::Value = serde_json::from_slice(&sm.stdout).unwrap();
        assert_eq!(gap_causes(&sm), ["invalid_row"]);
        sim.shutdown().await;

        // The next run refetches the candle (the exchange now sends it well formed).
        let clean = sim_with(FaultPlan::none()).await;
        let p = pipeline(dir.path(), &clean.base_url(), "2024-05-01", "", "");
        let again = run(dir.path(), &p, &[]).await;
        assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
        assert!(gap_causes(&summary_json(dir.path())).is_empty());
        assert_equals_sim(&clean, dir.path(), MAY_1);
        clean.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_row_that_goes_away_on_retry_costs_one_retry() {
    let sim = sim_with(FaultPlan::none().at(3, FaultKind::OffGridRow)).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &sim.base_url(), "2024-05-01", "", "");
    let out = run(dir.path(), &p, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = summary_json(dir.path());
    assert_eq!(s["run"]["retries"]["invalid_row"], 1);
    assert!(gap_causes(&s).is_empty());
    assert_equals_sim(&sim, dir.path(), MAY_1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rows_fail_the_task_with_on_violation_fail() {
    let k = FaultKind::OffGridRow;
    let sim = sim_with(FaultPlan::none().at(3, k).at(4, k).at(5, k)).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        &sim.base_url(),
        "2024-05-01",
        "",
        "transform:\n  on_violation: fail\n",
    );
    let out = run(dir.path(), &p, &[]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("malformed rows") && err.contains("off_grid 1"),
        "{err}"
    );
    let s = summary_json(dir.path());
    assert_eq!(s["run"]["tasks"][0]["status"], "failed");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_prices_are_a_quality_finding() {
    let sim = sim_with(FaultPlan::none().at(3, FaultKind::ZeroPriceRow)).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &sim.base_url(), "2024-05-01", "", "");
    let out = run(dir.path(), &p, &[]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("non_positive_price 1"), "{err}");
    let s = summary_json(dir.path());
    assert_eq!(
        s["run"]["tasks"][0]["quality"]["counts"]["non_positive_price"],
        1
    );
    let fail_dir = tempfile::tempdir().unwrap();
    let sim2 = sim_with(FaultPlan::none().at(3, FaultKind::ZeroPriceRow)).await;
    let p = pipeline(
        fail_dir.path(),
        &sim2.base_url(),
        "2024-05-01",
        "",
        "transform:\n  on_violation: fail\n",
    );
    let out = run(fail_dir.path(), &p, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    sim.shutdown().await;
    sim2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_page_inside_history_is_retried_then_reported_as_suspect() {
    // 2024-01-01 .. now on 1h: the listing probe (request 3) and four windows (4-7).
    // Window 2 (request 5) answers `[]`: BTCUSDT is trading, so it is asked for again at once
    // (requests 6 and 7), empty both times.
    let e = FaultKind::EmptyPage;
    let sim = sim_with(FaultPlan::none().at(5, e).at(6, e).at(7, e)).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &sim.base_url(), "2024-01-01", "", "");
    let out = run(dir.path(), &p, &[]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("empty page inside its history"), "{err}");
    let s = summary_json(dir.path());
    assert_eq!(gap_causes(&s), ["empty_reply"], "never `exchange_none`");
    assert_eq!(s["run"]["retries"]["empty_reply"], 2);
    sim.shutdown().await;
    // The next run refetches the window.
    let clean = sim_with(FaultPlan::none()).await;
    let p = pipeline(dir.path(), &clean.base_url(), "2024-01-01", "", "");
    let again = run(dir.path(), &p, &[]).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_equals_sim(&clean, dir.path(), JAN_1);

    // Empty once only: the retry gets the rows, nothing is missing.
    let sim = sim_with(FaultPlan::none().at(5, e)).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &sim.base_url(), "2024-01-01", "", "");
    let out = run(dir.path(), &p, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_equals_sim(&sim, dir.path(), JAN_1);
    assert_eq!(summary_json(dir.path())["run"]["retries"]["empty_reply"], 1);
    sim.shutdown().await;
    clean.shutdown().await;
}

const FEB_1: i64 = 1_706_745_600_000; // 2024-02-01
const APR_1: i64 = 1_711_929_600_000; // 2024-04-01

/// A simulator whose BTCUSDT has no candle from 2024-02-01 to 2024-04-01: an outage longer
/// than a page of 1000 hours, so the second window of a `1h` run from 2024-01-01
/// (2024-02-11T16:00 .. 2024-03-24T08:00) is answered `[]`, every time.
async fn sim_with_outage() -> SimHandle {
    let mut btc = SymbolSpec::synthetic("BTCUSDT", "BTC", "USDT", 1_502_928_000_000, 30_000.0);
    btc.outages.push(Outage {
        start_ms: FEB_1,
        end_ms: APR_1,
    });
    let cfg = SimConfig {
        clock: ClockMode::Fixed(NOW),
        ..SimConfig::default()
    }
    .with_symbol(Market::Spot, btc);
    Simulator::start(cfg).await.unwrap()
}

fn klines_requests(sim: &SimHandle) -> u64 {
    sim.stats()
        .requests
        .get("/api/v3/klines")
        .copied()
        .unwrap_or(0)
}

fn retries(summary: &serde_json::Value, cause: &str) -> u64 {
    summary["run"]["retries"][cause].as_u64().unwrap_or(0)
}

/// The windows the last run's tasks fetched, ms.
fn task_windows(summary: &serde_json::Value) -> Vec<(i64, i64)> {
    let t = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    summary["run"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| (t(&task["start"]), t(&task["end"])))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_suspect_once_then_the_exchanges_own_gap_and_never_refetched() {
    let sim = sim_with_outage().await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &sim.base_url(), "2024-01-01", "", "");
    // Run 1: the empty window is asked for again (twice), then recorded as a suspect gap.
    let out = run(dir.path(), &p, &[]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("empty page inside its history"), "{err}");
    let s = summary_json(dir.path());
    assert_eq!(
        gap_causes(&s),
        ["empty_reply"],
        "suspect, not yet the exchange's"
    );
    assert_eq!(retries(&s, "empty_reply"), 2);
    // Run 2 fetches the window once more: the same emptiness (asked three times again)
    // confirms the outage as the exchange's own gap; nothing is pending any more.
    let before = klines_requests(&sim);
    let out = run(dir.path(), &p, &[]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("confirmed as its own gap (`exchange_none`)"),
        "{err}"
    );
    let s = summary_json(dir.path());
    assert_eq!(gap_causes(&s), ["exchange_none"]);
    assert_eq!(retries(&s, "empty_reply"), 2);
    assert!(
        s["run"]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["failed_windows"].as_array().is_none_or(Vec::is_empty)),
        "{s}"
    );
    assert!(
        klines_requests(&sim) - before >= 3,
        "the window was asked for"
    );
    let out_dir = dir.path().join("out");
    assert!(kline_etl::load::resume::read(&out_dir, None).is_empty());
    // Later runs never ask for it again (only `repair --exchange-gaps` would).
    for _ in 0..2 {
        let before = klines_requests(&sim);
        let out = run(dir.path(), &p, &[]).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let s = summary_json(dir.path());
        assert_eq!(gap_causes(&s), ["exchange_none"]);
        assert_eq!(retries(&s, "empty_reply"), 0);
        assert!(
            task_windows(&s)
                .iter()
                .all(|(a, b)| *b <= FEB_1 || *a >= APR_1),
            "a task asked for the outage again: {:?}",
            task_windows(&s)
        );
        assert!(
            klines_requests(&sim) - before <= 1,
            "at most the window of the forming candle"
        );
    }
    let st = cli(dir.path(), &["status", "out", "--json"], &[]).await;
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["series"][0]["gaps_exchange"], 1, "{st}");
    assert_eq!(st["series"][0]["gaps_empty_reply"], 0, "{st}");
    assert_eq!(st["series"][0]["pending_windows"], 0, "{st}");
    assert_equals_sim(&sim, dir.path(), JAN_1);
    sim.shutdown().await;
}

/// Run BTCUSDT and ETHUSDT `15m` for February and March 2024 (month partitions).
async fn two_series(dir: &Path, url: &str) -> PathBuf {
    let text = format!(
        "name: foreign\nsource:\n  base_url: {url}\n  mode: rest\nsymbols: [BTCUSDT, ETHUSDT]\nintervals: [15m]\nrange:\n  start: 2024-02-01\n  end: 2024-04-01\noutput:\n  path: out\n"
    );
    let p = dir.join("pipeline.yaml");
    std::fs::write(&p, text).unwrap();
    let out = run(dir, &p, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    p
}

fn part(dir: &Path, symbol: &str, month: &str) -> PathBuf {
    let year = &month[..4];
    dir.join(format!(
        "out/klines/market=spot/symbol={symbol}/year={year}/15m-{month}.parquet"
    ))
}

async fn assert_refused(dir: &Path, p: &Path, needle: &str) {
    for args in [
        vec!["run", p.to_str().unwrap()],
        vec!["run", p.to_str().unwrap(), "--full-refresh"],
        vec!["summary", "out"],
        vec!["status", "out"],
    ] {
        let before = file_hashes(&dir.join("out/klines/market=spot"));
        let out = cli(dir, &args, &[]).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(
            file_hashes(&dir.join("out/klines/market=spot")),
            before,
            "{args:?} changed a file"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_in_the_wrong_partition_is_foreign_and_never_overwritten() {
    let sim = sim_with(FaultPlan::none()).await;
    // Another symbol's file.
    let dir = tempfile::tempdir().unwrap();
    let p = two_series(dir.path(), &sim.base_url()).await;
    std::fs::copy(
        part(dir.path(), "BTCUSDT", "2024-02"),
        part(dir.path(), "ETHUSDT", "2024-02"),
    )
    .unwrap();
    assert_refused(
        dir.path(),
        &p,
        "symbol=ETHUSDT/year=2024/15m-2024-02.parquet",
    )
    .await;
    let out = cli(dir.path(), &["summary", "out"], &[]).await;
    assert!(
        stderr(&out).contains("holds symbol `BTCUSDT` but sits under `symbol=ETHUSDT`"),
        "{}",
        stderr(&out)
    );
    // Another month's file.
    let dir = tempfile::tempdir().unwrap();
    let p = two_series(dir.path(), &sim.base_url()).await;
    std::fs::copy(
        part(dir.path(), "BTCUSDT", "2024-02"),
        part(dir.path(), "BTCUSDT", "2024-03"),
    )
    .unwrap();
    assert_refused(
        dir.path(),
        &p,
        "outside its partition `year=2024/15m-2024-03`",
    )
    .await;
    // A directory where a partition file belongs.
    let dir = tempfile::tempdir().unwrap();
    let p = two_series(dir.path(), &sim.base_url()).await;
    let f = part(dir.path(), "ETHUSDT", "2024-03");
    std::fs::remove_file(&f).unwrap();
    std::fs::create_dir(&f).unwrap();
    assert_refused(dir.path(), &p, "is not a regular file").await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn footer_statistics_of_a_file_edited_in_place_are_not_trusted() {
    use kline_etl::load::parquet::{META_STATS, encode, read_file, read_footer};
    use kline_etl::load::{Granularity, PartitionKey, Period, TaskKey, WriteOptions};
    use kline_etl::transform::{Column, KlineContext};

    let sim = sim_with(FaultPlan::none()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = two_series(dir.path(), &sim.base_url()).await;
    let path = part(dir.path(), "BTCUSDT", "2024-03");
    // Another tool changes one `high` and keeps our key-value metadata (stale statistics).
    let (mut rows, _) = read_file(&path).unwrap();
    if let Column::Float64(v) = &mut rows.high {
        v[10] = 9_999_999.0;
    }
    let stats = read_footer(&path, META_STATS).unwrap().value.unwrap();
    let pipeline = kline_etl::config::load(&p, &|_| None).unwrap();
    let opts = WriteOptions::from_pipeline(&pipeline);
    let task = TaskKey {
        market: Market::Spot,
        symbol: btc(),
        interval: Interval::M15,
    };
    let key = PartitionKey {
        task,
        period: Period::of(Granularity::Month, 1_709_251_200_000),
    };
    let ctx = KlineContext {
        market: Market::Spot,
        symbol: &key.task.symbol,
        interval: key.task.interval,
        options: &opts.transform,
    };
    let batch = rows.to_record_batch(&ctx).unwrap();
    let kv = parquet::file::metadata::KeyValue::new(META_STATS.to_owned(), stats);
    let bytes = encode(&batch, &key, &opts, &[kv], &path).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let out = cli(dir.path(), &["summary", "out", "--json"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let btc = s["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["symbol"] == "BTCUSDT")
        .unwrap();
    assert_eq!(
        btc["high"], 9_999_999.0,
        "the edited file was read, not its footer"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_running_ahead_never_makes_the_forming_candle_closed() {
    // The exchange's data follows the real clock, its `/time` runs an hour ahead.
    let sim = Simulator::start(
        SimConfig {
            clock: ClockMode::Real,
            ..SimConfig::default()
        }
        .with_faults(FaultPlan::none().skew_clock(HOUR_MS)),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "name: skew\nsource:\n  base_url: {}\n  mode: rest\nsymbols: [BTCUSDT]\nintervals: [1m]\nrange:\n  start: 2 days ago\n  end: now\noutput:\n  path: out\n",
        sim.base_url()
    );
    let p = dir.path().join("pipeline.yaml");
    std::fs::write(&p, text).unwrap();
    let out = run(dir.path(), &p, &[]).await;
    let after = chrono::Utc::now().timestamp_millis();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("differ by more than 5 s"), "{err}");
    let got = read_series(&dir.path().join("out"), Market::Spot, &btc(), Interval::M1)
        .unwrap()
        .unwrap();
    let last_close = *got.close_time.last().unwrap();
    assert!(
        last_close < after,
        "a candle closing at {last_close} was written at {after}"
    );
    assert!(
        after - last_close < 5 * MINUTE_MS,
        "the recent closed candles are there"
    );
    sim.shutdown().await;
}

/// A server that records every request's headers (the other host of a redirect).
async fn recorder() -> (String, Arc<Mutex<Vec<Vec<String>>>>) {
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let s = Arc::clone(&seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move |req: axum::http::Request<axum::body::Body>| {
        let s = Arc::clone(&s);
        async move {
            let names = req
                .headers()
                .keys()
                .map(|k| k.as_str().to_owned())
                .collect();
            s.lock().unwrap().push(names);
            "[]"
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_never_followed_and_the_key_never_leaves_the_host() {
    let (other, seen) = recorder().await;
    for at in [1, 3] {
        // 1: `/time`; 3: the klines page.
        let sim = sim_with(
            FaultPlan::none()
                .redirect_to(&other)
                .at(at, FaultKind::Redirect),
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let p = pipeline(
            dir.path(),
            &sim.base_url(),
            "2024-05-01",
            "  api_key: secret-key-issue-24\n",
            "",
        );
        let out = run(dir.path(), &p, &[]).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("redirecting to `") && err.contains(&other),
            "{err}"
        );
        assert!(err.contains("never followed"), "{err}");
        assert!(!err.contains("http 0"), "{err}");
        sim.shutdown().await;
    }
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().all(|h| !h.iter().any(|n| n == "x-mbx-apikey")),
        "the other host saw the key: {seen:?}"
    );
    assert!(seen.is_empty(), "the redirect was followed: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_long_retry_after_stops_the_run_resumably() {
    let sim = sim_with(FaultPlan::none().at(3, FaultKind::HugeRetryAfter)).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &sim.base_url(), "2024-05-01", "", "");
    // Waiting the day out would hold the run (and the dataset lock) for 24 h; the guard only
    // turns that into a clear failure. What is asserted is how the run ends.
    let out = run_guarded(dir.path(), &p).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("Retry-After longer than max_ban_wait_secs"),
        "{err}"
    );
    // It stopped at the 429: `/time`, `exchangeInfo` and the page, nothing asked again.
    let stats = sim.stats();
    assert_eq!(stats.requests_total, 3, "{:?}", stats.requests);
    assert_eq!(stats.sent_429, 1);
    let s = summary_json(dir.path());
    assert_eq!(s["run"]["stopped_by"], "ban", "{}", s["run"]);
    assert_eq!(s["run"]["budget_waits"], 0, "nothing waited for the pause");
    assert_eq!(s["run"]["tasks"][0]["status"], "stopped");
    let pending = kline_etl::load::resume::read(&dir.path().join("out"), None);
    assert_eq!(pending.len(), 1, "{pending:?}");
    sim.shutdown().await;
    // The rerun resumes and completes.
    let clean = sim_with(FaultPlan::none()).await;
    let p = pipeline(dir.path(), &clean.base_url(), "2024-05-01", "", "");
    let again = run(dir.path(), &p, &[]).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_equals_sim(&clean, dir.path(), MAY_1);
    clean.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_implausible_weight_header_is_logged_once_and_ignored() {
    let sim = sim_with(FaultPlan::none().random(FaultKind::HugeWeightHeader, 1.0)).await;
    let dir = tempfile::tempdir().unwrap();
    // Four windows plus the probe: with the header believed, each would wait a minute.
    let p = pipeline(dir.path(), &sim.base_url(), "2024-01-01", "", "");
    let out = run_guarded(dir.path(), &p).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // Believed, the header would hold every request until the next minute window; ignored,
    // no request waits for the budget (the report counts every wait). The rule itself is the
    // unit test `extract::budget::tests::an_implausible_header_never_makes_a_request_wait`.
    let stats = sim.stats();
    assert_eq!(stats.requests_total, 7, "{:?}", stats.requests);
    let s = summary_json(dir.path());
    assert_eq!(s["run"]["budget_waits"], 0, "the run waited on the header");
    assert_eq!(
        err.matches("implausible used-weight header").count(),
        1,
        "{err}"
    );
    assert_eq!(s["run"]["weight_limit"], 6000);
    assert_equals_sim(&sim, dir.path(), JAN_1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exchanges_json_error_is_shown_whatever_the_status() {
    let j = FaultKind::JsonErrorOk;
    let sim = sim_with(FaultPlan::none().at(3, j).at(4, j).at(5, j)).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &sim.base_url(), "2024-05-01", "", "");
    let out = run(dir.path(), &p, &[]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("http 200, exchange error -1003: Too many requests queued."),
        "{err}"
    );
    assert!(!err.contains("not a JSON array"), "{err}");
    sim.shutdown().await;
    // A failing `/time` says why, not "http 0".
    let sim = sim_with(
        FaultPlan::none()
            .at(1, FaultKind::ServiceUnavailable)
            .at(2, FaultKind::ServiceUnavailable)
            .at(3, FaultKind::ServiceUnavailable),
    )
    .await;
    let p = pipeline(dir.path(), &sim.base_url(), "2024-05-01", "", "");
    let out = run(dir.path(), &p, &[]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`/time` failed") && err.contains("http 503"),
        "{err}"
    );
    assert!(err.contains("-1008"), "{err}");
    assert!(!err.contains("http 0"), "{err}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_path_that_is_not_a_regular_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipeline.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Opening a FIFO with no writer blocks: the guard turns a regression into a clear failure
    // instead of a stuck suite; what is asserted is the refusal.
    for cmd in ["validate", "run", "plan"] {
        let out = cli_guarded(dir.path(), &[cmd, fifo.to_str().unwrap()], &[], HANG_GUARD).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains("is a FIFO, not a regular file"),
            "{cmd}: {err}"
        );
    }
    let out = cli(dir.path(), &["validate", dir.path().to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));
}

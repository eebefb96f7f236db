//! The extractor against the built-in simulator: exact rows (the simulator's own ground truth)
//! for every interval and market, listing and delisting inside the range, outages, invalid
//! symbols, injected faults, 429s and 418 bans, the weight budget and cancellation.

use std::collections::BTreeMap;
use std::time::Duration;

use kline_etl::config::{OnViolation, PriceType, TimeUnit, TransformOptions};
use kline_etl::exit::ExitCode;
use kline_etl::extract::retry::BackoffPolicy;
use kline_etl::extract::{
    ExtractConfig, ExtractEvent, Extractor, KlineTask, RunOutcome, RunReport, TaskError,
    TaskOutcome, TaskStatus, WindowCause,
};
use kline_etl::interval::{DAY_MS, HOUR_MS, Interval, MINUTE_MS};
use kline_etl::market::Market;
use kline_etl::simulator::{FaultKind, FaultPlan, RateWindow, SimConfig, SimHandle, Simulator};
use kline_etl::symbol::Symbol;
use kline_etl::transform::KlineRows;
use tokio::sync::{mpsc, watch};

/// 2024-06-01T12:34:56.789Z: the simulator's fixed data clock.
const NOW: i64 = 1_717_245_296_789;

fn ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

fn opts() -> TransformOptions {
    TransformOptions {
        prices: PriceType::Float64,
        time_unit: TimeUnit::Millisecond,
        include_forming: false,
        on_violation: OnViolation::Report,
    }
}

async fn sim(config: SimConfig) -> SimHandle {
    Simulator::start(config.with_now(NOW)).await.unwrap()
}

fn task(market: Market, symbol: &str, interval: Interval, start: i64, end: i64) -> KlineTask {
    KlineTask {
        market,
        symbol: symbol.parse().unwrap(),
        interval,
        start_ms: start,
        end_ms: end,
    }
}

/// Fast retries for tests.
fn fast(cfg: &mut ExtractConfig) {
    cfg.backoff = BackoffPolicy {
        base: Duration::from_millis(2),
        cap: Duration::from_millis(20),
        max_retries: 8,
    };
    cfg.window_guard_ms = 50;
}

struct Run {
    report: RunReport,
    rows: Vec<KlineRows>,
    outcomes: Vec<TaskOutcome>,
    /// The most tasks that had sent rows and not yet their `TaskDone` at one time.
    most_open: usize,
    /// Task indexes in the order their `TaskDone` arrived.
    done_order: Vec<usize>,
}

async fn run_with(
    h: &SimHandle,
    market: Market,
    tasks: Vec<KlineTask>,
    tweak: impl FnOnce(&mut ExtractConfig),
    cancel: watch::Receiver<bool>,
) -> Run {
    let mut cfg = ExtractConfig::new(market, h.base_url(), opts());
    fast(&mut cfg);
    tweak(&mut cfg);
    let n = tasks.len();
    let (tx, mut rx) = mpsc::channel(4);
    let consumer = async move {
        let mut rows: Vec<Option<KlineRows>> = (0..n).map(|_| None).collect();
        let mut outcomes: BTreeMap<usize, TaskOutcome> = BTreeMap::new();
        let (mut open, mut most_open) = (std::collections::BTreeSet::new(), 0);
        let mut done_order = Vec::new();
        while let Some(ev) = rx.recv().await {
            match ev {
                ExtractEvent::Rows { task, rows: r, .. } => {
                    assert!(!outcomes.contains_key(&task.0), "rows after TaskDone");
                    open.insert(task.0);
                    most_open = most_open.max(open.len());
                    assert!(r.is_strictly_sorted());
                    let slot = &mut rows[task.0];
                    match slot {
                        None => *slot = Some(r),
                        Some(prev) => {
                            // Chunks continue strictly after the previous one.
                            assert!(prev.open_time.last() < r.open_time.first());
                            prev.append(r);
                        }
                    }
                }
                ExtractEvent::TaskDone { task, outcome } => {
                    assert!(outcomes.insert(task.0, outcome).is_none(), "two TaskDone");
                    open.remove(&task.0);
                    done_order.push(task.0);
                }
            }
        }
        let rows = rows
            .into_iter()
            .map(|r| r.unwrap_or_else(|| KlineRows::empty(PriceType::Float64)))
            .collect();
        let outcomes = outcomes.into_values().collect::<Vec<_>>();
        (rows, outcomes, most_open, done_order)
    };
    let extractor = Extractor::new(cfg);
    let (report, (rows, outcomes, most_open, done_order)) =
        tokio::join!(extractor.run(tasks, tx, cancel), consumer);
    let outcomes: Vec<TaskOutcome> = outcomes;
    assert_eq!(outcomes.len(), n, "every task reports exactly once");
    Run {
        report: report.unwrap(),
        rows,
        outcomes,
        most_open,
        done_order,
    }
}

async fn run(
    h: &SimHandle,
    market: Market,
    tasks: Vec<KlineTask>,
    tweak: impl FnOnce(&mut ExtractConfig),
) -> Run {
    let (_keep, cancel) = watch::channel(false);
    run_with(h, market, tasks, tweak, cancel).await
}

/// The rows equal the simulator's ground truth exactly: same candles (no gap the exchange
/// does not have, no duplicate), same values.
fn assert_truth(h: &SimHandle, t: &KlineTask, rows: &KlineRows) {
    let truth = h.expected_klines(t.market, &t.symbol, t.interval, t.start_ms, t.end_ms);
    let open: Vec<i64> = truth.iter().map(|r| r.open_time).collect();
    assert_eq!(rows.open_time, open, "{t}: open times");
    let close: Vec<i64> = truth.iter().map(|r| r.close_time).collect();
    assert_eq!(rows.close_time, close, "{t}: close times");
    let trades: Vec<u64> = truth.iter().map(|r| r.trades).collect();
    assert_eq!(rows.trades, trades, "{t}: trades");
    for (i, r) in truth.iter().enumerate() {
        assert_eq!(
            rows.close.f64_at(i),
            r.close.parse::<f64>().unwrap(),
            "{t}: close #{i}"
        );
        assert_eq!(
            rows.volume.f64_at(i),
            r.volume.parse::<f64>().unwrap(),
            "{t}: volume #{i}"
        );
    }
}

fn complete(o: &TaskOutcome) -> bool {
    o.status == TaskStatus::Complete && o.failed_windows.is_empty()
}

#[tokio::test]
async fn every_interval_pages_into_the_exact_series() {
    let h = sim(SimConfig::default()).await;
    let end = ms("2024-05-20T00:00:00Z");
    let tasks: Vec<KlineTask> = Interval::ALL
        .into_iter()
        .map(|i| {
            // About 40 candles per interval, in pages of 7.
            let start = i.add(i.floor(end), -40) + 123;
            task(Market::Spot, "ETHUSDT", i, start, end)
        })
        .collect();
    let r = run(&h, Market::Spot, tasks.clone(), |c| c.page_limit = Some(7)).await;
    assert_eq!(r.report.outcome, RunOutcome::Ok);
    for ((t, rows), o) in tasks.iter().zip(&r.rows).zip(&r.outcomes) {
        assert!(complete(o), "{t}: {o:?}");
        assert!(rows.len() >= 39, "{t}: {} rows", rows.len());
        assert_truth(&h, t, rows);
    }
    // 16 tasks of 6 pages each, one listing probe each, plus /time and exchangeInfo.
    let pages: u64 = r.outcomes.iter().map(|o| o.metrics.requests).sum();
    assert_eq!(pages, 16 * (6 + 1));
    assert_eq!(r.report.metrics.requests, pages + 2);
    assert_eq!(r.report.metrics.http_429, 0);
}

#[tokio::test]
async fn listing_and_delisting_inside_the_range() {
    let h = sim(SimConfig::default()).await;
    let tasks = vec![
        // SOLUSDT lists on 2020-08-11: the empty years before are never walked.
        task(
            Market::Spot,
            "SOLUSDT",
            Interval::H1,
            ms("2017-01-01T00:00:00Z"),
            ms("2020-08-20T00:00:00Z"),
        ),
        // LUNAUSDT is delisted on 2022-05-13: history stops there.
        task(
            Market::Spot,
            "LUNAUSDT",
            Interval::H1,
            ms("2022-05-01T00:00:00Z"),
            ms("2022-06-01T00:00:00Z"),
        ),
        // The monthly series of a symbol listed mid-month.
        task(
            Market::Spot,
            "SOLUSDT",
            Interval::Mo1,
            0,
            ms("2024-05-01T00:00:00Z"),
        ),
    ];
    let r = run(&h, Market::Spot, tasks.clone(), |_| {}).await;
    assert_eq!(r.report.outcome, RunOutcome::Ok);
    for ((t, rows), o) in tasks.iter().zip(&r.rows).zip(&r.outcomes) {
        assert!(complete(o), "{t}: {o:?}");
        assert!(!rows.is_empty());
        assert_truth(&h, t, rows);
    }
    let sol = &r.outcomes[0];
    assert_eq!(sol.listed_from, Some(ms("2020-08-11T00:00:00Z")));
    // One probe and one page (9 days of hours fit in 1000 rows), not 3.5 years of pages.
    assert_eq!(sol.metrics.requests, 2, "{:?}", sol.metrics);
    assert_eq!(
        r.rows[1].open_time.last().copied(),
        Some(ms("2022-05-12T23:00:00Z"))
    );
    assert_eq!(r.rows[2].open_time[0], ms("2020-08-01T00:00:00Z"));
}

#[tokio::test]
async fn outages_stay_gaps_and_nothing_is_invented() {
    let h = sim(SimConfig::default()).await;
    // BTCUSDT halted on 2023-03-24 from 12:39:41.647 to 14:00.
    let t = task(
        Market::Spot,
        "BTCUSDT",
        Interval::M1,
        ms("2023-03-24T10:00:00Z"),
        ms("2023-03-24T16:00:00Z"),
    );
    let r = run(&h, Market::Spot, vec![t.clone()], |c| {
        c.page_limit = Some(20);
    })
    .await;
    // Every candle the exchange has, and nothing else.
    let outcome = &r.outcomes[0];
    assert_eq!(outcome.status, TaskStatus::Complete);
    assert_truth(&h, &t, &r.rows[0]);
    assert!(r.rows[0].len() < 360);
    // The 12:39 candle was cut short by the halt: its real close time is kept.
    let i = r.rows[0]
        .open_time
        .iter()
        .position(|&o| o == ms("2023-03-24T12:39:00Z"))
        .unwrap();
    assert_eq!(r.rows[0].close_time[i], 1_679_661_581_646);
    assert!(!r.rows[0].open_time.contains(&ms("2023-03-24T13:00:00Z")));
    // 12:40 .. 14:00 in pages of 20 minutes: four pages the exchange returned empty. BTCUSDT
    // is trading, so in this run each is suspect: asked for again (twice), then reported as
    // an `empty_reply` window, never dropped silently. The next run fetches them once more
    // and, empty again, confirms them as the exchange's own gap (`exchange_none`, never
    // fetched again): `load::resume::settle_empty_reply` and the never_wrong test
    // `an_outage_is_suspect_once_then_the_exchanges_own_gap_and_never_refetched`.
    let windows: Vec<(i64, i64)> = outcome
        .failed_windows
        .iter()
        .map(|w| (w.start, w.end))
        .collect();
    let page = 20 * MINUTE_MS;
    let first = ms("2023-03-24T12:40:00Z");
    let want: Vec<(i64, i64)> = (0..4)
        .map(|k| (first + k * page, first + (k + 1) * page))
        .collect();
    assert_eq!(windows, want, "{:?}", outcome.failed_windows);
    assert!(
        outcome
            .failed_windows
            .iter()
            .all(|w| w.cause == WindowCause::EmptyReply),
        "{:?}",
        outcome.failed_windows
    );
    assert_eq!(
        outcome.metrics.empty_pages,
        4 * 3,
        "each page and its two re-asks"
    );
}

#[tokio::test]
async fn an_invalid_symbol_fails_alone_with_the_exchange_code() {
    let h = sim(SimConfig::default()).await;
    let (s, e) = (ms("2024-01-01T00:00:00Z"), ms("2024-03-01T00:00:00Z"));
    let tasks = vec![
        task(Market::Spot, "BTCUSDT", Interval::H4, s, e),
        task(Market::Spot, "NOPEUSDT", Interval::H4, s, e),
        task(Market::Spot, "ETHUSDT", Interval::H4, s, e),
    ];
    let r = run(&h, Market::Spot, tasks.clone(), |_| {}).await;
    assert_eq!(r.report.outcome, RunOutcome::TasksFailed);
    assert_eq!(r.report.outcome.exit_code(), ExitCode::TasksFailed);
    assert_truth(&h, &tasks[0], &r.rows[0]);
    assert_truth(&h, &tasks[2], &r.rows[2]);
    let TaskStatus::Failed(err) = &r.outcomes[1].status else {
        panic!("{:?}", r.outcomes[1]);
    };
    assert!(matches!(err, TaskError::Rejected { code, .. } if code == "-1121"));
    let msg = err.to_string();
    assert!(
        msg.contains("NOPEUSDT") && msg.contains("-1121") && msg.contains("Invalid symbol"),
        "{msg}"
    );
    assert_eq!(r.outcomes[1].failed_windows.len(), 1);
    assert!(r.rows[1].is_empty());
}

#[tokio::test]
async fn futures_markets_page_within_their_rules() {
    let h = sim(SimConfig::default()).await;
    let usdm = vec![
        task(
            Market::UsdM,
            "BTCUSDT",
            Interval::H1,
            ms("2019-08-01T00:00:00Z"),
            ms("2019-12-01T00:00:00Z"),
        ),
        task(
            Market::UsdM,
            "SRMUSDT",
            Interval::D1,
            ms("2022-01-01T00:00:00Z"),
            ms("2023-01-01T00:00:00Z"),
        ),
    ];
    let r = run(&h, Market::UsdM, usdm.clone(), |_| {}).await;
    assert_eq!(r.report.outcome, RunOutcome::Ok);
    for (t, rows) in usdm.iter().zip(&r.rows) {
        assert!(!rows.is_empty());
        assert_truth(&h, t, rows);
    }
    // 499-row pages: weight 2 each, never 5 or 10.
    assert!(r.report.metrics.weight <= 2 * r.report.metrics.requests + 1);

    let coinm = vec![
        task(
            Market::CoinM,
            "BTCUSD_PERP",
            Interval::D1,
            ms("2020-06-01T00:00:00Z"),
            ms("2021-12-01T00:00:00Z"),
        ),
        task(
            Market::CoinM,
            "ETHUSD_PERP",
            Interval::Mo1,
            0,
            ms("2022-01-01T00:00:00Z"),
        ),
        task(
            Market::CoinM,
            "LUNAUSD_PERP",
            Interval::H1,
            ms("2022-04-01T00:00:00Z"),
            ms("2022-06-01T00:00:00Z"),
        ),
    ];
    let r = run(&h, Market::CoinM, coinm.clone(), |_| {}).await;
    assert_eq!(r.report.outcome, RunOutcome::Ok, "{:?}", r.outcomes);
    // onboardDate (2020-08-14) spares the empty half-centuries before the listing: the
    // monthly series from 1970 costs 3 windows of 6 months, not 100.
    assert_eq!(r.outcomes[1].listed_from, Some(ms("2020-08-01T00:00:00Z")));
    assert_eq!(r.outcomes[1].metrics.requests, 3);
    for (t, rows) in coinm.iter().zip(&r.rows) {
        assert!(!rows.is_empty(), "{t}");
        assert_truth(&h, t, rows);
    }
}

#[tokio::test]
async fn one_second_klines_are_spot_only() {
    let h = sim(SimConfig::default()).await;
    let t = task(Market::UsdM, "BTCUSDT", Interval::S1, NOW - 60_000, NOW);
    let r = run(&h, Market::UsdM, vec![t], |_| {}).await;
    assert!(matches!(
        r.outcomes[0].status,
        TaskStatus::Failed(TaskError::Unsupported { .. })
    ));
}

#[tokio::test]
async fn the_forming_candle_is_held_back_unless_asked_for() {
    let h = sim(SimConfig::default()).await;
    let t = task(
        Market::Spot,
        "BTCUSDT",
        Interval::H1,
        NOW - 10 * HOUR_MS,
        NOW + DAY_MS,
    );
    let r = run(&h, Market::Spot, vec![t.clone()], |_| {}).await;
    assert_truth(&h, &t, &r.rows[0]);
    // 03:00 .. 11:00 are closed; 12:00 is still forming at 12:34:56.
    assert_eq!(r.rows[0].len(), 9);
    assert_eq!(r.outcomes[0].metrics.held_back, 1);
    // A range of one page (a nightly incremental run) costs one request: no listing probe.
    assert_eq!(r.outcomes[0].metrics.requests, 1);
    let r = run(&h, Market::Spot, vec![t], |c| {
        c.transform.include_forming = true;
    })
    .await;
    assert_eq!(r.rows[0].len(), 10);
    assert_eq!(r.rows[0].open_time[9], Interval::H1.floor(NOW));
}

#[tokio::test]
async fn transient_faults_never_change_the_rows() {
    let faults = FaultPlan {
        seed: 7,
        ..FaultPlan::none()
    }
    .random(FaultKind::InternalError, 0.03)
    .random(FaultKind::ServiceUnavailable, 0.02)
    .random(FaultKind::ResetBeforeHeaders, 0.03)
    .random(FaultKind::ResetMidBody, 0.03)
    .random(FaultKind::TruncatedBody, 0.03)
    .random(FaultKind::HtmlBody, 0.02);
    let h = sim(SimConfig::default().with_faults(faults)).await;
    let tasks: Vec<KlineTask> = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
        .iter()
        .map(|s| {
            task(
                Market::Spot,
                s,
                Interval::M15,
                ms("2024-01-01T00:00:00Z"),
                ms("2024-03-01T00:00:00Z"),
            )
        })
        .collect();
    let r = run(&h, Market::Spot, tasks.clone(), |c| {
        c.page_limit = Some(100);
    })
    .await;
    assert_eq!(r.report.outcome, RunOutcome::Ok, "{:?}", r.outcomes);
    for (t, rows) in tasks.iter().zip(&r.rows) {
        assert_truth(&h, t, rows);
    }
    let injected: u64 = h.stats().faults.values().sum();
    assert!(injected >= 5, "{:?}", h.stats().faults);
    assert!(r.report.metrics.total_retries() >= injected.min(10) / 2);
}

#[tokio::test]
async fn the_budget_bursts_to_the_limit_without_a_single_429() {
    // 100 weight per 1-second window: the run spans several windows.
    let h = sim(SimConfig::default()
        .with_window(RateWindow::seconds(1))
        .with_weight_limit(Market::Spot, 100))
    .await;
    let t = task(
        Market::Spot,
        "BTCUSDT",
        Interval::M1,
        ms("2024-01-01T00:00:00Z"),
        ms("2024-01-05T00:00:00Z"),
    );
    let r = run(&h, Market::Spot, vec![t.clone()], |c| {
        c.page_limit = Some(60);
        c.weight_share = 1.0;
    })
    .await;
    assert_truth(&h, &t, &r.rows[0]);
    let stats = h.stats();
    assert_eq!(stats.sent_429, 0, "{stats:?}");
    assert_eq!(r.report.metrics.http_429, 0);
    assert!(stats.max_window_weight <= 100);
    // Bursts: some window used at least 90% of the limit (no even pacing below it).
    assert!(stats.max_window_weight >= 90, "{stats:?}");
    assert_eq!(r.report.weight_limit.window_ms(), 1_000);
}

#[tokio::test]
async fn after_a_429_the_client_causes_no_other() {
    let faults = FaultPlan::none()
        .at(6, FaultKind::TooManyRequests)
        .at(7, FaultKind::TooManyRequests)
        .at(8, FaultKind::TooManyRequests);
    let h = sim(SimConfig::default()
        .with_window(RateWindow::seconds(1))
        .with_weight_limit(Market::Spot, 200)
        .with_faults(faults))
    .await;
    let t = task(
        Market::Spot,
        "ETHUSDT",
        Interval::M5,
        ms("2024-01-01T00:00:00Z"),
        ms("2024-02-01T00:00:00Z"),
    );
    let r = run(&h, Market::Spot, vec![t.clone()], |c| {
        c.page_limit = Some(100);
    })
    .await;
    assert_truth(&h, &t, &r.rows[0]);
    let stats = h.stats();
    // Only the three injected 429s, no earned ones, and no ban.
    assert_eq!(stats.sent_429, 3, "{stats:?}");
    assert_eq!(stats.sent_418, 0);
    assert_eq!(r.report.metrics.http_429, 3);
    assert!(r.report.weight_share < 0.95);
}

#[tokio::test]
async fn a_short_ban_is_waited_out() {
    let h = sim(SimConfig::default()
        .with_ban_base(Duration::from_secs(1))
        .with_faults(FaultPlan::none().at(5, FaultKind::Ban)))
    .await;
    let t = task(
        Market::Spot,
        "BNBUSDT",
        Interval::H1,
        ms("2023-01-01T00:00:00Z"),
        ms("2023-06-01T00:00:00Z"),
    );
    let r = run(&h, Market::Spot, vec![t.clone()], |c| {
        c.page_limit = Some(200);
        c.concurrency = 4;
        c.max_ban_wait = Duration::from_secs(5);
    })
    .await;
    assert_eq!(r.report.outcome, RunOutcome::Ok);
    assert_truth(&h, &t, &r.rows[0]);
    // Requests already in flight when the ban started get 418 too; nothing sent after the
    // first 418 was seen does, so at most `concurrency` of them.
    let stats = h.stats();
    assert!((1..=4).contains(&stats.sent_418), "{stats:?}");
    assert_eq!(r.report.metrics.http_418, stats.sent_418);
}

#[tokio::test]
async fn a_long_ban_stops_the_run_as_resumable() {
    let h = sim(SimConfig::default()
        .with_ban_base(Duration::from_secs(600))
        .with_faults(FaultPlan::none().at(6, FaultKind::Ban)))
    .await;
    let tasks = vec![
        task(
            Market::Spot,
            "BNBUSDT",
            Interval::H1,
            ms("2023-01-01T00:00:00Z"),
            ms("2023-06-01T00:00:00Z"),
        ),
        task(
            Market::Spot,
            "ETHUSDT",
            Interval::H1,
            ms("2023-01-01T00:00:00Z"),
            ms("2023-06-01T00:00:00Z"),
        ),
    ];
    let r = run(&h, Market::Spot, tasks.clone(), |c| {
        c.page_limit = Some(100);
        c.concurrency = 1;
        c.max_active_tasks = 1;
        c.max_ban_wait = Duration::from_secs(1);
    })
    .await;
    assert!(matches!(
        r.report.outcome,
        RunOutcome::BannedResumable { .. }
    ));
    assert_eq!(r.report.outcome.exit_code(), ExitCode::Resumable);
    assert_eq!(h.stats().sent_418, 1, "no request after the ban");
    for ((t, rows), o) in tasks.iter().zip(&r.rows).zip(&r.outcomes) {
        let TaskStatus::Stopped { resume_from } = o.status else {
            panic!("{t}: {o:?}");
        };
        // Everything before the resume point was delivered, exactly.
        let head = KlineTask {
            end_ms: resume_from,
            ..t.clone()
        };
        assert_truth(&h, &head, rows);
    }
}

#[tokio::test]
async fn at_most_two_long_tasks_page_at_once_and_short_ones_do_not_wait() {
    let h = sim(SimConfig::default()).await;
    let symbols = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT"];
    let long: Vec<KlineTask> = symbols
        .iter()
        .map(|s| {
            task(
                Market::Spot,
                s,
                Interval::M1,
                ms("2024-01-01T00:00:00Z"),
                ms("2024-01-02T00:00:00Z"),
            )
        })
        .collect();
    // 1440 candles in pages of 100: 15 windows each, more than the 4 in flight.
    let r = run(&h, Market::Spot, long.clone(), |c| {
        c.page_limit = Some(100);
        c.concurrency = 4;
    })
    .await;
    assert!(
        r.most_open <= 2,
        "four active tasks, at most two long ones at once: {}",
        r.most_open
    );
    for (t, rows) in long.iter().zip(&r.rows) {
        assert_truth(&h, t, rows);
    }
    // One long task holding the only long permit, three short ones (two windows each, fewer
    // than the 4 in flight) beside it: the short ones do not wait for the permit, so they end
    // while the long one (15 windows at 20 ms each, 4 at a time) still pages.
    let mut faults = FaultPlan::default();
    faults.latency.fixed_ms = 20;
    let slow = sim(SimConfig::default().with_faults(faults)).await;
    let mut mixed = vec![long[0].clone()];
    mixed.extend(long[1..].iter().map(|t| KlineTask {
        end_ms: t.start_ms + 200 * 60_000,
        ..t.clone()
    }));
    let r = run(&slow, Market::Spot, mixed.clone(), |c| {
        c.page_limit = Some(100);
        c.concurrency = 4;
        c.max_long_tasks = 1;
    })
    .await;
    assert!(r.outcomes.iter().all(complete));
    assert_eq!(
        r.done_order.last(),
        Some(&0),
        "short tasks ended first: {:?}",
        r.done_order
    );
    for (t, rows) in mixed.iter().zip(&r.rows) {
        assert_truth(&slow, t, rows);
    }
}

#[tokio::test]
async fn cancellation_stops_cleanly() {
    let h = sim(SimConfig::default()).await;
    let (cancel_tx, cancel) = watch::channel(true);
    let t = task(
        Market::Spot,
        "BTCUSDT",
        Interval::M1,
        ms("2024-01-01T00:00:00Z"),
        ms("2024-02-01T00:00:00Z"),
    );
    let r = run_with(&h, Market::Spot, vec![t], |_| {}, cancel).await;
    drop(cancel_tx);
    assert_eq!(r.report.outcome, RunOutcome::Cancelled);
    assert_eq!(r.report.outcome.exit_code(), ExitCode::Resumable);
    assert!(matches!(r.outcomes[0].status, TaskStatus::Stopped { .. }));
}

#[tokio::test]
async fn the_api_key_travels_only_as_a_header() {
    let h = sim(SimConfig::default()).await;
    let t = task(
        Market::Spot,
        "NOPEUSDT",
        Interval::H1,
        MINUTE_MS,
        2 * DAY_MS,
    );
    let r = run(&h, Market::Spot, vec![t], |c| {
        c.api_key = Some(kline_etl::config::Secret::new("sekrit-key-123".into()));
    })
    .await;
    let text = format!("{:?} {:?}", r.report, r.outcomes);
    assert!(!text.contains("sekrit-key-123"));
    let _: Symbol = "BTCUSDT".parse().unwrap();
}

#[tokio::test]
async fn a_high_used_weight_at_start_does_not_stall_against_a_large_limit() {
    // Another client on this IP used 5500 of the minute (over 90 % of the spot default);
    // the exchange's own limit, which only exchangeInfo tells, is far higher.
    let h = sim(SimConfig::default().with_weight_limit(Market::Spot, 4_000_000_000)).await;
    // Start early in a minute, so that waiting for its end would take long.
    let into_minute = chrono::Utc::now().timestamp_millis().rem_euclid(60_000);
    if into_minute > 35_000 {
        let wait = u64::try_from(60_000 - into_minute + 200).unwrap();
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    // reqwest is built with `rustls-no-provider`: without this, the client panics when no
    // other test in the process has built a kline-etl client first.
    kline_etl::tls::ensure_provider();
    let client = reqwest::Client::new();
    // Weight 250 each: 22 of them are 5500.
    let spend = |requests: usize| {
        let (client, url) = (
            client.clone(),
            format!("{}/api/v3/depth?symbol=BTCUSDT&limit=5000", h.base_url()),
        );
        async move {
            let mut used = 0;
            for _ in 0..requests {
                let reply = client
                    .get(&url)
                    .send()
                    .await
                    .unwrap()
                    .error_for_status()
                    .unwrap();
                used = reply.headers()["x-mbx-used-weight-1m"]
                    .to_str()
                    .unwrap()
                    .parse::<u32>()
                    .unwrap();
            }
            used
        }
    };
    let connect = || async {
        let mut cfg = ExtractConfig::new(Market::Spot, h.base_url(), opts());
        fast(&mut cfg);
        let session = Extractor::new(cfg).connect().await.unwrap();
        assert!(session.exchange_info().is_some());
        session.budget_waits()
    };
    let used = spend(22).await;
    assert!(used >= 5_400, "the set-up used {used}");
    assert_eq!(
        connect().await,
        0,
        "connect waited for a budget the exchange does not impose"
    );
    // Past the default itself (earlier runs of a benchmark in this minute): an accepted
    // reply with that count proves the exchange allows more, so still no wait.
    let used = spend(3).await;
    assert!(used > 6_000, "the set-up used {used}");
    assert_eq!(
        connect().await,
        0,
        "connect waited at {used} used although the exchange accepted that count"
    );
}

//! The built-in simulator over HTTP: every parameter combination, error, weight and limit rule,
//! faults, the data clock, ground truth, replay, and python-binance against it.

use std::path::PathBuf;
use std::time::Duration;

use kline_etl::interval::{DAY_MS, HOUR_MS, Interval, MINUTE_MS};
use kline_etl::market::Market;
use kline_etl::simulator::{
    FaultKind, FaultPlan, KlineRow, RateWindow, SimConfig, SimHandle, Simulator,
};
use kline_etl::symbol::Symbol;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// 2024-06-01T12:34:56.789Z: a fixed data clock for every test.
const NOW: i64 = 1_717_245_296_789;
/// 2024-05-01T00:00:00Z.
const MAY: i64 = 1_714_521_600_000;
/// Spot BTCUSDT listing in the default universe (2017-08-17).
const BTC_LISTED: i64 = 1_502_928_000_000;

async fn sim(config: SimConfig) -> SimHandle {
    Simulator::start(config.with_now(NOW)).await.unwrap()
}

/// A day-long weight window, so weight sums never straddle a window boundary mid-test.
fn day_window() -> SimConfig {
    SimConfig::default().with_window(RateWindow {
        unit: kline_etl::simulator::WindowUnit::Day,
        num: 1,
    })
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn weight(&self, name: &str) -> u64 {
        self.headers[name].to_str().unwrap().parse().unwrap()
    }
}

async fn get(h: &SimHandle, path: &str) -> Reply {
    get_with(h, path, &[]).await
}

async fn get_with(h: &SimHandle, path: &str, headers: &[(&str, &str)]) -> Reply {
    kline_etl::tls::ensure_provider(); // reqwest needs the TLS provider
    let client = reqwest::Client::new();
    let mut req = client.get(format!("{}{path}", h.base_url()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn err(code: i64, msg: &str) -> Value {
    json!({"code": code, "msg": msg})
}

fn rows(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap()
}

fn open(row: &Value) -> i64 {
    row[0].as_i64().unwrap()
}

fn json_rows(rows: &[KlineRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| Value::Array(r.to_json().to_vec()))
            .collect(),
    )
}

fn sym(s: &str) -> Symbol {
    s.parse().unwrap()
}

fn klines(market: &str, query: &str) -> String {
    format!("{market}/klines?{query}")
}

const SPOT: &str = "/api/v3";
const UM: &str = "/fapi/v1";
const CM: &str = "/dapi/v1";

#[tokio::test]
async fn ping_time_and_time_unit() {
    let h = sim(day_window()).await;
    let r = get(&h, "/api/v3/ping").await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({})));
    assert_eq!(r.weight("x-mbx-used-weight-1d"), 1);
    let r = get(&h, "/api/v3/time").await;
    assert_eq!(r.body, json!({"serverTime": NOW}));
    assert_eq!(r.weight("x-mbx-used-weight-1d"), 2);
    let r = get_with(&h, "/api/v3/time", &[("X-MBX-TIME-UNIT", "MICROSECOND")]).await;
    assert_eq!(r.body, json!({"serverTime": NOW * 1000}));
    let r = get_with(&h, "/fapi/v1/time", &[("X-MBX-TIME-UNIT", "NANO")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        err(
            -1194,
            "Invalid value for time unit; expected either MICROSECOND or MILLISECOND."
        )
    );
    // Futures count separately from spot.
    assert_eq!(r.weight("x-mbx-used-weight-1d"), 1);
    let r = get(&h, "/api/v3/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn exchange_info_lists_symbols_limits_and_filters() {
    let h = sim(SimConfig::default()
        .with_window(RateWindow::seconds(10))
        .with_weight_limit(Market::Spot, 1234))
    .await;
    let r = get(&h, "/api/v3/exchangeInfo").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.weight("x-mbx-used-weight-10s"), 20);
    assert_eq!(r.body["timezone"], "UTC");
    assert_eq!(r.body["serverTime"], NOW);
    assert_eq!(
        r.body["rateLimits"][0],
        json!({"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND", "intervalNum": 10, "limit": 1234})
    );
    let names: Vec<&str> = rows(&r.body["symbols"])
        .iter()
        .map(|s| s["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "LUNAUSDT"
        ],
        "NEWUSDT lists in 2026, after the clock"
    );
    let btc = &r.body["symbols"][0];
    assert_eq!(
        (&btc["status"], &btc["baseAsset"], &btc["quoteAsset"]),
        (&json!("TRADING"), &json!("BTC"), &json!("USDT"))
    );
    assert_eq!(btc["filters"][0]["tickSize"], "0.01");
    assert_eq!(r.body["symbols"][6]["status"], "BREAK");

    let r = get(&h, "/api/v3/exchangeInfo?symbol=ETHUSDT").await;
    assert_eq!(rows(&r.body["symbols"]).len(), 1);
    let r = get(
        &h,
        "/api/v3/exchangeInfo?symbols=%5B%22ETHUSDT%22,%22ADAUSDT%22%5D",
    )
    .await;
    assert_eq!(r.body["symbols"][1]["symbol"], "ADAUSDT");
    let r = get(&h, "/api/v3/exchangeInfo?symbol=NOPEUSDT").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body, err(-1121, "Invalid symbol."));

    let r = get(&h, "/fapi/v1/exchangeInfo").await;
    assert_eq!(r.weight("x-mbx-used-weight-10s"), 1);
    assert_eq!(r.body["rateLimits"][0]["limit"], 2400);
    let r = get(&h, "/dapi/v1/exchangeInfo").await;
    let cm: Vec<&str> = rows(&r.body["symbols"])
        .iter()
        .map(|s| s["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(cm, ["BTCUSD_PERP", "ETHUSD_PERP", "LUNAUSD_PERP"]);
    assert_eq!(r.body["symbols"][0]["contractStatus"], "TRADING");
    assert_eq!(r.body["symbols"][2]["status"], "SETTLING");
}

#[tokio::test]
async fn no_bounds_returns_the_latest_500_ending_with_the_forming_candle() {
    let h = sim(SimConfig::default()).await;
    let r = get(&h, &klines(SPOT, "symbol=BTCUSDT&interval=1m")).await;
    let page = rows(&r.body);
    assert_eq!(page.len(), 500);
    let last = &page[499];
    assert_eq!(open(last), Interval::M1.floor(NOW));
    assert!(
        last[6].as_i64().unwrap() > NOW,
        "the last candle is still open"
    );
    assert!(
        page.windows(2)
            .all(|w| open(&w[1]) - open(&w[0]) == MINUTE_MS)
    );
    // Binance's JSON types: ints for times and count, 8-decimal strings elsewhere.
    let row = &page[0];
    assert_eq!(row.as_array().unwrap().len(), 12);
    assert!(row[0].is_i64() && row[6].is_i64() && row[8].is_u64());
    for i in [1, 2, 3, 4, 5, 7, 9, 10, 11] {
        assert!(row[i].is_string(), "field {i}");
    }
    assert_eq!(row[1].as_str().unwrap().split('.').nth(1).unwrap().len(), 8);
    assert_eq!(row[11], "0");
    assert_eq!(r.weight("x-mbx-used-weight-1m"), 2);
}

#[tokio::test]
async fn start_end_combinations() {
    let h = sim(SimConfig::default()).await;
    // Only start: the oldest rows from it; an unaligned start rounds up.
    let r = get(
        &h,
        &klines(
            SPOT,
            &format!("symbol=ETHUSDT&interval=1h&startTime={}&limit=3", MAY + 1),
        ),
    )
    .await;
    let opens: Vec<i64> = rows(&r.body).iter().map(open).collect();
    assert_eq!(opens, [MAY + HOUR_MS, MAY + 2 * HOUR_MS, MAY + 3 * HOUR_MS]);
    // Only end: the most recent rows up to it (inclusive).
    let r = get(
        &h,
        &klines(
            SPOT,
            &format!("symbol=ETHUSDT&interval=1h&endTime={MAY}&limit=2"),
        ),
    )
    .await;
    let opens: Vec<i64> = rows(&r.body).iter().map(open).collect();
    assert_eq!(opens, [MAY - HOUR_MS, MAY]);
    // Both: like start, never past end; startTime == endTime is one candle.
    let q = format!(
        "symbol=ETHUSDT&interval=1d&startTime={MAY}&endTime={}",
        MAY + 2 * DAY_MS
    );
    assert_eq!(rows(&get(&h, &klines(SPOT, &q)).await.body).len(), 3);
    let q = format!("symbol=ETHUSDT&interval=1d&startTime={MAY}&endTime={MAY}");
    assert_eq!(rows(&get(&h, &klines(SPOT, &q)).await.body).len(), 1);
    // Spot start > end: an empty page (documented choice). Futures: -1023.
    let q = format!(
        "symbol=ETHUSDT&interval=1d&startTime={}&endTime={MAY}",
        MAY + 1
    );
    let r = get(&h, &klines(SPOT, &q)).await;
    assert_eq!((r.status, r.body), (StatusCode::OK, json!([])));
    let r = get(&h, &klines(UM, &q)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body, err(-1023, "Start time is greater than end time."));
    // Past the data: empty.
    let q = format!("symbol=ETHUSDT&interval=1m&startTime={}", NOW + DAY_MS);
    assert_eq!(get(&h, &klines(SPOT, &q)).await.body, json!([]));
    // The ground truth matches what was served.
    let q = format!(
        "symbol=ETHUSDT&interval=1h&startTime={MAY}&endTime={}&limit=1000",
        MAY + 10 * DAY_MS - 1
    );
    let served = get(&h, &klines(SPOT, &q)).await.body;
    let truth = h.expected_klines(
        Market::Spot,
        &sym("ETHUSDT"),
        Interval::H1,
        MAY,
        MAY + 10 * DAY_MS,
    );
    assert_eq!(truth.len(), 240);
    assert_eq!(served, json_rows(&truth));
}

#[tokio::test]
async fn listing_and_delisting() {
    let h = sim(SimConfig::default()).await;
    let r = get(
        &h,
        &klines(SPOT, "symbol=BTCUSDT&interval=1d&startTime=0&limit=1"),
    )
    .await;
    assert_eq!(open(&rows(&r.body)[0]), BTC_LISTED);
    let r = get(
        &h,
        &klines(SPOT, "symbol=BTCUSDT&interval=1w&startTime=0&limit=2"),
    )
    .await;
    let first = open(&rows(&r.body)[0]);
    assert_eq!(
        first,
        Interval::W1.floor(BTC_LISTED),
        "grid-aligned week containing the listing"
    );
    assert_eq!(first, 1_502_668_800_000, "Monday 2017-08-14");
    // Delisted symbol: history up to the delisting, nothing after.
    let r = get(&h, &klines(SPOT, "symbol=LUNAUSDT&interval=1d&limit=3")).await;
    let page = rows(&r.body);
    assert_eq!(
        open(&page[2]),
        1_652_400_000_000 - DAY_MS,
        "last day before 2022-05-13"
    );
    // Not yet listed: invalid symbol.
    let r = get(&h, &klines(SPOT, "symbol=NEWUSDT&interval=1d")).await;
    assert_eq!(r.body, err(-1121, "Invalid symbol."));
}

#[tokio::test]
async fn limits_and_validation_errors() {
    let h = sim(SimConfig::default()).await;
    let cases: Vec<(&str, String, Value)> = vec![
        (
            SPOT,
            "interval=1m".into(),
            err(
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            ),
        ),
        (
            SPOT,
            "symbol=&interval=1m".into(),
            err(
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            ),
        ),
        (
            SPOT,
            "symbol=BTCUSDT".into(),
            err(
                -1102,
                "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.",
            ),
        ),
        (
            SPOT,
            "symbol=BTCUSDT&interval=1m&startTime=abc".into(),
            err(
                -1100,
                "Illegal characters found in parameter 'startTime'; legal range is '^[0-9]{1,20}$'.",
            ),
        ),
        (
            SPOT,
            "symbol=BTCUSDT&interval=1m&endTime=-5".into(),
            err(
                -1100,
                "Illegal characters found in parameter 'endTime'; legal range is '^[0-9]{1,20}$'.",
            ),
        ),
        (
            SPOT,
            "symbol=BTCUSDT&interval=1m&limit=1e3".into(),
            err(
                -1100,
                "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.",
            ),
        ),
        (
            SPOT,
            "symbol=btcusdt&interval=1m".into(),
            err(
                -1100,
                "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.",
            ),
        ),
        (
            SPOT,
            "symbol=BTCUSDT&interval=1H".into(),
            err(-1120, "Invalid interval."),
        ),
        (
            UM,
            "symbol=BTCUSDT&interval=1s".into(),
            err(-1120, "Invalid interval."),
        ),
        (
            SPOT,
            "symbol=DOGEUSDT&interval=1m".into(),
            err(-1121, "Invalid symbol."),
        ),
        (
            SPOT,
            "symbol=BTCUSDT&interval=1m&limit=1001".into(),
            err(-1130, "Data sent for parameter 'limit' is not valid."),
        ),
        (
            SPOT,
            "symbol=BTCUSDT&interval=1m&limit=0".into(),
            err(-1130, "Data sent for parameter 'limit' is not valid."),
        ),
        (
            UM,
            "symbol=BTCUSDT&interval=1m&limit=1501".into(),
            err(-1130, "Data sent for parameter 'limit' is not valid."),
        ),
        (
            CM,
            "symbol=BTCUSD_PERP&interval=1m&limit=1501".into(),
            err(-1130, "Data sent for parameter 'limit' is not valid."),
        ),
    ];
    for (market, q, want) in cases {
        let r = get(&h, &klines(market, &q)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{market} {q}");
        assert_eq!(r.body, want, "{market} {q}");
    }
    // The maxima themselves are fine.
    let r = get(&h, &klines(SPOT, "symbol=BTCUSDT&interval=1m&limit=1000")).await;
    assert_eq!(rows(&r.body).len(), 1000);
    let r = get(&h, &klines(UM, "symbol=BTCUSDT&interval=1m&limit=1500")).await;
    assert_eq!(rows(&r.body).len(), 1500);
    let r = get(&h, &klines(SPOT, "symbol=BTCUSDT&interval=1s&limit=5")).await;
    assert_eq!(rows(&r.body).len(), 5);
}

#[tokio::test]
async fn coin_m_window_rule() {
    let h = sim(SimConfig::default()).await;
    let start = MAY;
    let end = MAY + 10 * DAY_MS;
    // Both bounds: the most recent `limit` rows before endTime.
    let q = format!("symbol=BTCUSD_PERP&interval=1d&startTime={start}&endTime={end}&limit=3");
    let opens: Vec<i64> = rows(&get(&h, &klines(CM, &q)).await.body)
        .iter()
        .map(open)
        .collect();
    assert_eq!(opens, [end - 2 * DAY_MS, end - DAY_MS, end]);
    // Over 200 days: rejected.
    let q = format!(
        "symbol=BTCUSD_PERP&interval=1d&startTime={start}&endTime={}",
        start + 201 * DAY_MS
    );
    let r = get(&h, &klines(CM, &q)).await;
    assert_eq!(
        r.body,
        err(-1127, "More than 4800 hours between startTime and endTime.")
    );
    // Only start: endTime = start + 200 days, and the rows nearest that end come back.
    let old = MAY - 365 * DAY_MS;
    let q = format!("symbol=BTCUSD_PERP&interval=1d&startTime={old}&limit=2");
    let opens: Vec<i64> = rows(&get(&h, &klines(CM, &q)).await.body)
        .iter()
        .map(open)
        .collect();
    assert_eq!(opens, [old + 199 * DAY_MS, old + 200 * DAY_MS]);
    // Only start, capped at now.
    let q = format!("symbol=BTCUSD_PERP&interval=1d&startTime={MAY}&limit=1");
    let r = get(&h, &klines(CM, &q)).await;
    assert_eq!(open(&rows(&r.body)[0]), Interval::D1.floor(NOW));
    // Only end: the most recent rows before it.
    let q = format!("symbol=BTCUSD_PERP&interval=1d&endTime={end}&limit=1");
    assert_eq!(open(&rows(&get(&h, &klines(CM, &q)).await.body)[0]), end);
    // COIN-M fields: volume in contracts (integer), field 7 the base volume.
    let q = "symbol=BTCUSD_PERP&interval=1h&limit=1";
    let page = get(&h, &klines(CM, q)).await.body;
    let row = &page[0];
    assert!(!row[5].as_str().unwrap().contains('.'));
    assert_eq!(row[7].as_str().unwrap().split('.').nth(1).unwrap().len(), 8);
}

#[tokio::test]
async fn microsecond_times_in_and_out() {
    let h = sim(SimConfig::default()).await;
    let ms = get(
        &h,
        &klines(
            SPOT,
            &format!("symbol=BTCUSDT&interval=1h&startTime={MAY}&limit=2"),
        ),
    )
    .await
    .body;
    let us = get(
        &h,
        &klines(
            SPOT,
            &format!(
                "symbol=BTCUSDT&interval=1h&startTime={}&limit=2",
                MAY * 1000
            ),
        ),
    )
    .await
    .body;
    assert_eq!(ms, us);
    let r = get_with(
        &h,
        &klines(
            SPOT,
            &format!("symbol=BTCUSDT&interval=1h&startTime={MAY}&limit=1"),
        ),
        &[("X-MBX-TIME-UNIT", "MICROSECOND")],
    )
    .await;
    let row = &rows(&r.body)[0];
    assert_eq!(row[0], json!(MAY * 1000));
    assert_eq!(row[6], json!((MAY + HOUR_MS) * 1000 - 1));
    assert_eq!(row[1], ms[0][1]);
}

#[tokio::test]
async fn forming_candle_changes_as_the_clock_advances() {
    let h = sim(SimConfig::default()).await;
    let q = klines(SPOT, "symbol=BTCUSDT&interval=1h&limit=2");
    let before = get(&h, &q).await.body;
    let forming_open = Interval::H1.floor(NOW);
    assert_eq!(open(&before[1]), forming_open);
    h.advance(10 * MINUTE_MS);
    assert_eq!(h.now_ms(), NOW + 10 * MINUTE_MS);
    let after = get(&h, &q).await.body;
    assert_eq!(before[0], after[0], "closed candles never change");
    assert_eq!(open(&after[1]), forming_open);
    assert_ne!(
        before[1][5], after[1][5],
        "the forming candle's volume grew"
    );
    assert_eq!(before[1][1], after[1][1], "its open did not change");
    // Once closed, it equals the ground truth forever.
    h.set_now(forming_open + 2 * HOUR_MS);
    let truth = h.expected_klines(
        Market::Spot,
        &sym("BTCUSDT"),
        Interval::H1,
        forming_open,
        forming_open + HOUR_MS,
    );
    let q = format!("symbol=BTCUSDT&interval=1h&startTime={forming_open}&limit=1");
    assert_eq!(get(&h, &klines(SPOT, &q)).await.body, json_rows(&truth));
    // The ground truth never includes the forming candle.
    let truth = h.expected_klines(
        Market::Spot,
        &sym("BTCUSDT"),
        Interval::H1,
        forming_open,
        forming_open + 10 * HOUR_MS,
    );
    let opens: Vec<i64> = truth.iter().map(|r| r.open_time).collect();
    assert_eq!(opens, [forming_open, forming_open + HOUR_MS]);
}

/// `--memo-pages`: a repeated request for closed candles is answered from memory with the
/// same bytes; a page that holds the forming candle is rendered afresh every time.
#[tokio::test]
async fn memo_pages_serve_closed_pages_again_and_never_the_forming_candle() {
    let memo = sim(SimConfig::default().with_memo_pages()).await;
    let plain = sim(SimConfig::default()).await;
    let closed = klines(
        SPOT,
        &format!("symbol=BTCUSDT&interval=1m&startTime={MAY}&limit=1000"),
    );
    let forming = klines(SPOT, "symbol=BTCUSDT&interval=1m&limit=3");
    let first = get(&memo, &closed).await.body;
    assert_eq!(rows(&first).len(), 1000);
    let before = get(&memo, &forming).await.body;
    memo.advance(30_000);
    plain.advance(30_000);
    assert_eq!(
        get(&memo, &closed).await.body,
        first,
        "a closed page is served again"
    );
    assert_eq!(
        get(&plain, &closed).await.body,
        first,
        "and it is what the simulator renders"
    );
    let after = get(&memo, &forming).await.body;
    assert_ne!(
        before[2][5], after[2][5],
        "the forming candle is not memoized"
    );
    assert_eq!(after, get(&plain, &forming).await.body);
    assert_eq!(
        memo.stats().rows_served,
        1000 + 3 + 1000 + 3,
        "rows served from the memo are counted as served"
    );
}

#[tokio::test]
async fn aggregation_is_consistent_across_intervals() {
    let h = sim(SimConfig::default()).await;
    let month: i64 = 1_709_251_200_000; // 2024-03-01
    let m = get(
        &h,
        &klines(
            SPOT,
            &format!("symbol=SOLUSDT&interval=1M&startTime={month}&limit=1"),
        ),
    )
    .await
    .body;
    let d = get(
        &h,
        &klines(
            SPOT,
            &format!("symbol=SOLUSDT&interval=1d&startTime={month}&limit=31"),
        ),
    )
    .await
    .body;
    let days = rows(&d);
    assert_eq!(days.len(), 31);
    assert_eq!(
        m[0][6],
        json!(1_711_929_600_000_i64 - 1),
        "March closes at April 1st"
    );
    let num = |v: &Value| v.as_str().unwrap().parse::<f64>().unwrap();
    let extreme = |field: usize, max: bool| {
        let by = |a: &&Value, b: &&Value| num(&a[field]).total_cmp(&num(&b[field]));
        let row = if max {
            days.iter().max_by(by)
        } else {
            days.iter().min_by(by)
        };
        row.unwrap()[field].clone()
    };
    assert_eq!(m[0][2], extreme(2, true), "month high = max of day highs");
    assert_eq!(m[0][3], extreme(3, false), "month low = min of day lows");
    assert_eq!(m[0][1], days[0][1]);
    assert_eq!(m[0][4], days[30][4]);
    let trades: u64 = days.iter().map(|r| r[8].as_u64().unwrap()).sum();
    assert_eq!(m[0][8].as_u64().unwrap(), trades);
    // Weeks open on Monday.
    let w = get(
        &h,
        &klines(
            SPOT,
            &format!("symbol=SOLUSDT&interval=1w&startTime={month}&limit=3"),
        ),
    )
    .await
    .body;
    for row in rows(&w) {
        assert_eq!((open(row) - 4 * DAY_MS).rem_euclid(7 * DAY_MS), 0);
    }
}

#[tokio::test]
async fn the_real_2023_03_24_halt_is_in_btcusdt() {
    let h = sim(SimConfig::default()).await;
    let q = "symbol=BTCUSDT&interval=1h&startTime=1679655600000&limit=3";
    let page = get(&h, &klines(SPOT, q)).await.body;
    let opens: Vec<i64> = rows(&page).iter().map(open).collect();
    assert_eq!(
        opens,
        [1_679_655_600_000, 1_679_659_200_000, 1_679_666_400_000]
    );
    assert_eq!(page[1][6], json!(1_679_661_581_646_i64));
    assert_eq!(page[0][6], json!(1_679_659_199_999_i64));
}

#[tokio::test]
async fn weights_by_endpoint_and_limit() {
    let h = sim(day_window()).await;
    let hdr = "x-mbx-used-weight-1d";
    let mut total_um = 0;
    for (limit, w) in [(99, 1), (100, 2), (499, 2), (500, 5), (1000, 5), (1001, 10)] {
        total_um += w;
        let r = get(
            &h,
            &klines(UM, &format!("symbol=BTCUSDT&interval=1m&limit={limit}")),
        )
        .await;
        assert_eq!(r.weight(hdr), total_um, "limit {limit}");
    }
    let r = get(&h, &klines(CM, "symbol=BTCUSD_PERP&interval=1m")).await;
    assert_eq!(r.weight(hdr), 5, "default limit 500 weighs 5");
    let mut spot = 0;
    let steps = [
        ("/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1000", 2),
        ("/api/v3/uiKlines?symbol=BTCUSDT&interval=1m&limit=1", 2),
        ("/api/v3/ticker/price?symbol=BTCUSDT", 2),
        ("/api/v3/ticker/price", 4),
        ("/api/v3/depth?symbol=BTCUSDT", 5),
        ("/api/v3/depth?symbol=BTCUSDT&limit=101", 25),
        ("/api/v3/depth?symbol=BTCUSDT&limit=1000", 50),
        ("/api/v3/depth?symbol=BTCUSDT&limit=9999", 250),
        ("/api/v3/exchangeInfo", 20),
        // Errors cost weight too.
        ("/api/v3/klines?symbol=NOPE&interval=1m", 2),
    ];
    for (path, w) in steps {
        spot += w;
        let r = get(&h, path).await;
        assert_eq!(r.weight(hdr), spot, "{path}");
    }
    let s = h.stats();
    assert_eq!(s.max_window_weight, spot);
    assert_eq!(s.requests["/api/v3/depth"], 4);
}

#[tokio::test]
async fn ticker_and_depth_bodies() {
    let h = sim(SimConfig::default()).await;
    let r = get(&h, "/api/v3/ticker/price").await;
    let all = rows(&r.body);
    assert_eq!(all.len(), 6, "trading symbols only");
    assert!(
        all.iter()
            .all(|t| t["symbol"].is_string() && t["price"].is_string())
    );
    let r = get(&h, "/api/v3/ticker/price?symbol=ETHUSDT").await;
    assert_eq!(r.body["symbol"], "ETHUSDT");
    let last = get(&h, &klines(SPOT, "symbol=ETHUSDT&interval=1m&limit=1"))
        .await
        .body;
    assert_eq!(r.body["price"], last[0][4]);
    let r = get(&h, "/api/v3/ticker/price?symbol=NOPE").await;
    assert_eq!(r.body, err(-1121, "Invalid symbol."));
    let r = get(&h, "/api/v3/depth?symbol=BTCUSDT&limit=7000").await;
    assert_eq!(rows(&r.body["bids"]).len(), 5000);
    assert_eq!(rows(&r.body["asks"]).len(), 5000);
    assert!(r.body["lastUpdateId"].is_i64());
    let r = get(&h, "/fapi/v1/depth?symbol=BTCUSDT&limit=7").await;
    assert_eq!(rows(&r.body["bids"]).len(), 10);
    assert_eq!(r.weight("x-mbx-used-weight-1m"), 2);
}

#[tokio::test]
async fn over_the_limit_429_then_ban_418() {
    let h = sim(day_window()
        .with_weight_limit(Market::Spot, 5)
        .with_ban_base(Duration::from_secs(60)))
    .await;
    let q = klines(SPOT, "symbol=BTCUSDT&interval=1m&limit=1");
    for used in [2, 4] {
        let r = get(&h, &q).await;
        assert_eq!(
            (r.status, r.weight("x-mbx-used-weight-1d")),
            (StatusCode::OK, used)
        );
    }
    let msg = "Too much request weight used; current limit is 5 request weight per 1 DAY. Please use WebSocket Streams for live updates to avoid polling the API.";
    for _ in 0..3 {
        let r = get(&h, &q).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.body, err(-1003, msg));
        assert_eq!(r.weight("x-mbx-used-weight-1d"), 4);
        let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=86_400).contains(&retry));
    }
    // A ping still fits (weight 1) ... but the client kept pushing: next over-limit request bans.
    let r = get(&h, &q).await;
    assert_eq!(r.status, StatusCode::IM_A_TEAPOT);
    assert_eq!(r.headers["retry-after"], "60");
    let msg = r.body["msg"].as_str().unwrap();
    let until: i64 = msg
        .strip_prefix("Way too much request weight used; IP banned until ")
        .and_then(|s| {
            s.strip_suffix(". Please use WebSocket Streams for live updates to avoid bans.")
        })
        .unwrap()
        .parse()
        .unwrap();
    assert!(until > NOW);
    assert_eq!(r.body["code"], -1003);
    // Banned for everything on that market, including cheap calls.
    let r = get(&h, "/api/v3/ping").await;
    assert_eq!(r.status, StatusCode::IM_A_TEAPOT);
    // Other markets are separate hosts.
    assert_eq!(get(&h, "/fapi/v1/ping").await.status, StatusCode::OK);
    let s = h.stats();
    assert_eq!((s.sent_429, s.sent_418), (3, 2));
    assert_eq!(s.max_window_weight, 4);
}

#[tokio::test]
async fn short_windows_are_named_in_headers_and_limits() {
    let h = sim(SimConfig::default().with_window(RateWindow::seconds(10))).await;
    let r = get(&h, "/fapi/v1/ping").await;
    assert!(r.headers.contains_key("x-mbx-used-weight-10s"));
    assert!(!r.headers.contains_key("x-mbx-used-weight-1m"));
    let r = get(&h, "/fapi/v1/exchangeInfo").await;
    assert_eq!(r.body["rateLimits"][0]["interval"], "SECOND");
    assert_eq!(r.body["rateLimits"][0]["intervalNum"], 10);
}

#[tokio::test]
async fn injected_faults() {
    let plan = FaultPlan::none()
        .at(1, FaultKind::InternalError)
        .at(2, FaultKind::ServiceUnavailable)
        .at(3, FaultKind::HtmlBody)
        .at(4, FaultKind::TruncatedBody)
        .at(5, FaultKind::ResetMidBody)
        .at(6, FaultKind::ResetBeforeHeaders)
        .at(7, FaultKind::SlowBody)
        .at(8, FaultKind::TooManyRequests)
        .at(10, FaultKind::Ban);
    let h = sim(SimConfig::default()
        .with_faults(FaultPlan {
            slow_chunk_delay_ms: 1,
            ..plan
        })
        .with_ban_base(Duration::from_secs(30)))
    .await;
    let q = klines(SPOT, "symbol=BTCUSDT&interval=1m&limit=1000");
    let url = format!("{}{q}", h.base_url());
    kline_etl::tls::ensure_provider(); // reqwest needs the TLS provider
    let client = reqwest::Client::new();

    let r = get(&h, &q).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body["code"], -1000);
    assert_eq!(r.weight("x-mbx-used-weight-1m"), 0, "5xx add no weight");
    assert_eq!(get(&h, &q).await.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = get(&h, &q).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.headers["content-type"], "text/html");
    assert!(r.body.as_str().unwrap().starts_with("<html>"));
    let r = get(&h, &q).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_string(), "truncated body is not JSON");
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.is_err(), "connection dropped mid-body");
    assert!(
        client.get(&url).send().await.is_err(),
        "reset before headers"
    );
    let slow = get(&h, &q).await;
    assert_eq!(rows(&slow.body).len(), 1000, "slow body arrives whole");
    let r = get(&h, &q).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["code"], -1003);
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(get(&h, &q).await.status, StatusCode::OK, "request 9");
    let r = get(&h, &q).await;
    assert_eq!(
        (r.status, &r.headers["retry-after"]),
        (StatusCode::IM_A_TEAPOT, &"30".parse().unwrap())
    );
    assert_eq!(
        get(&h, &q).await.status,
        StatusCode::IM_A_TEAPOT,
        "the ban holds"
    );

    let stats = get(&h, "/__sim/stats").await.body;
    for kind in [
        "internal_error",
        "service_unavailable",
        "html_body",
        "truncated_body",
        "reset_mid_body",
        "reset_before_headers",
        "slow_body",
        "too_many_requests",
        "ban",
    ] {
        assert_eq!(stats["faults"][kind], 1, "{kind}");
    }
    assert_eq!(stats["requests"]["/api/v3/klines"], 11);
    assert_eq!(stats["sent_429"], 1);
    assert_eq!(stats["sent_418"], 2);
}

#[tokio::test]
async fn random_faults_are_reproducible_with_a_seed() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let plan = FaultPlan {
            seed,
            ..FaultPlan::none()
        }
        .random(FaultKind::ServiceUnavailable, 0.3);
        let h = sim(SimConfig::default().with_faults(plan)).await;
        let mut out = Vec::new();
        for _ in 0..30 {
            out.push(get(&h, "/api/v3/ping").await.status.as_u16());
        }
        out
    }
    let a = statuses(7).await;
    assert_eq!(a, statuses(7).await);
    assert!(a.contains(&503) && a.contains(&200));
    assert_ne!(a, statuses(8).await);
}

#[tokio::test]
async fn latency_is_added() {
    let plan = FaultPlan {
        latency: kline_etl::simulator::Latency {
            fixed_ms: 30,
            jitter_ms: 0,
        },
        ..FaultPlan::none()
    };
    let h = sim(SimConfig::default().with_faults(plan)).await;
    let t = std::time::Instant::now();
    get(&h, "/api/v3/ping").await;
    assert!(t.elapsed() >= Duration::from_millis(30));
}

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from("/work/shared/fixtures/real").join(rel)
}

#[tokio::test]
async fn replays_real_files() {
    let mut cfg = SimConfig::default();
    for m in 1..=5 {
        let f = fixture(&format!("intabyu-interview-at/BTCUSDT-1h-2023-0{m}.csv"));
        if !f.exists() {
            eprintln!("skip: fixtures not present");
            return;
        }
        cfg = cfg
            .with_replay(Market::Spot, "BTCUSDT", Interval::H1, &f)
            .unwrap();
    }
    cfg = cfg
        .with_replay(
            Market::Spot,
            "ETHUSDT",
            Interval::H1,
            &fixture("vbalabin-trtrd/klines.json"),
        )
        .unwrap();
    let h = sim(cfg).await;
    // Page through 2023-01 .. 2023-05 like a client would.
    let mut all = Vec::new();
    let mut start = 1_672_531_200_000_i64;
    loop {
        let q = format!("symbol=BTCUSDT&interval=1h&startTime={start}&limit=1000");
        let page = get(&h, &klines(SPOT, &q)).await.body;
        let page = rows(&page).clone();
        if page.is_empty() {
            break;
        }
        start = open(page.last().unwrap()) + HOUR_MS;
        all.extend(page);
    }
    assert_eq!(all.len(), 3623);
    let halted = all.iter().find(|r| open(r) == 1_679_659_200_000).unwrap();
    assert_eq!(halted[6], json!(1_679_661_581_646_i64));
    assert_eq!(halted[1], "28080.00000000");
    assert!(
        !all.iter().any(|r| open(r) == 1_679_662_800_000),
        "13:00 is missing"
    );
    // Other intervals of a replayed symbol are empty.
    assert_eq!(
        get(&h, &klines(SPOT, "symbol=BTCUSDT&interval=1d"))
            .await
            .body,
        json!([])
    );
    let truth = h.expected_klines(Market::Spot, &sym("ETHUSDT"), Interval::H1, 0, i64::MAX);
    assert_eq!(truth.len(), 240);
    let text = std::fs::read_to_string(fixture("vbalabin-trtrd/klines.json")).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json_rows(&truth), file);
}

#[tokio::test]
async fn from_settings_uses_the_pipeline_knobs() {
    let settings = kline_etl::config::SimulatorSettings {
        seed: 3,
        latency_ms: 0,
        weight_limit: Some(777),
    };
    let cfg = SimConfig::from_settings(&settings, Market::UsdM);
    assert_eq!(cfg.seed, 3);
    let h = sim(cfg).await;
    let r = get(&h, "/fapi/v1/exchangeInfo").await;
    assert_eq!(r.body["rateLimits"][0]["limit"], 777);
    let r = get(&h, "/api/v3/exchangeInfo").await;
    assert_eq!(r.body["rateLimits"][0]["limit"], 6000);
    // Different seeds, different markets.
    let other = sim(SimConfig::default().with_seed(4)).await;
    let q = klines(UM, "symbol=BTCUSDT&interval=1d&limit=1");
    assert_ne!(get(&h, &q).await.body, get(&other, &q).await.body);
    h.shutdown().await;
}

/// python-binance 1.0.37's `get_historical_klines` against the simulator fetches exactly the
/// simulator's rows over several pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_binance_fetches_the_same_rows() {
    let Some(python) = std::env::var_os("KLINE_ETL_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "KLINE_ETL_PYTHON must point at a python with python-binance==1.0.37 in CI"
        );
        eprintln!("skip: set KLINE_ETL_PYTHON to a python with python-binance==1.0.37");
        return;
    };
    let h = sim(SimConfig::default()).await;
    let start = MAY;
    let end = MAY + 3 * DAY_MS + 12 * HOUR_MS; // 5040 one-minute candles: 6 pages
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/python_binance_check.py");
    let base = h.base_url();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(&script)
            .arg(base)
            .args(["BTCUSDT", "1m", &start.to_string(), &end.to_string()])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    // python-binance's end is inclusive of a candle opening exactly at `end`.
    let truth = h.expected_klines(Market::Spot, &sym("BTCUSDT"), Interval::M1, start, end + 1);
    assert_eq!(truth.len(), 5041);
    assert_eq!(got, json_rows(&truth));
    let s = h.stats();
    assert_eq!(s.requests["/api/v3/ping"], 1);
    assert!(s.requests["/api/v3/klines"] >= 6);
}

//! The fault soak: many multi-symbol runs of the real binary against simulators injecting
//! seeded random faults (5xx, connection resets, truncated and HTML bodies, slow bodies,
//! 429 bursts, 418 bans, and the hostile replies of issue 24: rows off the grid or closing
//! before they open, empty pages, exchange errors with HTTP 200, implausible weight headers,
//! day-long `Retry-After`s and redirects) and `kill -9` at random moments. After every run
//! that claims success the output must equal the exchange's data except for candles inside
//! gaps its `_kline_etl/summary.json` accounts for (`invalid_row`, `empty_reply`); after a clean rerun
//! of every run (and of every run that did not exit 0) it must equal it exactly; and no
//! temporary file may ever be visible to a reader.
//!
//! CI runs a short soak (`fault_soak`); the long one is on demand:
//! `KLINE_ETL_SOAK_RUNS=200 cargo test --test it soak -- --nocapture`.

use std::collections::BTreeMap;
use std::time::Duration;

use kline_etl::interval::Interval;
use kline_etl::simulator::{ClockMode, FaultKind, FaultPlan, SimConfig, SimHandle, Simulator};

use crate::harness::{NOW, pipeline, stderr};
use crate::nightly::{assert_equals_exchange, assert_only_complete_files_visible, spawn, wait};

const NOW_31: i64 = NOW + 60_000;
const SYMBOLS: [&str; 3] = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];
const INTERVALS: [Interval; 2] = [Interval::M15, Interval::H1];
const MAR_1: i64 = 1_709_251_200_000; // 2024-03-01

/// A tiny deterministic generator (SplitMix64): the soak is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const KINDS: [FaultKind; 13] = [
    FaultKind::InternalError,
    FaultKind::ServiceUnavailable,
    FaultKind::ResetBeforeHeaders,
    FaultKind::ResetMidBody,
    FaultKind::TruncatedBody,
    FaultKind::HtmlBody,
    FaultKind::SlowBody,
    FaultKind::TooManyRequests,
    FaultKind::OffGridRow,
    FaultKind::CloseBeforeOpen,
    FaultKind::EmptyPage,
    FaultKind::JsonErrorOk,
    FaultKind::HugeWeightHeader,
];

/// Faults placed at one request of a run (each in some runs): they stop or fail the run.
const RARE: [FaultKind; 3] = [
    FaultKind::Ban,
    FaultKind::HugeRetryAfter,
    FaultKind::Redirect,
];

async fn faulty_simulator(rng: &mut Rng) -> SimHandle {
    let mut faults = FaultPlan {
        seed: rng.next(),
        ..FaultPlan::none()
    };
    faults.latency.fixed_ms = 2;
    faults.latency.jitter_ms = 8;
    faults.slow_chunk_delay_ms = 5;
    for kind in KINDS {
        // 0 to 3 % per request for each kind.
        faults = faults.random(kind, rng.below(4) as f64 / 100.0);
    }
    for kind in RARE {
        if rng.below(4) == 0 {
            faults = faults.at(4 + rng.below(20), kind);
        }
    }
    // A redirect points at a closed port: it must never be followed anyway.
    faults = faults.redirect_to("http://127.0.0.1:9");
    let cfg = SimConfig {
        clock: ClockMode::Fixed(NOW_31),
        ..SimConfig::default()
    }
    .with_ban_base(Duration::from_millis(500))
    .with_faults(faults);
    Simulator::start(cfg).await.unwrap()
}

async fn clean_simulator() -> SimHandle {
    let cfg = SimConfig {
        clock: ClockMode::Fixed(NOW_31),
        ..SimConfig::default()
    };
    Simulator::start(cfg).await.unwrap()
}

/// What the soak survived.
#[derive(Debug, Default)]
struct Tally {
    runs: u64,
    kills: u64,
    exits: BTreeMap<i32, u64>,
    faults: BTreeMap<String, u64>,
    http_429: u64,
    http_418: u64,
    reruns: u64,
    /// Candles missing after a run that exited 0, each inside a gap its summary reports as
    /// `invalid_row` or `empty_reply`.
    accounted: u64,
}

async fn soak(runs: u64, seed: u64) -> Tally {
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    let mut dir = tempfile::tempdir().unwrap();
    for i in 0..runs {
        // Every third run starts from an empty output; the others build on what is there.
        if i % 3 == 0 {
            dir = tempfile::tempdir().unwrap();
        }
        let sim = faulty_simulator(&mut rng).await;
        let p = pipeline(
            dir.path(),
            &sim.base_url(),
            &format!("[{}]", SYMBOLS.join(", ")),
            "[15m, 1h]",
            "  max_ban_wait_secs: 2\n",
        );
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("start: 2024-01-01", "start: 2024-03-01");
        std::fs::write(&p, text).unwrap();
        let p = p.to_str().unwrap().to_owned();
        let concurrency = (1 + rng.below(8)).to_string();
        let mut child = spawn(
            dir.path(),
            &["-q", "run", &p, "--concurrency", &concurrency],
        );
        let killed = if rng.below(3) == 0 {
            tokio::time::sleep(Duration::from_millis(50 + rng.below(600))).await;
            let running = child.try_wait().unwrap().is_none();
            let _ = child.kill(); // SIGKILL
            running
        } else {
            false
        };
        let out = wait(child).await;
        let code = out.status.code().unwrap_or(-9);
        tally.runs += 1;
        if killed {
            tally.kills += 1;
        }
        *tally.exits.entry(code).or_default() += 1;
        let stats = sim.stats();
        for (k, n) in &stats.faults {
            *tally.faults.entry(k.clone()).or_default() += n;
        }
        tally.http_429 += stats.sent_429;
        tally.http_418 += stats.sent_418;
        assert!(
            matches!(code, -9 | 0 | 1 | 3),
            "run {i}: exit {code}\n{}",
            stderr(&out)
        );
        assert_only_complete_files_visible(&dir.path().join("out"));
        let accounted = if code == 0 {
            // A run that says it is complete is complete, without any rerun, except for what
            // its summary accounts for.
            assert_equals_exchange_but_accounted(&sim, &dir.path().join("out"), MAR_1)
        } else {
            0
        };
        tally.accounted += accounted;
        sim.shutdown().await;
        if code != 0 || accounted > 0 {
            // Anything else must converge with one clean rerun.
            tally.reruns += 1;
            let clean = clean_simulator().await;
            let p2 = pipeline(
                dir.path(),
                &clean.base_url(),
                &format!("[{}]", SYMBOLS.join(", ")),
                "[15m, 1h]",
                "",
            );
            let text = std::fs::read_to_string(&p2)
                .unwrap()
                .replace("start: 2024-01-01", "start: 2024-03-01");
            std::fs::write(&p2, text).unwrap();
            let rerun = wait(spawn(dir.path(), &["-q", "run", p2.to_str().unwrap()])).await;
            assert_eq!(
                rerun.status.code(),
                Some(0),
                "rerun after run {i}: {}",
                stderr(&rerun)
            );
            assert_only_complete_files_visible(&dir.path().join("out"));
            assert_equals_exchange(&clean, &dir.path().join("out"), &SYMBOLS, &INTERVALS, MAR_1);
            clean.shutdown().await;
        }
    }
    tally
}

/// The output equals the exchange's data except for candles inside gaps `_kline_etl/summary.json`
/// reports as ours (`invalid_row`, `empty_reply`); returns how many candles those are.
fn assert_equals_exchange_but_accounted(sim: &SimHandle, out: &std::path::Path, start: i64) -> u64 {
    use kline_etl::market::Market;
    use kline_etl::summary::dataset::read_series;
    use kline_etl::symbol::Symbol;
    let text = std::fs::read_to_string(out.join("klines/_kline_etl/summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut missing = 0;
    for sym in SYMBOLS {
        let symbol: Symbol = sym.parse().unwrap();
        for interval in INTERVALS {
            let got = read_series(out, Market::Spot, &symbol, interval)
                .unwrap()
                .unwrap_or_else(|| panic!("no {sym} {interval} data"));
            let want = crate::harness::truth(sim, &symbol, interval, start, interval.floor(NOW_31));
            let gaps: Vec<(i64, i64)> = summary["series"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["symbol"] == sym && s["interval"] == interval.as_str())
                .flat_map(|s| s["gaps"].as_array().unwrap().clone())
                .filter(|g| g["cause"] == "invalid_row" || g["cause"] == "empty_reply")
                .map(|g| {
                    let t = |k: &str| {
                        chrono::DateTime::parse_from_rfc3339(g[k].as_str().unwrap())
                            .unwrap()
                            .timestamp_millis()
                    };
                    (t("start"), t("end"))
                })
                .collect();
            let mut j = 0;
            for i in 0..want.len() {
                let t = want.open_time[i];
                if j < got.len() && got.open_time[j] == t {
                    assert!(got.row_eq(j, &want, i), "{sym} {interval}: row {t} differs");
                    j += 1;
                } else {
                    assert!(
                        gaps.iter().any(|(s, e)| (*s..*e).contains(&t)),
                        "{sym} {interval}: candle {t} missing and not accounted for in the summary"
                    );
                    missing += 1;
                }
            }
            assert_eq!(
                j,
                got.len(),
                "{sym} {interval}: rows the exchange does not have"
            );
        }
    }
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_soak() {
    let runs = std::env::var("KLINE_ETL_SOAK_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seed = std::env::var("KLINE_ETL_SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_125);
    let t = soak(runs, seed).await;
    eprintln!(
        "soak: {} runs, {} killed mid-run, {} clean reruns, exits {:?}, 429s {}, 418s {}, faults {:?}, candles accounted as invalid_row/empty_reply {}, mismatches 0",
        t.runs, t.kills, t.reruns, t.exits, t.http_429, t.http_418, t.faults, t.accounted
    );
    assert_eq!(t.runs, runs);
    assert!(
        t.faults.values().sum::<u64>() > 0,
        "the soak injected no fault"
    );
}

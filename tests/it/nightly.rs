//! Nightly backfills through the real binary against the simulator: a no-op nightly costs one
//! request per series, an earlier start fetches only the head, `kill -9` at any point loses
//! nothing on rerun, Ctrl-C stops cleanly and resumes, two runs on one dataset are serialised
//! by the lock, `repair` refetches exactly the failed windows, and `status` reports it all.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kline_etl::interval::Interval;
use kline_etl::market::Market;
use kline_etl::simulator::{ClockMode, FaultKind, FaultPlan, SimConfig, SimHandle, Simulator};
use kline_etl::summary::dataset::read_series;
use kline_etl::symbol::Symbol;

use crate::harness::{BIN, NOW, assert_same, cli, pipeline, stderr, summary_json, truth};

const JAN_1: i64 = 1_704_067_200_000; // 2024-01-01
/// The simulator's frozen clock here: 2024-06-01T00:31:00Z, a minute past a 15m boundary, so
/// the client's conservative view of "closed" (the exchange clock minus the request latency)
/// agrees with the exchange's.
const NOW_31: i64 = NOW + 60_000;

async fn slow_simulator(latency_ms: u64, faults: FaultPlan) -> SimHandle {
    let mut faults = faults;
    faults.latency.fixed_ms = latency_ms;
    let cfg = SimConfig {
        clock: ClockMode::Fixed(NOW_31),
        ..SimConfig::default()
    }
    .with_faults(faults);
    Simulator::start(cfg).await.unwrap()
}

fn kline_requests(s: &serde_json::Value) -> u64 {
    s["run"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["requests"].as_u64().unwrap())
        .sum()
}

/// Every series of `symbols` × `intervals` under `out` equals the exchange from `start`.
pub(crate) fn assert_equals_exchange(
    sim: &SimHandle,
    out: &Path,
    symbols: &[&str],
    intervals: &[Interval],
    start: i64,
) {
    for sym in symbols {
        let symbol: Symbol = sym.parse().unwrap();
        for interval in intervals {
            let got = read_series(out, Market::Spot, &symbol, *interval)
                .unwrap()
                .unwrap_or_else(|| panic!("no {sym} {interval} data"));
            let want = truth(sim, &symbol, *interval, start, interval.floor(NOW_31));
            assert_same(&got, &want, &format!("{sym} {interval}"));
        }
    }
}

/// Files a reader would see: everything not starting with `.` or `_`, which must be
/// directories or readable partition files (`1h-2024.parquet`).
pub(crate) fn assert_only_complete_files_visible(root: &Path) {
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                assert!(
                    kline_etl::layout::partition_file_interval(&name).is_some(),
                    "stray file {}",
                    path.display()
                );
                kline_etl::load::read_partition(&path)
                    .unwrap_or_else(|err| panic!("{} unreadable: {err}", path.display()));
            }
        }
    }
}

pub(crate) fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub(crate) async fn wait(child: Child) -> std::process::Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_op_nightly_makes_one_request_per_series() {
    let sim = slow_simulator(0, FaultPlan::none()).await;
    let dir = tempfile::tempdir().unwrap();
    let symbols = [
        "BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT",
    ];
    let p = pipeline(
        dir.path(),
        &sim.base_url(),
        &format!("[{}]", symbols.join(", ")),
        "[1h, 4h, 1d]",
        "",
    );
    let p = p.to_str().unwrap();
    let first = cli(dir.path(), &["-q", "run", p], &[]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let before = sim.stats().requests_total;
    let second = cli(dir.path(), &["-q", "run", p], &[]).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let s = summary_json(dir.path());
    assert_eq!(s["run"]["tasks_total"], 18, "one task per series");
    assert_eq!(kline_requests(&s), 18, "one kline request per series");
    assert_eq!(s["run"]["rows_new"], 0);
    assert_eq!(s["run"]["files_written"], 0);
    // Plus the exchange's clock and exchangeInfo, nothing else.
    assert_eq!(sim.stats().requests_total - before, 20);
    assert!(
        !dir.path()
            .join("out/klines/_kline_etl/resume.json")
            .exists()
    );
    sim.shutdown().await;
}

/// `plan --json` (and `run --dry-run`) on an existing dataset lists exactly the windows the
/// run then fetches: the missing head and the tail from the last stored candle, not the range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_dry_run_list_exactly_the_windows_the_run_fetches() {
    let sim = slow_simulator(0, FaultPlan::none()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        &sim.base_url(),
        "[BTCUSDT, ETHUSDT]",
        "[1h, 1d]",
        "",
    );
    let p = p.to_str().unwrap();
    let first = cli(dir.path(), &["-q", "run", p, "--from", "2024-03-01"], &[]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let now = kline_etl::time::fmt_ms(NOW_31);
    let planned = cli(
        dir.path(),
        &[
            "plan",
            p,
            "--from",
            "2024-01-01",
            "--to",
            "2024-06-01",
            "--now",
            &now,
            "--json",
        ],
        &[],
    )
    .await;
    assert_eq!(planned.status.code(), Some(0), "{}", stderr(&planned));
    let plan: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    let windows = |tasks: &serde_json::Value, start: &str, end: &str, sym: &str, iv: &str| {
        let mut w: Vec<(String, String, String, String)> = tasks
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let text = |k: &str| match &t[k] {
                    serde_json::Value::Number(n) => kline_etl::time::fmt_ms(n.as_i64().unwrap()),
                    v => v.as_str().unwrap().to_owned(),
                };
                (text(sym), text(iv), text(start), text(end))
            })
            .collect();
        w.sort();
        w
    };
    let plan_windows = windows(&plan["tasks"], "start_ms", "end_ms", "symbol", "interval");
    assert_eq!(
        plan_windows.len(),
        8,
        "head and tail of 4 series: {plan_windows:?}"
    );
    let dry = cli(
        dir.path(),
        &["run", p, "--from", "2024-01-01", "--dry-run"],
        &[],
    )
    .await;
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("8 task(s)"),
        "{}",
        String::from_utf8_lossy(&dry.stdout)
    );
    let second = cli(
        dir.path(),
        &["-q", "run", p, "--from", "2024-01-01", "--to", "2024-06-01"],
        &[],
    )
    .await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let s = summary_json(dir.path());
    let run_windows = windows(&s["run"]["tasks"], "start", "end", "symbol", "interval");
    assert_eq!(plan_windows, run_windows);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_start_fetches_only_the_missing_head() {
    let sim = slow_simulator(0, FaultPlan::none()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &sim.base_url(), "[BTCUSDT]", "[1h]", "");
    let p = p.to_str().unwrap();
    let first = cli(dir.path(), &["-q", "run", p, "--from", "2024-03-01"], &[]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let second = cli(dir.path(), &["-q", "run", p, "--from", "2024-01-01"], &[]).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let s = summary_json(dir.path());
    let tasks = s["run"]["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "head and tail: {tasks:?}");
    assert_eq!(tasks[0]["start"], "2024-01-01T00:00:00.000Z");
    assert_eq!(tasks[0]["end"], "2024-03-01T00:00:00.000Z");
    // 60 days × 24 = 1440 candles: two pages, nothing after the head.
    assert_eq!(tasks[0]["requests"], 3, "the listing probe and two pages");
    assert_eq!(tasks[0]["rows_new"], 1440);
    assert_eq!(
        tasks[1]["requests"], 1,
        "the tail re-checks the last candle"
    );
    assert_eq!(tasks[1]["rows_new"], 0);
    assert_equals_exchange(
        &sim,
        &dir.path().join("out"),
        &["BTCUSDT"],
        &[Interval::H1],
        JAN_1,
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_any_point_then_a_rerun_equals_the_exchange() {
    let sim = slow_simulator(25, FaultPlan::none()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        &sim.base_url(),
        "[BTCUSDT, ETHUSDT]",
        "[15m]",
        "",
    );
    // Monthly partitions: a run writes six files per series, one after the other.
    let text = std::fs::read_to_string(&p).unwrap() + "  partition: month\n";
    std::fs::write(&p, text).unwrap();
    let p = p.to_str().unwrap();
    let out = dir.path().join("out");
    let mut killed_mid_run = 0;
    for delay_ms in [40, 250, 450, 650, 900, 1200] {
        let mut child = spawn(dir.path(), &["-q", "run", p, "--concurrency", "1"]);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().unwrap(); // SIGKILL
        let _ = wait(child).await;
        assert_only_complete_files_visible(&out);
    }
    assert!(
        killed_mid_run >= 4,
        "only {killed_mid_run} kills hit a running process"
    );
    let status = cli(dir.path(), &["status", "out", "--json"], &[]).await;
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(st["running"].is_null());

    let last = cli(dir.path(), &["-q", "run", p], &[]).await;
    assert_eq!(last.status.code(), Some(0), "{}", stderr(&last));
    assert_only_complete_files_visible(&out);
    assert_equals_exchange(&sim, &out, &["BTCUSDT", "ETHUSDT"], &[Interval::M15], JAN_1);
    let s = summary_json(dir.path());
    assert_eq!(s["series"][0]["missing"], 0);
    assert!(!out.join("klines/_kline_etl/resume.json").exists());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_cleanly_and_the_rerun_resumes() {
    let sim = slow_simulator(40, FaultPlan::none()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &sim.base_url(), "[BTCUSDT]", "[15m]", "");
    let p = p.to_str().unwrap();
    let child = spawn(dir.path(), &["run", p, "--concurrency", "1"]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let out = wait(child).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("stopping cleanly"),
        "{}",
        stderr(&out)
    );
    let s = summary_json(dir.path());
    assert_eq!(s["run"]["outcome"], "resumable");
    assert_eq!(s["run"]["stopped_by"], "interrupt");
    // `status` says what the run said.
    let st = cli(dir.path(), &["status", "out"], &[]).await;
    let st = String::from_utf8_lossy(&st.stdout).into_owned();
    assert!(st.contains(": resumable, stopped by interrupt"), "{st}");
    assert!(!st.contains("cancelled"), "{st}");
    assert_eq!(s["run"]["tasks_stopped"], 1);
    assert!(s["run"]["tasks"][0]["resume_from"].is_string());
    assert_only_complete_files_visible(&dir.path().join("out"));
    let resume =
        std::fs::read_to_string(dir.path().join("out/klines/_kline_etl/resume.json")).unwrap();
    assert!(resume.contains("\"stopped\""), "{resume}");

    let rerun = cli(dir.path(), &["-q", "run", p], &[]).await;
    assert_eq!(rerun.status.code(), Some(0), "{}", stderr(&rerun));
    assert_equals_exchange(
        &sim,
        &dir.path().join("out"),
        &["BTCUSDT"],
        &[Interval::M15],
        JAN_1,
    );
    assert!(
        !dir.path()
            .join("out/klines/_kline_etl/resume.json")
            .exists()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_dataset_exits_5_or_waits_for_the_lock() {
    let sim = slow_simulator(30, FaultPlan::none()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &sim.base_url(), "[BTCUSDT]", "[15m]", "");
    let p = p.to_str().unwrap();
    let first = spawn(dir.path(), &["-q", "run", p, "--concurrency", "1"]);
    // Wait until the first run holds the lock (its owner record is written).
    let lock = dir.path().join("out/klines/_kline_etl/.lock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read(&lock).map_or(true, |b| b.is_empty()) {
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = cli(dir.path(), &["status", "out", "--json"], &[]).await;
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(st["running"]["pid"], first.id());

    let refused = cli(dir.path(), &["-q", "run", p], &[]).await;
    assert_eq!(refused.status.code(), Some(5), "{}", stderr(&refused));
    let msg = stderr(&refused);
    assert!(
        msg.contains("locked by pid") && msg.contains(&first.id().to_string()),
        "{msg}"
    );
    assert!(msg.contains("--lock-wait"), "{msg}");

    let waiter = cli(dir.path(), &["-q", "run", p, "--lock-wait", "120"], &[]).await;
    assert_eq!(waiter.status.code(), Some(0), "{}", stderr(&waiter));
    let first = wait(first).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_only_complete_files_visible(&dir.path().join("out"));
    assert_equals_exchange(
        &sim,
        &dir.path().join("out"),
        &["BTCUSDT"],
        &[Interval::M15],
        JAN_1,
    );
    let s = summary_json(dir.path());
    assert_eq!(
        s["run"]["rows_new"], 0,
        "the waiting run found the data complete"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_refetches_exactly_the_failed_windows() {
    // Request 1 is /time, 2 exchangeInfo, 3 the listing probe, 4 and 5 the first pages; with
    // no retries, the 500 on request 6 fails the task from that page on.
    let sim = slow_simulator(0, FaultPlan::none().at(6, FaultKind::InternalError)).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        &sim.base_url(),
        "[BTCUSDT]",
        "[15m]",
        "  max_retries: 0\n",
    );
    let p = p.to_str().unwrap();
    let first = cli(dir.path(), &["-q", "run", p, "--concurrency", "1"], &[]).await;
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    let s = summary_json(dir.path());
    let task = &s["run"]["tasks"][0];
    assert_eq!(task["status"], "failed");
    let failed = task["failed_windows"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(
        s["series"][0]["rows"], 2000,
        "two pages stored before the failure"
    );
    let resume =
        std::fs::read_to_string(dir.path().join("out/klines/_kline_etl/resume.json")).unwrap();
    assert!(resume.contains("\"task_failed\""), "{resume}");

    let st = cli(dir.path(), &["status", p, "--json"], &[]).await;
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["series"][0]["last_run"], "failed");
    assert!(st["series"][0]["pending_windows"].as_u64().unwrap() >= 1);

    let repair = cli(dir.path(), &["-q", "repair", p], &[]).await;
    assert_eq!(repair.status.code(), Some(0), "{}", stderr(&repair));
    let s = summary_json(dir.path());
    assert_eq!(s["run"]["tasks_total"], 1, "{}", s["run"]);
    // It starts at the last stored candle (re-checked), one 15m step before the failed page.
    let failed_start = failed[0]["start"].as_i64().unwrap();
    assert_eq!(
        s["run"]["tasks"][0]["start"],
        kline_etl::time::fmt_ms(failed_start - 900_000)
    );
    assert_eq!(s["run"]["rows_new"], 14_594 - 2000);
    assert_eq!(s["series"][0]["missing"], 0);
    assert!(
        !dir.path()
            .join("out/klines/_kline_etl/resume.json")
            .exists()
    );
    assert_equals_exchange(
        &sim,
        &dir.path().join("out"),
        &["BTCUSDT"],
        &[Interval::M15],
        JAN_1,
    );

    // Nothing left to repair: no kline request at all.
    let again = cli(dir.path(), &["-q", "repair", p], &[]).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(summary_json(dir.path())["run"]["tasks_total"], 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_longer_than_the_wait_limit_exits_3_and_the_rerun_completes() {
    let sim = Simulator::start(
        SimConfig {
            clock: ClockMode::Fixed(NOW_31),
            ..SimConfig::default()
        }
        .with_ban_base(Duration::from_secs(2))
        .with_faults(FaultPlan::none().at(5, FaultKind::Ban)),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        &sim.base_url(),
        "[BTCUSDT]",
        "[15m]",
        "  max_ban_wait_secs: 0\n",
    );
    let p = p.to_str().unwrap();
    let banned = cli(dir.path(), &["-q", "run", p, "--concurrency", "1"], &[]).await;
    assert_eq!(banned.status.code(), Some(3), "{}", stderr(&banned));
    let s = summary_json(dir.path());
    assert_eq!(s["run"]["outcome"], "resumable");
    assert_eq!(s["run"]["stopped_by"], "ban");
    assert_eq!(s["run"]["http_418"], 1);
    assert_only_complete_files_visible(&dir.path().join("out"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let rerun = cli(dir.path(), &["-q", "run", p], &[]).await;
    assert_eq!(rerun.status.code(), Some(0), "{}", stderr(&rerun));
    assert_equals_exchange(
        &sim,
        &dir.path().join("out"),
        &["BTCUSDT"],
        &[Interval::M15],
        JAN_1,
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_path_that_is_a_file_exits_4_and_touches_nothing() {
    let sim = slow_simulator(0, FaultPlan::none()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("out"), b"not a directory").unwrap();
    let p = pipeline(dir.path(), &sim.base_url(), "[BTCUSDT]", "[1d]", "");
    let out = cli(dir.path(), &["-q", "run", p.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("out/klines"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(dir.path().join("out")).unwrap(),
        b"not a directory"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_resolve_prints_the_symbols_a_selector_picks() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sel.yaml");
    std::fs::write(
        &p,
        "name: sel\nsource:\n  simulator: {}\nsymbols:\n  quote: [USDT]\n  regex: \"^(BTC|ETH|LUNA)\"\nintervals: [1d]\nrange:\n  start: 2024-01-01\n  end: 2024-02-01\noutput:\n  path: out\n",
    )
    .unwrap();
    let out = cli(
        dir.path(),
        &["plan", p.to_str().unwrap(), "--resolve", "--json"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // LUNAUSDT is delisted: not TRADING, so not selected.
    assert_eq!(
        plan["resolved_symbols"],
        serde_json::json!(["BTCUSDT", "ETHUSDT"])
    );
    assert_eq!(plan["tasks"].as_array().unwrap().len(), 2);
    assert!(!dir.path().join("out").exists(), "plan writes nothing");
}

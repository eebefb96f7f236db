//! The end-to-end benchmark's job definitions (`bench/jobs.json`, `bench/jobs/*.yaml`) stay
//! valid: every pipeline validates and describes the same job as the table (symbols, intervals,
//! range), every symbol exists in the simulator the harness starts, contender slices lie inside
//! their job, and `simulate` serves the limits and symbols the jobs ask for. Nothing is timed.

use std::path::{Path, PathBuf};

use kline_etl::config::{self, Endpoint, SymbolSelection, parse_time};
use kline_etl::market::Market;
use kline_etl::simulator::SimConfig;
use serde_json::Value;

use crate::harness::BIN;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn jobs() -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("bench/jobs.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["version"], 1);
    let jobs = doc["jobs"].as_array().unwrap().clone();
    assert!(!jobs.is_empty());
    jobs
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list, got {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn load(job: &Value, out: &Path) -> config::Pipeline {
    let path = root().join(job["pipeline"].as_str().unwrap());
    let out = out.display().to_string();
    let env = move |name: &str| match name {
        "BENCH_URL" => Some("http://127.0.0.1:9".to_owned()),
        "BENCH_OUT" => Some(out.clone()),
        _ => None,
    };
    config::load(&path, &env).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn bench_pipelines_validate_and_match_the_jobs_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for job in jobs() {
        let name = job["name"].as_str().unwrap().to_owned();
        assert!(!names.contains(&name), "duplicate job `{name}`");
        let p = load(&job, dir.path());
        assert_eq!(p.source.market, Market::Spot, "{name}");
        assert!(
            matches!(&p.source.endpoint, Endpoint::Url(u) if u == "http://127.0.0.1:9"),
            "{name}: base_url must be ${{BENCH_URL}}"
        );
        assert!(
            p.output.path.starts_with(dir.path()),
            "{name}: output.path must be under ${{BENCH_OUT}}"
        );
        let SymbolSelection::List(symbols) = &p.symbols else {
            panic!("{name}: symbols must be a list");
        };
        let symbols: Vec<String> = symbols.iter().map(|s| s.as_str().to_owned()).collect();
        assert_eq!(symbols, strings(&job["symbols"]), "{name}: symbols");
        let intervals: Vec<String> = p.intervals.iter().map(ToString::to_string).collect();
        assert_eq!(intervals, strings(&job["intervals"]), "{name}: intervals");
        let start = parse_time(job["start"].as_str().unwrap()).unwrap();
        let end = parse_time(job["end"].as_str().unwrap()).unwrap();
        assert_eq!((p.range.start, p.range.end), (start, end), "{name}: range");
        names.push(name);
    }
    for expected in [
        "cpu",
        "budget",
        "memory-1m",
        "memory-4m",
        "memory-16m",
        "noop",
        "archive",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "job `{expected}` missing"
        );
    }
}

#[test]
fn bench_contenders_are_known_and_slice_their_job() {
    let known = [
        "kline-etl",
        "python-binance",
        "python-binance-nosleep",
        "ccxt",
        "polars",
        "pandas",
    ];
    let now = chrono::Utc::now().timestamp_millis();
    for job in jobs() {
        let name = job["name"].as_str().unwrap();
        let symbols = strings(&job["symbols"]);
        let resolve = |v: &Value| parse_time(v.as_str().unwrap()).unwrap().resolve(now);
        let (start, end) = (resolve(&job["start"]), resolve(&job["end"]));
        assert!(start < end, "{name}: empty range");
        let contenders = job["contenders"].as_array().unwrap();
        assert_eq!(
            contenders[0]["name"], "kline-etl",
            "{name}: kline-etl first"
        );
        for c in contenders {
            let cname = c["name"].as_str().unwrap();
            assert!(
                known.contains(&cname),
                "{name}: unknown contender `{cname}`"
            );
            if let Some(s) = c.get("symbols") {
                for sym in strings(s) {
                    assert!(
                        symbols.contains(&sym),
                        "{name}/{cname}: `{sym}` not in the job"
                    );
                }
            }
            let cs = c.get("start").map_or(start, resolve);
            let ce = c.get("end").map_or(end, resolve);
            assert!(
                start <= cs && cs < ce && ce <= end,
                "{name}/{cname}: slice outside the job"
            );
            let script = match cname {
                "kline-etl" => continue,
                "python-binance" | "python-binance-nosleep" => "python_binance.py",
                "ccxt" => "ccxt_pandas.py",
                "pandas" => "pandas_raw.py",
                _ => "polars_raw.py",
            };
            assert!(root().join("bench/contenders").join(script).is_file());
        }
    }
}

#[test]
fn bench_symbols_exist_in_the_simulator_the_harness_starts() {
    for job in jobs() {
        let name = job["name"].as_str().unwrap();
        let sim = &job["simulator"];
        let extra = u32::try_from(sim["extra_symbols"].as_u64().unwrap()).unwrap();
        let limit = sim["weight_limit"].as_u64().unwrap();
        assert!(
            limit > 0 && u32::try_from(limit).is_ok(),
            "{name}: weight_limit"
        );
        assert!(
            sim["window_secs"].as_u64().unwrap() >= 1,
            "{name}: window_secs"
        );
        let config = SimConfig::default().with_extra_spot_symbols(extra);
        let universe = &config.symbols[&Market::Spot];
        let start = parse_time(job["start"].as_str().unwrap())
            .unwrap()
            .resolve(chrono::Utc::now().timestamp_millis());
        for sym in strings(&job["symbols"]) {
            let spec = universe
                .iter()
                .find(|s| s.symbol == sym)
                .unwrap_or_else(|| panic!("{name}: `{sym}` is not in the simulator's universe"));
            assert!(
                spec.listed_ms <= start,
                "{name}: `{sym}` is listed after the start"
            );
            assert!(spec.delisted_ms.is_none(), "{name}: `{sym}` is delisted");
        }
        if job["kind"] == "budget" {
            assert!(sim["latency_ms"].as_u64().unwrap() > 0, "{name}: latency");
        }
        // A page memo serves a warm-up run's pages again: only for jobs that measure the
        // client's own cost, never where pacing against the budget is the point.
        if let Some(memo) = sim.get("memo_pages") {
            assert!(
                memo.is_boolean(),
                "{name}: memo_pages must be true or false"
            );
            assert!(
                !memo.as_bool().unwrap()
                    || matches!(job["kind"].as_str(), Some("throughput" | "memory")),
                "{name}: memo_pages only for throughput and memory jobs"
            );
        }
    }
}

#[test]
fn extra_spot_symbols_are_numbered_and_listed() {
    let base = SimConfig::default();
    let config = SimConfig::default().with_extra_spot_symbols(50);
    let spot = &config.symbols[&Market::Spot];
    assert_eq!(spot.len(), base.symbols[&Market::Spot].len() + 50);
    assert!(spot.iter().any(|s| s.symbol == "SIM01USDT"));
    assert!(spot.iter().any(|s| s.symbol == "SIM50USDT"));
    assert!(!spot.iter().any(|s| s.symbol == "SIM51USDT"));
    assert_eq!(
        config.symbols[&Market::UsdM],
        base.symbols[&Market::UsdM],
        "futures untouched"
    );
    assert_eq!(SimConfig::default().with_extra_spot_symbols(0), base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_flags_set_the_limit_window_and_symbols() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(BIN)
        .args([
            "simulate",
            "--port",
            "0",
            "--market",
            "spot",
            "--weight-limit",
            "1000",
            "--window-secs",
            "10",
            "--extra-symbols",
            "3",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("simulator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let get = |path: String| async move {
        kline_etl::tls::ensure_provider(); // reqwest needs the TLS provider
        let text = reqwest::get(path).await.unwrap().text().await.unwrap();
        serde_json::from_str::<Value>(&text).unwrap()
    };
    let info = get(format!("{url}/api/v3/exchangeInfo")).await;
    let reply = reqwest::get(format!(
        "{url}/api/v3/klines?symbol=SIM03USDT&interval=1d&startTime=1577836800000&limit=2"
    ))
    .await
    .unwrap();
    let header = reply
        .headers()
        .get("x-mbx-used-weight-10s")
        .map(|h| h.to_str().unwrap().to_owned());
    let rows: Value = serde_json::from_str(&reply.text().await.unwrap()).unwrap();
    let stats = get(format!("{url}/__sim/stats")).await;
    child.kill().unwrap();
    let _ = child.wait();
    let weight = info["rateLimits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rateLimitType"] == "REQUEST_WEIGHT")
        .unwrap();
    assert_eq!(weight["limit"], 1000);
    assert_eq!(weight["interval"], "SECOND");
    assert_eq!(weight["intervalNum"], 10);
    assert!(header.is_some(), "used-weight header of the 10 s window");
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0][0], 1_577_836_800_000_i64);
    assert_eq!(stats["requests_total"], 2);
    assert_eq!(stats["rows_served"], 2);
}

#[test]
fn bench_harness_check_mode_accepts_the_jobs() {
    let Ok(out) = std::process::Command::new("python3")
        .arg(root().join("bench/harness.py"))
        .args(["--check", "--bin", BIN])
        .output()
    else {
        eprintln!("python3 not found; harness --check not run");
        return;
    };
    assert!(
        out.status.success(),
        "harness --check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    for job in jobs() {
        let name = job["name"].as_str().unwrap();
        assert!(log.contains(&format!("ok  {name}")), "{name} not checked");
    }
}

/// The harness against a job with `memo_pages` measures one run after an unmeasured warm-up:
/// the same rows and requests as without the memo (the warm-up's are subtracted), the
/// warm-up's output gone, and the simulator's CPU for the measured run is reported.
#[test]
fn bench_harness_measures_one_run_after_a_warm_up_against_the_page_memo() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("python3 not found; harness not run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("tiny.yaml");
    std::fs::write(
        &pipeline,
        "name: bench-tiny\nsource:\n  market: spot\n  base_url: ${BENCH_URL:-http://127.0.0.1:8080}\n  mode: rest\n  \
         weight_share: 1.0\nsymbols: [BTCUSDT]\nintervals: [1m]\nrange:\n  start: 2024-01-01\n  \
         end: 2024-01-03\noutput:\n  path: ${BENCH_OUT:-bench-out}/tiny\n",
    )
    .unwrap();
    let mut results = Vec::new();
    for memo in [false, true] {
        let job = serde_json::json!({
            "version": 1,
            "jobs": [{
                "name": "tiny", "title": "two days of 1m", "kind": "throughput",
                "pipeline": pipeline,
                "simulator": { "latency_ms": 0, "weight_limit": 4_000_000_000_u64, "window_secs": 60,
                               "extra_symbols": 0, "memo_pages": memo },
                "run_args": [], "symbols": ["BTCUSDT"], "intervals": ["1m"],
                "start": "2024-01-01", "end": "2024-01-03",
                "contenders": [{ "name": "kline-etl" }], "goals": {}
            }]
        });
        let jobs = dir.path().join(format!("jobs-{memo}.json"));
        std::fs::write(&jobs, job.to_string()).unwrap();
        let out = dir.path().join(format!("out-{memo}"));
        let run = std::process::Command::new("python3")
            .arg(root().join("bench/harness.py"))
            .args(["--bin", BIN, "--jobs-file"])
            .arg(&jobs)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "harness failed:\n{}\n{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        let text = std::fs::read_to_string(out.join("results.json")).unwrap();
        let r: Value = serde_json::from_str(&text).unwrap();
        let work = out.join("work/tiny/kline-etl");
        assert!(
            !work.join("warm").exists(),
            "the warm-up's output is removed"
        );
        assert_eq!(
            work.join("warm.stderr").exists(),
            memo,
            "a warm-up ran only with the memo"
        );
        results.push(r[0].clone());
    }
    for key in ["rows", "requests", "weight"] {
        assert_eq!(results[0][key], results[1][key], "{key}: {results:?}");
    }
    assert_eq!(results[1]["rows"], 2880);
    assert!(results[1]["sim_cpu_s"].as_f64().unwrap() >= 0.0);
}

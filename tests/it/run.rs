//! The real binary end to end against the simulator: `run` writes exactly the exchange's
//! closed candles, reruns are byte-identical no-ops, a nightly rerun fetches only what is new,
//! bad symbols fail their own task only, `summary` and `chart` read the output, and the API
//! key never leaks.

use kline_etl::interval::{DAY_MS, Interval};
use kline_etl::market::Market;
use kline_etl::summary::dataset::read_series;
use kline_etl::symbol::Symbol;

use crate::harness::{
    BIN, NOW, assert_no_file_contains, assert_same, cli, file_hashes, pipeline, repo, simulator,
    stderr, summary_json, truth,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_pipeline_runs_offline_and_a_rerun_is_a_byte_identical_no_op() {
    let cwd = tempfile::tempdir().unwrap();
    let demo = repo().join("pipelines/demo.yaml");
    let demo = demo.to_str().unwrap();
    let first = cli(cwd.path(), &["run", demo], &[]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("BTCUSDT"),
        "summary table on stdout"
    );
    let out = cwd.path().join("data/demo");
    let before = file_hashes(&out);
    assert_eq!(before.len(), 6, "3 symbols × (1h and 1d, a file per year)");
    let second = cli(cwd.path(), &["-q", "run", demo], &[]).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(file_hashes(&out), before, "rerun changed bytes");
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("klines/_kline_etl/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s["run"]["rows_new"], 0);
    assert_eq!(s["run"]["files_written"], 0);
    assert_eq!(s["series"].as_array().unwrap().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_writes_exactly_the_exchange_data_and_a_bad_symbol_fails_only_its_task() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        &sim.base_url(),
        "[BTCUSDT, ETHUSDT, NOSUCHUSDT]",
        "[1h, 1d, 1w, 1M]",
        "",
    );
    let out = cli(dir.path(), &["run", p.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let start = 1_704_067_200_000; // 2024-01-01
    for sym in ["BTCUSDT", "ETHUSDT"] {
        let symbol: Symbol = sym.parse().unwrap();
        for interval in [Interval::H1, Interval::D1, Interval::W1, Interval::Mo1] {
            let got = read_series(&dir.path().join("out"), Market::Spot, &symbol, interval)
                .unwrap()
                .unwrap();
            let want = truth(&sim, &symbol, interval, start, NOW);
            assert!(!want.is_empty());
            assert_same(&got, &want, &format!("{sym} {interval}"));
        }
    }
    let s = summary_json(dir.path());
    let run = &s["run"];
    assert_eq!(run["tasks_failed"], 4, "NOSUCHUSDT × 4 intervals");
    assert_eq!(run["tasks_ok"], 8);
    let failed: Vec<&serde_json::Value> = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "failed")
        .collect();
    assert!(failed.iter().all(|t| t["symbol"] == "NOSUCHUSDT"));
    let err = failed[0]["error"].as_str().unwrap();
    assert!(err.contains("-1121") && err.contains("NOSUCHUSDT"), "{err}");
    assert_eq!(run["http_429"], 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nightly_rerun_fetches_only_the_new_candles() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &sim.base_url(), "[BTCUSDT]", "[1h, 1d]", "");
    let p = p.to_str().unwrap().to_owned();
    let first = cli(dir.path(), &["run", &p], &[]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let rows_before = summary_json(dir.path())["series"][1]["rows"]
        .as_u64()
        .unwrap();
    sim.advance(DAY_MS);
    let requests_before = sim.stats().requests_total;
    let second = cli(dir.path(), &["run", &p], &[]).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let s = summary_json(dir.path());
    // 24 new hourly candles and one daily candle; the re-checked last stored candles are
    // unchanged.
    assert_eq!(s["run"]["rows_new"], 25, "{}", s["run"]);
    assert_eq!(s["series"][1]["rows"].as_u64().unwrap(), rows_before + 24);
    assert_eq!(s["series"][1]["missing"], 0);
    let kline_requests: u64 = s["run"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["requests"].as_u64().unwrap())
        .sum();
    assert!(kline_requests <= 4, "{kline_requests} kline requests");
    assert!(sim.stats().requests_total - requests_before <= 8);
    let symbol: Symbol = "BTCUSDT".parse().unwrap();
    let got = read_series(&dir.path().join("out"), Market::Spot, &symbol, Interval::H1)
        .unwrap()
        .unwrap();
    let want = truth(&sim, &symbol, Interval::H1, 1_704_067_200_000, NOW + DAY_MS);
    assert_same(&got, &want, "BTCUSDT 1h after the rerun");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_and_chart_read_the_output() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &sim.base_url(), "[BTCUSDT]", "[1d]", "");
    let run = cli(dir.path(), &["-q", "run", p.to_str().unwrap()], &[]).await;
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));

    let out = cli(dir.path(), &["summary", "out", "--json"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let series = &s["series"][0];
    assert_eq!(series["symbol"], "BTCUSDT");
    let rows = series["rows"].as_u64().unwrap();
    assert_eq!(rows, 152, "2024-01-01 .. 2024-06-01 is 152 days");
    assert_eq!(series["describe"]["close"]["count"], 152);
    // The pipeline file works as PATH too, and the table and describe() print.
    let out = cli(dir.path(), &["summary", "pipeline.yaml", "--describe"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("BTCUSDT") && text.contains("75%"), "{text}");

    let svg = cli(
        dir.path(),
        &[
            "chart",
            "out",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1d",
            "--last",
            "60",
            "-o",
            "c.svg",
        ],
        &[],
    )
    .await;
    assert_eq!(svg.status.code(), Some(0), "{}", stderr(&svg));
    let text = std::fs::read_to_string(dir.path().join("c.svg")).unwrap();
    assert!(text.contains("BTCUSDT 1d (spot)") && text.contains("MA 30"));
    let png = cli(
        dir.path(),
        &[
            "chart",
            "out",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1d",
            "--width",
            "640",
            "--height",
            "400",
            "-o",
            "c.png",
        ],
        &[],
    )
    .await;
    assert_eq!(png.status.code(), Some(0), "{}", stderr(&png));
    let bytes = std::fs::read(dir.path().join("c.png")).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 640);

    let missing = cli(
        dir.path(),
        &[
            "chart",
            "out",
            "--symbol",
            "ETHUSDT",
            "--interval",
            "1d",
            "-o",
            "e.svg",
        ],
        &[],
    )
    .await;
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("no spot ETHUSDT 1d data"));
    let bad = cli(
        dir.path(),
        &[
            "chart",
            "out",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1d",
            "-o",
            "c.gif",
        ],
        &[],
    )
    .await;
    assert_eq!(bad.status.code(), Some(2));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_never_appears_in_logs_or_files_and_json_logs_parse() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = "sk-TEST-7f3a9c1e5d";
    let p = pipeline(
        dir.path(),
        &sim.base_url(),
        "[BTCUSDT, NOSUCHUSDT]",
        "[1d]",
        "  api_key: ${BINANCE_API_KEY}\n",
    );
    let out = cli(
        dir.path(),
        &["-vv", "--log-format", "json", "run", p.to_str().unwrap()],
        &[("BINANCE_API_KEY", secret)],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains(secret) && !String::from_utf8_lossy(&out.stdout).contains(secret));
    let mut json_lines = 0;
    for line in err.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<serde_json::Value>(line).expect("a JSON log line");
        json_lines += 1;
    }
    assert!(json_lines > 0);
    assert_no_file_contains(dir.path(), secret);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_serves_on_the_printed_address() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(BIN)
        .args(["simulate", "--port", "0", "--market", "spot"])
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
    kline_etl::tls::ensure_provider(); // reqwest needs the TLS provider
    let body = reqwest::get(format!("{url}/api/v3/ping"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(body, "{}");
}

/// The README's sharding snippets (the Kubernetes Indexed Job, the Airflow DAG mapping over
/// `plan --shards --json`) run as written against the simulator and fill the whole dataset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_sharding_snippets_run() {
    let Some(python) = crate::harness::python() else {
        eprintln!("skipping: set KLINE_ETL_PYTHON");
        return;
    };
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let pipeline = dir.path().join("backfill.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: backfill\nsource:\n  base_url: {}\nsymbols: [BTCUSDT, ETHUSDT, BNBUSDT, SOLUSDT]\nintervals: [1m, 1h]\nrange:\n  start: 2024-05-30\n  end: now\noutput:\n  path: {}\n",
            sim.base_url(),
            out.display()
        ),
    )
    .unwrap();
    let bin_dir = std::path::Path::new(crate::harness::BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let readme = repo().join("README.md");
    let text = crate::harness::python_check(
        &python,
        "check_shard_snippets.py",
        &[readme.as_os_str(), pipeline.as_os_str()],
        &[("PATH", &path)],
    );
    assert!(
        text.contains("Kubernetes Indexed Job: works (4 pods"),
        "{text}"
    );
    assert!(
        text.contains("Airflow dynamic task mapping: works (4 mapped"),
        "{text}"
    );
    // The shards together wrote every series.
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("klines/_kline_etl/summary.shard-4-of-4.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s["series"].as_array().unwrap().len(), 8, "{}", s["series"]);
    sim.shutdown().await;
}

//! The analyst's and the operator's day through the real binary: `fetch` (klines, tickers,
//! order books) without a pipeline file, `run --symbols/--intervals`, `init`, completions and
//! the man page, results on stdout and logs on stderr (one JSON object a line with
//! `--log-format json`), relative starts aligned to candles, ranges that resolve to nothing
//! refused at validation, and the progress display's last frame under a pseudo-terminal.

use std::path::Path;
use std::process::Output;

use kline_etl::interval::Interval;
use kline_etl::market::Market;
use kline_etl::summary::dataset::read_series;

use crate::harness::{BIN, cli, repo, simulator, stderr};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn rows(out: &Path, symbol: &str, interval: Interval) -> usize {
    read_series(out, Market::Spot, &symbol.parse().unwrap(), interval)
        .unwrap()
        .map_or(0, |r| r.len())
}

/// The `pandas:`/`polars:` lines `fetch` printed, as Python expressions.
fn snippets(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            ["pandas: ", "polars: "].iter().find_map(|p| {
                l.strip_prefix(p)
                    .map(|code| (p.trim_end_matches(": ").to_owned(), code.to_owned()))
            })
        })
        .collect()
}

/// Run each snippet with the Python readers (`KLINE_ETL_PYTHON`, as `scripts/test.sh` sets
/// it) in `cwd` and return the row counts; `None` when no Python is configured.
fn python_row_counts(cwd: &Path, snippets: &[(String, String)]) -> Option<Vec<usize>> {
    let Some(python) = std::env::var_os("KLINE_ETL_PYTHON") else {
        eprintln!("skipping the pandas/polars snippets: set KLINE_ETL_PYTHON to run them");
        return None;
    };
    let mut counts = Vec::new();
    for (lib, code) in snippets {
        let import = if lib == "pandas" {
            "import pandas as pd"
        } else {
            "import polars as pl"
        };
        let script = format!("{import}\ndf = {code}\nprint(len(df))\n");
        let out = std::process::Command::new(&python)
            .args(["-c", &script])
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{lib}: {code}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        counts.push(String::from_utf8_lossy(&out.stdout).trim().parse().unwrap());
    }
    Some(counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_writes_the_notebook_series_incrementally_and_prints_how_to_read_it() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let url = sim.base_url();
    let args = [
        "fetch",
        "BTCUSDT",
        "1d",
        "--start",
        "1 January 2024",
        "--base-url",
        &url,
        "-o",
        "out",
    ];
    let first = cli(dir.path(), &args, &[]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    // 2024-01-01 .. 2024-05-31: the simulator's clock is frozen at 2024-06-01T00:30Z.
    assert_eq!(rows(&dir.path().join("out"), "BTCUSDT", Interval::D1), 152);
    let text = stdout(&first);
    assert!(text.contains("data: out/klines"), "{text}");
    assert!(
        text.contains(
            "pandas: pd.read_parquet(\"out/klines\", filters=[(\"interval\", \"in\", [\"1d\"]), (\"symbol\", \"in\", [\"BTCUSDT\"])])"
        ),
        "{text}"
    );
    // The summary table is a result: stdout, not stderr.
    assert!(text.contains("first open (UTC)"), "{text}");
    assert!(!stderr(&first).contains("first open (UTC)"));
    let snips = snippets(&text);
    assert_eq!(snips.len(), 2, "{text}");
    if let Some(counts) = python_row_counts(dir.path(), &snips) {
        assert_eq!(counts, vec![152, 152]);
    }
    // Incremental like `run`: the rerun asks for the last stored candle only.
    let again = cli(dir.path(), &args, &[]).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/klines/_kline_etl/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s["run"]["rows_new"], 0);
    assert_eq!(s["pipeline"]["name"], "fetch");
    let requests: u64 = s["run"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(requests, 1, "{s}");
    // The pipeline it ran is a pipeline file.
    let printed = cli(
        dir.path(),
        &[&args[..], &["--print-pipeline"]].concat(),
        &[],
    )
    .await;
    assert_eq!(printed.status.code(), Some(0));
    std::fs::write(dir.path().join("saved.yaml"), &printed.stdout).unwrap();
    let v = cli(dir.path(), &["validate", "saved.yaml"], &[]).await;
    assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_days_ago_is_exactly_30_daily_and_720_hourly_candles() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let out = cli(
        dir.path(),
        &[
            "-q",
            "fetch",
            "BTCUSDT,ETHUSDT",
            "1d,1h",
            "--start",
            "30 days ago",
            "--base-url",
            &sim.base_url(),
            "-o",
            "out",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for sym in ["BTCUSDT", "ETHUSDT"] {
        assert_eq!(
            rows(&dir.path().join("out"), sym, Interval::D1),
            30,
            "{sym}"
        );
        assert_eq!(
            rows(&dir.path().join("out"), sym, Interval::H1),
            720,
            "{sym}"
        );
    }
    let snips = snippets(&stdout(&out));
    assert_eq!(
        snips.len(),
        2,
        "one pandas and one polars line for the whole dataset, filtered by symbol and interval"
    );
    if let Some(counts) = python_row_counts(dir.path(), &snips) {
        assert_eq!(counts, vec![60 + 1440, 60 + 1440]);
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_takes_ticker_and_order_book_snapshots() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let url = sim.base_url();
    let t = cli(
        dir.path(),
        &[
            "fetch",
            "--ticker",
            "BTCUSDT,ETHUSDT",
            "--base-url",
            &url,
            "-o",
            "out",
        ],
        &[],
    )
    .await;
    assert_eq!(t.status.code(), Some(0), "{}", stderr(&t));
    let file = dir
        .path()
        .join("out/ticker_price/market=spot/date=2024-06-01/20240601T003000Z.parquet");
    assert!(file.is_file(), "{}", stdout(&t));
    assert!(
        stdout(&t).contains("pd.read_parquet(\"out/ticker_price\")"),
        "{}",
        stdout(&t)
    );
    let d = cli(
        dir.path(),
        &[
            "fetch",
            "--depth",
            "BTCUSDT",
            "--depth-limit",
            "5",
            "--base-url",
            &url,
            "-o",
            "out",
        ],
        &[],
    )
    .await;
    assert_eq!(d.status.code(), Some(0), "{}", stderr(&d));
    let book = dir
        .path()
        .join("out/depth/market=spot/date=2024-06-01/BTCUSDT-20240601T003000Z.parquet");
    assert!(book.is_file(), "{}", stdout(&d));
    let snips = snippets(&stdout(&t));
    if let Some(counts) = python_row_counts(dir.path(), &snips) {
        assert_eq!(counts, vec![2, 2]);
    }
    if let Some(counts) = python_row_counts(dir.path(), &snippets(&stdout(&d))) {
        assert_eq!(counts, vec![10, 10], "5 bids and 5 asks");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_errors_are_the_validators_against_the_flag_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (args, want) in [
        (
            &["fetch", "BTCUSDT", "1d,1min", "--start", "2024-01-01"][..],
            "INTERVALS (`intervals[1]`): unknown interval `1min` (did you mean `1m`?)",
        ),
        (
            &["fetch", "btcusdt", "1d", "--start", "2024-01-01"][..],
            "SYMBOLS (`symbols[0]`)",
        ),
        (
            &[
                "fetch",
                "BTCUSDT",
                "1d",
                "--start",
                "2024-01-01",
                "--end",
                "2023-01-01",
            ][..],
            "--start (`range.start`): range start `2024-01-01` is not before its end",
        ),
        (&["fetch", "BTCUSDT", "1d"][..], "missing `--start TIME`"),
        (
            &[
                "fetch",
                "BTCUSDT",
                "1d",
                "--start",
                "2024-01-01",
                "--prices",
                "f64",
            ][..],
            "--prices (`transform.prices`)",
        ),
        (&["fetch", "--depth"][..], "`--depth` needs SYMBOLS"),
    ] {
        let out = cli(dir.path(), args, &[]).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_symbols_and_intervals_override_the_pipeline() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let p = crate::harness::pipeline(dir.path(), &sim.base_url(), "[BTCUSDT]", "[1d]", "");
    let p = p.to_str().unwrap();
    let out = cli(
        dir.path(),
        &[
            "-q",
            "run",
            p,
            "--symbols",
            "ETHUSDT,BNBUSDT",
            "--intervals",
            "1w",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out_dir = dir.path().join("out");
    assert_eq!(rows(&out_dir, "BTCUSDT", Interval::D1), 0);
    assert!(rows(&out_dir, "ETHUSDT", Interval::W1) > 0);
    assert!(rows(&out_dir, "BNBUSDT", Interval::W1) > 0);
    let bad = cli(dir.path(), &["run", p, "--intervals", "1d,1H"], &[]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("invalid `--intervals`: unknown interval `1H` (did you mean `1h`?)"),
        "{}",
        stderr(&bad)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_a_starter_that_validates_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(dir.path(), &["init"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let written = std::fs::read_to_string(dir.path().join("pipeline.yaml")).unwrap();
    let v = cli(dir.path(), &["validate", "pipeline.yaml"], &[]).await;
    assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
    let plan = cli(dir.path(), &["plan", "pipeline.yaml"], &[]).await;
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let again = cli(dir.path(), &["init"], &[]).await;
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("pipeline.yaml")).unwrap(),
        written
    );
    let other = cli(dir.path(), &["init", "jobs/nightly.yaml"], &[]).await;
    assert_eq!(other.status.code(), Some(0), "{}", stderr(&other));
    assert!(dir.path().join("jobs/nightly.yaml").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_the_man_page_name_the_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = cli(dir.path(), &["completions", shell], &[]).await;
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let text = stdout(&out);
        for sub in ["fetch", "run", "status", "init"] {
            assert!(text.contains(sub), "{shell} completions lack {sub}");
        }
    }
    let man = cli(dir.path(), &["man"], &[]).await;
    assert_eq!(man.status.code(), Some(0));
    let page = stdout(&man);
    assert!(page.contains(".TH kline-etl"), "{page}");
    assert!(
        page.contains("fetch") && page.contains("completions"),
        "{page}"
    );
    let bad = cli(dir.path(), &["completions", "tcsh"], &[]).await;
    assert_eq!(bad.status.code(), Some(2));
}

/// Every stderr line is one JSON object with the log fields at the top level.
fn assert_json_lines(err: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for line in err.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        for key in ["timestamp", "level", "message"] {
            assert!(
                v.get(key).is_some_and(serde_json::Value::is_string),
                "{key} missing: {line}"
            );
        }
        assert!(v.get("fields").is_none(), "nested fields: {line}");
        out.push(v);
    }
    assert!(!out.is_empty());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_go_to_stdout_and_json_logs_are_one_object_a_line() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let p = crate::harness::pipeline(dir.path(), &sim.base_url(), "[BTCUSDT]", "[1d]", "");
    let p = p.to_str().unwrap();
    let out = cli(dir.path(), &["--log-format", "json", "run", p], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = assert_json_lines(&stderr(&out));
    let done = lines
        .iter()
        .find(|v| v["message"] == "run finished")
        .expect("a `run finished` line");
    assert_eq!(done["outcome"], "ok", "fields beside the message: {done}");
    let planned = lines.iter().find(|v| v["message"] == "planned").unwrap();
    assert_eq!(
        (planned["series"].as_u64(), planned["windows"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(
        stdout(&out).contains("first open (UTC)"),
        "the table on stdout"
    );
    // Errors are JSON lines too.
    std::fs::write(dir.path().join("bad.yaml"), "name: x\nintervals: [1min]\n").unwrap();
    let bad = cli(
        dir.path(),
        &["--log-format", "json", "validate", "bad.yaml"],
        &[],
    )
    .await;
    assert_eq!(bad.status.code(), Some(2));
    let lines = assert_json_lines(&stderr(&bad));
    assert_eq!(lines[0]["level"], "ERROR");
    assert!(
        lines[0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown interval `1min`")
    );
    // Text logs: results on stdout, nothing but logs on stderr.
    let text = cli(dir.path(), &["run", p], &[]).await;
    assert!(stdout(&text).contains("first open (UTC)"));
    assert!(!stderr(&text).contains("first open (UTC)"));
    let status = cli(dir.path(), &["status", "out"], &[]).await;
    assert!(
        stdout(&status).contains("last run: it-run"),
        "{}",
        stdout(&status)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_that_resolves_to_nothing_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    for range in [
        "{ start: now, end: yesterday }",
        "{ start: 2999-01-01 }",
        "{ start: today, end: 3 days ago }",
    ] {
        std::fs::write(
            dir.path().join("p.yaml"),
            format!("name: t\nsymbols: [BTCUSDT]\nintervals: [1d]\nrange: {range}\noutput: {{ path: out }}\n"),
        )
        .unwrap();
        for sub in ["validate", "run", "plan"] {
            let out = cli(dir.path(), &[sub, "p.yaml"], &[]).await;
            assert_eq!(
                out.status.code(),
                Some(2),
                "{sub} {range}: {}",
                stderr(&out)
            );
            assert!(
                stderr(&out).contains("is not before its end"),
                "{}",
                stderr(&out)
            );
        }
    }
    let over = cli(
        dir.path(),
        &["run", "p.yaml", "--from", "now", "--to", "yesterday"],
        &[],
    )
    .await;
    assert_eq!(over.status.code(), Some(2));
    assert!(!dir.path().join("out").exists());
}

/// Runs `args` with stderr on a pseudo-terminal (160 × 40) through Python's `pty` module and
/// returns everything drawn there; `None` without a `python3`.
fn under_pty(cwd: &Path, args: &[&str]) -> Option<(i32, String)> {
    const SCRIPT: &str = r#"
import fcntl, os, pty, struct, subprocess, sys, termios
master, slave = pty.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
env = dict(os.environ, TERM="xterm-256color")
env.pop("NO_COLOR", None)
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=env)
os.close(slave)
drawn = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:
        break
    if not chunk:
        break
    drawn += chunk
sys.stdout.buffer.write(drawn)
sys.exit(p.wait())
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg(BIN)
        .args(args)
        .current_dir(cwd);
    let Ok(out) = cmd.output() else {
        eprintln!("python3 not found; the pseudo-terminal test did not run");
        return None;
    };
    Some((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// The text lines a terminal stream leaves, escape sequences removed.
fn frames(drawn: &str) -> Vec<String> {
    let esc = regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").unwrap();
    esc.replace_all(drawn, "")
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_display_counts_honestly_under_a_terminal() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let url = sim.base_url();
    let cwd = dir.path().to_owned();
    let args: Vec<String> = [
        "fetch",
        "BTCUSDT,ETHUSDT",
        "1h,1d",
        "--start",
        "2024-01-01",
        "--base-url",
        &url,
        "-o",
        "out",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let drawn = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        under_pty(&cwd, &a)
    })
    .await
    .unwrap();
    let Some((code, drawn)) = drawn else { return };
    assert_eq!(code, 0, "{drawn}");
    let frames = frames(&drawn);
    let counts = regex::Regex::new(r"([\d,]+)/([\d,]+) (candles|pages|files|series)").unwrap();
    let num = |s: &str| s.replace(',', "").parse::<u64>().unwrap();
    let mut seen = 0;
    for f in frames.iter().filter(|f| f.contains("candles")) {
        for c in counts.captures_iter(f) {
            assert!(num(&c[1]) <= num(&c[2]), "done above total in {f:?}");
            seen += 1;
        }
    }
    assert!(seen > 0, "no frame drawn: {drawn:?}");
    // 2 symbols × (152 daily + 152 × 24 hourly) candles since 2024-01-01 (clock frozen at
    // 2024-06-01T00:30Z).
    let last = frames
        .iter()
        .rev()
        .find(|f| f.contains("candles/s"))
        .expect("a final frame");
    let want = 2 * (152 + 152 * 24);
    assert!(
        last.contains(&format!("{}/{} candles", thousands(want), thousands(want))),
        "{last}"
    );
    assert!(last.contains("4/4 series"), "{last}");
    assert!(
        last.contains(" files"),
        "archive files counted apart: {last}"
    );
    assert!(last.contains(" pages"), "REST pages counted apart: {last}");
    let c: Vec<_> = counts.captures_iter(last).collect();
    assert!(
        c.iter().all(|c| c[1] == c[2]),
        "a finished run owes nothing: {last}"
    );
    sim.shutdown().await;
}

fn thousands(n: u64) -> String {
    kline_etl::progress::model::thousands(n)
}

/// The README's commands of this feature, run as written (the first screen's `fetch` lines go
/// to the exchange, so they get `--base-url` of a simulator appended; redirections are cut).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_commands_run() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let first_screen: Vec<&str> = readme.lines().take(60).collect();
    let first: Vec<&str> = first_screen
        .iter()
        .filter_map(|l| l.trim().strip_prefix("$ kline-etl "))
        .collect();
    assert!(
        first.iter().any(|c| c.starts_with("fetch --ticker")),
        "{first:?}"
    );
    assert!(first.iter().any(|c| c.starts_with("fetch --depth BTCUSDT")));
    assert!(
        first
            .iter()
            .any(|c| c.starts_with("fetch BTCUSDT 1d --start \"5 July 2020\""))
    );
    let ours = ["fetch", "init", "completions", "man"];
    let commands: Vec<(bool, &str)> = readme
        .lines()
        .enumerate()
        .filter_map(|(i, l)| Some((i < 60, l.trim().strip_prefix("$ kline-etl ")?)))
        .filter(|(_, c)| {
            ours.iter().any(|o| c.starts_with(o))
                || c.contains("--symbols")
                || c.contains("--intervals")
        })
        .collect();
    assert!(commands.len() >= 10, "{commands:?}");
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let demo = repo().join("pipelines/demo.yaml");
    for (on_first_screen, c) in commands {
        let c = c
            .split(" >")
            .next()
            .unwrap_or(c)
            .split(" &&")
            .next()
            .unwrap_or(c);
        let mut args = shell_words(c);
        if on_first_screen {
            args.extend(["--base-url".to_owned(), sim.base_url()]);
        }
        for a in &mut args {
            if a == "pipelines/demo.yaml" {
                *a = demo.display().to_string();
            }
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cli(dir.path(), &a, &[]).await;
        assert_eq!(out.status.code(), Some(0), "{c}: {}", stderr(&out));
        assert!(
            !out.stdout.is_empty() || c.starts_with("init"),
            "{c}: no output"
        );
        if let Some(counts) = python_row_counts(dir.path(), &snippets(&stdout(&out))) {
            assert!(counts.iter().all(|n| *n > 0), "{c}: {counts:?}");
        }
    }
    assert!(dir.path().join("data/binance/klines").is_dir());
    assert!(dir.path().join("data/binance/ticker_price").is_dir());
    assert!(dir.path().join("data/binance/depth").is_dir());
    assert!(dir.path().join("pipeline.yaml").is_file());
    sim.shutdown().await;
}

/// Split a README command line on spaces, honouring double quotes.
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in s.chars() {
        match ch {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            '#' if !quoted && cur.is_empty() => break,
            _ => cur.push(ch),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

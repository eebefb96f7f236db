//! The integration tests' shared harness: the binary under test, the fixed clock, running the
//! CLI, starting the simulator, the pipeline text, the exchange's truth for a series, and file
//! checks (hashes, secrets).

use std::path::{Path, PathBuf};
use std::process::Output;

use kline_etl::config::{OnViolation, PriceType, TimeUnit, TransformOptions};
use kline_etl::interval::Interval;
use kline_etl::market::Market;
use kline_etl::simulator::{ClockMode, SimConfig, SimHandle, Simulator};
use kline_etl::symbol::Symbol;
use kline_etl::transform::{KlineContext, KlineRows, parse_klines};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_kline-etl");
/// 2024-06-01T00:30:00Z: the simulator's frozen "now" in these tests (mid-candle for `1h`, so
/// the forming candle is held back, and 30 minutes after the last daily close).
pub(crate) const NOW: i64 = 1_717_201_800_000;

/// The Python with the readers (`KLINE_ETL_PYTHON`, set by `scripts/test.sh`); required in CI,
/// otherwise the reader checks are skipped.
pub(crate) fn python() -> Option<std::ffi::OsString> {
    let p = std::env::var_os("KLINE_ETL_PYTHON");
    if p.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "KLINE_ETL_PYTHON must point at a Python with the readers (scripts/test.sh) in CI"
        );
    }
    p
}

/// Run the check `tests/python/<script>` with `args` (and extra environment `env`) in the
/// readers' Python; it must succeed. Its standard output.
pub(crate) fn python_check(
    python: &std::ffi::OsStr,
    script: &str,
    args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
) -> String {
    let out = std::process::Command::new(python)
        .arg(repo().join("tests/python").join(script))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Wait for runs started at once (shards, hosts); each must exit 0 (`what` names them in a
/// failure, numbered from 1).
pub(crate) async fn wait_ok(children: Vec<std::process::Child>, what: &str) {
    for (i, c) in children.into_iter().enumerate() {
        let out = tokio::task::spawn_blocking(move || c.wait_with_output().unwrap())
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{what} {}: {}",
            i + 1,
            stderr(&out)
        );
    }
}

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) async fn cli(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env_remove("BINANCE_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("the binary runs"))
        .await
        .unwrap()
}

/// [`cli`] with a hang guard: a command still running after `guard` is killed and the test
/// fails saying so. The guard is generous (minutes) and never what a test asserts: it only
/// turns a hang (a wait the tool should have refused, a blocking open) into a clear failure
/// instead of a stuck suite.
pub(crate) async fn cli_guarded(
    cwd: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    guard: std::time::Duration,
) -> Output {
    use std::io::Read;
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env_remove("BINANCE_API_KEY")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let shown = args.join(" ");
    let result = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("the binary runs");
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let deadline = std::time::Instant::now() + guard;
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for the binary") {
                break Some(status);
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
        match status {
            Some(status) => Ok(Output {
                status,
                stdout,
                stderr,
            }),
            None => Err(stderr),
        }
    })
    .await
    .unwrap();
    match result {
        Ok(out) => out,
        Err(stderr) => panic!(
            "hang guard: `kline-etl {shown}` was still running after {} s and was killed; stderr:\n{}",
            guard.as_secs(),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) async fn simulator() -> SimHandle {
    let cfg = SimConfig {
        clock: ClockMode::Fixed(NOW),
        ..SimConfig::default()
    };
    Simulator::start(cfg).await.unwrap()
}

pub(crate) fn pipeline(
    dir: &Path,
    base_url: &str,
    symbols: &str,
    intervals: &str,
    extra: &str,
) -> PathBuf {
    let text = format!(
        "name: it-run\nsource:\n  base_url: {base_url}\n  mode: rest\n{extra}symbols: {symbols}\nintervals: {intervals}\nrange:\n  start: 2024-01-01\n  end: now\noutput:\n  path: out\n"
    );
    let p = dir.join("pipeline.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

pub(crate) fn options() -> TransformOptions {
    TransformOptions {
        prices: PriceType::Float64,
        time_unit: TimeUnit::Millisecond,
        include_forming: false,
        on_violation: OnViolation::Report,
    }
}

/// The simulator's ground truth for `[start, end)`, typed the way the pipeline types it.
pub(crate) fn truth(
    sim: &SimHandle,
    symbol: &Symbol,
    interval: Interval,
    start: i64,
    end: i64,
) -> KlineRows {
    let rows = sim.expected_klines(Market::Spot, symbol, interval, start, end);
    let page: Vec<[serde_json::Value; 12]> = rows
        .iter()
        .map(kline_etl::simulator::KlineRow::to_json)
        .collect();
    let body = serde_json::to_vec(&page).unwrap();
    let opts = options();
    let ctx = KlineContext {
        market: Market::Spot,
        symbol,
        interval,
        options: &opts,
    };
    parse_klines(&body, &ctx).unwrap()
}

/// Equal rows, with a readable message (the Debug of thousands of rows is not).
pub(crate) fn assert_same(got: &KlineRows, want: &KlineRows, what: &str) {
    let n = got.len().min(want.len());
    if let Some(i) = (0..n).find(|i| !got.row_eq(*i, want, *i)) {
        panic!(
            "{what}: first difference at row {i} (open time {} vs {})",
            got.open_time[i], want.open_time[i]
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: row count (last stored {:?}, last expected {:?})",
        got.open_time.last(),
        want.open_time.last()
    );
}

pub(crate) fn summary_json(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("out/klines/_kline_etl/summary.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every file under `root`, at any depth (dot files included), sorted.
pub(crate) fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// No file under `root`, at any depth, contains `secret`.
pub(crate) fn assert_no_file_contains(root: &Path, secret: &str) {
    for path in files(root) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secret in {}",
            path.display()
        );
    }
}

/// The kline partition files under `root` (`.parquet` under a `year=` directory) with their
/// bytes, sorted by path.
pub(crate) fn file_hashes(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files(root)
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|x| x == "parquet") && p.to_string_lossy().contains("year=")
        })
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

//! The bad-input catalogue, runtime side: a hostile exchange (HTML, empty, gigantic and
//! malformed replies, NaN and negative prices, non-monotonic or microsecond times, symbol
//! names that try to escape the output root), damaged files already in the dataset, and flags
//! out of range. Each gets a clear message, its documented exit code, no panic, and leaves the
//! data already written untouched.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};

use crate::harness::{BIN, NOW, cli, file_hashes, stderr};

const HOUR: i64 = 3_600_000;

/// What the hostile exchange answers to `/klines` (status, body) and which symbols its
/// `exchangeInfo` lists.
#[derive(Clone)]
struct Script {
    klines: Arc<Mutex<(u16, Vec<u8>)>>,
    symbols: Arc<Vec<String>>,
}

#[allow(clippy::unused_async)] // an axum handler: it must return a future
async fn handle(script: Script, req: Request<Body>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let (status, body) = if path.ends_with("/time") {
        (200, format!("{{\"serverTime\":{NOW}}}").into_bytes())
    } else if path.ends_with("/exchangeInfo") {
        let symbols: Vec<String> = script
            .symbols
            .iter()
            .map(|s| {
                format!(
                    "{{\"symbol\":{},\"status\":\"TRADING\",\"baseAsset\":\"X\",\"quoteAsset\":\"USDT\"}}",
                    serde_json::to_string(s).unwrap()
                )
            })
            .collect();
        (
            200,
            format!(
                "{{\"rateLimits\":[{{\"rateLimitType\":\"REQUEST_WEIGHT\",\"interval\":\"MINUTE\",\"intervalNum\":1,\"limit\":6000}}],\"symbols\":[{}]}}",
                symbols.join(",")
            )
            .into_bytes(),
        )
    } else if path.ends_with("/klines") {
        let (status, body) = script.klines.lock().unwrap().clone();
        // A hostile exchange that echoes the API key it was sent back in its error message.
        let key = req
            .headers()
            .get("x-mbx-apikey")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let body = String::from_utf8_lossy(&body)
            .replace("{KEY}", key)
            .into_bytes();
        (status, body)
    } else {
        (404, b"{\"code\":-1,\"msg\":\"no\"}".to_vec())
    };
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

async fn hostile_exchange(script: Script) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move |req| handle(script.clone(), req));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

/// A good page: the 24 closed hourly candles before `NOW` (2024-06-01T00:30Z).
fn good_rows() -> Vec<String> {
    let first = 1_717_113_600_000; // 2024-05-31T00:00Z
    (0..24)
        .map(|i| {
            let t = first + i * HOUR;
            format!(
                "[{t},\"100.00\",\"101.00\",\"99.00\",\"100.50\",\"10.0\",{},\"1005.0\",7,\"5.0\",\"502.5\",\"0\"]",
                t + HOUR - 1
            )
        })
        .collect()
}

fn page(rows: &[String]) -> Vec<u8> {
    format!("[{}]", rows.join(",")).into_bytes()
}

fn write_pipeline(dir: &Path, url: &str, symbols: &str) -> PathBuf {
    let text = format!(
        "name: hostile\nsource:\n  base_url: {url}\n  max_retries: 1\nsymbols: {symbols}\nintervals: [1h]\nrange:\n  start: 2024-05-31\n  end: now\noutput:\n  path: out\n"
    );
    let p = dir.join("pipeline.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_replies_fail_their_task_clearly_and_leave_written_data_alone() {
    let script = Script {
        klines: Arc::new(Mutex::new((200, page(&good_rows())))),
        symbols: Arc::new(vec!["BTCUSDT".into()]),
    };
    let (url, server) = hostile_exchange(script.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = write_pipeline(dir.path(), &url, "[BTCUSDT]");
    let p = p.to_str().unwrap();
    let good = cli(dir.path(), &["-q", "run", p], &[]).await;
    assert_eq!(good.status.code(), Some(0), "{}", stderr(&good));
    let before = file_hashes(&dir.path().join("out"));
    assert_eq!(before.len(), 1);

    let rows = good_rows();
    let mut swapped = rows.clone();
    swapped.swap(3, 4);
    let nan: Vec<String> = rows
        .iter()
        .map(|r| r.replacen("\"100.00\"", "\"NaN\"", 1))
        .collect();
    let negative: Vec<String> = rows
        .iter()
        .map(|r| r.replacen("\"99.00\"", "\"-99.00\"", 1))
        .collect();
    let short: Vec<String> = rows
        .iter()
        .map(|r| r.replace(",\"5.0\",\"502.5\",\"0\"]", "]"))
        .collect();
    let mut gigantic = b"[".to_vec();
    while gigantic.len() < 17 * 1024 * 1024 {
        gigantic.extend_from_slice(rows[0].as_bytes());
        gigantic.push(b',');
    }
    gigantic.extend_from_slice(rows[0].as_bytes());
    gigantic.push(b']');
    let many: Vec<String> = (0..200)
        .map(|i| {
            let t = 1_717_200_000_000 - (200 - i) * HOUR;
            format!(
                "[{t},\"100.00\",\"101.00\",\"99.00\",\"100.50\",\"10.0\",{},\"1005.0\",7,\"5.0\",\"502.5\",\"0\"]",
                t + HOUR - 1
            )
        })
        .collect();
    let cases: Vec<(&str, u16, Vec<u8>, &str)> = vec![
        (
            "more rows than asked for",
            200,
            page(&many),
            "more than the `limit`",
        ),
        (
            "html",
            200,
            b"<html><body>502 Bad Gateway</body></html>".to_vec(),
            "json",
        ),
        ("empty body", 200, Vec::new(), "json"),
        ("html 502", 502, b"<html>bad gateway</html>".to_vec(), "502"),
        ("wrong field count", 200, page(&short), "field"),
        ("NaN price", 200, page(&nan), "nan"),
        ("negative price", 200, page(&negative), "negative"),
        ("non-monotonic times", 200, page(&swapped), "increasing"),
        ("gigantic", 200, gigantic, "exceeds 16777216 bytes"),
        ("not an array", 200, b"{\"rows\":[]}".to_vec(), "array"),
    ];
    for (what, status, body, needle) in cases {
        *script.klines.lock().unwrap() = (status, body);
        let out = cli(dir.path(), &["-q", "run", p, "--full-refresh"], &[]).await;
        let code = out.status.code();
        let s: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("out/klines/_kline_etl/summary.json"))
                .unwrap(),
        )
        .unwrap();
        let task = &s["run"]["tasks"][0];
        let error =
            format!("{} {} {}", task["error"], task["quality"], stderr(&out)).to_lowercase();
        assert_ne!(code, Some(101), "{what}: panic\n{}", stderr(&out));
        assert_eq!(code, Some(1), "{what}: {}", stderr(&out));
        assert!(error.contains(needle), "{what}: no `{needle}` in {error}");
        assert_eq!(
            file_hashes(&dir.path().join("out")),
            before,
            "{what}: written data changed"
        );
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_microsecond_page_gives_the_same_rows_as_milliseconds() {
    let script = Script {
        klines: Arc::new(Mutex::new((200, page(&good_rows())))),
        symbols: Arc::new(vec!["BTCUSDT".into()]),
    };
    let (url, server) = hostile_exchange(script.clone()).await;
    let ms_dir = tempfile::tempdir().unwrap();
    let p = write_pipeline(ms_dir.path(), &url, "[BTCUSDT]");
    let ms = cli(ms_dir.path(), &["-q", "run", p.to_str().unwrap()], &[]).await;
    assert_eq!(ms.status.code(), Some(0), "{}", stderr(&ms));

    let micro: Vec<String> = good_rows()
        .iter()
        .map(|r| {
            let v: Vec<serde_json::Value> = serde_json::from_str(r).unwrap();
            let mut v = v;
            v[0] = (v[0].as_i64().unwrap() * 1000).into();
            v[6] = (v[6].as_i64().unwrap() * 1000 + 999).into();
            serde_json::to_string(&v).unwrap()
        })
        .collect();
    *script.klines.lock().unwrap() = (200, page(&micro));
    let us_dir = tempfile::tempdir().unwrap();
    let p = write_pipeline(us_dir.path(), &url, "[BTCUSDT]");
    let us = cli(us_dir.path(), &["-q", "run", p.to_str().unwrap()], &[]).await;
    assert_eq!(us.status.code(), Some(0), "{}", stderr(&us));
    let strip = |v: Vec<(PathBuf, Vec<u8>)>, root: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        v.into_iter()
            .map(|(p, b)| (p.strip_prefix(root).unwrap().to_owned(), b))
            .collect()
    };
    assert_eq!(
        strip(file_hashes(&us_dir.path().join("out")), us_dir.path()),
        strip(file_hashes(&ms_dir.path().join("out")), ms_dir.path()),
        "µs and ms pages must give byte-identical files"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_symbol_names_from_the_exchange_never_leave_the_output_root() {
    let hostile = [
        "../../etc",
        "BTC/USDT",
        "..",
        "BTC\u{0}USDT",
        "btcusdt",
        "A\\B",
        "%2e%2e",
        "BTCUSDT",
    ];
    let script = Script {
        klines: Arc::new(Mutex::new((200, page(&good_rows())))),
        symbols: Arc::new(hostile.iter().map(|s| (*s).to_owned()).collect()),
    };
    let (url, server) = hostile_exchange(script).await;
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let p = write_pipeline(&work, &url, "{quote: [USDT]}");
    let out = cli(&work, &["run", p.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("skipping exchange symbol"), "{err}");
    // Only BTCUSDT was selected; nothing exists outside `work/out` but the pipeline file.
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(work.join("out/klines/_kline_etl/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s["run"]["symbols"], serde_json::json!(["BTCUSDT"]));
    let mut stack = vec![dir.path().to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let inside = path.starts_with(work.join("out")) || path == work.join("pipeline.yaml");
            assert!(
                inside || path == work,
                "written outside the root: {}",
                path.display()
            );
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_in_the_dataset_are_refused_and_left_as_they_are() {
    let script = Script {
        klines: Arc::new(Mutex::new((200, page(&good_rows())))),
        symbols: Arc::new(vec!["BTCUSDT".into()]),
    };
    let (url, server) = hostile_exchange(script).await;
    let dir = tempfile::tempdir().unwrap();
    let p = write_pipeline(dir.path(), &url, "[BTCUSDT]");
    let p = p.to_str().unwrap();
    let good = cli(dir.path(), &["-q", "run", p], &[]).await;
    assert_eq!(good.status.code(), Some(0), "{}", stderr(&good));
    let (file, original) = file_hashes(&dir.path().join("out")).remove(0);

    // A foreign Parquet file of another schema, written by pyarrow-like tools: reuse the
    // summary table, which is valid Parquet but not a kline partition.
    let foreign = std::fs::read(dir.path().join("out/klines/_kline_etl/summary.parq")).unwrap();
    let mut newer = original.clone();
    let pos = newer
        .windows(b"kline_etl.schema_version".len())
        .position(|w| w == b"kline_etl.schema_version")
        .expect("the schema version is in the footer");
    // The value follows the key in the Thrift footer: bump `2` to `9`.
    let value = newer[pos..]
        .iter()
        .position(|b| *b == b'2')
        .map(|i| pos + i)
        .unwrap();
    newer[value] = b'9';
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            original[..original.len() / 2].to_vec(),
            "not a readable parquet",
        ),
        (
            "garbage",
            b"PAR1 this is not parquet".to_vec(),
            "not a readable parquet",
        ),
        ("another schema", foreign, "not a kline-etl partition"),
        ("newer schema version", newer, "newer than this kline-etl"),
    ];
    for (what, bytes, needle) in cases {
        std::fs::write(&file, &bytes).unwrap();
        let out = cli(dir.path(), &["-q", "run", p, "--full-refresh"], &[]).await;
        assert_eq!(out.status.code(), Some(4), "{what}: {}", stderr(&out));
        let msg = stderr(&out).to_lowercase();
        assert!(msg.contains(needle), "{what}: no `{needle}` in {msg}");
        assert!(
            msg.contains("/year=") && msg.contains(".parquet"),
            "{what}: the path is named: {msg}"
        );
        assert_eq!(
            std::fs::read(&file).unwrap(),
            bytes,
            "{what}: file was changed"
        );
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_out_of_range_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let demo = crate::harness::repo().join("pipelines/demo.yaml");
    let demo = demo.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", demo, "--concurrency", "0"], "--concurrency"),
        (vec!["run", demo, "--concurrency", "1000"], "--concurrency"),
        (vec!["run", demo, "--lock-wait", "-5"], "-5"),
        (vec!["run", demo, "--from", "2024-13-45"], "2024-13-45"),
        (vec!["run", demo, "--from", "tomorrow-ish"], "tomorrow-ish"),
        (vec!["run", demo, "--to", "1990-01-01"], "range"),
        (vec!["run", "no-such-file.yaml"], "no-such-file.yaml"),
        (vec!["status", "no-such-dir"], "no-such-dir"),
        (
            vec![
                "chart",
                "x",
                "--symbol",
                "../../etc",
                "--interval",
                "1d",
                "-o",
                "c.svg",
            ],
            "x",
        ),
        (vec!["simulate", "--port", "70000"], "--port"),
        (vec!["frobnicate"], "frobnicate"),
    ];
    for (args, needle) in cases {
        let out = std::process::Command::new(BIN)
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_echoed_by_the_exchange_is_redacted_everywhere() {
    let secret = "sk-ECHO-5e1f0c2d9b";
    let script = Script {
        klines: Arc::new(Mutex::new((
            400,
            b"{\"code\":-2014,\"msg\":\"API-key format invalid: {KEY}\"}".to_vec(),
        ))),
        symbols: Arc::new(vec!["BTCUSDT".into()]),
    };
    let (url, server) = hostile_exchange(script).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "name: echo\nsource:\n  base_url: {url}\n  api_key: ${{BINANCE_API_KEY}}\nsymbols: [BTCUSDT]\nintervals: [1h]\nrange:\n  start: 2024-05-31\n  end: now\noutput:\n  path: out\n"
    );
    std::fs::write(dir.path().join("p.yaml"), text).unwrap();
    for format in ["text", "json"] {
        let out = cli(
            dir.path(),
            &["-vv", "--log-format", format, "run", "p.yaml"],
            &[("BINANCE_API_KEY", secret)],
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("-2014") && err.contains("<redacted>"), "{err}");
        assert!(!err.contains(secret), "{err}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
    }
    crate::harness::assert_no_file_contains(dir.path(), secret);
    let summary =
        std::fs::read_to_string(dir.path().join("out/klines/_kline_etl/summary.json")).unwrap();
    assert!(
        summary.contains("<redacted>"),
        "the error is kept, redacted"
    );
    server.abort();
}

/// A tmpfs mounted for one test (needs root; tests skip where mounting is not allowed).
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, options: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        }
        ok.then(|| Mount(dir.to_owned()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_or_read_only_output_exits_4_and_loses_nothing() {
    let sim = crate::harness::simulator().await;
    let dir = tempfile::tempdir().unwrap();
    // 300 KiB: room for a few months of hourly candles, not for a year of minutes.
    let Some(full) = Mount::tmpfs(&dir.path().join("full"), "size=300k") else {
        return;
    };
    let small = format!(
        "name: small\nsource:\n  base_url: {}\nsymbols: [BTCUSDT]\nintervals: [1h]\nrange:\n  start: 2024-03-01\n  end: now\noutput:\n  path: full/out\n",
        sim.base_url()
    );
    std::fs::write(dir.path().join("small.yaml"), small).unwrap();
    let first = cli(dir.path(), &["-q", "run", "small.yaml"], &[]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let before = file_hashes(&dir.path().join("full/out"));
    assert_eq!(before.len(), 1);

    let big = format!(
        "name: big\nsource:\n  base_url: {}\nsymbols: [BTCUSDT]\nintervals: [1m]\nrange:\n  start: 2024-01-01\n  end: now\noutput:\n  path: full/out\n",
        sim.base_url()
    );
    std::fs::write(dir.path().join("big.yaml"), big).unwrap();
    let out = cli(dir.path(), &["-q", "run", "big.yaml"], &[]).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let msg = stderr(&out);
    assert!(msg.to_lowercase().contains("no space left"), "{msg}");
    assert!(msg.contains("full/out"), "the path is named: {msg}");
    // The hourly file is intact; every minute partition that exists is complete and readable;
    // temporary files are dot-prefixed or gone.
    let after = file_hashes(&dir.path().join("full/out"));
    assert!(
        after.iter().any(|f| before.contains(f)),
        "the earlier file changed"
    );
    crate::nightly::assert_only_complete_files_visible(&dir.path().join("full/out"));
    drop(full);

    let Some(_ro) = Mount::tmpfs(&dir.path().join("ro"), "ro,size=64k") else {
        return;
    };
    let ro = format!(
        "name: ro\nsource:\n  base_url: {}\nsymbols: [BTCUSDT]\nintervals: [1d]\nrange:\n  start: 2024-03-01\n  end: now\noutput:\n  path: ro/out\n",
        sim.base_url()
    );
    std::fs::write(dir.path().join("ro.yaml"), ro).unwrap();
    let out = cli(dir.path(), &["-q", "run", "ro.yaml"], &[]).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("ro/out"), "{}", stderr(&out));
    sim.shutdown().await;
}

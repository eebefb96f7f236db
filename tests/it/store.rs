//! Beyond one machine: an S3 output on a real S3-compatible server (moto, started on
//! loopback from the Python test environment) written by one host and extended incrementally
//! by another, and N shards of one pipeline filling one dataset with exactly the unsharded
//! result.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kline_etl::interval::{DAY_MS, Interval};
use kline_etl::market::Market;
use kline_etl::symbol::Symbol;

use crate::harness::{NOW, assert_same, cli, file_hashes, stderr, truth};

/// A moto S3 server on a free loopback port; killed on drop.
pub(crate) struct Moto {
    child: Child,
    pub(crate) url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> Option<String> {
    std::env::var("KLINE_ETL_PYTHON").ok()
}

pub(crate) async fn moto() -> Option<Moto> {
    let Some(py) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "KLINE_ETL_PYTHON must be set in CI (scripts/test.sh sets it)"
        );
        eprintln!("skipped: KLINE_ETL_PYTHON is not set (run ./scripts/test.sh)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(py)
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto is installed in the test environment (tests/python/requirements.txt)");
    let url = format!("http://127.0.0.1:{port}");
    let moto = Moto { child, url };
    let deadline = Instant::now() + Duration::from_secs(60);
    kline_etl::tls::ensure_provider(); // reqwest needs the TLS provider
    while reqwest::get(&moto.url).await.is_err() {
        assert!(Instant::now() < deadline, "moto did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(moto)
}

pub(crate) fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "test-key".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test-secret".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ENDPOINT", endpoint.to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
    ]
}

/// The keys under `prefix` in `bucket` (moto answers unsigned requests).
async fn list_keys(endpoint: &str, bucket: &str, prefix: &str) -> Vec<String> {
    kline_etl::tls::ensure_provider(); // reqwest needs the TLS provider
    let xml = reqwest::get(format!("{endpoint}/{bucket}?list-type=2&prefix={prefix}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut keys: Vec<String> = xml
        .split("<Key>")
        .skip(1)
        .filter_map(|s| s.split("</Key>").next())
        .map(|s| s.replace("&amp;", "&"))
        .collect();
    keys.sort();
    keys
}

/// Download every object under `prefix` into `dir`, keeping the key layout (a signed client,
/// independent of kline-etl's mirror code).
pub(crate) async fn download(
    endpoint: &str,
    bucket: &str,
    prefix: &str,
    dir: &Path,
) -> Vec<String> {
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("test-key")
        .with_secret_access_key("test-secret")
        .with_allow_http(true)
        .build()
        .unwrap();
    let listed: Vec<object_store::ObjectMeta> = store
        .list(Some(&object_store::path::Path::from(prefix)))
        .try_collect()
        .await
        .unwrap();
    let mut keys = Vec::new();
    for meta in listed {
        let bytes = store
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let path = dir.join(meta.location.as_ref());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        keys.push(meta.location.to_string());
    }
    keys
}

fn write_pipeline(dir: &Path, name: &str, base_url: &str, output: &str) -> PathBuf {
    let text = format!(
        "name: {name}\nsource:\n  base_url: {base_url}\nsymbols: [BTCUSDT, ETHUSDT]\nintervals: [1h, 1d]\nrange:\n  start: 2024-01-01\n  end: now\noutput:\n{output}"
    );
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, text).unwrap();
    p
}

async fn cli_env(
    dir: &Path,
    args: &[&str],
    env: &[(&'static str, String)],
) -> std::process::Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cli(dir, args, &env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_output_is_written_extended_by_another_host_and_merged() {
    let Some(moto) = moto().await else {
        return;
    };
    kline_etl::tls::ensure_provider(); // reqwest needs the TLS provider
    let created = reqwest::Client::new()
        .put(format!("{}/binance-data", moto.url))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{created:?}");
    let sim = crate::harness::simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let env = aws_env(&moto.url);
    let out = |staging: &str| {
        format!("  path: s3://binance-data/warehouse/binance\n  staging: {staging}\n")
    };

    // Host A backfills.
    let a = write_pipeline(dir.path(), "host-a", &sim.base_url(), &out("mirror-a"));
    let run = cli_env(dir.path(), &["-q", "run", a.to_str().unwrap()], &env).await;
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let keys = list_keys(&moto.url, "binance-data", "warehouse/binance/").await;
    assert!(
        keys.contains(&"warehouse/binance/klines/_kline_etl/summary.json".to_owned()),
        "{keys:?}"
    );
    assert!(
        keys.contains(
            &"warehouse/binance/klines/market=spot/symbol=BTCUSDT/year=2024/1h-2024.parquet"
                .to_owned()
        ),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .all(|k| !k.split('/').any(|p| p.starts_with('.'))),
        "no lock, mirror record or temporary file is uploaded: {keys:?}"
    );

    // A day later, host B (an empty mirror) runs the same job: the state comes from the store,
    // so it fetches only the new candles and merges them into the stored partitions.
    sim.advance(DAY_MS);
    let b = write_pipeline(dir.path(), "host-b", &sim.base_url(), &out("mirror-b"));
    let run = cli_env(dir.path(), &["-q", "run", b.to_str().unwrap()], &env).await;
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("mirror-b/klines/_kline_etl/summary.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        s["run"]["rows_new"], 50,
        "24 hours + 1 day, two symbols: {}",
        s["run"]
    );
    let kline_requests: u64 = s["run"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(kline_requests, 4, "one request per series");

    // What the store holds is exactly the exchange's data.
    let got = dir.path().join("downloaded");
    download(&moto.url, "binance-data", "warehouse/binance", &got).await;
    let root = got.join("warehouse/binance");
    for sym in ["BTCUSDT", "ETHUSDT"] {
        let symbol: Symbol = sym.parse().unwrap();
        for interval in [Interval::H1, Interval::D1] {
            let rows =
                kline_etl::summary::dataset::read_series(&root, Market::Spot, &symbol, interval)
                    .unwrap()
                    .unwrap();
            let want = truth(&sim, &symbol, interval, 1_704_067_200_000, NOW + DAY_MS);
            assert_same(&rows, &want, &format!("{sym} {interval} in the store"));
        }
    }

    // Host A again, with its stale mirror: it pulls B's work and has nothing to do.
    let run = cli_env(dir.path(), &["-q", "run", a.to_str().unwrap()], &env).await;
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("mirror-a/klines/_kline_etl/summary.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(s["run"]["rows_new"], 0);
    assert_eq!(s["run"]["files_written"], 0);

    // A store that cannot be reached is an output error (exit 4), named.
    let bad = aws_env("http://127.0.0.1:9");
    let run = cli_env(dir.path(), &["-q", "run", a.to_str().unwrap()], &bad).await;
    assert_eq!(run.status.code(), Some(4), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("s3://binance-data"),
        "{}",
        stderr(&run)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_fill_one_dataset_exactly_like_one_run() {
    let sim = crate::harness::simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let text = |path: &str| {
        format!(
            "name: sharded\nsource:\n  base_url: {}\nsymbols: [BTCUSDT, ETHUSDT, BNBUSDT, SOLUSDT]\nintervals: [1h, 4h, 1d]\nrange:\n  start: 2024-03-01\n  end: now\noutput:\n  path: {path}\n",
            sim.base_url()
        )
    };
    std::fs::write(dir.path().join("whole.yaml"), text("whole")).unwrap();
    std::fs::write(dir.path().join("sharded.yaml"), text("sharded")).unwrap();
    let whole = cli(dir.path(), &["-q", "run", "whole.yaml"], &[]).await;
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));

    // Three shards at once on one output: each owns its series, summary, resume file and lock.
    let children: Vec<Child> = (1..=3)
        .map(|i| {
            Command::new(crate::harness::BIN)
                .args(["-q", "run", "sharded.yaml", "--shard", &format!("{i}/3")])
                .current_dir(dir.path())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    crate::harness::wait_ok(children, "shard").await;
    let mut tasks = 0;
    for i in 0..3 {
        let s: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(format!(
                "sharded/klines/_kline_etl/summary.shard-{}-of-3.json",
                i + 1
            )))
            .unwrap(),
        )
        .unwrap();
        tasks += s["run"]["tasks_total"].as_u64().unwrap();
    }
    assert_eq!(tasks, 12, "every series exactly once across the shards");
    let strip = |root: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        file_hashes(root)
            .into_iter()
            .map(|(p, b)| (p.strip_prefix(root).unwrap().to_owned(), b))
            .collect()
    };
    let union = strip(&dir.path().join("sharded"));
    assert_eq!(union.len(), 12);
    assert_eq!(
        union,
        strip(&dir.path().join("whole")),
        "byte-identical to one run"
    );

    // `summary` over the whole dataset merges the shards.
    let out = cli(dir.path(), &["summary", "sharded", "--json"], &[]).await;
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["series"].as_array().unwrap().len(), 12);
    let bad = cli(dir.path(), &["run", "sharded.yaml", "--shard", "4/3"], &[]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    sim.shutdown().await;
}

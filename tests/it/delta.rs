//! `output.format: delta` end to end: every dataset a Delta table read exactly by delta-rs and
//! polars (`tests/python/interop_delta.py`), a version per run and time travel, three shards
//! started at once committing into one table, a kill between writing the files and committing,
//! a hive dataset switched to Delta, and the `parquet` format refusing a Delta table.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use kline_etl::interval::Interval;
use kline_etl::market::Market;
use kline_etl::simulator::SimHandle;
use kline_etl::symbol::Symbol;

use crate::harness::{BIN, cli, files, python_check, repo, simulator, stderr, wait_ok};

fn ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

fn klines_yaml(sim: &SimHandle, end: &str, format: &str, path: &str) -> String {
    format!(
        "name: it-delta\nsource:\n  base_url: {}\n  mode: rest\nsymbols: [BTCUSDT, ETHUSDT]\nintervals: [1h, 1d]\nrange:\n  start: 2024-01-01\n  end: \"{end}\"\noutput:\n  path: {path}\n  format: {format}\n",
        sim.base_url()
    )
}

async fn run(dir: &Path, name: &str, text: &str, env: &[(&str, &str)]) -> std::process::Output {
    std::fs::write(dir.join(name), text).unwrap();
    cli(dir, &["-q", "run", name], env).await
}

/// [`run`], which must exit 0.
async fn run_ok(dir: &Path, name: &str, text: &str) {
    let o = run(dir, name, text, &[]).await;
    assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
}

/// The Parquet files under a table, in any version or none.
fn data_files(table: &Path) -> Vec<PathBuf> {
    files(table)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect()
}

/// How many of a table's commits created it (a `metaData` action).
fn creations(table: &Path) -> usize {
    log_versions(table)
        .iter()
        .filter(|v| {
            std::fs::read_to_string(table.join("_delta_log").join(v))
                .unwrap()
                .contains("\"metaData\"")
        })
        .count()
}

fn log_versions(table: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(table.join("_delta_log"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.len() == 25 && n.bytes().take(20).all(|b| b.is_ascii_digit()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The files the table's log holds at its latest version (replayed here, independently of the
/// crate: every `add` not removed since), relative to the table.
fn live(table: &Path) -> Vec<String> {
    let mut files = std::collections::BTreeSet::new();
    for name in log_versions(table) {
        let text = std::fs::read_to_string(table.join("_delta_log").join(name)).unwrap();
        let actions: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for a in &actions {
            if let Some(r) = a.get("remove") {
                files.remove(r["path"].as_str().unwrap());
            }
        }
        for a in &actions {
            if let Some(x) = a.get("add") {
                assert!(
                    files.insert(x["path"].as_str().unwrap().to_owned()),
                    "a file added twice: {x}"
                );
            }
        }
    }
    files.into_iter().collect()
}

/// The served rows of the klines pipeline up to `end`, as the interop spec's series.
fn served(sim: &SimHandle, end: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for s in ["BTCUSDT", "ETHUSDT"] {
        let symbol: Symbol = s.parse().unwrap();
        for iv in [Interval::H1, Interval::D1] {
            let rows: Vec<[serde_json::Value; 12]> = sim
                .expected_klines(
                    Market::Spot,
                    &symbol,
                    iv,
                    ms("2024-01-01T00:00:00Z"),
                    ms(end),
                )
                .iter()
                .filter(|r| r.open_time < ms(end))
                .map(kline_etl::simulator::KlineRow::to_json)
                .collect();
            out.push(serde_json::json!({
                "market": "spot", "symbol": s, "interval": iv.as_str(), "rows": rows,
            }));
        }
    }
    out
}

const END_1: &str = "2024-03-01T00:00:00Z";
const END_2: &str = "2024-04-15T00:00:00Z";

/// The other datasets, written twice: as Delta tables under `delta/` and as the `parquet`
/// format under `hive/`, for the reader check to compare.
async fn fill_others(sim: &SimHandle, dir: &Path) -> Vec<serde_json::Value> {
    let runs = [
        (
            "spot",
            "dataset: ticker_price\nsymbols: [BTCUSDT, ETHUSDT]",
            "ticker_price",
            "symbol",
        ),
        (
            "spot",
            "dataset: depth\ndepth_limit: 20\nsymbols: [BTCUSDT, ETHUSDT]",
            "depth",
            "symbol",
        ),
        (
            "usdm",
            "dataset: funding_rate\nsymbols: [BTCUSDT, ETHUSDT]\nrange: { start: 2023-06-01, end: now }",
            "funding_rate",
            "funding_time",
        ),
        (
            "usdm",
            "kline_family: mark_price\nsymbols: [BTCUSDT]\nintervals: [1h, 1d]\nrange: { start: 2024-05-01, end: now }",
            "mark_price/klines",
            "open_time",
        ),
    ];
    let mut tables = Vec::new();
    for (i, (market, body, table, key)) in runs.iter().enumerate() {
        for format in ["delta", "parquet"] {
            let out = if format == "delta" { "delta" } else { "hive" };
            let text = format!(
                "name: it-delta-other\nsource:\n  market: {market}\n  base_url: {}\n{body}\noutput:\n  path: {out}\n  format: {format}\n",
                sim.base_url()
            );
            let o = run(dir, &format!("other{i}-{format}.yaml"), &text, &[]).await;
            assert_eq!(o.status.code(), Some(0), "{body}: {}", stderr(&o));
        }
        assert_eq!(
            log_versions(&dir.join("delta").join(table)).len(),
            1,
            "{table}: one run, one version"
        );
        tables.push(serde_json::json!({
            "dir": dir.join("delta").join(table),
            "hive": dir.join("hive").join(table),
            "key": [key],
        }));
    }
    tables
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dataset_is_a_delta_table_read_exactly_by_delta_rs_and_polars_with_time_travel() {
    let sim = simulator().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let table = dir.join("delta/klines");
    // Run 1 creates the table (version 0); run 2 extends the range, rewriting the yearly 1h
    // and 1d files (version 1: remove + add); run 3 changes nothing (no version).
    for (end, versions) in [(END_1, 1), (END_2, 2), (END_2, 2)] {
        run_ok(dir, "k.yaml", &klines_yaml(&sim, end, "delta", "delta")).await;
        assert_eq!(
            log_versions(&table).len(),
            versions,
            "after the run to {end}"
        );
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(table.join("_kline_etl/summary.json")).unwrap(),
    )
    .unwrap();
    assert!(
        summary["run"].get("delta_version").is_none(),
        "{}",
        summary["run"]
    );
    // Every live file is one of the versioned files on disk; the replaced versions stay there.
    let live = live(&table);
    assert_eq!(live.len(), 4, "{live:?}");
    let on_disk = data_files(&table).len();
    assert_eq!(
        on_disk, 8,
        "version 0's four files are kept for time travel"
    );
    // kline-etl's own readers see the table's latest version.
    let status = cli(dir, &["status", "k.yaml", "--json"], &[]).await;
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let rows: u64 = serde_json::from_slice::<serde_json::Value>(&status.stdout).unwrap()["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rows"].as_u64().unwrap())
        .sum();
    let want: usize = served(&sim, END_2)
        .iter()
        .map(|s| s["rows"].as_array().unwrap().len())
        .sum();
    assert_eq!(rows, want as u64);
    // `summary` and `chart` read the latest version too.
    let summary = cli(dir, &["summary", "delta", "--json"], &[]).await;
    assert_eq!(summary.status.code(), Some(0), "{}", stderr(&summary));
    let s: serde_json::Value = serde_json::from_slice(&summary.stdout).unwrap();
    let summed: u64 = s["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(summed, want as u64);
    let chart = cli(
        dir,
        &[
            "chart",
            "delta",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1d",
            "-o",
            "c.svg",
        ],
        &[],
    )
    .await;
    assert_eq!(chart.status.code(), Some(0), "{}", stderr(&chart));
    assert!(
        std::fs::read_to_string(dir.join("c.svg"))
            .unwrap()
            .contains("<svg")
    );

    let tables = fill_others(&sim, dir).await;
    let readme_table = run_readme_pipeline().await;
    let Some(python) = crate::harness::python() else {
        eprintln!("skipping the reader check: set KLINE_ETL_PYTHON");
        return;
    };
    let spec = dir.join("spec.json");
    std::fs::write(
        &spec,
        serde_json::to_vec(&serde_json::json!({
            "klines": {"dir": table, "versions": {"0": served(&sim, END_1), "1": served(&sim, END_2)}},
            "tables": tables,
            "readme": repo().join("README.md"),
            "readme_table": readme_table.path().join("data/lake/klines"),
        }))
        .unwrap(),
    )
    .unwrap();
    let text = python_check(&python, "interop_delta.py", &[spec.as_os_str()], &[]);
    assert_eq!(text.matches("polars.read_delta").count(), 3 + 4, "{text}");
    assert!(
        text.contains("README Delta snippets: works (5 run)"),
        "{text}"
    );
    assert_eq!(text.matches("deltalake").count(), 2 + 2 + 4, "{text}");
    eprintln!("{text}");
    sim.shutdown().await;
}

/// The README's Delta pipeline, run as written (it uses the built-in simulator) in a scratch
/// directory; the directory, for its reader lines.
async fn run_readme_pipeline() -> tempfile::TempDir {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("## Delta Lake tables: `output.format: delta`")
        .nth(1)
        .unwrap();
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), "lake.yaml", yaml, &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(log_versions(&dir.path().join("data/lake/klines")).len(), 1);
    dir
}

/// The files of a table's latest version with their bytes.
fn live_bytes(table: &Path) -> Vec<(String, Vec<u8>)> {
    live(table)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(table.join(&p)).unwrap();
            (p, bytes)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_started_at_once_commit_into_one_table_equal_to_one_run() {
    let sim = simulator().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let text = |path: &str| {
        format!(
            "name: sharded\nsource:\n  base_url: {}\nsymbols: [BTCUSDT, ETHUSDT, BNBUSDT, SOLUSDT]\nintervals: [1h, 4h, 1d]\nrange:\n  start: 2024-03-01\n  end: now\noutput:\n  path: {path}\n  format: delta\n",
            sim.base_url()
        )
    };
    run_ok(dir, "whole.yaml", &text("whole")).await;
    std::fs::write(dir.join("sharded.yaml"), text("sharded")).unwrap();
    // What an orchestrator fans out over: every series with its shard, each shard with work.
    let plan = cli(
        dir,
        &["plan", "sharded.yaml", "--shards", "3", "--json"],
        &[],
    )
    .await;
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let mut planned = vec![Vec::new(); 3];
    for s in plan["shards"]["series"].as_array().unwrap() {
        let shard = s["shard"].as_u64().unwrap() as usize;
        planned[shard - 1].push(format!(
            "{}/{}",
            s["symbol"].as_str().unwrap(),
            s["interval"].as_str().unwrap()
        ));
    }
    for p in &mut planned {
        p.sort();
        assert!(!p.is_empty(), "every shard has work: {planned:?}");
    }
    assert_eq!(planned.iter().map(Vec::len).sum::<usize>(), 12);
    // The shards' expected candles: the four 1h series cannot split evenly over three shards
    // (two share one), the lighter ones even the rest out.
    assert!(
        plan["shards"]["max_over_mean"].as_f64().unwrap() < 1.2,
        "{}",
        plan["shards"]
    );
    let children: Vec<Child> = (1..=3)
        .map(|i| {
            Command::new(BIN)
                .args(["-q", "run", "sharded.yaml", "--shard", &format!("{i}/3")])
                .current_dir(dir)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    wait_ok(children, "shard").await;
    let mut committed = Vec::new();
    for (i, planned) in planned.iter().enumerate() {
        let s: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!(
                "sharded/klines/_kline_etl/summary.shard-{}-of-3.json",
                i + 1
            )))
            .unwrap(),
        )
        .unwrap();
        if let Some(v) = s["run"]["delta_version"].as_u64() {
            committed.push(v);
        }
        // The shard ran exactly the series `plan --shards 3` gave it.
        let mut ran: Vec<String> = s["run"]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                format!(
                    "{}/{}",
                    t["symbol"].as_str().unwrap(),
                    t["interval"].as_str().unwrap()
                )
            })
            .collect();
        ran.sort();
        ran.dedup();
        assert_eq!(&ran, planned, "shard {}", i + 1);
    }
    committed.sort_unstable();
    let table = dir.join("sharded/klines");
    let versions = log_versions(&table);
    // One version per shard that had work, none lost or duplicated, exactly one of them
    // creating the table.
    assert_eq!(committed, (0..versions.len() as u64).collect::<Vec<_>>());
    assert_eq!(creations(&table), 1);
    // The same files, byte for byte, as one unsharded run's table (names are content hashes).
    let union = live_bytes(&table);
    assert_eq!(union.len(), 12);
    assert_eq!(union, live_bytes(&dir.join("whole/klines")));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_the_files_and_the_commit_leaves_the_last_version_and_the_rerun_completes_it()
 {
    let sim = simulator().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let table = dir.join("out/klines");
    run_ok(dir, "k.yaml", &klines_yaml(&sim, END_1, "delta", "out")).await;
    let before = live_bytes(&table);
    let status = |dir: PathBuf| async move {
        let o = cli(&dir, &["status", "k.yaml", "--json"], &[]).await;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["rows"].as_u64().unwrap())
            .sum::<u64>()
    };
    let rows_before = status(dir.to_owned()).await;

    let text = klines_yaml(&sim, END_2, "delta", "out");
    let killed = run(
        dir,
        "k.yaml",
        &text,
        &[(kline_etl::load::delta::KILL_BEFORE_COMMIT_ENV, "1")],
    )
    .await;
    assert_eq!(killed.status.code(), None, "aborted: {}", stderr(&killed));
    // The new files are on disk, the table is still at version 0 and reads as before.
    let on_disk = data_files(&table).len();
    assert!(on_disk > before.len(), "the killed run wrote its files");
    assert_eq!(log_versions(&table).len(), 1);
    assert_eq!(live_bytes(&table), before);
    assert_eq!(status(dir.to_owned()).await, rows_before);

    run_ok(dir, "k.yaml", &text).await;
    assert_eq!(log_versions(&table).len(), 2);
    let want: usize = served(&sim, END_2)
        .iter()
        .map(|s| s["rows"].as_array().unwrap().len())
        .sum();
    assert_eq!(status(dir.to_owned()).await, want as u64);
    // The rerun wrote the same bytes under the same names: nothing new beside the killed
    // run's files.
    let after = data_files(&table).len();
    assert_eq!(after, on_disk);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_dataset_switched_to_delta_becomes_a_table_and_parquet_refuses_a_table() {
    let sim = simulator().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let table = dir.join("out/klines");
    run_ok(dir, "k.yaml", &klines_yaml(&sim, END_1, "parquet", "out")).await;
    let hive: Vec<PathBuf> = data_files(&table);
    // The same range as a table: version 0 adds the files already there, unchanged.
    run_ok(dir, "k.yaml", &klines_yaml(&sim, END_1, "delta", "out")).await;
    assert_eq!(log_versions(&table).len(), 1);
    let rel: Vec<String> = hive
        .iter()
        .map(|p| {
            p.strip_prefix(&table)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(live(&table), rel);
    // Extended: the changed partitions are replaced by versioned files.
    run_ok(dir, "k.yaml", &klines_yaml(&sim, END_2, "delta", "out")).await;
    assert_eq!(log_versions(&table).len(), 2);
    assert!(
        live(&table).iter().all(|p| !rel.contains(p)),
        "{:?}",
        live(&table)
    );
    // Back to `parquet` on the table: refused, exit 4, naming the key to set.
    let o = run(
        dir,
        "k.yaml",
        &klines_yaml(&sim, END_2, "parquet", "out"),
        &[],
    )
    .await;
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("output.format: delta"),
        "{}",
        stderr(&o)
    );
    sim.shutdown().await;
}

/// Three shards on three hosts (three mirrors) commit into one table on an S3-compatible
/// server at once: the conditional PUT gives each its own version.
#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_commit_into_one_table_on_s3() {
    use crate::store::{aws_env, download, moto};
    let Some(moto) = moto().await else {
        return;
    };
    let created = reqwest::Client::new()
        .put(format!("{}/lake", moto.url))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{created:?}");
    let sim = simulator().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let text = |output: &str| {
        format!(
            "name: lake\nsource:\n  base_url: {}\nsymbols: [BTCUSDT, ETHUSDT, BNBUSDT, SOLUSDT]\nintervals: [1h, 1d]\nrange:\n  start: 2024-04-01\n  end: now\noutput:\n{output}  format: delta\n",
            sim.base_url()
        )
    };
    run_ok(dir, "whole.yaml", &text("  path: whole\n")).await;
    let env = aws_env(&moto.url);
    let children: Vec<Child> = (1..=3)
        .map(|i| {
            let p = dir.join(format!("host{i}.yaml"));
            std::fs::write(
                &p,
                text(&format!(
                    "  path: s3://lake/binance\n  staging: mirror-{i}\n"
                )),
            )
            .unwrap();
            Command::new(BIN)
                .args([
                    "-q",
                    "run",
                    p.to_str().unwrap(),
                    "--shard",
                    &format!("{i}/3"),
                ])
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .current_dir(dir)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    wait_ok(children, "host").await;
    let got = dir.join("downloaded");
    download(&moto.url, "lake", "binance", &got).await;
    let table = got.join("binance/klines");
    let versions = log_versions(&table);
    assert!(!versions.is_empty() && versions.len() <= 3, "{versions:?}");
    assert_eq!(
        creations(&table),
        1,
        "one host created the table, the others rebased"
    );
    assert_eq!(live_bytes(&table), live_bytes(&dir.join("whole/klines")));
    // A fourth host with an empty mirror finds the work done: no new version.
    std::fs::write(
        dir.join("host4.yaml"),
        text("  path: s3://lake/binance\n  staging: mirror-4\n"),
    )
    .unwrap();
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let again = cli(dir, &["-q", "run", "host4.yaml"], &envs).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let got2 = dir.join("downloaded-2");
    download(&moto.url, "lake", "binance", &got2).await;
    assert_eq!(log_versions(&got2.join("binance/klines")), versions);
    // A day later host 4 extends the table (each series' yearly files replaced: a new
    // version); a fifth host's empty mirror then holds only the latest version's data files,
    // not the replaced ones the store keeps for time travel.
    sim.advance(kline_etl::interval::DAY_MS);
    let later = cli(dir, &["-q", "run", "host4.yaml"], &envs).await;
    assert_eq!(later.status.code(), Some(0), "{}", stderr(&later));
    std::fs::write(
        dir.join("host5.yaml"),
        text("  path: s3://lake/binance\n  staging: mirror-5\n"),
    )
    .unwrap();
    let fifth = cli(dir, &["-q", "run", "host5.yaml"], &envs).await;
    assert_eq!(fifth.status.code(), Some(0), "{}", stderr(&fifth));
    let got3 = dir.join("downloaded-3");
    download(&moto.url, "lake", "binance", &got3).await;
    let store_table = got3.join("binance/klines");
    assert_eq!(log_versions(&store_table).len(), versions.len() + 1);
    let mirrored = data_files(&dir.join("mirror-5/klines"));
    assert_eq!(mirrored.len(), live(&store_table).len(), "{mirrored:?}");
    assert!(data_files(&store_table).len() > mirrored.len());
    sim.shutdown().await;
}

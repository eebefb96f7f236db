//! Layout version 2 end to end: every reader reads the dataset directory whole with its default
//! call and gets exactly the rows the simulator served (`tests/python/interop.py`: pyarrow,
//! pandas, `pyarrow.dataset`, DuckDB, polars, Spark), and `kline-etl migrate` converts a
//! dataset written by the release before layout 2 (`tests/fixtures/layout-v1`), also when
//! killed halfway and rerun.

use std::path::{Path, PathBuf};

use kline_etl::interval::Interval;
use kline_etl::market::Market;
use kline_etl::simulator::SimHandle;
use kline_etl::symbol::Symbol;

use crate::harness::{cli, repo, simulator, stderr};
use crate::load::files_under as files;

/// 2024-06-01T00:30:00Z, the simulator's frozen now (see `run::NOW`).
fn ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

struct Part {
    market: Market,
    symbols: &'static [&'static str],
    intervals: &'static [Interval],
    start: &'static str,
}

/// The runs that fill one dataset: several markets, symbols and intervals (`1m` across a month
/// end, `1h`, `4h`, `1d` and `1M` across a year end) in one `klines` directory.
const MIXED: &[Part] = &[
    Part {
        market: Market::Spot,
        symbols: &["BTCUSDT", "ETHUSDT"],
        intervals: &[Interval::H1, Interval::D1, Interval::Mo1],
        start: "2023-12-01T00:00:00Z",
    },
    Part {
        market: Market::Spot,
        symbols: &["BTCUSDT"],
        intervals: &[Interval::M1],
        start: "2024-05-31T22:00:00Z",
    },
    Part {
        market: Market::UsdM,
        symbols: &["BTCUSDT"],
        intervals: &[Interval::D1, Interval::H4],
        start: "2024-05-01T00:00:00Z",
    },
];

/// A dataset of daily klines only: the case where Spark would infer an `interval=1d` path value
/// as the double `1.0`.
const DAILY_ONLY: &[Part] = &[Part {
    market: Market::Spot,
    symbols: &["BTCUSDT", "ETHUSDT"],
    intervals: &[Interval::D1],
    start: "2023-12-01T00:00:00Z",
}];

fn list<T: std::fmt::Display>(v: &[T]) -> String {
    let parts: Vec<String> = v.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// Run `parts` into `dir/out` with the given price type and time unit; the served rows as the
/// interop spec's `expected` list.
async fn fill(
    sim: &SimHandle,
    dir: &Path,
    parts: &[Part],
    prices: &str,
    unit: &str,
) -> Vec<serde_json::Value> {
    let margin = kline_etl::extract::pager::ExtractConfig::new(
        Market::Spot,
        "",
        kline_etl::config::TransformOptions::default(),
    )
    .closed_margin_ms;
    let mut expected = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let text = format!(
            "name: it-layout\nsource:\n  market: {}\n  base_url: {}\n  mode: rest\nsymbols: {}\nintervals: {}\nrange:\n  start: \"{}\"\n  end: now\ntransform: {{ prices: {prices}, time_unit: {unit} }}\noutput:\n  path: out\n",
            part.market.as_str(),
            sim.base_url(),
            list(part.symbols),
            list(part.intervals),
            part.start,
        );
        let p = dir.join(format!("p{i}.yaml"));
        std::fs::write(&p, text).unwrap();
        let out = cli(dir, &["-q", "run", p.to_str().unwrap()], &[]).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        for s in part.symbols {
            let symbol: Symbol = s.parse().unwrap();
            for &iv in part.intervals {
                let rows: Vec<[serde_json::Value; 12]> = sim
                    .expected_klines(part.market, &symbol, iv, ms(part.start), i64::MAX)
                    .iter()
                    // Closed candles only, as the run counts them: closed at least
                    // `closed_margin_ms` (1 s) before the exchange's `NOW`, so the 1m candle
                    // closing at 00:29:59.999 is held back at a now of 00:30:00.
                    .filter(|r| r.close_time < crate::harness::NOW - margin)
                    .map(kline_etl::simulator::KlineRow::to_json)
                    .collect();
                assert!(!rows.is_empty(), "{s} {iv}");
                expected.push(serde_json::json!({
                    "market": part.market.as_str(), "symbol": s, "interval": iv.as_str(), "rows": rows,
                }));
            }
        }
    }
    expected
}

/// The other datasets in the same output root (snapshots, funding rates, a kline family), each
/// its own table; their directories and hive keys for the interop spec's `tables`.
async fn fill_others(sim: &SimHandle, dir: &Path) -> Vec<serde_json::Value> {
    let runs = [
        ("spot", "dataset: ticker_price\nsymbols: [BTCUSDT, ETHUSDT]"),
        (
            "spot",
            "dataset: depth\ndepth_limit: 20\nsymbols: [BTCUSDT, ETHUSDT]",
        ),
        (
            "usdm",
            "dataset: funding_rate\nsymbols: [BTCUSDT, ETHUSDT]\nrange: { start: 2023-06-01, end: now }",
        ),
        (
            "usdm",
            "kline_family: mark_price\nsymbols: [BTCUSDT]\nintervals: [1h, 1d]\nrange: { start: 2024-05-01, end: now }",
        ),
    ];
    for (i, (market, body)) in runs.iter().enumerate() {
        let text = format!(
            "name: it-layout-other\nsource:\n  market: {market}\n  base_url: {}\n{body}\noutput:\n  path: out\n",
            sim.base_url()
        );
        let p = dir.join(format!("other{i}.yaml"));
        std::fs::write(&p, text).unwrap();
        let out = cli(dir, &["-q", "run", p.to_str().unwrap()], &[]).await;
        assert_eq!(out.status.code(), Some(0), "{body}: {}", stderr(&out));
    }
    let out = dir.join("out");
    vec![
        serde_json::json!({"dir": out.join("ticker_price"), "keys": ["market", "date", "symbol"]}),
        serde_json::json!({"dir": out.join("depth"), "keys": ["market", "date", "symbol"]}),
        serde_json::json!({"dir": out.join("funding_rate"), "keys": ["market", "symbol", "year"]}),
        serde_json::json!({"dir": out.join("mark_price/klines"), "keys": ["market", "symbol", "year", "interval"]}),
    ]
}

/// The table, from this test: every reader's default call on the whole directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reader_reads_the_whole_dataset_directory_with_its_default_call() {
    let Some(python) = crate::harness::python() else {
        eprintln!("skipping: set KLINE_ETL_PYTHON to run the reader interop test");
        return;
    };
    let sim = simulator().await;
    let work = tempfile::tempdir().unwrap();
    let mut datasets = Vec::new();
    for (prices, unit) in [
        ("float64", "ms"),
        ("decimal", "us"),
        ("float64", "us"),
        ("decimal", "ms"),
    ] {
        let dir = work.path().join(format!("{prices}-{unit}"));
        std::fs::create_dir_all(&dir).unwrap();
        let expected = fill(&sim, &dir, MIXED, prices, unit).await;
        datasets.push(serde_json::json!({
            "dir": dir.join("out/klines"), "prices": prices, "unit": unit, "expected": expected,
        }));
    }
    let tables = fill_others(&sim, &work.path().join("float64-ms")).await;
    let dir = work.path().join("daily-only");
    std::fs::create_dir_all(&dir).unwrap();
    let expected = fill(&sim, &dir, DAILY_ONLY, "float64", "ms").await;
    datasets.push(serde_json::json!({
        "dir": dir.join("out/klines"), "prices": "float64", "unit": "ms", "expected": expected,
    }));
    let spec = work.path().join("spec.json");
    std::fs::write(
        &spec,
        serde_json::to_vec(&serde_json::json!({
            "datasets": datasets,
            "tables": tables,
            "readme": repo().join("README.md"),
            "work": work.path(),
        }))
        .unwrap(),
    )
    .unwrap();
    let text = crate::harness::python_check(&python, "interop.py", &[spec.as_os_str()], &[]);
    for reader in [
        "pyarrow.parquet.read_table",
        "pandas.read_parquet",
        "pyarrow.dataset(hive)",
        "duckdb read_parquet",
        "polars scan_parquet",
    ] {
        assert_eq!(
            text.matches(&format!("{reader}: works")).count(),
            5 + 4,
            "{reader}, the klines and the 4 other datasets:\n{text}"
        );
    }
    assert!(text.contains("README snippets: works"), "{text}");
    let spark = text.matches("spark.read.parquet: works").count();
    if std::env::var_os("CI").is_some() || !text.contains("spark.read.parquet: skipped") {
        assert_eq!(spark, 5 + 4, "{text}");
    }
    eprintln!("{text}");
}

fn copy_dir(from: &Path, to: &Path) {
    for f in files(from) {
        let dst = to.join(&f);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&f), dst).unwrap();
    }
}

/// Rows of every layout-1 partition file, by (klines root, market, symbol, interval).
type Series = std::collections::BTreeMap<(String, String, String, String), Vec<i64>>;

fn rows_by_series(root: &Path, old: bool) -> (Series, usize) {
    let mut out = Series::new();
    let mut n = 0;
    for f in files(root) {
        let is_data = if old {
            f.ends_with("/part.parquet")
        } else {
            f.contains("/year=") && f.ends_with(".parquet")
        };
        if !is_data || !f.contains("klines/") {
            continue;
        }
        let path = root.join(&f);
        let (rows, _) = kline_etl::load::parquet::read_file(&path).unwrap();
        let meta = |k: &str| {
            kline_etl::load::parquet::read_footer(&path, k)
                .unwrap()
                .value
                .unwrap()
        };
        let family_root = f.split("klines/").next().unwrap().to_owned();
        let key = (
            family_root,
            meta("kline_etl.market"),
            meta("kline_etl.symbol"),
            meta("kline_etl.interval"),
        );
        n += rows.len();
        let e = out.entry(key).or_default();
        e.extend(rows.open_time.iter().copied());
        e.sort_unstable();
    }
    (out, n)
}

/// Funding records per (market, symbol) in the files under `dir` (layout 1 or 2: the rows are
/// the files', whatever their names).
fn funding_records(dir: &Path) -> std::collections::BTreeMap<String, Vec<i64>> {
    use kline_etl::dataset::funding_rate::rows;
    let mut out = std::collections::BTreeMap::<String, Vec<i64>>::new();
    for f in files(dir) {
        if !f.ends_with(".parquet") || f.contains("_kline_etl") {
            continue;
        }
        let path = dir.join(&f);
        let (prices, unit) = rows::stored_types(&path).unwrap();
        let series: String = f
            .split("/year=")
            .next()
            .unwrap()
            .split("/month=")
            .next()
            .unwrap()
            .to_owned();
        let e = out.entry(series).or_default();
        e.extend(
            rows::read_partition(&path, prices, unit)
                .unwrap()
                .iter()
                .map(|r| r.funding_time),
        );
        e.sort_unstable();
    }
    out
}

fn fixture() -> PathBuf {
    repo().join("tests/fixtures/layout-v1/dataset")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_converts_a_layout_one_dataset_even_when_killed_halfway() {
    let work = tempfile::tempdir().unwrap();
    let ds = work.path().join("dataset");
    copy_dir(&fixture(), &ds);
    let before_files = files(&ds);
    let (before, before_rows) = rows_by_series(&ds, true);
    assert!(before.len() >= 8, "fixture series: {before:?}");
    let funding_before = funding_records(&ds.join("funding_rate"));
    assert_eq!(funding_before.len(), 2, "{funding_before:?}");
    let depth_before = files(&ds.join("depth"))
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .count();
    assert!(depth_before >= 1);
    let root = ds.to_str().unwrap();

    refused_everywhere(work.path(), root).await;
    assert_eq!(files(&ds), before_files, "a refused run touched nothing");

    // --dry-run lists the steps and changes nothing.
    let dry = cli(work.path(), &["migrate", root, "--dry-run"], &[]).await;
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let listing = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(
        listing.contains(
            "would convert klines/market=spot/symbol=BTCUSDT/interval=1d/part.parquet (63 rows) -> klines/market=spot/symbol=BTCUSDT/year=2024/1d-2024.parquet, klines/market=spot/symbol=BTCUSDT/year=2025/1d-2025.parquet"
        ),
        "{listing}"
    );
    assert!(
        listing.contains("would move klines/_summary.json -> klines/_kline_etl/summary.json"),
        "{listing}"
    );
    assert!(
        listing.contains("would move depth/_summary.json -> depth/_kline_etl/summary.json"),
        "{listing}"
    );
    assert_eq!(files(&ds), before_files, "a dry run touched nothing");

    // Killed after the third converted file (its new files written and verified, the old one
    // not yet removed): the dataset is half converted; a rerun finishes it.
    let killed = cli(
        work.path(),
        &["migrate", root],
        &[(kline_etl::load::migrate::KILL_AFTER_ENV, "3")],
    )
    .await;
    assert!(!killed.status.success(), "the hook kills the process");
    assert_eq!(killed.status.code(), None, "killed by a signal");
    let (half_old, _) = rows_by_series(&ds, true);
    assert!(!half_old.is_empty() && half_old.len() <= before.len());
    let out = cli(work.path(), &["status", root], &[]).await;
    assert_eq!(out.status.code(), Some(4), "still refused while half done");
    let rerun = cli(work.path(), &["migrate", root], &[]).await;
    assert_eq!(rerun.status.code(), Some(0), "{}", stderr(&rerun));

    // Every row of every old file is in the new layout, nothing else is, and no old name is left.
    let (after, after_rows) = rows_by_series(&ds, false);
    assert_eq!(after, before);
    assert_eq!(after_rows, before_rows);
    assert_eq!(funding_records(&ds.join("funding_rate")), funding_before);
    let depth_after: Vec<String> = files(&ds.join("depth"))
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .collect();
    assert_eq!(depth_after.len(), depth_before);
    assert!(
        depth_after
            .iter()
            .all(|f| f.starts_with("market=spot/date=") && f.contains("/BTCUSDT-")),
        "{depth_after:?}"
    );
    let left = files(&ds);
    assert!(
        !left.iter().any(|f| f.contains("interval=")
            || f.ends_with("part.parquet")
            || f.contains("klines/_summary")
            || f.contains("/_resume")
            || f.contains(".kline-etl.lock")
            || f.contains("/month=")
            || f.contains("funding_rate/_summary")
            || f.contains("depth/market=spot/symbol=")),
        "{left:#?}"
    );
    assert!(left.contains(&"klines/_kline_etl/summary.json".to_owned()));
    assert!(left.contains(&"klines/_kline_etl/summary.parq".to_owned()));
    assert!(left.contains(&"mark_price/klines/_kline_etl/summary.json".to_owned()));
    assert!(left.contains(&"depth/_kline_etl/summary.json".to_owned()));
    assert!(left.contains(&"funding_rate/_kline_etl/summary.json".to_owned()));
    assert!(
        left.contains(
            &"funding_rate/market=usdm/symbol=BTCUSDT/year=2024/funding_rate-2024-12.parquet"
                .to_owned()
        )
    );
    assert!(
        left.contains(&"klines/market=spot/symbol=BTCUSDT/year=2024/1m-2024-12.parquet".to_owned())
    );
    assert!(
        left.contains(&"klines/market=spot/symbol=BTCUSDT/year=2025/1m-2025-01.parquet".to_owned())
    );
    let again = cli(work.path(), &["migrate", root], &[]).await;
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to migrate"));

    tools_work(work.path(), &ds).await;
}

/// Every command on a layout-1 dataset exits 4 and names `kline-etl migrate PATH`: the tools
/// reading it (`status`, `summary`, `chart`) and the runs writing it (klines, `repair`, a
/// kline family, a snapshot dataset, funding rates).
async fn refused_everywhere(work: &Path, root: &str) {
    let fixture = |name: &str| {
        repo()
            .join("tests/fixtures/layout-v1")
            .join(name)
            .to_str()
            .unwrap()
            .to_owned()
    };
    let svg = work.join("refused.svg");
    let svg = svg.to_str().unwrap();
    let (spot, mark, depth, funding) = (
        fixture("spot.yaml"),
        fixture("mark.yaml"),
        fixture("depth.yaml"),
        fixture("funding.yaml"),
    );
    for (args, named) in [
        (vec!["status", root], root),
        (vec!["summary", root], root),
        (
            vec![
                "chart",
                root,
                "--symbol",
                "BTCUSDT",
                "--interval",
                "1d",
                "--output",
                svg,
            ],
            root,
        ),
        (vec!["run", &spot], "dataset"),
        (vec!["repair", &spot], "dataset"),
        (vec!["run", &mark], "dataset/mark_price"),
        (vec!["run", &depth], "dataset"),
        (vec!["run", &funding], "dataset"),
    ] {
        let out = cli(work, &args, &[]).await;
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("kline-etl migrate {named}")),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

/// `status`, `summary` and `chart` work on the converted dataset (`ds`).
async fn tools_work(work: &Path, ds: &Path) {
    let root = ds.to_str().unwrap();
    let st = cli(work, &["status", root, "--json"], &[]).await;
    assert_eq!(st.status.code(), Some(0), "{}", stderr(&st));
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(
        st["series"].as_array().map(Vec::len),
        Some(7),
        "spot series: {st}"
    );
    let sum = cli(work, &["summary", root, "--json"], &[]).await;
    assert_eq!(sum.status.code(), Some(0), "{}", stderr(&sum));
    let mark = ds.join("mark_price");
    let sum = cli(work, &["summary", mark.to_str().unwrap()], &[]).await;
    assert_eq!(sum.status.code(), Some(0), "{}", stderr(&sum));
    let svg = work.join("c.svg");
    let chart = cli(
        work,
        &[
            "chart",
            root,
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1d",
            "--output",
            svg.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(chart.status.code(), Some(0), "{}", stderr(&chart));
}

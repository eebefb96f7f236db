//! Archive-first history (issue 9), the real binary against the simulator's archive: archive,
//! REST and auto produce byte-identical Parquet; every archive fault is detected, reported and
//! kept out of the data; a file replaced upstream is noticed on rerun and its partition rebuilt.

use std::path::{Path, PathBuf};
use std::process::Output;

use kline_etl::config::TransformOptions;
use kline_etl::interval::Interval;
use kline_etl::market::Market;
use kline_etl::simulator::{
    ArchiveConfig, ArchiveFault, ClockMode, SimConfig, SimHandle, Simulator,
};
use kline_etl::summary::dataset::read_series;
use kline_etl::symbol::Symbol;
use kline_etl::transform::{KlineContext, KlineRows, parse_klines};

use crate::harness::BIN;
/// 2025-03-10T12:30:00Z: spot files from 2025 are in µs, December 2024 in ms.
const NOW: i64 = 1_741_609_800_000;
/// 2024-12-28: the range starts with daily files (ms), then monthly files (µs).
const START: i64 = 1_735_344_000_000;
/// 2025-03-08: the end of what the planner takes from files at `NOW`.
const PUBLISHED_END: i64 = 1_741_392_000_000;

async fn sim(archive: ArchiveConfig) -> SimHandle {
    let cfg = SimConfig {
        // Five seconds past NOW: the clock is frozen, and a run holds back candles that
        // closed less than a second before its estimate of the exchange's time (which starts
        // at the frozen time and advances in real time). Without the slack, whether 12:29
        // counts as closed would depend on how fast the run reached the last page.
        clock: ClockMode::Fixed(NOW + 5_000),
        ..SimConfig::default()
    }
    .with_archive(archive);
    Simulator::start(cfg).await.unwrap()
}

async fn run(
    dir: &Path,
    sim: &SimHandle,
    mode: &str,
    symbols: &str,
    intervals: &str,
    end: &str,
) -> Output {
    run_on(dir, sim, "spot", mode, symbols, intervals, end).await
}

async fn run_on(
    dir: &Path,
    sim: &SimHandle,
    market: &str,
    mode: &str,
    symbols: &str,
    intervals: &str,
    end: &str,
) -> Output {
    let url = sim.base_url();
    let text = format!(
        "name: it-archive\nsource:\n  market: {market}\n  base_url: {url}\n  archive_url: {url}\n  mode: {mode}\nsymbols: {symbols}\nintervals: {intervals}\nrange:\n  start: 2024-12-28\n  end: {end}\noutput:\n  path: out\n"
    );
    let p = dir.join("pipeline.yaml");
    std::fs::write(&p, text).unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["-q", "run", p.to_str().unwrap(), "--recheck-archive"])
        .current_dir(dir)
        .env_remove("RUST_LOG");
    tokio::task::spawn_blocking(move || cmd.output().expect("the binary runs"))
        .await
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("out/klines/_kline_etl/summary.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn parquet_files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    crate::harness::file_hashes(root)
        .into_iter()
        .map(|(p, bytes)| (p.strip_prefix(root).unwrap().to_owned(), bytes))
        .collect()
}

fn truth(sim: &SimHandle, symbol: &Symbol, interval: Interval, start: i64, end: i64) -> KlineRows {
    let rows = sim.expected_klines(Market::Spot, symbol, interval, start, end);
    let page: Vec<[serde_json::Value; 12]> = rows
        .iter()
        .map(kline_etl::simulator::KlineRow::to_json)
        .collect();
    let body = serde_json::to_vec(&page).unwrap();
    let opts = TransformOptions::default();
    let ctx = KlineContext {
        market: Market::Spot,
        symbol,
        interval,
        options: &opts,
    };
    parse_klines(&body, &ctx).unwrap()
}

fn assert_same(got: &KlineRows, want: &KlineRows, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: row count");
    if let Some(i) = (0..got.len()).find(|i| !got.row_eq(*i, want, *i)) {
        panic!(
            "{what}: first difference at row {i} (open time {})",
            got.open_time[i]
        );
    }
}

fn stored(dir: &Path, sym: &str, interval: Interval) -> KlineRows {
    read_series(
        &dir.join("out"),
        Market::Spot,
        &sym.parse().unwrap(),
        interval,
    )
    .unwrap()
    .unwrap()
}

fn issues(s: &serde_json::Value) -> Vec<(String, String, bool)> {
    s["run"]["archive"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["file"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned(),
                i["kind"].as_str().unwrap().to_owned(),
                i["ingested"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_rest_and_auto_write_byte_identical_parquet() {
    let sim = sim(ArchiveConfig::default()).await;
    let end = "2025-03-08";
    let [a, r, u] = [(); 3].map(|()| tempfile::tempdir().unwrap());
    for (dir, mode) in [(&a, "archive"), (&r, "rest"), (&u, "auto")] {
        let o = run(dir.path(), &sim, mode, "[BTCUSDT]", "[1m, 1h]", end).await;
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
    }
    let files = parquet_files(&r.path().join("out"));
    assert_eq!(
        files.len(),
        6,
        "1m: months 2024-12 to 2025-03; 1h: years 2024 and 2025"
    );
    assert_eq!(
        parquet_files(&a.path().join("out")),
        files,
        "archive vs rest"
    );
    assert_eq!(parquet_files(&u.path().join("out")), files, "auto vs rest");
    let truth_1m = truth(
        &sim,
        &"BTCUSDT".parse().unwrap(),
        Interval::M1,
        START,
        PUBLISHED_END,
    );
    assert_same(
        &stored(a.path(), "BTCUSDT", Interval::M1),
        &truth_1m,
        "archive 1m",
    );

    let s = summary(a.path());
    let arch = &s["run"]["archive"];
    // 1m: Dec 28..31 daily, Jan + Feb monthly, Mar 1..7 daily; same for 1h.
    assert_eq!(arch["files_ingested"], 2 * (4 + 2 + 7));
    assert!(
        s["run"]["requests"].as_u64().unwrap() <= 2,
        "archive mode: only /time and exchangeInfo on REST"
    );
    assert!(
        issues(&s)
            .iter()
            .any(|(f, k, _)| f == "BTCUSDT-1m-2025-01.zip" && k == "source_unit_us"),
        "µs files are noticed: {:?}",
        issues(&s)
    );
    assert!(summary(r.path())["run"].get("archive").is_none());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_stitches_archive_and_rest_without_gap_or_duplicate() {
    let sim = sim(ArchiveConfig::default()).await;
    let (r, u) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (dir, mode) in [(&r, "rest"), (&u, "auto")] {
        let o = run(dir.path(), &sim, mode, "[BTCUSDT]", "[1m, 1h]", "now").await;
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
    }
    assert_eq!(
        parquet_files(&u.path().join("out")),
        parquet_files(&r.path().join("out")),
        "auto vs rest up to now"
    );
    let sym: Symbol = "BTCUSDT".parse().unwrap();
    for iv in [Interval::M1, Interval::H1] {
        assert_same(
            &stored(u.path(), "BTCUSDT", iv),
            &truth(&sim, &sym, iv, START, NOW),
            &format!("auto {iv}"),
        );
    }
    let s = summary(u.path());
    let tasks = s["run"]["archive"]["tasks"].as_array().unwrap();
    assert!(
        tasks
            .iter()
            .all(|t| t["rest_from"] == "2025-03-09T00:00:00.000Z")
    );
    let rest_requests = s["run"]["requests"].as_u64().unwrap();
    let rest_only = summary(r.path())["run"]["requests"].as_u64().unwrap();
    assert!(
        rest_requests * 10 < rest_only,
        "{rest_requests} vs {rest_only}"
    );
    sim.shutdown().await;
}

fn faulty() -> ArchiveConfig {
    ArchiveConfig::default()
        .with_fault("BTCUSDT-1h-2025-01.zip", ArchiveFault::Missing)
        .with_fault("ETHUSDT-1h-2025-02.zip", ArchiveFault::BadChecksum)
        .with_fault("BNBUSDT-1h-2025-03-02.zip", ArchiveFault::TruncatedZip)
        .with_fault("SOLUSDT-1h-2025-01.zip", ArchiveFault::HeaderRow)
        .with_fault("XRPUSDT-1h-2024-12-30.zip", ArchiveFault::Micros)
        .with_fault("ADAUSDT-1h-2025-03-05.zip", ArchiveFault::DropRows(3))
}

const SIX: &str = "[BTCUSDT, ETHUSDT, BNBUSDT, SOLUSDT, XRPUSDT, ADAUSDT]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_archive_fault_is_reported_and_nothing_wrong_is_ingested() {
    let sim = sim(faulty()).await;
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &sim, "auto", SIX, "[1h]", "now").await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for sym in [
        "BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT",
    ] {
        let want = truth(&sim, &sym.parse().unwrap(), Interval::H1, START, NOW);
        assert_same(&stored(dir.path(), sym, Interval::H1), &want, sym);
    }
    let s = summary(dir.path());
    let got = issues(&s);
    for (file, kind, ingested) in [
        ("BTCUSDT-1h-2025-01.zip", "missing", false),
        ("ETHUSDT-1h-2025-02.zip", "checksum_mismatch", false),
        ("BNBUSDT-1h-2025-03-02.zip", "corrupt_zip", false),
        ("SOLUSDT-1h-2025-01.zip", "header_row", true),
        ("XRPUSDT-1h-2024-12-30.zip", "source_unit_us", true),
        ("ADAUSDT-1h-2025-03-05.zip", "short", false),
    ] {
        assert!(
            got.contains(&(file.to_owned(), kind.to_owned(), ingested)),
            "{file} {kind}: {got:?}"
        );
    }
    let arch = &s["run"]["archive"];
    assert_eq!(
        (
            &arch["files_missing"],
            &arch["files_quarantined"],
            &arch["files_short"]
        ),
        (&1.into(), &2.into(), &1.into())
    );
    // Each bad file is kept aside, byte for byte what was served.
    let q = dir
        .path()
        .join("out/_quarantine/spot/monthly/klines/ETHUSDT/1h/ETHUSDT-1h-2025-02.zip");
    assert!(q.is_file(), "{}", q.display());
    assert!(
        dir.path()
            .join("out/_quarantine/spot/daily/klines/BNBUSDT/1h/BNBUSDT-1h-2025-03-02.zip")
            .is_file()
    );
    // REST took over at the bad file, so the series is whole.
    let tasks = arch["tasks"].as_array().unwrap();
    let rest_from = |sym: &str| {
        tasks.iter().find(|t| t["symbol"] == sym).unwrap()["rest_from"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(rest_from("BTCUSDT"), "2025-01-01T00:00:00.000Z");
    assert_eq!(rest_from("ADAUSDT"), "2025-03-05T00:00:00.000Z");
    assert_eq!(rest_from("SOLUSDT"), "2025-03-09T00:00:00.000Z");
    // The short file's day was re-checked through REST: 24 rows there, 3 more than the file.
    let short = arch["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "short")
        .unwrap();
    assert_eq!(
        (
            &short["file_rows"],
            &short["grid_rows"],
            &short["rest_rows"]
        ),
        (&21.into(), &24.into(), &24.into()),
        "{short}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_mode_reports_gaps_and_fails_the_run() {
    let sim = sim(faulty()).await;
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        dir.path(),
        &sim,
        "archive",
        "[BTCUSDT, ETHUSDT, ADAUSDT]",
        "[1h]",
        "2025-03-08",
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // January is missing for BTCUSDT: nothing was invented for it.
    let btc = stored(dir.path(), "BTCUSDT", Interval::H1);
    let jan = 1_735_689_600_000..1_738_368_000_000;
    assert!(btc.open_time.iter().all(|t| !jan.contains(t)));
    let want = truth(
        &sim,
        &"BTCUSDT".parse().unwrap(),
        Interval::H1,
        START,
        PUBLISHED_END,
    );
    assert_eq!(btc.len(), want.len() - 31 * 24);
    // February of ETHUSDT failed its checksum: not ingested.
    let eth = stored(dir.path(), "ETHUSDT", Interval::H1);
    let feb = 1_738_368_000_000..1_740_787_200_000;
    assert!(eth.open_time.iter().all(|t| !feb.contains(t)));
    // The short file is the best there is in archive mode: ingested and reported.
    let got = issues(&summary(dir.path()));
    assert!(
        got.contains(&("ADAUSDT-1h-2025-03-05.zip".into(), "short".into(), true)),
        "{got:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_upstream_is_noticed_on_rerun_and_its_partition_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let sym: Symbol = "BTCUSDT".parse().unwrap();
    let first = sim(ArchiveConfig::default()).await;
    let o = run(
        dir.path(),
        &first,
        "auto",
        "[BTCUSDT]",
        "[1h]",
        "2025-03-08",
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join("out/klines/_kline_etl/archive_manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["files"].as_object().unwrap().len(), 4 + 2 + 7);
    let before = stored(dir.path(), "BTCUSDT", Interval::H1);
    first.shutdown().await;

    let replaced =
        sim(ArchiveConfig::default().with_fault("BTCUSDT-1h-2025-01.zip", ArchiveFault::Replaced))
            .await;
    let o = run(
        dir.path(),
        &replaced,
        "auto",
        "[BTCUSDT]",
        "[1h]",
        "2025-03-08",
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(dir.path());
    assert_eq!(s["run"]["archive"]["files_replaced"], 1);
    assert!(issues(&s).contains(&("BTCUSDT-1h-2025-01.zip".into(), "replaced".into(), true)));
    let after = stored(dir.path(), "BTCUSDT", Interval::H1);
    assert_eq!(after.len(), before.len());
    let jan1 = after
        .open_time
        .iter()
        .position(|&t| t == 1_735_689_600_000)
        .unwrap();
    assert_eq!(
        after.trades[jan1],
        before.trades[jan1] + 1,
        "the replaced value is on disk"
    );
    let want = truth(&replaced, &sym, Interval::H1, START, PUBLISHED_END);
    assert_eq!(after.trades[jan1], want.trades[jan1] + 1);

    // A third run sees the manifest's new checksum: nothing to rebuild.
    let o = run(
        dir.path(),
        &replaced,
        "auto",
        "[BTCUSDT]",
        "[1h]",
        "2025-03-08",
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(summary(dir.path())["run"]["archive"]["files_replaced"], 0);
    replaced.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn futures_files_with_header_rows_match_rest() {
    let sim = sim(ArchiveConfig::default()).await;
    for (market, symbol) in [("usdm", "[BTCUSDT]"), ("coinm", "[BTCUSD_PERP]")] {
        let (r, u) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for (dir, mode) in [(&r, "rest"), (&u, "auto")] {
            let o = run_on(dir.path(), &sim, market, mode, symbol, "[1h, 1d]", "now").await;
            assert_eq!(o.status.code(), Some(0), "{market} {mode}: {}", stderr(&o));
        }
        let want = parquet_files(&r.path().join("out"));
        assert!(!want.is_empty());
        assert_eq!(parquet_files(&u.path().join("out")), want, "{market}");
        let s = summary(u.path());
        assert!(s["run"]["archive"]["files_ingested"].as_u64().unwrap() > 0);
        // Futures files carry the header row: expected there, so not an issue.
        assert!(
            issues(&s).iter().all(|(_, k, _)| k != "header_row"),
            "{:?}",
            issues(&s)
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_archive_hands_over_to_rest() {
    let sim = sim(ArchiveConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    let text = format!(
        "name: it-archive\nsource:\n  base_url: {}\n  archive_url: http://127.0.0.1:9\nsymbols: [BTCUSDT, ETHUSDT]\nintervals: [1h]\nrange:\n  start: 2024-12-28\n  end: now\noutput:\n  path: out\n",
        sim.base_url()
    );
    let p = dir.path().join("pipeline.yaml");
    std::fs::write(&p, text).unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["run", p.to_str().unwrap()])
        .current_dir(dir.path())
        .env_remove("RUST_LOG");
    let o = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).matches("archive unreachable").count(),
        1,
        "{}",
        stderr(&o)
    );
    for sym in ["BTCUSDT", "ETHUSDT"] {
        let want = truth(&sim, &sym.parse().unwrap(), Interval::H1, START, NOW);
        assert_same(&stored(dir.path(), sym, Interval::H1), &want, sym);
    }
    let s = summary(dir.path());
    assert_eq!(s["run"]["archive"]["files_ingested"], 0);
    sim.shutdown().await;
}

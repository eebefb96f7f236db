//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) and every crash the fuzzers ever found
//! (`fuzz/regressions/<target>/`) through the same entry points the cargo-fuzz targets use
//! (`kline_etl::fuzz`), so CI guards every fix without running a fuzzer.

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut inputs = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_file() && !path.ends_with(".gitkeep") {
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| run(&data));
                assert!(outcome.is_ok(), "{target}: {} panics", path.display());
                inputs += 1;
            }
        }
    }
    assert!(inputs > 0, "{target}: no corpus");
}

#[test]
fn pipeline_corpus_and_regressions() {
    replay("pipeline", kline_etl::fuzz::pipeline);
}

#[test]
fn time_corpus_and_regressions() {
    replay("time", kline_etl::fuzz::time);
}

#[test]
fn interval_corpus_and_regressions() {
    replay("interval", kline_etl::fuzz::interval);
}

#[test]
fn klines_page_corpus_and_regressions() {
    replay("klines_page", kline_etl::fuzz::klines_page);
}

#[test]
fn archive_csv_corpus_and_regressions() {
    replay("archive_csv", kline_etl::fuzz::archive_csv);
}

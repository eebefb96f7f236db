//! Pipeline files through the real binary: the example pipelines validate and plan, and every
//! file of the bad-pipeline catalogue (`tests/fixtures/bad-pipelines/`, plus a few generated
//! here) exits 2 with a message naming line, column and field, without creating any output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::BIN;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn catalogue() -> PathBuf {
    root().join("tests/fixtures/bad-pipelines")
}

/// Run the binary in `cwd` with a clean, known environment for `${VAR}` lookups.
fn kline_etl(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("KLINE_ETL_TEST_UNSET_VARIABLE")
        .env_remove("BINANCE_API_KEY")
        .env_remove("KLINE_ETL_DATA")
        .env_remove("RUST_LOG")
        .output()
        .expect("the kline-etl binary runs")
}

/// stderr with machine-specific paths replaced.
fn scrub(text: &[u8], tmp: &Path) -> String {
    String::from_utf8_lossy(text)
        .replace(&catalogue().display().to_string(), "[CATALOGUE]")
        .replace(&tmp.display().to_string(), "[TMP]")
}

/// Run `run` and `validate` on a bad pipeline: both exit 2, leave the directory empty, and
/// name a position. Returns the scrubbed stderr of `run`.
fn reject(path: &Path, cwd: &tempfile::TempDir) -> String {
    let p = path.to_str().expect("utf-8 path");
    for sub in ["run", "validate"] {
        let out = kline_etl(cwd.path(), &[sub, p]);
        let stderr = scrub(&out.stderr, cwd.path());
        assert_eq!(
            out.status.code(),
            Some(2),
            "`{sub} {p}` should exit 2\n{stderr}"
        );
        assert!(out.stdout.is_empty(), "{sub}: stdout not empty");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let entries: Vec<_> = std::fs::read_dir(cwd.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| Some(n.as_os_str()) != path.file_name())
            .collect();
        assert!(entries.is_empty(), "{sub} created {entries:?}");
    }
    let out = kline_etl(cwd.path(), &["run", p]);
    scrub(&out.stderr, cwd.path())
}

fn snapshot(name: &str, stderr: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(root().join("tests/it/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(format!("bad_pipeline__{name}"), stderr));
}

#[test]
fn bad_pipeline_catalogue() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(catalogue())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 25, "catalogue has {} files", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let cwd = tempfile::tempdir().unwrap();
        let stderr = reject(file, &cwd);
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        // Every diagnostic line names the file, a line and a column.
        if !stderr.contains("--> [CATALOGUE]/") {
            failures.push(format!("{name}: no position in\n{stderr}"));
        }
        snapshot(&name, &stderr);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn many_errors_are_reported_at_once() {
    let cwd = tempfile::tempdir().unwrap();
    let stderr = reject(&catalogue().join("many-errors-at-once.yaml"), &cwd);
    let positions = stderr.lines().filter(|l| l.contains("  --> ")).count();
    assert!(positions >= 10, "{stderr}");
}

#[test]
fn generated_non_utf8_file() {
    let cwd = tempfile::tempdir().unwrap();
    let path = cwd.path().join("latin1.yaml");
    std::fs::write(&path, b"name: bad\nsymbols: [BTCUSDT]\n# caf\xe9\n").unwrap();
    let stderr = reject(&path, &cwd);
    assert!(stderr.contains("[TMP]/latin1.yaml:3:6"), "{stderr}");
    snapshot("generated-non-utf8", &stderr);
}

#[test]
fn generated_oversized_file_is_rejected_unparsed() {
    let cwd = tempfile::tempdir().unwrap();
    let path = cwd.path().join("huge.yaml");
    let mut text = String::from("name: huge\nsymbols:\n");
    while text.len() < 10 * 1024 * 1024 {
        text.push_str("  - BTCUSDT\n");
    }
    std::fs::write(&path, text).unwrap();
    let stderr = reject(&path, &cwd);
    assert!(stderr.contains("1048576 byte limit"), "{stderr}");
    snapshot("generated-10mb", &stderr);
}

#[test]
fn missing_file_names_the_path() {
    let cwd = tempfile::tempdir().unwrap();
    let out = kline_etl(cwd.path(), &["validate", "nope.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nope.yaml"), "{stderr}");
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
}

#[test]
fn validate_reports_every_file() {
    let cwd = tempfile::tempdir().unwrap();
    let good = root().join("pipelines/demo.yaml");
    let bad1 = catalogue().join("interval-1min.yaml");
    let bad2 = catalogue().join("symbol-lowercase.yaml");
    let out = kline_etl(
        cwd.path(),
        &[
            "validate",
            bad1.to_str().unwrap(),
            good.to_str().unwrap(),
            bad2.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interval-1min.yaml:3:17"), "{stderr}");
    assert!(stderr.contains("symbol-lowercase.yaml:2:11"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("demo.yaml"));
}

#[test]
fn example_pipelines_validate() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 3);
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let cwd = tempfile::tempdir().unwrap();
    let out = kline_etl(cwd.path(), &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        files.len()
    );
}

#[test]
fn plan_of_the_demo_pipeline() {
    let cwd = tempfile::tempdir().unwrap();
    let demo = root().join("pipelines/demo.yaml");
    let out = kline_etl(
        cwd.path(),
        &[
            "plan",
            demo.to_str().unwrap(),
            "--now",
            "2024-06-01T00:00:00Z",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(root().join("tests/it/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("plan_demo", stdout));
}

#[test]
fn plan_json_and_range_overrides() {
    let cwd = tempfile::tempdir().unwrap();
    let daily = root().join("pipelines/btcusdt-daily.yaml");
    let out = kline_etl(
        cwd.path(),
        &[
            "plan",
            daily.to_str().unwrap(),
            "--json",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-11",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tasks"][0]["expected_rows"], 10);
    assert_eq!(v["tasks"][0]["requests"], 1);
    assert_eq!(v["total_weight"], 2);
    assert_eq!(v["start_ms"], 1_704_067_200_000_i64);

    let out = kline_etl(
        cwd.path(),
        &[
            "plan",
            daily.to_str().unwrap(),
            "--from",
            "2024-01-01T00:00",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`2024-01-01T00:00Z`"), "{stderr}");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let cwd = tempfile::tempdir().unwrap();
    let out = kline_etl(cwd.path(), &["run", "x.yaml", "--concurrency", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = kline_etl(cwd.path(), &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = kline_etl(cwd.path(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["run", "validate", "plan", "simulate"] {
        assert!(help.contains(sub), "{help}");
    }
}

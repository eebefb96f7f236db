//! Unit tests of the Delta table writer: staging, commits, lost versions, conflicts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::log::{self, LogStore};
use super::protocol::Action;
use super::*;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "open_time",
            DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("open", DataType::Float64, false),
    ]))
}

/// The unversioned path of a partition of `symbol` and its versioned file `tag`.
fn part(table: &Path, symbol: &str, tag: &str) -> (PathBuf, PathBuf) {
    let p = table.join(format!(
        "market=spot/symbol={symbol}/year=2024/1h-2024.parquet"
    ));
    let v = crate::layout::versioned_file(&p, &format!("{tag:0>16}"));
    (p, v)
}

fn stage(t: &Table, symbol: &str, tag: &str) {
    let (p, v) = part(t.dir(), symbol, tag);
    t.stage(&p, &v, 100, &schema(), stats_json(3, None))
        .unwrap();
}

async fn commit(t: &Table) -> Result<Option<Committed>, LoadError> {
    t.commit(LogStore::Local(t.dir()), "WRITE").await
}

fn commit_actions(table: &Path, v: u64) -> Vec<Action> {
    let text = std::fs::read_to_string(table.join(LOG_DIR).join(log::commit_name(v))).unwrap();
    log::parse_commit(&text, "test").unwrap()
}

#[tokio::test]
async fn two_writers_creating_one_table_at_once_both_commit_once() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Table::open(dir.path(), "klines").unwrap(),
        Table::open(dir.path(), "klines").unwrap(),
    );
    stage(&a, "BTCUSDT", "a");
    stage(&b, "ETHUSDT", "b");
    let ca = commit(&a).await.unwrap().unwrap();
    assert_eq!((ca.version, ca.added, ca.retries), (0, 1, 0));
    // B lost version 0 to A's creation: it re-reads it and commits version 1, without a second
    // protocol or metadata.
    let cb = commit(&b).await.unwrap().unwrap();
    assert_eq!((cb.version, cb.added, cb.removed, cb.retries), (1, 1, 0, 1));
    let v1 = commit_actions(dir.path(), 1);
    assert!(
        !v1.iter()
            .any(|a| matches!(a, Action::Metadata(_) | Action::Protocol(_)))
    );
    let snap = log::read_snapshot(dir.path(), None).unwrap();
    assert_eq!(snap.files.len(), 2);
    let live = live_files(dir.path()).unwrap().unwrap();
    assert!(live.contains(&part(dir.path(), "ETHUSDT", "b").1));
}

#[tokio::test]
async fn a_replaced_partition_is_a_remove_and_an_add_and_nothing_staged_is_no_version() {
    let dir = tempfile::tempdir().unwrap();
    let t = Table::open(dir.path(), "klines").unwrap();
    stage(&t, "BTCUSDT", "1");
    commit(&t).await.unwrap().unwrap();
    assert_eq!(commit(&t).await.unwrap(), None, "nothing staged: no commit");
    // The same partition twice in one run: one remove (of the committed file), one add (the
    // last), never a remove of the file that was never committed.
    stage(&t, "BTCUSDT", "2");
    assert_eq!(
        t.current_file(&part(dir.path(), "BTCUSDT", "").0),
        Some(part(dir.path(), "BTCUSDT", "2").1)
    );
    stage(&t, "BTCUSDT", "3");
    let c = commit(&t).await.unwrap().unwrap();
    assert_eq!((c.version, c.added, c.removed), (1, 1, 1));
    let removed: Vec<String> = commit_actions(dir.path(), 1)
        .into_iter()
        .filter_map(|a| match a {
            Action::Remove(r) => Some(r.path),
            _ => None,
        })
        .collect();
    assert_eq!(
        removed,
        ["market=spot/symbol=BTCUSDT/year=2024/1h-2024.0000000000000001.parquet"]
    );
    // A reader of version 0 still sees the first file (time travel).
    let v0 = log::read_snapshot(dir.path(), Some(0)).unwrap();
    assert!(
        v0.files
            .keys()
            .all(|p| p.ends_with("0000000000000001.parquet"))
    );
}

#[tokio::test]
async fn two_writers_of_one_partition_conflict_and_the_loser_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = Table::open(dir.path(), "klines").unwrap();
    stage(&t, "BTCUSDT", "1");
    commit(&t).await.unwrap();
    let (a, b) = (
        Table::open(dir.path(), "klines").unwrap(),
        Table::open(dir.path(), "klines").unwrap(),
    );
    stage(&a, "BTCUSDT", "a");
    stage(&b, "BTCUSDT", "b");
    stage(&b, "ETHUSDT", "b");
    commit(&a).await.unwrap().unwrap();
    let e = commit(&b).await.unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::ExitCode::Resumable);
    let e = e.to_string();
    assert!(e.contains("symbol=BTCUSDT") && e.contains("rerun"), "{e}");
    assert_eq!(log::versions(&dir.path().join(LOG_DIR)).unwrap(), [0, 1]);
}

#[tokio::test]
async fn a_hive_dataset_becomes_a_table_with_its_files_in_version_0() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = part(dir.path(), "BTCUSDT", "");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let batch = arrow_array::RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(arrow_array::TimestampMillisecondArray::from(vec![0, 1]).with_timezone("UTC")),
            Arc::new(arrow_array::Float64Array::from(vec![1.0, 2.0])),
        ],
    )
    .unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(Vec::new(), schema(), None).unwrap();
    writer.write(&batch).unwrap();
    let bytes = writer.into_inner().unwrap();
    std::fs::write(&file, &bytes).unwrap();
    // Another writer's uncommitted table file (a versioned name) is not part of the base.
    let (_, other) = part(dir.path(), "ETHUSDT", "e");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::write(&other, &bytes).unwrap();
    let table = Table::open(dir.path(), "klines").unwrap();
    assert_eq!(
        table.current_file(&file),
        Some(file.clone()),
        "the hive file is the partition's"
    );
    let c = commit(&table).await.unwrap().unwrap();
    assert_eq!((c.version, c.added), (0, 1));
    let adds: Vec<_> = commit_actions(dir.path(), 0)
        .into_iter()
        .filter_map(|a| match a {
            Action::Add(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(
        adds[0].path,
        "market=spot/symbol=BTCUSDT/year=2024/1h-2024.parquet"
    );
    assert_eq!(adds[0].partition_values["year"].as_deref(), Some("2024"));
    assert_eq!(adds[0].stats.as_deref(), Some(r#"{"numRecords":2}"#));
}

#[tokio::test]
async fn tables_kline_etl_cannot_write_or_read_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let t = Table::open(dir.path(), "klines").unwrap();
    stage(&t, "BTCUSDT", "1");
    commit(&t).await.unwrap();
    // delta.appendOnly: a replacement is refused, naming the property.
    let text = std::fs::read_to_string(dir.path().join(LOG_DIR).join(log::commit_name(0)))
        .unwrap()
        .replace(
            r#""configuration":{}"#,
            r#""configuration":{"delta.appendOnly":"true"}"#,
        );
    std::fs::write(dir.path().join(LOG_DIR).join(log::commit_name(0)), text).unwrap();
    let t = Table::open(dir.path(), "klines").unwrap();
    stage(&t, "BTCUSDT", "2");
    let e = commit(&t).await.unwrap_err().to_string();
    assert!(e.contains("delta.appendOnly"), "{e}");
    // A partition layout other than the table's.
    let t = Table::open(dir.path(), "klines").unwrap();
    let p = dir.path().join("market=spot/year=2024/x.parquet");
    t.stage(&p, &p, 1, &schema(), stats_json(1, None)).unwrap();
    let e = commit(&t).await.unwrap_err().to_string();
    assert!(e.contains("partitioned by"), "{e}");
    // A compacted table: refused, naming the foreign file.
    let v1 = dir.path().join(LOG_DIR).join(log::commit_name(1));
    std::fs::write(
        &v1,
        r#"{"add":{"path":"market=spot/symbol=BTCUSDT/year=2024/part-00000-x.c000.snappy.parquet","partitionValues":{},"size":1,"modificationTime":0,"dataChange":true}}"#,
    )
    .unwrap();
    let e = Table::open(dir.path(), "klines").unwrap_err().to_string();
    assert!(e.contains("part-00000") && e.contains("OPTIMIZE"), "{e}");
    assert!(live_files(dir.path()).is_err());
    // A table needing reader features (deletion vectors): not even read.
    std::fs::write(
        dir.path().join(LOG_DIR).join(log::commit_name(1)),
        r#"{"protocol":{"minReaderVersion":3,"minWriterVersion":7}}"#,
    )
    .unwrap();
    let e = Table::open(dir.path(), "klines").unwrap_err().to_string();
    assert!(e.contains("reader version 3"), "{e}");
    assert!(live_files(dir.path()).is_err());
}

#[test]
fn canonical_paths_drop_the_version_tag_and_decode() {
    assert_eq!(
        canonical("market=spot/symbol=BTCUSDT/year=2024/1h-2024.0123456789abcdef.parquet"),
        "market=spot/symbol=BTCUSDT/year=2024/1h-2024.parquet"
    );
    assert_eq!(canonical("a%3Db/x.parquet"), "a=b/x.parquet");
    assert_eq!(
        partition_values("market=spot/date=2024-01-05/x.parquet"),
        [
            ("market".to_owned(), "spot".to_owned()),
            ("date".to_owned(), "2024-01-05".to_owned())
        ]
    );
    let id = uuid_v4();
    assert_eq!((id.len(), &id[14..15]), (36, "4"));
}

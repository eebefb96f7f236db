//! Transform + load end to end on real Binance fixtures: pages -> Parquet -> read back, partition
//! boundaries, merge, rerun byte-identity, crash safety, refusal of bad existing files, and the
//! Python readers (pyarrow, pandas, polars, DuckDB).

// Short names (t = task, o = options, w = writer) keep the many small scenarios readable.
#![allow(clippy::many_single_char_names)]

use std::path::{Path, PathBuf};

use arrow::datatypes::DataType;
use kline_etl::config::{
    Compression, OnViolation, PartitionSpec, PriceType, TimeUnit, TransformOptions,
};
use kline_etl::exit::ExitCode;
use kline_etl::interval::{DAY_MS, Interval};
use kline_etl::load::{
    self, DatasetWriter, Fault, LoadError, PartitionKey, Period, TaskKey, TaskSink, WriteOptions,
};
use kline_etl::market::Market;
use kline_etl::transform::parse::parse_decimal_str;
use kline_etl::transform::quality::Check;
use kline_etl::transform::{Column, KlineContext, KlineRows, parse_klines};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/real")
        .join(rel)
}

/// The five intabyu BTCUSDT 1h spot months (3,623 rows, with the 2023-03-24 outage).
pub(crate) fn intabyu_lines() -> Vec<Vec<String>> {
    (1..=5)
        .flat_map(|m| {
            let text = std::fs::read_to_string(fixture(&format!(
                "intabyu-interview-at/BTCUSDT-1h-2023-0{m}.csv"
            )))
            .unwrap();
            text.lines()
                .filter(|l| !l.starts_with("open_time"))
                .map(|l| l.split(',').map(str::to_owned).collect())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn csv_lines(rel: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(fixture(rel))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("open_time"))
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

/// A `/klines` page body from CSV fields, with the API's JSON types.
fn page(lines: &[Vec<String>]) -> String {
    let rows: Vec<String> = lines
        .iter()
        .map(|f| {
            format!(
                r#"[{},"{}","{}","{}","{}","{}",{},"{}",{},"{}","{}","{}"]"#,
                f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11]
            )
        })
        .collect();
    format!("[{}]", rows.join(","))
}

/// Expected rows built independently of the parser (std `str::parse` / exact decimal).
fn expected(lines: &[Vec<String>], prices: PriceType) -> KlineRows {
    let mut r = KlineRows::empty(prices);
    let col = |i: usize| -> Column {
        match prices {
            PriceType::Float64 => {
                Column::Float64(lines.iter().map(|f| f[i].parse().unwrap()).collect())
            }
            PriceType::Decimal => Column::Decimal(
                lines
                    .iter()
                    .map(|f| parse_decimal_str(&f[i]).unwrap())
                    .collect(),
            ),
        }
    };
    r.open_time = lines.iter().map(|f| f[0].parse().unwrap()).collect();
    r.close_time = lines.iter().map(|f| f[6].parse().unwrap()).collect();
    r.open = col(1);
    r.high = col(2);
    r.low = col(3);
    r.close = col(4);
    r.volume = col(5);
    r.quote_volume = col(7);
    r.taker_buy_base_volume = col(9);
    r.taker_buy_quote_volume = col(10);
    r.trades = lines.iter().map(|f| f[8].parse().unwrap()).collect();
    r
}

/// JSON fixture rows as CSV-like string fields (via serde_json, independent of our scanner).
fn json_lines(rel: &str) -> Vec<Vec<String>> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture(rel)).unwrap()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| match x {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

pub(crate) fn opts(prices: PriceType, time_unit: TimeUnit) -> WriteOptions {
    WriteOptions {
        pipeline: "test-pipeline".to_owned(),
        source: "simulator".to_owned(),
        transform: TransformOptions {
            prices,
            time_unit,
            include_forming: false,
            on_violation: OnViolation::Report,
        },
        compression: Compression::Zstd(3),
        row_group_rows: 1000,
        partition: PartitionSpec::Auto,
    }
}

pub(crate) fn task(symbol: &str, interval: Interval) -> TaskKey {
    TaskKey {
        market: Market::Spot,
        symbol: symbol.parse().unwrap(),
        interval,
    }
}

fn parse(body: &str, task: &TaskKey, o: &WriteOptions) -> KlineRows {
    let ctx = KlineContext {
        market: task.market,
        symbol: &task.symbol,
        interval: task.interval,
        options: &o.transform,
    };
    parse_klines(body.as_bytes(), &ctx).unwrap()
}

/// Feed `lines` in pages of `page_rows` through a TaskSink; return the outcome.
pub(crate) fn load_pages(
    root: &Path,
    o: &WriteOptions,
    task: &TaskKey,
    lines: &[Vec<String>],
    page_rows: usize,
) -> load::TaskOutcome {
    let mut sink = TaskSink::new(DatasetWriter::new(root, o.clone()), task.clone());
    for chunk in lines.chunks(page_rows) {
        sink.push(parse(&page(chunk), task, o)).unwrap();
    }
    sink.finish().unwrap()
}

/// All partition files of a task, in path (= time) order, read back and concatenated.
fn read_task(root: &Path, task: &TaskKey, prices: PriceType) -> KlineRows {
    let files = kline_etl::load::scan::series_files(root, task).unwrap();
    let mut all = KlineRows::empty(prices);
    for f in files {
        all.append(load::read_partition(&f).unwrap());
    }
    all
}

#[test]
fn fixture_pages_round_trip_exactly_in_every_mode() {
    let sets: Vec<(TaskKey, Vec<Vec<String>>)> = vec![
        (task("BTCUSDT", Interval::H1), intabyu_lines()),
        (
            task("ADAUSDT", Interval::M1),
            json_lines("sinan-aydogan-binance-kline-data-analiz/klines.json"),
        ),
        (
            task("ETHUSDT", Interval::H1),
            json_lines("vbalabin-trtrd/klines.json"),
        ),
        (task("ADABTC", Interval::M1), {
            let mut l = csv_lines("nautilus_trader/ADABTC-1m-2021-11-27.csv");
            l.extend(csv_lines("nautilus_trader/ADABTC-1m-2021-11-28.csv"));
            l
        }),
    ];
    for prices in [PriceType::Float64, PriceType::Decimal] {
        for unit in [TimeUnit::Millisecond, TimeUnit::Microsecond] {
            let dir = tempfile::tempdir().unwrap();
            let o = opts(prices, unit);
            for (t, lines) in &sets {
                let out = load_pages(dir.path(), &o, t, lines, 1000);
                let total: u64 = out.partitions.iter().map(|p| p.rows_written).sum();
                assert_eq!(total, lines.len() as u64);
                let back = read_task(dir.path(), t, prices);
                assert_eq!(back, expected(lines, prices), "{t:?} {prices:?} {unit:?}");
            }
        }
    }
    // The pretty-printed python-binance file parses as-is, too.
    let t = task("ETHUSDT", Interval::H1);
    let o = opts(PriceType::Decimal, TimeUnit::Millisecond);
    let body = std::fs::read_to_string(fixture("vbalabin-trtrd/klines.json")).unwrap();
    assert_eq!(
        parse(&body, &t, &o),
        expected(
            &json_lines("vbalabin-trtrd/klines.json"),
            PriceType::Decimal
        )
    );
}

#[test]
fn microsecond_pages_give_the_same_rows() {
    let t = task("BTCUSDT", Interval::H1);
    let o = opts(PriceType::Decimal, TimeUnit::Millisecond);
    let lines = intabyu_lines();
    let mut us = lines.clone();
    for f in &mut us {
        f[0] = format!("{}000", f[0]);
        f[6] = format!("{}999", f[6]);
    }
    assert_eq!(parse(&page(&us), &t, &o), parse(&page(&lines), &t, &o));
}

#[test]
fn a_late_chunk_for_an_earlier_partition_is_merged() {
    let t = task("ADABTC", Interval::M1);
    let o = opts(PriceType::Float64, TimeUnit::Millisecond);
    let nov = synth(
        Interval::M1,
        &[ms("2024-11-30T23:58:00Z"), ms("2024-11-30T23:59:00Z")],
    );
    let dec = synth(
        Interval::M1,
        &[ms("2024-12-01T00:00:00Z"), ms("2024-12-01T00:01:00Z")],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut sink = TaskSink::new(DatasetWriter::new(dir.path(), o.clone()), t.clone());
    // One page across the month boundary, then a late page for November again.
    sink.push(parse(&page(&[nov[1].clone(), dec[0].clone()]), &t, &o))
        .unwrap();
    sink.push(parse(&page(&dec[1..]), &t, &o)).unwrap();
    sink.push(parse(&page(&nov[..1]), &t, &o)).unwrap();
    let out = sink.finish().unwrap();
    let written: Vec<(String, u64)> = out
        .partitions
        .iter()
        .map(|p| {
            let name = p.path.file_name().unwrap();
            (name.to_string_lossy().into_owned(), p.rows_written)
        })
        .collect();
    assert_eq!(
        written,
        [
            ("1m-2024-11.parquet".to_owned(), 1),
            ("1m-2024-12.parquet".to_owned(), 2),
            ("1m-2024-11.parquet".to_owned(), 2),
        ]
    );
    let mut all = nov.clone();
    all.extend(dec);
    assert_eq!(
        read_task(dir.path(), &t, PriceType::Float64),
        expected(&all, PriceType::Float64)
    );
}

#[test]
fn decimal_mode_keeps_every_digit() {
    let t = task("BTCUSDT", Interval::H1);
    let o = opts(PriceType::Decimal, TimeUnit::Millisecond);
    let mut lines = intabyu_lines()[..2].to_vec();
    lines[0][7] = "2844286547.50404090".to_owned();
    let dir = tempfile::tempdir().unwrap();
    load_pages(dir.path(), &o, &t, &lines, 1000);
    let file = dir
        .path()
        .join(t.symbol_dir())
        .join("year=2023/1h-2023.parquet");
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batch = reader.into_iter().next().unwrap().unwrap();
    let qv = batch
        .column_by_name("quote_volume")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::Decimal128Array>()
        .unwrap();
    assert_eq!(qv.value_as_string(0), "2844286547.50404090");
    assert_eq!(qv.value(0), 284_428_654_750_404_090);
}

#[test]
fn files_carry_the_schema_sorting_and_metadata() {
    let t = task("BTCUSDT", Interval::H1);
    let o = opts(PriceType::Float64, TimeUnit::Microsecond);
    let dir = tempfile::tempdir().unwrap();
    load_pages(dir.path(), &o, &t, &intabyu_lines(), 1000);
    let file = dir
        .path()
        .join("klines/market=spot/symbol=BTCUSDT/year=2023/1h-2023.parquet");
    let b = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap()).unwrap();
    let meta = b.metadata().clone();
    let kv: std::collections::BTreeMap<String, String> = meta
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .filter(|k| k.key.starts_with("kline_etl."))
        .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
        .collect();
    insta::assert_debug_snapshot!(kv, @r#"
    {
        "kline_etl.interval": "1h",
        "kline_etl.market": "spot",
        "kline_etl.pipeline": "test-pipeline",
        "kline_etl.prices": "float64",
        "kline_etl.schema_version": "2",
        "kline_etl.source": "simulator",
        "kline_etl.symbol": "BTCUSDT",
        "kline_etl.time_unit": "us",
        "kline_etl.version": "0.1.0",
    }
    "#);
    assert_eq!(meta.num_row_groups(), 4, "row_group_rows = 1000");
    let rg = meta.row_group(0);
    let sc = rg.sorting_columns().unwrap();
    assert_eq!(sc[0].column_idx, 0);
    assert!(!sc[0].descending);
    assert!(rg.column(0).statistics().is_some());
    assert!(
        rg.column(0).offset_index_offset().is_some(),
        "page index written"
    );
    let schema = b.schema().clone();
    let types: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    insta::assert_debug_snapshot!(types, @r#"
    [
        "open_time: Timestamp(µs, \"UTC\")",
        "close_time: Timestamp(µs, \"UTC\")",
        "open: Float64",
        "high: Float64",
        "low: Float64",
        "close: Float64",
        "volume: Float64",
        "quote_volume: Float64",
        "taker_buy_base_volume: Float64",
        "taker_buy_quote_volume: Float64",
        "trades: Int64",
        "interval: Utf8",
    ]
    "#);
    let batch = b.build().unwrap().next().unwrap().unwrap();
    let close = batch
        .column_by_name("close_time")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(close.value(0), 1_672_534_799_999_999);
    // The newest open time comes from µs statistics, converted back to ms.
    assert_eq!(last(dir.path(), &t), Some(1_685_574_000_000));
    assert_eq!(
        batch.column_by_name("trades").unwrap().data_type(),
        &DataType::Int64
    );
}

#[test]
fn the_outage_candle_is_counted_not_failed() {
    let t = task("BTCUSDT", Interval::H1);
    let mut o = opts(PriceType::Decimal, TimeUnit::Millisecond);
    o.transform.on_violation = OnViolation::Fail;
    let dir = tempfile::tempdir().unwrap();
    let out = load_pages(dir.path(), &o, &t, &intabyu_lines(), 1000);
    assert!(out.quality.is_clean(), "{}", out.quality.summary());
    assert_eq!(out.quality.rows, 3623);
    assert_eq!(out.quality.count(Check::EarlyClose), 1);
    assert_eq!(
        out.quality.examples[&Check::EarlyClose],
        vec![1_679_659_200_000]
    );
    assert_eq!(last(dir.path(), &t), Some(1_685_574_000_000)); // 2023-05-31T23:00Z
}

fn last(root: &Path, t: &TaskKey) -> Option<i64> {
    load::last_open_time(root, t.market, &t.symbol, t.interval).unwrap()
}

#[test]
fn violations_fail_the_partition_when_asked() {
    let t = task("BTCUSDT", Interval::H1);
    let mut lines = intabyu_lines()[..10].to_vec();
    lines[3][2] = "1.00000000".to_owned(); // high below open
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(PriceType::Float64, TimeUnit::Millisecond);
    o.transform.on_violation = OnViolation::Fail;
    let mut sink = TaskSink::new(DatasetWriter::new(dir.path(), o.clone()), t.clone());
    sink.push(parse(&page(&lines), &t, &o)).unwrap();
    let e = sink.finish().unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::TasksFailed);
    assert!(
        e.to_string()
            .contains("high_too_low 1 (2023-01-01T03:00:00.000Z)"),
        "{e}"
    );
    assert!(!dir.path().join("klines").exists(), "nothing written");
    // Report mode keeps and reports them.
    o.transform.on_violation = OnViolation::Report;
    let out = load_pages(dir.path(), &o, &t, &lines, 1000);
    assert_eq!(out.quality.count(Check::HighTooLow), 1);
    assert_eq!(out.partitions[0].rows_written, 10);
}

fn ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

/// Synthetic rows on `interval`'s grid at the given opens.
fn synth(interval: Interval, opens: &[i64]) -> Vec<Vec<String>> {
    opens
        .iter()
        .map(|&t| {
            let c = interval.close_time(t);
            vec![
                t.to_string(),
                "1.5".into(),
                "2".into(),
                "1".into(),
                "1.75".into(),
                "10".into(),
                c.to_string(),
                "15".into(),
                "3".into(),
                "4".into(),
                "6".into(),
                "0".into(),
            ]
        })
        .collect()
}

/// Every file under `root` relative to it, sorted.
pub(crate) fn files_under(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = crate::harness::files(root)
        .iter()
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn partition_boundaries_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    // 1w candles straddling a month end and a year end, partitioned by month.
    let mut o = opts(PriceType::Float64, TimeUnit::Millisecond);
    o.partition = PartitionSpec::Month;
    let w = task("BTCUSDT", Interval::W1);
    let opens = [ms("2024-01-29T00:00:00Z"), ms("2024-12-30T00:00:00Z")];
    load_pages(dir.path(), &o, &w, &synth(Interval::W1, &opens), 1000);
    // 1M candles (auto: one file), 1s candles around the leap day (auto: per day).
    o.partition = PartitionSpec::Auto;
    let mo = task("BTCUSDT", Interval::Mo1);
    let jan = ms("2023-11-01T00:00:00Z");
    let months: Vec<i64> = (0..5).map(|n| Interval::Mo1.add(jan, n)).collect();
    load_pages(dir.path(), &o, &mo, &synth(Interval::Mo1, &months), 2);
    let s = task("BTCUSDT", Interval::S1);
    let leap = ms("2024-02-29T00:00:00Z");
    let secs = [leap - 1000, leap, leap + DAY_MS - 1000, leap + DAY_MS];
    load_pages(dir.path(), &o, &s, &synth(Interval::S1, &secs), 1);
    insta::assert_debug_snapshot!(files_under(dir.path()), @r#"
    [
        "klines/market=spot/symbol=BTCUSDT/year=2023/1M-2023.parquet",
        "klines/market=spot/symbol=BTCUSDT/year=2024/1M-2024.parquet",
        "klines/market=spot/symbol=BTCUSDT/year=2024/1s-2024-02-28.parquet",
        "klines/market=spot/symbol=BTCUSDT/year=2024/1s-2024-02-29.parquet",
        "klines/market=spot/symbol=BTCUSDT/year=2024/1s-2024-03-01.parquet",
        "klines/market=spot/symbol=BTCUSDT/year=2024/1w-2024-01.parquet",
        "klines/market=spot/symbol=BTCUSDT/year=2024/1w-2024-12.parquet",
    ]
    "#);
    assert_eq!(read_task(dir.path(), &mo, PriceType::Float64).len(), 5);
    assert_eq!(
        read_task(dir.path(), &s, PriceType::Float64).open_time,
        secs
    );
    assert_eq!(last(dir.path(), &w), Some(opens[1]));
    assert_eq!(last(dir.path(), &s), Some(secs[3]));
    assert_eq!(last(dir.path(), &task("ETHUSDT", Interval::S1)), None);
}

#[test]
fn merge_overlapping_non_overlapping_and_conflicting() {
    let t = task("BTCUSDT", Interval::H1);
    let o = opts(PriceType::Decimal, TimeUnit::Millisecond);
    let lines = intabyu_lines();
    let dir = tempfile::tempdir().unwrap();
    let w = DatasetWriter::new(dir.path(), o.clone());
    let key = PartitionKey {
        task: t.clone(),
        period: Period::Year(2023),
    };
    // Non-overlapping: the first 1000, then 2000..3000.
    let a = w
        .write_partition(&key, parse(&page(&lines[..1000]), &t, &o))
        .unwrap();
    assert_eq!((a.rows_written, a.rows_new), (1000, 1000));
    let b = w
        .write_partition(&key, parse(&page(&lines[2000..3000]), &t, &o))
        .unwrap();
    assert_eq!(
        (b.rows_written, b.rows_new, b.rows_unchanged),
        (2000, 1000, 0)
    );
    // Overlapping: 500..3623 (500 already stored in the first block, 1000 in the second).
    let c = w
        .write_partition(&key, parse(&page(&lines[500..]), &t, &o))
        .unwrap();
    assert_eq!(
        (
            c.rows_written,
            c.rows_new,
            c.rows_unchanged,
            c.rows_replaced
        ),
        (3623, 1623, 1500, 0)
    );
    assert_eq!(
        load::read_partition(&c.path).unwrap(),
        expected(&lines, PriceType::Decimal)
    );
    // Conflicting: the same open time with a different close; the incoming row wins.
    let mut changed = lines[10..12].to_vec();
    changed[1][4] = "17000.00000000".to_owned();
    let d = w
        .write_partition(&key, parse(&page(&changed), &t, &o))
        .unwrap();
    assert_eq!((d.rows_replaced, d.rows_unchanged, d.rows_new), (1, 1, 0));
    assert_eq!(d.conflicts, vec![changed[1][0].parse::<i64>().unwrap()]);
    let back = load::read_partition(&d.path).unwrap();
    assert_eq!(back.close, {
        let mut e = expected(&lines, PriceType::Decimal).close;
        if let Column::Decimal(v) = &mut e {
            v[11] = 1_700_000_000_000;
        }
        e
    });
    // Rows outside the partition are refused.
    let e = w
        .write_partition(
            &PartitionKey {
                task: t.clone(),
                period: Period::Year(2022),
            },
            parse(&page(&lines[..1]), &t, &o),
        )
        .unwrap_err();
    assert!(matches!(e, LoadError::WrongPartition { .. }), "{e}");
}

#[test]
fn reruns_leave_byte_identical_files() {
    let t = task("BTCUSDT", Interval::M1);
    let lines = json_lines("sinan-aydogan-binance-kline-data-analiz/klines.json");
    for prices in [PriceType::Float64, PriceType::Decimal] {
        let o = opts(prices, TimeUnit::Millisecond);
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        load_pages(a.path(), &o, &t, &lines, 100);
        let first = snapshot(a.path());
        // Same pipeline again over the same range: nothing rewritten, same bytes.
        let again = load_pages(a.path(), &o, &t, &lines, 100);
        assert!(
            again
                .partitions
                .iter()
                .all(|p| !p.rewritten && p.rows_new == 0)
        );
        assert_eq!(snapshot(a.path()), first);
        // A fresh run in another directory, with other page sizes, writes the same bytes.
        load_pages(b.path(), &o, &t, &lines, 37);
        assert_eq!(snapshot(b.path()), first);
        // Written in two steps (a merge rewrite) still ends with the same bytes.
        let c = tempfile::tempdir().unwrap();
        load_pages(c.path(), &o, &t, &lines[..250], 100);
        load_pages(c.path(), &o, &t, &lines[200..], 100);
        assert_eq!(snapshot(c.path()), first);
    }
}

fn snapshot(root: &Path) -> Vec<(String, Vec<u8>)> {
    files_under(root)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(root.join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

#[test]
fn a_write_interrupted_before_rename_leaves_the_old_file() {
    let t = task("BTCUSDT", Interval::H1);
    let o = opts(PriceType::Float64, TimeUnit::Millisecond);
    let lines = intabyu_lines();
    let dir = tempfile::tempdir().unwrap();
    let mut w = DatasetWriter::new(dir.path(), o.clone());
    let key = PartitionKey {
        task: t.clone(),
        period: Period::Year(2023),
    };
    let first = w
        .write_partition(&key, parse(&page(&lines[..100]), &t, &o))
        .unwrap();
    let before = std::fs::read(&first.path).unwrap();
    w.inject_fault(Some(Fault::BeforeRename));
    let e = w
        .write_partition(&key, parse(&page(&lines[100..200]), &t, &o))
        .unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::Output);
    assert_eq!(
        std::fs::read(&first.path).unwrap(),
        before,
        "old file intact"
    );
    assert_eq!(load::read_partition(&first.path).unwrap().len(), 100);
    let listing = files_under(dir.path());
    assert_eq!(listing.len(), 2, "{listing:?}");
    assert!(
        listing.iter().any(|f| f.contains("/.1h-2023.parquet.tmp-")),
        "stale temp is dot-prefixed: {listing:?}"
    );
    // The next successful write completes the partition and removes the leftover.
    w.inject_fault(None);
    let ok = w
        .write_partition(&key, parse(&page(&lines[100..200]), &t, &o))
        .unwrap();
    assert_eq!(ok.rows_written, 200);
    assert_eq!(files_under(dir.path()).len(), 1);
}

#[test]
fn bad_existing_files_are_refused_and_left_untouched() {
    let t = task("BTCUSDT", Interval::H1);
    let lines = intabyu_lines();
    let key = PartitionKey {
        task: t.clone(),
        period: Period::Year(2023),
    };
    let o = opts(PriceType::Float64, TimeUnit::Millisecond);
    let rows = || parse(&page(&lines[..50]), &t, &o);
    let setup = |bytes: &[u8]| {
        let dir = tempfile::tempdir().unwrap();
        let w = DatasetWriter::new(dir.path(), o.clone());
        let path = w.path_of(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        (dir, w, path)
    };
    // A good file to derive bad ones from.
    let good = {
        let dir = tempfile::tempdir().unwrap();
        let w = DatasetWriter::new(dir.path(), o.clone());
        std::fs::read(w.write_partition(&key, rows()).unwrap().path).unwrap()
    };
    let foreign = {
        let batch = rows()
            .to_record_batch(&KlineContext {
                market: Market::Spot,
                symbol: &t.symbol,
                interval: t.interval,
                options: &o.transform,
            })
            .unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(Vec::new(), batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.into_inner().unwrap()
    };
    let newer = {
        let needle = b"kline_etl.schema_version";
        let pos = good
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap();
        let mut b = good.clone();
        // The value follows the key in the thrift footer: "2" -> "9".
        let vpos = pos
            + needle.len()
            + b[pos + needle.len()..]
                .iter()
                .position(|&c| c == b'2')
                .unwrap();
        b[vpos] = b'9';
        b
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "not a readable Parquet file",
        ),
        (
            "garbage",
            b"not parquet at all".to_vec(),
            "not a readable Parquet file",
        ),
        ("foreign", foreign, "not a kline-etl partition"),
        ("newer", newer, "newer than this kline-etl"),
    ];
    for (name, bytes, msg) in cases {
        let (_dir, w, path) = setup(&bytes);
        let e = w.write_partition(&key, rows()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(msg), "{name}: {text}");
        assert!(text.contains(&path.display().to_string()), "{name}: {text}");
        assert_eq!(e.exit_code(), ExitCode::Output, "{name}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{name}: not overwritten"
        );
    }
    // A partition written with float64 prices is not silently mixed with decimal rows.
    let (float_dir, _, path) = setup(&good);
    let od = opts(PriceType::Decimal, TimeUnit::Millisecond);
    let w = DatasetWriter::new(float_dir.path(), od.clone());
    let e = w
        .write_partition(&key, parse(&page(&lines[..50]), &t, &od))
        .unwrap_err();
    assert!(e.to_string().contains("holds prices `float64`"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), good);
}

/// Every file under `root` (relative path → bytes), dot files included.
fn tree(root: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    crate::harness::files(root)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p.strip_prefix(root).unwrap().to_owned(), bytes)
        })
        .collect()
}

#[test]
fn parallel_encoders_write_exactly_what_one_writer_writes() {
    // Three tasks, pages interleaved as a run receives them: two 1h series over five months
    // (monthly partitions), and a second window of the first series whose pages land in
    // partitions the first window writes too (both must see each other's rows), plus a
    // partition already on disk that the merge must read.
    use kline_etl::run::loader::Loader;
    let lines = intabyu_lines();
    for prices in [PriceType::Float64, PriceType::Decimal] {
        let o = opts(prices, TimeUnit::Millisecond);
        let btc = task("BTCUSDT", Interval::H1);
        let eth = task("ETHUSDT", Interval::H1);
        let keys = vec![btc.clone(), eth.clone(), btc.clone()];
        let feed: Vec<(usize, KlineRows)> = {
            let a: Vec<_> = lines[..2500].chunks(300).map(|c| (0, c)).collect();
            let b: Vec<_> = lines.chunks(1000).map(|c| (1, c)).collect();
            let c: Vec<_> = lines[2000..].chunks(250).map(|c| (2, c)).collect();
            let mut all = Vec::new();
            for i in 0..a.len().max(b.len()).max(c.len()) {
                for side in [&a, &b, &c] {
                    if let Some(&(t, chunk)) = side.get(i) {
                        all.push((t, parse(&page(chunk), &keys[t], &o)));
                    }
                }
            }
            all
        };
        let mut results = Vec::new();
        for workers in [0, 1, 3] {
            let dir = tempfile::tempdir().unwrap();
            // Stored before the run: the first month of ETHUSDT, from other rows.
            load_pages(dir.path(), &o, &eth, &lines[..400], 400);
            let mut loader = Loader::new(
                DatasetWriter::new(dir.path(), o.clone()),
                keys.clone(),
                workers,
            );
            for (t, rows) in &feed {
                loader.push(*t, rows.clone());
            }
            loader.task_done(1);
            let mut outcomes: Vec<_> = loader
                .finish()
                .into_iter()
                .map(|(t, r)| (t, r.unwrap()))
                .collect();
            outcomes.sort_by_key(|(t, _)| *t);
            let outcomes: Vec<_> = outcomes
                .into_iter()
                .map(|(t, o)| {
                    let parts: Vec<_> = o
                        .partitions
                        .iter()
                        .map(|p| {
                            (
                                p.path.strip_prefix(dir.path()).unwrap().to_owned(),
                                p.rows_written,
                                p.rows_new,
                                p.rows_replaced,
                                p.bytes,
                                p.rewritten,
                            )
                        })
                        .collect();
                    (t, parts, o.quality)
                })
                .collect();
            results.push((workers, tree(dir.path()), outcomes, dir));
        }
        let (_, files, outcomes, dir) = &results[0];
        // 1h klines are partitioned by year: one partition per series here (ETHUSDT's merged
        // with the rows stored before the run), written by whichever encoder takes it.
        assert_eq!(files.len(), 2, "{:?}", files.keys().collect::<Vec<_>>());
        for (workers, f, out, _) in &results[1..] {
            assert_eq!(
                f.keys().collect::<Vec<_>>(),
                files.keys().collect::<Vec<_>>(),
                "{workers} workers"
            );
            assert!(f == files, "{workers} workers: different bytes");
            assert_eq!(out, outcomes, "{workers} workers");
        }
        // The overlapping window merged with the first one: every row of the series is there.
        assert_eq!(read_task(dir.path(), &btc, prices).len(), lines.len());
    }
}

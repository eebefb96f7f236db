//! The Delta Lake transaction log's actions and the table schema, as the protocol
//! specification defines them (`PROTOCOL.md` of delta-io/delta, "Actions" and "Schema
//! Serialization Format"). Pure data and conversions: reading and writing the log is in
//! [`super::log`].
//!
//! kline-etl writes the smallest protocol every Delta reader understands: reader version 1,
//! writer version 2, no table features, no column mapping, no deletion vectors. A table is
//! `protocol` + `metaData` in version 0 and `add` / `remove` actions after that, each commit
//! with a `commitInfo`. Tables it did not create are read as long as they need no reader
//! feature beyond version 1 and written as long as they need no writer feature beyond
//! version 2 (see [`Protocol::check`]).

use std::collections::BTreeMap;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The `protocol` action kline-etl writes: reader version 1, writer version 2.
pub const PROTOCOL: Protocol = Protocol {
    min_reader_version: 1,
    min_writer_version: 2,
};

/// `protocol`: the reader and writer versions a client must implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Protocol {
    /// Oldest reader version that can read the table.
    pub min_reader_version: i32,
    /// Oldest writer version that can write it.
    pub min_writer_version: i32,
}

impl Protocol {
    /// Whether kline-etl can read (`write == false`) or write this table, and if not why:
    /// reader version 1 and writer version 2 at most (no table features).
    pub fn check(self, write: bool) -> Result<(), String> {
        if self.min_reader_version > 1 {
            return Err(format!(
                "the table needs Delta reader version {} (table features such as deletion vectors or column mapping); kline-etl reads version 1",
                self.min_reader_version
            ));
        }
        if write && self.min_writer_version > 2 {
            return Err(format!(
                "the table needs Delta writer version {} (table features such as constraints, generated columns or change data feed); kline-etl writes version 2",
                self.min_writer_version
            ));
        }
        Ok(())
    }
}

/// `metaData.format`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Format {
    /// Always `parquet`.
    pub provider: String,
    /// Provider options (none).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// `metaData`: the table's identity, schema and partition columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// A unique id of the table (a UUID).
    pub id: String,
    /// The table's name (the dataset's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The data files' format.
    pub format: Format,
    /// The schema, serialised as the protocol's JSON schema (see [`schema_string`]).
    pub schema_string: String,
    /// The partition columns, in order.
    pub partition_columns: Vec<String>,
    /// Table properties (`delta.appendOnly`, ...).
    #[serde(default)]
    pub configuration: BTreeMap<String, String>,
    /// When the table was created (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<i64>,
}

impl Metadata {
    /// Whether `delta.appendOnly` forbids removing files.
    pub fn append_only(&self) -> bool {
        self.configuration
            .get("delta.appendOnly")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Whether a column carries `delta.invariants` (writer version 2's column checks, which
    /// kline-etl does not evaluate: such a table is not written).
    pub fn has_invariants(&self) -> bool {
        self.schema_string.contains("delta.invariants")
    }

    /// The schema's top-level fields: `(name, JSON type)`, in order.
    pub fn fields(&self) -> Result<Vec<(String, Value)>, String> {
        let v: Value = serde_json::from_str(&self.schema_string)
            .map_err(|e| format!("the table's schemaString is not JSON: {e}"))?;
        let fields = v
            .get("fields")
            .and_then(Value::as_array)
            .ok_or("the table's schemaString has no `fields`")?;
        Ok(fields
            .iter()
            .map(|f| {
                (
                    f.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    f.get("type").cloned().unwrap_or(Value::Null),
                )
            })
            .collect())
    }
}

/// `add`: a data file that is part of the table from this version on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Add {
    /// The file, relative to the table root, URI-encoded.
    pub path: String,
    /// The file's partition values (strings as the protocol serialises them).
    pub partition_values: BTreeMap<String, Option<String>>,
    /// Bytes.
    pub size: i64,
    /// When the file was written (ms since the epoch).
    pub modification_time: i64,
    /// Whether the file changes the table's data (always true here).
    pub data_change: bool,
    /// Per-file statistics, a JSON string (`numRecords`, `minValues`, `maxValues`,
    /// `nullCount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
}

/// `remove`: a data file that is no longer part of the table from this version on (it stays
/// on disk for time travel until a `VACUUM`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remove {
    /// The file, as its `add` spelled it.
    pub path: String,
    /// When it was removed (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<i64>,
    /// Whether removing it changes the table's data.
    pub data_change: bool,
    /// Whether `partitionValues` and `size` are present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_file_metadata: Option<bool>,
    /// The file's partition values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_values: Option<BTreeMap<String, Option<String>>>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

impl Remove {
    /// The `remove` of a file the table holds, at `now_ms`.
    pub fn of(add: &Add, now_ms: i64) -> Remove {
        Remove {
            path: add.path.clone(),
            deletion_timestamp: Some(now_ms),
            data_change: true,
            extended_file_metadata: Some(true),
            partition_values: Some(add.partition_values.clone()),
            size: Some(add.size),
        }
    }
}

/// One line of a commit file: the actions kline-etl reads or writes. Others (`txn`,
/// `domainMetadata`, `cdc`, ...) are kept as [`Action::Other`] and ignored.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `protocol`.
    Protocol(Protocol),
    /// `metaData`.
    Metadata(Metadata),
    /// `add`.
    Add(Add),
    /// `remove`.
    Remove(Remove),
    /// `commitInfo` (free-form).
    CommitInfo(Value),
    /// Any other action, by its name.
    Other(String),
}

impl Action {
    /// Parse one line of a commit file.
    pub fn parse(line: &str) -> Result<Action, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(map) = v else {
            return Err("not a JSON object".to_owned());
        };
        let Some((name, body)) = map.into_iter().next() else {
            return Err("an empty object".to_owned());
        };
        let bad = |e: serde_json::Error| format!("a `{name}` action that does not parse: {e}");
        Ok(match name.as_str() {
            "protocol" => Action::Protocol(serde_json::from_value(body).map_err(bad)?),
            "metaData" => Action::Metadata(serde_json::from_value(body).map_err(bad)?),
            "add" => Action::Add(serde_json::from_value(body).map_err(bad)?),
            "remove" => Action::Remove(serde_json::from_value(body).map_err(bad)?),
            "commitInfo" => Action::CommitInfo(body),
            _ => Action::Other(name),
        })
    }

    /// The action as one line of a commit file (no newline).
    pub fn to_line(&self) -> String {
        let v = match self {
            Action::Protocol(p) => json!({ "protocol": p }),
            Action::Metadata(m) => json!({ "metaData": m }),
            Action::Add(a) => json!({ "add": a }),
            Action::Remove(r) => json!({ "remove": r }),
            Action::CommitInfo(c) => json!({ "commitInfo": c }),
            Action::Other(name) => json!({ name: {} }),
        };
        v.to_string()
    }
}

/// A partition column's Delta type, from its hive key: `year` is an `integer`, `date` a
/// `date`, anything else (`market`, `symbol`, `contract_type`) a `string`.
pub fn partition_type(key: &str) -> &'static str {
    match key {
        crate::layout::YEAR => "integer",
        crate::layout::DATE => "date",
        _ => "string",
    }
}

/// The Delta type of an Arrow type, `None` for one the protocol has no type for.
pub fn delta_type(t: &DataType) -> Option<Value> {
    Some(match t {
        DataType::Boolean => json!("boolean"),
        DataType::Int8 => json!("byte"),
        DataType::Int16 => json!("short"),
        DataType::Int32 | DataType::UInt16 => json!("integer"),
        DataType::Int64 | DataType::UInt32 => json!("long"),
        DataType::Float32 => json!("float"),
        DataType::Float64 => json!("double"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => json!("string"),
        DataType::Binary | DataType::LargeBinary => json!("binary"),
        DataType::Date32 => json!("date"),
        // The protocol's `timestamp` is UTC (microseconds; readers convert a file's
        // millisecond column, as delta-rs and polars do).
        DataType::Timestamp(_, Some(_)) => json!("timestamp"),
        DataType::Decimal128(p, s) => json!(format!("decimal({p},{s})")),
        DataType::Dictionary(_, value) => delta_type(value)?,
        DataType::List(f) | DataType::LargeList(f) => json!({
            "type": "array",
            "elementType": delta_type(f.data_type())?,
            "containsNull": f.is_nullable(),
        }),
        DataType::Struct(fields) => struct_type(fields.iter().map(AsRef::as_ref))?,
        _ => return None,
    })
}

fn field_json(name: &str, t: &Value, nullable: bool) -> Value {
    json!({ "name": name, "type": t, "nullable": nullable, "metadata": {} })
}

fn struct_type<'a>(fields: impl Iterator<Item = &'a Field>) -> Option<Value> {
    let fields: Option<Vec<Value>> = fields
        .map(|f| {
            Some(field_json(
                f.name(),
                &delta_type(f.data_type())?,
                f.is_nullable(),
            ))
        })
        .collect();
    Some(json!({ "type": "struct", "fields": fields? }))
}

/// The table schema's JSON string: the data files' columns, then the partition columns
/// (nullable, as every Delta writer declares them).
pub fn schema_string(file: &Schema, partition_columns: &[String]) -> Result<String, String> {
    let mut fields = Vec::with_capacity(file.fields().len() + partition_columns.len());
    for f in file.fields() {
        let t = delta_type(f.data_type()).ok_or_else(|| {
            format!(
                "column `{}` has the type {} which Delta Lake has no type for",
                f.name(),
                f.data_type()
            )
        })?;
        fields.push(field_json(f.name(), &t, f.is_nullable()));
    }
    for key in partition_columns {
        fields.push(field_json(key, &json!(partition_type(key)), true));
    }
    Ok(json!({ "type": "struct", "fields": fields }).to_string())
}

/// An Arrow timestamp value as the statistics' ISO-8601 string (UTC, milliseconds).
pub fn stats_time(t: i64, unit: TimeUnit) -> String {
    let ms = match unit {
        TimeUnit::Second => t.saturating_mul(1000),
        TimeUnit::Millisecond => t,
        TimeUnit::Microsecond => t.div_euclid(1000),
        TimeUnit::Nanosecond => t.div_euclid(1_000_000),
    };
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_their_lines() {
        let add = Add {
            path: "market=spot/symbol=BTCUSDT/year=2024/1h-2024.0123456789abcdef.parquet".into(),
            partition_values: BTreeMap::from([
                ("market".into(), Some("spot".into())),
                ("year".into(), Some("2024".into())),
            ]),
            size: 1234,
            modification_time: 1_700_000_000_000,
            data_change: true,
            stats: Some(r#"{"numRecords":3}"#.into()),
        };
        for a in [
            Action::Protocol(PROTOCOL),
            Action::Add(add.clone()),
            Action::Remove(Remove::of(&add, 5)),
        ] {
            assert_eq!(Action::parse(&a.to_line()).unwrap(), a);
        }
        let line = Action::Add(add).to_line();
        assert!(line.starts_with(r#"{"add":{"#), "{line}");
        assert!(line.contains(r#""partitionValues":{"market":"spot","year":"2024"}"#));
        assert!(line.contains(r#""modificationTime":1700000000000"#));
        assert_eq!(
            Action::parse(r#"{"txn":{"appId":"x","version":3}}"#).unwrap(),
            Action::Other("txn".into())
        );
        assert!(Action::parse("{}").is_err());
        assert!(
            Action::parse(r#"{"add":{"path":1}}"#)
                .unwrap_err()
                .contains("add")
        );
    }

    #[test]
    fn the_schema_is_the_files_columns_then_the_partition_columns() {
        let file = Schema::new(vec![
            Field::new(
                "open_time",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("open", DataType::Decimal128(38, 8), false),
            Field::new("trades", DataType::Int64, false),
            Field::new("interval", DataType::Utf8, false),
        ]);
        let cols = vec!["market".to_owned(), "symbol".to_owned(), "year".to_owned()];
        let s: Value = serde_json::from_str(&schema_string(&file, &cols).unwrap()).unwrap();
        let types: Vec<(String, Value, bool)> = s["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().to_owned(),
                    f["type"].clone(),
                    f["nullable"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            types,
            vec![
                ("open_time".into(), json!("timestamp"), false),
                ("open".into(), json!("decimal(38,8)"), false),
                ("trades".into(), json!("long"), false),
                ("interval".into(), json!("string"), false),
                ("market".into(), json!("string"), true),
                ("symbol".into(), json!("string"), true),
                ("year".into(), json!("integer"), true),
            ]
        );
        let naive = Schema::new(vec![Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        )]);
        assert!(schema_string(&naive, &[]).unwrap_err().contains("`t`"));
    }

    #[test]
    fn column_invariants_are_seen() {
        let mut m = Metadata {
            id: "x".into(),
            name: None,
            format: Format {
                provider: "parquet".into(),
                options: BTreeMap::new(),
            },
            schema_string: schema_string(
                &Schema::new(vec![Field::new("a", DataType::Int64, false)]),
                &[],
            )
            .unwrap(),
            partition_columns: vec![],
            configuration: BTreeMap::new(),
            created_time: None,
        };
        assert!(!m.has_invariants() && !m.append_only());
        m.schema_string = m.schema_string.replace(
            r#""metadata":{}"#,
            r#""metadata":{"delta.invariants":"{\"expression\":{\"expression\":\"a > 0\"}}"}"#,
        );
        assert!(m.has_invariants());
    }

    #[test]
    fn protocols_beyond_reader_1_writer_2_are_refused_with_the_reason() {
        assert!(PROTOCOL.check(true).is_ok());
        let dv = Protocol {
            min_reader_version: 3,
            min_writer_version: 7,
        };
        assert!(dv.check(false).unwrap_err().contains("reader version 3"));
        let cdf = Protocol {
            min_reader_version: 1,
            min_writer_version: 4,
        };
        assert!(cdf.check(false).is_ok());
        assert!(cdf.check(true).unwrap_err().contains("writer version 4"));
    }

    #[test]
    fn statistics_times_are_utc_iso_strings() {
        assert_eq!(
            stats_time(1_704_067_200_000, TimeUnit::Millisecond),
            "2024-01-01T00:00:00.000Z"
        );
        assert_eq!(
            stats_time(1_704_067_200_123_456, TimeUnit::Microsecond),
            "2024-01-01T00:00:00.123Z"
        );
    }
}

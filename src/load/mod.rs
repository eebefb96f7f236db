//! Load: hive partitioning and atomic, idempotent Parquet writes.

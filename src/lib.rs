//! kline-etl: declarative Binance kline pipelines, from REST pages to typed, hive-partitioned
//! Parquet with summary statistics.
//!
//! # Layout
//!
//! The modules follow the data, left to right:
//!
//! ```text
//! config ──> plan ──> extract ──> transform ──> load ──> summary
//! ```
//!
//! - [`config`]: read a pipeline file, interpolate `${VAR}`, deserialise, validate into a
//!   [`config::Pipeline`]. Every error names the file, line, column and field.
//! - [`plan`]: resolve a pipeline into tasks (market × symbol × interval × UTC window) with
//!   request and weight estimates.
//! - [`extract`]: the REST client, the pager, the shared weight budget and the retry policy.
//! - [`transform`]: exchange rows (JSON pages) into typed Arrow batches, plus quality checks.
//! - [`load`]: hive partitioning and atomic, idempotent Parquet writes.
//! - [`summary`]: mergeable statistics, `_summary.json`, and the run report.
//! - [`snapshot`]: running the snapshot datasets (`ticker_price`, `depth`) end to end.
//! - [`simulator`]: the built-in Binance-compatible exchange used by tests, benchmarks and the
//!   offline demo (cargo feature `simulator`, on by default; without it a stand-in that says so).
//! - [`tls`]: the one TLS crypto provider (ring) of every HTTPS client.
//! - [`interval`], [`market`], [`symbol`]: the domain vocabulary every stage shares.
//! - [`exit`]: the documented process exit codes.
//!
//! Only `extract` (HTTP), `load` (files) and `simulator` (a server) do I/O. Paging decisions,
//! retry decisions, transform, partitioning and statistics are plain functions.

pub mod cli;
pub mod config;
pub mod exit;
pub mod extract;
#[doc(hidden)]
pub mod fuzz;
pub mod incremental;
pub mod interval;
pub mod load;
pub mod market;
pub mod plan;
pub mod progress;
pub mod run;
#[cfg(feature = "simulator")]
pub mod simulator;
#[cfg(not(feature = "simulator"))]
#[path = "simulator_off.rs"]
pub mod simulator;
pub mod snapshot;
pub mod status;
pub mod summary;
pub mod symbol;
pub mod tls;
pub mod transform;

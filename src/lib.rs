//! kline-etl: declarative Binance market-data pipelines, from REST pages and archive files to
//! typed, hive-partitioned Parquet with summary statistics.
//!
//! # Module map
//!
//! The data flows left to right; each module imports only modules to its right or the shared
//! vocabulary below it:
//!
//! ```text
//! main -> commands -> dataset -> run -> plan -> extract -> transform -> load -> summary
//!                                        (config, and the vocabulary, everywhere)
//! ```
//!
//! | module | owns |
//! |---|---|
//! | `main.rs` | the binary: parse the command line, set up logging, call [`commands`], exit |
//! | [`cli`] | the command line (clap): commands, flags, their help |
//! | [`commands`] | one module per command (`run`, `repair`, `fetch`, `init`, `plan`, `validate`, `status`, `summary`, `chart`, `simulate`, `migrate`, `completions`/`man`) |
//! | [`console`] | the two streams: results on stdout; logs, errors, notices on stderr (JSON lines with `--log-format json`) |
//! | [`config`] | a pipeline file: read, interpolate `${VAR}`, deserialise, validate into a [`config::Pipeline`]; every error names file, line, column and key |
//! | [`dataset`] | one module per dataset (`klines` with its families, the `ticker_price`/`depth` snapshots): its run from connect to report, and the dispatch on `dataset` |
//! | [`run`] | what every run shares: options, errors, the endpoint (simulator or URL), the lock and object-store mirror, the loader thread and its encoder threads, the run report |
//! | [`plan`] | tasks, requests and weight; the one incremental planner (disk state and resume file to windows) behind `run`, `--dry-run` and `plan`; symbol selectors |
//! | [`extract`] | HTTP: the REST client, the pager, the shared weight budget, the retry policy, archive files, snapshot requests |
//! | [`transform`] | exchange rows into typed Arrow columns, and the quality checks |
//! | [`load`] | files: partitioning, merges, atomic idempotent Parquet writes, Delta Lake tables (`output.format: delta`: the log, versioned files, one commit per run), the lock, the resume file, object stores, layout-1 datasets and their migration |
//! | [`summary`] | mergeable statistics, `_kline_etl/summary.json`/`.parq`, the summary table, the chart |
//! | [`status`] | `kline-etl status`: what is on disk, what is pending, the last run |
//! | [`progress`] | the terminal progress display behind [`extract::Progress`], and its model (what is done of what total) |
//! | [`simulator`] | the built-in Binance-compatible exchange (tests, benchmarks, the offline demo); cargo feature `simulator`, on by default (without it, a stand-in that says so) |
//! | [`tls`] | the one TLS crypto provider (ring) of every HTTPS client |
//! | [`layout`] | every on-disk name (layout version 2, and layout 1's for `migrate`): dataset directories, hive keys, partition, snapshot and report files, and why |
//! | [`interval`], [`market`], [`symbol`], [`shard`], [`window`], [`time`], [`digest`], [`error`], [`exit`] | the vocabulary every stage shares: intervals, markets, symbols, `--shard I/N`, `[start, end)` windows, UTC text, SHA-256, error chains, exit codes |
//!
//! Only `extract` (HTTP), `load` (files) and `simulator` (a server) do I/O. Paging decisions,
//! retry decisions, transform, partitioning, planning windows and statistics are plain
//! functions.

#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod dataset;
pub mod digest;
pub mod error;
pub mod exit;
pub mod extract;
#[doc(hidden)]
pub mod fuzz;
pub mod interval;
pub mod layout;
pub mod load;
pub mod market;
pub mod plan;
pub mod progress;
pub mod run;
pub mod shard;
#[cfg(feature = "simulator")]
pub mod simulator;
#[cfg(not(feature = "simulator"))]
#[path = "simulator_off.rs"]
pub mod simulator;
pub mod status;
pub mod summary;
pub mod symbol;
pub mod time;
pub mod tls;
pub mod transform;
pub mod window;

//! Subcommands that are more than a call into the library: each module owns its arguments
//! (clap `Args`) and its decisions, as plain functions the binary calls.
//!
//! - [`fetch`]: `kline-etl fetch`, the pipeline you would otherwise write, built from flags.
//! - [`init`]: `kline-etl init`, an annotated starter pipeline.
//! - [`docs`]: `kline-etl completions` (shell completions) and `kline-etl man` (the man page).

pub mod docs;
pub mod fetch;
pub mod init;

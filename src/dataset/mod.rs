//! Datasets that live in one module each: the dataset's request and paging, its row type and
//! Arrow schema, its on-disk layout and merge key, its statistics and its run orchestration,
//! reusing the shared machinery (the extractor's session, budgets and retries, atomic writes,
//! the dataset lock, the report header types).
//!
//! - [`funding_rate`]: the funding-rate history of perpetual futures (`dataset: funding_rate`).

pub mod funding_rate;

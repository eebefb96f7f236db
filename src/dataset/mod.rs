//! The datasets a pipeline can write, one module each, and the one place that picks the
//! module for a pipeline's `dataset`:
//!
//! | `dataset` | module | rows | under `output.path` |
//! |---|---|---|---|
//! | `klines` (and the futures kline families) | [`klines`] | one candle per market × symbol × interval × open time | `klines/` (a family: `<family>/klines/`) |
//! | `ticker_price`, `depth` | [`snapshot`] | one snapshot per run (prices, or order-book levels) | `ticker_price/`, `depth/` |
//! | `funding_rate` | [`funding_rate`] | one record per futures symbol × funding time (every 8 h) | `funding_rate/` |
//!
//! Each module owns its run from connect to report; what runs share (options, errors, the
//! endpoint, the lock and object-store mirror, the loader thread) is in [`crate::run`].
//! [`funding_rate`] is the example of a dataset that is one module: its request and paging,
//! row type and Arrow schema, layout and merge key, statistics, run, `status` and `summary`
//! are all in its folder, on the shared machinery.

pub mod funding_rate;
pub mod klines;
pub mod snapshot;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::config::{Dataset, Pipeline};
use crate::error::error_chain;
use crate::extract::{ExtractConfig, Extractor, Progress};
use crate::plan::symbols::symbols_of;
use crate::run::{Exchange, RunContext, RunError, RunOptions, RunResult};
use crate::symbol::Symbol;
use crate::time::fmt_ms;

/// Run a validated pipeline: start the exchange endpoint (the built-in simulator when the
/// pipeline asks for it, for as long as the run lasts), then the dataset's own run. `cancel`
/// set to `true` stops it cleanly (resumable).
pub async fn run_pipeline(
    p: &Pipeline,
    opts: &RunOptions,
    progress: Arc<dyn Progress>,
    cancel: watch::Receiver<bool>,
) -> Result<RunResult, RunError> {
    let started = Instant::now();
    let started_at = fmt_ms(chrono::Utc::now().timestamp_millis());
    let exchange = Exchange::start(p).await?;
    let ctx = RunContext {
        pipeline: p,
        opts,
        base_url: &exchange.base_url,
        progress,
        cancel,
        started,
        started_at,
    };
    let result = match p.dataset {
        Dataset::Klines => klines::run(ctx).await,
        Dataset::TickerPrice | Dataset::Depth => snapshot::run(ctx).await,
        Dataset::FundingRate => funding_rate::run(ctx).await,
    };
    exchange.shutdown().await;
    result
}

/// Resolve the pipeline's symbols against the exchange (starting the built-in simulator when
/// the pipeline uses it) without fetching anything else: `kline-etl plan --resolve`.
pub async fn resolve_symbols(p: &Pipeline) -> Result<Vec<Symbol>, RunError> {
    let exchange = Exchange::start(p).await?;
    let cfg = ExtractConfig::from_source(&p.source, &exchange.base_url, p.transform);
    let result = match Extractor::new(cfg).connect().await {
        Ok(session) => symbols_of(p, &session).map_err(RunError::from),
        Err(e) => Err(RunError::Exchange {
            base_url: exchange.base_url.clone(),
            reason: error_chain(&e),
        }),
    };
    exchange.shutdown().await;
    result
}

//! Running a snapshot pipeline (`dataset: ticker_price` or `dataset: depth`) end to end:
//! connect (exchange clock and `exchangeInfo` through the shared weight budget), resolve the
//! symbols, fetch the snapshot(s) ([`crate::extract::snapshot`]), type and check them
//! ([`crate::transform::ticker`], [`crate::transform::depth`]), write one file per snapshot
//! ([`crate::load::snapshot`]) and the run report `<root>/<dataset>/_kline_etl/summary.json`
//! ([`crate::summary::snapshot`]).
//!
//! Each run appends one snapshot; a rerun within the same second (the snapshot time's
//! resolution) replaces that snapshot's file instead of adding a duplicate. A symbol that fails
//! (unknown symbol, refused request, failed book check with `on_violation: fail`) fails alone:
//! the others are written and the run exits 1.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use tokio::sync::watch;

use crate::config::{Dataset, OnViolation, Pipeline, SymbolSelection};
use crate::error::error_chain;
use crate::exit::ExitCode;
use crate::extract::Session;
use crate::extract::snapshot::{
    RequestError, SnapshotRequest, depth_request, fetch, ticker_request,
};
use crate::load::snapshot::{
    SnapshotSink, SnapshotWrite, depth_path, snapshot_files, ticker_path, write_snapshot,
};
use crate::load::{LoadError, WriteOptions};
use crate::plan::symbols::symbols_of;
use crate::run::report::retries_by_cause;
use crate::run::{RunContext, RunError, RunMode, RunResult};
use crate::summary::report::{PipelineInfo, REPORT_VERSION, ToolInfo};
use crate::summary::snapshot::{
    DepthStats, SnapshotFailure, SnapshotReport, SnapshotRunInfo, TickerStats, depth_stats,
    ticker_stats,
};
use crate::symbol::Symbol;
use crate::time::fmt_ms;
use crate::transform::depth::{depth_batch, parse_depth};
use crate::transform::ticker::{non_positive_prices, parse_ticker_price, ticker_batch};

/// What the fetch-and-write part of a run produced.
#[derive(Debug, Default)]
struct Outcome {
    writes: Vec<SnapshotWrite>,
    failures: Vec<SnapshotFailure>,
    ticker: Option<TickerStats>,
    depth: Vec<DepthStats>,
    snapshot_ms: Option<i64>,
    halted: bool,
    output_error: bool,
}

impl Outcome {
    fn fail(&mut self, symbol: &str, error: String) {
        tracing::error!(symbol, "{error}");
        self.failures.push(SnapshotFailure {
            symbol: symbol.to_owned(),
            error,
        });
    }

    fn request_failed(&mut self, symbol: &str, e: &RequestError) {
        if matches!(e, RequestError::Halted) {
            self.halted = true;
        } else {
            self.fail(symbol, e.to_string());
        }
    }

    fn wrote(&mut self, r: Result<SnapshotWrite, LoadError>, symbol: &str) {
        match r {
            Ok(w) => self.writes.push(w),
            Err(e) => {
                self.output_error = true;
                self.fail(symbol, error_chain(&e));
            }
        }
    }

    fn exit(&self) -> ExitCode {
        if self.output_error {
            ExitCode::Output
        } else if self.halted {
            ExitCode::Resumable
        } else if !self.failures.is_empty() {
            ExitCode::TasksFailed
        } else {
            ExitCode::Ok
        }
    }
}

/// Run a snapshot pipeline against `base_url` (the lead's `run_pipeline` starts the simulator
/// when asked and dispatches here for every dataset but klines).
///
/// # Errors
/// [`RunError`] when the run cannot start (exchange unreachable, selector matches nothing) or
/// the report cannot be written; per-symbol failures are in the report and the exit code.
pub async fn run(ctx: RunContext<'_>) -> Result<RunResult, RunError> {
    let (p, opts) = (ctx.pipeline, ctx.opts);
    if opts.mode != RunMode::Incremental {
        return Err(RunError::Unsupported(format!(
            "`repair` applies to kline datasets; a `{}` run takes a new snapshot (use `run`)",
            p.dataset.as_str()
        )));
    }
    crate::load::legacy::refuse_old_snapshot(&p.output.path, p.dataset)?;
    let cfg = ctx.extract_config();
    let concurrency = cfg.concurrency.max(1);
    let session = ctx.connect(cfg).await?;
    let symbols = symbols_of(p, &session)?;
    let selected = matches!(p.symbols, SymbolSelection::Selector(_));
    let root = p.output.path.clone();
    // With an object store: the mirror is pulled first and the run's files uploaded last.
    let output = crate::run::Output::unlocked(p).await?;
    let wopts = WriteOptions::from_pipeline(p);
    let dir = crate::layout::dataset_dir(&root, p.dataset);
    let table = crate::run::Output::table(p, &dir, p.dataset.as_str())?;
    let sink = SnapshotSink {
        root: &root,
        opts: &wopts,
        table: table.as_deref(),
    };
    let cancel = &ctx.cancel;
    let out = match p.dataset {
        Dataset::TickerPrice => ticker(&session, p, &symbols, selected, &sink, cancel).await,
        Dataset::Depth => depth(&session, p, &symbols, &sink, cancel, concurrency).await,
        other @ (Dataset::Klines | Dataset::FundingRate) => {
            return Err(RunError::Unsupported(format!(
                "the `{}` dataset is not a snapshot dataset",
                other.as_str()
            )));
        }
    };
    // Every file written is durable: one Delta commit holds them all.
    output.commit(table.as_deref()).await?;
    let result = finish(&ctx, &session, &symbols, &root, &out)?;
    output.close().await?;
    Ok(result)
}

/// One ticker snapshot: one request (per symbol only when spot refuses a list for a bad
/// symbol, so the good ones are still written).
async fn ticker(
    session: &Session,
    p: &Pipeline,
    symbols: &[Symbol],
    selected: bool,
    sink: &SnapshotSink<'_>,
    cancel: &watch::Receiver<bool>,
) -> Outcome {
    let market = p.source.market;
    let mut out = Outcome::default();
    if *cancel.borrow() {
        out.halted = true;
        return out;
    }
    let mut req = ticker_request(market, (!selected).then_some(symbols));
    if selected {
        req.keep = Some(symbols.to_vec());
    }
    let mut replies: Vec<(SnapshotRequest, Result<_, RequestError>)> = Vec::new();
    let first = fetch(session, &req).await;
    match first {
        Err(RequestError::Rejected {
            code: Some(-1121), ..
        }) if symbols.len() > 1 && !selected => {
            tracing::warn!("the exchange refused the symbol list; asking symbol by symbol");
            for s in symbols {
                let r = ticker_request(market, Some(std::slice::from_ref(s)));
                let reply = fetch(session, &r).await;
                replies.push((r, reply));
            }
        }
        other => replies.push((req, other)),
    }
    let mut merged: Option<crate::transform::ticker::TickerRows> = None;
    for (req, reply) in replies {
        let name = match req.keep.as_deref() {
            Some([one]) => one.to_string(),
            _ => "*".to_owned(),
        };
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                out.request_failed(&name, &e);
                continue;
            }
        };
        match parse_ticker_price(
            &reply.body,
            market,
            reply.received_ms,
            req.keep.as_deref(),
            &p.transform,
        ) {
            Ok(rows) => match &mut merged {
                None => merged = Some(rows),
                // Per-symbol replies of one snapshot: one time, the first reply's.
                Some(m) => m.absorb(&rows),
            },
            Err(e) => out.fail(&name, e.to_string()),
        }
    }
    let Some(rows) = merged else { return out };
    // An explicit list must be found in full (a selector's symbols come from exchangeInfo).
    if !selected {
        for s in symbols {
            let present = rows.symbol.iter().any(|x| x == s.as_str());
            let failed = out.failures.iter().any(|f| f.symbol == s.as_str());
            if !present && !failed {
                out.fail(
                    s.as_str(),
                    format!("`{s}` is not in the exchange's reply (unknown or not trading)"),
                );
            }
        }
    }
    let bad = non_positive_prices(&rows);
    out.snapshot_ms = Some(rows.snapshot_ms);
    out.ticker = Some(ticker_stats(&rows));
    if !bad.is_empty() && p.transform.on_violation == OnViolation::Fail {
        out.fail(
            "*",
            format!(
                "non-positive prices for {}; nothing written (`on_violation: fail`)",
                bad.join(", ")
            ),
        );
        return out;
    }
    if rows.is_empty() {
        return out;
    }
    let rel = ticker_path(market, rows.snapshot_ms);
    let write = ticker_batch(&rows, p.transform.time_unit)
        .map_err(|source| LoadError::Schema {
            path: sink.root.join(&rel),
            source,
        })
        .and_then(|b| write_snapshot(sink, &rel, &b, Dataset::TickerPrice, market));
    out.wrote(write, "*");
    out
}

/// One order book per symbol, up to `concurrency` requests in flight (the shared budget paces
/// them).
async fn depth(
    session: &Session,
    p: &Pipeline,
    symbols: &[Symbol],
    sink: &SnapshotSink<'_>,
    cancel: &watch::Receiver<bool>,
    concurrency: usize,
) -> Outcome {
    let market = p.source.market;
    let limit = p.depth_limit.unwrap_or(market.default_depth_limit());
    let results: Vec<_> = futures::stream::iter(symbols.iter().cloned())
        .map(|s| async move {
            if *cancel.borrow() {
                return (s, Err(RequestError::Halted));
            }
            let r = fetch(session, &depth_request(market, &s, limit)).await;
            (s, r)
        })
        .buffered(concurrency)
        .collect()
        .await;
    let mut out = Outcome::default();
    for (s, reply) in results {
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                out.request_failed(s.as_str(), &e);
                continue;
            }
        };
        let rows = match parse_depth(&reply.body, market, &s, reply.received_ms, &p.transform) {
            Ok(r) => r,
            Err(e) => {
                out.fail(s.as_str(), e.to_string());
                continue;
            }
        };
        let stats = depth_stats(&rows);
        let violations = stats.quality.violations();
        out.snapshot_ms = Some(
            out.snapshot_ms
                .map_or(rows.snapshot_ms, |t| t.max(rows.snapshot_ms)),
        );
        out.depth.push(stats);
        if violations > 0 && p.transform.on_violation == OnViolation::Fail {
            out.fail(
                s.as_str(),
                format!("{violations} order-book check(s) failed; nothing written (`on_violation: fail`)"),
            );
            continue;
        }
        let rel = depth_path(market, &s, rows.snapshot_ms);
        let write = depth_batch(&rows, p.transform.time_unit)
            .map_err(|source| LoadError::Schema {
                path: sink.root.join(&rel),
                source,
            })
            .and_then(|b| write_snapshot(sink, &rel, &b, Dataset::Depth, market));
        out.wrote(write, s.as_str());
    }
    out
}

/// Write `<root>/<dataset>/_kline_etl/summary.json` atomically.
///
/// # Errors
/// [`LoadError`] when it cannot be written.
pub fn write_snapshot_report(root: &Path, report: &SnapshotReport) -> Result<PathBuf, LoadError> {
    let path = crate::layout::snapshot_summary_file(root, &report.dataset);
    crate::load::atomic::write_json(&path, report)?;
    Ok(path)
}

/// Readable lines for the end of a run.
pub fn render_snapshot_table(r: &SnapshotReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if let Some(t) = &r.ticker {
        let _ = writeln!(
            s,
            "ticker_price {} {}: {} symbols",
            t.market, t.snapshot_time, t.symbols
        );
    }
    // Prices to 10 significant digits: enough for any tick size, without float noise.
    let num = |v: Option<f64>| {
        v.map_or_else(
            || "-".to_owned(),
            |x| {
                let s = format!("{x:.10e}");
                s.parse::<f64>().map_or(s, |y| y.to_string())
            },
        )
    };
    for d in &r.depth {
        let _ = writeln!(
            s,
            "depth {} {} {}: bid {} ask {} spread {} ({} bps), {}+{} levels",
            d.market,
            d.symbol,
            d.snapshot_time,
            num(d.bids.best),
            num(d.asks.best),
            num(d.spread),
            d.spread_bps
                .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}")),
            d.bids.levels,
            d.asks.levels
        );
    }
    if let Some(run) = &r.run {
        for f in &run.failures {
            let _ = writeln!(s, "failed {}: {}", f.symbol, f.error);
        }
    }
    s
}

fn finish(
    ctx: &RunContext<'_>,
    session: &Session,
    symbols: &[Symbol],
    root: &Path,
    out: &Outcome,
) -> Result<RunResult, RunError> {
    let (p, opts) = (ctx.pipeline, ctx.opts);
    let exit = out.exit();
    let m = session.metrics();
    let (limit, share) = session.weight_limit();
    let finished_at = fmt_ms(chrono::Utc::now().timestamp_millis());
    let elapsed_ms = ctx.started.elapsed().as_millis() as u64;
    let outcome = if out.halted {
        "resumable".to_owned()
    } else {
        exit.name().to_owned()
    };
    let symbol_names: Vec<String> = symbols.iter().map(ToString::to_string).collect();
    let rows_written: u64 = out.writes.iter().map(|w| w.rows).sum();
    let bytes_written: u64 = out.writes.iter().map(|w| w.bytes).sum();
    let files_on_disk = snapshot_files(root, p.dataset)?.len();
    let pipeline = Some(PipelineInfo {
        name: p.name.clone(),
        hash: opts.pipeline_hash.clone().unwrap_or_default(),
    });
    let report = SnapshotReport {
        report_version: REPORT_VERSION,
        tool: ToolInfo::default(),
        pipeline,
        run: Some(SnapshotRunInfo {
            started_at: ctx.started_at.clone(),
            finished_at,
            elapsed_ms,
            outcome,
            exit_code: exit.code(),
            symbols: symbol_names,
            depth_limit: p.depth_limit,
            requests: m.requests,
            weight_used: m.weight,
            weight_limit: limit.limit,
            weight_share: share,
            http_429: m.http_429,
            http_418: m.http_418,
            retries: retries_by_cause(&m),
            rows_written,
            files_written: out.writes.len() as u64,
            files_replaced: out.writes.iter().filter(|w| w.replaced).count() as u64,
            bytes_written,
            failures: out.failures.clone(),
        }),
        dataset: p.dataset.as_str().to_owned(),
        files_on_disk,
        ticker: out.ticker.clone(),
        depth: out.depth.clone(),
    };
    let summary_path = write_snapshot_report(root, &report)?;
    Ok(RunResult {
        exit,
        summary_path,
        table: render_snapshot_table(&report),
    })
}

//! Planning: resolve a pipeline into tasks (market × symbol × interval × UTC window) with
//! request and weight estimates, and the least time that weight needs at the run's budget.
//!
//! [`build`] plans an empty output (a plain function); [`build_on_disk`] plans exactly the
//! windows a run would fetch now, from the data on disk and the resume file, with the same
//! [`incremental`] planner the run uses: `kline-etl plan` and `run --dry-run` print it.
//! A symbol *selector* cannot be resolved without the exchange (`plan --resolve` asks it), so
//! its tasks are shown once per interval with the symbol `*` ("per selected symbol"), plus one
//! `exchangeInfo` request.
//!
//! - [`incremental`]: the windows still to fetch per series (stored data, resume file, repair).
//! - [`symbols`]: a symbol selector resolved against `exchangeInfo`.

pub mod incremental;
pub mod symbols;

use std::fmt;

use serde::Serialize;

use crate::config::{Dataset, Endpoint, Pipeline, SymbolSelection, SymbolSelector};
use crate::interval::{Interval, MINUTE_MS};
use crate::load::TaskKey;
use crate::market::Market;
use crate::shard::Shard;
use crate::symbol::Symbol;

/// What one task will fetch, and what it will cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    /// The market.
    pub market: Market,
    /// The symbol, or `*` for "each symbol the selector picks".
    pub symbol: String,
    /// The interval (klines only).
    pub interval: Option<Interval>,
    /// Window start, ms (inclusive).
    pub start_ms: i64,
    /// Window end, ms (exclusive).
    pub end_ms: i64,
    /// Rows expected to be written: candle open times in the window, without the candle
    /// still forming at "now" unless `include_forming` (klines); 1 snapshot otherwise.
    pub expected_rows: i64,
    /// Requests needed at the best page size.
    pub requests: u64,
    /// Request weight of those requests.
    pub weight: u64,
}

/// The resolved plan of a pipeline at a given time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// `name`.
    pub pipeline: String,
    /// `source.market`.
    pub market: Market,
    /// `dataset`.
    pub dataset: &'static str,
    /// Where requests go (`https://…` or `simulator (seed 42)`).
    pub endpoint: String,
    /// The time the relative parts of the range were resolved against, ms.
    pub now_ms: i64,
    /// Resolved range start, ms.
    pub start_ms: i64,
    /// Resolved range end, ms (exclusive).
    pub end_ms: i64,
    /// Set when `symbols` is a selector: how it will be resolved.
    pub selector: Option<String>,
    /// The symbols a selector resolved to (`plan --resolve`), when resolved.
    pub resolved_symbols: Option<Vec<String>>,
    /// The selector's `max`, which bounds the whole run's cost.
    pub max_symbols: Option<usize>,
    /// The tasks.
    pub tasks: Vec<Task>,
    /// Requests and weight spent outside tasks (`exchangeInfo` for a selector).
    pub overhead_requests: u64,
    /// Weight of the overhead requests.
    pub overhead_weight: u64,
    /// The exchange's per-minute weight limit assumed (the market default, or the simulator's).
    pub weight_limit_per_minute: u32,
    /// `source.weight_share`.
    pub weight_share: f64,
    /// Total requests.
    pub total_requests: u64,
    /// Total weight.
    pub total_weight: u64,
    /// Total expected rows.
    pub total_rows: i64,
    /// The least time the weight needs at `weight_limit × weight_share` per minute, seconds.
    pub min_seconds: f64,
    /// `plan --shards N`: the series' shards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardPlan>,
}

/// Resolve `pipeline` at `now_ms` into a plan.
pub fn build(pipeline: &Pipeline, now_ms: i64) -> Plan {
    let market = pipeline.source.market;
    let (start_ms, end_ms) = pipeline.range.resolve(now_ms);
    let (symbols, selector): (Vec<String>, Option<String>) = match &pipeline.symbols {
        SymbolSelection::List(list) => (list.iter().map(ToString::to_string).collect(), None),
        SymbolSelection::Selector(s) => (vec!["*".to_owned()], Some(describe_selector(s))),
    };
    let mut tasks = Vec::new();
    for symbol in &symbols {
        match pipeline.dataset {
            Dataset::Klines => {
                for &interval in &pipeline.intervals {
                    tasks.push(kline_task(
                        pipeline,
                        symbol.clone(),
                        interval,
                        (pipeline.range.start_for(interval, start_ms), end_ms),
                        now_ms,
                    ));
                }
            }
            Dataset::FundingRate => {
                let (expected_rows, requests, weight) =
                    crate::dataset::funding_rate::plan_cost(start_ms, end_ms);
                tasks.push(Task {
                    market,
                    symbol: symbol.clone(),
                    interval: None,
                    start_ms,
                    end_ms,
                    expected_rows,
                    requests,
                    weight,
                });
            }
            Dataset::TickerPrice | Dataset::Depth => {
                let (requests, weight) = snapshot_cost(pipeline, &symbols, symbol);
                tasks.push(Task {
                    market,
                    symbol: symbol.clone(),
                    interval: None,
                    start_ms: now_ms,
                    end_ms: now_ms,
                    expected_rows: 1,
                    requests,
                    weight,
                });
            }
        }
    }
    let (overhead_requests, overhead_weight) = if selector.is_some() {
        (1, u64::from(market.exchange_info_weight()))
    } else {
        (0, 0)
    };
    let weight_limit_per_minute = match &pipeline.source.endpoint {
        Endpoint::Simulator(s) => s
            .weight_limit
            .unwrap_or_else(|| market.default_weight_limit()),
        Endpoint::Url(_) => market.default_weight_limit(),
    };
    let mut plan = Plan {
        pipeline: pipeline.name.clone(),
        market,
        dataset: pipeline.dataset.as_str(),
        endpoint: match &pipeline.source.endpoint {
            Endpoint::Url(u) => u.clone(),
            Endpoint::Simulator(s) => format!("built-in simulator (seed {})", s.seed),
        },
        now_ms,
        start_ms,
        end_ms,
        max_symbols: match &pipeline.symbols {
            SymbolSelection::Selector(s) => s.max,
            SymbolSelection::List(_) => None,
        },
        selector,
        resolved_symbols: None,
        tasks,
        overhead_requests,
        overhead_weight,
        weight_limit_per_minute,
        weight_share: pipeline.source.weight_share,
        total_requests: 0,
        total_weight: 0,
        total_rows: 0,
        min_seconds: 0.0,
        shards: None,
    };
    plan.add_up();
    plan
}

/// How a selector will be resolved, for the plan's header.
pub fn describe_selector(s: &SymbolSelector) -> String {
    let mut parts = Vec::new();
    if !s.quote.is_empty() {
        parts.push(format!("quote in [{}]", s.quote.join(", ")));
    }
    if let Some(r) = &s.regex {
        parts.push(format!("matching `{r}`"));
    }
    parts.push(if s.include_inactive {
        "any status".to_owned()
    } else {
        "TRADING only".to_owned()
    });
    if let Some(m) = s.max {
        parts.push(format!("at most {m}"));
    }
    format!(
        "resolved at run time against exchangeInfo: {}",
        parts.join(", ")
    )
}

/// The plan of what a run would fetch now: per series, the requested range minus what is
/// stored, plus the windows earlier runs left unfinished (the resume file), exactly as
/// [`incremental::incremental_tasks`] plans them for the run. Snapshot datasets and
/// unresolved selectors have nothing on disk to plan from and get [`build`]'s plan.
pub fn build_on_disk(
    pipeline: &Pipeline,
    now_ms: i64,
    full_refresh: bool,
    shard: Option<Shard>,
) -> Result<Plan, incremental::PlanError> {
    let mut plan = build(pipeline, now_ms);
    let SymbolSelection::List(symbols) = &pipeline.symbols else {
        return Ok(plan);
    };
    if pipeline.dataset != Dataset::Klines {
        return Ok(plan);
    }
    let root = crate::layout::kline_root(pipeline);
    let series = kline_series(pipeline, symbols, shard);
    let pending = crate::load::resume::read(&root, shard);
    let (start, end) = (plan.start_ms, plan.end_ms);
    let requested = |iv| (pipeline.range.start_for(iv, start), end);
    let (windows, _) =
        incremental::incremental_tasks(&root, &series, &pending, &requested, full_refresh)?;
    plan.tasks = windows
        .iter()
        .map(|t| {
            kline_task(
                pipeline,
                t.symbol.to_string(),
                t.interval,
                (t.start_ms, t.end_ms),
                now_ms,
            )
        })
        .collect();
    plan.add_up();
    Ok(plan)
}

/// The series of a kline pipeline: every symbol × interval that `shard` owns (all of them
/// without `--shard`), in the pipeline's order.
pub fn kline_series(pipeline: &Pipeline, symbols: &[Symbol], shard: Option<Shard>) -> Vec<TaskKey> {
    let all = all_series(pipeline, symbols);
    let Some(shard) = shard else { return all };
    let owner = shard_of_series(&all, shard.count);
    all.into_iter()
        .filter(|k| owner.get(k) == Some(&shard.index))
        .collect()
}

fn all_series(pipeline: &Pipeline, symbols: &[Symbol]) -> Vec<TaskKey> {
    symbols
        .iter()
        .flat_map(|symbol| {
            pipeline.intervals.iter().map(|interval| TaskKey {
                market: pipeline.source.market,
                symbol: symbol.clone(),
                interval: *interval,
            })
        })
        .collect()
}

/// Each series' shard (1-based) when the pipeline runs as `count` shards: the balanced,
/// stable split of [`crate::shard::assign`] by [`crate::shard::weight`].
pub fn shard_of_series(series: &[TaskKey], count: u32) -> std::collections::BTreeMap<TaskKey, u32> {
    let weighted: Vec<(TaskKey, u64)> = series
        .iter()
        .map(|k| (k.clone(), crate::shard::weight(k.interval)))
        .collect();
    crate::shard::assign(&weighted, count)
}

/// `plan --shards N`: every series with its shard and the candles the plan expects of it now,
/// and each shard's total, for an orchestrator to fan out over.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardPlan {
    /// N.
    pub count: u32,
    /// Every series, in the pipeline's order.
    pub series: Vec<ShardedSeries>,
    /// Candles the plan expects per shard (index 0 is shard 1).
    pub candles_per_shard: Vec<u64>,
    /// The heaviest shard's candles over the mean.
    pub max_over_mean: f64,
}

/// One series of a [`ShardPlan`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardedSeries {
    /// `spot`, `usdm`, `coinm`.
    pub market: Market,
    /// The symbol.
    pub symbol: String,
    /// The interval.
    pub interval: Interval,
    /// Its shard, 1-based (`--shard {shard}/{count}`).
    pub shard: u32,
    /// Candles the plan expects of it now.
    pub candles: u64,
    /// Its weight in the split (candles per 30 days).
    pub weight: u64,
}

impl Plan {
    /// The plan's series split into `count` shards (`plan --shards N`), with the candles each
    /// is expected to fetch now.
    pub fn shards(&self, pipeline: &Pipeline, symbols: &[Symbol], count: u32) -> ShardPlan {
        let all = all_series(pipeline, symbols);
        let owner = shard_of_series(&all, count);
        let mut per_shard = vec![0u64; count.max(1) as usize];
        let series: Vec<ShardedSeries> = all
            .iter()
            .map(|k| {
                let candles: u64 = self
                    .tasks
                    .iter()
                    .filter(|t| t.symbol == k.symbol.as_str() && t.interval == Some(k.interval))
                    .map(|t| t.expected_rows.max(0) as u64)
                    .sum();
                let shard = owner.get(k).copied().unwrap_or(1);
                per_shard[shard as usize - 1] += candles;
                ShardedSeries {
                    market: k.market,
                    symbol: k.symbol.to_string(),
                    interval: k.interval,
                    shard,
                    candles,
                    weight: crate::shard::weight(k.interval),
                }
            })
            .collect();
        ShardPlan {
            count,
            series,
            max_over_mean: crate::shard::max_over_mean(&per_shard),
            candles_per_shard: per_shard,
        }
    }
}

/// One kline window's task: its candles (without the one still forming at `now` unless
/// `include_forming`), requests and weight.
fn kline_task(
    pipeline: &Pipeline,
    symbol: String,
    interval: Interval,
    (start_ms, end_ms): (i64, i64),
    now_ms: i64,
) -> Task {
    let market = pipeline.source.market;
    let (mut expected_rows, requests, weight) = kline_cost(market, interval, start_ms, end_ms);
    if !pipeline.transform.include_forming {
        // The candle still forming at `now` is fetched but not written.
        let closed_end = end_ms.min(interval.floor(now_ms));
        expected_rows = interval.count_in(start_ms, closed_end);
    }
    Task {
        market,
        symbol,
        interval: Some(interval),
        start_ms,
        end_ms,
        expected_rows,
        requests,
        weight,
    }
}

/// Expected candles, requests and weight to fetch `[start, end)` at `interval`.
///
/// Pages hold [`Market::best_kline_page`] candles; an empty range still costs one request (to
/// learn that it is empty); COIN-M requests span at most 200 days each.
pub fn kline_cost(market: Market, interval: Interval, start: i64, end: i64) -> (i64, u64, u64) {
    let candles = interval.count_in(start, end);
    let page = i64::from(market.best_kline_page());
    let mut requests = (candles + page - 1) / page;
    if let Some(window) = market.max_kline_window_ms() {
        requests = requests.max((end - start + window - 1) / window);
    }
    let requests = requests.max(1) as u64;
    let weight = requests * u64::from(market.kline_weight(market.best_kline_page()));
    (candles, requests, weight)
}

/// Requests and weight of one symbol's snapshot: `/depth` at `depth_limit` per symbol; one
/// `/ticker/price` request for the whole list (counted on its first symbol, see
/// [`crate::extract::snapshot::ticker_request`]).
fn snapshot_cost(pipeline: &Pipeline, symbols: &[String], symbol: &String) -> (u64, u64) {
    let market = pipeline.source.market;
    match pipeline.dataset {
        Dataset::Depth => {
            let limit = pipeline
                .depth_limit
                .unwrap_or_else(|| market.default_depth_limit());
            (1, u64::from(market.depth_levels(limit).1))
        }
        _ if symbols.first() == Some(symbol) => {
            let list = match &pipeline.symbols {
                SymbolSelection::List(l) => Some(l.as_slice()),
                SymbolSelection::Selector(_) => None,
            };
            let req = crate::extract::snapshot::ticker_request(market, list);
            (1, u64::from(req.weight))
        }
        _ => (0, 0),
    }
}

/// `2024-01-01T00:00:00Z` (milliseconds shown only when not zero).
pub fn iso(ms: i64) -> String {
    crate::time::format_utc(ms)
}

/// A duration in seconds as `1h 02m 03s` / `2m 05s` / `4.2s`.
pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "unbounded".to_owned();
    }
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let s = secs.round() as u64;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else {
        format!("{m}m {s:02}s")
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "pipeline  {}", self.pipeline)?;
        writeln!(
            f,
            "source    {} market, {} ({})",
            self.market, self.endpoint, self.dataset
        )?;
        writeln!(
            f,
            "range     [{}, {})  (resolved at {})",
            iso(self.start_ms),
            iso(self.end_ms),
            iso(self.now_ms)
        )?;
        match (&self.selector, &self.resolved_symbols) {
            (Some(s), Some(list)) => {
                writeln!(f, "selector  {s}")?;
                writeln!(f, "symbols   {} resolved: {}", list.len(), list.join(", "))?;
            }
            (Some(s), None) => {
                writeln!(f, "symbols   {s}; rows below are per selected symbol (`*`)")?;
            }
            _ => {}
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<7} {:<14} {:<8} {:<24} {:<24} {:>12} {:>9} {:>9}",
            "market",
            "symbol",
            "interval",
            "start (UTC)",
            "end (UTC)",
            "rows",
            "requests",
            "weight"
        )?;
        for t in &self.tasks {
            writeln!(
                f,
                "{:<7} {:<14} {:<8} {:<24} {:<24} {:>12} {:>9} {:>9}",
                t.market.as_str(),
                t.symbol,
                t.interval.map_or("-", Interval::as_str),
                iso(t.start_ms),
                iso(t.end_ms),
                t.expected_rows,
                t.requests,
                t.weight
            )?;
        }
        if self.overhead_requests > 0 {
            writeln!(
                f,
                "{:<7} {:<14} {:<8} {:<24} {:<24} {:>12} {:>9} {:>9}",
                self.market.as_str(),
                "exchangeInfo",
                "-",
                "-",
                "-",
                "-",
                self.overhead_requests,
                self.overhead_weight
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "total     {} task(s), {} rows, {} request(s), weight {}",
            self.tasks.len(),
            self.total_rows,
            self.total_requests,
            self.total_weight
        )?;
        write!(
            f,
            "budget    {} weight/min × weight_share {} = {:.0} weight/min; at least {} at full budget",
            self.weight_limit_per_minute,
            self.weight_share,
            f64::from(self.weight_limit_per_minute) * self.weight_share,
            human_duration(self.min_seconds)
        )?;
        if self.selector.is_some() && self.resolved_symbols.is_none() {
            write!(f, " per selected symbol")?;
        }
        writeln!(f)?;
        if let Some(n) = self.max_symbols {
            let (weight, seconds) = self.bound_for(n);
            writeln!(
                f,
                "          with the selector's maximum of {n} symbols: weight {weight}, at least {}",
                human_duration(seconds)
            )?;
        }
        if let Some(sp) = &self.shards {
            writeln!(f)?;
            writeln!(
                f,
                "shards    {} (`--shard I/{}`), candles per shard {:?}, max/mean {:.3}",
                sp.count, sp.count, sp.candles_per_shard, sp.max_over_mean
            )?;
            for s in &sp.series {
                writeln!(
                    f,
                    "          --shard {}/{}  {:<7} {:<14} {:<4} {:>12} candles",
                    s.shard,
                    sp.count,
                    s.market.as_str(),
                    s.symbol,
                    s.interval.as_str(),
                    s.candles
                )?;
            }
        }
        Ok(())
    }
}

impl Plan {
    /// The totals and the least time at the budget, from the tasks and the overhead.
    fn add_up(&mut self) {
        self.total_requests =
            self.overhead_requests + self.tasks.iter().map(|t| t.requests).sum::<u64>();
        self.total_weight = self.overhead_weight + self.tasks.iter().map(|t| t.weight).sum::<u64>();
        self.total_rows = self.tasks.iter().map(|t| t.expected_rows).sum();
        let budget = f64::from(self.weight_limit_per_minute) * self.weight_share;
        self.min_seconds = if budget > 0.0 {
            self.total_weight as f64 / budget * (MINUTE_MS / 1000) as f64
        } else {
            f64::INFINITY
        };
        if self.dataset == Dataset::FundingRate.as_str() {
            // The endpoint's own request limit, not the weight, is what bounds it.
            self.min_seconds =
                self.min_seconds
                    .max(crate::dataset::funding_rate::request::min_seconds(
                        self.total_requests,
                        self.weight_share,
                    ));
        }
    }

    /// Total weight and least time if the per-symbol tasks ran for `symbols` symbols.
    pub fn bound_for(&self, symbols: usize) -> (u64, f64) {
        let per_symbol: u64 = self.tasks.iter().map(|t| t.weight).sum();
        let weight = self.overhead_weight + per_symbol * symbols as u64;
        let budget = f64::from(self.weight_limit_per_minute) * self.weight_share;
        (weight, weight as f64 / budget * 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use crate::interval::DAY_MS;

    fn plan(text: &str, now: i64) -> Plan {
        let p = parse_str("t.yaml", text, &|_| None).unwrap();
        build(&p, now)
    }

    const NOW: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    #[test]
    fn shards_split_series_exactly_once() {
        let p = parse_str(
            "t.yaml",
            "name: t\nsymbols: [BTCUSDT, ETHUSDT, BNBUSDT, SOLUSDT, XRPUSDT, ADAUSDT]\nintervals: [1m, 1h, 1d]\nrange: { start: 2024-01-01, end: 2024-02-01 }\n",
            &|_| None,
        )
        .unwrap();
        let symbols: Vec<Symbol> = match &p.symbols {
            SymbolSelection::List(l) => l.clone(),
            SymbolSelection::Selector(_) => unreachable!(),
        };
        let shards: Vec<Shard> = (1..=4).map(|i| Shard { index: i, count: 4 }).collect();
        let all = kline_series(&p, &symbols, None);
        let mut seen = Vec::new();
        for s in &shards {
            let mine = kline_series(&p, &symbols, Some(*s));
            assert!(!mine.is_empty(), "{s}");
            seen.extend(mine);
        }
        seen.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(seen, want, "every series in exactly one shard");
        assert_eq!("2/4".parse::<Shard>().unwrap(), shards[1]);
        assert_eq!(shards[1].to_string().parse::<Shard>().unwrap(), shards[1]);
        for bad in ["0/4", "5/4", "1/0", "a/b", "3", "1/2000"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn daily_btc_since_2020() {
        let p = plan(
            "name: t\nsymbols: [BTCUSDT]\nintervals: [1d]\nrange: { start: 2020-07-05, end: 2024-01-01 }\n",
            1_710_000_000_000, // 2024-03-09, after the range
        );
        assert_eq!(p.tasks.len(), 1);
        let t = &p.tasks[0];
        assert_eq!(t.expected_rows, 1275); // 2020-07-05 .. 2023-12-31 inclusive
        assert_eq!(t.requests, 2);
        assert_eq!(t.weight, 4);
        assert_eq!(p.total_weight, 4);
        assert!((p.min_seconds - 4.0 / 5400.0 * 60.0).abs() < 1e-9);
    }

    #[test]
    fn tasks_are_symbols_times_intervals() {
        let p = plan(
            "name: t\nsymbols: [BTCUSDT, ETHUSDT]\nintervals: [1m, 1h, 1d]\nrange: { start: 3 days ago }\n",
            NOW,
        );
        assert_eq!(p.tasks.len(), 6);
        assert_eq!(p.start_ms, NOW - 3 * DAY_MS);
        let m1 = &p.tasks[0];
        assert_eq!(m1.interval, Some(Interval::M1));
        // A relative start is aligned down to the minute: exactly 3 days of closed minutes
        // (the one forming at NOW is held back).
        assert_eq!(m1.start_ms, Interval::M1.floor(NOW - 3 * DAY_MS));
        assert_eq!(m1.expected_rows, 3 * 1440);
        assert_eq!(p.tasks[2].expected_rows, 3, "three daily candles");
        assert_eq!(m1.requests, 5);
        assert_eq!(p.total_requests, 2 * (5 + 1 + 1));
        assert_eq!(p.total_weight, 2 * p.total_requests);
    }

    #[test]
    fn forming_candles_are_counted_only_when_asked() {
        let text = "name: t\nsymbols: [BTCUSDT]\nintervals: [1d]\nrange: { start: 2023-11-01 }\n";
        // 2023-11-01 .. 2023-11-14T22:13:20Z: 13 closed days and one forming.
        assert_eq!(plan(text, NOW).tasks[0].expected_rows, 13);
        let forming = format!("{text}transform: {{ include_forming: true }}\n");
        assert_eq!(plan(&forming, NOW).tasks[0].expected_rows, 14);
    }

    #[test]
    fn futures_weight_and_coinm_window() {
        let (rows, req, w) = kline_cost(Market::UsdM, Interval::M1, 0, 2000 * MINUTE_MS);
        // 499-candle pages (weight 2 each) are the cheapest per candle on futures.
        assert_eq!((rows, req, w), (2000, 5, 10));
        // 400 days of 1d candles: 400 rows fit one page, but COIN-M caps a request at 200 days.
        let (rows, req, _) = kline_cost(Market::CoinM, Interval::D1, 0, 400 * DAY_MS);
        assert_eq!((rows, req), (400, 2));
        let (rows, req, _) = kline_cost(Market::Spot, Interval::D1, 0, 0);
        assert_eq!((rows, req), (0, 1));
    }

    #[test]
    fn selectors_plan_per_symbol() {
        let p = plan(
            "name: t\nsymbols: { quote: [USDT] }\nintervals: [1h]\nrange: { start: 1 day ago }\n",
            NOW,
        );
        assert_eq!(p.tasks[0].symbol, "*");
        assert_eq!(p.overhead_weight, 20);
        assert!(p.selector.as_deref().unwrap().contains("exchangeInfo"));
        assert!(p.to_string().contains("exchangeInfo"));
        let p = plan(
            "name: t\nsymbols: { quote: [USDT], max: 10 }\nintervals: [1h]\nrange: { start: 1 day ago }\n",
            NOW,
        );
        assert_eq!(p.bound_for(10).0, 20 + 10 * 2);
        assert!(
            p.to_string().contains("maximum of 10 symbols: weight 40"),
            "{p}"
        );
    }

    #[test]
    fn simulator_limit_is_used() {
        let p = plan(
            "name: t\nsource: { simulator: { weight_limit: 600 }, weight_share: 1 }\nsymbols: [BTCUSDT]\nintervals: [1m]\nrange: { start: 2023-01-01, end: 2023-02-01 }\n",
            NOW,
        );
        assert_eq!(p.weight_limit_per_minute, 600);
        // 31 days of minutes = 44640 rows = 45 requests = weight 90 -> 9 s at 600/min.
        assert_eq!(p.total_weight, 90);
        assert!((p.min_seconds - 9.0).abs() < 1e-9);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(4.3), "4.3s");
        assert_eq!(human_duration(125.0), "2m 05s");
        assert_eq!(human_duration(3723.0), "1h 02m 03s");
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1), "1970-01-01T00:00:00.001Z");
    }
}

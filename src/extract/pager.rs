//! The extractor: runs kline tasks against one market's REST API with many page windows in
//! flight at once, across and within tasks, under one shared weight budget, and sends each
//! task's rows downstream in open-time order over a bounded channel.
//!
//! Shape of a run:
//! 1. `/time` once (the exchange clock, so "closed candle" and window boundaries use the
//!    exchange's time, including a simulator's fake clock), then `/exchangeInfo` for the
//!    `REQUEST_WEIGHT` limit and its window.
//! 2. Per task (at most `max_active_tasks` at once, of which at most `max_long_tasks` have
//!    more windows than `concurrency`): probe the listing date once per
//!    symbol × interval (`startTime=0&limit=1`) when the range needs more than one page (on
//!    COIN-M, whose 200-day rule defeats the probe, `exchangeInfo`'s `onboardDate` instead),
//!    plan page windows, fetch up to `concurrency` windows ahead (a global
//!    semaphore bounds requests in flight), and emit them in order as they complete.
//! 3. Every request: wait for a semaphore permit and for budget weight (or a ban/429 pause),
//!    send, correct the budget from the used-weight header, classify the reply
//!    ([`super::retry::classify`]), parse the page on the worker with
//!    [`crate::transform::parse_klines`], screen it ([`super::paging::screen_page`]); transient
//!    failures retry with full-jitter backoff driven by `backon`.
//!
//! The endpoint is the run's kline family ([`ExtractConfig::kline_family`]): `/klines` or a
//! futures family (`/markPriceKlines`, `/indexPriceKlines`, `/premiumIndexKlines`,
//! `/continuousKlines`), with `pair`/`contractType` where the family needs them; paging,
//! weights and windows are the same. [`Session::request`] sends the snapshot datasets'
//! requests through the same budget.
//!
//! Memory is bounded by `max_active_tasks × concurrency` pages plus the channel's capacity,
//! never by the length of a task's range; downstream, by one partition buffer per active task
//! (which `max_long_tasks` keeps to two large ones).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::Retryable;
use bytes::Bytes;
use futures::{StreamExt, stream};
use tokio::sync::{OnceCell, Semaphore, mpsc, watch};

use crate::error::error_chain;

use super::budget::{Admission, BudgetState, ExchangeClock, WeightBudget, WeightLimit};
use super::client::{ClientConfig, ExchangeInfo, RestClient};
use super::metrics::{Counters, Meter, NoProgress, Progress};
use super::paging::{
    PageWindow, continuation, count_windows, is_suspect_empty, plan_windows, screen_page,
    slot_windows,
};
use super::retry::{BackoffPolicy, RetryCause, Verdict, classify};
use super::{
    ExtractError, ExtractEvent, FailedWindow, KlineTask, RunOutcome, RunReport, TaskError, TaskId,
    TaskOutcome, TaskStatus, WindowCause,
};
use crate::config::{KlineFamily, OnViolation, Secret, Source, TransformOptions};
use crate::interval::Interval;
use crate::market::Market;
use crate::symbol::Symbol;
use crate::transform::{KlineContext, KlineRows, parse_klines, parse_signed_klines};

/// Everything the extractor needs to know.
#[derive(Debug, Clone)]
pub struct ExtractConfig {
    /// The market every task must be on.
    pub market: Market,
    /// Base URL (without the `/api/v3` prefix).
    pub base_url: String,
    /// Optional API key (sent only as `X-MBX-APIKEY`).
    pub api_key: Option<Secret>,
    /// Fraction (0, 1] of the weight limit this run may use.
    pub weight_share: f64,
    /// The longest 418 ban waited out; longer bans stop the run as resumable.
    pub max_ban_wait: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Backoff for transient failures (`max_retries` included).
    pub backoff: BackoffPolicy,
    /// Requests in flight at once, over all tasks (also how far ahead a task fetches).
    pub concurrency: usize,
    /// Tasks worked on at once.
    pub max_active_tasks: usize,
    /// Of those, long tasks paging at once: a task with more page windows than
    /// `concurrency` keeps the request window full on its own, so beyond two of them more
    /// would add only their partition buffers downstream to the peak memory (a month of 1m
    /// is 4.3 MB per task), not requests in flight. Short tasks (a nightly increment) never
    /// wait for this.
    pub max_long_tasks: usize,
    /// Rows per page; `None` = the cheapest per weight for the market.
    pub page_limit: Option<u32>,
    /// Typing options handed to the parser; `include_forming` keeps the forming candle.
    pub transform: TransformOptions,
    /// A candle counts as closed once its close time is this far in the exchange's past.
    pub closed_margin_ms: i64,
    /// How long after a window boundary the budget waits before using the new window
    /// (absorbs the error of our exchange-clock estimate).
    pub window_guard_ms: i64,
    /// Largest accepted reply body.
    pub max_body_bytes: usize,
    /// Probe the listing date once per symbol × interval (spot and USDⓈ-M).
    pub probe_listing: bool,
    /// Seed of the backoff jitter.
    pub jitter_seed: u64,
    /// Which kline endpoint the tasks read (`/klines` by default); the family's instrument
    /// parameter (`symbol` or `pair`) and `contractType` go with it.
    pub kline_family: KlineFamily,
    /// Endpoints with a request limit of their own on top of the weight budget (e.g.
    /// `/fundingRate`: 500 requests per 5 minutes per IP); none by default.
    pub endpoint_limits: Vec<EndpointLimit>,
}

/// A request-count limit of some endpoints, counted per request on a budget of its own
/// ([`BudgetState`] with weight 1 per request), besides the request weight every request
/// spends. `weight_share` applies to it as to the weight budget, and a 429 pauses both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointLimit {
    /// Paths under the market prefix it covers (`/fundingRate`, `/fundingInfo`).
    pub paths: Vec<&'static str>,
    /// Requests allowed per window.
    pub limit: WeightLimit,
}

impl ExtractConfig {
    /// Defaults for `market` at `base_url`.
    pub fn new(market: Market, base_url: impl Into<String>, transform: TransformOptions) -> Self {
        ExtractConfig {
            market,
            base_url: base_url.into(),
            api_key: None,
            weight_share: 0.95,
            max_ban_wait: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            backoff: BackoffPolicy::default(),
            concurrency: 16,
            max_active_tasks: 4,
            max_long_tasks: 2,
            page_limit: None,
            transform,
            closed_margin_ms: 1_000,
            window_guard_ms: 250,
            max_body_bytes: super::client::DEFAULT_MAX_BODY_BYTES,
            probe_listing: true,
            jitter_seed: 0x006b_6c69_6e65,
            kline_family: KlineFamily::Trades,
            endpoint_limits: Vec::new(),
        }
    }

    /// From a pipeline's `source` (the lead resolves `base_url`, e.g. a started simulator).
    pub fn from_source(
        source: &Source,
        base_url: impl Into<String>,
        transform: TransformOptions,
    ) -> Self {
        let mut c = ExtractConfig::new(source.market, base_url, transform);
        c.api_key.clone_from(&source.api_key);
        c.weight_share = source.weight_share;
        c.max_ban_wait = Duration::from_secs(source.max_ban_wait_secs);
        c.timeout = Duration::from_secs(source.timeout_secs.max(1));
        c.backoff.max_retries = source.max_retries;
        c
    }
}

/// Why workers stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Halt {
    Running,
    Cancelled,
    Banned(i64),
}

/// A failed attempt, as seen by the retry loop.
#[derive(Debug, Clone)]
enum Attempt {
    Transient(RetryCause, String),
    Throttled,
    Halted,
    Rejected {
        status: u16,
        code: Option<i64>,
        msg: String,
    },
}

/// A request that failed for good.
#[derive(Debug, Clone)]
enum FetchError {
    Halted,
    Rejected {
        status: u16,
        code: Option<i64>,
        msg: String,
    },
    Exhausted {
        attempts: u32,
        last: String,
    },
}

impl FetchError {
    fn into_task_error(self, task: &KlineTask, w: &PageWindow) -> Option<TaskError> {
        match self {
            FetchError::Halted => None,
            FetchError::Rejected { status, code, msg } => Some(TaskError::Rejected {
                task: task.to_string(),
                status,
                code: code.map_or_else(|| "none".to_owned(), |c| c.to_string()),
                msg,
            }),
            FetchError::Exhausted { attempts, last } => Some(TaskError::RetriesExhausted {
                task: task.to_string(),
                start: w.start,
                end: w.end,
                attempts,
                last,
            }),
        }
    }
}

/// Returns admitted weight to the budget even when the request future is dropped.
struct AdmissionGuard<'a> {
    budget: &'a WeightBudget,
    admission: Option<Admission>,
}

impl AdmissionGuard<'_> {
    /// `false` when `used` was an implausible header (ignored).
    fn complete(&mut self, used: Option<u32>) -> bool {
        match self.admission.take() {
            Some(a) => self.budget.complete(a, used),
            None => true,
        }
    }
}

impl Drop for AdmissionGuard<'_> {
    fn drop(&mut self) {
        let _ = self.complete(None);
    }
}

type Listing = Arc<OnceCell<Result<Option<i64>, FetchError>>>;

/// State shared by every worker of a run.
struct Shared {
    cfg: ExtractConfig,
    client: RestClient,
    budget: WeightBudget,
    /// One budget per [`EndpointLimit`], with the paths it covers.
    endpoint_budgets: Vec<(Vec<&'static str>, WeightBudget)>,
    run: Counters,
    halt: watch::Sender<Halt>,
    permits: Semaphore,
    /// Long tasks paging at once ([`ExtractConfig::max_long_tasks`]).
    long_tasks: Semaphore,
    progress: Arc<dyn Progress>,
    listings: Mutex<HashMap<(Symbol, Interval), Listing>>,
    /// Futures listing times from `exchangeInfo` (`onboardDate`), by symbol.
    onboard: Mutex<HashMap<String, i64>>,
    any_failed: AtomicBool,
    seed: AtomicU32,
    /// An implausible used-weight header was logged (once per run).
    implausible_weight: AtomicBool,
    /// Symbols (and futures pairs) `exchangeInfo` lists as `TRADING`: they have candles all
    /// through their history, so an empty page after their listing is suspect.
    trading: Mutex<std::collections::HashSet<String>>,
}

/// Runs kline tasks; see the module docs.
pub struct Extractor {
    cfg: ExtractConfig,
    progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Extractor {
    /// An extractor with `cfg` and no progress display.
    pub fn new(cfg: ExtractConfig) -> Extractor {
        Extractor {
            cfg,
            progress: Arc::new(NoProgress),
        }
    }

    /// Report progress to `progress`.
    #[must_use]
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Extractor {
        self.progress = progress;
        self
    }

    /// [`Extractor::connect`], then [`Session::run`].
    pub async fn run(
        self,
        tasks: Vec<KlineTask>,
        tx: mpsc::Sender<ExtractEvent>,
        cancel: watch::Receiver<bool>,
    ) -> Result<RunReport, ExtractError> {
        self.connect().await?.run(tasks, tx, cancel).await
    }

    /// Read the exchange's clock (`/time`) and limits (`/exchangeInfo`), both through the
    /// shared budget. The session answers "what time is it on the exchange" and "which
    /// symbols exist" without further requests, then runs the tasks.
    pub async fn connect(self) -> Result<Session, ExtractError> {
        let started = Instant::now();
        let cfg = self.cfg;
        let client = RestClient::new(&ClientConfig {
            market: cfg.market,
            base_url: cfg.base_url.clone(),
            api_key: cfg.api_key.clone(),
            timeout: cfg.timeout,
            max_body_bytes: cfg.max_body_bytes,
        })
        .map_err(ExtractError::Client)?;
        let limit = WeightLimit::per_minute(cfg.market.default_weight_limit());
        let budget = WeightBudget::new(
            BudgetState::provisional(limit, cfg.weight_share, cfg.window_guard_ms),
            ExchangeClock::default(),
        );
        let endpoint_budgets = cfg
            .endpoint_limits
            .iter()
            .map(|l| {
                let state = BudgetState::new(l.limit, cfg.weight_share, cfg.window_guard_ms);
                (
                    l.paths.clone(),
                    WeightBudget::new(state, ExchangeClock::default()),
                )
            })
            .collect();
        let (halt, _) = watch::channel(Halt::Running);
        let shared = Shared {
            endpoint_budgets,
            permits: Semaphore::new(cfg.concurrency.max(1)),
            long_tasks: Semaphore::new(cfg.max_long_tasks.max(1)),
            cfg,
            client,
            budget,
            run: Counters::default(),
            halt,
            progress: self.progress,
            listings: Mutex::new(HashMap::new()),
            onboard: Mutex::new(HashMap::new()),
            any_failed: AtomicBool::new(false),
            seed: AtomicU32::new(0),
            implausible_weight: AtomicBool::new(false),
            trading: Mutex::new(std::collections::HashSet::new()),
        };
        let info = shared.setup().await?;
        Ok(Session {
            shared,
            info,
            started,
        })
    }
}

/// A connected extractor: the exchange's clock is calibrated and its `exchangeInfo` read.
pub struct Session {
    shared: Shared,
    info: Option<ExchangeInfo>,
    started: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("cfg", &self.shared.cfg)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The exchange's current time (ms), from the `/time` calibration.
    pub fn now_ms(&self) -> i64 {
        self.shared.budget.clock().now_ms()
    }

    /// How many requests so far waited for the weight budget (a later window or a pause)
    /// before they were sent.
    pub fn budget_waits(&self) -> u64 {
        self.shared.budget.waits()
    }

    /// The `exchangeInfo` read at connect time, if the exchange answered it.
    pub fn exchange_info(&self) -> Option<&ExchangeInfo> {
        self.info.as_ref()
    }

    /// One request outside the kline tasks (the snapshot datasets' `/ticker/price` and
    /// `/depth`), through the same permits, weight budget, used-weight correction, retries
    /// and 429/418 handling as every kline page; a body that is not JSON (cut, HTML) is
    /// retried too. `weight` is the request's weight per the market's table.
    pub async fn request(
        &self,
        path: &str,
        query: Vec<(&str, String)>,
        weight: u32,
    ) -> Result<Bytes, super::snapshot::RequestError> {
        let counters = Counters::default();
        let meter = Meter {
            task: &counters,
            run: &self.shared.run,
        };
        let shared = &self.shared;
        shared
            .retrying(
                || async {
                    let body = shared.attempt(path, &query, weight, meter).await?;
                    // A cut or garbled body is retried like a bad kline page.
                    serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(|e| {
                        Attempt::Transient(RetryCause::BadBody, format!("{path}: {e}"))
                    })?;
                    Ok(body)
                },
                meter,
            )
            .await
            .map_err(|e| match e {
                FetchError::Halted => super::snapshot::RequestError::Halted,
                FetchError::Rejected { status, code, msg } => {
                    super::snapshot::RequestError::Rejected { status, code, msg }
                }
                FetchError::Exhausted { attempts, last } => {
                    super::snapshot::RequestError::Exhausted { attempts, last }
                }
            })
    }

    /// The run-level request counters so far (requests, weight, retries, 429s, 418s).
    pub fn metrics(&self) -> super::MetricsSnapshot {
        self.shared.run.snapshot(elapsed_ms(self.started))
    }

    /// The weight limit in force and this run's share of it.
    pub fn weight_limit(&self) -> (WeightLimit, f64) {
        self.shared.budget.with(|s| (s.limit(), s.share()))
    }

    /// Run `tasks` (task `i` gets `TaskId(i)`), sending rows and task ends to `tx`. Setting
    /// `cancel` to `true` stops the run cleanly: in-flight pages are dropped, every task still
    /// gets its `TaskDone`, and the outcome is [`RunOutcome::Cancelled`].
    pub async fn run(
        self,
        tasks: Vec<KlineTask>,
        tx: mpsc::Sender<ExtractEvent>,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<RunReport, ExtractError> {
        let Session {
            shared, started, ..
        } = self;
        let active = shared.cfg.max_active_tasks.max(1);
        let work = stream::iter(tasks.into_iter().enumerate())
            .map(|(i, t)| shared.run_task(TaskId(i), t, &tx))
            .buffer_unordered(active)
            .for_each(|()| async {});
        tokio::pin!(work);
        let watcher = async {
            loop {
                if *cancel.borrow_and_update() {
                    shared.stop(Halt::Cancelled);
                    return;
                }
                if cancel.changed().await.is_err() {
                    // Nobody can cancel any more.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = &mut work => {}
            () = watcher => work.await,
        }

        let halt = *shared.halt.borrow();
        let outcome = match halt {
            Halt::Banned(until_ms) => RunOutcome::BannedResumable { until_ms },
            Halt::Cancelled => RunOutcome::Cancelled,
            Halt::Running if shared.any_failed.load(Ordering::Relaxed) => RunOutcome::TasksFailed,
            Halt::Running => RunOutcome::Ok,
        };
        let (weight_limit, weight_share) = shared.budget.with(|s| (s.limit(), s.share()));
        Ok(RunReport {
            outcome,
            metrics: shared.run.snapshot(elapsed_ms(started)),
            weight_limit,
            weight_share,
            budget_waits: shared.budget.waits(),
        })
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis().try_into().unwrap_or(u64::MAX)
}

impl Shared {
    fn stop(&self, why: Halt) {
        self.halt.send_if_modified(|h| {
            if *h == Halt::Running {
                *h = why;
                true
            } else {
                false
            }
        });
    }

    fn halted(&self) -> bool {
        *self.halt.borrow() != Halt::Running
    }

    async fn until_halted(&self) {
        let mut rx = self.halt.subscribe();
        // The sender lives as long as `self`, so this only returns on a halt.
        let _ = rx.wait_for(|h| *h != Halt::Running).await;
    }

    /// `/time` (clock offset) and `/exchangeInfo` (weight limit and window).
    async fn setup(&self) -> Result<Option<ExchangeInfo>, ExtractError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Time {
            server_time: i64,
        }
        let counters = Counters::default();
        let meter = Meter {
            task: &counters,
            run: &self.run,
        };
        let sent = self.budget.clock().local_ms();
        let body = self.fetch("/time", Vec::new(), 1, meter).await;
        let received = self.budget.clock().local_ms();
        let time = match body {
            Ok(b) => serde_json::from_slice::<Time>(&b).map_err(|source| {
                super::client::HelperError::Body {
                    path: "/time".into(),
                    source,
                }
            }),
            Err(e) => Err(super::client::HelperError::Failed {
                path: "/time".into(),
                reason: fetch_error_text(&e),
            }),
        };
        let time = time.map_err(ExtractError::ServerTime)?;
        self.budget
            .clock()
            .calibrate(time.server_time, sent, received);
        for (_, b) in &self.endpoint_budgets {
            b.clock().calibrate(time.server_time, sent, received);
        }
        let offset = self.budget.clock().offset_ms();
        // Far behind ours is a simulator replaying the past (its clock rules, see
        // `ExchangeClock`); ahead, or a few seconds behind, is a clock to distrust.
        if offset > super::budget::CLOCK_WARN_MS
            || (-super::budget::MAX_WALL_SKEW_MS..-super::budget::CLOCK_WARN_MS).contains(&offset)
        {
            tracing::warn!(
                offset_ms = offset,
                exchange = %crate::time::fmt_ms(time.server_time),
                "the exchange's clock (/time) and the local clock differ by more than {} s; a candle counts as closed only before the earlier of the two",
                super::budget::CLOCK_WARN_MS / 1000
            );
        }

        let weight = self.cfg.market.exchange_info_weight();
        let info = match self.fetch("/exchangeInfo", Vec::new(), weight, meter).await {
            Ok(b) => match serde_json::from_slice::<ExchangeInfo>(&b) {
                Ok(info) => {
                    let mut onboard: HashMap<String, i64> = info
                        .symbols
                        .iter()
                        .filter_map(|s| Some((s.symbol.clone(), s.onboard_date?)))
                        .collect();
                    // Pair-based kline families (index price, continuous) name the pair
                    // (`BTCUSD` of `BTCUSD_PERP`): it exists since its first contract.
                    for s in &info.symbols {
                        if let (Some((pair, _)), Some(t)) =
                            (s.symbol.split_once('_'), s.onboard_date)
                        {
                            let e = onboard.entry(pair.to_owned()).or_insert(t);
                            *e = (*e).min(t);
                        }
                    }
                    *self
                        .onboard
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = onboard;
                    *self
                        .trading
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = info
                        .symbols
                        .iter()
                        .filter(|s| s.trading_status() == Some("TRADING"))
                        .flat_map(|s| {
                            let pair = s.symbol.split_once('_').map(|(p, _)| p.to_owned());
                            std::iter::once(s.symbol.clone()).chain(pair)
                        })
                        .collect();
                    match info.weight_limit() {
                        Some(l) => {
                            let now = self.budget.clock().window_now_ms();
                            self.budget.with(|s| s.set_limit(l, now));
                        }
                        None => tracing::warn!(
                            "exchangeInfo declares no REQUEST_WEIGHT limit; using the market default"
                        ),
                    }
                    Some(info)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable exchangeInfo; using the default weight limit");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %fetch_error_text(&e), "no exchangeInfo; using the default weight limit");
                None
            }
        };
        // No limit declared: the default is the limit now, and the headers count against it.
        let now = self.budget.clock().window_now_ms();
        self.budget.with(|s| {
            if !s.limit_known() {
                s.set_limit(s.limit(), now);
            }
        });
        Ok(info)
    }

    /// Wait for `budget` to admit `weight`, at most `max_ban_wait_secs` (at least a window):
    /// a longer wait stops the run (resumable, exit 3) instead of holding the lock for it.
    async fn admit(&self, budget: &WeightBudget, weight: u32) -> Result<Admission, Attempt> {
        let max_wait = i64::try_from(self.cfg.max_ban_wait.as_millis()).unwrap_or(i64::MAX);
        tokio::select! {
            a = budget.acquire_within(weight, max_wait) => match a {
                Ok(a) => Ok(a),
                Err(w) => {
                    tracing::error!(
                        until = %crate::time::fmt_ms(w.until_ms),
                        what = if w.paused { "a 429/418 pause" } else { "the next weight window" },
                        "waiting longer than max_ban_wait_secs; stopping (resumable, exit 3)"
                    );
                    self.stop(Halt::Banned(w.until_ms));
                    Err(Attempt::Halted)
                }
            },
            () = self.until_halted() => Err(Attempt::Halted),
        }
    }

    /// One attempt: permit, budget, send, account, classify.
    async fn attempt(
        &self,
        path: &str,
        query: &[(&str, String)],
        weight: u32,
        meter: Meter<'_>,
    ) -> Result<Bytes, Attempt> {
        if self.halted() {
            return Err(Attempt::Halted);
        }
        // An endpoint with a request limit of its own: one request of it, before any weight.
        let endpoint_budget = self
            .endpoint_budgets
            .iter()
            .find(|(paths, _)| paths.contains(&path))
            .map(|(_, b)| b);
        let _endpoint_guard = match endpoint_budget {
            Some(b) => Some(AdmissionGuard {
                budget: b,
                admission: Some(self.admit(b, 1).await?),
            }),
            None => None,
        };
        let _permit = tokio::select! {
            p = self.permits.acquire() => p.map_err(|_| Attempt::Halted)?,
            () = self.until_halted() => return Err(Attempt::Halted),
        };
        let admission = self.admit(&self.budget, weight).await?;
        let mut guard = AdmissionGuard {
            budget: &self.budget,
            admission: Some(admission),
        };
        meter.each(|c| c.request(weight));
        self.progress.request(weight);
        let header = self.budget.with(|s| s.limit().header_name());
        let reply = match self.client.get(path, query, &header).await {
            Ok(r) => r,
            Err(e @ super::client::TransportError::Redirect { status, .. }) => {
                // Never followed, never retried: the exchange is not where it should be.
                let _ = guard.complete(None);
                return Err(Attempt::Rejected {
                    status,
                    code: None,
                    msg: e.to_string(),
                });
            }
            Err(e) => {
                let _ = guard.complete(None);
                return Err(Attempt::Transient(e.cause(), error_chain(&e)));
            }
        };
        if !guard.complete(reply.used_weight)
            && !self.implausible_weight.swap(true, Ordering::Relaxed)
        {
            let (limit, name) = self
                .budget
                .with(|s| (s.limit().limit, s.limit().header_name()));
            tracing::warn!(
                header = %name,
                value = reply.used_weight.unwrap_or(0),
                limit,
                "implausible used-weight header (far above the limit from exchangeInfo); ignoring such headers and keeping the limit (logged once)"
            );
        }
        if (200..300).contains(&reply.status)
            && let Some(used) = reply.used_weight
        {
            self.budget.with(|s| s.accepted(used));
        }
        // Retry-After and ban ends are relative to the rate-limit clock.
        let now = self.budget.clock().window_now_ms();
        match classify(reply.status, reply.retry_after.as_deref(), &reply.body, now) {
            Verdict::Ok => Ok(reply.body),
            Verdict::Retry(cause) => Err(Attempt::Transient(
                cause,
                super::retry::describe_reply(reply.status, &reply.body),
            )),
            Verdict::RateLimited { retry_after_ms } => {
                meter.each(Counters::rate_limited);
                self.budget.with(|s| s.on_rate_limited(now, retry_after_ms));
                if let Some(b) = endpoint_budget {
                    b.with(|s| s.on_rate_limited(now, retry_after_ms));
                }
                if u128::from(retry_after_ms) > self.cfg.max_ban_wait.as_millis() {
                    tracing::error!(
                        retry_after_ms,
                        "http 429 with a Retry-After longer than max_ban_wait_secs; stopping (resumable, exit 3)"
                    );
                    self.stop(Halt::Banned(now.saturating_add(
                        i64::try_from(retry_after_ms).unwrap_or(i64::MAX),
                    )));
                    return Err(Attempt::Halted);
                }
                tracing::warn!(
                    retry_after_ms,
                    "http 429: pausing and shrinking the weight share"
                );
                Err(Attempt::Throttled)
            }
            Verdict::Banned { until_ms } => {
                meter.each(Counters::banned);
                self.budget.with(|s| s.pause_until(until_ms));
                let wait = u64::try_from(until_ms - now).unwrap_or(0);
                if u128::from(wait) > self.cfg.max_ban_wait.as_millis() {
                    tracing::error!(
                        until_ms,
                        "http 418: banned longer than max_ban_wait; stopping"
                    );
                    self.stop(Halt::Banned(until_ms));
                    Err(Attempt::Halted)
                } else {
                    tracing::warn!(until_ms, "http 418: every worker waits for the ban to end");
                    Err(Attempt::Throttled)
                }
            }
            Verdict::Fatal { status, code, msg } => Err(Attempt::Rejected { status, code, msg }),
        }
    }

    /// Retry `op` (one attempt each call) with backoff; 429/418 waits do not use up retries.
    async fn retrying<T, F, Fut>(&self, op: F, meter: Meter<'_>) -> Result<T, FetchError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Attempt>>,
    {
        let seed = u64::from(self.seed.fetch_add(1, Ordering::Relaxed)) ^ self.cfg.jitter_seed;
        let throttles = AtomicU32::new(0);
        let policy = self.cfg.backoff;
        let r = op
            .retry(policy.jittered(seed))
            .sleep(tokio::time::sleep)
            .when(|e| match e {
                Attempt::Transient(..) => true,
                // A bound against an exchange that keeps throttling us whatever we do.
                Attempt::Throttled => throttles.fetch_add(1, Ordering::Relaxed) < 50,
                Attempt::Halted | Attempt::Rejected { .. } => false,
            })
            .adjust(|e, d| match e {
                // The budget already waits out Retry-After or the ban.
                Attempt::Throttled => Some(Duration::ZERO),
                _ => d,
            })
            .notify(|e, d| {
                let cause = match e {
                    Attempt::Transient(c, msg) => {
                        tracing::debug!(cause = c.as_str(), error = %msg, delay_ms = d.as_millis() as u64, "retrying");
                        *c
                    }
                    _ => RetryCause::RateLimited,
                };
                meter.each(|c| c.retry(cause));
            })
            .await;
        r.map_err(|e| match e {
            Attempt::Halted => FetchError::Halted,
            Attempt::Rejected { status, code, msg } => FetchError::Rejected { status, code, msg },
            Attempt::Transient(_, last) => FetchError::Exhausted {
                attempts: policy.max_retries + 1,
                last,
            },
            Attempt::Throttled => FetchError::Exhausted {
                attempts: policy.max_retries + 1,
                last: "still rate limited".into(),
            },
        })
    }

    async fn fetch(
        &self,
        path: &str,
        query: Vec<(&str, String)>,
        weight: u32,
        meter: Meter<'_>,
    ) -> Result<Bytes, FetchError> {
        self.retrying(|| self.attempt(path, &query, weight, meter), meter)
            .await
    }

    fn klines_query(
        &self,
        task: &KlineTask,
        start: i64,
        end_time: Option<i64>,
        limit: u32,
    ) -> Vec<(&'static str, String)> {
        let family = self.cfg.kline_family;
        let mut q = vec![(family.symbol_param(), task.symbol.as_str().to_owned())];
        if let Some(c) = family.contract_type() {
            q.push(("contractType", c.as_str().to_owned()));
        }
        q.extend([
            ("interval", task.interval.as_str().to_owned()),
            ("startTime", start.to_string()),
        ]);
        if let Some(e) = end_time {
            q.push(("endTime", e.to_string()));
        }
        q.push(("limit", limit.to_string()));
        q
    }

    /// The first open time the exchange has, probed once per symbol × interval.
    async fn listing(&self, task: &KlineTask, meter: Meter<'_>) -> Result<Option<i64>, FetchError> {
        let cell = {
            let mut map = self
                .listings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(map.entry((task.symbol.clone(), task.interval)).or_default())
        };
        cell.get_or_init(|| async {
            let query = self.klines_query(task, 0, None, 1);
            let weight = task.market.kline_weight(1);
            let ctx = self.context(task);
            self.retrying(
                || async {
                    let body = self
                        .attempt(self.cfg.kline_family.endpoint(), &query, weight, meter)
                        .await?;
                    let rows = self.parser()(&body, &ctx)
                        .map_err(|e| Attempt::Transient(RetryCause::BadBody, e.to_string()))?;
                    Ok(rows.open_time.first().copied())
                },
                meter,
            )
            .await
        })
        .await
        .clone()
    }

    /// The page parser of the run's kline family (premium-index values may be negative).
    fn parser(
        &self,
    ) -> fn(&[u8], &KlineContext<'_>) -> Result<KlineRows, crate::transform::ParseError> {
        if self.cfg.kline_family == KlineFamily::PremiumIndex {
            parse_signed_klines
        } else {
            parse_klines
        }
    }

    fn context<'a>(&'a self, task: &'a KlineTask) -> KlineContext<'a> {
        KlineContext {
            market: task.market,
            symbol: &task.symbol,
            interval: task.interval,
            options: &self.cfg.transform,
        }
    }

    /// One page: fetch, parse, screen (retrying bad pages), keep the accepted rows. A page
    /// with malformed rows is asked for again up to [`SUSPECT_RETRIES`] times; rows still
    /// malformed then are returned as findings, never dropped silently.
    async fn fetch_page(
        &self,
        task: &KlineTask,
        w: &PageWindow,
        after: Option<i64>,
        meter: Meter<'_>,
    ) -> Result<WindowRows, FetchError> {
        let query = self.klines_query(task, w.start, Some(w.end_time()), w.limit);
        let weight = task.market.kline_weight(w.limit);
        let mut again = 0;
        let (rows, screen) = loop {
            let (rows, screen) = self
                .retrying(
                    || async {
                        let body = self
                            .attempt(self.cfg.kline_family.endpoint(), &query, weight, meter)
                            .await?;
                        let bad = |m: String| Attempt::Transient(RetryCause::BadBody, m);
                        let rows = self.parse_off_task(task, body).await.map_err(bad)?;
                        let closed_before = (!self.cfg.transform.include_forming).then(|| {
                            self.budget.clock().closed_cut_ms() - self.cfg.closed_margin_ms
                        });
                        let screen = screen_page(
                            task.interval,
                            w,
                            after,
                            closed_before,
                            &rows.open_time,
                            &rows.close_time,
                        )
                        .map_err(|e| bad(format!("{task}: {e}")))?;
                        Ok((rows, screen))
                    },
                    meter,
                )
                .await?;
            if !screen.has_malformed() || again >= self.suspect_retries() {
                break (rows, screen);
            }
            tracing::debug!(task = %task, window = %crate::time::fmt_ms(w.start), "malformed rows in the reply; asking again");
            meter.each(|c| c.retry(RetryCause::InvalidRow));
            self.pause_before_asking_again(again).await?;
            again += 1;
        };
        meter.each(|c| c.page(&screen));
        let n = rows.len();
        let rows = match &screen.keep {
            None => rows,
            Some(mask) => {
                let idx: Vec<usize> = mask
                    .iter()
                    .enumerate()
                    .filter_map(|(i, k)| k.then_some(i))
                    .collect();
                rows.take(&idx)
            }
        };
        Ok(WindowRows {
            rows,
            received: n,
            last_open: screen.last_open,
            malformed: screen.malformed,
        })
    }

    /// How many more times a page with malformed rows, or an empty page inside history, is
    /// asked for (never more than `max_retries`).
    fn suspect_retries(&self) -> u32 {
        SUSPECT_RETRIES.min(self.cfg.backoff.max_retries)
    }

    /// The backoff before asking for a suspect page again (`again` = 0 for the first time);
    /// ends early when the run halts.
    async fn pause_before_asking_again(&self, again: u32) -> Result<(), FetchError> {
        let delay = self.cfg.backoff.ceiling(again);
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            () = self.until_halted() => Err(FetchError::Halted),
        }
    }

    /// Parse a page on the blocking pool, so pages of many windows parse in parallel while
    /// this task keeps driving requests.
    async fn parse_off_task(&self, task: &KlineTask, body: Bytes) -> Result<KlineRows, String> {
        let symbol = task.symbol.clone();
        let (market, interval, options) = (task.market, task.interval, self.cfg.transform);
        let parse = self.parser();
        tokio::task::spawn_blocking(move || {
            let ctx = KlineContext {
                market,
                symbol: &symbol,
                interval,
                options: &options,
            };
            parse(&body, &ctx).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("the page parser stopped: {e}"))?
    }

    /// A whole window, following continuations if a page came back full.
    async fn fetch_window(
        &self,
        task: &KlineTask,
        w: PageWindow,
        meter: Meter<'_>,
    ) -> Result<WindowRows, FetchError> {
        let mut cur = w;
        let mut after = None;
        let mut out: Option<WindowRows> = None;
        loop {
            let page = self.fetch_page(task, &cur, after, meter).await?;
            if let Some(&last) = page.rows.open_time.last() {
                after = Some(last);
            }
            let next = continuation(
                task.market,
                task.interval,
                &cur,
                page.received,
                page.last_open,
            );
            match &mut out {
                None => out = Some(page),
                Some(o) => {
                    o.rows.append(page.rows);
                    o.received += page.received;
                    o.malformed.extend(page.malformed);
                }
            }
            match next {
                Some(next) => cur = next,
                None => break,
            }
        }
        Ok(out.unwrap_or_else(|| WindowRows {
            rows: KlineRows::empty(self.cfg.transform.prices),
            received: 0,
            last_open: None,
            malformed: Vec::new(),
        }))
    }

    /// An empty window inside history (the exchange has candles after it), asked for again up
    /// to [`SUSPECT_RETRIES`] times: `Some` with what it answered once it sends rows, `None`
    /// when it stays empty.
    async fn recheck_empty(
        &self,
        task: &KlineTask,
        w: PageWindow,
        meter: Meter<'_>,
    ) -> Result<Option<WindowRows>, FetchError> {
        for again in 0..self.suspect_retries() {
            meter.each(|c| c.retry(RetryCause::EmptyReply));
            self.pause_before_asking_again(again).await?;
            let got = self.fetch_window(task, w, meter).await?;
            if got.received > 0 {
                return Ok(Some(got));
            }
        }
        Ok(None)
    }

    /// Hand a fetched window downstream: its malformed rows become findings (and windows for
    /// the next run, or the task's failure with `on_violation: fail`), its rows are sent.
    async fn accept(
        &self,
        out: Downstream<'_>,
        task: &KlineTask,
        w: &PageWindow,
        got: WindowRows,
        log: &mut TaskLog,
    ) -> Result<(), TaskStatus> {
        let Downstream { id, tx } = out;
        if !got.malformed.is_empty() {
            let mut found = crate::transform::QualityReport {
                rows: got.malformed.len() as u64,
                ..Default::default()
            };
            for (check, t) in &got.malformed {
                found.record(*check, *t);
            }
            let summary = found.summary();
            log.quality.merge(&found);
            if self.cfg.transform.on_violation == OnViolation::Fail {
                let err = TaskError::InvalidRows {
                    task: task.to_string(),
                    start: w.start,
                    end: w.end,
                    summary,
                };
                log.failed_windows.push(FailedWindow {
                    start: w.start,
                    end: task.end_ms,
                    reason: err.to_string(),
                    cause: WindowCause::InvalidRow,
                });
                return Err(TaskStatus::Failed(err));
            }
            tracing::warn!(
                task = %task,
                retried = self.suspect_retries(),
                "malformed rows from the exchange, not written: {summary}; their candles are refetched by the next run (or `kline-etl repair`)"
            );
            let times: Vec<i64> = got.malformed.iter().map(|(_, t)| *t).collect();
            for (start, end) in slot_windows(task.interval, &times) {
                log.failed_windows.push(FailedWindow {
                    start,
                    end,
                    reason: format!("malformed rows: {summary}"),
                    cause: WindowCause::InvalidRow,
                });
            }
        }
        if got.rows.is_empty() {
            return Ok(());
        }
        self.progress.rows(id, got.rows.len());
        if tx
            .send(ExtractEvent::Rows {
                task: id,
                rows: got.rows,
                hold: None,
            })
            .await
            .is_err()
        {
            self.stop(Halt::Cancelled);
            return Err(TaskStatus::Stopped {
                resume_from: w.start,
            });
        }
        Ok(())
    }

    async fn run_task(&self, id: TaskId, task: KlineTask, tx: &mpsc::Sender<ExtractEvent>) {
        let started = Instant::now();
        let counters = Counters::default();
        let meter = Meter {
            task: &counters,
            run: &self.run,
        };
        let mut log = TaskLog::default();
        let status = self.drive_task(id, &task, tx, meter, &mut log).await;
        if matches!(status, TaskStatus::Failed(_)) {
            self.any_failed.store(true, Ordering::Relaxed);
            if let TaskStatus::Failed(e) = &status {
                tracing::error!(task = %task, error = %e, "task failed");
            }
        }
        let outcome = TaskOutcome {
            status,
            listed_from: log.listed_from,
            failed_windows: log.failed_windows,
            quality: log.quality,
            metrics: counters.snapshot(elapsed_ms(started)),
        };
        self.progress.task_done(id, &outcome);
        // A closed channel means the consumer is gone; there is no one left to tell.
        let _ = tx.send(ExtractEvent::TaskDone { task: id, outcome }).await;
    }

    /// Why `task` is not started at all: another market's task, an interval the market does
    /// not serve, or a run already halted.
    fn refuse(&self, task: &KlineTask) -> Option<TaskStatus> {
        let market = self.cfg.market;
        if task.market != market {
            return Some(TaskStatus::Failed(TaskError::WrongMarket {
                task: task.to_string(),
                expected: market,
            }));
        }
        if !market.supports(task.interval) {
            return Some(TaskStatus::Failed(TaskError::Unsupported {
                task: task.to_string(),
            }));
        }
        if self.halted() {
            return Some(TaskStatus::Stopped {
                resume_from: task.start_ms,
            });
        }
        None
    }

    async fn drive_task(
        &self,
        id: TaskId,
        task: &KlineTask,
        tx: &mpsc::Sender<ExtractEvent>,
        meter: Meter<'_>,
        log: &mut TaskLog,
    ) -> TaskStatus {
        if let Some(refused) = self.refuse(task) {
            return refused;
        }
        let market = self.cfg.market;
        let i = task.interval;
        // Nothing exists past the forming candle: never plan windows after it.
        let now = self.budget.clock().closed_cut_ms();
        let end = task.end_ms.min(i.next(i.floor(now)));
        let mut start = task.start_ms;
        let page = self
            .cfg
            .page_limit
            .unwrap_or_else(|| market.best_kline_page());
        // The probe pays off only when it can skip pages: a range of one page (a nightly
        // incremental run) costs one request, not two.
        let worth_probing = plan_windows(market, i, start, end, page).nth(1).is_some();
        if market.max_kline_window_ms().is_some() {
            // COIN-M cannot probe (its 200-day rule); exchangeInfo's onboardDate says where
            // the contract's history starts, so the empty years before it are not walked.
            let onboard = self
                .onboard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(task.symbol.as_str())
                .copied();
            if let Some(t) = onboard {
                let first = i.floor(t);
                log.listed_from = Some(first);
                start = start.max(first);
            }
        } else if self.cfg.probe_listing && worth_probing && start < end {
            let whole = PageWindow {
                start: task.start_ms,
                end: task.end_ms,
                limit: 1,
            };
            match self.listing(task, meter).await {
                Ok(Some(first)) => {
                    log.listed_from = Some(first);
                    start = start.max(first);
                }
                // No candle at all: believed for a symbol that is not trading; a trading
                // symbol's empty probe is suspect, so its range is walked without it.
                Ok(None) if !self.is_trading(task) => return TaskStatus::Complete,
                Ok(None) => {
                    tracing::warn!(task = %task, "the listing probe answered no candle for a trading symbol; walking the whole range");
                }
                Err(FetchError::Halted) => {
                    return TaskStatus::Stopped {
                        resume_from: task.start_ms,
                    };
                }
                Err(e) => {
                    let err = e.into_task_error(task, &whole);
                    log.failed_windows.push(FailedWindow {
                        start: task.start_ms,
                        end: task.end_ms,
                        reason: err.as_ref().map(ToString::to_string).unwrap_or_default(),
                        cause: WindowCause::FetchFailed,
                    });
                    return err.map_or(
                        TaskStatus::Stopped {
                            resume_from: task.start_ms,
                        },
                        TaskStatus::Failed,
                    );
                }
            }
        }
        let closed = if self.cfg.transform.include_forming {
            end
        } else {
            end.min(i.floor(now))
        };
        let planned = count_windows(market, i, start, end, page);
        // Held until the task ends (never closed, so `ok()` is always a permit).
        let _long = if planned > self.cfg.concurrency.max(1) {
            self.long_tasks.acquire().await.ok()
        } else {
            None
        };
        self.progress
            .task_started(id, planned, i.count_in(start, closed).max(0) as u64);
        let mut windows = stream::iter(plan_windows(market, i, start, end, page))
            .map(|w| async move { (w, self.fetch_window(task, w, meter).await) })
            .buffered(self.cfg.concurrency.max(1));
        // Empty windows after data, held until it is known whether the exchange has data
        // after them too (then they are suspect: asked for again, then reported).
        let mut empties: Vec<PageWindow> = Vec::new();
        let mut seen_rows = false;
        let out = Downstream { id, tx };
        let trading = self.is_trading(task);
        while let Some((w, res)) = windows.next().await {
            let got = match res {
                Ok(got) => {
                    self.progress.page_done(id);
                    got
                }
                Err(e) => return Self::window_failed(task, &w, end, e, log),
            };
            if got.received == 0 {
                let listed = log.listed_from.is_none_or(|l| l <= w.start);
                if is_suspect_empty(got.received, false, false, trading && listed) {
                    // Asked for again at once (in order: nothing after it is sent yet).
                    if let Err(status) = self.settle_empty(out, task, w, end, meter, log).await {
                        return status;
                    }
                } else if seen_rows {
                    // Suspect if the exchange has candles after it: known once a later
                    // window has rows, so it waits here.
                    empties.push(w);
                }
                continue;
            }
            for e in std::mem::take(&mut empties) {
                if let Err(status) = self.settle_empty(out, task, e, end, meter, log).await {
                    return status;
                }
            }
            seen_rows = true;
            if let Err(status) = self.accept(out, task, &w, got, log).await {
                return status;
            }
        }
        TaskStatus::Complete
    }

    /// Whether `exchangeInfo` lists the task's symbol (or pair) as trading.
    fn is_trading(&self, task: &KlineTask) -> bool {
        self.trading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(task.symbol.as_str())
    }

    /// A suspect empty window `e`: asked for again; what it then sends is accepted, and if it
    /// stays empty it is recorded as an `empty_reply` window (the next run refetches it).
    async fn settle_empty(
        &self,
        out: Downstream<'_>,
        task: &KlineTask,
        e: PageWindow,
        end: i64,
        meter: Meter<'_>,
        log: &mut TaskLog,
    ) -> Result<(), TaskStatus> {
        match self.recheck_empty(task, e, meter).await {
            Ok(Some(again)) => self.accept(out, task, &e, again, log).await,
            Ok(None) => {
                tracing::warn!(
                    task = %task,
                    start = %crate::time::fmt_ms(e.start),
                    end = %crate::time::fmt_ms(e.end),
                    "the exchange answered an empty page inside its history, still after retries; reported as a suspect `empty_reply` gap: the next run (or `kline-etl repair`) asks once more, and empty again it is the exchange's own gap"
                );
                log.failed_windows.push(FailedWindow {
                    start: e.start,
                    end: e.end,
                    reason: "empty reply inside the exchange's history".to_owned(),
                    cause: WindowCause::EmptyReply,
                });
                Ok(())
            }
            Err(err) => Err(Self::window_failed(task, &e, end, err, log)),
        }
    }

    /// The task's status when window `w` could not be fetched (`end` is the task's end).
    fn window_failed(
        task: &KlineTask,
        w: &PageWindow,
        end: i64,
        e: FetchError,
        log: &mut TaskLog,
    ) -> TaskStatus {
        let Some(err) = e.into_task_error(task, w) else {
            return TaskStatus::Stopped {
                resume_from: w.start,
            };
        };
        // Nothing after the failed window is delivered: the task resumes there.
        log.failed_windows.push(FailedWindow {
            start: w.start,
            end,
            reason: err.to_string(),
            cause: WindowCause::FetchFailed,
        });
        TaskStatus::Failed(err)
    }
}

/// How many more times a page with malformed rows, or an empty page inside the exchange's
/// history, is asked for before it is reported.
pub const SUSPECT_RETRIES: u32 = 2;

/// One window's reply (or several pages of it): the rows kept, how many the exchange sent,
/// the last open time on the grid (for continuations) and the malformed rows.
#[derive(Debug)]
struct WindowRows {
    rows: KlineRows,
    received: usize,
    last_open: Option<i64>,
    malformed: Vec<(crate::transform::quality::Check, i64)>,
}

/// Where a task's rows go: its id and the channel to the loader.
#[derive(Clone, Copy)]
struct Downstream<'a> {
    id: TaskId,
    tx: &'a mpsc::Sender<ExtractEvent>,
}

/// What a task records besides its rows.
#[derive(Debug, Default)]
struct TaskLog {
    failed_windows: Vec<FailedWindow>,
    listed_from: Option<i64>,
    quality: crate::transform::QualityReport,
}

fn fetch_error_text(e: &FetchError) -> String {
    match e {
        FetchError::Halted => "stopped".into(),
        FetchError::Rejected { status, code, msg } => {
            format!("http {status}, code {code:?}: {msg}")
        }
        FetchError::Exhausted { attempts, last } => format!("{attempts} attempts: {last}"),
    }
}

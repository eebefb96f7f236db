//! The built-in Binance-compatible exchange simulator: an axum server on loopback that serves
//! the market-data endpoints of spot (`/api/v3`), USDⓈ-M (`/fapi/v1`) and COIN-M (`/dapi/v1`)
//! from deterministic synthetic markets or replayed real data, with Binance's weight limits,
//! 429/418 behaviour, error bodies, a controllable data clock and injectable faults.
//!
//! # Starting it
//!
//! - In-process (tests, benches): `Simulator::start(SimConfig::default()).await?` binds
//!   `127.0.0.1:0`; [`SimHandle::base_url`] gives `http://127.0.0.1:PORT`.
//! - From the CLI: [`serve_until_ctrl_c`] prints the address and serves until Ctrl-C.
//! - From a pipeline: [`SimConfig::from_settings`] turns `source.simulator` settings into a
//!   config with the default universe ([`default_universe`]).
//!
//! # API
//!
//! [`SimConfig`] (`Default` + `with_*` builders), [`Simulator::start`] -> [`SimHandle`] with
//! `base_url`, `stats` (also `GET /__sim/stats`), `now_ms`, `set_now`, `advance`,
//! `expected_klines` (the ground truth: closed candles in `[start, end)`, produced by the same
//! code that serves requests) and `shutdown`.
//!
//! # Endpoints
//!
//! `ping`, `time`, `exchangeInfo` (`symbol`/`symbols`), `klines` (and `uiKlines` on spot,
//! served identically), `ticker/price` (all, `symbol`, `symbols`), `depth` and, on futures,
//! `fundingRate` ([`funding`], with its own limit of 500 requests per 5 minutes), with Binance's
//! weights (`crate::market::Market` holds the kline tables). `X-MBX-TIME-UNIT: MICROSECOND`
//! switches response times to µs; `startTime`/`endTime` are read as µs when `>= 10^14`.
//!
//! # Choices where the reference is unconfirmed (binance-api.md §10)
//!
//! - A kline is returned iff `startTime <= openTime <= endTime`; an unaligned `startTime`
//!   selects the first candle opening at or after it.
//! - Spot `startTime > endTime`: `200 []` (futures: `-1023`).
//! - `limit` outside `1..=max` (1000 spot, 1500 futures): `400 -1130` on every market.
//! - Parameter checks run in this order: missing `symbol`/`interval` (`-1102`), non-numeric
//!   `startTime`/`endTime`/`limit` or illegal symbol characters (`-1100`), unknown interval or
//!   `1s` on futures (`-1120`), unknown or not-yet-listed symbol (`-1121`), `limit` (`-1130`),
//!   `startTime > endTime` on futures (`-1023`), COIN-M window over 200 days (`-1127`).
//!   Unknown parameters are ignored; `timeZone` other than `0` is `-1130`.
//! - `3d` candles are anchored at the epoch, `1w` on Monday, `1M` on calendar months
//!   (`crate::interval`).
//! - `uiKlines` returns the same rows as `klines`.
//! - 429 and 418 replies carry the used-weight header; they add no weight (see [`limits`]).
//! - Delisted symbols keep serving their history; exchangeInfo says `BREAK` (spot) or
//!   `SETTLING` (futures). Symbols listed after `now` do not exist yet (`-1121`).
//! - COIN-M `exchangeInfo` symbols carry both `status` and `contractStatus`; single-symbol
//!   `ticker/price` on COIN-M answers with an array, as the real dapi does.
//! - Futures `depth` rounds `limit` up to the next valid value (5, 10, 20, 50, 100, 500, 1000);
//!   spot clamps it to 5000.
//! - Unknown paths answer `404` with an empty body.

pub mod archive;
pub mod clock;
pub mod data;
pub mod faults;
pub mod funding;
pub mod limits;
mod server;
mod state;
pub mod stats;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use archive::{ArchiveConfig, ArchiveFault};
pub use clock::ClockMode;
pub use data::{KlineRow, Outage, ReplayError, SymbolSpec};
pub use faults::{FaultKind, FaultPlan, Latency};
pub use limits::{LimitsConfig, RateWindow, WindowUnit};
pub use stats::{SimStats, WindowWeight};

use crate::config::SimulatorSettings;
use crate::interval::Interval;
use crate::market::Market;
use crate::symbol::Symbol;

/// Why the simulator could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The port could not be bound.
    #[error("cannot bind the simulator to `{addr}`")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A replay file is unusable.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// Waiting for Ctrl-C failed.
    #[error("cannot listen for ctrl-c")]
    Signal(#[source] std::io::Error),
}

/// The simulator's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed of the synthetic markets.
    pub seed: u64,
    /// The symbols of each market.
    pub symbols: BTreeMap<Market, Vec<SymbolSpec>>,
    /// Weight limits, window and ban policy.
    pub limits: LimitsConfig,
    /// Latency and faults.
    pub faults: FaultPlan,
    /// The data clock.
    pub clock: ClockMode,
    /// The port to bind on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// The data.binance.vision-style archive: publication lags and per-file faults.
    pub archive: ArchiveConfig,
    /// The funding endpoints' own request limit (default 500 per 5 minutes, see [`funding`]).
    pub funding_limits: LimitsConfig,
    /// Keep every rendered kline page of closed candles and serve repeats of a request from
    /// memory (for client benchmarks; memory grows with the pages served).
    pub memo_pages: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            symbols: default_universe(),
            limits: LimitsConfig::default(),
            faults: FaultPlan::none(),
            clock: ClockMode::Real,
            port: 0,
            archive: ArchiveConfig::default(),
            funding_limits: funding::default_limits(),
            memo_pages: false,
        }
    }
}

impl SimConfig {
    /// The config a pipeline's `source.simulator` asks for: the default universe, the given
    /// seed, fixed latency and (for `market`) weight limit.
    pub fn from_settings(settings: &SimulatorSettings, market: Market) -> Self {
        let mut c = Self::default().with_seed(settings.seed);
        c.faults.latency.fixed_ms = settings.latency_ms;
        if let Some(limit) = settings.weight_limit {
            c = c.with_weight_limit(market, limit);
        }
        c
    }

    /// Set the seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Bind this port instead of a free one.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Set the REQUEST_WEIGHT limit of `market`.
    #[must_use]
    pub fn with_weight_limit(mut self, market: Market, limit: u32) -> Self {
        self.limits.weight_limit.insert(market, limit);
        self
    }

    /// Set the rate-limit window (e.g. `RateWindow::seconds(10)`).
    #[must_use]
    pub fn with_window(mut self, window: RateWindow) -> Self {
        self.limits.window = window;
        self
    }

    /// Set the length of a first ban.
    #[must_use]
    pub fn with_ban_base(mut self, base: Duration) -> Self {
        self.limits.ban_base = base;
        self
    }

    /// Set the funding endpoints' request limit: `limit` requests per `window` on every market.
    #[must_use]
    pub fn with_funding_limit(mut self, limit: u32, window: RateWindow) -> Self {
        self.funding_limits.window = window;
        for m in Market::ALL {
            self.funding_limits.weight_limit.insert(m, limit);
        }
        self
    }

    /// Set the archive's lags and per-file faults.
    #[must_use]
    pub fn with_archive(mut self, archive: ArchiveConfig) -> Self {
        self.archive = archive;
        self
    }

    /// Serve repeated kline requests from a memo of rendered pages ([`SimConfig::memo_pages`]).
    #[must_use]
    pub fn with_memo_pages(mut self) -> Self {
        self.memo_pages = true;
        self
    }

    /// Set the faults.
    #[must_use]
    pub fn with_faults(mut self, faults: FaultPlan) -> Self {
        self.faults = faults;
        self
    }

    /// Freeze the data clock at `now_ms`.
    #[must_use]
    pub fn with_now(mut self, now_ms: i64) -> Self {
        self.clock = ClockMode::Fixed(now_ms);
        self
    }

    /// Add `spec` to `market`, replacing a symbol of the same name.
    #[must_use]
    pub fn with_symbol(mut self, market: Market, spec: SymbolSpec) -> Self {
        let list = self.symbols.entry(market).or_default();
        list.retain(|s| s.symbol != spec.symbol);
        list.push(spec);
        self
    }

    /// Add `n` synthetic spot symbols `SIM01USDT`, `SIM02USDT`, ... listed 2020-01-01 (prices
    /// 1 to 1000), for benchmarks over many symbols; `0` adds none.
    #[must_use]
    pub fn with_extra_spot_symbols(mut self, n: u32) -> Self {
        for i in 1..=n {
            let name = format!("SIM{i:02}USDT");
            let price = 10f64.powi(i32::try_from(i % 4).unwrap_or(0));
            let spec =
                SymbolSpec::synthetic(&name, &format!("SIM{i:02}"), "USDT", ms(2020, 1, 1), price);
            self = self.with_symbol(Market::Spot, spec);
        }
        self
    }

    /// Back `symbol` on `market` at `interval` with the rows of a fixture file (CSV or JSON);
    /// calling it again for the same series adds the file's rows. An unknown symbol is added (listed at its first row); a synthetic one becomes replayed.
    pub fn with_replay(
        mut self,
        market: Market,
        symbol: &str,
        interval: Interval,
        path: &Path,
    ) -> Result<Self, SimError> {
        let rows = data::read_rows(path)?;
        let list = self.symbols.entry(market).or_default();
        let first = rows.first().map_or(0, |r| r.open_time);
        let idx = if let Some(i) = list.iter().position(|s| s.symbol == symbol) {
            i
        } else {
            list.push(SymbolSpec::synthetic(symbol, symbol, "", first, 1.0));
            list.len() - 1
        };
        let spec = &mut list[idx];
        spec.listed_ms = spec.listed_ms.min(first);
        let mut merged: Vec<KlineRow> = spec
            .replay
            .get(&interval)
            .map(|r| r.to_vec())
            .unwrap_or_default();
        merged.extend(rows);
        merged.sort_by_key(|r| r.open_time);
        merged.dedup_by_key(|r| r.open_time);
        spec.replay.insert(interval, merged.into());
        Ok(self)
    }
}

fn ms(y: i32, m: u32, d: u32) -> i64 {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
        .single()
        .map_or(0, |t| t.timestamp_millis())
}

/// The default universe.
///
/// Spot: BTCUSDT (with the real 2023-03-24 halt: the 12:00 hour closes at 12:39:41.646 and
/// 13:00 is missing), ETHUSDT, BNBUSDT, SOLUSDT, XRPUSDT, ADAUSDT, LUNAUSDT (delisted
/// 2022-05-13) and NEWUSDT (listed 2026-11-01). USDⓈ-M: the same six from their futures
/// listing dates, SRMUSDT (delisted 2022-11-15) and NEWUSDT. COIN-M: BTCUSD_PERP,
/// ETHUSD_PERP, LUNAUSD_PERP (delisted 2022-05-13) and NEWUSD_PERP (listed 2026-11-01).
pub fn default_universe() -> BTreeMap<Market, Vec<SymbolSpec>> {
    let spot = |s: &str, b: &str, listed: i64, price: f64, pd: u32, qd: u32| {
        let mut x = SymbolSpec::synthetic(s, b, "USDT", listed, price);
        x.price_decimals = pd;
        x.qty_decimals = qd;
        x
    };
    let mut btc = spot("BTCUSDT", "BTC", ms(2017, 8, 17), 30_000.0, 2, 5);
    btc.outages.push(Outage {
        start_ms: 1_679_661_581_647,
        end_ms: 1_679_666_400_000,
    });
    let mut luna = spot("LUNAUSDT", "LUNA", ms(2020, 8, 21), 20.0, 2, 2);
    luna.delisted_ms = Some(ms(2022, 5, 13));
    let spot_list = vec![
        btc,
        spot("ETHUSDT", "ETH", ms(2017, 8, 17), 2_000.0, 2, 4),
        spot("BNBUSDT", "BNB", ms(2017, 11, 6), 300.0, 2, 3),
        spot("SOLUSDT", "SOL", ms(2020, 8, 11), 100.0, 2, 3),
        spot("XRPUSDT", "XRP", ms(2018, 5, 4), 0.5, 4, 1),
        spot("ADAUSDT", "ADA", ms(2018, 4, 17), 0.4, 4, 1),
        luna,
        spot("NEWUSDT", "NEW", ms(2026, 11, 1), 1.5, 4, 1),
    ];
    let mut srm = spot("SRMUSDT", "SRM", ms(2020, 9, 10), 1.0, 4, 0);
    srm.delisted_ms = Some(ms(2022, 11, 15));
    let usdm_list = vec![
        spot("BTCUSDT", "BTC", ms(2019, 9, 8), 30_000.0, 1, 3),
        spot("ETHUSDT", "ETH", ms(2019, 11, 27), 2_000.0, 2, 3),
        spot("BNBUSDT", "BNB", ms(2020, 2, 10), 300.0, 2, 2),
        spot("SOLUSDT", "SOL", ms(2020, 9, 14), 100.0, 2, 0),
        spot("XRPUSDT", "XRP", ms(2020, 1, 6), 0.5, 4, 1),
        spot("ADAUSDT", "ADA", ms(2020, 1, 31), 0.4, 4, 0),
        srm,
        spot("NEWUSDT", "NEW", ms(2026, 11, 1), 1.5, 4, 0),
    ];
    let coin = |s: &str, b: &str, listed: i64, price: f64, pd: u32, cs: u32| {
        let mut x = SymbolSpec::synthetic(s, b, "USD", listed, price);
        x.price_decimals = pd;
        x.qty_decimals = 0;
        x.contract_size = Some(cs);
        x.minute_volume = 200_000.0 / f64::from(cs);
        x.trade_size = 2_000.0 / f64::from(cs);
        x
    };
    let mut luna_perp = coin("LUNAUSD_PERP", "LUNA", ms(2021, 3, 1), 20.0, 3, 10);
    luna_perp.delisted_ms = Some(ms(2022, 5, 13));
    let coinm_list = vec![
        coin("BTCUSD_PERP", "BTC", ms(2020, 8, 10), 30_000.0, 1, 100),
        coin("ETHUSD_PERP", "ETH", ms(2020, 8, 14), 2_000.0, 2, 10),
        luna_perp,
        coin("NEWUSD_PERP", "NEW", ms(2026, 11, 1), 1.5, 4, 10),
    ];
    BTreeMap::from([
        (Market::Spot, spot_list),
        (Market::UsdM, usdm_list),
        (Market::CoinM, coinm_list),
    ])
}

/// The simulator's entry point.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Bind `127.0.0.1:<config.port>` and serve in a background task.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        // Clients in this process (tests, embedders) may build their own reqwest clients to
        // talk to the simulator; without an installed rustls provider that panics.
        crate::tls::ensure_provider();
        let addr = SocketAddr::from(([127, 0, 0, 1], config.port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let shared = Arc::new(state::Shared {
            universe: data::Universe::new(config.seed, &config.symbols),
            clock: clock::DataClock::new(config.clock),
            limiter: limits::Limiter::new(config.limits.clone()),
            funding_limiter: limits::Limiter::new(config.funding_limits.clone()),
            faults: config.faults.clone(),
            counter: AtomicU64::new(0),
            stats: Mutex::new(stats::StatsInner::default()),
            archive: config.archive.clone(),
            archive_cache: state::Cache::default(),
            pages: config.memo_pages.then(state::PageMemo::default),
        });
        let app = server::router(Arc::clone(&shared))
            .into_make_service_with_connect_info::<server::Conn>();
        let (tx, rx) = oneshot::channel::<()>();
        let join = tokio::spawn(async move {
            let _ = axum::serve(server::SimListener(listener), app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(SimHandle {
            addr: local,
            shared,
            stop: Some(tx),
            join: Some(join),
        })
    }
}

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<state::Shared>,
    stop: Option<oneshot::Sender<()>>,
    join: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`; append a market's prefix (`/api/v3`, ...) for requests.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimStats {
        self.shared.stats()
    }

    /// The data clock's current time (ms).
    pub fn now_ms(&self) -> i64 {
        self.shared.clock.now()
    }

    /// Freeze the data clock at `ms`.
    pub fn set_now(&self, ms: i64) {
        self.shared.clock.set(ms);
    }

    /// Advance the data clock by `ms` (a real clock is frozen at its current time first).
    pub fn advance(&self, ms: i64) {
        self.shared.clock.advance(ms);
    }

    /// The closed candles the exchange holds for `symbol` at `interval` opening in
    /// `[start_ms, end_ms)`, as of the data clock's now. Empty for an unknown symbol.
    pub fn expected_klines(
        &self,
        market: Market,
        symbol: &Symbol,
        interval: Interval,
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<KlineRow> {
        let now = self.now_ms();
        self.shared
            .universe
            .symbol(market, symbol.as_str())
            .filter(|s| s.spec.listed_ms <= now)
            .map(|s| s.closed_klines(market, interval, start_ms, end_ms, now))
            .unwrap_or_default()
    }

    /// Stop accepting connections, finish in-flight requests and wait for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(join) = self.join.take() {
            let _ = join.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Serve `config` on `127.0.0.1:port` (0: a free port), print
/// `simulator listening on http://127.0.0.1:PORT` and serve until Ctrl-C.
pub async fn serve_until_ctrl_c(config: SimConfig, port: u16) -> Result<(), SimError> {
    let handle = Simulator::start(config.with_port(port)).await?;
    println!("simulator listening on {}", handle.base_url());
    let waited = tokio::signal::ctrl_c().await;
    handle.shutdown().await;
    waited.map_err(SimError::Signal)
}

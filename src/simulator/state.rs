//! What every handler of the simulator shares ([`Shared`]): the synthetic universe, the data
//! clock, the request limiters, the fault plan, the request counter and stats, and the
//! archive's configuration ([`ArchiveConfig`], [`ArchiveFault`]) with its cache of built files,
//! and the optional memo of rendered kline pages ([`PageMemo`]).
//! The REST routes (`server`) and the archive routes (`archive`) both read it; neither imports
//! the other's state.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::clock::DataClock;
use super::data::Universe;
use super::faults::FaultPlan;
use super::limits::Limiter;
use super::stats::{SimStats, StatsInner};
use crate::interval::DAY_MS;

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) universe: Universe,
    pub(crate) clock: DataClock,
    pub(crate) limiter: Limiter,
    /// The funding endpoints' request limit ([`super::funding`]).
    pub(crate) funding_limiter: Limiter,
    pub(crate) faults: FaultPlan,
    pub(crate) counter: AtomicU64,
    pub(crate) stats: Mutex<StatsInner>,
    pub(crate) archive: ArchiveConfig,
    pub(crate) archive_cache: Cache,
    /// Rendered kline pages of closed candles, when the simulator was asked to keep them
    /// (`simulate --memo-pages`): a benchmark's server then costs next to nothing.
    pub(crate) pages: Option<PageMemo>,
}

/// Kline pages by request (market, endpoint, instrument, interval, selection, time unit),
/// each with its row count. Only pages whose candles are all closed go in, so a page served
/// from here is the one the simulator would render again.
#[derive(Debug, Default)]
pub(crate) struct PageMemo(Mutex<HashMap<String, (Bytes, usize)>>);

impl PageMemo {
    pub(crate) fn get(&self, key: &str) -> Option<(Bytes, usize)> {
        self.lock().get(key).cloned()
    }

    pub(crate) fn put(&self, key: String, body: Bytes, rows: usize) {
        self.lock().insert(key, (body, rows));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Bytes, usize)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Shared {
    pub(crate) fn stats(&self) -> SimStats {
        let inner = self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.snapshot(&self.limiter.history())
    }

    pub(crate) fn record(&self, f: impl FnOnce(&mut StatsInner)) {
        let mut inner = self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut inner);
    }
}

/// One injected archive fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFault {
    /// 404 for the zip and its `.CHECKSUM`.
    Missing,
    /// A `.CHECKSUM` that does not match the zip.
    BadChecksum,
    /// The zip cut in half (its `.CHECKSUM` matches the cut bytes).
    TruncatedZip,
    /// A header row in a file that has none (spot).
    HeaderRow,
    /// Timestamps in microseconds where the file would be in milliseconds.
    Micros,
    /// This many rows dropped from the middle of the file.
    DropRows(usize),
    /// Replaced upstream: the first row's trade count is one higher, `Last-Modified` later.
    Replaced,
}

/// The archive's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// A daily file appears this long after its day ends.
    pub daily_lag_ms: i64,
    /// A monthly file appears this long after its month ends.
    pub monthly_lag_ms: i64,
    /// Faults by file name (`BTCUSDT-1m-2024-01-05.zip`).
    pub faults: BTreeMap<String, ArchiveFault>,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            daily_lag_ms: 6 * 3_600_000,
            monthly_lag_ms: DAY_MS,
            faults: BTreeMap::new(),
        }
    }
}

impl ArchiveConfig {
    /// Inject `fault` into the file named `name`.
    #[must_use]
    pub fn with_fault(mut self, name: &str, fault: ArchiveFault) -> Self {
        self.faults.insert(name.to_owned(), fault);
        self
    }
}

/// A built file: the zip, its checksum line and `Last-Modified`.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) zip: Bytes,
    pub(crate) checksum: Bytes,
    pub(crate) last_modified: String,
}

/// Built files by path (a `.CHECKSUM` request and its zip request build once).
#[derive(Debug, Default)]
pub(crate) struct Cache(pub(crate) Mutex<HashMap<String, Option<Arc<Built>>>>);

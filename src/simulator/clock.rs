//! The simulator's data clock: the "now" that `/time` returns and that decides which candles
//! exist and which one is still forming. Either the real clock or a fake one that tests set
//! and advance. Rate-limit windows never use this clock; they always use the wall clock.

use std::sync::atomic::{AtomicI64, Ordering};

/// How the data clock starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClockMode {
    /// Follow the system clock (until `set_now`/`advance` switch to a fake clock).
    #[default]
    Real,
    /// A fake clock starting at this instant (ms).
    Fixed(i64),
}

/// The data clock. `i64::MIN` in `fake` means "real clock".
#[derive(Debug)]
pub(crate) struct DataClock {
    fake: AtomicI64,
}

const REAL: i64 = i64::MIN;

/// The wall-clock time in ms.
pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl DataClock {
    pub(crate) fn new(mode: ClockMode) -> Self {
        Self {
            fake: AtomicI64::new(match mode {
                ClockMode::Real => REAL,
                ClockMode::Fixed(t) => t,
            }),
        }
    }

    /// The simulator's current time in ms.
    pub(crate) fn now(&self) -> i64 {
        match self.fake.load(Ordering::SeqCst) {
            REAL => wall_ms(),
            t => t,
        }
    }

    /// Freeze the clock at `t`.
    pub(crate) fn set(&self, t: i64) {
        self.fake.store(t.max(REAL + 1), Ordering::SeqCst);
    }

    /// Move the clock forward by `ms` (freezing it first if it was real).
    pub(crate) fn advance(&self, ms: i64) {
        let _ = self
            .fake
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                let base = if t == REAL { wall_ms() } else { t };
                Some(base.saturating_add(ms))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_sets_and_advances() {
        let c = DataClock::new(ClockMode::Fixed(1_000));
        assert_eq!(c.now(), 1_000);
        c.advance(500);
        assert_eq!(c.now(), 1_500);
        c.set(42);
        assert_eq!(c.now(), 42);
        let real = DataClock::new(ClockMode::Real);
        assert!(real.now() > 1_600_000_000_000);
        real.advance(0);
        let frozen = real.now();
        assert_eq!(real.now(), frozen);
    }
}

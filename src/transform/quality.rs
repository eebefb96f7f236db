//! Quality checks on klines: the interval grid, order and uniqueness of open times, and the
//! OHLCV invariants. Pure functions; the report is mergeable across pages and partitions.

/// Violations found in some rows (filled in by [`check`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QualityReport {}

//! The idempotent merge of a partition's existing rows with newly fetched ones: a pure function.
//!
//! Rows are keyed by `open_time`. When both sides have a key, the incoming (newer) row wins; if
//! it differs from the stored one that is a *conflict*, counted and reported with example open
//! times (the exchange revised a candle, or an earlier run stored a still-forming one). When
//! the incoming rows repeat a key, the last one wins. The result is sorted and unique.

use crate::transform::KlineRows;
use crate::transform::quality::MAX_EXAMPLES;

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Rows whose open time was not stored before.
    pub new: u64,
    /// Stored rows replaced by a different incoming row (conflicts).
    pub replaced: u64,
    /// Incoming rows identical to the stored ones.
    pub unchanged: u64,
    /// Up to [`MAX_EXAMPLES`] earliest open times (ms) of conflicts.
    pub conflict_examples: Vec<i64>,
}

impl MergeReport {
    /// Whether the merged rows differ from the stored ones.
    pub fn changed(&self) -> bool {
        self.new > 0 || self.replaced > 0
    }
}

/// Merge `incoming` into `existing` (both of one task and partition, same price type).
/// `existing` is expected sorted and unique (as written by the loader); it is de-duplicated
/// anyway, first row winning, so an odd file cannot duplicate rows.
pub fn merge(existing: KlineRows, incoming: KlineRows) -> (KlineRows, MergeReport) {
    let n_old = existing.len();
    if n_old == 0 && incoming.is_strictly_sorted() {
        // A new partition from ordered pages: nothing to de-duplicate, no copy.
        let report = MergeReport {
            new: incoming.len() as u64,
            ..MergeReport::default()
        };
        return (incoming, report);
    }
    let mut all = existing;
    all.append(incoming);
    let mut idx: Vec<usize> = (0..all.len()).collect();
    // Stable: for equal open times, existing rows come first, then incoming in arrival order.
    idx.sort_by_key(|&i| all.open_time[i]);
    let mut keep = Vec::with_capacity(idx.len());
    let mut report = MergeReport::default();
    let mut g = 0;
    while g < idx.len() {
        let t = all.open_time[idx[g]];
        let end = g + idx[g..].partition_point(|&i| all.open_time[i] == t);
        let group = &idx[g..end];
        let old = group.iter().copied().find(|&i| i < n_old);
        let newest = group.iter().copied().rfind(|&i| i >= n_old);
        match (old, newest) {
            (Some(o), Some(n)) => {
                if all.row_eq(o, &all, n) {
                    report.unchanged += 1;
                    keep.push(o);
                } else {
                    report.replaced += 1;
                    if report.conflict_examples.len() < MAX_EXAMPLES {
                        report.conflict_examples.push(t);
                    }
                    keep.push(n);
                }
            }
            (Some(o), None) => keep.push(o),
            (None, Some(n)) => {
                report.new += 1;
                keep.push(n);
            }
            (None, None) => {}
        }
        g = end;
    }
    (all.take(&keep), report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PriceType;
    use crate::transform::Column;

    fn rows(times: &[i64], val: f64) -> KlineRows {
        let mut r = KlineRows::empty(PriceType::Float64);
        r.open_time = times.to_vec();
        r.close_time = times.iter().map(|t| t + 9).collect();
        r.trades = vec![1; times.len()];
        for c in [
            &mut r.open,
            &mut r.high,
            &mut r.low,
            &mut r.close,
            &mut r.volume,
            &mut r.quote_volume,
            &mut r.taker_buy_base_volume,
            &mut r.taker_buy_quote_volume,
        ] {
            *c = Column::Float64(vec![val; times.len()]);
        }
        r
    }

    proptest::proptest! {
        #[test]
        fn merged_rows_are_sorted_unique_and_incoming_wins(
            old in proptest::collection::btree_set(0i64..200, 0..60),
            new in proptest::collection::vec(0i64..200, 0..60),
        ) {
            let old: Vec<i64> = old.into_iter().collect();
            let (m, rep) = merge(rows(&old, 1.0), rows(&new, 2.0));
            proptest::prop_assert!(m.is_strictly_sorted());
            let mut keys: Vec<i64> = old.iter().chain(&new).copied().collect();
            keys.sort_unstable();
            keys.dedup();
            proptest::prop_assert_eq!(&m.open_time, &keys);
            for (i, t) in m.open_time.iter().enumerate() {
                let want = if new.contains(t) { 2.0 } else { 1.0 };
                proptest::prop_assert_eq!(m.close.f64_at(i).to_bits(), f64::to_bits(want));
            }
            let overlap = old.iter().filter(|t| new.contains(t)).count() as u64;
            proptest::prop_assert_eq!(rep.replaced, overlap);
            proptest::prop_assert_eq!(rep.new, keys.len() as u64 - old.len() as u64);
        }
    }

    #[test]
    fn non_overlapping_appends() {
        let (m, rep) = merge(rows(&[10, 20], 1.0), rows(&[30, 40], 1.0));
        assert_eq!(m.open_time, vec![10, 20, 30, 40]);
        assert_eq!(rep.new, 2);
        assert!(rep.changed());
        let (m, _) = merge(rows(&[30, 40], 1.0), rows(&[10], 1.0));
        assert_eq!(m.open_time, vec![10, 30, 40]);
    }

    #[test]
    fn overlapping_identical_is_a_no_op() {
        let old = rows(&[10, 20, 30], 1.0);
        let (m, rep) = merge(old.clone(), rows(&[20, 30], 1.0));
        assert_eq!(m, old);
        assert_eq!(rep.unchanged, 2);
        assert!(!rep.changed());
    }

    #[test]
    fn conflicting_duplicates_take_the_incoming_row() {
        let old = rows(&[10, 20, 30], 1.0);
        let (m, rep) = merge(old.clone(), rows(&[20, 30, 40], 2.0));
        assert_eq!(m.open_time, vec![10, 20, 30, 40]);
        assert_eq!(m.close, Column::Float64(vec![1.0, 2.0, 2.0, 2.0]));
        assert_eq!((rep.new, rep.replaced, rep.unchanged), (1, 2, 0));
        assert_eq!(rep.conflict_examples, vec![20, 30]);
        // Repeats inside the incoming rows: the last wins.
        let mut inc = rows(&[50], 3.0);
        inc.append(rows(&[50], 4.0));
        let (m, rep) = merge(old, inc);
        assert_eq!(m.close, Column::Float64(vec![1.0, 1.0, 1.0, 4.0]));
        assert_eq!(rep.new, 1);
    }
}

//! Incremental planning: which windows of a series still need fetching, given what is stored
//! and what earlier runs left unfinished. Plain functions on half-open `[start, end)` windows
//! of milliseconds; [`crate::run`] reads the state from disk and turns windows into tasks.
//!
//! The rules:
//! - The data on disk is the state. A series with stored candles from `first` to `last` needs
//!   the requested range minus `[first, last)`: the missing head (an earlier start than the
//!   data) and the tail from `last` on (the last stored candle is fetched again and re-checked).
//! - Windows a previous run planned but did not finish (it crashed, was interrupted, was
//!   banned, or a window's retries ran out) are kept in the resume file
//!   ([`crate::load::resume`]) and fetched again from the last candle stored inside them.
//! - `--full-refresh` fetches the whole requested range.

/// A half-open window `[start, end)` of open times, in ms.
pub type Window = (i64, i64);

/// Sort windows and merge the ones that overlap or touch; empty windows disappear.
pub fn coalesce(mut windows: Vec<Window>) -> Vec<Window> {
    windows.retain(|(s, e)| s < e);
    windows.sort_unstable();
    let mut out: Vec<Window> = Vec::with_capacity(windows.len());
    for (s, e) in windows {
        match out.last_mut() {
            Some((_, last_end)) if s <= *last_end => *last_end = (*last_end).max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `window` minus every window in `remove` (which need not be sorted or disjoint).
pub fn subtract(window: Window, remove: &[Window]) -> Vec<Window> {
    let mut out = Vec::new();
    let mut cursor = window.0;
    for (s, e) in coalesce(remove.to_vec()) {
        if e <= cursor || s >= window.1 {
            continue;
        }
        if s > cursor {
            out.push((cursor, s));
        }
        cursor = cursor.max(e);
        if cursor >= window.1 {
            break;
        }
    }
    if cursor < window.1 {
        out.push((cursor, window.1));
    }
    out
}

/// The windows to fetch for one series.
///
/// - `requested`: the run's resolved range.
/// - `stored`: the first and last stored open times, if anything is stored.
/// - `pending`: unfinished windows of earlier runs, already moved to start at the last candle
///   stored inside them (see [`resume_point`]).
/// - `full_refresh`: ignore what is stored.
pub fn windows_to_fetch(
    requested: Window,
    stored: Option<(i64, i64)>,
    pending: &[Window],
    full_refresh: bool,
) -> Vec<Window> {
    let mut out = match stored {
        Some((first, last)) if !full_refresh => subtract(requested, &[(first, last)]),
        _ => vec![requested],
    };
    out.extend_from_slice(pending);
    coalesce(out)
}

/// Where an unfinished window resumes: at the last candle stored inside it (fetched again and
/// re-checked, like the tail of a series), or at its start when nothing inside it is stored.
pub fn resume_point(window: Window, last_stored_inside: Option<i64>) -> Window {
    match last_stored_inside {
        Some(t) if t >= window.0 && t < window.1 => (t, window.1),
        _ => window,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn coalesce_merges_touching_and_overlapping_windows() {
        assert_eq!(
            coalesce(vec![(5, 7), (0, 2), (2, 3), (6, 9), (10, 10)]),
            vec![(0, 3), (5, 9)]
        );
    }

    #[test]
    fn subtract_cuts_holes() {
        assert_eq!(
            subtract((0, 10), &[(2, 4), (6, 7)]),
            [(0, 2), (4, 6), (7, 10)]
        );
        assert_eq!(subtract((0, 10), &[(-5, 3), (8, 20)]), [(3, 8)]);
        assert_eq!(subtract((0, 10), &[(0, 10)]), []);
        assert_eq!(subtract((0, 10), &[]), [(0, 10)]);
    }

    #[test]
    fn nothing_stored_fetches_the_range() {
        assert_eq!(windows_to_fetch((0, 100), None, &[], false), [(0, 100)]);
    }

    #[test]
    fn stored_data_leaves_the_tail_from_the_last_stored_candle() {
        assert_eq!(
            windows_to_fetch((0, 100), Some((0, 80)), &[], false),
            [(80, 100)]
        );
    }

    #[test]
    fn an_earlier_start_fetches_only_the_missing_head_and_the_tail() {
        assert_eq!(
            windows_to_fetch((0, 100), Some((40, 99)), &[], false),
            [(0, 40), (99, 100)]
        );
    }

    #[test]
    fn data_outside_the_range_does_not_shrink_it() {
        assert_eq!(
            windows_to_fetch((0, 100), Some((200, 300)), &[], false),
            [(0, 100)]
        );
        assert_eq!(
            windows_to_fetch((500, 600), Some((200, 300)), &[], false),
            [(500, 600)]
        );
    }

    #[test]
    fn full_refresh_and_pending_windows_add_up() {
        assert_eq!(
            windows_to_fetch((0, 100), Some((0, 80)), &[(10, 20)], true),
            [(0, 100)]
        );
        assert_eq!(
            windows_to_fetch((50, 100), Some((0, 80)), &[(10, 20)], false),
            [(10, 20), (80, 100)]
        );
    }

    #[test]
    fn resume_points() {
        assert_eq!(resume_point((10, 20), Some(15)), (15, 20));
        assert_eq!(resume_point((10, 20), None), (10, 20));
        assert_eq!(resume_point((10, 20), Some(25)), (10, 20));
    }

    proptest! {
        /// Stored ∪ to-fetch covers the requested range with no gap, and nothing stored is
        /// fetched again except the last stored candle.
        #[test]
        fn fetch_plus_stored_covers_the_range(
            a in 0i64..1000, len in 1i64..1000, first in 0i64..2000, slen in 0i64..1000,
        ) {
            let requested = (a, a + len);
            let stored = (first, first + slen);
            let fetch = windows_to_fetch(requested, Some(stored), &[], false);
            for t in requested.0..requested.1 {
                let in_fetch = fetch.iter().any(|(s, e)| (*s..*e).contains(&t));
                let in_stored = (stored.0..=stored.1).contains(&t);
                prop_assert!(in_fetch || in_stored, "{t} uncovered");
                if in_fetch && in_stored {
                    prop_assert_eq!(t, stored.1, "stored {} fetched again", t);
                }
            }
            for w in fetch.windows(2) {
                prop_assert!(w[0].1 < w[1].0, "windows overlap or touch: {:?}", w);
            }
        }

        #[test]
        fn subtract_is_exact(w0 in 0i64..50, wl in 0i64..50, holes in proptest::collection::vec((0i64..100, 0i64..20), 0..5)) {
            let w = (w0, w0 + wl);
            let holes: Vec<Window> = holes.into_iter().map(|(s, l)| (s, s + l)).collect();
            let left = subtract(w, &holes);
            for t in w.0..w.1 {
                let in_hole = holes.iter().any(|(s, e)| (*s..*e).contains(&t));
                let in_left = left.iter().any(|(s, e)| (*s..*e).contains(&t));
                prop_assert_eq!(in_left, !in_hole, "{}", t);
            }
        }
    }
}

//! Half-open windows `[start, end)` of milliseconds and their algebra: the vocabulary in which
//! plans, resume files and gaps speak about time.

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

    proptest! {
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

//! Mergeable one-pass statistics for a numeric column: moments (count, mean, variance by
//! Chan et al.'s parallel update), exact min/max, and a DDSketch-style log-bucket quantile
//! sketch with a fixed relative accuracy.
//!
//! Why a sketch: statistics are folded per page, per partition and per run, so they can never
//! need the whole history in memory. Bucket counts add, so merging the sketches of the parts
//! gives exactly the sketch of the whole; quantiles are within [`RELATIVE_ACCURACY`] of the
//! exact value (and always clamped to the exact min/max).

use serde::{Deserialize, Serialize};

/// Relative accuracy of the quantile sketch: a reported quantile `q` of a positive column is
/// within ±0.5 % of a value whose rank is exactly the requested one.
pub const RELATIVE_ACCURACY: f64 = 0.005;

/// Running moments: count, mean and the sum of squared deviations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Number of values.
    pub count: u64,
    /// Mean of the values.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

impl Moments {
    /// Add one value (Welford).
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// The moments of the finite values of `xs`, in two passes (mean, then deviations).
    pub fn of_slice(xs: &[f64]) -> Moments {
        match Scan::of(xs) {
            Some(Scan { n, sum, .. }) => {
                let mean = sum / n as f64;
                Moments {
                    count: n,
                    mean,
                    m2: sum_sq_dev(xs, mean),
                }
            }
            None => Moments::default(),
        }
    }

    /// Fold another set of moments into this one (Chan et al.).
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let n = (self.count + other.count) as f64;
        let delta = other.mean - self.mean;
        let (na, nb) = (self.count as f64, other.count as f64);
        self.mean += delta * nb / n;
        self.m2 += other.m2 + delta * delta * na * nb / n;
        self.count += other.count;
    }

    /// Sample standard deviation (`ddof = 1`, as pandas' `describe()`); `None` below 2 values.
    pub fn std(&self) -> Option<f64> {
        (self.count > 1).then(|| (self.m2 / (self.count - 1) as f64).max(0.0).sqrt())
    }
}

/// Bucket counts over a contiguous range of keys: `counts[i]` is the count of key
/// `offset + i`. Values of one column span a few hundred to a few thousand buckets at most
/// (1e-12 .. 1e12 is about 5,500), so a dense vector beats a tree map by an order of
/// magnitude on the hot path.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Store {
    offset: i32,
    counts: Vec<u64>,
}

impl Store {
    #[inline]
    fn add(&mut self, key: i32, n: u64) {
        if self.counts.is_empty() {
            self.offset = key;
            self.counts.push(n);
            return;
        }
        if key < self.offset {
            let grow = (self.offset - key) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = key;
        }
        let i = (key - self.offset) as usize;
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += n;
    }

    /// Non-empty buckets as `(key, count)`, in ascending key order.
    fn buckets(&self) -> impl DoubleEndedIterator<Item = (i32, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (self.offset + i as i32, *c))
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Two stores are equal when they hold the same counts per key, whatever their allocation.
impl PartialEq for Store {
    fn eq(&self, other: &Store) -> bool {
        self.buckets().eq(other.buckets())
    }
}

/// A log-bucket quantile sketch (DDSketch, unbounded dense stores) over finite values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    positive: Store,
    negative: Store,
    zeros: u64,
}

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// `ln(gamma)`, computed once.
fn ln_gamma() -> f64 {
    static LN_GAMMA: std::sync::LazyLock<f64> = std::sync::LazyLock::new(|| gamma().ln());
    *LN_GAMMA
}

/// Values closer to zero than this are counted as zero.
const MIN_MAGNITUDE: f64 = 1e-12;

/// The bucket key of a magnitude, `ceil(ln(x) / ln(gamma))`, without a libm `ln` per value.
///
/// `ln(x)` is taken from the float's bits: `x = 2^e * m` with `m` in `[1, 2)`; the top 7 bits
/// of the mantissa pick `c` near `m` from a table holding `1/c` and `ln(c)`; then
/// `ln(x) = e ln 2 + ln(c) + ln(1 + r)` with `r = m/c - 1`, `|r| < 2^-8`, and a degree-5
/// series for `ln(1 + r)` (truncation below 3e-15). The quotient is within 1e-10 of the one
/// `ln` gives; when it lies within [`KeyFn::GUARD`] of an integer (a bucket boundary, about
/// one value in 10^8) the key is computed with `ln` itself. So every key is exactly the one
/// the defining formula gives with the standard library's `ln` (tested), sketches stored in
/// earlier files merge with new ones, and the accuracy guarantee is unchanged.
#[derive(Clone, Copy)]
struct KeyFn {
    ln_gamma: f64,
    inv_ln_gamma: f64,
    table: &'static [(f64, f64); 128],
}

impl KeyFn {
    /// Quotients closer than this to an integer take the exact path.
    const GUARD: f64 = 1e-9;

    fn get() -> KeyFn {
        static TABLE: std::sync::LazyLock<[(f64, f64); 128]> = std::sync::LazyLock::new(|| {
            let mut t = [(0.0, 0.0); 128];
            for (i, slot) in t.iter_mut().enumerate() {
                let c = 1.0 + (i as f64 + 0.5) / 128.0;
                let inv = 1.0 / c;
                // ln of the reciprocal actually used, so its rounding cancels.
                *slot = (inv, -inv.ln());
            }
            t
        });
        let ln_gamma = ln_gamma();
        KeyFn {
            ln_gamma,
            inv_ln_gamma: 1.0 / ln_gamma,
            table: &TABLE,
        }
    }

    /// The defining formula, with the standard library's `ln`.
    #[inline]
    fn exact(self, magnitude: f64) -> i32 {
        ceil_i32(magnitude.ln() / self.ln_gamma)
    }

    /// The key of `magnitude` (finite, at least [`MIN_MAGNITUDE`]).
    #[inline]
    fn key(self, magnitude: f64) -> i32 {
        const MANTISSA: u64 = (1 << 52) - 1;
        let bits = magnitude.to_bits();
        let biased = ((bits >> 52) & 0x7ff) as i32;
        if biased == 0 || biased == 0x7ff {
            return self.exact(magnitude);
        }
        let m = f64::from_bits((bits & MANTISSA) | (1023 << 52));
        let (inv_c, ln_c) = self.table[((bits >> 45) & 127) as usize];
        let r = m * inv_c - 1.0;
        let series = r * (1.0 - r * (0.5 - r * (1.0 / 3.0 - r * (0.25 - r * 0.2))));
        let ln = f64::from(biased - 1023) * std::f64::consts::LN_2 + ln_c + series;
        let q = ln * self.inv_ln_gamma;
        let t = q as i32;
        let frac = (q - f64::from(t)).abs();
        if !(Self::GUARD..=1.0 - Self::GUARD).contains(&frac) {
            return self.exact(magnitude);
        }
        if f64::from(t) < q { t + 1 } else { t }
    }
}

/// Bucket keys by the leading bits of the magnitude, shared by every column a thread reads.
///
/// A slot covers the magnitudes sharing their exponent and top 7 mantissa bits: a range 1/128
/// of an octave wide (under 0.8 %), narrower than a bucket (1 %), so it meets at most one
/// bucket boundary. Built on first use, a slot holds its lower key and the largest magnitude
/// that has it: a magnitude's key is then one load and one comparison. Keys are monotone in the
/// magnitude (`ceil(ln(m) / ln(gamma))`, every step monotone), so the threshold is found by
/// bisection with the defining formula itself: the table never changes a key, it only skips
/// computing it (tested at and around every boundary). Slots cover magnitudes from
/// [`MIN_MAGNITUDE`] to 2^64 (13,440 slots, 210 KiB per thread); others take [`KeyFn::key`].
struct SlotTable {
    slots: Vec<Slot>,
}

#[derive(Clone, Copy)]
struct Slot {
    /// The largest magnitude of the slot with `key`; larger ones have `key + 1`.
    threshold: f64,
    /// The slot's lower key, or [`Slot::UNBUILT`] / [`Slot::EXACT`].
    key: i32,
}

impl Slot {
    /// Not built yet.
    const UNBUILT: i32 = i32::MIN;
    /// Every magnitude of the slot takes [`KeyFn::key`].
    const EXACT: i32 = i32::MIN + 1;
}

impl SlotTable {
    /// Mantissa bits below a slot's: a slot is `bits >> SHIFT`.
    const SHIFT: u32 = 45;
    /// The first slot: exponent -40 (2^-40 < [`MIN_MAGNITUDE`]).
    const FIRST: u64 = ((1023 - 40) << 7) as u64;
    /// One past the last slot: exponent 64.
    const END: u64 = ((1023 + 64) << 7) as u64;

    fn new() -> SlotTable {
        SlotTable {
            slots: vec![
                Slot {
                    threshold: 0.0,
                    key: Slot::UNBUILT,
                };
                (Self::END - Self::FIRST) as usize
            ],
        }
    }

    /// Run `f` with this thread's table.
    fn with<R>(f: impl FnOnce(&mut SlotTable) -> R) -> R {
        thread_local! {
            static TABLE: std::cell::RefCell<Option<SlotTable>> =
                const { std::cell::RefCell::new(None) };
        }
        TABLE.with_borrow_mut(|t| f(t.get_or_insert_with(SlotTable::new)))
    }

    /// The key of `magnitude` (finite, at least [`MIN_MAGNITUDE`]).
    #[expect(
        clippy::inline_always,
        reason = "measured: not inlined into the column loop, the statistics were slower"
    )]
    #[inline(always)]
    fn key(&mut self, keys: KeyFn, magnitude: f64) -> i32 {
        let slot = (magnitude.to_bits() >> Self::SHIFT).wrapping_sub(Self::FIRST) as usize;
        let Some(s) = self.slots.get_mut(slot) else {
            return keys.key(magnitude);
        };
        if s.key <= Slot::EXACT {
            if s.key == Slot::UNBUILT {
                *s = Self::build(keys, slot as u64 + Self::FIRST);
            }
            if s.key == Slot::EXACT {
                return keys.key(magnitude);
            }
        }
        s.key + i32::from(magnitude > s.threshold)
    }

    /// The lower key and threshold of slot `slot`.
    #[cold]
    fn build(keys: KeyFn, slot: u64) -> Slot {
        let first = slot << Self::SHIFT;
        let last = first | ((1 << Self::SHIFT) - 1);
        let key = |bits: u64| keys.exact(f64::from_bits(bits));
        let (k_first, k_last) = (key(first), key(last));
        if k_first == k_last {
            return Slot {
                threshold: f64::INFINITY,
                key: k_first,
            };
        }
        if k_last != k_first + 1 {
            // Two boundaries in one slot cannot happen for a slot this narrow; should it,
            // every value of the slot takes the exact path.
            return Slot {
                threshold: f64::NAN,
                key: Slot::EXACT,
            };
        }
        // Bisect for the last magnitude with the lower key: key(lo) == k_first < key(hi).
        let (mut lo, mut hi) = (first, last);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if key(mid) == k_first {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Slot {
            threshold: f64::from_bits(lo),
            key: k_first,
        }
    }
}

/// `ceil`, without the libm call it compiles to on baseline x86-64: magnitudes lie in
/// 1e-12 ..= f64::MAX, so the quotient is within ±75,000 and the cast is exact.
#[inline]
fn ceil_i32(q: f64) -> i32 {
    let t = q as i32;
    if f64::from(t) < q { t + 1 } else { t }
}

impl Sketch {
    #[cfg(test)]
    fn key(magnitude: f64, ln_gamma: f64) -> i32 {
        ceil_i32(magnitude.ln() / ln_gamma)
    }

    fn value(key: i32) -> f64 {
        let g = gamma();
        2.0 * g.powi(key) / (g + 1.0)
    }

    /// Add one value; non-finite values are ignored.
    pub fn push(&mut self, x: f64) {
        let keys = KeyFn::get();
        if !x.is_finite() {
            return;
        }
        if x.abs() < MIN_MAGNITUDE {
            self.zeros += 1;
        } else if x > 0.0 {
            self.positive.add(keys.key(x), 1);
        } else {
            self.negative.add(keys.key(-x), 1);
        }
    }

    /// [`Self::push`] taking keys from `table`.
    #[expect(
        clippy::inline_always,
        reason = "measured: not inlined into the column loop, the statistics were slower"
    )]
    #[inline(always)]
    fn push_with(&mut self, x: f64, keys: KeyFn, table: &mut SlotTable) {
        if !x.is_finite() {
            return;
        }
        if x.abs() < MIN_MAGNITUDE {
            self.zeros += 1;
        } else if x > 0.0 {
            self.positive.add(table.key(keys, x), 1);
        } else {
            self.negative.add(table.key(keys, -x), 1);
        }
    }

    /// The sketch of `xs`, all finite and none negative, with `hi` the largest: the buckets
    /// are counted in one vector sized once from the keys of [`MIN_MAGNITUDE`] and `hi` (keys
    /// are monotone, so every key lies between them; one that did not would still be
    /// counted), then trimmed to the keys met.
    fn count_non_negative(&mut self, xs: &[f64], hi: f64, keys: KeyFn, table: &mut SlotTable) {
        let (k_lo, k_hi) = if hi >= MIN_MAGNITUDE {
            (table.key(keys, MIN_MAGNITUDE), table.key(keys, hi))
        } else {
            (0, -1)
        };
        let mut counts = vec![0u64; usize::try_from(k_hi - k_lo + 1).unwrap_or(0)];
        let mut stray = Store::default();
        for &x in xs {
            if x < MIN_MAGNITUDE {
                self.zeros += 1;
                continue;
            }
            let k = table.key(keys, x);
            match counts.get_mut(k.wrapping_sub(k_lo) as u32 as usize) {
                Some(c) => *c += 1,
                None => stray.add(k, 1),
            }
        }
        // As `Store::add` leaves it: from the smallest key met to the largest.
        let first = counts.iter().position(|c| *c > 0).unwrap_or(counts.len());
        let last = counts.iter().rposition(|c| *c > 0).map_or(first, |i| i + 1);
        counts.truncate(last);
        counts.drain(..first);
        if !counts.is_empty() {
            self.positive = Store {
                offset: k_lo + first as i32,
                counts,
            };
        }
        for (k, c) in stray.buckets() {
            self.positive.add(k, c);
        }
    }

    /// Fold another sketch into this one: the result equals the sketch of all values.
    pub fn merge(&mut self, other: &Sketch) {
        for (k, c) in other.positive.buckets() {
            self.positive.add(k, c);
        }
        for (k, c) in other.negative.buckets() {
            self.negative.add(k, c);
        }
        self.zeros += other.zeros;
    }

    /// Number of values in the sketch.
    pub fn count(&self) -> u64 {
        self.zeros + self.positive.total() + self.negative.total()
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) with the lower-rank convention `rank = q·(n−1)`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (n - 1) as f64).round() as u64;
        let mut seen = 0u64;
        // Most negative first: negative buckets by descending magnitude.
        for (k, c) in self.negative.buckets().rev() {
            seen += c;
            if seen > rank {
                return Some(-Self::value(k));
            }
        }
        seen += self.zeros;
        if seen > rank {
            return Some(0.0);
        }
        for (k, c) in self.positive.buckets() {
            seen += c;
            if seen > rank {
                return Some(Self::value(k));
            }
        }
        None
    }
}

/// Partial sums a column's sum and squared deviations are split into: independent additions
/// that run side by side instead of one chain of dependent ones (each waits for the last), and
/// rounding errors that grow with a quarter of the column instead of all of it.
const LANES: usize = 4;

/// Call `f(j, x)` for every value `x` of `xs` in order, `j` its lane (position mod [`LANES`]).
#[inline]
fn for_lanes(xs: &[f64], mut f: impl FnMut(usize, f64)) {
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (j, x) in c.iter().enumerate() {
            f(j, *x);
        }
    }
    for (j, x) in rest.iter().enumerate() {
        f(j, *x);
    }
}

/// Count, sum, minimum and maximum of a column's finite values.
struct Scan {
    n: u64,
    sum: f64,
    lo: f64,
    hi: f64,
}

impl Scan {
    /// `None` when no value is finite.
    fn of(xs: &[f64]) -> Option<Scan> {
        let mut n = [0u64; LANES];
        let mut sum = [0.0f64; LANES];
        let mut lo = [f64::INFINITY; LANES];
        let mut hi = [f64::NEG_INFINITY; LANES];
        let lane = |j: usize, x: f64| {
            // Plain comparisons: `min`/`max` spell out NaN handling, and x is a number.
            if x.is_finite() {
                n[j] += 1;
                sum[j] += x;
                lo[j] = if x < lo[j] { x } else { lo[j] };
                hi[j] = if x > hi[j] { x } else { hi[j] };
            }
        };
        for_lanes(xs, lane);
        let n: u64 = n.iter().sum();
        (n > 0).then(|| Scan {
            n,
            sum: (sum[0] + sum[1]) + (sum[2] + sum[3]),
            lo: lo.into_iter().fold(f64::INFINITY, f64::min),
            hi: hi.into_iter().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// The sum of squared deviations of the finite values of `xs` from `mean`.
fn sum_sq_dev(xs: &[f64], mean: f64) -> f64 {
    let mut m2 = [0.0f64; LANES];
    let lane = |j: usize, x: f64| {
        if x.is_finite() {
            m2[j] += (x - mean) * (x - mean);
        }
    };
    for_lanes(xs, lane);
    (m2[0] + m2[1]) + (m2[2] + m2[3])
}

/// Everything `describe()` reports for one column, in mergeable form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    /// Count, mean, variance.
    pub moments: Moments,
    /// Exact minimum.
    pub min: Option<f64>,
    /// Exact maximum.
    pub max: Option<f64>,
    /// Exact sum.
    pub sum: f64,
    /// Quantile sketch.
    pub sketch: Sketch,
}

impl ColumnStats {
    /// Add one value; NaN and infinities are skipped (the quality checks count them).
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.moments.push(x);
        self.sum += x;
        self.min = Some(self.min.map_or(x, |m| m.min(x)));
        self.max = Some(self.max.map_or(x, |m| m.max(x)));
        self.sketch.push(x);
    }

    /// The statistics of a whole column at once: equal to pushing every value in turn (up
    /// to float rounding in the sum and the moments, which are taken in [`LANES`] interleaved
    /// partial sums and two passes here), several times faster.
    pub fn of_slice(xs: &[f64]) -> ColumnStats {
        let mut s = ColumnStats::default();
        let Some(Scan { n, sum, lo, hi }) = Scan::of(xs) else {
            return s;
        };
        let mean = sum / n as f64;
        let m2 = sum_sq_dev(xs, mean);
        let keys = KeyFn::get();
        SlotTable::with(|table| {
            if n == xs.len() as u64 && lo >= 0.0 {
                // Every value finite and none negative: prices, volumes, counts.
                s.sketch.count_non_negative(xs, hi, keys, table);
            } else {
                for &x in xs {
                    s.sketch.push_with(x, keys, table);
                }
            }
        });
        s.moments = Moments { count: n, mean, m2 };
        s.sum = sum;
        s.min = Some(lo);
        s.max = Some(hi);
        s
    }

    /// Fold another column's statistics into this one.
    pub fn merge(&mut self, other: &ColumnStats) {
        self.moments.merge(&other.moments);
        self.sum += other.sum;
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.sketch.merge(&other.sketch);
    }

    /// The `describe()` row: count, mean, std, min, 25%, 50%, 75%, max.
    pub fn describe(&self) -> Describe {
        let clamp = |v: Option<f64>| match (v, self.min, self.max) {
            (Some(v), Some(lo), Some(hi)) => Some(v.clamp(lo, hi)),
            (v, _, _) => v,
        };
        Describe {
            count: self.moments.count,
            mean: (self.moments.count > 0).then_some(self.moments.mean),
            std: self.moments.std(),
            min: self.min,
            p25: clamp(self.sketch.quantile(0.25)),
            p50: clamp(self.sketch.quantile(0.5)),
            p75: clamp(self.sketch.quantile(0.75)),
            max: self.max,
        }
    }
}

/// One `describe()` row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Describe {
    /// Number of values.
    pub count: u64,
    /// Mean.
    pub mean: Option<f64>,
    /// Sample standard deviation (ddof 1).
    pub std: Option<f64>,
    /// Minimum.
    pub min: Option<f64>,
    /// 25th percentile (within 0.5 %).
    #[serde(rename = "25%")]
    pub p25: Option<f64>,
    /// Median (within 0.5 %).
    #[serde(rename = "50%")]
    pub p50: Option<f64>,
    /// 75th percentile (within 0.5 %).
    #[serde(rename = "75%")]
    pub p75: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact_quantile(values: &[f64], q: f64) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        v[(q * (v.len() - 1) as f64).round() as usize]
    }

    #[test]
    fn describe_matches_independent_computation() {
        let values: Vec<f64> = (1..=1000).map(|i| f64::from(i) * 1.5).collect();
        let mut s = ColumnStats::default();
        for v in &values {
            s.push(*v);
        }
        let d = s.describe();
        assert_eq!(d.count, 1000);
        assert!((d.mean.unwrap() - 750.75).abs() < 1e-9);
        // Python: statistics.stdev([i * 1.5 for i in range(1, 1001)]) == 433.2291541436241
        assert!((d.std.unwrap() - 433.229_154_143_624_1).abs() < 1e-9);
        assert_eq!(d.min, Some(1.5));
        assert_eq!(d.max, Some(1500.0));
        for (q, got) in [(0.25, d.p25), (0.5, d.p50), (0.75, d.p75)] {
            let exact = exact_quantile(&values, q);
            let got = got.unwrap();
            assert!(
                (got - exact).abs() <= exact * RELATIVE_ACCURACY * 1.01,
                "q{q}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn keys_are_the_ceiling_of_the_log() {
        let lg = gamma().ln();
        for x in [
            1e-12,
            0.5,
            1.0,
            1.0 + 1e-15,
            gamma(),
            2.0,
            12_345.678,
            1e300,
            f64::MAX,
        ] {
            assert_eq!(Sketch::key(x, lg), (x.ln() / lg).ceil() as i32, "{x}");
        }
    }

    #[test]
    fn zeros_and_negatives_are_ordered() {
        let mut s = Sketch::default();
        for x in [-5.0, -1.0, 0.0, 0.0, 2.0, 10.0] {
            s.push(x);
        }
        assert!(s.quantile(0.0).unwrap() < -4.9);
        assert_eq!(s.quantile(0.5).unwrap(), 0.0);
        assert!(s.quantile(1.0).unwrap() > 9.9);
    }

    #[test]
    fn fast_keys_equal_the_ln_formula_at_and_around_every_boundary() {
        let keys = KeyFn::get();
        let lg = ln_gamma();
        // Each bucket boundary gamma^k (as ln computes it) and its neighbours, one ulp
        // and a few ulps away, over the whole range of magnitudes.
        for k in -2_800..=71_000 {
            let b = (f64::from(k) * lg).exp();
            let mut x = b;
            for _ in 0..4 {
                x = x.next_down();
            }
            for _ in 0..9 {
                if x.is_finite() && x >= MIN_MAGNITUDE {
                    assert_eq!(keys.key(x), Sketch::key(x, lg), "{x:e} (k {k})");
                }
                x = x.next_up();
            }
            // Just outside the guard, where the fast path decides.
            for d in [2e-11, 5e-11, 1e-10, 1e-9, 1e-6] {
                for x in [b * (1.0 - d), b * (1.0 + d)] {
                    if x.is_finite() && x >= MIN_MAGNITUDE {
                        assert_eq!(keys.key(x), Sketch::key(x, lg), "{x:e} (k {k}, {d})");
                    }
                }
            }
        }
        for x in [
            MIN_MAGNITUDE,
            1.0,
            2.0,
            0.5,
            f64::MAX,
            f64::MIN_POSITIVE,
            3e-308,
        ] {
            assert_eq!(keys.key(x), Sketch::key(x, lg), "{x:e}");
        }
    }

    #[test]
    fn table_keys_equal_the_ln_formula_around_boundaries_in_any_order() {
        // Values one and a few ulps either side of bucket boundaries, so that one table slot
        // meets two keys; in rising, falling and interleaved order.
        let lg = ln_gamma();
        let mut values = Vec::new();
        for k in -300..=1_500 {
            let b = (f64::from(k) * lg).exp();
            let (mut lo, mut hi) = (b, b);
            for _ in 0..3 {
                values.extend([lo, hi]);
                lo = lo.next_down();
                hi = hi.next_up();
            }
        }
        let mut falling = values.clone();
        falling.reverse();
        let interleaved: Vec<f64> = values
            .iter()
            .zip(&falling)
            .flat_map(|(a, b)| [*a, -*b, *b])
            .collect();
        let positive: Vec<f64> = values.iter().map(|v| v.abs()).collect();
        for column in [&values, &falling, &interleaved, &positive] {
            let mut pushed = Sketch::default();
            for v in column {
                pushed.push(*v);
            }
            assert_eq!(ColumnStats::of_slice(column).sketch, pushed);
        }
    }

    /// `of_slice` against pushing each value: the same sketch, min, max and count, the sums
    /// and moments within rounding.
    fn slice_equals_pushing_each_value(values: &[f64]) -> Result<(), TestCaseError> {
        let mut pushed = ColumnStats::default();
        for v in values {
            pushed.push(*v);
        }
        let sliced = ColumnStats::of_slice(values);
        prop_assert_eq!(&sliced.sketch, &pushed.sketch);
        prop_assert_eq!(sliced.min, pushed.min);
        prop_assert_eq!(sliced.max, pushed.max);
        prop_assert_eq!(sliced.moments.count, pushed.moments.count);
        prop_assert!((sliced.sum - pushed.sum).abs() <= 1e-9 * (1.0 + pushed.sum.abs()));
        prop_assert!(
            (sliced.moments.mean - pushed.moments.mean).abs()
                <= 1e-9 * (1.0 + pushed.moments.mean.abs())
        );
        prop_assert!(
            (sliced.moments.m2 - pushed.moments.m2).abs() <= 1e-6 * (1.0 + pushed.moments.m2.abs())
        );
        Ok(())
    }

    #[test]
    fn every_slot_gives_the_ln_formula_at_its_ends_and_its_threshold() {
        let keys = KeyFn::get();
        let lg = ln_gamma();
        let mut table = SlotTable::new();
        let mut straddling = 0;
        for slot in SlotTable::FIRST..SlotTable::END {
            let first = f64::from_bits(slot << SlotTable::SHIFT);
            let last = f64::from_bits(((slot + 1) << SlotTable::SHIFT) - 1);
            let mut probes = vec![first, last, first.next_up(), last.next_down()];
            let unbuilt = table.slots[(slot - SlotTable::FIRST) as usize];
            assert_eq!(unbuilt.key, Slot::UNBUILT, "slot {slot} built before use");
            table.key(keys, first);
            let built = table.slots[(slot - SlotTable::FIRST) as usize];
            assert_ne!(built.key, Slot::EXACT, "slot {slot}");
            if built.threshold.is_finite() {
                straddling += 1;
                let t = built.threshold;
                probes.extend([t, t.next_up(), t.next_down(), t.next_up().next_up()]);
            }
            for x in probes {
                if x >= MIN_MAGNITUDE {
                    assert_eq!(
                        table.key(keys, x),
                        Sketch::key(x, lg),
                        "{x:e} (slot {slot})"
                    );
                }
            }
        }
        // A slot is ln(2) / 128 = 0.0054 wide in ln, a bucket ln(gamma) = 0.0100.
        assert!(straddling > 7_000 && straddling < 7_500, "{straddling}");
        // Beyond the table: the fast path.
        for x in [1e30, f64::MAX, 2f64.powi(64)] {
            assert_eq!(table.key(keys, x), Sketch::key(x, lg), "{x:e}");
        }
    }

    proptest! {
        #[test]
        fn a_positive_column_equals_pushing_each_value(values in proptest::collection::vec(prop_oneof![1e-12f64..1e-6, 1e-3f64..1e4, 1e15f64..1e25], 1..500)) {
            // The one-pass path: every value in a positive bucket, some beyond the table.
            slice_equals_pushing_each_value(&values)?;
        }

        #[test]
        fn fast_keys_equal_the_ln_formula(bits in 0x3d71_0000_0000_0000u64..0x7fef_ffff_ffff_ffff) {
            // Every finite float from about 1e-12 to f64::MAX.
            let x = f64::from_bits(bits);
            prop_assert_eq!(KeyFn::get().key(x), Sketch::key(x, ln_gamma()), "{:e}", x);
        }

        #[test]
        fn fast_keys_equal_the_ln_formula_on_prices(x in 1e-8f64..1e7) {
            prop_assert_eq!(KeyFn::get().key(x), Sketch::key(x, ln_gamma()), "{:e}", x);
        }

        #[test]
        fn merging_parts_equals_the_whole(values in proptest::collection::vec(-1e6f64..1e6, 1..300), cut in 0usize..300) {
            let cut = cut.min(values.len());
            let (a, b) = values.split_at(cut);
            let mut whole = ColumnStats::default();
            for v in &values { whole.push(*v); }
            let mut left = ColumnStats::default();
            for v in a { left.push(*v); }
            let mut right = ColumnStats::default();
            for v in b { right.push(*v); }
            left.merge(&right);
            prop_assert_eq!(&left.sketch, &whole.sketch);
            prop_assert_eq!(left.min, whole.min);
            prop_assert_eq!(left.max, whole.max);
            prop_assert_eq!(left.moments.count, whole.moments.count);
            prop_assert!((left.moments.mean - whole.moments.mean).abs() <= 1e-6 * (1.0 + whole.moments.mean.abs()));
            prop_assert!((left.moments.m2 - whole.moments.m2).abs() <= 1e-6 * (1.0 + whole.moments.m2.abs()));
        }

        #[test]
        fn a_random_walk_slice_equals_pushing_each_value(start in 0.5f64..1e5, steps in proptest::collection::vec(-0.004f64..0.004, 1..400)) {
            // Prices a minute apart: most neighbours share a bucket (the key memo's case),
            // some cross a boundary, and the walk may cross zero into negative values.
            let mut x = start;
            let mut values = vec![x];
            for r in steps {
                x = if x.abs() > 1e-3 { x * (1.0 + r) } else { r };
                values.push(x);
                values.push(-x);
            }
            let mut pushed = Sketch::default();
            for v in &values { pushed.push(*v); }
            prop_assert_eq!(&ColumnStats::of_slice(&values).sketch, &pushed);
        }

        #[test]
        fn a_column_over_many_octaves_equals_pushing_each_value(values in proptest::collection::vec(prop_oneof![1e-9f64..1e-3, 0.5f64..2.0, 1e3f64..1e9, -1e9f64..-1e-9, Just(1.0)], 1..3000)) {
            // Volumes: values jump between buckets and octaves and across the table's slots,
            // negatives send the column down the value-by-value path.
            let mut pushed = Sketch::default();
            for v in &values { pushed.push(*v); }
            prop_assert_eq!(&ColumnStats::of_slice(&values).sketch, &pushed);
        }

        #[test]
        fn a_whole_slice_equals_pushing_each_value(values in proptest::collection::vec(prop_oneof![-1e6f64..1e6, Just(0.0), Just(f64::NAN), Just(f64::INFINITY)], 0..300)) {
            slice_equals_pushing_each_value(&values)?;
        }

        #[test]
        fn stores_grow_both_ways(keys in proptest::collection::vec(-3000i32..3000, 1..100)) {
            let mut s = Store::default();
            for k in &keys { s.add(*k, 1); }
            let mut want = std::collections::BTreeMap::new();
            for k in &keys { *want.entry(*k).or_insert(0u64) += 1; }
            prop_assert_eq!(s.buckets().collect::<Vec<_>>(), want.into_iter().collect::<Vec<_>>());
        }

        #[test]
        fn quantiles_are_within_relative_accuracy(values in proptest::collection::vec(0.001f64..1e7, 1..500), q in 0.0f64..=1.0) {
            let mut s = Sketch::default();
            for v in &values { s.push(*v); }
            let got = s.quantile(q).unwrap();
            let exact = exact_quantile(&values, q);
            prop_assert!((got - exact).abs() <= exact * RELATIVE_ACCURACY * 1.0001 + 1e-12, "{} vs {}", got, exact);
        }
    }
}

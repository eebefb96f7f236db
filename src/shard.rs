//! Sharded runs (`--shard I/N`): which shard owns a series ([`assign`]), and the shard's
//! spelling in file names (`_kline_etl/summary.shard-2-of-4.json`, the shard's lock and
//! resume file).
//!
//! The split is balanced and stable: the pipeline's series, heaviest first, each go to the
//! shard with the least work so far (longest processing time first, ties broken by the
//! series' spelling), where a series' work is its [`weight`], the candles it has per 30 days.
//! That weight needs no clock and no state on disk, so every shard computes the same split on
//! its own host, run after run, as long as the pipeline's series stay the same; it is exactly
//! proportional to what a scheduled run fetches (the candles since the last run), and to a
//! backfill's work when the series share the range (a pipeline has one range).

use std::collections::BTreeMap;
use std::fmt;

use crate::interval::{DAY_MS, Interval};

/// One of N shards of a pipeline (`--shard I/N`): the series [`assign`] gives to index `I`.
/// N processes on N hosts fill one dataset without coordinating: no two shards ever write
/// the same series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    /// 1-based index.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

/// A series' work in the split: its candles per 30 days (a `1m` series 43,200, `1h` 720,
/// `1d` 30, `1M` 1).
pub fn weight(interval: Interval) -> u64 {
    (30 * DAY_MS / interval.nominal_ms()).max(1) as u64
}

/// Split `series` (each with its [`weight`]) into `count` shards: each series' 1-based shard.
/// Heaviest first onto the least-loaded shard (ties: the lower index), series of equal weight
/// in key order, so the result does not depend on the input's order. Every shard gets a
/// series when there are at least `count`, and the heaviest shard carries at most the mean
/// plus one series (the longest-processing-time bound).
pub fn assign<K: Ord + Clone>(series: &[(K, u64)], count: u32) -> BTreeMap<K, u32> {
    let count = count.max(1) as usize;
    let mut order: Vec<&(K, u64)> = series.iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut load = vec![0u64; count];
    let mut out = BTreeMap::new();
    for (key, w) in order {
        if out.contains_key(key) {
            continue;
        }
        let (i, _) = load
            .iter()
            .enumerate()
            .min_by_key(|&(i, l)| (*l, i))
            .unwrap_or((0, &0));
        load[i] += w;
        out.insert(key.clone(), i as u32 + 1);
    }
    out
}

/// The heaviest shard's work over the mean (1.0: perfectly even), from each shard's work.
pub fn max_over_mean(per_shard: &[u64]) -> f64 {
    let total: u64 = per_shard.iter().sum();
    if total == 0 || per_shard.is_empty() {
        return 1.0;
    }
    let max = per_shard.iter().copied().max().unwrap_or(0);
    max as f64 * per_shard.len() as f64 / total as f64
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard-{}-of-{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `I/N` (the flag) or `shard-I-of-N` (file names), `1 <= I <= N <= 1024`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let parts = s
            .split_once('/')
            .or_else(|| s.strip_prefix("shard-")?.split_once("-of-"));
        let bad =
            || format!("invalid shard `{s}`; expected `I/N` with 1 <= I <= N <= 1024, e.g. `2/4`");
        let (i, n) = parts.ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<u32>().map_err(|_| bad())?,
            n.trim().parse::<u32>().map_err(|_| bad())?,
        );
        if index == 0 || index > count || count > 1024 {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The split before this one, for the comparison: FNV-1a of `market/symbol/interval`
    /// modulo N.
    fn hash_split(key: &str, count: u32) -> u32 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        (h % u64::from(count)) as u32 + 1
    }

    /// Each shard's work under a split.
    fn loads(series: &[(String, u64)], shard_of: impl Fn(&str) -> u32, count: u32) -> Vec<u64> {
        let mut out = vec![0; count as usize];
        for (k, w) in series {
            out[shard_of(k) as usize - 1] += w;
        }
        out
    }

    fn series(symbols: usize, intervals: &[Interval]) -> Vec<(String, u64)> {
        (0..symbols)
            .flat_map(|i| {
                intervals
                    .iter()
                    .map(move |iv| (format!("spot/SYM{i:03}USDT/{}", iv.as_str()), weight(*iv)))
            })
            .collect()
    }

    #[test]
    fn weights_are_candles_per_thirty_days() {
        assert_eq!(weight(Interval::M1), 43_200);
        assert_eq!(weight(Interval::H1), 720);
        assert_eq!(weight(Interval::D1), 30);
        assert_eq!(weight(Interval::Mo1), 1);
        assert_eq!(weight(Interval::S1), 2_592_000);
    }

    /// The two cases, old split against new (max over mean of the shards' work; the
    /// README quotes these figures).
    #[test]
    fn the_split_is_balanced_where_the_hash_was_not() {
        // 4 symbols x 1m, 1h on 3 shards: four heavy series cannot split evenly over three
        // shards; the best any whole-series split can do is 2 x 1m on one shard, 1.475.
        let eight: Vec<(String, u64)> = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"]
            .iter()
            .flat_map(|s| {
                [Interval::M1, Interval::H1]
                    .map(|iv| (format!("spot/{s}/{}", iv.as_str()), weight(iv)))
            })
            .collect();
        let new = assign(&eight, 3);
        let lpt = max_over_mean(&loads(&eight, |k| new[k], 3));
        let hash = max_over_mean(&loads(&eight, |k| hash_split(k, 3), 3));
        assert!((lpt - 1.475).abs() < 0.001, "{lpt}");
        let hash_loads = loads(&eight, |k| hash_split(k, 3), 3);
        println!("8 series / 3 shards: hash split's work per shard {hash_loads:?}");
        assert!(hash > lpt, "hash {hash} vs {lpt}");
        println!("8 series / 3 shards: hash {hash:.3}, balanced {lpt:.3}");
        // 50 symbols x 1m, 5m, 1h, 1d on 7 shards.
        let many = series(
            50,
            &[Interval::M1, Interval::M5, Interval::H1, Interval::D1],
        );
        assert_eq!(many.len(), 200);
        let new = assign(&many, 7);
        let lpt = max_over_mean(&loads(&many, |k| new[k], 7));
        let hash = max_over_mean(&loads(&many, |k| hash_split(k, 7), 7));
        assert!(lpt < 1.01, "{lpt}");
        assert!(hash > lpt, "hash {hash} vs {lpt}");
        println!("200 series / 7 shards: hash {hash:.3}, balanced {lpt:.3}");
    }

    #[test]
    fn ties_go_to_the_lower_shard_in_key_order() {
        let s = vec![
            ("b".to_owned(), 1),
            ("a".to_owned(), 1),
            ("c".to_owned(), 5),
        ];
        let got = assign(&s, 2);
        assert_eq!(got["c"], 1);
        assert_eq!(got["a"], 2);
        assert_eq!(got["b"], 2);
    }

    proptest! {
        #[test]
        fn every_series_gets_one_shard_and_every_shard_work(
            weights in proptest::collection::vec(1u64..50_000, 0..300),
            count in 1u32..20,
            rotate in 0usize..300,
        ) {
            let s: Vec<(String, u64)> =
                weights.iter().enumerate().map(|(i, w)| (format!("s{i:03}"), *w)).collect();
            let got = assign(&s, count);
            prop_assert_eq!(got.len(), s.len());
            prop_assert!(got.values().all(|i| (1..=count).contains(i)));
            let used: std::collections::BTreeSet<u32> = got.values().copied().collect();
            if s.len() >= count as usize {
                prop_assert_eq!(used.len(), count as usize);
            }
            // The same split whatever the order the series come in.
            let mut r = s.clone();
            if !r.is_empty() {
                let k = rotate % r.len();
                r.rotate_left(k);
                r.reverse();
            }
            prop_assert_eq!(&assign(&r, count), &got);
            // The LPT bound: the heaviest shard is within one series of the mean.
            let l = loads(&s, |k| got[k], count);
            let total: u64 = l.iter().sum();
            let max_w = s.iter().map(|x| x.1).max().unwrap_or(0);
            let max = l.iter().copied().max().unwrap_or(0);
            prop_assert!(max as f64 <= total as f64 / f64::from(count) + max_w as f64);
        }
    }
}

//! Sharded runs (`--shard I/N`): which shard owns a series, and the shard's spelling in
//! file names (`_kline_etl/summary.shard-2-of-4.json`, the shard's lock and resume file).

use std::fmt;

use crate::interval::Interval;
use crate::market::Market;

/// One of N shards of a pipeline (`--shard I/N`): the series (market × symbol × interval)
/// whose stable hash modulo N is `I - 1`. N processes on N hosts fill one dataset without
/// coordinating: no two shards ever write the same series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    /// 1-based index.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// Whether this shard owns the series `market/symbol/interval`. FNV-1a of the text, so
    /// the split is the same on every host, build and run.
    pub fn owns(self, market: Market, symbol: &str, interval: Interval) -> bool {
        let key = format!("{}/{symbol}/{}", market.as_str(), interval.as_str());
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h % u64::from(self.count) == u64::from(self.index - 1)
    }
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

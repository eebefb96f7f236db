//! The snapshot datasets' requests: which `/ticker/price` and `/depth` calls a selection
//! needs and what each weighs (pure planning from [`Market`]'s tables), and fetching them
//! through a connected [`Session`], so they share the run's weight budget, retries and
//! 429/418 handling with everything else.

use bytes::Bytes;

use super::Session;
use crate::market::Market;
use crate::symbol::Symbol;

/// A snapshot request that failed for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The run stopped (cancelled, or banned longer than `max_ban_wait_secs`).
    #[error("stopped before the request completed")]
    Halted,
    /// The exchange refused the request (bad symbol, bad parameter).
    #[error("the exchange refused it: http {status}, code {code_text}: {msg}", code_text = code.map_or_else(|| "none".to_owned(), |c| c.to_string()))]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Binance error code, when the body had one.
        code: Option<i64>,
        /// Binance message.
        msg: String,
    },
    /// Transient failures until the retries ran out.
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// One planned request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// Path under the market prefix (`/ticker/price`, `/depth`).
    pub path: &'static str,
    /// Query parameters.
    pub query: Vec<(&'static str, String)>,
    /// Request weight per the market's table.
    pub weight: u32,
    /// Symbols to keep from the reply (`None` = all it holds). Futures take no symbol list,
    /// so a selection of several symbols reads the whole market and keeps the selection.
    pub keep: Option<Vec<Symbol>>,
}

/// The one `/ticker/price` request for `symbols` (`None` = every symbol): one `symbol` when
/// there is exactly one; on spot a `symbols` list; on futures the whole market, filtered.
pub fn ticker_request(market: Market, symbols: Option<&[Symbol]>) -> SnapshotRequest {
    match symbols {
        Some([one]) => SnapshotRequest {
            path: "/ticker/price",
            query: vec![("symbol", one.as_str().to_owned())],
            weight: market.ticker_price_weight(true),
            keep: Some(vec![one.clone()]),
        },
        Some(list) if market.ticker_price_takes_list() => {
            let names: Vec<String> = list.iter().map(|s| format!("\"{s}\"")).collect();
            SnapshotRequest {
                path: "/ticker/price",
                query: vec![("symbols", format!("[{}]", names.join(",")))],
                weight: market.ticker_price_weight(false),
                keep: Some(list.to_vec()),
            }
        }
        Some(list) => SnapshotRequest {
            path: "/ticker/price",
            query: Vec::new(),
            weight: market.ticker_price_weight(false),
            keep: Some(list.to_vec()),
        },
        None => SnapshotRequest {
            path: "/ticker/price",
            query: Vec::new(),
            weight: market.ticker_price_weight(false),
            keep: None,
        },
    }
}

/// The `/depth` request of one symbol at `limit` levels, weighted by the levels the
/// exchange will serve.
pub fn depth_request(market: Market, symbol: &Symbol, limit: u32) -> SnapshotRequest {
    let (_, weight) = market.depth_levels(limit);
    SnapshotRequest {
        path: "/depth",
        query: vec![
            ("symbol", symbol.as_str().to_owned()),
            ("limit", limit.to_string()),
        ],
        weight,
        keep: None,
    }
}

/// A reply and the exchange time it arrived at.
#[derive(Debug, Clone)]
pub struct SnapshotReply {
    /// The body.
    pub body: Bytes,
    /// The exchange clock when the reply arrived, ms.
    pub received_ms: i64,
}

/// Send a planned request through the session (budget, retries, bans).
pub async fn fetch(
    session: &Session,
    req: &SnapshotRequest,
) -> Result<SnapshotReply, RequestError> {
    let body = session
        .request(req.path, req.query.clone(), req.weight)
        .await?;
    Ok(SnapshotReply {
        body,
        received_ms: session.now_ms(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syms(list: &[&str]) -> Vec<Symbol> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn ticker_requests_pick_the_cheapest_form_per_market() {
        let one = syms(&["BTCUSDT"]);
        let two = syms(&["BTCUSDT", "ETHUSDT"]);
        let r = ticker_request(Market::Spot, Some(&one));
        assert_eq!((r.weight, r.query[0].0), (2, "symbol"));
        let r = ticker_request(Market::Spot, Some(&two));
        assert_eq!(
            r.query,
            [("symbols", "[\"BTCUSDT\",\"ETHUSDT\"]".to_owned())]
        );
        assert_eq!(r.weight, 4);
        let r = ticker_request(Market::UsdM, Some(&two));
        assert!(r.query.is_empty());
        assert_eq!((r.weight, r.keep.as_deref()), (2, Some(&two[..])));
        let r = ticker_request(Market::CoinM, None);
        assert_eq!((r.weight, r.keep), (2, None));
        assert_eq!(ticker_request(Market::UsdM, Some(&one)).weight, 1);
    }

    #[test]
    fn depth_requests_weigh_by_limit() {
        let s: Symbol = "BTCUSDT".parse().unwrap();
        assert_eq!(depth_request(Market::Spot, &s, 100).weight, 5);
        assert_eq!(depth_request(Market::Spot, &s, 5000).weight, 250);
        assert_eq!(depth_request(Market::UsdM, &s, 1000).weight, 20);
        assert_eq!(depth_request(Market::CoinM, &s, 20).weight, 2);
    }
}

//! Requests and paging of `/fundingRate` (`/fapi/v1/fundingRate`, `/dapi/v1/fundingRate`):
//! the query of a page, the decision after each page (pure, unit-tested), the endpoint's own
//! request limit, and the loop that pages one symbol's window through the shared [`Session`]
//! (permits, weight budget, retries with backoff on 429/418/5xx, bans).
//!
//! The exchange returns records with `startTime <= fundingTime <= endTime` in ascending order,
//! at most `limit` (max 1000) per reply, starting from `startTime` when more exist. Funding
//! times are a few ms past the hour, so the next page starts 1 ms after the last record
//! received, never at a computed grid point.

use tokio::sync::watch;

use super::rows::{FundingRecord, RowsError, parse_reply};
use crate::config::PriceType;
use crate::extract::Session;
use crate::extract::budget::WeightLimit;
use crate::extract::pager::EndpointLimit;
use crate::extract::snapshot::RequestError;

/// The endpoint under the market prefix.
pub const PATH: &str = "/fundingRate";
/// Records per page: the documented maximum.
pub const PAGE_LIMIT: usize = 1000;
/// Request weight counted against the market's weight budget (COIN-M documents 1; USDⓈ-M
/// documents only the request limit below, and 1 is counted there too, to err high).
pub const REQUEST_WEIGHT: u32 = 1;
/// The endpoint's own limit: 500 requests per 5 minutes per IP, shared with `/fundingInfo`.
pub const REQUESTS_PER_WINDOW: u32 = 500;
/// The window of [`REQUESTS_PER_WINDOW`], in minutes.
pub const WINDOW_MINUTES: u32 = 5;

/// The endpoint family's request limit, for [`crate::extract::ExtractConfig::endpoint_limits`].
pub fn endpoint_limit() -> EndpointLimit {
    EndpointLimit {
        paths: vec![PATH, "/fundingInfo"],
        limit: WeightLimit {
            limit: REQUESTS_PER_WINDOW,
            unit: 'M',
            num: WINDOW_MINUTES,
        },
    }
}

/// The least time `requests` funding requests take under the endpoint's own limit at
/// `share` of it (for `plan`): a full window of waiting for every allowance after the first.
pub fn min_seconds(requests: u64, share: f64) -> f64 {
    let allowed = (f64::from(REQUESTS_PER_WINDOW) * share).floor().max(1.0);
    let windows = (requests as f64 / allowed).ceil() - 1.0;
    windows.max(0.0) * f64::from(WINDOW_MINUTES * 60)
}

/// The query of the page starting at `start` of the window `[.., end)` (ms).
pub fn page_query(symbol: &str, start: i64, end: i64) -> Vec<(&'static str, String)> {
    vec![
        ("symbol", symbol.to_owned()),
        ("startTime", start.to_string()),
        ("endTime", (end - 1).max(start).to_string()),
        ("limit", PAGE_LIMIT.to_string()),
    ]
}

/// What to do after a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The window is done.
    Done,
    /// Ask for the next page from this time (ms).
    From(i64),
}

/// The decision after a page of `page` records asked from `start` in the window `[.., end)`:
/// a short page ends the window (the exchange had no more); a full one continues 1 ms after
/// its last record, unless that is past the window or would not move forward.
pub fn next_page(page: &[FundingRecord], start: i64, end: i64) -> Next {
    if page.len() < PAGE_LIMIT {
        return Next::Done;
    }
    match page.iter().map(|r| r.funding_time).max() {
        Some(last) if last >= start && last + 1 < end => Next::From(last + 1),
        _ => Next::Done,
    }
}

/// Why a symbol's window could not be fetched in full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The request failed (refused, retries exhausted) or the run stopped.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The reply could not be read.
    #[error(transparent)]
    Rows(#[from] RowsError),
}

/// What paging one window produced: the records inside it, ascending and unique by
/// `funding_time` (the last copy of a time wins), and the requests sent. On a failure the
/// records before it are kept (`error` is set).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WindowFetch {
    /// Records in the window.
    pub records: Vec<FundingRecord>,
    /// Requests sent (pages).
    pub requests: u64,
    /// Why it stopped early, if it did.
    pub error: Option<FetchError>,
}

/// Keep the records in `[start, end)`, sorted and unique by `funding_time` (later wins).
pub fn screen(records: Vec<FundingRecord>, start: i64, end: i64) -> Vec<FundingRecord> {
    let map: std::collections::BTreeMap<i64, FundingRecord> = records
        .into_iter()
        .filter(|r| (start..end).contains(&r.funding_time))
        .map(|r| (r.funding_time, r))
        .collect();
    map.into_values().collect()
}

/// Page `symbol`'s records in `[start, end)` through `session`. Stops between pages when
/// `cancel` is set.
pub async fn fetch_window(
    session: &Session,
    symbol: &str,
    (start, end): (i64, i64),
    prices: PriceType,
    cancel: &watch::Receiver<bool>,
) -> WindowFetch {
    let mut out = WindowFetch::default();
    let mut received = Vec::new();
    let mut from = start;
    while from < end {
        if *cancel.borrow() {
            out.error = Some(FetchError::Request(RequestError::Halted));
            break;
        }
        out.requests += 1;
        let page = match session
            .request(PATH, page_query(symbol, from, end), REQUEST_WEIGHT)
            .await
            .map_err(FetchError::from)
            .and_then(|body| parse_reply(&body, symbol, prices).map_err(FetchError::from))
        {
            Ok(p) => p,
            Err(e) => {
                out.error = Some(e);
                break;
            }
        };
        let next = next_page(&page, from, end);
        received.extend(page);
        match next {
            Next::Done => break,
            Next::From(t) => from = t,
        }
    }
    out.records = screen(received, start, end);
    out
}

#[cfg(test)]
mod tests {
    use super::super::rows::Value;
    use super::*;

    fn recs(times: impl IntoIterator<Item = i64>) -> Vec<FundingRecord> {
        times
            .into_iter()
            .map(|t| FundingRecord {
                funding_time: t,
                funding_rate: Value::Float(0.0001),
                mark_price: None,
            })
            .collect()
    }

    const H8: i64 = 8 * 3_600_000;

    #[test]
    fn a_short_page_ends_the_window() {
        assert_eq!(next_page(&recs([0, H8 + 3]), 0, 10 * H8), Next::Done);
        assert_eq!(next_page(&[], 0, 10 * H8), Next::Done);
    }

    #[test]
    fn a_full_page_continues_one_ms_after_its_last_record_not_on_a_grid() {
        let page = recs((0..1000).map(|i| i * H8 + i % 7));
        let last = 999 * H8 + 999 % 7;
        assert_eq!(next_page(&page, 0, 2000 * H8), Next::From(last + 1));
        // The last record is the window's last instant: nothing can follow.
        assert_eq!(next_page(&page, 0, last + 1), Next::Done);
        // A full page that does not move forward (a broken server) ends the window.
        assert_eq!(next_page(&page, last + 5, 2000 * H8), Next::Done);
    }

    #[test]
    fn queries_send_an_inclusive_end_and_the_largest_page() {
        let q = page_query("BTCUSDT", 1_000, 5_000);
        assert_eq!(
            q,
            vec![
                ("symbol", "BTCUSDT".to_owned()),
                ("startTime", "1000".to_owned()),
                ("endTime", "4999".to_owned()),
                ("limit", "1000".to_owned()),
            ]
        );
    }

    #[test]
    fn screening_keeps_the_window_and_dedupes_by_funding_time() {
        let mut r = recs([5, 1, 3, 3, 9, 10]);
        r[3].funding_rate = Value::Float(-0.0002);
        let kept = screen(r, 1, 10);
        let times: Vec<i64> = kept.iter().map(|r| r.funding_time).collect();
        assert_eq!(times, vec![1, 3, 5, 9]);
        assert_eq!(kept[1].funding_rate, Value::Float(-0.0002));
    }

    #[test]
    fn plans_wait_a_window_for_every_allowance_after_the_first() {
        assert_eq!(min_seconds(450, 0.9), 0.0);
        assert_eq!(min_seconds(451, 0.9), 300.0);
        assert_eq!(min_seconds(5400, 0.9), 11.0 * 300.0);
    }

    #[test]
    fn the_limit_is_500_requests_per_5_minutes_for_both_paths() {
        let l = endpoint_limit();
        assert_eq!(l.limit.window_ms(), 300_000);
        assert_eq!(l.limit.limit, 500);
        assert!(l.paths.contains(&"/fundingRate") && l.paths.contains(&"/fundingInfo"));
    }
}

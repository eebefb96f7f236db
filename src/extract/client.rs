//! The async REST client: one `reqwest` connection pool per run (rustls, gzip, keep-alive),
//! a base URL per market, request timeouts, a `User-Agent` naming the tool and version, the
//! optional API key sent only as `X-MBX-APIKEY` (a sensitive header: never logged), and bounded
//! response bodies. It makes exactly one attempt per call; budget and retries live in the pager.
//!
//! Redirects are never followed ([`reqwest::redirect::Policy::none`]): Binance never redirects
//! an API call, and following one would send the API key to whatever host the `Location`
//! names. A `3xx` is [`TransportError::Redirect`], naming the `Location`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderValue};

use crate::config::Secret;
use crate::market::Market;

use super::retry::RetryCause;

/// The `User-Agent` sent with every request.
pub const USER_AGENT: &str = concat!("kline-etl/", env!("CARGO_PKG_VERSION"));

/// Replies larger than this are refused (a klines page of 1500 rows is about 250 KiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How to reach one market.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Which market (selects the path prefix).
    pub market: Market,
    /// Base URL without the prefix, e.g. `https://api.binance.com` or the simulator's address.
    pub base_url: String,
    /// Optional API key, sent only as `X-MBX-APIKEY`.
    pub api_key: Option<Secret>,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Largest accepted body.
    pub max_body_bytes: usize,
}

impl ClientConfig {
    /// Defaults for `market` at `base_url`: 10 s timeout, 16 MiB bodies, no key.
    pub fn new(market: Market, base_url: impl Into<String>) -> ClientConfig {
        ClientConfig {
            market,
            base_url: base_url.into(),
            api_key: None,
            timeout: Duration::from_secs(10),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// A failure below HTTP: no status was received, or the body could not be read in full.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The HTTP client could not be built (TLS backend).
    #[error("cannot build the http client")]
    Build(#[source] reqwest::Error),
    /// The request timed out.
    #[error("request to `{path}` timed out")]
    Timeout {
        /// Endpoint path.
        path: String,
    },
    /// Connecting, sending or reading failed (refused, reset, truncated body).
    #[error("request to `{path}` failed")]
    Connection {
        /// Endpoint path.
        path: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The body exceeded the size cap.
    #[error("reply from `{path}` exceeds {limit} bytes")]
    TooLarge {
        /// Endpoint path.
        path: String,
        /// The cap.
        limit: usize,
    },
    /// A `3xx` reply: never followed (the API key must not leave the configured host).
    #[error(
        "`{path}` answered http {status}, redirecting to `{location}`; redirects are never followed (Binance never redirects API calls, and the API key must not leave the configured host): set `source.base_url` to the address that serves the API"
    )]
    Redirect {
        /// Endpoint path.
        path: String,
        /// HTTP status (301, 302, 307, ...).
        status: u16,
        /// The `Location` header, verbatim (`none` when absent).
        location: String,
    },
}

impl TransportError {
    /// The retry cause this failure counts as.
    pub fn cause(&self) -> RetryCause {
        match self {
            TransportError::Timeout { .. } => RetryCause::Timeout,
            TransportError::TooLarge { .. } => RetryCause::BadBody,
            TransportError::Redirect { .. } => RetryCause::Server,
            TransportError::Build(_) | TransportError::Connection { .. } => RetryCause::Connection,
        }
    }
}

/// One HTTP reply, body read in full.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The used-weight header asked for, parsed.
    pub used_weight: Option<u32>,
    /// `Retry-After`, verbatim.
    pub retry_after: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// A `REQUEST_WEIGHT` (or other) entry of `exchangeInfo.rateLimits`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// `REQUEST_WEIGHT`, `RAW_REQUESTS`, `ORDERS`.
    pub rate_limit_type: String,
    /// `SECOND`, `MINUTE`, `HOUR`, `DAY`.
    pub interval: String,
    /// Units per window.
    pub interval_num: u32,
    /// The limit per window.
    pub limit: u32,
}

/// A symbol entry of `exchangeInfo`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymbolInfo {
    /// The symbol, e.g. `BTCUSDT`.
    pub symbol: String,
    /// Spot and USDⓈ-M status (`TRADING`, `BREAK`, ...).
    #[serde(default)]
    pub status: Option<String>,
    /// COIN-M's status field.
    #[serde(default)]
    pub contract_status: Option<String>,
    /// Base asset.
    #[serde(default)]
    pub base_asset: String,
    /// Quote asset.
    #[serde(default)]
    pub quote_asset: String,
    /// Futures only: when the contract was listed, ms.
    #[serde(default)]
    pub onboard_date: Option<i64>,
}

impl SymbolInfo {
    /// The trading status whichever field carries it.
    pub fn trading_status(&self) -> Option<&str> {
        self.status.as_deref().or(self.contract_status.as_deref())
    }
}

/// The parts of `exchangeInfo` the run uses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeInfo {
    /// Rate limits.
    #[serde(default)]
    pub rate_limits: Vec<RateLimit>,
    /// Symbols.
    #[serde(default)]
    pub symbols: Vec<SymbolInfo>,
}

impl ExchangeInfo {
    /// The `REQUEST_WEIGHT` limit with the shortest window, if declared.
    pub fn weight_limit(&self) -> Option<super::budget::WeightLimit> {
        self.rate_limits
            .iter()
            .filter(|r| r.rate_limit_type == "REQUEST_WEIGHT")
            .filter_map(|r| {
                super::budget::WeightLimit::from_rate_limit(&r.interval, r.interval_num, r.limit)
            })
            .min_by_key(super::budget::WeightLimit::window_ms)
    }
}

/// A helper call (`/time`, `/exchangeInfo`) failed.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// Transport failure.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A non-2xx status.
    #[error("`{path}` answered http {status}: {text}")]
    Status {
        /// Endpoint path.
        path: String,
        /// HTTP status.
        status: u16,
        /// The body's `msg`, or a note.
        text: String,
    },
    /// The request failed for good (retries ran out, the exchange refused it).
    #[error("`{path}` failed: {reason}")]
    Failed {
        /// Endpoint path.
        path: String,
        /// The last status and the exchange's error, or the transport failure.
        reason: String,
    },
    /// The body was not the expected JSON.
    #[error("`{path}` answered with an unexpected body")]
    Body {
        /// Endpoint path.
        path: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// The REST client for one market.
#[derive(Debug, Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base: String,
    market: Market,
    max_body_bytes: usize,
}

impl RestClient {
    /// Build a client (one connection pool, reused by every request).
    pub fn new(cfg: &ClientConfig) -> Result<RestClient, TransportError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &cfg.api_key {
            // An invalid header value is dropped rather than echoed in an error.
            if let Ok(mut v) = HeaderValue::from_str(key.expose()) {
                v.set_sensitive(true);
                headers.insert("x-mbx-apikey", v);
            }
        }
        crate::tls::ensure_provider();
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .gzip(true)
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(TransportError::Build)?;
        Ok(RestClient {
            http,
            base: format!(
                "{}{}",
                cfg.base_url.trim_end_matches('/'),
                cfg.market.api_prefix()
            ),
            market: cfg.market,
            max_body_bytes: cfg.max_body_bytes,
        })
    }

    /// The market this client talks to.
    pub fn market(&self) -> Market {
        self.market
    }

    /// One GET of `{base}{prefix}{path}` with `query`; reads the used-weight header named
    /// `weight_header` (lowercase).
    pub async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        weight_header: &str,
    ) -> Result<Reply, TransportError> {
        let url = format!("{}{path}", self.base);
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                TransportError::Timeout {
                    path: path.to_owned(),
                }
            } else {
                TransportError::Connection {
                    path: path.to_owned(),
                    source: e.without_url(),
                }
            }
        };
        let mut resp = self
            .http
            .get(url)
            .query(query)
            .send()
            .await
            .map_err(classify)?;
        let headers = resp.headers();
        let used_weight = headers
            .get(weight_header)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse().ok());
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let status = resp.status().as_u16();
        if resp.status().is_redirection() {
            return Err(redirect_error(path, status, headers));
        }
        let too_large = || TransportError::TooLarge {
            path: path.to_owned(),
            limit: self.max_body_bytes,
        };
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_body_bytes as u64)
        {
            return Err(too_large());
        }
        let mut body = BodyBuf::new(resp.content_length(), self.max_body_bytes);
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            body.push(chunk).map_err(|()| too_large())?;
        }
        Ok(Reply {
            status,
            used_weight,
            retry_after,
            body: body.finish(),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        weight_header: &str,
    ) -> Result<(T, Option<u32>), HelperError> {
        let r = self.get(path, &[], weight_header).await?;
        if !(200..300).contains(&r.status) {
            let text = super::retry::error_body(&r.body).map_or_else(
                || "no exchange error in body".to_owned(),
                |(c, m)| format!("{c} {m}"),
            );
            return Err(HelperError::Status {
                path: path.to_owned(),
                status: r.status,
                text,
            });
        }
        let v = serde_json::from_slice(&r.body).map_err(|source| HelperError::Body {
            path: path.to_owned(),
            source,
        })?;
        Ok((v, r.used_weight))
    }

    /// `GET /time`: the exchange's clock, ms.
    pub async fn server_time(&self) -> Result<i64, HelperError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Time {
            server_time: i64,
        }
        let (t, _): (Time, _) = self.get_json("/time", "x-mbx-used-weight-1m").await?;
        Ok(t.server_time)
    }

    /// `GET /exchangeInfo`: rate limits and symbols.
    pub async fn exchange_info(&self) -> Result<ExchangeInfo, HelperError> {
        Ok(self
            .get_json("/exchangeInfo", "x-mbx-used-weight-1m")
            .await?
            .0)
    }
}

/// A reply body gathered from its chunks, at most `limit` bytes. A body that arrives in one
/// chunk (usual for a page on a fast connection: hyper reads it whole into its buffer) is
/// kept as that chunk, without a copy; a body in several chunks is copied into one buffer,
/// sized from `Content-Length` when the server sent one.
pub(crate) struct BodyBuf {
    /// The body while it is one chunk.
    first: Option<Bytes>,
    /// The body once a second chunk came (`first` is then `None`).
    rest: BytesMut,
    expected: Option<u64>,
    limit: usize,
}

impl BodyBuf {
    pub(crate) fn new(expected: Option<u64>, limit: usize) -> BodyBuf {
        BodyBuf {
            first: None,
            rest: BytesMut::new(),
            expected,
            limit,
        }
    }

    /// Add the next chunk; `Err` when the body would pass the limit.
    pub(crate) fn push(&mut self, chunk: Bytes) -> Result<(), ()> {
        let before = self.first.as_ref().map_or(self.rest.len(), Bytes::len);
        let len = before + chunk.len();
        if len > self.limit {
            return Err(());
        }
        if before == 0 {
            self.first = Some(chunk);
            return Ok(());
        }
        if let Some(first) = self.first.take() {
            let room = self.expected.map_or(64 * 1024, |n| n as usize);
            self.rest.reserve(room.clamp(len, self.limit));
            self.rest.extend_from_slice(&first);
        }
        self.rest.extend_from_slice(&chunk);
        Ok(())
    }

    /// The whole body.
    pub(crate) fn finish(self) -> Bytes {
        self.first.unwrap_or_else(|| self.rest.freeze())
    }
}

/// The error for a `3xx` reply to `path`, naming its `Location`.
fn redirect_error(path: &str, status: u16, headers: &HeaderMap) -> TransportError {
    TransportError::Redirect {
        path: path.to_owned(),
        status,
        location: location_of(headers),
    }
}

/// A reply's `Location` header for error messages (`none` when absent).
pub fn location_of(headers: &HeaderMap) -> String {
    headers.get(reqwest::header::LOCATION).map_or_else(
        || "none".to_owned(),
        |v| String::from_utf8_lossy(v.as_bytes()).into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_in_one_chunk_is_kept_without_a_copy_and_several_are_joined() {
        let page = Bytes::from_static(b"[[1,\"2\"]]");
        let mut one = BodyBuf::new(Some(page.len() as u64), 64);
        one.push(page.clone()).unwrap();
        let kept = one.finish();
        assert_eq!((kept.as_ptr(), kept.len()), (page.as_ptr(), page.len()));

        let mut many = BodyBuf::new(None, 64);
        for part in ["", "[[1,", "", "\"2\"]]"] {
            many.push(Bytes::from(part)).unwrap();
        }
        assert_eq!(many.finish(), page);

        let mut big = BodyBuf::new(None, 8);
        big.push(Bytes::from_static(b"12345")).unwrap();
        assert!(big.push(Bytes::from_static(b"6789")).is_err());
        assert!(
            BodyBuf::new(None, 4)
                .push(Bytes::from_static(b"12345"))
                .is_err()
        );
        assert_eq!(BodyBuf::new(None, 4).finish(), Bytes::new());
    }

    #[test]
    fn exchange_info_picks_the_request_weight_limit() {
        let body = r#"{"timezone":"UTC","serverTime":1,"rateLimits":[
            {"rateLimitType":"RAW_REQUESTS","interval":"MINUTE","intervalNum":5,"limit":61000},
            {"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000}],
            "symbols":[{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT"},
            {"symbol":"BTCUSD_PERP","contractStatus":"TRADING","baseAsset":"BTC","quoteAsset":"USD","onboardDate":1597042800000}]}"#;
        let info: ExchangeInfo = serde_json::from_str(body).unwrap();
        let l = info.weight_limit().unwrap();
        assert_eq!((l.limit, l.window_ms()), (6000, 60_000));
        assert_eq!(info.symbols[1].trading_status(), Some("TRADING"));
        assert_eq!(info.symbols[0].quote_asset, "USDT");
        assert_eq!(info.symbols[1].onboard_date, Some(1_597_042_800_000));
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let mut cfg = ClientConfig::new(Market::Spot, "http://127.0.0.1:1");
        cfg.api_key = Some(Secret::new("topsecretkey".into()));
        let c = RestClient::new(&cfg).unwrap();
        assert!(!format!("{cfg:?} {c:?}").contains("topsecretkey"));
        assert!(USER_AGENT.starts_with("kline-etl/"));
    }
}

//! The HTTP side of the simulator: the axum service, the Binance routes of all three markets
//! (`/api/v3`, `/fapi/v1`, `/dapi/v1`), parameter validation with Binance's error bodies, the
//! weight/fault pipeline every request goes through, and `/__sim/stats`.
//!
//! Each request: number it, add latency, apply a "replace" fault (5xx, HTML, forced 429/418),
//! check the weight limit, run the endpoint, then apply a "transport" fault (reset, truncated
//! or slow body). Every reply carries the used-weight header of its market.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::serve::{IncomingStream, Listener};
use bytes::Bytes;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::clock::wall_ms;
use super::data::{MICROS_THRESHOLD, Selection, SymbolData, fixed, mix, unit};
use super::faults::FaultKind;
use super::limits::{Limiter, Verdict};
use super::state::Shared;
use crate::interval::{DAY_MS, Interval};
use crate::market::Market;

// ---------------------------------------------------------------------------------------------
// Listener whose connections a handler can reset.

/// A TCP listener whose streams can be killed by the request being served on them.
#[derive(Debug)]
pub(crate) struct SimListener(pub(crate) TcpListener);

/// Connection info handed to handlers: the peer address and the connection's kill switch.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    remote: SocketAddr,
    kill: Arc<AtomicBool>,
}

/// A TCP stream that fails every write once its kill switch is set, and resets on drop.
#[derive(Debug)]
pub(crate) struct SimStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl SimStream {
    fn killed(&self) -> bool {
        if self.kill.load(Ordering::SeqCst) {
            // Zero linger: closing sends RST instead of FIN.
            let _ = self.inner.set_zero_linger();
            true
        } else {
            false
        }
    }
}

fn reset_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "simulated connection reset")
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Listener for SimListener {
    type Io = SimStream;
    type Addr = Conn;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((inner, remote)) => {
                    let _ = inner.set_nodelay(true);
                    let kill = Arc::new(AtomicBool::new(false));
                    let conn = Conn {
                        remote,
                        kill: Arc::clone(&kill),
                    };
                    return (SimStream { inner, kill }, conn);
                }
                // Out of file descriptors and similar: back off briefly, as axum does.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Conn {
            remote: self.0.local_addr()?,
            kill: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl Connected<IncomingStream<'_, SimListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// The axum app.
pub(crate) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

// ---------------------------------------------------------------------------------------------
// Replies and errors.

/// A reply before transport faults: status, body, content type, Retry-After.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: Bytes,
    html: bool,
    retry_after: Option<u64>,
    location: Option<String>,
}

impl Reply {
    fn ok(body: impl Into<Bytes>) -> Self {
        Self {
            status: StatusCode::OK,
            body: body.into(),
            html: false,
            retry_after: None,
            location: None,
        }
    }

    fn json(status: StatusCode, v: &serde_json::Value) -> Self {
        Self {
            status,
            body: Bytes::from(v.to_string()),
            html: false,
            retry_after: None,
            location: None,
        }
    }
}

/// A Binance error: HTTP status, code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApiError {
    status: StatusCode,
    code: i32,
    msg: String,
}

impl ApiError {
    fn bad(code: i32, msg: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            msg: msg.into(),
        }
    }

    fn mandatory(name: &str) -> Self {
        Self::bad(
            -1102,
            format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
        )
    }

    fn illegal(name: &str, range: &str) -> Self {
        Self::bad(
            -1100,
            format!("Illegal characters found in parameter '{name}'; legal range is '{range}'."),
        )
    }

    fn invalid(name: &str) -> Self {
        Self::bad(
            -1130,
            format!("Data sent for parameter '{name}' is not valid."),
        )
    }

    fn symbol() -> Self {
        Self::bad(-1121, "Invalid symbol.")
    }

    fn into_reply(self) -> Reply {
        Reply::json(self.status, &json!({"code": self.code, "msg": self.msg}))
    }
}

const NUM_RANGE: &str = "^[0-9]{1,20}$";
const SYMBOL_RANGE: &str = "^[A-Z0-9-_.]{1,20}$";

/// The request's query parameters.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::mandatory(name)),
        }
    }

    fn number(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => {
                if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ApiError::illegal(name, NUM_RANGE));
                }
                // 20 digits can overflow i64: treat as out of range.
                v.parse::<i64>()
                    .map(Some)
                    .map_err(|_| ApiError::invalid(name))
            }
        }
    }

    fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        Ok(self
            .number(name)?
            .map(|t| if t >= MICROS_THRESHOLD { t / 1000 } else { t }))
    }

    fn symbol(&self) -> Result<&str, ApiError> {
        let s = self.required("symbol")?;
        check_symbol_chars("symbol", s)?;
        Ok(s)
    }
}

fn check_symbol_chars(name: &str, s: &str) -> Result<(), ApiError> {
    let ok = (1..=20).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::illegal(name, SYMBOL_RANGE))
    }
}

// ---------------------------------------------------------------------------------------------
// Routing.

/// The endpoints the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Ping,
    Time,
    ExchangeInfo,
    Klines,
    UiKlines,
    TickerPrice,
    Depth,
    MarkPriceKlines,
    IndexPriceKlines,
    PremiumIndexKlines,
    ContinuousKlines,
    FundingRate,
}

fn route(path: &str) -> Option<(Market, Endpoint)> {
    let market = Market::ALL
        .into_iter()
        .find(|m| path.starts_with(m.api_prefix()))?;
    let rest = &path[market.api_prefix().len()..];
    let ep = match rest {
        "/ping" => Endpoint::Ping,
        "/time" => Endpoint::Time,
        "/exchangeInfo" => Endpoint::ExchangeInfo,
        "/klines" => Endpoint::Klines,
        "/uiKlines" if market == Market::Spot => Endpoint::UiKlines,
        "/ticker/price" => Endpoint::TickerPrice,
        "/depth" => Endpoint::Depth,
        "/markPriceKlines" if market != Market::Spot => Endpoint::MarkPriceKlines,
        "/indexPriceKlines" if market != Market::Spot => Endpoint::IndexPriceKlines,
        "/premiumIndexKlines" if market != Market::Spot => Endpoint::PremiumIndexKlines,
        "/continuousKlines" if market != Market::Spot => Endpoint::ContinuousKlines,
        "/fundingRate" if market != Market::Spot => Endpoint::FundingRate,
        _ => return None,
    };
    Some((market, ep))
}

/// Depth levels served and weight, from the market table (spot clamps, futures rounds up).
fn depth_levels(market: Market, limit: Option<i64>) -> (usize, u32) {
    let limit = limit.map_or(market.default_depth_limit(), |l| {
        u32::try_from(l.max(1)).unwrap_or(u32::MAX)
    });
    let (levels, w) = market.depth_levels(limit);
    (levels as usize, w)
}

fn weight(market: Market, ep: Endpoint, p: &Params) -> u32 {
    let limit = p.get("limit").and_then(|v| v.parse::<i64>().ok());
    match ep {
        Endpoint::Ping | Endpoint::Time | Endpoint::FundingRate => 1,
        Endpoint::ExchangeInfo => market.exchange_info_weight(),
        Endpoint::Klines
        | Endpoint::UiKlines
        | Endpoint::MarkPriceKlines
        | Endpoint::IndexPriceKlines
        | Endpoint::PremiumIndexKlines
        | Endpoint::ContinuousKlines => {
            market.kline_weight(limit.map_or(market.default_kline_limit(), |l| {
                u32::try_from(l.max(1)).unwrap_or(u32::MAX)
            }))
        }
        Endpoint::TickerPrice => market.ticker_price_weight(p.get("symbol").is_some()),
        Endpoint::Depth => depth_levels(market, limit).1,
    }
}

// ---------------------------------------------------------------------------------------------
// The handler.

async fn handle(
    State(sh): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    req: Request,
) -> Response {
    let path = req.uri().path().to_owned();
    if path == "/__sim/stats" {
        let body = serde_json::to_vec(&sh.stats()).unwrap_or_default();
        return finish(Reply::ok(body), None, None);
    }
    // data.binance.vision-style archive files (issue 9): see `super::archive`.
    if path.starts_with("/data/") {
        return super::archive::handle(&sh, &path).await;
    }
    let n = sh.counter.fetch_add(1, Ordering::SeqCst) + 1;
    let routed = route(&path);
    let key = routed.map_or_else(|| "other".to_owned(), |_| path.clone());
    sh.record(|s| *s.requests.entry(key).or_default() += 1);

    let delay = sh.faults.latency_for(n);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let Some((market, ep)) = routed else {
        let reply = Reply {
            status: StatusCode::NOT_FOUND,
            body: Bytes::new(),
            html: false,
            retry_after: None,
            location: None,
        };
        return finish(reply, None, None);
    };
    let fault = sh.faults.fault_for(n);
    if let Some(kind) = fault {
        sh.record(|s| *s.faults.entry(kind.as_str().to_owned()).or_default() += 1);
    }
    let params = Params(
        Query::<Vec<(String, String)>>::try_from_uri(req.uri())
            .map(|q| q.0)
            .unwrap_or_default(),
    );
    let ip: IpAddr = conn.remote.ip();
    let wall = wall_ms();
    let header = sh.limiter.config().window.header_name();
    let used_now = || sh.limiter.used(ip, market, wall);

    // Faults that replace the reply.
    let replaced = match fault {
        Some(FaultKind::InternalError) => Some(
            ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: -1000,
                msg: "An unknown error occurred while processing the request.".to_owned(),
            }
            .into_reply(),
        ),
        Some(FaultKind::ServiceUnavailable) => Some(
            ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: -1008,
                msg: "Server is currently overloaded with other requests. Please try again in a few minutes.".to_owned(),
            }
            .into_reply(),
        ),
        Some(FaultKind::HtmlBody) => Some(Reply {
            status: StatusCode::BAD_GATEWAY,
            body: Bytes::from_static(
                b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n",
            ),
            html: true,
            retry_after: None,
            location: None,
        }),
        Some(FaultKind::Redirect) => Some(redirect_reply(&sh, req.uri())),
        Some(FaultKind::HugeRetryAfter) => {
            sh.record(|s| s.sent_429 += 1);
            let mut r = Reply::json(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"code": -1003, "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."}),
            );
            r.retry_after = Some(86_400);
            Some(r)
        }
        Some(FaultKind::JsonErrorOk) => Some(Reply::json(
            StatusCode::OK,
            &json!({"code": -1003, "msg": "Too many requests queued."}),
        )),
        Some(FaultKind::TooManyRequests) => {
            Some(limit_reply(&sh, &sh.limiter, market, sh.limiter.forced_429(ip, market, wall)))
        }
        Some(FaultKind::Ban) => Some(limit_reply(&sh, &sh.limiter, market, sh.limiter.forced_ban(ip, market, wall))),
        _ => None,
    };
    if let Some(reply) = replaced {
        return finish(reply, Some((&header, used_now())), None);
    }

    // The funding endpoints' own request limit comes first: a request it refuses adds no
    // weight.
    if ep == Endpoint::FundingRate
        && let v @ (Verdict::TooMany { .. } | Verdict::Banned { .. }) =
            sh.funding_limiter.check(ip, market, 1, wall)
    {
        let reply = limit_reply(&sh, &sh.funding_limiter, market, v);
        return finish(reply, Some((&header, used_now())), None);
    }
    let w = weight(market, ep, &params);
    let used = match sh.limiter.check(ip, market, w, wall) {
        Verdict::Allowed { used } => used,
        v @ (Verdict::TooMany { used, .. } | Verdict::Banned { used, .. }) => {
            return finish(
                limit_reply(&sh, &sh.limiter, market, v),
                Some((&header, used)),
                None,
            );
        }
    };

    let mut reply = match endpoint(&sh, market, ep, &params, req.headers()) {
        Ok(r) => r,
        Err(e) => e.into_reply(),
    };
    let used = corrupt_reply(fault, ep, &mut reply, used);
    let transport = transport_fault(&sh, &conn, fault);
    finish(reply, Some((&header, used)), transport)
}

/// The faults that spoil a normal reply: a klines body's rows, or an implausible used-weight
/// header (the used weight to report comes back).
fn corrupt_reply(fault: Option<FaultKind>, ep: Endpoint, reply: &mut Reply, used: u64) -> u64 {
    if is_klines(ep)
        && reply.status == StatusCode::OK
        && let Some(kind) = fault
    {
        reply.body = corrupt_klines(kind, &reply.body);
    }
    if fault == Some(FaultKind::HugeWeightHeader) {
        999_999
    } else {
        used
    }
}

/// The faults of the connection itself (resets, truncated and slow bodies).
fn transport_fault(sh: &Shared, conn: &Conn, fault: Option<FaultKind>) -> Option<(FaultKind, u64)> {
    match fault {
        Some(FaultKind::ResetBeforeHeaders) => {
            conn.kill.store(true, Ordering::SeqCst);
            None
        }
        Some(k @ (FaultKind::ResetMidBody | FaultKind::TruncatedBody | FaultKind::SlowBody)) => {
            Some((k, sh.faults.slow_chunk_delay_ms))
        }
        _ => None,
    }
}

fn is_klines(ep: Endpoint) -> bool {
    matches!(
        ep,
        Endpoint::Klines
            | Endpoint::UiKlines
            | Endpoint::MarkPriceKlines
            | Endpoint::IndexPriceKlines
            | Endpoint::PremiumIndexKlines
            | Endpoint::ContinuousKlines
    )
}

/// A `302` to the configured address (same path and query); a 502 when none is set.
fn redirect_reply(sh: &Shared, uri: &axum::http::Uri) -> Reply {
    let Some(to) = &sh.faults.redirect_to else {
        return ApiError {
            status: StatusCode::BAD_GATEWAY,
            code: -1000,
            msg: "redirect fault without a target".to_owned(),
        }
        .into_reply();
    };
    let target = format!(
        "{}{}",
        to.trim_end_matches('/'),
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    Reply {
        status: StatusCode::FOUND,
        body: Bytes::new(),
        html: false,
        retry_after: None,
        location: Some(target),
    }
}

/// Apply a row fault to a klines body (`[[open_time, "o", "h", "l", "c", "v", close_time,
/// ...], ...]`); other faults and bodies that are not arrays come back unchanged.
fn corrupt_klines(kind: FaultKind, body: &Bytes) -> Bytes {
    if kind == FaultKind::EmptyPage {
        return Bytes::from_static(b"[]");
    }
    if !matches!(
        kind,
        FaultKind::OffGridRow | FaultKind::CloseBeforeOpen | FaultKind::ZeroPriceRow
    ) {
        return body.clone();
    }
    let Ok(serde_json::Value::Array(mut rows)) = serde_json::from_slice(body) else {
        return body.clone();
    };
    let mid = rows.len() / 2;
    let Some(serde_json::Value::Array(row)) = rows.get_mut(mid) else {
        return body.clone();
    };
    let time = |v: &serde_json::Value| v.as_i64().unwrap_or(0);
    if row.len() < 7 {
        return body.clone();
    }
    match kind {
        FaultKind::OffGridRow => {
            // Moved in whatever unit the page uses (ms or µs): 1234 ms either way.
            let scale = if time(&row[0]) >= MICROS_THRESHOLD {
                1000
            } else {
                1
            };
            row[0] = json!(time(&row[0]) + 1234 * scale);
            row[6] = json!(time(&row[6]) + 1234 * scale);
        }
        FaultKind::CloseBeforeOpen => row[6] = json!(time(&row[0]) - 1),
        _ => {
            for v in &mut row[1..5] {
                *v = json!("0.00000000");
            }
        }
    }
    serde_json::to_vec(&rows).map_or_else(|_| body.clone(), Bytes::from)
}

fn limit_reply(sh: &Shared, limiter: &Limiter, market: Market, v: Verdict) -> Reply {
    match v {
        Verdict::Allowed { .. } => Reply::ok("{}"),
        Verdict::TooMany { retry_after, .. } => {
            sh.record(|s| s.sent_429 += 1);
            let cfg = limiter.config();
            let limit = cfg.limit(market);
            let w = cfg.window;
            let msg = if market == Market::Spot {
                format!(
                    "Too much request weight used; current limit is {limit} request weight per {} {}. Please use WebSocket Streams for live updates to avoid polling the API.",
                    w.num,
                    w.interval_str()
                )
            } else {
                let per = if w == super::limits::RateWindow::ONE_MINUTE {
                    "minute".to_owned()
                } else {
                    format!("{} {}", w.num, w.interval_str())
                };
                format!(
                    "Too many requests; current limit is {limit} requests per {per}. Please use the websocket for live updates to avoid polling the API."
                )
            };
            let mut r = Reply::json(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"code": -1003, "msg": msg}),
            );
            r.retry_after = Some(retry_after);
            r
        }
        Verdict::Banned {
            until_ms,
            retry_after,
            ..
        } => {
            sh.record(|s| s.sent_418 += 1);
            let msg = format!(
                "Way too much request weight used; IP banned until {until_ms}. Please use WebSocket Streams for live updates to avoid bans."
            );
            let mut r = Reply::json(StatusCode::IM_A_TEAPOT, &json!({"code": -1003, "msg": msg}));
            r.retry_after = Some(retry_after);
            r
        }
    }
}

/// Build the HTTP response, applying a transport fault if any.
fn finish(
    reply: Reply,
    used: Option<(&str, u64)>,
    transport: Option<(FaultKind, u64)>,
) -> Response {
    let mut headers = HeaderMap::new();
    let ct = if reply.html {
        "text/html"
    } else {
        "application/json;charset=UTF-8"
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if let Some((name, used)) = used
        && let Ok(name) = HeaderName::try_from(name)
    {
        headers.insert(name, HeaderValue::from(used));
    }
    if let Some(s) = reply.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    if let Some(v) = reply
        .location
        .as_deref()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        headers.insert(header::LOCATION, v);
    }
    let body = reply.body;
    let body = match transport {
        Some((FaultKind::TruncatedBody, _)) => Body::from(body.slice(..body.len() / 2)),
        Some((FaultKind::ResetMidBody, _)) => {
            // Promise the full length, send half, then fail the stream: hyper drops the
            // connection and the client sees an incomplete body.
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            let half = body.slice(..body.len() / 2);
            let stream = futures::stream::unfold(0u8, move |step| {
                let half = half.clone();
                async move {
                    match step {
                        0 => Some((Ok(half), 1)),
                        1 => {
                            // Let the headers and the first half reach the client first.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Some((Err(reset_error()), 2))
                        }
                        _ => None,
                    }
                }
            });
            Body::from_stream(stream)
        }
        Some((FaultKind::SlowBody, delay)) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            let step = body.len().div_ceil(8).max(1);
            let pieces: Vec<Bytes> = (0..body.len())
                .step_by(step)
                .map(|i| body.slice(i..(i + step).min(body.len())))
                .collect();
            let stream = futures::stream::unfold(pieces.into_iter(), move |mut it| async move {
                let next = it.next()?;
                tokio::time::sleep(Duration::from_millis(delay)).await;
                Some((Ok::<_, io::Error>(next), it))
            });
            Body::from_stream(stream)
        }
        _ => Body::from(body),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = reply.status;
    *resp.headers_mut() = headers;
    resp
}

// ---------------------------------------------------------------------------------------------
// Endpoints.

fn endpoint(
    sh: &Shared,
    market: Market,
    ep: Endpoint,
    p: &Params,
    headers: &HeaderMap,
) -> Result<Reply, ApiError> {
    let micros = match headers
        .get("x-mbx-time-unit")
        .map(|v| v.to_str().unwrap_or(""))
    {
        Some("MICROSECOND" | "microsecond") => true,
        None | Some("MILLISECOND" | "millisecond") => false,
        Some(_) => {
            return Err(ApiError::bad(
                -1194,
                "Invalid value for time unit; expected either MICROSECOND or MILLISECOND.",
            ));
        }
    };
    let now = sh.clock.now();
    let t = |ms: i64| if micros { ms * 1000 } else { ms };
    match ep {
        Endpoint::Ping => Ok(Reply::ok("{}")),
        Endpoint::Time => Ok(Reply::json(
            StatusCode::OK,
            &json!({"serverTime": t(now + sh.faults.time_skew_ms)}),
        )),
        Endpoint::ExchangeInfo => {
            exchange_info(sh, market, p, t(now + sh.faults.time_skew_ms), now)
        }
        Endpoint::Klines
        | Endpoint::UiKlines
        | Endpoint::MarkPriceKlines
        | Endpoint::IndexPriceKlines
        | Endpoint::PremiumIndexKlines
        | Endpoint::ContinuousKlines => klines(sh, market, ep, p, now, micros),
        Endpoint::TickerPrice => ticker_price(sh, market, p, now, t(now)),
        Endpoint::Depth => depth(sh, market, p, now),
        Endpoint::FundingRate => funding_rate(sh, market, p, now, micros),
    }
}

/// `GET /fundingRate` (futures): see [`super::funding`] for the records and the choices.
fn funding_rate(
    sh: &Shared,
    market: Market,
    p: &Params,
    now: i64,
    micros: bool,
) -> Result<Reply, ApiError> {
    let symbol = p.symbol()?;
    let start = p.time("startTime")?;
    let end = p.time("endTime")?;
    let limit = match p.number("limit")? {
        None => 100,
        Some(l) if (1..=1000).contains(&l) => l as usize,
        Some(_) => return Err(ApiError::invalid("limit")),
    };
    let data = find(sh, market, symbol, now)?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(ApiError::bad(-1023, "Start time is greater than end time."));
    }
    let last = start.is_none();
    let range = (start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX));
    let rows = super::funding::select(data, market, range, limit, last, now);
    Ok(Reply::ok(super::funding::to_json(symbol, &rows, micros)))
}

/// Symbols that exist as of `now` (listed at or before it).
fn listed(sh: &Shared, market: Market, now: i64) -> impl Iterator<Item = &SymbolData> {
    sh.universe
        .market(market)
        .symbols
        .iter()
        .filter(move |s| s.spec.listed_ms <= now)
}

fn find<'a>(
    sh: &'a Shared,
    market: Market,
    symbol: &str,
    now: i64,
) -> Result<&'a SymbolData, ApiError> {
    listed(sh, market, now)
        .find(|s| s.spec.symbol == symbol)
        .ok_or_else(ApiError::symbol)
}

/// The futures pair of a contract symbol (`BTCUSD_PERP` -> `BTCUSD`; USDⓈ-M symbols are
/// their own pair).
fn pair_of(symbol: &str) -> &str {
    symbol.split('_').next().unwrap_or(symbol)
}

/// The listed symbol whose pair is `pair` (perpetual first).
fn find_pair<'a>(
    sh: &'a Shared,
    market: Market,
    pair: &str,
    now: i64,
) -> Result<&'a SymbolData, ApiError> {
    listed(sh, market, now)
        .find(|s| pair_of(&s.spec.symbol) == pair)
        .ok_or_else(ApiError::symbol)
}

/// Turn a traded-price row into a row of another kline family: mark and index prices follow
/// the traded price; premium-index values are small deterministic rates around zero. Fields
/// without meaning are `"0"` as on Binance; the count field is the number of one-second
/// samples.
fn family_row(ep: Endpoint, key: u64, mut r: super::data::KlineRow) -> super::data::KlineRow {
    if matches!(
        ep,
        Endpoint::Klines | Endpoint::UiKlines | Endpoint::ContinuousKlines
    ) {
        return r;
    }
    if ep == Endpoint::PremiumIndexKlines {
        // Rates in 1e-8 units within +-0.001.
        let rate = |salt: u64| -> i128 {
            let u = unit(mix(key ^ (r.open_time as u64).rotate_left(17) ^ salt));
            ((u - 0.5) * 200_000.0) as i128
        };
        let (open, close) = (rate(1), rate(2));
        let high = open.max(close) + (rate(3).abs() / 4);
        let low = open.min(close) - (rate(4).abs() / 4);
        r.open = fixed(open, 8, 8);
        r.high = fixed(high, 8, 8);
        r.low = fixed(low, 8, 8);
        r.close = fixed(close, 8, 8);
    }
    for field in [
        &mut r.volume,
        &mut r.quote_volume,
        &mut r.taker_buy_base_volume,
        &mut r.taker_buy_quote_volume,
        &mut r.ignore,
    ] {
        "0".clone_into(field);
    }
    r.trades = u64::try_from((r.close_time + 1 - r.open_time) / 1000).unwrap_or(0);
    r
}

/// Which rows a klines request selects: the first `limit` from `startTime`, or the last
/// before `endTime` (or now); futures markets cap the window (`-1127` beyond it).
fn kline_selection(
    market: Market,
    start: Option<i64>,
    end: Option<i64>,
    limit: usize,
    now: i64,
) -> Result<Selection, ApiError> {
    Ok(match market.max_kline_window_ms() {
        None => match (start, end) {
            (None, None) => Selection::Last {
                from: i64::MIN,
                to: now,
                limit,
            },
            (Some(s), None) => Selection::First {
                from: s,
                to: i64::MAX,
                limit,
            },
            (None, Some(e)) => Selection::Last {
                from: i64::MIN,
                to: e,
                limit,
            },
            (Some(s), Some(e)) => Selection::First {
                from: s,
                to: e,
                limit,
            },
        },
        Some(window) => {
            let (s, e) = match (start, end) {
                (None, None) => (now - window, now),
                (Some(s), None) => (s, s.saturating_add(window).min(now)),
                (None, Some(e)) => (e - window, e),
                (Some(s), Some(e)) => {
                    if e - s > window {
                        return Err(ApiError::bad(
                            -1127,
                            format!(
                                "More than {} hours between startTime and endTime.",
                                window / (DAY_MS / 24)
                            ),
                        ));
                    }
                    (s, e)
                }
            };
            Selection::Last {
                from: s,
                to: e,
                limit,
            }
        }
    })
}

fn klines(
    sh: &Shared,
    market: Market,
    ep: Endpoint,
    p: &Params,
    now: i64,
    micros: bool,
) -> Result<Reply, ApiError> {
    let by_pair = matches!(ep, Endpoint::IndexPriceKlines | Endpoint::ContinuousKlines);
    let instrument = if by_pair {
        let pair = p.required("pair")?;
        check_symbol_chars("pair", pair)?;
        pair
    } else {
        p.symbol()?
    };
    if ep == Endpoint::ContinuousKlines {
        match p.required("contractType")? {
            "PERPETUAL" | "CURRENT_QUARTER" | "NEXT_QUARTER" => {}
            _ => return Err(ApiError::invalid("contractType")),
        }
    }
    let interval = p.required("interval")?;
    let start = p.time("startTime")?;
    let end = p.time("endTime")?;
    let limit = p.number("limit")?;
    match p.get("timeZone") {
        None | Some("0" | "+0" | "0:00" | "+00:00" | "00:00") => {}
        Some(_) => return Err(ApiError::invalid("timeZone")),
    }
    let interval: Interval = interval
        .parse()
        .ok()
        .filter(|i| market.supports(*i))
        .ok_or_else(|| ApiError::bad(-1120, "Invalid interval."))?;
    let data = if by_pair {
        find_pair(sh, market, instrument, now)?
    } else {
        find(sh, market, instrument, now)?
    };
    let limit = match limit {
        None => market.default_kline_limit() as usize,
        Some(l) if (1..=i64::from(market.max_kline_limit())).contains(&l) => l as usize,
        Some(_) => return Err(ApiError::invalid("limit")),
    };
    if let (Some(s), Some(e)) = (start, end)
        && s > e
        && market != Market::Spot
    {
        return Err(ApiError::bad(-1023, "Start time is greater than end time."));
    }
    let sel = kline_selection(market, start, end, limit, now)?;
    if matches!(
        ep,
        Endpoint::Klines | Endpoint::UiKlines | Endpoint::ContinuousKlines
    ) {
        // Traded-price rows: rendered without intermediate strings (the hot path), or served
        // again from the memo of closed pages when the simulator keeps one.
        let memo = sh.pages.as_ref().and_then(|m| {
            closed_page_key(market, ep, instrument, interval, sel, now, micros).map(|k| (m, k))
        });
        if let Some((m, key)) = &memo
            && let Some((body, n)) = m.get(key)
        {
            sh.record(|s| s.rows_served += n as u64);
            return Ok(Reply::ok(body));
        }
        let mut out = Vec::new();
        let n = data.klines_json(market, interval, sel, now, micros, &mut out);
        sh.record(|s| s.rows_served += n as u64);
        let body = Bytes::from(out);
        if let Some((m, key)) = memo {
            m.put(key, body.clone(), n);
        }
        return Ok(Reply::ok(body));
    }
    let key = mix(instrument
        .bytes()
        .fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b)));
    let rows: Vec<_> = data
        .klines(market, interval, sel, now)
        .into_iter()
        .map(|r| family_row(ep, key, r))
        .collect();
    let mut out = Vec::new();
    super::data::write_rows_json(&rows, micros, &mut out);
    sh.record(|s| s.rows_served += rows.len() as u64);
    Ok(Reply::ok(out))
}

/// The memo key of a kline page whose candles have all closed by `now` (so rendering it again
/// gives the same bytes), or `None` for a page that may hold the forming candle or an interval
/// of calendar length.
fn closed_page_key(
    market: Market,
    ep: Endpoint,
    instrument: &str,
    interval: Interval,
    sel: Selection,
    now: i64,
    micros: bool,
) -> Option<String> {
    let ms = interval.fixed_ms()?;
    let last_open = match sel {
        Selection::First { from, to, limit } => {
            let n = i64::try_from(limit).ok()?.saturating_sub(1);
            to.min(from.saturating_add(ms.saturating_mul(n)))
        }
        Selection::Last { to, .. } => to,
    };
    (last_open.saturating_add(ms) <= now).then(|| {
        format!(
            "{market:?} {ep:?} {instrument} {} {sel:?} {micros}",
            interval.as_str()
        )
    })
}

fn status_of(market: Market, s: &SymbolData, now: i64) -> &'static str {
    let delisted = s.spec.delisted_ms.is_some_and(|d| d <= now);
    match (market, delisted) {
        (_, false) => "TRADING",
        (Market::Spot, true) => "BREAK",
        (_, true) => "SETTLING",
    }
}

fn symbol_json(market: Market, s: &SymbolData, now: i64) -> serde_json::Value {
    let spec = &s.spec;
    let status = status_of(market, s, now);
    let tick = fixed(1, spec.price_decimals, spec.price_decimals);
    let step = fixed(1, spec.qty_decimals, spec.qty_decimals);
    let filters = json!([
        {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000", "tickSize": tick},
        {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000000", "stepSize": step},
    ]);
    match market {
        Market::Spot => json!({
            "symbol": spec.symbol,
            "status": status,
            "baseAsset": spec.base_asset,
            "baseAssetPrecision": 8,
            "quoteAsset": spec.quote_asset,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "isSpotTradingAllowed": true,
            "isMarginTradingAllowed": false,
            "filters": filters,
            "permissions": [],
            "permissionSets": [["SPOT"]],
        }),
        Market::UsdM | Market::CoinM => {
            let mut v = json!({
                "symbol": spec.symbol,
                "pair": spec.symbol.split('_').next().unwrap_or(&spec.symbol),
                "contractType": "PERPETUAL",
                "deliveryDate": 4_133_404_800_000_i64,
                "onboardDate": spec.listed_ms,
                "status": status,
                "baseAsset": spec.base_asset,
                "quoteAsset": spec.quote_asset,
                "marginAsset": if market == Market::CoinM { &spec.base_asset } else { &spec.quote_asset },
                "pricePrecision": spec.price_decimals,
                "quantityPrecision": spec.qty_decimals,
                "filters": filters,
            });
            if market == Market::CoinM
                && let Some(obj) = v.as_object_mut()
            {
                obj.insert("contractStatus".into(), json!(status));
                obj.insert(
                    "contractSize".into(),
                    json!(spec.contract_size.unwrap_or(10)),
                );
            }
            v
        }
    }
}

fn symbols_param(p: &Params) -> Result<Option<Vec<String>>, ApiError> {
    let Some(raw) = p.get("symbols") else {
        return Ok(None);
    };
    let list: Vec<String> = serde_json::from_str(raw).map_err(|_| {
        ApiError::illegal(
            "symbols",
            "^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$",
        )
    })?;
    for s in &list {
        check_symbol_chars("symbols", s)?;
    }
    Ok(Some(list))
}

fn exchange_info(
    sh: &Shared,
    market: Market,
    p: &Params,
    server_time: i64,
    now: i64,
) -> Result<Reply, ApiError> {
    let wanted: Option<Vec<String>> = match (p.get("symbol"), symbols_param(p)?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad(
                -1128,
                "Combination of optional parameters invalid.",
            ));
        }
        (Some(_), None) => Some(vec![p.symbol()?.to_owned()]),
        (None, list) => list,
    };
    let symbols: Vec<serde_json::Value> = match &wanted {
        None => listed(sh, market, now)
            .map(|s| symbol_json(market, s, now))
            .collect(),
        Some(list) => list
            .iter()
            .map(|name| find(sh, market, name, now).map(|s| symbol_json(market, s, now)))
            .collect::<Result<_, _>>()?,
    };
    let cfg = sh.limiter.config();
    let mut limits = vec![json!({
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": cfg.window.interval_str(),
        "intervalNum": cfg.window.num,
        "limit": cfg.limit(market),
    })];
    if market == Market::Spot {
        limits.push(json!({"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100}));
        limits.push(json!({"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200_000}));
        limits.push(json!({"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 300_000}));
    } else {
        limits.push(json!({"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}));
        limits.push(json!({"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}));
    }
    let mut body = json!({
        "timezone": "UTC",
        "serverTime": server_time,
        "rateLimits": limits,
        "exchangeFilters": [],
        "symbols": symbols,
    });
    if market != Market::Spot
        && let Some(obj) = body.as_object_mut()
    {
        obj.insert("assets".into(), json!([]));
    }
    Ok(Reply::json(StatusCode::OK, &body))
}

fn ticker_price(
    sh: &Shared,
    market: Market,
    p: &Params,
    now: i64,
    time: i64,
) -> Result<Reply, ApiError> {
    let one = |s: &SymbolData| -> Option<serde_json::Value> {
        let price = s.price_now(market, now)?;
        Some(match market {
            Market::Spot => json!({"symbol": s.spec.symbol, "price": price}),
            Market::UsdM => json!({"symbol": s.spec.symbol, "price": price, "time": time}),
            Market::CoinM => json!({
                "symbol": s.spec.symbol,
                "ps": s.spec.symbol.split('_').next().unwrap_or(&s.spec.symbol),
                "price": price,
                "time": time,
            }),
        })
    };
    if p.get("symbol").is_some() {
        let s = find(sh, market, p.symbol()?, now)?;
        let v = one(s).ok_or_else(ApiError::symbol)?;
        // COIN-M answers with an array even for one symbol.
        let v = if market == Market::CoinM {
            json!([v])
        } else {
            v
        };
        return Ok(Reply::json(StatusCode::OK, &v));
    }
    let all: Vec<serde_json::Value> = match symbols_param(p)? {
        Some(list) => list
            .iter()
            .map(|n| find(sh, market, n, now).map(&one))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect(),
        None => listed(sh, market, now)
            .filter(|s| status_of(market, s, now) == "TRADING")
            .filter_map(one)
            .collect(),
    };
    Ok(Reply::json(StatusCode::OK, &serde_json::Value::Array(all)))
}

fn depth(sh: &Shared, market: Market, p: &Params, now: i64) -> Result<Reply, ApiError> {
    let symbol = p.symbol()?;
    let limit = p.number("limit")?;
    let s = find(sh, market, symbol, now)?;
    if limit == Some(0) {
        return Err(ApiError::invalid("limit"));
    }
    let (levels, _) = depth_levels(market, limit);
    let mid = s.price_ticks_now(now);
    let spec = &s.spec;
    let out_dec = |d: u32| if market == Market::Spot { 8 } else { d };
    let level = |ticks: i64, i: usize, side: u64| -> serde_json::Value {
        let q = unit(mix(now as u64 ^ (i as u64) << 1 ^ side));
        let lots = 10f64.powi(spec.qty_decimals as i32);
        let qty = ((spec.trade_size * (0.1 + 5.0 * q)) * lots).max(1.0) as i128;
        json!([
            fixed(
                i128::from(ticks),
                spec.price_decimals,
                out_dec(spec.price_decimals)
            ),
            fixed(qty, spec.qty_decimals, out_dec(spec.qty_decimals)),
        ])
    };
    let bids: Vec<_> = (0..levels)
        .map(|i| (mid - 1 - i as i64, i))
        .filter(|(t, _)| *t > 0)
        .map(|(t, i)| level(t, i, 1))
        .collect();
    let asks: Vec<_> = (0..levels)
        .map(|i| level(mid + 1 + i as i64, i, 2))
        .collect();
    let id = now / 100;
    let mut body = json!({"lastUpdateId": id, "bids": bids, "asks": asks});
    if market != Market::Spot
        && let Some(obj) = body.as_object_mut()
    {
        obj.insert("E".into(), json!(now));
        obj.insert("T".into(), json!(now));
    }
    Ok(Reply::json(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_714_521_600_000; // 2024-05-01T00:00Z

    fn key(interval: Interval, sel: Selection, now: i64) -> Option<String> {
        closed_page_key(
            Market::Spot,
            Endpoint::Klines,
            "BTCUSDT",
            interval,
            sel,
            now,
            false,
        )
    }

    #[test]
    fn only_pages_of_closed_candles_have_a_memo_key() {
        let first = |limit| Selection::First {
            from: T,
            to: i64::MAX,
            limit,
        };
        // 1000 minutes from T: the last opens at T + 999 min and closes before T + 1000 min.
        assert!(key(Interval::M1, first(1000), T + 1000 * 60_000).is_some());
        assert!(key(Interval::M1, first(1000), T + 1000 * 60_000 - 1).is_none());
        // An end time bounds the page: closed once the candle opening at `to` has closed.
        let bounded = Selection::First {
            from: T,
            to: T + 9 * 60_000,
            limit: 1000,
        };
        assert!(key(Interval::M1, bounded, T + 10 * 60_000).is_some());
        assert!(key(Interval::M1, bounded, T + 9 * 60_000 + 1).is_none());
        let last = Selection::Last {
            from: i64::MIN,
            to: T,
            limit: 5,
        };
        assert!(
            key(Interval::M1, last, T).is_none(),
            "may hold the forming candle"
        );
        // Months have no fixed length: never memoized.
        assert!(key(Interval::Mo1, first(10), i64::MAX).is_none());
        // Different requests, different keys.
        assert_ne!(
            key(Interval::M1, first(1000), i64::MAX),
            key(Interval::M1, first(999), i64::MAX)
        );
    }
}

//! The HTTP API of the contract, on axum (hyper, tokio).
//!
//! - [`run`] serves a [`Store`] on a bound listener until a shutdown future resolves, then
//!   flushes it; it refuses a listener [`check_exposure`] refuses (the loopback rule).
//! - [`routes`]: the route table, read by the router and the access guard.
//! - [`body`]: the answers' JSON and CSV shapes, shared with `courbe query`, over the library's
//!   questions and domain answers (`courbe::question`); [`arrow`]: their Arrow IPC streams;
//!   [`stream`]: the fleet answers written as computed. [`error`]: the one mapping of the
//!   library's error codes to HTTP statuses, and the JSON error body.
//! - [`metrics`]: request counts, latencies and ingest counters for `/metrics`.
//! - [`openapi`]: the OpenAPI 3.1 description of the routes, served at `/v1/openapi.json`.
//! - [`dataconnect`] and [`oauth`]: Enedis Data Connect's metering routes and token endpoint.
//!
//! Engine work never runs on the async workers: every handler that touches the store does it
//! in [`tokio::task::spawn_blocking`].
//!
//! A request's head must arrive within [`ServerConfig::header_read_timeout`] and an ingest or
//! governance body within [`ServerConfig::body_read_timeout`]; a body is read whole, within the limits of its size
//! and of the bytes of all bodies in memory, before it waits for a turn to be parsed, so slow or
//! stalled clients never hold a parsing turn.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use courbe::engine::{Options, Store};
//! use courbe_server::http::{run, ServerConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Arc::new(Store::open(dir.path(), Options::default())?);
//! tokio::runtime::Runtime::new()?.block_on(async {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?; // clients talk to http://{addr}/v1/...
//!     let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//!     let shutdown = async {
//!         let _ = stopped.await;
//!     };
//!     let server = tokio::spawn(run(listener, store, ServerConfig::default(), shutdown));
//!     let _ = stop.send(());
//!     server.await??;
//!     Ok(())
//! })
//! # }
//! ```

pub mod arrow;
pub mod body;
pub mod dataconnect;
pub mod error;
pub mod live;
pub mod loading;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod prices;
mod refusals;
pub use refusals::JsonRefusals;
pub mod routes;
pub mod stream;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::engine::Store;
use crate::ingest::Format;
use crate::question::{self, Asked, EraseQuestion, Limits, QueryKind, QueryParams};
use error::{ApiError, ErrorCode, HttpError};
use loading::IngestBody;
use metrics::Metrics;

/// Default largest ingest body: 64 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// Longest request target (path and query) answered; longer ones get 414.
pub const MAX_URI_LEN: usize = 8 * 1024;
/// Most header lines of a request; more get 431.
pub const MAX_HEADERS: usize = 100;
/// Most bytes of header names and values of a request; more get 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// hyper's own limits, above the ones checked here so that a request over those is answered by
/// [`head_refusal`] with its size; a request over these is refused by hyper itself (431, or 414
/// for a target over 65,534 bytes), which [`JsonRefusals`] turns into the same JSON errors.
pub const HYPER_MAX_HEADERS: usize = 4 * MAX_HEADERS;
pub const HYPER_MAX_BUF_BYTES: usize = 1024 * 1024;

/// How a server behaves; `ServerConfig::default()` is what `courbe serve` uses.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest request body, bytes; larger ones get 413 before being read.
    pub max_body_bytes: u64,
    /// Points per [`Store::ingest`] call when an ingest body is large.
    pub ingest_batch_points: usize,
    /// Ingest requests read and parsed at once; others wait their turn. Bounds the memory of
    /// bodies in flight to about this many times `max_body_bytes` (plus their parsed points).
    pub max_concurrent_ingests: usize,
    /// Bytes of the ingest bodies being read or parsed at once, all requests together (at least
    /// `max_body_bytes`). A body takes its share as its bytes arrive; when none is left a body
    /// waits, within its `body_read_timeout`, then gets 503.
    pub max_body_memory_bytes: u64,
    /// Time for a request's head (request line and headers) to arrive once the connection is
    /// waiting for it; past it the connection is closed.
    pub header_read_timeout: Duration,
    /// Time for a whole ingest or governance body to arrive; past it the request gets 408 and
    /// the connection is closed.
    pub body_read_timeout: Duration,
    pub limits: Limits,
    /// Consent, access control and the governance endpoints; `None`: none of them.
    pub governance: Option<Arc<crate::governance::Governance>>,
    /// The price series of a meter's dynamic offer, for the live view's costs (`None`: only
    /// `?series=` prices a stream).
    pub live_pricing: Option<Arc<dyn live::LivePricing>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            ingest_batch_points: 100_000,
            max_concurrent_ingests: 4,
            max_body_memory_bytes: 4 * DEFAULT_MAX_BODY_BYTES,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(120),
            limits: Limits::default(),
            governance: None,
            live_pricing: None,
        }
    }
}

#[derive(Clone)]
struct AppState {
    store: Arc<Store>,
    config: Arc<ServerConfig>,
    metrics: Arc<Metrics>,
    ingest_permits: Arc<Semaphore>,
    /// One permit per byte of ingest bodies held in memory.
    body_memory: Arc<Semaphore>,
    /// Subscribers of the live view, fed by the store with each acknowledged batch.
    live: Arc<live::LiveHub>,
}

impl AppState {
    /// Waits for one of the `max_concurrent_ingests` parsing turns (taken once the body is all
    /// here: waiting costs no client any time).
    async fn ingest_turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.ingest_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::new(ErrorCode::Unavailable, "the server is shutting down"))
    }
}

/// Why [`run`] did not serve, or did not end cleanly.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// The listener's address is not loopback and no tokens file guards it
    /// ([`check_exposure`]): nothing was served.
    Exposed(String),
    /// The listener failed (its address cannot be read).
    Io(std::io::Error),
    /// The final flush of the store failed: what was acknowledged is in the log, not yet in
    /// segments.
    Flush(crate::engine::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Exposed(why) => f.write_str(why),
            ServeError::Io(e) => write!(f, "the listener failed: {e}"),
            ServeError::Flush(e) => write!(f, "the final flush failed: {e}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Exposed(_) => None,
            ServeError::Io(e) => Some(e),
            ServeError::Flush(e) => Some(e),
        }
    }
}

impl From<std::io::Error> for ServeError {
    fn from(e: std::io::Error) -> ServeError {
        ServeError::Io(e)
    }
}

/// The loopback rule: a server listens on a non-loopback `addr` only with governance and a
/// tokens file. Without governance nothing checks a caller; without tokens every caller is an
/// operator ([`crate::governance::Governance::check_listen`]).
pub fn check_exposure(
    addr: std::net::SocketAddr,
    governance: Option<&crate::governance::Governance>,
) -> Result<(), String> {
    match governance {
        Some(gov) => gov.check_listen(addr),
        None if addr.ip().is_loopback() => Ok(()),
        None => Err(format!(
            "refusing to listen on {addr}: without governance no caller is checked, so the \
             server listens on loopback only (127.0.0.1, ::1)"
        )),
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes the requests in flight
/// and flushes `store`. Refuses to serve, before accepting anything, a listener that
/// [`check_exposure`] refuses.
pub async fn run(
    listener: TcpListener,
    store: Arc<Store>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    check_exposure(listener.local_addr()?, config.governance.as_deref())
        .map_err(ServeError::Exposed)?;
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_headers(HYPER_MAX_HEADERS)
        .max_buf_size(HYPER_MAX_BUF_BYTES);
    let app = router(store.clone(), config);
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // A streamed answer is written as a head, then pieces: without TCP_NODELAY, Nagle's
        // algorithm holds a small piece back until the client's delayed ACK (about 40 ms).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let service = TowerToHyperService::new(app.clone());
        let connection = connections
            .watch(http1.serve_connection(TokioIo::new(JsonRefusals::new(stream)), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
    tokio::task::spawn_blocking(move || store.flush())
        .await
        .map_err(|e| ServeError::Io(std::io::Error::other(format!("the flush failed: {e}"))))?
        .map_err(ServeError::Flush)
}

/// The application, for callers that bring their own server.
pub fn router(store: Arc<Store>, config: ServerConfig) -> Router {
    let body_memory = config.max_body_memory_bytes.max(config.max_body_bytes);
    let state = AppState {
        live: live::LiveHub::attach(&store),
        store,
        ingest_permits: Arc::new(Semaphore::new(config.max_concurrent_ingests.max(1))),
        body_memory: Arc::new(Semaphore::new(
            usize::try_from(body_memory)
                .unwrap_or(usize::MAX)
                .min(Semaphore::MAX_PERMITS),
        )),
        config: Arc::new(config),
        metrics: Arc::new(Metrics::new()),
    };
    let access_tokens = Arc::new(oauth::AccessTokens::new());
    let app = Router::new()
        .route(routes::declared("/healthz"), get(healthz))
        .route(routes::declared("/v1/ingest"), post(ingest))
        .route(routes::declared("/metrics"), get(metrics_text))
        .route(routes::declared(routes::PUBLIC), get(openapi::serve))
        .route(
            routes::declared("/v1/meters/:id/curve"),
            get(meter_curve).delete(meter_erase),
        )
        .route(routes::declared("/v1/meters/:id/energy"), get(meter_energy))
        .route(routes::declared("/v1/meters/:id/peak"), get(meter_peak))
        .route(routes::declared("/v1/meters/:id/index"), get(meter_index))
        .route(
            routes::declared("/v1/meters/:id/summary"),
            get(meter_summary),
        )
        .route(routes::declared("/v1/meters/:id/live"), get(live::live))
        .route(routes::declared("/v1/fleet/curve"), get(fleet_curve))
        .route(routes::declared("/v1/fleet/energy"), get(fleet_energy))
        .route(
            routes::declared("/v1/prices/spot/:area"),
            get(prices::prices_get).put(prices::prices_put),
        )
        .merge(dataconnect::routes(state.store.clone()))
        .merge(oauth::routes(
            access_tokens.clone(),
            state.config.governance.clone(),
            state.config.body_read_timeout,
        ));
    // Hook (governance): its routes, and access control over every /v1 route above.
    let app = match &state.config.governance {
        Some(gov) => crate::governance::http::attach(
            app,
            state.store.clone(),
            gov.clone(),
            state.config.limits.clone(),
            state.config.body_read_timeout,
        ),
        None => app,
    };
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            access_tokens,
            dataconnect::frame,
        ))
        .layer(middleware::from_fn(check_head))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Refuses, with a JSON error, a request target over [`MAX_URI_LEN`] (414) and headers over
/// [`MAX_HEADERS`] lines or [`MAX_HEADER_BYTES`] bytes (431), before any route sees them.
async fn check_head(request: Request, next: Next) -> Response {
    match head_refusal(request.uri(), request.headers()) {
        Some(refusal) => HttpError(refusal).into_response(),
        None => next.run(request).await,
    }
}

/// The refusal of a request whose target is over [`MAX_URI_LEN`] bytes (414) or whose headers
/// are over [`MAX_HEADERS`] lines or [`MAX_HEADER_BYTES`] bytes (431); `None` for any other. A
/// server built on hyper without this crate's router (a cluster's router and readers) asks it
/// too, so that every node refuses the same requests in the same words.
pub fn head_refusal(uri: &axum::http::Uri, headers: &axum::http::HeaderMap) -> Option<ApiError> {
    let target_len = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target_len > MAX_URI_LEN {
        return Some(ApiError::new(
            ErrorCode::UriTooLong,
            format!("the request target is {target_len} bytes (at most {MAX_URI_LEN})"),
        ));
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return Some(ApiError::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "{} header lines of {header_bytes} bytes (at most {MAX_HEADERS} lines and \
                 {MAX_HEADER_BYTES} bytes)",
                headers.len()
            ),
        ));
    }
    None
}

/// Request log and metrics: route template, method, status, latency (never the query string).
async fn observe(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let route = matched.map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .observe_request(&route, method.as_str(), status, latency);
    tracing::info!(
        method = %method,
        path = %path,
        status,
        latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

/// Runs engine work on the blocking pool; a panic there is an internal error.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("the request's worker failed: {e}")))?
}

fn query_params(uri: &Uri) -> Result<QueryParams, ApiError> {
    Query::<QueryParams>::try_from_uri(uri)
        .map(|Query(p)| p)
        .map_err(|e| ApiError::invalid(format!("unreadable query string: {}", e.body_text())))
}

fn meter_id(
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|e| ApiError::invalid(format!("unreadable meter id: {}", e.body_text())))
}

/// `{"status":"ok"}` (200) while the store takes writes; `{"status":"degraded", "reason"}` (503)
/// once an I/O failure made it refuse them.
async fn healthz(State(state): State<AppState>) -> Response {
    let tokens = match &state.config.governance {
        Some(gov) => gov.tokens_status(),
        None => Ok(()),
    };
    let (status, body) = if state.store.is_failed() {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"degraded","reason":"the store refuses writes after an I/O failure; restart the server once the disk is fixed"}"#,
        )
    } else if let Err(why) = tokens {
        // The detail names the file: it stays in the server's log (/healthz needs no token).
        tracing::warn!(reason = %why, "healthz: tokens file unreadable");
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"degraded","reason":"the tokens file cannot be read whole: every token is refused until it is fixed"}"#,
        )
    } else {
        (axum::http::StatusCode::OK, r#"{"status":"ok"}"#)
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    // The server's own counters are exposed even when the store cannot be measured.
    let stats = blocking(move || Ok(store.stats())).await.ok();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(stats.as_ref()),
    )
        .into_response()
}

/// Answers the question the access guard read (the one it authorized), or reads it from the
/// query string where no guard runs.
async fn answer_query(
    state: AppState,
    kind: QueryKind,
    meter: impl FnOnce() -> Result<Option<String>, ApiError>,
    asked: Option<Extension<Asked>>,
    request: (&Uri, &HeaderMap),
) -> Result<Response, HttpError> {
    let (uri, headers) = request;
    let Asked {
        mut question,
        encoding,
    } = match asked {
        Some(Extension(asked)) => asked,
        None => Asked::read_preferring(
            kind,
            meter()?.as_deref(),
            uri.query(),
            body::prefers_arrow(headers),
            &state.config.limits,
        )?,
    };
    if let Some(gov) = &state.config.governance {
        gov.calendars()
            .resolve(&mut question)
            .map_err(ApiError::invalid)?;
    }
    let store = state.store.clone();
    if stream::is_streamed(&question) {
        return stream::respond(store, state.config.limits.clone(), question, encoding).await;
    }
    let config = state.config.clone();
    let (body, content_type) = blocking(move || {
        let snapshot = store.snapshot();
        body::answer_encoded(&*snapshot, &question, encoding, &config.limits)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

type MeterPath = Result<Path<String>, axum::extract::rejection::PathRejection>;

async fn meter_curve(
    State(state): State<AppState>,
    path: MeterPath,
    asked: Option<Extension<Asked>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, HttpError> {
    let meter = || meter_id(path).map(Some);
    answer_query(state, QueryKind::Curve, meter, asked, (&uri, &headers)).await
}

async fn meter_energy(
    State(state): State<AppState>,
    path: MeterPath,
    asked: Option<Extension<Asked>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, HttpError> {
    let meter = || meter_id(path).map(Some);
    answer_query(state, QueryKind::Energy, meter, asked, (&uri, &headers)).await
}

async fn meter_peak(
    State(state): State<AppState>,
    path: MeterPath,
    asked: Option<Extension<Asked>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, HttpError> {
    let meter = || meter_id(path).map(Some);
    answer_query(state, QueryKind::Peak, meter, asked, (&uri, &headers)).await
}

async fn meter_index(
    State(state): State<AppState>,
    path: MeterPath,
    asked: Option<Extension<Asked>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, HttpError> {
    let meter = || meter_id(path).map(Some);
    answer_query(state, QueryKind::Index, meter, asked, (&uri, &headers)).await
}

async fn meter_summary(
    State(state): State<AppState>,
    path: MeterPath,
    asked: Option<Extension<Asked>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, HttpError> {
    let meter = || meter_id(path).map(Some);
    answer_query(state, QueryKind::Summary, meter, asked, (&uri, &headers)).await
}

async fn fleet_curve(
    State(state): State<AppState>,
    asked: Option<Extension<Asked>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, HttpError> {
    answer_query(
        state,
        QueryKind::FleetCurve,
        || Ok(None),
        asked,
        (&uri, &headers),
    )
    .await
}

async fn fleet_energy(
    State(state): State<AppState>,
    asked: Option<Extension<Asked>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, HttpError> {
    answer_query(
        state,
        QueryKind::FleetEnergy,
        || Ok(None),
        asked,
        (&uri, &headers),
    )
    .await
}

async fn meter_erase(
    State(state): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    uri: Uri,
) -> Result<Response, HttpError> {
    let params = QueryParams::from_query(uri.query(), question::ERASE_PARAMETERS)?;
    let question = EraseQuestion::from_params(&meter_id(path)?, &params)?;
    let store = state.store.clone();
    let body = blocking(move || body::erase(&store, &question)).await?;
    Ok(axum::Json(body).into_response())
}

/// `POST /v1/ingest[?channel=C]`: XML bodies are R151 or R50 by their root, JSON bodies Data
/// Connect documents; otherwise the format is detected from the content.
async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response, HttpError> {
    let channel = question::parse_ingest_channel(query_params(&uri)?.channel.as_deref())?;
    // A price series names itself: `series` (required for prices, read by nothing else).
    let series = question::read_query(uri.query())?
        .into_iter()
        .find(|(n, _)| n == "series")
        .map(|(_, v)| v);
    match (channel == crate::Channel::PRICE, &series) {
        (true, None) => {
            return Err(
                ApiError::invalid("channel price needs `series` (spot-AREA, e.g. spot-FR)").into(),
            )
        }
        (false, Some(_)) => {
            return Err(
                ApiError::invalid("`series` names a price series: only with channel=price").into(),
            )
        }
        _ => {}
    }
    let (bytes, _memory) = read_body(&headers, body, &state).await?;
    let _permit = state.ingest_turn().await?;
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let detected = Format::detect(&bytes);
    let format = match media.as_deref() {
        // XML: the flow its root names (R151), else R50.
        Some("application/xml" | "text/xml") if detected != Format::R151 => Format::R50,
        Some("application/json") => Format::DataConnect,
        _ => detected,
    };
    let store = state.store.clone();
    let batch_points = state.config.ingest_batch_points;
    let body_len = bytes.len() as u64;
    let gov = state.config.governance.clone();
    let report = blocking(move || match &series {
        Some(series) => {
            loading::ingest_prices_screened(&store, gov.as_deref(), &bytes, series, batch_points)
        }
        None => loading::ingest_document_screened(
            &store,
            gov.as_deref(),
            &bytes,
            format,
            channel,
            batch_points,
        ),
    })
    .await?;
    state
        .metrics
        .observe_ingest(body_len, report.accepted, report.rejected_count);
    Ok(axum::Json(IngestBody::from(report)).into_response())
}

/// The declared length of the body, when the client gave one.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads the whole body within the server's limits: 413 for one over `max_body_bytes` (at once
/// when its declared length says so, else as soon as the bytes read pass it), 408 when it has
/// not all arrived within `body_read_timeout`, 503 when the bytes of the bodies in memory stay at
/// `max_body_memory_bytes` that long. Returns the body with its share of that memory, to hold
/// while the body is.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    state: &AppState,
) -> Result<(bytes::Bytes, Option<OwnedSemaphorePermit>), ApiError> {
    let limit = state.config.max_body_bytes;
    let timeout = state.config.body_read_timeout;
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is over the limit of {limit} bytes"),
        )
    };
    if content_length(headers).is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut body = body;
    let mut bytes = Vec::new();
    let mut memory: Option<OwnedSemaphorePermit> = None;
    loop {
        let frame = tokio::time::timeout_at(deadline, http_body_util::BodyExt::frame(&mut body));
        let data = match frame.await {
            Err(_) => {
                return Err(ApiError::new(
                    ErrorCode::RequestTimeout,
                    format!(
                        "the body did not arrive within {} s ({} bytes received)",
                        timeout.as_secs_f64(),
                        bytes.len()
                    ),
                ))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::invalid(format!("cannot read the body: {e}")))
            }
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => data,
                Err(_trailers) => continue,
            },
        };
        if bytes.len() as u64 + data.len() as u64 > limit {
            return Err(too_large());
        }
        let share = u32::try_from(data.len()).map_err(|_| too_large())?;
        let semaphore = state.body_memory.clone();
        let taken = match semaphore.clone().try_acquire_many_owned(share) {
            Ok(permit) => permit,
            Err(_) => {
                match tokio::time::timeout_at(deadline, semaphore.acquire_many_owned(share)).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_closed)) => {
                        return Err(ApiError::new(
                            ErrorCode::Unavailable,
                            "the server is shutting down",
                        ))
                    }
                    Err(_) => {
                        return Err(ApiError::new(
                            ErrorCode::Unavailable,
                            "the server holds as many request bodies as it may; retry later",
                        ))
                    }
                }
            }
        };
        match memory.as_mut() {
            Some(held) => held.merge(taken),
            None => memory = Some(taken),
        }
        bytes.extend_from_slice(&data);
    }
    Ok((bytes::Bytes::from(bytes), memory))
}

async fn not_found(uri: Uri) -> HttpError {
    HttpError(ApiError::new(
        ErrorCode::NotFound,
        format!("no such resource: {}", uri.path()),
    ))
}

async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> HttpError {
    HttpError(ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    ))
}

//! The HTTP API of the contract, on axum (hyper, tokio).
//!
//! - [`run`] serves a [`Store`] on a bound listener until a shutdown future resolves.
//! - [`api`]: questions, answers and their JSON/CSV shapes, shared with `courbe query`.
//! - [`error`]: the error codes and their one mapping to HTTP statuses.
//! - [`metrics`]: request counts, latencies and ingest counters for `/metrics`.
//!
//! Engine work never runs on the async workers: every handler that touches the store does it
//! in [`tokio::task::spawn_blocking`].
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use courbe::engine::{Options, Store};
//! use courbe::http::{run, ServerConfig};
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

pub mod api;
pub mod error;
pub mod loading;
pub mod metrics;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::engine::Store;
use crate::ingest::Format;
use api::{Asked, EraseQuestion, Limits, QueryKind, QueryParams};
use error::{ApiError, ErrorCode};
use loading::IngestBody;
use metrics::Metrics;

/// Default largest ingest body: 64 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

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
    pub limits: Limits,
    /// Consent, access control and the governance endpoints; `None`: none of them.
    pub governance: Option<Arc<crate::governance::Governance>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            ingest_batch_points: 100_000,
            max_concurrent_ingests: 4,
            limits: Limits::default(),
            governance: None,
        }
    }
}

#[derive(Clone)]
struct AppState {
    store: Arc<Store>,
    config: Arc<ServerConfig>,
    metrics: Arc<Metrics>,
    ingest_permits: Arc<Semaphore>,
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes the requests in flight.
pub async fn run(
    listener: TcpListener,
    store: Arc<Store>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(store, config))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The application, for callers that bring their own server.
pub fn router(store: Arc<Store>, config: ServerConfig) -> Router {
    let state = AppState {
        store,
        ingest_permits: Arc::new(Semaphore::new(config.max_concurrent_ingests.max(1))),
        config: Arc::new(config),
        metrics: Arc::new(Metrics::new()),
    };
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/ingest", post(ingest))
        .route("/metrics", get(metrics_text))
        .route("/v1/meters/:id/curve", get(meter_curve).delete(meter_erase))
        .route("/v1/meters/:id/energy", get(meter_energy))
        .route("/v1/meters/:id/peak", get(meter_peak))
        .route("/v1/fleet/curve", get(fleet_curve))
        .route("/v1/fleet/energy", get(fleet_energy));
    // Hook (governance): its routes, and access control over every /v1 route above.
    let app = match &state.config.governance {
        Some(gov) => crate::governance::http::attach(
            app,
            state.store.clone(),
            gov.clone(),
            state.config.limits.clone(),
        ),
        None => app,
    };
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
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

async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
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
    uri: &Uri,
) -> Result<Response, ApiError> {
    let Asked { question, encoding } = match asked {
        Some(Extension(asked)) => asked,
        None => Asked::read(kind, meter()?.as_deref(), uri.query(), &state.config.limits)?,
    };
    let store = state.store.clone();
    let config = state.config.clone();
    let (body, content_type) = blocking(move || {
        let snapshot = store.snapshot();
        api::answer(&*snapshot, &question, &config.limits)?.encode(encoding)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

type MeterPath = Result<Path<String>, axum::extract::rejection::PathRejection>;

async fn meter_curve(
    State(state): State<AppState>,
    path: MeterPath,
    asked: Option<Extension<Asked>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let meter = || meter_id(path).map(Some);
    answer_query(state, QueryKind::Curve, meter, asked, &uri).await
}

async fn meter_energy(
    State(state): State<AppState>,
    path: MeterPath,
    asked: Option<Extension<Asked>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let meter = || meter_id(path).map(Some);
    answer_query(state, QueryKind::Energy, meter, asked, &uri).await
}

async fn meter_peak(
    State(state): State<AppState>,
    path: MeterPath,
    asked: Option<Extension<Asked>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let meter = || meter_id(path).map(Some);
    answer_query(state, QueryKind::Peak, meter, asked, &uri).await
}

async fn fleet_curve(
    State(state): State<AppState>,
    asked: Option<Extension<Asked>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    answer_query(state, QueryKind::FleetCurve, || Ok(None), asked, &uri).await
}

async fn fleet_energy(
    State(state): State<AppState>,
    asked: Option<Extension<Asked>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    answer_query(state, QueryKind::FleetEnergy, || Ok(None), asked, &uri).await
}

async fn meter_erase(
    State(state): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let params = QueryParams::from_query(uri.query(), api::ERASE_PARAMETERS)?;
    let question = EraseQuestion::from_params(&meter_id(path)?, &params)?;
    let store = state.store.clone();
    let body = blocking(move || api::erase(&store, &question)).await?;
    Ok(axum::Json(body).into_response())
}

/// `POST /v1/ingest[?channel=C]`: R50 when the body says it is XML, else detected.
async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response, ApiError> {
    let channel = api::parse_channel(query_params(&uri)?.channel.as_deref())?;
    let too_large = content_length(&headers).is_some_and(|len| len > state.config.max_body_bytes);
    // An oversized body is refused at once, without waiting for a turn.
    let _permit = if too_large {
        None
    } else {
        Some(
            state
                .ingest_permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| ApiError::internal("the server is shutting down"))?,
        )
    };
    let bytes = read_body(&headers, body, state.config.max_body_bytes).await?;
    let is_xml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            let media = t.split(';').next().unwrap_or_default().trim();
            media.eq_ignore_ascii_case("application/xml") || media.eq_ignore_ascii_case("text/xml")
        });
    let format = if is_xml {
        Format::R50
    } else {
        Format::detect(&bytes)
    };
    let store = state.store.clone();
    let batch_points = state.config.ingest_batch_points;
    let body_len = bytes.len() as u64;
    let gov = state.config.governance.clone();
    let report = blocking(move || {
        loading::ingest_document_screened(
            &store,
            gov.as_deref(),
            &bytes,
            format,
            channel,
            batch_points,
        )
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

/// Reads the whole body, refusing (413) one over `limit` bytes: at once when its declared
/// length says so, else as soon as the bytes read pass the limit.
async fn read_body(headers: &HeaderMap, body: Body, limit: u64) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is over the limit of {limit} bytes"),
        )
    };
    if content_length(headers).is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    let limited = http_body_util::Limited::new(body, limit_usize);
    match http_body_util::BodyExt::collect(limited).await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::invalid(format!("cannot read the body: {e}"))),
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no such resource: {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

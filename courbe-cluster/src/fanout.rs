//! Readers on several nodes and a router (docs/SCALE-OUT.md, "Fan-out between nodes").
//!
//! A [`ReaderNode`] holds some shards of the cluster (ranged readers, restored from object
//! storage) and answers, on the internal routes under [`INTERNAL`], *partial* results for its
//! own meters: a fleet curve's per-instant sums and meter counts, and the governance
//! aggregates' unsuppressed per-group sums ([`Partials`]). A [`Router`] fans a fleet question
//! out to the readers owning every shard, merges their partials (sums of disjoint meters, so
//! exact) and answers it with the single node's code: the suppression rules are decided once,
//! on the merged sums, by `courbe::governance::aggregates::answer_with`.
//!
//! Partials hold cells no one may see. The internal routes answer only a request carrying the
//! cluster's shared secret as its one `Authorization: Bearer` header (compared in constant
//! time); the secret is never read from a query string, and the router's public port serves no
//! internal path. A reader that does not answer fails the whole question (503, naming its
//! shards): a router never answers from some shards.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use courbe::error::{ApiError, ErrorCode};
use courbe::governance::aggregates::{self, Aggregates, CellFigures, Kind, Params, Partials};
use courbe::governance::auth::{Action, Decision, Level};
use courbe::governance::Governance;
use courbe::query::{self, FleetPoint};
use courbe::question::{self, Asked, Limits, QueryKind, Question};
use courbe::Channel;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::{shard_of, Error, RangedReader, Result};

/// The prefix of the internal routes (readers only).
pub const INTERNAL: &str = "/internal/v1";

/// The longest request body a node reads (a fleet curve's meter list).
const MAX_BODY_BYTES: usize = 8 << 20;

/// The longest wait for a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The cluster's shared secret: what a router presents and a reader checks.
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// Fewest bytes of a secret.
    pub const MIN_BYTES: usize = 16;

    /// A secret from its text (surrounding white space dropped).
    pub fn new(text: &str) -> Result<Secret> {
        let text = text.trim();
        if text.len() < Secret::MIN_BYTES || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Invalid(format!(
                "the internal secret must be at least {} printable ASCII characters without spaces",
                Secret::MIN_BYTES
            )));
        }
        Ok(Secret(text.as_bytes().into()))
    }

    /// The secret in file `path` (its whole text).
    pub fn from_file(path: &Path) -> Result<Secret> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Secret::new(&text)
    }

    fn header(&self) -> String {
        format!("Bearer {}", String::from_utf8_lossy(&self.0))
    }

    /// Whether `headers` hold exactly one `Authorization` header, `Bearer <this secret>`; the
    /// comparison takes the same time whatever the bytes presented.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let Some(token) = value.as_bytes().strip_prefix(b"Bearer ") else {
            return false;
        };
        bool::from(token.ct_eq(&self.0))
    }
}

/// The HTTP status of every library error code (the single node's mapping,
/// `courbe_server::http::error::status`, which this crate does not depend on).
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidArgument
        | ErrorCode::UnknownZone
        | ErrorCode::UnknownPeriod
        | ErrorCode::BadTariff
        | ErrorCode::MalformedDocument => StatusCode::BAD_REQUEST,
        ErrorCode::UnknownMeter | ErrorCode::NotFound | ErrorCode::NotReleased => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::UriTooLong => StatusCode::URI_TOO_LONG,
        ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

type Answer = Response<Full<Bytes>>;

fn json_answer(status: StatusCode, body: String) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// An error as the HTTP API answers it: `{"error": {"code", "message"}}`.
pub fn error_answer(e: &ApiError) -> Answer {
    let body = serde_json::json!({
        "error": { "code": e.code.as_str(), "message": e.client_message() }
    });
    json_answer(status_of(e.code), body.to_string())
}

fn ok_json<T: Serialize>(value: &T) -> Answer {
    match serde_json::to_string(value) {
        Ok(body) => json_answer(StatusCode::OK, body),
        Err(e) => error_answer(&ApiError::internal(e.to_string())),
    }
}

/// What a node answers a request: its method, path, query, headers and whole body.
trait Handler: Send + Sync + 'static {
    fn handle(
        self: Arc<Self>,
        request: Request<Bytes>,
    ) -> impl std::future::Future<Output = Answer> + Send;
}

/// A node's HTTP server: every connection on `listener` served by `handler` until the
/// returned task is aborted (which closes the listener and every connection).
fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors, most likely: let connections end before the next accept.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let handler = handler.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<_>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
                            Ok(b) => b.to_bytes(),
                            Err(_) => {
                                return Ok::<_, std::convert::Infallible>(error_answer(
                                    &ApiError::new(
                                        ErrorCode::PayloadTooLarge,
                                        "the request body is too large or unreadable",
                                    ),
                                ))
                            }
                        };
                        Ok(handler.handle(Request::from_parts(parts, body)).await)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(io, service)
                    .await;
            });
            // Finished connections leave the set.
            while connections.try_join_next().is_some() {}
        }
    })
}

/// A running node: its address; dropping it (or [`Running::stop`]) stops it.
pub struct Running {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops serving: the listener and every connection close.
    pub fn stop(&self) {
        self.task.abort();
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a reader says it holds (`GET /internal/v1/shards`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    pub shard_count: u32,
    pub shards: Vec<u32>,
}

/// A fleet curve question on the internal route: the meters of the reader's shards only.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CurveAsk {
    pub channel: String,
    pub from_utc: i64,
    pub to_utc: i64,
    pub meters: Option<Vec<String>>,
}

/// A fleet curve's partial sums: `(ts_utc, total, meters)` per instant, in time order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CurvePartial {
    pub points: Vec<(i64, i64, u32)>,
}

/// A fleet energy question on the internal route: the public query string (read with the
/// single node's parser) and the listed meters of the reader's shards, when a list was given.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnergyAsk {
    pub query: String,
    pub meters: Option<Vec<String>>,
}

/// One meter's energy per period, as the public answer shows it: `(start_utc, end_utc, Wh)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeterPeriods {
    pub meter: String,
    pub periods: Vec<(i64, i64, f64)>,
}

/// A fleet energy answer's part: the reader's meters, in meter order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnergyPartial {
    pub meters: Vec<MeterPeriods>,
}

/// An aggregate question on the internal route: the public query string, read by the reader
/// with the single node's parser.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AggregatesAsk {
    pub query: String,
}

/// A node holding some shards of the cluster and answering partials for their meters.
pub struct ReaderNode {
    shard_count: u32,
    shards: Vec<(u32, RangedReader)>,
    gov: Arc<Governance>,
    secret: Secret,
}

impl ReaderNode {
    /// `shards`: the shards it reads, each with its ranged reader; `gov`: the node's governance
    /// (its group registry must be the router's: every partial names the registry's digest
    /// and the router refuses others).
    pub fn new(
        shard_count: u32,
        shards: Vec<(u32, RangedReader)>,
        gov: Arc<Governance>,
        secret: Secret,
    ) -> Result<ReaderNode> {
        if let Some((s, _)) = shards.iter().find(|(s, _)| *s >= shard_count) {
            return Err(Error::Invalid(format!(
                "shard {s} is not below the shard count {shard_count}"
            )));
        }
        Ok(ReaderNode {
            shard_count,
            shards,
            gov,
            secret,
        })
    }

    /// Serves the internal routes on `listener`.
    pub fn serve(self, listener: TcpListener) -> Result<Running> {
        let addr = listener.local_addr().map_err(|source| Error::Io {
            path: "listener".into(),
            source,
        })?;
        Ok(Running {
            addr,
            task: serve(listener, Arc::new(self)),
        })
    }

    fn holding(&self) -> Holding {
        Holding {
            shard_count: self.shard_count,
            shards: self.shards.iter().map(|(s, _)| *s).collect(),
        }
    }

    /// The meters of `list` in shard `shard`.
    fn of_shard(&self, shard: u32, list: &[String]) -> Vec<String> {
        list.iter()
            .filter(|m| shard_of(m, self.shard_count) == shard)
            .cloned()
            .collect()
    }

    /// The fleet curve of this node's meters (of `ask.meters` when listed).
    pub async fn curve(&self, ask: &CurveAsk) -> Result<CurvePartial, ApiError> {
        let channel = question::parse_channel(Some(&ask.channel))?;
        let (from, to) = (ask.from_utc, ask.to_utc);
        let mut merged: Vec<FleetPoint> = Vec::new();
        for (shard, reader) in &self.shards {
            let meters = match &ask.meters {
                Some(list) => self.of_shard(*shard, list),
                None => {
                    // The segments' rollups when exact (no block read), else every meter.
                    let sums = reader
                        .read(&[], from, to, |src| src.fleet_sums(channel, from, to))
                        .await
                        .map_err(unavailable)?
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    if let Some(sums) = sums {
                        let points = sums
                            .into_iter()
                            .map(|s| FleetPoint {
                                ts_utc: s.ts_utc,
                                total: s.total,
                                meters: s.meters,
                            })
                            .collect();
                        merged = query::merge_fleet_curves(merged, points);
                        continue;
                    }
                    reader
                        .read(&[], from, to, |src| src.meters(channel))
                        .await
                        .map_err(unavailable)?
                }
            };
            if ask.meters.is_some() && meters.is_empty() {
                continue;
            }
            let points = reader
                .read(
                    &meters,
                    from - courbe::source::MAX_CURVE_STEP_S * 2,
                    to,
                    |src| query::fleet_curve(src, channel, from, to, Some(&meters)),
                )
                .await
                .map_err(unavailable)??;
            merged = query::merge_fleet_curves(merged, points);
        }
        Ok(CurvePartial {
            points: merged
                .into_iter()
                .map(|p| (p.ts_utc, p.total, p.meters))
                .collect(),
        })
    }

    /// The energy per period of this node's meters (of the listed ones of its shards).
    pub async fn energy(
        &self,
        ask: &EnergyAsk,
        limits: &Limits,
    ) -> Result<EnergyPartial, ApiError> {
        let mut query = ask.query.clone();
        // The meters are the router's list, cut to this node's shards.
        query = strip_param(&query, "meters");
        let asked = Asked::read(QueryKind::FleetEnergy, None, Some(&query), limits)?;
        let Question::FleetEnergy {
            channel, calendar, ..
        } = asked.question
        else {
            return Err(ApiError::internal("a fleet energy question"));
        };
        let cal = &calendar.calendar;
        let mut out = Vec::new();
        for (shard, reader) in &self.shards {
            let meters = match &ask.meters {
                Some(list) => self.of_shard(*shard, list),
                None => reader
                    .read(&[], cal.from_utc, cal.to_utc, |src| src.meters(channel))
                    .await
                    .map_err(unavailable)?,
            };
            if meters.is_empty() {
                continue;
            }
            let energies = reader
                .read(
                    &meters,
                    cal.from_utc - courbe::source::MAX_CURVE_STEP_S * 2,
                    cal.to_utc,
                    |src| -> Result<_, ApiError> {
                        question::check_fleet_energy(
                            src,
                            channel,
                            &calendar,
                            Some(&meters),
                            limits,
                        )?;
                        Ok(query::fleet_energy(src, channel, cal, Some(&meters))?)
                    },
                )
                .await
                .map_err(unavailable)??;
            out.extend(energies.into_iter().map(|m| {
                MeterPeriods {
                    meter: m.meter,
                    periods: m
                        .periods
                        .iter()
                        .map(|p| (p.start_utc, p.end_utc, p.energy_wh()))
                        .collect(),
                }
            }));
        }
        out.sort_unstable_by(|a, b| a.meter.cmp(&b.meter));
        Ok(EnergyPartial { meters: out })
    }

    /// The unsuppressed group sums of this node's meters for an aggregate question.
    pub async fn aggregates(&self, ask: &AggregatesAsk) -> Result<Partials, ApiError> {
        let params = Params::from_query(&ask.query)?;
        let groups = self.gov.groups();
        let listed = match &params.meters {
            Some(ids) => ids.clone(),
            None => groups
                .groups(Level::All)
                .into_values()
                .next()
                .unwrap_or_default(),
        };
        let (from, to) = (params.calendar.from_utc, params.calendar.to_utc);
        let mut merged: Option<Partials> = None;
        for (shard, reader) in &self.shards {
            let meters = self.of_shard(*shard, &listed);
            let partials = reader
                .read(
                    &meters,
                    from - courbe::source::MAX_CURVE_STEP_S * 2,
                    to,
                    |src| Partials::load(src, &groups, &params),
                )
                .await
                .map_err(unavailable)??;
            match &mut merged {
                None => merged = Some(partials),
                Some(m) => m.merge(partials).map_err(ApiError::internal)?,
            }
        }
        merged.ok_or_else(|| ApiError::internal("this reader holds no shard"))
    }
}

/// `query` without its parameters named `name`.
fn strip_param(query: &str, name: &str) -> String {
    query
        .split('&')
        .filter(|kv| kv.split('=').next() != Some(name))
        .collect::<Vec<_>>()
        .join("&")
}

fn unavailable(e: Error) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, e.to_string())
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no such resource: {path}"))
}

fn read_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("unreadable request body: {e}")))
}

impl Handler for ReaderNode {
    async fn handle(self: Arc<Self>, request: Request<Bytes>) -> Answer {
        let path = request.uri().path().to_owned();
        if !self.secret.admits(request.headers()) {
            // Every path, existing or not: nothing is said to a caller without the secret.
            return error_answer(&ApiError::new(
                ErrorCode::Unauthorized,
                "missing or unknown internal secret",
            ));
        }
        let method = request.method().clone();
        let body = request.body();
        match (method, path.strip_prefix(INTERNAL)) {
            (Method::GET, Some("/shards")) => ok_json(&self.holding()),
            (Method::POST, Some("/partials/fleet-curve")) => {
                match async { self.curve(&read_json(body)?).await }.await {
                    Ok(p) => ok_json(&p),
                    Err(e) => error_answer(&e),
                }
            }
            (Method::POST, Some("/partials/fleet-energy")) => {
                let limits = Limits::default();
                match async { self.energy(&read_json(body)?, &limits).await }.await {
                    Ok(p) => ok_json(&p),
                    Err(e) => error_answer(&e),
                }
            }
            (Method::POST, Some("/partials/aggregates")) => {
                match async { self.aggregates(&read_json(body)?).await }.await {
                    Ok(p) => ok_json(&p),
                    Err(e) => error_answer(&e),
                }
            }
            _ => error_answer(&not_found(&path)),
        }
    }
}

/// One reader as the router knows it.
#[derive(Clone, Debug)]
pub struct ReaderLink {
    pub url: String,
    pub shards: Vec<u32>,
}

/// Fans fleet questions out to the readers of every shard and answers them as one node does.
pub struct Router {
    readers: Vec<ReaderLink>,
    shard_count: u32,
    secret: Secret,
    client: reqwest::Client,
    gov: Arc<Governance>,
    limits: Limits,
}

impl Router {
    /// The router of the readers at `urls` for a cluster of `shard_count` shards (etcd's):
    /// asks each reader which shards it holds, and refuses a map where a shard has no reader or
    /// two. `gov` authenticates and authorises the public requests and holds the group
    /// registry the readers must share.
    pub async fn connect(
        urls: &[String],
        shard_count: u32,
        secret: Secret,
        gov: Arc<Governance>,
        limits: Limits,
        timeout: Duration,
    ) -> Result<Router> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Invalid(format!("an HTTP client: {e}")))?;
        let mut readers = Vec::new();
        let mut owner: Vec<Option<String>> = vec![None; shard_count as usize];
        for url in urls {
            let url = url.trim_end_matches('/').to_owned();
            let holding: Holding = client
                .get(format!("{url}{INTERNAL}/shards"))
                .header(header::AUTHORIZATION, secret.header())
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| Error::Invalid(format!("reader {url}: {e}")))?
                .json()
                .await
                .map_err(|e| Error::Invalid(format!("reader {url}: {e}")))?;
            if holding.shard_count != shard_count {
                return Err(Error::Invalid(format!(
                    "reader {url} reads a cluster of {} shards, not {shard_count}",
                    holding.shard_count
                )));
            }
            for &s in &holding.shards {
                match owner.get_mut(s as usize) {
                    Some(Some(other)) => {
                        return Err(Error::Invalid(format!(
                            "shard {s} is read by both {other} and {url}"
                        )))
                    }
                    Some(slot) => *slot = Some(url.clone()),
                    None => return Err(Error::Invalid(format!("reader {url}: shard {s}"))),
                }
            }
            readers.push(ReaderLink {
                url,
                shards: holding.shards,
            });
        }
        if let Some(s) = owner.iter().position(Option::is_none) {
            return Err(Error::Invalid(format!("shard {s} has no reader")));
        }
        Ok(Router {
            readers,
            shard_count,
            secret,
            client,
            gov,
            limits,
        })
    }

    pub fn readers(&self) -> &[ReaderLink] {
        &self.readers
    }

    /// Serves the public routes on `listener`; refused on a non-loopback address without a
    /// tokens file, as one node refuses it (every caller would be an operator).
    pub fn serve(self, listener: TcpListener) -> Result<Running> {
        let addr = listener.local_addr().map_err(|source| Error::Io {
            path: "listener".into(),
            source,
        })?;
        self.gov.check_listen(addr).map_err(Error::Invalid)?;
        Ok(Running {
            addr,
            task: serve(listener, Arc::new(self)),
        })
    }

    /// Asks `reader` the internal route `path` with `body`.
    async fn ask<T: for<'de> Deserialize<'de>>(
        &self,
        reader: &ReaderLink,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ApiError> {
        let down = |detail: String| {
            ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "shard {} (reader {}) did not answer: {detail}",
                    reader
                        .shards
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    reader.url
                ),
            )
        };
        let response = self
            .client
            .post(format!("{}{INTERNAL}{path}", reader.url))
            .header(header::AUTHORIZATION, self.secret.header())
            .json(body)
            .send()
            .await
            .map_err(|e| down(e.to_string()))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| down(e.to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| down(e.to_string()));
        }
        // The caller's mistake a reader found (an unknown meter) is the caller's answer.
        if status.is_client_error() && status != StatusCode::UNAUTHORIZED {
            if let Some(e) = parse_error(&bytes) {
                return Err(e);
            }
        }
        Err(down(format!(
            "{status}: {}",
            String::from_utf8_lossy(&bytes)
        )))
    }

    /// Every reader's answer to `path`, or the first failure.
    async fn fan_out<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: impl Fn(&ReaderLink) -> Option<serde_json::Value>,
    ) -> Result<Vec<T>, ApiError> {
        let asks = self.readers.iter().filter_map(|r| {
            let b = body(r)?;
            Some(async move { self.ask::<T>(r, path, &b).await })
        });
        futures::future::join_all(asks).await.into_iter().collect()
    }

    /// The fleet curve of a fleet curve question, merged from every reader.
    pub async fn fleet_curve(
        &self,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
        meters: Option<&[String]>,
    ) -> Result<Vec<FleetPoint>, ApiError> {
        let n = self.shard_count;
        let partials: Vec<CurvePartial> = self
            .fan_out("/partials/fleet-curve", |r| {
                let meters = meters.map(|list| {
                    list.iter()
                        .filter(|m| r.shards.contains(&shard_of(m, n)))
                        .cloned()
                        .collect::<Vec<_>>()
                });
                if meters.as_ref().is_some_and(Vec::is_empty) {
                    return None;
                }
                serde_json::to_value(CurveAsk {
                    channel: channel.as_str().to_owned(),
                    from_utc,
                    to_utc,
                    meters,
                })
                .ok()
            })
            .await?;
        Ok(partials.into_iter().fold(Vec::new(), |acc, p| {
            let points = p
                .points
                .into_iter()
                .map(|(ts_utc, total, meters)| FleetPoint {
                    ts_utc,
                    total,
                    meters,
                })
                .collect();
            query::merge_fleet_curves(acc, points)
        }))
    }

    /// Every meter's energy per period for a fleet energy question (its query string and its
    /// list of meters), in meter order, with the single node's limit on the answer's size.
    pub async fn fleet_energy(
        &self,
        query: &str,
        calendar: &question::CalendarQuestion,
        meters: Option<&[String]>,
    ) -> Result<Vec<MeterPeriods>, ApiError> {
        let n = self.shard_count;
        let parts: Vec<EnergyPartial> = self
            .fan_out("/partials/fleet-energy", |r| {
                let meters = meters.map(|list| {
                    list.iter()
                        .filter(|m| r.shards.contains(&shard_of(m, n)))
                        .cloned()
                        .collect::<Vec<_>>()
                });
                if meters.as_ref().is_some_and(Vec::is_empty) {
                    return None;
                }
                serde_json::to_value(EnergyAsk {
                    query: query.to_owned(),
                    meters,
                })
                .ok()
            })
            .await?;
        let mut all: Vec<MeterPeriods> = parts.into_iter().flat_map(|p| p.meters).collect();
        all.sort_unstable_by(|a, b| a.meter.cmp(&b.meter));
        if meters.is_some() {
            all.dedup_by(|a, b| a.meter == b.meter);
        }
        // The single node's bound on the answer, on every meter.
        question::check_fleet_energy_size(
            meters.map_or(all.len(), <[String]>::len),
            calendar,
            &self.limits,
        )?;
        Ok(all)
    }

    /// The merged unsuppressed sums of an aggregate question (its query string).
    pub async fn partials(&self, query: &str) -> Result<Partials, ApiError> {
        let ask = serde_json::to_value(AggregatesAsk {
            query: query.to_owned(),
        })
        .map_err(|e| ApiError::internal(e.to_string()))?;
        let all: Vec<Partials> = self
            .fan_out("/partials/aggregates", |_| Some(ask.clone()))
            .await?;
        let mut all = all.into_iter();
        let mut merged = all.next().ok_or_else(|| ApiError::internal("no reader"))?;
        for p in all {
            merged.merge(p).map_err(ApiError::internal)?;
        }
        Ok(merged)
    }

    /// An aggregate answer for `principal`, as one node's `aggregates::answer` (the same
    /// checks and rules) with the live sums merged from the readers.
    pub async fn aggregates(
        self: &Arc<Self>,
        principal: courbe::governance::auth::Principal,
        query: &str,
    ) -> Result<Aggregates, ApiError> {
        let params = Params::from_query(query)?;
        let router = self.clone();
        let query = query.to_owned();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            aggregates::answer_with(&router.gov, &principal, &params, &|_| {
                handle.block_on(router.partials(&query))
            })
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
    }

    /// The principal of a request allowed `action`, or the refusal.
    fn admit(
        &self,
        headers: &HeaderMap,
        action: &Action<'_>,
    ) -> Result<courbe::governance::auth::Principal, ApiError> {
        let principal = self
            .gov
            .authenticate(bearer(headers))
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "missing or unknown token"))?;
        match self.gov.authorize(&principal, action) {
            Decision::Allow => Ok(principal),
            Decision::Deny(why) => {
                tracing::info!(who = %principal.label(), why, "forbidden");
                Err(question::forbidden())
            }
        }
    }

    async fn public(self: Arc<Self>, request: &Request<Bytes>) -> Result<Answer, ApiError> {
        let path = request.uri().path();
        let query = request.uri().query();
        if request.method() != Method::GET {
            return Err(match path {
                "/v1/fleet/curve" | "/v1/fleet/energy" | "/v1/aggregates" => ApiError::new(
                    ErrorCode::MethodNotAllowed,
                    format!("{} is not allowed here", request.method()),
                ),
                _ => not_found(path),
            });
        }
        match path {
            "/healthz" => Ok(json_answer(StatusCode::OK, r#"{"status":"ok"}"#.into())),
            "/v1/fleet/curve" => {
                let principal_check = self.admit(request.headers(), &Action::ReadFleet);
                principal_check?;
                let asked = Asked::read(QueryKind::FleetCurve, None, query, &self.limits)?;
                let Question::FleetCurve {
                    channel,
                    from_utc,
                    to_utc,
                    meters,
                } = asked.question
                else {
                    return Err(ApiError::internal("a fleet curve question"));
                };
                if asked.encoding != question::Encoding::Json {
                    return Err(ApiError::invalid(
                        "a router answers fleet curves in JSON only",
                    ));
                }
                let points = self
                    .fleet_curve(channel, from_utc, to_utc, meters.as_deref())
                    .await?;
                Ok(ok_json(&FleetCurveBody::new(channel, points)))
            }
            "/v1/fleet/energy" => {
                self.admit(request.headers(), &Action::ReadFleet)?;
                let asked = Asked::read(QueryKind::FleetEnergy, None, query, &self.limits)?;
                let Question::FleetEnergy {
                    calendar, meters, ..
                } = asked.question
                else {
                    return Err(ApiError::internal("a fleet energy question"));
                };
                if asked.encoding != question::Encoding::Json {
                    return Err(ApiError::invalid(
                        "a router answers fleet energy in JSON only",
                    ));
                }
                let all = self
                    .fleet_energy(query.unwrap_or_default(), &calendar, meters.as_deref())
                    .await?;
                Ok(ok_json(&FleetEnergyBody::new(&calendar.tz_name, all)))
            }
            "/v1/aggregates" => {
                let params = question::read_query(query)?;
                let param = |name: &str| {
                    params
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str())
                };
                let level = match param("level").unwrap_or("commune") {
                    "all" => Some(Level::All),
                    "commune" => Some(Level::Commune),
                    "iris" => Some(Level::Iris),
                    "building" => Some(Level::Building),
                    _ => None,
                };
                let action = Action::ReadAggregates {
                    // An unknown level is the answer's 400; for access it is the strictest.
                    level: level.unwrap_or(Level::Building),
                    predefined: param("meters").is_none(),
                };
                let principal = self.admit(request.headers(), &action)?;
                let answer = self
                    .aggregates(principal, query.unwrap_or_default())
                    .await?;
                Ok(ok_json(&AggregatesBody::from(answer)))
            }
            _ => Err(not_found(path)),
        }
    }
}

impl Handler for Router {
    async fn handle(self: Arc<Self>, request: Request<Bytes>) -> Answer {
        match self.public(&request).await {
            Ok(a) => a,
            Err(e) => error_answer(&e),
        }
    }
}

/// The bearer token of a request with exactly one `Authorization` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn parse_error(body: &[u8]) -> Option<ApiError> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = v.pointer("/error/code")?.as_str()?;
    let message = v.pointer("/error/message")?.as_str()?;
    let code = [
        ErrorCode::InvalidArgument,
        ErrorCode::UnknownMeter,
        ErrorCode::UnknownZone,
        ErrorCode::UnknownPeriod,
        ErrorCode::NotFound,
        ErrorCode::NotReleased,
        ErrorCode::Forbidden,
        ErrorCode::PayloadTooLarge,
    ]
    .into_iter()
    .find(|c| c.as_str() == code)?;
    Some(ApiError::new(code, message))
}

/// The body of `GET /v1/fleet/curve` (JSON), as one node writes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleetCurveBody {
    pub channel: &'static str,
    pub unit: &'static str,
    pub points: Vec<FleetPointBody>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleetPointBody {
    pub ts: String,
    pub value: i64,
    pub meters: u32,
}

impl FleetCurveBody {
    pub fn new(channel: Channel, points: Vec<FleetPoint>) -> FleetCurveBody {
        FleetCurveBody {
            channel: channel.as_str(),
            unit: question::unit_of(channel),
            points: points
                .into_iter()
                .map(|p| FleetPointBody {
                    ts: question::format_ts(p.ts_utc),
                    value: p.total,
                    meters: p.meters,
                })
                .collect(),
        }
    }
}

/// The body of `GET /v1/fleet/energy` (JSON), as one node writes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleetEnergyBody {
    pub unit: &'static str,
    pub tz: String,
    pub meters: Vec<MeterEnergyBody>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeterEnergyBody {
    pub meter: String,
    pub periods: Vec<PeriodBody>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeriodBody {
    pub start: String,
    pub end: String,
    pub energy_wh: f64,
}

impl FleetEnergyBody {
    pub fn new(tz: &str, meters: Vec<MeterPeriods>) -> FleetEnergyBody {
        FleetEnergyBody {
            unit: "Wh",
            tz: tz.to_owned(),
            meters: meters
                .into_iter()
                .map(|m| MeterEnergyBody {
                    meter: m.meter,
                    periods: m
                        .periods
                        .into_iter()
                        .map(|(start, end, energy_wh)| PeriodBody {
                            start: question::format_ts(start),
                            end: question::format_ts(end),
                            energy_wh,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// One node's answer, from the library's values.
    pub fn of(tz: &str, meters: Vec<query::MeterEnergy>) -> FleetEnergyBody {
        FleetEnergyBody::new(
            tz,
            meters
                .into_iter()
                .map(|m| MeterPeriods {
                    meter: m.meter,
                    periods: m
                        .periods
                        .iter()
                        .map(|p| (p.start_utc, p.end_utc, p.energy_wh()))
                        .collect(),
                })
                .collect(),
        )
    }
}

/// The body of `GET /v1/aggregates`, as one node writes it (`src/governance/bodies.rs`).
#[derive(Serialize)]
pub struct AggregatesBody {
    level: &'static str,
    kind: &'static str,
    channel: &'static str,
    unit: &'static str,
    tz: String,
    period: &'static str,
    min_meters: u32,
    groups: Vec<GroupBody>,
}

#[derive(Serialize)]
struct GroupBody {
    group: String,
    cells: Vec<CellBody>,
}

#[derive(Serialize)]
struct CellBody {
    start: String,
    end: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    meters: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    energy_wh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    points: Option<Vec<FleetPointBody>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    suppressed: bool,
}

impl From<Aggregates> for AggregatesBody {
    fn from(a: Aggregates) -> AggregatesBody {
        AggregatesBody {
            level: a.level.map_or("ad-hoc", aggregates::level_name),
            kind: match a.kind {
                Kind::Energy => "energy",
                Kind::Curve => "curve",
            },
            channel: a.channel.as_str(),
            unit: match a.kind {
                Kind::Energy => "Wh",
                Kind::Curve => "W",
            },
            tz: a.tz_name,
            period: aggregates::period_name(a.period),
            min_meters: a.min_meters,
            groups: a
                .groups
                .into_iter()
                .map(|g| GroupBody {
                    group: g.group,
                    cells: g
                        .cells
                        .into_iter()
                        .map(|cell| {
                            let (meters, energy_wh, points) = match cell.figures {
                                None => (None, None, None),
                                Some(CellFigures::Energy { meters, energy_ws }) => {
                                    (Some(meters), Some(energy_ws as f64 / 3_600.0), None)
                                }
                                Some(CellFigures::Curve { meters, points }) => (
                                    Some(meters),
                                    None,
                                    Some(
                                        points
                                            .into_iter()
                                            .map(|p| FleetPointBody {
                                                ts: question::format_ts(p.ts_utc),
                                                value: p.value_w,
                                                meters: p.meters,
                                            })
                                            .collect(),
                                    ),
                                ),
                            };
                            CellBody {
                                start: question::format_ts(cell.start_utc),
                                end: question::format_ts(cell.end_utc),
                                meters,
                                energy_wh,
                                points,
                                suppressed: meters.is_none(),
                            }
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

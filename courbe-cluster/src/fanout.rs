//! Readers on several nodes and a router (docs/SCALE-OUT.md, "Fan-out between nodes").
//!
//! A [`ReaderNode`] holds some shards of the cluster (ranged readers, restored from object
//! storage) and answers, on the internal routes under [`INTERNAL`], *partial* results for its
//! own meters: a fleet curve's per-instant sums and meter counts, the governance aggregates'
//! unsuppressed per-group sums ([`Partials`]), and every meter's saving of a fleet comparison
//! of offers ([`OffersPartial`]). A [`Router`] fans a fleet question out to the readers owning
//! every shard, merges their partials (sums of disjoint meters, so exact) and answers it with
//! the single node's code: the suppression rules are decided once, on the merged sums, by
//! `courbe::governance::aggregates::answer_with`, and every answer, an error's too, is written
//! by the server package's own encoders (`courbe_server::http::stream` for fleet curves and
//! energy in JSON, CSV and Arrow, `courbe_server::governance::bodies` for aggregates,
//! `courbe_server::governance::prices_http::fleet_offers_body` for a fleet comparison of
//! offers, `courbe_server::http::error` for statuses and error bodies), after the checks of one
//! node's access guard in its order: a router's bytes are one node's.
//!
//! A one-meter question (`/v1/meters/{id}/curve`, `energy`, `peak`, `index`, `summary`,
//! `export`, `compare`, `cost`, `estimate`, `offers`) is authorised by the router, which holds
//! the tokens, grants and consents, then answered by the one reader holding the meter's shard
//! with one node's code (`body::answer_encoded`, `governance::export`,
//! `governance::http::compare_answer`, `governance::prices_http::meter_answer`) and the
//! reader's governance state (calendars, prices, contracts, releases); the router passes its
//! status, content type and bytes through. A reader never answers a meter of a shard it does
//! not hold, nor a route it does not know. What needs another shard's data is refused (503): an
//! operator's comparison (the whole fleet, now), an offer priced against spot prices (a series
//! of its own shard).
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
use courbe::governance::aggregates::{self, Aggregates, Params, Partials};
use courbe::governance::audit::AuditRecord;
use courbe::governance::auth::{Action, Decision, Level, Principal, Role};
use courbe::governance::grants::{DataKind, Kinds};
use courbe::governance::prices::{self, FleetSavings, OfferPaths};
use courbe::governance::Governance;
use courbe::query::{self, cost, FleetPoint};
use courbe::question::{self, Asked, Limits, QueryKind, Question};
use courbe::Channel;
use courbe_server::governance::bodies::AggregatesBody;
use courbe_server::governance::export;
use courbe_server::governance::http as gov_http;
use courbe_server::governance::prices_http::{self, Access, Priced};
use courbe_server::http::body::{self, MeterEnergyJson, PeriodEnergyJson};
use courbe_server::http::{self as server_http, error, routes, stream};
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::{shard_of, Error, RangedReader, Result};

/// The prefix of the internal routes (readers only).
pub const INTERNAL: &str = "/internal/v1";

/// The fleet comparison of two offers (fanned out, as the fleet curve).
const FLEET_OFFERS: &str = "/v1/fleet/offers";

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

type Answer = Response<Full<Bytes>>;

fn answer_of(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// An error as one node answers it: the server's status and JSON body
/// (`courbe_server::http::error`); a 401 asks for a bearer token.
pub fn error_answer(e: &ApiError) -> Answer {
    if e.code.is_server_side() {
        tracing::error!(code = e.code.as_str(), message = %e.message, "server error");
    }
    let mut r = answer_of(
        error::status(e.code),
        "application/json",
        error::to_json(e).into_bytes(),
    );
    if e.code == ErrorCode::Unauthorized {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// A value of the internal routes (partials) in JSON.
fn ok_json<T: Serialize>(value: &T) -> Answer {
    match serde_json::to_vec(value) {
        Ok(body) => answer_of(StatusCode::OK, "application/json", body),
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
                        // One node's refusals of an over-long target (414) or headers (431),
                        // before the body is read or any route runs.
                        if let Some(refusal) = server_http::head_refusal(&parts.uri, &parts.headers)
                        {
                            return Ok(error_answer(&refusal));
                        }
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
                // hyper's own refusals (past one node's limits) written as one node writes them.
                let io = hyper_util::rt::TokioIo::new(server_http::JsonRefusals::new(stream));
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .max_headers(server_http::HYPER_MAX_HEADERS)
                    .max_buf_size(server_http::HYPER_MAX_BUF_BYTES)
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
    /// The shards answered for (the router splits a question between several readers of
    /// one shard); absent: every shard this reader holds. A shard not held is refused (409).
    #[serde(default)]
    pub shards: Option<Vec<u32>>,
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
    /// The shards answered for (the router splits a question between several readers of
    /// one shard); absent: every shard this reader holds. A shard not held is refused (409).
    #[serde(default)]
    pub shards: Option<Vec<u32>>,
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

/// A fleet comparison of two offers on the internal route: the public query string, read by
/// the reader with the single node's parser.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OffersAsk {
    pub query: String,
    /// The shards answered for (the router splits a question between several readers of
    /// one shard); absent: every shard this reader holds. A shard not held is refused (409).
    #[serde(default)]
    pub shards: Option<Vec<u32>>,
}

/// A fleet comparison's part: the saving of every meter of the reader priced whole under both
/// offers (cents, a before b), the meters skipped, and per offer the meters priced from the
/// clock-band summaries and from the curve. Counts and a list of disjoint meters: merged
/// exactly by concatenating and adding.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OffersPartial {
    pub savings: Vec<i64>,
    pub skipped: usize,
    pub paths: Vec<(usize, usize)>,
}

impl OffersPartial {
    fn of(s: FleetSavings) -> OffersPartial {
        OffersPartial {
            savings: s.savings,
            skipped: s.skipped,
            paths: s.paths.iter().map(|p| (p.summaries, p.curve)).collect(),
        }
    }

    /// Adds `other`'s meters (disjoint from these).
    fn merge(&mut self, other: OffersPartial) {
        self.savings.extend(other.savings);
        self.skipped += other.skipped;
        if self.paths.len() < other.paths.len() {
            self.paths.resize(other.paths.len(), (0, 0));
        }
        for (p, (summaries, curve)) in self.paths.iter_mut().zip(other.paths) {
            p.0 += summaries;
            p.1 += curve;
        }
    }

    fn into_savings(self) -> FleetSavings {
        FleetSavings {
            savings: self.savings,
            skipped: self.skipped,
            paths: self
                .paths
                .into_iter()
                .map(|(summaries, curve)| OfferPaths { summaries, curve })
                .collect(),
        }
    }
}

/// An aggregate question on the internal route: the public query string, read by the reader
/// with the single node's parser.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AggregatesAsk {
    pub query: String,
    /// The shards answered for (the router splits a question between several readers of
    /// one shard); absent: every shard this reader holds. A shard not held is refused (409).
    #[serde(default)]
    pub shards: Option<Vec<u32>>,
}

/// A one-meter question on the internal route: the route's last segment (`curve`, `energy`,
/// `peak`, `index`, `summary`, `export`, `compare`, `cost`, `estimate`, `offers`), the meter
/// (percent-decoded and checked by the router), the public query string (read by the reader
/// with the single node's parser), whether `Accept` asked for Arrow, and the kinds of data the
/// router's access decision lets it draw on ([`Kinds::names`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MeterAsk {
    pub route: String,
    pub meter: String,
    pub query: Option<String>,
    pub prefers_arrow: bool,
    pub kinds: String,
}

/// What a one-meter route answers from, as one node's guard and handler read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MeterRoute {
    /// A question about the meter's series ([`Asked`]), read by the guard.
    Question(QueryKind),
    /// Everything held about the meter, in an open format (`governance::export`).
    Export,
    /// The meter's monthly energy beside its groups' released distributions.
    Compare,
    /// A question about money (`governance::prices_http::read`).
    Priced,
}

/// What a one-meter route's last segment answers from, and its route template: the routes
/// whose answer one node reads from the meter's own series (and the governance state).
fn meter_route(segment: &str) -> Option<(MeterRoute, &'static str)> {
    use MeterRoute::{Compare, Export, Priced, Question};
    Some(match segment {
        "curve" => (Question(QueryKind::Curve), "/v1/meters/:id/curve"),
        "energy" => (Question(QueryKind::Energy), "/v1/meters/:id/energy"),
        "peak" => (Question(QueryKind::Peak), "/v1/meters/:id/peak"),
        "index" => (Question(QueryKind::Index), "/v1/meters/:id/index"),
        "summary" => (Question(QueryKind::Summary), "/v1/meters/:id/summary"),
        "export" => (Export, "/v1/meters/:id/export"),
        "compare" => (Compare, "/v1/meters/:id/compare"),
        "cost" => (Priced, "/v1/meters/:id/cost"),
        "estimate" => (Priced, "/v1/meters/:id/estimate"),
        "offers" => (Priced, "/v1/meters/:id/offers"),
        _ => return None,
    })
}

/// The raw (still percent-encoded) meter id and route of a `/v1/meters/{id}/{route}` path the
/// router serves: one segment each, as one node's router matches them.
fn meter_path(path: &str) -> Option<(&str, MeterRoute, &'static str)> {
    let (raw_id, segment) = path.strip_prefix("/v1/meters/")?.split_once('/')?;
    if raw_id.is_empty() {
        return None;
    }
    let (which, route) = meter_route(segment)?;
    Some((raw_id, which, route))
}

/// The first offer of a priced question that is priced against a spot price series (a dynamic
/// grid, named or as the meter's contract), as `gov` resolves it: that series is stored under
/// its own id, in a shard of its own, which the meter's reader may not hold. An offer `gov`
/// cannot resolve is left to the reader's answer (its 400).
fn dynamic_offer(gov: &Governance, priced: &Priced) -> Option<String> {
    let (meter, offers, first_day, end_day): (&str, Vec<&str>, i64, i64) = match priced {
        Priced::Cost {
            meter,
            offer,
            first_day,
            end_day,
            ..
        } => (meter, vec![offer.as_str()], *first_day, *end_day),
        Priced::Estimate {
            meter,
            offer,
            since_day,
            end_day,
            ..
        } => (meter, vec![offer.as_str()], *since_day, *end_day),
        Priced::Offers {
            meter,
            offers,
            first_day,
            end_day,
            ..
        } => (
            meter,
            offers.iter().map(String::as_str).collect(),
            *first_day,
            *end_day,
        ),
        Priced::FleetOffers {
            offers,
            first_day,
            end_day,
        } => (
            "",
            offers.iter().map(String::as_str).collect(),
            *first_day,
            *end_day,
        ),
        Priced::Prices { .. } => return None,
    };
    offers.into_iter().find_map(|offer| {
        let (grid, _, _) =
            prices_http::resolve_offer(gov, meter, offer, first_day, end_day).ok()?;
        grid.dynamic_area().is_some().then(|| offer.to_owned())
    })
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

    /// The shards a question asks for (`None`: every shard held), each with its reader; a
    /// shard this node does not hold is refused (409), never answered empty.
    fn held(&self, asked: &Option<Vec<u32>>) -> Result<Vec<&(u32, RangedReader)>, ApiError> {
        let Some(asked) = asked else {
            return Ok(self.shards.iter().collect());
        };
        asked
            .iter()
            .map(|s| {
                self.shards.iter().find(|(h, _)| h == s).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::Conflict,
                        format!("shard {s} is not held by this reader"),
                    )
                })
            })
            .collect()
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
        for (shard, reader) in self.held(&ask.shards)? {
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
        for (shard, reader) in self.held(&ask.shards)? {
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

    /// One meter's answer, as one node writes it, once the router has authorised it: the
    /// question is read again from the query string with the single node's parser (a
    /// question's, an export's, a comparison's or a priced route's), narrowed to the kinds the
    /// router allowed, and answered with the single node's code from this node's shard and
    /// governance state (calendars, prices, contracts, releases, consent and grants). A meter
    /// of a shard this node does not hold is refused (409), never answered empty; a route it
    /// does not know is refused (400), never answered as another.
    pub async fn one_meter(&self, ask: &MeterAsk) -> Result<Answer, ApiError> {
        question::check_meter_id(&ask.meter)?;
        let shard = shard_of(&ask.meter, self.shard_count);
        let Some((_, reader)) = self.shards.iter().find(|(s, _)| *s == shard) else {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "meter {:?} is of shard {shard}, which this reader does not hold",
                    ask.meter
                ),
            ));
        };
        let (which, route) = meter_route(&ask.route)
            .ok_or_else(|| ApiError::invalid(format!("no one-meter route {:?}", ask.route)))?;
        let kinds = if ask.kinds.is_empty() {
            Kinds::NONE
        } else {
            Kinds::parse_list(ask.kinds.split(',')).map_err(ApiError::invalid)?
        };
        let meters = [ask.meter.clone()];
        let query = ask.query.as_deref();
        match which {
            MeterRoute::Question(kind) => {
                let limits = Limits::default();
                let Asked {
                    mut question,
                    encoding,
                } = Asked::read_preferring(
                    kind,
                    Some(&ask.meter),
                    query,
                    ask.prefers_arrow,
                    &limits,
                )?;
                if !gov_http::draw_only_on(&mut question, kinds) {
                    return Err(question::forbidden());
                }
                self.gov
                    .calendars()
                    .resolve(&mut question)
                    .map_err(ApiError::invalid)?;
                // The meter's blocks in every segment, not only those meeting the question's
                // range: a question may read before `from` (a curve's first step), and a block
                // read but not fetched would be a checksum failure. On a cold cache this costs
                // about one ranged GET per segment holding the meter.
                let (bytes, content_type) = reader
                    .read(&meters, i64::MIN, i64::MAX, |src| {
                        body::answer_encoded(src, &question, encoding, &limits)
                    })
                    .await
                    .map_err(unavailable)??;
                Ok(answer_of(StatusCode::OK, content_type, bytes))
            }
            MeterRoute::Export => {
                let (format, channel) = export::read_query(query)?;
                // Buffered whole here (one node streams it): a meter's export is its own
                // history, megabytes at most.
                let bytes = reader
                    .read_store(&meters, |store| {
                        export::export(store, &self.gov, &ask.meter, format, channel)
                    })
                    .await
                    .map_err(unavailable)??;
                Ok(answer_of(
                    StatusCode::OK,
                    export::content_type(format),
                    bytes,
                ))
            }
            MeterRoute::Compare => {
                // The router asks no operator's comparison (it ranks the meter among the whole
                // fleet's curves, now); anyone else's reads the meter's own energy and the
                // released distributions, the same for every role.
                let principal = Principal {
                    role: Role::Consumer,
                    subject: Some(ask.meter.clone()),
                };
                let bytes = reader
                    .read_store(&meters, |store| {
                        gov_http::compare_answer(store, &self.gov, &principal, &ask.meter, query)
                    })
                    .await
                    .map_err(unavailable)??;
                Ok(answer_of(StatusCode::OK, "application/json", bytes))
            }
            MeterRoute::Priced => {
                let params = question::read_query(query)?;
                let (mut priced, _) =
                    prices_http::read(route, &Method::GET, Some(&ask.meter), &params, &self.gov)?
                        .ok_or_else(|| ApiError::internal("a priced route"))?;
                priced.draw_only_on(kinds.contains(DataKind::Curve));
                if let Some(offer) = dynamic_offer(&self.gov, &priced) {
                    return Err(spot_elsewhere(&offer));
                }
                let answer = reader
                    .read(&meters, i64::MIN, i64::MAX, |src| {
                        prices_http::meter_answer(src, &self.gov, priced)
                    })
                    .await
                    .map_err(unavailable)??;
                let (bytes, content_type) =
                    answer.ok_or_else(|| ApiError::internal("a meter's priced question"))?;
                Ok(answer_of(StatusCode::OK, content_type, bytes))
            }
        }
    }

    /// Every saving of a fleet comparison of two offers over this node's meters, priced with
    /// this node's grids, taxes and calendars (`prices::fleet_savings`, one node's code, shard
    /// by shard).
    pub async fn offers(&self, ask: &OffersAsk) -> Result<OffersPartial, ApiError> {
        let params = question::read_query(Some(&ask.query))?;
        let priced = prices_http::read(FLEET_OFFERS, &Method::GET, None, &params, &self.gov)?;
        let Some((
            Priced::FleetOffers {
                offers,
                first_day,
                end_day,
            },
            _,
        )) = priced
        else {
            return Err(ApiError::internal("a fleet comparison"));
        };
        let mut resolved = Vec::new();
        for o in &offers {
            let r = prices_http::resolve_offer(&self.gov, "", o, first_day, end_day)?;
            if r.0.dynamic_area().is_some() {
                return Err(spot_elsewhere(o));
            }
            resolved.push(r);
        }
        let taxes = self.gov.prices().taxes();
        let from = cost::paris_day_start(first_day)?;
        let to = cost::paris_day_start(end_day)?;
        let mut merged = OffersPartial::default();
        for (_, reader) in self.held(&ask.shards)? {
            let meters = reader
                .read(&[], from, to, prices::fleet_meters)
                .await
                .map_err(unavailable)?;
            if meters.is_empty() {
                continue;
            }
            let savings = reader
                .read(
                    &meters,
                    from - courbe::source::MAX_CURVE_STEP_S * 2,
                    to,
                    |src| prices::fleet_savings(src, &resolved, &taxes, first_day, end_day),
                )
                .await
                .map_err(unavailable)??;
            merged.merge(OffersPartial::of(savings));
        }
        Ok(merged)
    }

    /// The unsuppressed group sums of this node's meters for an aggregate question.
    pub async fn aggregates(&self, ask: &AggregatesAsk) -> Result<Partials, ApiError> {
        let params = Params::from_query(&ask.query)?;
        let groups = self.gov.groups();
        let rule = self.gov.config().aggregates;
        let listed = params.listed_meters(&groups);
        let (from, to) = (params.calendar.from_utc, params.calendar.to_utc);
        let mut merged: Option<Partials> = None;
        for (shard, reader) in self.held(&ask.shards)? {
            let meters = self.of_shard(*shard, &listed);
            let partials = reader
                .read(
                    &meters,
                    from - courbe::source::MAX_CURVE_STEP_S * 2,
                    to,
                    |src| Partials::load(src, &groups, &params, &rule),
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
            (Method::POST, Some("/meter")) => {
                match async { self.one_meter(&read_json(body)?).await }.await {
                    Ok(a) => a,
                    Err(e) => error_answer(&e),
                }
            }
            (Method::POST, Some("/partials/fleet-offers")) => {
                match async { self.offers(&read_json(body)?).await }.await {
                    Ok(p) => ok_json(&p),
                    Err(e) => error_answer(&e),
                }
            }
            (Method::POST, Some("/partials/aggregates")) => {
                let binary = request
                    .headers()
                    .get_all(header::ACCEPT)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .any(|t| t.split(';').next().map(str::trim) == Some(crate::wire::CONTENT_TYPE));
                match async { self.aggregates(&read_json(body)?).await }.await {
                    Ok(p) if binary => answer_of(
                        StatusCode::OK,
                        crate::wire::CONTENT_TYPE,
                        crate::wire::encode(&p),
                    ),
                    Ok(p) => ok_json(&p),
                    Err(e) => error_answer(&e),
                }
            }
            _ => error_answer(&not_found(&path)),
        }
    }
}

/// A read: `GET`, or `HEAD`, which one node answers as `GET` (hyper sends no body for it, the
/// headers and `Content-Length` are the `GET`'s).
fn reads(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The encoding a router accepts from an internal route, and how it reads a body by its
/// content type.
struct Wanted<'a, T> {
    accept: &'static str,
    decode: &'a Decode<T>,
}

/// Reads a body by its content type.
type Decode<T> = dyn Fn(Option<&str>, &[u8]) -> std::result::Result<T, String> + Sync;

impl<T: for<'de> Deserialize<'de>> Wanted<'static, T> {
    fn json() -> Self {
        Wanted {
            accept: "application/json",
            decode: &|_, bytes| serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        }
    }
}

/// One reader as the router knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderLink {
    pub url: String,
    pub shards: Vec<u32>,
}

/// What a reader is asked of a question's meter list for `shards` (in a cluster of
/// `shard_count` shards): `None` without a list (every meter), else the listed meters of those
/// shards.
fn listed(list: Option<&[String]>, shards: &[u32], shard_count: u32) -> Option<Vec<String>> {
    list.map(|list| {
        list.iter()
            .filter(|m| shards.contains(&shard_of(m, shard_count)))
            .cloned()
            .collect()
    })
}

/// `e` and its sources (a request's error names its cause only there: refused, timed out).
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Why a reader's answer is not used: the caller's own mistake the reader found (passed on,
/// never asked of another reader), or the reader's failure (no answer, a timeout, a 5xx, a
/// refused secret, a shard it does not hold, a body that does not parse: another reader of the
/// shard is asked).
enum Failure {
    Caller(ApiError),
    Down(String),
}

/// The readers of `shard` among `readers`, in the order a question asks them: rotated by
/// `turn` (one turn per question), so that questions go round the readers of a shard.
fn candidates(readers: &[ReaderLink], shard: u32, turn: usize) -> Vec<&ReaderLink> {
    let mut c: Vec<&ReaderLink> = readers
        .iter()
        .filter(|r| r.shards.contains(&shard))
        .collect();
    if !c.is_empty() {
        let k = turn % c.len();
        c.rotate_left(k);
    }
    c
}

/// The readers a question's shards were asked of and why each failed, per shard.
type Tried = std::collections::BTreeMap<u32, Vec<(String, String)>>;

/// The 503 of shards no reader answered: the shards, and every reader tried with its failure
/// (or that none is registered).
fn exhausted(shards: &[u32], tried: &Tried) -> ApiError {
    let list = shards
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut readers: Vec<&(String, String)> = Vec::new();
    for s in shards {
        for t in tried.get(s).into_iter().flatten() {
            if !readers.contains(&t) {
                readers.push(t);
            }
        }
    }
    let message = if readers.is_empty() {
        format!("shard {list} has no reader (none registered, or none that passed the checks)")
    } else {
        format!(
            "shard {list} did not answer: {}",
            readers
                .iter()
                .map(|(url, why)| format!("reader {url}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    ApiError::new(ErrorCode::Unavailable, message)
}

/// The readers a router uses now: a fixed list, or the registered ones (`registry`), replaced
/// whole when they change.
pub(crate) type View = Arc<std::sync::RwLock<Vec<ReaderLink>>>;

/// Fans fleet questions out to the readers of every shard and answers them as one node does.
pub struct Router {
    view: View,
    /// One per question: where the rotation over a shard's readers starts.
    turn: std::sync::atomic::AtomicUsize,
    /// The registered readers' follower (`discover`); stopped with the router.
    follower: Option<crate::registry::Follower>,
    shard_count: u32,
    secret: Secret,
    client: reqwest::Client,
    gov: Arc<Governance>,
    limits: Limits,
}

/// The router's client of the readers, each request bounded by `timeout`.
fn http_client(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| Error::Invalid(format!("an HTTP client: {e}")))
}

/// The shards the reader at `url` holds, asked with the secret; refused (the reason) unless it
/// answers 200 for a cluster of `shard_count` shards.
pub(crate) async fn check_reader(
    client: &reqwest::Client,
    secret: &Secret,
    url: &str,
    shard_count: u32,
) -> std::result::Result<Vec<u32>, String> {
    let response = client
        .get(format!("{url}{INTERNAL}/shards"))
        .header(header::AUTHORIZATION, secret.header())
        .send()
        .await
        .map_err(|e| with_sources(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("its shard list answered {status}"));
    }
    let holding: Holding = response.json().await.map_err(|e| with_sources(&e))?;
    if holding.shard_count != shard_count {
        return Err(format!(
            "it reads a cluster of {} shards, not {shard_count}",
            holding.shard_count
        ));
    }
    if let Some(s) = holding.shards.iter().find(|&&s| s >= shard_count) {
        return Err(format!("it holds shard {s}"));
    }
    Ok(holding.shards)
}

impl Router {
    /// The router of the readers at `urls`, a fixed list, for a cluster of `shard_count`
    /// shards (etcd's): asks each reader which shards it holds, and refuses a reader that does
    /// not answer, reads another shard count, or a list where a shard has no reader. Several
    /// readers of one shard are used in turn, each asked when another fails. `gov`
    /// authenticates and authorises the public requests and holds the group registry the
    /// readers must share.
    pub async fn connect(
        urls: &[String],
        shard_count: u32,
        secret: Secret,
        gov: Arc<Governance>,
        limits: Limits,
        timeout: Duration,
    ) -> Result<Router> {
        let client = http_client(timeout)?;
        let mut readers = Vec::new();
        for url in urls {
            let url = url.trim_end_matches('/').to_owned();
            let shards = check_reader(&client, &secret, &url, shard_count)
                .await
                .map_err(|why| Error::Invalid(format!("reader {url}: {why}")))?;
            readers.push(ReaderLink { url, shards });
        }
        if let Some(s) = (0..shard_count).find(|s| !readers.iter().any(|r| r.shards.contains(s))) {
            return Err(Error::Invalid(format!("shard {s} has no reader")));
        }
        Ok(Router {
            view: Arc::new(std::sync::RwLock::new(readers)),
            turn: Default::default(),
            follower: None,
            shard_count,
            secret,
            client,
            gov,
            limits,
        })
    }

    /// The router of the readers registered in etcd under `coord`'s prefix
    /// (`registry::register`), for a cluster of `shard_count` shards: it lists them now and
    /// every `refresh`, checks each new registration as `connect` checks a reader before
    /// using it, and drops a reader whose key is gone (it exited, or its lease lapsed). While
    /// etcd does not answer, the readers last seen are used. A shard without a reader makes
    /// the questions needing it 503, not the start.
    pub async fn discover(
        coord: crate::Coordinator,
        shard_count: u32,
        secret: Secret,
        gov: Arc<Governance>,
        limits: Limits,
        timeout: Duration,
        refresh: Duration,
    ) -> Result<Router> {
        let client = http_client(timeout)?;
        let view: View = Default::default();
        let check = http_client(timeout.min(Duration::from_secs(2)))?;
        let follower = crate::registry::Follower::start(
            coord,
            view.clone(),
            check,
            secret.clone(),
            shard_count,
            refresh,
        )
        .await?;
        Ok(Router {
            view,
            turn: Default::default(),
            follower: Some(follower),
            shard_count,
            secret,
            client,
            gov,
            limits,
        })
    }

    /// The readers used now.
    pub fn readers(&self) -> Vec<ReaderLink> {
        self.view.read().map(|v| v.clone()).unwrap_or_default()
    }

    /// The registrations seen and not used, with why (`discover`'s; none for a fixed list).
    pub fn refused(&self) -> Vec<(String, String)> {
        self.follower
            .as_ref()
            .map(crate::registry::Follower::refused)
            .unwrap_or_default()
    }

    /// Serves the public routes on `listener`; refused on a non-loopback address without a
    /// tokens file, as one node refuses it (every caller would be an operator).
    pub fn serve(self, listener: TcpListener) -> Result<Running> {
        Arc::new(self).serve_shared(listener)
    }

    /// `serve`, keeping a handle on the router (its `readers`, `refused`).
    pub fn serve_shared(self: Arc<Self>, listener: TcpListener) -> Result<Running> {
        let addr = listener.local_addr().map_err(|source| Error::Io {
            path: "listener".into(),
            source,
        })?;
        self.gov.check_listen(addr).map_err(Error::Invalid)?;
        Ok(Running {
            addr,
            task: serve(listener, self),
        })
    }

    /// The shards a question's meter list needs (every shard without a list).
    fn needed(&self, meters: Option<&[String]>) -> Vec<u32> {
        match meters {
            None => (0..self.shard_count).collect(),
            Some(list) => {
                let mut s: Vec<u32> = list.iter().map(|m| shard_of(m, self.shard_count)).collect();
                s.sort_unstable();
                s.dedup();
                s
            }
        }
    }

    /// Asks `reader` the internal route `path` with `body`, accepting `wanted`'s encoding.
    async fn ask<T>(
        &self,
        reader: &ReaderLink,
        path: &str,
        body: &impl Serialize,
        wanted: &Wanted<'_, T>,
    ) -> Result<T, Failure> {
        let down = |e: &dyn std::error::Error| Failure::Down(with_sources(e));
        let response = self
            .client
            .post(format!("{}{INTERNAL}{path}", reader.url))
            .header(header::AUTHORIZATION, self.secret.header())
            .header(header::ACCEPT, wanted.accept)
            .json(body)
            .send()
            .await
            .map_err(|e| down(&e))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await.map_err(|e| down(&e))?;
        if status.is_success() {
            return (wanted.decode)(content_type.as_deref(), &bytes).map_err(Failure::Down);
        }
        // The caller's mistake a reader found (an unknown meter) is the caller's answer.
        if status.is_client_error() && status != StatusCode::UNAUTHORIZED {
            if let Some(e) = parse_error(&bytes) {
                return Err(Failure::Caller(e));
            }
        }
        Err(Failure::Down(format!(
            "{status}: {}",
            String::from_utf8_lossy(&bytes)
        )))
    }

    /// The answers to `path` covering each of the `needed` shards once: each shard is asked of
    /// one of its readers (in turn, question by question; a reader already asked in this
    /// question takes the other shards it holds), with `body` for the shards it answers; the
    /// shards of a reader that fails are asked of their next readers, until one answers or
    /// none is left (503 naming the shards and every reader tried). A caller's mistake found
    /// by a reader is answered at once.
    async fn fan_out<T>(
        &self,
        path: &str,
        needed: Vec<u32>,
        body: impl Fn(&[u32]) -> serde_json::Value,
        wanted: &Wanted<'_, T>,
    ) -> Result<Vec<T>, ApiError> {
        let readers = self.readers();
        let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut pending = needed;
        let mut tried = Tried::new();
        let mut out = Vec::new();
        while !pending.is_empty() {
            let mut plan: Vec<(&ReaderLink, Vec<u32>)> = Vec::new();
            let mut none = Vec::new();
            for &s in &pending {
                let failed = tried.get(&s);
                let untried: Vec<&ReaderLink> = candidates(&readers, s, turn)
                    .into_iter()
                    .filter(|r| !failed.is_some_and(|f| f.iter().any(|(u, _)| *u == r.url)))
                    .collect();
                if let Some(i) = plan.iter().position(|(p, _)| untried.contains(p)) {
                    plan[i].1.push(s);
                } else if let Some(r) = untried.first() {
                    plan.push((r, vec![s]));
                } else {
                    none.push(s);
                }
            }
            if !none.is_empty() {
                return Err(exhausted(&none, &tried));
            }
            let asks = plan.iter().map(|(r, shards)| {
                let b = body(shards);
                async move { (*r, shards, self.ask::<T>(r, path, &b, wanted).await) }
            });
            pending.clear();
            for (r, shards, result) in futures::future::join_all(asks).await {
                match result {
                    Ok(t) => out.push(t),
                    Err(Failure::Caller(e)) => return Err(e),
                    Err(Failure::Down(why)) => {
                        tracing::warn!(reader = %r.url, ?shards, %why, "a reader failed");
                        for &s in shards {
                            tried
                                .entry(s)
                                .or_default()
                                .push((r.url.clone(), why.clone()));
                            pending.push(s);
                        }
                    }
                }
            }
            pending.sort_unstable();
        }
        Ok(out)
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
            .fan_out(
                "/partials/fleet-curve",
                self.needed(meters),
                |shards| {
                    serde_json::json!(CurveAsk {
                        channel: channel.as_str().to_owned(),
                        from_utc,
                        to_utc,
                        meters: listed(meters, shards, n),
                        shards: Some(shards.to_vec()),
                    })
                },
                &Wanted::json(),
            )
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
            .fan_out(
                "/partials/fleet-energy",
                self.needed(meters),
                |shards| {
                    serde_json::json!(EnergyAsk {
                        query: query.to_owned(),
                        meters: listed(meters, shards, n),
                        shards: Some(shards.to_vec()),
                    })
                },
                &Wanted::json(),
            )
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

    /// Every meter's saving of a fleet comparison (its query string), from every reader.
    pub async fn fleet_offers(&self, query: &str) -> Result<FleetSavings, ApiError> {
        let parts: Vec<OffersPartial> = self
            .fan_out(
                "/partials/fleet-offers",
                self.needed(None),
                |shards| {
                    serde_json::json!(OffersAsk {
                        query: query.to_owned(),
                        shards: Some(shards.to_vec()),
                    })
                },
                &Wanted::json(),
            )
            .await?;
        let mut merged = OffersPartial::default();
        for p in parts {
            merged.merge(p);
        }
        Ok(merged.into_savings())
    }

    /// The merged unsuppressed sums of an aggregate question (its query string).
    pub async fn partials(&self, query: &str) -> Result<Partials, ApiError> {
        // A reader's partials hold at most every group of the registry (no more than one per
        // member at each of the four levels), or one ad-hoc group.
        let max_groups = 4 * self.gov.group_members() + 1;
        let decode = move |content_type: Option<&str>, bytes: &[u8]| match content_type {
            Some(crate::wire::CONTENT_TYPE) => crate::wire::decode(bytes, max_groups),
            _ => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        };
        let all: Vec<Partials> = self
            .fan_out(
                "/partials/aggregates",
                self.needed(None),
                |shards| {
                    serde_json::json!(AggregatesAsk {
                        query: query.to_owned(),
                        shards: Some(shards.to_vec()),
                    })
                },
                &Wanted {
                    accept: crate::wire::CONTENT_TYPE,
                    decode: &decode,
                },
            )
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
        principal: Principal,
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

    /// `principal`'s refusal unless it may do `action`.
    fn authorize(&self, principal: &Principal, action: &Action<'_>) -> Result<(), ApiError> {
        match self.gov.authorize(principal, action) {
            Decision::Allow => Ok(()),
            Decision::Deny(why) => {
                tracing::info!(who = %principal.label(), why, "forbidden");
                Err(question::forbidden())
            }
        }
    }

    /// A one-meter question, in the order of one node's access guard: the token, the meter id,
    /// the query string, the question (or the route's parameters, and a priced question read
    /// whole), then access (and the kinds of data it may draw on); then the one reader holding
    /// the meter's shard answers it and its status, content type and bytes are passed
    /// through. A supplier's read is audited here, as one node audits it.
    async fn one_meter(
        &self,
        request: &Request<Bytes>,
        raw_id: &str,
        which: MeterRoute,
        route: &'static str,
    ) -> Result<Answer, ApiError> {
        let principal = self
            .gov
            .authenticate(gov_http::bearer(request.headers()))
            .ok_or_else(gov_http::token_required)?;
        let method = request.method();
        if !reads(method) {
            // One node's words (its router's fallback); an erasure is the writer's.
            return Err(ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("{method} is not allowed on {}", request.uri().path()),
            ));
        }
        // Decoded as one node's path extractor decodes it; the decoded id never travels in a
        // path (the internal route carries it in its body).
        let meter = percent_encoding::percent_decode_str(raw_id)
            .decode_utf8()
            .map_err(|_| ApiError::invalid("unreadable meter id: Invalid UTF-8 in `id`"))?
            .into_owned();
        question::check_meter_id(&meter)?;
        let query = request.uri().query();
        let params = question::read_query(query)?;
        let prefers_arrow = body::prefers_arrow(request.headers());
        let mut asked = None;
        let mut priced = None;
        let action = match which {
            MeterRoute::Question(kind) => {
                let a = asked.insert(Asked::read_preferring(
                    kind,
                    Some(&meter),
                    query,
                    prefers_arrow,
                    &self.limits,
                )?);
                routes::action_of(
                    route,
                    &routes::Asking {
                        method,
                        meter: &meter,
                        question: Some(&a.question),
                        params: &params,
                    },
                )
            }
            _ => {
                gov_http::check_parameters(route, method, &params)?;
                match prices_http::read(route, method, Some(&meter), &params, &self.gov)? {
                    Some((p, access)) => {
                        let action = gov_http::priced_action(&access, Some(&meter));
                        priced = Some((p, access));
                        Some(action)
                    }
                    None => routes::action_of(
                        route,
                        &routes::Asking {
                            method,
                            meter: &meter,
                            question: None,
                            params: &params,
                        },
                    ),
                }
            }
        }
        .ok_or_else(|| ApiError::internal("a one-meter read has an action"))?;
        let kinds = self
            .gov
            .authorize_kinds(&principal, &action)
            .map_err(|why| {
                tracing::info!(who = %principal.label(), route, why, "forbidden");
                question::forbidden()
            })?;
        // What a supplier's read is audited with: the range the answer reads.
        let range = match (&mut asked, &mut priced) {
            (Some(asked), _) => {
                if !gov_http::draw_only_on(&mut asked.question, kinds) {
                    tracing::info!(who = %principal.label(), route, "forbidden: no source left");
                    return Err(question::forbidden());
                }
                Some(asked.question.range_utc())
            }
            (None, Some((p, access))) => {
                p.draw_only_on(kinds.contains(DataKind::Curve));
                if let Some(offer) = dynamic_offer(&self.gov, p) {
                    return Err(spot_elsewhere(&offer));
                }
                match access {
                    Access::Meter(summary) => Some(summary.range_utc),
                    _ => None,
                }
            }
            (None, None) => None,
        };
        if which == MeterRoute::Compare && principal.role == Role::Operator {
            // What one node refuses of the question first, then what the router cannot answer.
            let params = Params::from_query(query.unwrap_or_default())?;
            aggregates::check_whole_paris_months(&params)?;
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "an operator's comparison ranks the meter among every meter of its groups, \
                 read now; the router does not gather the fleet's curves for it: ask a single \
                 node, or compare as the meter's consumer (released distributions)",
            ));
        }
        let shard = shard_of(&meter, self.shard_count);
        let ask = MeterAsk {
            route: route.rsplit('/').next().unwrap_or_default().to_owned(),
            meter: meter.clone(),
            query: query.map(str::to_owned),
            prefers_arrow,
            kinds: kinds.names(),
        };
        let answer = self.ask_meter(shard, &ask).await?;
        let audited = gov_http::audited_read(&principal, &action);
        if audited && answer.status().is_success() {
            let (from_utc, to_utc) =
                range.ok_or_else(|| ApiError::internal("a read without a range"))?;
            let record = AuditRecord {
                who: principal.label(),
                at_utc: courbe::governance::now_utc(),
                meter,
                from_utc,
                to_utc,
                what: route.to_owned(),
                kinds,
            };
            let gov = self.gov.clone();
            let logged = tokio::task::spawn_blocking(move || gov.audit(record)).await;
            if !matches!(logged, Ok(Ok(()))) {
                // An unrecorded read is not served.
                return Err(ApiError::internal(
                    "the audit trail cannot record this read",
                ));
            }
        }
        Ok(answer)
    }

    /// The answer of a reader of `shard` to a one-meter question, passed through: its status,
    /// content type and bytes, an answer or the caller's mistake (an unknown meter, a bad
    /// parameter). Anything else (no answer, a refused secret, a misdirected meter, a reader's
    /// own failure) asks the shard's next reader, in turn; when none is left, 503 naming the
    /// shard and every reader tried.
    async fn ask_meter(&self, shard: u32, ask: &MeterAsk) -> Result<Answer, ApiError> {
        let readers = self.readers();
        let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut tried = Tried::new();
        for reader in candidates(&readers, shard, turn) {
            match self.ask_meter_of(reader, ask).await {
                Ok(answer) => return Ok(answer),
                Err(why) => {
                    tracing::warn!(reader = %reader.url, shard, %why, "a reader failed");
                    tried
                        .entry(shard)
                        .or_default()
                        .push((reader.url.clone(), why));
                }
            }
        }
        Err(exhausted(&[shard], &tried))
    }

    /// `reader`'s answer to a one-meter question passed through, or why it is not used.
    async fn ask_meter_of(
        &self,
        reader: &ReaderLink,
        ask: &MeterAsk,
    ) -> std::result::Result<Answer, String> {
        let response = self
            .client
            .post(format!("{}{INTERNAL}/meter", reader.url))
            .header(header::AUTHORIZATION, self.secret.header())
            .json(ask)
            .send()
            .await
            .map_err(|e| with_sources(&e))?;
        let status = response.status();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let bytes = response.bytes().await.map_err(|e| with_sources(&e))?;
        let passed = status.is_success()
            || (status.is_client_error()
                && status != StatusCode::UNAUTHORIZED
                && status != StatusCode::CONFLICT);
        if !passed {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
        }
        let mut r = Response::new(Full::new(bytes));
        *r.status_mut() = status;
        if let Some(ct) = content_type {
            r.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        Ok(r)
    }

    /// Answers a public request in the order of one node's access guard: the token, the query
    /// string, the question (or the route's parameters), then access; then the answer, written
    /// with the server's encoders.
    async fn public(self: Arc<Self>, request: &Request<Bytes>) -> Result<Answer, ApiError> {
        let path = request.uri().path();
        let query = request.uri().query();
        let route = match path {
            "/healthz" if reads(request.method()) => {
                return Ok(answer_of(
                    StatusCode::OK,
                    "application/json",
                    br#"{"status":"ok"}"#.to_vec(),
                ))
            }
            "/v1/fleet/curve" | "/v1/fleet/energy" | "/v1/aggregates" | FLEET_OFFERS => path,
            _ => {
                return match meter_path(path) {
                    Some((raw_id, which, route)) => {
                        self.one_meter(request, raw_id, which, route).await
                    }
                    None => Err(not_found(path)),
                }
            }
        };
        let principal = self
            .gov
            .authenticate(gov_http::bearer(request.headers()))
            .ok_or_else(gov_http::token_required)?;
        if !reads(request.method()) {
            return Err(ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("{} is not allowed here", request.method()),
            ));
        }
        let params = question::read_query(query)?;
        let prefers_arrow = body::prefers_arrow(request.headers());
        match route {
            "/v1/fleet/curve" => {
                let asked = Asked::read_preferring(
                    QueryKind::FleetCurve,
                    None,
                    query,
                    prefers_arrow,
                    &self.limits,
                )?;
                self.authorize(&principal, &Action::ReadFleet)?;
                let Question::FleetCurve {
                    channel,
                    from_utc,
                    to_utc,
                    meters,
                } = asked.question
                else {
                    return Err(ApiError::internal("a fleet curve question"));
                };
                let points = self
                    .fleet_curve(channel, from_utc, to_utc, meters.as_deref())
                    .await?;
                let bytes =
                    stream::fleet_curve_encoded(channel, from_utc, to_utc, points, asked.encoding)?;
                Ok(answer_of(
                    StatusCode::OK,
                    body::content_type(asked.encoding),
                    bytes,
                ))
            }
            "/v1/fleet/energy" => {
                let asked = Asked::read_preferring(
                    QueryKind::FleetEnergy,
                    None,
                    query,
                    prefers_arrow,
                    &self.limits,
                )?;
                self.authorize(&principal, &Action::ReadFleet)?;
                let Question::FleetEnergy {
                    calendar, meters, ..
                } = asked.question
                else {
                    return Err(ApiError::internal("a fleet energy question"));
                };
                let all = self
                    .fleet_energy(query.unwrap_or_default(), &calendar, meters.as_deref())
                    .await?;
                let all: Vec<MeterEnergyJson> = all
                    .into_iter()
                    .map(|m| MeterEnergyJson {
                        meter: m.meter,
                        periods: m
                            .periods
                            .into_iter()
                            .map(|(start, end, wh)| PeriodEnergyJson::new(start, end, wh))
                            .collect(),
                    })
                    .collect();
                let bytes = stream::fleet_energy_encoded(
                    &calendar.tz_name,
                    &all,
                    asked.encoding,
                    stream::Slicing::SERVER,
                )?;
                Ok(answer_of(
                    StatusCode::OK,
                    body::content_type(asked.encoding),
                    bytes,
                ))
            }
            FLEET_OFFERS => {
                gov_http::check_parameters(route, request.method(), &params)?;
                let (priced, access) =
                    prices_http::read(route, request.method(), None, &params, &self.gov)?
                        .ok_or_else(|| ApiError::internal("a priced route"))?;
                self.authorize(&principal, &gov_http::priced_action(&access, None))?;
                if let Some(offer) = dynamic_offer(&self.gov, &priced) {
                    return Err(spot_elsewhere(&offer));
                }
                let Priced::FleetOffers {
                    offers,
                    first_day,
                    end_day,
                } = priced
                else {
                    return Err(ApiError::internal("a fleet comparison"));
                };
                let savings = self.fleet_offers(query.unwrap_or_default()).await?;
                let body = prices_http::fleet_offers_body(
                    &offers,
                    first_day,
                    end_day,
                    savings,
                    principal.role == Role::Operator,
                );
                let bytes = serde_json::to_vec(&body)
                    .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))?;
                Ok(answer_of(StatusCode::OK, "application/json", bytes))
            }
            _ => {
                gov_http::check_parameters(route, &Method::GET, &params)?;
                let param = |name: &str| {
                    params
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str())
                };
                let action = Action::ReadAggregates {
                    // An unknown level is the answer's 400; for access it is the strictest.
                    level: gov_http::parse_level(param("level")).unwrap_or(Level::Building),
                    predefined: param("meters").is_none(),
                };
                self.authorize(&principal, &action)?;
                let answer = self
                    .aggregates(principal, query.unwrap_or_default())
                    .await?;
                let bytes = serde_json::to_vec(&AggregatesBody::from(answer))
                    .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))?;
                Ok(answer_of(StatusCode::OK, "application/json", bytes))
            }
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

/// The refusal of a priced question whose offer is priced against spot prices: the spot
/// series is in a shard of its own, which the meter's reader may not hold (503, not the
/// caller's mistake: one node answers it).
fn spot_elsewhere(offer: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!(
            "offer {offer:?} is priced against a spot price series, which the router does not \
             bring to the meter's reader: ask a single node"
        ),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_one_meter_route_is_the_servers_declared_route_asking_the_same_question() {
        for segment in [
            "curve", "energy", "peak", "index", "summary", "export", "compare", "cost", "estimate",
            "offers",
        ] {
            let (which, template) = meter_route(segment).expect("served");
            let declared = routes::find(template).expect("declared by the server");
            assert_eq!(template.rsplit('/').next(), Some(segment));
            match which {
                MeterRoute::Question(kind) => {
                    assert_eq!(declared.question, Some(kind), "{template}")
                }
                MeterRoute::Priced => {
                    assert!(
                        matches!(declared.guard, routes::Guard::Priced),
                        "{template}"
                    );
                    assert_eq!(declared.question, None, "{template}");
                }
                MeterRoute::Export | MeterRoute::Compare => {
                    assert!(
                        matches!(declared.guard, routes::Guard::Action(_)),
                        "{template}"
                    );
                    assert_eq!(declared.question, None, "{template}");
                }
            }
            assert_eq!(
                meter_path(&format!("/v1/meters/m%2F1/{segment}")),
                Some(("m%2F1", which, template))
            );
        }
        for path in [
            "/v1/meters//curve",
            "/v1/meters/m/curve/",
            "/v1/meters/m/live",
            "/v1/meters/m/consent",
            "/v1/meters/m/grants",
            "/v1/meters/m/contracts",
            "/v1/meters/m/export/",
            "/v1/meters/m",
            "/v1/meters/a/b/curve",
            "/v1/fleet/offers",
        ] {
            assert_eq!(meter_path(path), None, "{path}");
        }
    }
}

//! The governance endpoints under `/v1` and the access-control middleware of every `/v1` route.
//!
//! [`attach`] adds both to the main router. The middleware ([`guard`]) authenticates the bearer
//! token (401 without a known one), reads the whole request (400 for anything it cannot read:
//! a repeated parameter, a parameter the route does not read, a bad date, zone or meter id),
//! maps it to an [`Action`] and asks [`auth::authorize_kinds`] (403, the same for a meter that
//! exists or not), hands the question it read to the handler (which does not read the query
//! string again) with the sources the kinds allow (a peak's `max_power` or curve), then records
//! every successful read of a meter by a supplier (curve, energy, peak, index, year summary,
//! consent) in the audit trail, with the range it read and the kinds it drew on, before the
//! answer leaves.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Extension, Json, RequestExt, Router};
use serde::{Deserialize, Serialize};

use super::audit::AuditRecord;
use super::auth::{Action, Figure, Level, Principal, Role, Summary};
use super::bodies::{AggregatesBody, CompareBody, ReleaseSummaryJson};
use super::consent::{Collection, ConsentEvent};
use super::grants::{DataKind, Grant, Kinds};
use super::prices_http::{self, Access, Priced};
use super::{aggregates, export, groups, Governance};
use crate::engine::Store;
use crate::http::error::{ApiError, ErrorCode, HttpError};
use crate::http::{blocking, dataconnect, routes};
use crate::question::{
    self, format_ts, parse_instant, parse_tz, Asked, Limits, PeakSources, QueryKind, Question,
};

/// Largest body of a groups upload.
const MAX_GROUPS_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Largest body of a consent or grant request: a small JSON document.
const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
struct GovState {
    store: Arc<Store>,
    gov: Arc<Governance>,
    /// Time for a whole request body to arrive (the server's `body_read_timeout`).
    body_timeout: Duration,
}

/// What the guard needs: the registries, and the bounds questions are read with.
#[derive(Clone)]
struct GuardState {
    gov: Arc<Governance>,
    limits: Arc<Limits>,
}

/// Adds the governance routes and the access-control middleware to `router`: every route
/// already in it, and the new ones, go through [`guard`], which reads questions with `limits`.
/// A request body must arrive whole within `body_timeout`, as an ingest body.
pub fn attach<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    store: Arc<Store>,
    gov: Arc<Governance>,
    limits: Limits,
    body_timeout: Duration,
) -> Router<S> {
    let guard_state = GuardState {
        gov: gov.clone(),
        limits: Arc::new(limits),
    };
    let state = GovState {
        store: store.clone(),
        gov: gov.clone(),
        body_timeout,
    };
    let routes: Router<S> = Router::new()
        .route(
            crate::http::routes::declared("/v1/meters/:id/consent"),
            get(consent_get).post(consent_post),
        )
        .route(
            crate::http::routes::declared("/v1/meters/:id/grants"),
            get(grants_get).post(grants_post),
        )
        .route(
            crate::http::routes::declared("/v1/meters/:id/grants/:grant"),
            delete(grant_delete),
        )
        .route(
            crate::http::routes::declared("/v1/meters/:id/export"),
            get(export_get),
        )
        .route(
            crate::http::routes::declared("/v1/meters/:id/compare"),
            get(compare_get),
        )
        .route(
            crate::http::routes::declared("/v1/aggregates"),
            get(aggregates_get),
        )
        .route(
            crate::http::routes::declared("/v1/aggregates/releases"),
            get(releases_get).post(releases_post),
        )
        .route(crate::http::routes::declared("/v1/audit"), get(audit_get))
        .route(
            crate::http::routes::declared("/v1/groups"),
            put(groups_put).get(groups_get),
        )
        .with_state(state);
    router
        .merge(routes)
        .merge(super::calendars_http::routes(gov.clone(), body_timeout))
        .merge(super::prices_http::routes(store, gov.clone(), body_timeout))
        .layer(middleware::from_fn_with_state(guard_state, guard))
}

/// The refusal of a request without a known bearer token (401, with `WWW-Authenticate: Bearer`).
pub fn token_required() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "a valid bearer token is required (Authorization: Bearer TOKEN)",
    )
}

fn unauthorized() -> Response {
    let mut response = HttpError(token_required()).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Whether a successful read by `principal` of `action` leaves an audit record: a supplier's
/// reads of a meter's data (curve, summaries, index, consent). One node's guard and a cluster
/// router decide it here, so that both audit the same reads.
pub fn audited_read(principal: &Principal, action: &Action) -> bool {
    principal.role == Role::Supplier
        && matches!(
            action,
            Action::ReadCurve { .. }
                | Action::ReadMeterSummary { .. }
                | Action::ReadIndex { .. }
                | Action::ReadYearSummary { .. }
                | Action::ReadConsent { .. }
        )
}

/// The bearer token of a request; none when the request carries two `Authorization` headers,
/// since a proxy in front may read the other one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
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

pub fn parse_level(text: Option<&str>) -> Option<Level> {
    match text.unwrap_or("commune") {
        "all" => Some(Level::All),
        "commune" => Some(Level::Commune),
        "iris" => Some(Level::Iris),
        "building" => Some(Level::Building),
        _ => None,
    }
}

/// The question a query route asks, for the methods that ask it ([`routes::ROUTES`]).
fn query_kind(route: &str, method: &Method) -> Option<QueryKind> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    routes::find(route)?.question
}

/// The parameters a request of `route` that asks no question reads (a question's are
/// [`QueryKind::parameters`]); `None` for a route whose handler reads its own.
fn route_parameters(route: &str, method: &Method) -> Option<&'static [&'static str]> {
    routes::find(route)?.parameters_of(method)
}

/// Refuses a parameter a request of `route` does not read, naming it, as a question's reader
/// does.
pub fn check_parameters(
    route: &str,
    method: &Method,
    params: &[(String, String)],
) -> Result<(), ApiError> {
    let Some(allowed) = route_parameters(route, method) else {
        return Ok(());
    };
    match params
        .iter()
        .find(|(name, _)| !allowed.contains(&name.as_str()))
    {
        None => Ok(()),
        Some((name, _)) => Err(ApiError::invalid(format!(
            "unknown parameter `{name}` (this request reads {})",
            if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            }
        ))),
    }
}

/// What access control needs of an energy or peak question.
pub(crate) fn summary_of(question: &Question) -> Option<Summary> {
    let (figure, calendar, tariff) = match question {
        // The meter's own contracts give its real registers; a chosen option or window does not.
        Question::Energy {
            calendar, tariff, ..
        } => (
            Figure::Energy,
            calendar,
            tariff.as_ref().is_some_and(|t| t.chosen()),
        ),
        Question::Peak { calendar, .. } => (Figure::Peak, calendar, false),
        _ => return None,
    };
    Some(Summary {
        figure,
        range_utc: question.range_utc(),
        period: calendar.calendar.period,
        tz_paris: calendar.tz_name == question::DEFAULT_TZ,
        whole_local_days: calendar.whole_local_days(),
        tariff,
    })
}

/// What the request does, from its route template, method and what the guard read of it (the
/// question of a query route, the parameters of any other), as [`routes::ROUTES`] declares it.
/// `None`: a method the route does not serve (its handler answers 405), or a route that is not
/// declared (the guard answers 404).
fn action_of<'a>(
    route: &str,
    method: &Method,
    meter: Option<&'a str>,
    asked: Option<&Asked>,
    params: &[(String, String)],
) -> Option<Action<'a>> {
    let asking = routes::Asking {
        method,
        meter: meter.unwrap_or(""),
        question: asked.map(|a| &a.question),
        params,
    };
    routes::action_of(route, &asking)
}

/// The action of a pricing route: a meter's cost is an energy question over the same days.
pub fn priced_action<'a>(access: &Access, meter: Option<&'a str>) -> Action<'a> {
    match access {
        Access::Meter(summary) => Action::ReadMeterSummary {
            meter: meter.unwrap_or(""),
            summary: *summary,
        },
        Access::ReadPrices => Action::ReadPrices,
        Access::ManagePrices => Action::ManagePrices,
        Access::FleetOffers => Action::ReadFleetOffers,
    }
}

/// Narrows what `question` may draw on to `kinds` (what [`auth::authorize_kinds`] allowed).
/// A peak from `max_power` is max_power data, from the curve curve data: the answer draws only
/// on the sources the rule allowed and the question itself asked. A year's statement always
/// has max_power (the rule asks it); its monthly peaks come from the curve only with curve
/// rights. `false` when no source is left to answer from. The router of a cluster narrows a
/// one-meter question with it as this guard does.
pub fn draw_only_on(question: &mut Question, kinds: Kinds) -> bool {
    match question {
        Question::Peak { sources, .. } => {
            *sources = PeakSources {
                max_power: sources.max_power && kinds.contains(DataKind::MaxPower),
                curve: sources.curve && kinds.contains(DataKind::Curve),
            };
            sources.max_power || sources.curve
        }
        Question::Summary { max_power_only, .. } => {
            *max_power_only |= !kinds.contains(DataKind::Curve);
            true
        }
        _ => true,
    }
}

/// The meter id of a `/v1/meters/{id}/...` route, percent-decoded as its handler reads it, and
/// checked. `Ok(None)` for a route without one.
async fn path_meter(route: &str, request: &mut Request) -> Result<Option<String>, ApiError> {
    if !route.starts_with("/v1/meters/:id") {
        return Ok(None);
    }
    let Path(params) = request
        .extract_parts::<Path<std::collections::HashMap<String, String>>>()
        .await
        .map_err(|e| ApiError::invalid(format!("unreadable meter id: {}", e.body_text())))?;
    let id = params
        .get("id")
        .cloned()
        .ok_or_else(|| ApiError::invalid("missing meter id"))?;
    check_meter(&id)?;
    Ok(Some(id))
}

/// Access control of every `/v1` request and every Data Connect metering request; other paths
/// pass.
async fn guard(
    State(state): State<GuardState>,
    matched: Option<MatchedPath>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if (!path.starts_with("/v1/") && !dataconnect::is_metering_path(&path))
        || matched
            .as_ref()
            .is_some_and(|m| m.as_str() == routes::PUBLIC)
    {
        return next.run(request).await;
    }
    let gov = state.gov.clone();
    let Some(principal) = gov.authenticate(bearer(request.headers())) else {
        return unauthorized();
    };
    let Some(route) = matched.map(|m| m.as_str().to_string()) else {
        // No such route: the 404 says nothing about any meter.
        return next.run(request).await;
    };
    if routes::find(&route).is_none() {
        // Served but not declared: never an action of its own (`routes::declared` keeps the
        // router from serving one).
        return HttpError(ApiError::new(
            ErrorCode::NotFound,
            format!("no such resource: {path}"),
        ))
        .into_response();
    }
    let method = request.method().clone();
    // Everything access depends on is read here, once; what cannot be read is refused.
    let meter = match path_meter(&route, &mut request).await {
        Ok(meter) => meter,
        Err(e) => return HttpError(e).into_response(),
    };
    let query = request.uri().query().map(str::to_string);
    let params = match question::read_query(query.as_deref()) {
        Ok(params) => params,
        Err(e) => return HttpError(e).into_response(),
    };
    let kind = query_kind(&route, &method);
    // A Data Connect route asks a native question, with its own parameters.
    let metering =
        dataconnect::endpoint(&route).filter(|_| method == Method::GET || method == Method::HEAD);
    if kind.is_none() && metering.is_none() {
        if let Err(e) = check_parameters(&route, &method, &params) {
            return HttpError(e).into_response();
        }
    }
    let read = match (metering, kind) {
        (Some(endpoint), _) => dataconnect::read(endpoint, query.as_deref()).map(Some),
        (None, Some(kind)) => Asked::read_preferring(
            kind,
            meter.as_deref(),
            query.as_deref(),
            crate::http::body::prefers_arrow(request.headers()),
            &state.limits,
        )
        .map(Some),
        (None, None) => Ok(None),
    };
    let mut asked = match read {
        Ok(asked) => asked,
        Err(e) => return HttpError(e).into_response(),
    };
    let meter = match (meter, &asked) {
        (None, Some(a)) if metering.is_some() => a.question.meter().map(str::to_string),
        (meter, _) => meter,
    };
    // A question about money is read here too, whole, before access is decided.
    let priced = match prices_http::read(&route, &method, meter.as_deref(), &params, &gov) {
        Ok(priced) => priced,
        Err(e) => return HttpError(e).into_response(),
    };
    let action = match &priced {
        Some((_, access)) => Some(priced_action(access, meter.as_deref())),
        None => action_of(&route, &method, meter.as_deref(), asked.as_ref(), &params),
    };
    let Some(action) = action else {
        return next.run(request).await;
    };
    let kinds = match gov.authorize_kinds(&principal, &action) {
        Ok(kinds) => kinds,
        Err(why) => {
            tracing::info!(who = %principal.label(), route = %route, why, "forbidden");
            return HttpError(question::forbidden()).into_response();
        }
    };
    let mut priced = priced;
    if let Some((priced, _)) = priced.as_mut() {
        priced.draw_only_on(kinds.contains(DataKind::Curve));
    }
    if let Some(asked) = asked.as_mut() {
        if !draw_only_on(&mut asked.question, kinds) {
            tracing::info!(who = %principal.label(), route = %route, "forbidden: no source left");
            return HttpError(question::forbidden()).into_response();
        }
    }
    let audited = audited_read(&principal, &action);
    // A consent answer is the meter's whole history: a read without bounds.
    let range = match action {
        Action::ReadConsent { .. } => Some((i64::MIN, i64::MAX)),
        // The live view asks no question: its range is the instant of subscription.
        Action::ReadCurve { range_utc, .. } if asked.is_none() => Some(range_utc),
        Action::ReadMeterSummary { summary, .. } if priced.is_some() => Some(summary.range_utc),
        _ => asked.as_ref().map(|a| a.question.range_utc()),
    };
    request.extensions_mut().insert(principal.clone());
    if let Some((priced, _)) = priced {
        request.extensions_mut().insert::<Priced>(priced);
    }
    if let Some(asked) = asked {
        request.extensions_mut().insert(asked);
    }
    let response = next.run(request).await;
    if audited && response.status().is_success() {
        let Some((from_utc, to_utc)) = range else {
            return HttpError(ApiError::internal("a read without a range")).into_response();
        };
        let record = AuditRecord {
            who: principal.label(),
            at_utc: super::now_utc(),
            meter: meter.unwrap_or_default(),
            from_utc,
            to_utc,
            what: route,
            kinds,
        };
        let logged = tokio::task::spawn_blocking(move || gov.audit(record)).await;
        if !matches!(logged, Ok(Ok(()))) {
            // An unrecorded read is not served.
            return HttpError(ApiError::internal(
                "the audit trail cannot record this read",
            ))
            .into_response();
        }
    }
    response
}

fn check_meter(id: &str) -> Result<(), ApiError> {
    crate::question::check_meter_id(id)
}

/// 404 (`not_found`) for a meter Courbe holds nothing about: no data, consent or grant. Only
/// reached once access is granted, so a refusal never depends on it.
async fn ensure_held(s: &GovState, meter: &str) -> Result<(), ApiError> {
    let (store, gov, id) = (s.store.clone(), s.gov.clone(), meter.to_string());
    if blocking(move || Ok(export::holds(&store, &gov, &id))).await? {
        Ok(())
    } else {
        Err(not_held(meter))
    }
}

fn not_held(meter: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("nothing is held about meter {meter:?}"),
    )
}

/// Reads a request body whole: 413 past `max` bytes, 408 (and the connection closed) when it
/// has not all arrived within `timeout`, so a stalled client holds neither a handler nor its
/// bytes for long.
pub(super) async fn read_body(
    body: Body,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, max)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let e = e.into_inner();
            if e.is::<http_body_util::LengthLimitError>() {
                Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the body is over the limit of {max} bytes"),
                ))
            } else {
                Err(ApiError::invalid(format!("cannot read the body: {e}")))
            }
        }
        Err(_) => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!("the body did not arrive within {} s", timeout.as_secs_f64()),
        )),
    }
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorCode::MalformedDocument,
            format!("unreadable JSON body: {e}"),
        )
    })
}

fn instant(text: Option<&str>, param: &str) -> Result<Option<i64>, ApiError> {
    let (tz, _) = parse_tz(None)?;
    text.map(|t| parse_instant(t, &tz, param)).transpose()
}

/// A principal's name in the registries.
fn by(principal: &Option<Extension<Principal>>) -> String {
    principal
        .as_ref()
        .map_or_else(|| "unknown".to_string(), |Extension(p)| p.label())
}

// ---- consent ----

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConsentEventJson {
    from: String,
    #[schema(value_type = String, pattern = "^(granted|revoked)$")]
    collection: Collection,
    #[serde(skip_serializing_if = "Option::is_none")]
    step_min: Option<u16>,
    erase: bool,
    recorded: String,
    by: String,
}

impl From<&ConsentEvent> for ConsentEventJson {
    fn from(e: &ConsentEvent) -> Self {
        ConsentEventJson {
            from: if e.from_utc == i64::MIN {
                "-infinity".into()
            } else {
                format_ts(e.from_utc)
            },
            collection: e.collection,
            step_min: e.step_min,
            erase: e.erase,
            recorded: format_ts(e.recorded_utc),
            by: e.by.clone(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConsentBody {
    meter: String,
    /// `granted`, `revoked`, or `not_recorded` (collected under the default policy).
    collection: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    step_min: Option<u16>,
    history: Vec<ConsentEventJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    points_erased: Option<u64>,
}

fn consent_body(gov: &Governance, meter: &str, points_erased: Option<u64>) -> ConsentBody {
    let history = gov.consent_history(meter);
    let current = gov.consent_in_force(meter, super::now_utc());
    ConsentBody {
        meter: meter.to_string(),
        collection: match current.as_ref().map(|e| e.collection) {
            None => "not_recorded",
            Some(Collection::Granted) => "granted",
            Some(Collection::Revoked) => "revoked",
        },
        step_min: current.as_ref().and_then(|e| e.step_min),
        history: history.iter().map(ConsentEventJson::from).collect(),
        points_erased,
    }
}

async fn consent_get(
    State(s): State<GovState>,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    check_meter(&id)?;
    ensure_held(&s, &id).await?;
    Ok(Json(consent_body(&s.gov, &id, None)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsentRequest {
    /// `granted` or `revoked`.
    #[schema(value_type = String, pattern = "^(granted|revoked)$")]
    collection: Collection,
    /// RFC 3339 or a local date (Europe/Paris); default now. `"-infinity"` for a revocation
    /// with erasure of everything collected.
    from: Option<String>,
    step_min: Option<u16>,
    #[serde(default)]
    erase: bool,
}

async fn consent_post(
    State(s): State<GovState>,
    Path(id): Path<String>,
    principal: Option<Extension<Principal>>,
    body: Body,
) -> Result<Response, HttpError> {
    check_meter(&id)?;
    let body = read_body(body, MAX_JSON_BODY_BYTES, s.body_timeout).await?;
    let req: ConsentRequest = json_body(&body)?;
    if req.erase && req.collection != Collection::Revoked {
        return Err(ApiError::invalid("`erase` comes only with a revocation").into());
    }
    if let Some(step) = req.step_min {
        if !matches!(step, 5 | 10 | 15 | 30 | 60) {
            return Err(ApiError::invalid("`step_min` is 5, 10, 15, 30 or 60").into());
        }
    }
    let from_utc = match req.from.as_deref() {
        Some("-infinity") => i64::MIN,
        other => instant(other, "from")?.unwrap_or_else(super::now_utc),
    };
    let event = ConsentEvent {
        meter: id.clone(),
        from_utc,
        collection: req.collection,
        step_min: req.step_min,
        erase: req.erase,
        recorded_utc: super::now_utc(),
        by: by(&principal),
    };
    let erase = req.erase;
    let body = blocking(move || {
        let erased = s.gov.record_consent(&s.store, event)?;
        Ok(consent_body(&s.gov, &id, erase.then_some(erased)))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

// ---- grants ----

/// A grant as the API and `courbe grant` write it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GrantJson {
    id: u64,
    meter: String,
    supplier: String,
    from: String,
    to: String,
    /// What it allows: `daily`, `max_power`, `curve`.
    #[schema(value_type = Vec<String>)]
    kinds: Kinds,
    created: String,
    by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked: Option<String>,
    in_force: bool,
}

impl From<&Grant> for GrantJson {
    fn from(g: &Grant) -> Self {
        GrantJson {
            id: g.id,
            meter: g.meter.clone(),
            supplier: g.supplier.clone(),
            from: format_ts(g.from_utc),
            to: format_ts(g.to_utc),
            kinds: g.kinds,
            created: format_ts(g.created_utc),
            by: g.by.clone(),
            revoked: g.revoked_utc.map(format_ts),
            in_force: g.in_force(super::now_utc()),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GrantsBody {
    meter: String,
    grants: Vec<GrantJson>,
}

async fn grants_get(
    State(s): State<GovState>,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    check_meter(&id)?;
    ensure_held(&s, &id).await?;
    let grants = s.gov.grants_of(&id).iter().map(GrantJson::from).collect();
    Ok(Json(GrantsBody { meter: id, grants }).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantRequest {
    supplier: String,
    from: String,
    to: String,
    /// Required: the kinds the consumer chose (D.224-27 3°), each once.
    kinds: Option<Vec<String>>,
}

async fn grants_post(
    State(s): State<GovState>,
    Path(id): Path<String>,
    principal: Option<Extension<Principal>>,
    body: Body,
) -> Result<Response, HttpError> {
    check_meter(&id)?;
    let body = read_body(body, MAX_JSON_BODY_BYTES, s.body_timeout).await?;
    let req: GrantRequest = json_body(&body)?;
    let kinds = grant_kinds(req.kinds.as_deref())?;
    let from = instant(Some(&req.from), "from")?.unwrap_or_default();
    let to = instant(Some(&req.to), "to")?.unwrap_or_default();
    let by = by(&principal);
    let grant = blocking(move || {
        Ok(s.gov
            .create_grant_of(&id, &req.supplier, from, to, kinds, &by)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(GrantJson::from(&grant))).into_response())
}

/// The `kinds` of a grant request: required, not empty, each kind known and named once.
fn grant_kinds(names: Option<&[String]>) -> Result<Kinds, ApiError> {
    let names = names.ok_or_else(|| {
        ApiError::invalid(
            "missing `kinds`: the kinds of data the grant allows, a list of daily, max_power, \
             curve",
        )
    })?;
    Kinds::parse_list(names.iter().map(String::as_str)).map_err(ApiError::invalid)
}

async fn grant_delete(
    State(s): State<GovState>,
    Path((id, grant)): Path<(String, String)>,
    principal: Option<Extension<Principal>>,
) -> Result<Response, HttpError> {
    check_meter(&id)?;
    let unknown = || {
        ApiError::new(
            ErrorCode::NotFound,
            format!("no grant {grant} on this meter"),
        )
    };
    let grant_id: u64 = grant.parse().map_err(|_| unknown())?;
    let by = by(&principal);
    let revoked = blocking(move || Ok(s.gov.revoke_grant(&id, grant_id, &by)?)).await?;
    match revoked {
        Some(g) => Ok(Json(GrantJson::from(&g)).into_response()),
        None => Err(unknown().into()),
    }
}

// ---- export ----

async fn export_get(
    State(s): State<GovState>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> Result<Response, HttpError> {
    check_meter(&id)?;
    let (format, channel) = export::read_query(uri.query())?;
    let (store, gov, meter) = (s.store.clone(), s.gov.clone(), id.clone());
    if !blocking(move || Ok(export::holds(&store, &gov, &meter))).await? {
        return Err(ApiError::new(ErrorCode::UnknownMeter, format!("unknown meter {id:?}")).into());
    }
    // Streamed: a worker writes chunks into a small channel as the client reads them.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let written = export::write_export(&s.store, &s.gov, &id, format, channel, &mut |c| {
            tx.blocking_send(Ok(Bytes::from(c))).is_ok()
        });
        if let Err(e) = written {
            // The status is sent already: the connection is cut short instead.
            tracing::error!(message = %e.message, "export failed");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.message)));
        }
    });
    Ok((
        [(header::CONTENT_TYPE, export::content_type(format))],
        axum::body::Body::from_stream(ChunkStream(rx)),
    )
        .into_response())
}

/// The receiving end of an export as a body stream.
struct ChunkStream(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for ChunkStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

// ---- audit ----

#[derive(Deserialize)]
struct AuditParams {
    meter: Option<String>,
    who: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AuditJson {
    who: String,
    at: String,
    meter: String,
    from: Option<String>,
    to: Option<String>,
    what: String,
    #[schema(value_type = Vec<String>)]
    kinds: Kinds,
}

async fn audit_get(
    State(s): State<GovState>,
    Query(p): Query<AuditParams>,
) -> Result<Response, HttpError> {
    let from = instant(p.from.as_deref(), "from")?.unwrap_or(i64::MIN);
    let to = instant(p.to.as_deref(), "to")?.unwrap_or(i64::MAX);
    let records = s.gov.audit_records(|r| {
        p.meter.as_deref().is_none_or(|m| r.meter == m)
            && p.who.as_deref().is_none_or(|w| r.who == w)
            && (from..to).contains(&r.at_utc)
    });
    let bound = |ts: i64| (ts != i64::MIN && ts != i64::MAX).then(|| format_ts(ts));
    let records: Vec<AuditJson> = records
        .into_iter()
        .map(|r| AuditJson {
            who: r.who,
            at: format_ts(r.at_utc),
            meter: r.meter,
            from: bound(r.from_utc),
            to: bound(r.to_utc),
            what: r.what,
            kinds: r.kinds,
        })
        .collect();
    Ok(Json(serde_json::json!({ "records": records })).into_response())
}

// ---- groups and aggregates ----

async fn groups_put(State(s): State<GovState>, body: Body) -> Result<Response, HttpError> {
    let body = read_body(body, MAX_GROUPS_BODY_BYTES, s.body_timeout).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(ErrorCode::MalformedDocument, "the body is not UTF-8"))?;
    let memberships =
        groups::parse_csv(text).map_err(|m| ApiError::new(ErrorCode::MalformedDocument, m))?;
    let loaded = blocking(move || Ok(s.gov.load_groups(memberships)?)).await?;
    Ok(Json(serde_json::json!({ "loaded": loaded })).into_response())
}

async fn groups_get(State(s): State<GovState>) -> Result<Response, HttpError> {
    let groups = s.gov.groups();
    let levels = [
        ("commune", Level::Commune),
        ("iris", Level::Iris),
        ("building", Level::Building),
    ];
    let mut out = serde_json::Map::new();
    for (name, level) in levels {
        let sizes: serde_json::Map<String, serde_json::Value> = groups
            .groups(level)
            .into_iter()
            .map(|(code, members)| (code, members.len().into()))
            .collect();
        out.insert(name.to_string(), sizes.into());
    }
    Ok(Json(serde_json::json!({ "meters": groups.len(), "groups": out })).into_response())
}

async fn aggregates_get(
    State(s): State<GovState>,
    Extension(principal): Extension<Principal>,
    uri: axum::http::Uri,
) -> Result<Response, HttpError> {
    let params = aggregates::Params::from_query(uri.query().unwrap_or_default())?;
    let answer =
        blocking(move || aggregates::answer(&*s.store.snapshot(), &s.gov, &principal, &params))
            .await?;
    Ok(Json(AggregatesBody::from(answer)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseBody {
    from: String,
    to: String,
    channel: Option<String>,
}

async fn releases_post(State(s): State<GovState>, body: Body) -> Result<Response, HttpError> {
    let body = read_body(body, MAX_JSON_BODY_BYTES, s.body_timeout).await?;
    let asked: ReleaseBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::MalformedDocument,
            format!("a release is {{\"from\", \"to\"[, \"channel\"]}}: {e}"),
        )
    })?;
    let (tz, _) = parse_tz(None)?;
    let (from_utc, to_utc) =
        question::parse_range(Some(asked.from.as_str()), Some(asked.to.as_str()), &tz)?;
    let channel = question::parse_channel(asked.channel.as_deref())?;
    let summary = blocking(move || s.gov.release(&s.store, from_utc, to_utc, channel)).await?;
    Ok((StatusCode::CREATED, Json(ReleaseSummaryJson::from(summary))).into_response())
}

async fn releases_get(State(s): State<GovState>) -> Result<Response, HttpError> {
    let releases: Vec<ReleaseSummaryJson> = s
        .gov
        .releases()
        .iter()
        .map(|r| ReleaseSummaryJson::from(r.summary()))
        .collect();
    Ok(Json(serde_json::json!({ "releases": releases })).into_response())
}

async fn compare_get(
    State(s): State<GovState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> Result<Response, HttpError> {
    check_meter(&id)?;
    let query = uri.query().map(str::to_owned);
    let body =
        blocking(move || compare_answer(&s.store, &s.gov, &principal, &id, query.as_deref()))
            .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The JSON body of `meter`'s comparison with its groups (the query string of
/// `/v1/meters/{id}/compare`), once access is granted: 400 for what the query cannot ask, 404
/// for a meter Courbe holds nothing about. One node's handler and a cluster's reader answer
/// with it.
pub fn compare_answer(
    store: &Store,
    gov: &Governance,
    principal: &Principal,
    meter: &str,
    query: Option<&str>,
) -> Result<Vec<u8>, ApiError> {
    let params = aggregates::Params::from_query(query.unwrap_or_default())?;
    aggregates::check_whole_paris_months(&params)?;
    if !export::holds(store, gov, meter) {
        return Err(not_held(meter));
    }
    let comparison = aggregates::compare(&*store.snapshot(), gov, principal, meter, &params)?;
    serde_json::to_vec(&CompareBody::from(comparison))
        .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::auth::Decision;

    #[test]
    fn a_bearer_header_gives_its_token() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        h.append(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), None, "two credentials are none");
    }

    #[test]
    fn a_read_whose_question_was_not_read_is_for_operators_only() {
        for route in [
            "/v1/meters/:id/curve",
            "/v1/meters/:id/energy",
            "/v1/meters/:id/peak",
        ] {
            let action = action_of(route, &Method::GET, Some("m"), None, &[]);
            assert_eq!(action, Some(Action::Other), "{route}");
        }
    }

    #[test]
    fn the_index_and_year_summary_routes_are_read_whole_and_guarded_by_their_range() {
        let limits = Limits::default();
        let read = |route: &str, query: &str| {
            let kind = query_kind(route, &Method::GET).expect("a question route");
            Asked::read(kind, Some("m"), Some(query), &limits)
        };
        let index = read(
            "/v1/meters/:id/index",
            "from=2024-01-01&to=2024-03-01&period=month",
        )
        .unwrap();
        let action = action_of(
            "/v1/meters/:id/index",
            &Method::GET,
            Some("m"),
            Some(&index),
            &[],
        );
        // Paris midnights: 2024-01-01T00:00+01:00 and 2024-03-01T00:00+01:00.
        let range_utc = (1_704_063_600, 1_709_247_600);
        assert_eq!(
            action,
            Some(Action::ReadIndex {
                meter: "m",
                range_utc
            })
        );
        let year = read("/v1/meters/:id/summary", "year=2024&format=csv").unwrap();
        let action = action_of(
            "/v1/meters/:id/summary",
            &Method::GET,
            Some("m"),
            Some(&year),
            &[],
        );
        assert_eq!(
            action,
            Some(Action::ReadYearSummary {
                meter: "m",
                range_utc: (1_704_063_600, 1_735_686_000)
            })
        );
        for (route, query, names) in [
            (
                "/v1/meters/:id/index",
                "from=2024-01-01&to=2024-02-01&tz=UTC",
                "`tz`",
            ),
            (
                "/v1/meters/:id/index",
                "from=2024-01-01&to=2024-02-01&channel=max_power",
                "`channel`",
            ),
            ("/v1/meters/:id/summary", "year=24", "`year`"),
            ("/v1/meters/:id/summary", "year=+2024", "`year`"),
            ("/v1/meters/:id/summary", "year=1969", "`year`"),
            ("/v1/meters/:id/summary", "", "`year`"),
            ("/v1/meters/:id/summary", "year=2024&year=2025", "`year`"),
            (
                "/v1/meters/:id/summary",
                "year=2024&from=2024-01-01",
                "`from`",
            ),
            ("/v1/meters/:id/summary", "year=2024&format=xml", "xml"),
        ] {
            let e = read(route, query).unwrap_err();
            assert!(e.message.contains(names), "{route}?{query}: {}", e.message);
        }
        // Another method, or no question read: never a read of data.
        let post = action_of("/v1/meters/:id/index", &Method::POST, Some("m"), None, &[]);
        assert_eq!(post, None);
        let unread = action_of("/v1/meters/:id/summary", &Method::GET, Some("m"), None, &[]);
        assert_eq!(unread, Some(Action::Other));
    }

    #[test]
    fn a_peaks_sources_are_narrowed_to_the_kinds_allowed_never_widened() {
        let limits = Limits::default();
        let query = "from=2024-01-01&to=2024-01-02";
        let peak = |asked: PeakSources, kinds: Kinds| {
            let mut question = Asked::read(QueryKind::Peak, Some("m"), Some(query), &limits)
                .unwrap()
                .question;
            if let Question::Peak { sources, .. } = &mut question {
                *sources = asked;
            }
            let left = draw_only_on(&mut question, kinds);
            match question {
                Question::Peak { sources, .. } => {
                    assert_eq!(left, sources.max_power || sources.curve);
                    sources
                }
                other => panic!("not a peak: {other:?}"),
            }
        };
        let only = |max_power, curve| PeakSources { max_power, curve };
        let k = Kinds::of;
        assert_eq!(peak(PeakSources::ALL, Kinds::ALL), PeakSources::ALL);
        assert_eq!(
            peak(PeakSources::ALL, k(DataKind::Curve)),
            only(false, true)
        );
        assert_eq!(
            peak(PeakSources::ALL, k(DataKind::MaxPower)),
            only(true, false)
        );
        assert_eq!(
            peak(PeakSources::ALL, k(DataKind::Daily)),
            only(false, false)
        );
        // A route that asks for max_power alone (Data Connect's) keeps asking for it alone.
        assert_eq!(peak(only(true, false), Kinds::ALL), only(true, false));
        // Asked for max_power alone and granted the curve alone: nothing left, refused.
        assert_eq!(
            peak(only(true, false), k(DataKind::Curve)),
            only(false, false)
        );
        let mut year = Asked::read(QueryKind::Summary, Some("m"), Some("year=2024"), &limits)
            .unwrap()
            .question;
        draw_only_on(&mut year, Kinds::ALL);
        assert!(matches!(
            year,
            Question::Summary {
                max_power_only: false,
                ..
            }
        ));
        draw_only_on(&mut year, k(DataKind::Daily).with(DataKind::MaxPower));
        assert!(matches!(
            year,
            Question::Summary {
                max_power_only: true,
                ..
            }
        ));
        draw_only_on(&mut year, Kinds::ALL);
        assert!(matches!(
            year,
            Question::Summary {
                max_power_only: true,
                ..
            }
        ));
    }

    #[test]
    fn a_metering_route_is_the_action_of_the_native_question_it_asks() {
        let q = "usage_point_id=m&start=2024-01-01&end=2024-01-02";
        for &(route, endpoint) in dataconnect::ROUTES {
            let asked = dataconnect::read(endpoint, Some(q)).unwrap();
            let native = match &asked.question {
                Question::Curve { .. } => "/v1/meters/:id/curve",
                Question::Energy { .. } => "/v1/meters/:id/energy",
                _ => "/v1/meters/:id/peak",
            };
            let dc = action_of(route, &Method::GET, Some("m"), Some(&asked), &[]);
            let v1 = action_of(native, &Method::GET, Some("m"), Some(&asked), &[]);
            assert_eq!(dc, v1, "{route}");
            assert!(dc.is_some());
            assert_eq!(
                action_of(route, &Method::GET, Some("m"), None, &[]),
                Some(Action::Other),
                "{route}: unread is for operators only"
            );
            assert_eq!(action_of(route, &Method::POST, Some("m"), None, &[]), None);
        }
    }

    #[test]
    fn a_route_undeclared_in_the_table_has_no_action_never_the_operators_fallback() {
        assert_eq!(
            action_of("/v1/something/new", &Method::GET, None, None, &[]),
            None
        );
        assert_eq!(route_parameters("/v1/something/new", &Method::GET), None);
        assert_eq!(query_kind("/v1/something/new", &Method::GET), None);
        // What `Action::Other` still means (an unread question, an unserved priced method):
        // the operator's only.
        let consumer = Principal {
            role: Role::Consumer,
            subject: Some("m".into()),
        };
        let grants = super::super::grants::GrantRegistry::default();
        let consent = super::super::consent::ConsentRegistry::default();
        let facts = crate::governance::auth::Facts {
            now_utc: 0,
            grants: &grants,
            consent: &consent,
        };
        assert!(matches!(
            crate::governance::auth::authorize(&consumer, &Action::Other, &facts),
            Decision::Deny(_)
        ));
    }
}

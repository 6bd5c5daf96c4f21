//! The governance endpoints under `/v1` and the access-control middleware of every `/v1` route.
//!
//! [`attach`] adds both to the main router. The middleware ([`guard`]) authenticates the bearer
//! token (401 without a known one), maps the route to an [`Action`] and asks
//! [`auth::authorize`] (403, the same for a meter that exists or not), then records every
//! successful read of a meter by a supplier in the audit trail before the answer leaves.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::audit::AuditRecord;
use super::auth::{Action, Decision, Level, Principal, Role};
use super::consent::{Collection, ConsentEvent};
use super::grants::Grant;
use super::{aggregates, export, groups, Governance};
use crate::engine::Store;
use crate::http::api::{format_ts, parse_instant, parse_tz, QueryParams};
use crate::http::blocking;
use crate::http::error::{ApiError, ErrorCode};

/// Largest body of a groups upload.
const MAX_GROUPS_BODY_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone)]
struct GovState {
    store: Arc<Store>,
    gov: Arc<Governance>,
}

/// Adds the governance routes and the access-control middleware to `router`: every route
/// already in it, and the new ones, go through [`guard`].
pub fn attach<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    store: Arc<Store>,
    gov: Arc<Governance>,
) -> Router<S> {
    let state = GovState {
        store,
        gov: gov.clone(),
    };
    let routes: Router<S> = Router::new()
        .route(
            "/v1/meters/:id/consent",
            get(consent_get).post(consent_post),
        )
        .route("/v1/meters/:id/grants", get(grants_get).post(grants_post))
        .route("/v1/meters/:id/grants/:grant", delete(grant_delete))
        .route("/v1/meters/:id/export", get(export_get))
        .route("/v1/meters/:id/compare", get(compare_get))
        .route("/v1/aggregates", get(aggregates_get))
        .route("/v1/audit", get(audit_get))
        .route(
            "/v1/groups",
            put(groups_put)
                .get(groups_get)
                .layer(DefaultBodyLimit::max(MAX_GROUPS_BODY_BYTES)),
        )
        .with_state(state);
    router
        .merge(routes)
        .layer(middleware::from_fn_with_state(gov, guard))
}

fn forbidden() -> ApiError {
    ApiError::new(
        ErrorCode::Forbidden,
        "this token does not allow this request",
    )
}

fn unauthorized() -> Response {
    let mut response = ApiError::new(
        ErrorCode::Unauthorized,
        "a valid bearer token is required (Authorization: Bearer TOKEN)",
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The meter id of a `/v1/meters/{id}/...` path, as sent.
fn path_meter(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v1/meters/")?;
    rest.split('/').next().filter(|s| !s.is_empty())
}

fn parse_level(text: Option<&str>) -> Option<Level> {
    match text.unwrap_or("commune") {
        "all" => Some(Level::All),
        "commune" => Some(Level::Commune),
        "iris" => Some(Level::Iris),
        "building" => Some(Level::Building),
        _ => None,
    }
}

/// The query parameters the guard reads.
#[derive(Default, Deserialize)]
struct GuardParams {
    from: Option<String>,
    to: Option<String>,
    tz: Option<String>,
    level: Option<String>,
    meters: Option<String>,
}

/// The range of a curve question, when readable.
fn curve_range(params: &GuardParams) -> Option<(i64, i64)> {
    let (tz, _) = parse_tz(params.tz.as_deref()).ok()?;
    let from = parse_instant(params.from.as_deref()?, &tz, "from").ok()?;
    let to = parse_instant(params.to.as_deref()?, &tz, "to").ok()?;
    (from < to).then_some((from, to))
}

/// What the request does, from its route template and method. `None`: a method the route does
/// not serve (its handler answers 405). Routes unknown here are the operator's only.
fn action_of<'a>(
    route: &str,
    method: &Method,
    meter: Option<&'a str>,
    params: &GuardParams,
) -> Option<Action<'a>> {
    let m = meter.unwrap_or("");
    let get = method == Method::GET || method == Method::HEAD;
    Some(match route {
        "/v1/meters/:id/curve" if get => Action::ReadCurve {
            meter: m,
            range_utc: curve_range(params),
        },
        "/v1/meters/:id/curve" if method == Method::DELETE => Action::EraseCurve { meter: m },
        "/v1/meters/:id/energy" | "/v1/meters/:id/peak" if get => {
            Action::ReadMeterSummary { meter: m }
        }
        "/v1/meters/:id/export" if get => Action::Export { meter: m },
        "/v1/meters/:id/compare" if get => Action::Compare { meter: m },
        "/v1/meters/:id/consent" if get => Action::ReadConsent { meter: m },
        "/v1/meters/:id/consent" if method == Method::POST => Action::SetConsent { meter: m },
        "/v1/meters/:id/grants" if get => Action::ReadGrants { meter: m },
        "/v1/meters/:id/grants" | "/v1/meters/:id/grants/:grant" => Action::ManageGrants,
        "/v1/fleet/curve" | "/v1/fleet/energy" if get => Action::ReadFleet,
        "/v1/aggregates" if get => Action::ReadAggregates {
            // An unknown level is the handler's 400; for access it is the strictest level.
            level: parse_level(params.level.as_deref()).unwrap_or(Level::Building),
            predefined: params.meters.is_none(),
        },
        "/v1/audit" if get => Action::ReadAudit,
        "/v1/groups" => Action::LoadGroups,
        "/v1/ingest" => Action::Ingest,
        "/v1/meters/:id/curve"
        | "/v1/meters/:id/energy"
        | "/v1/meters/:id/peak"
        | "/v1/meters/:id/export"
        | "/v1/meters/:id/compare"
        | "/v1/meters/:id/consent"
        | "/v1/fleet/curve"
        | "/v1/fleet/energy"
        | "/v1/aggregates"
        | "/v1/audit" => return None,
        // A route this table does not know yet: the operator's only.
        _ => Action::Other,
    })
}

/// Access control of every `/v1` request; other paths pass.
async fn guard(
    State(gov): State<Arc<Governance>>,
    matched: Option<MatchedPath>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if !path.starts_with("/v1/") {
        return next.run(request).await;
    }
    let Some(principal) = gov.authenticate(bearer(request.headers())) else {
        return unauthorized();
    };
    let Some(route) = matched.map(|m| m.as_str().to_string()) else {
        // No such route: the 404 says nothing about any meter.
        return next.run(request).await;
    };
    let params: GuardParams = Query::<GuardParams>::try_from_uri(request.uri())
        .map(|Query(p)| p)
        .unwrap_or_default();
    let method = request.method().clone();
    let meter = path_meter(&path).map(str::to_string);
    let Some(action) = action_of(&route, &method, meter.as_deref(), &params) else {
        return next.run(request).await;
    };
    if let Decision::Deny(why) = gov.authorize(&principal, &action) {
        tracing::info!(who = %principal.label(), route = %route, why, "forbidden");
        return forbidden().into_response();
    }
    let audited = principal.role == Role::Supplier
        && matches!(
            action,
            Action::ReadCurve { .. } | Action::ReadMeterSummary { .. }
        );
    let range = curve_range(&params);
    request.extensions_mut().insert(principal.clone());
    let response = next.run(request).await;
    if audited && response.status().is_success() {
        let (from_utc, to_utc) = range.unwrap_or((i64::MIN, i64::MAX));
        let record = AuditRecord {
            who: principal.label(),
            at_utc: super::now_utc(),
            meter: meter.unwrap_or_default(),
            from_utc,
            to_utc,
            what: route,
        };
        let gov = gov.clone();
        let logged = tokio::task::spawn_blocking(move || gov.audit(record)).await;
        if !matches!(logged, Ok(Ok(()))) {
            // An unrecorded read is not served.
            return ApiError::internal("the audit trail cannot record this read").into_response();
        }
    }
    response
}

impl From<super::Error> for ApiError {
    fn from(e: super::Error) -> ApiError {
        match e {
            super::Error::InvalidArgument(m) => ApiError::invalid(m),
            super::Error::Engine(e) => ApiError::from(e),
            other => ApiError::internal(other.to_string()),
        }
    }
}

fn check_meter(id: &str) -> Result<(), ApiError> {
    crate::http::api::check_meter_id(id)
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

#[derive(Serialize)]
struct ConsentEventJson {
    from: String,
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

#[derive(Serialize)]
struct ConsentBody {
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
) -> Result<Response, ApiError> {
    check_meter(&id)?;
    Ok(Json(consent_body(&s.gov, &id, None)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentRequest {
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
    body: Bytes,
) -> Result<Response, ApiError> {
    check_meter(&id)?;
    let req: ConsentRequest = json_body(&body)?;
    if req.erase && req.collection != Collection::Revoked {
        return Err(ApiError::invalid("`erase` comes only with a revocation"));
    }
    if let Some(step) = req.step_min {
        if !matches!(step, 5 | 10 | 15 | 30 | 60) {
            return Err(ApiError::invalid("`step_min` is 5, 10, 15, 30 or 60"));
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

#[derive(Serialize)]
struct GrantJson {
    id: u64,
    meter: String,
    supplier: String,
    from: String,
    to: String,
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
            created: format_ts(g.created_utc),
            by: g.by.clone(),
            revoked: g.revoked_utc.map(format_ts),
            in_force: g.in_force(super::now_utc()),
        }
    }
}

#[derive(Serialize)]
struct GrantsBody {
    meter: String,
    grants: Vec<GrantJson>,
}

async fn grants_get(
    State(s): State<GovState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_meter(&id)?;
    let grants = s.gov.grants_of(&id).iter().map(GrantJson::from).collect();
    Ok(Json(GrantsBody { meter: id, grants }).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantRequest {
    supplier: String,
    from: String,
    to: String,
}

async fn grants_post(
    State(s): State<GovState>,
    Path(id): Path<String>,
    principal: Option<Extension<Principal>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_meter(&id)?;
    let req: GrantRequest = json_body(&body)?;
    let from = instant(Some(&req.from), "from")?.unwrap_or_default();
    let to = instant(Some(&req.to), "to")?.unwrap_or_default();
    let by = by(&principal);
    let grant =
        blocking(move || Ok(s.gov.create_grant(&id, &req.supplier, from, to, &by)?)).await?;
    Ok((StatusCode::CREATED, Json(GrantJson::from(&grant))).into_response())
}

async fn grant_delete(
    State(s): State<GovState>,
    Path((id, grant)): Path<(String, String)>,
    principal: Option<Extension<Principal>>,
) -> Result<Response, ApiError> {
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
        None => Err(unknown()),
    }
}

// ---- export ----

async fn export_get(
    State(s): State<GovState>,
    Path(id): Path<String>,
    Query(params): Query<QueryParams>,
) -> Result<Response, ApiError> {
    check_meter(&id)?;
    let format = export::Format::parse(params.format.as_deref())?;
    let channel = crate::http::api::parse_channel(params.channel.as_deref())?;
    let (store, gov, meter) = (s.store.clone(), s.gov.clone(), id.clone());
    if !blocking(move || Ok(export::holds(&store, &gov, &meter))).await? {
        return Err(ApiError::new(
            ErrorCode::UnknownMeter,
            format!("unknown meter {id:?}"),
        ));
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

#[derive(Serialize)]
struct AuditJson {
    who: String,
    at: String,
    meter: String,
    from: Option<String>,
    to: Option<String>,
    what: String,
}

async fn audit_get(
    State(s): State<GovState>,
    Query(p): Query<AuditParams>,
) -> Result<Response, ApiError> {
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
        })
        .collect();
    Ok(Json(serde_json::json!({ "records": records })).into_response())
}

// ---- groups and aggregates ----

async fn groups_put(State(s): State<GovState>, body: Bytes) -> Result<Response, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(ErrorCode::MalformedDocument, "the body is not UTF-8"))?;
    let memberships =
        groups::parse_csv(text).map_err(|m| ApiError::new(ErrorCode::MalformedDocument, m))?;
    let loaded = blocking(move || Ok(s.gov.load_groups(memberships)?)).await?;
    Ok(Json(serde_json::json!({ "loaded": loaded })).into_response())
}

async fn groups_get(State(s): State<GovState>) -> Result<Response, ApiError> {
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
) -> Result<Response, ApiError> {
    let params = aggregates::Params::from_uri(&uri)?;
    let body = blocking(move || aggregates::answer(&s.store, &s.gov, &principal, &params)).await?;
    Ok(Json(body).into_response())
}

async fn compare_get(
    State(s): State<GovState>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    check_meter(&id)?;
    let params = aggregates::Params::from_uri(&uri)?;
    let body = blocking(move || aggregates::compare(&s.store, &s.gov, &id, &params)).await?;
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_header_gives_its_token() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn routes_unknown_to_the_guard_are_for_operators_only() {
        let p = GuardParams::default();
        let action = action_of("/v1/something/new", &Method::GET, None, &p);
        assert_eq!(action, Some(Action::Other));
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

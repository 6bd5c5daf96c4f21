//! The `/v1` endpoints of day-colour series and tariff contracts (access: `http::action_of`).
//!
//! - `PUT /v1/calendars/{name}/colours`, CSV `date,colour`: stores the good lines, answers the
//!   bad ones with their numbers (operators).
//! - `GET /v1/calendars/{name}/colours?from=YYYY-MM-DD&to=YYYY-MM-DD`: `to` excluded, both
//!   optional (every token: colours are public).
//! - `PUT /v1/meters/{id}/contracts`, a JSON list of contracts, replaces the meter's list
//!   (operators); `GET` lists it (operators, the meter's consumer, a supplier with a grant).

use std::sync::Arc;

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::auth::Principal;
use super::calendars::{self, check_series_name, parse_colours, Contract};
use super::Governance;
use crate::http::blocking;
use crate::http::error::{ApiError, ErrorCode, HttpError};
use crate::query::tariffs::{date_of_day, day_number};

/// Largest body of a colour or contracts upload.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How long an upload's body may take to arrive (the server's body read timeout).
#[derive(Clone, Copy)]
struct BodyTimeout(Duration);

/// The routes, with their own state; [`super::http::attach`] puts them behind the guard. A body
/// must arrive whole within `body_timeout` (408) and hold at most [`MAX_BODY_BYTES`] (413).
pub(super) fn routes<S: Clone + Send + Sync + 'static>(
    gov: Arc<Governance>,
    body_timeout: Duration,
) -> Router<S> {
    Router::new()
        .route(
            crate::http::routes::declared("/v1/calendars/:name/colours"),
            get(colours_get).put(colours_put),
        )
        .route(
            crate::http::routes::declared("/v1/meters/:id/contracts"),
            get(contracts_get).put(contracts_put),
        )
        .layer(Extension(BodyTimeout(body_timeout)))
        .with_state(gov)
}

fn malformed(m: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::MalformedDocument, m)
}

async fn colours_put(
    State(gov): State<Arc<Governance>>,
    Path(name): Path<String>,
    Extension(BodyTimeout(timeout)): Extension<BodyTimeout>,
    body: Body,
) -> Result<Response, HttpError> {
    check_series_name(&name).map_err(ApiError::invalid)?;
    let body = super::http::read_body(body, MAX_BODY_BYTES, timeout).await?;
    let text = std::str::from_utf8(&body).map_err(|_| malformed("the body is not UTF-8"))?;
    let (good, bad) = parse_colours(text);
    let stored = blocking(move || Ok(gov.calendars().set_colours(&name, &good)?)).await?;
    let rejected: Vec<serde_json::Value> = bad
        .iter()
        .map(|b| serde_json::json!({ "line": b.line, "reason": b.reason }))
        .collect();
    Ok(Json(serde_json::json!({ "stored": stored, "rejected": rejected })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColoursParams {
    from: Option<String>,
    to: Option<String>,
}

fn day_param(text: Option<&str>, param: &str, default: i64) -> Result<i64, ApiError> {
    match text {
        None => Ok(default),
        Some(t) => t
            .parse::<jiff::civil::Date>()
            .ok()
            .filter(|_| t.len() == 10)
            .map(day_number)
            .ok_or_else(|| ApiError::invalid(format!("`{param}` {t:?} is not YYYY-MM-DD"))),
    }
}

async fn colours_get(
    State(gov): State<Arc<Governance>>,
    Path(name): Path<String>,
    params: Result<Query<ColoursParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, HttpError> {
    check_series_name(&name).map_err(ApiError::invalid)?;
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let first = day_param(params.from.as_deref(), "from", i64::MIN / 4)?;
    let last = day_param(params.to.as_deref(), "to", i64::MAX / 4)?;
    let days: Vec<serde_json::Value> = gov
        .calendars()
        .colours(&name, first, last)
        .into_iter()
        .filter_map(|(day, colour)| {
            let date = date_of_day(day).ok()?;
            Some(serde_json::json!({ "date": date.to_string(), "colour": colour.as_str() }))
        })
        .collect();
    Ok(Json(serde_json::json!({ "calendar": name, "days": days })).into_response())
}

async fn contracts_get(
    State(gov): State<Arc<Governance>>,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    crate::question::check_meter_id(&id)?;
    let contracts = gov.calendars().contracts(&id);
    Ok(Json(serde_json::json!({ "meter": id, "contracts": contracts })).into_response())
}

async fn contracts_put(
    State(gov): State<Arc<Governance>>,
    Path(id): Path<String>,
    principal: Option<Extension<Principal>>,
    Extension(BodyTimeout(timeout)): Extension<BodyTimeout>,
    body: Body,
) -> Result<Response, HttpError> {
    crate::question::check_meter_id(&id)?;
    let body = super::http::read_body(body, MAX_BODY_BYTES, timeout).await?;
    let contracts: Vec<Contract> = serde_json::from_slice(&body)
        .map_err(|e| malformed(format!("unreadable JSON body: {e}")))?;
    calendars::check_contracts(contracts.clone()).map_err(ApiError::invalid)?;
    let by = principal.map_or_else(|| "unknown".to_string(), |Extension(p)| p.label());
    let at = super::now_utc();
    let stored =
        blocking(move || Ok(gov.calendars().set_contracts(&id, contracts, &by, at)?)).await?;
    Ok(Json(serde_json::json!({ "contracts": stored })).into_response())
}

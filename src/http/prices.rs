//! Spot price series over HTTP (access: `governance::http::action_of`).
//!
//! - `PUT /v1/prices/spot/{area}`, CSV `ts,price[,step_min]` (EUR/MWh, at most 2 decimals,
//!   signed; `ingest::parse_price_csv_into`): stores the good lines in series `spot-{area}` and
//!   answers the bad ones with their numbers, as `POST /v1/ingest` does (operators).
//! - `GET /v1/prices/spot/{area}?from&to`: the prices whose intervals meet `[from, to)` (RFC 3339
//!   instants or Europe/Paris dates; at most [`MAX_RANGE_S`]), every token: spot prices are
//!   public.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::{ApiError, HttpError};
use super::loading::{self, IngestBody};
use super::{blocking, read_body, AppState};
use crate::engine::price_series_id;
use crate::query::spot::spot_prices;
use crate::question::{self, format_ts, parse_instant, read_query};

/// Longest range a price read answers: 367 days of 15-minute prices (about 35,000 points).
pub const MAX_RANGE_S: i64 = 367 * 86_400;

/// One price of a `GET /v1/prices/spot/{area}` answer.
#[derive(Debug, Serialize)]
pub struct PriceJson {
    pub ts: String,
    pub step_min: u16,
    /// EUR/MWh, exactly the stored hundredths (written as the shortest decimal).
    pub price_eur_mwh: f64,
}

#[derive(Debug, Serialize)]
pub struct PricesBody {
    pub series: String,
    pub unit: &'static str,
    pub from: String,
    pub to: String,
    pub prices: Vec<PriceJson>,
}

/// The series id of `area`, or 400 naming it.
fn series_of(
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, ApiError> {
    let area = path
        .map(|Path(a)| a)
        .map_err(|e| ApiError::invalid(format!("unreadable area: {}", e.body_text())))?;
    price_series_id(&area).ok_or_else(|| {
        ApiError::invalid(format!(
            "market area {area:?} is not 1 to 16 characters of [A-Z0-9-] (FR, DE-LU)"
        ))
    })
}

pub(super) async fn prices_get(
    State(state): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    uri: Uri,
) -> Result<Response, HttpError> {
    let series = series_of(path)?;
    let params = read_query(uri.query())?;
    if let Some((name, _)) = params.iter().find(|(n, _)| n != "from" && n != "to") {
        return Err(ApiError::invalid(format!(
            "unknown parameter `{name}` (this request reads from, to)"
        ))
        .into());
    }
    let (tz, _) = question::parse_tz(None)?;
    let instant = |name: &str| -> Result<i64, ApiError> {
        let text = params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ApiError::invalid(format!("`{name}` is required")))?;
        parse_instant(text, &tz, name)
    };
    let (from, to) = (instant("from")?, instant("to")?);
    if from >= to || to - from > MAX_RANGE_S {
        return Err(ApiError::invalid(format!(
            "`from` must be before `to`, at most {} days apart",
            MAX_RANGE_S / 86_400
        ))
        .into());
    }
    let store = state.store.clone();
    let id = series.clone();
    let points = blocking(move || Ok(spot_prices(&*store.snapshot(), &id, from, to)?)).await?;
    let body = PricesBody {
        series,
        unit: "EUR/MWh",
        from: format_ts(from),
        to: format_ts(to),
        prices: points
            .iter()
            .map(|p| PriceJson {
                ts: format_ts(p.ts_utc),
                step_min: p.step_min,
                price_eur_mwh: f64::from(p.value) / 100.0,
            })
            .collect(),
    };
    Ok(axum::Json(body).into_response())
}

pub(super) async fn prices_put(
    State(state): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response, HttpError> {
    let series = series_of(path)?;
    if let Some((name, _)) = read_query(uri.query())?.first() {
        return Err(ApiError::invalid(format!(
            "unknown parameter `{name}` (this request reads none)"
        ))
        .into());
    }
    let (bytes, _memory) = read_body(&headers, body, &state).await?;
    let _permit = state.ingest_turn().await?;
    let store = state.store.clone();
    let gov = state.config.governance.clone();
    let batch_points = state.config.ingest_batch_points;
    let body_len = bytes.len() as u64;
    let report = blocking(move || {
        loading::ingest_prices_screened(&store, gov.as_deref(), &bytes, &series, batch_points)
    })
    .await?;
    state
        .metrics
        .observe_ingest(body_len, report.accepted, report.rejected_count);
    Ok(axum::Json(IngestBody::from(report)).into_response())
}

/// `days` days of synthetic spot prices from `start` as a batch of series `series` (what the
/// demo loads; synthetic, not market data). `None` when `series` is no price series id.
pub fn synthetic_spot_batch(
    series: &str,
    seed: u64,
    start: jiff::civil::Date,
    days: u32,
) -> Option<crate::engine::Batch> {
    let mut batch = crate::engine::Batch::new();
    for p in courbe_workload::synthetic_spot(seed, start, days) {
        let point = crate::Point {
            ts_utc: p.ts_utc,
            value: p.centi_eur_mwh,
            step_min: p.step_min,
            quality: crate::Quality::Measured,
        };
        batch.push(series, crate::Channel::PRICE, point).ok()?;
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Channel;

    #[test]
    fn the_synthetic_spot_batch_is_a_price_series_of_quarter_hours() {
        let start = jiff::civil::date(2024, 6, 1);
        let batch = synthetic_spot_batch("spot-FR", 1, start, 2).expect("a series id");
        assert_eq!(batch.len(), 192);
        assert!(batch
            .iter()
            .all(|(id, c, p)| id == "spot-FR" && c == Channel::PRICE && p.step_min == 15));
        assert!(synthetic_spot_batch("09111642617347", 1, start, 1).is_none());
    }
}

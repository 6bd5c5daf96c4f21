//! The read endpoints of Enedis Data Connect (metering data v5), answered from Courbe's queries,
//! so that a portal written against Data Connect can point at Courbe.
//!
//! | route | Courbe question |
//! |---|---|
//! | `/metering_data_dc/v5/daily_consumption` | energy of `consumption`, `period=day`, Europe/Paris |
//! | `/metering_data_clc/v5/consumption_load_curve` | curve of `consumption` |
//! | `/metering_data_dcmp/v5/daily_consumption_max_power` | peak, `period=day`, from `max_power` only |
//! | `/metering_data_dp/v5/daily_production` | energy of `production`, `period=day` |
//! | `/metering_data_plc/v5/production_load_curve` | curve of `production` |
//!
//! The same five are also served under `/metering_data_dc/v5/` (`consumption_load_curve`,
//! `consumption_max_power`, `daily_consumption_max_power`, `daily_production`,
//! `production_load_curve`). Each reads exactly `usage_point_id`, `start` and `end` (local dates
//! `YYYY-MM-DD`, Europe/Paris, `end` exclusive): anything else, repeated or unreadable is 400, as
//! on `/v1`. Data Connect's bounds hold: at most [`CURVE_MAX_DAYS`] days of curve and
//! [`DAILY_MAX_DAYS`] days of daily data per call.
//!
//! **Access.** A request is read by [`read`] into the native [`Question`] it asks (a curve, an
//! energy or a peak over whole Paris days) and goes through the same access guard as `/v1`
//! (`governance::http`): the same `authorize` rule, the same audit record, the same refusal.
//! Its bearer is an access token of `POST /oauth2/v3/token` ([`super::oauth`]), which
//! [`frame`] exchanges for the Courbe token it was issued to before the guard sees the request,
//! or a Courbe token itself.
//!
//! **Answers** (the shapes of Data Connect): `{"meter_reading": {"usage_point_id", "start",
//! "end", "quality": "BRUT", "reading_type", "interval_reading": [{"value", "date", ...}]}}`,
//! values as strings of integers:
//! - a load curve lists every point of `[start, end)` with `date` the **end** of its interval on
//!   the Paris wall clock (`YYYY-MM-DD HH:MM:SS`: the last half-hour of a day ends at the next
//!   day's `00:00:00`; on the autumn DST day two intervals end at each of `02:00:00` and
//!   `02:30:00`, as Enedis writes them), `interval_length` `PT{step}M`, `measure_type` `B`;
//! - daily energy lists each Paris day that holds data, `date` the day, the value in Wh rounded
//!   to the nearest Wh (halves up);
//! - daily maximum power lists each Paris day that holds a `max_power` reading (never a value
//!   from the curve: it is apparent power, VA), `date` the reading's instant on the Paris wall
//!   clock.
//!
//! **Errors** have Data Connect's (OAuth) shape, `{"error": CODE, "error_description":
//! MESSAGE}`, with Courbe's statuses; `CODE` is Courbe's error code (`invalid_argument`,
//! `unknown_meter`, ...), except `invalid_token` (401, RFC 6750) and `ADAM-DC-0008` (403, the
//! code Data Connect clients read as "no consent for this usage point"), whatever the reason of
//! the refusal.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::error::{ApiError, HttpError};
use super::oauth::AccessTokens;
use crate::engine::Store;
use crate::query::{self, Calendar, PeakSource, Period};
use crate::question::{self, Asked, CalendarQuestion, Encoding, Question};
use crate::source::SeriesSource;
use crate::Channel;

/// Longest load curve of one call, days (Data Connect's bound).
pub const CURVE_MAX_DAYS: i64 = 7;
/// Longest daily series (energy or maximum power) of one call, days (Data Connect's bound).
pub const DAILY_MAX_DAYS: i64 = 365;

/// The parameters every metering endpoint reads, and only those.
pub const PARAMETERS: &[&str] = &["usage_point_id", "start", "end"];

/// The common beginning of every metering route's path.
const METERING_PREFIX: &str = "/metering_data_";

/// What a metering endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    DailyConsumption,
    ConsumptionLoadCurve,
    ConsumptionMaxPower,
    DailyProduction,
    ProductionLoadCurve,
}

/// Every metering route and what it answers: Data Connect's own paths, then the same endpoints
/// under the one prefix `/metering_data_dc/v5/`.
pub const ROUTES: &[(&str, Endpoint)] = &[
    (
        "/metering_data_dc/v5/daily_consumption",
        Endpoint::DailyConsumption,
    ),
    (
        "/metering_data_clc/v5/consumption_load_curve",
        Endpoint::ConsumptionLoadCurve,
    ),
    (
        "/metering_data_dcmp/v5/daily_consumption_max_power",
        Endpoint::ConsumptionMaxPower,
    ),
    (
        "/metering_data_dp/v5/daily_production",
        Endpoint::DailyProduction,
    ),
    (
        "/metering_data_plc/v5/production_load_curve",
        Endpoint::ProductionLoadCurve,
    ),
    (
        "/metering_data_dc/v5/consumption_load_curve",
        Endpoint::ConsumptionLoadCurve,
    ),
    (
        "/metering_data_dc/v5/consumption_max_power",
        Endpoint::ConsumptionMaxPower,
    ),
    (
        "/metering_data_dc/v5/daily_consumption_max_power",
        Endpoint::ConsumptionMaxPower,
    ),
    (
        "/metering_data_dc/v5/daily_production",
        Endpoint::DailyProduction,
    ),
    (
        "/metering_data_dc/v5/production_load_curve",
        Endpoint::ProductionLoadCurve,
    ),
];

/// The endpoint of a route template; `None` for any other route.
pub fn endpoint(route: &str) -> Option<Endpoint> {
    ROUTES.iter().find(|(r, _)| *r == route).map(|&(_, e)| e)
}

/// Whether a request path is one of the metering routes' (served or not): such requests are
/// guarded like `/v1` ones and answered in Data Connect's error shape.
pub fn is_metering_path(path: &str) -> bool {
    path.starts_with(METERING_PREFIX)
}

impl Endpoint {
    fn max_days(self) -> i64 {
        match self {
            Endpoint::ConsumptionLoadCurve | Endpoint::ProductionLoadCurve => CURVE_MAX_DAYS,
            Endpoint::DailyConsumption
            | Endpoint::ConsumptionMaxPower
            | Endpoint::DailyProduction => DAILY_MAX_DAYS,
        }
    }

    fn channel(self) -> Channel {
        match self {
            Endpoint::DailyProduction | Endpoint::ProductionLoadCurve => Channel::PRODUCTION,
            Endpoint::DailyConsumption
            | Endpoint::ConsumptionLoadCurve
            | Endpoint::ConsumptionMaxPower => Channel::CONSUMPTION,
        }
    }
}

/// A local date written exactly `YYYY-MM-DD`.
fn parse_date(text: Option<&str>, name: &str) -> Result<Date, ApiError> {
    let text = text.ok_or_else(|| ApiError::invalid(format!("missing parameter `{name}`")))?;
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    match text.parse::<Date>() {
        Ok(date) if shaped => Ok(date),
        _ => Err(ApiError::invalid(format!(
            "`{name}`: {text:?} is not a date YYYY-MM-DD"
        ))),
    }
}

/// Reads a metering request's query string into the native question it asks, as the access
/// guard and the handler both do: `usage_point_id`, `start` and `end` exactly once each and
/// nothing else; `start` before `end`, at most the endpoint's bound apart.
pub fn read(endpoint: Endpoint, query: Option<&str>) -> Result<Asked, ApiError> {
    let params = question::read_query(query)?;
    if let Some((name, _)) = params
        .iter()
        .find(|(name, _)| !PARAMETERS.contains(&name.as_str()))
    {
        return Err(ApiError::invalid(format!(
            "unknown parameter `{name}` (this request reads {})",
            PARAMETERS.join(", ")
        )));
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let meter = param("usage_point_id")
        .ok_or_else(|| ApiError::invalid("missing parameter `usage_point_id`"))?;
    question::check_meter_id(meter)?;
    let start = parse_date(param("start"), "start")?;
    let end = parse_date(param("end"), "end")?;
    if start >= end {
        return Err(ApiError::invalid(format!(
            "`start` ({start}) must be before `end` ({end})"
        )));
    }
    let days = i64::from(
        end.since(start)
            .map_err(|e| ApiError::invalid(format!("`start` to `end`: {e}")))?
            .get_days(),
    );
    if days > endpoint.max_days() {
        return Err(ApiError::invalid(format!(
            "from {start} to {end} is {days} days, over the limit of {} days of this endpoint",
            endpoint.max_days()
        )));
    }
    let tz = courbe::zone::paris();
    let midnight = |date: Date| -> Result<i64, ApiError> {
        date.to_zoned(tz.clone())
            .map(|z| z.timestamp().as_second())
            .map_err(|e| ApiError::invalid(format!("{date}: {e}")))
    };
    let (from_utc, to_utc) = (midnight(start)?, midnight(end)?);
    let calendar = CalendarQuestion {
        calendar: Calendar {
            from_utc,
            to_utc,
            period: Period::Day,
            tz: tz.clone(),
        },
        tz_name: question::DEFAULT_TZ.to_string(),
    };
    let meter = meter.to_string();
    let question = match endpoint {
        Endpoint::ConsumptionLoadCurve | Endpoint::ProductionLoadCurve => Question::Curve {
            meter,
            channel: endpoint.channel(),
            from_utc,
            to_utc,
            columns: false,
        },
        Endpoint::DailyConsumption | Endpoint::DailyProduction => Question::Energy {
            meter,
            channel: endpoint.channel(),
            calendar,
            tariff: None,
        },
        // Data Connect's maximum power is the meter's `max_power`, never the curve's.
        Endpoint::ConsumptionMaxPower => Question::Peak {
            meter,
            calendar,
            sources: question::PeakSources {
                max_power: true,
                curve: false,
            },
        },
    };
    Ok(Asked {
        question,
        encoding: Encoding::Json,
    })
}

/// A Data Connect answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeterReadingBody {
    pub meter_reading: MeterReading,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeterReading {
    pub usage_point_id: String,
    /// The asked `start` and `end`, `YYYY-MM-DD`.
    pub start: String,
    pub end: String,
    /// Always `BRUT` (raw data), as Data Connect.
    pub quality: &'static str,
    pub reading_type: ReadingType,
    pub interval_reading: Vec<IntervalReading>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReadingType {
    pub unit: &'static str,
    pub measurement_kind: &'static str,
    pub aggregate: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measuring_period: Option<&'static str>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IntervalReading {
    pub value: String,
    pub date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_length: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measure_type: Option<&'static str>,
}

/// `ts_utc` on the Paris wall clock, `YYYY-MM-DD HH:MM:SS`.
fn local_stamp(ts_utc: i64, tz: &TimeZone) -> Result<String, ApiError> {
    let ts = jiff::Timestamp::from_second(ts_utc)
        .map_err(|e| ApiError::internal(format!("instant {ts_utc}: {e}")))?;
    Ok(ts
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string())
}

fn local_date(ts_utc: i64, tz: &TimeZone) -> Result<Date, ApiError> {
    let ts = jiff::Timestamp::from_second(ts_utc)
        .map_err(|e| ApiError::internal(format!("instant {ts_utc}: {e}")))?;
    Ok(ts.to_zoned(tz.clone()).date())
}

/// Exact W·min to Wh, rounded to the nearest Wh, halves up.
fn wmin_to_wh(wmin: i64) -> i64 {
    (wmin.saturating_mul(2).saturating_add(60)).div_euclid(120)
}

/// Answers a question read by [`read`] from `src`, with Courbe's own queries.
pub fn answer(src: &dyn SeriesSource, question: &Question) -> Result<MeterReadingBody, ApiError> {
    let tz = courbe::zone::paris();
    let (from_utc, to_utc) = question.range_utc();
    let (reading_type, interval_reading) = match question {
        Question::Curve {
            meter,
            channel,
            from_utc,
            to_utc,
            ..
        } => {
            let points = query::curve(src, meter, *channel, *from_utc, *to_utc)?;
            let readings = points
                .iter()
                .map(|p| {
                    let end = p.ts_utc + 60 * i64::from(p.step_min);
                    Ok(IntervalReading {
                        value: p.value.to_string(),
                        date: local_stamp(end, &tz)?,
                        interval_length: Some(format!("PT{}M", p.step_min)),
                        measure_type: Some("B"),
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            let kind = ReadingType {
                unit: "W",
                measurement_kind: "power",
                aggregate: "average",
                measuring_period: None,
            };
            (kind, readings)
        }
        Question::Energy {
            meter,
            channel,
            calendar,
            ..
        } => {
            let periods = query::energy(src, meter, *channel, &calendar.calendar, None)?;
            let readings = periods
                .iter()
                .filter(|p| p.points > 0)
                .map(|p| {
                    Ok(IntervalReading {
                        value: wmin_to_wh(p.energy_wmin).to_string(),
                        date: local_date(p.start_utc, &tz)?.to_string(),
                        interval_length: None,
                        measure_type: None,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            let kind = ReadingType {
                unit: "Wh",
                measurement_kind: "energy",
                aggregate: "sum",
                measuring_period: Some("P1D"),
            };
            (kind, readings)
        }
        Question::Peak {
            meter,
            calendar,
            // Named, not elided: whatever the guard sets here about the sources a peak may
            // come from must be read here too. This answer never takes one from the curve.
            sources,
        } => {
            if !sources.max_power {
                return Err(question::forbidden());
            }
            let periods = query::peak(src, meter, &calendar.calendar)?;
            let readings = periods
                .iter()
                .filter_map(|p| match p.peak {
                    Some((value, at, PeakSource::MaxPower)) => Some((value, at)),
                    Some((_, _, PeakSource::Curve)) | None => None,
                })
                .map(|(value, at)| {
                    Ok(IntervalReading {
                        value: value.to_string(),
                        date: local_stamp(at, &tz)?,
                        interval_length: None,
                        measure_type: None,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            let kind = ReadingType {
                unit: "VA",
                measurement_kind: "power",
                aggregate: "maximum",
                measuring_period: Some("P1D"),
            };
            (kind, readings)
        }
        Question::FleetCurve { .. }
        | Question::FleetEnergy { .. }
        | Question::Index { .. }
        | Question::Summary { .. } => {
            return Err(ApiError::internal("a question no metering route asks"))
        }
    };
    Ok(MeterReadingBody {
        meter_reading: MeterReading {
            usage_point_id: question.meter().unwrap_or_default().to_string(),
            start: local_date(from_utc, &tz)?.to_string(),
            end: local_date(to_utc, &tz)?.to_string(),
            quality: "BRUT",
            reading_type,
            interval_reading,
        },
    })
}

#[derive(Clone)]
struct DcState {
    store: Arc<Store>,
}

/// The metering routes over `store`. Merge them before the access guard is attached, so that
/// the guard covers them.
pub fn routes<S: Clone + Send + Sync + 'static>(store: Arc<Store>) -> Router<S> {
    let mut router = Router::new();
    for &(path, endpoint) in ROUTES {
        router = router.route(
            path,
            get(
                move |State(state): State<DcState>, asked: Option<Extension<Asked>>, uri: Uri| {
                    handle(state, endpoint, asked, uri)
                },
            ),
        );
    }
    router.with_state(DcState { store })
}

/// Answers the question the access guard read (the one it authorized), or reads it from the
/// query string where no guard runs.
async fn handle(
    state: DcState,
    endpoint: Endpoint,
    asked: Option<Extension<Asked>>,
    uri: Uri,
) -> Result<Response, HttpError> {
    let asked = match asked {
        Some(Extension(asked)) => asked,
        None => read(endpoint, uri.query())?,
    };
    let store = state.store.clone();
    let body = super::blocking(move || answer(&*store.snapshot(), &asked.question)).await?;
    Ok(Json(body).into_response())
}

/// Largest error body [`frame`] rewrites; larger ones pass as they are.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Around the metering and OAuth routes, outside the access guard: exchanges a live access token
/// for the Courbe token it was issued to (a metering request only), and rewrites Courbe's error
/// answers (`{"error": {"code", "message"}}`) in Data Connect's shape. Other paths pass.
pub async fn frame(
    State(tokens): State<Arc<AccessTokens>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let metering = is_metering_path(path);
    if !metering && !path.starts_with("/oauth2/") {
        return next.run(request).await;
    }
    if metering {
        tokens.exchange(request.headers_mut());
    }
    let response = next.run(request).await;
    reshape_error(response).await
}

/// The code a Data Connect client reads for a Courbe error code.
fn dc_code(code: &str) -> &str {
    match code {
        "unauthorized" => "invalid_token",
        "forbidden" => "ADAM-DC-0008",
        other => other,
    }
}

async fn reshape_error(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY).await else {
        parts.status = StatusCode::INTERNAL_SERVER_ERROR;
        parts.headers.remove(header::CONTENT_LENGTH);
        return (
            parts,
            Body::from(r#"{"error":"internal","error_description":"internal error"}"#),
        )
            .into_response();
    };
    #[derive(serde::Deserialize)]
    struct Courbe {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        code: String,
        message: String,
    }
    let Ok(Courbe { error }) = serde_json::from_slice::<Courbe>(&bytes) else {
        // Already in the OAuth shape (the token endpoint's own errors).
        return (parts, Body::from(bytes)).into_response();
    };
    let reshaped = serde_json::json!({
        "error": dc_code(&error.code),
        "error_description": error.message,
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (parts, Body::from(reshaped.to_string())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_names_one_endpoint_and_is_a_metering_path() {
        for &(route, e) in ROUTES {
            assert_eq!(endpoint(route), Some(e), "{route}");
            assert!(is_metering_path(route), "{route}");
        }
        assert_eq!(endpoint("/v1/meters/:id/curve"), None);
        assert!(!is_metering_path("/v1/meters/x/curve"));
    }

    #[test]
    fn energy_is_rounded_to_the_nearest_wh_halves_up() {
        assert_eq!(wmin_to_wh(0), 0);
        assert_eq!(wmin_to_wh(29), 0);
        assert_eq!(wmin_to_wh(30), 1);
        assert_eq!(wmin_to_wh(89), 1);
        assert_eq!(wmin_to_wh(90), 2);
        assert_eq!(wmin_to_wh(6_000), 100);
    }

    #[test]
    fn a_request_reads_three_parameters_once_each_and_nothing_else() {
        let ok = "usage_point_id=09111642617347&start=2024-01-01&end=2024-01-08";
        let asked = read(Endpoint::ConsumptionLoadCurve, Some(ok)).unwrap();
        assert_eq!(asked.question.range_utc(), (1_704_063_600, 1_704_668_400));
        assert!(matches!(
            asked.question,
            Question::Curve {
                channel: Channel::CONSUMPTION,
                ..
            }
        ));
        let bad = [
            (
                "usage_point_id=09111642617347&start=2024-01-01&end=2024-01-09",
                "limit of 7",
            ),
            (
                "usage_point_id=09111642617347&start=2024-01-02&end=2024-01-01",
                "before",
            ),
            ("usage_point_id=09111642617347&start=2024-01-01", "`end`"),
            ("start=2024-01-01&end=2024-01-02", "`usage_point_id`"),
            (
                "usage_point_id=x y&start=2024-01-01&end=2024-01-02",
                "meter id",
            ),
            (
                "usage_point_id=09111642617347&start=2024-1-1&end=2024-01-02",
                "`start`",
            ),
            (
                "usage_point_id=09111642617347&start=2024-01-01T00:00:00Z&end=2024-01-02",
                "`start`",
            ),
            (&format!("{ok}&tz=UTC"), "`tz`"),
            (&format!("{ok}&%73tart=2024-01-02"), "`start`"),
        ];
        for (query, names) in bad {
            let e = read(Endpoint::ConsumptionLoadCurve, Some(query)).unwrap_err();
            assert_eq!(e.code, super::super::error::ErrorCode::InvalidArgument);
            assert!(e.message.contains(names), "{query}: {}", e.message);
        }
        let year = "usage_point_id=09111642617347&start=2023-01-01&end=2024-01-01";
        assert!(read(Endpoint::DailyConsumption, Some(year)).is_ok());
        let leap = "usage_point_id=09111642617347&start=2024-01-01&end=2025-01-01";
        assert!(read(Endpoint::DailyConsumption, Some(leap)).is_err());
    }
}

//! Portability: everything Courbe holds about a meter, in open formats.
//!
//! - `json`: one document with every channel's points (`consumption`, `production`,
//!   `max_power`), the consent history and the grants;
//! - `csv`: the native CSV of one channel (`meter_id,ts,value_w,quality,step_min`), which
//!   `courbe ingest --channel C` reads back to the same answers.

use serde::Serialize;

use super::Governance;
use crate::engine::Store;
use crate::http::api::format_ts;
use crate::http::error::{ApiError, ErrorCode};
use crate::source::SeriesSource;
use crate::{Channel, Point};

/// The format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    /// `json` (the default) or `csv`.
    pub fn parse(text: Option<&str>) -> Result<Format, ApiError> {
        match text {
            None | Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some(other) => Err(ApiError::invalid(format!(
                "unknown export format {other:?} (json or csv)"
            ))),
        }
    }
}

#[derive(Serialize)]
struct PointJson {
    ts: String,
    value: i32,
    step_min: u16,
    quality: &'static str,
}

impl From<&Point> for PointJson {
    fn from(p: &Point) -> Self {
        PointJson {
            ts: format_ts(p.ts_utc),
            value: p.value,
            step_min: p.step_min,
            quality: p.quality.as_str(),
        }
    }
}

fn all_points(store: &Store, meter: &str, channel: Channel) -> Result<Vec<Point>, ApiError> {
    let snapshot = store.snapshot();
    snapshot
        .points(meter, channel, i64::MIN / 4, i64::MAX / 4)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The export of `meter`: body and content type. 404 when Courbe holds nothing about it.
pub fn export(
    store: &Store,
    gov: &Governance,
    meter: &str,
    format: Format,
    channel: Channel,
) -> Result<(Vec<u8>, &'static str), ApiError> {
    let consent = gov.consent_history(meter);
    let grants = gov.grants_of(meter);
    if !store.snapshot().has_meter(meter) && consent.is_empty() && grants.is_empty() {
        return Err(ApiError::new(
            ErrorCode::UnknownMeter,
            format!("unknown meter {meter:?}"),
        ));
    }
    match format {
        Format::Csv => {
            let mut out = Vec::new();
            out.extend_from_slice(b"meter_id,ts,value_w,quality,step_min\n");
            for p in all_points(store, meter, channel)? {
                let line = format!(
                    "{meter},{},{},{},{}\n",
                    format_ts(p.ts_utc),
                    p.value,
                    p.quality.as_str(),
                    p.step_min
                );
                out.extend_from_slice(line.as_bytes());
            }
            Ok((out, "text/csv; charset=utf-8"))
        }
        Format::Json => {
            let mut channels = serde_json::Map::new();
            for c in Channel::ALL {
                let points: Vec<PointJson> = all_points(store, meter, c)?
                    .iter()
                    .map(PointJson::from)
                    .collect();
                let value =
                    serde_json::to_value(points).map_err(|e| ApiError::internal(e.to_string()))?;
                channels.insert(c.as_str().to_string(), value);
            }
            let consent: Vec<serde_json::Value> = consent
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "from": if e.from_utc == i64::MIN { "-infinity".to_string() } else { format_ts(e.from_utc) },
                        "collection": e.collection,
                        "step_min": e.step_min,
                        "erase": e.erase,
                        "recorded": format_ts(e.recorded_utc),
                        "by": e.by,
                    })
                })
                .collect();
            let grants: Vec<serde_json::Value> = grants
                .iter()
                .map(|g| {
                    serde_json::json!({
                        "id": g.id,
                        "supplier": g.supplier,
                        "from": format_ts(g.from_utc),
                        "to": format_ts(g.to_utc),
                        "created": format_ts(g.created_utc),
                        "by": g.by,
                        "revoked": g.revoked_utc.map(format_ts),
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "meter": meter,
                "exported": format_ts(super::now_utc()),
                "units": {"consumption": "W", "production": "W", "max_power": "VA"},
                "channels": channels,
                "consent": consent,
                "grants": grants,
            });
            let body = serde_json::to_vec(&doc).map_err(|e| ApiError::internal(e.to_string()))?;
            Ok((body, "application/json"))
        }
    }
}

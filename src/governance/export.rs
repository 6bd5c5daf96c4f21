//! Portability: everything Courbe holds about a meter, in open formats.
//!
//! - `json`: one document with every channel's points (`consumption`, `production`,
//!   `max_power`), the consent history and the grants;
//! - `csv`: the native CSV of one channel (`meter_id,ts,value_w,quality,step_min`), which
//!   `courbe ingest --channel C` reads back to the same answers.

use serde::Serialize;

use super::Governance;
use crate::engine::Store;
use crate::error::{ApiError, ErrorCode};
use crate::question::format_ts;
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

/// Bytes gathered before a chunk is handed to the sink.
const CHUNK_LEN: usize = 64 * 1024;

/// Hands out chunks of at least [`CHUNK_LEN`] bytes; `false` from the sink stops the export.
struct Chunker<'a> {
    buf: Vec<u8>,
    sink: &'a mut dyn FnMut(Vec<u8>) -> bool,
    open: bool,
}

impl Chunker<'_> {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK_LEN {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.open && !self.buf.is_empty() {
            self.open = (self.sink)(std::mem::take(&mut self.buf));
        }
        self.buf.clear();
    }
}

/// Visits the points of `(meter, channel)` in time order, one stored chunk at a time (memory
/// stays bounded by a chunk, whatever the meter's history).
fn each_point(
    store: &Store,
    meter: &str,
    channel: Channel,
    mut visit: impl FnMut(&Point) -> bool,
) -> Result<(), ApiError> {
    let snapshot = store.snapshot();
    let spans: Vec<(i64, i64)> = snapshot
        .chunks(meter, channel, i64::MIN / 4, i64::MAX / 4)
        .map_err(|e| ApiError::internal(e.message))?
        .iter()
        .map(|c| c.span())
        .collect();
    for (from, to) in spans {
        for p in snapshot
            .points(meter, channel, from, to)
            .map_err(|e| ApiError::internal(e.to_string()))?
        {
            if !visit(&p) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Whether Courbe holds anything about `meter`: data, consent or grants.
pub fn holds(store: &Store, gov: &Governance, meter: &str) -> bool {
    store.snapshot().has_meter(meter)
        || !gov.consent_history(meter).is_empty()
        || !gov.grants_of(meter).is_empty()
}

/// The format and channel an export's query string asks (`format`, `channel`; nothing else).
pub fn read_query(query: Option<&str>) -> Result<(Format, Channel), ApiError> {
    let params =
        crate::question::QueryParams::from_query(query, crate::question::EXPORT_PARAMETERS)?;
    let format = Format::parse(params.format.as_deref())?;
    let channel = crate::question::parse_channel(params.channel.as_deref())?;
    Ok((format, channel))
}

/// The content type of an export.
pub fn content_type(format: Format) -> &'static str {
    match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Json => "application/json",
    }
}

/// Writes the export of `meter` to `sink` in chunks; 404 when Courbe holds nothing about it.
pub fn write_export(
    store: &Store,
    gov: &Governance,
    meter: &str,
    format: Format,
    channel: Channel,
    sink: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<(), ApiError> {
    if !holds(store, gov, meter) {
        return Err(ApiError::new(
            ErrorCode::UnknownMeter,
            format!("unknown meter {meter:?}"),
        ));
    }
    let mut out = Chunker {
        buf: Vec::with_capacity(CHUNK_LEN * 2),
        sink,
        open: true,
    };
    let encode = |v: &serde_json::Value| -> Result<Vec<u8>, ApiError> {
        serde_json::to_vec(v).map_err(|e| ApiError::internal(e.to_string()))
    };
    match format {
        Format::Csv => {
            out.push(b"meter_id,ts,value_w,quality,step_min\n");
            each_point(store, meter, channel, |p| {
                let line = format!(
                    "{meter},{},{},{},{}\n",
                    format_ts(p.ts_utc),
                    p.value,
                    p.quality.as_str(),
                    p.step_min
                );
                out.push(line.as_bytes());
                out.open
            })?;
        }
        Format::Json => {
            let head = serde_json::json!({
                "meter": meter,
                "exported": format_ts(super::now_utc()),
                "units": {"consumption": "W", "production": "W", "max_power": "VA", "daily_energy": "Wh", "index": "Wh"},
            });
            let head = encode(&head)?;
            // The head object without its closing brace, then the channels.
            out.push(head.get(..head.len().saturating_sub(1)).unwrap_or_default());
            out.push(b",\"channels\":{");
            // The named channels, then each index channel the meter has, as `index:<REGISTER>`.
            let snapshot = store.snapshot();
            let indexes = snapshot
                .channels_of(meter)
                .map_err(|e| ApiError::internal(e.to_string()))?
                .into_iter()
                .filter(|c| c.is_index())
                .filter_map(|c| Some((c, format!("index:{}", snapshot.register_name(c)?))));
            let channels: Vec<(Channel, String)> = Channel::NAMED
                .into_iter()
                .map(|c| (c, c.as_str().to_string()))
                .chain(indexes)
                .collect();
            drop(snapshot);
            for (i, (c, name)) in channels.into_iter().enumerate() {
                if i > 0 {
                    out.push(b",");
                }
                out.push(format!("\"{name}\":[").as_bytes());
                let mut first = true;
                let mut failed = None;
                each_point(store, meter, c, |p| {
                    match serde_json::to_vec(&PointJson::from(p)) {
                        Ok(bytes) => {
                            if !first {
                                out.push(b",");
                            }
                            first = false;
                            out.push(&bytes);
                        }
                        Err(e) => failed = Some(e.to_string()),
                    }
                    out.open && failed.is_none()
                })?;
                if let Some(e) = failed {
                    return Err(ApiError::internal(e));
                }
                out.push(b"]");
            }
            let consent: Vec<serde_json::Value> = gov
                .consent_history(meter)
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
            let grants: Vec<serde_json::Value> = gov
                .grants_of(meter)
                .iter()
                .map(|g| {
                    serde_json::json!({
                        "id": g.id,
                        "supplier": g.supplier,
                        "from": format_ts(g.from_utc),
                        "to": format_ts(g.to_utc),
                        "kinds": g.kinds,
                        "created": format_ts(g.created_utc),
                        "by": g.by,
                        "revoked": g.revoked_utc.map(format_ts),
                    })
                })
                .collect();
            out.push(b"},\"consent\":");
            out.push(&encode(&serde_json::Value::Array(consent))?);
            out.push(b",\"grants\":");
            out.push(&encode(&serde_json::Value::Array(grants))?);
            out.push(b"}");
        }
    }
    out.flush();
    Ok(())
}

/// The whole export in memory (for callers that want one buffer).
pub fn export(
    store: &Store,
    gov: &Governance,
    meter: &str,
    format: Format,
    channel: Channel,
) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    write_export(store, gov, meter, format, channel, &mut |chunk| {
        body.extend_from_slice(&chunk);
        true
    })?;
    Ok(body)
}

//! Enedis Data Connect v5 metering documents (`metering_data_dc/v5/...`), as the API answers
//! them:
//!
//! ```json
//! {"meter_reading": {"usage_point_id": "16401220101758", "start": "2019-05-06", "end": "2019-05-12",
//!   "quality": "BRUT",
//!   "reading_type": {"measurement_kind": "energy", "measuring_period": "P1D", "unit": "Wh", "aggregate": "sum"},
//!   "interval_reading": [{"value": "540", "date": "2019-05-06"}]}}
//! ```
//!
//! (the `meter_reading` object alone is read too). What a document holds is told by its
//! `reading_type`:
//!
//! | `aggregate` | `unit` | endpoint | stored as |
//! |---|---|---|---|
//! | `average` | W | `consumption_load_curve`, `production_load_curve` | the channel asked for (consumption or production), `ts` = `date` − `interval_length` |
//! | `sum` (`measuring_period` P1D) | Wh, kWh | `daily_consumption` | daily energy, `ts` = Paris midnight of `date` |
//! | `maximum` | VA, kVA | `consumption_max_power` | `max_power` at `date` (the instant of the peak) |
//!
//! Dates are Europe/Paris wall time (`2019-05-06 03:00:00`) or RFC 3339 instants; a load-curve
//! `date` is the END of its interval, `interval_length` its step (`PT30M`; absent:
//! `measuring_period`). In the hour the clock goes back, a wall time that occurs twice is the
//! earliest of its instants after the previous reading's. `measure_type` `E` reads as estimated,
//! `C` as corrected, anything else (`B`, `R`, absent) as measured. A value `null` (or `"null"`)
//! is a gap. Daily production (`daily_production`) has no daily series in Courbe and is refused
//! as a whole.
//!
//! Records are the elements of `interval_reading`, each rejected alone with the line where it
//! starts. The document is held whole (an API answer is at most a few years of days or a week of
//! curve); each reading is decoded on its own from the raw text, so parsing allocates no
//! document tree.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::time::{local_midnight, paris, parse_date, parse_local_datetime, parse_rfc3339};
use super::{
    check_daily, check_point, check_prm, parse_scaled, Daily, IngestError, Rejected, Sink,
    CURVE_STEPS_MIN, DAILY_STEP_MIN, MAX_POWER_STEP_MIN,
};
use crate::{Channel, Point, Quality};

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    meter_reading: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct MeterReading<'a> {
    #[serde(default)]
    usage_point_id: Option<String>,
    #[serde(default)]
    reading_type: Option<ReadingType>,
    #[serde(borrow, default)]
    interval_reading: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize, Default)]
struct ReadingType {
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    measurement_kind: Option<String>,
    #[serde(default)]
    aggregate: Option<String>,
    #[serde(default)]
    measuring_period: Option<String>,
}

#[derive(Deserialize)]
struct Interval {
    #[serde(default)]
    value: serde_json::Value,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    interval_length: Option<String>,
    #[serde(default)]
    measure_type: Option<String>,
}

/// What the document holds.
enum Kind {
    Curve(Channel),
    DailyEnergy { kilo: bool },
    MaxPower { kilo: bool },
}

fn json_error(input: &[u8], e: &serde_json::Error) -> IngestError {
    let line = if e.line() == 0 {
        input.iter().filter(|&&b| b == b'\n').count() as u64 + 1
    } else {
        e.line() as u64
    };
    IngestError::Document {
        line,
        reason: format!("not a Data Connect metering document: {e}"),
    }
}

/// The step of an ISO 8601 duration `PT<n>M` / `PT<n>H` / `P1D`, minutes.
fn duration_min(text: &str) -> Option<u16> {
    if text == "P1D" {
        return Some(1440);
    }
    let rest = text.strip_prefix("PT")?;
    if let Some(m) = rest.strip_suffix('M') {
        return m.parse().ok();
    }
    rest.strip_suffix('H')?
        .parse::<u16>()
        .ok()
        .and_then(|h| h.checked_mul(60))
}

pub(crate) fn parse(
    input: &[u8],
    channel: Channel,
    sink: &mut impl Sink,
) -> Result<(), IngestError> {
    let envelope: Envelope<'_> =
        serde_json::from_slice(input).map_err(|e| json_error(input, &e))?;
    let (body, body_offset) = match envelope.meter_reading {
        Some(raw) => {
            let offset = (raw.get().as_ptr() as usize).saturating_sub(input.as_ptr() as usize);
            (raw.get().as_bytes(), offset)
        }
        None => (input, 0),
    };
    let reading: MeterReading<'_> = serde_json::from_slice(body).map_err(|e| {
        let mut err = json_error(body, &e);
        if let IngestError::Document { line, .. } = &mut err {
            *line += count_lines(input.get(..body_offset).unwrap_or_default());
        }
        err
    })?;
    let doc_err = |reason: String| IngestError::Document {
        line: 1 + count_lines(input.get(..body_offset).unwrap_or_default()),
        reason,
    };
    let rt = reading
        .reading_type
        .ok_or_else(|| doc_err("no reading_type: what the values are is unknown".into()))?;
    let unit = rt.unit.as_deref().unwrap_or_default();
    let aggregate = rt.aggregate.as_deref().unwrap_or_default();
    let kind = match aggregate {
        "average" => {
            if unit != "W" {
                return Err(doc_err(format!("load curve unit {unit:?} is not W")));
            }
            if !channel.is_curve() {
                return Err(doc_err(format!(
                    "a load curve is read into consumption or production, not {}",
                    channel.as_str()
                )));
            }
            Kind::Curve(channel)
        }
        "sum" => {
            if rt
                .measurement_kind
                .as_deref()
                .is_some_and(|k| k != "energy")
                || rt.measuring_period.as_deref().is_some_and(|p| p != "P1D")
            {
                return Err(doc_err(
                    "a sum is read only as daily energy (measurement_kind energy, \
                     measuring_period P1D)"
                        .into(),
                ));
            }
            if channel == Channel::PRODUCTION {
                return Err(doc_err(
                    "daily production has no daily series in Courbe (daily energy is \
                     consumption); ingest production_load_curve instead"
                        .into(),
                ));
            }
            match unit {
                "Wh" => Kind::DailyEnergy { kilo: false },
                "kWh" => Kind::DailyEnergy { kilo: true },
                other => {
                    return Err(doc_err(format!(
                        "daily energy unit {other:?} is not Wh or kWh"
                    )))
                }
            }
        }
        "maximum" => match unit {
            "VA" => Kind::MaxPower { kilo: false },
            "kVA" => Kind::MaxPower { kilo: true },
            other => {
                return Err(doc_err(format!(
                    "maximum power unit {other:?} is not VA or kVA"
                )))
            }
        },
        other => {
            return Err(doc_err(format!(
                "reading_type.aggregate {other:?} is not average (load curve), sum (daily \
                 energy) or maximum (maximum power)"
            )))
        }
    };
    let meter = match reading.usage_point_id.as_deref() {
        Some(id) => check_prm(id.as_bytes()).map(str::to_owned),
        None => Err("no usage_point_id".to_owned()),
    };
    let default_step = rt.measuring_period.as_deref().and_then(duration_min);
    let tz = paris();
    let mut reader = Reader {
        kind,
        tz,
        default_step,
        previous: None,
    };
    let mut lines = LineCounter {
        base: input.as_ptr() as usize,
        input,
        at: 0,
        line: 1,
    };
    for raw in reading.interval_reading.unwrap_or_default() {
        let line = lines.line_of(raw.get().as_ptr() as usize);
        let meter = match &meter {
            Ok(m) => m.as_str(),
            Err(reason) => {
                sink.reject(Rejected {
                    line,
                    reason: reason.clone(),
                });
                continue;
            }
        };
        let interval: Interval = match serde_json::from_str(raw.get()) {
            Ok(i) => i,
            Err(e) => {
                sink.reject(Rejected {
                    line,
                    reason: format!("unreadable interval_reading: {e}"),
                });
                continue;
            }
        };
        match reader.read(interval) {
            Ok(None) => {}
            Ok(Some(Reading::Channel(channel, point))) => sink.point(line, meter, channel, point),
            Ok(Some(Reading::Daily(point))) => sink.daily(line, meter, Daily::Energy, point),
            Err(reason) => sink.reject(Rejected { line, reason }),
        }
    }
    Ok(())
}

fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Lines of byte positions met in increasing order.
struct LineCounter<'a> {
    base: usize,
    input: &'a [u8],
    at: usize,
    line: u64,
}

impl LineCounter<'_> {
    fn line_of(&mut self, ptr: usize) -> u64 {
        let offset = ptr.saturating_sub(self.base).min(self.input.len());
        if offset >= self.at {
            self.line += count_lines(self.input.get(self.at..offset).unwrap_or_default());
            self.at = offset;
        }
        self.line
    }
}

enum Reading {
    Channel(Channel, Point),
    Daily(Point),
}

struct Reader {
    kind: Kind,
    tz: jiff::tz::TimeZone,
    default_step: Option<u16>,
    /// The instant of the previous reading (the end of the previous interval for a curve).
    previous: Option<i64>,
}

impl Reader {
    /// An instant from a wall time or an RFC 3339 instant; a wall time that occurs twice is
    /// the earliest after the previous reading.
    fn instant(&self, date: &str) -> Result<i64, String> {
        if let Ok(ts) = parse_rfc3339(date.as_bytes()) {
            return Ok(ts);
        }
        let (earlier, later) = parse_local_datetime(&self.tz, date.as_bytes())
            .map_err(|e| format!("date {date:?}: {e}"))?;
        Ok(match self.previous {
            Some(p) if earlier <= p && later > p => later,
            _ => earlier,
        })
    }

    fn read(&mut self, interval: Interval) -> Result<Option<Reading>, String> {
        let value = match &interval.value {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) if s == "null" || s.is_empty() => None,
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            other => return Err(format!("value {other} is not a number")),
        };
        let date = interval.date.as_deref().ok_or("no date")?.trim();
        let quality = match interval.measure_type.as_deref() {
            Some("E") => Quality::Estimated,
            Some("C") => Quality::Corrected,
            _ => Quality::Measured,
        };
        match self.kind {
            Kind::Curve(channel) => {
                let step_min = match interval.interval_length.as_deref() {
                    Some(len) => duration_min(len)
                        .ok_or_else(|| format!("interval_length {len:?} is not PT<n>M"))?,
                    None => self
                        .default_step
                        .ok_or("no interval_length (nor reading_type.measuring_period)")?,
                };
                if !CURVE_STEPS_MIN.contains(&step_min) {
                    return Err(format!(
                        "interval_length of {step_min} minutes (expected 5, 10, 15, 30 or 60)"
                    ));
                }
                let end = self.instant(date)?;
                self.previous = Some(end);
                let Some(value) = value else {
                    return Ok(None);
                };
                let value = parse_scaled(&value, false, "value", "W")?;
                let point = Point {
                    ts_utc: end - 60 * i64::from(step_min),
                    value,
                    step_min,
                    quality,
                };
                check_point(channel, &point)?;
                Ok(Some(Reading::Channel(channel, point)))
            }
            Kind::DailyEnergy { kilo } => {
                let day = date.get(..10).unwrap_or(date);
                let day = parse_date(day.as_bytes()).map_err(|e| format!("date {date:?}: {e}"))?;
                let ts_utc = local_midnight(&self.tz, day)?;
                let Some(value) = value else {
                    return Ok(None);
                };
                let value = parse_scaled(
                    &value,
                    kilo,
                    "daily energy",
                    if kilo { "kWh" } else { "Wh" },
                )?;
                let point = Point {
                    ts_utc,
                    value,
                    step_min: DAILY_STEP_MIN,
                    quality,
                };
                check_daily(&Daily::Energy, &point)?;
                Ok(Some(Reading::Daily(point)))
            }
            Kind::MaxPower { kilo } => {
                let ts_utc = if date.len() == 10 {
                    let day =
                        parse_date(date.as_bytes()).map_err(|e| format!("date {date:?}: {e}"))?;
                    local_midnight(&self.tz, day)?
                } else {
                    self.instant(date)?
                };
                self.previous = Some(ts_utc);
                let Some(value) = value else {
                    return Ok(None);
                };
                let value = parse_scaled(
                    &value,
                    kilo,
                    "maximum power",
                    if kilo { "kVA" } else { "VA" },
                )?;
                let point = Point {
                    ts_utc,
                    value,
                    step_min: MAX_POWER_STEP_MIN,
                    quality,
                };
                check_point(Channel::MAX_POWER, &point)?;
                Ok(Some(Reading::Channel(Channel::MAX_POWER, point)))
            }
        }
    }
}

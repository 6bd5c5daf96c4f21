//! The answer bodies of the query API: the JSON shapes of the contract (`*Body`, `*Json`, with
//! their OpenAPI schemas), their CSV and their Arrow IPC streams ([`super::arrow`]), written
//! from the library's domain answers ([`courbe::question::Answer`]). `courbe query` writes its
//! answers through the same code, so the command line and the HTTP API cannot disagree.

use std::io;

use serde::Serialize;

use crate::engine::Store;
use crate::error::ApiError;
use crate::query::{self, PeakSource};
use crate::question::{
    self, format_ts, unit_of, Answer, Encoding, EraseQuestion, Limits, Question,
};
use crate::source::SeriesSource;
use crate::{Point, Quality};

/// The media type of an answer in `encoding`.
pub fn content_type(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Json => "application/json",
        Encoding::Csv => "text/csv; charset=utf-8",
        Encoding::Arrow => super::arrow::MEDIA_TYPE,
    }
}

/// Whether an `Accept` header asks for an Arrow IPC stream: one of its media ranges is
/// [`super::arrow::MEDIA_TYPE`] (any case) with a quality above 0.
/// Whether a request's `Accept` header asks for Arrow ([`accepts_arrow`]).
pub fn prefers_arrow(headers: &axum::http::HeaderMap) -> bool {
    accepts_arrow(
        headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    )
}

pub fn accepts_arrow(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| {
        accept.split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case(super::arrow::MEDIA_TYPE) && !refused
        })
    })
}

/// What an erasure removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EraseBody {
    pub meter: String,
    pub points_removed: u64,
}

impl From<&query::EnergyPeriod> for EnergyPeriodJson {
    /// The period's figures, with its HP/HC split when it has one and no registers.
    fn from(p: &query::EnergyPeriod) -> EnergyPeriodJson {
        EnergyPeriodJson {
            start_utc: p.start_utc,
            end_utc: p.end_utc,
            start: format_ts(p.start_utc),
            end: format_ts(p.end_utc),
            energy_wh: p.energy_wh(),
            points: p.points,
            expected_points: p.expected_points,
            by_tariff: p.by_tariff_wmin.map(|(hp, hc)| ByTariff {
                hp: hp / 60.0,
                hc: hc / 60.0,
            }),
            by_register: None,
            source: p.source.as_str(),
        }
    }
}

/// Answers `question` from `src` in `encoding`: the bytes and their media type. A curve in
/// Arrow is written from the decoded columns themselves (no `Point`, no instant as text).
pub fn answer_encoded(
    src: &dyn SeriesSource,
    question: &Question,
    encoding: Encoding,
    limits: &Limits,
) -> Result<(Vec<u8>, &'static str), ApiError> {
    if let (
        Encoding::Arrow,
        Question::Curve {
            meter,
            channel,
            from_utc,
            to_utc,
            columns: false,
        },
    ) = (encoding, question)
    {
        // An unknown meter takes the general path, whose 404 comes before any other check.
        if src.has_meter(meter) {
            let bytes =
                query::with_curve_columns(src, meter, *channel, *from_utc, *to_utc, |c| {
                    super::arrow::curve(meter, channel.as_str(), unit_of(*channel), c)
                })??;
            return Ok((bytes, content_type(encoding)));
        }
    }
    AnswerBody::from(question::answer(src, question, limits)?).encode(encoding)
}

/// Erases as asked ([`question::erase`]): what was removed.
pub fn erase(store: &Store, asked: &EraseQuestion) -> Result<EraseBody, ApiError> {
    let report = question::erase(store, asked)?;
    Ok(EraseBody {
        meter: asked.meter.clone(),
        points_removed: report.points_removed,
    })
}

/// Answers `question` from `src`, in the shapes of the contract.
pub fn answer(
    src: &dyn SeriesSource,
    question: &Question,
    limits: &Limits,
) -> Result<AnswerBody, ApiError> {
    question::answer(src, question, limits).map(AnswerBody::from)
}

impl From<Answer> for AnswerBody {
    fn from(answer: Answer) -> AnswerBody {
        match answer {
            Answer::Curve {
                meter,
                channel,
                points,
            } => AnswerBody::Curve(CurveBody {
                meter,
                channel: channel.as_str(),
                unit: unit_of(channel),
                points: points.iter().map(PointJson::from).collect(),
            }),
            Answer::CurveRuns {
                meter,
                channel,
                runs,
            } => AnswerBody::CurveRuns(RunsBody {
                meter,
                channel: channel.as_str(),
                unit: unit_of(channel),
                runs: runs
                    .into_iter()
                    .map(|r| RunJson {
                        start_utc: r.start_utc,
                        start: format_ts(r.start_utc),
                        step_min: r.step_min,
                        values: r.values,
                        quality: r
                            .quality
                            .map(|q| q.into_iter().map(Quality::as_str).collect()),
                    })
                    .collect(),
            }),
            Answer::Energy {
                meter,
                channel,
                tz,
                periods,
            } => AnswerBody::Energy(EnergyBody {
                meter,
                channel: channel.as_str(),
                unit: "Wh",
                tz,
                periods: periods.iter().map(EnergyPeriodJson::from).collect(),
            }),
            Answer::EnergyByRegister {
                meter,
                channel,
                tz,
                periods,
            } => AnswerBody::Energy(EnergyBody {
                meter,
                channel: channel.as_str(),
                unit: "Wh",
                tz,
                periods: periods
                    .into_iter()
                    .map(|p| EnergyPeriodJson {
                        by_register: Some(
                            p.by_register_ws
                                .into_iter()
                                .map(|(name, ws)| (name, ws as f64 / 3600.0))
                                .collect(),
                        ),
                        ..EnergyPeriodJson::from(&p.period)
                    })
                    .collect(),
            }),
            Answer::Peak { meter, periods } => AnswerBody::Peak(PeakBody {
                meter,
                periods: periods
                    .into_iter()
                    .map(|p| PeakPeriodJson::of(p.start_utc, p.end_utc, p.peak))
                    .collect(),
            }),
            Answer::Index { meter, table } => AnswerBody::Index(IndexBody::of(&meter, &table)),
            Answer::Summary { meter, summary } => {
                AnswerBody::Summary(SummaryBody::of(&meter, &summary))
            }
            Answer::FleetCurve { channel, points } => AnswerBody::FleetCurve(FleetCurveBody {
                channel: channel.as_str(),
                unit: unit_of(channel),
                points: points.into_iter().map(FleetPointJson::from).collect(),
            }),
            Answer::FleetEnergy { tz, meters } => AnswerBody::FleetEnergy(FleetEnergyBody {
                unit: "Wh",
                tz,
                meters: meters.into_iter().map(MeterEnergyJson::from).collect(),
            }),
        }
    }
}

/// The schemas utoipa cannot derive: maps whose values may be null.
mod openapi_schemas {
    use utoipa::openapi::{RefOr, Schema};

    fn map_of_nullable(value: serde_json::Value) -> RefOr<Schema> {
        serde_json::from_value(serde_json::json!({
            "type": "object",
            "additionalProperties": {"oneOf": [value, {"type": "null"}]}
        }))
        .expect("a map schema")
    }

    /// Per register, its reading or null.
    pub fn indexes() -> RefOr<Schema> {
        map_of_nullable(serde_json::json!({"$ref": "#/components/schemas/IndexReadingJson"}))
    }

    /// Per register, Wh or null.
    pub fn wh_by_register() -> RefOr<Schema> {
        map_of_nullable(serde_json::json!({"type": "integer", "format": "int64"}))
    }
}

/// The answer to a [`Question`], in the shapes of the contract.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AnswerBody {
    Curve(CurveBody),
    CurveRuns(RunsBody),
    Energy(EnergyBody),
    Peak(PeakBody),
    FleetCurve(FleetCurveBody),
    FleetEnergy(FleetEnergyBody),
    Index(IndexBody),
    Summary(SummaryBody),
}

/// One register's index at an instant.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IndexReadingJson {
    pub wh: i64,
    pub quality: &'static str,
}

/// One boundary of an index answer: per register, its reading or null.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IndexRowJson {
    pub at: String,
    #[schema(schema_with = openapi_schemas::indexes)]
    pub indexes: std::collections::BTreeMap<String, Option<IndexReadingJson>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IndexBody {
    pub meter: String,
    pub unit: &'static str,
    pub tz: &'static str,
    pub registers: Vec<String>,
    pub readings: Vec<IndexRowJson>,
}

impl IndexBody {
    fn of(meter: &str, table: &query::IndexTable) -> IndexBody {
        IndexBody {
            meter: meter.to_string(),
            unit: "Wh",
            tz: query::daily::DAILY_TZ,
            registers: table.registers.iter().map(|r| r.to_string()).collect(),
            readings: table
                .rows
                .iter()
                .map(|(at, readings)| IndexRowJson {
                    at: format_ts(*at),
                    indexes: table
                        .registers
                        .iter()
                        .zip(readings)
                        .map(|(name, r)| {
                            (
                                name.to_string(),
                                r.map(|r| IndexReadingJson {
                                    wh: r.wh,
                                    quality: r.quality.as_str(),
                                }),
                            )
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// One month of a summary.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SummaryMonthJson {
    pub start: String,
    pub end: String,
    /// The indexes at the month's first instant.
    #[schema(schema_with = openapi_schemas::indexes)]
    pub index_start: std::collections::BTreeMap<String, Option<IndexReadingJson>>,
    pub energy_wh: f64,
    pub source: &'static str,
    /// Per register, the difference of its indexes over the month (null where one is missing).
    #[schema(schema_with = openapi_schemas::wh_by_register)]
    pub by_register: std::collections::BTreeMap<String, Option<i64>>,
    pub max_power: PeakPeriodJson,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SummaryYearJson {
    pub energy_wh: f64,
    pub source: &'static str,
    #[schema(schema_with = openapi_schemas::wh_by_register)]
    pub by_register: std::collections::BTreeMap<String, Option<i64>>,
    pub max_power: PeakPeriodJson,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SummaryBody {
    pub meter: String,
    pub year: i16,
    pub unit: &'static str,
    pub tz: &'static str,
    pub registers: Vec<String>,
    pub months: Vec<SummaryMonthJson>,
    /// The indexes at the end of the year.
    #[schema(schema_with = openapi_schemas::indexes)]
    pub index_end: std::collections::BTreeMap<String, Option<IndexReadingJson>>,
    pub year_total: SummaryYearJson,
}

impl SummaryBody {
    fn of(meter: &str, s: &query::YearSummary) -> SummaryBody {
        let names: Vec<String> = s.registers.iter().map(|r| r.to_string()).collect();
        let index_row = |i: usize| -> std::collections::BTreeMap<String, Option<IndexReadingJson>> {
            let row = s.indexes.rows.get(i).map(|r| r.1.as_slice()).unwrap_or(&[]);
            names
                .iter()
                .enumerate()
                .map(|(k, name)| {
                    let reading = row.get(k).copied().flatten().map(|r| IndexReadingJson {
                        wh: r.wh,
                        quality: r.quality.as_str(),
                    });
                    (name.clone(), reading)
                })
                .collect()
        };
        let by_register =
            |values: &[Option<i64>]| -> std::collections::BTreeMap<String, Option<i64>> {
                names
                    .iter()
                    .enumerate()
                    .map(|(k, name)| (name.clone(), values.get(k).copied().flatten()))
                    .collect()
            };
        // A register's year is the sum of its months when every month has a difference.
        let year_by_register: Vec<Option<i64>> = (0..names.len())
            .map(|k| {
                s.months
                    .iter()
                    .map(|m| m.by_register_wh.get(k).copied().flatten())
                    .sum::<Option<i64>>()
            })
            .collect();
        SummaryBody {
            meter: meter.to_string(),
            year: s.year,
            unit: "Wh",
            tz: query::daily::DAILY_TZ,
            registers: names.clone(),
            months: s
                .months
                .iter()
                .enumerate()
                .map(|(i, m)| SummaryMonthJson {
                    start: format_ts(m.energy.start_utc),
                    end: format_ts(m.energy.end_utc),
                    index_start: index_row(i),
                    energy_wh: m.energy.energy_wh(),
                    source: m.energy.source.as_str(),
                    by_register: by_register(&m.by_register_wh),
                    max_power: PeakPeriodJson::of(m.energy.start_utc, m.energy.end_utc, m.peak),
                })
                .collect(),
            index_end: index_row(s.months.len()),
            year_total: SummaryYearJson {
                energy_wh: s.total.energy_wh(),
                source: s.total.source.as_str(),
                by_register: by_register(&year_by_register),
                max_power: PeakPeriodJson::of(s.total.start_utc, s.total.end_utc, s.peak),
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CurveBody {
    pub meter: String,
    pub channel: &'static str,
    pub unit: &'static str,
    pub points: Vec<PointJson>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PointJson {
    #[serde(skip)]
    pub ts_utc: i64,
    pub ts: String,
    pub value: i32,
    pub step_min: u16,
    pub quality: &'static str,
}

impl From<&Point> for PointJson {
    fn from(p: &Point) -> PointJson {
        PointJson {
            ts_utc: p.ts_utc,
            ts: format_ts(p.ts_utc),
            value: p.value,
            step_min: p.step_min,
            quality: p.quality.as_str(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunsBody {
    pub meter: String,
    pub channel: &'static str,
    pub unit: &'static str,
    pub runs: Vec<RunJson>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunJson {
    #[serde(skip)]
    pub start_utc: i64,
    pub start: String,
    pub step_min: u16,
    pub values: Vec<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<Vec<&'static str>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EnergyBody {
    pub meter: String,
    pub channel: &'static str,
    pub unit: &'static str,
    pub tz: String,
    pub periods: Vec<EnergyPeriodJson>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EnergyPeriodJson {
    #[serde(skip)]
    pub start_utc: i64,
    #[serde(skip)]
    pub end_utc: i64,
    pub start: String,
    pub end: String,
    pub energy_wh: f64,
    pub points: u64,
    pub expected_points: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_tariff: Option<ByTariff>,
    /// With `tariff=contract` or `tariff=option:...`: Wh per register (they add up to
    /// `energy_wh`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_register: Option<std::collections::BTreeMap<String, f64>>,
    /// `curve`, `daily`, `index` or `none` (see [`query::EnergySource`]); with `daily` and
    /// `index`, `points` and `expected_points` count days.
    pub source: &'static str,
}

/// Energy per tariff period, Wh.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ByTariff {
    #[serde(rename = "HP")]
    pub hp: f64,
    #[serde(rename = "HC")]
    pub hc: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PeakBody {
    pub meter: String,
    pub periods: Vec<PeakPeriodJson>,
}

/// A period without data has every field but `start` and `end` null.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PeakPeriodJson {
    pub start: String,
    pub end: String,
    pub value: Option<i32>,
    pub unit: Option<&'static str>,
    pub at: Option<String>,
    pub source: Option<&'static str>,
}

impl PeakPeriodJson {
    /// `,value,unit,at,source` and the end of the line.
    fn write_csv_tail(&self, out: &mut dyn io::Write) -> io::Result<()> {
        writeln!(
            out,
            ",{},{},{},{}",
            self.value.map(|v| v.to_string()).unwrap_or_default(),
            self.unit.unwrap_or_default(),
            self.at.as_deref().unwrap_or_default(),
            self.source.unwrap_or_default()
        )
    }

    fn of(start_utc: i64, end_utc: i64, peak: Option<(i32, i64, PeakSource)>) -> PeakPeriodJson {
        let (value, unit, at, source) = match peak {
            Some((value, at, PeakSource::MaxPower)) => (
                Some(value),
                Some("VA"),
                Some(format_ts(at)),
                Some("max_power"),
            ),
            Some((value, at, PeakSource::Curve)) => {
                (Some(value), Some("W"), Some(format_ts(at)), Some("curve"))
            }
            None => (None, None, None, None),
        };
        PeakPeriodJson {
            start: format_ts(start_utc),
            end: format_ts(end_utc),
            value,
            unit,
            at,
            source,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FleetCurveBody {
    pub channel: &'static str,
    pub unit: &'static str,
    pub points: Vec<FleetPointJson>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FleetPointJson {
    #[serde(skip)]
    pub ts_utc: i64,
    pub ts: String,
    pub value: i64,
    pub meters: u32,
}

impl From<query::FleetPoint> for FleetPointJson {
    fn from(p: query::FleetPoint) -> FleetPointJson {
        FleetPointJson {
            ts_utc: p.ts_utc,
            ts: format_ts(p.ts_utc),
            value: p.total,
            meters: p.meters,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FleetEnergyBody {
    pub unit: &'static str,
    pub tz: String,
    pub meters: Vec<MeterEnergyJson>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MeterEnergyJson {
    pub meter: String,
    pub periods: Vec<PeriodEnergyJson>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PeriodEnergyJson {
    #[serde(skip)]
    pub start_utc: i64,
    #[serde(skip)]
    pub end_utc: i64,
    pub start: String,
    pub end: String,
    pub energy_wh: f64,
}

impl From<query::MeterEnergy> for MeterEnergyJson {
    fn from(m: query::MeterEnergy) -> MeterEnergyJson {
        MeterEnergyJson {
            meter: m.meter,
            periods: m
                .periods
                .into_iter()
                .map(|p| PeriodEnergyJson::new(p.start_utc, p.end_utc, p.energy_wh()))
                .collect(),
        }
    }
}

impl PeriodEnergyJson {
    /// A period's energy as a fleet energy answer shows it.
    pub fn new(start_utc: i64, end_utc: i64, energy_wh: f64) -> PeriodEnergyJson {
        PeriodEnergyJson {
            start_utc,
            end_utc,
            start: format_ts(start_utc),
            end: format_ts(end_utc),
            energy_wh,
        }
    }
}

impl AnswerBody {
    /// Compact JSON, exactly as the HTTP API sends it.
    pub fn to_json(&self) -> Result<String, ApiError> {
        serde_json::to_string(self)
            .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))
    }

    /// CSV with a header line; curves in the native ingest format.
    pub fn write_csv(&self, out: &mut dyn io::Write) -> io::Result<()> {
        match self {
            AnswerBody::Curve(body) => {
                writeln!(out, "meter_id,ts,value_w,quality,step_min")?;
                for p in &body.points {
                    writeln!(
                        out,
                        "{},{},{},{},{}",
                        body.meter, p.ts, p.value, p.quality, p.step_min
                    )?;
                }
            }
            AnswerBody::CurveRuns(body) => {
                writeln!(out, "meter_id,ts,value_w,quality,step_min")?;
                for run in &body.runs {
                    for (i, value) in run.values.iter().enumerate() {
                        let ts = run.start_utc + i as i64 * 60 * i64::from(run.step_min);
                        let quality = run
                            .quality
                            .as_ref()
                            .and_then(|q| q.get(i).copied())
                            .unwrap_or("measured");
                        writeln!(
                            out,
                            "{},{},{value},{quality},{}",
                            body.meter,
                            format_ts(ts),
                            run.step_min
                        )?;
                    }
                }
            }
            AnswerBody::Energy(body) => {
                let tariff = body.periods.iter().any(|p| p.by_tariff.is_some());
                let registers: Vec<String> = body
                    .periods
                    .first()
                    .and_then(|p| p.by_register.as_ref())
                    .map(|r| r.keys().cloned().collect())
                    .unwrap_or_default();
                write!(out, "start,end,energy_wh,points,expected_points")?;
                write!(out, "{}", if tariff { ",hp_wh,hc_wh" } else { "" })?;
                for r in &registers {
                    write!(out, ",{r}_wh")?;
                }
                writeln!(out, ",source")?;
                for p in &body.periods {
                    write!(
                        out,
                        "{},{},{},{},{}",
                        p.start, p.end, p.energy_wh, p.points, p.expected_points
                    )?;
                    match &p.by_tariff {
                        Some(t) => write!(out, ",{},{}", t.hp, t.hc)?,
                        None if tariff => write!(out, ",,")?,
                        None => {}
                    }
                    for r in &registers {
                        let wh = p.by_register.as_ref().and_then(|b| b.get(r));
                        write!(out, ",{}", wh.copied().unwrap_or(0.0))?;
                    }
                    writeln!(out, ",{}", p.source)?;
                }
            }
            AnswerBody::Peak(body) => {
                writeln!(out, "start,end,value,unit,at,source")?;
                for p in &body.periods {
                    writeln!(
                        out,
                        "{},{},{},{},{},{}",
                        p.start,
                        p.end,
                        p.value.map(|v| v.to_string()).unwrap_or_default(),
                        p.unit.unwrap_or_default(),
                        p.at.as_deref().unwrap_or_default(),
                        p.source.unwrap_or_default()
                    )?;
                }
            }
            AnswerBody::FleetCurve(body) => {
                writeln!(out, "ts,value_w,meters")?;
                for p in &body.points {
                    writeln!(out, "{},{},{}", p.ts, p.value, p.meters)?;
                }
            }
            AnswerBody::FleetEnergy(body) => {
                writeln!(out, "meter_id,start,end,energy_wh")?;
                for m in &body.meters {
                    for p in &m.periods {
                        writeln!(out, "{},{},{},{}", m.meter, p.start, p.end, p.energy_wh)?;
                    }
                }
            }
            AnswerBody::Index(body) => {
                writeln!(out, "at,register,index_wh,quality")?;
                for row in &body.readings {
                    for (register, reading) in &row.indexes {
                        match reading {
                            Some(r) => {
                                writeln!(out, "{},{register},{},{}", row.at, r.wh, r.quality)?
                            }
                            None => writeln!(out, "{},{register},,", row.at)?,
                        }
                    }
                }
            }
            AnswerBody::Summary(body) => {
                write!(out, "start,end,energy_wh,source")?;
                for r in &body.registers {
                    write!(out, ",{r}_index_start_wh,{r}_index_start_quality,{r}_wh")?;
                }
                writeln!(
                    out,
                    ",max_power,max_power_unit,max_power_at,max_power_source"
                )?;
                for m in &body.months {
                    write!(out, "{},{},{},{}", m.start, m.end, m.energy_wh, m.source)?;
                    for r in &body.registers {
                        let start = m.index_start.get(r).and_then(Option::as_ref);
                        let wh = m.by_register.get(r).copied().flatten();
                        write!(
                            out,
                            ",{},{},{}",
                            start.map(|s| s.wh.to_string()).unwrap_or_default(),
                            start.map(|s| s.quality).unwrap_or_default(),
                            wh.map(|v| v.to_string()).unwrap_or_default()
                        )?;
                    }
                    m.max_power.write_csv_tail(out)?;
                }
                // The year, like a month: the indexes at its start and each register's total.
                let (first, last) = (body.months.first(), body.months.last());
                write!(
                    out,
                    "{},{},{},{}",
                    first.map(|m| m.start.as_str()).unwrap_or_default(),
                    last.map(|m| m.end.as_str()).unwrap_or_default(),
                    body.year_total.energy_wh,
                    body.year_total.source
                )?;
                for r in &body.registers {
                    let end = first
                        .and_then(|m| m.index_start.get(r))
                        .and_then(Option::as_ref);
                    let wh = body.year_total.by_register.get(r).copied().flatten();
                    write!(
                        out,
                        ",{},{},{}",
                        end.map(|s| s.wh.to_string()).unwrap_or_default(),
                        end.map(|s| s.quality).unwrap_or_default(),
                        wh.map(|v| v.to_string()).unwrap_or_default()
                    )?;
                }
                body.year_total.max_power.write_csv_tail(out)?;
            }
        }
        Ok(())
    }

    /// The encoded answer and its media type.
    pub fn encode(&self, encoding: Encoding) -> Result<(Vec<u8>, &'static str), ApiError> {
        let bytes = match encoding {
            Encoding::Json => self.to_json()?.into_bytes(),
            Encoding::Csv => {
                let mut out = Vec::new();
                self.write_csv(&mut out)
                    .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))?;
                out
            }
            Encoding::Arrow => super::arrow::answer(self)?,
        };
        Ok((bytes, content_type(encoding)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accept_header_asks_for_arrow_only_by_its_media_type_with_a_quality_above_zero() {
        let arrow = "application/vnd.apache.arrow.stream";
        for yes in [
            arrow,
            "Application/VND.Apache.Arrow.Stream",
            "text/csv, application/vnd.apache.arrow.stream;q=0.5",
            " application/vnd.apache.arrow.stream ; q=1",
        ] {
            assert!(accepts_arrow(Some(yes)), "{yes}");
        }
        for no in [
            "",
            "*/*",
            "application/json",
            "application/vnd.apache.arrow.file",
            "application/vnd.apache.arrow.stream;q=0",
            "application/vnd.apache.arrow.stream; q=0.0",
        ] {
            assert!(!accepts_arrow(Some(no)), "{no}");
        }
        assert!(!accepts_arrow(None));
    }

    #[test]
    fn json_shapes_follow_the_contract() {
        let energy = AnswerBody::Energy(EnergyBody {
            meter: "m".into(),
            channel: "consumption",
            unit: "Wh",
            tz: "Europe/Paris".into(),
            periods: vec![EnergyPeriodJson {
                start_utc: 0,
                end_utc: 86_400,
                start: format_ts(0),
                end: format_ts(86_400),
                energy_wh: 12.5,
                points: 47,
                expected_points: 48,
                by_tariff: Some(ByTariff { hp: 10.0, hc: 2.5 }),
                by_register: None,
                source: "curve",
            }],
        });
        let v: serde_json::Value = serde_json::from_str(&energy.to_json().unwrap()).unwrap();
        assert_eq!(v["unit"], "Wh");
        assert_eq!(v["periods"][0]["by_tariff"]["HC"], 2.5);
        assert_eq!(v["periods"][0]["energy_wh"], 12.5);
        assert_eq!(v["periods"][0]["source"], "curve");

        let runs = AnswerBody::CurveRuns(RunsBody {
            meter: "m".into(),
            channel: "consumption",
            unit: "W",
            runs: vec![RunJson {
                start_utc: 0,
                start: format_ts(0),
                step_min: 30,
                values: vec![1, 2],
                quality: None,
            }],
        });
        let v: serde_json::Value = serde_json::from_str(&runs.to_json().unwrap()).unwrap();
        assert!(v["runs"][0].get("quality").is_none());
        assert_eq!(v["runs"][0]["values"], serde_json::json!([1, 2]));
    }

    #[test]
    fn a_curve_in_csv_is_the_native_ingest_format() {
        let curve = AnswerBody::CurveRuns(RunsBody {
            meter: "m".into(),
            channel: "consumption",
            unit: "W",
            runs: vec![RunJson {
                start_utc: 0,
                start: format_ts(0),
                step_min: 30,
                values: vec![5, 7],
                quality: Some(vec!["measured", "estimated"]),
            }],
        });
        let mut out = Vec::new();
        curve.write_csv(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "meter_id,ts,value_w,quality,step_min\n\
             m,1970-01-01T00:00:00Z,5,measured,30\n\
             m,1970-01-01T00:30:00Z,7,estimated,30\n"
        );
    }
}

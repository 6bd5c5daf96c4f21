//! The JSON bodies of the aggregate answers: `GET /v1/aggregates`, `GET /v1/meters/{id}/compare`
//! and the releases of `/v1/aggregates/releases` (also printed by `courbe release`), written
//! from the library's domain answers ([`aggregates::Aggregates`], [`aggregates::Comparison`],
//! [`releases::ReleaseSummary`]).

use serde::Serialize;

use super::aggregates::{self, CellFigures, Distribution, Kind};
use super::auth::Level;
use super::releases;
use crate::question::format_ts;

/// Wh from W·s.
fn wh(ws: i64) -> f64 {
    ws as f64 / 3_600.0
}

#[derive(Serialize)]
struct CellJson {
    start: String,
    end: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    meters: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    energy_wh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    points: Option<Vec<CurvePointJson>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    suppressed: bool,
}

#[derive(Serialize)]
struct CurvePointJson {
    ts: String,
    value: i64,
    meters: u32,
}

#[derive(Serialize)]
struct GroupJson {
    group: String,
    cells: Vec<CellJson>,
}

/// The body of `GET /v1/aggregates`.
#[derive(Serialize)]
pub struct AggregatesBody {
    level: &'static str,
    kind: &'static str,
    channel: &'static str,
    unit: &'static str,
    tz: String,
    period: &'static str,
    min_meters: u32,
    groups: Vec<GroupJson>,
}

impl From<aggregates::Cell> for CellJson {
    fn from(cell: aggregates::Cell) -> CellJson {
        let (meters, energy_wh, points) = match cell.figures {
            None => (None, None, None),
            Some(CellFigures::Energy { meters, energy_ws }) => {
                (Some(meters), Some(wh(energy_ws)), None)
            }
            Some(CellFigures::Curve { meters, points }) => {
                let points = points
                    .into_iter()
                    .map(|p| CurvePointJson {
                        ts: format_ts(p.ts_utc),
                        value: p.value_w,
                        meters: p.meters,
                    })
                    .collect();
                (Some(meters), None, Some(points))
            }
        };
        CellJson {
            start: format_ts(cell.start_utc),
            end: format_ts(cell.end_utc),
            meters,
            energy_wh,
            points,
            suppressed: meters.is_none(),
        }
    }
}

impl From<aggregates::Aggregates> for AggregatesBody {
    fn from(a: aggregates::Aggregates) -> AggregatesBody {
        AggregatesBody {
            level: a.level.map_or("ad-hoc", aggregates::level_name),
            kind: match a.kind {
                Kind::Energy => "energy",
                Kind::Curve => "curve",
            },
            channel: a.channel.as_str(),
            unit: match a.kind {
                Kind::Energy => "Wh",
                Kind::Curve => "W",
            },
            tz: a.tz_name,
            period: aggregates::period_name(a.period),
            min_meters: a.min_meters,
            groups: a
                .groups
                .into_iter()
                .map(|g| GroupJson {
                    group: g.group,
                    cells: g.cells.into_iter().map(CellJson::from).collect(),
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct DistributionJson {
    level: &'static str,
    group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    meters: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    q1_wh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    median_wh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    q3_wh: Option<f64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    suppressed: bool,
}

#[derive(Serialize)]
struct CompareMonthJson {
    start: String,
    end: String,
    energy_wh: f64,
    groups: Vec<DistributionJson>,
}

/// The body of `GET /v1/meters/{id}/compare`.
#[derive(Serialize)]
pub struct CompareBody {
    meter: String,
    unit: &'static str,
    tz: String,
    months: Vec<CompareMonthJson>,
}

fn distribution_json(level: Level, group: String, d: Option<Distribution>) -> DistributionJson {
    // Quartiles come in quarters of a W·s.
    let wh = |x4: i64| x4 as f64 / 14_400.0;
    DistributionJson {
        level: aggregates::level_name(level),
        group,
        meters: d.map(|d| d.0),
        q1_wh: d.map(|d| wh(d.1[0])),
        median_wh: d.map(|d| wh(d.1[1])),
        q3_wh: d.map(|d| wh(d.1[2])),
        suppressed: d.is_none(),
    }
}

impl From<aggregates::Comparison> for CompareBody {
    fn from(c: aggregates::Comparison) -> CompareBody {
        CompareBody {
            meter: c.meter,
            unit: "Wh",
            tz: c.tz_name,
            months: c
                .months
                .into_iter()
                .map(|m| CompareMonthJson {
                    start: format_ts(m.start_utc),
                    end: format_ts(m.end_utc),
                    energy_wh: wh(m.energy_ws),
                    groups: m
                        .groups
                        .into_iter()
                        .map(|g| distribution_json(g.level, g.group, g.distribution))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// What `POST` and `GET /v1/aggregates/releases` say of a release.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ReleaseSummaryJson {
    pub from: String,
    pub to: String,
    pub channel: &'static str,
    pub created: String,
    pub months: usize,
    /// Groups × months frozen.
    pub group_months: usize,
    pub file: String,
    pub bytes: u64,
}

impl From<releases::ReleaseSummary> for ReleaseSummaryJson {
    fn from(r: releases::ReleaseSummary) -> ReleaseSummaryJson {
        ReleaseSummaryJson {
            from: format_ts(r.from_utc),
            to: format_ts(r.to_utc),
            channel: r.channel.as_str(),
            created: format_ts(r.created_utc),
            months: r.months,
            group_months: r.group_months,
            file: r.file,
            bytes: r.bytes,
        }
    }
}

//! Anonymised aggregates over predefined groups (D.111-53, D.111-57), and a meter's
//! comparison with its group.
//!
//! Groups nest: `all` ⊃ `commune` ⊃ `iris` ⊃ `building` (a meter's codes are assumed to
//! nest, as INSEE codes do). Only meters with a membership are counted.
//!
//! Every decision is taken once per **local day** and group, from the data alone, so that two
//! requests (any periods, any levels, any roles) see the same decisions and cannot be
//! subtracted from one another to isolate what a suppressed cell hides:
//! 1. **primary**: a day cell is suppressed when fewer than the level's minimum of its meters
//!    are active (non-zero energy that day), when some interval of the day has between 1 and
//!    minimum-1 meters with a non-zero value (the curve sums would single them out), or when one
//!    meter holds more than the dominance share of the energy (when configured);
//! 2. **secondary**, top-down per day: inside a published parent cell, the suppressed children
//!    plus the parent's meters that belong to no child must hold 0 or at least the child level's
//!    minimum of active meters, else the smallest published children are suppressed too;
//! 3. a cell of a longer period (week, month, year) is published only when every day in it is:
//!    it is then a sum of published days and reveals nothing they do not.
//!
//! A suppressed cell says so and carries no value and no count.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::auth::{Level, Principal, Role};
use super::Governance;
use crate::engine::Store;
use crate::http::api::{format_ts, parse_channel, parse_meter_list, parse_range, parse_tz};
use crate::http::error::ApiError;
use crate::query::{Calendar, Period};
use crate::Channel;

/// When a cell of an aggregate is suppressed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Suppression {
    /// Fewest active meters of a published cell (D.111-53: 10).
    pub min_meters: u32,
    /// Fewest active meters of a building cell shown to public bodies (D.111-57: 2).
    pub building_min_meters: u32,
    /// When set, a cell where one meter holds more than this share of the energy is suppressed.
    pub max_share: Option<f64>,
}

impl Default for Suppression {
    fn default() -> Self {
        Suppression {
            min_meters: 10,
            building_min_meters: 2,
            max_share: None,
        }
    }
}

impl Suppression {
    fn min_for(&self, level: Level) -> u32 {
        match level {
            Level::Building => self.building_min_meters,
            _ => self.min_meters,
        }
    }
}

/// Longest range of one aggregate question, days.
const MAX_RANGE_DAYS: i64 = 1_100;

/// What is summed per cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Energy per period (Wh).
    Energy,
    /// The summed curve (W) per interval, by day.
    Curve,
}

/// A validated aggregate question.
#[derive(Clone, Debug)]
pub struct Params {
    pub level: Level,
    /// One group of the level; all of them when `None`.
    pub code: Option<String>,
    /// An ad-hoc list of meters instead of predefined groups (operators only).
    pub meters: Option<Vec<String>>,
    pub kind: Kind,
    pub channel: Channel,
    pub calendar: Calendar,
    pub tz_name: String,
}

#[derive(serde::Deserialize)]
struct RawParams {
    level: Option<String>,
    code: Option<String>,
    meters: Option<String>,
    kind: Option<String>,
    channel: Option<String>,
    from: Option<String>,
    to: Option<String>,
    period: Option<String>,
    tz: Option<String>,
}

pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::All => "all",
        Level::Commune => "commune",
        Level::Iris => "iris",
        Level::Building => "building",
    }
}

impl Params {
    pub fn from_uri(uri: &axum::http::Uri) -> Result<Params, ApiError> {
        let axum::extract::Query(raw) = axum::extract::Query::<RawParams>::try_from_uri(uri)
            .map_err(|e| {
                ApiError::invalid(format!("unreadable query string: {}", e.body_text()))
            })?;
        let level = match raw.level.as_deref().unwrap_or("commune") {
            "all" => Level::All,
            "commune" => Level::Commune,
            "iris" => Level::Iris,
            "building" => Level::Building,
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown level {other:?} (all, commune, iris or building)"
                )))
            }
        };
        let kind = match raw.kind.as_deref().unwrap_or("energy") {
            "energy" => Kind::Energy,
            "curve" => Kind::Curve,
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown kind {other:?} (energy or curve)"
                )))
            }
        };
        let channel = parse_channel(raw.channel.as_deref())?;
        if channel == Channel::MaxPower {
            return Err(ApiError::invalid(
                "aggregates sum consumption or production",
            ));
        }
        let (tz, tz_name) = parse_tz(raw.tz.as_deref())?;
        let (from_utc, to_utc) = parse_range(raw.from.as_deref(), raw.to.as_deref(), &tz)?;
        if from_utc >= to_utc {
            return Err(ApiError::invalid("`from` must be before `to`"));
        }
        if to_utc - from_utc > MAX_RANGE_DAYS * 86_400 {
            return Err(ApiError::invalid(format!(
                "an aggregate covers at most {MAX_RANGE_DAYS} days"
            )));
        }
        let period: Period = raw.period.as_deref().unwrap_or("month").parse()?;
        let meters = parse_meter_list(raw.meters.as_deref())?;
        Ok(Params {
            level,
            code: raw.code,
            meters,
            kind,
            channel,
            calendar: Calendar {
                from_utc,
                to_utc,
                period,
                tz,
            },
            tz_name,
        })
    }
}

/// One meter's data on one local day.
#[derive(Clone, Debug, Default)]
struct MeterDay {
    /// Energy in W·min, exact.
    energy_wmin: i64,
    /// `(ts_utc, value_w)` of the non-zero points.
    points: Vec<(i64, i64)>,
}

/// One group's cell on one local day.
#[derive(Clone, Debug, Default)]
struct DayCell {
    active: u32,
    energy_wmin: i64,
    max_meter_wmin: i64,
    /// Per interval start: meters with a non-zero value, and the sum of values.
    per_ts: BTreeMap<i64, (u32, i64)>,
    published: bool,
}

/// The days of the range and every meter's data per day.
struct Table {
    days: Vec<(i64, i64)>,
    /// meter -> per day index.
    by_meter: HashMap<String, Vec<MeterDay>>,
}

impl Table {
    fn load(
        store: &Store,
        meters: &[String],
        channel: Channel,
        calendar: &Calendar,
    ) -> Result<Table, ApiError> {
        let days = Calendar {
            period: Period::Day,
            ..calendar.clone()
        }
        .periods()?;
        let snapshot = store.snapshot();
        let mut by_meter = HashMap::with_capacity(meters.len());
        for m in meters {
            let points = snapshot
                .points(m, channel, calendar.from_utc, calendar.to_utc)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let mut per_day = vec![MeterDay::default(); days.len()];
            for p in points {
                if p.ts_utc < calendar.from_utc || p.ts_utc >= calendar.to_utc {
                    continue;
                }
                let i = days.partition_point(|(_, end)| *end <= p.ts_utc);
                if let Some(day) = per_day.get_mut(i) {
                    day.energy_wmin += i64::from(p.value) * i64::from(p.step_min);
                    if p.value != 0 {
                        day.points.push((p.ts_utc, i64::from(p.value)));
                    }
                }
            }
            by_meter.insert(m.clone(), per_day);
        }
        Ok(Table { days, by_meter })
    }

    /// The day cells of a set of meters.
    fn cells(&self, members: &[String]) -> Vec<DayCell> {
        let mut cells = vec![DayCell::default(); self.days.len()];
        for m in members {
            let Some(per_day) = self.by_meter.get(m) else {
                continue;
            };
            for (cell, day) in cells.iter_mut().zip(per_day) {
                if day.points.is_empty() {
                    continue;
                }
                cell.active += 1;
                cell.energy_wmin += day.energy_wmin;
                cell.max_meter_wmin = cell.max_meter_wmin.max(day.energy_wmin);
                for &(ts, v) in &day.points {
                    let e = cell.per_ts.entry(ts).or_default();
                    e.0 += 1;
                    e.1 += v;
                }
            }
        }
        cells
    }
}

fn passes_primary(cell: &DayCell, min: u32, rule: &Suppression) -> bool {
    if cell.active < min.max(1) {
        return false;
    }
    if cell.per_ts.values().any(|&(n, _)| n > 0 && n < min) {
        return false;
    }
    match rule.max_share {
        Some(share) if cell.energy_wmin > 0 => {
            cell.max_meter_wmin as f64 <= share * cell.energy_wmin as f64
        }
        _ => true,
    }
}

/// The groups of one level: code to members and day cells.
type LevelCells = BTreeMap<String, (Vec<String>, Vec<DayCell>)>;

/// Every group's day cells at every level, with the final publication decisions.
struct Decisions {
    levels: BTreeMap<Level, LevelCells>,
}

const LEVELS: [Level; 4] = [Level::All, Level::Commune, Level::Iris, Level::Building];

impl Decisions {
    fn compute(gov: &Governance, table: &Table, rule: &Suppression) -> Decisions {
        let groups = gov.groups();
        let mut levels = BTreeMap::new();
        for level in LEVELS {
            let min = rule.min_for(level);
            let mut at_level = BTreeMap::new();
            for (code, members) in groups.groups(level) {
                let mut cells = table.cells(&members);
                for c in &mut cells {
                    c.published = passes_primary(c, min, rule);
                }
                at_level.insert(code, (members, cells));
            }
            levels.insert(level, at_level);
        }
        let mut decisions = Decisions { levels };
        for pair in LEVELS.windows(2) {
            if let [parent, child] = pair {
                decisions.secondary(&groups, *parent, *child, table, rule);
            }
        }
        decisions
    }

    /// Inside each published parent day cell, the hidden part (suppressed children and the
    /// meters in no child) holds 0 or at least the child minimum of active meters.
    fn secondary(
        &mut self,
        groups: &super::groups::GroupRegistry,
        parent: Level,
        child: Level,
        table: &Table,
        rule: &Suppression,
    ) {
        let min = rule.min_for(child);
        let parents = self.levels.get(&parent).cloned().unwrap_or_default();
        let Some(children) = self.levels.get_mut(&child) else {
            return;
        };
        for (_, (members, parent_cells)) in parents {
            // The children of this parent, and the members in no child.
            let mut kids: Vec<String> = Vec::new();
            let mut orphans: Vec<String> = Vec::new();
            for m in &members {
                match groups.get(m).and_then(|ms| ms.code(child)) {
                    Some(code) => {
                        if !kids.iter().any(|k| k == code) {
                            kids.push(code.to_string());
                        }
                    }
                    None => orphans.push(m.clone()),
                }
            }
            let orphan_cells = table.cells(&orphans);
            for (d, parent_cell) in parent_cells.iter().enumerate() {
                if !parent_cell.published {
                    continue;
                }
                let active =
                    |code: &str, children: &BTreeMap<String, (Vec<String>, Vec<DayCell>)>| {
                        children
                            .get(code)
                            .and_then(|(_, cells)| cells.get(d))
                            .map_or((0, false), |c| (c.active, c.published))
                    };
                let mut hidden: u32 = orphan_cells.get(d).map_or(0, |c| c.active);
                for k in &kids {
                    let (a, published) = active(k, children);
                    if !published {
                        hidden += a;
                    }
                }
                while hidden > 0 && hidden < min {
                    let smallest = kids
                        .iter()
                        .filter_map(|k| {
                            let (a, published) = active(k, children);
                            published.then_some((a, k.clone()))
                        })
                        .min();
                    let Some((a, k)) = smallest else {
                        break;
                    };
                    if let Some(cell) = children.get_mut(&k).and_then(|(_, c)| c.get_mut(d)) {
                        cell.published = false;
                    }
                    hidden += a;
                }
            }
        }
    }
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

fn period_name(p: Period) -> &'static str {
    match p {
        Period::Day => "day",
        Period::Week => "week",
        Period::Month => "month",
        Period::Year => "year",
    }
}

/// The cells of one group over the periods, from its day cells.
fn group_cells(
    kind: Kind,
    days: &[(i64, i64)],
    periods: &[(i64, i64)],
    members: &[String],
    table: &Table,
    cells: &[DayCell],
) -> Vec<CellJson> {
    let suppressed = |start: i64, end: i64| CellJson {
        start: format_ts(start),
        end: format_ts(end),
        meters: None,
        energy_wh: None,
        points: None,
        suppressed: true,
    };
    match kind {
        Kind::Curve => days
            .iter()
            .zip(cells)
            .map(|(&(start, end), c)| {
                if !c.published {
                    return suppressed(start, end);
                }
                CellJson {
                    start: format_ts(start),
                    end: format_ts(end),
                    meters: Some(c.active),
                    energy_wh: None,
                    points: Some(
                        c.per_ts
                            .iter()
                            .map(|(&ts, &(n, sum))| CurvePointJson {
                                ts: format_ts(ts),
                                value: sum,
                                meters: n,
                            })
                            .collect(),
                    ),
                    suppressed: false,
                }
            })
            .collect(),
        Kind::Energy => periods
            .iter()
            .map(|&(start, end)| {
                let inside: Vec<usize> = (0..days.len())
                    .filter(|&i| days.get(i).is_some_and(|&(s, _)| s >= start && s < end))
                    .collect();
                let all_published = inside
                    .iter()
                    .all(|&i| cells.get(i).is_some_and(|c| c.published));
                if inside.is_empty() || !all_published {
                    return suppressed(start, end);
                }
                let energy_wmin: i64 = inside
                    .iter()
                    .filter_map(|&i| cells.get(i))
                    .map(|c| c.energy_wmin)
                    .sum();
                let active = members
                    .iter()
                    .filter(|m| {
                        table.by_meter.get(*m).is_some_and(|per_day| {
                            inside
                                .iter()
                                .any(|&i| per_day.get(i).is_some_and(|d| !d.points.is_empty()))
                        })
                    })
                    .count() as u32;
                CellJson {
                    start: format_ts(start),
                    end: format_ts(end),
                    meters: Some(active),
                    energy_wh: Some(energy_wmin as f64 / 60.0),
                    points: None,
                    suppressed: false,
                }
            })
            .collect(),
    }
}

/// Answers an aggregate question for `principal` (already authorised for its level).
pub fn answer(
    store: &Store,
    gov: &Governance,
    principal: &Principal,
    params: &Params,
) -> Result<AggregatesBody, ApiError> {
    let rule = gov.config().aggregates;
    let periods = params.calendar.periods()?;
    let groups_reg = gov.groups();
    let (groups_out, min) = match &params.meters {
        Some(ids) => {
            // Ad-hoc groups are the operator's (see `authorize`): primary rule only.
            let table = Table::load(store, ids, params.channel, &params.calendar)?;
            let min = rule.min_meters;
            let mut cells = table.cells(ids);
            for c in &mut cells {
                c.published = passes_primary(c, min, &rule);
            }
            let out = group_cells(params.kind, &table.days, &periods, ids, &table, &cells);
            (
                vec![GroupJson {
                    group: "ad-hoc".into(),
                    cells: out,
                }],
                min,
            )
        }
        None => {
            if params.level == Level::Building
                && !matches!(principal.role, Role::Operator | Role::PublicBody)
            {
                return Err(ApiError::new(
                    crate::http::error::ErrorCode::Forbidden,
                    "this token does not allow this request",
                ));
            }
            let all: Vec<String> = groups_reg
                .groups(Level::All)
                .into_values()
                .next()
                .unwrap_or_default();
            let table = Table::load(store, &all, params.channel, &params.calendar)?;
            let decisions = Decisions::compute(gov, &table, &rule);
            let mut out = Vec::new();
            if let Some(at_level) = decisions.levels.get(&params.level) {
                for (code, (members, cells)) in at_level {
                    if params.code.as_deref().is_some_and(|c| c != code) {
                        continue;
                    }
                    out.push(GroupJson {
                        group: code.clone(),
                        cells: group_cells(
                            params.kind,
                            &table.days,
                            &periods,
                            members,
                            &table,
                            cells,
                        ),
                    });
                }
            }
            (out, rule.min_for(params.level))
        }
    };
    Ok(AggregatesBody {
        level: if params.meters.is_some() {
            "ad-hoc"
        } else {
            level_name(params.level)
        },
        kind: match params.kind {
            Kind::Energy => "energy",
            Kind::Curve => "curve",
        },
        channel: params.channel.as_str(),
        unit: match params.kind {
            Kind::Energy => "Wh",
            Kind::Curve => "W",
        },
        tz: params.tz_name.clone(),
        period: match params.kind {
            Kind::Energy => period_name(params.calendar.period),
            Kind::Curve => "day",
        },
        min_meters: min,
        groups: groups_out,
    })
}

/// Median and quartiles (linear interpolation between order statistics) of sorted values.
fn quartiles(sorted: &[f64]) -> Option<(f64, f64, f64)> {
    let at = |q: f64| -> Option<f64> {
        let pos = q * (sorted.len().checked_sub(1)? as f64);
        let lo = pos.floor() as usize;
        let hi = pos.ceil() as usize;
        let (a, b) = (*sorted.get(lo)?, *sorted.get(hi)?);
        Some(a + (b - a) * (pos - lo as f64))
    };
    Some((at(0.25)?, at(0.5)?, at(0.75)?))
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

/// A meter's monthly energy next to the quartiles of its IRIS, its commune and all meters,
/// each from cells that pass the suppression rules.
pub fn compare(
    store: &Store,
    gov: &Governance,
    meter: &str,
    params: &Params,
) -> Result<CompareBody, ApiError> {
    let rule = gov.config().aggregates;
    let groups_reg = gov.groups();
    let calendar = Calendar {
        period: Period::Month,
        ..params.calendar.clone()
    };
    let months = calendar.periods()?;
    let mut all: Vec<String> = groups_reg
        .groups(Level::All)
        .into_values()
        .next()
        .unwrap_or_default();
    if !all.iter().any(|m| m == meter) {
        all.push(meter.to_string());
    }
    let table = Table::load(store, &all, params.channel, &calendar)?;
    let decisions = Decisions::compute(gov, &table, &rule);
    let membership = groups_reg.get(meter);
    let month_energy = |m: &str, inside: &[usize]| -> f64 {
        table.by_meter.get(m).map_or(0.0, |per_day| {
            inside
                .iter()
                .filter_map(|&i| per_day.get(i))
                .map(|d| d.energy_wmin)
                .sum::<i64>() as f64
                / 60.0
        })
    };
    let mut out = Vec::new();
    for &(start, end) in &months {
        let inside: Vec<usize> = (0..table.days.len())
            .filter(|&i| {
                table
                    .days
                    .get(i)
                    .is_some_and(|&(s, _)| s >= start && s < end)
            })
            .collect();
        let mut groups = Vec::new();
        for level in [Level::Iris, Level::Commune, Level::All] {
            let Some(code) = membership.and_then(|ms| ms.code(level)) else {
                continue;
            };
            let Some((members, cells)) = decisions.levels.get(&level).and_then(|l| l.get(code))
            else {
                continue;
            };
            let published = !inside.is_empty()
                && inside
                    .iter()
                    .all(|&i| cells.get(i).is_some_and(|c| c.published));
            let mut values: Vec<f64> = members
                .iter()
                .filter(|m| {
                    table.by_meter.get(*m).is_some_and(|per_day| {
                        inside
                            .iter()
                            .any(|&i| per_day.get(i).is_some_and(|d| !d.points.is_empty()))
                    })
                })
                .map(|m| month_energy(m, &inside))
                .collect();
            values.sort_by(f64::total_cmp);
            let q = quartiles(&values).filter(|_| published);
            groups.push(DistributionJson {
                level: level_name(level),
                group: code.to_string(),
                meters: q.map(|_| values.len() as u32),
                q1_wh: q.map(|q| q.0),
                median_wh: q.map(|q| q.1),
                q3_wh: q.map(|q| q.2),
                suppressed: q.is_none(),
            });
        }
        out.push(CompareMonthJson {
            start: format_ts(start),
            end: format_ts(end),
            energy_wh: month_energy(meter, &inside),
            groups,
        });
    }
    Ok(CompareBody {
        meter: meter.to_string(),
        unit: "Wh",
        tz: params.tz_name.clone(),
        months: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_interpolate_between_order_statistics() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quartiles(&v), Some((2.0, 3.0, 4.0)));
        let v = [10.0, 20.0];
        assert_eq!(quartiles(&v), Some((12.5, 15.0, 17.5)));
        assert_eq!(quartiles(&[]), None);
    }

    #[test]
    fn an_interval_with_few_contributors_fails_the_primary_rule() {
        let rule = Suppression::default();
        let mut cell = DayCell {
            active: 12,
            energy_wmin: 100,
            max_meter_wmin: 10,
            ..DayCell::default()
        };
        cell.per_ts.insert(0, (12, 100));
        assert!(passes_primary(&cell, 10, &rule));
        cell.per_ts.insert(1_800, (3, 100));
        assert!(!passes_primary(&cell, 10, &rule));
        cell.per_ts.remove(&1_800);
        let dominant = Suppression {
            max_share: Some(0.05),
            ..rule
        };
        assert!(!passes_primary(&cell, 10, &dominant));
    }
}

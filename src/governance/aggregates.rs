//! Anonymised aggregates over predefined groups (D.111-53, D.111-57), and a meter's
//! comparison with its group.
//!
//! Groups nest: `all` ⊃ `commune` ⊃ `iris` ⊃ `building` (a meter's codes are assumed to
//! nest, as INSEE codes do). Only meters with a membership are counted.
//!
//! # The decision unit: a group at one interval start
//!
//! Every published number is a sum over meters and interval starts: a curve point is the sum
//! of the members' values at one start, an energy cell the sum of value × step over the starts
//! of its period. Publication is therefore decided per **slot** (a group at one interval start,
//! in UTC), from the readings at that start alone: the decisions at a start are the same
//! whatever the range, period, time zone, level or role of the request, so no two answers can
//! be told apart by their decisions, only by which published slots they add up. A meter
//! *contributes* to a slot when its value there is non-zero, and contributors are counted per
//! step (5 to 60 min): a curve point weighs a meter by 1 and an energy by its step, so a curve
//! point and the energy of the same slot together give the sum of each step apart.
//!
//! 1. **primary**: a slot is suppressed when, for some step, 1 to minimum-1 of its meters
//!    contribute, or (when configured) when one meter holds more than the dominance share of
//!    the slot's energy;
//! 2. **inside the parent**: a slot is published only when its parent's slot at that start is
//!    (the buildings of a withheld IRIS are withheld);
//! 3. **secondary**, top-down per start: inside a published parent slot, the *hidden part*
//!    (the suppressed children and the parent's meters in no child) holds, for every step, 0 or
//!    at least the child level's minimum of contributors, else the published children with the
//!    fewest contributors of that step are suppressed too;
//! 4. a response cell (the curve of a local day, the energy of a day, week, month or year, in
//!    the requested time zone, clipped to the range) is published when it holds at least one
//!    slot and all its slots are published: it is then a sum of published slots.
//!
//! What this proves: at every start, the published slots form a nested family in which each
//! published group minus its published children (and each published group without published
//! children) holds, per step, 0 or at least the minimum of contributors. Any linear
//! combination of published values (parents, children, curve points, energies of any
//! overlapping periods in any time zone) gives each meter's value at a start the same
//! coefficient as every other meter of the same step in that part, so whatever it isolates
//! at a start is the sum of whole parts: 0 or at least the minimum of meters. Without the
//! building level (the public's view) the parts are the same with each IRIS whole, hence at
//! least `min_meters`; with it (public bodies), an IRIS minus its published buildings and a
//! building hold at least `building_min_meters`. Zero readings are not protected: that a
//! part held no contributor at a start is published (a slot exists only where one does).
//! The count of active meters of a cell over a period is not a sum over starts: counts of two
//! overlapping periods may differ by fewer than the minimum (a meter active on one day of a
//! week), which tells that some meters were inactive, never what they consumed.
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

/// The steps of a curve point (`engine::Batch::push`); contributors are counted per step, the
/// last class holding any other.
const STEPS_MIN: [u16; 5] = [5, 10, 15, 30, 60];
const CLASSES: usize = STEPS_MIN.len() + 1;

/// Contributors per step class.
type Contributors = [u32; CLASSES];

fn step_class(step_min: u16) -> usize {
    STEPS_MIN
        .iter()
        .position(|&s| s == step_min)
        .unwrap_or(STEPS_MIN.len())
}

fn add_contributors(to: &mut Contributors, more: &Contributors) {
    for (t, m) in to.iter_mut().zip(more) {
        *t += m;
    }
}

/// A non-zero reading of one meter.
#[derive(Clone, Copy, Debug)]
struct Reading {
    ts_utc: i64,
    value_w: i64,
    step_min: u16,
}

/// One group at one interval start: what its curve point and its energy sum there.
#[derive(Clone, Debug, Default)]
struct Slot {
    contributors: Contributors,
    value_w: i64,
    /// Energy in W·min, exact.
    energy_wmin: i64,
    max_meter_wmin: i64,
    published: bool,
}

impl Slot {
    fn meters(&self) -> u32 {
        self.contributors.iter().sum()
    }
}

/// A group's slots by interval start (UTC); a start where no member contributes has none.
type Slots = BTreeMap<i64, Slot>;

/// Every meter's non-zero readings over the range, in time order.
struct Table {
    by_meter: HashMap<String, Vec<Reading>>,
}

impl Table {
    fn load(
        store: &Store,
        meters: &[String],
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Table, ApiError> {
        let snapshot = store.snapshot();
        let mut by_meter = HashMap::with_capacity(meters.len());
        for m in meters {
            let points = snapshot
                .points(m, channel, from_utc, to_utc)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let mut readings: Vec<Reading> = points
                .into_iter()
                .filter(|p| p.value != 0 && (from_utc..to_utc).contains(&p.ts_utc))
                .map(|p| Reading {
                    ts_utc: p.ts_utc,
                    value_w: i64::from(p.value),
                    step_min: p.step_min,
                })
                .collect();
            readings.sort_by_key(|r| r.ts_utc);
            by_meter.insert(m.clone(), readings);
        }
        Ok(Table { by_meter })
    }

    fn readings(&self, meter: &str, start: i64, end: i64) -> &[Reading] {
        let Some(all) = self.by_meter.get(meter) else {
            return &[];
        };
        let lo = all.partition_point(|r| r.ts_utc < start);
        let hi = all.partition_point(|r| r.ts_utc < end);
        all.get(lo..hi).unwrap_or(&[])
    }

    /// The slots of a set of meters, none published yet.
    fn slots(&self, members: &[String]) -> Slots {
        let mut slots = Slots::new();
        for m in members {
            for r in self.by_meter.get(m).into_iter().flatten() {
                let slot = slots.entry(r.ts_utc).or_default();
                let energy_wmin = r.value_w * i64::from(r.step_min);
                if let Some(n) = slot.contributors.get_mut(step_class(r.step_min)) {
                    *n += 1;
                }
                slot.value_w += r.value_w;
                slot.energy_wmin += energy_wmin;
                slot.max_meter_wmin = slot.max_meter_wmin.max(energy_wmin);
            }
        }
        slots
    }

    /// Members with a non-zero reading in `[start, end)`.
    fn active(&self, members: &[String], start: i64, end: i64) -> u32 {
        members
            .iter()
            .filter(|m| !self.readings(m, start, end).is_empty())
            .count() as u32
    }

    fn energy_wmin(&self, meter: &str, start: i64, end: i64) -> i64 {
        self.readings(meter, start, end)
            .iter()
            .map(|r| r.value_w * i64::from(r.step_min))
            .sum()
    }
}

fn passes_primary(slot: &Slot, min: u32, rule: &Suppression) -> bool {
    if slot.meters() == 0 || slot.contributors.iter().any(|&n| n > 0 && n < min) {
        return false;
    }
    match rule.max_share {
        Some(share) if slot.energy_wmin > 0 => {
            slot.max_meter_wmin as f64 <= share * slot.energy_wmin as f64
        }
        _ => true,
    }
}

/// Whether the cell `[start, end)` of a group is published: it holds a slot and every slot
/// in it is published.
fn publishable(slots: &Slots, start: i64, end: i64) -> bool {
    let mut inside = slots.range(start..end).peekable();
    inside.peek().is_some() && inside.all(|(_, s)| s.published)
}

/// A group: its members and its slots with their decisions.
#[derive(Clone, Debug, Default)]
struct Group {
    members: Vec<String>,
    slots: Slots,
}

/// Every group's slots at every level, with the final publication decisions.
struct Decisions {
    levels: BTreeMap<Level, BTreeMap<String, Group>>,
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
                let mut slots = table.slots(&members);
                for s in slots.values_mut() {
                    s.published = passes_primary(s, min, rule);
                }
                at_level.insert(code, Group { members, slots });
            }
            levels.insert(level, at_level);
        }
        let mut decisions = Decisions { levels };
        // Only suppressions happen, so this ends; a second pass is needed only when a parent
        // slot had to be withheld itself, which changes the hidden part of its own parent.
        loop {
            let mut parent_withheld = false;
            for pair in LEVELS.windows(2) {
                if let [parent, child] = pair {
                    parent_withheld |= decisions.secondary(&groups, *parent, *child, table, rule);
                }
            }
            if !parent_withheld {
                break;
            }
        }
        decisions
    }

    /// Withholds the child slots of withheld parent slots, then makes the hidden part of each
    /// published parent slot hold, per step, 0 or at least the child minimum of contributors.
    /// True when a parent slot had to be withheld (no published child left to withhold).
    fn secondary(
        &mut self,
        groups: &super::groups::GroupRegistry,
        parent: Level,
        child: Level,
        table: &Table,
        rule: &Suppression,
    ) -> bool {
        let min = rule.min_for(child);
        let mut children = self.levels.remove(&child).unwrap_or_default();
        let mut parent_withheld = false;
        for parent_group in self
            .levels
            .get_mut(&parent)
            .into_iter()
            .flatten()
            .map(|(_, g)| g)
        {
            // The children of this parent, and the members in no child.
            let mut kids: Vec<String> = Vec::new();
            let mut orphans: Vec<String> = Vec::new();
            for m in &parent_group.members {
                match groups.get(m).and_then(|ms| ms.code(child)) {
                    Some(code) => {
                        if !kids.iter().any(|k| k == code) {
                            kids.push(code.to_string());
                        }
                    }
                    None => orphans.push(m.clone()),
                }
            }
            let mut hidden: BTreeMap<i64, Contributors> = table
                .slots(&orphans)
                .into_iter()
                .map(|(ts, s)| (ts, s.contributors))
                .collect();
            for k in &kids {
                let Some(kid) = children.get_mut(k) else {
                    continue;
                };
                for (ts, s) in &mut kid.slots {
                    if !parent_group.slots.get(ts).is_some_and(|p| p.published) {
                        s.published = false;
                    } else if !s.published {
                        add_contributors(hidden.entry(*ts).or_default(), &s.contributors);
                    }
                }
            }
            for (ts, mut h) in hidden {
                let Some(parent_slot) = parent_group.slots.get_mut(&ts) else {
                    continue;
                };
                if !parent_slot.published {
                    continue;
                }
                while let Some(class) = h.iter().position(|&n| n > 0 && n < min) {
                    let fewest = kids
                        .iter()
                        .filter_map(|k| {
                            let s = children.get(k)?.slots.get(&ts)?;
                            let n = *s.contributors.get(class)?;
                            (s.published && n > 0).then(|| (n, s.meters(), k.clone()))
                        })
                        .min();
                    let withheld = fewest.and_then(|(_, _, k)| {
                        children.get_mut(&k).and_then(|g| g.slots.get_mut(&ts))
                    });
                    match withheld {
                        Some(s) => {
                            s.published = false;
                            add_contributors(&mut h, &s.contributors);
                        }
                        None => {
                            // Unreachable while the parent's minimum is at least the child's
                            // (then the parent itself fails the primary rule).
                            parent_slot.published = false;
                            parent_withheld = true;
                            for k in &kids {
                                if let Some(s) =
                                    children.get_mut(k).and_then(|g| g.slots.get_mut(&ts))
                                {
                                    s.published = false;
                                }
                            }
                            break;
                        }
                    }
                }
            }
        }
        self.levels.insert(child, children);
        parent_withheld
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

/// The cells of one group: the curve of each local day, or the energy of each period.
fn group_cells(
    kind: Kind,
    calendar: &Calendar,
    members: &[String],
    table: &Table,
    slots: &Slots,
) -> Result<Vec<CellJson>, ApiError> {
    let spans = match kind {
        Kind::Curve => Calendar {
            period: Period::Day,
            ..calendar.clone()
        }
        .periods()?,
        Kind::Energy => calendar.periods()?,
    };
    Ok(spans
        .into_iter()
        .map(|(start, end)| {
            if !publishable(slots, start, end) {
                return CellJson {
                    start: format_ts(start),
                    end: format_ts(end),
                    meters: None,
                    energy_wh: None,
                    points: None,
                    suppressed: true,
                };
            }
            let inside = slots.range(start..end);
            let (energy_wh, points) = match kind {
                Kind::Curve => (
                    None,
                    Some(
                        inside
                            .map(|(&ts, s)| CurvePointJson {
                                ts: format_ts(ts),
                                value: s.value_w,
                                meters: s.meters(),
                            })
                            .collect(),
                    ),
                ),
                Kind::Energy => (
                    Some(inside.map(|(_, s)| s.energy_wmin).sum::<i64>() as f64 / 60.0),
                    None,
                ),
            };
            CellJson {
                start: format_ts(start),
                end: format_ts(end),
                meters: Some(table.active(members, start, end)),
                energy_wh,
                points,
                suppressed: false,
            }
        })
        .collect())
}

/// Answers an aggregate question for `principal` (already authorised for its level).
pub fn answer(
    store: &Store,
    gov: &Governance,
    principal: &Principal,
    params: &Params,
) -> Result<AggregatesBody, ApiError> {
    let rule = gov.config().aggregates;
    let (from_utc, to_utc) = (params.calendar.from_utc, params.calendar.to_utc);
    let (groups_out, min) = match &params.meters {
        Some(ids) => {
            // Ad-hoc groups are the operator's (see `authorize`): primary rule only.
            let table = Table::load(store, ids, params.channel, from_utc, to_utc)?;
            let min = rule.min_meters;
            let mut slots = table.slots(ids);
            for s in slots.values_mut() {
                s.published = passes_primary(s, min, &rule);
            }
            let cells = group_cells(params.kind, &params.calendar, ids, &table, &slots)?;
            (
                vec![GroupJson {
                    group: "ad-hoc".into(),
                    cells,
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
            let all: Vec<String> = gov
                .groups()
                .groups(Level::All)
                .into_values()
                .next()
                .unwrap_or_default();
            let table = Table::load(store, &all, params.channel, from_utc, to_utc)?;
            let decisions = Decisions::compute(gov, &table, &rule);
            let mut out = Vec::new();
            if let Some(at_level) = decisions.levels.get(&params.level) {
                for (code, group) in at_level {
                    if params.code.as_deref().is_some_and(|c| c != code) {
                        continue;
                    }
                    out.push(GroupJson {
                        group: code.clone(),
                        cells: group_cells(
                            params.kind,
                            &params.calendar,
                            &group.members,
                            &table,
                            &group.slots,
                        )?,
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
    let table = Table::load(
        store,
        &all,
        params.channel,
        calendar.from_utc,
        calendar.to_utc,
    )?;
    let decisions = Decisions::compute(gov, &table, &rule);
    let membership = groups_reg.get(meter);
    let wh = |wmin: i64| wmin as f64 / 60.0;
    let mut out = Vec::new();
    for &(start, end) in &months {
        let mut groups = Vec::new();
        for level in [Level::Iris, Level::Commune, Level::All] {
            let Some(code) = membership.and_then(|ms| ms.code(level)) else {
                continue;
            };
            let Some(group) = decisions.levels.get(&level).and_then(|l| l.get(code)) else {
                continue;
            };
            let mut values: Vec<f64> = group
                .members
                .iter()
                .filter(|m| !table.readings(m, start, end).is_empty())
                .map(|m| wh(table.energy_wmin(m, start, end)))
                .collect();
            values.sort_by(f64::total_cmp);
            let q = quartiles(&values).filter(|_| publishable(&group.slots, start, end));
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
            energy_wh: wh(table.energy_wmin(meter, start, end)),
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
    fn a_slot_with_few_contributors_of_one_step_fails_the_primary_rule() {
        let rule = Suppression::default();
        let mut slot = Slot {
            value_w: 1_200,
            energy_wmin: 36_000,
            max_meter_wmin: 3_000,
            ..Slot::default()
        };
        slot.contributors[step_class(30)] = 12;
        assert!(passes_primary(&slot, 10, &rule));
        // One hourly meter among twelve half-hourly ones: 30 × curve − energy would be it.
        slot.contributors[step_class(60)] = 1;
        assert!(!passes_primary(&slot, 10, &rule));
        slot.contributors[step_class(60)] = 0;
        let dominant = Suppression {
            max_share: Some(0.05),
            ..rule
        };
        assert!(!passes_primary(&slot, 10, &dominant));
        assert!(!passes_primary(&Slot::default(), 10, &rule));
    }
}

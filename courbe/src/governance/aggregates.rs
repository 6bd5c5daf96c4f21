//! Anonymised aggregates over predefined groups (D.111-53, D.111-57), and a meter's
//! comparison with its group.
//!
//! Groups nest: `all` ⊃ `commune` ⊃ `iris` ⊃ `building` (each IRIS in one commune, each
//! building in one IRIS, as INSEE codes do: a load that would break it is refused, and a
//! registry that does not nest answers no aggregate). Only meters with a membership are
//! counted.
//!
//! # The decision unit: a group in one half-hour
//!
//! Aggregates are summed on one grid, the UTC half-hours: a reading (5 to 60 min) gives each
//! half-hour it overlaps its value × the overlap. A curve point is a group's energy in one
//! half-hour divided by its length (the mean power, exact for half-hourly readings), an energy
//! cell the sum of its half-hours, so every published number is a sum of **slots** (a group in
//! one half-hour) and a curve point and an energy can never be weighed against each other to
//! separate meters of different steps. Publication is decided per slot from the readings of
//! that half-hour alone: the decisions are the same whatever the range, period, time zone,
//! level or role of the request, and two answers differ only by which published slots they
//! add up. A meter *contributes* to a slot when a non-zero reading of it overlaps the slot.
//!
//! 1. **primary**: a slot is suppressed when fewer than the level's minimum of its meters
//!    contribute, or (when configured) when one meter holds more than the dominance share of
//!    the slot's energy;
//! 2. **inside the parent**: a slot is published only when its parent's slot is (the buildings
//!    of a withheld IRIS are withheld);
//! 3. **secondary**, top-down per half-hour: inside a published parent slot, the *hidden part*
//!    (the suppressed children and the parent's meters in no child) holds 0 or at least the
//!    child level's minimum of contributors, else the published children with the fewest
//!    members are suppressed too (the same ones in every half-hour where they contribute);
//! 4. a cell of an answer (the curve of a local day, the energy of a day, week, month or year
//!    in the requested time zone, clipped to the range) is published when it holds at least
//!    one slot and all its slots are; its bounds must fall on the grid (a time zone whose
//!    offset is not a whole half-hour, or a `from`/`to` off the grid, is refused).
//!
//! What this proves: in every half-hour, the published slots form a nested family in which a
//! published group minus its published children holds 0 or at least the minimum of
//! contributors. A linear combination of published numbers (parents, children, curve points,
//! energies of overlapping periods in any time zone) weighs all meters of such a part in a
//! half-hour alike, so what it isolates in a half-hour is a union of whole parts: 0 or at
//! least the minimum of meters. Without the building level (the public's view) each IRIS is
//! a whole part, so at least `min_meters`; with it (public bodies), an IRIS minus its published
//! buildings and a building hold at least `building_min_meters`. Not protected: that a part
//! had no contributor in a half-hour (a zero is a zero), and the count of active meters of a
//! cell, which is not a sum over half-hours: the counts of two overlapping periods may differ
//! by fewer than the minimum (a meter active on one day of a week), telling that some meters
//! were inactive, never what they consumed.
//!
//! A suppressed cell says so and carries no value and no count.
//!
//! # Over time: releases
//!
//! The decisions above hold for one state of the store. A slot decided twice, before and after
//! a late meter, a correction or an erasure, gives away the difference. So every reader but an
//! operator is answered from [releases](super::releases): the slot tables of whole
//! Europe/Paris months frozen once, never recomputed; operators read live (`source=live`, the
//! default for them) or the releases (`source=release`).
//!
//! The same holds for a comparison's quartiles (order statistics: a late meter between the
//! 7th and 8th of 13 values moves the median to (x + v7)/2, so x is recovered exactly): anyone
//! but an operator gets the distributions frozen with the release of each month
//! (`distribution`), and only the meter's own energy is read live.

use std::collections::{BTreeMap, HashMap};

use super::auth::{Level, Principal, Role};
use super::Governance;
use crate::error::ApiError;
use crate::query::{Calendar, Period};
use crate::question::{parse_channel, parse_meter_list, parse_range, parse_tz};
use crate::source::SeriesSource;
use crate::Channel;

/// When a cell of an aggregate is suppressed.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
    pub(super) fn min_for(&self, level: Level) -> u32 {
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
    /// Where the answer comes from; `None`: live for operators, releases for everyone else.
    pub source: Option<Source>,
}

/// Where an aggregate answer comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Computed now from the store (operators only).
    Live,
    /// Built from the frozen slots of releases ([`super::releases`]).
    Release,
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
    source: Option<String>,
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
    /// The meters a question is about: its ad-hoc list, or every member of the registry.
    pub fn listed_meters(&self, groups: &super::groups::GroupRegistry) -> Vec<String> {
        match &self.meters {
            Some(ids) => ids.clone(),
            None => groups
                .groups(Level::All)
                .into_values()
                .next()
                .unwrap_or_default(),
        }
    }

    /// Reads the query string of a request (without its `?`; empty when there is none).
    pub fn from_query(query: &str) -> Result<Params, ApiError> {
        let raw: RawParams = serde_urlencoded::from_str(query).map_err(|e| {
            ApiError::invalid(format!(
                "unreadable query string: Failed to deserialize query string: {e}"
            ))
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
        if channel == Channel::MAX_POWER {
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
        let source = match raw.source.as_deref() {
            None => None,
            Some("live") => Some(Source::Live),
            Some("release") => Some(Source::Release),
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "unknown source {other:?} (live or release)"
                )))
            }
        };
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
            source,
        })
    }
}

/// The grid every aggregate is summed on: half-hours from the Unix epoch, in seconds.
pub(super) const SLOT_S: i64 = 1_800;

/// Whether every boundary of `spans` falls on the grid.
fn check_grid(spans: &[(i64, i64)]) -> Result<(), ApiError> {
    if spans
        .iter()
        .all(|&(start, end)| start.rem_euclid(SLOT_S) == 0 && end.rem_euclid(SLOT_S) == 0)
    {
        return Ok(());
    }
    Err(ApiError::invalid(
        "aggregates are summed per half-hour: `from`, `to` and the period boundaries in `tz` \
         must fall on a half-hour",
    ))
}

/// One meter over the range: its energy per grid slot where a non-zero reading overlaps it.
type MeterSlots = Vec<(i64, i64)>;

/// The longest step of a reading, seconds: a slot holds readings that started that much
/// before it.
const MAX_STEP_S: i64 = 3_600;

/// A meter's readings spread on the grid, each slot of `[from, to)` getting value × overlap
/// in W·s, whatever reading it comes from.
fn meter_slots(points: &[crate::Point], from_utc: i64, to_utc: i64) -> MeterSlots {
    let mut by_slot: MeterSlots = Vec::with_capacity(points.len());
    for p in points {
        if p.value == 0 {
            continue;
        }
        let end = p.ts_utc + i64::from(p.step_min) * 60;
        let mut slot = p.ts_utc - p.ts_utc.rem_euclid(SLOT_S);
        while slot < end {
            let overlap_s = end.min(slot + SLOT_S) - p.ts_utc.max(slot);
            if (from_utc..to_utc).contains(&slot) {
                by_slot.push((slot, i64::from(p.value) * overlap_s));
            }
            slot += SLOT_S;
        }
    }
    // Points come in time order, so this sort finds them sorted.
    by_slot.sort_by_key(|&(slot, _)| slot);
    by_slot.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 += later.1;
        }
        same
    });
    by_slot
}

/// One group in one grid slot: its contributors and the energy its curve point and its
/// energy cells are made of.
#[derive(Clone, Debug, Default)]
pub(super) struct Slot {
    /// Members with a non-zero reading in the slot.
    pub(super) contributors: u32,
    /// Energy in W·s, exact.
    pub(super) energy_ws: i64,
    pub(super) max_meter_ws: i64,
    pub(super) published: bool,
}

impl Slot {
    /// The mean power over the slot, to the watt (exact for half-hourly readings).
    fn value_w(&self) -> i64 {
        (self.energy_ws + SLOT_S / 2).div_euclid(SLOT_S)
    }
}

/// A group's slots, one per half-hour of the range; a slot where no member contributes is
/// empty and counts as absent.
#[derive(Clone, Debug, Default)]
pub(super) struct Slots {
    pub(super) first: i64,
    pub(super) slots: Vec<Slot>,
}

impl Slots {
    pub(super) fn new(first: i64, len: usize) -> Slots {
        Slots {
            first,
            slots: vec![Slot::default(); len],
        }
    }

    pub(super) fn index(&self, ts: i64) -> Option<usize> {
        let i = usize::try_from((ts - self.first).div_euclid(SLOT_S)).ok()?;
        (ts >= self.first && i < self.slots.len()).then_some(i)
    }

    fn get(&self, ts: i64) -> Option<&Slot> {
        self.slots
            .get(self.index(ts)?)
            .filter(|s| s.contributors > 0)
    }

    fn get_mut(&mut self, ts: i64) -> Option<&mut Slot> {
        let i = self.index(ts)?;
        self.slots.get_mut(i).filter(|s| s.contributors > 0)
    }

    /// The non-empty slots starting in `[start, end)`, with their starts.
    fn range(&self, start: i64, end: i64) -> impl Iterator<Item = (i64, &Slot)> + '_ {
        let lo = self
            .index(start.max(self.first))
            .unwrap_or(self.slots.len());
        let hi = usize::try_from((end - self.first).div_euclid(SLOT_S))
            .unwrap_or(0)
            .min(self.slots.len());
        let first = self.first;
        self.slots
            .get(lo..hi.max(lo))
            .unwrap_or(&[])
            .iter()
            .enumerate()
            .filter(|(_, s)| s.contributors > 0)
            .map(move |(i, s)| (first + (lo + i) as i64 * SLOT_S, s))
    }

    /// The non-empty slots, with their starts.
    fn iter_mut(&mut self) -> impl Iterator<Item = (i64, &mut Slot)> + '_ {
        let first = self.first;
        self.slots
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| s.contributors > 0)
            .map(move |(i, s)| (first + i as i64 * SLOT_S, s))
    }
}

/// Every meter's energy per grid slot over the range.
pub(super) struct Table {
    /// The range, on the grid.
    from_utc: i64,
    to_utc: i64,
    pub(super) by_meter: HashMap<String, MeterSlots>,
}

impl Table {
    pub(super) fn load(
        series: &dyn SeriesSource,
        meters: &[String],
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Table, ApiError> {
        let mut by_meter = HashMap::with_capacity(meters.len());
        for m in meters {
            let points =
                crate::query::series_points(series, m, channel, from_utc - MAX_STEP_S, to_utc)
                    .map_err(|e| ApiError::internal(e.to_string()))?;
            by_meter.insert(m.clone(), meter_slots(&points, from_utc, to_utc));
        }
        Ok(Table {
            from_utc,
            to_utc,
            by_meter,
        })
    }

    /// A meter's slots starting in `[start, end)`.
    pub(super) fn meter(&self, meter: &str, start: i64, end: i64) -> &[(i64, i64)] {
        let Some(all) = self.by_meter.get(meter) else {
            return &[];
        };
        let lo = all.partition_point(|&(slot, _)| slot < start);
        let hi = all.partition_point(|&(slot, _)| slot < end);
        all.get(lo..hi).unwrap_or(&[])
    }

    /// The slots of a set of meters, none published yet.
    fn slots(&self, members: &[String]) -> Slots {
        let len = usize::try_from((self.to_utc - self.from_utc).div_euclid(SLOT_S)).unwrap_or(0);
        let mut slots = Slots::new(self.from_utc, len);
        for m in members {
            for &(start, energy_ws) in self.by_meter.get(m).into_iter().flatten() {
                let Some(slot) = slots.index(start).and_then(|i| slots.slots.get_mut(i)) else {
                    continue;
                };
                slot.contributors += 1;
                slot.energy_ws += energy_ws;
                slot.max_meter_ws = slot.max_meter_ws.max(energy_ws);
            }
        }
        slots
    }

    /// Members with a non-zero reading in `[start, end)`.
    fn active(&self, members: &[String], start: i64, end: i64) -> u32 {
        members
            .iter()
            .filter(|m| !self.meter(m, start, end).is_empty())
            .count() as u32
    }

    fn energy_ws(&self, meter: &str, start: i64, end: i64) -> i64 {
        self.meter(meter, start, end)
            .iter()
            .map(|&(_, ws)| ws)
            .sum()
    }
}

/// One group's sums over some of its members: what a node holding some meters knows of it.
/// Every field is a sum or a maximum over members, so the partials of disjoint sets of
/// meters merge exactly into those of their union ([`Partials::merge`]).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartialGroup {
    /// Per half-hour of the range: contributors, energy (W·s), the largest member's (W·s).
    pub slots: Vec<(u32, i64, i64)>,
    /// Per half-hour: contributors among the members in no group of the next level down.
    pub orphans: Vec<u32>,
    /// Per cell of the question (the groups answered only): members with a non-zero reading.
    pub active: Vec<u32>,
}

/// The unsuppressed sums of every group over the meters one source holds, for one aggregate
/// question: what a reader node answers a router. Cells no one may see are in it: it never
/// leaves a node but to be merged, and the rules are decided on the merged sums only.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Partials {
    /// The range, on the grid.
    pub from_utc: i64,
    pub to_utc: i64,
    /// [`GroupRegistry::digest`](super::groups::GroupRegistry::digest) of the registry summed
    /// with; `None` for an ad-hoc list of meters.
    pub registry: Option<String>,
    /// Which groups it holds: [`Coverage::of`] the question, or every group.
    pub coverage: Coverage,
    /// Whether it holds every group's largest member and the energy of the groups the
    /// question does not answer, which only the dominance rule (`Suppression::max_share`)
    /// reads; 0 in every such slot when not.
    pub dominance: bool,
    /// Level name (`all`, `commune`, `iris`, `building`, or `ad-hoc`), then group code.
    pub levels: BTreeMap<String, BTreeMap<String, PartialGroup>>,
}

/// Which groups a [`Partials`] holds: those whose sums the decisions of one question read.
///
/// A group's decision in a half-hour reads its own sums, its parent's decision and, through
/// secondary suppression inside its parent, every sibling's sums and the parent's members in
/// no child; so, up to `all`, its ancestors, their children and their orphans. A group's own
/// children never change it while each level's minimum is at least the next level's (the
/// hidden part of a published parent with no published child left is all its contributors,
/// at least the parent's minimum): when the building minimum is above the others, every group
/// is summed ([`Coverage::Every`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Coverage {
    /// Every group of every level, and the orphans of every group with children.
    Every,
    /// Every group of this level and of the levels above it; the orphans of those above.
    Level(String),
    /// One group (possibly absent from the registry: then nothing): `all`, and down to the
    /// group's level, the children of each of its ancestors, with the ancestors' orphans.
    Group { level: String, code: String },
    /// An ad-hoc list of meters, its one group.
    AdHoc,
}

impl Coverage {
    /// What the live answer of `params` decided with `rule` reads.
    pub fn of(params: &Params, rule: &Suppression) -> Coverage {
        if params.meters.is_some() {
            return Coverage::AdHoc;
        }
        if rule.building_min_meters > rule.min_meters {
            return Coverage::Every;
        }
        let level = level_name(params.level).to_string();
        match &params.code {
            None => Coverage::Level(level),
            Some(code) => Coverage::Group {
                level,
                code: code.clone(),
            },
        }
    }

    /// The groups held, per level: code, members, and whether its orphans are summed (exactly
    /// when all its children are held). `None` for an ad-hoc list or an unknown level.
    fn scope(&self, groups: &super::groups::GroupRegistry) -> Option<Scope> {
        let depth = |name: &str| LEVELS.iter().position(|&l| level_name(l) == name);
        let mut scope: Scope = BTreeMap::new();
        match self {
            Coverage::AdHoc => return None,
            Coverage::Every | Coverage::Level(_) => {
                let last = match self {
                    Coverage::Level(name) => depth(name)?,
                    _ => LEVELS.len() - 1,
                };
                for (d, &level) in LEVELS.iter().enumerate().take(last + 1) {
                    let orphans = d < last;
                    scope.insert(
                        level,
                        groups
                            .groups(level)
                            .into_iter()
                            .map(|(code, members)| (code, (members, orphans)))
                            .collect(),
                    );
                }
            }
            Coverage::Group { level, code } => {
                let d = depth(level)?;
                let Some(members) = groups.groups(LEVELS[d]).remove(code) else {
                    return Some(scope);
                };
                let Some(membership) = members.first().and_then(|m| groups.get(m)) else {
                    return Some(scope);
                };
                // The group's ancestors, `all` first, then the group itself.
                let path: Vec<&str> = LEVELS
                    .iter()
                    .take(d + 1)
                    .filter_map(|&l| membership.code(l))
                    .collect();
                if path.len() != d + 1 {
                    return Some(scope);
                }
                let all: BTreeMap<String, (Vec<String>, bool)> = groups
                    .groups(Level::All)
                    .into_iter()
                    .map(|(code, members)| (code, (members, d > 0)))
                    .collect();
                scope.insert(Level::All, all);
                for k in 1..=d {
                    let (parent_level, level) = (LEVELS[k - 1], LEVELS[k]);
                    let kids = groups
                        .groups(level)
                        .into_iter()
                        .filter(|(_, members)| {
                            members
                                .first()
                                .and_then(|m| groups.get(m))
                                .and_then(|ms| ms.code(parent_level))
                                == Some(path[k - 1])
                        })
                        .map(|(code, members)| {
                            let orphans = k < d && code == path[k];
                            (code, (members, orphans))
                        })
                        .collect();
                    scope.insert(level, kids);
                }
            }
        }
        Some(scope)
    }
}

/// The groups a [`Coverage`] holds: per level, code to members and whether its orphans are
/// summed.
type Scope = BTreeMap<Level, BTreeMap<String, (Vec<String>, bool)>>;

/// The cells of a question, its level and its code (all groups: `None`).
type Answered<'a> = (&'a [(i64, i64)], Level, Option<&'a str>);

/// The level and code of an ad-hoc list's one group in [`Partials`].
const AD_HOC: &str = "ad-hoc";

impl Partials {
    fn len(&self) -> usize {
        usize::try_from((self.to_utc - self.from_utc).div_euclid(SLOT_S)).unwrap_or(0)
    }

    fn group(table: &Table, members: &[String]) -> PartialGroup {
        PartialGroup {
            slots: table
                .slots(members)
                .slots
                .iter()
                .map(|s| (s.contributors, s.energy_ws, s.max_meter_ws))
                .collect(),
            orphans: Vec::new(),
            active: Vec::new(),
        }
    }

    /// The groups of `coverage` summed over `table`; with `answered` (the cells of a
    /// question, its level and code), the active members of each cell of the groups it
    /// answers.
    fn of_groups(
        groups: &super::groups::GroupRegistry,
        table: &Table,
        answered: Option<Answered<'_>>,
        coverage: Coverage,
        dominance: bool,
    ) -> Partials {
        let mut levels = BTreeMap::new();
        for (level, at) in coverage.scope(groups).unwrap_or_default() {
            let child = LEVELS
                .iter()
                .position(|&l| l == level)
                .and_then(|i| LEVELS.get(i + 1).copied());
            let mut at_level = BTreeMap::new();
            for (code, (members, with_orphans)) in at {
                let mut group = Partials::group(table, &members);
                if let (Some(child), true) = (child, with_orphans) {
                    let orphans: Vec<String> = members
                        .iter()
                        .filter(|m| groups.get(m).and_then(|ms| ms.code(child)).is_none())
                        .cloned()
                        .collect();
                    group.orphans = table
                        .slots(&orphans)
                        .slots
                        .iter()
                        .map(|s| s.contributors)
                        .collect();
                }
                let answers = answered.is_some_and(|(_, asked, asked_code)| {
                    asked == level && asked_code.is_none_or(|c| c == code)
                });
                if let (Some((spans, _, _)), true) = (answered, answers) {
                    group.active = spans
                        .iter()
                        .map(|&(start, end)| table.active(&members, start, end))
                        .collect();
                }
                if !dominance {
                    for slot in &mut group.slots {
                        slot.2 = 0;
                        if !answers {
                            slot.1 = 0;
                        }
                    }
                }
                at_level.insert(code, group);
            }
            levels.insert(level_name(level).to_string(), at_level);
        }
        Partials {
            from_utc: table.from_utc,
            to_utc: table.to_utc,
            registry: Some(groups.digest()),
            coverage,
            dominance,
            levels,
        }
    }

    /// The sums of the meters `series` holds for the live answer of `params` decided with
    /// `rule` (the groups of `groups` it reads, [`Coverage::of`], or the ad-hoc list of
    /// `params.meters`). Meters it does not hold count as meters without readings, so a node
    /// holding some shards answers for its own meters.
    pub fn load(
        series: &dyn SeriesSource,
        groups: &super::groups::GroupRegistry,
        params: &Params,
        rule: &Suppression,
    ) -> Result<Partials, ApiError> {
        let (from_utc, to_utc) = (params.calendar.from_utc, params.calendar.to_utc);
        let listed = params.listed_meters(groups);
        let held: Vec<String> = listed.into_iter().filter(|m| series.has_meter(m)).collect();
        let table = Table::load(series, &held, params.channel, from_utc, to_utc)?;
        Partials::of_table(
            groups,
            &table,
            params,
            Coverage::of(params, rule),
            rule.max_share.is_some(),
        )
    }

    /// The sums of the meters of `table` for the live answer of `params`, over the groups of
    /// `coverage` (an ad-hoc list's one group when `params.meters` is set).
    fn of_table(
        groups: &super::groups::GroupRegistry,
        table: &Table,
        params: &Params,
        coverage: Coverage,
        dominance: bool,
    ) -> Result<Partials, ApiError> {
        let spans = spans(params.kind, &params.calendar)?;
        match &params.meters {
            Some(ids) => {
                let mut group = Partials::group(table, ids);
                group.active = spans
                    .iter()
                    .map(|&(start, end)| table.active(ids, start, end))
                    .collect();
                let mut levels = BTreeMap::new();
                levels.insert(
                    AD_HOC.to_string(),
                    BTreeMap::from([(AD_HOC.to_string(), group)]),
                );
                Ok(Partials {
                    from_utc: table.from_utc,
                    to_utc: table.to_utc,
                    registry: None,
                    coverage: Coverage::AdHoc,
                    dominance: true,
                    levels,
                })
            }
            None => Ok(Partials::of_groups(
                groups,
                table,
                Some((&spans, params.level, params.code.as_deref())),
                coverage,
                dominance,
            )),
        }
    }

    /// Adds `other`, the partials of meters disjoint from this one's, for the same question
    /// and registry: sums add, the largest member's energy is the larger.
    pub fn merge(&mut self, other: Partials) -> Result<(), String> {
        if (self.from_utc, self.to_utc, &self.registry)
            != (other.from_utc, other.to_utc, &other.registry)
        {
            return Err(format!(
                "partial tables of different questions or registries: [{}, {}) {:?} and [{}, {}) {:?}",
                self.from_utc, self.to_utc, self.registry, other.from_utc, other.to_utc, other.registry
            ));
        }
        if (&self.coverage, self.dominance) != (&other.coverage, other.dominance) {
            return Err(format!(
                "partial tables of different groups: {:?} and {:?}",
                (&self.coverage, self.dominance),
                (&other.coverage, other.dominance)
            ));
        }
        let len = self.len();
        for (level, groups) in other.levels {
            let mine = self.levels.entry(level.clone()).or_default();
            for (code, g) in groups {
                if g.slots.len() != len || g.orphans.len() > len {
                    return Err(format!(
                        "{level} {code:?}: {} slots, not {len}",
                        g.slots.len()
                    ));
                }
                let Some(m) = mine.get_mut(&code) else {
                    mine.insert(code, g);
                    continue;
                };
                let add = |a: &mut Vec<u32>, b: &[u32]| -> Result<(), String> {
                    if a.is_empty() {
                        a.resize(b.len(), 0);
                    }
                    if !b.is_empty() && b.len() != a.len() {
                        return Err(format!("{level} {code:?}: counts of different lengths"));
                    }
                    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    Ok(())
                };
                for (x, y) in m.slots.iter_mut().zip(&g.slots) {
                    *x = (x.0 + y.0, x.1 + y.1, x.2.max(y.2));
                }
                add(&mut m.orphans, &g.orphans)?;
                add(&mut m.active, &g.active)?;
            }
        }
        Ok(())
    }
}

fn passes_primary(slot: &Slot, min: u32, rule: &Suppression) -> bool {
    if slot.contributors < min.max(1) {
        return false;
    }
    match rule.max_share {
        Some(share) if slot.energy_ws > 0 => {
            slot.max_meter_ws as f64 <= share * slot.energy_ws as f64
        }
        _ => true,
    }
}

/// Whether the cell `[start, end)` of a group is published: it holds a slot and every slot
/// in it is published.
fn publishable(slots: &Slots, start: i64, end: i64) -> bool {
    let mut inside = slots.range(start, end).peekable();
    inside.peek().is_some() && inside.all(|(_, s)| s.published)
}

/// A group: its members and its slots with their decisions.
#[derive(Clone, Debug, Default)]
pub(super) struct Group {
    pub(super) members: Vec<String>,
    pub(super) slots: Slots,
    /// Per slot: contributors among the members in no group of the next level down.
    orphans: Vec<u32>,
}

/// Every group's slots at every level, with the final publication decisions.
pub(super) struct Decisions {
    pub(super) levels: BTreeMap<Level, BTreeMap<String, Group>>,
}

pub(super) const LEVELS: [Level; 4] = [Level::All, Level::Commune, Level::Iris, Level::Building];

impl Decisions {
    /// The decisions of the groups `groups` (the registry whose `all` group `table` holds).
    /// Refused when the groups do not nest (a registry recorded before loads were checked):
    /// the suppression rules protect nothing then.
    pub(super) fn compute(
        groups: &super::groups::GroupRegistry,
        table: &Table,
        rule: &Suppression,
    ) -> Result<Decisions, ApiError> {
        Decisions::of(
            groups,
            &Partials::of_groups(groups, table, None, Coverage::Every, true),
            rule,
        )
    }

    /// The decisions of the groups `groups` from the sums of all their members (one node's
    /// [`Partials`], or several merged): the one place the rules are applied.
    fn of(
        groups: &super::groups::GroupRegistry,
        partials: &Partials,
        rule: &Suppression,
    ) -> Result<Decisions, ApiError> {
        groups.check_nesting().map_err(ApiError::internal)?;
        if partials.registry.as_deref() != Some(groups.digest().as_str()) {
            return Err(ApiError::internal(
                "the partial tables were summed with another group registry",
            ));
        }
        let scope = partials.coverage.scope(groups).ok_or_else(|| {
            ApiError::internal(format!(
                "partial tables of {:?} decide no group",
                partials.coverage
            ))
        })?;
        let len = partials.len();
        let mut levels = BTreeMap::new();
        for (level, at) in scope {
            let min = rule.min_for(level);
            let mut at_level = BTreeMap::new();
            let sums = partials.levels.get(level_name(level));
            for (code, (members, _)) in at {
                let sums = sums.and_then(|l| l.get(&code));
                let mut slots = Slots::new(partials.from_utc, len);
                if let Some(sums) = sums {
                    for (slot, &(contributors, energy_ws, max_meter_ws)) in
                        slots.slots.iter_mut().zip(&sums.slots)
                    {
                        *slot = Slot {
                            contributors,
                            energy_ws,
                            max_meter_ws,
                            published: false,
                        };
                    }
                }
                for (_, s) in slots.iter_mut() {
                    s.published = passes_primary(s, min, rule);
                }
                let mut orphans = sums.map(|s| s.orphans.clone()).unwrap_or_default();
                orphans.resize(len, 0);
                at_level.insert(
                    code,
                    Group {
                        members,
                        slots,
                        orphans,
                    },
                );
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
                    parent_withheld |= decisions.secondary(groups, *parent, *child, rule);
                }
            }
            if !parent_withheld {
                break;
            }
        }
        Ok(decisions)
    }

    /// Withholds the child slots of withheld parent slots, then makes the hidden part of each
    /// published parent slot hold 0 or at least the child minimum of contributors. True when
    /// a parent slot had to be withheld (no published child left to withhold).
    fn secondary(
        &mut self,
        groups: &super::groups::GroupRegistry,
        parent: Level,
        child: Level,
        rule: &Suppression,
    ) -> bool {
        let min = rule.min_for(child);
        let mut children = self.levels.remove(&child).unwrap_or_default();
        let mut parent_withheld = false;
        for parent_group in self
            .levels
            .get_mut(&parent)
            .into_iter()
            .flat_map(|l| l.values_mut())
        {
            // The children of this parent; the hidden part starts with its members in none.
            let mut kids: Vec<String> = Vec::new();
            for m in &parent_group.members {
                if let Some(code) = groups.get(m).and_then(|ms| ms.code(child)) {
                    if !kids.iter().any(|k| k == code) {
                        kids.push(code.to_string());
                    }
                }
            }
            let mut hidden: Vec<u32> = parent_group.orphans.clone();
            for k in &kids {
                let Some(kid) = children.get_mut(k) else {
                    continue;
                };
                for (ts, s) in kid.slots.iter_mut() {
                    if !parent_group.slots.get(ts).is_some_and(|p| p.published) {
                        s.published = false;
                    } else if !s.published {
                        if let Some(h) =
                            parent_group.slots.index(ts).and_then(|i| hidden.get_mut(i))
                        {
                            *h += s.contributors;
                        }
                    }
                }
            }
            for (i, mut h) in hidden.into_iter().enumerate() {
                if h == 0 || h >= min {
                    continue;
                }
                let ts = parent_group.slots.first + i as i64 * SLOT_S;
                let Some(parent_slot) = parent_group.slots.get_mut(ts) else {
                    continue;
                };
                if !parent_slot.published {
                    continue;
                }
                while h > 0 && h < min {
                    // By membership, not by contributors in this half-hour: the same child
                    // goes first all day long, so that the others' days stay whole.
                    let fewest = kids
                        .iter()
                        .filter_map(|k| {
                            let kid = children.get(k)?;
                            let s = kid.slots.get(ts)?;
                            s.published.then(|| (kid.members.len(), k.clone()))
                        })
                        .min();
                    let withheld = fewest
                        .and_then(|(_, k)| children.get_mut(&k).and_then(|g| g.slots.get_mut(ts)));
                    match withheld {
                        Some(s) => {
                            s.published = false;
                            h += s.contributors;
                        }
                        None => {
                            // Unreachable while the parent's minimum is at least the child's
                            // (the parent would have failed the primary rule).
                            parent_slot.published = false;
                            parent_withheld = true;
                            for k in &kids {
                                if let Some(s) =
                                    children.get_mut(k).and_then(|g| g.slots.get_mut(ts))
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

/// One cell of an aggregate answer: a local day of a curve, or a period of energy.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub start_utc: i64,
    pub end_utc: i64,
    /// `None`: suppressed (too few contributors, or one dominates).
    pub figures: Option<CellFigures>,
}

/// What a published cell shows; `meters`: members with a non-zero reading in the cell.
#[derive(Clone, Debug, PartialEq)]
pub enum CellFigures {
    Energy {
        meters: u32,
        energy_ws: i64,
    },
    Curve {
        meters: u32,
        points: Vec<CurvePoint>,
    },
}

/// One interval of a summed curve: W, and how many meters it sums.
#[derive(Clone, Debug, PartialEq)]
pub struct CurvePoint {
    pub ts_utc: i64,
    pub value_w: i64,
    pub meters: u32,
}

/// The cells of one group.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupCells {
    pub group: String,
    pub cells: Vec<Cell>,
}

/// The answer of `GET /v1/aggregates`.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregates {
    /// `None`: an ad-hoc list of meters.
    pub level: Option<Level>,
    pub kind: Kind,
    pub channel: Channel,
    pub tz_name: String,
    /// The period of a cell (a day for curves).
    pub period: Period,
    pub min_meters: u32,
    pub groups: Vec<GroupCells>,
}

/// The name of a period in questions and answers.
pub fn period_name(p: Period) -> &'static str {
    match p {
        Period::Day => "day",
        Period::Week => "week",
        Period::Month => "month",
        Period::Year => "year",
    }
}

/// The cells of a question: the local days of a curve, or the periods of an energy, each on
/// the grid.
fn spans(kind: Kind, calendar: &Calendar) -> Result<Vec<(i64, i64)>, ApiError> {
    let spans = match kind {
        Kind::Curve => Calendar {
            period: Period::Day,
            ..calendar.clone()
        }
        .periods()?,
        Kind::Energy => calendar.periods()?,
    };
    check_grid(&spans)?;
    Ok(spans)
}

/// The cells of one group: the curve of each local day, or the energy of each period.
pub(super) fn group_cells(
    kind: Kind,
    calendar: &Calendar,
    slots: &Slots,
    active: &dyn Fn(i64, i64) -> u32,
) -> Result<Vec<Cell>, ApiError> {
    let spans = spans(kind, calendar)?;
    Ok(spans
        .into_iter()
        .map(|(start, end)| {
            if !publishable(slots, start, end) {
                return Cell {
                    start_utc: start,
                    end_utc: end,
                    figures: None,
                };
            }
            let inside = slots.range(start, end);
            let meters = active(start, end);
            let figures = match kind {
                Kind::Curve => CellFigures::Curve {
                    meters,
                    points: inside
                        .map(|(ts, s)| CurvePoint {
                            ts_utc: ts,
                            value_w: s.value_w(),
                            meters: s.contributors,
                        })
                        .collect(),
                },
                Kind::Energy => CellFigures::Energy {
                    meters,
                    energy_ws: inside.map(|(_, s)| s.energy_ws).sum::<i64>(),
                },
            };
            Cell {
                start_utc: start,
                end_utc: end,
                figures: Some(figures),
            }
        })
        .collect())
}

/// The cells of a group from its slots and the active members of each of its cells.
fn cells_of(
    params: &Params,
    slots: &Slots,
    sums: Option<&PartialGroup>,
) -> Result<Vec<Cell>, ApiError> {
    let spans = spans(params.kind, &params.calendar)?;
    let active = |start: i64, _end: i64| -> u32 {
        let i = spans.iter().position(|&(s, _)| s == start);
        i.and_then(|i| sums?.active.get(i).copied()).unwrap_or(0)
    };
    group_cells(params.kind, &params.calendar, slots, &active)
}

/// The groups of `params.level` (one when `params.code` is set) from the live sums of every
/// member, decided here.
fn live_groups(
    partials: &Partials,
    gov: &Governance,
    params: &Params,
) -> Result<Vec<GroupCells>, ApiError> {
    let rule = gov.config().aggregates;
    let wanted = Coverage::of(params, &rule);
    if partials.coverage != wanted && partials.coverage != Coverage::Every
        || rule.max_share.is_some() && !partials.dominance
    {
        return Err(ApiError::internal(format!(
            "partial tables of {:?} (dominance: {}) do not decide {wanted:?}",
            partials.coverage, partials.dominance
        )));
    }
    let decisions = Decisions::of(&gov.groups(), partials, &rule)?;
    let sums = partials.levels.get(level_name(params.level));
    let mut out = Vec::new();
    if let Some(at_level) = decisions.levels.get(&params.level) {
        for (code, group) in at_level {
            if params.code.as_deref().is_some_and(|c| c != code) {
                continue;
            }
            out.push(GroupCells {
                group: code.clone(),
                cells: cells_of(params, &group.slots, sums.and_then(|l| l.get(code)))?,
            });
        }
    }
    Ok(out)
}

/// Answers an aggregate question for `principal` (already authorised for its level), live
/// answers read from `series`: a store's snapshot, or the union of a cluster's shards, on
/// which the suppression rules are then decided once, on the merged cells.
pub fn answer(
    series: &dyn SeriesSource,
    gov: &Governance,
    principal: &Principal,
    params: &Params,
) -> Result<Aggregates, ApiError> {
    answer_with(gov, principal, params, &|params| {
        Partials::load(series, &gov.groups(), params, &gov.config().aggregates)
    })
}

/// [`answer`] with the live sums from `live`: one node's [`Partials::load`], or a router's
/// merge of its readers' partials. Every check and every rule is this function's, so both
/// decide alike; `live` is called only for a live answer, after the checks.
pub fn answer_with(
    gov: &Governance,
    principal: &Principal,
    params: &Params,
    live: &dyn Fn(&Params) -> Result<Partials, ApiError>,
) -> Result<Aggregates, ApiError> {
    let rule = gov.config().aggregates;
    spans(params.kind, &params.calendar)?;
    let (groups_out, min) = match &params.meters {
        Some(_) => {
            // Ad-hoc groups are the operator's (see `authorize`): primary rule only.
            let partials = live(params)?;
            if partials.coverage != Coverage::AdHoc {
                return Err(ApiError::internal(format!(
                    "partial tables of {:?} answer no ad-hoc list",
                    partials.coverage
                )));
            }
            let sums = partials.levels.get(AD_HOC).and_then(|l| l.get(AD_HOC));
            let min = rule.min_meters;
            let mut slots = Slots::new(partials.from_utc, partials.len());
            for (slot, &(contributors, energy_ws, max_meter_ws)) in slots
                .slots
                .iter_mut()
                .zip(sums.map_or(&[][..], |s| &s.slots[..]))
            {
                *slot = Slot {
                    contributors,
                    energy_ws,
                    max_meter_ws,
                    published: false,
                };
            }
            for (_, s) in slots.iter_mut() {
                s.published = passes_primary(s, min, &rule);
            }
            let cells = cells_of(params, &slots, sums)?;
            (
                vec![GroupCells {
                    group: AD_HOC.into(),
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
                    crate::error::ErrorCode::Forbidden,
                    "this token does not allow this request",
                ));
            }
            let source = match (principal.role, params.source) {
                (Role::Operator, source) => source.unwrap_or(Source::Live),
                (_, None | Some(Source::Release)) => Source::Release,
                (_, Some(Source::Live)) => {
                    return Err(ApiError::new(
                        crate::error::ErrorCode::Forbidden,
                        "only operators read live aggregates: others read releases",
                    ))
                }
            };
            match source {
                // The minimum the releases were decided with (the smallest, across several).
                Source::Release => super::releases::released_groups(gov, params)?,
                Source::Live => (
                    live_groups(&live(params)?, gov, params)?,
                    rule.min_for(params.level),
                ),
            }
        }
    };
    Ok(Aggregates {
        level: params.meters.is_none().then_some(params.level),
        kind: params.kind,
        channel: params.channel,
        tz_name: params.tz_name.clone(),
        period: match params.kind {
            Kind::Energy => params.calendar.period,
            Kind::Curve => Period::Day,
        },
        min_meters: min,
        groups: groups_out,
    })
}

/// What `compare` shows of a group in one month: how many of its members had a non-zero reading
/// and the first quartile, median and third quartile of their energies, in quarters of a W·s
/// (an interpolation between order statistics falls on a quarter, so the integers are exact).
pub type Distribution = (u32, [i64; 3]);

/// Quartiles (linear interpolation between order statistics) of sorted energies, in quarters
/// of their unit.
fn quartiles_x4(sorted: &[i64]) -> Option<[i64; 3]> {
    let last = i64::try_from(sorted.len().checked_sub(1)?).ok()?;
    let at = |q: i64| -> Option<i64> {
        let pos_x4 = q * last;
        let lo = pos_x4.div_euclid(4);
        let frac_x4 = pos_x4 - 4 * lo;
        let hi = if frac_x4 == 0 { lo } else { lo + 1 };
        let a = *sorted.get(usize::try_from(lo).ok()?)?;
        let b = *sorted.get(usize::try_from(hi).ok()?)?;
        Some(
            a.saturating_mul(4)
                .saturating_add(b.saturating_sub(a).saturating_mul(frac_x4)),
        )
    };
    Some([at(1)?, at(2)?, at(3)?])
}

/// The distribution of `group`'s energies in the month `[start, end)`, or `None` when its cell
/// is not published (or none of its members had a reading).
pub(super) fn distribution(
    table: &Table,
    group: &Group,
    start: i64,
    end: i64,
) -> Option<Distribution> {
    if !publishable(&group.slots, start, end) {
        return None;
    }
    let mut values: Vec<i64> = group
        .members
        .iter()
        .filter(|m| !table.meter(m, start, end).is_empty())
        .map(|m| table.energy_ws(m, start, end))
        .collect();
    values.sort_unstable();
    Some((u32::try_from(values.len()).ok()?, quartiles_x4(&values)?))
}

/// A group's distribution in one month of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupDistribution {
    pub level: Level,
    pub group: String,
    /// `None`: suppressed.
    pub distribution: Option<Distribution>,
}

/// One month of a comparison: the meter's energy and its groups' distributions.
#[derive(Clone, Debug, PartialEq)]
pub struct CompareMonth {
    pub start_utc: i64,
    pub end_utc: i64,
    pub energy_ws: i64,
    pub groups: Vec<GroupDistribution>,
}

/// The answer of `GET /v1/meters/{id}/compare`.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub meter: String,
    pub tz_name: String,
    pub months: Vec<CompareMonth>,
}

/// Refuses a comparison that is not of whole Europe/Paris months. Quartiles are order
/// statistics, not sums: over a range a caller chooses they would be members' own values of
/// that range (with 13 contributors in a half-hour, the first quartile is one neighbour's
/// half-hour), and two months in zones an hour apart would differ by one member's hours.
pub fn check_whole_paris_months(params: &Params) -> Result<(), ApiError> {
    let month_start = |ts_utc: i64| {
        jiff::Timestamp::from_second(ts_utc).is_ok_and(|t| {
            let local = t.to_zoned(params.calendar.tz.clone());
            local.day() == 1 && local.time() == jiff::civil::Time::midnight()
        })
    };
    let (from, to) = (params.calendar.from_utc, params.calendar.to_utc);
    if params.tz_name == crate::question::DEFAULT_TZ && month_start(from) && month_start(to) {
        return Ok(());
    }
    Err(ApiError::invalid(
        "a comparison is of whole Europe/Paris months: `from` and `to` are the first of a \
         month (2024-01-01), `tz` is Europe/Paris",
    ))
}

/// A meter's monthly energy next to the quartiles of its IRIS, its commune and all meters,
/// each from cells that pass the suppression rules, over whole Europe/Paris months only.
///
/// An operator's distributions are computed now; everyone else's come from the distributions
/// frozen in releases ([`super::releases`]: the same month read twice is answered alike, so a
/// late, corrected or erased meter cannot be recovered from two medians), and a month that is
/// not released is refused (`not_released`). The meter's own energy is read now: it is the
/// caller's own data.
pub fn compare(
    series: &dyn SeriesSource,
    gov: &Governance,
    principal: &Principal,
    meter: &str,
    params: &Params,
) -> Result<Comparison, ApiError> {
    check_whole_paris_months(params)?;
    let groups_reg = gov.groups();
    let calendar = Calendar {
        period: Period::Month,
        ..params.calendar.clone()
    };
    let months = spans(Kind::Energy, &calendar)?;
    let codes: Vec<(Level, String)> = [Level::Iris, Level::Commune, Level::All]
        .into_iter()
        .filter_map(|level| {
            let code = groups_reg.get(meter)?.code(level)?;
            Some((level, code.to_string()))
        })
        .collect();
    let load = |meters: &[String]| {
        Table::load(
            series,
            meters,
            params.channel,
            calendar.from_utc,
            calendar.to_utc,
        )
    };
    let (table, distributions) = if matches!(principal.role, Role::Operator) {
        let mut all: Vec<String> = groups_reg
            .groups(Level::All)
            .into_values()
            .next()
            .unwrap_or_default();
        if !all.iter().any(|m| m == meter) {
            all.push(meter.to_string());
        }
        let table = load(&all)?;
        let decisions = Decisions::compute(&groups_reg, &table, &gov.config().aggregates)?;
        let distributions = months
            .iter()
            .map(|&(start, end)| {
                codes
                    .iter()
                    .filter_map(|(level, code)| {
                        let group = decisions.levels.get(level)?.get(code)?;
                        Some(GroupDistribution {
                            level: *level,
                            group: code.clone(),
                            distribution: distribution(&table, group, start, end),
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>();
        (table, distributions)
    } else {
        let frozen = super::releases::released_distributions(gov, params, &months, &codes)?;
        let distributions = frozen
            .into_iter()
            .map(|month| {
                month
                    .into_iter()
                    .map(|(level, group, distribution)| GroupDistribution {
                        level,
                        group,
                        distribution,
                    })
                    .collect()
            })
            .collect();
        (load(&[meter.to_string()])?, distributions)
    };
    let months = months
        .iter()
        .zip(distributions)
        .map(|(&(start, end), groups)| CompareMonth {
            start_utc: start,
            end_utc: end,
            energy_ws: table.energy_ws(meter, start, end),
            groups,
        })
        .collect();
    Ok(Comparison {
        meter: meter.to_string(),
        tz_name: params.tz_name.clone(),
        months,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_interpolate_between_order_statistics_in_exact_quarters() {
        assert_eq!(quartiles_x4(&[1, 2, 3, 4, 5]), Some([8, 12, 16]));
        assert_eq!(quartiles_x4(&[10, 20]), Some([50, 60, 70]));
        assert_eq!(quartiles_x4(&[7]), Some([28, 28, 28]));
        assert_eq!(quartiles_x4(&[]), None);
    }

    #[test]
    fn a_slot_with_few_contributors_fails_the_primary_rule() {
        let rule = Suppression::default();
        let mut slot = Slot {
            contributors: 12,
            energy_ws: 1_200 * SLOT_S,
            max_meter_ws: 150 * SLOT_S,
            published: false,
        };
        assert!(passes_primary(&slot, 10, &rule));
        let dominant = Suppression {
            max_share: Some(0.05),
            ..rule
        };
        assert!(!passes_primary(&slot, 10, &dominant));
        slot.contributors = 9;
        assert!(!passes_primary(&slot, 10, &rule));
        assert!(!passes_primary(&Slot::default(), 2, &rule));
    }

    #[test]
    fn readings_of_any_step_are_spread_on_the_half_hour_grid_by_overlap() {
        let point = |ts_utc: i64, value: i32, step_min: u16| crate::Point {
            ts_utc,
            value,
            step_min,
            quality: crate::Quality::Measured,
        };
        let points = [
            // An hour from -00:30 (before the range), ten minutes at 01:10 and 01:20 (zero),
            // a zero half-hour at 01:30.
            point(-SLOT_S, 100, 60),
            point(2 * SLOT_S + 600, 30, 10),
            point(2 * SLOT_S + 1_200, 0, 10),
            point(3 * SLOT_S, 0, 30),
        ];
        let slots = meter_slots(&points, 0, 4 * SLOT_S);
        assert_eq!(slots, [(0, 100 * SLOT_S), (2 * SLOT_S, 30 * 600)]);
        let slot = Slot {
            contributors: 1,
            energy_ws: 30 * 600,
            ..Slot::default()
        };
        assert_eq!(slot.value_w(), 10, "the mean power over the half-hour");
    }

    /// Restricted partials of disjoint meter sets, merged, decide as one node summing every
    /// group (the pre-coverage computation): generated registries with several communes, IRIS
    /// and buildings, meters in no building, groups under and at the thresholds, every level
    /// and code (and one that does not exist), both kinds, ad-hoc lists, several rules.
    #[test]
    fn restricted_partials_of_disjoint_meters_merged_answer_as_every_group_summed_does() {
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

        use super::super::auth::{Principal, Role};
        use super::super::groups::Membership;
        use super::super::{Governance, GovernanceConfig};

        /// splitmix64: the fleet of a case from its seed.
        fn next(state: &mut u64) -> u64 {
            *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        let (from_utc, to_utc) = (1_709_251_200, 1_709_251_200 + 2 * 86_400);
        let operator = Principal {
            role: Role::Operator,
            subject: None,
        };
        let strategy = (
            proptest::prelude::any::<u64>(),
            2u32..=10,
            1u32..=4,
            proptest::option::of(proptest::sample::select(vec![0.3, 0.6])),
            2usize..=4,
        );
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: 24,
                failure_persistence: None,
                ..Config::default()
            },
            TestRng::from_seed(RngAlgorithm::ChaCha, &[0x16; 32]),
        );
        runner
            .run(&strategy, |(seed, min, building_min, max_share, parts)| {
                let mut rng = seed;
                let rule = Suppression {
                    min_meters: min,
                    building_min_meters: building_min,
                    max_share,
                };
                let communes = 1 + next(&mut rng) % 3;
                let meters = 8 + next(&mut rng) % 50;
                let mut memberships = Vec::new();
                let mut by_meter = HashMap::new();
                for i in 0..meters {
                    let id = format!("{:014}", 10_000_000_000_000u64 + i);
                    let c = next(&mut rng) % communes;
                    let iris = next(&mut rng) % (1 + c);
                    let building = match next(&mut rng) % 4 {
                        0 => None,
                        b => Some(format!("c{c}i{iris}b{}", b % (1 + iris))),
                    };
                    memberships.push(Membership {
                        meter: id.clone(),
                        commune: format!("c{c}"),
                        iris: format!("c{c}i{iris}"),
                        building,
                    });
                    // Some meters read nothing, some every half-hour, most in between; one in
                    // six consumes 200 times as much (the dominance rule's case).
                    let rate = next(&mut rng) % 5;
                    let scale = if next(&mut rng) % 6 == 0 { 200 } else { 1 };
                    let mut slots = Vec::new();
                    let mut slot = from_utc;
                    while slot < to_utc {
                        if next(&mut rng) % 4 < rate {
                            let ws = scale * (1 + (next(&mut rng) % 2_000) as i64);
                            slots.push((slot, ws * SLOT_S));
                        }
                        slot += SLOT_S;
                    }
                    by_meter.insert(id, slots);
                }
                let dir = tempfile::tempdir().unwrap();
                let gov = Governance::open(
                    dir.path(),
                    GovernanceConfig {
                        aggregates: rule,
                        ..GovernanceConfig::default()
                    },
                )
                .unwrap();
                gov.load_groups(memberships).unwrap();
                let groups = gov.groups();
                let whole = Table {
                    from_utc,
                    to_utc,
                    by_meter: by_meter.clone(),
                };
                // Disjoint parts, as shards would split the meters.
                let mut split: Vec<HashMap<String, MeterSlots>> = vec![HashMap::new(); parts];
                for (id, slots) in by_meter {
                    let part = (next(&mut rng) as usize) % parts;
                    split[part].insert(id, slots);
                }
                let tables: Vec<Table> = split
                    .into_iter()
                    .map(|by_meter| Table {
                        from_utc,
                        to_utc,
                        by_meter,
                    })
                    .collect();
                let mut questions = Vec::new();
                for level in LEVELS {
                    let name = level_name(level);
                    let mut codes: Vec<String> = vec![String::new(), "&code=nowhere".into()];
                    codes.extend(
                        groups
                            .groups(level)
                            .into_keys()
                            .map(|code| format!("&code={code}")),
                    );
                    for code in codes {
                        for kind in ["kind=energy&period=day", "kind=curve"] {
                            questions.push(format!("level={name}{code}&{kind}"));
                        }
                    }
                }
                let listed: Vec<String> = (0..meters)
                    .filter(|_| next(&mut rng) % 2 == 0)
                    .map(|i| format!("{:014}", 10_000_000_000_000u64 + i))
                    .chain(["99999999999999".to_string()])
                    .collect();
                questions.push(format!(
                    "kind=energy&period=day&meters={}",
                    listed.join(",")
                ));
                for q in questions {
                    let params =
                        Params::from_query(&format!("from=2024-03-01&to=2024-03-03&tz=UTC&{q}"))
                            .unwrap();
                    let every = if params.meters.is_some() {
                        Coverage::AdHoc
                    } else {
                        Coverage::Every
                    };
                    let one = answer_with(&gov, &operator, &params, &|params| {
                        Partials::of_table(&groups, &whole, params, every.clone(), true)
                    })
                    .unwrap();
                    let coverage = Coverage::of(&params, &rule);
                    let mut merged: Option<Partials> = None;
                    for table in &tables {
                        let p = Partials::of_table(
                            &groups,
                            table,
                            &params,
                            coverage.clone(),
                            rule.max_share.is_some(),
                        )
                        .unwrap();
                        match &mut merged {
                            None => merged = Some(p),
                            Some(m) => m.merge(p).unwrap(),
                        }
                    }
                    let merged = merged.expect("two parts or more");
                    let answer =
                        answer_with(&gov, &operator, &params, &|_| Ok(merged.clone())).unwrap();
                    proptest::prop_assert_eq!(&answer, &one, "{} under {:?}", q, rule);
                    // Each group held is its members' sums over every part; the largest member
                    // and the energy of a group not answered only under a dominance rule.
                    let dominance = rule.max_share.is_some();
                    proptest::prop_assert_eq!(
                        merged.dominance,
                        dominance || params.meters.is_some()
                    );
                    for (name, held) in &merged.levels {
                        let Some(&level) = LEVELS.iter().find(|&&l| level_name(l) == name) else {
                            continue;
                        };
                        let at = groups.groups(level);
                        for (code, group) in held {
                            let answered = level == params.level
                                && params.code.as_deref().is_none_or(|c| c == code);
                            let sums = whole.slots(&at[code]);
                            for (s, &(c, e, m)) in sums.slots.iter().zip(&group.slots) {
                                let e_want = if answered || dominance {
                                    s.energy_ws
                                } else {
                                    0
                                };
                                let m_want = if dominance { s.max_meter_ws } else { 0 };
                                proptest::prop_assert_eq!(
                                    (c, e, m),
                                    (s.contributors, e_want, m_want),
                                    "{} {} {}",
                                    q,
                                    name,
                                    code
                                );
                            }
                        }
                    }
                    // Nothing below the question's level; for one group, only the children
                    // of its ancestors.
                    let asked = LEVELS.iter().position(|&l| l == params.level).unwrap();
                    let path = params
                        .code
                        .as_ref()
                        .and_then(|c| groups.groups(params.level).remove(c))
                        .and_then(|members| groups.get(&members[0]).cloned());
                    for (name, held) in &merged.levels {
                        let k = LEVELS.iter().position(|&l| level_name(l) == name);
                        let k = k.unwrap_or(usize::MAX);
                        let under = coverage != Coverage::Every && coverage != Coverage::AdHoc;
                        proptest::prop_assert!(!under || k <= asked, "{}: {} held", q, name);
                        let (Some(path), Some(parent)) = (&path, k.checked_sub(1)) else {
                            continue;
                        };
                        if !under {
                            continue;
                        }
                        let at = groups.groups(LEVELS[k]);
                        for code in held.keys() {
                            let first = at.get(code).and_then(|m| groups.get(&m[0]));
                            proptest::prop_assert_eq!(
                                first.and_then(|m| m.code(LEVELS[parent])),
                                path.code(LEVELS[parent]),
                                "{}: {} {} held",
                                q,
                                name,
                                code
                            );
                        }
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}

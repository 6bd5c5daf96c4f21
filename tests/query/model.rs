//! Generated fleets as an operation log (batches and erasures), and the model they resolve to.

use std::collections::BTreeMap;

use courbe::{Channel, Point, Quality};
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::util::Rng;

/// One step of the history of a store.
#[derive(Clone, Debug)]
pub enum Op {
    Batch(Vec<(String, Channel, Point)>),
    /// Erases the curve channels of a meter in `[from, to)`.
    Erase {
        meter: String,
        from: i64,
        to: i64,
    },
}

/// The resolved content: every series in time order, each instant from the newest reading
/// covering it (a reading covered in part keeps the rest as shorter points).
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub series: BTreeMap<(String, Channel), Vec<Point>>,
}

/// (operation, position in its batch): the higher the newer.
type Rank = (usize, usize);

impl Model {
    /// Every reading ever sent and not erased, ranked by (operation, position in its batch);
    /// each minute takes the value of the highest-ranked reading covering it.
    pub fn resolve(ops: &[Op]) -> Model {
        let mut log: BTreeMap<(String, Channel), Vec<(Rank, Point)>> = BTreeMap::new();
        for (k, op) in ops.iter().enumerate() {
            match op {
                Op::Batch(rows) => {
                    for (i, (meter, channel, p)) in rows.iter().enumerate() {
                        log.entry((meter.clone(), *channel))
                            .or_default()
                            .push(((k, i), *p));
                    }
                }
                Op::Erase { meter, from, to } => {
                    for channel in [Channel::CONSUMPTION, Channel::PRODUCTION] {
                        if let Some(s) = log.get_mut(&(meter.clone(), channel)) {
                            s.retain(|(_, p)| p.ts_utc < *from || p.ts_utc >= *to);
                        }
                    }
                }
            }
        }
        let mut series = BTreeMap::new();
        for ((meter, channel), readings) in log {
            let kept: Vec<Point> = if channel == Channel::MAX_POWER {
                // An instant: the newest at the same `ts_utc`.
                let mut at: BTreeMap<i64, (Rank, Point)> = BTreeMap::new();
                for (rank, p) in readings {
                    if at.get(&p.ts_utc).is_none_or(|(r, _)| *r < rank) {
                        at.insert(p.ts_utc, (rank, p));
                    }
                }
                at.into_values().map(|(_, p)| p).collect()
            } else {
                // Minute by minute: the newest reading covering it; then the minutes a reading
                // owns one after another make one point.
                let mut owner: BTreeMap<i64, (Rank, usize)> = BTreeMap::new();
                for (i, (rank, p)) in readings.iter().enumerate() {
                    for m in 0..i64::from(p.step_min) {
                        let t = p.ts_utc + 60 * m;
                        if owner.get(&t).is_none_or(|(r, _)| r < rank) {
                            owner.insert(t, (*rank, i));
                        }
                    }
                }
                let mut kept: Vec<(usize, Point)> = Vec::new();
                for (t, (_, i)) in owner {
                    match kept.last_mut() {
                        Some((j, last))
                            if *j == i && last.ts_utc + 60 * i64::from(last.step_min) == t =>
                        {
                            last.step_min += 1;
                        }
                        _ => kept.push((
                            i,
                            Point {
                                ts_utc: t,
                                step_min: 1,
                                ..readings[i].1
                            },
                        )),
                    }
                }
                kept.into_iter().map(|(_, p)| p).collect()
            };
            if !kept.is_empty() {
                series.insert((meter, channel), kept);
            }
        }
        Model { series }
    }

    pub fn points(&self, meter: &str, channel: Channel) -> &[Point] {
        self.series
            .get(&(meter.to_string(), channel))
            .map_or(&[], |v| v.as_slice())
    }

    pub fn has_meter(&self, meter: &str) -> bool {
        self.series.keys().any(|(m, _)| m == meter)
    }

    pub fn meters(&self, channel: Channel) -> Vec<String> {
        self.series
            .keys()
            .filter(|(_, c)| *c == channel)
            .map(|(m, _)| m.clone())
            .collect()
    }
}

/// Zones and, for each, local dates just before its DST changes in 2024.
/// A local date: year, month, day.
pub type Ymd = (i16, i8, i8);

pub const ZONES: [(&str, [Ymd; 2]); 3] = [
    ("Europe/Paris", [(2024, 3, 29), (2024, 10, 25)]),
    ("America/New_York", [(2024, 3, 8), (2024, 11, 1)]),
    // DST shifts by 30 minutes there.
    ("Australia/Lord_Howe", [(2024, 4, 5), (2024, 10, 4)]),
];

pub fn midnight_utc(tz: &TimeZone, date: Date) -> i64 {
    date.to_zoned(tz.clone()).unwrap().timestamp().as_second()
}

/// What a generated fleet covers.
pub struct Generated {
    pub ops: Vec<Op>,
    pub tz: TimeZone,
    /// Local midnight of the first day, and the end of the last generated instant.
    pub start_utc: i64,
    pub end_utc: i64,
    pub meters: Vec<String>,
}

const STEPS: [u16; 5] = [5, 10, 15, 30, 60];

/// The first instant at or after `ts` on the grid of `step_min` from `origin`.
fn on_grid(origin: i64, ts: i64, step_min: u16) -> i64 {
    let step = 60 * i64::from(step_min);
    origin + (ts - origin + step - 1).div_euclid(step) * step
}

/// A fleet of 1 to 3 meters over a few days around a DST change of the zone: gaps, step
/// changes, estimated points, duplicates, corrections, batches out of order, erasures, and
/// `max_power` for some meters.
pub fn generate(seed: u64, zone: usize, change: usize) -> Generated {
    let mut rng = Rng::new(seed);
    let (zone_name, dates) = ZONES[zone % ZONES.len()];
    let tz = TimeZone::get(zone_name).unwrap();
    let (y, m, d) = dates[change % 2];
    let first_day = jiff::civil::date(y, m, d)
        .checked_add(jiff::Span::new().days(rng.below(3) as i64))
        .unwrap();
    let days = 1 + rng.below(5) as i64;
    let start_utc = midnight_utc(&tz, first_day);
    let end_day = first_day.checked_add(jiff::Span::new().days(days)).unwrap();
    let end_utc = midnight_utc(&tz, end_day);
    let n_meters = 1 + rng.below(3) as usize;
    let meters: Vec<String> = (0..n_meters)
        .map(|i| format!("0911164261{:04}", 7340 + i))
        .collect();

    let mut rows: Vec<(String, Channel, Point)> = Vec::new();
    for meter in &meters {
        let mut step = *rng.pick(&STEPS);
        let change_at = if rng.chance(40) {
            Some(start_utc + rng.below((end_utc - start_utc) as u64 / 1800) as i64 * 1800)
        } else {
            None
        };
        let new_step = *rng.pick(&STEPS);
        // Some meters start late. Every reading lies on its step's grid from local midnight,
        // so none crosses an hour from `start_utc` (where erasures cut).
        let mut ts = start_utc
            + if rng.chance(20) {
                3600 * rng.below(10) as i64
            } else {
                0
            };
        let gap = (
            start_utc + rng.below((end_utc - start_utc) as u64) as i64,
            rng.below(6 * 3600) as i64,
        );
        let solar = rng.chance(30);
        while ts < end_utc {
            if change_at.is_some_and(|c| ts >= c) && step != new_step {
                step = new_step;
                ts = on_grid(start_utc, ts, step);
                if ts >= end_utc {
                    break;
                }
            }
            let in_gap = ts >= gap.0 && ts < gap.0 + gap.1;
            if !in_gap && !rng.chance(8) {
                let quality = if rng.chance(10) {
                    Quality::Estimated
                } else {
                    Quality::Measured
                };
                let value = rng.below(9000) as i32 - if rng.chance(3) { 500 } else { 0 };
                rows.push((
                    meter.clone(),
                    Channel::CONSUMPTION,
                    Point {
                        ts_utc: ts,
                        value,
                        step_min: step,
                        quality,
                    },
                ));
                if solar {
                    rows.push((
                        meter.clone(),
                        Channel::PRODUCTION,
                        Point {
                            ts_utc: ts,
                            value: rng.below(3000) as i32,
                            step_min: step,
                            quality: Quality::Measured,
                        },
                    ));
                }
            }
            ts += 60 * i64::from(step);
        }
        if rng.chance(60) {
            let mut day = first_day;
            for _ in 0..days {
                let day_start = midnight_utc(&tz, day);
                let next = day.tomorrow().unwrap();
                let day_len = midnight_utc(&tz, next) - day_start;
                if rng.chance(85) {
                    rows.push((
                        meter.clone(),
                        Channel::MAX_POWER,
                        Point {
                            ts_utc: day_start + rng.below(day_len as u64) as i64,
                            value: rng.below(12_000) as i32,
                            step_min: 1440,
                            quality: Quality::Measured,
                        },
                    ));
                }
                day = next;
            }
        }
    }

    // Batches of consecutive rows, sent out of order, some twice, some corrected later.
    let mut batches: Vec<Vec<(String, Channel, Point)>> = Vec::new();
    let mut rest = rows.as_slice();
    while !rest.is_empty() {
        let n = (1 + rng.below(150) as usize).min(rest.len());
        batches.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    for i in (1..batches.len()).rev() {
        if rng.chance(30) {
            let j = rng.below(i as u64 + 1) as usize;
            batches.swap(i, j);
        }
    }
    let mut ops: Vec<Op> = Vec::new();
    for batch in batches {
        if rng.chance(15) {
            ops.push(Op::Batch(batch.clone()));
        }
        ops.push(Op::Batch(batch));
    }
    for _ in 0..rng.below(4) {
        let (meter, channel, p) = rows[rng.below(rows.len() as u64) as usize].clone();
        let corrected = Point {
            value: p.value + 1 + rng.below(500) as i32,
            quality: Quality::Corrected,
            ..p
        };
        let at = rng.below(ops.len() as u64 + 1) as usize;
        ops.insert(at, Op::Batch(vec![(meter, channel, corrected)]));
    }
    // Hours re-sent at another step (a meter reconfigured, a supplier's re-send), late and
    // anywhere in the log: the newest covering readings win over both.
    for _ in 0..rng.below(4) {
        let meter = rng.pick(&meters).clone();
        let step = *rng.pick(&STEPS);
        let hours = (end_utc - start_utc) as u64 / 3600;
        let from = start_utc + 3600 * rng.below(hours) as i64;
        let to = (from + 3600 * (1 + rng.below(6) as i64)).min(end_utc);
        // Sometimes starting off the hour: partial overlaps with the older grid.
        let mut ts = on_grid(start_utc, from + 60 * rng.below(60) as i64, step);
        let mut resent = Vec::new();
        while ts + 60 * i64::from(step) <= to {
            resent.push((
                meter.clone(),
                Channel::CONSUMPTION,
                Point {
                    ts_utc: ts,
                    value: rng.below(9000) as i32,
                    step_min: step,
                    quality: Quality::Corrected,
                },
            ));
            ts += 60 * i64::from(step);
        }
        if !resent.is_empty() {
            if rng.chance(30) {
                resent.reverse();
            }
            let at = rng.below(ops.len() as u64 + 1) as usize;
            ops.insert(at, Op::Batch(resent));
        }
    }
    if rng.chance(40) {
        let meter = rng.pick(&meters).clone();
        let hours = (end_utc - start_utc) as u64 / 3600;
        let from = start_utc + 3600 * rng.below(hours) as i64;
        let to = from + 3600 * (1 + rng.below(12) as i64);
        let at = rng.below(ops.len() as u64 + 1) as usize;
        ops.insert(at, Op::Erase { meter, from, to });
    }
    Generated {
        ops,
        tz,
        start_utc,
        end_utc,
        meters,
    }
}

/// A realistic fleet from `courbe-workload` (Paris households, `max_power`, solar for some,
/// step changes for all), sent as one batch per meter and channel, then estimated values of the
/// first day corrected.
pub fn generate_workload(seed: u64, start: Date, days: u32) -> Generated {
    use courbe_workload::{Fleet, FleetConfig};
    let tz = TimeZone::get("Europe/Paris").unwrap();
    let fleet = Fleet::new(FleetConfig {
        meters: 3,
        start,
        days,
        seed,
        step_min: 30,
        step_change_share: 1.0,
    });
    let mut ops = Vec::new();
    let mut meters = Vec::new();
    for index in 0..3 {
        let series = fleet.meter(index);
        for (channel, readings) in [
            (Channel::CONSUMPTION, &series.consumption),
            (Channel::PRODUCTION, &series.production),
            (Channel::MAX_POWER, &series.max_power),
        ] {
            let rows: Vec<(String, Channel, Point)> = readings
                .iter()
                .map(|r| (series.meter_id.clone(), channel, courbe::point_of(r)))
                .collect();
            if !rows.is_empty() {
                ops.push(Op::Batch(rows));
            }
        }
        meters.push(series.meter_id);
    }
    let start_utc = midnight_utc(&tz, start);
    let end_utc = midnight_utc(
        &tz,
        start
            .checked_add(jiff::Span::new().days(i64::from(days)))
            .unwrap(),
    );
    let corrections: Vec<(String, Channel, Point)> = ops
        .iter()
        .flat_map(|op| match op {
            Op::Batch(rows) => rows.clone(),
            Op::Erase { .. } => Vec::new(),
        })
        .filter(|(_, _, p)| p.quality == Quality::Estimated && p.ts_utc < start_utc + 86_400)
        .map(|(m, c, p)| {
            let corrected = Point {
                value: p.value / 2,
                quality: Quality::Corrected,
                ..p
            };
            (m, c, corrected)
        })
        .collect();
    ops.push(Op::Batch(corrections));
    Generated {
        ops,
        tz,
        start_utc,
        end_utc,
        meters,
    }
}

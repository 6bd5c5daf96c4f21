//! The naive reference: every answer computed from the model's raw points, with jiff's zoned
//! arithmetic for periods and a minute-by-minute wall-clock check for tariffs.

use std::collections::BTreeMap;

use courbe::query::{
    EnergyPeriod, EnergySource, FleetPoint, MeterEnergy, PeakPeriod, PeakSource, Period, Run,
    Tariff,
};
use courbe::{Channel, Point, Quality};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

use super::model::Model;

fn zoned(t: i64, tz: &TimeZone) -> Zoned {
    Timestamp::from_second(t).unwrap().to_zoned(tz.clone())
}

/// Every period overlapping `[from, to)`, clipped.
pub fn periods(from: i64, to: i64, period: Period, tz: &TimeZone) -> Vec<(i64, i64)> {
    let z = zoned(from, tz);
    let mut start = match period {
        Period::Day => z.start_of_day().unwrap(),
        Period::Week => {
            let back = i64::from(z.weekday().to_monday_zero_offset());
            z.checked_sub(back.days()).unwrap().start_of_day().unwrap()
        }
        Period::Month => z.first_of_month().unwrap().start_of_day().unwrap(),
        Period::Year => z.first_of_year().unwrap().start_of_day().unwrap(),
    };
    let mut out = Vec::new();
    loop {
        let next = match period {
            Period::Day => start.checked_add(1.day()),
            Period::Week => start.checked_add(1.week()),
            Period::Month => start.checked_add(1.month()),
            Period::Year => start.checked_add(1.year()),
        }
        .unwrap()
        .start_of_day()
        .unwrap();
        let (s, e) = (
            start.timestamp().as_second().max(from),
            next.timestamp().as_second().min(to),
        );
        if s >= to {
            return out;
        }
        out.push((s, e));
        start = next;
    }
}

/// The step in force at `t`: latest point at or before it, else the first point, else 30.
fn step_at(points: &[Point], t: i64) -> u16 {
    points
        .iter()
        .rev()
        .find(|p| p.ts_utc <= t)
        .or(points.first())
        .map_or(30, |p| p.step_min)
}

fn expected(points: &[Point], (a, b): (i64, i64)) -> u64 {
    let mut step = step_at(points, a);
    let mut since = a;
    let mut total = 0;
    for p in points.iter().filter(|p| p.ts_utc > a && p.ts_utc < b) {
        if p.step_min != step {
            total += (p.ts_utc - since) as u64 / (60 * u64::from(step));
            since = p.ts_utc;
            step = p.step_min;
        }
    }
    total + (b - since) as u64 / (60 * u64::from(step))
}

fn in_window(tariff: &Tariff, minute_of_day: u16) -> bool {
    tariff.hc_windows_min.iter().any(|&(s, e)| {
        if s < e {
            minute_of_day >= s && minute_of_day < e
        } else {
            minute_of_day >= s || minute_of_day < e
        }
    })
}

/// Off-peak minutes of a point's interval, reading each minute on the local wall clock.
fn hc_minutes(p: &Point, tariff: &Tariff, tz: &TimeZone) -> i64 {
    (0..i64::from(p.step_min))
        .filter(|m| {
            let z = zoned(p.ts_utc + 60 * m, tz);
            in_window(tariff, z.hour() as u16 * 60 + z.minute() as u16)
        })
        .count() as i64
}

pub struct Query<'a> {
    pub from: i64,
    pub to: i64,
    pub period: Period,
    pub tz: &'a TimeZone,
}

pub fn energy(
    model: &Model,
    meter: &str,
    channel: Channel,
    q: &Query<'_>,
    tariff: Option<&Tariff>,
) -> Vec<EnergyPeriod> {
    let points = model.points(meter, channel);
    periods(q.from, q.to, q.period, q.tz)
        .into_iter()
        .map(|(start_utc, end_utc)| {
            let inside: Vec<&Point> = points
                .iter()
                .filter(|p| p.ts_utc >= start_utc && p.ts_utc < end_utc)
                .collect();
            let energy_wmin: i64 = inside
                .iter()
                .map(|p| i64::from(p.value) * i64::from(p.step_min))
                .sum();
            let by_tariff_wmin = tariff.map(|t| {
                let hc: i64 = inside
                    .iter()
                    .map(|p| i64::from(p.value) * hc_minutes(p, t, q.tz))
                    .sum();
                ((energy_wmin - hc) as f64, hc as f64)
            });
            EnergyPeriod {
                start_utc,
                end_utc,
                energy_wmin,
                points: inside.len() as u64,
                expected_points: expected(points, (start_utc, end_utc)),
                by_tariff_wmin,
                source: if inside.is_empty() {
                    EnergySource::None
                } else {
                    EnergySource::Curve
                },
            }
        })
        .collect()
}

fn highest(points: &[Point], (a, b): (i64, i64)) -> Option<(i32, i64)> {
    let mut best: Option<(i32, i64)> = None;
    for p in points.iter().filter(|p| p.ts_utc >= a && p.ts_utc < b) {
        if best.is_none_or(|(v, _)| p.value > v) {
            best = Some((p.value, p.ts_utc));
        }
    }
    best
}

pub fn peak(model: &Model, meter: &str, q: &Query<'_>) -> Vec<PeakPeriod> {
    periods(q.from, q.to, q.period, q.tz)
        .into_iter()
        .map(|range| PeakPeriod {
            start_utc: range.0,
            end_utc: range.1,
            peak: highest(model.points(meter, Channel::MAX_POWER), range)
                .map(|(v, t)| (v, t, PeakSource::MaxPower))
                .or_else(|| {
                    highest(model.points(meter, Channel::CONSUMPTION), range)
                        .map(|(v, t)| (v, t, PeakSource::Curve))
                }),
        })
        .collect()
}

pub fn curve(model: &Model, meter: &str, channel: Channel, from: i64, to: i64) -> Vec<Point> {
    model
        .points(meter, channel)
        .iter()
        .filter(|p| p.ts_utc >= from && p.ts_utc < to)
        .copied()
        .collect()
}

pub fn runs(points: &[Point]) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for p in points {
        let extends = out.last().is_some_and(|r| {
            r.step_min == p.step_min
                && r.start_utc + 60 * i64::from(r.step_min) * r.values.len() as i64 == p.ts_utc
        });
        if !extends {
            out.push(Run {
                start_utc: p.ts_utc,
                step_min: p.step_min,
                values: vec![],
                quality: Some(vec![]),
            });
        }
        let run = out.last_mut().unwrap();
        run.values.push(p.value);
        run.quality.as_mut().unwrap().push(p.quality);
    }
    for run in &mut out {
        if run
            .quality
            .as_ref()
            .unwrap()
            .iter()
            .all(|&q| q == Quality::Measured)
        {
            run.quality = None;
        }
    }
    out
}

pub fn fleet_curve(
    model: &Model,
    channel: Channel,
    from: i64,
    to: i64,
    meters: &[String],
) -> Vec<FleetPoint> {
    let mut sums: BTreeMap<i64, (i64, u32)> = BTreeMap::new();
    for meter in meters {
        for p in curve(model, meter, channel, from, to) {
            let e = sums.entry(p.ts_utc).or_default();
            e.0 += i64::from(p.value);
            e.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(ts_utc, (total, meters))| FleetPoint {
            ts_utc,
            total,
            meters,
        })
        .collect()
}

pub fn fleet_energy(
    model: &Model,
    channel: Channel,
    q: &Query<'_>,
    meters: &[String],
) -> Vec<MeterEnergy> {
    meters
        .iter()
        .map(|meter| MeterEnergy {
            meter: meter.clone(),
            periods: energy(model, meter, channel, q, None),
        })
        .collect()
}

//! Bytes per meter-year of daily energy and cumulative indexes (format v3), on the generated
//! fleet's curves summed per Europe/Paris day and per register, laid out as the engine writes
//! them: one segment per Paris month, one block per (meter, channel) and month, the register
//! table in each segment.
//!
//! ```text
//! cargo run --release -p storage-format --example daily_cost -- --meters 2000 --days 365
//! ```
//!
//! A third of the meters each have BASE (1 register), HP/HC (2: HC from 22:00 to 06:00 local)
//! and Tempo (6: HP/HC by day colour, 22 red weekdays from November to March, 43 white days
//! not on Sundays, the rest blue). Every index starts at a random reading of a meter that has
//! counted for years (up to 40 MWh). Prints, per option, all-in bytes (blocks, index pages,
//! fences, register tables, headers, footers) per meter-year for daily energy alone and with the
//! indexes, and how the block codec codes a running index against its daily increments.

#[path = "common/months.rs"]
mod months;

use std::collections::BTreeMap;

use courbe_workload::{Fleet, FleetConfig};
use jiff::tz::TimeZone;
use months::paris_month_of;
use storage_format::block;
use storage_format::segment::{SegmentBuilder, SegmentMeta};
use storage_format::{Channel, Point, Quality};

const REGISTERS: [&str; 9] = [
    "BASE", "HC", "HP", "HCJB", "HPJB", "HCJW", "HPJW", "HCJR", "HPJR",
];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Option_ {
    Base,
    HpHc,
    Tempo,
}

fn registers_of(o: Option_) -> &'static [u8] {
    match o {
        Option_::Base => &[0],
        Option_::HpHc => &[1, 2],
        Option_::Tempo => &[3, 4, 5, 6, 7, 8],
    }
}

/// Tempo colour of a local date: 0 blue, 1 white, 2 red (deterministic).
fn colour(date: jiff::civil::Date) -> u8 {
    let winter = matches!(date.month(), 11 | 12 | 1..=3);
    let weekday = date.weekday().to_monday_one_offset();
    let h = (date.day_of_year() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58;
    if winter && weekday <= 5 && h < 11 {
        2 // about 22 of the ~110 winter weekdays
    } else if weekday != 7 && (52..60).contains(&h) {
        1 // about 43 of the ~313 days not on Sundays
    } else {
        0
    }
}

struct Args {
    meters: u32,
    days: u32,
    seed: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        meters: 2_000,
        days: 365,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--meters" => args.meters = value().parse().expect("--meters N"),
            "--days" => args.days = value().parse().expect("--days D"),
            "--seed" => args.seed = value().parse().expect("--seed S"),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn daily_point(ts_utc: i64, value: i64) -> Point {
    Point {
        ts_utc,
        value: i32::try_from(value).expect("fits i32"),
        step_min: 1440,
        quality: Quality::Measured,
    }
}

/// (meter id, channel, points) of one meter: daily energy and its option's indexes.
type MeterDaily = (String, Vec<(Channel, Vec<Point>)>);

fn main() {
    let args = parse_args();
    let tz = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("the EU rule");
    let fleet = Fleet::new(FleetConfig {
        meters: args.meters,
        days: args.days,
        seed: args.seed,
        ..FleetConfig::default()
    });
    let start = fleet.config().start;
    let midnights: Vec<i64> = (0..=i64::from(args.days))
        .map(|d| {
            start
                .checked_add(jiff::Span::new().days(d))
                .expect("date")
                .to_zoned(tz.clone())
                .expect("zoned")
                .timestamp()
                .as_second()
        })
        .collect();
    let mut by_option: BTreeMap<Option_, Vec<MeterDaily>> = BTreeMap::new();
    for (i, m) in fleet.meters().enumerate() {
        let option = [Option_::Base, Option_::HpHc, Option_::Tempo][i % 3];
        let regs = registers_of(option);
        // Energy per day and register, W·min, exact.
        let mut wmin = vec![vec![0i64; regs.len()]; args.days as usize];
        for r in &m.consumption {
            let day = midnights
                .partition_point(|&t| t <= r.ts_utc)
                .saturating_sub(1);
            let Some(row) = wmin.get_mut(day) else {
                continue;
            };
            let local = jiff::Timestamp::from_second(r.ts_utc)
                .expect("ts")
                .to_zoned(tz.clone());
            let hc = !(6..22).contains(&local.hour());
            let k = match option {
                Option_::Base => 0,
                Option_::HpHc => usize::from(!hc),
                Option_::Tempo => 2 * usize::from(colour(local.date())) + usize::from(!hc),
            };
            row[k] += i64::from(r.value) * i64::from(r.step_min);
        }
        let mut seed = (i as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
        let mut cum_wmin: Vec<i64> = regs
            .iter()
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 40_000_000) as i64 * 60
            })
            .collect();
        let mut energy = Vec::with_capacity(args.days as usize);
        let mut indexes: Vec<Vec<Point>> = vec![Vec::new(); regs.len()];
        for (d, row) in wmin.iter().enumerate() {
            let ts = midnights[d];
            let before: i64 = cum_wmin.iter().map(|c| c / 60).sum();
            for (k, c) in cum_wmin.iter_mut().enumerate() {
                // A daily index is the reading at the midnight that starts its day.
                indexes[k].push(daily_point(ts, *c / 60));
                *c += row[k];
            }
            let after: i64 = cum_wmin.iter().map(|c| c / 60).sum();
            energy.push(daily_point(ts, after - before));
        }
        let mut series = vec![(Channel::DAILY_ENERGY, energy)];
        for (k, &r) in regs.iter().enumerate() {
            series.push((
                Channel::index(r).expect("index"),
                std::mem::take(&mut indexes[k]),
            ));
        }
        by_option
            .entry(option)
            .or_default()
            .push((m.meter_id, series));
    }

    println!(
        "daily energy + indexes, {} meters x {} days (seed {}), format v3",
        args.meters, args.days, args.seed
    );
    println!("option | meters | daily energy only, B/meter-year | with indexes, B/meter-year | registers | B/point all-in");
    let year = 365.0 / f64::from(args.days);
    for (option, meters) in &by_option {
        let n = meters.len() as f64;
        let daily_only = segments_bytes(meters, true);
        let all = segments_bytes(meters, false);
        let points: usize = meters
            .iter()
            .flat_map(|(_, s)| s.iter().map(|(_, p)| p.len()))
            .sum();
        println!(
            "{option:?} | {} | {:.0} | {:.0} | {} | {:.3}",
            meters.len(),
            daily_only as f64 / n * year,
            all as f64 / n * year,
            registers_of(*option).len(),
            all as f64 / points as f64,
        );
    }

    // The block codec on a running index: one block per meter-month of each index, against a
    // block of its daily increments (what a lag-1 predictor leaves) and of the daily energy.
    let (mut idx, mut inc, mut en, mut pts) = (0usize, 0usize, 0usize, 0usize);
    for meters in by_option.values() {
        for (_, series) in meters {
            for (channel, points) in series {
                for month in split_months(points) {
                    let mut out = Vec::new();
                    block::encode_into(month, &mut out).expect("encodes");
                    if channel.is_index() {
                        idx += out.len();
                        pts += month.len();
                        let deltas: Vec<Point> = month
                            .iter()
                            .scan(None, |prev: &mut Option<i32>, p| {
                                let d = p.value - prev.unwrap_or(p.value);
                                *prev = Some(p.value);
                                Some(Point { value: d, ..*p })
                            })
                            .collect();
                        let mut out = Vec::new();
                        block::encode_into(&deltas, &mut out).expect("encodes");
                        inc += out.len();
                    } else {
                        en += out.len();
                    }
                }
            }
        }
    }
    println!(
        "standalone blocks of the indexes: {idx} bytes ({:.3} B/pt); of their daily increments: \
         {inc} bytes ({:.3} B/pt); of the daily energies: {en} bytes",
        idx as f64 / pts as f64,
        inc as f64 / pts as f64
    );
}

fn split_months(points: &[Point]) -> Vec<&[Point]> {
    let mut out = Vec::new();
    let mut rest = points;
    while let Some(first) = rest.first() {
        let p = paris_month_of(first.ts_utc);
        let n = rest
            .iter()
            .position(|x| paris_month_of(x.ts_utc) != p)
            .unwrap_or(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

/// All-in bytes of the month segments holding `meters` (daily energy only, or every series).
fn segments_bytes(meters: &[MeterDaily], daily_only: bool) -> u64 {
    let mut sorted: Vec<&MeterDaily> = meters.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut segments: BTreeMap<u32, (SegmentBuilder, Vec<u8>)> = BTreeMap::new();
    for (meter, series) in sorted {
        for (channel, points) in series {
            if daily_only && *channel != Channel::DAILY_ENERGY {
                continue;
            }
            for month in split_months(points) {
                let p = paris_month_of(month[0].ts_utc);
                let (builder, out) = segments.entry(p).or_insert_with(|| {
                    let mut out = Vec::new();
                    let mut b = SegmentBuilder::new(
                        SegmentMeta {
                            partition: p,
                            seq: 1,
                        },
                        &mut out,
                    );
                    for (r, name) in REGISTERS.iter().enumerate() {
                        b.name_register(Channel::index(r as u8).expect("index"), name)
                            .expect("names");
                    }
                    (b, out)
                });
                builder
                    .add_block(meter, *channel, month, out)
                    .expect("adds");
            }
        }
    }
    segments
        .into_values()
        .map(|(b, mut out)| {
            b.finish(&mut out).expect("finishes");
            out.len() as u64
        })
        .sum()
}

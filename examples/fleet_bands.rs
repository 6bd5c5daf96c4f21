//! The fleet offer comparison at scale (issue 13 item 4): N generated meters x D days priced per
//! month under the demo's Tarif Bleu BASE, HP/HC 22:00-06:00 and Tempo and the dynamic offer
//! on synthetic 15-minute spot prices, each offer alone and all four together, by the curve
//! path and from the clock-band summaries (`engine::bands`).
//!
//! `cargo run --release --example fleet_bands -- load DIR METERS DAYS` generates the fleet
//! (`courbe-workload`, seed 1, from 2024-01-01, 30-minute curves with the generator's gaps and
//! estimates; generated on all cores and ingested 1,000 meter-quarters a batch) and a year of synthetic spot prices, ingests, flushes and compacts.
//! `cargo run --release --example fleet_bands -- price DIR DAYS [REPS [CASE]]` opens the store
//! and times `fleet_totals_by` per offer and path: first the summaries built (and written) for
//! every segment of the range, then `REPS` (default 2) runs of each case, the best reported;
//! `CASE` keeps the cases whose label (`TEMPO Curve`, `all four Any`...) contains it.
//! Prints which path each offer took for how many meters.
//! `cargo run --release --example fleet_bands -- summaries DIR` deletes the store's summary
//! files, opens it with `Options::background_summaries` and times the background builder until
//! it has caught up (what a server does after a compaction), then prints the bytes of the
//! summary files beside the segments'.
//! `cargo run --release --example fleet_bands -- dynamic DIR DAYS [WAY]` prices every meter's
//! curve under the synthetic spot prices per Paris month, the interval walk of the one-meter
//! path (`spot::series_points`, `spot::period_cost`: `WAY` = `walk`) against the fleet path's
//! columns and price integral (`spot::CurveColumns`, `spot::period_cost_columns`: `columns`),
//! or both (the default, checking they agree), on one thread: CPU seconds of each.

use std::time::Instant;

use courbe::engine::{Batch, Options, Store};
use courbe::governance::prices::{demo_grids, demo_taxes, fleet_totals_by, FleetPath};
use courbe::query::cost::Grid;
use courbe::query::tariffs::{DayColours, TariffOption, TariffPlan};
use courbe::source::SeriesSource;
use courbe::{point_of, Channel, Point, Quality};
use courbe_server::cli::daily::{day_colours, tempo_colours};
use courbe_workload::{Fleet, FleetConfig};

type Offer = (Grid, TariffPlan, DayColours);

/// This process's user + system CPU seconds (Linux `/proc/self/stat`, 100 ticks a second).
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn fleet(meters: u32, days: u32) -> Fleet {
    Fleet::new(FleetConfig {
        meters,
        days,
        ..FleetConfig::default()
    })
}

fn load(dir: &str, meters: u32, days: u32) -> Result<(), Box<dyn std::error::Error>> {
    let fleet = fleet(meters, days);
    let store = Store::open(dir, Options::default())?;
    let t = Instant::now();
    let mut points = 0u64;
    // About 4.3 M points a batch (1,000 meter-quarters), well under the log record limit.
    let per = (90_000 / days.max(1)).clamp(1, 1_000);
    for first in (0..meters).step_by(per as usize) {
        use rayon::prelude::*;
        let generated: Vec<_> = (first..(first + per).min(meters))
            .into_par_iter()
            .map(|i| fleet.meter(i))
            .collect();
        let mut batch = Batch::new();
        for m in &generated {
            for r in &m.consumption {
                if batch
                    .push(&m.meter_id, Channel::CONSUMPTION, point_of(r))
                    .is_err()
                {
                    eprintln!("skipped an invalid generated point of {}", m.meter_id);
                    continue;
                }
                points += 1;
            }
        }
        store.ingest(&batch)?;
    }
    let mut batch = Batch::new();
    for p in courbe_workload::synthetic_spot(1, jiff::civil::date(2024, 1, 1), 367) {
        let point = Point {
            ts_utc: p.ts_utc,
            value: p.centi_eur_mwh,
            step_min: p.step_min,
            quality: Quality::Measured,
        };
        batch
            .push("spot-FR", Channel::PRICE, point)
            .map_err(|e| format!("{e:?}"))?;
    }
    store.ingest(&batch)?;
    store.flush()?;
    let (ingested, ingested_cpu) = (t.elapsed().as_secs_f64(), cpu_s());
    store.compact()?;
    eprintln!(
        "{meters} meters x {days} days: {points} points, generated and ingested in {ingested:.1} s \
         ({ingested_cpu:.1} s CPU), compacted in {:.1} s ({:.1} s CPU)",
        t.elapsed().as_secs_f64() - ingested,
        cpu_s() - ingested_cpu
    );
    Ok(())
}

fn offers(meters: u32, days: u32) -> Vec<Offer> {
    // The Tempo colours of the generated fleet's calendar (the same for any fleet size).
    let colours = day_colours(&tempo_colours(&fleet(meters.min(10), days)));
    demo_grids()
        .into_iter()
        .map(|g| {
            let option = match g.dynamic_area() {
                Some(_) => "BASE".to_string(),
                None => g.option.clone(),
            };
            let plan = TariffPlan::Option(TariffOption::parse(&option).expect("option"));
            (g, plan, colours.clone())
        })
        .collect()
}

fn price(
    dir: &str,
    days: u32,
    reps: usize,
    only: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(dir, Options::default())?;
    let snapshot = store.snapshot();
    let meters = snapshot.meters(Channel::CONSUMPTION).len() as u32;
    let offers = offers(meters, days);
    let taxes = demo_taxes();
    let first = courbe::query::tariffs::day_number(jiff::civil::date(2024, 1, 1));
    let end = first + i64::from(days);
    let (t, cpu) = (Instant::now(), cpu_s());
    snapshot.prepare_day_bands(first, end)?;
    eprintln!(
        "summaries of {meters} meters x {days} days read or built in {:.2} s wall, {:.2} s CPU",
        t.elapsed().as_secs_f64(),
        cpu_s() - cpu
    );
    let cases: Vec<(&str, Vec<Offer>)> = vec![
        ("BASE", offers[..1].to_vec()),
        ("HPHC 22-06", offers[1..2].to_vec()),
        ("TEMPO", offers[2..3].to_vec()),
        ("DYNAMIC", offers[3..4].to_vec()),
        ("all four", offers.clone()),
    ];
    for (name, case) in &cases {
        for path in [FleetPath::Any, FleetPath::Curve] {
            let label = format!("{name} {path:?}");
            if only.is_some_and(|o| !label.contains(o)) {
                continue;
            }
            let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
            let mut last = None;
            for _ in 0..reps.max(1) {
                let (t, cpu) = (Instant::now(), cpu_s());
                let answer = fleet_totals_by(&*snapshot, case, &taxes, first, end, path)?;
                best = best.min(t.elapsed().as_secs_f64());
                best_cpu = best_cpu.min(cpu_s() - cpu);
                last = Some(answer);
            }
            let (totals, paths) = last.expect("one run");
            let priced = totals.iter().filter(|t| t.is_some()).count();
            let paths: Vec<String> = paths
                .iter()
                .map(|p| format!("{}/{}", p.summaries, p.curve))
                .collect();
            println!(
                "{name:<11} {:<9} {best:>7.2} s wall {best_cpu:>7.2} s CPU  {priced} of {} \
                 meters priced whole; summaries/curve per offer {}",
                format!("{path:?}"),
                totals.len(),
                paths.join(" ")
            );
        }
    }
    Ok(())
}

/// Bytes of the files of `dir` whose name ends with `suffix`.
fn bytes_of(dir: &str, suffix: &str) -> Result<u64, std::io::Error> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(suffix) {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

fn summaries(dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "bands") {
            std::fs::remove_file(path)?;
        }
    }
    let (t, cpu) = (Instant::now(), cpu_s());
    let store = Store::open(
        dir,
        Options {
            background_summaries: true,
            ..Options::default()
        },
    )?;
    let opened = t.elapsed().as_secs_f64();
    store.wait_for_summaries();
    eprintln!(
        "open {opened:.2} s; background builder caught up after {:.2} s wall, {:.2} s CPU \
         (process), {} files built",
        t.elapsed().as_secs_f64(),
        cpu_s() - cpu,
        store.summaries_built()
    );
    let (bands, segments) = (bytes_of(dir, ".bands")?, bytes_of(dir, ".seg")?);
    eprintln!(
        "summary files {bands} bytes beside {segments} bytes of segments (+{:.1}%)",
        100.0 * bands as f64 / segments.max(1) as f64
    );
    Ok(())
}

fn dynamic(dir: &str, days: u32, way: &str) -> Result<(), Box<dyn std::error::Error>> {
    use courbe::query::spot::{self, CurveColumns, PriceIntegral};
    let store = Store::open(dir, Options::default())?;
    let snapshot = store.snapshot();
    let meters = courbe::governance::prices::fleet_meters(&*snapshot);
    let tz = courbe::zone::paris();
    let at = |d: jiff::civil::Date| -> Result<i64, jiff::Error> {
        Ok(d.to_zoned(tz.clone())?.timestamp().as_second())
    };
    let first = jiff::civil::date(2024, 1, 1);
    let end = first.checked_add(jiff::Span::new().days(i64::from(days)))?;
    let mut months = Vec::new();
    let mut d = first;
    while d < end {
        let next = d.checked_add(jiff::Span::new().months(1))?.min(end);
        months.push((at(d)?, at(next)?));
        d = next;
    }
    let (Some(&(from, _)), Some(&(_, to))) = (months.first(), months.last()) else {
        return Err("no day to price".into());
    };
    let prices = spot::spot_prices(&*snapshot, "spot-FR", from, to)?;
    let integral = PriceIntegral::new(&prices);
    let mut walked = Vec::new();
    if way != "columns" {
        let cpu = cpu_s();
        for m in &meters {
            let points = spot::series_points(&*snapshot, m, Channel::CONSUMPTION, from, to)?;
            walked.push(
                months
                    .iter()
                    .map(|&(a, b)| spot::period_cost(&points, &prices, a, b))
                    .collect::<Vec<_>>(),
            );
        }
        println!(
            "walk:    {} meters x {} months, {:.2} s CPU",
            meters.len(),
            months.len(),
            cpu_s() - cpu
        );
    }
    if way != "walk" {
        let cpu = cpu_s();
        let mut scratch = storage_format::block::DecodedBlock::default();
        let mut columns = CurveColumns::default();
        let mut agree = true;
        for (i, m) in meters.iter().enumerate() {
            columns.read(
                &*snapshot,
                m,
                Channel::CONSUMPTION,
                (from, to),
                &mut scratch,
            )?;
            let priced: Vec<_> = months
                .iter()
                .map(|&(a, b)| spot::period_cost_columns(&columns, &integral, a, b))
                .collect();
            agree &= walked.get(i).is_none_or(|w| *w == priced);
        }
        println!(
            "columns: {} meters x {} months, {:.2} s CPU{}",
            meters.len(),
            months.len(),
            cpu_s() - cpu,
            match (walked.is_empty(), agree) {
                (true, _) => "",
                (false, true) => "; every period equal to the walk's",
                (false, false) => "; SOME PERIOD DIFFERS FROM THE WALK'S",
            }
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u32| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("load") => load(&args[1], num(2, 10_000), num(3, 365)),
        Some("price") => price(
            &args[1],
            num(2, 365),
            num(3, 2) as usize,
            args.get(4).map(String::as_str),
        ),
        Some("summaries") => summaries(&args[1]),
        Some("dynamic") => dynamic(
            &args[1],
            num(2, 365),
            args.get(3).map_or("both", String::as_str),
        ),
        _ => Err(
            "fleet_bands load DIR METERS DAYS | price DIR DAYS [REPS [CASE]] | summaries DIR | \
             dynamic DIR DAYS [walk|columns|both]"
                .into(),
        ),
    }
}

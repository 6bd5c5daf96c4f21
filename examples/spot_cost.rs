//! Figures of the dynamic offer and the live view (issue 13):
//!
//! 1. the cost of one meter-year under 15-minute spot prices (`query::spot::dynamic_energy_cost`
//!    over the 12 Paris months and over the 366 Paris days of 2024), best of 20 runs, on a
//!    generated household (`courbe-workload`, seed 1, 30-minute curve) and a year of the
//!    **synthetic** spot prices of `courbe_workload::synthetic_spot` (seed 1), both flushed to
//!    segments;
//! 2. ingest with the live view: the same batches (a 200-meter fleet's day of half-hours, one
//!    batch a meter) into a fresh store with no live hub, with a hub and no subscriber, and with
//!    100 subscribers of meters the batches do not hold (idle); best of 5.
//!
//! `cargo run --release --example spot_cost`

use std::time::{Duration, Instant};

use courbe::engine::{Batch, Options, Store};
use courbe::query::spot::dynamic_energy_cost;
use courbe::{point_of, Channel, Point, Quality};
use courbe_server::http::live::LiveHub;
use courbe_workload::{Fleet, FleetConfig};

fn best(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn paris_midnight(date: jiff::civil::Date) -> i64 {
    let paris = jiff::tz::TimeZone::get("Europe/Paris").expect("tz");
    date.to_zoned(paris)
        .expect("a date")
        .timestamp()
        .as_second()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = jiff::civil::date(2024, 1, 1);
    let fleet = Fleet::new(FleetConfig {
        meters: 1,
        start,
        days: 366,
        seed: 1,
        step_min: 30,
        ..FleetConfig::default()
    });
    let meter = fleet.meter(0);
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), Options::default())?;
    let mut batch = Batch::new();
    for r in &meter.consumption {
        batch
            .push(&meter.meter_id, Channel::CONSUMPTION, point_of(r))
            .map_err(|e| e.0)?;
    }
    let prices = courbe_workload::synthetic_spot(1, start, 366);
    for p in &prices {
        let point = Point {
            ts_utc: p.ts_utc,
            value: p.centi_eur_mwh,
            step_min: p.step_min,
            quality: Quality::Measured,
        };
        batch
            .push("spot-FR", Channel::PRICE, point)
            .map_err(|e| e.0)?;
    }
    store.ingest(&batch)?;
    store.flush()?;
    let snapshot = store.snapshot();
    let mut months = Vec::new();
    let mut days = Vec::new();
    for m in 1..=12i8 {
        let a = jiff::civil::date(2024, m, 1);
        let b = a.checked_add(jiff::Span::new().months(1))?;
        months.push((paris_midnight(a), paris_midnight(b)));
    }
    let mut d = start;
    for _ in 0..366 {
        let next = d.tomorrow()?;
        days.push((paris_midnight(d), paris_midnight(next)));
        d = next;
    }
    let year = dynamic_energy_cost(&*snapshot, &meter.meter_id, "spot-FR", &months)?;
    let energy_wh: i64 = year.iter().map(|p| p.energy_wh()).sum();
    let raw: i128 = year.iter().map(|p| p.cost_raw).sum();
    let unpriced: i64 = year.iter().map(|p| p.unpriced_s).sum();
    let missing: i64 = year.iter().map(|p| p.curve_missing_s).sum();
    println!(
        "meter-year: {} readings, {} prices; energy {:.1} kWh, dynamic cost {:.2} EUR ({:.1} EUR/MWh on average), {missing} s without curve, {unpriced} s unpriced",
        meter.consumption.len(),
        prices.len(),
        energy_wh as f64 / 1000.0,
        raw as f64 / 3.6e11,
        (raw as f64 / 3.6e11) / (energy_wh as f64 / 1e6),
    );
    let t_months = best(20, || {
        dynamic_energy_cost(&*snapshot, &meter.meter_id, "spot-FR", &months).expect("answers");
    });
    let t_days = best(20, || {
        dynamic_energy_cost(&*snapshot, &meter.meter_id, "spot-FR", &days).expect("answers");
    });
    println!(
        "dynamic_energy_cost of the year: 12 months {:.2} ms, 366 days {:.2} ms (best of 20)",
        t_months.as_secs_f64() * 1e3,
        t_days.as_secs_f64() * 1e3
    );

    // Ingest with the live view.
    let fleet = Fleet::new(FleetConfig {
        meters: 200,
        start,
        days: 1,
        seed: 2,
        step_min: 30,
        ..FleetConfig::default()
    });
    let batches: Vec<Batch> = (0..200)
        .map(|i| {
            let m = fleet.meter(i);
            let mut b = Batch::new();
            for r in &m.consumption {
                b.push(&m.meter_id, Channel::CONSUMPTION, point_of(r))
                    .expect("valid");
            }
            b
        })
        .collect();
    let points: usize = batches.iter().map(Batch::len).sum();
    let run = |subscribers: Option<usize>| -> Result<Duration, Box<dyn std::error::Error>> {
        let mut times = Vec::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir()?;
            let store = Store::open(dir.path(), Options::default())?;
            let hub = subscribers.map(|_| LiveHub::attach(&store));
            let mut held = Vec::new();
            if let (Some(hub), Some(n)) = (&hub, subscribers) {
                for k in 0..n {
                    held.push(hub.subscribe(&format!("0999{k:010}")));
                }
            }
            let t = Instant::now();
            for b in &batches {
                store.ingest(b)?;
            }
            times.push(t.elapsed());
        }
        Ok(times.into_iter().min().unwrap_or_default())
    };
    for (label, subs) in [
        ("no live hub", None),
        ("hub, 0 subscribers", Some(0)),
        ("hub, 100 idle subscribers", Some(100)),
    ] {
        let t = run(subs)?;
        println!(
            "ingest of {} batches ({points} points), {label}: {:.1} ms, {:.0} µs per batch (best of 5)",
            batches.len(),
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() * 1e6 / batches.len() as f64
        );
    }
    // What the hub adds to each acknowledged batch, without the fsync that dominates ingest.
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), Options::default())?;
    let hub = LiveHub::attach(&store);
    let empty = best(20, || batches.iter().for_each(|b| hub.publish(b)));
    let held: Vec<_> = (0..100)
        .map(|k| hub.subscribe(&format!("0999{k:010}")))
        .collect();
    let idle = best(20, || batches.iter().for_each(|b| hub.publish(b)));
    println!(
        "LiveHub::publish per batch: {:.2} µs with no subscriber, {:.2} µs with 100 idle subscribers ({} held)",
        empty.as_secs_f64() * 1e6 / batches.len() as f64,
        idle.as_secs_f64() * 1e6 / batches.len() as f64,
        held.len()
    );
    Ok(())
}

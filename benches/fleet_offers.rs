//! The fleet offer comparison (`GET /v1/fleet/offers`, `courbe prices fleet`): every meter of a
//! generated fleet priced per month over a year under the demo's four offers (Tarif Bleu BASE,
//! HP/HC 22:00-06:00 and Tempo at 6 kVA, and the dynamic offer on synthetic 15-minute spot
//! prices), with the demo taxes.
//!
//! One store of `COURBE_BENCH_METERS` (default 200) generated meters x 365 days from 2024-01-01
//! (30-minute curves with the generator's gaps), flushed and compacted, plus a year of
//! synthetic spot prices. Measured: `fleet_totals` (each offer prepared once, each meter's
//! curve read once for all offers, rayon over meters) for the four offers and for two, and the
//! one-meter path it replaces (`meter_cost_with` per meter and offer, one thread) for two, on
//! the first 1,000 meters at most. Divide by meters x offers for the rate.
//!
//! `cargo bench --bench fleet_offers`.

use std::hint::black_box;
use std::time::Duration;

use courbe::engine::{Batch, Options, Store};
use courbe::governance::prices::{demo_grids, demo_taxes, fleet_meters, fleet_totals};
use courbe::query::cost::{self, Grid};
use courbe::query::tariffs::{DayColours, TariffOption, TariffPlan};
use courbe::query::Period;
use courbe::{point_of, Channel, Point, Quality};
use courbe_server::cli::daily::{day_colours, tempo_colours};
use courbe_workload::{Fleet, FleetConfig};
use criterion::{criterion_group, criterion_main, Criterion};

fn fleet_offers(c: &mut Criterion) {
    let meters: u32 = std::env::var("COURBE_BENCH_METERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let fleet = Fleet::new(FleetConfig {
        meters,
        days: 365,
        ..FleetConfig::default()
    });
    let colours = day_colours(&tempo_colours(&fleet));
    let dir = tempfile::tempdir().expect("temp");
    let store = Store::open(dir.path(), Options::default()).expect("open");
    for first in (0..meters).step_by(50) {
        let mut batch = Batch::new();
        for i in first..(first + 50).min(meters) {
            let m = fleet.meter(i);
            for r in &m.consumption {
                batch
                    .push(&m.meter_id, Channel::CONSUMPTION, point_of(r))
                    .expect("valid");
            }
        }
        store.ingest(&batch).expect("ingest");
    }
    let mut batch = Batch::new();
    let start = jiff::civil::date(2024, 1, 1);
    for p in courbe_workload::synthetic_spot(1, start, 367) {
        let point = Point {
            ts_utc: p.ts_utc,
            value: p.centi_eur_mwh,
            step_min: p.step_min,
            quality: Quality::Measured,
        };
        batch.push("spot-FR", Channel::PRICE, point).expect("valid");
    }
    store.ingest(&batch).expect("ingest");
    store.flush().expect("flush");
    store.compact().expect("compact");
    let snapshot = store.snapshot();
    let offers: Vec<(Grid, TariffPlan, DayColours)> = demo_grids()
        .into_iter()
        .map(|g| {
            let option = match g.dynamic_area() {
                Some(_) => "BASE".to_string(),
                None => g.option.clone(),
            };
            let plan = TariffPlan::Option(TariffOption::parse(&option).expect("option"));
            (g, plan, colours.clone())
        })
        .collect();
    let taxes = demo_taxes();
    let day = |y, m, d| courbe::query::tariffs::day_number(jiff::civil::date(y, m, d));
    let (first, end) = (day(2024, 1, 1), day(2025, 1, 1));
    let totals = fleet_totals(&*snapshot, &offers, &taxes, first, end).expect("totals");
    eprintln!(
        "{meters} meters, {} priced under all four offers",
        totals.iter().filter(|t| t.is_some()).count()
    );
    let mut g = c.benchmark_group("fleet_offers_year_monthly");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("fleet_totals_4_offers", |b| {
        b.iter(|| fleet_totals(&*snapshot, black_box(&offers), &taxes, first, end))
    });
    g.bench_function("fleet_totals_2_offers", |b| {
        b.iter(|| fleet_totals(&*snapshot, black_box(&offers[..2]), &taxes, first, end))
    });
    // The one-meter path on the first 1,000 meters at most (it is slow).
    let some: Vec<String> = fleet_meters(&*snapshot).into_iter().take(1_000).collect();
    eprintln!("one-meter path over {} meters", some.len());
    g.bench_function("one_meter_path_2_offers_one_thread", |b| {
        b.iter(|| {
            for meter in &some {
                for (grid, plan, colours) in &offers[..2] {
                    black_box(cost::meter_cost_with(
                        &*snapshot,
                        meter,
                        grid,
                        &taxes,
                        plan,
                        colours,
                        first,
                        end,
                        Some(Period::Month),
                        false,
                    ))
                    .expect("cost");
                }
            }
        })
    });
    g.finish();
}

criterion_group!(benches, fleet_offers);
criterion_main!(benches);

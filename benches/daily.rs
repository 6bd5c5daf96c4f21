//! Meters without a curve: what their daily data cost on disk and what an energy question costs
//! when it falls back to them.
//!
//! Two stores of the same generated fleet (`COURBE_BENCH_METERS`, default 200 meters x 365
//! days from 2024-01-01), flushed and compacted: one with each meter's curve only, one with
//! only what a meter without curve consent sends (daily energy, the indexes of its tariff
//! option's registers and of the distributor's, daily maximum power; `courbe demo`'s
//! derivation). It prints the bytes per meter-year of both, then measures a year of monthly
//! energy (and by register under the meter's option) for one meter from each.
//!
//! `cargo bench --bench daily`.

use std::hint::black_box;
use std::path::Path;

use courbe::engine::{Batch, Options, Store};
use courbe::query::tariffs::{DayColours, TariffOption, TariffPlan};
use courbe::query::{self, Calendar, EnergySource, Period};
use courbe::{point_of, Channel};
use courbe_server::cli::daily::{day_colours, meter_daily, tempo_colours};
use courbe_workload::{Fleet, FleetConfig};
use criterion::{criterion_group, criterion_main, Criterion};
use jiff::tz::TimeZone;

fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("store dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

fn build(dir: &Path, fleet: &Fleet, colours: &DayColours, daily: bool) -> Store {
    let store = Store::open(dir, Options::default()).expect("open");
    for first in (0..fleet.config().meters).step_by(50) {
        let mut batch = Batch::new();
        for i in first..(first + 50).min(fleet.config().meters) {
            let m = fleet.meter(i);
            if !daily {
                for r in &m.consumption {
                    batch
                        .push(&m.meter_id, Channel::CONSUMPTION, point_of(r))
                        .expect("valid");
                }
                continue;
            }
            for r in &m.max_power {
                batch
                    .push(&m.meter_id, Channel::MAX_POWER, point_of(r))
                    .expect("valid");
            }
            let d = meter_daily(fleet, i, &m, colours).expect("derive");
            for readings in [&d.supplier, &d.distributor] {
                let channels: Vec<Channel> = readings
                    .registers
                    .iter()
                    .map(|n| store.index_channel(n).expect("register"))
                    .collect();
                for (channel, p) in readings.points(&channels) {
                    batch.push(&m.meter_id, channel, p).expect("valid");
                }
            }
        }
        store.ingest(&batch).expect("ingest");
    }
    store.flush().expect("flush");
    store.compact().expect("compact");
    store
}

fn daily(c: &mut Criterion) {
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
    let (curve_dir, daily_dir) = (
        tempfile::tempdir().expect("temp"),
        tempfile::tempdir().expect("temp"),
    );
    let curve_store = build(curve_dir.path(), &fleet, &colours, false);
    let daily_store = build(daily_dir.path(), &fleet, &colours, true);
    let per_meter_year = |dir: &Path| segment_bytes(dir) as f64 / f64::from(meters);
    eprintln!(
        "bytes per meter-year: curve {:.0}, daily data (daily energy, supplier and distributor \
         indexes, max power) {:.0}; daily points {}",
        per_meter_year(curve_dir.path()),
        per_meter_year(daily_dir.path()),
        daily_store.stats().points
    );
    let tz = TimeZone::get("Europe/Paris").expect("zone");
    let year = Calendar {
        from_utc: jiff::civil::date(2024, 1, 1)
            .to_zoned(tz.clone())
            .expect("date")
            .timestamp()
            .as_second(),
        to_utc: jiff::civil::date(2025, 1, 1)
            .to_zoned(tz.clone())
            .expect("date")
            .timestamp()
            .as_second(),
        period: Period::Month,
        tz,
    };
    // Meter 6 has HP/HC: two registers of its own.
    let meter = fleet.meter_id(6);
    let plan = TariffPlan::Option(TariffOption::parse("HPHC:22:00-06:00").expect("option"));
    let (curve_snap, daily_snap) = (curve_store.snapshot(), daily_store.snapshot());
    let answer =
        query::energy(&*daily_snap, &meter, Channel::CONSUMPTION, &year, None).expect("energy");
    assert!(answer.iter().all(|p| p.source == EnergySource::Daily));
    let mut g = c.benchmark_group("one_meter_year_monthly");
    g.bench_function("energy_from_curve", |b| {
        b.iter(|| {
            query::energy(
                &*curve_snap,
                black_box(&meter),
                Channel::CONSUMPTION,
                &year,
                None,
            )
        })
    });
    g.bench_function("energy_from_daily", |b| {
        b.iter(|| {
            query::energy(
                &*daily_snap,
                black_box(&meter),
                Channel::CONSUMPTION,
                &year,
                None,
            )
        })
    });
    g.bench_function("by_register_from_curve", |b| {
        b.iter(|| {
            query::energy_by_register(
                &*curve_snap,
                black_box(&meter),
                Channel::CONSUMPTION,
                &year,
                &plan,
                &colours,
            )
        })
    });
    g.bench_function("by_register_from_indexes", |b| {
        b.iter(|| {
            query::energy_by_register(
                &*daily_snap,
                black_box(&meter),
                Channel::CONSUMPTION,
                &year,
                &plan,
                &colours,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, daily);
criterion_main!(benches);

//! The query benchmarks of `queries.rs`, read through a real [`Store`]: a generated fleet (2,000
//! meters x 365 days from 2024-01-01 by default, every channel) ingested, flushed and compacted
//! once into a temporary directory, then queried through [`Store::snapshot`], as the server does.
//!
//! `cargo bench --bench store_queries` (add `-- one_meter` or `-- fleet` for one group).
//! `fleet/half_hourly_total_one_day` is Q4 of the peers suite, answered from the segments'
//! rollups (format v5); `..._meter_by_meter` is the same answer from each meter's blocks.
//! `COURBE_BENCH_METERS` shrinks the fleet for a quick run. `COURBE_BENCH_STORE_DIR` keeps the
//! store in that directory and reuses it on the next run when it already holds one (the store
//! must have been built with the same fleet size). Throughputs are points covered by the query per
//! second over all threads of rayon's pool (`RAYON_NUM_THREADS`).

use std::hint::black_box;
use std::path::Path;

use courbe::engine::{Batch, Options, Store};
use courbe::query::{self, Calendar, Period, Tariff};
use courbe::source::SeriesSource;
use courbe::{point_of, Channel};
use courbe_workload::{Fleet, FleetConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jiff::tz::TimeZone;

/// Ingests the fleet in batches of 50 meters, then flushes and compacts once.
fn build(dir: &Path, meters: u32) -> Store {
    let fleet = Fleet::new(FleetConfig {
        meters,
        days: 365,
        ..FleetConfig::default()
    });
    let store = Store::open(dir, Options::default()).expect("open");
    let per_batch = 50;
    for first in (0..meters).step_by(per_batch) {
        let mut batch = Batch::new();
        for i in first..(first + per_batch as u32).min(meters) {
            let m = fleet.meter(i);
            for (channel, readings) in [
                (Channel::CONSUMPTION, &m.consumption),
                (Channel::PRODUCTION, &m.production),
                (Channel::MAX_POWER, &m.max_power),
            ] {
                for r in readings {
                    batch
                        .push(&m.meter_id, channel, point_of(r))
                        .expect("generated points are valid");
                }
            }
        }
        store.ingest(&batch).expect("ingest");
    }
    store.flush().expect("flush");
    store.compact().expect("compact");
    store
}

fn queries(c: &mut Criterion) {
    let meters: u32 = std::env::var("COURBE_BENCH_METERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let temp;
    let dir = match std::env::var_os("COURBE_BENCH_STORE_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            temp = tempfile::tempdir().expect("temp dir");
            temp.path().to_path_buf()
        }
    };
    let reuse = std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
    let built = std::time::Instant::now();
    let store = if reuse {
        Store::open(&dir, Options::default()).expect("open")
    } else {
        build(&dir, meters)
    };
    let stats = store.stats();
    eprintln!(
        "store {} in {:.1?}: {stats:?}",
        if reuse { "opened" } else { "built" },
        built.elapsed()
    );
    let meter = Fleet::new(FleetConfig {
        meters,
        days: 1,
        ..FleetConfig::default()
    })
    .meter_id(meters / 2);

    let tz = TimeZone::get("Europe/Paris").expect("tz");
    let midnight = |date: jiff::civil::Date| {
        date.to_zoned(tz.clone())
            .expect("local midnight")
            .timestamp()
            .as_second()
    };
    let year = Calendar {
        from_utc: midnight(jiff::civil::date(2024, 1, 1)),
        to_utc: midnight(jiff::civil::date(2025, 1, 1)),
        period: Period::Day,
        tz: tz.clone(),
    };
    let months = Calendar {
        period: Period::Month,
        ..year.clone()
    };
    let tariff: Tariff = "HC:22:00-06:00".parse().expect("tariff");
    let day_from = midnight(jiff::civil::date(2024, 6, 12));
    let day_to = day_from + 86_400;

    let snap = store.snapshot();
    let src: &dyn SeriesSource = &*snap;
    let one_meter_points = query::curve(
        src,
        &meter,
        Channel::CONSUMPTION,
        year.from_utc,
        year.to_utc,
    )
    .expect("curve")
    .len() as u64;
    let day_points: u64 = query::fleet_curve(src, Channel::CONSUMPTION, day_from, day_to, None)
        .expect("fleet curve")
        .iter()
        .map(|p| u64::from(p.meters))
        .sum();
    let year_points: u64 = query::fleet_energy(src, Channel::CONSUMPTION, &months, None)
        .expect("fleet energy")
        .iter()
        .flat_map(|m| &m.periods)
        .map(|p| p.points)
        .sum();
    eprintln!(
        "{meters} meters; one meter's year: {one_meter_points} points; fleet day: {day_points} \
         points; fleet year: {year_points} points; {} rayon threads",
        rayon::current_num_threads()
    );

    // Each iteration takes a fresh snapshot, as a request does.
    let mut g = c.benchmark_group("store/one_meter_year");
    g.throughput(Throughput::Elements(one_meter_points));
    g.bench_function("daily_energy", |b| {
        b.iter(|| {
            let snap = store.snapshot();
            query::energy(&*snap, black_box(&meter), Channel::CONSUMPTION, &year, None)
                .expect("energy")
        })
    });
    g.bench_function("monthly_energy_with_tariff", |b| {
        b.iter(|| {
            let snap = store.snapshot();
            query::energy(
                &*snap,
                black_box(&meter),
                Channel::CONSUMPTION,
                &months,
                Some(&tariff),
            )
            .expect("energy")
        })
    });
    g.bench_function("monthly_peak", |b| {
        b.iter(|| {
            let snap = store.snapshot();
            query::peak(&*snap, black_box(&meter), &months).expect("peak")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("store/fleet");
    g.sample_size(10);
    g.throughput(Throughput::Elements(day_points));
    g.bench_function("half_hourly_total_one_day", |b| {
        b.iter(|| {
            let snap = store.snapshot();
            query::fleet_curve(
                &*snap,
                Channel::CONSUMPTION,
                black_box(day_from),
                day_to,
                None,
            )
            .expect("fleet curve")
        })
    });
    // The same answer read meter by meter, as before format v5: the snapshot behind a source
    // that does not offer its rollups.
    g.bench_function("half_hourly_total_one_day_meter_by_meter", |b| {
        b.iter(|| {
            let snap = store.snapshot();
            query::fleet_curve(
                &NoRollups(&*snap),
                Channel::CONSUMPTION,
                black_box(day_from),
                day_to,
                None,
            )
            .expect("fleet curve")
        })
    });
    g.throughput(Throughput::Elements(year_points));
    g.bench_function("monthly_energy_every_meter_one_year", |b| {
        b.iter(|| {
            let snap = store.snapshot();
            query::fleet_energy(&*snap, Channel::CONSUMPTION, black_box(&months), None)
                .expect("fleet energy")
        })
    });
    g.finish();
}

/// A source without [`SeriesSource::fleet_sums`]: every fleet curve is read meter by meter.
struct NoRollups<'a>(&'a dyn SeriesSource);

impl SeriesSource for NoRollups<'_> {
    fn has_meter(&self, meter: &str) -> bool {
        self.0.has_meter(meter)
    }

    fn meters(&self, channel: Channel) -> Vec<String> {
        self.0.meters(channel)
    }

    fn chunks(
        &self,
        meter: &str,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Vec<courbe::source::Chunk<'_>>, courbe::source::SourceError> {
        self.0.chunks(meter, channel, from_utc, to_utc)
    }
}

criterion_group!(benches, queries);
criterion_main!(benches);

//! End-to-end engine benchmarks: durable ingest, one partition's flush and merge, one meter's
//! year read from segments, open time.
//!
//! `cargo bench --bench engine` (add `-- ingest`, `-- segment`, `-- read` or `-- open` for one
//! group). `segment` writes one month as a day-by-day feed does, each way of
//! `Options::spread_encoding`: a flush of one day of 20,000 meters, and the merge of four such
//! days' segments.
//! `COURBE_BENCH_OPEN_METERS` sets the size of the store opened by the `open` group (default
//! 100,000 meters x 1 day); `examples/scale.rs` measures open time at 1,000,000 meters.

use std::hint::black_box;

use courbe::engine::{Batch, Options, Store};
use courbe::{point_of, Channel};
use courbe_workload::{Fleet, FleetConfig};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use storage_format::block::DecodedBlock;

/// Batches of `meters_per_batch` meters x `days` days each, consumption only.
fn batches(fleet: &Fleet, count: u32, meters_per_batch: u32) -> Vec<Batch> {
    (0..count)
        .map(|b| {
            let mut batch = Batch::new();
            for i in 0..meters_per_batch {
                let m = fleet.meter(b * meters_per_batch + i);
                for r in &m.consumption {
                    batch
                        .push(&m.meter_id, Channel::CONSUMPTION, point_of(r))
                        .expect("generated points are valid");
                }
            }
            batch
        })
        .collect()
}

fn ingest(c: &mut Criterion) {
    let fleet = Fleet::new(FleetConfig {
        meters: 64 * 100,
        days: 7,
        ..FleetConfig::default()
    });
    let batches = batches(&fleet, 64, 100);
    let points = batches[0].len() as u64;
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(points));
    group.sample_size(30);
    group.bench_function("durable_batch_100_meters_x_7_days", |b| {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), Options::default()).expect("open");
        let mut i = 0usize;
        b.iter(|| {
            store.ingest(&batches[i % batches.len()]).expect("ingest");
            i += 1;
        });
    });
    // Four writers at once share fsyncs (group commit): throughput counts all four batches.
    group.throughput(Throughput::Elements(points * 4));
    group.bench_function("durable_4_concurrent_writers", |b| {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), Options::default()).expect("open");
        let mut i = 0usize;
        b.iter(|| {
            std::thread::scope(|s| {
                for t in 0..4 {
                    let batch = &batches[(i + t) % batches.len()];
                    let store = &store;
                    s.spawn(move || store.ingest(batch).expect("ingest"));
                }
            });
            i += 4;
        });
    });
    group.finish();
}

/// One day of `meters` meters (consumption), day `day` of January 2024, in batches of 1,000.
fn day_batches(meters: u32, day: u32) -> Vec<Batch> {
    let fleet = Fleet::new(FleetConfig {
        meters,
        start: jiff::civil::date(2024, 1, 1) + jiff::Span::new().days(i64::from(day)),
        days: 1,
        ..FleetConfig::default()
    });
    batches(&fleet, meters / 1000, 1000)
}

/// A store in a fresh directory holding `days` flushed, each in its own segment, and `memtable`
/// ingested but not flushed.
fn month_store(
    days: &[Vec<Batch>],
    memtable: Option<&[Batch]>,
    spread: bool,
) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        memtable_max_points: usize::MAX,
        spread_encoding: spread,
        ..Options::default()
    };
    let store = Store::open(dir.path(), options).expect("open");
    for day in days {
        for b in day {
            store.ingest(b).expect("ingest");
        }
        store.flush().expect("flush");
    }
    for b in memtable.unwrap_or_default() {
        store.ingest(b).expect("ingest");
    }
    (dir, store)
}

fn segment(c: &mut Criterion) {
    const METERS: u32 = 20_000;
    let days: Vec<Vec<Batch>> = (0..4).map(|d| day_batches(METERS, d)).collect();
    let day_points: u64 = days[0].iter().map(|b| b.len() as u64).sum();
    let mut group = c.benchmark_group("segment");
    group.sample_size(10);
    for (name, spread) in [("spread", true), ("sequential", false)] {
        group.throughput(Throughput::Elements(day_points));
        group.bench_function(format!("flush_one_day_of_{METERS}_meters_{name}"), |b| {
            b.iter_batched(
                || month_store(&[], Some(&days[0]), spread),
                |(dir, store)| {
                    store.flush().expect("flush");
                    (dir, store)
                },
                BatchSize::PerIteration,
            );
        });
        group.throughput(Throughput::Elements(4 * day_points));
        group.bench_function(format!("merge_four_days_of_{METERS}_meters_{name}"), |b| {
            b.iter_batched(
                || month_store(&days, None, spread),
                |(dir, store)| {
                    store.compact().expect("compact");
                    (dir, store)
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

fn read_year(c: &mut Criterion) {
    let fleet = Fleet::new(FleetConfig {
        meters: 200,
        days: 366,
        ..FleetConfig::default()
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), Options::default()).expect("open");
    for b in batches(&fleet, 20, 10) {
        store.ingest(&b).expect("ingest");
    }
    store.flush().expect("flush");
    store.compact().expect("compact");
    let meter = fleet.meter_id(7);
    let (from, to) = (1_704_067_200, 1_735_689_600); // 2024 in UTC
    let snap = store.snapshot();
    let points = snap
        .points(&meter, Channel::CONSUMPTION, from, to)
        .expect("read")
        .len() as u64;
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(points));
    group.bench_function("one_meter_year_from_segments", |b| {
        let mut scratch = DecodedBlock::default();
        b.iter(|| {
            let snap = store.snapshot();
            use courbe::source::SeriesSource;
            let chunks = snap
                .chunks(&meter, Channel::CONSUMPTION, from, to)
                .expect("chunks");
            let mut n = 0;
            for chunk in &chunks {
                chunk.decode_into(&mut scratch).expect("decode");
                n += scratch.len();
            }
            black_box(n)
        });
    });
    group.finish();
}

fn open(c: &mut Criterion) {
    let meters: u32 = std::env::var("COURBE_BENCH_OPEN_METERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let fleet = Fleet::new(FleetConfig {
        meters,
        days: 1,
        ..FleetConfig::default()
    });
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = Store::open(dir.path(), Options::default()).expect("open");
        let per_batch = 1000.min(meters);
        for b in batches(&fleet, meters / per_batch, per_batch) {
            store.ingest(&b).expect("ingest");
        }
        store.flush().expect("flush");
        store.compact().expect("compact");
    }
    let mut group = c.benchmark_group("open");
    group.sample_size(10);
    group.bench_function(format!("store_of_{meters}_meters"), |b| {
        b.iter_batched(
            || (),
            |()| black_box(Store::open(dir.path(), Options::default()).expect("open")),
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, ingest, segment, read_year, open);
criterion_main!(benches);

//! Generation throughput: one meter-year at 30 minutes (about 17,500 readings), single-threaded.
//! A 2,000-meter year is 2,000 of these.

use std::hint::black_box;

use courbe_workload::{Fleet, FleetConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let fleet = Fleet::new(FleetConfig::default());
    let readings = fleet.meter(0).consumption.len() as u64;
    let mut group = c.benchmark_group("generate");
    group.throughput(Throughput::Elements(readings));
    let mut i = 0u32;
    group.bench_function("meter_year_30min", |b| {
        b.iter(|| {
            i = (i + 1) % fleet.config().meters;
            black_box(fleet.meter(i)).consumption.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Ingest parsing throughput on a generated native CSV (`COURBE_BENCH_METERS` meters, 100 by
//! default, one year at 30 minutes: about 1.7 M lines, 90 MB), single-threaded: into a
//! [`Parsed`](courbe::ingest::Parsed) (one `String` per row) and into a sink that borrows the
//! meter id (the path an engine batch takes); and writing the same rows back.

use std::hint::black_box;

use courbe::ingest::{self, Format, Rejected, Sink};
use courbe::{Channel, Point};
use courbe_workload::{Fleet, FleetConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn rows() -> Vec<(String, Point)> {
    let meters = std::env::var("COURBE_BENCH_METERS")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(100);
    let fleet = Fleet::new(FleetConfig {
        meters,
        days: 365,
        ..FleetConfig::default()
    });
    let mut rows = Vec::new();
    for m in fleet.meters() {
        for r in &m.consumption {
            rows.push((m.meter_id.clone(), courbe::point_of(r)));
        }
    }
    rows
}

/// Counts what it is given, as cheaply as a sink can.
#[derive(Default)]
struct Count {
    points: u64,
    checksum: i64,
}

impl Sink for Count {
    fn point(&mut self, _line: u64, meter: &str, _channel: Channel, point: Point) {
        self.points += 1;
        self.checksum += i64::from(point.value) + meter.len() as i64;
    }

    fn reject(&mut self, _rejected: Rejected) {}
}

fn bench(c: &mut Criterion) {
    let rows = rows();
    let mut csv = Vec::new();
    ingest::write_csv(rows.iter().map(|(m, p)| (m.as_str(), *p)), &mut csv).unwrap_or_default();
    let mut group = c.benchmark_group("ingest_csv");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("parse_to_parsed", |b| {
        b.iter(|| {
            ingest::parse(black_box(&csv), Format::Csv, Channel::CONSUMPTION).map(|p| p.rows.len())
        })
    });
    group.bench_function("parse_into_sink", |b| {
        b.iter(|| {
            let mut count = Count::default();
            let result = ingest::parse_into(
                black_box(&csv),
                Format::Csv,
                Channel::CONSUMPTION,
                &mut count,
            );
            (result.is_ok(), count.points, count.checksum)
        })
    });
    group.bench_function("write_csv", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(csv.len());
            let result = ingest::write_csv(rows.iter().map(|(m, p)| (m.as_str(), *p)), &mut out);
            (result.is_ok(), out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

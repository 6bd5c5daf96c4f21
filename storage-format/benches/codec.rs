//! Codec throughput on generator data: encode, decode to columns, and sum/max over a meter's
//! month through the index summaries versus through decoding.
//!
//! `cargo bench -p storage-format --bench codec`

use courbe_workload::{Fleet, FleetConfig};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use storage_format::block::{self, DecodedBlock};
use storage_format::segment::{Segment, SegmentBuilder, SegmentMeta};
use storage_format::{Channel, Point, Quality};

const METERS: u32 = 64;

/// January 2024 (31 days, 30-minute steps) of `METERS` generated meters, sorted by id.
fn month() -> Vec<(String, Vec<Point>)> {
    let fleet = Fleet::new(FleetConfig {
        meters: METERS,
        days: 31,
        seed: 7,
        ..FleetConfig::default()
    });
    let mut meters: Vec<(String, Vec<Point>)> = (0..METERS)
        .map(|i| {
            let m = fleet.meter(i);
            let points = m
                .consumption
                .iter()
                .map(|r| Point {
                    ts_utc: r.ts_utc,
                    value: r.value,
                    step_min: r.step_min,
                    quality: Quality::from_u8(r.quality).unwrap_or_default(),
                })
                .collect();
            (m.meter_id, points)
        })
        .collect();
    meters.sort_by(|a, b| a.0.cmp(&b.0));
    meters
}

fn codec(c: &mut Criterion) {
    let meters = month();
    let points: u64 = meters.iter().map(|(_, p)| p.len() as u64).sum();
    let blocks: Vec<Vec<u8>> = meters
        .iter()
        .map(|(_, p)| {
            let mut out = Vec::new();
            block::encode_into(p, &mut out).expect("encodes");
            out
        })
        .collect();

    let mut group = c.benchmark_group("block");
    group.throughput(Throughput::Elements(points));
    group.bench_function("encode_month_30min", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            for (_, p) in &meters {
                out.clear();
                block::encode_into(black_box(p), &mut out).expect("encodes");
            }
        })
    });
    // What a flush of a wide fleet writes: a day (48 points) or a third of one per block.
    for (name, len) in [("encode_days_30min", 48), ("encode_16_points_30min", 16)] {
        group.bench_function(name, |b| {
            let mut out = Vec::new();
            b.iter(|| {
                for (_, p) in &meters {
                    for day in p.chunks(len) {
                        out.clear();
                        block::encode_into(black_box(day), &mut out).expect("encodes");
                    }
                }
            })
        });
    }
    group.bench_function("decode_to_array_month_30min", |b| {
        let mut out = DecodedBlock::default();
        b.iter(|| {
            for bytes in &blocks {
                block::decode_from(black_box(bytes), &mut out).expect("decodes");
            }
        })
    });
    group.finish();

    let mut file = Vec::new();
    let mut builder = SegmentBuilder::new(SegmentMeta::default(), &mut file);
    for (meter, p) in &meters {
        builder
            .add_block(meter, Channel::CONSUMPTION, p, &mut file)
            .expect("adds");
    }
    builder.finish(&mut file).expect("finishes");
    let segment = Segment::open(&file).expect("opens");

    let mut group = c.benchmark_group("sum_max_meter_month");
    group.throughput(Throughput::Elements(points));
    group.bench_function("index_summaries", |b| {
        b.iter(|| {
            let (mut sum, mut max) = (0i64, i32::MIN);
            for (meter, _) in &meters {
                for r in segment
                    .blocks(black_box(meter), Channel::CONSUMPTION)
                    .expect("looks up")
                {
                    sum += r.summary.sum_value;
                    max = max.max(r.summary.max_value);
                }
            }
            (sum, max)
        })
    });
    group.bench_function("decoding_blocks", |b| {
        let mut out = DecodedBlock::default();
        b.iter(|| {
            let (mut sum, mut max) = (0i64, i32::MIN);
            for (meter, _) in &meters {
                for r in segment
                    .blocks(black_box(meter), Channel::CONSUMPTION)
                    .expect("looks up")
                {
                    r.decode_into(&mut out).expect("decodes");
                    sum += out.value.iter().map(|&v| i64::from(v)).sum::<i64>();
                    max = max.max(out.value.iter().copied().max().unwrap_or(i32::MIN));
                }
            }
            (sum, max)
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);

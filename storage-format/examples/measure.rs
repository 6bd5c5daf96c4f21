//! Measures the format on a generated fleet, the way the engine lays it out: one segment per
//! calendar month (Europe/Paris, as the engine partitions), one block per (meter, channel) and month.
//!
//! ```text
//! cargo run --release -p storage-format --example measure -- --meters 2000 --days 365
//! ```
//!
//! Prints bytes per point all-in (blocks, index, headers, footers), the per-series baselines
//! (xz -9 and zstd -19 over each series' raw little-endian i32 values, over the whole span and per
//! month), how many meters come within 5% of the better baseline, and single-core decode speeds.
//! Flags: `--meters N`, `--days D`, `--seed S`, `--step MIN`, `--threads T`, `--no-baselines`.

#[path = "common/months.rs"]
mod months;

use months::paris_month_of;
use std::collections::BTreeMap;
use std::io::Read;
use std::time::Instant;

use courbe_workload::{Fleet, FleetConfig, MeterSeries, Reading};
use storage_format::block::DecodedBlock;
use storage_format::segment::{Segment, SegmentBuilder, SegmentMeta};
use storage_format::{Channel, Point, Quality};

struct Args {
    meters: u32,
    days: u32,
    seed: u64,
    step_min: u16,
    threads: usize,
    baselines: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        meters: 2_000,
        days: 365,
        seed: 1,
        step_min: 30,
        threads: 2,
        baselines: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--meters" => args.meters = value().parse().expect("--meters N"),
            "--days" => args.days = value().parse().expect("--days D"),
            "--seed" => args.seed = value().parse().expect("--seed S"),
            "--step" => args.step_min = value().parse().expect("--step MIN"),
            "--threads" => args.threads = value().parse().expect("--threads T"),
            "--no-baselines" => args.baselines = false,
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn points_of(readings: &[Reading]) -> Vec<Point> {
    readings
        .iter()
        .map(|r| Point {
            ts_utc: r.ts_utc,
            value: r.value,
            step_min: r.step_min,
            quality: Quality::from_u8(r.quality).unwrap_or_default(),
        })
        .collect()
}

fn raw_le(readings: &[Reading]) -> Vec<u8> {
    readings
        .iter()
        .flat_map(|r| r.value.to_le_bytes())
        .collect()
}

fn xz9(bytes: &[u8]) -> u64 {
    let mut out = Vec::new();
    xz2::read::XzEncoder::new(bytes, 9)
        .read_to_end(&mut out)
        .expect("xz compresses");
    out.len() as u64
}

fn zstd19(bytes: &[u8]) -> u64 {
    zstd::bulk::compress(bytes, 19)
        .expect("zstd compresses")
        .len() as u64
}

#[derive(Clone, Copy, Default)]
struct Baseline {
    xz_year: u64,
    zstd_year: u64,
    xz_month: u64,
    zstd_month: u64,
}

impl std::ops::AddAssign for Baseline {
    fn add_assign(&mut self, o: Baseline) {
        self.xz_year += o.xz_year;
        self.zstd_year += o.zstd_year;
        self.xz_month += o.xz_month;
        self.zstd_month += o.zstd_month;
    }
}

fn series_of(m: &MeterSeries) -> [(Channel, &[Reading]); 3] {
    [
        (Channel::CONSUMPTION, &m.consumption),
        (Channel::PRODUCTION, &m.production),
        (Channel::MAX_POWER, &m.max_power),
    ]
}

fn baseline(m: &MeterSeries) -> Baseline {
    let mut b = Baseline::default();
    for (_, readings) in series_of(m) {
        if readings.is_empty() {
            continue;
        }
        let raw = raw_le(readings);
        b.xz_year += xz9(&raw);
        b.zstd_year += zstd19(&raw);
        for month in readings.chunk_by(|a, b| paris_month_of(a.ts_utc) == paris_month_of(b.ts_utc))
        {
            let raw = raw_le(month);
            b.xz_month += xz9(&raw);
            b.zstd_month += zstd19(&raw);
        }
    }
    b
}

struct MonthSegment {
    builder: Option<SegmentBuilder>,
    bytes: Vec<u8>,
}

fn main() {
    let args = parse_args();
    let fleet = Fleet::new(FleetConfig {
        meters: args.meters,
        days: args.days,
        seed: args.seed,
        step_min: args.step_min,
        ..FleetConfig::default()
    });
    let mut order: Vec<(String, u32)> = (0..args.meters).map(|i| (fleet.meter_id(i), i)).collect();
    order.sort();

    let started = Instant::now();
    let mut segments: BTreeMap<u32, MonthSegment> = BTreeMap::new();
    let mut base_total = Baseline::default();
    // Per meter: our block bytes and its better whole-span baseline.
    let mut per_meter: Vec<(u64, u64, u64)> = Vec::with_capacity(order.len());
    let (mut points, mut encode_s) = (0u64, 0f64);
    let mut channel_points = [0u64; 3];
    let mut channel_bytes = [0u64; 3];
    for chunk in order.chunks(16 * args.threads.max(1)) {
        let generated: Vec<(MeterSeries, Baseline)> = std::thread::scope(|scope| {
            let per_thread = chunk.len().div_ceil(args.threads.max(1));
            let handles: Vec<_> = chunk
                .chunks(per_thread)
                .map(|part| {
                    let fleet = &fleet;
                    let with_baselines = args.baselines;
                    scope.spawn(move || {
                        part.iter()
                            .map(|(_, i)| {
                                let m = fleet.meter(*i);
                                let b = if with_baselines {
                                    baseline(&m)
                                } else {
                                    Baseline::default()
                                };
                                (m, b)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("worker"))
                .collect()
        });
        let t = Instant::now();
        for (m, b) in generated {
            base_total += b;
            let mut ours = 0u64;
            let mut raw_points = 0u64;
            for (channel, readings) in series_of(&m) {
                let all = points_of(readings);
                for month in
                    all.chunk_by(|a, b| paris_month_of(a.ts_utc) == paris_month_of(b.ts_utc))
                {
                    let key = paris_month_of(month[0].ts_utc);
                    let seg = segments.entry(key).or_insert_with(|| {
                        let mut bytes = Vec::new();
                        let meta = SegmentMeta {
                            partition: key,
                            seq: u64::from(key),
                        };
                        let builder = Some(SegmentBuilder::new(meta, &mut bytes));
                        MonthSegment { builder, bytes }
                    });
                    let before = seg.bytes.len();
                    let builder = seg.builder.as_mut().expect("open");
                    builder
                        .add_block(&m.meter_id, channel, month, &mut seg.bytes)
                        .expect("adds");
                    let len = (seg.bytes.len() - before) as u64;
                    ours += len;
                    channel_bytes[usize::from(channel.code())] += len;
                    channel_points[usize::from(channel.code())] += month.len() as u64;
                    raw_points += month.len() as u64;
                }
            }
            points += raw_points;
            per_meter.push((ours, b.xz_year.min(b.zstd_year), raw_points));
        }
        encode_s += t.elapsed().as_secs_f64();
    }
    let mut total_bytes = 0u64;
    let mut block_bytes = 0u64;
    for seg in segments.values_mut() {
        let builder = seg.builder.take().expect("open");
        let before = seg.bytes.len() as u64;
        let stats = builder.finish(&mut seg.bytes).expect("finishes");
        block_bytes += before - storage_format::segment::HEADER_LEN as u64;
        total_bytes += stats.bytes;
    }
    let overhead = total_bytes - block_bytes;
    println!(
        "fleet: {} meters x {} days from 2024-01-01, step {} min, seed {}; {} segments; generated+encoded in {:.1} s (encode alone {:.2} s, {:.1} M points/s)",
        args.meters, args.days, args.step_min, args.seed, segments.len(),
        started.elapsed().as_secs_f64(), encode_s, points as f64 / encode_s / 1e6
    );
    println!(
        "points: {points} (consumption {}, production {}, max_power {})",
        channel_points[0], channel_points[1], channel_points[2]
    );
    println!(
        "bytes/point all-in: {:.4}  ({total_bytes} bytes: blocks {block_bytes}, index+fences+headers+footers {overhead} = {:.4} B/pt)",
        total_bytes as f64 / points as f64,
        overhead as f64 / points as f64
    );
    for (c, name) in ["consumption", "production", "max_power"]
        .iter()
        .enumerate()
    {
        if channel_points[c] > 0 {
            println!(
                "  {name}: blocks only {:.4} B/pt",
                channel_bytes[c] as f64 / channel_points[c] as f64
            );
        }
    }
    if args.baselines {
        let b = base_total;
        let pp = |x: u64| x as f64 / points as f64;
        println!(
            "baselines (raw LE i32 values per series): whole span xz -9 {:.4} B/pt, zstd -19 {:.4} B/pt; per month xz -9 {:.4} B/pt, zstd -19 {:.4} B/pt",
            pp(b.xz_year), pp(b.zstd_year), pp(b.xz_month), pp(b.zstd_month)
        );
        println!(
            "ours / better whole-span baseline: {:.3}; ours / better per-month baseline: {:.3}",
            total_bytes as f64 / b.xz_year.min(b.zstd_year) as f64,
            total_bytes as f64 / b.xz_month.min(b.zstd_month) as f64
        );
        // Each meter gets its share of the index and headers, by points.
        let mut ratios: Vec<f64> = per_meter
            .iter()
            .filter(|(_, base, _)| *base > 0)
            .map(|(ours, base, n)| {
                (*ours as f64 + overhead as f64 * *n as f64 / points as f64) / *base as f64
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        let within = ratios.iter().filter(|&&r| r <= 1.05).count();
        let smaller = ratios.iter().filter(|&&r| r < 1.0).count();
        let q = |f: f64| {
            ratios
                .get(((ratios.len() as f64 - 1.0) * f) as usize)
                .copied()
                .unwrap_or(0.0)
        };
        println!(
            "per meter, ours / better of xz -9 and zstd -19 over its whole span: smaller on {smaller}/{}, within 5% on {within}/{}; min {:.3} median {:.3} p90 {:.3} max {:.3}",
            ratios.len(), ratios.len(), q(0.0), q(0.5), q(0.9), q(1.0)
        );
    }
    decode_speeds(&segments);
}

fn decode_speeds(segments: &BTreeMap<u32, MonthSegment>) {
    // The first full month: the largest segment.
    let Some(seg) = segments.values().max_by_key(|s| s.bytes.len()) else {
        return;
    };
    let segment = Segment::open(&seg.bytes).expect("opens");
    let stats = segment.verify().expect("verifies");
    let series: Vec<_> = segment.series().collect::<Result<_, _>>().expect("scans");
    let mut out = DecodedBlock::default();
    let rounds = 5;
    let t = Instant::now();
    let mut n = 0u64;
    for _ in 0..rounds {
        for s in &series {
            for b in &s.blocks {
                b.decode_into(&mut out).expect("decodes");
                n += out.len() as u64;
            }
        }
    }
    let decode = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (mut sum, mut max, mut m) = (0i64, i32::MIN, 0u64);
    for _ in 0..rounds {
        for s in series.iter().filter(|s| s.channel == Channel::CONSUMPTION) {
            b_decode_sum(s, &mut out, &mut sum, &mut max, &mut m);
        }
    }
    let decode_sum = m as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (mut sum2, mut max2, mut m2) = (0i64, i32::MIN, 0u64);
    for _ in 0..rounds {
        for s in series.iter().filter(|s| s.channel == Channel::CONSUMPTION) {
            for b in segment
                .blocks(s.meter, Channel::CONSUMPTION)
                .expect("looks up")
            {
                sum2 += b.summary.sum_value;
                max2 = max2.max(b.summary.max_value);
                m2 += u64::from(b.summary.count);
            }
        }
    }
    let summary_sum = m2 as f64 / t.elapsed().as_secs_f64();
    assert_eq!(
        (sum, max, m),
        (sum2, max2, m2),
        "summaries agree with the decoded values"
    );
    let t = Instant::now();
    let (mut sum3, mut max3, mut m3) = (0i64, i32::MIN, 0u64);
    for _ in 0..rounds {
        for s in segment.series() {
            let s = s.expect("scans");
            if s.channel != Channel::CONSUMPTION {
                continue;
            }
            for b in &s.blocks {
                sum3 += b.summary.sum_value;
                max3 = max3.max(b.summary.max_value);
                m3 += u64::from(b.summary.count);
            }
        }
    }
    let scan_sum = m3 as f64 / t.elapsed().as_secs_f64();
    assert_eq!(
        (sum, max, m),
        (sum3, max3, m3),
        "the scan agrees with the decoded values"
    );
    println!(
        "one core, month segment of {} series / {} points / {} bytes: decode-to-array {:.0} M points/s; sum+max per meter-month: decoding {:.0} M points/s, via index summaries (lookup by meter) {:.0} M points/s, via a scan of the index summaries (every meter) {:.0} M points/s",
        stats.series, stats.points, stats.bytes, decode / 1e6, decode_sum / 1e6, summary_sum / 1e6, scan_sum / 1e6
    );
}

fn b_decode_sum(
    s: &storage_format::segment::SeriesRef<'_>,
    out: &mut DecodedBlock,
    sum: &mut i64,
    max: &mut i32,
    n: &mut u64,
) {
    for b in &s.blocks {
        b.decode_into(out).expect("decodes");
        *sum += out.value.iter().map(|&v| i64::from(v)).sum::<i64>();
        *max = (*max).max(out.value.iter().copied().max().unwrap_or(i32::MIN));
        *n += out.len() as u64;
    }
}

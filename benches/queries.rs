//! Query benchmarks on a generated fleet (2,000 meters, one year at 30 minutes by default),
//! held in memory as one segment per local (Paris) month with one block per series and month.
//! No engine: the queries read segments directly.
//!
//! Each query runs against two index paths: `segment_index` looks series up with
//! [`Segment::blocks`] on every call, `decoded_index` reads them from each segment's index decoded
//! once into a map (close to what the engine does: it keeps a bounded number of decoded index
//! pages per segment). `store_queries.rs` runs the same queries through a real store.
//!
//! `COURBE_BENCH_PARTITIONS=utc` partitions by UTC months instead (as the engine does today):
//! every block then straddles a Paris month boundary, so monthly energy decodes every block.
//!
//! `COURBE_BENCH_METERS` shrinks the fleet for a quick run. Throughputs are points covered by the
//! query per second over all threads of rayon's pool (`RAYON_NUM_THREADS`); divide by the thread
//! count for points/s per core.

use std::collections::HashMap;
use std::hint::black_box;

use courbe::query::{self, Calendar, Period, Tariff};
use courbe::source::{Chunk, SeriesSource, SourceError};
use courbe::{point_of, Channel, Point};
use courbe_workload::{Fleet, FleetConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jiff::tz::TimeZone;
use storage_format::segment::{BlockRef, Segment, SegmentBuilder, SegmentMeta};

/// One month partition: its local bounds and its segment, opened once (as the engine keeps its
/// segments mapped and open).
struct Month {
    start_utc: i64,
    end_utc: i64,
    segment: Segment<'static>,
    bytes_len: usize,
    /// The segment's index, decoded once: meter → blocks per channel code.
    index: HashMap<String, [Vec<BlockRef<'static>>; 3]>,
}

impl Month {
    fn blocks(&self, meter: &str, channel: Channel, decoded: bool) -> Vec<BlockRef<'static>> {
        if decoded {
            self.index.get(meter).map_or_else(Vec::new, |by_channel| {
                by_channel[usize::from(channel.code())].clone()
            })
        } else {
            self.segment.blocks(meter, channel).unwrap()
        }
    }
}

struct Segments {
    months: Vec<Month>,
    /// Every meter, sorted; all of them have a consumption curve.
    meters: Vec<String>,
    points: u64,
}

/// The fleet read through one of the two index paths.
struct View<'a> {
    segments: &'a Segments,
    decoded_index: bool,
}

impl SeriesSource for View<'_> {
    fn has_meter(&self, meter: &str) -> bool {
        self.segments
            .meters
            .binary_search_by(|m| m.as_str().cmp(meter))
            .is_ok()
    }

    fn meters(&self, _channel: Channel) -> Vec<String> {
        self.segments.meters.clone()
    }

    fn chunks(
        &self,
        meter: &str,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Vec<Chunk<'_>>, SourceError> {
        let mut out = Vec::new();
        for month in &self.segments.months {
            if month.end_utc <= from_utc || month.start_utc >= to_utc {
                continue;
            }
            for block in month.blocks(meter, channel, self.decoded_index) {
                if block.summary.first_ts < to_utc && block.summary.last_ts >= from_utc {
                    out.push(Chunk::Block(block));
                }
            }
        }
        Ok(out)
    }
}

/// Month partitions in `partition_tz` covering the fleet's Paris year.
fn build(meters: u32, partition_tz: &TimeZone) -> Segments {
    let fleet = Fleet::new(FleetConfig {
        meters,
        ..FleetConfig::default()
    });
    let mut bounds = Vec::new();
    // A month early: in UTC the Paris year starts on the last evening of the year before.
    let mut first = fleet
        .config()
        .start
        .first_of_month()
        .checked_sub(jiff::ToSpan::months(1))
        .unwrap();
    for _ in 0..=13 {
        bounds.push(
            first
                .to_zoned(partition_tz.clone())
                .unwrap()
                .timestamp()
                .as_second(),
        );
        first = first.last_of_month().tomorrow().unwrap();
    }
    // (start, end, bytes, builder) per month.
    let mut months: Vec<(i64, i64, Vec<u8>, SegmentBuilder)> = bounds
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let mut bytes = Vec::new();
            let meta = SegmentMeta {
                partition: i as u32,
                seq: i as u64,
            };
            let builder = SegmentBuilder::new(meta, &mut bytes);
            (w[0], w[1], bytes, builder)
        })
        .collect();
    let mut order: Vec<(String, u32)> = (0..meters).map(|i| (fleet.meter_id(i), i)).collect();
    order.sort();
    let mut points = 0;
    let mut scratch: Vec<Point> = Vec::new();
    for (id, index) in &order {
        let series = fleet.meter(*index);
        for (channel, readings) in [
            (Channel::CONSUMPTION, &series.consumption),
            (Channel::PRODUCTION, &series.production),
            (Channel::MAX_POWER, &series.max_power),
        ] {
            points += readings.len() as u64;
            for (start, end, bytes, builder) in &mut months {
                scratch.clear();
                scratch.extend(
                    readings
                        .iter()
                        .filter(|r| r.ts_utc >= *start && r.ts_utc < *end)
                        .map(point_of),
                );
                if !scratch.is_empty() {
                    builder.add_block(id, channel, &scratch, bytes).unwrap();
                }
            }
        }
    }
    let months = months
        .into_iter()
        .map(|(start_utc, end_utc, mut bytes, builder)| {
            builder.finish(&mut bytes).unwrap();
            let bytes: &'static [u8] = Vec::leak(bytes);
            let segment = Segment::open(bytes).unwrap();
            let mut index: HashMap<String, [Vec<BlockRef<'static>>; 3]> = HashMap::new();
            for series in segment.series() {
                let series = series.unwrap();
                index.entry(series.meter.to_string()).or_default()
                    [usize::from(series.channel.code())] = series.blocks;
            }
            Month {
                start_utc,
                end_utc,
                segment,
                bytes_len: bytes.len(),
                index,
            }
        })
        .collect();
    Segments {
        months,
        meters: order.into_iter().map(|(id, _)| id).collect(),
        points,
    }
}

fn queries(c: &mut Criterion) {
    let meters = std::env::var("COURBE_BENCH_METERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let tz = TimeZone::get("Europe/Paris").unwrap();
    let utc_partitions = std::env::var("COURBE_BENCH_PARTITIONS").is_ok_and(|p| p == "utc");
    let partition_tz = if utc_partitions {
        TimeZone::UTC
    } else {
        tz.clone()
    };
    let segments = build(meters, &partition_tz);
    let midnight =
        |date: jiff::civil::Date| date.to_zoned(tz.clone()).unwrap().timestamp().as_second();
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
    let tariff: Tariff = "HC:22:00-06:00".parse().unwrap();
    let day_from = midnight(jiff::civil::date(2024, 6, 12));
    let day_to = day_from + 86_400;
    let bytes: usize = segments.months.iter().map(|m| m.bytes_len).sum();
    let meter = segments.meters[segments.meters.len() / 2].clone();

    for decoded_index in [false, true] {
        let src = View {
            segments: &segments,
            decoded_index,
        };
        let path = match (decoded_index, utc_partitions) {
            (false, false) => "segment_index",
            (true, false) => "decoded_index",
            (false, true) => "utc_months/segment_index",
            (true, true) => "utc_months/decoded_index",
        };
        let one_meter_points = query::curve(
            &src,
            &meter,
            Channel::CONSUMPTION,
            year.from_utc,
            year.to_utc,
        )
        .unwrap()
        .len() as u64;
        let day_points: u64 =
            query::fleet_curve(&src, Channel::CONSUMPTION, day_from, day_to, None)
                .unwrap()
                .iter()
                .map(|p| u64::from(p.meters))
                .sum();
        let year_points: u64 = query::fleet_energy(&src, Channel::CONSUMPTION, &months, None)
            .unwrap()
            .iter()
            .flat_map(|m| &m.periods)
            .map(|p| p.points)
            .sum();
        eprintln!(
            "{path}: {meters} meters, {} points, {bytes} bytes in segments, {} rayon threads; \
             one meter's year: {one_meter_points} points; fleet day: {day_points} points; \
             fleet year: {year_points} points",
            segments.points,
            rayon::current_num_threads()
        );

        let mut g = c.benchmark_group(format!("one_meter_year/{path}"));
        g.throughput(Throughput::Elements(one_meter_points));
        g.bench_function("daily_energy", |b| {
            b.iter(|| query::energy(&src, black_box(&meter), Channel::CONSUMPTION, &year, None))
        });
        g.bench_function("monthly_energy_with_tariff", |b| {
            b.iter(|| {
                query::energy(
                    &src,
                    black_box(&meter),
                    Channel::CONSUMPTION,
                    &months,
                    Some(&tariff),
                )
            })
        });
        g.bench_function("monthly_peak", |b| {
            b.iter(|| query::peak(&src, black_box(&meter), &months))
        });
        g.finish();

        let mut g = c.benchmark_group(format!("fleet/{path}"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(day_points));
        g.bench_function("half_hourly_total_one_day", |b| {
            b.iter(|| {
                query::fleet_curve(
                    &src,
                    Channel::CONSUMPTION,
                    black_box(day_from),
                    day_to,
                    None,
                )
            })
        });
        g.throughput(Throughput::Elements(year_points));
        g.bench_function("monthly_energy_every_meter_one_year", |b| {
            b.iter(|| query::fleet_energy(&src, Channel::CONSUMPTION, black_box(&months), None))
        });
        g.finish();
    }
}

criterion_group!(benches, queries);
criterion_main!(benches);

//! Test data: deterministic series shaped like household load curves.

use storage_format::block::{self, DecodedBlock};
use storage_format::segment::{Segment, SegmentBuilder, SegmentMeta};
use storage_format::{Channel, Point, Quality};

/// A small deterministic generator (the workload crate's SplitMix64): tests must not depend on an unseeded RNG.
pub struct Rng(courbe_workload::rng::Rng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(courbe_workload::rng::Rng::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// 2024-01-01T00:00:00Z.
pub const JAN_2024: i64 = 1_704_067_200;

/// A month of a household curve at `step_min`: base load, evening peaks, winter heating, noise,
/// a few gaps and estimated points.
pub fn household_month(seed: u64, start_ts: i64, step_min: u16, days: u32) -> Vec<Point> {
    let mut rng = Rng::new(seed);
    let per_day = 1440 / u32::from(step_min);
    let base = 100 + rng.below(400) as i32;
    let heating = if rng.below(3) == 0 {
        2000 + rng.below(7000) as i32
    } else {
        0
    };
    let mut points = Vec::new();
    for i in 0..days * per_day {
        if rng.below(500) == 0 {
            continue;
        }
        let slot = i % per_day;
        let hour = slot * u32::from(step_min) / 60;
        let mut value = base + rng.below(8) as i32;
        if (18..22).contains(&hour) {
            value += 800 + rng.below(400) as i32;
        }
        if heating > 0 && !(7..=17).contains(&hour) {
            value += heating;
        }
        if rng.below(200) == 0 {
            value += 3000;
        }
        let quality = match rng.below(60) {
            0 => Quality::Estimated,
            1 => Quality::Corrected,
            _ => Quality::Measured,
        };
        points.push(Point {
            ts_utc: start_ts + i64::from(i) * 60 * i64::from(step_min),
            value,
            step_min,
            quality,
        });
    }
    points
}

pub fn decode(bytes: &[u8]) -> Vec<Point> {
    let mut out = DecodedBlock::default();
    block::decode_from(bytes, &mut out).expect("decodes");
    out.points().collect()
}

pub fn encode(points: &[Point]) -> Vec<u8> {
    let mut out = Vec::new();
    block::encode_into(points, &mut out).expect("encodes");
    out
}

/// A segment of `meters` meters, consumption for all and production for every third one.
pub fn fleet_segment(meters: u32, days: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut builder = SegmentBuilder::new(
        SegmentMeta {
            partition: 648,
            seq: 7,
        },
        &mut out,
    );
    for m in 0..meters {
        let meter = format!("{:014}", 10_000_000_000_000u64 + u64::from(m) * 7919);
        let points = household_month(u64::from(m), JAN_2024, 30, days);
        builder
            .add_block(&meter, Channel::CONSUMPTION, &points, &mut out)
            .expect("adds");
        if m % 3 == 0 {
            let points = household_month(u64::from(m) + 1000, JAN_2024, 30, days);
            builder
                .add_block(&meter, Channel::PRODUCTION, &points, &mut out)
                .expect("adds");
        }
    }
    builder.finish(&mut out).expect("finishes");
    out
}

pub fn open(bytes: &[u8]) -> Segment<'_> {
    Segment::open(bytes).expect("opens")
}

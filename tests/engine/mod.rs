//! Integration tests: engine.

mod basics;
mod corruption;
mod crash;
mod erasure;
mod model;
mod sigkill;

use courbe::engine::{Batch, Store};
use courbe::{Channel, Point, Quality};

/// 2024-01-01T00:00:00Z.
pub const T0: i64 = 1_704_067_200;

pub fn pt(ts_utc: i64, value: i32) -> Point {
    Point {
        ts_utc,
        value,
        step_min: 30,
        quality: Quality::Measured,
    }
}

/// A small seeded generator (SplitMix64), so every test run is the same.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Every resolved point of a series.
pub fn read(store: &Store, meter: &str, channel: Channel) -> Vec<Point> {
    store
        .snapshot()
        .points(meter, channel, 0, i64::MAX)
        .expect("series reads back")
}

pub fn batch(rows: &[(&str, Channel, Point)]) -> Batch {
    let mut b = Batch::new();
    for (m, c, p) in rows {
        b.push(m, *c, *p).expect("valid point");
    }
    b
}

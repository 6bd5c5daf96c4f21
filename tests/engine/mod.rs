//! Integration tests: engine.

mod background;
mod bands;
mod basics;
mod channels;
mod corruption;
mod crash;
mod erasure;
mod model;
mod prices;
mod sigkill;
mod upgrade;

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

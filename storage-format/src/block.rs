//! The block codec: one meter's channel over a span of time.
//!
//! API contract (other crates code against it):
//! - [`encode_into`] appends the encoding of `points` to `out` and returns their summary.
//!   Preconditions (else `InvalidArgument`): 1 ≤ len ≤ [`MAX_POINTS`], `ts_utc` strictly increasing,
//!   `step_min` in 1..=[`crate::STEP_MIN_MAX`]. Any `i32` value and any quality are accepted.
//! - [`decode_from`] decodes exactly what one `encode_into` call appended (the whole slice)
//!   into columns, replacing `out`'s contents.

use crate::{BlockSummary, Error, Point, Quality};

/// Most points one block may hold (a month of 5-minute points is 8,928).
pub const MAX_POINTS: usize = 65_536;

/// A decoded block as columns, all of the same length.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodedBlock {
    pub ts_utc: Vec<i64>,
    pub value: Vec<i32>,
    pub step_min: Vec<u16>,
    pub quality: Vec<Quality>,
}

impl DecodedBlock {
    pub fn len(&self) -> usize {
        self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    pub fn point(&self, i: usize) -> Option<Point> {
        Some(Point {
            ts_utc: *self.ts_utc.get(i)?,
            value: *self.value.get(i)?,
            step_min: *self.step_min.get(i)?,
            quality: *self.quality.get(i)?,
        })
    }

    pub fn points(&self) -> impl Iterator<Item = Point> + '_ {
        (0..self.len()).filter_map(|i| self.point(i))
    }
}

/// Summary of `points` as [`encode_into`] computes it (no validation).
pub fn summarize(points: &[Point]) -> BlockSummary {
    todo!("storage-format helper: {}", points.len())
}

pub fn encode_into(points: &[Point], out: &mut Vec<u8>) -> Result<BlockSummary, Error> {
    todo!("storage-format helper: {} {}", points.len(), out.len())
}

pub fn decode_from(bytes: &[u8], out: &mut DecodedBlock) -> Result<(), Error> {
    todo!("storage-format helper: {} {}", bytes.len(), out.len())
}

//! What queries read: a consistent view of every series, as time-ordered chunks.
//!
//! The engine implements [`SeriesSource`] on its snapshots; tests implement it on a plain map
//! (the reference model). Queries use a chunk's summary when the chunk lies wholly inside the
//! period they compute, and decode it otherwise.

use storage_format::block::DecodedBlock;
use storage_format::segment::BlockRef;
use storage_format::{BlockSummary, Channel, Point};

/// A run of one series' points, already resolved (the newest value of each interval won).
#[derive(Clone, Debug)]
pub enum Chunk<'a> {
    /// A block of a segment that no newer data overlaps: its summary is exact for its points.
    Block(BlockRef<'a>),
    /// Points sorted by `ts_utc`, unique: from the memtable, or merged from overlapping sources.
    Points(Vec<Point>),
}

impl Chunk<'_> {
    /// `ts_utc` of the first point and end of coverage (see [`BlockSummary::end_ts`]).
    pub fn span(&self) -> (i64, i64) {
        match self {
            Chunk::Block(b) => (b.summary.first_ts, b.summary.end_ts),
            Chunk::Points(p) => (
                p.first().map_or(0, |p| p.ts_utc),
                p.iter()
                    .map(|p| p.ts_utc + 60 * i64::from(p.step_min))
                    .max()
                    .unwrap_or(0),
            ),
        }
    }

    /// The points, decoding a block into `scratch` when needed.
    pub fn decode_into(&self, scratch: &mut DecodedBlock) -> Result<(), SourceError> {
        match self {
            Chunk::Block(b) => b.decode_into(scratch).map_err(SourceError::from),
            Chunk::Points(points) => {
                scratch.ts_utc.clear();
                scratch.value.clear();
                scratch.step_min.clear();
                scratch.quality.clear();
                for p in points {
                    scratch.ts_utc.push(p.ts_utc);
                    scratch.value.push(p.value);
                    scratch.step_min.push(p.step_min);
                    scratch.quality.push(p.quality);
                }
                Ok(())
            }
        }
    }

    pub fn summary(&self) -> BlockSummary {
        match self {
            Chunk::Block(b) => b.summary,
            Chunk::Points(p) => storage_format::block::summarize(p),
        }
    }
}

/// A read failed: corrupt or unreadable data under the view.
#[derive(Debug)]
pub struct SourceError {
    /// Names the file and offset when the engine knows them.
    pub message: String,
}

impl From<storage_format::Error> for SourceError {
    fn from(e: storage_format::Error) -> Self {
        SourceError {
            message: e.to_string(),
        }
    }
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SourceError {}

/// A consistent, immutable view of the store.
pub trait SeriesSource: Sync {
    /// Whether the meter holds data on any channel (or consent records, once they exist).
    fn has_meter(&self, meter: &str) -> bool;

    /// Every meter with at least one point on `channel`, sorted by id.
    fn meters(&self, channel: Channel) -> Vec<String>;

    /// The chunks of `(meter, channel)` that hold points in `[from, to)`, in time order and not
    /// overlapping one another. A chunk may hold points outside the range; callers filter.
    fn chunks(
        &self,
        meter: &str,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Vec<Chunk<'_>>, SourceError>;
}

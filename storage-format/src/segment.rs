//! The segment file: blocks grouped by meter, an index searchable in place, checksums, a footer.
//!
//! API contract (other crates code against it):
//! - [`SegmentBuilder`] writes a segment as a stream of byte chunks: the caller appends what each
//!   call leaves in `out` to its file, in order. Series keys `(meter, channel)` are added in strictly
//!   increasing order (meter bytes, then channel code); within a key, blocks in increasing time
//!   without overlap. Only the index is held in memory.
//! - [`Segment::open`] checks header and footer only; [`Segment::blocks`] binary-searches the index
//!   through the slice (an mmap) and validates only the index parts it touches;
//!   [`BlockRef::decode_into`] checks the block's checksum then decodes it; [`Segment::verify`]
//!   checks everything.

use crate::block::DecodedBlock;
use crate::{BlockSummary, Channel, Error, Point};

/// What the engine records about a segment, stored in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SegmentMeta {
    /// Time partition the segment belongs to (engine-defined, e.g. a month number).
    pub partition: u32,
    /// Sequence number, unique in a store; higher is newer.
    pub seq: u64,
}

/// Totals of a finished segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SegmentStats {
    pub series: u64,
    pub blocks: u64,
    pub points: u64,
    pub bytes: u64,
}

pub struct SegmentBuilder {
    _todo: (),
}

impl SegmentBuilder {
    /// Starts a segment; appends the header to `out`.
    pub fn new(meta: SegmentMeta, out: &mut Vec<u8>) -> SegmentBuilder {
        todo!("storage-format helper: {meta:?} {}", out.len())
    }

    /// Encodes one block of `(meter, channel)` and appends it to `out`.
    pub fn add_block(
        &mut self,
        meter: &str,
        channel: Channel,
        points: &[Point],
        out: &mut Vec<u8>,
    ) -> Result<BlockSummary, Error> {
        todo!(
            "storage-format helper: {meter} {channel:?} {} {}",
            points.len(),
            out.len()
        )
    }

    /// Appends the index and the footer to `out`.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<SegmentStats, Error> {
        todo!("storage-format helper: {}", out.len())
    }
}

/// A segment read in place from a byte slice (typically an mmap).
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    bytes: &'a [u8],
}

impl<'a> Segment<'a> {
    pub fn open(bytes: &'a [u8]) -> Result<Segment<'a>, Error> {
        todo!("storage-format helper: {}", bytes.len())
    }

    pub fn meta(&self) -> SegmentMeta {
        todo!("storage-format helper: {}", self.bytes.len())
    }

    pub fn stats(&self) -> SegmentStats {
        todo!("storage-format helper")
    }

    /// The blocks of one series in time order; empty when the segment does not hold it.
    pub fn blocks(&self, meter: &str, channel: Channel) -> Result<Vec<BlockRef<'a>>, Error> {
        todo!("storage-format helper: {meter} {channel:?}")
    }

    /// Every series in key order with its blocks (compaction, fleet scans, verify).
    pub fn series(&self) -> impl Iterator<Item = Result<SeriesRef<'a>, Error>> + 'a {
        todo!("storage-format helper");
        #[allow(unreachable_code)]
        std::iter::empty()
    }

    /// Checks every checksum and every structure of the file.
    pub fn verify(&self) -> Result<SegmentStats, Error> {
        todo!("storage-format helper")
    }
}

/// One series of a segment.
#[derive(Clone, Debug)]
pub struct SeriesRef<'a> {
    pub meter: &'a str,
    pub channel: Channel,
    pub blocks: Vec<BlockRef<'a>>,
}

/// A block in a segment: its summary (from the index) and its still-encoded bytes.
#[derive(Clone, Copy, Debug)]
pub struct BlockRef<'a> {
    pub summary: BlockSummary,
    /// File offset of the block's bytes.
    pub offset: u64,
    bytes: &'a [u8],
}

impl<'a> BlockRef<'a> {
    /// Checks the block's checksum, then decodes it into `out`.
    pub fn decode_into(&self, out: &mut DecodedBlock) -> Result<(), Error> {
        todo!("storage-format helper: {} {}", self.bytes.len(), out.len())
    }
}

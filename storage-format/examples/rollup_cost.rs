//! What format v5 rollups cost a segment: bytes, and the time a compaction's block copy spends
//! decoding the blocks it copies (to sum them) against carrying the segment's rollup across.
//!
//! `cargo run --release -p storage-format --example rollup_cost -- SEGMENT...` (segment files of
//! a store, e.g. one month of `cargo bench --bench store_queries` with `COURBE_BENCH_STORE_DIR`).

use std::time::Instant;

use storage_format::block::DecodedBlock;
use storage_format::segment::{Segment, SegmentBuilder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path)?;
        let segment = Segment::open(&bytes)?;
        let series: Vec<_> = segment.series().collect::<Result<_, _>>()?;
        let rollup_bytes: usize = segment
            .rollups()?
            .unwrap_or_default()
            .iter()
            .map(|r| r.entries.as_ref().map_or(0, Vec::len))
            .sum();
        // Decoding alone: what the copy adds for the channels with intervals.
        let mut decoded = DecodedBlock::default();
        let start = Instant::now();
        let mut points = 0usize;
        for s in series.iter().filter(|s| s.channel.has_intervals()) {
            for b in &s.blocks {
                b.decode_into(&mut decoded)?;
                points += decoded.len();
            }
        }
        let decode = start.elapsed();
        // The copy as compaction does it (checksum, bytes, and now the sums).
        let start = Instant::now();
        let mut out = Vec::with_capacity(bytes.len());
        let mut builder = SegmentBuilder::new(segment.meta(), &mut out);
        for s in &series {
            for b in &s.blocks {
                builder.add_encoded_block(s.meter, s.channel, b, &mut out)?;
            }
        }
        builder.finish(&mut out)?;
        let copy = start.elapsed();
        // The copy of a compaction whose input holds no series another input holds: the kept
        // sums carried across, the channels not kept decoded.
        let rollups = segment.rollups()?.unwrap_or_default();
        let kept = |c| {
            rollups
                .iter()
                .any(|r| r.channel == c && r.entries.is_some())
        };
        let start = Instant::now();
        let mut carried = Vec::with_capacity(bytes.len());
        let mut builder = SegmentBuilder::new(segment.meta(), &mut carried);
        for s in &series {
            for b in &s.blocks {
                if kept(s.channel) {
                    builder.add_encoded_block_carried(s.meter, s.channel, b, &mut carried)?;
                } else {
                    builder.add_encoded_block(s.meter, s.channel, b, &mut carried)?;
                }
            }
        }
        for r in &rollups {
            if let Some(entries) = &r.entries {
                builder.add_carried_rollup(r.channel, entries)?;
            }
        }
        builder.finish(&mut carried)?;
        let carry = start.elapsed();
        println!(
            "{path}: {} bytes, {} rollup entries; copy {:.1?} of which decoding {points} points \
             of channels with intervals {:.1?}; copied file {} bytes; copy carrying the kept \
             sums {:.1?}, {}",
            bytes.len(),
            rollup_bytes,
            copy,
            decode,
            out.len(),
            carry,
            if carried == out {
                "the same bytes"
            } else {
                "OTHER BYTES"
            }
        );
    }
    Ok(())
}

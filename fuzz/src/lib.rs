//! What each fuzz target does with its input. Shared with `storage-format/tests/fuzz_corpus.rs`,
//! which replays the committed corpus through these same functions.
//!
//! The decoders must never panic, loop or allocate from an unchecked length; when they accept
//! bytes, what they return must be self-consistent and must round-trip through the encoder.

use arbitrary::{Arbitrary, Unstructured};
use storage_format::block::{self, DecodedBlock};
use storage_format::segment::Segment;
use storage_format::{Channel, Point, Quality, STEP_MIN_MAX};

/// Raw bytes into the block decoder.
pub fn block_decode(data: &[u8]) {
    let mut out = DecodedBlock::default();
    if block::decode_from(data, &mut out).is_err() {
        return;
    }
    let n = out.len();
    assert!((1..=block::MAX_POINTS).contains(&n));
    assert!(out.ts_utc.len() == n && out.step_min.len() == n && out.quality.len() == n);
    assert!(
        out.ts_utc.windows(2).all(|w| w[0] < w[1]),
        "timestamps increase"
    );
    assert!(out
        .step_min
        .iter()
        .all(|&s| (1..=STEP_MIN_MAX).contains(&s)));
    // What decodes re-encodes, and decodes to the same points.
    let points: Vec<Point> = out.points().collect();
    let mut bytes = Vec::new();
    let summary = block::encode_into(&points, &mut bytes).expect("decoded points are encodable");
    assert_eq!(summary, block::summarize(&points));
    let mut again = DecodedBlock::default();
    block::decode_from(&bytes, &mut again).expect("re-encoded block decodes");
    assert_eq!(again, out);
}

/// Raw bytes into the segment reader: open, look up, scan, verify, decode.
pub fn segment_decode(data: &[u8]) {
    let Ok(segment) = Segment::open(data) else {
        return;
    };
    let _ = segment.meta();
    let mut out = DecodedBlock::default();
    let mut keys = Vec::new();
    for series in segment.series() {
        let Ok(series) = series else {
            break;
        };
        keys.push((series.meter, series.channel));
        for b in &series.blocks {
            if b.decode_into(&mut out).is_ok() {
                assert_eq!(out.len() as u64, u64::from(b.summary.count));
            }
        }
    }
    for (meter, channel) in keys.iter().take(16) {
        let _ = segment.blocks(meter, *channel);
    }
    let _ = segment.blocks("09111642617347", Channel::Consumption);
    if let Ok(stats) = segment.verify() {
        assert_eq!(stats, segment.stats());
        assert_eq!(stats.bytes, data.len() as u64);
    }
}

/// A structured series for round trips.
#[derive(Arbitrary, Debug)]
pub struct Series {
    start: i64,
    points: Vec<(u32, i32, u16, u8)>,
}

/// A structured series through the encoder and back.
pub fn block_roundtrip(data: &[u8]) {
    let Ok(series) = Series::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut ts = series.start;
    let mut points = Vec::new();
    for (gap, value, step, quality) in series.points.into_iter().take(block::MAX_POINTS) {
        let step_min = step % STEP_MIN_MAX + 1;
        let Some(next) = ts.checked_add(i64::from(gap % 200_000) + 1) else {
            break;
        };
        points.push(Point {
            ts_utc: next,
            value,
            step_min,
            quality: Quality::from_u8(quality % 3).unwrap_or_default(),
        });
        ts = next;
    }
    let mut bytes = Vec::new();
    match block::encode_into(&points, &mut bytes) {
        Ok(summary) => {
            assert_eq!(summary, block::summarize(&points));
            let mut out = DecodedBlock::default();
            block::decode_from(&bytes, &mut out).expect("an encoded block decodes");
            assert!(out.points().eq(points.iter().copied()));
        }
        Err(e) => {
            assert!(points.is_empty(), "refused {} points: {e}", points.len());
            assert!(bytes.is_empty());
        }
    }
}

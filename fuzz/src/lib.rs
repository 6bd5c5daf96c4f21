//! What each fuzz target does with its input. Shared with `storage-format/tests/fuzz_corpus.rs`,
//! which replays the committed corpus through these same functions.
//!
//! The decoders must never panic, loop or allocate from an unchecked length; when they accept
//! bytes, what they return must be self-consistent and must round-trip through the encoder.

use arbitrary::{Arbitrary, Unstructured};
use storage_format::block::{self, DecodedBlock};
use storage_format::segment::Segment;
use storage_format::{Channel, Error, ErrorKind, Point, Quality, STEP_MIN_MAX};

/// Bytes can only be corrupt or cut short (or, for a segment header, too new).
fn assert_data_error(e: &Error) {
    assert!(
        matches!(e.kind(), ErrorKind::Corruption | ErrorKind::Truncated),
        "unexpected error kind: {e}"
    );
}

/// Raw bytes into the block decoder.
pub fn block_decode(data: &[u8]) {
    let mut out = DecodedBlock::default();
    if let Err(e) = block::decode_from(data, &mut out) {
        assert_data_error(&e);
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
    let segment = match Segment::open(data) {
        Ok(segment) => segment,
        Err(e) if e.kind() == ErrorKind::Compatibility => return,
        Err(e) => return assert_data_error(&e),
    };
    // (v3) Every register named has a valid name, once, for an index channel.
    let registers = segment.registers();
    for (channel, name) in &registers {
        assert!(channel.is_index() && storage_format::valid_register_name(name));
        assert_eq!(segment.register_name(*channel), Some(*name));
    }
    // (v5) The rollups: channels with intervals in ascending order, instants strictly
    // increasing, every entry at least one meter.
    match segment.rollups() {
        Ok(Some(rollups)) => {
            for w in rollups.windows(2) {
                assert!(w[0].channel < w[1].channel);
            }
            for r in &rollups {
                assert!(r.channel.has_intervals());
                for w in r.entries.iter().flat_map(|e| e.windows(2)) {
                    assert!(w[0].ts_utc < w[1].ts_utc && w[1].meters >= 1);
                }
            }
        }
        Ok(None) => assert!(segment.version() < 5),
        Err(e) => assert_data_error(&e),
    }
    let mut out = DecodedBlock::default();
    let mut keys = Vec::new();
    for series in segment.series() {
        let series = match series {
            Ok(series) => series,
            Err(e) => {
                assert_data_error(&e);
                break;
            }
        };
        keys.push((series.meter, series.channel));
        if series.channel.is_index() {
            assert!(
                segment.register_name(series.channel).is_some(),
                "an index series is named"
            );
        }
        for b in &series.blocks {
            match b.decode_into(&mut out) {
                Ok(()) => assert_eq!(out.len() as u64, u64::from(b.summary.count)),
                Err(e) => assert_data_error(&e),
            }
        }
    }
    for (meter, channel) in keys.iter().take(16) {
        match segment.blocks(meter, *channel) {
            Ok(blocks) => assert!(!blocks.is_empty(), "a listed series has blocks"),
            Err(e) => assert_data_error(&e),
        }
    }
    if let Err(e) = segment.blocks("09111642617347", Channel::CONSUMPTION) {
        assert_data_error(&e);
    }
    match segment.verify() {
        Ok(stats) => {
            assert_eq!(stats, segment.stats());
            assert_eq!(stats.bytes, data.len() as u64);
        }
        Err(e) => assert_data_error(&e),
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

/// Structured series of any channel code (daily energy and index channels included, named
/// from the input) through the segment writer and back: the builder refuses reserved codes and
/// unnamed index channels, and whatever it writes opens, verifies and decodes to its points.
pub fn segment_roundtrip(data: &[u8]) {
    use storage_format::segment::{SegmentBuilder, SegmentMeta};
    let mut u = Unstructured::new(data);
    let Ok(groups) = Vec::<(u8, u8, Vec<(u16, i32, u8)>)>::arbitrary(&mut u) else {
        return;
    };
    let Ok(names) = Vec::<(u8, u8)>::arbitrary(&mut u) else {
        return;
    };
    let mut out = Vec::new();
    let mut builder = SegmentBuilder::new(
        SegmentMeta {
            partition: 1,
            seq: 2,
        },
        &mut out,
    );
    let mut named = std::collections::BTreeMap::new();
    for (code, n) in names.into_iter().take(32) {
        let Some(channel) = Channel::from_u8(code, 3) else {
            continue;
        };
        let name = format!("R{}", n % 40);
        if builder.name_register(channel, &name).is_ok() {
            named.insert(code, name);
        }
    }
    let mut series: Vec<(String, Channel, Vec<Point>)> = Vec::new();
    let mut keys: Vec<(String, u8)> = groups
        .iter()
        .take(24)
        .map(|(m, c, _)| (format!("m{}", m % 8), *c))
        .collect();
    keys.sort();
    keys.dedup();
    for ((meter, code), (_, _, raw)) in keys.into_iter().zip(groups.iter()) {
        let Some(channel) = Channel::from_u8(code, 3) else {
            continue;
        };
        let mut ts = 1_727_733_600i64;
        let points: Vec<Point> = raw
            .iter()
            .take(64)
            .map(|&(gap, value, q)| {
                ts += 86_400 + i64::from(gap % 7_200) - 3_600;
                Point {
                    ts_utc: ts,
                    value,
                    step_min: 1440,
                    quality: Quality::from_u8(q % 3).unwrap_or_default(),
                }
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        builder
            .add_block(&meter, channel, &points, &mut out)
            .expect("a valid block of a defined channel is added");
        series.push((meter, channel, points));
    }
    let unnamed = series
        .iter()
        .any(|(_, c, _)| c.is_index() && !named.contains_key(&c.code()));
    let stats = match builder.finish(&mut out) {
        Ok(stats) => stats,
        Err(e) => {
            assert!(
                unnamed,
                "refused a segment whose index channels are named: {e}"
            );
            return;
        }
    };
    assert!(!unnamed, "wrote an index channel without its register name");
    let segment = Segment::open(&out).expect("a written segment opens");
    assert_eq!(segment.verify().expect("and verifies"), stats);
    // The rollups list exactly the channels with intervals held.
    let mut held: Vec<Channel> = series
        .iter()
        .map(|s| s.1)
        .filter(|c| c.has_intervals())
        .collect();
    held.sort_unstable();
    held.dedup();
    let listed: Vec<Channel> = segment
        .rollups()
        .expect("reads")
        .expect("the newest version has rollups")
        .iter()
        .map(|r| r.channel)
        .collect();
    assert_eq!(listed, held);
    let mut decoded = DecodedBlock::default();
    for (meter, channel, points) in &series {
        let blocks = segment.blocks(meter, *channel).expect("looks up");
        assert_eq!(blocks.len(), 1);
        blocks[0].decode_into(&mut decoded).expect("decodes");
        assert!(decoded.points().eq(points.iter().copied()));
        if channel.is_index() {
            assert_eq!(
                segment.register_name(*channel),
                named.get(&channel.code()).map(String::as_str)
            );
        }
    }
}

/// Raw bytes into the segment reader after recomputing the header, footer, fence and page crcs
/// wherever the (possibly mangled) layout lets us find them, so that mutations reach the fence
/// and page parsers instead of stopping at a checksum.
pub fn segment_structure(data: &[u8]) {
    let mut bytes = data.to_vec();
    repair_crcs(&mut bytes);
    segment_decode(&bytes);
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn put_crc(bytes: &mut [u8], covered: std::ops::Range<usize>, at: usize) {
    let Some(crc) = bytes.get(covered).map(crc32fast::hash) else {
        return;
    };
    if let Some(slot) = bytes.get_mut(at..at + 4) {
        slot.copy_from_slice(&crc.to_le_bytes());
    }
}

/// Recomputes every crc but the blocks' (see FORMAT.md §3.6), in dependency order.
pub fn repair_crcs(bytes: &mut [u8]) {
    use storage_format::segment::{FENCE_LEN, FOOTER_LEN, HEADER_LEN};
    put_crc(bytes, 0..HEADER_LEN - 4, HEADER_LEN - 4);
    let Some(footer) = bytes.len().checked_sub(FOOTER_LEN) else {
        return;
    };
    let (Some(fence_offset), Some(page_count), Some(registers_len)) = (
        read_u64(bytes, footer + 8),
        read_u32(bytes, footer + 40),
        read_u32(bytes, footer + 48),
    ) else {
        return;
    };
    // (v3) The register table, between the fences and the footer, with its own crc first.
    let registers = footer.saturating_sub(registers_len as usize);
    if registers_len >= 4 && registers >= HEADER_LEN {
        put_crc(bytes, registers + 4..footer, registers);
    }
    // (v5) The rollups, before the 4 bytes of their length before the register table, with
    // their own crc first.
    let version = bytes
        .get(8..10)
        .map_or(0, |v| u16::from_le_bytes([v[0], v[1]]));
    let mut fences_end = registers;
    if version >= 5 {
        if let Some(len) = registers.checked_sub(4).and_then(|at| read_u32(bytes, at)) {
            let start = registers.saturating_sub(4 + len as usize);
            if len >= 4 && start >= HEADER_LEN {
                put_crc(bytes, start + 4..registers - 4, start);
            }
            fences_end = start;
        }
    }
    // Only a fence table that lies inside the file says where the pages are.
    let fence_start = usize::try_from(fence_offset).unwrap_or(usize::MAX);
    let fence_len = page_count as usize * FENCE_LEN;
    if fence_start
        .checked_add(fence_len)
        .is_none_or(|end| end > fences_end)
    {
        put_crc(bytes, footer..footer + 52, footer + 52);
        return;
    }
    let pages: Vec<usize> = (0..page_count as usize)
        .filter_map(|i| read_u64(bytes, fence_start + i * FENCE_LEN + FENCE_LEN - 8))
        .map(|o| usize::try_from(o).unwrap_or(usize::MAX))
        .collect();
    for (i, &start) in pages.iter().enumerate() {
        let end = pages.get(i + 1).copied().unwrap_or(fence_start);
        if start.checked_add(4).is_some_and(|s| s <= end) && end <= bytes.len() {
            put_crc(bytes, start + 4..end, start);
        }
    }
    put_crc(bytes, fence_start..fence_start + fence_len, footer + 44);
    put_crc(bytes, footer..footer + 52, footer + 52);
}

//! Segment files: round trips through the index, lookups, verify.

use storage_format::block::DecodedBlock;
use storage_format::segment::{Segment, SegmentBuilder, SegmentMeta};
use storage_format::{block, Channel, ErrorKind, Point};

use crate::util::{fleet_segment, household_month, open, JAN_2024};

#[test]
fn a_segment_of_many_series_round_trips_through_lookups_and_scans() {
    let bytes = fleet_segment(300, 31);
    let segment = open(&bytes);
    assert_eq!(
        segment.meta(),
        SegmentMeta {
            partition: 648,
            seq: 7
        }
    );
    let stats = segment.verify().expect("verifies");
    assert_eq!(stats, segment.stats());
    assert_eq!(stats.series, 400);
    assert_eq!(stats.bytes, bytes.len() as u64);
    let mut decoded = DecodedBlock::default();
    for m in 0..300u32 {
        let meter = format!("{:014}", 10_000_000_000_000u64 + u64::from(m) * 7919);
        let expected = household_month(u64::from(m), JAN_2024, 30, 31);
        let blocks = segment
            .blocks(&meter, Channel::CONSUMPTION)
            .expect("looks up");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].summary, block::summarize(&expected));
        blocks[0].decode_into(&mut decoded).expect("decodes");
        let back: Vec<Point> = decoded.points().collect();
        assert_eq!(back, expected);
        let production = segment
            .blocks(&meter, Channel::PRODUCTION)
            .expect("looks up");
        assert_eq!(production.len(), usize::from(m % 3 == 0));
        assert!(segment
            .blocks(&meter, Channel::MAX_POWER)
            .expect("looks up")
            .is_empty());
    }
    assert!(segment
        .blocks("0", Channel::CONSUMPTION)
        .expect("looks up")
        .is_empty());
    assert!(segment
        .blocks("99999999999999", Channel::CONSUMPTION)
        .expect("looks up")
        .is_empty());
    let series: Vec<_> = segment.series().collect::<Result<_, _>>().expect("scans");
    assert_eq!(series.len(), 400);
    assert!(series
        .windows(2)
        .all(|w| (w[0].meter, w[0].channel) < (w[1].meter, w[1].channel)));
}

#[test]
fn a_series_of_several_blocks_keeps_them_in_time_order() {
    let mut out = Vec::new();
    let mut builder = SegmentBuilder::new(SegmentMeta::default(), &mut out);
    let month = household_month(1, JAN_2024, 30, 31);
    for chunk in month.chunks(100) {
        builder
            .add_block("m", Channel::CONSUMPTION, chunk, &mut out)
            .expect("adds");
    }
    let stats = builder.finish(&mut out).expect("finishes");
    assert_eq!(stats.bytes, out.len() as u64);
    let segment = open(&out);
    segment.verify().expect("verifies");
    let blocks = segment.blocks("m", Channel::CONSUMPTION).expect("looks up");
    assert_eq!(blocks.len(), month.chunks(100).count());
    let mut all = Vec::new();
    let mut decoded = DecodedBlock::default();
    for b in blocks {
        b.decode_into(&mut decoded).expect("decodes");
        all.extend(decoded.points());
    }
    assert_eq!(all, month);
}

#[test]
fn an_empty_segment_is_valid() {
    let mut out = Vec::new();
    let builder = SegmentBuilder::new(
        SegmentMeta {
            partition: 1,
            seq: 2,
        },
        &mut out,
    );
    builder.finish(&mut out).expect("finishes");
    let segment = open(&out);
    assert_eq!(segment.verify().expect("verifies").series, 0);
    assert!(segment
        .blocks("m", Channel::CONSUMPTION)
        .expect("looks up")
        .is_empty());
}

#[test]
fn keys_out_of_order_and_overlapping_blocks_are_refused() {
    let mut out = Vec::new();
    let mut builder = SegmentBuilder::new(SegmentMeta::default(), &mut out);
    let month = household_month(1, JAN_2024, 30, 2);
    builder
        .add_block("b", Channel::PRODUCTION, &month, &mut out)
        .expect("adds");
    let len = out.len();
    for (meter, channel) in [("a", Channel::MAX_POWER), ("b", Channel::CONSUMPTION)] {
        let err = builder
            .add_block(meter, channel, &month, &mut out)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
    let err = builder
        .add_block("b", Channel::PRODUCTION, &month, &mut out)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let err = builder
        .add_block("", Channel::PRODUCTION, &month, &mut out)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(out.len(), len);
    builder.finish(&mut out).expect("finishes");
    Segment::open(&out)
        .expect("opens")
        .verify()
        .expect("verifies");
}

#[test]
fn a_block_spanning_more_than_i64_max_seconds_is_refused_by_the_index() {
    let mut out = Vec::new();
    let mut builder = SegmentBuilder::new(SegmentMeta::default(), &mut out);
    let p = Point {
        ts_utc: i64::MIN,
        value: 1,
        step_min: 1,
        quality: storage_format::Quality::Measured,
    };
    let points = [
        p,
        Point {
            ts_utc: i64::MAX,
            ..p
        },
    ];
    let err = builder
        .add_block("m", Channel::CONSUMPTION, &points, &mut out)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let points = [p, Point { ts_utc: -1, ..p }];
    builder
        .add_block("m", Channel::CONSUMPTION, &points, &mut out)
        .expect("adds");
    builder.finish(&mut out).expect("finishes");
    let segment = open(&out);
    segment.verify().expect("verifies");
    assert_eq!(
        segment.blocks("m", Channel::CONSUMPTION).expect("looks up")[0]
            .summary
            .first_ts,
        i64::MIN
    );
}

#[test]
fn every_truncated_prefix_of_a_segment_is_truncated() {
    let bytes = fleet_segment(40, 3);
    for len in 0..bytes.len() {
        let err = Segment::open(&bytes[..len]).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Truncated,
            "prefix of {len} bytes: {err}"
        );
    }
}

#[test]
fn every_flipped_bit_is_corruption() {
    let bytes = fleet_segment(4, 1);
    let mut copy = bytes.clone();
    for bit in 0..bytes.len() * 8 {
        let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
        copy[byte] ^= mask;
        let result = Segment::open(&copy).and_then(|s| s.verify());
        let err = result.expect_err("a flipped bit is detected");
        assert_eq!(err.kind(), ErrorKind::Corruption, "bit {bit}: {err}");
        copy[byte] ^= mask;
    }
}

fn index_heavy_segment() -> &'static [u8] {
    static SEGMENT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    SEGMENT.get_or_init(|| fleet_segment(60, 1))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn mangled_index_bytes_with_repaired_crcs_never_panic(
        at in 0.0..1.0f64,
        mask in 1..=255u8,
    ) {
        let mut bytes = index_heavy_segment().to_vec();
        let segment = open(index_heavy_segment());
        // Somewhere after the last block: pages, fences or footer.
        let blocks_end = segment
            .series()
            .filter_map(Result::ok)
            .flat_map(|s| s.blocks)
            .map(|b| b.offset as usize + b.encoded().len())
            .max()
            .unwrap_or(0);
        let pos = blocks_end + ((bytes.len() - blocks_end) as f64 * at) as usize;
        let pos = pos.min(bytes.len() - 1);
        bytes[pos] ^= mask;
        crate::fuzz_drivers::segment_structure(&bytes);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    #[test]
    fn any_set_of_series_round_trips_through_a_segment(
        series in proptest::collection::btree_map(
            ("[0-9a-z]{1,20}", 0..3u8),
            (proptest::collection::vec(crate::roundtrip::stretch(), 1..4), 1..4usize),
            1..12,
        ),
    ) {
        let mut out = Vec::new();
        let mut builder = SegmentBuilder::new(SegmentMeta { partition: 3, seq: 9 }, &mut out);
        let mut expected = Vec::new();
        for ((meter, channel), (stretches, blocks)) in &series {
            let channel = Channel::from_u8(*channel, 2).expect("channel");
            let points = crate::roundtrip::build(JAN_2024, stretches, &[]);
            let chunk = points.len().div_ceil(*blocks);
            for block in points.chunks(chunk) {
                builder.add_block(meter, channel, block, &mut out).expect("adds");
                expected.push((meter.clone(), channel, block.to_vec()));
            }
        }
        let stats = builder.finish(&mut out).expect("finishes");
        let segment = open(&out);
        proptest::prop_assert_eq!(segment.verify().expect("verifies"), stats);
        let mut decoded = DecodedBlock::default();
        let mut at = 0;
        for (meter, channel) in series.keys() {
            let channel = Channel::from_u8(*channel, 2).expect("channel");
            for b in segment.blocks(meter, channel).expect("looks up") {
                let (m, c, points) = &expected[at];
                proptest::prop_assert_eq!((m, *c), (meter, channel));
                proptest::prop_assert_eq!(b.summary, block::summarize(points));
                b.decode_into(&mut decoded).expect("decodes");
                proptest::prop_assert!(decoded.points().eq(points.iter().copied()));
                at += 1;
            }
        }
        proptest::prop_assert_eq!(at, expected.len());
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

    /// Format v5 rollups: for any series (gaps, step changes, off-grid instants), the kept sums
    /// are the sums of the points starting at each instant, whether the writer encoded the
    /// blocks or copied them from another segment.
    #[test]
    fn the_rollups_of_any_segment_are_the_sums_of_its_points_at_each_instant(
        stretches in proptest::collection::vec(
            proptest::collection::vec(crate::roundtrip::stretch(), 1..3),
            1..6,
        ),
        meters in 128..140usize,
    ) {
        use storage_format::rollup::ROLLUP_MIN_SERIES;
        let mut out = Vec::new();
        let mut builder = SegmentBuilder::new(SegmentMeta { partition: 3, seq: 9 }, &mut out);
        let mut sums = std::collections::BTreeMap::<i64, (u16, u32, i64)>::new();
        for m in 0..meters {
            let points = crate::roundtrip::build(JAN_2024, &stretches[m % stretches.len()], &[]);
            let points: Vec<Point> = points
                .into_iter()
                .map(|p| Point { value: p.value.wrapping_add(m as i32), ..p })
                .collect();
            for p in &points {
                let e = sums.entry(p.ts_utc).or_default();
                e.0 = e.0.max(p.step_min);
                e.1 += 1;
                e.2 += i64::from(p.value);
            }
            builder
                .add_block(&format!("m{m:04}"), Channel::CONSUMPTION, &points, &mut out)
                .expect("adds");
        }
        builder.finish(&mut out).expect("finishes");
        let want: Vec<(i64, u16, u32, i64)> =
            sums.into_iter().map(|(t, (s, n, v))| (t, s, n, v)).collect();
        let sums_of = |bytes: &[u8]| -> Vec<(i64, u16, u32, i64)> {
            let segment = open(bytes);
            segment.verify().expect("verifies");
            let rollups = segment.rollups().expect("reads").expect("v5");
            assert_eq!(rollups.len(), 1);
            rollups[0]
                .entries
                .as_ref()
                .expect("kept")
                .iter()
                .map(|e| (e.ts_utc, e.step_min, e.meters, e.total))
                .collect()
        };
        proptest::prop_assert!(meters as u64 >= ROLLUP_MIN_SERIES);
        proptest::prop_assert_eq!(sums_of(&out), want.clone());
        // The same blocks copied, not re-encoded.
        let source = open(&out);
        let mut copy = Vec::new();
        let mut builder = SegmentBuilder::new(SegmentMeta { partition: 3, seq: 10 }, &mut copy);
        for s in source.series() {
            let s = s.expect("scans");
            for b in &s.blocks {
                builder
                    .add_encoded_block(s.meter, s.channel, b, &mut copy)
                    .expect("copies");
            }
        }
        builder.finish(&mut copy).expect("finishes");
        proptest::prop_assert_eq!(sums_of(&copy), want);
        // Copied with the sums carried from the source's rollup instead: the same bytes.
        let rollups = source.rollups().expect("reads").expect("v5");
        let mut carried = Vec::new();
        let mut builder = SegmentBuilder::new(SegmentMeta { partition: 3, seq: 10 }, &mut carried);
        for s in source.series() {
            let s = s.expect("scans");
            for b in &s.blocks {
                builder
                    .add_encoded_block_carried(s.meter, s.channel, b, &mut carried)
                    .expect("copies");
            }
        }
        builder
            .add_carried_rollup(Channel::CONSUMPTION, rollups[0].entries.as_deref().expect("kept"))
            .expect("carries");
        builder.finish(&mut carried).expect("finishes");
        proptest::prop_assert!(carried == copy, "carried sums wrote other bytes");
    }
}

#[test]
fn a_rollup_carried_for_other_blocks_than_those_copied_without_sums_is_refused() {
    let mut out = Vec::new();
    let mut builder = SegmentBuilder::new(
        SegmentMeta {
            partition: 3,
            seq: 1,
        },
        &mut out,
    );
    for m in 0..130 {
        let points: Vec<Point> = (0..48)
            .map(|i| Point {
                ts_utc: JAN_2024 + i * 1800,
                value: m + i as i32,
                step_min: 30,
                quality: storage_format::Quality::Measured,
            })
            .collect();
        builder
            .add_block(&format!("m{m:04}"), Channel::CONSUMPTION, &points, &mut out)
            .expect("adds");
    }
    builder.finish(&mut out).expect("finishes");
    let source = open(&out);
    let rollups = source.rollups().expect("reads").expect("v5");
    let entries = rollups[0].entries.as_deref().expect("kept");
    // Every series but the last copied without its sums, the whole rollup carried; then
    // every series so copied and no rollup carried.
    for (skip_last, carry) in [(true, true), (false, false)] {
        let mut copy = Vec::new();
        let mut builder = SegmentBuilder::new(
            SegmentMeta {
                partition: 3,
                seq: 2,
            },
            &mut copy,
        );
        let series: Vec<_> = source.series().map(|s| s.expect("scans")).collect();
        let take = if skip_last {
            series.len() - 1
        } else {
            series.len()
        };
        for s in &series[..take] {
            for b in &s.blocks {
                builder
                    .add_encoded_block_carried(s.meter, s.channel, b, &mut copy)
                    .expect("copies");
            }
        }
        if carry {
            builder
                .add_carried_rollup(Channel::CONSUMPTION, entries)
                .expect("carries");
        }
        let err = builder.finish(&mut copy).expect_err("the counts disagree");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    }
}

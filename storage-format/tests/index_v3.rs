//! Format v3: daily energy and index channels in a group's channel set, and the register table
//! that names the register of every index channel a segment holds.

use storage_format::block::{self, DecodedBlock};
use storage_format::segment::{
    Segment, SegmentBuilder, SegmentMeta, FOOTER_LEN, FORMAT_VERSION, HEADER_LEN,
};
use storage_format::{Channel, ErrorKind, Point, Quality};

/// 2024-10-01T00:00:00+02:00 (Paris).
const OCTOBER_2024_PARIS: i64 = 1_727_733_600;

fn index(r: u8) -> Channel {
    Channel::index(r).expect("an index channel")
}

/// A month of daily readings: values running up from `start` when `running`, else daily Wh.
fn daily(seed: i32, days: i64, running: bool) -> Vec<Point> {
    let mut value = if running { 20_000_000 + seed * 1000 } else { 0 };
    (0..days)
        .map(|d| {
            let day = 4_000 + (seed * 131 + d as i32 * 977) % 9_000;
            let v = if running { value } else { day };
            value += day;
            Point {
                ts_utc: OCTOBER_2024_PARIS + d * 86_400 + if d >= 27 { 3600 } else { 0 },
                value: v,
                step_min: 1440,
                quality: if d % 9 == 4 {
                    Quality::Estimated
                } else {
                    Quality::Measured
                },
            }
        })
        .collect()
}

type Series = Vec<(String, Channel, Vec<Point>)>;

/// Meters with daily energy and indexes (some only indexes), in key order.
fn series(meters: u32) -> Series {
    let mut out = Vec::new();
    for m in 0..meters {
        let meter = format!("{:014}", 30_000_000_000_000u64 + u64::from(m) * 104_729);
        if m % 5 != 2 {
            out.push((
                meter.clone(),
                Channel::DAILY_ENERGY,
                daily(m as i32, 31, false),
            ));
        }
        let registers: &[u8] = match m % 3 {
            0 => &[0],
            1 => &[1, 2],
            _ => &[3, 4, 5, 6, 7, 8],
        };
        for &r in registers {
            out.push((
                meter.clone(),
                index(r),
                daily(m as i32 + i32::from(r), 31, true),
            ));
        }
    }
    out
}

const NAMES: [&str; 9] = [
    "BASE", "HP", "HC", "HPJB", "HCJB", "HPJW", "HCJW", "HPJR", "HCJR",
];

fn build(series: &Series, names: &[(Channel, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut builder = SegmentBuilder::new(
        SegmentMeta {
            partition: 657,
            seq: 3,
        },
        &mut out,
    );
    for (c, n) in names {
        builder.name_register(*c, n).expect("names");
    }
    for (meter, channel, points) in series {
        builder
            .add_block(meter, *channel, points, &mut out)
            .expect("adds");
    }
    builder.finish(&mut out).expect("finishes");
    out
}

fn all_names() -> Vec<(Channel, &'static str)> {
    NAMES
        .iter()
        .enumerate()
        .map(|(r, n)| (index(r as u8), *n))
        .collect()
}

#[test]
fn daily_energy_and_index_series_round_trip_with_their_register_names() {
    let expected = series(90);
    let bytes = build(&expected, &all_names());
    let segment = Segment::open(&bytes).expect("opens");
    assert_eq!(segment.version(), FORMAT_VERSION);
    assert!(segment.page_count() > 2);
    assert_eq!(
        segment.verify().expect("verifies").series,
        expected.len() as u64
    );
    assert_eq!(segment.registers(), all_names());
    let mut decoded = DecodedBlock::default();
    for (meter, channel, points) in &expected {
        let blocks = segment.blocks(meter, *channel).expect("looks up");
        assert_eq!(blocks.len(), 1, "{meter} {channel:?}");
        assert_eq!(blocks[0].summary, block::summarize(points));
        blocks[0].decode_into(&mut decoded).expect("decodes");
        assert!(decoded.points().eq(points.iter().copied()));
    }
    // Absent channels of present meters, an unnamed index channel, and absent meters.
    let (meter, _, _) = &expected[0];
    assert!(segment
        .blocks(meter, index(7))
        .expect("looks up")
        .is_empty());
    assert!(segment
        .blocks(meter, index(200))
        .expect("looks up")
        .is_empty());
    assert!(segment
        .blocks("0", Channel::DAILY_ENERGY)
        .expect("looks up")
        .is_empty());
    let scanned: Vec<_> = segment.series().collect::<Result<_, _>>().expect("scans");
    let keys: Vec<_> = scanned.iter().map(|s| (s.meter, s.channel)).collect();
    let want: Vec<_> = expected.iter().map(|(m, c, _)| (m.as_str(), *c)).collect();
    assert_eq!(keys, want);
}

#[test]
fn a_segment_of_curves_only_is_no_larger_in_v3() {
    // Same bytes but the version, the crcs and nothing else: no register table, no extension.
    let points: Vec<Point> = (0..48)
        .map(|i| Point {
            ts_utc: OCTOBER_2024_PARIS + i * 1800,
            value: 300 + i as i32,
            step_min: 30,
            quality: Quality::Measured,
        })
        .collect();
    let s: Series = vec![("m".into(), Channel::CONSUMPTION, points)];
    let bytes = build(&s, &all_names());
    let footer = bytes.len() - FOOTER_LEN;
    assert_eq!(bytes[footer + 48..footer + 52], [0, 0, 0, 0]);
    assert!(Segment::open(&bytes).expect("opens").registers().is_empty());
}

#[test]
fn the_builder_refuses_reserved_codes_unnamed_indexes_and_conflicting_names() {
    let mut out = Vec::new();
    let mut b = SegmentBuilder::new(SegmentMeta::default(), &mut out);
    assert!(b.name_register(Channel::DAILY_ENERGY, "BASE").is_err());
    assert!(b.name_register(index(0), "base").is_err());
    assert!(b.name_register(index(0), "").is_err());
    assert!(b.name_register(index(0), "ABCDEFGHIJKLMNOPQ").is_err());
    b.name_register(index(0), "BASE").expect("names");
    b.name_register(index(0), "BASE")
        .expect("names again, the same");
    assert!(b.name_register(index(0), "HP").is_err());
    assert!(b.name_register(index(1), "BASE").is_err());
    let p = daily(1, 3, true);
    for code in 4..16u8 {
        assert!(Channel::from_u8(code, 3).is_none());
    }
    for code in 5..16u8 {
        assert!(Channel::from_u8(code, 4).is_none());
    }
    b.add_block("m", index(1), &p, &mut out).expect("adds");
    let err = b.finish(&mut out).expect_err("index(1) is not named");
    assert!(err.to_string().contains("not named"), "{err}");
}

#[test]
fn versions_1_and_2_know_only_the_curve_era_codes() {
    for code in 0..=255u8 {
        let v2 = Channel::from_u8(code, 2).is_some();
        let v3 = Channel::from_u8(code, 3).is_some();
        assert_eq!(v2, code <= 2, "{code}");
        assert_eq!(Channel::from_u8(code, 1).is_some(), code <= 2, "{code}");
        assert_eq!(v3, code <= 3 || code >= 16, "{code}");
        let v4 = Channel::from_u8(code, 4).is_some();
        assert_eq!(v4, code <= 4 || code >= 16, "{code}");
        assert_eq!(Channel::from_u8(code, 0), None);
    }
    assert_eq!(Channel::index(239).map(Channel::code), Some(255));
    assert_eq!(Channel::index(240), None);
    assert_eq!(index(5).register_number(), Some(5));
    assert_eq!(Channel::DAILY_ENERGY.register_number(), None);
    assert_eq!(Channel::PRICE.register_number(), None);
    assert!(Channel::PRICE.has_intervals() && !Channel::PRICE.is_curve());
    assert!(storage_format::segment::supports_price_channel(4));
    assert!(!storage_format::segment::supports_price_channel(3));
    assert_eq!(
        (index(5).as_str(), Channel::DAILY_ENERGY.as_str()),
        ("index", "daily_energy")
    );
}

/// Where the register table of `bytes` is: `(offset, length)`.
fn table_at(bytes: &[u8]) -> (usize, usize) {
    let footer = bytes.len() - FOOTER_LEN;
    let len = u32::from_le_bytes(bytes[footer + 48..footer + 52].try_into().unwrap()) as usize;
    (footer - len, len)
}

/// One register table entry: code and name bytes.
type Entry<'a> = (u8, &'a [u8]);

/// `bytes` with its register table replaced by `entries` (count and crc recomputed, the
/// footer's length and crc fixed): a writer that wrote another table.
fn with_table(bytes: &[u8], entries: &[Entry<'_>]) -> Vec<u8> {
    let (at, len) = table_at(bytes);
    let mut table = vec![entries.len() as u8];
    for (code, name) in entries {
        table.push(*code);
        table.push(name.len() as u8);
        table.extend_from_slice(name);
    }
    let crc = crc32fast::hash(&table);
    table.splice(0..0, crc.to_le_bytes());
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(&table);
    let footer = out.len();
    out.extend_from_slice(&bytes[at + len..]);
    out[footer + 48..footer + 52].copy_from_slice(&(table.len() as u32).to_le_bytes());
    let crc = crc32fast::hash(&out[footer..footer + 52]);
    out[footer + 52..footer + 56].copy_from_slice(&crc.to_le_bytes());
    out
}

fn open_and_verify(bytes: &[u8]) -> Result<(), storage_format::Error> {
    Segment::open(bytes)?.verify().map(|_| ())
}

#[test]
fn a_register_table_that_names_badly_or_not_exactly_the_held_codes_is_corruption() {
    // One meter: BASE (16), HP (17), HC (18).
    let s: Series = series(3)
        .into_iter()
        .filter(|(_, c, _)| c.is_index() && c.code() <= 18)
        .collect();
    let bytes = build(&s, &all_names());
    let good: Vec<Entry<'_>> = vec![(16, b"BASE"), (17, b"HP"), (18, b"HC")];
    assert!(open_and_verify(&with_table(&bytes, &good)).is_ok());
    let cases: Vec<(&str, Vec<Entry<'_>>)> = vec![
        ("a held code not named", vec![(16, b"BASE"), (18, b"HC")]),
        (
            "a named code not held",
            vec![(16, b"BASE"), (17, b"HP"), (18, b"HC"), (40, b"X")],
        ),
        ("lowercase", vec![(16, b"BASE"), (17, b"hp"), (18, b"HC")]),
        ("empty name", vec![(16, b"BASE"), (17, b""), (18, b"HC")]),
        (
            "17 bytes",
            vec![(16, b"BASE"), (17, b"ABCDEFGHIJKLMNOPQ"), (18, b"HC")],
        ),
        ("not UTF-8", vec![(16, b"BASE"), (17, b"\xff"), (18, b"HC")]),
        (
            "a name twice",
            vec![(16, b"BASE"), (17, b"HC"), (18, b"HC")],
        ),
        (
            "codes not ascending",
            vec![(17, b"HP"), (16, b"BASE"), (18, b"HC")],
        ),
        (
            "a named channel code",
            vec![(3, b"E"), (16, b"BASE"), (17, b"HP"), (18, b"HC")],
        ),
        ("no entry", vec![]),
        (
            "a name running past the table",
            vec![(16, b"BASE"), (17, b"HP"), (18, b"HC")],
        ),
    ];
    for (what, entries) in cases {
        let mut damaged = with_table(&bytes, &entries);
        if what == "a name running past the table" {
            // The last name's length byte says one more byte than the table holds.
            let (at, len) = table_at(&damaged);
            damaged[at + len - 3] += 1;
            let crc = crc32fast::hash(&damaged[at + 4..at + len]);
            damaged[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        }
        let err = open_and_verify(&damaged).expect_err(what);
        assert_eq!(err.kind(), ErrorKind::Corruption, "{what}: {err}");
    }
}

#[test]
fn a_v2_segment_holding_a_v3_channel_or_a_register_table_is_corruption() {
    let s: Series = series(2);
    let bytes = build(&s, &all_names());
    let mut v2 = bytes.clone();
    v2[8..10].copy_from_slice(&2u16.to_le_bytes());
    let crc = crc32fast::hash(&v2[..HEADER_LEN - 4]);
    v2[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    let err = open_and_verify(&v2).expect_err("v2 has no register table");
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
    // Without its table (and so without its index series' names) a v2 reader still refuses
    // the daily energy group.
    let daily_only: Series = s
        .into_iter()
        .filter(|(_, c, _)| *c == Channel::DAILY_ENERGY)
        .collect();
    let mut v2 = build(&daily_only, &[]);
    v2[8..10].copy_from_slice(&2u16.to_le_bytes());
    let crc = crc32fast::hash(&v2[..HEADER_LEN - 4]);
    v2[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    let err = open_and_verify(&v2).expect_err("v2 knows codes 0..=2");
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
}

#[test]
fn every_flipped_bit_of_a_v3_segment_with_indexes_is_corruption() {
    let s: Series = series(2)
        .into_iter()
        .map(|(m, c, p)| (m, c, p[..4].to_vec()))
        .collect();
    let bytes = build(&s, &all_names());
    let mut copy = bytes.clone();
    for bit in 0..bytes.len() * 8 {
        let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
        copy[byte] ^= mask;
        let err = open_and_verify(&copy).expect_err("a flipped bit is detected");
        assert_eq!(err.kind(), ErrorKind::Corruption, "bit {bit}: {err}");
        copy[byte] ^= mask;
    }
}

#[test]
fn every_prefix_of_a_v3_segment_with_indexes_is_truncated() {
    let bytes = build(&series(4), &all_names());
    for n in 0..bytes.len() {
        let err = Segment::open(&bytes[..n]).expect_err("a prefix is no segment");
        assert_eq!(err.kind(), ErrorKind::Truncated, "prefix {n}: {err}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    #[test]
    fn any_set_of_series_of_any_v3_channel_round_trips(
        keys in proptest::collection::btree_set(
            ("[0-9a-z]{1,20}", proptest::sample::select(vec![0u8, 1, 2, 3, 16, 17, 40, 255])),
            1..12,
        ),
        days in 1..31i64,
    ) {
        let names: Vec<(Channel, String)> = [16u8, 17, 40, 255]
            .iter()
            .map(|&c| (Channel::from_u8(c, 3).expect("code"), format!("R{c}")))
            .collect();
        let names: Vec<(Channel, &str)> = names.iter().map(|(c, n)| (*c, n.as_str())).collect();
        let s: Series = keys
            .iter()
            .enumerate()
            .map(|(i, (m, c))| {
                let channel = Channel::from_u8(*c, 3).expect("code");
                (m.clone(), channel, daily(i as i32, days, channel.is_index()))
            })
            .collect();
        let bytes = build(&s, &names);
        let segment = Segment::open(&bytes).expect("opens");
        proptest::prop_assert_eq!(segment.verify().expect("verifies").series, s.len() as u64);
        let held: Vec<(Channel, &str)> = names
            .iter()
            .filter(|(c, _)| s.iter().any(|(_, k, _)| k == c))
            .copied()
            .collect();
        proptest::prop_assert_eq!(segment.registers(), held);
        let mut decoded = DecodedBlock::default();
        for (meter, channel, points) in &s {
            let blocks = segment.blocks(meter, *channel).expect("looks up");
            proptest::prop_assert_eq!(blocks.len(), 1);
            blocks[0].decode_into(&mut decoded).expect("decodes");
            proptest::prop_assert!(decoded.points().eq(points.iter().copied()));
        }
    }
}

#[test]
fn an_index_block_codes_its_values_from_its_minimum_not_from_zero() {
    let index_points = daily(7, 31, true);
    let increments: Vec<Point> = index_points
        .iter()
        .scan(index_points[0].value, |prev, p| {
            let d = p.value - *prev;
            *prev = p.value;
            Some(Point { value: d, ..*p })
        })
        .collect();
    let len_of = |channel: Channel, points: &[Point]| {
        let s: Series = vec![("m".into(), channel, points.to_vec())];
        let bytes = build(&s, &all_names());
        let segment = Segment::open(&bytes).expect("opens");
        let b = segment.blocks("m", channel).expect("looks up")[0];
        let mut decoded = DecodedBlock::default();
        b.decode_into(&mut decoded).expect("decodes");
        assert!(decoded.points().eq(points.iter().copied()));
        b.encoded().len()
    };
    let index = len_of(index(0), &index_points);
    let deltas = len_of(Channel::DAILY_ENERGY, &increments);
    let unshifted = len_of(Channel::DAILY_ENERGY, &index_points);
    eprintln!("index {index}, increments {deltas}, the index coded from 0: {unshifted}");
    // The first point costs nothing from the block's minimum, instead of the whole index.
    assert!(index + 2 < unshifted, "{index} vs {unshifted} coded from 0");
}

#[test]
fn index_increments_of_extreme_values_wrap_and_decode_exactly() {
    let values = [
        i32::MAX,
        i32::MIN,
        0,
        -1,
        i32::MAX,
        7,
        i32::MIN + 1,
        i32::MAX - 1,
    ];
    let points: Vec<Point> = values
        .iter()
        .enumerate()
        .map(|(d, &value)| Point {
            ts_utc: OCTOBER_2024_PARIS + d as i64 * 86_400,
            value,
            step_min: 1440,
            quality: Quality::Measured,
        })
        .collect();
    let s: Series = vec![("m".into(), index(3), points.clone())];
    let bytes = build(&s, &all_names());
    let segment = Segment::open(&bytes).expect("opens");
    segment.verify().expect("verifies");
    let b = segment.blocks("m", index(3)).expect("looks up")[0];
    assert_eq!(b.summary, block::summarize(&points));
    let mut decoded = DecodedBlock::default();
    b.decode_into(&mut decoded).expect("decodes");
    assert!(decoded.points().eq(points.iter().copied()));
}

//! Golden segment files of every format version (`testdata/v<N>/`), written once and decoded by
//! every build.
//!
//! `COURBE_WRITE_GOLDEN=1 cargo test -p storage-format --test tests golden` writes those of the
//! version this crate writes (only needed when a new format version adds files; older versions'
//! files are never rewritten); every other run reads them and checks each point against
//! [`golden_series`], which is frozen: changing it breaks the files it describes.

use std::path::PathBuf;

use storage_format::block::DecodedBlock;
use storage_format::segment::{
    Segment, SegmentBuilder, SegmentMeta, SegmentStats, END_MAGIC, FENCE_LEN, FOOTER_LEN,
    FORMAT_VERSION, HEADER_LEN, MAGIC, NEWEST_READABLE_VERSION, PAGE_HEADER_LEN,
};
use storage_format::{Channel, ErrorKind, Point, Quality};

/// Where the golden files of `version` live.
fn dir(version: u16) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("testdata/v{version}"))
}

/// SplitMix64, frozen with the files.
struct Mix(u64);

impl Mix {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

const MARCH_2024: i64 = 1_709_251_200;

fn point(ts_utc: i64, value: i32, step_min: u16, quality: Quality) -> Point {
    Point {
        ts_utc,
        value,
        step_min,
        quality,
    }
}

/// A curve at `step_min` from `start` for `n` intervals: base load, evening peak, noise, gaps,
/// estimated and corrected runs, and a step change at `change` (to 10 minutes) when given.
fn curve(seed: u64, start: i64, step_min: u16, n: u32, change: Option<u32>) -> Vec<Point> {
    let mut rng = Mix(seed);
    let base = 150 + rng.next(300) as i32;
    let (mut ts, mut step) = (start, step_min);
    let mut points = Vec::new();
    for i in 0..n {
        if Some(i) == change {
            step = 10;
        }
        let hour = (ts.rem_euclid(86_400) / 3600) as i32;
        let mut value = base + rng.next(9) as i32;
        if (17..22).contains(&hour) {
            value += 700 + rng.next(900) as i32;
        }
        if rng.next(97) == 0 {
            value += 6_000;
        }
        let quality = match (i / 40) % 23 {
            5 => Quality::Estimated,
            11 if i % 3 == 0 => Quality::Corrected,
            _ => Quality::Measured,
        };
        if rng.next(53) != 0 {
            points.push(point(ts, value, step, quality));
        }
        ts += 60 * i64::from(step);
    }
    points
}

/// What the golden files hold, frozen: (meter, channel, blocks).
fn golden_series() -> Vec<(String, Channel, Vec<Vec<Point>>)> {
    let mut series = Vec::new();
    for m in 0..12u64 {
        let meter = format!("{:014}", 9_111_642_617_347 + m * 31_415_926_537);
        let step = [30u16, 30, 15, 60, 5, 30][m as usize % 6];
        let n = 31 * 1440 / u32::from(step);
        let change = (m == 3).then_some(n / 2);
        series.push((
            meter.clone(),
            Channel::CONSUMPTION,
            vec![curve(m, MARCH_2024, step, n, change)],
        ));
        if m % 4 == 1 {
            let production: Vec<Point> = curve(m + 100, MARCH_2024, step, n, None)
                .into_iter()
                .map(|p| {
                    let hour = p.ts_utc.rem_euclid(86_400) / 3600;
                    Point {
                        value: if (7..19).contains(&hour) { p.value } else { 0 },
                        ..p
                    }
                })
                .collect();
            series.push((meter.clone(), Channel::PRODUCTION, vec![production]));
        }
        let mut rng = Mix(m + 1000);
        let max_power: Vec<Point> = (0..31)
            .map(|d| {
                point(
                    MARCH_2024 + d * 86_400 + rng.next(86_400) as i64,
                    3_000 + rng.next(9_000) as i32,
                    1440,
                    Quality::Measured,
                )
            })
            .collect();
        series.push((meter, Channel::MAX_POWER, vec![max_power]));
    }
    // Edges: extreme values and timestamps, one-point blocks, a series of several blocks.
    let extremes = vec![
        point(i64::MIN / 2, i32::MIN, 1, Quality::Corrected),
        point(0, i32::MAX, 1440, Quality::Estimated),
        point(1, 0, 5, Quality::Measured),
        point(i64::MAX / 2, -1, 30, Quality::Measured),
    ];
    series.push(("edge.meter-1".into(), Channel::CONSUMPTION, vec![extremes]));
    let month = curve(77, MARCH_2024, 30, 1488, None);
    let blocks: Vec<Vec<Point>> = month.chunks(400).map(<[Point]>::to_vec).collect();
    series.push(("edge.meter-2".into(), Channel::CONSUMPTION, blocks));
    series.push((
        "edge.meter-2".into(),
        Channel::MAX_POWER,
        vec![vec![point(MARCH_2024 + 7, 42, 1440, Quality::Measured)]],
    ));
    series.sort_by(|a, b| (a.0.as_bytes(), a.1).cmp(&(b.0.as_bytes(), b.1)));
    series
}

/// Register names of the index channels of [`daily_series`], frozen with the v3 files: the
/// supplier's BASE, HP/HC and Tempo registers, a distributor's class, and a name as data.
const DAILY_REGISTERS: [(u8, &str); 11] = [
    (16, "BASE"),
    (17, "HP"),
    (18, "HC"),
    (19, "HPJB"),
    (20, "HCJB"),
    (21, "HPJW"),
    (22, "HCJW"),
    (23, "HPJR"),
    (24, "HCJR"),
    (25, "DIST_HPH"),
    (41, "EASF01"),
];

/// 2024-10-01T00:00:00+02:00 (Paris).
const OCTOBER_2024_PARIS: i64 = 1_727_733_600;

/// Paris midnights of October 2024: CEST (UTC+2) up to the 27th, the 25-hour day, then CET.
fn october_midnights() -> Vec<i64> {
    (0..31)
        .map(|d| OCTOBER_2024_PARIS + d * 86_400 + if d >= 27 { 3600 } else { 0 })
        .collect()
}

/// What the v3 daily golden file holds, frozen: 60 meters of October 2024 with daily energy
/// and the cumulative indexes of their tariff option (BASE: 1 register; HP/HC: 2; Tempo: 6;
/// some with a distributor's class or a register named as data), a few with only indexes or
/// only daily energy, estimated days, and an index at `i32::MAX`.
fn daily_series() -> Vec<(String, Channel, Vec<Vec<Point>>)> {
    let days = october_midnights();
    let mut series = Vec::new();
    for m in 0..60u64 {
        let meter = format!("{:014}", 25_000_000_000_000 + m * 2_718_281_828);
        let mut rng = Mix(m + 3000);
        let daily: Vec<i64> = days
            .iter()
            .map(|_| 3_000 + rng.next(25_000) as i64)
            .collect();
        let quality = |d: usize| {
            if (m + d as u64) % 29 == 0 {
                Quality::Estimated
            } else {
                Quality::Measured
            }
        };
        if m % 7 != 3 {
            let points = days
                .iter()
                .zip(&daily)
                .enumerate()
                .map(|(d, (&ts, &wh))| point(ts, wh as i32, 1440, quality(d)))
                .collect();
            series.push((meter.clone(), Channel::DAILY_ENERGY, vec![points]));
        }
        if m % 11 == 5 {
            continue;
        }
        let codes: &[u8] = match m % 4 {
            0 => &[16],
            1 => &[17, 18],
            2 => &[19, 20, 21, 22, 23, 24],
            _ => &[25, 41],
        };
        for (k, &code) in codes.iter().enumerate() {
            // Each register takes a share of each day; its index is the running sum.
            let mut index = if m == 7 && k == 0 {
                i64::from(i32::MAX) - 1_000_000
            } else {
                10_000_000 + rng.next(40_000_000) as i64
            };
            let mut points = Vec::new();
            for (d, (&ts, &wh)) in days.iter().zip(&daily).enumerate() {
                points.push(point(ts, index as i32, 1440, quality(d)));
                let share =
                    wh / codes.len() as i64 + if k == 0 { wh % codes.len() as i64 } else { 0 };
                index = (index + share).min(i64::from(i32::MAX));
            }
            let channel = Channel::from_u8(code, 3).expect("an index code");
            series.push((meter.clone(), channel, vec![points]));
        }
    }
    series.sort_by(|a, b| (a.0.as_bytes(), a.1).cmp(&(b.0.as_bytes(), b.1)));
    series
}

fn build(series: &[(String, Channel, Vec<Vec<Point>>)], meta: SegmentMeta) -> Vec<u8> {
    let mut out = Vec::new();
    let mut builder = SegmentBuilder::new(meta, &mut out);
    for (code, name) in DAILY_REGISTERS {
        let channel = Channel::from_u8(code, 3).expect("an index code");
        builder.name_register(channel, name).expect("names");
    }
    for (meter, channel, blocks) in series {
        for points in blocks {
            builder
                .add_block(meter, *channel, points, &mut out)
                .expect("adds");
        }
    }
    builder.finish(&mut out).expect("finishes");
    out
}

const FLEET_META: SegmentMeta = SegmentMeta {
    partition: 650,
    seq: 123_456_789,
};
const EMPTY_META: SegmentMeta = SegmentMeta {
    partition: 0,
    seq: 1,
};

/// The golden file `name` of `version`; with `COURBE_WRITE_GOLDEN` set, first (re)written when
/// `version` is the one this crate writes (files of older versions are never rewritten).
fn golden(version: u16, name: &str, build_it: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    let path = dir(version).join(name);
    if std::env::var_os("COURBE_WRITE_GOLDEN").is_some() && version == FORMAT_VERSION {
        std::fs::create_dir_all(dir(version)).expect("creates the golden directory");
        std::fs::write(&path, build_it()).expect("writes a golden file");
    }
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// With `COURBE_WRITE_GOLDEN` set, also seeds the fuzz corpus from the golden data.
fn write_fuzz_seeds(expected: &[(String, Channel, Vec<Vec<Point>>)]) {
    if std::env::var_os("COURBE_WRITE_GOLDEN").is_none() {
        return;
    }
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let write = |target: &str, name: String, bytes: &[u8]| {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).expect("creates a corpus dir");
        std::fs::write(dir.join(name), bytes).expect("writes a seed");
    };
    for (i, (_, _, blocks)) in expected.iter().enumerate().step_by(3) {
        let mut bytes = Vec::new();
        storage_format::block::encode_into(&blocks[0], &mut bytes).expect("encodes");
        write(
            "block_decode",
            format!("v{FORMAT_VERSION}-golden-{i:02}.bin"),
            &bytes,
        );
    }
    // Blocks of generated households reach the trained codec and anchored timestamps.
    for (i, (_, _, blocks)) in household_series().iter().enumerate() {
        let mut bytes = Vec::new();
        storage_format::block::encode_into(&blocks[0], &mut bytes).expect("encodes");
        write(
            "block_decode",
            format!("v{FORMAT_VERSION}-household-{i:02}.bin"),
            &bytes,
        );
    }
    let small: Vec<_> = expected
        .iter()
        .skip(3)
        .take(4)
        .map(|(m, c, b)| (m.clone(), *c, vec![b[0][..b[0].len().min(60)].to_vec()]))
        .collect();
    write(
        "segment_decode",
        format!("v{FORMAT_VERSION}-small.seg"),
        &build(&small, FLEET_META),
    );
    write(
        "segment_decode",
        format!("v{FORMAT_VERSION}-empty.seg"),
        &build(&[], EMPTY_META),
    );
    let daily: Vec<_> = daily_series()
        .into_iter()
        .take(12)
        .map(|(m, c, b)| (m, c, vec![b[0][..b[0].len().min(10)].to_vec()]))
        .collect();
    let daily_segment = build(&daily, DAILY_META);
    write(
        "segment_decode",
        format!("v{FORMAT_VERSION}-daily.seg"),
        &daily_segment,
    );
    write(
        "segment_structure",
        format!("v{FORMAT_VERSION}-daily.seg"),
        &daily_segment,
    );
    for (i, seed) in [
        &b"\x00\x00\x00\x00\x00\x00\x00\x00"[..],
        &[7u8; 64][..],
        &[0x55u8; 300][..],
    ]
    .iter()
    .enumerate()
    {
        write("block_roundtrip", format!("seed-{i}.bin"), seed);
        write("segment_roundtrip", format!("seed-{i}.bin"), seed);
    }
}

/// Opens, verifies and decodes the fleet golden file of `version` against [`golden_series`].
fn check_fleet_golden(version: u16) {
    let expected = golden_series();
    let bytes = golden(version, "fleet.seg", || build(&expected, FLEET_META));
    let segment = Segment::open(&bytes).expect("opens");
    assert_eq!(segment.meta(), FLEET_META);
    assert_eq!(segment.version(), version);
    let stats = segment.verify().expect("verifies");
    let blocks: usize = expected.iter().map(|s| s.2.len()).sum();
    let points: usize = expected.iter().flat_map(|s| &s.2).map(Vec::len).sum();
    assert_eq!(
        stats,
        SegmentStats {
            series: expected.len() as u64,
            blocks: blocks as u64,
            points: points as u64,
            bytes: bytes.len() as u64
        }
    );
    let mut decoded = DecodedBlock::default();
    let scanned: Vec<_> = segment.series().collect::<Result<_, _>>().expect("scans");
    assert_eq!(scanned.len(), expected.len());
    for ((meter, channel, blocks), s) in expected.iter().zip(&scanned) {
        assert_eq!((s.meter, s.channel), (meter.as_str(), *channel));
        let found = segment.blocks(meter, *channel).expect("looks up");
        assert_eq!(found.len(), blocks.len());
        for (points, b) in blocks.iter().zip(&found) {
            assert_eq!(b.summary, storage_format::block::summarize(points));
            b.decode_into(&mut decoded).expect("decodes");
            assert!(
                decoded.points().eq(points.iter().copied()),
                "{meter} {channel:?}"
            );
        }
    }
}

#[test]
fn the_v1_fleet_golden_file_decodes_to_its_points() {
    check_fleet_golden(1);
}

#[test]
fn the_v2_fleet_golden_file_decodes_to_its_points() {
    check_fleet_golden(2);
}

#[test]
fn the_v3_fleet_golden_file_decodes_to_its_points_and_costs_what_v2_costs() {
    check_fleet_golden(3);
    // Curves and max_power only: a v3 file is the v2 file's size (its mask bytes and entries
    // are the same; the header's version and the crcs differ).
    let v2 = golden(2, "fleet.seg", || {
        unreachable!("v2 files are never rewritten")
    });
    let v3 = golden(3, "fleet.seg", || build(&golden_series(), FLEET_META));
    assert_eq!(v3.len(), v2.len());
}

#[test]
fn the_v4_fleet_golden_file_decodes_to_its_points_and_costs_what_v3_costs() {
    check_fleet_golden(4);
    let v3 = golden(3, "fleet.seg", || {
        unreachable!("v3 files are never rewritten")
    });
    let v4 = golden(4, "fleet.seg", || build(&golden_series(), FLEET_META));
    assert_eq!(v4.len(), v3.len());
}

#[test]
fn the_v5_fleet_golden_file_decodes_to_its_points_and_costs_what_v4_costs_and_its_rollups() {
    write_fuzz_seeds(&golden_series());
    check_fleet_golden(5);
    let v4 = golden(4, "fleet.seg", || {
        unreachable!("v4 files are never rewritten")
    });
    let v5 = golden(5, "fleet.seg", || build(&golden_series(), FLEET_META));
    let segment = Segment::open(&v5).expect("opens");
    let rollups = segment.rollups().expect("reads").expect("v5 has rollups");
    // Fewer series than a rollup needs: every channel held is listed, none kept.
    assert!(rollups.iter().all(|r| r.entries.is_none()));
    let listed = rollups.len();
    assert_eq!(v5.len(), v4.len() + 4 + 1 + 2 * listed + 4);
}

/// What the v5 rollup golden file holds, frozen: 150 meters over two Paris days of March 2024
/// at 30 minutes (gaps, a change to 10 minutes, non-measured points), and 3 production series.
fn rollup_series() -> Vec<(String, Channel, Vec<Vec<Point>>)> {
    let mut series = Vec::new();
    for i in 0..150u64 {
        let meter = format!("{:014}", 30_000_000_000_000 + i * 7919);
        let change = (i % 17 == 3).then_some(60);
        series.push((
            meter.clone(),
            Channel::CONSUMPTION,
            vec![curve(1_000 + i, MARCH_2024, 30, 96, change)],
        ));
        if i % 50 == 1 {
            series.push((
                meter,
                Channel::PRODUCTION,
                vec![curve(2_000 + i, MARCH_2024, 30, 96, None)],
            ));
        }
    }
    series
}

/// The fleet sums of `series` on `channel` by instant: (ts, longest step, meters, total).
fn naive_sums(
    series: &[(String, Channel, Vec<Vec<Point>>)],
    channel: Channel,
) -> Vec<(i64, u16, u32, i64)> {
    let mut sums = std::collections::BTreeMap::<i64, (u16, u32, i64)>::new();
    for p in series
        .iter()
        .filter(|s| s.1 == channel)
        .flat_map(|s| s.2.iter().flatten())
    {
        let e = sums.entry(p.ts_utc).or_default();
        e.0 = e.0.max(p.step_min);
        e.1 += 1;
        e.2 += i64::from(p.value);
    }
    sums.into_iter()
        .map(|(t, (s, m, v))| (t, s, m, v))
        .collect()
}

#[test]
fn the_v5_rollup_golden_file_holds_the_sums_of_its_points_at_each_instant() {
    let expected = rollup_series();
    let bytes = golden(5, "rollup.seg", || build(&expected, FLEET_META));
    let segment = Segment::open(&bytes).expect("opens");
    assert_eq!(segment.version(), 5);
    segment.verify().expect("verifies");
    let rollups = segment.rollups().expect("reads").expect("v5 has rollups");
    assert_eq!(
        rollups.iter().map(|r| r.channel).collect::<Vec<_>>(),
        [Channel::CONSUMPTION, Channel::PRODUCTION]
    );
    let kept: Vec<_> = rollups[0]
        .entries
        .as_ref()
        .expect("150 series: kept")
        .iter()
        .map(|e| (e.ts_utc, e.step_min, e.meters, e.total))
        .collect();
    assert_eq!(kept, naive_sums(&expected, Channel::CONSUMPTION));
    assert_eq!(rollups[1].entries, None, "3 series: not kept");
    write_rollup_seed(&bytes);
}

#[test]
fn a_rollup_that_disagrees_with_the_blocks_is_corruption_and_a_damaged_one_never_opens() {
    let expected = rollup_series();
    let bytes = golden(5, "rollup.seg", || build(&expected, FLEET_META));
    let len_at = bytes.len() - FOOTER_LEN - 4;
    let len = u32::from_le_bytes(bytes[len_at..len_at + 4].try_into().unwrap()) as usize;
    let start = len_at - len;
    // Any flipped bit of the section: its crc refuses it at open.
    for bit in (0..len * 8).step_by(7) {
        let mut bad = bytes.clone();
        bad[start + bit / 8] ^= 1 << (bit % 8);
        let err = Segment::open(&bad).expect_err("a damaged rollup never opens");
        assert_eq!(err.kind(), ErrorKind::Corruption, "bit {bit}: {err}");
    }
    // A well-formed rollup with a wrong total (crc recomputed): `verify` compares it with the
    // blocks.
    let mut body = bytes[start + 4..len_at].to_vec();
    // The last byte is the last total's one-byte varint: ±1, still well-formed.
    let last = body.len() - 1;
    body[last] ^= 0x02;
    let mut forged = bytes.clone();
    forged[start + 4..len_at].copy_from_slice(&body);
    forged[start..start + 4].copy_from_slice(&crc32fast::hash(&body).to_le_bytes());
    let segment = Segment::open(&forged).expect("a well-formed section opens");
    let err = segment.verify().expect_err("verify compares the sums");
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
}

#[test]
fn the_v5_empty_golden_file_opens_empty() {
    let bytes = golden(5, "empty.seg", || build(&[], EMPTY_META));
    assert_eq!(bytes.len(), HEADER_LEN + 4 + FOOTER_LEN);
    let segment = Segment::open(&bytes).expect("opens");
    assert_eq!(segment.version(), 5);
    assert_eq!(segment.rollups().expect("reads"), Some(Vec::new()));
    assert_eq!(segment.verify().expect("verifies").series, 0);
}

/// With `COURBE_WRITE_GOLDEN` set, seeds the fuzz corpus with a segment holding a kept rollup.
fn write_rollup_seed(bytes: &[u8]) {
    if std::env::var_os("COURBE_WRITE_GOLDEN").is_none() {
        return;
    }
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for target in ["segment_decode", "segment_structure"] {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).expect("creates a corpus dir");
        std::fs::write(dir.join("v5-rollup.seg"), bytes).expect("writes a seed");
    }
}

const DAILY_META: SegmentMeta = SegmentMeta {
    partition: 657,
    seq: 42,
};

#[test]
fn the_v3_daily_golden_file_decodes_to_its_points_and_names_its_registers() {
    let expected = daily_series();
    let bytes = golden(3, "daily.seg", || build(&expected, DAILY_META));
    let segment = Segment::open(&bytes).expect("opens");
    assert_eq!((segment.meta(), segment.version()), (DAILY_META, 3));
    let stats = segment.verify().expect("verifies");
    assert_eq!(stats.series, expected.len() as u64);
    assert!(segment.page_count() > 1, "{} pages", segment.page_count());
    let named: Vec<(u8, &str)> = segment
        .registers()
        .into_iter()
        .map(|(c, n)| (c.code(), n))
        .collect();
    assert_eq!(named, DAILY_REGISTERS);
    assert_eq!(
        segment.register_name(Channel::index(9).expect("an index")),
        Some("DIST_HPH")
    );
    assert_eq!(
        segment.register_name(Channel::index(10).expect("an index")),
        None
    );
    let mut decoded = DecodedBlock::default();
    let scanned: Vec<_> = segment.series().collect::<Result<_, _>>().expect("scans");
    assert_eq!(scanned.len(), expected.len());
    for ((meter, channel, blocks), s) in expected.iter().zip(&scanned) {
        assert_eq!((s.meter, s.channel), (meter.as_str(), *channel));
        let found = segment.blocks(meter, *channel).expect("looks up");
        assert_eq!(found.len(), blocks.len());
        for (points, b) in blocks.iter().zip(&found) {
            assert_eq!(b.summary, storage_format::block::summarize(points));
            b.decode_into(&mut decoded).expect("decodes");
            assert!(
                decoded.points().eq(points.iter().copied()),
                "{meter} {channel:?}"
            );
        }
    }
}

#[test]
fn the_v3_empty_golden_file_opens_empty() {
    let bytes = golden(3, "empty.seg", || build(&[], EMPTY_META));
    assert_eq!(bytes.len(), HEADER_LEN + FOOTER_LEN);
    let segment = Segment::open(&bytes).expect("opens");
    assert_eq!(segment.version(), 3);
    assert!(segment.registers().is_empty());
    assert_eq!(segment.verify().expect("verifies").series, 0);
}

/// What the v4 price golden file holds, frozen: May 2024 spot prices of two market areas
/// (`spot-DE` hourly, `spot-FR` at 15 minutes, centi-EUR/MWh, negative at some middays) beside
/// one meter's half-hourly curve.
fn price_series() -> Vec<(String, Channel, Vec<Vec<Point>>)> {
    const MAY_2024: i64 = 1_714_514_400; // 2024-05-01T00:00+02:00
    let prices = |seed: u64, step_min: u16| {
        let mut rng = Mix(seed);
        let n = 31 * 24 * 60 / i64::from(step_min);
        (0..n)
            .map(|i| {
                let ts = MAY_2024 + i * 60 * i64::from(step_min);
                let hour = ((ts + 7200).rem_euclid(86_400) / 3600) as i32;
                let base = match hour {
                    0..=5 => 6_000,
                    11..=15 if i % 7 < 3 => -2_500,
                    18..=20 => 14_000,
                    _ => 9_000,
                };
                point(
                    ts,
                    base + rng.next(1_500) as i32 - 750,
                    step_min,
                    Quality::Measured,
                )
            })
            .collect::<Vec<_>>()
    };
    vec![
        (
            "09111642617347".into(),
            Channel::CONSUMPTION,
            vec![curve(41, MAY_2024, 30, 31 * 48, None)],
        ),
        ("spot-DE".into(), Channel::PRICE, vec![prices(42, 60)]),
        ("spot-FR".into(), Channel::PRICE, vec![prices(43, 15)]),
    ]
}

const PRICE_META: SegmentMeta = SegmentMeta {
    partition: 652,
    seq: 7,
};

#[test]
fn the_v4_price_golden_file_decodes_to_its_signed_prices() {
    let expected = price_series();
    write_price_seeds(&expected);
    let bytes = golden(4, "price.seg", || build(&expected, PRICE_META));
    let segment = Segment::open(&bytes).expect("opens");
    assert_eq!((segment.meta(), segment.version()), (PRICE_META, 4));
    assert_eq!(segment.verify().expect("verifies").series, 3);
    let mut decoded = DecodedBlock::default();
    for (meter, channel, blocks) in &expected {
        let found = segment.blocks(meter, *channel).expect("looks up");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].summary,
            storage_format::block::summarize(&blocks[0])
        );
        found[0].decode_into(&mut decoded).expect("decodes");
        assert!(decoded.points().eq(blocks[0].iter().copied()), "{meter}");
    }
    let fr = segment.blocks("spot-FR", Channel::PRICE).expect("looks up");
    assert!(fr[0].summary.min_value < 0, "{:?}", fr[0].summary);
}

#[test]
fn a_price_series_in_a_file_labelled_v3_is_corruption() {
    let bytes = golden(4, "price.seg", || build(&price_series(), PRICE_META));
    let mut v3 = bytes.clone();
    v3[8..10].copy_from_slice(&3u16.to_le_bytes());
    let v3 = with_header_crc(v3);
    let segment = Segment::open(&v3).expect("the header and footer are v3's");
    let err = segment.verify().expect_err("channel 4 is reserved in v3");
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
    let err = segment
        .blocks("spot-FR", Channel::PRICE)
        .expect_err("a lookup reaches the mask bit too");
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
}

#[test]
fn the_v4_empty_golden_file_opens_empty() {
    let bytes = golden(4, "empty.seg", || build(&[], EMPTY_META));
    assert_eq!(bytes.len(), HEADER_LEN + FOOTER_LEN);
    let segment = Segment::open(&bytes).expect("opens");
    assert_eq!(segment.version(), 4);
    assert_eq!(segment.verify().expect("verifies").series, 0);
}

/// With `COURBE_WRITE_GOLDEN` set, seeds the fuzz corpus with a price block and segment.
fn write_price_seeds(expected: &[(String, Channel, Vec<Vec<Point>>)]) {
    if std::env::var_os("COURBE_WRITE_GOLDEN").is_none() {
        return;
    }
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).expect("creates a corpus dir");
        std::fs::write(dir.join(name), bytes).expect("writes a seed");
    };
    let mut block = Vec::new();
    storage_format::block::encode_into(&expected[2].2[0][..400], &mut block).expect("encodes");
    write("block_decode", "v4-price.bin", &block);
    let small: Vec<_> = expected
        .iter()
        .map(|(m, c, b)| (m.clone(), *c, vec![b[0][..b[0].len().min(50)].to_vec()]))
        .collect();
    let segment = build(&small, PRICE_META);
    write("segment_decode", "v4-price.seg", &segment);
    write("segment_structure", "v4-price.seg", &segment);
}

/// Two generated households over January 2024 (consumption, production, `max_power`), one block
/// per series: they use what v2 added to blocks (value codec 2, timestamp mode 3), which the
/// synthetic [`golden_series`] may not reach.
fn household_series() -> Vec<(String, Channel, Vec<Vec<Point>>)> {
    let fleet = courbe_workload::Fleet::new(courbe_workload::FleetConfig {
        meters: 40,
        days: 31,
        seed: 7,
        ..courbe_workload::FleetConfig::default()
    });
    let points = |readings: &[courbe_workload::Reading]| -> Vec<Point> {
        readings
            .iter()
            .map(|r| {
                point(
                    r.ts_utc,
                    r.value,
                    r.step_min,
                    Quality::from_u8(r.quality).unwrap(),
                )
            })
            .collect()
    };
    let mut series = Vec::new();
    let solar = |want: bool| (0..40).find(|&i| (fleet.household(i).solar_peak_w > 0) == want);
    let mut meters: Vec<_> = [solar(false), solar(true)]
        .iter()
        .map(|i| fleet.meter(i.expect("40 meters hold both kinds")))
        .collect();
    meters.sort_by(|a, b| a.meter_id.cmp(&b.meter_id));
    for m in meters {
        for (channel, readings) in [
            (Channel::CONSUMPTION, &m.consumption),
            (Channel::PRODUCTION, &m.production),
            (Channel::MAX_POWER, &m.max_power),
        ] {
            if !readings.is_empty() {
                series.push((m.meter_id.clone(), channel, vec![points(readings)]));
            }
        }
    }
    series
}

/// crc32 of the decoded points of `testdata/v2/households.seg` (ts, value, step, quality of each
/// point, little-endian, in index order), pinned when the file was written.
const HOUSEHOLDS_DIGEST: u32 = 0x8423_A971;

#[test]
fn the_v2_households_golden_file_decodes_to_its_pinned_points() {
    let bytes = golden(2, "households.seg", || {
        build(&household_series(), FLEET_META)
    });
    let segment = Segment::open(&bytes).expect("opens");
    assert_eq!(segment.version(), 2);
    let stats = segment.verify().expect("verifies");
    assert_eq!((stats.series, stats.blocks), (5, 5));
    let mut digest = crc32fast::Hasher::new();
    let mut decoded = DecodedBlock::default();
    for s in segment.series() {
        for b in s.expect("scans").blocks {
            b.decode_into(&mut decoded).expect("decodes");
            for p in decoded.points() {
                digest.update(&p.ts_utc.to_le_bytes());
                digest.update(&p.value.to_le_bytes());
                digest.update(&p.step_min.to_le_bytes());
                digest.update(&[p.quality as u8]);
            }
        }
    }
    assert_eq!(digest.finalize(), HOUSEHOLDS_DIGEST);
}

#[test]
fn the_v1_empty_golden_file_opens_empty() {
    let bytes = golden(1, "empty.seg", || build(&[], EMPTY_META));
    assert_eq!(bytes.len(), HEADER_LEN + FOOTER_LEN);
    let segment = Segment::open(&bytes).expect("opens");
    assert_eq!(segment.meta(), EMPTY_META);
    assert_eq!(segment.version(), 1);
    assert_eq!(segment.verify().expect("verifies").series, 0);
}

#[test]
fn the_v2_empty_golden_file_opens_empty() {
    let bytes = golden(2, "empty.seg", || build(&[], EMPTY_META));
    assert_eq!(bytes.len(), HEADER_LEN + FOOTER_LEN);
    let segment = Segment::open(&bytes).expect("opens");
    assert_eq!(segment.version(), 2);
    assert_eq!(segment.verify().expect("verifies").series, 0);
}

#[test]
fn the_sizes_the_spec_states_hold() {
    assert_eq!(HEADER_LEN, 32);
    assert_eq!(FOOTER_LEN, 64);
    assert_eq!(FENCE_LEN, 74);
    assert_eq!(PAGE_HEADER_LEN, 12);
    assert_eq!(storage_format::segment::PAGE_TARGET_LEN, 2048);
    assert_eq!(storage_format::block::MAX_POINTS, 65_536);
    assert_eq!(storage_format::block::FRAME_LEN, 128);
    assert_eq!(&MAGIC, b"\x89CRBSEG\x1a");
    assert_eq!(&END_MAGIC, b"\x1aGESBRC\x89");
    assert_eq!((FORMAT_VERSION, NEWEST_READABLE_VERSION), (5, 5));
    assert_eq!(storage_format::rollup::ROLLUP_MIN_SERIES, 128);
    // An empty segment is a header, the rollup length (0) and a footer; the header starts with
    // the magic and the version, the footer ends with the end magic.
    let bytes = build(&[], EMPTY_META);
    assert_eq!(bytes.len(), 100);
    assert_eq!(bytes[..8], MAGIC);
    assert_eq!(bytes[8..10], FORMAT_VERSION.to_le_bytes());
    assert_eq!(bytes[bytes.len() - 8..], END_MAGIC);
    // A one-series segment: header, block, one 12-byte page header plus its entry, one fence,
    // the rollups (crc, one channel held and not kept: 4 + 1 + 2 bytes) and their length,
    // footer.
    let series = vec![(
        "m".to_string(),
        Channel::CONSUMPTION,
        vec![vec![point(0, 5, 30, Quality::Measured)]],
    )];
    let bytes = build(&series, EMPTY_META);
    let segment = Segment::open(&bytes).expect("opens");
    let block = segment.blocks("m", Channel::CONSUMPTION).expect("looks up")[0];
    assert_eq!(block.offset, HEADER_LEN as u64);
    let index_len =
        bytes.len() - HEADER_LEN - block.encoded().len() - FENCE_LEN - 7 - 4 - FOOTER_LEN;
    assert!(index_len > PAGE_HEADER_LEN, "page of {index_len} bytes");
}

fn with_header_crc(mut bytes: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&bytes[..HEADER_LEN - 4]);
    bytes[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn a_newer_version_is_a_compatibility_error_and_version_zero_is_corruption() {
    let bytes = build(&[], EMPTY_META);
    let mut newer = bytes.clone();
    newer[8..10].copy_from_slice(&(NEWEST_READABLE_VERSION + 1).to_le_bytes());
    let err = Segment::open(&with_header_crc(newer)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Compatibility);
    let mut zero = bytes;
    zero[8..10].copy_from_slice(&0u16.to_le_bytes());
    let err = Segment::open(&with_header_crc(zero)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption);
}

//! Block round trips: every point comes back exactly, and the summary matches the points.

use proptest::prelude::*;
use storage_format::block::{self, DecodedBlock, MAX_POINTS};
use storage_format::{ErrorKind, Point, Quality, STEP_MIN_MAX};

use crate::util::{decode, encode, household_month, JAN_2024};

/// One stretch of a series: a step, a gap before it, a value shape.
#[derive(Clone, Debug)]
pub(crate) struct Stretch {
    step_min: u16,
    gap_slots: u32,
    len: usize,
    shape: Shape,
}

#[derive(Clone, Debug)]
enum Shape {
    Flat(i32),
    Noise { base: i32, amplitude: u32 },
    Spikes { base: i32, spike: i32 },
    Extremes,
    Raw(Vec<i32>),
}

fn step() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => prop::sample::select(vec![5u16, 10, 15, 30, 60]),
        1 => 1..=STEP_MIN_MAX,
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        any::<i32>().prop_map(Shape::Flat),
        Just(Shape::Flat(0)),
        (0..10_000i32, 0..64u32).prop_map(|(base, amplitude)| Shape::Noise { base, amplitude }),
        (0..500i32, any::<i32>()).prop_map(|(base, spike)| Shape::Spikes { base, spike }),
        Just(Shape::Extremes),
        prop::collection::vec(any::<i32>(), 1..40).prop_map(Shape::Raw),
    ]
}

pub(crate) fn stretch() -> impl Strategy<Value = Stretch> {
    (
        step(),
        prop_oneof![3 => Just(0u32), 1 => 1..5_000u32],
        1..600usize,
        shape(),
    )
        .prop_map(|(step_min, gap_slots, len, shape)| Stretch {
            step_min,
            gap_slots,
            len,
            shape,
        })
}

fn quality() -> impl Strategy<Value = Vec<(usize, usize, Quality)>> {
    prop::collection::vec(
        (
            0..3_000usize,
            1..50usize,
            prop::sample::select(Quality::ALL.to_vec()),
        ),
        0..6,
    )
}

pub(crate) fn build(
    start: i64,
    stretches: &[Stretch],
    qualities: &[(usize, usize, Quality)],
) -> Vec<Point> {
    let mut points: Vec<Point> = Vec::new();
    let mut ts = start;
    for s in stretches {
        ts += i64::from(s.gap_slots) * 60 * i64::from(s.step_min);
        for i in 0..s.len {
            let value = match &s.shape {
                Shape::Flat(v) => *v,
                Shape::Noise { base, amplitude } => {
                    base + ((i as u32).wrapping_mul(2_654_435_761) % (amplitude + 1)) as i32
                }
                Shape::Spikes { base, spike } => {
                    if i % 37 == 5 {
                        *spike
                    } else {
                        *base
                    }
                }
                Shape::Extremes => [i32::MIN, i32::MAX, 0, -1, 1][i % 5],
                Shape::Raw(values) => values[i % values.len()],
            };
            points.push(Point {
                ts_utc: ts,
                value,
                step_min: s.step_min,
                quality: Quality::Measured,
            });
            ts += 60 * i64::from(s.step_min);
        }
    }
    points.truncate(MAX_POINTS);
    for &(start, len, q) in qualities {
        for p in points.iter_mut().skip(start).take(len) {
            p.quality = q;
        }
    }
    points
}

/// Irregular timestamps, as `max_power` points have: one a day at any second.
fn irregular() -> impl Strategy<Value = Vec<Point>> {
    (
        any::<i32>(),
        prop::collection::vec((1..200_000i64, 0..40_000i32), 1..70),
    )
        .prop_map(|(start, steps)| {
            let mut ts = i64::from(start);
            steps
                .into_iter()
                .map(|(delta, value)| {
                    ts += delta;
                    Point {
                        ts_utc: ts,
                        value,
                        step_min: 1440,
                        quality: Quality::Measured,
                    }
                })
                .collect()
        })
}

fn assert_round_trip(points: &[Point]) {
    let mut bytes = Vec::new();
    let summary = block::encode_into(points, &mut bytes).expect("encodes");
    assert_eq!(summary, block::summarize(points));
    let mut out = DecodedBlock::default();
    block::decode_from(&bytes, &mut out).expect("decodes");
    let back: Vec<Point> = out.points().collect();
    assert_eq!(back, points);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_mix_of_steps_gaps_and_values_round_trips(
        start in -4_000_000_000i64..4_000_000_000,
        stretches in prop::collection::vec(stretch(), 1..6),
        qualities in quality(),
    ) {
        assert_round_trip(&build(start, &stretches, &qualities));
    }

    #[test]
    fn irregular_timestamps_round_trip(points in irregular()) {
        assert_round_trip(&points);
    }

    #[test]
    fn arbitrary_bytes_decode_to_a_consistent_block_or_a_data_error(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        // Asserts the error kind, or the decoded block's invariants and its re-encoding.
        crate::fuzz_drivers::block_decode(&bytes);
    }
}

#[test]
fn a_household_month_round_trips_at_every_common_step() {
    for step in [5u16, 10, 15, 30, 60] {
        assert_round_trip(&household_month(7, JAN_2024, step, 31));
    }
}

#[test]
fn extreme_timestamps_and_values_round_trip() {
    let points = [
        Point {
            ts_utc: i64::MIN,
            value: i32::MIN,
            step_min: 1,
            quality: Quality::Corrected,
        },
        Point {
            ts_utc: 0,
            value: i32::MAX,
            step_min: STEP_MIN_MAX,
            quality: Quality::Estimated,
        },
        Point {
            ts_utc: i64::MAX,
            value: 0,
            step_min: 1440,
            quality: Quality::Measured,
        },
    ];
    assert_round_trip(&points);
}

#[test]
fn a_block_of_max_points_round_trips_and_one_more_is_refused() {
    let points: Vec<Point> = (0..MAX_POINTS as i64)
        .map(|i| Point {
            ts_utc: i * 60,
            value: (i % 7) as i32,
            step_min: 1,
            quality: Quality::Measured,
        })
        .collect();
    assert_round_trip(&points);
    let mut more = points.clone();
    more.push(Point {
        ts_utc: MAX_POINTS as i64 * 60,
        ..points[0]
    });
    let err = block::encode_into(&more, &mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn invalid_blocks_are_refused_before_anything_is_written() {
    let p = Point {
        ts_utc: 0,
        value: 1,
        step_min: 30,
        quality: Quality::Measured,
    };
    let cases: [Vec<Point>; 4] = [
        vec![],
        vec![p, p],
        vec![Point { step_min: 0, ..p }],
        vec![Point {
            step_min: STEP_MIN_MAX + 1,
            ..p
        }],
    ];
    for points in cases {
        let mut out = vec![9u8];
        let err = block::encode_into(&points, &mut out).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{points:?}");
        assert_eq!(out, [9u8]);
    }
}

#[test]
fn every_truncated_block_is_an_error_never_a_panic() {
    let bytes = encode(&household_month(3, JAN_2024, 30, 31));
    for len in 0..bytes.len() {
        let mut out = DecodedBlock::default();
        let err = block::decode_from(&bytes[..len], &mut out).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Truncated | ErrorKind::Corruption),
            "prefix {len}: {err}"
        );
    }
    assert_eq!(
        decode(&bytes).len(),
        household_month(3, JAN_2024, 30, 31).len()
    );
}

#[test]
fn daily_maxima_code_their_times_against_the_grid_of_the_first_point() {
    // One maximum a day at an evening second, as `max_power` has: anchored to the first point's
    // grid, each is a time-of-day offset (mode 3), not a difference of two of them.
    let mut rng = crate::util::Rng::new(5);
    let points: Vec<Point> = (0..31)
        .map(|d| Point {
            ts_utc: JAN_2024 + d * 86_400 + 64_800 + rng.below(7_200) as i64,
            value: 3_000 + rng.below(6_000) as i32,
            step_min: 1440,
            quality: Quality::Measured,
        })
        .collect();
    let bytes = encode(&points);
    // count (1), first_ts (5), one step run (1 + 2 + 1), then the timestamp mode.
    assert_eq!(bytes[10], 3, "timestamp mode");
    assert_eq!(decode(&bytes), points);
}

#[test]
fn gaps_of_whole_steps_cost_a_byte_less_each_as_step_exceptions() {
    // A curve with missing points: each gap is one exception whose deviation is whole steps
    // (mode 4: 1 byte for up to 31 missing slots, against 2–3 in seconds in mode 0).
    let month = household_month(3, JAN_2024, 30, 31);
    let gaps = month
        .windows(2)
        .filter(|w| w[1].ts_utc - w[0].ts_utc != 1800)
        .count();
    assert!(gaps > 0, "the month has gaps");
    let bytes = encode(&month);
    // count (2), first_ts (5), one step run (1 + 1 + 2), then the timestamp mode.
    assert_eq!(bytes[2 + 5 + 4], 4, "timestamp mode");
    assert_eq!(decode(&bytes), month);
    // A deviation off the step grid is still exact (in seconds).
    let mut shifted = month.clone();
    shifted[100].ts_utc += 7;
    let bytes = encode(&shifted);
    assert_eq!(decode(&bytes), shifted);
    // Without gaps, the exception list is empty (mode 0, one byte).
    let regular: Vec<Point> = (0..1488)
        .map(|i| Point {
            ts_utc: JAN_2024 + i * 1800,
            ..month[0]
        })
        .collect();
    let bytes = encode(&regular);
    assert_eq!(
        bytes[2 + 5 + 4..2 + 5 + 4 + 2],
        [0, 0],
        "mode 0, no exception"
    );
}

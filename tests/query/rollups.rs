//! The fleet curve from the segments' rollups (format v5) equals the naive sum over every
//! meter's resolved points, through late data in the memtable, several segments of one month,
//! an erased meter, a `meters=` subset, a month boundary and the autumn DST change; and the
//! rollups are used where they are exact.

use courbe::engine::{Batch, Options, Store};
use courbe::query;
use courbe::source::SeriesSource;
use courbe::{Channel, Point, Quality};
use jiff::civil::date;
use jiff::tz::TimeZone;

use super::model::{midnight_utc, Model, Op};
use super::reference;
use crate::util::Rng;

/// More than `ROLLUP_MIN_SERIES` (128): their segments keep the sums.
const METERS: u32 = 140;

/// The fleet of `courbe-workload` over 2024-10-25 .. 2024-11-03 (Paris): the fall back on the
/// 27th and the October / November boundary.
fn fleet() -> (Vec<String>, Vec<Op>) {
    use courbe_workload::{Fleet, FleetConfig};
    let fleet = Fleet::new(FleetConfig {
        meters: METERS,
        start: date(2024, 10, 25),
        days: 9,
        seed: 11,
        step_min: 30,
        step_change_share: 0.05,
    });
    let mut ids = Vec::new();
    let mut ops = Vec::new();
    for i in 0..METERS {
        let m = fleet.meter(i);
        let rows: Vec<(String, Channel, Point)> = m
            .consumption
            .iter()
            .map(|r| {
                (
                    m.meter_id.clone(),
                    Channel::CONSUMPTION,
                    courbe::point_of(r),
                )
            })
            .collect();
        ops.push(Op::Batch(rows));
        ids.push(m.meter_id);
    }
    (ids, ops)
}

fn apply(store: &Store, op: &Op) {
    match op {
        Op::Batch(rows) => {
            let mut batch = Batch::new();
            for (meter, channel, p) in rows {
                batch.push(meter, *channel, *p).expect("valid point");
            }
            store.ingest(&batch).expect("ingest");
        }
        Op::Erase { meter, from, to } => {
            store.erase(meter, Some((*from, *to))).expect("erase");
        }
    }
}

/// The Paris days of the fleet, as `[from, to)`, and two windows across midnights.
fn windows() -> Vec<(i64, i64)> {
    let tz = TimeZone::get("Europe/Paris").unwrap();
    let days: Vec<i64> = (25..=31)
        .map(|d| date(2024, 10, d))
        .chain((1..=3).map(|d| date(2024, 11, d)))
        .map(|d| midnight_utc(&tz, d))
        .collect();
    let mut out: Vec<(i64, i64)> = days.windows(2).map(|w| (w[0], w[1])).collect();
    // Across the month boundary, and a window off the grid.
    out.push((days[6] - 3 * 3600, days[6] + 5 * 3600));
    out.push((days[2] + 17 * 60, days[3] + 23 * 60));
    out
}

/// Every window answers as the reference, for all meters and for a subset; returns how many
/// windows the snapshot answered from its rollups.
fn check(store: &Store, model: &Model, ids: &[String], what: &str) -> usize {
    let snapshot = store.snapshot();
    let src: &dyn SeriesSource = snapshot.as_ref();
    let all = model.meters(Channel::CONSUMPTION);
    let subset: Vec<String> = ids.iter().step_by(7).cloned().collect();
    let mut from_rollups = 0;
    for (from, to) in windows() {
        let want = reference::fleet_curve(model, Channel::CONSUMPTION, from, to, &all);
        assert!(!want.is_empty());
        let got = query::fleet_curve(src, Channel::CONSUMPTION, from, to, None).unwrap();
        assert_eq!(got, want, "{what}: [{from}, {to})");
        let want = reference::fleet_curve(model, Channel::CONSUMPTION, from, to, &subset);
        let got = query::fleet_curve(src, Channel::CONSUMPTION, from, to, Some(&subset)).unwrap();
        assert_eq!(got, want, "{what}: subset, [{from}, {to})");
        let sums = snapshot
            .fleet_sums_checked(Channel::CONSUMPTION, from, to)
            .unwrap();
        if let Some(sums) = sums {
            from_rollups += 1;
            let points: Vec<_> = sums
                .iter()
                .map(|s| query::FleetPoint {
                    ts_utc: s.ts_utc,
                    total: s.total,
                    meters: s.meters,
                })
                .collect();
            let all_want = reference::fleet_curve(model, Channel::CONSUMPTION, from, to, &all);
            assert_eq!(points, all_want, "{what}: rollups, [{from}, {to})");
        }
    }
    from_rollups
}

#[test]
fn the_fleet_curve_from_rollups_is_the_naive_sum_of_every_meter_through_late_data_and_erasure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), Options::default()).expect("store opens");
    let (ids, mut ops) = fleet();
    for op in &ops {
        apply(&store, op);
    }
    let windows = windows().len();
    let model = Model::resolve(&ops);
    // In the memtable only: every window is read meter by meter.
    assert_eq!(check(&store, &model, &ids, "memtable"), 0);
    // One segment per month, each keeping its sums: every window from the rollups.
    store.flush().expect("flush");
    assert_eq!(check(&store, &model, &ids, "flushed"), windows);

    // Late data in the memtable: a meter's corrections on the 29th at another step (the
    // newest covering reading wins in part), and a new 10-minute stretch the next day.
    let tz = TimeZone::get("Europe/Paris").unwrap();
    let d29 = midnight_utc(&tz, date(2024, 10, 29));
    let mut rng = Rng::new(5);
    let late: Vec<(String, Channel, Point)> = (0..30)
        .map(|i| {
            let p = Point {
                ts_utc: d29 + 8 * 3600 + i * 900 + 300,
                value: 100 + rng.below(3000) as i32,
                step_min: 15,
                quality: Quality::Corrected,
            };
            (ids[3].clone(), Channel::CONSUMPTION, p)
        })
        .chain((0..12).map(|i| {
            let p = Point {
                ts_utc: d29 + 86_400 + 20 * 3600 + i * 600,
                value: 4_000 + i as i32,
                step_min: 10,
                quality: Quality::Estimated,
            };
            (ids[9].clone(), Channel::CONSUMPTION, p)
        }))
        .collect();
    ops.push(Op::Batch(late));
    apply(&store, ops.last().unwrap());
    let model = Model::resolve(&ops);
    let used = check(&store, &model, &ids, "late data in the memtable");
    assert!(used > 0 && used < windows, "{used} windows from rollups");

    // The late data flushed: a second October segment holding two meters, no sums kept
    // there, so the days it meets are read meter by meter.
    store.flush().expect("flush");
    let used = check(&store, &model, &ids, "a small second segment");
    assert!(used > 0 && used < windows, "{used} windows from rollups");

    // A day re-sent for every meter and flushed: a second segment with sums, over the same
    // instants as the first (they overlap: read meter by meter); other days still from the
    // rollups.
    let d31 = midnight_utc(&tz, date(2024, 10, 31));
    let resent: Vec<(String, Channel, Point)> = ids
        .iter()
        .enumerate()
        .flat_map(|(k, id)| {
            (0..48).map(move |i| {
                let p = Point {
                    ts_utc: d31 + i * 1800,
                    value: 200 + (k as i32) + i as i32,
                    step_min: 30,
                    quality: Quality::Measured,
                };
                (id.clone(), Channel::CONSUMPTION, p)
            })
        })
        .collect();
    ops.push(Op::Batch(resent));
    apply(&store, ops.last().unwrap());
    store.flush().expect("flush");
    let model = Model::resolve(&ops);
    let used = check(&store, &model, &ids, "a re-sent day in its own segment");
    assert!(used > 0 && used < windows, "{used} windows from rollups");

    // Compaction merges each month into one segment: every window from the rollups again.
    store.compact().expect("compact");
    assert_eq!(check(&store, &model, &ids, "compacted"), windows);

    // An erased meter (its whole curve) and part of another: erasure rewrites the segments
    // with their sums.
    for op in [
        Op::Erase {
            meter: ids[0].clone(),
            from: d29 - 86_400 * 6,
            to: d29 + 86_400 * 7,
        },
        Op::Erase {
            meter: ids[1].clone(),
            from: d29,
            to: d29 + 86_400 * 3,
        },
    ] {
        ops.push(op);
        apply(&store, ops.last().unwrap());
    }
    let model = Model::resolve(&ops);
    let ids: Vec<String> = ids.into_iter().skip(1).collect();
    assert_eq!(check(&store, &model, &ids, "erased"), windows);

    // The next day arriving in the memtable: the days before it are still answered from the
    // rollups (a newer reading starting at `to` changes no point starting before it).
    let d3 = midnight_utc(&tz, date(2024, 11, 3));
    let next: Vec<(String, Channel, Point)> = ids
        .iter()
        .map(|id| {
            let p = Point {
                ts_utc: d3,
                value: 777,
                step_min: 60,
                quality: Quality::Measured,
            };
            (id.clone(), Channel::CONSUMPTION, p)
        })
        .collect();
    ops.push(Op::Batch(next));
    apply(&store, ops.last().unwrap());
    let model = Model::resolve(&ops);
    check(&store, &model, &ids, "the next day in the memtable");
    let snapshot = store.snapshot();
    let d2 = midnight_utc(&tz, date(2024, 11, 2));
    assert!(snapshot
        .fleet_sums_checked(Channel::CONSUMPTION, d2, d3)
        .unwrap()
        .is_some());
    assert!(snapshot
        .fleet_sums_checked(Channel::CONSUMPTION, d2, d3 + 1)
        .unwrap()
        .is_none());
}

/// Meters `range` of a generated fleet of `meters` over the same days as [`fleet`], one batch
/// each.
fn fleet_part(meters: u32, range: std::ops::Range<u32>, seed: u64) -> Vec<Op> {
    use courbe_workload::{Fleet, FleetConfig};
    let fleet = Fleet::new(FleetConfig {
        meters,
        start: date(2024, 10, 25),
        days: 9,
        seed,
        step_min: 30,
        step_change_share: 0.05,
    });
    range
        .map(|i| {
            let m = fleet.meter(i);
            Op::Batch(
                m.consumption
                    .iter()
                    .map(|r| {
                        (
                            m.meter_id.clone(),
                            Channel::CONSUMPTION,
                            courbe::point_of(r),
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn compaction_carries_the_sums_of_inputs_it_copies_whole_and_decodes_overlapping_and_erased_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), Options::default()).expect("store opens");
    let windows = windows().len();
    let mut ops = Vec::new();
    let flush_part = |ops: &mut Vec<Op>, part: Vec<Op>| {
        for op in &part {
            apply(&store, op);
        }
        ops.extend(part);
        store.flush().expect("flush");
    };
    // Two segments of disjoint meters, each keeping its sums: compaction copies every series
    // of both and carries both rollups.
    flush_part(&mut ops, fleet_part(600, 0..140, 21));
    flush_part(&mut ops, fleet_part(600, 140..280, 21));
    store.compact().expect("compact");
    let ids = |ops: &[Op]| -> Vec<String> {
        let model = Model::resolve(ops);
        model.meters(Channel::CONSUMPTION)
    };
    let model = Model::resolve(&ops);
    assert_eq!(
        check(&store, &model, &ids(&ops), "two disjoint inputs"),
        windows
    );
    store
        .verify()
        .expect("the carried sums are the sums of the blocks");

    // The merged segment, a re-sent day of some of its meters (the two overlap: both decoded)
    // and a third set of meters (carried).
    let tz = TimeZone::get("Europe/Paris").unwrap();
    let d31 = midnight_utc(&tz, date(2024, 10, 31));
    let resent: Vec<(String, Channel, Point)> = ids(&ops)
        .into_iter()
        .step_by(3)
        .enumerate()
        .flat_map(|(k, id)| {
            (0..48).map(move |i| {
                let p = Point {
                    ts_utc: d31 + i * 1800,
                    value: 300 + (k as i32) + i as i32,
                    step_min: 30,
                    quality: Quality::Corrected,
                };
                (id.clone(), Channel::CONSUMPTION, p)
            })
        })
        .collect();
    flush_part(&mut ops, vec![Op::Batch(resent)]);
    flush_part(&mut ops, fleet_part(600, 280..430, 21));
    store.compact().expect("compact");
    let model = Model::resolve(&ops);
    assert_eq!(
        check(
            &store,
            &model,
            &ids(&ops),
            "overlapping and disjoint inputs"
        ),
        windows
    );
    store.verify().expect("carried and decoded sums add up");

    // An erasure rewrites its segments (their sums from decoding, without the erased
    // points); the next compaction carries the rewritten sums.
    let all = ids(&ops);
    let d29 = midnight_utc(&tz, date(2024, 10, 29));
    let erase = Op::Erase {
        meter: all[5].clone(),
        from: d29,
        to: d29 + 86_400 * 2,
    };
    apply(&store, &erase);
    ops.push(erase);
    store.verify().expect("erasure keeps the sums");
    flush_part(&mut ops, fleet_part(600, 430..600, 21));
    store.compact().expect("compact");
    let model = Model::resolve(&ops);
    assert_eq!(
        check(&store, &model, &ids(&ops), "after an erasure"),
        windows
    );
    store.verify().expect("sums after erasure and compaction");
}

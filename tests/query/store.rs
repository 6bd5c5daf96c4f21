//! The properties again, against a real engine `Store`: batches ingested out of order with
//! duplicates and corrections, erasures, flushes and compactions between them.

use courbe::engine::{Batch, Options, Store};
use courbe::source::SeriesSource;
use proptest::prelude::*;

use super::model::{generate, generate_workload, Generated, Model, Op};
use super::properties::check_sources;
use crate::util::Rng;

fn replay(seed: u64, g: &Generated) {
    let model = Model::resolve(&g.ops);
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        memtable_max_points: 200,
        ..Options::default()
    };
    let store = Store::open(dir.path(), options).expect("store opens");
    let mut rng = Rng::new(seed ^ 0xE1);
    for op in &g.ops {
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
        if rng.chance(10) {
            store.flush().expect("flush");
        }
        if rng.chance(5) {
            store.compact().expect("compact");
        }
    }
    let snapshot = store.snapshot();
    let sources: [&dyn SeriesSource; 1] = [snapshot.as_ref()];
    check_sources(seed, g, &model, &sources);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn a_real_store_answers_as_the_reference_after_any_history(
        seed in any::<u64>(),
        zone in 0usize..3,
        change in 0usize..2,
    ) {
        replay(seed, &generate(seed, zone, change));
    }
}

#[test]
fn a_real_store_answers_as_the_reference_on_a_realistic_fleet_over_the_fall_back() {
    replay(
        3,
        &generate_workload(3, jiff::civil::date(2024, 10, 22), 10),
    );
}

/// `n` points of `value_w` every `step_min` from `from`, one batch.
fn steady(meter: &str, from: i64, n: i64, step_min: u16, value_w: i32) -> Batch {
    let mut batch = Batch::new();
    for i in 0..n {
        let p = courbe::Point {
            ts_utc: from + i * 60 * i64::from(step_min),
            value: value_w,
            step_min,
            quality: courbe::Quality::Measured,
        };
        batch
            .push(meter, courbe::Channel::CONSUMPTION, p)
            .expect("valid point");
    }
    batch
}

/// Two hours sent at one step, then again at another: whether the first is still in the
/// memtable, flushed, or compacted with the second, only the newer readings count.
#[test]
fn a_step_change_over_the_same_hours_counts_only_the_newest_covering_readings() {
    use courbe::query::{self, Calendar, Period};
    use courbe::Channel;
    const METER: &str = "09111642617347";
    let day = 1_717_192_800; // 2024-06-01T00:00+02:00
    let hours = day + 10 * 3600;
    let cal = Calendar {
        from_utc: day,
        to_utc: day + 86_400,
        period: Period::Day,
        tz: query::time_zone("Europe/Paris").expect("zone"),
    };
    for (older, newer) in [((15u16, 8i64), (30u16, 4i64)), ((30, 4), (15, 8))] {
        for between in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = Store::open(dir.path(), Options::default()).expect("store opens");
            store
                .ingest(&steady(METER, hours, older.1, older.0, 1000))
                .expect("ingest");
            if between >= 1 {
                store.flush().expect("flush");
            }
            store
                .ingest(&steady(METER, hours, newer.1, newer.0, 1000))
                .expect("ingest");
            if between >= 2 {
                store.flush().expect("flush");
                store.compact().expect("compact");
            }
            let what = format!("{older:?} then {newer:?}, stage {between}");
            let snapshot = store.snapshot();
            let e = query::energy(snapshot.as_ref(), METER, Channel::CONSUMPTION, &cal, None)
                .expect("energy");
            assert_eq!(e.len(), 1, "{what}");
            assert_eq!(e[0].energy_wh(), 2000.0, "{what}");
            assert_eq!(e[0].points, newer.1 as u64, "{what}");
            assert_eq!(e[0].expected_points, 24 * 60 / u64::from(newer.0), "{what}");
            let curve = query::curve(
                snapshot.as_ref(),
                METER,
                Channel::CONSUMPTION,
                day,
                day + 86_400,
            )
            .expect("curve");
            assert_eq!(curve.len(), newer.1 as usize, "{what}");
            assert!(curve.iter().all(|p| p.step_min == newer.0), "{what}");
            assert!(
                curve
                    .windows(2)
                    .all(|w| w[0].ts_utc + 60 * i64::from(w[0].step_min) <= w[1].ts_utc),
                "{what}: curve intervals overlap"
            );
        }
    }
}

/// The reading that drops an older one may start before the range asked: a range starting
/// inside an hour re-sent at 60 minutes shows none of the older quarter hours, whichever layer
/// holds each.
#[test]
fn a_range_starting_inside_a_newer_longer_reading_shows_none_of_the_older_ones_it_covers() {
    use courbe::query;
    use courbe::Channel;
    const METER: &str = "09111642617347";
    let hour = 1_717_228_800; // 2024-06-01T10:00+02:00
    for flush_between in [false, true] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), Options::default()).expect("store opens");
        store
            .ingest(&steady(METER, hour - 3600, 12, 15, 500))
            .expect("ingest");
        if flush_between {
            store.flush().expect("flush");
        }
        store
            .ingest(&steady(METER, hour, 1, 60, 900))
            .expect("ingest");
        let snapshot = store.snapshot();
        let curve = |from: i64, to: i64| {
            query::curve(snapshot.as_ref(), METER, Channel::CONSUMPTION, from, to).expect("curve")
        };
        assert_eq!(
            curve(hour + 1800, hour + 3600),
            [],
            "flushed: {flush_between}"
        );
        let all = curve(hour - 3600, hour + 7200);
        assert_eq!(all.len(), 4 + 1 + 4, "flushed: {flush_between}");
        assert_eq!(all[4].ts_utc, hour);
        assert_eq!((all[4].value, all[4].step_min), (900, 60));
    }
}

/// Each instant takes the newest reading covering it, whichever layers resolved which
/// readings first: older quarter hours in a segment, then an hour and its last quarter re-sent
/// at 5 minutes, resolved together at a flush (or not yet).
#[test]
fn a_reading_covered_in_part_keeps_the_rest_of_its_interval_in_every_layer() {
    use courbe::query;
    use courbe::Channel;
    const METER: &str = "09111642617347";
    let hour = 1_717_228_800; // 2024-06-01T10:00+02:00
    for stage in 0..4 {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), Options::default()).expect("store opens");
        store
            .ingest(&steady(METER, hour, 4, 15, 500))
            .expect("ingest");
        if stage >= 1 {
            store.flush().expect("flush");
        }
        store
            .ingest(&steady(METER, hour, 1, 60, 900))
            .expect("ingest");
        store
            .ingest(&steady(METER, hour + 45 * 60, 3, 5, 100))
            .expect("ingest");
        if stage >= 2 {
            store.flush().expect("flush");
        }
        if stage >= 3 {
            store.compact().expect("compact");
        }
        let snapshot = store.snapshot();
        let curve = query::curve(
            snapshot.as_ref(),
            METER,
            Channel::CONSUMPTION,
            hour - 3600,
            hour + 7200,
        )
        .expect("curve");
        let got: Vec<(i64, u16, i32)> = curve
            .iter()
            .map(|p| ((p.ts_utc - hour) / 60, p.step_min, p.value))
            .collect();
        assert_eq!(
            got,
            [(0, 45, 900), (45, 5, 100), (50, 5, 100), (55, 5, 100)],
            "stage {stage}"
        );
    }
}

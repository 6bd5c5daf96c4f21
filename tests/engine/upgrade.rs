//! A data directory written by format version 1 (`tests/data/store-v1/`, made once by the stop-8
//! build, see its README) opens, reads and verifies with this build, and compaction rewrites it
//! in the current version with identical answers.

use std::path::Path;

use courbe::engine::{Options, Store};
use courbe::{Channel, Point};
use courbe_workload::{Fleet, FleetConfig};
use storage_format::segment::{Segment, FORMAT_VERSION};

/// What the fixture holds: the generated fleet it was built from.
const METERS: u32 = 6;
const DAYS: u32 = 62;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "README.md" {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The format version of every segment file in `dir`.
fn segment_versions(dir: &Path) -> Vec<u16> {
    let mut versions: Vec<u16> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| {
            let bytes = std::fs::read(p).unwrap();
            Segment::open(&bytes).unwrap().version()
        })
        .collect();
    versions.sort_unstable();
    versions
}

fn expected() -> Vec<(String, Channel, Vec<Point>)> {
    let fleet = Fleet::new(FleetConfig {
        meters: METERS,
        days: DAYS,
        ..FleetConfig::default()
    });
    let mut out = Vec::new();
    for m in fleet.meters() {
        for (channel, readings) in [
            (Channel::CONSUMPTION, &m.consumption),
            (Channel::PRODUCTION, &m.production),
            (Channel::MAX_POWER, &m.max_power),
        ] {
            let points = readings.iter().map(courbe::point_of).collect();
            out.push((m.meter_id.clone(), channel, points));
        }
    }
    out
}

fn assert_reads(store: &Store, expected: &[(String, Channel, Vec<Point>)]) {
    let snap = store.snapshot();
    for (meter, channel, points) in expected {
        let read = snap.points(meter, *channel, 0, i64::MAX).unwrap();
        assert_eq!(&read, points, "{meter} {channel:?}");
    }
}

#[test]
fn a_version_1_store_reads_and_compacts_into_the_current_version_with_the_same_points() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store-v1");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture, dir.path());
    let before = segment_versions(dir.path());
    assert!(
        before.len() > 1 && before.iter().all(|&v| v == 1),
        "{before:?}"
    );
    let expected = expected();
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        assert_reads(&store, &expected);
        store.compact().unwrap();
        assert_reads(&store, &expected);
    }
    let after = segment_versions(dir.path());
    assert!(
        !after.is_empty() && after.iter().all(|&v| v == FORMAT_VERSION),
        "{after:?}"
    );
    // And after a restart, from the rewritten files alone.
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_reads(&store, &expected);
}

#[test]
fn a_version_1_store_takes_daily_energy_and_indexes_and_keeps_its_curves() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store-v1");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture, dir.path());
    let expected = expected();
    let meter = expected[0].0.clone();
    let days = super::channels::paris_midnights(2024, 1, 1, 62);
    let point = |ts_utc: i64, value: i32| Point {
        ts_utc,
        value,
        step_min: 1440,
        quality: courbe::Quality::Measured,
    };
    let (base, daily): (Vec<Point>, Vec<Point>) = days
        .iter()
        .enumerate()
        .map(|(d, &ts)| (point(ts, 1_000_000 + 9_000 * d as i32), point(ts, 9_000)))
        .unzip();
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let channel = store.index_channel("BASE").unwrap();
        let mut b = courbe::engine::Batch::new();
        for (p, e) in base.iter().zip(&daily) {
            b.push(&meter, channel, *p).unwrap();
            b.push(&meter, Channel::DAILY_ENERGY, *e).unwrap();
        }
        store.ingest(&b).unwrap();
    }
    let manifest = std::fs::read(dir.path().join("MANIFEST")).unwrap();
    assert_eq!(
        manifest[8..12],
        3u32.to_le_bytes(),
        "the manifest is version 3"
    );
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.flush().unwrap();
    store.compact().unwrap();
    drop(store);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_reads(&store, &expected);
    let snap = store.snapshot();
    let channel = snap.index_channel("BASE").unwrap();
    assert_eq!(snap.points(&meter, channel, 0, i64::MAX).unwrap(), base);
    assert_eq!(
        snap.points(&meter, Channel::DAILY_ENERGY, 0, i64::MAX)
            .unwrap(),
        daily
    );
    store.verify().unwrap();
}

//! Erasure: invisible at once, and physically absent from every file when the call returns.

use std::path::Path;

use courbe::engine::{Batch, Options, Store};
use courbe::source::SeriesSource;
use courbe::{Channel, Point, Quality};

use super::{pt, read, T0};

const VICTIM: &str = "30000000000042";
/// Values no other meter has: a recognisable run.
const MARK: i32 = 0x5EED_0000;

fn victim_day(d: i64, channel: Channel) -> Batch {
    let mut b = Batch::new();
    for i in 0..48 {
        let v = MARK + (d * 48 + i) as i32;
        b.push(VICTIM, channel, pt(T0 + d * 86_400 + i * 1800, v))
            .unwrap();
    }
    b
}

fn other_day(meter: &str, d: i64) -> Batch {
    let mut b = Batch::new();
    for i in 0..48 {
        b.push(
            meter,
            Channel::Consumption,
            pt(T0 + d * 86_400 + i * 1800, 300 + i as i32),
        )
        .unwrap();
    }
    b
}

/// Every file under `dir` holding `needle`, with the offset of the first occurrence.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            found.push(format!("{} at {at}", path.display()));
        }
    }
    found
}

/// Files holding any of the 48 values of day `d` as it is logged (i32, little-endian).
fn files_holding_day(dir: &Path, d: i64) -> Vec<String> {
    (0..48)
        .flat_map(|i| files_holding(dir, &(MARK + (d * 48 + i) as i32).to_le_bytes()))
        .collect()
}

#[test]
fn an_erased_meter_is_in_no_file_of_the_data_directory_when_erase_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    // In two flushed segments (compacted), in a later segment, and in the memtable and log.
    for d in 0..3 {
        store.ingest(&victim_day(d, Channel::Consumption)).unwrap();
        store.ingest(&other_day("10000000000001", d)).unwrap();
        store.flush().unwrap();
    }
    store.compact().unwrap();
    store.ingest(&victim_day(40, Channel::Production)).unwrap();
    store.flush().unwrap();
    store.ingest(&victim_day(41, Channel::Consumption)).unwrap();
    store.ingest(&other_day("10000000000001", 41)).unwrap();
    assert!(!files_holding(dir.path(), VICTIM.as_bytes()).is_empty());
    assert!(!files_holding_day(dir.path(), 41).is_empty());

    let report = store.erase(VICTIM, None).unwrap();
    assert_eq!(report.points_removed, 5 * 48);
    let snap = store.snapshot();
    assert!(!snap.has_meter(VICTIM));
    assert!(read(&store, VICTIM, Channel::Consumption).is_empty());
    assert!(read(&store, VICTIM, Channel::Production).is_empty());
    assert_eq!(
        files_holding(dir.path(), VICTIM.as_bytes()),
        Vec::<String>::new()
    );
    for d in [0, 1, 2, 40, 41] {
        assert_eq!(
            files_holding_day(dir.path(), d),
            Vec::<String>::new(),
            "day {d}"
        );
    }
    // The other meter is whole, before and after reopening.
    assert_eq!(
        read(&store, "10000000000001", Channel::Consumption).len(),
        4 * 48
    );
    drop(store);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(
        read(&store, "10000000000001", Channel::Consumption).len(),
        4 * 48
    );
    assert!(!store.snapshot().has_meter(VICTIM));
    store.verify().unwrap();
}

#[test]
fn erasing_a_range_keeps_the_rest_of_the_curve_and_the_max_power() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    for d in 0..4 {
        store.ingest(&victim_day(d, Channel::Consumption)).unwrap();
        if d == 1 {
            store.flush().unwrap();
        }
    }
    let peak = Point {
        ts_utc: T0 + 86_400 + 3600,
        value: 9000,
        step_min: 1440,
        quality: Quality::Measured,
    };
    let mut b = Batch::new();
    b.push(VICTIM, Channel::MaxPower, peak).unwrap();
    store.ingest(&b).unwrap();
    // Erase days 1 and 2: half in a segment, half in the memtable.
    let report = store
        .erase(VICTIM, Some((T0 + 86_400, T0 + 3 * 86_400)))
        .unwrap();
    assert_eq!(report.points_removed, 2 * 48);
    let left = read(&store, VICTIM, Channel::Consumption);
    assert_eq!(left.len(), 2 * 48);
    assert!(left
        .iter()
        .all(|p| p.ts_utc < T0 + 86_400 || p.ts_utc >= T0 + 3 * 86_400));
    assert_eq!(read(&store, VICTIM, Channel::MaxPower), vec![peak]);
    for d in [1, 2] {
        assert_eq!(
            files_holding_day(dir.path(), d),
            Vec::<String>::new(),
            "day {d}"
        );
    }
    assert!(store.erase("bad id!", None).is_err());
    assert!(store.erase(VICTIM, Some((5, 5))).is_err());
}

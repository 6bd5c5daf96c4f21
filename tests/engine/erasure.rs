//! Erasure: invisible at once, and physically absent from every file when the call returns.

use std::path::Path;
use std::sync::Arc;

use courbe::engine::fs::testing::SimFs;
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
            Channel::CONSUMPTION,
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
        store.ingest(&victim_day(d, Channel::CONSUMPTION)).unwrap();
        store.ingest(&other_day("10000000000001", d)).unwrap();
        store.flush().unwrap();
    }
    store.compact().unwrap();
    store.ingest(&victim_day(40, Channel::PRODUCTION)).unwrap();
    store.flush().unwrap();
    store.ingest(&victim_day(41, Channel::CONSUMPTION)).unwrap();
    store.ingest(&other_day("10000000000001", 41)).unwrap();
    assert!(!files_holding(dir.path(), VICTIM.as_bytes()).is_empty());
    assert!(!files_holding_day(dir.path(), 41).is_empty());

    let report = store.erase(VICTIM, None).unwrap();
    assert_eq!(report.points_removed, 5 * 48);
    let snap = store.snapshot();
    assert!(!snap.has_meter(VICTIM));
    assert!(read(&store, VICTIM, Channel::CONSUMPTION).is_empty());
    assert!(read(&store, VICTIM, Channel::PRODUCTION).is_empty());
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
        read(&store, "10000000000001", Channel::CONSUMPTION).len(),
        4 * 48
    );
    drop(store);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(
        read(&store, "10000000000001", Channel::CONSUMPTION).len(),
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
        store.ingest(&victim_day(d, Channel::CONSUMPTION)).unwrap();
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
    b.push(VICTIM, Channel::MAX_POWER, peak).unwrap();
    store.ingest(&b).unwrap();
    // Erase days 1 and 2: half in a segment, half in the memtable.
    let report = store
        .erase(VICTIM, Some((T0 + 86_400, T0 + 3 * 86_400)))
        .unwrap();
    assert_eq!(report.points_removed, 2 * 48);
    let left = read(&store, VICTIM, Channel::CONSUMPTION);
    assert_eq!(left.len(), 2 * 48);
    assert!(left
        .iter()
        .all(|p| p.ts_utc < T0 + 86_400 || p.ts_utc >= T0 + 3 * 86_400));
    assert_eq!(read(&store, VICTIM, Channel::MAX_POWER), vec![peak]);
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

/// A store in `dir` through `fs` where the victim has points in two compacted months of
/// segments, in a later segment and in the log, next to another meter; returns the victim's
/// curve and the other meter's.
fn victim_everywhere(fs: &SimFs, dir: &Path) -> (Vec<Point>, Vec<Point>) {
    let store = Store::open_with(dir, Options::default(), Arc::new(fs.clone())).unwrap();
    for d in [0, 1, 40] {
        store.ingest(&victim_day(d, Channel::CONSUMPTION)).unwrap();
        store.ingest(&other_day(OTHER, d)).unwrap();
        store.flush().unwrap();
    }
    store.compact().unwrap();
    store.ingest(&victim_day(41, Channel::PRODUCTION)).unwrap();
    store.flush().unwrap();
    // Newer points, only in the log: these went first in a torn erasure.
    store.ingest(&victim_day(42, Channel::CONSUMPTION)).unwrap();
    store.ingest(&other_day(OTHER, 42)).unwrap();
    let victim = curve_of(&store, VICTIM);
    let other = curve_of(&store, OTHER);
    assert_eq!(victim.len(), 5 * 48);
    (victim, other)
}

const OTHER: &str = "10000000000001";

/// Both curve channels of `meter`, consumption first.
fn curve_of(store: &Store, meter: &str) -> Vec<Point> {
    let mut all = read(store, meter, Channel::CONSUMPTION);
    all.extend(read(store, meter, Channel::PRODUCTION));
    all
}

/// What a reopened store may hold of the victim: its whole curve or none of it.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Untouched,
    Erased,
}

/// Opens the image `fs`, checks that the other meter is whole and that the victim is untouched
/// or wholly erased (then in no file at all), and says which.
fn reopen_and_judge(
    fs: &SimFs,
    dir: &Path,
    victim: &[Point],
    other: &[Point],
    ctx: &str,
) -> Outcome {
    let store = Store::open_with(dir, Options::default(), Arc::new(fs.clone()))
        .unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
    store
        .verify()
        .unwrap_or_else(|e| panic!("{ctx}: verify failed: {e}"));
    assert_eq!(curve_of(&store, OTHER), other, "{ctx}: the other meter");
    let got = curve_of(&store, VICTIM);
    drop(store);
    if got.is_empty() {
        for (path, bytes) in fs.files() {
            assert!(
                !bytes.windows(VICTIM.len()).any(|w| w == VICTIM.as_bytes()),
                "{ctx}: {} still holds the erased meter id",
                path.display()
            );
        }
        Outcome::Erased
    } else {
        assert_eq!(
            got, victim,
            "{ctx}: the victim is neither untouched nor erased"
        );
        Outcome::Untouched
    }
}

#[test]
fn a_crash_at_any_sync_point_of_an_erasure_leaves_the_meter_untouched_or_wholly_erased() {
    let fs = SimFs::new();
    let dir = Path::new("/data");
    let (victim, other) = victim_everywhere(&fs, dir);
    let store = Store::open_with(dir, Options::default(), Arc::new(fs.clone())).unwrap();
    fs.record_crash_images();
    let started = fs.sync_points();
    let report = store.erase(VICTIM, None).unwrap();
    assert_eq!(report.points_removed, 5 * 48);
    let acknowledged = fs.sync_points();
    drop(store);
    let images = fs.take_crash_images();
    assert!(images.len() > 10, "only {} crash images", images.len());
    let mut erased_from = u64::MAX;
    let mut resumed = 0;
    for image in &images {
        let ctx = format!(
            "crash at sync point {} (torn: {}; erase ran from {started} to {acknowledged})",
            image.sync_point, image.torn
        );
        let crashed = image.to_fs();
        let before = crashed.files();
        let holds_victim = before
            .iter()
            .any(|(_, b)| b.windows(VICTIM.len()).any(|w| w == VICTIM.as_bytes()));
        // The reopening itself may crash: every crash of it must be judged the same way.
        crashed.record_crash_images();
        let outcome = reopen_and_judge(&crashed, dir, &victim, &other, &ctx);
        if outcome == Outcome::Erased {
            erased_from = erased_from.min(image.sync_point);
        } else {
            assert!(
                image.sync_point < erased_from,
                "{ctx}: untouched after an earlier crash image was erased"
            );
        }
        if image.sync_point >= acknowledged {
            assert_eq!(
                outcome,
                Outcome::Erased,
                "{ctx}: acknowledged erasure undone"
            );
        }
        if holds_victim && outcome == Outcome::Erased {
            resumed += 1;
            for again in crashed.take_crash_images() {
                let ctx = format!(
                    "{ctx}, then at sync point {} of the reopening",
                    again.sync_point
                );
                let outcome = reopen_and_judge(&again.to_fs(), dir, &victim, &other, &ctx);
                assert_eq!(outcome, Outcome::Erased, "{ctx}: a resumed erasure undone");
            }
        }
    }
    assert!(resumed > 0, "no crash image needed the erasure resumed");
}

#[test]
fn an_erasure_begun_and_not_finished_is_completed_before_the_store_opens() {
    let fs = SimFs::new();
    let dir = Path::new("/data");
    let (_, other) = victim_everywhere(&fs, dir);
    {
        let store = Store::open_with(dir, Options::default(), Arc::new(fs.clone())).unwrap();
        store.begin_erase(VICTIM, None).unwrap();
        // Nothing changes for readers until the erasure runs.
        assert_eq!(curve_of(&store, VICTIM).len(), 5 * 48);
    }
    let outcome = reopen_and_judge(&fs, dir, &[], &other, "reopened after begin_erase");
    assert_eq!(outcome, Outcome::Erased);
}

#[test]
fn an_erasure_failing_in_the_middle_is_completed_when_the_store_is_next_opened() {
    use courbe::engine::fs::testing::FaultOp;
    // Fail each sync of the erasure in turn once the intent is durable (the first two syncs
    // commit it: the manifest's temporary file, then the directory).
    let mut failed = 0;
    for n in 2..12 {
        let fs = SimFs::new();
        let dir = Path::new("/data");
        let (victim, other) = victim_everywhere(&fs, dir);
        {
            let store = Store::open_with(dir, Options::default(), Arc::new(fs.clone())).unwrap();
            fs.fail_nth(FaultOp::Sync, n);
            if store.erase(VICTIM, None).is_ok() {
                fs.clear_faults();
                continue;
            }
            fs.clear_faults();
            // Nothing more is written (it would be erased with the rest when reopened).
            let refused = store.ingest(&other_day(OTHER, 50));
            assert!(
                matches!(refused, Err(courbe::engine::Error::Closed)),
                "sync {n}: {refused:?}"
            );
        }
        failed += 1;
        let ctx = format!("sync {n} of the erasure failed");
        let outcome = reopen_and_judge(&fs, dir, &victim, &other, &ctx);
        assert_eq!(outcome, Outcome::Erased, "{ctx}");
    }
    assert!(failed >= 8, "only {failed} erasures failed");
}

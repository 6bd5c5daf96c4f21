//! Crash images: the data directory as a crash would leave it at every sync point.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use courbe::engine::fs::testing::{CrashImage, SimFs};
use courbe::engine::{Batch, Options, Store};
use courbe::source::SeriesSource;
use courbe::{Channel, Point};

use super::{pt, read, T0};

const METERS: [&str; 3] = ["meter-a", "meter-b", "meter-c"];
const VICTIM: &str = "victim-meter";

/// Batch `k`: four half-hours of each meter, values unique to `(k, meter)`.
fn scripted_batch(k: i64) -> Batch {
    let mut b = Batch::new();
    for (i, m) in METERS.iter().enumerate() {
        for j in 0..4 {
            let ts = T0 + (k * 4 + j) * 1800 * 7;
            b.push(
                m,
                Channel::CONSUMPTION,
                pt(ts, (k * 100 + i as i64 * 10 + j) as i32),
            )
            .expect("valid");
        }
    }
    if k < 5 {
        b.push(
            VICTIM,
            Channel::CONSUMPTION,
            pt(T0 + k * 1800, 777_000 + k as i32),
        )
        .expect("valid");
    }
    b
}

fn expected(k: i64, meter_index: usize) -> Vec<Point> {
    scripted_batch(k)
        .iter()
        .filter(|(m, _, _)| *m == METERS[meter_index])
        .map(|(_, _, p)| p)
        .collect()
}

#[test]
fn every_acknowledged_batch_survives_a_crash_at_every_sync_point() {
    let fs = SimFs::new();
    fs.record_crash_images();
    let options = Options {
        memtable_max_points: 150,
        ..Options::default()
    };
    let dir = Path::new("/data");
    // (sync points completed when batch k was acknowledged, k)
    let mut acked: Vec<(u64, i64)> = Vec::new();
    let mut erased_at = u64::MAX;
    {
        let store = Store::open_with(dir, options.clone(), Arc::new(fs.clone())).unwrap();
        for k in 0..40 {
            store.ingest(&scripted_batch(k)).unwrap();
            acked.push((fs.sync_points(), k));
            if k % 7 == 6 {
                store.flush().unwrap();
            }
            if k % 13 == 12 {
                store.compact().unwrap();
            }
            if k == 20 {
                let report = store.erase(VICTIM, None).unwrap();
                assert_eq!(report.points_removed, 5);
                erased_at = fs.sync_points();
            }
            if k == 30 {
                // Reopen in the middle: replay, garbage collection, a new log.
                drop(store);
                let store2 = Store::open_with(dir, options.clone(), Arc::new(fs.clone()));
                drop(store2.unwrap());
                return finish(fs, options, acked, erased_at, dir, k + 1);
            }
        }
    }
    unreachable!("the script reopens at batch 30");
}

fn finish(
    fs: SimFs,
    options: Options,
    mut acked: Vec<(u64, i64)>,
    erased_at: u64,
    dir: &Path,
    next: i64,
) {
    let store = Store::open_with(dir, options.clone(), Arc::new(fs.clone())).unwrap();
    for k in next..next + 8 {
        store.ingest(&scripted_batch(k)).unwrap();
        acked.push((fs.sync_points(), k));
    }
    drop(store);
    let images = fs.take_crash_images();
    assert!(images.len() > 50, "only {} crash images", images.len());
    for image in &images {
        check_image(image, &options, &acked, erased_at, dir);
    }
}

fn check_image(
    image: &CrashImage,
    options: &Options,
    acked: &[(u64, i64)],
    erased_at: u64,
    dir: &Path,
) {
    let ctx = format!(
        "crash at sync point {} (torn: {})",
        image.sync_point, image.torn
    );
    let fs = image.to_fs();
    let store = Store::open_with(dir, options.clone(), Arc::new(fs.clone()))
        .unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
    store
        .verify()
        .unwrap_or_else(|e| panic!("{ctx}: verify failed: {e}"));
    let max_batch = acked.iter().map(|(_, k)| *k).max().unwrap_or(0);
    for (i, meter) in METERS.iter().enumerate() {
        let got: BTreeMap<i64, Point> = read(&store, meter, Channel::CONSUMPTION)
            .into_iter()
            .map(|p| (p.ts_utc, p))
            .collect();
        // Nothing but points some batch wrote.
        let all: BTreeMap<i64, Point> = (0..=max_batch)
            .flat_map(|k| expected(k, i))
            .map(|p| (p.ts_utc, p))
            .collect();
        for (ts, p) in &got {
            assert_eq!(
                all.get(ts),
                Some(p),
                "{ctx}: {meter} has a point no batch wrote"
            );
        }
        // Every acknowledged batch.
        for (synced, k) in acked {
            if *synced <= image.sync_point {
                for p in expected(*k, i) {
                    assert_eq!(got.get(&p.ts_utc), Some(&p), "{ctx}: batch {k} lost");
                }
            }
        }
    }
    if image.sync_point >= erased_at {
        assert!(
            !store.snapshot().has_meter(VICTIM),
            "{ctx}: erased meter came back"
        );
        for (path, bytes) in fs.files() {
            assert!(
                !bytes.windows(VICTIM.len()).any(|w| w == VICTIM.as_bytes()),
                "{ctx}: {} still holds the erased meter id",
                path.display()
            );
        }
    }
}

#[test]
fn batches_acknowledged_while_background_flushes_run_survive_a_crash_at_every_sync_point() {
    let fs = SimFs::new();
    fs.record_crash_images();
    // 13 points a batch: the memtable fills every third or fourth batch and is flushed on the
    // flush thread while the next batches are acknowledged; the writer never calls flush.
    let options = Options {
        memtable_max_points: 40,
        ..Options::default()
    };
    let dir = Path::new("/data");
    let mut acked: Vec<(u64, i64)> = Vec::new();
    let before: Vec<Vec<Point>>;
    {
        let store = Store::open_with(dir, options.clone(), Arc::new(fs.clone())).unwrap();
        for k in 0..30 {
            store.ingest(&scripted_batch(k)).unwrap();
            acked.push((fs.sync_points(), k));
        }
        store.wait_for_flush().unwrap();
        assert!(store.flush_count() >= 6, "{} flushes", store.flush_count());
        before = METERS
            .iter()
            .map(|m| read(&store, m, Channel::CONSUMPTION))
            .collect();
    }
    let store = Store::open_with(dir, options.clone(), Arc::new(fs.clone())).unwrap();
    for (m, points) in METERS.iter().zip(&before) {
        assert_eq!(
            &read(&store, m, Channel::CONSUMPTION),
            points,
            "{m} after reopen"
        );
    }
    drop(store);
    let images = fs.take_crash_images();
    assert!(images.len() > 50, "only {} crash images", images.len());
    for image in &images {
        check_image(image, &options, &acked, u64::MAX, dir);
    }
}

/// Three runs that never flush leave three log generations; every open writes each log but the
/// last to segments, so the memtable holds one run's batches, as when the store ran.
#[test]
fn reopening_writes_every_log_but_the_last_to_segments_and_a_crash_in_that_loses_nothing() {
    let fs = SimFs::new();
    let options = Options {
        memtable_max_points: 1_000_000,
        ..Options::default()
    };
    let dir = Path::new("/data");
    // A late correction in the last run of a point of the first: the newer value wins.
    let corrected = expected(0, 0)[1];
    let correction = pt(corrected.ts_utc, -4242);
    let mut last_run_points = 0;
    for run in 0..3 {
        let store = Store::open_with(dir, options.clone(), Arc::new(fs.clone())).unwrap();
        let mut points = 0;
        for k in run * 5..run * 5 + 5 {
            let batch = scripted_batch(k);
            points += batch.len();
            store.ingest(&batch).unwrap();
        }
        if run == 2 {
            let mut b = Batch::new();
            b.push(METERS[0], Channel::CONSUMPTION, correction).unwrap();
            points += b.len();
            store.ingest(&b).unwrap();
        }
        last_run_points = points;
    }
    let want: Vec<Vec<Point>> = (0..METERS.len())
        .map(|i| {
            let mut all: BTreeMap<i64, Point> = (0..15)
                .flat_map(|k| expected(k, i))
                .map(|p| (p.ts_utc, p))
                .collect();
            if i == 0 {
                all.insert(correction.ts_utc, correction);
            }
            all.into_values().collect()
        })
        .collect();
    let check = |store: &Store, ctx: &str| {
        for (i, m) in METERS.iter().enumerate() {
            assert_eq!(read(store, m, Channel::CONSUMPTION), want[i], "{ctx}: {m}");
        }
    };

    fs.record_crash_images();
    let store = Store::open_with(dir, options.clone(), Arc::new(fs.clone())).unwrap();
    check(&store, "reopened");
    assert_eq!(
        store.memtable_memory().points,
        last_run_points,
        "the memtable holds the last log's batches only"
    );
    assert!(store.stats().segments >= 2, "{:?}", store.stats().segments);
    drop(store);
    let images = fs.take_crash_images();
    assert!(images.len() > 5, "only {} crash images", images.len());
    for image in &images {
        let ctx = format!(
            "crash at sync point {} (torn: {})",
            image.sync_point, image.torn
        );
        let fs = image.to_fs();
        let store = Store::open_with(dir, options.clone(), Arc::new(fs))
            .unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
        store
            .verify()
            .unwrap_or_else(|e| panic!("{ctx}: verify failed: {e}"));
        check(&store, &ctx);
    }
}

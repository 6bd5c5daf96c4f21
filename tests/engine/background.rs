//! Compaction by policy and the background compactor: a store fed day by day stays at about
//! one segment per month, with bounded rewriting, and a compaction killed at any sync point
//! loses nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use courbe::engine::fs::testing::SimFs;
use courbe::engine::{Batch, CompactionReport, Options, Store};
use courbe::{Channel, Point};

use super::{pt, read, T0};

const DAY: i64 = 86_400;

/// Day `d` (from 2024-01-01 UTC) of `meters` meters: 48 half-hours each, values unique to
/// `(d, meter, slot)`.
fn day_batch(d: i64, meters: usize) -> Batch {
    let mut b = Batch::new();
    for m in 0..meters {
        for j in 0..48 {
            let ts = T0 + d * DAY + j * 1800;
            let value = (d * 10_000 + m as i64 * 100 + j) as i32;
            b.push(
                &format!("meter-{m:03}"),
                Channel::CONSUMPTION,
                pt(ts, value),
            )
            .expect("valid");
        }
    }
    b
}

fn expected(days: std::ops::Range<i64>, m: usize) -> Vec<Point> {
    days.flat_map(|d| {
        (0..48).map(move |j| {
            pt(
                T0 + d * DAY + j * 1800,
                (d * 10_000 + m as i64 * 100 + j) as i32,
            )
        })
    })
    .collect()
}

fn segment_bytes(store: &Store) -> u64 {
    store.partition_segments().iter().map(|(_, _, b)| b).sum()
}

#[test]
fn a_store_fed_day_by_day_stays_at_about_one_segment_per_month_with_bounded_rewriting() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let meters = 20;
    let days = 200;
    let mut flushed = 0u64;
    let mut totals = CompactionReport::default();
    for d in 0..days {
        store.ingest(&day_batch(d, meters)).unwrap();
        let before = segment_bytes(&store);
        store.flush().unwrap();
        flushed += segment_bytes(&store) - before;
        let r = store.compact_by_policy().unwrap();
        totals.merges += r.merges;
        totals.bytes_written += r.bytes_written;
        let parts = store.partition_segments();
        // Every month but the one being fed (and the one just closed, within its grace days)
        // holds one segment; the open month at most a handful.
        let open = parts.len().saturating_sub(2);
        for (p, n, _) in &parts[..open] {
            assert_eq!(*n, 1, "day {d}: closed partition {p} holds {n} segments");
        }
        for (p, n, _) in &parts[open..] {
            assert!(*n <= 8, "day {d}: partition {p} holds {n} segments");
        }
    }
    let amplification = totals.bytes_written as f64 / flushed as f64;
    assert!(
        amplification < 8.0,
        "compaction wrote {:.2} bytes per byte flushed",
        amplification
    );
    for m in [0, meters - 1] {
        assert_eq!(
            read(&store, &format!("meter-{m:03}"), Channel::CONSUMPTION),
            expected(0..days, m),
            "meter {m} reads back"
        );
    }
}

#[test]
fn the_background_compactor_merges_after_flushes_and_ends_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        background_compaction: true,
        ..Options::default()
    };
    let store = Arc::new(Store::open(dir.path(), options).unwrap());
    let handle = store.start_compactor().expect("the compactor starts");
    for d in 0..70 {
        store.ingest(&day_batch(d, 5)).unwrap();
        store.flush().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.compactor_state().flushes_seen < store.flush_count() {
        assert!(Instant::now() < deadline, "the compactor did not catch up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let state = store.compactor_state();
    assert_eq!(state.last_error, None);
    assert!(state.totals.merges > 0);
    let parts = store.partition_segments();
    assert_eq!(parts.len(), 3, "January to March");
    assert_eq!(parts[0].1, 1, "January is one segment");
    assert_eq!(
        read(&store, "meter-004", Channel::CONSUMPTION),
        expected(0..70, 4)
    );
    drop(store);
    handle.join().expect("the compactor ends without panicking");
}

#[test]
fn a_compaction_by_policy_killed_at_every_sync_point_loses_nothing() {
    let fs = SimFs::new();
    let dir = Path::new("/data");
    let days = 40;
    // (sync points completed when day d was acknowledged, d)
    let mut acked: Vec<(u64, i64)> = Vec::new();
    {
        let store = Store::open_with(dir, Options::default(), Arc::new(fs.clone())).unwrap();
        for d in 0..days - 8 {
            store.ingest(&day_batch(d, 3)).unwrap();
            store.flush().unwrap();
        }
        fs.record_crash_images();
        for d in days - 8..days {
            store.ingest(&day_batch(d, 3)).unwrap();
            acked.push((fs.sync_points(), d));
            store.flush().unwrap();
            store.compact_by_policy().unwrap();
        }
    }
    let images = fs.take_crash_images();
    assert!(images.len() > 20, "only {} crash images", images.len());
    for image in &images {
        let ctx = format!(
            "crash at sync point {} (torn: {})",
            image.sync_point, image.torn
        );
        let crashed = image.to_fs();
        let store = Store::open_with(dir, Options::default(), Arc::new(crashed))
            .unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
        store
            .verify()
            .unwrap_or_else(|e| panic!("{ctx}: verify failed: {e}"));
        for m in 0..3 {
            let got: BTreeMap<i64, Point> =
                read(&store, &format!("meter-{m:03}"), Channel::CONSUMPTION)
                    .into_iter()
                    .map(|p| (p.ts_utc, p))
                    .collect();
            // Every day acknowledged before the crash: those fed before the recording, and
            // those whose sync point the image holds.
            let want = expected(0..days, m);
            let kept = |d: i64| {
                d < days - 8 || acked.iter().any(|(s, k)| *k == d && *s <= image.sync_point)
            };
            for p in want.iter().filter(|p| kept((p.ts_utc - T0) / DAY)) {
                assert_eq!(
                    got.get(&p.ts_utc),
                    Some(p),
                    "{ctx}: meter {m} lost {}",
                    p.ts_utc
                );
            }
            for (ts, p) in &got {
                assert!(
                    want.contains(p),
                    "{ctx}: meter {m} has a point at {ts} no batch wrote"
                );
            }
        }
    }
}

#[test]
fn compacting_segments_of_disjoint_meters_copies_their_blocks_and_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        memtable_max_points: 48 * 31 * 4,
        ..Options::default()
    };
    let store = Store::open(dir.path(), options).unwrap();
    // Meter by meter, a month each: every flush holds other meters than the previous one.
    for m in 0..12 {
        let mut b = Batch::new();
        for d in 0..62 {
            for j in 0..48 {
                let ts = T0 + d * DAY + j * 1800;
                b.push(
                    &format!("m{m:02}"),
                    Channel::CONSUMPTION,
                    pt(ts, m * 1000 + j as i32),
                )
                .unwrap();
            }
        }
        store.ingest(&b).unwrap();
    }
    store.flush().unwrap();
    let before: Vec<Vec<Point>> = (0..12)
        .map(|m| read(&store, &format!("m{m:02}"), Channel::CONSUMPTION))
        .collect();
    assert!(store.partition_segments().iter().any(|(_, n, _)| *n > 1));
    store.compact().unwrap();
    assert!(store.partition_segments().iter().all(|(_, n, _)| *n == 1));
    store.verify().unwrap();
    drop(store);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    for m in 0..12 {
        assert_eq!(
            read(&store, &format!("m{m:02}"), Channel::CONSUMPTION),
            before[m as usize],
            "meter {m}"
        );
        assert_eq!(before[m as usize].len(), 62 * 48);
    }
}

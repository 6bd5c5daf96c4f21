//! Ingest, read, flush, reopen; newest wins; step changes; retention; the chunk contract.

use std::sync::Arc;

use courbe::engine::fs::testing::{FaultOp, SimFs};
use courbe::engine::{Batch, Error, Options, Store};
use courbe::source::{Chunk, SeriesSource};
use courbe::{Channel, Point, Quality};

use super::{batch, pt, read, T0};

fn day(meter: &str, start: i64, base: i32) -> Batch {
    let mut b = Batch::new();
    for i in 0..48 {
        b.push(
            meter,
            Channel::CONSUMPTION,
            pt(start + i * 1800, base + i as i32),
        )
        .expect("valid");
    }
    b
}

#[test]
fn ingested_points_read_back_from_the_memtable_the_segments_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let expected: Vec<Point> = (0..48).map(|i| pt(T0 + i * 1800, 100 + i as i32)).collect();
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        store.ingest(&day("09111642617347", T0, 100)).unwrap();
        assert_eq!(
            read(&store, "09111642617347", Channel::CONSUMPTION),
            expected
        );
        assert!(store.snapshot().has_meter("09111642617347"));
        assert!(!store.snapshot().has_meter("00000000000000"));
    }
    {
        // Replayed from the log.
        let store = Store::open(dir.path(), Options::default()).unwrap();
        assert_eq!(
            read(&store, "09111642617347", Channel::CONSUMPTION),
            expected
        );
        store.flush().unwrap();
        assert_eq!(
            read(&store, "09111642617347", Channel::CONSUMPTION),
            expected
        );
        assert_eq!(store.stats().segments, 1);
    }
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(
        read(&store, "09111642617347", Channel::CONSUMPTION),
        expected
    );
    assert_eq!(
        store.snapshot().meters(Channel::CONSUMPTION),
        vec!["09111642617347".to_string()]
    );
    let stats = store.verify().unwrap();
    assert_eq!((stats.meters, stats.points, stats.segments), (1, 48, 1));
    // Meters are counted once whether in segments, the memtable or both.
    store
        .ingest(&day("09111642617347", T0 + 86_400, 0))
        .unwrap();
    store.ingest(&day("other", T0, 0)).unwrap();
    assert_eq!(store.stats().meters, 2);
}

#[test]
fn late_duplicate_out_of_order_and_corrected_data_resolve_to_the_newest_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let m = "meter-1";
    // Out of order inside a batch, then flushed.
    store
        .ingest(&batch(&[
            (m, Channel::CONSUMPTION, pt(T0 + 3600, 3)),
            (m, Channel::CONSUMPTION, pt(T0, 1)),
            (m, Channel::CONSUMPTION, pt(T0 + 1800, 2)),
        ]))
        .unwrap();
    store.flush().unwrap();
    // A duplicate (same value) and a correction, in a newer segment.
    let corrected = Point {
        quality: Quality::Corrected,
        ..pt(T0 + 1800, 20)
    };
    store
        .ingest(&batch(&[
            (m, Channel::CONSUMPTION, pt(T0, 1)),
            (m, Channel::CONSUMPTION, corrected),
        ]))
        .unwrap();
    store.flush().unwrap();
    // Late data for an older month, and a correction still in the memtable.
    let late = pt(T0 - 40 * 86_400, 7);
    store
        .ingest(&batch(&[
            (m, Channel::CONSUMPTION, late),
            (m, Channel::CONSUMPTION, pt(T0 + 3600, 30)),
        ]))
        .unwrap();
    // An older value for the same interval sent again later wins too: order of arrival decides.
    store
        .ingest(&batch(&[(m, Channel::CONSUMPTION, pt(T0 + 3600, 31))]))
        .unwrap();
    let want = vec![late, pt(T0, 1), corrected, pt(T0 + 3600, 31)];
    assert_eq!(read(&store, m, Channel::CONSUMPTION), want);
    store.flush().unwrap();
    assert_eq!(read(&store, m, Channel::CONSUMPTION), want);
    store.compact().unwrap();
    assert_eq!(read(&store, m, Channel::CONSUMPTION), want);
    assert_eq!(
        store.stats().segments,
        2,
        "one segment per month after compaction"
    );
    assert_eq!(
        store.stats().points,
        4,
        "replaced values are gone after compaction"
    );
    drop(store);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(read(&store, m, Channel::CONSUMPTION), want);
}

#[test]
fn a_meter_whose_step_changes_from_30_to_10_and_back_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let mut want = Vec::new();
    let mut ts = T0;
    for (step, n) in [(30u16, 48), (10, 144), (30, 48)] {
        let mut b = Batch::new();
        for i in 0..n {
            let p = Point {
                ts_utc: ts,
                value: 500 + i,
                step_min: step,
                quality: Quality::Measured,
            };
            b.push("m", Channel::CONSUMPTION, p).unwrap();
            want.push(p);
            ts += 60 * i64::from(step);
        }
        store.ingest(&b).unwrap();
        store.flush().unwrap();
    }
    assert_eq!(read(&store, "m", Channel::CONSUMPTION), want);
    store.compact().unwrap();
    assert_eq!(read(&store, "m", Channel::CONSUMPTION), want);
    let snap = store.snapshot();
    let chunks = snap.chunks("m", Channel::CONSUMPTION, T0, ts).unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].summary().step_min, 0, "mixed steps");
    assert_eq!(
        chunks[0].summary().sum_energy_wmin,
        want.iter()
            .map(|p| i64::from(p.value) * i64::from(p.step_min))
            .sum::<i64>()
    );
}

#[test]
fn chunks_are_ordered_disjoint_and_a_block_chunk_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    // Three months in segments; a newer segment and the memtable overwrite part of February.
    for month in 0..3i64 {
        store
            .ingest(&day("m", T0 + month * 31 * 86_400, 10 * month as i32))
            .unwrap();
    }
    store.flush().unwrap();
    store
        .ingest(&batch(&[(
            "m",
            Channel::CONSUMPTION,
            pt(T0 + 31 * 86_400, -1),
        )]))
        .unwrap();
    let snap = store.snapshot();
    let chunks = snap
        .chunks("m", Channel::CONSUMPTION, T0, T0 + 100 * 86_400)
        .unwrap();
    let mut prev_end = i64::MIN;
    let mut blocks = 0;
    for c in &chunks {
        let (start, end) = c.span();
        assert!(start >= prev_end, "chunks overlap or are out of order");
        prev_end = end;
        if let Chunk::Block(b) = c {
            blocks += 1;
            let mut scratch = Default::default();
            c.decode_into(&mut scratch).unwrap();
            let pts: Vec<Point> = scratch.points().collect();
            assert_eq!(b.summary, storage_format::block::summarize(&pts));
        }
    }
    assert_eq!(blocks, 2, "January and March are untouched blocks");
    assert_eq!(chunks.len(), 3);
    let all = snap
        .points("m", Channel::CONSUMPTION, T0, T0 + 100 * 86_400)
        .unwrap();
    assert_eq!(all.len(), 144);
    assert_eq!(all[48], pt(T0 + 31 * 86_400, -1));
    // A range inside January still gets the whole January block, summary exact.
    let inner = snap
        .chunks("m", Channel::CONSUMPTION, T0 + 3600, T0 + 7200)
        .unwrap();
    assert!(matches!(inner.as_slice(), [Chunk::Block(_)]));
}

#[test]
fn retention_drops_whole_months_older_than_the_configured_age() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        retention_days: Some(40),
        ..Options::default()
    };
    let store = Store::open(dir.path(), options).unwrap();
    for month in 0..4i64 {
        store
            .ingest(&day("m", T0 + month * 31 * 86_400, 0))
            .unwrap();
    }
    store.apply_retention().unwrap();
    // Newest point: 2024-04-01 + 1 day; cutoff 40 days before: mid-February. January goes.
    let pts = read(&store, "m", Channel::CONSUMPTION);
    assert_eq!(pts.len(), 3 * 48);
    assert!(pts.iter().all(|p| p.ts_utc >= T0 + 31 * 86_400));
    assert_eq!(store.stats().segments, 3);
    let none = Store::open(tempfile::tempdir().unwrap().path(), Options::default()).unwrap();
    none.apply_retention().unwrap();
}

#[test]
fn a_batch_refuses_bad_meter_ids_steps_and_instants_outside_the_supported_range() {
    let mut b = Batch::new();
    assert!(b.push("", Channel::CONSUMPTION, pt(T0, 1)).is_err());
    assert!(b
        .push(&"x".repeat(65), Channel::CONSUMPTION, pt(T0, 1))
        .is_err());
    assert!(b.push("a b", Channel::CONSUMPTION, pt(T0, 1)).is_err());
    assert!(b.push("é", Channel::CONSUMPTION, pt(T0, 1)).is_err());
    let step = |s| Point {
        step_min: s,
        ..pt(T0, 1)
    };
    assert!(b.push("m", Channel::CONSUMPTION, step(20)).is_err());
    assert!(b.push("m", Channel::MAX_POWER, step(30)).is_err());
    assert!(b.push("m", Channel::CONSUMPTION, pt(-1, 1)).is_err());
    // Year 9999 cannot be written by every query and export: an embedder is refused it too.
    let year_9999 = b
        .push(
            "m",
            Channel::CONSUMPTION,
            pt(courbe::engine::MAX_TS_UTC + 1, 1),
        )
        .unwrap_err();
    assert!(
        year_9999.0.contains(courbe::engine::TS_RANGE),
        "{}",
        year_9999.0
    );
    assert!(b.is_empty());
    for s in [5, 10, 15, 30, 60] {
        b.push("m", Channel::PRODUCTION, step(s)).unwrap();
    }
    b.push(&"x".repeat(64), Channel::MAX_POWER, step(1440))
        .unwrap();
    assert_eq!(b.len(), 6);
}

#[test]
fn after_an_fsync_failure_the_store_refuses_every_write() {
    let fs = SimFs::new();
    let store = Store::open_with("/data", Options::default(), Arc::new(fs.clone())).unwrap();
    store.ingest(&day("m", T0, 0)).unwrap();
    fs.fail_nth(FaultOp::Sync, 0);
    let err = store.ingest(&day("m", T0 + 86_400, 0)).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let again = store.ingest(&day("m", T0 + 2 * 86_400, 0)).unwrap_err();
    assert!(matches!(again, Error::Closed), "{again}");
    assert!(matches!(store.flush(), Err(Error::Closed)));
    // What was acknowledged is still there, and only that.
    assert_eq!(read(&store, "m", Channel::CONSUMPTION).len(), 48);
    drop(store);
    let store = Store::open_with("/data", Options::default(), Arc::new(fs.crash())).unwrap();
    assert_eq!(read(&store, "m", Channel::CONSUMPTION).len(), 48);
}

#[test]
fn concurrent_writers_are_all_acknowledged_and_durable() {
    let fs = SimFs::new();
    let store =
        Arc::new(Store::open_with("/data", Options::default(), Arc::new(fs.clone())).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for d in 0..25 {
                    store
                        .ingest(&day(&format!("m{t}"), T0 + d * 86_400, t))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(store);
    let store = Store::open_with("/data", Options::default(), Arc::new(fs.crash())).unwrap();
    for t in 0..4 {
        assert_eq!(
            read(&store, &format!("m{t}"), Channel::CONSUMPTION).len(),
            25 * 48
        );
    }
}

#[test]
fn a_full_memtable_flushes_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        memtable_max_points: 100,
        ..Options::default()
    };
    let store = Store::open(dir.path(), options).unwrap();
    for d in 0..7 {
        store.ingest(&day("m", T0 + d * 86_400, 0)).unwrap();
    }
    // Flushed after days 3 and 6 (144 points each time, in the background), day 7 still in
    // memory.
    store.wait_for_flush().unwrap();
    assert_eq!(store.stats().segments, 2);
    assert_eq!(read(&store, "m", Channel::CONSUMPTION).len(), 7 * 48);
}

#[test]
fn a_snapshot_keeps_its_view_through_ingest_flush_compaction_and_erasure() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.ingest(&day("m", T0, 0)).unwrap();
    store.flush().unwrap();
    store.ingest(&day("m", T0 + 86_400, 0)).unwrap();
    let snap = store.snapshot();
    let before = snap.points("m", Channel::CONSUMPTION, 0, i64::MAX).unwrap();
    assert_eq!(before.len(), 96);
    // Overwrites, a flush, a compaction, then an erasure, all after the snapshot.
    store.ingest(&day("m", T0, 5000)).unwrap();
    store.flush().unwrap();
    store.compact().unwrap();
    assert_eq!(read(&store, "m", Channel::CONSUMPTION)[0].value, 5000);
    store.erase("m", None).unwrap();
    assert!(read(&store, "m", Channel::CONSUMPTION).is_empty());
    assert_eq!(
        snap.points("m", Channel::CONSUMPTION, 0, i64::MAX).unwrap(),
        before
    );
    assert!(snap.has_meter("m"));
    assert!(!store.snapshot().has_meter("m"));
}

#[test]
fn a_data_directory_opens_in_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let err = Store::open(dir.path(), Options::default())
        .err()
        .expect("second open fails");
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::WouldBlock),
        "{err}"
    );
    drop(store);
    Store::open(dir.path(), Options::default()).unwrap();
}

#[test]
fn a_later_reading_wins_over_the_memtable_being_flushed_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        memtable_max_points: 48,
        ..Options::default()
    };
    let store = Store::open(dir.path(), options).unwrap();
    let morning = |base: i32| {
        let mut b = Batch::new();
        for i in 0..24 {
            b.push(
                "m",
                Channel::CONSUMPTION,
                pt(T0 + i * 1800, base + i as i32),
            )
            .expect("valid");
        }
        b
    };
    for round in 0..20 {
        // A full day fills the memtable and hands it to the flush thread; the morning again,
        // with other values, goes to the new memtable while (or after) it is written.
        store.ingest(&day("m", T0, round * 100)).unwrap();
        store.ingest(&morning(round * 100 + 50)).unwrap();
        let want: Vec<i32> = (0..48)
            .map(|i| round * 100 + i + if i < 24 { 50 } else { 0 })
            .collect();
        let got: Vec<i32> = read(&store, "m", Channel::CONSUMPTION)
            .iter()
            .map(|p| p.value)
            .collect();
        assert_eq!(got, want, "round {round}");
    }
    store.wait_for_flush().unwrap();
    assert!(store.flush_count() >= 19, "{} flushes", store.flush_count());
}

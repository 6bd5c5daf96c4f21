//! Daily energy and index channels: checked on the way in, the register table durable before any
//! record names it, and every path (log replay, flush, compaction, reopen, erasure) keeps them.

use std::sync::Arc;

use courbe::engine::fs::testing::SimFs;
use courbe::engine::{Batch, Error, Options, Store};
use courbe::source::SeriesSource;
use courbe::{Channel, Point, Quality};

use super::read;

const METER: &str = "25000000000001";
const OTHER: &str = "25000000000002";

/// Europe/Paris midnight starting each of `days` local days from `(y, m, d)`, as UTC seconds.
pub fn paris_midnights(y: i16, m: i8, d: i8, days: i32) -> Vec<i64> {
    let tz = jiff::tz::TimeZone::get("Europe/Paris").expect("tzdb");
    let first = jiff::civil::date(y, m, d);
    (0..days)
        .map(|i| {
            first
                .checked_add(jiff::Span::new().days(i))
                .expect("date")
                .to_zoned(tz.clone())
                .expect("zoned")
                .timestamp()
                .as_second()
        })
        .collect()
}

fn daily(ts_utc: i64, value: i32) -> Point {
    Point {
        ts_utc,
        value,
        step_min: 1440,
        quality: if value % 7 == 0 {
            Quality::Estimated
        } else {
            Quality::Measured
        },
    }
}

/// A year of one meter's daily energy and its two running indexes (HP, HC), from 2024-01-01,
/// DST days included: the index of a day is the sum of the energy before it.
fn year(hp: Channel, hc: Channel) -> Vec<(Channel, Point)> {
    let mut out = Vec::new();
    let (mut ihp, mut ihc) = (12_345_678i32, 2_000_000i32);
    for (i, ts) in paris_midnights(2024, 1, 1, 366).into_iter().enumerate() {
        let e = 4_000 + (i as i32 * 37) % 9_000;
        out.push((hp, daily(ts, ihp)));
        out.push((hc, daily(ts, ihc)));
        out.push((Channel::DAILY_ENERGY, daily(ts, e)));
        ihp += e * 2 / 3;
        ihc += e - e * 2 / 3;
    }
    out
}

fn batch_of(meter: &str, rows: &[(Channel, Point)]) -> Batch {
    let mut b = Batch::new();
    for (c, p) in rows {
        b.push(meter, *c, *p).expect("valid point");
    }
    b
}

fn expected(rows: &[(Channel, Point)], channel: Channel) -> Vec<Point> {
    rows.iter()
        .filter(|(c, _)| *c == channel)
        .map(|(_, p)| *p)
        .collect()
}

fn check_year(store: &Store, rows: &[(Channel, Point)], hp: Channel, hc: Channel, when: &str) {
    for c in [Channel::DAILY_ENERGY, hp, hc] {
        assert_eq!(read(store, METER, c), expected(rows, c), "{when}: {c:?}");
    }
    let snap = store.snapshot();
    assert_eq!(snap.register_name(hp).as_deref(), Some("HP"), "{when}");
    assert_eq!(snap.register_name(hc).as_deref(), Some("HC"), "{when}");
    assert_eq!(snap.index_channel("HC"), Some(hc), "{when}");
    assert_eq!(snap.index_channel("BASE"), None, "{when}");
    assert!(snap.has_meter(METER), "{when}");
    assert_eq!(snap.meters(hc), vec![METER.to_string()], "{when}");
    assert_eq!(snap.meters(Channel::DAILY_ENERGY), vec![METER.to_string()]);
}

#[test]
fn daily_energy_and_indexes_come_back_through_log_replay_flush_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let hp = store.index_channel("HP").unwrap();
    let hc = store.index_channel("HC").unwrap();
    assert_eq!(
        (hp, hc),
        (Channel::index(0).unwrap(), Channel::index(1).unwrap())
    );
    let rows = year(hp, hc);
    // In three batches, the last one re-sending a month with other values (newest wins).
    let (a, b) = rows.split_at(rows.len() / 2);
    store.ingest(&batch_of(METER, a)).unwrap();
    check_year(&store, &[a, b].concat()[..a.len()], hp, hc, "memtable");
    store.ingest(&batch_of(METER, b)).unwrap();
    check_year(&store, &rows, hp, hc, "memtable");
    drop(store);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    check_year(&store, &rows, hp, hc, "log replay");
    store.flush().unwrap();
    check_year(&store, &rows, hp, hc, "flush");
    let mut newer = rows.clone();
    for (c, p) in newer.iter_mut().skip(3 * 40).take(3 * 31) {
        if *c == Channel::DAILY_ENERGY {
            p.value += 1;
        }
    }
    store
        .ingest(&batch_of(METER, &newer[3 * 40..3 * 71]))
        .unwrap();
    check_year(&store, &newer, hp, hc, "segment + memtable");
    store.flush().unwrap();
    check_year(&store, &newer, hp, hc, "two flushes");
    store.compact().unwrap();
    check_year(&store, &newer, hp, hc, "compaction");
    store.verify().unwrap();
    drop(store);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    check_year(&store, &newer, hp, hc, "reopen");
    store.verify().unwrap();
}

#[test]
fn a_register_keeps_its_number_across_restarts_and_a_new_name_takes_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let names = ["BASE", "HPJB", "DIST_HPH", "EASF01"];
    let channels: Vec<Channel> = names
        .iter()
        .map(|n| store.index_channel(n).unwrap())
        .collect();
    assert_eq!(store.index_channel("HPJB").unwrap(), channels[1]);
    drop(store);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let snap = store.snapshot();
    let registers: Vec<(Channel, String)> = snap
        .registers()
        .into_iter()
        .map(|(c, n)| (c, n.to_string()))
        .collect();
    let want: Vec<(Channel, String)> = channels
        .iter()
        .zip(names)
        .map(|(c, n)| (*c, n.to_string()))
        .collect();
    assert_eq!(registers, want);
    assert_eq!(
        store.index_channel("HCJR").unwrap(),
        Channel::index(4).unwrap()
    );
    assert_eq!(store.index_channel("BASE").unwrap(), channels[0]);
}

#[test]
fn a_bad_register_name_and_a_full_register_table_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    for bad in ["", "hp", "H P", "ABCDEFGHIJKLMNOPQ", "HÉ", "index:HP"] {
        let err = store.index_channel(bad).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("A-Z0-9_")),
            "{bad:?}: {err}"
        );
    }
    for i in 0..240 {
        store.index_channel(&format!("R{i}")).unwrap();
    }
    let err = store.index_channel("ONE_MORE").unwrap_err();
    assert!(err.to_string().contains("full"), "{err}");
    assert_eq!(
        store.index_channel("R239").unwrap(),
        Channel::index(239).unwrap()
    );
    drop(store);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.snapshot().registers().len(), 240);
}

#[test]
fn an_index_channel_not_in_the_register_table_is_refused_before_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.index_channel("BASE").unwrap();
    let ts = paris_midnights(2024, 1, 1, 1)[0];
    let b = batch_of(METER, &[(Channel::index(1).unwrap(), daily(ts, 5))]);
    let err = store.ingest(&b).unwrap_err();
    assert!(err.to_string().contains("register table"), "{err}");
    assert!(!store.snapshot().has_meter(METER));
}

#[test]
fn bad_daily_energy_and_index_points_are_refused_with_the_rule_they_break() {
    let midnight = paris_midnights(2024, 3, 31, 1)[0];
    let ok_index = Channel::index(0).unwrap();
    let cases: Vec<(Channel, Point, &str)> = vec![
        (
            Channel::DAILY_ENERGY,
            Point {
                step_min: 30,
                ..daily(midnight, 5)
            },
            "step 30 min is not valid for daily_energy",
        ),
        (
            Channel::DAILY_ENERGY,
            daily(midnight + 3600, 5),
            "not at a Europe/Paris midnight",
        ),
        // UTC midnight is 01:00 or 02:00 in Paris.
        (
            Channel::DAILY_ENERGY,
            daily(1_704_067_200, 5),
            "not at a Europe/Paris midnight",
        ),
        (Channel::DAILY_ENERGY, daily(midnight, -1), "negative"),
        (ok_index, daily(midnight, -5), "negative"),
        (
            ok_index,
            Point {
                step_min: 60,
                ..daily(midnight, 5)
            },
            "step 60 min is not valid for index",
        ),
        (
            Channel::MAX_POWER,
            Point {
                step_min: 30,
                ..daily(midnight, 5)
            },
            "step 30 min",
        ),
    ];
    for (channel, point, reason) in cases {
        let err = Batch::new().push(METER, channel, point).unwrap_err();
        assert!(err.0.contains(reason), "{channel:?} {point:?}: {}", err.0);
    }
    for (wh, ok) in [
        (0, true),
        (2_147_483_647, true),
        (2_147_483_648, false),
        (-1, false),
    ] {
        let got = courbe::engine::energy_value(ok_index, wh);
        assert_eq!(got.is_ok(), ok, "{wh}: {got:?}");
        if let Err(e) = got {
            assert!(
                e.0.contains(&wh.to_string()) && e.0.contains("2147483647"),
                "{}",
                e.0
            );
        }
    }
    // An index reading may be at any instant; daily energy on DST days is at local midnight.
    let mut b = Batch::new();
    b.push(METER, ok_index, daily(midnight + 3600 * 5 + 17, 5))
        .unwrap();
    for ts in paris_midnights(2024, 3, 30, 3)
        .into_iter()
        .chain(paris_midnights(2024, 10, 26, 3))
    {
        b.push(METER, Channel::DAILY_ENERGY, daily(ts, 5)).unwrap();
    }
}

#[test]
fn erasure_removes_the_curve_and_keeps_daily_energy_indexes_and_max_power() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let hp = store.index_channel("HP").unwrap();
    let hc = store.index_channel("HC").unwrap();
    let rows = year(hp, hc);
    let curve: Vec<(Channel, Point)> = (0..96)
        .map(|i| {
            (
                Channel::CONSUMPTION,
                super::pt(super::T0 + i * 1800, 0x5EED),
            )
        })
        .collect();
    let peak = (
        Channel::MAX_POWER,
        Point {
            ts_utc: super::T0 + 3600,
            value: 6000,
            step_min: 1440,
            quality: Quality::Measured,
        },
    );
    for meter in [METER, OTHER] {
        store.ingest(&batch_of(meter, &rows[..300])).unwrap();
        store.ingest(&batch_of(meter, &curve)).unwrap();
    }
    store.flush().unwrap();
    for meter in [METER, OTHER] {
        store.ingest(&batch_of(meter, &rows[300..])).unwrap();
        store.ingest(&batch_of(meter, &[peak])).unwrap();
    }
    // Consent governs the curve; the daily data every meter sends stay (D.224-26).
    let report = store.erase(METER, None).unwrap();
    assert_eq!(report.points_removed, curve.len() as u64);
    let check = |store: &Store| {
        assert!(read(store, METER, Channel::CONSUMPTION).is_empty());
        assert_eq!(
            read(store, OTHER, Channel::CONSUMPTION),
            expected(&curve, Channel::CONSUMPTION)
        );
        for c in [Channel::DAILY_ENERGY, hp, hc] {
            for meter in [METER, OTHER] {
                assert_eq!(read(store, meter, c), expected(&rows, c), "{meter} {c:?}");
            }
        }
        assert_eq!(read(store, METER, Channel::MAX_POWER), vec![peak.1]);
    };
    check(&store);
    drop(store);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    check(&store);
    store.verify().unwrap();
}

#[test]
fn at_every_sync_point_a_crash_keeps_each_acknowledged_index_point_and_its_register() {
    let fs = SimFs::new();
    fs.record_crash_images();
    let dir = std::path::Path::new("/data");
    let names = ["BASE", "HPJB", "HCJB", "DIST_HPH"];
    let ts = paris_midnights(2024, 1, 25, 20);
    // (sync points completed when acknowledged, register name, points)
    let mut acked: Vec<(u64, &str, Vec<Point>)> = Vec::new();
    {
        let store = Store::open_with(dir, Options::default(), Arc::new(fs.clone())).unwrap();
        for (k, name) in names.iter().enumerate() {
            let c = store.index_channel(name).unwrap();
            let points: Vec<Point> = ts.iter().map(|&t| daily(t, 1000 * k as i32)).collect();
            let rows: Vec<(Channel, Point)> = points.iter().map(|p| (c, *p)).collect();
            store.ingest(&batch_of(METER, &rows)).unwrap();
            acked.push((fs.sync_points(), name, points));
            if k == 1 {
                store.flush().unwrap();
            }
            if k == 2 {
                store.flush().unwrap();
                store.compact().unwrap();
            }
        }
    }
    let images = fs.take_crash_images();
    assert!(images.len() > 15, "only {} crash images", images.len());
    for image in &images {
        let ctx = format!(
            "crash at sync point {} (torn: {})",
            image.sync_point, image.torn
        );
        let store = Store::open_with(dir, Options::default(), Arc::new(image.to_fs()))
            .unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
        store
            .verify()
            .unwrap_or_else(|e| panic!("{ctx}: verify failed: {e}"));
        let snap = store.snapshot();
        // Registers keep their numbers: a prefix of the names, in order.
        let registers: Vec<String> = snap
            .registers()
            .iter()
            .map(|(_, n)| n.to_string())
            .collect();
        assert_eq!(registers[..], names[..registers.len()], "{ctx}");
        for (synced, name, points) in &acked {
            if *synced <= image.sync_point {
                let c = snap
                    .index_channel(name)
                    .unwrap_or_else(|| panic!("{ctx}: register {name} lost"));
                assert_eq!(&read(&store, METER, c), points, "{ctx}: {name}");
            }
        }
    }
}

/// A store with HP and HC indexes and daily energy of two meters over two months, flushed
/// (two segments), closed.
fn flushed_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let hp = store.index_channel("HP").unwrap();
    let hc = store.index_channel("HC").unwrap();
    let rows = year(hp, hc);
    for meter in [METER, OTHER] {
        store.ingest(&batch_of(meter, &rows[..3 * 60])).unwrap();
    }
    store.flush().unwrap();
    dir
}

fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_segment_naming_a_register_otherwise_than_the_manifest_is_corruption_at_open() {
    use courbe::engine::manifest::Manifest;
    let dir = flushed_store();
    let fs = courbe::engine::fs::RealFs;
    let mut man = Manifest::load(&fs, dir.path()).unwrap().unwrap();
    assert_eq!(man.registers.len(), 2);
    man.registers.swap(0, 1);
    man.commit(&fs, dir.path()).unwrap();
    let err = Store::open(dir.path(), Options::default())
        .err()
        .expect("open fails");
    match &err {
        Error::Corruption { path, detail, .. } => {
            assert!(segment_files(dir.path()).contains(path), "{err}");
            assert!(
                detail.contains("register") && detail.contains("manifest"),
                "{err}"
            );
        }
        other => panic!("{other}"),
    }
    // A manifest that lost its registers (a version 2 one) does not name them at all.
    man.registers.clear();
    man.commit(&fs, dir.path()).unwrap();
    let err = Store::open(dir.path(), Options::default())
        .err()
        .expect("open fails");
    assert!(
        matches!(&err, Error::Corruption { detail, .. } if detail.contains("no such register")),
        "{err}"
    );
}

#[test]
fn every_damaged_byte_of_a_v3_segment_tail_or_manifest_is_an_error_never_a_panic() {
    let dir = flushed_store();
    let seg = segment_files(dir.path()).remove(0);
    let manifest = dir.path().join("MANIFEST");
    let original_seg = std::fs::read(&seg).unwrap();
    let original_man = std::fs::read(&manifest).unwrap();
    // The register table, the fences and the footer of the segment; every byte of the manifest.
    let tail = original_seg.len().saturating_sub(400);
    for (path, original, from) in [(&seg, &original_seg, tail), (&manifest, &original_man, 0)] {
        for at in from..original.len() {
            let mut bytes = original.clone();
            bytes[at] ^= 0x21;
            std::fs::write(path, &bytes).unwrap();
            let opened = Store::open(dir.path(), Options::default()).and_then(|s| s.verify());
            let err = opened.err().unwrap_or_else(|| panic!("{path:?} byte {at}"));
            // A damaged manifest version reads as a newer one.
            let version_field = path == &manifest && (8..12).contains(&at);
            assert!(
                err.corruption_at().is_some()
                    || (version_field && matches!(err, Error::Compatibility { .. })),
                "{path:?} byte {at}: {err}"
            );
        }
        std::fs::write(path, original).unwrap();
    }
    // Cut short: the manifest's length check, a segment's length against the manifest.
    for (path, original) in [(&seg, &original_seg), (&manifest, &original_man)] {
        for len in [original.len() - 1, original.len() - 70, 20] {
            std::fs::write(path, &original[..len]).unwrap();
            let err = Store::open(dir.path(), Options::default())
                .err()
                .unwrap_or_else(|| panic!("{path:?} cut to {len}"));
            assert!(err.corruption_at().is_some(), "{err}");
        }
        std::fs::write(path, original).unwrap();
    }
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.verify().unwrap();
}

#[test]
fn a_register_whose_manifest_commit_fails_is_refused_and_the_store_refuses_writes_until_reopened() {
    use courbe::engine::fs::testing::FaultOp;
    let dir = std::path::Path::new("/data");
    let ts = paris_midnights(2024, 5, 1, 2);
    for (op, n) in [
        (FaultOp::Create, 0),
        (FaultOp::Write, 0),
        (FaultOp::Sync, 0),
        (FaultOp::Rename, 0),
        (FaultOp::Sync, 1),
    ] {
        let fs = SimFs::new();
        let store = Store::open_with(dir, Options::default(), Arc::new(fs.clone())).unwrap();
        let base = store.index_channel("BASE").unwrap();
        store
            .ingest(&batch_of(METER, &[(base, daily(ts[0], 10))]))
            .unwrap();
        fs.fail_nth(op, n);
        let err = store.index_channel("HP").expect_err("the commit fails");
        assert!(matches!(err, Error::Io { .. }), "{op:?} {n}: {err}");
        fs.clear_faults();
        // Nothing names HP in this process; every write is refused until reopened.
        assert_eq!(store.snapshot().index_channel("HP"), None);
        let again = store.ingest(&batch_of(METER, &[(base, daily(ts[1], 20))]));
        assert!(matches!(again, Err(Error::Closed)), "{op:?} {n}: {again:?}");
        drop(store);
        // After a crash the register is there or not (the rename decides), numbered 1 if there.
        let store = Store::open_with(dir, Options::default(), Arc::new(fs.crash())).unwrap();
        let snap = store.snapshot();
        assert_eq!(snap.index_channel("BASE"), Some(base));
        let hp = snap.index_channel("HP");
        assert!(
            hp.is_none() || hp == Channel::index(1),
            "{op:?} {n}: {hp:?}"
        );
        assert_eq!(read(&store, METER, base), vec![daily(ts[0], 10)]);
        let hp = store.index_channel("HP").unwrap();
        assert_eq!(hp, Channel::index(1).unwrap());
        store
            .ingest(&batch_of(METER, &[(hp, daily(ts[1], 5))]))
            .unwrap();
    }
}

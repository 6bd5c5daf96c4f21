//! Clock-band summaries (`engine::bands`): derived files that go with their segment, are
//! rebuilt when damaged, and never outlive an erasure.

use std::path::Path;

use courbe::engine::bands::DayBands;
use courbe::engine::{Batch, Options, Store};
use courbe::source::SeriesSource;
use courbe::Channel;

use super::pt;

const VICTIM: &str = "30000000000077";
const OTHER: &str = "30000000000078";
/// Paris day number of 2024-01-01.
const JAN1: i64 = 19_723;

/// `days` whole Paris days of half-hours from 2024-01-01 (winter: UTC+1), value `w` W.
fn days_of(meter: &str, days: i64, w: i32) -> Batch {
    let start = JAN1 * 86_400 - 3_600;
    let mut b = Batch::new();
    for i in 0..days * 48 {
        b.push(meter, Channel::CONSUMPTION, pt(start + i * 1_800, w))
            .unwrap();
    }
    b
}

fn bands_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bands"))
        .collect();
    out.sort();
    out
}

fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if bytes.windows(needle.len()).any(|w| w == needle) {
            found.push(path.display().to_string());
        }
    }
    found
}

fn store_with_two_meters(dir: &Path) -> Store {
    let store = Store::open(dir, Options::default()).unwrap();
    store.ingest(&days_of(VICTIM, 10, 1_000)).unwrap();
    store.ingest(&days_of(OTHER, 10, 500)).unwrap();
    store.flush().unwrap();
    store
}

#[test]
fn a_whole_day_of_readings_is_summed_into_its_clock_bands() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_two_meters(dir.path());
    let days = store
        .snapshot()
        .day_bands(VICTIM, JAN1, JAN1 + 10)
        .unwrap()
        .expect("one segment holds the meter");
    let h = 1_000 * 3_600;
    let want = DayBands {
        ws: [h, 5 * h, h, 15 * h, 2 * h, 0],
        count: 48,
        step_min: 30,
        first_at_start: true,
    };
    assert!(days.iter().all(|d| *d == want), "{days:?}");
    // Past the data: days without points.
    let more = store
        .snapshot()
        .day_bands(VICTIM, JAN1, JAN1 + 11)
        .unwrap()
        .unwrap();
    assert_eq!(more[10], DayBands::default());
    assert_eq!(bands_files(dir.path()).len(), 1);
}

#[test]
fn an_erased_meter_leaves_no_clock_band_summary_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_two_meters(dir.path());
    let other = store.snapshot().day_bands(OTHER, JAN1, JAN1 + 10).unwrap();
    assert!(other.is_some());
    assert!(!files_holding(dir.path(), VICTIM.as_bytes()).is_empty());
    let bands = bands_files(dir.path());
    assert_eq!(bands.len(), 1);
    assert!(!files_holding(dir.path(), VICTIM.as_bytes())
        .iter()
        .all(|f| !f.ends_with(".bands")));
    store.erase(VICTIM, None).unwrap();
    assert_eq!(
        files_holding(dir.path(), VICTIM.as_bytes()),
        Vec::<String>::new()
    );
    // The summary file went with its segment; the rewritten segment's is built from its own
    // blocks.
    assert!(!bands[0].exists());
    let snapshot = store.snapshot();
    assert_eq!(snapshot.day_bands(VICTIM, JAN1, JAN1 + 10).unwrap(), None);
    assert_eq!(snapshot.day_bands(OTHER, JAN1, JAN1 + 10).unwrap(), other);
    assert_eq!(
        files_holding(dir.path(), VICTIM.as_bytes()),
        Vec::<String>::new()
    );
}

#[test]
fn a_damaged_summary_file_is_rebuilt_and_never_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let want = {
        let store = store_with_two_meters(dir.path());
        let snapshot = store.snapshot();
        snapshot.day_bands(VICTIM, JAN1, JAN1 + 10).unwrap()
    };
    let path = bands_files(dir.path()).remove(0);
    let good = std::fs::read(&path).unwrap();
    let mut damaged: Vec<Vec<u8>> = (0..good.len())
        .step_by(7)
        .map(|cut| good[..cut].to_vec())
        .collect();
    for at in [0, 9, 13, 21, 25, 29, 37, 41, good.len() / 2, good.len() - 1] {
        let mut bytes = good.clone();
        bytes[at] ^= 0x40;
        damaged.push(bytes);
    }
    damaged.push(vec![0xff; 4_096]);
    for bytes in damaged {
        std::fs::write(&path, &bytes).unwrap();
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let got = store.snapshot().day_bands(VICTIM, JAN1, JAN1 + 10).unwrap();
        assert_eq!(got, want, "{} bytes", bytes.len());
        drop(store);
        assert_eq!(std::fs::read(&path).unwrap(), good, "rewritten whole");
    }
}

#[test]
fn a_summary_file_whose_segment_is_gone_is_garbage_at_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(store_with_two_meters(dir.path()));
    let stray = dir.path().join(courbe::engine::bands::file_name(999_999));
    std::fs::write(&stray, b"CRBBANDS").unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert!(!stray.exists());
    assert!(store
        .snapshot()
        .day_bands(OTHER, JAN1, JAN1 + 3)
        .unwrap()
        .is_some());
}

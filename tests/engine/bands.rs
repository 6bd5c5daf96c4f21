//! Clock-band summaries (`engine::bands`): derived files that go with their segment, are
//! rebuilt when damaged, never outlive an erasure, and are built in the background when asked
//! (`Options::background_summaries`) without a question waiting on a wrong one.

use std::path::Path;
use std::sync::Arc;

use courbe::engine::bands::{check_file, DayBands};
use courbe::engine::fs::testing::SimFs;
use courbe::engine::fs::FileSystem;
use courbe::engine::manifest::segment_file_name;
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

fn background() -> Options {
    Options {
        background_summaries: true,
        ..Options::default()
    }
}

/// `meters` meters of `days` whole Paris days from 2024-01-01, values unique to the meter and
/// the half-hour.
fn fleet_days(meters: usize, days: i64) -> Batch {
    let start = JAN1 * 86_400 - 3_600;
    let mut b = Batch::new();
    for m in 0..meters {
        for i in 0..days * 48 {
            let w = (m as i64 * 37 + i * 11) % 4_000;
            b.push(
                &format!("3000000000{m:04}"),
                Channel::CONSUMPTION,
                pt(start + i * 1_800, w as i32),
            )
            .unwrap();
        }
    }
    b
}

#[test]
fn summaries_are_built_in_the_background_after_a_flush_and_a_compaction_without_a_question() {
    let dir = tempfile::tempdir().unwrap();
    let want = {
        let other = tempfile::tempdir().unwrap();
        let store = store_with_two_meters(other.path());
        let snapshot = store.snapshot();
        (
            snapshot.day_bands(VICTIM, JAN1, JAN1 + 10).unwrap(),
            snapshot.day_bands(OTHER, JAN1, JAN1 + 10).unwrap(),
        )
    };
    let store = Store::open(dir.path(), background()).unwrap();
    store.ingest(&days_of(VICTIM, 10, 1_000)).unwrap();
    store.flush().unwrap();
    store.ingest(&days_of(OTHER, 10, 500)).unwrap();
    store.flush().unwrap();
    store.wait_for_summaries();
    assert_eq!(bands_files(dir.path()).len(), 2, "one per flushed segment");
    store.compact().unwrap();
    store.wait_for_summaries();
    let files = bands_files(dir.path());
    assert_eq!(files.len(), 1, "the inputs' went with them: {files:?}");
    let bytes = std::fs::read(&files[0]).unwrap();
    let (file_id, _) = check_file(&bytes).expect("reads back whole");
    assert!(dir.path().join(segment_file_name(file_id)).exists());
    assert_eq!(store.summaries_built(), 3);
    // A question reads the file the builder wrote (it is not rebuilt) and answers what a
    // store without the builder answers.
    let snapshot = store.snapshot();
    let got = (
        snapshot.day_bands(VICTIM, JAN1, JAN1 + 10).unwrap(),
        snapshot.day_bands(OTHER, JAN1, JAN1 + 10).unwrap(),
    );
    assert_eq!(got, want);
    assert_eq!(std::fs::read(&files[0]).unwrap(), bytes);
}

#[test]
fn summaries_are_built_at_open_for_a_segment_without_one_and_a_damaged_one_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    drop(store_with_two_meters(dir.path()));
    assert_eq!(bands_files(dir.path()), Vec::<std::path::PathBuf>::new());
    let store = Store::open(dir.path(), background()).unwrap();
    store.wait_for_summaries();
    let files = bands_files(dir.path());
    assert_eq!(files.len(), 1);
    let good = std::fs::read(&files[0]).unwrap();
    assert!(check_file(&good).is_ok());
    drop(store);
    // Whole: found at open and left alone.
    let store = Store::open(dir.path(), background()).unwrap();
    store.wait_for_summaries();
    assert_eq!(store.summaries_built(), 0);
    drop(store);
    // Damaged: rebuilt at open, not by a question.
    let mut bytes = good.clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&files[0], &bytes).unwrap();
    let store = Store::open(dir.path(), background()).unwrap();
    store.wait_for_summaries();
    assert_eq!(store.summaries_built(), 1);
    assert_eq!(std::fs::read(&files[0]).unwrap(), good);
}

#[test]
fn a_question_asked_while_the_builder_works_answers_what_a_store_without_it_answers() {
    let meters = 300;
    let batch = fleet_days(meters, 31);
    let reference = tempfile::tempdir().unwrap();
    let store = Store::open(reference.path(), Options::default()).unwrap();
    store.ingest(&batch).unwrap();
    store.flush().unwrap();
    let ids: Vec<String> = (0..meters)
        .step_by(7)
        .map(|m| format!("3000000000{m:04}"))
        .collect();
    let want: Vec<_> = ids
        .iter()
        .map(|id| store.snapshot().day_bands(id, JAN1, JAN1 + 31).unwrap())
        .collect();
    assert!(want.iter().all(Option::is_some));
    drop(store);
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), background()).unwrap();
        store.ingest(&batch).unwrap();
        store.flush().unwrap();
        // At once, racing the builder: the question builds the file or waits for it.
        let got: Vec<_> = ids
            .iter()
            .map(|id| store.snapshot().day_bands(id, JAN1, JAN1 + 31).unwrap())
            .collect();
        assert_eq!(got, want);
        store.wait_for_summaries();
        let files = bands_files(dir.path());
        assert_eq!(files.len(), 1);
        assert!(check_file(&std::fs::read(&files[0]).unwrap()).is_ok());
    }
}

/// Every summary file of `fs`'s `dir` reads back whole and is for a live segment; no
/// temporary file is left.
fn assert_summaries_whole(fs: &SimFs, dir: &Path, store: &Store) {
    let live: Vec<u64> = store
        .committed_manifest()
        .segments
        .iter()
        .map(|s| s.file_id)
        .collect();
    for (path, bytes) in fs.files() {
        if path.parent() != Some(dir) {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(!name.ends_with(".tmp"), "{name} left behind");
        if name.ends_with(".bands") {
            let (file_id, _) = check_file(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(live.contains(&file_id), "{name} outlived its segment");
        }
    }
}

#[test]
fn a_store_dropped_or_crashed_while_building_summaries_leaves_no_file_a_question_trusts() {
    let fs = SimFs::new();
    let dir = Path::new("/data");
    let ids: Vec<String> = (0..200)
        .step_by(23)
        .map(|m| format!("3000000000{m:04}"))
        .collect();
    {
        let store = Store::open_with(dir, background(), Arc::new(fs.clone())).unwrap();
        fs.record_crash_images();
        store.ingest(&fleet_days(200, 20)).unwrap();
        store.flush().unwrap();
        // Written and renamed, never synced: the next directory sync makes its name durable
        // with whatever of its bytes reached the disk.
        store.wait_for_summaries();
        store.ingest(&fleet_days(120, 25)).unwrap();
        store.flush().unwrap();
        store.compact().unwrap();
        // Dropped at once: the builder is stopped between two series, or has finished.
    }
    let images = fs.take_crash_images();
    assert!(images.len() > 10, "only {} crash images", images.len());
    let dropped = fs.crash();
    let mut torn_summaries = 0;
    for image in images
        .iter()
        .map(|i| i.to_fs())
        .chain([fs.clone(), dropped])
    {
        torn_summaries += image
            .files()
            .iter()
            .filter(|(p, b)| {
                let name = p.to_string_lossy();
                (name.ends_with(".bands") && check_file(b).is_err()) || name.ends_with(".tmp")
            })
            .count();
        // The answers of the segments alone: every summary file removed first.
        let bare = image.crash();
        for (path, _) in bare.files() {
            if path.to_string_lossy().ends_with(".bands") {
                bare.remove(&path).unwrap();
            }
        }
        let want: Vec<_> = {
            let store = Store::open_with(dir, Options::default(), Arc::new(bare)).unwrap();
            let snapshot = store.snapshot();
            ids.iter()
                .map(|id| snapshot.day_bands(id, JAN1, JAN1 + 25).unwrap())
                .collect()
        };
        let store = Store::open_with(dir, background(), Arc::new(image.clone())).unwrap();
        store.wait_for_summaries();
        assert_summaries_whole(&image, dir, &store);
        let snapshot = store.snapshot();
        let got: Vec<_> = ids
            .iter()
            .map(|id| snapshot.day_bands(id, JAN1, JAN1 + 25).unwrap())
            .collect();
        assert_eq!(got, want);
    }
    // The attack reached what it aims at: some image held a torn summary or a temporary file.
    assert!(torn_summaries > 0);
}

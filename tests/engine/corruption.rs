//! Damaged files: each gives an error naming the file and the offset; the rest of the store
//! still opens where the design allows.

use std::path::{Path, PathBuf};

use courbe::engine::{Batch, Error, Options, Store};
use courbe::source::{Chunk, SeriesSource};
use courbe::Channel;

use super::{pt, read, T0};

fn day(meter: &str, d: i64) -> Batch {
    let mut b = Batch::new();
    for i in 0..48 {
        b.push(
            meter,
            Channel::CONSUMPTION,
            pt(T0 + d * 86_400 + i * 1800, 1000 + i as i32),
        )
        .unwrap();
    }
    b
}

fn files_with(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    v.sort();
    v
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// A store with three log records (three batches), nothing flushed.
fn three_records() -> (tempfile::TempDir, PathBuf, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        for d in 0..3 {
            store.ingest(&day("m", d)).unwrap();
        }
    }
    let logs = files_with(dir.path(), "wal-");
    let log = logs.last().unwrap().clone();
    let bytes = std::fs::read(&log).unwrap();
    let mut starts = vec![16u64];
    for _ in 0..2 {
        let at = *starts.last().unwrap() as usize;
        starts.push((at + 8 + u32_at(&bytes, at) as usize) as u64);
    }
    (dir, log, starts)
}

#[test]
fn a_flipped_byte_in_a_log_record_followed_by_a_valid_one_is_corruption_at_its_offset() {
    let (dir, log, starts) = three_records();
    flip(&log, starts[1] + 40);
    let err = Store::open(dir.path(), Options::default())
        .err()
        .expect("open fails");
    match err {
        Error::Corruption { path, offset, .. } => {
            assert_eq!(path, log);
            assert_eq!(offset, starts[1]);
        }
        other => panic!("expected corruption, got {other}"),
    }
}

#[test]
fn a_torn_last_record_is_truncated_and_the_rest_reads_back() {
    let (dir, log, starts) = three_records();
    let len = std::fs::metadata(&log).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(len - 100).unwrap();
    drop(f);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(read(&store, "m", Channel::CONSUMPTION).len(), 2 * 48);
    assert_eq!(std::fs::metadata(&log).unwrap().len(), starts[2]);
    drop(store);
    // The cut is durable and the store opens again with the next log generation.
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(read(&store, "m", Channel::CONSUMPTION).len(), 2 * 48);
}

#[test]
fn a_bad_checksum_on_the_last_record_is_a_torn_write() {
    let (dir, log, starts) = three_records();
    flip(&log, starts[2] + 30);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(read(&store, "m", Channel::CONSUMPTION).len(), 2 * 48);
}

/// A store with two meters flushed to one segment, and the segment's path.
fn one_segment() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        store.ingest(&day("m-a", 0)).unwrap();
        store.ingest(&day("m-b", 0)).unwrap();
        store.flush().unwrap();
    }
    let seg = files_with(dir.path(), "seg-").pop().unwrap();
    (dir, seg)
}

fn expect_corruption_in(err: Error, file: &Path, within: std::ops::Range<u64>) {
    match err.corruption_at() {
        Some((path, offset)) => {
            assert_eq!(path, file);
            assert!(
                within.contains(&offset),
                "offset {offset} not in {within:?}"
            );
        }
        None => panic!("expected corruption, got {err}"),
    }
}

#[test]
fn a_flipped_byte_in_a_segment_block_fails_that_series_only_naming_file_and_offset() {
    let (dir, seg) = one_segment();
    let offset = {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let snap = store.snapshot();
        let chunks = snap
            .chunks("m-a", Channel::CONSUMPTION, 0, i64::MAX)
            .unwrap();
        let [Chunk::Block(b)] = chunks.as_slice() else {
            panic!("one block expected");
        };
        b.offset
    };
    flip(&seg, offset + 20);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    let err = store
        .snapshot()
        .points("m-a", Channel::CONSUMPTION, 0, i64::MAX)
        .unwrap_err();
    expect_corruption_in(err, &seg, offset..offset + 21);
    let snap = store.snapshot();
    let message = snap
        .chunks("m-a", Channel::CONSUMPTION, 0, i64::MAX)
        .unwrap()
        .iter()
        .map(|c| c.decode_into(&mut Default::default()))
        .find_map(Result::err)
        .expect("decoding the damaged block fails")
        .message;
    assert!(message.contains(&offset.to_string()), "{message}");
    assert_eq!(read(&store, "m-b", Channel::CONSUMPTION).len(), 48);
    expect_corruption_in(store.verify().unwrap_err(), &seg, 0..len);
}

#[test]
fn a_flipped_byte_in_a_segment_index_is_corruption_naming_file_and_offset() {
    let (dir, seg) = one_segment();
    let bytes = std::fs::read(&seg).unwrap();
    let footer = bytes.len() - storage_format::segment::FOOTER_LEN;
    let index = u64::from_le_bytes(bytes[footer..footer + 8].try_into().unwrap());
    flip(
        &seg,
        index + storage_format::segment::PAGE_HEADER_LEN as u64 + 3,
    );
    let err = match Store::open(dir.path(), Options::default()) {
        // The index is checked when first read...
        Ok(store) => store
            .snapshot()
            .points("m-a", Channel::CONSUMPTION, 0, i64::MAX)
            .unwrap_err(),
        // ...or at open, when the format checks it there.
        Err(e) => e,
    };
    expect_corruption_in(err, &seg, index..footer as u64);
}

#[test]
fn a_flipped_byte_in_a_segment_footer_fails_open_naming_file_and_offset() {
    let (dir, seg) = one_segment();
    let len = std::fs::metadata(&seg).unwrap().len();
    let footer = len - storage_format::segment::FOOTER_LEN as u64;
    flip(&seg, footer + 17);
    let err = Store::open(dir.path(), Options::default())
        .err()
        .expect("open fails");
    expect_corruption_in(err, &seg, footer..len);
}

#[test]
fn a_flipped_byte_in_the_manifest_fails_open_naming_it() {
    let (dir, _) = one_segment();
    let manifest = dir.path().join("MANIFEST");
    flip(&manifest, 30);
    let err = Store::open(dir.path(), Options::default())
        .err()
        .expect("open fails");
    expect_corruption_in(err, &manifest, 0..100);
}

#[test]
fn a_segment_shorter_than_the_manifest_says_is_corruption() {
    let (dir, seg) = one_segment();
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 10).unwrap();
    drop(f);
    let err = Store::open(dir.path(), Options::default())
        .err()
        .expect("open fails");
    expect_corruption_in(err, &seg, 0..len);
}

#[test]
fn a_format_error_keeps_the_format_crates_kind_offset_and_values_as_its_source() {
    let (dir, seg) = one_segment();
    let len = std::fs::metadata(&seg).unwrap().len();
    let footer = len - storage_format::segment::FOOTER_LEN as u64;
    flip(&seg, footer + 17);
    let err = Store::open(dir.path(), Options::default())
        .err()
        .expect("open fails");
    let Error::Format { path, source } = &err else {
        panic!("expected a format error, got {err}");
    };
    assert_eq!(path, &seg);
    assert!(
        matches!(
            source.kind(),
            storage_format::ErrorKind::Corruption | storage_format::ErrorKind::Truncated
        ),
        "{source:?}"
    );
    // The format crate's values, not a sentence: what it expected and what it found.
    if let storage_format::Error::Corruption {
        expected, found, ..
    } = source
    {
        assert_ne!(expected, found);
    }
    let chained = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<storage_format::Error>())
        .expect("the format error is the source");
    assert_eq!(chained, source);
    assert!(
        err.to_string().contains(&seg.display().to_string()),
        "{err}"
    );
    // Wrapped by governance, the engine's error stays reachable.
    let wrapped = courbe::governance::Error::Engine(err);
    let engine = std::error::Error::source(&wrapped)
        .and_then(|s| s.downcast_ref::<Error>())
        .expect("governance wraps the engine's error");
    assert!(engine.corruption_at().is_some());
}

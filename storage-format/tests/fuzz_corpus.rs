//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same drivers the
//! fuzz targets run, so every build re-checks what fuzzing once found interesting.

use std::path::{Path, PathBuf};

use crate::fuzz_drivers;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("lists the corpus").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no seeds", dir.display());
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("reads a corpus file");
            (path, bytes)
        })
        .collect()
}

#[test]
fn the_block_decode_corpus_replays_without_panic() {
    for (_, bytes) in corpus("block_decode") {
        fuzz_drivers::block_decode(&bytes);
    }
}

#[test]
fn the_segment_decode_corpus_replays_without_panic() {
    for (_, bytes) in corpus("segment_decode") {
        fuzz_drivers::segment_decode(&bytes);
    }
}

#[test]
fn the_block_roundtrip_corpus_replays_without_panic() {
    for (_, bytes) in corpus("block_roundtrip") {
        fuzz_drivers::block_roundtrip(&bytes);
    }
}

#[test]
fn the_segment_structure_corpus_replays_without_panic() {
    for (_, bytes) in corpus("segment_structure") {
        fuzz_drivers::segment_structure(&bytes);
    }
}

/// Found by `segment_structure`: a footer whose fence offset lies far past the end of the file
/// (it crashed the crc-repairing harness; the reader always rejected it).
#[test]
fn a_fence_offset_past_the_end_of_the_file_is_corruption() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus/segment_structure/regression-huge-fence-offset");
    let mut bytes = std::fs::read(path).expect("reads the regression file");
    fuzz_drivers::repair_crcs(&mut bytes);
    let err = storage_format::segment::Segment::open(&bytes).unwrap_err();
    assert_eq!(err.kind(), storage_format::ErrorKind::Corruption, "{err}");
}

#[test]
fn the_segment_roundtrip_corpus_replays_without_panic() {
    for (_, bytes) in corpus("segment_roundtrip") {
        fuzz_drivers::segment_roundtrip(&bytes);
    }
}

#[test]
fn seeded_random_inputs_through_the_v3_drivers_never_panic() {
    let mut rng = crate::util::Rng::new(0x5EED_0003);
    for i in 0..3_000 {
        let len = 16 + rng.below(900) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        fuzz_drivers::segment_roundtrip(&bytes);
        if i % 10 == 0 {
            fuzz_drivers::segment_structure(&bytes);
        }
    }
}

//! The manifest: which segment files are live and which log generation to replay from.
//!
//! Replaced atomically: written whole to `MANIFEST.tmp`, synced, renamed over `MANIFEST`, and the
//! directory synced. A crash leaves either the old or the new manifest; files it does not name
//! (a segment written by an unfinished flush, a `.tmp`) are deleted at open.
//!
//! ```text
//! MANIFEST = magic "CRBMAN\0\x01" (8) | version u32 (= 1) | body_len u32 | crc u32 | body
//!            crc: CRC-32 (IEEE) of the body
//! body     = wal_generation u64     first log generation to replay; older logs are obsolete
//!            next_seq u64           sequence number of the next segment written
//!            next_file_id u64       number of the next segment file name
//!            newest_ts i64          newest point ts_utc ever flushed (i64::MIN: none)
//!            segment_count u32, then per segment (28 bytes):
//!              file_id u64 | seq u64 | partition u32 | len u64   (file seg-{file_id:020}.seg)
//! ```
//! Little-endian throughout; the body is exactly as long as `segment_count` implies.

use std::path::{Path, PathBuf};

use super::fs::FileSystem;
use super::Error;

pub const FILE_NAME: &str = "MANIFEST";
pub const TMP_NAME: &str = "MANIFEST.tmp";
pub const MAGIC: [u8; 8] = *b"CRBMAN\0\x01";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 8 + 4 + 4 + 4;
pub const FIXED_BODY_LEN: usize = 8 + 8 + 8 + 8 + 4;
pub const ENTRY_LEN: usize = 8 + 8 + 4 + 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentEntry {
    pub file_id: u64,
    pub seq: u64,
    pub partition: u32,
    pub len: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub wal_generation: u64,
    pub next_seq: u64,
    pub next_file_id: u64,
    pub newest_ts: i64,
    pub segments: Vec<SegmentEntry>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            wal_generation: 1,
            next_seq: 1,
            next_file_id: 1,
            newest_ts: i64::MIN,
            segments: Vec::new(),
        }
    }
}

pub fn segment_file_name(file_id: u64) -> String {
    format!("seg-{file_id:020}.seg")
}

pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".seg")?
        .parse()
        .ok()
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(FIXED_BODY_LEN + self.segments.len() * ENTRY_LEN);
        body.extend_from_slice(&self.wal_generation.to_le_bytes());
        body.extend_from_slice(&self.next_seq.to_le_bytes());
        body.extend_from_slice(&self.next_file_id.to_le_bytes());
        body.extend_from_slice(&self.newest_ts.to_le_bytes());
        body.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        for s in &self.segments {
            body.extend_from_slice(&s.file_id.to_le_bytes());
            body.extend_from_slice(&s.seq.to_le_bytes());
            body.extend_from_slice(&s.partition.to_le_bytes());
            body.extend_from_slice(&s.len.to_le_bytes());
        }
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    pub fn decode(bytes: &[u8], path: &Path) -> Result<Manifest, Error> {
        let corrupt = |offset: usize, detail: &str| Error::Corruption {
            path: path.to_path_buf(),
            offset: offset as u64,
            detail: detail.to_string(),
        };
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
        };
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        if bytes.get(..8) != Some(&MAGIC[..]) {
            return Err(corrupt(0, "bad manifest magic"));
        }
        let version = u32_at(8).ok_or_else(|| corrupt(8, "manifest truncated"))?;
        if version > VERSION {
            return Err(Error::Compatibility {
                path: path.to_path_buf(),
                detail: format!("manifest version {version}, this build reads up to {VERSION}"),
            });
        }
        let body_len = u32_at(12).ok_or_else(|| corrupt(12, "manifest truncated"))? as usize;
        let crc = u32_at(16).ok_or_else(|| corrupt(16, "manifest truncated"))?;
        let body = bytes
            .get(HEADER_LEN..)
            .filter(|b| b.len() == body_len)
            .ok_or_else(|| corrupt(12, "manifest length does not match its file"))?;
        if crc32fast::hash(body) != crc {
            return Err(corrupt(16, "manifest checksum mismatch"));
        }
        let b = HEADER_LEN;
        let field = |at: usize| u64_at(b + at).ok_or_else(|| corrupt(b + at, "manifest truncated"));
        let wal_generation = field(0)?;
        let next_seq = field(8)?;
        let next_file_id = field(16)?;
        let newest_ts = field(24)? as i64;
        let count = u32_at(b + 32).ok_or_else(|| corrupt(b + 32, "manifest truncated"))? as usize;
        if body_len != FIXED_BODY_LEN + count.saturating_mul(ENTRY_LEN) {
            return Err(corrupt(
                b + 32,
                "segment count does not match the body length",
            ));
        }
        let mut segments = Vec::with_capacity(count);
        for i in 0..count {
            let at = b + FIXED_BODY_LEN + i * ENTRY_LEN;
            let bad = || corrupt(at, "manifest entry truncated");
            let entry = SegmentEntry {
                file_id: u64_at(at).ok_or_else(bad)?,
                seq: u64_at(at + 8).ok_or_else(bad)?,
                partition: u32_at(at + 16).ok_or_else(bad)?,
                len: u64_at(at + 20).ok_or_else(bad)?,
            };
            if entry.file_id >= next_file_id || entry.seq >= next_seq {
                return Err(corrupt(at, "segment entry beyond the manifest's counters"));
            }
            segments.push(entry);
        }
        Ok(Manifest {
            wal_generation,
            next_seq,
            next_file_id,
            newest_ts,
            segments,
        })
    }

    /// Reads `dir/MANIFEST`; `None` when the store has none yet.
    pub fn load(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Manifest>, Error> {
        let path = dir.join(FILE_NAME);
        match fs.read(&path) {
            Ok(bytes) => Manifest::decode(&bytes, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    /// Replaces `dir/MANIFEST` atomically and durably (with every name created in `dir` so far).
    pub fn commit(&self, fs: &dyn FileSystem, dir: &Path) -> Result<(), Error> {
        let tmp = dir.join(TMP_NAME);
        let io = |path: PathBuf| move |source| Error::Io { path, source };
        let mut file = fs.create(&tmp).map_err(io(tmp.clone()))?;
        file.write_all(&self.encode()).map_err(io(tmp.clone()))?;
        file.sync().map_err(io(tmp.clone()))?;
        drop(file);
        fs.rename(&tmp, &dir.join(FILE_NAME))
            .map_err(io(tmp.clone()))?;
        fs.sync_dir(dir).map_err(io(dir.to_path_buf()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            wal_generation: 7,
            next_seq: 10,
            next_file_id: 12,
            newest_ts: 1_700_000_000,
            segments: vec![SegmentEntry {
                file_id: 11,
                seq: 9,
                partition: 647,
                len: 4096,
            }],
        }
    }

    #[test]
    fn a_manifest_round_trips() {
        let m = sample();
        let back = Manifest::decode(&m.encode(), Path::new("M"));
        assert_eq!(back.ok(), Some(m));
    }

    #[test]
    fn every_prefix_and_every_flipped_byte_of_a_manifest_is_an_error() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(
                Manifest::decode(&bytes[..n], Path::new("M")).is_err(),
                "prefix {n}"
            );
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(Manifest::decode(&b, Path::new("M")).is_err(), "byte {i}");
        }
    }

    #[test]
    fn the_spec_sizes_are_pinned() {
        assert_eq!(HEADER_LEN, 20);
        assert_eq!(FIXED_BODY_LEN, 36);
        assert_eq!(ENTRY_LEN, 28);
    }
}

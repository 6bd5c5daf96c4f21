//! The manifest: which segment files are live, which log generation to replay from, the
//! erasures begun but not finished, and the register table.
//!
//! Replaced atomically: written whole to `MANIFEST.tmp`, synced, renamed over `MANIFEST`, and the
//! directory synced. A crash leaves either the old or the new manifest; files it does not name
//! (a segment written by an unfinished flush, a `.tmp`) are deleted at open.
//!
//! ```text
//! MANIFEST = magic "CRBMAN\0\x01" (8) | version u32 (1, 2 or 3) | body_len u32 | crc u32 | body
//!            crc: CRC-32 (IEEE) of the body
//! body     = wal_generation u64     first log generation to replay; older logs are obsolete
//!            next_seq u64           sequence number of the next segment written
//!            next_file_id u64       number of the next segment file name
//!            newest_ts i64          newest point ts_utc ever flushed (i64::MIN: none)
//!            segment_count u32, then per segment (28 bytes):
//!              file_id u64 | seq u64 | partition u32 | len u64   (file seg-{file_id:020}.seg)
//!            version 2 only:
//!            erase_count u32, then per pending erasure (17 + meter_len bytes):
//!              meter_len u8 (1..=64) | meter (meter_len bytes of [0-9A-Za-z_.-])
//!              | from_utc i64 | to_utc i64   erased: [from_utc, to_utc), from_utc < to_utc;
//!                                            the whole curve is [i64::MIN, i64::MAX)
//!            version 3 only:
//!            register_count u8 (0..=240), then per register, by register number from 0:
//!              name_len u8 (1..=16) | name (name_len bytes of [A-Z0-9_], unique)
//! ```
//! Little-endian throughout; the body is exactly as long as its counts imply. Version 1 (no
//! pending erasures) is read as a manifest with none, versions 1 and 2 as one with an empty
//! register table; this build writes version 3.
//!
//! The register table gives each register name its number: register `r` is the index channel
//! `Channel::index(r)` (code `16 + r`). Numbers are assigned on first use
//! (`Store::index_channel`), in order, never reused nor renamed, and the manifest naming one is
//! committed before any log record or segment holds its channel.
//!
//! A pending erasure is an intent: it is committed before any file changes for it, the
//! erasure's last commit drops it, and `Store::open` completes every one it finds before
//! returning. So a crash before the intent is durable leaves the meter untouched, and after it
//! the meter is wholly erased when the store is next opened.

use std::path::{Path, PathBuf};

use super::fs::FileSystem;
use super::Error;

pub const FILE_NAME: &str = "MANIFEST";
pub const TMP_NAME: &str = "MANIFEST.tmp";
pub const MAGIC: [u8; 8] = *b"CRBMAN\0\x01";
/// The version this build writes; it reads every version up to it.
pub const VERSION: u32 = 3;
pub const HEADER_LEN: usize = 8 + 4 + 4 + 4;
/// The body before the segment entries (every version).
pub const FIXED_BODY_LEN: usize = 8 + 8 + 8 + 8 + 4;
pub const ENTRY_LEN: usize = 8 + 8 + 4 + 8;
/// `erase_count` (version 2).
pub const ERASE_COUNT_LEN: usize = 4;
/// A pending erasure's bytes besides its meter id.
pub const ERASE_FIXED_LEN: usize = 1 + RANGE_LEN;
/// `from_utc` and `to_utc` of a pending erasure.
const RANGE_LEN: usize = 8 + 8;

/// Whether a manifest of `version` lists pending erasures.
pub fn supports_pending_erasures(version: u32) -> bool {
    version >= 2
}

/// Whether a manifest of `version` holds the register table.
pub fn supports_registers(version: u32) -> bool {
    version >= 3
}

/// An erasure begun and not yet finished: the curve of `meter` over `[from_utc, to_utc)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingErase {
    pub meter: String,
    pub from_utc: i64,
    pub to_utc: i64,
}

impl PendingErase {
    /// `range_utc: None` is the whole curve.
    pub fn new(meter: &str, range_utc: Option<(i64, i64)>) -> PendingErase {
        let (from_utc, to_utc) = range_utc.unwrap_or((i64::MIN, i64::MAX));
        PendingErase {
            meter: meter.to_string(),
            from_utc,
            to_utc,
        }
    }

    /// The range, `None` for the whole curve.
    pub fn range_utc(&self) -> Option<(i64, i64)> {
        let whole = self.from_utc == i64::MIN && self.to_utc == i64::MAX;
        (!whole).then_some((self.from_utc, self.to_utc))
    }
}

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
    /// Erasures to complete (in the order begun) before the store is used.
    pub pending_erasures: Vec<PendingErase>,
    /// Register names by register number (at most `Channel::REGISTERS_MAX`).
    pub registers: Vec<std::sync::Arc<str>>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            wal_generation: 1,
            next_seq: 1,
            next_file_id: 1,
            newest_ts: i64::MIN,
            segments: Vec::new(),
            pending_erasures: Vec::new(),
            registers: Vec::new(),
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
        body.extend_from_slice(&(self.pending_erasures.len() as u32).to_le_bytes());
        for e in &self.pending_erasures {
            // Meter ids are 1 to 64 bytes (checked by `Store::erase`).
            body.push(e.meter.len() as u8);
            body.extend_from_slice(e.meter.as_bytes());
            body.extend_from_slice(&e.from_utc.to_le_bytes());
            body.extend_from_slice(&e.to_utc.to_le_bytes());
        }
        // At most 240 names of 1 to 16 bytes (checked by `Store::index_channel`).
        body.push(self.registers.len() as u8);
        for name in &self.registers {
            body.push(name.len() as u8);
            body.extend_from_slice(name.as_bytes());
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
        let segments_end = FIXED_BODY_LEN.saturating_add(count.saturating_mul(ENTRY_LEN));
        let fits = if supports_pending_erasures(version) {
            body_len >= segments_end.saturating_add(ERASE_COUNT_LEN)
        } else {
            body_len == segments_end
        };
        if !fits {
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
        let mut pending_erasures = Vec::new();
        let mut registers = Vec::new();
        if supports_pending_erasures(version) {
            let mut at = b + segments_end;
            let erase_count = u32_at(at).ok_or_else(|| corrupt(at, "manifest truncated"))?;
            at += ERASE_COUNT_LEN;
            let end = b + body_len;
            for _ in 0..erase_count {
                let bad = |at: usize| corrupt(at, "pending erasure truncated");
                let meter_len =
                    *bytes.get(at).filter(|_| at < end).ok_or_else(|| bad(at))? as usize;
                let meter_at = at + 1;
                let range_at = meter_at + meter_len;
                if range_at + RANGE_LEN > end {
                    return Err(bad(at));
                }
                let meter = bytes
                    .get(meter_at..range_at)
                    .and_then(|m| std::str::from_utf8(m).ok())
                    .filter(|m| super::valid_meter_id(m))
                    .ok_or_else(|| corrupt(meter_at, "pending erasure of an invalid meter id"))?;
                let from_utc = u64_at(range_at).ok_or_else(|| bad(range_at))? as i64;
                let to_utc = u64_at(range_at + 8).ok_or_else(|| bad(range_at))? as i64;
                if from_utc >= to_utc {
                    return Err(corrupt(range_at, "pending erasure of an empty range"));
                }
                pending_erasures.push(PendingErase {
                    meter: meter.to_string(),
                    from_utc,
                    to_utc,
                });
                at = range_at + RANGE_LEN;
            }
            if supports_registers(version) {
                let count = *bytes
                    .get(at)
                    .filter(|_| at < end)
                    .ok_or_else(|| corrupt(at, "register table truncated"))?;
                if usize::from(count) > crate::Channel::REGISTERS_MAX {
                    return Err(corrupt(at, "register count over 240"));
                }
                at += 1;
                for _ in 0..count {
                    let len = *bytes
                        .get(at)
                        .filter(|_| at < end)
                        .ok_or_else(|| corrupt(at, "register name truncated"))?
                        as usize;
                    let name = bytes
                        .get(at + 1..at + 1 + len)
                        .filter(|_| at + 1 + len <= end)
                        .ok_or_else(|| corrupt(at, "register name truncated"))?;
                    let name = std::str::from_utf8(name)
                        .ok()
                        .filter(|n| storage_format::valid_register_name(n))
                        .ok_or_else(|| corrupt(at, "register name not 1 to 16 of [A-Z0-9_]"))?;
                    if registers.iter().any(|r: &std::sync::Arc<str>| &**r == name) {
                        return Err(corrupt(at, "register name given twice"));
                    }
                    registers.push(std::sync::Arc::from(name));
                    at += 1 + len;
                }
            }
            if at != end {
                return Err(corrupt(at, "bytes after the pending erasures"));
            }
        }
        Ok(Manifest {
            wal_generation,
            next_seq,
            next_file_id,
            newest_ts,
            segments,
            pending_erasures,
            registers,
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
    /// The manifest a commit installs: it forgets the segments `removed` (file ids), names
    /// `added`, starts the live logs at `wal_generation` (never earlier than now), records the
    /// counters and the newest instant.
    pub fn after_commit(
        &self,
        removed: &[u64],
        added: impl IntoIterator<Item = SegmentEntry>,
        wal_generation: u64,
        next_seq: u64,
        next_file_id: u64,
        newest_ts: Option<i64>,
    ) -> Manifest {
        let mut next = self.clone();
        next.segments.retain(|e| !removed.contains(&e.file_id));
        next.segments.extend(added);
        next.wal_generation = next.wal_generation.max(wal_generation);
        next.next_seq = next_seq;
        next.next_file_id = next_file_id;
        if let Some(ts) = newest_ts {
            next.newest_ts = next.newest_ts.max(ts);
        }
        next
    }

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
            pending_erasures: vec![
                PendingErase::new("30000000000042", None),
                PendingErase::new("m.1", Some((-5, 1_700_000_000))),
            ],
            registers: vec!["HPJB".into(), "DIST_HPH".into(), "EASF01".into()],
        }
    }

    /// `m` as version 2 wrote it: no register table.
    fn encode_v2(m: &Manifest) -> Vec<u8> {
        let v3 = m.encode();
        let names: usize = m.registers.iter().map(|n| 1 + n.len()).sum();
        let body = &v3[HEADER_LEN..v3.len() - 1 - names];
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn a_version_2_manifest_reads_as_one_with_no_registers() {
        let mut m = sample();
        let v2 = encode_v2(&m);
        m.registers.clear();
        assert_eq!(Manifest::decode(&v2, Path::new("M")).ok(), Some(m));
    }

    #[test]
    fn a_bad_or_repeated_register_name_is_corruption() {
        for names in [
            vec!["hp"],
            vec!["HP", "HP"],
            vec!["ABCDEFGHIJKLMNOPQ"],
            vec![""],
        ] {
            let mut m = sample();
            m.registers = names.iter().map(|n| std::sync::Arc::from(*n)).collect();
            let got = Manifest::decode(&m.encode(), Path::new("M"));
            assert!(
                matches!(got, Err(Error::Corruption { .. })),
                "{names:?}: {got:?}"
            );
        }
    }

    /// `m` as version 1 wrote it: no pending erasures.
    fn encode_v1(m: &Manifest) -> Vec<u8> {
        let v2 = m.encode();
        let segments_end = FIXED_BODY_LEN + m.segments.len() * ENTRY_LEN;
        let body = &v2[HEADER_LEN..HEADER_LEN + segments_end];
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn a_version_1_manifest_reads_as_one_without_pending_erasures() {
        let mut m = sample();
        let v1 = encode_v1(&m);
        m.pending_erasures.clear();
        m.registers.clear();
        assert_eq!(Manifest::decode(&v1, Path::new("M")).ok(), Some(m));
    }

    #[test]
    fn a_whole_curve_erasure_has_no_range_and_a_range_keeps_it() {
        let m = sample();
        assert_eq!(m.pending_erasures[0].range_utc(), None);
        assert_eq!(m.pending_erasures[1].range_utc(), Some((-5, 1_700_000_000)));
    }

    #[test]
    fn a_pending_erasure_of_a_bad_meter_or_an_empty_range_is_corruption() {
        for bad in [
            PendingErase::new("no spaces", None),
            PendingErase {
                meter: "m".into(),
                from_utc: 5,
                to_utc: 5,
            },
        ] {
            let mut m = sample();
            m.pending_erasures = vec![bad.clone()];
            let got = Manifest::decode(&m.encode(), Path::new("M"));
            assert!(
                matches!(got, Err(Error::Corruption { .. })),
                "{bad:?}: {got:?}"
            );
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
        for bytes in [
            sample().encode(),
            encode_v1(&sample()),
            encode_v2(&sample()),
        ] {
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
    }

    #[test]
    fn the_spec_sizes_are_pinned() {
        assert_eq!(HEADER_LEN, 20);
        assert_eq!(FIXED_BODY_LEN, 36);
        assert_eq!(ENTRY_LEN, 28);
        assert_eq!(ERASE_COUNT_LEN, 4);
        assert_eq!(ERASE_FIXED_LEN, 17);
    }
}

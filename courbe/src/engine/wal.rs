//! The write-ahead log: every acknowledged batch is in a synced log record until a flush has put
//! its points in segments named by the manifest.
//!
//! # Files
//! `wal-{generation:020}.log`, a [`journal`] of kind [`journal::WAL`]: the
//! framing, the header, the torn-tail rule and the group commit are the journal's. A flush starts
//! a new generation; the manifest names the first generation to replay, older ones are deleted.
//! All integers are little-endian.
//!
//! ```text
//! file    = header frame*
//! header  = magic "CRBWAL\0\x01" (8 bytes) | version u32 (1 to 3) | reserved u32 (= 0)   16 bytes
//! frame   = payload_len u32 | crc u32 | payload
//!           crc: CRC-32 (IEEE, as crc32fast) of the 4 payload_len bytes followed by the payload
//! payload = seq u64                     batch sequence number, newest wins
//!           meter_count u32, then per meter: id_len u8 (1..=64) | id bytes ([0-9A-Za-z_.-])
//!           run_count u32, then per run:
//!             meter_index u32 (< meter_count) | channel u8 | point_count u32 (>= 1)
//!             point_count x point
//! point   = ts_utc i64 | value i32 | step_min u16 (1..=1440) | quality u8 (0..=2)   15 bytes
//! ```
//! A payload is 8 to [`MAX_RECORD_LEN`] bytes; anything else is corruption.
//!
//! `channel` is a code of segment format v4 (`storage_format::Channel::from_u8`): 0..=4, or an
//! index channel 16..=255 whose register number the manifest's register table holds (the
//! manifest naming it is synced before any record uses it); 5..=15 and an unknown register are
//! corruption. This build writes header version 3 (2 added codes 3 and 16..=255, 3 the price
//! channel, 4), so that an older build refuses the log as newer instead of reading a channel it
//! does not know; version 1 and 2 logs read the same way (they hold only 0..=2, 0..=3 and
//! 16..=255).
//!
//! # Recovery rule
//! The journal's torn-tail rule (stated once, in [`crate::journal`]): only the **last** log file
//! may end in a torn write, which is cut at open; any other damage is [`Error::Corruption`]
//! naming the file and offset, and a newer header version is [`Error::Compatibility`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::fs::FileSystem;
use super::{valid_meter_id, Batch, Error};
use crate::journal::{self, BadPayload, Journal, ScanError};
use crate::{Channel, Point, Quality};

pub const MAGIC: [u8; 8] = journal::WAL.magic;
pub const HEADER_LEN: usize = journal::WAL.header_len();
pub const RECORD_HEADER_LEN: usize = journal::FRAME_LEN;
pub const POINT_LEN: usize = 8 + 4 + 2 + 1;
/// Largest payload a record may announce (a batch of ~17 million points).
pub const MAX_RECORD_LEN: u32 = journal::WAL.max_payload;

pub fn file_name(generation: u64) -> String {
    format!("wal-{generation:020}.log")
}

/// The generation of a log file name, `None` for other files.
pub fn parse_file_name(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// Length of the payload that encodes `batch`.
pub fn payload_len(batch: &Batch) -> usize {
    let meters_len: usize = batch.meters.iter().map(|m| 1 + m.len()).sum();
    8 + 4 + meters_len + 4 + batch.runs.len() * (4 + 1 + 4) + batch.points.len() * POINT_LEN
}

/// Encodes `batch` as one complete record (header, checksum, payload). The caller checks
/// `payload_len(batch) <= MAX_RECORD_LEN`.
pub fn encode_record(seq: u64, batch: &Batch) -> Vec<u8> {
    let payload_len = payload_len(batch);
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + payload_len);
    let frame = journal::WAL.begin(&mut out);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(batch.meters.len() as u32).to_le_bytes());
    for m in &batch.meters {
        out.push(m.len() as u8);
        out.extend_from_slice(m.as_bytes());
    }
    out.extend_from_slice(&(batch.runs.len() as u32).to_le_bytes());
    let mut start = 0usize;
    for run in &batch.runs {
        out.extend_from_slice(&run.meter.to_le_bytes());
        out.push(run.channel.code());
        out.extend_from_slice(&run.len.to_le_bytes());
        let end = start + run.len as usize;
        for p in batch.points.get(start..end).unwrap_or(&[]) {
            let mut b = [0u8; POINT_LEN];
            b[..8].copy_from_slice(&p.ts_utc.to_le_bytes());
            b[8..12].copy_from_slice(&p.value.to_le_bytes());
            b[12..14].copy_from_slice(&p.step_min.to_le_bytes());
            b[14] = p.quality as u8;
            out.extend_from_slice(&b);
        }
        start = end;
    }
    debug_assert_eq!(out.len(), RECORD_HEADER_LEN + payload_len);
    journal::WAL.seal(&mut out, frame);
    out
}

/// Why a payload is not one the encoder wrote; `at` is relative to the payload start.
struct Bad {
    at: usize,
    what: &'static str,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Bad> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(Bad { at: self.pos, what });
        };
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or(Bad { at: self.pos, what })?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Bad> {
        let at = self.pos;
        self.take(N, what)?.try_into().map_err(|_| Bad { at, what })
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, Bad> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
}

/// Decodes a payload whose checksum matched; `registers`: how many register numbers the
/// manifest assigns.
fn decode_payload(payload: &[u8], registers: usize) -> Result<(u64, Batch), Bad> {
    let mut r = Reader {
        bytes: payload,
        pos: 0,
    };
    let seq = u64::from_le_bytes(r.array("seq")?);
    let meter_count = r.u32("meter count")?;
    // Every meter takes at least 2 bytes: a count beyond that is corruption, not an allocation.
    if meter_count as usize > payload.len() / 2 {
        return Err(Bad {
            at: 8,
            what: "meter count",
        });
    }
    let mut batch = Batch::default();
    for _ in 0..meter_count {
        let at = r.pos;
        let len = r.array::<1>("meter id length")?[0];
        let id = r.take(usize::from(len), "meter id")?;
        let id = std::str::from_utf8(id)
            .ok()
            .filter(|s| valid_meter_id(s))
            .ok_or(Bad {
                at,
                what: "meter id",
            })?;
        batch.meters.push(id.to_string());
    }
    let run_count = r.u32("run count")?;
    if run_count as usize > payload.len() / 9 {
        return Err(Bad {
            at: r.pos - 4,
            what: "run count",
        });
    }
    for _ in 0..run_count {
        let at = r.pos;
        let meter = r.u32("run meter")?;
        if meter >= meter_count {
            return Err(Bad {
                at,
                what: "run meter index",
            });
        }
        let code = r.array::<1>("channel")?[0];
        let channel = Channel::from_u8(code, storage_format::segment::FORMAT_VERSION)
            .filter(|c| {
                c.register_number()
                    .is_none_or(|n| usize::from(n) < registers)
            })
            .ok_or(Bad {
                at: at + 4,
                what: "channel (reserved, or a register the manifest does not name)",
            })?;
        let len = r.u32("point count")?;
        let bytes = r.take((len as usize).saturating_mul(POINT_LEN), "points")?;
        if len == 0 {
            return Err(Bad {
                at: at + 5,
                what: "point count",
            });
        }
        let base = r.pos - bytes.len();
        batch.points.reserve(len as usize);
        for (i, p) in bytes.chunks_exact(POINT_LEN).enumerate() {
            let at = base + i * POINT_LEN;
            let bad = |what| Bad { at, what };
            let p: &[u8; POINT_LEN] = p.try_into().map_err(|_| bad("point"))?;
            let [t0, t1, t2, t3, t4, t5, t6, t7, v0, v1, v2, v3, s0, s1, q] = *p;
            let ts_utc = i64::from_le_bytes([t0, t1, t2, t3, t4, t5, t6, t7]);
            let value = i32::from_le_bytes([v0, v1, v2, v3]);
            let step_min = u16::from_le_bytes([s0, s1]);
            if !(1..=crate::engine::STEP_MIN_MAX).contains(&step_min) {
                return Err(bad("step_min"));
            }
            let quality = Quality::from_u8(q).ok_or_else(|| bad("quality"))?;
            batch.points.push(Point {
                ts_utc,
                value,
                step_min,
                quality,
            });
        }
        batch.runs.push(super::Run {
            meter,
            channel,
            len,
        });
    }
    if r.pos != payload.len() {
        return Err(Bad {
            at: r.pos,
            what: "trailing bytes",
        });
    }
    Ok((seq, batch))
}

/// What replaying one log file found.
pub struct Replayed {
    /// Length of the valid prefix; shorter than the file when a torn tail was found.
    pub valid_len: u64,
    pub file_len: u64,
}

/// Reads every record of a log file in order, calling `apply(seq, batch)` for each;
/// `registers`: how many register numbers the manifest assigns.
pub fn replay(
    fs: &dyn FileSystem,
    path: &Path,
    is_last: bool,
    registers: usize,
    apply: impl FnMut(u64, Batch),
) -> Result<Replayed, Error> {
    let bytes = fs.read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let valid_len = decode_log(&bytes, path, is_last, registers, apply)?;
    Ok(Replayed {
        valid_len,
        file_len: bytes.len() as u64,
    })
}

/// Reads the records of a log held in memory (a log file's bytes: header, then records) in
/// order, calling `apply(seq, batch)` for each, with the torn-tail rule when `is_last`; returns
/// the length of the valid prefix. `origin` names the bytes in errors. A copy of a log kept
/// elsewhere (`courbe-cluster` keeps them in object storage) is read with `is_last = false`:
/// any damage is then corruption.
pub fn decode_log(
    bytes: &[u8],
    origin: &Path,
    is_last: bool,
    registers: usize,
    mut apply: impl FnMut(u64, Batch),
) -> Result<u64, Error> {
    journal::scan(&journal::WAL, bytes, is_last, |payload| {
        let (seq, batch) = decode_payload(payload, registers).map_err(|b| BadPayload {
            at: b.at,
            detail: format!("bad {}", b.what),
        })?;
        apply(seq, batch);
        Ok(())
    })
    .map_err(|e| scan_error(origin, e))
}

fn scan_error(path: &Path, e: ScanError) -> Error {
    match e {
        ScanError::Corrupt { offset, detail } => Error::Corruption {
            path: path.to_path_buf(),
            offset,
            detail,
        },
        ScanError::Newer { version, newest } => Error::Compatibility {
            path: path.to_path_buf(),
            detail: format!("log version {version}, this build reads up to {newest}"),
        },
    }
}

fn engine_error(e: journal::Error) -> Error {
    match e {
        journal::Error::Io { path, source } => Error::Io { path, source },
        journal::Error::Scan { path, error } => scan_error(&path, error),
        journal::Error::Poisoned { .. } => Error::Closed,
    }
}

/// The open log: a journal whose file changes at each generation.
pub struct Wal {
    journal: Journal,
    dir: PathBuf,
    generation: AtomicU64,
}

impl Wal {
    /// Creates log file `generation` (header synced, name synced) and appends to it.
    pub fn create(fs: Arc<dyn FileSystem>, dir: &Path, generation: u64) -> Result<Wal, Error> {
        let journal = Journal::create(fs, &journal::WAL, &dir.join(file_name(generation)))
            .map_err(engine_error)?;
        Ok(Wal {
            journal,
            dir: dir.to_path_buf(),
            generation: AtomicU64::new(generation),
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub fn path(&self, generation: u64) -> PathBuf {
        self.dir.join(file_name(generation))
    }

    /// Appends one record (from [`encode_record`]) and returns once it is durable, the sync
    /// shared with concurrent callers. The first failure poisons the log: that call gets the
    /// I/O error, every later one [`Error::Closed`].
    pub fn append(&self, record: Vec<u8>) -> Result<(), Error> {
        self.journal.append(record).map_err(engine_error)
    }

    /// Starts generation `generation`; the caller holds every writer out.
    pub fn rotate(&self, generation: u64) -> Result<(), Error> {
        self.journal
            .rotate(&self.path(generation))
            .map_err(engine_error)?;
        self.generation.store(generation, Ordering::SeqCst);
        Ok(())
    }

    /// Refuses every later append (and so every write of the store).
    pub fn poison(&self) {
        self.journal.poison();
    }

    pub fn is_failed(&self) -> bool {
        self.journal.is_failed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Batch {
        let mut b = Batch::new();
        for i in 0..3 {
            b.push(
                "09111642617347",
                Channel::CONSUMPTION,
                Point {
                    ts_utc: 1_700_000_000 + i * 1800,
                    value: 400 + i as i32,
                    step_min: 30,
                    quality: Quality::Measured,
                },
            )
            .unwrap();
        }
        b.push(
            "a.b-c_d",
            Channel::MAX_POWER,
            Point {
                ts_utc: 5,
                value: -7,
                step_min: 1440,
                quality: Quality::Corrected,
            },
        )
        .unwrap();
        b
    }

    #[test]
    fn a_record_round_trips() {
        let b = batch();
        let rec = encode_record(42, &b);
        let mut file = journal::WAL.header();
        file.extend_from_slice(&rec);
        let mut payloads = Vec::new();
        let valid = journal::scan(&journal::WAL, &file, false, |p| {
            payloads.push(p.to_vec());
            Ok(())
        });
        assert_eq!(valid, Ok(file.len() as u64));
        let Ok((seq, back)) = decode_payload(&payloads[0], 0) else {
            panic!("payload not decoded");
        };
        assert_eq!(seq, 42);
        assert_eq!(back.meters, b.meters);
        assert_eq!(back.points, b.points);
        assert_eq!(back.runs, b.runs);
    }

    #[test]
    fn the_spec_sizes_are_pinned() {
        assert_eq!(HEADER_LEN, 16);
        assert_eq!(RECORD_HEADER_LEN, 8);
        assert_eq!(POINT_LEN, 15);
    }
}

//! Append-only files of records, each framed with its length and crc32, like the engine's log.
//!
//! Layout: the 8-byte magic [`MAGIC`], then records of
//! `payload_len: u32 LE | crc32(payload): u32 LE | payload (JSON, payload_len bytes)`.
//!
//! Recovery rule: a torn last record (short frame, short payload, or a bad checksum on the
//! last record of the file) is truncated away at open; a bad checksum with bytes after it is
//! corruption. A payload over [`MAX_RECORD_LEN`] is corruption (never allocated).
//!
//! These files are written with `std::fs` rather than the engine's `FileSystem` trait, which
//! has no append primitive: every append is followed by `sync_data`, and a new file by a sync
//! of its directory, before the call returns.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Error;

/// First bytes of every registry file: a name, a version digit and a newline.
pub const MAGIC: &[u8; 8] = b"CRBREG1\n";
/// Bytes of a record's frame before its payload.
pub const FRAME_LEN: usize = 8;
/// Largest payload of one record.
pub const MAX_RECORD_LEN: u32 = 1 << 20;

/// An open registry file, appended to under the caller's lock.
#[derive(Debug)]
pub struct RecordLog {
    path: PathBuf,
    file: File,
    /// A write or sync failed: what reached the disk is unknown, so nothing more is appended
    /// (a torn record followed by whole ones would read as corruption).
    failed: bool,
}

impl RecordLog {
    /// Opens (creating) the file at `path`, decodes every record with `each`, and truncates a
    /// torn tail.
    pub fn open<T: DeserializeOwned>(
        path: &Path,
        mut each: impl FnMut(T),
    ) -> Result<RecordLog, Error> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let valid_len = decode_all(path, &bytes, &mut each)?;
        if valid_len < bytes.len() {
            file.set_len(valid_len as u64).map_err(io)?;
        }
        if valid_len < MAGIC.len() {
            file.set_len(0).map_err(io)?;
            file.seek(SeekFrom::End(0)).map_err(io)?;
            file.write_all(MAGIC).map_err(io)?;
        }
        file.sync_all().map_err(io)?;
        if !existed {
            if let Some(dir) = path.parent() {
                File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            }
        }
        Ok(RecordLog {
            path: path.to_path_buf(),
            file,
            failed: false,
        })
    }

    /// Appends one record; durable when it returns.
    pub fn append<T: Serialize>(&mut self, record: &T) -> Result<(), Error> {
        self.write(record)?;
        self.sync()
    }

    /// Syncs what was written.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.check()?;
        let synced = self.file.sync_data();
        self.failed |= synced.is_err();
        synced.map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// A second handle on the file, to sync it without holding the writer (group commit).
    pub fn sync_handle(&self) -> Result<File, Error> {
        self.file.try_clone().map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Refuses every later append: a sync of this file failed elsewhere.
    pub fn poison(&mut self) {
        self.failed = true;
    }

    fn check(&self) -> Result<(), Error> {
        if self.failed {
            return Err(Error::Io {
                path: self.path.clone(),
                source: std::io::Error::other("an earlier write to this registry failed"),
            });
        }
        Ok(())
    }

    /// Appends one record without syncing it; [`RecordLog::sync`] (or a sync of
    /// [`RecordLog::sync_handle`]) makes it durable.
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<(), Error> {
        self.check()?;
        let payload = serde_json::to_vec(record).map_err(|e| Error::Encode(e.to_string()))?;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l <= MAX_RECORD_LEN)
            .ok_or_else(|| Error::Encode(format!("a record of {} bytes", payload.len())))?;
        let mut frame = Vec::with_capacity(FRAME_LEN + payload.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let written = self.file.write_all(&frame);
        self.failed |= written.is_err();
        written.map_err(io)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Decodes every record of `bytes`; returns the length of the valid prefix.
fn decode_all<T: DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    each: &mut impl FnMut(T),
) -> Result<usize, Error> {
    let corruption = |offset: usize, detail: String| Error::Corruption {
        path: path.to_path_buf(),
        offset: offset as u64,
        detail,
    };
    let Some(head) = bytes.get(..MAGIC.len()) else {
        // A file shorter than its magic is a torn creation when it is a prefix of it.
        return if MAGIC.starts_with(bytes) {
            Ok(0)
        } else {
            Err(corruption(0, "not a registry file".into()))
        };
    };
    if head != MAGIC {
        return Err(corruption(0, "bad magic".into()));
    }
    let mut at = MAGIC.len();
    loop {
        let Some(frame) = bytes.get(at..at + FRAME_LEN) else {
            return Ok(at);
        };
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if len > MAX_RECORD_LEN {
            return Err(corruption(
                at,
                format!("record length {len} over the limit"),
            ));
        }
        let start = at + FRAME_LEN;
        let end = start + len as usize;
        let Some(payload) = bytes.get(start..end) else {
            return Ok(at);
        };
        if crc32fast::hash(payload) != crc {
            if end == bytes.len() {
                return Ok(at);
            }
            return Err(corruption(at, "record checksum mismatch".into()));
        }
        let record: T = serde_json::from_slice(payload)
            .map_err(|e| corruption(at, format!("undecodable record: {e}")))?;
        each(record);
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct R {
        n: u32,
    }

    fn read_all(path: &Path) -> Result<Vec<R>, Error> {
        let mut out = Vec::new();
        RecordLog::open(path, |r: R| out.push(r))?;
        Ok(out)
    }

    #[test]
    fn records_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let mut log = RecordLog::open(&path, |_: R| {}).unwrap();
        for n in 0..5 {
            log.append(&R { n }).unwrap();
        }
        drop(log);
        let got = read_all(&path).unwrap();
        assert_eq!(got, (0..5).map(|n| R { n }).collect::<Vec<_>>());
    }

    #[test]
    fn every_torn_prefix_is_truncated_to_the_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let mut log = RecordLog::open(&path, |_: R| {}).unwrap();
        let mut ends = vec![MAGIC.len()];
        for n in 0..3 {
            log.append(&R { n }).unwrap();
            ends.push(std::fs::metadata(&path).unwrap().len() as usize);
        }
        drop(log);
        let full = std::fs::read(&path).unwrap();
        for cut in 0..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let got = read_all(&path).unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut).count().saturating_sub(1);
            assert_eq!(got.len(), whole, "cut at {cut}");
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            assert_eq!(len, ends[whole], "cut at {cut} leaves whole records");
        }
    }

    #[test]
    fn a_bad_checksum_before_the_last_record_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let mut log = RecordLog::open(&path, |_: R| {}).unwrap();
        log.append(&R { n: 1 }).unwrap();
        log.append(&R { n: 2 }).unwrap();
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        let i = MAGIC.len() + FRAME_LEN;
        bytes[i] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let err = read_all(&path).unwrap_err();
        assert!(
            matches!(err, Error::Corruption { offset, .. } if offset == MAGIC.len() as u64),
            "{err}"
        );
    }

    #[test]
    fn a_huge_declared_length_is_corruption_not_an_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(read_all(&path), Err(Error::Corruption { .. })));
    }
}

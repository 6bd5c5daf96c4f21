//! A registry file: a [`journal`] of kind [`journal::REGISTRY`] whose payloads
//! are JSON records. Framing, the torn-tail rule, group commit and poisoning are the journal's;
//! this module only encodes and decodes the records.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Error;
use crate::engine::fs::FileSystem;
use crate::journal::{self, BadPayload, Journal, ScanError};

/// First bytes of every registry file: a name, a version digit and a newline.
pub const MAGIC: &[u8; 8] = &journal::REGISTRY.magic;
/// Bytes of a record's frame before its payload.
pub const FRAME_LEN: usize = journal::FRAME_LEN;
/// Largest payload of one record.
pub const MAX_RECORD_LEN: u32 = journal::REGISTRY.max_payload;

/// An open registry file. Appends are durable when they return; concurrent appenders share
/// one sync.
#[derive(Debug)]
pub struct RecordLog {
    journal: Journal,
}

impl RecordLog {
    /// Opens (creating) the file at `path` through `fs`, decodes every record with `each`, and
    /// cuts a torn tail.
    pub fn open<T: DeserializeOwned>(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        mut each: impl FnMut(T),
    ) -> Result<RecordLog, Error> {
        let journal = Journal::open(fs, &journal::REGISTRY, path, |payload| {
            let record = serde_json::from_slice(payload).map_err(|e| BadPayload {
                at: 0,
                detail: format!("undecodable record: {e}"),
            })?;
            each(record);
            Ok(())
        })
        .map_err(from_journal)?;
        Ok(RecordLog { journal })
    }

    /// Appends one record; durable when it returns. After a failed write or sync every later
    /// append is refused.
    pub fn append<T: Serialize>(&self, record: &T) -> Result<(), Error> {
        let payload = serde_json::to_vec(record).map_err(|e| Error::Encode(e.to_string()))?;
        if payload.len() > MAX_RECORD_LEN as usize {
            return Err(Error::Encode(format!(
                "a record of {} bytes",
                payload.len()
            )));
        }
        self.journal
            .append(journal::REGISTRY.frame(&payload))
            .map_err(from_journal)
    }

    /// Replaces the file at `path` with `records`, atomically: written whole to `path.tmp`,
    /// synced, renamed over `path`, the directory synced (a crash leaves the old file or the
    /// new one). Returns the new file open for appends.
    pub fn rewrite<'r, T: Serialize + 'r>(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        records: impl IntoIterator<Item = &'r T>,
    ) -> Result<RecordLog, Error> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let mut bytes = journal::REGISTRY.header();
        for record in records {
            let payload = serde_json::to_vec(record).map_err(|e| Error::Encode(e.to_string()))?;
            bytes.extend_from_slice(&journal::REGISTRY.frame(&payload));
        }
        let mut file = fs.create(&tmp).map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.sync().map_err(io(&tmp))?;
        drop(file);
        fs.rename(&tmp, path).map_err(io(&tmp))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        fs.sync_dir(dir).map_err(io(dir))?;
        RecordLog::open(fs, path, |_: serde_json::Value| {})
    }

    /// Whether an earlier write or sync failed (appends are refused).
    pub fn is_failed(&self) -> bool {
        self.journal.is_failed()
    }

    pub fn path(&self) -> PathBuf {
        self.journal.path()
    }
}

fn from_journal(e: journal::Error) -> Error {
    match e {
        journal::Error::Io { path, source } => Error::Io { path, source },
        journal::Error::Scan {
            path,
            error: ScanError::Corrupt { offset, detail },
        } => Error::Corruption {
            path,
            offset,
            detail,
        },
        journal::Error::Scan {
            path,
            error: ScanError::Newer { version, newest },
        } => Error::Corruption {
            path,
            offset: 0,
            detail: format!("version {version}, this build reads up to {newest}"),
        },
        journal::Error::Poisoned { path } => Error::Io {
            path,
            source: std::io::Error::other("an earlier write to this registry failed"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fs::RealFs;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct R {
        n: u32,
    }

    fn read_all(path: &Path) -> Result<Vec<R>, Error> {
        let mut out = Vec::new();
        RecordLog::open(Arc::new(RealFs), path, |r: R| out.push(r))?;
        Ok(out)
    }

    #[test]
    fn records_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let log = RecordLog::open(Arc::new(RealFs), &path, |_: R| {}).unwrap();
        for n in 0..5 {
            log.append(&R { n }).unwrap();
        }
        drop(log);
        let got = read_all(&path).unwrap();
        assert_eq!(got, (0..5).map(|n| R { n }).collect::<Vec<_>>());
    }

    #[test]
    fn the_bytes_of_a_registry_file_are_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let log = RecordLog::open(Arc::new(RealFs), &path, |_: R| {}).unwrap();
        log.append(&R { n: 7 }).unwrap();
        drop(log);
        let payload = br#"{"n":7}"#;
        let mut want = b"CRBREG1\n".to_vec();
        want.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        want.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        want.extend_from_slice(payload);
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    #[test]
    fn every_torn_prefix_is_truncated_to_the_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let log = RecordLog::open(Arc::new(RealFs), &path, |_: R| {}).unwrap();
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
        let log = RecordLog::open(Arc::new(RealFs), &path, |_: R| {}).unwrap();
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
    fn a_huge_declared_length_is_never_an_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        std::fs::write(&path, &bytes).unwrap();
        // Nothing can follow a frame whose end is unknown: a torn tail, cut.
        assert_eq!(read_all(&path).unwrap(), vec![]);
        assert_eq!(std::fs::read(&path).unwrap(), MAGIC.to_vec());
    }

    #[test]
    fn a_zero_filled_tail_is_torn_not_a_record() {
        // A crash after the file grew but before its new blocks were written leaves zeros:
        // length 0 with crc 0 (the crc of nothing) must not read as an empty record.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let log = RecordLog::open(Arc::new(RealFs), &path, |_: R| {}).unwrap();
        log.append(&R { n: 1 }).unwrap();
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        let whole = bytes.len();
        bytes.extend_from_slice(&[0; 40]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_all(&path).unwrap(), vec![R { n: 1 }]);
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, whole);
    }
}

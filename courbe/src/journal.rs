//! The journal: append-only files of checksummed frames, shared by the engine's write-ahead
//! log and the governance registries (consent, grants, groups, audit).
//!
//! One module owns the frame, the file header of each [`Kind`], the torn-tail rule, the group
//! commit (concurrent appenders share one sync) and poisoning after a failed write or sync.
//! Payloads are opaque bytes here: WAL batches (binary) and registry records (JSON).
//! Every byte goes through [`FileSystem`], so crash images and injected faults reach every
//! journal. The byte layout is specified in `storage-format/JOURNAL.md`.
//!
//! ```text
//! file   = header frame*
//! frame  = payload_len u32 LE | crc u32 LE | payload (payload_len bytes)
//! ```
//! The two kinds differ only in their header and in what the crc covers (both frozen by the
//! files already written): [`WAL`] (16-byte header with a version; crc over the 4 length bytes
//! and the payload) and [`REGISTRY`] (8-byte magic; crc over the payload).
//!
//! # The torn-tail rule
//! In the **last** file of a journal (a registry is always its own last file), a frame that runs
//! past the end of the file, or whose length is out of range or whose checksum fails and is not
//! followed by a valid frame, is a torn write: the file is valid up to that frame's start and is
//! cut there. Any other damage — a bad frame followed by a valid one, or anything wrong in an
//! earlier file (synced whole before the next was started) — is corruption at its offset.
//! A file shorter than its header is a torn creation when its bytes are a prefix of the header.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::engine::fs::{FileSystem, WritableFile};

/// Bytes of a frame before its payload.
pub const FRAME_LEN: usize = 4 + 4;

/// What distinguishes one family of journal files: header and checksum coverage.
#[derive(Debug)]
pub struct Kind {
    /// First 8 bytes of every file.
    pub magic: [u8; 8],
    /// `Some(v)`: the magic is followed by `version u32 LE` (the newest one written is `v`)
    /// and `reserved u32 LE` (written 0, not read). `None`: the header is the magic alone.
    pub version: Option<u32>,
    /// Whether the crc covers the 4 length bytes before the payload.
    pub crc_covers_len: bool,
    /// Valid payload lengths; any other length is out of range.
    pub min_payload: u32,
    pub max_payload: u32,
}

/// The engine's write-ahead log (`wal-{generation:020}.log`).
pub const WAL: Kind = Kind {
    magic: *b"CRBWAL\0\x01",
    // 2: runs may name the channels of segment format v3 (daily energy, indexes); 3: and the
    // price channel of v4.
    version: Some(3),
    crc_covers_len: true,
    min_payload: 8,
    max_payload: 256 << 20,
};

/// The governance registries (`governance/{consent,grants,groups,audit}.log`).
pub const REGISTRY: Kind = Kind {
    magic: *b"CRBREG1\n",
    version: None,
    crc_covers_len: false,
    min_payload: 1,
    max_payload: 1 << 20,
};

impl Kind {
    pub const fn header_len(&self) -> usize {
        match self.version {
            Some(_) => 8 + 4 + 4,
            None => 8,
        }
    }

    /// The header this build writes.
    pub fn header(&self) -> Vec<u8> {
        let mut h = self.magic.to_vec();
        if let Some(v) = self.version {
            h.extend_from_slice(&v.to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes());
        }
        h
    }

    fn crc(&self, len: [u8; 4], payload: &[u8]) -> u32 {
        let mut h = crc32fast::Hasher::new();
        if self.crc_covers_len {
            h.update(&len);
        }
        h.update(payload);
        h.finalize()
    }

    /// Starts a frame at the end of `out`: reserves its length and crc. Append the payload,
    /// then [`Kind::seal`] with the same `start`.
    pub fn begin(&self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_LEN]);
        start
    }

    /// Fills in the length and crc of the frame begun at `start`. The payload is everything
    /// after the frame header; the caller keeps it within `min_payload..=max_payload`.
    pub fn seal(&self, out: &mut [u8], start: usize) {
        let Some(frame) = out.get_mut(start..) else {
            return;
        };
        let (head, payload) = frame.split_at_mut(FRAME_LEN.min(frame.len()));
        let len = (payload.len() as u32).to_le_bytes();
        let crc = self.crc(len, payload).to_le_bytes();
        if let Some(h) = head.get_mut(..FRAME_LEN) {
            h[..4].copy_from_slice(&len);
            h[4..].copy_from_slice(&crc);
        }
    }

    /// One whole frame holding `payload`.
    pub fn frame(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(FRAME_LEN + payload.len());
        let start = self.begin(&mut out);
        out.extend_from_slice(payload);
        self.seal(&mut out, start);
        out
    }

    fn check_frame<'a>(&self, bytes: &'a [u8]) -> Frame<'a> {
        let Some(&[l0, l1, l2, l3, c0, c1, c2, c3]) = bytes.get(..FRAME_LEN) else {
            return Frame::Short;
        };
        let len = u32::from_le_bytes([l0, l1, l2, l3]);
        if !(self.min_payload..=self.max_payload).contains(&len) {
            return Frame::Bad("frame length out of range");
        }
        let total = FRAME_LEN + len as usize;
        let Some(payload) = bytes.get(FRAME_LEN..total) else {
            return Frame::Short;
        };
        if self.crc([l0, l1, l2, l3], payload) != u32::from_le_bytes([c0, c1, c2, c3]) {
            return Frame::Bad("frame checksum mismatch");
        }
        Frame::Valid(payload, total)
    }
}

enum Frame<'a> {
    /// A whole frame with a good checksum: its payload and total length.
    Valid(&'a [u8], usize),
    /// The frame runs past the end of the bytes.
    Short,
    /// The length is out of range or the checksum fails.
    Bad(&'static str),
}

/// Why a file's bytes are not a journal's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    /// Damage that the torn-tail rule does not cover, at a byte offset of the file.
    Corrupt { offset: u64, detail: String },
    /// A header version newer than this build reads.
    Newer { version: u32, newest: u32 },
}

/// A payload the caller could not decode: `at` is relative to the payload's first byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPayload {
    pub at: usize,
    pub detail: String,
}

/// Reads the frames of one file in order, handing each payload to `each`, and applies the
/// torn-tail rule when `is_last`. Returns the length of the valid prefix (0 for a torn
/// creation); it is shorter than `bytes` exactly when a torn tail was found.
pub fn scan(
    kind: &Kind,
    bytes: &[u8],
    is_last: bool,
    mut each: impl FnMut(&[u8]) -> Result<(), BadPayload>,
) -> Result<u64, ScanError> {
    let corrupt = |offset: usize, detail: String| ScanError::Corrupt {
        offset: offset as u64,
        detail,
    };
    let header_len = kind.header_len();
    let Some(head) = bytes.get(..header_len) else {
        if is_last && kind.header().starts_with(bytes) {
            return Ok(0);
        }
        return Err(corrupt(0, "header truncated".into()));
    };
    if head.get(..8) != Some(&kind.magic[..]) {
        return Err(corrupt(0, "bad magic".into()));
    }
    if let (Some(newest), Some(&[v0, v1, v2, v3])) = (kind.version, head.get(8..12)) {
        let version = u32::from_le_bytes([v0, v1, v2, v3]);
        if version > newest {
            return Err(ScanError::Newer { version, newest });
        }
    }
    let mut pos = header_len;
    while pos < bytes.len() {
        let rest = bytes.get(pos..).unwrap_or(&[]);
        match kind.check_frame(rest) {
            Frame::Valid(payload, total) => {
                each(payload).map_err(|b| corrupt(pos + FRAME_LEN + b.at, b.detail))?;
                pos += total;
            }
            Frame::Short if is_last => return Ok(pos as u64),
            Frame::Short => return Err(corrupt(pos, "frame truncated".into())),
            Frame::Bad(what) => {
                let next = frame_end(rest).and_then(|end| rest.get(end..));
                let followed =
                    next.is_some_and(|n| matches!(kind.check_frame(n), Frame::Valid(..)));
                if is_last && !followed {
                    return Ok(pos as u64);
                }
                return Err(corrupt(pos, what.into()));
            }
        }
    }
    Ok(pos as u64)
}

fn frame_end(rest: &[u8]) -> Option<usize> {
    let &[l0, l1, l2, l3, ..] = rest else {
        return None;
    };
    FRAME_LEN.checked_add(u32::from_le_bytes([l0, l1, l2, l3]) as usize)
}

/// A journal failure.
#[derive(Debug)]
pub enum Error {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    Scan {
        path: PathBuf,
        error: ScanError,
    },
    /// An earlier write or sync of this journal failed: what reached the disk is unknown, so
    /// nothing more is appended (a torn frame followed by whole ones would read as corruption).
    Poisoned {
        path: PathBuf,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "I/O error on {}: {source}", path.display()),
            Error::Scan {
                path,
                error: ScanError::Corrupt { offset, detail },
            } => write!(
                f,
                "corruption in {} at offset {offset}: {detail}",
                path.display()
            ),
            Error::Scan {
                path,
                error: ScanError::Newer { version, newest },
            } => write!(
                f,
                "{}: version {version}, this build reads up to {newest}",
                path.display()
            ),
            Error::Poisoned { path } => write!(
                f,
                "{}: an earlier write to this journal failed",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

struct State {
    /// `None` while the group-commit leader writes outside the lock.
    file: Option<Box<dyn WritableFile>>,
    path: PathBuf,
    /// Frames appended and not yet handed to a leader.
    pending: Vec<Vec<u8>>,
    /// Tickets: frames appended so far, and frames durable so far.
    appended: u64,
    synced: u64,
    leader: bool,
    failed: bool,
}

/// An open journal file, appended with group commit: concurrent appenders share one sync.
pub struct Journal {
    fs: Arc<dyn FileSystem>,
    kind: &'static Kind,
    state: Mutex<State>,
    cond: Condvar,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &lock(&self.state).path)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Creates `path` holding only the header, synced, its name synced in its directory.
fn create_file(
    fs: &dyn FileSystem,
    kind: &Kind,
    path: &Path,
) -> Result<Box<dyn WritableFile>, Error> {
    let mut file = fs.create(path).map_err(io_at(path))?;
    file.write_all(&kind.header()).map_err(io_at(path))?;
    file.sync().map_err(io_at(path))?;
    if let Some(dir) = path.parent() {
        fs.sync_dir(dir).map_err(io_at(dir))?;
    }
    Ok(file)
}

impl Journal {
    fn with_file(
        fs: Arc<dyn FileSystem>,
        kind: &'static Kind,
        path: &Path,
        file: Box<dyn WritableFile>,
    ) -> Journal {
        Journal {
            fs,
            kind,
            state: Mutex::new(State {
                file: Some(file),
                path: path.to_path_buf(),
                pending: Vec::new(),
                appended: 0,
                synced: 0,
                leader: false,
                failed: false,
            }),
            cond: Condvar::new(),
        }
    }

    /// Creates the file `path` (replacing any) with its header, durably, and appends to it.
    pub fn create(
        fs: Arc<dyn FileSystem>,
        kind: &'static Kind,
        path: &Path,
    ) -> Result<Journal, Error> {
        let file = create_file(&*fs, kind, path)?;
        Ok(Journal::with_file(fs, kind, path, file))
    }

    /// Opens the single-file journal `path` (creating it when absent): hands every payload to
    /// `each`, cuts a torn tail (the file is its own last file), then appends after it.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        kind: &'static Kind,
        path: &Path,
        each: impl FnMut(&[u8]) -> Result<(), BadPayload>,
    ) -> Result<Journal, Error> {
        let bytes = match fs.read(path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_at(path)(e)),
        };
        let Some(bytes) = bytes else {
            return Journal::create(fs, kind, path);
        };
        let valid = scan(kind, &bytes, true, each).map_err(|error| Error::Scan {
            path: path.to_path_buf(),
            error,
        })?;
        if valid < kind.header_len() as u64 {
            return Journal::create(fs, kind, path);
        }
        if valid < bytes.len() as u64 {
            fs.truncate(path, valid).map_err(io_at(path))?;
        }
        let file = fs.append(path).map_err(io_at(path))?;
        Ok(Journal::with_file(fs, kind, path, file))
    }

    pub fn kind(&self) -> &'static Kind {
        self.kind
    }

    pub fn path(&self) -> PathBuf {
        lock(&self.state).path.clone()
    }

    /// Appends one whole frame (see [`Kind::frame`], [`Kind::seal`]) and returns once it is
    /// durable. The first failure poisons the journal: that call gets the I/O error, every
    /// later one (and every appender waiting on the failed sync) [`Error::Poisoned`].
    pub fn append(&self, frame: Vec<u8>) -> Result<(), Error> {
        let mut st = lock(&self.state);
        if st.failed {
            return Err(Error::Poisoned {
                path: st.path.clone(),
            });
        }
        st.pending.push(frame);
        st.appended += 1;
        let ticket = st.appended;
        loop {
            if st.synced >= ticket {
                return Ok(());
            }
            if st.failed {
                return Err(Error::Poisoned {
                    path: st.path.clone(),
                });
            }
            if st.leader {
                st = match self.cond.wait(st) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                continue;
            }
            let Some(mut file) = st.file.take() else {
                st.failed = true;
                self.cond.notify_all();
                continue;
            };
            st.leader = true;
            let frames = std::mem::take(&mut st.pending);
            let upto = st.appended;
            let path = st.path.clone();
            drop(st);
            let mut result = Ok(());
            for f in &frames {
                result = file.write_all(f);
                if result.is_err() {
                    break;
                }
            }
            let result = result.and_then(|()| file.sync());
            st = lock(&self.state);
            st.file = Some(file);
            st.leader = false;
            self.cond.notify_all();
            match result {
                Ok(()) => st.synced = upto,
                Err(source) => {
                    st.failed = true;
                    return Err(Error::Io { path, source });
                }
            }
        }
    }

    /// Continues in a new file `path` (created with its header, durably); the caller holds
    /// every appender out.
    pub fn rotate(&self, path: &Path) -> Result<(), Error> {
        let mut st = lock(&self.state);
        if st.failed {
            return Err(Error::Poisoned {
                path: st.path.clone(),
            });
        }
        match create_file(&*self.fs, self.kind, path) {
            Ok(file) => {
                st.file = Some(file);
                st.path = path.to_path_buf();
                Ok(())
            }
            Err(e) => {
                st.failed = true;
                Err(e)
            }
        }
    }

    /// Refuses every later append.
    pub fn poison(&self) {
        lock(&self.state).failed = true;
        self.cond.notify_all();
    }

    pub fn is_failed(&self) -> bool {
        lock(&self.state).failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fs::testing::{FaultOp, SimFs};

    fn payloads(kind: &Kind, bytes: &[u8]) -> Result<(u64, Vec<Vec<u8>>), ScanError> {
        let mut out = Vec::new();
        let valid = scan(kind, bytes, true, |p| {
            out.push(p.to_vec());
            Ok(())
        })?;
        Ok((valid, out))
    }

    fn file_of(kind: &Kind, records: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = kind.header();
        let mut ends = vec![bytes.len()];
        for r in records {
            bytes.extend_from_slice(&kind.frame(r));
            ends.push(bytes.len());
        }
        (bytes, ends)
    }

    #[test]
    fn the_spec_sizes_are_pinned() {
        assert_eq!(FRAME_LEN, 8);
        assert_eq!(WAL.header_len(), 16);
        assert_eq!(REGISTRY.header_len(), 8);
        assert_eq!(WAL.header(), b"CRBWAL\0\x01\x03\0\0\0\0\0\0\0");
        assert_eq!(REGISTRY.header(), b"CRBREG1\n");
        assert_eq!((WAL.min_payload, WAL.max_payload), (8, 268_435_456));
        assert_eq!((REGISTRY.min_payload, REGISTRY.max_payload), (1, 1_048_576));
    }

    #[test]
    fn the_frame_bytes_of_each_kind_are_pinned() {
        // The examples of JOURNAL.md §3.
        let wal = [8, 0, 0, 0, 0x67, 0x07, 0x51, 0x90, 0, 1, 2, 3, 4, 5, 6, 7];
        assert_eq!(WAL.frame(&[0, 1, 2, 3, 4, 5, 6, 7]), wal);
        let registry = [7, 0, 0, 0, 0xF8, 0x9C, 0x11, 0x82];
        let mut want = registry.to_vec();
        want.extend_from_slice(br#"{"n":7}"#);
        assert_eq!(REGISTRY.frame(br#"{"n":7}"#), want);
    }

    #[test]
    fn every_prefix_of_a_last_file_reads_as_its_whole_frames() {
        for kind in [&WAL, &REGISTRY] {
            let (bytes, ends) = file_of(kind, &[b"first-rec", b"second-record", b"third-record"]);
            for cut in 0..=bytes.len() {
                let (valid, got) = payloads(kind, &bytes[..cut]).unwrap();
                let whole = ends.iter().filter(|&&e| e <= cut).count().saturating_sub(1);
                assert_eq!(got.len(), whole, "cut {cut}");
                let want = if cut < ends[0] { 0 } else { ends[whole] };
                assert_eq!(valid, want as u64, "cut {cut}");
            }
        }
    }

    #[test]
    fn a_prefix_of_an_earlier_file_is_corruption() {
        let (bytes, ends) = file_of(&WAL, &[b"first-rec", b"second-record"]);
        let cut = ends[1] + 3;
        let got = scan(&WAL, &bytes[..cut], false, |_| Ok(()));
        assert_eq!(
            got,
            Err(ScanError::Corrupt {
                offset: ends[1] as u64,
                detail: "frame truncated".into()
            })
        );
    }

    #[test]
    fn every_flipped_bit_is_detected_and_never_read_as_a_record() {
        let records: [&[u8]; 2] = [b"first-rec", b"second-record"];
        for kind in [&WAL, &REGISTRY] {
            let (bytes, ends) = file_of(kind, &records);
            for i in ends[0] * 8..bytes.len() * 8 {
                let mut b = bytes.clone();
                b[i / 8] ^= 1 << (i % 8);
                match payloads(kind, &b) {
                    // Read as a torn tail: only whole original frames before the damage.
                    Ok((valid, got)) => {
                        assert!(got.len() < 2, "bit {i} undetected");
                        assert_eq!(valid, ends[got.len()] as u64, "bit {i}");
                        assert!(got.iter().zip(records).all(|(g, r)| g == r), "bit {i}");
                        assert!(i / 8 >= ends[got.len()], "bit {i}");
                    }
                    // A damaged first frame followed by a valid second one.
                    Err(e) => assert!(
                        matches!(e, ScanError::Corrupt { offset, .. } if offset == ends[0] as u64),
                        "bit {i}: {e:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn a_zero_filled_tail_is_torn_not_a_record() {
        for kind in [&WAL, &REGISTRY] {
            let (mut bytes, ends) = file_of(kind, &[b"first-rec"]);
            bytes.extend_from_slice(&[0; 40]);
            assert_eq!(
                payloads(kind, &bytes).unwrap(),
                (ends[1] as u64, vec![b"first-rec".to_vec()])
            );
        }
    }

    #[test]
    fn a_huge_declared_length_is_never_an_allocation() {
        let mut bytes = REGISTRY.header();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        assert_eq!(payloads(&REGISTRY, &bytes).unwrap(), (8, vec![]));
        assert!(matches!(
            scan(&REGISTRY, &bytes, false, |_| Ok(())),
            Err(ScanError::Corrupt { offset: 8, .. })
        ));
    }

    #[test]
    fn a_newer_version_is_a_compatibility_error_not_corruption() {
        let mut bytes = WAL.header();
        bytes[8] = 4;
        assert_eq!(
            payloads(&WAL, &bytes),
            Err(ScanError::Newer {
                version: 4,
                newest: 3
            })
        );
    }

    #[test]
    fn concurrent_appends_share_syncs_and_all_survive_a_crash() {
        let fs = SimFs::new();
        let path = Path::new("/j/reg.log");
        let j = Journal::open(Arc::new(fs.clone()), &REGISTRY, path, |_| Ok(())).unwrap();
        let before = fs.sync_points();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let j = &j;
                s.spawn(move || {
                    for i in 0..50u8 {
                        j.append(REGISTRY.frame(&[t, i])).unwrap();
                    }
                });
            }
        });
        assert!(fs.sync_points() - before <= 200);
        let crashed = fs.crash();
        let mut n = 0;
        Journal::open(Arc::new(crashed), &REGISTRY, path, |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 200);
    }

    #[test]
    fn a_failed_write_or_sync_poisons_and_a_reopen_keeps_every_acknowledged_frame() {
        for op in [FaultOp::Write, FaultOp::Sync, FaultOp::PartialWrite] {
            let fs = SimFs::new();
            let path = Path::new("/j/reg.log");
            let j = Journal::open(Arc::new(fs.clone()), &REGISTRY, path, |_| Ok(())).unwrap();
            j.append(REGISTRY.frame(b"one")).unwrap();
            fs.fail_nth(op, 0);
            assert!(
                matches!(j.append(REGISTRY.frame(b"two")), Err(Error::Io { .. })),
                "{op:?}"
            );
            fs.clear_faults();
            assert!(
                matches!(
                    j.append(REGISTRY.frame(b"three")),
                    Err(Error::Poisoned { .. })
                ),
                "{op:?}"
            );
            drop(j);
            // Without a crash (partial bytes still there) and after one.
            for fs in [fs.clone(), fs.crash()] {
                let mut got = Vec::new();
                let j = Journal::open(Arc::new(fs), &REGISTRY, path, |p| {
                    got.push(p.to_vec());
                    Ok(())
                })
                .unwrap();
                assert_eq!(got[0], b"one", "{op:?}");
                assert!(got.len() <= 2, "{op:?}");
                j.append(REGISTRY.frame(b"four")).unwrap();
            }
        }
    }
}

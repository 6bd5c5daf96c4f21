//! The one narrow door to the disk.
//!
//! Every byte the engine reads or writes goes through [`FileSystem`], so tests can swap in
//! [`testing::SimFs`], which keeps written and synced bytes apart, builds the data directory as a
//! crash would leave it, and fails chosen operations.
//!
//! Durability model the engine relies on (and `SimFs` enforces):
//! - bytes written to a file survive a crash only once [`WritableFile::sync`] returned;
//! - a created, renamed or removed name survives a crash only once [`FileSystem::sync_dir`] of its
//!   directory returned;
//! - [`FileSystem::truncate`] is durable when it returns.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file open for writing from its start (the engine never rewrites bytes in place).
pub trait WritableFile: Send {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes every byte written so far durable (fsync/fdatasync).
    fn sync(&mut self) -> io::Result<()>;
}

/// A whole file, read-only, in memory or mapped. The engine only maps files that are never
/// written again (segments).
///
/// Contract: `bytes` returns the same slice (address and length) on every call, valid for as
/// long as the object lives, even when the object is moved; the engine reads it in place.
pub trait MappedFile: Send + Sync {
    fn bytes(&self) -> &[u8];
    /// Lets the system drop this process's resident pages of `range` of the bytes: they stay
    /// the same, and a later read brings them back (from the page cache for a mapped file).
    /// Nothing for a file held in memory.
    fn release(&self, _range: std::ops::Range<usize>) {}
}

/// An exclusive lock on a data directory, released when dropped.
pub trait DirLock: Send + Sync {}

/// The file operations of the engine; paths are absolute or relative to the process.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Takes the exclusive lock file `path`, failing at once (`WouldBlock`) when another open
    /// store holds it, in this process or another.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names (not paths) of the regular files in `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates `path` empty (truncating it when it exists).
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Opens the existing file `path` for writing after its last byte (`NotFound` when absent).
    fn append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    fn map(&self, path: &Path) -> io::Result<Arc<dyn MappedFile>>;
    /// Cuts `path` to `len` bytes, durably.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Replaces `to` with `from` atomically.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the names in `dir` (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    fn len(&self, path: &Path) -> io::Result<u64>;
}

/// The real file system: `std::fs` and read-only mmap.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

struct RealFile(std::fs::File);

impl WritableFile for RealFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        io::Write::write_all(&mut self.0, buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

struct RealMap(memmap2::Mmap);

impl MappedFile for RealMap {
    fn bytes(&self) -> &[u8] {
        &self.0
    }

    #[cfg(unix)]
    fn release(&self, range: std::ops::Range<usize>) {
        let end = range.end.min(self.0.len());
        if range.start >= end {
            return;
        }
        // SAFETY: the map is a read-only shared mapping of a file never written again (see
        // `map`): MADV_DONTNEED only drops its page table entries, and a later access reads the
        // same bytes back from the file, so no slice into the map sees a change. A failure
        // only leaves the pages resident.
        let _ = unsafe {
            self.0.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                range.start,
                end - range.start,
            )
        };
    }
}

struct RealLock(
    #[expect(dead_code, reason = "held open: closing it drops the lock")] std::fs::File,
);

impl DirLock for RealLock {}

struct EmptyMap;

impl MappedFile for EmptyMap {
    fn bytes(&self) -> &[u8] {
        &[]
    }
}

/// Tries of `flock` before a data directory is reported in use (20 ms apart).
#[cfg(unix)]
const LOCK_ATTEMPTS: u32 = 5;

impl FileSystem for RealFs {
    #[cfg(unix)]
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        use std::os::unix::io::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // A process forking in this one (any `Command::spawn`) holds a copy of every descriptor
        // until its child execs, close-on-exec or not, and a flock belongs to the open file
        // description: a lock just released may so stay held for the instant of a fork. A few
        // short retries tell that instant from a store really open elsewhere.
        let mut rc = -1;
        for attempt in 0..LOCK_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            // SAFETY: flock on a descriptor this function owns; no memory is passed.
            rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock {
                break;
            }
        }
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(if e.kind() == io::ErrorKind::WouldBlock {
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "the data directory is in use by another open store",
                )
            } else {
                e
            });
        }
        Ok(Box::new(RealLock(file)))
    }

    #[cfg(not(unix))]
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(Box::new(RealLock(file)))
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(RealFile(file)))
    }

    fn append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Box::new(RealFile(file)))
    }

    fn map(&self, path: &Path) -> io::Result<Arc<dyn MappedFile>> {
        let file = std::fs::File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(Arc::new(EmptyMap));
        }
        // SAFETY: the engine maps only segment files, which are written once, synced, and then
        // never modified or truncated while the store is open (they are replaced by new files and
        // unlinked, which leaves existing mappings valid on Unix).
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Arc::new(RealMap(map)))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }
}

/// Test backends: a simulated file system with crash images and injected failures.
pub mod testing {
    use super::*;
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Mutex;

    /// Which operation an injected failure hits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum FaultOp {
        /// A write that fails before writing anything.
        Write,
        /// A write that writes the first half of its buffer, then fails with
        /// `io::ErrorKind::StorageFull` (a full disk).
        PartialWrite,
        /// A file or directory sync (a failed file sync also drops the unsynced bytes).
        Sync,
        Create,
        /// Opening an existing file to append to it.
        Append,
        Read,
        Rename,
        Remove,
        Truncate,
    }

    impl FaultOp {
        pub const ALL: [FaultOp; 9] = [
            FaultOp::Write,
            FaultOp::PartialWrite,
            FaultOp::Sync,
            FaultOp::Create,
            FaultOp::Append,
            FaultOp::Read,
            FaultOp::Rename,
            FaultOp::Remove,
            FaultOp::Truncate,
        ];
    }

    #[derive(Default)]
    struct Inode {
        data: Vec<u8>,
        synced: Vec<u8>,
    }

    #[derive(Default)]
    struct State {
        inodes: HashMap<u64, Inode>,
        next_inode: u64,
        /// The namespace as the running process sees it.
        live: BTreeMap<PathBuf, u64>,
        /// The namespace as a crash would leave it.
        durable: BTreeMap<PathBuf, u64>,
        /// Countdown per operation: fail when it reaches 0.
        faults: Vec<(FaultOp, u64)>,
        sync_points: u64,
        recording: bool,
        images: Vec<CrashImage>,
    }

    /// The data directory as a crash at one sync point would leave it.
    #[derive(Clone, Debug)]
    pub struct CrashImage {
        /// Number of sync points (file or directory syncs) completed before the crash.
        pub sync_point: u64,
        /// True when unsynced tails were kept in part (a torn write), false when dropped.
        pub torn: bool,
        files: BTreeMap<PathBuf, Vec<u8>>,
    }

    impl CrashImage {
        /// A fresh file system holding exactly this image, everything synced.
        pub fn to_fs(&self) -> SimFs {
            let fs = SimFs::new();
            {
                let mut st = fs.lock();
                for (path, bytes) in &self.files {
                    let ino = st.next_inode;
                    st.next_inode += 1;
                    st.inodes.insert(
                        ino,
                        Inode {
                            data: bytes.clone(),
                            synced: bytes.clone(),
                        },
                    );
                    st.live.insert(path.clone(), ino);
                    st.durable.insert(path.clone(), ino);
                }
            }
            fs
        }
    }

    /// An in-memory file system that separates written from synced bytes.
    #[derive(Clone, Default)]
    pub struct SimFs {
        state: Arc<Mutex<State>>,
    }

    impl fmt::Debug for SimFs {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("SimFs")
        }
    }

    fn injected(op: FaultOp) -> io::Error {
        io::Error::other(format!("injected {op:?} failure"))
    }

    fn not_found(path: &Path) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} not found", path.display()),
        )
    }

    impl State {
        fn check_fault(&mut self, op: FaultOp) -> io::Result<()> {
            let mut hit = false;
            self.faults.retain_mut(|(o, n)| {
                if *o != op || hit {
                    return true;
                }
                if *n == 0 {
                    hit = true;
                    false
                } else {
                    *n -= 1;
                    true
                }
            });
            if hit {
                Err(injected(op))
            } else {
                Ok(())
            }
        }

        fn image(&self, torn: bool) -> CrashImage {
            let mut files = BTreeMap::new();
            for (path, ino) in &self.durable {
                let Some(inode) = self.inodes.get(ino) else {
                    continue;
                };
                let mut bytes = inode.synced.clone();
                if torn && inode.data.starts_with(&inode.synced) {
                    // A torn write: the first half of the unsynced tail reached the disk.
                    let tail = &inode.data[inode.synced.len()..];
                    let keep = tail.len() / 2;
                    bytes.extend_from_slice(&tail[..keep]);
                }
                files.insert(path.clone(), bytes);
            }
            CrashImage {
                sync_point: self.sync_points,
                torn,
                files,
            }
        }

        fn sync_point(&mut self) {
            if self.recording {
                let before = self.image(true);
                self.images.push(before);
            }
        }

        fn after_sync(&mut self) {
            self.sync_points += 1;
            if self.recording {
                let after = self.image(false);
                self.images.push(after);
            }
        }
    }

    impl SimFs {
        pub fn new() -> SimFs {
            SimFs::default()
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, State> {
            match self.state.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            }
        }

        /// Makes the `n`th next operation of kind `op` (0: the very next) fail.
        pub fn fail_nth(&self, op: FaultOp, n: u64) {
            self.lock().faults.push((op, n));
        }

        pub fn clear_faults(&self) {
            self.lock().faults.clear();
        }

        /// Starts recording a crash image before (torn) and after every sync point.
        pub fn record_crash_images(&self) {
            self.lock().recording = true;
        }

        pub fn take_crash_images(&self) -> Vec<CrashImage> {
            std::mem::take(&mut self.lock().images)
        }

        /// Sync points completed so far.
        pub fn sync_points(&self) -> u64 {
            self.lock().sync_points
        }

        /// The image of a crash now: only synced bytes and synced names survive.
        pub fn crash(&self) -> SimFs {
            self.lock().image(false).to_fs()
        }

        /// Every live file with its current contents.
        pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
            let st = self.lock();
            st.live
                .iter()
                .filter_map(|(p, ino)| Some((p.clone(), st.inodes.get(ino)?.data.clone())))
                .collect()
        }

        /// Changes a live file's bytes in place (tests of corruption), as synced.
        pub fn modify(&self, path: &Path, f: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
            let mut st = self.lock();
            let ino = *st.live.get(path).ok_or_else(|| not_found(path))?;
            let inode = st.inodes.get_mut(&ino).ok_or_else(|| not_found(path))?;
            f(&mut inode.data);
            inode.synced = inode.data.clone();
            Ok(())
        }
    }

    struct SimFile {
        fs: SimFs,
        ino: u64,
    }

    impl WritableFile for SimFile {
        fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            let mut st = self.fs.lock();
            let partial = st.check_fault(FaultOp::PartialWrite).is_err();
            if !partial {
                st.check_fault(FaultOp::Write)?;
            }
            let inode = st
                .inodes
                .get_mut(&self.ino)
                .ok_or_else(|| io::Error::other("inode gone"))?;
            if partial {
                inode.data.extend_from_slice(&buf[..buf.len() / 2]);
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "injected PartialWrite failure: no space left on device",
                ));
            }
            inode.data.extend_from_slice(buf);
            Ok(())
        }

        fn sync(&mut self) -> io::Result<()> {
            let mut st = self.fs.lock();
            st.sync_point();
            if let Err(e) = st.check_fault(FaultOp::Sync) {
                // Like Linux after a failed fsync: the dirty pages may be gone for good.
                if let Some(inode) = st.inodes.get_mut(&self.ino) {
                    inode.data = inode.synced.clone();
                }
                return Err(e);
            }
            let inode = st
                .inodes
                .get_mut(&self.ino)
                .ok_or_else(|| io::Error::other("inode gone"))?;
            inode.synced = inode.data.clone();
            st.after_sync();
            Ok(())
        }
    }

    struct SimLock;

    impl DirLock for SimLock {}

    struct SimMap(Vec<u8>);

    impl MappedFile for SimMap {
        fn bytes(&self) -> &[u8] {
            &self.0
        }
    }

    impl FileSystem for SimFs {
        /// No exclusion: a simulated directory belongs to one test.
        fn lock(&self, _path: &Path) -> io::Result<Box<dyn DirLock>> {
            Ok(Box::new(SimLock))
        }

        fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
            Ok(())
        }

        fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
            let st = self.lock();
            Ok(st
                .live
                .keys()
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
                .collect())
        }

        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            let mut st = self.lock();
            st.check_fault(FaultOp::Read)?;
            let ino = st.live.get(path).ok_or_else(|| not_found(path))?;
            Ok(st
                .inodes
                .get(ino)
                .map(|i| i.data.clone())
                .unwrap_or_default())
        }

        fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
            let mut st = self.lock();
            st.check_fault(FaultOp::Create)?;
            let ino = st.next_inode;
            st.next_inode += 1;
            st.inodes.insert(ino, Inode::default());
            st.live.insert(path.to_path_buf(), ino);
            Ok(Box::new(SimFile {
                fs: self.clone(),
                ino,
            }))
        }

        fn append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
            let mut st = self.lock();
            st.check_fault(FaultOp::Append)?;
            let ino = *st.live.get(path).ok_or_else(|| not_found(path))?;
            Ok(Box::new(SimFile {
                fs: self.clone(),
                ino,
            }))
        }

        fn map(&self, path: &Path) -> io::Result<Arc<dyn MappedFile>> {
            Ok(Arc::new(SimMap(self.read(path)?)))
        }

        fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
            let mut st = self.lock();
            st.check_fault(FaultOp::Truncate)?;
            let ino = *st.live.get(path).ok_or_else(|| not_found(path))?;
            let inode = st.inodes.get_mut(&ino).ok_or_else(|| not_found(path))?;
            let len = usize::try_from(len).map_err(io::Error::other)?;
            inode.data.truncate(len);
            inode.synced = inode.data.clone();
            Ok(())
        }

        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            let mut st = self.lock();
            st.check_fault(FaultOp::Rename)?;
            let ino = st.live.remove(from).ok_or_else(|| not_found(from))?;
            st.live.insert(to.to_path_buf(), ino);
            Ok(())
        }

        fn remove(&self, path: &Path) -> io::Result<()> {
            let mut st = self.lock();
            st.check_fault(FaultOp::Remove)?;
            st.live.remove(path).ok_or_else(|| not_found(path))?;
            Ok(())
        }

        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            let mut st = self.lock();
            st.sync_point();
            st.check_fault(FaultOp::Sync)?;
            let st = &mut *st;
            st.durable.retain(|p, _| p.parent() != Some(dir));
            for (p, ino) in &st.live {
                if p.parent() == Some(dir) {
                    st.durable.insert(p.clone(), *ino);
                }
            }
            st.after_sync();
            Ok(())
        }

        fn len(&self, path: &Path) -> io::Result<u64> {
            let st = self.lock();
            let ino = st.live.get(path).ok_or_else(|| not_found(path))?;
            Ok(st.inodes.get(ino).map_or(0, |i| i.data.len() as u64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_range_of_a_mapped_file_reads_back_the_same_bytes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("seg");
        let bytes: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("writes");
        let map = RealFs.map(&path).expect("maps");
        assert_eq!(map.bytes(), &bytes[..]);
        // Unaligned, past the end, empty: each only lets pages go.
        map.release(0..5000);
        map.release(4097..bytes.len() + 10);
        map.release(7..7);
        assert_eq!(map.bytes(), &bytes[..]);
        map.release(0..bytes.len());
        assert_eq!(map.bytes(), &bytes[..]);
    }
}

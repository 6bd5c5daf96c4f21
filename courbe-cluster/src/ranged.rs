//! A reader of a shard that fetches only what its questions read (docs/SCALE-OUT.md, "Ranged
//! reader"): at open, each segment's header and its index part (index pages, fences, rollups,
//! register table, footer: storage-format/FORMAT.md §3) by ranged GETs, written at their
//! offsets into a sparse local file of the segment's length; before a question, the blocks of
//! the meters it reads (a meter's *group*: its blocks are contiguous and one crc covers them).
//! Blocks are fetched and held in aligned *chunks* of the block area (`chunk_bytes`, 64 KiB by
//! default), consecutive missing chunks of a segment in one ranged GET. The chunks held are
//! bounded in bytes: past the bound, the least recently read ones are dropped (punched out of
//! the file, so the disk blocks are freed; a chunk is a whole number of disk blocks). One
//! bound may be shared by the readers of every shard a node reads ([`BlockCache`]): the least
//! recently read chunks are then dropped first across all of them.
//!
//! The engine reads these files as it reads any segment (mapped, shared): every byte it reads
//! during a question was fetched before the question ran, and no group is dropped or written
//! while a question runs ([`RangedReader::read`] holds the cache shared while it runs, and
//! fetching or dropping holds it exclusively).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use courbe::engine::fs::{FileSystem, RealFs};
use courbe::engine::manifest::{self, Manifest};
use courbe::engine::{Options, Store};
use courbe::source::SeriesSource;
use courbe::Channel;

use crate::layout::{self, ShardLayout, ShardManifest};
use crate::objects::{Objects, Traffic};
use crate::{Coordinator, Error, Result};

/// Bytes of a segment's header and footer (FORMAT.md §3.1, §3.5).
const HEADER_LEN: u64 = 32;
const FOOTER_LEN: u64 = 64;

struct CachedSegment {
    path: PathBuf,
    key: String,
    file: Arc<File>,
    /// Where the blocks end (the index offset): chunks hold bytes of `HEADER_LEN..blocks_end`
    /// only, so dropping one never touches the header or the index part.
    blocks_end: u64,
    len: u64,
}

/// Removes from `dir` every file but the segment files of `segments` and their `.held`
/// records (other versions' segments, the store's log, what a previous reader left).
fn remove_others(dir: &Path, segments: &[CachedSegment]) -> Result<()> {
    let keep: std::collections::BTreeSet<PathBuf> = segments
        .iter()
        .flat_map(|s| [s.path.clone(), held_path(&s.path)])
        .collect();
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let path = e.path();
        if keep.contains(&path) {
            continue;
        }
        let removed = if e.file_type().map_err(io(&path))?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(io(&path))?;
    }
    Ok(())
}

impl CachedSegment {
    /// The block bytes of chunk `n`.
    fn chunk(&self, n: u64, chunk_bytes: u64) -> std::ops::Range<u64> {
        chunk_of(n, chunk_bytes, self.blocks_end)
    }
}

/// The block bytes of chunk `n` of a segment whose blocks end at `blocks_end`.
fn chunk_of(n: u64, chunk_bytes: u64, blocks_end: u64) -> std::ops::Range<u64> {
    let start = (n * chunk_bytes).max(HEADER_LEN);
    let end = ((n + 1) * chunk_bytes).min(blocks_end);
    start..end.max(start)
}

#[derive(Default)]
struct Cache {
    /// (segment number in `files`, chunk number) to the clock of its last read, for the
    /// chunks held.
    held: HashMap<(usize, u64), u64>,
    bytes: u64,
    clock: u64,
    dropped: u64,
    /// Every segment file of every reader sharing the cache, numbered in order of opening:
    /// what dropping a chunk punches, whichever reader fetched it.
    files: Vec<CachedFile>,
}

#[derive(Clone)]
struct CachedFile {
    path: PathBuf,
    file: Arc<File>,
    blocks_end: u64,
    /// The object it holds bytes of, recorded in its [`Held`] file.
    key: String,
    len: u64,
}

/// What a segment's sparse file holds, beside it (`<segment file>.held`, JSON): the object and
/// the chunks of blocks written in it. Written after a chunk's bytes and before a chunk is
/// punched, so it never names a chunk the file does not hold (a crash may leave a held chunk
/// unnamed: it is fetched again).
#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct Held {
    key: String,
    len: u64,
    chunk_bytes: u64,
    chunks: Vec<u64>,
}

fn held_path(segment: &Path) -> PathBuf {
    segment.with_extension("held")
}

impl Cache {
    /// Rewrites the [`Held`] file of file `i` from the chunks held now.
    fn record(&self, i: usize, chunk_bytes: u64) -> Result<()> {
        let Some(f) = self.files.get(i) else {
            return Ok(());
        };
        let mut chunks: Vec<u64> = self
            .held
            .keys()
            .filter(|(file, _)| *file == i)
            .map(|&(_, n)| n)
            .collect();
        chunks.sort_unstable();
        let held = Held {
            key: f.key.clone(),
            len: f.len,
            chunk_bytes,
            chunks,
        };
        let path = held_path(&f.path);
        let tmp = path.with_extension("held.part");
        let bytes = serde_json::to_vec(&held).map_err(|e| Error::Invalid(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }
}

/// The byte bound of the blocks a node holds, shared by every ranged reader opened in it
/// ([`RangedReader::open_in`]): past it, the least recently read chunks are dropped, whichever
/// shard they belong to. Cloning it shares it.
#[derive(Clone)]
pub struct BlockCache {
    inner: Arc<tokio::sync::RwLock<Cache>>,
    options: CacheOptions,
}

impl BlockCache {
    pub fn new(options: CacheOptions) -> Result<BlockCache> {
        if options.chunk_bytes == 0 || options.chunk_bytes % 4096 != 0 {
            return Err(Error::Invalid(format!(
                "a chunk of {} bytes: a positive multiple of 4096 is needed",
                options.chunk_bytes
            )));
        }
        Ok(BlockCache {
            inner: Arc::new(tokio::sync::RwLock::new(Cache::default())),
            options,
        })
    }

    pub fn options(&self) -> CacheOptions {
        self.options
    }

    /// The blocks held by every reader sharing the cache (`index_bytes`: 0, a reader's own).
    pub async fn stats(&self) -> CacheStats {
        let cache = self.inner.read().await;
        CacheStats {
            index_bytes: 0,
            block_bytes: cache.bytes,
            chunks_held: cache.held.len(),
            chunks_dropped: cache.dropped,
        }
    }
}

/// How a ranged reader caches blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheOptions {
    /// Most bytes of blocks held (a question that needs more holds them until the next one).
    pub bound_bytes: u64,
    /// The unit fetched, held and dropped: a multiple of the disk's block size (4 KiB).
    pub chunk_bytes: u64,
}

impl CacheOptions {
    pub fn new(bound_bytes: u64) -> CacheOptions {
        CacheOptions {
            bound_bytes,
            chunk_bytes: 64 << 10,
        }
    }
}

/// What a ranged reader holds and what it cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Bytes of the segments' index parts (always held).
    pub index_bytes: u64,
    /// Bytes of the chunks of blocks held (at most the bound, unless one question needs more).
    pub block_bytes: u64,
    pub chunks_held: usize,
    /// Chunks dropped to stay within the bound, so far.
    pub chunks_dropped: u64,
}

/// A shard read through ranged GETs and a byte-bounded cache of blocks.
pub struct RangedReader {
    store: Store,
    objects: Objects,
    head: Option<ShardManifest>,
    /// Its segments, each with its number in the cache's files.
    segments: Vec<(usize, CachedSegment)>,
    cache: BlockCache,
    index_bytes: u64,
    /// What opening cost: the etcd read is not counted here (one).
    pub opened: Traffic,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl RangedReader {
    /// Opens the version etcd points to in `dir`: the manifest object, then per segment three
    /// ranged GETs (footer, index part, header), written over whatever the directory held; no
    /// block is fetched. The blocks a previous reader left in `dir` are kept only for a
    /// segment file of the same object, length and chunk size (its `.held` record), and every
    /// block is checked by its group's crc when read; every other file is removed.
    pub async fn open(
        coord: &Coordinator,
        objects: &Objects,
        layout: &ShardLayout,
        dir: &Path,
        options: Options,
        cache: CacheOptions,
    ) -> Result<RangedReader> {
        let cache = BlockCache::new(cache)?;
        RangedReader::open_in(coord, objects, layout, dir, options, &cache).await
    }

    /// [`RangedReader::open`] within `cache`, a bound shared with the other readers of the
    /// node.
    pub async fn open_in(
        coord: &Coordinator,
        objects: &Objects,
        layout: &ShardLayout,
        dir: &Path,
        options: Options,
        cache: &BlockCache,
    ) -> Result<RangedReader> {
        let before = objects.traffic();
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut head = None;
        let mut segments = Vec::new();
        let mut kept: Vec<Vec<u64>> = Vec::new();
        let mut index_bytes = 0;
        if let Some(pointer) = coord.manifest_pointer(layout).await? {
            let key = layout.manifest_key(&pointer);
            let bytes = objects.get(&key).await?;
            let (h, store_bytes) = layout::decode_manifest_object(&key, &bytes)?;
            let man = Manifest::decode(&store_bytes, Path::new(&key))?;
            for entry in &man.segments {
                let object = h.segment_key(&key, entry.file_id)?;
                let path = dir.join(manifest::segment_file_name(entry.file_id));
                let held: Option<Held> = std::fs::read(held_path(&path))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .filter(|h: &Held| {
                        h.key == object
                            && h.len == entry.len
                            && h.chunk_bytes == cache.options.chunk_bytes
                            && std::fs::metadata(&path).is_ok_and(|m| m.len() == entry.len)
                    });
                let chunks = match held {
                    Some(h) => h.chunks,
                    None => {
                        // Nothing of it is trusted: a fresh sparse file.
                        let _ = std::fs::remove_file(&path);
                        Vec::new()
                    }
                };
                let (fetched, blocks_end) =
                    fetch_index_part(objects, object, entry.len, &path).await?;
                kept.push(chunks);
                index_bytes += fetched;
                let file = File::options()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(io(&path))?;
                segments.push(CachedSegment {
                    path,
                    key: object.to_owned(),
                    file: Arc::new(file),
                    blocks_end,
                    len: entry.len,
                });
            }
            remove_others(dir, &segments)?;
            let man_path = dir.join(manifest::FILE_NAME);
            std::fs::write(&man_path, &store_bytes).map_err(io(&man_path))?;
            head = Some(h);
        } else {
            remove_others(dir, &[])?;
        }
        let store = Store::open(dir, options)?;
        let segments: Vec<(usize, CachedSegment)> = {
            let mut shared = cache.inner.write().await;
            let mut numbered = Vec::new();
            for (seg, chunks) in segments.into_iter().zip(kept) {
                shared.files.push(CachedFile {
                    path: seg.path.clone(),
                    file: seg.file.clone(),
                    blocks_end: seg.blocks_end,
                    key: seg.key.clone(),
                    len: seg.len,
                });
                let i = shared.files.len() - 1;
                // Kept chunks count in the bound, read longest ago.
                for n in chunks {
                    let bytes = seg.chunk(n, cache.options.chunk_bytes);
                    if bytes.is_empty() || shared.held.contains_key(&(i, n)) {
                        continue;
                    }
                    shared.held.insert((i, n), 0);
                    shared.bytes += bytes.end - bytes.start;
                }
                shared.record(i, cache.options.chunk_bytes)?;
                numbered.push((i, seg));
            }
            numbered
        };
        Ok(RangedReader {
            store,
            objects: objects.clone(),
            head,
            segments,
            cache: cache.clone(),
            index_bytes,
            opened: objects.traffic().since(&before),
        })
    }

    /// The manifest object read (`None`: the shard had none).
    pub fn head(&self) -> Option<&ShardManifest> {
        self.head.as_ref()
    }

    /// Its index part, and the blocks held by every reader sharing its cache.
    pub async fn stats(&self) -> CacheStats {
        let cache = self.cache.inner.read().await;
        CacheStats {
            index_bytes: self.index_bytes,
            block_bytes: cache.bytes,
            chunks_held: cache.held.len(),
            chunks_dropped: cache.dropped,
        }
    }

    /// Runs `question` over the shard once the blocks of `meters` in `[from_utc, to_utc)` are
    /// held; the question must read no other meter's blocks (rollups and the index are always
    /// there: a fleet curve from rollups needs no meter).
    pub async fn read<T>(
        &self,
        meters: &[String],
        from_utc: i64,
        to_utc: i64,
        question: impl FnOnce(&dyn SeriesSource) -> T,
    ) -> Result<T> {
        let mut cache = self.cache.inner.write().await;
        self.fetch(&mut cache, meters, from_utc, to_utc).await?;
        let _shared = cache.downgrade();
        let snapshot = self.store.snapshot();
        Ok(question(&*snapshot))
    }

    /// Runs `work` over the shard's store once every block of `meters` is held: for an answer
    /// written from the store itself (a meter's export, whose consent and grants come with
    /// it), which must read no other meter's blocks.
    pub async fn read_store<T>(
        &self,
        meters: &[String],
        work: impl FnOnce(&Store) -> T,
    ) -> Result<T> {
        let mut cache = self.cache.inner.write().await;
        self.fetch(&mut cache, meters, i64::MIN, i64::MAX).await?;
        let _shared = cache.downgrade();
        Ok(work(&self.store))
    }

    /// Fetches the chunks holding the groups of `meters` that are not held, then drops the
    /// least recently read others while the bound is passed.
    async fn fetch(
        &self,
        cache: &mut Cache,
        meters: &[String],
        from_utc: i64,
        to_utc: i64,
    ) -> Result<()> {
        cache.clock += 1;
        let now = cache.clock;
        let chunk_bytes = self.cache.options.chunk_bytes;
        let fs = RealFs;
        for &(i, ref seg) in &self.segments {
            let mut missing = std::collections::BTreeSet::new();
            {
                let map = fs.map(&seg.path).map_err(io(&seg.path))?;
                let segment = storage_format::segment::Segment::open(map.bytes()).map_err(|e| {
                    Error::Corrupt {
                        what: seg.path.display().to_string(),
                        detail: e.to_string(),
                    }
                })?;
                for m in meters {
                    let Some(range) = group_range(&segment, m, from_utc, to_utc, &seg.path)? else {
                        continue;
                    };
                    for n in range.start / chunk_bytes..range.end.div_ceil(chunk_bytes) {
                        match cache.held.get_mut(&(i, n)) {
                            Some(last_read) => *last_read = now,
                            None => {
                                missing.insert(n);
                            }
                        }
                    }
                }
            }
            let fetched_any = !missing.is_empty();
            // Consecutive missing chunks in one ranged GET.
            let mut runs: Vec<std::ops::Range<u64>> = Vec::new();
            for n in missing {
                match runs.last_mut() {
                    Some(r) if r.end == n => r.end = n + 1,
                    _ => runs.push(n..n + 1),
                }
            }
            for run in runs {
                let bytes = seg.chunk(run.start, chunk_bytes).start
                    ..seg.chunk(run.end - 1, chunk_bytes).end;
                let data = self.objects.get_range(&seg.key, bytes.clone()).await?;
                if data.len() as u64 != bytes.end - bytes.start {
                    return Err(Error::Corrupt {
                        what: seg.key.clone(),
                        detail: format!("asked bytes {bytes:?}, got {}", data.len()),
                    });
                }
                seg.file
                    .write_all_at(&data, bytes.start)
                    .map_err(io(&seg.path))?;
                cache.bytes += data.len() as u64;
                for n in run {
                    cache.held.insert((i, n), now);
                }
            }
            if fetched_any {
                cache.record(i, chunk_bytes)?;
            }
        }
        if cache.bytes <= self.cache.options.bound_bytes {
            return Ok(());
        }
        // The least recently read chunks past the bound (not this question's), first out of
        // the records, then out of the files.
        let mut older: Vec<((usize, u64), u64)> = cache
            .held
            .iter()
            .filter(|(_, &last_read)| last_read < now)
            .map(|(&k, &v)| (k, v))
            .collect();
        older.sort_unstable_by_key(|&(k, last_read)| (last_read, k));
        let mut victims = Vec::new();
        let mut bytes_left = cache.bytes;
        for (k, _) in older {
            if bytes_left <= self.cache.options.bound_bytes {
                break;
            }
            let Some(f) = cache.files.get(k.0) else {
                continue;
            };
            let bytes = chunk_of(k.1, chunk_bytes, f.blocks_end);
            bytes_left -= bytes.end - bytes.start;
            victims.push((k, bytes));
        }
        for (k, _) in &victims {
            cache.held.remove(k);
        }
        let touched: std::collections::BTreeSet<usize> = victims.iter().map(|(k, _)| k.0).collect();
        for &i in &touched {
            cache.record(i, chunk_bytes)?;
        }
        for ((i, _), bytes) in victims {
            let Some(f) = cache.files.get(i).cloned() else {
                continue;
            };
            punch_hole(&f.file, bytes.clone()).map_err(io(&f.path))?;
            cache.bytes -= bytes.end - bytes.start;
            cache.dropped += 1;
        }
        Ok(())
    }
}

/// The byte range of `meter`'s group in `segment` when one of its blocks meets
/// `[from_utc, to_utc)`: every series of the meter, since one crc covers the group (v2 on).
fn group_range(
    segment: &storage_format::segment::Segment<'_>,
    meter: &str,
    from_utc: i64,
    to_utc: i64,
    path: &Path,
) -> Result<Option<std::ops::Range<u64>>> {
    let corrupt = |e: storage_format::Error| Error::Corrupt {
        what: path.display().to_string(),
        detail: e.to_string(),
    };
    // The last key a meter can have: its group is in the page whose first key is at most it.
    let last = Channel::index((Channel::REGISTERS_MAX - 1) as u8).unwrap_or(Channel::PRICE);
    let Some(page) = segment.page_of(meter, last).map_err(corrupt)? else {
        return Ok(None);
    };
    let mut range: Option<std::ops::Range<u64>> = None;
    let mut meets = false;
    for s in segment.page_series(page).map_err(corrupt)? {
        if s.meter != meter {
            continue;
        }
        for b in &s.blocks {
            let end = b.offset + b.encoded().len() as u64;
            meets |= b.summary.first_ts < to_utc && b.summary.last_ts >= from_utc;
            range = Some(match range {
                Some(r) => r.start.min(b.offset)..r.end.max(end),
                None => b.offset..end,
            });
        }
    }
    Ok(range.filter(|_| meets))
}

/// Fetches the header, the index part and the footer of the segment object `key` (`len`
/// bytes) into a sparse file `path` of that length (written over a kept file's); returns the bytes fetched and where the
/// blocks end (the index offset).
async fn fetch_index_part(
    objects: &Objects,
    key: &str,
    len: u64,
    path: &Path,
) -> Result<(u64, u64)> {
    let corrupt = |detail: String| Error::Corrupt {
        what: key.to_owned(),
        detail,
    };
    if len < HEADER_LEN + FOOTER_LEN {
        return Err(corrupt(format!("a segment of {len} bytes")));
    }
    let footer = objects.get_range(key, len - FOOTER_LEN..len).await?;
    let index_offset = footer
        .first_chunk::<8>()
        .map(|b| u64::from_le_bytes(*b))
        .ok_or_else(|| corrupt(format!("a footer of {} bytes", footer.len())))?;
    if !(HEADER_LEN..=len - FOOTER_LEN).contains(&index_offset) {
        return Err(corrupt(format!(
            "index offset {index_offset} outside a segment of {len} bytes"
        )));
    }
    let index = if index_offset < len - FOOTER_LEN {
        objects
            .get_range(key, index_offset..len - FOOTER_LEN)
            .await?
    } else {
        bytes::Bytes::new()
    };
    let header = objects.get_range(key, 0..HEADER_LEN).await?;
    // Opened without truncation: the blocks of a kept file stay (see `RangedReader::open`).
    let file = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io(path))?;
    file.set_len(len).map_err(io(path))?;
    for (at, part) in [
        (0, &header),
        (index_offset, &index),
        (len - FOOTER_LEN, &footer),
    ] {
        file.write_all_at(part, at).map_err(io(path))?;
    }
    Ok((
        (header.len() + index.len() + footer.len()) as u64,
        index_offset,
    ))
}

/// Frees the disk blocks of `range` in `file`; its bytes then read as zeros (the file keeps its
/// length).
fn punch_hole(file: &File, range: std::ops::Range<u64>) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (
        libc::off_t::try_from(range.start),
        libc::off_t::try_from(range.end - range.start),
    ) else {
        return Err(std::io::Error::other("a range beyond off_t"));
    };
    // SAFETY: fallocate reads no memory of this process; the descriptor is open for writing
    // (owned by `file`, alive for the call).
    let done = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Byte counts of a directory's files as stored on disk (holes are not counted).
pub fn allocated_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.blocks() * 512)
        .sum()
}

//! Immutable segment files: one time partition (a Europe/Paris calendar month) each, written by a flush,
//! a compaction or an erasure, read in place through a read-only map.
//!
//! A block holds one series over at most one partition, so a segment's blocks never cross its
//! month; a block's coverage (`end_ts`) may reach at most one step (≤ 1 day) past the month end.
//!
//! Lookups go through index pages decoded once and kept, at most [`DECODED_PAGES_MAX`] per
//! segment, so a query reads the fence table and the decoded page, not the index bytes.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use storage_format::block::{DecodedBlock, MAX_POINTS};
use storage_format::rollup::{ChannelRollup, RollupEntry};
use storage_format::segment::{
    BlockRef, BlockRun, Segment, SegmentBuilder, SegmentMeta, SeriesRef,
};

use super::fs::{FileSystem, MappedFile, WritableFile};
use super::manifest::{segment_file_name, SegmentEntry};
use super::memtable::EraseSpec;
use super::Error;
use crate::civil::{civil_from_days, days_from_civil};
use crate::{Channel, Point};

/// Bytes buffered before they are appended to the segment file.
const WRITE_CHUNK: usize = 1 << 20;

/// UTC offset of local midnight on the first day of month `m` (1..=12) under the French civil
/// rule the partitions follow (CET, UTC+1; CEST, UTC+2, from the last Sunday of March to the last
/// Sunday of October, the EU rule since 1996): the first of April to the first of October fall in
/// summer time, the other firsts in winter time. The rule is fixed here, not read from a time-zone
/// database, so a file's partition never changes with a tzdb update.
fn paris_month_start_offset_s(m: i64) -> i64 {
    if (4..=10).contains(&m) {
        7_200
    } else {
        3_600
    }
}

/// The partition of `ts_utc` (from 1970 to the end of 9999, so that it fits a `u32`): the months since 1970-01 of its
/// Europe/Paris local date. Partitions follow Paris months so that the monthly and yearly periods
/// French consumers are shown cover whole blocks, which queries answer from summaries alone.
pub fn partition_of(ts_utc: i64) -> u32 {
    let (y, m, _) = civil_from_days(ts_utc.div_euclid(86_400));
    let utc_month = ((y - 1970) * 12 + (m - 1)).clamp(0, i64::from(u32::MAX - 1)) as u32;
    // Local time is ahead of UTC, so the local month is the UTC month or the next one.
    if ts_utc >= partition_start(utc_month + 1) {
        utc_month + 1
    } else {
        utc_month
    }
}

/// First second of partition `p`: local midnight, Europe/Paris, on the first of its month.
pub fn partition_start(p: u32) -> i64 {
    let y = 1970 + i64::from(p / 12);
    let m = i64::from(p % 12) + 1;
    days_from_civil(y, m, 1) * 86_400 - paris_month_start_offset_s(m)
}

pub fn partition_end(p: u32) -> i64 {
    partition_start(p.saturating_add(1))
}

/// Whether partition `p` may hold a block whose coverage meets `[from, to)`.
pub fn partition_meets(p: u32, from: i64, to: i64) -> bool {
    partition_start(p) < to && partition_end(p) + 86_400 > from
}

/// The format crate's error `e` on the bytes of `path`, kept whole ([`Error::Format`]).
pub fn corruption(path: &Path, e: storage_format::Error) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Most index pages one segment keeps decoded. A page holds about 2 KiB of index (some 20
/// meters of three series), about 10 KiB decoded, so a segment holds at most ~2.5 MiB of decoded
/// index whatever its size: a month of 2,000 meters (~100 pages) stays whole, a month of
/// 1,000,000 meters (~50,000 pages) keeps its most recently used pages.
pub const DECODED_PAGES_MAX: usize = 256;

/// The first 16 bytes of a meter id as two big-endian words, zero-padded: for ids of at most 16
/// bytes, `(words, len)` orders like the id's bytes (a zero-padded id equals a longer one only
/// when the longer one extends it with zero bytes, and then it is the greater).
fn key_words(meter: &[u8]) -> [u64; 2] {
    let mut padded = [0u8; 16];
    let n = meter.len().min(16);
    if let (Some(dst), Some(src)) = (padded.get_mut(..n), meter.get(..n)) {
        dst.copy_from_slice(src);
    }
    let (hi, lo) = padded.split_at(8);
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        u64::from_be_bytes(w)
    };
    [word(hi), word(lo)]
}

/// A series key of a decoded page, compared without touching the meter bytes when the ids are
/// at most 16 bytes long (meter ids are usually 14 digits).
#[derive(Clone, Copy)]
struct SeriesKey {
    words: [u64; 2],
    meter: &'static str,
    channel: u8,
    /// End of the series' blocks in `DecodedPage::blocks`; each series starts where the previous
    /// one ends.
    end: u32,
}

impl SeriesKey {
    fn cmp_to(&self, words: [u64; 2], meter: &str, channel: u8) -> std::cmp::Ordering {
        self.words
            .cmp(&words)
            .then_with(|| {
                if self.meter.len() <= 16 && meter.len() <= 16 {
                    self.meter.len().cmp(&meter.len())
                } else {
                    self.meter.as_bytes().cmp(meter.as_bytes())
                }
            })
            .then(self.channel.cmp(&channel))
    }
}

/// One index page decoded: its series in key order, each with its blocks.
struct DecodedPage {
    series: Vec<SeriesKey>,
    blocks: Vec<BlockRef<'static>>,
}

impl DecodedPage {
    fn new(series: Vec<SeriesRef<'static>>) -> DecodedPage {
        let mut page = DecodedPage {
            series: Vec::with_capacity(series.len()),
            blocks: Vec::with_capacity(series.iter().map(|s| s.blocks.len()).sum()),
        };
        for s in series {
            page.blocks.extend_from_slice(&s.blocks);
            page.series.push(SeriesKey {
                words: key_words(s.meter.as_bytes()),
                meter: s.meter,
                channel: s.channel.code(),
                end: page.blocks.len() as u32,
            });
        }
        page
    }

    /// The blocks of `(meter, channel)`; empty when the page does not hold it.
    fn blocks(&self, meter: &str, channel: Channel) -> &[BlockRef<'static>] {
        let words = key_words(meter.as_bytes());
        let Ok(i) = self
            .series
            .binary_search_by(|k| k.cmp_to(words, meter, channel.code()))
        else {
            return &[];
        };
        let start = match i.checked_sub(1).and_then(|p| self.series.get(p)) {
            Some(k) => k.end as usize,
            None => 0,
        };
        let end = self.series.get(i).map_or(start, |k| k.end as usize);
        self.blocks.get(start..end).unwrap_or(&[])
    }

    /// Whether the page holds a series of `meter`.
    fn has_meter(&self, meter: &str) -> bool {
        let words = key_words(meter.as_bytes());
        let at = self
            .series
            .partition_point(|k| k.cmp_to(words, meter, 0) == std::cmp::Ordering::Less);
        self.series.get(at).is_some_and(|k| k.meter == meter)
    }
}

/// Decoded index pages of one segment, at most [`DECODED_PAGES_MAX`], evicted in CLOCK order
/// (second chance to a page used since it was last passed).
struct PageCache {
    /// One slot per index page (24 bytes each, allocated at open).
    slots: Box<[PageSlot]>,
    /// Numbers of the resident pages, oldest first: the clock's queue.
    resident: Mutex<VecDeque<u32>>,
}

#[derive(Default)]
struct PageSlot {
    page: RwLock<Option<Arc<DecodedPage>>>,
    used: AtomicBool,
}

impl PageCache {
    fn new(pages: u32) -> PageCache {
        PageCache {
            slots: (0..pages).map(|_| PageSlot::default()).collect(),
            resident: Mutex::new(VecDeque::new()),
        }
    }
}

/// A live segment file, mapped, its header and footer checked once.
pub struct SegmentFile {
    pub path: PathBuf,
    pub entry: SegmentEntry,
    /// Reads `map`'s bytes; only handed out with the lifetime of `&self` (see `open`).
    segment: Segment<'static>,
    /// Index pages decoded from `segment`; their block refs borrow `map` like `segment` does.
    pages: PageCache,
    /// Owns the bytes `segment` reads; only their address range is read directly.
    map: Arc<dyn MappedFile>,
    /// The rollup section, parsed on first use (its crc was checked at open).
    rollups: std::sync::OnceLock<Option<Vec<ChannelRollup>>>,
    /// The clock-band summaries (`bands.rs`), read or built on first use, one builder at a time.
    bands: std::sync::OnceLock<Arc<super::bands::SegmentBands>>,
    bands_build: parking_lot::Mutex<()>,
    /// The background builder found the summary file whole or wrote it.
    bands_on_disk: std::sync::atomic::AtomicBool,
    /// Set once the file is deleted; a summary file is written only while it is not (the
    /// deleter takes the same lock), so none outlives its segment.
    removed: parking_lot::Mutex<bool>,
}

/// What [`SegmentFile::ensure_bands_file`] found or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BandsFile {
    /// Already on disk and whole (or in memory).
    Present,
    /// Built and written.
    Built,
    /// Not built: asked to stop, the segment removed, or the write failed.
    Stopped,
}

/// What a segment says about the sums of one channel (format v5 rollups).
#[derive(Clone, Copy, Debug)]
pub enum RollupOf<'a> {
    /// The segment holds no series of the channel.
    NotHeld,
    /// It holds some, and no sums of them (an older version, or too few series).
    Unknown,
    /// The sums of every series of the channel at each instant, in time order.
    Kept(&'a [RollupEntry]),
}

impl SegmentFile {
    /// Maps the file and checks its header and footer (not its blocks or index), and that every
    /// register it names has that name in `registers`, the store's register table.
    pub fn open(
        fs: &dyn FileSystem,
        dir: &Path,
        entry: SegmentEntry,
        registers: &[Arc<str>],
    ) -> Result<SegmentFile, Error> {
        let path = dir.join(segment_file_name(entry.file_id));
        let map = fs.map(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let len = map.bytes().len() as u64;
        if len != entry.len {
            return Err(Error::Corruption {
                path,
                offset: len.min(entry.len),
                detail: format!("segment is {len} bytes, the manifest says {}", entry.len),
            });
        }
        let bytes = map.bytes();
        // SAFETY: the slice is owned by `map` (an mmap or a heap buffer behind an `Arc`, whose
        // address does not change when this struct moves), which this struct holds for as long
        // as `segment`; `segment` is only returned reborrowed for the lifetime of `&self`.
        let bytes: &'static [u8] =
            unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
        let seg = Segment::open(bytes).map_err(|e| corruption(&path, e))?;
        let meta = seg.meta();
        if meta.seq != entry.seq || meta.partition != entry.partition {
            return Err(Error::Corruption {
                path,
                offset: 0,
                detail: format!(
                    "segment header says seq {} partition {}, the manifest seq {} partition {}",
                    meta.seq, meta.partition, entry.seq, entry.partition
                ),
            });
        }
        for (channel, name) in seg.registers() {
            let known = channel
                .register_number()
                .and_then(|r| registers.get(usize::from(r)));
            if known.is_none_or(|k| **k != *name) {
                return Err(Error::Corruption {
                    path,
                    offset: 0,
                    detail: format!(
                        "segment names register {:?} for {channel:?}, the manifest {}",
                        name,
                        known.map_or("has no such register number".to_string(), |k| format!(
                            "names it {k:?}"
                        ))
                    ),
                });
            }
        }
        Ok(SegmentFile {
            path,
            entry,
            pages: PageCache::new(seg.page_count()),
            segment: seg,
            map,
            rollups: std::sync::OnceLock::new(),
            bands: std::sync::OnceLock::new(),
            bands_build: parking_lot::Mutex::new(()),
            bands_on_disk: std::sync::atomic::AtomicBool::new(false),
            removed: parking_lot::Mutex::new(false),
        })
    }

    /// The clock-band summaries of this segment's consumption series (`bands.rs`): read from
    /// their file, else built from the blocks and written.
    pub fn bands(&self, fs: &dyn FileSystem) -> Result<Arc<super::bands::SegmentBands>, Error> {
        if let Some(b) = self.bands.get() {
            return Ok(b.clone());
        }
        let _one = self.bands_build.lock();
        if let Some(b) = self.bands.get() {
            return Ok(b.clone());
        }
        let built = Arc::new(super::bands::load_or_build(fs, self)?);
        Ok(self.bands.get_or_init(|| built).clone())
    }

    /// Makes sure the summary file is on disk and reads back whole, building and writing it
    /// when not (the background builder, `Store`'s module docs), without keeping it in memory:
    /// a question maps the file. One builder at a time with [`SegmentFile::bands`], so a
    /// question that arrives during the build waits for it and reads the file. Gives up when
    /// `stop` says so (asked between series) or the segment is removed.
    pub fn ensure_bands_file(
        &self,
        fs: &dyn FileSystem,
        stop: &dyn Fn() -> bool,
    ) -> Result<BandsFile, Error> {
        use std::sync::atomic::Ordering;
        let _one = self.bands_build.lock();
        if self.bands.get().is_some() || self.bands_on_disk.load(Ordering::Acquire) {
            return Ok(BandsFile::Present);
        }
        if *self.removed.lock() {
            return Ok(BandsFile::Stopped);
        }
        if super::bands::read_file(fs, self).is_some() {
            self.bands_on_disk.store(true, Ordering::Release);
            return Ok(BandsFile::Present);
        }
        let removed = || *self.removed.lock();
        let Some(built) = super::bands::SegmentBands::build(self, &|| stop() || removed())? else {
            return Ok(BandsFile::Stopped);
        };
        if super::bands::write_file(fs, self, &built) {
            self.bands_on_disk.store(true, Ordering::Release);
            Ok(BandsFile::Built)
        } else {
            Ok(BandsFile::Stopped)
        }
    }

    /// Runs `f` (writing a file derived from this segment) unless the segment was removed.
    pub fn unless_removed(&self, f: impl FnOnce()) {
        let removed = self.removed.lock();
        if !*removed {
            f();
        }
    }

    /// Deletes the segment's file and its summary file; no summary file is written after.
    pub fn remove_files(&self, fs: &dyn FileSystem) -> Result<(), Error> {
        let mut removed = self.removed.lock();
        *removed = true;
        fs.remove(&self.path).map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })?;
        let bands = super::bands::path_of(self);
        match fs.remove(&bands) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                path: bands,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// The parsed rollup section (`None`: a version without one).
    fn rollup_section(&self) -> Result<Option<&[ChannelRollup]>, Error> {
        let rollups = match self.rollups.get() {
            Some(r) => r,
            None => {
                let parsed = self
                    .segment
                    .rollups()
                    .map_err(|e| corruption(&self.path, e))?;
                self.rollups.get_or_init(|| parsed)
            }
        };
        Ok(rollups.as_deref())
    }

    /// Every channel whose sums this segment keeps, with them.
    pub fn kept_rollups(&self) -> Result<Vec<(Channel, &[RollupEntry])>, Error> {
        Ok(self
            .rollup_section()?
            .unwrap_or_default()
            .iter()
            .filter_map(|r| Some((r.channel, r.entries.as_deref()?)))
            .collect())
    }

    /// Lets the system drop this process's resident pages of the file before byte `end` (a
    /// merge that read them in key order will not come back; a reader that does reads them
    /// again from the page cache).
    pub fn release_before(&self, end: u64) {
        self.map.release(0..end.min(self.entry.len) as usize);
    }

    /// The sums of `channel` this segment keeps (format v5, `storage-format/FORMAT.md` §3.10).
    pub fn rollup(&self, channel: Channel) -> Result<RollupOf<'_>, Error> {
        let Some(rollups) = self.rollup_section()? else {
            return Ok(RollupOf::Unknown);
        };
        Ok(match rollups.iter().find(|r| r.channel == channel) {
            None => RollupOf::NotHeld,
            Some(ChannelRollup {
                entries: Some(e), ..
            }) => RollupOf::Kept(e),
            Some(_) => RollupOf::Unknown,
        })
    }

    /// The segment read in place (header and footer were checked at open).
    pub fn segment(&self) -> Segment<'_> {
        self.segment
    }

    /// Calls `f` with each block of `(meter, channel)` in time order; none when the segment does
    /// not hold the series. Reads the index through the decoded pages.
    pub fn for_each_block<'s>(
        &'s self,
        meter: &str,
        channel: Channel,
        mut f: impl FnMut(BlockRef<'s>),
    ) -> Result<(), Error> {
        let Some(i) = self
            .segment
            .page_of(meter, channel)
            .map_err(|e| corruption(&self.path, e))?
        else {
            return Ok(());
        };
        let Some(slot) = self.pages.slots.get(i as usize) else {
            return Err(self.page_past_fences(i));
        };
        if let Some(page) = slot.page.read().as_ref() {
            if !slot.used.load(Ordering::Relaxed) {
                slot.used.store(true, Ordering::Relaxed);
            }
            page.blocks(meter, channel).iter().for_each(|b| f(*b));
            return Ok(());
        }
        let page = self.decoded_page(i)?;
        page.blocks(meter, channel).iter().for_each(|b| f(*b));
        Ok(())
    }

    fn page_past_fences(&self, i: u32) -> Error {
        Error::Corruption {
            path: self.path.clone(),
            offset: 0,
            detail: format!("index page {i} past the fence table"),
        }
    }

    /// Whether `bytes` (a block's, say) lie in this segment's file.
    pub fn holds_bytes(&self, bytes: &[u8]) -> bool {
        self.map.bytes().as_ptr_range().contains(&bytes.as_ptr())
    }

    /// Whether the segment holds a series of `meter` on any channel: its group is in the page a
    /// lookup of its first possible key lands on, or starts the next one.
    pub fn holds_meter(&self, meter: &str) -> Result<bool, Error> {
        let first = self
            .segment
            .page_of(meter, Channel::CONSUMPTION)
            .map_err(|e| corruption(&self.path, e))?;
        let candidates = match first {
            Some(i) => [Some(i), i.checked_add(1)],
            None => [Some(0), None],
        };
        for i in candidates.into_iter().flatten() {
            if i >= self.segment.page_count() {
                continue;
            }
            if self.decoded_page(i)?.has_meter(meter) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether the segment holds a series `(meter, channel)`.
    pub fn holds(&self, meter: &str, channel: Channel) -> Result<bool, Error> {
        let mut any = false;
        self.for_each_block(meter, channel, |_| any = true)?;
        Ok(any)
    }

    /// Index page `i`, decoded now unless it is resident; a page that fails its checks is
    /// reported every time, never kept.
    fn decoded_page(&self, i: u32) -> Result<Arc<DecodedPage>, Error> {
        let cache = &self.pages;
        let Some(slot) = cache.slots.get(i as usize) else {
            return Err(self.page_past_fences(i));
        };
        if let Some(page) = slot.page.read().as_ref() {
            if !slot.used.load(Ordering::Relaxed) {
                slot.used.store(true, Ordering::Relaxed);
            }
            return Ok(page.clone());
        }
        let series = self
            .segment
            .page_series(i)
            .map_err(|e| corruption(&self.path, e))?;
        let page = Arc::new(DecodedPage::new(series));
        let mut resident = cache.resident.lock();
        {
            let mut held = slot.page.write();
            if let Some(other) = held.as_ref() {
                // Another reader decoded it meanwhile.
                return Ok(other.clone());
            }
            *held = Some(page.clone());
        }
        slot.used.store(false, Ordering::Relaxed);
        resident.push_back(i);
        // Evict in clock order until within bounds; each page gets at most one second chance,
        // so this ends within two passes over the queue.
        while resident.len() > DECODED_PAGES_MAX {
            let Some(oldest) = resident.pop_front() else {
                break;
            };
            let Some(victim) = cache.slots.get(oldest as usize) else {
                continue;
            };
            if victim.used.swap(false, Ordering::Relaxed) {
                resident.push_back(oldest);
            } else {
                *victim.page.write() = None;
            }
        }
        Ok(page)
    }

    /// Number of index pages held decoded (tests).
    #[cfg(test)]
    fn decoded_pages(&self) -> usize {
        self.pages.resident.lock().len()
    }
}

/// A segment written and synced but not yet named by the manifest.
pub struct Written {
    pub entry: SegmentEntry,
}

struct Open {
    path: PathBuf,
    file: Box<dyn WritableFile>,
    builder: SegmentBuilder,
    out: Vec<u8>,
    entry: SegmentEntry,
}

/// Points `range` of series `.0` of a call to [`SegmentWriter::add_many`].
type SeriesRun = (usize, std::ops::Range<usize>);

/// What a block is added from.
enum Content<'b, 'r> {
    Points(&'b [Point]),
    Encoded(&'b BlockRef<'r>),
    /// Encoded, its sums carried by its segment's rollup.
    Carried(&'b BlockRef<'r>),
}

impl Open {
    /// Names in the segment the register of `channel` when it is an index channel.
    fn name_register(&mut self, registers: &[Arc<str>], channel: Channel) -> Result<(), Error> {
        if let Some(r) = channel.register_number() {
            let Some(name) = registers.get(usize::from(r)) else {
                return Err(Error::InvalidArgument(format!(
                    "series of {channel:?}: register number {r} is not in the register table"
                )));
            };
            self.builder
                .name_register(channel, name)
                .map_err(|e| corruption(&self.path, e))?;
        }
        Ok(())
    }

    /// Appends what is buffered to the file once it reaches [`WRITE_CHUNK`].
    fn spill(&mut self) -> Result<(), Error> {
        if self.out.len() >= WRITE_CHUNK {
            self.file.write_all(&self.out).map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
            self.entry.len += self.out.len() as u64;
            self.out.clear();
        }
        Ok(())
    }

    fn add(
        &mut self,
        registers: &[Arc<str>],
        meter: &str,
        channel: Channel,
        content: Content<'_, '_>,
    ) -> Result<(), Error> {
        self.name_register(registers, channel)?;
        match content {
            Content::Points(points) => {
                self.builder
                    .add_block(meter, channel, points, &mut self.out)
            }
            Content::Encoded(block) => {
                self.builder
                    .add_encoded_block(meter, channel, block, &mut self.out)
            }
            Content::Carried(block) => {
                self.builder
                    .add_encoded_block_carried(meter, channel, block, &mut self.out)
            }
        }
        .map_err(|e| corruption(&self.path, e))?;
        self.spill()
    }

    /// Appends the blocks of `run`, encoded on another thread, as [`add`](Self::add) would have.
    fn append(&mut self, registers: &[Arc<str>], run: &BlockRun) -> Result<(), Error> {
        let mut named: Option<Channel> = None;
        for channel in run.channels() {
            if named != Some(channel) {
                self.name_register(registers, channel)?;
                named = Some(channel);
            }
        }
        self.builder
            .append_run(run, &mut self.out)
            .map_err(|e| corruption(&self.path, e))?;
        self.spill()
    }
}

/// How a [`SegmentWriter`] spreads the encoding of a segment over rayon's pool: its key space
/// cut into pieces encoded apart (in memory, as [`BlockRun`]s), which the writer appends in key
/// order. At most two waves of `2 x threads` pieces are held at once, one being encoded while
/// the other is appended. The file is byte for byte the one the sequential path writes.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    /// A flush's piece: consecutive series of one partition, cut after this many points (a
    /// series is never cut).
    pub piece_points: usize,
    /// A merge's piece: the keys of about this many bytes of its largest input, cut at the
    /// first keys of its index pages.
    pub range_bytes: u64,
}

/// What segments are written with unless told otherwise.
pub const SPREAD: Spread = Spread {
    piece_points: 1 << 16,
    range_bytes: 1 << 20,
};

/// What one piece of a spread segment became.
#[derive(Default)]
struct Piece {
    /// Runs of blocks, each of one partition, in the order they are appended.
    runs: Vec<(u32, BlockRun)>,
    /// Points an erasure removed.
    erased: u64,
    /// Per input of a merge, the end offset of the last block read.
    read_to: Vec<u64>,
}

impl Piece {
    /// The run blocks of partition `p` go to now.
    fn run(&mut self, p: u32) -> &mut BlockRun {
        if self.runs.last().is_none_or(|(q, _)| *q != p) {
            self.runs.push((p, BlockRun::new()));
        }
        let last = self.runs.len() - 1;
        &mut self.runs[last].1
    }
}

/// Where a merge puts the blocks of the series it writes: the writer itself (sequential) or a
/// piece encoded apart ([`Spread`]).
trait MergeSink {
    fn copy_blocks(
        &mut self,
        p: u32,
        meter: &str,
        channel: Channel,
        blocks: &[BlockRef<'_>],
        carried: bool,
    ) -> Result<(), Error>;
    fn add_series(&mut self, meter: &str, channel: Channel, points: &[Point]) -> Result<(), Error>;
}

impl MergeSink for SegmentWriter<'_> {
    fn copy_blocks(
        &mut self,
        p: u32,
        meter: &str,
        channel: Channel,
        blocks: &[BlockRef<'_>],
        carried: bool,
    ) -> Result<(), Error> {
        SegmentWriter::copy_blocks(self, p, meter, channel, blocks, carried)
    }

    fn add_series(&mut self, meter: &str, channel: Channel, points: &[Point]) -> Result<(), Error> {
        SegmentWriter::add_series(self, meter, channel, points)
    }
}

/// A piece of a merge being encoded, naming `dir` in its errors.
struct PieceSink<'d> {
    dir: &'d Path,
    piece: Piece,
}

impl MergeSink for PieceSink<'_> {
    fn copy_blocks(
        &mut self,
        p: u32,
        meter: &str,
        channel: Channel,
        blocks: &[BlockRef<'_>],
        carried: bool,
    ) -> Result<(), Error> {
        let run = self.piece.run(p);
        for b in blocks {
            run.add_encoded_block(meter, channel, b, carried)
                .map_err(|e| corruption(self.dir, e))?;
        }
        Ok(())
    }

    fn add_series(&mut self, meter: &str, channel: Channel, points: &[Point]) -> Result<(), Error> {
        check_resolved(meter, channel, points)?;
        for (p, part) in partition_runs(points) {
            let run = self.piece.run(p);
            for block in part.chunks(MAX_POINTS) {
                run.add_block(meter, channel, block)
                    .map_err(|e| corruption(self.dir, e))?;
            }
        }
        Ok(())
    }
}

/// Refuses a series that is not resolved (a reading overlapping the next one).
fn check_resolved(meter: &str, channel: Channel, points: &[Point]) -> Result<(), Error> {
    match points
        .windows(2)
        .find(|w| crate::source::claim(channel, &w[0]).1 > w[1].ts_utc)
    {
        Some(w) => Err(Error::InvalidArgument(format!(
            "series {meter} {channel:?} is not resolved: the reading at {} overlaps the one at {}",
            w[0].ts_utc, w[1].ts_utc
        ))),
        None => Ok(()),
    }
}

/// `points` (sorted by `ts_utc`) cut at partition boundaries: `(partition, range)` in order.
fn partition_ranges(points: &[Point]) -> Vec<(u32, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(first) = points.get(start) {
        let p = partition_of(first.ts_utc);
        let end = partition_end(p);
        let n = points[start..]
            .iter()
            .position(|x| x.ts_utc >= end)
            .map_or(points.len(), |n| start + n);
        out.push((p, start..n));
        start = n;
    }
    out
}

/// `points` (sorted by `ts_utc`) cut at partition boundaries, in order.
fn partition_runs(points: &[Point]) -> impl Iterator<Item = (u32, &[Point])> {
    partition_ranges(points)
        .into_iter()
        .map(move |(p, r)| (p, points.get(r).unwrap_or_default()))
}

/// Writes segments, one per partition touched, with series added in key order.
pub struct SegmentWriter<'a> {
    fs: &'a dyn FileSystem,
    dir: &'a Path,
    open: BTreeMap<u32, Open>,
    /// `seq` of every segment written; `None`: a new one from `next_seq` per partition.
    fixed_seq: Option<u64>,
    next_seq: &'a AtomicU64,
    next_file_id: &'a AtomicU64,
    /// The store's register table: each segment names the registers of the index channels it
    /// holds.
    registers: &'a [Arc<str>],
    /// How [`add_many`](Self::add_many) and [`merge_into`] spread the encoding over rayon's
    /// pool; `None`: on the calling thread (flush: one task per partition).
    spread: Option<Spread>,
}

impl<'a> SegmentWriter<'a> {
    pub fn new(
        fs: &'a dyn FileSystem,
        dir: &'a Path,
        fixed_seq: Option<u64>,
        next_seq: &'a AtomicU64,
        next_file_id: &'a AtomicU64,
        registers: &'a [Arc<str>],
    ) -> SegmentWriter<'a> {
        SegmentWriter {
            fs,
            dir,
            open: BTreeMap::new(),
            fixed_seq,
            next_seq,
            next_file_id,
            registers,
            spread: Some(SPREAD),
        }
    }

    /// The writer with `spread` instead of [`SPREAD`]; `None`: the sequential path.
    pub fn with_spread(mut self, spread: Option<Spread>) -> SegmentWriter<'a> {
        self.spread = spread;
        self
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Adds a resolved series (sorted by `ts_utc`, intervals not overlapping: block summaries
    /// feed energy as they are), split into partitions and blocks.
    pub fn add_series(
        &mut self,
        meter: &str,
        channel: Channel,
        points: &[Point],
    ) -> Result<(), Error> {
        check_resolved(meter, channel, points)?;
        for (p, part) in partition_runs(points) {
            for block in part.chunks(MAX_POINTS) {
                self.add_block(p, meter, channel, block)?;
            }
        }
        Ok(())
    }

    /// The open segment of partition `p`, created on first use.
    fn open_partition(&mut self, p: u32) -> Result<&mut Open, Error> {
        if !self.open.contains_key(&p) {
            let seq = match self.fixed_seq {
                Some(s) => s,
                None => self.next_seq.fetch_add(1, Ordering::SeqCst),
            };
            let file_id = self.next_file_id.fetch_add(1, Ordering::SeqCst);
            let path = self.dir.join(segment_file_name(file_id));
            let file = self.fs.create(&path).map_err(Self::io(&path))?;
            let mut out = Vec::with_capacity(WRITE_CHUNK * 2);
            let builder = SegmentBuilder::new(SegmentMeta { partition: p, seq }, &mut out);
            let entry = SegmentEntry {
                file_id,
                seq,
                partition: p,
                len: 0,
            };
            self.open.insert(
                p,
                Open {
                    path,
                    file,
                    builder,
                    out,
                    entry,
                },
            );
        }
        self.open
            .get_mut(&p)
            .ok_or_else(|| Error::InvalidArgument(format!("partition {p} is not open")))
    }

    fn add_block(
        &mut self,
        p: u32,
        meter: &str,
        channel: Channel,
        points: &[Point],
    ) -> Result<(), Error> {
        let registers = self.registers;
        let o = self.open_partition(p)?;
        o.add(registers, meter, channel, Content::Points(points))
    }

    /// Adds `blocks`, a series of a segment of partition `p` in the current format version, as
    /// they are encoded (a compaction's series that no other input holds). With `carried`,
    /// their sums are not read from them: the caller adds their segment's rollup
    /// ([`add_carried_rollup`](Self::add_carried_rollup)).
    pub fn copy_blocks(
        &mut self,
        p: u32,
        meter: &str,
        channel: Channel,
        blocks: &[BlockRef<'_>],
        carried: bool,
    ) -> Result<(), Error> {
        let registers = self.registers;
        let o = self.open_partition(p)?;
        let content = |b| {
            if carried {
                Content::Carried(b)
            } else {
                Content::Encoded(b)
            }
        };
        for b in blocks {
            o.add(registers, meter, channel, content(b))?;
        }
        Ok(())
    }

    /// Adds to the segment of partition `p` the sums of `channel` of an input every block of
    /// which (of that channel) was copied with `carried`.
    pub fn add_carried_rollup(
        &mut self,
        p: u32,
        channel: Channel,
        entries: &[RollupEntry],
    ) -> Result<(), Error> {
        let o = self.open_partition(p)?;
        o.builder
            .add_carried_rollup(channel, entries)
            .map_err(|e| corruption(&o.path, e))
    }

    /// Adds `series` (resolved, sorted by key, each as [`add_series`](Self::add_series)
    /// requires), encoding them in parallel on rayon's pool: spread ([`Spread`]) in pieces of
    /// consecutive series, or else one task per partition, each appending to its own segment in
    /// key order.
    pub fn add_many(&mut self, series: &[(String, Channel, Vec<Point>)]) -> Result<(), Error> {
        // Each series split into (partition, points) runs, and every partition opened first.
        let mut parts: BTreeMap<u32, Vec<SeriesRun>> = BTreeMap::new();
        for (i, (meter, channel, points)) in series.iter().enumerate() {
            check_resolved(meter, *channel, points)?;
            for (p, range) in partition_ranges(points) {
                parts.entry(p).or_default().push((i, range));
            }
        }
        for &p in parts.keys() {
            self.open_partition(p)?;
        }
        let registers = self.registers;
        if let Some(spread) = self.spread {
            let mut pieces: Vec<(u32, Vec<SeriesRun>)> = Vec::new();
            for (p, runs) in parts {
                let mut points = 0usize;
                for run in runs {
                    if points >= spread.piece_points || pieces.last().is_none_or(|(q, _)| *q != p) {
                        pieces.push((p, Vec::new()));
                        points = 0;
                    }
                    points += run.1.len();
                    if let Some((_, last)) = pieces.last_mut() {
                        last.push(run);
                    }
                }
            }
            let dir = self.dir;
            let encode = |k: usize| -> Result<Piece, Error> {
                let mut piece = Piece::default();
                let Some((p, runs)) = pieces.get(k) else {
                    return Ok(piece);
                };
                let run = piece.run(*p);
                for (i, range) in runs {
                    let Some((meter, channel, points)) = series.get(*i) else {
                        continue;
                    };
                    let points = points.get(range.clone()).unwrap_or_default();
                    for block in points.chunks(MAX_POINTS) {
                        run.add_block(meter, *channel, block)
                            .map_err(|e| corruption(dir, e))?;
                    }
                }
                Ok(piece)
            };
            return self
                .spread_over_pool(pieces.len(), encode, |_| {})
                .map(|_| ());
        }
        let mut work: Vec<(&mut Open, Vec<SeriesRun>)> = self
            .open
            .iter_mut()
            .filter_map(|(p, o)| parts.remove(p).map(|runs| (o, runs)))
            .collect();
        use rayon::prelude::*;
        work.par_iter_mut().try_for_each(|(o, runs)| {
            for (i, range) in runs.iter() {
                let Some((meter, channel, points)) = series.get(*i) else {
                    continue;
                };
                let points = points.get(range.clone()).unwrap_or_default();
                for block in points.chunks(MAX_POINTS) {
                    o.add(registers, meter, *channel, Content::Points(block))?;
                }
            }
            Ok(())
        })
    }

    /// Encodes pieces `0..n` with `encode` on rayon's pool, a wave of `2 x threads` at a time,
    /// and appends them in order while the next wave is encoded; `appended` is told, after each
    /// wave, the furthest offset of each input read so far. Returns the points erased.
    fn spread_over_pool(
        &mut self,
        n: usize,
        encode: impl Fn(usize) -> Result<Piece, Error> + Sync,
        mut appended: impl FnMut(&[u64]),
    ) -> Result<u64, Error> {
        use rayon::prelude::*;
        let wave = 2 * rayon::current_num_threads().max(1);
        let mut erased = 0u64;
        let mut read_to: Vec<u64> = Vec::new();
        let mut encoded: Vec<Result<Piece, Error>> = Vec::new();
        let mut next = 0;
        loop {
            let to = (next + wave).min(n);
            let last = std::mem::take(&mut encoded);
            let (done, more) = rayon::join(
                || self.append_pieces(last),
                || (next..to).into_par_iter().map(&encode).collect::<Vec<_>>(),
            );
            let (e, reached) = done?;
            erased += e;
            if read_to.len() < reached.len() {
                read_to.resize(reached.len(), 0);
            }
            for (r, x) in read_to.iter_mut().zip(reached) {
                *r = (*r).max(x);
            }
            appended(&read_to);
            if next >= n {
                return Ok(erased);
            }
            encoded = more;
            next = to;
        }
    }

    /// Appends encoded pieces in order; returns the points they erased and the furthest offset
    /// of each input they read.
    fn append_pieces(
        &mut self,
        pieces: Vec<Result<Piece, Error>>,
    ) -> Result<(u64, Vec<u64>), Error> {
        let registers = self.registers;
        let mut erased = 0u64;
        let mut read_to: Vec<u64> = Vec::new();
        for piece in pieces {
            let piece = piece?;
            for (p, run) in &piece.runs {
                if !run.is_empty() {
                    self.open_partition(*p)?.append(registers, run)?;
                }
            }
            erased += piece.erased;
            if read_to.len() < piece.read_to.len() {
                read_to.resize(piece.read_to.len(), 0);
            }
            for (r, x) in read_to.iter_mut().zip(&piece.read_to) {
                *r = (*r).max(*x);
            }
        }
        Ok((erased, read_to))
    }

    /// Finishes and syncs every segment; the caller names them in the manifest.
    pub fn finish(self) -> Result<Vec<Written>, Error> {
        let mut done = Vec::with_capacity(self.open.len());
        for (_, mut o) in self.open {
            o.builder
                .finish(&mut o.out)
                .map_err(|e| corruption(&o.path, e))?;
            o.file.write_all(&o.out).map_err(Self::io(&o.path))?;
            o.entry.len += o.out.len() as u64;
            o.file.sync().map_err(Self::io(&o.path))?;
            done.push(Written { entry: o.entry });
        }
        Ok(done)
    }
}

/// Bytes of an input a merge reads past before it lets their resident pages go.
const RELEASE_EVERY: u64 = 32 << 20;

/// Per input of a merge, the channels whose sums it carries, with them.
type Carried<'a> = Vec<Vec<(Channel, &'a [RollupEntry])>>;

/// For each of `inputs` (one partition, seq order), the channels whose sums a merge of them
/// carries from its rollup instead of decoding its blocks: those it keeps (a current version)
/// and every series of which is copied whole, i.e. held by no other input, with nothing
/// erased (an erasure rewrites its meter's series, whose points the rollup counts).
fn carried_rollups<'a>(
    inputs: &'a [Arc<SegmentFile>],
    erase: Option<&EraseSpec>,
) -> Result<Carried<'a>, Error> {
    let mut carried = Vec::with_capacity(inputs.len());
    for f in inputs {
        let current = f.segment().version() == storage_format::segment::FORMAT_VERSION;
        carried.push(if current && erase.is_none() {
            f.kept_rollups()?
        } else {
            Vec::new()
        });
    }
    if carried.iter().all(Vec::is_empty) || inputs.len() < 2 {
        return Ok(carried);
    }
    // A pass over the keys: a series two inputs hold is merged, so neither carries its channel.
    let segs: Vec<_> = inputs.iter().map(|f| f.segment()).collect();
    let mut iters: Vec<_> = segs.iter().map(|s| s.series().peekable()).collect();
    while carried.iter().any(|c| !c.is_empty()) {
        let mut min: Option<(&[u8], Channel)> = None;
        for (f, it) in inputs.iter().zip(iters.iter_mut()) {
            match it.peek() {
                Some(Ok(s)) => {
                    let key = (s.meter.as_bytes(), s.channel);
                    if min.is_none_or(|m| key < m) {
                        min = Some(key);
                    }
                }
                Some(Err(e)) => return Err(corruption(&f.path, e.clone())),
                None => {}
            }
        }
        let Some((meter, channel)) = min else {
            break;
        };
        let meter = meter.to_vec();
        let mut holders = Vec::new();
        for (i, it) in iters.iter_mut().enumerate() {
            if matches!(it.peek(), Some(Ok(s)) if s.meter.as_bytes() == meter && s.channel == channel)
            {
                holders.push(i);
                it.next();
            }
        }
        if holders.len() > 1 {
            for i in holders {
                carried[i].retain(|(c, _)| *c != channel);
            }
        }
    }
    Ok(carried)
}

/// Merges `inputs` (all of one partition, ordered by seq) series by series, the newest covering
/// reading winning ([`crate::source`] module docs), dropping
/// what `erase` covers, into `writer`. Returns the points erased.
///
/// Spread ([`Spread`], the writer's default), the key space is cut at first keys of the
/// largest input's index pages and each range merged on rayon's pool into memory, appended in
/// key order: the same bytes as the sequential path.
///
/// Memory: one series at a time per range, decoded; at most two waves of ranges encoded in
/// memory; the blocks written go to the file in chunks; the inputs' pages read are let go every
/// [`RELEASE_EVERY`] bytes (spread: after each wave), so a merge's resident memory does not
/// grow with its inputs. A series only one input holds is copied as it is; its sums come from
/// that input's rollup when [`carried_rollups`] allows, else from decoding it.
pub fn merge_into(
    inputs: &[Arc<SegmentFile>],
    erase: Option<&EraseSpec>,
    writer: &mut SegmentWriter<'_>,
) -> Result<u64, Error> {
    let carried = carried_rollups(inputs, erase)?;
    let erased = match writer.spread {
        None => merge_range(inputs, &carried, erase, (None, None), true, writer)?.0,
        Some(spread) => {
            let splits = split_keys(inputs, spread.range_bytes)?;
            let dir = writer.dir;
            let encode = |k: usize| -> Result<Piece, Error> {
                let lo = k.checked_sub(1).and_then(|j| splits.get(j));
                let hi = splits.get(k);
                let mut sink = PieceSink {
                    dir,
                    piece: Piece::default(),
                };
                let (erased, read_to) =
                    merge_range(inputs, &carried, erase, (lo, hi), false, &mut sink)?;
                sink.piece.erased = erased;
                sink.piece.read_to = read_to;
                Ok(sink.piece)
            };
            let mut released = vec![0u64; inputs.len()];
            let erased = writer.spread_over_pool(splits.len() + 1, encode, |read_to| {
                for ((f, done), &to) in inputs.iter().zip(released.iter_mut()).zip(read_to) {
                    if to >= *done + RELEASE_EVERY {
                        f.release_before(to);
                        *done = to;
                    }
                }
            })?;
            for f in inputs {
                f.release_before(f.entry.len);
            }
            erased
        }
    };
    for (f, channels) in inputs.iter().zip(&carried) {
        for &(channel, entries) in channels {
            writer.add_carried_rollup(f.entry.partition, channel, entries)?;
        }
    }
    Ok(erased)
}

/// A series key: meter, channel.
type Key = (String, Channel);

/// Where a spread merge cuts the key space: the first key of every page of its largest input
/// that starts about `range_bytes` of blocks (less for a small input) after the last cut, in
/// key order.
fn split_keys(inputs: &[Arc<SegmentFile>], range_bytes: u64) -> Result<Vec<Key>, Error> {
    let Some(largest) = inputs.iter().max_by_key(|f| f.entry.len) else {
        return Ok(Vec::new());
    };
    // At least about four ranges a thread, so that a small merge keeps every core busy too.
    let threads = rayon::current_num_threads().max(1) as u64;
    let range_bytes = range_bytes.min(largest.entry.len / (4 * threads)).max(1);
    let seg = largest.segment();
    let pages = u64::from(seg.page_count());
    let step = (pages * range_bytes)
        .checked_div(largest.entry.len)
        .unwrap_or(pages)
        .max(1);
    let mut keys = Vec::new();
    for i in (step..pages).step_by(step as usize) {
        let page = seg
            .page_series(i as u32)
            .map_err(|e| corruption(&largest.path, e))?;
        if let Some(first) = page.first() {
            keys.push((first.meter.to_owned(), first.channel));
        }
    }
    Ok(keys)
}

/// Moves `to` past the last block of `series`.
fn reach(to: &mut u64, series: &SeriesRef<'_>) {
    if let Some(b) = series.blocks.last() {
        *to = (*to).max(b.offset + b.encoded().len() as u64);
    }
}

/// The series of a segment whose keys are in `[lo, hi)` (`None`: unbounded), in key order,
/// read page by page from the page that would hold `lo`.
struct KeyRange<'s> {
    seg: Segment<'s>,
    next_page: u32,
    page: std::vec::IntoIter<SeriesRef<'s>>,
    lo: Option<&'s Key>,
    hi: Option<&'s Key>,
    failed: Option<storage_format::Error>,
}

impl<'s> KeyRange<'s> {
    fn new(seg: Segment<'s>, lo: Option<&'s Key>, hi: Option<&'s Key>) -> KeyRange<'s> {
        let (next_page, failed) = match lo {
            None => (0, None),
            Some((m, c)) => match seg.page_of(m, *c) {
                Ok(p) => (p.unwrap_or(0), None),
                Err(e) => (0, Some(e)),
            },
        };
        KeyRange {
            seg,
            next_page,
            page: Vec::new().into_iter(),
            lo,
            hi,
            failed,
        }
    }

    fn stop(&mut self) {
        self.next_page = u32::MAX;
        self.page = Vec::new().into_iter();
    }
}

impl<'s> Iterator for KeyRange<'s> {
    type Item = Result<SeriesRef<'s>, storage_format::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.failed.take() {
            self.stop();
            return Some(Err(e));
        }
        loop {
            if let Some(s) = self.page.next() {
                let key = (s.meter.as_bytes(), s.channel);
                if self.lo.is_some_and(|(m, c)| key < (m.as_bytes(), *c)) {
                    continue;
                }
                if self.hi.is_some_and(|(m, c)| key >= (m.as_bytes(), *c)) {
                    self.stop();
                    return None;
                }
                return Some(Ok(s));
            }
            if self.next_page >= self.seg.page_count() {
                return None;
            }
            match self.seg.page_series(self.next_page) {
                Ok(series) => {
                    self.page = series.into_iter();
                    self.next_page += 1;
                }
                Err(e) => {
                    self.stop();
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Merges the series of `inputs` whose keys are in `keys` (`[lo, hi)`, `None`: unbounded) into
/// `sink` ([`merge_into`]); with `release`, lets the inputs' pages read go every
/// [`RELEASE_EVERY`] bytes. Returns the points erased and, per input, the end offset of the last
/// block read.
fn merge_range<S: MergeSink>(
    inputs: &[Arc<SegmentFile>],
    carried: &Carried<'_>,
    erase: Option<&EraseSpec>,
    keys: (Option<&Key>, Option<&Key>),
    release: bool,
    sink: &mut S,
) -> Result<(u64, Vec<u64>), Error> {
    let mut iters: Vec<_> = inputs
        .iter()
        .map(|f| (f, KeyRange::new(f.segment(), keys.0, keys.1).peekable()))
        .collect();
    let mut released = vec![0u64; inputs.len()];
    let mut read_to = vec![0u64; inputs.len()];
    let mut scratch = DecodedBlock::default();
    let mut erased = 0u64;
    loop {
        // Every input's blocks before its next series are read.
        let releasing = if release { iters.len() } else { 0 };
        for ((f, it), done) in iters.iter_mut().zip(released.iter_mut()).take(releasing) {
            let next = match it.peek() {
                Some(Ok(s)) => s.blocks.first().map_or(*done, |b| b.offset),
                _ => f.entry.len,
            };
            if next >= *done + RELEASE_EVERY || (next == f.entry.len && next > *done) {
                f.release_before(next);
                *done = next;
            }
        }
        // The smallest key among the heads.
        let mut min: Option<(Vec<u8>, Channel)> = None;
        for (f, it) in iters.iter_mut() {
            match it.peek() {
                Some(Ok(s)) => {
                    let key = (s.meter.as_bytes(), s.channel);
                    if min.as_ref().is_none_or(|m| key < (m.0.as_slice(), m.1)) {
                        min = Some((key.0.to_vec(), key.1));
                    }
                }
                Some(Err(e)) => return Err(corruption(&f.path, e.clone())),
                None => {}
            }
        }
        let Some((meter_bytes, channel)) = min else {
            break;
        };
        // A series only one input holds is already resolved: its blocks are copied as they are
        // (unless an erasure may touch it or its file is of an older version).
        let mut holders = 0;
        for (_, it) in iters.iter_mut() {
            if matches!(it.peek(), Some(Ok(s)) if s.meter.as_bytes() == meter_bytes && s.channel == channel)
            {
                holders += 1;
            }
        }
        if holders == 1 {
            let erased_here = erase.is_some_and(|spec| spec.meter.as_bytes() == meter_bytes);
            for (i, (f, it)) in iters.iter_mut().enumerate() {
                let copy = matches!(it.peek(), Some(Ok(s)) if s.meter.as_bytes() == meter_bytes
                    && s.channel == channel
                    && !erased_here
                    && s.blocks.iter().all(BlockRef::is_current));
                if !copy {
                    continue;
                }
                if let Some(Ok(series)) = it.next() {
                    reach(&mut read_to[i], &series);
                    for b in &series.blocks {
                        b.check_crc().map_err(|e| corruption(&f.path, e))?;
                    }
                    let sums_carried = carried[i].iter().any(|(c, _)| *c == channel);
                    sink.copy_blocks(
                        f.entry.partition,
                        series.meter,
                        channel,
                        &series.blocks,
                        sums_carried,
                    )?;
                }
            }
            if !iters.iter_mut().any(|(_, it)| matches!(it.peek(), Some(Ok(s)) if s.meter.as_bytes() == meter_bytes && s.channel == channel)) {
                continue;
            }
        }
        let mut merged: Vec<(u64, Point)> = Vec::new();
        let mut meter = String::new();
        for (i, (f, it)) in iters.iter_mut().enumerate() {
            let take = matches!(it.peek(), Some(Ok(s)) if s.meter.as_bytes() == meter_bytes && s.channel == channel);
            if !take {
                continue;
            }
            let Some(Ok(series)) = it.next() else {
                continue;
            };
            reach(&mut read_to[i], &series);
            meter = series.meter.to_string();
            for b in &series.blocks {
                b.decode_into(&mut scratch)
                    .map_err(|e| corruption(&f.path, e))?;
                merged.extend(scratch.points().map(|p| (f.entry.seq, p)));
            }
        }
        let mut ranked: Vec<((u64, u64), Point)> =
            merged.into_iter().map(|(seq, p)| ((seq, 0), p)).collect();
        ranked.sort_by_key(|(rank, p)| (p.ts_utc, *rank));
        let mut points = crate::source::resolve_newest_covering(channel, ranked);
        if let Some(spec) = erase {
            let before = points.len();
            points.retain(|p| !spec.covers(&meter, channel, p.ts_utc));
            erased += (before - points.len()) as u64;
        }
        if !points.is_empty() {
            sink.add_series(&meter, channel, &points)?;
        }
    }
    Ok((erased, read_to))
}

#[cfg(test)]
mod tests {
    use super::super::fs::testing::SimFs;
    use super::*;
    use crate::Quality;
    use proptest::prelude::*;
    use storage_format::segment::FOOTER_LEN;

    /// One segment of January 2024 (partition 648) holding `meters` meters: meter `i` has a
    /// consumption series of one block with value `i`, odd meters also a production series.
    fn segment_of(fs: &SimFs, meters: u32) -> SegmentFile {
        let dir = Path::new("/seg");
        let (seq, file_id) = (AtomicU64::new(1), AtomicU64::new(1));
        let mut writer = SegmentWriter::new(fs, dir, None, &seq, &file_id, &[]);
        let ts = 1_704_067_200; // 2024-01-01T00:00:00Z
        for i in 0..meters {
            let meter = format!("{:014}", 2 * i);
            let point = |value: i32| Point {
                ts_utc: ts + i64::from(i % 1000) * 1800,
                value,
                step_min: 30,
                quality: Quality::Measured,
            };
            writer
                .add_series(&meter, Channel::CONSUMPTION, &[point(i as i32)])
                .unwrap();
            if i % 2 == 1 {
                writer
                    .add_series(&meter, Channel::PRODUCTION, &[point(-1)])
                    .unwrap();
            }
        }
        let written = writer.finish().unwrap();
        assert_eq!(written.len(), 1);
        SegmentFile::open(fs, dir, written[0].entry, &[]).unwrap()
    }

    fn blocks_via_pages<'s>(
        seg: &'s SegmentFile,
        meter: &str,
        channel: Channel,
    ) -> Vec<BlockRef<'s>> {
        let mut out = Vec::new();
        seg.for_each_block(meter, channel, |b| out.push(b)).unwrap();
        out
    }

    /// A spread small enough that a test's few series make many pieces and ranges.
    const TINY: Spread = Spread {
        piece_points: 40,
        range_bytes: 1,
    };

    /// The registers index channel 0 names in the spread tests.
    fn registers() -> Vec<Arc<str>> {
        vec![Arc::from("BASE")]
    }

    /// Every file of `written` in `fs`, read back whole, with its manifest entry.
    fn files(fs: &SimFs, dir: &Path, written: &[Written]) -> Vec<(u64, u32, Vec<u8>)> {
        written
            .iter()
            .map(|w| {
                let bytes = fs
                    .read(&dir.join(segment_file_name(w.entry.file_id)))
                    .unwrap();
                assert_eq!(bytes.len() as u64, w.entry.len);
                (w.entry.seq, w.entry.partition, bytes)
            })
            .collect()
    }

    /// `series` written by one writer into a fresh directory of `fs`, spread or not.
    fn flushed(
        fs: &SimFs,
        dir: &Path,
        series: &[(String, Channel, Vec<Point>)],
        spread: Option<Spread>,
        batches: usize,
    ) -> Vec<Written> {
        let (seq, file_id) = (AtomicU64::new(1), AtomicU64::new(1));
        let registers = registers();
        let mut writer =
            SegmentWriter::new(fs, dir, None, &seq, &file_id, &registers).with_spread(spread);
        let per = series.len().div_ceil(batches.max(1)).max(1);
        for chunk in series.chunks(per) {
            writer.add_many(chunk).unwrap();
        }
        writer.finish().unwrap()
    }

    /// One generated series: a meter, a channel and resolved points from `ts0` on, with gaps
    /// (`skips`), steps of 10, 30 or 60 minutes and negative values.
    fn series_strategy(ts0: i64) -> impl Strategy<Value = (u32, u8, Vec<Point>)> {
        (
            0u32..400,
            prop::sample::select(vec![0u8, 0, 1, 2, 16]),
            prop::sample::select(vec![10u16, 30, 60]),
            prop::collection::vec((0i64..4, -5_000i32..20_000), 1..100),
        )
            .prop_map(move |(meter, code, step, raw)| {
                let mut ts = ts0 + i64::from(meter % 7) * 3_600;
                let mut points = Vec::with_capacity(raw.len());
                let mut index = 1_000i32;
                for (skip, v) in raw {
                    ts += 60 * i64::from(step) * (1 + skip * i64::from(skip == 3));
                    index = index.wrapping_add(v.abs() / 10);
                    points.push(Point {
                        ts_utc: ts,
                        value: if code == 16 { index } else { v },
                        step_min: step,
                        quality: if v % 11 == 0 {
                            Quality::Estimated
                        } else {
                            Quality::Measured
                        },
                    });
                }
                (meter, code, points)
            })
    }

    /// Generated series in key order, one per key (later ones of a key dropped).
    fn keyed(raw: Vec<(u32, u8, Vec<Point>)>) -> Vec<(String, Channel, Vec<Point>)> {
        let mut by_key: BTreeMap<(String, u8), Vec<Point>> = BTreeMap::new();
        for (meter, code, points) in raw {
            by_key
                .entry((format!("{:014}", 3 * meter), code))
                .or_insert(points);
        }
        by_key
            .into_iter()
            .map(|((meter, code), points)| {
                let channel = if code >= Channel::INDEX_FIRST_CODE {
                    Channel::index(code - Channel::INDEX_FIRST_CODE).unwrap()
                } else {
                    Channel::from_u8(code, storage_format::segment::FORMAT_VERSION).unwrap()
                };
                (meter, channel, points)
            })
            .collect()
    }

    /// 2024-03-29T00:00:00Z: the Paris month ends on the 31st at 22:00Z, two days after the
    /// clocks go forward, so generated series cross a DST day and a partition boundary.
    const LATE_MARCH_2024: i64 = 1_711_670_400;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn a_spread_flush_writes_the_bytes_of_the_sequential_one(
            raw in prop::collection::vec(series_strategy(LATE_MARCH_2024), 1..400),
            batches in 1usize..4,
        ) {
            let series = keyed(raw);
            let dir = Path::new("/flush");
            let (a, b) = (SimFs::new(), SimFs::new());
            let sequential = flushed(&a, dir, &series, None, batches);
            let spread = flushed(&b, dir, &series, Some(TINY), batches);
            prop_assert!(!sequential.is_empty());
            prop_assert_eq!(files(&a, dir, &sequential), files(&b, dir, &spread));
            let default = flushed(&SimFs::new(), dir, &series, Some(SPREAD), batches);
            prop_assert_eq!(files(&a, dir, &sequential).len(), default.len());
        }

        #[test]
        fn a_spread_merge_writes_the_bytes_of_the_sequential_one_with_late_corrections_and_erasures(
            layers in prop::collection::vec(
                prop::collection::vec(series_strategy(LATE_MARCH_2024 - 6 * 86_400), 1..300),
                1..4,
            ),
            erase_meter in prop::option::of(0u32..400),
            erase_range in prop::option::of((0i64..200, 1i64..200)),
        ) {
            // Each layer is a flush of its own (seq 1, 2, ...): later layers hold late
            // corrections (same instants, other values or steps) of the earlier ones.
            let fs = SimFs::new();
            let dir = Path::new("/merge");
            let registers = registers();
            let (seq, file_id) = (AtomicU64::new(1), AtomicU64::new(1));
            let mut inputs: Vec<Arc<SegmentFile>> = Vec::new();
            for layer in layers {
                let series = keyed(layer);
                let mut writer = SegmentWriter::new(&fs, dir, None, &seq, &file_id, &registers)
                    .with_spread(None);
                writer.add_many(&series).unwrap();
                for w in writer.finish().unwrap() {
                    inputs.push(Arc::new(SegmentFile::open(&fs, dir, w.entry, &registers).unwrap()));
                }
            }
            let erase = erase_meter.map(|m| EraseSpec {
                meter: format!("{:014}", 3 * m),
                range_utc: erase_range.map(|(from, len)| {
                    let from = LATE_MARCH_2024 - 6 * 86_400 + from * 1_800;
                    (from, from + len * 1_800)
                }),
            });
            let mut partitions: Vec<u32> = inputs.iter().map(|f| f.entry.partition).collect();
            partitions.sort_unstable();
            partitions.dedup();
            for p in partitions {
                let group: Vec<Arc<SegmentFile>> =
                    inputs.iter().filter(|f| f.entry.partition == p).cloned().collect();
                let top = group.iter().map(|f| f.entry.seq).max().unwrap_or(0);
                let mut out = Vec::new();
                for spread in [None, Some(TINY), Some(SPREAD)] {
                    let mut writer =
                        SegmentWriter::new(&fs, dir, Some(top), &seq, &file_id, &registers)
                            .with_spread(spread);
                    let erased = merge_into(&group, erase.as_ref(), &mut writer).unwrap();
                    let written = writer.finish().unwrap();
                    out.push((erased, files(&fs, dir, &written)));
                }
                prop_assert_eq!(&out[0], &out[1]);
                prop_assert_eq!(&out[0], &out[2]);
                for (_, _, bytes) in &out[0].1 {
                    storage_format::segment::Segment::open(bytes).unwrap().verify().unwrap();
                }
            }
        }
    }

    #[test]
    fn series_keys_order_like_meter_bytes_then_channel() {
        let ids = [
            "",
            "0",
            "00",
            "0\u{0}",
            "0\u{0}\u{0}",
            "01",
            "1",
            "09111642617347",
            "09111642617348",
            "0911164261734700",
            "09111642617347000",
            "0911164261734700a",
            "0911164261734701",
            "z",
            "zzzzzzzzzzzzzzzzzzzz",
        ];
        let key = |id: &'static str, channel: u8| SeriesKey {
            words: key_words(id.as_bytes()),
            meter: id,
            channel,
            end: 0,
        };
        for a in ids {
            for b in ids {
                for (ca, cb) in [(0, 0), (0, 2), (2, 1)] {
                    let expected = (a.as_bytes(), ca).cmp(&(b.as_bytes(), cb));
                    let found = key(a, ca).cmp_to(key_words(b.as_bytes()), b, cb);
                    assert_eq!(found, expected, "{a:?}/{ca} vs {b:?}/{cb}");
                }
            }
        }
    }

    #[test]
    fn lookups_through_decoded_pages_match_the_segment_index() {
        let fs = SimFs::new();
        let seg = segment_of(&fs, 600);
        assert!(seg.segment().page_count() > 3);
        // Present keys, absent channels, and absent meters before, between and after the keys
        // (meter ids are even numbers).
        for i in 0..1202u32 {
            let meter = format!("{:014}", i);
            for channel in Channel::ALL {
                let direct = seg.segment().blocks(&meter, channel).unwrap();
                let cached = blocks_via_pages(&seg, &meter, channel);
                assert_eq!(
                    cached
                        .iter()
                        .map(|b| (b.offset, b.summary))
                        .collect::<Vec<_>>(),
                    direct
                        .iter()
                        .map(|b| (b.offset, b.summary))
                        .collect::<Vec<_>>(),
                    "{meter} {channel:?}"
                );
                let expected = i % 2 == 0
                    && i < 1200
                    && (channel == Channel::CONSUMPTION
                        || (channel == Channel::PRODUCTION && (i / 2) % 2 == 1));
                assert_eq!(seg.holds(&meter, channel).unwrap(), expected);
            }
        }
        let b = blocks_via_pages(&seg, "00000000000014", Channel::CONSUMPTION);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].summary.sum_value, 7);
    }

    #[test]
    fn a_segment_keeps_at_most_its_budget_of_decoded_pages() {
        let fs = SimFs::new();
        let seg = segment_of(&fs, 40_000);
        let pages = seg.segment().page_count() as usize;
        assert!(pages > DECODED_PAGES_MAX * 3 / 2, "{pages} pages");
        for round in 0..2 {
            for i in (0..40_000u32).step_by(7) {
                let meter = format!("{:014}", 2 * i);
                let b = blocks_via_pages(&seg, &meter, Channel::CONSUMPTION);
                assert_eq!(b.len(), 1, "round {round}, meter {meter}");
                assert_eq!(b[0].summary.sum_value, i64::from(i));
                assert!(seg.decoded_pages() <= DECODED_PAGES_MAX);
            }
        }
        assert_eq!(seg.decoded_pages(), DECODED_PAGES_MAX);
        // A page used again keeps its place while others are evicted.
        let hot = format!("{:014}", 0);
        for i in 0..3 * DECODED_PAGES_MAX as u32 {
            blocks_via_pages(&seg, &hot, Channel::CONSUMPTION);
            let cold = format!("{:014}", 2 * (i * 60 % 20_000));
            assert_eq!(blocks_via_pages(&seg, &cold, Channel::CONSUMPTION).len(), 1);
        }
        assert!(seg.pages.slots[0].page.read().is_some());
    }

    #[test]
    fn concurrent_lookups_agree_while_pages_are_evicted() {
        let fs = SimFs::new();
        let seg = segment_of(&fs, 20_000);
        std::thread::scope(|s| {
            for t in 0..3u32 {
                let seg = &seg;
                s.spawn(move || {
                    for k in 0..2_000u32 {
                        let i = (k * (61 + 2 * t) + 977 * t) % 20_000;
                        let b =
                            blocks_via_pages(seg, &format!("{:014}", 2 * i), Channel::CONSUMPTION);
                        assert_eq!(b.len(), 1);
                        assert_eq!(b[0].summary.sum_value, i64::from(i));
                    }
                });
            }
        });
        assert!(seg.decoded_pages() <= DECODED_PAGES_MAX);
    }

    #[test]
    fn a_corrupt_index_page_is_reported_on_every_lookup_and_never_kept() {
        let fs = SimFs::new();
        let seg = segment_of(&fs, 600);
        let path = seg.path.clone();
        let entry = seg.entry;
        drop(seg);
        // Flip a byte inside the first index page (after its crc): found from the fence table.
        let bytes = fs.files().into_iter().find(|(p, _)| *p == path).unwrap().1;
        let first_page = Segment::open(&bytes)
            .unwrap()
            .page_of("0", Channel::CONSUMPTION);
        assert!(matches!(first_page, Ok(None)));
        let index_offset = {
            let footer = &bytes[bytes.len() - FOOTER_LEN..];
            u64::from_le_bytes(footer[..8].try_into().unwrap()) as usize
        };
        fs.modify(&path, |b| b[index_offset + 20] ^= 0x40).unwrap();
        let seg = SegmentFile::open(&fs, Path::new("/seg"), entry, &[]).unwrap();
        for _ in 0..2 {
            let err = seg
                .for_each_block("00000000000000", Channel::CONSUMPTION, |_| {})
                .unwrap_err();
            assert!(err.corruption_at().is_some(), "{err}");
            assert_eq!(seg.decoded_pages(), 0);
        }
    }

    #[test]
    fn partitions_are_paris_calendar_months() {
        assert_eq!(partition_of(0), 0);
        assert_eq!(partition_start(0), -3_600);
        // Paris March 2024 starts 2024-02-29T23:00:00Z (CET) and April 2024-03-31T22:00:00Z (CEST).
        let march = (2024 - 1970) * 12 + 2;
        assert_eq!(partition_of(1_709_247_599), march - 1);
        assert_eq!(partition_of(1_709_247_600), march);
        assert_eq!(partition_start(march), 1_709_247_600);
        assert_eq!(partition_end(march - 1), 1_709_247_600);
        assert_eq!(partition_end(march), 1_711_922_400);
        assert_eq!(partition_of(1_711_922_399), march);
        assert_eq!(partition_of(1_711_922_400), march + 1);
        // 9999-12-31T23:59:59Z is already January 10000 in Paris.
        assert_eq!(partition_of(253_402_300_799), (10_000 - 1970) * 12);
        for p in [0, 1, 11, 12, 649, 1000, 96_347] {
            assert_eq!(partition_of(partition_start(p)), p);
            assert_eq!(partition_of(partition_end(p) - 1), p);
        }
    }
}

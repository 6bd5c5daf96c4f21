//! The durable store: write-ahead log, memtable, immutable segments, compaction, erasure.
//!
//! The life of a point, one module per stage:
//! - [`Store::ingest`] encodes a batch as one [`wal`] record, appends it with group commit
//!   (concurrent writers share one fsync) and, once durable, inserts it into the memtable
//!   (`memtable.rs`);
//! - [`Store::flush`] starts a new log generation, writes the memtable as one segment per Europe/Paris month
//!   touched (`segments.rs`), names them in the [`manifest`] (atomic replace), then deletes the
//!   obsolete logs. A memtable that fills during [`Store::ingest`] is flushed the same way on a
//!   background thread: the writer starts a new log generation, the full memtable becomes the
//!   version's *immutable* memtable (read with the new one, which takes the writes) and the
//!   writer goes on; at most one is in flight, so a writer that fills the next memtable first
//!   waits for it (backpressure);
//! - [`Store::compact`] merges the segments of a month (newest wins); [`Store::erase`] commits
//!   its intent in the manifest, rewrites every file that held the erased points, then drops
//!   the intent; [`Store::apply_retention`] drops whole months (`compaction.rs`);
//! - [`Store::snapshot`] returns an immutable [`Snapshot`] (`snapshot.rs`) that queries read.
//!
//! Every file access goes through [`fs::FileSystem`]; tests inject [`fs::testing::SimFs`].
//!
//! Invariants:
//! - acknowledged ⇒ in a synced log record or in a segment named by a synced manifest;
//! - newest wins by sequence: batch sequence numbers in the memtable, segment `seq` among
//!   segments; the memtable is newer than the immutable memtable, both newer than every segment;
//! - the logs that hold an immutable memtable's batches are deleted only after the manifest
//!   naming its segments is synced (its generation is below the new memtable's log);
//! - after an fsync failure, a failed flush or compaction, or an erasure that failed after its
//!   intent was committed, the store refuses every write ([`Error::Closed`]) until it is
//!   reopened, and keeps answering reads;
//! - files not named by the manifest (nor logs from its generation on) are garbage, deleted at
//!   open and after each erasure;
//! - one open store per data directory: `LOCK` is held with `flock` while a store is open;
//! - an erasure whose intent is in the manifest is complete before [`Store::open`] returns;
//! - the register table (register name → number, index channel `16 + number`) is in the
//!   manifest and only grows: [`Store::index_channel`] commits a new register before returning,
//!   so no log record or segment holds an index channel the manifest does not name, and every
//!   segment's register names agree with the manifest's (checked at open: corruption otherwise).
//!
//! Channels: the curves (consumption, production: intervals), `max_power`, daily energy (one
//! point per Europe/Paris day at its midnight, Wh) and index channels (cumulative Wh of one
//! register); every channel but the curves claims only its instant in the newest-wins rule
//! (`crate::source::claim`), and erasure removes every series of a meter but `max_power`.
//!
//! Files of a data directory: `MANIFEST` (see [`manifest`]), `wal-{generation:020}.log` (see
//! [`wal`]), `seg-{file_id:020}.seg` (segments, `storage-format`), `LOCK`; `MANIFEST.tmp` only
//! while a manifest is replaced.

pub mod bands;
mod compaction;
pub mod fs;
pub mod manifest;
mod memtable;
mod resolve;
mod segments;
mod snapshot;
mod summarizer;
pub mod wal;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{Channel, Point};

pub use snapshot::Snapshot;

pub use storage_format::STEP_MIN_MAX;

use fs::{FileSystem, RealFs};
use manifest::Manifest;
use memtable::{EraseSpec, Memtable};
use segments::{SegmentFile, SegmentWriter};
use snapshot::Version;
use wal::Wal;

/// Points of resolved series gathered before their partitions are encoded in parallel (a
/// flush's memory beyond the memtable: 16 bytes a point).
const FLUSH_CHUNK_POINTS: usize = 1 << 20;

/// How a store behaves; `Options::default()` is what `courbe` uses.
#[derive(Clone, Debug)]
pub struct Options {
    /// Points buffered in memory before a flush to a segment.
    pub memtable_max_points: usize,
    /// Time partitions whose end is older than this many days (before the newest point) are
    /// dropped by [`Store::apply_retention`]. `None`: keep everything (the default).
    pub retention_days: Option<u32>,
    /// Which segments [`Store::compact_by_policy`] merges.
    pub compaction: CompactionPolicy,
    /// Whether [`Store::start_compactor`] starts a background thread that runs
    /// [`Store::compact_by_policy`] after every flush. Off by default: an embedded store's files
    /// change only when its caller acts (tests count sync points); `courbe serve` turns it on.
    pub background_compaction: bool,
    /// Whether a background thread builds each segment's clock-band summaries (`bands.rs`, read
    /// by the fleet offer comparison) at open and after every flush, compaction or erasure that
    /// writes a segment (`summarizer.rs`), so that no question pays for them. Off by default:
    /// an embedded store writes only the files its caller's actions write, and one that never
    /// compares offers would pay a decode of every segment written and about a quarter more
    /// bytes for nothing; `courbe serve` turns it on. Without it, the first comparison over a
    /// segment builds its summaries.
    pub background_summaries: bool,
    /// Whether a segment is encoded on every core of rayon's pool: a flush's series and a
    /// merge's key space cut into pieces encoded apart and appended in key order
    /// (`segments::Spread`), the file byte for byte the one the sequential path writes. On by
    /// default; off, a flush encodes each month it touches on one core and a merge runs on one
    /// (what benches compare against).
    pub spread_encoding: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            memtable_max_points: 8_000_000,
            retention_days: None,
            compaction: CompactionPolicy::default(),
            background_compaction: false,
            background_summaries: false,
            spread_encoding: true,
        }
    }
}

/// The tiered rule of [`Store::compact_by_policy`], applied to each partition's segments from the
/// newest: the newest segments are taken while the next older one is at most `ratio_percent`
/// percent of the bytes taken so far (the second-newest: at most twice the newest, whatever the
/// ratio, since a feed's last flush of a round is often smaller than the full ones), and merged
/// into one when at least `min_merge` were taken.
/// A segment so merges only with newer data of a comparable size, which bounds how often a byte
/// is rewritten (about `log2` of the segments a partition receives; at 110% the slack keeps
/// days of nearly equal size together). A partition is *closed* once the newest point stored
/// is `closed_after_s` past its end: its rule is `closed_ratio_percent` and `closed_min_merge`,
/// so that a month ends as one segment and late data merges into it only once it is an eighth
/// of it (800%).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionPolicy {
    pub ratio_percent: u64,
    pub min_merge: usize,
    pub closed_ratio_percent: u64,
    pub closed_min_merge: usize,
    pub closed_after_s: i64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            ratio_percent: 110,
            min_merge: 4,
            closed_ratio_percent: 800,
            closed_min_merge: 2,
            closed_after_s: 2 * 86_400,
        }
    }
}

/// What [`Store::compact_by_policy`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Merges: one per partition merged.
    pub merges: u64,
    pub segments_read: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// An engine failure. Corruption always names the file and the byte offset.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Corruption {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    /// A data directory written by a newer Courbe.
    Compatibility {
        path: PathBuf,
        detail: String,
    },
    /// Bytes of `path` the format crate refuses, with its error whole: its kind, offset and
    /// the values it expected and found (`source.kind()`, `source.offset()`).
    Format {
        path: PathBuf,
        source: storage_format::Error,
    },
    InvalidArgument(String),
    /// The store was closed or poisoned by an earlier I/O failure.
    Closed,
}

impl Error {
    /// The file and byte offset of damaged bytes: a corruption found by the engine, or a format
    /// error of kind corruption or truncation. `None` for every other failure.
    pub fn corruption_at(&self) -> Option<(&std::path::Path, u64)> {
        match self {
            Error::Corruption { path, offset, .. } => Some((path, *offset)),
            Error::Format { path, source } => match source.kind() {
                storage_format::ErrorKind::Corruption | storage_format::ErrorKind::Truncated => {
                    Some((path, source.offset().unwrap_or(0)))
                }
                _ => None,
            },
            _ => None,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "I/O error on {}: {source}", path.display()),
            Error::Corruption {
                path,
                offset,
                detail,
            } => write!(
                f,
                "corruption in {} at offset {offset}: {detail}",
                path.display()
            ),
            Error::Compatibility { path, detail } => {
                write!(f, "incompatible file {}: {detail}", path.display())
            }
            Error::Format { path, source } => match source.kind() {
                storage_format::ErrorKind::Compatibility => {
                    write!(f, "incompatible file {}: {source}", path.display())
                }
                _ => write!(
                    f,
                    "corruption in {} at offset {}: {source}",
                    path.display(),
                    source.offset().unwrap_or(0)
                ),
            },
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::Closed => write!(f, "the store is closed after an earlier failure"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Format { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why a point was refused by [`Batch::push`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidPoint(pub String);

/// Which meter ids [`check_meter_id`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeterIdUse {
    /// Reading, querying or erasing a meter that may be stored: 1 to 64 characters of
    /// `[0-9A-Za-z_.-]`.
    Stored,
    /// Naming a meter not yet stored: also not made only of dots (`.` and `..` read as paths).
    /// Stored ids are read, queried and erased under [`MeterIdUse::Stored`], so data written
    /// before this rule stays reachable.
    New,
}

/// The one meter-id rule: `id` as text, or why it is not a meter id (naming the id and what is
/// wrong with it).
pub fn check_meter_id(id: &[u8], usage: MeterIdUse) -> Result<&str, String> {
    if id.is_empty() {
        return Err("empty meter id".into());
    }
    if usage == MeterIdUse::New && id.iter().all(|&b| b == b'.') {
        return Err(format!(
            "meter id {:?} is only dots",
            String::from_utf8_lossy(id)
        ));
    }
    if id.len() > storage_format::METER_ID_MAX_LEN {
        return Err(format!(
            "meter id of {} characters (at most {})",
            id.len(),
            storage_format::METER_ID_MAX_LEN
        ));
    }
    if let Some(&b) = id
        .iter()
        .find(|&&b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))
    {
        return Err(format!(
            "meter id {:?} has a character outside [0-9A-Za-z_.-] ({:?})",
            String::from_utf8_lossy(id),
            char::from(b)
        ));
    }
    // Only ASCII bytes were accepted.
    std::str::from_utf8(id).map_err(|_| "meter id is not UTF-8".to_owned())
}

/// Whether `id` is a meter id under [`MeterIdUse::Stored`].
pub fn valid_meter_id(id: &str) -> bool {
    check_meter_id(id.as_bytes(), MeterIdUse::Stored).is_ok()
}

/// The prefix of every price series id: ids starting with it name price series (channel
/// `price`), never meters, and a price series is stored under no other id. A PRM is 14 digits,
/// so no PRM is in this namespace.
pub const PRICE_SERIES_PREFIX: &str = "spot-";

/// Whether `id` is in the price series namespace (starts with [`PRICE_SERIES_PREFIX`]): meter
/// routes answer such an id as an unknown meter.
pub fn is_price_series_namespace(id: &str) -> bool {
    id.starts_with(PRICE_SERIES_PREFIX)
}

/// Whether `id` may name a price series: `spot-` then a market area of 1 to 16 characters of
/// `[A-Z0-9-]` (`spot-FR`, `spot-DE-LU`).
pub fn valid_price_series_id(id: &str) -> bool {
    id.strip_prefix(PRICE_SERIES_PREFIX).is_some_and(|area| {
        (1..=16).contains(&area.len())
            && area
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
    })
}

/// [`valid_price_series_id`], with the reason when it is not.
pub fn check_price_series_id(id: &str) -> Result<(), String> {
    if valid_price_series_id(id) {
        Ok(())
    } else {
        Err(format!(
            "price series id {id:?} is not spot-AREA (AREA: 1 to 16 characters of [A-Z0-9-])"
        ))
    }
}

/// The price series id of market `area` (`FR` → `spot-FR`), `None` when it is no valid area.
pub fn price_series_id(area: &str) -> Option<String> {
    let id = format!("{PRICE_SERIES_PREFIX}{area}");
    valid_price_series_id(&id).then_some(id)
}

/// Consecutive points of one series in a [`Batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    /// Index into `Batch::meters`.
    pub meter: u32,
    pub channel: Channel,
    pub len: u32,
}

/// What [`Store::observe_ingest`] calls with each acknowledged batch.
pub type IngestObserver = Arc<dyn Fn(&Batch) + Send + Sync>;

/// Points to ingest together; acknowledged as a whole.
///
/// Stored as runs of one series each over a per-batch dictionary of meter ids, which is also
/// how the log record encodes it.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub(crate) meters: Vec<String>,
    index: std::collections::HashMap<String, u32>,
    pub(crate) runs: Vec<Run>,
    pub(crate) points: Vec<Point>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds a point after checking the meter id (1 to 64 of `[0-9A-Za-z_.-]`) and the point:
    /// the step (5, 10, 15, 30 or 60 minutes for curves; 1440 for `max_power`, daily energy and
    /// indexes), the instant ([`TS_RANGE`]; daily energy at a Europe/Paris midnight) and the
    /// value (daily energy and indexes at least 0 Wh). An index channel must also be in the
    /// store's register table ([`Store::index_channel`]) when the batch is ingested.
    pub fn push(
        &mut self,
        meter: &str,
        channel: Channel,
        point: Point,
    ) -> Result<(), InvalidPoint> {
        if let Some(last) = self.runs.last_mut() {
            let same = last.channel == channel
                && self.meters.get(last.meter as usize).map(String::as_str) == Some(meter);
            if same && last.len < u32::MAX {
                check_point(channel, &point)?;
                last.len += 1;
                self.points.push(point);
                return Ok(());
            }
        }
        check_meter_id(meter.as_bytes(), MeterIdUse::New).map_err(InvalidPoint)?;
        if channel.is_price() {
            check_price_series_id(meter).map_err(InvalidPoint)?;
        }
        if !channel.is_price() && is_price_series_namespace(meter) {
            return Err(InvalidPoint(format!(
                "{meter:?} is a price series id (ids starting with {PRICE_SERIES_PREFIX:?} name \
                 price series, not meters): only channel price is stored under it"
            )));
        }
        check_point(channel, &point)?;
        let idx = match self.index.get(meter) {
            Some(&i) => i,
            None => {
                let i = self.meters.len() as u32;
                self.meters.push(meter.to_string());
                self.index.insert(meter.to_string(), i);
                i
            }
        };
        self.runs.push(Run {
            meter: idx,
            channel,
            len: 1,
        });
        self.points.push(point);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Every run of one series, in the order pushed: `(meter, channel, points)`.
    pub fn series(&self) -> impl Iterator<Item = (&str, Channel, &[Point])> + '_ {
        let mut start = 0usize;
        self.runs.iter().map(move |run| {
            let end = start + run.len as usize;
            let pts = self.points.get(start..end).unwrap_or(&[]);
            start = end;
            let meter = self
                .meters
                .get(run.meter as usize)
                .map_or("", String::as_str);
            (meter, run.channel, pts)
        })
    }

    /// Every point in the order pushed.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Channel, Point)> + '_ {
        let mut start = 0usize;
        self.runs.iter().flat_map(move |run| {
            let end = start + run.len as usize;
            let pts = self.points.get(start..end).unwrap_or(&[]);
            start = end;
            let meter = self
                .meters
                .get(run.meter as usize)
                .map_or("", String::as_str);
            pts.iter().map(move |p| (meter, run.channel, *p))
        })
    }
}

/// Earliest interval start of a new point: 1970-01-01T00:00:00Z (the engine stores no earlier
/// instant).
pub const MIN_TS_UTC: i64 = 0;
/// Latest interval start of a new point: 9998-12-31T23:59:59Z. A point of this year ends before
/// 9999-01-02 in every time zone, so every query, calendar period and RFC 3339 export of it can
/// be written; jiff, and so the queries' local calendars, stop in the last days of 9999. Segments
/// still read every instant up to the end of 9999, which older builds accepted.
pub const MAX_TS_UTC: i64 = 253_370_764_800 - 1;
/// [`MIN_TS_UTC`]..=[`MAX_TS_UTC`] as rejection reasons state it.
pub const TS_RANGE: &str = "1970-01-01T00:00:00Z to 9998-12-31T23:59:59Z";

/// The stored value of a reading of `wh` Wh on daily energy or an index channel: 0 to
/// `i32::MAX` (2,147,483,647 Wh); anything else is refused with a reason naming it.
pub fn energy_value(channel: Channel, wh: i64) -> Result<i32, InvalidPoint> {
    i32::try_from(wh).ok().filter(|v| *v >= 0).ok_or_else(|| {
        InvalidPoint(format!(
            "{} value {wh} Wh is outside 0 to 2147483647 Wh (i32::MAX), what an index or a \
                 day's energy may hold",
            channel.as_str()
        ))
    })
}

use crate::zone::is_paris_midnight;

fn check_point(channel: Channel, p: &Point) -> Result<(), InvalidPoint> {
    let ok = if channel.is_curve() {
        matches!(p.step_min, 5 | 10 | 15 | 30 | 60)
    } else if channel.is_price() {
        matches!(p.step_min, 15 | 60)
    } else {
        p.step_min == 1440
    };
    if !ok {
        return Err(InvalidPoint(format!(
            "step {} min is not valid for {} (5, 10, 15, 30 or 60 for the curves; 15 or 60 for \
             price; 1440 for max_power, daily_energy and index)",
            p.step_min,
            channel.as_str()
        )));
    }
    // A price holds for a market interval: aligned on its step (UTC, which every step of 15 or
    // 60 minutes is in Europe/Paris too).
    if channel.is_price() && p.ts_utc.rem_euclid(60 * i64::from(p.step_min)) != 0 {
        return Err(InvalidPoint(format!(
            "price at {} is not aligned on its {}-minute step",
            p.ts_utc, p.step_min
        )));
    }
    if storage_format::Channel::from_u8(channel.code(), storage_format::segment::FORMAT_VERSION)
        .is_none()
    {
        return Err(InvalidPoint(format!(
            "channel code {} is reserved",
            channel.code()
        )));
    }
    if !(MIN_TS_UTC..=MAX_TS_UTC).contains(&p.ts_utc) {
        return Err(InvalidPoint(format!(
            "interval start {} is outside the supported range, {TS_RANGE}",
            p.ts_utc
        )));
    }
    if (channel == Channel::DAILY_ENERGY || channel.is_index()) && p.value < 0 {
        return Err(InvalidPoint(format!(
            "{} value {} Wh is negative (energy and indexes are at least 0 Wh)",
            channel.as_str(),
            p.value
        )));
    }
    if channel == Channel::DAILY_ENERGY && !is_paris_midnight(p.ts_utc) {
        return Err(InvalidPoint(format!(
            "daily_energy at {} is not at a Europe/Paris midnight (a day's energy is dated by \
             the midnight that starts it)",
            p.ts_utc
        )));
    }
    Ok(())
}

/// What an erase call removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EraseReport {
    pub points_removed: u64,
}

/// Sizes of the store, for `courbe stats` and `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub meters: u64,
    pub points: u64,
    pub segments: u64,
    pub bytes_on_disk: u64,
}

/// The lock file of a data directory (empty; held with `flock` while a store is open).
pub const LOCK_NAME: &str = "LOCK";

/// The memtables' size (the current one and the immutable one being flushed, if any), for
/// memory reports ([`Store::memtable_memory`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemtableMemory {
    /// Meters of the larger of the two.
    pub meters: usize,
    pub points: usize,
    /// Heap bytes held, approximately.
    pub heap_bytes: usize,
    /// Of which in point vectors (24 bytes a point, plus spare capacity).
    pub point_bytes: usize,
}

/// An open data directory. `Send + Sync`: share it behind an `Arc`.
///
/// Locks, always taken in this order: `maintenance` (compaction, erasure, retention) →
/// `gate` (ingest shares it, flush takes it whole) → `manifest` → `version`.
pub struct Store {
    /// Held while open: one store per data directory.
    _lock: Box<dyn fs::DirLock>,
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    options: Options,
    wal: Arc<Wal>,
    /// Sequence number of the next batch.
    next_batch: AtomicU64,
    /// Batches applied to the memtable, in sequence order: the last one applied.
    applied: std::sync::Mutex<u64>,
    applied_cond: std::sync::Condvar,
    /// Highest batch sequence number a new snapshot sees.
    visible: AtomicU64,
    /// Counters of segment `seq` and file number; the manifest records them at each commit.
    next_seq: Arc<AtomicU64>,
    next_file_id: Arc<AtomicU64>,
    /// An erasure failed after its intent was committed: every write is refused until the
    /// store is reopened (which completes the erasure), so nothing ingested meanwhile is
    /// erased with it.
    erase_unfinished: std::sync::atomic::AtomicBool,
    gate: parking_lot::RwLock<()>,
    maintenance: parking_lot::Mutex<()>,
    /// Called with each batch once it is acknowledged ([`Store::observe_ingest`]).
    observers: parking_lot::RwLock<Vec<IngestObserver>>,
    manifest: Arc<parking_lot::Mutex<Manifest>>,
    version: Arc<parking_lot::RwLock<Arc<Version>>>,
    /// The background flush of the immutable memtable, while one is in flight (or finished and
    /// not yet joined). Taken with `gate` held whole, or by `Drop`.
    flushing: parking_lot::Mutex<Option<std::thread::JoinHandle<Result<(), Error>>>>,
    /// Flushes completed, shared with the background compactor, which holds no strong
    /// reference to the store while it waits.
    signal: Arc<FlushSignal>,
    /// Written by the background compactor: its figures so far and its last failure.
    pub(crate) compactor: parking_lot::Mutex<CompactorState>,
    /// The background builder of clock-band summaries (`summarizer.rs`), when it runs.
    summaries: Arc<summarizer::Summaries>,
    summarizer: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Flushes counted, and the store's end, for the background compactor.
#[derive(Default)]
pub(crate) struct FlushSignal {
    pub(crate) flushes: parking_lot::Mutex<u64>,
    pub(crate) cond: parking_lot::Condvar,
    /// Set when the store is dropped: the background compactor stops.
    pub(crate) closing: std::sync::atomic::AtomicBool,
}

impl Drop for Store {
    fn drop(&mut self) {
        // A flush in flight completes (or fails) before the directory lock is released.
        if let Some(handle) = self.flushing.get_mut().take() {
            let _ = handle.join();
        }
        // The summary builder stops between two series and writes nothing after its join,
        // so no summary file is written once the directory lock is released.
        self.summaries.close();
        if let Some(handle) = self.summarizer.get_mut().take() {
            let _ = handle.join();
        }
        self.signal.closing.store(true, Ordering::SeqCst);
        let _count = self.signal.flushes.lock();
        self.signal.cond.notify_all();
    }
}

/// The background compactor's figures (see [`Store::compactor_state`]).
#[derive(Clone, Debug, Default)]
pub struct CompactorState {
    pub runs: u64,
    /// The flush count (`Store::flush_count`) its last run followed.
    pub flushes_seen: u64,
    pub totals: CompactionReport,
    pub last_error: Option<String>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, replaying its log.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Store, Error> {
        Store::open_with(dir, options, Arc::new(RealFs))
    }

    /// [`Store::open`] through the file system `fs` (tests inject faults and crashes).
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: Options,
        fs: Arc<dyn FileSystem>,
    ) -> Result<Store, Error> {
        let dir = dir.as_ref().to_path_buf();
        fs.create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock_path = dir.join(LOCK_NAME);
        let lock = fs.lock(&lock_path).map_err(io_err(&lock_path))?;
        let loaded = Manifest::load(&*fs, &dir)?;
        let fresh = loaded.is_none();
        let man = loaded.unwrap_or_default();
        let names = fs.list_dir(&dir).map_err(io_err(&dir))?;

        let registers: Arc<[Arc<str>]> = man.registers.clone().into();
        let mut segments = Vec::with_capacity(man.segments.len());
        for entry in &man.segments {
            segments.push(Arc::new(SegmentFile::open(&*fs, &dir, *entry, &registers)?));
        }

        let mut dir_changed = false;
        // Garbage: logs before the manifest's generation, segments it does not name, temp files.
        let live: std::collections::HashSet<u64> = man.segments.iter().map(|s| s.file_id).collect();
        for name in &names {
            let garbage = match (
                wal::parse_file_name(name),
                manifest::parse_segment_file_name(name),
            ) {
                (Some(g), _) => g < man.wal_generation,
                (_, Some(id)) => !live.contains(&id),
                _ => match bands::parse_file_name(name) {
                    Some(id) => !live.contains(&id),
                    None => name.ends_with(".tmp"),
                },
            };
            if garbage {
                let path = dir.join(name);
                fs.remove(&path).map_err(io_err(&path))?;
                dir_changed = true;
            }
        }
        let mut gens: Vec<u64> = names
            .iter()
            .filter_map(|n| wal::parse_file_name(n))
            .filter(|&g| g >= man.wal_generation)
            .collect();
        gens.sort_unstable();
        // Every log but the last held a memtable handed to a flush that did not commit: each is
        // written to segments once replayed, so the memtable never holds more than one log's
        // batches (about `memtable_max_points`, as when the store ran).
        let mut man = man;
        let mut memtable = Memtable::new();
        let mut max_seq = 0u64;
        for (i, &g) in gens.iter().enumerate() {
            let path = dir.join(wal::file_name(g));
            let is_last = i + 1 == gens.len();
            let r = wal::replay(&*fs, &path, is_last, registers.len(), |seq, batch| {
                max_seq = max_seq.max(seq);
                memtable.insert(seq, &batch);
            })?;
            // A log without a whole record (a torn header, or nothing logged) holds nothing.
            let empty = r.valid_len <= wal::HEADER_LEN as u64;
            if r.valid_len < r.file_len || empty {
                if empty {
                    fs.remove(&path).map_err(io_err(&path))?;
                    dir_changed = true;
                } else {
                    fs.truncate(&path, r.valid_len).map_err(io_err(&path))?;
                }
            }
            if !is_last && memtable.points() > 0 {
                let next_seq = AtomicU64::new(man.next_seq);
                let next_file_id = AtomicU64::new(man.next_file_id);
                let (opened, _) = write_memtable_segments(
                    &*fs,
                    &dir,
                    (&next_seq, &next_file_id),
                    &memtable,
                    None,
                    &registers,
                    options.spread_encoding,
                )?;
                let next = man.after_commit(
                    &[],
                    opened.iter().map(|s| s.entry),
                    g + 1,
                    next_seq.load(Ordering::SeqCst),
                    next_file_id.load(Ordering::SeqCst),
                    memtable.newest_ts(),
                );
                next.commit(&*fs, &dir)?;
                man = next;
                segments.extend(opened);
                remove_logs_before(&*fs, &dir, g + 1)?;
                memtable = Memtable::new();
            }
        }
        segments.sort_by_key(|s| s.entry.seq);

        if dir_changed {
            fs.sync_dir(&dir).map_err(io_err(&dir))?;
        }
        if fresh {
            man.commit(&*fs, &dir)?;
        }
        let new_gen = gens
            .last()
            .map_or(man.wal_generation, |g| g + 1)
            .max(man.wal_generation);
        let wal = Wal::create(fs.clone(), &dir, new_gen)?;
        let version = Version::new(segments, Arc::new(memtable), registers);
        let resume = !man.pending_erasures.is_empty();
        let store = Store {
            _lock: lock,
            dir,
            fs,
            options,
            wal: Arc::new(wal),
            next_batch: AtomicU64::new(max_seq + 1),
            applied: std::sync::Mutex::new(max_seq),
            applied_cond: std::sync::Condvar::new(),
            visible: AtomicU64::new(max_seq),
            next_seq: Arc::new(AtomicU64::new(man.next_seq)),
            next_file_id: Arc::new(AtomicU64::new(man.next_file_id)),
            erase_unfinished: std::sync::atomic::AtomicBool::new(false),
            gate: parking_lot::RwLock::new(()),
            maintenance: parking_lot::Mutex::new(()),
            observers: parking_lot::RwLock::new(Vec::new()),
            manifest: Arc::new(parking_lot::Mutex::new(man)),
            version: Arc::new(parking_lot::RwLock::new(Arc::new(version))),
            flushing: parking_lot::Mutex::new(None),
            signal: Arc::new(FlushSignal::default()),
            compactor: parking_lot::Mutex::new(CompactorState::default()),
            summaries: Arc::new(summarizer::Summaries::default()),
            summarizer: parking_lot::Mutex::new(None),
        };
        if resume {
            // An erasure begun before a crash or a failure: the store is not used before it
            // is complete.
            store.resume_erasures()?;
        }
        if store.options.background_summaries {
            *store.summarizer.lock() = summarizer::spawn(
                store.version.clone(),
                store.fs.clone(),
                store.summaries.clone(),
            );
        }
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits until the background summary builder (`Options::background_summaries`) has gone
    /// through every segment committed before the call (tests and benchmarks); returns at once
    /// when it does not run.
    pub fn wait_for_summaries(&self) {
        self.summaries.wait_caught_up();
    }

    /// Summary files the background builder has written since the store was opened.
    pub fn summaries_built(&self) -> u64 {
        self.summaries.built()
    }

    /// The manifest as last committed (a clone taken under its lock): with the segment files it
    /// names (`manifest::segment_file_name`), what a copy of the store holds besides its logs.
    /// A segment it names stays on disk until a later commit forgets it (compaction, erasure,
    /// retention); `courbe-cluster` ships these files to object storage.
    pub fn committed_manifest(&self) -> Manifest {
        self.manifest.lock().clone()
    }

    /// Makes the batch durable (the call returns after fsync, shared with concurrent callers),
    /// then visible. A later value for the same meter, channel and `ts_utc` replaces the earlier.
    pub fn ingest(&self, batch: &Batch) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        // No log record names a register the manifest does not (the table only grows).
        let known = self.version.read().registers.len();
        if let Some(run) = batch.runs.iter().find(|r| {
            r.channel
                .register_number()
                .is_some_and(|n| usize::from(n) >= known)
        }) {
            return Err(Error::InvalidArgument(format!(
                "{:?} is not in the store's register table (assign it with index_channel)",
                run.channel
            )));
        }
        if wal::payload_len(batch) > wal::MAX_RECORD_LEN as usize {
            return Err(Error::InvalidArgument(format!(
                "a batch of {} points is over the log record limit of {} MiB; split it",
                batch.len(),
                wal::MAX_RECORD_LEN >> 20
            )));
        }
        {
            let _gate = self.gate.read();
            if self.erase_unfinished.load(Ordering::SeqCst) {
                return Err(Error::Closed);
            }
            let seq = self.next_batch.fetch_add(1, Ordering::SeqCst);
            let record = wal::encode_record(seq, batch);
            let durable = self.wal.append(record);
            // Apply in sequence order, failed batches included (as nothing), so that no later
            // batch waits forever.
            let mut applied = match self.applied.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            while *applied + 1 != seq {
                applied = match self.applied_cond.wait(applied) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
            }
            if durable.is_ok() {
                self.version.read().memtable.insert(seq, batch);
                self.visible.store(seq, Ordering::SeqCst);
            }
            *applied = seq;
            self.applied_cond.notify_all();
            durable?;
        }
        if self.version.read().memtable.points() >= self.options.memtable_max_points {
            let _gate = self.gate.write();
            // Concurrent writers may all have seen it full: the first one hands it over.
            if self.version.read().memtable.points() >= self.options.memtable_max_points {
                self.flush_in_background()?;
            }
        }
        // Acknowledged: durable and visible to new snapshots.
        for observe in self.observers.read().iter() {
            observe(batch);
        }
        Ok(())
    }

    /// Calls `observer` with every batch [`Store::ingest`] acknowledges, after it is durable
    /// and visible, on the ingesting thread: an observer must not block (the live view hands
    /// the points to bounded queues and drops a subscriber whose queue is full).
    pub fn observe_ingest(&self, observer: IngestObserver) {
        self.observers.write().push(observer);
    }

    /// Whether an earlier I/O failure made the store refuse writes; it stays so until reopened.
    pub fn is_failed(&self) -> bool {
        self.wal.is_failed()
    }

    /// Writes the memtable to segments (one per month touched) and drops the logs that held it;
    /// a background flush in flight completes first.
    pub fn flush(&self) -> Result<(), Error> {
        let _gate = self.gate.write();
        self.flush_locked(None).map(|_| ())
    }

    /// Waits for the background flush in flight, if any (tests and reports: after it, every
    /// memtable filled by [`Store::ingest`] so far is in segments). A background flush that
    /// failed has poisoned the store (its error is logged): [`Error::Closed`].
    pub fn wait_for_flush(&self) -> Result<(), Error> {
        let _gate = self.gate.write();
        self.join_flush()
    }

    /// Joins the background flush, if any; the caller holds `gate` whole (so no other starts).
    /// Its failure poisoned the store when it happened, on its thread: reported as
    /// [`Error::Closed`], as every write after it is.
    fn join_flush(&self) -> Result<(), Error> {
        let handle = self.flushing.lock().take();
        match handle.map(std::thread::JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(_)) | Err(_)) => {
                self.wal.poison();
                Err(Error::Closed)
            }
        }
    }

    /// Hands the full memtable to a background flush and installs an empty one; the caller
    /// holds `gate` whole. Waits first for the flush in flight (at most one immutable
    /// memtable: a writer faster than the disk is held here).
    fn flush_in_background(&self) -> Result<(), Error> {
        self.join_flush()?;
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let (full, registers) = {
            let v = self.version.read();
            (v.memtable.clone(), v.registers.clone())
        };
        if full.points() == 0 {
            return Ok(());
        }
        // Every batch of `full` is in a log before `new_gen`; every later batch from it on.
        let new_gen = self.wal.generation() + 1;
        if let Err(e) = self.wal.rotate(new_gen) {
            self.wal.poison();
            return Err(e);
        }
        {
            let mut version = self.version.write();
            *version = Arc::new(Version::with_immutable(
                version.segments.clone(),
                Arc::new(Memtable::new()),
                Some(full.clone()),
                version.registers.clone(),
            ));
        }
        let core = self.core();
        let job = move || {
            let result = core.flush_immutable(&full, &registers, new_gen);
            if let Err(e) = &result {
                core.wal.poison();
                tracing::error!("background flush failed (writes refused until reopened): {e}");
            }
            result
        };
        let spawned = std::thread::Builder::new()
            .name("courbe-flush".into())
            .spawn(job.clone());
        match spawned {
            Ok(handle) => *self.flushing.lock() = Some(handle),
            // No thread to be had: the writer flushes it itself.
            Err(_) => job()?,
        }
        Ok(())
    }

    /// What a flush needs of the store, shareable with a background thread.
    fn core(&self) -> Core {
        Core {
            dir: self.dir.clone(),
            fs: self.fs.clone(),
            wal: self.wal.clone(),
            next_seq: self.next_seq.clone(),
            next_file_id: self.next_file_id.clone(),
            manifest: self.manifest.clone(),
            version: self.version.clone(),
            signal: self.signal.clone(),
            summaries: self.summaries.clone(),
            spread_encoding: self.options.spread_encoding,
        }
    }

    /// The flush; the caller holds `gate` whole. With `erase`, the erased points are left out
    /// and the log is rolled even when the memtable is empty. Returns the points left out.
    /// A failure poisons the store: it keeps answering reads from the version it had and
    /// refuses writes until reopened.
    fn flush_locked(&self, erase: Option<&EraseSpec>) -> Result<u64, Error> {
        let result = self.write_memtable(erase);
        if result.is_err() {
            self.wal.poison();
        }
        result
    }

    fn write_memtable(&self, erase: Option<&EraseSpec>) -> Result<u64, Error> {
        // The immutable memtable is older: in segments first (no version then has one).
        self.join_flush()?;
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let (mem, registers) = {
            let v = self.version.read();
            (v.memtable.clone(), v.registers.clone())
        };
        if mem.points() == 0 && erase.is_none() {
            return Ok(0);
        }
        let new_gen = self.wal.generation() + 1;
        self.wal.rotate(new_gen)?;
        let (opened, erased) = self.core().write_segments(&mem, erase, &registers)?;
        let newest = mem.newest_ts();
        self.commit(
            &[],
            opened,
            new_gen,
            newest,
            Some(Arc::new(Memtable::new())),
        )?;
        self.remove_obsolete_logs(new_gen)?;
        *self.signal.flushes.lock() += 1;
        self.signal.cond.notify_all();
        Ok(erased)
    }

    /// Whether writes are refused: after an fsync failure, or an erasure left unfinished.
    fn is_closed(&self) -> bool {
        self.wal.is_failed() || self.erase_unfinished.load(Ordering::SeqCst)
    }

    /// Names `added` and forgets `removed` in the manifest (atomic, durable), then installs the
    /// matching version. `memtable`: a new one replaces the current (flush; no immutable
    /// memtable is then in flight).
    fn commit(
        &self,
        removed: &[Arc<SegmentFile>],
        added: Vec<Arc<SegmentFile>>,
        wal_generation: u64,
        newest_ts: Option<i64>,
        memtable: Option<Arc<Memtable>>,
    ) -> Result<(), Error> {
        let memtables = match memtable {
            Some(m) => Memtables::Replace(m),
            None => Memtables::Keep,
        };
        self.core()
            .commit(removed, added, wal_generation, newest_ts, memtables)
    }

    /// The index channel of register `name` (1 to 16 of `[A-Z0-9_]`: a supplier's register such
    /// as `HPJB`, or `DIST_` + a distributor's class), assigning the next free register number
    /// on first use. A new register is durable (in a synced manifest) when this returns, so no
    /// log record or segment ever holds a code the manifest does not name. Refuses a bad name
    /// and a full table (240 registers).
    pub fn index_channel(&self, name: &str) -> Result<Channel, Error> {
        if !storage_format::valid_register_name(name) {
            return Err(Error::InvalidArgument(format!(
                "register name {name:?} is not 1 to 16 characters of [A-Z0-9_]"
            )));
        }
        if let Some(r) = self
            .version
            .read()
            .registers
            .iter()
            .position(|n| &**n == name)
        {
            return Channel::index(r as u8)
                .ok_or_else(|| Error::InvalidArgument(format!("register number {r}")));
        }
        let mut man = self.manifest.lock();
        if let Some(r) = man.registers.iter().position(|n| &**n == name) {
            // Assigned meanwhile by another caller.
            return Channel::index(r as u8)
                .ok_or_else(|| Error::InvalidArgument(format!("register number {r}")));
        }
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let number = man.registers.len();
        let Some(channel) = u8::try_from(number).ok().and_then(Channel::index) else {
            return Err(Error::InvalidArgument(format!(
                "register {name:?}: the register table is full ({} registers)",
                Channel::REGISTERS_MAX
            )));
        };
        let mut next = man.clone();
        next.registers.push(Arc::from(name));
        if let Err(e) = next.commit(&*self.fs, &self.dir) {
            // Whether the new manifest reached the disk is unknown: refuse writes until reopened.
            self.wal.poison();
            return Err(e);
        }
        let registers: Arc<[Arc<str>]> = next.registers.clone().into();
        *man = next;
        let mut version = self.version.write();
        *version = Arc::new(Version::with_immutable(
            version.segments.clone(),
            version.memtable.clone(),
            version.immutable.clone(),
            registers,
        ));
        Ok(channel)
    }

    fn remove_obsolete_logs(&self, first_live: u64) -> Result<(), Error> {
        self.core().remove_obsolete_logs(first_live)
    }

    /// Deletes segment files no longer named, then syncs the directory.
    fn remove_segments(&self, files: &[Arc<SegmentFile>]) -> Result<(), Error> {
        for f in files {
            f.remove_files(&*self.fs)?;
        }
        self.fs.sync_dir(&self.dir).map_err(io_err(&self.dir))
    }

    /// A consistent view for queries; never waits for a flush or a compaction.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        let version = self.version.read();
        Arc::new(Snapshot {
            version: version.clone(),
            visible_seq: self.visible.load(Ordering::SeqCst),
            fs: self.fs.clone(),
        })
    }

    pub fn stats(&self) -> Stats {
        let snap = self.snapshot();
        let mut points = snap
            .version
            .memtables()
            .map(|m| m.points() as u64)
            .sum::<u64>();
        for s in &snap.version.segments {
            points += s.segment().stats().points;
        }
        let bytes_on_disk = self
            .fs
            .list_dir(&self.dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| self.fs.len(&self.dir.join(n)).ok())
            .sum();
        Stats {
            meters: snap.meter_count(),
            points,
            segments: snap.version.segments.len() as u64,
            bytes_on_disk,
        }
    }

    /// Checks every checksum of every file.
    pub fn verify(&self) -> Result<Stats, Error> {
        let snap = self.snapshot();
        for s in &snap.version.segments {
            s.segment()
                .verify()
                .map_err(|e| segments::corruption(&s.path, e))?;
        }
        Manifest::load(&*self.fs, &self.dir)?;
        let known = snap.version.registers.len();
        let names = self.fs.list_dir(&self.dir).map_err(io_err(&self.dir))?;
        let first = self.manifest.lock().wal_generation;
        let mut gens: Vec<u64> = names
            .iter()
            .filter_map(|n| wal::parse_file_name(n))
            .filter(|&g| g >= first)
            .collect();
        gens.sort_unstable();
        for (i, g) in gens.iter().enumerate() {
            let path = self.dir.join(wal::file_name(*g));
            wal::replay(&*self.fs, &path, i + 1 == gens.len(), known, |_, _| {})?;
        }
        Ok(self.stats())
    }

    /// What the memtable holds now, for memory reports.
    pub fn memtable_memory(&self) -> MemtableMemory {
        let version = self.version.read().clone();
        let mut out = MemtableMemory::default();
        for mem in version.memtables() {
            let (heap_bytes, point_bytes) = mem.heap_bytes();
            out.meters = out.meters.max(mem.meter_count());
            out.points += mem.points();
            out.heap_bytes += heap_bytes;
            out.point_bytes += point_bytes;
        }
        out
    }
}

/// What [`Core::commit`] does to the version's memtables.
enum Memtables {
    Keep,
    /// A synchronous flush: `new` replaces the memtable written (no immutable one exists).
    Replace(Arc<Memtable>),
    /// A background flush: the immutable memtable is now in segments.
    ImmutableFlushed,
}

/// The parts of a [`Store`] a flush touches, shared with the background flush thread.
#[derive(Clone)]
struct Core {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    wal: Arc<Wal>,
    next_seq: Arc<AtomicU64>,
    next_file_id: Arc<AtomicU64>,
    manifest: Arc<parking_lot::Mutex<Manifest>>,
    version: Arc<parking_lot::RwLock<Arc<Version>>>,
    signal: Arc<FlushSignal>,
    summaries: Arc<summarizer::Summaries>,
    /// `Options::spread_encoding`.
    spread_encoding: bool,
}

impl Core {
    /// Writes `mem` (less what `erase` removes) as segments, one per month it touches, its
    /// series gathered in chunks whose partitions are encoded in parallel; returns them opened,
    /// with the points erased.
    fn write_segments(
        &self,
        mem: &Memtable,
        erase: Option<&EraseSpec>,
        registers: &Arc<[Arc<str>]>,
    ) -> Result<(Vec<Arc<SegmentFile>>, u64), Error> {
        write_memtable_segments(
            &*self.fs,
            &self.dir,
            (&self.next_seq, &self.next_file_id),
            mem,
            erase,
            registers,
            self.spread_encoding,
        )
    }

    /// Writes `mem` (the immutable memtable, whose batches are all in logs before `new_gen`)
    /// as segments, commits them with `new_gen` as the first live log, drops the immutable
    /// memtable from the version, then deletes the older logs.
    fn flush_immutable(
        &self,
        mem: &Memtable,
        registers: &Arc<[Arc<str>]>,
        new_gen: u64,
    ) -> Result<(), Error> {
        let (opened, _) = self.write_segments(mem, None, registers)?;
        self.commit(
            &[],
            opened,
            new_gen,
            mem.newest_ts(),
            Memtables::ImmutableFlushed,
        )?;
        self.remove_obsolete_logs(new_gen)?;
        *self.signal.flushes.lock() += 1;
        self.signal.cond.notify_all();
        Ok(())
    }

    fn commit(
        &self,
        removed: &[Arc<SegmentFile>],
        added: Vec<Arc<SegmentFile>>,
        wal_generation: u64,
        newest_ts: Option<i64>,
        memtables: Memtables,
    ) -> Result<(), Error> {
        let mut man = self.manifest.lock();
        let removed_ids: Vec<u64> = removed.iter().map(|r| r.entry.file_id).collect();
        let next = man.after_commit(
            &removed_ids,
            added.iter().map(|s| s.entry),
            wal_generation,
            self.next_seq.load(Ordering::SeqCst),
            self.next_file_id.load(Ordering::SeqCst),
            newest_ts,
        );
        next.commit(&*self.fs, &self.dir)?;
        *man = next;
        let mut version = self.version.write();
        let mut segments: Vec<Arc<SegmentFile>> = version
            .segments
            .iter()
            .filter(|s| !removed.iter().any(|r| r.entry.file_id == s.entry.file_id))
            .cloned()
            .collect();
        let adds = !added.is_empty();
        segments.extend(added);
        segments.sort_by_key(|s| s.entry.seq);
        let (memtable, immutable) = match memtables {
            Memtables::Keep => (version.memtable.clone(), version.immutable.clone()),
            Memtables::Replace(m) => (m, None),
            Memtables::ImmutableFlushed => (version.memtable.clone(), None),
        };
        let registers = version.registers.clone();
        *version = Arc::new(Version::with_immutable(
            segments, memtable, immutable, registers,
        ));
        drop(version);
        if adds {
            self.summaries.segments_added();
        }
        Ok(())
    }

    fn remove_obsolete_logs(&self, first_live: u64) -> Result<(), Error> {
        remove_logs_before(&*self.fs, &self.dir, first_live)
    }
}

/// Writes `mem` (less what `erase` removes) as segments, one per month it touches, its series
/// gathered in chunks encoded in parallel (`spread`: in pieces, `segments::Spread`; else
/// one task per partition); returns them opened, with the points erased. Sequence numbers and
/// file ids are drawn from the two counters.
fn write_memtable_segments(
    fs: &dyn FileSystem,
    dir: &Path,
    (next_seq, next_file_id): (&AtomicU64, &AtomicU64),
    mem: &Memtable,
    erase: Option<&EraseSpec>,
    registers: &Arc<[Arc<str>]>,
    spread: bool,
) -> Result<(Vec<Arc<SegmentFile>>, u64), Error> {
    let mut writer = SegmentWriter::new(fs, dir, None, next_seq, next_file_id, registers)
        .with_spread(spread.then_some(segments::SPREAD));
    let mut chunk: Vec<(String, Channel, Vec<Point>)> = Vec::new();
    let mut chunk_points = 0usize;
    let erased = mem.for_each_series(erase, |m, c, pts| {
        chunk_points += pts.len();
        chunk.push((m.to_owned(), c, pts));
        if chunk_points >= FLUSH_CHUNK_POINTS {
            writer.add_many(&chunk)?;
            chunk.clear();
            chunk_points = 0;
        }
        Ok(())
    })?;
    writer.add_many(&chunk)?;
    drop(chunk);
    let written = writer.finish()?;
    let mut opened = Vec::with_capacity(written.len());
    for w in &written {
        opened.push(Arc::new(SegmentFile::open(fs, dir, w.entry, registers)?));
    }
    Ok((opened, erased))
}

/// Deletes the logs before generation `first_live` (every batch they hold is in segments a
/// committed manifest names), then syncs the directory.
fn remove_logs_before(fs: &dyn FileSystem, dir: &Path, first_live: u64) -> Result<(), Error> {
    let names = fs.list_dir(dir).map_err(io_err(dir))?;
    for name in names {
        if wal::parse_file_name(&name).is_some_and(|g| g < first_live) {
            let path = dir.join(&name);
            fs.remove(&path).map_err(io_err(&path))?;
        }
    }
    fs.sync_dir(dir).map_err(io_err(dir))
}

//! The durable store: write-ahead log, memtable, immutable segments, compaction, erasure.
//!
//! API contract (the CLI, the HTTP layer and the tests code against it; the bodies are the
//! engine's to write).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::source::{Chunk, SeriesSource, SourceError};
use crate::{Channel, Point};

/// How a store behaves; `Options::default()` is what `courbe` uses.
#[derive(Clone, Debug)]
pub struct Options {
    /// Points buffered in memory before a flush to a segment.
    pub memtable_max_points: usize,
    /// Time partitions whose end is older than this many days (before the newest point) are
    /// dropped by [`Store::apply_retention`]. `None`: keep everything (the default).
    pub retention_days: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            memtable_max_points: 8_000_000,
            retention_days: None,
        }
    }
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
    InvalidArgument(String),
    /// The store was closed or poisoned by an earlier I/O failure.
    Closed,
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
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::Closed => write!(f, "the store is closed after an earlier failure"),
        }
    }
}

impl std::error::Error for Error {}

/// Why a point was refused by [`Batch::push`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidPoint(pub String);

/// Points to ingest together; acknowledged as a whole.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    rows: Vec<(String, Channel, Point)>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds a point after checking the meter id (1 to 64 of `[0-9A-Za-z_.-]`) and the step
    /// (5, 10, 15, 30 or 60 minutes for curves; 1440 for `max_power`).
    pub fn push(
        &mut self,
        meter: &str,
        channel: Channel,
        point: Point,
    ) -> Result<(), InvalidPoint> {
        todo!(
            "engine helper: {meter} {channel:?} {point:?} {}",
            self.rows.len()
        )
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
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

/// An open data directory. `Send + Sync`: share it behind an `Arc`.
pub struct Store {
    _dir: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, replaying its log.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Store, Error> {
        todo!("engine helper: {} {options:?}", dir.as_ref().display())
    }

    /// Makes the batch durable (the call returns after fsync, shared with concurrent callers),
    /// then visible. A later value for the same meter, channel and `ts_utc` replaces the earlier.
    pub fn ingest(&self, batch: &Batch) -> Result<(), Error> {
        todo!("engine helper: {}", batch.len())
    }

    /// Writes the memtable to a segment.
    pub fn flush(&self) -> Result<(), Error> {
        todo!("engine helper")
    }

    /// Merges segments of the same time partition, dropping replaced and erased values.
    pub fn compact(&self) -> Result<(), Error> {
        todo!("engine helper")
    }

    /// Drops time partitions older than `Options::retention_days`.
    pub fn apply_retention(&self) -> Result<(), Error> {
        todo!("engine helper")
    }

    /// Erases the curve (`consumption` and `production`) of `meter`, all of it or
    /// `[from_utc, to_utc)`: invisible at once, physically gone from every file when it returns.
    pub fn erase(&self, meter: &str, range_utc: Option<(i64, i64)>) -> Result<EraseReport, Error> {
        todo!("engine helper: {meter} {range_utc:?}")
    }

    /// A consistent view for queries; never waits for a flush or a compaction.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        todo!("engine helper")
    }

    pub fn stats(&self) -> Stats {
        todo!("engine helper")
    }

    /// Checks every checksum of every file.
    pub fn verify(&self) -> Result<Stats, Error> {
        todo!("engine helper")
    }
}

/// An immutable view of the store at one instant.
pub struct Snapshot {
    _private: (),
}

impl SeriesSource for Snapshot {
    fn has_meter(&self, meter: &str) -> bool {
        todo!("engine helper: {meter}")
    }

    fn meters(&self, channel: Channel) -> Vec<String> {
        todo!("engine helper: {channel:?}")
    }

    fn chunks(
        &self,
        meter: &str,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Vec<Chunk<'_>>, SourceError> {
        todo!("engine helper: {meter} {channel:?} {from_utc} {to_utc}")
    }
}

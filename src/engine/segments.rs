//! Immutable segment files: one time partition (a Europe/Paris calendar month) each, written by a flush,
//! a compaction or an erasure, read in place through a read-only map.
//!
//! A block holds one series over at most one partition, so a segment's blocks never cross its
//! month; a block's coverage (`end_ts`) may reach at most one step (≤ 1 day) past the month end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use storage_format::block::{DecodedBlock, MAX_POINTS};
use storage_format::segment::{Segment, SegmentBuilder, SegmentMeta};

use super::fs::{FileSystem, MappedFile, WritableFile};
use super::manifest::{segment_file_name, SegmentEntry};
use super::memtable::EraseSpec;
use super::Error;
use crate::civil::{civil_from_days, days_from_civil};
use crate::{Channel, Point};

/// Bytes buffered before they are appended to the segment file.
const WRITE_CHUNK: usize = 1 << 20;

/// Earliest and latest `ts_utc` the engine accepts: 1970-01-01 to 9999-12-31 UTC (partition fits u32).
pub const MIN_TS: i64 = 0;
pub const MAX_TS: i64 = 253_402_300_799;

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

/// The partition of `ts_utc` (which must be in `MIN_TS..=MAX_TS`): the months since 1970-01 of its
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

pub fn corruption(path: &Path, e: storage_format::Error) -> Error {
    match e {
        storage_format::Error::Compatibility { .. } => Error::Compatibility {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        _ => Error::Corruption {
            path: path.to_path_buf(),
            offset: e.offset().unwrap_or(0),
            detail: e.to_string(),
        },
    }
}

/// A live segment file, mapped, its header and footer checked once.
pub struct SegmentFile {
    pub path: PathBuf,
    pub entry: SegmentEntry,
    /// Reads `_map`'s bytes; only handed out with the lifetime of `&self` (see `open`).
    segment: Segment<'static>,
    /// Owns the bytes `segment` reads: held, never read directly.
    _map: Arc<dyn MappedFile>,
}

impl SegmentFile {
    /// Maps the file and checks its header and footer (not its blocks or index).
    pub fn open(
        fs: &dyn FileSystem,
        dir: &Path,
        entry: SegmentEntry,
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
        Ok(SegmentFile {
            path,
            entry,
            segment: seg,
            _map: map,
        })
    }

    /// The segment read in place (header and footer were checked at open).
    pub fn segment(&self) -> Segment<'_> {
        self.segment
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

/// Writes segments, one per partition touched, with series added in key order.
pub struct SegmentWriter<'a> {
    fs: &'a dyn FileSystem,
    dir: &'a Path,
    open: BTreeMap<u32, Open>,
    /// `seq` of every segment written; `None`: a new one from `next_seq` per partition.
    fixed_seq: Option<u64>,
    next_seq: &'a AtomicU64,
    next_file_id: &'a AtomicU64,
}

impl<'a> SegmentWriter<'a> {
    pub fn new(
        fs: &'a dyn FileSystem,
        dir: &'a Path,
        fixed_seq: Option<u64>,
        next_seq: &'a AtomicU64,
        next_file_id: &'a AtomicU64,
    ) -> SegmentWriter<'a> {
        SegmentWriter {
            fs,
            dir,
            open: BTreeMap::new(),
            fixed_seq,
            next_seq,
            next_file_id,
        }
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Adds a resolved series (sorted, unique `ts_utc`), split into partitions and blocks.
    pub fn add_series(
        &mut self,
        meter: &str,
        channel: Channel,
        points: &[Point],
    ) -> Result<(), Error> {
        let mut rest = points;
        while let Some(first) = rest.first() {
            let p = partition_of(first.ts_utc);
            let end = partition_end(p);
            let n = rest
                .iter()
                .position(|x| x.ts_utc >= end)
                .unwrap_or(rest.len());
            let (part, tail) = rest.split_at(n);
            rest = tail;
            for block in part.chunks(MAX_POINTS) {
                self.add_block(p, meter, channel, block)?;
            }
        }
        Ok(())
    }

    fn add_block(
        &mut self,
        p: u32,
        meter: &str,
        channel: Channel,
        points: &[Point],
    ) -> Result<(), Error> {
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
        let Some(o) = self.open.get_mut(&p) else {
            return Ok(());
        };
        o.builder
            .add_block(meter, channel, points, &mut o.out)
            .map_err(|e| corruption(&o.path, e))?;
        if o.out.len() >= WRITE_CHUNK {
            o.file.write_all(&o.out).map_err(Self::io(&o.path))?;
            o.entry.len += o.out.len() as u64;
            o.out.clear();
        }
        Ok(())
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

/// Merges `inputs` (all of one partition, ordered by seq) series by series, newest wins, dropping
/// what `erase` covers, into `writer`. Returns the points erased. Memory: one series at a time.
pub fn merge_into(
    inputs: &[Arc<SegmentFile>],
    erase: Option<&EraseSpec>,
    writer: &mut SegmentWriter<'_>,
) -> Result<u64, Error> {
    let mut segs = Vec::with_capacity(inputs.len());
    for f in inputs {
        segs.push((f, f.segment()));
    }
    let mut iters: Vec<_> = segs
        .iter()
        .map(|(f, s)| (*f, s.series().peekable()))
        .collect();
    let mut scratch = DecodedBlock::default();
    let mut erased = 0u64;
    loop {
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
        let mut merged: Vec<(u64, Point)> = Vec::new();
        let mut meter = String::new();
        for (f, it) in iters.iter_mut() {
            let take = matches!(it.peek(), Some(Ok(s)) if s.meter.as_bytes() == meter_bytes && s.channel == channel);
            if !take {
                continue;
            }
            let Some(Ok(series)) = it.next() else {
                continue;
            };
            meter = series.meter.to_string();
            for b in &series.blocks {
                b.decode_into(&mut scratch)
                    .map_err(|e| corruption(&f.path, e))?;
                merged.extend(scratch.points().map(|p| (f.entry.seq, p)));
            }
        }
        merged.sort_by_key(|(seq, p)| (p.ts_utc, *seq));
        let mut points: Vec<Point> = Vec::with_capacity(merged.len());
        for (_, p) in merged {
            match points.last_mut() {
                Some(last) if last.ts_utc == p.ts_utc => *last = p,
                _ => points.push(p),
            }
        }
        if let Some(spec) = erase {
            let before = points.len();
            points.retain(|p| !spec.covers(&meter, channel, p.ts_utc));
            erased += (before - points.len()) as u64;
        }
        if !points.is_empty() {
            writer.add_series(&meter, channel, &points)?;
        }
    }
    Ok(erased)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(partition_of(MAX_TS), (10_000 - 1970) * 12);
        for p in [0, 1, 11, 12, 649, 1000, 96_347] {
            assert_eq!(partition_of(partition_start(p)), p);
            assert_eq!(partition_of(partition_end(p) - 1), p);
        }
    }
}

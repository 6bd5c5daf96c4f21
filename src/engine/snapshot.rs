//! Consistent read views: the live segments and the memtable as one instant saw them.
//!
//! A [`Version`] is immutable and replaced whole (copy on write) by flushes, compactions,
//! erasures and retention; a snapshot holds one `Arc<Version>` plus the highest batch sequence
//! number it may see in the memtable, so it never waits for, nor is changed by, later writes.
//! Segment files a newer version dropped stay mapped as long as an old snapshot holds them.

use std::sync::{Arc, OnceLock};

use storage_format::block::DecodedBlock;
use storage_format::segment::{BlockRef, Segment};

use super::memtable::Memtable;
use super::segments::{partition_meets, SegmentFile};
use super::Error;
use crate::source::{Chunk, SeriesSource, SourceError};
use crate::{Channel, Point};

/// The live segments (ordered by seq, oldest first) and the memtable (newer than all of them).
pub struct Version {
    pub segments: Vec<Arc<SegmentFile>>,
    pub memtable: Arc<Memtable>,
    /// Every meter id in the segments, built on first use (statistics).
    pub segment_meters: OnceLock<MeterSet>,
}

impl Version {
    pub fn new(segments: Vec<Arc<SegmentFile>>, memtable: Arc<Memtable>) -> Version {
        Version {
            segments,
            memtable,
            segment_meters: OnceLock::new(),
        }
    }
}

/// A sorted set of meter ids in one buffer (about 20 bytes a meter).
pub struct MeterSet {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl MeterSet {
    pub fn of_segments(segments: &[Arc<SegmentFile>]) -> MeterSet {
        let mut ids: Vec<&str> = Vec::new();
        for seg in segments {
            ids.extend(seg.segment().series().flatten().map(|s| s.meter));
        }
        ids.sort_unstable();
        ids.dedup();
        let mut set = MeterSet {
            bytes: Vec::with_capacity(ids.iter().map(|m| m.len()).sum()),
            ends: Vec::with_capacity(ids.len()),
        };
        for id in ids {
            set.bytes.extend_from_slice(id.as_bytes());
            set.ends.push(set.bytes.len() as u32);
        }
        set
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.ends.get(i - 1).map_or(0, |&e| e as usize)
        };
        let end = self.ends.get(i).map_or(start, |&e| e as usize);
        self.bytes.get(start..end).unwrap_or(&[])
    }

    pub fn contains(&self, meter: &str) -> bool {
        let (mut lo, mut hi) = (0usize, self.ends.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).cmp(meter.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }
}

/// An immutable view of the store at one instant.
pub struct Snapshot {
    pub(super) version: Arc<Version>,
    pub(super) visible_seq: u64,
}

fn source_error(e: Error) -> SourceError {
    SourceError {
        message: e.to_string(),
    }
}

enum Source<'a> {
    /// A block of the segment at this index in `version.segments`.
    Block(usize, BlockRef<'a>),
    Mem(Point),
}

struct Item<'a> {
    start: i64,
    end: i64,
    source: Source<'a>,
}

impl Snapshot {
    fn segments_meeting(&self, from: i64, to: i64) -> impl Iterator<Item = (usize, &SegmentFile)> {
        self.version
            .segments
            .iter()
            .enumerate()
            .filter(move |(_, s)| partition_meets(s.entry.partition, from, to))
            .map(|(i, s)| (i, &**s))
    }

    fn blocks_of<'a>(
        &'a self,
        seg: &'a SegmentFile,
        meter: &str,
        channel: Channel,
    ) -> Result<Vec<BlockRef<'a>>, Error> {
        let s: Segment<'a> = seg.segment();
        s.blocks(meter, channel)
            .map_err(|e| super::segments::corruption(&seg.path, e))
    }

    /// Resolved chunks; see [`SeriesSource::chunks`].
    pub fn chunks_checked(
        &self,
        meter: &str,
        channel: Channel,
        from: i64,
        to: i64,
    ) -> Result<Vec<Chunk<'_>>, Error> {
        Ok(self
            .chunks_with_origin(meter, channel, from, to)?
            .into_iter()
            .map(|(c, _)| c)
            .collect())
    }

    /// Resolved chunks, each block with the segment file it lies in.
    fn chunks_with_origin(
        &self,
        meter: &str,
        channel: Channel,
        from: i64,
        to: i64,
    ) -> Result<Vec<(Chunk<'_>, Option<&SegmentFile>)>, Error> {
        if from >= to {
            return Ok(Vec::new());
        }
        // 1. Blocks meeting [from, to); their coverage widens the window, so that every newer
        //    source overlapping one of them is seen below.
        let mut blocks: Vec<(usize, BlockRef<'_>)> = Vec::new();
        let (mut wfrom, mut wto) = (from, to);
        for (i, seg) in self.segments_meeting(from, to) {
            for b in self.blocks_of(seg, meter, channel)? {
                let (s, e) = (b.summary.first_ts, b.summary.end_ts);
                if s < to && e > from {
                    wfrom = wfrom.min(s);
                    wto = wto.max(e);
                }
                blocks.push((i, b));
            }
        }
        if (wfrom, wto) != (from, to) {
            let seen: Vec<usize> = blocks.iter().map(|(i, _)| *i).collect();
            for (i, seg) in self.segments_meeting(wfrom, wto) {
                if seen.contains(&i) {
                    continue;
                }
                for b in self.blocks_of(seg, meter, channel)? {
                    blocks.push((i, b));
                }
            }
        }
        let mut items: Vec<Item<'_>> = blocks
            .into_iter()
            .filter(|(_, b)| b.summary.first_ts < wto && b.summary.end_ts > wfrom)
            .map(|(i, b)| Item {
                start: b.summary.first_ts,
                end: b.summary.end_ts,
                source: Source::Block(i, b),
            })
            .collect();
        let mem = self.version.memtable.series(
            meter,
            channel,
            self.visible_seq,
            wfrom.saturating_sub(86_400),
            wto,
        );
        items.extend(mem.into_iter().filter_map(|p| {
            let end = p.ts_utc + 60 * i64::from(p.step_min);
            (end > wfrom).then_some(Item {
                start: p.ts_utc,
                end,
                source: Source::Mem(p),
            })
        }));
        items.sort_by_key(|it| (it.start, it.end));

        // 2. Clusters of overlapping items; a lone block is exact, the rest is merged.
        let mut out: Vec<(Chunk<'_>, Option<&SegmentFile>)> = Vec::new();
        let mut scratch = DecodedBlock::default();
        let mut cluster: Vec<Item<'_>> = Vec::new();
        let mut cluster_end = i64::MIN;
        let mut iter = items.into_iter().peekable();
        while let Some(item) = iter.next() {
            cluster_end = cluster_end.max(item.end);
            cluster.push(item);
            if iter.peek().is_some_and(|next| next.start < cluster_end) {
                continue;
            }
            let (start, end) = (
                cluster.first().map_or(0, |c| c.start),
                std::mem::replace(&mut cluster_end, i64::MIN),
            );
            let members = std::mem::take(&mut cluster);
            if !(start < to && end > from) {
                continue;
            }
            if let [Item {
                source: Source::Block(i, b),
                ..
            }] = members.as_slice()
            {
                out.push((
                    Chunk::Block(*b),
                    self.version.segments.get(*i).map(|s| &**s),
                ));
                continue;
            }
            let mut merged: Vec<(u64, Point)> = Vec::new();
            for m in members {
                match m.source {
                    Source::Block(i, b) => {
                        let seg = self.version.segments.get(i);
                        b.decode_into(&mut scratch).map_err(|e| match seg {
                            Some(s) => super::segments::corruption(&s.path, e),
                            None => Error::InvalidArgument(e.to_string()),
                        })?;
                        let seq = seg.map_or(0, |s| s.entry.seq);
                        merged.extend(
                            scratch
                                .points()
                                .filter(|p| from <= p.ts_utc && p.ts_utc < to)
                                .map(|p| (seq, p)),
                        );
                    }
                    Source::Mem(p) => {
                        if from <= p.ts_utc && p.ts_utc < to {
                            merged.push((u64::MAX, p));
                        }
                    }
                }
            }
            merged.sort_by_key(|(seq, p)| (p.ts_utc, *seq));
            let mut points: Vec<Point> = match out.pop() {
                Some((Chunk::Points(prev), _)) => prev,
                Some(other) => {
                    out.push(other);
                    Vec::new()
                }
                None => Vec::new(),
            };
            let merged_from = points.len();
            for (_, p) in merged {
                match points.get_mut(merged_from..).and_then(|s| s.last_mut()) {
                    Some(last) if last.ts_utc == p.ts_utc => *last = p,
                    _ => points.push(p),
                }
            }
            if !points.is_empty() {
                out.push((Chunk::Points(points), None));
            }
        }
        Ok(out)
    }

    /// The resolved points of a series in `[from, to)` (tests, export).
    pub fn points(
        &self,
        meter: &str,
        channel: Channel,
        from: i64,
        to: i64,
    ) -> Result<Vec<Point>, Error> {
        let mut out = Vec::new();
        let mut scratch = DecodedBlock::default();
        for (chunk, origin) in self.chunks_with_origin(meter, channel, from, to)? {
            match (&chunk, origin) {
                (Chunk::Block(b), Some(seg)) => b
                    .decode_into(&mut scratch)
                    .map_err(|e| super::segments::corruption(&seg.path, e))?,
                _ => chunk
                    .decode_into(&mut scratch)
                    .map_err(|e| Error::InvalidArgument(e.message))?,
            }
            out.extend(
                scratch
                    .points()
                    .filter(|p| from <= p.ts_utc && p.ts_utc < to),
            );
        }
        Ok(out)
    }

    /// Number of distinct meters with any point.
    pub fn meter_count(&self) -> u64 {
        let set = self
            .version
            .segment_meters
            .get_or_init(|| MeterSet::of_segments(&self.version.segments));
        let mut extra: Vec<Arc<str>> = Channel::ALL
            .iter()
            .flat_map(|&c| self.version.memtable.meters(c, self.visible_seq))
            .filter(|m| !set.contains(m))
            .collect();
        extra.sort_unstable();
        extra.dedup();
        (set.len() + extra.len()) as u64
    }
}

impl SeriesSource for Snapshot {
    fn has_meter(&self, meter: &str) -> bool {
        if self.version.memtable.has_meter(meter, self.visible_seq) {
            return true;
        }
        self.version.segments.iter().any(|seg| {
            Channel::ALL.iter().any(|&c| {
                // An unreadable index answers "yes": the query then reports the corruption.
                self.blocks_of(seg, meter, c)
                    .map_or(true, |b| !b.is_empty())
            })
        })
    }

    fn meters(&self, channel: Channel) -> Vec<String> {
        let mut ids: Vec<String> = self
            .version
            .memtable
            .meters(channel, self.visible_seq)
            .iter()
            .map(|m| m.to_string())
            .collect();
        for seg in &self.version.segments {
            let s = seg.segment();
            for series in s.series().flatten() {
                if series.channel == channel {
                    ids.push(series.meter.to_string());
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    fn chunks(
        &self,
        meter: &str,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Vec<Chunk<'_>>, SourceError> {
        self.chunks_checked(meter, channel, from_utc, to_utc)
            .map_err(source_error)
    }
}

//! Consistent read views: the live segments and the memtable as one instant saw them.
//!
//! A [`Version`] is immutable and replaced whole (copy on write) by flushes, compactions,
//! erasures and retention; a snapshot holds one `Arc<Version>` plus the highest batch sequence
//! number it may see in the memtable, so it never waits for, nor is changed by, later writes.
//! Segment files a newer version dropped stay mapped as long as an old snapshot holds them.

use std::sync::{Arc, OnceLock};

use storage_format::block::DecodedBlock;
use storage_format::segment::BlockRef;

use super::memtable::Memtable;
use super::segments::{partition_meets, SegmentFile};
use super::Error;
use crate::source::{resolve_newest_covering, Chunk, SeriesSource, SourceError, MAX_CURVE_STEP_S};
use crate::{Channel, Point};

/// The live segments (ordered by seq, oldest first), the memtable (newer than all of them), the
/// immutable memtable being flushed (between the two) and the register table.
pub struct Version {
    pub segments: Vec<Arc<SegmentFile>>,
    pub memtable: Arc<Memtable>,
    /// A full memtable handed to the background flush, until its segments are committed.
    pub immutable: Option<Arc<Memtable>>,
    /// Register names by register number, as the manifest holds them (only ever grows).
    pub registers: Arc<[Arc<str>]>,
    /// Every meter id in the segments, built on first use (statistics).
    pub segment_meters: OnceLock<MeterSet>,
}

impl Version {
    pub fn new(
        segments: Vec<Arc<SegmentFile>>,
        memtable: Arc<Memtable>,
        registers: Arc<[Arc<str>]>,
    ) -> Version {
        Version::with_immutable(segments, memtable, None, registers)
    }

    pub fn with_immutable(
        segments: Vec<Arc<SegmentFile>>,
        memtable: Arc<Memtable>,
        immutable: Option<Arc<Memtable>>,
        registers: Arc<[Arc<str>]>,
    ) -> Version {
        Version {
            segments,
            memtable,
            immutable,
            registers,
            segment_meters: OnceLock::new(),
        }
    }

    /// The immutable memtable (if any), then the memtable.
    pub fn memtables(&self) -> impl Iterator<Item = &Arc<Memtable>> + '_ {
        self.immutable.iter().chain(std::iter::once(&self.memtable))
    }

    /// The resolved points of a series in both memtables, visible at `visible_seq`, with
    /// `ts_utc` in `[from, to)`: the memtable's readings rank above the immutable one's.
    fn mem_series(
        &self,
        meter: &str,
        channel: Channel,
        visible_seq: u64,
        from: i64,
        to: i64,
    ) -> Vec<Point> {
        let newer = self.memtable.series(meter, channel, visible_seq, from, to);
        let Some(older) = self
            .immutable
            .as_ref()
            .map(|m| m.series(meter, channel, visible_seq, from, to))
            .filter(|o| !o.is_empty())
        else {
            return newer;
        };
        if newer.is_empty() {
            return older;
        }
        let mut ranked: Vec<((u64, u64), Point)> = older
            .into_iter()
            .enumerate()
            .map(|(i, p)| ((0, i as u64), p))
            .chain(
                newer
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| ((1, i as u64), p)),
            )
            .collect();
        ranked.sort_by_key(|(rank, p)| (p.ts_utc, *rank));
        resolve_newest_covering(channel, ranked)
    }
}

/// A sorted set of meter ids in one buffer, with the channels each has a series on (about 21
/// bytes a meter).
pub struct MeterSet {
    bytes: Vec<u8>,
    ends: Vec<u32>,
    /// Per meter, bit `channel.code()` set when some segment holds that series, for the named
    /// channels (codes 0..=3); bit [`ANY_INDEX`] when it holds an index channel.
    channels: Vec<u8>,
    /// `(meter position, index channel code)` of every index series, sorted.
    indexes: Vec<(u32, u8)>,
}

/// [`MeterSet`] mask bit of a meter with at least one index series.
const ANY_INDEX: u8 = 0x80;

/// A meter's mask bit of `channel` in a [`MeterSet`].
fn channel_bit(channel: Channel) -> u8 {
    if channel.is_index() {
        ANY_INDEX
    } else {
        1u8.checked_shl(u32::from(channel.code())).unwrap_or(0)
    }
}

impl MeterSet {
    pub fn of_segments(segments: &[Arc<SegmentFile>]) -> MeterSet {
        // Meters with their channel masks, sorted and unique: each segment's list (its series
        // come in key order) is merged into the running one, so memory stays a few times the
        // number of distinct meters.
        let mut ids: Vec<(&str, u8)> = Vec::new();
        // Index series (rare): their meters and codes, resolved to positions at the end.
        let mut index_series: Vec<(&str, u8)> = Vec::new();
        for seg in segments {
            let mut one: Vec<(&str, u8)> = Vec::new();
            for s in seg.segment().series().flatten() {
                let bit = channel_bit(s.channel);
                if s.channel.is_index() {
                    index_series.push((s.meter, s.channel.code()));
                }
                match one.last_mut() {
                    Some((m, mask)) if *m == s.meter => *mask |= bit,
                    _ => one.push((s.meter, bit)),
                }
            }
            ids = merge_masks(ids, one);
        }
        let mut set = MeterSet {
            bytes: Vec::with_capacity(ids.iter().map(|(m, _)| m.len()).sum()),
            ends: Vec::with_capacity(ids.len()),
            channels: Vec::with_capacity(ids.len()),
            indexes: Vec::new(),
        };
        for (id, mask) in &ids {
            set.bytes.extend_from_slice(id.as_bytes());
            set.ends.push(set.bytes.len() as u32);
            set.channels.push(*mask);
        }
        let mut indexes: Vec<(u32, u8)> = index_series
            .into_iter()
            .filter_map(|(m, code)| Some((set.position(m)? as u32, code)))
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        set.indexes = indexes;
        set
    }

    /// The meters with a series on `channel`, in id order.
    fn with_channel(&self, channel: Channel) -> Box<dyn Iterator<Item = &str> + '_> {
        if channel.is_index() {
            let code = channel.code();
            return Box::new(
                self.indexes
                    .iter()
                    .filter(move |(_, c)| *c == code)
                    .filter_map(|&(i, _)| std::str::from_utf8(self.get(i as usize)).ok()),
            );
        }
        let bit = channel_bit(channel);
        Box::new(
            (0..self.ends.len())
                .filter(move |&i| {
                    self.channels
                        .get(i)
                        .is_some_and(|m| bit != 0 && m & bit != 0)
                })
                .filter_map(|i| std::str::from_utf8(self.get(i)).ok()),
        )
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
        self.position(meter).is_some()
    }

    fn position(&self, meter: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.ends.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).cmp(meter.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }
}

/// The union of two sorted lists of unique meters, masks of a meter in both or-ed.
fn merge_masks<'a>(a: Vec<(&'a str, u8)>, b: Vec<(&'a str, u8)>) -> Vec<(&'a str, u8)> {
    if a.is_empty() {
        return b;
    }
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => match x.0.cmp(y.0) {
                std::cmp::Ordering::Less => a.next(),
                std::cmp::Ordering::Greater => b.next(),
                std::cmp::Ordering::Equal => {
                    let mask = y.1;
                    b.next();
                    a.next().map(|(m, k)| (m, k | mask))
                }
            },
            (Some(_), None) => a.next(),
            (None, _) => b.next(),
        };
        match next {
            Some(item) => out.push(item),
            None => return out,
        }
    }
}

/// An immutable view of the store at one instant.
pub struct Snapshot {
    pub(super) version: Arc<Version>,
    pub(super) visible_seq: u64,
    /// For the derived summary files (`bands.rs`).
    pub(super) fs: Arc<dyn super::fs::FileSystem>,
}

fn source_error(e: Error) -> SourceError {
    SourceError::of(e)
}

#[derive(Clone, Copy)]
enum Source<'a> {
    /// A block of the segment at this index in `version.segments`.
    Block(usize, BlockRef<'a>),
    /// A memtable reading and its place among them.
    Mem(u64, Point),
}

type Item<'a> = super::resolve::Span<Source<'a>>;

impl Snapshot {
    fn segments_meeting(&self, from: i64, to: i64) -> impl Iterator<Item = (usize, &SegmentFile)> {
        self.version
            .segments
            .iter()
            .enumerate()
            .filter(move |(_, s)| partition_meets(s.entry.partition, from, to))
            .map(|(i, s)| (i, &**s))
    }

    /// Resolved chunks (see [`SeriesSource::chunks`]): blocks no other source overlaps, and
    /// points merged by the newest-covering-reading rule ([`crate::source`] module docs).
    pub fn chunks_checked(
        &self,
        meter: &str,
        channel: Channel,
        from: i64,
        to: i64,
    ) -> Result<Vec<Chunk<'_>>, Error> {
        if from >= to {
            return Ok(Vec::new());
        }
        // 1. Blocks meeting [from, to) widened as `resolve_newest_covering` requires (every
        //    reading that decides a point starting in [from, to)); their coverage widens the
        //    window further, so that every newer source overlapping one of them is seen below.
        // Usually one block per series and segment.
        let (qfrom, qto) = (
            from.saturating_sub(2 * MAX_CURVE_STEP_S),
            to.saturating_add(MAX_CURVE_STEP_S),
        );
        let mut items: Vec<Item<'_>> =
            Vec::with_capacity(self.segments_meeting(qfrom, qto).count() + 1);
        let (mut wfrom, mut wto) = (qfrom, qto);
        // What a block claims (`source::claim`): its coverage for a curve, its instants for the
        // channels read at an instant, which a reading replaces only at the same instant.
        let block_end = |s: &storage_format::BlockSummary| {
            if channel.has_intervals() {
                s.end_ts
            } else {
                s.last_ts.saturating_add(1)
            }
        };
        for (i, seg) in self.segments_meeting(qfrom, qto) {
            seg.for_each_block(meter, channel, |b| {
                let (s, e) = (b.summary.first_ts, block_end(&b.summary));
                if s < qto && e > qfrom {
                    wfrom = wfrom.min(s);
                    wto = wto.max(e);
                }
                items.push(Item {
                    start: s,
                    end: e,
                    source: Source::Block(i, b),
                });
            })?;
        }
        if (wfrom, wto) != (qfrom, qto) {
            // The segments meeting [qfrom, qto) are a subset of those meeting the wider window.
            let read: Vec<usize> = self.segments_meeting(qfrom, qto).map(|(i, _)| i).collect();
            for (i, seg) in self.segments_meeting(wfrom, wto) {
                if read.contains(&i) {
                    continue;
                }
                seg.for_each_block(meter, channel, |b| {
                    items.push(Item {
                        start: b.summary.first_ts,
                        end: block_end(&b.summary),
                        source: Source::Block(i, b),
                    });
                })?;
            }
        }
        items.retain(|it| it.start < wto && it.end > wfrom);
        let mem = self.version.mem_series(
            meter,
            channel,
            self.visible_seq,
            wfrom.saturating_sub(86_400),
            wto,
        );
        items.extend(mem.into_iter().enumerate().filter_map(|(k, p)| {
            let end = crate::source::claim(channel, &p).1;
            (end > wfrom).then_some(Item {
                start: p.ts_utc,
                end,
                source: Source::Mem(k as u64, p),
            })
        }));
        items.sort_by_key(|it| (it.start, it.end));

        // 2. Clusters of overlapping items; a lone block is exact, the rest is resolved.
        let mut scratch = DecodedBlock::default();
        let resolved = super::resolve::resolve_clusters(
            channel,
            &items,
            from,
            to,
            |source| matches!(source, Source::Block(..)),
            |source, ranked| {
                match source {
                    // A segment's readings rank by its seq; the memtable's (already resolved,
                    // newer than every segment) above all of them.
                    Source::Block(i, b) => {
                        let seg = self.version.segments.get(*i);
                        b.decode_into(&mut scratch).map_err(|e| match seg {
                            Some(s) => super::segments::corruption(&s.path, e),
                            None => Error::InvalidArgument(e.to_string()),
                        })?;
                        let seq = seg.map_or(0, |s| s.entry.seq);
                        ranked.extend(scratch.points().map(|p| ((seq, 0), p)));
                    }
                    Source::Mem(order, p) => ranked.push(((u64::MAX, *order), *p)),
                }
                Ok(())
            },
        )?;
        Ok(resolved
            .into_iter()
            .map(|r| match r {
                super::resolve::Resolved::Whole(Source::Block(_, b)) => Chunk::Block(b),
                super::resolve::Resolved::Whole(Source::Mem(_, p)) => Chunk::Points(vec![p]),
                super::resolve::Resolved::Points(points) => Chunk::Points(points),
            })
            .collect())
    }

    /// The fleet sums of `channel` in `[from, to)` from the segments' rollups (format v5), when
    /// they are exactly what resolving every meter gives (see [`SeriesSource::fleet_sums`]).
    ///
    /// Each source (a segment, the memtable) holds resolved, disjoint readings per series, so
    /// resolving changes nothing where no two readings of different sources overlap: then each
    /// instant's sum is the sum of the sources' sums. That is checked on the readings that may
    /// decide a point starting in `[from, to)` (those starting in `[from - 2 h, to + 1 h)`, as in
    /// [`Self::chunks_checked`]) from the rollups' instants and longest steps; the memtable must
    /// claim no instant of `[from - 2 h, to)`, nor may the immutable memtable being flushed. `None` (read each meter) when a segment meeting the window
    /// keeps no sums of a channel it holds, when the memtable may claim an instant of the window,
    /// or when two sources may overlap.
    pub fn fleet_sums_checked(
        &self,
        channel: Channel,
        from: i64,
        to: i64,
    ) -> Result<Option<Vec<crate::source::InstantSum>>, Error> {
        use super::segments::RollupOf;
        if !channel.has_intervals() {
            return Ok(None);
        }
        if from >= to {
            return Ok(Some(Vec::new()));
        }
        let (wfrom, wto) = (
            from.saturating_sub(2 * MAX_CURVE_STEP_S),
            to.saturating_add(MAX_CURVE_STEP_S),
        );
        // The memtables (the one being flushed, if any, and the one taking writes) are newer
        // than every segment and hold no rollups: their readings change the points starting in
        // `[from, to)` only by claiming an instant before `to` (a newer reading starting at `to`
        // or later only shortens an earlier reading, whose point keeps its start and value).
        if self
            .version
            .memtables()
            .any(|m| m.may_claim(channel, wfrom, to))
        {
            return Ok(None);
        }
        let mut sources: Vec<&[storage_format::rollup::RollupEntry]> = Vec::new();
        // A segment's readings start in its partition (blocks never cross it).
        let starts_in_window = |seg: &&Arc<SegmentFile>| {
            let p = seg.entry.partition;
            super::segments::partition_start(p) < wto && super::segments::partition_end(p) > wfrom
        };
        for seg in self.version.segments.iter().filter(starts_in_window) {
            match seg.rollup(channel)? {
                RollupOf::NotHeld => {}
                RollupOf::Unknown => return Ok(None),
                RollupOf::Kept(entries) => {
                    let lo = entries.partition_point(|e| e.ts_utc < wfrom);
                    let hi = entries.partition_point(|e| e.ts_utc < wto);
                    if let Some(window) = entries.get(lo..hi).filter(|w| !w.is_empty()) {
                        sources.push(window);
                    }
                }
            }
        }
        // Every instant of every source in time order, tagged with its source.
        let mut all: Vec<(usize, &storage_format::rollup::RollupEntry)> = sources
            .iter()
            .enumerate()
            .flat_map(|(i, w)| w.iter().map(move |e| (i, e)))
            .collect();
        if sources.len() > 1 {
            all.sort_by_key(|(i, e)| (e.ts_utc, *i));
            // The latest claim end of each source so far: an instant of another source before
            // it may overlap.
            let mut ends = vec![i64::MIN; sources.len()];
            for &(i, e) in &all {
                let overlaps = ends
                    .iter()
                    .enumerate()
                    .any(|(j, &end)| j != i && end > e.ts_utc);
                if overlaps {
                    return Ok(None);
                }
                if let Some(end) = ends.get_mut(i) {
                    *end = (*end).max(e.end_ts());
                }
            }
        }
        let mut out: Vec<crate::source::InstantSum> = Vec::new();
        for (_, e) in all
            .into_iter()
            .filter(|(_, e)| from <= e.ts_utc && e.ts_utc < to)
        {
            match out.last_mut() {
                // Sources never share an instant here (they would overlap), kept for clarity.
                Some(last) if last.ts_utc == e.ts_utc => {
                    last.total += e.total;
                    last.meters += e.meters;
                }
                _ => out.push(crate::source::InstantSum {
                    ts_utc: e.ts_utc,
                    total: e.total,
                    meters: e.meters,
                }),
            }
        }
        Ok(Some(out))
    }

    /// `meter`'s clock-band summaries (`bands.rs`) of Paris days `[first_day, end_day)`, when
    /// they are what resolving its curve gives: in each partition of the range one segment
    /// holds its consumption (a lone segment's blocks are resolved and disjoint), no memtable
    /// holds a reading of it within an hour of the range, and no block of the partition before
    /// the range runs into it. `None`: read the curve (as the caller does for a day that is not
    /// [`usable`](super::bands::DayBands::usable)).
    pub fn day_bands_checked(
        &self,
        meter: &str,
        first_day: i64,
        end_day: i64,
    ) -> Result<Option<Vec<super::bands::DayBands>>, Error> {
        use super::bands;
        let channel = Channel::CONSUMPTION;
        if first_day >= end_day {
            return Ok(Some(Vec::new()));
        }
        let edges = |day: i64| {
            bands::day_edges(day).map_err(|e| Error::InvalidArgument(format!("day {day}: {e}")))
        };
        let (from, to) = (edges(first_day)?[0], edges(end_day - 1)?[5]);
        let near = self.version.mem_series(
            meter,
            channel,
            self.visible_seq,
            from.saturating_sub(MAX_CURVE_STEP_S),
            to.saturating_add(MAX_CURVE_STEP_S),
        );
        if !near.is_empty() {
            return Ok(None);
        }
        let partition_of_day = |day: i64| {
            let (y, m, _) = crate::civil::civil_from_days(day);
            u32::try_from((y - 1970) * 12 + (m - 1)).ok()
        };
        let (Some(p0), Some(p1)) = (partition_of_day(first_day), partition_of_day(end_day - 1))
        else {
            return Ok(None);
        };
        // The partition before the range: a block running past its end would be cut by the
        // range's readings, or cut them.
        if let Some(before) = p0.checked_sub(1) {
            for seg in self
                .version
                .segments
                .iter()
                .filter(|s| s.entry.partition == before)
            {
                let mut runs_in = false;
                seg.for_each_block(meter, channel, |b| runs_in |= b.summary.end_ts > from)?;
                if runs_in {
                    return Ok(None);
                }
            }
        }
        let mut out = Vec::with_capacity((end_day - first_day) as usize);
        for p in p0..=p1 {
            let mut holding = None;
            for seg in self
                .version
                .segments
                .iter()
                .filter(|s| s.entry.partition == p)
            {
                if seg.holds(meter, channel)? {
                    if holding.is_some() {
                        return Ok(None);
                    }
                    holding = Some(seg);
                }
            }
            let Some(seg) = holding else {
                return Ok(None);
            };
            let summaries = seg.bands(&*self.fs)?;
            let Some(days) = summaries.of(meter) else {
                return Ok(None);
            };
            let first = summaries.first_day();
            for (i, day) in days.into_iter().enumerate() {
                let d = first + i as i64;
                if first_day <= d && d < end_day {
                    out.push(day);
                }
            }
        }
        if out.len() != (end_day - first_day) as usize {
            return Ok(None);
        }
        Ok(Some(out))
    }

    /// Reads or builds the summaries of every segment of the partitions of Paris days
    /// `[first_day, end_day)`, one segment per task on rayon's pool.
    pub fn prepare_day_bands(&self, first_day: i64, end_day: i64) -> Result<(), Error> {
        use rayon::prelude::*;
        let (p0, p1) = match (first_day < end_day).then(|| {
            let p = |day: i64| {
                let (y, m, _) = crate::civil::civil_from_days(day);
                (y - 1970) * 12 + (m - 1)
            };
            (p(first_day), p(end_day - 1))
        }) {
            Some(x) => x,
            None => return Ok(()),
        };
        let fs = &*self.fs;
        self.version
            .segments
            .par_iter()
            .filter(|s| (p0..=p1).contains(&i64::from(s.entry.partition)))
            .try_for_each(|s| s.bands(fs).map(|_| ()))
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
        for chunk in self.chunks_checked(meter, channel, from, to)? {
            match &chunk {
                Chunk::Block(b) => b.decode_into(&mut scratch).map_err(|e| {
                    match self
                        .version
                        .segments
                        .iter()
                        .find(|s| s.holds_bytes(b.encoded()))
                    {
                        Some(seg) => super::segments::corruption(&seg.path, e),
                        None => Error::InvalidArgument(e.to_string()),
                    }
                })?,
                Chunk::Points(_) => chunk
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

    /// Every meter of the segments, built once per version.
    fn segment_meters(&self) -> &MeterSet {
        self.version
            .segment_meters
            .get_or_init(|| MeterSet::of_segments(&self.version.segments))
    }

    /// The name of the register of index channel `channel`, `None` for a channel that is no
    /// index or a register number not assigned.
    pub fn register_name(&self, channel: Channel) -> Option<Arc<str>> {
        let r = channel.register_number()?;
        self.version.registers.get(usize::from(r)).cloned()
    }

    /// The index channel of register `name`, `None` when the store has no such register.
    pub fn index_channel(&self, name: &str) -> Option<Channel> {
        let r = self.version.registers.iter().position(|n| &**n == name)?;
        Channel::index(u8::try_from(r).ok()?)
    }

    /// Every register of the store with its index channel, by register number.
    pub fn registers(&self) -> Vec<(Channel, Arc<str>)> {
        self.version
            .registers
            .iter()
            .enumerate()
            .filter_map(|(r, name)| Some((Channel::index(u8::try_from(r).ok()?)?, name.clone())))
            .collect()
    }

    /// The channels `meter` has a series on, in code order (index channels by register number).
    pub fn channels_of(&self, meter: &str) -> Result<Vec<Channel>, Error> {
        let mut out: Vec<Channel> = Vec::new();
        for mem in self.version.memtables() {
            for c in mem.channels_of(meter, self.visible_seq) {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        let candidates = Channel::NAMED
            .into_iter()
            .chain(self.registers().into_iter().map(|(c, _)| c));
        for c in candidates {
            if out.contains(&c) {
                continue;
            }
            for seg in &self.version.segments {
                if seg.holds(meter, c)? {
                    out.push(c);
                    break;
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Number of distinct meters with any point.
    pub fn meter_count(&self) -> u64 {
        let set = self.segment_meters();
        let mut extra: Vec<Arc<str>> = self
            .version
            .memtables()
            .flat_map(|mem| mem.all_meters(self.visible_seq))
            .filter(|m| !set.contains(m))
            .collect();
        extra.sort_unstable();
        extra.dedup();
        (set.len() + extra.len()) as u64
    }
}

impl SeriesSource for Snapshot {
    fn registers(&self) -> Vec<(Channel, Arc<str>)> {
        Snapshot::registers(self)
    }

    fn has_meter(&self, meter: &str) -> bool {
        // A price series id names no meter (`engine::is_price_series_namespace`).
        if super::is_price_series_namespace(meter) {
            return false;
        }
        if self
            .version
            .memtables()
            .any(|mem| mem.has_meter(meter, self.visible_seq))
        {
            return true;
        }
        self.version.segments.iter().any(|seg| {
            // An unreadable index answers "yes": the query then reports the corruption.
            seg.holds_meter(meter).unwrap_or(true)
        })
    }

    fn meters(&self, channel: Channel) -> Vec<String> {
        let mut ids: Vec<String> = self
            .version
            .memtables()
            .flat_map(|mem| mem.meters(channel, self.visible_seq))
            .map(|m| m.to_string())
            .collect();
        let set = self.segment_meters();
        ids.extend(set.with_channel(channel).map(str::to_string));
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

    fn fleet_sums(
        &self,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Option<Vec<crate::source::InstantSum>>, SourceError> {
        self.fleet_sums_checked(channel, from_utc, to_utc)
            .map_err(source_error)
    }

    fn day_bands(
        &self,
        meter: &str,
        first_day: i64,
        end_day: i64,
    ) -> Result<Option<Vec<super::bands::DayBands>>, SourceError> {
        self.day_bands_checked(meter, first_day, end_day)
            .map_err(source_error)
    }

    fn prepare_day_bands(&self, first_day: i64, end_day: i64) -> Result<(), SourceError> {
        Snapshot::prepare_day_bands(self, first_day, end_day).map_err(source_error)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::AtomicU64;

    use super::super::fs::testing::SimFs;
    use super::super::segments::SegmentWriter;
    use super::*;
    use crate::Quality;

    /// One segment per call, holding one point on each listed series.
    fn segment(
        fs: &SimFs,
        file_id: u64,
        ts_utc: i64,
        series: &[(&str, Channel)],
    ) -> Arc<SegmentFile> {
        let dir = Path::new("/meters");
        let (seq, id) = (AtomicU64::new(file_id), AtomicU64::new(file_id));
        let mut writer = SegmentWriter::new(fs, dir, None, &seq, &id, &[]);
        for &(meter, channel) in series {
            let point = Point {
                ts_utc,
                value: 1,
                step_min: 30,
                quality: Quality::Measured,
            };
            writer.add_series(meter, channel, &[point]).unwrap();
        }
        let written = writer.finish().unwrap();
        Arc::new(SegmentFile::open(fs, dir, written[0].entry, &[]).unwrap())
    }

    #[test]
    fn the_meter_set_of_segments_knows_each_meters_channels_across_segments() {
        const CONSUMPTION: Channel = Channel::CONSUMPTION;
        const PRODUCTION: Channel = Channel::PRODUCTION;
        const MAX_POWER: Channel = Channel::MAX_POWER;
        let fs = SimFs::new();
        let january = segment(
            &fs,
            1,
            1_704_067_200,
            &[("a", CONSUMPTION), ("a", PRODUCTION), ("c", CONSUMPTION)],
        );
        let february = segment(
            &fs,
            2,
            1_706_745_600,
            &[("b", MAX_POWER), ("c", MAX_POWER), ("d", PRODUCTION)],
        );
        let set = MeterSet::of_segments(&[january, february]);
        assert_eq!(set.len(), 4);
        let list = |c| set.with_channel(c).collect::<Vec<_>>();
        assert_eq!(list(CONSUMPTION), ["a", "c"]);
        assert_eq!(list(PRODUCTION), ["a", "d"]);
        assert_eq!(list(MAX_POWER), ["b", "c"]);
        assert!(set.contains("d"));
        assert!(!set.contains("e"));
    }
}

//! Clock-band summaries of a segment: per meter and Paris day, the consumption curve's energy in
//! the Europe/Paris clock bands the French regulated options cut days at, so that a fleet's offers
//! are priced without decoding curves (`query::cost::FleetOffer`).
//!
//! # What a day holds
//!
//! For the points of the consumption channel **starting** on Paris day `D` (a point belongs to the
//! day, and the period, holding its start), `value × seconds` (W·s, exact) of each point's
//! interval inside each band:
//!
//! | band | local clock |
//! |---|---|
//! | 0 | `[00:00, 01:00)` of `D` |
//! | 1 | `[01:00, 06:00)` of `D` (the DST changes at 02:00/03:00 fall inside it) |
//! | 2 | `[06:00, 07:00)` of `D` |
//! | 3 | `[07:00, 22:00)` of `D` |
//! | 4 | `[22:00, 24:00)` of `D` |
//! | 5 | `[00:00, 01:00)` of `D + 1` (the part of a point starting before midnight past it) |
//!
//! with the day's point count, their one step (`0` when the day mixes steps, when a point runs
//! past band 5, or when the partition's last day runs into the next partition, whose readings
//! could cut it: such a meter reads its curve), and whether the first point starts at the day's
//! first instant. With one step `s` over a range and the step in force before it `s` too (or
//! the range's first point at its start), a span of whole days expects `length / s` points as
//! the energy walk counts them (`query::energy`), so the walk's figures (energy, points,
//! expected points, register split) and every decision taken on them (complete, else the daily
//! fallback) come from the days alone. A meter with a block of the partition before the range
//! running into it reads its curve (`Snapshot::day_bands_checked`).
//!
//! # The file `seg-{file_id:020}.bands`
//!
//! Derived and rebuildable: built from the segment's blocks by the background builder once the
//! segment is committed (`summarizer.rs`, `Options::background_summaries`), else on first use;
//! written through a
//! temporary file and a rename (not synced: a torn file fails its checksum and is rebuilt), never
//! named by the MANIFEST, deleted with its segment (`remove_segments`) and, when its segment is
//! not live, as garbage at open and after an erasure. An erased meter's summaries therefore go
//! with the segment that held its data: the rewritten segment gets a new file id, and its
//! summaries are built from its own blocks.
//!
//! ```text
//! 0   8  magic "CRBBANDS"
//! 8   2  version, u16 LE (2; a file of version 1 is rebuilt)
//! 10  2  zero
//! 12  8  segment file id, u64 LE
//! 20  4  partition, u32 LE
//! 24  4  meters, u32 LE
//! 28  8  body length, u64 LE
//! 36  4  crc32 of the body, u32 LE
//! 40     body: per meter in increasing id order (the consumption series of the segment):
//!          varint id length, id bytes (UTF-8), varint record length, the record: for each
//!          day of the partition's month, a varint `head`:
//!            0        no point starts on the day;
//!            odd      the day has the point count and flags of the record's last day with
//!                     points; `head >> 1` is the zero mask;
//!            even     `head >> 1` is the point count, then varint flags
//!                     `step << 3 | first_at_start << 2 | unit`, then varint zero mask;
//!          then, for each band whose bit (`1 << band`) the zero mask does not set, a zigzag
//!          varint: the band's value minus the same band's value on the record's last day
//!          with points (0 before the first), the values being the W·s divided by 1 (`unit`
//!          0), 60 (1) or 60 × step (2: the sum of the values in W, what a curve without cut
//!          points gives), the largest that divides all six; a masked band is 0
//! ```
//!
//! Version 2 against 1 (per meter-day: count, flags and six values): the count and flags are
//! written only when they change and zero bands not at all (band 5 is 0 for curves on the
//! clock), and each value is a difference from the day before (households repeat their days);
//! measured in BENCHMARKS.md ("Offer comparison over a fleet").
//!
//! Bytes from disk never panic: every length is checked, and any fault (bad magic, version, file
//! id, partition, length, checksum, varint, order) makes the reader rebuild the summaries.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use storage_format::block::DecodedBlock;

use super::fs::{FileSystem, MappedFile};
use super::segments::SegmentFile;
use super::Error;
use crate::civil::{civil_from_days, days_from_civil};
use crate::Channel;

/// Bands of a day (see the module docs).
pub const BANDS: usize = 6;
/// Local hours where bands 0..=4 start, then the day's end.
pub const BAND_HOURS: [i8; 6] = [0, 1, 6, 7, 22, 24];

const MAGIC: &[u8; 8] = b"CRBBANDS";
const VERSION: u16 = 2;
const HEADER_LEN: usize = 40;
/// Series built between two looks at the builder's `stop`.
const STOP_EVERY: usize = 256;

/// One meter-day of clock-band energy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayBands {
    /// W·s per band.
    pub ws: [i64; BANDS],
    /// Points starting on the day.
    pub count: u32,
    /// Their one step, minutes; 0 when there are none or the day is not usable (module docs).
    pub step_min: u16,
    /// Whether a point starts at the day's first instant.
    pub first_at_start: bool,
}

impl DayBands {
    /// Whether the day's figures stand for its curve: no point, or one step.
    pub fn usable(&self) -> bool {
        self.count == 0 || self.step_min != 0
    }
}

/// The file name of segment `file_id`'s summaries.
pub fn file_name(file_id: u64) -> String {
    format!("seg-{file_id:020}.bands")
}

/// The segment file id a summary file name is for.
pub fn parse_file_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".bands")?
        .parse()
        .ok()
}

/// The UTC instants of local hours 0, 1, 6, 7, 22 of Paris day `day`, of the next day's
/// midnight and of its 01:00.
pub fn day_edges(day: i64) -> Result<[i64; BANDS + 1], String> {
    let tz = jiff::tz::TimeZone::get("Europe/Paris").map_err(|e| e.to_string())?;
    let at = |day: i64, hour: i8| -> Result<i64, String> {
        let (y, m, d) = civil_from_days(day);
        let (Ok(y), Ok(m), Ok(d)) = (i16::try_from(y), i8::try_from(m), i8::try_from(d)) else {
            return Err(format!("day {day} out of range"));
        };
        let date = jiff::civil::Date::new(y, m, d).map_err(|e| e.to_string())?;
        let zoned = date
            .at(hour, 0, 0, 0)
            .to_zoned(tz.clone())
            .map_err(|e| e.to_string())?;
        Ok(zoned.timestamp().as_second())
    };
    let mut out = [0i64; BANDS + 1];
    for (slot, &hour) in out.iter_mut().zip(&BAND_HOURS[..5]) {
        *slot = at(day, hour)?;
    }
    out[5] = at(day + 1, 0)?;
    out[6] = at(day + 1, 1)?;
    Ok(out)
}

/// Paris day numbers `[first, end)` of partition `p` (months since 1970-01).
pub fn partition_days(p: u32) -> (i64, i64) {
    let y = 1970 + i64::from(p / 12);
    let m = i64::from(p % 12) + 1;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (days_from_civil(y, m, 1), days_from_civil(ny, nm, 1))
}

/// Accumulates one series' points, in time order, into its days' bands.
pub struct DayBuilder {
    first_day: i64,
    edges: Vec<[i64; BANDS + 1]>,
    days: Vec<DayBands>,
    /// Per day: points, their one step (0: none yet, u16::MAX: mixed), first start, overflow.
    count: Vec<u64>,
    step: Vec<u16>,
    first_ts: Vec<i64>,
    overflow: Vec<bool>,
    cursor: usize,
}

impl DayBuilder {
    /// For Paris days `[first_day, end_day)`.
    pub fn new(first_day: i64, end_day: i64) -> Result<DayBuilder, String> {
        let n = usize::try_from(end_day - first_day).map_err(|_| "empty range".to_string())?;
        let edges = (first_day..end_day)
            .map(day_edges)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DayBuilder {
            first_day,
            edges,
            days: vec![DayBands::default(); n],
            count: vec![0; n],
            step: vec![0; n],
            first_ts: vec![i64::MAX; n],
            overflow: vec![false; n],
            cursor: 0,
        })
    }

    /// Starts another series.
    pub fn reset(&mut self) {
        self.days.fill(DayBands::default());
        self.count.fill(0);
        self.step.fill(0);
        self.first_ts.fill(i64::MAX);
        self.overflow.fill(false);
        self.cursor = 0;
    }

    /// Adds time-ordered columns (points outside the days are ignored).
    pub fn columns(&mut self, ts: &[i64], value: &[i32], step: &[u16]) {
        for ((&t, &v), &s) in ts.iter().zip(value).zip(step) {
            self.point(t, v, s);
        }
    }

    fn point(&mut self, t: i64, v: i32, s: u16) {
        while self.edges.get(self.cursor).is_some_and(|e| t >= e[5]) {
            self.cursor += 1;
        }
        let d = self.cursor;
        let Some(e) = self.edges.get(d) else { return };
        if t < e[0] {
            return;
        }
        let end = t + 60 * i64::from(s);
        let (v, ws) = (i64::from(v), &mut self.days[d].ws);
        for (k, slot) in ws.iter_mut().enumerate() {
            let overlap = end.min(e[k + 1]) - t.max(e[k]);
            if overlap > 0 {
                *slot += v * overlap;
            }
        }
        if end > e[6] {
            self.overflow[d] = true;
        }
        self.count[d] += 1;
        self.first_ts[d] = self.first_ts[d].min(t);
        self.step[d] = match self.step[d] {
            0 => s,
            x if x == s => s,
            _ => u16::MAX,
        };
    }

    /// The days of the series added since the last reset (module docs).
    pub fn finish(&mut self) -> Vec<DayBands> {
        let n = self.days.len();
        for d in 0..n {
            let e = &self.edges[d];
            let day = &mut self.days[d];
            day.count = u32::try_from(self.count[d]).unwrap_or(u32::MAX);
            day.first_at_start = self.first_ts[d] == e[0];
            let spills_out = d + 1 == n && day.ws[5] != 0;
            day.step_min = match self.step[d] {
                s if s == u16::MAX || self.overflow[d] || spills_out => 0,
                s => s,
            };
        }
        self.days.clone()
    }

    pub fn first_day(&self) -> i64 {
        self.first_day
    }
}

/// A segment's summaries, read from their file (mapped) or built.
pub struct SegmentBands {
    partition: u32,
    first_day: i64,
    days: usize,
    /// Meter id, its record `[start, end)` in `bytes()`.
    meters: Vec<(Box<str>, usize, usize)>,
    bytes: Bytes,
}

enum Bytes {
    Mapped(Arc<dyn MappedFile>),
    Owned(Vec<u8>),
}

impl SegmentBands {
    fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(m) => m.bytes(),
            Bytes::Owned(v) => v,
        }
    }

    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Paris day number of the first day.
    pub fn first_day(&self) -> i64 {
        self.first_day
    }

    /// `meter`'s days, one per day of the partition; `None` when the segment holds no
    /// consumption of it.
    pub fn of(&self, meter: &str) -> Option<Vec<DayBands>> {
        let i = self
            .meters
            .binary_search_by(|(m, ..)| (**m).cmp(meter))
            .ok()?;
        let &(_, start, end) = self.meters.get(i)?;
        let mut r = Reader {
            bytes: self.bytes().get(start..end)?,
            at: 0,
        };
        let mut out = Vec::with_capacity(self.days);
        let mut prev = Prev::default();
        for _ in 0..self.days {
            out.push(r.day(&mut prev).ok()?);
        }
        Some(out)
    }

    /// Builds the summaries of `seg`'s consumption series by decoding their blocks; `None`
    /// when `stop` said so (asked between series).
    pub fn build(
        seg: &SegmentFile,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<SegmentBands>, Error> {
        let partition = seg.entry.partition;
        let (first_day, end_day) = partition_days(partition);
        let bad = |detail: String| Error::Corruption {
            path: seg.path.clone(),
            offset: 0,
            detail,
        };
        let mut builder = DayBuilder::new(first_day, end_day).map_err(bad)?;
        let mut scratch = DecodedBlock::default();
        let mut body = Vec::new();
        let mut meters: Vec<(Box<str>, usize, usize)> = Vec::new();
        let mut record = Vec::new();
        for (i, series) in seg.segment().series().enumerate() {
            if i % STOP_EVERY == 0 && stop() {
                return Ok(None);
            }
            let series = series.map_err(|e| super::segments::corruption(&seg.path, e))?;
            if series.channel != Channel::CONSUMPTION {
                continue;
            }
            builder.reset();
            for block in &series.blocks {
                block
                    .decode_into(&mut scratch)
                    .map_err(|e| super::segments::corruption(&seg.path, e))?;
                builder.columns(&scratch.ts_utc, &scratch.value, &scratch.step_min);
            }
            let days = builder.finish();
            put_varint(&mut body, series.meter.len() as u64);
            body.extend_from_slice(series.meter.as_bytes());
            record.clear();
            let mut prev = Prev::default();
            for day in &days {
                put_day(&mut record, day, &mut prev);
            }
            put_varint(&mut body, record.len() as u64);
            let start = body.len();
            body.extend_from_slice(&record);
            meters.push((Box::from(series.meter), start, body.len()));
        }
        meters.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Some(SegmentBands {
            partition,
            first_day,
            days: (end_day - first_day) as usize,
            meters,
            bytes: Bytes::Owned(body),
        }))
    }

    /// The file's header for segment `file_id` (the body follows it).
    fn header(&self, file_id: u64) -> Vec<u8> {
        let body = self.bytes();
        let mut out = Vec::with_capacity(HEADER_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&file_id.to_le_bytes());
        out.extend_from_slice(&self.partition.to_le_bytes());
        out.extend_from_slice(&(self.meters.len() as u32).to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        out
    }

    /// Reads a summary file written for segment `file_id` of `partition`.
    pub fn decode(
        map: Arc<dyn MappedFile>,
        file_id: u64,
        partition: u32,
    ) -> Result<SegmentBands, String> {
        let (written_for, meters) = parse(map.bytes())?;
        if written_for != (file_id, partition) {
            return Err("written for another segment".into());
        }
        let (first_day, end_day) = partition_days(partition);
        Ok(SegmentBands {
            partition,
            first_day,
            days: (end_day - first_day) as usize,
            meters,
            bytes: Bytes::Mapped(map),
        })
    }
}

/// The segment file id and partition a summary file's header names, and every meter id with
/// its record `[start, end)` in `bytes`, the header and checksum checked (records are read
/// when asked for: [`SegmentBands::of`]; one that does not read back is no summary).
#[allow(clippy::type_complexity)]
fn parse(bytes: &[u8]) -> Result<((u64, u32), Vec<(Box<str>, usize, usize)>), String> {
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| format!("{} bytes, shorter than the header", bytes.len()))?;
    let u16_at = |o: usize| u16::from_le_bytes([header[o], header[o + 1]]);
    let u32_at =
        |o: usize| u32::from_le_bytes([header[o], header[o + 1], header[o + 2], header[o + 3]]);
    let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
    if &header[..8] != MAGIC {
        return Err("bad magic".into());
    }
    if u16_at(8) != VERSION || u16_at(10) != 0 {
        return Err(format!("version {}", u16_at(8)));
    }
    let count = u32_at(24) as usize;
    let body_len = usize::try_from(u64_at(28)).map_err(|_| "body length".to_string())?;
    let body = bytes.get(HEADER_LEN..).unwrap_or_default();
    if body.len() != body_len {
        return Err(format!(
            "body is {} bytes, the header says {body_len}",
            body.len()
        ));
    }
    if crc32fast::hash(body) != u32_at(36) {
        return Err("checksum mismatch".into());
    }
    // A meter count is bounded by the body.
    let mut meters = Vec::with_capacity(count.min(body.len() / 2));
    let mut r = Reader { bytes: body, at: 0 };
    for _ in 0..count {
        let len = usize::try_from(r.varint()?).map_err(|_| "id length".to_string())?;
        let id = r.take(len)?;
        let id = std::str::from_utf8(id).map_err(|_| "meter id is not UTF-8".to_string())?;
        let len = usize::try_from(r.varint()?).map_err(|_| "record length".to_string())?;
        let start = HEADER_LEN + r.at;
        r.take(len)?;
        if meters
            .last()
            .is_some_and(|(m, ..): &(Box<str>, usize, usize)| **m >= *id)
        {
            return Err("meters out of order".into());
        }
        meters.push((Box::from(id), start, HEADER_LEN + r.at));
    }
    if r.at != body.len() {
        return Err("bytes after the last meter".into());
    }
    Ok(((u64_at(12), u32_at(20)), meters))
}

/// Checks a summary file's bytes whole (header, checksum, every meter's days); returns the
/// segment file id and the partition it was written for.
pub fn check_file(bytes: &[u8]) -> Result<(u64, u32), String> {
    let ((file_id, partition), meters) = parse(bytes)?;
    let (first_day, end_day) = partition_days(partition);
    for (id, start, end) in meters {
        let mut r = Reader {
            bytes: bytes.get(start..end).ok_or("record out of the file")?,
            at: 0,
        };
        let mut prev = Prev::default();
        for _ in first_day..end_day {
            r.day(&mut prev).map_err(|e| format!("meter {id}: {e}"))?;
        }
        if r.at != end - start {
            return Err(format!("meter {id}: bytes after its last day"));
        }
    }
    Ok((file_id, partition))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The divisor of a unit code of a day record.
fn unit_s(unit: u64, step_min: u16) -> i64 {
    match unit {
        0 => 1,
        1 => 60,
        _ => 60 * i64::from(step_min.max(1)),
    }
}

/// What a record's next day is written against: the shape (count and flags) and the values
/// (in their units) of the last day with points.
#[derive(Clone, Copy, Debug, Default)]
struct Prev {
    shape: Option<(u32, u64)>,
    values: [i64; BANDS],
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

fn put_day(out: &mut Vec<u8>, day: &DayBands, prev: &mut Prev) {
    if day.count == 0 {
        put_varint(out, 0);
        return;
    }
    let unit = [2, 1, 0]
        .into_iter()
        .find(|&u| {
            let d = unit_s(u, day.step_min);
            day.ws.iter().all(|w| w % d == 0)
        })
        .unwrap_or(0);
    let flags = (u64::from(day.step_min) << 3) | (u64::from(day.first_at_start) << 2) | unit;
    let d = unit_s(unit, day.step_min);
    let values = day.ws.map(|w| w / d);
    let zeros = values
        .iter()
        .enumerate()
        .filter(|(_, v)| **v == 0)
        .fold(0u64, |m, (k, _)| m | 1 << k);
    let shape = (day.count, flags);
    if prev.shape == Some(shape) {
        put_varint(out, (zeros << 1) | 1);
    } else {
        put_varint(out, u64::from(day.count) << 1);
        put_varint(out, flags);
        put_varint(out, zeros);
        prev.shape = Some(shape);
    }
    for (k, (&v, last)) in values.iter().zip(&prev.values).enumerate() {
        if zeros & (1 << k) == 0 {
            put_varint(out, zigzag(v.wrapping_sub(*last)));
        }
    }
    prev.values = values;
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .bytes
                .get(self.at)
                .ok_or_else(|| "truncated varint".to_string())?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).ok_or("length overflow")?;
        let s = self.bytes.get(self.at..end).ok_or("truncated id")?;
        self.at = end;
        Ok(s)
    }

    fn day(&mut self, prev: &mut Prev) -> Result<DayBands, String> {
        let head = self.varint()?;
        if head == 0 {
            return Ok(DayBands::default());
        }
        let ((count, flags), zeros) = if head & 1 == 1 {
            let shape = prev.shape.ok_or("a day like the last, and no day before")?;
            (shape, head >> 1)
        } else {
            let count = u32::try_from(head >> 1).map_err(|_| "day count".to_string())?;
            let shape = (count, self.varint()?);
            prev.shape = Some(shape);
            (shape, self.varint()?)
        };
        if zeros >= 1 << BANDS {
            return Err(format!("zero bands {zeros:#x}"));
        }
        let mut day = DayBands {
            count,
            step_min: u16::try_from(flags >> 3).map_err(|_| format!("day flags {flags}"))?,
            first_at_start: flags & 4 != 0,
            ..DayBands::default()
        };
        if flags & 3 == 3 {
            return Err(format!("day flags {flags}"));
        }
        let d = unit_s(flags & 3, day.step_min);
        for (k, (w, last)) in day.ws.iter_mut().zip(prev.values.iter_mut()).enumerate() {
            let v = if zeros & (1 << k) != 0 {
                0
            } else {
                last.checked_add(unzigzag(self.varint()?))
                    .ok_or("value overflow")?
            };
            *last = v;
            *w = v.checked_mul(d).ok_or("value overflow")?;
        }
        Ok(day)
    }
}

/// The path of segment `seg`'s summary file.
pub fn path_of(seg: &SegmentFile) -> PathBuf {
    seg.path
        .parent()
        .unwrap_or_else(|| Path::new(""))
        .join(file_name(seg.entry.file_id))
}

/// `seg`'s summaries read from their file, `None` when there is none or it does not read back
/// whole (a damaged file is logged: it is rebuilt, never trusted).
pub fn read_file(fs: &dyn FileSystem, seg: &SegmentFile) -> Option<SegmentBands> {
    let path = path_of(seg);
    let map = fs.map(&path).ok()?;
    match SegmentBands::decode(map, seg.entry.file_id, seg.entry.partition) {
        Ok(b) => Some(b),
        Err(why) => {
            tracing::warn!(path = %path.display(), %why, "rebuilding clock-band summaries");
            None
        }
    }
}

/// Writes `built` as `seg`'s summary file (through a temporary file and a rename, not synced)
/// unless the segment was removed meanwhile; a failed write only costs a rebuild next time.
/// Whether the file was written.
pub fn write_file(fs: &dyn FileSystem, seg: &SegmentFile, built: &SegmentBands) -> bool {
    let path = path_of(seg);
    let header = built.header(seg.entry.file_id);
    let mut written = false;
    seg.unless_removed(|| {
        let tmp = path.with_extension("bands.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = fs.create(&tmp)?;
            f.write_all(&header)?;
            f.write_all(built.bytes())?;
            drop(f);
            fs.rename(&tmp, &path)
        };
        match write() {
            Ok(()) => written = true,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "clock-band summaries not written");
                let _ = fs.remove(&tmp);
            }
        }
    });
    written
}

/// `seg`'s summaries: its file when it reads back whole, else built from its blocks and written.
pub fn load_or_build(fs: &dyn FileSystem, seg: &SegmentFile) -> Result<SegmentBands, Error> {
    if let Some(b) = read_file(fs, seg) {
        return Ok(b);
    }
    let built = SegmentBands::build(seg, &|| false)?.ok_or(Error::Closed)?;
    write_file(fs, seg, &built);
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spring_forward_day_has_23_hours_and_its_bands_their_clock_edges() {
        // 2024-03-31: 02:00 -> 03:00.
        let day = days_from_civil(2024, 3, 31);
        let e = day_edges(day).unwrap();
        assert_eq!(e[5] - e[0], 23 * 3600);
        assert_eq!(e[2] - e[1], 4 * 3600);
        assert_eq!(e[6] - e[5], 3600);
        let oct = days_from_civil(2024, 10, 27);
        let e = day_edges(oct).unwrap();
        assert_eq!(e[5] - e[0], 25 * 3600);
        assert_eq!(e[2] - e[1], 6 * 3600);
    }

    #[test]
    fn day_records_read_back_and_bad_bytes_are_refused_without_panicking() {
        let mut body = Vec::new();
        let day = |ws, count, step_min| DayBands {
            ws,
            count,
            step_min,
            first_at_start: true,
        };
        let days = [
            day([60, -120, 0, 7_200_000, 3, 0], 48, 30),
            day([60, 120, 0, 7_200_000, 180, 0], 48, 0),
            DayBands::default(),
            day([1_800, 9_000, 1_800, 27_000, 3_600, 0], 48, 30),
            // Like the last day: its shape is not written again; a band back from zero.
            day([3_600, 9_000, 0, 27_000, 3_600, 1_800], 48, 30),
            day([3_600, 9_000, 0, 27_000, 3_600, 1_800], 48, 30),
            // A spring-forward day's 46 half-hours.
            day([3_600, 5_400, 1_800, 36_000, 1_800, 0], 46, 30),
            day([i64::MAX / 4, i64::MIN / 4, 0, 0, 0, 1], 3, 60),
        ];
        let mut prev = Prev::default();
        for d in &days {
            put_day(&mut body, d, &mut prev);
        }
        let mut r = Reader {
            bytes: &body,
            at: 0,
        };
        let mut prev = Prev::default();
        for d in &days {
            assert_eq!(r.day(&mut prev).unwrap(), *d);
        }
        assert_eq!(r.at, body.len());
        for cut in 0..body.len() {
            let mut r = Reader {
                bytes: &body[..cut],
                at: 0,
            };
            let mut prev = Prev::default();
            assert!(
                (0..days.len())
                    .map(|_| r.day(&mut prev))
                    .any(|d| d.is_err()),
                "{cut}"
            );
        }
        for bad in [&[0xff; 12][..], &[0x01], &[0x02, 0xf3, 0x01, 0x00]] {
            let mut r = Reader { bytes: bad, at: 0 };
            assert!(r.day(&mut Prev::default()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn summary_file_names_round_trip_and_differ_from_segment_names() {
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name("seg-00000000000000000042.seg"), None);
        assert_eq!(
            super::super::manifest::parse_segment_file_name(&file_name(42)),
            None
        );
    }
}

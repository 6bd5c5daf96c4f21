//! The in-memory buffer of acknowledged points not yet in a segment.
//!
//! One entry per meter (its id interned once) with one compact vector per channel; points are
//! appended as they arrive, with the sequence number of their batch, and resolved (sorted by time,
//! the newest covering reading winning: [`crate::source`] module docs) when read or flushed. A snapshot reads only the points whose
//! sequence number it can see, so inserts never change what an existing snapshot returns.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::Batch;
use crate::source::MAX_CURVE_STEP_S;
use crate::{Channel, Point, Quality};

#[derive(Clone, Copy, Debug)]
struct MemPoint {
    ts_utc: i64,
    seq: u64,
    value: i32,
    step_min: u16,
    quality: Quality,
}

struct MemMeter {
    id: Arc<str>,
    /// The curve-era channels (codes 0..=2), inline: the ingest path of curves indexes them.
    channels: [Vec<MemPoint>; 3],
    /// Every other channel (daily energy, indexes: a point a day each), by ascending code.
    others: Vec<(Channel, Vec<MemPoint>)>,
}

impl MemMeter {
    fn series(&self, channel: Channel) -> Option<&Vec<MemPoint>> {
        match self.channels.get(usize::from(channel.code())) {
            Some(s) => Some(s),
            None => self
                .others
                .iter()
                .find(|(c, _)| *c == channel)
                .map(|(_, s)| s),
        }
    }

    fn series_mut(&mut self, channel: Channel) -> &mut Vec<MemPoint> {
        let code = usize::from(channel.code());
        if code < self.channels.len() {
            return &mut self.channels[code];
        }
        let at = match self.others.binary_search_by_key(&channel, |(c, _)| *c) {
            Ok(at) => at,
            Err(at) => {
                self.others.insert(at, (channel, Vec::new()));
                at
            }
        };
        &mut self.others[at].1
    }

    /// Every non-empty series, in code order.
    fn all_series(&self) -> impl Iterator<Item = (Channel, &Vec<MemPoint>)> + '_ {
        Channel::ALL
            .into_iter()
            .zip(self.channels.iter())
            .chain(self.others.iter().map(|(c, s)| (*c, s)))
            .filter(|(_, s)| !s.is_empty())
    }
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<Arc<str>, u32>,
    meters: Vec<MemMeter>,
    points: usize,
    newest_ts: Option<i64>,
}

/// Erasure of `meter`'s curve (`consumption` and `production`; daily energy, indexes and
/// `max_power` stay), all of it or `[from, to)`.
#[derive(Clone, Debug)]
pub struct EraseSpec {
    pub meter: String,
    pub range_utc: Option<(i64, i64)>,
}

impl EraseSpec {
    /// Whether the point of `(meter, channel)` at `ts` is erased.
    pub fn covers(&self, meter: &str, channel: Channel, ts: i64) -> bool {
        channel.is_curve()
            && meter == self.meter
            && self
                .range_utc
                .is_none_or(|(from, to)| from <= ts && ts < to)
    }
}

#[derive(Default)]
pub struct Memtable {
    inner: RwLock<Inner>,
}

/// The readings of `pts` (in insertion order) that the newest-covering-reading rule keeps
/// ([`crate::source`] module docs), sorted by time: ranked by sequence number, then by
/// insertion.
fn resolve<'a>(channel: Channel, pts: impl Iterator<Item = (usize, &'a MemPoint)>) -> Vec<Point> {
    let ranked: Vec<((u64, u64), Point)> = pts
        .map(|(i, p)| {
            (
                (p.seq, i as u64),
                Point {
                    ts_utc: p.ts_utc,
                    value: p.value,
                    step_min: p.step_min,
                    quality: p.quality,
                },
            )
        })
        .collect();
    let mut ranked = ranked;
    ranked.sort_by_key(|(rank, p)| (p.ts_utc, *rank));
    crate::source::resolve_newest_covering(channel, ranked)
}

impl Memtable {
    pub fn new() -> Memtable {
        Memtable::default()
    }

    /// Adds every point of `batch` with sequence number `seq`: one hash lookup per distinct
    /// meter of the batch.
    pub fn insert(&self, seq: u64, batch: &Batch) {
        let mut inner = self.inner.write();
        let inner = &mut *inner;
        let mut index = Vec::with_capacity(batch.meters.len());
        for id in &batch.meters {
            let i = match inner.by_id.get(id.as_str()) {
                Some(&i) => i,
                None => {
                    let i = inner.meters.len() as u32;
                    let id: Arc<str> = Arc::from(id.as_str());
                    inner.by_id.insert(id.clone(), i);
                    inner.meters.push(MemMeter {
                        id,
                        channels: Default::default(),
                        others: Vec::new(),
                    });
                    i
                }
            };
            index.push(i);
        }
        let mut start = 0usize;
        let mut newest = inner.newest_ts.unwrap_or(i64::MIN);
        for run in &batch.runs {
            let end = start + run.len as usize;
            let pts = batch.points.get(start..end).unwrap_or(&[]);
            start = end;
            let Some(meter) = index
                .get(run.meter as usize)
                .and_then(|&i| inner.meters.get_mut(i as usize))
            else {
                continue;
            };
            let series = meter.series_mut(run.channel);
            series.extend(pts.iter().map(|p| {
                newest = newest.max(p.ts_utc);
                MemPoint {
                    ts_utc: p.ts_utc,
                    seq,
                    value: p.value,
                    step_min: p.step_min,
                    quality: p.quality,
                }
            }));
            inner.points += pts.len();
        }
        if newest != i64::MIN {
            inner.newest_ts = Some(newest);
        }
    }

    /// Points held, duplicates included.
    pub fn points(&self) -> usize {
        self.inner.read().points
    }

    pub fn meter_count(&self) -> usize {
        self.inner.read().meters.len()
    }

    pub fn newest_ts(&self) -> Option<i64> {
        self.inner.read().newest_ts
    }

    /// The resolved points of a series visible at `visible_seq` with `ts_utc` in `[from, to)`.
    pub fn series(
        &self,
        meter: &str,
        channel: Channel,
        visible_seq: u64,
        from: i64,
        to: i64,
    ) -> Vec<Point> {
        let inner = self.inner.read();
        let Some(m) = inner
            .by_id
            .get(meter)
            .and_then(|&i| inner.meters.get(i as usize))
        else {
            return Vec::new();
        };
        let Some(series) = m.series(channel) else {
            return Vec::new();
        };
        // Every reading that may overlap one covering an instant of a point starting in
        // `[from, to)` (module docs of `crate::source`).
        let (wide_from, wide_to) = (
            from.saturating_sub(2 * MAX_CURVE_STEP_S),
            to.saturating_add(MAX_CURVE_STEP_S),
        );
        let mut out = resolve(
            channel,
            series.iter().enumerate().filter(|(_, p)| {
                p.seq <= visible_seq && wide_from <= p.ts_utc && p.ts_utc < wide_to
            }),
        );
        drop(inner);
        out.retain(|p| from <= p.ts_utc && p.ts_utc < to);
        out
    }

    pub fn has_meter(&self, meter: &str, visible_seq: u64) -> bool {
        let inner = self.inner.read();
        inner
            .by_id
            .get(meter)
            .and_then(|&i| inner.meters.get(i as usize))
            .is_some_and(|m| {
                m.all_series()
                    .any(|(_, c)| c.iter().any(|p| p.seq <= visible_seq))
            })
    }

    /// Ids of the meters with a visible point on `channel`, unsorted.
    pub fn meters(&self, channel: Channel, visible_seq: u64) -> Vec<Arc<str>> {
        let inner = self.inner.read();
        inner
            .meters
            .iter()
            .filter(|m| {
                m.series(channel)
                    .is_some_and(|c| c.iter().any(|p| p.seq <= visible_seq))
            })
            .map(|m| m.id.clone())
            .collect()
    }

    /// Ids of the meters with a visible point on any channel, unsorted.
    pub fn all_meters(&self, visible_seq: u64) -> Vec<Arc<str>> {
        let inner = self.inner.read();
        inner
            .meters
            .iter()
            .filter(|m| {
                m.all_series()
                    .any(|(_, c)| c.iter().any(|p| p.seq <= visible_seq))
            })
            .map(|m| m.id.clone())
            .collect()
    }

    /// The channels of `meter` with a visible point, in code order.
    pub fn channels_of(&self, meter: &str, visible_seq: u64) -> Vec<Channel> {
        let inner = self.inner.read();
        inner
            .by_id
            .get(meter)
            .and_then(|&i| inner.meters.get(i as usize))
            .map(|m| {
                m.all_series()
                    .filter(|(_, s)| s.iter().any(|p| p.seq <= visible_seq))
                    .map(|(c, _)| c)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every series in segment key order (meter bytes, then channel), resolved, without the
    /// points `erase` covers. Called on a memtable no writer touches any more.
    pub fn for_each_series(
        &self,
        erase: Option<&EraseSpec>,
        mut f: impl FnMut(&str, Channel, Vec<Point>) -> Result<(), super::Error>,
    ) -> Result<u64, super::Error> {
        let inner = self.inner.read();
        let mut order: Vec<&MemMeter> = inner.meters.iter().collect();
        order.sort_unstable_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
        let mut erased = 0u64;
        for m in order {
            for (channel, series) in m.all_series() {
                let mut pts = resolve(channel, series.iter().enumerate());
                if let Some(spec) = erase {
                    let before = pts.len();
                    pts.retain(|p| !spec.covers(&m.id, channel, p.ts_utc));
                    erased += (before - pts.len()) as u64;
                }
                if !pts.is_empty() {
                    f(&m.id, channel, pts)?;
                }
            }
        }
        Ok(erased)
    }

    /// Approximate heap bytes held: `(total, in point vectors)`. The rest is the per-meter
    /// overhead: the interned id, the three channel vectors, the map entry.
    pub fn heap_bytes(&self) -> (usize, usize) {
        let inner = self.inner.read();
        let mut points = 0usize;
        let mut ids = 0usize;
        for m in &inner.meters {
            points += m
                .channels
                .iter()
                .chain(m.others.iter().map(|(_, s)| s))
                .map(|c| c.capacity() * std::mem::size_of::<MemPoint>())
                .sum::<usize>();
            points += m.others.capacity() * std::mem::size_of::<(Channel, Vec<MemPoint>)>();
            // An `Arc<str>` allocation: two counters and the bytes.
            ids += 16 + m.id.len();
        }
        let total = points
            + ids
            + inner.meters.capacity() * std::mem::size_of::<MemMeter>()
            + inner.by_id.capacity() * (std::mem::size_of::<(Arc<str>, u32)>() + 1);
        (total, points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ts: i64, value: i32) -> Point {
        Point {
            ts_utc: ts,
            value,
            step_min: 30,
            quality: Quality::Measured,
        }
    }

    #[test]
    fn the_highest_sequence_number_wins_whatever_the_insert_order() {
        let m = Memtable::new();
        let mut a = Batch::new();
        a.push("m1", Channel::CONSUMPTION, p(3600, 1)).unwrap();
        a.push("m1", Channel::CONSUMPTION, p(0, 1)).unwrap();
        let mut b = Batch::new();
        b.push("m1", Channel::CONSUMPTION, p(0, 2)).unwrap();
        m.insert(2, &b);
        m.insert(1, &a);
        assert_eq!(
            m.series("m1", Channel::CONSUMPTION, 9, 0, i64::MAX),
            vec![p(0, 2), p(3600, 1)]
        );
        assert_eq!(
            m.series("m1", Channel::CONSUMPTION, 1, 0, i64::MAX),
            vec![p(0, 1), p(3600, 1)]
        );
    }
}

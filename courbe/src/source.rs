//! What queries read: a consistent view of every series, as time-ordered chunks.
//!
//! The engine implements [`SeriesSource`] on its snapshots; tests implement it on a plain map
//! (the reference model). Queries use a chunk's summary when the chunk lies wholly inside the
//! period they compute, and decode it otherwise.
//!
//! # Which reading of an instant wins: the newest covering reading
//!
//! A curve reading (`consumption`, `production`) covers `[ts_utc, ts_utc + step)`. Readings of
//! one series are ranked by the sequence number of their batch (later position in the batch
//! breaks ties), and **each instant takes the value of the highest-ranked reading covering
//! it**. A reading newer readings cover only in part keeps the rest of its interval, as one
//! point per uncovered stretch: same value (average W) and quality, `ts_utc` at the start of
//! the stretch, `step_min` its length (so 45 for the last three quarters of an hour whose
//! first quarter was re-sent at 15 minutes). What remains never overlaps, energy counts each
//! instant exactly once with its newest value, and with one step everywhere this is "the
//! newest value of each interval start".
//!
//! Per instant, the newest wins whatever was resolved before: resolving a part first (the
//! memtable at flush, a month at compaction) and the rest later gives what resolving everything
//! at once gives, so every layer (memtable, flush, compaction, snapshot merge) applies the rule
//! through [`resolve_newest_covering`] and stores only resolved, disjoint points. Readings start
//! on whole minutes; a stretch shorter than a minute is dropped.
//!
//! Erasure removes the points whose `ts_utc` is in its range; a range that starts or ends inside
//! a reading (not on an hour, for the usual grids) may leave a stretch that a newer reading had
//! not yet been resolved against.
//!
//! `max_power` readings are daily maxima at an instant: only one at the same `ts_utc` replaces
//! another.

use storage_format::block::DecodedBlock;
use storage_format::segment::BlockRef;
use storage_format::{BlockSummary, Channel, Point};

/// A run of one series' points, already resolved (each instant from the newest reading covering
/// it: module docs).
#[derive(Clone, Debug)]
pub enum Chunk<'a> {
    /// A block of a segment that no newer data overlaps: its summary is exact for its points.
    Block(BlockRef<'a>),
    /// Points sorted by `ts_utc` whose intervals do not overlap: from the memtable, or merged
    /// from overlapping sources.
    Points(Vec<Point>),
}

impl Chunk<'_> {
    /// `ts_utc` of the first point and end of coverage (see [`BlockSummary::end_ts`]).
    pub fn span(&self) -> (i64, i64) {
        match self {
            Chunk::Block(b) => (b.summary.first_ts, b.summary.end_ts),
            Chunk::Points(p) => (
                p.first().map_or(0, |p| p.ts_utc),
                p.iter()
                    .map(|p| p.ts_utc + 60 * i64::from(p.step_min))
                    .max()
                    .unwrap_or(0),
            ),
        }
    }

    /// The points, decoding a block into `scratch` when needed.
    pub fn decode_into(&self, scratch: &mut DecodedBlock) -> Result<(), SourceError> {
        match self {
            Chunk::Block(b) => b.decode_into(scratch).map_err(SourceError::from),
            Chunk::Points(points) => {
                scratch.ts_utc.clear();
                scratch.value.clear();
                scratch.step_min.clear();
                scratch.quality.clear();
                for p in points {
                    scratch.ts_utc.push(p.ts_utc);
                    scratch.value.push(p.value);
                    scratch.step_min.push(p.step_min);
                    scratch.quality.push(p.quality);
                }
                Ok(())
            }
        }
    }

    pub fn summary(&self) -> BlockSummary {
        match self {
            Chunk::Block(b) => b.summary,
            Chunk::Points(p) => storage_format::block::summarize(p),
        }
    }
}

/// The longest interval of a curve reading, seconds (60-minute step).
pub const MAX_CURVE_STEP_S: i64 = 3600;

/// The part of time a reading of `channel` claims: its interval for the curve channels, its
/// instant for `max_power`.
pub fn claim(channel: Channel, p: &Point) -> (i64, i64) {
    if channel.has_intervals() {
        (
            p.ts_utc,
            p.ts_utc.saturating_add(60 * i64::from(p.step_min.max(1))),
        )
    } else {
        (p.ts_utc, p.ts_utc.saturating_add(1))
    }
}

/// Applies the newest-covering-reading rule (module docs) to readings ranked by `(seq, order)`
/// (higher wins); returns the resolved points sorted by `ts_utc`.
///
/// Exact only for the points whose every overlapping reading is among `ranked`: a caller
/// resolving `[from, to)` passes the readings of `[from - 2 * MAX_CURVE_STEP_S, to +
/// MAX_CURVE_STEP_S)` and keeps the points starting in `[from, to)`.
///
/// Readings in time order (as callers pass them) are cut into clusters of overlapping claims:
/// a reading no other one overlaps is kept as it is, readings of one same claim leave the
/// highest ranked, and only the other clusters are resolved by rank, so a series with a few
/// re-sent intervals costs what those intervals cost.
pub fn resolve_newest_covering(channel: Channel, ranked: Vec<((u64, u64), Point)>) -> Vec<Point> {
    if !ranked.is_sorted_by_key(|r| r.1.ts_utc) {
        return resolve_by_rank(channel, ranked);
    }
    let mut out: Vec<Point> = Vec::with_capacity(ranked.len());
    let mut rest = &ranked[..];
    while let Some(first) = rest.first() {
        // The cluster: readings starting before the furthest end of those before them.
        let mut end = claim(channel, &first.1).1;
        let mut n = 1;
        while let Some(next) = rest.get(n) {
            if next.1.ts_utc >= end {
                break;
            }
            end = end.max(claim(channel, &next.1).1);
            n += 1;
        }
        let (cluster, tail) = rest.split_at(n);
        match cluster {
            [(_, p)] => out.push(*p),
            // Readings of the same claim (a re-sent interval): the highest ranked takes it
            // whole, the first of equal ranks as by rank.
            [(_, p), more @ ..]
                if more
                    .iter()
                    .all(|(_, q)| claim(channel, q) == claim(channel, p)) =>
            {
                let mut best = &cluster[0];
                for r in more {
                    if r.0 > best.0 {
                        best = r;
                    }
                }
                out.push(best.1);
            }
            _ => out.extend(resolve_by_rank(channel, cluster.to_vec())),
        }
        rest = tail;
    }
    out
}

/// [`resolve_newest_covering`] by rank over all of `ranked` at once: each reading, from the
/// highest ranked down, keeps the stretches of its claim no higher one claimed.
fn resolve_by_rank(channel: Channel, mut ranked: Vec<((u64, u64), Point)>) -> Vec<Point> {
    ranked.sort_by_key(|r| std::cmp::Reverse(r.0));
    // The union of the intervals of every reading ranked higher than the current one, as
    // disjoint, non-touching `start -> end` runs.
    let mut claimed: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
    let mut out: Vec<Point> = Vec::with_capacity(ranked.len());
    for (_, p) in ranked {
        let (start, end) = claim(channel, &p);
        // The runs meeting or touching [start, end), in time order.
        let mut touching: Vec<(i64, i64)> = claimed
            .range(..=end)
            .rev()
            .take_while(|(_, &e)| e >= start)
            .map(|(&s, &e)| (s, e))
            .collect();
        touching.reverse();
        let mut cursor = start;
        let mut free = |a: i64, b: i64| {
            if a >= b {
                return;
            }
            if !channel.has_intervals() {
                out.push(p);
            } else if let Ok(step_min) = u16::try_from((b - a) / 60) {
                if step_min > 0 {
                    out.push(Point {
                        ts_utc: a,
                        step_min,
                        ..p
                    });
                }
            }
        };
        for &(s, e) in &touching {
            free(cursor, s.min(end));
            cursor = cursor.max(e);
        }
        free(cursor, end);
        let (mut lo, mut hi) = (start, end);
        for (s, e) in touching {
            claimed.remove(&s);
            lo = lo.min(s);
            hi = hi.max(e);
        }
        claimed.insert(lo, hi);
    }
    out.sort_by_key(|p| p.ts_utc);
    out
}

/// A read failed: corrupt or unreadable data under the view.
#[derive(Debug)]
pub struct SourceError {
    /// Names the file and offset when the engine knows them.
    pub message: String,
    /// The failure underneath (the engine's, the format crate's), kept whole for
    /// [`std::error::Error::source`].
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SourceError {
    /// `error`'s message, with `error` as the source.
    pub fn of(error: impl std::error::Error + Send + Sync + 'static) -> SourceError {
        SourceError {
            message: error.to_string(),
            source: Some(Box::new(error)),
        }
    }
}

impl From<storage_format::Error> for SourceError {
    fn from(e: storage_format::Error) -> Self {
        SourceError::of(e)
    }
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A consistent, immutable view of the store.
pub trait SeriesSource: Sync {
    /// Whether the meter holds data on any channel (or consent records, once they exist).
    fn has_meter(&self, meter: &str) -> bool;

    /// Every meter with at least one point on `channel`, sorted by id.
    fn meters(&self, channel: Channel) -> Vec<String>;

    /// The chunks of `(meter, channel)` that hold points in `[from, to)`, in time order and not
    /// overlapping one another. A chunk may hold points outside the range; callers filter.
    fn chunks(
        &self,
        meter: &str,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Vec<Chunk<'_>>, SourceError>;

    /// The index register channels of the store with their names, in code order.
    fn registers(&self) -> Vec<(Channel, std::sync::Arc<str>)> {
        Vec::new()
    }

    /// The fleet curve of every meter of `channel` in `[from_utc, to_utc)`, when the source can
    /// give it without reading each meter: at each instant at which a resolved point starts, the
    /// sum of the values of those points and their number, in time order; exactly what summing
    /// [`chunks`](Self::chunks) over [`meters`](Self::meters) gives. `None` when it cannot (the
    /// caller then reads each meter).
    fn fleet_sums(
        &self,
        _channel: Channel,
        _from_utc: i64,
        _to_utc: i64,
    ) -> Result<Option<Vec<InstantSum>>, SourceError> {
        Ok(None)
    }

    /// `meter`'s consumption per Paris day of `[first_day, end_day)` in the clock bands of
    /// [`crate::engine::bands`], when the source keeps them and they are exactly what its
    /// [`chunks`](Self::chunks) give; `None` when it cannot (the caller then reads the curve).
    fn day_bands(
        &self,
        _meter: &str,
        _first_day: i64,
        _end_day: i64,
    ) -> Result<Option<Vec<crate::engine::bands::DayBands>>, SourceError> {
        Ok(None)
    }

    /// Readies what [`day_bands`](Self::day_bands) reads over `[first_day, end_day)` (called
    /// once before many meters).
    fn prepare_day_bands(&self, _first_day: i64, _end_day: i64) -> Result<(), SourceError> {
        Ok(())
    }
}

/// The sum over many series of the points starting at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstantSum {
    pub ts_utc: i64,
    pub total: i64,
    /// How many points start at `ts_utc`.
    pub meters: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quality;

    fn p(min: i64, step_min: u16, value: i32) -> Point {
        Point {
            ts_utc: 60 * min,
            value,
            step_min,
            quality: Quality::Measured,
        }
    }

    #[test]
    fn each_instant_takes_the_newest_reading_covering_it() {
        // seq 1: 15 min at 30; seq 2: 60 min at 0; seq 3: 15 min at 0.
        let ranked = vec![
            ((2, 0), p(0, 60, 2)),
            ((3, 0), p(0, 15, 3)),
            ((1, 0), p(30, 15, 1)),
        ];
        let want = vec![p(0, 15, 3), p(15, 45, 2)];
        assert_eq!(
            resolve_newest_covering(Channel::CONSUMPTION, ranked.clone()),
            want
        );
        // Resolving the two newer first, or the two older first, gives the same.
        let newer = resolve_newest_covering(
            Channel::CONSUMPTION,
            vec![((2, 0), p(0, 60, 2)), ((3, 0), p(0, 15, 3))],
        );
        let mut again: Vec<_> = newer.into_iter().map(|q| ((3, 0), q)).collect();
        again.push(((1, 0), p(30, 15, 1)));
        again.sort_by_key(|(r, q)| (q.ts_utc, *r));
        assert_eq!(resolve_newest_covering(Channel::CONSUMPTION, again), want);
        let older = resolve_newest_covering(
            Channel::CONSUMPTION,
            vec![((2, 0), p(0, 60, 2)), ((1, 0), p(30, 15, 1))],
        );
        assert_eq!(older, vec![p(0, 60, 2)]);
        let mut again: Vec<_> = older.into_iter().map(|q| ((2, 0), q)).collect();
        again.push(((3, 0), p(0, 15, 3)));
        assert_eq!(resolve_newest_covering(Channel::CONSUMPTION, again), want);
    }

    #[test]
    fn partial_overlaps_between_grids_keep_the_uncovered_stretches() {
        // Older 10-minute readings, newer 15-minute ones from 15 to 45.
        let mut ranked: Vec<_> = (0..6).map(|i| ((1, i as u64), p(10 * i, 10, 1))).collect();
        ranked.extend((0..2).map(|i| ((2, i as u64), p(15 + 15 * i, 15, 2))));
        ranked.sort_by_key(|(r, q)| (q.ts_utc, *r));
        assert_eq!(
            resolve_newest_covering(Channel::CONSUMPTION, ranked),
            vec![
                p(0, 10, 1),
                p(10, 5, 1),
                p(15, 15, 2),
                p(30, 15, 2),
                p(45, 5, 1),
                p(50, 10, 1)
            ]
        );
    }

    /// The rule minute by minute: each minute takes the highest-ranked reading covering it
    /// (an instant, for `max_power`), and the minutes a reading wins in a row make one point.
    fn resolved_minute_by_minute(channel: Channel, ranked: &[((u64, u64), Point)]) -> Vec<Point> {
        let minutes = |p: &Point| {
            let (a, b) = claim(channel, p);
            (a.div_euclid(60), b.div_euclid(60).max(a.div_euclid(60) + 1))
        };
        let (Some(first), Some(last)) = (
            ranked.iter().map(|r| minutes(&r.1).0).min(),
            ranked.iter().map(|r| minutes(&r.1).1).max(),
        ) else {
            return Vec::new();
        };
        let mut out: Vec<Point> = Vec::new();
        let mut prev: Option<usize> = None;
        for m in first..last {
            let winner = ranked
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    if channel.has_intervals() {
                        let (a, b) = minutes(&r.1);
                        a <= m && m < b
                    } else {
                        r.1.ts_utc.div_euclid(60) == m
                    }
                })
                .max_by_key(|(_, r)| r.0)
                .map(|(i, _)| i);
            match (winner, prev) {
                (Some(w), Some(p)) if w == p && channel.has_intervals() => {
                    if let Some(last) = out.last_mut() {
                        last.step_min += 1;
                    }
                }
                (Some(w), _) => {
                    let p = ranked[w].1;
                    out.push(if channel.has_intervals() {
                        Point {
                            ts_utc: 60 * m,
                            step_min: 1,
                            ..p
                        }
                    } else {
                        p
                    });
                }
                (None, _) => {}
            }
            prev = winner;
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn resolving_cluster_by_cluster_gives_the_newest_reading_of_every_minute(
            channel in proptest::sample::select(vec![Channel::CONSUMPTION, Channel::MAX_POWER]),
            layers in proptest::collection::vec(
                (
                    // Some layers re-send the same readings (same start and grid).
                    proptest::prop_oneof![0i64..300, proptest::sample::select(vec![0i64, 12, 24])],
                    proptest::sample::select(vec![10u16, 15, 30, 60]),
                    0usize..30,
                ),
                1..5,
            ),
            values in proptest::collection::vec(-50i32..5000, 150),
            sorted in proptest::bool::ANY,
        ) {
            // Each layer a run of disjoint readings on its grid (a day re-sent, a late
            // correction at another step), the layers overlapping in places only.
            let mut ranked = Vec::new();
            for (seq, &(start, step, len)) in layers.iter().enumerate() {
                for k in 0..len {
                    let min = 5 * start + i64::from(step) * k as i64;
                    let v = values[(seq * 37 + k) % values.len()];
                    ranked.push(((seq as u64, k as u64), p(min, step, v)));
                }
            }
            let want = resolved_minute_by_minute(channel, &ranked);
            if sorted {
                ranked.sort_by_key(|(r, q)| (q.ts_utc, *r));
            } else {
                ranked.reverse();
            }
            let got = resolve_newest_covering(channel, ranked);
            // The same instants and values once a reading's stretches are cut into minutes.
            let minutes = |points: &[Point]| -> Vec<(i64, i32)> {
                points
                    .iter()
                    .flat_map(|q| {
                        let n = if channel.has_intervals() { i64::from(q.step_min) } else { 1 };
                        (0..n).map(move |i| (q.ts_utc / 60 + i, q.value))
                    })
                    .collect()
            };
            proptest::prop_assert_eq!(minutes(&got), minutes(&want));
            // No two points overlap.
            proptest::prop_assert!(got.windows(2).all(|w| claim(channel, &w[0]).1 <= w[1].ts_utc));
        }
    }

    #[test]
    fn max_power_readings_replace_only_at_the_same_instant() {
        let day = |min: i64, v: i32| Point {
            step_min: 1440,
            ..p(min, 10, v)
        };
        let ranked = vec![
            ((1, 0), day(0, 1)),
            ((1, 1), day(600, 2)),
            ((2, 0), day(600, 3)),
        ];
        assert_eq!(
            resolve_newest_covering(Channel::MAX_POWER, ranked),
            vec![day(0, 1), day(600, 3)]
        );
    }
}

//! The read path's two pure steps, apart from where readings come from: grouping the sources of
//! one series into clusters of overlapping claims, and resolving a cluster by the
//! newest-covering-reading rule ([`crate::source`] module docs).
//!
//! A source (a segment's block, a memtable reading) holds resolved, disjoint readings and claims
//! `[start, end)`. Sources whose claims overlap nobody else's are exact as they are; a cluster of
//! overlapping ones is decoded and resolved as one. [`super::snapshot::Snapshot::chunks_checked`]
//! gathers the sources; this module decides.

use std::ops::Range;

use crate::source::resolve_newest_covering;
use crate::{Channel, Point};

/// A source of readings and the part of time it claims.
#[derive(Clone, Copy, Debug)]
pub struct Span<B> {
    pub start: i64,
    pub end: i64,
    pub source: B,
}

/// The clusters of `spans` (sorted by `(start, end)`): maximal runs of consecutive spans in which
/// each span starts before the furthest end of those before it. Two clusters never overlap; every
/// span is in exactly one, in order.
pub fn clusters<B>(spans: &[Span<B>]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut first = 0;
    let mut end = i64::MIN;
    for (k, span) in spans.iter().enumerate() {
        end = end.max(span.end);
        if spans.get(k + 1).is_some_and(|next| next.start < end) {
            continue;
        }
        out.push(first..k + 1);
        first = k + 1;
        end = i64::MIN;
    }
    out
}

/// What a cluster resolves to.
#[derive(Debug, PartialEq)]
pub enum Resolved<B> {
    /// A lone whole source, exact as it is (its readings may extend past the window).
    Whole(B),
    /// Resolved readings starting in the window, in time order; consecutive merged clusters are
    /// joined into one.
    Points(Vec<Point>),
}

/// Resolves the clusters of `spans` that meet `[from, to)`.
///
/// `whole(source)` says whether a lone source may be passed on undecoded (a segment block may; a
/// memtable reading is resolved like the rest). `readings(source, out)` appends the source's
/// readings ranked `(seq, order)`, higher winning. Exact for the points starting in `[from, to)`
/// when `spans` holds every source claiming any of `[from - 2 * MAX_CURVE_STEP_S, to +
/// MAX_CURVE_STEP_S)` (see [`resolve_newest_covering`]).
pub fn resolve_clusters<B: Copy, E>(
    channel: Channel,
    spans: &[Span<B>],
    from: i64,
    to: i64,
    whole: impl Fn(&B) -> bool,
    mut readings: impl FnMut(&B, &mut Vec<((u64, u64), Point)>) -> Result<(), E>,
) -> Result<Vec<Resolved<B>>, E> {
    let mut out: Vec<Resolved<B>> = Vec::new();
    for range in clusters(spans) {
        let members = spans.get(range).unwrap_or_default();
        let (Some(head), Some(end)) = (members.first(), members.iter().map(|s| s.end).max()) else {
            continue;
        };
        if !(head.start < to && end > from) {
            continue;
        }
        if let [lone] = members {
            if whole(&lone.source) {
                out.push(Resolved::Whole(lone.source));
                continue;
            }
        }
        let mut ranked: Vec<((u64, u64), Point)> = Vec::new();
        for m in members {
            readings(&m.source, &mut ranked)?;
        }
        ranked.sort_by_key(|(rank, p)| (p.ts_utc, *rank));
        let mut merged = resolve_newest_covering(channel, ranked);
        merged.retain(|p| from <= p.ts_utc && p.ts_utc < to);
        if merged.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(Resolved::Points(prev)) => prev.extend(merged),
            _ => out.push(Resolved::Points(merged)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{claim, MAX_CURVE_STEP_S};
    use crate::Quality;
    use proptest::prelude::*;

    /// A source of the model: its rank and its resolved, disjoint readings.
    #[derive(Clone, Debug)]
    struct Source {
        seq: u64,
        points: Vec<Point>,
    }

    fn point(slot: i64, step_min: u16, value: i32) -> Point {
        Point {
            ts_utc: 1_700_000_400 + slot * 600,
            value,
            step_min,
            quality: Quality::Measured,
        }
    }

    /// Sources as a store holds them: each one resolved alone (so disjoint), with 10, 15, 30 and
    /// 60-minute steps, overlapping each other at random.
    fn sources(channel: Channel) -> impl Strategy<Value = Vec<Source>> {
        let reading = (
            0i64..200,
            prop::sample::select(vec![10u16, 15, 30, 60]),
            -5i32..5000,
        );
        prop::collection::vec(prop::collection::vec(reading, 0..40), 1..6).prop_map(move |all| {
            all.into_iter()
                .enumerate()
                .map(|(seq, readings)| {
                    let ranked = readings
                        .into_iter()
                        .enumerate()
                        .map(|(k, (slot, step, v))| ((0, k as u64), point(slot, step, v)))
                        .collect();
                    Source {
                        seq: seq as u64,
                        points: resolve_newest_covering(channel, ranked),
                    }
                })
                .collect()
        })
    }

    /// The spans of `sources` cut into blocks of up to `block` consecutive readings, as segments
    /// cut series into blocks; the source of a span is (source index, first reading, end).
    fn spans(
        channel: Channel,
        sources: &[Source],
        block: usize,
    ) -> Vec<Span<(usize, usize, usize)>> {
        let mut out = Vec::new();
        for (i, s) in sources.iter().enumerate() {
            for (c, chunk) in s.points.chunks(block.max(1)).enumerate() {
                let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
                    continue;
                };
                let start = c * block.max(1);
                out.push(Span {
                    start: first.ts_utc,
                    end: claim(channel, last).1,
                    source: (i, start, start + chunk.len()),
                });
            }
        }
        out.sort_by_key(|s| (s.start, s.end));
        out
    }

    proptest! {
        #[test]
        fn clusters_cover_every_span_once_in_order_and_never_overlap(
            raw in prop::collection::vec((0i64..500, 1i64..80), 0..60)
        ) {
            let mut spans: Vec<Span<()>> = raw
                .iter()
                .map(|&(s, len)| Span { start: s, end: s + len, source: () })
                .collect();
            spans.sort_by_key(|s| (s.start, s.end));
            let got = clusters(&spans);
            let mut next = 0;
            let mut prev_end = i64::MIN;
            for r in &got {
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end > r.start);
                next = r.end;
                let members = &spans[r.clone()];
                let start = members[0].start;
                let end = members.iter().map(|s| s.end).max().unwrap();
                // Disjoint from the previous cluster, and connected inside.
                prop_assert!(prev_end <= start);
                let mut reach = members[0].end;
                for s in &members[1..] {
                    prop_assert!(s.start < reach);
                    reach = reach.max(s.end);
                }
                prev_end = end;
            }
            prop_assert_eq!(next, spans.len());
        }

        #[test]
        fn resolving_clusters_of_blocks_gives_what_resolving_every_reading_at_once_gives(
            (channel, srcs) in prop::sample::select(vec![Channel::CONSUMPTION, Channel::MAX_POWER])
                .prop_flat_map(|c| (Just(c), sources(c))),
            block in 1usize..12,
            from_slot in -10i64..200,
            len in 0i64..220,
        ) {
            let (from, to) = (point(from_slot, 10, 0).ts_utc, point(from_slot + len, 10, 0).ts_utc);
            let window = (from - 2 * MAX_CURVE_STEP_S, to + MAX_CURVE_STEP_S);
            let all = spans(channel, &srcs, block);
            let seen: Vec<_> = all
                .iter()
                .copied()
                .filter(|s| s.start < window.1 && s.end > window.0)
                .collect();
            let got = resolve_clusters(
                channel,
                &seen,
                from,
                to,
                |_| true,
                |&(i, a, b), out: &mut Vec<((u64, u64), Point)>| {
                    out.extend(srcs[i].points[a..b].iter().map(|p| ((srcs[i].seq, 0), *p)));
                    Ok::<(), ()>(())
                },
            )
            .unwrap();
            let mut flat: Vec<Point> = Vec::new();
            for r in got {
                match r {
                    Resolved::Whole((i, a, b)) => flat.extend(
                        srcs[i].points[a..b].iter().filter(|p| from <= p.ts_utc && p.ts_utc < to),
                    ),
                    Resolved::Points(p) => flat.extend(p),
                }
            }
            // The model: every reading of every source, resolved at once.
            let mut ranked: Vec<((u64, u64), Point)> = srcs
                .iter()
                .flat_map(|s| s.points.iter().map(move |p| ((s.seq, 0), *p)))
                .collect();
            ranked.sort_by_key(|(rank, p)| (p.ts_utc, *rank));
            let mut want = resolve_newest_covering(channel, ranked);
            want.retain(|p| from <= p.ts_utc && p.ts_utc < to);
            prop_assert_eq!(flat, want);
        }
    }
}

//! The points of one series over a range, and their compaction into runs.

use storage_format::block::DecodedBlock;

use super::{QueryError, Run};
use crate::source::{Chunk, SeriesSource};
use crate::{Channel, Point, Quality};

/// Calls `f` on every point of `(meter, channel)` in `[from, to)`, in time order.
pub(crate) fn for_each_point(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    (from, to): (i64, i64),
    scratch: &mut DecodedBlock,
    f: impl FnMut(Point),
) -> Result<(), QueryError> {
    each_point_of(
        &src.chunks(meter, channel, from, to)?,
        (from, to),
        scratch,
        f,
    )
}

fn each_point_of(
    chunks: &[Chunk<'_>],
    (from, to): (i64, i64),
    scratch: &mut DecodedBlock,
    mut f: impl FnMut(Point),
) -> Result<(), QueryError> {
    for chunk in chunks {
        match chunk {
            Chunk::Block(b) => {
                if b.summary.last_ts < from || b.summary.first_ts >= to {
                    continue;
                }
                chunk.decode_into(scratch)?;
                scratch
                    .points()
                    .filter(|p| p.ts_utc >= from && p.ts_utc < to)
                    .for_each(&mut f);
            }
            Chunk::Points(points) => points
                .iter()
                .filter(|p| p.ts_utc >= from && p.ts_utc < to)
                .copied()
                .for_each(&mut f),
        }
    }
    Ok(())
}

pub(crate) fn points(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    from: i64,
    to: i64,
) -> Result<Vec<Point>, QueryError> {
    let chunks = src.chunks(meter, channel, from, to)?;
    // At most every point of every chunk: one allocation, no regrowth. The counts come from
    // disk: a damaged one must not ask for a huge allocation, so the guess is bounded.
    const MOST_RESERVED: usize = 1 << 20;
    let most: usize = chunks
        .iter()
        .map(|c| match c {
            Chunk::Block(b) => b.summary.count as usize,
            Chunk::Points(p) => p.len(),
        })
        .sum();
    let mut out = Vec::with_capacity(most.min(MOST_RESERVED));
    let mut scratch = DecodedBlock::default();
    each_point_of(&chunks, (from, to), &mut scratch, |p| out.push(p))?;
    Ok(out)
}

/// Most points of a set of columns kept for the next answer (about 15 MiB); a larger set is
/// freed after its answer.
const MOST_KEPT: usize = 1 << 20;

/// The buffers of one curve answer: the columns and a decoded block.
#[derive(Default)]
struct Columns {
    out: DecodedBlock,
    scratch: DecodedBlock,
}

/// Sets of columns between answers, shared by every thread: an answer takes one and gives it
/// back, so what is kept is bounded by [`most_sets_kept`] (about 30 MiB each at most), not by
/// how many threads (tokio's blocking pool grows under load) ever answered a curve.
static KEPT: parking_lot::Mutex<Vec<Columns>> = parking_lot::Mutex::new(Vec::new());

/// The cores, read once: `available_parallelism` reads cgroup files on Linux, too slow for
/// every answer.
fn most_sets_kept() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Calls `f` with the points of `(meter, channel)` in `[from, to)` as columns in time order (a
/// block's columns are copied once, in range, no `Point` in between), from reused buffers.
pub(crate) fn with_columns<R>(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    (from, to): (i64, i64),
    f: impl FnOnce(&DecodedBlock) -> R,
) -> Result<R, QueryError> {
    let chunks = src.chunks(meter, channel, from, to)?;
    let mut cols = KEPT.lock().pop().unwrap_or_default();
    clear(&mut cols.out);
    let filled = append_chunks(&chunks, (from, to), &mut cols.out, &mut cols.scratch);
    let answer = filled.map(|()| f(&cols.out));
    if cols.out.ts_utc.capacity() <= MOST_KEPT && cols.scratch.ts_utc.capacity() <= MOST_KEPT {
        let mut kept = KEPT.lock();
        if kept.len() < most_sets_kept() {
            kept.push(cols);
        }
    }
    answer
}

/// Appends to `out` the points of `chunks` in `[from, to)`, in order.
fn append_chunks(
    chunks: &[Chunk<'_>],
    (from, to): (i64, i64),
    out: &mut DecodedBlock,
    scratch: &mut DecodedBlock,
) -> Result<(), QueryError> {
    for chunk in chunks {
        match chunk {
            Chunk::Block(b) => {
                if b.summary.last_ts < from || b.summary.first_ts >= to {
                    continue;
                }
                chunk.decode_into(scratch)?;
                extend_in_range(out, scratch, (from, to));
            }
            Chunk::Points(points) => {
                for p in points.iter().filter(|p| p.ts_utc >= from && p.ts_utc < to) {
                    out.ts_utc.push(p.ts_utc);
                    out.value.push(p.value);
                    out.step_min.push(p.step_min);
                    out.quality.push(p.quality);
                }
            }
        }
    }
    Ok(())
}

fn clear(columns: &mut DecodedBlock) {
    columns.ts_utc.clear();
    columns.value.clear();
    columns.step_min.clear();
    columns.quality.clear();
}

/// Appends to `out` the columns of `block`'s points in `[from, to)` (its timestamps increase).
fn extend_in_range(out: &mut DecodedBlock, block: &DecodedBlock, (from, to): (i64, i64)) {
    let lo = block.ts_utc.partition_point(|&t| t < from);
    let hi = block.ts_utc.partition_point(|&t| t < to).max(lo);
    let range = lo..hi.min(block.len());
    out.ts_utc.extend_from_slice(&block.ts_utc[range.clone()]);
    out.value.extend_from_slice(&block.value[range.clone()]);
    out.step_min
        .extend_from_slice(&block.step_min[range.clone()]);
    out.quality.extend_from_slice(&block.quality[range]);
}

/// Groups time-ordered points into runs: a point extends the run when it starts where the
/// previous one ends and has the same step.
pub(crate) fn runs(points: &[Point]) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    let mut qualities: Vec<Vec<Quality>> = Vec::new();
    let mut next_ts = None;
    for p in points {
        let extends = out
            .last()
            .is_some_and(|run| run.step_min == p.step_min && next_ts == Some(p.ts_utc));
        if !extends {
            out.push(Run {
                start_utc: p.ts_utc,
                step_min: p.step_min,
                values: Vec::new(),
                quality: None,
            });
            qualities.push(Vec::new());
        }
        if let (Some(run), Some(q)) = (out.last_mut(), qualities.last_mut()) {
            run.values.push(p.value);
            q.push(p.quality);
        }
        next_ts = Some(p.ts_utc + 60 * i64::from(p.step_min));
    }
    for (run, q) in out.iter_mut().zip(qualities) {
        if q.iter().any(|&q| q != Quality::Measured) {
            run.quality = Some(q);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(ts_utc: i64, value: i32, step_min: u16, quality: Quality) -> Point {
        Point {
            ts_utc,
            value,
            step_min,
            quality,
        }
    }

    #[test]
    fn runs_break_at_gaps_and_step_changes_and_carry_quality_only_when_needed() {
        let m = Quality::Measured;
        let points = [
            pt(0, 1, 30, m),
            pt(1800, 2, 30, m),
            pt(5400, 3, 30, m),
            pt(7200, 4, 30, Quality::Estimated),
            pt(9000, 5, 10, m),
            pt(9600, 6, 10, m),
        ];
        let runs = runs(&points);
        assert_eq!(
            runs,
            vec![
                Run {
                    start_utc: 0,
                    step_min: 30,
                    values: vec![1, 2],
                    quality: None
                },
                Run {
                    start_utc: 5400,
                    step_min: 30,
                    values: vec![3, 4],
                    quality: Some(vec![m, Quality::Estimated])
                },
                Run {
                    start_utc: 9000,
                    step_min: 10,
                    values: vec![5, 6],
                    quality: None
                },
            ]
        );
    }
}

#[cfg(test)]
mod kept_tests {
    use super::*;
    use crate::engine::{Batch, Options, Store};

    #[test]
    fn columns_kept_between_answers_are_bounded_by_the_cores_not_by_the_threads_that_answered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let mut batch = Batch::new();
        for k in 0..480 {
            let point = Point {
                ts_utc: 1_704_067_200 + k * 1800,
                value: k as i32,
                step_min: 30,
                quality: Quality::Measured,
            };
            batch.push("m", Channel::CONSUMPTION, point).unwrap();
        }
        store.ingest(&batch).unwrap();
        store.flush().unwrap();
        let snap = store.snapshot();
        let range = (1_704_067_200, 1_704_067_200 + 10 * 86_400);
        let want = points(&*snap, "m", Channel::CONSUMPTION, range.0, range.1).unwrap();
        let threads = 4 * most_sets_kept();
        let barrier = std::sync::Barrier::new(threads);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let got = with_columns(&*snap, "m", Channel::CONSUMPTION, range, |cols| {
                        // Every thread holds a set at once.
                        barrier.wait();
                        cols.points().collect::<Vec<Point>>()
                    })
                    .unwrap();
                    assert_eq!(got, want);
                });
            }
        });
        // Other tests may take and give back sets meanwhile; none can raise the bound.
        let kept = KEPT.lock().len();
        assert!(
            kept <= most_sets_kept(),
            "{kept} sets kept after {threads} threads answered at once"
        );
    }
}

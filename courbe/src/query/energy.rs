//! Energy per period: exact sums, points present and expected, the off-peak split.

use storage_format::block::DecodedBlock;

use super::calendar::{TIME_MAX_UTC, TIME_MIN_UTC};
use super::tariff::OffPeak;
use super::tariffs::Registers;
use super::{EnergyPeriod, QueryError};
use crate::source::{Chunk, SeriesSource};
use crate::Channel;

/// The step assumed for a series without any point, minutes.
pub const DEFAULT_STEP_MIN: u16 = 30;

/// How far back the step in force at `from` is looked for before searching the whole history.
const RECENT_LOOKBACK_S: i64 = 31 * 86_400;

/// Walks time-ordered points across contiguous periods, accumulating each period's sums and its
/// expected count from the step in force.
struct Walker<'p> {
    periods: &'p [(i64, i64)],
    /// Start of the first period and end of the last.
    from: i64,
    to: i64,
    out: Vec<EnergyPeriod>,
    /// Off-peak `value * seconds` per period, exact.
    off_peak_ws: Vec<i128>,
    /// With registers: per period, `value * seconds` per register, exact.
    registers: Option<&'p mut Registers>,
    register_ws: Vec<Vec<i128>>,
    /// Index of the period the walk is in; `periods.len()` once past the end.
    p: usize,
    step_min: u16,
    /// Since when `step_min` is in force, within period `p`.
    since: i64,
}

impl<'p> Walker<'p> {
    fn new(
        periods: &'p [(i64, i64)],
        initial_step_min: u16,
        registers: Option<&'p mut Registers>,
    ) -> Walker<'p> {
        let width = registers.as_ref().map_or(0, |r| r.names.len());
        Walker {
            register_ws: vec![vec![0; width]; if width > 0 { periods.len() } else { 0 }],
            registers,
            periods,
            from: periods.first().map_or(0, |p| p.0),
            to: periods.last().map_or(0, |p| p.1),
            out: periods
                .iter()
                .map(|&(start_utc, end_utc)| EnergyPeriod {
                    start_utc,
                    end_utc,
                    energy_wmin: 0,
                    points: 0,
                    expected_points: 0,
                    by_tariff_wmin: None,
                    source: super::EnergySource::None,
                })
                .collect(),
            off_peak_ws: vec![0; periods.len()],
            p: 0,
            step_min: initial_step_min.max(1),
            since: periods.first().map_or(0, |p| p.0),
        }
    }

    fn count_run(&mut self, until: i64) {
        if let Some(period) = self.out.get_mut(self.p) {
            let run = u64::try_from(until - self.since).unwrap_or(0);
            period.expected_points += run / (60 * u64::from(self.step_min));
        }
    }

    /// Moves to the period containing `ts`, closing the ones before it.
    fn advance_to(&mut self, ts: i64) {
        while let Some(&(_, end)) = self.periods.get(self.p) {
            if ts < end {
                break;
            }
            self.count_run(end);
            self.p += 1;
            self.since = end;
        }
    }

    /// Records that a point of `step_min` starts at `ts` (in the current period).
    fn step_at(&mut self, ts: i64, step_min: u16) {
        let step_min = step_min.max(1);
        if step_min != self.step_min {
            self.count_run(ts);
            self.since = ts;
            self.step_min = step_min;
        }
    }

    fn point(&mut self, ts: i64, value: i32, step_min: u16, off_peak: Option<&mut OffPeak>) {
        if ts < self.from || ts >= self.to {
            return;
        }
        self.advance_to(ts);
        self.step_at(ts, step_min);
        let Some(period) = self.out.get_mut(self.p) else {
            return;
        };
        period.energy_wmin = period
            .energy_wmin
            .saturating_add(i64::from(value) * i64::from(step_min));
        period.points += 1;
        if let Some(off_peak) = off_peak {
            let hc_s = off_peak.overlap_s(ts, ts + 60 * i64::from(step_min));
            if let Some(acc) = self.off_peak_ws.get_mut(self.p) {
                *acc += i128::from(value) * i128::from(hc_s);
            }
        }
        if let (Some(registers), Some(acc)) = (
            self.registers.as_deref_mut(),
            self.register_ws.get_mut(self.p),
        ) {
            registers.split(ts, ts + 60 * i64::from(step_min), value, acc);
        }
    }

    /// Counts decoded, time-ordered columns: per period, one pass for step changes and one
    /// vectorisable sum (the tariff split, when asked, goes point by point).
    fn columns(&mut self, block: &DecodedBlock, off_peak: Option<&mut OffPeak>) {
        let n = block
            .ts_utc
            .len()
            .min(block.value.len())
            .min(block.step_min.len());
        self.column_slices(
            block.ts_utc.get(..n).unwrap_or(&[]),
            block.value.get(..n).unwrap_or(&[]),
            block.step_min.get(..n).unwrap_or(&[]),
            off_peak,
        );
    }

    /// [`Walker::columns`] over time-ordered columns of one length.
    fn column_slices(
        &mut self,
        ts: &[i64],
        value: &[i32],
        step: &[u16],
        mut off_peak: Option<&mut OffPeak>,
    ) {
        let mut i = ts.partition_point(|&t| t < self.from);
        let hi = ts.partition_point(|&t| t < self.to);
        while let Some(&first) = ts.get(i).filter(|_| i < hi) {
            self.advance_to(first);
            let Some(&(_, end)) = self.periods.get(self.p) else {
                return;
            };
            let rest = ts.get(i..hi).unwrap_or(&[]);
            let j = i + rest.partition_point(|&t| t < end).max(1);
            let (ts_p, value_p, step_p) = (
                ts.get(i..j).unwrap_or(&[]),
                value.get(i..j).unwrap_or(&[]),
                step.get(i..j).unwrap_or(&[]),
            );
            for (&t, &s) in ts_p.iter().zip(step_p) {
                if s != self.step_min {
                    self.step_at(t, s);
                }
            }
            let energy: i64 = value_p
                .iter()
                .zip(step_p)
                .map(|(&v, &s)| i64::from(v) * i64::from(s))
                .sum();
            if let Some(period) = self.out.get_mut(self.p) {
                period.energy_wmin = period.energy_wmin.saturating_add(energy);
                period.points += ts_p.len() as u64;
            }
            if let (Some(off_peak), Some(acc)) =
                (off_peak.as_deref_mut(), self.off_peak_ws.get_mut(self.p))
            {
                for ((&t, &v), &s) in ts_p.iter().zip(value_p).zip(step_p) {
                    let hc_s = off_peak.overlap_s(t, t + 60 * i64::from(s));
                    *acc += i128::from(v) * i128::from(hc_s);
                }
            }
            if let (Some(registers), Some(acc)) = (
                self.registers.as_deref_mut(),
                self.register_ws.get_mut(self.p),
            ) {
                for ((&t, &v), &s) in ts_p.iter().zip(value_p).zip(step_p) {
                    registers.split(t, t + 60 * i64::from(s), v, acc);
                }
            }
            i = j;
        }
    }

    /// Counts a block wholly inside one period with one step from its summary; false when it
    /// is not (the caller decodes it then).
    fn summary(&mut self, s: &crate::BlockSummary) -> bool {
        if s.step_min == 0 || s.first_ts < self.from || s.last_ts >= self.to {
            return false;
        }
        self.advance_to(s.first_ts);
        match self.periods.get(self.p) {
            Some(&(_, end)) if s.last_ts < end => {}
            _ => return false,
        }
        self.step_at(s.first_ts, s.step_min);
        if let Some(period) = self.out.get_mut(self.p) {
            period.energy_wmin = period.energy_wmin.saturating_add(s.sum_energy_wmin);
            period.points += u64::from(s.count);
        }
        true
    }

    fn finish(mut self, with_tariff: bool) -> (Vec<EnergyPeriod>, Vec<Vec<i128>>) {
        self.advance_to(self.to);
        for period in &mut self.out {
            if period.points > 0 {
                period.source = super::EnergySource::Curve;
            }
        }
        if with_tariff {
            for (period, hc_ws) in self.out.iter_mut().zip(&self.off_peak_ws) {
                let hc_wmin = *hc_ws as f64 / 60.0;
                period.by_tariff_wmin = Some((period.energy_wmin as f64 - hc_wmin, hc_wmin));
            }
        }
        (self.out, self.register_ws)
    }
}

/// The step of the latest point before `before` among `chunks` (time-ordered), if any.
fn last_step_before(
    chunks: &[Chunk<'_>],
    before: i64,
    scratch: &mut DecodedBlock,
) -> Result<Option<u16>, QueryError> {
    for chunk in chunks.iter().rev() {
        match chunk {
            Chunk::Block(b) => {
                let s = &b.summary;
                if s.first_ts >= before {
                    continue;
                }
                if s.step_min != 0 {
                    // Every point has this step, the latest before `before` too.
                    return Ok(Some(s.step_min));
                }
                chunk.decode_into(scratch)?;
                let last = scratch.ts_utc.iter().rposition(|&ts| ts < before);
                if let Some(step) = last.and_then(|i| scratch.step_min.get(i)) {
                    return Ok(Some(*step));
                }
            }
            Chunk::Points(points) => {
                if let Some(p) = points.iter().rev().find(|p| p.ts_utc < before) {
                    return Ok(Some(p.step_min));
                }
            }
        }
    }
    Ok(None)
}

/// The step of the first point at or after `from` among `chunks` (time-ordered), if any.
fn first_step_from(
    chunks: &[Chunk<'_>],
    from: i64,
    scratch: &mut DecodedBlock,
) -> Result<Option<u16>, QueryError> {
    for chunk in chunks {
        match chunk {
            Chunk::Block(b) => {
                let s = &b.summary;
                if s.last_ts < from {
                    continue;
                }
                if s.step_min != 0 {
                    return Ok(Some(s.step_min));
                }
                chunk.decode_into(scratch)?;
                let first = scratch.ts_utc.iter().position(|&ts| ts >= from);
                if let Some(step) = first.and_then(|i| scratch.step_min.get(i)) {
                    return Ok(Some(*step));
                }
            }
            Chunk::Points(points) => {
                if let Some(p) = points.iter().find(|p| p.ts_utc >= from) {
                    return Ok(Some(p.step_min));
                }
            }
        }
    }
    Ok(None)
}

/// The step in force at `from`: the latest point before it, else the first point at or after
/// it (in `range_chunks`, then after `to`), else [`DEFAULT_STEP_MIN`].
fn step_in_force_at_start(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    (from, to): (i64, i64),
    range_chunks: &[Chunk<'_>],
    scratch: &mut DecodedBlock,
) -> Result<u16, QueryError> {
    if let Some(step) = last_step_before(range_chunks, from, scratch)? {
        return Ok(step);
    }
    // Look back a month first (nearly always enough), then through the whole history.
    let recent = from.saturating_sub(RECENT_LOOKBACK_S).max(TIME_MIN_UTC);
    for (start, end) in [(recent, from), (TIME_MIN_UTC, recent)] {
        if start < end {
            let before = src.chunks(meter, channel, start, end)?;
            if let Some(step) = last_step_before(&before, end, scratch)? {
                return Ok(step);
            }
        }
    }
    if let Some(step) = first_step_from(range_chunks, from, scratch)? {
        return Ok(step);
    }
    if to < TIME_MAX_UTC {
        let after = src.chunks(meter, channel, to, TIME_MAX_UTC)?;
        if let Some(step) = first_step_from(&after, to, scratch)? {
            return Ok(step);
        }
    }
    Ok(DEFAULT_STEP_MIN)
}

/// The step in force at `from` as the walk over `[from, to)` takes it.
pub(crate) fn initial_step(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    (from, to): (i64, i64),
    scratch: &mut DecodedBlock,
) -> Result<u16, QueryError> {
    let chunks = src.chunks(meter, channel, from, to)?;
    step_in_force_at_start(src, meter, channel, (from, to), &chunks, scratch)
}

/// Energy of `(meter, channel)` over contiguous `periods`; split by `off_peak` when given.
pub(crate) fn periods(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    periods: &[(i64, i64)],
    off_peak: Option<&mut OffPeak>,
    scratch: &mut DecodedBlock,
) -> Result<Vec<EnergyPeriod>, QueryError> {
    Ok(walk(src, meter, channel, periods, off_peak, None, scratch)?.0)
}

/// Energy of `(meter, channel)` over contiguous `periods` and, per period, `value * seconds` of
/// each of `registers.names` (which must cover every point's whole interval).
pub(crate) fn periods_by_register(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    periods: &[(i64, i64)],
    registers: &mut Registers,
    scratch: &mut DecodedBlock,
) -> Result<(Vec<EnergyPeriod>, Vec<Vec<i128>>), QueryError> {
    walk(src, meter, channel, periods, None, Some(registers), scratch)
}

fn walk(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    periods: &[(i64, i64)],
    mut off_peak: Option<&mut OffPeak>,
    registers: Option<&mut Registers>,
    scratch: &mut DecodedBlock,
) -> Result<(Vec<EnergyPeriod>, Vec<Vec<i128>>), QueryError> {
    let (Some(&(from, _)), Some(&(_, to))) = (periods.first(), periods.last()) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let chunks = src.chunks(meter, channel, from, to)?;
    let initial = step_in_force_at_start(src, meter, channel, (from, to), &chunks, scratch)?;
    let with_tariff = off_peak.is_some();
    let split = with_tariff || registers.is_some();
    let mut walker = Walker::new(periods, initial, registers);
    for chunk in &chunks {
        match chunk {
            Chunk::Block(b) => {
                let s = &b.summary;
                if s.last_ts < from || s.first_ts >= to {
                    continue;
                }
                if !split && walker.summary(s) {
                    continue;
                }
                chunk.decode_into(scratch)?;
                walker.columns(scratch, off_peak.as_deref_mut());
            }
            Chunk::Points(points) => {
                for p in points {
                    walker.point(p.ts_utc, p.value, p.step_min, off_peak.as_deref_mut());
                }
            }
        }
    }
    Ok(walker.finish(with_tariff))
}

/// One meter's curve over a range, decoded once, for walking several sets of periods (one per
/// offer) with [`periods_by_register_read`]: the points [`walk`] would visit, in its order, as
/// columns, and the step in force at the range's start.
#[derive(Clone, Debug, Default)]
pub(crate) struct CurveRead {
    initial_step_min: u16,
    /// Points with `ts_utc` in the range, chunk after chunk.
    ts: Vec<i64>,
    value: Vec<i32>,
    step: Vec<u16>,
    /// Each chunk's points `[start, end)` in the columns, and whether it was a block (walked as
    /// columns) or memtable points (walked point by point), as [`walk`] does.
    chunks: Vec<(usize, usize, bool)>,
}

/// Decodes `(meter, channel)` over `[from, to)` as [`walk`] reads it.
pub(crate) fn read_curve(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    (from, to): (i64, i64),
    scratch: &mut DecodedBlock,
) -> Result<CurveRead, QueryError> {
    let chunks = src.chunks(meter, channel, from, to)?;
    let initial_step_min =
        step_in_force_at_start(src, meter, channel, (from, to), &chunks, scratch)?;
    let mut out = CurveRead {
        initial_step_min,
        ..CurveRead::default()
    };
    for chunk in &chunks {
        let start = out.ts.len();
        match chunk {
            Chunk::Block(b) => {
                let s = &b.summary;
                if s.last_ts < from || s.first_ts >= to {
                    continue;
                }
                chunk.decode_into(scratch)?;
                let n = scratch
                    .ts_utc
                    .len()
                    .min(scratch.value.len())
                    .min(scratch.step_min.len());
                let ts = scratch.ts_utc.get(..n).unwrap_or(&[]);
                // Sorted within a block, as the walk's own partition assumes.
                let (i, j) = (
                    ts.partition_point(|&t| t < from),
                    ts.partition_point(|&t| t < to),
                );
                if i < j {
                    out.ts.extend_from_slice(&scratch.ts_utc[i..j]);
                    out.value.extend_from_slice(&scratch.value[i..j]);
                    out.step.extend_from_slice(&scratch.step_min[i..j]);
                    out.chunks.push((start, out.ts.len(), true));
                }
            }
            Chunk::Points(ps) => {
                for p in ps.iter().filter(|p| p.ts_utc >= from && p.ts_utc < to) {
                    out.ts.push(p.ts_utc);
                    out.value.push(p.value);
                    out.step.push(p.step_min);
                }
                if out.ts.len() > start {
                    out.chunks.push((start, out.ts.len(), false));
                }
            }
        }
    }
    Ok(out)
}

/// [`periods_by_register`] over a curve already read with [`read_curve`] for the range the
/// `periods` cover; `registers` must be fresh (or its cursor rewound).
pub(crate) fn periods_by_register_read(
    read: &CurveRead,
    periods: &[(i64, i64)],
    registers: &mut Registers,
) -> (Vec<EnergyPeriod>, Vec<Vec<i128>>) {
    if periods.is_empty() {
        return (Vec::new(), Vec::new());
    }
    // The sums, counts and steps as the walk counts them (points are never cut at a period's
    // end: each belongs to the period holding its start) ...
    let mut walker = Walker::new(periods, read.initial_step_min, None);
    for &(a, b, block) in &read.chunks {
        let (ts, value, step) = (&read.ts[a..b], &read.value[a..b], &read.step[a..b]);
        if block {
            walker.column_slices(ts, value, step, None);
        } else {
            for ((&t, &v), &s) in ts.iter().zip(value).zip(step) {
                walker.point(t, v, s, None);
            }
        }
    }
    let (out, _) = walker.finish(false);
    // ... and each point's seconds split among the registers, added to its period's.
    let width = registers.names.len();
    let mut split = vec![vec![0i128; width]; periods.len()];
    let mut i = 0;
    for (p, &(_, end)) in periods.iter().enumerate() {
        let j = i + read.ts[i..].partition_point(|&t| t < end);
        registers.split_columns(
            &read.ts[i..j],
            &read.value[i..j],
            &read.step[i..j],
            &mut split[p],
        );
        i = j;
    }
    (out, split)
}

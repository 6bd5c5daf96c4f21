//! Highest power per period: `max_power` (VA) where the period has it, else the curve (W).

use storage_format::block::DecodedBlock;

use super::{PeakPeriod, PeakSource, QueryError};
use crate::source::{Chunk, SeriesSource};
use crate::Channel;

/// The highest value and its earliest instant, per period.
type Best = Vec<Option<(i32, i64)>>;

fn offer(best: &mut Best, p: usize, value: i32, at: i64) {
    if let Some(slot) = best.get_mut(p) {
        match slot {
            Some((v, t)) if value < *v || (value == *v && at >= *t) => {}
            _ => *slot = Some((value, at)),
        }
    }
}

/// Index of the period containing `ts`, starting the search at `from_index`.
fn period_of(periods: &[(i64, i64)], from_index: usize, ts: i64) -> usize {
    let mut p = from_index;
    while let Some(&(_, end)) = periods.get(p) {
        if ts < end {
            break;
        }
        p += 1;
    }
    p
}

/// The highest point of `(meter, channel)` in each period.
fn highest(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    periods: &[(i64, i64)],
    scratch: &mut DecodedBlock,
) -> Result<Best, QueryError> {
    let mut best = vec![None; periods.len()];
    let (Some(&(from, _)), Some(&(_, to))) = (periods.first(), periods.last()) else {
        return Ok(best);
    };
    let mut p = 0;
    for chunk in &src.chunks(meter, channel, from, to)? {
        match chunk {
            Chunk::Block(b) => {
                let s = &b.summary;
                if s.last_ts < from || s.first_ts >= to {
                    continue;
                }
                if s.first_ts >= from {
                    p = period_of(periods, p, s.first_ts);
                    if periods.get(p).is_some_and(|&(_, end)| s.last_ts < end) {
                        offer(&mut best, p, s.max_value, s.max_ts);
                        continue;
                    }
                }
                chunk.decode_into(scratch)?;
                for (&ts, &value) in scratch.ts_utc.iter().zip(&scratch.value) {
                    if ts >= from && ts < to {
                        p = period_of(periods, p, ts);
                        offer(&mut best, p, value, ts);
                    }
                }
            }
            Chunk::Points(points) => {
                for pt in points {
                    if pt.ts_utc >= from && pt.ts_utc < to {
                        p = period_of(periods, p, pt.ts_utc);
                        offer(&mut best, p, pt.value, pt.ts_utc);
                    }
                }
            }
        }
    }
    Ok(best)
}

pub(crate) fn periods(
    src: &dyn SeriesSource,
    meter: &str,
    periods: &[(i64, i64)],
) -> Result<Vec<PeakPeriod>, QueryError> {
    let mut scratch = DecodedBlock::default();
    let max_power = highest(src, meter, Channel::MAX_POWER, periods, &mut scratch)?;
    let curve = if max_power.iter().all(Option::is_some) {
        vec![None; periods.len()]
    } else {
        highest(src, meter, Channel::CONSUMPTION, periods, &mut scratch)?
    };
    Ok(periods
        .iter()
        .zip(max_power.into_iter().zip(curve))
        .map(|(&(start_utc, end_utc), (mp, cv))| PeakPeriod {
            start_utc,
            end_utc,
            peak: mp
                .map(|(v, t)| (v, t, PeakSource::MaxPower))
                .or(cv.map(|(v, t)| (v, t, PeakSource::Curve))),
        })
        .collect())
}

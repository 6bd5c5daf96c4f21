//! Sums over many meters, one meter per task on rayon's pool.

use rayon::prelude::*;
use storage_format::block::DecodedBlock;

use super::{FleetPoint, MeterEnergy, QueryError};
use crate::source::SeriesSource;
use crate::Channel;

/// The meters to sum: the listed ones (sorted, each once; unknown ones refused) or every meter
/// holding `channel`.
pub(crate) fn meter_list(
    src: &dyn SeriesSource,
    channel: Channel,
    meters: Option<&[String]>,
) -> Result<Vec<String>, QueryError> {
    match meters {
        None => Ok(src.meters(channel)),
        Some(list) => {
            if let Some(unknown) = list.iter().find(|m| !src.has_meter(m)) {
                return Err(QueryError::UnknownMeter(unknown.clone()));
            }
            let mut list = list.to_vec();
            list.sort_unstable();
            list.dedup();
            Ok(list)
        }
    }
}

/// Merges two time-ordered fleet curves, adding totals and meter counts at equal instants.
pub(crate) fn merge(a: Vec<FleetPoint>, b: Vec<FleetPoint>) -> Vec<FleetPoint> {
    if a.is_empty() {
        return b;
    }
    if b.is_empty() {
        return a;
    }
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.ts_utc == y.ts_utc => {
                let (x, y) = (a.next(), b.next());
                x.zip(y).map(|(x, y)| FleetPoint {
                    ts_utc: x.ts_utc,
                    total: x.total + y.total,
                    meters: x.meters + y.meters,
                })
            }
            (Some(x), Some(y)) if x.ts_utc < y.ts_utc => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => None,
        };
        match next {
            Some(p) => out.push(p),
            None => return out,
        }
    }
}

/// The fleet curve of every meter of `channel` from the source's sums where it keeps them
/// (segment rollups), else [`curve`] over every meter.
pub(crate) fn curve_of_all(
    src: &dyn SeriesSource,
    channel: Channel,
    from: i64,
    to: i64,
) -> Result<Vec<FleetPoint>, QueryError> {
    if let Some(sums) = src.fleet_sums(channel, from, to)? {
        return Ok(sums
            .into_iter()
            .map(|s| FleetPoint {
                ts_utc: s.ts_utc,
                total: s.total,
                meters: s.meters,
            })
            .collect());
    }
    curve(src, channel, from, to, &src.meters(channel))
}

pub(crate) fn curve(
    src: &dyn SeriesSource,
    channel: Channel,
    from: i64,
    to: i64,
    meters: &[String],
) -> Result<Vec<FleetPoint>, QueryError> {
    meters
        .par_iter()
        .map_init(DecodedBlock::default, |scratch, meter| {
            let mut points = Vec::new();
            super::curve::for_each_point(src, meter, channel, (from, to), scratch, |p| {
                points.push(FleetPoint {
                    ts_utc: p.ts_utc,
                    total: i64::from(p.value),
                    meters: 1,
                })
            })?;
            Ok(points)
        })
        .try_fold(Vec::new, |acc, points: Result<_, QueryError>| {
            Ok(merge(acc, points?))
        })
        .try_reduce(Vec::new, |a, b| Ok(merge(a, b)))
}

pub(crate) fn energy(
    src: &dyn SeriesSource,
    channel: Channel,
    periods: &[(i64, i64)],
    meters: &[String],
) -> Result<Vec<MeterEnergy>, QueryError> {
    meters
        .par_iter()
        .map_init(DecodedBlock::default, |scratch, meter| {
            Ok(MeterEnergy {
                meter: meter.clone(),
                periods: super::energy::periods(src, meter, channel, periods, None, scratch)?,
            })
        })
        .collect()
}

/// [`energy`] `chunk` meters at a time, each slice computed on all cores and handed to `each`
/// in meter order, so that the whole answer is never held; stops at the first error.
pub(crate) fn energy_each<E: From<QueryError>>(
    src: &dyn SeriesSource,
    channel: Channel,
    periods: &[(i64, i64)],
    meters: &[String],
    chunk: usize,
    each: &mut dyn FnMut(Vec<MeterEnergy>) -> Result<(), E>,
) -> Result<(), E> {
    for slice in meters.chunks(chunk.max(1)) {
        each(energy(src, channel, periods, slice)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(ts_utc: i64, total: i64, meters: u32) -> FleetPoint {
        FleetPoint {
            ts_utc,
            total,
            meters,
        }
    }

    #[test]
    fn merging_adds_equal_instants_and_keeps_the_others_in_order() {
        let a = vec![fp(0, 1, 1), fp(600, 2, 1), fp(1800, 3, 2)];
        let b = vec![fp(0, 10, 1), fp(1800, 30, 1), fp(3600, 40, 1)];
        assert_eq!(
            merge(a, b),
            vec![
                fp(0, 11, 2),
                fp(600, 2, 1),
                fp(1800, 33, 3),
                fp(3600, 40, 1)
            ]
        );
    }
}

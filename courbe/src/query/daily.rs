//! What the meter sends without curve consent: energy per Europe/Paris day and cumulative
//! indexes per register, read for periods made of whole Paris days.
//!
//! A daily-energy point holds the Wh of the Paris day starting at its `ts_utc`; an index point
//! holds a register's cumulative Wh at its instant. The energy of `[a, b)` (two Paris midnights)
//! is then the sum of the daily points of the days in it, or, per register, `index(b) -
//! index(a)`. Both are exact in Wh.

use std::sync::Arc;

use jiff::tz::TimeZone;
use storage_format::block::DecodedBlock;

use super::QueryError;
use crate::source::{Chunk, SeriesSource};
use crate::{Channel, Point, Quality};

/// The zone of every daily reading.
pub const DAILY_TZ: &str = crate::zone::PARIS;

use crate::zone::is_paris_midnight;
pub use crate::zone::paris;

/// The first instants of the Paris days of `[start, end)`, when both are Paris midnights.
pub fn paris_days(tz: &TimeZone, start: i64, end: i64) -> Option<Vec<i64>> {
    if start >= end {
        return None;
    }
    let mut days = super::calendar::day_starts(tz, start, end);
    (days.first() == Some(&start) && days.pop() == Some(end)).then_some(days)
}

/// Every point of `(meter, channel)` with `ts_utc` in `[from, to)`, in time order.
pub(crate) fn points_in(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    from: i64,
    to: i64,
    scratch: &mut DecodedBlock,
) -> Result<Vec<Point>, QueryError> {
    let mut out = Vec::new();
    for chunk in src.chunks(meter, channel, from, to)? {
        match &chunk {
            Chunk::Block(b) => {
                if b.summary.last_ts < from || b.summary.first_ts >= to {
                    continue;
                }
                chunk.decode_into(scratch)?;
                out.extend(
                    scratch
                        .points()
                        .filter(|p| p.ts_utc >= from && p.ts_utc < to),
                );
            }
            Chunk::Points(points) => {
                out.extend(points.iter().filter(|p| p.ts_utc >= from && p.ts_utc < to));
            }
        }
    }
    Ok(out)
}

/// The daily energy of one period of whole Paris days.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DailySum {
    pub wh: i64,
    /// Days of the period with a value, and days in it.
    pub days: u64,
    pub expected_days: u64,
    /// Days whose value is not `measured`.
    pub estimated_days: u64,
}

/// Per period, the daily-energy sum of its days; `None` for a period whose bounds are not both
/// Paris midnights.
pub(crate) fn daily_sums(
    src: &dyn SeriesSource,
    meter: &str,
    periods: &[(i64, i64)],
    scratch: &mut DecodedBlock,
) -> Result<Vec<Option<DailySum>>, QueryError> {
    let tz = paris();
    let (Some(&(from, _)), Some(&(_, to))) = (periods.first(), periods.last()) else {
        return Ok(Vec::new());
    };
    let points = points_in(src, meter, Channel::DAILY_ENERGY, from, to, scratch)?;
    // The Paris days of every period, from one list of the range's day starts (a period is made
    // of whole days when both its ends are in it).
    let starts = super::calendar::day_starts(&tz, from, to);
    let mut out = Vec::with_capacity(periods.len());
    let mut i = 0;
    for &(start, end) in periods {
        while points.get(i).is_some_and(|p| p.ts_utc < start) {
            i += 1;
        }
        let days = match (starts.binary_search(&start), starts.binary_search(&end)) {
            (Ok(a), Ok(b)) if a < b => starts.get(a..b).unwrap_or_default(),
            _ => {
                out.push(None);
                continue;
            }
        };
        let mut sum = DailySum {
            expected_days: days.len() as u64,
            ..DailySum::default()
        };
        while let Some(p) = points.get(i).filter(|p| p.ts_utc < end) {
            // Only a point at a day's first instant is that day's value.
            if days.binary_search(&p.ts_utc).is_ok() {
                sum.wh += i64::from(p.value);
                sum.days += 1;
                if p.quality != Quality::Measured {
                    sum.estimated_days += 1;
                }
            }
            i += 1;
        }
        out.push(Some(sum));
    }
    Ok(out)
}

/// One register's reading at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexReading {
    pub wh: i64,
    pub quality: Quality,
}

/// The index registers `meter` holds readings of in `[from, to)`, in code order.
pub fn meter_registers(
    src: &dyn SeriesSource,
    meter: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(Channel, Arc<str>)>, QueryError> {
    let mut out = Vec::new();
    for (channel, name) in src.registers() {
        if !src.chunks(meter, channel, from, to)?.is_empty() {
            out.push((channel, name));
        }
    }
    Ok(out)
}

/// The reading of `(meter, channel)` at each of `instants` (sorted), `None` where there is none
/// at exactly that instant.
pub fn readings_at(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    instants: &[i64],
    scratch: &mut DecodedBlock,
) -> Result<Vec<Option<IndexReading>>, QueryError> {
    let (Some(&first), Some(&last)) = (instants.first(), instants.last()) else {
        return Ok(Vec::new());
    };
    let points = points_in(src, meter, channel, first, last.saturating_add(1), scratch)?;
    Ok(instants
        .iter()
        .map(|&t| {
            let i = points.partition_point(|p| p.ts_utc < t);
            points
                .get(i)
                .filter(|p| p.ts_utc == t)
                .map(|p| IndexReading {
                    wh: i64::from(p.value),
                    quality: p.quality,
                })
        })
        .collect())
}

/// Per period, per register of `registers`, `index(end) - index(start)` in Wh: `None` for a
/// period whose bounds are not Paris midnights or where some register lacks a reading at a
/// bound or runs backwards (a meter change).
pub(crate) fn index_differences(
    src: &dyn SeriesSource,
    meter: &str,
    registers: &[Channel],
    periods: &[(i64, i64)],
    scratch: &mut DecodedBlock,
) -> Result<Vec<Option<Vec<i64>>>, QueryError> {
    let mut bounds: Vec<i64> = periods.iter().flat_map(|&(a, b)| [a, b]).collect();
    bounds.sort_unstable();
    bounds.dedup();
    let mut readings = Vec::with_capacity(registers.len());
    for &channel in registers {
        readings.push(readings_at(src, meter, channel, &bounds, scratch)?);
    }
    let at = |r: &[Option<IndexReading>], t: i64| {
        bounds
            .binary_search(&t)
            .ok()
            .and_then(|i| r.get(i).copied().flatten())
    };
    Ok(periods
        .iter()
        .map(|&(start, end)| {
            if registers.is_empty()
                || !(start < end && is_paris_midnight(start) && is_paris_midnight(end))
            {
                return None;
            }
            readings
                .iter()
                .map(|r| {
                    let (a, b) = (at(r, start)?, at(r, end)?);
                    (b.wh >= a.wh).then_some(b.wh - a.wh)
                })
                .collect()
        })
        .collect())
}

/// The registers whose differences make a meter's total: the supplier's when it reports any,
/// else the distributor's (`DIST_*`); the two families count the same energy twice.
pub fn total_registers(registers: &[(Channel, Arc<str>)]) -> Vec<Channel> {
    let supplier: Vec<Channel> = registers
        .iter()
        .filter(|(_, name)| !name.starts_with(DISTRIBUTOR_PREFIX))
        .map(|(c, _)| *c)
        .collect();
    if supplier.is_empty() {
        registers.iter().map(|(c, _)| *c).collect()
    } else {
        supplier
    }
}

/// Prefix of the distributor's registers (R151 `Classe_Temporelle_Distributeur`).
pub const DISTRIBUTOR_PREFIX: &str = "DIST_";

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    #[test]
    fn paris_days_are_23_24_or_25_hours_and_need_midnight_bounds() {
        let tz = paris();
        let days = paris_days(
            &tz,
            utc("2024-03-30T23:00:00Z"),
            utc("2024-04-01T22:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            days,
            [utc("2024-03-30T23:00:00Z"), utc("2024-03-31T22:00:00Z"),]
        );
        assert!(paris_days(
            &tz,
            utc("2024-03-31T00:00:00Z"),
            utc("2024-04-01T22:00:00Z")
        )
        .is_none());
    }

    #[test]
    fn midnights_from_offset_spans_are_the_zones_own_day_starts() {
        let tz = paris();
        // 1970 to 2100: the French rules before the EU's, both changes of every year.
        let (from, to) = (utc("1970-01-01T00:00:00Z"), utc("2100-01-01T00:00:00Z"));
        let got = super::super::calendar::day_starts(&tz, from - 3_600, to);
        let mut date = jiff::civil::date(1970, 1, 1);
        let mut want = Vec::new();
        loop {
            let t = super::super::calendar::day_start_utc(&tz, date).unwrap();
            if t > to {
                break;
            }
            want.push(t);
            date = date.tomorrow().unwrap();
        }
        let first_difference = got.iter().zip(&want).position(|(g, w)| g != w);
        assert_eq!(
            first_difference.map(|i| (i, got[i], want[i])),
            None,
            "{} against {} midnights",
            got.len(),
            want.len()
        );
        assert_eq!(got.len(), want.len());
    }

    #[test]
    fn the_total_is_read_from_the_supplier_registers_unless_only_the_distributors_exist() {
        let reg = |code: u8, name: &str| (Channel::index(code).unwrap(), Arc::<str>::from(name));
        let both = [reg(0, "HP"), reg(1, "DIST_HPH"), reg(2, "HC")];
        assert_eq!(
            total_registers(&both),
            [Channel::index(0).unwrap(), Channel::index(2).unwrap()]
        );
        let dist = [reg(1, "DIST_BASE")];
        assert_eq!(total_registers(&dist), [Channel::index(1).unwrap()]);
    }
}

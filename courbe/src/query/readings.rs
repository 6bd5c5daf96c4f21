//! The daily readings a meter sends without curve consent, derived from its curve: the index of
//! each register of its tariff option at every Europe/Paris midnight, and the energy of each
//! Paris day.
//!
//! A register counts whole Wh like a meter's counter: its index is `base + floor(Ws / 3600)` of
//! the energy charged to it since the first midnight, each interval split by the seconds it
//! spends in each register ([`super::tariffs`]). A day's energy is the sum over the registers of
//! their index differences, so that daily values and indexes always agree, as they do in Enedis
//! flows.

use jiff::civil::Date;
use jiff::ToSpan;

use super::tariffs::{DayColours, Registers, TariffPlan};
use super::QueryError;
use crate::{Channel, Point, Quality};

/// What [`derive`] produces for one meter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DailyReadings {
    /// The option's registers, in its display order.
    pub registers: Vec<String>,
    /// Per register, its index at each Paris midnight from the first day to the end of the last.
    pub indexes: Vec<Vec<Point>>,
    /// One [`Channel::DAILY_ENERGY`] point per day.
    pub daily: Vec<Point>,
}

/// Derives the daily readings of `days` Paris days from `first` out of `curve` (time-ordered
/// points of any step), under `plan`, each register starting at `base_wh`.
pub fn derive(
    curve: &[Point],
    plan: &TariffPlan,
    colours: &DayColours,
    first: Date,
    days: u32,
    base_wh: i64,
) -> Result<DailyReadings, QueryError> {
    let tz = super::daily::paris();
    let mut bounds = Vec::with_capacity(days as usize + 1);
    for d in 0..=days {
        let date = first
            .checked_add(i64::from(d).days())
            .map_err(|e| QueryError::InvalidArgument(format!("day {d} after {first}: {e}")))?;
        bounds.push(super::calendar::day_start_utc(&tz, date)?);
    }
    let (Some(&from), Some(&to)) = (bounds.first(), bounds.last()) else {
        return Ok(DailyReadings::default());
    };
    let mut registers = Registers::new(plan, colours, from, to)?;
    let width = registers.names.len();
    let mut acc = vec![0i128; width];
    let mut indexes: Vec<Vec<Point>> = vec![Vec::with_capacity(bounds.len()); width];
    let mut daily = Vec::with_capacity(days as usize);
    let mut points = curve
        .iter()
        .filter(|p| p.ts_utc >= from && p.ts_utc < to)
        .peekable();
    let index_point = |ts_utc: i64, ws: i128| -> Result<Point, QueryError> {
        let wh = base_wh.saturating_add(i64::try_from(ws.div_euclid(3600)).unwrap_or(i64::MAX));
        let value = i32::try_from(wh).map_err(|_| {
            QueryError::InvalidArgument(format!("an index of {wh} Wh does not fit in 32 bits"))
        })?;
        Ok(Point {
            ts_utc,
            value,
            step_min: 1440,
            quality: Quality::Measured,
        })
    };
    for (i, &bound) in bounds.iter().enumerate() {
        while let Some(p) = points.next_if(|p| p.ts_utc < bound) {
            let end = (p.ts_utc + 60 * i64::from(p.step_min)).min(to);
            registers.split(p.ts_utc, end, p.value, &mut acc);
        }
        for (column, &ws) in indexes.iter_mut().zip(&acc) {
            column.push(index_point(bound, ws)?);
        }
        if i > 0 {
            let wh: i64 = indexes
                .iter()
                .map(|c| match (c.get(i - 1), c.get(i)) {
                    (Some(a), Some(b)) => i64::from(b.value) - i64::from(a.value),
                    _ => 0,
                })
                .sum();
            daily.push(Point {
                ts_utc: bounds[i - 1],
                value: i32::try_from(wh).unwrap_or(i32::MAX),
                step_min: 1440,
                quality: Quality::Measured,
            });
        }
    }
    Ok(DailyReadings {
        registers: registers.names.clone(),
        indexes,
        daily,
    })
}

impl DailyReadings {
    /// Every point with its channel: the daily energy, then each register's indexes on
    /// `channels[k]`, the channel of `registers[k]` (as `Store::index_channel` gives it).
    pub fn points<'a>(
        &'a self,
        channels: &'a [Channel],
    ) -> impl Iterator<Item = (Channel, Point)> + 'a {
        let daily = self.daily.iter().map(|p| (Channel::DAILY_ENERGY, *p));
        let indexes = channels
            .iter()
            .zip(&self.indexes)
            .flat_map(|(&channel, points)| points.iter().map(move |p| (channel, *p)));
        daily.chain(indexes)
    }
}

//! Realistic, deterministic household load curves for Courbe's tests, benches and `courbe gen`.
//!
//! Pure computation: no files, threads or clocks. Each meter is generated on demand from the
//! fleet's seed and its index alone, so meter `i` is the same whatever the fleet size, and a fleet
//! of any size can be streamed one meter at a time.
//!
//! # Model
//! Every household draws its traits once ([`Household`]): standby load and a cycling fridge, about
//! 35% with electric convectors (thermostatic, driven by an outdoor temperature with a seasonal
//! curve and day-to-day weather shared by the whole fleet), half with a water heater running in
//! the off-peak window (22:00 or 01:00 local), about 10% with solar panels (a sunrise-to-sunset
//! bell scaled by season and the day's clouds; the consumption channel is what the grid supplies,
//! the production channel what is injected). Days follow Europe/Paris local time (a local day has
//! 46, 48 or 50 half-hours), with morning and evening peaks, weekends and French public holidays,
//! vacations, and appliance runs (kettle, hob, oven, washing machine, dryer, dishwasher) whose
//! interval averages are exact overlaps, so values are flat when nothing changes. The daily
//! maximum apparent power accounts for sub-interval spikes and is never below the curve's maximum.
//!
//! Data quality: a few percent of missing readings (runs, sometimes whole days, more on a few
//! flaky meters), about 1-2% estimated (quality 1, smooth profile values), rare corrected
//! (quality 2), and optionally a share of meters whose step changes once.
//!
//! ```
//! use courbe_workload::{Fleet, FleetConfig};
//! let fleet = Fleet::new(FleetConfig { meters: 10, days: 7, ..FleetConfig::default() });
//! let meter = fleet.meter(3);
//! assert_eq!(meter.meter_id.len(), 14);
//! assert!(meter.consumption.len() > 6 * 48);
//! ```

mod calendar;
pub mod civil;
mod household;
pub mod rng;
mod spot;

use std::sync::Arc;

use jiff::civil::Date;

use calendar::Day;
pub use household::Household;
use household::{simulate_day, DayOut, Scratch};
use rng::{mix, Rng};
pub use spot::{synthetic_spot, SpotPrice};

/// The curve steps a meter may have, minutes.
pub const STEPS_MIN: [u16; 5] = [5, 10, 15, 30, 60];

const STEP_CHANGE_STREAM: u64 = 0x5354_4550_0000_0000;

/// One generated reading. `quality`: 0 measured, 1 estimated, 2 corrected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// Interval start (for max power: the instant of the daily maximum), Unix seconds UTC.
    pub ts_utc: i64,
    /// W (VA for max power).
    pub value: i32,
    pub step_min: u16,
    pub quality: u8,
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    pub meters: u32,
    /// First local day (Europe/Paris), from its local midnight.
    pub start: Date,
    pub days: u32,
    pub seed: u64,
    /// Step of every meter's curve, minutes (30 by default): 5, 10, 15, 30 or 60; any other
    /// value is replaced by 30 in [`Fleet::new`].
    pub step_min: u16,
    /// Share of meters whose step changes once in the span, 0 by default. The new step is finer
    /// (60 to 30, 30 to 10, 15 or 10 to 5), or 10 for meters at 5 minutes.
    pub step_change_share: f64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            meters: 2_000,
            start: jiff::civil::date(2024, 1, 1),
            days: 365,
            seed: 1,
            step_min: 30,
            step_change_share: 0.0,
        }
    }
}

/// One meter's whole span.
#[derive(Clone, Debug)]
pub struct MeterSeries {
    pub meter_id: String,
    /// Load curve, W, in time order (gaps are missing readings).
    pub consumption: Vec<Reading>,
    /// Solar production for the meters that have it, else empty.
    pub production: Vec<Reading>,
    /// One reading a day: maximum apparent power (VA) and its instant.
    pub max_power: Vec<Reading>,
}

/// The colour of a Tempo day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TempoColour {
    Blue,
    White,
    Red,
}

/// A fleet: meters are generated one at a time, each independently of the others.
#[derive(Clone, Debug)]
pub struct Fleet {
    config: FleetConfig,
    /// The local days of the span with their shared weather, computed once.
    calendar: Arc<[Day]>,
}

impl Fleet {
    pub fn new(mut config: FleetConfig) -> Fleet {
        if !STEPS_MIN.contains(&config.step_min) {
            config.step_min = 30;
        }
        let calendar = calendar::build(config.start, config.days, config.seed).into();
        Fleet { config, calendar }
    }

    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// The id of meter `index`: 14 digits, like a French PRM.
    pub fn meter_id(&self, index: u32) -> String {
        // An affine map modulo 10^14 with a multiplier coprime to 10: a bijection, so ids are
        // distinct for every index.
        const MODULUS: u128 = 100_000_000_000_000;
        let id = (31_415_926_537u128 * u128::from(index) + 9_111_642_617_347) % MODULUS;
        format!("{id:014}")
    }

    /// The traits of meter `index`'s household.
    pub fn household(&self, index: u32) -> Household {
        Household::draw(&mut Rng::new(self.meter_seed(index)))
    }

    /// Every meter of the fleet, generated one at a time.
    pub fn meters(&self) -> impl Iterator<Item = MeterSeries> + '_ {
        (0..self.config.meters).map(|i| self.meter(i))
    }

    fn meter_seed(&self, index: u32) -> u64 {
        mix(self.config.seed, u64::from(index))
    }

    /// The day (index into the calendar) from which meter `index` uses another step, and that
    /// step, for the meters drawn to change step.
    fn step_change(&self, index: u32) -> Option<(usize, u16)> {
        let mut rng = Rng::new(mix(self.meter_seed(index) ^ STEP_CHANGE_STREAM, 0));
        let chance = rng.unit();
        let days = self.calendar.len();
        if chance >= self.config.step_change_share || days < 2 {
            return None;
        }
        let day = rng.int(1, days as i64 - 1) as usize;
        let step = match self.config.step_min {
            60 => 30,
            30 => 10,
            15 | 10 => 5,
            _ => 10,
        };
        Some((day, step))
    }

    /// A Tempo day-colour calendar for the span, drawn from the fleet's weather the way RTE picks
    /// colours (synthetic, not RTE's announcements): in each Tempo year (September to August),
    /// red days are the coldest working days of November to March and white days the coldest
    /// remaining days other than Sundays, in the yearly proportions of the option (22 red and 43
    /// white days out of the year's candidates, pro rata for a span shorter than a year);
    /// every other day is blue. Returned in date order, one entry per day of the span.
    pub fn tempo_colours(&self) -> Vec<(Date, TempoColour)> {
        let date_of = |day: &Day| {
            jiff::civil::date(1970, 1, 1)
                .checked_add(jiff::Span::new().days(day.day_num))
                .unwrap_or(self.config.start)
        };
        let tempo_year = |d: Date| {
            if d.month() >= 9 {
                d.year()
            } else {
                d.year() - 1
            }
        };
        let mut colours: Vec<(Date, TempoColour)> = self
            .calendar
            .iter()
            .map(|day| (date_of(day), TempoColour::Blue))
            .collect();
        let mut start = 0;
        while start < colours.len() {
            let year = tempo_year(colours[start].0);
            let end = start
                + colours[start..]
                    .iter()
                    .take_while(|(d, _)| tempo_year(*d) == year)
                    .count();
            let coldest = |keep: &dyn Fn(usize) -> bool| {
                let mut picked: Vec<usize> = (start..end).filter(|&i| keep(i)).collect();
                picked.sort_by(|&a, &b| {
                    self.calendar[a]
                        .t_mean_c
                        .total_cmp(&self.calendar[b].t_mean_c)
                        .then(a.cmp(&b))
                });
                picked
            };
            let winter_working = |i: usize| {
                let (d, day) = (colours[i].0, &self.calendar[i]);
                !day.free && (d.month() >= 11 || d.month() <= 3)
            };
            let red = coldest(&winter_working);
            // About 104 working days from November to March.
            let quota = |n: usize, per_year: usize, candidates_per_year: usize| {
                (n * per_year)
                    .div_ceil(candidates_per_year)
                    .min(per_year)
                    .min(n)
            };
            for &i in red.iter().take(quota(red.len(), 22, 104)) {
                colours[i].1 = TempoColour::Red;
            }
            let not_sunday = |i: usize| {
                colours[i].0.weekday() != jiff::civil::Weekday::Sunday
                    && colours[i].1 == TempoColour::Blue
            };
            let white = coldest(&not_sunday);
            let candidates = (start..end)
                .filter(|&i| colours[i].0.weekday() != jiff::civil::Weekday::Sunday)
                .count();
            for &i in white.iter().take(quota(candidates, 43, 313)) {
                colours[i].1 = TempoColour::White;
            }
            start = end;
        }
        colours
    }

    /// Generates meter `index` (deterministic for the fleet's seed and the index).
    pub fn meter(&self, index: u32) -> MeterSeries {
        let meter_seed = self.meter_seed(index);
        let household = Household::draw(&mut Rng::new(meter_seed));
        let step_change = self.step_change(index);
        let base_step = self.config.step_min;
        let finest = step_change
            .map_or(base_step, |(_, s)| s.min(base_step))
            .max(1);
        let per_day = 1440 / usize::from(finest) + 2;
        let days = self.calendar.len();
        let mut series = MeterSeries {
            meter_id: self.meter_id(index),
            consumption: Vec::with_capacity(days * per_day),
            production: Vec::with_capacity(if household.solar_peak_w > 0 {
                days * per_day
            } else {
                0
            }),
            max_power: Vec::with_capacity(days),
        };
        let mut scratch = Scratch::default();
        let mut absences: Option<(i16, Vec<(i64, i64)>)> = None;
        for (i, day) in self.calendar.iter().enumerate() {
            if absences.as_ref().is_none_or(|(y, _)| *y != day.year) {
                absences = Some((day.year, household.absences(meter_seed, day.year)));
            }
            let absent = absences
                .as_ref()
                .is_some_and(|(_, a)| a.iter().any(|&(s, e)| day.day_num >= s && day.day_num < e));
            let step_min = match step_change {
                Some((from, step)) if i >= from => step,
                _ => base_step,
            };
            let mut rng = Rng::new(mix(meter_seed, day.day_num as u64));
            simulate_day(
                &household,
                day,
                absent,
                step_min,
                &mut rng,
                &mut scratch,
                DayOut {
                    consumption: &mut series.consumption,
                    production: &mut series.production,
                    max_power: &mut series.max_power,
                },
            );
        }
        series
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tempo_year_has_22_red_working_winter_days_and_43_white_days_never_on_sunday() {
        let fleet = Fleet::new(FleetConfig {
            meters: 1,
            start: jiff::civil::date(2023, 9, 1),
            days: 366,
            ..FleetConfig::default()
        });
        let colours = fleet.tempo_colours();
        assert_eq!(colours.len(), 366);
        let count = |c: TempoColour| colours.iter().filter(|(_, x)| *x == c).count();
        assert_eq!(
            (count(TempoColour::Red), count(TempoColour::White)),
            (22, 43)
        );
        for (date, colour) in &colours {
            let sunday = date.weekday() == jiff::civil::Weekday::Sunday;
            match colour {
                TempoColour::Red => {
                    assert!(date.month() >= 11 || date.month() <= 3, "{date}");
                    assert!(!sunday && date.weekday() != jiff::civil::Weekday::Saturday);
                }
                TempoColour::White => assert!(!sunday, "{date}"),
                TempoColour::Blue => {}
            }
        }
    }

    use super::*;
    use jiff::civil::date;

    fn fleet(meters: u32, start: Date, days: u32) -> Fleet {
        Fleet::new(FleetConfig {
            meters,
            start,
            days,
            seed: 42,
            ..FleetConfig::default()
        })
    }

    #[test]
    fn a_meter_is_the_same_whatever_the_fleet_size() {
        let small = fleet(3, date(2024, 1, 1), 20);
        let large = fleet(5_000, date(2024, 1, 1), 20);
        for i in 0..3 {
            let a = small.meter(i);
            let b = large.meter(i);
            assert_eq!(a.meter_id, b.meter_id);
            assert_eq!(a.consumption, b.consumption);
            assert_eq!(a.production, b.production);
            assert_eq!(a.max_power, b.max_power);
        }
        assert_eq!(small.meter(2).consumption, small.meter(2).consumption);
        assert_ne!(small.meter(1).consumption, small.meter(2).consumption);
    }

    #[test]
    fn another_seed_gives_another_fleet() {
        let a = fleet(1, date(2024, 1, 1), 5).meter(0);
        let mut config = fleet(1, date(2024, 1, 1), 5).config().clone();
        config.seed = 43;
        let b = Fleet::new(config).meter(0);
        assert_ne!(a.consumption, b.consumption);
    }

    #[test]
    fn meter_ids_are_fourteen_distinct_digits() {
        let f = fleet(0, date(2024, 1, 1), 1);
        let ids: std::collections::HashSet<String> = (0..20_000).map(|i| f.meter_id(i)).collect();
        assert_eq!(ids.len(), 20_000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 14 && id.bytes().all(|b| b.is_ascii_digit())));
        assert_eq!(f.meter_id(u32::MAX).len(), 14);
    }

    #[test]
    fn dst_days_have_46_and_50_half_hours() {
        // 2024-03-31 and 2024-10-27 are the DST days; day 0 of each span is the day before.
        for (start, expected) in [
            (date(2024, 3, 30), [48, 46, 48]),
            (date(2024, 10, 26), [48, 50, 48]),
        ] {
            let f = Fleet::new(FleetConfig {
                meters: 1,
                start,
                days: 3,
                seed: 1,
                ..FleetConfig::default()
            });
            let days = &f.calendar;
            let intervals: Vec<i64> = days
                .iter()
                .map(|d| (d.end_utc - d.start_utc) / 1800)
                .collect();
            assert_eq!(intervals, expected);
            // A meter without gaps on those days has exactly that many readings per day.
            let clean = (0..200)
                .map(|i| f.meter(i))
                .find(|m| m.consumption.len() == expected.iter().sum::<i64>() as usize)
                .expect("some meter has no gap over three days");
            for (day, &n) in days.iter().zip(&expected) {
                let count = clean
                    .consumption
                    .iter()
                    .filter(|r| r.ts_utc >= day.start_utc && r.ts_utc < day.end_utc)
                    .count();
                assert_eq!(count as i64, n);
            }
        }
    }

    #[test]
    fn readings_are_aligned_ordered_and_non_negative() {
        let f = fleet(30, date(2024, 3, 25), 14);
        for m in f.meters() {
            for w in m.consumption.windows(2) {
                assert!(w[0].ts_utc + i64::from(w[0].step_min) * 60 <= w[1].ts_utc);
            }
            for r in m.consumption.iter().chain(&m.production) {
                assert_eq!(r.ts_utc % (i64::from(r.step_min) * 60), 0);
                assert!(r.value >= 0);
                assert!(r.quality <= 2);
            }
        }
    }

    #[test]
    fn heated_homes_use_more_in_winter_than_in_summer() {
        let f = fleet(60, date(2024, 1, 1), 366);
        let mut heated = 0;
        for i in 0..60 {
            if !f.household(i).electric_heating {
                continue;
            }
            heated += 1;
            let m = f.meter(i);
            let mean = |month: std::ops::Range<i64>| {
                let v: Vec<i64> = m
                    .consumption
                    .iter()
                    .filter(|r| month.contains(&r.ts_utc))
                    .map(|r| i64::from(r.value))
                    .collect();
                v.iter().sum::<i64>() as f64 / v.len().max(1) as f64
            };
            let january = mean(1_704_063_600..1_706_742_000);
            let july = mean(1_719_784_800..1_722_463_200);
            assert!(
                january > 1.5 * july,
                "meter {i}: january {january} W, july {july} W"
            );
        }
        assert!(heated >= 10, "only {heated} heated homes among 60");
    }

    #[test]
    fn gaps_and_estimates_stay_in_the_stated_shares() {
        let f = fleet(200, date(2024, 1, 1), 60);
        let expected: usize = f
            .calendar
            .iter()
            .map(|d| ((d.end_utc - d.start_utc) / 1800) as usize)
            .sum();
        let (mut present, mut estimated, mut corrected) = (0usize, 0usize, 0usize);
        for m in f.meters() {
            present += m.consumption.len();
            estimated += m.consumption.iter().filter(|r| r.quality == 1).count();
            corrected += m.consumption.iter().filter(|r| r.quality == 2).count();
        }
        let total = expected * 200;
        let gaps = 1.0 - present as f64 / total as f64;
        let estimated = estimated as f64 / present as f64;
        let corrected = corrected as f64 / present as f64;
        assert!((0.01..=0.03).contains(&gaps), "gaps {gaps}");
        assert!((0.01..=0.02).contains(&estimated), "estimated {estimated}");
        assert!(
            corrected > 0.0 && corrected < 0.002,
            "corrected {corrected}"
        );
    }

    #[test]
    fn solar_production_is_zero_at_night_and_positive_at_noon() {
        let f = fleet(150, date(2024, 6, 1), 10);
        let solar: Vec<u32> = (0..150)
            .filter(|&i| f.household(i).solar_peak_w > 0)
            .collect();
        assert!(!solar.is_empty());
        let mut noon_total = 0i64;
        for &i in &solar {
            let m = f.meter(i);
            assert_eq!(m.production.len(), m.consumption.len());
            for r in &m.production {
                // Summer local time is UTC+2; night from 22:00 to 05:00 local.
                let utc_hour = r.ts_utc.rem_euclid(86_400) / 3600;
                if (20..24).contains(&utc_hour) || (0..3).contains(&utc_hour) {
                    assert_eq!(r.value, 0, "meter {i} produces at {}", r.ts_utc);
                }
                if (10..12).contains(&utc_hour) {
                    noon_total += i64::from(r.value);
                }
            }
        }
        assert!(noon_total > 0);
    }

    #[test]
    fn the_daily_maximum_is_at_least_the_curve_maximum_within_the_day() {
        let f = fleet(40, date(2024, 2, 1), 10);
        for m in f.meters() {
            for max in &m.max_power {
                assert_eq!(max.step_min, 1440);
                let day = f
                    .calendar
                    .iter()
                    .find(|d| max.ts_utc >= d.start_utc && max.ts_utc < d.end_utc)
                    .expect("the maximum lies within a local day");
                let curve_max = m
                    .consumption
                    .iter()
                    .filter(|r| r.ts_utc >= day.start_utc && r.ts_utc < day.end_utc)
                    .map(|r| r.value)
                    .max()
                    .unwrap_or(0);
                assert!(max.value >= curve_max, "{} < {curve_max}", max.value);
            }
            assert!(m.max_power.len() <= 10);
        }
    }

    #[test]
    fn every_step_gives_whole_local_days_and_an_invalid_one_falls_back_to_30() {
        for (step, per_day) in [
            (5u16, 288usize),
            (10, 144),
            (15, 96),
            (60, 24),
            (0, 48),
            (7, 48),
        ] {
            let f = Fleet::new(FleetConfig {
                meters: 50,
                days: 1,
                step_min: step,
                start: date(2024, 6, 3),
                ..FleetConfig::default()
            });
            let full = f.meters().map(|m| m.consumption.len()).max().unwrap_or(0);
            assert_eq!(full, per_day, "step {step}");
        }
    }

    #[test]
    fn homes_use_less_while_their_occupants_are_on_vacation() {
        let f = fleet(40, date(2024, 6, 15), 90);
        let mut checked = 0;
        for i in 0..40 {
            let absences = f.household(i).absences(f.meter_seed(i), 2024);
            let away = |ts: i64| {
                f.calendar
                    .iter()
                    .find(|d| ts >= d.start_utc && ts < d.end_utc)
                    .is_some_and(|d| {
                        absences
                            .iter()
                            .any(|&(s, e)| d.day_num >= s && d.day_num < e)
                    })
            };
            let m = f.meter(i);
            let (mut in_sum, mut in_n, mut out_sum, mut out_n) = (0i64, 0i64, 0i64, 0i64);
            for r in &m.consumption {
                if away(r.ts_utc) {
                    in_sum += i64::from(r.value);
                    in_n += 1;
                } else {
                    out_sum += i64::from(r.value);
                    out_n += 1;
                }
            }
            if in_n < 48 * 3 || out_n == 0 || f.household(i).solar_peak_w > 0 {
                continue;
            }
            checked += 1;
            let (away_mean, home_mean) = (in_sum / in_n, out_sum / out_n);
            assert!(
                away_mean * 10 < home_mean * 7,
                "meter {i}: away {away_mean} W, home {home_mean} W"
            );
        }
        assert!(checked >= 15, "only {checked} meters had a summer vacation");
    }

    #[test]
    fn a_share_of_meters_changes_step_once() {
        let f = Fleet::new(FleetConfig {
            meters: 100,
            days: 20,
            step_change_share: 0.3,
            ..FleetConfig::default()
        });
        let mut changed = 0;
        for m in f.meters() {
            let steps: Vec<u16> = m.consumption.iter().map(|r| r.step_min).collect();
            let switches = steps.windows(2).filter(|w| w[0] != w[1]).count();
            assert!(switches <= 1);
            if switches == 1 {
                changed += 1;
                assert_eq!((steps[0], steps[steps.len() - 1]), (30, 10));
            }
        }
        assert!((15..=45).contains(&changed), "{changed} changed");
    }
}

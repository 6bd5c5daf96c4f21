//! The days of a fleet's span: Europe/Paris local days with their UTC bounds and DST transition,
//! French public holidays, and the weather and sun that every meter of the fleet shares.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::rng::{mix, Rng};

/// Europe/Paris as the EU rule in force since 1996 (CET/CEST, switching at 01:00 UTC on the last
/// Sundays of March and October). A POSIX rule rather than the system tz database keeps the
/// generator pure and its output identical on every machine.
const PARIS_POSIX: &str = "CET-1CEST,M3.5.0,M10.5.0/3";

const DAY_S: i64 = 86_400;
/// Latitude and longitude of the centre of France, degrees.
const LATITUDE_DEG: f64 = 46.5;
const LONGITUDE_DEG: f64 = 2.5;

const WEATHER_STREAM: u64 = 0x5745_4154_4845_5200;
const CLOUD_STREAM: u64 = 0x434C_4F55_4400_0000;

/// One local day (Europe/Paris).
#[derive(Clone, Debug)]
pub(crate) struct Day {
    /// UTC instant of local midnight.
    pub start_utc: i64,
    /// UTC instant of the next local midnight: `end_utc - start_utc` is 23, 24 or 25 hours.
    pub end_utc: i64,
    /// UTC instant of the offset change inside this day, `i64::MAX` when there is none.
    pub transition_utc: i64,
    /// UTC offset before and after `transition_utc`, seconds.
    pub offset_before_s: i64,
    pub offset_after_s: i64,
    /// Days since 1970-01-01 of the civil date: the key of everything drawn per day.
    pub day_num: i64,
    pub year: i16,
    /// Weekend or public holiday.
    pub free: bool,
    /// Daily mean outdoor temperature, °C (seasonal curve plus shared weather).
    pub t_mean_c: f64,
    /// Half the day's outdoor temperature swing, °C.
    pub t_swing_c: f64,
    /// Cloud cover, 0 (clear) to 1 (overcast).
    pub cloud: f64,
    pub sunrise_utc: i64,
    pub sunset_utc: i64,
    /// Sine of the sun's elevation at solar noon (clear-sky irradiance scale).
    pub sun_peak: f64,
}

impl Day {
    pub(crate) fn offset_at(&self, ts_utc: i64) -> i64 {
        if ts_utc >= self.transition_utc {
            self.offset_after_s
        } else {
            self.offset_before_s
        }
    }

    /// Local wall-clock seconds since this day's midnight at `ts_utc` (in `[0, 86400)` for an
    /// instant of the day; the skipped or repeated hour of a DST day is reflected as on a clock).
    pub(crate) fn local_s(&self, ts_utc: i64) -> i64 {
        ts_utc + self.offset_at(ts_utc) - self.day_num * DAY_S
    }

    /// The UTC instant at which the local clock of this day reads `local_s` (the first one when
    /// the clock reads it twice, the time after the gap when it skips it).
    pub(crate) fn utc_at(&self, local_s: i64) -> i64 {
        let before = self.day_num * DAY_S + local_s - self.offset_before_s;
        if before < self.transition_utc {
            before
        } else {
            self.day_num * DAY_S + local_s - self.offset_after_s
        }
    }
}

/// Builds the calendar of `days` local days from `start`. Stops early (a shorter calendar) only
/// where jiff cannot represent a date, i.e. near the year 9999.
pub(crate) fn build(start: Date, days: u32, seed: u64) -> Vec<Day> {
    let Ok(tz) = TimeZone::posix(PARIS_POSIX) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(days as usize);
    let mut holidays: Option<(i16, Vec<Date>)> = None;
    for i in 0..i64::from(days) {
        let Some(day) = build_day(&tz, start, i, seed, &mut holidays) else {
            break;
        };
        out.push(day);
    }
    out
}

fn build_day(
    tz: &TimeZone,
    start: Date,
    i: i64,
    seed: u64,
    holidays: &mut Option<(i16, Vec<Date>)>,
) -> Option<Day> {
    let date = start.checked_add(i.days()).ok()?;
    let next = date.checked_add(1.days()).ok()?;
    let start_utc = date.to_zoned(tz.clone()).ok()?.timestamp().as_second();
    let end_utc = next.to_zoned(tz.clone()).ok()?.timestamp().as_second();
    let offset = |s: i64| -> Option<i64> {
        Some(i64::from(
            tz.to_offset(Timestamp::from_second(s).ok()?).seconds(),
        ))
    };
    let offset_before_s = offset(start_utc)?;
    let offset_after_s = offset(end_utc - 1)?;
    let mut transition_utc = i64::MAX;
    if offset_before_s != offset_after_s {
        // Offsets change on the hour; find the first hour with the new one.
        let mut t = start_utc;
        while t < end_utc {
            if offset(t)? == offset_after_s {
                transition_utc = t;
                break;
            }
            t += 3600;
        }
    }
    let day_num = (start_utc + offset_before_s).div_euclid(DAY_S);
    let year = date.year();
    if holidays.as_ref().is_none_or(|(y, _)| *y != year) {
        *holidays = Some((year, french_holidays(year)));
    }
    let holiday = holidays.as_ref().is_some_and(|(_, h)| h.contains(&date));
    let weekend = date.weekday().to_monday_zero_offset() >= 5;
    let doy = f64::from(date.day_of_year());
    let (t_mean_c, t_swing_c) = temperature(seed, day_num, doy);
    let cloud = cloud_cover(seed, day_num, doy);
    let (sunrise_utc, sunset_utc, sun_peak) = sun(day_num, doy);
    Some(Day {
        start_utc,
        end_utc,
        transition_utc,
        offset_before_s,
        offset_after_s,
        day_num,
        year,
        free: weekend || holiday,
        t_mean_c,
        t_swing_c,
        cloud,
        sunrise_utc,
        sunset_utc,
        sun_peak,
    })
}

/// The eleven French public holidays of `year` (metropolitan France).
pub(crate) fn french_holidays(year: i16) -> Vec<Date> {
    let mut out = Vec::with_capacity(11);
    for (m, d) in [
        (1, 1),
        (5, 1),
        (5, 8),
        (7, 14),
        (8, 15),
        (11, 1),
        (11, 11),
        (12, 25),
    ] {
        if let Ok(date) = Date::new(year, m, d) {
            out.push(date);
        }
    }
    if let Some(easter) = easter_sunday(year) {
        // Easter Monday, Ascension Thursday, Whit Monday.
        for offset in [1, 39, 50] {
            if let Ok(date) = easter.checked_add(offset.days()) {
                out.push(date);
            }
        }
    }
    out
}

/// Gregorian Easter Sunday (anonymous Gregorian algorithm).
fn easter_sunday(year: i16) -> Option<Date> {
    let y = i32::from(year);
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    Date::new(year, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()
}

pub(crate) use crate::civil::days_from_civil;

fn shared_normal(seed: u64, stream: u64, day_num: i64) -> f64 {
    Rng::new(mix(seed ^ stream, day_num as u64)).normal()
}

/// Daily mean outdoor temperature: a seasonal curve (about 4.5 °C mid-January, 20 °C late July)
/// plus weather, a moving average of daily shocks so that cold and warm spells last several days.
/// A function of the absolute day, so fleets with different spans agree on shared days.
fn temperature(seed: u64, day_num: i64, doy: f64) -> (f64, f64) {
    let seasonal = 12.2 - 7.8 * (2.0 * std::f64::consts::PI * (doy - 20.0) / 365.25).cos();
    const WEIGHTS: [f64; 5] = [0.35, 0.3, 0.2, 0.1, 0.05];
    let norm = WEIGHTS.iter().map(|w| w * w).sum::<f64>().sqrt();
    let weather: f64 = WEIGHTS
        .iter()
        .enumerate()
        .map(|(k, w)| w * shared_normal(seed, WEATHER_STREAM, day_num - k as i64))
        .sum::<f64>()
        / norm;
    let mut rng = Rng::new(mix(seed ^ WEATHER_STREAM, (day_num as u64) ^ 0xFFFF));
    let swing = rng.range(2.0, 5.0);
    (seasonal + 3.2 * weather, swing)
}

/// Cloud cover of the day: cloudier in winter, correlated with the previous day.
fn cloud_cover(seed: u64, day_num: i64, doy: f64) -> f64 {
    let winter = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * (doy - 15.0) / 365.25).cos();
    let today = shared_normal(seed, CLOUD_STREAM, day_num);
    let yesterday = shared_normal(seed, CLOUD_STREAM, day_num - 1);
    let z = 0.7 * today + 0.5 * yesterday + (winter - 0.5) * 1.2;
    // Logistic squashing to (0, 1).
    1.0 / (1.0 + (-1.3 * z).exp())
}

/// Sunrise and sunset (UTC instants) and the noon elevation factor, for the centre of France.
fn sun(day_num: i64, doy: f64) -> (i64, i64, f64) {
    use std::f64::consts::PI;
    let declination = 23.44f64.to_radians() * (2.0 * PI * (284.0 + doy) / 365.0).sin();
    let lat = LATITUDE_DEG.to_radians();
    let cos_h = (-lat.tan() * declination.tan()).clamp(-1.0, 1.0);
    let half_day_h = cos_h.acos().to_degrees() / 15.0;
    let b = 2.0 * PI * (doy - 81.0) / 364.0;
    let equation_of_time_min = 9.87 * (2.0 * b).sin() - 7.53 * b.cos() - 1.5 * b.sin();
    let noon_h = 12.0 - LONGITUDE_DEG / 15.0 - equation_of_time_min / 60.0;
    let midnight = day_num * DAY_S;
    let sunrise = midnight + ((noon_h - half_day_h) * 3600.0) as i64;
    let sunset = midnight + ((noon_h + half_day_h) * 3600.0) as i64;
    let sun_peak = (PI / 2.0 - lat + declination).sin();
    (sunrise, sunset, sun_peak)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn easter_falls_on_known_dates() {
        assert_eq!(easter_sunday(2024), Some(date(2024, 3, 31)));
        assert_eq!(easter_sunday(2025), Some(date(2025, 4, 20)));
        assert_eq!(easter_sunday(2019), Some(date(2019, 4, 21)));
    }

    #[test]
    fn french_holidays_include_the_movable_feasts() {
        let h = french_holidays(2024);
        assert_eq!(h.len(), 11);
        for d in [
            date(2024, 4, 1),
            date(2024, 5, 9),
            date(2024, 5, 20),
            date(2024, 7, 14),
        ] {
            assert!(h.contains(&d), "{d} missing");
        }
    }

    #[test]
    fn day_numbers_match_the_civil_calendar() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 1, 1), 19_723);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn local_days_follow_the_paris_offsets() {
        let days = build(date(2024, 3, 30), 3, 1);
        let len_h: Vec<i64> = days
            .iter()
            .map(|d| (d.end_utc - d.start_utc) / 3600)
            .collect();
        assert_eq!(len_h, [24, 23, 24]);
        let dst = &days[1];
        // 2024-03-31: midnight is 23:00 UTC the day before, clocks jump at 01:00 UTC.
        assert_eq!(dst.start_utc, 1_711_839_600);
        assert_eq!(dst.transition_utc, 1_711_846_800);
        assert_eq!(dst.local_s(dst.transition_utc), 3 * 3600);
        assert_eq!(dst.local_s(dst.transition_utc - 1), 2 * 3600 - 1);
        assert_eq!(dst.utc_at(22 * 3600), dst.start_utc + 21 * 3600);
        assert_eq!(days[0].day_num, days_from_civil(2024, 3, 30));
        let autumn = build(date(2024, 10, 27), 1, 1);
        assert_eq!(autumn[0].end_utc - autumn[0].start_utc, 25 * 3600);
    }

    #[test]
    fn weather_is_shared_and_independent_of_the_span() {
        let a = build(date(2024, 1, 1), 40, 9);
        let b = build(date(2024, 1, 11), 10, 9);
        assert_eq!(a[10].t_mean_c, b[0].t_mean_c);
        assert_eq!(a[15].cloud, b[5].cloud);
        let winter: f64 = a.iter().map(|d| d.t_mean_c).sum::<f64>() / a.len() as f64;
        let summer = build(date(2024, 7, 1), 40, 9);
        let summer: f64 = summer.iter().map(|d| d.t_mean_c).sum::<f64>() / summer.len() as f64;
        assert!(winter + 8.0 < summer, "winter {winter} summer {summer}");
    }

    #[test]
    fn the_sun_rises_before_noon_and_sets_later_in_summer() {
        let jan = build(date(2024, 1, 15), 1, 1);
        let jun = build(date(2024, 6, 21), 1, 1);
        let len = |d: &Day| d.sunset_utc - d.sunrise_utc;
        assert!(len(&jan[0]) < 9 * 3600 && len(&jan[0]) > 8 * 3600);
        assert!(len(&jun[0]) > 15 * 3600 && len(&jun[0]) < 16 * 3600 + 1800);
        assert!(jun[0].sun_peak > jan[0].sun_peak);
    }
}

//! A **synthetic** day-ahead spot price series (EUR/MWh), for demos, tests and benches. It is no
//! market data and forecasts nothing: it only has the shapes a dynamic offer must cope with.
//!
//! Deterministic for a seed (each local day draws from `(seed, day)` alone, so a day's prices do
//! not depend on where the span starts). 15-minute steps aligned on the quarter hour, Europe/Paris
//! local days (92, 96 or 100 quarter hours). The model, per quarter hour at local time `h`:
//!
//! - a seasonal level: about 115 EUR/MWh in mid-January down to about 55 in mid-July (cosine);
//! - a daily shape: night trough (03:00-05:00, ×0.70), morning peak (08:00, ×1.25), afternoon
//!   plateau, evening peak (19:00, ×1.45);
//! - weekends at ×0.80 of that;
//! - sunny days in April to September (about 1 in 4 on weekdays, 1 in 2 at weekends): midday
//!   prices (11:00-16:00) fall below zero, down to -5..-60 EUR/MWh at 13:30;
//! - cold evenings in December to February (about 1 day in 10): 17:30-21:00 spike ×2.5-5;
//! - ±6 % noise per quarter hour; values rounded to the cent of a euro per MWh.

use jiff::civil::Date;

use crate::calendar;
use crate::rng::{mix, Rng};

const SPOT_STREAM: u64 = 0x5350_4f54_0000_0000;

/// One price: the interval `[ts_utc, ts_utc + step_min)` costs `centi_eur_mwh` / 100 EUR/MWh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpotPrice {
    pub ts_utc: i64,
    /// EUR/MWh × 100, signed.
    pub centi_eur_mwh: i32,
    pub step_min: u16,
}

/// The synthetic 15-minute prices of `days` Europe/Paris local days from `start`.
pub fn synthetic_spot(seed: u64, start: Date, days: u32) -> Vec<SpotPrice> {
    let mut out = Vec::with_capacity(days as usize * 96);
    for (i, day) in calendar::build(start, days, seed).iter().enumerate() {
        let Ok(date) = start.checked_add(jiff::Span::new().days(i as i64)) else {
            break;
        };
        let mut rng = Rng::new(mix(seed ^ SPOT_STREAM, day.day_num as u64));
        let month = date.month();
        // 1970-01-01 (day 0) was a Thursday: Monday is 0, Saturday 5.
        let weekend = (day.day_num + 3).rem_euclid(7) >= 5;
        // Day of year, for the seasonal level (0 = 1 January).
        let doy = f64::from(date.day_of_year() - 1);
        let level = 85.0 + 30.0 * (2.0 * std::f64::consts::PI * (doy - 15.0) / 365.25).cos();
        let sunny = (4..=9).contains(&month) && rng.unit() < if weekend { 0.5 } else { 0.25 };
        let trough = -rng.range(5.0, 60.0);
        let cold = matches!(month, 12 | 1 | 2) && rng.unit() < 0.10;
        let spike = rng.range(2.5, 5.0);
        let mut t = day.start_utc;
        while t < day.end_utc {
            // Local wall-clock hour as a fraction (a DST day repeats or skips an hour).
            let h = day.local_s(t) as f64 / 3600.0;
            let mut p = level * shape(h) * if weekend { 0.80 } else { 1.0 };
            if sunny && (11.0..16.0).contains(&h) {
                // A bell that reaches `trough` at 13:30.
                let w = 1.0 - ((h - 13.5) / 2.5).powi(2);
                p = p * (1.0 - w) + trough * w;
            }
            if cold && (17.5..21.0).contains(&h) {
                p *= spike;
            }
            p *= 1.0 + rng.range(-0.06, 0.06);
            out.push(SpotPrice {
                ts_utc: t,
                centi_eur_mwh: (p * 100.0).round() as i32,
                step_min: 15,
            });
            t += 900;
        }
    }
    out
}

/// Relative price by local hour: trough at night, peaks at 08:00 and 19:00.
fn shape(h: f64) -> f64 {
    let bump =
        |centre: f64, width: f64, height: f64| height * (-((h - centre) / width).powi(2)).exp();
    0.72 + bump(8.0, 1.5, 0.53) + bump(19.0, 1.8, 0.73) + bump(14.0, 4.0, 0.25)
        - bump(4.0, 1.5, 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn the_series_is_deterministic_on_the_quarter_hour_and_covers_each_local_day() {
        let a = synthetic_spot(7, date(2024, 3, 30), 3);
        assert_eq!(a, synthetic_spot(7, date(2024, 3, 30), 3));
        // 30 March (96), 31 March (DST: 92), 1 April (96).
        assert_eq!(a.len(), 96 + 92 + 96);
        assert!(a.iter().all(|p| p.ts_utc % 900 == 0 && p.step_min == 15));
        assert!(a.windows(2).all(|w| w[1].ts_utc == w[0].ts_utc + 900));
        // A day does not depend on where the span starts.
        let b = synthetic_spot(7, date(2024, 3, 31), 1);
        assert_eq!(b[..], a[96..96 + 92]);
    }

    #[test]
    fn a_year_has_negative_spring_middays_and_winter_evening_spikes() {
        let year = synthetic_spot(1, date(2024, 1, 1), 366);
        assert_eq!(year.len(), 366 * 96);
        let negative = year.iter().filter(|p| p.centi_eur_mwh < 0).count();
        assert!(negative > 200, "{negative} negative quarter hours");
        let max = year.iter().map(|p| p.centi_eur_mwh).max().unwrap_or(0);
        assert!(max > 30_000, "max {max}");
        let mean = year.iter().map(|p| i64::from(p.centi_eur_mwh)).sum::<i64>() / year.len() as i64;
        assert!((5_000..12_000).contains(&mean), "mean {mean}");
    }
}

//! One household: its traits (drawn once per meter) and the simulation of one local day.
//!
//! Every interval value is the average power over the interval, computed analytically from the
//! loads that were on during it (cycling fridge and heaters, appliance runs, activity), so a value
//! is flat when nothing changes and the daily maximum can account for sub-interval spikes.

use crate::calendar::{days_from_civil, Day};
use crate::rng::{mix, Rng};
use crate::Reading;

const ABSENCE_STREAM: u64 = 0x4142_5345_4E43_4500;

/// The traits of one generated household (fixed for the whole span).
#[derive(Clone, Debug, PartialEq)]
pub struct Household {
    pub occupants: u8,
    /// Standby and always-on loads, W.
    pub standby_w: u32,
    /// Whether the home is heated by electric convectors (thermostatic, kW-level, cycling).
    pub electric_heating: bool,
    /// Installed heating power, W (0 without electric heating).
    pub heating_w: u32,
    /// Water heater power, W (0 without one); it runs in the off-peak window.
    pub water_heater_w: u32,
    /// Start of the off-peak (HC) window, minutes after local midnight (22:00 or 01:00).
    pub off_peak_start_min: u16,
    /// Peak power of the solar installation, W (0 without one).
    pub solar_peak_w: u32,
    /// Whether the adults leave for work on working days.
    pub works_away: bool,
    // Schedules, local seconds after midnight.
    wake_workday_s: f64,
    wake_free_s: f64,
    sleep_s: f64,
    leave_s: f64,
    return_s: f64,
    dinner_s: f64,
    /// Activity scale, W at full activity (cooking, lights, screens, showers' pumps...).
    activity_w: f64,
    lighting_w: f64,
    fridge_w: f64,
    fridge_period_s: i64,
    fridge_duty: f64,
    heater_units: u8,
    comfort_c: f64,
    eco_drop_c: f64,
    programmable: bool,
    /// Heat loss coefficient, W/K.
    loss_w_per_k: f64,
    water_heater_base_s: f64,
    dishwasher: bool,
    dryer: bool,
    wash_per_day: f64,
    /// Laundry and dishes started with the off-peak window.
    off_peak_saver: bool,
    power_factor: f64,
    gap_day_p: f64,
    gap_run_p: f64,
    estimated_run_p: f64,
    corrected_run_p: f64,
}

impl Household {
    pub(crate) fn draw(rng: &mut Rng) -> Household {
        let occupants = [1u8, 1, 2, 2, 2, 3, 3, 4, 4, 5][rng.int(0, 9) as usize];
        let occ = f64::from(occupants);
        let electric_heating = rng.chance(0.35);
        let heater_units = rng.int(3, 7) as u8;
        let heating_w = if electric_heating {
            (rng.range(3_500.0, 9_500.0) / 500.0).round() as u32 * 500
        } else {
            0
        };
        let comfort_c = rng.range(18.5, 21.5);
        let design_delta_k = comfort_c + 7.0;
        let water_heater_w = if rng.chance(0.5) {
            [1_500, 2_000, 2_200, 2_400, 3_000][rng.int(0, 4) as usize]
        } else {
            0
        };
        let works_away = rng.chance(0.65);
        let wake_workday_s = rng.range(5.75, 7.75) * 3600.0;
        let sleep_h = rng.range(22.0, 24.5);
        // Gap and quality behaviour varies by meter: most are clean, a few are flaky.
        let flaky = rng.chance(0.15);
        Household {
            occupants,
            standby_w: rng.int(80, 400) as u32,
            electric_heating,
            heating_w,
            water_heater_w,
            off_peak_start_min: if rng.chance(0.6) { 22 * 60 } else { 60 },
            solar_peak_w: if rng.chance(0.10) {
                (rng.range(2_000.0, 9_000.0) / 100.0).round() as u32 * 100
            } else {
                0
            },
            works_away,
            wake_workday_s,
            wake_free_s: wake_workday_s + rng.range(0.5, 2.5) * 3600.0,
            sleep_s: sleep_h * 3600.0,
            leave_s: wake_workday_s + rng.range(0.75, 1.75) * 3600.0,
            return_s: rng.range(16.5, 19.25) * 3600.0,
            dinner_s: rng.range(19.0, 20.75) * 3600.0,
            activity_w: (200.0 + 140.0 * occ) * rng.range(0.7, 1.4),
            lighting_w: rng.range(60.0, 300.0),
            fridge_w: rng.range(80.0, 160.0),
            fridge_period_s: rng.int(35 * 60, 70 * 60),
            fridge_duty: rng.range(0.25, 0.45),
            heater_units,
            comfort_c,
            eco_drop_c: rng.range(1.5, 4.0),
            programmable: rng.chance(0.6),
            // Sized so that full power holds the comfort temperature at about -7 °C.
            loss_w_per_k: f64::from(heating_w) / design_delta_k / rng.range(1.0, 1.3),
            water_heater_base_s: rng.range(1.0, 2.6) * 3600.0 * (0.6 + 0.15 * occ),
            dishwasher: rng.chance(0.6),
            dryer: rng.chance(0.3),
            wash_per_day: (0.12 + 0.13 * occ) * rng.range(0.7, 1.3),
            off_peak_saver: rng.chance(0.3),
            power_factor: rng.range(0.9, 1.0),
            gap_day_p: if flaky {
                rng.range(0.01, 0.04)
            } else {
                rng.range(0.0, 0.006)
            },
            gap_run_p: if flaky {
                rng.range(0.002, 0.006)
            } else {
                rng.range(0.0, 0.0015)
            },
            estimated_run_p: rng.range(0.0003, 0.0020),
            corrected_run_p: rng.range(0.0, 0.0002),
        }
    }

    /// Vacation periods of `year`, as half-open ranges of day numbers.
    pub(crate) fn absences(&self, meter_seed: u64, year: i16) -> Vec<(i64, i64)> {
        let mut rng = Rng::new(mix(meter_seed ^ ABSENCE_STREAM, year as u64));
        let y = i64::from(year);
        let mut out = Vec::with_capacity(3);
        if rng.chance(0.8) {
            let start = days_from_civil(y, 7, 1) + rng.int(0, 55);
            out.push((start, start + rng.int(7, 21)));
        }
        if rng.chance(0.35) {
            let start = if rng.chance(0.5) {
                days_from_civil(y, 12, 22) + rng.int(0, 4)
            } else {
                days_from_civil(y, 2, 8) + rng.int(0, 21)
            };
            out.push((start, start + 7));
        }
        if rng.chance(0.5) {
            let start = days_from_civil(y, 4, 1) + rng.int(0, 80);
            out.push((start, start + rng.int(2, 5)));
        }
        out
    }
}

/// An appliance or water-heater run: constant power over `[start, end)` (UTC seconds).
#[derive(Clone, Copy, Debug)]
struct Run {
    start: i64,
    end: i64,
    power_w: f64,
}

/// The day's human schedule, local seconds.
struct Plan {
    absent: bool,
    wake: f64,
    sleep: f64,
    away: Option<(f64, f64)>,
    dinner: f64,
    scale: f64,
}

impl Plan {
    fn home_awake(&self, s: f64) -> bool {
        !self.absent
            && s >= self.wake
            && s < self.sleep
            && !self.away.is_some_and(|(a, b)| s >= a && s < b)
    }

    /// Activity level in [0, 1] at local second `s`.
    fn activity(&self, s: f64) -> f64 {
        if !self.home_awake(s) {
            return 0.0;
        }
        let mut level = if s < self.wake + 1.25 * 3600.0 {
            1.0
        } else if (12.0 * 3600.0..13.5 * 3600.0).contains(&s) {
            0.6
        } else if s >= self.dinner + 2700.0 {
            0.5
        } else if s >= 17.0 * 3600.0 {
            0.4
        } else {
            0.22
        };
        if s >= self.dinner - 3600.0 && s < self.dinner + 2700.0 {
            level = 1.0;
        }
        level
    }

    /// Heating set point, °C, at local second `s`.
    fn set_point(&self, h: &Household, s: f64) -> f64 {
        if self.absent {
            return 11.0;
        }
        let eco = h.comfort_c - h.eco_drop_c;
        if s < self.wake - 1800.0 || s >= self.sleep {
            // The house cools for a while after the set point drops: no heating at all.
            return if s >= self.sleep && s < self.sleep + 5400.0 {
                0.0
            } else {
                eco
            };
        }
        if let Some((a, b)) = self.away {
            if h.programmable && s >= a && s < b {
                return if s < a + 3600.0 { 0.0 } else { eco };
            }
        }
        // Warming up after the night: the convectors run flat out for a while.
        if s < self.wake + 2700.0 {
            return h.comfort_c + 2.5;
        }
        h.comfort_c
    }
}

/// Fraction of `[a, b)` during which a square wave of `period` with `on` seconds on, starting
/// at `phase`, is on.
fn cycle_on_fraction(a: i64, b: i64, period: i64, phase: i64, on: i64) -> f64 {
    let on_before = |t: i64| -> i64 {
        let x = t - phase;
        x.div_euclid(period) * on + x.rem_euclid(period).min(on)
    };
    (on_before(b) - on_before(a)) as f64 / (b - a) as f64
}

fn overlap(a: i64, b: i64, run: &Run) -> i64 {
    (b.min(run.end) - a.max(run.start)).max(0)
}

/// Scratch buffers reused from one day to the next.
#[derive(Default)]
pub(crate) struct Scratch {
    runs: Vec<Run>,
}

/// Output of one simulated day.
pub(crate) struct DayOut<'a> {
    pub consumption: &'a mut Vec<Reading>,
    pub production: &'a mut Vec<Reading>,
    pub max_power: &'a mut Vec<Reading>,
}

pub(crate) fn simulate_day(
    h: &Household,
    day: &Day,
    absent: bool,
    step_min: u16,
    rng: &mut Rng,
    scratch: &mut Scratch,
    out: DayOut<'_>,
) {
    let plan = draw_plan(h, day, absent, rng);
    let runs = &mut scratch.runs;
    runs.clear();
    draw_runs(h, day, &plan, rng, runs);

    let step_s = i64::from(step_min) * 60;
    // Away on vacation, some appliances are switched off.
    let away_factor = if absent { 0.7 } else { 1.0 };
    let standby = f64::from(h.standby_w) * rng.range(0.93, 1.07) * away_factor;
    let fridge_period = h.fridge_period_s;
    let fridge_duty = (h.fridge_duty + 0.004 * (day.t_mean_c - 12.0)).clamp(0.15, 0.6);
    let fridge_on = (fridge_period as f64 * fridge_duty) as i64;
    let fridge_phase = rng.int(0, fridge_period - 1);
    let mut heater_cycles = [(0i64, 0i64); 8];
    for c in heater_cycles.iter_mut().take(usize::from(h.heater_units)) {
        let period = rng.int(12 * 60, 30 * 60);
        *c = (period, rng.int(0, period - 1));
    }
    let heating_on = h.electric_heating && day.t_mean_c < 16.5;
    let day_cloud = day.cloud;
    let clear_factor = 1.0 - 0.75 * day_cloud.powf(1.5);
    let cloud_jitter = 1.6 * day_cloud * (1.0 - day_cloud);

    // Data quality: whole missing days, runs of missing or estimated or corrected intervals.
    let missing_day = rng.chance(h.gap_day_p);
    let mut gap_left = 0u32;
    let mut estimated_left = 0u32;
    let mut corrected_left = 0u32;

    let mut noise = 0.0f64;
    let mut cloud_noise = 0.0f64;
    let mut max_va = -1.0f64;
    let mut max_ts = day.start_utc;

    let mut a = day.start_utc;
    while a + step_s <= day.end_utc {
        let b = a + step_s;
        let mid = a + step_s / 2;
        let s1 = day.local_s(a + step_s / 4) as f64;
        let s2 = day.local_s(b - step_s / 4) as f64;
        let s_mid = day.local_s(mid) as f64;

        noise = 0.75 * noise + 0.35 * rng.normal();
        let activity_level = 0.5 * (plan.activity(s1) + plan.activity(s2));
        let dark = mid < day.sunrise_utc + 1800 || mid > day.sunset_utc - 1800;
        let lighting = if dark && plan.home_awake(s_mid) {
            h.lighting_w
        } else {
            0.0
        };
        let activity =
            (h.activity_w * activity_level * plan.scale + lighting) * (1.0 + 0.12 * noise).max(0.5);
        let fridge = h.fridge_w * cycle_on_fraction(a, b, fridge_period, fridge_phase, fridge_on);

        let (heating, heating_peak, heating_smooth) = if heating_on {
            heating_power(h, day, &plan, s_mid, activity, &heater_cycles, a, b)
        } else {
            (0.0, 0.0, 0.0)
        };

        let mut runs_avg = 0.0;
        for run in runs.iter() {
            let o = overlap(a, b, run);
            if o > 0 {
                runs_avg += run.power_w * o as f64 / step_s as f64;
            }
        }

        let load = standby + fridge + activity + heating + runs_avg;
        let solar = if h.solar_peak_w > 0 && mid > day.sunrise_utc && mid < day.sunset_utc {
            cloud_noise = 0.7 * cloud_noise + 0.5 * rng.normal();
            let x = (mid - day.sunrise_utc) as f64 / (day.sunset_utc - day.sunrise_utc) as f64;
            let bell = (std::f64::consts::PI * x).sin().powf(1.3);
            let sky = (clear_factor + cloud_jitter * cloud_noise).clamp(0.05, 1.0);
            f64::from(h.solar_peak_w) * 0.8 * day.sun_peak * bell * sky
        } else {
            0.0
        };
        let consumption = (load - solar).max(0.0);
        let injection = (solar - load).max(0.0);

        // Instantaneous maximum inside the interval: the steady loads at their cycling peak plus
        // whatever appliance runs overlap at a run's start.
        let steady_peak = standby + h.fridge_w + activity * 1.25 + heating_peak;
        let mut inst = steady_peak - solar;
        let mut inst_ts = mid;
        for run in runs.iter() {
            if run.start >= a && run.start < b {
                let stacked: f64 = runs
                    .iter()
                    .filter(|r| r.start <= run.start && r.end > run.start)
                    .map(|r| r.power_w)
                    .sum();
                if steady_peak - solar + stacked > inst {
                    inst = steady_peak - solar + stacked;
                    inst_ts = run.start;
                }
            }
        }

        // Quality draws.
        if gap_left == 0 && rng.chance(h.gap_run_p) {
            gap_left = rng.int(1, 16) as u32;
        }
        if estimated_left == 0 && rng.chance(h.estimated_run_p) {
            estimated_left = rng.int(2, 24) as u32;
        }
        if corrected_left == 0 && rng.chance(h.corrected_run_p) {
            corrected_left = rng.int(1, 6) as u32;
        }
        let missing = missing_day || gap_left > 0;
        gap_left = gap_left.saturating_sub(1);
        if !missing {
            let (value, quality) = if estimated_left > 0 {
                // Estimates follow a profile: the smooth part of the load, rounded.
                let smooth = standby
                    + h.fridge_w * fridge_duty
                    + h.activity_w * activity_level
                    + heating_smooth;
                (((smooth - solar).max(0.0) / 10.0).round() * 10.0, 1)
            } else if corrected_left > 0 {
                (consumption.round(), 2)
            } else {
                (consumption.round(), 0)
            };
            out.consumption.push(Reading {
                ts_utc: a,
                value: value as i32,
                step_min,
                quality,
            });
            if h.solar_peak_w > 0 {
                out.production.push(Reading {
                    ts_utc: a,
                    value: injection.round() as i32,
                    step_min,
                    quality,
                });
            }
            let va = inst.max(value) / h.power_factor;
            if va > max_va {
                max_va = va;
                max_ts = inst_ts;
            }
        }
        estimated_left = estimated_left.saturating_sub(1);
        corrected_left = corrected_left.saturating_sub(1);
        a = b;
    }
    if max_va >= 0.0 {
        out.max_power.push(Reading {
            ts_utc: max_ts,
            value: max_va.ceil() as i32,
            step_min: 1440,
            quality: 0,
        });
    }
}

/// Average heating power over `[a, b)`, its instantaneous peak, and the smooth demand.
#[expect(
    clippy::too_many_arguments,
    reason = "an inner-loop helper over the day's state"
)]
fn heating_power(
    h: &Household,
    day: &Day,
    plan: &Plan,
    s_mid: f64,
    activity_w: f64,
    cycles: &[(i64, i64); 8],
    a: i64,
    b: i64,
) -> (f64, f64, f64) {
    let outdoor = day.t_mean_c
        + day.t_swing_c * (2.0 * std::f64::consts::PI * (s_mid - 15.0 * 3600.0) / 86_400.0).cos();
    let set = plan.set_point(h, s_mid);
    let internal_gains = 0.5 * activity_w + 150.0;
    let demand = (h.loss_w_per_k * (set - outdoor) - internal_gains).clamp(0.0, h.heating_w as f64);
    if demand <= 0.0 {
        return (0.0, 0.0, 0.0);
    }
    let duty = demand / f64::from(h.heating_w);
    let units = usize::from(h.heater_units);
    let unit_w = f64::from(h.heating_w) / units as f64;
    let mut avg = 0.0;
    for &(period, phase) in cycles.iter().take(units) {
        let on = (period as f64 * duty) as i64;
        avg += unit_w * cycle_on_fraction(a, b, period, phase, on);
    }
    let peak_units = (duty * units as f64 + 1.0).ceil().min(units as f64);
    (avg, peak_units * unit_w, demand)
}

fn draw_plan(h: &Household, day: &Day, absent: bool, rng: &mut Rng) -> Plan {
    let jitter = |rng: &mut Rng, sd_min: f64| rng.normal() * sd_min * 60.0;
    let wake = if day.free {
        h.wake_free_s
    } else {
        h.wake_workday_s
    } + jitter(rng, 15.0);
    let sleep = h.sleep_s + if day.free { 2700.0 } else { 0.0 } + jitter(rng, 20.0);
    let away = if h.works_away && !day.free {
        Some((
            h.leave_s + jitter(rng, 10.0),
            h.return_s + jitter(rng, 25.0),
        ))
    } else if rng.chance(if day.free { 0.3 } else { 0.15 }) {
        let start = rng.range(9.5, 15.0) * 3600.0;
        Some((start, start + rng.range(1.5, 6.0) * 3600.0))
    } else {
        None
    };
    Plan {
        absent,
        wake,
        sleep,
        away,
        dinner: h.dinner_s + jitter(rng, 15.0),
        scale: rng.range(0.8, 1.2),
    }
}

fn draw_runs(h: &Household, day: &Day, plan: &Plan, rng: &mut Rng, runs: &mut Vec<Run>) {
    let push = |runs: &mut Vec<Run>, local_start: f64, parts: &[(f64, f64)]| {
        let mut t = day.utc_at(local_start.clamp(0.0, 86_399.0) as i64);
        for &(dur_s, power_w) in parts {
            let end = (t + dur_s as i64).min(day.end_utc);
            if end > t {
                runs.push(Run {
                    start: t,
                    end,
                    power_w,
                });
            }
            t = end;
        }
    };

    // The water heater starts with the off-peak window and runs until the tank is hot.
    if h.water_heater_w > 0 {
        let winter = (15.0 - day.t_mean_c).max(0.0) * 0.02;
        let dur = if plan.absent {
            rng.range(0.1, 0.3) * 3600.0
        } else {
            h.water_heater_base_s * rng.range(0.6, 1.4) * (1.0 + winter)
        };
        let start = f64::from(h.off_peak_start_min) * 60.0 + rng.range(0.0, 120.0);
        push(
            runs,
            start,
            &[(dur.min(3.0 * 3600.0), f64::from(h.water_heater_w))],
        );
    }
    if plan.absent {
        return;
    }

    // A random instant when someone is home and awake, if one is found.
    let home_instant = |rng: &mut Rng| -> Option<f64> {
        for _ in 0..6 {
            let s = rng.range(plan.wake, plan.sleep.min(86_000.0));
            if plan.home_awake(s) {
                return Some(s);
            }
        }
        None
    };

    // Kettle or coffee machine at breakfast; sometimes again in the afternoon.
    if rng.chance(0.7) {
        let s = plan.wake + rng.range(300.0, 2400.0);
        push(
            runs,
            s,
            &[(rng.range(120.0, 300.0), rng.range(1_800.0, 2_400.0))],
        );
    }
    if rng.chance(0.35) {
        if let Some(s) = home_instant(rng) {
            push(
                runs,
                s,
                &[(rng.range(120.0, 300.0), rng.range(1_800.0, 2_400.0))],
            );
        }
    }
    // Cooking: hob at dinner, sometimes the oven; lunch on free days.
    let dinner_home = plan.home_awake(plan.dinner - 2700.0);
    if dinner_home && rng.chance(0.8) {
        let p = rng.range(1_500.0, 2_800.0);
        let s = plan.dinner - rng.range(1800.0, 3000.0);
        push(
            runs,
            s,
            &[
                (600.0, p),
                (rng.range(600.0, 2400.0), p * rng.range(0.35, 0.6)),
            ],
        );
    }
    if dinner_home && rng.chance(if day.free { 0.4 } else { 0.2 }) {
        let s = plan.dinner - rng.range(3600.0, 5400.0);
        push(
            runs,
            s,
            &[
                (600.0, 2_500.0),
                (rng.range(1800.0, 3600.0), rng.range(900.0, 1_400.0)),
            ],
        );
    }
    if plan.home_awake(12.0 * 3600.0) && rng.chance(if day.free { 0.6 } else { 0.3 }) {
        let s = rng.range(11.5, 12.5) * 3600.0;
        push(
            runs,
            s,
            &[(rng.range(600.0, 2400.0), rng.range(1_200.0, 2_500.0))],
        );
    }
    // Microwave, hair dryer, vacuum cleaner, iron.
    for _ in 0..rng.int(0, 3) {
        if let Some(s) = home_instant(rng) {
            push(
                runs,
                s,
                &[(rng.range(120.0, 1200.0), rng.range(800.0, 2_000.0))],
            );
        }
    }
    // Laundry: heating the water, washing, spinning; then the dryer for some.
    if rng.chance(h.wash_per_day * if day.free { 1.6 } else { 0.8 }) {
        let start = if h.off_peak_saver {
            Some(f64::from(h.off_peak_start_min) * 60.0 + rng.range(0.0, 900.0))
        } else {
            home_instant(rng)
        };
        if let Some(s) = start {
            let heat = rng.range(600.0, 1_200.0);
            let wash = rng.range(2_400.0, 4_800.0);
            push(
                runs,
                s,
                &[
                    (heat, rng.range(1_800.0, 2_200.0)),
                    (wash, 180.0),
                    (600.0, 450.0),
                ],
            );
            if h.dryer && rng.chance(0.6) {
                let end = s + heat + wash + 600.0 + rng.range(300.0, 3_600.0);
                if end < 86_000.0 {
                    push(
                        runs,
                        end,
                        &[(rng.range(3_600.0, 6_000.0), rng.range(2_000.0, 2_600.0))],
                    );
                }
            }
        }
    }
    // Dishwasher after dinner (or with the off-peak window).
    if h.dishwasher && dinner_home && rng.chance(0.45 + 0.1 * f64::from(h.occupants)) {
        let s = if h.off_peak_saver {
            f64::from(h.off_peak_start_min) * 60.0 + rng.range(0.0, 900.0)
        } else {
            plan.dinner + rng.range(3_600.0, 7_200.0)
        };
        push(
            runs,
            s,
            &[
                (rng.range(900.0, 1_500.0), 2_000.0),
                (rng.range(2_400.0, 4_000.0), 90.0),
                (900.0, 1_900.0),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_square_wave_is_on_for_its_duty_over_whole_periods() {
        assert_eq!(cycle_on_fraction(0, 1200, 600, 17, 150), 0.25);
        assert_eq!(cycle_on_fraction(0, 100, 600, 0, 150), 1.0);
        assert_eq!(cycle_on_fraction(200, 300, 600, 0, 150), 0.0);
        assert_eq!(cycle_on_fraction(100, 200, 600, 0, 150), 0.5);
        assert_eq!(cycle_on_fraction(-600, 0, 600, 0, 0), 0.0);
    }

    #[test]
    fn overlap_counts_only_the_shared_seconds() {
        let run = Run {
            start: 100,
            end: 200,
            power_w: 1.0,
        };
        assert_eq!(overlap(0, 150, &run), 50);
        assert_eq!(overlap(150, 300, &run), 50);
        assert_eq!(overlap(200, 300, &run), 0);
        assert_eq!(overlap(120, 130, &run), 10);
    }
}

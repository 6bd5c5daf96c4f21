//! Answers worked out by hand for the cases where calendars and tariffs bite.

use courbe::query::{self, Calendar, Period, Tariff};
use courbe::{Channel, Point, Quality};
use jiff::Timestamp;

use super::model::{Model, Op};
use super::sources::all_sources;

const METER: &str = "09111642617347";

fn ts(s: &str) -> i64 {
    s.parse::<Timestamp>().unwrap().as_second()
}

/// `(value_w, step_min)` points every step from `from` while before `to`.
fn regular(from: i64, to: i64, step_min: u16, value: i32) -> Vec<(String, Channel, Point)> {
    (0..)
        .map(|i| from + i * 60 * i64::from(step_min))
        .take_while(|&t| t < to)
        .map(|ts_utc| {
            (
                METER.to_string(),
                Channel::CONSUMPTION,
                Point {
                    ts_utc,
                    value,
                    step_min,
                    quality: Quality::Measured,
                },
            )
        })
        .collect()
}

fn paris_days(from: &str, to: &str) -> Calendar {
    Calendar {
        from_utc: ts(from),
        to_utc: ts(to),
        period: Period::Day,
        tz: query::time_zone("Europe/Paris").unwrap(),
    }
}

#[test]
fn the_paris_spring_forward_day_has_46_half_hours() {
    let model = Model::resolve(&[Op::Batch(regular(
        ts("2024-03-30T00:00:00Z"),
        ts("2024-04-02T00:00:00Z"),
        30,
        1000,
    ))]);
    let cal = paris_days("2024-03-30T23:00:00Z", "2024-03-31T22:00:00Z");
    for src in all_sources(&model, &[cal.from_utc, cal.to_utc]) {
        let e = query::energy(src.as_ref(), METER, Channel::CONSUMPTION, &cal, None).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].start_utc, e[0].end_utc), (cal.from_utc, cal.to_utc));
        assert_eq!(e[0].points, 46);
        assert_eq!(e[0].expected_points, 46);
        assert_eq!(e[0].energy_wh(), 23_000.0);
    }
}

#[test]
fn the_paris_fall_back_day_has_50_half_hours() {
    let model = Model::resolve(&[Op::Batch(regular(
        ts("2024-10-26T00:00:00Z"),
        ts("2024-10-29T00:00:00Z"),
        30,
        1000,
    ))]);
    // Three local days: the 26th (48), the 27th (50), the 28th (48).
    let cal = paris_days("2024-10-25T22:00:00Z", "2024-10-28T23:00:00Z");
    for src in all_sources(
        &model,
        &[ts("2024-10-26T22:00:00Z"), ts("2024-10-27T23:00:00Z")],
    ) {
        let e = query::energy(src.as_ref(), METER, Channel::CONSUMPTION, &cal, None).unwrap();
        let got: Vec<(i64, i64, u64, u64, f64)> = e
            .iter()
            .map(|p| {
                (
                    p.start_utc,
                    p.end_utc,
                    p.points,
                    p.expected_points,
                    p.energy_wh(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    ts("2024-10-25T22:00:00Z"),
                    ts("2024-10-26T22:00:00Z"),
                    44,
                    48,
                    22_000.0
                ),
                (
                    ts("2024-10-26T22:00:00Z"),
                    ts("2024-10-27T23:00:00Z"),
                    50,
                    50,
                    25_000.0
                ),
                (
                    ts("2024-10-27T23:00:00Z"),
                    ts("2024-10-28T23:00:00Z"),
                    48,
                    48,
                    24_000.0
                ),
            ]
        );
    }
}

#[test]
fn an_off_peak_window_crossing_midnight_splits_energy_by_the_minute() {
    // 2024-01-15 in Paris is 2024-01-14T23:00Z to 2024-01-15T23:00Z (UTC+1).
    let day_from = ts("2024-01-14T23:00:00Z");
    let mut rows = regular(day_from, day_from + 86_400, 30, 600);
    // On the 16th, one hour-long interval from 21:30 local: half off-peak.
    rows.extend(regular(
        ts("2024-01-16T20:30:00Z"),
        ts("2024-01-16T21:30:00Z"),
        60,
        1200,
    ));
    let model = Model::resolve(&[Op::Batch(rows)]);
    let tariff: Tariff = "HC:22:00-06:00".parse().unwrap();
    let cal = paris_days("2024-01-14T23:00:00Z", "2024-01-16T23:00:00Z");
    for src in all_sources(&model, &[]) {
        let e = query::energy(
            src.as_ref(),
            METER,
            Channel::CONSUMPTION,
            &cal,
            Some(&tariff),
        )
        .unwrap();
        assert_eq!(e.len(), 2);
        // 00:00-06:00 and 22:00-24:00: 16 half-hours at 600 W off-peak, 32 on peak.
        assert_eq!(e[0].energy_wmin, 48 * 600 * 30);
        assert_eq!(
            e[0].by_tariff_wmin,
            Some((32.0 * 600.0 * 30.0, 16.0 * 600.0 * 30.0))
        );
        assert_eq!(e[0].expected_points, 48);
        // 21:30-22:30: 30 minutes each side of 22:00.
        assert_eq!(e[1].energy_wmin, 1200 * 60);
        assert_eq!(e[1].by_tariff_wmin, Some((1200.0 * 30.0, 1200.0 * 30.0)));
        assert_eq!(e[1].points, 1);
    }
}

#[test]
fn a_month_whose_step_goes_from_30_to_10_minutes_expects_each_step_piecewise() {
    // February 2024 in Paris: UTC+1 throughout, 29 days. 30 minutes until the 15th at noon
    // local, then 10 minutes: 14.5 days * 48 + 14.5 days * 144 = 696 + 2088.
    let change = ts("2024-02-15T11:00:00Z");
    let mut rows = regular(ts("2024-01-31T23:00:00Z"), change, 30, 500);
    rows.extend(regular(change, ts("2024-02-29T23:00:00Z"), 10, 300));
    // A gap of one 30-minute and three 10-minute intervals.
    rows.retain(|(_, _, p)| {
        p.ts_utc != ts("2024-02-03T10:00:00Z")
            && !(ts("2024-02-20T10:00:00Z")..ts("2024-02-20T10:30:00Z")).contains(&p.ts_utc)
    });
    let model = Model::resolve(&[Op::Batch(rows)]);
    let cal = Calendar {
        from_utc: ts("2024-01-31T23:00:00Z"),
        to_utc: ts("2024-02-29T23:00:00Z"),
        period: Period::Month,
        tz: query::time_zone("Europe/Paris").unwrap(),
    };
    for src in all_sources(&model, &[change]) {
        let e = query::energy(src.as_ref(), METER, Channel::CONSUMPTION, &cal, None).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].expected_points, 696 + 2088);
        assert_eq!(e[0].points, 696 + 2088 - 4);
        assert_eq!(e[0].energy_wmin, (695 * 500 * 30) + (2085 * 300 * 10));
    }
}

#[test]
fn a_period_without_points_lists_zero_and_expects_by_the_step_in_force() {
    let model = Model::resolve(&[Op::Batch(regular(
        ts("2024-01-01T00:00:00Z"),
        ts("2024-01-02T00:00:00Z"),
        15,
        100,
    ))]);
    let cal = Calendar {
        from_utc: ts("2024-01-01T00:00:00Z"),
        to_utc: ts("2024-01-04T00:00:00Z"),
        period: Period::Day,
        tz: jiff::tz::TimeZone::UTC,
    };
    for src in all_sources(&model, &[]) {
        let e = query::energy(src.as_ref(), METER, Channel::CONSUMPTION, &cal, None).unwrap();
        let got: Vec<(u64, u64)> = e.iter().map(|p| (p.points, p.expected_points)).collect();
        assert_eq!(got, vec![(96, 96), (0, 96), (0, 96)]);
    }
}

#[test]
fn the_peak_comes_from_max_power_where_the_day_has_it_else_from_the_curve() {
    let mut rows = regular(
        ts("2024-06-01T00:00:00Z"),
        ts("2024-06-03T00:00:00Z"),
        30,
        700,
    );
    rows.push((
        METER.to_string(),
        Channel::CONSUMPTION,
        Point {
            ts_utc: ts("2024-06-02T08:00:00Z"),
            value: 4000,
            step_min: 30,
            quality: Quality::Estimated,
        },
    ));
    rows.push((
        METER.to_string(),
        Channel::MAX_POWER,
        Point {
            ts_utc: ts("2024-06-01T19:42:13Z"),
            value: 6100,
            step_min: 1440,
            quality: Quality::Measured,
        },
    ));
    let model = Model::resolve(&[Op::Batch(rows)]);
    let cal = Calendar {
        from_utc: ts("2024-06-01T00:00:00Z"),
        to_utc: ts("2024-06-03T00:00:00Z"),
        period: Period::Day,
        tz: jiff::tz::TimeZone::UTC,
    };
    for src in all_sources(&model, &[]) {
        let peaks = query::peak(src.as_ref(), METER, &cal).unwrap();
        let got: Vec<_> = peaks.iter().map(|p| p.peak).collect();
        assert_eq!(
            got,
            vec![
                Some((
                    6100,
                    ts("2024-06-01T19:42:13Z"),
                    query::PeakSource::MaxPower
                )),
                Some((4000, ts("2024-06-02T08:00:00Z"), query::PeakSource::Curve)),
            ]
        );
    }
}

#[test]
fn the_step_in_force_at_the_start_comes_from_the_latest_point_even_months_before() {
    // 10-minute points in January, nothing until 30-minute points from 2024-03-01 12:00Z.
    let mut rows = regular(
        ts("2024-01-01T00:00:00Z"),
        ts("2024-01-10T00:00:00Z"),
        10,
        50,
    );
    rows.extend(regular(
        ts("2024-03-01T12:00:00Z"),
        ts("2024-03-02T00:00:00Z"),
        30,
        80,
    ));
    let model = Model::resolve(&[Op::Batch(rows)]);
    let cal = Calendar {
        from_utc: ts("2024-03-01T00:00:00Z"),
        to_utc: ts("2024-03-02T00:00:00Z"),
        period: Period::Day,
        tz: jiff::tz::TimeZone::UTC,
    };
    for src in all_sources(&model, &[]) {
        let e = query::energy(src.as_ref(), METER, Channel::CONSUMPTION, &cal, None).unwrap();
        assert_eq!(e.len(), 1);
        // 00:00-12:00 at the 10-minute step still in force, then 12:00-24:00 at 30.
        assert_eq!((e[0].points, e[0].expected_points), (24, 72 + 24));
    }
}

#[test]
fn lord_howe_days_have_47_and_49_half_hours_around_its_30_minute_dst_shifts() {
    let tz = query::time_zone("Australia/Lord_Howe").unwrap();
    let midnight = |y, m, d| {
        jiff::civil::date(y, m, d)
            .to_zoned(tz.clone())
            .unwrap()
            .timestamp()
            .as_second()
    };
    // 2024-04-07: 02:00 goes back to 01:30 (24.5 h); 2024-10-06: 02:00 jumps to 02:30 (23.5 h).
    for ((y, m, d), half_hours) in [((2024, 4, 7), 49), ((2024, 10, 6), 47)] {
        let (from, to) = (midnight(y, m, d), midnight(y, m, d + 1));
        assert_eq!(to - from, half_hours * 1800);
        let model = Model::resolve(&[Op::Batch(regular(from - 7200, to + 7200, 30, 1000))]);
        let cal = Calendar {
            from_utc: from,
            to_utc: to,
            period: Period::Day,
            tz: tz.clone(),
        };
        let tariff: Tariff = "HC:01:00-02:00".parse().unwrap();
        for src in all_sources(&model, &[from, to]) {
            let e = query::energy(
                src.as_ref(),
                METER,
                Channel::CONSUMPTION,
                &cal,
                Some(&tariff),
            )
            .unwrap();
            assert_eq!(e.len(), 1);
            assert_eq!(e[0].points, half_hours as u64);
            assert_eq!(e[0].expected_points, half_hours as u64);
            // The wall clock shows 01:00-02:00 for 90 minutes in April (01:30-02:00 twice),
            // for 60 minutes in October.
            let hc_min = if half_hours == 49 { 90.0 } else { 60.0 };
            assert_eq!(e[0].by_tariff_wmin.map(|t| t.1), Some(1000.0 * hc_min));
        }
    }
}

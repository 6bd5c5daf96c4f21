//! Periods that cover whole blocks are answered from the index summaries: proven by blocks whose
//! bytes are corrupt, which any decoding would report.

use courbe::query::{self, Calendar, PeakSource, Period, QueryError};
use courbe::{Channel, Point, Quality};
use jiff::Timestamp;

use super::model::{Model, Op};
use super::sources::{Cut, SegmentSource};

const METER: &str = "09111642617347";

fn ts(s: &str) -> i64 {
    s.parse::<Timestamp>().unwrap().as_second()
}

/// January and February 2024 (UTC) at 30 minutes, one block per month, every block corrupt.
fn corrupt_months() -> (Model, SegmentSource) {
    let (jan, feb, mar) = (
        ts("2024-01-01T00:00:00Z"),
        ts("2024-02-01T00:00:00Z"),
        ts("2024-03-01T00:00:00Z"),
    );
    let rows = (0..)
        .map(|i| jan + i * 1800)
        .take_while(|&t| t < mar)
        .map(|ts_utc| {
            let point = Point {
                ts_utc,
                value: (ts_utc / 1800 % 97) as i32 * 10,
                step_min: 30,
                quality: Quality::Measured,
            };
            (METER.to_string(), Channel::CONSUMPTION, point)
        })
        .collect();
    let model = Model::resolve(&[Op::Batch(rows)]);
    let mut src = SegmentSource::new(model.clone(), Cut::AtBounds, &[feb], 0);
    src.corrupt_every_block();
    (model, src)
}

fn months_utc() -> Calendar {
    Calendar {
        from_utc: ts("2024-01-01T00:00:00Z"),
        to_utc: ts("2024-03-01T00:00:00Z"),
        period: Period::Month,
        tz: jiff::tz::TimeZone::UTC,
    }
}

#[test]
fn monthly_energy_over_whole_blocks_never_decodes_them() {
    let (model, src) = corrupt_months();
    let e = query::energy(&src, METER, Channel::CONSUMPTION, &months_utc(), None).unwrap();
    let points = model.points(METER, Channel::CONSUMPTION);
    let feb = ts("2024-02-01T00:00:00Z");
    let sum = |keep: &dyn Fn(i64) -> bool| -> i64 {
        points
            .iter()
            .filter(|p| keep(p.ts_utc))
            .map(|p| i64::from(p.value) * 30)
            .sum()
    };
    let got: Vec<(i64, u64, u64)> = e
        .iter()
        .map(|p| (p.energy_wmin, p.points, p.expected_points))
        .collect();
    assert_eq!(
        got,
        vec![
            (sum(&|t| t < feb), 31 * 48, 31 * 48),
            (sum(&|t| t >= feb), 29 * 48, 29 * 48)
        ]
    );
}

#[test]
fn monthly_peak_over_whole_blocks_never_decodes_them() {
    let (model, src) = corrupt_months();
    let peaks = query::peak(&src, METER, &months_utc()).unwrap();
    let jan_max = model
        .points(METER, Channel::CONSUMPTION)
        .iter()
        .filter(|p| p.ts_utc < ts("2024-02-01T00:00:00Z"))
        .fold(None::<Point>, |best, p| match best {
            Some(b) if b.value >= p.value => Some(b),
            _ => Some(*p),
        })
        .unwrap();
    assert_eq!(
        peaks[0].peak,
        Some((jan_max.value, jan_max.ts_utc, PeakSource::Curve))
    );
}

#[test]
fn a_period_cutting_through_a_corrupt_block_reports_the_read_failure() {
    let (_, src) = corrupt_months();
    let days = Calendar {
        period: Period::Day,
        ..months_utc()
    };
    assert!(matches!(
        query::energy(&src, METER, Channel::CONSUMPTION, &days, None),
        Err(QueryError::Source(_))
    ));
    let tariff = "HC:22:00-06:00".parse().unwrap();
    assert!(matches!(
        query::energy(
            &src,
            METER,
            Channel::CONSUMPTION,
            &months_utc(),
            Some(&tariff)
        ),
        Err(QueryError::Source(_))
    ));
}

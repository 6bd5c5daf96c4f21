//! Bad arguments are typed errors, never panics or empty answers.

use courbe::query::{self, Calendar, Period, QueryError, Tariff};
use courbe::{Channel, Point, Quality};

use super::model::{Model, Op};
use super::sources::MapSource;

const METER: &str = "09111642617347";

fn source() -> MapSource {
    let rows = (0..48)
        .map(|i| {
            (
                METER.to_string(),
                Channel::CONSUMPTION,
                Point {
                    ts_utc: 1_704_067_200 + i * 1800,
                    value: 100,
                    step_min: 30,
                    quality: Quality::Measured,
                },
            )
        })
        .collect();
    MapSource {
        model: Model::resolve(&[Op::Batch(rows)]),
        chunk_len: 10,
    }
}

fn calendar(from_utc: i64, to_utc: i64) -> Calendar {
    Calendar {
        from_utc,
        to_utc,
        period: Period::Day,
        tz: query::time_zone("Europe/Paris").unwrap(),
    }
}

#[test]
fn from_not_before_to_is_an_invalid_argument_everywhere() {
    let src = source();
    let (a, b) = (1_704_067_200, 1_704_067_200 + 86_400);
    for (from, to) in [(b, a), (a, a)] {
        let cal = calendar(from, to);
        assert!(matches!(
            query::curve(&src, METER, Channel::CONSUMPTION, from, to),
            Err(QueryError::InvalidArgument(_))
        ));
        assert!(matches!(
            query::curve_runs(&src, METER, Channel::CONSUMPTION, from, to),
            Err(QueryError::InvalidArgument(_))
        ));
        assert!(matches!(
            query::energy(&src, METER, Channel::CONSUMPTION, &cal, None),
            Err(QueryError::InvalidArgument(_))
        ));
        assert!(matches!(
            query::peak(&src, METER, &cal),
            Err(QueryError::InvalidArgument(_))
        ));
        assert!(matches!(
            query::fleet_curve(&src, Channel::CONSUMPTION, from, to, None),
            Err(QueryError::InvalidArgument(_))
        ));
        assert!(matches!(
            query::fleet_energy(&src, Channel::CONSUMPTION, &cal, None),
            Err(QueryError::InvalidArgument(_))
        ));
    }
}

#[test]
fn instants_beyond_the_civil_calendar_are_invalid_arguments() {
    let src = source();
    let cal = calendar(0, i64::MAX);
    assert!(matches!(
        query::energy(&src, METER, Channel::CONSUMPTION, &cal, None),
        Err(QueryError::InvalidArgument(_))
    ));
    assert!(matches!(
        query::curve(&src, METER, Channel::CONSUMPTION, i64::MIN, 0),
        Err(QueryError::InvalidArgument(_))
    ));
}

#[test]
fn an_unknown_zone_is_an_unknown_zone_error() {
    for name in ["Mars/Olympus_Mons", "", "Europe/Pariss"] {
        match query::time_zone(name) {
            Err(QueryError::UnknownZone(z)) => assert_eq!(z, name),
            other => panic!("{name:?} gave {other:?}"),
        }
    }
}

#[test]
fn an_unknown_period_is_an_unknown_period_error() {
    for p in ["fortnight", "Day", "", "days"] {
        assert!(matches!(
            p.parse::<Period>(),
            Err(QueryError::UnknownPeriod(_))
        ));
    }
}

#[test]
fn unreadable_tariffs_are_bad_tariff_errors() {
    for spec in [
        "",
        "HC:",
        "HC:22h-06h",
        "HC:22:00-06:00;",
        "HC:24:00-01:00",
        "HP:01:00-02:00",
    ] {
        assert!(
            matches!(spec.parse::<Tariff>(), Err(QueryError::BadTariff(_))),
            "{spec:?}"
        );
    }
}

#[test]
fn an_unknown_meter_is_an_unknown_meter_error_not_an_empty_answer() {
    let src = source();
    let (from, to) = (1_704_067_200, 1_704_067_200 + 86_400);
    let cal = calendar(from, to);
    let unknown = "00000000000000";
    assert!(matches!(
        query::curve(&src, unknown, Channel::CONSUMPTION, from, to),
        Err(QueryError::UnknownMeter(m)) if m == unknown
    ));
    assert!(matches!(
        query::energy(&src, unknown, Channel::CONSUMPTION, &cal, None),
        Err(QueryError::UnknownMeter(_))
    ));
    assert!(matches!(
        query::peak(&src, unknown, &cal),
        Err(QueryError::UnknownMeter(_))
    ));
    let listed = vec![METER.to_string(), unknown.to_string()];
    assert!(matches!(
        query::fleet_curve(&src, Channel::CONSUMPTION, from, to, Some(&listed)),
        Err(QueryError::UnknownMeter(m)) if m == unknown
    ));
    assert!(matches!(
        query::fleet_energy(&src, Channel::CONSUMPTION, &cal, Some(&listed)),
        Err(QueryError::UnknownMeter(_))
    ));
}

#[test]
fn energy_of_the_max_power_channel_is_an_invalid_argument() {
    let src = source();
    let cal = calendar(1_704_067_200, 1_704_067_200 + 86_400);
    assert!(matches!(
        query::energy(&src, METER, Channel::MAX_POWER, &cal, None),
        Err(QueryError::InvalidArgument(_))
    ));
}

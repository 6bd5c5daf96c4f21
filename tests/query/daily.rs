//! Meters without a curve: energy from daily values and index differences.
//!
//! Oracle: a generated fleet where every meter has a 30-minute curve and the daily energy and the
//! HP/HC indexes that curve produces (computed here from each half-hour's Paris wall clock, not
//! by the code under test). The curve-based answer of the full fleet is the reference; with the
//! curve withheld (all of it, or some days), the energy per month and per register must be the
//! same, read from daily values or index differences, and `source` must say which.

use std::collections::BTreeMap;
use std::sync::Arc;

use courbe::query::tariffs::{DayColours, TariffOption, TariffPlan};
use courbe::query::{self, Calendar, EnergySource, Period};
use courbe::source::{Chunk, SeriesSource, SourceError};
use courbe::{Channel, Point, Quality};
use courbe_server::http::body::{self, AnswerBody};
use courbe_server::question::{Asked, Limits, QueryKind, Question};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use proptest::prelude::*;

use crate::util::Rng;

fn paris() -> TimeZone {
    TimeZone::get("Europe/Paris").unwrap()
}

fn midnight(d: Date) -> i64 {
    d.to_zoned(paris()).unwrap().timestamp().as_second()
}

fn hp() -> Channel {
    Channel::index(0).unwrap()
}

fn hc() -> Channel {
    Channel::index(1).unwrap()
}

/// Series by `(meter, channel)`, with the store's register table.
#[derive(Default, Clone)]
struct Fleet {
    series: BTreeMap<(String, Channel), Vec<Point>>,
    registers: Vec<(Channel, Arc<str>)>,
}

impl Fleet {
    fn push(&mut self, meter: &str, channel: Channel, p: Point) {
        self.series
            .entry((meter.to_string(), channel))
            .or_default()
            .push(p);
    }

    /// The fleet without the points of `channel` that `drop` selects.
    fn without(&self, channel: Channel, drop: impl Fn(&str, &Point) -> bool) -> Fleet {
        let mut out = self.clone();
        for ((meter, c), points) in out.series.iter_mut() {
            if *c == channel {
                points.retain(|p| !drop(meter, p));
            }
        }
        out.series.retain(|_, points| !points.is_empty());
        out
    }
}

impl SeriesSource for Fleet {
    fn has_meter(&self, meter: &str) -> bool {
        self.series.keys().any(|(m, _)| m == meter)
    }

    fn meters(&self, channel: Channel) -> Vec<String> {
        self.series
            .keys()
            .filter(|(_, c)| *c == channel)
            .map(|(m, _)| m.clone())
            .collect()
    }

    fn chunks(
        &self,
        meter: &str,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Vec<Chunk<'_>>, SourceError> {
        Ok(self
            .series
            .get(&(meter.to_string(), channel))
            .map(|points| {
                // Chunks of 7 points: period bounds fall inside chunks.
                points
                    .chunks(7)
                    .filter(|c| c.iter().any(|p| p.ts_utc >= from_utc && p.ts_utc < to_utc))
                    .map(|c| Chunk::Points(c.to_vec()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn registers(&self) -> Vec<(Channel, Arc<str>)> {
        self.registers.clone()
    }
}

/// Whether the half-hour starting at `ts` is off-peak under HC 22:00-06:00 (Paris wall clock).
fn off_peak(ts: i64) -> bool {
    let local = jiff::Timestamp::from_second(ts).unwrap().to_zoned(paris());
    let hour = local.hour();
    !(6..22).contains(&hour)
}

const FIRST_DAY: Date = jiff::civil::date(2024, 3, 1);
const LAST_DAY: Date = jiff::civil::date(2024, 11, 30);

/// Meters `m0..`, each with a complete 30-minute curve (even watts, so each half-hour is whole
/// Wh), its daily energy and its HP/HC indexes at every Paris midnight, from
/// [`FIRST_DAY`] to [`LAST_DAY`] (both DST changes inside).
fn generate(seed: u64, meters: usize) -> Fleet {
    let mut rng = Rng::new(seed);
    let mut fleet = Fleet {
        registers: vec![(hp(), Arc::from("HP")), (hc(), Arc::from("HC"))],
        ..Fleet::default()
    };
    for m in 0..meters {
        let meter = format!("m{m}");
        let (mut hp_wh, mut hc_wh) = (rng.below(9_000_000) as i32, rng.below(9_000_000) as i32);
        let mut day = FIRST_DAY;
        while day <= LAST_DAY {
            let (start, end) = (midnight(day), midnight(day.tomorrow().unwrap()));
            let quality = if rng.chance(5) {
                Quality::Estimated
            } else {
                Quality::Measured
            };
            let at = |ts_utc: i64, value: i32| Point {
                ts_utc,
                value,
                step_min: 1440,
                quality,
            };
            fleet.push(&meter, hp(), at(start, hp_wh));
            fleet.push(&meter, hc(), at(start, hc_wh));
            let mut day_wh = 0;
            for ts in (start..end).step_by(1800) {
                let value = 2 * rng.below(1_500) as i32;
                fleet.push(
                    &meter,
                    Channel::CONSUMPTION,
                    Point {
                        ts_utc: ts,
                        value,
                        step_min: 30,
                        quality: Quality::Measured,
                    },
                );
                let wh = value / 2;
                day_wh += wh;
                if off_peak(ts) {
                    hc_wh += wh;
                } else {
                    hp_wh += wh;
                }
            }
            fleet.push(&meter, Channel::DAILY_ENERGY, at(start, day_wh));
            let peak_at = start + 1800 * rng.below(46) as i64;
            fleet.push(
                &meter,
                Channel::MAX_POWER,
                at(peak_at, 1_000 + rng.below(8_000) as i32),
            );
            day = day.tomorrow().unwrap();
        }
        // The index at the end of the last day.
        let end = midnight(LAST_DAY.tomorrow().unwrap());
        for (c, wh) in [(hp(), hp_wh), (hc(), hc_wh)] {
            fleet.push(
                &meter,
                c,
                Point {
                    ts_utc: end,
                    value: wh,
                    step_min: 1440,
                    quality: Quality::Measured,
                },
            );
        }
    }
    fleet
}

fn months() -> Calendar {
    Calendar {
        from_utc: midnight(FIRST_DAY),
        to_utc: midnight(LAST_DAY.tomorrow().unwrap()),
        period: Period::Month,
        tz: paris(),
    }
}

fn hphc() -> TariffPlan {
    TariffPlan::Option(TariffOption::parse("HPHC:22:00-06:00").unwrap())
}

fn check(seed: u64) {
    let full = generate(seed, 3);
    let calendar = months();
    let plan = hphc();
    let colours = DayColours::default();
    for m in 0..3 {
        let meter = format!("m{m}");
        let want = query::energy(&full, &meter, Channel::CONSUMPTION, &calendar, None).unwrap();
        assert!(want.iter().all(|p| p.source == EnergySource::Curve));
        let want_reg = query::energy_by_register(
            &full,
            &meter,
            Channel::CONSUMPTION,
            &calendar,
            &plan,
            &colours,
        )
        .unwrap();

        // No curve at all: every month from daily values.
        let no_curve = full.without(Channel::CONSUMPTION, |_, _| true);
        let got = query::energy(&no_curve, &meter, Channel::CONSUMPTION, &calendar, None).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.start_utc, g.end_utc), (w.start_utc, w.end_utc));
            assert_eq!(g.energy_wmin, w.energy_wmin, "seed {seed} {meter} daily");
            assert_eq!(g.source, EnergySource::Daily);
            assert_eq!(g.points, g.expected_points);
        }

        // Neither curve nor daily values: index differences.
        let only_index = no_curve.without(Channel::DAILY_ENERGY, |_, _| true);
        let got =
            query::energy(&only_index, &meter, Channel::CONSUMPTION, &calendar, None).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.energy_wmin, w.energy_wmin, "seed {seed} {meter} index");
            assert_eq!(g.source, EnergySource::Index);
        }

        // Per register, from the indexes, equal to the curve split by the calendar.
        let got_reg = query::energy_by_register(
            &only_index,
            &meter,
            Channel::CONSUMPTION,
            &calendar,
            &plan,
            &colours,
        )
        .unwrap();
        for (g, w) in got_reg.iter().zip(&want_reg) {
            assert_eq!(g.by_register_ws, w.by_register_ws, "seed {seed} {meter}");
            assert_eq!(g.period.energy_wmin, w.period.energy_wmin);
            assert_eq!(g.period.source, EnergySource::Index);
        }

        // A day of curve missing in some months: those months come from daily values, the
        // others stay on the complete curve.
        let mut rng = Rng::new(seed ^ 0x5eed);
        // Each hole is one whole Paris day (23 or 25 hours on DST days), so that it never
        // reaches into the next day's month.
        let holes: Vec<(i64, i64)> = (0..3)
            .map(|_| {
                let day = FIRST_DAY
                    .checked_add(jiff::Span::new().days(rng.below(270) as i64))
                    .unwrap();
                (midnight(day), midnight(day.tomorrow().unwrap()))
            })
            .collect();
        let holed = full.without(Channel::CONSUMPTION, |_, p| {
            holes
                .iter()
                .any(|&(start, end)| p.ts_utc >= start && p.ts_utc < end)
        });
        let got = query::energy(&holed, &meter, Channel::CONSUMPTION, &calendar, None).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.energy_wmin, w.energy_wmin, "seed {seed} {meter} holed");
            let holed_month = holes
                .iter()
                .any(|&(h, _)| h >= g.start_utc && h < g.end_utc);
            let source = if holed_month {
                EnergySource::Daily
            } else {
                EnergySource::Curve
            };
            assert_eq!(g.source, source);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn monthly_energy_from_daily_values_or_indexes_equals_the_curves(seed in any::<u64>()) {
        check(seed);
    }
}

#[test]
fn monthly_energy_from_daily_values_or_indexes_equals_the_curves_on_seeds_that_once_failed() {
    for seed in [263_853_649_927_518, 6_670_625_389_288_020_620] {
        check(seed);
    }
}

#[test]
fn a_period_not_made_of_whole_paris_days_never_comes_from_daily_data() {
    let full = generate(7, 1);
    let no_curve = full.without(Channel::CONSUMPTION, |_, _| true);
    let start = midnight(jiff::civil::date(2024, 4, 1));
    // In UTC, days start an hour or two after Paris midnights.
    let utc_days = Calendar {
        from_utc: start,
        to_utc: start + 10 * 86_400,
        period: Period::Day,
        tz: TimeZone::UTC,
    };
    let got = query::energy(&no_curve, "m0", Channel::CONSUMPTION, &utc_days, None).unwrap();
    assert!(got
        .iter()
        .all(|p| p.source == EnergySource::None && p.energy_wmin == 0));
    // A period starting at noon Paris time: the same.
    let noon = Calendar {
        from_utc: start + 10 * 3600,
        to_utc: start + 86_400 * 3,
        period: Period::Day,
        tz: paris(),
    };
    let got = query::energy(&no_curve, "m0", Channel::CONSUMPTION, &noon, None).unwrap();
    assert_eq!(got[0].source, EnergySource::None);
    assert_eq!(got[1].source, EnergySource::Daily);
}

#[test]
fn a_day_without_a_daily_value_falls_back_to_the_indexes_and_a_meter_change_to_nothing() {
    let full = generate(11, 1);
    let day = midnight(jiff::civil::date(2024, 6, 12));
    let gap = full
        .without(Channel::CONSUMPTION, |_, _| true)
        .without(Channel::DAILY_ENERGY, |_, p| p.ts_utc == day);
    let june = Calendar {
        from_utc: midnight(jiff::civil::date(2024, 6, 1)),
        to_utc: midnight(jiff::civil::date(2024, 7, 1)),
        period: Period::Month,
        tz: paris(),
    };
    let want = query::energy(&full, "m0", Channel::CONSUMPTION, &june, None).unwrap();
    let got = query::energy(&gap, "m0", Channel::CONSUMPTION, &june, None).unwrap();
    assert_eq!(got[0].source, EnergySource::Index);
    assert_eq!(got[0].energy_wmin, want[0].energy_wmin);

    // An index running backwards (a new meter) is no difference: the partial daily sum is
    // the best the month has, and it says so with its day counts.
    let mut reset = gap.clone();
    if let Some(points) = reset.series.get_mut(&("m0".to_string(), hp())) {
        for p in points.iter_mut().filter(|p| p.ts_utc >= day) {
            p.value -= 1_000_000;
        }
    }
    let got = query::energy(&reset, "m0", Channel::CONSUMPTION, &june, None).unwrap();
    assert_eq!(got[0].source, EnergySource::Daily);
    assert_eq!((got[0].points, got[0].expected_points), (29, 30));
}

fn api_answer(src: &dyn SeriesSource, kind: QueryKind, query: &str) -> AnswerBody {
    let limits = Limits::default();
    let asked = Asked::read(kind, Some("m0"), Some(query), &limits).unwrap();
    body::answer(src, &asked.question, &limits).unwrap()
}

#[test]
fn the_index_answer_holds_each_registers_reading_at_each_month_boundary() {
    let full = generate(3, 1);
    let answer = api_answer(
        &full,
        QueryKind::Index,
        "from=2024-03-01&to=2024-06-01&period=month",
    );
    let AnswerBody::Index(body) = answer else {
        panic!("not an index answer: {answer:?}");
    };
    assert_eq!(body.registers, ["HP", "HC"]);
    let ats: Vec<&str> = body.readings.iter().map(|r| r.at.as_str()).collect();
    assert_eq!(
        ats,
        [
            "2024-02-29T23:00:00Z",
            "2024-03-31T22:00:00Z",
            "2024-04-30T22:00:00Z",
            "2024-05-31T22:00:00Z"
        ]
    );
    for row in &body.readings {
        let t: i64 = row.at.parse::<jiff::Timestamp>().unwrap().as_second();
        for (name, channel) in [("HP", hp()), ("HC", hc())] {
            let want = full.series[&("m0".to_string(), channel)]
                .iter()
                .find(|p| p.ts_utc == t)
                .unwrap();
            let got = row.indexes[name].as_ref().unwrap();
            assert_eq!(got.wh, i64::from(want.value));
            assert_eq!(got.quality, want.quality.as_str());
        }
    }
    // A missing reading is null, never another instant's.
    let holed = full.without(hp(), |_, p| {
        p.ts_utc == midnight(jiff::civil::date(2024, 4, 1))
    });
    let AnswerBody::Index(body) = api_answer(
        &holed,
        QueryKind::Index,
        "from=2024-03-01&to=2024-06-01&period=month",
    ) else {
        panic!("not an index answer");
    };
    assert!(body.readings[1].indexes["HP"].is_none());
    assert!(body.readings[1].indexes["HC"].is_some());
}

#[test]
fn index_questions_are_paris_dates_per_day_or_month() {
    let full = generate(3, 1);
    let limits = Limits::default();
    for (query, why) in [
        (
            "from=2024-03-01T12:00:00Z&to=2024-06-01&period=month",
            "midnight",
        ),
        (
            "from=2024-03-01&to=2024-06-01&period=week",
            "per day or per month",
        ),
        (
            "from=2024-03-01&to=2024-06-01&period=month&tz=UTC",
            "unknown parameter `tz`",
        ),
    ] {
        let err = Asked::read(QueryKind::Index, Some("m0"), Some(query), &limits)
            .and_then(|a| body::answer(&full, &a.question, &limits))
            .unwrap_err();
        assert!(err.to_string().contains(why), "{query}: {err}");
    }
}

#[test]
fn a_year_summary_from_daily_data_matches_the_curves_and_peaks_come_from_max_power() {
    let full = generate(5, 1);
    let no_curve = full.without(Channel::CONSUMPTION, |_, _| true);
    let AnswerBody::Summary(body) = api_answer(&no_curve, QueryKind::Summary, "year=2024") else {
        panic!("not a summary");
    };
    assert_eq!(body.months.len(), 12);
    let calendar = Calendar {
        from_utc: midnight(jiff::civil::date(2024, 1, 1)),
        to_utc: midnight(jiff::civil::date(2025, 1, 1)),
        period: Period::Month,
        tz: paris(),
    };
    let want = query::energy(&full, "m0", Channel::CONSUMPTION, &calendar, None).unwrap();
    let peaks = query::peak(&full, "m0", &calendar).unwrap();
    for (i, m) in body.months.iter().enumerate() {
        // March to November are generated; the other months hold nothing.
        let generated = (2..11).contains(&i);
        assert_eq!(m.energy_wh, want[i].energy_wh(), "month {i}");
        assert_eq!(m.source, if generated { "daily" } else { "none" });
        if generated {
            assert_eq!(m.max_power.source, Some("max_power"));
            assert_eq!(m.max_power.value, peaks[i].peak.map(|p| p.0));
            let hp_wh = m.by_register["HP"].unwrap();
            let hc_wh = m.by_register["HC"].unwrap();
            assert_eq!(hp_wh + hc_wh, want[i].energy_wmin / 60);
        } else {
            assert_eq!(m.max_power.value, None);
            assert_eq!(m.by_register["HP"], None);
        }
    }
    assert_eq!(
        body.year_total.energy_wh,
        want.iter().map(|p| p.energy_wh()).sum::<f64>()
    );
    // January has no index: the year's per-register totals are unknown, not a partial sum.
    assert_eq!(body.year_total.by_register["HP"], None);
    assert_eq!(
        body.year_total.max_power.value,
        peaks.iter().filter_map(|p| p.peak).map(|p| p.0).max()
    );
    let mut csv = Vec::new();
    AnswerBody::Summary(body).write_csv(&mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 14);
    assert_eq!(
        lines[0],
        "start,end,energy_wh,source,HP_index_start_wh,HP_index_start_quality,HP_wh,\
         HC_index_start_wh,HC_index_start_quality,HC_wh,max_power,max_power_unit,max_power_at,\
         max_power_source"
    );
}

#[test]
fn a_summary_without_curve_rights_leaves_out_the_peaks_the_curve_would_give() {
    let full = generate(5, 1);
    // No max_power in April: its peak would come from the curve.
    let april = (
        midnight(jiff::civil::date(2024, 4, 1)),
        midnight(jiff::civil::date(2024, 5, 1)),
    );
    let src = full.without(Channel::MAX_POWER, |_, p| {
        p.ts_utc >= april.0 && p.ts_utc < april.1
    });
    let limits = Limits::default();
    let mut asked =
        Asked::read(QueryKind::Summary, Some("m0"), Some("year=2024"), &limits).unwrap();
    let AnswerBody::Summary(open) = body::answer(&src, &asked.question, &limits).unwrap() else {
        panic!("not a summary");
    };
    assert_eq!(open.months[3].max_power.source, Some("curve"));
    if let Question::Summary { max_power_only, .. } = &mut asked.question {
        *max_power_only = true;
    }
    let AnswerBody::Summary(closed) = body::answer(&src, &asked.question, &limits).unwrap() else {
        panic!("not a summary");
    };
    assert_eq!(closed.months[3].max_power.value, None);
    assert_eq!(closed.months[4].max_power, open.months[4].max_power);
    assert!(closed
        .months
        .iter()
        .all(|m| m.max_power.source != Some("curve")));
    assert_ne!(closed.year_total.max_power.source, Some("curve"));
}

#[test]
fn readings_derived_from_a_curve_are_the_meters_daily_values_and_index_differences() {
    let full = generate(13, 1);
    let curve = &full.series[&("m0".to_string(), Channel::CONSUMPTION)];
    let days = (LAST_DAY - FIRST_DAY).get_days() as u32 + 1;
    let derived = query::readings::derive(
        curve,
        &hphc(),
        &DayColours::default(),
        FIRST_DAY,
        days,
        1_000,
    )
    .unwrap();
    assert_eq!(derived.registers, ["HP", "HC"]);
    assert_eq!(
        derived.daily,
        full.series[&("m0".to_string(), Channel::DAILY_ENERGY)]
            .iter()
            .map(|p| Point {
                quality: Quality::Measured,
                ..*p
            })
            .collect::<Vec<_>>()
    );
    for (k, channel) in [hp(), hc()].into_iter().enumerate() {
        let want = &full.series[&("m0".to_string(), channel)];
        let got = &derived.indexes[k];
        assert_eq!(got.len(), want.len());
        assert_eq!(got[0].value, 1_000);
        for (g, w) in got.windows(2).zip(want.windows(2)) {
            assert_eq!(g[0].ts_utc, w[0].ts_utc);
            assert_eq!(g[1].value - g[0].value, w[1].value - w[0].value);
        }
    }
}

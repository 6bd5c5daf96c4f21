//! The engine's answers equal the naive reference's on generated fleets, from every source.

use courbe::query::{self, Calendar, EnergyPeriod, Period, Tariff};
use courbe::source::SeriesSource;
use courbe::Channel;
use proptest::prelude::*;

use super::model::{generate, generate_workload, Generated, Model};
use super::reference::{self, Query};
use super::sources::all_sources;
use crate::util::Rng;

const TARIFFS: [&str; 5] = [
    "HC:22:00-06:00",
    "HC:01:00-07:00,12:30-14:30",
    "HC:02:00-03:00",
    "HC:23:30-00:30,02:15-02:45,02:30-03:10",
    "HC:00:00-24:00",
];

const PERIODS: [Period; 4] = [Period::Day, Period::Week, Period::Month, Period::Year];

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn assert_energy_eq(got: &[EnergyPeriod], want: &[EnergyPeriod], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: period count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(
            (
                g.start_utc,
                g.end_utc,
                g.energy_wmin,
                g.points,
                g.expected_points
            ),
            (
                w.start_utc,
                w.end_utc,
                w.energy_wmin,
                w.points,
                w.expected_points
            ),
            "{what}"
        );
        match (g.by_tariff_wmin, w.by_tariff_wmin) {
            (None, None) => {}
            (Some(g2), Some(w2)) => assert!(
                close(g2.0, w2.0) && close(g2.1, w2.1),
                "{what}: tariff split {g2:?} != {w2:?} in {g:?}"
            ),
            other => panic!("{what}: tariff presence differs: {other:?}"),
        }
    }
}

/// A query range around the generated span: local midnights or arbitrary seconds.
fn range(rng: &mut Rng, start: i64, end: i64) -> (i64, i64) {
    let span = (end - start) as u64;
    let pick = |rng: &mut Rng| match rng.below(4) {
        0 => start,
        1 => end,
        2 => start - 86_400 + 3600 * rng.below(12) as i64,
        _ => start + rng.below(span) as i64,
    };
    let (a, b) = (pick(rng), pick(rng));
    if a == b {
        (a, a + 1 + rng.below(86_400) as i64)
    } else {
        (a.min(b), a.max(b))
    }
}

/// Local midnights of the generated span: where test segments cut their blocks.
pub fn day_bounds(g: &Generated) -> Vec<i64> {
    reference::periods(g.start_utc, g.end_utc, Period::Day, &g.tz)
        .into_iter()
        .map(|p| p.0)
        .collect()
}

fn check_fleet(seed: u64, zone: usize, change: usize) {
    let g = generate(seed, zone, change);
    let model = Model::resolve(&g.ops);
    let sources = all_sources(&model, &day_bounds(&g));
    let sources: Vec<&dyn SeriesSource> = sources.iter().map(|s| s.as_ref()).collect();
    check_sources(seed, &g, &model, &sources);
}

/// Random queries over the generated span: every source answers as the reference does.
pub fn check_sources(seed: u64, g: &Generated, model: &Model, sources: &[&dyn SeriesSource]) {
    let mut rng = Rng::new(seed ^ 0x5EED);
    for _ in 0..3 {
        let (from, to) = range(&mut rng, g.start_utc, g.end_utc);
        let period = *rng.pick(&PERIODS);
        let tariff: Option<Tariff> = if rng.chance(60) {
            Some(rng.pick(&TARIFFS).parse().unwrap())
        } else {
            None
        };
        let q = Query {
            from,
            to,
            period,
            tz: &g.tz,
        };
        let cal = Calendar {
            from_utc: from,
            to_utc: to,
            period,
            tz: g.tz.clone(),
        };
        let what = format!(
            "seed {seed} {:?} {from}..{to} {period:?} {tariff:?}",
            g.tz.iana_name()
        );
        let listed: Vec<String> = g.meters.iter().take(2).cloned().collect();
        let fleet_curve = reference::fleet_curve(model, Channel::CONSUMPTION, from, to, &listed);
        let fleet_curve_all = reference::fleet_curve(
            model,
            Channel::CONSUMPTION,
            from,
            to,
            &model.meters(Channel::CONSUMPTION),
        );
        let all = model.meters(Channel::CONSUMPTION);
        let fleet_energy = reference::fleet_energy(model, Channel::CONSUMPTION, &q, &all);
        for &src in sources {
            for meter in &g.meters {
                for channel in [Channel::CONSUMPTION, Channel::PRODUCTION] {
                    let want = reference::energy(model, meter, channel, &q, tariff.as_ref());
                    let got = query::energy(src, meter, channel, &cal, tariff.as_ref()).unwrap();
                    assert_energy_eq(&got, &want, &format!("{what} {meter} {channel:?}"));
                }
                assert_eq!(
                    query::peak(src, meter, &cal).unwrap(),
                    reference::peak(model, meter, &q),
                    "{what} peak {meter}"
                );
                let points = reference::curve(model, meter, Channel::CONSUMPTION, from, to);
                assert_eq!(
                    query::curve(src, meter, Channel::CONSUMPTION, from, to).unwrap(),
                    points,
                    "{what} curve {meter}"
                );
                let columns =
                    query::with_curve_columns(src, meter, Channel::CONSUMPTION, from, to, |c| {
                        c.points().collect::<Vec<_>>()
                    })
                    .unwrap();
                assert_eq!(columns, points, "{what} curve columns {meter}");
                assert_eq!(
                    query::curve_runs(src, meter, Channel::CONSUMPTION, from, to).unwrap(),
                    reference::runs(&points),
                    "{what} runs {meter}"
                );
            }
            assert_eq!(
                query::fleet_curve(src, Channel::CONSUMPTION, from, to, Some(&listed)).unwrap(),
                fleet_curve,
                "{what} fleet curve"
            );
            assert_eq!(
                query::fleet_curve(src, Channel::CONSUMPTION, from, to, None).unwrap(),
                fleet_curve_all,
                "{what} fleet curve of every meter"
            );
            let got = query::fleet_energy(src, Channel::CONSUMPTION, &cal, None).unwrap();
            assert_eq!(got.len(), fleet_energy.len(), "{what} fleet meters");
            for (g2, w2) in got.iter().zip(&fleet_energy) {
                assert_eq!(g2.meter, w2.meter);
                assert_energy_eq(&g2.periods, &w2.periods, &format!("{what} fleet energy"));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_answer_matches_the_reference_on_generated_fleets_across_dst(
        seed in any::<u64>(),
        zone in 0usize..3,
        change in 0usize..2,
    ) {
        check_fleet(seed, zone, change);
    }
}

#[test]
fn the_reference_agrees_on_a_fixed_fleet_in_each_zone_and_dst_change() {
    for zone in 0..3 {
        for change in 0..2 {
            check_fleet(7 + zone as u64 * 2 + change as u64, zone, change);
        }
    }
}

#[test]
fn realistic_workload_fleets_across_both_paris_dst_changes_match_the_reference() {
    for (seed, (y, m, d)) in [(1, (2024, 3, 27)), (2, (2024, 10, 24))] {
        let g = generate_workload(seed, jiff::civil::date(y, m, d), 8);
        let model = Model::resolve(&g.ops);
        assert!(
            model.series.len() >= 6,
            "consumption and max_power for each meter"
        );
        let sources = all_sources(&model, &day_bounds(&g));
        let sources: Vec<&dyn SeriesSource> = sources.iter().map(|s| s.as_ref()).collect();
        check_sources(seed, &g, &model, &sources);
    }
}

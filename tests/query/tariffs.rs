//! Energy by register: the calendar's answer through the query path equals a brute-force
//! minute-by-minute reference that reads every minute's Paris wall clock with jiff and applies
//! the French rules written out again here, over generated curves (steps 5-60, gaps,
//! corrections, both Paris DST changes) and random colour series and contracts.

use std::collections::BTreeMap;

use courbe::query::tariffs::{Colour, DayColours, TariffOption, TariffPlan, NO_CONTRACT, UNKNOWN};
use courbe::query::{self, Calendar, Period};
use courbe::source::SeriesSource;
use courbe::Channel;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use proptest::prelude::*;

use super::model::{generate, Generated, Model};
use super::properties::day_bounds;
use super::reference;
use super::sources::all_sources;
use crate::util::Rng;

const OPTIONS: [&str; 6] = [
    "BASE",
    "HPHC:22:00-06:00",
    "HPHC:01:30-07:30,12:00-14:00",
    "TEMPO",
    "EJP",
    "SEASONAL:23:00-07:00",
];

fn paris() -> TimeZone {
    TimeZone::get("Europe/Paris").unwrap()
}

/// Whether `minute` (minutes after midnight) is in `HH:MM-HH:MM` windows, the reference's way.
fn in_windows(windows: &str, minute: i64) -> bool {
    windows.split(',').any(|w| {
        let (a, b) = w.split_once('-').unwrap();
        let clock = |s: &str| {
            let (h, m) = s.split_once(':').unwrap();
            h.parse::<i64>().unwrap() * 60 + m.parse::<i64>().unwrap()
        };
        let (a, b) = (clock(a), clock(b));
        if a < b {
            a <= minute && minute < b
        } else {
            minute >= a || minute < b
        }
    })
}

/// The register of the minute starting at `t` under option `spec`, from the rules as stated:
/// Tempo days 06:00-06:00 with HC 22:00-06:00, EJP peak 07:00-01:00 the next day, high season
/// November-March.
fn reference_register(spec: &str, colours: &BTreeMap<(&str, Date), Colour>, t: i64) -> String {
    let local = Timestamp::from_second(t).unwrap().to_zoned(paris());
    let date = local.date();
    let minute = i64::from(local.hour()) * 60 + i64::from(local.minute());
    let yesterday = date.checked_sub(1.day()).unwrap();
    let (name, windows) = spec.split_once(':').unwrap_or((spec, ""));
    match name {
        "BASE" => "BASE".into(),
        "HPHC" => if in_windows(windows, minute) {
            "HC"
        } else {
            "HP"
        }
        .into(),
        "SEASONAL" => {
            let high = matches!(date.month(), 11 | 12 | 1..=3);
            let hc = in_windows(windows, minute);
            format!(
                "{}{}",
                if hc { "HC" } else { "HP" },
                if high { "H" } else { "B" }
            )
        }
        "TEMPO" => {
            let day = if minute >= 6 * 60 { date } else { yesterday };
            let suffix = match colours.get(&("tempo", day)) {
                Some(Colour::Blue) => "JB",
                Some(Colour::White) => "JW",
                Some(Colour::Red) => "JR",
                _ => return UNKNOWN.into(),
            };
            let hc = !(6 * 60..22 * 60).contains(&minute);
            format!("{}{suffix}", if hc { "HC" } else { "HP" })
        }
        "EJP" => {
            // Peak from 07:00 on a PM day to 01:00 the next day.
            let (day, peak_hours) = if minute >= 60 {
                (date, minute >= 7 * 60)
            } else {
                (yesterday, true)
            };
            match colours.get(&("ejp", day)) {
                Some(Colour::Pm) if peak_hours => "PM".into(),
                Some(Colour::Pm | Colour::Hn) => "HN".into(),
                _ => UNKNOWN.into(),
            }
        }
        other => panic!("no reference for {other}"),
    }
}

/// Per period of the query, W·s per register (zero entries left out), minute by minute.
fn reference_by_register(
    model: &Model,
    meter: &str,
    q: &reference::Query<'_>,
    contracts: &[(i64, i64, &str)],
    colours: &BTreeMap<(&str, Date), Colour>,
) -> Vec<BTreeMap<String, i128>> {
    let points = model.points(meter, Channel::CONSUMPTION);
    reference::periods(q.from, q.to, q.period, q.tz)
        .into_iter()
        .map(|(start, end)| {
            let mut out: BTreeMap<String, i128> = BTreeMap::new();
            for p in points
                .iter()
                .filter(|p| p.ts_utc >= start && p.ts_utc < end)
            {
                assert_eq!(p.ts_utc % 60, 0, "minute-aligned points");
                for k in 0..i64::from(p.step_min) {
                    let t = p.ts_utc + 60 * k;
                    let register = match contracts.iter().find(|c| c.0 <= t && t < c.1) {
                        Some(&(_, _, spec)) => reference_register(spec, colours, t),
                        None => NO_CONTRACT.into(),
                    };
                    *out.entry(register).or_default() += i128::from(p.value) * 60;
                }
            }
            out.retain(|_, v| *v != 0);
            out
        })
        .collect()
}

/// Random colours (or none) for the days around the generated span, in both series; now and
/// then a colour the option has no rule for.
fn random_colours(rng: &mut Rng, g: &Generated) -> BTreeMap<(&'static str, Date), Colour> {
    let first = Timestamp::from_second(g.start_utc)
        .unwrap()
        .to_zoned(paris())
        .date()
        .checked_sub(2.days())
        .unwrap();
    let mut out = BTreeMap::new();
    for k in 0..((g.end_utc - g.start_utc) / 86_400 + 5) {
        let day = first.checked_add(k.days()).unwrap();
        let tempo = [Colour::Blue, Colour::White, Colour::Red, Colour::Pm];
        if !rng.chance(10) {
            let c = if rng.chance(5) {
                tempo[3]
            } else {
                *rng.pick(&tempo[..3])
            };
            out.insert(("tempo", day), c);
        }
        if !rng.chance(10) {
            let c = if rng.chance(40) {
                Colour::Pm
            } else {
                Colour::Hn
            };
            let c = if rng.chance(5) { Colour::Blue } else { c };
            out.insert(("ejp", day), c);
        }
    }
    out
}

/// One option over all time, or one to three contracts with gaps between some of them.
fn random_plan(rng: &mut Rng, g: &Generated) -> Vec<(i64, i64, &'static str)> {
    if rng.chance(40) {
        return vec![(i64::MIN / 4, i64::MAX / 4, *rng.pick(&OPTIONS))];
    }
    let span = (g.end_utc - g.start_utc) as u64;
    let mut cuts: Vec<i64> = (0..4)
        .map(|_| g.start_utc - 86_400 + rng.below(span + 2 * 86_400) as i64 / 60 * 60)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut k = 0;
    while k + 1 < cuts.len() {
        out.push((cuts[k], cuts[k + 1], *rng.pick(&OPTIONS)));
        // Leave a gap now and then.
        k += if rng.chance(30) { 2 } else { 1 };
    }
    if rng.chance(50) {
        if let Some(last) = out.last_mut() {
            last.1 = i64::MAX / 4;
        }
    }
    out
}

fn check(seed: u64, zone: usize, change: usize) {
    let g = generate(seed, zone, change);
    let model = Model::resolve(&g.ops);
    let sources = all_sources(&model, &day_bounds(&g));
    let mut rng = Rng::new(seed ^ 0x7A21FF);
    for _ in 0..3 {
        let colour_map = random_colours(&mut rng, &g);
        let mut colours = DayColours::default();
        for (&(series, day), &c) in &colour_map {
            colours.insert(series, day, c);
        }
        let contracts = random_plan(&mut rng, &g);
        let plan = if contracts.len() == 1 && contracts[0].0 == i64::MIN / 4 {
            TariffPlan::Option(TariffOption::parse(contracts[0].2).unwrap())
        } else {
            TariffPlan::Contracts(
                contracts
                    .iter()
                    .map(|&(a, b, spec)| (a, b, TariffOption::parse(spec).unwrap()))
                    .collect(),
            )
        };
        let span = (g.end_utc - g.start_utc) as u64;
        let from = g.start_utc - 3600 + rng.below(span / 2) as i64;
        let to = from + 1 + rng.below(span) as i64;
        let period = *rng.pick(&[Period::Day, Period::Week, Period::Month]);
        let q = reference::Query {
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
        for src in &sources {
            let src: &dyn SeriesSource = src.as_ref();
            for meter in &g.meters {
                let what = format!("seed {seed} zone {zone} {meter} {from}..{to} {contracts:?}");
                let want = reference_by_register(&model, meter, &q, &contracts, &colour_map);
                let got = query::energy_by_register(
                    src,
                    meter,
                    Channel::CONSUMPTION,
                    &cal,
                    &plan,
                    &colours,
                )
                .unwrap();
                let plain = query::energy(src, meter, Channel::CONSUMPTION, &cal, None).unwrap();
                assert_eq!(got.len(), want.len(), "{what}");
                for ((got, want), plain) in got.iter().zip(&want).zip(&plain) {
                    assert_eq!(&got.period, plain, "{what}: the same period totals");
                    let sum: i128 = got.by_register_ws.iter().map(|r| r.1).sum();
                    assert_eq!(
                        sum,
                        i128::from(got.period.energy_wmin) * 60,
                        "{what}: registers add up to the total exactly"
                    );
                    let nonzero: BTreeMap<String, i128> = got
                        .by_register_ws
                        .iter()
                        .filter(|r| r.1 != 0)
                        .cloned()
                        .collect();
                    assert_eq!(&nonzero, want, "{what}");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x7A21_0012),
        ..ProptestConfig::default()
    })]

    #[test]
    fn energy_by_register_equals_a_minute_by_minute_reference_across_paris_dst(
        seed in any::<u64>(),
        change in 0usize..2,
    ) {
        check(seed, 0, change);
    }
}

#[test]
fn energy_by_register_is_read_on_the_paris_clock_whatever_the_query_zone() {
    for zone in 0..3 {
        for change in 0..2 {
            check(41 + zone as u64 * 2 + change as u64, zone, change);
        }
    }
}

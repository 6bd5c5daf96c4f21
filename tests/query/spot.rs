//! `query::spot::dynamic_energy_cost` against a brute force over seconds, on a real store fed
//! generated curves (10/15/30/60-minute steps, gaps, re-sent corrections, DST days) and 15- and
//! 60-minute prices (negative ones, gaps, late corrections).

use std::collections::HashMap;

use courbe::engine::{Batch, Options, Store};
use courbe::query::spot::{div_round, dynamic_energy_cost, DynamicPeriod, RAW_PER_MICRO_EUR};
use courbe::query::QueryError;
use courbe::{Channel, Point, Quality};

use crate::util::Rng;

const METER: &str = "09111642617347";
const SERIES: &str = "spot-FR";

fn paris_midnight(y: i16, m: i8, d: i8) -> i64 {
    let paris = jiff::tz::TimeZone::get("Europe/Paris").expect("tz");
    jiff::civil::date(y, m, d)
        .to_zoned(paris)
        .expect("a date")
        .timestamp()
        .as_second()
}

fn point(ts_utc: i64, value: i32, step_min: u16) -> Point {
    Point {
        ts_utc,
        value,
        step_min,
        quality: Quality::Measured,
    }
}

/// The truth by second: the last written value covering each second (ingest order is sequence
/// order, so this is the newest-covering-reading rule).
#[derive(Default)]
struct Truth {
    curve: HashMap<i64, i32>,
    price: HashMap<i64, i32>,
}

impl Truth {
    fn write(&mut self, channel: Channel, p: &Point) {
        let map = if channel == Channel::PRICE {
            &mut self.price
        } else {
            &mut self.curve
        };
        for s in p.ts_utc..p.ts_utc + 60 * i64::from(p.step_min) {
            map.insert(s, p.value);
        }
    }

    fn period(&self, a: i64, b: i64) -> DynamicPeriod {
        let (mut energy, mut raw, mut curve_s, mut unpriced) = (0i64, 0i128, 0i64, 0i64);
        for s in a..b {
            if let Some(&w) = self.curve.get(&s) {
                curve_s += 1;
                energy += i64::from(w);
                match self.price.get(&s) {
                    Some(&c) => raw += i128::from(w) * i128::from(c),
                    None => unpriced += 1,
                }
            }
        }
        DynamicPeriod {
            from_utc: a,
            to_utc: b,
            energy_ws: energy,
            cost_raw: raw,
            cost_micro_eur: div_round(raw, RAW_PER_MICRO_EUR) as i64,
            curve_s,
            curve_missing_s: (b - a) - curve_s,
            unpriced_s: unpriced,
        }
    }
}

/// Curves and prices over `[start, end)`, ingested in batches with flushes between some.
fn generate(seed: u64, store: &Store, truth: &mut Truth, start: i64, end: i64) {
    let mut rng = Rng::new(seed);
    let mut rows: Vec<(Channel, Point)> = Vec::new();
    // The curve: runs of one step (10, 15, 30 or 60 minutes), aligned on it, with gaps.
    let mut t = start;
    while t < end {
        let step = *rng.pick(&[10u16, 15, 30, 60]);
        let s = 60 * i64::from(step);
        t = (t + s - 1).div_euclid(s) * s;
        for _ in 0..rng.below(30) + 1 {
            if t + s > end {
                break;
            }
            if !rng.chance(4) {
                rows.push((
                    Channel::CONSUMPTION,
                    point(t, 100 + rng.below(6000) as i32, step),
                ));
            }
            t += s;
        }
        if rng.chance(10) {
            t += 60 * 60 * (1 + rng.below(5) as i64);
        }
    }
    // Prices: hours at 15 or 60 minutes, some missing, signed.
    let mut h = start.div_euclid(3600) * 3600;
    while h < end {
        if !rng.chance(3) {
            if rng.chance(25) {
                rows.push((
                    Channel::PRICE,
                    point(h, rng.below(20_000) as i32 - 3_000, 60),
                ));
            } else {
                for q in 0..4 {
                    if !rng.chance(2) {
                        let c = rng.below(30_000) as i32 - 5_000;
                        rows.push((Channel::PRICE, point(h + 900 * q, c, 15)));
                    }
                }
            }
        }
        h += 3600;
    }
    // Arrival out of order: shuffled batches, then late corrections of the same intervals.
    for i in (1..rows.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        rows.swap(i, j);
    }
    let corrections: Vec<(Channel, Point)> = rows
        .iter()
        .filter(|_| rng.chance(5))
        .map(|(c, p)| {
            let delta = if *c == Channel::PRICE { -7_000 } else { 321 };
            (
                *c,
                Point {
                    value: p.value + delta,
                    ..*p
                },
            )
        })
        .collect();
    rows.extend(corrections);
    for (n, chunk) in rows.chunks(500).enumerate() {
        let mut batch = Batch::new();
        for (channel, p) in chunk {
            let id = if *channel == Channel::PRICE {
                SERIES
            } else {
                METER
            };
            batch.push(id, *channel, *p).expect("a valid point");
            truth.write(*channel, p);
        }
        store.ingest(&batch).expect("ingests");
        if n % 3 == 1 {
            store.flush().expect("flushes");
        }
    }
}

#[test]
fn the_dynamic_cost_of_each_period_is_the_brute_force_sum_over_its_seconds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        memtable_max_points: 700,
        ..Options::default()
    };
    let store = Store::open(dir.path(), options).expect("opens");
    let mut truth = Truth::default();
    // Two spans holding the spring and autumn DST days (23- and 25-hour Paris days).
    let spring = (paris_midnight(2024, 3, 29), paris_midnight(2024, 4, 2));
    let autumn = (paris_midnight(2024, 10, 26), paris_midnight(2024, 10, 29));
    generate(11, &store, &mut truth, spring.0, spring.1);
    generate(12, &store, &mut truth, autumn.0, autumn.1);
    // Paris days: 29, 30, 31 (23 h) March, 1 April; 26, 27 (25 h), 28 October.
    let days = [
        (2024, 3, 29),
        (2024, 3, 30),
        (2024, 3, 31),
        (2024, 4, 1),
        (2024, 4, 2),
        (2024, 10, 26),
        (2024, 10, 27),
        (2024, 10, 28),
        (2024, 10, 29),
    ];
    let mut periods: Vec<(i64, i64)> = days
        .windows(2)
        .filter(|w| w[0].1 == w[1].1 || w[0].1 == 3)
        .map(|w| {
            let ((y, m, d), (y2, m2, d2)) = (w[0], w[1]);
            (paris_midnight(y, m, d), paris_midnight(y2, m2, d2))
        })
        .collect();
    // Periods off every grid: a few minutes and seconds into readings and prices.
    let mut rng = Rng::new(5);
    for _ in 0..20 {
        let (a0, b0) = if rng.chance(50) { spring } else { autumn };
        let a = a0 + rng.below((b0 - a0 - 7200) as u64) as i64;
        periods.push((a, a + 1 + rng.below(40_000) as i64));
    }
    let snapshot = store.snapshot();
    let answers = dynamic_energy_cost(&*snapshot, METER, SERIES, &periods).expect("answers");
    assert_eq!(answers.len(), periods.len());
    for (got, &(a, b)) in answers.iter().zip(&periods) {
        assert_eq!(*got, truth.period(a, b), "period [{a}, {b})");
    }
    // The DST days are 23 and 25 hours long, and the generated data leave some periods
    // incomplete (gaps in the curve or the prices), which the answers report.
    assert_eq!(periods[2].1 - periods[2].0, 23 * 3600);
    assert_eq!(periods[5].1 - periods[5].0, 25 * 3600);
    assert!(answers.iter().any(|p| p.unpriced_s > 0));
    assert!(answers.iter().any(|p| p.curve_missing_s > 0));
    // The same after compaction (segments rewritten, one block a month).
    store.compact().expect("compacts");
    let again = dynamic_energy_cost(&*store.snapshot(), METER, SERIES, &periods).expect("answers");
    assert_eq!(again, answers);
}

#[test]
fn a_dynamic_cost_names_an_unknown_meter_and_an_empty_period() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), Options::default()).expect("opens");
    let mut batch = Batch::new();
    batch
        .push(SERIES, Channel::PRICE, point(1_714_521_600, -1_250, 15))
        .expect("a price");
    store.ingest(&batch).expect("ingests");
    let snapshot = store.snapshot();
    let err = dynamic_energy_cost(&*snapshot, METER, SERIES, &[(0, 10)]).unwrap_err();
    assert!(matches!(err, QueryError::UnknownMeter(_)), "{err}");
    // A price series is no meter: its id answers as unknown.
    let err = dynamic_energy_cost(&*snapshot, SERIES, SERIES, &[(0, 10)]).unwrap_err();
    assert!(matches!(err, QueryError::UnknownMeter(_)), "{err}");
    let err = dynamic_energy_cost(&*snapshot, METER, SERIES, &[(10, 10)]).unwrap_err();
    assert!(matches!(err, QueryError::InvalidArgument(_)), "{err}");
}

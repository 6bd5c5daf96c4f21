//! The cost of consumption, checked against a brute-force pricer.
//!
//! Oracle: a generated fleet (30-minute curves with gaps, estimated points and late rewrites;
//! a meter with daily Tempo index registers and no curve) over 2024-10-01..2025-04-10 (both DST
//! changes, Tempo red days, grid prices and taxes changing mid-month). The pricer here walks the
//! readings minute by minute (curve) or day by day (index differences), reads the Paris wall
//! clock with jiff, decides the register itself, and keeps every line item as an integer
//! numerator over that line's fixed denominator (no fraction type shared with the code under
//! test) before rounding half up to the cent. `query::cost::meter_cost` must agree to the cent
//! on every line of every period.

use std::collections::BTreeMap;

use courbe::engine::{Batch, Options, Store};
use courbe::query::cost::{self, Grid, GridPrices, Tax, TaxKind};
use courbe::query::tariffs::{Colour, DayColours, TariffOption, TariffPlan};
use courbe::query::{EnergySource, Period};
use courbe::{Channel, Point, Quality};
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::util::Rng;

fn paris() -> TimeZone {
    TimeZone::get("Europe/Paris").unwrap()
}

fn date(text: &str) -> Date {
    text.parse().unwrap()
}

fn midnight(d: Date) -> i64 {
    d.to_zoned(paris()).unwrap().timestamp().as_second()
}

const FIRST: &str = "2024-10-01";
const END: &str = "2025-04-10";
const TEMPO_REGISTERS: [&str; 6] = ["HPJB", "HCJB", "HPJW", "HCJW", "HPJR", "HCJR"];

/// lcm(28, 29, 30, 31): a day's share of any month is a whole multiple of `1 / L`.
const L: i128 = 377_580;
/// Denominators (euros = numerator / denominator) of each kind of line.
const E: i128 = 3_600_000 * 1_000_000; // W·s × µ€/kWh
const S: i128 = L * 1_000_000; // µ€ × (L / month days)

fn prices(from: &str, to: Option<&str>, sub: i64, energy: &[(&str, i64)]) -> GridPrices {
    GridPrices {
        from: from.into(),
        to: to.map(Into::into),
        energy: energy.iter().map(|(r, p)| (r.to_string(), *p)).collect(),
        subscription: sub,
    }
}

/// Three test grids whose prices change on 2025-01-15 (mid-month).
fn grids() -> Vec<Grid> {
    let change = "2025-01-15";
    vec![
        Grid {
            name: "t-base".into(),
            option: "BASE".into(),
            kva: 6,
            prices: vec![
                prices("2024-09-01", Some(change), 10_000_000, &[("BASE", 190_000)]),
                prices(change, None, 11_110_000, &[("BASE", 133_330)]),
            ],
        },
        Grid {
            name: "t-hphc".into(),
            option: "HPHC:22:00-06:00".into(),
            kva: 6,
            prices: vec![
                prices(
                    "2024-09-01",
                    Some(change),
                    10_500_000,
                    &[("HP", 204_000), ("HC", 151_330)],
                ),
                prices(
                    change,
                    None,
                    12_420_000,
                    &[("HP", 145_130), ("HC", 107_630)],
                ),
            ],
        },
        Grid {
            name: "t-tempo".into(),
            option: "TEMPO".into(),
            kva: 6,
            prices: vec![
                prices(
                    "2024-09-01",
                    Some(change),
                    11_100_000,
                    &[
                        ("HCJB", 87_000),
                        ("HPJB", 113_080),
                        ("HCJW", 102_830),
                        ("HPJW", 136_830),
                        ("HCJR", 109_670),
                        ("HPJR", 609_170),
                    ],
                ),
                prices(
                    change,
                    None,
                    12_300_000,
                    &[
                        ("HCJB", 73_630),
                        ("HPJB", 95_630),
                        ("HCJW", 86_880),
                        ("HPJW", 115_630),
                        ("HCJR", 92_800),
                        ("HPJR", 515_130),
                    ],
                ),
            ],
        },
    ]
}

fn taxes() -> Vec<Tax> {
    let tax = |name: &str, kind, from: &str, to: Option<&str>, value| Tax {
        name: name.into(),
        kind,
        from: from.into(),
        to: to.map(Into::into),
        value,
    };
    vec![
        tax(
            "accise",
            TaxKind::PerKwh,
            "2024-09-01",
            Some("2025-01-20"),
            22_500,
        ),
        tax("accise", TaxKind::PerKwh, "2025-01-20", None, 33_700),
        tax(
            "cta",
            TaxKind::OnSubscription,
            "2024-09-01",
            None,
            2_500_000,
        ),
        tax(
            "vat_sub",
            TaxKind::VatSubscription,
            "2024-09-01",
            Some("2025-02-10"),
            5_500_000,
        ),
        tax(
            "vat_sub",
            TaxKind::VatSubscription,
            "2025-02-10",
            None,
            20_000_000,
        ),
        tax(
            "vat_energy",
            TaxKind::VatEnergy,
            "2024-09-01",
            None,
            20_000_000,
        ),
    ]
}

/// The Tempo colours of every day: blue mostly, some white, red on 2025-01-14 and 2025-01-15
/// (around the price change) and a few more in winter.
fn colours(rng: &mut Rng) -> BTreeMap<Date, Colour> {
    let mut out = BTreeMap::new();
    let mut d = date("2024-09-25");
    while d < date("2025-04-20") {
        let winter = d.month() >= 11 || d.month() <= 3;
        let c = match rng.below(100) {
            n if winter && n < 8 => Colour::Red,
            n if n < 25 => Colour::White,
            _ => Colour::Blue,
        };
        out.insert(d, c);
        d = d.tomorrow().unwrap();
    }
    out.insert(date("2025-01-14"), Colour::Red);
    out.insert(date("2025-01-15"), Colour::Red);
    out
}

// ---- The brute-force pricer -------------------------------------------------------------

/// The register of the instant `t` under `option`, read on the Paris wall clock.
fn register_at(option: &str, colours: &BTreeMap<Date, Colour>, t: i64) -> String {
    let z = jiff::Timestamp::from_second(t).unwrap().to_zoned(paris());
    let clock = i64::from(z.hour()) * 3600 + i64::from(z.minute()) * 60;
    let off_peak = !(6 * 3600..22 * 3600).contains(&clock);
    match option {
        "BASE" => "BASE".into(),
        "HPHC:22:00-06:00" => if off_peak { "HC" } else { "HP" }.into(),
        "TEMPO" => {
            let colour_day = if clock >= 6 * 3600 {
                z.date()
            } else {
                z.date().yesterday().unwrap()
            };
            let c = match colours[&colour_day] {
                Colour::Blue => "B",
                Colour::White => "W",
                Colour::Red => "R",
                other => panic!("no Tempo colour {other:?}"),
            };
            format!("{}J{c}", if off_peak { "HC" } else { "HP" })
        }
        other => panic!("no oracle for {other}"),
    }
}

fn in_force(from: &str, to: Option<&str>, d: Date) -> bool {
    date(from) <= d && to.is_none_or(|t| d < date(t))
}

fn grid_prices(grid: &Grid, d: Date) -> &GridPrices {
    grid.prices
        .iter()
        .find(|p| in_force(&p.from, p.to.as_deref(), d))
        .unwrap()
}

fn tax_value(taxes: &[Tax], kind: TaxKind, d: Date) -> Option<(String, i128)> {
    taxes
        .iter()
        .find(|t| t.kind == kind && in_force(&t.from, t.to.as_deref(), d))
        .map(|t| (t.name.clone(), i128::from(t.value)))
}

/// Percent × 10⁴ (`5.5 %` is 55 000) from the micro-units the model holds.
fn p4(micro: i128) -> i128 {
    micro / 100
}

/// Line numerators of one period, each over its line's fixed denominator.
#[derive(Default, Debug)]
struct Bill {
    energy: BTreeMap<String, i128>,     // over E
    ws: BTreeMap<String, i128>,         // W·s
    per_kwh: BTreeMap<String, i128>,    // over E
    vat_energy: BTreeMap<String, i128>, // over E × 10⁶
    subscription: i128,                 // over S
    cta: BTreeMap<String, i128>,        // over S × 10⁶
    vat_sub: BTreeMap<String, i128>,    // over S × 10¹²
    estimated_ws: i128,
}

fn half_up(num: i128, den: i128) -> i64 {
    i64::try_from((num * 200 + den).div_euclid(2 * den)).unwrap()
}

impl Bill {
    /// `ws` of energy at register `r` on day `d`.
    fn energy(&mut self, grid: &Grid, taxes: &[Tax], d: Date, r: &str, ws: i128) {
        let price = i128::from(grid_prices(grid, d).energy[r]);
        self.energy_at(taxes, d, r, ws, price);
    }

    /// `ws` of energy at register `r` on day `d`, at `price` µ€/kWh.
    fn energy_at(&mut self, taxes: &[Tax], d: Date, r: &str, ws: i128, price: i128) {
        *self.energy.entry(r.into()).or_default() += ws * price;
        *self.ws.entry(r.into()).or_default() += ws;
        let mut base = ws * price;
        if let Some((name, rate)) = tax_value(taxes, TaxKind::PerKwh, d) {
            *self.per_kwh.entry(name).or_default() += ws * rate;
            base += ws * rate;
        }
        if let Some((name, vat)) = tax_value(taxes, TaxKind::VatEnergy, d) {
            *self.vat_energy.entry(name).or_default() += base * p4(vat);
        }
    }

    /// Day `d`'s share of the subscription and its taxes.
    fn day(&mut self, grid: &Grid, taxes: &[Tax], d: Date) {
        let sub =
            i128::from(grid_prices(grid, d).subscription) * (L / i128::from(d.days_in_month()));
        self.subscription += sub;
        let mut base = sub * 1_000_000;
        if let Some((name, cta)) = tax_value(taxes, TaxKind::OnSubscription, d) {
            *self.cta.entry(name).or_default() += sub * p4(cta);
            base += sub * p4(cta);
        }
        if let Some((name, vat)) = tax_value(taxes, TaxKind::VatSubscription, d) {
            *self.vat_sub.entry(name).or_default() += base * p4(vat);
        }
    }

    /// `(register cents, subscription cents, tax cents by name, total)`.
    fn cents(&self) -> (BTreeMap<String, i64>, i64, BTreeMap<String, i64>, i64) {
        let registers: BTreeMap<String, i64> = self
            .energy
            .iter()
            .map(|(r, n)| (r.clone(), half_up(*n, E)))
            .collect();
        let subscription = half_up(self.subscription, S);
        let mut taxes = BTreeMap::new();
        for (lines, den) in [
            (&self.per_kwh, E),
            (&self.vat_energy, E * 1_000_000),
            (&self.cta, S * 1_000_000),
            (&self.vat_sub, S * 1_000_000_000_000),
        ] {
            for (name, n) in lines {
                taxes.insert(name.clone(), half_up(*n, den));
            }
        }
        let total = registers.values().sum::<i64>() + subscription + taxes.values().sum::<i64>();
        (registers, subscription, taxes, total)
    }
}

fn period_start(d: Date, period: Period) -> Date {
    match period {
        Period::Day => d,
        Period::Month => d.first_of_month(),
        Period::Year => d.first_of_year(),
        Period::Week => panic!("not used"),
    }
}

/// Brute force over a curve: every minute of every reading.
fn price_curve(
    points: &BTreeMap<i64, Point>,
    grid: &Grid,
    taxes: &[Tax],
    colours: &BTreeMap<Date, Colour>,
    period: Period,
) -> BTreeMap<Date, Bill> {
    price_minutes(points, grid, taxes, period, |bill, day, t, ws| {
        let r = register_at(&grid.option, colours, t);
        bill.energy(grid, taxes, day, &r, ws);
    })
}

/// Every minute of every reading: the days' subscriptions, then `charge(bill, day, minute,
/// W·s)` for each minute's energy in the bill of its period.
fn price_minutes(
    points: &BTreeMap<i64, Point>,
    grid: &Grid,
    taxes: &[Tax],
    period: Period,
    mut charge: impl FnMut(&mut Bill, Date, i64, i128),
) -> BTreeMap<Date, Bill> {
    let (first, end) = (date(FIRST), date(END));
    let mut bills: BTreeMap<Date, Bill> = BTreeMap::new();
    let mut d = first;
    while d < end {
        bills
            .entry(period_start(d, period))
            .or_default()
            .day(grid, taxes, d);
        d = d.tomorrow().unwrap();
    }
    for p in points.values() {
        for minute in 0..i64::from(p.step_min) {
            let t = p.ts_utc + 60 * minute;
            let day = jiff::Timestamp::from_second(t)
                .unwrap()
                .to_zoned(paris())
                .date();
            if day < first || day >= end {
                continue;
            }
            let ws = i128::from(p.value) * 60;
            let bill = bills.get_mut(&period_start(day, period)).unwrap();
            charge(bill, day, t, ws);
            if p.quality == Quality::Estimated {
                bill.estimated_ws += ws;
            }
        }
    }
    bills
}

/// Brute force over daily indexes: each day's differences, register by register.
fn price_index(
    index: &BTreeMap<String, BTreeMap<Date, i64>>,
    grid: &Grid,
    taxes: &[Tax],
    period: Period,
) -> BTreeMap<Date, Bill> {
    let mut bills: BTreeMap<Date, Bill> = BTreeMap::new();
    let mut d = date(FIRST);
    while d < date(END) {
        let next = d.tomorrow().unwrap();
        let bill = bills.entry(period_start(d, period)).or_default();
        bill.day(grid, taxes, d);
        if grid.option == "BASE" {
            let wh: i64 = index.values().map(|days| days[&next] - days[&d]).sum();
            bill.energy(grid, taxes, d, "BASE", i128::from(wh) * 3600);
        } else {
            for (r, days) in index {
                bill.energy(grid, taxes, d, r, i128::from(days[&next] - days[&d]) * 3600);
            }
        }
        d = next;
    }
    bills
}

// ---- The fleet -------------------------------------------------------------------------

struct Fleet {
    _dir: tempfile::TempDir,
    store: Store,
    /// Each curve meter's readings as the store must answer them (newest write wins).
    curves: BTreeMap<String, BTreeMap<i64, Point>>,
    /// The index meter's readings by register and Paris day (at its midnight).
    index: BTreeMap<String, BTreeMap<Date, i64>>,
    colours: BTreeMap<Date, Colour>,
}

const CURVE_METERS: [&str; 3] = ["30000000000001", "30000000000002", "30000000000003"];
const INDEX_METER: &str = "30000000000009";

fn fleet(seed: u64) -> Fleet {
    let mut rng = Rng::new(seed);
    let colours = colours(&mut rng);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let (from, to) = (midnight(date(FIRST)), midnight(date(END)));
    let mut curves = BTreeMap::new();
    for (m, meter) in CURVE_METERS.iter().enumerate() {
        let mut points = BTreeMap::new();
        let mut batch = Batch::new();
        let mut t = from;
        while t < to {
            // Meter 1 misses about one half-hour in fifty.
            if !(m == 1 && rng.chance(2)) {
                let p = Point {
                    ts_utc: t,
                    value: rng.below(3_000) as i32,
                    step_min: 30,
                    quality: if rng.chance(3) {
                        Quality::Estimated
                    } else {
                        Quality::Measured
                    },
                };
                batch.push(meter, Channel::CONSUMPTION, p).unwrap();
                points.insert(t, p);
            }
            t += 1_800;
        }
        store.ingest(&batch).unwrap();
        curves.insert(meter.to_string(), points);
    }
    store.flush().unwrap();
    // Late data: rewrites of some readings (and duplicates of the same value), newest wins.
    let mut late = Batch::new();
    for (meter, points) in curves.iter_mut() {
        for _ in 0..400 {
            let t = from + 1_800 * rng.below(((to - from) / 1_800) as u64) as i64;
            let p = Point {
                ts_utc: t,
                value: rng.below(5_000) as i32,
                step_min: 30,
                quality: Quality::Measured,
            };
            late.push(meter, Channel::CONSUMPTION, p).unwrap();
            late.push(meter, Channel::CONSUMPTION, p).unwrap();
            points.insert(t, p);
        }
    }
    store.ingest(&late).unwrap();
    // The index meter: daily Tempo registers from a hidden curve, read at Paris midnights.
    let mut index: BTreeMap<String, BTreeMap<Date, i64>> = BTreeMap::new();
    let mut totals: BTreeMap<String, i64> = TEMPO_REGISTERS
        .iter()
        .map(|r| (r.to_string(), 1_000_000 + rng.below(100_000) as i64))
        .collect();
    let mut batch = Batch::new();
    let mut d = date(FIRST);
    loop {
        for (r, total) in &totals {
            index.entry(r.clone()).or_default().insert(d, *total);
            let channel = store.index_channel(r).unwrap();
            batch
                .push(
                    INDEX_METER,
                    channel,
                    Point {
                        ts_utc: midnight(d),
                        value: i32::try_from(*total).unwrap(),
                        step_min: 1440,
                        quality: Quality::Measured,
                    },
                )
                .unwrap();
        }
        if d >= date(END) {
            break;
        }
        let mut t = midnight(d);
        while t < midnight(d.tomorrow().unwrap()) {
            let w = i64::try_from(rng.below(2_000)).unwrap();
            // Wh: whole watt-hours per half-hour keep the index exact.
            let r = register_at("TEMPO", &colours, t);
            *totals.get_mut(&r).unwrap() += w / 2;
            t += 1_800;
        }
        d = d.tomorrow().unwrap();
    }
    store.ingest(&batch).unwrap();
    Fleet {
        _dir: dir,
        store,
        curves,
        index,
        colours,
    }
}

fn day_colours(colours: &BTreeMap<Date, Colour>) -> DayColours {
    let mut out = DayColours::default();
    for (d, c) in colours {
        out.insert("tempo", *d, *c);
    }
    out
}

/// Compares the engine's periods with the oracle's bills, line by line.
fn agree(
    what: &str,
    got: &[cost::CostPeriod],
    bills: &BTreeMap<Date, Bill>,
    source: EnergySource,
    check_estimated: bool,
) {
    assert_eq!(got.len(), bills.len(), "{what}: periods");
    for (p, (start, bill)) in got.iter().zip(bills) {
        let at = format!("{what} period {start}");
        assert_eq!(
            courbe::query::tariffs::date_of_day(p.first_day).unwrap(),
            *start,
            "{at}"
        );
        assert_eq!(p.sources, vec![source], "{at}: sources");
        let (registers, subscription, taxes, total) = bill.cents();
        for r in &p.cost.registers {
            assert!(r.priced, "{at}: {} unpriced", r.register);
            assert_eq!(
                r.ws,
                bill.ws.get(&r.register).copied().unwrap_or(0),
                "{at}: energy of {}",
                r.register
            );
            assert_eq!(
                r.cents,
                registers.get(&r.register).copied().unwrap_or(0),
                "{at}: cost of {}",
                r.register
            );
        }
        assert_eq!(
            p.cost.subscription_cents, subscription,
            "{at}: subscription"
        );
        let got_taxes: BTreeMap<String, i64> = p
            .cost
            .taxes
            .iter()
            .map(|t| (t.name.clone(), t.cents))
            .collect();
        assert_eq!(got_taxes, taxes, "{at}: taxes");
        assert_eq!(p.cost.total_cents, total, "{at}: total");
        if check_estimated {
            assert_eq!(p.estimated_ws, bill.estimated_ws, "{at}: estimated");
        }
    }
}

#[test]
fn every_curve_cost_agrees_to_the_cent_with_a_minute_by_minute_pricer() {
    let fleet = fleet(13);
    let snapshot = fleet.store.snapshot();
    let colours = day_colours(&fleet.colours);
    let taxes = taxes();
    let (first, end) = (
        courbe::query::tariffs::day_number(date(FIRST)),
        courbe::query::tariffs::day_number(date(END)),
    );
    for grid in grids() {
        let plan = TariffPlan::Option(TariffOption::parse(&grid.option).unwrap());
        for (meter, points) in &fleet.curves {
            for period in [Period::Month, Period::Day] {
                let got = cost::meter_cost(
                    &*snapshot,
                    meter,
                    &grid,
                    &taxes,
                    &plan,
                    &colours,
                    first,
                    end,
                    Some(period),
                )
                .unwrap();
                let bills = price_curve(points, &grid, &taxes, &fleet.colours, period);
                let what = format!("{meter} {} {period:?}", grid.name);
                agree(&what, &got, &bills, EnergySource::Curve, true);
            }
        }
    }
}

#[test]
fn an_index_sourced_cost_agrees_to_the_cent_with_a_day_by_day_pricer() {
    let fleet = fleet(14);
    let snapshot = fleet.store.snapshot();
    let colours = day_colours(&fleet.colours);
    let taxes = taxes();
    let (first, end) = (
        courbe::query::tariffs::day_number(date(FIRST)),
        courbe::query::tariffs::day_number(date(END)),
    );
    for grid in grids()
        .into_iter()
        .filter(|g| g.option != "HPHC:22:00-06:00")
    {
        let plan = TariffPlan::Option(TariffOption::parse(&grid.option).unwrap());
        for period in [Period::Month, Period::Day] {
            let got = cost::meter_cost(
                &*snapshot,
                INDEX_METER,
                &grid,
                &taxes,
                &plan,
                &colours,
                first,
                end,
                Some(period),
            )
            .unwrap();
            let bills = price_index(&fleet.index, &grid, &taxes, period);
            agree(
                &format!("{} {period:?}", grid.name),
                &got,
                &bills,
                EnergySource::Index,
                false,
            );
        }
    }
}

#[test]
fn a_period_is_cut_where_prices_change_and_each_line_is_rounded_once() {
    // One whole period over the range: the engine cuts it at every change and rounds each line
    // once; the oracle sums exactly and rounds once.
    let fleet = fleet(15);
    let snapshot = fleet.store.snapshot();
    let colours = day_colours(&fleet.colours);
    let taxes = taxes();
    let grid = grids().remove(2);
    let plan = TariffPlan::Option(TariffOption::parse(&grid.option).unwrap());
    let meter = CURVE_METERS[0];
    let (first, end) = (
        courbe::query::tariffs::day_number(date(FIRST)),
        courbe::query::tariffs::day_number(date(END)),
    );
    let got = cost::meter_cost(
        &*snapshot, meter, &grid, &taxes, &plan, &colours, first, end, None,
    )
    .unwrap();
    let mut bills = price_curve(
        &fleet.curves[meter],
        &grid,
        &taxes,
        &fleet.colours,
        Period::Day,
    );
    let mut whole = Bill::default();
    for bill in std::mem::take(&mut bills).into_values() {
        for (r, n) in bill.energy {
            *whole.energy.entry(r).or_default() += n;
        }
        for (r, n) in bill.ws {
            *whole.ws.entry(r).or_default() += n;
        }
        for (lines, into) in [
            (bill.per_kwh, &mut whole.per_kwh),
            (bill.vat_energy, &mut whole.vat_energy),
            (bill.cta, &mut whole.cta),
            (bill.vat_sub, &mut whole.vat_sub),
        ] {
            for (name, n) in lines {
                *into.entry(name).or_default() += n;
            }
        }
        whole.subscription += bill.subscription;
        whole.estimated_ws += bill.estimated_ws;
    }
    let one: BTreeMap<Date, Bill> = [(date(FIRST), whole)].into_iter().collect();
    agree("whole range", &got, &one, EnergySource::Curve, true);
    // The red days were priced at the red peak price.
    assert!(got[0]
        .cost
        .registers
        .iter()
        .any(|r| r.register == "HPJR" && r.cents > 0));
}

#[test]
fn a_dynamic_offer_agrees_to_the_cent_with_a_minute_by_minute_spot_pricer() {
    let fleet = fleet(15);
    let mut rng = Rng::new(151);
    // Quarter-hour spot prices, signed (centi-EUR/MWh), over the whole span and its edges.
    let (from, to) = (midnight(date(FIRST)) - 3_600, midnight(date(END)) + 3_600);
    let mut spot: BTreeMap<i64, i64> = BTreeMap::new();
    let mut batch = Batch::new();
    let mut t = from;
    while t < to {
        let price = rng.below(40_000) as i64 - 5_000;
        spot.insert(t, price);
        batch
            .push(
                "spot-FR",
                Channel::PRICE,
                Point {
                    ts_utc: t,
                    value: i32::try_from(price).unwrap(),
                    step_min: 15,
                    quality: Quality::Measured,
                },
            )
            .unwrap();
        t += 900;
    }
    fleet.store.ingest(&batch).unwrap();
    let snapshot = fleet.store.snapshot();
    let grid = Grid {
        name: "t-dynamic".into(),
        option: "DYNAMIC:FR".into(),
        kva: 6,
        prices: vec![
            prices(FIRST, Some("2025-01-15"), 13_010_000, &[("SPOT", 41_230)]),
            prices("2025-01-15", None, 13_470_000, &[("SPOT", 52_370)]),
        ],
    };
    let taxes = taxes();
    let plan = TariffPlan::Option(TariffOption::parse("BASE").unwrap());
    let (first, end) = (
        courbe::query::tariffs::day_number(date(FIRST)),
        courbe::query::tariffs::day_number(date(END)),
    );
    for (meter, points) in &fleet.curves {
        for period in [Period::Month, Period::Day] {
            let got = cost::meter_cost(
                &*snapshot,
                meter,
                &grid,
                &taxes,
                &plan,
                &DayColours::default(),
                first,
                end,
                Some(period),
            )
            .unwrap();
            // Brute force: each minute's energy at the price of its quarter-hour
            // (1 centi-EUR/MWh = 10 µEUR/kWh) plus the grid's SPOT price.
            let bills = price_minutes(points, &grid, &taxes, period, |bill, day, t, ws| {
                let quarter = t - t.rem_euclid(900);
                let adder = i128::from(grid_prices(&grid, day).energy["SPOT"]);
                let price = i128::from(spot[&quarter]) * 10 + adder;
                bill.energy_at(&taxes, day, cost::DYNAMIC_REGISTER, ws, price);
            });
            agree(
                &format!("{meter} dynamic {period:?}"),
                &got,
                &bills,
                EnergySource::Curve,
                true,
            );
        }
    }
}

/// Adds to `fleet` the meters a fleet comparison meets besides whole curves: one with daily
/// energy only, one whose curve has a two-week hole covered by daily energy except one day, one
/// whose curve starts in February (earlier months have no energy), one whose step changes from
/// 30 to 10 minutes mid-month; and quarter-hour spot prices missing one hour.
fn add_fleet_meters(fleet: &Fleet, rng: &mut Rng) {
    let (from, to) = (midnight(date(FIRST)), midnight(date(END)));
    let mut batch = Batch::new();
    let point = |ts_utc, value, step_min| Point {
        ts_utc,
        value,
        step_min,
        quality: Quality::Measured,
    };
    let hole = (midnight(date("2024-12-05")), midnight(date("2024-12-20")));
    let late_start = midnight(date("2025-02-01"));
    let step_change = midnight(date("2025-01-10")) + 12 * 3_600;
    let mut t = from;
    while t < to {
        let v = rng.below(3_000) as i32;
        if !(hole.0..hole.1).contains(&t) {
            batch
                .push("30000000000012", Channel::CONSUMPTION, point(t, v, 30))
                .unwrap();
        }
        if t >= late_start {
            batch
                .push("30000000000013", Channel::CONSUMPTION, point(t, v, 30))
                .unwrap();
        }
        if t < step_change {
            batch
                .push("30000000000014", Channel::CONSUMPTION, point(t, v, 30))
                .unwrap();
        } else {
            for k in 0..3 {
                let p = point(t + 600 * k, v + k as i32, 10);
                batch
                    .push("30000000000014", Channel::CONSUMPTION, p)
                    .unwrap();
            }
        }
        if !(midnight(date("2024-11-05"))..midnight(date("2024-11-05")) + 3_600).contains(&t) {
            for k in 0..2 {
                let price = rng.below(40_000) as i32 - 5_000;
                batch
                    .push("spot-FR", Channel::PRICE, point(t + 900 * k, price, 15))
                    .unwrap();
            }
        }
        t += 1_800;
    }
    let mut d = date(FIRST);
    while d < date(END) {
        let wh = rng.below(30_000) as i32;
        batch
            .push(
                "30000000000011",
                Channel::DAILY_ENERGY,
                point(midnight(d), wh, 1440),
            )
            .unwrap();
        if d != date("2024-12-10") {
            batch
                .push(
                    "30000000000012",
                    Channel::DAILY_ENERGY,
                    point(midnight(d), wh, 1440),
                )
                .unwrap();
        }
        d = d.tomorrow().unwrap();
    }
    fleet.store.ingest(&batch).unwrap();
}

fn dynamic_grid() -> Grid {
    Grid {
        name: "t-dynamic".into(),
        option: "DYNAMIC:FR".into(),
        kva: 6,
        prices: vec![
            prices(FIRST, Some("2025-01-15"), 13_010_000, &[("SPOT", 41_230)]),
            prices("2025-01-15", None, 13_470_000, &[("SPOT", 52_370)]),
        ],
    }
}

#[test]
fn the_fleet_path_prices_every_meter_under_every_offer_as_the_one_meter_cost_does() {
    use courbe::governance::prices::{fleet_meters, fleet_savings, fleet_totals};
    let fleet = fleet(16);
    add_fleet_meters(&fleet, &mut Rng::new(161));
    let snapshot = fleet.store.snapshot();
    let colours = day_colours(&fleet.colours);
    let taxes = taxes();
    let (first, end) = (
        courbe::query::tariffs::day_number(date(FIRST)),
        courbe::query::tariffs::day_number(date(END)),
    );
    let mut offers: Vec<(Grid, TariffPlan, DayColours)> = grids()
        .into_iter()
        .map(|g| {
            let plan = TariffPlan::Option(TariffOption::parse(&g.option).unwrap());
            (g, plan, colours.clone())
        })
        .collect();
    let base = TariffPlan::Option(TariffOption::parse("BASE").unwrap());
    offers.push((dynamic_grid(), base, DayColours::default()));
    let meters = fleet_meters(&*snapshot);
    assert_eq!(meters.len(), 8, "{meters:?}");
    let mut sources = Vec::new();
    for period in [Some(Period::Month), Some(Period::Day), None] {
        let prepared: Vec<cost::FleetOffer> = offers
            .iter()
            .map(|(g, plan, colours)| {
                cost::FleetOffer::new(&*snapshot, g, &taxes, plan, colours, first, end, period)
                    .unwrap()
            })
            .collect();
        let mut registers = vec![None; prepared.len()];
        let mut scratch = storage_format::block::DecodedBlock::default();
        for meter in &meters {
            let curve = cost::FleetOffer::read(&prepared, &*snapshot, meter, &mut scratch).unwrap();
            for ((offer, (grid, plan, colours)), registers) in
                prepared.iter().zip(&offers).zip(registers.iter_mut())
            {
                let got = offer
                    .cost(&*snapshot, meter, &curve, registers, &mut scratch)
                    .unwrap();
                let want = cost::meter_cost_with(
                    &*snapshot, meter, grid, &taxes, plan, colours, first, end, period, false,
                )
                .unwrap();
                assert_eq!(got, want, "{meter} under {} per {period:?}", grid.name);
                for p in &got {
                    for s in &p.sources {
                        if !sources.contains(s) {
                            sources.push(*s);
                        }
                    }
                }
            }
        }
    }
    // The fleet reached every source and the fallbacks between them.
    for s in [
        EnergySource::Curve,
        EnergySource::Daily,
        EnergySource::Index,
        EnergySource::None,
    ] {
        assert!(sources.contains(&s), "{s:?} never used: {sources:?}");
    }
    // The totals are those of the one-meter cost, meters skipped alike (all four offers: the
    // hour without spot prices skips every meter; the regulated three: some are priced).
    for offers in [&offers[..], &offers[..3]] {
        let totals = fleet_totals(&*snapshot, offers, &taxes, first, end).unwrap();
        assert_eq!(
            totals,
            one_meter_totals(&*snapshot, &meters, offers, &taxes, (first, end))
        );
        let priced = totals.iter().filter(|t| t.is_some()).count();
        match offers.len() {
            4 => assert_eq!(priced, 0, "{totals:?}"),
            _ => assert!(priced >= 3 && priced < meters.len(), "{totals:?}"),
        }
    }
    let answer = fleet_savings(&*snapshot, &offers[..2], &taxes, first, end).unwrap();
    assert_eq!(answer.savings.len() + answer.skipped, meters.len());
    assert!(!answer.savings.is_empty());
}

/// Each meter's monthly totals under every offer as [`cost::meter_cost_with`] gives them, or
/// `None` when a month under an offer is not complete (what the fleet path must answer).
fn one_meter_totals(
    src: &dyn courbe::source::SeriesSource,
    meters: &[String],
    offers: &[(Grid, TariffPlan, DayColours)],
    taxes: &[Tax],
    (first, end): (i64, i64),
) -> Vec<Option<Vec<i64>>> {
    let mut out = Vec::new();
    for meter in meters {
        let mut want = Some(Vec::new());
        for (grid, plan, colours) in offers {
            let periods = cost::meter_cost_with(
                src,
                meter,
                grid,
                taxes,
                plan,
                colours,
                first,
                end,
                Some(Period::Month),
                false,
            )
            .unwrap();
            let complete = periods.iter().all(|p| {
                p.cost.unpriced_days == 0
                    && p.cost.registers.iter().all(|r| r.priced)
                    && !p.sources.contains(&EnergySource::None)
            });
            match (complete, want.as_mut()) {
                (true, Some(w)) => w.push(periods.iter().map(|p| p.cost.total_cents).sum()),
                _ => want = None,
            }
        }
        out.push(want);
    }
    out
}

/// Adds meters the clock-band summaries must price (or hand to the curve) exactly: whole
/// quarter-hour and half-hour curves (DST days included), hourly readings half an hour off the
/// clock (each day's last point runs into the next day; the last of a month into the next
/// partition, so the curve), a curve missing the repeated hour of the October DST day, and a
/// meter rewritten after its first flush (two segments a month until they are compacted).
fn add_band_meters(fleet: &Fleet, rng: &mut Rng) {
    let (from, to) = (midnight(date(FIRST)), midnight(date(END)));
    let point = |ts_utc, value, step_min| Point {
        ts_utc,
        value,
        step_min,
        quality: Quality::Measured,
    };
    // 2024-10-27: the clock reads 02:00-03:00 twice, from 00:00 and 01:00 UTC.
    let repeated = midnight(date("2024-10-27")) + 2 * 3_600;
    let mut batch = Batch::new();
    let mut t = from;
    while t < to {
        let v = rng.below(4_000) as i32;
        batch
            .push("30000000000021", Channel::CONSUMPTION, point(t, v, 15))
            .unwrap();
        if t % 1_800 == 0 {
            batch
                .push("30000000000024", Channel::CONSUMPTION, point(t, v, 30))
                .unwrap();
            if !(repeated..repeated + 3_600).contains(&t) {
                batch
                    .push("30000000000023", Channel::CONSUMPTION, point(t, v, 30))
                    .unwrap();
            }
        }
        if t % 3_600 == 1_800 {
            batch
                .push("30000000000022", Channel::CONSUMPTION, point(t, v, 60))
                .unwrap();
        }
        t += 900;
    }
    fleet.store.ingest(&batch).unwrap();
    fleet.store.flush().unwrap();
    let mut late = Batch::new();
    for _ in 0..50 {
        let t = from + 1_800 * rng.below(((to - from) / 1_800) as u64) as i64;
        late.push("30000000000024", Channel::CONSUMPTION, point(t, 7, 30))
            .unwrap();
    }
    fleet.store.ingest(&late).unwrap();
}

#[test]
fn the_summary_path_prices_a_fleet_as_the_curve_path_the_one_meter_cost_and_a_brute_force_pricer_do(
) {
    use courbe::governance::prices::{fleet_meters, fleet_totals_by, FleetPath, OfferPaths};
    for seed in [181, 182] {
        let fleet = fleet(seed);
        add_fleet_meters(&fleet, &mut Rng::new(seed + 10));
        add_band_meters(&fleet, &mut Rng::new(seed + 20));
        let colours = day_colours(&fleet.colours);
        let taxes = taxes();
        let (first, end) = (
            courbe::query::tariffs::day_number(date(FIRST)),
            courbe::query::tariffs::day_number(date(END)),
        );
        let mut grids = grids();
        // Off-peak hours the bands do not cut at: always the curve.
        let mut other_windows = grids[1].clone();
        other_windows.name = "t-hphc-23-07".into();
        other_windows.option = "HPHC:23:00-07:00".into();
        grids.push(other_windows);
        let mut offers: Vec<(Grid, TariffPlan, DayColours)> = grids
            .into_iter()
            .map(|g| {
                let plan = TariffPlan::Option(TariffOption::parse(&g.option).unwrap());
                (g, plan, colours.clone())
            })
            .collect();
        let base = TariffPlan::Option(TariffOption::parse("BASE").unwrap());
        offers.push((dynamic_grid(), base, DayColours::default()));
        let check = |label: &str| -> Vec<OfferPaths> {
            let snapshot = fleet.store.snapshot();
            let meters = fleet_meters(&*snapshot);
            let mut paths = Vec::new();
            for offers in [&offers[..], &offers[..4], &offers[..1]] {
                let (curve, _) =
                    fleet_totals_by(&*snapshot, offers, &taxes, first, end, FleetPath::Curve)
                        .unwrap();
                let (any, p) =
                    fleet_totals_by(&*snapshot, offers, &taxes, first, end, FleetPath::Any)
                        .unwrap();
                let n = offers.len();
                assert_eq!(any, curve, "{label}, {n} offers, seed {seed}");
                let want = one_meter_totals(&*snapshot, &meters, offers, &taxes, (first, end));
                assert_eq!(any, want, "{label}, {n} offers, seed {seed}");
                if n == 4 {
                    assert!(any.iter().filter(|t| t.is_some()).count() >= 4, "{any:?}");
                    paths = p;
                }
            }
            paths
        };
        // Meters 12 (a hole the daily data fills), 21 and 23 (a DST hour missing) are in one
        // segment a month; 1, 2 and 3 in two (late data), 24 also in the memtable.
        let before = check("late data in the memtable");
        assert_eq!(before[0].summaries, 3, "{before:?}");
        fleet.store.flush().unwrap();
        let flushed = check("flushed");
        assert_eq!(flushed[0].summaries, 3, "{flushed:?}");
        fleet.store.compact().unwrap();
        let compacted = check("compacted");
        // And now 1, 2, 3 and 24. The curve: 9 (indexes), 11 (daily energy), 13 (no curve
        // before February), 14 (a day of two steps) and 22 (a point into the next month).
        assert_eq!(compacted[0].summaries, 7, "{compacted:?}");
        assert_eq!(compacted[0], compacted[1]);
        assert_eq!(compacted[0], compacted[2]);
        assert_eq!(compacted[3].summaries, 0, "{compacted:?}");
        assert_eq!(compacted[0].summaries + compacted[0].curve, 12);
        if seed != 181 {
            continue;
        }
        // Meters 1, 2 and 3, now priced from summaries, against the brute-force pricer
        // (every minute of every reading, the newest write of each instant).
        let snapshot = fleet.store.snapshot();
        let meters = fleet_meters(&*snapshot);
        let regulated = &offers[..3];
        let (totals, _) =
            fleet_totals_by(&*snapshot, regulated, &taxes, first, end, FleetPath::Any).unwrap();
        for (meter, points) in &fleet.curves {
            let i = meters.iter().position(|m| m == meter).unwrap();
            let want: Vec<i64> = regulated
                .iter()
                .map(|(grid, ..)| {
                    let bills = price_curve(points, grid, &taxes, &fleet.colours, Period::Month);
                    bills.values().map(|b| b.cents().3).sum()
                })
                .collect();
            assert_eq!(totals[i], Some(want), "{meter}");
        }
    }
}

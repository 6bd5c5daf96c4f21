//! Prices and costs: price grids and taxes in, amounts in integer cents out. No binary floating
//! point touches money.
//!
//! # The model
//!
//! - A **grid** (an offer) has a name, a tariff option (as [`TariffOption::parse`] reads it, or
//!   `DYNAMIC:<area>`), a subscribed power in kVA, and validity periods of whole Europe/Paris days
//!   `[from, to)` (`to` open: still in force). Each validity period gives an energy price per
//!   register of the option in EUR/kWh (at most 5 decimals) and a monthly subscription in EUR
//!   (at most 2 decimals). Prices are held as integer micro-euros ([`Micro`]).
//! - A **tax** has a name, a kind and validity `[from, to)`:
//!   - `per_kwh`: EUR per kWh of every register's energy (accise, ex-CSPE), at most 6 decimals;
//!   - `on_subscription`: a percentage of the subscription (CTA), at most 4 decimals;
//!   - `vat_subscription`: a percentage of the subscription **plus** the `on_subscription` taxes;
//!   - `vat_energy`: a percentage of the energy cost **plus** the `per_kwh` taxes.
//!
//! # The rules
//!
//! - **Subscription pro rata**: each Paris day of a period is charged the monthly subscription in
//!   force that day divided by the number of days of its calendar month; a whole month is
//!   charged exactly the monthly price.
//! - A period is cut at every day a price or a tax changes; each piece is priced with the values
//!   in force on its days, and the pieces are summed **exactly** (as fractions of a euro).
//! - **Rounding**: each line item of a period (the energy cost of each register, the
//!   subscription, each tax) is rounded once, to the cent, half up (toward +∞ at exactly half a
//!   cent); percentages apply to the exact, unrounded bases. The period's total is the sum of
//!   its rounded lines, so the lines always add up to the total.
//! - Energy of a register a grid has no price for (a Tempo day without colour: `UNKNOWN`, days
//!   outside every contract: `NO_CONTRACT`) and days no validity period of the grid covers are
//!   not priced: they are reported as unpriced, never guessed. Per-kWh taxes apply to all the
//!   energy of the days the tax is in force.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::civil::civil_from_days;

/// Micro-units: micro-euros for prices, millionths of a percent-unit for rates
/// (`5.5 %` is `5_500_000`, that is 5.5 × 10⁶).
pub type Micro = i64;

const MICRO: i128 = 1_000_000;
/// W·s in a kWh.
const WS_PER_KWH: i128 = 3_600_000;

/// Reads a non-negative decimal with at most `decimals` decimals as micro-units.
pub fn parse_decimal(text: &str, decimals: u32, what: &str) -> Result<Micro, String> {
    let t = text.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (t.contains('.') && frac.is_empty()) {
        return Err(format!(
            "{what} {t:?} is not a decimal number (like 0.25160)"
        ));
    }
    if frac.len() > decimals as usize {
        return Err(format!("{what} {t:?} has more than {decimals} decimals"));
    }
    if int.len() > 9 {
        return Err(format!("{what} {t:?} is too large"));
    }
    let int: i64 = int.parse().map_err(|_| format!("{what} {t:?}"))?;
    let mut f: i64 = 0;
    for i in 0..6 {
        let d = frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        f = f * 10 + d;
    }
    Ok(int * 1_000_000 + f)
}

/// Micro-units as a decimal with `decimals` decimals (exact when the value has no more).
pub fn format_micro(v: Micro, decimals: u32) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let int = a / 1_000_000;
    let frac = a % 1_000_000;
    let frac = format!("{frac:06}");
    let keep = decimals.min(6) as usize;
    if keep == 0 {
        return format!("{sign}{int}");
    }
    format!("{sign}{int}.{}", &frac[..keep])
}

/// Cents as `EUR.cc`.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let a = cents.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// An exact amount: `num / den` euros.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exact {
    num: i128,
    den: i128,
}

/// Binary GCD (no division: i128 division is a software routine), at least 1.
fn gcd(a: i128, b: i128) -> i128 {
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    if a == 0 || b == 0 {
        return i128::try_from(a | b).unwrap_or(i128::MAX).max(1);
    }
    let shift = (a | b).trailing_zeros();
    a >>= a.trailing_zeros();
    loop {
        b >>= b.trailing_zeros();
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        b -= a;
        if b == 0 {
            break;
        }
    }
    i128::try_from(a << shift).unwrap_or(i128::MAX).max(1)
}

impl Exact {
    pub const ZERO: Exact = Exact { num: 0, den: 1 };

    pub fn new(num: i128, den: i128) -> Exact {
        let g = gcd(num, den);
        if g == 1 {
            return Exact { num, den };
        }
        Exact {
            num: num / g,
            den: den / g,
        }
    }

    pub fn plus(self, o: Exact) -> Exact {
        if self.den == o.den {
            return Exact::new(self.num + o.num, self.den);
        }
        Exact::new(self.num * o.den + o.num * self.den, self.den * o.den)
    }

    /// `self × micro / 10⁶` (a rate or a price in micro-units).
    pub fn times_micro(self, micro: Micro) -> Exact {
        Exact::new(self.num * i128::from(micro), self.den * MICRO)
    }

    /// Rounded to the cent, half up (toward +∞ at exactly half a cent).
    pub fn cents(self) -> i64 {
        let n = self.num * 100 * 2 + self.den;
        let d = self.den * 2;
        i64::try_from(n.div_euclid(d)).unwrap_or(i64::MAX)
    }
}

/// One validity period of a grid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridPrices {
    /// First Paris day (YYYY-MM-DD).
    pub from: String,
    /// First day no longer covered; `None`: open.
    pub to: Option<String>,
    /// Register → EUR/kWh in micro-euros.
    pub energy: BTreeMap<String, Micro>,
    /// EUR per month in micro-euros.
    pub subscription: Micro,
}

/// A price grid: one offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    pub name: String,
    /// `BASE`, `HPHC:22:00-06:00`, `TEMPO`, ... or `DYNAMIC:<area>`.
    pub option: String,
    pub kva: u32,
    /// Sorted by `from`, never overlapping.
    pub prices: Vec<GridPrices>,
}

impl Grid {
    /// The market area of a dynamic offer.
    /// The prices in force on Paris day number `day`.
    pub fn prices_on(&self, day: i64) -> Option<&GridPrices> {
        self.prices
            .iter()
            .find(|p| in_force(&p.from, p.to.as_deref(), day))
    }

    pub fn dynamic_area(&self) -> Option<&str> {
        self.option.strip_prefix("DYNAMIC:")
    }
}

/// What a tax applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxKind {
    PerKwh,
    OnSubscription,
    VatSubscription,
    VatEnergy,
}

impl TaxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaxKind::PerKwh => "per_kwh",
            TaxKind::OnSubscription => "on_subscription",
            TaxKind::VatSubscription => "vat_subscription",
            TaxKind::VatEnergy => "vat_energy",
        }
    }

    pub fn parse(s: &str) -> Result<TaxKind, String> {
        [
            TaxKind::PerKwh,
            TaxKind::OnSubscription,
            TaxKind::VatSubscription,
            TaxKind::VatEnergy,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| {
            format!("tax kind {s:?}: per_kwh, on_subscription, vat_subscription or vat_energy")
        })
    }

    /// Decimals its value may carry.
    pub fn decimals(self) -> u32 {
        match self {
            TaxKind::PerKwh => 6,
            _ => 4,
        }
    }
}

/// A tax or contribution with its validity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tax {
    pub name: String,
    pub kind: TaxKind,
    pub from: String,
    pub to: Option<String>,
    /// EUR/kWh (micro-euros) for `per_kwh`, a percentage (micro-units) otherwise.
    pub value: Micro,
}

/// Day number of a `YYYY-MM-DD` text (checked when the record was written).
pub fn day_of(text: &str) -> Result<i64, String> {
    let ok = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    let date = ok
        .then(|| text.parse::<jiff::civil::Date>().ok())
        .flatten()
        .ok_or_else(|| format!("{text:?} is not a date YYYY-MM-DD"))?;
    Ok(super::tariffs::day_number(date))
}

fn span_of(from: &str, to: Option<&str>) -> Result<(i64, i64), String> {
    let f = day_of(from)?;
    let t = match to {
        Some(t) => day_of(t)?,
        None => i64::MAX,
    };
    if t <= f {
        return Err(format!("validity {from}..{} is empty", to.unwrap_or("")));
    }
    Ok((f, t))
}

/// Days of the calendar month holding day number `day`.
pub fn month_days(day: i64) -> i64 {
    let (y, m, _) = civil_from_days(day);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    crate::civil::days_from_civil(ny, nm, 1) - crate::civil::days_from_civil(y, m, 1)
}

/// The energy of a run of whole Paris days `[first_day, end_day)` split by register, in W·s.
#[derive(Clone, Debug)]
pub struct Piece {
    pub first_day: i64,
    pub end_day: i64,
    pub by_register_ws: Vec<(String, i128)>,
    /// A dynamic offer's energy cost, priced interval by interval against the spot prices
    /// ([`super::spot::dynamic_energy_cost`]), with whether every second of curve had a price;
    /// `by_register_ws` then holds the one register [`DYNAMIC_REGISTER`].
    pub dynamic: Option<(Exact, bool)>,
}

/// The register line of a dynamic offer's energy.
pub const DYNAMIC_REGISTER: &str = "SPOT";

/// W·s × centi-EUR/MWh in one EUR: 3.6 × 10⁹ W·s/MWh × 100 c/EUR.
const RAW_PER_EUR: i128 = 360_000_000_000;

/// One line of a period's bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterCost {
    pub register: String,
    /// Energy, W·s (exact).
    pub ws: i128,
    pub cents: i64,
    /// Whether the grid had a price for every day of this register's energy.
    pub priced: bool,
}

/// A tax line: every validity period of one tax name together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaxCost {
    pub name: String,
    pub kind: TaxKind,
    pub cents: i64,
}

/// The priced figures of one period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodCost {
    pub registers: Vec<RegisterCost>,
    pub subscription_cents: i64,
    pub taxes: Vec<TaxCost>,
    pub total_cents: i64,
    /// Days of the period no validity period of the grid covers.
    pub unpriced_days: i64,
}

/// Every day where a price of `grid` or a tax changes, for cutting periods.
pub fn change_days(grid: &Grid, taxes: &[Tax]) -> Vec<i64> {
    let mut out = Vec::new();
    let mut push = |from: &str, to: Option<&str>| {
        if let Ok((f, t)) = span_of(from, to) {
            out.push(f);
            if t != i64::MAX {
                out.push(t);
            }
        }
    };
    for p in &grid.prices {
        push(&p.from, p.to.as_deref());
    }
    for t in taxes {
        push(&t.from, t.to.as_deref());
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn in_force(from: &str, to: Option<&str>, day: i64) -> bool {
    span_of(from, to).is_ok_and(|(f, t)| f <= day && day < t)
}

/// Prices one period from its pieces (each piece lies within one set of prices and taxes: cut
/// at [`change_days`]).
pub fn price_period(grid: &Grid, taxes: &[Tax], pieces: &[Piece]) -> PeriodCost {
    price_period_in(&Validity::of(grid, taxes), grid, taxes, pieces)
}

/// The validity of each of a grid's price periods and of each tax as day numbers `[from, to)`
/// (`None`: not a valid span, never in force).
#[derive(Clone, Debug)]
struct Validity {
    prices: Vec<Option<(i64, i64)>>,
    taxes: Vec<Option<(i64, i64)>>,
}

impl Validity {
    fn of(grid: &Grid, taxes: &[Tax]) -> Validity {
        Validity {
            prices: grid
                .prices
                .iter()
                .map(|p| span_of(&p.from, p.to.as_deref()).ok())
                .collect(),
            taxes: taxes
                .iter()
                .map(|t| span_of(&t.from, t.to.as_deref()).ok())
                .collect(),
        }
    }

    fn holds(span: Option<(i64, i64)>, day: i64) -> bool {
        span.is_some_and(|(f, t)| f <= day && day < t)
    }

    /// [`Grid::prices_on`].
    fn prices_on<'g>(&self, grid: &'g Grid, day: i64) -> Option<&'g GridPrices> {
        grid.prices
            .iter()
            .zip(&self.prices)
            .find(|(_, &span)| Validity::holds(span, day))
            .map(|(p, _)| p)
    }

    fn tax_in_force(&self, i: usize, day: i64) -> bool {
        Validity::holds(self.taxes.get(i).copied().flatten(), day)
    }
}

/// [`price_period`] with the validity spans parsed.
fn price_period_in(v: &Validity, grid: &Grid, taxes: &[Tax], pieces: &[Piece]) -> PeriodCost {
    let mut energy: Vec<(String, i128, Exact, bool)> = Vec::new();
    let mut subscription = Exact::ZERO;
    let mut tax_exact: Vec<(usize, Exact)> = Vec::new();
    let mut unpriced_days = 0;
    let add_tax = |i: usize, x: Exact, list: &mut Vec<(usize, Exact)>| match list
        .iter_mut()
        .find(|(j, _)| *j == i)
    {
        Some((_, e)) => *e = e.plus(x),
        None => list.push((i, x)),
    };
    for piece in pieces {
        let day = piece.first_day;
        let prices = v.prices_on(grid, day);
        let total_ws: i128 = piece.by_register_ws.iter().map(|(_, w)| *w).sum();
        let mut piece_energy = Exact::ZERO;
        for (register, ws) in &piece.by_register_ws {
            let (cost, priced) = match piece.dynamic {
                // The spot cost, plus the grid's price per kWh on top of it, if any.
                Some((cost, complete)) => {
                    let adder = prices.and_then(|p| p.energy.get(register)).copied();
                    let extra = adder.map_or(Exact::ZERO, |p| {
                        Exact::new(*ws * i128::from(p), WS_PER_KWH * MICRO)
                    });
                    (cost.plus(extra), complete && prices.is_some())
                }
                None => {
                    let price = prices.and_then(|p| p.energy.get(register)).copied();
                    let cost = match price {
                        Some(p) => Exact::new(*ws * i128::from(p), WS_PER_KWH * MICRO),
                        None => Exact::ZERO,
                    };
                    (cost, price.is_some() || *ws == 0)
                }
            };
            piece_energy = piece_energy.plus(cost);
            match energy.iter_mut().find(|(r, ..)| r == register) {
                Some(e) => {
                    e.1 += ws;
                    e.2 = e.2.plus(cost);
                    e.3 &= priced;
                }
                None => energy.push((register.clone(), *ws, cost, priced)),
            }
        }
        // Subscription: each day its month's share.
        let mut piece_sub = Exact::ZERO;
        match prices {
            Some(p) => {
                // Each day its month's share: the days of a month length together, exactly.
                let mut d = piece.first_day;
                while d < piece.end_day {
                    let length = month_days(d);
                    let (_, _, dd) = civil_from_days(d);
                    let month_end = d - (dd - 1) + length;
                    let run = piece.end_day.min(month_end) - d;
                    piece_sub = piece_sub.plus(Exact::new(
                        i128::from(p.subscription) * i128::from(run),
                        MICRO * i128::from(length),
                    ));
                    d += run;
                }
            }
            None => unpriced_days += piece.end_day - piece.first_day,
        }
        subscription = subscription.plus(piece_sub);
        let kwh = Exact::new(total_ws, WS_PER_KWH);
        let mut on_sub = Exact::ZERO;
        let mut per_kwh = Exact::ZERO;
        let mut lines = Vec::new();
        for (i, tax) in taxes.iter().enumerate() {
            if !v.tax_in_force(i, day) {
                continue;
            }
            match tax.kind {
                TaxKind::PerKwh => {
                    let x = kwh.times_micro(tax.value);
                    per_kwh = per_kwh.plus(x);
                    lines.push((i, x));
                }
                TaxKind::OnSubscription => {
                    let x = piece_sub.times_micro(tax.value).times_micro(10_000);
                    on_sub = on_sub.plus(x);
                    lines.push((i, x));
                }
                _ => {}
            }
        }
        for (i, tax) in taxes.iter().enumerate() {
            if !v.tax_in_force(i, day) {
                continue;
            }
            let base = match tax.kind {
                TaxKind::VatSubscription => piece_sub.plus(on_sub),
                TaxKind::VatEnergy => piece_energy.plus(per_kwh),
                _ => continue,
            };
            lines.push((i, base.times_micro(tax.value).times_micro(10_000)));
        }
        for (i, x) in lines {
            // One line per tax name: its validity periods are one tax.
            let first = taxes
                .iter()
                .position(|t| t.name == taxes[i].name)
                .unwrap_or(i);
            add_tax(first, x, &mut tax_exact);
        }
    }
    tax_exact.sort_by_key(|(i, _)| *i);
    let registers: Vec<RegisterCost> = energy
        .into_iter()
        .map(|(register, ws, cost, priced)| RegisterCost {
            register,
            ws,
            cents: cost.cents(),
            priced,
        })
        .collect();
    let taxes: Vec<TaxCost> = tax_exact
        .into_iter()
        .map(|(i, x)| TaxCost {
            name: taxes[i].name.clone(),
            kind: taxes[i].kind,
            cents: x.cents(),
        })
        .collect();
    let subscription_cents = subscription.cents();
    let total_cents = registers.iter().map(|r| r.cents).sum::<i64>()
        + subscription_cents
        + taxes.iter().map(|t| t.cents).sum::<i64>();
    PeriodCost {
        registers,
        subscription_cents,
        taxes,
        total_cents,
        unpriced_days,
    }
}

/// Most days a cost question spans.
pub const MAX_COST_DAYS: i64 = 3_700;

/// One period of a meter's cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CostPeriod {
    /// First Paris day and the day after the last.
    pub first_day: i64,
    pub end_day: i64,
    pub start_utc: i64,
    pub end_utc: i64,
    /// The source of each piece's energy, distinct, in order of first use.
    pub sources: Vec<super::EnergySource>,
    /// Energy from curve points marked estimated, W·s (curve pieces only: daily energy and
    /// indexes carry no quality and count as measured).
    pub estimated_ws: i128,
    pub cost: PeriodCost,
}

/// UTC start of Paris day number `day`.
pub fn paris_day_start(day: i64) -> Result<i64, super::QueryError> {
    let date = super::tariffs::date_of_day(day)?;
    super::calendar::day_start_utc(&super::daily::paris(), date)
}

/// The first day of each period; `None`: one period over the whole range.
fn period_starts(first_day: i64, end_day: i64, period: Option<super::Period>) -> Vec<i64> {
    (first_day..end_day)
        .filter(|&d| {
            let (_, m, dd) = civil_from_days(d);
            d == first_day
                || match period {
                    None => false,
                    Some(super::Period::Day) => true,
                    Some(super::Period::Week) => (d + 3).rem_euclid(7) == 0,
                    Some(super::Period::Month) => dd == 1,
                    Some(super::Period::Year) => dd == 1 && m == 1,
                }
        })
        .collect()
}

/// The cost of `meter`'s consumption over Paris days `[first_day, end_day)` per `period` (`None`:
/// one period), with
/// `grid`'s prices and `taxes`, registers decided by `plan` and `colours`. Energy comes from
/// [`super::energy_by_register_spans`] over the periods cut at every price or tax change.
#[allow(clippy::too_many_arguments)]
pub fn meter_cost(
    src: &dyn crate::source::SeriesSource,
    meter: &str,
    grid: &Grid,
    taxes: &[Tax],
    plan: &super::tariffs::TariffPlan,
    colours: &super::tariffs::DayColours,
    first_day: i64,
    end_day: i64,
    period: Option<super::Period>,
) -> Result<Vec<CostPeriod>, super::QueryError> {
    meter_cost_with(
        src, meter, grid, taxes, plan, colours, first_day, end_day, period, true,
    )
}

/// [`meter_cost`], counting estimated curve energy only when `estimated` (it reads the curve
/// once more).
#[allow(clippy::too_many_arguments)]
pub fn meter_cost_with(
    src: &dyn crate::source::SeriesSource,
    meter: &str,
    grid: &Grid,
    taxes: &[Tax],
    plan: &super::tariffs::TariffPlan,
    colours: &super::tariffs::DayColours,
    first_day: i64,
    end_day: i64,
    period: Option<super::Period>,
    estimated: bool,
) -> Result<Vec<CostPeriod>, super::QueryError> {
    let cuts = Cuts::new(grid, taxes, first_day, end_day, period)?;
    let (energies, dynamic) = match grid.dynamic_area() {
        // A dynamic offer prices each curve interval at its spot prices: the curve is its
        // only source.
        Some(area) => {
            let series = dynamic_series(area)?;
            let priced = super::spot::dynamic_energy_cost(src, meter, &series, &cuts.spans)?;
            dynamic_energies(&priced)
        }
        None => (
            super::energy_by_register_spans(
                src,
                meter,
                storage_format::Channel::CONSUMPTION,
                &cuts.spans,
                plan,
                colours,
            )?,
            vec![None; cuts.spans.len()],
        ),
    };
    let estimated = match estimated {
        true => estimated_by_span(src, meter, &cuts.spans)?,
        false => vec![0; cuts.spans.len()],
    };
    Ok(cuts.assemble(
        &Validity::of(grid, taxes),
        grid,
        taxes,
        &energies,
        &dynamic,
        &estimated,
    ))
}

fn dynamic_series(area: &str) -> Result<String, super::QueryError> {
    crate::engine::price_series_id(area)
        .ok_or_else(|| super::QueryError::InvalidArgument(format!("dynamic area {area:?}")))
}

type Dynamic = Option<(Exact, bool)>;

/// A dynamic offer's energy per span as register periods (one register, [`DYNAMIC_REGISTER`]),
/// and its exact cost per span with whether every second of curve had a price.
fn dynamic_energies(
    priced: &[super::spot::DynamicPeriod],
) -> (Vec<super::RegisterPeriod>, Vec<Dynamic>) {
    let energies = priced
        .iter()
        .map(|d| super::RegisterPeriod {
            period: super::EnergyPeriod {
                start_utc: d.from_utc,
                end_utc: d.to_utc,
                energy_wmin: d.energy_ws / 60,
                points: 0,
                expected_points: 0,
                by_tariff_wmin: None,
                source: if d.curve_s > 0 {
                    super::EnergySource::Curve
                } else {
                    super::EnergySource::None
                },
            },
            by_register_ws: vec![(DYNAMIC_REGISTER.to_string(), i128::from(d.energy_ws))],
        })
        .collect();
    let dynamic = priced
        .iter()
        .map(|d| Some((Exact::new(d.cost_raw, RAW_PER_EUR), d.unpriced_s == 0)))
        .collect();
    (energies, dynamic)
}

/// How a cost question over `[first_day, end_day)` is cut: the first day of each period, every
/// day a period starts or a price or tax changes, and the UTC spans between those days.
#[derive(Clone, Debug)]
struct Cuts {
    end_day: i64,
    starts: Vec<i64>,
    cuts: Vec<i64>,
    spans: Vec<(i64, i64)>,
    /// UTC start of each day of `starts` and of `end_day`, in order.
    start_utc: Vec<i64>,
}

impl Cuts {
    fn new(
        grid: &Grid,
        taxes: &[Tax],
        first_day: i64,
        end_day: i64,
        period: Option<super::Period>,
    ) -> Result<Cuts, super::QueryError> {
        if end_day <= first_day {
            return Err(super::QueryError::InvalidArgument(
                "`from` must be a day before `to`".into(),
            ));
        }
        if end_day - first_day > MAX_COST_DAYS {
            return Err(super::QueryError::InvalidArgument(format!(
                "a cost spans at most {MAX_COST_DAYS} days"
            )));
        }
        let starts = period_starts(first_day, end_day, period);
        let mut cuts: Vec<i64> = starts.clone();
        cuts.extend(
            change_days(grid, taxes)
                .into_iter()
                .filter(|&d| d > first_day && d < end_day),
        );
        cuts.sort_unstable();
        cuts.dedup();
        let mut bounds = Vec::with_capacity(cuts.len() + 1);
        for &d in cuts.iter().chain(std::iter::once(&end_day)) {
            bounds.push(paris_day_start(d)?);
        }
        let spans: Vec<(i64, i64)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
        let mut start_utc = Vec::with_capacity(starts.len() + 1);
        for &d in starts.iter().chain(std::iter::once(&end_day)) {
            start_utc.push(paris_day_start(d)?);
        }
        Ok(Cuts {
            end_day,
            starts,
            cuts,
            spans,
            start_utc,
        })
    }

    /// The periods priced from each span's energy.
    fn assemble(
        &self,
        validity: &Validity,
        grid: &Grid,
        taxes: &[Tax],
        energies: &[super::RegisterPeriod],
        dynamic: &[Dynamic],
        estimated: &[i128],
    ) -> Vec<CostPeriod> {
        let (cuts, end_day) = (&self.cuts, self.end_day);
        let mut out = Vec::with_capacity(self.starts.len());
        let mut piece = 0;
        for (i, &start) in self.starts.iter().enumerate() {
            let end = self.starts.get(i + 1).copied().unwrap_or(end_day);
            let mut pieces = Vec::new();
            let mut sources = Vec::new();
            let mut estimated_ws = 0;
            while piece < cuts.len() && cuts[piece] < end {
                let e = &energies[piece];
                if !sources.contains(&e.period.source) {
                    sources.push(e.period.source);
                }
                if e.period.source == super::EnergySource::Curve {
                    estimated_ws += estimated[piece];
                }
                pieces.push(Piece {
                    first_day: cuts[piece],
                    end_day: cuts.get(piece + 1).copied().unwrap_or(end_day),
                    by_register_ws: e.by_register_ws.clone(),
                    dynamic: dynamic[piece],
                });
                piece += 1;
            }
            out.push(CostPeriod {
                first_day: start,
                end_day: end,
                start_utc: self.start_utc[i],
                end_utc: self.start_utc[i + 1],
                sources,
                estimated_ws,
                cost: price_period_in(validity, grid, taxes, &pieces),
            });
        }
        out
    }
}

/// One offer of a fleet question, prepared once for every meter: [`meter_cost_with`] without
/// estimated energy, with what no meter changes computed once (periods and cuts, their UTC
/// bounds, the register of every instant, the validity of prices and taxes, a dynamic offer's
/// spot prices), and each meter's curve read once for all offers ([`FleetCurve`]).
#[derive(Clone, Debug)]
pub struct FleetOffer<'a> {
    grid: &'a Grid,
    taxes: &'a [Tax],
    cuts: Cuts,
    validity: Validity,
    kind: FleetKind,
    /// For a regulated offer whose registers change only at the edges of the clock bands
    /// ([`crate::engine::bands`]) on every day of the range: per day, the register of each band.
    bands: Option<Vec<[u16; crate::engine::bands::BANDS]>>,
}

#[derive(Clone, Debug)]
enum FleetKind {
    Registers(super::tariffs::Registers),
    Dynamic(super::spot::PriceIntegral),
}

/// One meter's consumption curve over a fleet question's range, read once for every offer.
#[derive(Debug, Default)]
pub struct FleetCurve {
    /// For regulated offers: the points the register walk visits.
    read: Option<super::energy::CurveRead>,
    /// For dynamic offers: the points meeting the range.
    dynamic: Option<super::spot::CurveColumns>,
}

impl<'a> FleetOffer<'a> {
    /// Prepares `grid` (with `plan` and `colours` for a regulated option) over Paris days
    /// `[first_day, end_day)` per `period`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        src: &dyn crate::source::SeriesSource,
        grid: &'a Grid,
        taxes: &'a [Tax],
        plan: &super::tariffs::TariffPlan,
        colours: &super::tariffs::DayColours,
        first_day: i64,
        end_day: i64,
        period: Option<super::Period>,
    ) -> Result<FleetOffer<'a>, super::QueryError> {
        let cuts = Cuts::new(grid, taxes, first_day, end_day, period)?;
        let (from, to) = cuts.range();
        let kind = match grid.dynamic_area() {
            Some(area) => FleetKind::Dynamic(super::spot::PriceIntegral::new(
                &super::spot::spot_prices(src, &dynamic_series(area)?, from, to)?,
            )),
            None => FleetKind::Registers(super::tariffs::Registers::new(
                plan,
                colours,
                from,
                to + 60 * i64::from(storage_format::STEP_MIN_MAX),
            )?),
        };
        let bands = match &kind {
            FleetKind::Registers(registers) => band_registers(registers, first_day, end_day)?,
            FleetKind::Dynamic(_) => None,
        };
        Ok(FleetOffer {
            grid,
            taxes,
            cuts,
            validity: Validity::of(grid, taxes),
            kind,
            bands,
        })
    }

    /// Whether this offer prices a meter from its clock-band summaries
    /// ([`FleetOffer::cost_from_bands`]): a regulated offer whose registers are constant over
    /// each band of each day (BASE, HP/HC 22:00-06:00, Tempo, EJP, the seasons with those
    /// windows); other windows, dynamic offers and contracts cut elsewhere read the curve.
    pub fn priced_by_bands(&self) -> bool {
        self.bands.is_some()
    }

    /// Whether this is a dynamic offer (priced interval by interval from the curve).
    pub fn is_dynamic(&self) -> bool {
        matches!(self.kind, FleetKind::Dynamic(_))
    }

    /// Checks a meter's clock-band summaries of every day of the range (from
    /// [`crate::source::SeriesSource::day_bands`]) for pricing: every day usable, one step over
    /// the range, and the step in force before the range that step too (or the range's first
    /// point at its start); `None`: read the curve. `offers` share one range.
    pub fn check_bands(
        offers: &[FleetOffer<'_>],
        src: &dyn crate::source::SeriesSource,
        meter: &str,
        days: Vec<crate::engine::bands::DayBands>,
        scratch: &mut storage_format::block::DecodedBlock,
    ) -> Result<Option<MeterBands>, super::QueryError> {
        let Some(first) = offers.first() else {
            return Ok(None);
        };
        let len =
            usize::try_from(first.cuts.end_day - first.cuts.cuts.first().copied().unwrap_or(0));
        if len != Ok(days.len()) || !days.iter().all(|d| d.usable()) {
            return Ok(None);
        }
        let mut step = None;
        for d in days.iter().filter(|d| d.count > 0) {
            match step {
                None => step = Some(d.step_min),
                Some(s) if s == d.step_min => {}
                Some(_) => return Ok(None),
            }
        }
        let Some(step_min) = step else {
            return Ok(None);
        };
        let starts_at_from = days
            .first()
            .is_some_and(|d| d.count > 0 && d.first_at_start);
        if !starts_at_from {
            let initial = super::energy::initial_step(
                src,
                meter,
                storage_format::Channel::CONSUMPTION,
                first.cuts.range(),
                scratch,
            )?;
            if initial.max(1) != step_min {
                return Ok(None);
            }
        }
        Ok(Some(MeterBands { days, step_min }))
    }

    /// The cost of a meter from its clock-band summaries ([`FleetOffer::check_bands`]), equal
    /// to [`FleetOffer::cost`] on its curve: each band's energy goes whole to the one register
    /// of that band, and the walk's points and expected points per span (one step `s`: a span
    /// expects its length over `s`) take the same fallback to daily data; `None` when the offer
    /// is not priced by bands ([`FleetOffer::priced_by_bands`]).
    pub fn cost_from_bands(
        &self,
        src: &dyn crate::source::SeriesSource,
        meter: &str,
        bands: &MeterBands,
        scratch: &mut storage_format::block::DecodedBlock,
    ) -> Result<Option<Vec<CostPeriod>>, super::QueryError> {
        let (Some(table), FleetKind::Registers(registers)) = (self.bands.as_ref(), &self.kind)
        else {
            return Ok(None);
        };
        let days = &bands.days;
        let (Some(&first_day), true) = (self.cuts.cuts.first(), days.len() == table.len()) else {
            return Ok(None);
        };
        let names = &registers.names;
        let step_s = 60 * u64::from(bands.step_min.max(1));
        let mut periods = Vec::with_capacity(self.cuts.spans.len());
        let mut split = Vec::with_capacity(self.cuts.spans.len());
        for (i, &(start_utc, end_utc)) in self.cuts.spans.iter().enumerate() {
            let a = self.cuts.cuts[i];
            let b = self
                .cuts
                .cuts
                .get(i + 1)
                .copied()
                .unwrap_or(self.cuts.end_day);
            let mut ws = vec![0i128; names.len()];
            let mut points = 0u64;
            let (Ok(lo), Ok(hi)) = (
                usize::try_from(a - first_day),
                usize::try_from(b - first_day),
            ) else {
                return Ok(None);
            };
            let (Some(span_days), Some(span_regs)) = (days.get(lo..hi), table.get(lo..hi)) else {
                return Ok(None);
            };
            for (day, regs) in span_days.iter().zip(span_regs) {
                points += u64::from(day.count);
                for (w, &r) in day.ws.iter().zip(regs) {
                    if let Some(acc) = ws.get_mut(usize::from(r)) {
                        *acc += i128::from(*w);
                    }
                }
            }
            let total: i128 = ws.iter().sum();
            periods.push(super::EnergyPeriod {
                start_utc,
                end_utc,
                energy_wmin: i64::try_from(total / 60).unwrap_or(i64::MAX),
                points,
                expected_points: u64::try_from(end_utc - start_utc).unwrap_or(0) / step_s,
                by_tariff_wmin: None,
                source: if points > 0 {
                    super::EnergySource::Curve
                } else {
                    super::EnergySource::None
                },
            });
            split.push(ws);
        }
        let energies = super::registers_with_fallback(
            src,
            meter,
            storage_format::Channel::CONSUMPTION,
            names,
            (periods, split),
            true,
            scratch,
        )?;
        let n = energies.len();
        Ok(Some(self.cuts.assemble(
            &self.validity,
            self.grid,
            self.taxes,
            &energies,
            &vec![None; n],
            &vec![0; n],
        )))
    }

    /// Reads `meter`'s curve once for every offer of `offers` (which must share one range).
    pub fn read(
        offers: &[FleetOffer<'_>],
        src: &dyn crate::source::SeriesSource,
        meter: &str,
        scratch: &mut storage_format::block::DecodedBlock,
    ) -> Result<FleetCurve, super::QueryError> {
        let mut out = FleetCurve::default();
        FleetOffer::read_for(offers, src, meter, scratch, true, &mut out)?;
        Ok(out)
    }

    /// [`FleetOffer::read`] into `out` (its buffers reused from meter to meter), reading the
    /// curve for the regulated offers only when `regulated` (the others being priced from
    /// summaries).
    pub fn read_for(
        offers: &[FleetOffer<'_>],
        src: &dyn crate::source::SeriesSource,
        meter: &str,
        scratch: &mut storage_format::block::DecodedBlock,
        regulated: bool,
        out: &mut FleetCurve,
    ) -> Result<(), super::QueryError> {
        out.read = None;
        let dynamic = out.dynamic.take();
        let Some(first) = offers.first() else {
            return Ok(());
        };
        if !src.has_meter(meter) {
            return Err(super::QueryError::UnknownMeter(meter.to_owned()));
        }
        let range = first.cuts.range();
        let channel = storage_format::Channel::CONSUMPTION;
        if regulated
            && offers
                .iter()
                .any(|o| matches!(o.kind, FleetKind::Registers(_)))
        {
            out.read = Some(super::energy::read_curve(
                src, meter, channel, range, scratch,
            )?);
        }
        if offers
            .iter()
            .any(|o| matches!(o.kind, FleetKind::Dynamic(_)))
        {
            let mut columns = dynamic.unwrap_or_default();
            columns.read(src, meter, channel, range, scratch)?;
            out.dynamic = Some(columns);
        }
        Ok(())
    }

    /// The cost of `meter` under this offer, equal to [`meter_cost_with`] without estimated
    /// energy; `curve` from [`FleetOffer::read`], `registers` a copy of this offer's
    /// ([`FleetOffer::registers`]) kept between meters.
    pub fn cost(
        &self,
        src: &dyn crate::source::SeriesSource,
        meter: &str,
        curve: &FleetCurve,
        registers: &mut Option<FleetRegisters>,
        scratch: &mut storage_format::block::DecodedBlock,
    ) -> Result<Vec<CostPeriod>, super::QueryError> {
        let spans = &self.cuts.spans;
        let (energies, dynamic) = match (&self.kind, &curve.read, &curve.dynamic) {
            (FleetKind::Dynamic(prices), _, Some(columns)) => {
                let priced: Vec<super::spot::DynamicPeriod> = spans
                    .iter()
                    .map(|&(a, b)| super::spot::period_cost_columns(columns, prices, a, b))
                    .collect();
                dynamic_energies(&priced)
            }
            (FleetKind::Registers(built), Some(read), _) => {
                let registers = registers.get_or_insert_with(|| FleetRegisters(built.clone()));
                registers.0.rewind();
                let walked = super::energy::periods_by_register_read(read, spans, &mut registers.0);
                let energies = super::registers_with_fallback(
                    src,
                    meter,
                    storage_format::Channel::CONSUMPTION,
                    &registers.0.names,
                    walked,
                    true,
                    scratch,
                )?;
                (energies, vec![None; spans.len()])
            }
            _ => {
                return Err(super::QueryError::InvalidArgument(
                    "the curve was not read for this offer".into(),
                ))
            }
        };
        Ok(self.cuts.assemble(
            &self.validity,
            self.grid,
            self.taxes,
            &energies,
            &dynamic,
            &vec![0; spans.len()],
        ))
    }
}

/// Per day of `[first_day, end_day)`, the register of each clock band under `registers`
/// (which cover the range and an hour past it); `None` when some band of some day holds more
/// than one register.
fn band_registers(
    registers: &super::tariffs::Registers,
    first_day: i64,
    end_day: i64,
) -> Result<Option<Vec<[u16; crate::engine::bands::BANDS]>>, super::QueryError> {
    use crate::engine::bands;
    let mut out = Vec::with_capacity(usize::try_from(end_day - first_day).unwrap_or(0));
    for day in first_day..end_day {
        let edges = bands::day_edges(day).map_err(super::QueryError::InvalidArgument)?;
        let mut regs = [0u16; bands::BANDS];
        for (k, r) in regs.iter_mut().enumerate() {
            match registers
                .single_over(edges[k], edges[k + 1])
                .and_then(|r| u16::try_from(r).ok())
            {
                Some(i) => *r = i,
                None => return Ok(None),
            }
        }
        out.push(regs);
    }
    Ok(Some(out))
}

/// A meter's clock-band summaries over a fleet question's range, checked for pricing
/// ([`FleetOffer::check_bands`]).
#[derive(Clone, Debug)]
pub struct MeterBands {
    days: Vec<crate::engine::bands::DayBands>,
    step_min: u16,
}

/// A worker's copy of an offer's registers (their cursor moves while a meter is walked).
#[derive(Clone, Debug)]
pub struct FleetRegisters(super::tariffs::Registers);

impl Cuts {
    /// UTC start of the first span and end of the last.
    fn range(&self) -> (i64, i64) {
        (
            self.spans.first().map_or(0, |s| s.0),
            self.spans.last().map_or(0, |s| s.1),
        )
    }
}

/// Per span, the energy of the curve points marked estimated (W·s, each point's part inside).
fn estimated_by_span(
    src: &dyn crate::source::SeriesSource,
    meter: &str,
    spans: &[(i64, i64)],
) -> Result<Vec<i128>, super::QueryError> {
    let mut out = vec![0i128; spans.len()];
    let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
        return Ok(out);
    };
    let points = super::curve(
        src,
        meter,
        storage_format::Channel::CONSUMPTION,
        first.0 - 60 * i64::from(storage_format::STEP_MIN_MAX),
        last.1,
    )?;
    for p in points
        .iter()
        .filter(|p| p.quality == storage_format::Quality::Estimated)
    {
        let (s, e) = (p.ts_utc, p.ts_utc + 60 * i64::from(p.step_min));
        for (i, &(a, b)) in spans.iter().enumerate() {
            let overlap = e.min(b) - s.max(a);
            if overlap > 0 {
                out[i] += i128::from(p.value) * i128::from(overlap);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_read_exactly_and_refused_beyond_their_precision() {
        assert_eq!(parse_decimal("0.25160", 5, "p"), Ok(251_600));
        assert_eq!(parse_decimal("12", 2, "p"), Ok(12_000_000));
        assert_eq!(parse_decimal("12.44", 2, "p"), Ok(12_440_000));
        for bad in ["0.251601", "-1", "1.", ".5", "1e3", "", "0,25", "1.2.3"] {
            assert!(parse_decimal(bad, 5, "p").is_err(), "{bad}");
        }
        assert_eq!(format_micro(251_600, 5), "0.25160");
        assert_eq!(format_cents(1_205), "12.05");
    }

    #[test]
    fn the_binary_gcd_is_euclid_s() {
        fn euclid(mut a: i128, mut b: i128) -> i128 {
            (a, b) = (a.abs(), b.abs());
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a.max(1)
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..10_000 {
            let shift = next() % 40;
            let a = i128::from(next() >> shift) * i128::from((next() % 1_000) as i64 - 500);
            let b = i128::from(next() >> (next() % 50)) * 3_600_000_000;
            assert_eq!(gcd(a, b), euclid(a, b), "{a} {b}");
        }
        for (a, b) in [(0, 0), (0, 7), (-12, 0), (i128::MAX, 1), (-360, 1_000_000)] {
            assert_eq!(gcd(a, b), euclid(a, b), "{a} {b}");
        }
    }

    #[test]
    fn a_half_cent_rounds_up_once() {
        assert_eq!(Exact::new(5, 1000).cents(), 1);
        assert_eq!(Exact::new(4999, 1_000_000).cents(), 0);
        assert_eq!(Exact::new(-5, 1000).cents(), 0);
        assert_eq!(Exact::new(1, 3).plus(Exact::new(1, 6)).cents(), 50);
    }

    #[test]
    fn a_whole_month_is_charged_its_monthly_subscription_and_a_day_its_share() {
        let grid = Grid {
            name: "g".into(),
            option: "BASE".into(),
            kva: 6,
            prices: vec![GridPrices {
                from: "2024-01-01".into(),
                to: None,
                energy: [("BASE".to_string(), 200_000)].into_iter().collect(),
                subscription: 12_440_000,
            }],
        };
        let feb = day_of("2024-02-01").unwrap();
        let piece = |first, end, ws| Piece {
            first_day: first,
            end_day: end,
            by_register_ws: vec![("BASE".into(), ws)],
            dynamic: None,
        };
        let month = price_period(&grid, &[], &[piece(feb, feb + 29, 3_600_000 * 100)]);
        assert_eq!(month.subscription_cents, 1244);
        assert_eq!(month.registers[0].cents, 2000);
        assert_eq!(month.total_cents, 3244);
        // 12.44 / 29 = 0.42896...: 43 cents.
        let day = price_period(&grid, &[], &[piece(feb, feb + 1, 0)]);
        assert_eq!(day.subscription_cents, 43);
    }
}

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

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

impl Exact {
    pub const ZERO: Exact = Exact { num: 0, den: 1 };

    pub fn new(num: i128, den: i128) -> Exact {
        let g = gcd(num, den);
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegisterCost {
    pub register: String,
    /// Energy, W·s (exact).
    pub ws: i128,
    pub cents: i64,
    /// Whether the grid had a price for every day of this register's energy.
    pub priced: bool,
}

/// A tax line: every validity period of one tax name together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaxCost {
    pub name: String,
    pub kind: TaxKind,
    pub cents: i64,
}

/// The priced figures of one period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
        let prices = grid.prices_on(day);
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
                for d in piece.first_day..piece.end_day {
                    piece_sub = piece_sub.plus(Exact::new(
                        i128::from(p.subscription),
                        MICRO * i128::from(month_days(d)),
                    ));
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
            if !in_force(&tax.from, tax.to.as_deref(), day) {
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
            if !in_force(&tax.from, tax.to.as_deref(), day) {
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
    let (energies, dynamic) = match grid.dynamic_area() {
        // A dynamic offer prices each curve interval at its spot prices: the curve is its
        // only source.
        Some(area) => {
            let series = crate::engine::price_series_id(area).ok_or_else(|| {
                super::QueryError::InvalidArgument(format!("dynamic area {area:?}"))
            })?;
            let priced = super::spot::dynamic_energy_cost(src, meter, &series, &spans)?;
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
        None => (
            super::energy_by_register_spans(
                src,
                meter,
                storage_format::Channel::CONSUMPTION,
                &spans,
                plan,
                colours,
            )?,
            vec![None; spans.len()],
        ),
    };
    let estimated = match estimated {
        true => estimated_by_span(src, meter, &spans)?,
        false => vec![0; spans.len()],
    };
    let mut out = Vec::with_capacity(starts.len());
    let mut piece = 0;
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(end_day);
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
            start_utc: paris_day_start(start)?,
            end_utc: paris_day_start(end)?,
            sources,
            estimated_ws,
            cost: price_period(grid, taxes, &pieces),
        });
    }
    Ok(out)
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

//! The price registry: price grids (offers) and taxes, one registry file
//! `DATA/governance/prices.log` ([`RecordLog`] of JSON [`PriceRecord`]s). The model and the
//! pricing rules are [`crate::query::cost`]'s.
//!
//! - A grids record holds whole grids; each replaces the grid of its name.
//! - A taxes record replaces the whole tax table.
//!
//! Operators write, every token reads (prices are public).
//!
//! # CSV in
//!
//! Grids, one line per grid, validity period and item (`grid,option,kva,from,to,item,eur`
//! header optional):
//!
//! ```text
//! grid,option,kva,from,to,item,eur
//! bleu-base-6,BASE,6,2024-02-01,2025-02-01,subscription,10.90
//! bleu-base-6,BASE,6,2024-02-01,2025-02-01,BASE,0.18867
//! ```
//!
//! `item` is `subscription` (EUR per month, at most 2 decimals) or a register of the option
//! (EUR per kWh, at most 5 decimals); `to` empty: open. Every validity period of a grid needs the
//! subscription and a price for every register of its option; periods of a grid never overlap;
//! `option` and `kva` are the same on every line of a grid. An upload is stored whole or not at
//! all: a bad line refuses it, every bad line named.
//!
//! Taxes (`tax,kind,from,to,value`): `kind` is `per_kwh` (EUR per kWh, at most 6 decimals),
//! `on_subscription`, `vat_subscription` or `vat_energy` (a percentage, at most 4 decimals; see
//! [`crate::query::cost`] for the base of each).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::calendars::BadLine;
use super::record_log::RecordLog;
use super::Error;
use crate::engine::fs::FileSystem;
use crate::query::cost::{self, day_of, parse_decimal, Grid, GridPrices, Tax, TaxKind};
use crate::query::tariffs::{DayColours, TariffOption, TariffPlan};
use crate::Channel;

/// The registry's file inside the governance folder.
pub const PRICES_LOG: &str = "prices.log";
/// Most grids the registry holds.
pub const MAX_GRIDS: usize = 256;
/// Most validity periods of one grid.
pub const MAX_PERIODS: usize = 64;
/// Most taxes.
pub const MAX_TAXES: usize = 256;
/// Most lines of one upload.
pub const MAX_LINES: usize = 20_000;
/// Fewest meters a fleet comparison's distribution is given over to anyone but operators.
pub const MIN_FLEET_OFFERS: usize = 10;

/// One record of the registry file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PriceRecord {
    Grids { grids: Vec<Grid> },
    Taxes { taxes: Vec<Tax> },
}

/// Whether `name` may name a grid: 1 to 64 of `a-z 0-9 _ -` (not `contract`).
pub fn check_grid_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "contract"
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "grid name {name:?}: 1 to 64 of a-z, 0-9, _ and - (not `contract`)"
        ))
    }
}

/// The registers a grid's option prices (`None` for a dynamic offer: one price per interval).
pub fn option_registers(option: &str) -> Result<Option<Vec<String>>, String> {
    if let Some(area) = option.strip_prefix("DYNAMIC:") {
        let ok = !area.is_empty()
            && area.len() <= 32
            && area
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        return match ok {
            true => Ok(None),
            false => Err(format!(
                "dynamic area {area:?}: 1 to 32 of A-Z, a-z, 0-9, _ and -"
            )),
        };
    }
    let o = TariffOption::parse(option).map_err(|e| format!("option {option:?}: {e}"))?;
    Ok(Some(o.registers))
}

fn split_fields(l: &str, n: usize, shape: &str) -> Result<Vec<String>, String> {
    let fields: Vec<String> = l.split(',').map(|f| f.trim().to_string()).collect();
    if fields.len() != n {
        return Err(format!("expected {n} fields: {shape}"));
    }
    Ok(fields)
}

fn lines<'t>(text: &'t str, header: &str) -> impl Iterator<Item = (usize, String)> + 't {
    let header = header.to_string();
    text.split('\n').enumerate().filter_map(move |(i, raw)| {
        let l = raw.strip_suffix('\r').unwrap_or(raw).trim();
        (!(l.is_empty() || (i == 0 && l.eq_ignore_ascii_case(&header))))
            .then(|| (i + 1, l.to_string()))
    })
}

fn validity(from: &str, to: &str) -> Result<(i64, Option<i64>), String> {
    let f = day_of(from).map_err(|e| format!("from: {e}"))?;
    let t = match to {
        "" => None,
        t => Some(day_of(t).map_err(|e| format!("to: {e}"))?),
    };
    if t.is_some_and(|t| t <= f) {
        return Err(format!("validity {from}..{to} ends before it starts"));
    }
    Ok((f, t))
}

/// Reads a grids CSV (see the module docs): the grids, or every bad line.
pub fn parse_grids(text: &str) -> Result<Vec<Grid>, Vec<BadLine>> {
    const SHAPE: &str = "grid,option,kva,from,to,item,eur";
    let mut bad = Vec::new();
    // name -> (option, kva, first line, periods: (from, to) -> (energy, subscription))
    type Periods = BTreeMap<(i64, Option<i64>), (String, Option<String>, GridPrices, bool)>;
    let mut grids: BTreeMap<String, (String, u32, usize, Periods)> = BTreeMap::new();
    for (line, l) in lines(text, SHAPE) {
        if line > MAX_LINES {
            bad.push(BadLine {
                line,
                reason: format!("more than {MAX_LINES} lines"),
            });
            break;
        }
        let mut read = || -> Result<(), String> {
            let f = split_fields(&l, 7, SHAPE)?;
            check_grid_name(&f[0])?;
            option_registers(&f[1])?;
            let kva: u32 = f[2]
                .parse()
                .ok()
                .filter(|k| (1..=1_000).contains(k))
                .ok_or_else(|| format!("kva {:?} is not a whole number 1 to 1000", f[2]))?;
            let span = validity(&f[3], &f[4])?;
            let entry = grids
                .entry(f[0].clone())
                .or_insert_with(|| (f[1].clone(), kva, line, BTreeMap::new()));
            if entry.0 != f[1] || entry.1 != kva {
                return Err(format!(
                    "grid {} has option {} and kva {} on line {}",
                    f[0], entry.0, entry.1, entry.2
                ));
            }
            let period = entry.3.entry(span).or_insert_with(|| {
                (
                    f[3].clone(),
                    (!f[4].is_empty()).then(|| f[4].clone()),
                    GridPrices {
                        from: f[3].clone(),
                        to: (!f[4].is_empty()).then(|| f[4].clone()),
                        energy: BTreeMap::new(),
                        subscription: 0,
                    },
                    false,
                )
            });
            if f[5] == "subscription" {
                if period.3 {
                    return Err("subscription given twice for this period".into());
                }
                period.2.subscription = parse_decimal(&f[6], 2, "subscription")?;
                period.3 = true;
            } else {
                let price = parse_decimal(&f[6], 5, "energy price")?;
                if period.2.energy.insert(f[5].clone(), price).is_some() {
                    return Err(format!("register {} given twice for this period", f[5]));
                }
            }
            Ok(())
        };
        if let Err(reason) = read() {
            bad.push(BadLine { line, reason });
        }
    }
    let mut out = Vec::new();
    for (name, (option, kva, line, periods)) in grids {
        let check = || -> Result<Grid, String> {
            let registers = option_registers(&option)?;
            if periods.len() > MAX_PERIODS {
                return Err(format!("at most {MAX_PERIODS} validity periods"));
            }
            let mut prices = Vec::new();
            let mut last_end: Option<Option<i64>> = None;
            for ((from, to), (_, _, p, has_sub)) in periods {
                if let Some(end) = last_end {
                    if end.is_none_or(|e| e > from) {
                        return Err(format!("validity periods overlap at {}", p.from));
                    }
                }
                last_end = Some(to);
                if !has_sub {
                    return Err(format!("period from {} has no subscription", p.from));
                }
                let expected: Vec<String> = registers.clone().unwrap_or_default();
                for r in &expected {
                    if !p.energy.contains_key(r) {
                        return Err(format!("period from {} has no price for {r}", p.from));
                    }
                }
                // A dynamic offer may add a price per kWh to the spot price (the supplier's
                // margin, the network's share): its one register line, `SPOT`.
                let adder = |r: &String| registers.is_none() && r == cost::DYNAMIC_REGISTER;
                if let Some(r) = p.energy.keys().find(|r| !expected.contains(r) && !adder(r)) {
                    return Err(format!("{r} is not a register of {option}"));
                }
                prices.push(p);
            }
            Ok(Grid {
                name: name.clone(),
                option: option.clone(),
                kva,
                prices,
            })
        };
        match check() {
            Ok(g) => out.push(g),
            Err(reason) => bad.push(BadLine {
                line,
                reason: format!("grid {name}: {reason}"),
            }),
        }
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        bad.sort_by_key(|b| b.line);
        Err(bad)
    }
}

/// Reads a taxes CSV (`tax,kind,from,to,value`): the taxes, or every bad line.
pub fn parse_taxes(text: &str) -> Result<Vec<Tax>, Vec<BadLine>> {
    const SHAPE: &str = "tax,kind,from,to,value";
    let mut bad = Vec::new();
    let mut out: Vec<(Tax, (i64, Option<i64>), usize)> = Vec::new();
    for (line, l) in lines(text, SHAPE) {
        if out.len() >= MAX_TAXES {
            bad.push(BadLine {
                line,
                reason: format!("more than {MAX_TAXES} taxes"),
            });
            break;
        }
        let read = || -> Result<(Tax, (i64, Option<i64>)), String> {
            let f = split_fields(&l, 5, SHAPE)?;
            check_grid_name(&f[0])
                .map_err(|_| format!("tax name {:?}: 1 to 64 of a-z, 0-9, _ and -", f[0]))?;
            let kind = TaxKind::parse(&f[1])?;
            let span = validity(&f[2], &f[3])?;
            let value = parse_decimal(&f[4], kind.decimals(), "value")?;
            Ok((
                Tax {
                    name: f[0].clone(),
                    kind,
                    from: f[2].clone(),
                    to: (!f[3].is_empty()).then(|| f[3].clone()),
                    value,
                },
                span,
            ))
        };
        match read() {
            Ok((tax, span)) => {
                let overlap = out.iter().find(|(t, s, _)| {
                    t.name == tax.name
                        && s.1.is_none_or(|e| e > span.0)
                        && span.1.is_none_or(|e| e > s.0)
                });
                match overlap {
                    Some((_, _, first)) => bad.push(BadLine {
                        line,
                        reason: format!("tax {} overlaps its validity on line {first}", tax.name),
                    }),
                    None => out.push((tax, span, line)),
                }
            }
            Err(reason) => bad.push(BadLine { line, reason }),
        }
    }
    if bad.is_empty() {
        Ok(out.into_iter().map(|(t, ..)| t).collect())
    } else {
        Err(bad)
    }
}

/// Grids as CSV, the shape [`parse_grids`] reads.
pub fn grids_csv(grids: &[Grid]) -> String {
    let mut out = String::from("grid,option,kva,from,to,item,eur\n");
    for g in grids {
        for p in &g.prices {
            let head = format!(
                "{},{},{},{},{}",
                g.name,
                g.option,
                g.kva,
                p.from,
                p.to.as_deref().unwrap_or("")
            );
            out.push_str(&format!(
                "{head},subscription,{}\n",
                cost::format_micro(p.subscription, 2)
            ));
            for (r, v) in &p.energy {
                out.push_str(&format!("{head},{r},{}\n", cost::format_micro(*v, 5)));
            }
        }
    }
    out
}

/// Taxes as CSV, the shape [`parse_taxes`] reads.
pub fn taxes_csv(taxes: &[Tax]) -> String {
    let mut out = String::from("tax,kind,from,to,value\n");
    for t in taxes {
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            t.name,
            t.kind.as_str(),
            t.from,
            t.to.as_deref().unwrap_or(""),
            cost::format_micro(t.value, t.kind.decimals())
        ));
    }
    out
}

#[derive(Debug, Default)]
struct State {
    grids: BTreeMap<String, Grid>,
    taxes: Vec<Tax>,
}

impl State {
    fn apply(&mut self, record: PriceRecord) {
        match record {
            PriceRecord::Grids { grids } => {
                for g in grids {
                    self.grids.insert(g.name.clone(), g);
                }
            }
            PriceRecord::Taxes { taxes } => self.taxes = taxes,
        }
    }
}

/// The registry: grids and taxes, durable before visible.
#[derive(Debug)]
pub struct Prices {
    log: parking_lot::Mutex<RecordLog>,
    state: parking_lot::RwLock<State>,
}

impl Prices {
    /// Opens (creating) the registry file in the governance folder `dir`.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Prices, Error> {
        let mut state = State::default();
        let log = RecordLog::open(fs, &dir.join(PRICES_LOG), |r| state.apply(r))?;
        Ok(Prices {
            log: parking_lot::Mutex::new(log),
            state: parking_lot::RwLock::new(state),
        })
    }

    /// Stores `grids`, each replacing the grid of its name.
    pub fn set_grids(&self, grids: Vec<Grid>) -> Result<usize, Error> {
        let log = self.log.lock();
        let known = self.state.read().grids.len();
        let new = grids
            .iter()
            .filter(|g| !self.state.read().grids.contains_key(&g.name))
            .count();
        if known + new > MAX_GRIDS {
            return Err(Error::InvalidArgument(format!("at most {MAX_GRIDS} grids")));
        }
        let n = grids.len();
        // One record per grid keeps each far below the journal's record limit.
        for g in grids {
            let record = PriceRecord::Grids { grids: vec![g] };
            log.append(&record)?;
            self.state.write().apply(record);
        }
        Ok(n)
    }

    /// Replaces the tax table.
    pub fn set_taxes(&self, taxes: Vec<Tax>) -> Result<usize, Error> {
        let log = self.log.lock();
        let n = taxes.len();
        let record = PriceRecord::Taxes { taxes };
        log.append(&record)?;
        self.state.write().apply(record);
        Ok(n)
    }

    /// Every grid, by name.
    pub fn grids(&self) -> Vec<Grid> {
        self.state.read().grids.values().cloned().collect()
    }

    pub fn grid(&self, name: &str) -> Option<Grid> {
        self.state.read().grids.get(name).cloned()
    }

    pub fn taxes(&self) -> Vec<Tax> {
        self.state.read().taxes.clone()
    }
}

/// Each meter's saving of the second offer over the first (cost under `offers[0]` minus cost
/// under `offers[1]`, cents) over Paris days `[first_day, end_day)` priced per month; how
/// many meters were skipped (no energy in some month, or a day or register without a price);
/// and how many meters each offer priced from summaries and from the curve. See
/// [`fleet_totals_by`].
pub fn fleet_savings(
    src: &dyn crate::source::SeriesSource,
    offers: &[(Grid, TariffPlan, DayColours)],
    taxes: &[Tax],
    first_day: i64,
    end_day: i64,
) -> Result<FleetSavings, crate::query::QueryError> {
    let (totals, paths) = fleet_totals_by(src, offers, taxes, first_day, end_day, FleetPath::Any)?;
    let each: Vec<Option<i64>> = totals
        .iter()
        .map(|t| match t.as_deref() {
            Some([a, b]) => Some(a - b),
            _ => None,
        })
        .collect();
    let skipped = each.iter().filter(|s| s.is_none()).count();
    Ok(FleetSavings {
        savings: each.into_iter().flatten().collect(),
        skipped,
        paths,
    })
}

/// What [`fleet_savings`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetSavings {
    /// Cents, one per meter priced whole under both offers, in meter order.
    pub savings: Vec<i64>,
    pub skipped: usize,
    /// Per offer, the meters priced from summaries and from the curve.
    pub paths: Vec<OfferPaths>,
}

/// Every meter of the store (consumption curve, daily energy or an index register), sorted.
pub fn fleet_meters(src: &dyn crate::source::SeriesSource) -> Vec<String> {
    let mut meters: Vec<String> = src.meters(Channel::CONSUMPTION);
    meters.extend(src.meters(Channel::DAILY_ENERGY));
    for (channel, _) in src.registers() {
        meters.extend(src.meters(channel));
    }
    meters.sort_unstable();
    meters.dedup();
    meters
}

/// Per meter of [`fleet_meters`], its total cost (cents) over Paris days `[first_day,
/// end_day)` priced per month under each of `offers`, or `None` when some month under some
/// offer is not complete (no energy, or a day or register without a price). See
/// [`fleet_totals_by`] (any path).
pub fn fleet_totals(
    src: &dyn crate::source::SeriesSource,
    offers: &[(Grid, TariffPlan, DayColours)],
    taxes: &[Tax],
    first_day: i64,
    end_day: i64,
) -> Result<Vec<Option<Vec<i64>>>, crate::query::QueryError> {
    Ok(fleet_totals_by(src, offers, taxes, first_day, end_day, FleetPath::Any)?.0)
}

/// Per meter of [`fleet_meters`], its total under each offer ([`fleet_totals`]).
pub type FleetTotals = Vec<Option<Vec<i64>>>;

/// Which way a fleet comparison may price a meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FleetPath {
    /// From the clock-band summaries where the offer and the meter's data allow, else the curve.
    Any,
    /// Always from the curve (the reference the summaries must equal).
    Curve,
}

/// How many meters each offer priced from summaries and from the curve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OfferPaths {
    pub summaries: usize,
    pub curve: usize,
}

/// [`fleet_totals`] with the path each offer took, per offer. Each meter costs what
/// [`cost::meter_cost_with`] gives it, to the cent: the offers are prepared once
/// ([`cost::FleetOffer`]), one meter per task on rayon's pool. A regulated offer whose
/// registers change only at the clock-band edges prices a meter from its per-day clock-band
/// summaries ([`crate::engine::bands`]) when the store gives them for every day of the range,
/// every day tiled; every other offer and meter reads the curve, once for all the offers that
/// need it.
pub fn fleet_totals_by(
    src: &dyn crate::source::SeriesSource,
    offers: &[(Grid, TariffPlan, DayColours)],
    taxes: &[Tax],
    first_day: i64,
    end_day: i64,
    path: FleetPath,
) -> Result<(FleetTotals, Vec<OfferPaths>), crate::query::QueryError> {
    use rayon::prelude::*;
    let prepared = offers
        .iter()
        .map(|(grid, plan, colours)| {
            cost::FleetOffer::new(
                src,
                grid,
                taxes,
                plan,
                colours,
                first_day,
                end_day,
                Some(crate::query::Period::Month),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let by_bands = path == FleetPath::Any && prepared.iter().any(|o| o.priced_by_bands());
    if by_bands {
        src.prepare_day_bands(first_day, end_day)?;
    }
    let meters = fleet_meters(src);
    type Each = (Option<Vec<i64>>, Vec<bool>);
    let each: Vec<Each> = meters
        .par_iter()
        .map_init(
            || {
                (
                    storage_format::block::DecodedBlock::default(),
                    vec![None; prepared.len()],
                    cost::FleetCurve::default(),
                )
            },
            |(scratch, registers, curve), meter| -> Result<Each, crate::query::QueryError> {
                let days = match by_bands {
                    true => match src.day_bands(meter, first_day, end_day)? {
                        Some(days) => {
                            cost::FleetOffer::check_bands(&prepared, src, meter, days, scratch)?
                        }
                        None => None,
                    },
                    false => None,
                };
                let from_bands: Vec<bool> = prepared
                    .iter()
                    .map(|o| days.is_some() && o.priced_by_bands())
                    .collect();
                let regulated_curve = prepared
                    .iter()
                    .zip(&from_bands)
                    .any(|(o, &b)| !o.is_dynamic() && !b);
                cost::FleetOffer::read_for(&prepared, src, meter, scratch, regulated_curve, curve)?;
                let mut totals = Vec::with_capacity(prepared.len());
                for ((offer, registers), &b) in
                    prepared.iter().zip(registers.iter_mut()).zip(&from_bands)
                {
                    let periods = match (b, days.as_ref()) {
                        (true, Some(days)) => offer
                            .cost_from_bands(src, meter, days, scratch)?
                            .ok_or_else(|| {
                                crate::query::QueryError::InvalidArgument(
                                    "clock-band summaries do not cover the range".into(),
                                )
                            })?,
                        _ => offer.cost(src, meter, curve, registers, scratch)?,
                    };
                    let complete = periods.iter().all(|p| {
                        p.cost.unpriced_days == 0
                            && p.cost.registers.iter().all(|r| r.priced)
                            && !p.sources.contains(&crate::query::EnergySource::None)
                    });
                    if !complete {
                        return Ok((None, from_bands));
                    }
                    totals.push(periods.iter().map(|p| p.cost.total_cents).sum::<i64>());
                }
                Ok((Some(totals), from_bands))
            },
        )
        .collect::<Result<_, _>>()?;
    let mut paths = vec![OfferPaths::default(); prepared.len()];
    let totals = each
        .into_iter()
        .map(|(t, from_bands)| {
            for (p, b) in paths.iter_mut().zip(from_bands) {
                match b {
                    true => p.summaries += 1,
                    false => p.curve += 1,
                }
            }
            t
        })
        .collect();
    Ok((totals, paths))
}

fn prices(from: &str, to: Option<&str>, sub: &str, energy: &[(&str, &str)]) -> GridPrices {
    GridPrices {
        from: from.into(),
        to: to.map(Into::into),
        energy: energy
            .iter()
            .map(|(r, p)| (r.to_string(), parse_decimal(p, 5, "demo").unwrap_or(0)))
            .collect(),
        subscription: parse_decimal(sub, 2, "demo").unwrap_or(0),
    }
}

/// **Illustrative** 2024-2025 French regulated blue tariffs at 6 kVA, excluding taxes: BASE,
/// HPHC (off-peak 22:00-06:00) and TEMPO, each with the February 2024 grids (applied from 2024-01-01 here) and the 2025-02-01 ones. The
/// energy prices are the published all-taxes prices less VAT (20 %) and the accise of the time,
/// rounded to 5 decimals; the subscriptions are round illustrative figures. Not a tariff
/// reference: load the published grids for real bills.
pub fn demo_grids() -> Vec<Grid> {
    // The February 2024 grids are applied from 1 January 2024, so that a demo year (2024) is
    // priced whole: illustrative, like every value here.
    let (a, b) = (DEMO_FIRST_DAY, "2025-02-01");
    let grid = |name: &str, option: &str, periods: Vec<GridPrices>| Grid {
        name: name.into(),
        option: option.into(),
        kva: 6,
        prices: periods,
    };
    vec![
        grid(
            "bleu-base-6",
            "BASE",
            vec![
                prices(a, Some(b), "10.90", &[("BASE", "0.18867")]),
                prices(b, None, "12.04", &[("BASE", "0.13430")]),
            ],
        ),
        grid(
            "bleu-hphc-6",
            "HPHC:22:00-06:00",
            vec![
                prices(a, Some(b), "11.30", &[("HP", "0.20400"), ("HC", "0.15133")]),
                prices(b, None, "12.42", &[("HP", "0.14513"), ("HC", "0.10763")]),
            ],
        ),
        grid(
            "bleu-tempo-6",
            "TEMPO",
            vec![
                prices(
                    a,
                    Some(b),
                    "11.10",
                    &[
                        ("HCJB", "0.08700"),
                        ("HPJB", "0.11308"),
                        ("HCJW", "0.10283"),
                        ("HPJW", "0.13683"),
                        ("HCJR", "0.10967"),
                        ("HPJR", "0.60917"),
                    ],
                ),
                prices(
                    b,
                    None,
                    "12.30",
                    &[
                        ("HCJB", "0.07363"),
                        ("HPJB", "0.09563"),
                        ("HCJW", "0.08688"),
                        ("HPJW", "0.11563"),
                        ("HCJR", "0.09280"),
                        ("HPJR", "0.51513"),
                    ],
                ),
            ],
        ),
        // A dynamic offer: each interval at the spot price of the `spot-FR` series (the demo
        // loads a synthetic one) plus a price per kWh standing for the network's share and the
        // supplier's margin (illustrative), the same subscription as BASE.
        grid(
            "spot-dynamic-6",
            "DYNAMIC:FR",
            vec![
                prices(a, Some(b), "10.90", &[("SPOT", "0.08500")]),
                prices(b, None, "12.04", &[("SPOT", "0.08500")]),
            ],
        ),
    ]
}

/// **Illustrative** 2024-2025 taxes for the demo grids: the accise (21.00, 33.70 then 29.98
/// EUR/MWh), a CTA as a round share of the subscription, VAT 5.5 % on the subscription until
/// 2025-08-01 and 20 % after, VAT 20 % on energy and accise.
pub fn demo_taxes() -> Vec<Tax> {
    let tax = |name: &str, kind, from: &str, to: Option<&str>, value: Micro| Tax {
        name: name.into(),
        kind,
        from: from.into(),
        to: to.map(Into::into),
        value,
    };
    use cost::Micro;
    use TaxKind::*;
    vec![
        tax("accise", PerKwh, DEMO_FIRST_DAY, Some("2025-02-01"), 21_000),
        tax("accise", PerKwh, "2025-02-01", Some("2025-08-01"), 33_700),
        tax("accise", PerKwh, "2025-08-01", None, 29_980),
        tax(
            "cta",
            OnSubscription,
            DEMO_FIRST_DAY,
            Some("2025-02-01"),
            2_500_000,
        ),
        tax("cta", OnSubscription, "2025-02-01", None, 2_030_000),
        tax(
            "vat_subscription",
            VatSubscription,
            DEMO_FIRST_DAY,
            Some("2025-08-01"),
            5_500_000,
        ),
        tax(
            "vat_subscription",
            VatSubscription,
            "2025-08-01",
            None,
            20_000_000,
        ),
        tax("vat_energy", VatEnergy, DEMO_FIRST_DAY, None, 20_000_000),
    ]
}

/// The first day the demo grids and taxes price (the demo fleet starts on it).
pub const DEMO_FIRST_DAY: &str = "2024-01-01";

/// Loads [`demo_grids`] and [`demo_taxes`] into `prices` (what `courbe demo` calls).
pub fn load_demo(prices: &Prices) -> Result<(), Error> {
    prices.set_grids(demo_grids())?;
    prices.set_taxes(demo_taxes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_grid_takes_a_spot_adder_and_no_other_register() {
        let head = "grid,option,kva,from,to,item,eur\n";
        let ok = format!(
            "{head}d,DYNAMIC:FR,6,2024-01-01,,subscription,12\nd,DYNAMIC:FR,6,2024-01-01,,SPOT,0.085\n"
        );
        let grids = parse_grids(&ok).unwrap();
        assert_eq!(grids[0].prices[0].energy["SPOT"], 85_000);
        let plain = format!("{head}d,DYNAMIC:FR,6,2024-01-01,,subscription,12\n");
        assert!(parse_grids(&plain).is_ok());
        let bad = format!(
            "{head}d,DYNAMIC:FR,6,2024-01-01,,subscription,12\nd,DYNAMIC:FR,6,2024-01-01,,HP,0.1\n"
        );
        let lines = parse_grids(&bad).unwrap_err();
        assert!(
            lines[0].reason.contains("HP is not a register"),
            "{lines:?}"
        );
        // A regulated option takes no SPOT line.
        let base = format!(
            "{head}b,BASE,6,2024-01-01,,subscription,12\nb,BASE,6,2024-01-01,,BASE,0.2\nb,BASE,6,2024-01-01,,SPOT,0.1\n"
        );
        assert!(parse_grids(&base).is_err());
    }

    #[test]
    fn the_demo_grids_and_taxes_read_back_through_their_csv() {
        let grids = demo_grids();
        assert_eq!(parse_grids(&grids_csv(&grids)), Ok(grids));
        let taxes = demo_taxes();
        assert_eq!(parse_taxes(&taxes_csv(&taxes)), Ok(taxes));
    }

    #[test]
    fn a_grid_missing_a_register_or_overlapping_itself_is_refused_whole() {
        let csv = "grid,option,kva,from,to,item,eur\n\
                   g,HPHC:22:00-06:00,6,2024-01-01,,subscription,10\n\
                   g,HPHC:22:00-06:00,6,2024-01-01,,HP,0.2\n";
        let bad = parse_grids(csv).unwrap_err();
        assert!(bad[0].reason.contains("no price for HC"), "{bad:?}");
        let csv = "g,BASE,6,2024-01-01,,subscription,10\ng,BASE,6,2024-01-01,,BASE,0.2\n\
                   g,BASE,6,2024-06-01,,subscription,10\ng,BASE,6,2024-06-01,,BASE,0.2\n";
        assert!(parse_grids(csv).unwrap_err()[0].reason.contains("overlap"));
        for line in [
            "g,BASE,6,2024-01-01,,BASE,0.123456",
            "g,BASE,6,2024-01-01,,subscription,10.001",
            "g,NOPE,6,2024-01-01,,BASE,0.1",
            "g,BASE,0,2024-01-01,,BASE,0.1",
            "g,BASE,6,2024-01-01,2023-01-01,BASE,0.1",
            "G,BASE,6,2024-01-01,,BASE,0.1",
            "contract,BASE,6,2024-01-01,,BASE,0.1",
            "g,BASE,6,2024-01-01,,BASE",
        ] {
            assert!(parse_grids(line).is_err(), "{line}");
        }
    }
}

//! Tariff calendars: named options whose registers are decided by rules, day-colour series, and
//! per-meter contracts as a plan of options over time.
//!
//! # The rules
//!
//! Every instant belongs to exactly one register. It is read on the **Europe/Paris wall clock**
//! whatever the query's zone (French tariff options are defined on it; a caller cannot move the
//! windows by choosing a zone), with the offset in force at that instant, as `HC:` specs are (see
//! the `tariff` module): on a spring-forward day a window inside the skipped hour holds no
//! second, on a fall-back day the repeated hour counts twice with the register its clock reads.
//!
//! An option is an ordered list of [`Rule`]s; the first rule whose conditions all hold gives the
//! register. Conditions: clock windows (seconds after local midnight), weekdays and months of the
//! local date, and the colour of the **colour day** holding the instant in the option's colour
//! series. A colour day of date `D` runs from `colour_day_start` on `D` to the same clock on `D+1`.
//!
//! The built-in options (French rules as EDF and Enedis publish them):
//!
//! - `BASE`: one register `BASE`.
//! - `HPHC` with off-peak windows (`option:HPHC:22:00-06:00`): `HC` inside a window, `HP` outside.
//!   Enedis sets each meter's 8 off-peak hours, so the windows are a parameter, required.
//! - `TEMPO`, colour series `tempo`: the Tempo day runs 06:00 to 06:00 the next day and takes its
//!   colour (`BLUE`, `WHITE`, `RED`) from the day it starts on; off-peak is 22:00-06:00 every day;
//!   registers `HPJB, HCJB, HPJW, HCJW, HPJR, HCJR`.
//! - `EJP`, colour series `ejp`: a peak day (`PM`, "pointe mobile") is peak from 07:00 to 01:00 the
//!   next day (18 hours); every other instant of a day coloured `HN` (normal) is `HN`. The colour
//!   day starts at 01:00, so the 18 hours are `PM` when the clock reads 07:00-01:00 on a `PM` day.
//! - `SEASONAL` with off-peak windows: the distributor's four registers `HPH, HCH, HPB, HCB`, high
//!   season (`H`) November to March and low season (`B`) April to October by the local date of the
//!   instant, off-peak (`HC`) inside a window.
//!
//! Sources checked: a Tempo red day is priced at peak from 6:00 to 22:00, the Tempo day runs
//! 6:00 to 6:00 and red days are drawn between November 1st and March 31st (RTE, "Méthode de
//! choix des jours Tempo"); an EJP day lasts from 7:00 to 1:00 the next morning (kelwatt.fr
//! guide EJP, RTL 2022). The high season November-March of the four-register grid is issue 12's
//! statement, not checked against the TURPE decision text.
//!
//! **A missing colour** never guesses: every instant of a colour day whose colour the series does
//! not hold (or holds with a colour the option has no rule for) goes to the register
//! [`UNKNOWN`], so the registers still add up to the total and the gap is visible.
//! In a contract plan, instants no contract covers go to [`NO_CONTRACT`].

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::calendar::offset_spans;
use super::{QueryError, Tariff};
use crate::civil::{civil_from_days, days_from_civil};

const DAY_S: i64 = 86_400;

/// The register of instants whose colour day has no usable colour.
pub const UNKNOWN: &str = "UNKNOWN";
/// The register of instants no contract covers.
pub const NO_CONTRACT: &str = "NO_CONTRACT";

/// The zone every option's clock is read in.
pub const TARIFF_ZONE: &str = "Europe/Paris";

fn bad(why: impl Into<String>) -> QueryError {
    QueryError::BadTariff(why.into())
}

/// The colour of a day in a day-colour series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Colour {
    /// Tempo blue day.
    Blue,
    /// Tempo white day.
    White,
    /// Tempo red day.
    Red,
    /// EJP peak day ("pointe mobile").
    Pm,
    /// EJP normal day.
    Hn,
}

impl Colour {
    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Blue => "BLUE",
            Colour::White => "WHITE",
            Colour::Red => "RED",
            Colour::Pm => "PM",
            Colour::Hn => "HN",
        }
    }

    pub const ALL: [Colour; 5] = [
        Colour::Blue,
        Colour::White,
        Colour::Red,
        Colour::Pm,
        Colour::Hn,
    ];
}

impl std::fmt::Display for Colour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Colour {
    type Err = String;
    /// `BLUE`, `WHITE`, `RED`, `PM` or `HN`, exactly.
    fn from_str(s: &str) -> Result<Colour, String> {
        Colour::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown colour {s:?} (BLUE, WHITE, RED, PM or HN)"))
    }
}

/// Day numbers (days since 1970-01-01) of a civil date.
pub fn day_number(date: Date) -> i64 {
    days_from_civil(
        i64::from(date.year()),
        i64::from(date.month()),
        i64::from(date.day()),
    )
}

/// Day-colour series by name (`tempo`, `ejp`), each a map from local date to colour.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DayColours {
    series: BTreeMap<String, BTreeMap<i64, Colour>>,
}

impl DayColours {
    /// Sets (or replaces) the colour of `date` in series `name`.
    pub fn insert(&mut self, name: &str, date: Date, colour: Colour) {
        self.series
            .entry(name.to_string())
            .or_default()
            .insert(day_number(date), colour);
    }

    /// The colour of day number `day` in series `name`.
    pub fn get(&self, name: &str, day: i64) -> Option<Colour> {
        self.series.get(name)?.get(&day).copied()
    }
}

/// One rule of an option: a register and the conditions under which an instant belongs to it.
/// An empty condition always holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub register: String,
    /// Clock windows `[start, end)`, seconds after local midnight, sorted and disjoint.
    pub clock_s: Vec<(i64, i64)>,
    /// Bit `m` set for month `m` (1..=12) of the local date; 0: every month.
    pub months: u16,
    /// Bit `d` set for weekday `d` (0 = Monday) of the local date; 0: every day.
    pub weekdays: u8,
    /// Colours of the colour day; empty: any (and no colour needed).
    pub colours: Vec<Colour>,
}

impl Rule {
    fn new(register: &str) -> Rule {
        Rule {
            register: register.to_string(),
            clock_s: Vec::new(),
            months: 0,
            weekdays: 0,
            colours: Vec::new(),
        }
    }
}

/// A tariff option: its registers and the rules deciding between them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TariffOption {
    /// `BASE`, `HPHC:22:00-06:00`...: the spec after `option:`.
    pub name: String,
    /// Every register the option may answer, in display order.
    pub registers: Vec<String>,
    /// The day-colour series the rules read, if any.
    pub colour_series: Option<String>,
    /// Clock (seconds after local midnight) at which a colour day starts.
    pub colour_day_start_s: i64,
    pub rules: Vec<Rule>,
}

const HIGH_SEASON: u16 = (1 << 11) | (1 << 12) | (1 << 1) | (1 << 2) | (1 << 3);
const LOW_SEASON: u16 = (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10);

impl TariffOption {
    /// A built-in option by name (`BASE`, `HPHC`, `TEMPO`, `EJP`, `SEASONAL`); `hc` are the
    /// off-peak windows `HPHC` and `SEASONAL` need and the others refuse.
    pub fn builtin(name: &str, hc: Option<&Tariff>) -> Result<TariffOption, QueryError> {
        let needs_hc = matches!(name, "HPHC" | "SEASONAL");
        let windows = match (needs_hc, hc) {
            (true, Some(t)) => t.day_windows_s(),
            (true, None) => {
                return Err(bad(format!(
                    "option {name} needs its off-peak windows (option:{name}:22:00-06:00)"
                )))
            }
            (false, Some(_)) => {
                return Err(bad(format!("option {name} takes no off-peak windows")))
            }
            (false, None) => Vec::new(),
        };
        let spec = match hc {
            Some(t) => format!("{name}:{}", t.to_string().trim_start_matches("HC:")),
            None => name.to_string(),
        };
        let clocked = |register: &str, clock_s: &[(i64, i64)]| Rule {
            clock_s: clock_s.to_vec(),
            ..Rule::new(register)
        };
        let (registers, colour_series, start, rules): (&[&str], _, _, _) = match name {
            "BASE" => (&["BASE"], None, 0, vec![Rule::new("BASE")]),
            "HPHC" => (
                &["HP", "HC"],
                None,
                0,
                vec![clocked("HC", &windows), Rule::new("HP")],
            ),
            "SEASONAL" => {
                let season = |register: &str, months: u16, off_peak: bool| Rule {
                    clock_s: if off_peak {
                        windows.clone()
                    } else {
                        Vec::new()
                    },
                    months,
                    ..Rule::new(register)
                };
                (
                    &["HPH", "HCH", "HPB", "HCB"],
                    None,
                    0,
                    vec![
                        season("HCH", HIGH_SEASON, true),
                        season("HPH", HIGH_SEASON, false),
                        season("HCB", LOW_SEASON, true),
                        season("HPB", LOW_SEASON, false),
                    ],
                )
            }
            "TEMPO" => {
                let hc = [(0, 6 * 3600), (22 * 3600, DAY_S)];
                let mut rules = Vec::new();
                for (colour, suffix) in [
                    (Colour::Blue, "JB"),
                    (Colour::White, "JW"),
                    (Colour::Red, "JR"),
                ] {
                    rules.push(Rule {
                        colours: vec![colour],
                        ..clocked(&format!("HC{suffix}"), &hc)
                    });
                    rules.push(Rule {
                        colours: vec![colour],
                        ..Rule::new(&format!("HP{suffix}"))
                    });
                }
                (
                    &["HPJB", "HCJB", "HPJW", "HCJW", "HPJR", "HCJR"],
                    Some("tempo"),
                    6 * 3600,
                    rules,
                )
            }
            "EJP" => (
                &["HN", "PM"],
                Some("ejp"),
                3600,
                vec![
                    Rule {
                        colours: vec![Colour::Pm],
                        ..clocked("PM", &[(0, 3600), (7 * 3600, DAY_S)])
                    },
                    Rule {
                        colours: vec![Colour::Pm, Colour::Hn],
                        ..Rule::new("HN")
                    },
                ],
            ),
            other => {
                return Err(bad(format!(
                    "unknown option {other:?} (BASE, HPHC, TEMPO, EJP or SEASONAL)"
                )))
            }
        };
        Ok(TariffOption {
            name: spec,
            registers: registers.iter().map(|r| r.to_string()).collect(),
            colour_series: colour_series.map(str::to_string),
            colour_day_start_s: start,
            rules,
        })
    }

    /// Reads `NAME` or `NAME:HH:MM-HH:MM[,...]` (the off-peak windows, as in an `HC:` spec).
    pub fn parse(spec: &str) -> Result<TariffOption, QueryError> {
        match spec.split_once(':') {
            Some((name, windows)) => {
                let hc = super::tariff::parse(&format!("HC:{windows}"))?;
                TariffOption::builtin(name, Some(&hc))
            }
            None => TariffOption::builtin(spec, None),
        }
    }

    /// The register of second `sec` of local day number `day`.
    fn register_at(&self, colours: &DayColours, day: i64, sec: i64) -> &str {
        let colour = match &self.colour_series {
            Some(series) => {
                let colour_day = if sec >= self.colour_day_start_s {
                    day
                } else {
                    day - 1
                };
                match colours.get(series, colour_day) {
                    Some(c) => Some(c),
                    None => return UNKNOWN,
                }
            }
            None => None,
        };
        let (_, month, _) = civil_from_days(day);
        let weekday = (day + 3).rem_euclid(7);
        for rule in &self.rules {
            if rule.months != 0 && rule.months & (1 << month) == 0 {
                continue;
            }
            if rule.weekdays != 0 && rule.weekdays & (1 << weekday) == 0 {
                continue;
            }
            if !rule.colours.is_empty() && !colour.is_some_and(|c| rule.colours.contains(&c)) {
                continue;
            }
            if !rule.clock_s.is_empty() && !rule.clock_s.iter().any(|&(s, e)| s <= sec && sec < e) {
                continue;
            }
            return &rule.register;
        }
        UNKNOWN
    }

    /// Where in a local day the register may change.
    fn day_boundaries(&self) -> Vec<i64> {
        let mut b = vec![0, DAY_S, self.colour_day_start_s];
        for rule in &self.rules {
            for &(s, e) in &rule.clock_s {
                b.push(s);
                b.push(e);
            }
        }
        b.retain(|&x| (0..=DAY_S).contains(&x));
        b.sort_unstable();
        b.dedup();
        b
    }
}

/// What decides the register of each instant: one option over all time, or contracts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TariffPlan {
    Option(TariffOption),
    /// Sorted, disjoint `[from, to)` UTC validity periods with their option.
    Contracts(Vec<(i64, i64, TariffOption)>),
}

/// What an energy question's `tariff` parameter asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TariffSpec {
    /// `HC:22:00-06:00`: the HP/HC split of a window list (`by_tariff`).
    Hc(Tariff),
    /// `option:TEMPO`, `option:HPHC:22:00-06:00`: one option over the whole range.
    Option(TariffOption),
    /// `contract`: the meter's own contracts, read from the registry.
    Contract,
    /// An option or the contracts with the day colours they read, ready to answer.
    Resolved {
        plan: TariffPlan,
        colours: DayColours,
    },
}

impl TariffSpec {
    /// Whether the caller chose the windows (an `HC:` list or an option) rather than the
    /// meter's own contracts.
    pub fn chosen(&self) -> bool {
        matches!(self, TariffSpec::Hc(_) | TariffSpec::Option(_))
    }
}

impl std::str::FromStr for TariffSpec {
    type Err = QueryError;
    /// `contract`, `option:NAME[:WINDOWS]` or an `HC:` spec.
    fn from_str(s: &str) -> Result<TariffSpec, QueryError> {
        if s == "contract" {
            Ok(TariffSpec::Contract)
        } else if let Some(option) = s.strip_prefix("option:") {
            Ok(TariffSpec::Option(TariffOption::parse(option)?))
        } else {
            Ok(TariffSpec::Hc(super::tariff::parse(s)?))
        }
    }
}

impl DayColours {
    /// The colours of days `first..last` (day numbers, `last` excluded) of every series.
    pub fn between(&self, first: i64, last: i64) -> DayColours {
        DayColours {
            series: self
                .series
                .iter()
                .map(|(name, days)| {
                    let days = days
                        .range(first..last.max(first))
                        .map(|(&d, &c)| (d, c))
                        .collect();
                    (name.clone(), days)
                })
                .collect(),
        }
    }

    /// Every `(day number, colour)` of series `name` in `first..last`.
    pub fn days(&self, name: &str, first: i64, last: i64) -> Vec<(i64, Colour)> {
        self.series.get(name).map_or_else(Vec::new, |days| {
            days.range(first..last.max(first))
                .map(|(&d, &c)| (d, c))
                .collect()
        })
    }

    /// Sets the colour of day number `day` in series `name`.
    pub fn insert_day(&mut self, name: &str, day: i64, colour: Colour) {
        self.series
            .entry(name.to_string())
            .or_default()
            .insert(day, colour);
    }
}

/// The civil date of a day number.
pub fn date_of_day(day: i64) -> Result<Date, QueryError> {
    let (y, m, d) = civil_from_days(day);
    let (Ok(y), Ok(m), Ok(d)) = (i16::try_from(y), i8::try_from(m), i8::try_from(d)) else {
        return Err(QueryError::InvalidArgument(format!(
            "day {day} out of range"
        )));
    };
    Date::new(y, m, d).map_err(|e| QueryError::InvalidArgument(e.to_string()))
}

/// The register of every instant of a range as sorted, contiguous UTC intervals, with a cursor
/// for splitting time-ordered intervals among them.
#[derive(Clone, Debug)]
pub struct Registers {
    pub names: Vec<String>,
    intervals: Vec<(i64, i64, usize)>,
    cursor: usize,
}

impl Registers {
    /// The registers of `[from, to)` under `plan`.
    pub fn new(
        plan: &TariffPlan,
        colours: &DayColours,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Registers, QueryError> {
        let tz = TimeZone::get(TARIFF_ZONE)
            .map_err(|_| QueryError::UnknownZone(TARIFF_ZONE.to_string()))?;
        let mut out = Registers {
            names: Vec::new(),
            intervals: Vec::new(),
            cursor: 0,
        };
        match plan {
            TariffPlan::Option(option) => {
                out.declare(option);
                out.fill(option, colours, &tz, from_utc, to_utc);
            }
            TariffPlan::Contracts(contracts) => {
                let mut at = from_utc;
                for (start, end, option) in contracts {
                    let (s, e) = ((*start).max(from_utc), (*end).min(to_utc));
                    if s >= e {
                        continue;
                    }
                    out.declare(option);
                    if at < s {
                        out.push(at, s, NO_CONTRACT);
                    }
                    out.fill(option, colours, &tz, s, e);
                    at = at.max(e);
                }
                if at < to_utc {
                    out.push(at, to_utc, NO_CONTRACT);
                }
            }
        }
        Ok(out)
    }

    fn declare(&mut self, option: &TariffOption) {
        for r in &option.registers {
            self.index(r);
        }
    }

    fn index(&mut self, name: &str) -> usize {
        match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_string());
                self.names.len() - 1
            }
        }
    }

    fn push(&mut self, start: i64, end: i64, register: &str) {
        let r = self.index(register);
        match self.intervals.last_mut() {
            Some(last) if last.1 == start && last.2 == r => last.1 = end,
            _ => self.intervals.push((start, end, r)),
        }
    }

    fn fill(
        &mut self,
        option: &TariffOption,
        colours: &DayColours,
        tz: &TimeZone,
        from_utc: i64,
        to_utc: i64,
    ) {
        let bounds = option.day_boundaries();
        for (span_start, span_end, offset) in offset_spans(tz, from_utc, to_utc) {
            // Local time is `t + offset` throughout the span.
            let first_day = (span_start + offset).div_euclid(DAY_S);
            let last_day = (span_end - 1 + offset).div_euclid(DAY_S);
            for day in first_day..=last_day {
                let midnight_utc = day * DAY_S - offset;
                for w in bounds.windows(2) {
                    let &[x, y] = w else { continue };
                    let s = (midnight_utc + x).max(span_start);
                    let e = (midnight_utc + y).min(span_end);
                    if s < e {
                        let register = option.register_at(colours, day, x).to_string();
                        self.push(s, e, &register);
                    }
                }
            }
        }
    }

    /// Moves the cursor back to the start, for splitting another time-ordered walk.
    pub(crate) fn rewind(&mut self) {
        self.cursor = 0;
    }

    /// Adds `value * seconds` of `[start, end)` to each register's accumulator. Successive
    /// calls must not go back in time (`start` non-decreasing); seconds outside the range
    /// built are not counted.
    pub fn split(&mut self, start: i64, end: i64, value: i32, acc: &mut [i128]) {
        while let Some(&(_, e, _)) = self.intervals.get(self.cursor) {
            if e > start {
                break;
            }
            self.cursor += 1;
        }
        for &(s, e, r) in self.intervals.get(self.cursor..).unwrap_or(&[]) {
            if s >= end {
                break;
            }
            if let Some(a) = acc.get_mut(r) {
                *a += i128::from(value) * i128::from(e.min(end) - s.max(start));
            }
        }
    }

    /// [`Registers::split`] of each point of time-ordered, non-overlapping columns, the points
    /// wholly inside one interval summed together.
    pub(crate) fn split_columns(
        &mut self,
        ts: &[i64],
        value: &[i32],
        step_min: &[u16],
        acc: &mut [i128],
    ) {
        let n = ts.len().min(value.len()).min(step_min.len());
        let mut i = 0;
        while i < n {
            let (t, end) = (ts[i], ts[i] + 60 * i64::from(step_min[i]));
            while let Some(&(_, e, _)) = self.intervals.get(self.cursor) {
                if e > t {
                    break;
                }
                self.cursor += 1;
            }
            match self.intervals.get(self.cursor) {
                Some(&(s, e, r)) if s <= t && end <= e && r < acc.len() => {
                    // At most 1024 points of |value| ≤ 2³¹ over at most 65,535 minutes each:
                    // inside an i64.
                    let (mut sum, stop) = (0i64, n.min(i + 1024));
                    while i < stop {
                        let len = 60 * i64::from(step_min[i]);
                        if ts[i] + len > e {
                            break;
                        }
                        sum += i64::from(value[i]) * len;
                        i += 1;
                    }
                    acc[r] += i128::from(sum);
                }
                _ => {
                    self.split(t, end, value[i], acc);
                    i += 1;
                }
            }
        }
    }

    /// The register (index into `names`) of every instant of `[start, end)`, when it is one.
    pub(crate) fn single_over(&self, start: i64, end: i64) -> Option<usize> {
        let i = self.intervals.partition_point(|&(_, e, _)| e <= start);
        let &(s, e, r) = self.intervals.get(i)?;
        (s <= start && end <= e).then_some(r)
    }

    #[cfg(test)]
    fn at(&self, t: i64) -> Option<&str> {
        self.intervals
            .iter()
            .find(|&&(s, e, _)| s <= t && t < e)
            .and_then(|&(_, _, r)| self.names.get(r))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn ts(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second()
    }

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn regs(option: &str, colours: &DayColours, from: &str, to: &str) -> Registers {
        let plan = TariffPlan::Option(TariffOption::parse(option).unwrap());
        Registers::new(&plan, colours, ts(from), ts(to)).unwrap()
    }

    #[test]
    fn a_tempo_day_runs_from_six_to_six_and_its_night_is_off_peak() {
        let mut c = DayColours::default();
        c.insert("tempo", date("2024-01-08"), Colour::Red);
        c.insert("tempo", date("2024-01-09"), Colour::Blue);
        let r = regs("TEMPO", &c, "2024-01-08T00:00:00Z", "2024-01-10T00:00:00Z");
        // Paris is UTC+1 in January.
        assert_eq!(r.at(ts("2024-01-08T04:00:00Z")), Some(UNKNOWN)); // 05:00, colour of the 7th
        assert_eq!(r.at(ts("2024-01-08T05:00:00Z")), Some("HPJR")); // 06:00
        assert_eq!(r.at(ts("2024-01-08T20:59:59Z")), Some("HPJR"));
        assert_eq!(r.at(ts("2024-01-08T21:00:00Z")), Some("HCJR")); // 22:00
        assert_eq!(r.at(ts("2024-01-09T04:59:59Z")), Some("HCJR")); // 05:59 on the 9th
        assert_eq!(r.at(ts("2024-01-09T05:00:00Z")), Some("HPJB"));
    }

    #[test]
    fn an_ejp_peak_day_is_peak_from_seven_to_one_the_next_day() {
        let mut c = DayColours::default();
        c.insert("ejp", date("2024-01-07"), Colour::Hn);
        c.insert("ejp", date("2024-01-08"), Colour::Pm);
        c.insert("ejp", date("2024-01-09"), Colour::Hn);
        let r = regs("EJP", &c, "2024-01-08T00:00:00Z", "2024-01-10T00:00:00Z");
        assert_eq!(r.at(ts("2024-01-08T05:59:59Z")), Some("HN")); // 06:59
        assert_eq!(r.at(ts("2024-01-08T06:00:00Z")), Some("PM")); // 07:00
        assert_eq!(r.at(ts("2024-01-08T23:59:59Z")), Some("PM")); // 00:59 on the 9th
        assert_eq!(r.at(ts("2024-01-09T00:00:00Z")), Some("HN")); // 01:00
    }

    #[test]
    fn the_distributor_seasons_change_with_the_local_month() {
        let r = regs(
            "SEASONAL:22:00-06:00",
            &DayColours::default(),
            "2024-03-31T12:00:00Z",
            "2024-04-01T12:00:00Z",
        );
        // 2024-03-31 is summer time (UTC+2) from 03:00 local.
        assert_eq!(r.at(ts("2024-03-31T12:00:00Z")), Some("HPH"));
        assert_eq!(r.at(ts("2024-03-31T20:00:00Z")), Some("HCH"));
        assert_eq!(r.at(ts("2024-03-31T22:00:00Z")), Some("HCB")); // 00:00 on April 1st
        assert_eq!(r.at(ts("2024-04-01T04:00:00Z")), Some("HPB"));
    }

    #[test]
    fn options_are_read_with_their_windows_only_where_they_take_some() {
        assert!(TariffOption::parse("HPHC:22:00-06:00").is_ok());
        for bad in [
            "HPHC",
            "SEASONAL",
            "TEMPO:22:00-06:00",
            "BASE:01:00-02:00",
            "FOO",
            "",
        ] {
            assert!(
                matches!(TariffOption::parse(bad), Err(QueryError::BadTariff(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_weekday_rule_holds_on_the_local_weekday_only() {
        // Weekends off-peak all day (bits 5 and 6: Saturday, Sunday), weekdays by the clock.
        let option = TariffOption {
            name: "WEEKEND".into(),
            registers: vec!["HP".into(), "HC".into()],
            colour_series: None,
            colour_day_start_s: 0,
            rules: vec![
                Rule {
                    weekdays: (1 << 5) | (1 << 6),
                    ..Rule::new("HC")
                },
                Rule {
                    clock_s: vec![(0, 6 * 3600)],
                    ..Rule::new("HC")
                },
                Rule::new("HP"),
            ],
        };
        let r = Registers::new(
            &TariffPlan::Option(option),
            &DayColours::default(),
            ts("2024-01-05T00:00:00Z"),
            ts("2024-01-09T00:00:00Z"),
        )
        .unwrap();
        // 2024-01-05 is a Friday; Saturday starts at 23:00Z (Paris midnight).
        assert_eq!(r.at(ts("2024-01-05T12:00:00Z")), Some("HP"));
        assert_eq!(r.at(ts("2024-01-05T22:59:59Z")), Some("HP"));
        assert_eq!(r.at(ts("2024-01-05T23:00:00Z")), Some("HC"));
        assert_eq!(r.at(ts("2024-01-07T12:00:00Z")), Some("HC"));
        assert_eq!(r.at(ts("2024-01-08T04:59:59Z")), Some("HC"));
        assert_eq!(r.at(ts("2024-01-08T05:00:00Z")), Some("HP"));
    }

    #[test]
    fn contracts_leave_no_instant_without_a_register() {
        let plan = TariffPlan::Contracts(vec![(
            ts("2024-01-02T00:00:00Z"),
            ts("2024-01-03T00:00:00Z"),
            TariffOption::parse("BASE").unwrap(),
        )]);
        let r = Registers::new(
            &plan,
            &DayColours::default(),
            ts("2024-01-01T00:00:00Z"),
            ts("2024-01-04T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(r.at(ts("2024-01-01T10:00:00Z")), Some(NO_CONTRACT));
        assert_eq!(r.at(ts("2024-01-02T10:00:00Z")), Some("BASE"));
        assert_eq!(r.at(ts("2024-01-03T10:00:00Z")), Some(NO_CONTRACT));
        assert_eq!(r.names, vec!["BASE", NO_CONTRACT]);
    }
}

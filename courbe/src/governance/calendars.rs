//! Day-colour series (Tempo, EJP) and per-meter tariff contracts: one registry file,
//! `DATA/governance/calendars.log` ([`RecordLog`] of JSON [`CalendarRecord`]s).
//!
//! - A colour record sets the colour of some days of one series; a later record wins for the
//!   days it names. Colours are public (every token may list them); only operators write them.
//! - A contracts record replaces a meter's whole list of contracts. A contract runs from local
//!   midnight (Europe/Paris) of `from` to local midnight of `to` (exclusive; `null`: open), with a
//!   built-in option ([`TariffOption::builtin`]) and the off-peak windows `HPHC` and `SEASONAL`
//!   need. A meter's contracts never overlap.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::record_log::RecordLog;
use super::Error;
use crate::engine::fs::FileSystem;
use crate::query::calendar::{day_start_utc, TIME_MAX_UTC};
use crate::query::tariffs::{
    date_of_day, day_number, Colour, DayColours, TariffOption, TariffPlan, TariffSpec, TARIFF_ZONE,
};
use crate::query::Tariff;
use crate::question::Question;

/// The registry's file inside the governance folder.
pub const CALENDARS_LOG: &str = "calendars.log";
/// Most days one colour record holds (a record stays far below the journal's payload limit).
const DAYS_PER_RECORD: usize = 4_096;
/// Most contracts a meter holds.
pub const MAX_CONTRACTS: usize = 256;
/// Most lines one colour upload holds.
pub const MAX_COLOUR_LINES: usize = 100_000;

/// One record of the registry file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CalendarRecord {
    Colours {
        series: String,
        /// `(YYYY-MM-DD, colour)`.
        days: Vec<(String, String)>,
    },
    Contracts {
        meter: String,
        contracts: Vec<Contract>,
        by: String,
        at_utc: i64,
    },
}

/// A tariff contract as the API and the registry write it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    pub option: String,
    pub from: String,
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hc: Option<String>,
}

fn date(text: &str, what: &str) -> Result<Date, String> {
    let ok = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !ok {
        return Err(format!("{what} {text:?} is not YYYY-MM-DD"));
    }
    text.parse::<Date>()
        .map_err(|e| format!("{what} {text:?} is not a date: {e}"))
}

impl Contract {
    /// The option with its windows, and the validity as local dates.
    fn read(&self) -> Result<(TariffOption, Date, Option<Date>), String> {
        let hc = match &self.hc {
            Some(windows) => Some(
                format!("HC:{windows}")
                    .parse::<Tariff>()
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let option = TariffOption::builtin(&self.option, hc.as_ref()).map_err(|e| e.to_string())?;
        let from = date(&self.from, "from")?;
        let to = self.to.as_deref().map(|t| date(t, "to")).transpose()?;
        if to.is_some_and(|to| to <= from) {
            return Err(format!("contract from {} ends before it starts", self.from));
        }
        Ok((option, from, to))
    }
}

/// Checks a meter's list of contracts: each readable, at most [`MAX_CONTRACTS`], no two
/// overlapping. Returns them sorted by start.
pub fn check_contracts(mut contracts: Vec<Contract>) -> Result<Vec<Contract>, String> {
    if contracts.len() > MAX_CONTRACTS {
        return Err(format!("at most {MAX_CONTRACTS} contracts per meter"));
    }
    let mut read = Vec::new();
    for (i, c) in contracts.iter().enumerate() {
        let (_, from, to) = c.read().map_err(|e| format!("contract {i}: {e}"))?;
        read.push((from, to, i));
    }
    read.sort();
    for w in read.windows(2) {
        let &[(_, to, i), (from, _, j)] = w else {
            continue;
        };
        if to.is_none_or(|to| to > from) {
            return Err(format!("contracts {i} and {j} overlap"));
        }
    }
    contracts.sort_by(|a, b| a.from.cmp(&b.from));
    Ok(contracts)
}

/// A rejected line of a colour upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

/// Reads a `date,colour` CSV (an optional `date,colour` header, blank lines skipped): the
/// good lines as `(day number, colour)`, and every bad line with its number and reason. A
/// date given twice is refused on its second line.
pub fn parse_colours(text: &str) -> (Vec<(i64, Colour)>, Vec<BadLine>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let l = raw.strip_suffix('\r').unwrap_or(raw).trim();
        if l.is_empty() || (line == 1 && l.eq_ignore_ascii_case("date,colour")) {
            continue;
        }
        if line > MAX_COLOUR_LINES {
            bad.push(BadLine {
                line,
                reason: format!("more than {MAX_COLOUR_LINES} lines"),
            });
            break;
        }
        let read = || -> Result<(i64, Colour), String> {
            let (d, c) = l
                .split_once(',')
                .ok_or_else(|| "expected date,colour".to_string())?;
            if c.contains(',') {
                return Err("expected two fields, date,colour".into());
            }
            let day = day_number(date(d.trim(), "date")?);
            let colour = c.trim().parse::<Colour>()?;
            Ok((day, colour))
        };
        match read() {
            Ok((day, colour)) => match seen.insert(day, line) {
                Some(first) => bad.push(BadLine {
                    line,
                    reason: format!("date repeated (first on line {first})"),
                }),
                None => good.push((day, colour)),
            },
            Err(reason) => bad.push(BadLine { line, reason }),
        }
    }
    (good, bad)
}

/// Whether `name` may name a colour series: 1 to 32 of `a-z 0-9 _ -`.
pub fn check_series_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "calendar name {name:?}: 1 to 32 of a-z, 0-9, _ and -"
        ))
    }
}

#[derive(Debug, Default)]
struct State {
    colours: DayColours,
    contracts: BTreeMap<String, Vec<Contract>>,
}

impl State {
    fn apply(&mut self, record: CalendarRecord) {
        match record {
            CalendarRecord::Colours { series, days } => {
                for (d, c) in days {
                    // Records are written checked; an unreadable day is skipped, not guessed.
                    if let (Ok(d), Ok(c)) = (date(&d, "date"), c.parse::<Colour>()) {
                        self.colours.insert(&series, d, c);
                    }
                }
            }
            CalendarRecord::Contracts {
                meter, contracts, ..
            } => {
                if contracts.is_empty() {
                    self.contracts.remove(&meter);
                } else {
                    self.contracts.insert(meter, contracts);
                }
            }
        }
    }
}

/// The registry: colour series and contracts, durable before visible.
#[derive(Debug)]
pub struct Calendars {
    log: parking_lot::Mutex<RecordLog>,
    state: parking_lot::RwLock<State>,
}

impl Calendars {
    /// Opens (creating) the registry file in the governance folder `dir`.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Calendars, Error> {
        let mut state = State::default();
        let log = RecordLog::open(fs, &dir.join(CALENDARS_LOG), |r| state.apply(r))?;
        Ok(Calendars {
            log: parking_lot::Mutex::new(log),
            state: parking_lot::RwLock::new(state),
        })
    }

    /// Stores the colours of `days` in series `name` (later uploads win per day).
    pub fn set_colours(&self, name: &str, days: &[(i64, Colour)]) -> Result<usize, Error> {
        check_series_name(name).map_err(Error::InvalidArgument)?;
        let log = self.log.lock();
        for chunk in days.chunks(DAYS_PER_RECORD) {
            let mut text = Vec::with_capacity(chunk.len());
            for &(day, colour) in chunk {
                let d = date_of_day(day).map_err(|e| Error::InvalidArgument(e.to_string()))?;
                text.push((d.to_string(), colour.as_str().to_string()));
            }
            log.append(&CalendarRecord::Colours {
                series: name.to_string(),
                days: text,
            })?;
            let mut state = self.state.write();
            for &(day, colour) in chunk {
                state.colours.insert_day(name, day, colour);
            }
        }
        Ok(days.len())
    }

    /// The colours of series `name` on days `first..last` (day numbers).
    pub fn colours(&self, name: &str, first: i64, last: i64) -> Vec<(i64, Colour)> {
        self.state.read().colours.days(name, first, last)
    }

    /// Every series' colours on days `first..last`.
    pub fn colours_between(&self, first: i64, last: i64) -> DayColours {
        self.state.read().colours.between(first, last)
    }

    /// Replaces `meter`'s contracts (checked by [`check_contracts`]).
    pub fn set_contracts(
        &self,
        meter: &str,
        contracts: Vec<Contract>,
        by: &str,
        at_utc: i64,
    ) -> Result<Vec<Contract>, Error> {
        let contracts = check_contracts(contracts).map_err(Error::InvalidArgument)?;
        let log = self.log.lock();
        let record = CalendarRecord::Contracts {
            meter: meter.to_string(),
            contracts,
            by: by.to_string(),
            at_utc,
        };
        log.append(&record)?;
        self.state.write().apply(record);
        Ok(self.contracts(meter))
    }

    /// `meter`'s contracts, sorted by start.
    pub fn contracts(&self, meter: &str) -> Vec<Contract> {
        self.state
            .read()
            .contracts
            .get(meter)
            .cloned()
            .unwrap_or_default()
    }

    /// Gives an energy question's option or `contract` tariff the colours (and contracts) it
    /// reads; other questions are left as they are.
    pub fn resolve(&self, question: &mut Question) -> Result<(), String> {
        let Question::Energy {
            meter,
            calendar,
            tariff: Some(spec),
            ..
        } = question
        else {
            return Ok(());
        };
        let plan = match spec {
            TariffSpec::Option(option) => TariffPlan::Option(option.clone()),
            TariffSpec::Contract => self.plan(meter)?,
            TariffSpec::Hc(_) | TariffSpec::Resolved { .. } => return Ok(()),
        };
        // Every colour day an interval starting in the range may reach.
        let first = calendar.calendar.from_utc.div_euclid(86_400) - 2;
        let last = calendar.calendar.to_utc.div_euclid(86_400) + 3;
        *spec = TariffSpec::Resolved {
            plan,
            colours: self.colours_between(first, last),
        };
        Ok(())
    }

    /// `meter`'s contracts as a plan of UTC validity periods.
    pub fn plan(&self, meter: &str) -> Result<TariffPlan, String> {
        let tz = TimeZone::get(TARIFF_ZONE).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for c in self.contracts(meter) {
            let (option, from, to) = c.read()?;
            let start = day_start_utc(&tz, from).map_err(|e| e.to_string())?;
            let end = match to {
                Some(to) => day_start_utc(&tz, to).map_err(|e| e.to_string())?,
                None => TIME_MAX_UTC,
            };
            out.push((start, end, option));
        }
        Ok(TariffPlan::Contracts(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_colour_lines_are_numbered_and_the_good_ones_kept() {
        let (good, bad) = parse_colours(
            "date,colour\n2024-01-01,BLUE\n2024-01-02,PURPLE\n\n2024-1-03,RED\n2024-01-01,RED\n2024-01-04,WHITE,x\n2024-01-05,RED\r\n",
        );
        assert_eq!(good.len(), 2);
        let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 5, 6, 7]);
    }

    #[test]
    fn overlapping_or_unreadable_contracts_are_refused() {
        let c = |option: &str, from: &str, to: Option<&str>, hc: Option<&str>| Contract {
            option: option.into(),
            from: from.into(),
            to: to.map(Into::into),
            hc: hc.map(Into::into),
        };
        assert!(check_contracts(vec![
            c("BASE", "2024-01-01", Some("2024-06-01"), None),
            c("TEMPO", "2024-06-01", None, None),
        ])
        .is_ok());
        for bad in [
            vec![
                c("BASE", "2024-01-01", None, None),
                c("TEMPO", "2024-06-01", None, None),
            ],
            vec![c("HPHC", "2024-01-01", None, None)],
            vec![c("TEMPO", "2024-01-01", None, Some("22:00-06:00"))],
            vec![c("BASE", "2024-01-01", Some("2024-01-01"), None)],
            vec![c("BASE", "2024-13-01", None, None)],
            vec![c("NOPE", "2024-01-01", None, None)],
        ] {
            assert!(check_contracts(bad.clone()).is_err(), "{bad:?}");
        }
    }
}

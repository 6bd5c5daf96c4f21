//! The Enedis SGE historical export (`Enedis_SGE_HDM_*.csv`, service
//! CommandeTransmissionHistoriqueMesures): semicolon-separated sections, each a metadata header
//!
//! ```text
//! Identifiant PRM;Type de donnees;Date de debut;Date de fin;Grandeur physique;Grandeur metier;Etape metier;Unite[;Pas en minutes]
//! 09111642617347;Index;20/10/2020;02/02/2022;Energie active;Consommation;Comptage Brut;
//! ```
//!
//! then the lines of its `Type de donnees`:
//!
//! - `Courbe de charge`: `Horodate;Valeur` load curve, read by [`super::csv::parse_enedis`].
//! - `Index`: `Horodate;Type de releve;EAS F1;...;EAS F10;EAS D1;...;EAS D4;EAS T`, one line per
//!   daily reading (`Horodate` is its instant, Paris midnight), cumulative Wh per meter register
//!   ("cadran"): `EAS F<n>` the supplier's grid, `EAS D<n>` the distributor's, `EAS T` their
//!   total. A calendar follows: `Periode;Identifiant calendrier fournisseur;...;Identifiant classe
//!   temporelle <k>;Libelle classe temporelle <k>;Cadran classe temporelle <k>;...` and one line
//!   per period (`Du <from> au [<to>]`) naming the class each register counts. A cell becomes an
//!   index point of register `<class id>` (supplier) or `DIST_<class id>` (distributor), the
//!   names R151 gives the same classes; a cell whose register has no class in the period's
//!   calendar is not read (Enedis fills registers outside the grid, e.g. with 0), nor is
//!   `EAS T` (the sum of the registers). An empty `Unite` reads as Wh.
//! - `Puissance maximale quotidienne`: `Horodate;Valeur`, the instant and value of each day's
//!   maximum apparent power: `max_power` points at that instant. Enedis labels this section's
//!   unit `W`; the quantity is apparent power, read as VA.
//! - `Energie quotidienne` or `Consommation quotidienne`: `Horodate;Valeur`, Wh per Paris day,
//!   `Horodate` a date or the instant of its Paris midnight: daily energy points. (No public
//!   sample of this variant was found; the layout is the export's own.)
//!
//! Empty values are gaps, not rejections. Each line is a record, rejected alone with its number
//! (1-based in the whole document). Index, maximum power and daily energy carry no quality:
//! they read as measured. Index, maximum power and daily energy sections are consumption
//! (`Grandeur metier` `Consommation` or empty); the load curve goes to the channel asked for.

use super::csv::parse_enedis;
use super::time::{local_midnight, paris, parse_date, parse_rfc3339};
use super::{
    check_daily, check_point, check_prm, check_register_name, parse_scaled, Daily, IngestError,
    OffsetSink, Rejected, Sink, DAILY_STEP_MIN, DISTRIBUTOR_PREFIX, MAX_POWER_STEP_MIN,
};
use crate::{Channel, Point, Quality};

const META_PREFIX: &[u8] = b"Identifiant PRM;";

/// One line of the document: its number, its bytes without terminator, its byte range.
#[derive(Clone, Copy)]
struct Line<'a> {
    number: u64,
    text: &'a [u8],
    start: usize,
    end: usize,
}

pub(crate) fn parse(
    input: &[u8],
    channel: Channel,
    sink: &mut impl Sink,
) -> Result<(), IngestError> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, raw) in input.split(|&b| b == b'\n').enumerate() {
        let end = start + raw.len();
        lines.push(Line {
            number: i as u64 + 1,
            text: raw.strip_suffix(b"\r").unwrap_or(raw),
            start,
            end: (end + 1).min(input.len()),
        });
        start = end + 1;
    }
    let sections: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.text.starts_with(META_PREFIX))
        .map(|(i, _)| i)
        .collect();
    let before_first = sections.first().copied().unwrap_or(lines.len());
    let leading_text = lines
        .get(..before_first)
        .unwrap_or_default()
        .iter()
        .any(|l| !l.text.trim_ascii().is_empty());
    if sections.is_empty() || leading_text {
        // Not sectioned as the export is: the load-curve reader says what is wrong.
        return parse_enedis(input, channel, sink);
    }
    let mut tz = None;
    for (k, &first) in sections.iter().enumerate() {
        let last = sections.get(k + 1).copied().unwrap_or(lines.len());
        let section = lines.get(first..last).unwrap_or_default();
        read_section(input, section, channel, &mut tz, sink)?;
    }
    Ok(())
}

/// The metadata of a section, by column name.
struct Meta<'a> {
    fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Meta<'a> {
    fn get(&self, name: &str) -> &'a str {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or_default()
    }
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or("\u{fffd}").trim()
}

fn read_section(
    input: &[u8],
    section: &[Line<'_>],
    channel: Channel,
    tz: &mut Option<jiff::tz::TimeZone>,
    sink: &mut impl Sink,
) -> Result<(), IngestError> {
    let Some(head) = section.first() else {
        return Ok(());
    };
    let Some(values) = section.get(1) else {
        return Err(IngestError::Document {
            line: head.number,
            reason: "metadata header without its values line".into(),
        });
    };
    let meta = Meta {
        fields: head
            .text
            .split(|&b| b == b';')
            .zip(values.text.split(|&b| b == b';'))
            .map(|(n, v)| (text(n), text(v)))
            .collect(),
    };
    let kind = meta.get("Type de donnees");
    if kind.is_empty() || kind == "Courbe de charge" {
        let (Some(first), Some(last)) = (section.first(), section.last()) else {
            return Ok(());
        };
        let bytes = input.get(first.start..last.end).unwrap_or_default();
        let mut offset = OffsetSink {
            inner: sink,
            offset: first.number - 1,
        };
        return parse_enedis(bytes, channel, &mut offset).map_err(|e| match e {
            IngestError::Document { line, reason } => IngestError::Document {
                line: line + first.number - 1,
                reason,
            },
            IngestError::Header { line, reason } => IngestError::Header {
                line: line + first.number - 1,
                reason,
            },
            other => other,
        });
    }
    let doc_err = |reason: String| IngestError::Document {
        line: values.number,
        reason,
    };
    let business = meta.get("Grandeur metier");
    if !(business.is_empty() || business == "Consommation") {
        return Err(doc_err(format!(
            "{kind} of Grandeur metier {business:?}: only Consommation is stored for daily data"
        )));
    }
    let unit = meta.get("Unite");
    let body = section.get(2..).unwrap_or_default();
    let meter = check_prm(meta.get("Identifiant PRM").as_bytes()).map(str::to_owned);
    if tz.is_none() {
        *tz = Some(paris());
    }
    let Some(tz) = tz.as_ref() else {
        return Ok(());
    };
    match kind {
        "Index" => {
            let kilo = match unit {
                "" | "Wh" => false,
                "kWh" => true,
                other => return Err(doc_err(format!("index unit {other:?} is not Wh or kWh"))),
            };
            read_index(body, meter, kilo, sink)
        }
        "Puissance maximale quotidienne" => {
            let kilo = match unit {
                "" | "VA" | "W" => false,
                "kVA" | "kW" => true,
                other => {
                    return Err(doc_err(format!(
                        "maximum power unit {other:?} is not VA or kVA"
                    )))
                }
            };
            read_values(body, meter, sink, |stamp, value| {
                let ts_utc = parse_rfc3339(stamp)
                    .map_err(|e| format!("Horodate {:?}: {e}", String::from_utf8_lossy(stamp)))?;
                let unit = if kilo { "kVA" } else { "VA" };
                let value = parse_scaled(value, kilo, "maximum power", unit)?;
                let point = Point {
                    ts_utc,
                    value,
                    step_min: MAX_POWER_STEP_MIN,
                    quality: Quality::Measured,
                };
                check_point(Channel::MAX_POWER, &point)?;
                Ok(Reading::Channel(Channel::MAX_POWER, point))
            })
        }
        "Energie quotidienne" | "Consommation quotidienne" => {
            let kilo = match unit {
                "" | "Wh" => false,
                "kWh" => true,
                other => {
                    return Err(doc_err(format!(
                        "daily energy unit {other:?} is not Wh or kWh"
                    )))
                }
            };
            read_values(body, meter, sink, |stamp, value| {
                let ts_utc = day_start(tz, stamp)?;
                let unit = if kilo { "kWh" } else { "Wh" };
                let value = parse_scaled(value, kilo, "daily energy", unit)?;
                let point = Point {
                    ts_utc,
                    value,
                    step_min: DAILY_STEP_MIN,
                    quality: Quality::Measured,
                };
                check_daily(&Daily::Energy, &point)?;
                Ok(Reading::Daily(point))
            })
        }
        other => Err(doc_err(format!(
            "Type de donnees {other:?} is not one of Courbe de charge, Index, Puissance maximale \
             quotidienne, Energie quotidienne"
        ))),
    }
}

/// The instant a daily energy line is stamped with: a date (its Paris midnight), or an RFC 3339
/// instant that is a Paris midnight.
fn day_start(tz: &jiff::tz::TimeZone, stamp: &[u8]) -> Result<i64, String> {
    let shown = String::from_utf8_lossy(stamp);
    if stamp.len() == 10 {
        let date = parse_date(stamp).map_err(|e| format!("Horodate {shown:?}: {e}"))?;
        return local_midnight(tz, date);
    }
    let ts = parse_rfc3339(stamp).map_err(|e| format!("Horodate {shown:?}: {e}"))?;
    let date = jiff::Timestamp::from_second(ts)
        .map_err(|e| format!("Horodate {shown:?}: {e}"))?
        .to_zoned(tz.clone())
        .date();
    if local_midnight(tz, date)? != ts {
        return Err(format!(
            "Horodate {shown:?} is not a Europe/Paris midnight (a daily energy is of a whole day)"
        ));
    }
    Ok(ts)
}

enum Reading {
    Channel(Channel, Point),
    Daily(Point),
}

/// Reads a `Horodate;Valeur` body; `read` turns a line's stamp and non-empty value into a
/// reading.
fn read_values(
    body: &[Line<'_>],
    meter: Result<String, String>,
    sink: &mut impl Sink,
    read: impl Fn(&[u8], &str) -> Result<Reading, String>,
) -> Result<(), IngestError> {
    let mut rows = body.iter().filter(|l| !l.text.trim_ascii().is_empty());
    match rows.next() {
        Some(h) if text(h.text).starts_with("Horodate;Valeur") => {}
        Some(h) => {
            return Err(IngestError::Document {
                line: h.number,
                reason: "expected the header Horodate;Valeur".into(),
            })
        }
        None => return Ok(()),
    }
    for line in rows {
        let mut fields = line.text.split(|&b| b == b';');
        let (Some(stamp), Some(value), None) = (fields.next(), fields.next(), fields.next()) else {
            sink.reject(Rejected {
                line: line.number,
                reason: "expected two fields, Horodate;Valeur".into(),
            });
            continue;
        };
        let value = text(value);
        if value.is_empty() {
            continue;
        }
        let meter = match &meter {
            Ok(m) => m.as_str(),
            Err(reason) => {
                sink.reject(Rejected {
                    line: line.number,
                    reason: reason.clone(),
                });
                continue;
            }
        };
        match read(stamp.trim_ascii(), value) {
            Ok(Reading::Channel(channel, point)) => sink.point(line.number, meter, channel, point),
            Ok(Reading::Daily(point)) => sink.daily(line.number, meter, Daily::Energy, point),
            Err(reason) => sink.reject(Rejected {
                line: line.number,
                reason,
            }),
        }
    }
    Ok(())
}

/// A register column of the index table: supplier (`EAS F<n>`), distributor (`EAS D<n>`) or the
/// total (`EAS T`, not read).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cadran {
    Supplier(u8),
    Distributor(u8),
    Total,
}

fn cadran(name: &str) -> Option<Cadran> {
    let rest = name.strip_prefix("EAS ")?;
    if rest == "T" {
        return Some(Cadran::Total);
    }
    let (grid, n) = rest.split_at_checked(1)?;
    let n: u8 = n.parse().ok()?;
    match grid {
        "F" => Some(Cadran::Supplier(n)),
        "D" => Some(Cadran::Distributor(n)),
        _ => None,
    }
}

/// A calendar period: `[from, to)` and the register name of each cadran.
struct Period {
    from: i64,
    to: Option<i64>,
    names: Vec<(Cadran, String)>,
}

fn read_index(
    body: &[Line<'_>],
    meter: Result<String, String>,
    kilo: bool,
    sink: &mut impl Sink,
) -> Result<(), IngestError> {
    let mut rows = body.iter().filter(|l| !l.text.trim_ascii().is_empty());
    let columns: Vec<Option<Cadran>> = match rows.next() {
        Some(h) if h.text.starts_with(b"Horodate;Type de releve;") => h
            .text
            .split(|&b| b == b';')
            .skip(2)
            .map(|c| cadran(text(c)))
            .collect(),
        Some(h) => {
            return Err(IngestError::Document {
                line: h.number,
                reason: "expected the index header Horodate;Type de releve;EAS F1;...".into(),
            })
        }
        None => return Ok(()),
    };
    let rest: Vec<&Line<'_>> = rows.collect();
    let calendar_at = rest
        .iter()
        .position(|l| l.text.starts_with(b"Periode;"))
        .unwrap_or(rest.len());
    let periods = read_calendar(rest.get(calendar_at..).unwrap_or_default(), sink);
    let unit = if kilo { "kWh" } else { "Wh" };
    for line in rest.get(..calendar_at).unwrap_or_default() {
        let fields: Vec<&[u8]> = line.text.split(|&b| b == b';').collect();
        if fields.len() != columns.len() + 2 {
            sink.reject(Rejected {
                line: line.number,
                reason: format!(
                    "{} fields (expected {}, as the header)",
                    fields.len(),
                    columns.len() + 2
                ),
            });
            continue;
        }
        let cells: Vec<(Cadran, &str)> = columns
            .iter()
            .zip(fields.iter().skip(2))
            .filter_map(|(c, v)| Some(((*c)?, text(v))))
            .filter(|(c, v)| *c != Cadran::Total && !v.is_empty())
            .collect();
        if cells.is_empty() {
            continue;
        }
        let meter = match &meter {
            Ok(m) => m.as_str(),
            Err(reason) => {
                sink.reject(Rejected {
                    line: line.number,
                    reason: reason.clone(),
                });
                continue;
            }
        };
        let stamp = fields.first().copied().unwrap_or_default().trim_ascii();
        let ts_utc = match parse_rfc3339(stamp) {
            Ok(ts) => ts,
            Err(e) => {
                sink.reject(Rejected {
                    line: line.number,
                    reason: format!("Horodate {:?}: {e}", String::from_utf8_lossy(stamp)),
                });
                continue;
            }
        };
        let Some(period) = periods
            .iter()
            .find(|p| p.from <= ts_utc && p.to.is_none_or(|to| ts_utc < to))
        else {
            sink.reject(Rejected {
                line: line.number,
                reason: format!(
                    "no calendar period names the registers at {}",
                    String::from_utf8_lossy(stamp)
                ),
            });
            continue;
        };
        for (cadran, value) in cells {
            let Some((_, name)) = period.names.iter().find(|(c, _)| *c == cadran) else {
                continue;
            };
            let read = parse_scaled(value, kilo, &format!("index of {name}"), unit).and_then(|v| {
                let point = Point {
                    ts_utc,
                    value: v,
                    step_min: DAILY_STEP_MIN,
                    quality: Quality::Measured,
                };
                check_daily(&Daily::Index(name), &point).map(|()| point)
            });
            match read {
                Ok(point) => sink.daily(line.number, meter, Daily::Index(name), point),
                Err(reason) => sink.reject(Rejected {
                    line: line.number,
                    reason,
                }),
            }
        }
    }
    Ok(())
}

/// Reads the calendar lines (the first is its header); a line that cannot be read is rejected
/// and its period left out.
fn read_calendar(lines: &[&Line<'_>], sink: &mut impl Sink) -> Vec<Period> {
    let Some((header, rows)) = lines.split_first() else {
        return Vec::new();
    };
    // Per column: the class id or cadran of supplier class k / distributor class k.
    #[derive(Clone, Copy, PartialEq)]
    enum Col {
        Id(bool, u8),
        Cadran(bool, u8),
        Other,
    }
    let cols: Vec<Col> = header
        .text
        .split(|&b| b == b';')
        .map(|c| {
            let c = text(c);
            let parse = |rest: &str| -> Option<(bool, u8)> {
                match rest.strip_prefix("distributeur ") {
                    Some(k) => Some((true, k.parse().ok()?)),
                    None => Some((false, rest.parse().ok()?)),
                }
            };
            if let Some(k) = c
                .strip_prefix("Identifiant classe temporelle ")
                .and_then(parse)
            {
                Col::Id(k.0, k.1)
            } else if let Some(k) = c.strip_prefix("Cadran classe temporelle ").and_then(parse) {
                Col::Cadran(k.0, k.1)
            } else {
                Col::Other
            }
        })
        .collect();
    let mut periods = Vec::new();
    for line in rows {
        let fields: Vec<&str> = line.text.split(|&b| b == b';').map(text).collect();
        let period = (|| -> Result<Period, String> {
            let spec = fields.first().copied().unwrap_or_default();
            let spec = spec.strip_prefix("Du ").ok_or_else(|| {
                format!("calendar period {spec:?} is not \"Du <from> au [<to>]\"")
            })?;
            let (from, to) = spec
                .split_once(" au")
                .ok_or_else(|| format!("calendar period {spec:?} has no \" au\""))?;
            let from = parse_rfc3339(from.trim().as_bytes())
                .map_err(|e| format!("calendar period start {from:?}: {e}"))?;
            let to = match to.trim() {
                "" => None,
                to => Some(
                    parse_rfc3339(to.as_bytes())
                        .map_err(|e| format!("calendar period end {to:?}: {e}"))?,
                ),
            };
            let mut names = Vec::new();
            for (i, col) in cols.iter().enumerate() {
                let Col::Id(distributor, k) = *col else {
                    continue;
                };
                let id = fields.get(i).copied().unwrap_or_default();
                if id.is_empty() {
                    continue;
                }
                let cadran_col = cols.iter().position(|c| *c == Col::Cadran(distributor, k));
                let Some(c) = cadran_col
                    .and_then(|j| fields.get(j))
                    .and_then(|c| cadran(c))
                else {
                    return Err(format!("class {id:?} has no readable Cadran column"));
                };
                let name = if distributor {
                    format!("{DISTRIBUTOR_PREFIX}{id}")
                } else {
                    id.to_owned()
                };
                check_register_name(&name)?;
                names.push((c, name));
            }
            Ok(Period { from, to, names })
        })();
        match period {
            Ok(p) => periods.push(p),
            Err(reason) => sink.reject(Rejected {
                line: line.number,
                reason,
            }),
        }
    }
    periods
}

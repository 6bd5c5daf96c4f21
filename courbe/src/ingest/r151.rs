//! Enedis R151 flows: daily indexes per tariff class and daily maximum power of C5 delivery
//! points.
//!
//! ```text
//! R151
//! ├── En_Tete_Flux
//! │   ├── Unite_Mesure_Index           Wh or kWh (absent: Wh)
//! │   └── Unite_Mesure_Puissance       VA or kVA (absent: VA)
//! └── PRM (repeated)
//!     ├── Id_PRM                       14 digits
//!     └── Donnees_Releve (repeated)    one day
//!         ├── Date_Releve              YYYY-MM-DD
//!         ├── Classe_Temporelle_Distributeur (repeated)   register DIST_ + Id_Classe_Temporelle
//!         ├── Classe_Temporelle (repeated)                register Id_Classe_Temporelle
//!         │   ├── Id_Classe_Temporelle, Valeur (cumulative index), Indice_Vraisemblance
//!         └── Puissance_Maximale / Valeur                 maximum apparent power of the day
//! ```
//!
//! Each class is an index point of its register: `ts_utc` is the Europe/Paris midnight that
//! starts `Date_Releve`, step 1440, the value in Wh (kWh are multiplied by 1000 and must then be
//! whole Wh). `Indice_Vraisemblance` 0 (or absent) reads as measured, any other integer as
//! estimated: Enedis documents the R50 `IV` the same way (0: plain measurement, 1: value subject
//! to caution); no public R151 guide says more. `Puissance_Maximale` is a `max_power` point in
//! VA; the flow gives no instant for it, so it is stamped at the same Paris midnight (a
//! `max_power` point elsewhere carries the instant of the peak; here the day is what is known).
//!
//! Records are the classes and the maximum power, each rejected alone with the line where its
//! element starts: a missing or repeated field, a value that is not a number, above
//! 2,147,483,647 or finer than the unit allows, a register name outside `[A-Z0-9_]{1,16}`, a bad
//! PRM or date (every record of that `Donnees_Releve`). An unknown unit in the header makes the
//! whole document unusable. The document is read as a stream in the bounded memory of the R50
//! reader ([`super::r50::MAX_DEPTH`], [`super::r50::MAX_EVENT_BYTES`]); one `Donnees_Releve` holds
//! at most [`MAX_CLASSES`] records until it closes.

use std::io::{self, BufRead};

use quick_xml::events::Event;
use quick_xml::NsReader;

use super::r50::{namespace_of, EventTooLong, LineOf, Tracked, MAX_DEPTH};
use super::time::{local_midnight, paris, parse_date};
use super::{
    check_daily, check_point, check_prm, check_register_name, parse_scaled, Daily, IngestError,
    Rejected, Sink, DAILY_STEP_MIN, DISTRIBUTOR_PREFIX, MAX_POWER_STEP_MIN,
};
use crate::{Channel, Point, Quality};

/// Records one `Donnees_Releve` holds until it closes (a real one has at most 10 supplier
/// classes, 4 distributor classes and a maximum power).
pub const MAX_CLASSES: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Supplier,
    Distributor,
    MaxPower,
}

impl Kind {
    fn of(name: &[u8]) -> Option<Kind> {
        match name {
            b"Classe_Temporelle" => Some(Kind::Supplier),
            b"Classe_Temporelle_Distributeur" => Some(Kind::Distributor),
            b"Puissance_Maximale" => Some(Kind::MaxPower),
            _ => None,
        }
    }

    fn element(self) -> &'static str {
        match self {
            Kind::Supplier => "Classe_Temporelle",
            Kind::Distributor => "Classe_Temporelle_Distributeur",
            Kind::MaxPower => "Puissance_Maximale",
        }
    }
}

/// One class or maximum power being read.
struct Item {
    line: u64,
    kind: Kind,
    id: Option<String>,
    value: Option<String>,
    iv: Option<String>,
    broken: Option<String>,
}

/// One `Donnees_Releve` being read.
struct Releve {
    date: Option<Result<jiff::civil::Date, String>>,
    items: Vec<Item>,
    broken: Option<String>,
}

struct Open {
    name: Vec<u8>,
    foreign: bool,
}

/// The parser's state besides the XML reader.
struct State {
    stack: Vec<Open>,
    index_kilo: bool,
    power_kilo: bool,
    prm: Option<Result<String, String>>,
    releve: Option<Releve>,
    item: Option<Item>,
    records_seen: bool,
    root_seen: bool,
    tz: jiff::tz::TimeZone,
    /// The last date turned into its Paris midnight (a flow's records share their dates).
    midnight: Option<(jiff::civil::Date, i64)>,
}

pub(crate) fn parse<R: BufRead>(input: R, sink: &mut impl Sink) -> Result<(), IngestError> {
    let tz = paris();
    let mut reader = NsReader::from_reader(Tracked::new(input));
    reader.config_mut().check_end_names = false;
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut st = State {
        stack: Vec::new(),
        index_kilo: false,
        power_kilo: false,
        prm: None,
        releve: None,
        item: None,
        records_seen: false,
        root_seen: false,
        tz,
        midnight: None,
    };
    loop {
        buf.clear();
        reader.get_mut().mark();
        let (resolved, event) = match reader.read_resolved_event_into(&mut buf) {
            Ok(event) => event,
            Err(quick_xml::Error::Io(e)) if e.get_ref().is_some_and(|e| e.is::<EventTooLong>()) => {
                let line = reader.get_ref_line(reader.buffer_position());
                return st.unreadable_rest(line, EventTooLong.to_string(), sink);
            }
            Err(quick_xml::Error::Io(e)) => {
                return Err(IngestError::Io(io::Error::new(e.kind(), e.to_string())))
            }
            Err(e) => {
                let line = reader.get_ref_line(reader.error_position());
                return st.unreadable_rest(line, format!("XML not well-formed: {e}"), sink);
            }
        };
        let namespace = namespace_of(&resolved);
        match event {
            Event::Start(e) => {
                let name = e.name().as_ref().to_vec();
                let line = reader.get_ref_line(reader.buffer_position().saturating_sub(1));
                if st.stack.is_empty() {
                    if st.root_seen {
                        let reason = "XML not well-formed: a second root element".to_owned();
                        return st.unreadable_rest(line, reason, sink);
                    }
                    if name != b"R151" || namespace.is_some() {
                        return Err(IngestError::Document {
                            line,
                            reason: format!(
                                "not an R151 flow (root element <{}>{})",
                                String::from_utf8_lossy(&name),
                                namespace
                                    .map(|ns| format!(" in namespace {ns}"))
                                    .unwrap_or_default()
                            ),
                        });
                    }
                    st.root_seen = true;
                }
                if st.stack.len() >= MAX_DEPTH {
                    let reason = format!("elements nested more than {MAX_DEPTH} deep");
                    return st.unreadable_rest(line, reason, sink);
                }
                let inside_foreign = st.stack.last().is_some_and(|o| o.foreign);
                if let Some(ns) = namespace.as_deref().filter(|_| !inside_foreign) {
                    st.foreign(&name, ns, line, sink);
                }
                let foreign = inside_foreign || namespace.is_some();
                if !foreign {
                    st.on_start(&name, line, sink);
                }
                st.stack.push(Open { name, foreign });
            }
            Event::Empty(e) => {
                let line = reader.get_ref_line(reader.buffer_position().saturating_sub(1));
                if st.stack.is_empty() && !st.root_seen && e.name().as_ref() != b"R151" {
                    return Err(IngestError::Document {
                        line,
                        reason: format!(
                            "not an R151 flow (root element <{}>)",
                            String::from_utf8_lossy(e.name().as_ref())
                        ),
                    });
                }
                if st.stack.is_empty() {
                    let reason = if st.root_seen {
                        "XML not well-formed: a second root element"
                    } else {
                        "no R151 content: the root element is empty"
                    };
                    return st.unreadable_rest(line, reason.to_owned(), sink);
                }
                if st.stack.last().is_some_and(|o| o.foreign) {
                    continue;
                }
                let name = e.name();
                let name = name.as_ref();
                if let Some(ns) = namespace.as_deref() {
                    st.foreign(name, ns, line, sink);
                } else if let Some(item) = st.item.as_mut() {
                    if matches!(
                        name,
                        b"Id_Classe_Temporelle" | b"Valeur" | b"Indice_Vraisemblance"
                    ) {
                        item.broken.get_or_insert_with(|| {
                            format!("empty <{}>", String::from_utf8_lossy(name))
                        });
                    }
                } else if let Some(kind) = Kind::of(name) {
                    sink.reject(Rejected {
                        line,
                        reason: format!("empty record <{}/>", kind.element()),
                    });
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| format!("unreadable text: {e}"));
                let text = text.as_deref().map_err(String::clone);
                if let Err(reason) = st.on_text(text) {
                    let line = reader.get_ref_line(reader.buffer_position());
                    return Err(IngestError::Document { line, reason });
                }
            }
            Event::CData(c) => {
                let text = std::str::from_utf8(&c).map_err(|_| "text is not UTF-8".to_owned());
                if let Err(reason) = st.on_text(text) {
                    let line = reader.get_ref_line(reader.buffer_position());
                    return Err(IngestError::Document { line, reason });
                }
            }
            Event::End(e) => {
                let name = e.name();
                let name = name.as_ref();
                let line = reader.get_ref_line(reader.buffer_position().saturating_sub(1));
                if let Err(reason) = st.on_end(name, sink) {
                    return st.unreadable_rest(line, reason, sink);
                }
            }
            Event::Eof => {
                if let Some(open) = st.stack.last() {
                    let line = reader.get_ref_line(reader.buffer_position());
                    let reason = format!(
                        "document ends inside <{}>",
                        String::from_utf8_lossy(&open.name)
                    );
                    return st.unreadable_rest(line, reason, sink);
                }
                if !st.root_seen {
                    return Err(IngestError::Document {
                        line: reader.get_ref_line(reader.buffer_position()),
                        reason: "no R151 content".into(),
                    });
                }
                return Ok(());
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
}

impl State {
    /// An element in namespace `ns` outside any other: inside a record it breaks the record;
    /// elsewhere it is rejected on its own.
    fn foreign(&mut self, name: &[u8], ns: &str, line: u64, sink: &mut impl Sink) {
        let reason = format!(
            "element <{}> is in namespace {ns}, not R151's; not read",
            String::from_utf8_lossy(name)
        );
        match self.item.as_mut() {
            Some(item) => {
                item.broken.get_or_insert(reason);
            }
            None => sink.reject(Rejected { line, reason }),
        }
    }

    fn on_start(&mut self, name: &[u8], line: u64, sink: &mut impl Sink) {
        let parent = self.stack.last().map(|o| o.name.as_slice());
        match (parent, name) {
            (_, b"PRM") => self.prm = None,
            (Some(b"PRM"), b"Id_PRM") if self.prm.is_some() => {
                self.prm = Some(Err("a <PRM> with more than one <Id_PRM>".into()));
            }
            (_, b"Donnees_Releve") => {
                if let Some(open) = self.releve.take() {
                    self.emit(open, sink);
                }
                self.records_seen = true;
                self.releve = Some(Releve {
                    date: None,
                    items: Vec::new(),
                    broken: None,
                });
            }
            (Some(b"Donnees_Releve"), _) if Kind::of(name).is_some() => {
                if let Some(open) = self.item.take() {
                    sink.reject(Rejected {
                        line: open.line,
                        reason: format!("<{}> not closed", open.kind.element()),
                    });
                }
                self.item = Kind::of(name).map(|kind| Item {
                    line,
                    kind,
                    id: None,
                    value: None,
                    iv: None,
                    broken: None,
                });
            }
            (Some(b"Donnees_Releve"), b"Date_Releve") => {
                if let Some(releve) = self.releve.as_mut() {
                    if releve.date.is_some() {
                        releve
                            .broken
                            .get_or_insert("more than one <Date_Releve>".into());
                    }
                }
            }
            _ => {}
        }
    }

    /// Text inside the innermost open element; an error makes the whole document unusable.
    fn on_text(&mut self, text: Result<&str, String>) -> Result<(), String> {
        let n = self.stack.len();
        let (Some(leaf), Some(parent)) = (
            self.stack.last(),
            n.checked_sub(2).and_then(|i| self.stack.get(i)),
        ) else {
            return Ok(());
        };
        if leaf.foreign {
            return Ok(());
        }
        match (parent.name.as_slice(), leaf.name.as_slice()) {
            (b"En_Tete_Flux", b"Unite_Mesure_Index") => {
                self.index_kilo = match text.as_deref().map(str::trim) {
                    Ok("Wh") => false,
                    Ok("kWh") => true,
                    other => {
                        return Err(format!(
                            "Unite_Mesure_Index {:?} is not Wh or kWh",
                            other.unwrap_or_default()
                        ))
                    }
                };
            }
            (b"En_Tete_Flux", b"Unite_Mesure_Puissance") => {
                self.power_kilo = match text.as_deref().map(str::trim) {
                    Ok("VA") => false,
                    Ok("kVA") => true,
                    other => {
                        return Err(format!(
                            "Unite_Mesure_Puissance {:?} is not VA or kVA",
                            other.unwrap_or_default()
                        ))
                    }
                };
            }
            (b"PRM", b"Id_PRM") => {
                if self.prm.as_ref().is_some_and(Result::is_err) {
                    return Ok(());
                }
                self.prm =
                    Some(text.and_then(|t| check_prm(t.trim().as_bytes()).map(str::to_owned)));
            }
            (b"Donnees_Releve", b"Date_Releve") => {
                if let Some(releve) = self.releve.as_mut() {
                    releve.date = Some(text.and_then(|t| {
                        let t = t.trim();
                        parse_date(t.as_bytes()).map_err(|e| format!("Date_Releve {t:?}: {e}"))
                    }));
                }
            }
            (parent, field) if Kind::of(parent).is_some() => {
                let Some(item) = self.item.as_mut() else {
                    return Ok(());
                };
                let slot = match field {
                    b"Id_Classe_Temporelle" if item.kind != Kind::MaxPower => &mut item.id,
                    b"Valeur" => &mut item.value,
                    b"Indice_Vraisemblance" if item.kind != Kind::MaxPower => &mut item.iv,
                    _ => return Ok(()),
                };
                match text {
                    Ok(t) if slot.is_none() => *slot = Some(t.trim().to_owned()),
                    Ok(_) => {
                        item.broken.get_or_insert_with(|| {
                            format!("more than one <{}>", String::from_utf8_lossy(field))
                        });
                    }
                    Err(e) => {
                        item.broken.get_or_insert(e);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// An end tag; an error means the rest of the document cannot be read.
    fn on_end(&mut self, name: &[u8], sink: &mut impl Sink) -> Result<(), String> {
        let closed = if self.stack.last().is_some_and(|top| top.name == name) {
            self.stack.pop()
        } else if let Some(depth) = self.stack.iter().rposition(|o| o.name == name) {
            // A mismatched end tag: the elements opened since are cut short.
            let expected = self
                .stack
                .last()
                .map(|t| String::from_utf8_lossy(&t.name).into_owned())
                .unwrap_or_default();
            let reason = format!(
                "malformed element: expected </{expected}>, found </{}>",
                String::from_utf8_lossy(name)
            );
            match (self.item.as_mut(), self.releve.as_mut()) {
                (Some(item), _) => {
                    item.broken.get_or_insert(reason);
                }
                (None, Some(releve)) => {
                    releve.broken.get_or_insert(reason);
                }
                (None, None) => return Err(format!("XML not well-formed: {reason}")),
            }
            self.stack.truncate(depth + 1);
            self.stack.pop()
        } else {
            return Err(format!(
                "XML not well-formed: end tag </{}> matches no open element",
                String::from_utf8_lossy(name)
            ));
        };
        if closed.is_some_and(|o| o.foreign) {
            return Ok(());
        }
        if Kind::of(name).is_some() {
            if let Some(item) = self.item.take() {
                match self.releve.as_mut() {
                    Some(releve) if releve.items.len() < MAX_CLASSES => releve.items.push(item),
                    Some(_) => sink.reject(Rejected {
                        line: item.line,
                        reason: format!("more than {MAX_CLASSES} records in one <Donnees_Releve>"),
                    }),
                    None => {}
                }
            }
        } else if name == b"Donnees_Releve" {
            if let Some(item) = self.item.take() {
                sink.reject(Rejected {
                    line: item.line,
                    reason: format!("<{}> not closed", item.kind.element()),
                });
            }
            if let Some(releve) = self.releve.take() {
                self.emit(releve, sink);
            }
        }
        Ok(())
    }

    /// Hands the records of a closed `Donnees_Releve` to the sink.
    fn emit(&mut self, releve: Releve, sink: &mut impl Sink) {
        let common = (|| -> Result<(String, i64), String> {
            if let Some(broken) = &releve.broken {
                return Err(broken.clone());
            }
            let meter = match &self.prm {
                Some(Ok(id)) => id.clone(),
                Some(Err(e)) => return Err(e.clone()),
                None => return Err("no Id_PRM before the record".into()),
            };
            let date = match &releve.date {
                Some(Ok(date)) => *date,
                Some(Err(e)) => return Err(e.clone()),
                None => return Err("<Donnees_Releve> without <Date_Releve>".into()),
            };
            let midnight = match self.midnight {
                Some((d, ts)) if d == date => ts,
                _ => {
                    let ts = local_midnight(&self.tz, date)?;
                    self.midnight = Some((date, ts));
                    ts
                }
            };
            Ok((meter, midnight))
        })();
        for item in releve.items {
            let line = item.line;
            let (meter, midnight) = match &common {
                Ok(c) => c,
                Err(reason) => {
                    sink.reject(Rejected {
                        line,
                        reason: reason.clone(),
                    });
                    continue;
                }
            };
            if let Err(reason) = self.emit_item(item, meter, *midnight, sink) {
                sink.reject(Rejected { line, reason });
            }
        }
    }

    fn emit_item(
        &self,
        item: Item,
        meter: &str,
        midnight: i64,
        sink: &mut impl Sink,
    ) -> Result<(), String> {
        if let Some(broken) = item.broken {
            return Err(broken);
        }
        let element = item.kind.element();
        let value = item
            .value
            .ok_or_else(|| format!("<{element}> without <Valeur>"))?;
        if item.kind == Kind::MaxPower {
            let unit = if self.power_kilo { "kVA" } else { "VA" };
            let value = parse_scaled(&value, self.power_kilo, "maximum power", unit)?;
            let point = Point {
                ts_utc: midnight,
                value,
                step_min: MAX_POWER_STEP_MIN,
                quality: Quality::Measured,
            };
            check_point(Channel::MAX_POWER, &point)?;
            sink.point(item.line, meter, Channel::MAX_POWER, point);
            return Ok(());
        }
        let id = item
            .id
            .ok_or_else(|| format!("<{element}> without <Id_Classe_Temporelle>"))?;
        let name = match item.kind {
            Kind::Distributor => format!("{DISTRIBUTOR_PREFIX}{id}"),
            _ => id,
        };
        check_register_name(&name)?;
        let unit = if self.index_kilo { "kWh" } else { "Wh" };
        let value = parse_scaled(&value, self.index_kilo, &format!("index of {name}"), unit)?;
        let quality = match item.iv.as_deref() {
            None | Some("0") => Quality::Measured,
            Some(iv) if !iv.is_empty() && iv.bytes().all(|b| b.is_ascii_digit()) => {
                Quality::Estimated
            }
            Some(iv) => return Err(format!("Indice_Vraisemblance {iv:?} is not an integer")),
        };
        let point = Point {
            ts_utc: midnight,
            value,
            step_min: DAILY_STEP_MIN,
            quality,
        };
        let daily = Daily::Index(name.as_str());
        check_daily(&daily, &point)?;
        sink.daily(item.line, meter, daily, point);
        Ok(())
    }

    /// The document cannot be read past `line`: before any record the whole document is
    /// unusable; after, the records open and the rest are reported as rejected.
    fn unreadable_rest(
        &mut self,
        line: u64,
        reason: String,
        sink: &mut impl Sink,
    ) -> Result<(), IngestError> {
        if !self.records_seen {
            return Err(IngestError::Document { line, reason });
        }
        if let Some(item) = self.item.take() {
            if item.line != line {
                sink.reject(Rejected {
                    line: item.line,
                    reason: "record interrupted by malformed XML".into(),
                });
            }
        }
        if let Some(releve) = self.releve.take() {
            for item in releve.items {
                sink.reject(Rejected {
                    line: item.line,
                    reason: "its <Donnees_Releve> was interrupted by malformed XML".into(),
                });
            }
        }
        sink.reject(Rejected {
            line,
            reason: format!("{reason}; the rest of the document was not read"),
        });
        Ok(())
    }
}

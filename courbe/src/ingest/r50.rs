//! Enedis R50 flows: daily load curves of C5 delivery points.
//!
//! ```text
//! R50
//! ├── En_Tete_Flux / Pas_Publication     step, minutes (5, 10, 15, 30 or 60)
//! └── PRM (repeated)
//!     ├── Id_PRM                         14 digits
//!     └── Donnees_Releve (repeated)
//!         └── PDC (repeated)             one interval
//!             ├── H                      END of the interval, RFC 3339 with offset
//!             ├── V                      average power, W
//!             └── IV                     plausibility index
//! ```
//!
//! A point's start is `H - step`. Quality from `IV`: 0 is `measured`; any other value means
//! Enedis flagged the value as not plainly measured and it is read as `estimated`. A missing `IV`
//! reads as measured. Elements other than these are ignored.
//!
//! A `<PDC>` with a missing, repeated or unreadable `H` or `V` (or `IV`), with an element of
//! another XML namespace, or with a mismatched end tag inside it, is rejected with the line of
//! its `<PDC>` and the rest is read. R50 elements are in no namespace: another element in a
//! namespace is rejected with its line and nothing inside it is read; a root in a namespace is
//! not an R50 flow. A well-formedness error before the first `<PDC>`, a root other than `R50`, or
//! a missing or unsupported `Pas_Publication` makes the whole document unusable; a
//! well-formedness error after records have been read rejects the record it interrupts and
//! reports the rest of the document as unread at the error's line.
//!
//! The document is read as a stream in bounded memory: elements nest at most [`MAX_DEPTH`] deep
//! and one tag, text or comment is at most [`MAX_EVENT_BYTES`] long; past either, the rest of
//! the document is unread as after a well-formedness error.

use std::collections::VecDeque;
use std::io::{self, BufRead};

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::time::parse_rfc3339;
use super::{check_point, check_prm, parse_i32, IngestError, Rejected, Sink, CURVE_STEPS_MIN};
use crate::{Channel, Point, Quality};

/// Deepest nesting of elements read (an R50 flow nests 5 deep).
pub const MAX_DEPTH: usize = 32;
/// Longest tag, text, comment or other markup read, bytes (an R50 tag or value is under 100).
pub const MAX_EVENT_BYTES: u64 = 64 * 1024;
/// Bytes handed to the XML reader at a time, so that [`MAX_EVENT_BYTES`] is checked as it reads.
const CHUNK_LEN: usize = 8 * 1024;

/// The input as the XML reader reads it: counts lines, keeps the offsets of the recent line
/// breaks (those within two events' length back, where positions asked about lie), and fails
/// once more than [`MAX_EVENT_BYTES`] were read since the last [`Tracked::mark`].
pub(super) struct Tracked<R> {
    inner: R,
    consumed: u64,
    /// Line breaks consumed in all.
    newlines: u64,
    /// Offsets of the last line breaks consumed, oldest first.
    recent: VecDeque<u64>,
    since_mark: u64,
}

/// The error [`Tracked`] reads as when an event is over [`MAX_EVENT_BYTES`].
#[derive(Debug)]
pub(super) struct EventTooLong;

impl std::fmt::Display for EventTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a tag, text or comment of more than {MAX_EVENT_BYTES} bytes is not part of an Enedis flow"
        )
    }
}

impl std::error::Error for EventTooLong {}

impl<R: BufRead> Tracked<R> {
    pub(super) fn new(inner: R) -> Self {
        Tracked {
            inner,
            consumed: 0,
            newlines: 0,
            recent: VecDeque::new(),
            since_mark: 0,
        }
    }

    /// Starts counting the bytes of the next event.
    pub(super) fn mark(&mut self) {
        self.since_mark = 0;
    }

    /// The 1-based line of byte `offset` (at most the bytes consumed; an offset older than the
    /// breaks kept reads as the oldest line they cover).
    fn line_at(&self, offset: u64) -> u64 {
        let after = self
            .recent
            .iter()
            .rev()
            .take_while(|&&at| at >= offset)
            .count();
        self.newlines - after as u64 + 1
    }
}

impl<R: BufRead> io::Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(available.get(..n).unwrap_or_default());
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Tracked<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let allowed = MAX_EVENT_BYTES.saturating_sub(self.since_mark);
        if allowed == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, EventTooLong));
        }
        let len = usize::try_from(allowed)
            .unwrap_or(usize::MAX)
            .min(CHUNK_LEN);
        let buf = self.inner.fill_buf()?;
        Ok(buf.get(..buf.len().min(len)).unwrap_or_default())
    }

    fn consume(&mut self, n: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            for (i, _) in buf
                .get(..n)
                .unwrap_or_default()
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
            {
                self.recent.push_back(self.consumed + i as u64);
                self.newlines += 1;
            }
        }
        self.inner.consume(n);
        self.consumed += n as u64;
        self.since_mark += n as u64;
        let keep_from = self
            .consumed
            .saturating_sub(2 * MAX_EVENT_BYTES + CHUNK_LEN as u64);
        while self.recent.front().is_some_and(|&at| at < keep_from) {
            self.recent.pop_front();
        }
    }
}

/// An element open around the reader's position.
struct Open {
    /// The name as written, prefix included.
    name: Vec<u8>,
    /// In another namespace than R50's, or inside such an element: not read.
    foreign: bool,
}

/// The record being read.
struct Pdc {
    line: u64,
    h: Option<Result<i64, String>>,
    v: Option<Result<i32, String>>,
    iv: Option<Result<Quality, String>>,
    /// `H`, `V` and `IV` elements opened so far (bits 0, 1, 2).
    seen: u8,
    broken: Option<String>,
}

/// The namespace of an element, when it has one.
pub(super) fn namespace_of(resolved: &ResolveResult<'_>) -> Option<String> {
    match resolved {
        ResolveResult::Unbound => None,
        ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        ResolveResult::Unknown(prefix) => Some(format!(
            "of the undeclared prefix {}",
            String::from_utf8_lossy(prefix)
        )),
    }
}

pub(crate) fn parse<R: BufRead>(
    input: R,
    channel: Channel,
    sink: &mut impl Sink,
) -> Result<(), IngestError> {
    let mut reader = NsReader::from_reader(Tracked::new(input));
    // End tags are matched here, so that a mismatch inside a record rejects only that record.
    reader.config_mut().check_end_names = false;
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut step_min: Option<u16> = None;
    let mut prm: Option<Result<String, String>> = None;
    let mut pdc: Option<Pdc> = None;
    let mut records_seen = false;
    let mut root_seen = false;

    loop {
        buf.clear();
        reader.get_mut().mark();
        let (resolved, event) = match reader.read_resolved_event_into(&mut buf) {
            Ok(event) => event,
            Err(quick_xml::Error::Io(e)) if e.get_ref().is_some_and(|e| e.is::<EventTooLong>()) => {
                let line = reader.get_ref_line(reader.buffer_position());
                return unreadable_rest(line, EventTooLong.to_string(), records_seen, pdc, sink);
            }
            Err(quick_xml::Error::Io(e)) => {
                return Err(IngestError::Io(io::Error::new(e.kind(), e.to_string())))
            }
            Err(e) => {
                let line = reader.get_ref_line(reader.error_position());
                let reason = format!("XML not well-formed: {e}");
                return unreadable_rest(line, reason, records_seen, pdc, sink);
            }
        };
        let namespace = namespace_of(&resolved);
        match event {
            Event::Start(e) => {
                let name = e.name().as_ref().to_vec();
                let line = reader.get_ref_line(reader.buffer_position().saturating_sub(1));
                if stack.is_empty() && root_seen {
                    let reason = "XML not well-formed: a second root element".to_owned();
                    return unreadable_rest(line, reason, records_seen, pdc, sink);
                }
                root_seen = true;
                if stack.is_empty() && (name != b"R50" || namespace.is_some()) {
                    return Err(IngestError::Document {
                        line,
                        reason: format!(
                            "not an R50 flow (root element <{}>{})",
                            String::from_utf8_lossy(&name),
                            namespace
                                .map(|ns| format!(" in namespace {ns}"))
                                .unwrap_or_default()
                        ),
                    });
                }
                if stack.len() >= MAX_DEPTH {
                    let reason = format!("elements nested more than {MAX_DEPTH} deep");
                    return unreadable_rest(line, reason, records_seen, pdc, sink);
                }
                let inside_foreign = stack.last().is_some_and(|open| open.foreign);
                if let Some(ns) = namespace.as_deref().filter(|_| !inside_foreign) {
                    foreign_element(&name, ns, line, pdc.as_mut(), sink);
                }
                let foreign = inside_foreign || namespace.is_some();
                if !foreign {
                    on_start(
                        &name,
                        line,
                        &stack,
                        step_min,
                        &mut prm,
                        &mut pdc,
                        &mut records_seen,
                        sink,
                    )?;
                }
                stack.push(Open { name, foreign });
            }
            Event::Empty(e) => {
                let line = reader.get_ref_line(reader.buffer_position().saturating_sub(1));
                if stack.is_empty() {
                    let reason = if root_seen {
                        "XML not well-formed: a second root element"
                    } else {
                        "no R50 content: the root element is empty"
                    };
                    return unreadable_rest(line, reason.to_owned(), records_seen, pdc, sink);
                }
                let name = e.name();
                let name = name.as_ref();
                if stack.last().is_some_and(|open| open.foreign) {
                    continue;
                }
                if let Some(ns) = namespace.as_deref() {
                    foreign_element(name, ns, line, pdc.as_mut(), sink);
                } else if let Some(open) = pdc.as_mut() {
                    if matches!(name, b"H" | b"V" | b"IV") {
                        open.broken.get_or_insert_with(|| {
                            format!("empty <{}>", String::from_utf8_lossy(name))
                        });
                    }
                } else if name == b"PDC" {
                    sink.reject(Rejected {
                        line,
                        reason: "empty record <PDC/>".into(),
                    });
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| format!("unreadable text: {e}"));
                if let Err(reason) = on_text(
                    &stack,
                    text.as_deref().map_err(String::clone),
                    &mut step_min,
                    &mut prm,
                    &mut pdc,
                ) {
                    let line = reader.get_ref_line(reader.buffer_position());
                    return Err(IngestError::Document { line, reason });
                }
            }
            Event::CData(c) => {
                let text = std::str::from_utf8(&c).map_err(|_| "text is not UTF-8".to_owned());
                if let Err(reason) = on_text(&stack, text, &mut step_min, &mut prm, &mut pdc) {
                    let line = reader.get_ref_line(reader.buffer_position());
                    return Err(IngestError::Document { line, reason });
                }
            }
            Event::End(e) => {
                let name = e.name();
                let name = name.as_ref();
                let closed_foreign;
                if stack.last().is_some_and(|top| top.name == name) {
                    closed_foreign = stack.pop().is_some_and(|open| open.foreign);
                } else if let Some(depth) = stack.iter().rposition(|open| open.name == name) {
                    // A mismatched end tag: the elements opened since are cut short.
                    if let Some(open) = pdc.as_mut() {
                        let expected = stack
                            .last()
                            .map(|t| String::from_utf8_lossy(&t.name).into_owned());
                        open.broken.get_or_insert_with(|| {
                            format!(
                                "malformed element: expected </{}>, found </{}>",
                                expected.unwrap_or_default(),
                                String::from_utf8_lossy(name)
                            )
                        });
                    }
                    closed_foreign = stack.get(depth).is_some_and(|open| open.foreign);
                    stack.truncate(depth);
                } else if let Some(open) = pdc.as_mut() {
                    // Inside a record, a stray end tag closes the innermost element.
                    let expected = stack.pop();
                    closed_foreign = expected.as_ref().is_some_and(|open| open.foreign);
                    let expected = expected.map(|open| open.name).unwrap_or_default();
                    open.broken.get_or_insert_with(|| {
                        format!(
                            "malformed element: expected </{}>, found </{}>",
                            String::from_utf8_lossy(&expected),
                            String::from_utf8_lossy(name)
                        )
                    });
                } else {
                    let line = reader.get_ref_line(reader.buffer_position().saturating_sub(1));
                    let reason = format!(
                        "XML not well-formed: end tag </{}> matches no open element",
                        String::from_utf8_lossy(name)
                    );
                    return unreadable_rest(line, reason, records_seen, pdc, sink);
                }
                if name == b"PDC" && !closed_foreign {
                    if let (Some(record), Some(step)) = (pdc.take(), step_min) {
                        finish(record, prm.as_ref(), step, channel, sink);
                    }
                }
            }
            Event::Eof => {
                if let Some(open) = stack.last() {
                    let line = reader.get_ref_line(reader.buffer_position());
                    let reason = format!(
                        "document ends inside <{}>",
                        String::from_utf8_lossy(&open.name)
                    );
                    return unreadable_rest(line, reason, records_seen, pdc, sink);
                }
                if !records_seen && step_min.is_none() {
                    return Err(IngestError::Document {
                        line: reader.get_ref_line(reader.buffer_position()),
                        reason: "no R50 content".into(),
                    });
                }
                return Ok(());
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
}

/// The line of byte `offset` of the reader's input.
pub(super) trait LineOf {
    fn get_ref_line(&self, offset: u64) -> u64;
}

impl<R: BufRead> LineOf for NsReader<Tracked<R>> {
    fn get_ref_line(&self, offset: u64) -> u64 {
        self.get_ref().line_at(offset)
    }
}

/// An element in namespace `ns` at `line`, outside any other: inside a record it breaks the
/// record; elsewhere it is rejected on its own.
fn foreign_element(name: &[u8], ns: &str, line: u64, pdc: Option<&mut Pdc>, sink: &mut impl Sink) {
    let reason = format!(
        "element <{}> is in namespace {ns}, not R50's; not read",
        String::from_utf8_lossy(name)
    );
    match pdc {
        Some(open) => {
            open.broken.get_or_insert(reason);
        }
        None => sink.reject(Rejected { line, reason }),
    }
}

/// An R50 element opens at `line` under `stack`.
#[expect(
    clippy::too_many_arguments,
    reason = "the parser state, borrowed field by field"
)]
fn on_start(
    name: &[u8],
    line: u64,
    stack: &[Open],
    step_min: Option<u16>,
    prm: &mut Option<Result<String, String>>,
    pdc: &mut Option<Pdc>,
    records_seen: &mut bool,
    sink: &mut impl Sink,
) -> Result<(), IngestError> {
    let parent = stack.last().map(|open| open.name.as_slice());
    match name {
        b"PDC" => {
            if step_min.is_none() {
                return Err(IngestError::Document {
                    line,
                    reason: "En_Tete_Flux/Pas_Publication is missing before the first record"
                        .into(),
                });
            }
            if let Some(open) = pdc.take() {
                sink.reject(Rejected {
                    line: open.line,
                    reason: "record not closed before the next <PDC>".into(),
                });
            }
            *records_seen = true;
            *pdc = Some(Pdc {
                line,
                h: None,
                v: None,
                iv: None,
                seen: 0,
                broken: None,
            });
        }
        b"PRM" => *prm = None,
        b"Id_PRM" if parent == Some(b"PRM") && prm.is_some() => {
            *prm = Some(Err("a <PRM> with more than one <Id_PRM>".into()));
        }
        b"H" | b"V" | b"IV" if parent == Some(b"PDC") => {
            if let Some(open) = pdc.as_mut() {
                let bit = match name {
                    b"H" => 1,
                    b"V" => 2,
                    _ => 4,
                };
                if open.seen & bit != 0 {
                    open.broken.get_or_insert_with(|| {
                        format!("more than one <{}>", String::from_utf8_lossy(name))
                    });
                }
                open.seen |= bit;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The document cannot be read past `line`: before any record the whole document is unusable;
/// after, the interrupted record and the rest are reported as rejected.
fn unreadable_rest(
    line: u64,
    reason: String,
    records_seen: bool,
    pdc: Option<Pdc>,
    sink: &mut impl Sink,
) -> Result<(), IngestError> {
    if !records_seen {
        return Err(IngestError::Document { line, reason });
    }
    if let Some(open) = pdc {
        if open.line != line {
            sink.reject(Rejected {
                line: open.line,
                reason: "record interrupted by malformed XML".into(),
            });
        }
    }
    sink.reject(Rejected {
        line,
        reason: format!("{reason}; the rest of the document was not read"),
    });
    Ok(())
}

/// Text inside the innermost open element; an error makes the whole document unusable.
fn on_text(
    stack: &[Open],
    text: Result<&str, String>,
    step_min: &mut Option<u16>,
    prm: &mut Option<Result<String, String>>,
    pdc: &mut Option<Pdc>,
) -> Result<(), String> {
    let (Some(leaf), Some(parent)) = (
        stack.last(),
        stack.len().checked_sub(2).and_then(|i| stack.get(i)),
    ) else {
        return Ok(());
    };
    if leaf.foreign {
        return Ok(());
    }
    match (parent.name.as_slice(), leaf.name.as_slice()) {
        (b"En_Tete_Flux", b"Pas_Publication") => {
            let step = text
                .ok()
                .and_then(|t| parse_i32(t.trim().as_bytes()))
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| CURVE_STEPS_MIN.contains(s));
            match step {
                Some(s) => *step_min = Some(s),
                None => {
                    return Err(
                        "Pas_Publication is not a step of 5, 10, 15, 30 or 60 minutes".into(),
                    )
                }
            }
        }
        (b"PRM", b"Id_PRM") => {
            if prm.as_ref().is_some_and(Result::is_err) {
                return Ok(());
            }
            *prm = Some(text.and_then(|t| check_prm(t.trim().as_bytes()).map(str::to_owned)));
        }
        (b"PDC", field) => {
            let Some(open) = pdc.as_mut() else {
                return Ok(());
            };
            let text = text.map(str::trim);
            match field {
                b"H" => {
                    open.h = Some(text.and_then(|t| {
                        parse_rfc3339(t.as_bytes()).map_err(|e| format!("<H> {t:?}: {e}"))
                    }));
                }
                b"V" => {
                    open.v = Some(text.and_then(|t| {
                        parse_i32(t.as_bytes())
                            .ok_or_else(|| format!("<V> {t:?} is not a 32-bit integer"))
                    }));
                }
                b"IV" => {
                    open.iv = Some(text.and_then(|t| match parse_i32(t.as_bytes()) {
                        Some(0) => Ok(Quality::Measured),
                        Some(_) => Ok(Quality::Estimated),
                        None => Err(format!("<IV> {t:?} is not an integer")),
                    }));
                }
                _ => {}
            }
        }
        _ => {}
    }
    Ok(())
}

fn finish(
    record: Pdc,
    prm: Option<&Result<String, String>>,
    step_min: u16,
    channel: Channel,
    sink: &mut impl Sink,
) {
    let line = record.line;
    let point = (|| -> Result<(&str, Point), String> {
        if let Some(broken) = record.broken {
            return Err(broken);
        }
        let meter = match prm {
            Some(Ok(id)) => id.as_str(),
            Some(Err(e)) => return Err(e.clone()),
            None => return Err("no Id_PRM before the record".into()),
        };
        let end = record.h.ok_or("missing <H>")??;
        let value = record.v.ok_or("missing <V>")??;
        let quality = record.iv.unwrap_or(Ok(Quality::Measured))?;
        let point = Point {
            ts_utc: end - 60 * i64::from(step_min),
            value,
            step_min,
            quality,
        };
        check_point(channel, &point)?;
        Ok((meter, point))
    })();
    match point {
        Ok((meter, point)) => sink.point(line, meter, channel, point),
        Err(reason) => sink.reject(Rejected { line, reason }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{parse as parse_any, Format, Parsed};

    const R50_DST: &[u8] = include_bytes!("../../../tests/data/r50_dst.xml");

    fn parse_r50(input: &[u8]) -> Result<Parsed, IngestError> {
        parse_any(input, Format::R50, Channel::CONSUMPTION)
    }

    const HEADER: &str = "<?xml version=\"1.0\"?>\n<R50><En_Tete_Flux><Pas_Publication>30</Pas_Publication></En_Tete_Flux>\n<PRM><Id_PRM>12345678901234</Id_PRM><Donnees_Releve>\n";

    #[test]
    fn r50_days_across_both_dst_changes_read_end_of_interval_timestamps() {
        assert_eq!(Format::detect(R50_DST), Format::R50);
        let parsed = parse_r50(R50_DST).unwrap();
        assert_eq!(parsed.rejected, []);
        assert_eq!(parsed.rows.len(), 50 + 46);
        let (autumn, spring): (Vec<_>, Vec<_>) =
            parsed.rows.iter().partition(|r| r.0 == "12345678901234");
        assert_eq!(autumn.len(), 50);
        assert_eq!(spring.len(), 46);
        // H 2023-10-29T00:30:00+02:00 is the end of the interval starting 2023-10-28T22:00Z.
        assert_eq!(autumn[0].2.ts_utc, 1_698_530_400);
        for w in autumn.windows(2).chain(spring.windows(2)) {
            assert_eq!(w[1].2.ts_utc - w[0].2.ts_utc, 1800);
        }
        assert_eq!(autumn[49].2.ts_utc, 1_698_530_400 + 49 * 1800);
        let estimated: Vec<usize> = autumn
            .iter()
            .enumerate()
            .filter(|(_, r)| r.2.quality == Quality::Estimated)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(estimated, [20, 21]);
        assert!(parsed
            .rows
            .iter()
            .all(|r| r.2.step_min == 30 && r.1 == Channel::CONSUMPTION));
    }

    #[test]
    fn a_pdc_with_a_broken_element_is_rejected_with_its_line_and_the_others_kept() {
        let doc = format!(
            "{HEADER}<PDC><H>2024-01-01T00:30:00+01:00</H><V>476</V><IV>0</IV></PDC>\n\
             <PDC><H>2024-01-01T01:00:00+01:00</H><V>4x6</V><IV>0</IV></PDC>\n\
             <PDC><H>2024-01-01T01:30:00+01:00</H><V>5</X><IV>0</IV></PDC>\n\
             <PDC><V>500</V><IV>0</IV></PDC>\n\
             <PDC>\n<H>2024-01-01T02:15:00+01:00</H><V>500</V></PDC>\n\
             <PDC><H>2024-01-01T02:30:00</H><V>1</V></PDC>\n\
             <PDC><H>2024-01-01T03:00:00+01:00</H><V/></PDC>\n\
             <PDC><H>2024-01-01T03:30:00+01:00</H><V>600</V><IV>2</IV></PDC>\n\
             </Donnees_Releve></PRM></R50>\n"
        );
        let parsed = parse_r50(doc.as_bytes()).unwrap();
        let rejected: Vec<(u64, &str)> = parsed
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(rejected.len(), 6, "{rejected:?}");
        assert_eq!(
            rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
            [5, 6, 7, 8, 10, 11]
        );
        assert!(rejected[0].1.contains("<V> \"4x6\""), "{}", rejected[0].1);
        assert!(
            rejected[1].1.contains("expected </V>, found </X>"),
            "{}",
            rejected[1].1
        );
        assert!(rejected[2].1.contains("missing <H>"), "{}", rejected[2].1);
        assert!(rejected[3].1.contains("not aligned"), "{}", rejected[3].1);
        assert!(rejected[4].1.contains("UTC offset"), "{}", rejected[4].1);
        assert!(rejected[5].1.contains("empty <V>"), "{}", rejected[5].1);
        let rows: Vec<(i64, i32, Quality)> = parsed
            .rows
            .iter()
            .map(|r| (r.2.ts_utc, r.2.value, r.2.quality))
            .collect();
        assert_eq!(
            rows,
            [
                (1_704_063_600, 476, Quality::Measured),
                (1_704_074_400, 600, Quality::Estimated)
            ]
        );
    }

    #[test]
    fn a_repeated_h_v_or_iv_rejects_its_record() {
        let doc = format!(
            "{HEADER}<PDC><H>2024-01-01T00:30:00+01:00</H><H>2024-01-01T05:30:00+01:00</H><V>1</V></PDC>\n\
             <PDC><H>2024-01-01T01:00:00+01:00</H><V>2</V><V>3</V></PDC>\n\
             <PDC><H>2024-01-01T01:30:00+01:00</H><V>4</V><IV>0</IV><IV>1</IV></PDC>\n\
             <PDC><H>2024-01-01T02:00:00+01:00</H><V>5</V></PDC>\n\
             </Donnees_Releve></PRM></R50>\n"
        );
        let parsed = parse_r50(doc.as_bytes()).unwrap();
        let rejected: Vec<(u64, &str)> = parsed
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(
            rejected,
            [
                (4, "more than one <H>"),
                (5, "more than one <V>"),
                (6, "more than one <IV>")
            ]
        );
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].2.value, 5);
        let two_ids = format!(
            "{HEADER}</Donnees_Releve><Id_PRM>12345678901235</Id_PRM><Donnees_Releve>\n\
             <PDC><H>2024-01-01T00:30:00+01:00</H><V>1</V></PDC>\n</Donnees_Releve></PRM></R50>"
        );
        let parsed = parse_r50(two_ids.as_bytes()).unwrap();
        assert_eq!(parsed.rows.len(), 0);
        assert!(parsed.rejected[0].reason.contains("more than one <Id_PRM>"));
    }

    #[test]
    fn elements_of_another_namespace_are_rejected_and_not_read() {
        let doc = format!(
            "{HEADER}<x:PDC xmlns:x=\"urn:other\"><H>2024-01-01T00:30:00+01:00</H><V>1</V></x:PDC>\n\
             <PDC xmlns=\"urn:other\"><H>2024-01-01T01:00:00+01:00</H><V>2</V></PDC>\n\
             <PDC><H>2024-01-01T01:30:00+01:00</H><y:V xmlns:y=\"urn:other\">3</y:V><V>3</V></PDC>\n\
             <PDC><H>2024-01-01T02:00:00+01:00</H><V>4</V></PDC>\n\
             <z:Extra xmlns:z=\"urn:other\"><PDC><H>2024-01-01T02:30:00+01:00</H><V>5</V></PDC></z:Extra>\n\
             </Donnees_Releve></PRM></R50>\n"
        );
        let parsed = parse_r50(doc.as_bytes()).unwrap();
        let rejected: Vec<u64> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(rejected, [4, 5, 6, 8], "{:?}", parsed.rejected);
        for r in &parsed.rejected {
            assert!(r.reason.contains("namespace urn:other"), "{}", r.reason);
        }
        let values: Vec<i32> = parsed.rows.iter().map(|r| r.2.value).collect();
        assert_eq!(values, [4]);
        let foreign_root = "<R50 xmlns=\"urn:other\"><En_Tete_Flux><Pas_Publication>30\
                            </Pas_Publication></En_Tete_Flux></R50>";
        let err = parse_r50(foreign_root.as_bytes()).unwrap_err();
        assert!(
            matches!(&err, IngestError::Document { line: 1, reason } if reason.contains("urn:other")),
            "{err}"
        );
        // The namespace of attributes (xsi in Enedis files) is not an element's.
        let with_xsi = HEADER.replace(
            "<R50>",
            "<R50 xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">",
        );
        let doc = format!(
            "{with_xsi}<PDC><H>2024-01-01T00:30:00+01:00</H><V>1</V></PDC>\n</Donnees_Releve></PRM></R50>"
        );
        assert_eq!(parse_r50(doc.as_bytes()).unwrap().rows.len(), 1);
    }

    #[test]
    fn nesting_past_the_limit_leaves_the_rest_unread() {
        let deep = "<a>".repeat(200_000);
        let after_records =
            format!("{HEADER}<PDC><H>2024-01-01T00:30:00+01:00</H><V>1</V></PDC>\n{deep}");
        let parsed = parse_r50(after_records.as_bytes()).unwrap();
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rejected.len(), 1);
        assert_eq!(parsed.rejected[0].line, 5);
        assert!(
            parsed.rejected[0].reason.contains("more than 32 deep"),
            "{}",
            parsed.rejected[0].reason
        );
        let before_records = format!("<R50>{deep}");
        assert!(matches!(
            parse_r50(before_records.as_bytes()),
            Err(IngestError::Document { line: 1, .. })
        ));
    }

    #[test]
    fn a_text_over_the_event_limit_leaves_the_rest_unread() {
        let long = "1".repeat(usize::try_from(MAX_EVENT_BYTES).unwrap() + 10);
        let doc = format!(
            "{HEADER}<PDC><H>2024-01-01T00:30:00+01:00</H><V>1</V></PDC>\n\
             <PDC><H>2024-01-01T01:00:00+01:00</H><V>{long}</V></PDC>\n\
             <PDC><H>2024-01-01T01:30:00+01:00</H><V>3</V></PDC>\n\
             </Donnees_Releve></PRM></R50>\n"
        );
        let parsed = parse_r50(doc.as_bytes()).unwrap();
        assert_eq!(parsed.rows.len(), 1);
        let lines: Vec<u64> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [5], "{:?}", parsed.rejected);
        assert!(parsed.rejected[0].reason.contains("more than 65536 bytes"));
        assert!(parsed.rejected[0].reason.contains("not read"));
        // A comment over the limit, outside any record, also stops the document.
        let comment = format!("{HEADER}<!--{long}-->\n</Donnees_Releve></PRM></R50>");
        assert!(matches!(
            parse_r50(comment.as_bytes()),
            Err(IngestError::Document { line: 4, .. })
        ));
    }

    #[test]
    fn a_bad_prm_rejects_its_records_only() {
        let doc = format!(
            "{HEADER}<PDC><H>2024-01-01T00:30:00+01:00</H><V>1</V></PDC>\n</Donnees_Releve></PRM>\n\
             <PRM><Id_PRM>123</Id_PRM><Donnees_Releve>\n<PDC><H>2024-01-01T00:30:00+01:00</H><V>2</V></PDC>\n\
             </Donnees_Releve></PRM></R50>"
        );
        let parsed = parse_r50(doc.as_bytes()).unwrap();
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rejected.len(), 1);
        assert_eq!(parsed.rejected[0].line, 7);
        assert!(parsed.rejected[0].reason.contains("14 digits"));
    }

    #[test]
    fn unusable_documents_are_errors_not_rejections() {
        for (doc, line) in [
            ("<R50><En_Tete_Flux><Pas_Publication>30</Pas_Publication>\n<PRM></Oops></R50>", 2),
            ("<R151><PRM/></R151>", 1),
            ("<R50>\n<PRM><Id_PRM>12345678901234</Id_PRM><Donnees_Releve>\n<PDC><H>2024-01-01T00:30:00+01:00</H><V>1</V></PDC>", 3),
            ("<R50><En_Tete_Flux><Pas_Publication>20</Pas_Publication></En_Tete_Flux></R50>", 1),
            ("<R50><En_Tete_Flux><Pas_Publication>30</Pas_Publication></En_Tete_Flux>\n<PRM", 2),
            ("", 1),
            ("<?xml version=\"1.0\"?>", 1),
            ("<R50/>", 1),
        ] {
            let err = parse_r50(doc.as_bytes()).unwrap_err();
            assert!(
                matches!(&err, IngestError::Document { line: l, .. } if *l == line),
                "{doc:?}: {err}"
            );
        }
    }

    #[test]
    fn malformed_xml_after_records_keeps_them_and_rejects_the_rest() {
        let doc = format!(
            "{HEADER}<PDC><H>2024-01-01T00:30:00+01:00</H><V>1</V></PDC>\n\
             <PDC><H>2024-01-01T01:00:00+01:00</H><V>2</V></PDC>\n\
             <PDC><H>2024-01-01T01:30:00+01:00</H><V>3</V></PDC></Donnees_Releve></Nope>\n\
             <PDC><H>2024-01-01T02:00:00+01:00</H><V>4</V></PDC>\n"
        );
        let parsed = parse_r50(doc.as_bytes()).unwrap();
        assert_eq!(parsed.rows.len(), 3);
        assert_eq!(parsed.rejected.len(), 1);
        assert_eq!(parsed.rejected[0].line, 6);
        assert!(parsed.rejected[0].reason.contains("not read"));
        let whole = format!(
            "{HEADER}<PDC><H>2024-01-01T00:30:00+01:00</H><V>1</V></PDC>\n\
             <PDC><H>2024-01-01T01:00:00+01:00</H><V>2</V></PDC>\n\
             <PDC><H>2024-01-01T01:30:00+01:00</H><V>3</V></PDC>\n\
             </Donnees_Releve></PRM></R50>\n"
        );
        let cut = whole.find("<V>3").unwrap();
        let parsed = parse_r50(&whole.as_bytes()[..cut]).unwrap();
        assert_eq!(parsed.rows.len(), 2);
        let lines: Vec<u64> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [6], "{:?}", parsed.rejected);
        assert!(parsed.rejected[0]
            .reason
            .contains("document ends inside <PDC>"));
    }

    #[test]
    fn a_second_root_after_records_is_reported_and_the_records_kept() {
        let doc = format!(
            "{HEADER}<PDC><H>2024-01-01T00:30:00+01:00</H><V>1</V></PDC>\n\
             </Donnees_Releve></PRM></R50>\n<R50>\n"
        );
        let parsed = parse_r50(doc.as_bytes()).unwrap();
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rejected.len(), 1);
        assert_eq!(parsed.rejected[0].line, 6);
        assert!(parsed.rejected[0].reason.contains("second root"));
        let empty_second_root = doc.replace("<R50>\n", "<R50/>\n");
        let parsed = parse_r50(empty_second_root.as_bytes()).unwrap();
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rejected[0].line, 6);
    }

    #[test]
    fn every_prefix_of_an_r50_document_parses_without_panicking() {
        let doc = format!(
            "{HEADER}<PDC><H>2024-01-01T00:30:00+01:00</H><V>1</V><IV>0</IV></PDC>\n\
             <PDC><H>2024-01-01T01:00:00+01:00</H><V>2</V></PDC>\n</Donnees_Releve></PRM></R50>\n"
        );
        for end in 0..doc.len() {
            if let Ok(parsed) = parse_r50(&doc.as_bytes()[..end]) {
                assert!(parsed.rows.len() <= 2);
            }
        }
        assert_eq!(parse_r50(doc.as_bytes()).unwrap().rows.len(), 2);
    }

    #[test]
    fn the_vendored_r50_sample_parses_whole() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/enedis/R50.xml");
        let input = std::fs::read(path).expect("vendored fixture (tests/data/enedis)");
        let parsed = parse_r50(&input).unwrap();
        assert_eq!(parsed.rejected, []);
        assert_eq!(parsed.rows.len(), 48);
        let first = &parsed.rows[0];
        assert_eq!(first.0, "09111642617347");
        // H 2022-02-02T00:30:00+01:00: the interval starts 2022-02-01T23:00:00Z.
        assert_eq!((first.2.ts_utc, first.2.value), (1_643_756_400, 476));
        assert!(parsed.rows.iter().all(|r| r.2.quality == Quality::Measured));
        assert!(parsed.rows.iter().all(|r| r.2.step_min == 30));
        // H 2022-02-03T00:00:00+01:00, V 616: the last half hour starts 2022-02-02T22:30:00Z.
        let last = &parsed.rows[47].2;
        assert_eq!((last.ts_utc, last.value), (1_643_841_000, 616));
        let total: i64 = parsed.rows.iter().map(|r| i64::from(r.2.value)).sum();
        assert_eq!(total, 41_362, "the sum of every <V> of the file");
    }
}

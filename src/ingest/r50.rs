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
//! A `<PDC>` with a missing or unreadable `H` or `V`, or with a mismatched end tag inside it, is
//! rejected with the line of its `<PDC>` and the rest is read. A well-formedness error before the
//! first `<PDC>`, a root other than `R50`, or a missing or unsupported `Pas_Publication` makes the
//! whole document unusable; a well-formedness error after records have been read rejects the
//! record it interrupts and reports the rest of the document as unread at the error's line.

use quick_xml::events::Event;
use quick_xml::Reader;

use super::time::parse_rfc3339;
use super::{
    check_prm, check_step_and_alignment, parse_i32, IngestError, Rejected, Sink, CURVE_STEPS_MIN,
};
use crate::{Channel, Point, Quality};

/// Line numbers of byte offsets, counted incrementally (offsets mostly increase).
struct Lines<'a> {
    input: &'a [u8],
    pos: usize,
    line: u64,
}

impl Lines<'_> {
    fn at(&mut self, offset: u64) -> u64 {
        let offset = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.input.len());
        if offset < self.pos {
            self.pos = 0;
            self.line = 1;
        }
        let newlines = self
            .input
            .get(self.pos..offset)
            .unwrap_or_default()
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.line += newlines as u64;
        self.pos = offset;
        self.line
    }
}

/// The record being read.
struct Pdc {
    line: u64,
    h: Option<Result<i64, String>>,
    v: Option<Result<i32, String>>,
    iv: Option<Result<Quality, String>>,
    broken: Option<String>,
}

pub(crate) fn parse(
    input: &[u8],
    channel: Channel,
    sink: &mut impl Sink,
) -> Result<(), IngestError> {
    let mut reader = Reader::from_reader(input);
    // End tags are matched here, so that a mismatch inside a record rejects only that record.
    reader.config_mut().check_end_names = false;
    reader.config_mut().trim_text(true);
    let mut lines = Lines {
        input,
        pos: 0,
        line: 1,
    };
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut step_min: Option<u16> = None;
    let mut prm: Option<Result<String, String>> = None;
    let mut pdc: Option<Pdc> = None;
    let mut records_seen = false;
    let mut root_seen = false;

    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => {
                let line = lines.at(reader.error_position());
                let reason = format!("XML not well-formed: {e}");
                return unreadable_rest(line, reason, records_seen, pdc, sink);
            }
        };
        match event {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_vec();
                let line = lines.at(reader.buffer_position().saturating_sub(1));
                if stack.is_empty() && root_seen {
                    let reason = "XML not well-formed: a second root element".to_owned();
                    return unreadable_rest(line, reason, records_seen, pdc, sink);
                }
                root_seen = true;
                if stack.is_empty() && name != b"R50" {
                    return Err(IngestError::Document {
                        line,
                        reason: format!(
                            "not an R50 flow (root element <{}>)",
                            String::from_utf8_lossy(&name)
                        ),
                    });
                }
                match name.as_slice() {
                    b"PDC" => {
                        if step_min.is_none() {
                            return Err(IngestError::Document {
                                line,
                                reason: "En_Tete_Flux/Pas_Publication is missing before the first \
                                         record"
                                    .into(),
                            });
                        }
                        if let Some(open) = pdc.take() {
                            sink.reject(Rejected {
                                line: open.line,
                                reason: "record not closed before the next <PDC>".into(),
                            });
                        }
                        records_seen = true;
                        pdc = Some(Pdc {
                            line,
                            h: None,
                            v: None,
                            iv: None,
                            broken: None,
                        });
                    }
                    b"PRM" => prm = None,
                    _ => {}
                }
                stack.push(name);
            }
            Event::Empty(e) => {
                let line = lines.at(reader.buffer_position().saturating_sub(1));
                if stack.is_empty() {
                    let reason = if root_seen {
                        "XML not well-formed: a second root element"
                    } else {
                        "no R50 content: the root element is empty"
                    };
                    return unreadable_rest(line, reason.to_owned(), records_seen, pdc, sink);
                }
                let name = e.local_name();
                if let Some(open) = pdc.as_mut() {
                    if matches!(name.as_ref(), b"H" | b"V" | b"IV") {
                        open.broken.get_or_insert_with(|| {
                            format!("empty <{}>", String::from_utf8_lossy(name.as_ref()))
                        });
                    }
                } else if name.as_ref() == b"PDC" {
                    sink.reject(Rejected {
                        line,
                        reason: "empty record <PDC/>".into(),
                    });
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| format!("unreadable text: {e}"));
                on_text(
                    &stack,
                    text.as_deref().map_err(String::clone),
                    &mut step_min,
                    &mut prm,
                    &mut pdc,
                    &mut lines,
                    &reader,
                )?;
            }
            Event::CData(c) => {
                let text = std::str::from_utf8(&c).map_err(|_| "text is not UTF-8".to_owned());
                on_text(
                    &stack,
                    text,
                    &mut step_min,
                    &mut prm,
                    &mut pdc,
                    &mut lines,
                    &reader,
                )?;
            }
            Event::End(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                if stack.last().is_some_and(|top| top == name) {
                    stack.pop();
                } else if let Some(depth) = stack.iter().rposition(|open| open == name) {
                    // A mismatched end tag: the elements opened since are cut short.
                    if let Some(open) = pdc.as_mut() {
                        let expected = stack
                            .last()
                            .map(|t| String::from_utf8_lossy(t).into_owned());
                        open.broken.get_or_insert_with(|| {
                            format!(
                                "malformed element: expected </{}>, found </{}>",
                                expected.unwrap_or_default(),
                                String::from_utf8_lossy(name)
                            )
                        });
                    }
                    stack.truncate(depth);
                } else if let Some(open) = pdc.as_mut() {
                    // Inside a record, a stray end tag closes the innermost element.
                    let expected = stack.pop().unwrap_or_default();
                    open.broken.get_or_insert_with(|| {
                        format!(
                            "malformed element: expected </{}>, found </{}>",
                            String::from_utf8_lossy(&expected),
                            String::from_utf8_lossy(name)
                        )
                    });
                } else {
                    let line = lines.at(reader.buffer_position().saturating_sub(1));
                    let reason = format!(
                        "XML not well-formed: end tag </{}> matches no open element",
                        String::from_utf8_lossy(name)
                    );
                    return unreadable_rest(line, reason, records_seen, pdc, sink);
                }
                if name == b"PDC" {
                    if let (Some(record), Some(step)) = (pdc.take(), step_min) {
                        finish(record, prm.as_ref(), step, channel, sink);
                    }
                }
            }
            Event::Eof => {
                if let Some(open) = stack.last() {
                    let line = lines.at(reader.buffer_position());
                    let reason =
                        format!("document ends inside <{}>", String::from_utf8_lossy(open));
                    return unreadable_rest(line, reason, records_seen, pdc, sink);
                }
                if !records_seen && step_min.is_none() {
                    return Err(IngestError::Document {
                        line: lines.at(reader.buffer_position()),
                        reason: "no R50 content".into(),
                    });
                }
                return Ok(());
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
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

fn on_text(
    stack: &[Vec<u8>],
    text: Result<&str, String>,
    step_min: &mut Option<u16>,
    prm: &mut Option<Result<String, String>>,
    pdc: &mut Option<Pdc>,
    lines: &mut Lines<'_>,
    reader: &Reader<&[u8]>,
) -> Result<(), IngestError> {
    let (Some(leaf), Some(parent)) = (
        stack.last(),
        stack.len().checked_sub(2).and_then(|i| stack.get(i)),
    ) else {
        return Ok(());
    };
    match (parent.as_slice(), leaf.as_slice()) {
        (b"En_Tete_Flux", b"Pas_Publication") => {
            let step = text
                .ok()
                .and_then(|t| parse_i32(t.trim().as_bytes()))
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| CURVE_STEPS_MIN.contains(s));
            match step {
                Some(s) => *step_min = Some(s),
                None => {
                    return Err(IngestError::Document {
                        line: lines.at(reader.buffer_position()),
                        reason: "Pas_Publication is not a step of 5, 10, 15, 30 or 60 minutes"
                            .into(),
                    })
                }
            }
        }
        (b"PRM", b"Id_PRM") => {
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
        let ts_utc = end - 60 * i64::from(step_min);
        check_step_and_alignment(channel, ts_utc, step_min)?;
        Ok((
            meter,
            Point {
                ts_utc,
                value,
                step_min,
                quality,
            },
        ))
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

    const R50_DST: &[u8] = include_bytes!("../../tests/data/r50_dst.xml");

    fn parse_r50(input: &[u8]) -> Result<Parsed, IngestError> {
        parse_any(input, Format::R50, Channel::Consumption)
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
            .all(|r| r.2.step_min == 30 && r.1 == Channel::Consumption));
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
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/enedis/R50.xml");
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

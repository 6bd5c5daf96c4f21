//! Reading meter data from the outside world: the native CSV, Enedis R50 (load curves) and R151
//! (daily indexes and maximum power) XML flows, the Enedis SGE CSV export (load curve, daily
//! indexes, daily maximum power, daily energy) and Data Connect JSON documents, into
//! `(meter, channel, point)` rows and daily `(meter, register or daily energy, point)` rows; and
//! writing the native CSV.
//!
//! Parsing is record by record: a record that cannot be read is reported as [`Rejected`] with its
//! line (1-based; the CSV header is line 1; for XML, the line where the record's element starts:
//! `<PDC>` in R50, a class or `<Puissance_Maximale>` in R151; for Data Connect, the line where the
//! `interval_reading` element starts) and the rest of the input is still read. An [`IngestError`]
//! means the whole document is unusable: a missing or wrong CSV header, XML that is not
//! well-formed before its first record, a document that is not of its format, a unit or kind of
//! data Courbe does not read.
//!
//! | format | record | stored as |
//! |---|---|---|
//! | native CSV | line | the channel asked for |
//! | R50 | `<PDC>` | the channel asked for, `ts` = `H` − step |
//! | R151 | `Classe_Temporelle` / `_Distributeur` | index of register `ID` / `DIST_ID` at the Paris midnight starting `Date_Releve` |
//! | R151 | `Puissance_Maximale` | `max_power` at that midnight (the flow has no instant) |
//! | SGE export, `Courbe de charge` | line | the channel asked for, `ts` = `Horodate` − step |
//! | SGE export, `Index` | line (one point per register cell) | index of the register its calendar class names, at `Horodate` |
//! | SGE export, `Puissance maximale quotidienne` | line | `max_power` at `Horodate` |
//! | SGE export, `Energie quotidienne` | line | daily energy at the day's Paris midnight |
//! | Data Connect, `aggregate` `average` | `interval_reading` element | the channel asked for (consumption or production), `ts` = `date` − `interval_length` |
//! | Data Connect, `sum` (P1D) | `interval_reading` element | daily energy at the Paris midnight of `date` |
//! | Data Connect, `maximum` | `interval_reading` element | `max_power` at `date` |
//!
//! [`parse`] collects everything into a [`Parsed`]; [`parse_into`], [`parse_reader`] (any stream,
//! format detected) and [`parse_csv_reader`] hand rows to a [`Sink`] as they are read, with the
//! meter id borrowed, so a caller can fill an engine batch without an allocation per row.
//!
//! ```
//! use courbe::ingest::{parse, Format};
//! use courbe::Channel;
//! let csv = b"meter_id,ts,value_w,quality,step_min\n\
//!             09111642617347,2024-01-01T00:00:00+01:00,476,measured,30\n\
//!             09111642617347,2024-01-01T00:10:00+01:00,480\n";
//! let parsed = parse(csv, Format::detect(csv), Channel::CONSUMPTION).unwrap();
//! assert_eq!(parsed.rows.len(), 1);
//! assert_eq!(parsed.rows[0].2.ts_utc, 1_704_063_600);
//! assert_eq!(parsed.rejected[0].line, 3); // 00:10 is not aligned to a 30-minute step
//! ```

mod csv;
mod dataconnect;
mod price;
mod r151;
mod r50;
mod sge;
mod time;

use std::fmt;
use std::io;

use crate::{Channel, Point};

pub use self::csv::{parse_csv_reader, write_csv, CsvWriter};
pub use self::price::{parse_centi, parse_price_csv_into};
pub use self::time::{format_rfc3339_utc, parse_rfc3339};

/// Steps a curve may have, minutes.
pub const CURVE_STEPS_MIN: [u16; 5] = [5, 10, 15, 30, 60];
/// The step of a `max_power` point: one a day.
pub const MAX_POWER_STEP_MIN: u16 = 1440;
/// The instants a new point may start at: the engine's rule, stated where parsers check it.
pub use crate::engine::{MAX_TS_UTC, MIN_TS_UTC, TS_RANGE};
/// Longest meter id (the format's).
pub use storage_format::METER_ID_MAX_LEN;

/// A record that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based line where the record starts.
    pub line: u64,
    pub reason: String,
}

/// A daily series whose channel the store decides: daily energy, or the cumulative index of a
/// named register (the store assigns each register name its channel on first use).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Daily<S> {
    /// Wh consumed over one Europe/Paris day; `ts_utc` is that day's Paris midnight.
    Energy,
    /// Cumulative Wh of a register (`[A-Z0-9_]`, 1 to 16 characters) at an instant.
    Index(S),
}

impl Daily<&str> {
    pub fn to_owned(&self) -> Daily<String> {
        match self {
            Daily::Energy => Daily::Energy,
            Daily::Index(name) => Daily::Index((*name).to_owned()),
        }
    }
}

/// The step of a daily point (daily energy, index), minutes: nominal, also on 23- and 25-hour
/// days.
pub const DAILY_STEP_MIN: u16 = 1440;
/// Longest register name.
pub const REGISTER_NAME_MAX_LEN: usize = 16;
/// Prefix of the distributor's classes (R151 `Classe_Temporelle_Distributeur`), so that their
/// names never meet a supplier's class of the same id.
pub const DISTRIBUTOR_PREFIX: &str = "DIST_";

/// Everything read from one input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    pub rows: Vec<(String, Channel, Point)>,
    /// Daily energy and index readings, in input order.
    pub daily: Vec<(String, Daily<String>, Point)>,
    pub rejected: Vec<Rejected>,
}

/// The input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Native CSV: `meter_id,ts,value_w[,quality[,step_min]]` with a header.
    Csv,
    /// Enedis R50 XML flow (daily load curves).
    R50,
    /// Enedis SGE CSV export: sections, each a metadata header naming the PRM and the kind of
    /// data (`Type de donnees`: load curve, `Index`, daily maximum power, daily energy), then its
    /// lines.
    EnedisCsv,
    /// Enedis R151 XML flow (daily indexes per tariff class and daily maximum power).
    R151,
    /// Enedis Data Connect v5 metering JSON (`daily_consumption`, `consumption_load_curve`,
    /// `consumption_max_power`, `daily_production`, `production_load_curve`).
    DataConnect,
}

impl Format {
    /// XML when the first byte after an optional BOM and white space is `<` (R151 when the root
    /// element is `R151`, R50 otherwise); Data Connect JSON when it is `{`; the Enedis export
    /// when the first line is its metadata or `Horodate;Valeur` header; native CSV otherwise.
    pub fn detect(input: &[u8]) -> Format {
        let input = strip_bom(input);
        let start = input
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(input.len());
        let rest = input.get(start..).unwrap_or_default();
        if rest.first() == Some(&b'<') {
            return match xml_root(rest) {
                Some(b"R151") => Format::R151,
                _ => Format::R50,
            };
        }
        if rest.first() == Some(&b'{') {
            return Format::DataConnect;
        }
        let first_line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
        if first_line.starts_with(b"Identifiant PRM;") || first_line.starts_with(b"Horodate;") {
            Format::EnedisCsv
        } else {
            Format::Csv
        }
    }
}

/// The name of the root element of an XML document, when `input` reaches its start tag: the
/// declaration, processing instructions, comments and a doctype before it are skipped.
fn xml_root(input: &[u8]) -> Option<&[u8]> {
    let mut rest = input;
    loop {
        rest = rest.trim_ascii_start();
        if rest.starts_with(b"<?") {
            let end = find(rest, b"?>")?;
            rest = rest.get(end + 2..)?;
        } else if rest.starts_with(b"<!--") {
            let end = find(rest, b"-->")?;
            rest = rest.get(end + 3..)?;
        } else if rest.starts_with(b"<!") {
            let end = rest.iter().position(|&b| b == b'>')?;
            rest = rest.get(end + 1..)?;
        } else if let Some(tag) = rest.strip_prefix(b"<") {
            let end = tag
                .iter()
                .position(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')?;
            return tag.get(..end);
        } else {
            return None;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The whole document is unusable.
#[derive(Debug)]
pub enum IngestError {
    /// The CSV header is missing or not the expected columns.
    Header { line: u64, reason: String },
    /// The document is not well-formed before its first record, or not of the expected kind.
    Document { line: u64, reason: String },
    /// Reading the input failed.
    Io(io::Error),
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IngestError::Header { line, reason } => write!(f, "line {line}: bad header: {reason}"),
            IngestError::Document { line, reason } => write!(f, "line {line}: {reason}"),
            IngestError::Io(e) => write!(f, "reading input: {e}"),
        }
    }
}

impl std::error::Error for IngestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IngestError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for IngestError {
    fn from(e: io::Error) -> Self {
        IngestError::Io(e)
    }
}

/// Where parsed rows go.
pub trait Sink {
    /// A record that was read; `line` is where it starts.
    fn point(&mut self, line: u64, meter: &str, channel: Channel, point: Point);
    /// A record that was not.
    fn reject(&mut self, rejected: Rejected);
    /// A daily energy or index reading. A sink that stores only channels rejects it.
    fn daily(&mut self, line: u64, meter: &str, daily: Daily<&str>, point: Point) {
        let _ = (meter, point);
        let what = match daily {
            Daily::Energy => "daily energy".to_owned(),
            Daily::Index(register) => format!("index of register {register}"),
        };
        self.reject(Rejected {
            line,
            reason: format!("{what}: daily readings are not accepted here"),
        });
    }
}

impl Sink for Parsed {
    fn point(&mut self, _line: u64, meter: &str, channel: Channel, point: Point) {
        // Consecutive rows mostly share their meter: clone the previous row's id (one exact-size
        // allocation) rather than building a new string from the bytes.
        let id = match self.rows.last() {
            Some((last, _, _)) if last == meter => last.clone(),
            _ => meter.to_owned(),
        };
        self.rows.push((id, channel, point));
    }

    fn reject(&mut self, rejected: Rejected) {
        self.rejected.push(rejected);
    }

    fn daily(&mut self, _line: u64, meter: &str, daily: Daily<&str>, point: Point) {
        self.daily.push((meter.to_owned(), daily.to_owned(), point));
    }
}

/// A sink that adds `offset` to the lines it passes on: a section of a document parsed on its
/// own reports the lines of the whole document.
pub(crate) struct OffsetSink<'s, S> {
    pub inner: &'s mut S,
    pub offset: u64,
}

impl<S: Sink> Sink for OffsetSink<'_, S> {
    fn point(&mut self, line: u64, meter: &str, channel: Channel, point: Point) {
        self.inner.point(line + self.offset, meter, channel, point);
    }

    fn reject(&mut self, rejected: Rejected) {
        self.inner.reject(Rejected {
            line: rejected.line + self.offset,
            reason: rejected.reason,
        });
    }

    fn daily(&mut self, line: u64, meter: &str, daily: Daily<&str>, point: Point) {
        self.inner.daily(line + self.offset, meter, daily, point);
    }
}

/// Reads a whole input.
pub fn parse(input: &[u8], format: Format, channel: Channel) -> Result<Parsed, IngestError> {
    let mut parsed = Parsed::default();
    parse_into(input, format, channel, &mut parsed)?;
    Ok(parsed)
}

/// Reads a whole input into `sink`. On an error, the sink may already have received rows: the
/// caller discards them (nothing is half-written).
pub fn parse_into(
    input: &[u8],
    format: Format,
    channel: Channel,
    sink: &mut impl Sink,
) -> Result<(), IngestError> {
    match format {
        Format::Csv => parse_csv_reader(strip_bom(input), channel, sink),
        Format::R50 => r50::parse(input, channel, sink),
        Format::EnedisCsv => sge::parse(strip_bom(input), channel, sink),
        Format::R151 => r151::parse(input, sink),
        Format::DataConnect => dataconnect::parse(strip_bom(input), channel, sink),
    }
}

/// Reads from a stream (a pipe, stdin, a large file), detecting the format from its first bytes.
/// Native CSV, R50 and R151 XML are read as they arrive, in memory bounded by their longest line
/// or element; the Enedis export and Data Connect JSON are read whole first (their documents are
/// per meter, hence small). Returns the format read.
pub fn parse_reader<R: io::BufRead>(
    mut input: R,
    channel: Channel,
    sink: &mut impl Sink,
) -> Result<Format, IngestError> {
    // Enough of the stream to see the first line (for XML, the root element): up to 4 KiB or the
    // end.
    let mut head = Vec::new();
    let seen = |head: &[u8]| {
        let text = strip_bom(head).trim_ascii_start();
        if text.first() == Some(&b'<') {
            xml_root(text).is_some()
        } else {
            head.contains(&b'\n')
        }
    };
    while head.len() < 4096 && !seen(&head) {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(4096 - head.len());
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
        input.consume(n);
    }
    let format = Format::detect(&head);
    match format {
        Format::Csv => {
            let head = strip_bom(&head);
            parse_csv_reader(io::Read::chain(head, input), channel, sink)?;
        }
        Format::R50 => {
            r50::parse(io::Read::chain(&head[..], input), channel, sink)?;
        }
        Format::R151 => {
            r151::parse(io::Read::chain(&head[..], input), sink)?;
        }
        Format::EnedisCsv | Format::DataConnect => {
            input.read_to_end(&mut head)?;
            parse_into(&head, format, channel, sink)?;
        }
    }
    Ok(format)
}

fn strip_bom(input: &[u8]) -> &[u8] {
    input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input)
}

/// Checks a PRM (French delivery point): exactly 14 digits.
pub fn check_prm(id: &[u8]) -> Result<&str, String> {
    if id.len() != 14 || !id.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "PRM {:?} is not 14 digits",
            String::from_utf8_lossy(id)
        ));
    }
    std::str::from_utf8(id).map_err(|_| "PRM is not UTF-8".to_owned())
}

/// Checks a parsed point: its start within [`MIN_TS_UTC`]..=[`MAX_TS_UTC`], its step and
/// alignment ([`check_step_and_alignment`]) and its value, a power that is never negative
/// (injection is the `production` channel, not negative consumption).
fn check_point(channel: Channel, point: &Point) -> Result<(), String> {
    if !(MIN_TS_UTC..=MAX_TS_UTC).contains(&point.ts_utc) {
        return Err(format!(
            "interval start {} is outside the supported range, {TS_RANGE}",
            format_rfc3339_utc(point.ts_utc)
        ));
    }
    check_step_and_alignment(channel, point.ts_utc, point.step_min)?;
    if point.value < 0 {
        return Err(format!(
            "negative value {} W: a {} power is never below 0",
            point.value,
            channel.as_str()
        ));
    }
    Ok(())
}

/// Checks a daily point (daily energy or index): its instant within [`MIN_TS_UTC`]..=
/// [`MAX_TS_UTC`], the daily step, a value never negative.
fn check_daily(daily: &Daily<&str>, point: &Point) -> Result<(), String> {
    if !(MIN_TS_UTC..=MAX_TS_UTC).contains(&point.ts_utc) {
        return Err(format!(
            "instant {} is outside the supported range, {TS_RANGE}",
            format_rfc3339_utc(point.ts_utc)
        ));
    }
    if point.step_min != DAILY_STEP_MIN {
        return Err(format!(
            "daily points have a step of {DAILY_STEP_MIN} minutes, not {}",
            point.step_min
        ));
    }
    if point.value < 0 {
        return Err(match daily {
            Daily::Energy => format!("negative daily energy {} Wh", point.value),
            Daily::Index(name) => format!("negative index {} Wh of register {name}", point.value),
        });
    }
    Ok(())
}

/// Checks a register name: 1 to [`REGISTER_NAME_MAX_LEN`] characters of `[A-Z0-9_]`.
pub fn check_register_name(name: &str) -> Result<&str, String> {
    if name.is_empty() || name.len() > REGISTER_NAME_MAX_LEN {
        return Err(format!(
            "register name {name:?} is not 1 to {REGISTER_NAME_MAX_LEN} characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "register name {name:?} has a character outside [A-Z0-9_] ({c:?})"
        ));
    }
    Ok(name)
}

/// Parses a non-negative decimal in `unit`, scaled by 1000 when `kilo` (kWh, kVA: at most three
/// fraction digits, so that the result is exact), into an `i32` of the base unit. `what` names
/// the value in the reasons.
fn parse_scaled(text: &str, kilo: bool, what: &str, unit: &str) -> Result<i32, String> {
    let text = text.trim();
    let (int, frac) = match text.split_once(['.', ',']) {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let digits_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok(int) || frac.is_some_and(|f| !digits_ok(f)) {
        return Err(format!("{what} {text:?} is not a non-negative number"));
    }
    let frac = frac.unwrap_or("");
    let scale_digits = if kilo { 3 } else { 0 };
    if frac.len() > scale_digits {
        return Err(format!(
            "{what} {text:?} {unit} is finer than a whole {}",
            unit.trim_start_matches('k')
        ));
    }
    let mut v: u128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        v = v.saturating_mul(10).saturating_add(u128::from(b - b'0'));
    }
    for _ in frac.len()..scale_digits {
        v = v.saturating_mul(10);
    }
    i32::try_from(v).map_err(|_| {
        format!(
            "{what} {text:?} {unit} is above the largest storable value, \
             2,147,483,647 {}",
            unit.trim_start_matches('k')
        )
    })
}

/// Checks a step and a timestamp against it: a curve step is one of [`CURVE_STEPS_MIN`] and its
/// interval starts are aligned to it in UTC; a `max_power` point has the daily step and any
/// instant.
fn check_step_and_alignment(channel: Channel, ts_utc: i64, step_min: u16) -> Result<(), String> {
    if channel == Channel::DAILY_ENERGY {
        if step_min != MAX_POWER_STEP_MIN {
            return Err(format!(
                "daily_energy points have a step of {MAX_POWER_STEP_MIN} minutes, not {step_min}"
            ));
        }
        if !crate::zone::is_paris_midnight(ts_utc) {
            return Err(format!(
                "{} is not the first instant of a Europe/Paris day",
                format_rfc3339_utc(ts_utc)
            ));
        }
        return Ok(());
    }
    if channel == Channel::MAX_POWER {
        if step_min != MAX_POWER_STEP_MIN {
            return Err(format!(
                "max_power points have a step of {MAX_POWER_STEP_MIN} minutes, not {step_min}"
            ));
        }
        return Ok(());
    }
    if !CURVE_STEPS_MIN.contains(&step_min) {
        return Err(format!(
            "step of {step_min} minutes (expected 5, 10, 15, 30 or 60)"
        ));
    }
    let step_s = 60 * i64::from(step_min);
    if ts_utc.rem_euclid(step_s) != 0 {
        return Err(format!(
            "{} is not aligned to the {step_min}-minute step",
            format_rfc3339_utc(ts_utc)
        ));
    }
    Ok(())
}

/// Parses a decimal integer into an `i32`, with an optional sign.
fn parse_i32(field: &[u8]) -> Option<i32> {
    let (negative, digits) = match field.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, field),
    };
    if digits.is_empty() || digits.len() > 10 {
        return None;
    }
    let mut v: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(b - b'0');
    }
    i32::try_from(if negative { -v } else { v }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{check_meter_id, MeterIdUse};

    #[test]
    fn formats_are_detected_from_the_first_bytes() {
        assert_eq!(
            Format::detect(b"  \n<?xml version=\"1.0\"?><R50/>"),
            Format::R50
        );
        assert_eq!(Format::detect(b"\xEF\xBB\xBF<R50/>"), Format::R50);
        assert_eq!(Format::detect(b"meter_id,ts,value_w\n"), Format::Csv);
        assert_eq!(Format::detect(b""), Format::Csv);
        assert_eq!(
            Format::detect(b"\xEF\xBB\xBFIdentifiant PRM;Type de donnees\n"),
            Format::EnedisCsv
        );
        assert_eq!(Format::detect(b"Horodate;Valeur\n"), Format::EnedisCsv);
    }

    #[test]
    fn r151_and_json_are_detected_by_their_root() {
        assert_eq!(
            Format::detect(b"<?xml version=\"1.0\"?>\n<!-- c -->\n<R151 xmlns:xsi=\"x\">"),
            Format::R151
        );
        assert_eq!(Format::detect(b"<R151>"), Format::R151);
        assert_eq!(Format::detect(b"<R1510>"), Format::R50);
        assert_eq!(
            Format::detect(b" {\"meter_reading\": {}}"),
            Format::DataConnect
        );
    }

    #[test]
    fn a_stream_is_detected_and_read_like_a_slice() {
        let inputs: [&[u8]; 5] = [
            include_bytes!("../../../tests/data/native_malformed.csv"),
            include_bytes!("../../../tests/data/r50_dst.xml"),
            include_bytes!("../../../tests/data/enedis_export.csv"),
            include_bytes!("../../../tests/data/enedis/R151.xml"),
            include_bytes!("../../../tests/data/enedis/Enedis_SGE_HDM_A06NW10D_excerpt.csv"),
        ];
        for input in inputs {
            let expected = parse(input, Format::detect(input), Channel::CONSUMPTION).unwrap();
            // A small buffer, so that detection and the CSV stream cross buffer boundaries.
            let reader = io::BufReader::with_capacity(5, input);
            let mut streamed = Parsed::default();
            let format = parse_reader(reader, Channel::CONSUMPTION, &mut streamed).unwrap();
            assert_eq!(format, Format::detect(input));
            assert_eq!(streamed, expected);
        }
        let mut bom = Parsed::default();
        let input = &b"\xEF\xBB\xBFmeter_id,ts,value_w\nm,2024-01-01T00:00:00Z,1\n"[..];
        parse_reader(input, Channel::CONSUMPTION, &mut bom).unwrap();
        assert_eq!(bom.rows.len(), 1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Raw bytes, and fixtures with a few bytes overwritten, never panic any parser, and
        /// every rejection names a line of the input.
        #[test]
        fn arbitrary_input_never_panics_and_rejections_name_real_lines(
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            which in 0usize..5,
            edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..6),
        ) {
            let fixtures: [&[u8]; 5] = [
                include_bytes!("../../../tests/data/native_dst.csv"),
                include_bytes!("../../../tests/data/r50_dst.xml"),
                include_bytes!("../../../tests/data/enedis_export.csv"),
                include_bytes!("../../../tests/data/enedis/R151.xml"),
                include_bytes!("../../../tests/data/enedis/Enedis_SGE_HDM_A06NW10D_excerpt.csv"),
            ];
            let mut mutated = fixtures[which].to_vec();
            for (at, byte) in edits {
                let at = at % mutated.len();
                mutated[at] = byte;
            }
            for input in [&raw[..], &mutated[..]] {
                let lines = input.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
                for format in [
                    Format::Csv,
                    Format::R50,
                    Format::EnedisCsv,
                    Format::R151,
                    Format::DataConnect,
                ] {
                    if let Ok(parsed) = parse(input, format, Channel::CONSUMPTION) {
                        for r in &parsed.rejected {
                            proptest::prop_assert!(r.line >= 1 && r.line <= lines, "{:?}", r);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn meter_ids_are_checked_for_length_and_charset() {
        let check_meter_id = |id| check_meter_id(id, MeterIdUse::New);
        assert_eq!(check_meter_id(b"A-1_b.2"), Ok("A-1_b.2"));
        assert!(check_meter_id(b"").is_err());
        assert!(check_meter_id(&[b'a'; 65]).is_err());
        assert!(check_meter_id(&[b'a'; 64]).is_ok());
        assert!(check_meter_id(b"a b").is_err());
        assert!(check_meter_id(b".a").is_ok());
        assert!(check_meter_id("é".as_bytes()).is_err());
        assert!(check_prm(b"09111642617347").is_ok());
        assert!(check_prm(b"0911164261734").is_err());
        assert!(check_prm(b"0911164261734A").is_err());
    }

    #[test]
    fn meter_ids_made_only_of_dots_are_refused() {
        for id in [&b"."[..], b"..", b"..."] {
            let reason = check_meter_id(id, MeterIdUse::New).unwrap_err();
            assert!(reason.contains("only dots"), "{reason}");
        }
    }

    #[test]
    fn points_outside_the_representable_years_are_refused_with_the_range() {
        let point = |ts_utc| Point {
            ts_utc,
            value: 1,
            step_min: 30,
            quality: crate::Quality::Measured,
        };
        let c = Channel::CONSUMPTION;
        assert!(check_point(c, &point(0)).is_ok());
        assert!(check_point(c, &point(MAX_TS_UTC + 1 - 1800)).is_ok());
        for ts in [-1800, MAX_TS_UTC + 1, 253_402_300_800 - 1800] {
            let reason = check_point(c, &point(ts)).unwrap_err();
            assert!(reason.contains(TS_RANGE), "{reason}");
        }
        assert_eq!(
            format_rfc3339_utc(MAX_TS_UTC + 1),
            "9999-01-01T00:00:00Z",
            "the range stated is the range checked"
        );
    }

    #[test]
    fn a_negative_power_is_refused_on_every_channel() {
        for (channel, step_min) in [
            (Channel::CONSUMPTION, 30),
            (Channel::PRODUCTION, 30),
            (Channel::MAX_POWER, 1440),
        ] {
            let point = Point {
                ts_utc: 1_704_063_600,
                value: -5,
                step_min,
                quality: crate::Quality::Measured,
            };
            let reason = check_point(channel, &point).unwrap_err();
            assert!(reason.contains("negative value -5"), "{reason}");
            assert!(check_point(channel, &Point { value: 0, ..point }).is_ok());
        }
    }

    #[test]
    fn integers_parse_with_sign_and_range_checks() {
        assert_eq!(parse_i32(b"476"), Some(476));
        assert_eq!(parse_i32(b"-12"), Some(-12));
        assert_eq!(parse_i32(b"+7"), Some(7));
        assert_eq!(parse_i32(b"2147483647"), Some(i32::MAX));
        assert_eq!(parse_i32(b"-2147483648"), Some(i32::MIN));
        assert_eq!(parse_i32(b"2147483648"), None);
        assert_eq!(parse_i32(b"99999999999"), None);
        assert_eq!(parse_i32(b""), None);
        assert_eq!(parse_i32(b"-"), None);
        assert_eq!(parse_i32(b"4.5"), None);
        assert_eq!(parse_i32(b" 4"), None);
    }

    #[test]
    fn steps_and_alignment_are_checked_per_channel() {
        let c = Channel::CONSUMPTION;
        assert!(check_step_and_alignment(c, 1_704_063_600, 30).is_ok());
        assert!(check_step_and_alignment(c, 1_704_063_600 + 600, 30).is_err());
        assert!(check_step_and_alignment(c, 1_704_063_600 + 600, 10).is_ok());
        assert!(check_step_and_alignment(c, 1_704_063_600, 20).is_err());
        assert!(check_step_and_alignment(Channel::MAX_POWER, 1_704_063_601, 1440).is_ok());
        assert!(check_step_and_alignment(Channel::MAX_POWER, 1_704_063_600, 30).is_err());
    }
}

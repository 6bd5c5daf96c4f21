//! The native CSV (`meter_id,ts,value_w[,quality[,step_min]]`, read and written) and the Enedis
//! CSV export (read).

use std::io::{self, BufRead, Write};

use super::time::{parse_rfc3339, write_rfc3339_utc};
use super::{
    check_point, check_prm, parse_i32, IngestError, Rejected, Sink, CURVE_STEPS_MIN,
    MAX_POWER_STEP_MIN,
};
use crate::engine::{check_meter_id, MeterIdUse};
use crate::{Channel, Point, Quality};

/// The native columns, in order; the last two are optional.
pub const CSV_COLUMNS: [&str; 5] = ["meter_id", "ts", "value_w", "quality", "step_min"];
const REQUIRED_COLUMNS: usize = 3;
const DEFAULT_STEP_MIN: u16 = 30;
/// Longest native CSV line read, bytes without its terminator. A full row with spaces around its
/// fields is under 200 bytes; a longer line is rejected without being held in memory.
pub const MAX_LINE_LEN: usize = 1024;

/// Reads native CSV from any reader, line by line (memory bounded by [`MAX_LINE_LEN`] besides
/// what the sink keeps). The first line that is not blank is the header, required; it names the
/// first 3 to 5 columns of `meter_id,ts,value_w,quality,step_min`, and a row has at least 3 fields
/// and at most as many as the header. An empty optional field takes its default (`measured`; 30
/// minutes, or 1440 for `max_power`). Fields are separated by commas and never quoted (no value
/// of the format holds a comma): a quote makes a bad line, and the next line is read as a line.
/// Blank lines are skipped; lines end with LF or CRLF.
pub fn parse_csv_reader<R: io::Read>(
    input: R,
    channel: Channel,
    sink: &mut impl Sink,
) -> Result<(), IngestError> {
    let mut lines = Lines::new(input);
    let mut text = Vec::with_capacity(256);
    let columns = loop {
        match lines.next_into(&mut text)? {
            None => {
                return Err(IngestError::Header {
                    line: 1,
                    reason: format!("empty input; expected the header {}", CSV_COLUMNS.join(",")),
                })
            }
            Some(Line::Blank) => continue,
            Some(Line::TooLong { number, len }) => {
                return Err(IngestError::Header {
                    line: number,
                    reason: format!("a first line of {len} bytes is not a header"),
                })
            }
            Some(Line::Text { number }) => break check_header(&text, number)?,
        }
    };
    let mut next_line = lines.next_number;
    let mut reader = lines.inner;
    // Rounds of chunks cut at line boundaries: a round is parsed on rayon's pool while the
    // previous one goes to the sink in input order, so line numbers stay exact and in order.
    let per_round = (rayon::current_num_threads() * 2).max(2);
    let mut carry = Vec::new();
    let mut pending: Option<Vec<ChunkOut>> = None;
    loop {
        let mut round = Vec::with_capacity(per_round);
        let mut failure = None;
        while round.len() < per_round {
            match read_piece(&mut reader, &mut carry) {
                Ok(Some(piece)) => round.push(piece),
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let last = round.is_empty() || failure.is_some();
        let parsed = std::thread::scope(|scope| {
            let parsing = scope.spawn(|| {
                use rayon::prelude::*;
                round
                    .par_iter()
                    .map(|piece| parse_piece(piece, columns, channel))
                    .collect::<Vec<ChunkOut>>()
            });
            if let Some(outs) = pending.take() {
                emit(outs, &mut next_line, channel, sink);
            }
            parsing.join()
        });
        match parsed {
            Ok(outs) => pending = Some(outs),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        if last {
            if let Some(outs) = pending.take() {
                emit(outs, &mut next_line, channel, sink);
            }
            return match failure {
                Some(e) => Err(e.into()),
                None => Ok(()),
            };
        }
    }
}

/// Bytes of input parsed as one task.
const PARSE_CHUNK: usize = 1 << 20;

/// A piece of the input: whole lines, or one line of at least [`PARSE_CHUNK`] bytes skipped.
enum Piece {
    Text(Vec<u8>),
    Long { len: u64 },
}

/// What one piece held, numbered from its first line (0).
#[derive(Default)]
struct ChunkOut {
    lines: u64,
    meters: Vec<String>,
    events: Vec<Event>,
}

enum Event {
    Point { line: u64, meter: u32, point: Point },
    Reject { line: u64, reason: String },
}

/// The next piece: `carry` (a line begun in the previous piece) and up to [`PARSE_CHUNK`] bytes,
/// cut after the last line feed (the rest goes back to `carry`); `None` at the end.
fn read_piece<R: io::Read>(
    reader: &mut io::BufReader<R>,
    carry: &mut Vec<u8>,
) -> io::Result<Option<Piece>> {
    let mut buf = std::mem::take(carry);
    let want = PARSE_CHUNK.saturating_sub(buf.len());
    io::Read::read_to_end(&mut io::Read::take(&mut *reader, want as u64), &mut buf)?;
    if buf.is_empty() {
        return Ok(None);
    }
    if buf.len() < PARSE_CHUNK {
        // The end of the input.
        return Ok(Some(Piece::Text(buf)));
    }
    if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
        carry.extend_from_slice(buf.get(i + 1..).unwrap_or_default());
        buf.truncate(i + 1);
        return Ok(Some(Piece::Text(buf)));
    }
    // A line of PARSE_CHUNK bytes or more: skipped to its end without being held.
    let mut len = buf.len() as u64;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        let end = chunk.iter().position(|&b| b == b'\n');
        let n = end.unwrap_or(chunk.len());
        len += n as u64;
        reader.consume(n + usize::from(end.is_some()));
        if end.is_some() {
            break;
        }
    }
    Ok(Some(Piece::Long { len }))
}

/// Parses a piece's lines as [`Lines`] and [`read_row`] do, numbering them from 0.
fn parse_piece(piece: &Piece, columns: usize, channel: Channel) -> ChunkOut {
    let mut out = ChunkOut::default();
    let text = match piece {
        Piece::Long { len } => {
            out.lines = 1;
            out.events.push(Event::Reject {
                line: 0,
                reason: format!("line of {len} bytes (at most {MAX_LINE_LEN})"),
            });
            return out;
        }
        Piece::Text(text) => text,
    };
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut last_meter = String::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line_no = i as u64;
        out.lines = line_no + 1;
        let len = line.len();
        let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
        if len > MAX_LINE_LEN + 1 || trimmed.len() > MAX_LINE_LEN {
            out.events.push(Event::Reject {
                line: line_no,
                reason: format!("line of {len} bytes (at most {MAX_LINE_LEN})"),
            });
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        match read_row(trimmed, columns, channel, &mut last_meter) {
            Ok(point) => {
                if out.meters.last() != Some(&last_meter) {
                    out.meters.push(last_meter.clone());
                }
                out.events.push(Event::Point {
                    line: line_no,
                    meter: (out.meters.len() - 1) as u32,
                    point,
                });
            }
            Err(reason) => out.events.push(Event::Reject {
                line: line_no,
                reason,
            }),
        }
    }
    out
}

/// Hands parsed pieces to the sink in input order; `next_line` is the number of the first line
/// of the first piece.
fn emit(outs: Vec<ChunkOut>, next_line: &mut u64, channel: Channel, sink: &mut impl Sink) {
    for out in outs {
        let base = *next_line;
        for event in out.events {
            match event {
                Event::Point { line, meter, point } => {
                    let meter = out.meters.get(meter as usize).map_or("", String::as_str);
                    sink.point(base + line, meter, channel, point);
                }
                Event::Reject { line, reason } => sink.reject(Rejected {
                    line: base + line,
                    reason,
                }),
            }
        }
        *next_line += out.lines;
    }
}

/// What [`Lines::next_into`] read.
enum Line {
    /// Nothing but a terminator (LF or CRLF).
    Blank,
    /// A line, without its terminator, is in the buffer.
    Text { number: u64 },
    /// A line over [`MAX_LINE_LEN`] bytes, skipped to its end.
    TooLong { number: u64, len: u64 },
}

/// Splits a stream into lines of at most [`MAX_LINE_LEN`] bytes, numbering them from 1.
struct Lines<R> {
    inner: io::BufReader<R>,
    next_number: u64,
}

impl<R: io::Read> Lines<R> {
    fn new(inner: R) -> Self {
        Lines {
            inner: io::BufReader::with_capacity(64 * 1024, inner),
            next_number: 1,
        }
    }

    /// Reads the next line into `text` (cleared first); `None` at the end of the input.
    fn next_into(&mut self, text: &mut Vec<u8>) -> io::Result<Option<Line>> {
        text.clear();
        let mut len: u64 = 0;
        let mut too_long = false;
        let mut read_any = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if !read_any {
                    return Ok(None);
                }
                break;
            }
            read_any = true;
            let end = chunk.iter().position(|&b| b == b'\n');
            let part = chunk.get(..end.unwrap_or(chunk.len())).unwrap_or_default();
            len += part.len() as u64;
            if !too_long {
                if text.len() + part.len() > MAX_LINE_LEN + 1 {
                    // One byte of slack keeps a CR before the LF of a line of MAX_LINE_LEN.
                    too_long = true;
                    text.clear();
                } else {
                    text.extend_from_slice(part);
                }
            }
            let consumed = part.len() + usize::from(end.is_some());
            self.inner.consume(consumed);
            if end.is_some() {
                break;
            }
        }
        let number = self.next_number;
        self.next_number += 1;
        if too_long {
            return Ok(Some(Line::TooLong { number, len }));
        }
        if text.last() == Some(&b'\r') {
            text.pop();
        }
        if text.len() > MAX_LINE_LEN {
            return Ok(Some(Line::TooLong { number, len }));
        }
        Ok(Some(if text.is_empty() {
            Line::Blank
        } else {
            Line::Text { number }
        }))
    }
}

/// The fields of a line: up to one more than [`CSV_COLUMNS`], and how many there were in all.
fn split_fields(line: &[u8]) -> ([&[u8]; CSV_COLUMNS.len() + 1], usize) {
    let mut fields: [&[u8]; CSV_COLUMNS.len() + 1] = [b""; CSV_COLUMNS.len() + 1];
    let mut n = 0;
    for field in line.split(|&b| b == b',') {
        if let Some(slot) = fields.get_mut(n) {
            *slot = field;
        }
        n += 1;
    }
    (fields, n)
}

fn trim(field: &[u8]) -> &[u8] {
    field.trim_ascii()
}

/// Checks the header (line `number`) and returns its number of columns.
fn check_header(line: &[u8], number: u64) -> Result<usize, IngestError> {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let (fields, n) = split_fields(line);
    let names: Vec<&[u8]> = fields.iter().take(n).map(|f| trim(f)).collect();
    let ok = (REQUIRED_COLUMNS..=CSV_COLUMNS.len()).contains(&n)
        && names
            .iter()
            .zip(CSV_COLUMNS)
            .all(|(name, expected)| name.eq_ignore_ascii_case(expected.as_bytes()));
    if ok {
        return Ok(n);
    }
    Err(IngestError::Header {
        line: number,
        reason: format!(
            "expected meter_id,ts,value_w[,quality[,step_min]], found {:?}",
            lossy(line)
        ),
    })
}

/// Reads one data row. On success `last_meter` holds the row's meter id (validated once per run
/// of rows of the same meter).
fn read_row(
    line: &[u8],
    columns: usize,
    channel: Channel,
    last_meter: &mut String,
) -> Result<Point, String> {
    if line.contains(&b'"') {
        return Err("a quote: native CSV fields are never quoted".into());
    }
    let (fields, n) = split_fields(line);
    if !(REQUIRED_COLUMNS..=columns).contains(&n) {
        return Err(format!(
            "{n} fields (expected {REQUIRED_COLUMNS} to {columns}, as the header)"
        ));
    }
    let field = |i: usize| trim(fields.get(i).copied().unwrap_or_default());
    let meter = field(0);
    if meter != last_meter.as_bytes() {
        let id = check_meter_id(meter, MeterIdUse::New)?;
        last_meter.clear();
        last_meter.push_str(id);
    }
    let ts = field(1);
    let ts_utc = parse_rfc3339(ts).map_err(|e| format!("ts {:?}: {e}", lossy(ts)))?;
    let value = field(2);
    let value = parse_i32(value)
        .ok_or_else(|| format!("value_w {:?} is not a 32-bit integer", lossy(value)))?;
    let quality = match field(3) {
        b"" | b"measured" => Quality::Measured,
        b"estimated" => Quality::Estimated,
        b"corrected" => Quality::Corrected,
        other => {
            return Err(format!(
                "quality {:?} (expected measured, estimated or corrected)",
                lossy(other)
            ))
        }
    };
    let step_min = match field(4) {
        b"" if matches!(channel, Channel::MAX_POWER | Channel::DAILY_ENERGY) => MAX_POWER_STEP_MIN,
        b"" => DEFAULT_STEP_MIN,
        step => parse_i32(step)
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| format!("step_min {:?} is not a number of minutes", lossy(step)))?,
    };
    let point = Point {
        ts_utc,
        value,
        step_min,
        quality,
    };
    check_point(channel, &point)?;
    Ok(point)
}

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Reads the Enedis CSV export: a metadata header (`Identifiant PRM;...;Unite;Pas en minutes`
/// and its values), then `Horodate;Valeur` and one line per interval, `Horodate` being the END
/// of the interval with its offset and `Valeur` the average power in W (empty: no reading, which
/// is a gap and not a rejection). Several such blocks may follow one another.
///
/// When the metadata gives no step, a line's step is the time since the previous line, or
/// failing that (first line, or after missing lines) the time to the next line, or the step of
/// the line before; Enedis exports switch between 60 and 30 minutes this way.
pub(crate) fn parse_enedis(
    input: &[u8],
    channel: Channel,
    sink: &mut impl Sink,
) -> Result<(), IngestError> {
    let mut lines = input
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .peekable();
    let mut meter: Option<String> = None;
    let mut fixed_step: Option<u16> = None;
    let mut in_data = false;
    // (line, end of interval or why not, value) of the current block, in line order; steps are
    // inferred over the block.
    let mut block: Vec<EnedisLine<'_>> = Vec::new();
    while let Some((line, text)) = lines.next() {
        if text.trim_ascii().is_empty() {
            continue;
        }
        if text.starts_with(b"Identifiant PRM;") {
            flush_enedis_block(&mut block, meter.as_deref(), fixed_step, channel, sink);
            in_data = false;
            let Some((values_line, values)) = lines.next() else {
                return Err(IngestError::Document {
                    line,
                    reason: "metadata header without its values line".into(),
                });
            };
            let (id, step) = read_enedis_metadata(text, values, values_line)?;
            meter = Some(id);
            fixed_step = step;
            continue;
        }
        if text.starts_with(b"Horodate;") {
            flush_enedis_block(&mut block, meter.as_deref(), fixed_step, channel, sink);
            if meter.is_none() {
                return Err(IngestError::Document {
                    line,
                    reason: "no PRM: the export's metadata header (Identifiant PRM;...) is missing"
                        .into(),
                });
            }
            in_data = true;
            continue;
        }
        if !in_data {
            return Err(IngestError::Document {
                line,
                reason:
                    "expected the Enedis header lines (Identifiant PRM;... then Horodate;Valeur)"
                        .into(),
            });
        }
        let mut fields = text.split(|&b| b == b';');
        let (Some(ts), Some(value), None) = (fields.next(), fields.next(), fields.next()) else {
            block.push((
                line,
                Err("expected two fields, Horodate;Valeur".into()),
                b"",
            ));
            continue;
        };
        let end = parse_rfc3339(trim(ts)).map_err(|e| format!("Horodate {:?}: {e}", lossy(ts)));
        block.push((line, end, trim(value)));
    }
    flush_enedis_block(&mut block, meter.as_deref(), fixed_step, channel, sink);
    Ok(())
}

fn read_enedis_metadata(
    names: &[u8],
    values: &[u8],
    values_line: u64,
) -> Result<(String, Option<u16>), IngestError> {
    let err = |reason: String| IngestError::Document {
        line: values_line,
        reason,
    };
    let mut id = None;
    let mut step = None;
    for (name, value) in names
        .split(|&b| b == b';')
        .zip(values.split(|&b| b == b';'))
    {
        let value = trim(value);
        match trim(name) {
            b"Identifiant PRM" => id = Some(check_prm(value).map_err(err)?.to_owned()),
            b"Unite" if !value.is_empty() && value != b"W" => {
                return Err(err(format!(
                    "unit {:?} is not supported (the load curve is read in W)",
                    lossy(value)
                )))
            }
            b"Pas en minutes" if !value.is_empty() => {
                let s = parse_i32(value)
                    .and_then(|s| u16::try_from(s).ok())
                    .filter(|s| CURVE_STEPS_MIN.contains(s))
                    .ok_or_else(|| {
                        err(format!("step {:?} minutes is not supported", lossy(value)))
                    })?;
                step = Some(s);
            }
            _ => {}
        }
    }
    let id = id.ok_or_else(|| err("no Identifiant PRM value".into()))?;
    Ok((id, step))
}

type EnedisLine<'a> = (u64, Result<i64, String>, &'a [u8]);

fn flush_enedis_block(
    block: &mut Vec<EnedisLine<'_>>,
    meter: Option<&str>,
    fixed_step: Option<u16>,
    channel: Channel,
    sink: &mut impl Sink,
) {
    let Some(meter) = meter else {
        block.clear();
        return;
    };
    let as_step = |seconds: i64| -> Option<u16> {
        u16::try_from(seconds / 60)
            .ok()
            .filter(|s| seconds % 60 == 0 && CURVE_STEPS_MIN.contains(s))
    };
    let mut previous_step: Option<u16> = None;
    let mut previous_end: Option<i64> = None;
    for i in 0..block.len() {
        let Some((line, end, value)) = block.get(i) else {
            break;
        };
        let (line, value) = (*line, *value);
        let end = match end {
            Ok(end) => *end,
            Err(reason) => {
                sink.reject(Rejected {
                    line,
                    reason: reason.clone(),
                });
                continue;
            }
        };
        let before = previous_end.and_then(|p| as_step(end - p));
        let after = block
            .get(i + 1..)
            .unwrap_or_default()
            .iter()
            .find_map(|(_, next, _)| next.as_ref().ok())
            .and_then(|&next| as_step(next - end));
        previous_end = Some(end);
        let Some(step_min) = fixed_step.or(before).or(after).or(previous_step) else {
            sink.reject(Rejected {
                line,
                reason:
                    "cannot infer the step: no neighbouring line at 5, 10, 15, 30 or 60 minutes"
                        .into(),
            });
            continue;
        };
        previous_step = Some(step_min);
        if value.is_empty() {
            continue;
        }
        let Some(value) = parse_i32(value) else {
            sink.reject(Rejected {
                line,
                reason: format!("Valeur {:?} is not a 32-bit integer", lossy(value)),
            });
            continue;
        };
        let point = Point {
            ts_utc: end - 60 * i64::from(step_min),
            value,
            step_min,
            quality: Quality::Measured,
        };
        if let Err(reason) = check_point(channel, &point) {
            sink.reject(Rejected { line, reason });
            continue;
        }
        sink.point(line, meter, channel, point);
    }
    block.clear();
}

/// Writes the native CSV: the header, then one line per point with every column, `ts` in UTC
/// (`Z`). Buffers internally; [`CsvWriter::finish`] flushes.
pub struct CsvWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

const WRITE_BUFFER_LEN: usize = 64 * 1024;

impl<W: Write> CsvWriter<W> {
    /// Starts a file: writes the header.
    pub fn new(out: W) -> CsvWriter<W> {
        let mut buf = Vec::with_capacity(WRITE_BUFFER_LEN + 256);
        buf.extend_from_slice(CSV_COLUMNS.join(",").as_bytes());
        buf.push(b'\n');
        CsvWriter { out, buf }
    }

    pub fn write_row(&mut self, meter: &str, point: &Point) -> io::Result<()> {
        let buf = &mut self.buf;
        if meter
            .bytes()
            .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
        {
            buf.push(b'"');
            for b in meter.bytes() {
                if b == b'"' {
                    buf.push(b'"');
                }
                buf.push(b);
            }
            buf.push(b'"');
        } else {
            buf.extend_from_slice(meter.as_bytes());
        }
        buf.push(b',');
        write_rfc3339_utc(point.ts_utc, buf);
        buf.push(b',');
        write_decimal(buf, i64::from(point.value));
        buf.push(b',');
        buf.extend_from_slice(point.quality.as_str().as_bytes());
        buf.push(b',');
        write_decimal(buf, i64::from(point.step_min));
        buf.push(b'\n');
        if self.buf.len() >= WRITE_BUFFER_LEN {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes what is buffered, flushes, and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.flush()?;
        Ok(self.out)
    }
}

fn write_decimal(buf: &mut Vec<u8>, v: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut m = v.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if v < 0 {
        buf.push(b'-');
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Writes `rows` as a native CSV file (header included).
pub fn write_csv<'a>(
    rows: impl IntoIterator<Item = (&'a str, Point)>,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut writer = CsvWriter::new(out);
    for (meter, point) in rows {
        writer.write_row(meter, &point)?;
    }
    writer.finish().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{format_rfc3339_utc, parse, Format, Parsed};

    const NATIVE_DST: &[u8] = include_bytes!("../../../tests/data/native_dst.csv");
    const NATIVE_MALFORMED: &[u8] = include_bytes!("../../../tests/data/native_malformed.csv");
    const ENEDIS_EXPORT: &[u8] = include_bytes!("../../../tests/data/enedis_export.csv");

    fn parse_csv(input: &[u8]) -> Parsed {
        parse(input, Format::Csv, Channel::CONSUMPTION).unwrap()
    }

    /// The input read line by line, as one piece: what the parallel parse must equal.
    fn parse_sequentially(input: &[u8]) -> (Vec<(u64, String, Point)>, Vec<Rejected>) {
        let (mut rows, mut rejected) = (Vec::new(), Vec::new());
        let body = input.strip_suffix(b"\n").unwrap_or(input);
        let mut last_meter = String::new();
        for (i, line) in body.split(|&b| b == b'\n').enumerate().skip(1) {
            let number = i as u64 + 1;
            let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > MAX_LINE_LEN + 1 || trimmed.len() > MAX_LINE_LEN {
                rejected.push(Rejected {
                    line: number,
                    reason: format!("line of {} bytes (at most {MAX_LINE_LEN})", line.len()),
                });
            } else if !trimmed.is_empty() {
                match read_row(trimmed, 5, Channel::CONSUMPTION, &mut last_meter) {
                    Ok(p) => rows.push((number, last_meter.clone(), p)),
                    Err(reason) => rejected.push(Rejected {
                        line: number,
                        reason,
                    }),
                }
            }
        }
        (rows, rejected)
    }

    /// Records every point with its line.
    #[derive(Default)]
    struct Lined(Vec<(u64, String, Point)>, Vec<Rejected>);

    impl Sink for Lined {
        fn point(&mut self, line: u64, meter: &str, _channel: Channel, point: Point) {
            self.0.push((line, meter.to_owned(), point));
        }
        fn reject(&mut self, rejected: Rejected) {
            self.1.push(rejected);
        }
    }

    #[test]
    fn a_csv_parsed_in_pieces_keeps_every_row_and_every_rejected_line_number_in_order() {
        let mut input = b"meter_id,ts,value_w,quality,step_min\n".to_vec();
        let mut seed = 7u64;
        for i in 0..90_000u64 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let ts = 1_704_067_200 + (i % 17_000) as i64 * 1800;
            let meter = format!("{:014}", i / 700);
            match seed >> 58 {
                _ if i == 40_000 => {
                    // A line of two pieces and more.
                    input.extend(std::iter::repeat_n(b'y', 2 * PARSE_CHUNK + 5));
                    input.push(b'\n');
                }
                0 => input.extend_from_slice(b"bad,row\n"),
                1 => input.extend_from_slice(b"\n"),
                2 => input.extend_from_slice(b"\r\n"),
                3 => {
                    // Exactly MAX_LINE_LEN bytes and a CR: read; one more byte: too long.
                    let pad = if seed & 1 == 0 {
                        MAX_LINE_LEN
                    } else {
                        MAX_LINE_LEN + 1
                    };
                    input.extend(std::iter::repeat_n(b'x', pad));
                    input.extend_from_slice(b"\r\n");
                }
                _ => {
                    let line = format!(
                        "{meter},{},{},measured,30{}\n",
                        format_rfc3339_utc(ts),
                        seed % 9000,
                        if seed & 2 == 0 { "" } else { "\r" }
                    );
                    input.extend_from_slice(line.as_bytes());
                }
            }
        }
        // The last line without its line feed.
        input.extend_from_slice(b"00000000000001,2024-01-01T00:00:00Z,5");
        assert!(input.len() > 4 * PARSE_CHUNK);
        let (rows, rejected) = parse_sequentially(&input);
        let mut got = Lined::default();
        parse_csv_reader(&input[..], Channel::CONSUMPTION, &mut got).unwrap();
        assert_eq!(got.1, rejected);
        assert_eq!(got.0.len(), rows.len());
        assert!(got.0 == rows, "rows differ from the sequential reading");
        assert!(rejected.len() > 1000 && rows.len() > 60_000);
    }

    #[test]
    fn native_rows_across_the_spring_dst_change_read_with_any_offset() {
        let parsed = parse_csv(NATIVE_DST);
        assert_eq!(parsed.rejected, []);
        assert_eq!(parsed.rows.len(), 21);
        let a: Vec<&Point> = parsed
            .rows
            .iter()
            .filter(|r| r.0 == "09111642617347")
            .map(|r| &r.2)
            .collect();
        // 2024-03-30T22:00:00+01:00, then every 30 minutes in UTC across the jump to +02:00.
        for (i, p) in a.iter().enumerate() {
            assert_eq!(p.ts_utc, 1_711_832_400 + 1800 * i as i64);
            assert_eq!(p.value, 300 + 7 * i as i32);
            assert_eq!(p.step_min, 30);
        }
        assert_eq!(a.len(), 12);
        assert_eq!(
            a.iter().take(3).map(|p| p.quality).collect::<Vec<_>>(),
            [Quality::Measured, Quality::Estimated, Quality::Corrected]
        );
        let b: Vec<&Point> = parsed
            .rows
            .iter()
            .filter(|r| r.0 == "PDL_demo-2.b")
            .map(|r| &r.2)
            .collect();
        assert_eq!(b.len(), 6);
        assert!(b
            .iter()
            .all(|p| p.step_min == 10 && p.quality == Quality::Measured));
        let c = parsed.rows.last().unwrap();
        assert_eq!(
            (c.0.as_str(), c.2.step_min, c.2.quality),
            ("09111642617348", 30, Quality::Measured)
        );
    }

    #[test]
    fn malformed_lines_are_rejected_with_their_line_numbers_and_the_rest_kept() {
        let parsed = parse_csv(NATIVE_MALFORMED);
        let lines: Vec<u64> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
        let reasons: Vec<&str> = parsed.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert!(reasons[0].contains("value_w \"abc\""), "{}", reasons[0]);
        assert!(
            reasons[1].contains("without a UTC offset"),
            "{}",
            reasons[1]
        );
        assert!(
            reasons[2].contains("not aligned to the 30-minute step"),
            "{}",
            reasons[2]
        );
        assert!(reasons[3].contains("meter id"), "{}", reasons[3]);
        assert!(reasons[4].contains("quality \"guessed\""), "{}", reasons[4]);
        assert!(reasons[5].contains("step of 20 minutes"), "{}", reasons[5]);
        assert!(reasons[6].contains("2 fields"), "{}", reasons[6]);
        assert!(reasons[7].contains("32-bit"), "{}", reasons[7]);
        assert!(reasons[8].contains("6 fields"), "{}", reasons[8]);
        assert!(reasons[9].contains("never quoted"), "{}", reasons[9]);
        assert!(reasons[10].contains("negative value -5"), "{}", reasons[10]);
        let accepted: Vec<(i64, i32, Quality)> = parsed
            .rows
            .iter()
            .map(|(_, _, p)| (p.ts_utc, p.value, p.quality))
            .collect();
        assert_eq!(accepted, [(1_704_063_600, 476, Quality::Measured)]);
    }

    #[test]
    fn a_stray_quote_rejects_its_line_and_every_following_good_line_lands() {
        let mut input = String::from("meter_id,ts,value_w\nQA,2024-01-01T00:00:00Z,5\n");
        input.push_str("QA,\"2024-01-01T00:30:00Z,5\n");
        for i in 0..5_000i64 {
            let ts = format_rfc3339_utc(1_704_067_200 + 1800 * i);
            input.push_str(&format!("QA,{ts},{i}\n"));
        }
        let parsed = parse_csv(input.as_bytes());
        assert_eq!(parsed.rows.len(), 5_001);
        assert_eq!(parsed.rejected.len(), 1);
        assert_eq!(parsed.rejected[0].line, 3);
        assert!(parsed.rejected[0].reason.contains("quote"));
        assert_eq!(parsed.rows.last().map(|r| r.2.value), Some(4_999));
    }

    #[test]
    fn a_line_over_the_limit_is_rejected_and_the_next_one_read() {
        /// A header, one line of `len` bytes streamed without being built, then a good line.
        struct LongLine {
            head: &'static [u8],
            len: u64,
            tail: &'static [u8],
        }
        impl io::Read for LongLine {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if !self.head.is_empty() {
                    let n = buf.len().min(self.head.len());
                    buf[..n].copy_from_slice(&self.head[..n]);
                    self.head = &self.head[n..];
                    return Ok(n);
                }
                if self.len > 0 {
                    let n = buf
                        .len()
                        .min(usize::try_from(self.len).unwrap_or(usize::MAX));
                    buf[..n].fill(b'7');
                    self.len -= n as u64;
                    return Ok(n);
                }
                let n = buf.len().min(self.tail.len());
                buf[..n].copy_from_slice(&self.tail[..n]);
                self.tail = &self.tail[n..];
                Ok(n)
            }
        }
        let input = LongLine {
            head: b"meter_id,ts,value_w\nm1,2024-01-01T00:00:00Z,",
            len: 50_000_000,
            tail: b"\nm1,2024-01-01T00:30:00Z,8\n",
        };
        let mut parsed = Parsed::default();
        parse_csv_reader(input, Channel::CONSUMPTION, &mut parsed).unwrap();
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].2.value, 8);
        assert_eq!(parsed.rejected.len(), 1);
        assert_eq!(parsed.rejected[0].line, 2);
        assert!(
            parsed.rejected[0].reason.contains("50000024 bytes"),
            "{}",
            parsed.rejected[0].reason
        );
        let exact = format!(
            "meter_id,ts,value_w\nm1,2024-01-01T00:00:00Z,1{}\n",
            " ".repeat(MAX_LINE_LEN - 25)
        );
        assert_eq!(
            parse_csv(exact.as_bytes()).rows.len(),
            1,
            "a line of the limit is read"
        );
        let crlf = exact.replace('\n', "\r\n");
        assert_eq!(
            parse_csv(crlf.as_bytes()).rows.len(),
            1,
            "its CR does not count"
        );
        let over = exact.replace(",1 ", ",1  ");
        assert_eq!(parse_csv(over.as_bytes()).rejected.len(), 1);
    }

    #[test]
    fn year_9999_is_refused_with_the_supported_range() {
        let input = b"meter_id,ts,value_w\n\
                      m1,9999-06-01T00:00:00Z,5\n\
                      m1,9998-12-31T23:30:00Z,5\n\
                      m1,1969-12-31T23:30:00Z,5\n";
        let parsed = parse_csv(input);
        assert_eq!(parsed.rows.len(), 1);
        let lines: Vec<u64> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4]);
        for r in &parsed.rejected {
            assert!(r.reason.contains(crate::ingest::TS_RANGE), "{}", r.reason);
        }
    }

    #[test]
    fn a_missing_or_wrong_header_makes_the_document_unusable() {
        for input in [
            &b""[..],
            b"id,ts,value\n1,2024-01-01T00:00:00Z,3\n",
            b"meter_id,ts\n",
            b"09111642617347,2024-01-01T00:00:00Z,476\n",
        ] {
            let err = parse(input, Format::Csv, Channel::CONSUMPTION).unwrap_err();
            assert!(matches!(err, IngestError::Header { line: 1, .. }), "{err}");
        }
        let header_only = parse_csv(b"meter_id,ts,value_w,quality,step_min\n");
        assert_eq!(header_only, Parsed::default());
        // A BOM, spaces and CRLF are tolerated; a row wider than the header is not.
        let with_bom = parse_csv(
            b"\xEF\xBB\xBFmeter_id, ts ,value_w\r\n\
              m1,2024-01-01T00:00:00Z,5\r\n\
              m1,2024-01-01T00:30:00Z,5,measured\r\n",
        );
        assert_eq!(with_bom.rows.len(), 1);
        assert_eq!(with_bom.rejected.len(), 1);
        assert_eq!(with_bom.rejected[0].line, 3);
    }

    #[test]
    fn max_power_rows_take_the_daily_step_and_any_instant() {
        let input = b"meter_id,ts,value_w,quality,step_min\n\
                      m1,2024-01-01T18:47:13+01:00,7310\n\
                      m1,2024-01-02T19:02:00+01:00,6900,measured,1440\n\
                      m1,2024-01-03T19:00:00+01:00,6900,measured,30\n";
        let parsed = parse(input, Format::Csv, Channel::MAX_POWER).unwrap();
        assert_eq!(parsed.rows.len(), 2);
        assert_eq!(parsed.rows[0].1, Channel::MAX_POWER);
        assert_eq!(parsed.rows[0].2.ts_utc, 1_704_131_233);
        assert_eq!(parsed.rejected.len(), 1);
        assert_eq!(parsed.rejected[0].line, 4);
    }

    #[test]
    fn line_numbers_count_crlf_and_blank_lines_and_a_quote_ends_at_its_line() {
        let input = b"meter_id,ts,value_w\r\n\
                      \r\n\
                      m1,2024-01-01T00:00:00Z,x\r\n\
                      \n\
                      \"m\n1\",2024-01-01T00:00:00Z,5\n\
                      m1,2024-01-01T00:00:00Z,y\n";
        let parsed = parse_csv(input);
        let lines: Vec<u64> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 5, 6, 7]);
        let mut streamed = Parsed::default();
        parse_csv_reader(Trickle(input), Channel::CONSUMPTION, &mut streamed).unwrap();
        assert_eq!(streamed, parsed);
    }

    /// Hands the input over a few bytes at a time, as a pipe does.
    struct Trickle<'a>(&'a [u8]);

    impl io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_streamed_reader_gives_the_same_rows_as_a_slice() {
        let mut streamed = Parsed::default();
        parse_csv_reader(
            Trickle(NATIVE_MALFORMED),
            Channel::CONSUMPTION,
            &mut streamed,
        )
        .unwrap();
        assert_eq!(streamed, parse_csv(NATIVE_MALFORMED));
    }

    #[test]
    fn written_csv_reads_back_to_the_same_points() {
        let fleet = courbe_workload::Fleet::new(courbe_workload::FleetConfig {
            meters: 3,
            days: 4,
            step_change_share: 0.5,
            ..Default::default()
        });
        let mut rows = Vec::new();
        for m in fleet.meters() {
            for r in &m.consumption {
                rows.push((m.meter_id.clone(), Channel::CONSUMPTION, crate::point_of(r)));
            }
        }
        rows.push((
            "neg".into(),
            Channel::CONSUMPTION,
            Point {
                ts_utc: 0,
                value: i32::MAX,
                step_min: 5,
                quality: Quality::Corrected,
            },
        ));
        let mut out = Vec::new();
        write_csv(rows.iter().map(|(m, _, p)| (m.as_str(), *p)), &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("meter_id,ts,value_w,quality,step_min\n09111642617347,20"));
        assert!(text.ends_with("neg,1970-01-01T00:00:00Z,2147483647,corrected,5\n"));
        let parsed = parse_csv(&out);
        assert_eq!(parsed.rejected, []);
        assert_eq!(parsed.rows, rows);
    }

    #[test]
    fn the_enedis_export_infers_steps_across_a_change_a_gap_and_dst() {
        assert_eq!(Format::detect(ENEDIS_EXPORT), Format::EnedisCsv);
        let parsed = parse(ENEDIS_EXPORT, Format::EnedisCsv, Channel::CONSUMPTION).unwrap();
        assert_eq!(parsed.rejected, []);
        // Lines 4 and 5 have no value; 6 to 9 are hourly; then 44 half-hours after a gap.
        assert_eq!(parsed.rows.len(), 48);
        assert!(parsed.rows.iter().all(|r| r.0 == "12345678901234"));
        let first = &parsed.rows[0].2;
        assert_eq!(
            (first.ts_utc, first.step_min, first.value),
            (1_698_451_200, 60, 403)
        );
        assert!(parsed.rows[..4].iter().all(|r| r.2.step_min == 60));
        assert!(parsed.rows[4..].iter().all(|r| r.2.step_min == 30));
        // Half-hours are consecutive in UTC through the repeated hour of 2023-10-29.
        for w in parsed.rows[4..].windows(2) {
            assert_eq!(w[1].2.ts_utc - w[0].2.ts_utc, 1800);
        }
    }

    #[test]
    fn enedis_export_errors_and_bad_lines() {
        let no_meta = b"Horodate;Valeur\n2023-10-28T01:00:00+02:00;5\n";
        assert!(matches!(
            parse(no_meta, Format::EnedisCsv, Channel::CONSUMPTION),
            Err(IngestError::Document { line: 1, .. })
        ));
        let kw = b"Identifiant PRM;Unite;Pas en minutes\n12345678901234;kW;\nHorodate;Valeur\n";
        assert!(matches!(
            parse(kw, Format::EnedisCsv, Channel::CONSUMPTION),
            Err(IngestError::Document { line: 2, .. })
        ));
        let input = b"Identifiant PRM;Unite;Pas en minutes\n12345678901234;W;30\nHorodate;Valeur\n\
                      2023-10-28T01:00:00+02:00;5\n\
                      2023-10-28T01:30:00+02:00;x\n\
                      2023-10-28T02:00;7\n\
                      2023-10-28T02:10:00+02:00;8\n\
                      2023-10-28T03:00:00+02:00;9;9\n";
        let parsed = parse(input, Format::EnedisCsv, Channel::CONSUMPTION).unwrap();
        assert_eq!(parsed.rows.len(), 1);
        let lines: Vec<u64> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [5, 6, 7, 8]);
    }

    #[test]
    fn the_vendored_enedis_export_parses_whole() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/enedis/Enedis_SGE_HDM_A06NW0ZI.csv"
        );
        let input = std::fs::read(path).expect("vendored fixture (tests/data/enedis)");
        let parsed = parse(&input, Format::detect(&input), Channel::CONSUMPTION).unwrap();
        assert_eq!(parsed.rejected, []);
        assert_eq!(parsed.rows.len(), 17_852);
        assert!(parsed.rows.iter().all(|r| r.0 == "09111642617347"));
        let steps: Vec<u16> = parsed.rows.iter().map(|r| r.2.step_min).collect();
        assert_eq!(steps.windows(2).filter(|w| w[0] != w[1]).count(), 1);
        assert_eq!((steps[0], steps[steps.len() - 1]), (60, 30));
        let (first, last) = (&parsed.rows[0].2, &parsed.rows[parsed.rows.len() - 1].2);
        // The first value: `2021-01-07T14:00:00+01:00;1061`, the end of an hour.
        assert_eq!(
            (first.ts_utc, first.value, first.step_min),
            (1_610_020_800, 1061, 60)
        );
        // The last line: `2022-02-02T00:00:00+01:00;602`, the end of a half hour.
        assert_eq!((last.ts_utc, last.value), (1_643_754_600, 602));
    }
}

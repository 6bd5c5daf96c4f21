//! Fleet answers streamed: `GET /v1/fleet/energy` and `/v1/fleet/curve` write their body in
//! pieces as it is computed, so that the server never holds the whole answer.
//!
//! - **Fleet energy** is computed [`METERS_PER_SLICE`] meters at a time (each slice on all
//!   cores, [`query::fleet_energy_each`]) and written in meter order: JSON meters, CSV rows or
//!   one Arrow record batch per slice.
//! - **The fleet curve** is computed one Europe/Paris month of the range at a time (the
//!   partitions of the store) and written in time order: each instant lies in one month, so the
//!   pieces are the whole curve's points.
//!
//! The bytes go out in pieces of about [`PIECE_BYTES`] through a queue of [`QUEUE_PIECES`], from
//! a blocking producer that waits while the client is slow: the memory of one answer is a slice
//! of meters (or a month of the curve), the queue and one piece, whatever the fleet's size.
//!
//! Every check of the whole question (meters listed, channel, range, the cells limit) comes
//! before any byte, and nothing is sent before the first piece is full, so an error found up to
//! then is answered as JSON with its status, like any other answer. An error found later (a
//! segment that cannot be read) cuts the stream: it is logged, the body ends without its last
//! chunk (HTTP/1.1 chunked encoding) and the connection is closed, so the client sees a
//! truncated body as an error, never a short answer that parses. In JSON and CSV the
//! concatenated pieces are byte for byte the answer [`body::answer_encoded`] writes; in Arrow
//! they hold its rows, one record batch per slice of meters or month of the curve.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::arrow::{self, ArrowStream};
use super::body::{self, MeterEnergyJson};
use super::error::{ApiError, HttpError};
use crate::engine::Store;
use crate::query::{self, Calendar, Period};
use crate::question::{self, Encoding, Limits, Question};
use crate::source::SeriesSource;
use crate::Channel;

/// Meters of fleet energy computed at once.
pub const METERS_PER_SLICE: usize = 1_024;
/// A piece is handed to the connection once it holds at least this many bytes.
pub const PIECE_BYTES: usize = 256 * 1024;

/// How an answer is cut: [`Slicing::SERVER`] for the server, smaller in tests.
#[derive(Clone, Copy, Debug)]
pub struct Slicing {
    pub meters_per_slice: usize,
    pub piece_bytes: usize,
}

impl Slicing {
    pub const SERVER: Slicing = Slicing {
        meters_per_slice: METERS_PER_SLICE,
        piece_bytes: PIECE_BYTES,
    };
}
/// Pieces waiting for the connection; past them the producer waits.
pub const QUEUE_PIECES: usize = 4;

/// Whether a question's answer is streamed.
pub fn is_streamed(question: &Question) -> bool {
    matches!(
        question,
        Question::FleetCurve { .. } | Question::FleetEnergy { .. }
    )
}

/// One of the encodings, writing into a buffer.
enum Writer {
    Json { first: bool },
    Csv,
    Arrow(Box<ArrowStream>),
}

/// An answer being written: the buffer, handed to `sink` whenever it is full.
struct Pieces<'a> {
    piece_bytes: usize,
    buf: Vec<u8>,
    writer: Writer,
    sink: &'a mut dyn FnMut(Vec<u8>) -> Result<(), ApiError>,
}

impl Pieces<'_> {
    fn flush_if_full(&mut self) -> Result<(), ApiError> {
        if self.buf.len() >= self.piece_bytes {
            let piece = std::mem::take(&mut self.buf);
            (self.sink)(piece)?;
        }
        Ok(())
    }

    /// A JSON array element: its comma, then the value.
    fn json_element(&mut self, value: &impl serde::Serialize) -> Result<(), ApiError> {
        if let Writer::Json { first } = &mut self.writer {
            if !std::mem::take(first) {
                self.buf.push(b',');
            }
        }
        serde_json::to_writer(&mut self.buf, value)
            .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))
    }

    fn arrow_batch(&mut self, columns: Vec<arrow_array::ArrayRef>) -> Result<(), ApiError> {
        if let Writer::Arrow(stream) = &mut self.writer {
            stream.write(columns)?;
            self.buf.extend(stream.take());
        }
        Ok(())
    }

    /// Closes the answer (`tail` for JSON, the end of stream for Arrow) and hands over the rest.
    fn finish(mut self, json_tail: &[u8]) -> Result<(), ApiError> {
        match std::mem::replace(&mut self.writer, Writer::Csv) {
            Writer::Json { .. } => self.buf.extend_from_slice(json_tail),
            Writer::Csv => {}
            Writer::Arrow(stream) => self.buf.extend(stream.finish()?),
        }
        (self.sink)(std::mem::take(&mut self.buf))
    }
}

fn json_text(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A fleet energy answer's writer: its head written, then [`Pieces::meters`] per slice.
fn energy_pieces<'a>(
    tz_name: &str,
    encoding: Encoding,
    piece_bytes: usize,
    sink: &'a mut dyn FnMut(Vec<u8>) -> Result<(), ApiError>,
) -> Result<Pieces<'a>, ApiError> {
    let unit = "Wh";
    let (buf, writer) = match encoding {
        Encoding::Json => (
            format!(
                r#"{{"unit":"{unit}","tz":{},"meters":["#,
                json_text(tz_name)
            )
            .into_bytes(),
            Writer::Json { first: true },
        ),
        Encoding::Csv => (b"meter_id,start,end,energy_wh\n".to_vec(), Writer::Csv),
        Encoding::Arrow => {
            let mut stream = ArrowStream::new(arrow::fleet_energy_schema(unit, tz_name))?;
            (stream.take(), Writer::Arrow(Box::new(stream)))
        }
    };
    Ok(Pieces {
        piece_bytes,
        buf,
        writer,
        sink,
    })
}

/// A fleet curve answer's writer: its head written, then [`Pieces::points`] per month.
fn curve_pieces<'a>(
    channel: Channel,
    encoding: Encoding,
    piece_bytes: usize,
    sink: &'a mut dyn FnMut(Vec<u8>) -> Result<(), ApiError>,
) -> Result<Pieces<'a>, ApiError> {
    let unit = question::unit_of(channel);
    let (buf, writer) = match encoding {
        Encoding::Json => (
            format!(
                r#"{{"channel":"{}","unit":"{unit}","points":["#,
                channel.as_str()
            )
            .into_bytes(),
            Writer::Json { first: true },
        ),
        Encoding::Csv => (b"ts,value_w,meters\n".to_vec(), Writer::Csv),
        Encoding::Arrow => {
            let mut stream = ArrowStream::new(arrow::fleet_curve_schema(channel.as_str(), unit))?;
            (stream.take(), Writer::Arrow(Box::new(stream)))
        }
    };
    Ok(Pieces {
        piece_bytes,
        buf,
        writer,
        sink,
    })
}

impl Pieces<'_> {
    /// One slice of a fleet energy answer's meters: JSON elements, CSV rows or one record batch.
    fn meters(&mut self, slice: &[MeterEnergyJson]) -> Result<(), ApiError> {
        match self.writer {
            Writer::Json { .. } => {
                for meter in slice {
                    self.json_element(meter)?;
                }
            }
            Writer::Csv => {
                for m in slice {
                    for p in &m.periods {
                        let line = format!("{},{},{},{}\n", m.meter, p.start, p.end, p.energy_wh);
                        self.buf.extend_from_slice(line.as_bytes());
                    }
                }
            }
            Writer::Arrow(_) => self.arrow_batch(arrow::fleet_energy_columns(slice))?,
        }
        self.flush_if_full()
    }

    /// One month of a fleet curve answer's points: JSON elements, CSV rows or one record batch.
    fn points(&mut self, points: &[body::FleetPointJson]) -> Result<(), ApiError> {
        match self.writer {
            Writer::Json { .. } => {
                for p in points {
                    self.json_element(p)?;
                }
            }
            Writer::Csv => {
                for p in points {
                    let line = format!("{},{},{}\n", p.ts, p.value, p.meters);
                    self.buf.extend_from_slice(line.as_bytes());
                }
            }
            Writer::Arrow(_) => self.arrow_batch(arrow::fleet_curve_columns(points))?,
        }
        self.flush_if_full()
    }
}

/// The Europe/Paris months a fleet curve answer is computed and written by.
fn curve_months(from_utc: i64, to_utc: i64) -> Result<Vec<(i64, i64)>, ApiError> {
    Ok(Calendar {
        from_utc,
        to_utc,
        period: Period::Month,
        tz: query::time_zone(question::DEFAULT_TZ)?,
    }
    .periods()?)
}

/// Writes the answer to a fleet question in pieces to `sink`, in order; `sink` fails to stop
/// the answer (the client went away). The last piece may be empty.
pub fn fleet_answer(
    src: &dyn SeriesSource,
    question: &Question,
    encoding: Encoding,
    limits: &Limits,
    slicing: Slicing,
    sink: &mut dyn FnMut(Vec<u8>) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    match question {
        Question::FleetEnergy {
            channel,
            calendar,
            meters,
        } => {
            question::check_fleet_energy(src, *channel, calendar, meters.as_deref(), limits)?;
            let mut pieces = energy_pieces(&calendar.tz_name, encoding, slicing.piece_bytes, sink)?;
            query::fleet_energy_each(
                src,
                *channel,
                &calendar.calendar,
                meters.as_deref(),
                slicing.meters_per_slice,
                |slice| -> Result<(), ApiError> {
                    let slice: Vec<MeterEnergyJson> =
                        slice.into_iter().map(MeterEnergyJson::from).collect();
                    pieces.meters(&slice)
                },
            )?;
            pieces.finish(b"]}")
        }
        Question::FleetCurve {
            channel,
            from_utc,
            to_utc,
            meters,
        } => {
            question::check_fleet_curve(src, meters.as_deref())?;
            let mut pieces = curve_pieces(*channel, encoding, slicing.piece_bytes, sink)?;
            for (from, to) in curve_months(*from_utc, *to_utc)? {
                let points = query::fleet_curve(src, *channel, from, to, meters.as_deref())?;
                let points: Vec<body::FleetPointJson> =
                    points.into_iter().map(body::FleetPointJson::from).collect();
                pieces.points(&points)?;
            }
            pieces.finish(b"]}")
        }
        _ => Err(ApiError::internal("only fleet answers are streamed")),
    }
}

/// The whole answer to a fleet energy question whose meters' energies were computed elsewhere
/// (by a cluster's readers), in meter order: byte for byte what [`fleet_answer`] writes for
/// them with `slicing` (in Arrow, one record batch per slice of meters).
pub fn fleet_energy_encoded(
    tz_name: &str,
    meters: &[MeterEnergyJson],
    encoding: Encoding,
    slicing: Slicing,
) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let mut sink = |piece: Vec<u8>| {
        out.extend(piece);
        Ok(())
    };
    let mut pieces = energy_pieces(tz_name, encoding, slicing.piece_bytes, &mut sink)?;
    for slice in meters.chunks(slicing.meters_per_slice.max(1)) {
        pieces.meters(slice)?;
    }
    pieces.finish(b"]}")?;
    Ok(out)
}

/// The whole answer to a fleet curve question over `[from_utc, to_utc)` whose points were
/// computed elsewhere (merged from a cluster's readers), in time order: byte for byte what
/// [`fleet_answer`] writes for them (in Arrow, one record batch per Europe/Paris month).
pub fn fleet_curve_encoded(
    channel: Channel,
    from_utc: i64,
    to_utc: i64,
    points: Vec<query::FleetPoint>,
    encoding: Encoding,
) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let mut sink = |piece: Vec<u8>| {
        out.extend(piece);
        Ok(())
    };
    let mut pieces = curve_pieces(channel, encoding, Slicing::SERVER.piece_bytes, &mut sink)?;
    let mut points = points
        .into_iter()
        .map(body::FleetPointJson::from)
        .peekable();
    for (_, to) in curve_months(from_utc, to_utc)? {
        let mut month = Vec::new();
        while let Some(p) = points.next_if(|p| p.ts_utc < to) {
            month.push(p);
        }
        pieces.points(&month)?;
    }
    pieces.finish(b"]}")?;
    Ok(out)
}

/// What the producer hands the connection.
enum Piece {
    Bytes(Vec<u8>),
    /// The answer is whole.
    Done,
    Failed(ApiError),
}

/// The response to a fleet question: its status and headers once the first piece is ready (or
/// the error found before it), then the body as the producer writes it.
pub async fn respond(
    store: Arc<Store>,
    limits: Limits,
    question: Question,
    encoding: Encoding,
) -> Result<Response, HttpError> {
    let (tx, mut rx) = mpsc::channel::<Piece>(QUEUE_PIECES);
    tokio::task::spawn_blocking(move || {
        let snapshot = store.snapshot();
        let mut sink = |piece: Vec<u8>| {
            tx.blocking_send(Piece::Bytes(piece))
                .map_err(|_| ApiError::internal("the client went away"))
        };
        let answer = fleet_answer(
            &*snapshot,
            &question,
            encoding,
            &limits,
            Slicing::SERVER,
            &mut sink,
        );
        let end = match answer {
            Ok(()) => Piece::Done,
            Err(e) => Piece::Failed(e),
        };
        // A closed queue: the client went away and nothing is left to tell.
        let _ = tx.blocking_send(end);
    });
    let first = match rx.recv().await {
        Some(Piece::Bytes(bytes)) => bytes,
        Some(Piece::Failed(e)) => return Err(e.into()),
        Some(Piece::Done) | None => {
            return Err(ApiError::internal("the answer's worker ended before writing it").into())
        }
    };
    let body = Body::from_stream(Streamed {
        first: Some(first),
        rx,
        ended: false,
    });
    Ok(([(header::CONTENT_TYPE, body::content_type(encoding))], body).into_response())
}

/// The body of a streamed answer: the first piece, then the producer's, until it says done. A
/// failure, or a producer gone without saying done, is an error of the body: the connection is
/// cut rather than the answer ended short.
struct Streamed {
    first: Option<Vec<u8>>,
    rx: mpsc::Receiver<Piece>,
    ended: bool,
}

impl futures_core::Stream for Streamed {
    type Item = Result<bytes::Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(bytes::Bytes::from(first))));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        let cut = |why: String| {
            tracing::error!(reason = %why, "a streamed answer was cut");
            Some(Err(std::io::Error::other(why)))
        };
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Piece::Bytes(bytes))) => {
                Poll::Ready(Some(Ok(bytes::Bytes::from(bytes))))
            }
            Poll::Ready(Some(Piece::Done)) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Piece::Failed(e))) => {
                self.ended = true;
                Poll::Ready(cut(e.message))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(cut("the answer's worker ended before finishing it".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_core::Stream;

    use super::*;

    fn drain(mut stream: Streamed) -> Vec<Result<Vec<u8>, String>> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut out = Vec::new();
        loop {
            match Pin::new(&mut stream).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(b))) => out.push(Ok(b.to_vec())),
                Poll::Ready(Some(Err(e))) => out.push(Err(e.to_string())),
                Poll::Ready(None) => return out,
                Poll::Pending => panic!("a test stream never waits"),
            }
        }
    }

    fn stream_of(pieces: Vec<Piece>) -> Streamed {
        let (tx, rx) = mpsc::channel(pieces.len().max(1));
        for piece in pieces {
            tx.try_send(piece).ok().unwrap();
        }
        Streamed {
            first: Some(b"first".to_vec()),
            rx,
            ended: false,
        }
    }

    #[test]
    fn a_streamed_body_ends_only_when_the_producer_says_done() {
        let out = drain(stream_of(vec![Piece::Bytes(b"more".to_vec()), Piece::Done]));
        assert_eq!(out, vec![Ok(b"first".to_vec()), Ok(b"more".to_vec())]);
    }

    #[test]
    fn a_failure_mid_stream_is_an_error_of_the_body_not_a_short_answer() {
        let failed = drain(stream_of(vec![Piece::Failed(ApiError::internal("disk"))]));
        assert_eq!(failed.len(), 2);
        assert!(
            matches!(&failed[1], Err(why) if why.contains("disk")),
            "{failed:?}"
        );
        // The producer gone without saying done (it panicked): cut as well.
        let gone = drain(stream_of(vec![Piece::Bytes(b"more".to_vec())]));
        assert_eq!(gone.len(), 3);
        assert!(gone[2].is_err(), "{gone:?}");
    }
}

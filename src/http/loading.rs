//! From parsed records to durable batches, shared by `POST /v1/ingest` and `courbe ingest`.
//!
//! A [`BatchSink`] receives the parser's rows with their line numbers, fills engine batches of
//! a bounded size and keeps the rejected records. Points the engine's batch refuses are
//! rejected by their line like any unreadable record. Daily energy goes to
//! [`Channel::DAILY_ENERGY`]; an index reading to the channel of its register, which
//! [`Store::index_channel`] assigns (durably) on the first use of a name, whatever becomes of the
//! batch.

use serde::Serialize;

use super::error::ApiError;
use crate::engine::{self, Batch, InvalidPoint, Store};
use crate::ingest::{self, Daily, Format, Rejected, Sink};
use crate::{Channel, Point};

/// When full batches reach the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Each batch as soon as it is full: memory stays bounded on inputs of any size, and a
    /// document error late in the input leaves the earlier batches ingested.
    Streaming,
    /// Every batch once the whole document was read: a document error ingests nothing.
    WholeDocument,
}

/// Rejected records an answer of `POST /v1/ingest` lists; the others are only counted, so that a
/// body of bad lines costs no more memory than its own bytes.
pub const KEPT_REJECTED: usize = 1_000;

/// How a [`BatchSink`] behaves.
#[derive(Clone, Copy, Debug)]
pub struct SinkConfig {
    pub delivery: Delivery,
    /// Points per [`Store::ingest`] call.
    pub batch_points: usize,
    /// Rejected records kept to be shown; the others are only counted.
    pub keep_rejected: usize,
}

/// Collects parsed rows into engine batches.
pub struct BatchSink<'a> {
    store: &'a Store,
    config: SinkConfig,
    current: Batch,
    waiting: Vec<Batch>,
    accepted: u64,
    rejected: Vec<Rejected>,
    rejected_count: u64,
    /// The first engine failure; rows after it are dropped.
    failure: Option<engine::Error>,
    /// Hook (governance): consent screening of every batch before the store.
    consent: Option<&'a crate::governance::Governance>,
    refused_by_consent: u64,
    /// Register names already resolved to their channels.
    registers: std::collections::HashMap<String, Channel>,
}

impl<'a> BatchSink<'a> {
    pub fn new(store: &'a Store, config: SinkConfig) -> BatchSink<'a> {
        BatchSink {
            store,
            config,
            current: Batch::new(),
            waiting: Vec::new(),
            accepted: 0,
            rejected: Vec::new(),
            rejected_count: 0,
            failure: None,
            consent: None,
            refused_by_consent: 0,
            registers: std::collections::HashMap::new(),
        }
    }

    /// Screens every batch with `gov`'s consent registry before it reaches the store: refused
    /// curve points are counted, never stored.
    pub fn with_consent(mut self, gov: Option<&'a crate::governance::Governance>) -> Self {
        self.consent = gov;
        self
    }

    fn deliver(&mut self, batch: Batch) {
        if self.failure.is_some() || batch.is_empty() {
            return;
        }
        let ingested = match self.consent {
            Some(gov) => gov.ingest(self.store, &batch).map(|(kept, screening)| {
                self.refused_by_consent += screening.refused_points;
                kept
            }),
            None => self.store.ingest(&batch).map(|()| batch.len() as u64),
        };
        match ingested {
            Ok(kept) => self.accepted += kept,
            Err(e) => self.failure = Some(e),
        }
    }

    /// Ingests what is left; the report of the whole input.
    pub fn finish(mut self) -> Result<IngestReport, engine::Error> {
        let last = std::mem::take(&mut self.current);
        let waiting = std::mem::take(&mut self.waiting);
        for batch in waiting.into_iter().chain(std::iter::once(last)) {
            self.deliver(batch);
        }
        match self.failure {
            Some(e) => Err(e),
            None => Ok(IngestReport {
                accepted: self.accepted,
                rejected: self.rejected,
                rejected_count: self.rejected_count,
                refused_by_consent: self.refused_by_consent,
            }),
        }
    }

    /// Points ingested so far (streaming delivery).
    pub fn accepted(&self) -> u64 {
        self.accepted
    }
}

impl Sink for BatchSink<'_> {
    fn point(&mut self, line: u64, meter: &str, channel: Channel, point: Point) {
        if self.failure.is_some() {
            return;
        }
        if let Err(InvalidPoint(reason)) = self.current.push(meter, channel, point) {
            self.reject(Rejected { line, reason });
            return;
        }
        if self.current.len() >= self.config.batch_points {
            let full = std::mem::take(&mut self.current);
            match self.config.delivery {
                Delivery::Streaming => self.deliver(full),
                Delivery::WholeDocument => self.waiting.push(full),
            }
        }
    }

    fn reject(&mut self, rejected: Rejected) {
        self.rejected_count += 1;
        if self.rejected.len() < self.config.keep_rejected {
            self.rejected.push(rejected);
        }
    }

    fn daily(&mut self, line: u64, meter: &str, daily: Daily<&str>, point: Point) {
        if self.failure.is_some() {
            return;
        }
        let channel = match daily {
            Daily::Energy => Channel::DAILY_ENERGY,
            Daily::Index(name) => match self.registers.get(name) {
                Some(channel) => *channel,
                None => match self.store.index_channel(name) {
                    Ok(channel) => {
                        self.registers.insert(name.to_owned(), channel);
                        channel
                    }
                    Err(engine::Error::InvalidArgument(reason)) => {
                        self.reject(Rejected { line, reason });
                        return;
                    }
                    Err(e) => {
                        self.failure = Some(e);
                        return;
                    }
                },
            },
        };
        self.point(line, meter, channel, point);
    }
}

/// What an input gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Points made durable.
    pub accepted: u64,
    /// The first rejected records (all of them unless the sink was told to keep fewer).
    pub rejected: Vec<Rejected>,
    pub rejected_count: u64,
    /// Curve points refused because collection consent is revoked (never stored).
    pub refused_by_consent: u64,
}

/// The answer of `POST /v1/ingest`.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IngestBody {
    pub accepted: u64,
    /// The first [`KEPT_REJECTED`] rejected records.
    pub rejected: Vec<RejectedJson>,
    /// Every rejected record, listed or not; present only when `rejected` does not list them all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_count: Option<u64>,
    /// Present when consent refused curve points of the input.
    #[serde(skip_serializing_if = "is_zero")]
    pub refused_by_consent: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RejectedJson {
    pub line: u64,
    pub reason: String,
}

impl From<IngestReport> for IngestBody {
    fn from(report: IngestReport) -> IngestBody {
        let unlisted = report.rejected_count > report.rejected.len() as u64;
        IngestBody {
            accepted: report.accepted,
            rejected: report
                .rejected
                .into_iter()
                .map(|r| RejectedJson {
                    line: r.line,
                    reason: r.reason,
                })
                .collect(),
            rejected_count: unlisted.then_some(report.rejected_count),
            refused_by_consent: report.refused_by_consent,
        }
    }
}

/// Reads a whole document held in memory and ingests it; a document error ingests nothing. The
/// report keeps the first [`KEPT_REJECTED`] rejected records.
pub fn ingest_document(
    store: &Store,
    input: &[u8],
    format: Format,
    channel: Channel,
    batch_points: usize,
) -> Result<IngestReport, ApiError> {
    ingest_document_screened(store, None, input, format, channel, batch_points)
}

/// [`ingest_document`], each batch screened by `consent` first.
pub fn ingest_document_screened(
    store: &Store,
    consent: Option<&crate::governance::Governance>,
    input: &[u8],
    format: Format,
    channel: Channel,
    batch_points: usize,
) -> Result<IngestReport, ApiError> {
    let mut sink = BatchSink::new(
        store,
        SinkConfig {
            delivery: Delivery::WholeDocument,
            batch_points,
            keep_rejected: KEPT_REJECTED,
        },
    )
    .with_consent(consent);
    ingest::parse_into(input, format, channel, &mut sink)?;
    Ok(sink.finish()?)
}

/// Ingests a price CSV (`ingest::parse_price_csv_into`) into series `series` as one whole
/// document, through the consent gate like every ingest (consent never screens prices).
pub fn ingest_prices_screened(
    store: &Store,
    consent: Option<&crate::governance::Governance>,
    input: &[u8],
    series: &str,
    batch_points: usize,
) -> Result<IngestReport, ApiError> {
    crate::engine::check_price_series_id(series).map_err(ApiError::invalid)?;
    let mut sink = BatchSink::new(
        store,
        SinkConfig {
            delivery: Delivery::WholeDocument,
            batch_points,
            keep_rejected: KEPT_REJECTED,
        },
    )
    .with_consent(consent);
    ingest::parse_price_csv_into(input, series, &mut sink)?;
    Ok(sink.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Options;
    use crate::source::SeriesSource;

    fn csv_rows(meter: &str, rows: usize) -> String {
        let mut csv = String::from("meter_id,ts,value_w\n");
        for i in 0..rows {
            // Half-hours from 2024-01-15T00:00:00Z.
            csv.push_str(&format!("{meter},{},{}\n", format_ts(i), 100 + i));
        }
        csv
    }

    fn format_ts(i: usize) -> String {
        crate::question::format_ts(1_705_276_800 + 1_800 * i as i64)
    }

    #[test]
    fn small_batches_still_land_every_point() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let csv = csv_rows("m1", 48);
        let report = ingest_document(
            &store,
            csv.as_bytes(),
            Format::Csv,
            Channel::CONSUMPTION,
            10,
        )
        .unwrap();
        assert_eq!(report.accepted, 48);
        assert_eq!(report.rejected_count, 0);
        let points = crate::query::curve(
            &*store.snapshot(),
            "m1",
            Channel::CONSUMPTION,
            1_705_276_800,
            1_705_276_800 + 2 * 86_400,
        )
        .unwrap();
        assert_eq!(points.len(), 48);
        assert_eq!(points.last().map(|p| p.value), Some(147));
    }

    #[test]
    fn rejects_beyond_the_kept_ones_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let mut sink = BatchSink::new(
            &store,
            SinkConfig {
                delivery: Delivery::Streaming,
                batch_points: 100,
                keep_rejected: 2,
            },
        );
        let bad = format!("{}m1,oops,1\nm1,oops,2\nm1,oops,3\n", csv_rows("m1", 2));
        ingest::parse_into(bad.as_bytes(), Format::Csv, Channel::CONSUMPTION, &mut sink).unwrap();
        let report = sink.finish().unwrap();
        assert_eq!(report.accepted, 2);
        assert_eq!(report.rejected_count, 3);
        let lines: Vec<u64> = report.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![4, 5]);
        assert!(store.snapshot().has_meter("m1"));
    }

    #[test]
    fn a_point_the_engine_refuses_is_rejected_by_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let mut sink = BatchSink::new(
            &store,
            SinkConfig {
                delivery: Delivery::WholeDocument,
                batch_points: 100,
                keep_rejected: 10,
            },
        );
        let point = Point {
            ts_utc: 1_705_276_800,
            value: 1,
            step_min: 30,
            quality: crate::Quality::Measured,
        };
        sink.point(7, "not a meter id", Channel::CONSUMPTION, point);
        sink.point(8, "m1", Channel::CONSUMPTION, point);
        sink.point(9, "..", Channel::CONSUMPTION, point);
        sink.point(10, ".", Channel::CONSUMPTION, point);
        let report = sink.finish().unwrap();
        assert_eq!(report.accepted, 1);
        let lines: Vec<u64> = report.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [7, 9, 10], "meter ids of dots are refused too");
    }
}

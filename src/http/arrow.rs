//! Answers as Apache Arrow IPC streams (`format=arrow`, or `Accept:
//! application/vnd.apache.arrow.stream`), for curves, energy, the fleet curve and fleet energy.
//!
//! An answer is one IPC *stream* (schema, dictionaries, record batches, end-of-stream marker):
//! `pyarrow.ipc.open_stream(body).read_all()` reads it into a table. Its rows are the rows of the
//! CSV answer, in the same order; the schema's metadata carries what the JSON answer says once.
//!
//! | answer | columns | schema metadata |
//! |---|---|---|
//! | curve | `ts` timestamp\[s, UTC\] (the interval's start), `value` int32, `step_min` uint16, `quality` dictionary\<uint8, utf8\> | `meter`, `channel`, `unit` (`W`, or `VA` for `max_power`) |
//! | energy | `start`, `end` timestamp\[s, UTC\], `energy_wh` float64, `points`, `expected_points` uint64, then `hp_wh`, `hc_wh` float64 with a tariff, `{register}_wh` float64 per register with `tariff=option:` or `contract`, then `source` dictionary\<uint8, utf8\> | `meter`, `channel`, `unit` (`Wh`), `tz` |
//! | fleet curve | `ts` timestamp\[s, UTC\], `value` int64 (the sum), `meters` uint32 | `channel`, `unit` |
//! | fleet energy | `meter_id` utf8, `start`, `end` timestamp\[s, UTC\], `energy_wh` float64 | `unit` (`Wh`), `tz` |
//!
//! `value` also carries its unit in the field's metadata (`unit`). Energy is float64 Wh because
//! it is exact W·min divided by 60, as in JSON. The `quality` dictionary is always
//! `measured, estimated, corrected` (keys 0, 1, 2: the format's quality codes) and `source`'s
//! always `none, curve, daily, index`, so that every batch of a stream shares them.
//!
//! An error is never an Arrow stream: it is found before the first byte and answered as JSON
//! with its status (a streamed fleet answer cut mid-way is described in the server's
//! `http::stream`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::types::UInt8Type;
use arrow_array::{
    ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampSecondArray, UInt16Array, UInt32Array, UInt64Array, UInt8Array,
};
use arrow_buffer::ToByteSlice;
use arrow_ipc::writer::{
    write_message, CompressionContext, DictionaryTracker, IpcDataGenerator, IpcWriteOptions,
    StreamWriter,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use super::body::{
    AnswerBody, CurveBody, EnergyBody, FleetCurveBody, FleetEnergyBody, FleetPointJson,
    MeterEnergyJson,
};
use crate::error::ApiError;
use storage_format::block::DecodedBlock;

use crate::Quality;

/// The media type of an Arrow IPC stream.
pub const MEDIA_TYPE: &str = "application/vnd.apache.arrow.stream";

/// The `source` dictionary of energy answers, in this order.
const SOURCES: [&str; 4] = ["none", "curve", "daily", "index"];

fn encode_error(e: ArrowError) -> ApiError {
    ApiError::internal(format!("cannot encode the answer in Arrow: {e}"))
}

fn utc_seconds() -> DataType {
    DataType::Timestamp(TimeUnit::Second, Some("UTC".into()))
}

fn dictionary() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Utf8))
}

fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn timestamps(seconds: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampSecondArray::from(seconds).with_timezone("UTC"))
}

fn dictionary_array(keys: Vec<u8>, values: &[&str]) -> Result<ArrayRef, ApiError> {
    let values: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
    let array = DictionaryArray::<UInt8Type>::try_new(UInt8Array::from(keys), values)
        .map_err(encode_error)?;
    Ok(Arc::new(array))
}

/// An IPC stream being written into memory: the schema first, then batches, each taken out of
/// the buffer as soon as written ([`ArrowStream::take`]).
pub struct ArrowStream {
    schema: SchemaRef,
    writer: StreamWriter<Vec<u8>>,
}

impl ArrowStream {
    pub fn new(schema: Schema) -> Result<ArrowStream, ApiError> {
        let schema = Arc::new(schema);
        let writer = StreamWriter::try_new(Vec::new(), &schema).map_err(encode_error)?;
        Ok(ArrowStream { schema, writer })
    }

    /// Writes one record batch of `columns` (in the schema's order).
    pub fn write(&mut self, columns: Vec<ArrayRef>) -> Result<(), ApiError> {
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(encode_error)?;
        self.writer.write(&batch).map_err(encode_error)
    }

    /// The bytes written since the last call.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.get_mut())
    }

    /// Writes the end-of-stream marker; returns the bytes not yet taken.
    pub fn finish(mut self) -> Result<Vec<u8>, ApiError> {
        self.writer.finish().map_err(encode_error)?;
        self.writer.into_inner().map_err(encode_error)
    }

    /// A whole stream of one batch.
    fn single(schema: Schema, columns: Vec<ArrayRef>) -> Result<Vec<u8>, ApiError> {
        let mut stream = ArrowStream::new(schema)?;
        stream.write(columns)?;
        stream.finish()
    }
}

fn curve_schema(meter: &str, channel: &str, unit: &str) -> Schema {
    Schema::new_with_metadata(
        vec![
            Field::new("ts", utc_seconds(), false),
            Field::new("value", DataType::Int32, false).with_metadata(metadata(&[("unit", unit)])),
            Field::new("step_min", DataType::UInt16, false),
            Field::new("quality", dictionary(), false),
        ],
        metadata(&[("meter", meter), ("channel", channel), ("unit", unit)]),
    )
}

/// Alignment of every message and buffer of a stream (that of `IpcWriteOptions::default()`).
const ALIGN: usize = 64;

/// A curve's points as one IPC stream, written from its columns: the schema and the quality
/// dictionary by `arrow_ipc`, the record batch's message header with the flatbuffer calls
/// `arrow_ipc` makes, and its body copied once from the columns into a buffer of the stream's
/// exact length. The bytes are `StreamWriter`'s for the same batch (tested).
pub fn curve(
    meter: &str,
    channel: &str,
    unit: &str,
    columns: &DecodedBlock,
) -> Result<Vec<u8>, ApiError> {
    let n = columns.len();
    let schema = curve_schema(meter, channel, unit);
    let options = IpcWriteOptions::default();
    let generator = IpcDataGenerator::default();
    let mut tracker = DictionaryTracker::new(false);
    let schema_message =
        generator.schema_to_bytes_with_dictionary_tracker(&schema, &mut tracker, &options);
    // A dictionary message carries the whole dictionary whatever the keys: those of a batch of
    // no rows are those of any batch.
    let no_rows = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            timestamps(Vec::new()),
            Arc::new(Int32Array::from(Vec::<i32>::new())),
            Arc::new(UInt16Array::from(Vec::<u16>::new())),
            dictionary_array(Vec::new(), &Quality::ALL.map(Quality::as_str))?,
        ],
    )
    .map_err(encode_error)?;
    let (dictionaries, _) = generator
        .encode(
            &no_rows,
            &mut tracker,
            &options,
            &mut CompressionContext::default(),
        )
        .map_err(encode_error)?;
    let lens = [8 * n, 4 * n, 2 * n, n];
    let body_len: usize = lens.iter().map(|l| l.next_multiple_of(ALIGN)).sum();
    let header = curve_batch_header(n, lens, body_len);
    let header_len = (header.len() + 8).next_multiple_of(ALIGN);
    let prefix = (schema_message.ipc_message.len() + 8).next_multiple_of(ALIGN)
        + dictionaries
            .iter()
            .map(|d| (d.ipc_message.len() + 8).next_multiple_of(ALIGN) + d.arrow_data.len())
            .sum::<usize>();
    let mut out = Vec::with_capacity(prefix + header_len + body_len + 8);
    write_message(&mut out, schema_message, &options).map_err(encode_error)?;
    for d in dictionaries {
        write_message(&mut out, d, &options).map_err(encode_error)?;
    }
    out.extend_from_slice(&CONTINUATION);
    out.extend_from_slice(&((header_len - 8) as i32).to_le_bytes());
    out.extend_from_slice(&header);
    out.resize(out.len() + header_len - 8 - header.len(), 0);
    // The body: each column's values as Arrow lays them out (native order), each padded to
    // the alignment.
    let pad = |out: &mut Vec<u8>, len: usize| {
        out.resize(out.len() + len.next_multiple_of(ALIGN) - len, 0)
    };
    out.extend_from_slice(columns.ts_utc.to_byte_slice());
    pad(&mut out, lens[0]);
    out.extend_from_slice(columns.value.to_byte_slice());
    pad(&mut out, lens[1]);
    out.extend_from_slice(columns.step_min.to_byte_slice());
    pad(&mut out, lens[2]);
    out.extend(columns.quality.iter().map(|&q| q as u8));
    pad(&mut out, lens[3]);
    out.extend_from_slice(&CONTINUATION);
    out.extend_from_slice(&0i32.to_le_bytes());
    Ok(out)
}

/// The start of every message of a stream, and of its end-of-stream marker.
const CONTINUATION: [u8; 4] = [0xFF; 4];

/// The flatbuffer of a curve batch's message: `rows` rows, four columns without nulls whose
/// values take `lens` bytes, each column an empty validity buffer then its values, each padded to
/// [`ALIGN`] (what `arrow_ipc`'s `record_batch_to_bytes` builds, call for call).
fn curve_batch_header(rows: usize, lens: [usize; 4], body_len: usize) -> Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let mut buffers = Vec::with_capacity(2 * lens.len());
    let mut offset = 0usize;
    for len in lens {
        buffers.push(arrow_ipc::Buffer::new(offset as i64, 0));
        buffers.push(arrow_ipc::Buffer::new(offset as i64, len as i64));
        offset += len.next_multiple_of(ALIGN);
    }
    let nodes = [arrow_ipc::FieldNode::new(rows as i64, 0); 4];
    let buffers = fbb.create_vector(&buffers);
    let nodes = fbb.create_vector(&nodes);
    let batch = {
        let mut b = arrow_ipc::RecordBatchBuilder::new(&mut fbb);
        b.add_length(rows as i64);
        b.add_nodes(nodes);
        b.add_buffers(buffers);
        b.finish().as_union_value()
    };
    let mut message = arrow_ipc::MessageBuilder::new(&mut fbb);
    message.add_version(arrow_ipc::MetadataVersion::V5);
    message.add_header_type(arrow_ipc::MessageHeader::RecordBatch);
    message.add_bodyLength(body_len as i64);
    message.add_header(batch);
    let root = message.finish();
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}

fn curve_of_body(body: &CurveBody) -> Result<Vec<u8>, ApiError> {
    let quality = |name: &str| {
        Quality::ALL
            .iter()
            .position(|q| q.as_str() == name)
            .unwrap_or(0) as u8
    };
    let columns = vec![
        timestamps(body.points.iter().map(|p| p.ts_utc).collect()),
        Arc::new(Int32Array::from_iter_values(
            body.points.iter().map(|p| p.value),
        )) as ArrayRef,
        Arc::new(UInt16Array::from_iter_values(
            body.points.iter().map(|p| p.step_min),
        )),
        dictionary_array(
            body.points.iter().map(|p| quality(p.quality)).collect(),
            &Quality::ALL.map(Quality::as_str),
        )?,
    ];
    ArrowStream::single(curve_schema(&body.meter, body.channel, body.unit), columns)
}

fn energy(body: &EnergyBody) -> Result<Vec<u8>, ApiError> {
    let periods = &body.periods;
    let tariff = periods.iter().any(|p| p.by_tariff.is_some());
    let registers: Vec<String> = periods
        .first()
        .and_then(|p| p.by_register.as_ref())
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default();
    let mut fields = vec![
        Field::new("start", utc_seconds(), false),
        Field::new("end", utc_seconds(), false),
        Field::new("energy_wh", DataType::Float64, false),
        Field::new("points", DataType::UInt64, false),
        Field::new("expected_points", DataType::UInt64, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        timestamps(periods.iter().map(|p| p.start_utc).collect()),
        timestamps(periods.iter().map(|p| p.end_utc).collect()),
        Arc::new(Float64Array::from_iter_values(
            periods.iter().map(|p| p.energy_wh),
        )),
        Arc::new(UInt64Array::from_iter_values(
            periods.iter().map(|p| p.points),
        )),
        Arc::new(UInt64Array::from_iter_values(
            periods.iter().map(|p| p.expected_points),
        )),
    ];
    if tariff {
        fields.push(Field::new("hp_wh", DataType::Float64, true));
        fields.push(Field::new("hc_wh", DataType::Float64, true));
        columns.push(Arc::new(Float64Array::from_iter(
            periods.iter().map(|p| p.by_tariff.as_ref().map(|t| t.hp)),
        )));
        columns.push(Arc::new(Float64Array::from_iter(
            periods.iter().map(|p| p.by_tariff.as_ref().map(|t| t.hc)),
        )));
    }
    for register in &registers {
        fields.push(Field::new(
            format!("{register}_wh"),
            DataType::Float64,
            false,
        ));
        columns.push(Arc::new(Float64Array::from_iter_values(
            periods.iter().map(|p| {
                p.by_register
                    .as_ref()
                    .and_then(|b| b.get(register))
                    .copied()
                    .unwrap_or(0.0)
            }),
        )));
    }
    fields.push(Field::new("source", dictionary(), false));
    columns.push(dictionary_array(
        periods
            .iter()
            .map(|p| SOURCES.iter().position(|s| *s == p.source).unwrap_or(0) as u8)
            .collect(),
        &SOURCES,
    )?);
    let schema = Schema::new_with_metadata(
        fields,
        metadata(&[
            ("meter", &body.meter),
            ("channel", body.channel),
            ("unit", body.unit),
            ("tz", &body.tz),
        ]),
    );
    ArrowStream::single(schema, columns)
}

/// The schema of a fleet curve.
pub fn fleet_curve_schema(channel: &str, unit: &str) -> Schema {
    Schema::new_with_metadata(
        vec![
            Field::new("ts", utc_seconds(), false),
            Field::new("value", DataType::Int64, false).with_metadata(metadata(&[("unit", unit)])),
            Field::new("meters", DataType::UInt32, false),
        ],
        metadata(&[("channel", channel), ("unit", unit)]),
    )
}

/// The columns of a stretch of a fleet curve.
pub fn fleet_curve_columns(points: &[FleetPointJson]) -> Vec<ArrayRef> {
    vec![
        timestamps(points.iter().map(|p| p.ts_utc).collect()),
        Arc::new(Int64Array::from_iter_values(points.iter().map(|p| p.value))),
        Arc::new(UInt32Array::from_iter_values(
            points.iter().map(|p| p.meters),
        )),
    ]
}

/// The schema of fleet energy.
pub fn fleet_energy_schema(unit: &str, tz: &str) -> Schema {
    Schema::new_with_metadata(
        vec![
            Field::new("meter_id", DataType::Utf8, false),
            Field::new("start", utc_seconds(), false),
            Field::new("end", utc_seconds(), false),
            Field::new("energy_wh", DataType::Float64, false),
        ],
        metadata(&[("unit", unit), ("tz", tz)]),
    )
}

/// The columns of some meters' fleet energy, one row per meter and period.
pub fn fleet_energy_columns(meters: &[MeterEnergyJson]) -> Vec<ArrayRef> {
    let rows: usize = meters.iter().map(|m| m.periods.len()).sum();
    let mut ids = Vec::with_capacity(rows);
    let mut starts = Vec::with_capacity(rows);
    let mut ends = Vec::with_capacity(rows);
    let mut energy = Vec::with_capacity(rows);
    for m in meters {
        for p in &m.periods {
            ids.push(m.meter.as_str());
            starts.push(p.start_utc);
            ends.push(p.end_utc);
            energy.push(p.energy_wh);
        }
    }
    vec![
        Arc::new(StringArray::from(ids)),
        timestamps(starts),
        timestamps(ends),
        Arc::new(Float64Array::from(energy)),
    ]
}

fn fleet_curve(body: &FleetCurveBody) -> Result<Vec<u8>, ApiError> {
    ArrowStream::single(
        fleet_curve_schema(body.channel, body.unit),
        fleet_curve_columns(&body.points),
    )
}

fn fleet_energy(body: &FleetEnergyBody) -> Result<Vec<u8>, ApiError> {
    ArrowStream::single(
        fleet_energy_schema(body.unit, &body.tz),
        fleet_energy_columns(&body.meters),
    )
}

/// The Arrow stream of an answer that has one (curve points, energy, fleet curve, fleet energy).
pub fn answer(answer: &AnswerBody) -> Result<Vec<u8>, ApiError> {
    match answer {
        AnswerBody::Curve(body) => curve_of_body(body),
        AnswerBody::Energy(body) => energy(body),
        AnswerBody::FleetCurve(body) => fleet_curve(body),
        AnswerBody::FleetEnergy(body) => fleet_energy(body),
        AnswerBody::CurveRuns(_)
        | AnswerBody::Peak(_)
        | AnswerBody::Index(_)
        | AnswerBody::Summary(_) => Err(ApiError::internal(
            "this answer has no Arrow shape (refused when the question was read)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stream `StreamWriter` writes for a curve batch of `columns`.
    fn by_stream_writer(meter: &str, columns: &DecodedBlock) -> Vec<u8> {
        let arrays = vec![
            timestamps(columns.ts_utc.clone()),
            Arc::new(Int32Array::from(columns.value.clone())) as ArrayRef,
            Arc::new(UInt16Array::from(columns.step_min.clone())),
            dictionary_array(
                columns.quality.iter().map(|&q| q as u8).collect(),
                &Quality::ALL.map(Quality::as_str),
            )
            .expect("dictionary"),
        ];
        ArrowStream::single(curve_schema(meter, "consumption", "W"), arrays).expect("stream")
    }

    #[test]
    fn a_curve_written_from_its_columns_is_the_stream_writers_stream_byte_for_byte() {
        let mut x = 0x2545_F491u64;
        for n in [0usize, 1, 2, 3, 7, 8, 9, 63, 64, 65, 1488, 17_376] {
            let mut columns = DecodedBlock::default();
            let mut ts = 1_704_063_600i64;
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let step = [30u16, 10, 60][(x % 3) as usize];
                columns.ts_utc.push(ts);
                columns.value.push((x >> 20) as i32);
                columns.step_min.push(step);
                columns.quality.push(Quality::ALL[(x >> 40) as usize % 3]);
                ts += 60 * i64::from(step) * (1 + (x >> 50) as i64 % 2);
            }
            for meter in ["09111642617347", "m"] {
                let bytes = curve(meter, "consumption", "W", &columns).expect("stream");
                assert_eq!(bytes, by_stream_writer(meter, &columns), "{n} points");
                assert_eq!(bytes.capacity(), bytes.len(), "{n}: one allocation, exact");
            }
        }
    }
}

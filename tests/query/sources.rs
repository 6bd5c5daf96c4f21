//! Test implementations of `SeriesSource` over a resolved model.

use courbe::source::{Chunk, SeriesSource, SourceError};
use courbe::{Channel, Point};

use super::model::Model;

/// The model served as `Chunk::Points`, each series cut into chunks of `chunk_len` points.
pub struct MapSource {
    pub model: Model,
    pub chunk_len: usize,
}

impl SeriesSource for MapSource {
    fn has_meter(&self, meter: &str) -> bool {
        self.model.has_meter(meter)
    }

    fn meters(&self, channel: Channel) -> Vec<String> {
        self.model.meters(channel)
    }

    fn chunks(
        &self,
        meter: &str,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Vec<Chunk<'_>>, SourceError> {
        Ok(self
            .model
            .points(meter, channel)
            .chunks(self.chunk_len.max(1))
            .filter(|c| c.iter().any(|p| p.ts_utc >= from_utc && p.ts_utc < to_utc))
            .map(|c| Chunk::Points(c.to_vec()))
            .collect())
    }
}

/// How [`SegmentSource`] cuts a series into pieces.
#[derive(Clone, Copy, Debug)]
pub enum Cut {
    /// At every instant of `bounds` (local midnights, say): blocks whole periods cover.
    AtBounds,
    /// After every `n` points.
    Every(usize),
}

enum Piece {
    /// The `k`-th block of the series in the segment.
    Block(usize),
    Points(Vec<Point>),
}

/// The model as one in-memory segment: most pieces are blocks served with their summaries,
/// every `points_every`-th piece stays as points (newer data merged over older blocks).
pub struct SegmentSource {
    model: Model,
    bytes: Vec<u8>,
    pieces: std::collections::BTreeMap<(String, Channel), Vec<Piece>>,
}

impl SegmentSource {
    pub fn new(model: Model, cut: Cut, bounds: &[i64], points_every: usize) -> SegmentSource {
        use storage_format::segment::{SegmentBuilder, SegmentMeta};
        let mut bytes = Vec::new();
        let mut builder = SegmentBuilder::new(SegmentMeta::default(), &mut bytes);
        let mut pieces = std::collections::BTreeMap::new();
        let mut keys: Vec<&(String, Channel)> = model.series.keys().collect();
        keys.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(&b.1)));
        for key in keys {
            let points = &model.series[key];
            let mut runs: Vec<&[Point]> = Vec::new();
            let mut start = 0;
            for i in 1..=points.len() {
                let cut_here = i == points.len()
                    || match cut {
                        Cut::Every(n) => (i - start) >= n.max(1),
                        Cut::AtBounds => bounds
                            .iter()
                            .any(|&b| points[i - 1].ts_utc < b && points[i].ts_utc >= b),
                    };
                if cut_here {
                    runs.push(&points[start..i]);
                    start = i;
                }
            }
            let mut series_pieces = Vec::new();
            let mut blocks = 0;
            for (i, run) in runs.into_iter().enumerate() {
                if points_every > 0 && i % points_every == points_every - 1 {
                    series_pieces.push(Piece::Points(run.to_vec()));
                } else {
                    builder
                        .add_block(&key.0, key.1, run, &mut bytes)
                        .expect("valid block");
                    series_pieces.push(Piece::Block(blocks));
                    blocks += 1;
                }
            }
            pieces.insert(key.clone(), series_pieces);
        }
        builder.finish(&mut bytes).expect("segment finishes");
        SegmentSource {
            model,
            bytes,
            pieces,
        }
    }
}

impl SegmentSource {
    /// Flips a byte inside every block: decoding any of them fails its checksum, while the
    /// index and its summaries stay readable.
    pub fn corrupt_every_block(&mut self) {
        let segment = storage_format::segment::Segment::open(&self.bytes).expect("segment opens");
        let mut offsets = Vec::new();
        for series in segment.series() {
            for b in series.expect("index reads").blocks {
                offsets.push(b.offset as usize + b.encoded().len() / 2);
            }
        }
        for at in offsets {
            self.bytes[at] ^= 0x5A;
        }
    }
}

impl SeriesSource for SegmentSource {
    fn has_meter(&self, meter: &str) -> bool {
        self.model.has_meter(meter)
    }

    fn meters(&self, channel: Channel) -> Vec<String> {
        self.model.meters(channel)
    }

    fn chunks(
        &self,
        meter: &str,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Vec<Chunk<'_>>, SourceError> {
        let segment = storage_format::segment::Segment::open(&self.bytes)?;
        let blocks = segment.blocks(meter, channel)?;
        let Some(pieces) = self.pieces.get(&(meter.to_string(), channel)) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Block(k) => {
                    let b = blocks[*k];
                    // Like an index lookup: the block's span meets the range.
                    if b.summary.first_ts < to_utc && b.summary.last_ts >= from_utc {
                        out.push(Chunk::Block(b));
                    }
                }
                Piece::Points(points) => {
                    if points
                        .iter()
                        .any(|p| p.ts_utc >= from_utc && p.ts_utc < to_utc)
                    {
                        out.push(Chunk::Points(points.clone()));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The model served every way the tests know: as points in chunks of a few lengths, and as
/// segment blocks cut at `bounds` (so whole periods use summaries) or every few points, with
/// some pieces left as points.
pub fn all_sources(model: &Model, bounds: &[i64]) -> Vec<Box<dyn SeriesSource>> {
    vec![
        Box::new(SegmentSource::new(model.clone(), Cut::AtBounds, bounds, 0)),
        Box::new(SegmentSource::new(model.clone(), Cut::AtBounds, bounds, 3)),
        Box::new(SegmentSource::new(model.clone(), Cut::Every(50), bounds, 4)),
        Box::new(MapSource {
            model: model.clone(),
            chunk_len: 1,
        }),
        Box::new(MapSource {
            model: model.clone(),
            chunk_len: 37,
        }),
        Box::new(MapSource {
            model: model.clone(),
            chunk_len: usize::MAX,
        }),
    ]
}

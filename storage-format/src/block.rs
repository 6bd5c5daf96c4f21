//! The block codec: one meter's channel over a span of time.
//!
//! API contract (other crates code against it):
//! - [`encode_into`] appends the encoding of `points` to `out` and returns their summary.
//!   Preconditions (else `InvalidArgument`): 1 ≤ len ≤ [`MAX_POINTS`], `ts_utc` strictly increasing,
//!   `step_min` in 1..=[`crate::STEP_MIN_MAX`]. Any `i32` value and any quality are accepted.
//! - [`decode_from`] decodes exactly what one `encode_into` call appended (the whole slice)
//!   into columns, replacing `out`'s contents.
//! - Inside a v2 segment a block is a *body* (`encode_body_into` / `decode_body`, crate-private):
//!   the header fields its index entry holds or implies are left out.
//!
//! Layout and the measurements behind each encoding: `FORMAT.md` §2.

use crate::bits::{
    bit_width, pack, packed_len, put_varint, unpack, varint_len, zigzag32, zigzag64, Reader,
};
use crate::huffman;
use crate::rans;
use crate::{BlockSummary, Error, Point, Quality, STEP_MIN_MAX};

/// Most points one block may hold (a month of 5-minute points is 8,928).
pub const MAX_POINTS: usize = 65_536;

/// A decoded block as columns, all of the same length.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodedBlock {
    pub ts_utc: Vec<i64>,
    pub value: Vec<i32>,
    pub step_min: Vec<u16>,
    pub quality: Vec<Quality>,
}

impl DecodedBlock {
    pub fn len(&self) -> usize {
        self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    pub fn point(&self, i: usize) -> Option<Point> {
        Some(Point {
            ts_utc: *self.ts_utc.get(i)?,
            value: *self.value.get(i)?,
            step_min: *self.step_min.get(i)?,
            quality: *self.quality.get(i)?,
        })
    }

    pub fn points(&self) -> impl Iterator<Item = Point> + '_ {
        (0..self.len()).filter_map(|i| self.point(i))
    }
}

/// Values per bit-packing frame; each frame carries its own reference and width.
pub const FRAME_LEN: usize = 128;

/// Value codec tags (first byte of the value section).
const VALUES_FRAMES: u8 = 0;
const VALUES_HUFFMAN: u8 = 1;
const VALUES_TRAINED: u8 = 2;

/// Timestamp mode tags.
const TS_EXCEPTIONS: u8 = 0;
const TS_EXPLICIT: u8 = 1;
const TS_PACKED: u8 = 2;
/// Deviations from the grid anchored at the first point, through the value codec (since v2).
const TS_ANCHORED: u8 = 3;
/// Exceptions as in mode 0, deviations counted in steps when whole (since v2).
const TS_STEP_EXCEPTIONS: u8 = 4;

/// Summary of `points` as [`encode_into`] computes it (no validation).
pub fn summarize(points: &[Point]) -> BlockSummary {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return BlockSummary::default();
    };
    let mut s = BlockSummary {
        count: u32::try_from(points.len()).unwrap_or(u32::MAX),
        first_ts: first.ts_utc,
        last_ts: last.ts_utc,
        end_ts: i64::MIN,
        sum_value: 0,
        sum_energy_wmin: 0,
        min_value: first.value,
        min_ts: first.ts_utc,
        max_value: first.value,
        max_ts: first.ts_utc,
        non_measured: 0,
        step_min: first.step_min,
    };
    for p in points {
        s.sum_value = s.sum_value.wrapping_add(i64::from(p.value));
        s.sum_energy_wmin = s
            .sum_energy_wmin
            .wrapping_add(i64::from(p.value) * i64::from(p.step_min));
        if p.value < s.min_value {
            s.min_value = p.value;
            s.min_ts = p.ts_utc;
        }
        if p.value > s.max_value {
            s.max_value = p.value;
            s.max_ts = p.ts_utc;
        }
        s.non_measured += u32::from(p.quality != Quality::Measured);
        s.end_ts = s
            .end_ts
            .max(p.ts_utc.saturating_add(60 * i64::from(p.step_min)));
        if p.step_min != s.step_min {
            s.step_min = 0;
        }
    }
    s
}

fn invalid(what: String) -> Error {
    Error::InvalidArgument { what }
}

fn validate(points: &[Point]) -> Result<(), Error> {
    if points.is_empty() || points.len() > MAX_POINTS {
        return Err(invalid(format!(
            "a block holds 1 to {MAX_POINTS} points, not {}",
            points.len()
        )));
    }
    let mut prev: Option<i64> = None;
    for (i, p) in points.iter().enumerate() {
        if p.step_min == 0 || p.step_min > STEP_MIN_MAX {
            return Err(invalid(format!(
                "point {i}: step_min {} is outside 1..={STEP_MIN_MAX}",
                p.step_min
            )));
        }
        if let Some(prev) = prev {
            if p.ts_utc <= prev {
                return Err(invalid(format!(
                    "point {i}: ts_utc {} does not follow {prev}",
                    p.ts_utc
                )));
            }
        }
        prev = Some(p.ts_utc);
    }
    Ok(())
}

pub fn encode_into(points: &[Point], out: &mut Vec<u8>) -> Result<BlockSummary, Error> {
    validate(points)?;
    with_encoder(|encoder| encoder.encode(points, out));
    Ok(summarize(points))
}

/// The header of a block body (FORMAT.md §2, "Header and body"): what a v2 segment keeps in the
/// block's index entry instead of the block's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyHeader {
    /// Points, 1..=[`MAX_POINTS`] (it bounds every allocation).
    pub n: usize,
    pub first_ts: i64,
    /// Every point's step, or 0 when they vary (the body then holds the step runs).
    pub step_min: u16,
    /// Every point is on the grid of the steps (the body holds no timestamp section).
    pub on_grid: bool,
    /// Every point is measured (the body holds no quality section).
    pub all_measured: bool,
}

/// Appends the **body** of the block of `points`: what [`encode_into`] writes without `count`,
/// `first_ts`, the step runs when every point has the same step, the timestamps when every point
/// is on the grid and the quality when every point is measured. Returns the summary and the
/// header [`decode_body`] needs back. Same preconditions as [`encode_into`].
pub(crate) fn encode_body_into(
    points: &[Point],
    out: &mut Vec<u8>,
) -> Result<(BlockSummary, BodyHeader), Error> {
    validate(points)?;
    let summary = summarize(points);
    let header = BodyHeader {
        n: points.len(),
        first_ts: summary.first_ts,
        step_min: summary.step_min,
        on_grid: ts_deviations(points).all(|d| d == 0),
        all_measured: summary.non_measured == 0,
    };
    if summary.step_min == 0 {
        encode_steps(points, out);
    }
    with_encoder(|encoder| {
        if !header.on_grid {
            encoder.encode_timestamps(points, out);
        }
        if !header.all_measured {
            encode_quality(points, out);
        }
        encoder.encode_point_values(points, out);
    });
    Ok((summary, header))
}

thread_local! {
    /// Each thread's encoding scratch space, kept from block to block.
    static ENCODER: std::cell::RefCell<Encoder> = std::cell::RefCell::new(Encoder::default());
}

/// Runs `f` with this thread's [`Encoder`] (a fresh one if it is in use).
fn with_encoder<R>(f: impl FnOnce(&mut Encoder) -> R) -> R {
    ENCODER.with(|e| match e.try_borrow_mut() {
        Ok(mut e) => f(&mut e),
        Err(_) => f(&mut Encoder::default()),
    })
}

/// Reusable scratch space for encoding.
#[derive(Default)]
struct Encoder {
    values: Vec<i32>,
    residuals: Vec<i32>,
    zigzagged: Vec<u32>,
    profile: rans::Profile,
}

impl Encoder {
    fn encode(&mut self, points: &[Point], out: &mut Vec<u8>) {
        let n = points.len();
        put_varint(out, n as u64);
        put_varint(out, zigzag64(points[0].ts_utc));
        encode_steps(points, out);
        self.encode_sections(points, out);
    }

    /// Timestamps, quality and values: the sections after the steps.
    fn encode_sections(&mut self, points: &[Point], out: &mut Vec<u8>) {
        self.encode_timestamps(points, out);
        encode_quality(points, out);
        self.encode_point_values(points, out);
    }

    /// The value section of the points' values.
    fn encode_point_values(&mut self, points: &[Point], out: &mut Vec<u8>) {
        self.values.clear();
        self.values.extend(points.iter().map(|p| p.value));
        self.encode_values(day_lag(points), out);
    }

    fn encode_timestamps(&mut self, points: &[Point], out: &mut Vec<u8>) {
        let start = out.len();
        encode_timestamps(points, out);
        // Irregular timestamps: deviations through the value codec, when they fit in an i32.
        let devs: Option<Vec<i32>> = ts_deviations(points)
            .map(|d| i32::try_from(d).ok())
            .collect();
        match devs {
            Some(devs) if points.len() >= 2 => {
                let mut packed = vec![TS_PACKED];
                self.values = devs;
                self.encode_values(None, &mut packed);
                if packed.len() < out.len() - start {
                    out.truncate(start);
                    out.extend_from_slice(&packed);
                }
                // Regular series (a few bytes of exceptions) skip the second codec pass.
                if out.len() - start > 8 + points.len() / 8 {
                    self.encode_anchored(points, start, out);
                }
            }
            _ => {}
        }
    }

    /// Replaces the timestamp section at `out[start..]` with anchored deviations when they fit in
    /// i32 and are smaller.
    fn encode_anchored(&mut self, points: &[Point], start: usize, out: &mut Vec<u8>) {
        let mut anchor = 0i64;
        let anchored: Option<Vec<i32>> = ts_deviations(points)
            .map(|d| {
                anchor = anchor.checked_add(d)?;
                i32::try_from(anchor).ok()
            })
            .collect();
        let Some(anchored) = anchored else {
            return;
        };
        let mut section = vec![TS_ANCHORED];
        self.values = anchored;
        self.encode_values(None, &mut section);
        if section.len() < out.len() - start {
            out.truncate(start);
            out.extend_from_slice(&section);
        }
    }

    /// Appends the value section coding `self.values`.
    fn encode_values(&mut self, day_lag: Option<usize>, out: &mut Vec<u8>) {
        let n = self.values.len();
        // Every lag is scored by a cheap estimate (the sum of its residuals' bit widths) and
        // sized exactly for frames; the best FINALISTS are then sized exactly with the Huffman
        // and trained codecs (FORMAT.md §2.6: as small as scoring by entropy, 40% faster).
        let mut lags: Vec<usize> = LAGS.iter().copied().chain(day_lag).collect();
        lags.sort_unstable();
        lags.dedup();
        lags.retain(|&lag| lag <= 1 || lag < n);
        let (mut for_lag, mut for_len) = (1, usize::MAX);
        let mut scored: Vec<(u64, usize)> = Vec::with_capacity(lags.len());
        for &lag in &lags {
            self.zigzag_residuals(lag);
            let len = frames_len(&self.residuals);
            if len < for_len {
                (for_lag, for_len) = (lag, len);
            }
            let bits: u64 = self
                .zigzagged
                .iter()
                .map(|&u| u64::from(32 - u.leading_zeros()))
                .sum();
            scored.push((bits, lag));
        }
        scored.sort_unstable();
        let (mut huff_lag, mut huff_len) = (1, usize::MAX);
        let mut huff_lengths = [0u8; huffman::SYMBOLS];
        let mut best_plan: Option<(usize, rans::Plan)> = None;
        for &(_, lag) in scored.iter().take(FINALISTS) {
            self.zigzag_residuals(lag);
            // One pass gives the trained codec's histograms per context and, summed, Huffman's.
            self.profile.fill(&self.zigzagged);
            let mut counts = [0u64; huffman::SYMBOLS];
            self.profile.add_bin_counts(&mut counts);
            let lengths = huffman::code_lengths(&counts);
            let payload = huffman::payload_bits(&counts, &lengths).div_ceil(8) as usize;
            let len = huffman::table_len(&lengths) + 2 * varint_len(payload as u64 / 2) + payload;
            if len < huff_len {
                (huff_lag, huff_len, huff_lengths) = (lag, len, lengths);
            }
            let plan = self.profile.plan();
            if best_plan.as_ref().is_none_or(|(_, p)| plan.len < p.len) {
                best_plan = Some((lag, plan));
            }
        }
        // The trained codec when its exact length is the smallest.
        if let Some((lag, plan)) = best_plan {
            if plan.len < huff_len.min(for_len) + 8 {
                let mut body = vec![VALUES_TRAINED];
                put_varint(&mut body, lag as u64);
                self.zigzag_residuals(lag);
                rans::encode(&self.zigzagged, &plan, &mut body);
                let other = if huff_len < for_len {
                    varint_len(huff_lag as u64) + huff_len
                } else {
                    varint_len(for_lag as u64) + for_len
                };
                if body.len() < 1 + other {
                    out.extend_from_slice(&body);
                    return;
                }
            }
        }
        if huff_len < for_len {
            out.push(VALUES_HUFFMAN);
            put_varint(out, huff_lag as u64);
            self.zigzag_residuals(huff_lag);
            huffman::encode(&self.zigzagged, &huff_lengths, out);
            return;
        }
        residuals(&self.values, for_lag, &mut self.residuals);
        out.push(VALUES_FRAMES);
        put_varint(out, for_lag as u64);
        pack_frames(&self.residuals, out);
    }

    /// Fills `residuals` and `zigzagged` for `lag`.
    fn zigzag_residuals(&mut self, lag: usize) {
        residuals(&self.values, lag, &mut self.residuals);
        self.zigzagged.clear();
        self.zigzagged
            .extend(self.residuals.iter().map(|&r| zigzag32(r)));
    }
}

/// Lags the writer tries, besides the day's (FORMAT.md §2.4); the table trainer tries the same.
#[doc(hidden)]
pub const LAGS: [usize; 10] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

/// The zigzagged residuals of `values` at `lag`, as the writer codes them (for the table
/// trainer, `examples/train_tables.rs`).
#[doc(hidden)]
pub fn zigzagged_residuals(values: &[i32], lag: usize) -> Vec<u32> {
    let mut r = Vec::with_capacity(values.len());
    residuals(values, lag, &mut r);
    r.into_iter().map(zigzag32).collect()
}
/// The length of the value section (§2.4) the writer codes for `values`, with the day's lag
/// `day_lag` among its candidates (for the value-model study, `examples/value_models.rs`).
#[doc(hidden)]
pub fn value_section_len(values: &[i32], day_lag: Option<usize>) -> usize {
    if values.is_empty() {
        return 0;
    }
    with_encoder(|e| {
        e.values.clear();
        e.values.extend_from_slice(values);
        let mut out = Vec::new();
        e.encode_values(day_lag, &mut out);
        out.len()
    })
}

/// Lags sized exactly with the entropy codecs, best estimates first.
const FINALISTS: usize = 3;

/// Lag (in points) of "the same slot on the previous day" when every point shares one step that
/// divides a day.
fn day_lag(points: &[Point]) -> Option<usize> {
    let step = points.first()?.step_min;
    if points.iter().any(|p| p.step_min != step) || 1440 % step != 0 || step == 1440 {
        return None;
    }
    Some(usize::from(1440 / step))
}

/// Residual of each value against its prediction: lag 0 predicts 0; lag L predicts the value L
/// points earlier, or the previous value for the first L points (0 for the very first).
fn residuals(values: &[i32], lag: usize, out: &mut Vec<i32>) {
    out.clear();
    if lag == 0 {
        out.extend_from_slice(values);
        return;
    }
    // The first `lag` values predict from the one before (0 for the first); the rest from `lag`
    // back, in a loop without branches.
    let head = lag.min(values.len());
    let mut prev = 0i32;
    for &v in &values[..head] {
        out.push(v.wrapping_sub(prev));
        prev = v;
    }
    out.extend(
        values[head..]
            .iter()
            .zip(values)
            .map(|(&v, &pred)| v.wrapping_sub(pred)),
    );
}

fn frame_params(frame: &[i32]) -> (i32, u32) {
    let min = frame.iter().copied().min().unwrap_or(0);
    let max = frame.iter().copied().max().unwrap_or(0);
    (min, bit_width(max.wrapping_sub(min) as u32))
}

fn frames_len(residuals: &[i32]) -> usize {
    residuals
        .chunks(FRAME_LEN)
        .map(|frame| {
            let (min, width) = frame_params(frame);
            varint_len(u64::from(zigzag32(min))) + 1 + packed_len(frame.len(), width)
        })
        .sum()
}

fn pack_frames(residuals: &[i32], out: &mut Vec<u8>) {
    let mut offsets = [0u32; FRAME_LEN];
    for frame in residuals.chunks(FRAME_LEN) {
        let (min, width) = frame_params(frame);
        put_varint(out, u64::from(zigzag32(min)));
        out.push(width as u8);
        for (o, &r) in offsets.iter_mut().zip(frame) {
            *o = r.wrapping_sub(min) as u32;
        }
        pack(&offsets[..frame.len()], width, out);
    }
}

fn encode_steps(points: &[Point], out: &mut Vec<u8>) {
    let mut runs: Vec<(u16, usize)> = Vec::new();
    for p in points {
        match runs.last_mut() {
            Some((step, len)) if *step == p.step_min => *len += 1,
            _ => runs.push((p.step_min, 1)),
        }
    }
    put_varint(out, runs.len() as u64);
    for (step, len) in runs {
        put_varint(out, u64::from(step));
        put_varint(out, len as u64);
    }
}

/// Deviation of each timestamp from "previous timestamp + previous step", for points 1..n.
fn ts_deviations(points: &[Point]) -> impl Iterator<Item = i64> + '_ {
    points.windows(2).map(|w| {
        let expected = 60 * i64::from(w[0].step_min);
        w[1].ts_utc.wrapping_sub(w[0].ts_utc).wrapping_sub(expected)
    })
}

/// A deviation `d` of a point whose grid step is `unit` seconds, in mode 4: `zigzag(d / unit) << 1`
/// when it is a whole number of steps, else `zigzag(d) << 1 | 1`; `None` when that overflows.
fn step_deviation_code(d: i64, unit: i64) -> Option<u64> {
    if d % unit == 0 {
        // |d / unit| ≤ 2^63 / 60: the zigzag fits in 59 bits.
        Some(zigzag64(d / unit) << 1)
    } else {
        let z = zigzag64(d);
        (z >> 63 == 0).then_some((z << 1) | 1)
    }
}

fn encode_timestamps(points: &[Point], out: &mut Vec<u8>) {
    let mut exceptions_len = 0usize;
    let mut step_exceptions_len = Some(0usize);
    let mut explicit_len = 0usize;
    let mut count = 0usize;
    let mut last = 0usize;
    for (i, dev) in ts_deviations(points).enumerate() {
        let zz = zigzag64(dev);
        explicit_len += varint_len(zz);
        if dev != 0 {
            count += 1;
            let gap_len = varint_len((i + 1 - last) as u64);
            exceptions_len += gap_len + varint_len(zz);
            let unit = 60 * i64::from(points[i].step_min);
            step_exceptions_len = step_exceptions_len
                .zip(step_deviation_code(dev, unit))
                .map(|(len, code)| len + gap_len + varint_len(code));
            last = i + 1;
        }
    }
    exceptions_len += varint_len(count as u64);
    let step_exceptions_len =
        step_exceptions_len.map_or(usize::MAX, |len| len + varint_len(count as u64));
    if step_exceptions_len < exceptions_len.min(explicit_len) {
        out.push(TS_STEP_EXCEPTIONS);
        put_varint(out, count as u64);
        let mut last = 0usize;
        for (i, dev) in ts_deviations(points).enumerate() {
            if dev != 0 {
                put_varint(out, (i + 1 - last) as u64);
                let unit = 60 * i64::from(points[i].step_min);
                put_varint(out, step_deviation_code(dev, unit).unwrap_or_default());
                last = i + 1;
            }
        }
    } else if exceptions_len <= explicit_len {
        out.push(TS_EXCEPTIONS);
        put_varint(out, count as u64);
        let mut last = 0usize;
        for (i, dev) in ts_deviations(points).enumerate() {
            if dev != 0 {
                put_varint(out, (i + 1 - last) as u64);
                put_varint(out, zigzag64(dev));
                last = i + 1;
            }
        }
    } else {
        out.push(TS_EXPLICIT);
        for dev in ts_deviations(points) {
            put_varint(out, zigzag64(dev));
        }
    }
}

fn encode_quality(points: &[Point], out: &mut Vec<u8>) {
    let mut runs: Vec<(usize, usize, Quality)> = Vec::new(); // (start, len, quality)
    for (i, p) in points.iter().enumerate() {
        if p.quality == Quality::Measured {
            continue;
        }
        match runs.last_mut() {
            Some((start, len, q)) if *q == p.quality && *start + *len == i => *len += 1,
            _ => runs.push((i, 1, p.quality)),
        }
    }
    put_varint(out, runs.len() as u64);
    let mut end = 0usize;
    for (start, len, q) in runs {
        put_varint(out, (start - end) as u64);
        put_varint(out, (((len - 1) as u64) << 1) | (q as u64 - 1));
        end = start + len;
    }
}

pub fn decode_from(bytes: &[u8], out: &mut DecodedBlock) -> Result<(), Error> {
    let mut r = Reader::new(bytes, 0);
    decode(&mut r, Tags::ALL, out)
}

/// The tags a block may use beyond version 1's (a v1 segment's writers never wrote them, so
/// there they are corruption).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tags {
    /// Timestamp mode 3 (§2.2).
    pub(crate) anchored_timestamps: bool,
    /// Timestamp mode 4 (§2.2).
    pub(crate) step_exceptions: bool,
    /// Value codec 2 (§2.5.2).
    pub(crate) trained_values: bool,
}

impl Tags {
    /// Every tag this crate knows.
    pub(crate) const ALL: Tags = Tags {
        anchored_timestamps: true,
        step_exceptions: true,
        trained_values: true,
    };
}

/// Decodes a whole block using only the tags `tags` allows.
pub(crate) fn decode(r: &mut Reader<'_>, tags: Tags, out: &mut DecodedBlock) -> Result<(), Error> {
    out.ts_utc.clear();
    out.value.clear();
    out.step_min.clear();
    out.quality.clear();
    let n = r.varint_in("block point count", 1, MAX_POINTS as u64)? as usize;
    let first_ts = r.zigzag64("block first ts")?;
    decode_steps(r, n, 1, &mut out.step_min)?;
    decode_sections(r, n, first_ts, tags, out)
}

/// Decodes what [`encode_body_into`] wrote into columns, replacing `out`'s contents, with the
/// header from the block's index entry. When `h.step_min` = 0 the body holds at least two step
/// runs. Bodies exist since v2: timestamp modes 3 and 4 are valid.
pub(crate) fn decode_body(
    r: &mut Reader<'_>,
    h: &BodyHeader,
    out: &mut DecodedBlock,
) -> Result<(), Error> {
    out.ts_utc.clear();
    out.value.clear();
    out.step_min.clear();
    out.quality.clear();
    let n = h.n;
    if n == 0 || n > MAX_POINTS || h.step_min > STEP_MIN_MAX {
        return Err(r.corruption("block point count", MAX_POINTS as u64, n as u64));
    }
    if h.step_min == 0 {
        decode_steps(r, n, 2, &mut out.step_min)?;
    } else {
        out.step_min.resize(n, h.step_min);
    }
    if h.on_grid {
        out.ts_utc.reserve(n);
        out.ts_utc.push(h.first_ts);
        let mut t = h.first_ts;
        let steps = out.step_min.get(..n - 1).unwrap_or_default();
        extend_grid(r, &mut out.ts_utc, &mut t, steps)?;
    } else {
        decode_timestamps(r, n, h.first_ts, &out.step_min, Tags::ALL, &mut out.ts_utc)?;
    }
    if h.all_measured {
        out.quality.resize(n, Quality::Measured);
    } else {
        decode_quality(r, n, &mut out.quality)?;
    }
    decode_values(r, n, Tags::ALL, &mut out.value)?;
    if !r.is_empty() {
        return Err(r.corruption("bytes after the block", 0, r.remaining() as u64));
    }
    Ok(())
}

/// Timestamps, quality and values, once the steps are known; then the end of the block.
fn decode_sections(
    r: &mut Reader<'_>,
    n: usize,
    first_ts: i64,
    tags: Tags,
    out: &mut DecodedBlock,
) -> Result<(), Error> {
    decode_timestamps(r, n, first_ts, &out.step_min, tags, &mut out.ts_utc)?;
    decode_quality(r, n, &mut out.quality)?;
    decode_values(r, n, tags, &mut out.value)?;
    if !r.is_empty() {
        return Err(r.corruption("bytes after the block", 0, r.remaining() as u64));
    }
    Ok(())
}

/// Step runs covering `n` points, at least `min_runs` of them.
fn decode_steps(
    r: &mut Reader<'_>,
    n: usize,
    min_runs: u64,
    steps: &mut Vec<u16>,
) -> Result<(), Error> {
    let runs = r.varint_in("step run count", min_runs, n as u64)?;
    steps.reserve(n);
    for _ in 0..runs {
        let step = r.varint_in("step_min", 1, u64::from(STEP_MIN_MAX))? as u16;
        let len = r.varint_in("step run length", 1, (n - steps.len()) as u64)? as usize;
        steps.resize(steps.len() + len, step);
    }
    if steps.len() != n {
        return Err(r.corruption("points covered by step runs", n as u64, steps.len() as u64));
    }
    Ok(())
}

fn decode_timestamps(
    r: &mut Reader<'_>,
    n: usize,
    first_ts: i64,
    steps: &[u16],
    tags: Tags,
    ts: &mut Vec<i64>,
) -> Result<(), Error> {
    let mode = r.u8("timestamp mode")?;
    ts.reserve(n);
    ts.push(first_ts);
    match mode {
        TS_EXCEPTIONS | TS_STEP_EXCEPTIONS if mode == TS_EXCEPTIONS || tags.step_exceptions => {
            let count = r.varint_in("timestamp exception count", 0, n as u64 - 1)? as usize;
            let mut t = first_ts;
            let mut done = 1usize; // points whose ts is in `ts`
            for _ in 0..count {
                let gap = r.varint_in("timestamp exception index", 1, (n - done) as u64)? as usize;
                // Points done..at follow the grid; point `at` deviates from it.
                let at = done - 1 + gap;
                let dev = if mode == TS_STEP_EXCEPTIONS {
                    let unit = 60 * i64::from(step_at(steps, at - 1));
                    let dev_at = r.offset();
                    let code = r.varint("timestamp deviation")?;
                    let dev = crate::bits::unzigzag64(code >> 1);
                    let dev = if code & 1 == 0 {
                        dev.checked_mul(unit)
                    } else {
                        Some(dev).filter(|d| d % unit != 0)
                    };
                    dev.ok_or(Error::Corruption {
                        offset: dev_at,
                        what: "timestamp deviation in steps",
                        expected: unit as u64,
                        found: code,
                    })?
                } else {
                    r.zigzag64("timestamp deviation")?
                };
                extend_grid(
                    r,
                    ts,
                    &mut t,
                    steps.get(done - 1..at - 1).unwrap_or_default(),
                )?;
                let next = t
                    .wrapping_add(60 * i64::from(step_at(steps, at - 1)))
                    .wrapping_add(dev);
                if next <= t {
                    return Err(r.corruption("increasing timestamps", t as u64, next as u64));
                }
                ts.push(next);
                t = next;
                done = at + 1;
            }
            extend_grid(
                r,
                ts,
                &mut t,
                steps.get(done - 1..n - 1).unwrap_or_default(),
            )?;
        }
        TS_EXPLICIT => {
            let mut prev = first_ts;
            for i in 1..n {
                let dev = r.zigzag64("timestamp deviation")?;
                let t = prev
                    .wrapping_add(60 * i64::from(step_at(steps, i - 1)))
                    .wrapping_add(dev);
                if t <= prev {
                    return Err(r.corruption("increasing timestamps", prev as u64, t as u64));
                }
                ts.push(t);
                prev = t;
            }
        }
        TS_PACKED if n >= 2 => {
            let mut devs = Vec::new();
            decode_values(r, n - 1, tags, &mut devs)?;
            let mut prev = first_ts;
            for (i, &dev) in devs.iter().enumerate() {
                let t = prev
                    .wrapping_add(60 * i64::from(step_at(steps, i)))
                    .wrapping_add(i64::from(dev));
                if t <= prev {
                    return Err(r.corruption("increasing timestamps", prev as u64, t as u64));
                }
                ts.push(t);
                prev = t;
            }
        }
        TS_ANCHORED if tags.anchored_timestamps && n >= 2 => {
            // `anchor[i]` is point i+1's deviation from the grid drawn from point 0.
            let mut anchors = Vec::new();
            decode_values(r, n - 1, tags, &mut anchors)?;
            let (mut prev, mut prev_anchor) = (first_ts, 0i64);
            for (i, &anchor) in anchors.iter().enumerate() {
                let t = prev
                    .wrapping_add(60 * i64::from(step_at(steps, i)))
                    .wrapping_add(i64::from(anchor) - prev_anchor);
                if t <= prev {
                    return Err(r.corruption("increasing timestamps", prev as u64, t as u64));
                }
                ts.push(t);
                prev = t;
                prev_anchor = i64::from(anchor);
            }
        }
        other => return Err(r.corruption("timestamp mode", 4, u64::from(other))),
    }
    Ok(())
}

/// Appends one timestamp per step in `steps`, each the previous plus that step.
fn extend_grid(r: &Reader<'_>, ts: &mut Vec<i64>, t: &mut i64, steps: &[u16]) -> Result<(), Error> {
    let start = *t;
    let (Some(&first), Some(&last)) = (steps.first(), steps.last()) else {
        return Ok(());
    };
    // Steps come in runs (§2.1): equal ends are almost always one run; checking the whole slice
    // only then keeps the common case to one pass.
    let uniform = first == last && steps.iter().all(|&s| s == first);
    // At most MAX_POINTS steps of at most a day: the total fits easily in an i64.
    let total: i64 = if uniform {
        steps.len() as i64 * 60 * i64::from(first)
    } else {
        steps.iter().map(|&s| 60 * i64::from(s)).sum()
    };
    if start.checked_add(total).is_none() {
        return Err(r.corruption("timestamp range", i64::MAX as u64, start as u64));
    }
    if uniform {
        let step = 60 * i64::from(first);
        ts.extend((1..=steps.len() as i64).map(|k| start + k * step));
    } else {
        let mut acc = start;
        ts.extend(steps.iter().map(|&s| {
            acc += 60 * i64::from(s);
            acc
        }));
    }
    *t = start + total;
    Ok(())
}

fn step_at(steps: &[u16], i: usize) -> u16 {
    steps.get(i).copied().unwrap_or(1)
}

fn decode_quality(r: &mut Reader<'_>, n: usize, quality: &mut Vec<Quality>) -> Result<(), Error> {
    quality.resize(n, Quality::Measured);
    let runs = r.varint_in("quality run count", 0, n as u64)?;
    let mut end = 0usize;
    for _ in 0..runs {
        let skip = r.varint_in("quality run gap", 0, (n - end) as u64)? as usize;
        let start = end + skip;
        let code = r.varint("quality run")?;
        let len = (code >> 1).saturating_add(1);
        if len > (n - start) as u64 {
            return Err(r.corruption("quality run length", (n - start) as u64, len));
        }
        let q = if code & 1 == 0 {
            Quality::Estimated
        } else {
            Quality::Corrected
        };
        end = start + len as usize;
        if let Some(run) = quality.get_mut(start..end) {
            run.fill(q);
        }
    }
    Ok(())
}

fn decode_values(
    r: &mut Reader<'_>,
    n: usize,
    tags: Tags,
    values: &mut Vec<i32>,
) -> Result<(), Error> {
    let codec = r.u8("value codec")?;
    let lag = r.varint_in("predictor lag", 0, n as u64)? as usize;
    match codec {
        VALUES_FRAMES => decode_frames(r, n, lag, values),
        VALUES_HUFFMAN => {
            huffman::decode(r, n, values)?;
            undo_prediction(values, lag);
            Ok(())
        }
        VALUES_TRAINED if tags.trained_values => {
            rans::decode(r, n, values)?;
            undo_prediction(values, lag);
            Ok(())
        }
        other => Err(r.corruption("value codec", u64::from(VALUES_TRAINED), u64::from(other))),
    }
}

fn decode_frames(
    r: &mut Reader<'_>,
    n: usize,
    lag: usize,
    values: &mut Vec<i32>,
) -> Result<(), Error> {
    values.clear();
    values.reserve(n);
    let mut offsets = [0u32; FRAME_LEN];
    let mut left = n;
    while left > 0 {
        let len = left.min(FRAME_LEN);
        let min = r.zigzag32("frame reference")?;
        let width = u32::from(r.u8("frame bit width")?);
        if width > 32 {
            return Err(r.corruption("frame bit width", 32, u64::from(width)));
        }
        let packed = r.take(packed_len(len, width), "frame values")?;
        let frame = &mut offsets[..len];
        unpack(packed, width, frame);
        values.extend(frame.iter().map(|&o| min.wrapping_add(o as i32)));
        left -= len;
    }
    undo_prediction(values, lag);
    Ok(())
}

/// Turns residuals back into values (the inverse of [`residuals`]).
fn undo_prediction(values: &mut [i32], lag: usize) {
    if lag == 0 {
        return;
    }
    let (head, tail) = values.split_at_mut(lag.min(values.len()));
    let mut prev = 0i32;
    for v in head.iter_mut() {
        *v = v.wrapping_add(prev);
        prev = *v;
    }
    if lag == 1 {
        for v in tail.iter_mut() {
            *v = v.wrapping_add(prev);
            prev = *v;
        }
        return;
    }
    if lag >= LANES {
        // Value i adds value i - lag ≤ i - LANES: LANES values at a time are independent.
        let mut i = lag;
        while let Some((done, rest)) = values.split_at_mut_checked(i) {
            let (Some(now), Some(before)) = (
                rest.first_chunk_mut::<LANES>(),
                done.get(i - lag..).and_then(|d| d.first_chunk::<LANES>()),
            ) else {
                break;
            };
            for (v, p) in now.iter_mut().zip(before) {
                *v = v.wrapping_add(*p);
            }
            i += LANES;
        }
        for k in i..values.len() {
            values[k] = values[k].wrapping_add(values[k - lag]);
        }
        return;
    }
    for k in lag..values.len() {
        values[k] = values[k].wrapping_add(values[k - lag]);
    }
}

/// Values [`undo_prediction`] adds at once when the lag allows it.
const LANES: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    /// A generated household's January, which the trained codec codes smallest.
    fn generated_month() -> Vec<Point> {
        let fleet = courbe_workload::Fleet::new(courbe_workload::FleetConfig {
            meters: 1,
            days: 31,
            ..Default::default()
        });
        fleet
            .meter(0)
            .consumption
            .iter()
            .map(|r| Point {
                ts_utc: r.ts_utc,
                value: r.value,
                step_min: r.step_min,
                quality: Quality::from_u8(r.quality).unwrap_or_default(),
            })
            .collect()
    }

    #[test]
    fn undoing_the_prediction_gives_back_the_values_at_every_lag_and_length() {
        let mut x = 0x9E37_79B9u32;
        for len in [0usize, 1, 7, 8, 9, 47, 48, 49, 100, 337, 1488] {
            let values: Vec<i32> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as i32
                })
                .collect();
            for lag in [0, 1, 2, 7, 8, 9, 15, 16, 48, 96, 336, len, len + 1] {
                let mut back = Vec::new();
                residuals(&values, lag, &mut back);
                undo_prediction(&mut back, lag);
                assert_eq!(back, values, "len {len} lag {lag}");
            }
        }
    }

    #[test]
    fn the_tags_of_version_2_are_corruption_where_only_version_1_is_allowed() {
        let points = generated_month();
        let mut bytes = Vec::new();
        encode_into(&points, &mut bytes).expect("encodes");
        let mut out = DecodedBlock::default();
        decode(&mut Reader::new(&bytes, 0), Tags::ALL, &mut out).expect("decodes");
        assert!(out.points().eq(points.iter().copied()));
        let v1 = Tags {
            anchored_timestamps: false,
            step_exceptions: false,
            trained_values: false,
        };
        let err = decode(&mut Reader::new(&bytes, 0), v1, &mut out).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corruption, "{err}");
    }

    #[test]
    fn the_value_section_length_the_study_uses_is_what_the_writer_codes() {
        // Two blocks with the same instants and qualities differ only in their value sections.
        let points = generated_month();
        let flat: Vec<Point> = points.iter().map(|p| Point { value: 7, ..*p }).collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode_into(&points, &mut a).expect("encodes");
        encode_into(&flat, &mut b).expect("encodes");
        let values: Vec<i32> = points.iter().map(|p| p.value).collect();
        let sevens = vec![7; flat.len()];
        let day = day_lag(&points);
        assert_eq!(
            a.len() - value_section_len(&values, day),
            b.len() - value_section_len(&sevens, day)
        );
        assert!(value_section_len(&values, day) > value_section_len(&sevens, day));
        assert_eq!(value_section_len(&[], day), 0);
    }
}

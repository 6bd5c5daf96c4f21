//! Sizes candidate value models (predictor, contexts, bins, table choice) against the current
//! one (FORMAT.md §2.4-§2.5.2) without changing the format:
//!
//! ```text
//! cargo run --release -p storage-format --example value_models -- \
//!     [--meters 1000] [--train-meters 300] [--tables 64] [--enedis PATH] [--models I,J,...]
//! ```
//!
//! `--models` sizes only the models at those positions of the list in `main` (0, the current
//! model, gives the ratios; without it a run prints bytes only and its ratios are NaN).
//!
//! Data, consumption blocks cut by Europe/Paris month as the engine does: the fair suite's family
//! (`courbe-workload` seed 1, 30 minutes, `--meters`), the same generator at steps the format's
//! tables were not trained on (60 minutes, `--meters`; 5 minutes, `--meters / 6`), and the real
//! Enedis export of the fixtures (one meter, 60 then 30 minutes). Every model is sized three
//! ways, each block at its best predictor:
//!
//! - **format**: the writer's own value section (`block::value_section_len`), only for the
//!   current model; and the current contexts and bins against the format's own tables
//!   (`rans-v2.bin`), which also sizes new predictors exactly as codec 2 would code them;
//! - **trained**: tables trained for the model the way `train_tables` trains the format's (k-means
//!   over per-block histograms, per context) on seed 2 (`--train-meters` at 30 minutes, a tenth
//!   at 15 and a twentieth at 10; consumption and production), `--tables` per context, then each
//!   block (or each part of it) takes per context the table of fewest bits, a byte per table
//!   named; the same training for every model, the current one included, so the ratios compare
//!   models, not training sets;
//! - **ideal**: each block's own order-0 entropy per context, no table cost (a bound no static
//!   coder reaches).
//!
//! Figures are the value section only (bins, raw bits, table names and a fixed 12 bytes per
//! block for codec, lag, mask, lengths and states), in bytes per point.

#[path = "common/months.rs"]
mod months;

use std::str::FromStr;

use courbe_workload::{Fleet, FleetConfig, Reading};
use months::paris_month_of;
use storage_format::block::value_section_len;
use storage_format::rans::{SCALE_BITS, TABLE_BYTES};

/// One block's values (a meter's month) and its day lag in points, when its step is uniform.
struct Block {
    values: Vec<i32>,
    day: Option<usize>,
}

struct Dataset {
    name: String,
    blocks: Vec<Block>,
    points: usize,
}

fn month_blocks(readings: &[Reading], out: &mut Vec<Block>) {
    for month in readings.chunk_by(|a, b| paris_month_of(a.ts_utc) == paris_month_of(b.ts_utc)) {
        let step = month[0].step_min;
        let uniform = month.iter().all(|r| r.step_min == step);
        out.push(Block {
            values: month.iter().map(|r| r.value).collect(),
            day: (uniform && 1440 % step == 0 && step < 1440).then(|| usize::from(1440 / step)),
        });
    }
}

fn fleet(name: &str, meters: u32, step_min: u16, seed: u64, production: bool) -> Dataset {
    let fleet = Fleet::new(FleetConfig {
        meters,
        days: 365,
        seed,
        step_min,
        ..FleetConfig::default()
    });
    let mut blocks = Vec::new();
    for m in fleet.meters() {
        month_blocks(&m.consumption, &mut blocks);
        if production {
            month_blocks(&m.production, &mut blocks);
        }
    }
    blocks.retain(|b| !b.values.is_empty());
    let points = blocks.iter().map(|b| b.values.len()).sum();
    Dataset {
        name: name.to_string(),
        blocks,
        points,
    }
}

/// The Enedis export (`Horodate;Valeur`, the horodate ends the interval): a line's step is the
/// time since the line before, failing that the time to the next one, failing that the step
/// before (the ingest parser's rule); empty values are gaps.
fn enedis(path: &str) -> Dataset {
    let text = std::fs::read_to_string(path).expect("reads the Enedis export");
    let lines: Vec<&str> = text.lines().collect();
    let header = lines
        .iter()
        .position(|l| *l == "Horodate;Valeur")
        .expect("a Horodate;Valeur header");
    let rows: Vec<(i64, &str)> = lines[header + 1..]
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (h, v) = l.split_once(';').expect("two fields");
            let ts = jiff::Timestamp::from_str(h).expect("an RFC 3339 horodate");
            (ts.as_second(), v)
        })
        .collect();
    let as_step =
        |s: i64| (s % 60 == 0 && [5, 10, 15, 30, 60].contains(&(s / 60))).then_some(s / 60);
    let mut readings = Vec::new();
    let mut previous = None;
    for (i, &(end, value)) in rows.iter().enumerate() {
        let before = (i > 0).then(|| as_step(end - rows[i - 1].0)).flatten();
        let after = rows.get(i + 1).and_then(|&(next, _)| as_step(next - end));
        let step = before.or(after).or(previous).expect("a step");
        previous = Some(step);
        if value.is_empty() {
            continue;
        }
        readings.push(Reading {
            ts_utc: end - 60 * step,
            value: value.parse().expect("an integer value"),
            step_min: step as u16,
            quality: 0,
        });
    }
    let mut blocks = Vec::new();
    month_blocks(&readings, &mut blocks);
    Dataset {
        name: "Enedis export, 1 meter (real)".into(),
        points: readings.len(),
        blocks,
    }
}

// ------------------------------------------------------------------------------------ models

#[derive(Clone, Copy, PartialEq)]
enum Pred {
    /// The format's lag L (0 predicts 0).
    Lag(usize),
    /// Median of the previous value, the value a day earlier and their gradient sum
    /// `v[i-1] + v[i-D] - v[i-D-1]` (LOCO-I's MED over the time and day axes).
    Med(usize),
    /// `v[i-1] + v[i-D] - v[i-D-1]`: the previous value plus the step the day before.
    DayStep(usize),
    /// `v[i-1]` plus the day-before step only when that step was large (|step| ≥ 256 W).
    BigDayStep(usize),
    /// A linear predictor fitted to the block (least squares, coefficients in 1/64, stored
    /// with the block: 4 bytes counted): `mu + (a·(v[i-1] − mu) + b·(v[i-2] − mu)) / 64`.
    Lpc { a: i64, b: i64, mu: i64 },
}

/// Bytes a predictor adds to a block (its parameters).
fn pred_bytes(p: Pred) -> u64 {
    match p {
        Pred::Lpc { .. } => 4,
        _ => 0,
    }
}

/// Least-squares order-`order` (1 or 2) predictor of the block around its mean.
fn lpc(values: &[i32], order: usize) -> Option<Pred> {
    let n = values.len();
    if n < 16 {
        return None;
    }
    let mu = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
    let x: Vec<f64> = values.iter().map(|&v| f64::from(v) - mu).collect();
    let (mut r11, mut r12, mut r22, mut r01, mut r02) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for i in 2..n {
        r11 += x[i - 1] * x[i - 1];
        r12 += x[i - 1] * x[i - 2];
        r22 += x[i - 2] * x[i - 2];
        r01 += x[i] * x[i - 1];
        r02 += x[i] * x[i - 2];
    }
    let (a, b) = if order == 1 {
        (r01 / r11.max(1.0), 0.0)
    } else {
        let det = r11 * r22 - r12 * r12;
        if det.abs() < 1e-9 {
            return None;
        }
        ((r01 * r22 - r02 * r12) / det, (r02 * r11 - r01 * r12) / det)
    };
    let q = |c: f64| ((c * 64.0).round() as i64).clamp(-128, 128);
    Some(Pred::Lpc {
        a: q(a),
        b: q(b),
        mu: mu.round() as i64,
    })
}

fn residuals(values: &[i32], pred: Pred, out: &mut Vec<i32>) {
    out.clear();
    let v = |i: usize| i64::from(values[i]);
    for i in 0..values.len() {
        let p: i64 = match pred {
            Pred::Lag(0) => 0,
            Pred::Lag(l) if i >= l => v(i - l),
            Pred::Lag(_) | Pred::Med(_) | Pred::DayStep(_) | Pred::BigDayStep(_) if i == 0 => 0,
            Pred::Lpc { mu, .. } if i < 2 => mu,
            Pred::Lpc { a, b, mu } => {
                mu + (a * (v(i - 1) - mu) + b * (v(i - 2) - mu) + 32).div_euclid(64)
            }
            Pred::Lag(_) => v(i - 1),
            Pred::Med(d) | Pred::DayStep(d) | Pred::BigDayStep(d) if i <= d => v(i - 1),
            Pred::Med(d) => {
                let (a, b) = (v(i - 1), v(i - d));
                let c = a + b - v(i - d - 1);
                a.max(b).min(c).max(a.min(b))
            }
            Pred::DayStep(d) => v(i - 1) + v(i - d) - v(i - d - 1),
            Pred::BigDayStep(d) => {
                let s = v(i - d) - v(i - d - 1);
                v(i - 1) + if s.abs() >= 256 { s } else { 0 }
            }
        };
        out.push((v(i) - p) as i32);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    /// The format's 8 classes of the previous residual's width.
    Prev,
    /// × 3 classes of the width of the residual two back (≤ 3, ≤ 7, more).
    PrevPrev2,
    /// × 3 classes of the larger width of the residuals two and three back.
    PrevMax23,
    /// × whether the residual a day back (same predictor, same state's half) is 10 bits or more.
    PrevDayResidual,
    /// × 3 classes of the width of the day-before step `v[i-D] - v[i-D-1]` (≤ 5, ≤ 9, more).
    /// Contexts from values (this one and the level's) need the values while the residuals are
    /// decoded: a fused decode-and-predict loop, and the second state's values would depend on
    /// the first's (one chain only); sized here as if that were free.
    PrevDayStep,
    /// × 3 classes of the previous value's width (≤ 8, ≤ 10, more): the load's level.
    PrevLevel,
    /// × the previous residual's sign (an appliance that starts is likely to stop).
    PrevSign,
    /// × the level classes × the sign (48).
    PrevLevelSign,
    /// × the level classes × the sign × the residual a day back (96).
    PrevLevelSignDay,
}

impl Ctx {
    fn count(self) -> usize {
        match self {
            Ctx::Prev => 8,
            Ctx::PrevDayResidual | Ctx::PrevSign => 16,
            Ctx::PrevPrev2 | Ctx::PrevMax23 | Ctx::PrevDayStep | Ctx::PrevLevel => 24,
            Ctx::PrevLevelSign => 48,
            Ctx::PrevLevelSignDay => 96,
        }
    }
}

#[derive(Clone, Copy)]
struct Model {
    name: &'static str,
    /// Bits kept in the bin below the leading one (the format: 2).
    mant: u32,
    ctx: Ctx,
    preds: &'static [&'static str],
    /// Parts of a block choosing their tables separately (the format: 1).
    parts: usize,
}

const CURRENT_PREDS: &[&str] = &["lags"];
const MED_PREDS: &[&str] = &["lags", "med", "daystep", "bigdaystep"];
const LPC_PREDS: &[&str] = &["lags", "lpc"];

fn predictors(model: &Model, values: &[i32], day: Option<usize>) -> Vec<Pred> {
    let n = values.len();
    let mut p: Vec<Pred> = (0..=9usize)
        .chain(day)
        .filter(|&l| l <= 1 || l < n)
        .map(Pred::Lag)
        .collect();
    p.dedup();
    if model.preds.contains(&"lpc") {
        p.extend(lpc(values, 1));
        p.extend(lpc(values, 2));
    }
    if let Some(d) = day.filter(|&d| d + 1 < n) {
        if model.preds.contains(&"med") {
            p.push(Pred::Med(d));
        }
        if model.preds.contains(&"daystep") {
            p.push(Pred::DayStep(d));
        }
        if model.preds.contains(&"bigdaystep") {
            p.push(Pred::BigDayStep(d));
        }
    }
    p
}

fn bit_width(u: u32) -> u32 {
    32 - u.leading_zeros()
}

fn zigzag(r: i32) -> u32 {
    ((r << 1) ^ (r >> 31)) as u32
}

/// Symbols of a `mant`-bit split: residuals below `2^(mant+2)` are their own bin, the rest by
/// width and the `mant` bits under the leading one.
fn symbols(mant: u32) -> usize {
    let t = 1usize << (mant + 2);
    t + (1 << mant) * (32 - (mant as usize + 3) + 1)
}

fn symbol(u: u32, mant: u32) -> (usize, u32) {
    let t = 1u32 << (mant + 2);
    if u < t {
        (u as usize, 0)
    } else {
        let b = bit_width(u);
        let m = (u >> (b - 1 - mant)) & ((1 << mant) - 1);
        (
            (t + (1 << mant) * (b - (mant + 3)) + m) as usize,
            b - 1 - mant,
        )
    }
}

fn class(w: u32) -> usize {
    match w {
        0..=3 => w as usize,
        4 | 5 => 4,
        6 | 7 => 5,
        8 | 9 => 6,
        _ => 7,
    }
}

fn coarse(w: u32) -> usize {
    match w {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// The model's symbols of one block at one predictor: per value its context and symbol, and the
/// raw bits in all.
struct Coded {
    ctx: Vec<u16>,
    sym: Vec<u16>,
    raw_bits: u64,
}

fn code(model: &Model, values: &[i32], day: Option<usize>, r: &[i32]) -> Coded {
    let n = r.len();
    let zz: Vec<u32> = r.iter().map(|&x| zigzag(x)).collect();
    let w: Vec<u32> = zz.iter().map(|&u| bit_width(u)).collect();
    // Two interleaved states from 64 values (§2.5.2): each half's contexts start afresh and
    // may only look at its own half.
    let h = if n >= 64 { n.div_ceil(2) } else { n };
    let mut out = Coded {
        ctx: Vec::with_capacity(n),
        sym: Vec::with_capacity(n),
        raw_bits: 0,
    };
    for i in 0..n {
        let start = if i >= h { h } else { 0 };
        let back = |k: usize| if i >= start + k { w[i - k] } else { 0 };
        let prev = if i == start { 0 } else { class(w[i - 1]) };
        let c = match model.ctx {
            Ctx::Prev => prev,
            Ctx::PrevPrev2 => prev * 3 + coarse(back(2)),
            Ctx::PrevMax23 => prev * 3 + coarse(back(2).max(back(3))),
            Ctx::PrevDayResidual => {
                prev * 2 + usize::from(day.is_some_and(|d| i >= start + d && w[i - d] >= 10))
            }
            Ctx::PrevDayStep => {
                let s = day
                    .filter(|&d| i > d)
                    .map(|d| bit_width(zigzag(values[i - d].wrapping_sub(values[i - d - 1]))))
                    .unwrap_or(0);
                prev * 3
                    + match s {
                        0..=5 => 0,
                        6..=9 => 1,
                        _ => 2,
                    }
            }
            Ctx::PrevLevel | Ctx::PrevLevelSign | Ctx::PrevLevelSignDay => {
                let l = if i == 0 {
                    0
                } else {
                    bit_width(values[i - 1].unsigned_abs())
                };
                let c = prev * 3
                    + match l {
                        0..=8 => 0,
                        9 | 10 => 1,
                        _ => 2,
                    };
                let day_big = day.is_some_and(|d| i >= start + d && w[i - d] >= 10);
                match model.ctx {
                    Ctx::PrevLevelSign => c * 2 + usize::from(i > start && zz[i - 1] & 1 == 1),
                    Ctx::PrevLevelSignDay => {
                        (c * 2 + usize::from(i > start && zz[i - 1] & 1 == 1)) * 2
                            + usize::from(day_big)
                    }
                    _ => c,
                }
            }
            Ctx::PrevSign => prev * 2 + usize::from(i > start && zz[i - 1] & 1 == 1),
        };
        let (s, raw) = symbol(zz[i], model.mant);
        out.ctx.push(c as u16);
        out.sym.push(s as u16);
        out.raw_bits += u64::from(raw);
    }
    out
}

/// Sparse histogram: (symbol, count), by symbol.
type Hist = Vec<(u16, u32)>;

/// Per part, per context: the histogram of the part's symbols in that context.
fn histograms(model: &Model, c: &Coded) -> Vec<Vec<Hist>> {
    let n = c.sym.len();
    let parts = model.parts.min(n.max(1));
    let mut out = Vec::with_capacity(parts);
    let nsym = symbols(model.mant);
    for p in 0..parts {
        let (a, b) = (p * n / parts, (p + 1) * n / parts);
        let mut dense = vec![vec![0u32; nsym]; model.ctx.count()];
        for i in a..b {
            dense[usize::from(c.ctx[i])][usize::from(c.sym[i])] += 1;
        }
        out.push(
            dense
                .into_iter()
                .map(|d| {
                    d.iter()
                        .enumerate()
                        .filter(|(_, &x)| x > 0)
                        .map(|(s, &x)| (s as u16, x))
                        .collect()
                })
                .collect(),
        );
    }
    out
}

fn entropy_bits(h: &Hist) -> f64 {
    let total: f64 = h.iter().map(|&(_, c)| f64::from(c)).sum();
    h.iter()
        .map(|&(_, c)| -f64::from(c) * (f64::from(c) / total).log2())
        .sum()
}

/// Bits of a block's bins by its own order-0 entropy per context (and part).
fn ideal_bits(hs: &[Vec<Hist>]) -> f64 {
    hs.iter().flatten().map(entropy_bits).sum()
}

/// Per context, its tables as costs in bits per symbol.
type Tables = Vec<Vec<Vec<f32>>>;

/// Bits of a block coded with the best table of each context in each part, a byte per table.
fn table_bits(hs: &[Vec<Hist>], tables: &Tables) -> f64 {
    let mut bits = 0f64;
    for part in hs {
        for (c, h) in part.iter().enumerate() {
            if h.is_empty() {
                continue;
            }
            bits += 8.0 + best(h, &tables[c]).1;
        }
    }
    bits
}

fn best(h: &Hist, tables: &[Vec<f32>]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (k, t) in tables.iter().enumerate() {
        let c: f32 = h.iter().map(|&(s, n)| n as f32 * t[usize::from(s)]).sum();
        if f64::from(c) < best.1 {
            best = (k, f64::from(c));
        }
    }
    best
}

/// Frequencies summing to `2^SCALE_BITS`, each at least 1, proportional to `weights`, as costs.
fn quantized_costs(weights: &[f64]) -> Vec<f32> {
    let scale = 1u32 << SCALE_BITS;
    let total: f64 = weights.iter().sum();
    let spare = f64::from(scale - weights.len() as u32);
    let mut f: Vec<u32> = weights
        .iter()
        .map(|&w| 1 + (spare * w / total).floor() as u32)
        .collect();
    let sum: u32 = f.iter().sum();
    let biggest = (0..weights.len())
        .max_by(|&a, &b| weights[a].total_cmp(&weights[b]))
        .unwrap_or(0);
    f[biggest] += scale - sum;
    f.iter()
        .map(|&q| (f64::from(scale) / f64::from(q)).log2() as f32)
        .collect()
}

/// k-means of the histograms of one context into `k` tables (as `train_tables` does).
fn train(items: &[Hist], nsym: usize, k: usize, rounds: usize) -> Vec<Vec<f32>> {
    if items.is_empty() {
        return vec![vec![(nsym as f32).log2(); nsym]];
    }
    let mean = |h: &Hist| {
        let n: f64 = h.iter().map(|&(_, c)| f64::from(c)).sum();
        h.iter()
            .map(|&(s, c)| f64::from(s) * f64::from(c))
            .sum::<f64>()
            / n
    };
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| mean(&items[a]).total_cmp(&mean(&items[b])));
    let k = k.min(items.len());
    let mut assign = vec![0usize; items.len()];
    for (rank, &i) in order.iter().enumerate() {
        assign[i] = rank * k / items.len();
    }
    let mut tables = vec![vec![0f32; nsym]; k];
    for _ in 0..rounds {
        for (t, table) in tables.iter_mut().enumerate() {
            let mut w = vec![0f64; nsym];
            for (h, _) in items.iter().zip(&assign).filter(|(_, &a)| a == t) {
                for &(s, c) in h {
                    w[usize::from(s)] += f64::from(c);
                }
            }
            let total = w.iter().sum::<f64>().max(1.0);
            for (s, x) in w.iter_mut().enumerate() {
                *x += total * 2e-4 / (1.0 + s as f64 / 8.0);
            }
            *table = quantized_costs(&w);
        }
        for (h, a) in items.iter().zip(assign.iter_mut()) {
            *a = best(h, &tables).0;
        }
    }
    tables
}

/// The format's own tables (`rans-v2.bin`) as costs, for the current contexts and bins.
fn format_tables() -> Tables {
    let per_table = 128 * 2;
    let per_context = TABLE_BYTES.len() / 8 / per_table;
    (0..8)
        .map(|c| {
            (0..per_context)
                .map(|k| {
                    let at = (c * per_context + k) * per_table;
                    TABLE_BYTES[at..at + per_table]
                        .chunks_exact(2)
                        .map(|b| {
                            let f = u16::from_le_bytes([b[0], b[1]]);
                            (f64::from(1u32 << SCALE_BITS) / f64::from(f)).log2() as f32
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// A block's candidate codings under a model, by predictor: its histograms, ideal bits (bins
/// plus raw) and raw bits.
fn candidates(model: &Model, b: &Block) -> Vec<(Vec<Vec<Hist>>, f64, u64)> {
    let mut r = Vec::new();
    predictors(model, &b.values, b.day)
        .into_iter()
        .map(|p| {
            residuals(&b.values, p, &mut r);
            let c = code(model, &b.values, b.day, &r);
            let hs = histograms(model, &c);
            let raw = c.raw_bits + 8 * pred_bytes(p);
            let ideal = ideal_bits(&hs) + raw as f64;
            (hs, ideal, raw)
        })
        .collect()
}

const BLOCK_OVERHEAD_BITS: f64 = 12.0 * 8.0;

/// Bytes of a dataset's value sections under a model: (trained, ideal, format tables when the
/// model has the format's contexts and bins).
fn size(model: &Model, d: &Dataset, tables: &Tables, format: Option<&Tables>) -> (f64, f64, f64) {
    let (mut trained, mut ideal, mut fmt) = (0f64, 0f64, 0f64);
    for b in &d.blocks {
        let mut cands = candidates(model, b);
        cands.sort_by(|a, b| a.1.total_cmp(&b.1));
        ideal += cands[0].1;
        let finalists = &cands[..cands.len().min(3)];
        trained += finalists
            .iter()
            .map(|(hs, _, raw)| table_bits(hs, tables) + *raw as f64)
            .fold(f64::INFINITY, f64::min)
            + BLOCK_OVERHEAD_BITS;
        if let Some(f) = format {
            fmt += finalists
                .iter()
                .map(|(hs, _, raw)| table_bits(hs, f) + *raw as f64)
                .fold(f64::INFINITY, f64::min)
                + BLOCK_OVERHEAD_BITS;
        }
    }
    (trained / 8.0, ideal / 8.0, fmt / 8.0)
}

fn train_model(model: &Model, training: &[Dataset], k: usize) -> Tables {
    let nctx = model.ctx.count();
    let nsym = symbols(model.mant);
    let mut items: Vec<Vec<Hist>> = vec![Vec::new(); nctx];
    // Training histograms are whole blocks at the predictor of lowest ideal cost (as the
    // format's trainer), whatever the parts.
    let whole = Model { parts: 1, ..*model };
    for d in training {
        for b in &d.blocks {
            let cands = candidates(&whole, b);
            if let Some((hs, _, _)) = cands.iter().min_by(|a, b| a.1.total_cmp(&b.1)) {
                for (c, h) in hs[0].iter().enumerate() {
                    if !h.is_empty() {
                        items[c].push(h.clone());
                    }
                }
            }
        }
    }
    items.iter().map(|it| train(it, nsym, k, 10)).collect()
}

fn main() {
    let mut meters = 1000u32;
    let mut train_meters = 300u32;
    let mut k = 64usize;
    let mut enedis_path = String::from("tests/data/enedis/Enedis_SGE_HDM_A06NW0ZI.csv");
    let mut only: Option<String> = None;
    let mut chosen: Option<Vec<usize>> = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--meters" => meters = value().parse().expect("--meters N"),
            "--train-meters" => train_meters = value().parse().expect("--train-meters N"),
            "--tables" => k = value().parse().expect("--tables K"),
            "--enedis" => enedis_path = value(),
            "--only" => only = Some(value()),
            "--models" => {
                chosen = Some(
                    value()
                        .split(',')
                        .map(|x| x.parse().expect("--models I,J"))
                        .collect(),
                )
            }
            other => panic!("unknown flag {other}"),
        }
    }
    let models = [
        Model {
            name: "current: lags 0-9 + day, 8 ctx (prev width), 2-bit bins",
            mant: 2,
            ctx: Ctx::Prev,
            preds: CURRENT_PREDS,
            parts: 1,
        },
        Model {
            name: "+ MED / day-step predictors",
            mant: 2,
            ctx: Ctx::Prev,
            preds: MED_PREDS,
            parts: 1,
        },
        Model {
            name: "+ block-fitted LPC order 1 and 2",
            mant: 2,
            ctx: Ctx::Prev,
            preds: LPC_PREDS,
            parts: 1,
        },
        Model {
            name: "1-bit bins (one bin bit out to the raw bits)",
            mant: 1,
            ctx: Ctx::Prev,
            preds: CURRENT_PREDS,
            parts: 1,
        },
        Model {
            name: "3-bit bins (one raw bit into the bin)",
            mant: 3,
            ctx: Ctx::Prev,
            preds: CURRENT_PREDS,
            parts: 1,
        },
        Model {
            name: "ctx x width of residual i-2 (24)",
            mant: 2,
            ctx: Ctx::PrevPrev2,
            preds: CURRENT_PREDS,
            parts: 1,
        },
        Model {
            name: "ctx x max width of residuals i-2, i-3 (24)",
            mant: 2,
            ctx: Ctx::PrevMax23,
            preds: CURRENT_PREDS,
            parts: 1,
        },
        Model {
            name: "ctx x residual a day back >= 10 bits (16)",
            mant: 2,
            ctx: Ctx::PrevDayResidual,
            preds: CURRENT_PREDS,
            parts: 1,
        },
        Model {
            name: "ctx x width of the day-before step (24)",
            mant: 2,
            ctx: Ctx::PrevDayStep,
            preds: CURRENT_PREDS,
            parts: 1,
        },
        Model {
            name: "ctx x level of the previous value (24)",
            mant: 2,
            ctx: Ctx::PrevLevel,
            preds: CURRENT_PREDS,
            parts: 1,
        },
        Model {
            name: "ctx x sign of the previous residual (16)",
            mant: 2,
            ctx: Ctx::PrevSign,
            preds: CURRENT_PREDS,
            parts: 1,
        },
        Model {
            name: "tables chosen per quarter block",
            mant: 2,
            ctx: Ctx::Prev,
            preds: CURRENT_PREDS,
            parts: 4,
        },
        Model {
            name: "combined: MED preds, 3-bit bins, ctx x i-2, quarters",
            mant: 3,
            ctx: Ctx::PrevPrev2,
            preds: MED_PREDS,
            parts: 4,
        },
        Model {
            name: "combined: MED preds, ctx x level x sign (48)",
            mant: 2,
            ctx: Ctx::PrevLevelSign,
            preds: MED_PREDS,
            parts: 1,
        },
        Model {
            name: "combined: MED preds, ctx x level x sign x day residual (96)",
            mant: 2,
            ctx: Ctx::PrevLevelSignDay,
            preds: MED_PREDS,
            parts: 1,
        },
    ];
    let t0 = std::time::Instant::now();
    let training = vec![
        fleet("seed 2, 30 min", train_meters, 30, 2, true),
        fleet("seed 2, 15 min", (train_meters / 10).max(1), 15, 2, true),
        fleet("seed 2, 10 min", (train_meters / 20).max(1), 10, 2, true),
    ];
    let data = vec![
        fleet(
            "generated seed 1, 30 min (trained family)",
            meters,
            30,
            1,
            false,
        ),
        fleet(
            "generated seed 1, 60 min (step not trained on)",
            meters,
            60,
            1,
            false,
        ),
        fleet(
            "generated seed 1, 5 min (step not trained on)",
            (meters / 6).max(1),
            5,
            1,
            false,
        ),
        enedis(&enedis_path),
    ];
    eprintln!("generated in {:.1} s", t0.elapsed().as_secs_f64());
    println!("| data | points | blocks | format value section, B/pt |");
    println!("|---|--:|--:|--:|");
    for d in &data {
        let bytes: usize = d
            .blocks
            .iter()
            .map(|b| value_section_len(&b.values, b.day))
            .sum();
        println!(
            "| {} | {} | {} | {:.4} |",
            d.name,
            d.points,
            d.blocks.len(),
            bytes as f64 / d.points as f64
        );
    }
    // Runs of zero residuals, at each block's best predictor of the current model.
    println!();
    println!("| data | zero residuals | of which continuing a run of zeros |");
    println!("|---|--:|--:|");
    for d in &data {
        let (mut zeros, mut continued, mut all) = (0usize, 0usize, 0usize);
        let mut r = Vec::new();
        for b in &d.blocks {
            let preds = predictors(&models[0], &b.values, b.day);
            let best_pred = preds
                .iter()
                .copied()
                .zip(candidates(&models[0], b))
                .min_by(|x, y| x.1 .1.total_cmp(&y.1 .1))
                .map(|(p, _)| p)
                .unwrap_or(Pred::Lag(1));
            residuals(&b.values, best_pred, &mut r);
            all += r.len();
            zeros += r.iter().filter(|&&x| x == 0).count();
            continued += r.windows(2).filter(|w| w[0] == 0 && w[1] == 0).count();
        }
        println!(
            "| {} | {:.2}% | {:.2}% |",
            d.name,
            100.0 * zeros as f64 / all as f64,
            100.0 * continued as f64 / all as f64
        );
    }
    let format = format_tables();
    let mut base: Vec<(f64, f64)> = Vec::new();
    println!();
    println!("| model | data | trained B/pt | vs current | ideal B/pt | vs current | format tables B/pt |");
    println!("|---|---|--:|--:|--:|--:|--:|");
    for (mi, model) in models.iter().enumerate() {
        if mi > 0 && only.as_deref().is_some_and(|o| !model.name.contains(o))
            || chosen.as_ref().is_some_and(|c| !c.contains(&mi))
        {
            continue;
        }
        let t = std::time::Instant::now();
        let tables = train_model(model, &training, k);
        let with_format = model.mant == 2 && model.ctx == Ctx::Prev && model.parts == 1;
        for (di, d) in data.iter().enumerate() {
            let (trained, ideal, fmt) = size(model, d, &tables, with_format.then_some(&format));
            let (trained, ideal, fmt) = (
                trained / d.points as f64,
                ideal / d.points as f64,
                fmt / d.points as f64,
            );
            if mi == 0 {
                base.push((trained, ideal));
            }
            // Without the current model in the run, ratios are against nothing (printed as 0).
            let (bt, bi) = base.get(di).copied().unwrap_or((f64::NAN, f64::NAN));
            println!(
                "| {} | {} | {:.4} | {:+.1}% | {:.4} | {:+.1}% | {} |",
                model.name,
                d.name,
                trained,
                100.0 * (trained / bt - 1.0),
                ideal,
                100.0 * (ideal / bi - 1.0),
                if with_format {
                    format!("{fmt:.4}")
                } else {
                    "-".into()
                }
            );
        }
        eprintln!("{}: {:.1} s", model.name, t.elapsed().as_secs_f64());
    }
}

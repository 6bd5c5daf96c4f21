//! Trains the frequency tables of the value codec's trained stage (codec 2) and writes them to
//! `tables/rans-v2.bin` (FORMAT.md §2.5.2; changing them is a new format version):
//!
//! ```text
//! cargo run --release -p storage-format --example train_tables -- [--per-context 256] [--out PATH]
//! ```
//!
//! Training data: `courbe-workload` fleets with seed 2 (the figures in FORMAT.md are measured on
//! seed 1): 1,200 meters at 30 minutes, 120 at 15 and 60 at 10, a year from 2024-01-01, cut in
//! months (nearly the engine's Europe/Paris months, see `month_of`); every value section a block
//! may hold (consumption, production, `max_power` values and its anchored timestamp deviations).
//! Each block's residuals are taken at the lag among 0..=9 and a day (the writer's candidates) with
//! the lowest order-0 entropy per context; then, per context, k-means over the blocks' histograms:
//! each block goes to the table that codes it in the fewest bits, each table is rebuilt from its
//! blocks, 16 rounds. A table gives every bin a frequency of at least 1, so any residual can be
//! coded with any table.

#[path = "common/months.rs"]
mod months;

use courbe_workload::{Fleet, FleetConfig, Reading};
use months::utc_month_of;
use storage_format::block::{zigzagged_residuals, LAGS};
use storage_format::rans::{profile, CONTEXTS, SCALE_BITS};

const SYMBOLS: usize = 128;
const ROUNDS: usize = 16;

type Histogram = [u64; SYMBOLS];

/// The training cut: nearly the engine's Europe/Paris month, but with the offset of the
/// instant's UTC month (+2 h April to October, +1 h otherwise), so the last UTC hour of March and
/// October fall in the wrong month. Kept as it is: the tables of format v2 were trained with it.
fn month_of(ts_utc: i64) -> u32 {
    let m = utc_month_of(ts_utc) % 12 + 1;
    utc_month_of(ts_utc + if (4..=10).contains(&m) { 7_200 } else { 3_600 })
}

fn entropy_bits(h: &Histogram) -> f64 {
    let total: u64 = h.iter().sum();
    h.iter()
        .filter(|&&c| c > 0)
        .map(|&c| -(c as f64) * (c as f64 / total as f64).log2())
        .sum()
}

/// Histograms per context of the block's residuals at its best lag.
fn block_histograms(values: &[i32], day_lag: Option<usize>) -> [Histogram; CONTEXTS] {
    let mut best: Option<(f64, [Histogram; CONTEXTS])> = None;
    for lag in LAGS.iter().copied().chain(day_lag) {
        if lag >= values.len() && lag > 1 {
            continue;
        }
        let (counts, raw) = profile(&zigzagged_residuals(values, lag));
        let bits = counts.iter().map(entropy_bits).sum::<f64>() + raw as f64;
        if best.as_ref().is_none_or(|(b, _)| bits < *b) {
            best = Some((bits, counts));
        }
    }
    best.map(|(_, c)| c).unwrap_or([[0; SYMBOLS]; CONTEXTS])
}

fn series_blocks(readings: &[Reading], out: &mut Vec<[Histogram; CONTEXTS]>) {
    for month in readings.chunk_by(|a, b| month_of(a.ts_utc) == month_of(b.ts_utc)) {
        let step = month[0].step_min;
        let uniform = month.iter().all(|r| r.step_min == step);
        let day_lag =
            (uniform && 1440 % step == 0 && step < 1440).then(|| usize::from(1440 / step));
        let values: Vec<i32> = month.iter().map(|r| r.value).collect();
        out.push(block_histograms(&values, day_lag));
        if month.len() >= 2 && step == 1440 {
            // Irregular instants (`max_power`): their deviations from the grid anchored at the
            // first point (timestamp mode 3; lag 1 of these is mode 2's deviations).
            let mut anchor = 0i64;
            let anchored: Vec<i32> = month
                .windows(2)
                .map(|w| {
                    anchor += w[1].ts_utc - w[0].ts_utc - 60 * i64::from(w[0].step_min);
                    anchor as i32
                })
                .collect();
            out.push(block_histograms(&anchored, None));
        }
    }
}

/// Frequencies summing to `1 << SCALE_BITS`, each at least 1, proportional to `weights`.
fn quantize(weights: &[f64; SYMBOLS]) -> [u16; SYMBOLS] {
    let scale = 1u32 << SCALE_BITS;
    let total: f64 = weights.iter().sum();
    let spare = f64::from(scale - SYMBOLS as u32);
    let mut f = [1u16; SYMBOLS];
    for (q, &w) in f.iter_mut().zip(weights) {
        *q += (spare * w / total).floor() as u16;
    }
    let sum: u32 = f.iter().map(|&x| u32::from(x)).sum();
    let biggest = (0..SYMBOLS)
        .max_by(|&a, &b| weights[a].total_cmp(&weights[b]))
        .unwrap_or(0);
    f[biggest] += (scale - sum) as u16;
    f
}

fn cost(h: &Histogram, f: &[u16; SYMBOLS]) -> f64 {
    let scale = f64::from(1u32 << SCALE_BITS);
    h.iter()
        .zip(f)
        .filter(|(&c, _)| c > 0)
        .map(|(&c, &q)| c as f64 * (scale / f64::from(q)).log2())
        .sum()
}

fn mean_symbol(h: &Histogram) -> f64 {
    let total: u64 = h.iter().sum();
    h.iter()
        .enumerate()
        .map(|(s, &c)| s as f64 * c as f64)
        .sum::<f64>()
        / total as f64
}

fn train(items: &[Histogram], k: usize) -> Vec<[u16; SYMBOLS]> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| mean_symbol(&items[a]).total_cmp(&mean_symbol(&items[b])));
    let mut assign = vec![0usize; items.len()];
    for (rank, &i) in order.iter().enumerate() {
        assign[i] = rank * k / items.len().max(1);
    }
    let mut tables = vec![[1u16; SYMBOLS]; k];
    for round in 0..ROUNDS {
        let previous = tables.clone();
        for (t, table) in tables.iter_mut().enumerate() {
            // Every bin keeps a little weight (a block may hold what training never saw).
            let mut w = [0f64; SYMBOLS];
            let mut members = 0u64;
            for (h, _) in items.iter().zip(&assign).filter(|(_, &a)| a == t) {
                for (x, &c) in w.iter_mut().zip(h) {
                    *x += c as f64;
                }
                members += 1;
            }
            let total: f64 = w.iter().sum::<f64>().max(1.0);
            for (s, x) in w.iter_mut().enumerate() {
                *x += total * 2e-4 / (1.0 + s as f64 / 8.0);
            }
            if members == 0 {
                // Reseed an empty table with the item coded worst.
                let worst = (0..items.len())
                    .max_by(|&a, &b| {
                        let ca = cost(&items[a], &previous[assign[a]])
                            / items[a].iter().sum::<u64>() as f64;
                        let cb = cost(&items[b], &previous[assign[b]])
                            / items[b].iter().sum::<u64>() as f64;
                        ca.total_cmp(&cb)
                    })
                    .unwrap_or(0);
                for (x, &c) in w.iter_mut().zip(&items[worst]) {
                    *x += c as f64 * 10.0;
                }
            }
            *table = quantize(&w);
        }
        let mut bits = 0f64;
        for (h, a) in items.iter().zip(assign.iter_mut()) {
            let (best, c) = tables
                .iter()
                .enumerate()
                .map(|(t, f)| (t, cost(h, f)))
                .min_by(|x, y| x.1.total_cmp(&y.1))
                .unwrap_or((0, 0.0));
            *a = best;
            bits += c;
        }
        eprintln!("  round {round}: {:.0} bytes", bits / 8.0);
    }
    tables
}

fn main() {
    let mut per_context = 256usize;
    let mut out_path = String::from("storage-format/tables/rans-v2.bin");
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--per-context", Some(v)) => per_context = v.parse().expect("--per-context N"),
            ("--out", Some(v)) => out_path = v.clone(),
            _ => panic!("usage: train_tables [--per-context N] [--out PATH]"),
        }
    }
    let mut blocks = Vec::new();
    for (meters, step_min) in [(1200u32, 30u16), (120, 15), (60, 10)] {
        let fleet = Fleet::new(FleetConfig {
            meters,
            days: 365,
            seed: 2,
            step_min,
            ..FleetConfig::default()
        });
        for m in fleet.meters() {
            for series in [&m.consumption, &m.production, &m.max_power] {
                series_blocks(series, &mut blocks);
            }
        }
    }
    eprintln!("{} blocks", blocks.len());
    let mut bytes = Vec::with_capacity(CONTEXTS * per_context * SYMBOLS * 2);
    for c in 0..CONTEXTS {
        let items: Vec<Histogram> = blocks
            .iter()
            .map(|b| b[c])
            .filter(|h| h.iter().any(|&x| x > 0))
            .collect();
        eprintln!("context {c}: {} histograms", items.len());
        for table in train(&items, per_context) {
            for f in table {
                bytes.extend_from_slice(&f.to_le_bytes());
            }
        }
    }
    std::fs::write(&out_path, &bytes).expect("writes the tables");
    eprintln!(
        "wrote {out_path}: {} bytes, crc32 {:#010x}",
        bytes.len(),
        crc32fast::hash(&bytes)
    );
}

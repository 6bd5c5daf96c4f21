//! Bytes per price point (format v4, channel 4) for a year of 15-minute spot prices, written as
//! the engine writes them: one segment per Europe/Paris month, one block of the series per month.
//!
//! The prices are `courbe_workload::synthetic_spot` (synthetic, not market data), seed 1, 2024:
//! signed centi-EUR/MWh with a daily shape, noise of ±6 % per quarter hour, negative middays.
//!
//! `cargo run --release -p storage-format --example price_cost [-- --seed N --hourly]`

#[path = "common/months.rs"]
mod months;

use std::collections::BTreeMap;

use storage_format::block;
use storage_format::segment::{Segment, SegmentBuilder, SegmentMeta};
use storage_format::{Channel, Point, Quality};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1u64);
    let hourly = args.iter().any(|a| a == "--hourly");
    let start = jiff::civil::date(2024, 1, 1);
    let mut prices: Vec<Point> = courbe_workload::synthetic_spot(seed, start, 366)
        .into_iter()
        .map(|p| Point {
            ts_utc: p.ts_utc,
            value: p.centi_eur_mwh,
            step_min: p.step_min,
            quality: Quality::Measured,
        })
        .collect();
    if hourly {
        // Hourly prices: the mean of each hour's four quarter hours.
        prices = prices
            .chunks(4)
            .map(|c| Point {
                step_min: 60,
                value: (c.iter().map(|p| i64::from(p.value)).sum::<i64>() / c.len() as i64) as i32,
                ..c[0]
            })
            .collect();
    }
    let mut months: BTreeMap<u32, Vec<Point>> = BTreeMap::new();
    for p in &prices {
        months
            .entry(months::paris_month_of(p.ts_utc))
            .or_default()
            .push(*p);
    }
    let (mut all_in, mut blocks, mut standalone) = (0usize, 0usize, 0usize);
    for (partition, points) in &months {
        let mut out = Vec::new();
        let meta = SegmentMeta {
            partition: *partition,
            seq: 1,
        };
        let mut builder = SegmentBuilder::new(meta, &mut out);
        builder
            .add_block("spot-FR", Channel::PRICE, points, &mut out)
            .expect("adds");
        builder.finish(&mut out).expect("finishes");
        let segment = Segment::open(&out).expect("opens");
        for b in segment.blocks("spot-FR", Channel::PRICE).expect("looks up") {
            blocks += b.encoded().len();
        }
        all_in += out.len();
        let mut alone = Vec::new();
        block::encode_into(points, &mut alone).expect("encodes");
        standalone += alone.len();
    }
    let n = prices.len() as f64;
    let negative = prices.iter().filter(|p| p.value < 0).count();
    println!(
        "synthetic spot prices, seed {seed}, 2024, {} points at {} min ({negative} negative), 12 month segments",
        prices.len(),
        if hourly { 60 } else { 15 }
    );
    println!(
        "segment blocks: {blocks} B ({:.3} B/pt); standalone blocks: {standalone} B ({:.3} B/pt); all-in (headers, index, fences, footers): {all_in} B ({:.3} B/pt); raw i32: {:.0} B",
        blocks as f64 / n,
        standalone as f64 / n,
        all_in as f64 / n,
        4.0 * n
    );
}

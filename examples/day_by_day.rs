//! A store fed one day at a time, as a distributor's daily flow feeds it: after each day, a
//! flush and a compaction by policy (what `courbe ingest DAY.csv` does at its end, and what the
//! background compactor of `courbe serve` does after each flush). Prints the write
//! amplification (bytes of segments written by compaction per byte written by flushes), the
//! segments per month at the end, and the time taken.
//!
//! `cargo run --release --example day_by_day -- [METERS] [DAYS]` (1,000 and 365 by default).

use std::time::Instant;

use courbe::engine::{Batch, CompactionReport, Options, Store};
use courbe::{point_of, Channel, Point};
use courbe_workload::{Fleet, FleetConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let meters: u32 = args.next().map_or(Ok(1_000), |a| a.parse())?;
    let days: u32 = args.next().map_or(Ok(365), |a| a.parse())?;
    let fleet = Fleet::new(FleetConfig {
        meters,
        days,
        ..FleetConfig::default()
    });
    // Every meter's curve, cut into Europe/Paris-agnostic UTC days.
    let mut by_day: Vec<Vec<(String, Vec<Point>)>> = vec![Vec::new(); days as usize + 2];
    let t0 = jiff::civil::date(2024, 1, 1)
        .to_zoned(jiff::tz::TimeZone::UTC)?
        .timestamp()
        .as_second();
    for i in 0..meters {
        let m = fleet.meter(i);
        for r in &m.consumption {
            let p = point_of(r);
            let d = ((p.ts_utc - t0).div_euclid(86_400)).clamp(0, days as i64 + 1) as usize;
            let day = &mut by_day[d];
            match day.last_mut() {
                Some((id, pts)) if *id == m.meter_id => pts.push(p),
                _ => day.push((m.meter_id.clone(), vec![p])),
            }
        }
    }
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), Options::default())?;
    let started = Instant::now();
    let (mut flushed, mut points) = (0u64, 0u64);
    let mut totals = CompactionReport::default();
    let bytes = |s: &Store| -> u64 { s.partition_segments().iter().map(|p| p.2).sum() };
    for day in &by_day {
        let mut batch = Batch::new();
        for (id, pts) in day {
            for p in pts {
                batch.push(id, Channel::CONSUMPTION, *p).map_err(|e| e.0)?;
            }
        }
        points += batch.len() as u64;
        store.ingest(&batch)?;
        let before = bytes(&store);
        store.flush()?;
        flushed += bytes(&store) - before;
        let r = store.compact_by_policy()?;
        totals.merges += r.merges;
        totals.segments_read += r.segments_read;
        totals.bytes_read += r.bytes_read;
        totals.bytes_written += r.bytes_written;
    }
    let seconds = started.elapsed().as_secs_f64();
    let parts = store.partition_segments();
    let stored = bytes(&store);
    println!(
        "{meters} meters x {days} days fed one day at a time: {points} points in {seconds:.1} s \
         ({:.2} M points/s, flush and compaction included)",
        points as f64 / seconds / 1e6
    );
    println!(
        "flushes wrote {:.1} MB, compaction {:.1} MB in {} merges of {} segments: write \
         amplification {:.2} (all segment bytes written / bytes flushed: {:.2}); stored {:.1} MB, {:.3} B/pt",
        flushed as f64 / 1e6,
        totals.bytes_written as f64 / 1e6,
        totals.merges,
        totals.segments_read,
        totals.bytes_written as f64 / flushed as f64,
        (flushed + totals.bytes_written) as f64 / flushed as f64,
        stored as f64 / 1e6,
        stored as f64 / points as f64
    );
    let counts: Vec<String> = parts.iter().map(|(_, n, _)| n.to_string()).collect();
    println!(
        "segments per month at the end: [{}] ({} segments, {} months)",
        counts.join(", "),
        parts.iter().map(|p| p.1).sum::<usize>(),
        parts.len()
    );
    Ok(())
}

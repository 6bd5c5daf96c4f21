//! The fleet-scale run: N meters x D days of generated load curves through the engine.
//!
//! `cargo run --release --example scale -- [METERS] [DAYS] [DIR] [--by-day]` (default
//! 1,000,000 x 7, a temporary directory). Batches hold 1,000 meters each: their whole span by
//! default (a bulk import), or one day of every meter at a time with `--by-day` (daily ingest:
//! each day touches every meter). Reports ingest points/s (time inside `Store::ingest` only; generation
//! runs on another thread), peak RSS (VmHWM), bytes per point on disk, the memtable's bytes per
//! meter, resident memory per meter once flushed and reopened, open time and one meter's read.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use courbe::engine::{Batch, Options, Store};
use courbe::{point_of, Channel};
use courbe_workload::{Fleet, FleetConfig};

const METERS_PER_BATCH: u32 = 1_000;

/// Every reading of meters `range` of `fleet` as one batch.
fn batch_of(fleet: &Fleet, range: std::ops::Range<u32>) -> Batch {
    let mut batch = Batch::new();
    for i in range {
        let m = fleet.meter(i);
        for (channel, readings) in [
            (Channel::CONSUMPTION, &m.consumption),
            (Channel::PRODUCTION, &m.production),
            (Channel::MAX_POWER, &m.max_power),
        ] {
            for r in readings {
                if batch.push(&m.meter_id, channel, point_of(r)).is_err() {
                    eprintln!("skipped an invalid generated point of {}", m.meter_id);
                }
            }
        }
    }
    batch
}

/// A field of /proc/self/status in bytes (Linux), 0 elsewhere.
fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// `scale open DIR METER`: opens a store in a fresh process and reports what opening costs.
fn open_only(dir: &str, meter: &str) -> Result<(), Box<dyn std::error::Error>> {
    let rss_before = proc_status_bytes("VmRSS:");
    let t = Instant::now();
    let store = Store::open(dir, Options::default())?;
    let open_time = t.elapsed();
    let rss_open = proc_status_bytes("VmRSS:");
    let mut reads = Vec::new();
    let mut read_len = 0;
    for _ in 0..3 {
        let t = Instant::now();
        read_len = store
            .snapshot()
            .points(meter, Channel::CONSUMPTION, 0, i64::MAX)?
            .len();
        reads.push(format!("{:.3}", t.elapsed().as_secs_f64() * 1e3));
    }
    let meters = store.stats().meters;
    println!(
        "fresh process: open {:.1} ms; resident {:.1} MiB after open over {:.1} MiB before \
         = {:.1} bytes/meter for {meters} meters; one meter ({} points) read in {} ms (3 reads)",
        open_time.as_secs_f64() * 1e3,
        mib(rss_open),
        mib(rss_before),
        rss_open.saturating_sub(rss_before) as f64 / meters.max(1) as f64,
        read_len,
        reads.join(", ")
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [cmd, dir, meter] = args.as_slice() {
        if cmd == "open" {
            return open_only(dir, meter);
        }
    }
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let meters: u32 = positional.first().map_or(Ok(1_000_000), |a| a.parse())?;
    let days: u32 = positional.get(1).map_or(Ok(7), |a| a.parse())?;
    let tmp = tempfile::tempdir()?;
    let dir = positional
        .get(2)
        .map_or_else(|| tmp.path().to_path_buf(), std::path::PathBuf::from);
    let fleet = Fleet::new(FleetConfig {
        meters,
        days,
        ..FleetConfig::default()
    });
    let by_day = args.iter().any(|a| a == "--by-day");
    println!(
        "scale: {meters} meters x {days} days into {}, {}",
        dir.display(),
        if by_day {
            "one day of every meter at a time"
        } else {
            "each meter's whole span at a time"
        }
    );
    let rss_before = proc_status_bytes("VmRSS:");

    let (tx, rx) = mpsc::sync_channel::<Batch>(4);
    let generator = std::thread::spawn(move || {
        // One fleet per day with `--by-day` (each meter generated one day at a time).
        let fleets: Vec<Fleet> = if by_day {
            (0..days)
                .map(|d| {
                    Fleet::new(FleetConfig {
                        start: fleet.config().start + jiff::Span::new().days(i64::from(d)),
                        days: 1,
                        ..fleet.config().clone()
                    })
                })
                .collect()
        } else {
            vec![fleet]
        };
        for fleet in &fleets {
            let mut start = 0;
            while start < meters {
                let end = (start + METERS_PER_BATCH).min(meters);
                if tx.send(batch_of(fleet, start..end)).is_err() {
                    return;
                }
                start = end;
            }
        }
    });

    let store = Store::open(&dir, Options::default())?;
    let mut points = 0u64;
    let mut in_ingest = Duration::ZERO;
    let mut peak = courbe::engine::MemtableMemory::default();
    let wall = Instant::now();
    for batch in rx {
        points += batch.len() as u64;
        let t = Instant::now();
        store.ingest(&batch)?;
        in_ingest += t.elapsed();
        let memory = store.memtable_memory();
        if memory.heap_bytes > peak.heap_bytes {
            peak = memory;
        }
    }
    generator.join().map_err(|_| "generator panicked")?;
    let ingest_wall = wall.elapsed();
    println!(
        "ingest: {points} points in {:.1} s inside ingest ({:.0} points/s, 1 writer thread), {:.1} s wall",
        in_ingest.as_secs_f64(),
        points as f64 / in_ingest.as_secs_f64(),
        ingest_wall.as_secs_f64()
    );
    println!(
        "memory after ingest: peak RSS (VmHWM) {:.1} MiB",
        mib(proc_status_bytes("VmHWM:"))
    );
    let t = Instant::now();
    store.flush()?;
    println!("flush: {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    store.compact()?;
    println!(
        "compact: {:.1} s; peak RSS now {:.1} MiB; resident now {:.1} MiB anonymous + {:.1} MiB \
         mapped file pages",
        t.elapsed().as_secs_f64(),
        mib(proc_status_bytes("VmHWM:")),
        mib(proc_status_bytes("RssAnon:")),
        mib(proc_status_bytes("RssFile:"))
    );
    let stats = store.stats();
    println!(
        "store: {} meters, {} points, {} segments, {:.1} MiB on disk, {:.2} bytes/point",
        stats.meters,
        stats.points,
        stats.segments,
        mib(stats.bytes_on_disk),
        stats.bytes_on_disk as f64 / stats.points.max(1) as f64
    );
    println!(
        "memtable at its largest: {:.1} MiB for {} meters and {} points; {:.1} bytes/meter \
         besides the point vectors",
        mib(peak.heap_bytes as u64),
        peak.meters,
        peak.points,
        (peak.heap_bytes - peak.point_bytes) as f64 / peak.meters.max(1) as f64
    );
    drop(store);
    println!(
        "peak RSS (VmHWM) of the ingest process: {:.1} MiB (started at {:.1} MiB)",
        mib(proc_status_bytes("VmHWM:")),
        mib(rss_before)
    );
    let meter = Fleet::new(FleetConfig {
        meters,
        days,
        ..FleetConfig::default()
    })
    .meter_id(meters / 2);
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("open")
        .arg(&dir)
        .arg(&meter)
        .status()?;
    if !status.success() {
        return Err("the open run failed".into());
    }
    Ok(())
}

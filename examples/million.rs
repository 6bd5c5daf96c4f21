//! The distributor-size run (issue 14 item 5): N meters x D days of generated consumption curves
//! (30-minute steps, 48 points a meter-day) fed one Europe/Paris day at a time, as a distributor's
//! daily flow feeds a store: each day is ingested in batches of 1,000 meters (one log record
//! each), then the store's own policy runs (a flush, then [`Store::compact_by_policy`]).
//!
//! One line per day, flushed as it comes (a run cut short keeps its figures): the day's points
//! and seconds (ingest / flush / compaction), the cumulative ingest rate (wall time, flushes and
//! compactions included), resident memory now (`VmRSS`, split into `RssAnon` and `RssFile`, the
//! pages of mapped segments) and at its peak (`VmHWM`), bytes on disk
//! and bytes per point, write amplification so far and the segments of each month. At the end:
//! the open time of the store (a fresh [`Store::open`] after the writer is dropped), one-meter
//! latencies (year curve, monthly energy, monthly peak: median of 21 meters spread over the
//! fleet, each read once) and the fleet questions (Q4: every meter's curve summed over one day;
//! Q5: every meter's monthly energy), with the peak RSS after each.
//!
//! ```text
//! cargo run --release --example million -- [METERS] [DAYS] [DIR] [--memtable-points N] [--from-day K] [--sequential-encoding]
//! cargo run --release --example million -- query METERS DAYS DIR     # only the end part, on a store
//! ```
//!
//! `--memtable-points` sets `Options::memtable_max_points` (default: `Options::default()`'s).
//! `--sequential-encoding` turns `Options::spread_encoding` off (a flush encodes each month on
//! one core, a merge runs on one), to compare with the default on the same binary.
//! Each day's line ends with the CPU seconds of its ingest, flush and compaction (every thread
//! of the process but the generator's, from `/proc`; 0 elsewhere), and the CPU seconds of the
//! busiest thread in its flush and in its compaction (on a shared machine, what the wall time
//! would be on idle cores, at best).
//! A full memtable is flushed in the background while the next one fills, so the memtables
//! may hold twice that many points at once.
//!
//! DIR must be empty or absent for a run (a store left there by another run is refused), unless
//! `--from-day K` resumes a run cut short: days K to DAYS (1-based) are fed into the store DIR
//! holds, of the same METERS. Every day is a function of its date alone, so a day partly fed
//! before the cut is fed again whole and changes nothing it already held. The cumulative figures
//! of a resumed run (points, rate, write amplification) count its own days only.
//! Generation runs on its own thread, one day ahead at most (4 batches queued).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use courbe::engine::{Batch, Options, Store};
use courbe::query::{self, Calendar, Period};
use courbe::{point_of, Channel};
use courbe_workload::{Fleet, FleetConfig};
use jiff::tz::TimeZone;

const METERS_PER_BATCH: u32 = 1_000;
/// One-meter questions are asked of this many meters, each once; the median is reported.
const ONE_METER_RUNS: u32 = 21;
/// Fleet questions are asked this many times each.
const FLEET_RUNS: usize = 3;

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

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// utime + stime, seconds, of a `/proc/.../stat` line.
fn stat_cpu_s(stat: &str) -> f64 {
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of this process but its thread named [`GENERATOR`] (Linux; 0 elsewhere).
/// `generator` holds the generator's CPU seconds last seen: once it has exited, its seconds stay
/// in the process's total and are taken from there.
fn cpu_s_but_generator(generator: &mut f64) -> f64 {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let all = stat_cpu_s(&read(Path::new("/proc/self/stat")));
    let seen: Option<f64> = std::fs::read_dir("/proc/self/task").ok().and_then(|d| {
        d.filter_map(|e| e.ok())
            .find(|e| read(&e.path().join("comm")).trim() == GENERATOR)
            .map(|e| stat_cpu_s(&read(&e.path().join("stat"))))
    });
    if let Some(s) = seen {
        *generator = s;
    }
    all - *generator
}

/// CPU seconds of each thread of this process but [`GENERATOR`], by thread id (Linux).
fn thread_cpu_s() -> Vec<(String, f64)> {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| read(&e.path().join("comm")).trim() != GENERATOR)
                .map(|e| {
                    let cpu = stat_cpu_s(&read(&e.path().join("stat")));
                    (e.file_name().to_string_lossy().into_owned(), cpu)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The most CPU seconds one thread spent between two [`thread_cpu_s`] readings: a lower bound
/// of the wall time of what ran between them on idle cores (the machine may be shared).
fn busiest_thread_s(before: &[(String, f64)], after: &[(String, f64)]) -> f64 {
    after
        .iter()
        .map(|(tid, cpu)| {
            let was = before
                .iter()
                .find(|(t, _)| t == tid)
                .map_or(0.0, |(_, c)| *c);
            cpu - was
        })
        .fold(0.0, f64::max)
}

/// The name of the thread that generates the days.
const GENERATOR: &str = "generator";

fn utc_now() -> String {
    jiff::Timestamp::now().strftime("%H:%M:%S").to_string()
}

/// Prints a line and flushes stdout (the log of a run cut short keeps every line).
macro_rules! say {
    ($($arg:tt)*) => {{
        println!($($arg)*);
        let _ = std::io::stdout().flush();
    }};
}

fn fleet_config(meters: u32, days: u32) -> FleetConfig {
    FleetConfig {
        meters,
        days,
        ..FleetConfig::default()
    }
}

/// Meters `range` of one-day fleet `fleet` (consumption only) as one batch.
fn batch_of(fleet: &Fleet, range: std::ops::Range<u32>) -> Batch {
    let mut batch = Batch::new();
    for i in range {
        let m = fleet.meter(i);
        for r in &m.consumption {
            if batch
                .push(&m.meter_id, Channel::CONSUMPTION, point_of(r))
                .is_err()
            {
                eprintln!("skipped an invalid generated point of {}", m.meter_id);
            }
        }
    }
    batch
}

/// What the generator thread sends: a batch of the day, or the end of the day.
enum Feed {
    Batch(Batch),
    EndOfDay,
}

fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = Options::default();
    if let Some(at) = args.iter().position(|a| a == "--memtable-points") {
        let n = args.get(at + 1).ok_or("--memtable-points N")?.parse()?;
        options.memtable_max_points = n;
        args.drain(at..at + 2);
    }
    if let Some(at) = args.iter().position(|a| a == "--sequential-encoding") {
        options.spread_encoding = false;
        args.remove(at);
    }
    let mut from_day = 1u32;
    if let Some(at) = args.iter().position(|a| a == "--from-day") {
        from_day = args.get(at + 1).ok_or("--from-day K")?.parse()?;
        args.drain(at..at + 2);
        if from_day == 0 {
            return Err("--from-day counts from 1".into());
        }
    }
    if args.first().map(String::as_str) == Some("query") {
        let [_, meters, days, dir] = args.as_slice() else {
            return Err("usage: million query METERS DAYS DIR".into());
        };
        return questions(meters.parse()?, days.parse()?, Path::new(dir), &options);
    }
    let meters: u32 = args.first().map_or(Ok(1_000_000), |a| a.parse())?;
    let days: u32 = args.get(1).map_or(Ok(365), |a| a.parse())?;
    let dir = PathBuf::from(args.get(2).ok_or("DIR is required")?);
    let holds_files = std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
    if from_day == 1 && holds_files {
        return Err(format!("{} is not empty: give a fresh directory", dir.display()).into());
    }
    if from_day > 1 && !dir.join("MANIFEST").exists() {
        return Err(format!("--from-day {from_day}: {} holds no store", dir.display()).into());
    }
    ingest(meters, days, from_day - 1, &dir, &options)?;
    questions(meters, days, &dir, &options)
}

/// Feeds days `done + 1 ..= days` (1-based).
fn ingest(
    meters: u32,
    days: u32,
    done: u32,
    dir: &Path,
    options: &Options,
) -> Result<(), Box<dyn std::error::Error>> {
    let config = fleet_config(meters, days);
    say!(
        "million: {meters} meters x {days} days from {} into {}{}, one day at a time in batches of \
         {METERS_PER_BATCH} meters, then flush and compact_by_policy; memtable of {} points; \
         {} rayon threads; started {} UTC, load average {}",
        config.start,
        dir.display(),
        if done > 0 {
            format!(", resumed at day {} (figures count this run's days only)", done + 1)
        } else {
            String::new()
        },
        options.memtable_max_points,
        rayon::current_num_threads(),
        utc_now(),
        load_average()
    );
    let (tx, rx) = mpsc::sync_channel::<Feed>(4);
    let day_one = config.clone();
    let generator = std::thread::Builder::new()
        .name(GENERATOR.into())
        .spawn(move || {
            for d in done..days {
                // Each day's calendar and every meter's day are functions of the date alone, so
                // a one-day fleet per day yields the days of the whole span's fleet.
                let fleet = Fleet::new(FleetConfig {
                    start: day_one.start + jiff::Span::new().days(i64::from(d)),
                    days: 1,
                    ..day_one.clone()
                });
                let mut start = 0;
                while start < meters {
                    let end = (start + METERS_PER_BATCH).min(meters);
                    if tx.send(Feed::Batch(batch_of(&fleet, start..end))).is_err() {
                        return;
                    }
                    start = end;
                }
                if tx.send(Feed::EndOfDay).is_err() {
                    return;
                }
            }
        })?;

    let store = Store::open(dir, options.clone())?;
    // Points already held by a resumed store, for bytes per point.
    let held = if done > 0 { store.stats().points } else { 0 };
    let started = Instant::now();
    let (mut points, mut day_points, mut day) = (0u64, 0u64, done);
    let (mut flushed, mut compacted, mut last_bytes) = (0u64, 0u64, 0u64);
    let mut in_ingest = Duration::ZERO;
    let mut day_started = Instant::now();
    let mut generator_cpu = 0.0;
    let mut day_cpu = cpu_s_but_generator(&mut generator_cpu);
    let segment_bytes = |s: &Store| -> u64 { s.partition_segments().iter().map(|p| p.2).sum() };
    for feed in rx {
        match feed {
            Feed::Batch(batch) => {
                day_points += batch.len() as u64;
                let t = Instant::now();
                store.ingest(&batch)?;
                in_ingest += t.elapsed();
            }
            Feed::EndOfDay => {
                let ingest_s = day_started.elapsed().as_secs_f64();
                let cpu_ingested = cpu_s_but_generator(&mut generator_cpu);
                let threads_ingested = thread_cpu_s();
                let t = Instant::now();
                store.flush()?;
                let flush_s = t.elapsed().as_secs_f64();
                let cpu_flushed = cpu_s_but_generator(&mut generator_cpu);
                let threads_flushed = thread_cpu_s();
                let t = Instant::now();
                let report = store.compact_by_policy()?;
                let cpu_compacted = cpu_s_but_generator(&mut generator_cpu);
                let threads_compacted = thread_cpu_s();
                compacted += report.bytes_written;
                // Segment bytes changed by the day's flushes, and by compaction (written less
                // read).
                let now = segment_bytes(&store);
                flushed +=
                    (now + report.bytes_read).saturating_sub(last_bytes + report.bytes_written);
                last_bytes = now;
                let compact_s = t.elapsed().as_secs_f64();
                points += day_points;
                day += 1;
                let wall = started.elapsed().as_secs_f64();
                let on_disk = disk_bytes(dir);
                let parts = store.partition_segments();
                let counts: Vec<String> = parts.iter().map(|(_, n, _)| n.to_string()).collect();
                say!(
                    "day {day}/{days} {}: {day_points} points in {:.1} s (ingest {ingest_s:.1}, \
                     flush {flush_s:.1}, compaction {compact_s:.1}: {} merges of {} segments, \
                     {:.0} MB); total {points} points in {wall:.0} s = {:.2} M points/s; RSS \
                     {:.0} MiB ({:.0} anonymous, {:.0} mapped files), peak {:.0} MiB; {:.2} GB \
                     on disk, {:.3} B/pt; write \
                     amplification {:.2}; segments per month [{}]; {} UTC, load {}; CPU s \
                     ingest {:.2}, flush {:.2}, compaction {:.2}; busiest thread s flush {:.2}, \
                     compaction {:.2}",
                    config.start + jiff::Span::new().days(i64::from(day - 1)),
                    ingest_s + flush_s + compact_s,
                    report.merges,
                    report.segments_read,
                    report.bytes_written as f64 / 1e6,
                    points as f64 / wall / 1e6,
                    mib(proc_status_bytes("VmRSS:")),
                    mib(proc_status_bytes("RssAnon:")),
                    mib(proc_status_bytes("RssFile:")),
                    mib(proc_status_bytes("VmHWM:")),
                    on_disk as f64 / 1e9,
                    on_disk as f64 / (held + points).max(1) as f64,
                    (flushed + compacted) as f64 / flushed.max(1) as f64,
                    counts.join(" "),
                    utc_now(),
                    load_average(),
                    cpu_ingested - day_cpu,
                    cpu_flushed - cpu_ingested,
                    cpu_compacted - cpu_flushed,
                    busiest_thread_s(&threads_ingested, &threads_flushed),
                    busiest_thread_s(&threads_flushed, &threads_compacted)
                );
                day_points = 0;
                day_started = Instant::now();
                day_cpu = cpu_s_but_generator(&mut generator_cpu);
            }
        }
    }
    generator.join().map_err(|_| "generator panicked")?;
    let wall = started.elapsed().as_secs_f64();
    say!(
        "ingested {points} points in {wall:.0} s: {:.2} M points/s day by day, flushes and \
         compactions included ({:.0} s inside Store::ingest); flushes wrote {:.2} GB, \
         compactions {:.2} GB (write amplification {:.2}); peak RSS {:.0} MiB",
        points as f64 / wall / 1e6,
        in_ingest.as_secs_f64(),
        flushed as f64 / 1e9,
        compacted as f64 / 1e9,
        (flushed + compacted) as f64 / flushed.max(1) as f64,
        mib(proc_status_bytes("VmHWM:"))
    );
    Ok(())
}

fn median_ms(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times
        .get(times.len() / 2)
        .map_or(0.0, |t| t.as_secs_f64() * 1e3)
}

/// Open time, one-meter latencies and the fleet questions of the store in `dir`.
fn questions(
    meters: u32,
    days: u32,
    dir: &Path,
    options: &Options,
) -> Result<(), Box<dyn std::error::Error>> {
    let rss_before = proc_status_bytes("VmRSS:");
    let t = Instant::now();
    let store = Store::open(dir, options.clone())?;
    let open_s = t.elapsed().as_secs_f64();
    let stats = store.stats();
    say!(
        "open: {:.1} ms ({} meters, {} points, {} segments, {:.2} GB, {:.3} B/pt); resident {:.0} \
         MiB after open ({:.0} MiB before); {} UTC, load {}",
        open_s * 1e3,
        stats.meters,
        stats.points,
        stats.segments,
        stats.bytes_on_disk as f64 / 1e9,
        stats.bytes_on_disk as f64 / stats.points.max(1) as f64,
        mib(proc_status_bytes("VmRSS:")),
        mib(rss_before),
        utc_now(),
        load_average()
    );
    let config = fleet_config(meters, days);
    let tz = TimeZone::get("Europe/Paris")?;
    let midnight = |date: jiff::civil::Date| -> Result<i64, jiff::Error> {
        Ok(date.to_zoned(tz.clone())?.timestamp().as_second())
    };
    let from = midnight(config.start)?;
    let to = midnight(config.start + jiff::Span::new().days(i64::from(days)))?;
    let months = Calendar {
        from_utc: from,
        to_utc: to,
        period: Period::Month,
        tz: tz.clone(),
    };
    let fleet = Fleet::new(fleet_config(meters, 1));
    let ids: Vec<String> = (0..ONE_METER_RUNS)
        .map(|k| {
            fleet.meter_id(
                ((u64::from(k) * 2 + 1) * u64::from(meters) / (2 * u64::from(ONE_METER_RUNS)))
                    as u32,
            )
        })
        .collect();
    let (mut curve_t, mut energy_t, mut peak_t) = (Vec::new(), Vec::new(), Vec::new());
    let mut curve_points = 0;
    for id in &ids {
        let snap = store.snapshot();
        let t = Instant::now();
        curve_points = query::curve(&*snap, id, Channel::CONSUMPTION, from, to)?.len();
        curve_t.push(t.elapsed());
        let snap = store.snapshot();
        let t = Instant::now();
        query::energy(&*snap, id, Channel::CONSUMPTION, &months, None)?;
        energy_t.push(t.elapsed());
        let snap = store.snapshot();
        let t = Instant::now();
        query::peak(&*snap, id, &months)?;
        peak_t.push(t.elapsed());
    }
    say!(
        "one meter ({ONE_METER_RUNS} meters, median): Q1 curve of the span ({curve_points} \
         points) {:.3} ms, Q2 monthly energy {:.3} ms, Q3 monthly peak {:.3} ms; peak RSS {:.0} MiB",
        median_ms(curve_t),
        median_ms(energy_t),
        median_ms(peak_t),
        mib(proc_status_bytes("VmHWM:"))
    );
    let q4_day = config.start + jiff::Span::new().days(i64::from(days / 2));
    let (day_from, day_to) = (
        midnight(q4_day)?,
        midnight(q4_day + jiff::Span::new().days(1))?,
    );
    for run in 1..=FLEET_RUNS {
        let snap = store.snapshot();
        let t = Instant::now();
        let curve = query::fleet_curve(&*snap, Channel::CONSUMPTION, day_from, day_to, None)?;
        let q4 = t.elapsed().as_secs_f64();
        let covered: u64 = curve.iter().map(|p| u64::from(p.meters)).sum();
        drop(curve);
        say!(
            "Q4 fleet curve of {q4_day} (run {run}): {:.3} s, {covered} meter-points; peak RSS \
             {:.0} MiB; {} UTC, load {}",
            q4,
            mib(proc_status_bytes("VmHWM:")),
            utc_now(),
            load_average()
        );
    }
    for run in 1..=FLEET_RUNS {
        let snap = store.snapshot();
        let t = Instant::now();
        let energy = query::fleet_energy(&*snap, Channel::CONSUMPTION, &months, None)?;
        let q5 = t.elapsed().as_secs_f64();
        let covered: u64 = energy
            .iter()
            .flat_map(|m| &m.periods)
            .map(|p| p.points)
            .sum();
        let answered = energy.len();
        drop(energy);
        say!(
            "Q5 every meter's monthly energy (run {run}): {:.3} s, {answered} meters, {covered} \
             points; peak RSS {:.0} MiB; {} UTC, load {}",
            q5,
            mib(proc_status_bytes("VmHWM:")),
            utc_now(),
            load_average()
        );
    }
    Ok(())
}

//! A real process killed with SIGKILL: while ingesting, every batch it acknowledged reads back;
//! while erasing (alone or with a revocation), the meter is untouched or wholly erased at
//! reopening, and wholly erased once the erasure was acknowledged.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use courbe::engine::{Batch, Options, Store};
use courbe::governance::consent::{Collection, ConsentEvent};
use courbe::governance::{Governance, GovernanceConfig};
use courbe::{Channel, Point};

use super::{pt, read, T0};
use crate::util::Rng;

const ENV_DIR: &str = "COURBE_SIGKILL_CHILD_DIR";
const METERS: i64 = 20;

/// Batch `k`: one day of meter `k % 20`, values unique to `k`.
fn nth_batch(k: i64) -> (String, Vec<Point>) {
    let meter = format!("k{}", k % METERS);
    let day = k / METERS;
    let points = (0..48)
        .map(|i| pt(T0 + day * 86_400 + i * 1800, (k * 48 + i) as i32))
        .collect();
    (meter, points)
}

/// The daily energy and BASE index that batch `k` also carries: at the Paris midnight (CET in
/// January and February 2024) that starts its day, values unique to `k`.
fn nth_daily(k: i64) -> Point {
    Point {
        ts_utc: T0 - 3600 + (k / METERS) * 86_400,
        value: k as i32,
        step_min: 1440,
        quality: courbe::Quality::Measured,
    }
}

/// The arguments that run exactly the ignored child test `name` of this binary.
fn child_args(name: &str) -> [&str; 5] {
    [
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]
}

fn options() -> Options {
    Options {
        memtable_max_points: 5_000,
        ..Options::default()
    }
}

/// The child side of the test below, run in a separate process (it fails without
/// `COURBE_SIGKILL_CHILD_DIR`). It ingests batches forever, printing `acked K` after each
/// acknowledgement, and compacts now and then.
#[test]
#[ignore = "the child process of every_batch_acknowledged_before_a_sigkill_reads_back_exactly, run by it"]
fn sigkill_child_writer() {
    let dir = std::env::var(ENV_DIR).expect("run by its parent test, which sets the directory");
    let store = Store::open(&dir, options()).expect("child opens the store");
    let base = store
        .index_channel("BASE")
        .expect("child names its register");
    let mut out = std::io::stdout().lock();
    for k in 0.. {
        let (meter, points) = nth_batch(k);
        let mut b = Batch::new();
        for p in points {
            b.push(&meter, Channel::CONSUMPTION, p).expect("valid");
        }
        b.push(&meter, Channel::DAILY_ENERGY, nth_daily(k))
            .expect("valid");
        b.push(&meter, base, nth_daily(k)).expect("valid");
        store.ingest(&b).expect("child ingests");
        writeln!(out, "acked {k}").expect("parent reads");
        out.flush().expect("parent reads");
        if k % 150 == 149 {
            store.compact().expect("child compacts");
        }
    }
}

#[test]
fn every_batch_acknowledged_before_a_sigkill_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0x5161_4b11);
    let mut last_acked: i64 = -1;
    for round in 0..3 {
        let kill_after = last_acked + 30 + rng.below(300) as i64;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(child_args("engine::sigkill::sigkill_child_writer"))
            .env(ENV_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut round_acked = -1;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(k) = line.strip_prefix("acked ") {
                round_acked = k.parse().unwrap();
                if round_acked >= kill_after {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        assert!(
            round_acked >= kill_after,
            "round {round}: child stopped at {round_acked}"
        );
        // The child starts again from batch 0 each round, rewriting the same values.
        last_acked = last_acked.max(round_acked);

        let store = Store::open(dir.path(), options()).unwrap();
        store.verify().unwrap();
        for m in 0..METERS {
            let got = read(&store, &format!("k{m}"), Channel::CONSUMPTION);
            let acked = (0..=last_acked).filter(|k| k % METERS == m).count() * 48;
            // Batches the child acknowledged after the last line read may be there too: what
            // is there must be exactly the start of the sequence the child writes.
            let sequence: Vec<Point> = (0..)
                .filter(|k| k % METERS == m)
                .take(got.len() / 48 + 1)
                .flat_map(|k| nth_batch(k).1)
                .collect();
            assert!(
                got.len() >= acked,
                "round {round}: meter k{m} lost acknowledged data"
            );
            assert!(
                got.len() % 48 == 0 && sequence.starts_with(&got),
                "round {round}: meter k{m} holds points the child did not write"
            );
            // The same batches' daily energy and BASE index: one point each per batch.
            let base = store.snapshot().index_channel("BASE").expect("register");
            for channel in [Channel::DAILY_ENERGY, base] {
                let daily = read(&store, &format!("k{m}"), channel);
                let want: Vec<Point> = (0..)
                    .filter(|k| k % METERS == m)
                    .take(got.len() / 48)
                    .map(nth_daily)
                    .collect();
                assert_eq!(daily, want, "round {round}: meter k{m} {channel:?}");
            }
        }
    }
}

const VICTIM: &str = "30000000000042";
const OTHER: &str = "10000000000001";

fn day(meter: &str, channel: Channel, d: i64, base: i32) -> Batch {
    let mut b = Batch::new();
    for i in 0..48 {
        b.push(
            meter,
            channel,
            pt(T0 + d * 86_400 + i * 1800, base + (d * 48 + i) as i32),
        )
        .expect("valid");
    }
    b
}

/// A data directory where the victim has points in segments of two months and newer ones only
/// in the log, next to another meter; returns the victim's curve and the other meter's.
fn erasure_template(dir: &Path) -> (Vec<Point>, Vec<Point>) {
    let store = Store::open(dir, Options::default()).unwrap();
    for d in [0, 1, 40] {
        store
            .ingest(&day(VICTIM, Channel::CONSUMPTION, d, 7_000))
            .unwrap();
        store
            .ingest(&day(OTHER, Channel::CONSUMPTION, d, 100))
            .unwrap();
        store.flush().unwrap();
    }
    store
        .ingest(&day(VICTIM, Channel::PRODUCTION, 41, 9_000))
        .unwrap();
    store.flush().unwrap();
    store
        .ingest(&day(VICTIM, Channel::CONSUMPTION, 42, 7_000))
        .unwrap();
    store
        .ingest(&day(OTHER, Channel::CONSUMPTION, 42, 100))
        .unwrap();
    (curve(&store, VICTIM), curve(&store, OTHER))
}

fn curve(store: &Store, meter: &str) -> Vec<Point> {
    let mut all = read(store, meter, Channel::CONSUMPTION);
    all.extend(read(store, meter, Channel::PRODUCTION));
    all
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn revocation_with_erasure() -> ConsentEvent {
    ConsentEvent {
        meter: VICTIM.into(),
        from_utc: i64::MIN,
        collection: Collection::Revoked,
        step_min: None,
        erase: true,
        recorded_utc: T0 + 100 * 86_400,
        by: "consumer:test".into(),
    }
}

/// The child of the erasure kills below: opens the store, prints `open`, erases the victim,
/// prints `done` (each on a line of its own: the test harness may have begun one).
#[test]
#[ignore = "the child process of an_erasure_killed_at_any_moment_is_untouched_or_wholly_done_at_reopening, run by it"]
fn sigkill_child_eraser() {
    let dir = std::env::var(ENV_DIR).expect("run by its parent test, which sets the directory");
    let store = Store::open(&dir, Options::default()).expect("child opens the store");
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nopen")
        .and_then(|()| out.flush())
        .expect("parent reads");
    store.erase(VICTIM, None).expect("child erases");
    writeln!(out, "\ndone")
        .and_then(|()| out.flush())
        .expect("parent reads");
}

/// The child of the revocation kills below: opens store and governance, prints `open`, records
/// a revocation with erasure, prints `done`.
#[test]
#[ignore = "the child process of a_revocation_with_erasure_killed_at_any_moment_never_leaves_the_curve_behind, run by it"]
fn sigkill_child_revoker() {
    let dir = std::env::var(ENV_DIR).expect("run by its parent test, which sets the directory");
    let store = Store::open(&dir, Options::default()).expect("child opens the store");
    let gov = Governance::open(Path::new(&dir), GovernanceConfig::default())
        .expect("child opens governance");
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nopen")
        .and_then(|()| out.flush())
        .expect("parent reads");
    gov.record_consent(&store, revocation_with_erasure())
        .expect("child revokes");
    writeln!(out, "\ndone")
        .and_then(|()| out.flush())
        .expect("parent reads");
}

/// How a killed run ended, seen from its reopened store.
#[derive(Debug, Default)]
struct Tally {
    untouched: u32,
    erased: u32,
    /// Erased although the child was killed before it printed `done`.
    erased_at_reopening: u32,
}

/// Runs the child test `child` `runs` times on a copy of `template`, each killed (SIGKILL) at a
/// random moment after it printed `open`; `judge(dir, acknowledged)` checks each reopened copy
/// and says whether the victim was erased.
fn kill_at_random_moments(
    child: &str,
    template: &Path,
    runs: u32,
    seed: u64,
    window_us: u64,
    mut judge: impl FnMut(&Path, bool, &str) -> bool,
) -> Tally {
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    for run in 0..runs {
        let work = tempfile::tempdir().unwrap();
        copy_dir(template, work.path());
        let (mut proc, mut lines) = spawn_child(child, work.path());
        let opened = lines.by_ref().map_while(Result::ok).any(|l| l == "open");
        // Skewed early, where the erasure's first commits are.
        let delay_us = rng.below(window_us) * rng.below(1_000) / 1_000;
        std::thread::sleep(std::time::Duration::from_micros(delay_us));
        proc.kill().unwrap(); // SIGKILL on Unix
        proc.wait().unwrap();
        assert!(opened, "run {run}: the child did not open the store");
        let acknowledged = lines.map_while(Result::ok).any(|l| l == "done");
        let ctx = format!("run {run}, killed {delay_us} µs after open");
        let erased = judge(work.path(), acknowledged, &ctx);
        match (erased, acknowledged) {
            (false, _) => tally.untouched += 1,
            (true, true) => tally.erased += 1,
            (true, false) => tally.erased_at_reopening += 1,
        }
    }
    tally
}

/// The child test `child` on the data directory `dir`, and its stdout read line by line.
fn spawn_child(
    child: &str,
    dir: &Path,
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args(child_args(child))
        .env(ENV_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(proc.stdout.take().unwrap()).lines();
    (proc, lines)
}

/// The victim as a reopened store holds it: untouched (`false`) or wholly erased (`true`),
/// the other meter whole either way.
fn judge_store(store: &Store, victim: &[Point], other: &[Point], ctx: &str) -> bool {
    store
        .verify()
        .unwrap_or_else(|e| panic!("{ctx}: verify failed: {e}"));
    assert_eq!(curve(store, OTHER), other, "{ctx}: the other meter");
    let got = curve(store, VICTIM);
    if got.is_empty() {
        return true;
    }
    assert_eq!(
        got, victim,
        "{ctx}: the victim is neither untouched nor wholly erased"
    );
    false
}

/// The time from `open` to `done` of one uninterrupted run of the child test `child` on a copy
/// of `template`, in µs, with a margin: the window the kills are spread over.
fn child_window_us(child: &str, template: &Path) -> u64 {
    let work = tempfile::tempdir().unwrap();
    copy_dir(template, work.path());
    let (mut proc, mut lines) = spawn_child(child, work.path());
    assert!(lines.by_ref().map_while(Result::ok).any(|l| l == "open"));
    let started = std::time::Instant::now();
    assert!(lines.map_while(Result::ok).any(|l| l == "done"));
    let took = started.elapsed();
    proc.wait().unwrap();
    (took.as_micros() as u64 * 3 / 2).max(500)
}

#[test]
fn an_erasure_killed_at_any_moment_is_untouched_or_wholly_done_at_reopening() {
    let template = tempfile::tempdir().unwrap();
    let (victim, other) = erasure_template(template.path());
    let child = "engine::sigkill::sigkill_child_eraser";
    let window_us = child_window_us(child, template.path());
    let tally = kill_at_random_moments(
        child,
        template.path(),
        50,
        0xE7A5_0001,
        window_us,
        |dir, acknowledged, ctx| {
            let store = Store::open(dir, Options::default()).unwrap();
            let erased = judge_store(&store, &victim, &other, ctx);
            assert!(
                erased || !acknowledged,
                "{ctx}: acknowledged erasure undone"
            );
            erased
        },
    );
    eprintln!("erasure killed 50 times within {window_us} µs: {tally:?}");
}

#[test]
fn a_revocation_with_erasure_killed_at_any_moment_never_leaves_the_curve_behind() {
    let template = tempfile::tempdir().unwrap();
    let (victim, other) = erasure_template(template.path());
    Governance::open(template.path(), GovernanceConfig::default()).unwrap();
    let child = "engine::sigkill::sigkill_child_revoker";
    let window_us = child_window_us(child, template.path());
    let tally = kill_at_random_moments(
        child,
        template.path(),
        50,
        0xE7A5_0002,
        window_us,
        |dir, acknowledged, ctx| {
            let store = Store::open(dir, Options::default()).unwrap();
            let gov = Governance::open(dir, GovernanceConfig::default()).unwrap();
            let revoked = gov
                .consent_history(VICTIM)
                .iter()
                .any(|e| e.erase && e.collection == Collection::Revoked);
            let erased = judge_store(&store, &victim, &other, ctx);
            assert!(
                erased || !revoked,
                "{ctx}: revoked with erasure, and the curve is still there"
            );
            assert!(
                (erased && revoked) || !acknowledged,
                "{ctx}: acknowledged revocation not in force"
            );
            erased
        },
    );
    eprintln!("revocation killed 50 times within {window_us} µs: {tally:?}");
}

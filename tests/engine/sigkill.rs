//! A real process killed with SIGKILL while ingesting: every batch it acknowledged reads back.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use courbe::engine::{Batch, Options, Store};
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

fn options() -> Options {
    Options {
        memtable_max_points: 5_000,
        ..Options::default()
    }
}

/// The child side of the test below, run in a separate process; it does nothing unless
/// `COURBE_SIGKILL_CHILD_DIR` is set. It ingests batches forever, printing `acked K` after each
/// acknowledgement, and compacts now and then.
#[test]
fn sigkill_child_writer() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let store = Store::open(&dir, options()).expect("child opens the store");
    let mut out = std::io::stdout().lock();
    for k in 0.. {
        let (meter, points) = nth_batch(k);
        let mut b = Batch::new();
        for p in points {
            b.push(&meter, Channel::Consumption, p).expect("valid");
        }
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
            .args([
                "engine::sigkill::sigkill_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
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
            let got = read(&store, &format!("k{m}"), Channel::Consumption);
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
        }
    }
}

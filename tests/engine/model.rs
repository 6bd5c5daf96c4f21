//! Random operations against an in-memory model, with injected I/O failures and crashes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use courbe::engine::fs::testing::{FaultOp, SimFs};
use courbe::engine::{Batch, Error, Options, Store};
use courbe::{Channel, Point, Quality};

use super::{read, T0};
use crate::util::Rng;

const METERS: [&str; 3] = ["m0", "m1", "m2"];
/// The curves, daily energy and two index channels (registers BASE and HP, assigned when the
/// store is created).
const CHANNELS: [Channel; 5] = [
    Channel::CONSUMPTION,
    Channel::PRODUCTION,
    Channel::DAILY_ENERGY,
    Channel::index(0).unwrap(),
    Channel::index(1).unwrap(),
];

type Model = BTreeMap<(usize, usize, i64), Point>;

fn random_batch(rng: &mut Rng) -> (Batch, Vec<(usize, usize, Point)>) {
    let mut b = Batch::new();
    let mut rows = Vec::new();
    let n = 1 + rng.below(24);
    // Runs of one series, as real batches come.
    let mut m = rng.below(3) as usize;
    let mut c = rng.below(5) as usize;
    let midnights = super::channels::paris_midnights(2024, 1, 1, 91);
    for _ in 0..n {
        if rng.below(4) == 0 {
            m = rng.below(3) as usize;
            c = rng.below(5) as usize;
        }
        if c >= 2 {
            // A day's energy at its Paris midnight (DST days included: 2024-03-31 is day 90);
            // an index reading at midnight or later that day. Collisions on purpose.
            let day = midnights[rng.below(91) as usize];
            let late = if c >= 3 && rng.below(3) == 0 {
                rng.below(86_000) as i64
            } else {
                0
            };
            let p = Point {
                ts_utc: day + late,
                value: rng.below(5000) as i32,
                step_min: 1440,
                quality: Quality::ALL[rng.below(3) as usize],
            };
            b.push(METERS[m], CHANNELS[c], p).expect("valid");
            rows.push((m, c, p));
            continue;
        }
        // Three months of half-hours, with collisions on purpose.
        let slot = rng.below(90 * 48 / 16) as i64 * 16 + rng.below(3) as i64;
        let p = Point {
            ts_utc: T0 + slot * 1800,
            value: rng.below(5000) as i32 - 100,
            // One step per meter, at most the slot: a reading meets another only at the same
            // start and replaces it whole (mixed steps are the query model's, in
            // tests/query/model.rs).
            step_min: [10, 15, 30][m],
            quality: Quality::ALL[rng.below(3) as usize],
        };
        b.push(METERS[m], CHANNELS[c], p).expect("valid");
        rows.push((m, c, p));
    }
    (b, rows)
}

fn check(store: &Store, model: &Model, ctx: &str) {
    for (m, meter) in METERS.iter().enumerate() {
        for (c, channel) in CHANNELS.iter().enumerate() {
            let want: Vec<Point> = model
                .range((m, c, i64::MIN)..=(m, c, i64::MAX))
                .map(|(_, p)| *p)
                .collect();
            assert_eq!(
                read(store, meter, *channel),
                want,
                "{ctx}: {meter} {channel:?}"
            );
        }
    }
}

/// After a failed ingest the batch may or may not be durable: adopt what the store shows,
/// provided every point is either the old value or the batch's (the newest of it).
fn adopt(store: &Store, model: &mut Model, rows: &[(usize, usize, Point)], ctx: &str) {
    let mut batch_value: BTreeMap<(usize, usize, i64), Point> = BTreeMap::new();
    for (m, c, p) in rows {
        batch_value.insert((*m, *c, p.ts_utc), *p);
    }
    let mut present = None;
    for (key, p) in &batch_value {
        let got = read(store, METERS[key.0], CHANNELS[key.1])
            .into_iter()
            .find(|x| x.ts_utc == key.2);
        let is_new = got == Some(*p);
        let is_old = got == model.get(key).copied();
        assert!(
            is_new || is_old,
            "{ctx}: {key:?} is neither old nor new: {got:?}"
        );
        if is_new != is_old {
            // All or nothing: a batch is one log record.
            assert!(
                present.is_none_or(|b| b == is_new),
                "{ctx}: batch half applied"
            );
            present = Some(is_new);
        }
    }
    if present == Some(true) {
        model.extend(batch_value);
    }
}

/// Returns how many flushes and compactions failed (and were served through).
fn run(seed: u64, steps: usize) -> usize {
    let mut rng = Rng::new(seed);
    let dir = Path::new("/model");
    let options = Options {
        memtable_max_points: 60,
        ..Options::default()
    };
    let mut fs = SimFs::new();
    let mut store = Store::open_with(dir, options.clone(), Arc::new(fs.clone())).unwrap();
    assert_eq!(store.index_channel("BASE").ok(), Some(CHANNELS[3]));
    assert_eq!(store.index_channel("HP").ok(), Some(CHANNELS[4]));
    let mut model = Model::new();
    let mut served = 0;
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        let roll = rng.below(100);
        let failed = match roll {
            0..=49 => {
                let (b, rows) = random_batch(&mut rng);
                match store.ingest(&b) {
                    Ok(()) => {
                        for (m, c, p) in rows {
                            model.insert((m, c, p.ts_utc), p);
                        }
                        None
                    }
                    Err(_) => Some(rows),
                }
            }
            50..=66 => {
                let result = if roll < 60 {
                    store.flush()
                } else {
                    store.compact()
                };
                match result {
                    Ok(()) => None,
                    Err(e) => {
                        served += 1;
                        serves_reads_and_refuses_writes(
                            &store,
                            &model,
                            &mut rng,
                            &format!("{ctx}: {e}"),
                        );
                        Some(Vec::new())
                    }
                }
            }
            67..=74 => {
                let m = rng.below(3) as usize;
                let range = (rng.below(2) == 0).then(|| {
                    let from = T0 + rng.below(90 * 48) as i64 * 1800;
                    (from, from + (1 + rng.below(30 * 48)) as i64 * 1800)
                });
                let mut result = store.erase(METERS[m], range);
                if result.is_err() {
                    // An erasure that failed is retried after a crash and restart.
                    fs.clear_faults();
                    drop(store);
                    fs = fs.crash();
                    store = Store::open_with(dir, options.clone(), Arc::new(fs.clone()))
                        .unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
                    result = store.erase(METERS[m], range);
                }
                result.unwrap_or_else(|e| panic!("{ctx}: erase: {e}"));
                let (from, to) = range.unwrap_or((i64::MIN, i64::MAX));
                // Erasure is of the curve; daily energy and indexes stay.
                model.retain(|(mm, c, ts), _| {
                    !(*mm == m && CHANNELS[*c].is_curve() && from <= *ts && *ts < to)
                });
                None
            }
            75..=82 => {
                drop(store);
                if rng.below(2) == 0 {
                    fs = fs.crash();
                }
                match Store::open_with(dir, options.clone(), Arc::new(fs.clone())) {
                    Ok(s) => store = s,
                    Err(_) => {
                        // An injected failure during open: crash and open again.
                        fs = fs.crash();
                        store = Store::open_with(dir, options.clone(), Arc::new(fs.clone()))
                            .unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
                    }
                }
                None
            }
            _ => {
                let op = FaultOp::ALL[rng.below(FaultOp::ALL.len() as u64) as usize];
                fs.fail_nth(op, rng.below(6));
                None
            }
        };
        if let Some(rows) = failed {
            // Restart right after the failure (after a crash, or not), and compare.
            fs.clear_faults();
            drop(store);
            if rng.below(4) != 0 {
                fs = fs.crash();
            }
            store = Store::open_with(dir, options.clone(), Arc::new(fs.clone()))
                .unwrap_or_else(|e| panic!("{ctx}: reopen after failure: {e}"));
            adopt(&store, &mut model, &rows, &ctx);
        }
        if step % 10 == 0 || failed_check(roll) {
            check(&store, &model, &ctx);
        }
    }
    fs.clear_faults();
    check(&store, &model, &format!("seed {seed} end"));
    store.verify().unwrap();
    drop(store);
    let store = Store::open_with(dir, options, Arc::new(fs.crash())).unwrap();
    check(&store, &model, &format!("seed {seed} after a final crash"));
    served
}

/// After a failed flush or compaction the same store keeps answering reads (every acknowledged
/// point, nothing else) and refuses every write until it is reopened.
fn serves_reads_and_refuses_writes(store: &Store, model: &Model, rng: &mut Rng, ctx: &str) {
    check(store, model, &format!("{ctx}: serving after the failure"));
    let (b, _) = random_batch(rng);
    assert!(
        matches!(store.ingest(&b), Err(Error::Closed)),
        "{ctx}: an ingest after the failure was not refused"
    );
    let flushed = store.flush();
    assert!(
        matches!(flushed, Err(Error::Closed)),
        "{ctx}: a flush after the failure was not refused: {flushed:?}"
    );
    check(
        store,
        model,
        &format!("{ctx}: serving after a refused write"),
    );
}

fn failed_check(roll: u64) -> bool {
    (75..=82).contains(&roll)
}

#[test]
fn random_operations_with_faults_and_crashes_match_a_model() {
    let served: usize = (1..=12).map(|seed| run(seed, 200)).sum();
    assert!(served >= 40, "only {served} failed flushes or compactions");
}

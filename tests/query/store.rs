//! The properties again, against a real engine `Store`: batches ingested out of order with
//! duplicates and corrections, erasures, flushes and compactions between them.

use courbe::engine::{Batch, Options, Store};
use courbe::source::SeriesSource;
use proptest::prelude::*;

use super::model::{generate, generate_workload, Generated, Model, Op};
use super::properties::check_sources;
use crate::util::Rng;

fn replay(seed: u64, g: &Generated) {
    let model = Model::resolve(&g.ops);
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        memtable_max_points: 200,
        ..Options::default()
    };
    let store = Store::open(dir.path(), options).expect("store opens");
    let mut rng = Rng::new(seed ^ 0xE1);
    for op in &g.ops {
        match op {
            Op::Batch(rows) => {
                let mut batch = Batch::new();
                for (meter, channel, p) in rows {
                    batch.push(meter, *channel, *p).expect("valid point");
                }
                store.ingest(&batch).expect("ingest");
            }
            Op::Erase { meter, from, to } => {
                store.erase(meter, Some((*from, *to))).expect("erase");
            }
        }
        if rng.chance(10) {
            store.flush().expect("flush");
        }
        if rng.chance(5) {
            store.compact().expect("compact");
        }
    }
    let snapshot = store.snapshot();
    let sources: [&dyn SeriesSource; 1] = [snapshot.as_ref()];
    check_sources(seed, g, &model, &sources);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn a_real_store_answers_as_the_reference_after_any_history(
        seed in any::<u64>(),
        zone in 0usize..3,
        change in 0usize..2,
    ) {
        replay(seed, &generate(seed, zone, change));
    }
}

#[test]
fn a_real_store_answers_as_the_reference_on_a_realistic_fleet_over_the_fall_back() {
    replay(
        3,
        &generate_workload(3, jiff::civil::date(2024, 10, 22), 10),
    );
}

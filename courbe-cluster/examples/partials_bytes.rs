//! What the internal aggregates route carries per reader: the bytes of each reader's
//! `Partials` in JSON and in the binary encoding (`courbe_cluster::wire`), summed over every
//! group (as before coverage) and over the groups the question's decisions read.
//!
//! `cargo run --manifest-path courbe-cluster/Cargo.toml --example partials_bytes -- 2000 28`:
//! the loopback example's data (meters x days from 2024-03-01, seed 3, one commune, 20 IRIS),
//! one store holding every meter and three holding the shards of a 3-shard cluster.

use courbe::engine::{Batch, Options, Store};
use courbe::governance::aggregates::{Params, Partials, Suppression};
use courbe::governance::groups::Membership;
use courbe::governance::{Governance, GovernanceConfig};
use courbe::Channel;
use courbe_cluster::{shard_of, wire};
use courbe_workload::{Fleet, FleetConfig};

fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("meters and days"))
        .collect();
    let meters = args.first().copied().unwrap_or(2_000);
    let days = args.get(1).copied().unwrap_or(28);
    let dir = tempfile::tempdir().expect("a directory");
    let fleet = Fleet::new(FleetConfig {
        meters,
        days,
        seed: 3,
        start: jiff::civil::date(2024, 3, 1),
        ..FleetConfig::default()
    });
    let series: Vec<_> = (0..meters).map(|i| fleet.meter(i)).collect();
    let open = |name: &str| Store::open(dir.path().join(name), Options::default()).expect("store");
    let whole = open("whole");
    let parts: Vec<Store> = (0..3).map(|s| open(&format!("shard{s}"))).collect();
    for d in 0..days as usize {
        let mut all = Batch::new();
        let mut split: Vec<Batch> = (0..3).map(|_| Batch::new()).collect();
        for m in &series {
            for r in m.consumption.iter().skip(d * 48).take(48) {
                let p = courbe::point_of(r);
                all.push(&m.meter_id, Channel::CONSUMPTION, p)
                    .expect("push");
                split[shard_of(&m.meter_id, 3) as usize]
                    .push(&m.meter_id, Channel::CONSUMPTION, p)
                    .expect("push");
            }
        }
        whole.ingest(&all).expect("ingest");
        for (store, batch) in parts.iter().zip(&split) {
            store.ingest(batch).expect("ingest");
        }
    }
    let gov = Governance::open(&dir.path().join("gov"), GovernanceConfig::default()).expect("gov");
    gov.load_groups(
        series
            .iter()
            .enumerate()
            .map(|(i, m)| Membership {
                meter: m.meter_id.clone(),
                commune: "75056".into(),
                iris: format!("7505601{:02}", i % 20),
                building: None,
            })
            .collect(),
    )
    .expect("groups");
    let groups = gov.groups();
    let rule = gov.config().aggregates;
    // A building minimum above the others and a dominance rule: every group and every field
    // is summed, as before coverage.
    let every = Suppression {
        building_min_meters: rule.min_meters + 1,
        max_share: Some(1.0),
        ..rule
    };
    let from = series[0].consumption[0].ts_utc;
    let span = format!(
        "from={}&to={}",
        courbe::question::format_ts(from),
        courbe::question::format_ts(from + i64::from(days) * 86_400)
    );
    println!("{meters} meters x {days} days; bytes of one reader's partials");
    println!(
        "{:<28} {:>8} {:>7} {:>11} {:>11} {:>9} {:>9}",
        "question", "reader", "groups", "JSON every", "JSON held", "bin every", "bin held"
    );
    for (what, q) in [
        ("IRIS energy by day", "level=iris&kind=energy&period=day"),
        (
            "commune 75056 energy by day",
            "level=commune&code=75056&kind=energy&period=day",
        ),
        ("all, energy by day", "level=all&kind=energy&period=day"),
    ] {
        let params = Params::from_query(&format!("{q}&tz=Europe/Paris&source=live&{span}"))
            .expect("a question");
        let stores = std::iter::once(("1 of 1", &whole))
            .chain(["1 of 3", "2 of 3", "3 of 3"].into_iter().zip(&parts));
        for (reader, store) in stores {
            let load = |rule: &Suppression| {
                Partials::load(&*store.snapshot(), &groups, &params, rule).expect("partials")
            };
            let (all, held) = (load(&every), load(&rule));
            let json = |p: &Partials| serde_json::to_vec(p).expect("json").len();
            let count = |p: &Partials| p.levels.values().map(|l| l.len()).sum::<usize>();
            println!(
                "{what:<28} {reader:>8} {:>3}/{:<3} {:>11} {:>11} {:>9} {:>9}",
                count(&held),
                count(&all),
                json(&all),
                json(&held),
                wire::encode(&all).len(),
                wire::encode(&held).len(),
            );
            assert_eq!(
                wire::decode(&wire::encode(&held), 4 * groups.len() + 1).as_ref(),
                Ok(&held)
            );
        }
    }
}

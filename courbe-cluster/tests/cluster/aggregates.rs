//! The governance aggregates over a cluster: the suppression rules are decided once, on the
//! cells of the merged fleet (every shard's meters), never per shard.

use courbe::engine::{Options, Store};
use courbe::governance::aggregates::{self, Aggregates, Params};
use courbe::governance::auth::{Principal, Role};
use courbe::governance::groups::Membership;
use courbe::governance::{Governance, GovernanceConfig};
use courbe::source::SeriesSource;
use courbe_cluster::layout::ShardLayout;
use courbe_cluster::{shard_of, ShardedSource};

use super::{batch_of, cold_reader, day_batches, support::Servers, take_over};

const RANGE: &str = "from=2024-01-20T23:00:00Z&to=2024-01-24T23:00:00Z&tz=Europe/Paris";

fn ask(source: &dyn SeriesSource, gov: &Governance, query: &str) -> Aggregates {
    let params = Params::from_query(&format!("{query}&{RANGE}&source=live"))
        .unwrap_or_else(|e| panic!("{query}: {e:?}"));
    let operator = Principal {
        role: Role::Operator,
        subject: None,
    };
    aggregates::answer(source, gov, &operator, &params).unwrap_or_else(|e| panic!("{query}: {e:?}"))
}

/// The cells of group `code` in an answer, as (start, suppressed).
fn cells(answer: &Aggregates, code: &str) -> Vec<(i64, bool)> {
    let group = answer
        .groups
        .iter()
        .find(|g| g.group == code)
        .unwrap_or_else(|| panic!("group {code} in {answer:?}"));
    group
        .cells
        .iter()
        .map(|c| (c.start_utc, c.figures.is_none()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn fleet_aggregates_over_three_shards_suppress_the_merged_cells_as_one_node_does() {
    let servers = Servers::start().await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let shards = coord.shard_count(3).await.expect("the shard map");
    let (meters, days) = day_batches(60, 5, 41);

    // IRIS 101: 12 meters, fewer than the minimum (10) on every shard, enough in all.
    // IRIS 102 (6) and 103 (5): under the minimum anywhere; together 11, so the commune's
    // hidden part is large enough and 101 and 104 stay published. IRIS 104: the rest.
    let (spread, rest) = meters.split_at(12);
    let iris_of = |i: usize| match i {
        0..=11 => "750560101",
        12..=17 => "750560102",
        18..=22 => "750560103",
        _ => "750560104",
    };
    let per_shard: Vec<usize> = (0..shards)
        .map(|s| spread.iter().filter(|m| shard_of(m, shards) == s).count())
        .collect();
    assert!(
        per_shard.iter().all(|&n| n < 10),
        "IRIS 101 is under the minimum on every shard: {per_shard:?}"
    );
    assert!(rest.len() >= 40);
    let memberships: Vec<Membership> = meters
        .iter()
        .enumerate()
        .map(|(i, m)| Membership {
            meter: m.clone(),
            commune: "75056".into(),
            iris: iris_of(i).into(),
            building: None,
        })
        .collect();

    let single_dir = servers.path("single");
    let single = Store::open(&single_dir, Options::default()).expect("one node");
    let gov = Governance::open(&single_dir, GovernanceConfig::default()).expect("governance");
    gov.load_groups(memberships).expect("the groups load");
    let mut writers = Vec::new();
    for s in 0..shards {
        let layout = ShardLayout::new("courbe", "/courbe", s);
        let node = format!("node{s}");
        let (w, _) = take_over(&servers, &coord, &objects, &layout, &node, &node)
            .await
            .expect("a writer per shard");
        writers.push(w);
    }
    for rows in &days {
        single.ingest(&batch_of(rows)).expect("single node");
        for (s, w) in writers.iter().enumerate() {
            let mine: Vec<_> = rows
                .iter()
                .filter(|(m, _)| shard_of(m, shards) as usize == s)
                .cloned()
                .collect();
            w.ingest(&batch_of(&mine)).await.expect("acknowledged");
        }
    }
    for w in &writers {
        w.checkpoint().await.expect("a checkpoint");
    }
    let mut readers = Vec::new();
    for s in 0..shards {
        let layout = ShardLayout::new("courbe", "/courbe", s);
        let dir = servers.path(&format!("reader{s}"));
        let r = cold_reader(&coord, &objects, &layout, &dir, false).await;
        readers.push(r);
    }
    let snaps: Vec<_> = readers.iter().map(|r| r.store.snapshot()).collect();
    let sources: Vec<&dyn SeriesSource> = snaps.iter().map(|s| &**s as &dyn SeriesSource).collect();
    let cluster = ShardedSource::new(sources.clone());
    let one = single.snapshot();

    let questions = [
        "level=iris&kind=energy&period=day",
        "level=iris&kind=curve",
        "level=commune&kind=energy&period=week",
        "level=all&kind=energy&period=day",
    ];
    for q in questions {
        assert_eq!(
            ask(&cluster, &gov, q),
            ask(&*one, &gov, q),
            "{q}: the 3-shard answer is the single node's, cell for cell"
        );
    }
    let by_iris = ask(&*one, &gov, questions[0]);
    let spread_cells = cells(&by_iris, "750560101");
    assert!(
        spread_cells.iter().any(|(_, suppressed)| !suppressed),
        "IRIS 101 is published on one node: {spread_cells:?}"
    );
    for code in ["750560102", "750560103"] {
        assert!(cells(&by_iris, code)
            .iter()
            .all(|(_, suppressed)| *suppressed));
        assert!(cells(&ask(&cluster, &gov, questions[0]), code)
            .iter()
            .all(|(_, suppressed)| *suppressed));
    }
    assert_eq!(
        cells(&ask(&cluster, &gov, questions[0]), "750560101"),
        spread_cells
    );
    // What a per-shard rule would have done: every shard alone suppresses IRIS 101 everywhere.
    for (s, source) in sources.iter().enumerate() {
        let alone = ask(*source, &gov, questions[0]);
        assert!(
            cells(&alone, "750560101")
                .iter()
                .all(|(_, suppressed)| *suppressed),
            "shard {s} alone holds too few of IRIS 101"
        );
    }
    // Ad-hoc groups (operators) and a meter's comparison: the same answers too.
    let ad_hoc: Vec<&str> = spread.iter().map(String::as_str).collect();
    let q = format!("kind=energy&period=day&meters={}", ad_hoc.join(","));
    assert_eq!(ask(&cluster, &gov, &q), ask(&*one, &gov, &q));
}

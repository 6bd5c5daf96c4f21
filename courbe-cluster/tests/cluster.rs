//! The cluster on real servers started on loopback (etcd and an S3 server, `support`). They need
//! etcd installed, so they run with `--ignored`; `.ci/run` runs them. Asked to run without etcd,
//! they fail.

mod support;

#[path = "cluster/aggregates.rs"]
mod aggregates;
#[path = "cluster/erasure.rs"]
mod erasure;
#[path = "cluster/fanout.rs"]
mod fanout;
#[path = "cluster/ranged.rs"]
mod ranged;
#[path = "cluster/registry.rs"]
mod registry;
#[path = "cluster/versions.rs"]
mod versions;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use courbe::engine::{Batch, Options, Store};
use courbe::question::Answer;
use courbe::{Channel, Point};
use courbe_cluster::layout::ShardLayout;
use courbe_cluster::writer::TakeOver;
use courbe_cluster::{restore, Coordinator, Error, Objects, Restored, ShardWriter, WriterOptions};
use courbe_server::http::body::AnswerBody;
use courbe_workload::{Fleet, FleetConfig};
use support::Servers;

/// The generated readings, one batch per day: batch `d` holds day `d` of every meter.
fn day_batches(meters: u32, days: u32, seed: u64) -> (Vec<String>, Vec<Vec<(String, Point)>>) {
    let fleet = Fleet::new(FleetConfig {
        meters,
        days,
        seed,
        start: jiff::civil::date(2024, 1, 20),
        ..FleetConfig::default()
    });
    let mut ids = Vec::new();
    let mut batches: Vec<Vec<(String, Point)>> = vec![Vec::new(); days as usize];
    let start = fleet.meter(0).consumption.first().map_or(0, |r| r.ts_utc);
    for i in 0..meters {
        let m = fleet.meter(i);
        for r in &m.consumption {
            let day = ((r.ts_utc - start).max(0) / 86_400) as usize;
            batches[day.min(days as usize - 1)].push((m.meter_id.clone(), courbe::point_of(r)));
        }
        ids.push(m.meter_id);
    }
    (ids, batches)
}

fn batch_of(rows: &[(String, Point)]) -> Batch {
    let mut b = Batch::new();
    for (m, p) in rows {
        b.push(m, Channel::CONSUMPTION, *p)
            .expect("a generated point is valid");
    }
    b
}

/// Every meter's whole consumption curve, as the store answers it.
/// A cold reader of `layout`'s shard restored into `dir` with default options; `with_log`: the
/// log objects after the last checkpoint replayed too.
async fn cold_reader(
    coord: &Coordinator,
    objects: &Objects,
    layout: &ShardLayout,
    dir: &std::path::Path,
    with_log: bool,
) -> Restored {
    restore(coord, objects, layout, dir, Options::default(), with_log)
        .await
        .expect("a cold reader opens")
}

/// `rows` with every value raised by `by` (late corrections of the same instants).
fn raised(rows: &[(String, Point)], by: i32) -> Vec<(String, Point)> {
    rows.iter()
        .map(|(m, p)| {
            (
                m.clone(),
                Point {
                    value: p.value + by,
                    ..*p
                },
            )
        })
        .collect()
}

fn curves(store: &Store, meters: &[String]) -> BTreeMap<String, Vec<Point>> {
    let snap = store.snapshot();
    meters
        .iter()
        .map(|m| {
            let pts = courbe::query::curve(&*snap, m, Channel::CONSUMPTION, 0, 4_000_000_000)
                .unwrap_or_default();
            (m.clone(), pts)
        })
        .collect()
}

fn options(node: &str) -> WriterOptions {
    let mut o = WriterOptions::new(node);
    o.lease_ttl_s = 2;
    o.acquire_wait = Duration::from_secs(20);
    o
}

/// `ShardWriter::take_over` by node `node` (options named after it), its store in `dir`.
async fn take_over(
    servers: &Servers,
    coord: &Coordinator,
    objects: &Objects,
    layout: &ShardLayout,
    dir: &str,
    node: &str,
) -> Result<(ShardWriter, TakeOver), Error> {
    ShardWriter::take_over(
        coord,
        objects,
        layout.clone(),
        &servers.path(dir),
        options(node),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn a_cold_reader_rebuilt_from_object_storage_answers_every_meter_as_the_writer() {
    let servers = Servers::start().await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let layout = ShardLayout::new("courbe", "/courbe", 0);
    let (writer, took) = take_over(&servers, &coord, &objects, &layout, "writer", "a")
        .await
        .expect("the first writer takes the shard");
    assert_eq!((took.from, took.logs_replayed), (None, 0));

    let (meters, days) = day_batches(30, 20, 7);
    for (d, rows) in days.iter().enumerate() {
        writer.ingest(&batch_of(rows)).await.expect("acknowledged");
        if d % 6 == 5 {
            writer.checkpoint().await.expect("a checkpoint");
        }
    }
    // Late data over a checkpointed day: the newest reading wins, in the reader too.
    let late: Vec<(String, Point)> = raised(&days[2][..100], 7);
    writer.ingest(&batch_of(&late)).await.expect("acknowledged");
    writer.checkpoint().await.expect("a checkpoint");
    let expected = curves(writer.store(), &meters);
    assert!(expected.values().all(|c| !c.is_empty()));

    let restored = cold_reader(&coord, &objects, &layout, &servers.path("reader"), false).await;
    assert_eq!(curves(&restored.store, &meters), expected);
    let segments = restored.store.committed_manifest().segments;
    let bytes: u64 = segments.iter().map(|s| s.len).sum();
    // One pointer read, one manifest GET, one GET per segment; nothing listed.
    assert_eq!(restored.traffic.gets, 1 + segments.len() as u64);
    assert_eq!(restored.traffic.lists, 0);
    assert!(restored.traffic.bytes_got > bytes && restored.traffic.bytes_got < bytes + 4096);
    eprintln!(
        "cold reader: {} segments, {} segment bytes, traffic {:?}",
        segments.len(),
        bytes,
        restored.traffic
    );
    drop(restored);

    // Acknowledged after the last checkpoint: a reader that replays the log sees it too.
    writer
        .ingest(&batch_of(&late[..10]))
        .await
        .expect("acknowledged");
    let tail: Vec<(String, Point)> = raised(&late[..10], 1);
    writer.ingest(&batch_of(&tail)).await.expect("acknowledged");
    let expected = curves(writer.store(), &meters);
    let restored = cold_reader(&coord, &objects, &layout, &servers.path("reader"), true).await;
    assert_eq!(restored.replayed, 2);
    assert_eq!(restored.fetched, 0, "the cached segments are reused");
    assert_eq!(curves(&restored.store, &meters), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn a_writer_killed_mid_ingest_is_replaced_with_nothing_acknowledged_lost() {
    let servers = Servers::start().await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let layout = ShardLayout::new("courbe", "/courbe", 3);
    let (a, _) = take_over(&servers, &coord, &objects, &layout, "a", "a")
        .await
        .expect("writer a takes the shard");
    let a = Arc::new(a);
    let (meters, days) = day_batches(20, 30, 11);
    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();

    // Writer a ingests day after day, checkpointing now and then, until it is refused.
    let feeder = {
        let (a, acked, days) = (a.clone(), acked.clone(), days.clone());
        tokio::spawn(async move {
            for (d, rows) in days.iter().enumerate() {
                match a.ingest(&batch_of(rows)).await {
                    Ok(()) => acked.lock().unwrap().push(d),
                    Err(Error::LeaseLost { .. }) => return d,
                    Err(e) => panic!("day {d}: {e}"),
                }
                if d == 8 {
                    a.checkpoint().await.expect("a checkpoint");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            days.len()
        })
    };
    // Killed mid-ingest: it stops renewing its lease as a dead process would.
    while acked.lock().unwrap().len() < 14 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.abandon();
    let refused_at = feeder.await.expect("the feeder ends");
    assert!(
        refused_at < days.len(),
        "writer a was refused from day {refused_at}"
    );
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 14 && acked.iter().enumerate().all(|(i, &d)| i == d));

    let (b, took) = take_over(&servers, &coord, &objects, &layout, "b", "b")
        .await
        .expect("writer b takes the shard once a's lease has ended");
    assert!(took.epoch > a.epoch());
    assert!(took.from.is_some() && took.logs_replayed >= acked.len() - 9);
    // Every acknowledged day is in b's store.
    let acked_days: Vec<Vec<(String, Point)>> = acked.iter().map(|&d| days[d].clone()).collect();
    assert_holds(b.store(), &meters, &acked_days);
    // a is fenced: nothing more acknowledged, no commit.
    assert!(matches!(
        a.ingest(&batch_of(&days[29])).await,
        Err(Error::LeaseLost { .. })
    ));
    assert!(matches!(a.checkpoint().await, Err(Error::LeaseLost { .. })));
    // b goes on, and a cold reader sees b's version.
    b.ingest(&batch_of(&days[29]))
        .await
        .expect("b acknowledges");
    b.checkpoint().await.expect("b commits");
    let restored = cold_reader(&coord, &objects, &layout, &servers.path("r"), false).await;
    assert_eq!(curves(&restored.store, &meters), curves(b.store(), &meters));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn while_etcd_is_stopped_writes_are_refused_and_a_reader_keeps_answering() {
    let mut servers = Servers::start().await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let layout = ShardLayout::new("courbe", "/courbe", 1);
    let (w, _) = take_over(&servers, &coord, &objects, &layout, "w", "w")
        .await
        .expect("the writer takes the shard");
    let (meters, days) = day_batches(10, 6, 5);
    for rows in &days[..4] {
        w.ingest(&batch_of(rows)).await.expect("acknowledged");
    }
    w.checkpoint().await.expect("a checkpoint");
    let reader = cold_reader(&coord, &objects, &layout, &servers.path("r"), false).await;
    let before = curves(&reader.store, &meters);

    servers.etcd.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!w.holds_lease());
    assert!(matches!(
        w.ingest(&batch_of(&days[4])).await,
        Err(Error::LeaseLost { .. })
    ));
    assert_eq!(curves(&reader.store, &meters), before, "reads are served");

    servers.etcd.restart().await;
    let coord = servers.coordinator().await;
    let (w2, _) = take_over(&servers, &coord, &objects, &layout, "w2", "w2")
        .await
        .expect("a new writer takes the shard after the outage");
    // Days 0-3 were acknowledged; day 4 was refused (it may still appear: at least once for
    // refused batches, docs/SCALE-OUT.md).
    assert_holds(w2.store(), &meters, &days[..4]);
    w2.ingest(&batch_of(&days[5])).await.expect("writes resume");
}

/// Every point of `days` is in `store`'s answers.
fn assert_holds(store: &Store, meters: &[String], days: &[Vec<(String, Point)>]) {
    let got = curves(store, meters);
    for (m, p) in days.iter().flatten() {
        assert!(
            got[m].contains(p),
            "meter {m}: acknowledged point {p:?} is missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn fleet_questions_over_three_shard_readers_equal_the_single_node_answers() {
    use courbe::query::{self, Calendar, Period};
    use courbe::source::SeriesSource;
    use courbe_cluster::{shard_of, ShardedSource};

    let servers = Servers::start().await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let shards = coord.shard_count(3).await.expect("the shard map");
    assert_eq!(shards, 3);
    // Enough meters that every shard's segments keep their fleet rollups (>= 128 series).
    let (meters, days) = day_batches(450, 10, 23);
    let single = Store::open(servers.path("single"), Options::default()).expect("one node");
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
            let mine: Vec<(String, Point)> = rows
                .iter()
                .filter(|(m, _)| shard_of(m, shards) as usize == s)
                .cloned()
                .collect();
            w.ingest(&batch_of(&mine)).await.expect("acknowledged");
        }
    }
    single.flush().expect("flush");
    for w in &writers {
        w.checkpoint().await.expect("a checkpoint");
    }
    let mut readers = Vec::new();
    for s in 0..shards {
        let layout = ShardLayout::new("courbe", "/courbe", s);
        let r = cold_reader(
            &coord,
            &objects,
            &layout,
            &servers.path(&format!("reader{s}")),
            false,
        )
        .await;
        assert!(r.store.stats().meters > 0, "shard {s} holds meters");
        readers.push(r);
    }
    let snaps: Vec<_> = readers.iter().map(|r| r.store.snapshot()).collect();
    let sources: Vec<&dyn SeriesSource> = snaps
        .iter()
        .map(|s| &**s as &dyn courbe::source::SeriesSource)
        .collect();
    let cluster = ShardedSource::new(sources);
    let one = single.snapshot();

    let (from, to) = (1_706_313_600, 1_707_177_600); // 2024-01-27 .. 2024-02-06 UTC
    let ch = Channel::CONSUMPTION;
    assert_eq!(cluster.meters(ch), one.meters(ch));
    assert!(
        cluster.fleet_sums(ch, from, to).expect("sums").is_some(),
        "rollups read on every shard"
    );
    assert_eq!(
        query::fleet_curve(&cluster, ch, from, to, None).expect("cluster"),
        query::fleet_curve(&*one, ch, from, to, None).expect("one node")
    );
    let some: Vec<String> = meters.iter().step_by(7).cloned().collect();
    assert_eq!(
        query::fleet_curve(&cluster, ch, from, to, Some(&some)).expect("cluster"),
        query::fleet_curve(&*one, ch, from, to, Some(&some)).expect("one node")
    );
    let calendar = Calendar {
        from_utc: 1_704_063_600, // 2024-01-01 Europe/Paris
        to_utc: 1_709_247_600,   // 2024-03-01 Europe/Paris
        period: Period::Month,
        tz: jiff::tz::TimeZone::get("Europe/Paris").expect("the zone"),
    };
    assert_eq!(
        query::fleet_energy(&cluster, ch, &calendar, None).expect("cluster"),
        query::fleet_energy(&*one, ch, &calendar, None).expect("one node")
    );
    for m in meters.iter().step_by(37) {
        assert_eq!(
            query::curve(&cluster, m, ch, from, to).expect("cluster"),
            query::curve(&*one, m, ch, from, to).expect("one node")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn the_node_binary_writes_a_shard_restores_it_elsewhere_and_serves_it_through_a_reader_and_a_router(
) {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let servers = Servers::start().await;
    let (meters, days) = day_batches(6, 3, 2);
    let mut csv = String::from("meter_id,ts,value_w,quality,step_min\n");
    let mut points = 0;
    for (m, p) in days.iter().flatten() {
        let ts = jiff::Timestamp::from_second(p.ts_utc).expect("a time");
        let quality = match p.quality {
            courbe::Quality::Measured => "measured",
            courbe::Quality::Estimated => "estimated",
            courbe::Quality::Corrected => "corrected",
        };
        csv.push_str(&format!("{m},{ts},{},{quality},{}\n", p.value, p.step_min));
        points += 1;
    }
    let node = |args: &[&str], dir: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_courbe-node"));
        cmd.args(args)
            .args([
                "--etcd",
                &servers.etcd.endpoint(),
                "--s3",
                &servers.s3_endpoint,
            ])
            .args([
                "--access-key",
                support::ACCESS_KEY,
                "--secret-key",
                support::SECRET_KEY,
            ])
            .args(["--shards", "1", "--shard", "0", "--dir"])
            .arg(servers.path(dir))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };
    let mut write = node(
        &["write", "--batch-rows", "100", "--checkpoint-every", "3"],
        "w",
    )
    .spawn()
    .expect("courbe-node runs");
    write
        .stdin
        .take()
        .expect("its input")
        .write_all(csv.as_bytes())
        .expect("the CSV is sent");
    let out = write.wait_with_output().expect("it ends");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("{points} points acknowledged")),
        "{said}"
    );

    let out = node(&["restore"], "r").output().expect("courbe-node runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(servers.path("r"), Options::default()).expect("the restored store");
    let want: Vec<Vec<(String, Point)>> = days.clone();
    assert_holds(&store, &meters, &want);
    assert_eq!(store.stats().points, points as u64);

    // A reader node and a router, each its own process, answer the fleet curve as the store.
    let secret_file = servers.path("secret");
    std::fs::write(&secret_file, "a-secret-for-the-node-binary\n").expect("the secret file");
    let common = |cmd: &mut Command| {
        cmd.args([
            "--etcd",
            &servers.etcd.endpoint(),
            "--s3",
            &servers.s3_endpoint,
        ])
        .args([
            "--access-key",
            support::ACCESS_KEY,
            "--secret-key",
            support::SECRET_KEY,
            "--shards",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    };
    let (reader_port, router_port) = (support::free_port(), support::free_port());
    let mut read = Command::new(env!("CARGO_BIN_EXE_courbe-node"));
    read.arg("read");
    common(&mut read);
    read.args(["--read-shards", "0", "--dir"])
        .arg(servers.path("node-r"))
        .arg("--governance")
        .arg(servers.path("gov-r"))
        .args(["--listen", &format!("127.0.0.1:{reader_port}")])
        .env("COURBE_INTERNAL_SECRET", "a-secret-for-the-node-binary");
    let reader = KillOnDrop(read.spawn().expect("courbe-node read runs"));
    let client = reqwest::Client::new();
    let up = |url: String, token: Option<&'static str>| {
        let client = client.clone();
        async move {
            for _ in 0..100 {
                let mut r = client.get(&url);
                if let Some(t) = token {
                    r = r.bearer_auth(t);
                }
                if r.send().await.is_ok_and(|r| r.status().is_success()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{url} never answered");
        }
    };
    up(
        format!("http://127.0.0.1:{reader_port}/internal/v1/shards"),
        Some("a-secret-for-the-node-binary"),
    )
    .await;
    let mut route = Command::new(env!("CARGO_BIN_EXE_courbe-node"));
    route.arg("route");
    common(&mut route);
    // No --readers: the reader registered itself in etcd.
    route
        .args(["--refresh-ms", "100"])
        .arg("--governance")
        .arg(servers.path("gov-router"))
        .args(["--listen", &format!("127.0.0.1:{router_port}")])
        .arg("--secret-file")
        .arg(&secret_file);
    let router = KillOnDrop(route.spawn().expect("courbe-node route runs"));
    up(format!("http://127.0.0.1:{router_port}/healthz"), None).await;
    let (from, to) = (1_705_705_200, 1_705_964_400);
    let expected =
        courbe::query::fleet_curve(&*store.snapshot(), Channel::CONSUMPTION, from, to, None)
            .expect("the store's fleet curve");
    let expected = serde_json::to_value(AnswerBody::from(Answer::FleetCurve {
        channel: Channel::CONSUMPTION,
        points: expected,
    }))
    .expect("JSON");
    let got: serde_json::Value = client
        .get(format!(
            "http://127.0.0.1:{router_port}/v1/fleet/curve?from=2024-01-19T23:00:00Z&to=2024-01-22T23:00:00Z"
        ))
        .send()
        .await
        .expect("the router answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(got, expected);
    assert!(!expected["points"].as_array().expect("points").is_empty());

    // The reader's registration names it; it is deleted when the reader exits on SIGTERM.
    let coord = servers.coordinator().await;
    let registered = coord.list("readers/").await.expect("etcd answers");
    assert_eq!(registered.len(), 1, "{registered:?}");
    let value: serde_json::Value = serde_json::from_slice(&registered[0].1).expect("JSON");
    assert_eq!(
        value,
        serde_json::json!({
            "url": format!("http://127.0.0.1:{reader_port}"),
            "shards": [0],
            "shard_count": 1,
        })
    );
    let mut reader = reader;
    // SAFETY: a signal to the child this test started, by its id.
    let sent = unsafe { libc::kill(reader.0.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let exited = reader.0.wait().expect("the reader exits");
    assert!(exited.success(), "{exited:?}");
    assert!(coord
        .list("readers/")
        .await
        .expect("etcd answers")
        .is_empty());
    // Without a reader, a fleet question is 503 naming the shard.
    let mut message = String::new();
    for _ in 0..100 {
        let r = client
            .get(format!(
                "http://127.0.0.1:{router_port}/v1/fleet/curve?from=2024-01-19T23:00:00Z&to=2024-01-22T23:00:00Z"
            ))
            .send()
            .await
            .expect("the router answers");
        // The first answers may still try the reader just gone, until the router lists again.
        message = r.text().await.expect("a body");
        if message.contains("has no reader") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(message.contains("shard 0 has no reader"), "{message}");
    drop((reader, router));
}

/// A child process killed when dropped (a failed assertion included).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

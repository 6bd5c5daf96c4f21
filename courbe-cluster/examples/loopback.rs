//! Figures of docs/SCALE-OUT.md, on the same loopback servers as the tests (etcd from
//! `$COURBE_ETCD` or `/usr/bin/etcd`, `s3s-fs` in process):
//!
//! ```text
//! cargo run --release --manifest-path courbe-cluster/Cargo.toml --example loopback [METERS DAYS]
//! ```
//!
//! 1. PUT and GET latency per object size (median and p90 of sequential requests);
//! 2. one shard writer's ingest rate, acknowledging after the log object's PUT versus local
//!    only, for batches of one day of every meter and of a tenth of that;
//! 3. the cost of opening a cold reader (requests, bytes, seconds): whole segment objects, then
//!    a ranged reader (index parts first, blocks on demand) and its first questions;
//! 4. the cost of erasing one meter (requests, seconds);
//! 5. three shard writers (three nodes, in this process) against one on the same data, then
//!    questions to three shard readers (`ShardedSource`) against one reader, the governance
//!    aggregates included;
//! 6. the same questions over HTTP: a router fanning out to three reader nodes (one shard
//!    each, ranged readers) against a router over one reader node holding the one-shard copy,
//!    with the process's CPU seconds, the readers' object-store traffic and the bytes of the
//!    partial tables on the internal route.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use courbe::engine::{Batch, Options};
use courbe::governance::aggregates::{self, Params};
use courbe::governance::auth::{Principal, Role};
use courbe::governance::groups::Membership;
use courbe::governance::{Governance, GovernanceConfig};
use courbe::source::SeriesSource;
use courbe::Channel;
use courbe_cluster::layout::ShardLayout;
use courbe_cluster::{
    restore, shard_of, BlockCache, CacheOptions, RangedReader, ReaderNode, Router, Secret,
    ShardWriter, ShardedSource, WriterOptions,
};
use courbe_workload::{Fleet, FleetConfig};

/// CPU seconds of this process so far (user and system, every thread).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes the struct it is given, which lives for the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn quantiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(v[v.len() / 2]), ms(v[v.len() * 9 / 10]))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let meters = args.first().copied().unwrap_or(1_000);
    let days = args.get(1).copied().unwrap_or(14);
    let servers = support::Servers::start().await;
    let objects = servers.objects();
    let coord = servers.coordinator().await;

    println!("== PUT / GET latency, loopback s3s-fs (sequential, ms)");
    println!(
        "{:>10} {:>5} {:>9} {:>9} {:>9} {:>9}",
        "bytes", "n", "put p50", "put p90", "get p50", "get p90"
    );
    for &size in &[
        1usize << 10,
        16 << 10,
        64 << 10,
        256 << 10,
        1 << 20,
        4 << 20,
    ] {
        let n = if size >= 1 << 20 { 20 } else { 100 };
        let data = Bytes::from(vec![0x5au8; size]);
        let (mut puts, mut gets) = (Vec::new(), Vec::new());
        for i in 0..n {
            let key = format!("latency/{size}/{i}");
            let t = Instant::now();
            objects.put(&key, data.clone()).await.expect("PUT");
            puts.push(t.elapsed());
            let t = Instant::now();
            objects.get(&key).await.expect("GET");
            gets.push(t.elapsed());
        }
        let (p50, p90) = quantiles(puts);
        let (g50, g90) = quantiles(gets);
        println!("{size:>10} {n:>5} {p50:>9.3} {p90:>9.3} {g50:>9.3} {g90:>9.3}");
    }

    println!("== one shard writer: {meters} meters x {days} days");
    let fleet = Fleet::new(FleetConfig {
        meters,
        days,
        seed: 3,
        start: jiff::civil::date(2024, 3, 1),
        ..FleetConfig::default()
    });
    let series: Vec<_> = (0..meters).map(|i| fleet.meter(i)).collect();
    let points: usize = series.iter().map(|m| m.consumption.len()).sum();
    // Three rounds, the four ways alternated (the machine is shared: the spread is the noise).
    let ways = [(true, 1usize), (true, 10), (false, 1), (false, 10)];
    for (k, &(log_before_ack, pieces)) in ways.iter().cycle().take(12).enumerate() {
        let shard = 10 + k as u32;
        let layout = ShardLayout::new("courbe", "/courbe", shard);
        let mut options = WriterOptions::new("bench");
        options.log_before_ack = log_before_ack;
        let (writer, _) = ShardWriter::take_over(
            &coord,
            &objects,
            layout,
            &servers.path(&format!("w{shard}")),
            options,
        )
        .await
        .expect("take over");
        let before = objects.traffic();
        let started = Instant::now();
        let mut batches = 0;
        for d in 0..days as usize {
            // A day of every meter, cut into `pieces` batches of consecutive meters.
            let per = (series.len() / pieces).max(1);
            for group in series.chunks(per) {
                let mut b = Batch::new();
                for m in group {
                    for r in m.consumption.iter().skip(d * 48).take(48) {
                        b.push(&m.meter_id, Channel::CONSUMPTION, courbe::point_of(r))
                            .expect("valid");
                    }
                }
                writer.ingest(&b).await.expect("acknowledged");
                batches += 1;
            }
        }
        let ingest_s = started.elapsed().as_secs_f64();
        writer.checkpoint().await.expect("checkpoint");
        let total_s = started.elapsed().as_secs_f64();
        let t = objects.traffic().since(&before);
        println!(
            "ack after {:<13} batches {batches:>5} ({:>6} pts each): ingest {:.2} s = {:.0} pts/s; \
             + checkpoint {:.2} s; {} PUTs, {} bytes put",
            if log_before_ack { "object store" } else { "local only" },
            points / batches,
            ingest_s,
            points as f64 / ingest_s,
            total_s - ingest_s,
            t.puts,
            t.bytes_put
        );
        writer.close().await.expect("close");
    }

    println!("== cold reader of shard 10");
    let layout = ShardLayout::new("courbe", "/courbe", 10);
    for run in ["cold", "cached"] {
        let started = Instant::now();
        let r = restore(
            &coord,
            &objects,
            &layout,
            &servers.path("reader"),
            Options::default(),
            false,
        )
        .await
        .expect("restore");
        let s = started.elapsed().as_secs_f64();
        let stats = r.store.stats();
        println!(
            "{run}: {:.3} s, {} GETs, {} bytes got, {} segments ({} fetched), {} points, {} B on disk",
            s, r.traffic.gets, r.traffic.bytes_got, stats.segments, r.fetched, stats.points, stats.bytes_on_disk
        );
    }

    println!("== ranged reader of shard 10 (index parts first, blocks on demand, bound 1/10 of the segments)");
    let segment_bytes: u64 = {
        let r = restore(
            &coord,
            &objects,
            &layout,
            &servers.path("reader"),
            Options::default(),
            false,
        )
        .await
        .expect("restore");
        r.store
            .committed_manifest()
            .segments
            .iter()
            .map(|s| s.len)
            .sum()
    };
    for run in 0..3 {
        let started = Instant::now();
        let r = RangedReader::open(
            &coord,
            &objects,
            &layout,
            &servers.path("ranged"),
            Options::default(),
            CacheOptions::new(segment_bytes / 10),
        )
        .await
        .expect("ranged open");
        let open_s = started.elapsed().as_secs_f64();
        println!(
            "open {run}: {open_s:.3} s, {} GETs, {} bytes got (of {segment_bytes} bytes of segments)",
            r.opened.gets, r.opened.bytes_got
        );
        let (from, to) = (0, 4_000_000_000);
        for (what, m) in [
            ("first meter", &series[0].meter_id),
            ("same meter again", &series[0].meter_id),
            ("another meter", &series[1].meter_id),
        ] {
            let before = objects.traffic();
            let t = Instant::now();
            let pts = r
                .read(std::slice::from_ref(m), from, to, |src| {
                    courbe::query::curve(src, m, Channel::CONSUMPTION, from, to)
                        .expect("curve")
                        .len()
                })
                .await
                .expect("read");
            let cost = objects.traffic().since(&before);
            println!(
                "  {what}: {:.3} ms, {} GETs, {} bytes got, {pts} points",
                t.elapsed().as_secs_f64() * 1e3,
                cost.gets,
                cost.bytes_got
            );
        }
    }

    println!("== erasure of one meter of shard 10 (intent, rewrite, commit, sweep)");
    {
        let (writer, took) = ShardWriter::take_over(
            &coord,
            &objects,
            layout.clone(),
            &servers.path("eraser"),
            WriterOptions::new("eraser"),
        )
        .await
        .expect("take over");
        let before = objects.traffic();
        let started = Instant::now();
        let done = writer
            .erase(&series[2].meter_id, None)
            .await
            .expect("erase");
        let t = objects.traffic().since(&before);
        println!(
            "take-over fetched {} segments; erase: {:.3} s, {} points removed, {} PUTs ({} bytes), \
             {} DELETEs, {} LISTs",
            took.segments_fetched,
            started.elapsed().as_secs_f64(),
            done.points_removed,
            t.puts,
            t.bytes_put,
            t.deletes,
            t.lists
        );
        writer.close().await.expect("close");
    }

    println!("== three shard writers against one, same data ({meters} meters x {days} days)");
    let day_batches: Vec<Vec<(String, courbe::Point)>> = (0..days as usize)
        .map(|d| {
            series
                .iter()
                .flat_map(|m| {
                    m.consumption
                        .iter()
                        .skip(d * 48)
                        .take(48)
                        .map(|r| (m.meter_id.clone(), courbe::point_of(r)))
                })
                .collect()
        })
        .collect();
    let batch = |rows: &[(String, courbe::Point)]| {
        let mut b = Batch::new();
        for (m, p) in rows {
            b.push(m, Channel::CONSUMPTION, *p).expect("valid");
        }
        b
    };
    let mut cluster_dirs = Vec::new();
    for (prefix, shards) in [("one", 1u32), ("three", 3)] {
        let mut writers = Vec::new();
        for s in 0..shards {
            let layout = ShardLayout::new(prefix, &format!("/{prefix}"), s);
            let (w, _) = ShardWriter::take_over(
                &coord,
                &objects,
                layout,
                &servers.path(&format!("{prefix}-w{s}")),
                WriterOptions::new(&format!("{prefix}{s}")),
            )
            .await
            .expect("take over");
            writers.push(std::sync::Arc::new(w));
        }
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (s, w) in writers.iter().enumerate() {
            let w = w.clone();
            let mine: Vec<courbe::engine::Batch> = day_batches
                .iter()
                .map(|rows| {
                    let rows: Vec<_> = rows
                        .iter()
                        .filter(|(m, _)| shard_of(m, shards) as usize == s)
                        .cloned()
                        .collect();
                    batch(&rows)
                })
                .collect();
            tasks.push(tokio::spawn(async move {
                for b in &mine {
                    w.ingest(b).await.expect("acknowledged");
                }
                w.checkpoint().await.expect("checkpoint");
            }));
        }
        for t in tasks {
            t.await.expect("a writer task");
        }
        let s = started.elapsed().as_secs_f64();
        println!(
            "{shards} writer(s): {points} points ingested and checkpointed in {s:.2} s = {:.0} pts/s",
            points as f64 / s
        );
        let mut stores = Vec::new();
        for sh in 0..shards {
            let layout = ShardLayout::new(prefix, &format!("/{prefix}"), sh);
            let r = restore(
                &coord,
                &objects,
                &layout,
                &servers.path(&format!("{prefix}-r{sh}")),
                Options::default(),
                false,
            )
            .await
            .expect("restore");
            stores.push(r.store);
        }
        cluster_dirs.push((shards, stores));
    }
    let from = series[0].consumption[0].ts_utc;
    let day = (from, from + 86_400);
    let span = (from, from + i64::from(days) * 86_400);
    // The governance registries are the router's: one set of groups over every shard.
    let gov = Governance::open(&servers.path("gov"), GovernanceConfig::default()).expect("gov");
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
    let operator = Principal {
        role: Role::Operator,
        subject: None,
    };
    let time_n = |n: usize, f: &dyn Fn()| {
        let mut v = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            f();
            v.push(t.elapsed());
        }
        quantiles(v).0
    };
    for (shards, stores) in &cluster_dirs {
        let snaps: Vec<_> = stores.iter().map(|s| s.snapshot()).collect();
        let sources: Vec<&dyn SeriesSource> =
            snaps.iter().map(|s| &**s as &dyn SeriesSource).collect();
        let src = ShardedSource::new(sources);
        let time = |f: &dyn Fn()| {
            let mut v = Vec::new();
            for _ in 0..21 {
                let t = Instant::now();
                f();
                v.push(t.elapsed());
            }
            quantiles(v).0
        };
        let fleet_day = time(&|| {
            courbe::query::fleet_curve(&src, Channel::CONSUMPTION, day.0, day.1, None)
                .expect("fleet");
        });
        let some: Vec<String> = series
            .iter()
            .step_by(10)
            .map(|m| m.meter_id.clone())
            .collect();
        let fleet_some = time(&|| {
            courbe::query::fleet_curve(&src, Channel::CONSUMPTION, span.0, span.1, Some(&some))
                .expect("fleet");
        });
        let one_meter = time(&|| {
            for m in some.iter().take(20) {
                courbe::query::curve(&src, m, Channel::CONSUMPTION, span.0, span.1).expect("curve");
            }
        }) / 20.0;
        let question = format!(
            "level=iris&kind=energy&period=day&tz=Europe/Paris&source=live&from={}&to={}",
            jiff::Timestamp::from_second(span.0).expect("a time"),
            jiff::Timestamp::from_second(span.1).expect("a time")
        );
        let params = Params::from_query(&question).expect("an aggregate question");
        let aggregates_ms = time_n(3, &|| {
            aggregates::answer(&src, &gov, &operator, &params).expect("aggregates");
        });
        println!(
            "{shards} reader(s): IRIS energy by day over {} meters and {days} days (suppression on \
             the merged cells) {aggregates_ms:.1} ms (median of 3)",
            series.len()
        );
        println!(
            "{shards} reader(s): fleet curve of a day {fleet_day:.3} ms; fleet curve of the span over \
             {} meters {fleet_some:.3} ms; one meter's curve of the span {one_meter:.4} ms (medians of 21)",
            some.len()
        );
    }

    println!(
        "== routers over HTTP: 3 reader nodes (one shard each) against 1 (the one-shard copy)"
    );
    let secret = Secret::new("a-loopback-secret-of-some-length").expect("a secret");
    let gov = std::sync::Arc::new(gov);
    let q_day = format!(
        "from={}&to={}",
        jiff::Timestamp::from_second(day.0).expect("a time"),
        jiff::Timestamp::from_second(day.1).expect("a time")
    );
    let q_span = format!(
        "from={}&to={}",
        jiff::Timestamp::from_second(span.0).expect("a time"),
        jiff::Timestamp::from_second(span.1).expect("a time")
    );
    let client = reqwest::Client::new();
    for (prefix, shards) in [("one", 1u32), ("three", 3)] {
        let before = objects.traffic();
        let opened = Instant::now();
        let mut nodes = Vec::new();
        for sh in 0..shards {
            let layout = ShardLayout::new(prefix, &format!("/{prefix}"), sh);
            let cache = BlockCache::new(CacheOptions::new(1 << 30)).expect("a cache");
            let r = RangedReader::open_in(
                &coord,
                &objects,
                &layout,
                &servers.path(&format!("{prefix}-node{sh}")),
                Options::default(),
                &cache,
            )
            .await
            .expect("a ranged reader");
            let node = ReaderNode::new(shards, vec![(sh, r)], gov.clone(), secret.clone())
                .expect("a reader node");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a port");
            nodes.push(node.serve(listener).expect("serving"));
        }
        let open_cost = objects.traffic().since(&before);
        let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
        let router = Router::connect(
            &urls,
            shards,
            secret.clone(),
            gov.clone(),
            courbe::question::Limits::default(),
            Duration::from_secs(120),
        )
        .await
        .expect("a router");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let router = router.serve(listener).expect("serving");
        println!(
            "{shards} reader node(s) opened in {:.3} s: {} GETs, {} bytes got",
            opened.elapsed().as_secs_f64(),
            open_cost.gets,
            open_cost.bytes_got
        );
        let base = router.url();
        for (what, path, query, n) in [
            ("fleet curve of a day", "/v1/fleet/curve", q_day.clone(), 21),
            (
                "fleet energy by day over the span",
                "/v1/fleet/energy",
                format!("{q_span}&period=day"),
                5,
            ),
            (
                "IRIS energy by day over the span",
                "/v1/aggregates",
                format!("level=iris&kind=energy&period=day&tz=Europe/Paris&source=live&{q_span}"),
                3,
            ),
        ] {
            let url = format!("{base}{path}?{query}");
            let mut walls = Vec::new();
            let mut first_cost = None;
            let mut body_bytes = 0;
            let cpu_before = cpu_seconds();
            for i in 0..n {
                let before = objects.traffic();
                let t = Instant::now();
                let r = client.get(&url).send().await.expect("the router answers");
                assert!(r.status().is_success(), "{what}: {}", r.status());
                body_bytes = r.bytes().await.expect("a body").len();
                walls.push(t.elapsed());
                if i == 0 {
                    first_cost = Some(objects.traffic().since(&before));
                }
            }
            let cpu = (cpu_seconds() - cpu_before) / f64::from(n);
            let (p50, _) = quantiles(walls);
            let first = first_cost.unwrap_or_default();
            println!(
                "{shards} reader(s), {what}: {p50:.1} ms median of {n}, {:.1} ms CPU per question \
                 (whole process); answer {body_bytes} bytes; the first fetched {} GETs, {} bytes",
                cpu * 1e3,
                first.gets,
                first.bytes_got
            );
        }
        // What the internal route carries: the partial table of each reader.
        let ask = serde_json::json!({
            "query": format!("level=iris&kind=energy&period=day&tz=Europe/Paris&source=live&{q_span}")
        });
        let mut sizes = Vec::new();
        for url in &urls {
            let r = client
                .post(format!("{url}/internal/v1/partials/aggregates"))
                .bearer_auth("a-loopback-secret-of-some-length")
                .json(&ask)
                .send()
                .await
                .expect("a reader answers");
            sizes.push(r.bytes().await.expect("a body").len());
        }
        println!("{shards} reader(s): IRIS partial tables of {sizes:?} bytes (JSON)");
        drop(router);
        drop(nodes);
    }
}

//! Erasure across the cluster, tested by attack: after the call, every object left in the bucket
//! (and every file of the S3 server's directory, and of the nodes' directories) is searched for
//! the meter, raw and decoded.

use std::path::Path;

use courbe::engine::wal;
use courbe::Channel;
use courbe_cluster::layout::ShardLayout;
use courbe_cluster::Objects;

use super::{
    assert_holds, batch_of, cold_reader, curves, day_batches, support::Servers, take_over,
};

/// Why the bytes of object `key` hold `meter`: its id in the raw bytes, a block of it in a
/// decoded segment, a reading of it in a decoded log record.
pub(super) fn traces(key: &str, bytes: &[u8], meter: &str) -> Vec<String> {
    let mut found = Vec::new();
    if contains(bytes, meter.as_bytes()) {
        found.push(format!("{key}: the id in its bytes"));
    }
    if key.ends_with(".seg") {
        let seg = storage_format::segment::Segment::open(bytes).expect("a segment object opens");
        for c in [Channel::CONSUMPTION, Channel::PRODUCTION] {
            if !seg.blocks(meter, c).expect("its index reads").is_empty() {
                found.push(format!("{key}: blocks of {c:?}"));
            }
        }
    } else if key.ends_with(".log") {
        let mut held = 0;
        wal::decode_log(bytes, Path::new(key), false, 0, |_, b| {
            held += b.series().filter(|(m, _, _)| *m == meter).count();
        })
        .expect("a log object decodes");
        if held > 0 {
            found.push(format!("{key}: {held} series in its records"));
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every trace of `meter` in the bucket, through the S3 API.
pub(super) async fn traces_in_bucket(objects: &Objects, meter: &str) -> Vec<String> {
    let mut found = Vec::new();
    for key in objects.list("courbe").await.expect("the bucket lists") {
        let bytes = objects.get(&key).await.expect("an object reads");
        found.extend(traces(&key, &bytes, meter));
    }
    found
}

/// Every file under `dir` (recursively) whose bytes hold the id.
pub(super) fn files_holding(dir: &Path, meter: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            found.extend(files_holding(&path, meter));
        } else if std::fs::read(&path).is_ok_and(|b| contains(&b, meter.as_bytes())) {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn an_erased_meter_is_in_no_object_of_the_bucket_when_the_call_returns() {
    let servers = Servers::start().await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let layout = ShardLayout::new("courbe", "/courbe", 0);
    let (writer, took) = take_over(&servers, &coord, &objects, &layout, "w", "w")
        .await
        .expect("the writer takes the shard");
    // s3s-fs answers GetBucketVersioning NotImplemented: a bucket that keeps no versions.
    assert_eq!(took.versioning, courbe_cluster::Versioning::NotImplemented);
    let (meters, days) = day_batches(20, 12, 31);
    let erased = meters[3].clone();
    for (d, rows) in days.iter().enumerate() {
        writer.ingest(&batch_of(rows)).await.expect("acknowledged");
        if d == 4 || d == 8 {
            writer.checkpoint().await.expect("a checkpoint");
        }
    }
    // Days 9-11 are only in log objects; a cold reader replaying them caches the meter too.
    let reader = cold_reader(&coord, &objects, &layout, &servers.path("reader"), true).await;
    assert!(!curves(&reader.store, std::slice::from_ref(&erased))[&erased].is_empty());
    drop(reader);
    let before = traces_in_bucket(&objects, &erased).await;
    assert!(
        before.iter().any(|t| t.contains(".seg: blocks"))
            && before.iter().any(|t| t.contains(".log: "))
            && before.iter().any(|t| t.contains("the id in its bytes")),
        "the attack finds the meter before the erasure: {before:?}"
    );

    let done = writer.erase(&erased, None).await.expect("the erasure");
    assert!(
        done.points_removed > 0 && done.objects_deleted > 0 && done.versions_deleted == 0,
        "{done:?}"
    );

    assert_eq!(
        traces_in_bucket(&objects, &erased).await,
        Vec::<String>::new()
    );
    assert_eq!(
        files_holding(&servers.path("s3"), &erased),
        Vec::<String>::new(),
        "no file of the S3 server's directory holds the id"
    );
    assert_eq!(
        files_holding(&servers.path("w"), &erased),
        Vec::<String>::new(),
        "nor does the writer's own directory"
    );
    // The other meters keep every acknowledged point.
    let others: Vec<Vec<_>> = days
        .iter()
        .map(|rows| rows.iter().filter(|(m, _)| *m != erased).cloned().collect())
        .collect();
    assert_holds(writer.store(), &meters, &others);
    // A cold reader restored afterwards, in a fresh directory or over its old cache, does
    // not see the meter and keeps no file that names it.
    for dir in ["reader", "fresh"] {
        let reader = cold_reader(&coord, &objects, &layout, &servers.path(dir), true).await;
        assert!(curves(&reader.store, std::slice::from_ref(&erased))[&erased].is_empty());
        assert_eq!(
            curves(&reader.store, &meters),
            curves(writer.store(), &meters)
        );
        drop(reader);
        assert_eq!(
            files_holding(&servers.path(dir), &erased),
            Vec::<String>::new()
        );
    }
    // The writer goes on acknowledging.
    writer
        .ingest(&batch_of(&days[0]))
        .await
        .expect("acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn a_writer_killed_mid_erasure_is_replaced_by_one_that_finishes_it_before_acknowledging() {
    let servers = Servers::start().await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let layout = ShardLayout::new("courbe", "/courbe", 2);
    let (a, _) = take_over(&servers, &coord, &objects, &layout, "a", "a")
        .await
        .expect("writer a takes the shard");
    let (meters, days) = day_batches(20, 10, 37);
    let erased = meters[5].clone();
    for (d, rows) in days.iter().enumerate() {
        a.ingest(&batch_of(rows)).await.expect("acknowledged");
        if d == 5 {
            a.checkpoint().await.expect("a checkpoint");
        }
    }
    // Killed after its intent is committed, before the rewrite.
    a.begin_erase(&erased, None)
        .await
        .expect("the intent is committed");
    a.abandon();
    assert!(
        !traces_in_bucket(&objects, &erased).await.is_empty(),
        "nothing is erased yet"
    );

    let (b, took) = take_over(&servers, &coord, &objects, &layout, "b", "b")
        .await
        .expect("writer b takes the shard once a's lease has ended");
    assert_eq!(took.erasures_completed, 1);
    // When the take-over returns (before b acknowledges anything), the erasure is complete.
    assert_eq!(
        traces_in_bucket(&objects, &erased).await,
        Vec::<String>::new()
    );
    assert_eq!(
        files_holding(&servers.path("s3"), &erased),
        Vec::<String>::new()
    );
    assert_eq!(
        files_holding(&servers.path("b"), &erased),
        Vec::<String>::new()
    );
    assert!(curves(b.store(), std::slice::from_ref(&erased))[&erased].is_empty());
    let others: Vec<Vec<_>> = days
        .iter()
        .map(|rows| rows.iter().filter(|(m, _)| *m != erased).cloned().collect())
        .collect();
    assert_holds(b.store(), &meters, &others);
    b.ingest(&batch_of(&days[0])).await.expect("b acknowledges");
}

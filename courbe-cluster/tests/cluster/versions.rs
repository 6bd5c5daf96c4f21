//! Erasure on a versioned bucket (`support::versioned`: s3s-fs keeping every overwritten or
//! deleted object as a noncurrent version under the server's directory), tested by attack:
//! after the call every file of the server's directory, the kept versions included, is searched
//! for the meter, raw and decoded; the bucket refusing or ignoring version deletions must fail
//! the call.

use std::collections::BTreeMap;
use std::path::Path;

use courbe::Point;
use courbe_cluster::layout::ShardLayout;
use courbe_cluster::{ShardWriter, Versioning};

use super::erasure::{files_holding, traces, traces_in_bucket};
use super::support::versioned::{Mode, Versions};
use super::{
    assert_holds, batch_of, cold_reader, curves, day_batches, support::Servers, take_over,
};

/// Every trace of `meter` in the files under `dir` (recursively), each decoded as the kind
/// its name ends with (the kept versions are named after their key).
fn traces_in_dir(dir: &Path, meter: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            found.extend(traces_in_dir(&path, meter));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.extend(traces(&path.display().to_string(), &bytes, meter));
        }
    }
    found
}

/// Ingests `days` with a checkpoint after each day in `checkpoints` (each sweeps log objects,
/// and compaction replaces segments: deleted keys whose bytes a versioned bucket keeps).
async fn ingest(writer: &ShardWriter, days: &[Vec<(String, Point)>], checkpoints: &[usize]) {
    for (d, rows) in days.iter().enumerate() {
        writer.ingest(&batch_of(rows)).await.expect("acknowledged");
        if checkpoints.contains(&d) {
            writer.checkpoint().await.expect("a checkpoint");
        }
    }
}

fn without(days: &[Vec<(String, Point)>], meter: &str) -> Vec<Vec<(String, Point)>> {
    days.iter()
        .map(|rows| rows.iter().filter(|(m, _)| m != meter).cloned().collect())
        .collect()
}

/// After an erasure of `erased`: nothing of it in the bucket (current objects through the API),
/// in any file of the server's directory (kept versions included) or the writer's, no old
/// version or delete marker left, every other meter's curve as `others_before`, and a cold
/// reader answering as the writer.
async fn assert_erased_everywhere(
    servers: &Servers,
    versions: &Versions,
    writer: &ShardWriter,
    layout: &ShardLayout,
    erased: &str,
    meters: &[String],
    others_before: &BTreeMap<String, Vec<Point>>,
) {
    let objects = servers.objects();
    assert_eq!(
        traces_in_bucket(&objects, erased).await,
        Vec::<String>::new()
    );
    assert_eq!(
        traces_in_dir(&servers.path("s3"), erased),
        Vec::<String>::new(),
        "no file of the S3 server's directory, kept versions included, holds the meter"
    );
    assert_eq!(
        files_holding(&servers.path("s3"), erased),
        Vec::<String>::new()
    );
    assert_eq!(
        versions.old_versions(),
        0,
        "no old version or marker is left"
    );
    assert!(curves(writer.store(), &[erased.to_owned()])[erased].is_empty());
    let others: Vec<String> = others_before.keys().cloned().collect();
    assert_eq!(&curves(writer.store(), &others), others_before);
    let coord = servers.coordinator().await;
    let reader = cold_reader(&coord, &objects, layout, &servers.path("fresh"), true).await;
    assert_eq!(
        curves(&reader.store, meters),
        curves(writer.store(), meters)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn on_a_versioned_bucket_an_erased_meter_is_in_no_version_of_any_object_when_the_call_returns(
) {
    let (servers, versions) = Servers::start_versioned(Mode::Enabled).await;
    // Small pages: the listing is followed page after page.
    versions.set_page(7);
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let layout = ShardLayout::new("courbe", "/courbe", 0);
    let (writer, took) = take_over(&servers, &coord, &objects, &layout, "w", "w")
        .await
        .expect("the writer takes the shard");
    assert_eq!(took.versioning, Versioning::Enabled);
    let (meters, days) = day_batches(20, 12, 31);
    let erased = meters[3].clone();
    ingest(&writer, &days, &[3, 6, 8]).await;
    let before = traces_in_dir(&servers.path("s3").join(".versions"), &erased);
    // Swept log objects are kept as versions; the erasure then adds the replaced segments and
    // manifests (the intent's names the meter).
    assert!(
        before.iter().any(|t| t.contains(".log: ")),
        "the attack finds the meter in kept versions of log objects before: {before:?}"
    );
    let others: Vec<String> = meters.iter().filter(|m| **m != erased).cloned().collect();
    let others_before = curves(writer.store(), &others);
    let lists_before = versions.list_requests();

    let done = writer.erase(&erased, None).await.expect("the erasure");

    assert_erased_everywhere(
        &servers,
        &versions,
        &writer,
        &layout,
        &erased,
        &meters,
        &others_before,
    )
    .await;
    assert!(
        done.points_removed > 0 && done.objects_deleted > 0 && done.versions_deleted > 0,
        "{done:?}"
    );
    assert!(
        versions.list_requests() - lists_before >= 3,
        "the versions were listed page by page and again after the deletions"
    );
    assert_eq!(
        files_holding(&servers.path("w"), &erased),
        Vec::<String>::new()
    );
    assert_holds(writer.store(), &meters, &without(&days, &erased));
    writer
        .ingest(&batch_of(&days[0]))
        .await
        .expect("the writer goes on acknowledging");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn a_suspended_bucket_keeps_its_old_versions_and_an_erasure_deletes_them_as_on_an_enabled_one(
) {
    let (servers, versions) = Servers::start_versioned(Mode::Enabled).await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let layout = ShardLayout::new("courbe", "/courbe", 1);
    let (writer, _) = take_over(&servers, &coord, &objects, &layout, "w", "w")
        .await
        .expect("the writer takes the shard");
    let (meters, days) = day_batches(16, 10, 41);
    let erased = meters[7].clone();
    ingest(&writer, &days[..6], &[2, 4]).await;
    // Suspended after the writer started: the erasure reads the versioning again.
    versions.set_mode(Mode::Suspended);
    ingest(&writer, &days[6..], &[1]).await;
    assert!(
        !traces_in_dir(&servers.path("s3").join(".versions"), &erased).is_empty(),
        "versions kept while it was enabled still hold the meter"
    );
    let others: Vec<String> = meters.iter().filter(|m| **m != erased).cloned().collect();
    let others_before = curves(writer.store(), &others);

    let done = writer.erase(&erased, None).await.expect("the erasure");

    assert_erased_everywhere(
        &servers,
        &versions,
        &writer,
        &layout,
        &erased,
        &meters,
        &others_before,
    )
    .await;
    assert!(done.versions_deleted > 0, "{done:?}");
    assert_holds(writer.store(), &meters, &without(&days, &erased));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn an_erasure_the_bucket_refuses_or_ignores_a_version_deletion_of_fails_naming_the_key() {
    let (servers, versions) = Servers::start_versioned(Mode::Enabled).await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let layout = ShardLayout::new("courbe", "/courbe", 2);
    let (writer, _) = take_over(&servers, &coord, &objects, &layout, "w", "w")
        .await
        .expect("the writer takes the shard");
    let (meters, days) = day_batches(16, 8, 43);
    let erased = meters[2].clone();
    ingest(&writer, &days, &[3, 5]).await;
    let others: Vec<String> = meters.iter().filter(|m| **m != erased).cloned().collect();
    let others_before = curves(writer.store(), &others);
    let kept = || traces_in_dir(&servers.path("s3").join(".versions"), &erased);

    // No s3:DeleteObjectVersion (or an object lock): AccessDenied on the first version.
    versions.refuse_version_deletes(true);
    let refused = writer
        .erase(&erased, None)
        .await
        .expect_err("an erasure whose versions stay is no success")
        .to_string();
    assert!(
        refused.contains("DeleteObject courbe/shards/0002/")
            && refused.contains("versionId")
            && refused.contains("403 AccessDenied"),
        "{refused}"
    );
    assert!(!kept().is_empty(), "the kept versions still hold the meter");

    // A server answering success and keeping the version: the listing after catches it.
    versions.refuse_version_deletes(false);
    versions.ignore_version_deletes(true);
    let ignored = writer
        .erase(&erased, None)
        .await
        .expect_err("a version still listed is no success")
        .to_string();
    assert!(
        ignored.contains("DeleteObject courbe/shards/0002/")
            && ignored.contains("still listed after its deletion"),
        "{ignored}"
    );
    assert!(!kept().is_empty());

    // A take-over while the bucket still refuses: the shard gets its writer, the versions
    // left are reported.
    versions.ignore_version_deletes(false);
    versions.refuse_version_deletes(true);
    writer.abandon();
    let (writer, took) = take_over(&servers, &coord, &objects, &layout, "b", "b")
        .await
        .expect("writer b takes the shard once a's lease has ended");
    let left = took.versions_left.expect("the versions left are reported");
    assert!(left.contains("403 AccessDenied"), "{left}");
    assert!(!kept().is_empty());

    // The call again, on a bucket that deletes: done (nothing more to erase in the store).
    versions.refuse_version_deletes(false);
    let done = writer.erase(&erased, None).await.expect("the erasure");
    assert!(done.versions_deleted > 0, "{done:?}");
    assert_erased_everywhere(
        &servers,
        &versions,
        &writer,
        &layout,
        &erased,
        &meters,
        &others_before,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn on_a_versioned_bucket_a_writer_killed_mid_erasure_is_replaced_by_one_that_deletes_the_old_versions(
) {
    let (servers, versions) = Servers::start_versioned(Mode::Enabled).await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let layout = ShardLayout::new("courbe", "/courbe", 3);
    let (a, _) = take_over(&servers, &coord, &objects, &layout, "a", "a")
        .await
        .expect("writer a takes the shard");
    let (meters, days) = day_batches(16, 8, 47);
    let erased = meters[4].clone();
    ingest(&a, &days, &[4]).await;
    let others: Vec<String> = meters.iter().filter(|m| **m != erased).cloned().collect();
    let others_before = curves(a.store(), &others);
    a.begin_erase(&erased, None)
        .await
        .expect("the intent is committed");
    a.abandon();

    let (b, took) = take_over(&servers, &coord, &objects, &layout, "b", "b")
        .await
        .expect("writer b takes the shard once a's lease has ended");
    assert_eq!(took.erasures_completed, 1);
    assert_erased_everywhere(
        &servers,
        &versions,
        &b,
        &layout,
        &erased,
        &meters,
        &others_before,
    )
    .await;
    assert!(took.versions_deleted > 0, "{took:?}");
    b.ingest(&batch_of(&days[0])).await.expect("b acknowledges");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn a_writer_does_not_start_without_the_buckets_versioning_and_a_never_versioned_one_is_erased_as_before(
) {
    let (servers, versions) = Servers::start_versioned(Mode::Never).await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let layout = ShardLayout::new("courbe", "/courbe", 0);
    versions.refuse_get_versioning(true);
    let refused = take_over(&servers, &coord, &objects, &layout, "w", "w")
        .await
        .err()
        .expect("no writer starts without the bucket's versioning")
        .to_string();
    assert!(
        refused.contains("shard 0: the writer does not start")
            && refused.contains("GetBucketVersioning on bucket courbe")
            && refused.contains("403 AccessDenied"),
        "{refused}"
    );
    versions.refuse_get_versioning(false);
    let (writer, took) = take_over(&servers, &coord, &objects, &layout, "w", "w")
        .await
        .expect("the writer takes the shard");
    assert_eq!(took.versioning, Versioning::Never);
    let (meters, days) = day_batches(12, 6, 53);
    let erased = meters[1].clone();
    ingest(&writer, &days, &[2]).await;
    let others: Vec<String> = meters.iter().filter(|m| **m != erased).cloned().collect();
    let others_before = curves(writer.store(), &others);

    let done = writer.erase(&erased, None).await.expect("the erasure");

    assert_eq!(done.versions_deleted, 0);
    assert_eq!(versions.list_requests(), 0, "no version was listed");
    assert_erased_everywhere(
        &servers,
        &versions,
        &writer,
        &layout,
        &erased,
        &meters,
        &others_before,
    )
    .await;
}

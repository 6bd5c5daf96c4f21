//! A reader that fetches index pages first and blocks on demand, by ranged GETs, within a
//! byte bound.

use courbe::engine::Options;
use courbe::Channel;
use courbe_cluster::layout::ShardLayout;
use courbe_cluster::ranged::allocated_bytes;
use courbe_cluster::{CacheOptions, RangedReader};

use super::{batch_of, cold_reader, curves, day_batches, support::Servers, take_over};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn a_ranged_reader_fetches_index_pages_first_and_blocks_on_demand_within_its_bound() {
    let servers = Servers::start().await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let layout = ShardLayout::new("courbe", "/courbe", 0);
    let (writer, _) = take_over(&servers, &coord, &objects, &layout, "w", "w")
        .await
        .expect("the writer takes the shard");
    let (meters, days) = day_batches(150, 24, 43);
    for (d, rows) in days.iter().enumerate() {
        writer.ingest(&batch_of(rows)).await.expect("acknowledged");
        if d % 8 == 7 {
            writer.checkpoint().await.expect("a checkpoint");
        }
    }
    let expected = curves(writer.store(), &meters);
    let whole = cold_reader(&coord, &objects, &layout, &servers.path("whole"), false).await;
    let segments = whole.store.committed_manifest().segments;
    let segment_bytes: u64 = segments.iter().map(|s| s.len).sum();
    drop(whole);

    // Opening: the manifest object, then three ranged GETs per segment; no block.
    let bound = segment_bytes / 10;
    let dir = servers.path("ranged");
    let cache = CacheOptions {
        bound_bytes: bound,
        chunk_bytes: 4096,
    };
    let reader = RangedReader::open(&coord, &objects, &layout, &dir, Options::default(), cache)
        .await
        .expect("a ranged reader opens");
    assert_eq!(reader.opened.gets, 1 + 3 * segments.len() as u64);
    assert_eq!(reader.opened.lists, 0);
    let stats = reader.stats().await;
    assert_eq!(stats.block_bytes, 0);
    assert!(
        reader.opened.bytes_got < segment_bytes / 5,
        "opening fetched {} of {segment_bytes} bytes",
        reader.opened.bytes_got
    );

    // Questions: one meter's blocks, fetched in chunks of 4 KiB.
    let (from, to) = (0, 4_000_000_000);
    for (i, m) in meters.iter().enumerate() {
        let before = objects.traffic();
        let got = reader
            .read(std::slice::from_ref(m), from, to, |src| {
                courbe::query::curve(src, m, Channel::CONSUMPTION, from, to)
            })
            .await
            .expect("the blocks are fetched")
            .expect("the question is answered");
        assert_eq!(got, expected[m], "meter {m}");
        // At most one ranged GET per segment (none when its chunks are held already).
        let cost = objects.traffic().since(&before);
        assert!(cost.gets <= segments.len() as u64, "{cost:?}");
        let stats = reader.stats().await;
        assert!(stats.block_bytes <= bound, "{stats:?} after meter {i}");
    }
    let stats = reader.stats().await;
    assert!(stats.chunks_dropped > 0, "{stats:?}");
    // What the disk holds: the index parts and at most the bound of blocks, not the segments
    // (plus, per segment, the disk blocks the header and the index part share with block
    // chunks, and the manifest).
    let on_disk = allocated_bytes(&dir);
    let slack = 4096 * (2 * segments.len() as u64 + 2);
    assert!(
        on_disk <= stats.index_bytes + bound + slack,
        "{on_disk} bytes on disk for {segment_bytes} bytes of segments, {stats:?}"
    );
    // A meter read again after its blocks were dropped is fetched again, and right.
    let first = &meters[0];
    let before = objects.traffic();
    let again = reader
        .read(std::slice::from_ref(first), from, to, |src| {
            courbe::query::curve(src, first, Channel::CONSUMPTION, from, to)
        })
        .await
        .expect("fetched again")
        .expect("answered");
    assert_eq!(again, expected[first]);
    assert!(objects.traffic().since(&before).gets >= 1);
    // A fleet question over the rollups needs no block.
    let before = objects.traffic();
    let fleet = reader
        .read(&[], from, to, |src| {
            src.fleet_sums(Channel::CONSUMPTION, 1_706_313_600, 1_706_400_000)
        })
        .await
        .expect("no fetch")
        .expect("the sums");
    assert!(
        fleet.is_some(),
        "the shard's segments keep rollups (>= 128 series)"
    );
    assert_eq!(objects.traffic().since(&before).gets, 0);
}

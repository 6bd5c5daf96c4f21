//! A reader that fetches index pages first and blocks on demand, by ranged GETs, within a
//! byte bound, one bound shared by every shard a node reads.

use courbe::engine::Options;
use courbe::Channel;
use courbe_cluster::layout::ShardLayout;
use courbe_cluster::ranged::allocated_bytes;
use courbe_cluster::{shard_of, BlockCache, CacheOptions, RangedReader};

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
    // chunks and its `.held` record, and the manifest).
    let on_disk = allocated_bytes(&dir);
    let slack = 4096 * (3 * segments.len() as u64 + 2);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn one_byte_bound_is_shared_by_every_shard_a_node_reads_least_recently_read_first() {
    let servers = Servers::start().await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let shards = coord.shard_count(2).await.expect("the shard map");
    let (meters, days) = day_batches(120, 12, 47);
    let mut writers = Vec::new();
    for s in 0..shards {
        let layout = ShardLayout::new("courbe", "/courbe", s);
        let name = format!("w{s}");
        let (w, _) = take_over(&servers, &coord, &objects, &layout, &name, &name)
            .await
            .expect("a writer per shard");
        writers.push(w);
    }
    for rows in &days {
        for (s, w) in writers.iter().enumerate() {
            let mine: Vec<_> = rows
                .iter()
                .filter(|(m, _)| shard_of(m, shards) as usize == s)
                .cloned()
                .collect();
            w.ingest(&batch_of(&mine)).await.expect("acknowledged");
        }
    }
    let mut by_shard: Vec<Vec<String>> = vec![Vec::new(); shards as usize];
    let mut expected = std::collections::BTreeMap::new();
    let mut segment_bytes = 0;
    for (s, w) in writers.iter().enumerate() {
        w.checkpoint().await.expect("a checkpoint");
        let mine: Vec<String> = meters
            .iter()
            .filter(|m| shard_of(m, shards) as usize == s)
            .cloned()
            .collect();
        expected.extend(curves(w.store(), &mine));
        segment_bytes += w
            .store()
            .committed_manifest()
            .segments
            .iter()
            .map(|e| e.len)
            .sum::<u64>();
        by_shard[s] = mine;
    }

    // One bound for both shards, a tenth of their segments.
    let bound = segment_bytes / 10;
    let cache = BlockCache::new(CacheOptions {
        bound_bytes: bound,
        chunk_bytes: 4096,
    })
    .expect("a cache");
    let mut readers = Vec::new();
    for s in 0..shards {
        let layout = ShardLayout::new("courbe", "/courbe", s);
        let dir = servers.path(&format!("node/shard-{s}"));
        let r = RangedReader::open_in(&coord, &objects, &layout, &dir, Options::default(), &cache)
            .await
            .expect("a ranged reader opens");
        readers.push((r, dir));
    }
    let (from, to) = (0, 4_000_000_000);
    let read = |s: usize, m: String| {
        let reader = &readers[s].0;
        async move {
            let got = reader
                .read(std::slice::from_ref(&m), from, to, |src| {
                    courbe::query::curve(src, &m, Channel::CONSUMPTION, from, to)
                })
                .await
                .expect("the blocks are fetched")
                .expect("the question is answered");
            (m, got)
        }
    };
    // Every meter of shard 0, then every meter of shard 1: within the one bound throughout.
    for (s, mine) in by_shard.iter().enumerate() {
        for m in mine {
            let (m, got) = read(s, m.clone()).await;
            assert_eq!(got, expected[&m], "meter {m}");
            let stats = cache.stats().await;
            assert!(stats.block_bytes <= bound, "{stats:?} after {m}");
        }
    }
    let stats = cache.stats().await;
    assert!(stats.chunks_dropped > 0, "{stats:?}");
    // The node's disk holds the index parts and at most the bound of blocks, both shards
    // together; shard 0, read least recently, lost its blocks to shard 1's.
    let index: u64 = {
        let mut sum = 0;
        for (r, _) in &readers {
            sum += r.stats().await.index_bytes;
        }
        sum
    };
    let on_disk: u64 = readers.iter().map(|(_, d)| allocated_bytes(d)).sum();
    let segments: u64 = readers
        .iter()
        .map(|(r, _)| r.head().map_or(0, |h| h.segments.len() as u64))
        .sum();
    // Per segment: the blocks shared with the index part and the `.held` record.
    let slack = 4096 * (3 * segments + 4);
    assert!(
        on_disk <= index + bound + slack,
        "{on_disk} bytes on disk for {segment_bytes} bytes of segments, {index} of index"
    );
    let shard0 = allocated_bytes(&readers[0].1);
    let index0 = readers[0].0.stats().await.index_bytes;
    assert!(
        shard0 <= index0 + slack,
        "shard 0, read least recently, holds {shard0} bytes for {index0} of index"
    );
    // The shard read last is answered from what it holds; the other is fetched again.
    let last = by_shard[1].last().expect("meters on shard 1").clone();
    let before = objects.traffic();
    let (_, got) = read(1, last.clone()).await;
    assert_eq!(got, expected[&last]);
    assert_eq!(objects.traffic().since(&before).gets, 0);
    let first = by_shard[0][0].clone();
    let before = objects.traffic();
    let (_, got) = read(0, first.clone()).await;
    assert_eq!(got, expected[&first]);
    assert!(objects.traffic().since(&before).gets >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn blocks_kept_across_a_reader_restart_are_used_only_for_the_same_object() {
    let servers = Servers::start().await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let layout = ShardLayout::new("courbe", "/courbe", 0);
    let (writer, _) = take_over(&servers, &coord, &objects, &layout, "w", "w")
        .await
        .expect("the writer takes the shard");
    let (meters, days) = day_batches(60, 10, 53);
    for rows in &days {
        writer.ingest(&batch_of(rows)).await.expect("acknowledged");
    }
    writer.checkpoint().await.expect("a checkpoint");
    let expected = curves(writer.store(), &meters);
    let dir = servers.path("ranged");
    let cache = CacheOptions {
        bound_bytes: 1 << 30,
        chunk_bytes: 4096,
    };
    let some = &meters[..20];
    {
        let first = RangedReader::open(&coord, &objects, &layout, &dir, Options::default(), cache)
            .await
            .expect("a ranged reader opens");
        for m in some {
            assert_eq!(ask(&first, m).await, expected[m]);
        }
    }
    // Restarted over the same directory: the index parts are fetched again (never trusted),
    // the blocks of the same objects are not.
    let second = RangedReader::open(&coord, &objects, &layout, &dir, Options::default(), cache)
        .await
        .expect("a ranged reader opens again");
    let segments = second.head().map_or(0, |h| h.segments.len() as u64);
    assert_eq!(second.opened.gets, 1 + 3 * segments);
    assert!(
        second.stats().await.block_bytes > 0,
        "the kept chunks are held"
    );
    let before = objects.traffic();
    for m in some {
        assert_eq!(ask(&second, m).await, expected[m], "meter {m}");
    }
    assert_eq!(
        objects.traffic().since(&before).gets,
        0,
        "kept blocks answer"
    );
    assert!(ask(&second, &meters[59]).await == expected[&meters[59]]);
    drop(second);

    // A record naming another object, or a file of another length, keeps nothing.
    for entry in std::fs::read_dir(&dir).expect("the directory") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "held") {
            let text = std::fs::read_to_string(&path).expect("a record");
            let forged = text.replacen("\"key\":\"", "\"key\":\"other/", 1);
            assert_ne!(forged, text);
            std::fs::write(&path, forged).expect("forged");
        }
    }
    let third = RangedReader::open(&coord, &objects, &layout, &dir, Options::default(), cache)
        .await
        .expect("a ranged reader opens over forged records");
    assert_eq!(third.stats().await.block_bytes, 0);
    let before = objects.traffic();
    assert_eq!(ask(&third, &some[0]).await, expected[&some[0]]);
    assert!(objects.traffic().since(&before).gets >= 1, "fetched again");
    drop(third);

    // A new version (more data, compacted into new segments) removes the files of the old.
    let (_, more) = day_batches(60, 12, 53);
    for rows in &more[10..] {
        writer.ingest(&batch_of(rows)).await.expect("acknowledged");
    }
    writer.store().compact().expect("a compaction");
    writer.checkpoint().await.expect("a checkpoint");
    let expected = curves(writer.store(), &meters);
    let fourth = RangedReader::open(&coord, &objects, &layout, &dir, Options::default(), cache)
        .await
        .expect("a ranged reader of the new version");
    let named: Vec<String> = fourth
        .head()
        .map(|h| h.segments.values().cloned().collect())
        .unwrap_or_default();
    assert!(!named.is_empty());
    for m in some {
        assert_eq!(ask(&fourth, m).await, expected[m], "meter {m}");
    }
    let files = std::fs::read_dir(&dir).expect("the directory").count();
    let live = writer.store().committed_manifest().segments.len();
    assert!(
        files <= 2 * live + 4,
        "{files} files for {live} segments: the old version's are gone"
    );
}

/// One meter's whole curve through `reader`.
async fn ask(reader: &RangedReader, m: &str) -> Vec<courbe::Point> {
    let (from, to) = (0, 4_000_000_000);
    reader
        .read(&[m.to_owned()], from, to, |src| {
            courbe::query::curve(src, m, Channel::CONSUMPTION, from, to)
        })
        .await
        .expect("the blocks are held")
        .expect("the question is answered")
}

//! A cold reader: a shard's store rebuilt in a local directory from the manifest etcd points to
//! and the objects it names (docs/SCALE-OUT.md). First step of the goal: whole segment
//! objects are fetched into the directory (a cache bounded by the shard's current version: files
//! the version does not name are removed); index pages first and ranged block reads are next.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use courbe::engine::manifest::{self, Manifest};
use courbe::engine::{wal, Options, Store};

use crate::layout::{self, ShardLayout, ShardManifest, WalPos};
use crate::objects::{Objects, Traffic};
use crate::{Coordinator, Error, Result};

/// A shard's store rebuilt from object storage, with what it cost.
pub struct Restored {
    pub store: Store,
    /// The manifest object read (`None`: the shard has none yet, the store is empty).
    pub head: Option<ShardManifest>,
    /// Segment objects fetched (the others were already in the directory).
    pub fetched: usize,
    /// Log objects replayed after the manifest (when asked for).
    pub replayed: usize,
    /// The last log object replayed or covered.
    pub wal_through: WalPos,
    pub traffic: Traffic,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the files of the manifest `pointer` names into `dir` (fetching the segments not
/// already there), removes the files it does not name, and returns its head and the decoded
/// store manifest. The store must not be open on `dir`.
pub async fn fetch_version(
    objects: &Objects,
    layout: &ShardLayout,
    pointer: &str,
    dir: &Path,
) -> Result<(ShardManifest, Manifest, usize)> {
    let key = layout.manifest_key(pointer);
    let bytes = objects.get(&key).await?;
    let (head, store_bytes) = layout::decode_manifest_object(&key, &bytes)?;
    let man = Manifest::decode(&store_bytes, Path::new(&key))?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut named = BTreeSet::new();
    let mut fetched = 0;
    for entry in &man.segments {
        let name = manifest::segment_file_name(entry.file_id);
        let path = dir.join(&name);
        named.insert(name);
        let cached = std::fs::metadata(&path).is_ok_and(|m| m.len() == entry.len);
        if cached {
            continue;
        }
        let object = head.segment_key(&key, entry.file_id)?;
        let data = objects.get(object).await?;
        if data.len() as u64 != entry.len {
            return Err(Error::Corrupt {
                what: object.to_owned(),
                detail: format!("{} bytes, the manifest says {}", data.len(), entry.len),
            });
        }
        write_file(&path, &data)?;
        fetched += 1;
    }
    // The directory holds this version only: segments of other versions and logs go.
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let stale = manifest::parse_segment_file_name(&name).is_some() && !named.contains(&name)
            || wal::parse_file_name(&name).is_some();
        if stale {
            std::fs::remove_file(e.path()).map_err(io(&e.path()))?;
        }
    }
    write_file(&dir.join(manifest::FILE_NAME), &store_bytes)?;
    Ok((head, man, fetched))
}

fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    let tmp: PathBuf = path.with_extension("part");
    std::fs::write(&tmp, data).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The log objects of a shard after `after`, in order.
pub async fn wal_after(
    objects: &Objects,
    layout: &ShardLayout,
    after: WalPos,
) -> Result<Vec<(WalPos, String)>> {
    let mut logs: Vec<(WalPos, String)> = objects
        .list(&layout.wal_dir())
        .await?
        .into_iter()
        .filter_map(|k| layout::parse_wal_key(&k).map(|p| (p, k)))
        .filter(|(p, _)| *p > after)
        .collect();
    logs.sort();
    Ok(logs)
}

/// Replays the log object `key` into `store` (its batches, in order, through `Store::ingest`).
pub async fn replay_object(objects: &Objects, store: &Store, key: &str) -> Result<usize> {
    let bytes = objects.get(key).await?;
    let registers = store.committed_manifest().registers.len();
    let mut batches = Vec::new();
    wal::decode_log(&bytes, Path::new(key), false, registers, |_, b| {
        batches.push(b)
    })?;
    for b in &batches {
        store.ingest(b)?;
    }
    Ok(batches.len())
}

/// Rebuilds shard `layout.shard` in `dir` from the version etcd points to; with `with_log`,
/// also replays the log objects written after it (every batch acknowledged so far), else the
/// store holds what the last checkpoint holds.
pub async fn restore(
    coord: &Coordinator,
    objects: &Objects,
    layout: &ShardLayout,
    dir: &Path,
    options: Options,
    with_log: bool,
) -> Result<Restored> {
    let before = objects.traffic();
    let pointer = coord.manifest_pointer(layout).await?;
    let (head, fetched) = match &pointer {
        Some(p) => {
            let (head, _, fetched) = fetch_version(objects, layout, p, dir).await?;
            (Some(head), fetched)
        }
        None => (None, 0),
    };
    let store = Store::open(dir, options)?;
    let mut wal_through = head.as_ref().map_or((0, 0), |h| h.wal_through);
    let mut replayed = 0;
    if with_log {
        for (pos, key) in wal_after(objects, layout, wal_through).await? {
            replay_object(objects, &store, &key).await?;
            replayed += 1;
            wal_through = pos;
        }
    }
    Ok(Restored {
        store,
        head,
        fetched,
        replayed,
        wal_through,
        traffic: objects.traffic().since(&before),
    })
}

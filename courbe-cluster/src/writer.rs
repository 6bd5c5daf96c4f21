//! The one writer of a shard (docs/SCALE-OUT.md, "Commit protocol", "Acknowledgement",
//! "Take-over").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use courbe::engine::{manifest, wal, Batch, Options, Store};
use courbe::journal;

use crate::layout::{self, ShardLayout, ShardManifest, WalPos};
use crate::objects::Objects;
use crate::reader::{fetch_version, replay_object, wal_after};
use crate::versions::Versioning;
use crate::{Coordinator, Error, Lease, Result};

/// How a shard writer runs.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// This node's name, the leader key's value.
    pub node: String,
    /// The lease's time to live: a dead writer's shard takes this long to get a new one.
    pub lease_ttl_s: i64,
    /// How long to wait for the current holder's lease to end.
    pub acquire_wait: Duration,
    /// `true` (the rule): a batch is acknowledged once its log object is in object storage.
    /// `false` only measures the cost of that rule: nothing is logged remotely, so a take-over
    /// loses every batch since the last checkpoint.
    pub log_before_ack: bool,
    pub store: Options,
}

impl WriterOptions {
    pub fn new(node: &str) -> WriterOptions {
        WriterOptions {
            node: node.to_owned(),
            lease_ttl_s: 5,
            acquire_wait: Duration::from_secs(30),
            log_before_ack: true,
            store: Options::default(),
        }
    }
}

/// What a take-over found.
#[derive(Clone, Debug, Default)]
pub struct TakeOver {
    pub epoch: u64,
    /// The manifest it started from.
    pub from: Option<String>,
    pub segments_fetched: usize,
    /// Log objects after that manifest, replayed.
    pub logs_replayed: usize,
    /// Erasures the manifest listed as pending (begun by a writer that died before finishing
    /// them), completed before this writer acknowledges anything.
    pub erasures_completed: usize,
    /// The bucket's versioning, read before the lease was asked for.
    pub versioning: Versioning,
    /// On a bucket that keeps versions: the noncurrent versions and delete markers of the
    /// shard's objects deleted before the take-over returned (what an erasure interrupted
    /// after its commit, or a completed one, left in old versions).
    pub versions_deleted: u64,
    /// Why old versions are left, when the bucket refused or kept one (an object lock, a
    /// policy without s3:DeleteObjectVersion): the take-over still succeeds (the shard keeps a
    /// writer), the error is logged, and the next erasure or take-over deletes them again.
    pub versions_left: Option<String>,
}

/// What [`ShardWriter::erase`] did.
#[derive(Clone, Debug, Default)]
pub struct Erased {
    pub points_removed: u64,
    /// Objects deleted after the commit (replaced segments, log and manifest objects).
    pub objects_deleted: u64,
    /// On a bucket that keeps versions: the noncurrent versions and delete markers of the
    /// shard's objects deleted by `versionId` afterwards.
    pub versions_deleted: u64,
}

/// Which objects a commit deletes once the pointer has moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sweep {
    /// Keep the previous version's objects for readers still opening it.
    KeepPrevious,
    /// Keep only the new version (an erasure: nothing that held the meter may remain).
    OnlyCurrent,
}

struct State {
    /// The last batch logged by this writer (its log objects are `(epoch, 1..=seq)`).
    seq: u64,
    /// The pointer this writer last committed or started from.
    pointer: Option<String>,
    version: u64,
    /// Segment file number to object key, for every segment in object storage this writer knows.
    uploaded: BTreeMap<u64, String>,
    /// Objects named by the previous version (kept one version for readers opening it).
    previous: BTreeSet<String>,
    /// Set once the lease is lost or a commit was refused: nothing more is acknowledged.
    fenced: bool,
}

/// The writer of one shard: holds the shard's etcd lease, logs every batch to object storage
/// before acknowledging it, and checkpoints segments and manifests there.
pub struct ShardWriter {
    layout: ShardLayout,
    objects: Objects,
    coord: Coordinator,
    lease: Lease,
    epoch: u64,
    options: WriterOptions,
    store: Arc<Store>,
    dir: PathBuf,
    state: tokio::sync::Mutex<State>,
}

impl ShardWriter {
    /// Takes the shard (waiting for the current writer's lease to end), rebuilds its store in
    /// `dir` (emptied first) from the current manifest, replays the log objects after it, and
    /// checkpoints them under its own epoch. Needs a multi-threaded tokio runtime.
    ///
    /// It first reads the bucket's versioning and refuses to start when it cannot (an
    /// erasure could not know whether old versions keep the bytes); a server that does not
    /// implement the request keeps no versions. On a bucket that keeps versions, every
    /// noncurrent version and delete marker under the shard's prefix is deleted before it
    /// returns (see [`ShardWriter::erase`]); one the bucket refuses or keeps is reported in
    /// [`TakeOver::versions_left`], not a failure.
    pub async fn take_over(
        coord: &Coordinator,
        objects: &Objects,
        layout: ShardLayout,
        dir: &Path,
        options: WriterOptions,
    ) -> Result<(ShardWriter, TakeOver)> {
        let versioning = objects.versioning().await.map_err(|e| match e {
            Error::S3 { what, detail } => Error::S3 {
                what: format!(
                    "shard {}: the writer does not start without the bucket's versioning: {what}",
                    layout.shard
                ),
                detail,
            },
            other => other,
        })?;
        let lease = coord.grant_lease(options.lease_ttl_s).await?;
        let epoch = coord
            .acquire(&layout, &options.node, &lease, options.acquire_wait)
            .await?;
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let pointer = coord.manifest_pointer(&layout).await?;
        let mut report = TakeOver {
            epoch,
            from: pointer.clone(),
            versioning,
            ..TakeOver::default()
        };
        let (version, wal_through, uploaded) = match &pointer {
            Some(p) => {
                let (head, man, fetched) = fetch_version(objects, &layout, p, dir).await?;
                report.segments_fetched = fetched;
                report.erasures_completed = man.pending_erasures.len();
                (head.version, head.wal_through, head.segments)
            }
            None => (0, (0, 0), BTreeMap::new()),
        };
        // Opening completes the erasures the manifest lists as pending (the engine's rule); no
        // log object after `wal_through` can hold an erased point (an erasure's intent is
        // committed at a checkpoint, and its writer acknowledges nothing until it is done).
        let store = Arc::new(Store::open(dir, options.store.clone())?);
        for (_, key) in wal_after(objects, &layout, wal_through).await? {
            replay_object(objects, &store, &key).await?;
            report.logs_replayed += 1;
        }
        let writer = ShardWriter {
            layout,
            objects: objects.clone(),
            coord: coord.clone(),
            lease,
            epoch,
            options,
            store,
            dir: dir.to_path_buf(),
            state: tokio::sync::Mutex::new(State {
                seq: 0,
                pointer,
                previous: uploaded.values().cloned().collect(),
                version,
                uploaded,
                fenced: false,
            }),
        };
        // The replayed batches are now covered under this epoch; older objects become garbage,
        // at once when an erasure was completed.
        let sweep = if report.erasures_completed > 0 {
            Sweep::OnlyCurrent
        } else {
            Sweep::KeepPrevious
        };
        {
            let mut state = writer.state.lock().await;
            writer.commit(&mut state, sweep).await?;
        }
        if versioning.keeps_versions() {
            match writer.purge_versions().await {
                Ok(deleted) => report.versions_deleted = deleted,
                Err(e) => {
                    tracing::error!(
                        shard = writer.layout.shard,
                        error = %e,
                        "old versions of the shard's objects are left in the bucket"
                    );
                    report.versions_left = Some(e.to_string());
                }
            }
        }
        Ok((writer, report))
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn shard(&self) -> u32 {
        self.layout.shard
    }

    /// Whether this writer may still acknowledge.
    pub fn holds_lease(&self) -> bool {
        self.lease.valid()
    }

    /// Logs `batch` to object storage, then to the local store; `Ok` is the acknowledgement:
    /// the log object is stored and the lease was valid when its PUT returned. An error means
    /// the batch is not acknowledged (it may still appear later: see docs/SCALE-OUT.md).
    pub async fn ingest(&self, batch: &Batch) -> Result<()> {
        let mut state = self.state.lock().await;
        self.check(&mut state)?;
        state.seq += 1;
        if self.options.log_before_ack {
            let mut log = journal::WAL.header();
            log.extend_from_slice(&wal::encode_record(state.seq, batch));
            let key = self.layout.wal_key((self.epoch, state.seq));
            self.objects.put(&key, Bytes::from(log)).await?;
        }
        let store = self.store.clone();
        tokio::task::block_in_place(|| store.ingest(batch))?;
        self.check(&mut state)
    }

    /// Refuses once the lease is not surely held; a writer refused once stays refused and
    /// stops renewing (its lease may have survived a partition, but a successor may already be
    /// waiting for it: the shard goes to a fresh take-over).
    fn check(&self, state: &mut State) -> Result<()> {
        if state.fenced || !self.lease.valid() {
            state.fenced = true;
            self.lease.abandon();
            return Err(Error::LeaseLost {
                shard: self.layout.shard,
            });
        }
        Ok(())
    }

    /// Flushes, compacts by the store's policy, uploads the segments not yet in object storage
    /// and a manifest object, then moves the shard's pointer in etcd (only while this writer
    /// holds the leader key), then deletes what no reader needs any more. Returns the new
    /// pointer value.
    pub async fn checkpoint(&self) -> Result<String> {
        let mut state = self.state.lock().await;
        self.commit(&mut state, Sweep::KeepPrevious).await
    }

    /// Erases `meter`'s curve (all of it, or `[from, to)`: the engine's `Store::erase`) from the
    /// shard, object storage included: when it returns, no object holds the erased points (no
    /// segment, log or manifest object, of this version or an older one). Nothing is
    /// acknowledged meanwhile.
    ///
    /// 1. The intent is committed: a checkpoint whose manifest lists the erasure as pending
    ///    (so a successor taking the shard over completes it before acknowledging anything);
    /// 2. the local store erases (segments rewritten without the points);
    /// 3. a commit of the rewritten segments, then every object the new version does not name
    ///    is deleted at once: the replaced segments, every log object (all are covered, and
    ///    they held the points), and the older manifest objects (the intent names the meter);
    /// 4. on a bucket that keeps versions (its versioning, read first, is Enabled or
    ///    Suspended), every noncurrent version and delete marker under the shard's prefix is
    ///    deleted by `versionId`: the old bytes of every key deleted now or by an earlier
    ///    sweep. The call fails, naming the key and why, if one is refused or still listed.
    ///
    /// A failure after step 3 leaves the points in old versions only: the next erasure or
    /// take-over of the shard deletes them.
    pub async fn erase(&self, meter: &str, range_utc: Option<(i64, i64)>) -> Result<Erased> {
        let mut state = self.state.lock().await;
        let versioning = self.objects.versioning().await?;
        self.commit_intent(&mut state, meter, range_utc).await?;
        let store = self.store.clone();
        let report = tokio::task::block_in_place(|| store.erase(meter, range_utc))?;
        let before = self.objects.traffic();
        self.commit(&mut state, Sweep::OnlyCurrent).await?;
        let objects_deleted = self.objects.traffic().since(&before).deletes;
        let versions_deleted = if versioning.keeps_versions() {
            self.purge_versions().await?
        } else {
            0
        };
        Ok(Erased {
            points_removed: report.points_removed,
            objects_deleted,
            versions_deleted,
        })
    }

    /// Step 4 of [`ShardWriter::erase`]: the noncurrent versions and delete markers deleted.
    async fn purge_versions(&self) -> Result<u64> {
        let purged = self
            .objects
            .purge_versions(&self.layout.shard_prefix())
            .await?;
        Ok(purged.versions + purged.delete_markers)
    }

    /// Step 1 of [`ShardWriter::erase`] alone: the intent is in the shard's current manifest
    /// when it returns, so the erasure is completed by this writer's `erase` with the same
    /// arguments or by the next writer's take-over (what a writer killed mid-erasure leaves).
    pub async fn begin_erase(&self, meter: &str, range_utc: Option<(i64, i64)>) -> Result<()> {
        let mut state = self.state.lock().await;
        self.commit_intent(&mut state, meter, range_utc).await
    }

    async fn commit_intent(
        &self,
        state: &mut State,
        meter: &str,
        range_utc: Option<(i64, i64)>,
    ) -> Result<()> {
        self.check(state)?;
        let store = self.store.clone();
        tokio::task::block_in_place(|| store.begin_erase(meter, range_utc))?;
        self.commit(state, Sweep::KeepPrevious).await.map(|_| ())
    }

    async fn commit(&self, state: &mut State, sweep: Sweep) -> Result<String> {
        self.check(state)?;
        let store = self.store.clone();
        let man = tokio::task::block_in_place(|| -> Result<_> {
            store.flush()?;
            store.compact_by_policy()?;
            Ok(store.committed_manifest())
        })?;
        let mut segments = BTreeMap::new();
        for entry in &man.segments {
            let key = match state.uploaded.get(&entry.file_id) {
                Some(k) => k.clone(),
                None => {
                    let path = self.dir.join(manifest::segment_file_name(entry.file_id));
                    let data = std::fs::read(&path).map_err(|source| Error::Io {
                        path: path.clone(),
                        source,
                    })?;
                    let key = self.layout.segment_key(self.epoch, entry.file_id);
                    self.objects.put(&key, Bytes::from(data)).await?;
                    state.uploaded.insert(entry.file_id, key.clone());
                    key
                }
            };
            segments.insert(entry.file_id, key);
        }
        let version = state.version + 1;
        let name = layout::manifest_name(version, self.epoch);
        let wal_through: WalPos = (self.epoch, state.seq);
        let head = ShardManifest {
            shard: self.layout.shard,
            version,
            epoch: self.epoch,
            wal_through,
            segments: segments.clone(),
        };
        let object = layout::encode_manifest_object(&head, &man.encode());
        self.objects
            .put(&self.layout.manifest_key(&name), Bytes::from(object))
            .await?;
        let moved = self
            .coord
            .commit_pointer(&self.layout, self.epoch, state.pointer.as_deref(), &name)
            .await?;
        if !moved {
            state.fenced = true;
            self.lease.abandon();
            return Err(Error::LeaseLost {
                shard: self.layout.shard,
            });
        }
        let previous_pointer = state.pointer.replace(name.clone());
        state.version = version;
        // Garbage: covered logs, and objects named by neither this version nor (unless
        // sweeping for an erasure) the previous one.
        let mut keep: BTreeSet<String> = segments.values().cloned().collect();
        keep.insert(self.layout.manifest_key(&name));
        if sweep == Sweep::KeepPrevious {
            keep.extend(state.previous.iter().cloned());
            if let Some(p) = &previous_pointer {
                keep.insert(self.layout.manifest_key(p));
            }
        }
        for key in self.objects.list(&self.layout.wal_dir()).await? {
            if layout::parse_wal_key(&key).is_some_and(|p| p <= wal_through) {
                self.objects.delete(&key).await?;
            }
        }
        for dir in [self.layout.segments_dir(), self.layout.manifests_dir()] {
            for key in self.objects.list(&dir).await? {
                if !keep.contains(&key) {
                    self.objects.delete(&key).await?;
                }
            }
        }
        state
            .uploaded
            .retain(|_, k| segments.values().any(|s| s == k));
        state.previous = segments.into_values().collect();
        Ok(name)
    }

    /// Stops as a crashed process would: no more renewals, nothing more acknowledged; the
    /// shard is free once the lease's TTL has passed.
    pub fn abandon(&self) {
        self.lease.abandon();
    }

    /// Checkpoints, then gives the shard up at once (the lease is revoked).
    pub async fn close(self) -> Result<()> {
        self.checkpoint().await?;
        self.lease.revoke().await
    }
}

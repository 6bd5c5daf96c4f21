//! Rewriting segments: compaction (merge a month's segments, newest wins), erasure (rewrite every
//! file that held the erased points) and retention (drop whole months).
//!
//! Each rewrite writes new files, commits a manifest naming them instead of their inputs, and only
//! then deletes the inputs, so a crash at any point leaves either the old or the new set live
//! (the other is garbage deleted at open). A rewrite keeps the `seq` of its newest input, which
//! keeps its order relative to the other segments of the month.
//!
//! An erasure spans several commits (the flush of the log, then each rewrite), so it is made
//! atomic by an intent: a [`PendingErase`] committed in the manifest before any file changes for
//! it, dropped by a last commit once no file holds the erased points. `Store::open` completes
//! every pending intent before returning (an erasure runs again harmlessly), so after a crash the
//! meter is untouched (the intent was not durable) or wholly erased.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::manifest::PendingErase;
use super::memtable::EraseSpec;
use super::segments::{merge_into, partition_end, SegmentFile, SegmentWriter, SPREAD};
use super::{valid_meter_id, CompactionReport, CompactorState, EraseReport, Error, Store};
use crate::Channel;

impl Store {
    /// Writes `inputs` (one month, seq order) as one new segment without what `erase` covers.
    fn rewrite(
        &self,
        inputs: &[Arc<SegmentFile>],
        erase: Option<&EraseSpec>,
    ) -> Result<(Vec<Arc<SegmentFile>>, u64), Error> {
        let seq = inputs.iter().map(|s| s.entry.seq).max().unwrap_or(0);
        // The inputs name only registers of the table, which only grows.
        let registers = self.version.read().registers.clone();
        let mut writer = SegmentWriter::new(
            &*self.fs,
            &self.dir,
            Some(seq),
            &self.next_seq,
            &self.next_file_id,
            &registers,
        )
        .with_spread(self.options.spread_encoding.then_some(SPREAD));
        let erased = merge_into(inputs, erase, &mut writer)?;
        let mut out = Vec::new();
        for w in writer.finish()? {
            out.push(Arc::new(SegmentFile::open(
                &*self.fs, &self.dir, w.entry, &registers,
            )?));
        }
        Ok((out, erased))
    }

    /// Merges the segments of each time partition into one, dropping replaced values; a
    /// partition whose segment was written in an older format version is rewritten too, so a
    /// store moves to the current format by compacting.
    pub fn compact(&self) -> Result<(), Error> {
        let _m = self.maintenance.lock();
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let version = self.version.read().clone();
        let mut by_partition: BTreeMap<u32, Vec<Arc<SegmentFile>>> = BTreeMap::new();
        for s in &version.segments {
            by_partition
                .entry(s.entry.partition)
                .or_default()
                .push(s.clone());
        }
        let current = storage_format::segment::FORMAT_VERSION;
        let stale: Vec<Vec<Arc<SegmentFile>>> = by_partition
            .into_values()
            .filter(|v| v.len() >= 2 || v.iter().any(|s| s.segment().version() < current))
            .collect();
        self.merge_groups(stale).map(|_| ())
    }

    /// Rewrites each group (the segments of one partition, seq order) as one segment, the
    /// groups in parallel on rayon's pool, then commits them all in one manifest and deletes
    /// the inputs. The caller holds `maintenance`. A failure poisons the store, like a failed
    /// flush: reads go on, writes are refused until reopened.
    fn merge_groups(&self, groups: Vec<Vec<Arc<SegmentFile>>>) -> Result<CompactionReport, Error> {
        use rayon::prelude::*;
        if groups.is_empty() {
            return Ok(CompactionReport::default());
        }
        let result = groups
            .par_iter()
            .map(|inputs| self.rewrite(inputs, None).map(|(out, _)| out))
            .collect::<Result<Vec<_>, Error>>()
            .and_then(|outputs| {
                let inputs: Vec<Arc<SegmentFile>> = groups.iter().flatten().cloned().collect();
                let outputs: Vec<Arc<SegmentFile>> = outputs.into_iter().flatten().collect();
                let report = CompactionReport {
                    merges: groups.len() as u64,
                    segments_read: inputs.len() as u64,
                    bytes_read: inputs.iter().map(|s| s.entry.len).sum(),
                    bytes_written: outputs.iter().map(|s| s.entry.len).sum(),
                };
                self.commit(&inputs, outputs, 0, None, None)?;
                self.remove_segments(&inputs)?;
                Ok(report)
            });
        if result.is_err() {
            self.wal.poison();
        }
        result
    }

    /// Merges, in each partition, the segments [`CompactionPolicy`] (`Options::compaction`)
    /// selects; what the background compactor runs after each flush, and `courbe ingest` at
    /// its end. Does nothing when no partition needs it.
    pub fn compact_by_policy(&self) -> Result<CompactionReport, Error> {
        let _m = self.maintenance.lock();
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let newest = self.manifest.lock().newest_ts;
        let version = self.version.read().clone();
        let mut by_partition: BTreeMap<u32, Vec<Arc<SegmentFile>>> = BTreeMap::new();
        for s in &version.segments {
            by_partition
                .entry(s.entry.partition)
                .or_default()
                .push(s.clone());
        }
        let policy = self.options.compaction;
        let groups: Vec<Vec<Arc<SegmentFile>>> = by_partition
            .into_iter()
            .filter_map(|(p, segs)| {
                let closed = newest != i64::MIN
                    && partition_end(p).saturating_add(policy.closed_after_s) <= newest;
                let (ratio, min_merge) = if closed {
                    (policy.closed_ratio_percent, policy.closed_min_merge)
                } else {
                    (policy.ratio_percent, policy.min_merge)
                };
                let k = tier_take(&segs, ratio);
                (k >= min_merge.max(2)).then(|| segs[segs.len() - k..].to_vec())
            })
            .collect();
        self.merge_groups(groups)
    }

    /// Starts the background compactor when `Options::background_compaction` is set: a thread
    /// that runs [`Store::compact_by_policy`] once at start and after every flush, holding the
    /// store only while it runs (it ends when the store is dropped). A failure (which poisons
    /// the store) is logged, kept in [`Store::compactor_state`], and ends the thread.
    pub fn start_compactor(self: &Arc<Self>) -> Option<std::thread::JoinHandle<()>> {
        if !self.options.background_compaction {
            return None;
        }
        let store = Arc::downgrade(self);
        let signal = self.signal.clone();
        std::thread::Builder::new()
            .name("courbe-compactor".into())
            .spawn(move || {
                let mut seen = None;
                loop {
                    {
                        let mut flushes = signal.flushes.lock();
                        while seen == Some(*flushes)
                            && !signal.closing.load(std::sync::atomic::Ordering::SeqCst)
                        {
                            signal.cond.wait(&mut flushes);
                        }
                        if signal.closing.load(std::sync::atomic::Ordering::SeqCst) {
                            return;
                        }
                        seen = Some(*flushes);
                    }
                    let Some(store) = store.upgrade() else {
                        return;
                    };
                    let outcome = store.compact_by_policy();
                    let mut state = store.compactor.lock();
                    state.runs += 1;
                    state.flushes_seen = seen.unwrap_or(0);
                    match outcome {
                        Ok(r) => {
                            state.totals.merges += r.merges;
                            state.totals.segments_read += r.segments_read;
                            state.totals.bytes_read += r.bytes_read;
                            state.totals.bytes_written += r.bytes_written;
                        }
                        Err(e) => {
                            tracing::error!("background compaction failed: {e}");
                            state.last_error = Some(e.to_string());
                            return;
                        }
                    }
                }
            })
            .ok()
    }

    /// The background compactor's runs, totals and last failure.
    pub fn compactor_state(&self) -> CompactorState {
        self.compactor.lock().clone()
    }

    /// The live segments of each time partition (months since 1970-01 in Europe/Paris), for
    /// reports and tests: `(partition, segments, bytes)`.
    pub fn partition_segments(&self) -> Vec<(u32, usize, u64)> {
        let version = self.version.read().clone();
        let mut by: BTreeMap<u32, (usize, u64)> = BTreeMap::new();
        for s in &version.segments {
            let e = by.entry(s.entry.partition).or_default();
            e.0 += 1;
            e.1 += s.entry.len;
        }
        by.into_iter().map(|(p, (n, b))| (p, n, b)).collect()
    }

    /// Flushes completed since the store was opened.
    pub fn flush_count(&self) -> u64 {
        *self.signal.flushes.lock()
    }

    /// Drops time partitions older than `Options::retention_days` before the newest point.
    pub fn apply_retention(&self) -> Result<(), Error> {
        let Some(days) = self.options.retention_days else {
            return Ok(());
        };
        let _m = self.maintenance.lock();
        {
            let _gate = self.gate.write();
            self.flush_locked(None)?;
        }
        let newest = self.manifest.lock().newest_ts;
        if newest == i64::MIN {
            return Ok(());
        }
        let cutoff = newest.saturating_sub(i64::from(days) * 86_400);
        let version = self.version.read().clone();
        let old: Vec<Arc<SegmentFile>> = version
            .segments
            .iter()
            .filter(|s| partition_end(s.entry.partition) <= cutoff)
            .cloned()
            .collect();
        if old.is_empty() {
            return Ok(());
        }
        self.commit(&old, Vec::new(), 0, None, None)?;
        self.remove_segments(&old)
    }

    /// Erases `meter`'s curve (`consumption` and `production`; daily energy, indexes and
    /// `max_power` are the daily data every meter sends and stay), all of it or
    /// `[from_utc, to_utc)`: invisible at once, physically gone from every file when it returns.
    ///
    /// Commits the intent first ([`Store::begin_erase`], nothing more when it is already
    /// pending), then holds every writer out; flushes the memtable without the erased points
    /// (which rolls the log and deletes the logs that held them), rewrites every segment
    /// holding them, commits the manifest, deletes the replaced files and any garbage, syncs the
    /// directory, and commits the manifest without the intent.
    pub fn erase(&self, meter: &str, range_utc: Option<(i64, i64)>) -> Result<EraseReport, Error> {
        check_erase(meter, range_utc)?;
        let intent = PendingErase::new(meter, range_utc);
        let _m = self.maintenance.lock();
        self.record_intent(&intent)?;
        let done = self
            .erase_locked(&intent)
            .and_then(|report| self.forget_intent(&intent).map(|()| report));
        if done.is_err() {
            self.erase_unfinished
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        done
    }

    /// Makes the intent to erase (as [`Store::erase`] would) durable and returns: from now on
    /// a crash, or a failure of the erasure itself, leaves the erasure to be completed when the
    /// store is next opened (a failed erasure also makes the store refuse writes until then).
    /// [`Store::erase`] with the same arguments completes it. Nothing changes in what reads see
    /// until then.
    pub fn begin_erase(&self, meter: &str, range_utc: Option<(i64, i64)>) -> Result<(), Error> {
        check_erase(meter, range_utc)?;
        let _m = self.maintenance.lock();
        self.record_intent(&PendingErase::new(meter, range_utc))
    }

    /// Completes every erasure the manifest lists as pending (at open).
    pub(super) fn resume_erasures(&self) -> Result<(), Error> {
        let _m = self.maintenance.lock();
        let pending = self.manifest.lock().pending_erasures.clone();
        for intent in &pending {
            self.erase_locked(intent)?;
            self.forget_intent(intent)?;
        }
        Ok(())
    }

    /// Commits a manifest listing `intent` among the pending erasures (once).
    fn record_intent(&self, intent: &PendingErase) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let mut man = self.manifest.lock();
        if man.pending_erasures.contains(intent) {
            return Ok(());
        }
        let mut next = man.clone();
        next.pending_erasures.push(intent.clone());
        next.commit(&*self.fs, &self.dir)?;
        *man = next;
        Ok(())
    }

    /// Commits a manifest without `intent`: its erasure is complete.
    fn forget_intent(&self, intent: &PendingErase) -> Result<(), Error> {
        let mut man = self.manifest.lock();
        let mut next = man.clone();
        next.pending_erasures.retain(|e| e != intent);
        next.commit(&*self.fs, &self.dir)?;
        *man = next;
        Ok(())
    }

    /// The erasure itself, without its intent; the caller holds `maintenance`. Running it
    /// again after it completed (or after a crash in the middle) changes nothing more.
    fn erase_locked(&self, intent: &PendingErase) -> Result<EraseReport, Error> {
        let meter = intent.meter.as_str();
        let spec = EraseSpec {
            meter: intent.meter.clone(),
            range_utc: intent.range_utc(),
        };
        let _gate = self.gate.write();
        let (from, to) = (intent.from_utc, intent.to_utc);
        let before = self.snapshot();
        // The curve (consumption, production): what consent governs. Daily energy, indexes and
        // maximum power are the daily data every meter sends and the consumer is shown
        // without curve consent (D.224-26); they stay.
        let channels: Vec<Channel> = before
            .channels_of(meter)?
            .into_iter()
            .filter(|&c| c.is_curve())
            .collect();
        let mut removed = 0u64;
        for &c in &channels {
            removed += before.points(meter, c, from, to)?.len() as u64;
        }
        drop(before);
        self.flush_locked(Some(&spec))?;

        let version = self.version.read().clone();
        let mut affected = Vec::new();
        for s in &version.segments {
            let seg = s.segment();
            let mut holds = false;
            for &c in &channels {
                let blocks = seg
                    .blocks(meter, c)
                    .map_err(|e| super::segments::corruption(&s.path, e))?;
                holds |= blocks
                    .iter()
                    .any(|b| b.summary.first_ts < to && b.summary.last_ts >= from);
            }
            if holds {
                affected.push(s.clone());
            }
        }
        let mut outputs = Vec::new();
        for s in &affected {
            let (out, _) = self.rewrite(std::slice::from_ref(s), Some(&spec))?;
            outputs.extend(out);
        }
        if !affected.is_empty() {
            self.commit(&affected, outputs, 0, None, None)?;
            self.remove_segments(&affected)?;
        }
        self.remove_garbage()?;
        Ok(EraseReport {
            points_removed: removed,
        })
    }

    /// Deletes every file of the data directory that the manifest does not need.
    fn remove_garbage(&self) -> Result<(), Error> {
        let man = self.manifest.lock().clone();
        let names = self
            .fs
            .list_dir(&self.dir)
            .map_err(super::io_err(&self.dir))?;
        let current = self.wal.generation();
        let mut removed = false;
        for name in names {
            let garbage = if let Some(g) = super::wal::parse_file_name(&name) {
                g < man.wal_generation && g != current
            } else if let Some(id) = super::manifest::parse_segment_file_name(&name)
                .or_else(|| super::bands::parse_file_name(&name))
            {
                !man.segments.iter().any(|s| s.file_id == id)
            } else {
                name.ends_with(".tmp")
            };
            if garbage {
                let path = self.dir.join(&name);
                self.fs.remove(&path).map_err(super::io_err(&path))?;
                removed = true;
            }
        }
        if removed {
            self.fs
                .sync_dir(&self.dir)
                .map_err(super::io_err(&self.dir))?;
        }
        Ok(())
    }
}

/// How many of `segs` (one partition, seq order) the tiered rule takes from the newest: each
/// next older segment while its bytes are at most `ratio_percent` percent of the bytes taken,
/// the first step at most [`FIRST_STEP_PERCENT`].
fn tier_take(segs: &[Arc<SegmentFile>], ratio_percent: u64) -> usize {
    tier_take_lens(segs.iter().map(|s| s.entry.len), ratio_percent)
}

/// The first step of the tiered rule (the second-newest segment against the newest) takes a
/// segment up to twice the newest: a feed's last flush of a round (the rest of a day's batch
/// after full memtables) is smaller than the full ones, and at `ratio_percent` alone it would
/// stop every run at the newest segment, so that a month being fed never merged until closed.
pub(crate) const FIRST_STEP_PERCENT: u64 = 200;

fn tier_take_lens(lens: impl DoubleEndedIterator<Item = u64>, ratio_percent: u64) -> usize {
    let mut taken = 0u64;
    let mut k = 0;
    for len in lens.rev() {
        let percent = if k == 1 {
            ratio_percent.max(FIRST_STEP_PERCENT)
        } else {
            ratio_percent
        };
        if k > 0 && u128::from(len) * 100 > u128::from(percent) * u128::from(taken) {
            break;
        }
        taken += len;
        k += 1;
    }
    k
}

/// The arguments of an erasure: a meter id and a non-empty range.
fn check_erase(meter: &str, range_utc: Option<(i64, i64)>) -> Result<(), Error> {
    if !valid_meter_id(meter) {
        return Err(Error::InvalidArgument(format!("meter id {meter:?}")));
    }
    if let Some((from, to)) = range_utc {
        if from >= to {
            return Err(Error::InvalidArgument(format!(
                "erase range [{from}, {to}) is empty"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tier_tests {
    use super::tier_take_lens;

    #[test]
    fn a_round_of_full_flushes_ending_with_a_smaller_one_merges() {
        // Five full memtables and the day's rest, oldest first: the rest is newest.
        let day = [8_000u64, 8_000, 8_000, 8_000, 8_000, 6_500];
        assert_eq!(tier_take_lens(day.into_iter(), 110), 6);
        // The next day's round merges with it once the two are of a size.
        let two = [47_000u64, 8_000, 8_000, 8_000, 8_000, 8_000, 6_500];
        assert_eq!(tier_take_lens(two.into_iter(), 110), 7);
    }

    #[test]
    fn a_small_newest_segment_does_not_pull_a_much_larger_one() {
        assert_eq!(tier_take_lens([1_000_000u64, 1_000].into_iter(), 110), 1);
        assert_eq!(tier_take_lens([3_000u64, 1_000].into_iter(), 110), 1);
        assert_eq!(tier_take_lens([2_000u64, 1_000].into_iter(), 110), 2);
        // After the first step, the ratio is the policy's.
        assert_eq!(tier_take_lens([2_500u64, 1_000, 1_000].into_iter(), 110), 2);
        assert_eq!(tier_take_lens([2_200u64, 1_000, 1_000].into_iter(), 110), 3);
    }
}

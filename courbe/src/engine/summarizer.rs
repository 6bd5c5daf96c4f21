//! The background builder of clock-band summaries (`bands.rs`), `Options::background_summaries`.
//!
//! One thread, started by `Store::open` and joined when the store is dropped, at a lower
//! scheduling priority (nice 10 on Linux). At open and after every commit that adds segments
//! (flush, compaction, erasure), it goes through the live segments, newest month first, and
//! makes sure each has a summary file that reads back whole, building it from the segment's
//! blocks when not ([`SegmentFile::ensure_bands_file`]). It takes no store lock: it copies the
//! list of live segments (not the version, so no memtable is kept alive by it), and a segment
//! removed meanwhile is left (its file is never written after its removal, `segments.rs`). It
//! looks at the store's end and at its segment's removal between series, and at newer commits
//! between segments (a new pass then starts on the newer list; finished files are skipped).
//!
//! A question does not wait for the builder: the summaries it needs are read, or built by the
//! question itself, under the segment's one-builder lock, so a question that arrives during a
//! build waits for that segment's file and reads it; both give the same summaries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::fs::FileSystem;
use super::segments::{BandsFile, SegmentFile};
use super::snapshot::Version;

/// Passes asked for and done, shared by the store, its commits and the builder thread.
#[derive(Default)]
pub(crate) struct Summaries {
    state: parking_lot::Mutex<State>,
    cond: parking_lot::Condvar,
    closing: AtomicBool,
}

#[derive(Default)]
struct State {
    running: bool,
    /// Commits that added segments since open (plus the pass at open).
    wanted: u64,
    /// The `wanted` count the last finished pass covered.
    done: u64,
    /// Summary files built and written.
    built: u64,
}

impl Summaries {
    /// A commit installed a version with new segments.
    pub(crate) fn segments_added(&self) {
        let mut st = self.state.lock();
        if st.running {
            st.wanted += 1;
            self.cond.notify_all();
        }
    }

    /// Waits until a pass has covered every commit made before the call; at once when no
    /// builder runs or the store is closing.
    pub(crate) fn wait_caught_up(&self) {
        let mut st = self.state.lock();
        let target = st.wanted;
        while st.running && st.done < target && !self.closing.load(Ordering::SeqCst) {
            self.cond.wait(&mut st);
        }
    }

    /// Summary files the builder has written since open.
    pub(crate) fn built(&self) -> u64 {
        self.state.lock().built
    }

    /// The store is being dropped: the builder stops at its next look.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        let _st = self.state.lock();
        self.cond.notify_all();
    }

    fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }
}

/// Starts the builder over the store's `version` (a first pass at once).
pub(crate) fn spawn(
    version: Arc<parking_lot::RwLock<Arc<Version>>>,
    fs: Arc<dyn FileSystem>,
    signal: Arc<Summaries>,
) -> Option<std::thread::JoinHandle<()>> {
    {
        let mut st = signal.state.lock();
        st.running = true;
        st.wanted += 1;
    }
    let thread_signal = signal.clone();
    let spawned = std::thread::Builder::new()
        .name("courbe-summaries".into())
        .spawn(move || run(&version, &*fs, &thread_signal));
    if spawned.is_err() {
        // No thread to be had: questions build what they need, as without the option.
        signal.state.lock().running = false;
    }
    spawned.ok()
}

fn run(version: &parking_lot::RwLock<Arc<Version>>, fs: &dyn FileSystem, signal: &Summaries) {
    lower_priority();
    loop {
        let target = {
            let mut st = signal.state.lock();
            while st.done >= st.wanted && !signal.closing() {
                signal.cond.wait(&mut st);
            }
            if signal.closing() {
                return;
            }
            st.wanted
        };
        let mut segments: Vec<Arc<SegmentFile>> = version.read().segments.clone();
        segments.sort_by_key(|s| std::cmp::Reverse((s.entry.partition, s.entry.seq)));
        let stop = || signal.closing();
        let mut whole = true;
        for seg in &segments {
            if signal.closing() {
                return;
            }
            if signal.state.lock().wanted > target {
                whole = false;
                break;
            }
            match seg.ensure_bands_file(fs, &stop) {
                Ok(BandsFile::Built) => signal.state.lock().built += 1,
                Ok(BandsFile::Present | BandsFile::Stopped) => {}
                // The segment's own damage: a question on it reports it.
                Err(e) => tracing::warn!(
                    path = %seg.path.display(),
                    error = %e,
                    "clock-band summaries not built"
                ),
            }
        }
        drop(segments);
        if whole {
            let mut st = signal.state.lock();
            st.done = st.done.max(target);
            signal.cond.notify_all();
        }
    }
}

/// Derived work yields to ingest and questions: nice 10 for this thread (Linux threads have
/// their own nice value). Elsewhere, nothing.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on this thread's own id, no memory handed over.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        if let Ok(tid) = libc::id_t::try_from(tid) {
            // SAFETY: as above; a failure leaves the priority as it was.
            let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, 10) };
        }
    }
}

//! Courbe: a storage engine and server for electricity load curves.
//!
//! Map of the crate (see ARCHITECTURE.md):
//! - [`engine`]: the durable store: write-ahead log, memtable, segments, compaction, erasure.
//! - [`source`]: the read interface between the engine and the queries.
//! - [`query`]: curve, calendar energy with tariffs, peak power, fleet sums.
//! - [`bench`]: the load generator of `courbe bench`, against a running server.
//! - [`journal`]: the framed append-only files of the log and the registries, group commit.
//! - [`governance`]: consent, access control, grants, anonymised aggregates, export, audit.

pub mod bench;
mod civil;
pub mod cli;
pub mod engine;
pub mod governance;
pub mod http;
pub mod ingest;
pub mod journal;
pub mod query;
pub mod source;

pub use storage_format::{BlockSummary, Channel, Point, Quality};

/// A generated reading (`courbe-workload`) as an engine point: what `courbe gen`, the demo, the
/// benches and the tests ingest.
pub fn point_of(r: &courbe_workload::Reading) -> Point {
    Point {
        ts_utc: r.ts_utc,
        value: r.value,
        step_min: r.step_min,
        quality: Quality::from_u8(r.quality).unwrap_or(Quality::Estimated),
    }
}

/// The README's example, compiled as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

//! Courbe: a storage engine for electricity load curves, its queries and its data-governance
//! rules. No web server, no command line: those are the `courbe-server` package's.
//!
//! Map of the crate (see ARCHITECTURE.md):
//! - [`engine`]: the durable store: write-ahead log, memtable, segments, compaction, erasure.
//! - [`source`]: the read interface between the engine and the queries.
//! - [`query`]: curve, calendar energy with tariffs, peak power, fleet sums.
//! - [`ingest`]: the parsers of Enedis files and of the generic CSV.
//! - [`journal`]: the framed append-only files of the log and the registries, group commit.
//! - [`governance`]: consent, access control, grants, anonymised aggregates, export, audit.
//! - [`question`]: the questions a client asks (text parameters read into typed values) and
//!   their answers as domain values.
//! - [`error`]: the error codes of the product surface, to which every failure is classified.

/// Civil dates as day numbers: the workspace's one implementation, in the workload crate (which
/// the generator needs without this library).
pub use courbe_workload::civil;
pub mod engine;
pub mod error;
pub mod governance;
pub mod ingest;
pub mod journal;
pub mod query;
pub mod question;
pub mod source;
pub mod zone;

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
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

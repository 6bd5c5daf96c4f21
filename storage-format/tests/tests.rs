//! Integration tests of the format through its public API: one binary, a module per area.

/// The fuzz targets' drivers, shared with the `fuzz/` crate.
#[path = "../../fuzz/src/lib.rs"]
mod fuzz_drivers;

mod fuzz_corpus;
mod golden;
mod index_v2;
mod index_v3;
mod roundtrip;
mod segment;
mod util;

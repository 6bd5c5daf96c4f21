//! Integration tests of the format through its public API: one binary, a module per area.

mod fuzz_corpus;
mod roundtrip;
mod segment;
mod util;

//! The one integration-test binary: modules per area, helpers in `util`.

mod bench;
mod engine;
mod governance;
mod ingest;
mod query;
mod surface;
mod util;

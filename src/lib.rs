//! Courbe's server: the HTTP API, the command line, the load generator, over the `courbe` library.
//!
//! Map of the crate (see ARCHITECTURE.md):
//! - [`http`]: the `/v1` API (axum), its limits, its refusals, its metrics.
//! - [`governance`]: the `/v1` endpoints of the governance rules, the access guard, the
//!   governance commands of the command line.
//! - [`cli`]: the `courbe` command line.
//! - [`bench`]: the load generator of `courbe bench`, against a running server.
//!
//! The library's modules are re-exported at the root (`courbe_server::engine` is
//! `courbe::engine`), so that the server's code names them as `crate::engine`, `crate::query`...

pub use courbe::*;

pub mod bench;
pub mod cli;
pub mod governance;
pub mod http;

//! The server side of data governance: the `/v1` endpoints of the rules of
//! [`courbe::governance`] (re-exported here), the export of a meter in open formats, the
//! access-control middleware, and the commands of the command line.

pub use courbe::governance::*;

pub mod bodies;
mod calendars_http;
pub mod cli;
pub mod export;
pub mod http;
pub mod prices_http;

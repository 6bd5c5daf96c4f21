//! Integration tests: governance (consent, access control, grants, aggregates, export).

mod access;
mod aggregates;
mod audit;
mod calendars;
mod consent;
mod export;
mod kinds;
mod prices;
mod redteam;
pub(crate) mod support;

//! Integration tests: governance (consent, access control, grants, aggregates, export).

mod access;
mod consent;
mod support;

//! Integration tests: surface (the `courbe` binary and the HTTP API).

mod arrow;
mod cli;
mod cost;
mod daily;
mod dataconnect;
mod embed;
mod fuzzed;
mod http;
mod live;
mod openapi;
mod robust;
mod routes;
mod same_answers;
mod support;

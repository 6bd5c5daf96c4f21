//! Integration tests: query. A naive reference computes every answer from the raw points of a
//! model; the engine's query functions must agree from every test source.

mod cost;
mod daily;
mod errors;
mod hand_checked;
mod model;
mod properties;
mod reference;
mod rollups;
mod sources;
mod spot;
mod store;
mod summaries;
mod tariffs;

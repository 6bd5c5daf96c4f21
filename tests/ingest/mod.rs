//! Enedis flows as ingest formats: R151, the SGE export's daily variants, Data Connect JSON.

mod dataconnect;
mod r151;
mod sge;
mod store;
mod support;

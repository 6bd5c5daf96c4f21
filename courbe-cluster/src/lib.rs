//! Scale-out of Courbe on existing infrastructure (docs/SCALE-OUT.md): each shard has one writer
//! holding an etcd lease ([`ShardWriter`]), which logs every batch to an S3-compatible object
//! store before acknowledging it and ships its segments and manifest there at each checkpoint;
//! any node rebuilds a shard's store from object storage ([`restore`]) and answers its questions
//! with the single-node code. The single-node store is unchanged: a node runs an ordinary
//! [`courbe::engine::Store`] in a local directory.

pub mod coord;
pub mod fanout;
pub mod fleet;
pub mod layout;
pub mod objects;
pub mod ranged;
pub mod reader;
pub mod registry;
pub mod shard;
pub mod versions;
pub mod wire;
pub mod writer;

pub use coord::{Coordinator, Lease};
pub use fanout::{ReaderNode, Router, Secret};
pub use fleet::ShardedSource;
pub use objects::Objects;
pub use ranged::{BlockCache, CacheOptions, RangedReader};
pub use reader::{restore, Restored};
pub use registry::{register, Registered, Registration};
pub use shard::shard_of;
pub use versions::Versioning;
pub use writer::{Erased, ShardWriter, WriterOptions};

/// A failure of a cluster operation.
#[derive(Debug)]
pub enum Error {
    /// The local store refused or failed.
    Store(courbe::engine::Error),
    /// The object store failed (the request named).
    Objects {
        what: String,
        source: object_store::Error,
    },
    /// An S3 request `object_store` does not make (the bucket's versions) failed: the request
    /// named, and why (the status and the server's error code and message).
    S3 { what: String, detail: String },
    /// etcd failed or could not be reached.
    Etcd {
        what: String,
        source: etcd_client::Error,
    },
    /// This writer no longer holds the shard's lease (expired, unreachable etcd, or another
    /// writer took the shard): it acknowledges nothing more.
    LeaseLost { shard: u32 },
    /// Bytes read from object storage or etcd are not what this build writes.
    Corrupt { what: String, detail: String },
    /// A local file could not be read or written.
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A bad argument, named.
    Invalid(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Store(e) => write!(f, "local store: {e}"),
            Error::Objects { what, source } => write!(f, "object store, {what}: {source}"),
            Error::S3 { what, detail } => write!(f, "object store, {what}: {detail}"),
            Error::Etcd { what, source } => write!(f, "etcd, {what}: {source}"),
            Error::LeaseLost { shard } => write!(
                f,
                "shard {shard}: this writer no longer holds the shard's lease; nothing more is acknowledged"
            ),
            Error::Corrupt { what, detail } => write!(f, "{what}: {detail}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Invalid(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Store(e) => Some(e),
            Error::Objects { source, .. } => Some(source),
            Error::Etcd { source, .. } => Some(source),
            Error::Io { source, .. } => Some(source),
            Error::S3 { .. }
            | Error::LeaseLost { .. }
            | Error::Corrupt { .. }
            | Error::Invalid(_) => None,
        }
    }
}

impl From<courbe::engine::Error> for Error {
    fn from(e: courbe::engine::Error) -> Error {
        Error::Store(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

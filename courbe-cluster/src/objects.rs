//! The object store a cluster uses (S3 API through `object_store`), counting its requests and
//! bytes so that the cost of each operation can be reported.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::versions::{Purged, S3Api, Versioning};
use crate::{Error, Result};

/// Requests made and bytes moved so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub puts: u64,
    pub gets: u64,
    pub lists: u64,
    pub deletes: u64,
    pub bytes_put: u64,
    pub bytes_got: u64,
}

impl Traffic {
    pub fn requests(&self) -> u64 {
        self.puts + self.gets + self.lists + self.deletes
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        Traffic {
            puts: self.puts - earlier.puts,
            gets: self.gets - earlier.gets,
            lists: self.lists - earlier.lists,
            deletes: self.deletes - earlier.deletes,
            bytes_put: self.bytes_put - earlier.bytes_put,
            bytes_got: self.bytes_got - earlier.bytes_got,
        }
    }
}

#[derive(Default)]
struct Counters {
    puts: AtomicU64,
    gets: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
    bytes_put: AtomicU64,
    bytes_got: AtomicU64,
}

/// A shared handle on the object store. Cloning shares the counters.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    counters: Arc<Counters>,
    /// The bucket-level requests `object_store` does not make (versions); `None` for a store
    /// given to [`Objects::new`], taken to keep no versions.
    s3: Option<Arc<S3Api>>,
}

/// Where an S3-compatible store is and how to sign for it.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// `https://host[:port]`, or `http://` with `allow_http` (a loopback test server).
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// Whether plain HTTP is accepted: requests and keys then travel unencrypted.
    pub allow_http: bool,
}

impl Objects {
    /// Any `object_store` store; it is taken to keep no versions (a local or in-memory one).
    pub fn new(store: Arc<dyn ObjectStore>) -> Objects {
        Objects {
            store,
            counters: Arc::default(),
            s3: None,
        }
    }

    /// An S3-compatible store, path-style requests.
    pub fn s3(config: &S3Config) -> Result<Objects> {
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&config.endpoint)
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key)
            .with_secret_access_key(&config.secret_key)
            .with_allow_http(config.allow_http)
            .with_virtual_hosted_style_request(false)
            .build()
            .map_err(|source| Error::Objects {
                what: format!("configuring {}", config.endpoint),
                source,
            })?;
        Ok(Objects {
            s3: Some(Arc::new(S3Api::new(config)?)),
            ..Objects::new(Arc::new(store))
        })
    }

    pub fn traffic(&self) -> Traffic {
        let c = &self.counters;
        Traffic {
            puts: c.puts.load(Ordering::Relaxed),
            gets: c.gets.load(Ordering::Relaxed),
            lists: c.lists.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            bytes_put: c.bytes_put.load(Ordering::Relaxed),
            bytes_got: c.bytes_got.load(Ordering::Relaxed),
        }
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        let len = bytes.len() as u64;
        self.store
            .put(&Path::from(key), PutPayload::from(bytes))
            .await
            .map_err(|source| Error::Objects {
                what: format!("PUT {key}"),
                source,
            })?;
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_put.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let what = || format!("GET {key}");
        let got = self
            .store
            .get(&Path::from(key))
            .await
            .map_err(|source| Error::Objects {
                what: what(),
                source,
            })?;
        let bytes = got.bytes().await.map_err(|source| Error::Objects {
            what: what(),
            source,
        })?;
        self.counted_get(&bytes);
        Ok(bytes)
    }

    /// One GET answered with `bytes`, in the traffic counters.
    fn counted_get(&self, bytes: &Bytes) {
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_got
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }

    /// Bytes `range` of the object `key` (one ranged GET).
    pub async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        let bytes = self
            .store
            .get_range(&Path::from(key), range.clone())
            .await
            .map_err(|source| Error::Objects {
                what: format!("GET {key} bytes {range:?}"),
                source,
            })?;
        self.counted_get(&bytes);
        Ok(bytes)
    }

    /// The keys under `prefix` (a folder: `prefix/...`), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let metas: Vec<_> = self
            .store
            .list(Some(&Path::from(prefix)))
            .try_collect()
            .await
            .map_err(|source| Error::Objects {
                what: format!("LIST {prefix}"),
                source,
            })?;
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        let mut keys: Vec<String> = metas.into_iter().map(|m| m.location.to_string()).collect();
        keys.sort();
        Ok(keys)
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                self.counters.deletes.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(source) => Err(Error::Objects {
                what: format!("DELETE {key}"),
                source,
            }),
        }
    }

    /// The bucket's versioning (GetBucketVersioning; one GET in the counters). A store made by
    /// [`Objects::new`] answers [`Versioning::Never`].
    pub async fn versioning(&self) -> Result<Versioning> {
        let Some(s3) = &self.s3 else {
            return Ok(Versioning::Never);
        };
        let v = s3.versioning().await;
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        v
    }

    /// Deletes, by `versionId`, every noncurrent version and every delete marker whose key
    /// starts with `prefix` (ListObjectVersions, paged; the noncurrent versions first, so that
    /// removing a marker never makes old bytes current again), then lists again: `Ok` only
    /// when none is left; otherwise an error naming a key and why (the server's refusal, or
    /// a version still listed after a successful DELETE). The current version of a live
    /// object is kept. Pages count as LISTs and version deletions as DELETEs.
    pub async fn purge_versions(&self, prefix: &str) -> Result<Purged> {
        let Some(s3) = &self.s3 else {
            return Ok(Purged::default());
        };
        let mut purged = Purged::default();
        let (listed, pages) = s3.list_versions(prefix).await?;
        purged.pages += pages;
        self.counters.lists.fetch_add(pages, Ordering::Relaxed);
        let (markers, versions): (Vec<_>, Vec<_>) = listed
            .into_iter()
            .filter(|v| v.is_garbage())
            .partition(|v| v.delete_marker);
        for v in versions.iter().chain(&markers) {
            s3.delete_version(v).await?;
            self.counters.deletes.fetch_add(1, Ordering::Relaxed);
            if v.delete_marker {
                purged.delete_markers += 1;
            } else {
                purged.versions += 1;
            }
        }
        let (left, pages) = s3.list_versions(prefix).await?;
        purged.pages += pages;
        self.counters.lists.fetch_add(pages, Ordering::Relaxed);
        let left: Vec<_> = left.into_iter().filter(|v| v.is_garbage()).collect();
        if let Some(v) = left.first() {
            return Err(Error::S3 {
                what: format!("DeleteObject {} versionId {}", v.key, v.version_id),
                detail: format!(
                    "the {} is still listed after its deletion was answered with success \
                     ({} noncurrent versions or delete markers left under {prefix})",
                    if v.delete_marker {
                        "delete marker"
                    } else {
                        "version"
                    },
                    left.len()
                ),
            });
        }
        Ok(purged)
    }
}

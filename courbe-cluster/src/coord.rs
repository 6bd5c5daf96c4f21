//! etcd: the shard map, each shard's leader key held under a lease, and the manifest pointer
//! moved by compare-and-swap (docs/SCALE-OUT.md, "Keys in etcd").

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp};

use crate::layout::ShardLayout;
use crate::{Error, Result};

fn etcd(what: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> Error {
    let what = what.into();
    move |source| Error::Etcd { what, source }
}

/// A connection to etcd under a key prefix. Cloning shares the connection.
#[derive(Clone)]
pub struct Coordinator {
    client: Client,
    prefix: String,
}

impl Coordinator {
    /// Connects to the first reachable endpoint (`http://host:port`), with a bound on every
    /// request so that an unreachable etcd is an error, not a wait.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<Coordinator> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(2));
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(etcd(format!("connecting to {endpoints:?}")))?;
        Ok(Coordinator {
            client,
            prefix: format!("{}/", prefix.trim_end_matches('/')),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The cluster's shard count: `proposed` if none is recorded yet (recorded now, once),
    /// else the recorded one.
    pub async fn shard_count(&self, proposed: u32) -> Result<u32> {
        let key = format!("{}shard-map", self.prefix);
        let value = format!("{{\"shards\":{proposed},\"hash\":\"fnv1a64-jump\"}}");
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), value, None)])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let resp = self
            .client
            .clone()
            .txn(txn)
            .await
            .map_err(etcd("recording the shard map"))?;
        if resp.succeeded() {
            return Ok(proposed);
        }
        let got = self.get(&key).await?.unwrap_or_default();
        #[derive(serde::Deserialize)]
        struct Map {
            shards: u32,
        }
        let map: Map = serde_json::from_slice(&got).map_err(|e| Error::Corrupt {
            what: key.clone(),
            detail: e.to_string(),
        })?;
        Ok(map.shards)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let resp = self
            .client
            .clone()
            .get(key, None)
            .await
            .map_err(etcd(format!("reading {key}")))?;
        Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// The keys under `<prefix>/<under>` and their values, in key order.
    pub async fn list(&self, under: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let key = format!("{}{under}", self.prefix);
        let resp = self
            .client
            .clone()
            .get(key.as_str(), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(etcd(format!("listing {key}")))?;
        Ok(resp
            .kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    kv.value().to_vec(),
                )
            })
            .collect())
    }

    /// Whether `key` exists now.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.get(key).await?.is_some())
    }

    /// Puts `key` under `lease`: the key goes when the lease ends.
    pub async fn put_leased(&self, key: &str, value: Vec<u8>, lease: &Lease) -> Result<()> {
        self.client
            .clone()
            .put(key, value, Some(PutOptions::new().with_lease(lease.id)))
            .await
            .map_err(etcd(format!("writing {key}")))?;
        Ok(())
    }

    /// Ends the lease `id` now (its keys are deleted).
    pub async fn revoke(&self, id: i64) -> Result<()> {
        self.client
            .clone()
            .lease_revoke(id)
            .await
            .map_err(etcd("revoking a lease"))?;
        Ok(())
    }

    /// Grants a lease of `ttl` seconds and keeps it alive in the background until it is
    /// dropped, revoked, or a renewal fails past its deadline.
    pub async fn grant_lease(&self, ttl_s: i64) -> Result<Lease> {
        let mut client = self.client.clone();
        let granted_at = Instant::now();
        let resp = client
            .lease_grant(ttl_s, None)
            .await
            .map_err(etcd("granting a lease"))?;
        let ttl = Duration::from_secs(resp.ttl().max(1) as u64);
        let state = Arc::new(LeaseState {
            base: granted_at,
            deadline_ms: AtomicU64::new(0),
            lost: AtomicBool::new(false),
        });
        state.extend(granted_at, ttl);
        let id = resp.id();
        let task = tokio::spawn(keep_alive(client, id, ttl, state.clone()));
        Ok(Lease {
            id,
            ttl,
            state,
            task,
            client: self.client.clone(),
        })
    }

    /// Takes the shard's leader key with `lease`, waiting up to `wait` for the current holder's
    /// lease to end; returns the writer's epoch (the key's create revision).
    pub async fn acquire(
        &self,
        layout: &ShardLayout,
        node: &str,
        lease: &Lease,
        wait: Duration,
    ) -> Result<u64> {
        let key = layout.leader_key();
        let until = Instant::now() + wait;
        loop {
            let txn = Txn::new()
                .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key.as_str(),
                    node,
                    Some(PutOptions::new().with_lease(lease.id)),
                )]);
            let resp = self
                .client
                .clone()
                .txn(txn)
                .await
                .map_err(etcd(format!("taking {key}")))?;
            if resp.succeeded() {
                let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
                return u64::try_from(revision)
                    .ok()
                    .filter(|&r| r > 0)
                    .ok_or_else(|| Error::Corrupt {
                        what: key.clone(),
                        detail: format!("etcd answered revision {revision}"),
                    });
            }
            if Instant::now() >= until {
                let holder = self.get(&key).await?.unwrap_or_default();
                return Err(Error::Invalid(format!(
                    "shard {} is held by {:?} for longer than {wait:?}",
                    layout.shard,
                    String::from_utf8_lossy(&holder)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The shard's current manifest (the pointer's value), if it has one.
    pub async fn manifest_pointer(&self, layout: &ShardLayout) -> Result<Option<String>> {
        let got = self.get(&layout.manifest_pointer_key()).await?;
        got.map(|v| {
            String::from_utf8(v).map_err(|_| Error::Corrupt {
                what: layout.manifest_pointer_key(),
                detail: "not UTF-8".into(),
            })
        })
        .transpose()
    }

    /// Moves the manifest pointer from `expected` (`None`: absent) to `new` if, and only if,
    /// the leader key is still the one created at `epoch`. `false`: this writer is fenced.
    pub async fn commit_pointer(
        &self,
        layout: &ShardLayout,
        epoch: u64,
        expected: Option<&str>,
        new: &str,
    ) -> Result<bool> {
        let pointer = layout.manifest_pointer_key();
        let leader = layout.leader_key();
        let held = Compare::create_revision(leader.as_str(), CompareOp::Equal, epoch as i64);
        let current = match expected {
            Some(v) => Compare::value(pointer.as_str(), CompareOp::Equal, v),
            None => Compare::create_revision(pointer.as_str(), CompareOp::Equal, 0),
        };
        let txn =
            Txn::new()
                .when([held, current])
                .and_then([TxnOp::put(pointer.as_str(), new, None)]);
        let resp = self
            .client
            .clone()
            .txn(txn)
            .await
            .map_err(etcd(format!("moving {pointer}")))?;
        Ok(resp.succeeded())
    }
}

struct LeaseState {
    base: Instant,
    /// Milliseconds after `base` until which the lease is surely alive on the server.
    deadline_ms: AtomicU64,
    /// etcd said the lease is gone (or this process revoked it).
    lost: AtomicBool,
}

impl LeaseState {
    /// A renewal sent at `sent` and answered: etcd keeps the lease at least `ttl` after it
    /// answered, so `sent + ttl` less a margin of a quarter is safe.
    fn extend(&self, sent: Instant, ttl: Duration) {
        let until = sent + ttl - ttl / 4;
        let ms = until.saturating_duration_since(self.base).as_millis() as u64;
        self.deadline_ms.fetch_max(ms, Ordering::SeqCst);
    }

    fn valid(&self) -> bool {
        !self.lost.load(Ordering::SeqCst)
            && (self.base.elapsed().as_millis() as u64) < self.deadline_ms.load(Ordering::SeqCst)
    }
}

/// An etcd lease this process holds, renewed by a background task every third of its TTL.
pub struct Lease {
    pub id: i64,
    pub ttl: Duration,
    state: Arc<LeaseState>,
    task: tokio::task::JoinHandle<()>,
    client: Client,
}

impl Lease {
    /// Whether the lease is surely still alive on the server now (see `LeaseState::extend`).
    pub fn valid(&self) -> bool {
        self.state.valid()
    }

    /// Stops renewing, as a process that dies does: the lease ends `ttl` later.
    pub fn abandon(&self) {
        self.state.lost.store(true, Ordering::SeqCst);
        self.task.abort();
    }

    /// Ends the lease now (its keys are deleted).
    pub async fn revoke(self) -> Result<()> {
        self.abandon();
        self.client
            .clone()
            .lease_revoke(self.id)
            .await
            .map_err(etcd("revoking a lease"))?;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.abandon();
    }
}

async fn keep_alive(mut client: Client, id: i64, ttl: Duration, state: Arc<LeaseState>) {
    let period = ttl / 3;
    let mut channel = None;
    loop {
        if channel.is_none() {
            match tokio::time::timeout(period, client.lease_keep_alive(id)).await {
                Ok(Ok(c)) => channel = Some(c),
                _ => {
                    tokio::time::sleep(period / 2).await;
                    continue;
                }
            }
        }
        let Some((keeper, stream)) = channel.as_mut() else {
            continue;
        };
        let sent = Instant::now();
        let answer = tokio::time::timeout(period, async {
            keeper.keep_alive().await?;
            stream.message().await
        })
        .await;
        match answer {
            Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
                state.extend(sent, ttl);
                tokio::time::sleep(period).await;
            }
            Ok(Ok(Some(_))) => {
                // The lease expired on the server: it never comes back.
                state.lost.store(true, Ordering::SeqCst);
                tracing::warn!(lease = id, "etcd lease expired");
                return;
            }
            // A failure, a closed stream or a stall: reconnect and try again; meanwhile the
            // deadline is not extended, so the holder stops acknowledging in time.
            _ => {
                channel = None;
                tokio::time::sleep(period / 2).await;
            }
        }
    }
}

//! Readers registered in etcd (docs/SCALE-OUT.md, "Keys in etcd"): a reader node keeps a key
//! `<prefix>/readers/<lease id>` under a lease it renews, whose value names its base URL, its
//! shards and the cluster's shard count ([`Registration`]); the key goes when the reader
//! revokes the lease on exit, or when the lease lapses (the process killed, or cut from
//! etcd). A router following the registrations ([`Follower`], `Router::discover`) lists them
//! every refresh, checks each new one as a fixed reader is checked (its shard list, asked with
//! the cluster's secret, for the same shard count) and uses the readers that pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fanout::{check_reader, ReaderLink, View};
use crate::{Coordinator, Error, Lease, Result, Secret};

/// The readers' keys, under the cluster's prefix.
pub const READERS: &str = "readers/";

/// What a reader registers: where it is called, and what it reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The base URL others call (`--advertise`), without a trailing `/`.
    pub url: String,
    pub shards: Vec<u32>,
    pub shard_count: u32,
}

/// A reader's registration, kept while this value lives: put again under a new lease whenever
/// its key is found gone (a lease that lapsed while etcd was out of reach).
pub struct Registered {
    coord: Coordinator,
    /// The key and its lease now.
    now: Arc<Mutex<(String, i64)>>,
    task: tokio::task::JoinHandle<()>,
}

async fn put(coord: &Coordinator, reg: &Registration, ttl_s: i64) -> Result<(String, Lease)> {
    let lease = coord.grant_lease(ttl_s).await?;
    let key = format!("{}{READERS}{:x}", coord.prefix(), lease.id);
    let value = serde_json::to_vec(reg).map_err(|e| Error::Invalid(e.to_string()))?;
    coord.put_leased(&key, value, &lease).await?;
    Ok((key, lease))
}

/// Registers `reg` under a lease of `ttl_s` seconds, renewed in the background.
pub async fn register(coord: &Coordinator, reg: &Registration, ttl_s: i64) -> Result<Registered> {
    let (key, lease) = put(coord, reg, ttl_s).await?;
    let now = Arc::new(Mutex::new((key, lease.id)));
    let task = tokio::spawn(keep(coord.clone(), reg.clone(), ttl_s, lease, now.clone()));
    Ok(Registered {
        coord: coord.clone(),
        now,
        task,
    })
}

/// Looks for the key every half TTL; puts it again under a new lease when it is gone.
async fn keep(
    coord: Coordinator,
    reg: Registration,
    ttl_s: i64,
    lease: Lease,
    now: Arc<Mutex<(String, i64)>>,
) {
    // Renewed while held here; dropped (renewal stopped) when the task ends.
    let mut _held = lease;
    let period = Duration::from_millis(ttl_s.max(1) as u64 * 500);
    loop {
        tokio::time::sleep(period).await;
        let key = now.lock().map(|n| n.0.clone()).unwrap_or_default();
        match coord.exists(&key).await {
            Ok(true) => {}
            Ok(false) => match put(&coord, &reg, ttl_s).await {
                Ok((key, renewed)) => {
                    tracing::warn!(%key, url = %reg.url, "the reader's key was gone: registered again");
                    if let Ok(mut n) = now.lock() {
                        *n = (key, renewed.id);
                    }
                    _held = renewed;
                }
                Err(e) => tracing::warn!(error = %e, "registering the reader again"),
            },
            // etcd out of reach: the lease lapses or not; asked again next period.
            Err(e) => tracing::warn!(error = %e, "checking the reader's key"),
        }
    }
}

impl Registered {
    /// The key held now.
    pub fn key(&self) -> String {
        self.now.lock().map(|n| n.0.clone()).unwrap_or_default()
    }

    /// Deletes the key now (the lease revoked), as a reader exiting does.
    pub async fn leave(self) -> Result<()> {
        self.task.abort();
        let id = self.now.lock().map(|n| n.1).unwrap_or_default();
        self.coord.revoke(id).await
    }
}

impl Drop for Registered {
    /// Stops renewing, as a process that dies: the key goes when the lease lapses.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A registration as last seen: its value, and the reader it gave or why it is not used.
type Seen = HashMap<String, (Vec<u8>, std::result::Result<ReaderLink, (String, String)>)>;

/// What a router checks of a registration: readable, the same shard count, and a reader at
/// its URL answering its shard list with the secret for that count, holding the shards
/// registered. `Err((what, why))`: not used.
async fn check(
    client: &reqwest::Client,
    secret: &Secret,
    key: &str,
    value: &[u8],
    shard_count: u32,
) -> std::result::Result<ReaderLink, (String, String)> {
    let reg: Registration = serde_json::from_slice(value)
        .map_err(|e| (key.to_owned(), format!("an unreadable registration: {e}")))?;
    let url = reg.url.trim_end_matches('/').to_owned();
    let refuse = |why: String| (url.clone(), why);
    if reg.shard_count != shard_count {
        return Err(refuse(format!(
            "registered for a cluster of {} shards, not {shard_count}",
            reg.shard_count
        )));
    }
    let shards = check_reader(client, secret, &url, shard_count)
        .await
        .map_err(refuse)?;
    let (mut held, mut registered) = (shards.clone(), reg.shards.clone());
    held.sort_unstable();
    registered.sort_unstable();
    if held != registered {
        return Err(refuse(format!(
            "registered shards {registered:?} but holds {held:?}"
        )));
    }
    Ok(ReaderLink { url, shards })
}

/// The registrations a router follows, and the readers it uses (its view).
pub struct Follower {
    refused: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

struct Following {
    coord: Coordinator,
    view: View,
    client: reqwest::Client,
    secret: Secret,
    shard_count: u32,
    seen: Seen,
    refused: Arc<Mutex<Vec<(String, String)>>>,
    /// etcd did not answer the last listing.
    out_of_reach: bool,
}

impl Following {
    /// Lists the registrations; checks the new and changed ones and those refused before;
    /// replaces the view with the readers that pass. An etcd failure leaves the view as it is.
    async fn refresh(&mut self) -> Result<()> {
        let listed = self.coord.list(READERS).await?;
        let mut next = Seen::new();
        let mut to_check = Vec::new();
        for (key, value) in listed {
            match self.seen.remove(&key) {
                Some((v, Ok(link))) if v == value => {
                    next.insert(key, (v, Ok(link)));
                }
                before => {
                    let why_before = match before {
                        Some((_, Err((_, why)))) => Some(why),
                        _ => None,
                    };
                    to_check.push((key, value, why_before));
                }
            }
        }
        for (key, (_, was)) in self.seen.drain() {
            if let Ok(link) = was {
                tracing::info!(%key, url = %link.url, "a reader's registration is gone: not used");
            }
        }
        let checks = to_check.into_iter().map(|(key, value, why_before)| async {
            let got = check(&self.client, &self.secret, &key, &value, self.shard_count).await;
            (key, value, why_before, got)
        });
        for (key, value, why_before, got) in futures::future::join_all(checks).await {
            match &got {
                Ok(link) => {
                    tracing::info!(%key, url = %link.url, shards = ?link.shards, "a registered reader is used")
                }
                Err((what, why)) if why_before.as_ref() != Some(why) => {
                    tracing::warn!(%key, reader = %what, %why, "a registered reader is not used")
                }
                Err(_) => {}
            }
            next.insert(key, (value, got));
        }
        self.seen = next;
        let mut readers: Vec<ReaderLink> = Vec::new();
        let mut refused = Vec::new();
        let mut keys: Vec<&String> = self.seen.keys().collect();
        keys.sort();
        for key in keys {
            match &self.seen[key].1 {
                Ok(link) if !readers.iter().any(|r| r.url == link.url) => {
                    readers.push(link.clone())
                }
                Ok(_) => {}
                Err(r) => refused.push(r.clone()),
            }
        }
        readers.sort_by(|a, b| a.url.cmp(&b.url));
        if let Ok(mut v) = self.view.write() {
            *v = readers;
        }
        if let Ok(mut r) = self.refused.lock() {
            *r = refused;
        }
        Ok(())
    }
}

impl Follower {
    /// Lists the registrations now (an etcd failure is the start's), then every `refresh`.
    pub(crate) async fn start(
        coord: Coordinator,
        view: View,
        client: reqwest::Client,
        secret: Secret,
        shard_count: u32,
        refresh: Duration,
    ) -> Result<Follower> {
        let refused = Arc::new(Mutex::new(Vec::new()));
        let mut following = Following {
            coord,
            view,
            client,
            secret,
            shard_count,
            seen: Seen::new(),
            refused: refused.clone(),
            out_of_reach: false,
        };
        following.refresh().await?;
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(refresh).await;
                match following.refresh().await {
                    Ok(()) if following.out_of_reach => {
                        following.out_of_reach = false;
                        tracing::info!("etcd answers again: following the registered readers");
                    }
                    Ok(()) => {}
                    Err(e) if !following.out_of_reach => {
                        following.out_of_reach = true;
                        tracing::warn!(error = %e, "etcd does not answer: using the readers last seen");
                    }
                    Err(_) => {}
                }
            }
        });
        Ok(Follower { refused, task })
    }

    /// The registrations not used, each with the reader (or key) and why.
    pub fn refused(&self) -> Vec<(String, String)> {
        self.refused.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

//! Names of the objects and etcd keys of a shard, and the manifest object's bytes
//! (docs/SCALE-OUT.md, "Layout in object storage" and "Keys in etcd").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Where a log object sorts: the writer's epoch, then its batch number.
pub type WalPos = (u64, u64);

/// The object and key names of one shard under a prefix.
#[derive(Clone, Debug)]
pub struct ShardLayout {
    /// Object-store prefix (no trailing slash).
    pub objects: String,
    /// etcd key prefix (ends with `/`).
    pub keys: String,
    pub shard: u32,
}

impl ShardLayout {
    pub fn new(objects: &str, keys: &str, shard: u32) -> ShardLayout {
        ShardLayout {
            objects: objects.trim_end_matches('/').to_owned(),
            keys: format!("{}/", keys.trim_end_matches('/')),
            shard,
        }
    }

    fn shard_dir(&self) -> String {
        format!("{}/shards/{:04}", self.objects, self.shard)
    }

    /// Every object of the shard has a key starting with this (`.../shards/<s>/`).
    pub fn shard_prefix(&self) -> String {
        format!("{}/", self.shard_dir())
    }

    pub fn wal_dir(&self) -> String {
        format!("{}/wal", self.shard_dir())
    }

    pub fn wal_key(&self, (epoch, seq): WalPos) -> String {
        format!("{}/{epoch:020}-{seq:020}.log", self.wal_dir())
    }

    pub fn segment_key(&self, epoch: u64, file_id: u64) -> String {
        format!(
            "{}/segments/{epoch:020}-{file_id:020}.seg",
            self.shard_dir()
        )
    }

    pub fn segments_dir(&self) -> String {
        format!("{}/segments", self.shard_dir())
    }

    pub fn manifests_dir(&self) -> String {
        format!("{}/manifest", self.shard_dir())
    }

    /// The manifest object of `name` (`<version:020>-<epoch:020>`, the etcd pointer's value).
    pub fn manifest_key(&self, name: &str) -> String {
        format!("{}/{name}", self.manifests_dir())
    }

    pub fn leader_key(&self) -> String {
        format!("{}shards/{:04}/leader", self.keys, self.shard)
    }

    pub fn manifest_pointer_key(&self) -> String {
        format!("{}shards/{:04}/manifest", self.keys, self.shard)
    }
}

/// The pointer value naming manifest `version` written in `epoch`.
pub fn manifest_name(version: u64, epoch: u64) -> String {
    format!("{version:020}-{epoch:020}")
}

/// The version of a pointer value.
pub fn parse_manifest_name(name: &str) -> Option<(u64, u64)> {
    let (v, e) = name.split_once('-')?;
    Some((v.parse().ok()?, e.parse().ok()?))
}

/// The position of a log object from its key's last part.
pub fn parse_wal_key(key: &str) -> Option<WalPos> {
    let name = key.rsplit('/').next()?.strip_suffix(".log")?;
    let (e, s) = name.split_once('-')?;
    Some((e.parse().ok()?, s.parse().ok()?))
}

const MAGIC: &[u8] = b"COURBE-SHARD-MANIFEST\n";

/// The cluster's part of a manifest object; the store's `MANIFEST` bytes follow it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardManifest {
    pub shard: u32,
    pub version: u64,
    pub epoch: u64,
    /// Every log object at or below this position is held by the named segments.
    pub wal_through: WalPos,
    /// Segment file number to its object key.
    pub segments: BTreeMap<u64, String>,
}

impl ShardManifest {
    /// The object key of segment `file_id`; a manifest object (`what`) that names a segment
    /// without its key is corrupt.
    pub fn segment_key(&self, what: &str, file_id: u64) -> Result<&str> {
        self.segments
            .get(&file_id)
            .map(String::as_str)
            .ok_or_else(|| Error::Corrupt {
                what: what.to_owned(),
                detail: format!("segment {file_id} has no object key"),
            })
    }
}

/// Encodes a manifest object: magic, u32 LE length, JSON of `head`, the store's manifest bytes.
pub fn encode_manifest_object(head: &ShardManifest, store_manifest: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(head).unwrap_or_default();
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + json.len() + store_manifest.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(store_manifest);
    out
}

/// Decodes a manifest object into its head and the store's manifest bytes.
pub fn decode_manifest_object(what: &str, bytes: &[u8]) -> Result<(ShardManifest, Vec<u8>)> {
    let corrupt = |detail: &str| Error::Corrupt {
        what: what.to_owned(),
        detail: detail.to_owned(),
    };
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| corrupt("not a shard manifest (bad magic)"))?;
    let (len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("truncated length"))?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(corrupt("truncated head"));
    }
    let (json, store) = rest.split_at(len);
    let head: ShardManifest =
        serde_json::from_slice(json).map_err(|e| corrupt(&format!("bad head: {e}")))?;
    Ok((head, store.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_object_reads_back_and_damage_is_an_error_never_a_panic() {
        let head = ShardManifest {
            shard: 3,
            version: 7,
            epoch: 42,
            wal_through: (42, 9),
            segments: [(1, "p/shards/0003/segments/x.seg".to_owned())].into(),
        };
        let bytes = encode_manifest_object(&head, b"MANIFEST bytes");
        let (h, m) = decode_manifest_object("m", &bytes).unwrap();
        assert_eq!((h, m.as_slice()), (head, &b"MANIFEST bytes"[..]));
        for cut in 0..bytes.len() - 14 {
            assert!(decode_manifest_object("m", &bytes[..cut]).is_err(), "{cut}");
        }
    }

    #[test]
    fn object_names_sort_in_epoch_then_sequence_order() {
        let l = ShardLayout::new("courbe/", "/courbe", 2);
        assert_eq!(l.leader_key(), "/courbe/shards/0002/leader");
        let a = l.wal_key((9, 100));
        let b = l.wal_key((10, 1));
        assert!(a < b);
        assert_eq!(parse_wal_key(&a), Some((9, 100)));
        assert_eq!(parse_manifest_name(&manifest_name(5, 9)), Some((5, 9)));
        assert!(manifest_name(9, 100) < manifest_name(10, 1));
    }
}

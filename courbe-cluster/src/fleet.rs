//! Fleet questions over several shards: one [`SeriesSource`] made of the shards' sources, each
//! meter read from the shard [`shard_of`] gives it. Every query of `courbe::query` runs over it
//! unchanged, so a fleet answer is computed on the merged fleet (sums, counts and any rule
//! applied to them see every meter), never per shard and then combined.

use courbe::source::{Chunk, InstantSum, SeriesSource, SourceError};
use courbe::Channel;

use crate::shard_of;

/// The union of the shards of a cluster: `shards[s]` is shard `s`'s source (a restored
/// store's snapshot), so meters are disjoint between them.
pub struct ShardedSource<'a> {
    shards: Vec<&'a dyn SeriesSource>,
}

impl<'a> ShardedSource<'a> {
    /// `shards[s]` answers for shard `s`; there must be one per shard of the cluster.
    pub fn new(shards: Vec<&'a dyn SeriesSource>) -> ShardedSource<'a> {
        ShardedSource { shards }
    }

    fn of(&self, meter: &str) -> Option<&'a dyn SeriesSource> {
        let n = u32::try_from(self.shards.len()).ok()?;
        self.shards.get(shard_of(meter, n) as usize).copied()
    }
}

impl SeriesSource for ShardedSource<'_> {
    fn has_meter(&self, meter: &str) -> bool {
        self.of(meter).is_some_and(|s| s.has_meter(meter))
    }

    fn meters(&self, channel: Channel) -> Vec<String> {
        let mut all: Vec<String> = self.shards.iter().flat_map(|s| s.meters(channel)).collect();
        all.sort_unstable();
        all
    }

    fn chunks(
        &self,
        meter: &str,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Vec<Chunk<'_>>, SourceError> {
        match self.of(meter) {
            Some(s) => s.chunks(meter, channel, from_utc, to_utc),
            None => Ok(Vec::new()),
        }
    }

    /// The register table when every shard has the same one; else the longest common prefix
    /// (each shard numbers its registers in its own order of first use).
    fn registers(&self) -> Vec<(Channel, std::sync::Arc<str>)> {
        let mut tables = self.shards.iter().map(|s| s.registers());
        let mut common = tables.next().unwrap_or_default();
        for t in tables {
            let same = common.iter().zip(&t).take_while(|(a, b)| a == b).count();
            common.truncate(same);
        }
        common
    }

    /// The shards' sums added instant by instant, when every shard can give its own.
    fn fleet_sums(
        &self,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Option<Vec<InstantSum>>, SourceError> {
        let mut merged: std::collections::BTreeMap<i64, (i64, u32)> = Default::default();
        for s in &self.shards {
            let Some(sums) = s.fleet_sums(channel, from_utc, to_utc)? else {
                return Ok(None);
            };
            for x in sums {
                let e = merged.entry(x.ts_utc).or_default();
                e.0 += x.total;
                e.1 += x.meters;
            }
        }
        Ok(Some(
            merged
                .into_iter()
                .map(|(ts_utc, (total, meters))| InstantSum {
                    ts_utc,
                    total,
                    meters,
                })
                .collect(),
        ))
    }
}

//! Rollups (format v5, FORMAT.md §3.10): for each curve or price channel a segment holds, the
//! sum of the values of every series at each instant, and how many series have a point there.
//!
//! A fleet curve over a span that one segment alone holds is then read from a few kilobytes
//! instead of decoding a block per meter. The writer keeps a channel's rollup only when the
//! segment holds at least [`ROLLUP_MIN_SERIES`] series of it (below, the rollup would cost more
//! than a few percent of the blocks and decoding them is cheap anyway); a channel held but not
//! kept is listed as such, so a reader knows to decode.

use std::collections::BTreeMap;

use crate::bits::{put_varint, zigzag64, Reader};
use crate::{Channel, Error, Point, STEP_MIN_MAX};

/// A channel's rollup is kept when the segment holds at least this many series of it.
pub const ROLLUP_MIN_SERIES: u64 = 128;

/// The sums of one instant of a channel over every series of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RollupEntry {
    pub ts_utc: i64,
    /// The longest step of the points starting at `ts_utc` (their claims end by `ts_utc + 60 ·
    /// step_min`).
    pub step_min: u16,
    /// How many series have a point starting at `ts_utc` (at least 1).
    pub meters: u32,
    /// The sum of their values.
    pub total: i64,
}

impl RollupEntry {
    /// End of the longest interval starting at `ts_utc`.
    pub fn end_ts(&self) -> i64 {
        self.ts_utc.saturating_add(60 * i64::from(self.step_min))
    }
}

/// The rollup section's word on one channel the segment holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelRollup {
    pub channel: Channel,
    /// `None` when the writer did not keep it (fewer than [`ROLLUP_MIN_SERIES`] series).
    pub entries: Option<Vec<RollupEntry>>,
}

/// Minutes of the dense accumulator before the first point seen.
const DENSE_BACK_S: i64 = 2 * 86_400;
/// Slots of the dense accumulator (one a minute): 40 days; other instants go to a map.
const DENSE_SLOTS: usize = 40 * 1440;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    meters: u32,
    step_min: u16,
    total: i64,
}

impl Slot {
    fn add(&mut self, p: &Point) -> bool {
        let (Some(meters), Some(total)) = (
            self.meters.checked_add(1),
            self.total.checked_add(i64::from(p.value)),
        ) else {
            return false;
        };
        self.meters = meters;
        self.total = total;
        self.step_min = self.step_min.max(p.step_min);
        true
    }
}

/// One channel's sums while a segment is written.
#[derive(Clone, Debug)]
struct Acc {
    channel: Channel,
    series: u64,
    /// Instant of slot 0 of `dense`, set by the first point.
    base: Option<i64>,
    dense: Vec<Slot>,
    sparse: BTreeMap<i64, Slot>,
    /// A count or a sum left its type: the rollup is not kept.
    overflow: bool,
    /// Points of the blocks added without their points ([`Rollups::count_carried`]) and the
    /// points the carried rollups count ([`Rollups::add_carried`]): equal when every such
    /// block's sums were carried.
    carried_block_points: u64,
    carried_rollup_points: u64,
}

impl Acc {
    fn slot(&mut self, ts_utc: i64) -> &mut Slot {
        let base = *self.base.get_or_insert(ts_utc.saturating_sub(DENSE_BACK_S));
        let d = ts_utc.wrapping_sub(base);
        if d >= 0 && d % 60 == 0 && ((d / 60) as u64) < DENSE_SLOTS as u64 {
            let i = (d / 60) as usize;
            if i >= self.dense.len() {
                self.dense.resize(i + 1, Slot::default());
            }
            &mut self.dense[i]
        } else {
            self.sparse.entry(ts_utc).or_default()
        }
    }

    fn add(&mut self, points: impl Iterator<Item = Point>) {
        for p in points {
            if !self.slot(p.ts_utc).add(&p) {
                self.overflow = true;
            }
        }
    }

    /// Adds the sums of other series at each instant, as if their points were added.
    fn add_entries(&mut self, entries: &[RollupEntry]) {
        for e in entries {
            self.carried_rollup_points += u64::from(e.meters);
            let slot = self.slot(e.ts_utc);
            let (Some(meters), Some(total)) = (
                slot.meters.checked_add(e.meters),
                slot.total.checked_add(e.total),
            ) else {
                self.overflow = true;
                continue;
            };
            slot.meters = meters;
            slot.total = total;
            slot.step_min = slot.step_min.max(e.step_min);
        }
    }

    fn entries(&self) -> Vec<RollupEntry> {
        let base = self.base.unwrap_or(0);
        let dense = self
            .dense
            .iter()
            .enumerate()
            .filter(|(_, s)| s.meters > 0)
            .map(|(i, s)| (base + 60 * i as i64, *s));
        let mut sparse = self.sparse.iter().map(|(&ts, s)| (ts, *s)).peekable();
        let mut out = Vec::with_capacity(self.dense.len() / 8 + self.sparse.len());
        let entry = |(ts_utc, s): (i64, Slot)| RollupEntry {
            ts_utc,
            step_min: s.step_min,
            meters: s.meters,
            total: s.total,
        };
        for d in dense {
            while let Some(s) = sparse.next_if(|s| s.0 < d.0) {
                out.push(entry(s));
            }
            out.push(entry(d));
        }
        out.extend(sparse.map(entry));
        out
    }
}

/// The rollups of a segment being written (or verified): one accumulator per interval channel.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rollups {
    accs: Vec<Acc>,
}

impl Rollups {
    fn acc(&mut self, channel: Channel) -> &mut Acc {
        let at = match self.accs.binary_search_by_key(&channel, |a| a.channel) {
            Ok(at) => at,
            Err(at) => {
                self.accs.insert(
                    at,
                    Acc {
                        channel,
                        series: 0,
                        base: None,
                        dense: Vec::new(),
                        sparse: BTreeMap::new(),
                        overflow: false,
                        carried_block_points: 0,
                        carried_rollup_points: 0,
                    },
                );
                at
            }
        };
        &mut self.accs[at]
    }

    /// Counts a new series of `channel` (a channel with intervals).
    pub(crate) fn add_series(&mut self, channel: Channel) {
        self.acc(channel).series += 1;
    }

    /// Adds the points of a block of `channel` (a channel with intervals).
    pub(crate) fn add_points(&mut self, channel: Channel, points: impl Iterator<Item = Point>) {
        self.acc(channel).add(points);
    }

    /// Counts the `points` of a block of `channel` added without them: its sums come with a
    /// rollup given to [`add_carried`](Self::add_carried).
    pub(crate) fn count_carried(&mut self, channel: Channel, points: u64) {
        self.acc(channel).carried_block_points += points;
    }

    /// Adds the rollup of `channel` of a segment every block of which (of that channel) was
    /// added without its points.
    pub(crate) fn add_carried(&mut self, channel: Channel, entries: &[RollupEntry]) {
        self.acc(channel).add_entries(entries);
    }

    /// Adds what `other` holds (its sums at each instant, its series and carried counts), as if
    /// the points, series and rollups added to it had been added here: sums are exact integers,
    /// so the order in which they are added does not change them.
    pub(crate) fn absorb(&mut self, other: &Rollups) {
        for o in &other.accs {
            let acc = self.acc(o.channel);
            acc.series += o.series;
            acc.overflow |= o.overflow;
            acc.carried_block_points += o.carried_block_points;
            acc.carried_rollup_points += o.carried_rollup_points;
            let base = o.base.unwrap_or(0);
            let dense = o
                .dense
                .iter()
                .enumerate()
                .filter(|(_, s)| s.meters > 0)
                .map(|(i, s)| (base + 60 * i as i64, s));
            for (ts_utc, s) in dense.chain(o.sparse.iter().map(|(&ts, s)| (ts, s))) {
                let slot = acc.slot(ts_utc);
                let (Some(meters), Some(total)) = (
                    slot.meters.checked_add(s.meters),
                    slot.total.checked_add(s.total),
                ) else {
                    acc.overflow = true;
                    continue;
                };
                slot.meters = meters;
                slot.total = total;
                slot.step_min = slot.step_min.max(s.step_min);
            }
        }
    }

    /// The first channel whose blocks added without their points count other than the
    /// carried rollups say: `(channel, block points, rollup points)`.
    pub(crate) fn carried_mismatch(&self) -> Option<(Channel, u64, u64)> {
        self.accs
            .iter()
            .find(|a| a.carried_block_points != a.carried_rollup_points)
            .map(|a| (a.channel, a.carried_block_points, a.carried_rollup_points))
    }

    /// Every channel held, in code order, kept or not by the writer's rule.
    pub(crate) fn finish(&self) -> Vec<ChannelRollup> {
        self.accs
            .iter()
            .map(|a| ChannelRollup {
                channel: a.channel,
                entries: (a.series >= ROLLUP_MIN_SERIES && !a.overflow).then(|| a.entries()),
            })
            .collect()
    }

    /// What the rollups of the points added are, every channel kept (for `verify`), or `None`
    /// for a channel whose sums overflow.
    pub(crate) fn all(&self) -> Vec<(Channel, Option<Vec<RollupEntry>>)> {
        self.accs
            .iter()
            .map(|a| (a.channel, (!a.overflow).then(|| a.entries())))
            .collect()
    }
}

/// The section's bytes: `crc:u32 count:u8 channel_rollup{count}` (FORMAT.md §3.10); empty when
/// `rollups` is.
pub(crate) fn encode(rollups: &[ChannelRollup]) -> Vec<u8> {
    if rollups.is_empty() {
        return Vec::new();
    }
    let mut body = vec![rollups.len() as u8];
    for r in rollups {
        body.push(r.channel.code());
        match &r.entries {
            None => body.push(0),
            Some(entries) => {
                body.push(1);
                put_varint(&mut body, entries.len() as u64);
                let (mut ts, mut meters, mut total) = (None::<i64>, 0i64, 0i64);
                for e in entries {
                    match ts {
                        None => put_varint(&mut body, zigzag64(e.ts_utc)),
                        Some(prev) => {
                            let d = e.ts_utc.wrapping_sub(prev) as u64;
                            if d % 60 == 0 {
                                put_varint(&mut body, (d / 60) << 1);
                            } else {
                                put_varint(&mut body, (d << 1) | 1);
                            }
                        }
                    }
                    put_varint(&mut body, u64::from(e.step_min));
                    put_varint(&mut body, zigzag64(i64::from(e.meters) - meters));
                    put_varint(&mut body, zigzag64(e.total.wrapping_sub(total)));
                    ts = Some(e.ts_utc);
                    meters = i64::from(e.meters);
                    total = e.total;
                }
            }
        }
    }
    let mut out = crc32fast::hash(&body).to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn corruption(offset: u64, what: &'static str, expected: u64, found: u64) -> Error {
    Error::Corruption {
        offset,
        what,
        expected,
        found,
    }
}

/// Checks the section's crc32 (at `open`); `section` starts at file offset `offset`.
pub(crate) fn check_crc(section: &[u8], offset: u64) -> Result<(), Error> {
    if section.is_empty() {
        return Ok(());
    }
    let mut r = Reader::new(section, offset);
    let stored = r.u32("rollup crc32")?;
    let computed = crc32fast::hash(r.rest());
    if stored != computed {
        return Err(corruption(
            offset,
            "rollup crc32",
            u64::from(computed),
            u64::from(stored),
        ));
    }
    Ok(())
}

/// Parses a section whose crc was checked; every value out of its range is corruption.
pub(crate) fn decode(
    section: &[u8],
    offset: u64,
    version: u16,
) -> Result<Vec<ChannelRollup>, Error> {
    if section.is_empty() {
        return Ok(Vec::new());
    }
    check_crc(section, offset)?;
    let mut r = Reader::new(section, offset);
    r.u32("rollup crc32")?;
    let count_at = r.offset();
    let count = r.u8("rollup channel count")?;
    if count == 0 {
        return Err(corruption(count_at, "rollup channel count", 1, 0));
    }
    let mut out: Vec<ChannelRollup> = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let at = r.offset();
        let code = r.u8("rollup channel")?;
        let channel = Channel::from_u8(code, version)
            .filter(|c| c.has_intervals())
            .filter(|c| out.last().is_none_or(|p| p.channel < *c))
            .ok_or_else(|| {
                corruption(
                    at,
                    "rollup channel (ascending, with intervals)",
                    0,
                    u64::from(code),
                )
            })?;
        let at = r.offset();
        let entries = match r.u8("rollup kept flag")? {
            0 => None,
            1 => Some(decode_entries(&mut r)?),
            other => return Err(corruption(at, "rollup kept flag", 1, u64::from(other))),
        };
        out.push(ChannelRollup { channel, entries });
    }
    if !r.is_empty() {
        return Err(corruption(r.offset(), "bytes after the rollups", 0, 1));
    }
    Ok(out)
}

fn decode_entries(r: &mut Reader<'_>) -> Result<Vec<RollupEntry>, Error> {
    let at = r.offset();
    let n = r.varint("rollup entry count")?;
    // Each entry takes at least 4 bytes: a count past the bytes left is corruption, checked
    // before allocating.
    if n == 0 || n > (r.remaining() / 4) as u64 {
        return Err(corruption(
            at,
            "rollup entry count",
            r.remaining() as u64 / 4,
            n,
        ));
    }
    let mut entries = Vec::with_capacity(n as usize);
    let (mut ts, mut meters, mut total) = (None::<i64>, 0i64, 0i64);
    for _ in 0..n {
        let at = r.offset();
        let ts_utc = match ts {
            None => r.zigzag64("rollup first instant")?,
            Some(prev) => {
                let code = r.varint("rollup instant delta")?;
                let d = if code & 1 == 1 {
                    Some(code >> 1).filter(|d| d % 60 != 0)
                } else {
                    (code >> 1).checked_mul(60)
                };
                d.and_then(|d| i64::try_from(d).ok())
                    .filter(|&d| d > 0)
                    .and_then(|d| prev.checked_add(d))
                    .ok_or_else(|| corruption(at, "rollup instant delta", 1, code))?
            }
        };
        let at = r.offset();
        let step = r.varint("rollup step")?;
        let step_min = u16::try_from(step)
            .ok()
            .filter(|s| (1..=STEP_MIN_MAX).contains(s))
            .ok_or_else(|| corruption(at, "rollup step", u64::from(STEP_MIN_MAX), step))?;
        let at = r.offset();
        let m = meters.wrapping_add(r.zigzag64("rollup meters")?);
        let m32 = u32::try_from(m)
            .ok()
            .filter(|&m| m >= 1)
            .ok_or_else(|| corruption(at, "rollup meters", 1, m as u64))?;
        let at = r.offset();
        let t = total.wrapping_add(r.zigzag64("rollup total")?);
        let (lo, hi) = (
            i128::from(m32) * i128::from(i32::MIN),
            i128::from(m32) * i128::from(i32::MAX),
        );
        if !(lo..=hi).contains(&i128::from(t)) {
            return Err(corruption(at, "rollup total (meters x i32)", 0, t as u64));
        }
        entries.push(RollupEntry {
            ts_utc,
            step_min,
            meters: m32,
            total: t,
        });
        ts = Some(ts_utc);
        meters = m;
        total = t;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quality;

    fn p(ts_utc: i64, value: i32, step_min: u16) -> Point {
        Point {
            ts_utc,
            value,
            step_min,
            quality: Quality::Measured,
        }
    }

    #[test]
    fn sums_are_kept_by_instant_whatever_the_instant_and_round_trip() {
        let mut r = Rollups::default();
        for _ in 0..ROLLUP_MIN_SERIES {
            r.add_series(Channel::CONSUMPTION);
        }
        r.add_series(Channel::PRODUCTION);
        // Minute instants near the first, an off-minute one, one far before and one far after.
        r.add_points(
            Channel::CONSUMPTION,
            [
                p(1_000_020, 5, 30),
                p(1_001_820, -7, 10),
                p(1_001_830, 1, 1),
            ]
            .into_iter(),
        );
        r.add_points(
            Channel::CONSUMPTION,
            [
                p(-5_000_000, 2, 60),
                p(1_000_020, 6, 60),
                p(90_000_000, 3, 15),
            ]
            .into_iter(),
        );
        r.add_points(Channel::PRODUCTION, [p(0, 1, 30)].into_iter());
        let rollups = r.finish();
        let want = vec![
            RollupEntry {
                ts_utc: -5_000_000,
                step_min: 60,
                meters: 1,
                total: 2,
            },
            RollupEntry {
                ts_utc: 1_000_020,
                step_min: 60,
                meters: 2,
                total: 11,
            },
            RollupEntry {
                ts_utc: 1_001_820,
                step_min: 10,
                meters: 1,
                total: -7,
            },
            RollupEntry {
                ts_utc: 1_001_830,
                step_min: 1,
                meters: 1,
                total: 1,
            },
            RollupEntry {
                ts_utc: 90_000_000,
                step_min: 15,
                meters: 1,
                total: 3,
            },
        ];
        assert_eq!(
            rollups,
            vec![
                ChannelRollup {
                    channel: Channel::CONSUMPTION,
                    entries: Some(want)
                },
                ChannelRollup {
                    channel: Channel::PRODUCTION,
                    entries: None
                }
            ]
        );
        let bytes = encode(&rollups);
        assert_eq!(decode(&bytes, 0, 5).expect("decodes"), rollups);
        // Every flipped bit is refused by the crc.
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = decode(&bad, 0, 5).expect_err("a flipped bit is refused");
            assert_eq!(err.kind(), crate::ErrorKind::Corruption, "bit {bit}: {err}");
        }
    }
}

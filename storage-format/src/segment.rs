//! The segment file: blocks grouped by meter, an index searchable in place, checksums, a footer.
//!
//! API contract (other crates code against it):
//! - [`SegmentBuilder`] writes a segment as a stream of byte chunks: the caller appends what each
//!   call leaves in `out` to its file, in order. Series keys `(meter, channel)` are added in strictly
//!   increasing order (meter bytes, then channel code); within a key, blocks in increasing time
//!   without overlap. Only the index is held in memory. Blocks may be encoded apart, on other
//!   threads, into [`BlockRun`]s of consecutive keys, and appended in key order
//!   ([`SegmentBuilder::append_run`]): the file is byte for byte the one the same calls on the
//!   builder write.
//! - [`Segment::open`] checks header and footer only (with the fence table, the footer area's
//!   small top-level index: 74 bytes per ~2 KiB page); [`Segment::blocks`] binary-searches the index
//!   through the slice (an mmap) and validates only the index parts it touches;
//!   [`BlockRef::decode_into`] checks the checksum covering the block (its meter group's in v2)
//!   then decodes it; [`Segment::verify`] checks everything.
//! - Writers write [`FORMAT_VERSION`] (5); readers read versions 1 to 5, differences gated on the
//!   `supports_*` predicates.
//! - Since v3 a segment may hold daily energy and index channels; the register of each index
//!   channel it holds is named in its register table ([`SegmentBuilder::name_register`],
//!   [`Segment::register_name`]). Since v4 it may hold price series (channel 4).
//! - Since v5 a segment keeps, per channel with intervals, the sum and count of its series' values
//!   at each instant ([`Segment::rollups`], [`crate::rollup`]): the builder computes them.
//!
//! Layout, checksums and the truncation/corruption rules: `FORMAT.md` §3.

use crate::bits::{put_varint, zigzag32, zigzag64, Reader};
use crate::block::{self, DecodedBlock};
use crate::rollup::{self, ChannelRollup, Rollups};
use crate::{
    valid_register_name, BlockSummary, Channel, Error, Point, METER_ID_MAX_LEN,
    REGISTER_NAME_MAX_LEN, STEP_MIN_MAX,
};

/// First bytes of every segment: non-ASCII, CR-LF and ^Z catch transfers that mangle bytes.
pub const MAGIC: [u8; 8] = *b"\x89CRBSEG\x1a";
/// Last bytes of every complete segment.
pub const END_MAGIC: [u8; 8] = *b"\x1aGESBRC\x89";

/// The version this crate writes.
pub const FORMAT_VERSION: u16 = 5;
/// The newest version this crate reads (and every one before it).
pub const NEWEST_READABLE_VERSION: u16 = 5;

/// Header: magic, version u16, reserved u16, partition u32, seq u64, reserved u32, crc32 u32.
pub const HEADER_LEN: usize = 8 + 2 + 2 + 4 + 8 + 4 + 4;
/// Footer: index offset u64, fence offset u64, series u64, blocks u64, points u64, page count
/// u32, fence crc32 u32, reserved u32, footer crc32 u32, end magic.
pub const FOOTER_LEN: usize = 8 + 8 + 8 + 8 + 8 + 4 + 4 + 4 + 4 + 8;
/// One fence: meter length u8, meter bytes zero-padded to 64, channel u8, page offset u64.
pub const FENCE_LEN: usize = 1 + METER_ID_MAX_LEN + 1 + 8;
/// An index page is closed once its body reaches this many bytes.
pub const PAGE_TARGET_LEN: usize = 2048;
/// Page header before its series entries: crc32 u32, first block offset u64.
pub const PAGE_HEADER_LEN: usize = 4 + 8;

/// Whether a segment of `version` stores per-block summaries in its index entries.
pub fn supports_index_summaries(version: u16) -> bool {
    version >= 1
}

/// Whether the blocks of a segment of `version` leave out the header their index entries hold or
/// imply: `count`, `first_ts`, the step runs when the step is uniform, the timestamps when every
/// point is on the grid, the quality when every point is measured (FORMAT.md §2, §3.2).
pub fn supports_headerless_blocks(version: u16) -> bool {
    version >= 2
}

/// Whether the blocks of a segment of `version` may code their timestamps as deviations from the
/// grid anchored at the first point (timestamp mode 3, FORMAT.md §2.2).
pub fn supports_anchored_timestamps(version: u16) -> bool {
    version >= 2
}

/// Whether the blocks of a segment of `version` may code their timestamp exceptions in steps
/// (timestamp mode 4, FORMAT.md §2.2).
pub fn supports_step_exceptions(version: u16) -> bool {
    version >= 2
}

/// Whether the blocks of a segment of `version` may code values with the trained rANS codec
/// (value codec 2, FORMAT.md §2.5.2).
pub fn supports_trained_codec(version: u16) -> bool {
    version >= 2
}

/// Whether a segment of `version` keeps one crc32 per meter group, over all of the group's blocks
/// (FORMAT.md §3.3), rather than one per block in each entry.
pub fn supports_group_crc(version: u16) -> bool {
    version >= 2
}

/// Whether a segment of `version` may hold the daily energy channel (code 3, bit 3 of a group's
/// channel mask; FORMAT.md §3.3).
pub fn supports_daily_energy(version: u16) -> bool {
    version >= 3
}

/// Whether a segment of `version` may hold the price channel (code 4, bit 4 of a group's channel
/// mask; FORMAT.md §3.3): signed centi-EUR/MWh, coded by the same block codec as the curves.
pub fn supports_price_channel(version: u16) -> bool {
    version >= 4
}

/// Whether a segment of `version` has a rollup section (FORMAT.md §3.10): for each channel with
/// intervals it holds, the sum and count of its series' values at each instant, kept when it holds
/// at least [`crate::rollup::ROLLUP_MIN_SERIES`] series of it; its length in the 4 bytes before
/// the register table.
pub fn supports_rollups(version: u16) -> bool {
    version >= 5
}

/// Whether a segment of `version` may hold index channels (codes 16..=255): listed after a
/// group's channel mask when its bit 6 is set, and in fences (FORMAT.md §3.3, §3.4).
pub fn supports_index_channels(version: u16) -> bool {
    version >= 3
}

/// Whether a segment of `version` has a register table naming the register of each index
/// channel it holds, between the fence table and the footer, its length in the footer's word at
/// offset 48 (reserved, 0, before v3; FORMAT.md §3.5, §3.9).
pub fn supports_register_table(version: u16) -> bool {
    version >= 3
}

/// Whether the blocks of the index channels of a segment of `version` code their increments
/// (each value minus the previous one, the first minus the entry's `min_value`; FORMAT.md §3.2)
/// instead of their values: a running index then costs what a day's consumption costs.
pub fn supports_index_increments(version: u16) -> bool {
    version >= 3
}

/// Whether a segment of `version` writes its block entries in the v2 layout (FORMAT.md §3.3):
/// a flags byte, `count` and `step_min` only when they change along their channel's chain,
/// times on the block's step grid, the `tail` implied by a uniform step, `first_ts` chained per
/// channel, and groups whose series all hold one block flagged in their channel mask.
pub fn supports_grid_entries(version: u16) -> bool {
    version >= 2
}

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

fn corruption(offset: u64, what: &'static str, expected: u64, found: u64) -> Error {
    Error::Corruption {
        offset,
        what,
        expected,
        found,
    }
}

/// What the engine records about a segment, stored in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SegmentMeta {
    /// Time partition the segment belongs to (engine-defined, e.g. a month number).
    pub partition: u32,
    /// Sequence number, unique in a store; higher is newer.
    pub seq: u64,
}

/// Totals of a finished segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SegmentStats {
    pub series: u64,
    pub blocks: u64,
    pub points: u64,
    pub bytes: u64,
}

/// An index entry waiting for its series to be complete.
#[derive(Clone, Copy, Debug)]
struct PendingBlock {
    len: u64,
    summary: BlockSummary,
    /// Every point is on the grid of its steps.
    on_grid: bool,
}

pub struct SegmentBuilder {
    /// Bytes handed out so far: the file offset of the next byte.
    offset: u64,
    /// Closed pages, in order, and one fence per page.
    pages: Vec<u8>,
    fences: Vec<u8>,
    page_count: u32,
    /// Body of the open page (after its header), its first block offset and first key.
    page: Vec<u8>,
    page_first_offset: u64,
    /// The page's last entry of each channel (zeros before the first).
    page_chain: Chains,
    /// Register names given by `name_register`, by index channel code.
    register_names: Vec<(u8, String)>,
    /// Index channel codes that hold blocks (bit `code` of the 256).
    used_codes: [u64; 4],
    /// Key of the last block added.
    key: Option<(String, Channel)>,
    /// The meter being added: offset of its first block, crc of its blocks so far and its
    /// series so far.
    group_offset: u64,
    group_crc: crc32fast::Hasher,
    group: Vec<(Channel, Vec<PendingBlock>)>,
    stats: SegmentStats,
    /// Sums of the channels with intervals (v5).
    rollups: Rollups,
    /// Points of a copied block, decoded for the rollups.
    scratch: DecodedBlock,
}

impl SegmentBuilder {
    /// Starts a segment; appends the header to `out`.
    pub fn new(meta: SegmentMeta, out: &mut Vec<u8>) -> SegmentBuilder {
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&meta.partition.to_le_bytes());
        out.extend_from_slice(&meta.seq.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        let sum = crc(&out[start..]);
        out.extend_from_slice(&sum.to_le_bytes());
        SegmentBuilder {
            offset: HEADER_LEN as u64,
            pages: Vec::new(),
            fences: Vec::new(),
            page_count: 0,
            page: Vec::new(),
            page_first_offset: 0,
            page_chain: Chains::default(),
            register_names: Vec::new(),
            used_codes: [0; 4],
            key: None,
            group_offset: 0,
            group_crc: crc32fast::Hasher::new(),
            group: Vec::new(),
            stats: SegmentStats::default(),
            rollups: Rollups::default(),
            scratch: DecodedBlock::default(),
        }
    }

    /// Names the register of index channel `channel` (since v3: every index channel that holds a
    /// block must be named before [`finish`](Self::finish)). Naming a code again with the same
    /// name does nothing; another name, or a name already given to another code, is refused.
    /// Only the names of codes that hold blocks are written.
    pub fn name_register(&mut self, channel: Channel, name: &str) -> Result<(), Error> {
        if !channel.is_index() {
            return Err(Error::InvalidArgument {
                what: format!("register name {name:?} for {channel:?}, not an index channel"),
            });
        }
        if !valid_register_name(name) {
            return Err(Error::InvalidArgument {
                what: format!(
                    "register name {name:?} is not 1 to {REGISTER_NAME_MAX_LEN} characters of [A-Z0-9_]"
                ),
            });
        }
        for (code, known) in &self.register_names {
            let same_code = *code == channel.code();
            if same_code && known == name {
                return Ok(());
            }
            if same_code || known == name {
                return Err(Error::InvalidArgument {
                    what: format!(
                        "register name {name:?} for code {}: code {code} is named {known:?}",
                        channel.code()
                    ),
                });
            }
        }
        self.register_names.push((channel.code(), name.to_owned()));
        Ok(())
    }

    /// Encodes one block of `(meter, channel)` and appends it to `out`.
    pub fn add_block(
        &mut self,
        meter: &str,
        channel: Channel,
        points: &[Point],
        out: &mut Vec<u8>,
    ) -> Result<BlockSummary, Error> {
        let same_key = self.check_key(meter, channel, points.first().map(|p| p.ts_utc))?;
        let start = out.len();
        let (summary, on_grid) = encode_points(meter, channel, points, out)?;
        self.record(meter, channel, same_key, out, start, summary, on_grid);
        if channel.has_intervals() {
            self.rollups.add_points(channel, points.iter().copied());
        }
        Ok(summary)
    }

    /// Appends `block`, a block of a segment of the current version, as it is (no decoding, no
    /// encoding): the bytes and index entry [`add_block`](Self::add_block) writes for its
    /// points. Its checksum is checked first, so a damaged block is reported, never copied. A
    /// block of an older version is refused: decode it and [`add_block`](Self::add_block) its
    /// points.
    pub fn add_encoded_block(
        &mut self,
        meter: &str,
        channel: Channel,
        block: &BlockRef<'_>,
        out: &mut Vec<u8>,
    ) -> Result<BlockSummary, Error> {
        self.copy_block(meter, channel, block, out, false)
    }

    /// Appends `block` as [`add_encoded_block`](Self::add_encoded_block) does, without decoding
    /// it: its sums at each instant come with the rollup of its segment, which the caller adds
    /// by [`add_carried_rollup`](Self::add_carried_rollup) once every block of that channel of
    /// that segment was added this way (a compaction copying whole series of an input none of
    /// whose series it rewrites). [`finish`](Self::finish) refuses a segment whose blocks added
    /// so count other points than the carried rollups.
    pub fn add_encoded_block_carried(
        &mut self,
        meter: &str,
        channel: Channel,
        block: &BlockRef<'_>,
        out: &mut Vec<u8>,
    ) -> Result<BlockSummary, Error> {
        self.copy_block(meter, channel, block, out, true)
    }

    /// The one block copy: checks, appends, records; a channel with intervals has its sums
    /// either decoded from the block or counted as carried by its segment's rollup.
    fn copy_block(
        &mut self,
        meter: &str,
        channel: Channel,
        block: &BlockRef<'_>,
        out: &mut Vec<u8>,
        carried: bool,
    ) -> Result<BlockSummary, Error> {
        check_copied(channel, block)?;
        let same_key = self.check_key(meter, channel, Some(block.summary.first_ts))?;
        let decode = channel.has_intervals() && !carried;
        if decode {
            // The rollups need the points: decoded, never re-encoded.
            block.decode_into(&mut self.scratch)?;
        }
        let start = out.len();
        out.extend_from_slice(block.bytes);
        let summary = block.summary;
        self.record(meter, channel, same_key, out, start, summary, block.on_grid);
        if decode {
            self.rollups.add_points(channel, self.scratch.points());
        } else if channel.has_intervals() {
            self.rollups
                .count_carried(channel, u64::from(summary.count));
        }
        Ok(summary)
    }

    /// Appends the blocks of `run` to `out`, in order, as the calls that added them to the run
    /// would have if made here (same checks of the key order, same bytes, same index, same
    /// sums). On an error, the blocks of the run before the failing one are appended.
    pub fn append_run(&mut self, run: &BlockRun, out: &mut Vec<u8>) -> Result<(), Error> {
        let mut at = 0usize;
        for b in &run.blocks {
            let meter = run
                .meters
                .get(b.meter.0 as usize..b.meter.1 as usize)
                .unwrap_or_default();
            let same_key = self.check_key(meter, b.channel, b.first_ts)?;
            let end = at + b.len as usize;
            let start = out.len();
            out.extend_from_slice(run.bytes.get(at..end).unwrap_or_default());
            at = end;
            self.record(meter, b.channel, same_key, out, start, b.summary, b.on_grid);
        }
        self.rollups.absorb(&run.rollups);
        Ok(())
    }

    /// Adds the sums of a rollup of `channel` (a channel with intervals) carried from a
    /// segment whose blocks of that channel were all added by
    /// [`add_encoded_block_carried`](Self::add_encoded_block_carried).
    pub fn add_carried_rollup(
        &mut self,
        channel: Channel,
        entries: &[crate::rollup::RollupEntry],
    ) -> Result<(), Error> {
        if !channel.has_intervals() {
            return Err(Error::InvalidArgument {
                what: format!("a rollup of {channel:?}, a channel without intervals"),
            });
        }
        self.rollups.add_carried(channel, entries);
        Ok(())
    }

    /// Checks the key of a new block of `(meter, channel)` starting at `first_ts`: in key order,
    /// after the previous block of the same series. Returns whether the series is the last one.
    fn check_key(
        &self,
        meter: &str,
        channel: Channel,
        first_ts: Option<i64>,
    ) -> Result<bool, Error> {
        if meter.is_empty() || meter.len() > METER_ID_MAX_LEN {
            return Err(Error::InvalidArgument {
                what: format!(
                    "meter id of {} bytes (1 to {METER_ID_MAX_LEN})",
                    meter.len()
                ),
            });
        }
        let same_key = match &self.key {
            Some((m, c)) => {
                let order = (m.as_bytes(), *c).cmp(&(meter.as_bytes(), channel));
                match order {
                    std::cmp::Ordering::Less => false,
                    std::cmp::Ordering::Equal => true,
                    std::cmp::Ordering::Greater => {
                        return Err(Error::InvalidArgument {
                            what: format!(
                                "series ({meter}, {}) added after ({m}, {})",
                                channel.as_str(),
                                c.as_str()
                            ),
                        })
                    }
                }
            }
            None => false,
        };
        if same_key {
            let prev = self.group.last().and_then(|(_, blocks)| blocks.last());
            if let (Some(prev), Some(first_ts)) = (prev, first_ts) {
                if first_ts <= prev.summary.last_ts {
                    return Err(Error::InvalidArgument {
                        what: format!(
                            "block of {meter} starting at {first_ts} overlaps the previous one (ending {})",
                            prev.summary.last_ts
                        ),
                    });
                }
            }
        }
        Ok(same_key)
    }

    /// Records the block just appended to `out` at `start`.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        meter: &str,
        channel: Channel,
        same_key: bool,
        out: &[u8],
        start: usize,
        summary: BlockSummary,
        on_grid: bool,
    ) {
        let len = (out.len() - start) as u64;
        if !same_key {
            let same_meter = self.key.as_ref().is_some_and(|(m, _)| m == meter);
            if !same_meter {
                self.flush_group();
                self.group_offset = self.offset;
                self.group_crc = crc32fast::Hasher::new();
            }
            self.key = Some((meter.to_owned(), channel));
            self.group.push((channel, Vec::new()));
            self.stats.series += 1;
            if channel.has_intervals() {
                self.rollups.add_series(channel);
            }
        }
        self.group_crc.update(&out[start..]);
        set_bit(&mut self.used_codes, channel.code());
        if let Some((_, blocks)) = self.group.last_mut() {
            blocks.push(PendingBlock {
                len,
                summary,
                on_grid,
            });
        }
        self.offset += len;
        self.stats.blocks += 1;
        self.stats.points += u64::from(summary.count);
    }

    /// Moves the pending meter group into the open page, closing the page when it is full.
    fn flush_group(&mut self) {
        let (Some((meter, _)), Some(&(first_channel, _))) = (&self.key, self.group.first()) else {
            return;
        };
        if self.page.is_empty() {
            self.page_first_offset = self.group_offset;
            self.page_chain = Chains::default();
            let mut fence = [0u8; FENCE_LEN];
            fence[0] = meter.len() as u8;
            fence[1..1 + meter.len()].copy_from_slice(meter.as_bytes());
            fence[1 + METER_ID_MAX_LEN] = first_channel.code();
            // Page offsets are relative to the index until `finish` knows where it starts.
            fence[2 + METER_ID_MAX_LEN..].copy_from_slice(&(self.pages.len() as u64).to_le_bytes());
            self.fences.extend_from_slice(&fence);
        }
        let page = &mut self.page;
        page.push(meter.len() as u8);
        page.extend_from_slice(meter.as_bytes());
        let mut mask = 0u8;
        let mut index_codes = 0u8;
        for (c, _) in &self.group {
            if c.is_index() {
                index_codes += 1;
            } else {
                mask |= 1 << c.code();
            }
        }
        if index_codes > 0 {
            mask |= HAS_INDEXES;
        }
        let single = self.group.iter().all(|(_, blocks)| blocks.len() == 1);
        page.push(if single { mask | SINGLE_BLOCKS } else { mask });
        if index_codes > 0 {
            // At most 240 index codes, in key order (ascending) like the group's series.
            page.push(index_codes);
            page.extend(
                self.group
                    .iter()
                    .filter(|(c, _)| c.is_index())
                    .map(|(c, _)| c.code()),
            );
        }
        page.extend_from_slice(&self.group_crc.clone().finalize().to_le_bytes());
        for (channel, blocks) in self.group.drain(..) {
            if !single {
                put_varint(page, blocks.len() as u64);
            }
            let chain = self.page_chain.get_mut(channel.code());
            for b in &blocks {
                encode_entry(page, b, chain);
                *chain = Chain::of(&b.summary);
            }
        }
        if self.page.len() >= PAGE_TARGET_LEN {
            self.close_page();
        }
    }

    fn close_page(&mut self) {
        if self.page.is_empty() {
            return;
        }
        let mut body = Vec::with_capacity(8 + self.page.len());
        body.extend_from_slice(&self.page_first_offset.to_le_bytes());
        body.extend_from_slice(&self.page);
        self.pages.extend_from_slice(&crc(&body).to_le_bytes());
        self.pages.extend_from_slice(&body);
        self.page.clear();
        self.page_count += 1;
    }

    /// Appends the index, the register table and the footer to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<SegmentStats, Error> {
        if let Some((channel, blocks, carried)) = self.rollups.carried_mismatch() {
            return Err(Error::InvalidArgument {
                what: format!(
                    "{channel:?}: blocks copied without their sums hold {blocks} points, the \
                     rollups carried for them count {carried}"
                ),
            });
        }
        let mut names: Vec<(u8, &str)> = self
            .register_names
            .iter()
            .filter(|(code, _)| has_bit(&self.used_codes, *code))
            .map(|(code, name)| (*code, name.as_str()))
            .collect();
        names.sort_unstable();
        let unnamed = (Channel::INDEX_FIRST_CODE..=u8::MAX).find(|&code| {
            has_bit(&self.used_codes, code) && !names.iter().any(|(c, _)| *c == code)
        });
        if let Some(code) = unnamed {
            return Err(Error::InvalidArgument {
                what: format!("index channel {code} holds blocks but its register is not named"),
            });
        }
        let mut registers = Vec::new();
        if !names.is_empty() {
            registers.push(names.len() as u8);
            for (code, name) in &names {
                registers.push(*code);
                registers.push(name.len() as u8);
                registers.extend_from_slice(name.as_bytes());
            }
            let sum = crc(&registers);
            registers.splice(0..0, sum.to_le_bytes());
        }
        self.flush_group();
        self.close_page();
        let index_offset = self.offset;
        let fence_offset = index_offset + self.pages.len() as u64;
        for fence in self.fences.chunks_exact_mut(FENCE_LEN) {
            let at = 2 + METER_ID_MAX_LEN;
            let mut rel = [0u8; 8];
            rel.copy_from_slice(&fence[at..]);
            let abs = index_offset + u64::from_le_bytes(rel);
            fence[at..].copy_from_slice(&abs.to_le_bytes());
        }
        out.extend_from_slice(&self.pages);
        out.extend_from_slice(&self.fences);
        // This crate writes the newest version only: the rollups (`supports_rollups`).
        let rollups = rollup::encode(&self.rollups.finish());
        out.extend_from_slice(&rollups);
        out.extend_from_slice(&(rollups.len() as u32).to_le_bytes());
        out.extend_from_slice(&registers);
        let footer_start = out.len();
        out.extend_from_slice(&index_offset.to_le_bytes());
        out.extend_from_slice(&fence_offset.to_le_bytes());
        out.extend_from_slice(&self.stats.series.to_le_bytes());
        out.extend_from_slice(&self.stats.blocks.to_le_bytes());
        out.extend_from_slice(&self.stats.points.to_le_bytes());
        out.extend_from_slice(&self.page_count.to_le_bytes());
        out.extend_from_slice(&crc(&self.fences).to_le_bytes());
        out.extend_from_slice(&(registers.len() as u32).to_le_bytes());
        let sum = crc(&out[footer_start..]);
        out.extend_from_slice(&sum.to_le_bytes());
        out.extend_from_slice(&END_MAGIC);
        self.stats.bytes = fence_offset
            + self.fences.len() as u64
            + rollups.len() as u64
            + 4
            + registers.len() as u64
            + FOOTER_LEN as u64;
        Ok(self.stats)
    }
}

/// Checks a block of `(meter, channel)` (all but its key order) and appends its encoding to
/// `out`: its summary and whether every point is on the grid of its steps. Leaves `out` as it
/// was on failure.
fn encode_points(
    meter: &str,
    channel: Channel,
    points: &[Point],
    out: &mut Vec<u8>,
) -> Result<(BlockSummary, bool), Error> {
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        if last.ts_utc.checked_sub(first.ts_utc).is_none() {
            return Err(Error::InvalidArgument {
                what: format!("block of {meter} spans more than i64::MAX seconds"),
            });
        }
    }
    if Channel::from_u8(channel.code(), FORMAT_VERSION).is_none() {
        return Err(Error::InvalidArgument {
            what: format!("channel code {} is reserved", channel.code()),
        });
    }
    let start = out.len();
    // An index channel codes its increments (`supports_index_increments`); its entry keeps
    // the summary of its values.
    let increments: Vec<Point>;
    let coded = if channel.is_index() {
        let mut prev = points.iter().map(|p| p.value).min().unwrap_or(0);
        increments = points
            .iter()
            .map(|p| {
                let d = p.value.wrapping_sub(prev);
                prev = p.value;
                Point { value: d, ..*p }
            })
            .collect();
        &increments[..]
    } else {
        points
    };
    // This crate writes the newest version only: bodies (`supports_headerless_blocks`).
    match block::encode_body_into(coded, out) {
        Ok((_, header)) if channel.is_index() => Ok((block::summarize(points), header.on_grid)),
        Ok((summary, header)) => Ok((summary, header.on_grid)),
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Checks that `block` may be copied as it is into a segment of this version as a block of
/// `channel`, and its checksum.
fn check_copied(channel: Channel, block: &BlockRef<'_>) -> Result<(), Error> {
    if block.version != FORMAT_VERSION || block.increments != channel.is_index() {
        return Err(Error::InvalidArgument {
            what: format!(
                "a block of a version {} segment is not copied into version {FORMAT_VERSION}",
                block.version
            ),
        });
    }
    block.check_crc()
}

/// One block of a [`BlockRun`].
#[derive(Clone, Debug)]
struct RunBlock {
    /// Its meter: `BlockRun::meters[meter.0..meter.1]`.
    meter: (u32, u32),
    channel: Channel,
    /// `ts_utc` of its first point (`None` for a block without points).
    first_ts: Option<i64>,
    len: u64,
    summary: BlockSummary,
    on_grid: bool,
}

/// Blocks of consecutive series encoded apart from any segment (on another thread, say), for
/// [`SegmentBuilder::append_run`]: a segment built by appending runs is byte for byte the one
/// built by making the same calls on the builder itself, in the same order. Each block is
/// checked and encoded as the builder's call would; the key order is checked when the run is
/// appended. The sums of the rollups are kept here and added to the segment's on append.
#[derive(Debug, Default)]
pub struct BlockRun {
    bytes: Vec<u8>,
    meters: String,
    blocks: Vec<RunBlock>,
    rollups: Rollups,
    scratch: DecodedBlock,
}

impl BlockRun {
    pub fn new() -> BlockRun {
        BlockRun::default()
    }

    /// Whether no block was added.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Bytes of the blocks added.
    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The channel of every block added, in order.
    pub fn channels(&self) -> impl Iterator<Item = Channel> + '_ {
        self.blocks.iter().map(|b| b.channel)
    }

    fn push(
        &mut self,
        meter: &str,
        channel: Channel,
        first_ts: Option<i64>,
        start: usize,
        summary: BlockSummary,
        on_grid: bool,
    ) {
        let same_meter = self.blocks.last().is_some_and(|b| {
            self.meters.get(b.meter.0 as usize..b.meter.1 as usize) == Some(meter)
        });
        let at = match (same_meter, self.blocks.last()) {
            (true, Some(b)) => b.meter,
            _ => {
                let from = self.meters.len() as u32;
                self.meters.push_str(meter);
                (from, self.meters.len() as u32)
            }
        };
        self.blocks.push(RunBlock {
            meter: at,
            channel,
            first_ts,
            len: (self.bytes.len() - start) as u64,
            summary,
            on_grid,
        });
    }

    /// What [`SegmentBuilder::add_block`] does, but for the key order.
    pub fn add_block(
        &mut self,
        meter: &str,
        channel: Channel,
        points: &[Point],
    ) -> Result<BlockSummary, Error> {
        let start = self.bytes.len();
        let (summary, on_grid) = encode_points(meter, channel, points, &mut self.bytes)?;
        self.push(
            meter,
            channel,
            points.first().map(|p| p.ts_utc),
            start,
            summary,
            on_grid,
        );
        if channel.has_intervals() {
            self.rollups.add_points(channel, points.iter().copied());
        }
        Ok(summary)
    }

    /// What [`SegmentBuilder::add_encoded_block`] (`carried` false) or
    /// [`SegmentBuilder::add_encoded_block_carried`] (true) does, but for the key order.
    pub fn add_encoded_block(
        &mut self,
        meter: &str,
        channel: Channel,
        block: &BlockRef<'_>,
        carried: bool,
    ) -> Result<BlockSummary, Error> {
        check_copied(channel, block)?;
        let decode = channel.has_intervals() && !carried;
        if decode {
            block.decode_into(&mut self.scratch)?;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(block.bytes);
        let summary = block.summary;
        self.push(
            meter,
            channel,
            Some(summary.first_ts),
            start,
            summary,
            block.on_grid,
        );
        if decode {
            self.rollups.add_points(channel, self.scratch.points());
        } else if channel.has_intervals() {
            self.rollups
                .count_carried(channel, u64::from(summary.count));
        }
        Ok(summary)
    }
}

/// A duration of at most `i64::MAX` seconds in units of `unit` seconds: `(seconds / unit) << 1`
/// when it is a whole number of units, else `seconds << 1 | 1`.
fn put_units(out: &mut Vec<u8>, seconds: u64, unit: u64) {
    if seconds % unit == 0 {
        put_varint(out, (seconds / unit) << 1);
    } else {
        put_varint(out, (seconds << 1) | 1);
    }
}

/// Reads what [`put_units`] wrote, checked against `min..=max` seconds (a whole number of units
/// coded in seconds is corruption).
fn read_units(
    r: &mut Reader<'_>,
    what: &'static str,
    unit: u64,
    min: u64,
    max: u64,
) -> Result<u64, Error> {
    let at = r.offset();
    let code = r.varint(what)?;
    let seconds = if code & 1 == 1 {
        Some(code >> 1).filter(|s| s % unit != 0)
    } else {
        (code >> 1).checked_mul(unit)
    };
    match seconds {
        Some(s) if (min..=max).contains(&s) => Ok(s),
        _ => Err(corruption(at, what, max, code)),
    }
}

/// Zigzag of a deviation `d ≥ −bound` folded so that it fits in 63 bits: `zigzag(d)` when
/// `|d| ≤ bound`, else `d + bound` (then `d > bound`, and `d + bound` is the quantity the deviation
/// was taken from, at most `i64::MAX`).
fn fold(d: i64, bound: u64) -> u64 {
    if d.unsigned_abs() <= bound {
        zigzag64(d)
    } else {
        (d as u64).wrapping_add(bound)
    }
}

/// Inverse of [`fold`]; `None` when `code` is no fold of a deviation `≥ −bound`.
fn unfold(code: u64, bound: u64) -> Option<i64> {
    if code <= bound.checked_mul(2)? {
        Some(crate::bits::unzigzag64(code))
    } else {
        i64::try_from(code - bound).ok()
    }
}

/// Channel mask bit of a group whose series each hold exactly one block (v2): no block counts.
const SINGLE_BLOCKS: u8 = 0x80;
/// Channel mask bit of a group with index channels (v3): their count and ascending codes follow
/// the mask.
const HAS_INDEXES: u8 = 0x40;
/// Channel mask bits of the named channels a version knows: codes 0..=2, 3 since v3, 4 since v4.
fn named_mask(version: u16) -> u8 {
    if supports_price_channel(version) {
        0x1F
    } else if supports_daily_energy(version) {
        0x0F
    } else {
        0x07
    }
}

fn set_bit(bits: &mut [u64; 4], code: u8) {
    if let Some(word) = bits.get_mut(usize::from(code >> 6)) {
        *word |= 1 << (code & 63);
    }
}

fn has_bit(bits: &[u64; 4], code: u8) -> bool {
    bits.get(usize::from(code >> 6))
        .is_some_and(|w| w & (1 << (code & 63)) != 0)
}

/// Entry flags (v2): which of the fields that usually repeat along a channel are stored.
const HAS_COUNT: u8 = 1;
const HAS_STEP: u8 = 2;
const HAS_NON_MEASURED: u8 = 4;
/// Every point is on the grid of its steps: the block has no timestamp section and, with a
/// uniform step, the entry no `span`.
const ON_GRID: u8 = 8;

/// What a block entry is coded against: the previous entry of its channel in the page (v2; v1
/// chains only `first_ts`, over the whole page).
#[derive(Clone, Copy, Debug, Default)]
struct Chain {
    first_ts: i64,
    count: u32,
    step_min: u16,
}

/// The entry chains of a page, one per channel code: the named channels inline, index channels
/// (rare, a few per page) in a short list.
#[derive(Clone, Debug, Default)]
struct Chains {
    named: [Chain; 5],
    index: Vec<(u8, Chain)>,
}

impl Chains {
    fn get_mut(&mut self, code: u8) -> &mut Chain {
        if let Some(c) = self.named.get_mut(usize::from(code)) {
            return c;
        }
        let at = match self.index.iter().position(|(c, _)| *c == code) {
            Some(at) => at,
            None => {
                self.index.push((code, Chain::default()));
                self.index.len() - 1
            }
        };
        &mut self.index[at].1
    }
}

impl Chain {
    fn of(s: &BlockSummary) -> Chain {
        Chain {
            first_ts: s.first_ts,
            count: s.count,
            step_min: s.step_min,
        }
    }
}

/// Index entry of one block, v2 layout (see FORMAT.md, "Block entry").
fn encode_entry(out: &mut Vec<u8>, b: &PendingBlock, prev: &Chain) {
    let s = &b.summary;
    put_varint(out, b.len);
    let flag = |set: bool, bit: u8| if set { bit } else { 0 };
    let flags = flag(s.count != prev.count, HAS_COUNT)
        | flag(s.step_min != prev.step_min, HAS_STEP)
        | flag(s.non_measured != 0, HAS_NON_MEASURED)
        | flag(b.on_grid, ON_GRID);
    out.push(flags);
    if flags & HAS_COUNT != 0 {
        put_varint(out, u64::from(s.count));
    }
    if flags & HAS_STEP != 0 {
        put_varint(out, u64::from(s.step_min));
    }
    put_varint(out, zigzag64(s.first_ts.wrapping_sub(prev.first_ts)));
    let span = s.last_ts.wrapping_sub(s.first_ts) as u64;
    let unit = time_unit(s.step_min);
    if s.step_min == 0 {
        put_units(out, span, unit);
        put_units(out, s.end_ts.wrapping_sub(s.last_ts) as u64, unit);
    } else if !b.on_grid {
        let grid = u64::from(s.count - 1) * unit;
        let d = span.wrapping_sub(grid) as i64;
        if d % unit as i64 == 0 {
            put_varint(out, zigzag64(d / unit as i64) << 1);
        } else {
            put_varint(out, (fold(d, grid) << 1) | 1);
        }
    }
    put_varint(out, zigzag64(s.sum_value));
    if s.step_min == 0 {
        put_varint(out, zigzag64(s.sum_energy_wmin));
    }
    put_varint(out, u64::from(zigzag32(s.min_value)));
    put_units(out, s.min_ts.wrapping_sub(s.first_ts) as u64, unit);
    put_varint(
        out,
        (i64::from(s.max_value) - i64::from(s.min_value)) as u64,
    );
    put_units(out, s.max_ts.wrapping_sub(s.first_ts) as u64, unit);
    if flags & HAS_NON_MEASURED != 0 {
        put_varint(out, u64::from(s.non_measured));
    }
}

/// Unit of the times of a v2 entry: one step when the block's step is uniform, else a minute.
fn time_unit(step_min: u16) -> u64 {
    60 * u64::from(step_min.max(1))
}

/// A segment read in place from a byte slice (typically an mmap).
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    bytes: &'a [u8],
    meta: SegmentMeta,
    stats: SegmentStats,
    version: u16,
    index_offset: u64,
    fence_offset: u64,
    page_count: u32,
    /// (v3) The register table: its offset and length (0: none).
    registers_offset: u64,
    registers_len: u32,
    /// (v5) The rollup section: its offset and length (0: the segment holds no channel with
    /// intervals).
    rollups_offset: u64,
    rollups_len: u32,
    /// The index channel codes the register table names (bit `code`).
    named: [u64; 4],
}

impl<'a> Segment<'a> {
    pub fn open(bytes: &'a [u8]) -> Result<Segment<'a>, Error> {
        let mut r = Reader::new(bytes, 0);
        let header = r.take(HEADER_LEN, "segment header")?;
        let mut h = Reader::new(header, 0);
        let magic = h.array::<8>("magic")?;
        if magic != MAGIC {
            return Err(corruption(
                0,
                "segment magic",
                u64::from_le_bytes(MAGIC),
                u64::from_le_bytes(magic),
            ));
        }
        let stored = u32::from_le_bytes(tail4(header));
        let computed = crc(&header[..HEADER_LEN - 4]);
        if stored != computed {
            return Err(corruption(
                (HEADER_LEN - 4) as u64,
                "header crc32",
                u64::from(computed),
                u64::from(stored),
            ));
        }
        let version = h.u16("format version")?;
        if version == 0 {
            return Err(corruption(8, "format version", 1, 0));
        }
        if version > NEWEST_READABLE_VERSION {
            return Err(Error::Compatibility {
                found_version: version,
                newest_supported: NEWEST_READABLE_VERSION,
            });
        }
        let reserved = h.u16("header reserved")?;
        let partition = h.u32("partition")?;
        let seq = h.u64("seq")?;
        let reserved2 = h.u32("header reserved")?;
        if reserved != 0 || reserved2 != 0 {
            return Err(corruption(
                10,
                "header reserved bytes",
                0,
                u64::from(reserved) | u64::from(reserved2),
            ));
        }

        let len = bytes.len() as u64;
        let min_len = (HEADER_LEN + FOOTER_LEN) as u64;
        if len < min_len {
            return Err(Error::Truncated {
                offset: len,
                what: "segment footer",
                needed: min_len - len,
                available: 0,
            });
        }
        let footer_at = bytes.len() - FOOTER_LEN;
        let footer = bytes.get(footer_at..).unwrap_or_default();
        let mut end_magic = [0u8; 8];
        end_magic.copy_from_slice(footer.get(FOOTER_LEN - 8..).unwrap_or(&[0; 8]));
        if end_magic != END_MAGIC {
            let distance =
                (u64::from_le_bytes(end_magic) ^ u64::from_le_bytes(END_MAGIC)).count_ones();
            // A torn file ends wherever the write stopped; a damaged footer is within a few bits
            // of the end magic.
            if distance <= 2 {
                return Err(corruption(
                    len - 8,
                    "end magic",
                    u64::from_le_bytes(END_MAGIC),
                    u64::from_le_bytes(end_magic),
                ));
            }
            return Err(Error::Truncated {
                offset: len,
                what: "segment footer (end magic not found)",
                needed: 8,
                available: 0,
            });
        }
        let stored = u32::from_le_bytes(tail4(&footer[..FOOTER_LEN - 8]));
        let computed = crc(&footer[..FOOTER_LEN - 12]);
        if stored != computed {
            return Err(corruption(
                len - 12,
                "footer crc32",
                u64::from(computed),
                u64::from(stored),
            ));
        }
        let mut f = Reader::new(footer, footer_at as u64);
        let index_offset = f.u64("index offset")?;
        let fence_offset = f.u64("fence offset")?;
        let series = f.u64("series count")?;
        let blocks = f.u64("block count")?;
        let points = f.u64("point count")?;
        let page_count = f.u32("page count")?;
        let fence_crc = f.u32("fence crc32")?;
        // Reserved (0) before v3; since v3 the length of the register table.
        let registers_len = f.u32("footer register table length")?;
        let at = footer_at as u64;
        if registers_len != 0 && !supports_register_table(version) {
            return Err(corruption(
                at + 48,
                "footer reserved bytes",
                0,
                u64::from(registers_len),
            ));
        }
        let fence_len = u64::from(page_count) * FENCE_LEN as u64;
        let registers_offset = at.saturating_sub(u64::from(registers_len));
        if index_offset < HEADER_LEN as u64 || index_offset > fence_offset {
            return Err(corruption(
                at,
                "index offset",
                HEADER_LEN as u64,
                index_offset,
            ));
        }
        // (v5) The rollup section's length, in the 4 bytes before the register table.
        let (rollups_offset, rollups_len) = if supports_rollups(version) {
            let len_at = registers_offset.saturating_sub(4);
            let raw = slice(bytes, len_at, 4, "rollup length")?;
            let len = u32::from_le_bytes(tail4(raw));
            (len_at.saturating_sub(u64::from(len)), len)
        } else {
            (registers_offset, 0)
        };
        let rollups_end =
            rollups_offset + u64::from(rollups_len) + if supports_rollups(version) { 4 } else { 0 };
        if fence_offset.checked_add(fence_len) != Some(rollups_offset)
            || rollups_end != registers_offset
            || u64::from(registers_len) > at
            || rollups_end > at
        {
            return Err(corruption(
                at + 8,
                "fence offset",
                rollups_offset.saturating_sub(fence_len),
                fence_offset,
            ));
        }
        if (page_count == 0) != (index_offset == fence_offset)
            || page_count as u64 > series
            || series > blocks
            || blocks > points
        {
            return Err(corruption(
                at + 40,
                "page count",
                series,
                u64::from(page_count),
            ));
        }
        let fences = slice(bytes, fence_offset, fence_len, "fence table")?;
        let computed = crc(fences);
        if computed != fence_crc {
            return Err(corruption(
                at + 44,
                "fence crc32",
                u64::from(computed),
                u64::from(fence_crc),
            ));
        }
        let registers = slice(
            bytes,
            registers_offset,
            u64::from(registers_len),
            "register table",
        )?;
        // The table lies inside a complete file: running out of bytes inside it is corruption.
        let named = named_codes(registers, registers_offset).map_err(|e| match e {
            Error::Truncated {
                offset,
                what,
                needed,
                ..
            } => corruption(offset, what, needed, 0),
            other => other,
        })?;
        let rollup_section = slice(bytes, rollups_offset, u64::from(rollups_len), "rollups")?;
        rollup::check_crc(rollup_section, rollups_offset).map_err(|e| match e {
            Error::Truncated {
                offset,
                what,
                needed,
                ..
            } => corruption(offset, what, needed, 0),
            other => other,
        })?;
        let segment = Segment {
            rollups_offset,
            rollups_len,
            registers_offset,
            registers_len,
            named,
            bytes,
            meta: SegmentMeta { partition, seq },
            stats: SegmentStats {
                series,
                blocks,
                points,
                bytes: len,
            },
            version,
            index_offset,
            fence_offset,
            page_count,
        };
        // Fences: keys strictly increasing, pages in order inside the index.
        let mut prev: Option<Fence<'_>> = None;
        for i in 0..page_count {
            let fence = segment.fence(i)?;
            let fence_at = segment.fence_at(i);
            match &prev {
                None if fence.page_offset != index_offset => {
                    return Err(corruption(
                        fence_at,
                        "first page offset",
                        index_offset,
                        fence.page_offset,
                    ));
                }
                Some(p) if fence.key() <= p.key() || fence.page_offset <= p.page_offset => {
                    return Err(corruption(
                        fence_at,
                        "fence order",
                        p.page_offset,
                        fence.page_offset,
                    ));
                }
                _ => {}
            }
            if fence.page_offset >= fence_offset {
                return Err(corruption(
                    fence_at,
                    "page offset",
                    fence_offset,
                    fence.page_offset,
                ));
            }
            prev = Some(fence);
        }
        Ok(segment)
    }

    pub fn meta(&self) -> SegmentMeta {
        self.meta
    }

    pub fn stats(&self) -> SegmentStats {
        self.stats
    }

    /// The format version the segment was written with.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Every register the segment names, in code order: the register of each index channel it
    /// holds (checked at `open`; `verify` checks that each one is held).
    pub fn registers(&self) -> Vec<(Channel, &'a str)> {
        let table = slice(
            self.bytes,
            self.registers_offset,
            u64::from(self.registers_len),
            "register table",
        )
        .unwrap_or_default();
        let mut out = Vec::new();
        // `open` checked the table: its entries parse.
        let mut at = 5usize;
        while let (Some(&code), Some(&len)) = (table.get(at), table.get(at + 1)) {
            let name = table
                .get(at + 2..at + 2 + usize::from(len))
                .unwrap_or_default();
            if let Ok(name) = std::str::from_utf8(name) {
                out.push((Channel(code), name));
            }
            at += 2 + usize::from(len);
        }
        out
    }

    /// The rollup section (v5, FORMAT.md §3.10): for each channel with intervals the segment
    /// holds, in code order, its sums per instant when the writer kept them. `None` for a
    /// version without rollups (whether it holds a channel is then unknown). Its crc was checked
    /// at `open`; values out of range are corruption.
    pub fn rollups(&self) -> Result<Option<Vec<ChannelRollup>>, Error> {
        if !supports_rollups(self.version) {
            return Ok(None);
        }
        let section = slice(
            self.bytes,
            self.rollups_offset,
            u64::from(self.rollups_len),
            "rollups",
        )?;
        rollup::decode(section, self.rollups_offset, self.version).map(Some)
    }

    /// The name of the register of index channel `channel`, if the segment names it.
    pub fn register_name(&self, channel: Channel) -> Option<&'a str> {
        if !channel.is_index() || !has_bit(&self.named, channel.code()) {
            return None;
        }
        self.registers()
            .into_iter()
            .find(|(c, _)| *c == channel)
            .map(|(_, name)| name)
    }

    fn fence_at(&self, i: u32) -> u64 {
        self.fence_offset + u64::from(i) * FENCE_LEN as u64
    }

    /// Fence `i` (< page_count), checked for shape.
    fn fence(&self, i: u32) -> Result<Fence<'a>, Error> {
        let at = self.fence_at(i);
        let raw = slice(self.bytes, at, FENCE_LEN as u64, "fence")?;
        let mut r = Reader::new(raw, at);
        let meter_len = usize::from(r.u8("fence meter length")?);
        let padded = r.take(METER_ID_MAX_LEN, "fence meter")?;
        let channel_code = r.u8("fence channel")?;
        let channel = Channel::from_u8(channel_code, self.version);
        let page_offset = r.u64("fence page offset")?;
        if meter_len == 0 || meter_len > METER_ID_MAX_LEN {
            return Err(corruption(
                at,
                "fence meter length",
                METER_ID_MAX_LEN as u64,
                meter_len as u64,
            ));
        }
        let (meter, padding) = padded.split_at(meter_len);
        if padding.iter().any(|&b| b != 0) {
            return Err(corruption(at + 1, "fence padding", 0, 1));
        }
        let meter = std::str::from_utf8(meter)
            .map_err(|_| corruption(at + 1, "fence meter utf-8", 0, 1))?;
        let channel = channel
            .filter(|c| !c.is_index() || has_bit(&self.named, c.code()))
            .ok_or_else(|| corruption(at + 65, "fence channel", 2, u64::from(channel_code)))?;
        Ok(Fence {
            meter,
            channel,
            page_offset,
        })
    }

    fn page_bytes(&self, i: u32) -> Result<(u64, &'a [u8]), Error> {
        let start = self.fence(i)?.page_offset;
        let end = if i + 1 < self.page_count {
            self.fence(i + 1)?.page_offset
        } else {
            self.fence_offset
        };
        Ok((
            start,
            slice(self.bytes, start, end.saturating_sub(start), "index page")?,
        ))
    }

    /// Reads and checks page `i` (its crc, then its entries in order) and returns its series, or
    /// only the one with key `want`, parsing no further than that key.
    fn page(&self, i: u32, want: Option<(&str, Channel)>) -> Result<Vec<SeriesRef<'a>>, Error> {
        // `open` placed every page inside the file: an entry running past its page's end is a
        // page that contradicts itself, not a file cut short.
        self.read_page(i, want).map_err(|e| match e {
            Error::Truncated {
                offset,
                what,
                needed,
                ..
            } => corruption(offset, what, needed, 0),
            other => other,
        })
    }

    fn read_page(
        &self,
        i: u32,
        want: Option<(&str, Channel)>,
    ) -> Result<Vec<SeriesRef<'a>>, Error> {
        let (at, page) = self.page_bytes(i)?;
        let mut r = Reader::new(page, at);
        let stored = r.u32("page crc32")?;
        let body = r.rest();
        let computed = crc(body);
        if stored != computed {
            return Err(corruption(
                at,
                "index page crc32",
                u64::from(computed),
                u64::from(stored),
            ));
        }
        let mut r = Reader::new(body, at + 4);
        let mut block_offset = r.u64("page first block offset")?;
        // Entry chains: one per channel since v2, one for the whole page in v1.
        let mut chains = Chains::default();
        let known = named_mask(self.version);
        let index_channels = supports_index_channels(self.version);
        let grid_entries = supports_grid_entries(self.version);
        let group_crcs = supports_group_crc(self.version);
        let entry_min_len = entry_min_len(self.version);
        let mut series = Vec::new();
        let mut first = true;
        let mut prev_meter: Option<&[u8]> = None;
        let mut last_key: (&[u8], u8) = (&[], 0);
        while !r.is_empty() {
            let entry_at = r.offset();
            let meter_len = usize::from(r.u8("meter length")?);
            if meter_len == 0 || meter_len > METER_ID_MAX_LEN {
                return Err(corruption(
                    entry_at,
                    "meter length",
                    METER_ID_MAX_LEN as u64,
                    meter_len as u64,
                ));
            }
            let meter = std::str::from_utf8(r.take(meter_len, "meter id")?)
                .map_err(|_| corruption(entry_at + 1, "meter id utf-8", 0, 1))?;
            let mask_at = r.offset();
            let raw_mask = r.u8("channel mask")?;
            let single = grid_entries && raw_mask & SINGLE_BLOCKS != 0;
            let has_indexes = index_channels && raw_mask & HAS_INDEXES != 0;
            let mask = raw_mask & !(SINGLE_BLOCKS | HAS_INDEXES);
            let flags_ok = (single || raw_mask & SINGLE_BLOCKS == 0)
                && (has_indexes || raw_mask & HAS_INDEXES == 0);
            if !flags_ok || (mask == 0 && !has_indexes) || mask & !known != 0 {
                return Err(corruption(
                    mask_at,
                    "channel mask",
                    u64::from(known),
                    u64::from(raw_mask),
                ));
            }
            // (v3) The group's index channels: a count, then their codes, ascending, each named
            // in the register table.
            let index_codes: &[u8] = if has_indexes {
                let count_at = r.offset();
                let count = r.u8("index channel count")?;
                if count == 0 || usize::from(count) > Channel::REGISTERS_MAX {
                    return Err(corruption(
                        count_at,
                        "index channel count",
                        Channel::REGISTERS_MAX as u64,
                        u64::from(count),
                    ));
                }
                let codes = r.take(usize::from(count), "index channel codes")?;
                let mut prev = Channel::INDEX_FIRST_CODE - 1;
                for (k, &code) in codes.iter().enumerate() {
                    if code <= prev || !has_bit(&self.named, code) {
                        return Err(corruption(
                            count_at + 1 + k as u64,
                            "index channel code (ascending, named)",
                            u64::from(prev) + 1,
                            u64::from(code),
                        ));
                    }
                    prev = code;
                }
                codes
            } else {
                &[]
            };
            let group_crc = if group_crcs {
                Some(r.u32("meter group crc32")?)
            } else {
                None
            };
            let (group_offset, group_series) = (block_offset, series.len());
            if prev_meter.is_some_and(|p| p >= meter.as_bytes()) {
                return Err(corruption(entry_at, "meter order in index page", 1, 0));
            }
            prev_meter = Some(meter.as_bytes());
            let last_code = match index_codes.last() {
                Some(&code) => code,
                None => (7 - mask.leading_zeros()) as u8,
            };
            last_key = (meter.as_bytes(), last_code);
            if first {
                first = false;
                let first_channel = if mask != 0 {
                    Channel(mask.trailing_zeros() as u8)
                } else {
                    Channel(index_codes.first().copied().unwrap_or(0))
                };
                if self.fence(i)?.key() != (meter.as_bytes(), first_channel) {
                    return Err(corruption(at, "first key of index page (fence)", 1, 0));
                }
            }
            if let Some((want_meter, _)) = want {
                if meter.as_bytes() > want_meter.as_bytes() {
                    break;
                }
            }
            let named = Channel::NAMED
                .into_iter()
                .filter(|c| mask & (1 << c.code()) != 0);
            for channel in named.chain(index_codes.iter().map(|&code| Channel(code))) {
                let max_blocks = (r.remaining() / entry_min_len) as u64;
                let chain = chains.get_mut(if grid_entries { channel.code() } else { 0 });
                let count = if single {
                    1
                } else {
                    r.varint_in("series block count", 1, max_blocks.max(1))? as usize
                };
                let keep = want.is_none_or(|w| w == (meter, channel));
                let increments = channel.is_index() && supports_index_increments(self.version);
                let mut blocks = Vec::with_capacity(if keep { count } else { 0 });
                for _ in 0..count {
                    if keep {
                        let mut b = self.read_entry(&mut r, block_offset, chain)?;
                        b.increments = increments;
                        block_offset = b.offset + b.bytes.len() as u64;
                        *chain = Chain::of(&b.summary);
                        blocks.push(b);
                    } else {
                        // A lookup passing other series only follows the offset and entry chains
                        // (the page crc already vouches for the bytes).
                        let len = skip_entry(&mut r, self.version, chain)?;
                        block_offset = block_offset.saturating_add(len);
                    }
                }
                if keep {
                    series.push(SeriesRef {
                        meter,
                        channel,
                        blocks,
                    });
                }
            }
            if let Some(crc) = group_crc {
                // The group's crc covers its blocks, which end where the last entry's block does.
                let len = block_offset.saturating_sub(group_offset);
                let checked = slice(self.bytes, group_offset, len, "meter group blocks")?;
                for s in series.iter_mut().skip(group_series) {
                    for b in &mut s.blocks {
                        b.crc = crc;
                        b.checked = checked;
                    }
                }
            }
            if want.is_some() && !series.is_empty() {
                return Ok(series);
            }
        }
        if first {
            return Err(corruption(at, "series in index page", 1, 0));
        }
        if want.is_none() && i + 1 < self.page_count && last_key >= self.fence_key(i + 1)? {
            return Err(corruption(at, "last key of index page (next fence)", 1, 0));
        }
        Ok(series)
    }

    fn read_entry(
        &self,
        r: &mut Reader<'_>,
        offset: u64,
        prev: &Chain,
    ) -> Result<BlockRef<'a>, Error> {
        let at = r.offset();
        let len = r.varint_in("block length", 1, self.index_offset.saturating_sub(offset))?;
        // With group crcs, the page sets the crc once it has read the whole group.
        let crc = if supports_group_crc(self.version) {
            0
        } else {
            r.u32("block crc32")?
        };
        let grid_entries = supports_grid_entries(self.version);
        let flags = if grid_entries {
            let flags = r.u8("block entry flags")?;
            if flags & !(HAS_COUNT | HAS_STEP | HAS_NON_MEASURED | ON_GRID) != 0 {
                return Err(corruption(at, "block entry flags", 15, u64::from(flags)));
            }
            flags
        } else {
            HAS_COUNT | HAS_NON_MEASURED
        };
        let count = if flags & HAS_COUNT != 0 {
            r.varint_in("block point count", 1, block::MAX_POINTS as u64)?
        } else if (1..=block::MAX_POINTS as u64).contains(&u64::from(prev.count)) {
            u64::from(prev.count)
        } else {
            // The channel's first entry in the page states its count (a skipped entry's count is
            // checked here, when an entry inherits it).
            return Err(corruption(
                at,
                "block point count",
                1,
                u64::from(prev.count),
            ));
        };
        // v2 reads the step first: the times that follow are on its grid.
        let mut step_min = if flags & HAS_STEP != 0 {
            r.varint_in("block step_min", 0, u64::from(STEP_MIN_MAX))? as u16
        } else if prev.step_min <= STEP_MIN_MAX {
            prev.step_min
        } else {
            return Err(corruption(
                at,
                "block step_min",
                u64::from(STEP_MIN_MAX),
                u64::from(prev.step_min),
            ));
        };
        let first_ts = prev.first_ts.wrapping_add(r.zigzag64("block first ts")?);
        let unit = if grid_entries {
            time_unit(step_min)
        } else {
            60
        };
        let uniform = grid_entries && step_min != 0;
        let on_grid = flags & ON_GRID != 0;
        let span = if uniform && on_grid {
            // At most 65,535 steps of a day: no overflow.
            ((count - 1) * unit) as i64
        } else if uniform {
            let grid = (count - 1) * unit;
            let code = r.varint("block last ts")?;
            let d = if code & 1 == 0 {
                crate::bits::unzigzag64(code >> 1).checked_mul(unit as i64)
            } else {
                unfold(code >> 1, grid).filter(|d| d % unit as i64 != 0)
            };
            d.and_then(|d| (grid as i64).checked_add(d))
                .filter(|span| *span >= 0)
                .ok_or_else(|| corruption(at, "block last ts", grid, code))?
        } else {
            read_units(r, "block last ts", unit, 0, i64::MAX as u64)? as i64
        };
        let last_ts = first_ts
            .checked_add(span)
            .ok_or_else(|| corruption(at, "block last ts", 0, span as u64))?;
        if (count == 1) != (span == 0) || (span as u64) < count - 1 {
            return Err(corruption(at, "block time span", count, span as u64));
        }
        // A uniform step ends the block one step after its last point.
        let tail = if uniform {
            unit
        } else {
            read_units(r, "block end ts", 60, 0, 60 * u64::from(STEP_MIN_MAX))?
        };
        let end_ts = last_ts.saturating_add(tail as i64);
        let sum_value = r.zigzag64("block sum")?;
        if !grid_entries {
            step_min = r.varint_in("block step_min", 0, u64::from(STEP_MIN_MAX))? as u16;
        }
        let sum_energy_wmin = if step_min == 0 {
            r.zigzag64("block energy")?
        } else {
            sum_value
                .checked_mul(i64::from(step_min))
                .ok_or_else(|| corruption(at, "block energy", 0, 1))?
        };
        let min_value = r.zigzag32("block min")?;
        let min_off = read_units(r, "block min ts", unit, 0, span as u64)? as i64;
        let max_value = if grid_entries {
            // v2 stores `max − min`: a maximum below the minimum cannot be written.
            let range_at = r.offset();
            let range = r.varint_in("block max − min", 0, u64::from(u32::MAX))?;
            i32::try_from(i64::from(min_value) + range as i64)
                .map_err(|_| corruption(range_at, "block max", i32::MAX as u64, range))?
        } else {
            r.zigzag32("block max")?
        };
        let max_off = read_units(r, "block max ts", unit, 0, span as u64)? as i64;
        let non_measured = if flags & HAS_NON_MEASURED != 0 {
            r.varint_in("block non-measured count", 0, count)? as u32
        } else {
            0
        };
        if min_value > max_value {
            return Err(corruption(
                at,
                "block min and max",
                max_value as u64,
                min_value as u64,
            ));
        }
        let bytes = slice(self.bytes, offset, len, "block")?;
        Ok(BlockRef {
            summary: BlockSummary {
                count: count as u32,
                first_ts,
                last_ts,
                end_ts,
                sum_value,
                sum_energy_wmin,
                min_value,
                min_ts: first_ts + min_off,
                max_value,
                max_ts: first_ts + max_off,
                non_measured,
                step_min,
            },
            offset,
            crc,
            version: self.version,
            on_grid,
            checked: bytes,
            bytes,
            increments: false,
        })
    }

    /// Key bytes of fence `i` (`open` checked every fence's shape and the table's crc).
    fn fence_key(&self, i: u32) -> Result<(&'a [u8], u8), Error> {
        let at = self.fence_at(i);
        let raw = slice(self.bytes, at, FENCE_LEN as u64, "fence")?;
        let meter_len = usize::from(raw.first().copied().unwrap_or(0)).min(METER_ID_MAX_LEN);
        let meter = raw.get(1..1 + meter_len).unwrap_or_default();
        let channel = raw.get(1 + METER_ID_MAX_LEN).copied().unwrap_or(0);
        Ok((meter, channel))
    }

    /// Page that would hold `key`: the last one whose first key is ≤ `key`.
    fn find_page(&self, meter: &str, channel: Channel) -> Result<Option<u32>, Error> {
        let (mut lo, mut hi) = (0u32, self.page_count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.fence_key(mid)? <= (meter.as_bytes(), channel.code()) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo.checked_sub(1))
    }

    /// Number of index pages (one fence each).
    pub fn page_count(&self) -> u32 {
        self.page_count
    }

    /// The index page that would hold the series `(meter, channel)`: the last one whose first
    /// key is ≤ it; `None` when the key sorts before every page. Reads only the fence table.
    pub fn page_of(&self, meter: &str, channel: Channel) -> Result<Option<u32>, Error> {
        self.find_page(meter, channel)
    }

    /// Every series of index page `i` (< [`page_count`](Self::page_count)) in key order, the
    /// page checked (crc, entries, key order, both fences) as [`series`](Self::series) does.
    /// Lets a reader keep decoded pages and look series up in them instead of the bytes.
    pub fn page_series(&self, i: u32) -> Result<Vec<SeriesRef<'a>>, Error> {
        if i >= self.page_count {
            return Err(Error::InvalidArgument {
                what: format!("index page {i} of a segment with {}", self.page_count),
            });
        }
        self.page(i, None)
    }

    /// The blocks of one series in time order; empty when the segment does not hold it.
    pub fn blocks(&self, meter: &str, channel: Channel) -> Result<Vec<BlockRef<'a>>, Error> {
        let Some(page) = self.find_page(meter, channel)? else {
            return Ok(Vec::new());
        };
        let found = self.page(page, Some((meter, channel)))?;
        Ok(found
            .into_iter()
            .next()
            .map(|s| s.blocks)
            .unwrap_or_default())
    }

    /// Every series in key order with its blocks (compaction, fleet scans, verify).
    pub fn series(&self) -> impl Iterator<Item = Result<SeriesRef<'a>, Error>> + 'a {
        let segment = *self;
        let mut failed = false;
        (0..self.page_count).flat_map(move |i| {
            let page: Vec<Result<SeriesRef<'a>, Error>> = if failed {
                Vec::new()
            } else {
                match segment.page(i, None) {
                    Ok(series) => series.into_iter().map(Ok).collect(),
                    Err(e) => {
                        failed = true;
                        vec![Err(e)]
                    }
                }
            };
            page
        })
    }

    /// Checks every checksum and every structure of the file.
    pub fn verify(&self) -> Result<SegmentStats, Error> {
        let mut totals = SegmentStats {
            bytes: self.bytes.len() as u64,
            ..SegmentStats::default()
        };
        let mut next_offset = HEADER_LEN as u64;
        let mut prev_key: Option<(&[u8], Channel)> = None;
        let mut decoded = DecodedBlock::default();
        let mut held = [0u64; 4];
        let mut sums = Rollups::default();
        for i in 0..self.page_count {
            let series = self.page(i, None)?;
            for s in series {
                if s.channel.is_index() {
                    set_bit(&mut held, s.channel.code());
                }
                if s.channel.has_intervals() {
                    sums.add_series(s.channel);
                }
                let key = (s.meter.as_bytes(), s.channel);
                if prev_key.is_some_and(|p| p >= key) {
                    return Err(corruption(self.fence_at(i), "series order", 0, 1));
                }
                prev_key = Some(key);
                totals.series += 1;
                let mut prev_last: Option<i64> = None;
                for b in &s.blocks {
                    if b.offset != next_offset {
                        return Err(corruption(b.offset, "block offset", next_offset, b.offset));
                    }
                    next_offset += b.bytes.len() as u64;
                    if prev_last.is_some_and(|p| p >= b.summary.first_ts) {
                        return Err(corruption(b.offset, "block order", 0, 1));
                    }
                    prev_last = Some(b.summary.last_ts);
                    b.decode_into(&mut decoded)?;
                    let points: Vec<Point> = decoded.points().collect();
                    if block::summarize(&points) != b.summary {
                        return Err(corruption(b.offset, "block summary", 0, 1));
                    }
                    if s.channel.has_intervals() {
                        sums.add_points(s.channel, points.into_iter());
                    }
                    totals.blocks += 1;
                    totals.points += u64::from(b.summary.count);
                }
            }
        }
        if next_offset != self.index_offset {
            return Err(corruption(
                next_offset,
                "end of blocks",
                self.index_offset,
                next_offset,
            ));
        }
        if let Some(stored) = self.rollups()? {
            let computed = sums.all();
            let agree = stored.len() == computed.len()
                && stored.iter().zip(&computed).all(|(s, (c, sums))| {
                    s.channel == *c && s.entries.as_ref().is_none_or(|e| Some(e) == sums.as_ref())
                });
            if !agree {
                return Err(corruption(
                    self.rollups_offset,
                    "rollups (the sums of the blocks)",
                    computed.len() as u64,
                    stored.len() as u64,
                ));
            }
        }
        if held != self.named {
            return Err(corruption(
                self.registers_offset,
                "register table (a named register no series holds)",
                0,
                1,
            ));
        }
        if totals != self.stats {
            return Err(corruption(
                self.fence_offset,
                "segment totals",
                self.stats.points,
                totals.points,
            ));
        }
        Ok(totals)
    }
}

/// Steps over one block entry of a segment of `version`, returning its length and moving `chain`
/// past it.
fn skip_entry(r: &mut Reader<'_>, version: u16, chain: &mut Chain) -> Result<u64, Error> {
    let len = r.varint("block length")?;
    if !supports_group_crc(version) {
        r.take(4, "block crc32")?;
    }
    let rest = if supports_grid_entries(version) {
        let flags = r.u8("block entry flags")?;
        // Out-of-range values saturate; an entry that inherits them reports them.
        if flags & HAS_COUNT != 0 {
            chain.count = u32::try_from(r.varint("block point count")?).unwrap_or(u32::MAX);
        }
        if flags & HAS_STEP != 0 {
            chain.step_min = u16::try_from(r.varint("block step_min")?).unwrap_or(u16::MAX);
        }
        chain.first_ts = chain.first_ts.wrapping_add(r.zigzag64("block first ts")?);
        // span (not with a uniform step on the grid), sum, min, min ts, max − min, max ts; tail
        // and energy when the step varies; the non-measured count when flagged.
        let span = usize::from(chain.step_min == 0 || flags & ON_GRID == 0);
        5 + span
            + if chain.step_min == 0 { 2 } else { 0 }
            + usize::from(flags & HAS_NON_MEASURED != 0)
    } else {
        r.skip_varint("block point count")?;
        chain.first_ts = chain.first_ts.wrapping_add(r.zigzag64("block first ts")?);
        r.skip_varint("block last ts")?;
        r.skip_varint("block end ts")?;
        r.skip_varint("block sum")?;
        let step_min = r.varint("block step_min")?;
        // min, min ts, max, max ts, non-measured; the energy first when the step varies.
        if step_min == 0 {
            6
        } else {
            5
        }
    };
    for _ in 0..rest {
        r.skip_varint("block summary")?;
    }
    Ok(len)
}

/// Smallest index entry of one block of a segment of `version`: length, crc (v1), then one byte
/// per field always present (v1: count and 10 more; v2: flags and 6 more).
fn entry_min_len(version: u16) -> usize {
    if supports_grid_entries(version) {
        1 + 1 + 6
    } else {
        1 + 4 + 1 + 10
    }
}

/// A key of the fence table.
#[derive(Clone, Copy, Debug)]
struct Fence<'a> {
    meter: &'a str,
    channel: Channel,
    page_offset: u64,
}

impl<'a> Fence<'a> {
    fn key(&self) -> (&'a [u8], Channel) {
        (self.meter.as_bytes(), self.channel)
    }
}

/// Checks a register table (FORMAT.md §3.9) and returns the codes it names.
fn named_codes(table: &[u8], offset: u64) -> Result<[u64; 4], Error> {
    let mut named = [0u64; 4];
    if table.is_empty() {
        return Ok(named);
    }
    let mut r = Reader::new(table, offset);
    let stored = r.u32("register table crc32")?;
    let computed = crc(table.get(4..).unwrap_or_default());
    if stored != computed {
        return Err(corruption(
            offset,
            "register table crc32",
            u64::from(computed),
            u64::from(stored),
        ));
    }
    let count_at = r.offset();
    let count = r.u8("register count")?;
    if count == 0 || usize::from(count) > Channel::REGISTERS_MAX {
        return Err(corruption(
            count_at,
            "register count",
            Channel::REGISTERS_MAX as u64,
            u64::from(count),
        ));
    }
    let mut names: Vec<&[u8]> = Vec::with_capacity(usize::from(count));
    let mut prev = Channel::INDEX_FIRST_CODE - 1;
    for _ in 0..count {
        let at = r.offset();
        let code = r.u8("register code")?;
        if code <= prev {
            return Err(corruption(
                at,
                "register code (ascending, an index channel)",
                u64::from(prev) + 1,
                u64::from(code),
            ));
        }
        prev = code;
        let len = r.u8("register name length")?;
        let name = r.take(usize::from(len), "register name")?;
        let valid = std::str::from_utf8(name).is_ok_and(valid_register_name);
        if !valid || names.contains(&name) {
            return Err(corruption(
                at + 1,
                "register name ([A-Z0-9_]{1,16}, unique)",
                REGISTER_NAME_MAX_LEN as u64,
                u64::from(len),
            ));
        }
        names.push(name);
        set_bit(&mut named, code);
    }
    if !r.is_empty() {
        return Err(corruption(
            r.offset(),
            "bytes after the register table",
            0,
            1,
        ));
    }
    Ok(named)
}

fn tail4(bytes: &[u8]) -> [u8; 4] {
    let mut out = [0u8; 4];
    if let Some(t) = bytes.len().checked_sub(4).and_then(|at| bytes.get(at..)) {
        out.copy_from_slice(t);
    }
    out
}

/// `bytes[offset..offset + len]`, or truncated.
fn slice<'a>(
    bytes: &'a [u8],
    offset: u64,
    len: u64,
    what: &'static str,
) -> Result<&'a [u8], Error> {
    let end = offset.checked_add(len);
    match end.and_then(|end| bytes.get(usize::try_from(offset).ok()?..usize::try_from(end).ok()?)) {
        Some(s) => Ok(s),
        None => Err(Error::Truncated {
            offset,
            what,
            needed: len,
            available: (bytes.len() as u64).saturating_sub(offset),
        }),
    }
}

/// One series of a segment.
#[derive(Clone, Debug)]
pub struct SeriesRef<'a> {
    pub meter: &'a str,
    pub channel: Channel,
    pub blocks: Vec<BlockRef<'a>>,
}

/// A block in a segment: its summary (from the index) and its still-encoded bytes.
#[derive(Clone, Copy, Debug)]
pub struct BlockRef<'a> {
    pub summary: BlockSummary,
    /// File offset of the block's bytes.
    pub offset: u64,
    crc: u32,
    /// Version of the segment: whether the bytes are a whole block (v1) or a body whose header is
    /// `summary` (v2), and which timestamp modes they may use.
    version: u16,
    /// (v2) Every point is on the grid: the body has no timestamp section.
    on_grid: bool,
    bytes: &'a [u8],
    /// What `crc` covers: the block's bytes (v1) or all the blocks of its meter group (v2).
    checked: &'a [u8],
    /// (v3, index channels) The body codes increments from the entry's `min_value`.
    increments: bool,
}

impl<'a> BlockRef<'a> {
    /// Checks the checksum covering the block (its own in v1, its meter group's in v2), then
    /// decodes it into `out`.
    pub fn decode_into(&self, out: &mut DecodedBlock) -> Result<(), Error> {
        let computed = crc(self.checked);
        if computed != self.crc {
            return Err(corruption(
                self.offset,
                "block crc32",
                u64::from(self.crc),
                u64::from(computed),
            ));
        }
        let mut r = Reader::new(self.bytes, self.offset);
        let s = &self.summary;
        if supports_headerless_blocks(self.version) {
            // The body's bytes are all there (its crc matched): running out inside it means it
            // disagrees with its entry.
            let header = block::BodyHeader {
                n: s.count as usize,
                first_ts: s.first_ts,
                step_min: s.step_min,
                on_grid: self.on_grid,
                all_measured: s.non_measured == 0,
            };
            block::decode_body(&mut r, &header, out).map_err(|e| match e {
                Error::Truncated { offset, what, .. } => {
                    corruption(offset, what, u64::from(s.count), self.bytes.len() as u64)
                }
                other => other,
            })?;
        } else {
            let tags = block::Tags {
                anchored_timestamps: supports_anchored_timestamps(self.version),
                step_exceptions: supports_step_exceptions(self.version),
                trained_values: supports_trained_codec(self.version),
            };
            block::decode(&mut r, tags, out)?;
            if out.len() as u64 != u64::from(s.count) {
                return Err(corruption(
                    self.offset,
                    "block point count",
                    u64::from(s.count),
                    out.len() as u64,
                ));
            }
        }
        if self.increments {
            let mut running = s.min_value;
            for v in &mut out.value {
                running = running.wrapping_add(*v);
                *v = running;
            }
        }
        // The entry and the block must agree on the last point (`verify` compares whole
        // summaries).
        let last = out.ts_utc.last().copied().unwrap_or(s.first_ts);
        if last != s.last_ts {
            return Err(corruption(
                self.offset,
                "block last ts (index entry)",
                s.last_ts as u64,
                last as u64,
            ));
        }
        Ok(())
    }

    /// Checks the checksum covering the block (its own in v1, its meter group's since v2)
    /// without decoding it.
    pub fn check_crc(&self) -> Result<(), Error> {
        let computed = crc(self.checked);
        if computed != self.crc {
            return Err(corruption(
                self.offset,
                "block crc32",
                u64::from(self.crc),
                u64::from(computed),
            ));
        }
        Ok(())
    }

    /// Whether [`SegmentBuilder::add_encoded_block`] takes this block as it is: a block of the
    /// current version.
    pub fn is_current(&self) -> bool {
        self.version == FORMAT_VERSION
    }

    /// The block's encoded bytes: in a v2 segment its body, without the header its index entry
    /// holds (FORMAT.md §2).
    pub fn encoded(&self) -> &'a [u8] {
        self.bytes
    }
}

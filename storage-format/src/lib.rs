//! Courbe's on-disk format: bytes in, values out.
//!
//! This crate is pure: no files, threads, clocks or logging. It knows two structures,
//! specified byte for byte in `FORMAT.md` beside this crate:
//!
//! - a **block**: one meter's channel over a span of time, compressed ([`block`]): timestamps as a
//!   grid of start + steps with exceptions (gaps cost a few bytes), quality as runs of
//!   non-measured points (all measured costs one byte), values as residuals of a per-block
//!   predictor (the value 1 to 9 points back, the same slot the previous day, or none) coded in
//!   bins by rANS against the format's trained tables, by a per-block Huffman table, or
//!   bit-packed in frames of 128, whichever is smallest;
//! - a **segment**: many blocks grouped by meter, an index of ~2 KiB pages (each with its crc32
//!   and the summaries of its blocks) searchable in place through a fence table, a crc32 over each
//!   meter's blocks, and a footer ([`segment`]). Since format v2 a block in a segment leaves out
//!   what its index entry holds or implies (point count, first timestamp, a uniform step, on-grid
//!   timestamps, all-measured quality). Since v5 a segment also keeps, for each channel with
//!   intervals, the sum and count of its series' values at each instant ([`rollup`]), so that a
//!   fleet curve is read without decoding a block per meter.
//!
//! Every decoder takes a byte slice and returns values or an [`Error`] whose [`ErrorKind`] tells
//! corruption, truncation and compatibility apart; bytes never panic and never drive an
//! unchecked allocation.
//!
//! # Example
//!
//! ```
//! use storage_format::block::DecodedBlock;
//! use storage_format::segment::{Segment, SegmentBuilder, SegmentMeta};
//! use storage_format::{Channel, Point, Quality};
//!
//! let points: Vec<Point> = (0..48)
//!     .map(|i| Point {
//!         ts_utc: 1_704_067_200 + i * 1800,
//!         value: 300 + (i as i32 % 7),
//!         step_min: 30,
//!         quality: Quality::Measured,
//!     })
//!     .collect();
//!
//! // Write: the caller appends each chunk to its file, in order.
//! let mut file = Vec::new();
//! let mut builder = SegmentBuilder::new(SegmentMeta { partition: 648, seq: 1 }, &mut file);
//! builder.add_block("09111642617347", Channel::CONSUMPTION, &points, &mut file)?;
//! let stats = builder.finish(&mut file)?;
//! assert_eq!(stats.points, 48);
//!
//! // Read in place (typically from an mmap): summaries without decoding, then the points.
//! let segment = Segment::open(&file)?;
//! let blocks = segment.blocks("09111642617347", Channel::CONSUMPTION)?;
//! assert_eq!(blocks[0].summary.max_value, 306);
//! let mut decoded = DecodedBlock::default();
//! blocks[0].decode_into(&mut decoded)?;
//! assert!(decoded.points().eq(points.iter().copied()));
//! # Ok::<(), storage_format::Error>(())
//! ```

mod bits;
pub mod block;
mod error;
mod huffman;
#[doc(hidden)]
pub mod rans;
pub mod rollup;
pub mod segment;

pub use error::{Error, ErrorKind};

/// Quality of a reading, as meters and distributors report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum Quality {
    #[default]
    Measured = 0,
    Estimated = 1,
    Corrected = 2,
}

impl Quality {
    pub const ALL: [Quality; 3] = [Quality::Measured, Quality::Estimated, Quality::Corrected];

    pub fn from_u8(code: u8) -> Option<Quality> {
        Quality::ALL.get(usize::from(code)).copied()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Measured => "measured",
            Quality::Estimated => "estimated",
            Quality::Corrected => "corrected",
        }
    }
}

/// A channel of a meter: what a series holds, coded in one byte.
///
/// Codes 0..=2 are the curve-era channels every format version knows. Format version 3 adds
/// daily energy (code 3) and the **index channels**, codes 16..=255: one per register number
/// 0..=239 of a store's register table (the names are data: a segment names the registers of
/// the index channels it holds). Format version 4 adds spot prices (code 4). Codes 5..=15 are
/// reserved. A reader refuses a code its version does not define ([`Channel::from_u8`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Channel(u8);

impl Channel {
    /// Load curve: average active power in W over each interval.
    pub const CONSUMPTION: Channel = Channel(0);
    /// Injected power (solar, ...), W, same shape as consumption.
    pub const PRODUCTION: Channel = Channel(1);
    /// One value a day: maximum apparent power in VA; `ts_utc` is the instant it occurred.
    pub const MAX_POWER: Channel = Channel(2);
    /// One value per Europe/Paris local day (since format v3): `ts_utc` is that day's Paris
    /// midnight, `step_min` 1440 (nominal, also on 23- and 25-hour days), `value` the Wh
    /// consumed over the day.
    pub const DAILY_ENERGY: Channel = Channel(3);
    /// A price series (since format v4): `value` is EUR/MWh × 100 (centi-euros per MWh,
    /// **signed**: spot prices go negative) over the interval `[ts_utc, ts_utc + step)`, steps
    /// of 15 or 60 minutes. Stored under a series id that is not a meter (`spot-FR`).
    pub const PRICE: Channel = Channel(4);

    /// Code of the index channel of register number 0; register `r` is code `16 + r`.
    pub const INDEX_FIRST_CODE: u8 = 16;
    /// Number of register numbers (0..=239) a store's register table can hold.
    pub const REGISTERS_MAX: usize = 240;

    /// The channels of format versions 1 and 2, in code order.
    pub const ALL: [Channel; 3] = [
        Channel::CONSUMPTION,
        Channel::PRODUCTION,
        Channel::MAX_POWER,
    ];

    /// The channels with a fixed meaning (every code below the index channels that a version
    /// defines), in code order: those of [`Channel::ALL`], since format v3 daily energy and
    /// since format v4 prices.
    pub const NAMED: [Channel; 5] = [
        Channel::CONSUMPTION,
        Channel::PRODUCTION,
        Channel::MAX_POWER,
        Channel::DAILY_ENERGY,
        Channel::PRICE,
    ];

    /// The channel of `code` as a file of format `version` may hold it: versions 1 and 2 know
    /// codes 0..=2; version 3 knows 0..=3 and the index channels 16..=255 (4..=15 are reserved);
    /// version 4 knows 0..=4 and 16..=255 (5..=15 are reserved).
    /// `None` for a code the version does not define (a reader reports it as corruption).
    pub fn from_u8(code: u8, version: u16) -> Option<Channel> {
        let known = match version {
            0 => false,
            1 | 2 => code <= 2,
            3 => code <= 3 || code >= Channel::INDEX_FIRST_CODE,
            _ => code <= 4 || code >= Channel::INDEX_FIRST_CODE,
        };
        known.then_some(Channel(code))
    }

    /// The index channel of register number `register` (0..=239), `None` beyond.
    pub const fn index(register: u8) -> Option<Channel> {
        if (register as usize) < Channel::REGISTERS_MAX {
            Some(Channel(Channel::INDEX_FIRST_CODE + register))
        } else {
            None
        }
    }

    /// The register number of an index channel, `None` for the other channels.
    pub const fn register_number(self) -> Option<u8> {
        self.0.checked_sub(Channel::INDEX_FIRST_CODE)
    }

    /// Whether the channel is a cumulative index of one register (Wh).
    pub const fn is_index(self) -> bool {
        self.0 >= Channel::INDEX_FIRST_CODE
    }

    /// Whether the channel is a load curve (power over intervals), as opposed to one reading a
    /// day at an instant.
    pub fn is_curve(self) -> bool {
        matches!(self, Channel::CONSUMPTION | Channel::PRODUCTION)
    }

    /// Whether the channel is a price series (signed values; not a meter's data).
    pub fn is_price(self) -> bool {
        self == Channel::PRICE
    }

    /// Whether a reading of the channel covers an interval `[ts_utc, ts_utc + step)` (the
    /// curves and prices) rather than holding at an instant (`max_power`, daily energy, indexes).
    pub fn has_intervals(self) -> bool {
        self.is_curve() || self.is_price()
    }

    /// The channel's code, as stored.
    pub const fn code(self) -> u8 {
        self.0
    }

    /// The channel's name; every index channel is `"index"` (its register names it).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::CONSUMPTION => "consumption",
            Channel::PRODUCTION => "production",
            Channel::MAX_POWER => "max_power",
            Channel::DAILY_ENERGY => "daily_energy",
            Channel::PRICE => "price",
            c if c.is_index() => "index",
            _ => "unknown",
        }
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.as_str(), self.register_number()) {
            (_, Some(r)) => write!(f, "index({r})"),
            ("unknown", _) => write!(f, "Channel({})", self.0),
            (name, _) => f.write_str(name),
        }
    }
}

/// Whether `name` may name a register: 1 to 16 characters of `[A-Z0-9_]`.
pub fn valid_register_name(name: &str) -> bool {
    (1..=REGISTER_NAME_MAX_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Longest register name, in bytes.
pub const REGISTER_NAME_MAX_LEN: usize = 16;

/// Longest meter id, in bytes.
pub const METER_ID_MAX_LEN: usize = 64;

/// Largest step a block accepts, in minutes (one day: the step of `max_power`, daily energy and
/// index points).
pub const STEP_MIN_MAX: u16 = 1440;

/// One reading of one channel of one meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Point {
    /// Start of the interval (for `max_power`: the instant of the maximum; for daily energy: the
    /// Europe/Paris midnight starting the day; for an index: the instant of the reading), Unix
    /// seconds, UTC.
    pub ts_utc: i64,
    /// W for curves, VA for `max_power`, Wh for daily energy and indexes, centi-EUR/MWh for
    /// prices.
    pub value: i32,
    /// Length of the interval, 1..=[`STEP_MIN_MAX`] minutes.
    pub step_min: u16,
    pub quality: Quality,
}

/// What a reader knows about a block without decoding it.
///
/// Stored in the segment index so that a query covering a whole block never touches its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct BlockSummary {
    /// Number of points, at least 1.
    pub count: u32,
    /// `ts_utc` of the first and of the last point.
    pub first_ts: i64,
    pub last_ts: i64,
    /// End of the coverage: the largest `ts_utc + 60 * step_min` over the points.
    pub end_ts: i64,
    /// Sum of the values.
    pub sum_value: i64,
    /// Sum of `value * step_min`: energy in W·min (divide by 60 for Wh), exact.
    pub sum_energy_wmin: i64,
    /// Smallest value and the `ts_utc` of its first occurrence.
    pub min_value: i32,
    pub min_ts: i64,
    /// Largest value and the `ts_utc` of its first occurrence.
    pub max_value: i32,
    pub max_ts: i64,
    /// Number of points whose quality is not `measured`.
    pub non_measured: u32,
    /// The step of every point when they all share one, else 0.
    pub step_min: u16,
}

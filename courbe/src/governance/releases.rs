//! Releases: the slot tables of anonymised aggregates, frozen once per range of months.
//!
//! Publication is decided per slot (a group in one UTC half-hour, [`super::aggregates`]). A slot
//! published twice with different contributors (a late meter, a correction, an erasure between
//! the two reads) gives away their difference: one household's half-hours. A **release**
//! publishes each slot once: for a range of whole Europe/Paris months `[from, to)` and a
//! channel, it freezes, as of the moment of release, every predefined group at every level
//! (all, commune, IRIS, building): for each non-empty slot whether it is published (the primary,
//! parent and secondary rules of [`super::aggregates`]) and, when it is, its energy and its
//! contributors, with the members of each group and the half-hours where each member had a
//! non-zero reading (for the count of active meters of a cell). Nothing of a suppressed slot
//! but its existence is kept. Per month it also freezes, for each group of the levels all,
//! commune and IRIS whose month cell is published, the distribution `GET
//! /v1/meters/{id}/compare` shows (the count of members with a reading and the quartiles of
//! their monthly energies, `aggregates::distribution`); nothing for the others.
//!
//! Every caller but an operator is answered from releases only: a question whose range (in its
//! channel) is not wholly inside released months is refused (404 `not_released`, naming what is
//! released); its cells are built from the frozen slots by the rule of live answers (a cell is
//! published when it holds a slot and all its slots are), so every range, period and time zone
//! the endpoint accepts is answered, and the same question always gets the same answer. A
//! comparison by anyone but an operator takes its groups' distributions from the released
//! months (each requested month released with its distributions, else `not_released`): a late
//! meter cannot be recovered from two medians of one month (with 13 values, a 14th between the
//! 7th and the 8th gives the median (x + v7)/2).
//!
//! A range that overlaps a release of its channel is never released again (409 `conflict`): a
//! second release of a month with other data is the differencing releases close. So late data,
//! corrections and consent changes after a release are not in it, and an erased meter's
//! contribution stays inside the released sums it was part of (sums of at least the minimum of
//! meters: aggregated data, no longer the meter's).
//!
//! # File
//!
//! One file per release, `DATA/governance/releases/{channel}_{from}_{to}.rel` (Paris dates),
//! written once through the governance `FileSystem` (`name.tmp`, sync, rename, sync of the
//! folder) and read whole at [`Governance::open`](super::Governance::open):
//!
//! ```text
//! magic     8 bytes   "CRBREL01"
//! crc32     u32 LE    CRC-32 (IEEE) of the payload
//! length    u64 LE    bytes of the payload
//! payload             zstd (level 19) of the JSON of `Frozen` below
//! ```
//!
//! The JSON holds the suppression rule the release was decided with (the `min_meters` of the
//! answers built from it, whatever the server's rule is later) and, per month: the meter ids, each meter's runs of active half-hours (slot
//! indexes from the month's start, `[start, end)` pairs), and per level (in the order all,
//! commune, IRIS, building) each group's code, members (indexes into the meter ids), published
//! slots `[index, contributors, energy W·s]`, suppressed slot indexes and, when published at
//! the levels all, commune and IRIS, `distribution: [meters, [q1, median, q3]]` (quarters of a
//! W·s, exact integers); per month `distributions: true` says its groups carry them. Both
//! fields default to absent/false, so files written before they existed still read back; such
//! a month answers aggregates but no comparison (`not_released`). A file that does not
//! read back exactly so (magic, length, crc, zstd, JSON, indexes in range) stops the open with
//! an error naming it. A leftover `.tmp` (a crash before the rename) is removed at open.
//!
//! Size: about 6.3 KB per group-month (1,488 half-hours: published slots with their energy,
//! members, activity runs) on a generated fleet of 1,000 or 2,000 half-hourly meters in groups
//! of 500, 100 and 10 (1.4 MB for January 2024 of 2,000 meters and their 225 groups).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::aggregates::{
    Decisions, Distribution, GroupCells, Params, Slot, Slots, Suppression, Table, LEVELS, SLOT_S,
};
use super::auth::Level;
use super::groups::GroupRegistry;
use super::{Error, Governance};
use crate::engine::fs::FileSystem;
use crate::engine::Store;
use crate::error::{ApiError, ErrorCode};
use crate::query::{Calendar, Period};
use crate::Channel;

/// The releases' folder inside the governance folder.
pub const DIR_NAME: &str = "releases";

const MAGIC: &[u8; 8] = b"CRBREL01";
const HEADER_LEN: usize = 20;
/// Largest decoded payload read back (a release of years of a large fleet fits).
const MAX_PAYLOAD_BYTES: u64 = 4 << 30;
/// Longest range of one release, days (as one aggregate question).
const MAX_RELEASE_DAYS: i64 = 1_100;

/// One group of one month, frozen.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct FrozenGroup {
    code: String,
    /// Indexes into the month's meters.
    members: Vec<u32>,
    /// Published slots: index from the month's start, contributors, energy in W·s.
    published: Vec<(u32, u32, i64)>,
    /// Suppressed non-empty slots: indexes from the month's start.
    suppressed: Vec<u32>,
    /// What `compare` shows of the group in the month (IRIS, commune and all levels, when its
    /// month is published): `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    distribution: Option<Distribution>,
}

/// One Europe/Paris month of a release.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Month {
    from_utc: i64,
    to_utc: i64,
    meters: Vec<String>,
    /// Per meter, its runs of half-hours with a non-zero reading: `[start, end)` slot indexes.
    active: Vec<Vec<(u32, u32)>>,
    /// Per level of [`LEVELS`], its groups.
    levels: Vec<Vec<FrozenGroup>>,
    /// Whether the groups carry their `compare` distributions (false in files written before
    /// they were frozen: no comparison is answered from such a month).
    #[serde(default)]
    distributions: bool,
}

impl Month {
    fn slots(&self) -> i64 {
        (self.to_utc - self.from_utc).div_euclid(SLOT_S)
    }

    fn group(&self, level: Level, code: &str) -> Option<&FrozenGroup> {
        let l = LEVELS.iter().position(|&x| x == level)?;
        self.levels.get(l)?.iter().find(|g| g.code == code)
    }

    /// Whether meter `m` had a non-zero reading in slots `[a, b)`.
    fn active_in(&self, m: u32, a: u32, b: u32) -> bool {
        self.active
            .get(m as usize)
            .is_some_and(|runs| runs.iter().any(|&(s, e)| s < b && e > a))
    }

    fn check(&self) -> Result<(), String> {
        let n = u32::try_from(self.slots()).map_err(|_| "a month of no slots".to_string())?;
        if self.from_utc.rem_euclid(SLOT_S) != 0 || n == 0 || n > 31 * 48 + 2 {
            return Err(format!("month from {} is not a month", self.from_utc));
        }
        if self.active.len() != self.meters.len() || self.levels.len() != LEVELS.len() {
            return Err("meters, activity or levels do not match".into());
        }
        let meters = self.meters.len();
        let runs_ok = self.active.iter().flatten().all(|&(s, e)| s < e && e <= n);
        let groups_ok = self.levels.iter().flatten().all(|g| {
            g.members.iter().all(|&m| (m as usize) < meters)
                && g.published.iter().all(|&(i, c, _)| i < n && c > 0)
                && g.suppressed.iter().all(|&i| i < n)
                && g.distribution
                    .is_none_or(|(count, _)| count > 0 && count as usize <= g.members.len())
        });
        if runs_ok && groups_ok {
            Ok(())
        } else {
            Err("an index out of its month".into())
        }
    }
}

/// What a release file holds: its on-disk record (persistence, JSON compressed with zstd; the
/// answers about releases are [`ReleaseSummary`], which the server writes as JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Frozen {
    from_utc: i64,
    to_utc: i64,
    channel: String,
    created_utc: i64,
    /// The rule every slot was decided with.
    rule: Suppression,
    months: Vec<Month>,
}

/// A release as the server holds it.
#[derive(Debug)]
pub struct Release {
    frozen: Frozen,
    channel: Channel,
    file: String,
    bytes: u64,
}

/// What `POST` and `GET /v1/aggregates/releases` say of a release.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseSummary {
    pub from_utc: i64,
    pub to_utc: i64,
    pub channel: Channel,
    pub created_utc: i64,
    pub months: usize,
    /// Groups × months frozen.
    pub group_months: usize,
    pub file: String,
    pub bytes: u64,
}

impl Release {
    pub fn summary(&self) -> ReleaseSummary {
        ReleaseSummary {
            from_utc: self.frozen.from_utc,
            to_utc: self.frozen.to_utc,
            channel: self.channel,
            created_utc: self.frozen.created_utc,
            months: self.frozen.months.len(),
            group_months: self
                .frozen
                .months
                .iter()
                .map(|m| m.levels.iter().map(Vec::len).sum::<usize>())
                .sum(),
            file: self.file.clone(),
            bytes: self.bytes,
        }
    }

    pub fn range_utc(&self) -> (i64, i64) {
        (self.frozen.from_utc, self.frozen.to_utc)
    }

    pub fn channel(&self) -> Channel {
        self.channel
    }
}

/// The releases of a data directory; written one at a time.
pub struct Releases {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    writer: parking_lot::Mutex<()>,
    list: parking_lot::RwLock<Vec<Arc<Release>>>,
}

fn corruption(path: &Path, detail: impl Into<String>) -> Error {
    Error::Corruption {
        path: path.to_path_buf(),
        offset: 0,
        detail: detail.into(),
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn encode(frozen: &Frozen) -> Result<Vec<u8>, Error> {
    let json = serde_json::to_vec(frozen).map_err(|e| Error::Encode(e.to_string()))?;
    let payload = zstd::bulk::compress(&json, 19).map_err(|e| Error::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Release, Error> {
    let bad = |detail: &str| corruption(path, format!("release file: {detail}"));
    let (header, payload) = (bytes.get(..HEADER_LEN), bytes.get(HEADER_LEN..));
    let (Some(header), Some(payload)) = (header, payload) else {
        return Err(bad("shorter than its header"));
    };
    if header.get(..8) != Some(MAGIC.as_slice()) {
        return Err(bad("not a release (magic)"));
    }
    let word = |at: usize, len: usize| -> u64 {
        header
            .get(at..at + len)
            .unwrap_or(&[])
            .iter()
            .rev()
            .fold(0, |acc, &b| acc << 8 | u64::from(b))
    };
    let (crc, len) = (word(8, 4), word(12, 8));
    if len != payload.len() as u64 {
        return Err(bad(&format!(
            "payload of {} bytes where the header says {len} (truncated?)",
            payload.len()
        )));
    }
    if u64::from(crc32fast::hash(payload)) != crc {
        return Err(bad("checksum mismatch"));
    }
    let mut json = Vec::new();
    zstd::stream::read::Decoder::new(payload)
        .and_then(|d| d.take(MAX_PAYLOAD_BYTES).read_to_end(&mut json))
        .map_err(|e| bad(&format!("zstd: {e}")))?;
    let frozen: Frozen = serde_json::from_slice(&json).map_err(|e| bad(&format!("json: {e}")))?;
    let channel = crate::question::parse_channel(Some(&frozen.channel))
        .map_err(|_| bad("unknown channel"))?;
    for m in &frozen.months {
        m.check().map_err(|e| bad(&e))?;
    }
    Ok(Release {
        frozen,
        channel,
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes: bytes.len() as u64,
    })
}

impl Releases {
    /// Opens (creating) the releases folder inside the governance folder `gov_dir` and reads
    /// every release in it; a file that does not read back is an error naming it.
    pub(super) fn open(fs: Arc<dyn FileSystem>, gov_dir: &Path) -> Result<Releases, Error> {
        let dir = gov_dir.join(DIR_NAME);
        fs.create_dir_all(&dir).map_err(io_error(&dir))?;
        fs.sync_dir(gov_dir).map_err(io_error(gov_dir))?;
        let mut names = fs.list_dir(&dir).map_err(io_error(&dir))?;
        names.sort();
        let mut list = Vec::new();
        for name in names {
            let path = dir.join(&name);
            if name.ends_with(".tmp") {
                fs.remove(&path).map_err(io_error(&path))?;
            } else if name.ends_with(".rel") {
                let bytes = fs.read(&path).map_err(io_error(&path))?;
                list.push(Arc::new(decode(&path, &bytes)?));
            }
        }
        Ok(Releases {
            dir,
            fs,
            writer: parking_lot::Mutex::new(()),
            list: parking_lot::RwLock::new(list),
        })
    }

    pub fn list(&self) -> Vec<Arc<Release>> {
        let mut list = self.list.read().clone();
        list.sort_by_key(|r| (r.frozen.from_utc, r.channel.as_str()));
        list
    }

    /// Writes `bytes` as `name` durably: `name.tmp`, sync, rename, sync of the folder.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut file = self.fs.create(&tmp).map_err(io_error(&tmp))?;
        file.write_all(bytes).map_err(io_error(&tmp))?;
        file.sync().map_err(io_error(&tmp))?;
        drop(file);
        self.fs.rename(&tmp, &path).map_err(io_error(&path))?;
        self.fs.sync_dir(&self.dir).map_err(io_error(&self.dir))
    }
}

use crate::zone::paris;

/// The Paris date of a UTC instant, `YYYY-MM-DD`.
fn paris_date(ts_utc: i64) -> String {
    jiff::Timestamp::from_second(ts_utc)
        .map(|t| t.to_zoned(paris()).date().to_string())
        .unwrap_or_else(|_| ts_utc.to_string())
}

fn is_paris_month_start(ts_utc: i64) -> bool {
    jiff::Timestamp::from_second(ts_utc).is_ok_and(|t| {
        let local = t.to_zoned(paris());
        local.day() == 1 && local.time() == jiff::civil::Time::midnight()
    })
}

/// Runs of consecutive slot indexes of a meter's non-empty slots.
fn runs(slots: &[(i64, i64)], from_utc: i64) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &(ts, _) in slots {
        let i = ((ts - from_utc).div_euclid(SLOT_S)) as u32;
        match out.last_mut() {
            Some(run) if run.1 == i => run.1 = i + 1,
            _ => out.push((i, i + 1)),
        }
    }
    out
}

/// Freezes one month: every group of `groups` at every level, decided now.
fn freeze_month(
    store: &Store,
    groups: &GroupRegistry,
    rule: &Suppression,
    channel: Channel,
    (from_utc, to_utc): (i64, i64),
) -> Result<Month, ApiError> {
    let all: Vec<String> = groups
        .groups(Level::All)
        .into_values()
        .next()
        .unwrap_or_default();
    let table = Table::load(&*store.snapshot(), &all, channel, from_utc, to_utc)?;
    let decisions = Decisions::compute(groups, &table, rule)?;
    let index: HashMap<&str, u32> = all
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i as u32))
        .collect();
    let active = all
        .iter()
        .map(|m| {
            runs(
                table.by_meter.get(m).map_or(&[][..], Vec::as_slice),
                from_utc,
            )
        })
        .collect();
    let mut levels = Vec::new();
    for level in LEVELS {
        let mut groups = Vec::new();
        for (code, group) in decisions.levels.get(&level).into_iter().flatten() {
            let mut published = Vec::new();
            let mut suppressed = Vec::new();
            for (i, s) in group.slots.slots.iter().enumerate() {
                if s.contributors == 0 {
                    continue;
                }
                if s.published {
                    published.push((i as u32, s.contributors, s.energy_ws));
                } else {
                    suppressed.push(i as u32);
                }
            }
            let distribution = match level {
                Level::Building => None,
                _ => super::aggregates::distribution(&table, group, from_utc, to_utc),
            };
            groups.push(FrozenGroup {
                distribution,
                code: code.clone(),
                members: group
                    .members
                    .iter()
                    .filter_map(|m| index.get(m.as_str()).copied())
                    .collect(),
                published,
                suppressed,
            });
        }
        levels.push(groups);
    }
    Ok(Month {
        from_utc,
        to_utc,
        meters: all,
        active,
        levels,
        distributions: true,
    })
}

impl Governance {
    /// Releases the aggregates of `channel` over the whole Europe/Paris months `[from_utc,
    /// to_utc)`, as the store and the groups are now. Refused (409 `conflict`) when the range
    /// overlaps a release of the channel.
    pub fn release(
        &self,
        store: &Store,
        from_utc: i64,
        to_utc: i64,
        channel: Channel,
    ) -> Result<ReleaseSummary, ApiError> {
        if channel == Channel::MAX_POWER {
            return Err(ApiError::invalid(
                "aggregates sum consumption or production",
            ));
        }
        if from_utc >= to_utc || !is_paris_month_start(from_utc) || !is_paris_month_start(to_utc) {
            return Err(ApiError::invalid(
                "a release is of whole Europe/Paris months: `from` before `to`, both the first \
                 of a month (2024-01-01)",
            ));
        }
        if to_utc - from_utc > MAX_RELEASE_DAYS * 86_400 {
            return Err(ApiError::invalid(format!(
                "a release covers at most {MAX_RELEASE_DAYS} days"
            )));
        }
        let releases = &self.releases;
        let _writer = releases.writer.lock();
        if let Some(r) = releases.list.read().iter().find(|r| {
            r.channel == channel && r.frozen.from_utc < to_utc && from_utc < r.frozen.to_utc
        }) {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "{} from {} to {} is released already ({}): a released month is never \
                     released again",
                    channel.as_str(),
                    paris_date(r.frozen.from_utc),
                    paris_date(r.frozen.to_utc),
                    r.file
                ),
            ));
        }
        // One registry for every month: a load in between changes no group of the release.
        let groups = self.groups();
        let rule = self.config().aggregates;
        let months = Calendar {
            from_utc,
            to_utc,
            period: Period::Month,
            tz: paris(),
        }
        .periods()?;
        let frozen = Frozen {
            from_utc,
            to_utc,
            channel: channel.as_str().to_string(),
            created_utc: super::now_utc(),
            rule,
            months: months
                .into_iter()
                .map(|m| freeze_month(store, &groups, &rule, channel, m))
                .collect::<Result<_, _>>()?,
        };
        let bytes = encode(&frozen)?;
        let file = format!(
            "{}_{}_{}.rel",
            channel.as_str(),
            paris_date(from_utc),
            paris_date(to_utc)
        );
        releases.write(&file, &bytes)?;
        let release = Arc::new(Release {
            frozen,
            channel,
            file,
            bytes: bytes.len() as u64,
        });
        let summary = release.summary();
        releases.list.write().push(release);
        Ok(summary)
    }

    /// Every release, by start.
    pub fn releases(&self) -> Vec<Arc<Release>> {
        self.releases.list()
    }
}

fn not_released(params: &Params, released: &[&Month]) -> ApiError {
    // Adjacent months are named as one range.
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for m in released {
        match ranges.last_mut() {
            Some(r) if r.1 == m.from_utc => r.1 = m.to_utc,
            _ => ranges.push((m.from_utc, m.to_utc)),
        }
    }
    let what = if ranges.is_empty() {
        "nothing is released".to_string()
    } else {
        let named: Vec<String> = ranges
            .iter()
            .map(|&(f, t)| format!("from {} to {}", paris_date(f), paris_date(t)))
            .collect();
        format!("released: {}", named.join(", "))
    };
    ApiError::new(
        ErrorCode::NotReleased,
        format!(
            "aggregates of {} are answered from releases only, and this range is not wholly \
             released ({what}, Europe/Paris months)",
            params.channel.as_str()
        ),
    )
}

/// Per month of `months` (whole Europe/Paris months), the frozen distributions of the groups
/// `codes` (level, code) its release holds, in that order (a group the release does not hold is
/// left out, as in a live comparison; `None`: suppressed); refused with `not_released` when a
/// month is not released with its distributions.
#[allow(clippy::type_complexity)]
pub(super) fn released_distributions(
    gov: &Governance,
    params: &Params,
    months: &[(i64, i64)],
    codes: &[(Level, String)],
) -> Result<Vec<Vec<(Level, String, Option<Distribution>)>>, ApiError> {
    let list = gov.releases();
    let mut frozen: Vec<&Month> = list
        .iter()
        .filter(|r| r.channel == params.channel)
        .flat_map(|r| r.frozen.months.iter())
        .filter(|m| m.distributions)
        .collect();
    frozen.sort_by_key(|m| m.from_utc);
    let mut out = Vec::with_capacity(months.len());
    for &(start, end) in months {
        let Some(month) = frozen
            .iter()
            .find(|m| m.from_utc == start && m.to_utc == end)
        else {
            return Err(not_released(params, &frozen));
        };
        out.push(
            codes
                .iter()
                .filter_map(|(level, code)| {
                    let group = month.group(*level, code)?;
                    Some((*level, code.clone(), group.distribution))
                })
                .collect(),
        );
    }
    Ok(out)
}

/// The groups of `params.level` (one when `params.code` is set) built from the frozen slots of
/// the releases covering the question's range, and the smallest minimum of the level those
/// releases were decided with; refused with `not_released` when they do not cover the range.
pub(super) fn released_groups(
    gov: &Governance,
    params: &Params,
) -> Result<(Vec<GroupCells>, u32), ApiError> {
    let (from, to) = (params.calendar.from_utc, params.calendar.to_utc);
    let list = gov.releases();
    let mut min = u32::MAX;
    let mut months: Vec<&Month> = Vec::new();
    for r in list.iter().filter(|r| r.channel == params.channel) {
        let (f, t) = r.range_utc();
        if f < to && from < t {
            min = min.min(r.frozen.rule.min_for(params.level));
        }
        months.extend(r.frozen.months.iter());
    }
    months.sort_by_key(|m| m.from_utc);
    let mut cursor = from;
    for m in &months {
        if m.from_utc <= cursor && cursor < m.to_utc {
            cursor = m.to_utc;
        }
    }
    if cursor < to {
        return Err(not_released(params, &months));
    }
    months.retain(|m| m.from_utc < to && from < m.to_utc);
    let l = LEVELS
        .iter()
        .position(|&x| x == params.level)
        .unwrap_or(LEVELS.len());
    let codes: BTreeSet<&str> = months
        .iter()
        .flat_map(|m| m.levels.get(l).into_iter().flatten())
        .map(|g| g.code.as_str())
        .filter(|c| params.code.as_deref().is_none_or(|want| want == *c))
        .collect();
    let len = usize::try_from((to - from).div_euclid(SLOT_S)).unwrap_or(0);
    let mut out = Vec::new();
    for code in codes {
        let mut slots = Slots::new(from, len);
        let mut pieces: Vec<(&Month, &FrozenGroup)> = Vec::new();
        for m in &months {
            let Some(g) = m.group(params.level, code) else {
                continue;
            };
            let mut put = |i: u32, slot: Slot| {
                let ts = m.from_utc + i64::from(i) * SLOT_S;
                if let Some(s) = slots.index(ts).and_then(|k| slots.slots.get_mut(k)) {
                    *s = slot;
                }
            };
            for &(i, contributors, energy_ws) in &g.published {
                put(
                    i,
                    Slot {
                        contributors,
                        energy_ws,
                        max_meter_ws: 0,
                        published: true,
                    },
                );
            }
            for &i in &g.suppressed {
                // A suppressed slot exists, and nothing else of it is kept.
                put(
                    i,
                    Slot {
                        contributors: 1,
                        energy_ws: 0,
                        max_meter_ws: 0,
                        published: false,
                    },
                );
            }
            pieces.push((m, g));
        }
        // Members with a non-zero reading in [start, end): one meter counts once across months.
        let active = |start: i64, end: i64| -> u32 {
            let mut seen: HashSet<&str> = HashSet::new();
            for (m, g) in &pieces {
                let (lo, hi) = (start.max(m.from_utc), end.min(m.to_utc));
                if lo >= hi {
                    continue;
                }
                let a = (lo - m.from_utc).div_euclid(SLOT_S) as u32;
                let b = (hi - m.from_utc + SLOT_S - 1).div_euclid(SLOT_S) as u32;
                for &i in &g.members {
                    if m.active_in(i, a, b) {
                        if let Some(id) = m.meters.get(i as usize) {
                            seen.insert(id);
                        }
                    }
                }
            }
            seen.len() as u32
        };
        out.push(GroupCells {
            group: code.to_string(),
            cells: super::aggregates::group_cells(params.kind, &params.calendar, &slots, &active)?,
        });
    }
    Ok((out, min))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Frozen {
        Frozen {
            from_utc: 1_704_063_600,
            to_utc: 1_706_742_000,
            channel: "consumption".into(),
            created_utc: 1_706_800_000,
            rule: Suppression::default(),
            months: vec![Month {
                from_utc: 1_704_063_600,
                to_utc: 1_706_742_000,
                meters: vec!["a".into(), "b".into()],
                active: vec![vec![(0, 48)], vec![(2, 3)]],
                levels: vec![
                    vec![FrozenGroup {
                        code: String::new(),
                        members: vec![0, 1],
                        published: vec![(0, 2, 1_000)],
                        suppressed: vec![2],
                        distribution: Some((2, [4, 6, 8])),
                    }],
                    vec![],
                    vec![],
                    vec![],
                ],
                distributions: true,
            }],
        }
    }

    #[test]
    fn a_release_file_reads_back_as_written() {
        let bytes = encode(&sample()).unwrap();
        let release = decode(Path::new("r.rel"), &bytes).unwrap();
        assert_eq!(release.channel, Channel::CONSUMPTION);
        assert_eq!(
            release.frozen.months[0].levels[0][0].published,
            [(0, 2, 1_000)]
        );
        assert!(release.frozen.months[0].active_in(1, 0, 3));
        assert!(!release.frozen.months[0].active_in(1, 3, 48));
    }

    #[test]
    fn every_truncation_or_flipped_byte_of_a_release_file_is_an_error_naming_it() {
        let bytes = encode(&sample()).unwrap();
        let path = Path::new("DATA/governance/releases/x.rel");
        for len in 0..bytes.len() {
            let e = decode(path, &bytes[..len]).unwrap_err();
            assert!(e.to_string().contains("x.rel"), "{e}");
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x41;
            let e = decode(path, &bad).unwrap_err();
            assert!(e.to_string().contains("x.rel"), "{at}: {e}");
        }
    }

    #[test]
    fn a_release_file_written_before_distributions_were_frozen_reads_back_without_them() {
        let mut json = serde_json::to_value(sample()).unwrap();
        let month = &mut json["months"][0];
        month.as_object_mut().unwrap().remove("distributions");
        month["levels"][0][0]
            .as_object_mut()
            .unwrap()
            .remove("distribution");
        let payload = zstd::bulk::compress(&serde_json::to_vec(&json).unwrap(), 3).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let release = decode(Path::new("r.rel"), &bytes).unwrap();
        let month = &release.frozen.months[0];
        assert!(!month.distributions);
        assert_eq!(month.levels[0][0].distribution, None);
        assert_eq!(month.levels[0][0].published, [(0, 2, 1_000)]);
    }

    #[test]
    fn a_distribution_of_more_meters_than_its_group_is_corruption() {
        let mut frozen = sample();
        frozen.months[0].levels[0][0].distribution = Some((3, [0, 0, 0]));
        let bytes = encode(&frozen).unwrap();
        assert!(matches!(
            decode(Path::new("r.rel"), &bytes),
            Err(Error::Corruption { .. })
        ));
    }

    #[test]
    fn an_index_outside_its_month_is_corruption() {
        let mut frozen = sample();
        frozen.months[0].levels[0][0].members.push(7);
        let bytes = encode(&frozen).unwrap();
        assert!(matches!(
            decode(Path::new("r.rel"), &bytes),
            Err(Error::Corruption { .. })
        ));
    }
}

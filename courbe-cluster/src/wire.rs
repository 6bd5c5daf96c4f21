//! The binary encoding of an aggregate question's [`Partials`] on the internal route
//! (`Content-Type: application/vnd.courbe.partials`; docs/SCALE-OUT.md, "Fan-out between
//! nodes"). JSON stays available for reading by eye: a reader answers this encoding only to a
//! request that accepts it.
//!
//! Version 1, every integer a LEB128 varint (signed ones zigzagged first):
//! - the version byte, 1;
//! - `from_utc`, `to_utc` (signed);
//! - the registry: 0, or 1 and a string (a length, then UTF-8 bytes);
//! - the coverage: 0 every group, 1 a level (its name), 2 a group (level, code), 3 ad hoc;
//! - 1 when it holds the dominance rule's sums (`Partials::dominance`), else 0;
//! - the count of levels, and per level its name, the count of its groups and per group its
//!   code, then five columns: contributors, energy (W·s), largest member's energy, orphans,
//!   active members.
//!
//! A column is its length, then 0 when every value is 0, else the greatest common divisor of
//! its values (energies in W·s of half-hourly readings are multiples of 1,800), then runs until
//! the length is covered: a count of zeros, a count of non-zero values, those values divided by
//! the divisor (signed). Decoding checks every length against what is left and against the
//! range, and refuses trailing bytes: bytes from the network never panic, and decode to no
//! more groups than the caller allows.

use std::collections::BTreeMap;

use courbe::governance::aggregates::{Coverage, PartialGroup, Partials};

/// The content type of this encoding.
pub const CONTENT_TYPE: &str = "application/vnd.courbe.partials";

const VERSION: u8 = 1;

/// The most half-hours of one question (1,100 days, `aggregates`' longest range).
const MAX_SLOTS: u64 = 1_100 * 48;

/// The longest string (a level name, a group code, a registry digest).
const MAX_STRING: u64 = 4_096;

/// Levels of a `Partials`: the four of the registry, or the ad-hoc list's one.
const MAX_LEVELS: u64 = 4;

pub fn encode(p: &Partials) -> Vec<u8> {
    let mut out = vec![VERSION];
    signed(&mut out, p.from_utc);
    signed(&mut out, p.to_utc);
    match &p.registry {
        None => out.push(0),
        Some(r) => {
            out.push(1);
            string(&mut out, r);
        }
    }
    match &p.coverage {
        Coverage::Every => out.push(0),
        Coverage::Level(level) => {
            out.push(1);
            string(&mut out, level);
        }
        Coverage::Group { level, code } => {
            out.push(2);
            string(&mut out, level);
            string(&mut out, code);
        }
        Coverage::AdHoc => out.push(3),
    }
    out.push(u8::from(p.dominance));
    varint(&mut out, p.levels.len() as u64);
    for (level, groups) in &p.levels {
        string(&mut out, level);
        varint(&mut out, groups.len() as u64);
        for (code, g) in groups {
            string(&mut out, code);
            let column_of = |f: fn(&(u32, i64, i64)) -> i64| g.slots.iter().map(f).collect();
            let columns: [Vec<i64>; 5] = [
                column_of(|s| i64::from(s.0)),
                column_of(|s| s.1),
                column_of(|s| s.2),
                g.orphans.iter().map(|&x| i64::from(x)).collect(),
                g.active.iter().map(|&x| i64::from(x)).collect(),
            ];
            for c in &columns {
                column(&mut out, c);
            }
        }
    }
    out
}

/// Reads `bytes`, holding at most `max_groups` groups in all (the registry's count bounds
/// what a reader may send, so a short body never asks for a large table).
pub fn decode(bytes: &[u8], max_groups: usize) -> Result<Partials, String> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.byte()?;
    if version != VERSION {
        return Err(format!(
            "partials encoding version {version}, not {VERSION}"
        ));
    }
    let from_utc = r.signed()?;
    let to_utc = r.signed()?;
    let n_slots = to_utc
        .checked_sub(from_utc)
        .map(|span| span.div_euclid(1_800))
        .filter(|&n| (0..=MAX_SLOTS as i64).contains(&n))
        .ok_or_else(|| format!("a range of [{from_utc}, {to_utc}) is not one question's"))?
        as u64;
    let registry = match r.byte()? {
        0 => None,
        1 => Some(r.string()?),
        other => return Err(format!("registry tag {other}")),
    };
    let coverage = match r.byte()? {
        0 => Coverage::Every,
        1 => Coverage::Level(r.string()?),
        2 => Coverage::Group {
            level: r.string()?,
            code: r.string()?,
        },
        3 => Coverage::AdHoc,
        other => return Err(format!("coverage tag {other}")),
    };
    let dominance = match r.byte()? {
        0 => false,
        1 => true,
        other => return Err(format!("dominance tag {other}")),
    };
    let level_count = r.count(MAX_LEVELS, "levels")?;
    let mut levels = BTreeMap::new();
    let mut groups_left = max_groups as u64;
    for _ in 0..level_count {
        let level = r.string()?;
        let count = r.count(groups_left, "groups")?;
        groups_left -= count;
        let mut groups = BTreeMap::new();
        for _ in 0..count {
            let code = r.string()?;
            let contributors = r.column(n_slots)?;
            let energy = r.column(n_slots)?;
            let largest = r.column(n_slots)?;
            if contributors.len() != energy.len() || energy.len() != largest.len() {
                return Err(format!("{level} {code:?}: columns of different lengths"));
            }
            let counts = |c: Vec<i64>| -> Result<Vec<u32>, String> {
                c.into_iter()
                    .map(|x| u32::try_from(x).map_err(|_| format!("a count of {x}")))
                    .collect()
            };
            let slots = counts(contributors)?
                .into_iter()
                .zip(energy)
                .zip(largest)
                .map(|((c, e), l)| (c, e, l))
                .collect();
            let orphans = counts(r.column(n_slots)?)?;
            let active = counts(r.column(n_slots)?)?;
            let group = PartialGroup {
                slots,
                orphans,
                active,
            };
            if groups.insert(code.clone(), group).is_some() {
                return Err(format!("{level} {code:?} twice"));
            }
        }
        if levels.insert(level.clone(), groups).is_some() {
            return Err(format!("level {level} twice"));
        }
    }
    if r.at != bytes.len() {
        return Err(format!("{} bytes after the partials", bytes.len() - r.at));
    }
    Ok(Partials {
        from_utc,
        to_utc,
        registry,
        coverage,
        dominance,
        levels,
    })
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn signed(out: &mut Vec<u8>, v: i64) {
    varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn column(out: &mut Vec<u8>, values: &[i64]) {
    varint(out, values.len() as u64);
    let divisor = values.iter().fold(0, |g, v| gcd(g, v.unsigned_abs()));
    // i64::MIN alone has a divisor no i64 holds: written as is.
    let divisor = i64::try_from(divisor).unwrap_or(1);
    varint(out, divisor as u64);
    if divisor == 0 {
        return;
    }
    let mut i = 0;
    while i < values.len() {
        let zeros = values[i..].iter().take_while(|&&v| v == 0).count();
        let rest = &values[i + zeros..];
        let run = rest.iter().take_while(|&&v| v != 0).count();
        varint(out, zeros as u64);
        varint(out, run as u64);
        for v in &rest[..run] {
            signed(out, v / divisor);
        }
        i += zeros + run;
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| format!("partials cut at byte {}", self.at))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(format!("a varint past 64 bits at byte {}", self.at));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("a varint past 64 bits at byte {}", self.at))
    }

    fn signed(&mut self) -> Result<i64, String> {
        let z = self.varint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    /// A count of at most `max` things of at least one byte each.
    fn count(&mut self, max: u64, what: &str) -> Result<u64, String> {
        let n = self.varint()?;
        let left = (self.bytes.len() - self.at) as u64;
        if n > max || n > left {
            return Err(format!("{n} {what} at byte {}", self.at));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.count(MAX_STRING, "bytes of a string")? as usize;
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        String::from_utf8(s.to_vec()).map_err(|_| format!("a string not UTF-8 at byte {}", self.at))
    }

    /// A column of at most `max` values.
    fn column(&mut self, max: u64) -> Result<Vec<i64>, String> {
        let len = self.varint()?;
        if len > max {
            return Err(format!("a column of {len} values, more than {max}"));
        }
        let len = len as usize;
        let divisor = self.varint()?;
        if divisor == 0 {
            return Ok(vec![0; len]);
        }
        let divisor = i64::try_from(divisor).map_err(|_| format!("a divisor of {divisor}"))?;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let room = (len - out.len()) as u64;
            let zeros = self.varint()?;
            if zeros > room {
                return Err(format!("a run of {zeros} past a column of {len}"));
            }
            out.resize(out.len() + zeros as usize, 0);
            let room = (len - out.len()) as u64;
            let run = self.varint()?;
            if run > room {
                return Err(format!("a run of {run} past a column of {len}"));
            }
            for _ in 0..run {
                let v = self.signed()?;
                let v = v
                    .checked_mul(divisor)
                    .filter(|&v| v != 0)
                    .ok_or_else(|| format!("a value {v} × {divisor} out of a column"))?;
                out.push(v);
            }
            if zeros == 0 && run == 0 {
                return Err(format!("an empty run at byte {}", self.at));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64, seeded: the same cases every run.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Partials of every shape: empty groups, sparse and full columns, energies of half-hourly
    /// readings and of any step, the extremes of each type, each coverage.
    fn partials(seed: u64) -> Partials {
        let mut rng = seed;
        let n = (next(&mut rng) % 200) as i64;
        let from_utc = 1_709_251_200 - 1_800 * (next(&mut rng) % 1_000) as i64;
        let value = |rng: &mut u64| -> i64 {
            match next(rng) % 8 {
                0..=2 => 0,
                3 => 1_800 * (next(rng) % 100_000) as i64,
                4 => next(rng) as i64,
                5 => i64::MIN,
                6 => i64::MAX,
                _ => -((next(rng) % 1_000) as i64),
            }
        };
        let count = |rng: &mut u64| -> u32 {
            match next(rng) % 4 {
                0 | 1 => 0,
                2 => (next(rng) % 20) as u32,
                _ => next(rng) as u32,
            }
        };
        let mut levels = BTreeMap::new();
        for level in ["all", "commune", "iris", "building"]
            .into_iter()
            .take((next(&mut rng) % 5) as usize)
        {
            let mut groups = BTreeMap::new();
            for g in 0..next(&mut rng) % 6 {
                let sparse = next(&mut rng) % 3 == 0;
                let slots = (0..n)
                    .map(|_| {
                        if sparse {
                            (0, 0, 0)
                        } else {
                            (count(&mut rng), value(&mut rng), value(&mut rng))
                        }
                    })
                    .collect();
                let orphans = match next(&mut rng) % 2 {
                    0 => Vec::new(),
                    _ => (0..n).map(|_| count(&mut rng)).collect(),
                };
                let active = (0..next(&mut rng) % (n as u64 + 1))
                    .map(|_| count(&mut rng))
                    .collect();
                groups.insert(
                    format!("{level}-{g}-é"),
                    PartialGroup {
                        slots,
                        orphans,
                        active,
                    },
                );
            }
            levels.insert(level.to_string(), groups);
        }
        let coverage = match next(&mut rng) % 4 {
            0 => Coverage::Every,
            1 => Coverage::Level("iris".into()),
            2 => Coverage::Group {
                level: "commune".into(),
                code: "75056".into(),
            },
            _ => Coverage::AdHoc,
        };
        Partials {
            from_utc,
            to_utc: from_utc + n * 1_800,
            registry: (next(&mut rng) % 2 == 0).then(|| "ab".repeat(32)),
            coverage,
            dominance: next(&mut rng) % 2 == 0,
            levels,
        }
    }

    #[test]
    fn partials_decode_to_exactly_what_was_encoded() {
        for seed in 0..300 {
            let p = partials(seed);
            let bytes = encode(&p);
            assert_eq!(decode(&bytes, 100), Ok(p), "seed {seed}");
        }
    }

    #[test]
    fn a_cut_or_garbled_body_is_refused_or_read_never_panicking() {
        let mut rng = 16;
        for seed in 0..60 {
            let p = partials(seed);
            let bytes = encode(&p);
            // Every cut is refused: no prefix of an encoding is one (every cut of the head,
            // 300 drawn further on).
            let cuts = (0..bytes.len().min(300))
                .chain((0..300).map(|_| (next(&mut rng) % bytes.len() as u64) as usize));
            for cut in cuts.collect::<Vec<_>>() {
                assert!(
                    decode(&bytes[..cut], 100).is_err(),
                    "seed {seed}, cut {cut}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode(&longer, 100).is_err(), "a trailing byte");
            // Garbled bytes: read or refused, never a panic, never past the bounds.
            for _ in 0..200 {
                let mut garbled = bytes.clone();
                for _ in 0..1 + next(&mut rng) % 4 {
                    if garbled.is_empty() {
                        break;
                    }
                    let at = (next(&mut rng) % garbled.len() as u64) as usize;
                    match next(&mut rng) % 3 {
                        0 => garbled[at] = next(&mut rng) as u8,
                        1 => garbled[at] ^= 0x80,
                        _ => {
                            garbled.remove(at);
                        }
                    }
                }
                if let Ok(read) = decode(&garbled, 100) {
                    let groups: usize = read.levels.values().map(BTreeMap::len).sum();
                    assert!(groups <= 100);
                    assert!(read.levels.values().flat_map(|l| l.values()).all(|g| {
                        g.slots.len() as u64 <= MAX_SLOTS && g.active.len() as u64 <= MAX_SLOTS
                    }));
                }
            }
        }
        // Random bytes after a good version byte.
        for _ in 0..2_000 {
            let len = 1 + next(&mut rng) % 64;
            let mut bytes: Vec<u8> = (0..len).map(|_| next(&mut rng) as u8).collect();
            bytes[0] = VERSION;
            let _ = decode(&bytes, 100);
        }
    }

    #[test]
    fn a_body_of_more_groups_than_allowed_or_another_version_is_refused() {
        let p = (0..50)
            .map(partials)
            .find(|p| p.levels.values().map(BTreeMap::len).sum::<usize>() > 3)
            .expect("a case with four groups");
        let bytes = encode(&p);
        let groups: usize = p.levels.values().map(BTreeMap::len).sum();
        assert!(decode(&bytes, groups).is_ok());
        assert!(decode(&bytes, groups - 1).unwrap_err().contains("groups"));
        let mut other = bytes.clone();
        other[0] = 2;
        assert!(decode(&other, groups).unwrap_err().contains("version 2"));
    }

    #[test]
    fn an_empty_group_takes_a_few_bytes_whatever_the_range() {
        let group = PartialGroup {
            slots: vec![(0, 0, 0); 1_488],
            orphans: vec![0; 1_488],
            active: vec![0; 31],
        };
        let p = Partials {
            from_utc: 0,
            to_utc: 1_488 * 1_800,
            registry: None,
            coverage: Coverage::Level("iris".into()),
            dominance: false,
            levels: BTreeMap::from([(
                "iris".to_string(),
                BTreeMap::from([("751010101".to_string(), group)]),
            )]),
        };
        let bytes = encode(&p);
        assert!(bytes.len() < 64, "{} bytes", bytes.len());
        assert_eq!(decode(&bytes, 1), Ok(p));
    }
}

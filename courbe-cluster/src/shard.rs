//! Meters to shards: a stable hash, the same in every process and version.

/// FNV-1a, 64 bits, of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Lamping and Veach's jump consistent hash: a bucket in `0..buckets` for `key`; growing
/// `buckets` by one moves only `1/buckets` of the keys. `buckets` must be at least 1.
pub fn jump(mut key: u64, buckets: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as u32
}

/// The shard of `meter` among `shards` (at least 1).
pub fn shard_of(meter: &str, shards: u32) -> u32 {
    jump(fnv1a64(meter.as_bytes()), shards.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_of_a_meter_is_pinned_across_versions() {
        // Pinned values: changing the hash moves every meter to another shard.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let got: Vec<u32> = ["00000000000001", "12345678901234", "99999999999999"]
            .iter()
            .map(|m| shard_of(m, 16))
            .collect();
        assert_eq!(got, PINNED);
    }

    const PINNED: [u32; 3] = [4, 6, 14];

    #[test]
    fn growing_the_shard_count_by_one_moves_about_one_meter_in_n_plus_one() {
        let meters: Vec<String> = (0..20_000).map(|i| format!("{i:014}")).collect();
        let moved = meters
            .iter()
            .filter(|m| shard_of(m, 8) != shard_of(m, 9))
            .count();
        // Expected 20,000 / 9 = 2,222; no meter moves between two old shards.
        assert!((1_900..2_600).contains(&moved), "{moved} moved");
        assert!(meters
            .iter()
            .all(|m| shard_of(m, 8) == shard_of(m, 9) || shard_of(m, 9) == 8));
        let mut counts = [0usize; 8];
        for m in &meters {
            counts[shard_of(m, 8) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (2_200..2_800).contains(&c)),
            "{counts:?}"
        );
    }
}

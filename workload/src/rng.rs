//! A tiny deterministic PRNG. SplitMix64: one `u64` of state, statistically sound for simulation,
//! and cheap to seed from a hash of (seed, meter, day) so that every stream is independent.

/// Mixes two words into a seed (the SplitMix64 finaliser applied to a combination of both).
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    finalise(a ^ finalise(b.wrapping_add(0x9E37_79B9_7F4A_7C15)))
}

fn finalise(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64 (Steele, Lea and Flood): the one seeded generator of the workspace's fleets,
/// benches and tests (the golden files' generator in `storage-format/tests/golden.rs` is frozen
/// with them and stays apart).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        finalise(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `[lo, hi]`.
    pub(crate) fn int(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        let span = (hi - lo) as u64 + 1;
        lo + ((u128::from(self.next_u64()) * u128::from(span)) >> 64) as i64
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Approximately standard normal (Irwin–Hall sum of four uniforms, rescaled): cheap and
    /// bounded to ±3.5, which suits jitter on human schedules.
    pub(crate) fn normal(&mut self) -> f64 {
        let s = self.unit() + self.unit() + self.unit() + self.unit();
        (s - 2.0) * 3f64.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let mut a = Rng::new(mix(7, 42));
        let mut b = Rng::new(mix(7, 42));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(mix(7, 42), mix(7, 43));
        assert_ne!(mix(7, 42), mix(8, 42));
    }

    #[test]
    fn uniform_draws_stay_in_their_ranges_and_fill_them() {
        let mut rng = Rng::new(1);
        let mut seen = [false; 6];
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
            sum += u;
            let i = rng.int(-2, 3);
            assert!((-2..=3).contains(&i));
            seen[(i + 2) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert!((sum / 10_000.0 - 0.5).abs() < 0.02);
    }
}

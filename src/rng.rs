//! A tiny seeded random number generator (SplitMix64) shared by everything that samples.
//!
//! Training must be reproducible for a given seed, so every draw must depend only on the seed and a
//! stream id (round, fold, …), never on thread scheduling, so samplers derive a fresh
//! generator per stream with [`Rng::stream`] instead of sharing one.

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `z`. Samplers that must not depend on
/// the order of draws (parallel loops) hash (seed, index) with it instead of drawing in turn.
#[inline(always)]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: fast, statistically solid for sampling, and trivially reproducible.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed ^ 0x9E37_79B9_7F4A_7C15 }
    }

    /// An independent generator for sub-stream `id` of `seed` (e.g. one per boosting round).
    pub fn stream(seed: u64, id: u64) -> Self {
        let mut r = Rng::new(seed);
        r.state ^= id.wrapping_mul(0xD1B5_4A32_D192_ED03);
        r.next_u64();
        r
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (n > 0), without modulo bias worth caring about at these sizes.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Standard normal draw (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// `k` distinct indices from `0..n`, sorted ascending (Floyd's algorithm for small k, a
    /// partial shuffle otherwise).
    pub fn sample_sorted(&mut self, n: usize, k: usize) -> Vec<usize> {
        let k = k.min(n);
        let mut out: Vec<usize> = if k * 4 < n {
            let mut set = std::collections::HashSet::with_capacity(k * 2);
            let mut v = Vec::with_capacity(k);
            for j in n - k..n {
                let t = self.below(j + 1);
                let pick = if set.insert(t) { t } else { j };
                if pick == j {
                    set.insert(j);
                }
                v.push(pick);
            }
            v
        } else {
            let mut all: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = i + self.below(n - i);
                all.swap(i, j);
            }
            all.truncate(k);
            all
        };
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::stream(1, 2).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::stream(1, 2).next_u64(), Rng::stream(1, 3).next_u64());
    }

    #[test]
    fn sample_sorted_gives_distinct_sorted_indices() {
        let mut r = Rng::new(5);
        for (n, k) in [(100, 10), (100, 90), (10, 10), (1000, 1)] {
            let s = r.sample_sorted(n, k);
            assert_eq!(s.len(), k);
            assert!(s.windows(2).all(|w| w[0] < w[1]));
            assert!(s.iter().all(|&i| i < n));
        }
    }
}

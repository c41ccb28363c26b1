//! Gradient quantization: each row's (gradient, hessian) pair becomes two integers packed in
//! one `i64`, so a histogram update is a single integer add instead of two float adds.
//!
//! LightGBM 4's quantized training does the same with a handful of levels and 16/32-bit
//! accumulators. Here the number of levels is as large as the row count allows without
//! overflow: with `m` rows in a tree, gradients get `⌊(2³¹−1)/m⌋` levels on each side of zero
//! and hessians `⌊(2³²−1)/m⌋`, so any sum over at most `m` rows fits its 32-bit half exactly
//! (about 21,000 gradient levels at 100,000 rows, 2,100 at a million). Rounding is stochastic
//! and unbiased, driven by a hash of (seed, row): the same seed gives the same integers
//! whatever the thread count, and integer sums are exact and order-free, so histograms are
//! bit-identical however rows are split among tasks. The split search works on these sums;
//! leaf values are computed from the exact float gradients afterwards (`grow.rs`).

use rayon::prelude::*;

use crate::rng::mix;

/// A packed histogram entry or row value: `Σ quantized gradient` in the high 32 bits (signed),
/// `Σ quantized hessian` in the low 32 bits (non-negative).
pub type Packed = i64;

/// Rows per parallel task when quantizing.
const CHUNK: usize = 1 << 14;

/// Pack a quantized gradient and hessian.
#[inline(always)]
pub fn pack(g: i64, h: i64) -> Packed {
    (g << 32) + h
}

/// Split a packed sum into (gradient, hessian) integers. Valid for any sum of at most the
/// row count the scales were made for (the hessian half never carries into the gradient half).
#[inline(always)]
pub fn unpack(v: Packed) -> (i64, i64) {
    let h = v & 0xFFFF_FFFF;
    ((v - h) >> 32, h)
}

/// The float value of one quantization step of each half.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scales {
    /// Gradient per integer step.
    pub g: f64,
    /// Hessian per integer step.
    pub h: f64,
}

impl Scales {
    /// Dequantize a packed sum into float (gradient, hessian) sums.
    #[inline(always)]
    pub fn decode(&self, v: Packed) -> (f64, f64) {
        let (g, h) = unpack(v);
        (g as f64 * self.g, h as f64 * self.h)
    }
}

/// Quantize every row of `gh` into `out` (same length) for trees over at most `m` rows.
/// Negative hessians (a custom objective's) are treated as zero. Returns the scales.
pub fn quantize(gh: &[[f32; 2]], m: usize, seed: u64, out: &mut [Packed]) -> Scales {
    assert_eq!(gh.len(), out.len(), "one packed value per row");
    assert!(m <= i32::MAX as usize, "at most 2³¹−1 rows per tree (checked when a fit starts)");
    let m = m.max(1) as u64;
    let g_levels = (i32::MAX as u64 / m) as f64;
    let h_levels = (u32::MAX as u64 / m) as f64;
    let (gmax, hmax) = gh
        .par_chunks(CHUNK)
        .map(|c| c.iter().fold((0f32, 0f32), |(a, b), v| (a.max(v[0].abs()), b.max(v[1]))))
        .reduce(|| (0.0, 0.0), |x, y| (x.0.max(y.0), x.1.max(y.1)));
    // An all-zero gradient (or hessian) column quantizes to 0 under any positive scale.
    let (gmax, hmax) = (if gmax > 0.0 { gmax as f64 } else { 1.0 }, if hmax > 0.0 { hmax as f64 } else { 1.0 });
    let scales = Scales { g: gmax / g_levels, h: hmax / h_levels };
    let (gi, hi) = (g_levels / gmax, h_levels / hmax);
    let seed = mix(seed ^ 0x51_7CC1_B727_220A);
    out.par_chunks_mut(CHUNK).zip(gh.par_chunks(CHUNK)).enumerate().for_each(|(c, (o, src))| {
        let first = (c * CHUNK) as u64;
        for (k, (d, v)) in o.iter_mut().zip(src).enumerate() {
            let r = mix(seed ^ (first + k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            // Two independent uniforms in [0, 1) from the hash's halves.
            let ug = (r >> 32) as f64 * (1.0 / 4_294_967_296.0);
            let uh = (r & 0xFFFF_FFFF) as f64 * (1.0 / 4_294_967_296.0);
            let g = (v[0] as f64 * gi + ug).floor().clamp(-g_levels, g_levels) as i64;
            let h = (v[1].max(0.0) as f64 * hi + uh).floor().clamp(0.0, h_levels) as i64;
            *d = pack(g, h);
        }
    });
    scales
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_sums_unpack_exactly_and_subtract() {
        let rows: Vec<(i64, i64)> = vec![(-5, 3), (7, 0), (-2_000_000, 4_000_000), (1, 1), (0, 9)];
        let total: Packed = rows.iter().map(|&(g, h)| pack(g, h)).sum();
        let (g, h) = rows.iter().fold((0, 0), |a, r| (a.0 + r.0, a.1 + r.1));
        assert_eq!(unpack(total), (g, h));
        let part = pack(-5, 3) + pack(1, 1);
        assert_eq!(unpack(total - part), (g + 4, h - 4));
    }

    #[test]
    fn rounding_is_unbiased_bounded_and_seeded() {
        let n = 20_000;
        let gh: Vec<[f32; 2]> =
            (0..n).map(|r| [((r * 37 % 1001) as f32 - 500.0) / 500.0, ((r * 11 % 97) as f32 + 1.0) / 400.0]).collect();
        let mut a = vec![0; n];
        let mut b = vec![0; n];
        let s = quantize(&gh, n, 7, &mut a);
        quantize(&gh, n, 7, &mut b);
        assert_eq!(a, b, "same seed, same integers");
        let mut c = vec![0; n];
        quantize(&gh, n, 8, &mut c);
        assert_ne!(a, c, "the seed drives the rounding");
        let total: Packed = a.iter().sum();
        let (g, h) = s.decode(total);
        let (eg, eh) = gh.iter().fold((0.0, 0.0), |acc, v| (acc.0 + v[0] as f64, acc.1 + v[1] as f64));
        // Each row's error is below one step; sums of unbiased errors grow like √n steps.
        assert!((g - eg).abs() < 4.0 * (n as f64).sqrt() * s.g, "{g} vs {eg}");
        assert!((h - eh).abs() < 4.0 * (n as f64).sqrt() * s.h, "{h} vs {eh}");
        for (v, x) in a.iter().zip(&gh) {
            let (gq, hq) = s.decode(*v);
            assert!((gq - x[0] as f64).abs() <= s.g * 1.000001 && (hq - x[1] as f64).abs() <= s.h * 1.000001);
        }
        // The largest magnitudes sit exactly on the outermost level, never past it.
        let (gmax, _) = unpack(*a.iter().max_by_key(|v| unpack(**v).0).unwrap());
        assert!(gmax <= i32::MAX as i64 / n as i64);
    }

    #[test]
    fn all_zero_gradients_quantize_to_zero() {
        let gh = vec![[0.0f32, 0.0]; 10];
        let mut q = vec![1; 10];
        quantize(&gh, 10, 1, &mut q);
        assert!(q.iter().all(|&v| v == 0));
    }
}

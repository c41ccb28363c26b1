//! Gradient quantization: each row's (gradient, hessian) pair becomes two integers packed in
//! one `i64`, so a histogram update is a single integer add instead of two float adds.
//!
//! LightGBM 4's quantized training does the same with a handful of levels and 16/32-bit
//! accumulators. Here the number of levels is as large as the row count allows without
//! overflow: with `m` rows in a tree, gradients get `⌊(2³¹−1)/m⌋` levels on each side of zero
//! and hessians `⌊(2³²−1)/m⌋`, so any sum over at most `m` rows fits its 32-bit half exactly
//! (about 21,000 gradient levels at 100,000 rows, 2,100 at a million). With that many levels
//! each value is rounded to the nearest one: LightGBM needs stochastic rounding because its
//! 4 levels would bias every sum, but here a row's error is at most 1/4,000 of the largest
//! gradient, the model no longer depends on the seed through the rounding, and it is the same
//! model as exact float histograms would give unless two candidate splits tie within that
//! error (measured: stochastic rounding moved test AUC by ±0.002 from seed to seed).
//! Integer sums are exact and order-free, so histograms are bit-identical however rows are
//! split among tasks. The split search works on these sums; leaf values are computed from the
//! exact float gradients afterwards (`grow.rs`).

use rayon::prelude::*;

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
/// The library reads sums through [`Scales::decode`]; this is the definition it is tested by.
#[cfg(test)]
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
    /// Dequantize a packed sum into float (gradient, hessian) sums. The gradient half of a
    /// valid sum fits `i32` and the hessian half `u32`, so they are converted as such: the same
    /// floats as through `i64`, and conversions every vector width has (the split search is
    /// widened).
    #[inline(always)]
    pub fn decode(&self, v: Packed) -> (f64, f64) {
        ((v >> 32) as i32 as f64 * self.g, v as u32 as f64 * self.h)
    }
}

/// Quantize the rows of `gh` listed in `rows` (ascending; every row when `None`) into the same
/// positions of `out` (one entry per row of `gh`; unlisted entries are left as they were), for
/// trees over at most `m` rows. Negative hessians (a custom objective's) are treated as zero.
/// Returns the scales.
pub fn quantize(gh: &[[f32; 2]], rows: Option<&[u32]>, m: usize, out: &mut [Packed]) -> Scales {
    assert_eq!(gh.len(), out.len(), "one packed value per row");
    assert!(m <= i32::MAX as usize, "at most 2³¹−1 rows per tree (checked when a fit starts)");
    let m = m.max(1) as u64;
    let g_levels = (i32::MAX as u64 / m) as f64;
    let h_levels = (u32::MAX as u64 / m) as f64;
    if let Some(rows) = rows {
        return quantize_rows(gh, rows, out, g_levels, h_levels);
    }
    let (gmax, hmax) = gh
        .par_chunks(CHUNK)
        .map(|c| c.iter().fold((0f32, 0f32), |(a, b), v| (a.max(v[0].abs()), b.max(v[1]))))
        .reduce(|| (0.0, 0.0), |x, y| (x.0.max(y.0), x.1.max(y.1)));
    let (scales, q) = scales(gmax, hmax, g_levels, h_levels);
    out.par_chunks_mut(CHUNK).zip(gh.par_chunks(CHUNK)).for_each(|(o, src)| {
        for (d, v) in o.iter_mut().zip(src) {
            *d = q(v);
        }
    });
    scales
}

/// [`quantize`] over a row list: the maximum over the listed rows only, and each chunk of the
/// list writes the stretch of `out` between its first row and the next chunk's.
fn quantize_rows(gh: &[[f32; 2]], rows: &[u32], out: &mut [Packed], g_levels: f64, h_levels: f64) -> Scales {
    let (gmax, hmax) = rows
        .par_chunks(CHUNK)
        .map(|c| c.iter().fold((0f32, 0f32), |(a, b), &r| (a.max(gh[r as usize][0].abs()), b.max(gh[r as usize][1]))))
        .reduce(|| (0.0, 0.0), |x, y| (x.0.max(y.0), x.1.max(y.1)));
    let (scales, q) = scales(gmax, hmax, g_levels, h_levels);
    let mut stretches = Vec::with_capacity(rows.len().div_ceil(CHUNK));
    let (mut rest, mut at) = (out, 0usize);
    for (k, c) in rows.chunks(CHUNK).enumerate() {
        let end = rows.get((k + 1) * CHUNK).map_or(at + rest.len(), |&r| r as usize);
        let (mine, tail) = std::mem::take(&mut rest).split_at_mut(end - at);
        stretches.push((c, mine, at));
        rest = tail;
        at = end;
    }
    stretches.into_par_iter().for_each(|(c, o, first)| {
        for &r in c {
            o[r as usize - first] = q(&gh[r as usize]);
        }
    });
    scales
}

/// Scales for the given maxima, and the rounding of one row to the nearest levels.
fn scales(gmax: f32, hmax: f32, g_levels: f64, h_levels: f64) -> (Scales, impl Fn(&[f32; 2]) -> Packed + Sync) {
    // An all-zero gradient (or hessian) column quantizes to 0 under any positive scale.
    let (gmax, hmax) = (if gmax > 0.0 { gmax as f64 } else { 1.0 }, if hmax > 0.0 { hmax as f64 } else { 1.0 });
    let (gi, hi) = (g_levels / gmax, h_levels / hmax);
    let (gl, hl) = (g_levels as i64, h_levels as i64);
    let q = move |v: &[f32; 2]| {
        let g = floor(v[0] as f64 * gi + 0.5).clamp(-gl, gl);
        let h = floor(v[1].max(0.0) as f64 * hi + 0.5).clamp(0, hl);
        pack(g, h)
    };
    (Scales { g: gmax / g_levels, h: hmax / h_levels }, q)
}

/// `x.floor() as i64` without a libm call (the baseline x86-64 target has no rounding
/// instruction, so `f64::floor` is a function call per row): truncate, then step down for
/// negative non-integers. NaN gives 0, as the cast does.
#[inline(always)]
fn floor(x: f64) -> i64 {
    let t = x as i64;
    t - i64::from(x < t as f64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn floor_matches_std() {
        for x in [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.999, -2.999, 1e9 + 0.5, -1e9 - 0.5, -3.0, 7.0] {
            assert_eq!(super::floor(x), x.floor() as i64, "{x}");
        }
        assert_eq!(super::floor(f64::NAN), 0);
    }

    use super::*;

    #[test]
    fn packed_sums_unpack_exactly_and_subtract() {
        let rows: Vec<(i64, i64)> = vec![(-5, 3), (7, 0), (-2_000_000, 4_000_000), (1, 1), (0, 9)];
        let total: Packed = rows.iter().map(|&(g, h)| pack(g, h)).sum();
        let (g, h) = rows.iter().fold((0, 0), |a, r| (a.0 + r.0, a.1 + r.1));
        assert_eq!(unpack(total), (g, h));
        let part = pack(-5, 3) + pack(1, 1);
        assert_eq!(unpack(total - part), (g + 4, h - 4));
        // `decode` gives the floats of the unpacked integers, at the extremes of both halves.
        let sc = Scales { g: 0.37, h: 1.0 / 3.0 };
        for (g, h) in [(g, h), (-5, 3), (i32::MIN as i64, u32::MAX as i64), (i32::MAX as i64, 0), (-1, 1)] {
            let v = pack(g, h);
            assert_eq!(unpack(v), (g, h));
            assert_eq!(sc.decode(v), (g as f64 * sc.g, h as f64 * sc.h), "{g} {h}");
        }
    }

    #[test]
    fn rounding_is_nearest_bounded_and_covers_listed_rows_only() {
        let n = 20_000;
        let gh: Vec<[f32; 2]> =
            (0..n).map(|r| [((r * 37 % 1001) as f32 - 500.0) / 500.0, ((r * 11 % 97) as f32 + 1.0) / 400.0]).collect();
        let mut a = vec![0; n];
        let s = quantize(&gh, None, n, &mut a);
        for (v, x) in a.iter().zip(&gh) {
            let (gq, hq) = s.decode(*v);
            // Nearest level: within half a step of the value.
            assert!((gq - x[0] as f64).abs() <= s.g * 0.500001 && (hq - x[1] as f64).abs() <= s.h * 0.500001);
        }
        let total: Packed = a.iter().sum();
        let (g, h) = s.decode(total);
        let (eg, eh) = gh.iter().fold((0.0, 0.0), |acc, v| (acc.0 + v[0] as f64, acc.1 + v[1] as f64));
        assert!((g - eg).abs() <= 0.5 * n as f64 * s.g && (h - eh).abs() <= 0.5 * n as f64 * s.h);
        // The largest magnitudes sit exactly on the outermost level, never past it.
        let (gmax, _) = unpack(*a.iter().max_by_key(|v| unpack(**v).0).unwrap());
        assert_eq!(gmax, i32::MAX as i64 / n as i64);
        // A row list: only its rows are written, with scales from its rows' maxima, and each
        // listed row gets the same integers as a full pass with those scales would give.
        let rows: Vec<u32> = (0..n as u32).filter(|r| r % 3 != 0 && *r < 15_000).collect();
        let mut b = vec![-1; n];
        let sb = quantize(&gh, Some(&rows), rows.len(), &mut b);
        let sub: Vec<[f32; 2]> = rows.iter().map(|&r| gh[r as usize]).collect();
        let mut c = vec![0; sub.len()];
        assert_eq!(quantize(&sub, None, rows.len(), &mut c), sb);
        for (k, &r) in rows.iter().enumerate() {
            assert_eq!(b[r as usize], c[k]);
        }
        assert!((0..n as u32).filter(|r| rows.binary_search(r).is_err()).all(|r| b[r as usize] == -1));
    }

    #[test]
    fn all_zero_gradients_quantize_to_zero() {
        let gh = vec![[0.0f32, 0.0]; 10];
        let mut q = vec![1; 10];
        quantize(&gh, None, 10, &mut q);
        assert!(q.iter().all(|&v| v == 0));
    }
}

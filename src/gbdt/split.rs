//! Best split of a leaf from its histogram.
//!
//! For each allowed feature the bins are scanned once left to right; at each threshold both
//! placements of the NaN bin are scored (missing → left, missing → right), which is how the
//! default direction is learned. Gains use the regularised Newton score
//! `T(G)² / (H + λ2)` with `T` the L1 soft threshold, exactly as LightGBM and XGBoost do,
//! on the quantized sums of `quantize.rs` (cumulated as integers, so left + right = parent
//! exactly, then scaled to floats).
//! Row counts inside the scan are estimated from hessians (LightGBM's approximation, exact for
//! L2); the children's real counts are known after partitioning. Ties keep the first candidate
//! (lowest feature, lowest bin, NaN right before NaN left), so the result is deterministic.

use crate::gbdt::binning::BinnedMatrix;
use crate::gbdt::histogram::Bin;
use crate::gbdt::quantize::{Packed, Scales};

/// Regularisation and size limits used by the split search.
#[derive(Clone, Copy, Debug)]
pub struct SplitParams {
    /// L1 penalty on leaf values.
    pub lambda_l1: f64,
    /// L2 penalty on leaf values.
    pub lambda_l2: f64,
    /// Minimum rows per child.
    pub min_data: usize,
    /// Minimum hessian per child.
    pub min_hess: f64,
    /// Minimum gain to accept a split.
    pub min_gain: f64,
}

/// A chosen split with the left child's sums.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitInfo {
    /// Gain over not splitting.
    pub gain: f64,
    /// Used-feature index (see [`BinnedMatrix::used`]).
    pub feature: usize,
    /// Rows with bin ≤ `bin` go left (NaN bin aside).
    pub bin: usize,
    /// Where NaN goes.
    pub default_left: bool,
    /// Left child's quantized (gradient, hessian) sums, packed.
    pub left: Packed,
}

fn threshold_l1(g: f64, l1: f64) -> f64 {
    if l1 == 0.0 { g } else { g.signum() * (g.abs() - l1).max(0.0) }
}

/// Regularised score of a node with sums `(g, h)`.
#[inline]
pub fn leaf_score(g: f64, h: f64, p: &SplitParams) -> f64 {
    let t = threshold_l1(g, p.lambda_l1);
    t * t / (h + p.lambda_l2)
}

/// Newton leaf value `−T(G)/(H + λ2)` (before shrinkage).
pub fn leaf_value(g: f64, h: f64, p: &SplitParams) -> f64 {
    let d = h + p.lambda_l2;
    if d <= 0.0 { 0.0 } else { -threshold_l1(g, p.lambda_l1) / d }
}

/// Best split of a leaf with `count` rows and packed sums `total` over `features` (sorted
/// used-feature indices). `hist` holds the bins of a contiguous feature range starting at
/// histogram offset `base` (the whole histogram when `base` is 0), so feature blocks can be
/// searched in parallel and their winners combined with [`better`] in block order.
#[allow(clippy::too_many_arguments)]
pub fn best_split(
    hist: &[Bin],
    base: usize,
    bins: &BinnedMatrix,
    features: &[usize],
    total: Packed,
    count: usize,
    scales: Scales,
    p: &SplitParams,
) -> Option<SplitInfo> {
    let (sum_g, sum_h) = scales.decode(total);
    let min_data = p.min_data.max(1) as f64;
    if (count as f64) < 2.0 * min_data || sum_h < 2.0 * p.min_hess || sum_h <= 0.0 {
        return None;
    }
    // `round(h · count/sum_h) ≥ min_data` rewritten as a hessian bound: no rounding in the loop.
    let cnt_factor = count as f64 / sum_h;
    let min_h = p.min_hess.max((min_data - 0.5) / cnt_factor);
    let parent = leaf_score(sum_g, sum_h, p);
    let (l1, l2) = (p.lambda_l1, p.lambda_l2);
    // Both children have a hessian of at least `min_h > 0`, so the denominators are positive
    // and `a/b + c/d > best` can be tested as `a·d + c·b > best·b·d`: four multiplications
    // instead of two divisions per candidate; the divisions run only for a new best.
    let wins = |lg: f64, lh: f64, rg: f64, rh: f64, best: f64| -> Option<f64> {
        let (tl, tr) = (threshold_l1(lg, l1), threshold_l1(rg, l1));
        let (a, b, c, d) = (tl * tl, lh + l2, tr * tr, rh + l2);
        (a * d + c * b > best * (b * d)).then(|| a / b + c / d)
    };
    // The hessian halves are integer step counts, and `k·scale ≥ min_h` is monotone in k: the
    // bound as a step count tests each side without decoding, the same verdict bit for bit.
    let min_q = min_steps(min_h, scales.h);
    let total_q = crate::gbdt::quantize::unpack(total).1;
    let steps = |v: Packed| v & 0xFFFF_FFFF;
    let mut best: Option<SplitInfo> = None;
    let mut best_gain = parent + p.min_gain;
    for &j in features {
        let f = bins.used[j];
        let nv = bins.mappers[f].n_value_bins();
        let h = &hist[bins.offsets[j] - base..bins.offsets[j + 1] - base];
        let nan = h[nv];
        let mut cum: Packed = 0;
        // Branchy on purpose: skipping empty bins and stopping once the right side is too
        // small beat a branch-free, vectorised two-pass scan when measured on 100k × 50.
        for (t, &e) in h[..nv].iter().enumerate() {
            if e == 0 && t > 0 {
                continue; // nothing added: same sums as the previous threshold
            }
            cum += e;
            let lq = steps(cum);
            if total_q - lq < min_q {
                break; // the right side only shrinks from here on
            }
            if lq >= min_q {
                let (lg, lh) = scales.decode(cum);
                let (rg, rh) = scales.decode(total - cum);
                if let Some(gain) = wins(lg, lh, rg, rh, best_gain) {
                    best_gain = gain;
                    best = Some(SplitInfo { gain, feature: j, bin: t, default_left: false, left: cum });
                }
            }
            if nan != 0 {
                let with_nan = cum + nan;
                let lq2 = steps(with_nan);
                if lq2 >= min_q && total_q - lq2 >= min_q {
                    let (lg2, lh2) = scales.decode(with_nan);
                    let (rg2, rh2) = scales.decode(total - with_nan);
                    if let Some(gain) = wins(lg2, lh2, rg2, rh2, best_gain) {
                        best_gain = gain;
                        best = Some(SplitInfo { gain, feature: j, bin: t, default_left: true, left: with_nan });
                    }
                }
            }
        }
    }
    best.map(|mut b| {
        b.gain -= parent;
        b
    })
}

/// The fewest hessian steps of size `scale` whose value reaches `min_h` (`k·scale ≥ min_h`,
/// evaluated in f64 exactly as a decoded sum is compared).
fn min_steps(min_h: f64, scale: f64) -> i64 {
    let reaches = |k: i64| k as f64 * scale >= min_h;
    let mut k = (min_h / scale).ceil().clamp(0.0, i64::MAX as f64 / 2.0) as i64;
    while k > 0 && reaches(k - 1) {
        k -= 1;
    }
    while !reaches(k) {
        k += 1;
    }
    k
}

/// Combine block winners in block order: a later block wins only with a strictly larger gain,
/// which reproduces a single scan over all features.
pub fn better(a: Option<SplitInfo>, b: Option<SplitInfo>) -> Option<SplitInfo> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.gain > x.gain { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gbdt::{histogram, quantize};
    use ndarray::Array2;

    /// Quantized rows, their scales and the full histogram of all rows.
    fn quantized_hist(bins: &BinnedMatrix, gh: &[[f32; 2]]) -> (Vec<Packed>, Scales, Vec<Bin>) {
        let mut q = vec![0; gh.len()];
        let sc = quantize::quantize(gh, None, gh.len(), &mut q);
        let mut hist = vec![0; bins.total_bins()];
        histogram::build(bins, None, &q, &mut hist);
        (q, sc, hist)
    }

    /// On small data, the histogram scan must find the same split as trying every (feature, bin,
    /// NaN side) by summing rows directly.
    #[test]
    fn min_steps_is_the_first_step_count_whose_value_reaches_the_bound() {
        let mut rng = crate::rng::Rng::new(9);
        for _ in 0..2000 {
            let scale = 10f64.powf(rng.next_f64() * 8.0 - 6.0);
            let min_h = 10f64.powf(rng.next_f64() * 6.0 - 3.0);
            let k = min_steps(min_h, scale);
            assert!(k as f64 * scale >= min_h, "{scale} {min_h} {k}");
            assert!(k == 0 || ((k - 1) as f64 * scale) < min_h, "{scale} {min_h} {k}");
        }
        // Exactly on a step.
        assert_eq!(min_steps(0.5, 0.25), 2);
    }

    #[test]
    fn equals_brute_force_search_over_the_same_bins() {
        let n = 300;
        let x = Array2::from_shape_fn((n, 4), |(r, c)| {
            let v = ((r * 31 + c * 17) % 23) as f32;
            if (r + c) % 11 == 0 { f32::NAN } else { v }
        });
        let bins = BinnedMatrix::fit(x.view(), 255, 10_000);
        let gh: Vec<[f32; 2]> =
            (0..n).map(|r| [(((r * 7) % 13) as f32 - 6.0) / 3.0, 0.5 + ((r % 4) as f32) / 4.0]).collect();
        let p = SplitParams { lambda_l1: 0.1, lambda_l2: 1.0, min_data: 5, min_hess: 1e-3, min_gain: 0.0 };
        let (q, sc, hist) = quantized_hist(&bins, &gh);
        let gh: Vec<(f64, f64)> = q.iter().map(|&v| sc.decode(v)).collect();
        let (sg, sh) = gh.iter().fold((0.0, 0.0), |a, g| (a.0 + g.0, a.1 + g.1));
        let feats: Vec<usize> = (0..bins.n_used()).collect();
        let got = best_split(&hist, 0, &bins, &feats, q.iter().sum(), n, sc, &p).unwrap();

        let mut best = (f64::NEG_INFINITY, 0, 0, false);
        for j in 0..bins.n_used() {
            let nv = bins.mappers[bins.used[j]].n_value_bins();
            for t in 0..nv {
                for dl in [false, true] {
                    let (mut lg, mut lh, mut lc) = (0.0, 0.0, 0usize);
                    for r in 0..n {
                        let b = bins.get(r, j);
                        let left = if b == nv { dl } else { b <= t };
                        if left {
                            lg += gh[r].0;
                            lh += gh[r].1;
                            lc += 1;
                        }
                    }
                    if lc < 5 || n - lc < 5 {
                        continue;
                    }
                    let gain = leaf_score(lg, lh, &p) + leaf_score(sg - lg, sh - lh, &p) - leaf_score(sg, sh, &p);
                    if gain > best.0 + 1e-9 {
                        best = (gain, j, t, dl);
                    }
                }
            }
        }
        assert!((got.gain - best.0).abs() < 1e-9, "{got:?} vs {best:?}");
        assert_eq!((got.feature, got.bin), (best.1, best.2));
    }

    #[test]
    fn nan_rows_pick_their_side() {
        // Feature: NaN rows all have strongly negative gradients, the rest split on value.
        let n = 200;
        let x = Array2::from_shape_fn((n, 1), |(r, _)| if r < 50 { f32::NAN } else { r as f32 });
        let bins = BinnedMatrix::fit(x.view(), 255, 10_000);
        let gh: Vec<[f32; 2]> = (0..n).map(|r| [if !(50..150).contains(&r) { -1.0 } else { 1.0 }, 1.0]).collect();
        let p = SplitParams { lambda_l1: 0.0, lambda_l2: 0.0, min_data: 1, min_hess: 0.0, min_gain: 0.0 };
        let (q, sc, hist) = quantized_hist(&bins, &gh);
        let s = best_split(&hist, 0, &bins, &[0], q.iter().sum(), n, sc, &p).unwrap();
        // Values 50..150 go left (gradient +1), NaN joins the ≥150 side (gradient −1): right.
        assert!(!s.default_left);
        assert_eq!(bins.mappers[0].bounds[s.bin], 149.5);
    }
}

//! Small f32 loops shared by the fused network ops (`attention.rs`, `fused.rs`), written so
//! the compiler vectorises them: reductions keep eight partial sums in a fixed order (so a
//! result never depends on the thread that computed it) and the exponential is a branch-free
//! polynomial instead of a libm call per element.

/// Lanes of the partial sums.
const LANES: usize = 8;

/// Add the eight partial sums in a fixed tree order.
#[inline(always)]
fn fold(acc: [f32; LANES]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `Σ aᵢ·bᵢ` over the shorter of the two slices.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (ca, cb) = (a[..n].chunks_exact(LANES), b[..n].chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    let mut acc = [0f32; LANES];
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    fold(acc) + tail
}

/// `out[c] = dot(x, m[c·n..(c + 1)·n])` for every `c < out.len()` (`n = x.len()`, `m`
/// holding the columns one after another): four columns per pass over `x`, their partial
/// sums in registers — the same bits as [`dot`] per column.
#[inline(always)]
pub fn dots(x: &[f32], m: &[f32], out: &mut [f32]) {
    let n = x.len();
    let full = n / LANES * LANES;
    for (g, og) in out.chunks_mut(4).enumerate() {
        let c0 = g * 4;
        if og.len() < 4 {
            for (k, o) in og.iter_mut().enumerate() {
                *o = dot(x, &m[(c0 + k) * n..(c0 + k + 1) * n]);
            }
            continue;
        }
        let mut acc = [[0f32; LANES]; 4];
        for j0 in (0..full).step_by(LANES) {
            let xv: &[f32; LANES] = x[j0..j0 + LANES].try_into().expect("a full block");
            for (k, a) in acc.iter_mut().enumerate() {
                let o = (c0 + k) * n + j0;
                let mv: &[f32; LANES] = m[o..o + LANES].try_into().expect("a full block");
                for l in 0..LANES {
                    a[l] += xv[l] * mv[l];
                }
            }
        }
        for (k, o) in og.iter_mut().enumerate() {
            let col = &m[(c0 + k) * n..(c0 + k + 1) * n];
            let tail: f32 = x[full..].iter().zip(&col[full..]).map(|(a, b)| a * b).sum();
            *o = fold(acc[k]) + tail;
        }
    }
}

/// `Σ aᵢ`.
#[inline(always)]
pub fn sum(a: &[f32]) -> f32 {
    let c = a.chunks_exact(LANES);
    let tail: f32 = c.remainder().iter().sum();
    let mut acc = [0f32; LANES];
    for x in c {
        for l in 0..LANES {
            acc[l] += x[l];
        }
    }
    fold(acc) + tail
}

/// The largest element (−∞ for an empty slice; NaN elements are skipped — a NaN row still
/// comes out NaN from a softmax, through its exponentials).
#[inline(always)]
pub fn max(a: &[f32]) -> f32 {
    let c = a.chunks_exact(LANES);
    let mut m = [f32::NEG_INFINITY; LANES];
    for &x in c.remainder() {
        m[0] = if x > m[0] { x } else { m[0] };
    }
    // Eight independent running maxima: one serial chain would cost a compare's latency per
    // element.
    for x in c {
        for l in 0..LANES {
            m[l] = if x[l] > m[l] { x[l] } else { m[l] };
        }
    }
    let pair = |a: f32, b: f32| if a > b { a } else { b };
    pair(pair(pair(m[0], m[4]), pair(m[1], m[5])), pair(pair(m[2], m[6]), pair(m[3], m[7])))
}

/// `y += a·x`.
#[inline(always)]
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `eˣ` to within 2 ulp over the whole f32 range (Cephes' `expf` polynomial after reducing
/// by powers of two); underflows to the smallest normal's neighbourhood below −87.3,
/// saturates above 88.7, and keeps NaN.
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' coefficients, as published
pub fn exp_approx(x: f32) -> f32 {
    const LO: f32 = -87.336_55;
    const HI: f32 = 88.722_83;
    // `clamp` keeps NaN, so NaN passes through to the result.
    let xc = x.clamp(LO, HI);
    // Round x·log₂e to the nearest integer with the 1.5·2²³ trick (no rounding instruction
    // needed, so this vectorises on plain SSE2).
    let t = xc * std::f32::consts::LOG2_E + 12_582_912.0;
    let n = t - 12_582_912.0;
    let r = xc - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let y = p * r * r + r + 1.0;
    // `t`'s low mantissa bits hold n itself: 2ⁿ without a (per-lane, saturating) float cast.
    let n_int = t.to_bits().wrapping_sub(0x4B40_0000);
    let scale = f32::from_bits(n_int.wrapping_add(127) << 23);
    let out = y * scale;
    if x > HI { f32::INFINITY } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::wide;
    #[cfg(target_arch = "x86_64")]
    use crate::simd::{has_avx512, run_avx2, run_avx512};

    #[test]
    fn exp_is_within_a_few_ulp_of_libm_and_keeps_special_values() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp_approx(x) as f64, (x as f64).exp());
            worst = worst.max(((a - b) / b).abs());
            x += 0.0137;
        }
        assert!(worst < 3.0 * f32::EPSILON as f64, "worst relative error {worst}");
        assert_eq!(exp_approx(0.0), 1.0);
        assert!(exp_approx(f32::NAN).is_nan());
        assert_eq!(exp_approx(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_approx(100.0), f32::INFINITY);
        assert!(exp_approx(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn dots_are_dot_per_column_bit_for_bit() {
        for (n, cols) in [(42, 4), (48, 8), (5, 3), (17, 6), (0, 4)] {
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let m: Vec<f32> = (0..n * cols).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut out = vec![f32::NAN; cols];
            dots(&x, &m, &mut out);
            for (c, o) in out.iter().enumerate() {
                assert_eq!(o.to_bits(), dot(&x, &m[c * n..(c + 1) * n]).to_bits(), "{n} {cols} {c}");
            }
        }
    }

    #[test]
    fn reductions_match_plain_sums() {
        let a: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..37).map(|i| (i as f32 * 0.11).cos()).collect();
        let d: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((dot(&a, &b) as f64 - d).abs() < 1e-5);
        assert!((sum(&a) as f64 - a.iter().map(|&x| x as f64).sum::<f64>()).abs() < 1e-5);
        let mut y = b.clone();
        axpy(2.0, &a, &mut y);
        assert!(y.iter().zip(&a).zip(&b).all(|((y, a), b)| *y == b + 2.0 * a));
        assert_eq!(dot(&[], &[]), 0.0);
        assert_eq!(max(&a), a.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        assert_eq!(max(&[f32::NAN, 2.0, 1.0]), 2.0);
    }

    /// The loops of the fused ops, element-wise and reduced, as one bit pattern per output.
    #[inline(always)]
    fn kernel_bits(a: &[f32], b: &[f32]) -> Vec<u32> {
        let mut y = b.to_vec();
        axpy(0.37, a, &mut y);
        let mut out: Vec<u32> = y.iter().map(|&v| exp_approx(v * 3.0).to_bits()).collect();
        let cols = 3;
        let n = a.len() / cols;
        let mut d = vec![0f32; cols];
        dots(&a[..n], &b[..n * cols], &mut d);
        out.extend(d.iter().map(|v| v.to_bits()));
        out.extend([dot(a, b), sum(a), max(b)].map(f32::to_bits));
        out
    }

    /// The copies only differ once optimised: `cargo test --release --lib nn::kernels` compares
    /// the widened loops (the test profile leaves this crate unoptimised).
    #[test]
    fn every_compiled_copy_gives_the_plain_bits() {
        let a: Vec<f32> = (0..1001).map(|i| (i as f32 * 0.37).sin() * 9.0).collect();
        let b: Vec<f32> = (0..1001).map(|i| (i as f32 * 0.11).cos() * 7.0 - 1.0).collect();
        let plain = kernel_bits(&a, &b);
        assert_eq!(wide(|| kernel_bits(&a, &b)), plain);
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                assert_eq!(unsafe { run_avx2(|| kernel_bits(&a, &b)) }, plain);
            } else {
                eprintln!("no AVX2 on this CPU: its copy is not compared");
            }
            if has_avx512() {
                // SAFETY: the CPU has these AVX-512 subsets.
                assert_eq!(unsafe { run_avx512(|| kernel_bits(&a, &b)) }, plain);
            } else {
                eprintln!("no AVX-512 on this CPU: its copy is not compared");
            }
        }
    }
}

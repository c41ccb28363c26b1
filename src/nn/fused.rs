//! Fused element-wise layers on CPU, each one candle custom op with its own backward: inverted
//! dropout, bias + GELU, training-mode BatchNorm, and BatchNorm
//! of a residual sum with the branch's dropout.
//!
//! candle 0.11 builds these from several ops each (GELU's backward alone is nine, BatchNorm's
//! about twenty), every op one more pass over a multi-megabyte activation and one more fresh
//! buffer, and the dropout mask came from a serial generator: for PatchTST those passes were
//! most of a training step. Here each layer is one parallel pass forward and one or two
//! backward, in the caller's rayon pool. Column sums (bias and BatchNorm gradients, batch
//! statistics) are taken over fixed 256-row chunks and the chunks added in order, so every
//! result is bit-identical whatever the thread count. Dropout masks are a hash of
//! (seed, element index): no mask is stored, and backward recomputes it.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::nn::kernels::exp_approx;
use crate::rng::mix;
use crate::simd::wide;

/// Elements per parallel task in element-wise loops.
const CHUNK: usize = 1 << 14;

/// Rows per partial sum in column reductions (fixed: the result must not depend on threads).
const ROWS: usize = 256;

/// Whether the fused ops can run on `x` (f32 on CPU).
pub fn available(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// The contiguous f32 data of an operand.
pub(crate) fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(d) = s else { candle_core::bail!("fused op: {what} must be f32") };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&d[a..b]),
        None => candle_core::bail!("fused op: {what} must be contiguous"),
    }
}

/// Inverted dropout of `x` with drop probability `p`; the mask is a function of `seed` and
/// the element index, so the same seed drops the same elements.
pub fn dropout(x: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Dropout(Mask::new(p, seed)))
}

/// An inverted-dropout mask over the elements of a tensor in row-major order: element `i` is
/// dropped when its 16 bits of a hash of (seed, ⌊i/4⌋) fall below `⌈p·2¹⁶⌉`, else scaled by
/// `1 / (1 − p)`. A function of the index, so any op can apply it to any slice of a tensor
/// and its backward can recompute it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mask {
    seed: u64,
    /// An element is dropped when its 16-bit hash is below this.
    threshold: u32,
    /// Scale of kept elements.
    keep: f32,
}

impl Mask {
    /// The mask of drop probability `p` for `seed`.
    pub(crate) fn new(p: f64, seed: u64) -> Self {
        Mask { seed: mix(seed ^ 0xD0D0_D0D0), threshold: (p * 65536.0).ceil() as u32, keep: (1.0 / (1.0 - p)) as f32 }
    }

    /// Multiply `v`, elements `start..start + v.len()` of the masked tensor, by the mask.
    #[inline(always)]
    pub(crate) fn apply(&self, start: usize, v: &mut [f32]) {
        // Element by element to the first hash boundary (an index that is a multiple of 4),
        // then sixteen elements (four hashes) at a time, then the rest element by element.
        let head = ((4 - start % 4) % 4).min(v.len());
        let (first, rest) = v.split_at_mut(head);
        self.apply_each(start, first);
        let blocks = rest.len() / 16 * 16;
        let (middle, last) = rest.split_at_mut(blocks);
        let q0 = (start + head) / 4;
        for (b, block) in middle.chunks_exact_mut(16).enumerate() {
            // The four hashes' bytes in little-endian order: element e's 16 bits are bytes
            // 2e and 2e + 1 — the same bits `apply_each` takes, laid out so the compare and
            // select run over the block as vectors.
            let mut bytes = [0u8; 32];
            for t in 0..4 {
                bytes[8 * t..8 * t + 8].copy_from_slice(&self.hash(q0 + 4 * b + t).to_le_bytes());
            }
            for (e, x) in block.iter_mut().enumerate() {
                let bits = u32::from(u16::from_le_bytes([bytes[2 * e], bytes[2 * e + 1]]));
                *x = if bits < self.threshold { 0.0 } else { *x * self.keep };
            }
        }
        self.apply_each(start + head + blocks, last);
    }

    /// The hash that decides elements `4q..4q + 4`.
    #[inline(always)]
    fn hash(&self, q: usize) -> u64 {
        mix(self.seed.wrapping_add((q as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
    }

    /// [`Self::apply`] one element at a time.
    #[inline(always)]
    fn apply_each(&self, start: usize, v: &mut [f32]) {
        // One 64-bit hash per four elements, 16 bits each: element i gets bits 16·(i mod 4)
        // of hash ⌊i/4⌋, wherever the slice starts.
        let mut i = 0;
        while i < v.len() {
            let idx = start + i;
            let h = self.hash(idx / 4);
            for lane in idx % 4..4 {
                let Some(x) = v.get_mut(i) else { break };
                let bits = ((h >> (16 * lane)) & 0xFFFF) as u32;
                *x = if bits < self.threshold { 0.0 } else { *x * self.keep };
                i += 1;
            }
        }
    }
}

/// See [`dropout`].
#[derive(Clone, Copy)]
struct Dropout(Mask);

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "retrain-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "dropout input")?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).enumerate().for_each(|(c, (o, x))| {
            o.copy_from_slice(x);
            wide(
                #[inline(always)]
                || self.0.apply(c * CHUNK, o),
            );
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(self)?))
    }
}

/// `erf(x)` to within about 1e-7 (the rational approximation of Eigen / XLA for f32, clamped
/// to ±4 where erf is ±1 in f32), branch-free so loops over it vectorise.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the published coefficients, as published
pub fn erf_approx(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_2e-10 + 2.770_681_4e-8;
    p = x2 * p - 2.101_024e-6;
    p = x2 * p - 5.692_506_4e-5;
    p = x2 * p - 7.349_906_3e-4;
    p = x2 * p - 2.954_6e-3;
    p = x2 * p - 1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 - 2.133_740_6e-4;
    q = x2 * q - 1.682_827e-3;
    q = x2 * q - 7.373_329_3e-3;
    q = x2 * q - 1.426_474e-2;
    x * p / q
}

/// `gelu(h + bias)` (the exact, erf form) over the last dimension of `h` (`[rows, cols]`).
pub fn bias_gelu(h: &Tensor, bias: &Tensor) -> Result<Tensor> {
    h.contiguous()?.apply_op2(&bias.contiguous()?, BiasGelu)
}

/// See [`bias_gelu`].
struct BiasGelu;

/// GELU and its derivative at `x`.
#[inline(always)]
pub(crate) fn gelu_and_slope(x: f32) -> (f32, f32) {
    let cdf = 0.5 * (1.0 + erf_approx(x * std::f32::consts::FRAC_1_SQRT_2));
    // φ(x) = e^(−x²/2) / √(2π)
    let pdf = exp_approx(-0.5 * x * x) * 0.398_942_3;
    (x * cdf, cdf + x * pdf)
}

fn rows_cols(l: &Layout, bias_len: usize, what: &str) -> Result<(usize, usize)> {
    let dims = l.dims();
    let cols = *dims.last().unwrap_or(&0);
    if cols != bias_len {
        candle_core::bail!("fused op: {what} has {cols} columns but the bias {bias_len}");
    }
    Ok((l.shape().elem_count() / cols.max(1), cols))
}

impl CustomOp2 for BiasGelu {
    fn name(&self) -> &'static str {
        "retrain-bias-gelu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (h, b) = (slice(s1, l1, "GELU input")?, slice(s2, l2, "GELU bias")?);
        let (_, cols) = rows_cols(l1, b.len(), "the GELU input")?;
        let mut out = vec![0f32; h.len()];
        if let Some(per) = CHUNK.checked_div(cols) {
            let per = per.max(1) * cols;
            out.par_chunks_mut(per).zip(h.par_chunks(per)).for_each(|(o, h)| {
                wide(
                    #[inline(always)]
                    || {
                        for (o, h) in o.chunks_exact_mut(cols).zip(h.chunks_exact(cols)) {
                            for ((o, &h), &b) in o.iter_mut().zip(h).zip(b) {
                                *o = gelu_and_slope(h + b).0;
                            }
                        }
                    },
                )
            });
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, h: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let rows = h.elem_count() / b.elem_count().max(1);
        let g = h.apply_op3_no_bwd(b, &grad.contiguous()?, &BiasGeluBwd)?;
        let dh = g.narrow(0, 0, rows)?.reshape(h.shape())?;
        Ok((Some(dh), Some(g.narrow(0, rows, 1)?.reshape(b.shape())?)))
    }
}

/// Backward of [`BiasGelu`]: output `[rows + 1, cols]`, the input's gradient then the bias's.
struct BiasGeluBwd;

impl CustomOp3 for BiasGeluBwd {
    fn name(&self) -> &'static str {
        "retrain-bias-gelu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (h, b, g) = (slice(s1, l1, "GELU input")?, slice(s2, l2, "GELU bias")?, slice(s3, l3, "GELU gradient")?);
        let (rows, cols) = rows_cols(l1, b.len(), "the GELU input")?;
        gradient_and_column_sums(
            "GELU",
            h,
            g,
            rows,
            cols,
            #[inline(always)]
            |h, c, g| g * gelu_and_slope(h + b[c]).1,
        )
    }
}

/// Backward of a ReLU layer with a bias: from its output `y` and the gradient `grad` (both
/// `[rows, cols]`), the gradient before the ReLU (`grad` where `y > 0`, else 0) and its column
/// sums (the bias's gradient), in one pass. No gradient of its own.
pub fn relu_backward(y: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor)> {
    let (rows, cols) = y.dims2()?;
    let g = y.contiguous()?.apply_op2_no_bwd(&grad.contiguous()?, &ReluBwd)?;
    Ok((g.narrow(0, 0, rows)?, g.narrow(0, rows, 1)?.reshape(cols)?))
}

/// See [`relu_backward`]: output `[rows + 1, cols]`, the masked gradient then its column sums.
struct ReluBwd;

impl CustomOp2 for ReluBwd {
    fn name(&self) -> &'static str {
        "retrain-relu-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, g) = (slice(s1, l1, "ReLU output")?, slice(s2, l2, "ReLU gradient")?);
        let (rows, cols) = l1.shape().dims2()?;
        gradient_and_column_sums(
            "ReLU",
            y,
            g,
            rows,
            cols,
            #[inline(always)]
            |y, _, g| if y > 0.0 { g } else { 0.0 },
        )
    }
}

/// `[rows + 1, cols]`: the element-wise gradient `f(x, column, g)` of a `[rows, cols]` layer
/// input `x` from its output gradient `g`, then that gradient's column sums (a bias's
/// gradient; partial sums over fixed row chunks added in order). `what` names the layer in
/// the error when `g` and `x` differ in length.
fn gradient_and_column_sums(
    what: &str,
    x: &[f32],
    g: &[f32],
    rows: usize,
    cols: usize,
    f: impl Fn(f32, usize, f32) -> f32 + Sync,
) -> Result<(CpuStorage, Shape)> {
    if g.len() != x.len() {
        candle_core::bail!("fused op: {what} gradient has {} elements, its layer {}", g.len(), x.len());
    }
    let mut out = vec![0f32; (rows + 1) * cols];
    if cols == 0 {
        return Ok((CpuStorage::F32(out), Shape::from((rows + 1, cols))));
    }
    let (dx, db) = out.split_at_mut(rows * cols);
    let partial: Vec<Vec<f32>> = dx
        .par_chunks_mut(ROWS * cols)
        .zip(x.par_chunks(ROWS * cols).zip(g.par_chunks(ROWS * cols)))
        .map(|(o, (x, g))| {
            let mut sums = vec![0f32; cols];
            wide(
                #[inline(always)]
                || {
                    for ((o, x), g) in o.chunks_exact_mut(cols).zip(x.chunks_exact(cols)).zip(g.chunks_exact(cols)) {
                        for (c, (((o, &x), &g), s)) in o.iter_mut().zip(x).zip(g).zip(sums.iter_mut()).enumerate() {
                            *o = f(x, c, g);
                            *s += *o;
                        }
                    }
                },
            );
            sums
        })
        .collect();
    add_in_order(&partial, db);
    Ok((CpuStorage::F32(out), Shape::from((rows + 1, cols))))
}

/// Column sums of `x` over every leading dimension (`[…, cols]` → `[cols]`), no gradient.
pub fn column_sum(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&ColumnSum)
}

/// See [`column_sum`].
struct ColumnSum;

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "retrain-column-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "column-sum input")?;
        let cols = *l.dims().last().unwrap_or(&1);
        if cols == 0 {
            return Ok((CpuStorage::F32(Vec::new()), Shape::from(0)));
        }
        let mut sums = vec![0f32; cols];
        column_sums_into(x, cols, &mut sums);
        Ok((CpuStorage::F32(sums), Shape::from(cols)))
    }
}

/// `dst[c] = Σ_k partial[k][c]`, chunks added in order (in f64).
fn add_in_order(partial: &[Vec<f32>], dst: &mut [f32]) {
    for (c, d) in dst.iter_mut().enumerate() {
        *d = partial.iter().map(|p| p[c] as f64).sum::<f64>() as f32;
    }
}

/// Training-mode BatchNorm over the rows of `x` (`[…, cols]`, statistics over every leading
/// dimension): `(x − mean) / √(var + eps) · weight + bias`. Returns the output with the batch
/// mean and biased variance per column (for the running averages).
pub fn batch_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    // The op keeps its own statistics for its backward pass; this call reads them back.
    let stats = Arc::new(Mutex::new(BnStats::default()));
    let op = BatchNorm { eps, stats: stats.clone() };
    let y = x.contiguous()?.apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)?;
    let s = stats.lock().expect("BatchNorm statistics lock");
    Ok((y, s.mean.clone(), s.var.clone()))
}

/// Training-mode BatchNorm of a residual sum, `batch_norm(x + dropout(a, p, seed))` (no
/// dropout for `None`), as one op: the sum is never a graph node, so neither it nor the
/// dropped branch gets its own buffer forward or its own zero-filled gradient buffer and
/// addition backward. Same mask as [`dropout`] with that seed; same results as the three ops
/// up to rounding.
pub fn residual_batch_norm(
    x: &Tensor,
    a: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    dropout: Option<(f64, u64)>,
) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    if x.shape() != a.shape() {
        candle_core::bail!("fused op: residual BatchNorm of {:?} and {:?}", x.shape(), a.shape());
    }
    let stats = Arc::new(Mutex::new(BnStats::default()));
    let op = ResidualBatchNorm { eps, mask: dropout.map(|(p, seed)| Mask::new(p, seed)), stats: stats.clone() };
    let wb = Tensor::cat(&[weight, bias], 0)?;
    let y = x.contiguous()?.apply_op3(&a.contiguous()?, &wb, op)?;
    let s = stats.lock().expect("BatchNorm statistics lock");
    Ok((y, s.mean.clone(), s.var.clone()))
}

/// What a BatchNorm forward pass leaves for its backward: the batch mean and biased variance
/// per column, and (for the residual op) the normalised input.
#[derive(Default)]
struct BnStats {
    mean: Vec<f32>,
    var: Vec<f32>,
    input: Arc<Vec<f32>>,
}

/// See [`batch_norm`].
struct BatchNorm {
    eps: f64,
    /// Set by the forward pass.
    stats: Arc<Mutex<BnStats>>,
}

/// Per-column sums over fixed row chunks of `f(row)` written into `k` accumulators per column.
pub(crate) fn column_sums<const K: usize>(
    x: &[f32],
    cols: usize,
    f: impl Fn(usize, &mut [[f64; K]]) + Sync,
) -> Vec<[f64; K]> {
    let rows = x.len() / cols;
    let chunks: Vec<Vec<[f64; K]>> = (0..rows.div_ceil(ROWS))
        .into_par_iter()
        .map(|c| {
            let mut acc = vec![[0f64; K]; cols];
            // Compiled for AVX2 or AVX-512 too (four or eight f64 sums per instruction, not
            // two); each column still adds its rows in order, so the bits are the same either
            // way.
            wide(
                #[inline(always)]
                || {
                    for r in c * ROWS..((c + 1) * ROWS).min(rows) {
                        f(r, &mut acc);
                    }
                },
            );
            acc
        })
        .collect();
    let mut total = vec![[0f64; K]; cols];
    for ch in &chunks {
        for (t, a) in total.iter_mut().zip(ch) {
            for k in 0..K {
                t[k] += a[k];
            }
        }
    }
    total
}

/// Column sums of `m` (`[rows, cols]`, in f64 over fixed row chunks added in order) into
/// `dst`.
pub(crate) fn column_sums_into(m: &[f32], cols: usize, dst: &mut [f32]) {
    let sums = column_sums::<1>(
        m,
        cols,
        #[inline(always)]
        |r, acc| {
            for (a, &v) in acc.iter_mut().zip(&m[r * cols..(r + 1) * cols]) {
                a[0] += v as f64;
            }
        },
    );
    for (b, s) in dst.iter_mut().zip(&sums) {
        *b = s[0] as f32;
    }
}

/// BatchNorm forward over `x` (`[rows, cols]`, rows > 0): (output, mean, biased variance).
fn bn_forward(x: &[f32], w: &[f32], b: &[f32], eps: f64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let cols = w.len();
    // Shifted sums (by the first row) keep the variance accurate when the mean is large.
    let shift = &x[..cols];
    let sums = column_sums::<2>(
        x,
        cols,
        #[inline(always)]
        |r, acc| {
            for ((a, &v), &s) in acc.iter_mut().zip(&x[r * cols..(r + 1) * cols]).zip(shift) {
                let d = (v - s) as f64;
                a[0] += d;
                a[1] += d * d;
            }
        },
    );
    let n = (x.len() / cols) as f64;
    let mean: Vec<f32> = sums.iter().zip(shift).map(|(a, &s)| (s as f64 + a[0] / n) as f32).collect();
    let var: Vec<f32> = sums.iter().map(|a| ((a[1] - a[0] * a[0] / n) / n).max(0.0) as f32).collect();
    let scale: Vec<f32> = var.iter().zip(w).map(|(&v, &w)| w / ((v as f64 + eps).sqrt() as f32)).collect();
    let mut out = vec![0f32; x.len()];
    let per = (CHUNK / cols).max(1) * cols;
    out.par_chunks_mut(per).zip(x.par_chunks(per)).for_each(|(o, x)| {
        for (o, x) in o.chunks_exact_mut(cols).zip(x.chunks_exact(cols)) {
            for c in 0..cols {
                o[c] = (x[c] - mean[c]) * scale[c] + b[c];
            }
        }
    });
    (out, mean, var)
}

/// BatchNorm backward: from the forward's input `x` (`[rows, cols]`), weight, statistics and
/// the output gradient `g`, the input's gradient into `dx` and the weight's and bias's into
/// `tail` (`[2, cols]`).
#[allow(clippy::too_many_arguments)]
fn bn_backward(x: &[f32], w: &[f32], g: &[f32], mean: &[f32], var: &[f32], eps: f64, dx: &mut [f32], tail: &mut [f32]) {
    let cols = w.len();
    let rows = x.len() / cols;
    let inv: Vec<f32> = var.iter().map(|&v| 1.0 / ((v as f64 + eps).sqrt() as f32)).collect();
    // Σ g and Σ g·x̂ per column.
    let sums = column_sums::<2>(
        x,
        cols,
        #[inline(always)]
        |r, acc| {
            let (xr, gr) = (&x[r * cols..(r + 1) * cols], &g[r * cols..(r + 1) * cols]);
            for c in 0..cols {
                let xhat = (xr[c] - mean[c]) * inv[c];
                acc[c][0] += gr[c] as f64;
                acc[c][1] += (gr[c] * xhat) as f64;
            }
        },
    );
    let n = rows as f32;
    let sg: Vec<f32> = sums.iter().map(|a| a[0] as f32 / n).collect();
    let sgx: Vec<f32> = sums.iter().map(|a| a[1] as f32 / n).collect();
    let k: Vec<f32> = w.iter().zip(&inv).map(|(w, i)| w * i).collect();
    let per = (CHUNK / cols).max(1) * cols;
    dx.par_chunks_mut(per).zip(x.par_chunks(per).zip(g.par_chunks(per))).for_each(|(o, (x, g))| {
        for ((o, x), g) in o.chunks_exact_mut(cols).zip(x.chunks_exact(cols)).zip(g.chunks_exact(cols)) {
            for c in 0..cols {
                let xhat = (x[c] - mean[c]) * inv[c];
                // dx = w/σ · (g − mean(g) − x̂·mean(g·x̂))
                o[c] = k[c] * (g[c] - sg[c] - xhat * sgx[c]);
            }
        }
    });
    for c in 0..cols {
        tail[c] = sums[c][1] as f32;
        tail[cols + c] = sums[c][0] as f32;
    }
}

impl CustomOp3 for BatchNorm {
    fn name(&self) -> &'static str {
        "retrain-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) =
            (slice(s1, l1, "BatchNorm input")?, slice(s2, l2, "BatchNorm weight")?, slice(s3, l3, "BatchNorm bias")?);
        let (rows, cols) = rows_cols(l1, w.len(), "the BatchNorm input")?;
        if b.len() != cols || rows == 0 {
            candle_core::bail!("fused op: BatchNorm needs rows and a bias of {cols}");
        }
        let (out, mean, var) = bn_forward(x, w, b, self.eps);
        let mut s = self.stats.lock().expect("BatchNorm statistics lock");
        (s.mean, s.var) = (mean, var);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let cols = w.elem_count();
        let rows = x.elem_count() / cols.max(1);
        let s = self.stats.lock().expect("BatchNorm statistics lock");
        let op = BatchNormBwd { eps: self.eps, mean: s.mean.clone(), var: s.var.clone() };
        drop(s);
        let g = x.apply_op3_no_bwd(w, &grad.contiguous()?, &op)?;
        let dx = g.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dw = g.narrow(0, rows, 1)?.reshape(w.shape())?;
        let db = g.narrow(0, rows + 1, 1)?.reshape(w.shape())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Backward of [`BatchNorm`] with the forward's statistics: output `[rows + 2, cols]`, the
/// input's gradient, then the weight's and the bias's.
struct BatchNormBwd {
    eps: f64,
    mean: Vec<f32>,
    var: Vec<f32>,
}

impl CustomOp3 for BatchNormBwd {
    fn name(&self) -> &'static str {
        "retrain-batch-norm-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, g) = (
            slice(s1, l1, "BatchNorm input")?,
            slice(s2, l2, "BatchNorm weight")?,
            slice(s3, l3, "BatchNorm gradient")?,
        );
        let (rows, cols) = rows_cols(l1, w.len(), "the BatchNorm input")?;
        if g.len() != x.len() || self.mean.len() != cols {
            candle_core::bail!("fused op: BatchNorm gradient or statistics do not match the input");
        }
        let mut out = vec![0f32; (rows + 2) * cols];
        let (dx, tail) = out.split_at_mut(rows * cols);
        bn_backward(x, w, g, &self.mean, &self.var, self.eps, dx, tail);
        Ok((CpuStorage::F32(out), Shape::from((rows + 2, cols))))
    }
}

/// See [`residual_batch_norm`]: inputs `x`, `a` and `[weight | bias]`.
struct ResidualBatchNorm {
    eps: f64,
    mask: Option<Mask>,
    /// Set by the forward pass (with the sum `x + dropout(a)`, which backward needs).
    stats: Arc<Mutex<BnStats>>,
}

impl CustomOp3 for ResidualBatchNorm {
    fn name(&self) -> &'static str {
        "retrain-residual-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, a, wb) = (
            slice(s1, l1, "BatchNorm input")?,
            slice(s2, l2, "BatchNorm residual branch")?,
            slice(s3, l3, "BatchNorm weight and bias")?,
        );
        let (w, b) = wb.split_at(wb.len() / 2);
        let (rows, _) = rows_cols(l1, w.len(), "the BatchNorm input")?;
        if a.len() != x.len() || rows == 0 {
            candle_core::bail!("fused op: residual BatchNorm needs rows and two inputs of one shape");
        }
        let mut sum = vec![0f32; x.len()];
        sum.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK).zip(a.par_chunks(CHUNK))).enumerate().for_each(
            |(c, (s, (x, a)))| {
                s.copy_from_slice(a);
                wide(
                    #[inline(always)]
                    || {
                        if let Some(m) = &self.mask {
                            m.apply(c * CHUNK, s);
                        }
                        s.iter_mut().zip(x).for_each(|(s, x)| *s += x);
                    },
                );
            },
        );
        let (out, mean, var) = bn_forward(&sum, w, b, self.eps);
        *self.stats.lock().expect("BatchNorm statistics lock") = BnStats { mean, var, input: Arc::new(sum) };
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _a: &Tensor,
        wb: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let s = self.stats.lock().expect("BatchNorm statistics lock");
        let op = ResidualBatchNormBwd {
            eps: self.eps,
            mask: self.mask,
            mean: s.mean.clone(),
            var: s.var.clone(),
            sum: s.input.clone(),
        };
        drop(s);
        let rows = x.elem_count() / (wb.elem_count() / 2).max(1);
        let g = wb.apply_op2_no_bwd(&grad.contiguous()?, &op)?;
        let dx = g.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dwb = g.narrow(0, rows, 2)?.reshape(wb.shape())?;
        let da = g.narrow(0, rows + 2, rows)?.reshape(x.shape())?;
        Ok((Some(dx), Some(da), Some(dwb)))
    }
}

/// Backward of [`ResidualBatchNorm`]: inputs `[weight | bias]` and the output gradient;
/// output `[2·rows + 2, cols]`: the gradient of `x`, the weight's and bias's, then `a`'s (the
/// first through the mask).
struct ResidualBatchNormBwd {
    eps: f64,
    mask: Option<Mask>,
    mean: Vec<f32>,
    var: Vec<f32>,
    sum: Arc<Vec<f32>>,
}

impl CustomOp2 for ResidualBatchNormBwd {
    fn name(&self) -> &'static str {
        "retrain-residual-batch-norm-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (wb, g) = (slice(s1, l1, "BatchNorm weight and bias")?, slice(s2, l2, "BatchNorm gradient")?);
        let cols = wb.len() / 2;
        let x = &self.sum[..];
        if g.len() != x.len() || self.mean.len() != cols || cols == 0 {
            candle_core::bail!("fused op: residual BatchNorm gradient or statistics do not match its input");
        }
        let rows = x.len() / cols;
        let mut out = vec![0f32; (2 * rows + 2) * cols];
        let (dx, rest) = out.split_at_mut(rows * cols);
        let (tail, da) = rest.split_at_mut(2 * cols);
        bn_backward(x, &wb[..cols], g, &self.mean, &self.var, self.eps, dx, tail);
        da.par_chunks_mut(CHUNK).zip(dx.par_chunks(CHUNK)).enumerate().for_each(|(c, (da, dx))| {
            da.copy_from_slice(dx);
            if let Some(m) = &self.mask {
                wide(
                    #[inline(always)]
                    || m.apply(c * CHUNK, da),
                );
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((2 * rows + 2, cols))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(x: &Tensor, y: &Tensor) -> f32 {
        (x - y).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    fn grads_of(loss: Tensor, vars: &[&Var]) -> Vec<Tensor> {
        let g = loss.backward().unwrap();
        vars.iter().map(|v| g.get(v.as_tensor()).expect("a gradient").clone()).collect()
    }

    #[test]
    fn erf_matches_the_f64_function() {
        let mut worst = 0f64;
        for i in -6000..=6000 {
            let x = i as f64 / 1000.0;
            worst = worst.max((erf_approx(x as f32) as f64 - statrs::function::erf::erf(x)).abs());
        }
        assert!(worst < 1e-6, "worst absolute error {worst}");
    }

    #[test]
    fn bias_gelu_equals_candle_forward_and_backward() {
        let d = Device::Cpu;
        let h = Var::from_tensor(&(Tensor::randn(0f32, 2.0, (300, 37), &d).unwrap())).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 37, &d).unwrap()).unwrap();
        let w = Tensor::randn(0f32, 1.0, (300, 37), &d).unwrap();
        let ours = bias_gelu(&h, &b).unwrap();
        let want = h.broadcast_add(&b).unwrap().gelu_erf().unwrap();
        assert!(max_diff(&ours, &want) < 1e-5);
        let g1 = grads_of((ours * &w).unwrap().sum_all().unwrap(), &[&h, &b]);
        let g2 = grads_of((want * &w).unwrap().sum_all().unwrap(), &[&h, &b]);
        assert!(max_diff(&g1[0], &g2[0]) < 1e-4 && max_diff(&g1[1], &g2[1]) < 1e-3);
    }

    #[test]
    fn batch_norm_equals_candle_forward_and_backward_and_reports_statistics() {
        let d = Device::Cpu;
        let x = Var::from_tensor(&(Tensor::randn(3f32, 2.0, (40, 7, 5), &d).unwrap())).unwrap();
        let w = Var::from_tensor(&Tensor::randn(1f32, 0.3, 5, &d).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 5, &d).unwrap()).unwrap();
        let wt = Tensor::randn(0f32, 1.0, (40, 7, 5), &d).unwrap();
        let (ours, m, v) = batch_norm(&x, &w, &b, 1e-5).unwrap();
        let mean = x.mean_keepdim((0, 1)).unwrap();
        let var = x.broadcast_sub(&mean).unwrap().sqr().unwrap().mean_keepdim((0, 1)).unwrap();
        let want = x
            .broadcast_sub(&mean)
            .unwrap()
            .broadcast_div(&(&var + 1e-5).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&w)
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        assert!(max_diff(&ours, &want) < 1e-5);
        assert!(max_diff(&Tensor::new(m, &d).unwrap(), &mean.flatten_all().unwrap()) < 1e-5);
        assert!(max_diff(&Tensor::new(v, &d).unwrap(), &var.flatten_all().unwrap()) < 1e-4);
        let g1 = grads_of((ours * &wt).unwrap().sum_all().unwrap(), &[&x, &w, &b]);
        let g2 = grads_of((want * &wt).unwrap().sum_all().unwrap(), &[&x, &w, &b]);
        for (a, e) in g1.iter().zip(&g2) {
            assert!(max_diff(a, e) < 1e-3, "{}", max_diff(a, e));
        }
    }

    #[test]
    fn dropout_is_seeded_scaled_and_its_gradient_uses_the_same_mask() {
        let d = Device::Cpu;
        let x = Var::from_tensor(&Tensor::ones((100, 100), DType::F32, &d).unwrap()).unwrap();
        let y = dropout(&x, 0.3, 7).unwrap();
        let v = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let dropped = v.iter().filter(|&&e| e == 0.0).count();
        assert!((2700..3300).contains(&dropped), "{dropped}");
        assert!(v.iter().all(|&e| e == 0.0 || (e - 1.0 / 0.7).abs() < 1e-6));
        assert_eq!(v, dropout(&x, 0.3, 7).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_ne!(v, dropout(&x, 0.3, 8).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let g = grads_of(y.sum_all().unwrap(), &[&x]);
        assert_eq!(g[0].flatten_all().unwrap().to_vec1::<f32>().unwrap(), v);
    }

    #[test]
    fn the_block_path_of_a_mask_gives_the_element_path_bits() {
        let m = Mask::new(0.3, 5);
        for start in 0..9 {
            for len in [0, 1, 3, 15, 16, 17, 33, 100] {
                let x: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 3.0).collect();
                let (mut a, mut b) = (x.clone(), x);
                // The block path as the ops run it (under `wide`), the element path plain.
                wide(|| m.apply(start, &mut a));
                m.apply_each(start, &mut b);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&a), bits(&b), "start {start} len {len}");
            }
        }
    }

    #[test]
    fn a_mask_applied_piecewise_from_any_offset_equals_the_whole_mask() {
        let m = Mask::new(0.4, 11);
        let mut whole: Vec<f32> = (0..103).map(|i| i as f32 + 1.0).collect();
        let mut pieces = whole.clone();
        m.apply(0, &mut whole);
        let mut start = 0;
        for len in [1, 2, 5, 3, 7, 4, 81] {
            m.apply(start, &mut pieces[start..start + len]);
            start += len;
        }
        assert_eq!(start, 103);
        assert_eq!(whole, pieces);
        assert!(whole.contains(&0.0) && whole.iter().any(|&v| v != 0.0));
    }

    #[test]
    fn residual_batch_norm_equals_dropout_add_and_batch_norm() {
        let d = Device::Cpu;
        let x = Var::from_tensor(&(Tensor::randn(3f32, 2.0, (40, 7, 5), &d).unwrap())).unwrap();
        let a = Var::from_tensor(&(Tensor::randn(-1f32, 1.5, (40, 7, 5), &d).unwrap())).unwrap();
        let w = Var::from_tensor(&Tensor::randn(1f32, 0.3, 5, &d).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 5, &d).unwrap()).unwrap();
        let wt = Tensor::randn(0f32, 1.0, (40, 7, 5), &d).unwrap();
        for mask in [None, Some((0.3, 5))] {
            let (ours, m1, v1) = residual_batch_norm(&x, &a, &w, &b, 1e-5, mask).unwrap();
            let branch = match mask {
                Some((p, seed)) => dropout(&a, p, seed).unwrap(),
                None => a.as_tensor().clone(),
            };
            let (want, m2, v2) = batch_norm(&(x.as_tensor() + branch).unwrap(), &w, &b, 1e-5).unwrap();
            assert!(max_diff(&ours, &want) < 1e-5, "{mask:?}");
            assert_eq!((m1, v1), (m2, v2));
            let g1 = grads_of((&ours * &wt).unwrap().sum_all().unwrap(), &[&x, &a, &w, &b]);
            let g2 = grads_of((&want * &wt).unwrap().sum_all().unwrap(), &[&x, &a, &w, &b]);
            for (i, (o, e)) in g1.iter().zip(&g2).enumerate() {
                assert!(max_diff(o, e) < 1e-4, "{mask:?} gradient {i}: {}", max_diff(o, e));
            }
            if mask.is_some() {
                // The dropped elements of the branch get no gradient; the residual input all.
                let ga = g1[1].flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let zeros = ga.iter().filter(|&&v| v == 0.0).count();
                assert!((300..540).contains(&zeros), "{zeros} of 1400");
            }
        }
        let short = Tensor::zeros((40, 7, 4), DType::F32, &d).unwrap();
        assert!(residual_batch_norm(&x, &short, &w, &b, 1e-5, None).is_err());
    }

    #[test]
    fn same_bits_whatever_the_thread_count() {
        let d = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3000, 9), &d).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 9, &d).unwrap()).unwrap();
        let run = |t| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            pool.install(|| {
                let y = batch_norm(&bias_gelu(&x, &b).unwrap(), &b, &b, 1e-5).unwrap().0;
                let y = dropout(&y, 0.2, 3).unwrap();
                let z = dropout(&bias_gelu(&y, &b).unwrap(), 0.3, 4).unwrap();
                let y = residual_batch_norm(&y, &z, &b, &b, 1e-5, Some((0.2, 6))).unwrap().0;
                let g = grads_of((y.sqr().unwrap()).sum_all().unwrap(), &[&x, &b]);
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                (flat(&y), flat(&g[0]), flat(&g[1]))
            })
        };
        assert_eq!(run(1), run(3));
    }
}

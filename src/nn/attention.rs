//! Fused multi-head self-attention with residual scores on CPU, as two custom ops with their
//! own backward passes: [`Scores`] (`Q·Kᵀ·scale`, plus the previous layer's scores) and
//! [`Mix`] (softmax of the scores times `V`).
//!
//! Built from candle ops, attention materialises and re-reads a `[n, heads, p, p]` tensor some
//! ten times per step (product, scale, residual add, max, subtract, exp, sum, divide, then as
//! many in backward), each op allocating a fresh multi-megabyte buffer, and the products are
//! thousands of tiny `gemm` calls — for PatchTST those passes, not the arithmetic, were most
//! of a training step. Here each (sample, head) pair is worked through in cache: the scores
//! are written once (the next layer adds them: `res_attention`), the softmax lives in a row
//! buffer and is recomputed from the scores where needed instead of being stored.
//!
//! Layout: the input is the packed projection `qkv` `[n, p, 3·d]` (`q | k | v`, each head's
//! `d / heads` columns together, as `x @ [W_Q; W_K; W_V]ᵀ` gives it); the scores are
//! `[n, p, heads·p]` (row `i`, column `h·p + j`: query `i` on key `j` in head `h`) and the
//! output `[n, p, d]` (heads side by side, ready for the output projection). Samples run in
//! parallel in the caller's rayon pool, each computed whole by one task in a fixed order, so
//! results are bit-identical for any thread count.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::nn::kernels::{axpy, dot, dots, exp_approx, max, sum, wide};

/// Attention over the packed projection `qkv` (`[n, p, 3·d]`, f32 on CPU), adding `prev`
/// (`[n, p, heads·p]`, the previous layer's scores) to the scores. Returns (output
/// `[n, p, d]`, scores `[n, p, heads·p]`).
pub fn fused_attention(qkv: &Tensor, prev: Option<&Tensor>, heads: usize, scale: f64) -> Result<(Tensor, Tensor)> {
    let (_, _, d3) = qkv.dims3()?;
    if qkv.dtype() != DType::F32 || heads == 0 || !d3.is_multiple_of(3 * heads) {
        candle_core::bail!("fused attention: f32 [n, p, 3·d] input with d divisible by the heads expected");
    }
    let op = Scores { heads, scale: scale as f32 };
    let scores = match prev {
        Some(prev) => qkv.apply_op2(prev, op)?,
        None => qkv.apply_op1(op)?,
    };
    let out = qkv.apply_op2(&scores, Mix { heads })?;
    Ok((out, scores))
}

/// A read-only 3-D f32 view whose last dimension is contiguous (any start and row strides).
#[derive(Clone, Copy)]
struct View3<'a> {
    data: &'a [f32],
    start: usize,
    s0: usize,
    s1: usize,
    dims: (usize, usize, usize),
}

impl<'a> View3<'a> {
    fn new(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<Self> {
        let CpuStorage::F32(data) = s else { candle_core::bail!("fused attention: {what} must be f32") };
        let dims = l.dims();
        let st = l.stride();
        if dims.len() != 3 || (st[2] != 1 && dims[2] > 1) {
            candle_core::bail!("fused attention: {what} must be 3-D with a contiguous last dimension");
        }
        Ok(View3 { data, start: l.start_offset(), s0: st[0], s1: st[1], dims: (dims[0], dims[1], dims[2]) })
    }

    /// Row `i` of sample `s`.
    #[inline]
    fn row(&self, s: usize, i: usize) -> &'a [f32] {
        let o = self.start + s * self.s0 + i * self.s1;
        &self.data[o..o + self.dims.2]
    }
}

/// Shapes of one call: samples, patches, model width, heads, head width.
#[derive(Clone, Copy)]
struct Dims {
    n: usize,
    p: usize,
    d: usize,
    h: usize,
    dk: usize,
}

impl Dims {
    fn of(qkv: &View3, heads: usize) -> Self {
        let (n, p, d3) = qkv.dims;
        let d = d3 / 3;
        Dims { n, p, d, h: heads, dk: d / heads }
    }

    fn expect(&self, v: &View3, width: usize, what: &str) -> Result<()> {
        if v.dims != (self.n, self.p, width) {
            candle_core::bail!("fused attention: {what} is {:?}, expected {:?}", v.dims, (self.n, self.p, width));
        }
        Ok(())
    }
}

/// Head `hh`'s part `part` (0 = q, 1 = k, 2 = v) of sample `s`, transposed into `dst`
/// (`[dk, p]`: one contiguous run per column, so loops over keys vectorise).
#[inline(always)]
fn gather_t(qkv: &View3, dm: Dims, s: usize, part: usize, hh: usize, dst: &mut [f32]) {
    let base = part * dm.d + hh * dm.dk;
    for i in 0..dm.p {
        let row = &qkv.row(s, i)[base..base + dm.dk];
        for (c, &x) in row.iter().enumerate() {
            dst[c * dm.p + i] = x;
        }
    }
}

/// Every head's part `part` of sample `s`, transposed: `dst[hh]` is `[dk, p]` as [`gather_t`].
#[inline(always)]
fn gather_all(qkv: &View3, dm: Dims, s: usize, part: usize, dst: &mut [f32]) {
    for (hh, d) in dst.chunks_exact_mut(dm.dk * dm.p).enumerate() {
        gather_t(qkv, dm, s, part, hh, d);
    }
}

/// Write transposed per-head buffers (`src[hh]` `[dk, p]`) into part `part` of every row of
/// a sample's output block (rows of `width`).
#[inline(always)]
fn scatter_t(src: &[f32], dm: Dims, part: usize, o: &mut [f32], width: usize) {
    for (hh, sh) in src.chunks_exact(dm.dk * dm.p).enumerate() {
        for j in 0..dm.p {
            let base = j * width + part * dm.d + hh * dm.dk;
            for (c, x) in o[base..base + dm.dk].iter_mut().enumerate() {
                *x = sh[c * dm.p + j];
            }
        }
    }
}

/// Keys per block: row kernels keep eight keys' sums in one register while they run over a
/// head's columns, instead of one pass over the whole row per column.
const BLOCK: usize = 8;

/// `row[j] = Σ_c w[c]·m[c·p + j]` over `j < p` for the columns `c < w.len()` of a transposed
/// head (`m` `[dk, p]`), summed over `c` in order — the same bits as a zeroed row and one
/// `axpy` per column, without storing and reloading the row between columns. Then `finish`
/// maps each sum (with its key index) to the value stored.
#[inline(always)]
fn weighted_columns(w: &[f32], m: &[f32], p: usize, row: &mut [f32], finish: impl Fn(usize, f32) -> f32) {
    let mut j0 = 0;
    while j0 + BLOCK <= p {
        let mut acc = [0f32; BLOCK];
        for (c, &wc) in w.iter().enumerate() {
            let mc: &[f32; BLOCK] = m[c * p + j0..c * p + j0 + BLOCK].try_into().expect("a full block");
            for l in 0..BLOCK {
                acc[l] += wc * mc[l];
            }
        }
        for (l, (r, a)) in row[j0..j0 + BLOCK].iter_mut().zip(acc).enumerate() {
            *r = finish(j0 + l, a);
        }
        j0 += BLOCK;
    }
    for j in j0..p {
        let mut a = 0f32;
        for (c, &wc) in w.iter().enumerate() {
            a += wc * m[c * p + j];
        }
        row[j] = finish(j, a);
    }
}

/// Softmax of `scores` into `a` (the row maximum subtracted first, as every framework does).
#[inline(always)]
fn softmax_row(scores: &[f32], a: &mut [f32]) {
    let max = max(scores);
    for (e, &s) in a.iter_mut().zip(scores) {
        *e = exp_approx(s - max);
    }
    let inv = 1.0 / sum(a);
    a.iter_mut().for_each(|e| *e *= inv);
}

/// Run `f(sample, output chunk)` for every sample in parallel over an `[n, p, width]` output,
/// compiled for AVX2 where the CPU has it ([`wide`]: the kernels are plain loops the compiler
/// widens; the arithmetic and its order are the same either way, so results do not depend on
/// it).
fn per_sample<F: Fn(usize, &mut [f32]) + Sync>(dm: Dims, width: usize, f: F) -> (CpuStorage, Shape) {
    let mut out = vec![0f32; dm.n * dm.p * width];
    if dm.p * width > 0 {
        out.par_chunks_mut(dm.p * width).enumerate().for_each(|(s, o)| {
            wide(
                #[inline(always)]
                || f(s, o),
            )
        });
    }
    (CpuStorage::F32(out), Shape::from((dm.n, dm.p, width)))
}

/// `scores = Q·Kᵀ·scale (+ prev)`.
#[derive(Clone, Copy)]
struct Scores {
    heads: usize,
    scale: f32,
}

impl Scores {
    fn forward(&self, qkv: View3, prev: Option<View3>) -> Result<(CpuStorage, Shape)> {
        let dm = Dims::of(&qkv, self.heads);
        let hp = dm.h * dm.p;
        if let Some(prev) = &prev {
            dm.expect(prev, hp, "the previous scores")?;
        }
        Ok(per_sample(
            dm,
            hp,
            #[inline(always)]
            |s, o| {
                // Rows outer, heads inner: the sample's block of scores is written (and the
                // previous scores read) front to back, which the hardware prefetcher follows.
                let len = dm.dk * dm.p;
                let (mut q, mut k) = (vec![0f32; dm.h * len], vec![0f32; dm.h * len]);
                gather_all(&qkv, dm, s, 0, &mut q);
                gather_all(&qkv, dm, s, 1, &mut k);
                let mut qi = vec![0f32; dm.dk];
                for i in 0..dm.p {
                    let pr = prev.as_ref().map(|v| v.row(s, i));
                    for hh in 0..dm.h {
                        let (q, k) = (&q[hh * len..(hh + 1) * len], &k[hh * len..(hh + 1) * len]);
                        let row = &mut o[i * hp + hh * dm.p..i * hp + (hh + 1) * dm.p];
                        qi.iter_mut().enumerate().for_each(|(c, x)| *x = q[c * dm.p + i]);
                        let scale = self.scale;
                        match pr {
                            Some(pr) => {
                                let pr = &pr[hh * dm.p..(hh + 1) * dm.p];
                                weighted_columns(&qi, k, dm.p, row, |j, x| x * scale + pr[j]);
                            }
                            None => weighted_columns(&qi, k, dm.p, row, |_, x| x * scale),
                        }
                    }
                }
            },
        ))
    }

    /// Gradient of `qkv` (its q and k parts; v's is zero) from the scores' gradient.
    fn backward(&self, qkv: &Tensor, grad: &Tensor) -> Result<Tensor> {
        qkv.apply_op2_no_bwd(grad, &ScoresBwd(*self))
    }
}

impl CustomOp1 for Scores {
    fn name(&self) -> &'static str {
        "retrain-attention-scores"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.forward(View3::new(s, l, "qkv")?, None)
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.backward(qkv, grad)?))
    }
}

impl CustomOp2 for Scores {
    fn name(&self) -> &'static str {
        "retrain-attention-scores-residual"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.forward(View3::new(s1, l1, "qkv")?, Some(View3::new(s2, l2, "previous scores")?))
    }

    fn bwd(
        &self,
        qkv: &Tensor,
        _prev: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // The previous scores are added as they are: their gradient is the scores' gradient.
        Ok((Some(self.backward(qkv, grad)?), Some(grad.clone())))
    }
}

/// Backward of [`Scores`]: inputs `qkv` and the scores' gradient, output `[n, p, 3·d]`.
struct ScoresBwd(Scores);

impl CustomOp2 for ScoresBwd {
    fn name(&self) -> &'static str {
        "retrain-attention-scores-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = View3::new(s1, l1, "qkv")?;
        let grad = View3::new(s2, l2, "scores gradient")?;
        let dm = Dims::of(&qkv, self.0.heads);
        let hp = dm.h * dm.p;
        dm.expect(&grad, hp, "the scores gradient")?;
        let scale = self.0.scale;
        Ok(per_sample(
            dm,
            3 * dm.d,
            #[inline(always)]
            |s, o| {
                let len = dm.dk * dm.p;
                let (mut q, mut k, mut dk) = (vec![0f32; dm.h * len], vec![0f32; dm.h * len], vec![0f32; dm.h * len]);
                gather_all(&qkv, dm, s, 0, &mut q);
                gather_all(&qkv, dm, s, 1, &mut k);
                let mut gs = vec![0f32; dm.p];
                for i in 0..dm.p {
                    let grow = grad.row(s, i);
                    for hh in 0..dm.h {
                        let (q, k) = (&q[hh * len..(hh + 1) * len], &k[hh * len..(hh + 1) * len]);
                        let dk = &mut dk[hh * len..(hh + 1) * len];
                        // dS·scale, then dQᵢ = Σⱼ dSᵢⱼ·scale·Kⱼ and dKⱼ += dSᵢⱼ·scale·Qᵢ.
                        gs.iter_mut().zip(&grow[hh * dm.p..(hh + 1) * dm.p]).for_each(|(x, y)| *x = y * scale);
                        let dq = &mut o[i * 3 * dm.d + hh * dm.dk..i * 3 * dm.d + (hh + 1) * dm.dk];
                        dots(&gs, k, dq);
                        for c in 0..dm.dk {
                            axpy(q[c * dm.p + i], &gs, &mut dk[c * dm.p..(c + 1) * dm.p]);
                        }
                    }
                }
                scatter_t(&dk, dm, 1, o, 3 * dm.d);
            },
        ))
    }
}

/// `out = softmax(scores)·V`.
#[derive(Clone, Copy)]
struct Mix {
    heads: usize,
}

impl CustomOp2 for Mix {
    fn name(&self) -> &'static str {
        "retrain-attention-mix"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = View3::new(s1, l1, "qkv")?;
        let scores = View3::new(s2, l2, "scores")?;
        let dm = Dims::of(&qkv, self.heads);
        dm.expect(&scores, dm.h * dm.p, "the scores")?;
        Ok(per_sample(
            dm,
            dm.d,
            #[inline(always)]
            |s, o| {
                let len = dm.dk * dm.p;
                let (mut v, mut a) = (vec![0f32; dm.h * len], vec![0f32; dm.p]);
                gather_all(&qkv, dm, s, 2, &mut v);
                for i in 0..dm.p {
                    let srow = scores.row(s, i);
                    for hh in 0..dm.h {
                        let v = &v[hh * len..(hh + 1) * len];
                        softmax_row(&srow[hh * dm.p..(hh + 1) * dm.p], &mut a);
                        dots(&a, v, &mut o[i * dm.d + hh * dm.dk..i * dm.d + (hh + 1) * dm.dk]);
                    }
                }
            },
        ))
    }

    fn bwd(
        &self,
        qkv: &Tensor,
        scores: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d3 = qkv.dim(2)?;
        let g = qkv.apply_op3_no_bwd(scores, grad, &MixBwd(*self))?;
        Ok((Some(g.narrow(2, 0, d3)?), Some(g.narrow(2, d3, scores.dim(2)?)?)))
    }
}

/// Backward of [`Mix`]: inputs `qkv`, the scores and the output's gradient; output
/// `[n, p, 3·d + heads·p]` = (gradient of `qkv`, only its v part non-zero | the scores').
struct MixBwd(Mix);

impl CustomOp3 for MixBwd {
    fn name(&self) -> &'static str {
        "retrain-attention-mix-backward"
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
        let qkv = View3::new(s1, l1, "qkv")?;
        let scores = View3::new(s2, l2, "scores")?;
        let grad = View3::new(s3, l3, "output gradient")?;
        let dm = Dims::of(&qkv, self.0.heads);
        let hp = dm.h * dm.p;
        dm.expect(&scores, hp, "the scores")?;
        dm.expect(&grad, dm.d, "the output gradient")?;
        let w = 3 * dm.d + hp;
        Ok(per_sample(
            dm,
            w,
            #[inline(always)]
            |s, o| {
                let len = dm.dk * dm.p;
                let (mut v, mut dv) = (vec![0f32; dm.h * len], vec![0f32; dm.h * len]);
                let (mut a, mut da) = (vec![0f32; dm.p], vec![0f32; dm.p]);
                gather_all(&qkv, dm, s, 2, &mut v);
                for i in 0..dm.p {
                    let (srow, grow) = (scores.row(s, i), grad.row(s, i));
                    for hh in 0..dm.h {
                        let v = &v[hh * len..(hh + 1) * len];
                        let dv = &mut dv[hh * len..(hh + 1) * len];
                        softmax_row(&srow[hh * dm.p..(hh + 1) * dm.p], &mut a);
                        let go = &grow[hh * dm.dk..(hh + 1) * dm.dk];
                        // dA = dO·Vᵀ; dS = A ⊙ (dA − Σ A ⊙ dA); dVⱼ += Aᵢⱼ·dOᵢ.
                        weighted_columns(go, v, dm.p, &mut da, |_, x| x);
                        for c in 0..dm.dk {
                            axpy(go[c], &a, &mut dv[c * dm.p..(c + 1) * dm.p]);
                        }
                        let centre = dot(&a, &da);
                        let ds = &mut o[i * w + 3 * dm.d + hh * dm.p..i * w + 3 * dm.d + (hh + 1) * dm.p];
                        for ((x, &aj), &daj) in ds.iter_mut().zip(&a).zip(&da) {
                            *x = aj * (daj - centre);
                        }
                    }
                }
                scatter_t(&dv, dm, 2, o, w);
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, Device, Var};

    fn max_diff(x: &Tensor, y: &Tensor) -> f32 {
        (x - y).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// The same attention written with candle ops, in the `[n, heads, p, p]` score layout.
    fn reference(qkv: &Tensor, prev: Option<&Tensor>, h: usize, scale: f64) -> (Tensor, Tensor) {
        let (n, p, d3) = qkv.dims3().unwrap();
        let d = d3 / 3;
        let part = |c: usize| {
            qkv.narrow(2, c * d, d)
                .unwrap()
                .reshape((n, p, h, d / h))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let mut s = (q.matmul(&k.t().unwrap()).unwrap() * scale).unwrap();
        if let Some(prev) = prev {
            s = (s + prev.reshape((n, p, h, p)).unwrap().transpose(1, 2).unwrap()).unwrap();
        }
        let a = candle_nn::ops::softmax(&s, D::Minus1).unwrap();
        let o = a.matmul(&v).unwrap().transpose(1, 2).unwrap().contiguous().unwrap().reshape((n, p, d)).unwrap();
        let s = s.transpose(1, 2).unwrap().contiguous().unwrap().reshape((n, p, h * p)).unwrap();
        (o, s)
    }

    #[test]
    fn equals_candle_ops_forward_and_backward_with_and_without_previous_scores() {
        let dev = Device::Cpu;
        for (n, p, d, h) in [(3, 7, 8, 2), (2, 42, 16, 4), (2, 11, 24, 1)] {
            let qkv = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, p, 3 * d), &dev).unwrap()).unwrap();
            // The previous scores as a strided view, to check that layouts are honoured.
            let wide = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, p, 5 + h * p), &dev).unwrap()).unwrap();
            let prev = wide.narrow(2, 5, h * p).unwrap();
            let wo = Tensor::randn(0f32, 1.0, (n, p, d), &dev).unwrap();
            let ws = Tensor::randn(0f32, 1.0, (n, p, h * p), &dev).unwrap();
            for with_prev in [false, true] {
                let pv = with_prev.then_some(&prev);
                let (o1, s1) = fused_attention(&qkv, pv, h, 0.5).unwrap();
                let (o2, s2) = reference(&qkv, pv, h, 0.5);
                assert!(max_diff(&o1, &o2) < 1e-5 && max_diff(&s1, &s2) < 1e-5, "forward {p} {d} {h} {with_prev}");
                let loss = |o: &Tensor, s: &Tensor| {
                    ((o * &wo).unwrap().sum_all().unwrap() + (s * &ws).unwrap().sum_all().unwrap()).unwrap()
                };
                let g1 = loss(&o1, &s1).backward().unwrap();
                let g2 = loss(&o2, &s2).backward().unwrap();
                assert!(max_diff(g1.get(&qkv).unwrap(), g2.get(&qkv).unwrap()) < 1e-4, "qkv gradient {p} {with_prev}");
                if with_prev {
                    assert!(max_diff(g1.get(&wide).unwrap(), g2.get(&wide).unwrap()) < 1e-4, "previous-score gradient");
                }
            }
        }
    }

    #[test]
    fn same_bits_whatever_the_thread_count() {
        let dev = Device::Cpu;
        let qkv = Var::from_tensor(&Tensor::randn(0f32, 1.0, (20, 9, 12), &dev).unwrap()).unwrap();
        let run = |t| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            pool.install(|| {
                let (o, s) = fused_attention(&qkv, None, 2, 0.7).unwrap();
                let g = (o.sqr().unwrap().sum_all().unwrap() + s.sum_all().unwrap()).unwrap().backward().unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                (flat(&o), flat(&s), flat(g.get(&qkv).unwrap()))
            })
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn mismatched_previous_scores_are_an_error() {
        let dev = Device::Cpu;
        let qkv = Tensor::zeros((2, 5, 12), DType::F32, &dev).unwrap();
        let prev = Tensor::zeros((2, 5, 9), DType::F32, &dev).unwrap();
        assert!(fused_attention(&qkv, Some(&prev), 2, 1.0).is_err());
        assert!(fused_attention(&qkv, None, 5, 1.0).is_err());
    }
}

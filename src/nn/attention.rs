//! Fused multi-head self-attention with residual scores on CPU: one custom op per layer,
//! [`fused_attention`], whose forward computes `softmax(Q·Kᵀ·scale + prev)·V` and whose
//! backward computes the gradients of `Q`, `K` and `V` in one pass.
//!
//! Built from candle ops, attention materialises and re-reads a `[n, heads, p, p]` tensor some
//! ten times per step (product, scale, residual add, max, subtract, exp, sum, divide, then as
//! many in backward), each op allocating a fresh multi-megabyte buffer, and the products are
//! thousands of tiny `gemm` calls — for PatchTST those passes, not the arithmetic, were most
//! of a training step. Here each (sample, head) pair is worked through in cache: the scores
//! are written once and the softmax lives in a row buffer, recomputed from the scores in
//! backward instead of being stored.
//!
//! The scores go to the next layer (`res_attention`: it adds them to its own) through a
//! [`ScoreLink`], outside candle's graph, and the next layer's backward hands their gradient
//! back the same way. As graph tensors they cost, per layer, a zero-filled gradient buffer and
//! two additions of the size of the scores (candle's bookkeeping for a tensor with two
//! consumers) — for PatchTST small 25 MB each, more than the attention arithmetic. The order
//! is safe: layer `l + 1`'s op descends from layer `l`'s through the layer's output, so
//! candle's backward, which runs in reverse topological order, always runs it first.
//!
//! Layout: the input is the packed projection `qkv` `[n, p, 3·d]` (`q | k | v`, each head's
//! `d / heads` columns together, as `x @ [W_Q; W_K; W_V]ᵀ` gives it); the scores are
//! `[n, p, heads·p]` (row `i`, column `h·p + j`: query `i` on key `j` in head `h`) and the
//! output `[n, p, d]` (heads side by side, ready for the output projection). Samples run in
//! parallel in the caller's rayon pool, each computed whole by one task in a fixed order, so
//! results are bit-identical for any thread count.

use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::nn::kernels::{axpy, dot, dots, exp_approx, max, sum};
use crate::simd::wide;

/// Attention over the packed projection `qkv` (`[n, p, 3·d]`, f32 on CPU), adding the scores
/// of `prev` (the previous layer's) to its own. Returns the output `[n, p, d]` and the link
/// carrying this layer's scores `[n, p, heads·p]` to the next.
pub fn fused_attention(
    qkv: &Tensor,
    prev: Option<&ScoreLink>,
    heads: usize,
    scale: f64,
) -> Result<(Tensor, ScoreLink)> {
    let (_, _, d3) = qkv.dims3()?;
    if qkv.dtype() != DType::F32 || heads == 0 || !d3.is_multiple_of(3 * heads) {
        candle_core::bail!("fused attention: f32 [n, p, 3·d] input with d divisible by the heads expected");
    }
    let link = ScoreLink::default();
    let op = Attend { heads, scale: scale as f32, prev: prev.cloned(), this: link.clone() };
    let out = qkv.apply_op1(op)?;
    Ok((out, link))
}

/// One layer's pre-softmax scores, handed to the next layer's [`fused_attention`], and the
/// gradient of the loss with respect to them that the next layer's backward hands back.
#[derive(Clone, Default)]
pub struct ScoreLink(Arc<Mutex<LinkState>>);

/// Dimensions `[n, p, heads·p]` of a layer's scores.
type ScoreDims = (usize, usize, usize);

#[derive(Default)]
struct LinkState {
    /// The scores, row-major, with their dimensions (set by the forward).
    scores: Option<(Arc<Vec<f32>>, ScoreDims)>,
    /// Their gradient from the next layer (none yet: zero).
    grad: Option<Vec<f32>>,
}

impl ScoreLink {
    fn state(&self) -> MutexGuard<'_, LinkState> {
        // A panic elsewhere while the lock was held leaves nothing half-written here.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The scores, checked to be `[n, p, hp]`.
    fn scores(&self, dims: ScoreDims) -> Result<Arc<Vec<f32>>> {
        match &self.state().scores {
            Some((s, d)) if *d == dims => Ok(s.clone()),
            Some((_, d)) => candle_core::bail!("fused attention: the previous scores are {d:?}, expected {dims:?}"),
            None => candle_core::bail!("fused attention: the previous layer's scores were never computed"),
        }
    }

    /// Add `g` to the gradient of the scores.
    fn deposit(&self, g: Vec<f32>) {
        let mut st = self.state();
        match &mut st.grad {
            Some(acc) => acc.iter_mut().zip(&g).for_each(|(a, x)| *a += x),
            None => st.grad = Some(g),
        }
    }

    /// The scores as a tensor `[n, p, heads·p]` (a copy; the tests inspect attention maps).
    #[cfg(test)]
    pub fn to_tensor(&self) -> Result<Tensor> {
        match &self.state().scores {
            Some((s, d)) => Tensor::from_slice(s, *d, &candle_core::Device::Cpu),
            None => candle_core::bail!("fused attention: the scores were never computed"),
        }
    }
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

/// Sample `s`'s rows of `qkv` transposed into `dst` (`[3·d, p]`: each column of the rows as
/// one contiguous run, so loops over keys vectorise). Head `hh`'s part `part` (0 = q, 1 = k,
/// 2 = v) is then the `[dk, p]` block at `(part·heads + hh)·dk·p`.
#[inline(always)]
fn gather(qkv: &View3, dm: Dims, s: usize, dst: &mut [f32]) {
    let (w, p) = (3 * dm.d, dm.p);
    // Row offsets by addition: written as `start + i·stride` per row, the loop was widened
    // into 64-bit vector multiplies that cost more than the copy.
    let mut o = qkv.start + s * qkv.s0;
    for i in 0..p {
        for (col, &x) in dst.chunks_exact_mut(p).zip(&qkv.data[o..o + w]) {
            col[i] = x;
        }
        o += qkv.s1;
    }
}

/// Write `src` (`[cols, p]`, transposed as [`gather`] leaves it) into columns
/// `first..first + cols` of every row of a sample's output block (rows of `width`).
#[inline(always)]
fn scatter(src: &[f32], p: usize, o: &mut [f32], width: usize, first: usize) {
    for (i, row) in o.chunks_exact_mut(width).take(p).enumerate() {
        for (x, col) in row[first..].iter_mut().zip(src.chunks_exact(p)) {
            *x = col[i];
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

/// Run `f(sample, first output chunk, second output chunk, scratch)` for every sample in
/// parallel over `first` (`width` values per patch) and, when given, `second` (`width2` per
/// patch), compiled for AVX-512 or AVX2 where the CPU has it ([`wide`]: the kernels are plain
/// loops the compiler widens; the arithmetic and its order are the same either way, so results
/// do not depend on it). `scratch` (`scratch` values, contents left by the previous sample) is
/// allocated once per rayon job, not per sample.
fn per_sample<F: Fn(usize, &mut [f32], Option<&mut [f32]>, &mut [f32]) + Sync>(
    dm: Dims,
    (first, width): (&mut [f32], usize),
    second: Option<(&mut [f32], usize)>,
    scratch: usize,
    f: F,
) {
    if dm.p * width == 0 {
        return;
    }
    let chunks = first.par_chunks_mut(dm.p * width);
    let init = || vec![0f32; scratch];
    match second {
        Some((second, width2)) if width2 > 0 => {
            chunks.zip(second.par_chunks_mut(dm.p * width2)).enumerate().for_each_init(init, |t, (s, (o, o2))| {
                wide(
                    #[inline(always)]
                    || f(s, o, Some(o2), t),
                )
            })
        }
        _ => chunks.enumerate().for_each_init(init, |t, (s, o)| {
            wide(
                #[inline(always)]
                || f(s, o, None, t),
            )
        }),
    }
}

/// The forward op: `softmax(Q·Kᵀ·scale + prev)·V`, storing the scores in `this`.
struct Attend {
    heads: usize,
    scale: f32,
    prev: Option<ScoreLink>,
    this: ScoreLink,
}

impl CustomOp1 for Attend {
    fn name(&self) -> &'static str {
        "retrain-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = View3::new(s, l, "qkv")?;
        let dm = Dims::of(&qkv, self.heads);
        let hp = dm.h * dm.p;
        let prev = self.prev.as_ref().map(|link| link.scores((dm.n, dm.p, hp))).transpose()?;
        let prev = prev.as_deref().map(|v| v.as_slice());
        let (mut out, mut scores) = (vec![0f32; dm.n * dm.p * dm.d], vec![0f32; dm.n * dm.p * hp]);
        let scale = self.scale;
        per_sample(
            dm,
            (&mut out, dm.d),
            Some((&mut scores, hp)),
            3 * dm.d * dm.p + dm.dk + dm.p,
            #[inline(always)]
            |s, o, sc, t| {
                let sc = sc.expect("the scores' chunk");
                let len = dm.dk * dm.p;
                let (qkvt, t) = t.split_at_mut(3 * dm.h * len);
                let (qi, a) = t.split_at_mut(dm.dk);
                gather(&qkv, dm, s, qkvt);
                let (q, kv) = qkvt.split_at(dm.h * len);
                let (k, v) = kv.split_at(dm.h * len);
                for i in 0..dm.p {
                    let pr = prev.map(|pr| &pr[(s * dm.p + i) * hp..(s * dm.p + i + 1) * hp]);
                    for hh in 0..dm.h {
                        let head = hh * len..(hh + 1) * len;
                        let (q, k, v) = (&q[head.clone()], &k[head.clone()], &v[head]);
                        let row = &mut sc[i * hp + hh * dm.p..i * hp + (hh + 1) * dm.p];
                        qi.iter_mut().enumerate().for_each(|(c, x)| *x = q[c * dm.p + i]);
                        match pr {
                            Some(pr) => {
                                let pr = &pr[hh * dm.p..(hh + 1) * dm.p];
                                weighted_columns(qi, k, dm.p, row, |j, x| x * scale + pr[j]);
                            }
                            None => weighted_columns(qi, k, dm.p, row, |_, x| x * scale),
                        }
                        softmax_row(row, a);
                        dots(a, v, &mut o[i * dm.d + hh * dm.dk..i * dm.d + (hh + 1) * dm.dk]);
                    }
                }
            },
        );
        self.this.state().scores = Some((Arc::new(scores), (dm.n, dm.p, hp)));
        Ok((CpuStorage::F32(out), Shape::from((dm.n, dm.p, dm.d))))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(qkv.apply_op2_no_bwd(grad, &AttendBwd(self))?))
    }
}

/// Backward of [`Attend`]: inputs `qkv` and the output's gradient, output the gradient of
/// `qkv` `[n, p, 3·d]`. Takes the scores' gradient from the next layer out of `this` and
/// leaves the gradient of `prev` (the same: `prev` is added as it is) in `prev`.
struct AttendBwd<'a>(&'a Attend);

impl CustomOp2 for AttendBwd<'_> {
    fn name(&self) -> &'static str {
        "retrain-attention-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = View3::new(s1, l1, "qkv")?;
        let grad = View3::new(s2, l2, "output gradient")?;
        let dm = Dims::of(&qkv, self.0.heads);
        let hp = dm.h * dm.p;
        dm.expect(&grad, dm.d, "the output gradient")?;
        let scores = self.0.this.scores((dm.n, dm.p, hp))?;
        let scores = scores.as_slice();
        // The scores' total gradient: what the next layer handed back plus this layer's own.
        // Kept (in the next layer's buffer when there is one) only when `prev` needs it.
        let next = self.0.this.state().grad.take();
        let has_next = next.is_some();
        if next.as_ref().is_some_and(|g| g.len() != scores.len()) {
            candle_core::bail!("fused attention: the next layer's score gradient has the wrong size");
        }
        let mut total = match (next, self.0.prev.is_some()) {
            (Some(g), _) => Some(g),
            (None, true) => Some(vec![0f32; scores.len()]),
            (None, false) => None,
        };
        let keep = self.0.prev.is_some();
        let scale = self.0.scale;
        let w = 3 * dm.d;
        let mut out = vec![0f32; dm.n * dm.p * w];
        per_sample(
            dm,
            (&mut out, w),
            total.as_deref_mut().map(|t| (t, hp)),
            5 * dm.d * dm.p + 3 * dm.p,
            #[inline(always)]
            |s, o, mut tot, t| {
                let len = dm.dk * dm.p;
                let (qkvt, t) = t.split_at_mut(3 * dm.h * len);
                let (dkv, t) = t.split_at_mut(2 * dm.h * len);
                let (a, t) = t.split_at_mut(dm.p);
                let (da, gs) = t.split_at_mut(dm.p);
                gather(&qkv, dm, s, qkvt);
                dkv.fill(0.0);
                let (q, kv) = qkvt.split_at(dm.h * len);
                let (k, v) = kv.split_at(dm.h * len);
                let (dk, dv) = dkv.split_at_mut(dm.h * len);
                for i in 0..dm.p {
                    let (srow, grow) = (&scores[(s * dm.p + i) * hp..(s * dm.p + i + 1) * hp], grad.row(s, i));
                    for hh in 0..dm.h {
                        let head = hh * len..(hh + 1) * len;
                        let (q, k, v) = (&q[head.clone()], &k[head.clone()], &v[head.clone()]);
                        let (dk, dv) = (&mut dk[head.clone()], &mut dv[head]);
                        softmax_row(&srow[hh * dm.p..(hh + 1) * dm.p], a);
                        let go = &grow[hh * dm.dk..(hh + 1) * dm.dk];
                        // dA = dO·Vᵀ; dVⱼ += Aᵢⱼ·dOᵢ; dS = A ⊙ (dA − Σ A ⊙ dA) (+ the next
                        // layer's); dQᵢ = Σⱼ dSᵢⱼ·scale·Kⱼ; dKⱼ += dSᵢⱼ·scale·Qᵢ.
                        weighted_columns(go, v, dm.p, da, |_, x| x);
                        for c in 0..dm.dk {
                            axpy(go[c], a, &mut dv[c * dm.p..(c + 1) * dm.p]);
                        }
                        let centre = dot(a, da);
                        let cols = i * hp + hh * dm.p..i * hp + (hh + 1) * dm.p;
                        match tot.as_deref_mut() {
                            Some(t) => {
                                let t = &mut t[cols];
                                for (((g, x), &aj), &daj) in
                                    gs.iter_mut().zip(t.iter_mut()).zip(a.iter()).zip(da.iter())
                                {
                                    let own = aj * (daj - centre);
                                    let sum = if has_next { own + *x } else { own };
                                    if keep {
                                        *x = sum;
                                    }
                                    *g = sum * scale;
                                }
                            }
                            None => {
                                for ((g, &aj), &daj) in gs.iter_mut().zip(a.iter()).zip(da.iter()) {
                                    *g = aj * (daj - centre) * scale;
                                }
                            }
                        }
                        dots(gs, k, &mut o[i * w + hh * dm.dk..i * w + (hh + 1) * dm.dk]);
                        for c in 0..dm.dk {
                            axpy(q[c * dm.p + i], gs, &mut dk[c * dm.p..(c + 1) * dm.p]);
                        }
                    }
                }
                scatter(dkv, dm.p, o, w, dm.d);
            },
        );
        if let (Some(prev), Some(t)) = (&self.0.prev, total) {
            prev.deposit(t);
        }
        Ok((CpuStorage::F32(out), Shape::from((dm.n, dm.p, w))))
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
    /// Returns the output and the scores `[n, p, heads·p]`.
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

    /// A stack of `layers` attentions, each on its own `qkv` (given as a strided view, to check
    /// that layouts are honoured), chaining the scores, with loss `Σ_l Σ o_l ⊙ w_l`. Returns
    /// the outputs, every layer's scores and the gradient of each `qkv`.
    fn stack(qkv: &[Var], w: &[Tensor], h: usize, fused: bool) -> (Vec<Tensor>, Vec<Tensor>, Vec<Tensor>) {
        let (mut outs, mut scores) = (Vec::new(), Vec::new());
        let (mut link, mut prev): (Option<ScoreLink>, Option<Tensor>) = (None, None);
        for x in qkv {
            let d3 = x.dim(2).unwrap() - 3;
            let x = x.narrow(2, 3, d3).unwrap();
            if fused {
                let (o, l) = fused_attention(&x, link.as_ref(), h, 0.5).unwrap();
                scores.push(l.to_tensor().unwrap());
                outs.push(o);
                link = Some(l);
            } else {
                let (o, s) = reference(&x, prev.as_ref(), h, 0.5);
                scores.push(s.clone());
                outs.push(o);
                prev = Some(s);
            }
        }
        let loss = outs.iter().zip(w).map(|(o, w)| (o * w).unwrap().sum_all().unwrap()).reduce(|a, b| (a + b).unwrap());
        let g = loss.unwrap().backward().unwrap();
        let grads = qkv.iter().map(|x| g.get(x).unwrap().clone()).collect();
        (outs, scores, grads)
    }

    #[test]
    fn a_stack_equals_candle_ops_forward_and_backward() {
        let dev = Device::Cpu;
        for (n, p, d, h, layers) in [(3, 7, 8, 2, 1), (2, 42, 16, 4, 3), (2, 11, 24, 1, 2), (2, 9, 8, 2, 4)] {
            let qkv: Vec<Var> = (0..layers)
                .map(|_| Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, p, 3 + 3 * d), &dev).unwrap()).unwrap())
                .collect();
            let w: Vec<Tensor> = (0..layers).map(|_| Tensor::randn(0f32, 1.0, (n, p, d), &dev).unwrap()).collect();
            let (o1, s1, g1) = stack(&qkv, &w, h, true);
            let (o2, s2, g2) = stack(&qkv, &w, h, false);
            for l in 0..layers {
                assert!(max_diff(&o1[l], &o2[l]) < 1e-5, "output {p} {d} {h} layer {l}");
                assert!(max_diff(&s1[l], &s2[l]) < 1e-5, "scores {p} {d} {h} layer {l}");
                assert!(max_diff(&g1[l], &g2[l]) < 1e-4, "qkv gradient {p} {d} {h} layer {l} of {layers}");
            }
        }
    }

    #[test]
    fn same_bits_whatever_the_thread_count() {
        let dev = Device::Cpu;
        let qkv: Vec<Var> =
            (0..3).map(|_| Var::from_tensor(&Tensor::randn(0f32, 1.0, (20, 9, 15), &dev).unwrap()).unwrap()).collect();
        let w: Vec<Tensor> = (0..3).map(|_| Tensor::randn(0f32, 1.0, (20, 9, 4), &dev).unwrap()).collect();
        let run = |t| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            pool.install(|| {
                let (o, s, g) = stack(&qkv, &w, 2, true);
                let flat = |t: &[Tensor]| -> Vec<Vec<f32>> {
                    t.iter().map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
                };
                (flat(&o), flat(&s), flat(&g))
            })
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn bad_shapes_and_unset_links_are_errors() {
        let dev = Device::Cpu;
        let qkv = Tensor::zeros((2, 5, 12), DType::F32, &dev).unwrap();
        let (_, link) = fused_attention(&qkv, None, 2, 1.0).unwrap();
        // Scores of another shape (3 patches) as the previous layer's.
        let other = Tensor::zeros((2, 3, 12), DType::F32, &dev).unwrap();
        assert!(fused_attention(&other, Some(&link), 2, 1.0).is_err());
        assert!(fused_attention(&qkv, Some(&ScoreLink::default()), 2, 1.0).is_err());
        assert!(ScoreLink::default().to_tensor().is_err());
        assert!(fused_attention(&qkv, None, 5, 1.0).is_err());
    }
}

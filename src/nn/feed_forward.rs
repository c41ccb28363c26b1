//! PatchTST's feed-forward block on CPU as one custom op with its own backward:
//! `dropout(gelu(x·W₁ᵀ + b₁))·W₂ᵀ + b₂`.
//!
//! Built from the linear and activation ops, the block's `[rows, d_ff]` hidden activation is
//! two graph nodes (the first product, then bias + GELU + dropout), and candle's backward
//! gives each node's gradient a fresh buffer, a zero-filled one and an addition: five passes
//! over the widest tensor of the layer per node. Here the hidden activation lives only
//! inside the op: the forward keeps the pre-activation for the backward, which recomputes
//! the activation and its dropout mask from it and computes every gradient in its own
//! buffers. Products run through [`gemm_into`] and column sums over fixed row chunks, so
//! results are identical whatever the thread count; the mask is [`crate::nn::fused::dropout`]'s for
//! the same seed.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::nn::fused::{Mask, column_sums_into, gelu_and_slope, slice};
use crate::nn::matmul::{bias_rows, gemm_into, gemm_new};
use crate::simd::wide;

/// Rows per parallel task in row-wise loops.
const ROWS: usize = 64;

/// `dropout(gelu(x·W₁ᵀ + b₁), p)·W₂ᵀ + b₂` over the last dimension of `x` (`[…, d]`, f32 on
/// CPU), with `w1` `[d_ff, d]` and `w2` `[d, d_ff]` as PyTorch stores them; `dropout` is
/// `(p, seed)` in training (the mask of [`crate::nn::fused::dropout`] with that seed), `None` for none.
pub fn feed_forward(
    x: &Tensor,
    w1: &Tensor,
    b1: &Tensor,
    w2: &Tensor,
    b2: &Tensor,
    dropout: Option<(f64, u64)>,
) -> Result<Tensor> {
    let (ff, d) = w1.dims2()?;
    if w2.dims2()? != (d, ff) || b1.dims1()? != ff || b2.dims1()? != d || x.dim(candle_core::D::Minus1)? != d {
        candle_core::bail!(
            "feed-forward: input {:?}, W1 {:?}, b1 {:?}, W2 {:?}, b2 {:?} do not fit",
            x.shape(),
            w1.shape(),
            b1.shape(),
            w2.shape(),
            b2.shape()
        );
    }
    let params = Tensor::cat(&[&w1.flatten_all()?, b1, &w2.flatten_all()?, b2], 0)?;
    let op = FeedForward {
        d,
        ff,
        mask: dropout.filter(|&(p, _)| p > 0.0).map(|(p, seed)| Mask::new(p, seed)),
        hidden: Arc::new(Mutex::new(None)),
    };
    x.contiguous()?.apply_op2(&params, op)
}

/// See [`feed_forward`]: inputs `x` and the flat parameters `[W₁ | b₁ | W₂ | b₂]`.
struct FeedForward {
    d: usize,
    ff: usize,
    mask: Option<Mask>,
    /// The pre-activation `x·W₁ᵀ + b₁` of the last forward pass, for the backward.
    hidden: Arc<Mutex<Option<Arc<Vec<f32>>>>>,
}

/// Offsets of W₁, b₁, W₂ and b₂ in the flat parameters, and their total length.
fn offsets(d: usize, ff: usize) -> [usize; 5] {
    [0, ff * d, ff * d + ff, 2 * ff * d + ff, 2 * ff * d + ff + d]
}

/// The activation `mask(gelu(h))` of a pre-activation `h` (`[rows, ff]`).
fn activation(mask: Option<&Mask>, ff: usize, h: &[f32]) -> Vec<f32> {
    let mut f = vec![0f32; h.len()];
    f.par_chunks_mut(ROWS * ff).zip(h.par_chunks(ROWS * ff)).enumerate().for_each(|(c, (f, h))| {
        wide(
            #[inline(always)]
            || {
                f.iter_mut().zip(h).for_each(|(f, &h)| *f = gelu_and_slope(h).0);
                if let Some(m) = mask {
                    m.apply(c * ROWS * ff, f);
                }
            },
        );
    });
    f
}

/// Check the operands of a `(d, ff)` block; returns the number of rows.
fn rows_of(d: usize, ff: usize, x: &[f32], params: &[f32]) -> Result<usize> {
    if params.len() != offsets(d, ff)[4] || !x.len().is_multiple_of(d) {
        candle_core::bail!("feed-forward: {} parameters or {} inputs do not fit d {d}", params.len(), x.len());
    }
    Ok(x.len() / d)
}

impl CustomOp2 for FeedForward {
    fn name(&self) -> &'static str {
        "retrain-feed-forward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, params) = (slice(s1, l1, "feed-forward input")?, slice(s2, l2, "feed-forward parameters")?);
        let (d, ff) = (self.d, self.ff);
        let n = rows_of(d, ff, x, params)?;
        let o = offsets(d, ff);
        // x·W₁ᵀ with W₁ stored [ff, d]: element (k, j) of W₁ᵀ is at j·d + k.
        let mut h = bias_rows(n, &params[o[1]..o[2]]);
        gemm_into(&mut h, ff, (n, d, ff), x, (d, 1), &params[o[0]..o[1]], (1, d), true)?;
        let f = activation(self.mask.as_ref(), ff, &h);
        let mut y = bias_rows(n, &params[o[3]..o[4]]);
        gemm_into(&mut y, d, (n, ff, d), &f, (ff, 1), &params[o[2]..o[3]], (1, ff), true)?;
        *self.hidden.lock().expect("feed-forward lock") = Some(Arc::new(h));
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let Some(hidden) = self.hidden.lock().expect("feed-forward lock").clone() else {
            candle_core::bail!("feed-forward: backward before forward")
        };
        let op = FeedForwardBwd { d: self.d, ff: self.ff, mask: self.mask, hidden };
        let g = x.apply_op3_no_bwd(params, &grad.contiguous()?, &op)?;
        let len = x.elem_count();
        let dx = g.narrow(0, 0, len)?.reshape(x.shape())?;
        let dp = g.narrow(0, len, params.elem_count())?;
        Ok((Some(dx), Some(dp)))
    }
}

/// Backward of [`FeedForward`]: inputs `x`, the parameters and the output gradient; output
/// `[rows·d + params]`, the input's gradient then the parameters'.
struct FeedForwardBwd {
    d: usize,
    ff: usize,
    mask: Option<Mask>,
    hidden: Arc<Vec<f32>>,
}

impl CustomOp3 for FeedForwardBwd {
    fn name(&self) -> &'static str {
        "retrain-feed-forward-backward"
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
        let (x, params, dy) = (
            slice(s1, l1, "feed-forward input")?,
            slice(s2, l2, "feed-forward parameters")?,
            slice(s3, l3, "feed-forward gradient")?,
        );
        let (d, ff) = (self.d, self.ff);
        let n = rows_of(d, ff, x, params)?;
        let h = &self.hidden[..];
        if dy.len() != n * d || h.len() != n * ff {
            candle_core::bail!("feed-forward: gradient of {} or activation of {} for {n} rows", dy.len(), h.len());
        }
        let o = offsets(d, ff);
        let mut out = vec![0f32; n * d + o[4]];
        let (dx, dp) = out.split_at_mut(n * d);
        // Second layer: df = dy·W₂, then, in one pass over the pre-activation, the activation
        // f = mask(gelu(h)) and df through the dropout and the GELU (dh), each element's erf
        // computed once for both (recomputing f on its own took a second erf per element);
        // dW₂ = dyᵀ·f ([d, n] × [n, ff]), db₂ = column sums of dy. The price: f and dh, each
        // [n, ff], are alive together here (before, f was dropped before dh was made).
        let mut dh = gemm_new((n, d, ff), dy, (d, 1), &params[o[2]..o[3]], (ff, 1))?;
        let mut f = vec![0f32; h.len()];
        f.par_chunks_mut(ROWS * ff)
            .zip(dh.par_chunks_mut(ROWS * ff))
            .zip(h.par_chunks(ROWS * ff))
            .enumerate()
            .for_each(|(c, ((f, g), h))| {
                wide(
                    #[inline(always)]
                    || {
                        if let Some(m) = &self.mask {
                            m.apply(c * ROWS * ff, g);
                        }
                        for ((f, g), &h) in f.iter_mut().zip(g.iter_mut()).zip(h) {
                            let (v, slope) = gelu_and_slope(h);
                            *f = v;
                            *g *= slope;
                        }
                        if let Some(m) = &self.mask {
                            m.apply(c * ROWS * ff, f);
                        }
                    },
                );
            });
        gemm_into(&mut dp[o[2]..o[3]], ff, (d, n, ff), dy, (1, d), &f, (ff, 1), false)?;
        drop(f);
        column_sums_into(dy, d, &mut dp[o[3]..o[4]]);
        // First layer: dW₁ = dhᵀ·x ([ff, n] × [n, d]), db₁ = column sums of dh, dx = dh·W₁.
        gemm_into(&mut dp[o[0]..o[1]], d, (ff, n, d), &dh, (1, ff), x, (d, 1), false)?;
        column_sums_into(&dh, ff, &mut dp[o[1]..o[2]]);
        gemm_into(dx, d, (n, ff, d), &dh, (ff, 1), &params[o[0]..o[1]], (d, 1), false)?;
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::fused;
    use candle_core::{DType, Device, Var};

    fn max_diff(x: &Tensor, y: &Tensor) -> f32 {
        (x - y).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    fn vars() -> [Var; 5] {
        let d = Device::Cpu;
        [
            Var::from_tensor(&Tensor::randn(0f32, 1.0, (30, 7, 6), &d).unwrap()).unwrap(),
            Var::from_tensor(&Tensor::randn(0f32, 0.4, (20, 6), &d).unwrap()).unwrap(),
            Var::from_tensor(&Tensor::randn(0f32, 0.4, 20, &d).unwrap()).unwrap(),
            Var::from_tensor(&Tensor::randn(0f32, 0.3, (6, 20), &d).unwrap()).unwrap(),
            Var::from_tensor(&Tensor::randn(0f32, 0.3, 6, &d).unwrap()).unwrap(),
        ]
    }

    /// The same block from the separate ops: product, bias + GELU (+ dropout), product + bias.
    fn reference(v: &[Var; 5], dropout: Option<(f64, u64)>) -> Tensor {
        let (n, p, d) = v[0].dims3().unwrap();
        let x = v[0].reshape((n * p, d)).unwrap();
        let h = x.matmul(&v[1].t().unwrap()).unwrap();
        let f = match dropout {
            Some((q, seed)) => fused::dropout(&fused::bias_gelu(&h, &v[2]).unwrap(), q, seed).unwrap(),
            None => fused::bias_gelu(&h, &v[2]).unwrap(),
        };
        f.matmul(&v[3].t().unwrap()).unwrap().broadcast_add(&v[4]).unwrap().reshape((n, p, d)).unwrap()
    }

    #[test]
    fn equals_the_separate_ops_forward_and_backward() {
        let v = vars();
        let wt = Tensor::randn(0f32, 1.0, (30, 7, 6), &Device::Cpu).unwrap();
        for dropout in [None, Some((0.3, 17))] {
            let ours = feed_forward(&v[0], &v[1], &v[2], &v[3], &v[4], dropout).unwrap();
            let want = reference(&v, dropout);
            assert!(max_diff(&ours, &want) < 1e-5, "{dropout:?}: {}", max_diff(&ours, &want));
            let g1 = (&ours * &wt).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (&want * &wt).unwrap().sum_all().unwrap().backward().unwrap();
            for (i, var) in v.iter().enumerate() {
                let (a, b) = (g1.get(var.as_tensor()).unwrap(), g2.get(var.as_tensor()).unwrap());
                assert!(max_diff(a, b) < 1e-4, "{dropout:?} gradient {i}: {}", max_diff(a, b));
                assert!(a.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0, "gradient {i} is zero");
            }
        }
    }

    #[test]
    fn same_bits_whatever_the_thread_count() {
        let v = vars();
        let run = |t| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            pool.install(|| {
                let y = feed_forward(&v[0], &v[1], &v[2], &v[3], &v[4], Some((0.2, 5))).unwrap();
                let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                (flat(&y), flat(g.get(v[0].as_tensor()).unwrap()), flat(g.get(v[1].as_tensor()).unwrap()))
            })
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let v = vars();
        let x = Tensor::zeros((4, 5), DType::F32, &Device::Cpu).unwrap();
        assert!(feed_forward(&x, &v[1], &v[2], &v[3], &v[4], None).is_err());
        assert!(feed_forward(&v[0], &v[3], &v[2], &v[1], &v[4], None).is_err());
    }
}

//! One N-HiTS block as a single CPU op with its own backward pass.
//!
//! Built from candle ops, a block is a dozen graph nodes, and candle's backward gives every
//! node's gradient a fresh zero buffer plus an add: for a `[1792, 512]` activation that is
//! two passes over 3.7 MB per edge, about a quarter of an N-HiTS training step, while the
//! products themselves run as fast as PyTorch's. Here the block is one op over the packed
//! state `[residual | forecast]` (`[n, lookback + horizon]`) and the block's parameters (one
//! flat vector, each layer's `[out, in]` weight then its bias): it max-pools the residual
//! (ceil mode), runs the MLP (first linear, then linear + ReLU layers), splits the output
//! into backcast and forecast knots, interpolates the knots onto the horizon, and returns
//! `[residual − backcast | forecast + interpolated knots]` — the last block skips its
//! backcast, which nothing reads (a sixth of its products). The forward keeps the layer
//! activations for the backward, which computes every gradient with our own buffers. Products
//! run through [`gemm_into`], column sums over fixed row chunks, so results are identical
//! whatever the thread count. Dropout inside the block is not fused: a block with dropout in
//! training runs as candle ops (`nhits.rs`).

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::nn::fused::{column_sums_into, slice as data};
use crate::nn::matmul::{bias_rows, by_rows, gemm_into, gemm_new};

/// Rows per parallel task in row-wise loops.
const ROWS: usize = 64;

/// Shape of a block: what the op needs to read its flat parameters.
#[derive(Clone, Debug)]
pub struct BlockShape {
    /// Residual length (lookback).
    pub lookback: usize,
    /// Forecast length.
    pub horizon: usize,
    /// Max-pool kernel of the residual.
    pub kernel: usize,
    /// `(in, out)` of every linear layer in order: the first, the ReLU layers, the output.
    pub layers: Vec<(usize, usize)>,
    /// `[knots, horizon]` interpolation weights.
    pub interp: Vec<f32>,
    /// Skip the backcast (the last block's, which nothing reads): the output's residual half
    /// is then the input's, and the backcast rows of the output layer get zero gradient.
    pub forecast_only: bool,
}

impl BlockShape {
    /// Pooled residual length.
    pub fn pooled(&self) -> usize {
        self.lookback.div_ceil(self.kernel)
    }

    /// Forecast knots (the output layer's width minus the backcast).
    pub fn knots(&self) -> usize {
        self.interp.len() / self.horizon.max(1)
    }

    /// Offsets of each layer's weight and bias in the flat parameters, and their total.
    pub fn offsets(&self) -> (Vec<(usize, usize)>, usize) {
        let mut at = 0;
        let offs = self
            .layers
            .iter()
            .map(|&(i, o)| {
                let w = at;
                at += i * o + o;
                (w, w + i * o)
            })
            .collect();
        (offs, at)
    }
}

/// `block(state, params)` (see the module docs); `state` is `[n, lookback + horizon]`.
pub fn block(state: &Tensor, params: &Tensor, shape: &Arc<BlockShape>) -> Result<Tensor> {
    let op = BlockOp { shape: shape.clone(), saved: Arc::new(Mutex::new(None)) };
    state.contiguous()?.apply_op2(&params.contiguous()?, op)
}

/// What the forward pass keeps for the backward.
struct Saved {
    /// Pooled residual `[n, pooled]` (empty when the kernel is 1: the state is read instead).
    pooled: Vec<f32>,
    /// Output of every layer but the last, `[n, out]` each (ReLU applied where there is one).
    hidden: Vec<Vec<f32>>,
}

struct BlockOp {
    shape: Arc<BlockShape>,
    saved: Arc<Mutex<Option<Saved>>>,
}

impl BlockShape {
    /// Rows of the state and checks of both operands' sizes.
    fn check(&self, state: &[f32], params: &[f32]) -> Result<usize> {
        let width = self.lookback + self.horizon;
        if width == 0 || !state.len().is_multiple_of(width) {
            candle_core::bail!("N-HiTS block: state of {} elements is not [n, {width}]", state.len());
        }
        let (_, total) = self.offsets();
        if params.len() != total {
            candle_core::bail!("N-HiTS block: {} parameters, the layers need {total}", params.len());
        }
        Ok(state.len() / width)
    }

    /// Weight offset, bias offset and output rows computed of layer `i`: all of them, except
    /// the backcast rows of the output layer when `forecast_only`.
    fn rows(&self, i: usize, offs: &[(usize, usize)], din: usize, dout: usize) -> (usize, usize, usize) {
        let (w, b) = offs[i];
        let skip = if self.forecast_only && i == self.layers.len() - 1 { self.lookback } else { 0 };
        (w + skip * din, b + skip, dout - skip)
    }

    /// Forward pass: the new state and what the backward needs.
    fn forward(&self, state: &[f32], params: &[f32]) -> Result<(Vec<f32>, Saved)> {
        let n = self.check(state, params)?;
        let (l, h, width) = (self.lookback, self.horizon, self.lookback + self.horizon);
        let (offs, _) = self.offsets();
        let p = self.pooled();
        let pooled: Vec<f32> = if self.kernel > 1 {
            by_rows(n, p, |r, o| {
                let s = &state[r * width..r * width + l];
                for (j, o) in o.iter_mut().enumerate() {
                    let w = &s[j * self.kernel..((j + 1) * self.kernel).min(l)];
                    o.write(w.iter().copied().fold(f32::NEG_INFINITY, f32::max));
                }
            })
        } else {
            Vec::new()
        };
        let last = self.layers.len() - 1;
        let mut hidden: Vec<Vec<f32>> = Vec::with_capacity(last);
        let mut theta = Vec::new();
        for (i, &(din, dout)) in self.layers.iter().enumerate() {
            let (w_off, b_off, dout) = self.rows(i, &offs, din, dout);
            let (input, in_rs): (&[f32], usize) = match i {
                0 if self.kernel > 1 => (&pooled, p),
                0 => (state, width),
                _ => (&hidden[i - 1], din),
            };
            let mut out = bias_rows(n, &params[b_off..b_off + dout]);
            // x @ Wᵀ with W stored [out, in]: element (k, j) of Wᵀ is at j·in + k.
            gemm_into(&mut out, dout, (n, din, dout), input, (in_rs, 1), &params[w_off..], (1, din), true)?;
            if i > 0 && i < last {
                out.par_chunks_mut(ROWS * dout).for_each(|c| c.iter_mut().for_each(|v| *v = v.max(0.0)));
            }
            if i == last {
                theta = out;
            } else {
                hidden.push(out);
            }
        }
        // New state: residual − backcast, forecast + knots @ interp.
        let k = self.knots();
        let back = if self.forecast_only { 0 } else { l };
        let t_w = back + k;
        let mut next = by_rows(n, width, |r, o| {
            let (s, t) = (&state[r * width..(r + 1) * width], &theta[r * t_w..r * t_w + back]);
            if self.forecast_only {
                for (o, &s) in o[..l].iter_mut().zip(&s[..l]) {
                    o.write(s);
                }
            } else {
                for ((o, &s), &t) in o[..l].iter_mut().zip(&s[..l]).zip(t) {
                    o.write(s - t);
                }
            }
            for (o, &s) in o[l..].iter_mut().zip(&s[l..]) {
                o.write(s);
            }
        });
        gemm_into(&mut next[l..], width, (n, k, h), &theta[back..], (t_w, 1), &self.interp, (h, 1), true)?;
        Ok((next, Saved { pooled, hidden }))
    }

    /// Backward pass: gradient of the state (`[n, width]`) then of the parameters, in one
    /// buffer.
    fn backward(
        &self,
        state: &[f32],
        params: &[f32],
        saved: &Saved,
        grad: &[f32],
        need_state: bool,
    ) -> Result<Vec<f32>> {
        let n = self.check(state, params)?;
        let (l, h, width) = (self.lookback, self.horizon, self.lookback + self.horizon);
        if grad.len() != n * width {
            candle_core::bail!("N-HiTS block: gradient of {} elements for [{n}, {width}]", grad.len());
        }
        let (offs, total) = self.offsets();
        let (k, p) = (self.knots(), self.pooled());
        // Zero-filled: the skipped backcast rows' gradients stay zero.
        let mut out = vec![0f32; n * width + total];
        let (d_state, d_params) = out.split_at_mut(n * width);
        // dθ = [−g_residual | g_forecast @ interpᵀ] (the knots part alone when forecast_only).
        let knots_grad = gemm_new((n, h, k), &grad[l..], (width, 1), &self.interp, (1, h))?;
        let mut d = if self.forecast_only {
            knots_grad
        } else {
            by_rows(n, l + k, |r, d| {
                for (d, &g) in d[..l].iter_mut().zip(&grad[r * width..r * width + l]) {
                    d.write(-g);
                }
                for (d, &g) in d[l..].iter_mut().zip(&knots_grad[r * k..(r + 1) * k]) {
                    d.write(g);
                }
            })
        };
        let last = self.layers.len() - 1;
        for i in (0..=last).rev() {
            let (din, dout) = self.layers[i];
            let (w_off, b_off, dout) = self.rows(i, &offs, din, dout);
            if i > 0 && i < last {
                // Through the ReLU: the gradient where the output was positive.
                let y = &saved.hidden[i];
                d.par_chunks_mut(ROWS * dout)
                    .zip(y.par_chunks(ROWS * dout))
                    .for_each(|(d, y)| d.iter_mut().zip(y).for_each(|(d, &y)| *d = if y > 0.0 { *d } else { 0.0 }));
            }
            let (input, in_rs): (&[f32], usize) = match i {
                0 if self.kernel > 1 => (&saved.pooled, p),
                0 => (state, width),
                _ => (&saved.hidden[i - 1], din),
            };
            // dW = dᵀ @ input ([out, n] × [n, in]); db = column sums of d.
            gemm_into(
                &mut d_params[w_off..w_off + dout * din],
                din,
                (dout, n, din),
                &d,
                (1, dout),
                input,
                (in_rs, 1),
                false,
            )?;
            column_sums_into(&d, dout, &mut d_params[b_off..b_off + dout]);
            if i == 0 && !need_state {
                break;
            }
            // d_input = d @ W ([n, out] × [out, in]).
            d = gemm_new((n, dout, din), &d, (dout, 1), &params[w_off..], (din, 1))?;
        }
        if need_state {
            // Residual: its own gradient plus the pooled input's routed to each window's
            // first maximum (PyTorch's rule); forecast: passed through.
            let pool = self.kernel > 1;
            d_state.par_chunks_mut(ROWS * width).enumerate().for_each(|(c, o)| {
                for (r, o) in o.chunks_exact_mut(width).enumerate() {
                    let row = c * ROWS + r;
                    let g = &grad[row * width..(row + 1) * width];
                    o.copy_from_slice(g);
                    let dp = &d[row * if pool { p } else { l }..];
                    if !pool {
                        for (o, &v) in o[..l].iter_mut().zip(dp) {
                            *o += v;
                        }
                        continue;
                    }
                    let s = &state[row * width..row * width + l];
                    for (j, &v) in dp[..p].iter().enumerate() {
                        let lo = j * self.kernel;
                        let win = &s[lo..(lo + self.kernel).min(l)];
                        let mut best = 0;
                        for (t, &x) in win.iter().enumerate() {
                            if x > win[best] {
                                best = t;
                            }
                        }
                        o[lo + best] += v;
                    }
                }
            });
        }
        Ok(out)
    }
}

impl CustomOp2 for BlockOp {
    fn name(&self) -> &'static str {
        "retrain-nhits-block"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (state, params) = (data(s1, l1, "state")?, data(s2, l2, "parameters")?);
        let (next, saved) = self.shape.forward(state, params)?;
        *self.saved.lock().expect("N-HiTS block lock") = Some(saved);
        Ok((CpuStorage::F32(next), l1.shape().clone()))
    }

    fn bwd(
        &self,
        state: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let op = BlockBwd { shape: self.shape.clone(), saved: self.saved.clone(), need_state: state.track_op() };
        let g = state.apply_op3_no_bwd(params, &grad.contiguous()?, &op)?;
        let len = state.elem_count();
        let d_state = g.narrow(0, 0, len)?.reshape(state.shape())?;
        let d_params = g.narrow(0, len, params.elem_count())?;
        Ok((state.track_op().then_some(d_state), Some(d_params)))
    }
}

/// Backward of [`BlockOp`]: output `[n·width + params]`, the state's gradient then the
/// parameters'.
struct BlockBwd {
    shape: Arc<BlockShape>,
    saved: Arc<Mutex<Option<Saved>>>,
    need_state: bool,
}

impl CustomOp3 for BlockBwd {
    fn name(&self) -> &'static str {
        "retrain-nhits-block-backward"
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
        let (state, params, grad) = (data(s1, l1, "state")?, data(s2, l2, "parameters")?, data(s3, l3, "gradient")?);
        let guard = self.saved.lock().expect("N-HiTS block lock");
        let Some(saved) = guard.as_ref() else { candle_core::bail!("N-HiTS block: backward before forward") };
        let out = self.shape.backward(state, params, saved, grad, self.need_state)?;
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

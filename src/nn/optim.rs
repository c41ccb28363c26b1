//! AdamW with gradient clipping by global norm, fused into one parallel pass per variable on
//! CPU.
//!
//! candle-nn's `AdamW` updates each variable with about fourteen tensor ops (each a fresh
//! buffer and a pass over the weights), and clipping by global norm took two more per
//! gradient; for N-HiTS (3.3 M weights) that was 6 % of a training step. Here the squared
//! norm is summed in f64 over fixed chunks (added in order, so identical whatever the thread
//! count), the clip factor is folded into the update, and each variable is updated in place —
//! moments, bias correction, decoupled weight decay — in one rayon pass over fixed chunks.
//! Off CPU or for other dtypes, candle-nn's `AdamW` runs with clipping as separate ops.

use std::cell::RefCell;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Result, Storage, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// AdamW (PyTorch's defaults: β 0.9 / 0.999, ε 1e-8) with optional clipping by global norm.
pub struct Adam {
    params: ParamsAdamW,
    inner: Inner,
}

enum Inner {
    /// Our fused update: each variable with its first and second moments.
    Fused { vars: Vec<Var>, moments: Vec<(Vec<f32>, Vec<f32>)>, step: i32 },
    /// candle-nn's optimizer (CUDA, non-f32).
    Candle { vars: Vec<Var>, opt: AdamW },
}

impl Adam {
    /// An optimizer of `vars` with learning rate `lr` and decoupled weight decay.
    pub fn new(vars: Vec<Var>, lr: f64, weight_decay: f64) -> Result<Self> {
        let params = ParamsAdamW { lr, weight_decay, ..Default::default() };
        let fused = vars.iter().all(|v| v.device().is_cpu() && v.dtype() == DType::F32);
        let inner = if fused {
            let moments = vars.iter().map(|v| (vec![0f32; v.elem_count()], vec![0f32; v.elem_count()])).collect();
            Inner::Fused { vars, moments, step: 0 }
        } else {
            Inner::Candle { opt: AdamW::new(vars.clone(), params.clone())?, vars }
        };
        Ok(Adam { params, inner })
    }

    /// Set the learning rate of the next steps.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
        if let Inner::Candle { opt, .. } = &mut self.inner {
            opt.set_learning_rate(lr);
        }
    }

    /// One update from `grads`, first scaling every gradient by `clip / norm` when their
    /// global norm exceeds `clip`. Variables without a gradient are left alone.
    pub fn step(&mut self, grads: &mut GradStore, clip: Option<f64>) -> Result<()> {
        match &mut self.inner {
            Inner::Candle { vars, opt } => {
                if let Some(max) = clip {
                    clip_separately(grads, vars, max)?;
                }
                opt.step(grads)
            }
            Inner::Fused { vars, moments, step } => {
                *step += 1;
                let scale = match clip {
                    Some(max) => {
                        let mut sq = 0.0;
                        for v in vars.iter() {
                            if let Some(g) = grads.get(v.as_tensor()) {
                                sq += squared_norm(g)?;
                            }
                        }
                        let norm = sq.sqrt();
                        if norm > max { max / (norm + 1e-6) } else { 1.0 }
                    }
                    None => 1.0,
                };
                let p = &self.params;
                let (b1, b2) = (p.beta1, p.beta2);
                let update = Update {
                    lr: p.lr as f32,
                    decay: (1.0 - p.lr * p.weight_decay) as f32,
                    b1: b1 as f32,
                    b2: b2 as f32,
                    scale_m: (1.0 / (1.0 - b1.powi(*step))) as f32,
                    scale_v: (1.0 / (1.0 - b2.powi(*step))) as f32,
                    eps: p.eps as f32,
                    grad_scale: scale as f32,
                };
                for (v, (m, s)) in vars.iter().zip(moments.iter_mut()) {
                    if let Some(g) = grads.get(v.as_tensor()) {
                        // candle's gradients are sums, hence contiguous; copy any other.
                        let g = if g.is_contiguous() { g.clone() } else { g.contiguous()? };
                        v.as_tensor().inplace_op2(&g, &Step { update, moments: RefCell::new((m, s)) })?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Clipping as tensor ops (the candle-nn path).
fn clip_separately(grads: &mut GradStore, vars: &[Var], max: f64) -> Result<()> {
    let mut sq = 0.0;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        }
    }
    let norm = sq.sqrt();
    if norm > max {
        let s = max / (norm + 1e-6);
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * s)?);
            }
        }
    }
    Ok(())
}

/// Σ g² of an f32 CPU tensor in f64, over fixed chunks added in order.
fn squared_norm(g: &Tensor) -> Result<f64> {
    let (storage, layout) = g.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(data)) = &*storage else {
        candle_core::bail!("retrain-adam: f32 CPU gradient expected");
    };
    let Some((lo, hi)) = layout.contiguous_offsets() else {
        drop(storage);
        return g.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>();
    };
    let parts: Vec<f64> =
        data[lo..hi].par_chunks(CHUNK).map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>()).collect();
    Ok(parts.iter().sum())
}

/// Scalars of one AdamW step.
#[derive(Clone, Copy)]
struct Update {
    lr: f32,
    /// `1 − lr · weight_decay`.
    decay: f32,
    b1: f32,
    b2: f32,
    /// Bias corrections `1 / (1 − βᵗ)`.
    scale_m: f32,
    scale_v: f32,
    eps: f32,
    /// Clip factor applied to the gradient.
    grad_scale: f32,
}

impl Update {
    /// New weight from weight `w`, gradient `g` and the moments (updated in place).
    #[inline(always)]
    fn apply(&self, w: f32, g: f32, m: &mut f32, v: &mut f32) -> f32 {
        let g = g * self.grad_scale;
        *m = *m * self.b1 + g * (1.0 - self.b1);
        *v = *v * self.b2 + g * g * (1.0 - self.b2);
        let adjusted = (*m * self.scale_m) / ((*v * self.scale_v).sqrt() + self.eps);
        w * self.decay - adjusted * self.lr
    }
}

/// The in-place op updating one variable (its moments held here).
struct Step<'a> {
    update: Update,
    moments: RefCell<(&'a mut Vec<f32>, &'a mut Vec<f32>)>,
}

impl InplaceOp2 for Step<'_> {
    fn name(&self) -> &'static str {
        "retrain-adam"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let (CpuStorage::F32(w), CpuStorage::F32(g)) = (s1, s2) else {
            candle_core::bail!("retrain-adam: f32 weight and gradient expected");
        };
        let Some((lo, hi)) = l1.contiguous_offsets() else { candle_core::bail!("retrain-adam: weight not contiguous") };
        if l1.dims() != l2.dims() {
            candle_core::bail!("retrain-adam: gradient {:?} for weight {:?}", l2.dims(), l1.dims());
        }
        let w = &mut w[lo..hi];
        let mut guard = self.moments.borrow_mut();
        let (m, v) = &mut *guard;
        if m.len() != w.len() {
            candle_core::bail!("retrain-adam: {} moments for {} weights", m.len(), w.len());
        }
        let u = self.update;
        if let Some((a, b)) = l2.contiguous_offsets() {
            let g = &g[a..b];
            w.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
                .for_each(|((w, g), (m, v))| {
                    for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                        *w = u.apply(*w, g, m, v);
                    }
                });
        } else {
            candle_core::bail!("retrain-adam: gradient not contiguous");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two variables (one used transposed, as a layer's weight is), a loss, and its gradients.
    fn setup() -> (Vec<Var>, impl Fn(&[Var]) -> GradStore) {
        let d = Device::Cpu;
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, 3), &d).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 5, &d).unwrap()).unwrap();
        let x = Tensor::randn(0f32, 1.0, (7, 3), &d).unwrap();
        let y = Tensor::randn(0f32, 1.0, (7, 5), &d).unwrap();
        let grads = move |vars: &[Var]| {
            let pred = x.matmul(&vars[0].t().unwrap()).unwrap().broadcast_add(vars[1].as_tensor()).unwrap();
            (pred - &y).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap()
        };
        (vec![w, b], grads)
    }

    fn copies(vars: &[Var]) -> Vec<Var> {
        vars.iter().map(|v| Var::from_tensor(&v.as_tensor().copy().unwrap()).unwrap()).collect()
    }

    fn max_diff(a: &[Var], b: &[Var]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(a, b)| {
                (a.as_tensor() - b.as_tensor()).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap()
            })
            .map(|t| t.to_scalar::<f32>().unwrap())
            .fold(0.0, f32::max)
    }

    #[test]
    fn matches_candle_adamw_with_and_without_clipping() {
        for (clip, decay) in [(None, 0.0), (Some(0.5), 0.01), (Some(1e6), 0.1)] {
            let (ours, grads) = setup();
            let theirs = copies(&ours);
            let mut a = Adam::new(ours.clone(), 0.01, decay).unwrap();
            let params = ParamsAdamW { lr: 0.01, weight_decay: decay, ..Default::default() };
            let mut b = AdamW::new(theirs.clone(), params).unwrap();
            for step in 0..5 {
                a.set_learning_rate(0.01 / (step + 1) as f64);
                b.set_learning_rate(0.01 / (step + 1) as f64);
                a.step(&mut grads(&ours), clip).unwrap();
                let mut g = grads(&theirs);
                if let Some(max) = clip {
                    clip_separately(&mut g, &theirs, max).unwrap();
                }
                b.step(&g).unwrap();
                assert!(max_diff(&ours, &theirs) < 1e-5, "step {step} clip {clip:?}: {}", max_diff(&ours, &theirs));
            }
            assert!(max_diff(&ours, &copies(&setup().0)) > 1e-3, "the weights moved");
        }
    }

    #[test]
    fn same_bits_whatever_the_thread_count() {
        let d = Device::Cpu;
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let w =
                    Var::from_tensor(&Tensor::arange(0f32, 70_000.0, &d).unwrap().affine(1e-4, -3.0).unwrap()).unwrap();
                let mut a = Adam::new(vec![w.clone()], 0.1, 0.01).unwrap();
                for _ in 0..3 {
                    let mut g =
                        (w.as_tensor().sin().unwrap() * w.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
                    a.step(&mut g, Some(1.0)).unwrap();
                }
                w.as_tensor().to_vec1::<f32>().unwrap()
            })
        };
        assert_eq!(run(1), run(3));
    }
}

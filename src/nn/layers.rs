//! Building blocks shared by the networks: PyTorch-initialised linear layers, seeded dropout,
//! batch and layer normalisation written with ops that have a backward pass.
//!
//! Written here rather than taken from candle-nn where candle 0.11 falls short for training:
//! `candle_nn::LayerNorm` yields no gradient on contiguous input, candle's dropout draws from
//! the unseedable CPU generator, and BatchNorm must keep running statistics that are saved
//! with the weights (they live in the same var map under names holding [`RUNNING`], which the
//! optimizer skips). On CPU in f32, dropout, bias + GELU, BatchNorm in training and every
//! linear layer's bias (and ReLU) run as the fused ops of `fused.rs` / `matmul.rs`; elsewhere
//! (CUDA) as candle ops.

use candle_core::{D, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::nn::fused;
use crate::nn::matmul::{linear as linear_op, linear_relu, matmul};
use crate::rng::Rng;

/// Marker in the names of non-trained state (BatchNorm running statistics).
pub const RUNNING: &str = "running_";

/// `nn.Linear` with PyTorch's default initialisation (U(±1/√fan_in) for weight and bias).
/// Inputs of any rank are flattened to one matrix product (faster on CPU than candle-nn's
/// broadcast batched product).
#[derive(Clone, Debug)]
pub struct Linear {
    /// `[in, out]`, transposed once at build time.
    weight_t: Tensor,
    bias: Tensor,
}

/// Build a [`Linear`] (`weight` `[out, in]` and `bias` `[out]` as PyTorch names them).
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let b = 1.0 / (in_dim as f64).sqrt();
    let init = Init::Uniform { lo: -b, up: b };
    let w = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let bias = vb.get_with_hints(out_dim, "bias", init)?;
    Ok(Linear { weight_t: w.t()?, bias })
}

impl Linear {
    /// A layer over existing tensors: `weight` `[out, in]` and `bias` `[out]` (e.g. views of
    /// a larger variable).
    pub fn from_parts(weight: &Tensor, bias: Tensor) -> Result<Linear> {
        Ok(Linear { weight_t: weight.t()?, bias })
    }

    /// The weight `[out, in]` as PyTorch stores it (a view) and the bias.
    pub fn parts(&self) -> Result<(Tensor, &Tensor)> {
        Ok((self.weight_t.t()?, &self.bias))
    }

    /// `x @ Wᵀ + b` over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.over_rows(x, |m| linear_op(m, &self.weight_t, &self.bias))
    }

    /// `relu(x @ Wᵀ + b)`, the ReLU fused into the product (forward and backward).
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.over_rows(x, |m| linear_relu(m, &self.weight_t, &self.bias))
    }

    /// `gelu(x @ Wᵀ + b)` (exact GELU), with the bias and activation fused on CPU.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        if !fused::available(x) {
            return self.forward(x)?.gelu_erf();
        }
        self.over_rows(x, |m| fused::bias_gelu(&matmul(m, &self.weight_t)?, &self.bias))
    }

    /// Apply `f` to `x` flattened to one `[rows, in]` matrix and give its `[rows, out]`
    /// result `x`'s leading dimensions back.
    fn over_rows(&self, x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
        let dims = x.dims();
        let (last, lead) = dims.split_last().expect("linear input has a dimension");
        let rows: usize = lead.iter().product();
        let y = f(&x.reshape((rows, *last))?)?;
        let mut out = lead.to_vec();
        out.push(self.bias.dim(0)?);
        y.reshape(out)
    }

    /// `x @ [W₁; W₂; …]ᵀ + [b₁; b₂; …]`: several layers over the same input in one product,
    /// their outputs side by side in the last dimension.
    pub fn forward_concat(parts: &[&Linear], x: &Tensor) -> Result<Tensor> {
        let w = Tensor::cat(&parts.iter().map(|l| &l.weight_t).collect::<Vec<_>>(), 1)?;
        let b = Tensor::cat(&parts.iter().map(|l| &l.bias).collect::<Vec<_>>(), 0)?;
        Linear { weight_t: w, bias: b }.forward(x)
    }
}

/// Randomness of one forward pass: `None` = evaluation (no dropout, running statistics).
pub struct Train<'a> {
    /// Generator of the dropout masks.
    pub rng: &'a mut Rng,
}

/// Inverted dropout with a mask from our seeded generator.
pub fn dropout(x: &Tensor, p: f64, train: &mut Option<Train<'_>>) -> Result<Tensor> {
    let Some(t) = train else { return Ok(x.clone()) };
    if p <= 0.0 {
        return Ok(x.clone());
    }
    if fused::available(x) {
        return fused::dropout(x, p, t.rng.next_u64());
    }
    let keep = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = (0..x.elem_count()).map(|_| if t.rng.next_f64() < p { 0.0 } else { keep }).collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    x.mul(&mask)
}

/// Normalisation over the last dimension (`nn.LayerNorm(d)`), differentiable.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Weight 1, bias 0, eps 1e-5 as in PyTorch.
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(LayerNorm {
            weight: vb.get_with_hints(dim, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", Init::Const(0.0))?,
            eps: 1e-5,
        })
    }

    /// Normalise `x` (`[…, dim]`).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        xn.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// `nn.BatchNorm1d(dim)` applied to `[n, len, dim]` (statistics over `n` and `len`), momentum
/// 0.1, eps 1e-5; running statistics are updated in training passes.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl BatchNorm {
    /// Weight 1, bias 0, running mean 0 and variance 1, as in PyTorch.
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let running_mean = Var::from_tensor(&vb.get_with_hints(dim, "running_mean", Init::Const(0.0))?)?;
        let running_var = Var::from_tensor(&vb.get_with_hints(dim, "running_var", Init::Const(1.0))?)?;
        Ok(BatchNorm {
            weight: vb.get_with_hints(dim, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", Init::Const(0.0))?,
            running_mean,
            running_var,
            eps: 1e-5,
            momentum: 0.1,
        })
    }

    /// Move the running statistics towards a batch's mean and biased variance over `count`
    /// rows (the variance made unbiased first, as PyTorch does).
    fn update_running(&self, mean: &Tensor, var: &Tensor, count: usize) -> Result<()> {
        let m = self.momentum;
        let count = count as f64;
        let unbiased = (var * (count / (count - 1.0).max(1.0)))?;
        let new_mean = ((self.running_mean.as_tensor() * (1.0 - m))? + (mean * m)?)?;
        let new_var = ((self.running_var.as_tensor() * (1.0 - m))? + (unbiased * m)?)?;
        self.running_mean.set(&new_mean)?;
        self.running_var.set(&new_var)
    }

    /// Normalise the residual sum `x + dropout(a, p)` (both `[n, len, dim]`); in training on
    /// CPU as one fused op (same mask as [`dropout`] would draw), else as the three layers.
    pub fn forward_residual(&self, x: &Tensor, a: &Tensor, p: f64, train: &mut Option<Train<'_>>) -> Result<Tensor> {
        if let Some(t) = train
            && fused::available(x)
        {
            let mask = (p > 0.0).then(|| (p, t.rng.next_u64()));
            let count = x.elem_count() / x.dim(D::Minus1)?.max(1);
            let (y, mean, var) = fused::residual_batch_norm(x, a, &self.weight, &self.bias, self.eps, mask)?;
            self.update_running(&Tensor::new(mean, x.device())?, &Tensor::new(var, x.device())?, count)?;
            return Ok(y);
        }
        let is_train = train.is_some();
        self.forward(&(x + dropout(a, p, train)?)?, is_train)
    }

    /// Normalise `x` (`[n, len, dim]`): batch statistics in training, running ones otherwise.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train && fused::available(x) {
            let count = x.elem_count() / x.dim(D::Minus1)?.max(1);
            let (y, mean, var) = fused::batch_norm(x, &self.weight, &self.bias, self.eps)?;
            self.update_running(&Tensor::new(mean, x.device())?, &Tensor::new(var, x.device())?, count)?;
            return Ok(y);
        }
        let (mean, var) = if train {
            let (n, len, _) = x.dims3()?;
            let count = (n * len) as f64;
            let mean = x.mean_keepdim((0, 1))?;
            let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim((0, 1))?;
            self.update_running(&mean.detach().flatten_all()?, &var.detach().flatten_all()?, count as usize)?;
            (mean, var)
        } else {
            (self.running_mean.as_tensor().reshape((1, 1, ()))?, self.running_var.as_tensor().reshape((1, 1, ()))?)
        };
        let xn = x.broadcast_sub(&mean)?.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        xn.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::init::SeededVars;
    use candle_core::Device;

    #[test]
    fn batch_norm_normalises_and_tracks_running_statistics() {
        let vars = SeededVars::new(1);
        let bn = BatchNorm::new(2, vars.builder(&Device::Cpu).pp("bn")).unwrap();
        let x = Tensor::from_vec(vec![1f32, 10., 3., 20., 5., 30., 7., 40.], (2, 2, 2), &Device::Cpu).unwrap();
        let y = bn.forward(&x, true).unwrap();
        let m = y.mean_keepdim((0, 1)).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(m.iter().all(|v| v.abs() < 1e-5));
        // Running mean after one step: 0.9·0 + 0.1·batch mean (4 and 25).
        let rm = bn.running_mean.as_tensor().to_vec1::<f32>().unwrap();
        assert!((rm[0] - 0.4).abs() < 1e-6 && (rm[1] - 2.5).abs() < 1e-6);
        let names: Vec<String> = vars.named_vars().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"bn.running_var".to_string()));
    }

    #[test]
    fn layer_norm_has_gradients_on_contiguous_input() {
        let vars = SeededVars::new(1);
        let ln = LayerNorm::new(3, vars.builder(&Device::Cpu)).unwrap();
        let x = Tensor::from_vec(vec![1f32, 2., 4., -1., 0., 3.], (2, 3), &Device::Cpu).unwrap();
        let y = ln.forward(&x).unwrap();
        let loss = (y * Tensor::from_vec(vec![1f32, -2., 3., 0.5, 1., -1.], (2, 3), &Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        for (name, v) in vars.named_vars() {
            let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
            assert!(g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0, "{name}");
        }
    }

    #[test]
    fn dropout_is_seeded_and_off_in_evaluation() {
        let x = Tensor::ones((4, 50), candle_core::DType::F32, &Device::Cpu).unwrap();
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut t = Some(Train { rng: &mut rng });
            dropout(&x, 0.5, &mut t).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        assert!(run(3).iter().all(|&v| v == 0.0 || v == 2.0));
        assert_eq!(dropout(&x, 0.5, &mut None).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 200.0);
    }
}

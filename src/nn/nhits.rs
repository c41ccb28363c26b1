//! N-HiTS (Challu et al., AAAI 2023) with the defaults of neuralforecast's `NHITS`: three
//! stacks of one block, each block max-pools its input at its own rate (kernels 2, 2, 1, ceil
//! mode), an MLP (first linear, then `[linear, ReLU]` per hidden layer, 512 wide) emits a full
//! backcast and a few forecast knots (horizon / 4, / 2, / 1), the knots are linearly
//! interpolated onto the horizon (PyTorch's `interpolate(mode="linear")`, a constant matrix
//! here because candle has no interpolation with a backward pass), the backcast is removed
//! from the residual passed on, and the forecast starts from the last observed value.
//! Channels are independent series through one shared network. Each block's weights are one
//! flat variable (`blocks.{i}.params`: every layer's `[out, in]` weight then its bias), so on
//! CPU the whole block runs as one fused op with its own backward (`nhits_block.rs`).
//!
//! Exogenous inputs (neuralforecast's historical exogenous variables, `hist_exog_list`):
//! `exog_channels` extra input series that are read but not forecast. Each block's MLP takes
//! them flattened over the lookback, unpooled and unscaled, beside its pooled target series
//! (as neuralforecast concatenates `hist_exog` to the pooled `insample_y`); every target
//! channel of a sample sees the same exogenous window. With exogenous inputs the blocks run
//! as candle ops (the fused CPU block knows the pooled target series only).
//!
//! Shapes: input `[batch, lookback, channels + exog_channels]` (targets first) → forecast
//! `[batch, horizon, channels]`.

use std::sync::Arc;

use candle_core::{Device, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::nn::fused;
use crate::nn::layers::{Linear, Train, dropout};
use crate::nn::matmul::matmul;
use crate::nn::nhits_block::{self, BlockShape};
use crate::nn::revin::RevIn;

/// N-HiTS hyperparameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NhitsConfig {
    /// Input steps.
    pub lookback: usize,
    /// Forecast steps.
    pub horizon: usize,
    /// Input channels (each is forecast).
    pub channels: usize,
    /// Historical exogenous channels after them: read over the lookback, not forecast
    /// (default 0).
    pub exog_channels: usize,
    /// Max-pool kernel of each block's input (one entry per stack).
    pub pool_kernels: Vec<usize>,
    /// Forecast knots per block = horizon / this (at least 1).
    pub freq_downsample: Vec<usize>,
    /// Width of the MLP layers.
    pub hidden: usize,
    /// Hidden `[linear, ReLU]` layers after the first linear.
    pub mlp_layers: usize,
    /// Dropout after each hidden activation.
    pub dropout: f64,
    /// Per-window input scaling (neuralforecast's `scaler_type`): `identity` (its default) or
    /// `standard` (each series of each window centred and scaled by its own mean and standard
    /// deviation over the lookback, the forecast scaled back — RevIN without affine weights).
    pub scaler: Scaler,
}

/// Per-window scaling of N-HiTS inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaler {
    /// Raw inputs.
    #[default]
    Identity,
    /// Mean / standard deviation of each window's lookback.
    Standard,
}

impl Default for NhitsConfig {
    /// Defaults for the trading use: hidden 128, 3 stacks of one block.
    fn default() -> Self {
        NhitsConfig {
            lookback: 64,
            horizon: 1,
            channels: 1,
            exog_channels: 0,
            pool_kernels: vec![2, 2, 1],
            freq_downsample: vec![4, 2, 1],
            hidden: 128,
            mlp_layers: 3,
            dropout: 0.0,
            scaler: Scaler::Identity,
        }
    }
}

impl NhitsConfig {
    /// neuralforecast's `NHITS` defaults (hidden 512) for a lookback, horizon and channels.
    pub fn paper(lookback: usize, horizon: usize, channels: usize) -> Self {
        NhitsConfig { lookback, horizon, channels, hidden: 512, ..Default::default() }
    }

    /// Check the values; the error names the field.
    pub fn validate(&self) -> crate::error::Result<()> {
        use crate::error::Error;
        crate::config::at_least_one(&[
            ("lookback", self.lookback),
            ("horizon", self.horizon),
            ("channels", self.channels),
            ("hidden", self.hidden),
        ])?;
        if self.pool_kernels.is_empty() || self.pool_kernels.contains(&0) {
            return Err(Error::param("pool_kernels", "needs one kernel ≥ 1 per stack"));
        }
        if self.freq_downsample.len() != self.pool_kernels.len() || self.freq_downsample.contains(&0) {
            return Err(Error::param("freq_downsample", "needs one factor ≥ 1 per stack (as many as pool_kernels)"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::param("dropout", format!("{} is not in [0, 1)", self.dropout)));
        }
        Ok(())
    }
}

/// `[knots, horizon]` weights of PyTorch's linear interpolation (`align_corners=False`).
pub fn interpolation_matrix(knots: usize, horizon: usize) -> Vec<f32> {
    let mut m = vec![0f32; knots * horizon];
    let scale = knots as f64 / horizon as f64;
    for i in 0..horizon {
        let src = (scale * (i as f64 + 0.5) - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(knots - 1);
        let i1 = if i0 < knots - 1 { i0 + 1 } else { i0 };
        let l1 = src - i0 as f64;
        m[i0 * horizon + i] += (1.0 - l1) as f32;
        m[i1 * horizon + i] += l1 as f32;
    }
    m
}

/// One block: pool → MLP → (backcast, forecast knots) → interpolation. Its weights are one
/// flat variable (`params`: each layer's `[out, in]` weight then its bias, layers in order),
/// so that on CPU the whole block is one fused op (`nhits_block.rs`); elsewhere the layers
/// are views of it run as candle ops.
#[derive(Clone, Debug)]
struct Block {
    params: Tensor,
    shape: Arc<BlockShape>,
    layers: Vec<Linear>,
    out: Linear,
    interp: Tensor,
}

impl Block {
    fn new(cfg: &NhitsConfig, stack: usize, vb: VarBuilder) -> Result<Self> {
        let kernel = cfg.pool_kernels[stack];
        let pooled = cfg.lookback.div_ceil(kernel);
        let knots = (cfg.horizon / cfg.freq_downsample[stack]).max(1);
        let mut dims = vec![(pooled + cfg.exog_channels * cfg.lookback, cfg.hidden)];
        dims.extend(std::iter::repeat_n((cfg.hidden, cfg.hidden), cfg.mlp_layers));
        dims.push((cfg.hidden, cfg.lookback + knots));
        let shape = BlockShape {
            lookback: cfg.lookback,
            horizon: cfg.horizon,
            kernel,
            layers: dims.clone(),
            interp: interpolation_matrix(knots, cfg.horizon),
            forecast_only: stack + 1 == cfg.pool_kernels.len(),
        };
        let (offsets, total) = shape.offsets();
        let fresh = !vb.contains_tensor("params");
        let params = vb.get_with_hints(total, "params", Init::Uniform { lo: -1.0, up: 1.0 })?;
        if fresh {
            // PyTorch's nn.Linear initialisation, U(±1/√in) for weight and bias: the draws
            // are U(±1), scaled per layer.
            for (&(din, dout), &(w, _)) in dims.iter().zip(&offsets) {
                let piece = (params.narrow(0, w, din * dout + dout)? / (din as f64).sqrt())?;
                params.slice_set(&piece, 0, w)?;
            }
        }
        let mut linears = dims
            .iter()
            .zip(&offsets)
            .map(|(&(din, dout), &(w, b))| {
                Linear::from_parts(&params.narrow(0, w, din * dout)?.reshape((dout, din))?, params.narrow(0, b, dout)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let out = linears.pop().expect("an output layer");
        let interp = Tensor::from_vec(shape.interp.clone(), (knots, cfg.horizon), vb.device())?;
        Ok(Block { params, shape: Arc::new(shape), layers: linears, out, interp })
    }

    /// `x`: `[n, lookback]` (and `exog`: `[n, exog_channels × lookback]`) → (backcast
    /// `[n, lookback]`, forecast `[n, horizon]`), as candle ops.
    fn forward(
        &self,
        x: &Tensor,
        exog: Option<&Tensor>,
        p: f64,
        train: &mut Option<Train<'_>>,
    ) -> Result<(Tensor, Tensor)> {
        let n = x.dim(0)?;
        let (kernel, lookback) = (self.shape.kernel, self.shape.lookback);
        let pooled = if kernel > 1 {
            // Ceil mode: −∞ fills the partial window without changing its max or taking any
            // of its gradient. A max over [n, windows, kernel] rather than candle's
            // `max_pool2d`, whose backward scales the gradient by 1 / kernel (candle 0.11
            // multiplies by the share of maxima in the window instead of dividing by it).
            let pad = lookback.div_ceil(kernel) * kernel - lookback;
            let x = if pad > 0 {
                Tensor::cat(&[x, &Tensor::full(f32::NEG_INFINITY, (n, pad), x.device())?.to_dtype(x.dtype())?], 1)?
            } else {
                x.clone()
            };
            x.reshape((n, lookback.div_ceil(kernel), kernel))?.max(2)?
        } else {
            x.clone()
        };
        let input = match exog {
            Some(e) => Tensor::cat(&[&pooled, e], 1)?,
            None => pooled,
        };
        let mut h = self.layers[0].forward(&input)?;
        for layer in &self.layers[1..] {
            h = dropout(&layer.forward_relu(&h)?, p, train)?;
        }
        let theta = self.out.forward(&h)?;
        let backcast = theta.narrow(1, 0, lookback)?;
        let knots = theta.narrow(1, lookback, self.interp.dim(0)?)?;
        Ok((backcast, matmul(&knots, &self.interp)?))
    }
}

/// An N-HiTS network.
#[derive(Clone, Debug)]
pub struct Nhits {
    cfg: NhitsConfig,
    blocks: Vec<Block>,
    flip: Tensor,
    scaler: Option<RevIn>,
}

impl Nhits {
    /// Build the network; weights come from `vb`.
    pub fn new(cfg: &NhitsConfig, vb: VarBuilder) -> crate::error::Result<Self> {
        cfg.validate()?;
        Ok(Self::build(cfg, vb)?)
    }

    fn build(cfg: &NhitsConfig, vb: VarBuilder) -> Result<Self> {
        let blocks = (0..cfg.pool_kernels.len())
            .map(|s| Block::new(cfg, s, vb.pp(format!("blocks.{s}"))))
            .collect::<Result<Vec<_>>>()?;
        let flip: Vec<u32> = (0..cfg.lookback as u32).rev().collect();
        let scaler = match cfg.scaler {
            Scaler::Identity => None,
            Scaler::Standard => Some(RevIn::new(cfg.channels, false, false, vb.pp("scaler"))?),
        };
        Ok(Nhits { blocks, flip: Tensor::from_vec(flip, cfg.lookback, vb.device())?, scaler, cfg: cfg.clone() })
    }

    /// The configuration.
    pub fn config(&self) -> &NhitsConfig {
        &self.cfg
    }

    /// The device the model computes on.
    pub fn device(&self) -> &Device {
        self.flip.device()
    }

    /// Forecast `[batch, horizon, channels]` from `x` (`[batch, lookback, channels]`).
    pub fn forward(&self, x: &Tensor, train: &mut Option<Train<'_>>) -> Result<Tensor> {
        // The fused block runs on CPU in f32, has no dropout and reads no exogenous inputs.
        let fused = fused::available(x) && self.cfg.exog_channels == 0 && (train.is_none() || self.cfg.dropout <= 0.0);
        self.forward_with(x, train, fused)
    }

    /// [`Nhits::forward`] with the block implementation chosen by the caller.
    fn forward_with(&self, x: &Tensor, train: &mut Option<Train<'_>>, fused: bool) -> Result<Tensor> {
        let (b, l, width) = x.dims3()?;
        let (c, e) = (self.cfg.channels, self.cfg.exog_channels);
        if width != c + e {
            candle_core::bail!("N-HiTS expects {c} target + {e} exogenous channels, got {width}");
        }
        // Exogenous windows, flattened per sample and shared by its target channels.
        let exog = if e > 0 {
            let flat = x.narrow(2, c, e)?.contiguous()?.reshape((b, 1, l * e))?;
            Some(flat.broadcast_as((b, c, l * e))?.contiguous()?.reshape((b * c, l * e))?)
        } else {
            None
        };
        let x = x.narrow(2, 0, c)?.transpose(1, 2)?.contiguous()?; // [b, c, L]
        let (x, stats) = match &self.scaler {
            Some(s) => {
                let (y, st) = s.norm(&x)?;
                (y, Some(st))
            }
            None => (x, None),
        };
        let series = x.reshape((b * c, l))?;
        // neuralforecast feeds the blocks the time-reversed series and starts from the last value.
        let mut residual = series.index_select(&self.flip, 1)?;
        let mut forecast = series.narrow(1, l - 1, 1)?.broadcast_as((b * c, self.cfg.horizon))?.contiguous()?;
        if fused {
            // One op per block over the packed state [residual | forecast].
            let mut state = Tensor::cat(&[&residual, &forecast], 1)?;
            for block in &self.blocks {
                state = nhits_block::block(&state, &block.params, &block.shape)?;
            }
            forecast = state.narrow(1, l, self.cfg.horizon)?;
        } else {
            for block in &self.blocks {
                let (backcast, f) = block.forward(&residual, exog.as_ref(), self.cfg.dropout, train)?;
                residual = (residual - backcast)?;
                forecast = (forecast + f)?;
            }
        }
        let forecast = forecast.reshape((b, c, self.cfg.horizon))?;
        let forecast = match (&self.scaler, &stats) {
            (Some(s), Some(st)) => s.denorm(&forecast, st)?,
            _ => forecast,
        };
        forecast.transpose(1, 2)?.contiguous()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: `F.interpolate(torch.eye(k).unsqueeze(1), size=h, mode="linear")` (PyTorch
    /// 2.15), rows = knots, printed to 6 decimals.
    #[test]
    fn interpolation_matches_pytorch() {
        let cases: [(usize, usize, &[f32]); 3] = [
            (
                3,
                7,
                &[
                    1.0, 0.857143, 0.428571, 0.0, 0.0, 0.0, 0.0, 0.0, 0.142857, 0.571429, 1.0, 0.571429, 0.142857, 0.0,
                    0.0, 0.0, 0.0, 0.0, 0.428571, 0.857143, 1.0,
                ],
            ),
            (4, 2, &[0.5, 0.0, 0.5, 0.0, 0.0, 0.5, 0.0, 0.5]),
            (1, 3, &[1.0, 1.0, 1.0]),
        ];
        for (k, h, want) in cases {
            let got = interpolation_matrix(k, h);
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-6, "{k}→{h}: {got:?}");
            }
        }
    }

    /// The fused block and the candle-op block give the same forecasts and gradients, with
    /// and without pooling (kernels 3 with a partial window, 2, 1).
    #[test]
    fn fused_and_candle_blocks_agree_forward_and_backward() {
        use crate::nn::init::SeededVars;
        let cfg = NhitsConfig {
            pool_kernels: vec![3, 2, 1],
            freq_downsample: vec![4, 2, 1],
            hidden: 24,
            mlp_layers: 2,
            ..NhitsConfig::paper(20, 8, 3)
        };
        let vars = SeededVars::new(5);
        let net = Nhits::new(&cfg, vars.builder(&Device::Cpu)).unwrap();
        let x = Tensor::randn(0f32, 1.0, (70, 20, 3), &Device::Cpu).unwrap();
        let target = Tensor::randn(0f32, 1.0, (70, 8, 3), &Device::Cpu).unwrap();
        let run = |fused: bool| {
            let y = net.forward_with(&x, &mut None, fused).unwrap();
            let grads = (&y - &target).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let g: Vec<Vec<f32>> = vars
                .named_vars()
                .iter()
                .map(|(_, v)| grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .collect();
            (y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), g)
        };
        let (ya, ga) = run(true);
        let (yb, gb) = run(false);
        let max = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(max(&ya, &yb) < 1e-4, "forecast {}", max(&ya, &yb));
        assert_eq!(ga.len(), 3, "one flat variable per block");
        for (a, b) in ga.iter().zip(&gb) {
            let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
            assert!(max(a, b) < 1e-4 * scale, "gradient {} (scale {scale})", max(a, b));
            assert!(a.iter().any(|v| *v != 0.0));
        }
    }

    #[test]
    fn fused_block_is_identical_whatever_the_thread_count() {
        use crate::nn::init::SeededVars;
        let cfg = NhitsConfig { hidden: 64, ..NhitsConfig::paper(96, 24, 2) };
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let vars = SeededVars::new(9);
                let net = Nhits::new(&cfg, vars.builder(&Device::Cpu)).unwrap();
                let x = Tensor::arange(0f32, (300 * 96 * 2) as f32, &Device::Cpu)
                    .unwrap()
                    .affine(1e-3, 0.0)
                    .unwrap()
                    .sin()
                    .unwrap()
                    .reshape((300, 96, 2))
                    .unwrap();
                let y = net.forward(&x, &mut None).unwrap();
                let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                let mut out = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                for (_, v) in vars.named_vars() {
                    out.extend(grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
                }
                out
            })
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn weights_follow_pytorch_linear_initialisation() {
        use crate::nn::init::SeededVars;
        let cfg = NhitsConfig { hidden: 32, ..NhitsConfig::paper(40, 8, 1) };
        let vars = SeededVars::new(1);
        let net = Nhits::new(&cfg, vars.builder(&Device::Cpu)).unwrap();
        let block = &net.blocks[0];
        let params = block.params.to_vec1::<f32>().unwrap();
        let (offsets, total) = block.shape.offsets();
        assert_eq!(params.len(), total);
        for (&(din, dout), &(w, _)) in block.shape.layers.iter().zip(&offsets) {
            let bound = 1.0 / (din as f32).sqrt();
            let piece = &params[w..w + din * dout + dout];
            let top = piece.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(top <= bound && top > 0.8 * bound, "layer {din}→{dout}: max {top}, bound {bound}");
        }
    }

    /// Windows whose target's next value is the exogenous series' last value: unpredictable
    /// from the target's own (white-noise) history, exact from the exogenous window.
    fn exog_task(n: usize, l: usize, seed: u64) -> (Tensor, Tensor) {
        let mut rng = crate::rng::Rng::new(seed);
        let mut x = Vec::with_capacity(n * l * 2);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let mut last = 0.0;
            for _ in 0..l {
                let (target, exog) = (rng.normal() as f32, rng.normal() as f32);
                x.extend([target, exog]);
                last = exog;
            }
            y.push(last);
        }
        let x = Tensor::from_vec(x, (n, l, 2), &Device::Cpu).unwrap();
        (x, Tensor::from_vec(y, (n, 1, 1), &Device::Cpu).unwrap())
    }

    #[test]
    fn exogenous_inputs_reach_every_block_and_are_learned() {
        use crate::nn::init::SeededVars;
        use crate::nn::optim::Adam;
        let (l, n) = (12, 256);
        let (x, y) = exog_task(n, l, 3);
        let (tx, ty) = exog_task(n, l, 4);
        // Test MSE on fresh windows after fitting (training MSE would reward memorising).
        let fit = |exog: bool| -> f32 {
            let cfg = NhitsConfig {
                hidden: 32,
                mlp_layers: 1,
                exog_channels: usize::from(exog),
                ..NhitsConfig::paper(l, 1, 1)
            };
            let vars = SeededVars::new(1);
            let net = Nhits::new(&cfg, vars.builder(&Device::Cpu)).unwrap();
            let input = if exog { x.clone() } else { x.narrow(2, 0, 1).unwrap() };
            let vs: Vec<_> = vars.named_vars().into_iter().map(|(_, v)| v).collect();
            let mut opt = Adam::new(vs.clone(), 3e-3, 0.0).unwrap();
            for step in 0..300 {
                let out = net.forward(&input, &mut None).unwrap();
                assert_eq!(out.dims(), [n, 1, 1]);
                let l2 = (&out - &y).unwrap().sqr().unwrap().mean_all().unwrap();
                let mut grads = l2.backward().unwrap();
                if step == 0 && exog {
                    for v in &vs {
                        let g = grads.get(v.as_tensor()).unwrap().abs().unwrap().sum_all().unwrap();
                        assert!(g.to_scalar::<f32>().unwrap() > 0.0, "every block's weights get a gradient");
                    }
                }
                opt.step(&mut grads, None).unwrap();
            }
            let test_in = if exog { tx.clone() } else { tx.narrow(2, 0, 1).unwrap() };
            let out = net.forward(&test_in, &mut None).unwrap();
            (&out - &ty).unwrap().sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap()
        };
        let (with, without) = (fit(true), fit(false));
        // Without the exogenous window nothing predicts the target (test MSE ≥ its variance,
        // 1); with it the target is a linear function of the input.
        assert!(with < 0.1 && without > 0.8, "MSE with exogenous inputs {with}, without {without}");
        // A window without the declared exogenous channels is an error, not a silent misread.
        let cfg = NhitsConfig { exog_channels: 2, ..NhitsConfig::paper(l, 1, 1) };
        let net = Nhits::new(&cfg, crate::nn::init::SeededVars::new(1).builder(&Device::Cpu)).unwrap();
        assert!(net.forward(&x, &mut None).is_err());
    }
}

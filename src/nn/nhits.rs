//! N-HiTS (Challu et al., AAAI 2023) with the defaults of neuralforecast's `NHITS`: three
//! stacks of one block, each block max-pools its input at its own rate (kernels 2, 2, 1, ceil
//! mode), an MLP (first linear, then `[linear, ReLU]` per hidden layer, 512 wide) emits a full
//! backcast and a few forecast knots (horizon / 4, / 2, / 1), the knots are linearly
//! interpolated onto the horizon (PyTorch's `interpolate(mode="linear")`, a constant matrix
//! here because candle has no interpolation with a backward pass), the backcast is removed
//! from the residual passed on, and the forecast starts from the last observed value.
//! Channels are independent series through one shared network.
//!
//! Shapes: input `[batch, lookback, channels]` → forecast `[batch, horizon, channels]`.

use candle_core::{D, Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::nn::layers::{Linear, Train, dropout, linear};
use crate::nn::matmul::matmul;
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
    /// SPEC §3 defaults for the trading use: hidden 128, 3 stacks of one block.
    fn default() -> Self {
        NhitsConfig {
            lookback: 64,
            horizon: 1,
            channels: 1,
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
        for (field, v) in [
            ("lookback", self.lookback),
            ("horizon", self.horizon),
            ("channels", self.channels),
            ("hidden", self.hidden),
        ] {
            if v == 0 {
                return Err(Error::param(field, "must be at least 1"));
            }
        }
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

/// One block: pool → MLP → (backcast, forecast knots) → interpolation.
#[derive(Clone, Debug)]
struct Block {
    kernel: usize,
    layers: Vec<Linear>,
    out: Linear,
    interp: Tensor,
    lookback: usize,
}

impl Block {
    fn new(cfg: &NhitsConfig, stack: usize, vb: VarBuilder) -> Result<Self> {
        let kernel = cfg.pool_kernels[stack];
        let pooled = cfg.lookback.div_ceil(kernel);
        let knots = (cfg.horizon / cfg.freq_downsample[stack]).max(1);
        let mut layers = vec![linear(pooled, cfg.hidden, vb.pp("mlp.0"))?];
        for l in 0..cfg.mlp_layers {
            layers.push(linear(cfg.hidden, cfg.hidden, vb.pp(format!("mlp.{}", l + 1)))?);
        }
        let interp = Tensor::from_vec(interpolation_matrix(knots, cfg.horizon), (knots, cfg.horizon), vb.device())?;
        Ok(Block {
            kernel,
            layers,
            out: linear(cfg.hidden, cfg.lookback + knots, vb.pp("out"))?,
            interp,
            lookback: cfg.lookback,
        })
    }

    /// `x`: `[n, lookback]` → (backcast `[n, lookback]`, forecast `[n, horizon]`).
    fn forward(&self, x: &Tensor, p: f64, train: &mut Option<Train<'_>>) -> Result<(Tensor, Tensor)> {
        let n = x.dim(0)?;
        let pooled = if self.kernel > 1 {
            // Ceil mode: repeating the last value fills the partial window without changing its max.
            let pad = self.lookback.div_ceil(self.kernel) * self.kernel - self.lookback;
            let x = if pad > 0 { x.pad_with_same(D::Minus1, 0, pad)? } else { x.clone() };
            x.reshape((n, 1, 1, ()))?.max_pool2d_with_stride((1, self.kernel), (1, self.kernel))?.reshape((n, ()))?
        } else {
            x.clone()
        };
        let mut h = self.layers[0].forward(&pooled)?;
        for layer in &self.layers[1..] {
            h = dropout(&layer.forward(&h)?.relu()?, p, train)?;
        }
        let theta = self.out.forward(&h)?;
        let backcast = theta.narrow(1, 0, self.lookback)?;
        let knots = theta.narrow(1, self.lookback, self.interp.dim(0)?)?;
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
        let (b, l, c) = x.dims3()?;
        let x = x.transpose(1, 2)?.contiguous()?; // [b, c, L]
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
        for block in &self.blocks {
            let (backcast, f) = block.forward(&residual, self.cfg.dropout, train)?;
            residual = (residual - backcast)?;
            forecast = (forecast + f)?;
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
}

//! PatchTST (Nie et al., "A Time Series is Worth 64 Words", ICLR 2023), following the official
//! implementation (yuqinie98/PatchTST, `PatchTST_backbone`): RevIN, end padding by replication,
//! patching, a linear patch embedding plus a learned positional table, channel independence
//! (every channel is its own sequence through one shared encoder), post-norm encoder layers
//! whose attention carries the previous layer's raw scores (`res_attention`), BatchNorm (or
//! LayerNorm), a GELU feed-forward, dropout, and a flatten head.
//!
//! Shapes: input `[batch, lookback, channels]` → forecast `[batch, horizon, channels]`.

use candle_core::{D, Device, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::nn::attention::{ScoreLink, fused_attention};
use crate::nn::feed_forward::feed_forward;
use crate::nn::fused;
use crate::nn::layers::{BatchNorm, LayerNorm, Linear, Train, dropout, linear};
use crate::nn::matmul::matmul;
use crate::nn::revin::RevIn;

/// Normalisation inside the encoder layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// `BatchNorm1d` over the model dimension (the paper's default).
    Batch,
    /// `LayerNorm` over the model dimension.
    Layer,
}

/// PatchTST hyperparameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatchTstConfig {
    /// Input steps.
    pub lookback: usize,
    /// Forecast steps.
    pub horizon: usize,
    /// Input channels (each is forecast).
    pub channels: usize,
    /// Steps per patch.
    pub patch_len: usize,
    /// Steps between patch starts.
    pub stride: usize,
    /// Pad the end by `stride` copies of the last value before patching (one more patch).
    pub pad_end: bool,
    /// Model dimension.
    pub d_model: usize,
    /// Attention heads (`d_model` must be divisible by it).
    pub n_heads: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Encoder layers.
    pub n_layers: usize,
    /// Dropout in the encoder (input, attention output, feed-forward).
    pub dropout: f64,
    /// Dropout on the attention weights.
    pub attn_dropout: f64,
    /// Dropout after the flatten head.
    pub head_dropout: f64,
    /// Encoder normalisation.
    pub norm: NormKind,
    /// Add the previous layer's attention scores to this layer's (`res_attention`).
    pub res_attention: bool,
    /// Reversible instance normalisation of the input.
    pub revin: bool,
    /// Learn a per-channel affine transform inside RevIN.
    pub revin_affine: bool,
    /// Centre on the last input value instead of the mean.
    pub subtract_last: bool,
}

impl Default for PatchTstConfig {
    /// Defaults for the trading use: d_model 128, 8 heads, 3 layers.
    fn default() -> Self {
        PatchTstConfig {
            lookback: 64,
            horizon: 1,
            channels: 1,
            patch_len: 16,
            stride: 8,
            pad_end: true,
            d_model: 128,
            n_heads: 8,
            d_ff: 256,
            n_layers: 3,
            dropout: 0.2,
            attn_dropout: 0.0,
            head_dropout: 0.0,
            norm: NormKind::Batch,
            res_attention: true,
            revin: true,
            revin_affine: false,
            subtract_last: false,
        }
    }
}

impl PatchTstConfig {
    /// The paper's "small" configuration (PatchTST/42 on ETTh1/ETTh2): d_model 16, 4 heads,
    /// d_ff 128, dropout 0.3, 3 layers.
    pub fn small(lookback: usize, horizon: usize, channels: usize) -> Self {
        PatchTstConfig {
            lookback,
            horizon,
            channels,
            d_model: 16,
            n_heads: 4,
            d_ff: 128,
            dropout: 0.3,
            ..Default::default()
        }
    }

    /// The paper's "large" configuration: d_model 128, 16 heads, d_ff 256, dropout 0.2.
    pub fn large(lookback: usize, horizon: usize, channels: usize) -> Self {
        PatchTstConfig {
            lookback,
            horizon,
            channels,
            d_model: 128,
            n_heads: 16,
            d_ff: 256,
            dropout: 0.2,
            ..Default::default()
        }
    }

    /// Number of patches the lookback is cut into.
    pub fn n_patches(&self) -> usize {
        (self.lookback - self.patch_len) / self.stride + 1 + usize::from(self.pad_end)
    }

    /// Check the values; the error names the field.
    pub fn validate(&self) -> crate::error::Result<()> {
        use crate::error::Error;
        let positive = [
            ("lookback", self.lookback),
            ("horizon", self.horizon),
            ("channels", self.channels),
            ("patch_len", self.patch_len),
            ("stride", self.stride),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("d_ff", self.d_ff),
            ("n_layers", self.n_layers),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(Error::param(field, "must be at least 1"));
            }
        }
        if self.patch_len > self.lookback {
            return Err(Error::param(
                "patch_len",
                format!("{} exceeds the lookback {}", self.patch_len, self.lookback),
            ));
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(Error::param("n_heads", format!("{} does not divide d_model {}", self.n_heads, self.d_model)));
        }
        for (field, p) in
            [("dropout", self.dropout), ("attn_dropout", self.attn_dropout), ("head_dropout", self.head_dropout)]
        {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::param(field, format!("{p} is not in [0, 1)")));
            }
        }
        Ok(())
    }
}

/// A layer's pre-softmax attention scores, which the next layer adds to its own
/// (`res_attention`): a `[n, heads, patches, patches]` tensor on the candle path, a link
/// outside the graph on the fused one.
enum Residual {
    Tensor(Tensor),
    Link(ScoreLink),
}

/// Multi-head attention with residual scores.
#[derive(Clone, Debug)]
struct Attention {
    w_q: Linear,
    w_k: Linear,
    w_v: Linear,
    to_out: Linear,
    n_heads: usize,
    scale: f64,
}

impl Attention {
    fn new(cfg: &PatchTstConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d_model;
        Ok(Attention {
            w_q: linear(d, d, vb.pp("W_Q"))?,
            w_k: linear(d, d, vb.pp("W_K"))?,
            w_v: linear(d, d, vb.pp("W_V"))?,
            to_out: linear(d, d, vb.pp("to_out"))?,
            n_heads: cfg.n_heads,
            scale: ((d / cfg.n_heads) as f64).powf(-0.5),
        })
    }

    /// `x`: `[n, patches, d]` → (output `[n, patches, d]` before the projection's dropout,
    /// which the caller applies with the residual's, pre-softmax scores). `fused` picks the
    /// fused op or candle's; one forward pass uses one path for every layer.
    fn forward(
        &self,
        x: &Tensor,
        prev: Option<&Residual>,
        cfg: &PatchTstConfig,
        fused: bool,
        train: &mut Option<Train<'_>>,
    ) -> Result<(Tensor, Residual)> {
        let (n, p, d) = x.dims3()?;
        let h = self.n_heads;
        if fused {
            let prev = match prev {
                Some(Residual::Link(l)) => Some(l),
                Some(Residual::Tensor(_)) => candle_core::bail!("fused attention after a candle-path layer"),
                None => None,
            };
            let qkv = Linear::forward_concat(&[&self.w_q, &self.w_k, &self.w_v], x)?;
            let (out, link) = fused_attention(&qkv, prev, h, self.scale)?;
            return Ok((self.to_out.forward(&out)?, Residual::Link(link)));
        }
        let prev = match prev {
            Some(Residual::Tensor(t)) => Some(t),
            Some(Residual::Link(_)) => candle_core::bail!("candle-path attention after a fused layer"),
            None => None,
        };
        let heads = |t: Tensor| t.reshape((n, p, h, d / h))?.transpose(1, 2)?.contiguous();
        let q = heads(self.w_q.forward(x)?)?;
        let k = heads(self.w_k.forward(x)?)?.transpose(2, 3)?.contiguous()?;
        let v = heads(self.w_v.forward(x)?)?;
        let mut scores = (matmul(&q, &k)? * self.scale)?;
        if let Some(prev) = prev {
            scores = (scores + prev)?;
        }
        let attn = dropout(&candle_nn::ops::softmax(&scores, D::Minus1)?, cfg.attn_dropout, train)?;
        let out = matmul(&attn, &v)?.transpose(1, 2)?.contiguous()?.reshape((n, p, d))?;
        Ok((self.to_out.forward(&out)?, Residual::Tensor(scores)))
    }
}

#[derive(Clone, Debug)]
enum Norm {
    Batch(BatchNorm),
    Layer(LayerNorm),
}

impl Norm {
    fn new(cfg: &PatchTstConfig, vb: VarBuilder) -> Result<Self> {
        Ok(match cfg.norm {
            NormKind::Batch => Norm::Batch(BatchNorm::new(cfg.d_model, vb)?),
            NormKind::Layer => Norm::Layer(LayerNorm::new(cfg.d_model, vb)?),
        })
    }

    /// Normalise `x + dropout(a, p)`.
    fn forward_residual(&self, x: &Tensor, a: &Tensor, p: f64, train: &mut Option<Train<'_>>) -> Result<Tensor> {
        match self {
            Norm::Batch(b) => b.forward_residual(x, a, p, train),
            Norm::Layer(l) => l.forward(&(x + dropout(a, p, train)?)?),
        }
    }
}

/// One post-norm encoder layer.
#[derive(Clone, Debug)]
struct EncoderLayer {
    attn: Attention,
    norm_attn: Norm,
    ff1: Linear,
    ff2: Linear,
    norm_ffn: Norm,
}

impl EncoderLayer {
    fn new(cfg: &PatchTstConfig, vb: VarBuilder) -> Result<Self> {
        Ok(EncoderLayer {
            attn: Attention::new(cfg, vb.pp("self_attn"))?,
            norm_attn: Norm::new(cfg, vb.pp("norm_attn"))?,
            ff1: linear(cfg.d_model, cfg.d_ff, vb.pp("ff.0"))?,
            ff2: linear(cfg.d_ff, cfg.d_model, vb.pp("ff.3"))?,
            norm_ffn: Norm::new(cfg, vb.pp("norm_ffn"))?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        prev: Option<&Residual>,
        cfg: &PatchTstConfig,
        fused: bool,
        train: &mut Option<Train<'_>>,
    ) -> Result<(Tensor, Residual)> {
        let p = cfg.dropout;
        let (a, scores) = self.attn.forward(x, prev, cfg, fused, train)?;
        // The official layer drops the attention output twice in a row (the projection's
        // dropout, then the residual's). Two independent masks keeping 1 − p each are one mask
        // keeping (1 − p)² scaled by 1 / (1 − p)²: the same distribution, drawn in one pass.
        let x = self.norm_attn.forward_residual(x, &a, 1.0 - (1.0 - p) * (1.0 - p), train)?;
        let f = self.feed_forward(&x, p, train)?;
        let x = self.norm_ffn.forward_residual(&x, &f, p, train)?;
        Ok((x, scores))
    }
}

impl EncoderLayer {
    /// `ff2(dropout(gelu(ff1(x)), p))`: one fused op on CPU in f32, else the separate layers.
    fn feed_forward(&self, x: &Tensor, p: f64, train: &mut Option<Train<'_>>) -> Result<Tensor> {
        if !fused::available(x) {
            let f = dropout(&self.ff1.forward_gelu(x)?, p, train)?;
            return self.ff2.forward(&f);
        }
        let mask = match train {
            Some(t) if p > 0.0 => Some((p, t.rng.next_u64())),
            _ => None,
        };
        let ((w1, b1), (w2, b2)) = (self.ff1.parts()?, self.ff2.parts()?);
        feed_forward(x, &w1, b1, &w2, b2, mask)
    }
}

/// A PatchTST network.
#[derive(Clone, Debug)]
pub struct PatchTst {
    cfg: PatchTstConfig,
    revin: Option<RevIn>,
    patch_index: Tensor,
    w_p: Linear,
    w_pos: Tensor,
    layers: Vec<EncoderLayer>,
    head: Linear,
}

impl PatchTst {
    /// Build the network; weights come from `vb` (created with PyTorch's initialisations when
    /// `vb` is backed by [`crate::nn::init::SeededVars`]).
    pub fn new(cfg: &PatchTstConfig, vb: VarBuilder) -> crate::error::Result<Self> {
        cfg.validate()?;
        Ok(Self::build(cfg, vb)?)
    }

    fn build(cfg: &PatchTstConfig, vb: VarBuilder) -> Result<Self> {
        let p = cfg.n_patches();
        let index: Vec<u32> =
            (0..p).flat_map(|i| (0..cfg.patch_len).map(move |j| (i * cfg.stride + j) as u32)).collect();
        let patch_index = Tensor::from_vec(index, p * cfg.patch_len, vb.device())?;
        let revin = if cfg.revin {
            Some(RevIn::new(cfg.channels, cfg.revin_affine, cfg.subtract_last, vb.pp("revin_layer"))?)
        } else {
            None
        };
        let bb = vb.pp("backbone");
        let layers = (0..cfg.n_layers)
            .map(|i| EncoderLayer::new(cfg, bb.pp(format!("encoder.layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(PatchTst {
            revin,
            patch_index,
            w_p: linear(cfg.patch_len, cfg.d_model, bb.pp("W_P"))?,
            w_pos: bb.get_with_hints((p, cfg.d_model), "W_pos", Init::Uniform { lo: -0.02, up: 0.02 })?,
            layers,
            head: linear(cfg.d_model * p, cfg.horizon, vb.pp("head.linear"))?,
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PatchTstConfig {
        &self.cfg
    }

    /// Forecast `[batch, horizon, channels]` from `x` (`[batch, lookback, channels]`);
    /// `train` = `Some` enables dropout and batch statistics.
    pub fn forward(&self, x: &Tensor, train: &mut Option<Train<'_>>) -> Result<Tensor> {
        // The fused attention op runs on CPU in f32 and has no attention-weight dropout.
        let fused = fused::available(x) && (train.is_none() || self.cfg.attn_dropout == 0.0);
        self.forward_with(x, train, fused)
    }

    /// [`PatchTst::forward`] with the attention path chosen by the caller.
    fn forward_with(&self, x: &Tensor, train: &mut Option<Train<'_>>, fused: bool) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, _, c) = x.dims3()?;
        let x = x.transpose(1, 2)?.contiguous()?; // [b, c, L]
        let (x, stats) = match &self.revin {
            Some(r) => {
                let (y, s) = r.norm(&x)?;
                (y, Some(s))
            }
            None => (x, None),
        };
        let x = if cfg.pad_end { x.pad_with_same(D::Minus1, 0, cfg.stride)? } else { x };
        let p = cfg.n_patches();
        let patches = x.index_select(&self.patch_index, D::Minus1)?.reshape((b * c, p, cfg.patch_len))?;
        let u = self.w_p.forward(&patches)?.broadcast_add(&self.w_pos)?;
        let mut z = dropout(&u, cfg.dropout, train)?;
        let mut prev: Option<Residual> = None;
        for layer in &self.layers {
            let (out, scores) = layer.forward(&z, prev.as_ref(), cfg, fused, train)?;
            z = out;
            if cfg.res_attention {
                prev = Some(scores);
            }
        }
        // Flatten per channel as the official head does: [b, c, d, patches] → [b, c, d·patches].
        let z = z.reshape((b, c, p, cfg.d_model))?.transpose(2, 3)?.contiguous()?.reshape((b, c, cfg.d_model * p))?;
        let y = dropout(&self.head.forward(&z)?, cfg.head_dropout, train)?; // [b, c, H]
        let y = match (&self.revin, &stats) {
            (Some(r), Some(s)) => r.denorm(&y, s)?,
            _ => y,
        };
        y.transpose(1, 2)?.contiguous()
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.w_pos.device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::init::SeededVars;

    /// The largest absolute element.
    fn max_abs(t: &Tensor) -> f32 {
        t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// A small network (`d_model` `d`, `heads`, three layers) on seeded weights and a random
    /// batch of 4 to 6 windows of `lookback` steps over two channels.
    fn small_net(d: usize, heads: usize, lookback: usize, seed: u64) -> (PatchTst, SeededVars, Tensor) {
        let cfg = PatchTstConfig { d_model: d, n_heads: heads, d_ff: 2 * d, ..PatchTstConfig::small(lookback, 3, 2) };
        let vars = SeededVars::new(seed);
        let net = PatchTst::new(&cfg, vars.builder(&Device::Cpu)).unwrap();
        let x = Tensor::randn(0f32, 1.0, (4 + seed as usize % 3, lookback, 2), &Device::Cpu).unwrap();
        (net, vars, x)
    }

    #[test]
    fn fused_and_candle_attention_paths_agree() {
        let (net, _, x) = small_net(16, 4, 48, 3);
        let a = net.forward_with(&x, &mut None, true).unwrap();
        let b = net.forward_with(&x, &mut None, false).unwrap();
        let diff = max_abs(&(a - b).unwrap());
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn fused_and_candle_attention_paths_give_the_same_gradients() {
        // Three layers: the fused path hands the scores' gradient back through its links.
        let (net, vars, x) = small_net(8, 2, 40, 5);
        let grads =
            |fused| net.forward_with(&x, &mut None, fused).unwrap().sqr().unwrap().sum_all().unwrap().backward();
        let (a, b) = (grads(true).unwrap(), grads(false).unwrap());
        for (name, var) in vars.named_vars() {
            let (ga, gb) = (a.get(&var).unwrap(), b.get(&var).unwrap());
            let (diff, scale) = (max_abs(&(ga - gb).unwrap()), max_abs(gb));
            assert!(diff <= 1e-4 * scale.max(1.0), "{name}: {diff} (largest {scale})");
        }
    }
}

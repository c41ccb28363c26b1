//! RevIN (Kim et al., ICLR 2022) as PatchTST uses it: each series of each sample is
//! normalised by its own statistics over the lookback and the forecast is de-normalised with
//! them, so level shifts between training and test periods do not reach the network.

use candle_core::{D, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// Instance normalisation over time of `[batch, channels, time]` series.
#[derive(Clone, Debug)]
pub struct RevIn {
    affine: Option<(Tensor, Tensor)>,
    subtract_last: bool,
    eps: f64,
}

/// Statistics of one batch, kept between [`RevIn::norm`] and [`RevIn::denorm`].
pub struct Stats {
    center: Tensor,
    std: Tensor,
}

impl RevIn {
    /// `channels` affine weights (1) and biases (0) when `affine`; `subtract_last` centres on
    /// the last value instead of the mean (the scale is the standard deviation either way).
    pub fn new(channels: usize, affine: bool, subtract_last: bool, vb: VarBuilder) -> Result<Self> {
        let affine = if affine {
            Some((
                vb.get_with_hints(channels, "affine_weight", Init::Const(1.0))?,
                vb.get_with_hints(channels, "affine_bias", Init::Const(0.0))?,
            ))
        } else {
            None
        };
        Ok(RevIn { affine, subtract_last, eps: 1e-5 })
    }

    /// Normalise `x` (`[batch, channels, time]`); statistics are not differentiated through.
    pub fn norm(&self, x: &Tensor) -> Result<(Tensor, Stats)> {
        let time = x.dim(D::Minus1)?;
        let mean = x.mean_keepdim(D::Minus1)?.detach();
        let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(D::Minus1)?;
        let std = (var + self.eps)?.sqrt()?.detach();
        let center = if self.subtract_last { x.narrow(D::Minus1, time - 1, 1)?.detach() } else { mean };
        let mut y = x.broadcast_sub(&center)?.broadcast_div(&std)?;
        if let Some((w, b)) = &self.affine {
            y = y.broadcast_mul(&w.reshape((1, (), 1))?)?.broadcast_add(&b.reshape((1, (), 1))?)?;
        }
        Ok((y, Stats { center, std }))
    }

    /// Undo [`RevIn::norm`] on a forecast `[batch, channels, horizon]`.
    pub fn denorm(&self, y: &Tensor, stats: &Stats) -> Result<Tensor> {
        let mut y = y.clone();
        if let Some((w, b)) = &self.affine {
            let w = (w.reshape((1, (), 1))? + self.eps * self.eps)?;
            y = y.broadcast_sub(&b.reshape((1, (), 1))?)?.broadcast_div(&w)?;
        }
        y.broadcast_mul(&stats.std)?.broadcast_add(&stats.center)
    }
}

//! Sliding windows over a multichannel series: a lookback of `L` steps as input and the
//! next `H` steps as target, every `stride` steps, with time-respecting row ranges (a
//! validation or test range never lends a target step to training windows). Windows can
//! also be given as explicit input/target pairs ([`Windows::from_pairs`]), as the trading
//! adapter cuts them from dataset rows.

use candle_core::{Device, Tensor};
use ndarray::ArrayView2;

use crate::error::{Error, Result};

/// Windows of one series (rows = time, columns = channels), or explicit pairs.
#[derive(Clone, Debug)]
pub struct Windows {
    store: Store,
    /// Input channels per step.
    channels: usize,
    /// Target channels per step: the first `targets` input channels are forecast, the rest
    /// are exogenous inputs.
    targets: usize,
    lookback: usize,
    horizon: usize,
}

#[derive(Clone, Debug)]
enum Store {
    /// One series, windows starting at `starts`.
    Series { data: Vec<f32>, starts: Vec<usize> },
    /// `n` inputs `[lookback, channels]` and targets `[horizon, targets]`, row-major.
    Pairs { x: Vec<f32>, y: Vec<f32>, n: usize },
}

impl Windows {
    /// Every window whose input starts at or after row `start` and whose target ends at or
    /// before row `end` (exclusive), one every `stride` rows. Non-finite values are refused
    /// with their row and column.
    pub fn new(
        series: ArrayView2<'_, f32>,
        range: std::ops::Range<usize>,
        lookback: usize,
        horizon: usize,
        stride: usize,
    ) -> Result<Self> {
        let (rows, channels) = series.dim();
        if lookback == 0 || horizon == 0 || stride == 0 {
            return Err(Error::param("windows", "lookback, horizon and stride must be at least 1"));
        }
        if range.end > rows || range.start > range.end {
            return Err(Error::param("windows", format!("row range {range:?} does not fit {rows} rows")));
        }
        let series = series.slice(ndarray::s![range.start..range.end, ..]);
        if let Some(((r, c), v)) = series.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::param("series", format!("row {} column {c} is {v}", range.start + r)));
        }
        let n = series.nrows();
        let starts: Vec<usize> =
            if n >= lookback + horizon { (0..=n - lookback - horizon).step_by(stride).collect() } else { Vec::new() };
        let data = series.iter().copied().collect();
        Ok(Windows { store: Store::Series { data, starts }, channels, targets: channels, lookback, horizon })
    }

    /// `n` explicit windows: `x` holds `n × lookback × channels` inputs and `y` the
    /// `n × horizon × channels` targets, both row-major; non-finite values are refused.
    pub fn from_pairs(x: Vec<f32>, y: Vec<f32>, lookback: usize, horizon: usize, channels: usize) -> Result<Self> {
        Self::from_pairs_exog(x, y, lookback, horizon, channels, 0)
    }

    /// [`Windows::from_pairs`] with `exog` exogenous input channels after the `channels`
    /// forecast ones: `x` holds `n × lookback × (channels + exog)` values, `y` only the
    /// `n × horizon × channels` targets.
    pub fn from_pairs_exog(
        x: Vec<f32>,
        y: Vec<f32>,
        lookback: usize,
        horizon: usize,
        channels: usize,
        exog: usize,
    ) -> Result<Self> {
        if lookback == 0 || horizon == 0 || channels == 0 {
            return Err(Error::param("windows", "lookback, horizon and channels must be at least 1"));
        }
        let width = channels + exog;
        let n = x.len() / (lookback * width);
        if x.len() != n * lookback * width || y.len() != n * horizon * channels {
            return Err(Error::Shape { what: "window targets".into(), expected: n * horizon * channels, got: y.len() });
        }
        if let Some(i) = x.iter().chain(&y).position(|v| !v.is_finite()) {
            let window = if i < x.len() { i / (lookback * width) } else { (i - x.len()) / (horizon * channels) };
            return Err(Error::param("windows", format!("window {window} holds a non-finite value")));
        }
        Ok(Windows { store: Store::Pairs { x, y, n }, channels: width, targets: channels, lookback, horizon })
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        match &self.store {
            Store::Series { starts, .. } => starts.len(),
            Store::Pairs { n, .. } => *n,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Input channels per step.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Forecast channels per step (the first [`Self::channels`]; the rest are exogenous).
    pub fn targets(&self) -> usize {
        self.targets
    }

    /// Inputs `[b, lookback, channels]` and targets `[b, horizon, targets]` of windows `idx`.
    pub fn batch(&self, idx: &[usize], device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
        let (c, t) = (self.channels, self.targets);
        let (lc, hc) = (self.lookback * c, self.horizon * t);
        let mut x = Vec::with_capacity(idx.len() * lc);
        let mut y = Vec::with_capacity(idx.len() * hc);
        for &w in idx {
            match &self.store {
                Store::Series { data, starts } => {
                    let s = starts[w] * c;
                    x.extend_from_slice(&data[s..s + lc]);
                    y.extend_from_slice(&data[s + lc..s + lc + hc]);
                }
                Store::Pairs { x: px, y: py, .. } => {
                    x.extend_from_slice(&px[w * lc..(w + 1) * lc]);
                    y.extend_from_slice(&py[w * hc..(w + 1) * hc]);
                }
            }
        }
        Ok((
            Tensor::from_vec(x, (idx.len(), self.lookback, c), device)?,
            Tensor::from_vec(y, (idx.len(), self.horizon, t), device)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn windows_stay_inside_their_range() {
        let s = Array2::from_shape_fn((20, 2), |(r, c)| (r * 10 + c) as f32);
        let w = Windows::new(s.view(), 5..15, 3, 2, 1).unwrap();
        assert_eq!(w.len(), 6); // starts 5..=10
        let (x, y) = w.batch(&[0, 5], &Device::Cpu).unwrap();
        let x = x.to_vec3::<f32>().unwrap();
        let y = y.to_vec3::<f32>().unwrap();
        assert_eq!(x[0][0], vec![50.0, 51.0]);
        assert_eq!(y[0][1], vec![90.0, 91.0]);
        assert_eq!(y[1][1], vec![140.0, 141.0]); // last target row is 14 < 15
        assert_eq!(Windows::new(s.view(), 0..20, 3, 2, 4).unwrap().len(), 4);
        assert!(Windows::new(s.view(), 0..4, 3, 2, 1).unwrap().is_empty());
        let mut bad = s.clone();
        bad[[7, 1]] = f32::NAN;
        let err = Windows::new(bad.view(), 0..20, 3, 2, 1).unwrap_err().to_string();
        assert!(err.contains("row 7 column 1"), "{err}");
        assert!(Windows::new(s.view(), 0..30, 3, 2, 1).is_err());
    }

    #[test]
    fn pairs_come_back_as_given() {
        let x: Vec<f32> = (0..2 * 3 * 2).map(|v| v as f32).collect();
        let y: Vec<f32> = (0..2 * 2 * 2).map(|v| 100.0 + v as f32).collect();
        let w = Windows::from_pairs(x, y.clone(), 3, 2, 2).unwrap();
        assert_eq!(w.len(), 2);
        let (bx, by) = w.batch(&[1], &Device::Cpu).unwrap();
        assert_eq!(bx.to_vec3::<f32>().unwrap()[0][0], vec![6.0, 7.0]);
        assert_eq!(by.flatten_all().unwrap().to_vec1::<f32>().unwrap(), y[4..].to_vec());
        assert!(Windows::from_pairs(vec![0.0; 6], vec![0.0; 3], 3, 2, 2).is_err());
        let err = Windows::from_pairs(vec![0.0; 12], vec![0.0, 0.0, 0.0, 0.0, 0.0, f32::NAN, 0.0, 0.0], 3, 2, 2);
        assert!(err.unwrap_err().to_string().contains("window 1"));
    }

    #[test]
    fn exogenous_pairs_carry_inputs_without_targets() {
        // Two windows of 3 steps × (1 target + 2 exogenous) inputs, 2 target steps each.
        let x: Vec<f32> = (0..2 * 3 * 3).map(|v| v as f32).collect();
        let y: Vec<f32> = (0..2 * 2).map(|v| 100.0 + v as f32).collect();
        let w = Windows::from_pairs_exog(x, y, 3, 2, 1, 2).unwrap();
        assert_eq!((w.len(), w.channels(), w.targets()), (2, 3, 1));
        let (bx, by) = w.batch(&[1], &Device::Cpu).unwrap();
        assert_eq!(bx.dims(), &[1, 3, 3]);
        assert_eq!(bx.to_vec3::<f32>().unwrap()[0][0], vec![9.0, 10.0, 11.0]);
        assert_eq!(by.to_vec3::<f32>().unwrap()[0], vec![vec![102.0], vec![103.0]]);
        // Targets sized for every input channel are refused.
        assert!(Windows::from_pairs_exog(vec![0.0; 18], vec![0.0; 12], 3, 2, 1, 2).is_err());
    }
}

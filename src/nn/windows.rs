//! Sliding windows over a multichannel series: a lookback of `L` steps as input and the
//! next `H` steps as target, every `stride` steps, with time-respecting row ranges (a
//! validation or test range never lends a target step to training windows).

use candle_core::{Device, Tensor};
use ndarray::ArrayView2;

use crate::error::{Error, Result};

/// Windows of one series (rows = time, columns = channels).
#[derive(Clone, Debug)]
pub struct Windows {
    data: Vec<f32>,
    channels: usize,
    lookback: usize,
    horizon: usize,
    starts: Vec<usize>,
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
        Ok(Windows { data: series.iter().copied().collect(), channels, lookback, horizon, starts })
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Channels per step.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Inputs `[b, lookback, channels]` and targets `[b, horizon, channels]` of windows `idx`.
    pub fn batch(&self, idx: &[usize], device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
        let c = self.channels;
        let mut x = Vec::with_capacity(idx.len() * self.lookback * c);
        let mut y = Vec::with_capacity(idx.len() * self.horizon * c);
        for &w in idx {
            let s = self.starts[w] * c;
            x.extend_from_slice(&self.data[s..s + self.lookback * c]);
            y.extend_from_slice(&self.data[s + self.lookback * c..s + (self.lookback + self.horizon) * c]);
        }
        Ok((
            Tensor::from_vec(x, (idx.len(), self.lookback, c), device)?,
            Tensor::from_vec(y, (idx.len(), self.horizon, c), device)?,
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
}

//! What every model kind shares: the [`Fit`] and [`Predict`] traits that validation and the
//! lifecycle call without knowing which learner is behind them.
//!
//! Implemented by the native GBDT ([`crate::gbdt::GbdtParams`] / [`crate::gbdt::Gbdt`]); the
//! network and baseline kinds implement the same pair.

use ndarray::{Array2, ArrayView2};

use crate::data::Dataset;
use crate::error::Result;

/// Hyperparameters that can train a model on a [`Dataset`].
pub trait Fit {
    /// The fitted model.
    type Model: Predict;
    /// Train on `train`; `valid` (if any) may only steer early stopping, never the fit itself.
    fn fit(&self, train: &Dataset, valid: Option<&Dataset>) -> Result<Self::Model>;
}

/// A fitted model that scores feature rows.
pub trait Predict {
    /// Outputs per row (1, or the class count).
    fn n_outputs(&self) -> usize;
    /// User-facing outputs (probability, class probabilities or value), `n × n_outputs`.
    fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>>;
}

impl Fit for crate::gbdt::GbdtParams {
    type Model = crate::gbdt::Gbdt;
    fn fit(&self, train: &Dataset, valid: Option<&Dataset>) -> Result<Self::Model> {
        self.fit_dataset(train, valid)
    }
}

impl Predict for crate::gbdt::Gbdt {
    fn n_outputs(&self) -> usize {
        self.num_outputs
    }
    fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        crate::gbdt::Gbdt::predict(self, x)
    }
}

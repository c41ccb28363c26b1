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
    /// Whether `fit` uses a validation set (early stopping), so that cross-validation carves
    /// a purged slice of the training rows for it.
    fn uses_validation(&self) -> bool {
        false
    }
    /// The same hyperparameters with another seed (for seed-stability checks).
    fn with_seed(&self, seed: u64) -> Self
    where
        Self: Sized;
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
    fn uses_validation(&self) -> bool {
        self.early_stopping_rounds.is_some()
    }
    fn with_seed(&self, seed: u64) -> Self {
        self.clone().seed(seed)
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

/// The model kinds of SPEC §3 that are built so far (the network and baseline kinds join
/// this enum when they land).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Native histogram GBDT, depth-wise growth (max_depth 6, 100 rounds, lr 0.1).
    Xgboost,
    /// The same engine, leaf-wise growth (31 leaves).
    Lightgbm,
}

impl ModelKind {
    /// The kind's default GBDT hyperparameters.
    pub fn gbdt_params(&self) -> crate::gbdt::GbdtParams {
        match self {
            ModelKind::Xgboost => crate::gbdt::GbdtParams::xgboost(),
            ModelKind::Lightgbm => crate::gbdt::GbdtParams::lightgbm(),
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "xgboost" => Ok(ModelKind::Xgboost),
            "lightgbm" => Ok(ModelKind::Lightgbm),
            other => Err(crate::Error::param(
                "model",
                format!(
                    "unknown model kind {other:?} (built: xgboost, lightgbm; nhits and patchtst are not built yet)"
                ),
            )),
        }
    }
}

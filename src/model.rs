//! What every model kind shares: the [`Fit`] and [`Predict`] traits that validation and the
//! lifecycle call without knowing which learner is behind them.
//!
//! Implemented by the native GBDT ([`crate::gbdt::GbdtParams`] / [`crate::gbdt::Gbdt`]) and
//! the networks ([`crate::nn::NnParams`] / [`crate::nn::TrainedNet`]); the baseline kinds
//! will implement the same pair. [`Signal`] is the common trading output.

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

/// A model's call on one row, the same for every kind.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Signal {
    /// −1 short, 0 flat, +1 long.
    pub direction: i8,
    /// Calibrated probability of that direction (`None` for a regression label).
    pub probability: Option<f64>,
    /// The model's return forecast over the label horizon where it makes one (the networks'
    /// score), else `None`.
    pub expected_return: Option<f64>,
}

impl Signal {
    /// From a model's outputs for `task` (P(up) for binary, class probabilities down / flat /
    /// up for three classes, a value for regression) and an optional return forecast.
    pub fn from_outputs(task: crate::validation::report::Task, out: &[f64], expected_return: f64) -> Signal {
        use crate::validation::report::Task;
        let expected_return = Some(expected_return).filter(|r| r.is_finite());
        match task {
            Task::Binary => {
                let p = out[0];
                let up = p > 0.5;
                Signal {
                    direction: if up { 1 } else { -1 },
                    probability: Some(if up { p } else { 1.0 - p }),
                    expected_return,
                }
            }
            Task::Multiclass { classes } => {
                let (k, p) =
                    out.iter().copied().enumerate().fold((0, f64::MIN), |b, (i, v)| if v > b.1 { (i, v) } else { b });
                // Classes are ordered down → up; with three the middle one is flat.
                let direction = if classes == 3 {
                    k as i8 - 1
                } else if 2 * k + 1 < classes {
                    -1
                } else {
                    1
                };
                Signal { direction, probability: Some(p), expected_return }
            }
            Task::Regression => Signal {
                direction: if out[0] > 0.0 {
                    1
                } else if out[0] < 0.0 {
                    -1
                } else {
                    0
                },
                probability: None,
                expected_return: Some(out[0]).filter(|r| r.is_finite()).or(expected_return),
            },
        }
    }
}

/// The model kinds of SPEC §3 built so far (the baseline kinds join when they land).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Native histogram GBDT, depth-wise growth (max_depth 6, 100 rounds, lr 0.1).
    Xgboost,
    /// The same engine, leaf-wise growth (31 leaves).
    Lightgbm,
    /// N-HiTS in candle (hidden 128, 3 stacks, 50 epochs, early stopping).
    Nhits,
    /// PatchTST in candle (d_model 128, 8 heads, 3 layers, 50 epochs, early stopping).
    Patchtst,
}

impl ModelKind {
    /// The kind's default GBDT hyperparameters (`None` for a network).
    pub fn gbdt_params(&self) -> Option<crate::gbdt::GbdtParams> {
        match self {
            ModelKind::Xgboost => Some(crate::gbdt::GbdtParams::xgboost()),
            ModelKind::Lightgbm => Some(crate::gbdt::GbdtParams::lightgbm()),
            ModelKind::Nhits | ModelKind::Patchtst => None,
        }
    }

    /// The kind's default network hyperparameters (`None` for a tree kind).
    pub fn nn_params(&self) -> Option<crate::nn::NnParams> {
        match self {
            ModelKind::Nhits => Some(crate::nn::NnParams::nhits()),
            ModelKind::Patchtst => Some(crate::nn::NnParams::patchtst()),
            ModelKind::Xgboost | ModelKind::Lightgbm => None,
        }
    }

    /// The SPEC name.
    pub fn name(&self) -> &'static str {
        match self {
            ModelKind::Xgboost => "xgboost",
            ModelKind::Lightgbm => "lightgbm",
            ModelKind::Nhits => "nhits",
            ModelKind::Patchtst => "patchtst",
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "xgboost" => Ok(ModelKind::Xgboost),
            "lightgbm" => Ok(ModelKind::Lightgbm),
            "nhits" => Ok(ModelKind::Nhits),
            "patchtst" => Ok(ModelKind::Patchtst),
            other => Err(crate::Error::param(
                "model",
                format!("unknown model kind {other:?} (built: xgboost, lightgbm, nhits, patchtst)"),
            )),
        }
    }
}

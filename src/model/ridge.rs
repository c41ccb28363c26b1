//! `ridge`: ridge regression (smartcore, Cholesky) on standardised features — regression
//! labels only; the baseline a return-forecasting candidate must beat.
//!
//! The objective is `‖y − Xw − b‖² + α‖w‖²` (intercept unpenalised), scikit-learn's `Ridge`;
//! smartcore solves the normal equations by Cholesky, so `alpha = 0` on collinear or constant
//! columns fails with a typed error rather than a wild fit.
//! The fit draws nothing at random: the seed is kept for the record only.

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::ridge_regression::{RidgeRegression, RidgeRegressionParameters, RidgeRegressionSolverName};

use super::ModelKind;
use super::baseline::{BaselineKind, Fitted, Learner, dense};
use crate::error::{Error, Result};
use crate::features::Task;

/// Hyperparameters of `ridge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RidgeParams {
    /// L2 strength α (default 1).
    pub alpha: f64,
    /// Kept for the record (the fit is deterministic).
    pub seed: u64,
    /// Most training rows a fit accepts (default 1,000,000: smartcore forms `XᵀX` with a
    /// plain product and copies the matrix twice; see docs/baselines.md).
    pub max_rows: usize,
}

impl Default for RidgeParams {
    fn default() -> Self {
        RidgeParams { alpha: 1.0, seed: 0, max_rows: 1_000_000 }
    }
}

pub(super) const RIDGE: BaselineKind<RidgeParams> = BaselineKind::new();

impl ModelKind {
    /// Ridge regression (smartcore), the baseline of regression labels.
    pub const RIDGE: ModelKind = ModelKind(&RIDGE);
}

/// A fitted ridge regression: smartcore's coefficients on centred targets plus the target
/// mean (smartcore fits no intercept unless it rescales the inputs itself, which divides by
/// zero on a constant column; ours are already centred, so the intercept is the mean).
#[derive(Serialize, Deserialize)]
pub(super) struct RidgeModel {
    intercept: f64,
    model: RidgeRegression<f64, f64, DenseMatrix<f64>, Vec<f64>>,
}

fn failed(e: impl std::fmt::Display) -> Error {
    Error::Learner { kind: "ridge", reason: e.to_string() }
}

impl Learner for RidgeParams {
    type Fitted = RidgeModel;
    const NAME: &'static str = "ridge";
    const ABOUT: &'static str = "ridge regression on standardised features (smartcore; regression labels)";

    fn supports(task: Task) -> bool {
        matches!(task, Task::Regression)
    }
    fn seed(&self) -> u64 {
        self.seed
    }
    fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }
    fn max_rows(&self) -> usize {
        self.max_rows
    }
    fn validate(&self) -> Result<()> {
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(Error::param("alpha", format!("ridge: must be finite and ≥ 0, got {}", self.alpha)));
        }
        Ok(())
    }
    fn fit(&self, x: &Array2<f64>, y: &[f64], _task: Task, _: &(dyn Fn() -> bool + Sync)) -> Result<RidgeModel> {
        let p = RidgeRegressionParameters {
            solver: RidgeRegressionSolverName::Cholesky,
            alpha: self.alpha,
            // Already standardised by the scaler every baseline shares.
            normalize: false,
        };
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        let centred: Vec<f64> = y.iter().map(|v| v - mean).collect();
        let model = RidgeRegression::fit(&dense(x)?, &centred, p).map_err(failed)?;
        Ok(RidgeModel { intercept: mean, model })
    }
    fn bytes_per_cell(&self) -> f64 {
        8.0
    }
}

impl Fitted for RidgeModel {
    fn outputs(&self, x: &Array2<f64>, _task: Task) -> Result<Array2<f64>> {
        let v = self.model.predict(&dense(x)?).map_err(failed)?;
        Ok(Array2::from_shape_fn((v.len(), 1), |(i, _)| v[i] + self.intercept))
    }
}

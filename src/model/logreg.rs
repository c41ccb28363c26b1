//! `logreg`: L2-regularised logistic regression (linfa-logistic, L-BFGS) on standardised
//! features — binary and multinomial. The default baseline a candidate must beat.
//!
//! The objective is `Σ log-loss + α/2·‖w‖²` (intercept unpenalised), so `alpha = 1/C` of
//! scikit-learn's `LogisticRegression`. The fit draws nothing at random: the seed is kept for
//! the record only, and every seed gives the same model.

use linfa::DatasetBase;
use linfa::traits::Fit as _;
use linfa_logistic::{
    FittedLogisticRegression, LogisticRegression, MultiFittedLogisticRegression, MultiLogisticRegression,
};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::ModelKind;
use super::baseline::{BaselineKind, Fitted, Learner, class_ids};
use crate::error::{Error, Result};
use crate::features::Task;

/// Hyperparameters of `logreg`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogregParams {
    /// L2 strength α (scikit-learn's `C` = 1/α; default 1).
    pub alpha: f64,
    /// L-BFGS iterations at most (default 100).
    pub max_iterations: u64,
    /// Stop when the gradient norm of the mean log-loss falls below this (default 1e-4,
    /// scikit-learn's `tol` scale: linfa's objective is a sum, so it is given `tol × rows`).
    pub gradient_tolerance: f64,
    /// Kept for the record (the fit is deterministic).
    pub seed: u64,
    /// Most training rows a fit accepts (default 2,000,000; see docs/baselines.md for what a
    /// fit costs).
    pub max_rows: usize,
}

impl Default for LogregParams {
    fn default() -> Self {
        LogregParams { alpha: 1.0, max_iterations: 100, gradient_tolerance: 1e-4, seed: 0, max_rows: 2_000_000 }
    }
}

pub(super) const LOGREG: BaselineKind<LogregParams> = BaselineKind::new();

impl ModelKind {
    /// L2 logistic regression (linfa-logistic), the default baseline.
    pub const LOGREG: ModelKind = ModelKind(&LOGREG);
}

/// A fitted logistic regression.
#[derive(Serialize, Deserialize)]
pub(super) enum LogregModel {
    /// Two classes (linfa calls the more frequent one positive).
    Binary(FittedLogisticRegression<f64, usize>),
    /// Softmax over the classes seen in training (a class never seen gets probability 0).
    Multi(MultiFittedLogisticRegression<f64, usize>),
}

fn failed(e: impl std::fmt::Display) -> Error {
    Error::Learner { kind: "logreg", reason: e.to_string() }
}

impl Learner for LogregParams {
    type Fitted = LogregModel;
    const NAME: &'static str = "logreg";
    const ABOUT: &'static str = "L2 logistic regression on standardised features (linfa-logistic; classification)";

    fn supports(task: Task) -> bool {
        !matches!(task, Task::Regression)
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
            return Err(Error::param("alpha", format!("logreg: must be finite and ≥ 0, got {}", self.alpha)));
        }
        if self.max_iterations == 0 {
            return Err(Error::param("max_iterations", "logreg: must be ≥ 1"));
        }
        if !(self.gradient_tolerance.is_finite() && self.gradient_tolerance > 0.0) {
            return Err(Error::param("gradient_tolerance", "logreg: must be finite and > 0"));
        }
        Ok(())
    }
    fn fit(&self, x: &Array2<f64>, y: &[f64], task: Task, _: &(dyn Fn() -> bool + Sync)) -> Result<LogregModel> {
        let classes = match task {
            Task::Multiclass { classes } => classes,
            _ => 2,
        };
        let ids = class_ids(Self::NAME, y, classes)?;
        let mut seen: Vec<usize> = ids.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() < 2 {
            return Err(failed(format!("the training rows hold one class only ({seen:?})")));
        }
        let data = DatasetBase::new(x.view(), Array1::from(ids));
        // linfa minimises the summed loss, whose gradient grows with the row count: a fixed
        // tolerance would run every large fit to `max_iterations`.
        let tol = self.gradient_tolerance * x.nrows() as f64;
        if matches!(task, Task::Binary) {
            let m = LogisticRegression::default()
                .alpha(self.alpha)
                .max_iterations(self.max_iterations)
                .gradient_tolerance(tol)
                .fit(&data)
                .map_err(failed)?;
            Ok(LogregModel::Binary(m))
        } else {
            let m = MultiLogisticRegression::default()
                .alpha(self.alpha)
                .max_iterations(self.max_iterations)
                .gradient_tolerance(tol)
                .fit(&data)
                .map_err(failed)?;
            Ok(LogregModel::Multi(m))
        }
    }
}

impl Fitted for LogregModel {
    fn outputs(&self, x: &Array2<f64>, task: Task) -> Result<Array2<f64>> {
        match self {
            LogregModel::Binary(m) => {
                // linfa's positive class is the more frequent one in training, not class 1.
                let mut p = m.predict_probabilities(x);
                if m.labels().pos.class != 1 {
                    p.mapv_inplace(|v| 1.0 - v);
                }
                Ok(p.insert_axis(ndarray::Axis(1)))
            }
            LogregModel::Multi(m) => {
                let k = match task {
                    Task::Multiclass { classes } => classes,
                    _ => 2,
                };
                let p = m.predict_probabilities(x);
                let mut out = Array2::<f64>::zeros((x.nrows(), k));
                for (j, &c) in m.classes().iter().enumerate() {
                    if c < k {
                        out.column_mut(c).assign(&p.column(j));
                    }
                }
                Ok(out)
            }
        }
    }
}

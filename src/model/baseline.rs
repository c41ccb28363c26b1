//! What the baseline kinds (`logreg`, `tree`, `forest`, `ridge`) share: one [`Kind`]
//! implementation over a small [`Learner`] trait, the standardiser fitted on training rows
//! only, the row limit, and the stored artifact.
//!
//! The baselines wrap linfa-logistic and smartcore, plus our own CART. They are there to be beaten:
//! a deployment gate can require a candidate to score better than them on the same CPCV
//! paths. Every baseline reads standardised features — mean and standard deviation from the
//! training rows, a non-finite value replaced by the training mean (0 after scaling) — so a
//! fold's test rows never shape its scaler, and trees, which are invariant to the affine map,
//! get a missing-value rule for free.

use std::marker::PhantomData;

use ndarray::{Array2, ArrayView2};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ArtifactReader, Kind, Model, Predict, parse_params, to_value};
use crate::error::{Error, Result};
use crate::features::{Dataset, Task};

/// The model artifact of a baseline version (JSON: format, task, features, scaler, model).
pub const BASELINE_ARTIFACT: &str = "baseline.json";
/// Version of the artifact's layout.
const FORMAT: u32 = 1;

/// One baseline learner: typed hyperparameters that fit a [`Fitted`] model on standardised rows.
pub(super) trait Learner: Serialize + DeserializeOwned + Default + Send + Sync + 'static {
    /// The fitted model.
    type Fitted: Fitted;
    /// Kind name.
    const NAME: &'static str;
    /// One line for listings.
    const ABOUT: &'static str;
    /// Whether the learner models `task` (the error of an unsupported one says which it does).
    fn supports(task: Task) -> bool;
    /// The seed (kinds that draw nothing keep it only for the record).
    fn seed(&self) -> u64;
    /// The same hyperparameters with another seed.
    fn set_seed(&mut self, seed: u64);
    /// Most training rows a fit accepts (checked ≥ 1 here for every kind).
    fn max_rows(&self) -> usize;
    /// Check the kind's own value ranges (errors name the key).
    fn validate(&self) -> Result<()>;
    /// Fit on standardised `x` with labels `y` (class ids for a classifier). `keep_going`
    /// is polled between sub-fits where the learner has them (a forest's trees).
    fn fit(
        &self,
        x: &Array2<f64>,
        y: &[f64],
        task: Task,
        keep_going: &(dyn Fn() -> bool + Sync),
    ) -> Result<Self::Fitted>;
    /// Rough bytes per training cell beyond the f64 copy (trees sort, forests copy per tree).
    fn bytes_per_cell(&self) -> f64 {
        8.0
    }
}

/// A fitted baseline: outputs for standardised rows.
pub(super) trait Fitted: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Outputs per row in the common layout (P(up); class probabilities in class order; value).
    fn outputs(&self, x: &Array2<f64>, task: Task) -> Result<Array2<f64>>;
}

/// Per-column mean and scale from training rows; applied to any rows later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Standardiser {
    mean: Vec<f64>,
    scale: Vec<f64>,
}

impl Standardiser {
    /// From the finite values of each column (a constant or empty column scales by 1).
    pub(super) fn fit(x: ArrayView2<'_, f32>) -> Standardiser {
        let (mut mean, mut scale) = (Vec::with_capacity(x.ncols()), Vec::with_capacity(x.ncols()));
        for col in x.columns() {
            let (mut n, mut m, mut m2) = (0.0f64, 0.0f64, 0.0f64);
            for &v in col.iter().filter(|v| v.is_finite()) {
                // Welford: one pass, no cancellation on large-valued columns (volumes).
                n += 1.0;
                let d = v as f64 - m;
                m += d / n;
                m2 += d * (v as f64 - m);
            }
            let sd = if n > 1.0 { (m2 / (n - 1.0)).sqrt() } else { 0.0 };
            mean.push(m);
            scale.push(if sd > 0.0 && sd.is_finite() { sd } else { 1.0 });
        }
        Standardiser { mean, scale }
    }

    /// `(x − mean) / scale` as f64, non-finite values at 0 (the training mean).
    pub(super) fn apply(&self, x: ArrayView2<'_, f32>) -> Array2<f64> {
        let mut out = Array2::<f64>::zeros((x.nrows(), x.ncols()));
        for (j, (col, mut o)) in x.columns().into_iter().zip(out.columns_mut()).enumerate() {
            let (m, s) = (self.mean[j], self.scale[j]);
            for (v, o) in col.iter().zip(o.iter_mut()) {
                *o = if v.is_finite() { (*v as f64 - m) / s } else { 0.0 };
            }
        }
        out
    }

    fn width(&self) -> usize {
        self.mean.len()
    }
}

/// smartcore's matrix of standardised rows `x` (a row-major copy: smartcore has its own
/// matrix type, so its ndarray version never meets ours).
pub(super) fn dense(x: &Array2<f64>) -> Result<smartcore::linalg::basic::matrix::DenseMatrix<f64>> {
    smartcore::linalg::basic::matrix::DenseMatrix::new(x.nrows(), x.ncols(), x.iter().copied().collect(), false)
        .map_err(|e| Error::Learner { kind: "smartcore", reason: e.to_string() })
}

/// Class ids `0..classes` of the labels, or a typed error naming the bad row.
pub(super) fn class_ids(kind: &'static str, y: &[f64], classes: usize) -> Result<Vec<usize>> {
    y.iter()
        .enumerate()
        .map(|(i, &v)| {
            if v >= 0.0 && v.fract() == 0.0 && (v as usize) < classes {
                Ok(v as usize)
            } else {
                Err(Error::Learner { kind, reason: format!("row {i}: label {v} is not a class id below {classes}") })
            }
        })
        .collect()
}

/// Classes a task has (1 output for binary and regression).
fn n_outputs(task: Task) -> usize {
    match task {
        Task::Multiclass { classes } => classes,
        _ => 1,
    }
}

/// What a baseline version stores.
#[derive(Serialize, Deserialize)]
struct Stored<M> {
    format: u32,
    kind: String,
    task: Task,
    feature_names: Vec<String>,
    scaler: Standardiser,
    model: M,
}

/// A fitted baseline with its scaler, as the lifecycle serves it.
pub(super) struct Baseline<M> {
    stored: Stored<M>,
}

impl<M: Fitted> Predict for Baseline<M> {
    fn n_outputs(&self) -> usize {
        n_outputs(self.stored.task)
    }
    fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        let want = self.stored.scaler.width();
        if x.ncols() != want {
            return Err(Error::Shape {
                what: format!("{} features", self.stored.kind),
                expected: want,
                got: x.ncols(),
            });
        }
        self.stored.model.outputs(&self.stored.scaler.apply(x), self.stored.task)
    }
}

impl<M: Fitted> Model for Baseline<M> {
    fn task(&self) -> Task {
        self.stored.task
    }
    fn artifacts(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let bytes = serde_json::to_vec(&self.stored)
            .map_err(|e| Error::Learner { kind: "baseline", reason: format!("serialising the model: {e}") })?;
        Ok(vec![(BASELINE_ARTIFACT.to_string(), bytes)])
    }
}

/// A baseline kind: the generic [`Kind`] over learner `L`.
pub(super) struct BaselineKind<L>(PhantomData<fn() -> L>);

impl<L> BaselineKind<L> {
    /// The kind (a `const` for the registry).
    pub(super) const fn new() -> Self {
        BaselineKind(PhantomData)
    }
}

impl<L: Learner> BaselineKind<L> {
    fn parse(&self, params: &serde_json::Value) -> Result<L> {
        let p: L = parse_params(L::NAME, params)?;
        if p.max_rows() == 0 {
            return Err(Error::param("max_rows", format!("{}: must be ≥ 1", L::NAME)));
        }
        p.validate()?;
        Ok(p)
    }
}

impl<L: Learner> Kind for BaselineKind<L> {
    fn name(&self) -> &'static str {
        L::NAME
    }
    fn about(&self) -> &'static str {
        L::ABOUT
    }
    fn supports(&self, task: Task) -> bool {
        L::supports(task)
    }
    fn default_params(&self, _task: Task) -> serde_json::Value {
        to_value(&L::default())
    }
    fn check_params(&self, params: &serde_json::Value) -> Result<()> {
        self.parse(params).map(drop)
    }
    fn uses_validation(&self, params: &serde_json::Value) -> Result<bool> {
        self.parse(params).map(|_| false)
    }
    fn with_seed(&self, params: &serde_json::Value, seed: u64) -> Result<serde_json::Value> {
        let mut p = self.parse(params)?;
        p.set_seed(seed);
        Ok(to_value(&p))
    }
    fn seed(&self, params: &serde_json::Value) -> Option<u64> {
        self.parse(params).ok().map(|p| p.seed())
    }
    fn fits_in_parallel(&self) -> bool {
        true
    }
    fn fit(
        &self,
        params: &serde_json::Value,
        train: &Dataset,
        _valid: Option<&Dataset>,
        keep_going: &(dyn Fn() -> bool + Sync),
    ) -> Result<Box<dyn Model>> {
        let p = self.parse(params)?;
        let task = Task::of(train);
        if !L::supports(task) {
            let what = match task {
                Task::Binary => "binary".to_string(),
                Task::Multiclass { classes } => format!("{classes}-class"),
                Task::Regression => "real-valued (regression)".to_string(),
            };
            return Err(Error::Learner {
                kind: L::NAME,
                reason: format!("does not model a {what} label: {}", L::ABOUT),
            });
        }
        if train.n_rows() > p.max_rows() {
            return Err(Error::TooLarge {
                kind: L::NAME,
                rows: train.n_rows(),
                features: train.n_features(),
                limit: p.max_rows(),
            });
        }
        if train.n_rows() < 2 || train.n_features() == 0 {
            return Err(Error::Learner {
                kind: L::NAME,
                reason: format!("needs at least 2 rows and 1 feature, got {} × {}", train.n_rows(), train.n_features()),
            });
        }
        let y = train.y.as_slice().ok_or_else(|| Error::param("dataset.y", "labels must be contiguous"))?;
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return Err(Error::Learner { kind: L::NAME, reason: format!("training label of row {i} is {}", y[i]) });
        }
        let scaler = Standardiser::fit(train.x.view());
        let x = scaler.apply(train.x.view());
        let model = p.fit(&x, y, task, keep_going)?;
        Ok(Box::new(Baseline {
            stored: Stored {
                format: FORMAT,
                kind: L::NAME.to_string(),
                task,
                feature_names: train.feature_names.clone(),
                scaler,
                model,
            },
        }))
    }
    fn load(&self, read: ArtifactReader<'_>, source: &str) -> Result<Box<dyn Model>> {
        let name = format!("{source}/{BASELINE_ARTIFACT}");
        let bad = |reason: String| Error::CorruptModel { source_name: name.clone(), reason };
        let stored: Stored<L::Fitted> =
            serde_json::from_slice(&read(BASELINE_ARTIFACT)?).map_err(|e| bad(e.to_string()))?;
        if stored.format != FORMAT {
            return Err(bad(format!("format {} (this build reads {FORMAT})", stored.format)));
        }
        if stored.kind != L::NAME {
            return Err(bad(format!("holds a `{}` model, not `{}`", stored.kind, L::NAME)));
        }
        if stored.scaler.mean.len() != stored.scaler.scale.len() || stored.scaler.width() != stored.feature_names.len()
        {
            return Err(bad("scaler and feature list disagree in width".into()));
        }
        Ok(Box::new(Baseline { stored }))
    }
    fn memory_mb(&self, rows: usize, features: usize, threads: usize) -> u64 {
        let cells = (rows * features.max(1)) as f64;
        let per = L::default().bytes_per_cell();
        let bytes = cells * (4.0 + 8.0 + threads.max(1) as f64 * per);
        (1.5 * bytes / (1024.0 * 1024.0)).ceil() as u64 + 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn the_scaler_learns_from_its_rows_only_and_imputes_the_mean() {
        let train = array![[1.0f32, 5.0], [3.0, 5.0], [f32::NAN, 5.0]];
        let s = Standardiser::fit(train.view());
        // Column 0: mean 2, sd √2 from the two finite values; column 1 constant → scale 1.
        let out = s.apply(array![[2.0f32, 7.0], [f32::INFINITY, 5.0]].view());
        assert!((out[[0, 0]]).abs() < 1e-12);
        assert!((out[[0, 1]] - 2.0).abs() < 1e-12);
        assert_eq!(out[[1, 0]], 0.0, "a non-finite value is the training mean");
        assert_eq!(out[[1, 1]], 0.0);
        let far = s.apply(array![[1.0f32 + 2.0f32.sqrt(), 5.0]].view());
        assert!((far[[0, 0]] - (1.0 + 2.0f64.sqrt() - 2.0) / 2.0f64.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn class_ids_name_the_bad_row() {
        assert_eq!(class_ids("logreg", &[0.0, 1.0, 2.0], 3).unwrap(), vec![0, 1, 2]);
        let err = class_ids("logreg", &[0.0, 0.5], 2).unwrap_err().to_string();
        assert!(err.contains("logreg") && err.contains("row 1"), "{err}");
        assert!(class_ids("tree", &[3.0], 3).is_err());
    }
}

//! `forest`: a random forest (smartcore: bootstrap rows, `√features` candidates per split)
//! on standardised features — binary, multi-class and regression.
//!
//! Each tree is its own one-tree smartcore forest with a seed drawn from the forest's seed
//! and the tree's index. That keeps smartcore's sampling while letting the trees fit side by
//! side in the caller's rayon pool (the same trees whatever the thread count), the fit stop
//! between trees when cancelled, and the forest answer with probabilities: the share of trees
//! voting for each class (smartcore itself only returns the majority class), Laplace-smoothed
//! — `(votes + 1) / (trees + classes)` — so that a unanimous forest never claims certainty and
//! the log-loss and calibration the decision reads stay finite. A regression forest averages
//! its trees. smartcore is fed through its own `DenseMatrix`, so its ndarray
//! never meets ours.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_classifier::{RandomForestClassifier, RandomForestClassifierParameters};
use smartcore::ensemble::random_forest_regressor::{RandomForestRegressor, RandomForestRegressorParameters};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_classifier::SplitCriterion;

use ndarray::Array2;

use super::ModelKind;
use super::baseline::{BaselineKind, Fitted, Learner, class_ids, dense};
use crate::error::{Error, Result};
use crate::features::Task;

/// Hyperparameters of `forest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForestParams {
    /// Trees (default 100).
    pub n_trees: usize,
    /// Deepest level of a tree (default 8; `null` grows until leaves are pure).
    pub max_depth: Option<u16>,
    /// Fewest training rows in a leaf (default 20).
    pub min_samples_leaf: usize,
    /// Candidate features per split (default `null`: ⌊√features⌋).
    pub max_features: Option<usize>,
    /// Bootstrap and feature sampling seed.
    pub seed: u64,
    /// Most training rows a fit accepts (default 100,000: one fit of 100 trees at 60
    /// features takes about a minute on 2 cores, a job's 15 CPCV fits about 15; see
    /// docs/baselines.md).
    pub max_rows: usize,
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            n_trees: 100,
            max_depth: Some(8),
            min_samples_leaf: 20,
            max_features: None,
            seed: 0,
            max_rows: 100_000,
        }
    }
}

pub(super) const FOREST: BaselineKind<ForestParams> = BaselineKind::new();

impl ModelKind {
    /// A random forest (smartcore).
    pub const FOREST: ModelKind = ModelKind(&FOREST);
}

type Classifier = RandomForestClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;
type Regressor = RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>;

/// A fitted forest.
#[derive(Serialize, Deserialize)]
pub(super) enum ForestModel {
    /// One-tree classifiers over `classes` classes.
    Classifier {
        /// Class count.
        classes: usize,
        /// The trees.
        trees: Vec<Classifier>,
    },
    /// One-tree regressors.
    Regressor(Vec<Regressor>),
}

fn failed(e: impl std::fmt::Display) -> Error {
    Error::Learner { kind: "forest", reason: e.to_string() }
}

impl ForestParams {
    /// Fit `n_trees` trees side by side, tree `i` from its own seed, kept in index order (the
    /// same forest whatever the thread count). Each tree polls `keep_going` before it starts,
    /// so a cancelled fit stops within one tree per worker.
    fn grow<T: Send>(
        &self,
        keep_going: &(dyn Fn() -> bool + Sync),
        fit_one: impl Fn(u64) -> std::result::Result<T, smartcore::error::Failed> + Sync,
    ) -> Result<Vec<T>> {
        (0..self.n_trees)
            .into_par_iter()
            .filter(|_| keep_going())
            .map(|i| fit_one(crate::rng::mix(self.seed ^ crate::rng::mix(i as u64 + 1))).map_err(failed))
            .collect()
    }
}

impl Learner for ForestParams {
    type Fitted = ForestModel;
    const NAME: &'static str = "forest";
    const ABOUT: &'static str = "random forest on standardised features (smartcore; classification and regression)";

    fn supports(_task: Task) -> bool {
        true
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
        if self.n_trees == 0 || self.n_trees > u16::MAX as usize {
            return Err(Error::param("n_trees", format!("forest: must be in 1..=65535, got {}", self.n_trees)));
        }
        if self.max_depth == Some(0) {
            return Err(Error::param("max_depth", "forest: must be ≥ 1 (or null)"));
        }
        if self.min_samples_leaf == 0 {
            return Err(Error::param("min_samples_leaf", "forest: must be ≥ 1"));
        }
        if self.max_features == Some(0) {
            return Err(Error::param("max_features", "forest: must be ≥ 1 (or null)"));
        }
        Ok(())
    }
    fn fit(
        &self,
        x: &Array2<f64>,
        y: &[f64],
        task: Task,
        keep_going: &(dyn Fn() -> bool + Sync),
    ) -> Result<ForestModel> {
        let m = dense(x)?;
        let mtry = self.max_features.map(|f| f.min(x.ncols()));
        match task {
            Task::Regression => {
                let y = y.to_vec();
                let trees = self.grow(keep_going, |seed| {
                    let p = RandomForestRegressorParameters {
                        max_depth: self.max_depth,
                        min_samples_leaf: self.min_samples_leaf,
                        min_samples_split: 2 * self.min_samples_leaf,
                        n_trees: 1,
                        m: mtry,
                        keep_samples: false,
                        seed,
                    };
                    Regressor::fit(&m, &y, p)
                })?;
                Ok(ForestModel::Regressor(trees))
            }
            _ => {
                let classes = match task {
                    Task::Multiclass { classes } => classes,
                    _ => 2,
                };
                let ids: Vec<u32> = class_ids(Self::NAME, y, classes)?.into_iter().map(|c| c as u32).collect();
                let trees = self.grow(keep_going, |seed| {
                    let p = RandomForestClassifierParameters {
                        criterion: SplitCriterion::Gini,
                        max_depth: self.max_depth,
                        min_samples_leaf: self.min_samples_leaf,
                        min_samples_split: 2 * self.min_samples_leaf,
                        n_trees: 1,
                        m: mtry,
                        keep_samples: false,
                        seed,
                    };
                    Classifier::fit(&m, &ids, p)
                })?;
                Ok(ForestModel::Classifier { classes, trees })
            }
        }
    }
    /// smartcore keeps a sorted index per feature per tree being grown.
    fn bytes_per_cell(&self) -> f64 {
        24.0
    }
}

impl Fitted for ForestModel {
    fn outputs(&self, x: &Array2<f64>, task: Task) -> Result<Array2<f64>> {
        let m = dense(x)?;
        let n = x.nrows();
        match self {
            ForestModel::Regressor(trees) => {
                let mut sum = vec![0.0f64; n];
                for t in trees {
                    for (s, v) in sum.iter_mut().zip(t.predict(&m).map_err(failed)?) {
                        *s += v;
                    }
                }
                let k = trees.len().max(1) as f64;
                Ok(Array2::from_shape_fn((n, 1), |(i, _)| sum[i] / k))
            }
            ForestModel::Classifier { classes, trees } => {
                let mut votes = Array2::<f64>::zeros((n, *classes));
                for t in trees {
                    for (i, c) in t.predict(&m).map_err(failed)?.into_iter().enumerate() {
                        if (c as usize) < *classes {
                            votes[[i, c as usize]] += 1.0;
                        }
                    }
                }
                votes += 1.0;
                votes /= (trees.len() + *classes) as f64;
                Ok(match task {
                    Task::Binary => votes.column(1).to_owned().insert_axis(ndarray::Axis(1)),
                    _ => votes,
                })
            }
        }
    }
}

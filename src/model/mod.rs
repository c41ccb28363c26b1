//! The model-kind seam: what every learner shares, so that validation, the lifecycle and the
//! CLI train, score, store and serve any kind without knowing which one is behind it.
//!
//! Two levels. [`Fit`] and [`Predict`] are the typed pair a hyperparameter struct and its
//! fitted model implement (cross-validation is generic over them). [`Kind`] is the
//! type-erased description of one *model kind* — its name, default hyperparameters for a
//! [`Task`], how it fits, how its artifacts are stored and loaded — and [`ModelKind`] is a
//! cheap handle to a registered kind, parsed from and serialised as its name.
//!
//! Each kind lives in one file of this folder (`gbdt.rs`: `xgboost`, `lightgbm`; `nn.rs`:
//! `nhits`, `patchtst`; the baselines `logreg.rs`, `tree.rs`, `forest.rs`, `ridge.rs`, which
//! share `baseline.rs`). Adding a kind is one new file implementing [`Kind`] plus one line in
//! `KINDS`; `docs/architecture.md` walks through it.

mod baseline;
mod forest;
mod gbdt;
mod logreg;
mod nn;
mod ridge;
mod tree;

use std::fmt;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::{Dataset, FeatureSpec, Task};

pub use baseline::BASELINE_ARTIFACT;
pub use forest::ForestParams;
pub use gbdt::{GBDT_ARTIFACT, objective_for};
pub use logreg::LogregParams;
pub use ridge::RidgeParams;
pub use tree::{Criterion, TreeParams};

/// Every registered model kind, in the order `--help` and errors list them. Add a kind here.
const KINDS: &[&dyn Kind] = &[
    &gbdt::XGBOOST,
    &gbdt::LIGHTGBM,
    &nn::NHITS,
    &nn::PATCHTST,
    &logreg::LOGREG,
    &tree::TREE,
    &forest::FOREST,
    &ridge::RIDGE,
];

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
    /// Whether a fit draws anything from its seed: `Some(false)` lets a seed study skip
    /// refits that would repeat seed 0 exactly; `None` (unknown) makes the study find out.
    fn draws_from_seed(&self) -> Option<bool> {
        None
    }
}

/// A fitted model that scores feature rows.
pub trait Predict {
    /// Outputs per row (1, or the class count).
    fn n_outputs(&self) -> usize;
    /// User-facing outputs (probability, class probabilities or value), `n × n_outputs`.
    fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>>;
}

impl<M: Predict + ?Sized> Predict for Box<M> {
    fn n_outputs(&self) -> usize {
        (**self).n_outputs()
    }
    fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        (**self).predict(x)
    }
}

/// A fitted model of any kind, as the lifecycle stores and serves it.
pub trait Model: Predict + Send + Sync {
    /// What its label asked for.
    fn task(&self) -> Task;
    /// The files that store it (name, bytes).
    fn artifacts(&self) -> Result<Vec<(String, Vec<u8>)>>;
    /// The feature columns it reads, given the version's stored spec (a network adds its
    /// lookback window).
    fn features(&self, spec: &FeatureSpec) -> FeatureSpec {
        spec.clone()
    }
    /// The common trading call of each row.
    fn signals(&self, x: ArrayView2<'_, f32>) -> Result<Vec<Signal>> {
        let out = self.predict(x)?;
        let task = self.task();
        Ok(out.rows().into_iter().map(|r| Signal::from_outputs(task, &r.to_vec(), None)).collect())
    }
}

/// Reads one stored artifact of a version by name (checksums verified by the store).
pub type ArtifactReader<'a> = &'a dyn Fn(&str) -> Result<Vec<u8>>;

/// One model kind: implement it in one file of `src/model/` and list it in `KINDS`.
///
/// Hyperparameters cross this trait as JSON (`serde_json::Value`), the form the version
/// store keeps; each kind parses them into its own typed struct and rejects unknown keys.
pub trait Kind: Send + Sync {
    /// Its name in configs, the CLI and the store (`lightgbm`).
    fn name(&self) -> &'static str;
    /// One line for listings and `--help`.
    fn about(&self) -> &'static str;
    /// Whether it models a label of this task (a fit of another fails with a typed error; the
    /// deployment gate uses only the baselines that model the label at hand).
    fn supports(&self, _task: Task) -> bool {
        true
    }
    /// Default hyperparameters for `task` (the objective follows the task).
    fn default_params(&self, task: Task) -> serde_json::Value;
    /// Check that `params` are this kind's hyperparameters (errors name the bad key).
    fn check_params(&self, params: &serde_json::Value) -> Result<()>;
    /// The feature spec a fit reads, given the user's (a network adds its lookback window).
    fn features(&self, _params: &serde_json::Value, spec: &FeatureSpec) -> Result<FeatureSpec> {
        Ok(spec.clone())
    }
    /// Whether a fit takes a validation slice (early stopping, calibration).
    fn uses_validation(&self, params: &serde_json::Value) -> Result<bool>;
    /// The hyperparameters with another seed.
    fn with_seed(&self, params: &serde_json::Value, seed: u64) -> Result<serde_json::Value>;
    /// The seed the hyperparameters fix.
    fn seed(&self, params: &serde_json::Value) -> Option<u64>;
    /// Whether a fit with `params` draws anything from the seed (`None`: not known).
    fn draws_from_seed(&self, _params: &serde_json::Value) -> Option<bool> {
        None
    }
    /// Whether cross-validation may fit splits concurrently in the caller's pool (a kind
    /// that runs its own worker threads inside each fit says no).
    fn fits_in_parallel(&self) -> bool;
    /// Train. `keep_going` is polled between rounds or batches; when it says no the fit
    /// stops early (the caller then discards the partial model). Runs in the caller's pool.
    fn fit(
        &self,
        params: &serde_json::Value,
        train: &Dataset,
        valid: Option<&Dataset>,
        keep_going: &(dyn Fn() -> bool + Sync),
    ) -> Result<Box<dyn Model>>;
    /// Rebuild a fitted model from its stored artifacts; `source` (`model/tag`) names the
    /// version in errors.
    fn load(&self, read: ArtifactReader<'_>, source: &str) -> Result<Box<dyn Model>>;
    /// The feature columns a stored version reads, from its small artifacts only (drift
    /// checks need them without loading weights).
    fn stored_features(&self, spec: &FeatureSpec, _read: ArtifactReader<'_>) -> Result<FeatureSpec> {
        Ok(spec.clone())
    }
    /// Rough peak memory in MiB of a job on `rows × features` with `threads` workers (×1.5
    /// headroom): enough to refuse a window that cannot fit, not to budget bytes.
    fn memory_mb(&self, rows: usize, features: usize, threads: usize) -> u64;
}

/// A handle to a registered model kind; serialised as its name.
#[derive(Clone, Copy)]
pub struct ModelKind(&'static dyn Kind);

impl ModelKind {
    /// Every registered kind.
    pub fn all() -> impl Iterator<Item = ModelKind> {
        KINDS.iter().map(|k| ModelKind(*k))
    }

    /// The names of every registered kind, comma-separated (for messages).
    pub fn names() -> String {
        KINDS.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// The kind's description and behaviour.
    pub fn kind(self) -> &'static dyn Kind {
        self.0
    }

    /// Its default hyperparameters for `task`.
    pub fn recipe(self, task: Task) -> Recipe {
        Recipe { kind: self, params: self.0.default_params(task) }
    }
}

impl PartialEq for ModelKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for ModelKind {}

impl std::hash::Hash for ModelKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl fmt::Debug for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl std::str::FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ModelKind::all()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::param("model", format!("unknown model kind {s:?} (known: {})", ModelKind::names())))
    }
}

impl Serialize for ModelKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ModelKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A kind with its hyperparameters: what a job or a cross-validation trains. The kind has
/// checked the hyperparameters when the recipe was made, so its other calls cannot fail on
/// them.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    kind: ModelKind,
    params: serde_json::Value,
}

impl Recipe {
    /// The kind.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// The hyperparameters (the kind's JSON form, as stored with a version).
    pub fn params(&self) -> &serde_json::Value {
        &self.params
    }

    /// The hyperparameters, taken out.
    pub fn into_params(self) -> serde_json::Value {
        self.params
    }

    /// `kind` with `params`, checked by the kind.
    pub fn new(kind: ModelKind, params: serde_json::Value) -> Result<Recipe> {
        kind.0.check_params(&params)?;
        Ok(Recipe { kind, params })
    }

    /// The feature spec a fit reads, given the user's.
    pub fn features(&self, spec: &FeatureSpec) -> Result<FeatureSpec> {
        self.kind.0.features(&self.params, spec)
    }

    /// The seed the hyperparameters fix.
    pub fn seed(&self) -> Option<u64> {
        self.kind.0.seed(&self.params)
    }

    /// Train, polling `keep_going` between rounds or batches.
    pub fn fit_observed(
        &self,
        train: &Dataset,
        valid: Option<&Dataset>,
        keep_going: &(dyn Fn() -> bool + Sync),
    ) -> Result<Box<dyn Model>> {
        self.kind.0.fit(&self.params, train, valid, keep_going)
    }
}

impl Fit for Recipe {
    type Model = Box<dyn Model>;
    fn fit(&self, train: &Dataset, valid: Option<&Dataset>) -> Result<Box<dyn Model>> {
        self.fit_observed(train, valid, &|| true)
    }
    fn uses_validation(&self) -> bool {
        self.kind.0.uses_validation(&self.params).expect("checked when the recipe was made")
    }
    fn with_seed(&self, seed: u64) -> Self {
        let params = self.kind.0.with_seed(&self.params, seed).expect("checked when the recipe was made");
        Recipe { kind: self.kind, params }
    }
    fn draws_from_seed(&self) -> Option<bool> {
        self.kind.0.draws_from_seed(&self.params)
    }
}

/// Parse `params` as the typed hyperparameters `P` of kind `kind` (errors name the kind).
fn parse_params<P: serde::de::DeserializeOwned>(kind: &str, params: &serde_json::Value) -> Result<P> {
    serde_json::from_value(params.clone()).map_err(|e| Error::param("hyperparameters", format!("{kind}: {e}")))
}

/// `params` as JSON (hyperparameter structs always serialise).
fn to_value<P: Serialize>(params: &P) -> serde_json::Value {
    serde_json::to_value(params).expect("hyperparameters serialise")
}

/// A model's call on one row, the same for every kind.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// −1 short, 0 flat, +1 long.
    pub direction: i8,
    /// Calibrated probability of that direction (`None` for a regression label).
    pub probability: Option<f64>,
    /// The model's return forecast over the label horizon where it makes one (the networks'
    /// score, a regression's value), else `None`.
    pub expected_return: Option<f64>,
}

impl Signal {
    /// From a model's outputs for `task` (P(up) for binary, class probabilities down / flat /
    /// up for three classes, a value for regression) and the return forecast, if any.
    pub fn from_outputs(task: Task, out: &[f64], expected_return: Option<f64>) -> Signal {
        let expected_return = expected_return.filter(|r| r.is_finite());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_serialise_and_list() {
        for k in ModelKind::all() {
            let parsed: ModelKind = k.name().parse().unwrap();
            assert_eq!(parsed, k);
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(serde_json::from_str::<ModelKind>(&json).unwrap(), k);
            // Every kind's defaults pass its own check, for every task.
            for task in [Task::Binary, Task::Multiclass { classes: 3 }, Task::Regression] {
                let r = k.recipe(task);
                assert!(Recipe::new(k, r.params().clone()).is_ok(), "{k} {task:?}");
                let reseeded = r.with_seed(7);
                assert_eq!(reseeded.seed(), Some(7), "{k}");
            }
        }
        assert_eq!(ModelKind::names(), "xgboost, lightgbm, nhits, patchtst, logreg, tree, forest, ridge");
        let err = "tabnet".parse::<ModelKind>().unwrap_err().to_string();
        assert!(err.contains("tabnet") && err.contains("lightgbm"), "{err}");
        assert!(serde_json::from_str::<ModelKind>("\"tabnet\"").is_err());
    }

    #[test]
    fn a_kind_rejects_another_kinds_params() {
        let gbdt = ModelKind::LIGHTGBM.recipe(Task::Binary).into_params();
        let net = ModelKind::NHITS.recipe(Task::Binary).into_params();
        assert!(Recipe::new(ModelKind::NHITS, gbdt.clone()).is_err());
        assert!(Recipe::new(ModelKind::XGBOOST, net).is_err());
        let mut bad = gbdt;
        bad["no_such_key"] = serde_json::json!(1);
        let err = Recipe::new(ModelKind::LIGHTGBM, bad).unwrap_err().to_string();
        assert!(err.contains("lightgbm") && err.contains("no_such_key"), "{err}");
    }

    #[test]
    fn signals_follow_the_task() {
        let s = Signal::from_outputs(Task::Binary, &[0.3], None);
        assert_eq!((s.direction, s.probability), (-1, Some(0.7)));
        let s = Signal::from_outputs(Task::Multiclass { classes: 3 }, &[0.2, 0.5, 0.3], Some(0.01));
        assert_eq!((s.direction, s.probability, s.expected_return), (0, Some(0.5), Some(0.01)));
        let s = Signal::from_outputs(Task::Regression, &[-0.02], None);
        assert_eq!((s.direction, s.probability, s.expected_return), (-1, None, Some(-0.02)));
        // A non-finite forecast is no forecast.
        assert_eq!(Signal::from_outputs(Task::Binary, &[0.9], Some(f64::NAN)).expected_return, None);
    }
}

//! The native histogram GBDT as two model kinds: `xgboost` (depth-wise growth, max depth 6,
//! λ2 = 1) and `lightgbm` (leaf-wise growth, 31 leaves), both 100 rounds at learning rate 0.1.
//! One engine, one adapter: the kinds differ only in their default [`GbdtParams`]. A version
//! stores the booster as one binary artifact, [`GBDT_ARTIFACT`].

use ndarray::{Array2, ArrayView2};

use super::{ArtifactReader, Fit, Kind, Model, ModelKind, Predict, parse_params, to_value};
use crate::error::Result;
use crate::features::{Dataset, Task};
use crate::gbdt::{FitOptions, Gbdt, GbdtParams, ObjectiveKind, RoundEval, TrainData};

/// The model artifact of a GBDT version.
pub const GBDT_ARTIFACT: &str = "model.bin";

/// The GBDT objective a task needs.
pub fn objective_for(task: Task) -> ObjectiveKind {
    match task {
        Task::Binary => ObjectiveKind::Binary,
        Task::Multiclass { classes } => ObjectiveKind::Multiclass { num_class: classes },
        Task::Regression => ObjectiveKind::Regression,
    }
}

/// A GBDT kind: a name and the preset it starts from.
pub(super) struct GbdtKind {
    name: &'static str,
    about: &'static str,
    preset: fn() -> GbdtParams,
}

/// `xgboost`: depth-wise growth.
pub(super) const XGBOOST: GbdtKind = GbdtKind {
    name: "xgboost",
    about: "native histogram GBDT, depth-wise growth (max depth 6, λ2 = 1, 100 rounds, lr 0.1)",
    preset: GbdtParams::xgboost,
};

/// `lightgbm`: leaf-wise growth.
pub(super) const LIGHTGBM: GbdtKind = GbdtKind {
    name: "lightgbm",
    about: "native histogram GBDT, leaf-wise growth (31 leaves, 100 rounds, lr 0.1)",
    preset: GbdtParams::lightgbm,
};

impl ModelKind {
    /// The native GBDT with depth-wise growth.
    pub const XGBOOST: ModelKind = ModelKind(&XGBOOST);
    /// The native GBDT with leaf-wise growth.
    pub const LIGHTGBM: ModelKind = ModelKind(&LIGHTGBM);
}

impl GbdtKind {
    fn parse(&self, params: &serde_json::Value) -> Result<GbdtParams> {
        let p: GbdtParams = parse_params(self.name, params)?;
        p.validate()?;
        Ok(p)
    }
}

impl Kind for GbdtKind {
    fn name(&self) -> &'static str {
        self.name
    }
    fn about(&self) -> &'static str {
        self.about
    }
    fn default_params(&self, task: Task) -> serde_json::Value {
        let mut p = (self.preset)();
        p.objective = objective_for(task);
        to_value(&p)
    }
    fn check_params(&self, params: &serde_json::Value) -> Result<()> {
        self.parse(params).map(drop)
    }
    fn uses_validation(&self, params: &serde_json::Value) -> Result<bool> {
        Ok(self.parse(params)?.uses_validation())
    }
    fn with_seed(&self, params: &serde_json::Value, seed: u64) -> Result<serde_json::Value> {
        Ok(to_value(&self.parse(params)?.seed(seed)))
    }
    fn seed(&self, params: &serde_json::Value) -> Option<u64> {
        self.parse(params).ok().map(|p| p.seed)
    }
    fn draws_from_seed(&self, params: &serde_json::Value) -> Option<bool> {
        self.parse(params).ok().map(|p| p.draws_from_seed())
    }
    fn fits_in_parallel(&self) -> bool {
        true
    }
    fn fit(
        &self,
        params: &serde_json::Value,
        train: &Dataset,
        valid: Option<&Dataset>,
        keep_going: &(dyn Fn() -> bool + Sync),
    ) -> Result<Box<dyn Model>> {
        let mut p = self.parse(params)?;
        // A kind fits in the caller's pool: a private pool per fit would oversubscribe the
        // splits that cross-validation runs side by side.
        p.threads = None;
        let t = TrainData::from_dataset(train)?;
        let v = valid.map(TrainData::from_dataset).transpose()?;
        let mut on_round = |_: &RoundEval| keep_going();
        let opts = FitOptions { on_round: Some(&mut on_round), ..FitOptions::default() };
        let mut m = p.fit_with(&t, v.as_ref(), opts)?;
        m.feature_names = train.feature_names.clone();
        Ok(Box::new(m))
    }
    fn load(&self, read: ArtifactReader<'_>, source: &str) -> Result<Box<dyn Model>> {
        Ok(Box::new(Gbdt::from_bytes(&read(GBDT_ARTIFACT)?, &format!("{source}/{GBDT_ARTIFACT}"))?))
    }
    /// The f32 matrix and its row copies, plus per concurrent fit (one per thread) a
    /// training subset, its u8 bins and 64 MiB of histograms.
    fn memory_mb(&self, rows: usize, features: usize, threads: usize) -> u64 {
        let cells = (rows * features.max(1)) as f64;
        let t = threads.max(1) as f64;
        let bytes = cells * (4.0 * 2.0 + t * (4.0 + 1.0)) + t * 64.0 * 1024.0 * 1024.0;
        (1.5 * bytes / (1024.0 * 1024.0)).ceil() as u64 + 64
    }
}

impl Fit for GbdtParams {
    type Model = Gbdt;
    fn fit(&self, train: &Dataset, valid: Option<&Dataset>) -> Result<Gbdt> {
        self.fit_dataset(train, valid)
    }
    fn uses_validation(&self) -> bool {
        self.early_stopping_rounds.is_some()
    }
    fn with_seed(&self, seed: u64) -> Self {
        self.clone().seed(seed)
    }
    fn draws_from_seed(&self) -> Option<bool> {
        Some(GbdtParams::draws_from_seed(self))
    }
}

impl Predict for Gbdt {
    fn n_outputs(&self) -> usize {
        self.num_outputs
    }
    fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        Gbdt::predict(self, x)
    }
}

impl Model for Gbdt {
    fn task(&self) -> Task {
        match self.objective {
            Some(ObjectiveKind::Binary) => Task::Binary,
            Some(ObjectiveKind::Multiclass { num_class }) => Task::Multiclass { classes: num_class },
            _ => Task::Regression,
        }
    }
    fn artifacts(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(vec![(GBDT_ARTIFACT.to_string(), self.to_bytes())])
    }
}

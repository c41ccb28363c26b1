//! The networks as two model kinds: `nhits` (N-HiTS: hidden 128, 3 stacks, window-standardised
//! inputs) and `patchtst` (PatchTST: d_model 128, 8 heads, 3 layers), both 50 epochs with early
//! stopping on a 64-bar lookback of one-bar log returns. A network reads its window from the
//! rows (an ordinary causal feature the kind adds to the spec), trains with candle's own worker
//! threads (so cross-validation fits one split at a time), and is stored as `net.json`
//! (everything but the weights) plus `weights.safetensors`.

use ndarray::{Array2, ArrayView2};

use super::{ArtifactReader, Fit, Kind, Model, ModelKind, Predict, Signal, parse_params, to_value};
use crate::error::{Error, Result};
use crate::features::{Dataset, FeatureSpec, Task};
use crate::nn::forecaster::{META_ARTIFACT, NetMeta, WEIGHTS_ARTIFACT};
use crate::nn::{NetConfig, NnParams, TrainedNet};

/// A network kind: a name and the preset it starts from.
pub(super) struct NetKind {
    name: &'static str,
    about: &'static str,
    preset: fn() -> NnParams,
    is_mine: fn(&NetConfig) -> bool,
}

/// `nhits`.
pub(super) const NHITS: NetKind = NetKind {
    name: "nhits",
    about: "N-HiTS in candle (hidden 128, 3 stacks, 50 epochs with early stopping)",
    preset: NnParams::nhits,
    is_mine: |n| matches!(n, NetConfig::Nhits(_)),
};

/// `patchtst`.
pub(super) const PATCHTST: NetKind = NetKind {
    name: "patchtst",
    about: "PatchTST in candle (d_model 128, 8 heads, 3 layers, 50 epochs with early stopping)",
    preset: NnParams::patchtst,
    is_mine: |n| matches!(n, NetConfig::Patchtst(_)),
};

impl ModelKind {
    /// N-HiTS.
    pub const NHITS: ModelKind = ModelKind(&NHITS);
    /// PatchTST.
    pub const PATCHTST: ModelKind = ModelKind(&PATCHTST);
}

impl NetKind {
    fn parse(&self, params: &serde_json::Value) -> Result<NnParams> {
        let p: NnParams = parse_params(self.name, params)?;
        if !(self.is_mine)(&p.net) {
            return Err(Error::param("hyperparameters", format!("{}: `net` configures another network", self.name)));
        }
        p.train.validate()?;
        Ok(p)
    }
}

impl Kind for NetKind {
    fn name(&self) -> &'static str {
        self.name
    }
    fn about(&self) -> &'static str {
        self.about
    }
    /// The network forecasts returns whatever the task; a calibration fitted on the
    /// validation rows maps its score to the task's outputs.
    fn default_params(&self, _task: Task) -> serde_json::Value {
        to_value(&(self.preset)())
    }
    fn check_params(&self, params: &serde_json::Value) -> Result<()> {
        self.parse(params).map(drop)
    }
    fn features(&self, params: &serde_json::Value, spec: &FeatureSpec) -> Result<FeatureSpec> {
        Ok(self.parse(params)?.with_window(spec))
    }
    fn uses_validation(&self, params: &serde_json::Value) -> Result<bool> {
        self.parse(params).map(|p| p.uses_validation())
    }
    fn with_seed(&self, params: &serde_json::Value, seed: u64) -> Result<serde_json::Value> {
        Ok(to_value(&self.parse(params)?.with_seed(seed)))
    }
    fn seed(&self, params: &serde_json::Value) -> Option<u64> {
        self.parse(params).ok().map(|p| p.train.seed)
    }
    fn fits_in_parallel(&self) -> bool {
        false
    }
    fn fit(
        &self,
        params: &serde_json::Value,
        train: &Dataset,
        valid: Option<&Dataset>,
        keep_going: &(dyn Fn() -> bool + Sync),
    ) -> Result<Box<dyn Model>> {
        let p = self.parse(params)?;
        Ok(Box::new(p.fit_observed(train, valid, &mut |_| keep_going())?))
    }
    fn load(&self, read: ArtifactReader<'_>, source: &str) -> Result<Box<dyn Model>> {
        let net =
            TrainedNet::from_artifacts(&read(META_ARTIFACT)?, &read(WEIGHTS_ARTIFACT)?, &candle_core::Device::Cpu)
                .map_err(|e| match e {
                    Error::CorruptModel { source_name, reason } => {
                        Error::CorruptModel { source_name: format!("{source}/{source_name}"), reason }
                    }
                    e => e,
                })?;
        Ok(Box::new(net))
    }
    fn stored_features(&self, spec: &FeatureSpec, read: ArtifactReader<'_>) -> Result<FeatureSpec> {
        let meta: NetMeta = serde_json::from_slice(&read(META_ARTIFACT)?)
            .map_err(|e| Error::CorruptModel { source_name: META_ARTIFACT.into(), reason: e.to_string() })?;
        Ok(meta.params.with_window(spec))
    }
    /// The matrix twice plus its lookback windows, materialised a batch at a time (counted
    /// as lookback ÷ 4 copies).
    fn memory_mb(&self, rows: usize, features: usize, _threads: usize) -> u64 {
        let cells = (rows * features.max(1)) as f64;
        let bytes = cells * 4.0 * (2.0 + (self.preset)().lookback as f64 / 4.0);
        (1.5 * bytes / (1024.0 * 1024.0)).ceil() as u64 + 64
    }
}

impl Fit for NnParams {
    type Model = TrainedNet;
    fn fit(&self, train: &Dataset, valid: Option<&Dataset>) -> Result<TrainedNet> {
        self.fit_observed(train, valid, &mut |_| true)
    }
    /// Always: the validation slice steers early stopping and fits the calibration.
    fn uses_validation(&self) -> bool {
        true
    }
    fn with_seed(&self, seed: u64) -> Self {
        let mut p = self.clone();
        p.train.seed = seed;
        p
    }
}

impl Predict for TrainedNet {
    fn n_outputs(&self) -> usize {
        TrainedNet::n_outputs(self)
    }
    fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        TrainedNet::predict(self, x)
    }
}

impl Model for TrainedNet {
    fn task(&self) -> Task {
        self.meta().task
    }
    fn artifacts(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.to_artifacts()
    }
    fn features(&self, spec: &FeatureSpec) -> FeatureSpec {
        self.meta().params.with_window(spec)
    }
    /// The calibrated call, with the raw score as the return forecast.
    fn signals(&self, x: ArrayView2<'_, f32>) -> Result<Vec<Signal>> {
        let scores = self.scores(x)?;
        let calibration = &self.meta().calibration;
        let mut out = vec![0.0; calibration.n_outputs()];
        Ok(scores
            .into_iter()
            .map(|s| {
                calibration.apply(s, &mut out);
                Signal::from_outputs(self.meta().task, &out, Some(s))
            })
            .collect())
    }
}

//! PatchTST and N-HiTS as trading models: [`NnParams::fit_observed`] trains on a
//! [`Dataset`] and [`TrainedNet`] scores its rows, so that the model layer can offer the
//! networks to cross-validation and the lifecycle like any other kind.
//!
//! **Inputs.** A network reads each row's lookback window of its channels (by default the
//! one-bar log return) from the dataset's [`Feature::Window`] columns `{channel}_lag{k}`;
//! [`NnParams::with_window`] adds them to a feature spec. Because the window is an ordinary
//! causal feature, a row carries its own history: prediction needs nothing but the row, and
//! the embargo after a test block covers the window through the spec's longest lookback.
//!
//! **Targets.** The network forecasts its channels over the label horizon `H`. The target of
//! row `i` is read from the row `H` bars later of the same symbol, which must be in the same
//! training set and provably contiguous: its lags `H..L` must equal row `i`'s lags `0..L−H`
//! bit for bit (so gaps — purged or embargoed rows, missing bars — never make a window).
//! Every target bar lies inside row `i`'s label interval, which purging already keeps away
//! from the test rows.
//!
//! **Signal.** The score of a row is the forecast sum of the first channel over the horizon
//! (with the default channel, the forecast log return to the label's end). A
//! [`Calibration`] fitted on the validation slice maps it to a probability (binary), class
//! probabilities (up/flat/down) or a value (regression); the model layer turns
//! those into the common trading signal. Channels are z-scored with training-row statistics only.

use candle_core::{Device, Tensor};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::{Dataset, Feature, FeatureSpec, Task};
use crate::nn::calibration::Calibration;
use crate::nn::{
    DeviceChoice, NetConfig, NhitsConfig, NnModel, PatchTstConfig, Scaler, TrainConfig, TrainEvent, TrainReport,
    Windows,
};

/// Rows per forward pass when scoring.
const SCORE_BATCH: usize = 1024;

/// Hyperparameters of a network used as a trading model (serde; unknown keys rejected).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NnParams {
    /// The network; its `lookback`, `horizon` and `channels` are set at fit time from the
    /// fields below and the data.
    pub net: NetConfig,
    /// Channel features (each of their columns is one channel; the first column's forecast
    /// is the score). Default: the one-bar log return.
    pub inputs: Vec<Feature>,
    /// Historical exogenous features (N-HiTS only; default none): each column is read over
    /// the lookback next to the channels but not forecast (neuralforecast's
    /// `hist_exog_list`), e.g. volume or volatility features steering a return forecast.
    pub exog: Vec<Feature>,
    /// Lookback window in bars (default 64).
    pub lookback: usize,
    /// Forecast horizon in bars; default the dataset label's horizon.
    pub horizon: Option<usize>,
    /// Training loop settings (default 50 epochs with early stopping).
    pub train: TrainConfig,
    /// Where to compute (default CPU).
    pub device: DeviceChoice,
}

impl Default for NnParams {
    fn default() -> Self {
        NnParams::nhits()
    }
}

impl NnParams {
    /// Kind `nhits`: hidden 128, 3 stacks of 1 block, window-standardised inputs, 50
    /// epochs with early stopping.
    pub fn nhits() -> Self {
        let net = NhitsConfig { scaler: Scaler::Standard, ..NhitsConfig::default() };
        NnParams::with_net(NetConfig::Nhits(net))
    }

    /// Kind `patchtst`: d_model 128, 8 heads, 3 layers, 50 epochs with early stopping.
    pub fn patchtst() -> Self {
        NnParams::with_net(NetConfig::Patchtst(PatchTstConfig::default()))
    }

    fn with_net(net: NetConfig) -> Self {
        NnParams {
            net,
            inputs: vec![Feature::LogReturns { lags: vec![1] }],
            exog: Vec::new(),
            lookback: 64,
            horizon: None,
            train: TrainConfig::default(),
            device: DeviceChoice::Cpu,
        }
    }

    /// The feature that carries the lookback windows (of the channels, then the exogenous
    /// inputs).
    pub fn window_feature(&self) -> Feature {
        Feature::Window { of: self.inputs.iter().chain(&self.exog).cloned().collect(), length: self.lookback }
    }

    /// `spec` plus the window feature (unless it already holds it).
    pub fn with_window(&self, spec: &FeatureSpec) -> FeatureSpec {
        let w = self.window_feature();
        let mut spec = spec.clone();
        if !spec.features.contains(&w) {
            spec.features.push(w);
        }
        spec
    }

    /// Channel names: every column of `inputs`, in order.
    pub fn channels(&self) -> Vec<String> {
        self.inputs.iter().flat_map(Feature::columns).collect()
    }

    /// Exogenous input names: every column of `exog`, in order.
    pub fn exog_channels(&self) -> Vec<String> {
        self.exog.iter().flat_map(Feature::columns).collect()
    }

    /// The network with lookback, horizon and channels filled in (PatchTST, channel-
    /// independent, has no exogenous inputs: listing some is an error).
    fn resolved_net(&self, horizon: usize, channels: usize, exog: usize) -> Result<NetConfig> {
        let mut net = self.net.clone();
        match &mut net {
            NetConfig::Patchtst(_) if exog > 0 => {
                return Err(Error::param(
                    "exog",
                    "PatchTST is channel-independent and reads no exogenous inputs: list the series in `inputs` \
                     (each becomes a forecast channel) or use N-HiTS",
                ));
            }
            NetConfig::Patchtst(c) => (c.lookback, c.horizon, c.channels) = (self.lookback, horizon, channels),
            NetConfig::Nhits(c) => {
                (c.lookback, c.horizon, c.channels, c.exog_channels) = (self.lookback, horizon, channels, exog)
            }
        }
        Ok(net)
    }

    /// Train on `train`, early-stopping and calibrating on `valid` (without one, calibration
    /// uses the training rows and says so); `on_event` sees every batch and epoch and may
    /// cancel by returning `false` (the best weights so far are kept).
    pub fn fit_observed(
        &self,
        train: &Dataset,
        valid: Option<&Dataset>,
        on_event: &mut dyn FnMut(&TrainEvent) -> bool,
    ) -> Result<TrainedNet> {
        self.train.validate()?;
        if self.inputs.is_empty() {
            return Err(Error::param("inputs", "needs at least one channel feature"));
        }
        let horizon = match (self.horizon, &train.label) {
            (Some(h), _) => h,
            (None, Some(label)) => label.horizon(),
            (None, None) => {
                return Err(Error::param("horizon", "the dataset has no label spec: set the forecast horizon"));
            }
        };
        let lookback = self.lookback;
        if horizon == 0 || lookback <= horizon {
            return Err(Error::param(
                "lookback",
                format!(
                    "must exceed the horizon ({horizon}) so a target window can be checked contiguous, got {lookback}"
                ),
            ));
        }
        let (channels, exog) = (self.channels(), self.exog_channels());
        let net = self.resolved_net(horizon, channels.len(), exog.len())?;
        let all: Vec<String> = channels.iter().chain(&exog).cloned().collect();
        let layout = Layout::find(&train.feature_names, &all, channels.len(), lookback)?;
        let task = Task::of(train);
        let (mean, std) = layout.channel_stats(train.x.view());
        let scale = Scale { mean, std };
        let device = self.device.open()?;
        let mut model = NnModel::new(net, self.train.seed, &device)?;
        let train_w = layout.pairs(train, horizon, &scale)?;
        if train_w.is_empty() {
            return Err(Error::param(
                "rows",
                format!("no training row has {horizon} contiguous rows after it ({} rows)", train.n_rows()),
            ));
        }
        let valid_w = valid.map(|v| layout.pairs(v, horizon, &scale)).transpose()?.filter(|w| !w.is_empty());
        let report = model.fit(&train_w, valid_w.as_ref(), &self.train, on_event)?;
        let mut trained = TrainedNet {
            meta: NetMeta {
                params: NnParams { net: model.config().clone(), horizon: Some(horizon), ..self.clone() },
                columns: layout.columns(&train.feature_names),
                index: layout.index,
                mean: scale.mean,
                std: scale.std,
                task,
                calibration: Calibration::Linear { a: 0.0, b: 1.0 },
                calibration_rows: 0,
                calibrated_on_validation: false,
                train_windows: train_w.len(),
                valid_windows: valid_w.as_ref().map_or(0, Windows::len),
                report,
            },
            model,
        };
        let calib = valid.filter(|v| v.n_rows() > 0).unwrap_or(train);
        let scores = trained.scores(calib.x.view())?;
        let y = calib.y.to_vec();
        trained.meta.calibration = Calibration::fit(task, &scores, &y)?;
        trained.meta.calibration_rows = scores.len();
        trained.meta.calibrated_on_validation = !std::ptr::eq(calib, train);
        Ok(trained)
    }
}

/// Where a window's values sit in a feature row: `index[t·C + c]` is the column of channel
/// `c` at step `t` (step 0 the oldest, lag `L−1`); the first `targets` channels are
/// forecast, the rest exogenous inputs.
struct Layout {
    index: Vec<usize>,
    lookback: usize,
    channels: usize,
    targets: usize,
}

/// Per-channel z-score from training rows.
struct Scale {
    mean: Vec<f64>,
    std: Vec<f64>,
}

impl Scale {
    /// `v` of channel `c` in standard units.
    fn z(&self, v: f32, c: usize) -> f32 {
        ((f64::from(v) - self.mean[c]) / self.std[c]) as f32
    }
}

impl Layout {
    /// The layout of `channels` (the first `targets` forecast, the rest exogenous).
    fn find(names: &[String], channels: &[String], targets: usize, lookback: usize) -> Result<Self> {
        let pos: std::collections::HashMap<&str, usize> =
            names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let mut index = vec![0; lookback * channels.len()];
        for (c, ch) in channels.iter().enumerate() {
            for t in 0..lookback {
                let name = format!("{ch}_lag{}", lookback - 1 - t);
                index[t * channels.len() + c] = *pos.get(name.as_str()).ok_or_else(|| {
                    Error::param(
                        "features",
                        format!(
                            "column `{name}` missing: the dataset needs the window feature \
                             {{ kind = \"window\", length = {lookback} }} over the channels (NnParams::with_window)"
                        ),
                    )
                })?;
            }
        }
        Ok(Layout { index, lookback, channels: channels.len(), targets })
    }

    fn columns(&self, names: &[String]) -> Vec<String> {
        self.index.iter().map(|&i| names[i].clone()).collect()
    }

    /// Mean and standard deviation of each channel's lag-0 column.
    fn channel_stats(&self, x: ArrayView2<'_, f32>) -> (Vec<f64>, Vec<f64>) {
        let last = (self.lookback - 1) * self.channels;
        (0..self.channels)
            .map(|c| {
                let col = x.column(self.index[last + c]);
                let n = col.len().max(1) as f64;
                let mean = col.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
                let var = col.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
                let std = var.sqrt();
                (mean, if std > 0.0 && std.is_finite() { std } else { 1.0 })
            })
            .unzip()
    }

    /// Raw window of row `r`, `[L, C]` row-major.
    fn raw(&self, x: ArrayView2<'_, f32>, r: usize, out: &mut Vec<f32>) {
        out.clear();
        out.extend(self.index.iter().map(|&j| x[[r, j]]));
    }

    /// Standardised inputs of `rows`.
    fn inputs(&self, x: ArrayView2<'_, f32>, rows: std::ops::Range<usize>, scale: &Scale) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows.len() * self.index.len());
        for r in rows {
            out.extend(self.index.iter().enumerate().map(|(k, &j)| scale.z(x[[r, j]], k % self.channels)));
        }
        out
    }

    /// Training windows of `ds`: each row paired with the row `horizon` bars later of the
    /// same symbol when the two windows (exogenous inputs included) overlap exactly; the
    /// targets are the forecast channels of that later row's last `horizon` steps.
    fn pairs(&self, ds: &Dataset, horizon: usize, scale: &Scale) -> Result<Windows> {
        let (l, c, t) = (self.lookback, self.channels, self.targets);
        let x = ds.x.view();
        let mut by_symbol: Vec<Vec<usize>> = vec![Vec::new(); ds.symbols.len().max(1)];
        for (r, &s) in ds.symbol.iter().enumerate() {
            by_symbol[s as usize].push(r);
        }
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for rows in &by_symbol {
            for (p, &i) in rows.iter().enumerate() {
                let Some(&j) = rows.get(p + horizon) else { break };
                self.raw(x, i, &mut a);
                self.raw(x, j, &mut b);
                if a[horizon * c..].iter().zip(&b[..(l - horizon) * c]).any(|(u, v)| u.to_bits() != v.to_bits()) {
                    continue;
                }
                xs.extend(a.iter().enumerate().map(|(k, &v)| scale.z(v, k % c)));
                ys.extend(
                    b[(l - horizon) * c..]
                        .iter()
                        .enumerate()
                        .filter(|(k, _)| k % c < t)
                        .map(|(k, &v)| scale.z(v, k % c)),
                );
            }
        }
        Windows::from_pairs_exog(xs, ys, l, horizon, t, c - t)
    }
}

/// Everything but the weights of a trained network (serde; stored as `net.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetMeta {
    /// The hyperparameters, with the network's lookback, horizon and channels resolved.
    pub params: NnParams,
    /// Feature columns read for a window, step-major (`[t·C + c]`).
    pub columns: Vec<String>,
    /// Their positions in the feature rows the model was trained on.
    pub index: Vec<usize>,
    /// Channel means (training rows).
    pub mean: Vec<f64>,
    /// Channel standard deviations (training rows; 1 for a constant channel).
    pub std: Vec<f64>,
    /// What the label asks for.
    pub task: Task,
    /// Score → outputs.
    pub calibration: Calibration,
    /// Rows the calibration was fitted on.
    pub calibration_rows: usize,
    /// Whether those were validation rows (else training rows: no validation set given).
    pub calibrated_on_validation: bool,
    /// Training windows (contiguous row pairs).
    pub train_windows: usize,
    /// Validation windows used for early stopping.
    pub valid_windows: usize,
    /// The training run.
    pub report: TrainReport,
}

/// A trained network with its window layout, scaling and calibration.
#[derive(Clone)]
pub struct TrainedNet {
    meta: NetMeta,
    model: NnModel,
}

/// Artifact names of a stored network.
pub const META_ARTIFACT: &str = "net.json";
/// Weights artifact (safetensors).
pub const WEIGHTS_ARTIFACT: &str = "weights.safetensors";

impl TrainedNet {
    /// Everything but the weights.
    pub fn meta(&self) -> &NetMeta {
        &self.meta
    }

    /// The network.
    pub fn model(&self) -> &NnModel {
        &self.model
    }

    /// The raw score of each row: forecast sum of the first channel over the horizon, in
    /// the channel's units.
    pub fn scores(&self, x: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
        let need = self.meta.index.iter().copied().max().map_or(0, |m| m + 1);
        if x.ncols() < need {
            return Err(Error::Shape {
                what: "feature columns for the network".into(),
                expected: need,
                got: x.ncols(),
            });
        }
        let l = self.meta.params.lookback;
        let c = self.meta.mean.len();
        let targets = self.meta.params.net.channels();
        let layout = Layout { index: self.meta.index.clone(), lookback: l, channels: c, targets };
        let scale = Scale { mean: self.meta.mean.clone(), std: self.meta.std.clone() };
        let device: &Device = self.model.device();
        let mut scores = Vec::with_capacity(x.nrows());
        for start in (0..x.nrows()).step_by(SCORE_BATCH) {
            let rows = start..(start + SCORE_BATCH).min(x.nrows());
            let n = rows.len();
            let input = layout.inputs(x, rows, &scale);
            if let Some(i) = input.iter().position(|v| !v.is_finite()) {
                return Err(Error::param("x", format!("row {} has a non-finite window value", start + i / (l * c))));
            }
            let out = self.model.forward(&Tensor::from_vec(input, (n, l, c), device)?)?;
            let (h, width) = (out.dim(1)?, out.dim(2)?);
            let f = out.flatten_all()?.to_vec1::<f32>()?;
            for r in 0..n {
                let z: f64 = (0..h).map(|t| f64::from(f[(r * h + t) * width])).sum();
                scores.push(z * self.meta.std[0] + h as f64 * self.meta.mean[0]);
            }
        }
        Ok(scores)
    }

    /// Outputs per row: 1, or the class count.
    pub fn n_outputs(&self) -> usize {
        self.meta.calibration.n_outputs()
    }

    /// Calibrated outputs of each row (probability, class probabilities or value).
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        let scores = self.scores(x)?;
        let mut out = Array2::zeros((scores.len(), self.n_outputs()));
        for (mut row, s) in out.rows_mut().into_iter().zip(scores) {
            self.meta.calibration.apply(s, row.as_slice_mut().expect("standard layout"));
        }
        Ok(out)
    }

    /// The stored form: `net.json` (everything but the weights) and `weights.safetensors`.
    pub fn to_artifacts(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let meta = serde_json::to_vec_pretty(&self.meta).expect("metadata serialises");
        Ok(vec![(META_ARTIFACT.into(), meta), (WEIGHTS_ARTIFACT.into(), self.model.weights_bytes()?)])
    }

    /// Rebuild from [`TrainedNet::to_artifacts`] bytes on `device`.
    pub fn from_artifacts(meta: &[u8], weights: &[u8], device: &Device) -> Result<Self> {
        let meta: NetMeta = serde_json::from_slice(meta)
            .map_err(|e| Error::CorruptModel { source_name: META_ARTIFACT.into(), reason: e.to_string() })?;
        let c = meta.mean.len();
        if c == 0
            || meta.std.len() != c
            || meta.index.len() != meta.params.lookback * c
            || meta.params.net.input_channels() != c
        {
            return Err(Error::CorruptModel {
                source_name: META_ARTIFACT.into(),
                reason: format!(
                    "{} window columns for {c} channels of {} steps",
                    meta.index.len(),
                    meta.params.lookback
                ),
            });
        }
        let model = NnModel::from_weights(meta.params.net.clone(), weights, device, WEIGHTS_ARTIFACT)?;
        Ok(TrainedNet { meta, model })
    }

    /// Write the artifacts into `dir` (created if needed), each atomically.
    pub fn save(&self, dir: &std::path::Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
        for (name, bytes) in self.to_artifacts()? {
            crate::fsutil::write_atomic(&dir.join(name), &bytes)?;
        }
        Ok(())
    }

    /// Read a directory written by [`TrainedNet::save`].
    pub fn load(dir: &std::path::Path, device: &Device) -> Result<Self> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read(&p).map_err(|e| Error::Io { path: p, source: e })
        };
        TrainedNet::from_artifacts(&read(META_ARTIFACT)?, &read(WEIGHTS_ARTIFACT)?, device)
    }
}

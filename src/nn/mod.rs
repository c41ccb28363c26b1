//! Sequence networks in candle: [`PatchTst`] and [`Nhits`] (model kinds `patchtst` and
//! `nhits`), one model per file built with `fn new(cfg, vb: VarBuilder)` as in
//! candle-transformers, a shared training loop ([`train`]), sliding windows ([`windows`]),
//! seeded initialisation ([`init`]: candle's CPU generator cannot be seeded) and the device
//! choice ([`device`]).
//!
//! [`NnModel`] bundles a network with its variables: build, train, forecast, save
//! (safetensors + JSON config) and load, with identical outputs after a round trip.
//! [`NnParams`] / [`TrainedNet`] make either network a trading model on a
//! [`crate::features::Dataset`] ([`forecaster`]), with a calibrated signal ([`calibration`]).

mod attention;
pub mod calibration;
pub mod device;
pub mod ett;
mod feed_forward;
pub mod forecaster;
mod fused;
pub mod init;
mod kernels;
pub mod layers;
mod matmul;
pub mod nhits;
mod nhits_block;
mod optim;
pub mod patchtst;
pub mod revin;
pub mod train;
pub mod windows;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

pub use calibration::Calibration;
pub use device::DeviceChoice;
pub use forecaster::{NnParams, TrainedNet};
pub use init::SeededVars;
pub use nhits::{Nhits, NhitsConfig, Scaler};
pub use patchtst::{NormKind, PatchTst, PatchTstConfig};
pub use train::{LrSchedule, TrainConfig, TrainEvent, TrainLoss, TrainReport};
pub use windows::Windows;

use crate::error::{Error, Result};

/// A network's configuration, tagged by kind (the serde form of a saved model).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "config")]
pub enum NetConfig {
    /// PatchTST.
    Patchtst(PatchTstConfig),
    /// N-HiTS.
    Nhits(NhitsConfig),
}

impl NetConfig {
    /// Input steps.
    pub fn lookback(&self) -> usize {
        match self {
            NetConfig::Patchtst(c) => c.lookback,
            NetConfig::Nhits(c) => c.lookback,
        }
    }

    /// Forecast steps.
    pub fn horizon(&self) -> usize {
        match self {
            NetConfig::Patchtst(c) => c.horizon,
            NetConfig::Nhits(c) => c.horizon,
        }
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        match self {
            NetConfig::Patchtst(c) => c.channels,
            NetConfig::Nhits(c) => c.channels,
        }
    }

    /// Input channels per step: the forecast channels, then N-HiTS's exogenous ones.
    pub fn input_channels(&self) -> usize {
        match self {
            NetConfig::Patchtst(c) => c.channels,
            NetConfig::Nhits(c) => c.channels + c.exog_channels,
        }
    }
}

#[derive(Clone, Debug)]
enum Net {
    Patchtst(PatchTst),
    Nhits(Nhits),
}

impl train::Network for Net {
    fn forward(&self, x: &Tensor, t: &mut Option<layers::Train<'_>>) -> candle_core::Result<Tensor> {
        match self {
            Net::Patchtst(n) => n.forward(x, t),
            Net::Nhits(n) => n.forward(x, t),
        }
    }
}

/// A network with its variables on a device.
#[derive(Clone)]
pub struct NnModel {
    config: NetConfig,
    vars: SeededVars,
    net: Net,
    device: Device,
}

/// File names inside a saved model directory.
pub const CONFIG_FILE: &str = "config.json";
/// Weights (and BatchNorm running statistics) in safetensors format.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

impl NnModel {
    /// A freshly initialised network (weights drawn from `seed`).
    pub fn new(config: NetConfig, seed: u64, device: &Device) -> Result<Self> {
        let vars = SeededVars::new(seed);
        let vb = vars.builder(device);
        let net = match &config {
            NetConfig::Patchtst(c) => Net::Patchtst(PatchTst::new(c, vb)?),
            NetConfig::Nhits(c) => Net::Nhits(Nhits::new(c, vb)?),
        };
        Ok(NnModel { config, vars, net, device: device.clone() })
    }

    /// The configuration.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// The device it computes on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The variables (names sorted) — weights and running statistics.
    pub fn vars(&self) -> &SeededVars {
        &self.vars
    }

    /// Number of trained parameters.
    pub fn n_parameters(&self) -> usize {
        self.vars.named_vars().iter().filter(|(n, _)| !n.contains(layers::RUNNING)).map(|(_, v)| v.elem_count()).sum()
    }

    /// Forecast (evaluation mode) `[b, horizon, channels]` from `[b, lookback, input
    /// channels]` (the forecast channels, then any exogenous ones).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, l, c) = x.dims3()?;
        for (what, expected, got) in
            [("lookback", self.config.lookback(), l), ("channels", self.config.input_channels(), c)]
        {
            if expected != got {
                return Err(Error::Shape { what: format!("network input ({what})"), expected, got });
            }
        }
        Ok(train::Network::forward(&self.net, x, &mut None)?)
    }

    /// One training-mode pass (dropout from `rng`, batch statistics updated), for custom
    /// training loops and gradient checks.
    pub fn forward_train(&self, x: &Tensor, rng: &mut crate::rng::Rng) -> Result<Tensor> {
        Ok(train::Network::forward(&self.net, x, &mut Some(layers::Train { rng }))?)
    }

    /// Train on `train` windows, early-stopping on `valid`.
    pub fn fit(
        &mut self,
        train: &Windows,
        valid: Option<&Windows>,
        cfg: &TrainConfig,
        on_event: &mut dyn FnMut(&TrainEvent) -> bool,
    ) -> Result<TrainReport> {
        for (what, w) in std::iter::once(("train", Some(train))).chain(std::iter::once(("valid", valid))) {
            let Some(w) = w.filter(|w| !w.is_empty()) else { continue };
            for (part, expected, got) in [
                ("channels", self.config.input_channels(), w.channels()),
                ("targets", self.config.channels(), w.targets()),
            ] {
                if expected != got {
                    return Err(Error::Shape { what: format!("{what} windows ({part})"), expected, got });
                }
            }
        }
        train::fit(&self.net, &self.vars, train, valid, cfg, &self.device, on_event)
    }

    /// Test MSE and MAE over every window.
    pub fn evaluate(&self, windows: &Windows, batch_size: usize) -> Result<(f64, f64)> {
        train::evaluate(&self.net, windows, batch_size, &self.device)
    }

    /// The variables as safetensors bytes (names sorted, so equal models give equal bytes).
    pub fn weights_bytes(&self) -> Result<Vec<u8>> {
        let tensors: HashMap<String, Tensor> =
            self.vars.named_vars().into_iter().map(|(n, v)| (n, v.as_tensor().clone())).collect();
        safetensors_bytes(&tensors)
    }

    /// A model of `config` with the variables in safetensors `bytes`; every variable must be
    /// present with its shape (`source_name` names the bytes in errors).
    pub fn from_weights(config: NetConfig, bytes: &[u8], device: &Device, source_name: &str) -> Result<Self> {
        let model = NnModel::new(config, 0, device)?;
        let corrupt = |reason: String| Error::CorruptModel { source_name: source_name.to_string(), reason };
        let loaded = candle_core::safetensors::load_buffer(bytes, device).map_err(|e| corrupt(e.to_string()))?;
        let vars = model.vars.named_vars();
        if loaded.len() != vars.len() {
            return Err(corrupt(format!("{} tensors, the configuration needs {}", loaded.len(), vars.len())));
        }
        for (name, var) in &vars {
            let t = loaded.get(name).ok_or_else(|| corrupt(format!("tensor `{name}` missing")))?;
            if t.shape() != var.shape() {
                return Err(corrupt(format!("tensor `{name}` has shape {:?}, expected {:?}", t.dims(), var.dims())));
            }
            var.set(&t.to_dtype(var.dtype())?)?;
        }
        Ok(model)
    }

    /// Write `config.json` and `weights.safetensors` into `dir` (created if needed), each
    /// atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
        crate::fsutil::write_atomic(&dir.join(WEIGHTS_FILE), &self.weights_bytes()?)?;
        let json = serde_json::to_vec_pretty(&self.config).expect("config serialises");
        crate::fsutil::write_atomic(&dir.join(CONFIG_FILE), &json)
    }

    /// Load a model saved by [`NnModel::save`].
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cfg_path = dir.join(CONFIG_FILE);
        let text = std::fs::read(&cfg_path).map_err(|e| Error::Io { path: cfg_path.clone(), source: e })?;
        let config: NetConfig = serde_json::from_slice(&text)
            .map_err(|e| Error::CorruptModel { source_name: cfg_path.display().to_string(), reason: e.to_string() })?;
        let w_path = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&w_path).map_err(|e| Error::Io { path: w_path.clone(), source: e })?;
        NnModel::from_weights(config, &bytes, device, &w_path.display().to_string())
    }
}

/// Serialise named tensors to safetensors bytes.
fn safetensors_bytes(tensors: &HashMap<String, Tensor>) -> Result<Vec<u8>> {
    let mut sorted: Vec<(&String, &Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let views: Vec<(String, Tensor)> = sorted.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    safetensors::tensor::serialize(views.iter().map(|(k, v)| (k.as_str(), v)), None)
        .map_err(|e| Error::param("weights", e.to_string()))
}

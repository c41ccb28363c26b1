//! The training loop shared by the networks: AdamW (weight decay 0 = Adam), a learning-rate
//! schedule (constant, step, one-cycle), gradient clipping by global norm, MSE / MAE / Huber /
//! quantile losses, seeded shuffling and dropout, early stopping on a validation loss with the
//! best weights restored, and a per-batch callback for progress and cancellation.

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::init::SeededVars;
use crate::nn::layers::{RUNNING, Train};
use crate::nn::optim::Adam;
use crate::nn::windows::Windows;
use crate::rng::Rng;

/// Training loss.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TrainLoss {
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    Mae,
    /// Huber loss with threshold `delta`.
    Huber {
        /// Where the loss turns from quadratic to linear.
        delta: f64,
    },
    /// Pinball loss of quantile `q`.
    Quantile {
        /// The quantile in (0, 1).
        q: f64,
    },
}

/// Learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// Epoch `n` (1-based) beyond `after` trains at `lr · gamma^((n − after) / every)` —
    /// PatchTST's `type3` is `after 3, every 1, gamma 0.9`.
    Step {
        /// Epochs at the base rate.
        after: usize,
        /// Epochs per decay.
        every: usize,
        /// Factor per decay.
        gamma: f64,
    },
    /// PyTorch's `OneCycleLR` per batch (cosine, div_factor 25, final_div_factor 10⁴), peaking
    /// at the base rate after `pct_start` of the steps.
    OneCycle {
        /// Fraction of the steps spent warming up.
        pct_start: f64,
    },
}

/// Training hyperparameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Passes over the training windows.
    pub epochs: usize,
    /// Windows per batch.
    pub batch_size: usize,
    /// Base learning rate.
    pub learning_rate: f64,
    /// Decoupled weight decay (0 = Adam).
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Clip the global gradient norm to this (none when absent).
    pub clip_norm: Option<f64>,
    /// Stop after this many epochs without a better validation loss.
    pub patience: usize,
    /// TrainLoss.
    pub loss: TrainLoss,
    /// Seed of shuffling and dropout.
    pub seed: u64,
    /// Cap on batches per epoch (a seeded sample of the windows), for quick runs.
    pub max_batches_per_epoch: Option<usize>,
}

impl Default for TrainConfig {
    /// The trading kinds' defaults: 50 epochs with early stopping.
    fn default() -> Self {
        TrainConfig {
            epochs: 50,
            batch_size: 128,
            learning_rate: 1e-3,
            weight_decay: 0.0,
            schedule: LrSchedule::Constant,
            clip_norm: Some(1.0),
            patience: 5,
            loss: TrainLoss::Mse,
            seed: 42,
            max_batches_per_epoch: None,
        }
    }
}

impl TrainConfig {
    /// Check the values; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::param("epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::param("batch_size", "must be at least 1"));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::param("learning_rate", format!("{} is not a positive number", self.learning_rate)));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::param("weight_decay", "must be ≥ 0"));
        }
        if let Some(c) = self.clip_norm
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::param("clip_norm", "must be > 0"));
        }
        match self.loss {
            TrainLoss::Huber { delta } if !(delta.is_finite() && delta > 0.0) => {
                return Err(Error::param("loss.delta", "must be > 0"));
            }
            TrainLoss::Quantile { q } if !(q.is_finite() && q > 0.0 && q < 1.0) => {
                return Err(Error::param("loss.q", "must be in (0, 1)"));
            }
            _ => {}
        }
        match self.schedule {
            LrSchedule::Step { every: 0, .. } => Err(Error::param("schedule.every", "must be at least 1")),
            LrSchedule::Step { gamma, .. } if !(gamma.is_finite() && gamma > 0.0) => {
                Err(Error::param("schedule.gamma", "must be > 0"))
            }
            LrSchedule::OneCycle { pct_start } if !(pct_start.is_finite() && pct_start > 0.0 && pct_start < 1.0) => {
                Err(Error::param("schedule.pct_start", "must be in (0, 1)"))
            }
            _ => Ok(()),
        }
    }

    /// Learning rate of `step` (0-based, of `total`) in `epoch` (0-based).
    pub fn rate(&self, epoch: usize, step: usize, total: usize) -> f64 {
        let lr = self.learning_rate;
        match self.schedule {
            LrSchedule::Constant => lr,
            LrSchedule::Step { after, every, gamma } => {
                lr * gamma.powi(((epoch + 1).saturating_sub(after) / every) as i32)
            }
            LrSchedule::OneCycle { pct_start } => {
                let (initial, min) = (lr / 25.0, lr / 25.0 / 1e4);
                let up = (pct_start * total as f64 - 1.0).max(1.0);
                let down = (total as f64 - 1.0).max(up + 1.0);
                let cos = |a: f64, b: f64, pct: f64| b + (a - b) / 2.0 * (1.0 + (std::f64::consts::PI * pct).cos());
                let s = step as f64;
                if s <= up { cos(initial, lr, s / up) } else { cos(lr, min, ((s - up) / (down - up)).min(1.0)) }
            }
        }
    }
}

/// A network the loop can train.
pub trait Network {
    /// Forecast `[b, horizon, channels]` from `[b, lookback, channels]`.
    fn forward(&self, x: &Tensor, train: &mut Option<Train<'_>>) -> candle_core::Result<Tensor>;
}

impl Network for crate::nn::PatchTst {
    fn forward(&self, x: &Tensor, train: &mut Option<Train<'_>>) -> candle_core::Result<Tensor> {
        crate::nn::PatchTst::forward(self, x, train)
    }
}

impl Network for crate::nn::Nhits {
    fn forward(&self, x: &Tensor, train: &mut Option<Train<'_>>) -> candle_core::Result<Tensor> {
        crate::nn::Nhits::forward(self, x, train)
    }
}

/// The loss tensor (scalar) of `pred` against `target`.
pub fn loss(kind: TrainLoss, pred: &Tensor, target: &Tensor) -> candle_core::Result<Tensor> {
    let e = (target - pred)?;
    match kind {
        TrainLoss::Mse => e.sqr()?.mean_all(),
        TrainLoss::Mae => e.abs()?.mean_all(),
        TrainLoss::Huber { delta } => {
            let a = e.abs()?;
            let q = a.clamp(0.0, delta)?;
            ((q.sqr()? * 0.5)? + ((a - &q)? * delta)?)?.mean_all()
        }
        TrainLoss::Quantile { q } => (e.clone() * q)?.maximum(&(e * (q - 1.0))?)?.mean_all(),
    }
}

/// What the loop reports as it goes; the callback returns `false` to cancel.
#[derive(Clone, Debug)]
pub enum TrainEvent {
    /// A batch was trained.
    Batch {
        /// Epoch (0-based).
        epoch: usize,
        /// Batch within the epoch (0-based).
        batch: usize,
        /// Batches in the epoch.
        batches: usize,
        /// Its training loss.
        loss: f64,
    },
    /// An epoch ended.
    Epoch(EpochReport),
}

/// One epoch's numbers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochReport {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Mean training loss over its batches.
    pub train_loss: f64,
    /// Validation loss (the training loss kind), when a validation set was given.
    pub val_loss: Option<f64>,
    /// Learning rate at its last batch.
    pub learning_rate: f64,
    /// Wall time of the training batches.
    pub seconds: f64,
    /// Wall time of the validation pass.
    pub val_seconds: f64,
}

/// The outcome of [`fit`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainReport {
    /// Every epoch run.
    pub epochs: Vec<EpochReport>,
    /// The epoch whose weights were kept (best validation loss, else the last).
    pub best_epoch: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Whether the callback cancelled it.
    pub cancelled: bool,
}

/// Mean MSE and MAE of `net` over every window (evaluation mode, in batches).
pub fn evaluate(net: &impl Network, windows: &Windows, batch_size: usize, device: &Device) -> Result<(f64, f64)> {
    let (mut se, mut ae, mut n) = (0.0, 0.0, 0usize);
    let idx: Vec<usize> = (0..windows.len()).collect();
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, y) = windows.batch(chunk, device)?;
        let e = (net.forward(&x, &mut None)? - y)?;
        se += e.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        ae += e.abs()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        n += e.elem_count();
    }
    if n == 0 {
        return Err(Error::param("windows", "no windows to evaluate"));
    }
    Ok((se / n as f64, ae / n as f64))
}

/// Mean configured loss over every window (evaluation mode).
fn validation_loss(net: &impl Network, windows: &Windows, cfg: &TrainConfig, device: &Device) -> Result<f64> {
    let idx: Vec<usize> = (0..windows.len()).collect();
    let (mut total, mut n) = (0.0, 0usize);
    for chunk in idx.chunks(cfg.batch_size) {
        let (x, y) = windows.batch(chunk, device)?;
        let l =
            loss(cfg.loss, &net.forward(&x, &mut None)?, &y)?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        total += l * chunk.len() as f64;
        n += chunk.len();
    }
    Ok(total / n.max(1) as f64)
}

/// Copies of every variable (weights and running statistics).
fn snapshot(vars: &[(String, Var)]) -> candle_core::Result<Vec<Tensor>> {
    vars.iter().map(|(_, v)| v.as_tensor().copy()).collect()
}

fn restore(vars: &[(String, Var)], saved: &[Tensor]) -> candle_core::Result<()> {
    for ((_, v), t) in vars.iter().zip(saved) {
        v.set(t)?;
    }
    Ok(())
}

/// Train `net` (whose variables live in `vars`) on `train`, early-stopping on `valid`.
/// `on_event` sees every batch and epoch; returning `false` cancels (best weights are kept).
pub fn fit(
    net: &impl Network,
    vars: &SeededVars,
    train: &Windows,
    valid: Option<&Windows>,
    cfg: &TrainConfig,
    device: &Device,
    on_event: &mut dyn FnMut(&TrainEvent) -> bool,
) -> Result<TrainReport> {
    cfg.validate()?;
    if train.is_empty() {
        return Err(Error::param("train", "no training windows (series shorter than lookback + horizon?)"));
    }
    let all = vars.named_vars();
    let trainable: Vec<Var> = all.iter().filter(|(n, _)| !n.contains(RUNNING)).map(|(_, v)| v.clone()).collect();
    let mut opt = Adam::new(trainable, cfg.learning_rate, cfg.weight_decay)?;
    let per_epoch = train.len().div_ceil(cfg.batch_size);
    let batches = cfg.max_batches_per_epoch.map_or(per_epoch, |m| m.min(per_epoch));
    let total_steps = batches * cfg.epochs;
    let mut report = TrainReport { epochs: Vec::new(), best_epoch: 0, stopped_early: false, cancelled: false };
    let mut best: Option<(f64, Vec<Tensor>)> = None;
    let mut since_best = 0;
    'epochs: for epoch in 0..cfg.epochs {
        let started = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut shuffle = Rng::stream(cfg.seed, 2 * epoch as u64);
        for i in (1..order.len()).rev() {
            order.swap(i, shuffle.below(i + 1));
        }
        let mut drop_rng = Rng::stream(cfg.seed, 2 * epoch as u64 + 1);
        let (mut sum, mut lr) = (0.0, cfg.learning_rate);
        for (b, chunk) in order.chunks(cfg.batch_size).take(batches).enumerate() {
            lr = cfg.rate(epoch, epoch * batches + b, total_steps);
            opt.set_learning_rate(lr);
            let (x, y) = train.batch(chunk, device)?;
            let pred = net.forward(&x, &mut Some(Train { rng: &mut drop_rng }))?;
            let l = loss(cfg.loss, &pred, &y)?;
            let value = l.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
            if !value.is_finite() {
                return Err(Error::param(
                    "training",
                    format!("loss became {value} at epoch {epoch} batch {b}; lower the learning rate"),
                ));
            }
            opt.step(&mut l.backward()?, cfg.clip_norm)?;
            sum += value;
            if !on_event(&TrainEvent::Batch { epoch, batch: b, batches, loss: value }) {
                report.cancelled = true;
                break 'epochs;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let val_started = Instant::now();
        let val_loss = match valid {
            Some(v) if !v.is_empty() => Some(validation_loss(net, v, cfg, device)?),
            _ => None,
        };
        let er = EpochReport {
            epoch,
            train_loss: sum / batches as f64,
            val_loss,
            learning_rate: lr,
            seconds,
            val_seconds: val_started.elapsed().as_secs_f64(),
        };
        report.epochs.push(er.clone());
        let keep_going = on_event(&TrainEvent::Epoch(er));
        if let Some(v) = val_loss {
            if best.as_ref().is_none_or(|(b, _)| v < *b) {
                best = Some((v, snapshot(&all)?));
                report.best_epoch = epoch;
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= cfg.patience {
                    report.stopped_early = true;
                    break;
                }
            }
        } else {
            report.best_epoch = epoch;
        }
        if !keep_going {
            report.cancelled = true;
            break;
        }
    }
    if let Some((_, saved)) = &best {
        restore(&all, saved)?;
    }
    Ok(report)
}

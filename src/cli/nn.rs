//! `retrain nn`: train PatchTST or N-HiTS with a progress bar (epoch, batch, loss, validation
//! loss). `--data FILE…` trains the trading model on candles (features → label → chronological
//! 80/10/10 purged split → fit → calibrated test scores); `--ett FILE` runs the papers'
//! long-horizon protocol on an ETT-format file and prints test MSE / MAE.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use retrain::data::{self, LoadOptions};
use retrain::features::{Dataset, Feature, FeatureSpec, LabelSpec, Task};
use retrain::model::{Model, ModelKind};
use retrain::nn::ett::PaperNet;
use retrain::nn::{Calibration, DeviceChoice, NetConfig, NnParams, TrainConfig, TrainEvent};
use retrain::validation::cross_validate::bars_per_year;
use retrain::validation::report::{Scores, TradeClock, score};
use retrain::validation::{Chronological, Splitter};
use serde::Serialize;

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetKind {
    /// PatchTST (Nie et al., ICLR 2023).
    Patchtst,
    /// N-HiTS (Challu et al., AAAI 2023).
    Nhits,
}

/// PatchTST size preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Size {
    /// d_model 16, 4 heads, d_ff 128, dropout 0.3 (the paper's ETTh1 setting).
    Small,
    /// d_model 128, 16 heads, d_ff 256, dropout 0.2.
    Large,
}

/// Arguments of `retrain nn`.
#[derive(Debug, Args)]
pub struct NnArgs {
    /// Candles (CSV/Parquet; repeat for one file per symbol): train the trading model.
    #[arg(long, num_args = 1.., required_unless_present = "ett", conflicts_with = "ett")]
    pub data: Vec<PathBuf>,
    /// ETT-format CSV/Parquet (`date` + channels): run the 12/4/4-month protocol.
    #[arg(long)]
    pub ett: Option<PathBuf>,
    /// `--data`: the label (future_return[:h], direction[:h[:thr[:classes]]], triple_barrier…).
    #[arg(long, default_value = "direction:12")]
    pub target: LabelSpec,
    /// Network.
    #[arg(long, value_enum)]
    pub model: NetKind,
    /// `--ett`: PatchTST size.
    #[arg(long, value_enum, default_value = "small")]
    pub size: Size,
    /// TOML overriding the defaults: `[model]` (network fields), `[train]` (training
    /// fields) and, with `--data`, top-level `lookback`, `horizon`, `inputs`, `exog`; unknown keys are
    /// an error.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Epochs (overrides the config).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Cap on batches per epoch (a seeded sample), for quick runs.
    #[arg(long)]
    pub max_batches: Option<usize>,
    /// Input steps (default 336 with `--ett`, 64 with `--data`).
    #[arg(long)]
    pub lookback: Option<usize>,
    /// `--ett`: forecast steps (with `--data` the label's horizon).
    #[arg(long, default_value_t = 96)]
    pub horizon: usize,
    /// Seed of weights, shuffling and dropout (default 2021 with `--ett`, 42 with `--data`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// cpu, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Save the trained model into this directory (`--ett`: config.json +
    /// weights.safetensors; `--data`: net.json + weights.safetensors + features.toml).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The protocol defaults of the chosen network.
fn defaults(args: &NnArgs, channels: usize) -> (NetConfig, TrainConfig) {
    let (l, h) = (args.lookback.unwrap_or(336), args.horizon);
    let net = match (args.model, args.size) {
        (NetKind::Patchtst, Size::Small) => PaperNet::PatchtstSmall,
        (NetKind::Patchtst, Size::Large) => PaperNet::PatchtstLarge,
        (NetKind::Nhits, _) => PaperNet::Nhits,
    };
    retrain::nn::ett::paper_setup(net, l, h, channels)
}

/// The `--config` file: network fields, training fields and (for `--data`) the trading
/// model's own fields.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    model: Option<toml::Value>,
    train: Option<toml::Value>,
    lookback: Option<usize>,
    horizon: Option<usize>,
    inputs: Option<Vec<Feature>>,
    exog: Option<Vec<Feature>>,
}

fn read_config(path: Option<&Path>) -> Result<ConfigFile> {
    let Some(path) = path else { return Ok(ConfigFile::default()) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("in {}", path.display()))
}

/// Overlay `[model]` on a network configuration.
fn overlay_net(net: NetConfig, over: Option<&toml::Value>, path: &Path) -> Result<NetConfig> {
    let ctx = || format!("[model] in {}", path.display());
    Ok(match net {
        NetConfig::Patchtst(c) => NetConfig::Patchtst(super::overlay(&c, over).with_context(ctx)?),
        NetConfig::Nhits(c) => NetConfig::Nhits(super::overlay(&c, over).with_context(ctx)?),
    })
}

/// The trading model's parameters for `kind` with a `--config` file applied (the format of
/// `retrain nn --data --config` and `retrain cv --nn-config`).
pub(super) fn nn_params_from(mut p: NnParams, path: Option<&Path>) -> Result<NnParams> {
    let file = read_config(path)?;
    if let Some(path) = path {
        p.net = overlay_net(p.net, file.model.as_ref(), path)?;
        p.train =
            super::overlay(&p.train, file.train.as_ref()).with_context(|| format!("[train] in {}", path.display()))?;
    }
    if let Some(l) = file.lookback {
        p.lookback = l;
    }
    if file.horizon.is_some() {
        p.horizon = file.horizon;
    }
    if let Some(inputs) = file.inputs {
        p.inputs = inputs;
    }
    if let Some(exog) = file.exog {
        p.exog = exog;
    }
    Ok(p)
}

fn channels_of(path: &Path) -> Result<usize> {
    let df = retrain::data::io::read_frame(path)?;
    Ok(df.get_column_names().iter().filter(|n| !n.eq_ignore_ascii_case("date")).count())
}

/// A progress bar and the event callback that drives it (epoch lines go to stderr when
/// there is no terminal, nothing with `--json`).
fn progress(json: bool) -> Result<(ProgressBar, impl FnMut(&TrainEvent) -> bool)> {
    let pb = if json { ProgressBar::hidden() } else { ProgressBar::new(0) };
    pb.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] epoch {prefix} {bar:30} {pos}/{len} {msg}",
    )?);
    let bar = pb.clone();
    let mut val = String::new();
    let on_event = move |e: &TrainEvent| {
        match e {
            TrainEvent::Batch { epoch, batch, batches, loss } => {
                if *batch == 0 {
                    bar.set_length(*batches as u64);
                    bar.set_position(0);
                    bar.set_prefix(format!("{}", epoch + 1));
                }
                bar.set_position(*batch as u64 + 1);
                bar.set_message(format!("loss {loss:.4}{val}"));
            }
            TrainEvent::Epoch(r) => {
                if let Some(v) = r.val_loss {
                    val = format!(", val {v:.4}");
                }
                let line = format!(
                    "epoch {:>3}: train {:.4}{} lr {:.2e} ({:.1} s)",
                    r.epoch + 1,
                    r.train_loss,
                    r.val_loss.map(|v| format!(", val {v:.4},")).unwrap_or_default(),
                    r.learning_rate,
                    r.seconds
                );
                if bar.is_hidden() {
                    if !json {
                        eprintln!("{line}");
                    }
                } else {
                    bar.println(line);
                }
            }
        }
        true
    };
    Ok((pb, on_event))
}

/// Run `retrain nn`.
pub fn run(args: NnArgs) -> Result<()> {
    match &args.ett {
        Some(ett) => run_ett(&args, ett),
        None => run_data(&args),
    }
}

/// What `retrain nn --data` prints.
#[derive(Debug, Serialize)]
struct DataSummary {
    model: String,
    data: Vec<String>,
    label: LabelSpec,
    task: Task,
    rows: usize,
    train_rows: usize,
    valid_rows: usize,
    test_rows: usize,
    purged: usize,
    train_windows: usize,
    valid_windows: usize,
    epochs: usize,
    best_epoch: usize,
    seconds: f64,
    parameters: usize,
    calibration: Calibration,
    test: Scores,
    /// Share of test rows per signal direction (short, flat, long).
    direction_shares: [f64; 3],
    params: NnParams,
}

fn run_data(args: &NnArgs) -> Result<()> {
    let (kind, preset) = match args.model {
        NetKind::Patchtst => (ModelKind::PATCHTST, NnParams::patchtst()),
        NetKind::Nhits => (ModelKind::NHITS, NnParams::nhits()),
    };
    let mut p = nn_params_from(preset, args.config.as_deref())?;
    if let Some(l) = args.lookback {
        p.lookback = l;
    }
    if let Some(e) = args.epochs {
        p.train.epochs = e;
    }
    if args.max_batches.is_some() {
        p.train.max_batches_per_epoch = args.max_batches;
    }
    if let Some(s) = args.seed {
        p.train.seed = s;
    }
    p.device = args.device.parse::<DeviceChoice>()?;
    // Only the window columns are needed: the network reads nothing else.
    let spec = FeatureSpec { features: vec![p.window_feature()] };
    spec.validate()?;
    let loaded = data::load_many(&args.data, &LoadOptions::default())?;
    let ds = Dataset::from_bars(&loaded.bars, &spec, &args.target)?;
    let plan = Chronological::default().plan(&ds.t0, &ds.t1)?;
    let split = &plan.splits[0];
    let (train, valid, test) = (ds.select(&split.train)?, ds.select(&split.validation)?, ds.select(&split.test)?);
    let started = Instant::now();
    let (pb, mut on_event) = progress(args.json)?;
    let net = p.fit_observed(&train, Some(&valid), &mut on_event)?;
    pb.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let out = net.predict(test.x.view())?;
    let task = net.meta().task;
    let clock = bars_per_year(&ds.t0).map(|b| TradeClock { bars_per_year: b, horizon: args.target.horizon() as f64 });
    let y = test.y.to_vec();
    let scores = score(task, &y, out.view(), test.ret.as_deref(), test.risk.as_deref(), clock);
    let signals = net.signals(test.x.view())?;
    let mut shares = [0.0; 3];
    for s in &signals {
        shares[(s.direction + 1) as usize] += 1.0 / signals.len().max(1) as f64;
    }
    if let Some(dir) = &args.save {
        net.save(dir)?;
        retrain::fsutil::write_atomic(&dir.join("features.toml"), spec.to_toml().as_bytes())?;
    }
    let meta = net.meta();
    let summary = DataSummary {
        model: kind.name().into(),
        data: args.data.iter().map(|d| d.display().to_string()).collect(),
        label: args.target.clone(),
        task,
        rows: ds.n_rows(),
        train_rows: train.n_rows(),
        valid_rows: valid.n_rows(),
        test_rows: test.n_rows(),
        purged: split.purged,
        train_windows: meta.train_windows,
        valid_windows: meta.valid_windows,
        epochs: meta.report.epochs.len(),
        best_epoch: meta.report.best_epoch,
        seconds,
        parameters: net.model().n_parameters(),
        calibration: meta.calibration.clone(),
        test: scores,
        direction_shares: shares,
        params: meta.params.clone(),
    };
    super::emit(args.json, &summary, |s| {
        println!(
            "{} on {} ({} rows: train {}, valid {}, test {}, purged {}), label {}",
            s.model,
            s.data.join(", "),
            s.rows,
            s.train_rows,
            s.valid_rows,
            s.test_rows,
            s.purged,
            s.label
        );
        println!(
            "  {} training windows, {} epochs (best {}), {:.1} s, {} parameters",
            s.train_windows,
            s.epochs,
            s.best_epoch + 1,
            s.seconds,
            s.parameters
        );
        let metrics = serde_json::to_value(&s.test).unwrap_or_default();
        if let Some(m) = metrics.as_object() {
            let shown: Vec<String> = m
                .iter()
                .filter(|(k, _)| k.as_str() != "rows")
                .filter_map(|(k, v)| v.as_f64().map(|v| format!("{k} {v:.4}")))
                .collect();
            println!("  test: {}", shown.join(", "));
        }
        let [short, flat, long] = s.direction_shares;
        println!("  signals: long {:.1}%, flat {:.1}%, short {:.1}%", long * 100.0, flat * 100.0, short * 100.0);
    })
}

fn run_ett(args: &NnArgs, ett: &Path) -> Result<()> {
    let device = args.device.parse::<DeviceChoice>()?.open()?;
    let channels = channels_of(ett)?;
    let (mut net, mut train) = defaults(args, channels);
    let file = read_config(args.config.as_deref())?;
    if let Some(path) = &args.config {
        if file.lookback.is_some() || file.horizon.is_some() || file.inputs.is_some() || file.exog.is_some() {
            bail!(
                "{}: lookback, horizon, inputs and exog are --data settings (use --lookback / --horizon)",
                path.display()
            );
        }
        net = overlay_net(net, file.model.as_ref(), path)?;
        train =
            super::overlay(&train, file.train.as_ref()).with_context(|| format!("[train] in {}", path.display()))?;
    }
    if let Some(e) = args.epochs {
        train.epochs = e;
    }
    if args.max_batches.is_some() {
        train.max_batches_per_epoch = args.max_batches;
    }
    let seed = args.seed.unwrap_or(2021);
    train.seed = seed;
    let (pb, mut on_event) = progress(args.json)?;
    let (report, model) = retrain::nn::ett::run(ett, net, &train, seed, &device, &mut on_event)?;
    pb.finish_and_clear();
    if let Some(dir) = &args.save {
        model.save(dir)?;
    }
    super::emit(args.json, &report, |r| {
        println!(
            "{} on {} windows: test MSE {:.4}, MAE {:.4} (valid MSE {:.4}); {} epochs, best {}, {:.0} s, {} parameters",
            r.model,
            r.test_windows,
            r.test_mse,
            r.test_mae,
            r.valid_mse,
            r.epochs,
            r.best_epoch + 1,
            r.seconds,
            r.parameters
        )
    })
}

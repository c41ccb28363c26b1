//! `retrain gbdt`: train the native GBDT on CSV/Parquet tables and score a test set.

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use retrain::data::{LabeledTable, read_table};
use retrain::gbdt::{FitOptions, Gbdt, GbdtParams, Growth, ObjectiveKind, RoundEval, TrainData};
use retrain::validation::metrics;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `retrain gbdt`.
#[derive(Debug, clap::Args)]
pub struct GbdtArgs {
    /// Training table (CSV or Parquet): numeric columns are features, except --label/--weight.
    #[arg(long)]
    train: PathBuf,
    /// Label column.
    #[arg(long, default_value = "label")]
    label: String,
    /// Sample-weight column.
    #[arg(long)]
    weight: Option<String>,
    /// Validation table (early stopping and per-round loss).
    #[arg(long)]
    valid: Option<PathBuf>,
    /// Test table to score after training.
    #[arg(long)]
    test: Option<PathBuf>,
    /// Without --test: hold out this latest fraction of --train by time as the test set,
    /// purging training rows whose label (t1) reaches into it.
    #[arg(long, conflicts_with = "test")]
    holdout: Option<f64>,
    #[command(flatten)]
    model: GbdtFlags,
    /// Save the model (.json readable, anything else compact binary).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Print the N most important features (by total gain).
    #[arg(long, default_value_t = 0)]
    importance: usize,
    /// Print a JSON summary on stdout (no progress bar).
    #[arg(long)]
    json: bool,
}

/// GBDT hyperparameter flags shared by `gbdt` and `cv`: a TOML file and per-field overrides.
#[derive(Debug, clap::Args)]
pub struct GbdtFlags {
    /// Parameters as TOML (GbdtParams fields); the flags below override it.
    #[arg(long)]
    params: Option<PathBuf>,
    /// binary | regression | multiclass:K | huber:DELTA | quantile:ALPHA.
    #[arg(long)]
    objective: Option<String>,
    /// Boosting rounds.
    #[arg(long)]
    rounds: Option<usize>,
    /// Learning rate.
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Leaf-wise growth with this many leaves (kind `lightgbm`, default 31).
    #[arg(long)]
    num_leaves: Option<u32>,
    /// Depth of depth-wise growth (kind `xgboost`); on a leaf-wise base (--num-leaves, a
    /// leaf-wise --params file or `cv --model lightgbm`) a depth cap.
    #[arg(long)]
    max_depth: Option<u32>,
    /// Value bins per feature (≤ 255: u8 bins; up to 65535).
    #[arg(long)]
    max_bin: Option<usize>,
    /// Minimum rows per leaf.
    #[arg(long)]
    min_data_in_leaf: Option<usize>,
    /// Minimum hessian sum per leaf (XGBoost's min_child_weight).
    #[arg(long)]
    min_sum_hessian: Option<f64>,
    /// L2 regularisation.
    #[arg(long)]
    lambda_l2: Option<f64>,
    /// Row bagging fraction (with --bagging-freq).
    #[arg(long)]
    bagging_fraction: Option<f64>,
    /// Redraw the bag every N rounds.
    #[arg(long)]
    bagging_freq: Option<usize>,
    /// Feature fraction per tree.
    #[arg(long)]
    feature_fraction: Option<f64>,
    /// Early stopping patience in rounds (`gbdt`: needs --valid; `cv`: on the latest 10% of
    /// each split's training rows, purged).
    #[arg(long)]
    early_stopping: Option<usize>,
    /// Seed for sampling.
    #[arg(long)]
    seed: Option<u64>,
}

impl GbdtFlags {
    /// Whether any hyperparameter flag (or a --params file) was given.
    pub fn any(&self) -> bool {
        self.params.is_some()
            || self.objective.is_some()
            || self.rounds.is_some()
            || self.learning_rate.is_some()
            || self.num_leaves.is_some()
            || self.max_depth.is_some()
            || self.max_bin.is_some()
            || self.min_data_in_leaf.is_some()
            || self.min_sum_hessian.is_some()
            || self.lambda_l2.is_some()
            || self.bagging_fraction.is_some()
            || self.bagging_freq.is_some()
            || self.feature_fraction.is_some()
            || self.early_stopping.is_some()
            || self.seed.is_some()
    }

    /// `base` (or the --params file), then every given flag on top; validated.
    pub fn build(&self, base: GbdtParams) -> Result<GbdtParams> {
        let mut p = match &self.params {
            Some(path) => super::read_params(path)?,
            None => base,
        };
        if let Some(o) = &self.objective {
            p.objective = ObjectiveKind::parse(o)?;
        }
        match (self.num_leaves, self.max_depth, p.growth) {
            (Some(l), d, _) => p.growth = Growth::LeafWise { num_leaves: l, max_depth: d },
            (None, Some(d), Growth::LeafWise { num_leaves, .. }) => {
                p.growth = Growth::LeafWise { num_leaves, max_depth: Some(d) }
            }
            (None, Some(d), Growth::DepthWise { .. }) => p.growth = Growth::DepthWise { max_depth: d },
            (None, None, _) => {}
        }
        macro_rules! set {
            ($($field:ident = $arg:expr),*) => {$( if let Some(v) = $arg { p.$field = v; } )*};
        }
        set!(
            rounds = self.rounds,
            learning_rate = self.learning_rate,
            max_bin = self.max_bin,
            min_data_in_leaf = self.min_data_in_leaf,
            min_sum_hessian = self.min_sum_hessian,
            lambda_l2 = self.lambda_l2,
            bagging_fraction = self.bagging_fraction,
            bagging_freq = self.bagging_freq,
            feature_fraction = self.feature_fraction,
            seed = self.seed
        );
        if self.early_stopping.is_some() {
            p.early_stopping_rounds = self.early_stopping;
        }
        p.validate()?;
        Ok(p)
    }

    /// The preset a bare `--max-depth` asks for: kind `xgboost` (λ2 = 1, min_child_weight 1).
    pub fn default_preset(&self) -> GbdtParams {
        if self.max_depth.is_some() && self.num_leaves.is_none() {
            GbdtParams::xgboost()
        } else {
            GbdtParams::lightgbm()
        }
    }
}

#[derive(Debug, Serialize)]
struct Summary {
    train: String,
    train_rows: usize,
    features: usize,
    objective: String,
    growth: Growth,
    rounds: usize,
    best_round: Option<usize>,
    threads: usize,
    load_seconds: f64,
    fit_seconds: f64,
    predict_seconds: Option<f64>,
    purged_rows: usize,
    valid_loss: Option<f64>,
    test: Option<Scores>,
    importance: Vec<Importance>,
    saved: Option<String>,
}

#[derive(Debug, Serialize)]
struct Scores {
    rows: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    auc: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    multi_log_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rmse: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mae: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Importance {
    feature: String,
    splits: usize,
    gain: f64,
}

fn load(path: &PathBuf, args: &GbdtArgs) -> Result<LabeledTable> {
    read_table(path, &args.label, args.weight.as_deref()).with_context(|| format!("loading {}", path.display()))
}

fn data<'a>(t: &'a LabeledTable) -> Result<TrainData<'a>> {
    let d = TrainData::new(t.x.view(), &t.y)?;
    Ok(match &t.weights {
        Some(w) => d.with_weights(w)?,
        None => d,
    })
}

fn check_features(what: &str, t: &LabeledTable, train: &LabeledTable) -> Result<()> {
    if t.feature_names != train.feature_names {
        bail!("{what} has feature columns {:?}, training has {:?}", t.feature_names, train.feature_names);
    }
    Ok(())
}

fn score(model: &Gbdt, t: &LabeledTable) -> Result<(Scores, f64)> {
    let started = Instant::now();
    let p = model.predict(t.x.view())?;
    let secs = started.elapsed().as_secs_f64();
    let mut s = Scores {
        rows: t.n_rows(),
        auc: None,
        log_loss: None,
        multi_log_loss: None,
        accuracy: None,
        rmse: None,
        mae: None,
    };
    match model.params.objective {
        ObjectiveKind::Binary => {
            let prob = p.column(0).to_vec();
            s.auc = metrics::roc_auc(&t.y, &prob).ok();
            s.log_loss = Some(metrics::log_loss(&t.y, &prob)?);
            let cls: Vec<f64> = prob.iter().map(|&q| (q > 0.5) as u8 as f64).collect();
            s.accuracy = Some(metrics::accuracy(&t.y, &cls)?);
        }
        ObjectiveKind::Multiclass { num_class } => {
            let flat: Vec<f64> = p.iter().copied().collect();
            s.multi_log_loss = Some(metrics::multi_log_loss(&t.y, &flat, num_class)?);
            let cls: Vec<f64> = p
                .rows()
                .into_iter()
                .map(|r| r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0.0, |(i, _)| i as f64))
                .collect();
            s.accuracy = Some(metrics::accuracy(&t.y, &cls)?);
        }
        _ => {
            let v = p.column(0).to_vec();
            s.rmse = Some(metrics::rmse(&t.y, &v)?);
            s.mae = Some(metrics::mae(&t.y, &v)?);
        }
    }
    Ok((s, secs))
}

pub fn run(args: GbdtArgs) -> Result<()> {
    let p = args.model.build(args.model.default_preset())?;
    let load_started = Instant::now();
    let mut train = load(&args.train, &args)?;
    let valid = args.valid.as_ref().map(|v| load(v, &args)).transpose()?;
    let mut test = args.test.as_ref().map(|t| load(t, &args)).transpose()?;
    let mut purged = 0;
    if let Some(f) = args.holdout {
        let (tr, te, pu) = train.time_split(f)?;
        test = Some(train.select(&te));
        train = train.select(&tr);
        purged = pu;
    }
    let load_seconds = load_started.elapsed().as_secs_f64();
    for (what, t) in [("--valid", &valid), ("--test", &test)] {
        if let Some(t) = t {
            check_features(what, t, &train)?;
        }
    }

    let pb = if args.json { ProgressBar::hidden() } else { ProgressBar::new(p.rounds as u64) };
    pb.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} rounds {msg}")?);
    pb.set_message("binning");
    let mut on_round = |e: &RoundEval| {
        pb.inc(1);
        if let Some(v) = e.valid_loss {
            pb.set_message(format!("valid loss {v:.5}"));
        } else {
            pb.set_message("");
        }
        true
    };
    let fit_started = Instant::now();
    let train_data = data(&train)?;
    let valid_data = valid.as_ref().map(data).transpose()?;
    let mut model = p.fit_with(
        &train_data,
        valid_data.as_ref(),
        FitOptions { on_round: Some(&mut on_round), ..FitOptions::default() },
    )?;
    let fit_seconds = fit_started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    model.feature_names = train.feature_names.clone();

    let (test_scores, predict_seconds) = match &test {
        Some(t) => {
            let (s, secs) = score(&model, t)?;
            (Some(s), Some(secs))
        }
        None => (None, None),
    };
    if let Some(path) = &args.save {
        model.save(path).with_context(|| format!("saving {}", path.display()))?;
    }
    let mut imp: Vec<Importance> = model
        .feature_importance()
        .into_iter()
        .enumerate()
        .map(|(j, (splits, gain))| Importance { feature: train.feature_names[j].clone(), splits, gain })
        .collect();
    imp.sort_by(|a, b| b.gain.total_cmp(&a.gain));
    imp.truncate(args.importance);
    let summary = Summary {
        train: args.train.display().to_string(),
        train_rows: train.n_rows(),
        features: train.x.ncols(),
        objective: model.objective_name.clone(),
        growth: p.growth,
        rounds: model.n_rounds(),
        best_round: model.best_round,
        threads: rayon::current_num_threads(),
        load_seconds,
        fit_seconds,
        predict_seconds,
        purged_rows: purged,
        // The kept model's validation loss: the best round's when early stopping ran.
        valid_loss: match model.best_round {
            Some(b) => model.history.iter().find(|h| h.round == b).and_then(|h| h.valid_loss),
            None => model.history.last().and_then(|h| h.valid_loss),
        },
        test: test_scores,
        importance: imp,
        saved: args.save.as_ref().map(|p| p.display().to_string()),
    };
    super::emit(args.json, &summary, print_summary)
}

fn print_summary(s: &Summary) {
    println!("trained {} on {} rows x {} features ({} threads)", s.objective, s.train_rows, s.features, s.threads);
    let growth = match s.growth {
        Growth::DepthWise { max_depth } => format!("depth-wise, max_depth {max_depth}"),
        Growth::LeafWise { num_leaves, max_depth } => {
            format!("leaf-wise, {num_leaves} leaves{}", max_depth.map_or(String::new(), |d| format!(", max_depth {d}")))
        }
    };
    println!("  growth        {growth}");
    println!("  rounds        {}{}", s.rounds, s.best_round.map_or(String::new(), |b| format!(" (best round {b})")));
    if s.purged_rows > 0 {
        println!("  purged        {} training rows whose label overlaps the holdout", s.purged_rows);
    }
    println!("  load          {:.3} s", s.load_seconds);
    println!("  fit           {:.3} s (binning included)", s.fit_seconds);
    if let Some(v) = s.valid_loss {
        println!("  valid loss    {v:.6}");
    }
    if let (Some(t), Some(secs)) = (&s.test, s.predict_seconds) {
        println!("  predict       {secs:.3} s for {} test rows", t.rows);
        let show = |name: &str, v: Option<f64>| {
            if let Some(v) = v {
                println!("  test {name:<9}{v:.6}");
            }
        };
        show("AUC", t.auc);
        show("log-loss", t.log_loss);
        show("mlogloss", t.multi_log_loss);
        show("accuracy", t.accuracy);
        show("RMSE", t.rmse);
        show("MAE", t.mae);
    }
    if !s.importance.is_empty() {
        println!("  top features by gain:");
        for i in &s.importance {
            println!("    {:<28} {:>6} splits  gain {:.3}", i.feature, i.splits, i.gain);
        }
    }
    if let Some(p) = &s.saved {
        println!("  saved         {p}");
    }
}

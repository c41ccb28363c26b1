//! `retrain cv-plan` (print the splits a splitter makes) and `retrain cv` (cross-validate a
//! model kind on real data end to end: candles → features → labels → CPCV → report).

use super::gbdt::GbdtFlags;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use retrain::data::{self, LoadOptions, read_table};
use retrain::features::{Dataset, FeatureSpec, LabelSpec, Task, dataset::median_step};
use retrain::gbdt::GbdtParams;
use retrain::model::{ModelKind, Recipe};
use retrain::nn::NnParams;
use retrain::validation::cross_validate::default_embargo_bars;
use retrain::validation::split::ranges;
use retrain::validation::{
    Chronological, Cpcv, CvOptions, CvReport, Embargo, PurgedKFold, SplitPlan, Splitter, WalkForward, Window,
    cross_validate, cross_validate_seeds,
};
use serde::Serialize;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

/// Splitter choice shared by `cv-plan` and `cv`.
#[derive(Debug, clap::Args)]
pub struct SplitArgs {
    /// cpcv | kfold | walk-forward | chronological.
    #[arg(long, default_value = "cpcv")]
    method: String,
    /// CPCV groups N.
    #[arg(long, default_value_t = 6)]
    groups: usize,
    /// CPCV test groups per split k.
    #[arg(long, default_value_t = 2)]
    test_groups: usize,
    /// Purged k-fold folds.
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Walk-forward test windows.
    #[arg(long, default_value_t = 5)]
    splits: usize,
    /// Walk-forward training window: expanding, or rolling:G (the last G groups).
    #[arg(long, default_value = "expanding")]
    window: String,
    /// Embargo after each test block's label span: bars (`12`) or a duration (`90s`, `30m`,
    /// `6h`, `2d`); cv default: 5 days of bars or the feature lookback, whichever is longer.
    #[arg(long)]
    embargo: Option<Embargo>,
}

impl SplitArgs {
    fn splitter(&self, e: Embargo) -> Result<Box<dyn Splitter>> {
        Ok(match self.method.as_str() {
            "cpcv" => {
                let c = Cpcv::new(self.groups, self.test_groups).embargo(e);
                c.validate()?;
                Box::new(c)
            }
            "kfold" => Box::new(PurgedKFold { k: self.folds, embargo: e }),
            "walk-forward" => {
                let window = match self.window.split_once(':') {
                    None if self.window == "expanding" => Window::Expanding,
                    Some(("rolling", g)) => Window::Rolling(g.parse().context("--window rolling:G needs a number")?),
                    _ => bail!("--window must be `expanding` or `rolling:G`, got {:?}", self.window),
                };
                Box::new(WalkForward { n_splits: self.splits, window })
            }
            "chronological" => Box::new(Chronological::default()),
            m => bail!("unknown --method {m:?} (cpcv, kfold, walk-forward, chronological)"),
        })
    }
}

/// Arguments of `retrain cv-plan`.
#[derive(Debug, clap::Args)]
pub struct CvPlanArgs {
    /// Number of rows (bars) to split.
    #[arg(long)]
    samples: usize,
    /// Label horizon in bars (t1 = t0 + H): the purge.
    #[arg(long, default_value_t = 0)]
    purge: i64,
    #[command(flatten)]
    split: SplitArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct PlanView {
    method: String,
    samples: usize,
    purge: i64,
    embargo: usize,
    groups: Vec<Range<usize>>,
    splits: Vec<SplitView>,
    /// paths[p] = for each tested group in order, (group, split).
    paths: Vec<Vec<(usize, usize)>>,
}

#[derive(Debug, Serialize)]
struct SplitView {
    split: usize,
    test_groups: Vec<usize>,
    /// Path id of each test group.
    path_ids: Vec<usize>,
    train: Vec<Range<usize>>,
    train_rows: usize,
    test_rows: usize,
    purged: usize,
    embargoed: usize,
}

fn view(plan: &SplitPlan, purge: i64, embargo: usize) -> PlanView {
    let splits = plan
        .splits
        .iter()
        .enumerate()
        .map(|(i, s)| SplitView {
            split: i,
            test_groups: s.test_groups.clone(),
            path_ids: s
                .test_groups
                .iter()
                .map(|&g| plan.paths.iter().position(|p| p.segments.contains(&(g, i))).unwrap_or(usize::MAX))
                .collect(),
            train: ranges(&s.train),
            train_rows: s.train.len(),
            test_rows: s.test.len(),
            purged: s.purged,
            embargoed: s.embargoed,
        })
        .collect();
    PlanView {
        method: plan.method.clone(),
        samples: plan.n_rows,
        purge,
        embargo,
        groups: plan.groups.clone(),
        splits,
        paths: plan.paths.iter().map(|p| p.segments.clone()).collect(),
    }
}

pub fn run_plan(args: CvPlanArgs) -> Result<()> {
    if args.purge < 0 {
        bail!("--purge must be >= 0");
    }
    let embargo = match args.split.embargo.unwrap_or_default() {
        Embargo::Bars(e) => e,
        Embargo::Time(_) => bail!("cv-plan counts in bars: give --embargo as a number of bars"),
    };
    let splitter = args.split.splitter(Embargo::Bars(embargo))?;
    let t0: Vec<i64> = (0..args.samples as i64).collect();
    let t1: Vec<i64> = t0.iter().map(|t| t + args.purge).collect();
    let plan = splitter.plan(&t0, &t1)?;
    super::emit(args.json, &view(&plan, args.purge, embargo), print_plan)
}

fn fmt_ranges(r: &[Range<usize>]) -> String {
    r.iter().map(|r| format!("{}..{}", r.start, r.end)).collect::<Vec<_>>().join(" ")
}

fn print_plan(v: &PlanView) {
    println!("{} over {} samples, purge {} bars", v.method, v.samples, v.purge);
    println!("groups: {}", fmt_ranges(&v.groups));
    for s in &v.splits {
        println!(
            "split {:>3}  test groups {:?} (paths {:?})  train {} rows [{}]  test {} rows  purged {}  embargoed {}",
            s.split,
            s.test_groups,
            s.path_ids,
            s.train_rows,
            fmt_ranges(&s.train),
            s.test_rows,
            s.purged,
            s.embargoed
        );
    }
    println!("paths (split supplying each group):");
    let n_groups = v.groups.len();
    print!("{:<6}", "path");
    for g in 0..n_groups {
        print!(" g{g:<4}");
    }
    println!();
    for (p, segs) in v.paths.iter().enumerate() {
        print!("{p:<6}");
        for g in 0..n_groups {
            match segs.iter().find(|(gg, _)| *gg == g) {
                Some((_, s)) => print!(" {s:<5}"),
                None => print!(" {:<5}", "-"),
            }
        }
        println!();
    }
}

/// Arguments of `retrain cv`.
#[derive(Debug, clap::Args)]
pub struct CvArgs {
    /// Candles (CSV/Parquet; repeat for one file per symbol), or with --label a table whose
    /// numeric columns are features.
    #[arg(long, required = true, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Model kind (`xgboost`: GBDT depth-wise, `lightgbm`: leaf-wise, `nhits`, `patchtst`;
    /// baselines `logreg`, `tree`, `forest`, `ridge`).
    #[arg(long, default_value = "lightgbm", value_parser = super::kind_parser())]
    model: ModelKind,
    /// Baselines: TOML or JSON of the kind's hyperparameters (`alpha`, `n_trees`,
    /// `max_depth`, …) over its defaults; unknown keys are an error.
    #[arg(long)]
    baseline_params: Option<PathBuf>,
    /// Networks: TOML overriding the kind's defaults (`[model]` network fields, `[train]`,
    /// top-level `lookback`, `horizon`, `inputs`); unknown keys are an error.
    #[arg(long)]
    nn_config: Option<PathBuf>,
    /// Networks: epochs (overrides the config).
    #[arg(long)]
    epochs: Option<usize>,
    /// Table mode: the label column of --data (features = the other numeric columns).
    #[arg(long)]
    label: Option<String>,
    /// Table mode without a `t1` column: label horizon in rows.
    #[arg(long)]
    horizon: Option<usize>,
    /// Candle mode: the label (future_return[:h], direction[:h[:thr[:classes]]], triple_barrier…).
    #[arg(long, default_value = "direction:12")]
    target: LabelSpec,
    /// Candle mode: feature spec (TOML/JSON); default the full built-in set.
    #[arg(long)]
    spec: Option<PathBuf>,
    #[command(flatten)]
    split: SplitArgs,
    #[command(flatten)]
    gbdt: GbdtFlags,
    /// Seed stability: repeat the whole CV with seeds 0..N and report the score variance.
    #[arg(long)]
    seeds: Option<usize>,
    /// Fit one split at a time (all threads inside each fit) instead of splits concurrently.
    #[arg(long)]
    serial_splits: bool,
    /// Keep the out-of-sample predictions in the JSON output.
    #[arg(long)]
    keep_predictions: bool,
    /// Print the report as JSON (no progress bar).
    #[arg(long)]
    json: bool,
}

/// The kind's hyperparameters for `task`, with the flags applied: the GBDT flags to
/// hyperparameters that are GBDT parameters, `--nn-config` and `--epochs` to network ones.
fn recipe(args: &CvArgs, task: Task) -> Result<Recipe> {
    let defaults = args.model.recipe(task).into_params();
    let gbdt_flags = args.gbdt.any();
    let nn_flags = args.nn_config.is_some() || args.epochs.is_some();
    let baseline_flags = args.baseline_params.is_some();
    let not_baseline = || {
        anyhow::anyhow!(
            "--baseline-params applies to the baseline kinds (logreg, tree, forest, ridge), not {}",
            args.model
        )
    };
    let params = match (
        serde_json::from_value::<GbdtParams>(defaults.clone()),
        serde_json::from_value::<NnParams>(defaults.clone()),
    ) {
        (Ok(base), _) => {
            if nn_flags {
                bail!("--nn-config and --epochs apply to the network kinds, not {}", args.model);
            }
            if baseline_flags {
                return Err(not_baseline());
            }
            serde_json::to_value(args.gbdt.build(base)?)?
        }
        (_, Ok(mut p)) => {
            if gbdt_flags {
                bail!("the GBDT flags (--params, --rounds, …) apply to the GBDT kinds, not {}", args.model);
            }
            if baseline_flags {
                return Err(not_baseline());
            }
            if args.nn_config.is_some() {
                p = super::nn::nn_params_from(p, args.nn_config.as_deref())?;
            }
            if let Some(e) = args.epochs {
                p.train.epochs = e;
            }
            serde_json::to_value(p)?
        }
        _ => {
            if gbdt_flags || nn_flags {
                bail!("{} takes no GBDT or network flags (its hyperparameters: --baseline-params)", args.model);
            }
            match &args.baseline_params {
                Some(path) => merge_params(defaults, path)?,
                None => defaults,
            }
        }
    };
    Ok(Recipe::new(args.model, params)?)
}

/// `defaults` with the keys of the TOML/JSON file at `path` written over them.
fn merge_params(mut defaults: serde_json::Value, path: &std::path::Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let given: serde_json::Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
    } else {
        serde_json::to_value(
            toml::from_str::<toml::Table>(&text).with_context(|| format!("parsing {}", path.display()))?,
        )?
    };
    let (Some(into), Some(from)) = (defaults.as_object_mut(), given.as_object()) else {
        bail!("{}: expected a table of hyperparameters", path.display());
    };
    for (k, v) in from {
        into.insert(k.clone(), v.clone());
    }
    Ok(defaults)
}

/// Load the dataset and work out the default embargo (with a note when it is lowered). From
/// candles, `recipe` says which feature columns the kind reads.
fn dataset(args: &CvArgs, recipe: Option<&Recipe>) -> Result<(Dataset, usize, Vec<String>)> {
    let mut notes = Vec::new();
    if let Some(label) = &args.label {
        if args.data.len() != 1 {
            bail!("table mode (--label) reads one --data file");
        }
        let path = &args.data[0];
        let table = read_table(path, label, None).with_context(|| format!("loading {}", path.display()))?;
        let has_time = table.t0.is_some();
        let ds = Dataset::from_table(table, args.horizon)?;
        let default = match has_time {
            true => default_embargo_bars(&ds.t0, 5.0, 0),
            false => {
                notes.push("table has no timestamp column: default embargo is 0 bars (pass --embargo)".into());
                0
            }
        };
        return Ok((ds, default, notes));
    }
    let spec = match &args.spec {
        Some(p) => FeatureSpec::from_file(p)?,
        None => FeatureSpec::default(),
    };
    // A network reads its lookback windows from the rows; the window is a causal feature, so
    // its length also enters the default embargo below.
    let spec = match recipe {
        Some(r) => r.features(&spec)?,
        None => spec,
    };
    let loaded = data::load_many(&args.data, &LoadOptions::default())?;
    let ds = Dataset::from_bars(&loaded.bars, &spec, &args.target)?;
    let five_days = default_embargo_bars(&ds.t0, 5.0, 0);
    let lookback = spec.max_lookback();
    let default = default_embargo_bars(&ds.t0, 5.0, lookback);
    // A duration counts in bars of the data's median interval for this comparison.
    let given = match args.split.embargo {
        Some(Embargo::Bars(e)) => Some(e),
        Some(Embargo::Time(ms)) => median_step(&ds.t0).map(|step| (ms / step.max(1)) as usize),
        None => None,
    };
    if let (Some(e), Some(shown)) = (given, args.split.embargo)
        && e < default
    {
        notes.push(format!(
            "embargo lowered to {shown} by the user; the default would be {default} bars (5 days = {five_days} bars, \
             longest feature lookback = {lookback} bars)"
        ));
    }
    Ok((ds, default, notes))
}

#[derive(Debug, Serialize)]
struct CvSummary {
    data: Vec<String>,
    model: ModelKind,
    params: serde_json::Value,
    embargo: Embargo,
    load_seconds: f64,
    report: CvReport,
}

pub fn run(args: CvArgs) -> Result<()> {
    let load_started = Instant::now();
    // From candles the label fixes the task before any data is read; a table's task is read
    // off its label column.
    let from_candles = if args.label.is_none() { Some(recipe(&args, Task::of_label(&args.target))?) } else { None };
    let (ds, default_embargo, mut notes) = dataset(&args, from_candles.as_ref())?;
    let load_seconds = load_started.elapsed().as_secs_f64();
    let task = Task::of(&ds);
    let p = match from_candles {
        Some(p) => p,
        None => recipe(&args, task)?,
    };
    let embargo = args.split.embargo.unwrap_or(Embargo::Bars(default_embargo));
    let splitter = args.split.splitter(embargo)?;

    let runs = args.seeds.unwrap_or(1) as u64;
    let pb = if args.json { ProgressBar::hidden() } else { ProgressBar::new(0) };
    pb.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} fits {msg}")?);
    let key = task.primary_metric();
    let on_split = |s: &retrain::validation::report::SplitScores, total: usize| {
        pb.set_length(total as u64 * runs);
        pb.inc(1);
        if let Some(v) = s.test.get(key) {
            pb.set_message(format!("split {} {key} {v:.4}", s.split));
        }
    };
    let opts = CvOptions {
        keep_predictions: args.keep_predictions,
        // candle runs its own worker threads inside each network fit: one fit at a time.
        parallel_splits: !args.serial_splits && args.model.kind().fits_in_parallel(),
        on_split: Some(&on_split),
        ..CvOptions::default()
    };
    let mut report = match args.seeds {
        Some(n) => cross_validate_seeds(&p, &ds, splitter.as_ref(), &opts, n)?.0,
        None => cross_validate(&p, &ds, splitter.as_ref(), &opts)?,
    };
    pb.finish_and_clear();
    report.notes.append(&mut notes);
    let summary = CvSummary {
        data: args.data.iter().map(|d| d.display().to_string()).collect(),
        model: args.model,
        params: p.params().clone(),
        embargo,
        load_seconds,
        report,
    };
    super::emit(args.json, &summary, |s| {
        println!("{} model on {} ({} rows), embargo {}", s.model.name(), s.data.join(", "), s.report.rows, s.embargo);
        print!("{}", s.report);
    })
}

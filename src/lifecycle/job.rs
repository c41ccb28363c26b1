//! One retraining job: data window → features and labels →
//! CPCV → final fit → decision against the deployed version → the candidate stored with its
//! decision report. Hyperparameters, feature spec and label are inherited from the active
//! version when it is of the same kind, else taken from the caller's [`ModelSpec`].
//!
//! Candidate and incumbent are compared on the same CPCV paths: the deployed model, frozen,
//! predicts each path's rows that came after its own training data (so neither model has
//! seen them); when no path has [`COMPARE_MIN_ROWS`] such rows (the incumbent was trained on
//! this very window) the incumbent's own stored per-path CPCV scores stand in, and the report
//! says so.

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::Policy;
use crate::data::Bars;
use crate::error::{Error, Result};
use crate::features::{Dataset, FeatureSpec, LabelSpec, Task};
use crate::lifecycle::cache::{JobCache, KeyBuilder};
use crate::lifecycle::cancel::CancelToken;
use crate::lifecycle::decision::{DecisionInput, DecisionMetrics, DecisionReport, decide};
use crate::lifecycle::drift::ReferenceStats;
use crate::lifecycle::events::{Event, EventKind, EventSink};
use crate::lifecycle::trigger::Trigger;
use crate::model::{Fit, Model, ModelKind, Predict, Recipe};
use crate::store::{Artifact, Change, DataRange, Status, VersionMeta, VersionStore};
use crate::validation::compare::{BaselineComparison, IcSignificance, ic_difference};
use crate::validation::cross_validate::cross_validate_seeds;
use crate::validation::cross_validate::{default_embargo_bars, early_stopping_slice};
use crate::validation::overfit::OverfitThresholds;
use crate::validation::report::{Scores, score};
use crate::validation::{Cpcv, CvOptions, CvReport, Embargo, cross_validate};

/// Rows per path the frozen incumbent must not have seen for the like-for-like comparison.
pub const COMPARE_MIN_ROWS: usize = 100;
/// The reference statistics artifact (drift checks).
pub const REFERENCE_ARTIFACT: &str = "reference.json";

/// What a model id trains when no active version says otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The model kind.
    pub kind: ModelKind,
    /// Feature spec.
    pub features: FeatureSpec,
    /// Label.
    pub label: LabelSpec,
}

impl ModelSpec {
    /// `kind` with the full default feature set and the 12-bar up/down label (a classifier,
    /// so the decision's calibration is defined).
    pub fn new(kind: ModelKind) -> Self {
        let label = LabelSpec::Direction { horizon: 12, threshold: 0.0, classes: 2 };
        ModelSpec { kind, features: FeatureSpec::default(), label }
    }
}

/// Peak memory of a job in MiB, estimated before it starts by the kind (a memory budget is
/// checked before a job starts): deliberately rough, its job is to refuse a window that
/// cannot fit, not to budget bytes.
pub fn estimate_memory_mb(rows: usize, features: usize, kind: ModelKind, threads: usize) -> u64 {
    kind.kind().memory_mb(rows, features, threads)
}

/// A recipe whose fits stop when the job's [`CancelToken`] fires (every boosting round,
/// every network batch).
#[derive(Clone)]
struct Guarded {
    recipe: Recipe,
    cancel: CancelToken,
}

impl Fit for Guarded {
    type Model = Box<dyn Model>;
    fn fit(&self, train: &Dataset, valid: Option<&Dataset>) -> Result<Box<dyn Model>> {
        self.cancel.check()?;
        let cancel = &self.cancel;
        let out = self.recipe.fit_observed(train, valid, &|| !cancel.is_stopped())?;
        // A stopped loop returns its partial model: it must not pass for a finished one.
        self.cancel.check()?;
        Ok(out)
    }
    fn uses_validation(&self) -> bool {
        self.recipe.uses_validation()
    }
    fn with_seed(&self, seed: u64) -> Self {
        Guarded { recipe: self.recipe.with_seed(seed), cancel: self.cancel.clone() }
    }
    fn draws_from_seed(&self) -> Option<bool> {
        self.recipe.draws_from_seed()
    }
}

/// Load version `tag` of `model_id` (a `kind` model) from the store, checksums verified.
pub fn load_model(store: &VersionStore, model_id: &str, tag: &str, kind: ModelKind) -> Result<Box<dyn Model>> {
    kind.kind().load(&|name| store.load_artifact(model_id, tag, name), &format!("{model_id}/{tag}"))
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Trained, validated, stored, decided.
    Completed,
    /// Not enough new data: nothing trained.
    Deferred,
    /// An error or a panic.
    Failed,
    /// Cancelled or over its time limit.
    Cancelled,
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            JobStatus::Completed => "COMPLETED",
            JobStatus::Deferred => "DEFERRED",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelled => "CANCELLED",
        })
    }
}

/// What a job did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    /// The model id.
    pub model_id: String,
    /// Its kind (when known).
    pub kind: Option<ModelKind>,
    /// The (highest-priority) trigger.
    pub trigger: Trigger,
    /// Every trigger reason grouped into this job.
    pub reasons: Vec<String>,
    /// How it ended.
    pub status: JobStatus,
    /// The stored candidate.
    pub tag: Option<String>,
    /// The version active before the job.
    pub incumbent: Option<String>,
    /// The decision.
    pub decision: Option<DecisionReport>,
    /// Mean CPCV path metrics of the candidate.
    pub metrics: BTreeMap<String, f64>,
    /// Mean metrics of each baseline kind on the same CPCV paths (the gate's comparison).
    #[serde(default)]
    pub baselines: BTreeMap<String, BTreeMap<String, f64>>,
    /// Dataset rows (after warm-up and label drops).
    pub rows: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Error message (FAILED / CANCELLED) or deferral reason.
    pub error: Option<String>,
    /// Caveats.
    pub notes: Vec<String>,
}

/// What a job needs from its surroundings.
pub struct JobContext<'a> {
    /// The store.
    pub store: &'a VersionStore,
    /// The policy.
    pub policy: &'a Policy,
    /// Event sink.
    pub events: &'a dyn EventSink,
    /// Time.
    pub clock: &'a dyn Clock,
    /// Cancellation (with the job's time limit).
    pub cancel: CancelToken,
    /// Training work shared with identical jobs (none: every job trains).
    pub cache: Option<&'a JobCache>,
}

impl JobContext<'_> {
    fn emit(&self, model: &str, kind: EventKind) {
        self.events.emit(&Event { ts: self.clock.now(), model: Some(model.to_string()), kind });
    }
}

/// The last `days` of `bars` (all of them for `None`).
pub fn window(bars: &Bars, days: Option<usize>) -> Result<Bars> {
    let Some(days) = days else { return Ok(bars.clone()) };
    let ts = bars.timestamps();
    let Some(&last) = ts.last() else { return Ok(bars.clone()) };
    let from = last - days as i64 * 86_400_000;
    let start = ts.partition_point(|&t| t < from);
    bars.slice(start, ts.len())
}

/// Where the model's training data ends, and whose it is: the active version's, or a newer
/// candidate's (one the gate refused or sent to shadow has already been trained on those rows,
/// so a retrain waits for `min_new_samples` beyond it rather than repeating its verdict every
/// cycle). `None` without an active version: a first model needs no new rows.
fn trained_through(
    store: &VersionStore,
    model_id: &str,
    incumbent: Option<&crate::store::VersionInfo>,
) -> Option<(i64, String)> {
    let inc = incumbent?;
    let mut best = inc.meta.data_range.map(|r| (r.end.as_millisecond(), format!("the active version {}", inc.tag)));
    let newest = store.list(model_id, None).ok().and_then(|l| l.into_iter().max_by_key(|v| v.seq));
    if let Some(v) = newest.filter(|v| v.tag != inc.tag)
        && let Ok(info) = store.get(model_id, &v.tag)
        && let Some(end) = info.meta.data_range.map(|r| r.end.as_millisecond())
        && best.as_ref().is_none_or(|b| end > b.0)
    {
        best = Some((end, format!("the newer candidate {} ({})", v.tag, v.status)));
    }
    best
}

/// Per-path metrics used by the decision, as stored in `cv_summary.paths`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PathMetrics {
    win_rate: Option<f64>,
    avg_r: Option<f64>,
    calibration: Option<f64>,
    ic_spearman: Option<f64>,
}

impl PathMetrics {
    fn of(s: &Scores) -> Self {
        PathMetrics { win_rate: s.win_rate, avg_r: s.avg_r, calibration: s.calibration, ic_spearman: s.ic_spearman }
    }
}

fn mean_metrics(paths: &[PathMetrics]) -> Option<DecisionMetrics> {
    let mean = |f: fn(&PathMetrics) -> Option<f64>| {
        let v: Vec<f64> = paths.iter().filter_map(f).filter(|x| x.is_finite()).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    Some(DecisionMetrics {
        win_rate: mean(|p| p.win_rate)?,
        avg_r: mean(|p| p.avg_r)?,
        calibration: mean(|p| p.calibration)?,
    })
}

/// Run one job for `model_id` on `bars` (see the module docs). Errors inside the job are
/// returned; the caller ([`crate::lifecycle::orchestrator`]) turns them into FAILED reports.
pub fn run_job(
    ctx: &JobContext<'_>,
    model_id: &str,
    spec: Option<&ModelSpec>,
    bars: &Bars,
    trigger: &Trigger,
    reasons: Vec<String>,
) -> Result<JobReport> {
    let started = Instant::now();
    let policy = ctx.policy;
    let incumbent = ctx.store.active(model_id)?;
    let mut notes = Vec::new();
    // Inherit from the active version when it is of the requested kind.
    let inherited = match (&incumbent, spec) {
        (Some(inc), s) => {
            let kind: ModelKind = inc.meta.model_kind.parse()?;
            if s.is_some_and(|s| s.kind != kind) {
                None
            } else {
                let features: FeatureSpec = match &inc.meta.feature_spec {
                    Some(v) => serde_json::from_value(v.clone())
                        .map_err(|e| Error::param("feature_spec", format!("active version {}: {e}", inc.tag)))?,
                    None => spec.map(|s| s.features.clone()).unwrap_or_default(),
                };
                let label: LabelSpec = match &inc.meta.label_spec {
                    Some(v) => serde_json::from_value(v.clone())
                        .map_err(|e| Error::param("label_spec", format!("active version {}: {e}", inc.tag)))?,
                    None => spec.map(|s| s.label.clone()).unwrap_or_default(),
                };
                let recipe = inc.meta.hyperparameters.clone().map(|v| Recipe::new(kind, v)).transpose()?;
                Some((ModelSpec { kind, features, label }, recipe))
            }
        }
        (None, _) => None,
    };
    let (spec, inherited_recipe) = match (inherited, spec) {
        (Some((s, r)), _) => {
            notes.push(format!(
                "hyperparameters, features and label inherited from {}",
                incumbent.as_ref().unwrap().tag
            ));
            (s, r)
        }
        (None, Some(s)) => (s.clone(), None),
        (None, None) => {
            return Err(Error::param(
                "model_id",
                format!("`{model_id}` has no active version and no model spec: declare its kind first"),
            ));
        }
    };
    let report_for = |status, error: Option<String>| JobReport {
        model_id: model_id.to_string(),
        kind: Some(spec.kind),
        trigger: trigger.clone(),
        reasons: reasons.clone(),
        status,
        tag: None,
        incumbent: incumbent.as_ref().map(|i| i.tag.clone()),
        decision: None,
        metrics: BTreeMap::new(),
        baselines: BTreeMap::new(),
        rows: 0,
        seconds: started.elapsed().as_secs_f64(),
        error,
        notes: Vec::new(),
    };

    // Data window and the new-data rule.
    let bars = window(bars, trigger.window(policy))?;
    if let Some((end, whose)) = trained_through(ctx.store, model_id, incumbent.as_ref()) {
        let new_rows = bars.timestamps().iter().filter(|&&t| t > end).count().saturating_sub(spec.label.horizon());
        if new_rows < policy.min_new_samples {
            let why = format!(
                "{new_rows} new labelled rows since the data of {whose} ended (needs {})",
                policy.min_new_samples
            );
            if !trigger.force {
                return Ok(report_for(JobStatus::Deferred, Some(why)));
            }
            notes.push(format!("{why}; forced by the trigger"));
        }
    }
    if let Some(budget) = policy.memory_budget_mb {
        let need = estimate_memory_mb(bars.len(), spec.features.columns().len(), spec.kind, policy.threads);
        if need > budget {
            return Err(Error::param(
                "memory_budget_mb",
                format!(
                    "{model_id}: a job on {} bars × {} features needs about {need} MiB, over the budget of {budget} MiB \
                     (narrow the window or raise the budget)",
                    bars.len(),
                    spec.features.columns().len()
                ),
            ));
        }
    }
    ctx.emit(model_id, EventKind::DataFetchCompleted { bars: bars.len() });
    ctx.emit(model_id, EventKind::TrainingStarted { kind: spec.kind.name().into(), reason: trigger.reason.clone() });
    ctx.cancel.check()?;

    // The task follows the label, so the kind's defaults are known before the data is built.
    let recipe = inherited_recipe.unwrap_or_else(|| spec.kind.recipe(Task::of_label(&spec.label)));
    let features = recipe.features(&spec.features)?;
    let ds = Dataset::from_bars(std::slice::from_ref(&bars), &features, &spec.label)?;
    let guarded = Guarded { recipe: recipe.clone(), cancel: ctx.cancel.clone() };
    let embargo = default_embargo_bars(&ds.t0, policy.embargo_days, features.max_lookback());
    let cpcv = Cpcv::new(policy.cpcv_groups, policy.cpcv_test_groups).embargo(Embargo::Bars(embargo));
    // Baselines another job of this window may share: computed first by the job that claims
    // them, so a job started alongside finds them done when it gets there.
    if let Some(cache) = ctx.cache {
        for base in baseline_kinds(policy, spec.kind, Task::of(&ds))? {
            let key = baseline_key(base, &bars, &ds, &cpcv);
            if cache.claim(key) {
                // A failure is recorded where the job scores its baselines.
                let _ = cache.get_or_compute(key, || baseline_cv(ctx, base, &ds, &cpcv));
            }
        }
    }
    let train = || train_candidate(ctx, &guarded, spec.kind, &ds, &cpcv);
    let key = || {
        KeyBuilder::new("training")
            .text(spec.kind.name())
            .json(recipe.params())
            .json(&features)
            .json(&spec.label)
            .bars(&bars)
            .json(&(policy.cpcv_groups, policy.cpcv_test_groups, embargo, policy.stability_seeds))
            .text(&format!("{:?}", overfit_thresholds(policy)))
            .json(&(policy.psi_bins, policy.drift_window_days))
            .finish()
    };
    let trained = match ctx.cache {
        Some(cache) => {
            let (t, reused) = cache.get_or_compute(key(), train)?;
            if reused {
                notes.push("reused the training of an identical job (same kind, recipe, window and validation)".into());
            }
            t
        }
        None => std::sync::Arc::new(train()?),
    };
    let Trained { cv, artifacts, train_metrics, reference } = trained.as_ref();
    notes.extend(cv.notes.iter().cloned());
    ctx.cancel.check()?;

    // Compare with the deployed version on the same paths.
    let cand_paths: Vec<PathMetrics> = cv.paths.iter().map(|p| PathMetrics::of(&p.scores)).collect();
    let (incumbent_paths, how) = match &incumbent {
        None => (None, None),
        Some(inc) => incumbent_on_paths(ctx, model_id, inc, &spec, &ds, cv, &mut notes)?,
    };
    let inc_cmp = incumbent_paths.unwrap_or_default();
    let cand_cmp = match &how {
        Some(Comparison::Frozen { candidate }) => candidate.clone(),
        _ => cand_paths.clone(),
    };
    let ic_diff = if incumbent.is_some() && cand_cmp.len() == inc_cmp.len() && cand_cmp.len() >= 2 {
        let a: Vec<f64> = cand_cmp.iter().map(|p| p.ic_spearman.unwrap_or(f64::NAN)).collect();
        let b: Vec<f64> = inc_cmp.iter().map(|p| p.ic_spearman.unwrap_or(f64::NAN)).collect();
        ic_difference(&a, &b, IcSignificance::default()).ok()
    } else {
        None
    };
    let (baseline_checks, baseline_metrics) = score_baselines(ctx, spec.kind, &bars, &ds, &cpcv, cv, &mut notes)?;
    let input = DecisionInput {
        candidate: mean_metrics(&cand_cmp),
        incumbent: incumbent.as_ref().and_then(|_| mean_metrics(&inc_cmp)),
        flags: Some(cv.flags),
        ic_difference: ic_diff,
        baselines: baseline_checks,
    };
    let mut decision = decide(input, policy);
    if let Some(Comparison::Stored) = how {
        decision.concerns.push("incumbent scored by its own stored CPCV paths (it has seen this window)".into());
    }
    if incumbent.is_some() && decision.input.incumbent.is_none() {
        decision.concerns.push("the deployed version has no comparable metrics".into());
    }

    // Store the candidate with the status its decision gives it.
    let status = match decision.decision {
        crate::lifecycle::decision::Decision::Deploy => Status::Active,
        crate::lifecycle::decision::Decision::Canary | crate::lifecycle::decision::Decision::Review => Status::Shadow,
        crate::lifecycle::decision::Decision::KeepOld => Status::Retired,
    };
    let mut meta = VersionMeta::new(spec.kind.name());
    meta.status = status;
    meta.data_range = match (bars.timestamps().first(), bars.timestamps().last()) {
        (Some(&a), Some(&b)) => Some(DataRange {
            start: jiff::Timestamp::from_millisecond(a).map_err(|e| Error::param("bars", e.to_string()))?,
            end: jiff::Timestamp::from_millisecond(b).map_err(|e| Error::param("bars", e.to_string()))?,
        }),
        _ => None,
    };
    meta.n_samples = Some(ds.n_rows() as u64);
    meta.n_features = Some(ds.n_features() as u64);
    meta.feature_spec = Some(serde_json::to_value(&spec.features).expect("spec serialises"));
    meta.label_spec = Some(serde_json::to_value(&spec.label).expect("label serialises"));
    meta.hyperparameters = Some(recipe.params().clone());
    meta.train_metrics = train_metrics.clone();
    meta.validation_metrics =
        cv.summary.iter().filter(|s| s.mean.is_finite()).map(|s| (s.metric.clone(), s.mean)).collect();
    meta.cv_summary = Some(serde_json::json!({
        "method": cv.method,
        "rows": cv.rows,
        "embargo_bars": embargo,
        "flags": cv.flags,
        "paths": cand_paths,
    }));
    meta.parent_version = incumbent.as_ref().map(|i| i.tag.clone());
    meta.seed = recipe.seed();
    let mut files: Vec<Artifact> = artifacts.iter().map(|(n, b)| Artifact::bytes(n.clone(), b.clone())).collect();
    files.push(Artifact::bytes(REFERENCE_ARTIFACT, serde_json::to_vec(reference).expect("reference serialises")));
    ctx.cancel.check()?;
    let change = Change::new("lifecycle", format!("{} ({}): {}", trigger.reason, trigger.priority, decision));
    let tag = ctx.store.register(model_id, meta, &files, &change)?;
    ctx.store.record_decision(
        model_id,
        &tag,
        &serde_json::to_value(&decision).expect("decision serialises"),
        &Change::new("lifecycle", decision.decision.to_string()),
    )?;
    ctx.emit(model_id, EventKind::Registered { tag: tag.clone(), decision: decision.decision.to_string() });
    if status == Status::Active {
        ctx.emit(model_id, EventKind::Promoted { tag: tag.clone(), reason: decision.to_string() });
    }
    let seconds = started.elapsed().as_secs_f64();
    ctx.emit(model_id, EventKind::TrainingCompleted { ok: true, seconds, error: None });
    Ok(JobReport {
        metrics: cv.summary.iter().filter(|s| s.mean.is_finite()).map(|s| (s.metric.clone(), s.mean)).collect(),
        baselines: baseline_metrics,
        rows: ds.n_rows(),
        tag: Some(tag),
        decision: Some(decision),
        seconds,
        notes,
        ..report_for(JobStatus::Completed, None)
    })
}

/// What a job trains before it looks at the deployed version: the same for identical jobs.
struct Trained {
    cv: CvReport,
    artifacts: Vec<(String, Vec<u8>)>,
    train_metrics: BTreeMap<String, f64>,
    reference: ReferenceStats,
}

/// Cross-validate (with the policy's seed study), fit the final model on every row and
/// describe the training distribution.
fn train_candidate(
    ctx: &JobContext<'_>,
    guarded: &Guarded,
    kind: ModelKind,
    ds: &Dataset,
    cpcv: &Cpcv,
) -> Result<Trained> {
    let policy = ctx.policy;
    let opts = CvOptions {
        keep_predictions: true,
        parallel_splits: kind.kind().fits_in_parallel(),
        thresholds: overfit_thresholds(policy),
        ..CvOptions::default()
    };
    // Seed stability by default: the seed-0 report carries the variance across seeds, and the
    // seeds count as trials for the deflated Sharpe ratio.
    let cv = if policy.stability_seeds >= 2 {
        cross_validate_seeds(guarded, ds, cpcv, &opts, policy.stability_seeds)?.0
    } else {
        cross_validate(guarded, ds, cpcv, &opts)?
    };
    ctx.cancel.check()?;

    // Final fit on every row (the latest 10 % steer early stopping where the model uses it).
    let all: Vec<usize> = (0..ds.n_rows()).collect();
    let (fit_rows, es_rows) =
        if guarded.uses_validation() { early_stopping_slice(ds, &all, 0.1) } else { (all, Vec::new()) };
    let train = ds.select(&fit_rows)?;
    let valid = if es_rows.is_empty() { None } else { Some(ds.select(&es_rows)?) };
    let model = guarded.fit(&train, valid.as_ref())?;
    let train_metrics = in_sample_metrics(model.as_ref(), &train)?;
    drop((train, valid));
    let mut reference = ReferenceStats::from_dataset(ds, policy.psi_bins, Some(policy.drift_window_days))?;
    reference.prediction = prediction_reference(&cv, ds, policy);
    Ok(Trained { artifacts: model.artifacts()?, cv, train_metrics, reference })
}

/// The distribution of the candidate's out-of-sample prediction scores (CPCV path 0, which
/// covers every row once, in time order), calibrated like a feature's: what prediction drift
/// compares the live log with. `None` where the kind's outputs give no score.
fn prediction_reference(
    cv: &CvReport,
    ds: &Dataset,
    policy: &Policy,
) -> Option<crate::lifecycle::drift::FeatureReference> {
    use crate::lifecycle::drift::{FeatureReference, PREDICTION, prediction_score, window_rows};
    let (rows, out) = cv.path_outputs(0)?;
    let task = Task::of(ds);
    let mut scored: Vec<(usize, f64)> = rows
        .iter()
        .zip(out.rows())
        .filter_map(|(&i, o)| {
            let s = crate::model::Signal::from_outputs(task, &o.to_vec(), None);
            prediction_score(s.direction, s.probability, s.expected_return).map(|v| (i, v))
        })
        .collect();
    scored.sort_by_key(|x| x.0);
    let scores: Vec<f64> = scored.iter().map(|x| x.1).collect();
    let ts: Vec<i64> = scored.iter().map(|x| ds.t0[x.0]).collect();
    let mut r = FeatureReference::from_values(PREDICTION, &scores, policy.psi_bins).ok()?;
    r.calibrate(&scores, window_rows(&ts, policy.drift_window_days));
    Some(r)
}

/// The final model's scores on the rows it was fit on (a version's `train_metrics`: in-sample,
/// so only a record of fit; every gate reads the out-of-sample CPCV scores instead).
fn in_sample_metrics(model: &dyn Model, train: &Dataset) -> Result<BTreeMap<String, f64>> {
    let out = model.predict(train.x.view())?;
    let y = train.y.as_slice().ok_or_else(|| Error::param("dataset.y", "labels must be contiguous"))?;
    let clock = crate::validation::cross_validate::trade_clock(train, None);
    let s = score(Task::of(train), y, out.view(), train.ret.as_deref(), train.risk.as_deref(), clock);
    Ok(s.values().into_iter().filter(|(_, v)| v.is_finite()).map(|(k, v)| (k.to_string(), v)).collect())
}

/// The overfitting limits the policy sets.
pub fn overfit_thresholds(policy: &Policy) -> OverfitThresholds {
    OverfitThresholds {
        max_sharpe_gap: policy.overfit_max_sharpe_gap,
        min_ic: policy.overfit_min_ic,
        max_seed_variance: policy.overfit_max_seed_variance,
        seeds: OverfitThresholds::default().seeds,
        alpha: policy.significance,
    }
}

/// Mean metrics per baseline kind.
type BaselineMetrics = BTreeMap<String, BTreeMap<String, f64>>;

/// Cross-validate every baseline kind the policy names that models this label, on the
/// candidate's dataset and splitter (so the same paths), and compare it with the candidate.
/// A baseline that fails (over its row limit, one class in a fold) is recorded as unscored;
/// cancellation stops the job.
fn score_baselines(
    ctx: &JobContext<'_>,
    kind: ModelKind,
    bars: &Bars,
    ds: &Dataset,
    cpcv: &Cpcv,
    cv: &CvReport,
    notes: &mut Vec<String>,
) -> Result<(Vec<BaselineComparison>, BaselineMetrics)> {
    let policy = ctx.policy;
    let metric = policy.baseline_metric.as_str();
    let (mut checks, mut means) = (Vec::new(), BTreeMap::new());
    let per_path =
        |r: &CvReport| -> Vec<f64> { r.paths.iter().map(|p| p.scores.get(metric).unwrap_or(f64::NAN)).collect() };
    if policy.baselines.iter().any(|n| n == kind.name()) {
        notes.push(format!("baseline {} is the candidate's own kind: not compared with itself", kind.name()));
    }
    for base in baseline_kinds(policy, kind, cv.task)? {
        let name = base.name();
        ctx.cancel.check()?;
        let run = || baseline_cv(ctx, base, ds, cpcv);
        let result = match ctx.cache {
            Some(cache) => cache.get_or_compute(baseline_key(base, bars, ds, cpcv), run).map(|(r, _)| r),
            None => run().map(std::sync::Arc::new),
        };
        match result {
            Ok(b) => {
                let check = BaselineComparison::of(
                    name,
                    metric,
                    &per_path(cv),
                    &per_path(&b),
                    policy.baseline_min_delta,
                    policy.baseline_p_value,
                )
                .unwrap_or_else(|e| BaselineComparison::failed(name, metric, e.to_string()));
                checks.push(check);
                means.insert(
                    name.to_string(),
                    b.summary.iter().filter(|s| s.mean.is_finite()).map(|s| (s.metric.clone(), s.mean)).collect(),
                );
            }
            Err(e @ Error::Cancelled { .. }) => return Err(e),
            Err(e) => checks.push(BaselineComparison::failed(name, metric, e.to_string())),
        }
    }
    Ok((checks, means))
}

/// The policy's baselines that judge a `task` candidate of `kind` (never the kind itself).
fn baseline_kinds(policy: &Policy, kind: ModelKind, task: Task) -> Result<Vec<ModelKind>> {
    let mut out = Vec::new();
    for name in &policy.baselines {
        let base: ModelKind = name.parse()?;
        if base.kind().supports(task) && base != kind {
            out.push(base);
        }
    }
    Ok(out)
}

/// A baseline's cross-validation on the job's dataset and paths.
fn baseline_cv(ctx: &JobContext<'_>, base: ModelKind, ds: &Dataset, cpcv: &Cpcv) -> Result<CvReport> {
    let recipe = Guarded { recipe: base.recipe(Task::of(ds)), cancel: ctx.cancel.clone() };
    let opts = CvOptions { keep_predictions: false, in_sample: Some(false), ..CvOptions::default() };
    cross_validate(&recipe, ds, cpcv, &opts)
}

/// What a baseline's cross-validation depends on: its kind and defaults, the rows, the paths.
fn baseline_key(base: ModelKind, bars: &Bars, ds: &Dataset, cpcv: &Cpcv) -> crate::lifecycle::cache::Key {
    KeyBuilder::new("baseline")
        .text(base.name())
        .json(base.recipe(Task::of(ds)).params())
        .json(&ds.feature_names)
        .json(&(ds.n_rows(), &ds.t0))
        .bars(bars)
        .text(&format!("{cpcv:?}"))
        .finish()
}

/// How the incumbent was scored.
enum Comparison {
    /// The frozen model on rows it never saw (the candidate's per-path scores on the same rows).
    Frozen { candidate: Vec<PathMetrics> },
    /// Its stored per-path CPCV scores.
    Stored,
}

/// The incumbent's per-path metrics and how they were obtained.
fn incumbent_on_paths(
    ctx: &JobContext<'_>,
    model_id: &str,
    inc: &crate::store::VersionInfo,
    spec: &ModelSpec,
    ds: &Dataset,
    cv: &CvReport,
    notes: &mut Vec<String>,
) -> Result<(Option<Vec<PathMetrics>>, Option<Comparison>)> {
    let same_recipe = inc.meta.model_kind == spec.kind.name()
        && inc.meta.feature_spec.as_ref() == Some(&serde_json::to_value(&spec.features).expect("spec serialises"))
        && inc.meta.label_spec.as_ref() == Some(&serde_json::to_value(&spec.label).expect("label serialises"));
    let end = inc.meta.data_range.map(|r| r.end.as_millisecond());
    if same_recipe && let Some(end) = end {
        let unseen = |rows: &[usize]| rows.iter().filter(|&&r| ds.t0[r] > end).count();
        let paths: Vec<(Vec<usize>, Array2<f64>)> = (0..cv.paths.len()).filter_map(|p| cv.path_outputs(p)).collect();
        if paths.len() == cv.paths.len() && paths.iter().all(|(rows, _)| unseen(rows) >= COMPARE_MIN_ROWS) {
            let old = load_model(ctx.store, model_id, &inc.tag, spec.kind)?;
            let y = ds.y.as_slice().ok_or_else(|| Error::param("dataset.y", "labels must be contiguous"))?;
            let mut cand = Vec::new();
            let mut olds = Vec::new();
            for (rows, out) in &paths {
                let keep: Vec<usize> = (0..rows.len()).filter(|&i| ds.t0[rows[i]] > end).collect();
                let sel: Vec<usize> = keep.iter().map(|&i| rows[i]).collect();
                let ys: Vec<f64> = sel.iter().map(|&r| y[r]).collect();
                let ret = ds.ret.as_ref().map(|v| sel.iter().map(|&r| v[r]).collect::<Vec<_>>());
                let risk = ds.risk.as_ref().map(|v| sel.iter().map(|&r| v[r]).collect::<Vec<_>>());
                let cand_out = out.select(ndarray::Axis(0), &keep);
                let sub = ds.select(&sel)?;
                let old_out = old.predict(sub.x.view())?;
                let task = cv.task;
                cand.push(PathMetrics::of(&score(
                    task,
                    &ys,
                    cand_out.view(),
                    ret.as_deref(),
                    risk.as_deref(),
                    cv.clock,
                )));
                olds.push(PathMetrics::of(&score(
                    task,
                    &ys,
                    old_out.view(),
                    ret.as_deref(),
                    risk.as_deref(),
                    cv.clock,
                )));
            }
            notes.push(format!("compared with {} on the CPCV paths' rows after its training data", inc.tag));
            return Ok((Some(olds), Some(Comparison::Frozen { candidate: cand })));
        }
    }
    let stored = inc
        .meta
        .cv_summary
        .as_ref()
        .and_then(|v| v.get("paths"))
        .and_then(|p| serde_json::from_value::<Vec<PathMetrics>>(p.clone()).ok());
    Ok((stored, Some(Comparison::Stored)))
}

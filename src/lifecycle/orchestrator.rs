//! [`Retrainer`]: the library's front door. It owns the store,
//! the policy, a bounded rayon pool (never the host's global one), the event sink and the
//! clock; runs plans `batch_size` jobs at a time, each isolated (an error or a panic is a
//! FAILED job, a time limit or cancellation a CANCELLED one; the others carry on), and
//! records every trigger and job in the audit log.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{Clock, SystemClock};
use crate::config::Policy;
use crate::data::Bars;
use crate::error::{Error, Result};
use crate::features::{Dataset, FeatureSpec, LabelSpec};
use crate::lifecycle::cancel::CancelToken;
use crate::lifecycle::events::{Event, EventKind, EventSink, NullSink};
use crate::lifecycle::job::{JobContext, JobReport, JobStatus, ModelSpec, load_model, run_job};
use crate::lifecycle::plan::{Plan, plan};
use crate::lifecycle::trigger::Trigger;
use crate::model::{Model, ModelKind, Predict, Signal};
use crate::store::{AuditKind, Change, StatusChange, VersionInfo, VersionStore};

/// A stored version of a model (the deployed one, or any kept one), loaded with verified
/// checksums and ready to predict. (The store's own record of a version is a
/// [`VersionInfo`]; this is the model it describes.)
pub struct LoadedModel {
    /// Its store record.
    pub info: VersionInfo,
    /// Its kind.
    pub kind: ModelKind,
    /// The feature columns it reads (its stored spec, plus a network's lookback window):
    /// inference recomputes exactly these.
    pub features: FeatureSpec,
    /// Its label.
    pub label: LabelSpec,
    model: Box<dyn Model>,
}

impl LoadedModel {
    /// The model's call on the last bar of `bars` (features computed causally from them).
    pub fn predict_latest(&self, bars: &Bars) -> Result<Signal> {
        let frame = crate::features::compute(bars, &self.features)?;
        let seg = frame.segments.first().ok_or_else(|| Error::Empty { source_name: "predict_latest bars".into() })?;
        let last =
            seg.len().checked_sub(1).ok_or_else(|| Error::Empty { source_name: "predict_latest bars".into() })?;
        let row: Vec<f32> = seg.columns.iter().map(|c| c[last] as f32).collect();
        if let Some(j) = row.iter().position(|v| !v.is_finite()) {
            return Err(Error::param(
                format!("features.{}", frame.names[j]),
                format!("not defined on the last bar: give at least {} bars", self.features.max_lookback() + 1),
            ));
        }
        let x = ndarray::Array2::from_shape_vec((1, row.len()), row).expect("one row");
        let mut signals = self.model.signals(x.view())?;
        Ok(signals.pop().expect("one row in, one signal out"))
    }

    /// Calls on feature rows already computed from this version's `features` (in their
    /// order, as f32): what [`LoadedModel::predict_latest`] gives on each row's last bar.
    pub fn signals(&self, x: ndarray::ArrayView2<'_, f32>) -> Result<Vec<Signal>> {
        self.model.signals(x)
    }

    /// Outputs for a prepared dataset's rows.
    pub fn predict(&self, ds: &Dataset) -> Result<ndarray::Array2<f64>> {
        self.model.predict(ds.x.view())
    }
}

/// Active versions, the last jobs and their outcomes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelStatus {
    /// The model id.
    pub model_id: String,
    /// Active tag.
    pub active: Option<String>,
    /// Shadow tag.
    pub shadow: Option<String>,
    /// Kind of the active version.
    pub kind: Option<String>,
    /// When the active version was deployed.
    pub deployed_at: Option<jiff::Timestamp>,
    /// Its validation metrics.
    pub metrics: BTreeMap<String, f64>,
    /// The last jobs (newest first): time, status, seconds, reason.
    pub last_jobs: Vec<serde_json::Value>,
    /// The raised stop-trading alarm, if any.
    pub alarm: Option<crate::lifecycle::alarm::Alarm>,
}

/// The front door.
pub struct Retrainer {
    pub(super) store: VersionStore,
    pub(super) policy: Policy,
    pub(super) pool: rayon::ThreadPool,
    pub(super) events: Arc<dyn EventSink>,
    pub(super) clock: Arc<dyn Clock>,
    specs: BTreeMap<String, ModelSpec>,
    limits: BTreeMap<String, Duration>,
    cancel: CancelToken,
    /// Training work shared with identical jobs (of this or other retrainers).
    cache: Option<Arc<crate::lifecycle::cache::JobCache>>,
    /// Exact KS p-values shared by every model's drift check, across supervisor cycles and,
    /// through `<store>/cache`, across restarts.
    pub(super) ks_table: crate::lifecycle::ks::ExactPValues,
    /// Entries the cache file holds (the table is saved when it has grown past them).
    ks_saved: std::sync::atomic::AtomicUsize,
    /// Each model's active reference statistics, by model id: (version tag, reference).
    /// Versions are immutable, so one read per version serves every supervisor cycle (and
    /// keeps the drift kernel's lookup indexes built).
    pub(super) references: std::sync::Mutex<BTreeMap<String, (String, Arc<crate::lifecycle::drift::ReferenceStats>)>>,
    /// Whether each model's stop-trading alarm was raised when last read from the audit log,
    /// so a supervisor cycle reads the log only for models with a raised alarm (to see an
    /// operator's clear) rather than for every model every cycle.
    pub(super) alarm_raised: std::sync::Mutex<BTreeMap<String, bool>>,
}

/// File name of the saved exact KS p-value table under the store's cache directory.
pub const KS_TABLE_FILE: &str = "ks-exact-p.bin";

/// The table a previous process saved in `store`'s cache, or an empty one (a missing file is
/// normal; an unreadable or corrupt one is logged and ignored: the values are recomputed).
fn load_ks_table(store: &VersionStore) -> crate::lifecycle::ks::ExactPValues {
    use crate::lifecycle::ks::ExactPValues;
    let path = store.cache_dir().join(KS_TABLE_FILE);
    match store.read_cache(KS_TABLE_FILE).and_then(|b| b.map(|b| ExactPValues::from_bytes(&b, &path)).transpose()) {
        Ok(table) => table.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the exact KS p-value cache");
            ExactPValues::new()
        }
    }
}

impl Retrainer {
    /// Open (or create) the store at `root` under `policy` (validated), with a pool of
    /// `policy.threads` threads.
    pub fn open(root: impl AsRef<Path>, policy: Policy) -> Result<Self> {
        policy.validate()?;
        policy_kinds(&policy)?;
        let pool = build_pool(policy.threads)?;
        let store = VersionStore::open(root)?;
        let ks_table = load_ks_table(&store);
        let ks_saved = std::sync::atomic::AtomicUsize::new(ks_table.len());
        Ok(Retrainer {
            store,
            policy,
            pool,
            events: Arc::new(NullSink),
            clock: Arc::new(SystemClock),
            specs: BTreeMap::new(),
            limits: BTreeMap::new(),
            cancel: CancelToken::new(),
            cache: None,
            ks_table,
            ks_saved,
            references: Default::default(),
            alarm_raised: Default::default(),
        })
    }

    /// Save the exact KS p-value table to the store's cache when it has grown since it was
    /// read or last saved, so the next process starts warm. Best effort: a failure (a
    /// read-only store) is logged, never an error of the cycle that computed the values.
    pub(super) fn save_ks_table(&self) {
        use std::sync::atomic::Ordering;
        let len = self.ks_table.len();
        if len == self.ks_saved.load(Ordering::Relaxed) {
            return;
        }
        match self.store.write_cache(KS_TABLE_FILE, &self.ks_table.to_bytes()) {
            Ok(()) => self.ks_saved.store(len, Ordering::Relaxed),
            Err(e) => tracing::warn!(error = %e, "could not save the exact KS p-value cache"),
        }
    }

    /// Use `n` worker threads (rebuilds the pool).
    pub fn with_threads(mut self, n: usize) -> Result<Self> {
        self.pool = build_pool(n)?;
        self.policy.threads = n;
        Ok(self)
    }

    /// Send events to `sink`.
    pub fn with_events(mut self, sink: impl EventSink + 'static) -> Self {
        self.events = Arc::new(sink);
        self
    }

    /// Take time from `clock` (the store's version tags and audit records too).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.store = self.store.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    /// Share training work through `cache`: a job identical to one already run (same kind,
    /// hyperparameters, specs, candle window and validation settings) reuses its
    /// cross-validation and fit, and decides against its own deployed version.
    pub fn with_job_cache(mut self, cache: Arc<crate::lifecycle::cache::JobCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Declare what `model_id` trains until it has an active version to inherit from.
    pub fn with_model(mut self, model_id: &str, spec: ModelSpec) -> Result<Self> {
        crate::store::check_model_id(model_id)?;
        self.specs.insert(model_id.to_string(), spec);
        Ok(self)
    }

    /// Give `model_id`'s jobs a time limit other than the policy's `max_training_minutes`
    /// (e.g. seconds for a fast-moving model).
    pub fn with_time_limit(mut self, model_id: &str, limit: Duration) -> Result<Self> {
        crate::store::check_model_id(model_id)?;
        self.limits.insert(model_id.to_string(), limit);
        Ok(self)
    }

    /// The token that cancels every running and future job of this retrainer.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// The exact KS p-values computed so far (loaded from the store's cache at open).
    pub fn exact_p_values(&self) -> &crate::lifecycle::ks::ExactPValues {
        &self.ks_table
    }

    /// The store.
    pub fn store(&self) -> &VersionStore {
        &self.store
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The reinforcement-learning agents on this retrainer's store, clock and event sink
    /// (tables loaded from the store; see [`RlAgents`](crate::lifecycle::RlAgents)).
    pub fn rl_agents(&self) -> Result<crate::lifecycle::RlAgents> {
        crate::lifecycle::RlAgents::open(self.store.clone(), &self.policy, self.events.clone(), self.clock.clone())
    }

    pub(super) fn emit(&self, model: Option<&str>, kind: EventKind) {
        self.events.emit(&Event { ts: self.clock.now(), model: model.map(str::to_string), kind });
    }

    /// Group `(model_id, trigger)` pairs into a plan (estimates from the audit log).
    pub fn plan(&self, triggers: &[(String, Trigger)]) -> Plan {
        plan(triggers, &self.policy, Some(&self.store))
    }

    /// Retrain one model now (a one-job plan).
    pub fn retrain(&self, model_id: &str, bars: &Bars, trigger: Trigger) -> Result<JobReport> {
        let p = self.plan(&[(model_id.to_string(), trigger)]);
        let mut reports = self.execute(&p, &|_| Ok(bars.clone()));
        Ok(reports.remove(0))
    }

    /// Run every job of `plan`, `batch_size` at a time in the bounded pool; `bars_for` gives
    /// each model's candles. Always returns one report per job, in plan order.
    pub fn execute(&self, plan: &Plan, bars_for: &(dyn Fn(&str) -> Result<Bars> + Sync)) -> Vec<JobReport> {
        let started = Instant::now();
        self.emit(None, EventKind::RetrainingStarted { jobs: plan.jobs.len() });
        let limit = Duration::from_secs(60 * self.policy.max_training_minutes);
        let mut reports = Vec::with_capacity(plan.jobs.len());
        for batch in plan.jobs.chunks(self.policy.batch_size.max(1)) {
            let out: Vec<JobReport> = self.pool.install(|| {
                use rayon::prelude::*;
                batch
                    .par_iter()
                    .map(|job| {
                        let _ = self.store.log_event(
                            &job.model_id,
                            AuditKind::Trigger,
                            &Change::new("lifecycle", &job.trigger.reason),
                            Some(serde_json::json!({"priority": job.trigger.priority, "kind": job.trigger.kind, "reasons": job.reasons})),
                        );
                        let token = self.cancel.with_limit(self.limits.get(&job.model_id).copied().unwrap_or(limit));
                        self.run_isolated(&job.model_id, &job.trigger, job.reasons.clone(), &token, bars_for)
                    })
                    .collect()
            });
            reports.extend(out);
        }
        let failed = reports.iter().filter(|r| matches!(r.status, JobStatus::Failed | JobStatus::Cancelled)).count();
        let completed = reports.iter().filter(|r| r.status == JobStatus::Completed).count();
        self.emit(None, EventKind::RetrainingCompleted { completed, failed, seconds: started.elapsed().as_secs_f64() });
        reports
    }

    /// One job with its error, panic and time limit turned into a report, and audited.
    fn run_isolated(
        &self,
        model_id: &str,
        trigger: &Trigger,
        reasons: Vec<String>,
        token: &CancelToken,
        bars_for: &(dyn Fn(&str) -> Result<Bars> + Sync),
    ) -> JobReport {
        let started = Instant::now();
        let ctx = JobContext {
            store: &self.store,
            policy: &self.policy,
            events: self.events.as_ref(),
            clock: self.clock.as_ref(),
            cancel: token.clone(),
            cache: self.cache.as_deref(),
        };
        let spec = self.specs.get(model_id);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let bars = bars_for(model_id)?;
            run_job(&ctx, model_id, spec, &bars, trigger, reasons.clone())
        }));
        let mut report = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let status =
                    if matches!(e, Error::Cancelled { .. }) { JobStatus::Cancelled } else { JobStatus::Failed };
                self.failed(model_id, spec, trigger, reasons, status, e.to_string(), started)
            }
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                self.failed(model_id, spec, trigger, reasons, JobStatus::Failed, format!("panicked: {msg}"), started)
            }
        };
        if report.status != JobStatus::Completed {
            let error = report.error.clone();
            ctx.events.emit(&Event {
                ts: self.clock.now(),
                model: Some(model_id.into()),
                kind: EventKind::TrainingCompleted { ok: false, seconds: report.seconds, error },
            });
        }
        let details = serde_json::json!({
            "status": report.status,
            "seconds": report.seconds,
            "kind": report.kind,
            "tag": report.tag,
            "decision": report.decision.as_ref().map(|d| d.decision.to_string()),
            "error": report.error,
        });
        let why = format!("job {}: {}", report.status, trigger.reason);
        if let Err(e) = self.store.log_event(model_id, AuditKind::Job, &Change::new("lifecycle", why), Some(details)) {
            tracing::warn!(model = model_id, error = %e, "could not audit a job");
        }
        // Retention after every registration keeps the store bounded however often jobs run
        // (a failure is noted, never the job's).
        if report.tag.is_some() {
            match self.store.retain(model_id, &crate::store::RetentionPolicy::from(&self.policy)) {
                Ok(r) if !r.trashed.is_empty() => report.notes.push(format!(
                    "retention moved {} old version(s) to the trash: {}",
                    r.trashed.len(),
                    r.trashed.iter().map(|t| t.tag.as_str()).collect::<Vec<_>>().join(", ")
                )),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(model = model_id, error = %e, "retention after the job failed");
                    report.notes.push(format!("retention after the job failed: {e}"));
                }
            }
        }
        report
    }

    #[allow(clippy::too_many_arguments)]
    fn failed(
        &self,
        model_id: &str,
        spec: Option<&ModelSpec>,
        trigger: &Trigger,
        reasons: Vec<String>,
        status: JobStatus,
        error: String,
        started: Instant,
    ) -> JobReport {
        JobReport {
            model_id: model_id.to_string(),
            kind: spec.map(|s| s.kind),
            trigger: trigger.clone(),
            reasons,
            status,
            tag: None,
            incumbent: self.store.aliases(model_id).ok().and_then(|a| a.active),
            decision: None,
            metrics: BTreeMap::new(),
            baselines: BTreeMap::new(),
            rows: 0,
            seconds: started.elapsed().as_secs_f64(),
            error: Some(error),
            notes: Vec::new(),
        }
    }

    /// The deployed version of `model_id`, loaded with verified checksums.
    pub fn active(&self, model_id: &str) -> Result<LoadedModel> {
        let info = self
            .store
            .active(model_id)?
            .ok_or_else(|| Error::NotFound { model_id: model_id.into(), what: "active version".into() })?;
        self.load(model_id, info)
    }

    /// Any kept version of `model_id` (e.g. the SHADOW candidate), loaded like [`Retrainer::active`].
    pub fn version(&self, model_id: &str, tag: &str) -> Result<LoadedModel> {
        let info = self.store.get(model_id, tag)?;
        self.load(model_id, info)
    }

    fn load(&self, model_id: &str, info: VersionInfo) -> Result<LoadedModel> {
        let (kind, features, label) = stored_specs(model_id, &info)?;
        let model = load_model(&self.store, model_id, &info.tag, kind)?;
        let features = model.features(&features);
        Ok(LoadedModel { info, kind, features, label, model })
    }

    /// The feature columns a kept version reads (a network's lookback window included, from
    /// its small `net.json`) without loading its weights: what drift checks need.
    pub fn version_features(&self, model_id: &str, info: &VersionInfo) -> Result<FeatureSpec> {
        let (kind, features, _) = stored_specs(model_id, info)?;
        kind.kind().stored_features(&features, &|name| self.store.load_artifact(model_id, &info.tag, name)).map_err(
            |e| match e {
                Error::CorruptModel { source_name, reason } => Error::CorruptVersion {
                    model_id: model_id.into(),
                    tag: info.tag.clone(),
                    reason: format!("{source_name}: {reason}"),
                },
                e => e,
            },
        )
    }

    /// The active model's call on the last bar.
    pub fn predict_latest(&self, model_id: &str, bars: &Bars) -> Result<Signal> {
        self.active(model_id)?.predict_latest(bars)
    }

    /// Make the RETIRED version `tag` active again (audited).
    pub fn rollback(&self, model_id: &str, tag: &str) -> Result<Vec<StatusChange>> {
        let changes = self.store.rollback(model_id, tag, &Change::new("lifecycle", format!("rollback to {tag}")))?;
        self.emit(Some(model_id), EventKind::Promoted { tag: tag.into(), reason: "rollback".into() });
        Ok(changes)
    }

    /// Active versions and the last jobs of every model in the store.
    pub fn status(&self) -> Result<Vec<ModelStatus>> {
        status(&self.store)
    }
}

/// The policy's `models` as registered kinds, after checking its `baselines` are kinds too and
/// its `baseline_metric` a comparable metric (an unknown name is an error naming the key).
pub fn policy_kinds(policy: &Policy) -> Result<Vec<ModelKind>> {
    let kinds = |field: &str, names: &[String]| -> Result<Vec<ModelKind>> {
        names
            .iter()
            .map(|m| {
                m.parse::<ModelKind>().map_err(|_| {
                    Error::param(field, format!("unknown model kind `{m}` (known: {})", ModelKind::names()))
                })
            })
            .collect()
    };
    kinds("baselines", &policy.baselines)?;
    if crate::validation::report::Scores::higher_is_better(&policy.baseline_metric).is_none() {
        return Err(Error::param(
            "baseline_metric",
            format!(
                "`{}` is not a metric a baseline can be compared on (e.g. ic_spearman, auc, log_loss, rmse)",
                policy.baseline_metric
            ),
        ));
    }
    kinds("models", &policy.models)
}

/// A version's kind, stored feature spec and label (errors name the version).
fn stored_specs(model_id: &str, info: &VersionInfo) -> Result<(ModelKind, FeatureSpec, LabelSpec)> {
    let kind: ModelKind = info.meta.model_kind.parse()?;
    let features: FeatureSpec = serde_json::from_value(info.meta.feature_spec.clone().unwrap_or_default())
        .map_err(|e| Error::param("feature_spec", format!("{model_id} {}: {e}", info.tag)))?;
    let label: LabelSpec = serde_json::from_value(info.meta.label_spec.clone().unwrap_or_default())
        .map_err(|e| Error::param("label_spec", format!("{model_id} {}: {e}", info.tag)))?;
    Ok((kind, features, label))
}

/// [`Retrainer::status`] for any store.
pub fn status(store: &VersionStore) -> Result<Vec<ModelStatus>> {
    let mut out = Vec::new();
    let models = store.models()?;
    let mut histories = store.histories(&models.iter().map(String::as_str).collect::<Vec<_>>()).unwrap_or_default();
    for model_id in models {
        let aliases = store.aliases(&model_id)?;
        let active = store.active(&model_id)?;
        let history = histories.remove(&model_id).unwrap_or_default();
        let last_jobs = history
            .iter()
            .rev()
            .filter(|r| r.event == AuditKind::Job)
            .take(5)
            .map(|r| {
                let mut v = r.details.clone().unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("ts".into(), serde_json::json!(r.ts));
                    o.insert("reason".into(), serde_json::json!(r.reason));
                }
                v
            })
            .collect();
        out.push(ModelStatus {
            alarm: crate::lifecycle::alarm::raised_in(&model_id, &history),
            model_id: model_id.clone(),
            active: aliases.active,
            shadow: aliases.shadow,
            kind: active.as_ref().map(|a| a.meta.model_kind.clone()),
            deployed_at: active.as_ref().and_then(|a| a.deployed_at),
            metrics: active.map(|a| a.meta.validation_metrics).unwrap_or_default(),
            last_jobs,
        });
    }
    Ok(out)
}

fn build_pool(n: usize) -> Result<rayon::ThreadPool> {
    if n == 0 {
        return Err(Error::param("threads", "must be at least 1"));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("retrain-{i}"))
        .build()
        .map_err(|e| Error::param("threads", e.to_string()))
}

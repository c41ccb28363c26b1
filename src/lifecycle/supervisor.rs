//! The supervisor side of [`Retrainer`]: watching deployed models between retrains. From the
//! live prediction log and recent candles it assesses health, checks feature drift against
//! the reference statistics stored with the active version, evaluates every trigger
//! (cron schedules included) and emits `model.performance.degraded` / `drift.detected`;
//! it retires or rolls back versions the live log condemns; and it runs shadow and canary
//! tests ([`ShadowPair`]) and acts on their verdicts. Every action is audited.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use crate::config::schedule::parse_all;
use crate::data::Bars;
use crate::error::{Error, Result};
use crate::lifecycle::drift::{DriftReport, DriftSeverity, ReferenceStats, check_drift_with, recent_columns};
use crate::lifecycle::events::EventKind;
use crate::lifecycle::health::{HealthReport, HealthStatus, PredictionLog};
use crate::lifecycle::job::REFERENCE_ARTIFACT;
use crate::lifecycle::orchestrator::{LoadedModel, Retrainer};
use crate::lifecycle::retire::{LiveAction, LiveVerdict, check_live, version_health};
use crate::lifecycle::shadow::{Call, Recommendation, ShadowEvaluation, ShadowTest};
use crate::lifecycle::trigger::{RegimeHistory, Trigger, TriggerInputs, evaluate};
use crate::model::Signal;
use crate::store::{AuditKind, Change, VersionInfo, VersionStore};

/// Logged predictions a prediction-drift check needs in its window.
pub const PREDICTION_DRIFT_MIN: usize = 50;

/// A source of a model's recent candles, by model id.
pub type BarsSource<'a> = &'a (dyn Fn(&str) -> Result<Bars> + Sync);

/// What the host observed since the last check (each part optional).
#[derive(Default)]
pub struct Observations<'a> {
    /// Live predictions and outcomes of every model.
    pub predictions: Option<&'a PredictionLog>,
    /// Recent candles of a model (for drift), by model id.
    pub bars: Option<BarsSource<'a>>,
    /// Daily regime labels, by model id.
    pub regimes: BTreeMap<String, RegimeHistory>,
}

/// One model's supervision result.
#[derive(Debug, Clone, Serialize)]
pub struct ModelCheck {
    /// The model.
    pub model_id: String,
    /// Its active version.
    pub active: String,
    /// Live health of the active version (with a prediction log).
    pub health: Option<HealthReport>,
    /// Drift of recent features against the active version's reference (with bars).
    pub drift: Option<DriftReport>,
    /// Drift of the active version's logged prediction scores over the drift window against
    /// the scores it gave on its validation rows (with a prediction log holding at least
    /// [`PREDICTION_DRIFT_MIN`] of them).
    pub prediction_drift: Option<crate::lifecycle::drift::FeatureDrift>,
    /// Every trigger that fired, of the kinds the policy's `triggers` enables (HIGH or CRITICAL drift of another model adds one here:
    /// such drift retrains every model).
    pub triggers: Vec<Trigger>,
    /// The model's raised stop-trading alarm after this check (raised by this check's
    /// CRITICAL drift, or earlier and not yet cleared).
    pub alarm: Option<crate::lifecycle::alarm::Alarm>,
    /// Inputs that could not be evaluated (the rest still were).
    pub errors: Vec<String>,
}

/// A kept version's training-distribution reference (its `reference.json`).
pub fn load_reference(store: &VersionStore, model_id: &str, tag: &str) -> Result<ReferenceStats> {
    let bytes = store.load_artifact(model_id, tag, REFERENCE_ARTIFACT)?;
    let corrupt = |reason: String| Error::CorruptVersion {
        model_id: model_id.into(),
        tag: tag.into(),
        reason: format!("{REFERENCE_ARTIFACT}: {reason}"),
    };
    let reference: ReferenceStats = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    match reference.problem() {
        Some(p) => Err(corrupt(p)),
        None => Ok(reference),
    }
}

impl LoadedModel {
    /// The version's training-distribution reference (its `reference.json`).
    pub fn reference(&self, store: &VersionStore, model_id: &str) -> Result<ReferenceStats> {
        load_reference(store, model_id, &self.info.tag)
    }

    /// The model's feature columns over the last `days` trading days (UTC dates with bars) of
    /// `bars`, in the order of `reference` (values rounded to f32 as in training).
    pub fn recent_features(&self, bars: &Bars, days: usize, reference: &ReferenceStats) -> Result<Vec<Vec<f64>>> {
        recent_columns(bars, &self.features, Some(days), reference)
    }
}

/// An ACTIVE and a SHADOW version loaded side by side with their shadow test: every
/// [`ShadowPair::predict`] asks both, records the pair, and returns the call to act on.
pub struct ShadowPair {
    /// The serving version.
    pub active: LoadedModel,
    /// The candidate.
    pub candidate: LoadedModel,
    /// The paired log.
    pub test: ShadowTest,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
}

impl ShadowPair {
    /// Both versions' calls on the last bar of `bars`, recorded under `key`; returns the
    /// candidate's call where the canary routes `key` to it, else the active version's.
    pub fn predict(&self, key: &str, bars: &Bars) -> Result<Signal> {
        let a = self.active.predict_latest(bars)?;
        let c = self.candidate.predict_latest(bars)?;
        self.test.record(key, self.clock.now(), Call::from(&a), Call::from(&c))?;
        Ok(if self.test.routes_to_candidate(key) { c } else { a })
    }

    /// The realised outcome of `key` (`risk` default 1).
    pub fn record_outcome(&self, key: &str, outcome: f64, risk: Option<f64>) -> Result<()> {
        self.test.record_outcome(key, self.clock.now(), outcome, risk)
    }
}

/// Whether an audit record is a firing of schedule `name`.
fn fired(r: &crate::store::AuditRecord, name: &str) -> bool {
    // Grouped reasons carry a priority prefix (`[LOW] schedule `daily` is due`).
    let needle = format!("schedule `{name}` is due");
    r.event == AuditKind::Trigger
        && (r.reason.contains(&needle)
            || r.details
                .as_ref()
                .and_then(|d| d.get("reasons"))
                .and_then(|v| v.as_array())
                .is_some_and(|a| a.iter().any(|s| s.as_str().is_some_and(|s| s.contains(&needle)))))
}

impl Retrainer {
    fn audit_alert(&self, model_id: &str, reason: String, details: serde_json::Value) {
        if let Err(e) =
            self.store.log_event(model_id, AuditKind::Alert, &Change::new("supervisor", reason), Some(details))
        {
            tracing::warn!(model = model_id, error = %e, "could not audit an alert");
        }
    }

    /// Drift of `bars`' recent features (the last `drift_window_days` trading days) against
    /// the active version's reference.
    pub fn check_drift(&self, model_id: &str, bars: &Bars) -> Result<DriftReport> {
        let info = self
            .store
            .active(model_id)?
            .ok_or_else(|| Error::NotFound { model_id: model_id.into(), what: "active version".into() })?;
        self.drift_of(model_id, &info, bars)
    }

    /// The reference of `model_id`'s version `tag`, read from the store once per version.
    fn cached_reference(&self, model_id: &str, tag: &str) -> Result<std::sync::Arc<ReferenceStats>> {
        let lock = || self.references.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((t, r)) = lock().get(model_id)
            && t == tag
        {
            return Ok(r.clone());
        }
        // Read outside the lock: other models' checks go on meanwhile.
        let r = std::sync::Arc::new(load_reference(&self.store, model_id, tag)?);
        lock().insert(model_id.into(), (tag.into(), r.clone()));
        Ok(r)
    }

    /// Drift needs the version's feature spec and reference only: its weights stay on disk.
    fn drift_of(&self, model_id: &str, info: &VersionInfo, bars: &Bars) -> Result<DriftReport> {
        let reference = self.cached_reference(model_id, &info.tag)?;
        let features = self.version_features(model_id, info)?;
        let recent = recent_columns(bars, &features, Some(self.policy.drift_window_days), &reference)?;
        check_drift_with(&reference, &recent, &self.policy, &self.ks_table)
    }

    /// Drift of the active version's logged prediction scores (records since its deployment
    /// within the last `drift_window_days`) against its stored validation scores; `None` when
    /// the version stored none or the log holds too few.
    fn prediction_drift_of(
        &self,
        model_id: &str,
        info: &VersionInfo,
        deployed: Option<Timestamp>,
        log: &PredictionLog,
        now: Timestamp,
    ) -> Result<Option<crate::lifecycle::drift::FeatureDrift>> {
        let reference = self.cached_reference(model_id, &info.tag)?;
        let Some(p) = reference.prediction.as_ref() else { return Ok(None) };
        let from = now - jiff::SignedDuration::from_hours(24 * self.policy.drift_window_days as i64);
        let from = deployed.map_or(from, |d| d.max(from));
        let tagged = format!("{model_id}@{}", info.tag);
        let scores: Vec<f64> = log
            .of(model_id)
            .into_iter()
            .filter(|r| r.ts >= from && r.ts <= now && (r.model == model_id || r.model == tagged))
            .filter_map(|r| crate::lifecycle::drift::prediction_score(r.direction, r.probability, r.score))
            .collect();
        Ok(crate::lifecycle::drift::check_prediction_drift(p, &scores, &self.policy, PREDICTION_DRIFT_MIN))
    }

    /// Supervise every model with an active version: health, drift, regime, periodic and cron
    /// triggers (in the bounded pool, one model per task). Emits `model.performance.degraded`
    /// and `drift.detected`, audits alerts, and returns one [`ModelCheck`] per model (sorted by
    /// id). Feed [`ModelCheck::pairs`] to [`Retrainer::plan`]. A failing (or panicking) candle
    /// source is reported in that model's [`ModelCheck::errors`]; the other checks still run.
    pub fn evaluate_triggers(&self, obs: &Observations<'_>) -> Result<Vec<ModelCheck>> {
        let schedules = parse_all(&self.policy.schedules)?;
        let now = self.clock.now();
        let models = self.store.models()?;
        let checks: Vec<Option<ModelCheck>> = self.pool.install(|| {
            use rayon::prelude::*;
            models.par_iter().map(|m| self.check_model(m, obs, &schedules, now)).collect()
        });
        self.save_ks_table();
        let mut checks: Vec<ModelCheck> = checks.into_iter().flatten().collect();
        retrain_all_on_broad_drift(&mut checks);
        Ok(checks)
    }

    fn check_model(
        &self,
        model_id: &str,
        obs: &Observations<'_>,
        schedules: &[crate::config::schedule::ParsedSchedule],
        now: Timestamp,
    ) -> Option<ModelCheck> {
        let info = self.store.active(model_id).ok().flatten()?;
        let mut errors = Vec::new();
        let deployments = self.store.deployments(model_id).unwrap_or_default();
        // The active version's latest activation (a rollback or fallback re-deploys it).
        let deployed = deployments.iter().rev().find(|d| d.tag == info.tag).map(|d| d.at).or(info.deployed_at);
        let health = obs.predictions.map(|log| version_health(model_id, &info.tag, &deployments, log, &self.policy));
        if let Some(h) = health.as_ref().filter(|h| h.status != HealthStatus::Healthy) {
            self.emit(
                Some(model_id),
                EventKind::PerformanceDegraded { status: h.status.to_string(), alerts: h.alerts.clone() },
            );
            self.audit_alert(
                model_id,
                format!("health {}: {}", h.status, h.alerts.join("; ")),
                serde_json::json!({"alert": "model.performance.degraded", "status": h.status, "alerts": h.alerts}),
            );
        }
        let mut drift = None;
        if let Some(bars_for) = obs.bars {
            let fetched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bars_for(model_id)))
                .unwrap_or_else(|_| Err(Error::param("bars", format!("the candle source panicked for {model_id}"))));
            let d = fetched.and_then(|bars| self.drift_of(model_id, &info, &bars));
            match d {
                Ok(d) => drift = Some(d),
                Err(e) => errors.push(format!("drift: {e}")),
            }
        }
        if let Some(d) = drift.as_ref().filter(|d| d.severity > DriftSeverity::None) {
            let features: Vec<String> = d.drifted_features().into_iter().map(String::from).collect();
            self.emit(
                Some(model_id),
                EventKind::DriftDetected {
                    severity: d.severity.to_string(),
                    features: features.clone(),
                    max_ks: d.max_ks,
                },
            );
            let evidence = serde_json::json!({"severity": d.severity, "features": features, "max_ks": d.max_ks});
            if d.severity >= DriftSeverity::Medium {
                let mut details = evidence.clone();
                details["alert"] = "drift.detected".into();
                self.audit_alert(model_id, format!("drift {}: {} features drifted", d.severity, d.drifted), details);
            }
            if d.severity == DriftSeverity::Critical {
                let why = format!(
                    "CRITICAL drift: {} of {} features drifted (max KS {:.3})",
                    d.drifted,
                    d.features.len(),
                    d.max_ks
                );
                if let Err(e) = self.raise_alarm(model_id, &Change::new("supervisor", why), Some(evidence)) {
                    errors.push(format!("stop-trading alarm: {e}"));
                }
            }
        }
        let alarm = match self.alarm_in_cycle(model_id) {
            Ok(a) => a,
            Err(e) => {
                errors.push(format!("stop-trading alarm state: {e}"));
                None
            }
        };
        let prediction_drift = match obs.predictions {
            Some(log) => self.prediction_drift_of(model_id, &info, deployed, log, now).unwrap_or_else(|e| {
                errors.push(format!("prediction drift: {e}"));
                None
            }),
            None => None,
        };
        if let Some(p) = prediction_drift.as_ref().filter(|p| p.drifted) {
            self.emit(
                Some(model_id),
                EventKind::DriftDetected {
                    severity: DriftSeverity::Medium.to_string(),
                    features: vec![p.name.clone()],
                    max_ks: p.ks.statistic,
                },
            );
            self.audit_alert(
                model_id,
                format!("prediction drift: KS {:.3} (noise {:.3})", p.ks.statistic, p.noise_ks.unwrap_or(f64::NAN)),
                serde_json::json!({"alert": "drift.detected", "prediction": p}),
            );
        }
        let mine: Vec<_> = schedules.iter().filter(|s| s.schedule.applies_to(model_id)).collect();
        // The audit log is read only when a schedule needs its last firing.
        let history = if mine.is_empty() { Vec::new() } else { self.store.history(model_id).unwrap_or_default() };
        let mut due = Vec::new();
        for s in mine {
            // Counted from its last firing, else from the deployment (a new model is not
            // owed the ticks that passed before it existed).
            let Some(since) = history.iter().rev().find(|r| fired(r, &s.schedule.name)).map(|r| r.ts).or(deployed)
            else {
                continue;
            };
            match s.due_between(since, now) {
                Ok(Some(_)) => due.push((
                    s.schedule.name.clone(),
                    Some(s.window_days(now, self.policy.window_time_days, self.policy.window_monthly_days)),
                )),
                Ok(None) => {}
                Err(e) => errors.push(format!("schedule {}: {e}", s.schedule.name)),
            }
        }
        let classifier = info
            .meta
            .label_spec
            .as_ref()
            .and_then(|v| serde_json::from_value::<crate::features::LabelSpec>(v.clone()).ok())
            .is_some_and(|l| l.classes().is_some());
        let inputs = TriggerInputs {
            health: health.as_ref(),
            drift: drift.as_ref(),
            regime: obs.regimes.get(model_id),
            last_deployed: deployed,
            schedules_due: due,
            classifier,
        };
        let mut triggers = evaluate(&inputs, now, &self.policy);
        if let Some(p) = prediction_drift.as_ref().filter(|p| p.drifted) {
            triggers.push(Trigger::new(
                crate::lifecycle::trigger::TriggerKind::Drift,
                crate::lifecycle::trigger::Priority::Medium,
                format!(
                    "prediction drift: the active version's scores over the last {} days moved (KS {:.3}, noise {:.3}, \
                     p {:.2e})",
                    self.policy.drift_window_days,
                    p.ks.statistic,
                    p.noise_ks.unwrap_or(f64::NAN),
                    p.p_effective
                ),
            ));
        }
        // Kinds the policy leaves off are evaluated (their alerts stand) but never fire.
        triggers.retain(|t| self.policy.fires(t.kind.name()));
        Some(ModelCheck {
            model_id: model_id.into(),
            active: info.tag,
            health,
            drift,
            prediction_drift,
            triggers,
            alarm,
            errors,
        })
    }

    /// Retire (IC < 0 for `retire_ic_days`) or roll back (live score > `rollback_threshold`
    /// below the predecessor's) every active version the live `log` condemns; returns one
    /// verdict per model with an active version. Actions are audited and emitted.
    pub fn supervise(&self, log: &PredictionLog) -> Result<Vec<LiveVerdict>> {
        let now = self.clock.now();
        let mut out = Vec::new();
        for model_id in self.store.models()? {
            let Some(active) = self.store.aliases(&model_id)?.active else { continue };
            let deployments = self.store.deployments(&model_id)?;
            let verdict = check_live(&model_id, &active, &deployments, log, now, &self.policy);
            let why = verdict.reasons.join("; ");
            match &verdict.action {
                LiveAction::Keep => {}
                LiveAction::Retire { tag, .. } => {
                    self.store.retire(&model_id, tag, &Change::new("supervisor", format!("retired: {why}")))?;
                    let fallback = self.store.aliases(&model_id)?.active;
                    self.emit(
                        Some(&model_id),
                        EventKind::Retired { tag: tag.clone(), fallback: fallback.clone(), reason: why.clone() },
                    );
                }
                LiveAction::Rollback { to, .. } => {
                    self.store.rollback(
                        &model_id,
                        to,
                        &Change::new("supervisor", format!("automatic rollback: {why}")),
                    )?;
                    self.emit(
                        Some(&model_id),
                        EventKind::Promoted { tag: to.clone(), reason: format!("automatic rollback: {why}") },
                    );
                }
            }
            out.push(verdict);
        }
        Ok(out)
    }

    /// The shadow test of `model_id`'s SHADOW version (CANARY decisions route
    /// `canary_fraction` of keys to it).
    pub fn shadow_test(&self, model_id: &str) -> Result<ShadowTest> {
        ShadowTest::open(&self.store, model_id, &self.policy)
    }

    /// The ACTIVE and SHADOW versions of `model_id` loaded together with their shadow test.
    pub fn shadow_pair(&self, model_id: &str) -> Result<ShadowPair> {
        let test = self.shadow_test(model_id)?;
        Ok(ShadowPair {
            active: self.active(model_id)?,
            candidate: self.version(model_id, &test.shadow_tag)?,
            test,
            clock: self.clock.clone(),
        })
    }

    /// Evaluate `model_id`'s shadow test and act on it: PROMOTE makes the candidate active
    /// (`shadow.promotion.recommended`, `model.promoted`), REJECT retires it
    /// (`shadow.rejected`); a stuck test raises `shadow.test.stuck`. All audited.
    pub fn evaluate_shadow(&self, model_id: &str) -> Result<ShadowEvaluation> {
        let test = self.shadow_test(model_id)?;
        let ev = test.evaluate(self.clock.now(), &self.policy);
        let tag = test.shadow_tag.clone();
        let details = serde_json::to_value(&ev).expect("evaluations serialise");
        if ev.stuck {
            let hours = ev.last_record.map_or(f64::NAN, |t| self.clock.now().duration_since(t).as_secs_f64() / 3600.0);
            self.emit(Some(model_id), EventKind::ShadowStuck { tag: tag.clone(), hours });
            self.audit_alert(
                model_id,
                format!("shadow test of {tag} stuck: no record for {hours:.0} h"),
                details.clone(),
            );
        }
        let why = ev.reasons.join("; ");
        match ev.recommendation {
            Recommendation::Promote => {
                self.emit(
                    Some(model_id),
                    EventKind::ShadowPromotionRecommended {
                        tag: tag.clone(),
                        improvement: ev.improvement.unwrap_or(0.0),
                    },
                );
                self.store.promote(model_id, &tag, &Change::new("shadow", format!("shadow test PROMOTE: {why}")))?;
                self.emit(Some(model_id), EventKind::Promoted { tag, reason: format!("shadow test: {why}") });
            }
            Recommendation::Reject => {
                self.store.retire(model_id, &tag, &Change::new("shadow", format!("shadow test REJECT: {why}")))?;
                self.emit(Some(model_id), EventKind::ShadowRejected { tag, reason: why });
            }
            Recommendation::ContinueTesting => {}
        }
        Ok(ev)
    }
}

/// HIGH or CRITICAL drift of one model retrains every model: each other model gets a drift
/// trigger at that drift's priority (HIGH, or URGENT for CRITICAL), naming its source.
fn retrain_all_on_broad_drift(checks: &mut [ModelCheck]) {
    let broad: Vec<(String, Trigger)> = checks
        .iter()
        .filter_map(|c| {
            let d = c.drift.as_ref().filter(|d| d.severity >= DriftSeverity::High)?;
            let own = c.triggers.iter().find(|t| t.kind == crate::lifecycle::trigger::TriggerKind::Drift)?;
            Some((
                c.model_id.clone(),
                Trigger {
                    reason: format!("{} drift of {}: retrain all models", d.severity, c.model_id),
                    ..own.clone()
                },
            ))
        })
        .collect();
    for c in checks.iter_mut() {
        for (source, t) in &broad {
            if *source != c.model_id {
                c.triggers.push(t.clone());
            }
        }
    }
}

impl ModelCheck {
    /// `(model_id, trigger)` pairs for [`Retrainer::plan`].
    pub fn pairs(checks: &[ModelCheck]) -> Vec<(String, Trigger)> {
        checks.iter().flat_map(|c| c.triggers.iter().map(|t| (c.model_id.clone(), t.clone()))).collect()
    }
}

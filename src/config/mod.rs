//! The lifecycle [`Policy`]: every threshold of the retraining lifecycle in one serde document
//! (TOML or JSON), with unknown keys rejected (a misspelt threshold must never silently fall
//! back to its default).
//!
//! Keys are flat (`schedule_interval_days = 7`, `ks_alert = 0.1`, `max_versions = 10`, …) and
//! each field states its default and unit; `docs/policy.md` lists them all (a test keeps that
//! page and this struct in step). `retrain policy --print-default` prints the whole default document.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub mod rl;
pub mod schedule;

pub use rl::RlPolicy;
pub use schedule::{CronSchedule, ParsedSchedule};

use crate::error::{Error, Result};

/// The trigger kinds a policy can enable (`triggers`), as the audit log and events name them.
pub const TRIGGER_KINDS: [&str; 6] = ["performance", "ic_decay", "drift", "regime", "time", "schedule"];

/// Every lifecycle threshold; `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    // --- Health (the supervisor): alert thresholds.
    /// Health alert when the win rate falls below this (default 45 %).
    pub health_min_win_rate: f64,
    /// Health alert when the calibration error exceeds this (default 0.15).
    pub health_max_calibration_error: f64,
    /// Health alert when inference latency (p95) exceeds this many milliseconds (default 500).
    pub health_max_latency_ms: f64,
    /// Health alert when longs ÷ shorts exceeds this (default 3.0).
    pub health_max_long_short_ratio: f64,
    /// Health alert when longs ÷ shorts falls below this (default 0.33).
    pub health_min_long_short_ratio: f64,

    /// Resolved predictions needed before performance alerts are raised (default 50).
    pub health_min_outcomes: usize,
    /// Trading days in the rolling IC of the health report (default 5).
    pub health_ic_window_days: usize,

    // --- Performance triggers.
    /// Retrain (HIGH) when the live win rate falls below this (default 50 %).
    pub min_win_rate: f64,
    /// Retrain (HIGH) a classifier whose live accuracy falls below this (default 0.70).
    pub min_accuracy: f64,
    /// IC-decay trigger: rolling IC below this … (default 0.02)
    pub ic_decay_threshold: f64,
    /// … for this many consecutive trading days (default 10).
    pub ic_decay_days: usize,

    // --- Drift.
    /// KS statistic above which a significant feature alerts (default 0.1).
    pub ks_alert: f64,
    /// KS statistic above which a significant feature has drifted (default 0.2).
    pub ks_retrain: f64,
    /// Effective KS p-value (autocorrelation-aware, Benjamini–Yekutieli across features)
    /// below which a feature is significant (default 0.05).
    pub ks_p_value: f64,
    /// PSI above which a significant feature has drifted. 0.25 (default) is the usual
    /// "significant shift" rule of thumb (0.1–0.25 moderate).
    pub psi_threshold: f64,
    /// Reference-quantile bins of the PSI (default 10).
    pub psi_bins: usize,
    /// Recent window compared with the training distribution, in trading days (default 20).
    pub drift_window_days: usize,
    /// Share of drifted features from which drift is HIGH (retrain all models; default 25 %).
    pub drift_high_fraction: f64,
    /// Share of drifted features from which drift is CRITICAL (stop-trading alarm; default 50 %).
    pub drift_critical_fraction: f64,

    // --- Regime and time triggers.
    /// A regime change triggers (MEDIUM) once sustained this many days (default 3).
    pub regime_sustain_days: usize,
    /// Periodic retrain this many days after the last deployment (default 7).
    pub schedule_interval_days: usize,
    /// Trigger kinds the supervisor may fire (default all: `performance`, `ic_decay`, `drift`,
    /// `regime`, `time`, `schedule`); an operator's manual retrain always runs. `["time"]` is
    /// a purely periodic policy.
    pub triggers: Vec<String>,

    // --- Plan.
    /// Labelled rows needed beyond the newest trained data (default 1000): the active
    /// version's, or a newer candidate's that the gate refused or sent to shadow.
    pub min_new_samples: usize,
    /// Training window of a performance- or IC-triggered job, in days (default 60).
    pub window_performance_days: usize,
    /// Training window of a drift-triggered job, in days (default 60, the feature-drift
    /// lookback).
    pub window_drift_days: usize,
    /// Training window of a regime-triggered job, in days (default 30).
    pub window_regime_days: usize,
    /// Training window of a periodic job, in days (default 90).
    pub window_time_days: usize,
    /// Training window of a monthly scheduled job, in days (default 3 years).
    pub window_monthly_days: usize,
    /// Training window of a manual job unless the operator gives one, in days (default 90).
    pub window_manual_days: usize,

    // --- Execution.
    /// Jobs run at the same time (default 3).
    pub batch_size: usize,
    /// Worker threads of the training pool (default 2).
    pub threads: usize,
    /// Memory a job may need, checked before it starts, in MiB (`None`: no check).
    pub memory_budget_mb: Option<u64>,
    /// Per-job time limit in minutes (default 60).
    pub max_training_minutes: u64,

    // --- Validation: how a job cross-validates, and the overfitting checks' limits.
    /// CPCV groups N of a job (default 6, also the minimum).
    pub cpcv_groups: usize,
    /// CPCV test groups k (default 2: 15 splits, 5 backtest paths).
    pub cpcv_test_groups: usize,
    /// Embargo after each test block, in days of bars (default 5); the longest feature
    /// lookback is used instead when it is longer.
    pub embargo_days: f64,
    /// Overfitting: largest gap between the Sharpe model selection saw (the early-stopping
    /// slices) and the CPCV test paths' Sharpe, both annualised (default 0.5); the gap must
    /// also be significant at `significance` to flag.
    pub overfit_max_sharpe_gap: f64,
    /// Overfitting: smallest mean out-of-sample Spearman IC over the paths (default 0.03).
    pub overfit_min_ic: f64,
    /// Overfitting: largest variance of the primary score (AUC, …) across seeds (default
    /// 1e-4, a standard deviation of 0.01).
    pub overfit_max_seed_variance: f64,
    /// Significance level of the evidence tests: the Sharpe gap's, and the Deflated Sharpe
    /// Ratio must reach 1 − this (default 0.01: several correlated tests read the same paths,
    /// and at 0.05 one random walk in ten deployed; docs/policy.md).
    pub significance: f64,
    /// Seeds of the stability check every job runs (default 10; 0 or 1: off). A kind whose
    /// hyperparameters draw nothing from the seed stops after seed 0 (known, as for the GBDT
    /// defaults) or seed 1 (when it predicts exactly as seed 0);
    /// a network's job costs this many cross-validations.
    pub stability_seeds: usize,

    // --- Deployment decision.
    /// Weight of the relative win-rate change in the improvement score (default 0.35).
    pub weight_win_rate: f64,
    /// Weight of the relative average-R change (default 0.35).
    pub weight_avg_r: f64,
    /// Weight of the relative calibration change (default 0.30).
    pub weight_calibration: f64,
    /// Denominator floor of the relative win-rate change (default 0.05).
    pub floor_win_rate: f64,
    /// Denominator floor of the relative average-R change (default 0.05).
    pub floor_avg_r: f64,
    /// Denominator floor of the relative calibration change (default 0.05).
    pub floor_calibration: f64,
    /// A candidate is safe only with at least this win rate (default 0.50) …
    pub safe_min_win_rate: f64,
    /// … this average R (default 0.0) …
    pub safe_min_avg_r: f64,
    /// … and this calibration (default 0.70).
    pub safe_min_calibration: f64,
    /// Safety also requires no overfitting flag (Sharpe gap, weak IC, seed
    /// instability) (default on).
    pub gate_overfitting: bool,
    /// With a deployed version, safety also requires a significantly higher IC on the same
    /// paths (ΔIC > 0.01 with p < 0.05) (default on).
    pub gate_significance: bool,
    /// Safety also requires beating every baseline in `baselines` that models the label
    /// (default on).
    pub gate_baseline: bool,
    /// Baseline kinds a candidate must beat on the same CPCV paths; each judges only the
    /// labels its kind models (default logreg for classification labels, ridge for
    /// regression labels).
    pub baselines: Vec<String>,
    /// Metric of the baseline comparison, per path (default ic_spearman, defined for every
    /// label; for an error metric such as log_loss or rmse lower is better).
    pub baseline_metric: String,
    /// Margin the mean per-path difference over a baseline must exceed, in the metric's
    /// units (default 0: better on average).
    pub baseline_min_delta: f64,
    /// When set, the one-sided paired t-test of the per-path differences must also give a
    /// p-value below this (default unset: no significance required; with 5 CPCV paths a
    /// test has little power).
    pub baseline_p_value: Option<f64>,
    /// Improvement from which a safe candidate deploys (default 5 %).
    pub min_improvement: f64,
    /// Deploy every completed candidate whatever its evidence (default false): a blind policy
    /// kept for comparison. The evidence is still computed and stored with the decision.
    pub always_deploy: bool,
    /// Improvement from which a safe candidate goes to canary (default 2 %); below it, REVIEW
    /// down to 0 and KEEP_OLD below 0.
    pub canary_threshold: f64,

    // --- Shadow and canary.
    /// Paired samples before a shadow test is evaluated (default 1000).
    pub min_samples: usize,
    /// Improvement on the key metrics needed to promote a shadow (default 5 %).
    pub promotion_threshold: f64,
    /// Largest drawdown deterioration a promoted shadow may show (default 3 %).
    pub max_drawdown_worsening: f64,
    /// Hours without new shadow samples before a "stuck" alert (default 24).
    pub shadow_stuck_hours: u64,
    /// Fraction of decisions a canary routes to the candidate (default configurable; default 10 %).
    pub canary_fraction: f64,

    // --- Versions, rollback, retirement.
    /// Most recent versions kept per model (default 10).
    pub max_versions: usize,
    /// Never-deployed versions kept beyond those (default 5).
    pub max_non_deployed: usize,
    /// Hours a trashed version waits before garbage collection purges it (default 24).
    pub trash_grace_hours: u64,
    /// Automatic rollback when a new deployment's live score is this far below its
    /// predecessor's (default 5 %).
    pub rollback_threshold: f64,
    /// Retire a model whose IC stays below 0 for this many consecutive trading days (default 30).
    pub retire_ic_days: usize,
    /// Days after a deployment during which its live score is compared with its
    /// predecessor's for automatic rollback (default 14; after that only retirement applies).
    pub rollback_window_days: usize,

    // --- Shadow (continued).
    /// Paired samples after which a shadow not proven better is rejected (default 5 × 1000).
    pub shadow_max_samples: usize,
    /// p-value below which the paired shadow-minus-active R difference counts (default 0.05).
    pub shadow_p_value: f64,

    // --- Models.
    /// Model kinds `retrain run` trains when `--models` is not given (default xgboost,
    /// lightgbm; also nhits, patchtst and the baselines logreg, tree, forest, ridge).
    pub models: Vec<String>,

    // --- Cron schedules (kept last: TOML writes arrays of tables after plain keys).
    /// Named cron schedules (`[[schedules]]`: `name`, `cron`, optional `window_days`,
    /// `time_zone`, `models`); none by default: the periodic rule covers the default cadence.
    pub schedules: Vec<CronSchedule>,

    // --- Reinforcement-learning agents (a table, so after every plain key).
    /// The `[rl]` table: the meta-strategy and sizing agents' learning, states, limits and upkeep.
    pub rl: RlPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            health_min_win_rate: 0.45,
            health_max_calibration_error: 0.15,
            health_max_latency_ms: 500.0,
            health_max_long_short_ratio: 3.0,
            health_min_long_short_ratio: 0.33,
            health_min_outcomes: 50,
            health_ic_window_days: 5,
            min_win_rate: 0.50,
            min_accuracy: 0.70,
            ic_decay_threshold: 0.02,
            ic_decay_days: 10,
            ks_alert: 0.1,
            ks_retrain: 0.2,
            ks_p_value: 0.05,
            psi_threshold: 0.25,
            psi_bins: 10,
            drift_window_days: 20,
            drift_high_fraction: 0.25,
            drift_critical_fraction: 0.5,
            regime_sustain_days: 3,
            schedule_interval_days: 7,
            triggers: TRIGGER_KINDS.iter().map(|k| k.to_string()).collect(),
            min_new_samples: 1000,
            window_performance_days: 60,
            window_drift_days: 60,
            window_regime_days: 30,
            window_time_days: 90,
            window_monthly_days: 3 * 365,
            window_manual_days: 90,
            batch_size: 3,
            threads: 2,
            memory_budget_mb: None,
            max_training_minutes: 60,
            cpcv_groups: 6,
            cpcv_test_groups: 2,
            embargo_days: 5.0,
            overfit_max_sharpe_gap: 0.5,
            overfit_min_ic: 0.03,
            overfit_max_seed_variance: 1e-4,
            significance: 0.01,
            stability_seeds: 10,
            weight_win_rate: 0.35,
            weight_avg_r: 0.35,
            weight_calibration: 0.30,
            floor_win_rate: 0.05,
            floor_avg_r: 0.05,
            floor_calibration: 0.05,
            safe_min_win_rate: 0.50,
            safe_min_avg_r: 0.0,
            safe_min_calibration: 0.70,
            gate_overfitting: true,
            gate_significance: true,
            gate_baseline: true,
            baselines: vec!["logreg".into(), "ridge".into()],
            baseline_metric: "ic_spearman".into(),
            baseline_min_delta: 0.0,
            baseline_p_value: None,
            min_improvement: 0.05,
            always_deploy: false,
            canary_threshold: 0.02,
            min_samples: 1000,
            promotion_threshold: 0.05,
            max_drawdown_worsening: 0.03,
            shadow_stuck_hours: 24,
            canary_fraction: 0.10,
            max_versions: 10,
            max_non_deployed: 5,
            trash_grace_hours: 24,
            rollback_threshold: 0.05,
            retire_ic_days: 30,
            rollback_window_days: 14,
            shadow_max_samples: 5000,
            shadow_p_value: 0.05,
            models: vec!["xgboost".into(), "lightgbm".into()],
            schedules: Vec::new(),
            rl: RlPolicy::default(),
        }
    }
}

impl Policy {
    /// Parse a TOML document (`source_name` names it in errors) and validate it.
    pub fn from_toml_str(s: &str, source_name: &str) -> Result<Policy> {
        let p: Policy = parse_toml(s, source_name)?;
        p.validate()?;
        Ok(p)
    }

    /// Parse a JSON document (`source_name` names it in errors) and validate it.
    pub fn from_json_str(s: &str, source_name: &str) -> Result<Policy> {
        let p: Policy = parse_json(s, source_name)?;
        p.validate()?;
        Ok(p)
    }

    /// Read a policy file: JSON when the name ends in `.json`, TOML otherwise.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Policy> {
        let p: Policy = read_document(path.as_ref())?;
        p.validate()?;
        Ok(p)
    }

    /// The policy as a TOML document (every key, in declaration order).
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).expect("a policy always serialises")
    }

    /// Whether the supervisor may fire triggers of `kind` (a [`TRIGGER_KINDS`] name).
    pub fn fires(&self, kind: &str) -> bool {
        self.triggers.iter().any(|k| k == kind)
    }

    /// Check every value: fractions in [0, 1], counts ≥ 1, thresholds in a sensible order,
    /// decision weights summing to 1. The error names the field.
    pub fn validate(&self) -> Result<()> {
        let fraction = |field: &str, v: f64| -> Result<()> {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::param(field, format!("must be in [0, 1], got {v}")));
            }
            Ok(())
        };
        for (field, v) in [
            ("health_min_win_rate", self.health_min_win_rate),
            ("health_max_calibration_error", self.health_max_calibration_error),
            ("min_win_rate", self.min_win_rate),
            ("min_accuracy", self.min_accuracy),
            ("ks_alert", self.ks_alert),
            ("ks_retrain", self.ks_retrain),
            ("ks_p_value", self.ks_p_value),
            ("drift_high_fraction", self.drift_high_fraction),
            ("drift_critical_fraction", self.drift_critical_fraction),
            ("weight_win_rate", self.weight_win_rate),
            ("weight_avg_r", self.weight_avg_r),
            ("weight_calibration", self.weight_calibration),
            ("safe_min_win_rate", self.safe_min_win_rate),
            ("safe_min_calibration", self.safe_min_calibration),
            ("max_drawdown_worsening", self.max_drawdown_worsening),
            ("canary_fraction", self.canary_fraction),
            ("rollback_threshold", self.rollback_threshold),
            ("shadow_p_value", self.shadow_p_value),
        ] {
            fraction(field, v)?;
        }
        for (field, v) in [
            ("health_max_latency_ms", self.health_max_latency_ms),
            ("health_max_long_short_ratio", self.health_max_long_short_ratio),
            ("health_min_long_short_ratio", self.health_min_long_short_ratio),
            ("psi_threshold", self.psi_threshold),
            ("floor_win_rate", self.floor_win_rate),
            ("floor_avg_r", self.floor_avg_r),
            ("floor_calibration", self.floor_calibration),
            ("min_improvement", self.min_improvement),
            ("canary_threshold", self.canary_threshold),
            ("promotion_threshold", self.promotion_threshold),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::param(field, format!("must be a positive number, got {v}")));
            }
        }
        if !self.ic_decay_threshold.is_finite() || !self.safe_min_avg_r.is_finite() {
            let field = if self.ic_decay_threshold.is_finite() { "safe_min_avg_r" } else { "ic_decay_threshold" };
            return Err(Error::param(field, "must be a finite number"));
        }
        at_least_one(&[
            ("ic_decay_days", self.ic_decay_days),
            ("health_min_outcomes", self.health_min_outcomes),
            ("health_ic_window_days", self.health_ic_window_days),
            ("psi_bins", self.psi_bins),
            ("drift_window_days", self.drift_window_days),
            ("regime_sustain_days", self.regime_sustain_days),
            ("schedule_interval_days", self.schedule_interval_days),
            ("min_new_samples", self.min_new_samples),
            ("window_performance_days", self.window_performance_days),
            ("window_drift_days", self.window_drift_days),
            ("window_regime_days", self.window_regime_days),
            ("window_time_days", self.window_time_days),
            ("window_monthly_days", self.window_monthly_days),
            ("window_manual_days", self.window_manual_days),
            ("batch_size", self.batch_size),
            ("threads", self.threads),
            ("min_samples", self.min_samples),
            ("max_versions", self.max_versions),
            ("retire_ic_days", self.retire_ic_days),
            ("rollback_window_days", self.rollback_window_days),
        ])?;
        if self.shadow_max_samples < self.min_samples {
            return Err(Error::param(
                "shadow_max_samples",
                format!("must not be below min_samples ({})", self.min_samples),
            ));
        }
        schedule::parse_all(&self.schedules)?;
        self.rl.validate()?;
        if self.cpcv_groups < 6 || self.cpcv_test_groups == 0 || self.cpcv_test_groups >= self.cpcv_groups {
            let field = if self.cpcv_groups < 6 { "cpcv_groups" } else { "cpcv_test_groups" };
            return Err(Error::param(
                field,
                format!(
                    "CPCV needs at least 6 groups and 1 ≤ test groups < groups, got {} and {}",
                    self.cpcv_groups, self.cpcv_test_groups
                ),
            ));
        }
        if !(self.embargo_days.is_finite() && self.embargo_days >= 0.0) {
            return Err(Error::param("embargo_days", format!("must be ≥ 0, got {}", self.embargo_days)));
        }
        for (field, v) in [
            ("overfit_max_sharpe_gap", self.overfit_max_sharpe_gap),
            ("overfit_max_seed_variance", self.overfit_max_seed_variance),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::param(field, format!("must be finite and ≥ 0, got {v}")));
            }
        }
        if !self.overfit_min_ic.is_finite() {
            return Err(Error::param("overfit_min_ic", "must be finite"));
        }
        if !(self.significance > 0.0 && self.significance < 0.5) {
            return Err(Error::param("significance", format!("must be in (0, 0.5), got {}", self.significance)));
        }
        if let Some(k) =
            self.baselines.iter().enumerate().find_map(|(i, k)| self.baselines[..i].contains(k).then_some(k))
        {
            return Err(Error::param("baselines", format!("`{k}` is listed twice")));
        }
        if !self.baseline_min_delta.is_finite() {
            return Err(Error::param("baseline_min_delta", "must be finite"));
        }
        if let Some(p) = self.baseline_p_value
            && !(p > 0.0 && p < 1.0)
        {
            return Err(Error::param("baseline_p_value", format!("must be in (0, 1), got {p}")));
        }
        if let Some(k) = self.triggers.iter().find(|k| !TRIGGER_KINDS.contains(&k.as_str())) {
            return Err(Error::param(
                "triggers",
                format!("unknown trigger kind `{k}` (known: {})", TRIGGER_KINDS.join(", ")),
            ));
        }
        if self.models.is_empty() {
            return Err(Error::param("models", "must name at least one model kind"));
        }
        if let Some(k) = self.models.iter().enumerate().find_map(|(i, k)| self.models[..i].contains(k).then_some(k)) {
            return Err(Error::param("models", format!("`{k}` is listed twice")));
        }
        if self.max_training_minutes == 0 {
            return Err(Error::param("max_training_minutes", "must be at least 1"));
        }
        if self.psi_bins < 2 {
            return Err(Error::param("psi_bins", "must be at least 2"));
        }
        if self.drift_high_fraction > self.drift_critical_fraction {
            return Err(Error::param(
                "drift_high_fraction",
                format!("must not exceed drift_critical_fraction ({})", self.drift_critical_fraction),
            ));
        }
        if self.ks_alert > self.ks_retrain {
            return Err(Error::param("ks_alert", format!("must not exceed ks_retrain ({})", self.ks_retrain)));
        }
        if self.canary_threshold > self.min_improvement {
            return Err(Error::param(
                "canary_threshold",
                format!("must not exceed min_improvement ({})", self.min_improvement),
            ));
        }
        if self.health_min_long_short_ratio >= self.health_max_long_short_ratio {
            return Err(Error::param(
                "health_min_long_short_ratio",
                format!("must be below health_max_long_short_ratio ({})", self.health_max_long_short_ratio),
            ));
        }
        let weights = self.weight_win_rate + self.weight_avg_r + self.weight_calibration;
        if (weights - 1.0).abs() > 1e-9 {
            return Err(Error::param(
                "weight_win_rate",
                format!("the three decision weights must sum to 1, got {weights}"),
            ));
        }
        if self.memory_budget_mb == Some(0) {
            return Err(Error::param("memory_budget_mb", "must be at least 1 when set"));
        }
        Ok(())
    }
}

/// Parse a TOML document into `T` (unknown keys fail where `T` denies them); errors name
/// `source_name`.
pub fn parse_toml<T: DeserializeOwned>(s: &str, source_name: &str) -> Result<T> {
    toml::from_str(s).map_err(|e| Error::Config { source_name: source_name.into(), message: e.to_string() })
}

/// Parse a JSON document into `T`; errors name `source_name`.
pub fn parse_json<T: DeserializeOwned>(s: &str, source_name: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Config { source_name: source_name.into(), message: e.to_string() })
}

/// Read a configuration file into `T`: JSON when its name ends in `.json` (any case), TOML
/// otherwise; errors name the file.
pub fn read_document<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let name = path.display().to_string();
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        parse_json(&text, &name)
    } else {
        parse_toml(&text, &name)
    }
}

/// A typed error naming the first field whose count is 0.
pub fn at_least_one(fields: &[(&str, usize)]) -> Result<()> {
    match fields.iter().find(|f| f.1 == 0) {
        Some((field, _)) => Err(Error::param(*field, "must be at least 1")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_spec_numbers_and_validate() {
        let p = Policy::default();
        p.validate().unwrap();
        // Named defaults.
        assert_eq!(p.schedule_interval_days, 7);
        assert_eq!(p.min_samples, 1000);
        assert_eq!((p.min_improvement, p.canary_threshold), (0.05, 0.02));
        assert_eq!((p.ks_alert, p.ks_retrain), (0.1, 0.2));
        assert_eq!((p.max_versions, p.max_non_deployed), (10, 5));
        assert_eq!((p.rollback_threshold, p.max_training_minutes, p.threads), (0.05, 60, 2));
        // The decision rule and health alerts.
        assert_eq!((p.weight_win_rate, p.weight_avg_r, p.weight_calibration), (0.35, 0.35, 0.30));
        assert_eq!((p.safe_min_win_rate, p.safe_min_avg_r, p.safe_min_calibration), (0.50, 0.0, 0.70));
        assert_eq!(
            (p.health_min_win_rate, p.health_max_calibration_error, p.health_max_latency_ms),
            (0.45, 0.15, 500.0)
        );
        assert_eq!((p.ic_decay_threshold, p.ic_decay_days, p.retire_ic_days), (0.02, 10, 30));
        assert_eq!((p.batch_size, p.min_new_samples, p.drift_window_days), (3, 1000, 20));
    }

    #[test]
    fn toml_and_json_round_trip_and_partial_documents_keep_the_other_defaults() {
        let p = Policy { batch_size: 5, memory_budget_mb: Some(2048), ..Policy::default() };
        assert_eq!(Policy::from_toml_str(&p.to_toml_string(), "t").unwrap(), p);
        assert_eq!(Policy::from_json_str(&serde_json::to_string(&p).unwrap(), "j").unwrap(), p);
        let s = Policy {
            schedules: vec![
                CronSchedule::new("weekly", "0 3 * * MON"),
                CronSchedule {
                    window_days: Some(1000),
                    models: vec!["btc".into()],
                    ..CronSchedule::new("monthly", "@monthly")
                },
            ],
            ..Policy::default()
        };
        assert_eq!(Policy::from_toml_str(&s.to_toml_string(), "t").unwrap(), s);
        let q = Policy::from_toml_str("ks_alert = 0.15\nthreads = 4\n", "t").unwrap();
        assert_eq!(q, Policy { ks_alert: 0.15, threads: 4, ..Policy::default() });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_that_name_them() {
        match Policy::from_toml_str("ks_alrt = 0.1\n", "retrain.toml") {
            Err(Error::Config { source_name, message }) => {
                assert_eq!(source_name, "retrain.toml");
                assert!(message.contains("ks_alrt"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(Policy::from_json_str("{\"batch\": 3}", "p.json"), Err(Error::Config { .. })));
        let field = |doc: &str| match Policy::from_toml_str(doc, "t") {
            Err(Error::InvalidParam { field, .. }) => field,
            other => panic!("{doc}: {other:?}"),
        };
        assert_eq!(field("batch_size = 0"), "batch_size");
        assert_eq!(field("ks_alert = 0.3"), "ks_alert");
        assert_eq!(field("canary_fraction = 1.5"), "canary_fraction");
        assert_eq!(field("canary_threshold = 0.06"), "canary_threshold");
        assert_eq!(field("weight_avg_r = 0.5"), "weight_win_rate");
        assert_eq!(field("psi_threshold = nan"), "psi_threshold");
        assert_eq!(field("psi_bins = 1"), "psi_bins");
        assert_eq!(field("health_min_long_short_ratio = 3.5"), "health_min_long_short_ratio");
        assert_eq!(field("memory_budget_mb = 0"), "memory_budget_mb");
        assert_eq!(field("shadow_max_samples = 10"), "shadow_max_samples");
        assert_eq!(field("models = []"), "models");
        assert_eq!(field("baselines = [\"logreg\", \"logreg\"]"), "baselines");
        assert_eq!(field("baseline_p_value = 1.5"), "baseline_p_value");
        assert_eq!(field("baseline_min_delta = nan"), "baseline_min_delta");
        assert_eq!(field("cpcv_groups = 4"), "cpcv_groups");
        assert_eq!(field("cpcv_test_groups = 6"), "cpcv_test_groups");
        assert_eq!(field("embargo_days = -1.0"), "embargo_days");
        assert_eq!(field("significance = 0.5"), "significance");
        assert_eq!(field("overfit_max_sharpe_gap = -0.1"), "overfit_max_sharpe_gap");
        assert_eq!(field("models = [\"nhits\", \"nhits\"]"), "models");
        // Kind names are checked against the registered kinds one layer up (`Retrainer::open`).
        assert_eq!(
            Policy::from_toml_str("models = [\"patchtst\", \"xgboost\"]", "t").unwrap().models,
            ["patchtst", "xgboost"]
        );
        assert_eq!(field("[[schedules]]\nname = \"w\"\ncron = \"0 25 * * *\"\n"), "schedules[0].cron");
    }

    #[test]
    fn files_are_read_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("retrain.toml");
        std::fs::write(&toml_path, "min_new_samples = 500\n").unwrap();
        assert_eq!(Policy::from_file(&toml_path).unwrap().min_new_samples, 500);
        let json_path = dir.path().join("retrain.json");
        std::fs::write(&json_path, "{\"min_new_samples\": 700}").unwrap();
        assert_eq!(Policy::from_file(&json_path).unwrap().min_new_samples, 700);
        assert!(Policy::from_file(dir.path().join("missing.toml")).is_err());
    }
}

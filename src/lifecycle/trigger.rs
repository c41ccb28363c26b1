//! Triggers: why a model should be retrained, how
//! urgently, and from which data window. [`evaluate`] turns a model's health, drift, regime
//! and deployment history into triggers row by row of the trigger table (`docs/policy.md`).

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::config::Policy;
use crate::lifecycle::drift::{DriftReport, DriftSeverity};
use crate::lifecycle::health::{HealthReport, HealthStatus, Trend};

/// How urgent a retrain is (ordered: `Urgent` is the greatest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Priority {
    /// Periodic refresh.
    Low,
    /// Trend or regime.
    Medium,
    /// Degraded performance, IC decay, drift needing a retrain.
    High,
    /// Critical health or critical drift.
    Urgent,
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Priority::Low => "LOW",
            Priority::Medium => "MEDIUM",
            Priority::High => "HIGH",
            Priority::Urgent => "URGENT",
        })
    }
}

/// Which row of the trigger table fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// Live performance (health status, trend, win rate, accuracy).
    Performance,
    /// Rolling IC below the threshold for consecutive trading days.
    IcDecay,
    /// Feature drift.
    Drift,
    /// A sustained regime change.
    Regime,
    /// Periodic (days since the last deployment).
    Time,
    /// A cron schedule (daily / weekly / monthly).
    Schedule,
    /// An operator.
    Manual,
}

impl TriggerKind {
    /// Its name in policies, the audit log and events (`ic_decay`).
    pub fn name(self) -> &'static str {
        match self {
            TriggerKind::Performance => "performance",
            TriggerKind::IcDecay => "ic_decay",
            TriggerKind::Drift => "drift",
            TriggerKind::Regime => "regime",
            TriggerKind::Time => "time",
            TriggerKind::Schedule => "schedule",
            TriggerKind::Manual => "manual",
        }
    }
}

/// One reason to retrain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// Which rule.
    pub kind: TriggerKind,
    /// How urgent.
    pub priority: Priority,
    /// Human-readable reason.
    pub reason: String,
    /// Training window in days (`None`: the policy's window for this kind).
    pub window_days: Option<usize>,
    /// Train on every bar given, whatever the windows say (an operator's first model on a
    /// whole history).
    #[serde(default)]
    pub all_bars: bool,
    /// Run even without `min_new_samples` new labelled rows (operator's call).
    pub force: bool,
}

impl Trigger {
    /// A trigger of `kind` at `priority`.
    pub fn new(kind: TriggerKind, priority: Priority, reason: impl Into<String>) -> Self {
        Trigger { kind, priority, reason: reason.into(), window_days: None, all_bars: false, force: false }
    }

    /// An operator's request (HIGH unless changed with [`Trigger::with_priority`]); trains on
    /// the policy's `window_manual_days` unless [`Trigger::with_window_days`] or
    /// [`Trigger::with_all_bars`] says otherwise, and runs even without enough new rows.
    pub fn manual(reason: impl Into<String>) -> Self {
        Trigger { force: true, ..Trigger::new(TriggerKind::Manual, Priority::High, reason) }
    }

    /// The same trigger at another priority.
    pub fn with_priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }

    /// The same trigger with a training window of `days`.
    pub fn with_window_days(mut self, days: usize) -> Self {
        self.window_days = Some(days);
        self.all_bars = false;
        self
    }

    /// The same trigger training on every bar given.
    pub fn with_all_bars(mut self) -> Self {
        self.window_days = None;
        self.all_bars = true;
        self
    }

    /// The training window in days under `policy` (`None`: all bars).
    pub fn window(&self, policy: &Policy) -> Option<usize> {
        if self.all_bars {
            return None;
        }
        self.window_days.or(match self.kind {
            TriggerKind::Performance | TriggerKind::IcDecay => Some(policy.window_performance_days),
            TriggerKind::Drift => Some(policy.window_drift_days),
            TriggerKind::Regime => Some(policy.window_regime_days),
            TriggerKind::Time | TriggerKind::Schedule => Some(policy.window_time_days),
            TriggerKind::Manual => Some(policy.window_manual_days),
        })
    }
}

/// The regime history of a market: one label per trading day, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegimeHistory {
    /// The regime each day (e.g. TRENDING, RANGING, CHOPPY, VOLATILE).
    pub daily: Vec<String>,
    /// The regime the active model was trained in.
    pub trained_in: Option<String>,
}

/// What [`evaluate`] looks at for one model.
#[derive(Debug, Clone, Default)]
pub struct TriggerInputs<'a> {
    /// Live health (the supervisor's report).
    pub health: Option<&'a HealthReport>,
    /// Feature drift against the active version's reference statistics.
    pub drift: Option<&'a DriftReport>,
    /// Regime labels.
    pub regime: Option<&'a RegimeHistory>,
    /// When the active version was deployed.
    pub last_deployed: Option<Timestamp>,
    /// Cron schedules that came due since the last check (name, window days).
    pub schedules_due: Vec<(String, Option<usize>)>,
    /// Whether the model is a classifier (the accuracy row applies).
    pub classifier: bool,
}

/// Every trigger of the table that fires for one model at `now`.
pub fn evaluate(inputs: &TriggerInputs<'_>, now: Timestamp, policy: &Policy) -> Vec<Trigger> {
    let mut out = Vec::new();
    if let Some(h) = inputs.health {
        match h.status {
            HealthStatus::Critical => out.push(Trigger::new(
                TriggerKind::Performance,
                Priority::Urgent,
                format!("health CRITICAL: {}", h.alerts.join("; ")),
            )),
            HealthStatus::Degraded => out.push(Trigger::new(
                TriggerKind::Performance,
                Priority::High,
                format!("health DEGRADED: {}", h.alerts.join("; ")),
            )),
            HealthStatus::Healthy => {}
        }
        if h.trend == Trend::Degrading {
            out.push(Trigger::new(TriggerKind::Performance, Priority::Medium, "performance trend DEGRADING"));
        }
        if let Some(w) = h.win_rate.filter(|&w| w < policy.min_win_rate) {
            out.push(Trigger::new(
                TriggerKind::Performance,
                Priority::High,
                format!("win rate {:.1}% < {:.0}%", 100.0 * w, 100.0 * policy.min_win_rate),
            ));
        }
        if inputs.classifier
            && let Some(a) = h.accuracy.filter(|&a| a < policy.min_accuracy)
        {
            out.push(Trigger::new(
                TriggerKind::Performance,
                Priority::High,
                format!("accuracy {a:.3} < {}", policy.min_accuracy),
            ));
        }
        let days = h.ic_days_below(policy.ic_decay_threshold);
        if days >= policy.ic_decay_days {
            out.push(Trigger::new(
                TriggerKind::IcDecay,
                Priority::High,
                format!(
                    "rolling IC < {} for {days} consecutive trading days (limit {})",
                    policy.ic_decay_threshold, policy.ic_decay_days
                ),
            ));
        }
    }
    if let Some(d) = inputs.drift {
        let priority = match d.severity {
            DriftSeverity::None | DriftSeverity::Low => None,
            DriftSeverity::Medium => Some(Priority::Medium),
            DriftSeverity::High => Some(Priority::High),
            DriftSeverity::Critical => Some(Priority::Urgent),
        };
        if let Some(p) = priority {
            out.push(Trigger::new(
                TriggerKind::Drift,
                p,
                format!(
                    "feature drift {}: {} of {} features drifted (max KS {:.3}): {}",
                    d.severity,
                    d.drifted,
                    d.features.len(),
                    d.max_ks,
                    d.drifted_features().join(", ")
                ),
            ));
        }
    }
    if let Some(r) = inputs.regime
        && let Some(last) = r.daily.last()
    {
        let sustained = r.daily.iter().rev().take_while(|x| *x == last).count();
        let changed = r.trained_in.as_ref().is_some_and(|t| t != last);
        if changed && sustained >= policy.regime_sustain_days {
            out.push(Trigger::new(
                TriggerKind::Regime,
                Priority::Medium,
                format!(
                    "regime changed from {} to {last}, sustained {sustained} days",
                    r.trained_in.as_deref().unwrap_or("?")
                ),
            ));
        }
    }
    if let Some(t) = inputs.last_deployed {
        let age = now.duration_since(t);
        let limit = SignedDuration::from_hours(24 * policy.schedule_interval_days as i64);
        if age >= limit {
            out.push(Trigger::new(
                TriggerKind::Time,
                Priority::Low,
                format!(
                    "{:.1} days since the last deployment (every {})",
                    age.as_secs_f64() / 86_400.0,
                    policy.schedule_interval_days
                ),
            ));
        }
    }
    for (name, window) in &inputs.schedules_due {
        let mut t = Trigger::new(TriggerKind::Schedule, Priority::Low, format!("schedule `{name}` is due"));
        t.window_days = *window;
        out.push(t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::health::{HealthReport, HealthStatus, Trend};

    fn health(status: HealthStatus, trend: Trend, win_rate: f64, accuracy: f64, ic: &[f64]) -> HealthReport {
        HealthReport {
            model: "m".into(),
            predictions: 500,
            resolved: 500,
            win_rate: Some(win_rate),
            accuracy: Some(accuracy),
            avg_r: Some(0.1),
            calibration_error: Some(0.05),
            long_short_ratio: Some(1.0),
            latency_ms: None,
            coverage: 1.0,
            rolling_ic: ic.iter().enumerate().map(|(i, v)| (format!("d{i}"), *v)).collect(),
            trend,
            status,
            alerts: vec!["x".into()],
            notes: vec![],
        }
    }

    fn fire(inputs: TriggerInputs<'_>) -> Vec<(TriggerKind, Priority)> {
        let now: Timestamp = "2026-11-24T00:00:00Z".parse().unwrap();
        evaluate(&inputs, now, &Policy::default()).into_iter().map(|t| (t.kind, t.priority)).collect()
    }

    #[test]
    fn kind_names_are_the_serialised_names_and_the_policy_knows_them() {
        use TriggerKind::*;
        for k in [Performance, IcDecay, Drift, Regime, Time, Schedule, Manual] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
            assert_eq!(crate::config::TRIGGER_KINDS.contains(&k.name()), k != Manual, "{k:?}");
        }
        let p = Policy { triggers: vec!["time".into()], ..Policy::default() };
        assert!(p.fires("time") && !p.fires("drift"));
        assert!(Policy::default().fires("drift"));
        let bad = Policy { triggers: vec!["weekly".into()], ..Policy::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("unknown trigger kind `weekly`"));
    }

    #[test]
    fn each_row_of_the_spec_table() {
        use Priority::*;
        use TriggerKind::*;
        let ok = health(HealthStatus::Healthy, Trend::Stable, 0.55, 0.8, &[0.05; 12]);
        assert!(fire(TriggerInputs { health: Some(&ok), classifier: true, ..Default::default() }).is_empty());
        let h = health(HealthStatus::Critical, Trend::Stable, 0.55, 0.8, &[]);
        assert_eq!(fire(TriggerInputs { health: Some(&h), ..Default::default() }), [(Performance, Urgent)]);
        let h = health(HealthStatus::Degraded, Trend::Stable, 0.55, 0.8, &[]);
        assert_eq!(fire(TriggerInputs { health: Some(&h), ..Default::default() }), [(Performance, High)]);
        let h = health(HealthStatus::Healthy, Trend::Degrading, 0.55, 0.8, &[]);
        assert_eq!(fire(TriggerInputs { health: Some(&h), ..Default::default() }), [(Performance, Medium)]);
        let h = health(HealthStatus::Healthy, Trend::Stable, 0.49, 0.8, &[]);
        assert_eq!(fire(TriggerInputs { health: Some(&h), ..Default::default() }), [(Performance, High)]);
        let h = health(HealthStatus::Healthy, Trend::Stable, 0.55, 0.69, &[]);
        assert_eq!(
            fire(TriggerInputs { health: Some(&h), classifier: true, ..Default::default() }),
            [(Performance, High)]
        );
        assert!(fire(TriggerInputs { health: Some(&h), classifier: false, ..Default::default() }).is_empty());
        // IC decay: 10 trailing days below 0.02 fire, 9 do not.
        let mut ic = vec![0.05; 3];
        ic.extend([0.01; 10]);
        let h = health(HealthStatus::Healthy, Trend::Stable, 0.55, 0.8, &ic);
        assert_eq!(fire(TriggerInputs { health: Some(&h), ..Default::default() }), [(IcDecay, High)]);
        let h = health(
            HealthStatus::Healthy,
            Trend::Stable,
            0.55,
            0.8,
            &ic[1..][..11].iter().copied().chain([0.05]).collect::<Vec<_>>(),
        );
        assert!(fire(TriggerInputs { health: Some(&h), ..Default::default() }).is_empty());
        // Regime: changed and sustained 3 days fires; 2 days does not.
        let r = RegimeHistory {
            daily: ["RANGING", "TRENDING", "TRENDING", "TRENDING"].map(String::from).to_vec(),
            trained_in: Some("RANGING".into()),
        };
        assert_eq!(fire(TriggerInputs { regime: Some(&r), ..Default::default() }), [(Regime, Medium)]);
        let r2 = RegimeHistory { daily: r.daily[..3].to_vec(), ..r.clone() };
        assert!(fire(TriggerInputs { regime: Some(&r2), ..Default::default() }).is_empty());
        // Time: 7 days after the last deployment.
        let week: Timestamp = "2026-11-17T00:00:00Z".parse().unwrap();
        assert_eq!(fire(TriggerInputs { last_deployed: Some(week), ..Default::default() }), [(Time, Low)]);
        let six: Timestamp = "2026-11-18T00:00:01Z".parse().unwrap();
        assert!(fire(TriggerInputs { last_deployed: Some(six), ..Default::default() }).is_empty());
        let due = TriggerInputs { schedules_due: vec![("monthly".into(), Some(1095))], ..Default::default() };
        assert_eq!(fire(due), [(Schedule, Low)]);
    }

    #[test]
    fn drift_priority_follows_severity_and_windows_follow_the_policy() {
        use crate::lifecycle::drift::DriftReport;
        let report =
            |severity| DriftReport { features: vec![], alerts: 1, drifted: 1, max_ks: 0.3, calibrated: 0, severity };
        for (s, want) in [
            (DriftSeverity::Low, None),
            (DriftSeverity::Medium, Some(Priority::Medium)),
            (DriftSeverity::High, Some(Priority::High)),
            (DriftSeverity::Critical, Some(Priority::Urgent)),
        ] {
            let r = report(s);
            let got = fire(TriggerInputs { drift: Some(&r), ..Default::default() }).first().map(|t| t.1);
            assert_eq!(got, want, "{s}");
        }
        let p = Policy::default();
        assert_eq!(Trigger::new(TriggerKind::Drift, Priority::High, "").window(&p), Some(60));
        assert_eq!(Trigger::new(TriggerKind::Regime, Priority::High, "").window(&p), Some(30));
        assert_eq!(Trigger::new(TriggerKind::Time, Priority::Low, "").window(&p), Some(90));
        assert_eq!(Trigger::manual("x").window(&p), Some(90));
        let p2 = Policy { window_manual_days: 12, ..Policy::default() };
        assert_eq!(Trigger::manual("x").window(&p2), Some(12));
        assert_eq!(Trigger::manual("x").with_window_days(10).window(&p), Some(10));
        assert_eq!(Trigger::manual("x").with_all_bars().window(&p), None);
        assert_eq!(Trigger::manual("x").with_all_bars().with_window_days(10).window(&p), Some(10));
    }
}

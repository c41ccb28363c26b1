//! The plan: triggers grouped into one job per model (the
//! highest priority wins, every reason is kept), ordered URGENT > HIGH > MEDIUM > LOW (then
//! by model id, so a plan is deterministic), each with the data window of its winning
//! trigger and a duration estimated from the model's past jobs in the audit log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Policy;
use crate::lifecycle::trigger::Trigger;
use crate::store::{AuditKind, AuditRecord, VersionStore};

/// One planned job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedJob {
    /// The model id.
    pub model_id: String,
    /// The winning (highest-priority) trigger.
    pub trigger: Trigger,
    /// Every grouped trigger's reason, winner first.
    pub reasons: Vec<String>,
    /// Training window in days (`None`: all bars).
    pub window_days: Option<usize>,
    /// Mean duration of the model's last completed jobs (up to 5), in seconds.
    pub estimated_seconds: Option<f64>,
}

/// Jobs in execution order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The jobs.
    pub jobs: Vec<PlannedJob>,
}

impl Plan {
    /// Sum of the known estimates, in seconds.
    pub fn estimated_seconds(&self) -> f64 {
        self.jobs.iter().filter_map(|j| j.estimated_seconds).sum()
    }
}

/// Mean duration of the model's last (up to 5) completed jobs from the audit log.
pub fn estimate_seconds(store: &VersionStore, model_id: &str) -> Option<f64> {
    mean_job_seconds(&store.history(model_id).ok()?)
}

/// Mean duration of the last (up to 5) completed jobs of a model's `history`.
fn mean_job_seconds(history: &[AuditRecord]) -> Option<f64> {
    let secs: Vec<f64> = history
        .iter()
        .rev()
        .filter(|r| r.event == AuditKind::Job)
        .filter_map(|r| r.details.as_ref())
        .filter(|d| d.get("status").and_then(|s| s.as_str()) == Some("COMPLETED"))
        .filter_map(|d| d.get("seconds").and_then(|s| s.as_f64()))
        .take(5)
        .collect();
    (!secs.is_empty()).then(|| secs.iter().sum::<f64>() / secs.len() as f64)
}

/// Group `(model_id, trigger)` pairs into a plan.
pub fn plan(triggers: &[(String, Trigger)], policy: &Policy, store: Option<&VersionStore>) -> Plan {
    let mut by_model: BTreeMap<&str, Vec<&Trigger>> = BTreeMap::new();
    for (m, t) in triggers {
        by_model.entry(m.as_str()).or_default().push(t);
    }
    // One pass over the audit log for every model's estimate.
    let ids: Vec<&str> = by_model.keys().copied().collect();
    let histories = store.and_then(|s| s.histories(&ids).ok()).unwrap_or_default();
    let mut jobs: Vec<PlannedJob> = by_model
        .into_iter()
        .map(|(model_id, mut ts)| {
            // Stable: among equal priorities the first given wins.
            ts.sort_by_key(|t| std::cmp::Reverse(t.priority));
            let winner = ts[0].clone();
            let mut trigger = winner.clone();
            trigger.force = ts.iter().any(|t| t.force);
            PlannedJob {
                model_id: model_id.to_string(),
                reasons: ts.iter().map(|t| format!("[{}] {}", t.priority, t.reason)).collect(),
                window_days: winner.window(policy),
                estimated_seconds: histories.get(model_id).and_then(|h| mean_job_seconds(h)),
                trigger,
            }
        })
        .collect();
    jobs.sort_by(|a, b| b.trigger.priority.cmp(&a.trigger.priority).then_with(|| a.model_id.cmp(&b.model_id)));
    Plan { jobs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::trigger::{Priority, TriggerKind};

    #[test]
    fn one_job_per_model_highest_priority_first() {
        let t = |k, p, r: &str| Trigger::new(k, p, r);
        let triggers = vec![
            ("b".to_string(), t(TriggerKind::Time, Priority::Low, "weekly")),
            ("a".to_string(), t(TriggerKind::Regime, Priority::Medium, "regime")),
            ("b".to_string(), t(TriggerKind::Drift, Priority::Urgent, "drift")),
            ("c".to_string(), t(TriggerKind::Performance, Priority::High, "win rate")),
            ("a".to_string(), t(TriggerKind::Time, Priority::Low, "weekly")),
        ];
        let p = plan(&triggers, &Policy::default(), None);
        let order: Vec<(&str, Priority)> = p.jobs.iter().map(|j| (j.model_id.as_str(), j.trigger.priority)).collect();
        assert_eq!(order, [("b", Priority::Urgent), ("c", Priority::High), ("a", Priority::Medium)]);
        assert_eq!(p.jobs[0].reasons, ["[URGENT] drift", "[LOW] weekly"]);
        assert_eq!(p.jobs[0].window_days, Some(60), "drift window");
        assert_eq!(p.jobs[2].window_days, Some(30), "regime window");
        assert_eq!(p.estimated_seconds(), 0.0);
    }
}

//! Retirement and automatic rollback, decided
//! from the live prediction log.
//!
//! Whose records: a record names its version as `model@tag`; a record without a tag belongs
//! to whichever version was active when it was made (the deployment history of the store).
//!
//! - Retirement: the active version's rolling IC (health's per-day IC) stays below 0 for
//!   `retire_ic_days` consecutive trading days → RETIRED; the store then activates the
//!   previous good version (the fallback).
//! - Automatic rollback: while a first deployment is younger than `rollback_window_days`, its live
//!   score is compared with its predecessor's over the predecessor's last
//!   `rollback_window_days` of service: the decision rule's weighted relative change of win
//!   rate, average R and calibration (calibration's weight shared out when either side has no
//!   probabilities). Below −`rollback_threshold`, with at least `health_min_outcomes` resolved
//!   predictions on each side, the predecessor is rolled back to.
//!
//! [`check_live`] only decides; [`crate::lifecycle::Retrainer::supervise`] acts, audits and
//! emits `model.retired` / `model.promoted`.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::config::Policy;
use crate::lifecycle::decision::{DecisionMetrics, improvement};
use crate::lifecycle::health::{HealthReport, PredictionLog, PredictionRecord, assess};
use crate::store::Deployment;

/// What the live log says to do with a model's active version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum LiveAction {
    /// Nothing.
    Keep,
    /// Retire the active version (the fallback becomes active).
    Retire {
        /// The active version.
        tag: String,
        /// Consecutive trading days with IC < 0.
        negative_ic_days: usize,
    },
    /// Roll back to the predecessor.
    Rollback {
        /// The active version.
        from: String,
        /// The predecessor.
        to: String,
        /// Relative live-score change (negative).
        change: f64,
    },
}

/// The verdict with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveVerdict {
    /// The model.
    pub model_id: String,
    /// What to do.
    pub action: LiveAction,
    /// The active version's live health.
    pub health: Option<HealthReport>,
    /// Live-score change against the predecessor, when both had enough outcomes.
    pub score_change: Option<f64>,
    /// Why.
    pub reasons: Vec<String>,
}

/// The deployment each record belongs to: its `@tag`, else the version active at its time.
fn owner<'a>(r: &'a PredictionRecord, deployments: &'a [Deployment]) -> Option<&'a str> {
    if let Some((_, tag)) = r.model.split_once('@') {
        return Some(tag);
    }
    deployments.iter().rev().find(|d| d.at <= r.ts).map(|d| d.tag.as_str())
}

fn metrics(h: &HealthReport) -> Option<(DecisionMetrics, bool)> {
    let win_rate = h.win_rate?;
    let avg_r = h.avg_r?;
    let calibration = h.calibration_error.map(|e| 1.0 - e);
    Some((DecisionMetrics { win_rate, avg_r, calibration: calibration.unwrap_or(1.0) }, calibration.is_some()))
}

/// The weighted relative change of `new` over `old` (calibration dropped and its weight
/// shared out unless both have it).
pub fn live_score_change(new: &HealthReport, old: &HealthReport, policy: &Policy) -> Option<f64> {
    let (n, n_cal) = metrics(new)?;
    let (o, o_cal) = metrics(old)?;
    let (total, comps) = improvement(&n, &o, policy);
    if n_cal && o_cal {
        return Some(total);
    }
    let kept: Vec<_> = comps.iter().filter(|c| c.metric != "calibration").collect();
    let w: f64 = kept.iter().map(|c| c.weight).sum();
    Some(kept.iter().map(|c| c.weight / w * c.relative).sum())
}

/// Health of version `tag` of `model_id` from the live log: its own records (by `@tag`, else
/// by the deployment history).
pub fn version_health(
    model_id: &str,
    tag: &str,
    deployments: &[Deployment],
    log: &PredictionLog,
    policy: &Policy,
) -> HealthReport {
    let mine: Vec<&PredictionRecord> =
        log.of(model_id).into_iter().filter(|r| owner(r, deployments) == Some(tag)).collect();
    assess(model_id, &mine, policy)
}

/// Decide retirement / rollback for `model_id` whose deployment history (oldest first) is
/// `deployments` and whose active version is `active`, from `log` at `now`.
pub fn check_live(
    model_id: &str,
    active: &str,
    deployments: &[Deployment],
    log: &PredictionLog,
    now: Timestamp,
    policy: &Policy,
) -> LiveVerdict {
    let health = version_health(model_id, active, deployments, log, policy);
    let mut verdict = LiveVerdict {
        model_id: model_id.into(),
        action: LiveAction::Keep,
        health: None,
        score_change: None,
        reasons: vec![],
    };
    if health.predictions == 0 {
        verdict.reasons.push(format!("no live predictions of {active}"));
        return verdict;
    }
    let negative = health.negative_ic_days();
    if negative >= policy.retire_ic_days {
        verdict
            .reasons
            .push(format!("rolling IC < 0 for {negative} consecutive trading days (limit {})", policy.retire_ic_days));
        verdict.action = LiveAction::Retire { tag: active.into(), negative_ic_days: negative };
        verdict.health = Some(health);
        return verdict;
    }
    // The latest activation of the active version, and the one before it.
    let Some(pos) = deployments.iter().rposition(|d| d.tag == active) else {
        verdict.health = Some(health);
        return verdict;
    };
    let since = deployments[pos].at;
    let window = SignedDuration::from_hours(24 * policy.rollback_window_days as i64);
    // Only a first activation is "newly deployed": a version that served before (a rollback
    // or fallback target) is not compared with the one it replaced, or two versions could
    // roll each other back in turn.
    let first_time = !deployments[..pos].iter().any(|d| d.tag == active);
    let predecessor = pos.checked_sub(1).map(|i| &deployments[i]).filter(|p| p.tag != active).filter(|_| first_time);
    if let Some(prev) = predecessor
        && now.duration_since(since) <= window
    {
        let from = since - window;
        let theirs: Vec<&PredictionRecord> = log
            .of(model_id)
            .into_iter()
            .filter(|r| r.ts < since && r.ts >= from.max(prev.at) && owner(r, deployments) == Some(prev.tag.as_str()))
            .collect();
        let old = assess(model_id, &theirs, policy);
        let resolved = |h: &HealthReport| h.resolved >= policy.health_min_outcomes;
        if resolved(&health) && resolved(&old) {
            if let Some(change) = live_score_change(&health, &old, policy) {
                verdict.score_change = Some(change);
                if change < -policy.rollback_threshold {
                    verdict.reasons.push(format!(
                        "live score {:+.1}% against {} (rollback below −{:.0}%)",
                        100.0 * change,
                        prev.tag,
                        100.0 * policy.rollback_threshold
                    ));
                    verdict.action = LiveAction::Rollback { from: active.into(), to: prev.tag.clone(), change };
                }
            }
        } else {
            verdict.reasons.push(format!(
                "rollback check waits for {} resolved predictions on each side ({} and {})",
                policy.health_min_outcomes, health.resolved, old.resolved
            ));
        }
    }
    verdict.health = Some(health);
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Hourly records of `model` from `from` for `hours`, right with probability `p`; the IC
    /// follows (score = direction).
    fn records(log: &mut PredictionLog, model: &str, from: Timestamp, hours: i64, p: f64, seed: u64) {
        let mut rng = Rng::new(seed);
        for h in 0..hours {
            let outcome = 0.01 * rng.normal();
            let sign: i8 = if outcome >= 0.0 { 1 } else { -1 };
            let direction = if rng.next_f64() < p { sign } else { -sign };
            log.push(PredictionRecord {
                ts: from + SignedDuration::from_hours(h),
                model: model.into(),
                direction,
                probability: Some(0.6),
                score: None,
                outcome: Some(outcome),
                risk: Some(0.01),
                latency_ms: None,
            })
            .unwrap();
        }
    }

    fn dep(tag: &str, at: &str) -> Deployment {
        Deployment { tag: tag.into(), at: t(at) }
    }

    #[test]
    fn thirty_negative_ic_days_retire_and_twenty_nine_do_not() {
        let p = Policy::default();
        let deployments = [dep("v1", "2026-01-01T00:00:00Z")];
        let start = t("2026-01-01T00:00:00Z");
        for (days, retire) in [(29, false), (30, true), (40, true)] {
            // Reliably wrong every day: every daily rolling IC is negative.
            let mut log = PredictionLog::new();
            records(&mut log, "m", start, 24 * days, 0.1, 3);
            let v = check_live("m", "v1", &deployments, &log, start + SignedDuration::from_hours(24 * days), &p);
            assert_eq!(v.health.as_ref().unwrap().negative_ic_days(), days as usize);
            let want = if retire {
                LiveAction::Retire { tag: "v1".into(), negative_ic_days: days as usize }
            } else {
                LiveAction::Keep
            };
            assert_eq!(v.action, want, "{days} days: {:?}", v.reasons);
        }
        // A good day in between resets the count.
        let mut log = PredictionLog::new();
        records(&mut log, "m", start, 24 * 20, 0.1, 4);
        records(&mut log, "m", start + SignedDuration::from_hours(24 * 20), 24 * 3, 0.95, 5);
        records(&mut log, "m", start + SignedDuration::from_hours(24 * 23), 24 * 20, 0.1, 6);
        let v = check_live("m", "v1", &deployments, &log, start + SignedDuration::from_hours(24 * 43), &p);
        assert_eq!(v.action, LiveAction::Keep, "{:?}", v.health.map(|h| h.negative_ic_days()));
    }

    #[test]
    fn a_new_deployment_well_below_its_predecessor_rolls_back() {
        let p = Policy::default();
        let deployments = [dep("v1", "2026-01-01T00:00:00Z"), dep("v2", "2026-01-20T00:00:00Z")];
        let (d1, d2) = (t("2026-01-01T00:00:00Z"), t("2026-01-20T00:00:00Z"));
        let mut log = PredictionLog::new();
        // Untagged records: owned by whichever version was active then.
        records(&mut log, "m", d1, 24 * 19, 0.62, 1);
        records(&mut log, "m", d2, 24 * 3, 0.50, 2);
        let now = d2 + SignedDuration::from_hours(24 * 3);
        let v = check_live("m", "v2", &deployments, &log, now, &p);
        match v.action {
            LiveAction::Rollback { ref from, ref to, change } => {
                assert_eq!((from.as_str(), to.as_str()), ("v2", "v1"));
                assert!(change < -0.05);
            }
            ref other => panic!("{other:?} {:?}", v.reasons),
        }
        // As good as its predecessor: kept.
        let mut log = PredictionLog::new();
        records(&mut log, "m", d1, 24 * 19, 0.6, 1);
        records(&mut log, "m", d2, 24 * 3, 0.62, 2);
        assert_eq!(check_live("m", "v2", &deployments, &log, now, &p).action, LiveAction::Keep);
        // Same poor records but past the rollback window: only retirement applies now.
        let mut log = PredictionLog::new();
        records(&mut log, "m", d1, 24 * 19, 0.62, 1);
        records(&mut log, "m", d2, 24 * 3, 0.50, 2);
        let late = d2 + SignedDuration::from_hours(24 * 15);
        assert_eq!(check_live("m", "v2", &deployments, &log, late, &p).action, LiveAction::Keep);
        // v1 back by rollback is not "newly deployed": it is never rolled back to v2 in turn.
        let back =
            [dep("v1", "2026-01-01T00:00:00Z"), dep("v2", "2026-01-20T00:00:00Z"), dep("v1", "2026-01-23T00:00:00Z")];
        let mut log = PredictionLog::new();
        records(&mut log, "m", d1, 24 * 19, 0.62, 1);
        records(&mut log, "m", d2, 24 * 3, 0.70, 2);
        records(&mut log, "m", t("2026-01-23T00:00:00Z"), 24 * 3, 0.50, 3);
        let v = check_live("m", "v1", &back, &log, t("2026-01-26T00:00:00Z"), &p);
        assert_eq!(v.action, LiveAction::Keep, "{:?}", v.reasons);
        // Tagged records name their version whatever their time.
        let mut log = PredictionLog::new();
        records(&mut log, "m@v1", d1, 24 * 19, 0.62, 1);
        records(&mut log, "m@v2", d2, 20, 0.50, 2);
        let v = check_live("m", "v2", &deployments, &log, now, &p);
        assert_eq!(v.action, LiveAction::Keep, "too few outcomes yet");
        assert!(v.reasons[0].contains("waits"), "{:?}", v.reasons);
    }
}

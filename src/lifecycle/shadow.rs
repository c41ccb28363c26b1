//! Shadow and canary testing. A candidate in SHADOW predicts
//! beside the ACTIVE version on the same inputs; each pair of calls is recorded under a key
//! (the bar, the signal id) and, once the market has spoken, its realised outcome. The log
//! is a JSONL file next to the store (`models/<id>/shadow/<tag>.jsonl`), appended and fsynced
//! line by line, so a crash loses at most the record being written, and hash-chained like the
//! audit log (`<tag>.head` anchors its end), so damage to it is seen, not evaluated.
//!
//! Evaluation, once `min_samples` pairs have outcomes. Per pair and version, the trade
//! result is `r = direction × outcome ÷ risk` (0 for a flat call). On those same pairs each
//! version gets the decision rule's three metrics — win rate of its non-flat calls, average
//! R over every pair, calibration (1 − ECE of its probability against its win) — and the
//! weighted relative improvement of the decision rule (policy weights and floors; without
//! probabilities on both sides, calibration's weight is shared out over the other two).
//! The paired test is on the per-pair difference `r_shadow − r_active`: a mean test with a
//! Newey–West (HAC) standard error, since consecutive outcomes over overlapping horizons are
//! autocorrelated. Drawdown is the largest peak-to-trough fall of the cumulative R.
//!
//! - PROMOTE: improvement ≥ `promotion_threshold`, mean difference > 0 with p <
//!   `shadow_p_value`, and drawdown no more than `max_drawdown_worsening` (relative) above
//!   the active version's.
//! - REJECT: improvement ≤ 0 (not better on the key metrics), or still not promotable after
//!   `shadow_max_samples` pairs.
//! - CONTINUE_TESTING: otherwise (too few pairs, not yet significant, drawdown worse).
//!
//! A test whose last record is older than `shadow_stuck_hours` is *stuck* (an alert).
//!
//! Canary: [`routes_to_candidate`] sends a fixed fraction of keys to the candidate,
//! deterministically (the BLAKE3 hash of the key), so a replay routes exactly as live did
//! and both versions' calls are still recorded for the paired evaluation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::config::Policy;
use crate::error::{Error, Result};
use crate::lifecycle::decision::{Component, DecisionMetrics, improvement};
use crate::model::Signal;
use crate::store::VersionStore;
use crate::validation::compare::{TestResult, newey_west_mean_test};
use crate::validation::metrics::expected_calibration_error;

/// One version's call on an input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// −1 short, 0 flat, +1 long.
    pub direction: i8,
    /// Probability of that direction, when the model gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
}

impl Call {
    /// A call (checked when recorded).
    pub fn new(direction: i8, probability: Option<f64>) -> Self {
        Call { direction, probability }
    }
}

impl From<&Signal> for Call {
    fn from(s: &Signal) -> Self {
        Call { direction: s.direction, probability: s.probability }
    }
}

/// How the candidate is being tested.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The candidate only watches (decision REVIEW).
    Shadow,
    /// The candidate acts on a fraction of keys (decision CANARY).
    Canary {
        /// Share of keys it acts on.
        fraction: f64,
    },
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Prediction { key: String, ts: Timestamp, active: Call, shadow: Call, routed: bool },
    Outcome { key: String, ts: Timestamp, outcome: f64, risk: Option<f64> },
}

/// A pair of calls with its realised outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedSample {
    /// The input's key.
    pub key: String,
    /// When the calls were made.
    pub ts: Timestamp,
    /// The active version's call.
    pub active: Call,
    /// The candidate's call.
    pub shadow: Call,
    /// Realised return over the horizon.
    pub outcome: f64,
    /// Risk unit (default 1).
    pub risk: f64,
}

/// The outcome of a shadow evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Recommendation {
    /// The candidate is better: make it active.
    Promote,
    /// The candidate is not better: retire it.
    Reject,
    /// Not enough evidence yet.
    ContinueTesting,
}

impl std::fmt::Display for Recommendation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Recommendation::Promote => "PROMOTE",
            Recommendation::Reject => "REJECT",
            Recommendation::ContinueTesting => "CONTINUE_TESTING",
        })
    }
}

/// One version's metrics over the paired samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SideMetrics {
    /// Non-flat calls.
    pub calls: usize,
    /// Win rate of the non-flat calls.
    pub win_rate: f64,
    /// Mean R over every pair (flat = 0).
    pub avg_r: f64,
    /// 1 − ECE of the probabilities (`None` without probabilities).
    pub calibration: Option<f64>,
    /// Largest fall of the cumulative R.
    pub max_drawdown: f64,
    /// Total R.
    pub total_r: f64,
}

/// A shadow evaluation with everything that led to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowEvaluation {
    /// The recommendation.
    pub recommendation: Recommendation,
    /// Pairs with an outcome.
    pub samples: usize,
    /// Pairs still waiting for their outcome.
    pub pending: usize,
    /// The active version's metrics.
    pub active: Option<SideMetrics>,
    /// The candidate's metrics.
    pub shadow: Option<SideMetrics>,
    /// Weighted relative improvement (decision-rule weights).
    pub improvement: Option<f64>,
    /// Its components.
    pub components: Vec<Component>,
    /// Paired HAC test of `r_shadow − r_active`.
    pub paired_test: Option<TestResult>,
    /// (candidate drawdown − active drawdown) ÷ active drawdown.
    pub drawdown_worsening: Option<f64>,
    /// No record for `shadow_stuck_hours`.
    pub stuck: bool,
    /// When the last record was written.
    pub last_record: Option<Timestamp>,
    /// Why.
    pub reasons: Vec<String>,
}

/// Whether the canary sends `key` to the candidate (a fixed `fraction` of keys, by hash).
pub fn routes_to_candidate(key: &str, fraction: f64) -> bool {
    let h = blake3::hash(key.as_bytes());
    let x = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
    // x / 2^64 < fraction, in integers: exact for fraction 0 and 1.
    (x as f64) < fraction * 18_446_744_073_709_551_616.0
}

fn check_call(c: &Call, which: &str) -> Result<()> {
    if !(-1..=1).contains(&c.direction) {
        return Err(Error::param(format!("{which}.direction"), format!("must be -1, 0 or 1, got {}", c.direction)));
    }
    if let Some(p) = c.probability
        && !(0.0..=1.0).contains(&p)
    {
        return Err(Error::param(format!("{which}.probability"), format!("must be in [0, 1], got {p}")));
    }
    Ok(())
}

#[derive(Debug, Default)]
struct State {
    predictions: BTreeMap<String, (Timestamp, Call, Call)>,
    outcomes: BTreeMap<String, (f64, f64)>,
    last: Option<Timestamp>,
    routed: usize,
}

/// The shadow test of one candidate version against the active one.
#[derive(Debug)]
pub struct ShadowTest {
    /// The model.
    pub model_id: String,
    /// The candidate (SHADOW) version.
    pub shadow_tag: String,
    /// The active version it is compared with.
    pub active_tag: Option<String>,
    /// Shadow or canary.
    pub mode: Mode,
    path: PathBuf,
    state: Mutex<State>,
}

impl ShadowTest {
    /// Open the test of `model_id`'s current SHADOW version (its mode from its decision:
    /// CANARY routes `policy.canary_fraction` of keys, anything else only watches).
    pub fn open(store: &VersionStore, model_id: &str, policy: &Policy) -> Result<Self> {
        let aliases = store.aliases(model_id)?;
        let tag = aliases
            .shadow
            .ok_or_else(|| Error::NotFound { model_id: model_id.into(), what: "SHADOW version".into() })?;
        let canary = store.history(model_id)?.iter().rev().any(|r| {
            r.event == crate::store::AuditKind::Decision && r.version.as_deref() == Some(&tag) && r.reason == "CANARY"
        });
        let mode = if canary { Mode::Canary { fraction: policy.canary_fraction } } else { Mode::Shadow };
        let path = store.shadow_log_path(model_id, &tag)?;
        Self::at(path, model_id, &tag, aliases.active, mode)
    }

    /// Open (or start) the log at `path`. Lines are checked; a torn last line is ignored.
    pub fn at(
        path: impl Into<PathBuf>,
        model_id: &str,
        shadow_tag: &str,
        active_tag: Option<String>,
        mode: Mode,
    ) -> Result<Self> {
        let path = path.into();
        let state = read_state(&path)?;
        Ok(ShadowTest {
            model_id: model_id.into(),
            shadow_tag: shadow_tag.into(),
            active_tag,
            mode,
            path,
            state: Mutex::new(state),
        })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the candidate acts on `key` (always `false` in a plain shadow test).
    pub fn routes_to_candidate(&self, key: &str) -> bool {
        match self.mode {
            Mode::Shadow => false,
            Mode::Canary { fraction } => routes_to_candidate(key, fraction),
        }
    }

    /// Record both versions' calls on the input `key` (a key is recorded once).
    pub fn record(&self, key: &str, ts: Timestamp, active: Call, shadow: Call) -> Result<()> {
        check_call(&active, "active")?;
        check_call(&shadow, "shadow")?;
        if key.is_empty() {
            return Err(Error::param("key", "must not be empty"));
        }
        let routed = self.routes_to_candidate(key);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.predictions.contains_key(key) {
            return Err(Error::param("key", format!("`{key}` was already recorded in this shadow test")));
        }
        append(&self.path, &Line::Prediction { key: key.into(), ts, active, shadow, routed })?;
        st.predictions.insert(key.into(), (ts, active, shadow));
        st.routed += usize::from(routed);
        st.last = st.last.max(Some(ts));
        Ok(())
    }

    /// Record the realised outcome of the input `key` (`risk` default 1).
    pub fn record_outcome(&self, key: &str, ts: Timestamp, outcome: f64, risk: Option<f64>) -> Result<()> {
        if !outcome.is_finite() {
            return Err(Error::param("outcome", format!("must be finite, got {outcome}")));
        }
        if let Some(r) = risk
            && !(r.is_finite() && r > 0.0)
        {
            return Err(Error::param("risk", format!("must be a positive number, got {r}")));
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !st.predictions.contains_key(key) {
            return Err(Error::NotFound {
                model_id: self.model_id.clone(),
                what: format!("shadow prediction `{key}`"),
            });
        }
        if st.outcomes.contains_key(key) {
            return Err(Error::param("key", format!("the outcome of `{key}` was already recorded")));
        }
        append(&self.path, &Line::Outcome { key: key.into(), ts, outcome, risk })?;
        st.outcomes.insert(key.into(), (outcome, risk.unwrap_or(1.0)));
        st.last = st.last.max(Some(ts));
        Ok(())
    }

    /// Pairs with outcomes (time order) and the number still pending.
    pub fn samples(&self) -> (Vec<PairedSample>, usize) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<PairedSample> = st
            .predictions
            .iter()
            .filter_map(|(k, (ts, a, s))| {
                st.outcomes.get(k).map(|&(outcome, risk)| PairedSample {
                    key: k.clone(),
                    ts: *ts,
                    active: *a,
                    shadow: *s,
                    outcome,
                    risk,
                })
            })
            .collect();
        out.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.key.cmp(&b.key)));
        let pending = st.predictions.len() - out.len();
        (out, pending)
    }

    /// Keys routed to the candidate so far.
    pub fn routed(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).routed
    }

    /// Evaluate at `now` under `policy`.
    pub fn evaluate(&self, now: Timestamp, policy: &Policy) -> ShadowEvaluation {
        let (samples, pending) = self.samples();
        let last = self.state.lock().unwrap_or_else(|e| e.into_inner()).last;
        evaluate(&samples, pending, last, now, policy)
    }
}

/// Append `line` to the log's hash chain (a test's records are written by its one owner).
fn append(path: &Path, line: &Line) -> Result<()> {
    crate::store::append_sealed(path, std::slice::from_ref(line))
}

impl crate::store::ChainedRecord for Line {
    fn parse(text: &[u8]) -> std::result::Result<Self, String> {
        serde_json::from_slice(&crate::store::payload(text)).map_err(|e| e.to_string())
    }
    fn about(&self) -> (Option<String>, Option<Timestamp>) {
        match self {
            Line::Prediction { ts, .. } | Line::Outcome { ts, .. } => (None, Some(*ts)),
        }
    }
}

/// The test's state from its log. The log's hash chain is checked first: a damaged log is an
/// error naming the first bad line, never a partial state passed off as whole.
fn read_state(path: &Path) -> Result<State> {
    let log = crate::store::check_file_records::<Line>(path, None)?;
    if let Some(b) = log.broken {
        let reason = format!("line {}: the log's hash chain is broken: {}", b.line, b.detail);
        return Err(Error::CorruptStore { path: path.into(), reason });
    }
    let mut st = State::default();
    for (i, parsed) in log.records.into_iter().enumerate() {
        let bad = |m: String| Error::CorruptStore { path: path.into(), reason: format!("line {}: {m}", i + 1) };
        match parsed {
            Line::Prediction { key, ts, active, shadow, routed } => {
                check_call(&active, "active").and(check_call(&shadow, "shadow")).map_err(|e| bad(e.to_string()))?;
                if st.predictions.insert(key.clone(), (ts, active, shadow)).is_some() {
                    return Err(bad(format!("key `{key}` recorded twice")));
                }
                st.routed += usize::from(routed);
                st.last = st.last.max(Some(ts));
            }
            Line::Outcome { key, ts, outcome, risk } => {
                if !st.predictions.contains_key(&key) {
                    return Err(bad(format!("outcome for unknown key `{key}`")));
                }
                if !outcome.is_finite() || risk.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                    return Err(bad(format!("outcome of `{key}` is not a finite number with positive risk")));
                }
                st.outcomes.insert(key, (outcome, risk.unwrap_or(1.0)));
                st.last = st.last.max(Some(ts));
            }
        }
    }
    if log.torn_tail {
        tracing::warn!(file = %path.display(), "ignoring a torn last line of a shadow log");
    }
    Ok(st)
}

fn side(samples: &[PairedSample], pick: impl Fn(&PairedSample) -> Call) -> (SideMetrics, Vec<f64>) {
    let r: Vec<f64> = samples.iter().map(|s| f64::from(pick(s).direction) * s.outcome / s.risk).collect();
    let calls: Vec<usize> = (0..samples.len()).filter(|&i| pick(&samples[i]).direction != 0).collect();
    let wins = calls.iter().filter(|&&i| r[i] > 0.0).count();
    let probs: Option<Vec<f64>> = calls.iter().map(|&i| pick(&samples[i]).probability).collect();
    let calibration = probs.filter(|p| !p.is_empty()).and_then(|p| {
        let y: Vec<f64> = calls.iter().map(|&i| f64::from(u8::from(r[i] > 0.0))).collect();
        expected_calibration_error(&y, &p).ok().map(|e| 1.0 - e)
    });
    let (mut peak, mut eq, mut dd) = (0.0f64, 0.0f64, 0.0f64);
    for v in &r {
        eq += v;
        peak = peak.max(eq);
        dd = dd.max(peak - eq);
    }
    let m = SideMetrics {
        calls: calls.len(),
        win_rate: if calls.is_empty() { 0.0 } else { wins as f64 / calls.len() as f64 },
        avg_r: if r.is_empty() { 0.0 } else { eq / r.len() as f64 },
        calibration,
        max_drawdown: dd,
        total_r: eq,
    };
    (m, r)
}

/// Evaluate paired samples (time order) under `policy` at `now`; `last` is the time of the
/// latest record (for the stuck alert) and `pending` the pairs still without an outcome.
pub fn evaluate(
    samples: &[PairedSample],
    pending: usize,
    last: Option<Timestamp>,
    now: Timestamp,
    policy: &Policy,
) -> ShadowEvaluation {
    let stuck_after = SignedDuration::from_hours(policy.shadow_stuck_hours as i64);
    let stuck = last.is_some_and(|t| now.duration_since(t) >= stuck_after);
    let mut ev = ShadowEvaluation {
        recommendation: Recommendation::ContinueTesting,
        samples: samples.len(),
        pending,
        active: None,
        shadow: None,
        improvement: None,
        components: Vec::new(),
        paired_test: None,
        drawdown_worsening: None,
        stuck,
        last_record: last,
        reasons: Vec::new(),
    };
    if stuck {
        ev.reasons.push(format!("stuck: no new sample for {} hours or more", policy.shadow_stuck_hours));
    }
    if samples.len() < policy.min_samples {
        ev.reasons.push(format!("{} of {} paired outcomes so far", samples.len(), policy.min_samples));
        return ev;
    }
    let (a, ra) = side(samples, |s| s.active);
    let (s, rs) = side(samples, |s| s.shadow);
    let calibration_both = a.calibration.zip(s.calibration);
    let metrics = |m: &SideMetrics, c: f64| DecisionMetrics { win_rate: m.win_rate, avg_r: m.avg_r, calibration: c };
    let (imp, comps) = match calibration_both {
        Some((ca, cs)) => improvement(&metrics(&s, cs), &metrics(&a, ca), policy),
        None => {
            // No probabilities on one side: calibration's weight is shared out over the other two.
            let (_, mut comps) = improvement(&metrics(&s, 1.0), &metrics(&a, 1.0), policy);
            comps.retain(|c| c.metric != "calibration");
            let total: f64 = comps.iter().map(|c| c.weight).sum();
            for c in &mut comps {
                c.weight /= total;
            }
            (comps.iter().map(|c| c.weight * c.relative).sum(), comps)
        }
    };
    let diff: Vec<f64> = rs.iter().zip(&ra).map(|(x, y)| x - y).collect();
    let test = if diff.iter().all(|d| *d == diff[0]) {
        // A constant difference has no variance: the test is decided by its sign alone.
        let p = if diff[0] == 0.0 { 1.0 } else { 0.0 };
        TestResult { mean: diff[0], statistic: f64::NAN, p_value: p, n: diff.len() }
    } else {
        newey_west_mean_test(&diff, None).expect("finite paired differences")
    };
    let worsening = if a.max_drawdown > 0.0 {
        (s.max_drawdown - a.max_drawdown) / a.max_drawdown
    } else if s.max_drawdown > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    let significant = test.mean > 0.0 && test.p_value < policy.shadow_p_value;
    let drawdown_ok = worsening <= policy.max_drawdown_worsening + 1e-12;
    ev.reasons.push(format!(
        "improvement {:+.2}% (promotion at {:.0}%), mean R difference {:+.4} (p {:.4}), drawdown {:.3} vs {:.3}",
        100.0 * imp,
        100.0 * policy.promotion_threshold,
        test.mean,
        test.p_value,
        s.max_drawdown,
        a.max_drawdown
    ));
    ev.recommendation = if imp >= policy.promotion_threshold - 1e-12 && significant && drawdown_ok {
        Recommendation::Promote
    } else if imp <= 0.0 {
        ev.reasons.push("the candidate is not better on the key metrics".into());
        Recommendation::Reject
    } else if samples.len() >= policy.shadow_max_samples {
        ev.reasons.push(format!("not proven better after {} paired outcomes", policy.shadow_max_samples));
        Recommendation::Reject
    } else {
        if imp < policy.promotion_threshold {
            ev.reasons.push("improvement below the promotion threshold".into());
        }
        if !significant {
            ev.reasons.push(format!("paired difference not significant at {}", policy.shadow_p_value));
        }
        if !drawdown_ok {
            ev.reasons.push(format!(
                "drawdown {:.1}% worse than the active version's (limit {:.0}%)",
                100.0 * worsening,
                100.0 * policy.max_drawdown_worsening
            ));
        }
        Recommendation::ContinueTesting
    };
    ev.active = Some(a);
    ev.shadow = Some(s);
    ev.improvement = Some(imp);
    ev.components = comps;
    ev.paired_test = Some(test);
    ev.drawdown_worsening = Some(worsening);
    ev
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use std::collections::HashSet;

    /// Which keys a canary of `fraction` routes to the candidate.
    fn routed_keys<'a>(keys: impl IntoIterator<Item = &'a str>, fraction: f64) -> HashSet<&'a str> {
        keys.into_iter().filter(|k| routes_to_candidate(k, fraction)).collect()
    }

    fn t0() -> Timestamp {
        "2026-11-01T00:00:00Z".parse().unwrap()
    }

    /// `n` hourly pairs: each side calls the outcome's sign right with its own probability.
    fn pairs(n: usize, p_active: f64, p_shadow: f64, seed: u64) -> Vec<PairedSample> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|i| {
                let outcome = 0.01 * rng.normal();
                let sign = if outcome >= 0.0 { 1 } else { -1 };
                let mut call = |p: f64| {
                    let right = rng.next_f64() < p;
                    Call::new(if right { sign } else { -sign }, Some(p))
                };
                PairedSample {
                    key: format!("k{i}"),
                    ts: t0() + SignedDuration::from_hours(i as i64),
                    active: call(p_active),
                    shadow: call(p_shadow),
                    outcome,
                    risk: 0.01,
                }
            })
            .collect()
    }

    fn now_after(s: &[PairedSample]) -> Timestamp {
        s.last().map_or(t0(), |x| x.ts) + SignedDuration::from_hours(1)
    }

    #[test]
    fn recommendations_follow_the_rule() {
        let p = Policy::default();
        let better = pairs(1500, 0.52, 0.62, 1);
        let ev = evaluate(&better, 0, better.last().map(|x| x.ts), now_after(&better), &p);
        assert_eq!(ev.recommendation, Recommendation::Promote, "{ev:?}");
        assert!(ev.improvement.unwrap() >= 0.05 && ev.paired_test.unwrap().p_value < 0.05);

        let worse = pairs(1500, 0.58, 0.50, 2);
        let ev = evaluate(&worse, 0, None, now_after(&worse), &p);
        assert_eq!(ev.recommendation, Recommendation::Reject, "{ev:?}");

        let few = &better[..999];
        let ev = evaluate(few, 3, None, now_after(few), &p);
        assert_eq!(ev.recommendation, Recommendation::ContinueTesting);
        assert!(ev.reasons[0].contains("999 of 1000"), "{:?}", ev.reasons);
    }

    #[test]
    fn a_tiny_edge_continues_then_is_rejected_at_the_sample_cap() {
        let p = Policy { shadow_max_samples: 2000, ..Policy::default() };
        // The same calls on both sides except a handful the candidate gets right.
        let mut s = pairs(1500, 0.55, 0.55, 3);
        for x in &mut s {
            x.shadow = x.active;
        }
        for x in s.iter_mut().step_by(100) {
            x.shadow.direction = if x.outcome >= 0.0 { 1 } else { -1 };
        }
        let ev = evaluate(&s, 0, None, now_after(&s), &p);
        assert_eq!(ev.recommendation, Recommendation::ContinueTesting, "{ev:?}");
        let imp = ev.improvement.unwrap();
        assert!(imp > 0.0 && imp < 0.05, "{imp}");
        let mut long = s.clone();
        long.extend(pairs(600, 0.55, 0.55, 4).into_iter().map(|mut x| {
            x.key.push('b');
            x.shadow = x.active;
            x
        }));
        let ev = evaluate(&long, 0, None, now_after(&long), &p);
        assert_eq!(ev.recommendation, Recommendation::Reject, "{ev:?}");
    }

    #[test]
    fn worse_drawdown_blocks_promotion() {
        let p = Policy { min_samples: 100, ..Policy::default() };
        // Candidate: better on average but with one deep losing streak.
        let mut s = pairs(400, 0.5, 0.75, 5);
        for x in s[100..140].iter_mut() {
            x.shadow.direction = if x.outcome >= 0.0 { -1 } else { 1 };
            x.active.direction = 0;
        }
        let ev = evaluate(&s, 0, None, now_after(&s), &p);
        assert!(ev.drawdown_worsening.unwrap() > 0.03, "{ev:?}");
        assert_ne!(ev.recommendation, Recommendation::Promote, "{ev:?}");
    }

    #[test]
    fn stuck_after_24_hours_without_records() {
        let p = Policy::default();
        let s = pairs(10, 0.5, 0.5, 6);
        let last = s.last().unwrap().ts;
        assert!(!evaluate(&s, 0, Some(last), last + SignedDuration::from_hours(23), &p).stuck);
        let ev = evaluate(&s, 0, Some(last), last + SignedDuration::from_hours(24), &p);
        assert!(ev.stuck && ev.reasons[0].starts_with("stuck"), "{:?}", ev.reasons);
    }

    #[test]
    fn canary_routing_is_deterministic_and_close_to_its_fraction() {
        let keys: Vec<String> = (0..20_000).map(|i| format!("BTCUSD@{i}")).collect();
        let routed = routed_keys(keys.iter().map(String::as_str), 0.1);
        let share = routed.len() as f64 / keys.len() as f64;
        assert!((share - 0.1).abs() < 0.01, "{share}");
        assert_eq!(routed, routed_keys(keys.iter().map(String::as_str), 0.1));
        // Growing the fraction only adds keys.
        let more = routed_keys(keys.iter().map(String::as_str), 0.2);
        assert!(routed.is_subset(&more));
        assert!(routed_keys(keys.iter().map(String::as_str), 0.0).is_empty());
        assert_eq!(routed_keys(keys.iter().map(String::as_str), 1.0).len(), keys.len());
    }

    #[test]
    fn the_log_persists_rejects_bad_records_and_survives_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shadow").join("v1.jsonl");
        let t = ShadowTest::at(&path, "m", "v1", Some("v0".into()), Mode::Canary { fraction: 0.5 }).unwrap();
        t.record("a", t0(), Call::new(1, Some(0.6)), Call::new(-1, None)).unwrap();
        t.record("b", t0(), Call::new(0, None), Call::new(1, Some(0.7))).unwrap();
        t.record_outcome("a", t0(), 0.01, None).unwrap();
        assert!(matches!(t.record("a", t0(), Call::new(1, None), Call::new(1, None)), Err(Error::InvalidParam { .. })));
        assert!(matches!(t.record_outcome("zz", t0(), 0.1, None), Err(Error::NotFound { .. })));
        assert!(matches!(t.record_outcome("a", t0(), 0.1, None), Err(Error::InvalidParam { .. })));
        assert!(matches!(t.record_outcome("b", t0(), f64::NAN, None), Err(Error::InvalidParam { .. })));
        assert!(matches!(t.record("c", t0(), Call::new(2, None), Call::new(1, None)), Err(Error::InvalidParam { .. })));
        assert!(matches!(
            t.record("c", t0(), Call::new(1, Some(1.5)), Call::new(1, None)),
            Err(Error::InvalidParam { .. })
        ));
        // A crash mid-append leaves a torn line: reopening ignores it and the next append cuts it.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"type\":\"outc"))
            .unwrap();
        let again = ShadowTest::at(&path, "m", "v1", None, Mode::Shadow).unwrap();
        let (s, pending) = again.samples();
        assert_eq!((s.len(), pending), (1, 1));
        assert_eq!(s[0].shadow, Call::new(-1, None));
        again.record_outcome("b", t0(), -0.02, Some(0.5)).unwrap();
        let third = ShadowTest::at(&path, "m", "v1", None, Mode::Shadow).unwrap();
        assert_eq!(third.samples().0.len(), 2);
        // Garbage in the middle is a typed error naming the line.
        std::fs::write(&path, "{\"type\":\"nope\"}\n").unwrap();
        match ShadowTest::at(&path, "m", "v1", None, Mode::Shadow) {
            Err(Error::CorruptStore { reason, .. }) => assert!(reason.starts_with("line 1"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}

//! The deployment decision: a candidate against the deployed version, both scored
//! on the same CPCV paths.
//!
//! improvement = w_wr·Δwin-rate + w_r·Δavg-R + w_cal·Δcalibration, each Δ a relative change
//! (new − old) / max(|old|, floor). A candidate is *safe* when win rate ≥ 0.50, avg R ≥ 0,
//! calibration ≥ 0.70, no overfitting flag is raised, (with an incumbent) its IC is
//! significantly higher (ΔIC > 0.01, p < 0.05), and it beats every baseline kind the policy
//! names for its label on the same CPCV paths (mean per-path difference of the baseline
//! metric above the margin) — each gate switchable in the [`Policy`].
//! Not safe → KEEP_OLD; improvement ≥ 5 % → DEPLOY; 2–5 % → CANARY; 0–2 % → REVIEW;
//! < 0 → KEEP_OLD. With no deployed version a safe candidate deploys. Boundaries belong to
//! the upper band (exactly 5 % deploys, exactly 2 % goes to canary, exactly 0 to review),
//! compared with a 1e-12 tolerance so that 0.525 vs 0.5 counts as the 5 % it is.

use serde::{Deserialize, Serialize};

use crate::config::Policy;
use crate::validation::compare::{BaselineComparison, IcDifference};
use crate::validation::overfit::OverfitFlags;

/// Tolerance of the band boundaries (floating-point noise in the relative changes).
const BOUNDARY_EPS: f64 = 1e-12;

/// What to do with a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    /// Make it the active version.
    Deploy,
    /// Route a fraction of decisions to it (registered as SHADOW).
    Canary,
    /// Keep the deployed version; the candidate is retired unused.
    KeepOld,
    /// Marginal: an operator decides (registered as SHADOW to collect evidence).
    Review,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Decision::Deploy => "DEPLOY",
            Decision::Canary => "CANARY",
            Decision::KeepOld => "KEEP_OLD",
            Decision::Review => "REVIEW",
        })
    }
}

/// The three metrics the rule weighs, out of sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecisionMetrics {
    /// Share of winning trades.
    pub win_rate: f64,
    /// Average return per unit of risk.
    pub avg_r: f64,
    /// 1 − expected calibration error.
    pub calibration: f64,
}

impl DecisionMetrics {
    /// The means over a CV report's backtest paths (`None` when a metric is missing).
    pub fn from_report(r: &crate::validation::report::CvReport) -> Option<Self> {
        let m = |name: &str| r.metric(name).map(|s| s.mean).filter(|v| v.is_finite());
        Some(DecisionMetrics { win_rate: m("win_rate")?, avg_r: m("avg_r")?, calibration: m("calibration")? })
    }
}

/// Everything the rule looks at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionInput {
    /// The candidate's metrics (`None` when validation could not produce them: unsafe).
    pub candidate: Option<DecisionMetrics>,
    /// The deployed version's metrics on the same paths (`None`: no deployed version).
    pub incumbent: Option<DecisionMetrics>,
    /// The candidate's overfitting flags.
    pub flags: Option<OverfitFlags>,
    /// Candidate IC minus incumbent IC per path, tested (with an incumbent).
    pub ic_difference: Option<IcDifference>,
    /// The candidate against each baseline kind on the same paths.
    #[serde(default)]
    pub baselines: Vec<BaselineComparison>,
}

/// One weighted relative change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// Metric name.
    pub metric: String,
    /// Candidate value.
    pub new: f64,
    /// Incumbent value.
    pub old: f64,
    /// (new − old) / max(|old|, floor).
    pub relative: f64,
    /// Its weight.
    pub weight: f64,
}

/// How one piece of evidence came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Meets its rule.
    Pass,
    /// Fails its rule (a concern when its gate is on).
    Fail,
    /// Could not be measured here (no realised returns, no early stopping, no incumbent).
    NotApplicable,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::NotApplicable => "n/a",
        })
    }
}

/// One piece of evidence the decision weighed: a statistic measured on rows the candidate
/// was not fit on, the rule it must meet (with units) and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// What was measured (`win rate`, `Sharpe gap`, `margin over logreg`).
    pub check: String,
    /// Its value (`None`: not measured).
    pub value: Option<f64>,
    /// The rule, with units (`≥ 0.5`, `≤ 0.5 annualised or p ≥ 0.05`).
    pub rule: String,
    /// Pass, fail or not applicable.
    pub verdict: Verdict,
    /// Whether its gate is on (a failure then makes the candidate unsafe).
    pub gated: bool,
    /// The numbers behind it (the two Sharpes, a p-value, the trial count).
    pub detail: String,
    /// What a failure says in the report's concerns (`None` when another row already says it).
    #[serde(skip)]
    concern: Option<String>,
}

impl Evidence {
    fn new(check: &str, value: Option<f64>, rule: String, pass: Option<bool>, gated: bool, detail: String) -> Self {
        let verdict = match pass {
            Some(true) => Verdict::Pass,
            Some(false) => Verdict::Fail,
            None => Verdict::NotApplicable,
        };
        Evidence { check: check.to_string(), value, rule, verdict, gated, detail, concern: None }
    }

    /// The concern a failure raises.
    fn concern(mut self, text: impl FnOnce() -> String) -> Self {
        if self.verdict == Verdict::Fail {
            self.concern = Some(text());
        }
        self
    }
}

/// The decision with everything that led to it (persisted as the decision report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionReport {
    /// The outcome.
    pub decision: Decision,
    /// Whether the candidate passed every safety gate.
    pub safe: bool,
    /// Weighted relative improvement (`None` without an incumbent).
    pub improvement: Option<f64>,
    /// The weighted components.
    pub components: Vec<Component>,
    /// Why this outcome.
    pub reasons: Vec<String>,
    /// Failed gates and other worries.
    pub concerns: Vec<String>,
    /// Every statistic weighed, with its rule and verdict, in the order the gates apply.
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    /// The inputs.
    pub input: DecisionInput,
}

impl std::fmt::Display for DecisionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.decision)?;
        if let Some(i) = self.improvement {
            write!(f, " (improvement {:+.2}%)", 100.0 * i)?;
        }
        if !self.reasons.is_empty() {
            write!(f, ": {}", self.reasons.join("; "))?;
        }
        if !self.concerns.is_empty() {
            write!(f, " [concerns: {}]", self.concerns.join("; "))?;
        }
        Ok(())
    }
}

/// The weighted relative improvement of `new` over `old` and its components.
pub fn improvement(new: &DecisionMetrics, old: &DecisionMetrics, p: &Policy) -> (f64, Vec<Component>) {
    let rel = |n: f64, o: f64, floor: f64| (n - o) / o.abs().max(floor);
    let comps = vec![
        Component {
            metric: "win_rate".into(),
            new: new.win_rate,
            old: old.win_rate,
            relative: rel(new.win_rate, old.win_rate, p.floor_win_rate),
            weight: p.weight_win_rate,
        },
        Component {
            metric: "avg_r".into(),
            new: new.avg_r,
            old: old.avg_r,
            relative: rel(new.avg_r, old.avg_r, p.floor_avg_r),
            weight: p.weight_avg_r,
        },
        Component {
            metric: "calibration".into(),
            new: new.calibration,
            old: old.calibration,
            relative: rel(new.calibration, old.calibration, p.floor_calibration),
            weight: p.weight_calibration,
        },
    ];
    (comps.iter().map(|c| c.weight * c.relative).sum(), comps)
}

/// Apply the decision rule (see the module docs).
pub fn decide(input: DecisionInput, p: &Policy) -> DecisionReport {
    // Every rule lives in `evidence`; a failing gated row is a concern.
    let evidence = evidence(&input, p);
    let concerns: Vec<String> =
        evidence.iter().filter(|e| e.gated && e.verdict == Verdict::Fail).filter_map(|e| e.concern.clone()).collect();
    let mut reasons = Vec::new();
    let safe = concerns.is_empty();
    let (improvement, components) = match (&input.candidate, &input.incumbent) {
        (Some(c), Some(o)) => {
            let (i, comps) = improvement(c, o, p);
            (Some(i), comps)
        }
        _ => (None, Vec::new()),
    };
    let decision = match (safe, improvement) {
        _ if p.always_deploy => {
            reasons.push("always_deploy: every completed candidate deploys (evidence recorded, not applied)".into());
            Decision::Deploy
        }
        (false, _) => {
            reasons.push("candidate is not safe".to_string());
            Decision::KeepOld
        }
        (true, None) => {
            reasons.push("no deployed version; the candidate is safe".to_string());
            Decision::Deploy
        }
        (true, Some(i)) if i.is_nan() => {
            reasons.push("improvement is undefined".to_string());
            Decision::KeepOld
        }
        (true, Some(i)) => {
            let pct = |v: f64| format!("{:.2}%", 100.0 * v);
            let (d, why) = if i >= p.min_improvement - BOUNDARY_EPS {
                (Decision::Deploy, format!("improvement {} ≥ {}", pct(i), pct(p.min_improvement)))
            } else if i >= p.canary_threshold - BOUNDARY_EPS {
                (
                    Decision::Canary,
                    format!("improvement {} in [{}, {})", pct(i), pct(p.canary_threshold), pct(p.min_improvement)),
                )
            } else if i >= -BOUNDARY_EPS {
                (Decision::Review, format!("improvement {} in [0, {})", pct(i), pct(p.canary_threshold)))
            } else {
                (Decision::KeepOld, format!("improvement {} < 0", pct(i)))
            };
            reasons.push(why);
            d
        }
    };
    DecisionReport { decision, safe, improvement, components, reasons, concerns, input, evidence }
}

/// The evidence table of `input` under policy `p` (see [`Evidence`]): every rule of the
/// safety gates, applied once. Missing inputs fail where the gate needs them (no candidate
/// metrics, no overfitting flags, an untestable IC difference); checks that cannot apply to
/// this candidate (no early stopping, no realised returns, no seed study) are `n/a`.
pub fn evidence(input: &DecisionInput, p: &Policy) -> Vec<Evidence> {
    let mut out = Vec::new();
    let c = input.candidate.as_ref();
    let paths = || "mean over the CPCV test paths".to_string();
    // A floor: fails on a missing candidate (said once, by the first row) or NaN.
    let mut floor = |check: &str, short: &str, v: Option<f64>, min: f64, unit: &str, first: bool| {
        let e = Evidence::new(
            check,
            v,
            format!("≥ {min} ({unit})"),
            Some(v.is_some_and(|v| !v.is_nan() && v >= min)),
            true,
            paths(),
        );
        out.push(match v {
            Some(v) => e.concern(|| format!("{short} {v:.4} < {min}")),
            None if first => e.concern(|| "validation produced no win rate / avg R / calibration".into()),
            None => e,
        });
    };
    floor("win rate", "win rate", c.map(|c| c.win_rate), p.safe_min_win_rate, "share of trades", true);
    floor("average R", "avg R", c.map(|c| c.avg_r), p.safe_min_avg_r, "return per unit of entry risk", false);
    floor(
        "calibration",
        "calibration",
        c.map(|c| c.calibration),
        p.safe_min_calibration,
        "1 − expected calibration error",
        false,
    );
    let f = input.flags.as_ref();
    let gated = p.gate_overfitting;
    out.push(
        Evidence::new(
            "Sharpe gap",
            f.and_then(|f| f.sharpe_gap),
            format!("≤ {} annualised, or p ≥ {}", p.overfit_max_sharpe_gap, p.significance),
            f.and_then(|f| f.sharpe_gap.map(|_| !f.sharpe_gap_flag)),
            gated,
            match f.and_then(|f| f.sharpe_gap_p) {
                Some(pv) => format!("selection slices minus test paths; one-sided p = {pv:.3}"),
                None => "no early-stopping slice (nothing selected on held-out rows) or no returns".into(),
            },
        )
        .concern(|| {
            format!(
                "overfitting: selection-slice minus test-path Sharpe {:.3} (annualised, p = {})",
                f.and_then(|f| f.sharpe_gap).unwrap_or(0.0),
                fmt_opt(f.and_then(|f| f.sharpe_gap_p))
            )
        }),
    );
    // Without flags the overfitting checks did not run: the IC row fails and says so.
    out.push(
        Evidence::new(
            "IC",
            f.and_then(|f| f.ic),
            format!("≥ {} (Spearman, score vs realised return)", p.overfit_min_ic),
            Some(f.is_some_and(|f| !f.weak_ic)),
            gated,
            paths(),
        )
        .concern(|| match f {
            Some(f) => format!("overfitting: out-of-sample IC {} too weak", fmt_opt(f.ic)),
            None => "overfitting checks did not run".into(),
        }),
    );
    let var = f.and_then(|f| f.seed_variance);
    out.push(
        Evidence::new(
            "seed variance",
            var,
            format!("≤ {} (primary score)", p.overfit_max_seed_variance),
            f.and_then(|f| f.seed_variance.map(|_| !f.unstable)),
            gated,
            if var.is_some() { "across seeds".into() } else { "no seed study ran".into() },
        )
        .concern(|| format!("overfitting: seed variance {} too high", fmt_opt(var))),
    );
    let dsr = f.and_then(|f| f.deflated_sharpe);
    let trials = f.map_or(1, |f| f.trials.max(1));
    out.push(
        Evidence::new(
            "deflated Sharpe ratio",
            dsr,
            format!("≥ {} (probability the Sharpe is not luck)", 1.0 - p.significance),
            f.and_then(|f| f.deflated_sharpe.map(|_| !f.weak_sharpe)),
            gated,
            if dsr.is_some() {
                format!("paths' PnL, one trade per horizon, {trials} trial(s)")
            } else {
                "no realised returns".into()
            },
        )
        .concern(|| {
            format!(
                "deflated Sharpe ratio {} < {} over {trials} trial(s): the paths' Sharpe may be luck",
                fmt_opt(dsr),
                1.0 - p.significance
            )
        }),
    );
    if input.incumbent.is_some() {
        let d = input.ic_difference.as_ref();
        out.push(
            Evidence::new(
                "IC over the deployed version",
                d.map(|d| d.test.mean),
                "> 0.01 with p < 0.05 (paired t-test over paths)".into(),
                Some(d.is_some_and(|d| d.significant)),
                p.gate_significance,
                d.map_or("could not be tested".into(), |d| format!("p = {:.3}", d.test.p_value)),
            )
            .concern(|| match d {
                Some(d) => {
                    format!("IC not significantly better: mean ΔIC {:+.4}, p = {:.3}", d.test.mean, d.test.p_value)
                }
                None => "IC difference against the deployed version could not be tested".into(),
            }),
        );
    }
    for b in &input.baselines {
        out.push(
            Evidence::new(
                &format!("margin over {}", b.baseline),
                b.test.map(|t| t.mean),
                format!(
                    "> {} ({}, mean per-path difference){}",
                    b.min_delta,
                    b.metric,
                    b.alpha.map_or(String::new(), |a| format!(" with p < {a}"))
                ),
                Some(b.error.is_none() && b.beaten),
                p.gate_baseline,
                match &b.error {
                    Some(e) => format!("not scored: {e}"),
                    None => format!(
                        "candidate {} vs {}; one-sided p = {}",
                        fmt_opt(b.candidate),
                        fmt_opt(b.baseline_score),
                        fmt_opt(b.p_better)
                    ),
                },
            )
            .concern(|| match &b.error {
                Some(why) => format!("baseline {} could not be scored: {why}", b.baseline),
                None => format!(
                    "does not beat baseline {} on {}: {} vs {} (mean per-path margin {:+.4}, needs > {}{})",
                    b.baseline,
                    b.metric,
                    fmt_opt(b.candidate),
                    fmt_opt(b.baseline_score),
                    b.test.map_or(f64::NAN, |t| t.mean),
                    b.min_delta,
                    match (b.alpha, b.p_better) {
                        (Some(a), Some(pv)) => format!(" with one-sided p < {a}; p = {pv:.3}"),
                        _ => String::new(),
                    }
                ),
            }),
        );
    }
    out
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("n/a".to_string(), |v| format!("{v:.4}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::compare::TestResult;

    fn m(win_rate: f64, avg_r: f64, calibration: f64) -> DecisionMetrics {
        DecisionMetrics { win_rate, avg_r, calibration }
    }
    fn clean() -> OverfitFlags {
        OverfitFlags {
            sharpe_gap: Some(0.1),
            sharpe_gap_p: Some(0.3),
            deflated_sharpe: Some(0.99),
            trials: 1,
            weak_sharpe: false,
            sharpe_gap_flag: false,
            ic: Some(0.05),
            weak_ic: false,
            seed_variance: None,
            unstable: false,
        }
    }
    fn sig(significant: bool) -> IcDifference {
        IcDifference { test: TestResult { mean: 0.02, statistic: 3.0, p_value: 0.01, n: 5 }, significant }
    }
    fn run(new: DecisionMetrics, old: Option<DecisionMetrics>) -> DecisionReport {
        let input = DecisionInput {
            candidate: Some(new),
            incumbent: old,
            flags: Some(clean()),
            ic_difference: Some(sig(true)),
            baselines: Vec::new(),
        };
        decide(input, &Policy::default())
    }
    /// A candidate whose only change is win rate `0.5·(1 + r/0.35)`: improvement = r exactly.
    fn by(r: f64) -> DecisionReport {
        run(m(0.5 * (1.0 + r / 0.35), 0.2, 0.8), Some(m(0.5, 0.2, 0.8)))
    }

    #[test]
    fn bands_and_their_boundaries() {
        assert_eq!(by(0.08).decision, Decision::Deploy);
        assert_eq!(by(0.05).decision, Decision::Deploy, "exactly 5 % deploys");
        assert_eq!(by(0.0499).decision, Decision::Canary);
        assert_eq!(by(0.02).decision, Decision::Canary, "exactly 2 % is canary");
        assert_eq!(by(0.0199).decision, Decision::Review);
        assert_eq!(by(0.0).decision, Decision::Review, "exactly 0 is review");
        assert_eq!(by(-0.001).decision, Decision::KeepOld);
        let r = by(0.05);
        assert!((r.improvement.unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(r.components.len(), 3);
    }

    #[test]
    fn the_weighted_formula_with_floors() {
        // avg R 0.01 → 0.02 with floor 0.05: +0.2 relative, not +100 %.
        let (i, c) = improvement(&m(0.55, 0.02, 0.84), &m(0.5, 0.01, 0.8), &Policy::default());
        let want = 0.35 * (0.05 / 0.5) + 0.35 * (0.01 / 0.05) + 0.30 * (0.04 / 0.8);
        assert!((i - want).abs() < 1e-12, "{i} vs {want}");
        assert!((c[1].relative - 0.2).abs() < 1e-12);
    }

    #[test]
    fn unsafe_candidates_keep_the_old_version() {
        for bad in [m(0.49, 0.3, 0.9), m(0.6, -0.01, 0.9), m(0.6, 0.3, 0.69)] {
            let r = run(bad, Some(m(0.5, 0.0, 0.7)));
            assert_eq!(r.decision, Decision::KeepOld, "{r}");
            assert!(!r.safe && r.concerns.len() == 1, "{r}");
        }
        let mut flags = clean();
        flags.weak_ic = true;
        let input = DecisionInput {
            candidate: Some(m(0.6, 0.3, 0.9)),
            incumbent: None,
            flags: Some(flags),
            ic_difference: None,
            baselines: Vec::new(),
        };
        assert_eq!(decide(input.clone(), &Policy::default()).decision, Decision::KeepOld);
        let lax = Policy { gate_overfitting: false, ..Policy::default() };
        assert_eq!(decide(input, &lax).decision, Decision::Deploy);
        let input = DecisionInput {
            candidate: Some(m(0.6, 0.3, 0.9)),
            incumbent: Some(m(0.5, 0.1, 0.8)),
            flags: Some(clean()),
            ic_difference: Some(sig(false)),
            baselines: Vec::new(),
        };
        let r = decide(input, &Policy::default());
        assert_eq!(r.decision, Decision::KeepOld);
        assert!(r.concerns[0].contains("IC not significantly better"), "{r}");
        let missing = DecisionInput {
            candidate: None,
            incumbent: None,
            flags: Some(clean()),
            ic_difference: None,
            baselines: Vec::new(),
        };
        assert_eq!(decide(missing, &Policy::default()).decision, Decision::KeepOld);
    }

    #[test]
    fn first_deployment() {
        let r = run(m(0.52, 0.01, 0.75), None);
        assert_eq!(r.decision, Decision::Deploy);
        assert!(r.improvement.is_none() && r.reasons[0].contains("no deployed version"));
        assert_eq!(run(m(0.45, 0.01, 0.75), None).decision, Decision::KeepOld);
    }

    #[test]
    fn a_candidate_must_beat_its_baselines() {
        let input = |cand: [f64; 5]| DecisionInput {
            candidate: Some(m(0.55, 0.1, 0.8)),
            incumbent: None,
            flags: Some(clean()),
            ic_difference: None,
            baselines: vec![
                BaselineComparison::of("logreg", "ic_spearman", &cand, &[0.02, 0.03, 0.02, 0.01, 0.03], 0.0, None)
                    .unwrap(),
            ],
        };
        let wins = decide(input([0.05, 0.04, 0.06, 0.05, 0.07]), &Policy::default());
        assert_eq!(wins.decision, Decision::Deploy, "{wins}");
        let loses = decide(input([0.01, 0.02, 0.0, 0.01, 0.02]), &Policy::default());
        assert_eq!(loses.decision, Decision::KeepOld);
        assert!(loses.concerns[0].contains("does not beat baseline logreg on ic_spearman"), "{loses}");
        // The gate can be switched off, and a baseline that could not be scored is a concern.
        let lax = Policy { gate_baseline: false, ..Policy::default() };
        assert_eq!(decide(input([0.01, 0.02, 0.0, 0.01, 0.02]), &lax).decision, Decision::Deploy);
        let mut unscored = input([0.05, 0.04, 0.06, 0.05, 0.07]);
        unscored.baselines = vec![BaselineComparison::failed("forest", "ic_spearman", "over its row limit")];
        let r = decide(unscored, &Policy::default());
        assert!(!r.safe && r.concerns[0].contains("forest could not be scored"), "{r}");
    }

    #[test]
    fn the_evidence_table_lists_every_check_with_its_verdict() {
        let mut flags = clean();
        flags.weak_sharpe = true;
        flags.deflated_sharpe = Some(0.7);
        flags.trials = 10;
        flags.sharpe_gap = None;
        flags.sharpe_gap_p = None;
        let input = DecisionInput {
            candidate: Some(m(0.55, -0.1, 0.8)),
            incumbent: None,
            flags: Some(flags),
            ic_difference: None,
            baselines: Vec::new(),
        };
        let r = decide(input, &Policy::default());
        let by = |name: &str| r.evidence.iter().find(|e| e.check == name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(by("win rate").verdict, Verdict::Pass);
        assert_eq!(by("average R").verdict, Verdict::Fail);
        assert_eq!(by("Sharpe gap").verdict, Verdict::NotApplicable, "no selection slice");
        assert_eq!(by("seed variance").verdict, Verdict::NotApplicable);
        let dsr = by("deflated Sharpe ratio");
        assert!(dsr.verdict == Verdict::Fail && dsr.detail.contains("10 trial"), "{dsr:?}");
        assert!(r.evidence.iter().all(|e| e.check != "IC over the deployed version"), "no incumbent");
        assert_eq!(r.decision, Decision::KeepOld);
        assert!(r.concerns.iter().any(|c| c.contains("deflated Sharpe ratio 0.7000 < 0.99")), "{r}");
        // With the overfitting gate off its evidence is still shown, marked as not gating.
        let lax = Policy { gate_overfitting: false, safe_min_avg_r: -1.0, ..Policy::default() };
        let input = DecisionInput {
            candidate: Some(m(0.55, -0.1, 0.8)),
            incumbent: None,
            flags: Some(flags),
            ic_difference: None,
            baselines: Vec::new(),
        };
        let r = decide(input, &lax);
        assert_eq!(r.decision, Decision::Deploy, "{r}");
        let dsr = r.evidence.iter().find(|e| e.check == "deflated Sharpe ratio").unwrap();
        assert!(dsr.verdict == Verdict::Fail && !dsr.gated);
    }
}

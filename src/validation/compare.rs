//! Statistics that compare models' out-of-sample quality: the mean-IC t-test (plain and Newey–West), the paired IC-difference test used
//! by the deployment gate, and Diebold–Mariano with the Harvey–Leybourne–Newbold correction.
//!
//! Conventions (each checked against scipy/statsmodels/numpy in
//! `tests/validation_metrics.rs`): sample standard deviations use ddof = 1; p-values are
//! two-sided; Student-t p-values use `n − 1` degrees of freedom; the Newey–West test uses
//! the Bartlett kernel with `L = ⌊4 (n/100)^{2/9}⌋` lags unless given, autocovariances
//! divided by `n`, and a normal p-value (statsmodels `OLS(x, 1).fit(cov_type="HAC")`).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use crate::error::{Error, Result};
use crate::validation::metrics::{check_finite, mean_std};

/// A test statistic with its two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// Sample mean of the tested series.
    pub mean: f64,
    /// The statistic.
    pub statistic: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Observations.
    pub n: usize,
}

/// Two-sided p-value of a t statistic with `df` degrees of freedom.
pub fn t_p_value(t: f64, df: f64) -> f64 {
    if t.is_nan() {
        return f64::NAN;
    }
    let dist = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    2.0 * dist.cdf(-t.abs())
}

fn normal_p_value(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    2.0 * Normal::standard().cdf(-z.abs())
}

/// One-sample t-test of `mean(x) = mu` (scipy `ttest_1samp`).
pub fn t_test(x: &[f64], mu: f64) -> Result<TestResult> {
    check_finite(x, 2, "t_test")?;
    let (m, s) = mean_std(x);
    let n = x.len();
    let t = (m - mu) / (s / (n as f64).sqrt());
    Ok(TestResult { mean: m, statistic: t, p_value: t_p_value(t, n as f64 - 1.0), n })
}

/// Is the mean information coefficient different from zero? (t-test over IC observations,
/// e.g. per-path or per-period ICs.)
pub fn mean_ic_test(ic: &[f64]) -> Result<TestResult> {
    t_test(ic, 0.0)
}

/// Newey–West's default lag count `⌊4 (n/100)^{2/9}⌋`.
pub fn newey_west_lags(n: usize) -> usize {
    (4.0 * (n as f64 / 100.0).powf(2.0 / 9.0)).floor() as usize
}

/// Mean test with a Newey–West (Bartlett) HAC standard error, for autocorrelated series
/// such as overlapping-horizon ICs.
pub fn newey_west_mean_test(x: &[f64], lags: Option<usize>) -> Result<TestResult> {
    check_finite(x, 2, "newey_west")?;
    let n = x.len();
    let lags = lags.unwrap_or_else(|| newey_west_lags(n)).min(n - 1);
    let m = x.iter().sum::<f64>() / n as f64;
    let d: Vec<f64> = x.iter().map(|v| v - m).collect();
    let gamma = |l: usize| d[l..].iter().zip(&d[..n - l]).map(|(a, b)| a * b).sum::<f64>() / n as f64;
    let mut s = gamma(0);
    for l in 1..=lags {
        s += 2.0 * (1.0 - l as f64 / (lags as f64 + 1.0)) * gamma(l);
    }
    let z = m / (s / n as f64).sqrt();
    Ok(TestResult { mean: m, statistic: z, p_value: normal_p_value(z), n })
}

/// When a candidate's IC improvement counts (by default Δ > 0.01 with p < 0.05).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IcSignificance {
    /// Minimum mean IC difference.
    pub min_delta: f64,
    /// Maximum two-sided p-value.
    pub alpha: f64,
}

impl Default for IcSignificance {
    fn default() -> Self {
        IcSignificance { min_delta: 0.01, alpha: 0.05 }
    }
}

/// Outcome of the paired IC-difference test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IcDifference {
    /// Mean of `new − old` and its paired t-test (scipy `ttest_rel(new, old)`).
    pub test: TestResult,
    /// `mean > min_delta && p < alpha`.
    pub significant: bool,
}

/// Paired t-test of two models' ICs measured on the same observations (e.g. CPCV paths).
pub fn ic_difference(new: &[f64], old: &[f64], rule: IcSignificance) -> Result<IcDifference> {
    if new.len() != old.len() {
        return Err(Error::Shape { what: "ic_difference: old ICs".into(), expected: new.len(), got: old.len() });
    }
    let d: Vec<f64> = new.iter().zip(old).map(|(a, b)| a - b).collect();
    let test = t_test(&d, 0.0)?;
    Ok(IcDifference { test, significant: test.mean > rule.min_delta && test.p_value < rule.alpha })
}

/// A candidate against a baseline kind on the same CPCV paths (the baseline gate's evidence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineComparison {
    /// The baseline kind (`logreg`).
    pub baseline: String,
    /// The metric compared.
    pub metric: String,
    /// The candidate's mean over the paths.
    pub candidate: Option<f64>,
    /// The baseline's mean over the same paths.
    pub baseline_score: Option<f64>,
    /// Per path, how much better the candidate is: candidate − baseline, or baseline −
    /// candidate for an error metric (log-loss, RMSE, …), so that positive always favours
    /// the candidate.
    pub per_path: Vec<f64>,
    /// Paired t-test of `per_path` against 0 (scipy `ttest_rel`; two-sided p).
    pub test: Option<TestResult>,
    /// One-sided p-value of "the candidate is better" (half the two-sided p when the mean
    /// favours the candidate).
    pub p_better: Option<f64>,
    /// Margin the mean of `per_path` had to exceed.
    pub min_delta: f64,
    /// The one-sided p-value it had to fall below, when significance is required.
    pub alpha: Option<f64>,
    /// Whether the candidate beat the baseline.
    pub beaten: bool,
    /// Why there is no comparison (the baseline could not be scored), if so.
    pub error: Option<String>,
}

impl BaselineComparison {
    /// Compare per-path scores `candidate` and `baseline` of `metric` (same paths, same
    /// order): beaten when the mean signed difference exceeds `min_delta` and, with `alpha`,
    /// the one-sided paired t-test gives p below it. A path where either score is missing
    /// is left out; fewer than 2 paths left is an error.
    pub fn of(
        baseline: &str,
        metric: &str,
        candidate: &[f64],
        base: &[f64],
        min_delta: f64,
        alpha: Option<f64>,
    ) -> Result<BaselineComparison> {
        if candidate.len() != base.len() {
            return Err(Error::Shape { what: "baseline paths".into(), expected: candidate.len(), got: base.len() });
        }
        let higher = crate::validation::report::Scores::higher_is_better(metric).ok_or_else(|| {
            Error::param("baseline_metric", format!("`{metric}` is not a metric with a better direction"))
        })?;
        let pairs: Vec<(f64, f64)> =
            candidate.iter().zip(base).map(|(&c, &b)| (c, b)).filter(|(c, b)| c.is_finite() && b.is_finite()).collect();
        let per_path: Vec<f64> = pairs.iter().map(|&(c, b)| if higher { c - b } else { b - c }).collect();
        let mean = |v: &mut dyn Iterator<Item = f64>, n: usize| (n > 0).then(|| v.sum::<f64>() / n as f64);
        let test = t_test(&per_path, 0.0)?;
        let p_better = if test.mean > 0.0 { test.p_value / 2.0 } else { 1.0 - test.p_value / 2.0 };
        let beaten = test.mean > min_delta && alpha.is_none_or(|a| p_better < a);
        Ok(BaselineComparison {
            baseline: baseline.to_string(),
            metric: metric.to_string(),
            candidate: mean(&mut pairs.iter().map(|p| p.0), pairs.len()),
            baseline_score: mean(&mut pairs.iter().map(|p| p.1), pairs.len()),
            per_path,
            test: Some(test),
            p_better: Some(p_better),
            min_delta,
            alpha,
            beaten,
            error: None,
        })
    }

    /// The record of a baseline that could not be scored (the gate counts it as not beaten).
    pub fn failed(baseline: &str, metric: &str, why: impl Into<String>) -> BaselineComparison {
        BaselineComparison {
            baseline: baseline.to_string(),
            metric: metric.to_string(),
            candidate: None,
            baseline_score: None,
            per_path: Vec::new(),
            test: None,
            p_better: None,
            min_delta: 0.0,
            alpha: None,
            beaten: false,
            error: Some(why.into()),
        }
    }
}

/// Loss applied to forecast errors in [`diebold_mariano`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// e².
    Squared,
    /// |e|.
    Absolute,
}

/// Diebold–Mariano test of equal accuracy of two forecasts' errors `e1`, `e2` at horizon
/// `h`, with the Harvey–Leybourne–Newbold small-sample correction and a Student-t(n − 1)
/// p-value. Negative statistics favour the first forecast.
pub fn diebold_mariano(e1: &[f64], e2: &[f64], h: usize, loss: Loss) -> Result<TestResult> {
    if e1.len() != e2.len() {
        return Err(Error::Shape { what: "diebold_mariano: second errors".into(), expected: e1.len(), got: e2.len() });
    }
    if h == 0 {
        return Err(Error::param("h", "forecast horizon must be >= 1"));
    }
    check_finite(e1, 3, "diebold_mariano e1")?;
    check_finite(e2, 3, "diebold_mariano e2")?;
    let f = |e: f64| match loss {
        Loss::Squared => e * e,
        Loss::Absolute => e.abs(),
    };
    let d: Vec<f64> = e1.iter().zip(e2).map(|(a, b)| f(*a) - f(*b)).collect();
    let n = d.len();
    let nf = n as f64;
    let m = d.iter().sum::<f64>() / nf;
    let gamma = |k: usize| d[k..].iter().zip(&d[..n - k]).map(|(a, b)| (a - m) * (b - m)).sum::<f64>() / nf;
    let mut v = gamma(0);
    for k in 1..h.min(n) {
        v += 2.0 * gamma(k);
    }
    let dm = m / (v / nf).sqrt();
    let hf = h as f64;
    let hln = ((nf + 1.0 - 2.0 * hf + hf * (hf - 1.0) / nf) / nf).sqrt();
    let stat = dm * hln;
    Ok(TestResult { mean: m, statistic: stat, p_value: t_p_value(stat, nf - 1.0), n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_baseline_comparison_is_signed_by_the_metric_and_gated_both_ways() {
        let cand = [0.05, 0.04, 0.06, 0.05, 0.07];
        let base = [0.02, 0.03, 0.02, 0.01, 0.03];
        let c = BaselineComparison::of("logreg", "ic_spearman", &cand, &base, 0.0, None).unwrap();
        assert!(c.beaten && c.per_path[0] > 0.0 && c.error.is_none(), "{c:?}");
        assert!((c.candidate.unwrap() - 0.054).abs() < 1e-12);
        // The same numbers as an error metric: the candidate's are larger, so it loses.
        let c = BaselineComparison::of("logreg", "log_loss", &cand, &base, 0.0, None).unwrap();
        assert!(!c.beaten && c.per_path[0] < 0.0 && c.p_better.unwrap() > 0.5, "{c:?}");
        // A margin it cannot clear, then a significance level it clears and one it does not.
        assert!(!BaselineComparison::of("logreg", "ic_spearman", &cand, &base, 0.05, None).unwrap().beaten);
        assert!(BaselineComparison::of("logreg", "ic_spearman", &cand, &base, 0.0, Some(0.05)).unwrap().beaten);
        // Better on average (+0.01) but by noise: beaten without a significance level only.
        let noisy = [0.06, -0.01, 0.08, 0.0, 0.03];
        assert!(BaselineComparison::of("logreg", "ic_spearman", &noisy, &base, 0.0, None).unwrap().beaten);
        let c = BaselineComparison::of("logreg", "ic_spearman", &noisy, &base, 0.0, Some(0.05)).unwrap();
        assert!(!c.beaten && c.p_better.unwrap() > 0.2, "{c:?}");
        // Missing paths are dropped pairwise; shapes and names are checked.
        let c = BaselineComparison::of("logreg", "auc", &[0.6, f64::NAN, 0.62], &[0.5, 0.5, 0.51], 0.0, None).unwrap();
        assert_eq!(c.per_path.len(), 2);
        assert!(BaselineComparison::of("logreg", "auc", &[0.6], &[0.5, 0.5], 0.0, None).is_err());
        assert!(BaselineComparison::of("logreg", "max_drawdown", &cand, &base, 0.0, None).is_err());
        assert!(BaselineComparison::of("logreg", "auc", &[0.6], &[0.5], 0.0, None).is_err(), "one path is no test");
        assert!(!BaselineComparison::failed("forest", "auc", "too large").beaten);
    }

    #[test]
    fn t_test_known_value() {
        // scipy.stats.ttest_1samp([1, 2, 3, 4, 6], 0): t = 3.7199244398022175, p = 0.020475874420910672
        let r = t_test(&[1.0, 2.0, 3.0, 4.0, 6.0], 0.0).unwrap();
        assert!((r.statistic - 3.7199244398022175).abs() < 1e-12);
        assert!((r.p_value - 0.020475874420910672).abs() < 1e-12);
        assert!(t_test(&[1.0], 0.0).is_err());
        assert!(t_test(&[1.0, f64::NAN], 0.0).is_err());
    }

    #[test]
    fn ic_difference_gate() {
        let old = [0.02, 0.03, 0.01, 0.02, 0.025];
        let new = [0.05, 0.06, 0.045, 0.055, 0.05];
        let d = ic_difference(&new, &old, IcSignificance::default()).unwrap();
        assert!(d.significant && d.test.mean > 0.01);
        let d = ic_difference(&old, &new, IcSignificance::default()).unwrap();
        assert!(!d.significant);
    }
}

//! Overfitting diagnostics: the Probabilistic and Deflated
//! Sharpe Ratios (Bailey & López de Prado 2012, 2014), the Probability of Backtest
//! Overfitting via combinatorially symmetric cross-validation (Bailey, Borwein, López de
//! Prado & Zhu 2015), seed stability and the flags the deployment gate reads.
//!
//! Conventions: Sharpe ratios here are per period (not annualised), `mean / std` with
//! ddof = 1; skewness and kurtosis are the biased sample moments (scipy's `skew`,
//! `kurtosis(fisher=False)` defaults), kurtosis *not* in excess; the variance of trial
//! Sharpes in the DSR uses ddof = 1. `tests/validation_metrics.rs` checks these against a
//! scipy/numpy fixture.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::error::{Error, Result};
use crate::validation::cpcv::combinations;
use crate::validation::metrics::{average_ranks, check_finite, mean_std};
use crate::validation::split::groups;

const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

fn moments(x: &[f64]) -> (f64, f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let m2 = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n;
    let m3 = x.iter().map(|v| (v - m).powi(3)).sum::<f64>() / n;
    let m4 = x.iter().map(|v| (v - m).powi(4)).sum::<f64>() / n;
    (m, m3 / m2.powf(1.5), m4 / (m2 * m2))
}

/// Per-period Sharpe ratio `mean / std (ddof = 1)`.
pub fn sharpe_ratio(returns: &[f64]) -> Result<f64> {
    check_finite(returns, 2, "sharpe_ratio")?;
    let (m, s) = mean_std(returns);
    Ok(m / s)
}

/// Probability that the true Sharpe ratio exceeds `benchmark` (both per period), given the
/// sample's length, skewness and kurtosis.
pub fn probabilistic_sharpe(returns: &[f64], benchmark: f64) -> Result<f64> {
    check_finite(returns, 3, "probabilistic_sharpe")?;
    let sr = sharpe_ratio(returns)?;
    let (_, skew, kurt) = moments(returns);
    let n = returns.len() as f64;
    let z = (sr - benchmark) * (n - 1.0).sqrt() / (1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr).sqrt();
    Ok(Normal::standard().cdf(z))
}

/// The expected maximum Sharpe ratio of `n_trials` unskilled trials whose Sharpe ratios have
/// variance `var` — the benchmark the Deflated Sharpe Ratio tests against.
pub fn expected_max_sharpe(var: f64, n_trials: usize) -> f64 {
    let nd = Normal::standard();
    let n = n_trials as f64;
    var.sqrt()
        * ((1.0 - EULER_GAMMA) * nd.inverse_cdf(1.0 - 1.0 / n)
            + EULER_GAMMA * nd.inverse_cdf(1.0 - 1.0 / (n * std::f64::consts::E)))
}

/// Deflated Sharpe Ratio: the PSR of `returns` against the expected maximum Sharpe of the
/// `trial_sharpes` (per-period Sharpe ratios of every configuration tried, this one included).
pub fn deflated_sharpe(returns: &[f64], trial_sharpes: &[f64]) -> Result<f64> {
    check_finite(trial_sharpes, 2, "trial_sharpes")?;
    let (_, s) = mean_std(trial_sharpes);
    probabilistic_sharpe(returns, expected_max_sharpe(s * s, trial_sharpes.len()))
}

/// Result of [`pbo`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pbo {
    /// Share of combinations whose in-sample winner ranks at or below the out-of-sample median
    /// (logit ≤ 0).
    pub pbo: f64,
    /// The logit `ln(ω / (1 − ω))` of each combination, `ω` = the winner's out-of-sample rank
    /// / (strategies + 1), in lexicographic order of the in-sample halves.
    pub logits: Vec<f64>,
}

/// Probability of Backtest Overfitting by CSCV. `returns[t][s]` is strategy `s`'s return in
/// period `t`; the periods are cut into `n_blocks` (even) contiguous blocks (the first
/// `n_blocks − 1` of `⌊T/n_blocks⌋` rows, the last takes the rest); each choice of half the
/// blocks is in-sample, the rest out-of-sample; performance = per-period Sharpe ratio; the
/// in-sample winner is the first strategy with the highest Sharpe; out-of-sample ranks are
/// average ranks (1 = worst).
pub fn pbo(returns: &[Vec<f64>], n_blocks: usize) -> Result<Pbo> {
    let t = returns.len();
    let s = returns.first().map_or(0, Vec::len);
    if s < 2 {
        return Err(Error::param("pbo", "needs at least 2 strategies"));
    }
    if let Some(r) = returns.iter().position(|row| row.len() != s) {
        return Err(Error::Shape { what: format!("pbo returns row {r}"), expected: s, got: returns[r].len() });
    }
    if n_blocks < 2 || n_blocks % 2 == 1 {
        return Err(Error::param("n_blocks", format!("must be even and >= 2, got {n_blocks}")));
    }
    if t / n_blocks < 2 {
        return Err(Error::param("n_blocks", format!("{t} periods cannot fill {n_blocks} blocks of >= 2")));
    }
    let blocks = groups(t, n_blocks)?;
    let block = |b: usize| blocks[b].clone();
    let sharpe_of = |blocks: &[usize], strat: usize| {
        let v: Vec<f64> = blocks.iter().flat_map(|&b| block(b)).map(|r| returns[r][strat]).collect();
        let (m, sd) = mean_std(&v);
        m / sd
    };
    let mut logits = Vec::new();
    for is in combinations(n_blocks, n_blocks / 2) {
        let oos: Vec<usize> = (0..n_blocks).filter(|b| !is.contains(b)).collect();
        let is_perf: Vec<f64> = (0..s).map(|j| sharpe_of(&is, j)).collect();
        let best = (0..s).fold(0, |b, j| if is_perf[j] > is_perf[b] { j } else { b });
        let oos_perf: Vec<f64> = (0..s).map(|j| sharpe_of(&oos, j)).collect();
        let omega = average_ranks(&oos_perf)[best] / (s as f64 + 1.0);
        logits.push((omega / (1.0 - omega)).ln());
    }
    let pbo = logits.iter().filter(|&&l| l <= 0.0).count() as f64 / logits.len() as f64;
    Ok(Pbo { pbo, logits })
}

/// Mean and variance (ddof = 1) of a score over seeds.
pub fn seed_stability(scores: &[f64]) -> Result<(f64, f64)> {
    check_finite(scores, 2, "seed scores")?;
    let (m, s) = mean_std(scores);
    Ok((m, s * s))
}

/// The limits of the overfitting flags (units stated per field).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OverfitThresholds {
    /// Flag when the Sharpe model selection saw exceeds the test paths' Sharpe by more than
    /// this, both annualised, and significantly (at `alpha`).
    pub max_sharpe_gap: f64,
    /// Flag a mean out-of-sample Spearman IC below this as too weak.
    pub min_ic: f64,
    /// Flag a score variance across seeds above this as unstable (std 0.01).
    pub max_seed_variance: f64,
    /// Seeds for the stability check.
    pub seeds: usize,
    /// Significance level: of the Sharpe gap's one-sided test, and the Deflated Sharpe Ratio
    /// must reach `1 − alpha`.
    pub alpha: f64,
}

impl Default for OverfitThresholds {
    fn default() -> Self {
        OverfitThresholds { max_sharpe_gap: 0.5, min_ic: 0.03, max_seed_variance: 1e-4, seeds: 10, alpha: 0.01 }
    }
}

/// The Sharpe ratio model selection saw against the one the CPCV paths earned, annualised,
/// with the standard error of their difference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SharpeGap {
    /// Mean annualised Sharpe on the early-stopping (selection) slices of the splits.
    pub selection: f64,
    /// Mean annualised Sharpe of the CPCV test paths.
    pub test: f64,
    /// Standard error of `selection − test` (annualised).
    pub se: f64,
}

impl SharpeGap {
    /// One-sided p-value of "selection saw a higher Sharpe than the test paths earned".
    pub fn p_value(&self) -> f64 {
        let z = (self.selection - self.test) / self.se;
        if z.is_finite() { 1.0 - Normal::standard().cdf(z) } else { f64::NAN }
    }
}

/// The standard error of an annualised Sharpe ratio measured on `n` non-overlapping trades,
/// `periods` trades per year: √periods · √((1 + SR²/2) / n) with SR per trade (Lo 2002).
pub fn annualised_sharpe_se(sharpe: f64, n: f64, periods: f64) -> f64 {
    let per_trade = sharpe / periods.sqrt();
    periods.sqrt() * ((1.0 + per_trade * per_trade / 2.0) / n).sqrt()
}

/// The overfitting flags of one cross-validation. Every statistic comes from rows the judged
/// fits were not trained on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OverfitFlags {
    /// Selection-slice Sharpe − CPCV test Sharpe, annualised (`None` without realised returns
    /// or when the model selects nothing on held-out rows, i.e. no early stopping).
    pub sharpe_gap: Option<f64>,
    /// Its one-sided p-value.
    #[serde(default)]
    pub sharpe_gap_p: Option<f64>,
    /// `sharpe_gap > max_sharpe_gap` with `sharpe_gap_p < alpha`.
    pub sharpe_gap_flag: bool,
    /// Mean out-of-sample Spearman IC.
    pub ic: Option<f64>,
    /// `ic < min_ic` (or no IC could be computed).
    pub weak_ic: bool,
    /// Score variance over seeds, when the stability check ran.
    pub seed_variance: Option<f64>,
    /// `seed_variance > max_seed_variance`.
    pub unstable: bool,
    /// Deflated Sharpe Ratio of the CPCV paths' PnL (the Probabilistic Sharpe Ratio against
    /// 0 when there was one trial): the probability that its true Sharpe is positive, or
    /// beats the best of `trials` unskilled ones (`None` without realised returns).
    #[serde(default)]
    pub deflated_sharpe: Option<f64>,
    /// Configurations tried (seeds of the stability study; 1 without it).
    #[serde(default)]
    pub trials: usize,
    /// `deflated_sharpe < 1 − alpha`: the paths' Sharpe is not distinguishable from luck.
    #[serde(default)]
    pub weak_sharpe: bool,
}

impl OverfitFlags {
    /// Evaluate the flags.
    pub fn evaluate(
        gap: Option<SharpeGap>,
        ic: Option<f64>,
        seed_variance: Option<f64>,
        deflated_sharpe: Option<(f64, usize)>,
        t: &OverfitThresholds,
    ) -> Self {
        let gap = gap.filter(|g| g.selection.is_finite() && g.test.is_finite());
        let p = gap.map(|g| g.p_value());
        let diff = gap.map(|g| g.selection - g.test);
        OverfitFlags {
            sharpe_gap: diff,
            sharpe_gap_p: p,
            sharpe_gap_flag: matches!((diff, p), (Some(d), Some(p)) if d > t.max_sharpe_gap && p < t.alpha),
            ic,
            weak_ic: ic.is_none_or(|v| v.is_nan() || v < t.min_ic),
            seed_variance,
            unstable: seed_variance.is_some_and(|v| v > t.max_seed_variance),
            deflated_sharpe: deflated_sharpe.map(|d| d.0),
            trials: deflated_sharpe.map_or(0, |d| d.1),
            weak_sharpe: deflated_sharpe.is_some_and(|(d, _)| d.is_nan() || d < 1.0 - t.alpha),
        }
    }

    /// Any flag raised.
    pub fn any(&self) -> bool {
        self.sharpe_gap_flag || self.weak_ic || self.unstable || self.weak_sharpe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbo_of_a_dominant_strategy_is_zero() {
        // Strategy 0 is always better; its in-sample win carries out of sample.
        let returns: Vec<Vec<f64>> =
            (0..64).map(|t| vec![0.02 + 0.01 * ((t % 3) as f64), 0.01 * ((t % 5) as f64 - 2.0), -0.01]).collect();
        let r = pbo(&returns, 8).unwrap();
        assert_eq!(r.logits.len(), 70);
        assert_eq!(r.pbo, 0.0);
        assert!(pbo(&returns, 7).is_err());
    }

    #[test]
    fn flags_fire_on_evidence_and_only_then() {
        let t = OverfitThresholds::default();
        let gap = |selection: f64, se: f64| Some(SharpeGap { selection, test: 1.0, se });
        let f = OverfitFlags::evaluate(gap(2.0, 0.2), Some(0.01), Some(1e-3), Some((0.6, 10)), &t);
        assert!(f.sharpe_gap_flag && f.weak_ic && f.unstable && f.weak_sharpe, "{f:?}");
        assert_eq!(f.trials, 10);
        // The same gap measured with an error as large as itself is noise, not a flag.
        let f = OverfitFlags::evaluate(gap(2.0, 1.0), Some(0.05), None, Some((0.995, 1)), &t);
        assert!(!f.sharpe_gap_flag && f.sharpe_gap_p.unwrap() > 0.05, "{f:?}");
        assert!(!f.any(), "{f:?}");
        // A significant but small gap is within the limit.
        let f = OverfitFlags::evaluate(gap(1.3, 0.05), Some(0.05), None, None, &t);
        assert!(!f.sharpe_gap_flag && f.sharpe_gap_p.unwrap() < 0.05);
        // No selection slice, no returns: the Sharpe checks cannot run and do not flag.
        let f = OverfitFlags::evaluate(None, Some(0.05), None, None, &t);
        assert!(f.sharpe_gap.is_none() && f.deflated_sharpe.is_none() && !f.any());
    }

    #[test]
    fn the_sharpe_standard_error_shrinks_with_trades() {
        // Annualised SR 1 over 730 trades a year: per trade 0.037; SE √730·√((1 + …)/n).
        let se = annualised_sharpe_se(1.0, 1000.0, 730.0);
        assert!((se - (730.0f64).sqrt() * ((1.0f64 + 1.0 / 730.0 / 2.0) / 1000.0).sqrt()).abs() < 1e-12);
        assert!(annualised_sharpe_se(1.0, 4000.0, 730.0) < se / 1.9);
    }
}

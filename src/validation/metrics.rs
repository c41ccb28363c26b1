//! Scoring metrics with sklearn's and scipy's conventions, so numbers line up with the
//! reference libraries (`tests/validation_metrics.rs` checks each against a committed
//! sklearn/scipy fixture within 1e-10).
//!
//! * ROC AUC is the Mann–Whitney statistic with average ranks for tied scores (equal to
//!   sklearn's trapezoidal `roc_auc_score`); log-loss clips probabilities to `[ε, 1 − ε]`
//!   with ε = f64 machine epsilon (sklearn ≥ 1.5 for float64 input).
//! * Precision, recall and F1 are for the positive class `1`; an empty denominator gives 0
//!   (sklearn's `zero_division` default).
//! * R² follows `r2_score`: a constant target gives 1 for a perfect fit, else 0.
//! * IC: Pearson and Spearman (average ranks for ties) as `scipy.stats.pearsonr` /
//!   `spearmanr`; a constant input has no correlation and gives NaN.
//! * Directional accuracy: share of rows where `sign(prediction) == sign(actual)` (0 is its
//!   own sign).
//! * Trading: a *trade* is a row with a non-zero position. Win rate = share of trades with
//!   `position · return > 0`; average R = mean of `position · return / risk` over trades
//!   (risk = the entry's ATR-based stop distance in return units, so 1 R = one stop);
//!   Sharpe = `mean / std (ddof = 1) · √periods_per_year` of the per-period PnL; max drawdown
//!   = the largest fall of the cumulative PnL sum from its running peak (the curve starts at
//!   0), reported as a positive number in PnL units.
//! * Calibration score = 1 − ECE with 10 equal-width bins over [0, 1]. Bin edges are
//!   `i · 0.1` (numpy's `linspace`); bins are `(edge_{i}, edge_{i+1}]` except the first,
//!   `[0, 0.1]` — a probability on an inner edge belongs to the bin *below* it (numpy's
//!   `searchsorted(side="left")`), exactly `sklearn.calibration.calibration_curve(strategy=
//!   "uniform")`. ECE = Σ over non-empty bins of `count/n · |mean label − mean probability|`.

use crate::error::{Error, Result};

/// At least `min` observations, all finite (else a typed error naming the first bad index).
pub(crate) fn check_finite(x: &[f64], min: usize, what: &str) -> Result<()> {
    if x.len() < min {
        return Err(Error::param(what, format!("needs at least {min} observations, got {}", x.len())));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::param(format!("{what}[{i}]"), format!("must be finite, got {}", x[i])));
    }
    Ok(())
}

fn same_len(what: &str, a: usize, b: usize) -> Result<()> {
    if a == b { Ok(()) } else { Err(Error::Shape { what: what.into(), expected: a, got: b }) }
}

/// Area under the ROC curve of scores for 0/1 labels; ties get average ranks.
pub fn roc_auc(y: &[f64], score: &[f64]) -> Result<f64> {
    same_len("roc_auc scores", y.len(), score.len())?;
    let pos = y.iter().filter(|&&v| v == 1.0).count();
    let neg = y.iter().filter(|&&v| v == 0.0).count();
    if pos + neg != y.len() {
        return Err(Error::param("roc_auc", "labels must be 0 or 1"));
    }
    if pos == 0 || neg == 0 {
        return Err(Error::param("roc_auc", "needs both classes"));
    }
    let ranks = average_ranks(score);
    let rank_sum_pos: f64 = ranks.iter().zip(y).filter(|&(_, &t)| t == 1.0).map(|(r, _)| r).sum();
    let (p, n) = (pos as f64, neg as f64);
    Ok((rank_sum_pos - p * (p + 1.0) / 2.0) / (p * n))
}

/// Mean binary log-loss of probabilities `p` for 0/1 labels.
pub fn log_loss(y: &[f64], p: &[f64]) -> Result<f64> {
    same_len("log_loss probabilities", y.len(), p.len())?;
    let eps = f64::EPSILON;
    let s: f64 = y
        .iter()
        .zip(p)
        .map(|(&t, &q)| {
            let q = q.clamp(eps, 1.0 - eps);
            -(t * q.ln() + (1.0 - t) * (1.0 - q).ln())
        })
        .sum();
    Ok(s / y.len().max(1) as f64)
}

/// Mean multiclass log-loss; `p` is row-major `n × k`, labels are class ids.
pub fn multi_log_loss(y: &[f64], p: &[f64], k: usize) -> Result<f64> {
    same_len("multi_log_loss probabilities", y.len() * k, p.len())?;
    let eps = f64::EPSILON;
    let s: f64 = y
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let row = &p[i * k..(i + 1) * k];
            let total: f64 = row.iter().map(|v| v.clamp(eps, 1.0 - eps)).sum();
            -(row[c as usize].clamp(eps, 1.0 - eps) / total).ln()
        })
        .sum();
    Ok(s / y.len().max(1) as f64)
}

/// Root mean squared error.
pub fn rmse(y: &[f64], pred: &[f64]) -> Result<f64> {
    same_len("rmse predictions", y.len(), pred.len())?;
    Ok((y.iter().zip(pred).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / y.len().max(1) as f64).sqrt())
}

/// Mean absolute error.
pub fn mae(y: &[f64], pred: &[f64]) -> Result<f64> {
    same_len("mae predictions", y.len(), pred.len())?;
    Ok(y.iter().zip(pred).map(|(a, b)| (a - b).abs()).sum::<f64>() / y.len().max(1) as f64)
}

/// Share of equal labels.
pub fn accuracy(y: &[f64], pred: &[f64]) -> Result<f64> {
    same_len("accuracy predictions", y.len(), pred.len())?;
    Ok(y.iter().zip(pred).filter(|(a, b)| a == b).count() as f64 / y.len().max(1) as f64)
}

/// Confusion counts (tp, fp, fn) for the positive class `1` of hard 0/1 predictions.
fn confusion(y: &[f64], pred: &[f64]) -> (f64, f64, f64) {
    let mut c = (0.0, 0.0, 0.0);
    for (&t, &p) in y.iter().zip(pred) {
        match (t == 1.0, p == 1.0) {
            (true, true) => c.0 += 1.0,
            (false, true) => c.1 += 1.0,
            (true, false) => c.2 += 1.0,
            _ => {}
        }
    }
    c
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

/// Precision of hard 0/1 predictions for class 1.
pub fn precision(y: &[f64], pred: &[f64]) -> Result<f64> {
    same_len("precision predictions", y.len(), pred.len())?;
    let (tp, fp, _) = confusion(y, pred);
    Ok(ratio(tp, tp + fp))
}

/// Recall of hard 0/1 predictions for class 1.
pub fn recall(y: &[f64], pred: &[f64]) -> Result<f64> {
    same_len("recall predictions", y.len(), pred.len())?;
    let (tp, _, fn_) = confusion(y, pred);
    Ok(ratio(tp, tp + fn_))
}

/// F1 score of hard 0/1 predictions for class 1.
pub fn f1(y: &[f64], pred: &[f64]) -> Result<f64> {
    same_len("f1 predictions", y.len(), pred.len())?;
    let (tp, fp, fn_) = confusion(y, pred);
    Ok(ratio(2.0 * tp, 2.0 * tp + fp + fn_))
}

/// Brier score: mean squared difference between probability and 0/1 label.
pub fn brier(y: &[f64], p: &[f64]) -> Result<f64> {
    same_len("brier probabilities", y.len(), p.len())?;
    Ok(y.iter().zip(p).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / y.len().max(1) as f64)
}

/// Coefficient of determination R².
pub fn r2(y: &[f64], pred: &[f64]) -> Result<f64> {
    same_len("r2 predictions", y.len(), pred.len())?;
    let mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
    let ss_res: f64 = y.iter().zip(pred).map(|(a, b)| (a - b).powi(2)).sum();
    let ss_tot: f64 = y.iter().map(|a| (a - mean).powi(2)).sum();
    Ok(if ss_tot == 0.0 { if ss_res == 0.0 { 1.0 } else { 0.0 } } else { 1.0 - ss_res / ss_tot })
}

/// Share of rows whose prediction has the sign of the actual value.
pub fn directional_accuracy(actual: &[f64], pred: &[f64]) -> Result<f64> {
    same_len("directional_accuracy predictions", actual.len(), pred.len())?;
    let sign = |v: f64| (v > 0.0) as i8 - (v < 0.0) as i8;
    Ok(actual.iter().zip(pred).filter(|&(&a, &p)| sign(a) == sign(p)).count() as f64 / actual.len().max(1) as f64)
}

/// Pearson correlation (NaN when either side is constant).
pub fn pearson(x: &[f64], y: &[f64]) -> Result<f64> {
    same_len("pearson inputs", x.len(), y.len())?;
    if x.len() < 2 {
        return Err(Error::param("pearson", "needs at least 2 pairs"));
    }
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return Ok(f64::NAN);
    }
    Ok((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

/// 1-based ranks, ties sharing their average rank (scipy's `rankdata(method="average")`).
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    // Sort (key, index) pairs whose integer key orders like `total_cmp`: no indirect loads
    // in the comparisons, and the index makes the order the stable one.
    let mut ranks = Vec::new();
    ranks_of_order(&crate::sortkey::sorted_positions(x, 0), 0, &mut ranks);
    ranks
}

/// [`average_ranks`] read off `order`, the ascending (`total_cmp` key, position) pairs of the
/// values at positions `first..first + order.len()`, into `out` (by position − `first`):
/// equal values (by `==`, so ±0 tie) share their average rank.
pub(crate) fn ranks_of_order(order: &[(u64, usize)], first: usize, out: &mut Vec<f64>) {
    out.clear();
    out.resize(order.len(), 0.0);
    let value = |i: usize| crate::sortkey::value(order[i].0);
    let mut i = 0;
    while i < order.len() {
        let x = value(i);
        let mut j = i;
        while j + 1 < order.len() && value(j + 1) == x {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &(_, pos) in &order[i..=j] {
            out[pos - first] = r;
        }
        i = j + 1;
    }
}

/// Spearman rank correlation (Pearson on average ranks).
pub fn spearman(x: &[f64], y: &[f64]) -> Result<f64> {
    same_len("spearman inputs", x.len(), y.len())?;
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Share of trades (non-zero `position`) with `position · ret > 0`; NaN without trades.
pub fn win_rate(position: &[f64], ret: &[f64]) -> Result<f64> {
    same_len("win_rate returns", position.len(), ret.len())?;
    let trades = position.iter().filter(|&&p| p != 0.0).count();
    let wins = position.iter().zip(ret).filter(|&(&p, &r)| p != 0.0 && p * r > 0.0).count();
    Ok(if trades == 0 { f64::NAN } else { wins as f64 / trades as f64 })
}

/// Mean `position · ret / risk` over trades (return in units of the entry's risk).
pub fn average_r(position: &[f64], ret: &[f64], risk: &[f64]) -> Result<f64> {
    same_len("average_r returns", position.len(), ret.len())?;
    same_len("average_r risks", position.len(), risk.len())?;
    let mut sum = 0.0;
    let mut trades = 0usize;
    for i in 0..position.len() {
        if position[i] != 0.0 {
            if !(risk[i] > 0.0 && risk[i].is_finite()) {
                return Err(Error::param(format!("risk[{i}]"), format!("must be finite and > 0, got {}", risk[i])));
            }
            sum += position[i] * ret[i] / risk[i];
            trades += 1;
        }
    }
    Ok(if trades == 0 { f64::NAN } else { sum / trades as f64 })
}

/// Sample mean and standard deviation (ddof = 1).
pub fn mean_std(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Annualised Sharpe ratio of per-period PnL: `mean / std(ddof=1) · √periods_per_year`.
pub fn sharpe(pnl: &[f64], periods_per_year: f64) -> Result<f64> {
    if pnl.len() < 2 {
        return Err(Error::param("sharpe", "needs at least 2 periods"));
    }
    let (m, s) = mean_std(pnl);
    Ok(if s == 0.0 { f64::NAN } else { m / s * periods_per_year.sqrt() })
}

/// Largest fall of the cumulative PnL from its running peak (the curve starts at 0).
pub fn max_drawdown(pnl: &[f64]) -> f64 {
    let (mut cum, mut peak, mut dd) = (0.0f64, 0.0f64, 0.0f64);
    for &v in pnl {
        cum += v;
        peak = peak.max(cum);
        dd = dd.max(peak - cum);
    }
    dd
}

/// Expected calibration error over 10 equal-width bins (see the module docs for edges).
pub fn expected_calibration_error(y: &[f64], p: &[f64]) -> Result<f64> {
    same_len("calibration probabilities", y.len(), p.len())?;
    if let Some(i) = p.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(Error::param(format!("probability[{i}]"), format!("must be in [0, 1], got {}", p[i])));
    }
    const BINS: usize = 10;
    let step = 1.0 / BINS as f64;
    let inner: Vec<f64> = (1..BINS).map(|i| i as f64 * step).collect();
    let mut count = [0usize; BINS];
    let mut sum_y = [0.0; BINS];
    let mut sum_p = [0.0; BINS];
    for (&t, &q) in y.iter().zip(p) {
        let b = inner.partition_point(|&e| e < q);
        count[b] += 1;
        sum_y[b] += t;
        sum_p[b] += q;
    }
    let n = y.len().max(1) as f64;
    Ok((0..BINS)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            let c = count[b] as f64;
            c / n * (sum_y[b] / c - sum_p[b] / c).abs()
        })
        .sum())
}

/// Calibration score in [0, 1]: `1 − ECE`.
pub fn calibration_score(y: &[f64], p: &[f64]) -> Result<f64> {
    Ok(1.0 - expected_calibration_error(y, p)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_matches_sklearn_with_ties() {
        // sklearn.metrics.roc_auc_score([0,0,1,1,0,1], [0.1,0.4,0.35,0.8,0.4,0.4]) = 0.6666666666666667
        let y = [0.0, 0.0, 1.0, 1.0, 0.0, 1.0];
        let s = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4];
        assert!((roc_auc(&y, &s).unwrap() - 2.0 / 3.0).abs() < 1e-15);
        assert!(roc_auc(&[1.0, 1.0], &[0.1, 0.2]).is_err());
    }

    #[test]
    fn losses() {
        // sklearn.metrics.log_loss([0,1,1], [0.2,0.7,0.9]) = 0.22839300363692283
        assert!((log_loss(&[0.0, 1.0, 1.0], &[0.2, 0.7, 0.9]).unwrap() - 0.22839300363692283).abs() < 1e-15);
        // sklearn.metrics.log_loss([0,2], [[.7,.2,.1],[.1,.3,.6]]) = 0.4337502838523616
        let p = [0.7, 0.2, 0.1, 0.1, 0.3, 0.6];
        assert!((multi_log_loss(&[0.0, 2.0], &p, 3).unwrap() - 0.4337502838523616).abs() < 1e-12);
        assert!((rmse(&[1.0, 2.0], &[1.0, 4.0]).unwrap() - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(mae(&[1.0, 2.0], &[0.0, 4.0]).unwrap(), 1.5);
    }
}

//! Scoring metrics with sklearn's conventions, so numbers line up with the reference library.
//!
//! ROC AUC is the Mann–Whitney statistic with average ranks for tied scores (equal to
//! sklearn's trapezoidal `roc_auc_score`); log-loss clips probabilities to
//! `[ε, 1 − ε]` with ε = f64 machine epsilon (sklearn ≥ 1.5 for float64 input).

use crate::error::{Error, Result};

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
    let mut idx: Vec<usize> = (0..y.len()).collect();
    idx.sort_unstable_by(|&a, &b| score[a].total_cmp(&score[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && score[idx[j + 1]] == score[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        let n_pos = idx[i..=j].iter().filter(|&&r| y[r] == 1.0).count();
        rank_sum_pos += avg_rank * n_pos as f64;
        i = j + 1;
    }
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

//! Turning a forecaster's score (its forecast return over the label horizon) into the
//! outputs the validation and decision layers expect: a probability for binary labels
//! (logistic calibration, Platt scaling), class probabilities for up/flat/down labels
//! (multinomial logistic on the score) and a value for regression labels (least squares).
//!
//! Fitted on the validation slice only, so nothing learned from test rows reaches it. The
//! score is standardised before the fit (returns are ~1e-3, which would make the Newton
//! steps badly scaled) and the coefficients are mapped back, so [`Calibration::apply`]
//! takes raw scores.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::Task;

/// Ridge on the standardised coefficients: keeps Newton finite when the score separates
/// the classes perfectly (tiny validation slices), negligible otherwise.
const RIDGE: f64 = 1e-3;

/// A fitted map from score to outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Calibration {
    /// Regression: `a + b·score`.
    Linear {
        /// Intercept.
        a: f64,
        /// Slope.
        b: f64,
    },
    /// `P(class k) ∝ exp(a[k] + b[k]·score)`, class 0 the reference (`a[0] = b[0] = 0`);
    /// two classes give Platt scaling.
    Softmax {
        /// Intercepts per class.
        a: Vec<f64>,
        /// Slopes per class.
        b: Vec<f64>,
    },
}

impl Calibration {
    /// Fit on `scores` and labels `y` (class ids for classification tasks).
    pub fn fit(task: Task, scores: &[f64], y: &[f64]) -> Result<Self> {
        if scores.len() != y.len() {
            return Err(Error::Shape { what: "calibration labels".into(), expected: scores.len(), got: y.len() });
        }
        if scores.is_empty() {
            return Err(Error::param("calibration", "no rows to calibrate on"));
        }
        if let Some(i) = scores.iter().chain(y).position(|v| !v.is_finite()) {
            return Err(Error::param("calibration", format!("value {i} is not finite")));
        }
        let n = scores.len() as f64;
        let mean = scores.iter().sum::<f64>() / n;
        let sd = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n).sqrt();
        // A constant score carries no information: fit intercepts only.
        let sd = if sd > 0.0 && sd.is_finite() { sd } else { 0.0 };
        let z: Vec<f64> = scores.iter().map(|s| if sd > 0.0 { (s - mean) / sd } else { 0.0 }).collect();
        let (a, b) = match task {
            Task::Regression => {
                let ym = y.iter().sum::<f64>() / n;
                let b = if sd > 0.0 { z.iter().zip(y).map(|(z, y)| z * (y - ym)).sum::<f64>() / n } else { 0.0 };
                (vec![ym], vec![b])
            }
            Task::Binary => softmax_newton(&z, y, 2)?,
            Task::Multiclass { classes } => softmax_newton(&z, y, classes)?,
        };
        // Back to raw scores: a + b·(s − mean)/sd = (a − b·mean/sd) + (b/sd)·s.
        let (a, b): (Vec<f64>, Vec<f64>) =
            a.iter().zip(&b).map(|(&a, &b)| if sd > 0.0 { (a - b * mean / sd, b / sd) } else { (a, 0.0) }).unzip();
        Ok(match task {
            Task::Regression => Calibration::Linear { a: a[0], b: b[0] },
            _ => Calibration::Softmax { a, b },
        })
    }

    /// Outputs per row: 1 for regression and binary (P(class 1)), else the class count.
    pub fn n_outputs(&self) -> usize {
        match self {
            Calibration::Linear { .. } => 1,
            Calibration::Softmax { a, .. } if a.len() == 2 => 1,
            Calibration::Softmax { a, .. } => a.len(),
        }
    }

    /// Write the outputs for `score` into `out` (`n_outputs` values).
    pub fn apply(&self, score: f64, out: &mut [f64]) {
        match self {
            Calibration::Linear { a, b } => out[0] = a + b * score,
            Calibration::Softmax { a, b } => {
                let logits: Vec<f64> = a.iter().zip(b).map(|(a, b)| a + b * score).collect();
                let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                if a.len() == 2 {
                    out[0] = e[1] / sum;
                } else {
                    out.iter_mut().zip(&e).for_each(|(o, e)| *o = e / sum);
                }
            }
        }
    }
}

/// Multinomial logistic regression of class ids `y` on `[1, z]` by Newton's method with a
/// small ridge; returns intercepts and slopes per class (class 0 fixed at zero).
fn softmax_newton(z: &[f64], y: &[f64], k: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    if let Some(i) = y.iter().position(|&v| v < 0.0 || v.fract() != 0.0 || v >= k as f64) {
        return Err(Error::param("calibration", format!("label {} of row {i} is not a class id below {k}", y[i])));
    }
    let m = 2 * (k - 1); // parameters: (a_j, b_j) for classes 1..k
    let mut theta = vec![0.0; m];
    let n = z.len() as f64;
    for _ in 0..100 {
        let mut grad = vec![0.0; m];
        let mut hess = vec![0.0; m * m];
        for (&zi, &yi) in z.iter().zip(y) {
            let p = probs(&theta, zi, k);
            let x = [1.0, zi];
            for j in 1..k {
                let r = p[j] - f64::from(u8::from(yi as usize == j));
                for (u, xu) in x.iter().enumerate() {
                    grad[2 * (j - 1) + u] += r * xu;
                }
                for l in 1..k {
                    let w = if j == l { p[j] * (1.0 - p[j]) } else { -p[j] * p[l] };
                    for (u, xu) in x.iter().enumerate() {
                        for (v, xv) in x.iter().enumerate() {
                            hess[(2 * (j - 1) + u) * m + 2 * (l - 1) + v] += w * xu * xv;
                        }
                    }
                }
            }
        }
        for i in 0..m {
            grad[i] += RIDGE * n * theta[i];
            hess[i * m + i] += RIDGE * n;
        }
        let step = solve(&mut hess, &mut grad, m)
            .ok_or_else(|| Error::param("calibration", "singular Hessian in the logistic fit"))?;
        theta.iter_mut().zip(&step).for_each(|(t, s)| *t -= s);
        if step.iter().map(|s| s.abs()).fold(0.0, f64::max) < 1e-10 {
            break;
        }
    }
    let mut a = vec![0.0; k];
    let mut b = vec![0.0; k];
    for j in 1..k {
        (a[j], b[j]) = (theta[2 * (j - 1)], theta[2 * (j - 1) + 1]);
    }
    Ok((a, b))
}

/// Class probabilities at standardised score `z`.
fn probs(theta: &[f64], z: f64, k: usize) -> Vec<f64> {
    let mut l = vec![0.0; k];
    for j in 1..k {
        l[j] = theta[2 * (j - 1)] + theta[2 * (j - 1) + 1] * z;
    }
    let max = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = l.iter().map(|v| (v - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Solve `a x = b` (`m × m`, row-major) by Gaussian elimination with partial pivoting.
fn solve(a: &mut [f64], b: &mut [f64], m: usize) -> Option<Vec<f64>> {
    for col in 0..m {
        let piv = (col..m).max_by(|&i, &j| a[i * m + col].abs().total_cmp(&a[j * m + col].abs()))?;
        if a[piv * m + col].abs() < 1e-300 {
            return None;
        }
        if piv != col {
            for c in 0..m {
                a.swap(piv * m + c, col * m + c);
            }
            b.swap(piv, col);
        }
        for r in col + 1..m {
            let f = a[r * m + col] / a[col * m + col];
            for c in col..m {
                a[r * m + c] -= f * a[col * m + c];
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = vec![0.0; m];
    for r in (0..m).rev() {
        let s: f64 = (r + 1..m).map(|c| a[r * m + c] * x[c]).sum();
        x[r] = (b[r] - s) / a[r * m + r];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platt_scaling_recovers_a_logistic_link() {
        // Labels drawn from P(1) = σ(-0.5 + 400·s) with scores of return size.
        let mut rng = crate::rng::Rng::new(3);
        let (mut s, mut y) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let score = (rng.next_f64() - 0.5) * 0.01;
            let p = 1.0 / (1.0 + (0.5 - 400.0 * score).exp());
            s.push(score);
            y.push(f64::from(u8::from(rng.next_f64() < p)));
        }
        let c = Calibration::fit(Task::Binary, &s, &y).unwrap();
        let Calibration::Softmax { a, b } = &c else { panic!("{c:?}") };
        assert!((a[1] + 0.5).abs() < 0.1 && (b[1] - 400.0).abs() < 30.0, "{a:?} {b:?}");
        let mut out = [0.0];
        c.apply(0.00125, &mut out);
        assert!((out[0] - 0.5).abs() < 0.03, "{out:?}");
        assert_eq!(c.n_outputs(), 1);
    }

    #[test]
    fn three_classes_order_with_the_score_and_sum_to_one() {
        let s: Vec<f64> = (0..300).map(|i| (i as f64 - 150.0) * 1e-4).collect();
        let y: Vec<f64> = s
            .iter()
            .map(|&v| {
                if v < -0.005 {
                    0.0
                } else if v > 0.005 {
                    2.0
                } else {
                    1.0
                }
            })
            .collect();
        let c = Calibration::fit(Task::Multiclass { classes: 3 }, &s, &y).unwrap();
        assert_eq!(c.n_outputs(), 3);
        let mut lo = [0.0; 3];
        let mut hi = [0.0; 3];
        c.apply(-0.01, &mut lo);
        c.apply(0.01, &mut hi);
        assert!((lo.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(lo[0] > 0.8 && hi[2] > 0.8, "{lo:?} {hi:?}");
    }

    #[test]
    fn regression_is_least_squares_and_constant_scores_fit_the_mean() {
        let s = [1.0, 2.0, 3.0, 4.0];
        let y = [3.0, 5.0, 7.0, 9.0];
        let Calibration::Linear { a, b } = Calibration::fit(Task::Regression, &s, &y).unwrap() else { panic!() };
        assert!((a - 1.0).abs() < 1e-12 && (b - 2.0).abs() < 1e-12, "{a} {b}");
        let c = Calibration::fit(Task::Binary, &[0.5; 4], &[0.0, 1.0, 1.0, 1.0]).unwrap();
        let mut out = [0.0];
        c.apply(123.0, &mut out);
        assert!((out[0] - 0.75).abs() < 0.01, "{out:?}");
    }

    #[test]
    fn bad_labels_are_named() {
        let err = Calibration::fit(Task::Binary, &[0.0, 1.0], &[0.0, 2.0]).unwrap_err().to_string();
        assert!(err.contains("row 1"), "{err}");
        assert!(Calibration::fit(Task::Regression, &[f64::NAN], &[1.0]).is_err());
        assert!(Calibration::fit(Task::Regression, &[], &[]).is_err());
    }
}

//! Losses the booster minimises, behind the [`Objective`] extension point.
//!
//! An objective turns labels and current raw scores into first and second derivatives per
//! row (Newton boosting), supplies the starting score, maps raw scores to the user-facing
//! output (probability, class distribution, value) and evaluates the loss for early stopping.
//! Built-ins: binary log-loss, L2, multiclass softmax, Huber, quantile (pinball). To add one,
//! implement the trait and pass it to [`crate::gbdt::GbdtParams::fit_with_objective`].
//!
//! Raw scores are laid out row-major, `num_outputs` per row. Sample weights are applied by
//! the booster (gradients, hessians and losses are multiplied by the row weight), so an
//! objective works on unit-weight rows except in `init_score`, which sees the weights.

use std::fmt::Debug;

use crate::error::{Error, Result};
use crate::gbdt::params::ObjectiveKind;

/// A differentiable loss; the documented extension point of the booster.
pub trait Objective: Send + Sync + Debug {
    /// Short name used in logs and model files.
    fn name(&self) -> String;
    /// Raw scores per row (1, or the class count for softmax).
    fn num_outputs(&self) -> usize {
        1
    }
    /// Reject labels the loss cannot use; `row` in the error is 0-based. Default: finite labels.
    fn check_labels(&self, y: &[f64]) -> Result<()> {
        check_finite(y)
    }
    /// The constant raw score boosting starts from (one per output).
    fn init_score(&self, y: &[f64], w: Option<&[f64]>) -> Vec<f64>;
    /// Write `(gradient, hessian)` for each row and output: `out[i * K + k]`.
    fn gradients(&self, y: &[f64], raw: &[f64], out: &mut [[f32; 2]]);
    /// Map one row's raw scores to the output (probability, class probabilities, value).
    /// Default: the raw score itself (regression losses).
    fn transform(&self, raw: &[f64], out: &mut [f64]) {
        out.copy_from_slice(raw);
    }
    /// The loss of one row at raw scores `raw` (averaged with weights by the caller).
    fn loss(&self, y: f64, raw: &[f64]) -> f64;
    /// Whether [`Objective::renew_leaf`] is implemented (the booster then collects residuals).
    fn renews_leaves(&self) -> bool {
        false
    }
    /// Optionally replace a leaf's Newton value by an exact one computed from its rows'
    /// residuals `y - raw` (quantile regression uses the leaf's α-quantile).
    fn renew_leaf(&self, _residuals: &mut [(f64, f64)]) -> Option<f64> {
        None
    }
}

impl ObjectiveKind {
    /// The built-in output transform, without boxing an objective (single-row prediction
    /// must not allocate).
    pub fn transform(&self, raw: &[f64], out: &mut [f64]) {
        match *self {
            ObjectiveKind::Binary => out[0] = sigmoid(raw[0]),
            ObjectiveKind::Multiclass { .. } => softmax(raw, out),
            _ => out.copy_from_slice(raw),
        }
    }
}

/// Build the built-in objective for a kind.
pub fn builtin(kind: ObjectiveKind) -> Box<dyn Objective> {
    match kind {
        ObjectiveKind::Binary => Box::new(Binary),
        ObjectiveKind::Regression => Box::new(L2),
        ObjectiveKind::Multiclass { num_class } => Box::new(Softmax { num_class }),
        ObjectiveKind::Huber { delta } => Box::new(Huber { delta }),
        ObjectiveKind::Quantile { alpha } => Box::new(Quantile { alpha }),
    }
}

fn weighted_mean(y: &[f64], w: Option<&[f64]>) -> f64 {
    match w {
        Some(w) => {
            let sw: f64 = w.iter().sum();
            y.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() / sw.max(f64::MIN_POSITIVE)
        }
        None => y.iter().sum::<f64>() / y.len().max(1) as f64,
    }
}

/// Weighted α-quantile of `(value, weight)` pairs (lower weighted quantile).
pub(crate) fn weighted_quantile(pairs: &mut [(f64, f64)], alpha: f64) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = pairs.iter().map(|p| p.1).sum();
    let target = alpha * total;
    let mut acc = 0.0;
    for &(v, w) in pairs.iter() {
        acc += w;
        if acc >= target {
            return v;
        }
    }
    pairs[pairs.len() - 1].0
}

fn check_finite(y: &[f64]) -> Result<()> {
    match y.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::param("label", format!("row {i}: label {} is not finite", y[i]))),
        None => Ok(()),
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Binary log-loss on labels 0/1: g = p − y, h = p(1 − p).
#[derive(Debug, Clone, Copy)]
pub struct Binary;

impl Objective for Binary {
    fn name(&self) -> String {
        "binary".into()
    }
    fn check_labels(&self, y: &[f64]) -> Result<()> {
        match y.iter().position(|&v| v != 0.0 && v != 1.0) {
            Some(i) => Err(Error::param("label", format!("row {i}: binary labels must be 0 or 1, got {}", y[i]))),
            None => Ok(()),
        }
    }
    fn init_score(&self, y: &[f64], w: Option<&[f64]>) -> Vec<f64> {
        let p = weighted_mean(y, w).clamp(1e-15, 1.0 - 1e-15);
        vec![(p / (1.0 - p)).ln()]
    }
    fn gradients(&self, y: &[f64], raw: &[f64], out: &mut [[f32; 2]]) {
        for ((o, &yi), &s) in out.iter_mut().zip(y).zip(raw) {
            let p = sigmoid(s);
            *o = [(p - yi) as f32, (p * (1.0 - p)).max(1e-16) as f32];
        }
    }
    fn transform(&self, raw: &[f64], out: &mut [f64]) {
        ObjectiveKind::Binary.transform(raw, out);
    }
    fn loss(&self, y: f64, raw: &[f64]) -> f64 {
        // log(1 + e^s) − y·s, computed stably.
        let s = raw[0];
        let softplus = if s > 0.0 { s + (-s).exp().ln_1p() } else { s.exp().ln_1p() };
        softplus - y * s
    }
}

/// Squared error: loss ½(s − y)², g = s − y, h = 1.
#[derive(Debug, Clone, Copy)]
pub struct L2;

impl Objective for L2 {
    fn name(&self) -> String {
        "regression".into()
    }
    fn init_score(&self, y: &[f64], w: Option<&[f64]>) -> Vec<f64> {
        vec![weighted_mean(y, w)]
    }
    fn gradients(&self, y: &[f64], raw: &[f64], out: &mut [[f32; 2]]) {
        for ((o, &yi), &s) in out.iter_mut().zip(y).zip(raw) {
            *o = [(s - yi) as f32, 1.0];
        }
    }
    fn loss(&self, y: f64, raw: &[f64]) -> f64 {
        0.5 * (raw[0] - y).powi(2)
    }
}

/// Multiclass softmax: g_k = p_k − [y = k], h_k = K/(K−1)·p_k(1 − p_k) (LightGBM's scaling).
#[derive(Debug, Clone, Copy)]
pub struct Softmax {
    /// Number of classes.
    pub num_class: usize,
}

fn softmax(raw: &[f64], out: &mut [f64]) {
    let m = raw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for (o, &r) in out.iter_mut().zip(raw) {
        *o = (r - m).exp();
        sum += *o;
    }
    for o in out.iter_mut() {
        *o /= sum;
    }
}

impl Objective for Softmax {
    fn name(&self) -> String {
        format!("multiclass:{}", self.num_class)
    }
    fn num_outputs(&self) -> usize {
        self.num_class
    }
    fn check_labels(&self, y: &[f64]) -> Result<()> {
        let k = self.num_class as f64;
        match y.iter().position(|&v| !(v >= 0.0 && v < k && v.fract() == 0.0)) {
            Some(i) => Err(Error::param(
                "label",
                format!("row {i}: multiclass labels must be integers in 0..{}, got {}", self.num_class, y[i]),
            )),
            None => Ok(()),
        }
    }
    fn init_score(&self, y: &[f64], w: Option<&[f64]>) -> Vec<f64> {
        let mut counts = vec![0.0f64; self.num_class];
        for (i, &v) in y.iter().enumerate() {
            counts[v as usize] += w.map_or(1.0, |w| w[i]);
        }
        let total: f64 = counts.iter().sum();
        counts.iter().map(|c| (c / total).clamp(1e-15, 1.0).ln()).collect()
    }
    fn gradients(&self, y: &[f64], raw: &[f64], out: &mut [[f32; 2]]) {
        let k = self.num_class;
        let factor = k as f64 / (k as f64 - 1.0);
        let mut p = vec![0.0; k];
        for (i, &yi) in y.iter().enumerate() {
            softmax(&raw[i * k..(i + 1) * k], &mut p);
            for c in 0..k {
                let target = if yi as usize == c { 1.0 } else { 0.0 };
                out[i * k + c] = [(p[c] - target) as f32, (factor * p[c] * (1.0 - p[c])).max(1e-16) as f32];
            }
        }
    }
    fn transform(&self, raw: &[f64], out: &mut [f64]) {
        softmax(raw, out);
    }
    fn loss(&self, y: f64, raw: &[f64]) -> f64 {
        let m = raw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + raw.iter().map(|r| (r - m).exp()).sum::<f64>().ln();
        lse - raw[y as usize]
    }
}

/// Huber loss: quadratic within `delta` of the label, linear beyond; h = 1 (as LightGBM).
#[derive(Debug, Clone, Copy)]
pub struct Huber {
    /// Transition point.
    pub delta: f64,
}

impl Objective for Huber {
    fn name(&self) -> String {
        format!("huber:{}", self.delta)
    }
    fn init_score(&self, y: &[f64], w: Option<&[f64]>) -> Vec<f64> {
        vec![weighted_mean(y, w)]
    }
    fn gradients(&self, y: &[f64], raw: &[f64], out: &mut [[f32; 2]]) {
        for ((o, &yi), &s) in out.iter_mut().zip(y).zip(raw) {
            let r = s - yi;
            *o = [r.clamp(-self.delta, self.delta) as f32, 1.0];
        }
    }
    fn loss(&self, y: f64, raw: &[f64]) -> f64 {
        let r = (raw[0] - y).abs();
        if r <= self.delta { 0.5 * r * r } else { self.delta * (r - 0.5 * self.delta) }
    }
}

/// Pinball loss of quantile α; leaves are renewed to the α-quantile of their residuals.
#[derive(Debug, Clone, Copy)]
pub struct Quantile {
    /// Target quantile.
    pub alpha: f64,
}

impl Objective for Quantile {
    fn name(&self) -> String {
        format!("quantile:{}", self.alpha)
    }
    fn init_score(&self, y: &[f64], w: Option<&[f64]>) -> Vec<f64> {
        let mut pairs: Vec<(f64, f64)> = y.iter().enumerate().map(|(i, &v)| (v, w.map_or(1.0, |w| w[i]))).collect();
        vec![weighted_quantile(&mut pairs, self.alpha)]
    }
    fn gradients(&self, y: &[f64], raw: &[f64], out: &mut [[f32; 2]]) {
        for ((o, &yi), &s) in out.iter_mut().zip(y).zip(raw) {
            let g = if yi < s { 1.0 - self.alpha } else { -self.alpha };
            *o = [g as f32, 1.0];
        }
    }
    fn loss(&self, y: f64, raw: &[f64]) -> f64 {
        let r = y - raw[0];
        if r >= 0.0 { self.alpha * r } else { (self.alpha - 1.0) * r }
    }
    fn renews_leaves(&self) -> bool {
        true
    }
    fn renew_leaf(&self, residuals: &mut [(f64, f64)]) -> Option<f64> {
        Some(weighted_quantile(residuals, self.alpha))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gradients must be the derivative of the loss: check against central differences.
    #[test]
    fn gradients_match_numerical_derivatives() {
        let objs: Vec<(Box<dyn Objective>, Vec<f64>)> = vec![
            (Box::new(Binary), vec![0.0, 1.0, 1.0]),
            (Box::new(L2), vec![0.3, -2.0, 5.0]),
            (Box::new(Huber { delta: 1.0 }), vec![0.2, 3.0, -4.0]),
            (Box::new(Softmax { num_class: 3 }), vec![0.0, 2.0, 1.0]),
        ];
        for (obj, y) in objs {
            let k = obj.num_outputs();
            let raw: Vec<f64> = (0..y.len() * k).map(|i| (i as f64 * 0.37).sin()).collect();
            let mut gh = vec![[0f32; 2]; raw.len()];
            obj.gradients(&y, &raw, &mut gh);
            for i in 0..y.len() {
                for c in 0..k {
                    let eps = 1e-5;
                    let mut up = raw[i * k..(i + 1) * k].to_vec();
                    let mut dn = up.clone();
                    up[c] += eps;
                    dn[c] -= eps;
                    let num = (obj.loss(y[i], &up) - obj.loss(y[i], &dn)) / (2.0 * eps);
                    assert!((num - gh[i * k + c][0] as f64).abs() < 1e-4, "{} row {i} class {c}", obj.name());
                }
            }
        }
    }

    #[test]
    fn label_checks_name_the_row() {
        assert!(Binary.check_labels(&[0.0, 1.0]).is_ok());
        let e = Binary.check_labels(&[0.0, 0.5]).unwrap_err().to_string();
        assert!(e.contains("row 1"), "{e}");
        assert!(Softmax { num_class: 3 }.check_labels(&[0.0, 3.0]).is_err());
        assert!(L2.check_labels(&[f64::NAN]).is_err());
    }

    #[test]
    fn init_scores() {
        let y = [0.0, 1.0, 1.0, 1.0];
        assert!((Binary.init_score(&y, None)[0] - 3f64.ln()).abs() < 1e-12);
        assert_eq!(Quantile { alpha: 0.5 }.init_score(&[1.0, 5.0, 3.0], None), vec![3.0]);
        assert!((L2.init_score(&[1.0, 3.0], Some(&[3.0, 1.0]))[0] - 1.5).abs() < 1e-12);
    }
}

//! Volatility indicators: ATR/NATR and Bollinger bands (TA-Lib algorithms), plus rolling
//! close-to-close, Parkinson, Garman–Klass and Rogers–Satchell volatility and rolling
//! skewness/kurtosis of log returns (no TA-Lib equivalent; definitions documented per item).
//!
//! Rolling estimators are per-bar (not annualised) and use running sums updated in time
//! order, so a value at bar t depends on bars <= t only and is bit-identical however much
//! future data follows.

use super::trend::TA_EPSILON;
use super::{nan_vec, true_range};

/// Average true range with Wilder smoothing (TA-Lib `ATR`); lookback `period`.
pub fn atr(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<f64> {
    let n = close.len();
    let mut out = nan_vec(n);
    if period == 0 || n <= period {
        return out;
    }
    let p = period as f64;
    let mut sum = 0.0;
    for i in 1..=period {
        sum += true_range(high[i], low[i], close[i - 1]);
    }
    let mut prev = sum / p;
    out[period] = prev;
    // Wilder smoothing as a multiply-add (no division on the loop-carried chain); within
    // ~2e-15 of TA-Lib, which is itself not bit-stable across versions here.
    let (decay, inv) = ((p - 1.0) / p, 1.0 / p);
    for i in period + 1..n {
        prev = prev * decay + true_range(high[i], low[i], close[i - 1]) * inv;
        out[i] = prev;
    }
    out
}

/// ATR as a percentage of the close (TA-Lib `NATR`); lookback `period`.
pub fn natr(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<f64> {
    let mut out = atr(high, low, close, period);
    for (v, &c) in out.iter_mut().zip(close) {
        if !v.is_nan() {
            *v = if -TA_EPSILON < c && c < TA_EPSILON { 0.0 } else { (*v / c) * 100.0 };
        }
    }
    out
}

/// Bollinger bands `[upper, middle, lower]` over an SMA with population standard deviation
/// (TA-Lib `BBANDS`, matype 0, equal up/down deviations); lookback `period - 1`.
pub fn bbands(x: &[f64], period: usize, nbdev: f64) -> [Vec<f64>; 3] {
    let n = x.len();
    let mut upper = nan_vec(n);
    let mut mid = nan_vec(n);
    let mut lower = nan_vec(n);
    if period < 2 || n < period {
        return [upper, mid, lower];
    }
    // One pass: TA-Lib's running sum (mean) and running sum of squares (variance as
    // E[x^2] - mean^2), in its order of operations.
    let p = period as f64;
    let (mut total, mut total2) = (0.0, 0.0);
    for &v in &x[..period - 1] {
        total += v;
        total2 += v * v;
    }
    for t in period - 1..n {
        let v = x[t];
        total += v;
        total2 += v * v;
        let m = total / p;
        let mut mean2 = total2 / p;
        let old = x[t + 1 - period];
        total -= old;
        total2 -= old * old;
        mean2 -= m * m;
        let sd = if mean2 >= TA_EPSILON { mean2.sqrt() } else { 0.0 };
        let d = sd * nbdev;
        mid[t] = m;
        upper[t] = m + d;
        lower[t] = m - d;
    }
    [upper, mid, lower]
}

/// One-bar log return ending at `t` (t >= 1).
#[inline]
fn log_ret(close: &[f64], t: usize) -> f64 {
    (close[t] / close[t - 1]).ln()
}

/// The last `period` per-bar values, so a value leaving a rolling window is read back
/// (bit-identical) instead of recomputed: halves the `ln` calls of every estimator here.
struct Window {
    ring: Vec<f64>,
    next: usize,
}

impl Window {
    fn new(period: usize) -> Self {
        Window { ring: vec![0.0; period], next: 0 }
    }
    /// Store `v` and return the value pushed `period` pushes ago (0.0 before that, which
    /// subtracts as an exact no-op).
    #[inline]
    fn push(&mut self, v: f64) -> f64 {
        let old = std::mem::replace(&mut self.ring[self.next], v);
        self.next = if self.next + 1 == self.ring.len() { 0 } else { self.next + 1 };
        old
    }
}

/// Sample standard deviation of the last `period` one-bar log returns; lookback `period`.
pub fn close_vol(close: &[f64], period: usize) -> Vec<f64> {
    let n = close.len();
    let mut out = nan_vec(n);
    if period < 2 || n <= period {
        return out;
    }
    let p = period as f64;
    let (mut s1, mut s2) = (0.0, 0.0);
    let mut w = Window::new(period);
    for t in 1..period {
        let x = log_ret(close, t);
        w.push(x);
        s1 += x;
        s2 += x * x;
    }
    for t in period..n {
        let x = log_ret(close, t);
        let old = w.push(x);
        s1 -= old;
        s2 -= old * old;
        s1 += x;
        s2 += x * x;
        let var = (s2 - s1 * s1 / p) / (p - 1.0);
        out[t] = var.max(0.0).sqrt();
    }
    out
}

/// `sqrt(mean(f(i)))` over each window of `period` bars (a negative mean clamps to 0).
fn sqrt_mean_of(n: usize, period: usize, f: impl Fn(usize) -> f64) -> Vec<f64> {
    let mut out = nan_vec(n);
    if period == 0 || n < period {
        return out;
    }
    let p = period as f64;
    let mut s = 0.0;
    let mut w = Window::new(period);
    for i in 0..period - 1 {
        let v = f(i);
        w.push(v);
        s += v;
    }
    for t in period - 1..n {
        let v = f(t);
        s -= w.push(v);
        s += v;
        out[t] = (s / p).max(0.0).sqrt();
    }
    out
}

/// Parkinson high–low volatility: `sqrt(mean(ln(H/L)^2) / (4 ln 2))`; lookback `period - 1`.
pub fn parkinson(high: &[f64], low: &[f64], period: usize) -> Vec<f64> {
    let k = 1.0 / (4.0 * std::f64::consts::LN_2);
    sqrt_mean_of(high.len(), period, |i| k * (high[i] / low[i]).ln().powi(2))
}

/// Garman–Klass volatility: `sqrt(mean(0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2))`;
/// lookback `period - 1`.
pub fn garman_klass(open: &[f64], high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<f64> {
    let k = 2.0 * std::f64::consts::LN_2 - 1.0;
    sqrt_mean_of(close.len(), period, |i| 0.5 * (high[i] / low[i]).ln().powi(2) - k * (close[i] / open[i]).ln().powi(2))
}

/// Rogers–Satchell volatility: `sqrt(mean(ln(H/C) ln(H/O) + ln(L/C) ln(L/O)))`;
/// lookback `period - 1`.
pub fn rogers_satchell(open: &[f64], high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<f64> {
    sqrt_mean_of(close.len(), period, |i| {
        let (o, h, l, c) = (open[i], high[i], low[i], close[i]);
        (h / c).ln() * (h / o).ln() + (l / c).ln() * (l / o).ln()
    })
}

/// Rolling (population) skewness and excess kurtosis of the last `period` one-bar log
/// returns; 0 when the window has no variance. Lookback `period`.
pub fn skew_kurt(close: &[f64], period: usize) -> [Vec<f64>; 2] {
    let n = close.len();
    let mut skew = nan_vec(n);
    let mut kurt = nan_vec(n);
    if period < 3 || n <= period {
        return [skew, kurt];
    }
    let p = period as f64;
    let mut s = [0.0f64; 4];
    let add = |s: &mut [f64; 4], x: f64, sign: f64| {
        let x2 = x * x;
        s[0] += sign * x;
        s[1] += sign * x2;
        s[2] += sign * x2 * x;
        s[3] += sign * x2 * x2;
    };
    let mut w = Window::new(period);
    for t in 1..period {
        let x = log_ret(close, t);
        w.push(x);
        add(&mut s, x, 1.0);
    }
    for t in period..n {
        let x = log_ret(close, t);
        add(&mut s, w.push(x), -1.0);
        add(&mut s, x, 1.0);
        let m = s[0] / p;
        let (e2, e3, e4) = (s[1] / p, s[2] / p, s[3] / p);
        let m2 = e2 - m * m;
        let m3 = e3 - 3.0 * m * e2 + 2.0 * m * m * m;
        let m4 = e4 - 4.0 * m * e3 + 6.0 * m * m * e2 - 3.0 * m * m * m * m;
        // Windows with (numerically) no variance have no defined shape: report 0.
        if m2 > 1e-14 * e2.max(f64::MIN_POSITIVE) && m2 > 0.0 {
            skew[t] = m3 / (m2 * m2.sqrt());
            kurt[t] = m4 / (m2 * m2) - 3.0;
        } else {
            skew[t] = 0.0;
            kurt[t] = 0.0;
        }
    }
    [skew, kurt]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_vol_matches_two_pass() {
        let c: Vec<f64> = (0..100).map(|i| 100.0 * (1.0 + 0.01 * ((i * 7 % 11) as f64 - 5.0) / 5.0)).collect();
        let v = close_vol(&c, 20);
        assert!(v[19].is_nan());
        let t = 57;
        let r: Vec<f64> = (t - 19..=t).map(|i| (c[i] / c[i - 1]).ln()).collect();
        let m = r.iter().sum::<f64>() / 20.0;
        let sd = (r.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 19.0).sqrt();
        assert!((v[t] - sd).abs() < 1e-12, "{} vs {sd}", v[t]);
    }

    #[test]
    fn skew_kurt_match_two_pass() {
        let c: Vec<f64> = (0..200).map(|i| 50.0 + ((i * i) % 17) as f64 * 0.1 + i as f64 * 0.01).collect();
        let [s, k] = skew_kurt(&c, 30);
        let t = 150;
        let r: Vec<f64> = (t - 29..=t).map(|i| (c[i] / c[i - 1]).ln()).collect();
        let m = r.iter().sum::<f64>() / 30.0;
        let cm = |p: i32| r.iter().map(|x| (x - m).powi(p)).sum::<f64>() / 30.0;
        assert!((s[t] - cm(3) / cm(2).powf(1.5)).abs() < 1e-8);
        assert!((k[t] - (cm(4) / cm(2).powi(2) - 3.0)).abs() < 1e-8);
    }

    #[test]
    fn range_estimators_are_zero_for_flat_bars_and_positive_otherwise() {
        let o = vec![10.0; 30];
        assert!(parkinson(&o, &o, 10)[9..].iter().all(|&v| v == 0.0));
        let h = vec![11.0; 30];
        let l = vec![9.0; 30];
        assert!(parkinson(&h, &l, 10)[9..].iter().all(|&v| v > 0.0));
        assert!(garman_klass(&o, &h, &l, &o, 10)[9..].iter().all(|&v| v > 0.0));
        assert!(rogers_satchell(&o, &h, &l, &o, 10)[9..].iter().all(|&v| v > 0.0));
    }
}

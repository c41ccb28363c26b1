//! Trend indicators: SMA, EMA, MACD, ADX/+DI/−DI and linear-regression slope.
//!
//! Each kernel is a plain function over slices that allocates its output once and follows
//! TA-Lib's algorithm step for step (same seeding, same smoothing, same order of floating
//! point operations), so values agree with TA-Lib to ~1e-12 relative. Outputs have the
//! input's length; indices before the TA-Lib lookback hold NaN.

use super::{nan_vec, true_range};

/// TA-Lib's `TA_IS_ZERO` tolerance.
pub(crate) const TA_EPSILON: f64 = 1e-14;

fn is_zero(v: f64) -> bool {
    -TA_EPSILON < v && v < TA_EPSILON
}

/// Simple moving average (TA-Lib `SMA`); lookback `period - 1`.
pub fn sma(x: &[f64], period: usize) -> Vec<f64> {
    let mut out = nan_vec(x.len());
    sma_into(x, period, &mut out);
    out
}

/// SMA written into `out` (same length as `x`), TA-Lib's running-sum order.
pub(crate) fn sma_into(x: &[f64], period: usize, out: &mut [f64]) {
    let n = x.len();
    if period == 0 || n < period {
        return;
    }
    let mut total = 0.0;
    for &v in &x[..period - 1] {
        total += v;
    }
    let p = period as f64;
    for i in period - 1..n {
        total += x[i];
        let t = total;
        total -= x[i + 1 - period];
        out[i] = t / p;
    }
}

/// TA-Lib's smoothing factor `2 / (period + 1)`.
pub(crate) fn ema_k(period: usize) -> f64 {
    2.0 / ((period + 1) as f64)
}

/// Exponential moving average (TA-Lib `EMA`: seeded with the SMA of the first `period`
/// values); lookback `period - 1`.
pub fn ema(x: &[f64], period: usize) -> Vec<f64> {
    let mut out = nan_vec(x.len());
    ema_seeded_at(x, period, period.saturating_sub(1), &mut out);
    out
}

/// EMA whose SMA seed is the window ending at `seed_end`, written from `seed_end` on.
/// MACD seeds its fast EMA at the slow EMA's first index, as TA-Lib does.
pub(crate) fn ema_seeded_at(x: &[f64], period: usize, seed_end: usize, out: &mut [f64]) {
    let n = x.len();
    if period == 0 || seed_end + 1 < period || seed_end >= n {
        return;
    }
    let mut sum = 0.0;
    for &v in &x[seed_end + 1 - period..=seed_end] {
        sum += v;
    }
    let k = ema_k(period);
    let mut prev = sum / period as f64;
    out[seed_end] = prev;
    for (o, &v) in out[seed_end + 1..n].iter_mut().zip(&x[seed_end + 1..n]) {
        prev = ((v - prev) * k) + prev;
        *o = prev;
    }
}

/// MACD line, signal and histogram (TA-Lib `MACD`); lookback `slow - 1 + signal - 1`.
pub fn macd(x: &[f64], fast: usize, slow: usize, signal: usize) -> [Vec<f64>; 3] {
    let n = x.len();
    let (fast, slow) = if slow < fast { (slow, fast) } else { (fast, slow) };
    let mut line = nan_vec(n);
    let mut sig = nan_vec(n);
    let mut hist = nan_vec(n);
    let start = slow - 1; // first index with both EMAs
    let first_out = start + signal - 1;
    if fast == 0 || signal == 0 || n <= first_out {
        return [line, sig, hist];
    }
    // Both EMAs run in one pass; the fast one is seeded on the window ending at `start`.
    let seed = |p: usize| x[start + 1 - p..=start].iter().fold(0.0, |a, &v| a + v) / p as f64;
    let (kf, ks, kg) = (ema_k(fast), ema_k(slow), ema_k(signal));
    let (mut ef, mut es) = (seed(fast), seed(slow));
    // Phase 1: MACD values that only seed the signal line (its SMA).
    let mut sig_sum = ef - es;
    for &v in &x[start + 1..=first_out] {
        es = ((v - es) * ks) + es;
        ef = ((v - ef) * kf) + ef;
        sig_sum += ef - es;
    }
    let m = ef - es;
    let mut prev_sig = sig_sum / signal as f64;
    line[first_out] = m;
    sig[first_out] = prev_sig;
    hist[first_out] = m - prev_sig;
    // Phase 2: everything, branch-free.
    let outs = line[first_out + 1..].iter_mut().zip(&mut sig[first_out + 1..]).zip(&mut hist[first_out + 1..]);
    for (((l, s), h), &v) in outs.zip(&x[first_out + 1..]) {
        es = ((v - es) * ks) + es;
        ef = ((v - ef) * kf) + ef;
        let m = ef - es;
        prev_sig = ((m - prev_sig) * kg) + prev_sig;
        *l = m;
        *s = prev_sig;
        *h = m - prev_sig;
    }
    [line, sig, hist]
}

/// ADX, +DI and −DI (TA-Lib `ADX`, `PLUS_DI`, `MINUS_DI`, Wilder smoothing) in one pass.
/// Lookbacks: ADX `2·period − 1`, DI `period`.
pub fn adx_di(high: &[f64], low: &[f64], close: &[f64], period: usize) -> [Vec<f64>; 3] {
    let n = close.len();
    let mut adx = nan_vec(n);
    let mut pdi = nan_vec(n);
    let mut mdi = nan_vec(n);
    if period < 2 || n <= period {
        return [adx, pdi, mdi];
    }
    let p = period as f64;
    let (mut pdm, mut mdm, mut tr) = (0.0, 0.0, 0.0);
    let mut sum_dx = 0.0;
    let mut prev_adx = 0.0;
    for i in 1..n {
        let diff_p = high[i] - high[i - 1];
        let diff_m = low[i - 1] - low[i];
        let smoothing = i >= period;
        if smoothing {
            mdm -= mdm / p;
            pdm -= pdm / p;
        }
        if diff_m > 0.0 && diff_p < diff_m {
            mdm += diff_m;
        } else if diff_p > 0.0 && diff_p > diff_m {
            pdm += diff_p;
        }
        let r = true_range(high[i], low[i], close[i - 1]);
        tr = if smoothing { tr - tr / p + r } else { tr + r };
        if !smoothing {
            continue;
        }
        // DI as TA-Lib's PLUS_DI/MINUS_DI report it (0 when the range is 0).
        let (m_di, p_di) = if is_zero(tr) { (0.0, 0.0) } else { (100.0 * (mdm / tr), 100.0 * (pdm / tr)) };
        pdi[i] = p_di;
        mdi[i] = m_di;
        let dx = if !is_zero(tr) && !is_zero(m_di + p_di) {
            Some(100.0 * ((m_di - p_di).abs() / (m_di + p_di)))
        } else {
            None
        };
        if i < 2 * period - 1 {
            sum_dx += dx.unwrap_or(0.0);
        } else if i == 2 * period - 1 {
            sum_dx += dx.unwrap_or(0.0);
            prev_adx = sum_dx / p;
            adx[i] = prev_adx;
        } else {
            if let Some(dx) = dx {
                prev_adx = (prev_adx * (p - 1.0) + dx) / p;
            }
            adx[i] = prev_adx;
        }
    }
    [adx, pdi, mdi]
}

/// Slope of the least-squares line through the last `period` values (TA-Lib
/// `LINEARREG_SLOPE`); lookback `period - 1`.
///
/// TA-Lib 0.8 slides both window sums in O(1) and rebuilds them from the window every
/// `32·period` bars, or as soon as the value leaving the window outweighs 100× the window's
/// absolute sum; we do the same, so results match bit for bit.
pub fn linreg_slope(x: &[f64], period: usize) -> Vec<f64> {
    let n = x.len();
    let mut out = nan_vec(n);
    if period < 2 || n < period {
        return out;
    }
    let pf = period as f64;
    let lookback = period - 1;
    let sum_x = pf * (pf - 1.0) * 0.5;
    let sum_x_sqr = (period * (period - 1) * (2 * period - 1) / 6) as f64;
    let divisor = sum_x * sum_x - pf * sum_x_sqr;
    // Weights count down from `lookback` (oldest) to 0 (newest).
    let rebuild = |end: usize| {
        let (mut sy, mut sxy, mut sabs) = (0.0, 0.0, 0.0);
        let mut w = lookback as f64;
        for &v in &x[end - lookback..=end] {
            sy += v;
            sxy += w * v;
            sabs += v.abs();
            w -= 1.0;
        }
        (sy, sxy, sabs)
    };
    let (mut sum_y, mut sum_xy, mut sum_abs) = rebuild(lookback);
    out[lookback] = (pf * sum_xy - sum_x * sum_y) / divisor;
    let mut until_reseed = 32 * period;
    for t in period..n {
        let trailing = x[t - period];
        let weighted = pf * trailing;
        sum_xy = sum_xy + sum_y - weighted;
        sum_y = sum_y - trailing + x[t];
        sum_abs = sum_abs - trailing.abs() + x[t].abs();
        until_reseed -= 1;
        if until_reseed == 0 || weighted.abs() > 100.0 * sum_abs {
            until_reseed = 32 * period;
            (sum_y, sum_xy, sum_abs) = rebuild(t);
        }
        out[t] = (pf * sum_xy - sum_x * sum_y) / divisor;
    }
    out
}

/// `x / ma - 1` written over `ma`: distance of a price from its average, scale-free.
pub(crate) fn price_over(x: &[f64], mut ma: Vec<f64>) -> Vec<f64> {
    ma.iter_mut().zip(x).for_each(|(m, &a)| *m = a / *m - 1.0);
    ma
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sma_and_ema_basic() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let s = sma(&x, 3);
        assert!(s[1].is_nan());
        assert_eq!(&s[2..], &[2.0, 3.0, 4.0]);
        let e = ema(&x, 3);
        assert_eq!(e[2], 2.0);
        assert_eq!(e[3], 3.0); // (4-2)*0.5+2
    }

    #[test]
    fn slope_of_a_line_is_its_gradient() {
        let x: Vec<f64> = (0..30).map(|i| 3.0 + 0.5 * i as f64).collect();
        let s = linreg_slope(&x, 10);
        assert!(s[8].is_nan());
        for v in &s[9..] {
            assert!((v - 0.5).abs() < 1e-12);
        }
    }

    #[test]
    fn short_input_is_all_nan() {
        let x = [1.0, 2.0];
        assert!(sma(&x, 5).iter().all(|v| v.is_nan()));
        assert!(macd(&x, 12, 26, 9)[0].iter().all(|v| v.is_nan()));
    }
}

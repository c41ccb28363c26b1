//! Momentum indicators: RSI, CMO, stochastic %K/%D, Williams %R, CCI, ROC, ROCP, MOM.
//!
//! Kernels follow TA-Lib's algorithms (Wilder smoothing for RSI/CMO, SMA-smoothed slow
//! stochastic, circular-buffer CCI) including its order of operations, so values match
//! TA-Lib within ~1e-12 relative. Indices before the lookback hold NaN.

use super::nan_vec;
use super::trend::TA_EPSILON;
#[cfg(doc)]
use super::trend::sma_into;

fn is_zero(v: f64) -> bool {
    -TA_EPSILON < v && v < TA_EPSILON
}

/// Wilder-smoothed average gain and loss, calling `emit(i, gain, loss)` from index `period`.
fn wilder_gain_loss(x: &[f64], period: usize, mut emit: impl FnMut(usize, f64, f64)) {
    let n = x.len();
    if period < 2 || n <= period {
        return;
    }
    let p = period as f64;
    let (mut gain, mut loss) = (0.0, 0.0);
    // Selects rather than branches (up/down moves are random); adding 0.0 leaves a sum
    // bit-identical, so this equals TA-Lib's if/else exactly.
    for i in 1..=period {
        let d = x[i] - x[i - 1];
        loss -= if d < 0.0 { d } else { 0.0 };
        gain += if d < 0.0 { 0.0 } else { d };
    }
    loss /= p;
    gain /= p;
    emit(period, gain, loss);
    // Wilder's `(prev·(p−1) + x) / p` as `prev·decay + x·inv`: a multiply-add instead of a
    // division on the loop-carried chain (3× faster; within ~2e-15 of TA-Lib).
    let (decay, inv) = ((p - 1.0) / p, 1.0 / p);
    for i in period + 1..n {
        let d = x[i] - x[i - 1];
        loss = loss * decay + (if d < 0.0 { -d } else { 0.0 }) * inv;
        gain = gain * decay + (if d < 0.0 { 0.0 } else { d }) * inv;
        emit(i, gain, loss);
    }
}

/// Relative strength index (TA-Lib `RSI`); lookback `period`.
pub fn rsi(x: &[f64], period: usize) -> Vec<f64> {
    let mut out = nan_vec(x.len());
    wilder_gain_loss(x, period, |i, g, l| {
        let s = g + l;
        out[i] = if is_zero(s) { 0.0 } else { 100.0 * (g / s) };
    });
    out
}

/// Chande momentum oscillator (TA-Lib `CMO`, Wilder-smoothed like its RSI); lookback `period`.
pub fn cmo(x: &[f64], period: usize) -> Vec<f64> {
    let mut out = nan_vec(x.len());
    wilder_gain_loss(x, period, |i, g, l| {
        let s = g + l;
        out[i] = if is_zero(s) { 0.0 } else { 100.0 * ((g - l) / s) };
    });
    out
}

/// TA-Lib's SMA as a stream: `push` returns the mean once `period` values have arrived,
/// with the same running-sum order as [`sma_into`], keeping only the window in a ring.
struct RunningSma {
    ring: Vec<f64>,
    next: usize,
    seen: usize,
    total: f64,
}

impl RunningSma {
    fn new(period: usize) -> Self {
        RunningSma { ring: vec![0.0; period], next: 0, seen: 0, total: 0.0 }
    }

    #[inline]
    fn push(&mut self, v: f64) -> Option<f64> {
        let p = self.ring.len();
        self.ring[self.next] = v;
        self.next = if self.next + 1 == p { 0 } else { self.next + 1 };
        self.seen += 1;
        self.total += v;
        if self.seen < p {
            return None;
        }
        let mean = self.total / p as f64;
        // The oldest value now sits where the next one will be written.
        self.total -= self.ring[self.next];
        Some(mean)
    }
}

/// Highest high and lowest low over each window of `period` bars, calling
/// `emit(t, highest, lowest)` from `t = period - 1`.
///
/// Van Herk / Gil-Werman: the series is cut into blocks of `period` bars; a window spans the
/// tail of the previous block (its suffix extremes, computed once per block) and the head of
/// the current one (a running prefix extreme). About three comparisons per bar and no
/// data-dependent branches, so trending and ranging series cost the same.
fn rolling_extremes(high: &[f64], low: &[f64], period: usize, mut emit: impl FnMut(usize, f64, f64)) {
    let n = high.len().min(low.len());
    if period == 0 || n < period {
        return;
    }
    // suffix_*[j]: extreme of the previous block from its offset j to its end.
    let mut suffix_hi = vec![f64::NEG_INFINITY; period + 1];
    let mut suffix_lo = vec![f64::INFINITY; period + 1];
    // Inputs are validated finite, so plain compares (one `maxsd`/`minsd` each) suffice.
    let max = |a: f64, b: f64| if a > b { a } else { b };
    let min = |a: f64, b: f64| if a < b { a } else { b };
    for block in (0..n).step_by(period) {
        if block >= period {
            let prev = block - period;
            for j in (0..period).rev() {
                suffix_hi[j] = max(suffix_hi[j + 1], high[prev + j]);
                suffix_lo[j] = min(suffix_lo[j + 1], low[prev + j]);
            }
        }
        let (mut pre_hi, mut pre_lo) = (f64::NEG_INFINITY, f64::INFINITY);
        for t in block..(block + period).min(n) {
            pre_hi = max(pre_hi, high[t]);
            pre_lo = min(pre_lo, low[t]);
            if t + 1 >= period {
                // Offset of the window's first bar inside the previous block (period = none).
                let j = t + 1 - block;
                emit(t, max(pre_hi, suffix_hi[j]), min(pre_lo, suffix_lo[j]));
            }
        }
    }
}

/// Slow stochastic %K and %D with SMA smoothing (TA-Lib `STOCH`, matype 0);
/// lookback `fastk - 1 + slowk - 1 + slowd - 1`.
pub fn stoch(high: &[f64], low: &[f64], close: &[f64], fastk: usize, slowk: usize, slowd: usize) -> [Vec<f64>; 2] {
    let n = close.len();
    let mut k = nan_vec(n);
    let mut d = nan_vec(n);
    if fastk == 0 || slowk == 0 || slowd == 0 || n < fastk {
        return [k, d];
    }
    // Fast %K, slow %K and %D are streamed: each SMA keeps only its own window.
    let (mut slow_k, mut slow_d) = (RunningSma::new(slowk), RunningSma::new(slowd));
    rolling_extremes(high, low, fastk, |t, hh, ll| {
        let range = hh - ll;
        let fast = if range != 0.0 { (close[t] - ll) * 100.0 / range } else { 0.0 };
        // %K is only reported where %D exists, as TA-Lib aligns both outputs.
        if let Some(kv) = slow_k.push(fast)
            && let Some(dv) = slow_d.push(kv)
        {
            k[t] = kv;
            d[t] = dv;
        }
    });
    [k, d]
}

/// Williams %R (TA-Lib `WILLR`); lookback `period - 1`.
pub fn willr(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<f64> {
    let n = close.len();
    let mut out = nan_vec(n);
    if period == 0 || n < period {
        return out;
    }
    rolling_extremes(high, low, period, |t, hh, ll| {
        // One division instead of TA-Lib's two (`/ -100` then `/ diff`): equal within 1 ulp.
        let range = hh - ll;
        out[t] = if range != 0.0 { (hh - close[t]) * -100.0 / range } else { 0.0 };
    });
    out
}

/// Commodity channel index (TA-Lib `CCI`, summing its circular buffer in slot order);
/// lookback `period - 1`.
pub fn cci(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<f64> {
    let n = close.len();
    let mut out = nan_vec(n);
    if period < 2 || n < period {
        return out;
    }
    let tp = |i: usize| (high[i] + low[i] + close[i]) / 3.0;
    let p = period as f64;
    // TA-Lib stores bar i in slot i % period and sums slots 0..period in order; the mean
    // must reproduce that rounding exactly (the numerator `last - avg` cancels). Slots
    // 0..=r (r = t % period) hold the current block's bars in time order, so their sum is a
    // running prefix sum; only the tail slots r+1.. are re-added per bar — half the chain.
    let mut buf = vec![0.0; period];
    for i in 0..period - 1 {
        buf[i] = tp(i);
    }
    let mut prefix = buf[..period - 1].iter().fold(0.0, |a, &v| a + v);
    let mut r = period - 1; // slot of bar t
    for t in period - 1..n {
        let last = tp(t);
        buf[r] = last;
        prefix = if r == 0 { last } else { prefix + last };
        let mut avg = prefix;
        for &v in &buf[r + 1..] {
            avg += v;
        }
        avg /= p;
        // The mean must be summed in TA-Lib's order (the numerator `last - avg` cancels);
        // the deviation sum has no cancellation, so four accumulators break its chain.
        let mut acc = [0.0; 4];
        let mut chunks = buf.chunks_exact(4);
        for c in &mut chunks {
            for k in 0..4 {
                acc[k] += (c[k] - avg).abs();
            }
        }
        let mut dev = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        for &v in chunks.remainder() {
            dev += (v - avg).abs();
        }
        let num = last - avg;
        out[t] = if num != 0.0 && dev != 0.0 { num / (0.015 * (dev / p)) } else { 0.0 };
        r = if r + 1 == period { 0 } else { r + 1 };
    }
    out
}

/// Rate of change in percent, `(x / x[t-period] - 1) · 100` (TA-Lib `ROC`); lookback `period`.
pub fn roc(x: &[f64], period: usize) -> Vec<f64> {
    lagged(x, period, |now, then| if then != 0.0 { ((now / then) - 1.0) * 100.0 } else { 0.0 })
}

/// Rate of change as a fraction, `(x - x[t-period]) / x[t-period]` (TA-Lib `ROCP`).
pub fn rocp(x: &[f64], period: usize) -> Vec<f64> {
    lagged(x, period, |now, then| if then != 0.0 { (now - then) / then } else { 0.0 })
}

/// Momentum, `x - x[t-period]` (TA-Lib `MOM`); lookback `period`.
pub fn mom(x: &[f64], period: usize) -> Vec<f64> {
    lagged(x, period, |now, then| now - then)
}

/// Log return `ln(x / x[t-period])`; lookback `period`.
pub fn log_return(x: &[f64], period: usize) -> Vec<f64> {
    lagged(x, period, |now, then| (now / then).ln())
}

fn lagged(x: &[f64], period: usize, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let n = x.len();
    let mut out = nan_vec(n);
    if period == 0 {
        return out;
    }
    for t in period..n {
        out[t] = f(x[t], x[t - period]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsi_bounds_and_monotone_input() {
        let up: Vec<f64> = (0..50).map(|i| 100.0 + i as f64).collect();
        let r = rsi(&up, 14);
        assert!(r[13].is_nan());
        assert!(r[14..].iter().all(|&v| (v - 100.0).abs() < 1e-12));
        let flat = vec![5.0; 30];
        assert!(rsi(&flat, 14)[14..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn stoch_and_willr_ranges() {
        let n = 60;
        let c: Vec<f64> = (0..n).map(|i| 100.0 + (i as f64 * 0.7).sin() * 5.0).collect();
        let h: Vec<f64> = c.iter().map(|v| v + 1.0).collect();
        let l: Vec<f64> = c.iter().map(|v| v - 1.0).collect();
        let [k, d] = stoch(&h, &l, &c, 14, 3, 3);
        assert!(k[16].is_nan() && d[16].is_nan());
        for t in 17..n {
            assert!((0.0..=100.0).contains(&k[t]) && (0.0..=100.0).contains(&d[t]));
        }
        let w = willr(&h, &l, &c, 14);
        assert!(w[13..].iter().all(|v| (-100.0..=0.0).contains(v)));
    }

    #[test]
    fn rolling_extremes_match_brute_force() {
        let h: Vec<f64> = (0..200).map(|i| ((i * 37) % 23) as f64 + (i as f64 * 0.1).sin()).collect();
        let l: Vec<f64> = h.iter().map(|v| v - 1.0 - ((*v as usize) % 3) as f64).collect();
        for period in [1, 2, 7, 9, 64, 200] {
            let mut seen = 0;
            rolling_extremes(&h, &l, period, |t, hh, ll| {
                let w = t + 1 - period..=t;
                assert_eq!(hh, w.clone().map(|j| h[j]).fold(f64::MIN, f64::max), "period {period}, t {t}");
                assert_eq!(ll, w.map(|j| l[j]).fold(f64::MAX, f64::min), "period {period}, t {t}");
                seen += 1;
            });
            assert_eq!(seen, 201 - period);
        }
    }

    #[test]
    fn lagged_family() {
        let x = [1.0, 2.0, 4.0];
        assert_eq!(roc(&x, 1)[2], 100.0);
        assert_eq!(rocp(&x, 2)[2], 3.0);
        assert_eq!(mom(&x, 1)[1], 1.0);
        assert!((log_return(&x, 2)[2] - 4f64.ln()).abs() < 1e-15);
    }
}

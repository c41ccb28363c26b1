//! Volume indicators: OBV and MFI (TA-Lib algorithms), plus OBV slope, distance from a
//! rolling VWAP and volume z-score.
//!
//! Series with no volume at all (FX and CFD quote data) get well-defined values instead of
//! NaN: MFI is 0 (TA-Lib's rule), VWAP falls back to the mean typical price, the z-score is 0.

use super::trend::linreg_slope;
use super::{nan_vec, output_vec};

/// On-balance volume (TA-Lib `OBV`): starts at the first bar's volume; lookback 0.
pub fn obv(close: &[f64], volume: &[f64]) -> Vec<f64> {
    let n = close.len();
    let mut out = output_vec(n);
    if n == 0 {
        return out;
    }
    let mut prev_obv = volume[0];
    out.push(prev_obv);
    for i in 1..n {
        // Branch-free: adding ±volume (or +0) is bit-identical to TA-Lib's if/else, and
        // up/down closes are too random for the branch predictor.
        let dir = f64::from(i8::from(close[i] > close[i - 1]) - i8::from(close[i] < close[i - 1]));
        prev_obv += volume[i] * dir;
        out.push(prev_obv);
    }
    out
}

/// Money flow index (TA-Lib `MFI`); lookback `period`.
///
/// As in TA-Lib 0.8: typical prices within 1e-14 relative of the previous bar's count as
/// unchanged (no flow), and the running flow sums are rebuilt from the window every
/// `32·period` bars or when the flow leaving the window exceeds 100× what remains, so
/// rounding residue never masquerades as flow. A window with total flow below 1 gives 0.
pub fn mfi(high: &[f64], low: &[f64], close: &[f64], volume: &[f64], period: usize) -> Vec<f64> {
    let n = close.len();
    let mut out = nan_vec(n);
    if period < 2 || n <= period {
        return out;
    }
    let tp = |i: usize| (high[i] + low[i] + close[i]) / 3.0;
    // Flows of the bars in the window, as (+flow, -flow) in a ring of `period` slots, so
    // each bar's flow is computed once; selects instead of branches (flow signs are random).
    let mut ring = vec![(0.0, 0.0); period];
    let mut prev_tp = tp(0);
    let mut flow = |i: usize| {
        let t = tp(i);
        let d = t - prev_tp;
        prev_tp = t;
        let f = t * volume[i];
        let flat = d.abs() <= 1e-14 * t.abs();
        let pos = if !flat && d > 0.0 { f } else { 0.0 };
        let neg = if !flat && d < 0.0 { f } else { 0.0 };
        (pos, neg)
    };
    let value = |pos: f64, neg: f64| {
        let s = pos + neg;
        if s < 1.0 { 0.0 } else { 100.0 * (pos / s) }
    };
    let (mut pos, mut neg) = (0.0, 0.0);
    for i in 1..=period {
        let f = flow(i);
        ring[i % period] = f;
        pos += f.0;
        neg += f.1;
    }
    // Slot of the bar leaving the window (bar i - period shares bar i's slot).
    let mut slot = (period + 1) % period;
    out[period] = value(pos, neg);
    let mut until_reseed = 32 * period;
    for i in period + 1..n {
        let (op, om) = ring[slot];
        pos -= op;
        neg -= om;
        let f = flow(i);
        ring[slot] = f;
        pos += f.0;
        neg += f.1;
        until_reseed -= 1;
        if until_reseed == 0 || op + om > 100.0 * (pos + neg) {
            until_reseed = 32 * period;
            (pos, neg) = (0.0, 0.0);
            // Oldest first: slots slot+1 .. period-1, then 0 ..= slot.
            for k in 1..=period {
                let (p, m) = ring[(slot + k) % period];
                pos += p;
                neg += m;
            }
        }
        out[i] = value(pos, neg);
        slot = if slot + 1 == period { 0 } else { slot + 1 };
    }
    out
}

/// Linear-regression slope of OBV over `period` bars divided by the mean volume of those
/// bars (0 when there is no volume); lookback `period - 1`.
pub fn obv_slope(close: &[f64], volume: &[f64], period: usize) -> Vec<f64> {
    let mut slope = linreg_slope(&obv(close, volume), period);
    let mut sum = 0.0;
    let p = period as f64;
    for (t, s) in slope.iter_mut().enumerate() {
        sum += volume[t];
        if t + 1 >= period {
            if !s.is_nan() {
                let mean = sum / p;
                *s = if mean > 0.0 { *s / mean } else { 0.0 };
            }
            sum -= volume[t + 1 - period];
        }
    }
    slope
}

/// `close / VWAP - 1` with VWAP over the last `period` bars on the typical price (mean
/// typical price when the window traded no volume); lookback `period - 1`.
pub fn vwap_distance(high: &[f64], low: &[f64], close: &[f64], volume: &[f64], period: usize) -> Vec<f64> {
    let n = close.len();
    let mut out = nan_vec(n);
    if period == 0 || n < period {
        return out;
    }
    let tp = |i: usize| (high[i] + low[i] + close[i]) / 3.0;
    let (mut pv, mut v, mut t_sum) = (0.0, 0.0, 0.0);
    let p = period as f64;
    for t in 0..n {
        let x = tp(t);
        pv += x * volume[t];
        v += volume[t];
        t_sum += x;
        if t + 1 >= period {
            let vwap = if v > 0.0 { pv / v } else { t_sum / p };
            out[t] = close[t] / vwap - 1.0;
            let j = t + 1 - period;
            let y = tp(j);
            pv -= y * volume[j];
            v -= volume[j];
            t_sum -= y;
        }
    }
    out
}

/// `(volume - mean) / std` over the last `period` bars (population std; 0 when constant);
/// lookback `period - 1`.
pub fn volume_z(volume: &[f64], period: usize) -> Vec<f64> {
    let n = volume.len();
    let mut out = nan_vec(n);
    if period < 2 || n < period {
        return out;
    }
    let p = period as f64;
    let (mut s1, mut s2) = (0.0, 0.0);
    for t in 0..n {
        let x = volume[t];
        s1 += x;
        s2 += x * x;
        if t + 1 >= period {
            let m = s1 / p;
            let var = s2 / p - m * m;
            // Relative floor: running sums of large volumes leave rounding noise near zero.
            out[t] = if var > 1e-12 * (s2 / p) && var > 0.0 { (x - m) / var.sqrt() } else { 0.0 };
            let old = volume[t + 1 - period];
            s1 -= old;
            s2 -= old * old;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obv_accumulates_signed_volume() {
        let c = [1.0, 2.0, 2.0, 1.0];
        let v = [10.0, 5.0, 7.0, 3.0];
        assert_eq!(obv(&c, &v), vec![10.0, 15.0, 15.0, 12.0]);
    }

    #[test]
    fn zero_volume_is_well_defined() {
        let n = 50;
        let c: Vec<f64> = (0..n).map(|i| 1.1 + (i as f64).sin() * 0.01).collect();
        let h: Vec<f64> = c.iter().map(|x| x + 0.001).collect();
        let l: Vec<f64> = c.iter().map(|x| x - 0.001).collect();
        let v = vec![0.0; n];
        assert!(mfi(&h, &l, &c, &v, 14)[14..].iter().all(|&x| x == 0.0));
        assert!(vwap_distance(&h, &l, &c, &v, 24)[23..].iter().all(|x| x.is_finite()));
        assert!(volume_z(&v, 20)[19..].iter().all(|&x| x == 0.0));
        assert!(obv_slope(&c, &v, 20)[19..].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn vwap_of_equal_volume_is_mean_typical_price() {
        let h = [3.0, 6.0, 9.0];
        let l = [3.0, 6.0, 9.0];
        let c = [3.0, 6.0, 9.0];
        let v = [2.0, 2.0, 2.0];
        let d = vwap_distance(&h, &l, &c, &v, 3);
        assert!((d[2] - (9.0 / 6.0 - 1.0)).abs() < 1e-15);
    }
}

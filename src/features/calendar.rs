//! Candle-shape and calendar features: body and shadow ratios, range, overnight gap, and
//! cyclical hour-of-day / day-of-week encodings (UTC).

use super::{nan_vec, output_vec};

const MS_PER_DAY: i64 = 86_400_000;

/// `[body, upper_shadow, lower_shadow]` as fractions of the bar's range (0 for a flat bar);
/// body is signed (`(close - open) / range`). Lookback 0.
pub fn candle_shape(open: &[f64], high: &[f64], low: &[f64], close: &[f64]) -> [Vec<f64>; 3] {
    let n = close.len();
    let (mut body, mut upper, mut lower) = (output_vec(n), output_vec(n), output_vec(n));
    for i in 0..n {
        let (o, h, l, c) = (open[i], high[i], low[i], close[i]);
        let range = h - l;
        if range > 0.0 {
            body.push((c - o) / range);
            upper.push((h - o.max(c)) / range);
            lower.push((o.min(c) - l) / range);
        } else {
            body.push(0.0);
            upper.push(0.0);
            lower.push(0.0);
        }
    }
    [body, upper, lower]
}

/// `(high - low) / close`; lookback 0.
pub fn range_pct(high: &[f64], low: &[f64], close: &[f64]) -> Vec<f64> {
    high.iter().zip(low).zip(close).map(|((&h, &l), &c)| (h - l) / c).collect()
}

/// `open / previous close - 1`; lookback 1.
pub fn gap(open: &[f64], close: &[f64]) -> Vec<f64> {
    let mut out = nan_vec(close.len());
    for i in 1..close.len() {
        out[i] = open[i] / close[i - 1] - 1.0;
    }
    out
}

/// `[hour_sin, hour_cos, dow_sin, dow_cos]` from UTC epoch-ms timestamps (hour includes
/// minutes; Monday = 0). Lookback 0.
pub fn calendar(ts: &[i64]) -> [Vec<f64>; 4] {
    let n = ts.len();
    let mut out = [output_vec(n), output_vec(n), output_vec(n), output_vec(n)];
    let tau = std::f64::consts::TAU;
    // Bars sit on a handful of distinct minutes and weekdays: cache their encodings (the
    // same expression, so values are identical) instead of two sin_cos calls per bar.
    let dow_table: [(f64, f64); 7] = std::array::from_fn(|d| (tau * d as f64 / 7.0).sin_cos());
    let mut minute_table: Vec<Option<(f64, f64)>> = vec![None; 1440];
    let hour_enc = |ms_in_day: i64| (tau * (ms_in_day as f64 / 3_600_000.0) / 24.0).sin_cos();
    for &t in ts {
        let day = t.div_euclid(MS_PER_DAY);
        let ms_in_day = t.rem_euclid(MS_PER_DAY);
        let (hs, hc) = if ms_in_day % 60_000 == 0 {
            *minute_table[(ms_in_day / 60_000) as usize].get_or_insert_with(|| hour_enc(ms_in_day))
        } else {
            hour_enc(ms_in_day)
        };
        // 1970-01-01 was a Thursday (index 3 with Monday = 0).
        let (ds, dc) = dow_table[(day + 3).rem_euclid(7) as usize];
        out[0].push(hs);
        out[1].push(hc);
        out[2].push(ds);
        out[3].push(dc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_knows_the_weekday_and_hour() {
        // 2024-01-01T06:00:00Z was a Monday.
        let [hs, hc, ds, dc] = calendar(&[1_704_088_800_000]);
        assert!((hs[0] - 1.0).abs() < 1e-12 && hc[0].abs() < 1e-12);
        assert!(ds[0].abs() < 1e-12 && (dc[0] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn candle_shape_parts_sum_to_one() {
        let [b, u, l] = candle_shape(&[10.0], &[12.0], &[9.0], &[11.0]);
        assert!((b[0].abs() + u[0] + l[0] - 1.0).abs() < 1e-12);
        let [b, ..] = candle_shape(&[10.0], &[10.0], &[10.0], &[10.0]);
        assert_eq!(b[0], 0.0);
    }
}

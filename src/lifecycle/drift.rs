//! Feature drift: the training distribution of every feature (its [`ReferenceStats`], saved
//! with each model version) against a recent window, by the two-sample KS test (the raw
//! p-value as scipy's `ks_2samp`), the population stability index over reference-quantile
//! bins, and Benjamini–Yekutieli across features. The [`DriftReport`] carries a severity that
//! maps to the response: LOW log only, MEDIUM retrain the model, HIGH retrain all models,
//! CRITICAL also raise a stop-trading alarm.
//!
//! Features are time series: 480 hourly values of a 100-bar moving-average ratio are a
//! handful of independent draws, not 480, so the raw KS p-value (which assumes independence)
//! calls a stationary series drifted. Each feature's reference therefore carries a
//! [`NullCalibration`]: windows of the drift window's length drawn from the training rows
//! themselves, compared with the whole reference, show how large the KS statistic of a
//! window is when nothing changed. The *effective* p-value reads the statistic off the
//! Kolmogorov distribution (with Stephens' finite-size correction, [`kolmogorov_sf`]) at an
//! *effective* sample size: the size at which the largest calibration window's
//! statistic (rescaled to a window independent of the reference and to the recent window's
//! length) is as likely as the largest of the n/W independent windows the training rows hold.
//! Matching the tail, not the median, matters: windows of autocorrelated features have tails
//! heavier than the Kolmogorov law's at the size that fits their median (docs/drift.md). The
//! effective p-value is never below the raw one. Benjamini–Yekutieli runs on the effective
//! p-values: features computed from one price series move together, and the adjustment
//! must hold under any dependence.
//!
//! Severity rule (thresholds in [`Policy`]): a feature is *significant* when its BH-adjusted
//! effective p-value is below `ks_p_value`; it *alerts* when significant and its KS statistic
//! exceeds `ks_alert` or its PSI `psi_threshold`; it has *drifted* when significant and its KS
//! statistic exceeds `ks_retrain` or its PSI `psi_threshold`. No alert → no drift; alerts
//! without drifted features → LOW; drifted features → MEDIUM, HIGH from `drift_high_fraction`
//! of the features, CRITICAL from `drift_critical_fraction`. See `docs/drift.md`.

use serde::{Deserialize, Serialize};

use crate::config::Policy;
use crate::error::{Error, Result};
use crate::lifecycle::ks::{self, ExactPValues, KsResult};
use crate::lifecycle::quantile_index::{self, IndexSlot, QuantileIndex, Scratch};

/// Fractions that replace an empty PSI bin (either side) so the logarithm stays finite.
pub const PSI_EPSILON: f64 = 1e-4;

/// Quantile points kept per feature: the reference ECDF is known to 1/(`REFERENCE_QUANTILES` − 1).
pub const REFERENCE_QUANTILES: usize = 1001;

/// Windows a [`NullCalibration`] draws from the training rows (evenly spaced; they overlap
/// when the training period is short).
pub const CALIBRATION_WINDOWS: usize = 64;

/// The calibration windows' upper quantile kept for reports beside their median and maximum.
pub const UPPER_QUANTILE: f64 = 0.9;

/// How noisy a drift window of one feature is when nothing has changed, measured on the
/// training rows (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullCalibration {
    /// Rows per window (the drift window's length in training rows).
    pub window: usize,
    /// Windows drawn.
    pub windows: usize,
    /// Median KS statistic of those windows against the whole reference.
    pub median_ks: f64,
    /// Their [`UPPER_QUANTILE`] quantile.
    pub upper_ks: f64,
    /// Largest KS statistic of those windows.
    pub max_ks: f64,
}

impl NullCalibration {
    /// What a calibration window's KS statistic becomes for a window of `m` rows independent
    /// of a reference of `n`: the two-sample variance factor is 1/W − 1/n for a window inside
    /// the reference and 1/m + 1/n for one outside it.
    fn scale(&self, n: usize, m: usize) -> f64 {
        let (n, w, m) = (n as f64, self.window as f64, m.max(1) as f64);
        let inside = (1.0 / w - 1.0 / n).max(1.0 / (w * n));
        ((1.0 / m + 1.0 / n) / inside).sqrt()
    }

    /// The median KS statistic of a window of `m` rows against a reference of `n` when
    /// nothing changed (the feature's noise level).
    pub fn noise(&self, n: usize, m: usize) -> f64 {
        self.median_ks * self.scale(n, m)
    }

    /// The effective two-sample size of a window of `m` rows against a reference of `n`: the
    /// largest size below the nominal `n·m/(n+m)` at which the KS statistic exceeds the
    /// calibration windows' largest with at least the chance of the largest of `n/W`
    /// independent windows, 1/(n/W + 1); `None` when the nominal size already does (the
    /// windows are as informative as independent draws).
    pub fn effective_size(&self, n: usize, m: usize) -> Option<u64> {
        let nominal = ((n * m) as f64 / (n + m) as f64).floor().max(1.0) as u64;
        let q = self.max_ks * self.scale(n, m);
        let level = 1.0 / (n as f64 / self.window as f64 + 1.0);
        if q <= 0.0 || kolmogorov_sf(nominal, q) >= level {
            return None;
        }
        // The survival function falls as k grows: the last k with sf ≥ level.
        let (mut lo, mut hi) = (1u64, nominal);
        if kolmogorov_sf(1, q) < level {
            return Some(1);
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if kolmogorov_sf(mid, q) >= level { lo = mid } else { hi = mid }
        }
        Some(lo)
    }
}

/// One feature's training distribution, compact enough to store with a model version.
/// Read-only once built (its lookup index for the drift kernel is derived from it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureReference {
    name: String,
    n: usize,
    quantiles: Vec<f64>,
    psi_edges: Vec<f64>,
    psi_expected: Vec<f64>,
    /// The feature's null calibration (none: treated as independent draws).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    calibration: Option<NullCalibration>,
    #[serde(skip)]
    index: IndexSlot,
    #[serde(skip)]
    sizes: SizeCache,
}

/// Effective sizes already solved, by recent-window length: a calibration never changes and
/// the supervisor checks windows of the same few lengths every cycle, so each is solved once.
/// Never compared, printed or saved (derived from the reference's own fields).
#[derive(Default)]
struct SizeCache(std::sync::Mutex<Vec<(usize, Option<u64>)>>);

impl SizeCache {
    fn get_or(&self, m: usize, solve: impl FnOnce() -> Option<u64>) -> Option<u64> {
        let lock = || self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&(_, k)) = lock().iter().find(|e| e.0 == m) {
            return k;
        }
        let k = solve();
        let mut v = lock();
        if v.len() >= 16 {
            v.remove(0);
        }
        v.push((m, k));
        k
    }
}

impl Clone for SizeCache {
    fn clone(&self) -> Self {
        SizeCache::default()
    }
}

impl PartialEq for SizeCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for SizeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SizeCache")
    }
}

/// Every feature's [`FeatureReference`]: what a drift check needs instead of the training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceStats {
    /// One entry per feature, in the model's column order.
    pub features: Vec<FeatureReference>,
    /// The model's own out-of-sample prediction scores on its validation rows (see
    /// [`prediction_score`]), for drift of what the model says beside what it sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<FeatureReference>,
}

/// Name of the prediction-score entry in drift reports.
pub const PREDICTION: &str = "prediction";

/// The score a prediction's distribution is compared on: its signed probability
/// (direction × probability) where the model gives a probability, else its `score` (a
/// regression's value). `None` when the record has neither.
pub fn prediction_score(direction: i8, probability: Option<f64>, score: Option<f64>) -> Option<f64> {
    probability.map(|p| f64::from(direction) * p).or(score).filter(|v| v.is_finite())
}

/// numpy's default (linear) quantile of sorted, non-empty values.
pub(crate) fn quantile_sorted(s: &[f64], p: f64) -> f64 {
    let pos = p * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(s.len() - 1);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// Bin index of `v` among ascending inner `edges` (a value equal to an edge goes right).
fn bin_of(edges: &[f64], v: f64) -> usize {
    edges.partition_point(|&e| e <= v)
}

/// The finite values of `x`, sorted ascending in `f64::total_cmp` order (−0 before +0).
fn finite_sorted(x: &[f64]) -> Vec<f64> {
    use crate::sortkey::{key, value};
    let mut keys: Vec<u64> = x.iter().copied().filter(|v| v.is_finite()).map(key).collect();
    keys.sort_unstable();
    keys.into_iter().map(value).collect()
}

impl FeatureReference {
    /// Summarise one feature's training values (non-finite values are skipped; at least one
    /// finite value is needed).
    pub fn from_values(name: &str, values: &[f64], psi_bins: usize) -> Result<Self> {
        let s = finite_sorted(values);
        if s.is_empty() {
            return Err(Error::param(format!("reference.{name}"), "no finite training values"));
        }
        if psi_bins < 2 {
            return Err(Error::param("psi_bins", format!("must be at least 2, got {psi_bins}")));
        }
        let q = REFERENCE_QUANTILES;
        let quantiles = (0..q).map(|i| quantile_sorted(&s, i as f64 / (q - 1) as f64)).collect();
        let mut psi_edges: Vec<f64> = (1..psi_bins).map(|i| quantile_sorted(&s, i as f64 / psi_bins as f64)).collect();
        psi_edges.dedup();
        let mut counts = vec![0usize; psi_edges.len() + 1];
        for &v in &s {
            counts[bin_of(&psi_edges, v)] += 1;
        }
        let psi_expected = counts.iter().map(|&c| c as f64 / s.len() as f64).collect();
        let r = FeatureReference {
            name: name.into(),
            n: s.len(),
            quantiles,
            psi_edges,
            psi_expected,
            calibration: None,
            index: IndexSlot::default(),
            sizes: SizeCache::default(),
        };
        // Built now so the first drift check does not pay for it.
        r.index();
        Ok(r)
    }

    /// Feature name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Finite training values summarised.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Quantiles at probabilities 0, 1/(q−1), …, 1 (linear interpolation, numpy's default).
    pub fn quantiles(&self) -> &[f64] {
        &self.quantiles
    }

    /// Inner PSI bin edges (reference quantiles at 1/bins, …, (bins−1)/bins).
    pub fn psi_edges(&self) -> &[f64] {
        &self.psi_edges
    }

    /// Share of the reference in each PSI bin (`psi_edges().len() + 1` values).
    pub fn psi_expected(&self) -> &[f64] {
        &self.psi_expected
    }

    /// The null calibration, if the training rows allowed one.
    pub fn calibration(&self) -> Option<&NullCalibration> {
        self.calibration.as_ref()
    }

    /// Calibrate against windows of `window` consecutive rows of `values` (the feature's
    /// training values in time order, the ones this reference summarises). Needs at least two
    /// windows' worth of finite values; with fewer the reference stays uncalibrated.
    pub fn calibrate(&mut self, values: &[f64], window: usize) {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        self.calibration = None;
        self.sizes = SizeCache::default();
        if window < 10 || finite.len() < 2 * window {
            return;
        }
        let span = finite.len() - window;
        let k = CALIBRATION_WINDOWS;
        let mut scratch = Scratch::default();
        let mut ds: Vec<f64> = (0..k)
            .map(|i| {
                let start = (i * span + (k - 1) / 2) / (k - 1);
                self.column_stats(&finite[start..start + window], &mut scratch).0
            })
            .collect();
        ds.sort_by(f64::total_cmp);
        let median_ks = 0.5 * (ds[k / 2 - 1] + ds[k / 2]);
        let upper_ks = quantile_sorted(&ds, UPPER_QUANTILE);
        self.calibration = Some(NullCalibration { window, windows: k, median_ks, upper_ks, max_ks: ds[k - 1] });
    }

    /// The effective p-value of a KS statistic `d` of `m` recent values (see the module
    /// docs): `raw` where the reference is uncalibrated.
    fn effective_p(&self, d: f64, m: usize, raw: f64) -> (Option<f64>, f64) {
        let Some(c) = &self.calibration else { return (None, raw) };
        let noise = Some(c.noise(self.n, m));
        match self.sizes.get_or(m, || c.effective_size(self.n, m)) {
            Some(k) => (noise, kolmogorov_sf(k, d).max(raw)),
            // Windows as informative as independent draws: the (exact) raw p-value stands.
            None => (noise, raw),
        }
    }

    /// Why this (deserialised) reference cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let q = &self.quantiles;
        if self.n == 0 {
            return Some(format!("{}: n is 0", self.name));
        }
        if let Some(c) = &self.calibration
            && !(c.median_ks.is_finite()
                && c.median_ks >= 0.0
                && c.upper_ks >= c.median_ks
                && c.max_ks >= c.upper_ks
                && c.max_ks <= 1.0
                && c.window > 0)
        {
            return Some(format!("{}: calibration needs a window and 0 ≤ median ≤ upper ≤ max KS ≤ 1", self.name));
        }
        if q.len() < 2 || q.iter().any(|v| !v.is_finite()) || q.windows(2).any(|w| w[0] > w[1]) {
            return Some(format!("{}: quantiles must be at least two finite ascending values", self.name));
        }
        if self.psi_edges.iter().any(|v| !v.is_finite()) || self.psi_edges.windows(2).any(|w| w[0] >= w[1]) {
            return Some(format!("{}: PSI edges must be finite and strictly ascending", self.name));
        }
        if self.psi_expected.len() != self.psi_edges.len() + 1 {
            return Some(format!(
                "{}: {} PSI shares for {} edges (need edges + 1)",
                self.name,
                self.psi_expected.len(),
                self.psi_edges.len()
            ));
        }
        None
    }

    /// Start loading what [`Self::column_stats`] will read at random (see
    /// [`QuantileIndex::prefetch`]).
    fn prefetch(&self) {
        if let Some(ix) = self.index() {
            ix.prefetch();
        }
    }

    /// The drift kernel's lookup index (built on first use; none for unusable quantiles).
    fn index(&self) -> Option<&QuantileIndex> {
        self.index.get_or_build(&self.quantiles, &self.psi_edges)
    }

    /// The reference ECDF at `x`, read off the stored quantiles (the merge walk's oracle).
    #[cfg(test)]
    fn cdf(&self, x: f64) -> f64 {
        let q = &self.quantiles;
        if x < q[0] {
            return 0.0;
        }
        if x >= q[q.len() - 1] {
            return 1.0;
        }
        // Last quantile point ≤ x, then interpolate to the next one.
        let i = q.partition_point(|&v| v <= x) - 1;
        let step = 1.0 / (q.len() - 1) as f64;
        let (lo, hi) = (q[i], q[i + 1]);
        let frac = if hi > lo { (x - lo) / (hi - lo) } else { 1.0 };
        (i as f64 + frac) * step
    }

    /// KS statistic of the recent sorted values against the reference: the largest gap
    /// between the two ECDFs. Between two consecutive recent values the recent ECDF G is flat
    /// and the reference F (interpolated quantiles, jumps where quantiles tie) does not
    /// fall, so F − G is largest just below the next recent value and smallest at the value
    /// itself: checking G − F at, and F − G just below, every distinct recent value is
    /// enough. One pass with a pointer into the quantiles, O(recent + quantiles).
    fn ks_statistic(&self, recent: &[f64]) -> f64 {
        let q = &self.quantiles;
        let (m, nq) = (recent.len() as f64, q.len());
        const CHUNK: usize = 8;
        // below: quantiles < x; upto: quantiles ≤ x.
        let (mut i, mut upto) = (0usize, 0usize);
        let mut d = 0.0f64;
        while i < recent.len() {
            let x = recent[i];
            let g_left = i as f64 / m;
            while i < recent.len() && recent[i] <= x {
                i += 1;
            }
            // Quantiles ≤ x: count eight at a time (a fixed-size compare the compiler
            // vectorises; the number passed per recent value varies, which a
            // one-at-a-time loop mispredicts).
            while upto + CHUNK <= nq {
                let c = q[upto..upto + CHUNK].iter().filter(|&&v| v <= x).count();
                upto += c;
                if c < CHUNK {
                    break;
                }
            }
            if upto + CHUNK > nq {
                while upto < nq && q[upto] <= x {
                    upto += 1;
                }
            }
            d = quantile_index::group_candidates(q, upto, x, g_left, i as f64 / m, d);
        }
        d
    }

    /// The reference ECDF just below `x` (differs from [`Self::cdf`] only where quantiles tie
    /// at `x`: a point mass).
    #[cfg(test)]
    fn cdf_left(&self, x: f64) -> f64 {
        let q = &self.quantiles;
        let first = q.partition_point(|&v| v < x);
        if first < q.len() && q[first] == x {
            return first as f64 / (q.len() - 1) as f64;
        }
        self.cdf(x)
    }

    /// KS statistic, finite count and PSI of one recent column: through the lookup index
    /// (no sort), or by sorting and walking where there is none; the results are identical.
    fn column_stats(&self, col: &[f64], scratch: &mut Scratch) -> (f64, usize, f64) {
        if let Some(ix) = self.index().filter(|_| col.len() <= quantile_index::MAX_VALUES) {
            let c = quantile_index::column_stats(&self.quantiles, ix, col, scratch);
            let psi = match &c.psi_counts {
                Some(counts) => self.psi_of_counts(counts, c.n),
                None => self.psi(&col.iter().copied().filter(|v| v.is_finite()).collect::<Vec<_>>()),
            };
            return (c.d, c.n, psi);
        }
        let s = finite_sorted(col);
        if s.is_empty() {
            return (0.0, 0, 0.0);
        }
        (self.ks_statistic(&s), s.len(), self.psi_sorted(&s))
    }

    /// Population stability index of the recent values over the reference bins.
    pub fn psi(&self, recent: &[f64]) -> f64 {
        let mut counts = vec![0usize; self.psi_expected.len()];
        for &v in recent {
            counts[bin_of(&self.psi_edges, v)] += 1;
        }
        self.psi_of_counts(&counts, recent.len())
    }

    /// [`Self::psi`] of values sorted ascending: one binary search per bin edge.
    fn psi_sorted(&self, recent: &[f64]) -> f64 {
        // Each bin holds the values below its upper edge (a value equal to an edge goes
        // right, as in `bin_of`) less those below its lower one; the last bin the rest.
        let mut below = 0;
        let mut counts: Vec<usize> = self
            .psi_edges
            .iter()
            .map(|&e| {
                let upto = recent.partition_point(|&v| v < e);
                let c = upto - below;
                below = upto;
                c
            })
            .collect();
        counts.push(recent.len() - below);
        self.psi_of_counts(&counts, recent.len())
    }

    fn psi_of_counts(&self, counts: &[usize], len: usize) -> f64 {
        let m = len.max(1) as f64;
        counts
            .iter()
            .zip(&self.psi_expected)
            .map(|(&c, &e)| {
                let a = (c as f64 / m).max(PSI_EPSILON);
                let e = e.max(PSI_EPSILON);
                (a - e) * (a / e).ln()
            })
            .sum()
    }
}

/// P(D ≥ `d`) for the KS statistic of `k` independent draws, by the Kolmogorov limit with
/// Stephens' finite-size correction, λ = (√k + 0.12 + 0.11/√k)·d (as Numerical Recipes'
/// `probks`): within 21 % of scipy's exact `kstwo` for k ≥ 10 and p ≥ 1e-3, never more than
/// 15 % below it, and larger (conservative) far in the tail of a tiny k, at a constant cost
/// where the exact recursions cost O(k²) — an effective p-value is computed for every
/// calibrated feature every cycle. 0 from d = 1 on (no overlap at all).
pub fn kolmogorov_sf(k: u64, d: f64) -> f64 {
    if d.is_nan() {
        return f64::NAN;
    }
    if d >= 1.0 {
        return 0.0;
    }
    if d <= 0.0 {
        return 1.0;
    }
    let rk = (k.max(1) as f64).sqrt();
    let lambda = (rk + 0.12 + 0.11 / rk) * d;
    let p = if lambda < 1.18 {
        // The theta-function form converges fast for small λ: 1 − √(2π)/λ · Σ e^{−(2j−1)²π²/(8λ²)}.
        let c = std::f64::consts::PI.powi(2) / (8.0 * lambda * lambda);
        let sum: f64 = (1..=6).map(|j| (-((2 * j - 1) as f64).powi(2) * c).exp()).sum();
        1.0 - (2.0 * std::f64::consts::PI).sqrt() / lambda * sum
    } else {
        let sum: f64 = (1..=100)
            .map(|j| if j % 2 == 1 { 1.0 } else { -1.0 } * (-2.0 * (j * j) as f64 * lambda * lambda).exp())
            .sum();
        2.0 * sum
    };
    p.clamp(0.0, 1.0)
}

/// Trading days (UTC dates with at least one row) among ascending timestamps `ts` (ms).
pub fn trading_days(ts: &[i64]) -> usize {
    let mut d: Vec<i64> = ts.iter().map(|t| t.div_euclid(86_400_000)).collect();
    d.dedup();
    d.len()
}

/// Rows a drift window of `days` trading days spans in rows stamped `ts` (ms, ascending):
/// rows per trading day, times `days`.
pub fn window_rows(ts: &[i64], days: usize) -> usize {
    match trading_days(ts) {
        0 => 0,
        dates => ((ts.len() as f64 / dates as f64) * days as f64).round() as usize,
    }
}

impl ReferenceStats {
    /// Calibrate every feature against windows of `window` rows of its training column
    /// (`columns[j]`, time order) — see [`FeatureReference::calibrate`].
    pub fn calibrate(&mut self, columns: &[Vec<f64>], window: usize) -> Result<()> {
        if columns.len() != self.features.len() {
            return Err(Error::Shape {
                what: "calibration columns".into(),
                expected: self.features.len(),
                got: columns.len(),
            });
        }
        for (f, c) in self.features.iter_mut().zip(columns) {
            f.calibrate(c, window);
        }
        Ok(())
    }

    /// Summarise the training matrix, column by column (`columns[j]` holds feature `j`).
    pub fn from_columns(names: &[String], columns: &[Vec<f64>], psi_bins: usize) -> Result<Self> {
        if names.len() != columns.len() {
            return Err(Error::Shape { what: "reference columns".into(), expected: names.len(), got: columns.len() });
        }
        let features = names
            .iter()
            .zip(columns)
            .map(|(n, c)| FeatureReference::from_values(n, c, psi_bins))
            .collect::<Result<_>>()?;
        Ok(ReferenceStats { features, prediction: None })
    }

    /// Why this (deserialised) reference cannot be used, if it cannot (the first bad feature).
    pub fn problem(&self) -> Option<String> {
        if self.features.is_empty() {
            return Some("no features".into());
        }
        self.features.iter().chain(&self.prediction).find_map(FeatureReference::problem)
    }

    /// Summarise a [`crate::features::Dataset`]'s feature columns, calibrated for drift
    /// windows of `window_days` trading days (`None`: uncalibrated).
    pub fn from_dataset(ds: &crate::features::Dataset, psi_bins: usize, window_days: Option<usize>) -> Result<Self> {
        let cols: Vec<Vec<f64>> =
            (0..ds.n_features()).map(|j| ds.x.column(j).iter().map(|&v| f64::from(v)).collect()).collect();
        let mut r = Self::from_columns(&ds.feature_names, &cols, psi_bins)?;
        if let Some(days) = window_days {
            r.calibrate(&cols, window_rows(&ds.t0, days))?;
        }
        Ok(r)
    }
}

/// Feature columns of `bars` under `spec` (values rounded to f32, as a training dataset holds
/// them), restricted to the last `days` trading days (UTC dates with bars; `None`: every
/// row) and ordered like `reference` (a reference feature the spec does not produce is an
/// error naming it).
pub fn recent_columns(
    bars: &crate::data::Bars,
    spec: &crate::features::FeatureSpec,
    days: Option<usize>,
    reference: &ReferenceStats,
) -> Result<Vec<Vec<f64>>> {
    let frame = crate::features::compute(bars, spec)?;
    let seg = frame.segments.first().ok_or_else(|| Error::Empty { source_name: "recent bars".into() })?;
    let day = |ms: i64| ms.div_euclid(86_400_000);
    // Walk back over whole UTC dates until `days` distinct ones are covered.
    let mut start = seg.len();
    if let Some(days) = days {
        let (mut seen, mut current) = (0usize, None);
        while start > 0 {
            let d = day(seg.ts[start - 1]);
            if current != Some(d) {
                seen += 1;
                if seen > days {
                    break;
                }
                current = Some(d);
            }
            start -= 1;
        }
    } else {
        start = 0;
    }
    reference
        .features
        .iter()
        .map(|r| {
            let j = frame.names.iter().position(|n| *n == r.name).ok_or_else(|| {
                Error::param(format!("features.{}", r.name), "in the reference but not computed from the bars")
            })?;
            Ok(seg.columns[j][start..].iter().map(|&v| f64::from(v as f32)).collect())
        })
        .collect()
}

/// Reference statistics of `bars`' features under `spec` (every finite value, rounded to
/// f32 as in training), calibrated for drift windows of `window_days` trading days (`None`:
/// uncalibrated).
pub fn reference_from_bars(
    bars: &crate::data::Bars,
    spec: &crate::features::FeatureSpec,
    psi_bins: usize,
    window_days: Option<usize>,
) -> Result<ReferenceStats> {
    let frame = crate::features::compute(bars, spec)?;
    let seg = frame.segments.first().ok_or_else(|| Error::Empty { source_name: "reference bars".into() })?;
    let cols: Vec<Vec<f64>> = seg.columns.iter().map(|c| c.iter().map(|&v| f64::from(v as f32)).collect()).collect();
    let mut r = ReferenceStats::from_columns(&frame.names, &cols, psi_bins)?;
    if let Some(days) = window_days {
        r.calibrate(&cols, window_rows(&seg.ts, days))?;
    }
    Ok(r)
}

/// Drift severity: what the host should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DriftSeverity {
    /// Nothing moved.
    None,
    /// Log only.
    Low,
    /// Retrain the affected model.
    Medium,
    /// Retrain all models.
    High,
    /// Retrain all models and raise a stop-trading alarm.
    Critical,
}

impl std::fmt::Display for DriftSeverity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DriftSeverity::None => "NONE",
            DriftSeverity::Low => "LOW",
            DriftSeverity::Medium => "MEDIUM",
            DriftSeverity::High => "HIGH",
            DriftSeverity::Critical => "CRITICAL",
        })
    }
}

/// One feature's drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    /// Feature name.
    pub name: String,
    /// Recent finite values compared.
    pub n_recent: usize,
    /// KS statistic and raw p-value.
    pub ks: KsResult,
    /// The KS statistic a window like this one shows when nothing changed (the calibrated
    /// noise level; none where the reference is uncalibrated).
    pub noise_ks: Option<f64>,
    /// The p-value that accounts for autocorrelation (see the module docs; the raw one where
    /// the reference is uncalibrated).
    pub p_effective: f64,
    /// Benjamini–Yekutieli adjusted effective p-value across the report's features.
    pub p_adjusted: f64,
    /// Population stability index.
    pub psi: f64,
    /// Significant, with KS above `ks_alert` or PSI above `psi_threshold`.
    pub alert: bool,
    /// Retrain-worthy (see the module docs).
    pub drifted: bool,
}

/// The drift of every feature of one model and the resulting severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Per feature, in column order.
    pub features: Vec<FeatureDrift>,
    /// Features alerting.
    pub alerts: usize,
    /// Features drifted.
    pub drifted: usize,
    /// The largest KS statistic.
    pub max_ks: f64,
    /// Features whose reference carries a null calibration.
    #[serde(default)]
    pub calibrated: usize,
    /// Overall severity.
    pub severity: DriftSeverity,
}

impl DriftReport {
    /// Names of the drifted features.
    pub fn drifted_features(&self) -> Vec<&str> {
        self.features.iter().filter(|f| f.drifted).map(|f| f.name.as_str()).collect()
    }
}

/// Drift of a model's recent prediction scores (see [`prediction_score`]) against the
/// scores it gave on its validation rows: one test, so its effective p-value is not
/// adjusted; it alerts and drifts by the features' rules. `None` with fewer than
/// `min_values` finite scores.
pub fn check_prediction_drift(
    reference: &FeatureReference,
    recent: &[f64],
    policy: &Policy,
    min_values: usize,
) -> Option<FeatureDrift> {
    let finite: Vec<f64> = recent.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.len() < min_values.max(1) {
        return None;
    }
    let (d, m, psi) = reference.column_stats(&finite, &mut Scratch::default());
    let ks = ks::ks_p_value(d, reference.n, m);
    let (noise_ks, p_effective) = reference.effective_p(d, m, ks.p_value);
    let significant = p_effective < policy.ks_p_value;
    let wide = psi > policy.psi_threshold;
    Some(FeatureDrift {
        name: PREDICTION.into(),
        n_recent: m,
        ks,
        noise_ks,
        p_effective,
        p_adjusted: p_effective,
        psi,
        alert: significant && (d > policy.ks_alert || wide),
        drifted: significant && (d > policy.ks_retrain || wide),
    })
}

/// Benjamini–Hochberg adjusted p-values (as `scipy.stats.false_discovery_control(p, method='bh')`).
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running = 1.0f64;
    for rank in (0..m).rev() {
        let i = order[rank];
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        out[i] = running.min(1.0);
    }
    out
}

/// Benjamini–Yekutieli adjusted p-values (as `scipy.stats.false_discovery_control(p,
/// method='by')`): Benjamini–Hochberg scaled by Σ 1/i, which controls the false discovery
/// rate under any dependence between the tests.
pub fn benjamini_yekutieli(p: &[f64]) -> Vec<f64> {
    let c: f64 = (1..=p.len()).map(|i| 1.0 / i as f64).sum();
    let scaled: Vec<f64> = p.iter().map(|&v| v * c).collect();
    benjamini_hochberg(&scaled)
}

/// Compare recent feature values (`recent[j]` = column `j`, same order as the reference) with
/// the reference under `policy`'s thresholds.
pub fn check_drift(reference: &ReferenceStats, recent: &[Vec<f64>], policy: &Policy) -> Result<DriftReport> {
    check_drift_with(reference, recent, policy, &ExactPValues::new())
}

/// [`check_drift`] sharing exact KS p-values with other checks through `table` (what the
/// supervisor does across models; the report is the same either way).
pub fn check_drift_with(
    reference: &ReferenceStats,
    recent: &[Vec<f64>],
    policy: &Policy,
    table: &ExactPValues,
) -> Result<DriftReport> {
    if recent.len() != reference.features.len() {
        return Err(Error::Shape {
            what: "recent feature columns".into(),
            expected: reference.features.len(),
            got: recent.len(),
        });
    }
    let mut stats = Vec::with_capacity(recent.len());
    let mut scratch = Scratch::default();
    for (j, (r, col)) in reference.features.iter().zip(recent).enumerate() {
        if let Some(next) = reference.features.get(j + 1) {
            next.prefetch();
            if let Some(c) = recent.get(j + 1) {
                quantile_index::prefetch(c);
            }
        }
        let (d, n, psi) = r.column_stats(col, &mut scratch);
        if n == 0 {
            return Err(Error::param(format!("recent.{}", r.name), "no finite recent values"));
        }
        stats.push((d, n, psi));
    }
    // p-values: an exact one another model's check is computing right now is left for last
    // (by then it is usually done), so this thread computes the missing ones it alone needs
    // instead of waiting.
    let first: Vec<Option<KsResult>> = reference
        .features
        .iter()
        .zip(&stats)
        .map(|(r, &(d, n, _))| ks::ks_p_value_unless_busy(d, r.n, n, table))
        .collect();
    let rows: Vec<(String, usize, KsResult, f64)> = reference
        .features
        .iter()
        .zip(stats)
        .zip(first)
        .map(|((r, (d, n, psi)), ks)| {
            (r.name.clone(), n, ks.unwrap_or_else(|| ks::ks_p_value_with(d, r.n, n, table)), psi)
        })
        .collect();
    let effective: Vec<(Option<f64>, f64)> = reference
        .features
        .iter()
        .zip(&rows)
        .map(|(r, (_, m, ks, _))| r.effective_p(ks.statistic, *m, ks.p_value))
        .collect();
    // Features computed from the same prices move together (a trending month moves every
    // trend feature at once), so the adjustment must hold under any dependence: with
    // Benjamini–Hochberg a 90-day reference alarmed in 5.8 % of stationary cycles.
    let adjusted = benjamini_yekutieli(&effective.iter().map(|e| e.1).collect::<Vec<_>>());
    let features: Vec<FeatureDrift> = rows
        .into_iter()
        .zip(effective)
        .zip(adjusted)
        .map(|(((name, n_recent, ks, psi), (noise_ks, p_effective)), p_adjusted)| {
            let significant = p_adjusted < policy.ks_p_value;
            let wide = psi > policy.psi_threshold;
            FeatureDrift {
                name,
                n_recent,
                ks,
                noise_ks,
                p_effective,
                p_adjusted,
                psi,
                alert: significant && (ks.statistic > policy.ks_alert || wide),
                drifted: significant && (ks.statistic > policy.ks_retrain || wide),
            }
        })
        .collect();
    let calibrated = reference.features.iter().filter(|f| f.calibration.is_some()).count();
    Ok(summarise(features, calibrated, policy))
}

fn summarise(features: Vec<FeatureDrift>, calibrated: usize, policy: &Policy) -> DriftReport {
    let alerts = features.iter().filter(|f| f.alert).count();
    let drifted = features.iter().filter(|f| f.drifted).count();
    let max_ks = features.iter().map(|f| f.ks.statistic).fold(0.0, f64::max);
    let share = drifted as f64 / features.len().max(1) as f64;
    let severity = if drifted == 0 {
        if alerts == 0 { DriftSeverity::None } else { DriftSeverity::Low }
    } else if share >= policy.drift_critical_fraction {
        DriftSeverity::Critical
    } else if share >= policy.drift_high_fraction {
        DriftSeverity::High
    } else {
        DriftSeverity::Medium
    };
    DriftReport { features, alerts, drifted, max_ks, calibrated, severity }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn normal(rng: &mut Rng, n: usize, shift: f64) -> Vec<f64> {
        (0..n).map(|_| rng.normal() + shift).collect()
    }

    /// The statistic by binary searches at every point (the merge walk's oracle).
    fn ks_by_search(r: &FeatureReference, recent: &[f64]) -> f64 {
        let m = recent.len() as f64;
        let mut d = 0.0f64;
        for &x in recent.iter().chain(&r.quantiles) {
            let g = recent.partition_point(|&v| v <= x) as f64 / m;
            let g_left = recent.partition_point(|&v| v < x) as f64 / m;
            d = d.max((r.cdf(x) - g).abs()).max((r.cdf_left(x) - g_left).abs());
        }
        d
    }

    #[test]
    fn merge_walk_matches_the_pointwise_statistic() {
        let mut rng = Rng::new(11);
        for case in 0..200 {
            // Continuous, rounded (ties on both sides) and point-mass-heavy samples.
            let round = |v: f64| match case % 3 {
                0 => v,
                1 => (v * 4.0).round() / 4.0,
                _ => {
                    if v < 0.3 {
                        0.0
                    } else {
                        v
                    }
                }
            };
            let n_ref = 50 + rng.below(3000);
            let reference: Vec<f64> = (0..n_ref).map(|_| round(rng.normal())).collect();
            let mut recent: Vec<f64> = (0..1 + rng.below(600)).map(|_| round(rng.normal() + 0.2)).collect();
            recent.sort_by(f64::total_cmp);
            let r = FeatureReference::from_values("x", &reference, 10).unwrap();
            let (fast, slow) = (r.ks_statistic(&recent), ks_by_search(&r, &recent));
            assert!((fast - slow).abs() < 1e-12, "case {case}: {fast} vs {slow}");
        }
    }

    /// The sort-and-walk statistics of `col` (the path without an index).
    fn sorted_stats(r: &FeatureReference, col: &[f64]) -> (f64, usize, f64) {
        let s = finite_sorted(col);
        (r.ks_statistic(&s), s.len(), r.psi_sorted(&s))
    }

    /// Indexed and sorted statistics agree to the bit (`psi_bins` 10 reads PSI off the
    /// histogram; 7 does not divide the 1,000 quantile steps, so PSI counts bins per value).
    fn assert_kernel_matches(r: &FeatureReference, col: &[f64], what: &str) {
        assert!(r.index().is_some(), "{what}: no index");
        let fast = r.column_stats(col, &mut Scratch::default());
        let slow = sorted_stats(r, col);
        assert_eq!(fast.0.to_bits(), slow.0.to_bits(), "{what}: D {} vs {}", fast.0, slow.0);
        assert_eq!(fast.1, slow.1, "{what}: n");
        assert_eq!(fast.2.to_bits(), slow.2.to_bits(), "{what}: PSI {} vs {}", fast.2, slow.2);
    }

    #[test]
    fn the_indexed_kernel_equals_sorting_and_walking() {
        let mut rng = Rng::new(23);
        for case in 0..300 {
            // Continuous, rounded (ties on both sides), point-mass-heavy and heavy-tailed.
            let shape = |v: f64, u: f64| match case % 4 {
                0 => v,
                1 => (v * 4.0).round() / 4.0,
                2 => {
                    if v < 0.3 {
                        0.0
                    } else {
                        v
                    }
                }
                _ => v / u.max(1e-3),
            };
            let n_ref = 2 + rng.below(4000);
            let reference: Vec<f64> = (0..n_ref).map(|_| shape(rng.normal(), rng.next_f64())).collect();
            let shift = [0.0, 0.1, 0.5, 3.0][case % 4];
            let mut col: Vec<f64> =
                (0..1 + rng.below(700)).map(|_| shape(rng.normal() + shift, rng.next_f64())).collect();
            if case % 5 == 0 {
                col[0] = f64::NAN;
                col.push(f64::INFINITY);
                col.push(-0.0);
            }
            for bins in [10, 7] {
                let r = FeatureReference::from_values("x", &reference, bins).unwrap();
                assert_kernel_matches(&r, &col, &format!("case {case}, {bins} bins"));
            }
        }
        // A constant reference (zero-width index range) against the mass and beside it.
        let r = FeatureReference::from_values("gap", &[1.5; 300], 10).unwrap();
        assert_kernel_matches(&r, &[1.5, 1.5, 0.0, 2.0, 1.5], "constant");
    }

    #[test]
    fn a_discrete_feature_with_the_same_levels_does_not_drift() {
        // A weekday encoding: four levels with masses 2/7, 2/7, 2/7, 1/7 in the reference and
        // 0.30 / 0.30 / 0.25 / 0.15 in a 20-day window: the ECDFs differ by at most 0.03.
        let levels = [-0.9009688496589661, -0.22252093255519867, 0.6234897971153259, 1.0];
        let reference: Vec<f64> =
            [298, 281, 281, 141].iter().zip(levels).flat_map(|(&n, v)| std::iter::repeat_n(v, n)).collect();
        let recent: Vec<f64> =
            [144, 144, 120, 72].iter().zip(levels).flat_map(|(&n, v)| std::iter::repeat_n(v, n)).collect();
        let r = FeatureReference::from_values("dow_cos", &reference, 10).unwrap();
        let (d, n, psi) = r.column_stats(&recent, &mut Scratch::default());
        assert_eq!(n, 480);
        assert!(d < 0.05, "KS {d}");
        assert!(psi < 0.1, "PSI {psi}");
        assert_kernel_matches(&r, &recent, "levels");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn the_indexed_kernel_equals_sorting_and_walking_on_any_values(
            reference in proptest::collection::vec(-1e6f64..1e6, 1..600),
            col in proptest::collection::vec(proptest::prop_oneof![-1e6f64..1e6, -3.0f64..3.0, proptest::strategy::Just(0.0)], 1..300),
        ) {
            let r = FeatureReference::from_values("x", &reference, 10).unwrap();
            assert_kernel_matches(&r, &col, "proptest");
        }
    }

    #[test]
    fn a_damaged_reference_names_its_problem() {
        let r = FeatureReference::from_values("x", &[1.0, 2.0, 3.0], 10).unwrap();
        let stats = ReferenceStats { features: vec![r], prediction: None };
        assert_eq!(stats.problem(), None);
        let mut v = serde_json::to_value(&stats).unwrap();
        let kept = v["features"][0]["quantiles"][3].clone();
        v["features"][0]["quantiles"][3] = serde_json::json!(-5.0);
        let bad: ReferenceStats = serde_json::from_value(v.clone()).unwrap();
        assert!(bad.problem().unwrap().contains("x: quantiles"), "{:?}", bad.problem());
        v["features"][0]["quantiles"][3] = kept;
        v["features"][0]["psi_expected"] = serde_json::json!([1.0]);
        let bad: ReferenceStats = serde_json::from_value(v).unwrap();
        assert!(bad.problem().unwrap().contains("PSI shares"), "{:?}", bad.problem());
        // Deserialised references build their index on first use and check the same way.
        let back: ReferenceStats = serde_json::from_str(&serde_json::to_string(&stats).unwrap()).unwrap();
        assert_eq!(back, stats);
        assert_kernel_matches(&back.features[0], &[0.5, 2.0, 2.5, 9.0], "deserialised");
    }

    #[test]
    fn point_masses_compare_like_scipy() {
        // A constant feature (e.g. the gap of a 24/7 market) that stays constant has not drifted.
        let r = FeatureReference::from_values("gap", &vec![0.0; 2770], 10).unwrap();
        assert_eq!(r.ks_statistic(&[0.0; 466]), 0.0);
        // Half the recent values moved off the mass: D = 0.5, as ks_2samp says.
        let mut recent = vec![0.0; 200];
        recent.extend(vec![1.0; 200]);
        assert!((r.ks_statistic(&recent) - 0.5).abs() < 1e-12);
        let exact = crate::lifecycle::ks::ks_2samp(&vec![0.0; 2770], &recent).unwrap();
        assert!((exact.statistic - 0.5).abs() < 1e-12);
        // Discrete reference {0, 1} half and half against recent all 0: D = 0.5.
        let mut two = vec![0.0; 1000];
        two.extend(vec![1.0; 1000]);
        let r2 = FeatureReference::from_values("x", &two, 10).unwrap();
        assert!((r2.ks_statistic(&[0.0; 50]) - 0.5).abs() < 2e-3, "{}", r2.ks_statistic(&[0.0; 50]));
    }

    #[test]
    fn bh_matches_hand_computation() {
        // p sorted: .01 .02 .03 .5 with m = 4 → .04 .04 .04 .5
        let adj = benjamini_hochberg(&[0.03, 0.5, 0.01, 0.02]);
        for (a, e) in adj.iter().zip([0.04, 0.5, 0.04, 0.04]) {
            assert!((a - e).abs() < 1e-12, "{adj:?}");
        }
    }

    #[test]
    fn reference_ks_tracks_the_raw_two_sample_statistic() {
        let mut rng = Rng::new(7);
        let train = normal(&mut rng, 20_000, 0.0);
        let recent = normal(&mut rng, 480, 0.3);
        let r = FeatureReference::from_values("x", &train, 10).unwrap();
        let mut s = recent.clone();
        s.sort_by(f64::total_cmp);
        let approx = r.ks_statistic(&s);
        let exact = ks::ks_2samp(&train, &recent).unwrap().statistic;
        assert!((approx - exact).abs() < 2.0 / (REFERENCE_QUANTILES - 1) as f64, "{approx} vs {exact}");
    }

    #[test]
    fn psi_is_zero_for_the_reference_itself_and_grows_with_shift() {
        let mut rng = Rng::new(3);
        let train = normal(&mut rng, 10_000, 0.0);
        let r = FeatureReference::from_values("x", &train, 10).unwrap();
        assert!(r.psi(&train) < 1e-9);
        // The sorted fast path agrees with the per-value bins, ties on edges included.
        for values in [normal(&mut rng, 777, 0.3), r.psi_edges.clone(), vec![r.psi_edges[3]; 5]] {
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            assert_eq!(r.psi_sorted(&sorted).to_bits(), r.psi(&values).to_bits());
        }
        assert_eq!(r.psi_expected.len(), 10);
        let small = r.psi(&normal(&mut rng, 2000, 0.1));
        let big = r.psi(&normal(&mut rng, 2000, 1.0));
        assert!(small < 0.1 && big > 0.25 && big > small, "{small} {big}");
    }

    #[test]
    fn severity_follows_the_share_of_drifted_features() {
        let mut rng = Rng::new(11);
        let policy = Policy::default();
        let names: Vec<String> = (0..8).map(|i| format!("f{i}")).collect();
        let train: Vec<Vec<f64>> = (0..8).map(|_| normal(&mut rng, 5000, 0.0)).collect();
        let reference = ReferenceStats::from_columns(&names, &train, 10).unwrap();
        let check = |shifted: usize, rng: &mut Rng| {
            let recent: Vec<Vec<f64>> = (0..8).map(|j| normal(rng, 500, if j < shifted { 1.5 } else { 0.0 })).collect();
            check_drift(&reference, &recent, &policy).unwrap()
        };
        assert_eq!(check(0, &mut rng).severity, DriftSeverity::None);
        let one = check(1, &mut rng);
        assert_eq!((one.severity, one.drifted), (DriftSeverity::Medium, 1));
        assert_eq!(one.drifted_features(), ["f0"]);
        assert_eq!(check(2, &mut rng).severity, DriftSeverity::High);
        assert_eq!(check(4, &mut rng).severity, DriftSeverity::Critical);
    }

    /// An AR(1) series with lag-one autocorrelation `rho` and unit variance.
    fn ar1(rng: &mut Rng, n: usize, rho: f64) -> Vec<f64> {
        let mut x = rng.normal();
        let e = (1.0 - rho * rho).sqrt();
        (0..n)
            .map(|_| {
                x = rho * x + e * rng.normal();
                x
            })
            .collect()
    }

    #[test]
    fn calibration_reads_the_noise_of_a_window_off_the_training_rows() {
        let mut rng = Rng::new(5);
        let policy = Policy::default();
        // Independent draws: the noise level is the Kolmogorov median at the two-sample size
        // (0.8276 / √(n·m/(n+m))), within the scatter of 64 windows.
        let iid = normal(&mut rng, 8000, 0.0);
        let mut r = FeatureReference::from_values("iid", &iid, 10).unwrap();
        r.calibrate(&iid, 480);
        let c = r.calibration().unwrap().clone();
        assert_eq!((c.window, c.windows), (480, CALIBRATION_WINDOWS));
        let want = 0.8276 / (8000.0 * 480.0 / 8480.0f64).sqrt();
        let noise = c.noise(r.n(), 480);
        assert!((noise / want - 1.0).abs() < 0.3, "noise {noise} vs {want}");
        // A slow AR(1) (ρ = 0.99): a window of it is a few independent draws. A later window
        // of the same process has a raw p-value that calls it drifted, and an effective one
        // that does not; shifted by three standard deviations it is drifted either way.
        let series = ar1(&mut rng, 12_000, 0.99);
        let mut slow = FeatureReference::from_values("slow", &series[..8000], 10).unwrap();
        slow.calibrate(&series[..8000], 480);
        assert!(slow.calibration().unwrap().noise(8000, 480) > 4.0 * want, "{:?}", slow.calibration());
        let reference = ReferenceStats { features: vec![slow], prediction: None };
        let (mut raw_hits, mut eff_hits) = (0, 0);
        for end in (8480..=12_000).step_by(240) {
            let d = check_drift(&reference, &[series[end - 480..end].to_vec()], &policy).unwrap();
            raw_hits += usize::from(d.features[0].ks.p_value < policy.ks_p_value);
            eff_hits += usize::from(d.features[0].p_adjusted < policy.ks_p_value);
            assert!(d.features[0].p_effective >= d.features[0].ks.p_value);
        }
        assert!(raw_hits >= 10 && eff_hits <= 1, "raw {raw_hits}, effective {eff_hits} of 15 windows");
        let shifted: Vec<f64> = series[11_520..].iter().map(|v| v + 3.0).collect();
        let d = check_drift(&reference, &[shifted], &policy).unwrap();
        assert!(d.features[0].drifted && d.severity == DriftSeverity::Critical, "{:?}", d.features[0]);
        assert_eq!(d.calibrated, 1);
    }

    #[test]
    fn calibration_needs_two_windows_and_survives_a_round_trip() {
        let mut rng = Rng::new(9);
        let x = normal(&mut rng, 900, 0.0);
        let mut r = FeatureReference::from_values("x", &x, 10).unwrap();
        r.calibrate(&x, 480);
        assert!(r.calibration().is_none(), "900 rows hold fewer than two 480-row windows");
        r.calibrate(&x, 400);
        assert!(r.calibration().is_some());
        let stats = ReferenceStats { features: vec![r], prediction: None };
        let text = serde_json::to_string(&stats).unwrap();
        let back: ReferenceStats = serde_json::from_str(&text).unwrap();
        assert_eq!(back, stats);
        // A reference written before calibrations existed still reads (uncalibrated).
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["features"][0].as_object_mut().unwrap().remove("calibration");
        let old: ReferenceStats = serde_json::from_value(v.clone()).unwrap();
        assert!(old.features[0].calibration().is_none() && old.problem().is_none());
        // A damaged calibration is named.
        v["features"][0]["calibration"] =
            serde_json::json!({"window": 400, "windows": 64, "median_ks": 0.5, "upper_ks": 0.6, "max_ks": 0.1});
        let bad: ReferenceStats = serde_json::from_value(v).unwrap();
        assert!(bad.problem().unwrap().contains("x: calibration"), "{:?}", bad.problem());
        // Rows per window follow the bars' rows per trading day.
        let hourly: Vec<i64> = (0..24 * 30).map(|i| i * 3_600_000).collect();
        assert_eq!(window_rows(&hourly, 20), 480);
        let weekdays: Vec<i64> = hourly.iter().copied().filter(|t| t / 86_400_000 % 7 < 5).collect();
        assert_eq!(window_rows(&weekdays, 20), 480);
        assert_eq!(window_rows(&[], 20), 0);
    }

    #[test]
    fn the_corrected_kolmogorov_tail_tracks_scipys_exact_kstwo() {
        // Never much below the exact value (anti-conservative), and close where decisions are
        // made; far in the tail of a tiny k it is larger (conservative): the exact law's
        // support ends at 1, the limit's does not.
        let (mut below, mut apart): (f64, f64) = (1.0, 1.0);
        for k in [2u64, 5, 10, 20, 60, 140, 400, 2000] {
            for i in 1..400 {
                let d = i as f64 / 400.0;
                let exact = ks::kolmogn_sf(k, d);
                if !(1e-8..=0.9).contains(&exact) {
                    continue;
                }
                let r = kolmogorov_sf(k, d) / exact;
                below = below.min(r);
                if k >= 10 && exact >= 1e-3 {
                    apart = apart.max(r.max(1.0 / r));
                }
            }
        }
        println!("fast / exact: at least {below:.3}; within ×{apart:.3} for k ≥ 10, p ≥ 1e-3");
        assert!(below > 0.85 && apart < 1.25, "{below} {apart}");
        assert_eq!(kolmogorov_sf(3, 1.0), 0.0);
        assert_eq!(kolmogorov_sf(3, 0.0), 1.0);
        assert!(kolmogorov_sf(50, 0.01) > 0.999);
    }

    #[test]
    fn prediction_scores_are_signed_probabilities_else_the_score() {
        assert_eq!(prediction_score(-1, Some(0.7), Some(3.0)), Some(-0.7));
        assert_eq!(prediction_score(1, None, Some(0.02)), Some(0.02));
        assert_eq!(prediction_score(1, None, None), None);
        assert_eq!(prediction_score(1, None, Some(f64::NAN)), None);
        let mut rng = Rng::new(4);
        let scores = normal(&mut rng, 3000, 0.0);
        let r = FeatureReference::from_values(PREDICTION, &scores, 10).unwrap();
        let policy = Policy::default();
        assert!(check_prediction_drift(&r, &scores[..40], &policy, 50).is_none(), "too few");
        let same = check_prediction_drift(&r, &normal(&mut rng, 400, 0.0), &policy, 50).unwrap();
        let moved = check_prediction_drift(&r, &normal(&mut rng, 400, 1.0), &policy, 50).unwrap();
        assert!(!same.drifted && moved.drifted, "{same:?} {moved:?}");
        assert_eq!(moved.p_adjusted, moved.p_effective, "one test: nothing to adjust");
    }

    #[test]
    fn shape_and_empty_inputs_are_typed_errors() {
        let r = ReferenceStats::from_columns(&["a".into()], &[vec![1.0, 2.0]], 10).unwrap();
        assert!(matches!(check_drift(&r, &[], &Policy::default()), Err(Error::Shape { .. })));
        let e = check_drift(&r, &[vec![f64::NAN]], &Policy::default()).unwrap_err().to_string();
        assert!(e.contains("recent.a"), "{e}");
        assert!(FeatureReference::from_values("z", &[f64::NAN], 10).is_err());
    }
}

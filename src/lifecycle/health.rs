//! Model health, the "supervisor": from a log of a model's live predictions and
//! their realised outcomes, the win rate, average R, accuracy, calibration, long/short
//! ratio, latency percentiles, coverage, rolling IC and trend, and a status.
//!
//! Definitions. A prediction *resolves* once its outcome (the realised return over the
//! label horizon) is logged. Win: a non-flat call whose direction matches the outcome's
//! sign. Accuracy: resolved calls (flat included) whose sign matches the outcome's. Average
//! R: mean of direction × outcome ÷ risk (risk 1 when not logged). Calibration error: the
//! expected calibration error (10 bins) of the logged probability against the win.
//! Coverage: share of predictions that are not flat. Rolling IC: Spearman correlation of
//! score and outcome over the trailing `health_ic_window_days` trading days, one value per
//! day. Trend: OLS slope of the daily win rate against the day index, two-sided t-test at
//! 5 % (needs 5 days): a significant negative slope is DEGRADING, positive IMPROVING, else
//! STABLE. Status: each alert of the policy (win rate, calibration error, latency p95,
//! long/short ratio) counts one; none → HEALTHY, one → DEGRADED, two or more → CRITICAL.
//! With fewer than `health_min_outcomes` resolved predictions no performance alert is
//! raised (the report says so).
//!
//! The log is an in-memory [`PredictionLog`], a JSONL file of [`PredictionRecord`]s, or a
//! Parquet file with the same columns.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::Policy;
use crate::error::{Error, Result};
use crate::lifecycle::drift::quantile_sorted;
use crate::validation::metrics::{expected_calibration_error, pearson, ranks_of_order};

/// One live prediction and, once known, its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictionRecord {
    /// When the prediction was made.
    pub ts: Timestamp,
    /// The model (and optionally `model@tag`) that made it.
    pub model: String,
    /// −1 short, 0 flat, +1 long.
    pub direction: i8,
    /// Probability of that direction, when the model gives one.
    #[serde(default)]
    pub probability: Option<f64>,
    /// The model's continuous score (for the IC); default the signed probability.
    #[serde(default)]
    pub score: Option<f64>,
    /// Realised return over the horizon, once known.
    #[serde(default)]
    pub outcome: Option<f64>,
    /// Risk unit of the trade (stop distance) for average R; default 1.
    #[serde(default)]
    pub risk: Option<f64>,
    /// Inference latency in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<f64>,
}

/// A model's prediction log (records in time order per model).
#[derive(Debug, Clone, Default)]
pub struct PredictionLog {
    records: Vec<PredictionRecord>,
}

impl PredictionLog {
    /// An empty log.
    pub fn new() -> Self {
        PredictionLog::default()
    }

    /// Add a record (checked: direction in {−1, 0, 1}, finite numbers, probability in [0, 1]).
    pub fn push(&mut self, r: PredictionRecord) -> Result<()> {
        check_record(&r, self.records.len() + 1, "<memory>")?;
        self.records.push(r);
        Ok(())
    }

    /// Read a JSONL file (one [`PredictionRecord`] per line; blank lines skipped).
    pub fn read_jsonl(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.into(), source })?;
        let name = path.display().to_string();
        let mut records = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let r: PredictionRecord = serde_json::from_str(line)
                .map_err(|e| Error::Config { source_name: format!("{name}:{}", i + 1), message: e.to_string() })?;
            check_record(&r, i + 1, &name)?;
            records.push(r);
        }
        Ok(PredictionLog { records })
    }

    /// Read a log file by extension: Parquet (`.parquet`, `.pq`) or JSONL (anything else).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("parquet" | "pq") => Self::read_parquet(path),
            _ => Self::read_jsonl(path),
        }
    }

    /// Read a Parquet log: columns `ts` (datetime, epoch ms or ISO text), `model`, `direction`
    /// (integer) and optionally `probability`, `score`, `outcome`, `risk`, `latency_ms`
    /// (floats, null = absent); any other column is an error.
    pub fn read_parquet(path: impl AsRef<Path>) -> Result<Self> {
        use polars::prelude::DataType;
        let path = path.as_ref();
        let name = path.display().to_string();
        let df = crate::data::io::read_frame(path)?;
        const FLOATS: [&str; 5] = ["probability", "score", "outcome", "risk", "latency_ms"];
        for c in df.get_column_names() {
            if !["ts", "model", "direction"].contains(&c.as_str()) && !FLOATS.contains(&c.as_str()) {
                return Err(Error::Config { source_name: name, message: format!("unknown column `{c}`") });
            }
        }
        let column = |c: &str| {
            df.column(c)
                .map_err(|_| Error::Config { source_name: name.clone(), message: format!("missing column `{c}`") })
        };
        let polars_err = |e| Error::polars(&name, e);
        let ts = crate::data::io::timestamps(column("ts")?, &name, "ts")?;
        let models = column("model")?.cast(&DataType::String).map_err(polars_err)?;
        let models = models.str().map_err(polars_err)?;
        let dirs = column("direction")?.cast(&DataType::Int64).map_err(polars_err)?;
        let dirs = dirs.i64().map_err(polars_err)?;
        let mut floats: Vec<Vec<Option<f64>>> = Vec::new();
        for c in FLOATS {
            floats.push(match df.column(c) {
                Ok(col) => {
                    col.cast(&DataType::Float64).map_err(polars_err)?.f64().map_err(polars_err)?.iter().collect()
                }
                Err(_) => vec![None; df.height()],
            });
        }
        let mut records = Vec::with_capacity(df.height());
        for i in 0..df.height() {
            let bad = |column: &str, reason: &str| Error::InvalidBar {
                source_name: name.clone(),
                row: i + 1,
                column: column.into(),
                reason: reason.into(),
            };
            let model = models.get(i).ok_or_else(|| bad("model", "missing"))?.to_string();
            let d = dirs.get(i).ok_or_else(|| bad("direction", "missing"))?;
            let direction = i8::try_from(d).map_err(|_| bad("direction", "must be -1, 0 or 1"))?;
            let r = PredictionRecord {
                ts: Timestamp::from_millisecond(ts[i]).map_err(|e| bad("ts", &e.to_string()))?,
                model,
                direction,
                probability: floats[0][i],
                score: floats[1][i],
                outcome: floats[2][i],
                risk: floats[3][i],
                latency_ms: floats[4][i],
            };
            check_record(&r, i + 1, &name)?;
            records.push(r);
        }
        Ok(PredictionLog { records })
    }

    /// Record the realised `outcome` (and `risk`) of record `index` once its label has ended.
    pub fn resolve(&mut self, index: usize, outcome: f64, risk: Option<f64>) -> Result<()> {
        let len = self.records.len();
        let r = self
            .records
            .get_mut(index)
            .ok_or_else(|| Error::param("index", format!("record {index} of a log of {len}")))?;
        let (old_outcome, old_risk) = (r.outcome, r.risk);
        r.outcome = Some(outcome);
        r.risk = risk;
        if let Err(e) = check_record(r, index + 1, "<memory>") {
            (r.outcome, r.risk) = (old_outcome, old_risk);
            return Err(e);
        }
        Ok(())
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every record.
    pub fn records(&self) -> &[PredictionRecord] {
        &self.records
    }

    /// The model names in the log (before any `@tag`), sorted.
    pub fn models(&self) -> Vec<String> {
        let mut m: Vec<String> = self.records.iter().map(|r| base_model(&r.model).to_string()).collect();
        m.sort();
        m.dedup();
        m
    }

    /// The records of one model, in time order.
    pub fn of(&self, model: &str) -> Vec<&PredictionRecord> {
        let mut v: Vec<&PredictionRecord> = self.records.iter().filter(|r| base_model(&r.model) == model).collect();
        v.sort_by_key(|r| r.ts);
        v
    }
}

fn base_model(m: &str) -> &str {
    m.split('@').next().unwrap_or(m)
}

fn check_record(r: &PredictionRecord, line: usize, source: &str) -> Result<()> {
    let bad = |what: &str, why: String| Error::InvalidBar {
        source_name: source.to_string(),
        row: line,
        column: what.to_string(),
        reason: why,
    };
    if !(-1..=1).contains(&r.direction) {
        return Err(bad("direction", format!("must be -1, 0 or 1, got {}", r.direction)));
    }
    if let Some(p) = r.probability
        && !(0.0..=1.0).contains(&p)
    {
        return Err(bad("probability", format!("must be in [0, 1], got {p}")));
    }
    for (name, v) in [("score", r.score), ("outcome", r.outcome), ("risk", r.risk), ("latency_ms", r.latency_ms)] {
        if let Some(v) = v
            && !v.is_finite()
        {
            return Err(bad(name, format!("must be finite, got {v}")));
        }
    }
    if r.risk.is_some_and(|v| v <= 0.0) {
        return Err(bad("risk", "must be positive".into()));
    }
    Ok(())
}

/// HEALTHY / DEGRADED / CRITICAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthStatus {
    /// No alert.
    Healthy,
    /// One alert.
    Degraded,
    /// Two or more alerts.
    Critical,
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            HealthStatus::Healthy => "HEALTHY",
            HealthStatus::Degraded => "DEGRADED",
            HealthStatus::Critical => "CRITICAL",
        })
    }
}

/// Direction of the daily win rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Trend {
    /// Significant upward slope.
    Improving,
    /// No significant slope (or too few days).
    Stable,
    /// Significant downward slope.
    Degrading,
}

/// A model's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The model.
    pub model: String,
    /// Predictions logged.
    pub predictions: usize,
    /// Predictions with an outcome.
    pub resolved: usize,
    /// Win rate of resolved non-flat calls.
    pub win_rate: Option<f64>,
    /// Sign accuracy of resolved calls.
    pub accuracy: Option<f64>,
    /// Mean direction × outcome ÷ risk.
    pub avg_r: Option<f64>,
    /// Expected calibration error of the probabilities.
    pub calibration_error: Option<f64>,
    /// Longs ÷ shorts.
    pub long_short_ratio: Option<f64>,
    /// Latency percentiles (ms): p50, p95, p99.
    pub latency_ms: Option<[f64; 3]>,
    /// Share of non-flat predictions.
    pub coverage: f64,
    /// Rolling IC per trading day (UTC date, IC).
    pub rolling_ic: Vec<(String, f64)>,
    /// Daily win-rate trend.
    pub trend: Trend,
    /// The status.
    pub status: HealthStatus,
    /// The alerts raised.
    pub alerts: Vec<String>,
    /// Caveats (too little data, …).
    pub notes: Vec<String>,
}

impl HealthReport {
    /// Trailing consecutive trading days whose rolling IC is below `threshold`.
    pub fn ic_days_below(&self, threshold: f64) -> usize {
        self.rolling_ic.iter().rev().take_while(|(_, ic)| *ic < threshold).count()
    }

    /// Trailing consecutive trading days whose rolling IC is below zero (retirement).
    pub fn negative_ic_days(&self) -> usize {
        self.ic_days_below(0.0)
    }
}

/// The UTC date of `ts` as `YYYY-MM-DD` (the civil date's printer: no format string to parse).
fn day_of(ts: Timestamp) -> String {
    ts.to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
}

/// Assess one model from its records (time order).
pub fn assess(model: &str, records: &[&PredictionRecord], policy: &Policy) -> HealthReport {
    let mut notes = Vec::new();
    let resolved: Vec<&&PredictionRecord> = records.iter().filter(|r| r.outcome.is_some()).collect();
    let calls: Vec<&&&PredictionRecord> = resolved.iter().filter(|r| r.direction != 0).collect();
    let outcome = |r: &PredictionRecord| r.outcome.unwrap_or(0.0);
    let win = |r: &PredictionRecord| f64::from(r.direction) * outcome(r) > 0.0;
    let win_rate = (!calls.is_empty()).then(|| calls.iter().filter(|r| win(r)).count() as f64 / calls.len() as f64);
    let accuracy = (!resolved.is_empty()).then(|| {
        resolved
            .iter()
            .filter(|r| {
                f64::from(r.direction).signum() == outcome(r).signum() || (r.direction == 0 && outcome(r) == 0.0)
            })
            .count() as f64
            / resolved.len() as f64
    });
    let avg_r = (!resolved.is_empty()).then(|| {
        resolved.iter().map(|r| f64::from(r.direction) * outcome(r) / r.risk.unwrap_or(1.0)).sum::<f64>()
            / resolved.len() as f64
    });
    let with_p: Vec<(f64, f64)> =
        calls.iter().filter_map(|r| r.probability.map(|p| (if win(r) { 1.0 } else { 0.0 }, p))).collect();
    let calibration_error = (!with_p.is_empty()).then(|| {
        let (y, p): (Vec<f64>, Vec<f64>) = with_p.into_iter().unzip();
        expected_calibration_error(&y, &p).unwrap_or(f64::NAN)
    });
    let longs = records.iter().filter(|r| r.direction > 0).count();
    let shorts = records.iter().filter(|r| r.direction < 0).count();
    let long_short_ratio = (shorts > 0).then(|| longs as f64 / shorts as f64);
    let mut lat: Vec<f64> = records.iter().filter_map(|r| r.latency_ms).collect();
    lat.sort_unstable_by(f64::total_cmp);
    let latency_ms = (!lat.is_empty())
        .then(|| [quantile_sorted(&lat, 0.5), quantile_sorted(&lat, 0.95), quantile_sorted(&lat, 0.99)]);
    let coverage = if records.is_empty() { 0.0 } else { (longs + shorts) as f64 / records.len() as f64 };

    // Per trading day (UTC dates with resolved predictions), oldest first.
    // Keyed by the day number (formatting a date per record was most of the assessment).
    let mut days: BTreeMap<i64, Vec<&PredictionRecord>> = BTreeMap::new();
    for r in &resolved {
        days.entry(r.ts.as_second().div_euclid(86_400)).or_default().push(r);
    }
    let day_list: Vec<(&i64, &Vec<&PredictionRecord>)> = days.iter().collect();
    let w = policy.health_ic_window_days.max(1);
    // Windows slide by whole days: each keeps its rows' order by dropping the day that left
    // and placing the day that came, instead of sorting every window again; the ranks are
    // read off that order into buffers reused for every window.
    let (mut score, mut out, mut day_start) = (Vec::new(), Vec::new(), Vec::new());
    let (mut score_order, mut out_order) = (SlidingOrder::default(), SlidingOrder::default());
    let mut rolling_ic = Vec::new();
    let (mut score_ranks, mut out_ranks) = (Vec::new(), Vec::new());
    for i in 0..day_list.len() {
        let first = score.len();
        day_start.push(first);
        let day = day_list[i].1;
        score.extend(
            day.iter().map(|r| r.score.unwrap_or_else(|| f64::from(r.direction) * r.probability.unwrap_or(1.0))),
        );
        out.extend(day.iter().map(|r| outcome(r)));
        let start = day_start[(i + 1).saturating_sub(w)];
        score_order.slide(start, first, &score[first..]);
        out_order.slide(start, first, &out[first..]);
        score_order.ranks(start, &mut score_ranks);
        out_order.ranks(start, &mut out_ranks);
        if let Ok(ic) = pearson(&score_ranks, &out_ranks)
            && ic.is_finite()
        {
            let first = day.first().expect("a day holds records");
            rolling_ic.push((day_of(first.ts), ic));
        }
    }
    let daily_wr: Vec<f64> = day_list
        .iter()
        .filter_map(|(_, v)| {
            let c: Vec<_> = v.iter().filter(|r| r.direction != 0).collect();
            (!c.is_empty()).then(|| c.iter().filter(|r| win(r)).count() as f64 / c.len() as f64)
        })
        .collect();
    let trend = trend_of(&daily_wr);

    let mut alerts = Vec::new();
    if resolved.len() < policy.health_min_outcomes {
        notes.push(format!(
            "{} resolved predictions (< {}): performance alerts need more outcomes",
            resolved.len(),
            policy.health_min_outcomes
        ));
    } else {
        if let Some(w) = win_rate.filter(|&w| w < policy.health_min_win_rate) {
            alerts.push(format!("win rate {:.1}% < {:.0}%", 100.0 * w, 100.0 * policy.health_min_win_rate));
        }
        if let Some(c) = calibration_error.filter(|&c| c > policy.health_max_calibration_error) {
            alerts.push(format!("calibration error {c:.3} > {}", policy.health_max_calibration_error));
        }
    }
    if let Some([_, p95, _]) = latency_ms.filter(|l| l[1] > policy.health_max_latency_ms) {
        alerts.push(format!("latency p95 {p95:.0} ms > {} ms", policy.health_max_latency_ms));
    }
    if records.len() >= policy.health_min_outcomes {
        match long_short_ratio {
            Some(r) if r > policy.health_max_long_short_ratio || r < policy.health_min_long_short_ratio => {
                alerts.push(format!(
                    "long/short ratio {r:.2} outside [{}, {}]",
                    policy.health_min_long_short_ratio, policy.health_max_long_short_ratio
                ))
            }
            None if longs > 0 => alerts.push("only long calls (long/short ratio infinite)".into()),
            _ => {}
        }
    }
    let status = match alerts.len() {
        0 => HealthStatus::Healthy,
        1 => HealthStatus::Degraded,
        _ => HealthStatus::Critical,
    };
    HealthReport {
        model: model.to_string(),
        predictions: records.len(),
        resolved: resolved.len(),
        win_rate,
        accuracy,
        avg_r,
        calibration_error,
        long_short_ratio,
        latency_ms,
        coverage,
        rolling_ic,
        trend,
        status,
        alerts,
        notes,
    }
}

/// The ascending order of a window of rows that slides by whole days: (`total_cmp` key, row)
/// pairs, rows numbered from the first day ever seen. Sorting by (key, row) is what
/// [`crate::validation::metrics::average_ranks`] does, so the ranks come out the same.
#[derive(Default)]
struct SlidingOrder {
    order: Vec<(u64, usize)>,
    merged: Vec<(u64, usize)>,
    /// The first row kept.
    start: usize,
}

impl SlidingOrder {
    /// Drop the rows before `start` (which never moves back); merge in `values`, rows
    /// `first..` (after every kept row).
    fn slide(&mut self, start: usize, first: usize, values: &[f64]) {
        if start > self.start {
            self.order.retain(|&(_, r)| r >= start);
            self.start = start;
        }
        let day = crate::sortkey::sorted_positions(values, first);
        // A new row comes after every kept one, so among equal keys the kept rows go first:
        // each new pair goes after the kept pairs whose keys are ≤ its own. A day is a handful
        // of rows against a window of hundreds: binary searches and block copies, not a
        // merge comparing every pair.
        let (kept, out) = (&self.order, &mut self.merged);
        out.clear();
        out.reserve(kept.len() + day.len());
        let mut from = 0;
        for &p in &day {
            let at = from + kept[from..].partition_point(|&(k, _)| k <= p.0);
            out.extend_from_slice(&kept[from..at]);
            out.push(p);
            from = at;
        }
        out.extend_from_slice(&kept[from..]);
        std::mem::swap(&mut self.order, &mut self.merged);
    }

    /// Average ranks of the window's rows into `out` (by row − `start`), read straight off
    /// the order.
    fn ranks(&self, start: usize, out: &mut Vec<f64>) {
        ranks_of_order(&self.order, start, out);
    }
}

/// OLS slope of `y` on 0..n with a two-sided t-test at 5 % (Stable below 5 points).
fn trend_of(y: &[f64]) -> Trend {
    let n = y.len();
    if n < 5 {
        return Trend::Stable;
    }
    let nf = n as f64;
    let xm = (nf - 1.0) / 2.0;
    let ym = y.iter().sum::<f64>() / nf;
    let sxx: f64 = (0..n).map(|i| (i as f64 - xm).powi(2)).sum();
    let sxy: f64 = y.iter().enumerate().map(|(i, v)| (i as f64 - xm) * (v - ym)).sum();
    let slope = sxy / sxx;
    let resid: f64 = y.iter().enumerate().map(|(i, v)| (v - ym - slope * (i as f64 - xm)).powi(2)).sum();
    let se = (resid / (nf - 2.0) / sxx).sqrt();
    if se == 0.0 {
        return if slope > 0.0 {
            Trend::Improving
        } else if slope < 0.0 {
            Trend::Degrading
        } else {
            Trend::Stable
        };
    }
    let p = crate::validation::compare::t_p_value(slope / se, nf - 2.0);
    match (p < 0.05, slope) {
        (true, s) if s < 0.0 => Trend::Degrading,
        (true, s) if s > 0.0 => Trend::Improving,
        _ => Trend::Stable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(day: i64, hour: i64, dir: i8, p: f64, outcome: f64) -> PredictionRecord {
        PredictionRecord {
            ts: Timestamp::from_second(1_767_225_600 + day * 86_400 + hour * 3600).unwrap(),
            model: "m".into(),
            direction: dir,
            probability: Some(p),
            score: None,
            outcome: Some(outcome),
            risk: None,
            latency_ms: Some(5.0 + hour as f64),
        }
    }

    /// `days` days of 24 calls each, alternating long/short, winning with share `win(day)`.
    fn log(days: i64, win: impl Fn(i64) -> f64) -> PredictionLog {
        let mut l = PredictionLog::new();
        for d in 0..days {
            let wins = (win(d) * 24.0).round() as i64;
            for h in 0..24 {
                let dir = if h % 2 == 0 { 1 } else { -1 };
                let sign = if h < wins { 1.0 } else { -1.0 };
                l.push(rec(d, h, dir, 0.6, sign * f64::from(dir) * 0.01 * (1.0 + h as f64 / 24.0))).unwrap();
            }
        }
        l
    }

    #[test]
    fn a_good_model_is_healthy_and_a_losing_one_is_not() {
        let p = Policy::default();
        let good = log(10, |_| 0.6);
        let h = assess("m", &good.of("m"), &p);
        assert_eq!(h.status, HealthStatus::Healthy, "{h:?}");
        assert!((h.win_rate.unwrap() - 14.0 / 24.0).abs() < 1e-12);
        assert_eq!(h.long_short_ratio, Some(1.0));
        assert_eq!(h.coverage, 1.0);
        assert_eq!(h.trend, Trend::Stable);
        let bad = log(10, |_| 0.25);
        let h = assess("m", &bad.of("m"), &p);
        assert_eq!(h.status, HealthStatus::Critical, "win rate and calibration both alert: {h:?}");
        assert_eq!(h.alerts.len(), 2);
    }

    #[test]
    fn a_falling_win_rate_is_a_degrading_trend() {
        let h = assess("m", &log(12, |d| 0.8 - 0.04 * d as f64).of("m"), &Policy::default());
        assert_eq!(h.trend, Trend::Degrading);
        let h = assess("m", &log(12, |d| 0.3 + 0.04 * d as f64).of("m"), &Policy::default());
        assert_eq!(h.trend, Trend::Improving);
    }

    #[test]
    fn latency_and_small_samples() {
        let mut l = PredictionLog::new();
        for i in 0..10 {
            let mut r = rec(0, i, 1, 0.6, 0.01);
            r.latency_ms = Some(600.0);
            l.push(r).unwrap();
        }
        let h = assess("m", &l.of("m"), &Policy::default());
        assert_eq!(h.status, HealthStatus::Degraded, "{h:?}");
        assert!(h.alerts[0].contains("latency"));
        assert!(h.notes[0].contains("resolved predictions"));
    }

    #[test]
    fn bad_records_are_typed_errors_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        std::fs::write(&path, "{\"ts\":\"2026-01-01T00:00:00Z\",\"model\":\"m\",\"direction\":1}\n{\"ts\":\"2026-01-01T01:00:00Z\",\"model\":\"m\",\"direction\":2}\n").unwrap();
        let e = PredictionLog::read_jsonl(&path).unwrap_err().to_string();
        assert!(e.contains("row 2") && e.contains("direction"), "{e}");
        std::fs::write(&path, "{\"ts\":\"2026-01-01T00:00:00Z\",\"model\":\"m\",\"direction\":1,\"oops\":1}\n")
            .unwrap();
        let e = PredictionLog::read_jsonl(&path).unwrap_err().to_string();
        assert!(e.contains("log.jsonl:1") && e.contains("oops"), "{e}");
    }

    #[test]
    fn sliding_window_ranks_equal_spearman_of_each_window() {
        use crate::validation::metrics::{average_ranks, spearman};
        let mut rng = crate::rng::Rng::new(5);
        for case in 0..30 {
            // Scores with heavy ties (direction × probability, ±0), rounded or continuous.
            let draw = |rng: &mut crate::rng::Rng| match case % 3 {
                0 => [0.55, -0.55, 0.0, -0.0][rng.below(4)],
                1 => (rng.normal() * 3.0).round(),
                _ => rng.normal(),
            };
            let days: Vec<Vec<(f64, f64)>> = (0..1 + rng.below(12))
                .map(|_| (0..1 + rng.below(30)).map(|_| (draw(&mut rng), draw(&mut rng))).collect())
                .collect();
            let w = 1 + rng.below(6);
            let (mut xs, mut ys, mut starts) = (Vec::new(), Vec::new(), Vec::new());
            let (mut so, mut oo) = (SlidingOrder::default(), SlidingOrder::default());
            for (i, day) in days.iter().enumerate() {
                let first = xs.len();
                starts.push(first);
                xs.extend(day.iter().map(|p| p.0));
                ys.extend(day.iter().map(|p| p.1));
                let start = starts[(i + 1).saturating_sub(w)];
                so.slide(start, first, &xs[first..]);
                oo.slide(start, first, &ys[first..]);
                let (mut rx, mut ry) = (Vec::new(), Vec::new());
                so.ranks(start, &mut rx);
                oo.ranks(start, &mut ry);
                assert_eq!(rx, average_ranks(&xs[start..]), "case {case}, day {i}");
                let fast = pearson(&rx, &ry);
                match (fast, spearman(&xs[start..], &ys[start..])) {
                    (Ok(a), Ok(b)) => assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{a} vs {b}"),
                    (Err(_), Err(_)) => {}
                    (a, b) => panic!("case {case}, day {i}: {a:?} vs {b:?}"),
                }
            }
        }
    }

    #[test]
    fn ic_decay_days_count_the_trailing_run() {
        let mut h = assess("m", &log(3, |_| 0.6).of("m"), &Policy::default());
        h.rolling_ic = vec![("a".into(), 0.05), ("b".into(), 0.01), ("c".into(), -0.01), ("d".into(), 0.0)];
        assert_eq!(h.ic_days_below(0.02), 3);
        assert_eq!(h.negative_ic_days(), 0);
    }

    #[test]
    fn parquet_logs_read_like_jsonl_and_bad_columns_are_named() {
        use polars::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.parquet");
        let mut df = df!(
            "ts" => ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"],
            "model" => ["m", "m@v1"],
            "direction" => [1i64, -1],
            "probability" => [Some(0.6), None],
            "outcome" => [Some(0.01), Some(-0.02)]
        )
        .unwrap();
        crate::data::io::write_frame(&mut df, &path).unwrap();
        let log = PredictionLog::read(&path).unwrap();
        assert_eq!(log.records().len(), 2);
        assert_eq!(log.models(), ["m"]);
        assert_eq!(log.records()[1].direction, -1);
        assert_eq!(log.records()[0].probability, Some(0.6));
        assert_eq!(log.records()[1].probability, None);
        assert_eq!(log.records()[1].outcome, Some(-0.02));

        let mut bad = df!("ts" => [0i64], "model" => ["m"], "direction" => [1i64], "pnl" => [1.0]).unwrap();
        crate::data::io::write_frame(&mut bad, &path).unwrap();
        assert!(matches!(PredictionLog::read(&path), Err(Error::Config { message, .. }) if message.contains("pnl")));
        let mut bad = df!("ts" => ["2026-01-01"], "model" => ["m"], "direction" => [3i64]).unwrap();
        crate::data::io::write_frame(&mut bad, &path).unwrap();
        assert!(
            matches!(PredictionLog::read(&path), Err(Error::InvalidBar { row: 1, column, .. }) if column == "direction")
        );
    }
}

//! What a cross-validation produces: the task, per-split and per-path [`Scores`], their
//! mean and spread across backtest paths, the overfitting flags and the out-of-sample
//! predictions — serde-serialisable and printable as a table.
//!
//! How predictions become trades (for the trading metrics and the IC): binary → long when
//! `p > 0.5`, short when `p < 0.5`; three classes (down / flat / up) → the arg-max class
//! (flat = no trade), IC score `p(up) − p(down)`; regression → the sign of the prediction.
//! A trade's PnL is `position · ret` (the row's realised return to its label end). Sharpe is
//! annualised by `√(periods per year / horizon)` — one independent trade per horizon — and
//! the drawdown curve is the cumulative sum of `pnl / horizon` (each row's trade sized
//! `1/horizon`, so overlapping trades add up to one unit of exposure). The IC correlates the
//! score with the realised return when the dataset has one, else with the label.

use std::fmt;

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::features::Task;
use crate::validation::metrics as m;
use crate::validation::overfit::OverfitFlags;

/// Every metric that applies to a set of rows (`None` where it does not apply or is
/// undefined, e.g. AUC with one class).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Rows scored.
    pub rows: usize,
    /// ROC AUC (binary).
    pub auc: Option<f64>,
    /// Log-loss (binary, multiclass).
    pub log_loss: Option<f64>,
    /// Brier score (binary).
    pub brier: Option<f64>,
    /// Accuracy of the arg-max / 0.5-threshold class.
    pub accuracy: Option<f64>,
    /// Precision for class 1 (binary).
    pub precision: Option<f64>,
    /// Recall for class 1 (binary).
    pub recall: Option<f64>,
    /// F1 for class 1 (binary).
    pub f1: Option<f64>,
    /// 1 − ECE (binary).
    pub calibration: Option<f64>,
    /// RMSE (regression).
    pub rmse: Option<f64>,
    /// MAE (regression).
    pub mae: Option<f64>,
    /// R² (regression).
    pub r2: Option<f64>,
    /// Sign agreement of prediction and target (regression).
    pub directional_accuracy: Option<f64>,
    /// Spearman IC of score vs realised return (or label).
    pub ic_spearman: Option<f64>,
    /// Pearson IC of score vs realised return (or label).
    pub ic_pearson: Option<f64>,
    /// Share of winning trades.
    pub win_rate: Option<f64>,
    /// Mean trade return in units of entry risk.
    pub avg_r: Option<f64>,
    /// Annualised Sharpe of the simulated PnL.
    pub sharpe: Option<f64>,
    /// Max drawdown of the simulated equity curve (return units).
    pub max_drawdown: Option<f64>,
}

fn finite(v: crate::Result<f64>) -> Option<f64> {
    v.ok().filter(|x| x.is_finite())
}

/// Trading position and IC score of each row's output.
pub fn signals(task: Task, out: ArrayView2<'_, f64>) -> (Option<Vec<f64>>, Option<Vec<f64>>) {
    match task {
        Task::Binary => {
            let p = out.column(0);
            let pos = p.iter().map(|&q| (q > 0.5) as i8 as f64 - (q < 0.5) as i8 as f64).collect();
            (Some(pos), Some(p.to_vec()))
        }
        Task::Multiclass { classes: 3 } => {
            let pos = out
                .rows()
                .into_iter()
                .map(|r| match argmax(r) {
                    2 => 1.0,
                    0 => -1.0,
                    _ => 0.0,
                })
                .collect();
            let score = out.rows().into_iter().map(|r| r[2] - r[0]).collect();
            (Some(pos), Some(score))
        }
        Task::Multiclass { .. } => (None, None),
        Task::Regression => {
            let p = out.column(0);
            (Some(p.iter().map(|&v| (v > 0.0) as i8 as f64 - (v < 0.0) as i8 as f64).collect()), Some(p.to_vec()))
        }
    }
}

fn argmax(r: ndarray::ArrayView1<'_, f64>) -> usize {
    r.iter().enumerate().fold(0, |b, (i, &v)| if v > r[b] { i } else { b })
}

/// How to turn trades into annual figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TradeClock {
    /// Bars per year (from the data's median bar interval over a 365.25-day year).
    pub bars_per_year: f64,
    /// Label horizon in bars.
    pub horizon: f64,
}

/// Score rows: `y` labels, `out` the model's outputs (`rows × n_outputs`), optional realised
/// returns and risks of the rows.
pub fn score(
    task: Task,
    y: &[f64],
    out: ArrayView2<'_, f64>,
    ret: Option<&[f64]>,
    risk: Option<&[f64]>,
    clock: Option<TradeClock>,
) -> Scores {
    let mut s = Scores { rows: y.len(), ..Scores::default() };
    match task {
        Task::Binary => {
            let p = out.column(0).to_vec();
            let hard: Vec<f64> = p.iter().map(|&q| f64::from(u8::from(q > 0.5))).collect();
            s.auc = finite(m::roc_auc(y, &p));
            s.log_loss = finite(m::log_loss(y, &p));
            s.brier = finite(m::brier(y, &p));
            s.accuracy = finite(m::accuracy(y, &hard));
            s.precision = finite(m::precision(y, &hard));
            s.recall = finite(m::recall(y, &hard));
            s.f1 = finite(m::f1(y, &hard));
            s.calibration = finite(m::calibration_score(y, &p));
        }
        Task::Multiclass { classes } => {
            let flat: Vec<f64> = out.iter().copied().collect();
            s.log_loss = finite(m::multi_log_loss(y, &flat, classes));
            let cls: Vec<f64> = out.rows().into_iter().map(|r| argmax(r) as f64).collect();
            s.accuracy = finite(m::accuracy(y, &cls));
        }
        Task::Regression => {
            let p = out.column(0).to_vec();
            s.rmse = finite(m::rmse(y, &p));
            s.mae = finite(m::mae(y, &p));
            s.r2 = finite(m::r2(y, &p));
            s.directional_accuracy = finite(m::directional_accuracy(y, &p));
        }
    }
    let (pos, score) = signals(task, out);
    if let Some(score) = &score
        && y.len() >= 2
    {
        let target = ret.unwrap_or(y);
        s.ic_spearman = finite(m::spearman(score, target));
        s.ic_pearson = finite(m::pearson(score, target));
    }
    if let (Some(pos), Some(ret)) = (&pos, ret) {
        s.win_rate = finite(m::win_rate(pos, ret));
        if let Some(risk) = risk {
            s.avg_r = finite(m::average_r(pos, ret, risk));
        }
        let pnl: Vec<f64> = pos.iter().zip(ret).map(|(a, b)| a * b).collect();
        if let Some(c) = clock {
            let h = c.horizon.max(1.0);
            s.sharpe = finite(m::sharpe(&pnl, c.bars_per_year / h));
            let scaled: Vec<f64> = pnl.iter().map(|v| v / h).collect();
            s.max_drawdown = Some(m::max_drawdown(&scaled));
        }
    }
    s
}

impl Scores {
    /// `(name, value)` of every metric that is set, in declaration order.
    pub fn values(&self) -> Vec<(&'static str, f64)> {
        let all = [
            ("auc", self.auc),
            ("log_loss", self.log_loss),
            ("brier", self.brier),
            ("accuracy", self.accuracy),
            ("precision", self.precision),
            ("recall", self.recall),
            ("f1", self.f1),
            ("calibration", self.calibration),
            ("rmse", self.rmse),
            ("mae", self.mae),
            ("r2", self.r2),
            ("directional_accuracy", self.directional_accuracy),
            ("ic_spearman", self.ic_spearman),
            ("ic_pearson", self.ic_pearson),
            ("win_rate", self.win_rate),
            ("avg_r", self.avg_r),
            ("sharpe", self.sharpe),
            ("max_drawdown", self.max_drawdown),
        ];
        all.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect()
    }

    /// Whether a higher value of metric `name` is better (`None`: no such metric, or one with
    /// no better direction to compare, `max_drawdown`).
    pub fn higher_is_better(name: &str) -> Option<bool> {
        match name {
            "log_loss" | "brier" | "rmse" | "mae" => Some(false),
            "auc"
            | "accuracy"
            | "precision"
            | "recall"
            | "f1"
            | "calibration"
            | "r2"
            | "directional_accuracy"
            | "ic_spearman"
            | "ic_pearson"
            | "win_rate"
            | "avg_r"
            | "sharpe" => Some(true),
            _ => None,
        }
    }

    /// One metric by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values().into_iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

/// One split's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitScores {
    /// Split index.
    pub split: usize,
    /// Groups tested.
    pub test_groups: Vec<usize>,
    /// Training rows used for the fit (after purge, embargo and the early-stopping slice).
    pub train_rows: usize,
    /// Rows in the early-stopping slice (0 without early stopping).
    pub early_stopping_rows: usize,
    /// Purged and embargoed rows.
    pub purged: usize,
    /// Rows removed by the embargo.
    pub embargoed: usize,
    /// Seconds to fit and predict this split.
    pub seconds: f64,
    /// Out-of-sample scores.
    pub test: Scores,
    /// In-sample scores on the training rows, when asked for (for the record: no check reads
    /// them, a model's score on its own rows says nothing).
    pub train: Option<Scores>,
    /// Scores on the early-stopping (selection) slice, when the model early-stops: what model
    /// selection saw, the left side of the Sharpe gap.
    #[serde(default)]
    pub selection: Option<Scores>,
}

/// One backtest path's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathScores {
    /// Path index.
    pub path: usize,
    /// `(group, split)` segments.
    pub segments: Vec<(usize, usize)>,
    /// Scores over the path's rows.
    pub scores: Scores,
}

/// Mean and sample standard deviation (ddof = 1) of one metric across paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    /// Metric name.
    pub metric: String,
    /// Mean across paths.
    pub mean: f64,
    /// Standard deviation across paths (0 with a single path).
    pub std: f64,
}

/// Out-of-sample outputs of one split: `values` is row-major `rows × n_outputs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OosPredictions {
    /// Test rows (indices into the dataset).
    pub rows: Vec<usize>,
    /// Outputs per row.
    pub n_outputs: usize,
    /// Row-major outputs.
    pub values: Vec<f64>,
}

/// The full cross-validation report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvReport {
    /// Splitter description.
    pub method: String,
    /// The task.
    pub task: Task,
    /// Dataset rows.
    pub rows: usize,
    /// Features.
    pub features: usize,
    /// Annualisation used for Sharpe, when the dataset has realised returns.
    pub clock: Option<TradeClock>,
    /// Per split.
    pub splits: Vec<SplitScores>,
    /// Per backtest path.
    pub paths: Vec<PathScores>,
    /// Across paths.
    pub summary: Vec<MetricSummary>,
    /// Overfitting flags.
    pub flags: OverfitFlags,
    /// Wall-clock seconds of the whole cross-validation.
    pub seconds: f64,
    /// Remarks a reader must know (e.g. an embargo set below the feature lookback).
    pub notes: Vec<String>,
    /// The splitter's row groups (to map predictions back to paths).
    pub groups: Vec<std::ops::Range<usize>>,
    /// Seed study (stability, and PBO / DSR across seeds), when several seeds were run.
    pub seeds: Option<SeedStudy>,
    /// Out-of-sample predictions per split (empty when not kept).
    pub oos: Vec<OosPredictions>,
}

/// Several seeds treated as trials of one configuration: the score spread, and whether
/// picking the best seed would be backtest overfitting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedStudy {
    /// The primary metric's mean across paths, per seed.
    pub scores: Vec<f64>,
    /// Variance of `scores` (ddof = 1).
    pub variance: f64,
    /// Per-period Sharpe of each seed's path-0 PnL (with realised returns).
    pub sharpes: Option<Vec<f64>>,
    /// PBO by CSCV over the seeds' path-0 PnL series (8 blocks), with realised returns.
    pub pbo: Option<f64>,
    /// Deflated Sharpe Ratio of seed 0's path-0 PnL against all seeds as trials.
    pub dsr: Option<f64>,
}

/// Rows (ascending within each group) and outputs of a path's `(group, split)` segments,
/// taken from each split's out-of-sample predictions.
pub fn path_outputs(
    groups: &[std::ops::Range<usize>],
    oos: &[OosPredictions],
    segments: &[(usize, usize)],
) -> (Vec<usize>, ndarray::Array2<f64>) {
    let k = oos.first().map_or(1, |o| o.n_outputs);
    let mut rows = Vec::new();
    let mut values = Vec::new();
    for &(g, s) in segments {
        let o = &oos[s];
        let range = groups[g].clone();
        let from = o.rows.partition_point(|&r| r < range.start);
        let to = o.rows.partition_point(|&r| r < range.end);
        rows.extend_from_slice(&o.rows[from..to]);
        values.extend_from_slice(&o.values[from * k..to * k]);
    }
    let out = ndarray::Array2::from_shape_vec((rows.len(), k), values).expect("rows × outputs");
    (rows, out)
}

impl CvReport {
    /// Rows and outputs (`rows × n_outputs`) of path `p`, from the kept out-of-sample
    /// predictions (`None` when predictions were not kept).
    pub fn path_outputs(&self, p: usize) -> Option<(Vec<usize>, ndarray::Array2<f64>)> {
        if self.oos.len() != self.splits.len() {
            return None;
        }
        Some(path_outputs(&self.groups, &self.oos, &self.paths.get(p)?.segments))
    }

    /// The summary of one metric.
    pub fn metric(&self, name: &str) -> Option<&MetricSummary> {
        self.summary.iter().find(|s| s.metric == name)
    }

    /// One metric's value on each path (paths where it is undefined are skipped).
    pub fn per_path(&self, name: &str) -> Vec<f64> {
        self.paths.iter().filter_map(|p| p.scores.get(name)).collect()
    }
}

/// Mean/std (ddof = 1) of every metric across paths.
pub fn summarize(paths: &[PathScores]) -> Vec<MetricSummary> {
    let Some(first) = paths.first() else { return Vec::new() };
    first
        .scores
        .values()
        .into_iter()
        .map(|(name, _)| {
            let v: Vec<f64> = paths.iter().filter_map(|p| p.scores.get(name)).collect();
            let (mean, std) = if v.len() > 1 { m::mean_std(&v) } else { (v[0], 0.0) };
            MetricSummary { metric: name.to_string(), mean, std }
        })
        .collect()
}

impl fmt::Display for CvReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} on {} rows x {} features ({:?}), {:.1} s",
            self.method, self.rows, self.features, self.task, self.seconds
        )?;
        let names: Vec<&str> = self.summary.iter().map(|s| s.metric.as_str()).collect();
        let short = |n: &str| -> String { n.replace("directional_accuracy", "dir_acc").chars().take(11).collect() };
        write!(f, "{:<8}", "path")?;
        for n in &names {
            write!(f, " {:>11}", short(n))?;
        }
        writeln!(f)?;
        for p in &self.paths {
            write!(f, "{:<8}", p.path)?;
            for n in &names {
                match p.scores.get(n) {
                    Some(v) => write!(f, " {v:>11.4}")?,
                    None => write!(f, " {:>11}", "-")?,
                }
            }
            writeln!(f)?;
        }
        for (label, pick) in [("mean", true), ("std", false)] {
            write!(f, "{label:<8}")?;
            for s in &self.summary {
                write!(f, " {:>11.4}", if pick { s.mean } else { s.std })?;
            }
            writeln!(f)?;
        }
        writeln!(f, "splits:")?;
        let key = self.task.primary_metric();
        for s in &self.splits {
            writeln!(
                f,
                "  {:>3} test groups {:?}: train {} (purged {}, embargoed {}{}), test {}, {key} {}, {:.2} s",
                s.split,
                s.test_groups,
                s.train_rows,
                s.purged,
                s.embargoed,
                if s.early_stopping_rows > 0 {
                    format!(", early-stopping slice {}", s.early_stopping_rows)
                } else {
                    String::new()
                },
                s.test.rows,
                s.test.get(key).map_or("-".to_string(), |v| format!("{v:.4}")),
                s.seconds
            )?;
        }
        let fl = &self.flags;
        writeln!(
            f,
            "overfitting: Sharpe gap (selection slices − test paths, annualised) {}{}, IC {}{}{}{}",
            match (fl.sharpe_gap, fl.sharpe_gap_p) {
                (Some(g), Some(p)) => format!("{g:.3} (p = {p:.3})"),
                _ => "n/a (no early stopping)".into(),
            },
            if fl.sharpe_gap_flag { " (FLAG > limit)" } else { "" },
            fl.ic.map_or("-".into(), |v| format!("{v:.4}")),
            if fl.weak_ic { " (FLAG weak)" } else { "" },
            fl.seed_variance.map_or(String::new(), |v| format!(
                ", seed variance {v:.2e}{}",
                if fl.unstable { " (FLAG unstable)" } else { "" }
            )),
            fl.deflated_sharpe.map_or(String::new(), |d| format!(
                ", deflated Sharpe {d:.3} over {} trial(s){}",
                fl.trials.max(1),
                if fl.weak_sharpe { " (FLAG weak)" } else { "" }
            )),
        )?;
        if let Some(st) = &self.seeds {
            writeln!(
                f,
                "seeds: {} scores {} (variance {:.2e}){}{}",
                st.scores.len(),
                st.scores.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(" "),
                st.variance,
                st.pbo.map_or(String::new(), |p| format!(", PBO over seeds {p:.3}")),
                st.dsr.map_or(String::new(), |d| format!(", deflated Sharpe (seed 0) {d:.3}")),
            )?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

//! [`Dataset`]: the model-ready table — column-major `f32` features, target, label
//! interval `[t0, t1]`, symbol per row, feature names and optional weights.
//!
//! Built from bars, a [`FeatureSpec`] and a [`LabelSpec`]. Rows whose features are still
//! warming up or whose label is unavailable (horizon past the data) are dropped and
//! counted in [`DropReport`]; pooled symbols are interleaved in time order (by `t0`, then
//! symbol), which is what chronological splitters expect. [`Dataset::select`] cuts folds.
//!
//! For the trading metrics every row built from bars also carries its *realised* trade:
//! `ret` = `close[exit] / close[t0] − 1` with `exit` the bar at the label's end `t1`, and
//! `risk` = ATR(14)/close at `t0` (one ATR stop = 1 R). A [`LabeledTable`] has neither.

use crate::data::Bars;
use crate::data::LabeledTable;
use crate::data::io::timestamp_column;
use crate::error::{Error, Result};
use crate::features::{self, FeatureFrame, FeatureSpec, LabelSpec};
use ndarray::{Array1, Array2, ShapeBuilder};
use polars::prelude::{Column, DataFrame};
use serde::{Deserialize, Serialize};

/// How many rows were dropped while building a [`Dataset`], and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropReport {
    /// Bars in.
    pub rows_in: usize,
    /// Leading rows where some feature had too little history.
    pub warmup: usize,
    /// Trailing rows whose label horizon runs past the data (or label warm-up).
    pub missing_label: usize,
    /// Rows after warm-up with a non-finite feature value (should be 0).
    pub non_finite: usize,
    /// Rows kept.
    pub rows_out: usize,
}

/// A supervised learning table; all per-row arrays have `n_rows` entries.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Features, `n_rows × n_features`, column-major (Fortran) layout.
    pub x: Array2<f32>,
    /// Target (return or class index as f64).
    pub y: Array1<f64>,
    /// Row time = bar time the features describe, UTC epoch ms.
    pub t0: Vec<i64>,
    /// Label end time, UTC epoch ms (the purging input).
    pub t1: Vec<i64>,
    /// Index into [`Dataset::symbols`] for each row.
    pub symbol: Vec<u32>,
    /// Symbol names.
    pub symbols: Vec<String>,
    /// Feature names, one per column of `x`.
    pub feature_names: Vec<String>,
    /// Optional sample weights.
    pub weights: Option<Array1<f64>>,
    /// The label that produced `y` (`None` for a table read with its own label column).
    pub label: Option<LabelSpec>,
    /// Realised return of each row's trade, held from `t0` to `t1` (from bars only).
    pub ret: Option<Vec<f64>>,
    /// Entry risk as a return: ATR(14) / close at `t0` (from bars only; `None` if any row
    /// falls in the ATR warm-up).
    pub risk: Option<Vec<f64>>,
    /// What was dropped while building.
    pub dropped: DropReport,
}

impl Dataset {
    /// Compute features and labels for `bars` and keep the complete rows.
    pub fn from_bars(bars: &[Bars], spec: &FeatureSpec, label: &LabelSpec) -> Result<Dataset> {
        let frame = features::compute_many(bars, spec)?;
        Self::from_frame(bars, &frame, label)
    }

    /// Build from an already computed frame (which must come from the same `bars`).
    pub fn from_frame(bars: &[Bars], frame: &FeatureFrame, label: &LabelSpec) -> Result<Dataset> {
        if frame.segments.len() != bars.len() {
            return Err(Error::Shape {
                what: "frame segments vs bars".into(),
                expected: bars.len(),
                got: frame.segments.len(),
            });
        }
        let labels = bars.iter().map(|b| label.compute(b)).collect::<Result<Vec<_>>>()?;
        let mut dropped = DropReport { rows_in: frame.len(), ..Default::default() };
        let atr: Vec<Vec<f64>> =
            bars.iter().map(|b| crate::features::volatility::atr(b.high(), b.low(), b.close(), 14)).collect();
        // (t0, symbol, row within the symbol, label value, t1)
        let mut rows: Vec<(i64, u32, usize, f64, i64)> = Vec::with_capacity(frame.len());
        for (s, (seg, lab)) in frame.segments.iter().zip(&labels).enumerate() {
            if seg.len() != lab.value.len() {
                return Err(Error::Shape {
                    what: format!("labels of `{}`", seg.symbol),
                    expected: seg.len(),
                    got: lab.value.len(),
                });
            }
            for i in 0..seg.len() {
                if i < seg.warmup {
                    dropped.warmup += 1;
                } else if lab.value[i].is_nan() {
                    dropped.missing_label += 1;
                } else if !seg.row_complete(i) {
                    dropped.non_finite += 1;
                } else {
                    rows.push((seg.ts[i], s as u32, i, lab.value[i], lab.t1[i]));
                }
            }
        }
        rows.sort_by_key(|&(t0, s, ..)| (t0, s));
        dropped.rows_out = rows.len();
        let n = rows.len();
        let mut x = Array2::<f32>::zeros((n, frame.names.len()).f());
        for j in 0..frame.names.len() {
            let mut dst = x.column_mut(j);
            for (k, &(_, s, i, ..)) in rows.iter().enumerate() {
                dst[k] = frame.segments[s as usize].columns[j][i] as f32;
            }
        }
        let ret = rows
            .iter()
            .map(|&(_, s, i, _, t1)| {
                let b = &bars[s as usize];
                let exit = b.timestamps().partition_point(|&t| t < t1).min(b.len() - 1);
                b.close()[exit] / b.close()[i] - 1.0
            })
            .collect();
        let risk: Vec<f64> =
            rows.iter().map(|&(_, s, i, ..)| atr[s as usize][i] / bars[s as usize].close()[i]).collect();
        Ok(Dataset {
            x,
            y: rows.iter().map(|r| r.3).collect(),
            t0: rows.iter().map(|r| r.0).collect(),
            t1: rows.iter().map(|r| r.4).collect(),
            symbol: rows.iter().map(|r| r.1).collect(),
            symbols: frame.segments.iter().map(|s| s.symbol.clone()).collect(),
            feature_names: frame.names.clone(),
            weights: None,
            label: Some(label.clone()),
            ret: Some(ret),
            risk: risk.iter().all(|r| r.is_finite() && *r > 0.0).then_some(risk),
            dropped,
        })
    }

    /// A labelled table as a dataset. Row times come from the table's `timestamp` and `t1`
    /// columns; without `t1`, each label ends `horizon` rows later (`t1 = t0` of row `i +
    /// horizon`, extrapolated by the median step past the end); without `timestamp`, times are
    /// row numbers. Rows are sorted by time (stable) so splitters can cut them.
    pub fn from_table(table: LabeledTable, horizon: Option<usize>) -> Result<Dataset> {
        let n = table.n_rows();
        let table = match &table.t0 {
            Some(t0) if t0.windows(2).any(|w| w[1] < w[0]) => {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by_key(|&r| (t0[r], r));
                table.select(&order)
            }
            _ => table,
        };
        let t0: Vec<i64> = table.t0.clone().unwrap_or_else(|| (0..n as i64).collect());
        let t1 = match (&table.t1, horizon) {
            (Some(t1), _) => t1.clone(),
            (None, Some(h)) => {
                let step = median_step(&t0).unwrap_or(1);
                (0..n).map(|i| if i + h < n { t0[i + h] } else { t0[n - 1] + (i + h + 1 - n) as i64 * step }).collect()
            }
            (None, None) => {
                return Err(Error::param(
                    "horizon",
                    "the table has no `t1` column: give the label horizon in rows so labels can be purged",
                ));
            }
        };
        if let Some(i) = (0..n).find(|&i| t1[i] < t0[i]) {
            return Err(Error::param("t1", format!("row {}: label ends before it starts", i + 1)));
        }
        let y = Array1::from(table.y.clone());
        Ok(Dataset {
            x: table.x,
            y,
            t0,
            t1,
            symbol: vec![0; n],
            symbols: vec![String::new()],
            feature_names: table.feature_names,
            weights: table.weights.map(Array1::from),
            label: None,
            ret: None,
            risk: None,
            dropped: DropReport { rows_in: n, rows_out: n, ..Default::default() },
        })
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.x.nrows()
    }

    /// Number of feature columns.
    pub fn n_features(&self) -> usize {
        self.x.ncols()
    }

    /// Symbol name of a row.
    pub fn symbol_of(&self, row: usize) -> &str {
        &self.symbols[self.symbol[row] as usize]
    }

    /// Attach sample weights (finite, non-negative, one per row).
    pub fn with_weights(mut self, w: Vec<f64>) -> Result<Self> {
        if w.len() != self.n_rows() {
            return Err(Error::Shape { what: "weights".into(), expected: self.n_rows(), got: w.len() });
        }
        if let Some(i) = w.iter().position(|v| !v.is_finite() || *v < 0.0) {
            return Err(Error::param(format!("weights[{i}]"), format!("must be finite and >= 0, got {}", w[i])));
        }
        self.weights = Some(Array1::from(w));
        Ok(self)
    }

    /// The rows at `idx` (in the given order) as a new dataset, e.g. one CV fold.
    pub fn select(&self, idx: &[usize]) -> Result<Dataset> {
        if let Some(&bad) = idx.iter().find(|&&i| i >= self.n_rows()) {
            return Err(Error::param("rows", format!("row {bad} out of range (dataset has {})", self.n_rows())));
        }
        let mut x = Array2::<f32>::zeros((idx.len(), self.n_features()).f());
        for j in 0..self.n_features() {
            let src = self.x.column(j);
            let mut dst = x.column_mut(j);
            for (k, &i) in idx.iter().enumerate() {
                dst[k] = src[i];
            }
        }
        Ok(Dataset {
            x,
            y: idx.iter().map(|&i| self.y[i]).collect(),
            t0: idx.iter().map(|&i| self.t0[i]).collect(),
            t1: idx.iter().map(|&i| self.t1[i]).collect(),
            symbol: idx.iter().map(|&i| self.symbol[i]).collect(),
            symbols: self.symbols.clone(),
            feature_names: self.feature_names.clone(),
            weights: self.weights.as_ref().map(|w| idx.iter().map(|&i| w[i]).collect()),
            label: self.label.clone(),
            ret: self.ret.as_ref().map(|v| idx.iter().map(|&i| v[i]).collect()),
            risk: self.risk.as_ref().map(|v| idx.iter().map(|&i| v[i]).collect()),
            dropped: DropReport { rows_out: idx.len(), ..self.dropped },
        })
    }

    /// As a polars frame: `symbol`, `timestamp`, features (f32), label, `t1`, weights if any.
    pub fn to_dataframe(&self) -> Result<DataFrame> {
        let mut cols: Vec<Column> = Vec::with_capacity(self.n_features() + 5);
        let sym: Vec<&str> = (0..self.n_rows()).map(|r| self.symbol_of(r)).collect();
        cols.push(Column::new("symbol".into(), sym));
        cols.push(timestamp_column("timestamp", &self.t0)?);
        for (j, name) in self.feature_names.iter().enumerate() {
            cols.push(Column::new(name.as_str().into(), self.x.column(j).to_vec()));
        }
        let label = self.label.as_ref().map_or_else(|| "label".to_string(), LabelSpec::name);
        cols.push(Column::new(label.into(), self.y.to_vec()));
        cols.push(timestamp_column("t1", &self.t1)?);
        if let Some(w) = &self.weights {
            cols.push(Column::new("weight".into(), w.to_vec()));
        }
        DataFrame::new_infer_height(cols).map_err(|e| Error::polars("building dataset frame", e))
    }
}

/// The median positive step between consecutive times (the bar interval), if any.
pub fn median_step(t: &[i64]) -> Option<i64> {
    let mut steps: Vec<i64> = t.windows(2).map(|w| w[1] - w[0]).filter(|&d| d > 0).collect();
    if steps.is_empty() {
        return None;
    }
    let mid = steps.len() / 2;
    Some(*steps.select_nth_unstable(mid).1)
}

/// A frame's complete rows (warm-up dropped) as a polars `DataFrame`, for feature-only output.
pub fn frame_to_dataframe(frame: &FeatureFrame) -> Result<DataFrame> {
    // (segment, row) of every complete row, symbol by symbol.
    let keep: Vec<(usize, usize)> = frame
        .segments
        .iter()
        .enumerate()
        .flat_map(|(s, seg)| (seg.warmup..seg.len()).filter(|&i| seg.row_complete(i)).map(move |i| (s, i)))
        .collect();
    let seg = |s: usize| &frame.segments[s];
    let mut cols: Vec<Column> = Vec::with_capacity(frame.names.len() + 2);
    cols.push(Column::new("symbol".into(), keep.iter().map(|&(s, _)| seg(s).symbol.as_str()).collect::<Vec<_>>()));
    cols.push(timestamp_column("timestamp", &keep.iter().map(|&(s, i)| seg(s).ts[i]).collect::<Vec<_>>())?);
    for (j, name) in frame.names.iter().enumerate() {
        let values: Vec<f32> = keep.iter().map(|&(s, i)| seg(s).columns[j][i] as f32).collect();
        cols.push(Column::new(name.as_str().into(), values));
    }
    DataFrame::new_infer_height(cols).map_err(|e| Error::polars("building feature frame", e))
}

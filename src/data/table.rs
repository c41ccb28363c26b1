//! A generic labelled table (any CSV/Parquet with a label column) as a column-major `f32`
//! feature matrix, for training on files that did not come from our own feature pipeline.
//!
//! Every numeric column except the label and the weight column is a feature; text and
//! date-time columns are skipped (a `timestamp` and a `t1` column, as written by
//! `retrain features`, are kept aside for a purged time split). Missing feature values become
//! NaN (the trees learn where they go); a missing or non-finite label is an error naming its row.

use std::path::Path;

use ndarray::{Array2, ShapeBuilder};
use polars::prelude::*;

use crate::data::io::{floats, invalid, read_frame};
use crate::error::{Error, Result};

/// Features, label, optional weights and label times of a table.
#[derive(Clone, Debug)]
pub struct LabeledTable {
    /// `n × features`, column-major.
    pub x: Array2<f32>,
    /// Labels.
    pub y: Vec<f64>,
    /// Sample weights, if a weight column was named.
    pub weights: Option<Vec<f64>>,
    /// Feature column names in order.
    pub feature_names: Vec<String>,
    /// Row start times (ms), from a `timestamp` column if present.
    pub t0: Option<Vec<i64>>,
    /// Label end times (ms), from a `t1` column if present.
    pub t1: Option<Vec<i64>>,
}

/// Read a CSV/Parquet file as a labelled table.
pub fn read_table(path: impl AsRef<Path>, label: &str, weight: Option<&str>) -> Result<LabeledTable> {
    let path = path.as_ref();
    let df = read_frame(path)?;
    table_from_dataframe(&df, &path.display().to_string(), label, weight)
}

fn time_ms(df: &DataFrame, name: &str, source: &str) -> Result<Option<Vec<i64>>> {
    let Ok(c) = df.column(name) else { return Ok(None) };
    if !matches!(c.dtype(), DataType::Datetime(_, _) | DataType::Int64) {
        return Ok(None);
    }
    let c = match c.dtype() {
        DataType::Datetime(_, _) => {
            c.cast(&DataType::Datetime(TimeUnit::Milliseconds, None)).map_err(|e| Error::polars(source, e))?
        }
        _ => c.clone(),
    };
    let c = c.cast(&DataType::Int64).map_err(|e| Error::polars(source, e))?;
    let ca = c.i64().map_err(|e| Error::polars(source, e))?;
    Ok(Some(ca.iter().map(|v| v.unwrap_or(i64::MIN)).collect()))
}

/// A label or weight column as finite f64 (text is parsed, as for bars; booleans are 0/1).
fn numbers(df: &DataFrame, name: &str, source: &str, what: &str) -> Result<Vec<f64>> {
    let c = df.column(name).map_err(|_| Error::MissingColumn {
        source_name: source.into(),
        column: name.into(),
        found: df.get_column_names().iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
    })?;
    let c =
        if c.dtype().is_bool() { c.cast(&DataType::Float64).map_err(|e| Error::polars(source, e))? } else { c.clone() };
    let v = floats(&c, source, name)?;
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(invalid(source, name, i + 1, format!("{what} must be a finite number, got {}", v[i]))),
        None => Ok(v),
    }
}

/// Split a frame into features / label / weights (see the module docs for the rules).
pub fn table_from_dataframe(df: &DataFrame, source: &str, label: &str, weight: Option<&str>) -> Result<LabeledTable> {
    if df.height() == 0 {
        return Err(Error::Empty { source_name: source.into() });
    }
    let y = numbers(df, label, source, "label")?;
    let weights = weight.map(|w| numbers(df, w, source, "weight")).transpose()?;
    let feature_cols: Vec<&Column> = df
        .columns()
        .iter()
        .filter(|c| {
            let n = c.name().as_str();
            n != label && Some(n) != weight && (c.dtype().is_primitive_numeric() || c.dtype().is_bool())
        })
        .collect();
    if feature_cols.is_empty() {
        return Err(Error::MissingColumn {
            source_name: source.into(),
            column: "<any numeric feature>".into(),
            found: label.into(),
        });
    }
    let n = df.height();
    let mut x = Array2::<f32>::zeros((n, feature_cols.len()).f());
    for (j, c) in feature_cols.iter().enumerate() {
        let c = c.cast(&DataType::Float32).map_err(|e| Error::polars(source, e))?;
        let ca = c.f32().map_err(|e| Error::polars(source, e))?;
        let mut col = x.column_mut(j);
        let dst = col.as_slice_mut().expect("column-major column");
        if ca.null_count() == 0 && ca.chunks().len() == 1 {
            dst.copy_from_slice(ca.cont_slice().map_err(|e| Error::polars(source, e))?);
        } else {
            for (d, v) in dst.iter_mut().zip(ca.iter()) {
                *d = v.unwrap_or(f32::NAN);
            }
        }
    }
    Ok(LabeledTable {
        x,
        y,
        weights,
        feature_names: feature_cols.iter().map(|c| c.name().to_string()).collect(),
        t0: time_ms(df, "timestamp", source)?,
        t1: time_ms(df, "t1", source)?,
    })
}

impl LabeledTable {
    /// Rows.
    pub fn n_rows(&self) -> usize {
        self.y.len()
    }

    /// The listed rows, in order.
    pub fn select(&self, rows: &[usize]) -> LabeledTable {
        let pick_i = |v: &Option<Vec<i64>>| v.as_ref().map(|v| rows.iter().map(|&r| v[r]).collect());
        let mut x = Array2::<f32>::zeros((rows.len(), self.x.ncols()).f());
        for j in 0..self.x.ncols() {
            let src = self.x.column(j);
            for (d, &r) in x.column_mut(j).iter_mut().zip(rows) {
                *d = src[r];
            }
        }
        LabeledTable {
            x,
            y: rows.iter().map(|&r| self.y[r]).collect(),
            weights: self.weights.as_ref().map(|w| rows.iter().map(|&r| w[r]).collect()),
            feature_names: self.feature_names.clone(),
            t0: pick_i(&self.t0),
            t1: pick_i(&self.t1),
        }
    }

    /// Hold out the latest `fraction` of rows by time as a test set. Rows are ordered by
    /// `timestamp` when present (else by position); training rows whose label ends at or after
    /// the first test row's start (`t1 ≥ cutoff`) are purged so no label overlaps the test span.
    /// Returns (train rows, test rows, purged count).
    pub fn time_split(&self, fraction: f64) -> Result<(Vec<usize>, Vec<usize>, usize)> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::param("holdout", format!("must be in (0, 1), got {fraction}")));
        }
        let n = self.n_rows();
        let n_test = ((n as f64) * fraction).round() as usize;
        if n_test == 0 || n_test >= n {
            return Err(Error::param("holdout", format!("{fraction} of {n} rows leaves an empty side")));
        }
        let mut order: Vec<usize> = (0..n).collect();
        if let Some(t0) = &self.t0 {
            order.sort_by_key(|&r| (t0[r], r));
        }
        let cutoff_pos = n - n_test;
        let mut test: Vec<usize> = order[cutoff_pos..].to_vec();
        test.sort_unstable();
        let mut train: Vec<usize> = order[..cutoff_pos].to_vec();
        let mut purged = 0;
        if let (Some(t0), Some(t1)) = (&self.t0, &self.t1) {
            let cutoff = t0[order[cutoff_pos]];
            let before = train.len();
            train.retain(|&r| t1[r] < cutoff);
            purged = before - train.len();
        }
        train.sort_unstable();
        if train.is_empty() {
            return Err(Error::param("holdout", "purging left no training rows"));
        }
        Ok((train, test, purged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_columns_and_rejects_bad_labels() {
        let df = df!(
            "symbol" => ["a", "a", "a"],
            "f1" => [1.0f32, 2.0, 3.0],
            "f2" => [Some(1i64), None, Some(3)],
            "label" => [0.0, 1.0, 0.0],
            "w" => [1.0, 2.0, 3.0],
        )
        .unwrap();
        let t = table_from_dataframe(&df, "mem", "label", Some("w")).unwrap();
        assert_eq!(t.feature_names, vec!["f1", "f2"]);
        assert_eq!(t.x.column(0).to_vec(), vec![1.0, 2.0, 3.0]);
        assert!(t.x[[1, 1]].is_nan());
        assert_eq!(t.weights.unwrap(), vec![1.0, 2.0, 3.0]);
        let e = table_from_dataframe(&df, "mem", "nope", None).unwrap_err();
        assert!(matches!(e, Error::MissingColumn { .. }));
        let bad = df!("f" => [1.0, 2.0], "label" => [Some(1.0), None]).unwrap();
        let e = table_from_dataframe(&bad, "mem", "label", None).unwrap_err().to_string();
        assert!(e.contains("row 2"), "{e}");
    }

    #[test]
    fn time_split_purges_overlapping_labels() {
        let n = 10;
        let t = LabeledTable {
            x: Array2::zeros((n, 1).f()),
            y: vec![0.0; n],
            weights: None,
            feature_names: vec!["f".into()],
            t0: Some((0..n as i64).collect()),
            t1: Some((0..n as i64).map(|t| t + 2).collect()),
        };
        let (train, test, purged) = t.time_split(0.3).unwrap();
        assert_eq!(test, vec![7, 8, 9]);
        assert_eq!(train, vec![0, 1, 2, 3, 4]);
        assert_eq!(purged, 2);
    }
}

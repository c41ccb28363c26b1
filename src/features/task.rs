//! [`Task`]: what a dataset's label asks of a model (binary, multiclass or regression), and
//! so which objective, calibration and metrics apply.

use serde::{Deserialize, Serialize};

use crate::features::{Dataset, LabelSpec};

/// What the label asks the model to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Task {
    /// 0/1 labels, probability output.
    Binary,
    /// Class ids `0..classes`, one probability per class (3 = down / flat / up).
    Multiclass {
        /// Number of classes.
        classes: usize,
    },
    /// Real-valued target.
    Regression,
}

impl Task {
    /// From the dataset's label spec, else inferred from the labels (all 0/1 → binary,
    /// small non-negative integers → multiclass, otherwise regression).
    pub fn of(ds: &Dataset) -> Task {
        if let Some(l) = &ds.label {
            return Task::of_label(l);
        }
        let y = ds.y.as_slice().unwrap_or(&[]);
        if y.iter().all(|&v| v == 0.0 || v == 1.0) {
            return Task::Binary;
        }
        let max = y.iter().copied().fold(0.0, f64::max);
        if y.iter().all(|&v| v >= 0.0 && v.fract() == 0.0) && max <= 20.0 {
            return Task::Multiclass { classes: max as usize + 1 };
        }
        Task::Regression
    }

    /// What `label` asks for: two classes → binary, more → multiclass, a return → regression.
    pub fn of_label(label: &LabelSpec) -> Task {
        match label.classes() {
            Some(2) => Task::Binary,
            Some(k) => Task::Multiclass { classes: k as usize },
            None => Task::Regression,
        }
    }

    /// The headline metric (seed stability, summaries): AUC, accuracy or Spearman IC.
    pub fn primary_metric(&self) -> &'static str {
        match self {
            Task::Binary => "auc",
            Task::Multiclass { .. } => "accuracy",
            Task::Regression => "ic_spearman",
        }
    }
}

//! Purged walk-forward: the table is cut into `n_splits + 1` contiguous groups; split `i`
//! (1-based) tests group `i` and trains on the groups before it — all of them (expanding
//! window) or the last `w` (rolling window). Training rows whose label reaches into the test
//! group's label span are purged; no training row ever follows a test row, so the embargo
//! has nothing to drop. One backtest path: groups `1..=n_splits`, each from its own split.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::validation::split::{BacktestPath, Embargo, SplitPlan, Splitter, check_times, cut, groups, rename};

/// How much history each walk-forward split trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Every group before the test group.
    Expanding,
    /// Only the last `n` groups before the test group.
    Rolling(usize),
}

/// Walk-forward settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalkForward {
    /// Number of test windows (default 5).
    pub n_splits: usize,
    /// Expanding or rolling training window.
    pub window: Window,
}

impl Default for WalkForward {
    fn default() -> Self {
        WalkForward { n_splits: 5, window: Window::Expanding }
    }
}

impl Splitter for WalkForward {
    fn plan(&self, t0: &[i64], t1: &[i64]) -> Result<SplitPlan> {
        check_times(t0, t1)?;
        if self.n_splits == 0 {
            return Err(Error::param("n_splits", "must be at least 1"));
        }
        if self.window == Window::Rolling(0) {
            return Err(Error::param("window", "a rolling window needs at least 1 group"));
        }
        let groups = groups(t0.len(), self.n_splits + 1).map_err(|e| rename(e, "n_splits"))?;
        let splits = (1..=self.n_splits)
            .map(|g| {
                let first = match self.window {
                    Window::Expanding => 0,
                    Window::Rolling(w) => g.saturating_sub(w),
                };
                let train: Vec<usize> = (first..g).collect();
                // Nothing trains after a test row here, so no embargo is needed.
                cut(t0, t1, &groups, &train, &[g], Embargo::Bars(0))
            })
            .collect::<Result<Vec<_>>>()?;
        let window = match self.window {
            Window::Expanding => "expanding".to_string(),
            Window::Rolling(w) => format!("rolling {w} groups"),
        };
        Ok(SplitPlan {
            method: format!("purged walk-forward, {} splits, {window} window", self.n_splits),
            n_rows: t0.len(),
            groups,
            splits,
            paths: vec![BacktestPath { segments: (1..=self.n_splits).map(|g| (g, g - 1)).collect() }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::split::ranges;

    #[test]
    fn expanding_and_rolling() {
        let t0: Vec<i64> = (0..60).collect();
        let t1: Vec<i64> = t0.iter().map(|t| t + 2).collect();
        let plan = WalkForward { n_splits: 5, window: Window::Expanding }.plan(&t0, &t1).unwrap();
        assert_eq!(plan.splits.len(), 5);
        assert_eq!(ranges(&plan.splits[2].train), vec![0..28]); // test 30..40, rows 28, 29 purged
        assert_eq!(plan.splits[2].test, (30..40).collect::<Vec<_>>());
        let plan = WalkForward { n_splits: 5, window: Window::Rolling(2) }.plan(&t0, &t1).unwrap();
        assert_eq!(ranges(&plan.splits[3].train), vec![20..38]);
        assert_eq!(plan.paths[0].segments[0], (1, 0));
        assert!(WalkForward { n_splits: 0, window: Window::Expanding }.plan(&t0, &t1).is_err());
    }
}

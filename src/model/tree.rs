//! `tree`: one CART decision tree (linfa-trees, Gini or entropy) on standardised features —
//! binary and multi-class. linfa-trees has no regression tree, so a regression label is
//! refused (use `forest` or `ridge`).
//!
//! linfa-trees predicts a leaf's majority class only, and breaks ties through a hash map. So
//! the fitted tree is copied into a flat node table whose leaves hold the class frequencies
//! of the training rows that reach them — scikit-learn's `predict_proba` — and prediction
//! walks that table. The walk uses linfa's rule (`x < threshold` goes left); a test checks it
//! against linfa's own prediction.

use linfa::DatasetBase;
use linfa::traits::Fit as _;
use linfa_trees::{DecisionTree, SplitQuality, TreeNode};
use ndarray::{Array1, Array2, ArrayView1};
use serde::{Deserialize, Serialize};

use super::ModelKind;
use super::baseline::{BaselineKind, Fitted, Learner, class_ids};
use crate::error::{Error, Result};
use crate::features::Task;

/// Hyperparameters of `tree`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TreeParams {
    /// Deepest level (default 8; `null` grows until leaves are pure).
    pub max_depth: Option<usize>,
    /// Fewest training rows in a leaf (default 20).
    pub min_samples_leaf: usize,
    /// `gini` (default) or `entropy`.
    pub criterion: Criterion,
    /// Kept for the record (the fit considers every feature at every split).
    pub seed: u64,
    /// Most training rows a fit accepts (default 500,000).
    pub max_rows: usize,
}

/// Split quality measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// Gini impurity.
    Gini,
    /// Information gain.
    Entropy,
}

impl Default for TreeParams {
    fn default() -> Self {
        TreeParams { max_depth: Some(8), min_samples_leaf: 20, criterion: Criterion::Gini, seed: 0, max_rows: 500_000 }
    }
}

pub(super) const TREE: BaselineKind<TreeParams> = BaselineKind::new();

impl ModelKind {
    /// One decision tree (linfa-trees).
    pub const TREE: ModelKind = ModelKind(&TREE);
}

/// One node of the flat table: a split, or a leaf (`left == u32::MAX`) with its class frequencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Node {
    feature: u32,
    threshold: f64,
    left: u32,
    right: u32,
    probs: Vec<f64>,
}

const LEAF: u32 = u32::MAX;

/// A fitted tree as a flat node table (root at 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct FlatTree {
    nodes: Vec<Node>,
}

impl FlatTree {
    /// Copy linfa's tree, then fill each leaf with the class frequencies of `ids` routed to it.
    fn from_linfa(root: &TreeNode<f64, usize>, x: &Array2<f64>, ids: &[usize], classes: usize) -> FlatTree {
        let mut nodes = Vec::new();
        fn copy(n: &TreeNode<f64, usize>, nodes: &mut Vec<Node>) -> u32 {
            let at = nodes.len();
            nodes.push(Node { feature: 0, threshold: 0.0, left: LEAF, right: LEAF, probs: Vec::new() });
            let kids = n.children();
            if let (false, Some(l), Some(r)) = (n.is_leaf(), kids[0], kids[1]) {
                let (feature, threshold, _) = n.split();
                let left = copy(l, nodes);
                let right = copy(r, nodes);
                nodes[at] = Node { feature: feature as u32, threshold, left, right, probs: Vec::new() };
            }
            at as u32
        }
        copy(root, &mut nodes);
        let mut tree = FlatTree { nodes };
        let mut counts = vec![vec![0.0f64; classes]; tree.nodes.len()];
        for (row, &c) in x.rows().into_iter().zip(ids) {
            counts[tree.leaf(row) as usize][c] += 1.0;
        }
        for (node, count) in tree.nodes.iter_mut().zip(counts) {
            if node.left == LEAF {
                let n: f64 = count.iter().sum();
                // A leaf no training row reaches cannot occur (linfa grows from rows), but a
                // uniform answer beats a division by zero.
                node.probs = count.iter().map(|&c| if n > 0.0 { c / n } else { 1.0 / classes as f64 }).collect();
            }
        }
        tree
    }

    fn leaf(&self, row: ArrayView1<'_, f64>) -> u32 {
        let mut at = 0u32;
        loop {
            let n = &self.nodes[at as usize];
            if n.left == LEAF {
                return at;
            }
            at = if row[n.feature as usize] < n.threshold { n.left } else { n.right };
        }
    }

    /// Class probabilities of each row.
    pub(super) fn proba(&self, x: &Array2<f64>) -> Result<Array2<f64>> {
        let k = self.nodes.iter().find(|n| n.left == LEAF).map_or(0, |n| n.probs.len());
        if let Some(bad) = self.nodes.iter().find(|n| n.left != LEAF && n.feature as usize >= x.ncols()) {
            return Err(Error::Learner {
                kind: "tree",
                reason: format!("splits on feature {} of {}", bad.feature, x.ncols()),
            });
        }
        let mut out = Array2::<f64>::zeros((x.nrows(), k));
        for (row, mut o) in x.rows().into_iter().zip(out.rows_mut()) {
            o.assign(&ArrayView1::from(&self.nodes[self.leaf(row) as usize].probs));
        }
        Ok(out)
    }
}

impl Learner for TreeParams {
    type Fitted = FlatTree;
    const NAME: &'static str = "tree";
    const ABOUT: &'static str = "one CART decision tree on standardised features (linfa-trees; classification)";

    fn supports(task: Task) -> bool {
        !matches!(task, Task::Regression)
    }
    fn seed(&self) -> u64 {
        self.seed
    }
    fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }
    fn max_rows(&self) -> usize {
        self.max_rows
    }
    fn validate(&self) -> Result<()> {
        if self.max_depth == Some(0) {
            return Err(Error::param("max_depth", "tree: must be ≥ 1 (or null)"));
        }
        if self.min_samples_leaf == 0 {
            return Err(Error::param("min_samples_leaf", "tree: must be ≥ 1"));
        }
        Ok(())
    }
    fn fit(&self, x: &Array2<f64>, y: &[f64], task: Task, _: &(dyn Fn() -> bool + Sync)) -> Result<FlatTree> {
        let classes = match task {
            Task::Multiclass { classes } => classes,
            _ => 2,
        };
        let ids = class_ids(Self::NAME, y, classes)?;
        let data = DatasetBase::new(x.view(), Array1::from(ids.clone()));
        let quality = match self.criterion {
            Criterion::Gini => SplitQuality::Gini,
            Criterion::Entropy => SplitQuality::Entropy,
        };
        let tree = DecisionTree::params()
            .split_quality(quality)
            .max_depth(self.max_depth)
            .min_weight_leaf(self.min_samples_leaf as f32)
            .min_weight_split(2.0 * self.min_samples_leaf as f32)
            .fit(&data)
            .map_err(|e| Error::Learner { kind: Self::NAME, reason: e.to_string() })?;
        Ok(FlatTree::from_linfa(tree.root_node(), x, &ids, classes))
    }
    /// linfa sorts every feature once per fit (an index pair per cell).
    fn bytes_per_cell(&self) -> f64 {
        24.0
    }
}

impl Fitted for FlatTree {
    fn outputs(&self, x: &Array2<f64>, task: Task) -> Result<Array2<f64>> {
        let p = self.proba(x)?;
        Ok(match task {
            // P(up) for a binary label, as every kind reports it.
            Task::Binary => p.column(1).to_owned().insert_axis(ndarray::Axis(1)),
            _ => p,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::traits::Predict as _;

    #[test]
    fn the_flat_table_walks_like_linfa_and_holds_leaf_frequencies() {
        // Two informative columns and one noise column, 3 classes.
        let mut rng = crate::rng::Rng::new(5);
        let n = 600;
        let mut x = Array2::<f64>::zeros((n, 3));
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let (a, b, c) = (rng.normal(), rng.normal(), rng.normal());
            x.row_mut(i).assign(&ndarray::arr1(&[a, b, c]));
            ids.push(if a + 0.3 * rng.normal() > 0.5 {
                2
            } else if b > 0.0 {
                1
            } else {
                0
            });
        }
        let data = DatasetBase::new(x.view(), Array1::from(ids.clone()));
        let tree = DecisionTree::params().max_depth(Some(5)).min_weight_leaf(5.0).fit(&data).unwrap();
        let flat = FlatTree::from_linfa(tree.root_node(), &x, &ids, 3);
        let theirs: Array1<usize> = tree.predict(&x);
        let p = flat.proba(&x).unwrap();
        for i in 0..n {
            let row = p.row(i);
            assert!((row.sum() - 1.0).abs() < 1e-12);
            let best = row.iter().cloned().fold(f64::MIN, f64::max);
            // linfa's class is a most frequent class of the same leaf (ties may go either way).
            assert_eq!(row[theirs[i]], best, "row {i}: {row:?} vs linfa {}", theirs[i]);
        }
        // Leaf frequencies: the training rows of each leaf, counted.
        let leaf_rows = (0..n).filter(|&i| flat.leaf(x.row(i)) == flat.leaf(x.row(0))).count();
        let p0 = p.row(0);
        let c0 = (0..n).filter(|&i| flat.leaf(x.row(i)) == flat.leaf(x.row(0)) && ids[i] == ids[0]).count();
        assert!((p0[ids[0]] - c0 as f64 / leaf_rows as f64).abs() < 1e-12);
    }
}

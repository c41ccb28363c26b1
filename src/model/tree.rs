//! `tree`: one CART decision tree (Gini or entropy) on standardised features — binary and
//! multi-class; a regression label is refused (use `forest` or `ridge`).
//!
//! The tree is grown here, as scikit-learn's `DecisionTreeClassifier` grows one with every
//! feature considered: each node takes the split with the lowest weighted child impurity over
//! every feature and every threshold halfway between two distinct values (`x <= threshold`
//! goes left), subject to `max_depth` and `min_samples_leaf`; a pure node is a leaf; leaves
//! hold the class frequencies of their training rows (`predict_proba`); nothing is pruned.
//! Exactly equal scores keep the first feature, then the lowest threshold, so a fit is a
//! function of its rows alone (scikit-learn breaks such ties by a seeded feature shuffle).
//! A test compares trees against scikit-learn's on a committed fixture.
//!
//! Every feature's rows are sorted once; a split partitions each feature's sorted run stably
//! into its children, so a level costs one pass over rows × features.

use ndarray::{Array2, ArrayView1};
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
    /// One CART decision tree.
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
    fn leaf(&self, row: ArrayView1<'_, f64>) -> u32 {
        let mut at = 0u32;
        loop {
            let n = &self.nodes[at as usize];
            if n.left == LEAF {
                return at;
            }
            at = if row[n.feature as usize] <= n.threshold { n.left } else { n.right };
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

/// Values closer than this count as equal: no threshold between them (scikit-learn's rule).
const SAME_VALUE: f64 = 1e-7;

/// The state of one fit: every feature's row order, each node owning the same range of rows
/// in every feature's order.
struct Grower<'a> {
    x: &'a Array2<f64>,
    ids: &'a [usize],
    classes: usize,
    params: &'a TreeParams,
    /// Per feature, row indices sorted by value (ties by row).
    order: Vec<Vec<u32>>,
    goes_left: Vec<bool>,
    scratch: Vec<u32>,
    nodes: Vec<Node>,
}

/// The best split of one node: feature, rows going left, threshold.
struct Split {
    feature: usize,
    left: usize,
    threshold: f64,
}

impl<'a> Grower<'a> {
    fn new(x: &'a Array2<f64>, ids: &'a [usize], classes: usize, params: &'a TreeParams) -> Self {
        let n = x.nrows();
        let order = (0..x.ncols())
            .map(|f| {
                let col = x.column(f);
                let mut o: Vec<u32> = (0..n as u32).collect();
                o.sort_by(|&a, &b| col[a as usize].total_cmp(&col[b as usize]).then(a.cmp(&b)));
                o
            })
            .collect();
        Grower { x, ids, classes, params, order, goes_left: vec![false; n], scratch: Vec::new(), nodes: Vec::new() }
    }

    fn grow(mut self, keep_going: &(dyn Fn() -> bool + Sync)) -> FlatTree {
        let n = self.x.nrows();
        self.node(0, n, 0, keep_going);
        FlatTree { nodes: self.nodes }
    }

    /// Impurity of class counts over `n` rows.
    fn impurity(&self, counts: &[f64], n: f64) -> f64 {
        match self.params.criterion {
            Criterion::Gini => 1.0 - counts.iter().map(|c| c * c).sum::<f64>() / (n * n),
            Criterion::Entropy => counts.iter().filter(|&&c| c > 0.0).map(|&c| -(c / n) * (c / n).log2()).sum::<f64>(),
        }
    }

    /// Grow the node over rows `lo..hi` of every order; returns its index. A stopped fit
    /// (`keep_going` false) makes leaves of the nodes not yet split.
    fn node(&mut self, lo: usize, hi: usize, depth: usize, keep_going: &(dyn Fn() -> bool + Sync)) -> u32 {
        let at = self.nodes.len() as u32;
        let n = hi - lo;
        let mut counts = vec![0.0f64; self.classes];
        for &r in &self.order[0][lo..hi] {
            counts[self.ids[r as usize]] += 1.0;
        }
        let probs = counts.iter().map(|c| c / n as f64).collect();
        self.nodes.push(Node { feature: 0, threshold: 0.0, left: LEAF, right: LEAF, probs });
        let leaf_min = self.params.min_samples_leaf;
        let too_deep = self.params.max_depth.is_some_and(|d| depth >= d);
        if too_deep || n < 2 * leaf_min || self.impurity(&counts, n as f64) <= f64::EPSILON || !keep_going() {
            return at;
        }
        let Some(split) = self.best_split(lo, hi, &counts) else { return at };
        self.partition(lo, hi, &split);
        let left = self.node(lo, lo + split.left, depth + 1, keep_going);
        let right = self.node(lo + split.left, hi, depth + 1, keep_going);
        let node = &mut self.nodes[at as usize];
        (node.feature, node.threshold, node.left, node.right) = (split.feature as u32, split.threshold, left, right);
        node.probs.clear();
        at
    }

    /// The split with the lowest weighted child impurity, if any leaves both children at least
    /// `min_samples_leaf` rows.
    fn best_split(&self, lo: usize, hi: usize, counts: &[f64]) -> Option<Split> {
        let n = hi - lo;
        let leaf_min = self.params.min_samples_leaf;
        // Maximise −(n_l·I_l + n_r·I_r), as scikit-learn's proxy does.
        let mut best: Option<(f64, Split)> = None;
        let (mut left, mut right) = (vec![0.0f64; self.classes], vec![0.0f64; self.classes]);
        for (f, order) in self.order.iter().enumerate() {
            let rows = &order[lo..hi];
            let col = self.x.column(f);
            let value = |i: usize| col[rows[i] as usize];
            if value(n - 1) <= value(0) + SAME_VALUE {
                continue;
            }
            left.iter_mut().for_each(|c| *c = 0.0);
            right.copy_from_slice(counts);
            for p in 1..n {
                let class = self.ids[rows[p - 1] as usize];
                left[class] += 1.0;
                right[class] -= 1.0;
                if value(p) <= value(p - 1) + SAME_VALUE || p < leaf_min || n - p < leaf_min {
                    continue;
                }
                let (nl, nr) = (p as f64, (n - p) as f64);
                let proxy = -nr * self.impurity(&right, nr) - nl * self.impurity(&left, nl);
                if best.as_ref().is_none_or(|(b, _)| proxy > *b) {
                    let (a, b) = (value(p - 1), value(p));
                    // The midpoint, unless rounding puts it on the right-hand value.
                    let mid = a / 2.0 + b / 2.0;
                    let threshold = if mid == b || !mid.is_finite() { a } else { mid };
                    best = Some((proxy, Split { feature: f, left: p, threshold }));
                }
            }
        }
        best.map(|(_, s)| s)
    }

    /// Reorder rows `lo..hi` of every feature's order so the split's left rows come first,
    /// each side still sorted.
    fn partition(&mut self, lo: usize, hi: usize, split: &Split) {
        let rows = &self.order[split.feature][lo..hi];
        for (i, &r) in rows.iter().enumerate() {
            self.goes_left[r as usize] = i < split.left;
        }
        for order in &mut self.order {
            self.scratch.clear();
            let mut w = lo;
            for i in lo..hi {
                let r = order[i];
                if self.goes_left[r as usize] {
                    order[w] = r;
                    w += 1;
                } else {
                    self.scratch.push(r);
                }
            }
            order[w..hi].copy_from_slice(&self.scratch);
        }
    }
}

impl Learner for TreeParams {
    type Fitted = FlatTree;
    const NAME: &'static str = "tree";
    const ABOUT: &'static str = "one CART decision tree on standardised features (classification)";

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
    fn fit(&self, x: &Array2<f64>, y: &[f64], task: Task, keep_going: &(dyn Fn() -> bool + Sync)) -> Result<FlatTree> {
        let classes = match task {
            Task::Multiclass { classes } => classes,
            _ => 2,
        };
        let ids = class_ids(Self::NAME, y, classes)?;
        if x.nrows() == 0 {
            return Err(Error::Learner { kind: Self::NAME, reason: "no training rows".into() });
        }
        Ok(Grower::new(x, &ids, classes, self).grow(keep_going))
    }
    /// One sorted row index per cell, and the scratch of a partition.
    fn bytes_per_cell(&self) -> f64 {
        8.0
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
    use proptest::prelude::*;

    fn matrix(rows: &[Vec<f64>]) -> Array2<f64> {
        Array2::from_shape_fn((rows.len(), rows[0].len()), |(i, j)| rows[i][j])
    }

    fn fit(x: &Array2<f64>, ids: &[usize], classes: usize, params: &TreeParams) -> FlatTree {
        let y: Vec<f64> = ids.iter().map(|&c| c as f64).collect();
        let task = if classes == 2 { Task::Binary } else { Task::Multiclass { classes } };
        params.fit(x, &y, task, &|| true).unwrap()
    }

    /// Scikit-learn's trees on the committed fixture (tests/fixtures/tree/reference.py):
    /// the same class probabilities on the training rows and on fresh rows.
    #[test]
    fn grows_the_trees_scikit_learn_grows() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tree/reference.json"))
            .unwrap();
        let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
        let rows = |v: &serde_json::Value| -> Vec<Vec<f64>> { serde_json::from_value(v.clone()).unwrap() };
        for case in fixture["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let classes = case["classes"].as_u64().unwrap() as usize;
            let params = TreeParams {
                max_depth: case["max_depth"].as_u64().map(|d| d as usize),
                min_samples_leaf: case["min_samples_leaf"].as_u64().unwrap() as usize,
                criterion: serde_json::from_value(case["criterion"].clone()).unwrap(),
                ..Default::default()
            };
            let ids: Vec<usize> = serde_json::from_value(case["y"].clone()).unwrap();
            let tree = fit(&matrix(&rows(&case["x"])), &ids, classes, &params);
            let leaves = tree.nodes.iter().filter(|n| n.left == LEAF).count();
            assert_eq!(leaves as u64, case["leaves"].as_u64().unwrap(), "{name}: leaves");
            for (x, want) in [("x", "proba_train"), ("test", "proba_test")] {
                let p = tree.proba(&matrix(&rows(&case[x]))).unwrap();
                for (i, want) in rows(&case[want]).iter().enumerate() {
                    for (k, w) in want.iter().enumerate() {
                        assert!((p[(i, k)] - w).abs() < 1e-12, "{name} {x} row {i} class {k}: {} vs {w}", p[(i, k)]);
                    }
                }
            }
        }
    }

    /// Rows of a noisy 3-class problem (two informative columns, one noise column), with
    /// values rounded so that some rows tie on a feature.
    fn noisy(seed: u64, n: usize) -> (Array2<f64>, Vec<usize>) {
        let mut rng = crate::rng::Rng::new(seed);
        let mut x = Array2::<f64>::zeros((n, 3));
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let (a, b, c) = (rng.normal(), rng.normal(), rng.normal());
            x.row_mut(i).assign(&ndarray::arr1(&[(a * 10.0).round() / 10.0, b, c]));
            ids.push(if a + 0.3 * rng.normal() > 0.5 {
                2
            } else if b > 0.0 {
                1
            } else {
                0
            });
        }
        (x, ids)
    }

    #[test]
    fn leaves_hold_the_class_frequencies_of_their_rows_and_respect_the_limits() {
        let (x, ids) = noisy(5, 600);
        let params = TreeParams { max_depth: Some(5), min_samples_leaf: 7, ..Default::default() };
        let tree = fit(&x, &ids, 3, &params);
        let leaf_of: Vec<u32> = x.rows().into_iter().map(|r| tree.leaf(r)).collect();
        let p = tree.proba(&x).unwrap();
        for (i, &leaf) in leaf_of.iter().enumerate() {
            let members: Vec<usize> = (0..x.nrows()).filter(|&j| leaf_of[j] == leaf).collect();
            assert!(members.len() >= 7, "leaf {leaf} holds {} rows", members.len());
            for k in 0..3 {
                let share = members.iter().filter(|&&j| ids[j] == k).count() as f64 / members.len() as f64;
                assert!((p[(i, k)] - share).abs() < 1e-12, "row {i} class {k}");
            }
        }
        fn depth(t: &FlatTree, at: u32) -> usize {
            let n = &t.nodes[at as usize];
            if n.left == LEAF { 0 } else { 1 + depth(t, n.left).max(depth(t, n.right)) }
        }
        assert_eq!(depth(&tree, 0), 5);
        // A pure node is not split, and one row's class is all a one-row table knows.
        let pure = fit(&x, &vec![1; x.nrows()], 3, &params);
        assert_eq!(pure.nodes.len(), 1);
        assert_eq!(pure.nodes[0].probs, vec![0.0, 1.0, 0.0]);
    }

    #[test]
    fn a_stopped_fit_returns_leaves() {
        let (x, ids) = noisy(9, 300);
        let y: Vec<f64> = ids.iter().map(|&c| c as f64).collect();
        let t = TreeParams::default().fit(&x, &y, Task::Multiclass { classes: 3 }, &|| false).unwrap();
        assert_eq!(t.nodes.len(), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// A fit depends on the rows, not their order: exactly tied splits resolve by feature
        /// and value, never by row position or a hash.
        #[test]
        fn row_order_does_not_change_the_tree(seed in 0u64..1000, shift in 1usize..299) {
            let (x, ids) = noisy(seed, 300);
            let params = TreeParams { max_depth: Some(6), min_samples_leaf: 3, ..Default::default() };
            let a = fit(&x, &ids, 3, &params);
            let perm: Vec<usize> = (0..x.nrows()).map(|i| (i * 7 + shift) % x.nrows()).collect();
            let xp = x.select(ndarray::Axis(0), &perm);
            let idp: Vec<usize> = perm.iter().map(|&i| ids[i]).collect();
            let b = fit(&xp, &idp, 3, &params);
            prop_assert_eq!(a, b);
        }
    }
}

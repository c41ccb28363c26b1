//! A fitted regression tree: a flat array of internal nodes plus leaf values.
//!
//! Children are `i32`: `≥ 0` is an internal node, `< 0` is leaf `!child`. A tree with no split
//! has no nodes and one leaf. Thresholds are stored both as raw values (prediction on raw
//! features: `x ≤ threshold` goes left, NaN follows `default_left`) and as bins (prediction on
//! the binned training matrix), which agree because a value's bin is the first bin whose upper
//! bound is ≥ the value. Row counts per node are kept for TreeSHAP.

use serde::{Deserialize, Serialize};

use crate::gbdt::binning::BinnedMatrix;

/// An internal node.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Original feature index.
    pub feature: u32,
    /// Raw threshold: `x ≤ threshold` goes left.
    pub threshold: f32,
    /// Same threshold as a bin of the training binning.
    pub bin: u16,
    /// Where NaN goes.
    pub default_left: bool,
    /// Left child (`< 0`: leaf `!left`).
    pub left: i32,
    /// Right child (`< 0`: leaf `!right`).
    pub right: i32,
    /// Gain of this split.
    pub gain: f32,
    /// Training rows that reached this node.
    pub count: u32,
}

/// One tree.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Internal nodes; node 0 is the root when non-empty.
    pub nodes: Vec<Node>,
    /// Leaf outputs (shrinkage applied).
    pub leaf_values: Vec<f64>,
    /// Training rows per leaf.
    pub leaf_counts: Vec<u32>,
}

impl Tree {
    /// Number of leaves.
    pub fn n_leaves(&self) -> usize {
        self.leaf_values.len()
    }

    /// Leaf reached by a raw feature row.
    #[inline]
    pub fn leaf_of(&self, row: &[f32]) -> usize {
        if self.nodes.is_empty() {
            return 0;
        }
        let mut i = 0i32;
        while i >= 0 {
            let n = &self.nodes[i as usize];
            let x = row[n.feature as usize];
            let left = if x.is_nan() { n.default_left } else { x <= n.threshold };
            i = if left { n.left } else { n.right };
        }
        !i as usize
    }

    /// Output for a raw feature row.
    #[inline]
    pub fn predict_row(&self, row: &[f32]) -> f64 {
        self.leaf_values[self.leaf_of(row)]
    }

    /// Leaf reached by a row of the binned training matrix (`used_of[f]` = used index of feature f).
    pub fn leaf_of_binned(&self, bins: &BinnedMatrix, used_of: &[usize], row: usize) -> usize {
        if self.nodes.is_empty() {
            return 0;
        }
        let mut i = 0i32;
        while i >= 0 {
            let n = &self.nodes[i as usize];
            let j = used_of[n.feature as usize];
            let b = bins.get(row, j);
            let nan_bin = bins.mappers[n.feature as usize].nan_bin();
            let left = if b == nan_bin { n.default_left } else { b <= n.bin as usize };
            i = if left { n.left } else { n.right };
        }
        !i as usize
    }

    /// Depth of the deepest leaf.
    pub fn depth(&self) -> usize {
        fn walk(t: &Tree, i: i32) -> usize {
            if i < 0 { 0 } else { 1 + walk(t, t.nodes[i as usize].left).max(walk(t, t.nodes[i as usize].right)) }
        }
        if self.nodes.is_empty() { 0 } else { walk(self, 0) }
    }
}

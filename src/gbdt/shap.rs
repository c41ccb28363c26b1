//! Per-row feature contributions by TreeSHAP (Lundberg, Erion & Lee 2018, Algorithm 2).
//!
//! Exact Shapley values of each tree's output under the tree's own conditional expectation,
//! with training row counts as node covers (LightGBM's convention). Contributions of a row plus
//! the bias (expected value, init score included) sum to its raw score exactly, up to floating
//! point rounding. Cost is O(leaves · depth²) per tree and row.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::gbdt::booster::Gbdt;
use crate::gbdt::tree::Tree;

#[derive(Clone, Copy, Default)]
struct PathElement {
    feature: i64,
    zero_fraction: f64,
    one_fraction: f64,
    pweight: f64,
}

fn extend(path: &mut [PathElement], unique_depth: usize, zero_fraction: f64, one_fraction: f64, feature: i64) {
    path[unique_depth] =
        PathElement { feature, zero_fraction, one_fraction, pweight: if unique_depth == 0 { 1.0 } else { 0.0 } };
    let d1 = (unique_depth + 1) as f64;
    for i in (0..unique_depth).rev() {
        path[i + 1].pweight += one_fraction * path[i].pweight * (i + 1) as f64 / d1;
        path[i].pweight = zero_fraction * path[i].pweight * (unique_depth - i) as f64 / d1;
    }
}

fn unwind(path: &mut [PathElement], unique_depth: usize, path_index: usize) {
    let one = path[path_index].one_fraction;
    let zero = path[path_index].zero_fraction;
    let d1 = (unique_depth + 1) as f64;
    let mut next_one = path[unique_depth].pweight;
    for i in (0..unique_depth).rev() {
        if one != 0.0 {
            let tmp = path[i].pweight;
            path[i].pweight = next_one * d1 / ((i + 1) as f64 * one);
            next_one = tmp - path[i].pweight * zero * (unique_depth - i) as f64 / d1;
        } else {
            path[i].pweight = path[i].pweight * d1 / (zero * (unique_depth - i) as f64);
        }
    }
    for i in path_index..unique_depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero_fraction = path[i + 1].zero_fraction;
        path[i].one_fraction = path[i + 1].one_fraction;
    }
}

fn unwound_sum(path: &[PathElement], unique_depth: usize, path_index: usize) -> f64 {
    let one = path[path_index].one_fraction;
    let zero = path[path_index].zero_fraction;
    let d1 = (unique_depth + 1) as f64;
    let mut next_one = path[unique_depth].pweight;
    let mut total = 0.0;
    for i in (0..unique_depth).rev() {
        if one != 0.0 {
            let tmp = next_one * d1 / ((i + 1) as f64 * one);
            total += tmp;
            next_one = path[i].pweight - tmp * zero * (unique_depth - i) as f64 / d1;
        } else {
            total += path[i].pweight / zero / ((unique_depth - i) as f64 / d1);
        }
    }
    total
}

fn cover(tree: &Tree, child: i32) -> f64 {
    if child >= 0 { tree.nodes[child as usize].count as f64 } else { tree.leaf_counts[!child as usize] as f64 }
}

#[allow(clippy::too_many_arguments)]
fn recurse(
    tree: &Tree,
    x: &[f32],
    phi: &mut [f64],
    node: i32,
    parent: &[PathElement],
    rest: &mut [PathElement],
    zero_fraction: f64,
    one_fraction: f64,
    feature: i64,
) {
    let mut unique_depth = parent.len();
    rest[..unique_depth].copy_from_slice(parent);
    extend(rest, unique_depth, zero_fraction, one_fraction, feature);
    if node < 0 {
        let v = tree.leaf_values[!node as usize];
        for i in 1..=unique_depth {
            let w = unwound_sum(rest, unique_depth, i);
            let el = rest[i];
            phi[el.feature as usize] += w * (el.one_fraction - el.zero_fraction) * v;
        }
        return;
    }
    let n = &tree.nodes[node as usize];
    let xv = x[n.feature as usize];
    let go_left = if xv.is_nan() { n.default_left } else { xv <= n.threshold };
    let (hot, cold) = if go_left { (n.left, n.right) } else { (n.right, n.left) };
    let w = n.count as f64;
    let hot_zero = cover(tree, hot) / w;
    let cold_zero = cover(tree, cold) / w;
    let (mut in_zero, mut in_one) = (1.0, 1.0);
    if let Some(k) = (1..=unique_depth).find(|&k| rest[k].feature == n.feature as i64) {
        in_zero = rest[k].zero_fraction;
        in_one = rest[k].one_fraction;
        unwind(rest, unique_depth, k);
        unique_depth -= 1;
    }
    let (mine, tail) = rest.split_at_mut(unique_depth + 1);
    let f = n.feature as i64;
    recurse(tree, x, phi, hot, mine, tail, hot_zero * in_zero, in_one, f);
    recurse(tree, x, phi, cold, mine, tail, cold_zero * in_zero, 0.0, f);
}

/// Expected output of a tree over its training rows (its contribution to the bias).
fn expected_value(tree: &Tree) -> f64 {
    let total: f64 = tree.leaf_counts.iter().map(|&c| c as f64).sum();
    if total == 0.0 {
        return 0.0;
    }
    tree.leaf_values.iter().zip(&tree.leaf_counts).map(|(v, &c)| v * c as f64).sum::<f64>() / total
}

/// Path buffer length for a tree of depth `depth`: one level of `u + 1` elements per unique
/// depth `u ≤ depth + 1`.
fn path_len(depth: usize) -> usize {
    (depth + 2) * (depth + 3) / 2
}

/// Add one tree's contributions for row `x` into `phi` (length features + 1, bias last);
/// `buf` must hold at least `path_len(tree depth)` elements.
fn tree_contributions(tree: &Tree, x: &[f32], phi: &mut [f64], expected: f64, buf: &mut [PathElement]) {
    let nf = phi.len() - 1;
    phi[nf] += expected;
    if !tree.nodes.is_empty() {
        recurse(tree, x, phi, 0, &[], buf, 1.0, 1.0, -1);
    }
}

impl Gbdt {
    /// TreeSHAP contributions, `n × (num_outputs · (features + 1))`: for output `k`, columns
    /// `k·(F+1) .. k·(F+1)+F` are the features and the next one is the bias; each group sums to
    /// that output's raw score.
    pub fn predict_contributions(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        if x.ncols() != self.n_features {
            return Err(Error::Shape {
                what: "contribution features".into(),
                expected: self.n_features,
                got: x.ncols(),
            });
        }
        let (n, nf, k) = (x.nrows(), self.n_features, self.num_outputs);
        let width = k * (nf + 1);
        // Per tree once, not per row: its expected value and the path buffer size.
        let expected: Vec<f64> = self.trees.iter().map(expected_value).collect();
        let max_len = self.trees.iter().map(|t| path_len(t.depth())).max().unwrap_or(1);
        let mut out = vec![0.0; n * width];
        out.par_chunks_mut(width).enumerate().for_each_init(
            || (vec![0f32; nf], vec![PathElement::default(); max_len]),
            |(row, buf), (r, o)| {
                row.iter_mut().zip(x.row(r)).for_each(|(d, &v)| *d = v);
                for (out_k, init) in self.init_score.iter().enumerate() {
                    o[out_k * (nf + 1) + nf] += init;
                }
                for (t, tree) in self.trees.iter().enumerate() {
                    let out_k = t % k;
                    let phi = &mut o[out_k * (nf + 1)..(out_k + 1) * (nf + 1)];
                    tree_contributions(tree, row, phi, expected[t], buf);
                }
            },
        );
        Ok(Array2::from_shape_vec((n, width), out).expect("n × width"))
    }
}

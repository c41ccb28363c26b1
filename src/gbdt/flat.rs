//! [`CompiledGbdt`]: a prediction-only layout of a fitted ensemble for low-latency single
//! rows (the trading engine scores one bar at a time).
//!
//! Why it is faster than walking [`Tree`]s one by one: a node is two `u32` words
//! (threshold key; child index and feature) with both children adjacent, so a step is two
//! loads, a mask, a shift, an integer compare and an add-with-carry (`cmp; adc`, no branch,
//! no float unit); leaves are absorbing nodes (a threshold nothing exceeds, child = itself),
//! so a tree needs no exit test; and trees are walked [`LANES`] at a time in lockstep, which
//! turns one long chain of dependent loads into independent chains the CPU overlaps — the
//! walk is bound by those chains, not by instruction count (7 instructions a step measured
//! no faster than 9). A group stops as soon as every lane sits on a leaf (checked
//! every second step, from the step itself: an absorbed lane does not move), so shallow
//! paths of deep trees are not walked to the deepest leaf.
//!
//! The model (≈ 0.1 MB for 100 trees × 63 leaves) lives in L2, not L1, so each new cache
//! line a step touches costs an L2 round trip. Nodes are therefore laid out in 64-byte lines
//! (`flatten`): a tree starts on a fresh line holding its first three levels, and every
//! node's children share its line while room remains, the nodes that saw the most training
//! rows claiming that room first — a walk loads a new line about every 2.5 steps instead of
//! every step below level 3 (measured 6 % faster than plain breadth-first slots; the
//! row-count priority adds about 1 %).
//!
//! Every node asks the same question, `k > t` on unsigned order keys (`key`: integers that
//! compare like the floats, NaN lowest): a node whose NaN goes left compares the row's key
//! with its threshold's (NaN fails and lands on the first slot = left child); a node whose
//! NaN goes right swaps its children and compares complemented keys, `!k > !key(t) − 1`,
//! i.e. `x ≤ t`, where NaN again fails and lands on the first slot, now the right child.
//! The row is keyed once (about 20 ns for 50 features), with the complements beside it.
//! Leaf values are added in tree order, so results are bit-identical to
//! [`super::Gbdt::predict_row`]. Models outside the packed limits (more than
//! [`MAX_FAST_FEATURES`] features, more than 2²³ nodes) keep a general 12-byte node walk
//! with the same semantics. Measured alternatives (100 trees × 63 leaves, 50 features):
//! float thresholds with a negated row copy were 20 % slower (more instructions in the
//! chain); 8, 12 or 14 lanes 4–10 % slower than 10; prefetching both possible next nodes
//! 10 % slower; AVX2 gathers (Zen 3) 2× slower; refilling finished lanes with the next tree
//! walks fewer steps but costs more per step and came out even; grouping trees of similar
//! depth does not shorten the lockstep walk; prefetching the next group's root lines while
//! a group is walked was 4 % slower.

use std::mem::MaybeUninit;

use crate::gbdt::booster::Gbdt;
use crate::gbdt::tree::Tree;

/// Trees walked together.
pub const LANES: usize = 10;

/// Most features the packed layout serves (the keyed row lives on the stack).
pub const MAX_FAST_FEATURES: usize = 256;

/// One node in the general layout: `x > threshold` (or `x ≤ threshold` when the feature
/// carries [`LE`]) moves to `child + 1`, otherwise to `child`; NaN fails both.
#[derive(Clone, Copy, Debug)]
struct FlatNode {
    threshold: f32,
    /// Feature index, with [`LE`] set on nodes whose NaN goes right (children swapped).
    feature: u32,
    /// First of the two adjacent children; a leaf points at itself.
    child: u32,
}

/// Flag on [`FlatNode::feature`]: the node asks `x ≤ threshold`.
const LE: u32 = 1 << 31;

/// The packed layout of the same nodes, two words each: the threshold's order key (see
/// [`key`]), then `child << FEATURE_BITS | f` with `f` the index into the keyed row, so a
/// step loads the second word, masks and shifts it, and compares the first in memory.
#[derive(Clone, Debug)]
struct Packed {
    lines: Vec<Line>,
}

/// [`LINE`] packed nodes, aligned to a cache line so that the nodes [`flatten`] groups
/// together share one.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([[u32; 2]; LINE]);

impl Packed {
    /// Every node, in slot order.
    fn words(&self) -> &[[u32; 2]] {
        // SAFETY: `Line` is `repr(C)` and holds exactly `LINE` `[u32; 2]` with no padding.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.lines.len() * LINE) }
    }
}

/// Bits of a node's second word holding the child index (8,388,608 nodes).
const CHILD_BITS: u32 = 23;
/// Bits of a node's second word holding the keyed-row index (`2 · MAX_FAST_FEATURES`).
const FEATURE_BITS: u32 = 9;
const FEATURE_MASK: u32 = (1 << FEATURE_BITS) - 1;
const _: () = assert!(CHILD_BITS + FEATURE_BITS == 32 && 2 * MAX_FAST_FEATURES <= 1 << FEATURE_BITS);

/// The order key of a float: unsigned integers that compare like the floats, so a node's
/// test is an integer compare whose carry is added straight to the child index (`cmp; adc`),
/// with no float unit and no flag-to-register step in the chain. `-0.0` is folded onto
/// `+0.0` (the floats compare equal); NaN maps to 0, below every number's key (−∞ is
/// `0x007F_FFFF`), so `key > t` fails for NaN as `x > t` does.
#[inline(always)]
fn key(x: f32) -> u32 {
    if x.is_nan() {
        return 0;
    }
    let b = (x + 0.0).to_bits();
    // Negative floats: all bits flipped (larger magnitude → smaller key); positive: sign set.
    b ^ ((((b as i32) >> 31) as u32) | 0x8000_0000)
}

/// A compiled, read-only copy of a [`Gbdt`] for fast single-row prediction.
#[derive(Clone, Debug)]
pub struct CompiledGbdt {
    nodes: Vec<FlatNode>,
    packed: Option<Packed>,
    /// Leaf value per node index (0 for internal nodes).
    values: Vec<f64>,
    /// Root node of each tree, padded to a multiple of [`LANES`] with an absorbing zero leaf.
    roots: Vec<u32>,
    /// Trees without the padding.
    n_trees: usize,
    /// Steps each group of [`LANES`] trees may need (its deepest leaf).
    group_depth: Vec<u32>,
    init_score: Vec<f64>,
    num_outputs: usize,
    n_features: usize,
    model: Gbdt,
}

/// Nodes per 64-byte cache line in the packed layout.
const LINE: usize = 8;

/// Append `tree` to `nodes`, starting on a fresh cache line, and return its root. Slots are
/// handed out breadth-first, but an internal node's two children go into its own line while
/// two adjacent slots remain there (else into a new line): a line then holds a node, its
/// children and grandchildren, and a root-to-leaf walk loads about one line per 2.5 steps
/// instead of one per step below the first three levels.
fn flatten(tree: &Tree, nodes: &mut Vec<FlatNode>, values: &mut Vec<f64>) -> u32 {
    // Lines are added whole; their unused slots are absorbing leaves that nothing reaches.
    let first_line = nodes.len().div_ceil(LINE);
    let mut fill: Vec<usize> = Vec::new();
    let new_line = |nodes: &mut Vec<FlatNode>, values: &mut Vec<f64>, fill: &mut Vec<usize>| {
        while nodes.len() < (first_line + fill.len() + 1) * LINE {
            nodes.push(FlatNode { threshold: f32::INFINITY, feature: 0, child: nodes.len() as u32 });
            values.push(0.0);
        }
        fill.push(0);
        first_line + fill.len() - 1
    };
    // `n` adjacent slots in `line`, or in a new line when it has no room.
    let mut alloc = |line: Option<usize>, n: usize, nodes: &mut Vec<FlatNode>, values: &mut Vec<f64>| {
        let line = match line {
            Some(l) if fill[l - first_line] + n <= LINE => l,
            _ => new_line(nodes, values, &mut fill),
        };
        let slot = line * LINE + fill[line - first_line];
        fill[line - first_line] += n;
        slot
    };
    let root = alloc(None, 1, nodes, values);
    // Level by level; within a level the nodes that saw the most training rows claim the room
    // left in their lines first, so the likeliest paths stay inside one line longest.
    let mut level: Vec<(i32, usize)> = vec![(if tree.nodes.is_empty() { !0 } else { 0 }, root)];
    while !level.is_empty() {
        level.sort_by_key(|&(src, _)| std::cmp::Reverse(if src < 0 { 0 } else { tree.nodes[src as usize].count }));
        let mut next = Vec::with_capacity(2 * level.len());
        for (src, slot) in level {
            if src < 0 {
                values[slot] = tree.leaf_values[!src as usize];
                continue;
            }
            let child = alloc(Some(slot / LINE), 2, nodes, values);
            let n = &tree.nodes[src as usize];
            nodes[slot] = if n.default_left {
                // x > t goes right; NaN fails and goes left (first slot).
                next.extend([(n.left, child), (n.right, child + 1)]);
                FlatNode { threshold: n.threshold, feature: n.feature, child: child as u32 }
            } else {
                // x ≤ t goes left (second slot); NaN fails and goes right.
                next.extend([(n.right, child), (n.left, child + 1)]);
                FlatNode { threshold: n.threshold, feature: n.feature | LE, child: child as u32 }
            };
        }
        level = next;
    }
    root as u32
}

/// Pack the nodes into two-word nodes when the model fits the limits of the layout. A node
/// `x > t` tests `key(x) > key(t)`; a node `x ≤ t` tests `!key(x) > !key(t) − 1` on the
/// complemented keys (the second half of the keyed row), where NaN's key is again 0 and
/// fails. A leaf tests against `u32::MAX`, which nothing exceeds.
fn pack(nodes: &[FlatNode], n_features: usize) -> Option<Packed> {
    if n_features > MAX_FAST_FEATURES || nodes.len() > 1 << CHILD_BITS {
        return None;
    }
    let mut words = Vec::with_capacity(nodes.len());
    for n in nodes {
        // A leaf, a `x > +∞` node and a node with a NaN threshold all fail their test for
        // every input and always take the first slot.
        let leaf = (n.threshold == f32::INFINITY && n.feature & LE == 0) || n.threshold.is_nan();
        let (t, f) = if leaf {
            (u32::MAX, 0)
        } else if n.feature & LE == 0 {
            (key(n.threshold), n.feature)
        } else {
            (!key(n.threshold) - 1, n_features as u32 + (n.feature & !LE))
        };
        // The unchecked walk relies on these bounds; a model that breaks them (hand-edited
        // JSON) takes the checked path.
        let last = n.child as usize + usize::from(!leaf);
        if last >= nodes.len() || f as usize >= 2 * n_features {
            return None;
        }
        words.push([t, n.child << FEATURE_BITS | f]);
    }
    // Pad the last line with absorbing leaves.
    while !words.len().is_multiple_of(LINE) {
        words.push([u32::MAX, (words.len() as u32) << FEATURE_BITS]);
    }
    Some(Packed { lines: words.chunks_exact(LINE).map(|c| Line(c.try_into().expect("a full line"))).collect() })
}

impl CompiledGbdt {
    /// Compile a fitted model.
    pub fn new(model: &Gbdt) -> Self {
        let n_features = model.n_features;
        let mut nodes = Vec::new();
        let mut values = Vec::new();
        let mut roots: Vec<u32> = model.trees.iter().map(|t| flatten(t, &mut nodes, &mut values)).collect();
        let pad = nodes.len() as u32;
        nodes.push(FlatNode { threshold: f32::INFINITY, feature: 0, child: pad });
        values.push(0.0);
        let n_trees = roots.len();
        roots.resize(n_trees.div_ceil(LANES) * LANES, pad);
        let group_depth =
            model.trees.chunks(LANES).map(|g| g.iter().map(|t| t.depth() as u32).max().unwrap_or(0)).collect();
        let packed = pack(&nodes, n_features);
        CompiledGbdt {
            nodes,
            packed,
            values,
            roots,
            n_trees,
            group_depth,
            init_score: model.init_score.clone(),
            num_outputs: model.num_outputs,
            n_features,
            model: Gbdt { trees: Vec::new(), history: Vec::new(), ..model.clone() },
        }
    }

    /// Features a row must have.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Outputs per row.
    pub fn n_outputs(&self) -> usize {
        self.num_outputs
    }

    /// Raw scores of one row into `out` (length `n_outputs`); allocation-free.
    /// `row` must hold at least `n_features` values.
    #[inline]
    pub fn predict_row_raw(&self, row: &[f32], out: &mut [f64]) {
        assert!(row.len() >= self.n_features, "row has {} features, model needs {}", row.len(), self.n_features);
        assert_eq!(out.len(), self.num_outputs, "output buffer length");
        match &self.packed {
            Some(p) => {
                let words = p.words();
                let mut buf = [MaybeUninit::<u32>::uninit(); 2 * MAX_FAST_FEATURES];
                let nf = self.n_features;
                for (f, &x) in row[..nf].iter().enumerate() {
                    let k = key(x);
                    buf[f].write(k);
                    buf[nf + f].write(if k == 0 { k } else { !k });
                }
                // SAFETY: the first 2·nf entries were just written.
                let ext: &[u32] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u32>(), 2 * nf) };
                self.walk(out, |i| {
                    // SAFETY: `pack` checked that every child index is a node and every
                    // feature index lies inside the keyed row (2·n_features entries).
                    let w = unsafe { words.get_unchecked(i) };
                    let x = unsafe { *ext.get_unchecked((w[1] & FEATURE_MASK) as usize) };
                    (w[1] >> FEATURE_BITS) as usize + usize::from(w[0] < x)
                });
            }
            None => self.walk(out, |i| {
                let n = self.nodes[i];
                let x = row[(n.feature & !LE) as usize];
                n.child as usize + usize::from(if n.feature & LE != 0 { x <= n.threshold } else { x > n.threshold })
            }),
        }
    }

    /// Walk every tree group with `step` (node index → next node index) and add the leaf
    /// values to `out` in tree order.
    #[inline(always)]
    fn walk(&self, out: &mut [f64], step: impl Fn(usize) -> usize) {
        out.copy_from_slice(&self.init_score);
        let k = self.num_outputs;
        let mut acc = out[0];
        for (g, roots) in self.roots.chunks_exact(LANES).enumerate() {
            // Word-sized lane indices: a step returns the next node index ready to load.
            let idx: &mut [usize; LANES] = &mut [0; LANES];
            idx.iter_mut().zip(roots).for_each(|(i, &r)| *i = r as usize);
            let depth = self.group_depth[g];
            let mut s = 0;
            while s < depth {
                let mut settled = true;
                for _ in 0..2 {
                    settled = true;
                    for i in idx.iter_mut() {
                        let next = step(*i);
                        settled &= next == *i;
                        *i = next;
                    }
                }
                s += 2;
                if settled {
                    break;
                }
            }
            let live = (self.n_trees - g * LANES).min(LANES);
            if k == 1 {
                for &i in &idx[..live] {
                    acc += self.values[i];
                }
            } else {
                for (j, &i) in idx[..live].iter().enumerate() {
                    out[(g * LANES + j) % k] += self.values[i];
                }
            }
        }
        if k == 1 {
            out[0] = acc;
        }
    }

    /// Transformed output of one row (probability / class probabilities / value);
    /// allocation-free for up to 64 outputs.
    pub fn predict_row(&self, row: &[f32], out: &mut [f64]) {
        self.model.transformed(out, |raw| self.predict_row_raw(row, raw));
    }
}

impl Gbdt {
    /// A compiled copy for low-latency single-row prediction (see [`CompiledGbdt`]).
    pub fn compile(&self) -> CompiledGbdt {
        CompiledGbdt::new(self)
    }
}

/// The GBDT benchmark generator, shared with `benches/` (it takes `Rng` from here).
#[cfg(test)]
#[path = "../../benches/support/synthetic.rs"]
mod synthetic;
#[cfg(test)]
use crate::rng::Rng;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gbdt::flat::synthetic;
    use crate::gbdt::{GbdtParams, TrainData};

    /// A 31-leaf leaf-wise model of `rounds` trees.
    fn leaf_wise(x: &ndarray::Array2<f32>, y: &[f64], rounds: usize) -> Gbdt {
        GbdtParams::lightgbm()
            .num_leaves(31)
            .rounds(rounds)
            .fit_data(&TrainData::new(x.view(), y).unwrap(), None)
            .unwrap()
    }

    #[test]
    fn packed_and_general_walks_equal_the_model_bit_for_bit() {
        let (mut x, y) = synthetic::gbdt_benchmark(2_000, 16, 4).unwrap();
        for r in (0..2_000).step_by(5) {
            x[[r, r % 16]] = f32::NAN;
        }
        x[[3, 0]] = f32::INFINITY;
        x[[4, 1]] = f32::NEG_INFINITY;
        let model = leaf_wise(&x, &y, 13);
        let packed = model.compile();
        assert!(packed.packed.is_some());
        let mut general = packed.clone();
        general.packed = None;
        let (mut a, mut b, mut c) = ([0.0], [0.0], [0.0]);
        for r in 0..2_000 {
            let mut row = x.row(r).to_vec();
            if r % 97 == 0 {
                row.iter_mut().for_each(|v| *v = f32::NAN);
            }
            model.predict_row_raw(&row, &mut a);
            packed.predict_row_raw(&row, &mut b);
            general.predict_row_raw(&row, &mut c);
            assert_eq!(a[0].to_bits(), b[0].to_bits(), "packed, row {r}");
            assert_eq!(a[0].to_bits(), c[0].to_bits(), "general, row {r}");
        }
    }

    #[test]
    fn trees_start_on_cache_lines_and_children_share_their_parents_line() {
        let (x, y) = synthetic::gbdt_benchmark(3_000, 16, 5).unwrap();
        let c = leaf_wise(&x, &y, 7).compile();
        assert_eq!(c.packed.as_ref().unwrap().words().as_ptr() as usize % 64, 0);
        let (mut same, mut internal) = (0, 0);
        for &r in &c.roots[..c.n_trees] {
            assert_eq!(r as usize % LINE, 0);
            let root = c.nodes[r as usize];
            // Root, children and grandchildren fill the tree's first line.
            assert_eq!(root.child as usize / LINE, r as usize / LINE);
        }
        for (i, n) in c.nodes.iter().enumerate() {
            if n.child as usize != i {
                internal += 1;
                same += usize::from(n.child as usize / LINE == i / LINE);
            }
        }
        // A line holds a pair of siblings, their children and one pair of grandchildren: most
        // internal nodes (the pair's two) find their children in their own line.
        assert!(2 * same >= internal, "{same} of {internal}");
    }

    /// A one-split model on feature `feature` of `n_features`: left leaf −1, right leaf +1.
    fn one_split(n_features: usize, feature: u32, threshold: f32, default_left: bool) -> Gbdt {
        let node = crate::gbdt::tree::Node {
            feature,
            threshold,
            bin: 0,
            default_left,
            left: !0,
            right: !1,
            gain: 1.0,
            count: 2,
        };
        let x = ndarray::Array2::<f32>::zeros((4, n_features));
        let mut model = GbdtParams::lightgbm()
            .rounds(1)
            .fit_data(&TrainData::new(x.view(), &[0.0, 1.0, 0.0, 1.0]).unwrap(), None)
            .unwrap();
        model.trees = vec![Tree { nodes: vec![node], leaf_values: vec![-1.0, 1.0], leaf_counts: vec![1, 1] }];
        model
    }

    /// Both walks of `model` give `leaf` for each `(x, leaf)`, the value on `feature`.
    fn assert_routes(model: &Gbdt, feature: usize, cases: &[(f32, f64)]) {
        let packed = model.compile();
        let mut general = packed.clone();
        general.packed = None;
        let mut row = vec![0f32; model.n_features];
        let mut out = [0.0];
        for &(x, leaf) in cases {
            row[feature] = x;
            for (name, c) in [("packed", &packed), ("general", &general)] {
                c.predict_row_raw(&row, &mut out);
                assert_eq!(out[0], model.init_score[0] + leaf, "{name}, x = {x}");
            }
        }
    }

    #[test]
    fn infinite_and_signed_zero_thresholds_route_like_the_floats() {
        let (inf, nan) = (f32::INFINITY, f32::NAN);
        // Default right at +∞: every number goes left, NaN right.
        let m = one_split(1, 0, inf, false);
        assert!(m.compile().packed.is_some());
        assert_routes(&m, 0, &[(inf, -1.0), (1.0, -1.0), (-inf, -1.0), (nan, 1.0)]);
        // Default left at +∞: NaN and every number go left.
        assert_routes(&one_split(1, 0, inf, true), 0, &[(inf, -1.0), (f32::MAX, -1.0), (nan, -1.0)]);
        // At −∞ only −∞ goes left (NaN follows its default).
        assert_routes(&one_split(1, 0, -inf, true), 0, &[(-inf, -1.0), (f32::MIN, 1.0), (nan, -1.0)]);
        assert_routes(&one_split(1, 0, -inf, false), 0, &[(-inf, -1.0), (f32::MIN, 1.0), (nan, 1.0)]);
        // Signed zeros compare equal: both go left at either zero threshold.
        for t in [0.0, -0.0] {
            for default_left in [true, false] {
                let m = one_split(1, 0, t, default_left);
                assert_routes(&m, 0, &[(0.0, -1.0), (-0.0, -1.0), (-1e-45, -1.0), (1e-45, 1.0)]);
            }
        }
    }

    #[test]
    fn models_outside_the_packed_limits_take_the_general_walk() {
        let m = one_split(MAX_FAST_FEATURES + 1, MAX_FAST_FEATURES as u32, 0.5, false);
        assert!(m.compile().packed.is_none());
        assert_routes(&m, MAX_FAST_FEATURES, &[(0.0, -1.0), (1.0, 1.0), (f32::NAN, 1.0)]);
        // A node pointing outside the model (hand-edited JSON) is not packed either.
        let mut bad = one_split(2, 1, 0.5, true);
        bad.trees[0].nodes[0].feature = 7;
        assert!(CompiledGbdt::new(&bad).packed.is_none());
    }

    #[test]
    fn order_keys_compare_like_the_floats() {
        let xs = [f32::NEG_INFINITY, f32::MIN, -1.5, -1e-45, -0.0, 0.0, 1e-45, 2.0, f32::MAX, f32::INFINITY];
        for &a in &xs {
            assert!(key(f32::NAN) < key(a));
            for &b in &xs {
                assert_eq!(key(a) > key(b), a > b, "{a} > {b}");
                assert_eq!(!key(a) > (!key(b)).wrapping_sub(1), a <= b, "{a} <= {b}");
            }
        }
    }
}

//! Growing one tree from gradients: leaf-wise (best gain first) or depth-wise (level by level).
//!
//! Both policies share one loop. Each leaf owns a contiguous range of a row-index array that
//! is stably partitioned at every split, so a leaf's rows are always in ascending order and
//! every result is independent of scheduling. After a split only the smaller child's
//! histogram is built (its gradients gathered into leaf order first); the larger child's is the
//! parent's minus the smaller's, computed in the parent's buffer. Buffers come from a pool
//! reused across trees, so training allocates per tree at most, never per row.
//!
//! Depth-wise growth splits the whole shallowest level at once (its partitions, then every
//! feature block of every child as one parallel pass); because a leaf's best split depends only
//! on its own rows, this produces exactly XGBoost's level-wise trees. Each node's histogram is
//! built row-wise or column-wise by its share of the rows (`histogram.rs`).

use rayon::prelude::*;

use crate::gbdt::binning::{BinData, BinnedMatrix};
use crate::gbdt::histogram::{self, Bin, Layout};
use crate::gbdt::params::Growth;
use crate::gbdt::quantize::{self, Packed, Scales};
use crate::gbdt::split::{self, SplitInfo, SplitParams};
use crate::gbdt::tree::{Node, Tree};
use crate::rng::Rng;

/// Rows per task when partitioning or summing large leaves (fixed, for determinism).
const CHUNK: usize = 1 << 14;

/// Reusable buffers and settings for growing trees over one binned matrix.
pub struct TreeLearner<'a> {
    bins: &'a BinnedMatrix,
    sp: SplitParams,
    growth: Growth,
    bynode: f64,
    pool: Vec<Vec<Bin>>,
    free: Vec<usize>,
    indices: Vec<u32>,
    scratch: Vec<u32>,
    q: Vec<Packed>,
    q_ord: Vec<Packed>,
    scales: Scales,
    ranges: Vec<(usize, usize)>,
    stripes: Vec<Vec<Bin>>,
    leaf_of: Vec<u32>,
}

/// Nodes holding at least 1/COLUMN_WISE_SHARE of the rows build their histograms column-wise
/// (see `histogram.rs` for the measurements behind the switch).
const COLUMN_WISE_SHARE: usize = 4;

/// Row-wise nodes with at least this many rows build their histogram by row stripes.
const STRIPE_MIN_ROWS: usize = 1 << 16;

/// Row stripes of a large node (fixed: the summation order must not depend on threads).
const STRIPES: usize = 8;

/// Rows per task when partitioning a leaf.
const PART_CHUNK: usize = 1 << 12;

/// Sums and allowed features of a node whose best split is wanted.
struct Side {
    total: Packed,
    count: usize,
    features: Vec<usize>,
}

/// Below this much work (row×feature updates plus bins to scan) a node is done on one thread.
const PARALLEL_MIN_WORK: usize = 1 << 13;

/// The sorted `features` that fall in the used-feature block `lo..hi`.
fn block_features(features: &[usize], lo: usize, hi: usize) -> &[usize] {
    let a = features.partition_point(|&j| j < lo);
    let b = features.partition_point(|&j| j < hi);
    &features[a..b]
}

/// A node whose histogram is to be built (rows `indices[begin..end]`), with what to do with
/// its parent's buffer and whose splits to search; `small`/`large` are the leaves that
/// receive the results.
struct Job {
    begin: usize,
    end: usize,
    /// The rows are `0..n` in order (the root without bagging): no gather needed.
    identity: bool,
    buf: usize,
    parent: Option<usize>,
    /// Turn the parent's buffer into the sibling's histogram (the sibling will be searched).
    subtract: bool,
    a: Option<Side>,
    sib: Option<Side>,
    small: usize,
    large: usize,
}

struct Leaf {
    begin: usize,
    end: usize,
    /// Quantized (gradient, hessian) sums of the leaf's rows.
    q: Packed,
    depth: u32,
    hist: Option<usize>,
    best: Option<SplitInfo>,
    parent: Option<(usize, bool)>,
}

/// Recomputes a leaf's raw value from its rows (see `Objective::renew_leaf`).
pub type Renew<'r> = &'r (dyn Fn(&[u32]) -> Option<f64> + Sync);

impl<'a> TreeLearner<'a> {
    /// A learner over `bins` with the given limits.
    pub fn new(bins: &'a BinnedMatrix, sp: SplitParams, growth: Growth, feature_fraction_bynode: f64) -> Self {
        TreeLearner {
            bins,
            sp,
            growth,
            bynode: feature_fraction_bynode,
            pool: Vec::new(),
            free: Vec::new(),
            indices: Vec::new(),
            scratch: Vec::new(),
            q: Vec::new(),
            q_ord: Vec::new(),
            scales: Scales { g: 1.0, h: 1.0 },
            ranges: Vec::new(),
            stripes: Vec::new(),
            leaf_of: Vec::new(),
        }
    }

    /// Leaf of every row of the last grown tree, indexed by row (meaningful for in-bag rows;
    /// the buffer is reused across trees).
    pub fn leaf_ids(&mut self) -> &[u32] {
        self.leaf_of.resize(self.bins.n_rows, 0);
        for (leaf, &(b, e)) in self.ranges.iter().enumerate() {
            for &r in &self.indices[b..e] {
                self.leaf_of[r as usize] = leaf as u32;
            }
        }
        &self.leaf_of
    }

    /// Rows (ascending) that ended in `leaf` of the last grown tree.
    pub fn leaf_rows(&self, leaf: usize) -> &[u32] {
        let (b, e) = self.ranges[leaf];
        &self.indices[b..e]
    }

    fn alloc(&mut self) -> usize {
        if let Some(i) = self.free.pop() {
            return i;
        }
        self.pool.push(vec![0; self.bins.total_bins()]);
        self.pool.len() - 1
    }

    /// Grow one tree on `gh` (one pair per training row) over the rows in `bag` (all when
    /// `None`), searching `features` (used-feature indices). Leaf values are multiplied by `lr`.
    pub fn grow(
        &mut self,
        gh: &[[f32; 2]],
        bag: Option<&[u32]>,
        features: &[usize],
        rng: &mut Rng,
        lr: f64,
        renew: Option<Renew<'_>>,
    ) -> Tree {
        let n = self.bins.n_rows;
        self.indices.clear();
        match bag {
            Some(b) => self.indices.extend_from_slice(b),
            None => self.indices.extend(0..n as u32),
        }
        let m = self.indices.len();
        if self.scratch.len() < m {
            self.scratch.resize(m, 0);
            self.q_ord.resize(m, 0);
        }
        // Splits are searched on quantized gradients (exact integer histograms); leaf values
        // below come from the float gradients.
        self.q.resize(n, 0);
        self.scales = quantize::quantize(gh, bag, m, &mut self.q);
        let q = self.sum_rows(0, m);
        let mut leaves = vec![Leaf { begin: 0, end: m, q, depth: 0, hist: None, best: None, parent: None }];
        if self.can_split(m, 0) {
            let buf = self.alloc();
            let feats = self.node_features(features, rng);
            let job = Job {
                begin: 0,
                end: m,
                identity: bag.is_none(),
                buf,
                parent: None,
                subtract: false,
                a: Some(Side { total: q, count: m, features: feats }),
                sib: None,
                small: 0,
                large: 0,
            };
            self.run_jobs(vec![job], &mut leaves);
        }
        let mut tree = Tree::default();
        let max_leaves = self.growth.max_leaves();
        while leaves.len() < max_leaves {
            match self.growth {
                Growth::LeafWise { .. } => {
                    let pick = leaves
                        .iter()
                        .enumerate()
                        .filter_map(|(i, l)| l.best.map(|b| (i, b.gain)))
                        .fold(None, |acc: Option<(usize, f64)>, (i, gain)| match acc {
                            Some((_, g)) if g >= gain => acc,
                            _ => Some((i, gain)),
                        })
                        .map(|(i, _)| i);
                    let Some(li) = pick else { break };
                    self.split_leaves(&mut leaves, &[li], &mut tree, features, rng);
                }
                Growth::DepthWise { .. } => {
                    // The whole shallowest level at once, in leaf order: the same splits, nodes
                    // and leaf numbering as splitting its leaves one by one, with the row work
                    // of all of them in one parallel pass. A level never overshoots the leaf
                    // cap: a tree of depth d has at most 2^d leaves.
                    let Some(depth) = leaves.iter().filter(|l| l.best.is_some()).map(|l| l.depth).min() else {
                        break;
                    };
                    let level: Vec<usize> =
                        (0..leaves.len()).filter(|&i| leaves[i].best.is_some() && leaves[i].depth == depth).collect();
                    self.split_leaves(&mut leaves, &level, &mut tree, features, rng);
                }
            }
        }
        for l in &mut leaves {
            if let Some(b) = l.hist.take() {
                self.free.push(b);
            }
        }
        self.ranges = leaves.iter().map(|l| (l.begin, l.end)).collect();
        // Each leaf's value from its rows' float gradients, summed in row order.
        let this = &*self;
        tree.leaf_values = (0..leaves.len())
            .into_par_iter()
            .map(|i| {
                let rows = this.leaf_rows(i);
                let raw = renew.and_then(|f| f(rows)).unwrap_or_else(|| {
                    let (g, h) = rows.iter().fold((0.0, 0.0), |a, &r| {
                        let v = gh[r as usize];
                        (a.0 + v[0] as f64, a.1 + v[1] as f64)
                    });
                    split::leaf_value(g, h, &this.sp)
                });
                raw * lr
            })
            .collect();
        tree.leaf_counts = leaves.iter().map(|l| (l.end - l.begin) as u32).collect();
        tree
    }

    /// Features a node may split on (per-node sampling when `feature_fraction_bynode < 1`).
    fn node_features(&self, features: &[usize], rng: &mut Rng) -> Vec<usize> {
        if self.bynode < 1.0 && features.len() > 1 {
            let k = ((features.len() as f64 * self.bynode).round() as usize).max(1);
            rng.sample_sorted(features.len(), k).into_iter().map(|i| features[i]).collect()
        } else {
            features.to_vec()
        }
    }

    fn can_split(&self, count: usize, depth: u32) -> bool {
        count >= 2 * self.sp.min_data.max(1) && self.growth.max_depth().is_none_or(|d| depth < d)
    }

    /// Split the leaves `lis` (ascending, each with a best split): partition their rows (in
    /// parallel across leaves), record the nodes and children in `lis` order (so node and leaf
    /// numbering, and the feature-sampling draws, are those of splitting them one by one), then
    /// build and search all children in one parallel pass.
    fn split_leaves(
        &mut self,
        leaves: &mut Vec<Leaf>,
        lis: &[usize],
        tree: &mut Tree,
        features: &[usize],
        rng: &mut Rng,
    ) {
        let splits: Vec<SplitInfo> =
            lis.iter().map(|&li| leaves[li].best.take().expect("picked leaves split")).collect();
        let ranges: Vec<(usize, usize)> = lis.iter().map(|&li| (leaves[li].begin, leaves[li].end)).collect();
        let bins = self.bins;
        let lefts: Vec<usize> = {
            let parts =
                disjoint_mut(&mut self.indices, &ranges).into_iter().zip(disjoint_mut(&mut self.scratch, &ranges));
            let work: Vec<_> = parts.zip(&splits).collect();
            let run = |((idx, scratch), s): ((&mut [u32], &mut [u32]), &SplitInfo)| {
                let nan_bin = bins.mappers[bins.used[s.feature]].nan_bin();
                partition(idx, scratch, bins, s.feature, nan_bin, s.bin, s.default_left)
            };
            if work.len() == 1 { work.into_iter().map(run).collect() } else { work.into_par_iter().map(run).collect() }
        };
        let mut jobs = Vec::new();
        for ((&li, s), nl) in lis.iter().zip(&splits).zip(lefts) {
            if let Some(job) = self.record_split(leaves, li, s, nl, tree, features, rng) {
                jobs.push(job);
            }
        }
        if !jobs.is_empty() {
            self.run_jobs(jobs, leaves);
        }
    }

    /// Record the split of leaf `li` (its rows already partitioned, `nl` going left): the tree
    /// node, the two children (left keeps `li`, right is appended), and what remains to be
    /// built and searched, if anything.
    #[allow(clippy::too_many_arguments)]
    fn record_split(
        &mut self,
        leaves: &mut Vec<Leaf>,
        li: usize,
        s: &SplitInfo,
        nl: usize,
        tree: &mut Tree,
        features: &[usize],
        rng: &mut Rng,
    ) -> Option<Job> {
        let (b, e) = (leaves[li].begin, leaves[li].end);
        let f = self.bins.used[s.feature];
        let mapper = &self.bins.mappers[f];
        let node_idx = tree.nodes.len() as i32;
        let ri = leaves.len();
        tree.nodes.push(Node {
            feature: f as u32,
            threshold: mapper.bounds[s.bin],
            bin: s.bin as u16,
            default_left: s.default_left,
            left: !(li as i32),
            right: !(ri as i32),
            gain: s.gain as f32,
            count: (e - b) as u32,
        });
        if let Some((p, is_left)) = leaves[li].parent {
            if is_left {
                tree.nodes[p].left = node_idx;
            } else {
                tree.nodes[p].right = node_idx;
            }
        }
        let depth = leaves[li].depth + 1;
        let parent_hist = leaves[li].hist.take().expect("a splittable leaf has a histogram");
        let pq = leaves[li].q;
        leaves[li] = Leaf {
            begin: b,
            end: b + nl,
            q: s.left,
            depth,
            hist: None,
            best: None,
            parent: Some((node_idx as usize, true)),
        };
        leaves.push(Leaf {
            begin: b + nl,
            end: e,
            q: pq - s.left,
            depth,
            hist: None,
            best: None,
            parent: Some((node_idx as usize, false)),
        });
        let (nr, small_is_left) = (e - b - nl, nl <= e - b - nl);
        let (small, large) = if small_is_left { (li, ri) } else { (ri, li) };
        let need_small = self.can_split(if small_is_left { nl } else { nr }, depth);
        let need_large = self.can_split(if small_is_left { nr } else { nl }, depth);
        if !(need_small || need_large) {
            self.free.push(parent_hist);
            return None;
        }
        // Feature sampling in a fixed order (left child, then right) keeps the RNG stream stable.
        let mut feats = [None, None];
        for (slot, c) in [li, ri].into_iter().enumerate() {
            if (c == small && need_small) || (c == large && need_large) {
                feats[slot] = Some(self.node_features(features, rng));
            }
        }
        let mut side = |c: usize| {
            feats[if c == li { 0 } else { 1 }].take().map(|features| Side {
                total: leaves[c].q,
                count: leaves[c].end - leaves[c].begin,
                features,
            })
        };
        let (a, sib) = (side(small), side(large));
        Some(Job {
            begin: leaves[small].begin,
            end: leaves[small].end,
            identity: false,
            buf: self.alloc(),
            parent: Some(parent_hist),
            subtract: need_large,
            a,
            sib,
            small,
            large,
        })
    }

    /// Build each job's histogram (turning the parent's buffer into the sibling's by
    /// subtraction where wanted), search the best splits, and store them and the buffers in
    /// `leaves`. Large row-wise nodes (by row stripes) run one at a time, parallel inside; all other
    /// jobs are cut into feature blocks and every block of every job is one task of a single
    /// parallel pass, which keeps both threads busy on the many small nodes of deep levels.
    /// Integer histograms and the block-order reduction of [`split::better`] make every
    /// result independent of the cut.
    fn run_jobs(&mut self, jobs: Vec<Job>, leaves: &mut [Leaf]) {
        self.gather(&jobs);
        let threads = rayon::current_num_threads();
        let bins = self.bins;
        let nu = bins.n_used();
        let work = |j: &Job| (j.end - j.begin) * nu + 4 * bins.total_bins();
        let by_columns = |j: &Job| (j.end - j.begin) * COLUMN_WISE_SHARE >= bins.n_rows;
        let total_work: usize = jobs.iter().map(work).sum();
        let mut results = vec![(None, None); jobs.len()];
        let mut blocked = Vec::new();
        for (ji, j) in jobs.iter().enumerate() {
            if !by_columns(j) && j.end - j.begin >= STRIPE_MIN_ROWS {
                results[ji] = self.striped(j);
            } else {
                // Feature blocks: as many as the job's share of the pass's work is worth, up
                // to one per thread for mid-size nodes and two for large ones (better balance);
                // one when the work is too small to fork for. Smaller, L1-sized blocks were
                // measured slower: each block re-reads the rows.
                let cap = if j.end - j.begin >= CHUNK { 2 * threads } else { threads };
                let n_blocks = if threads == 1 || work(j) < PARALLEL_MIN_WORK {
                    1
                } else {
                    (2 * threads * work(j)).div_ceil(total_work).clamp(1, cap).min(nu)
                };
                blocked.push((ji, n_blocks.max(1)));
            }
        }
        if !blocked.is_empty() {
            let (pool, indices, q_ord, q) = (&mut self.pool, &self.indices, &self.q_ord, &self.q);
            let (sp, scales) = (self.sp, self.scales);
            let mut slots: Vec<Option<&mut Vec<Bin>>> = pool.iter_mut().map(Some).collect();
            // Tasks: (job, block lo, block hi, built block, parent block).
            let mut tasks = Vec::new();
            for &(ji, n_blocks) in &blocked {
                let j = &jobs[ji];
                let built = slots[j.buf].take().expect("one buffer per job").as_mut_slice();
                let parent = if j.subtract {
                    Some(
                        slots[j.parent.expect("subtraction needs the parent")].take().expect("distinct").as_mut_slice(),
                    )
                } else {
                    None
                };
                let blocks = feature_blocks(&bins.offsets, n_blocks, built, parent);
                tasks.extend(blocks.into_iter().map(|(lo, hi, hb, hp)| (ji, lo, hi, hb, hp)));
            }
            let jobs_ref = &jobs;
            let run = |(ji, lo, hi, hb, mut hp): (usize, usize, usize, &mut [Bin], Option<&mut [Bin]>)| {
                let j = &jobs_ref[ji];
                let (rows, q_rows) = if j.identity {
                    (None, &q[j.begin..j.end])
                } else {
                    (Some(&indices[j.begin..j.end]), &q_ord[j.begin..j.end])
                };
                hb.fill(0);
                let layout = if by_columns(j) { Layout::Columns } else { Layout::Rows };
                histogram::build_range(bins, lo, hi, rows, j.begin, q_rows, hb, layout);
                if let Some(hp) = hp.as_deref_mut() {
                    histogram::subtract(hp, hb);
                }
                let base = bins.offsets[lo];
                let search = |side: Option<&Side>, h: &[Bin]| {
                    side.and_then(|s| {
                        let f = block_features(&s.features, lo, hi);
                        split::best_split(h, base, bins, f, s.total, s.count, scales, &sp)
                    })
                };
                (ji, search(j.a.as_ref(), hb), hp.and_then(|hp| search(j.sib.as_ref(), hp)))
            };
            let found: Vec<_> = if tasks.len() == 1 {
                tasks.into_iter().map(run).collect()
            } else {
                tasks.into_par_iter().map(run).collect()
            };
            // Tasks are in job order, blocks in feature order: fold each job's blocks in order.
            for (ji, a, b) in found {
                let r = &mut results[ji];
                *r = (split::better(r.0, a), split::better(r.1, b));
            }
        }
        for (j, (best_a, best_b)) in jobs.into_iter().zip(results) {
            leaves[j.small].best = best_a;
            if best_a.is_some() {
                leaves[j.small].hist = Some(j.buf);
            } else {
                self.free.push(j.buf);
            }
            if let Some(p) = j.parent {
                if j.subtract && best_b.is_some() {
                    leaves[j.large].best = best_b;
                    leaves[j.large].hist = Some(p);
                } else {
                    self.free.push(p);
                }
            }
        }
    }

    /// Gradients of each job's rows gathered into leaf order (`q_ord[begin..end]`), in
    /// parallel across jobs and, for large ones, across fixed row chunks.
    fn gather(&mut self, jobs: &[Job]) {
        let ranges: Vec<(usize, usize)> = jobs.iter().filter(|j| !j.identity).map(|j| (j.begin, j.end)).collect();
        if ranges.is_empty() {
            return;
        }
        let (q, indices) = (&self.q[..], &self.indices);
        let gather = |o: &mut [Packed], r: &[u32]| {
            for (k, (d, &i)) in o.iter_mut().zip(r).enumerate() {
                if let Some(&ahead) = r.get(k + histogram::PREFETCH_ROWS_LIGHT) {
                    histogram::prefetch(q.as_ptr().wrapping_add(ahead as usize));
                }
                *d = q[i as usize];
            }
        };
        let work: Vec<_> = disjoint_mut(&mut self.q_ord, &ranges).into_iter().zip(&ranges).collect();
        let one = |(o, &(b, e)): (&mut [Packed], &(usize, usize))| {
            let r = &indices[b..e];
            if e - b >= CHUNK {
                o.par_chunks_mut(CHUNK).zip(r.par_chunks(CHUNK)).for_each(|(o, r)| gather(o, r));
            } else {
                gather(o, r);
            }
        };
        if work.len() == 1 {
            work.into_iter().for_each(one);
        } else {
            work.into_par_iter().for_each(one);
        }
    }

    /// Build and search a large job: rows in STRIPES fixed stripes, each stripe's full
    /// histogram built by one task (every row's bins are read from memory once), then summed
    /// in stripe order per feature block. The stripe count and the switch depend only on the
    /// row count, never on the thread count, so results stay bit-identical.
    fn striped(&mut self, j: &Job) -> (Option<SplitInfo>, Option<SplitInfo>) {
        let bins = self.bins;
        let nu = bins.n_used();
        let n_rows = j.end - j.begin;
        let rows: Option<&[u32]> = if j.identity { None } else { Some(&self.indices[j.begin..j.end]) };
        let q_rows: &[Packed] = if j.identity { &self.q[j.begin..j.end] } else { &self.q_ord[j.begin..j.end] };
        let mut stripes = std::mem::take(&mut self.stripes);
        stripes.resize_with(STRIPES, || vec![0; bins.total_bins()]);
        stripes.par_iter_mut().enumerate().for_each(|(s, h)| {
            let (sb, se) = (s * n_rows / STRIPES, (s + 1) * n_rows / STRIPES);
            h.fill(0);
            histogram::build_range(
                bins,
                0,
                nu,
                rows.map(|r| &r[sb..se]),
                j.begin + sb,
                &q_rows[sb..se],
                h,
                Layout::Rows,
            );
        });
        let n_blocks = (2 * rayon::current_num_threads()).min(nu).max(1);
        let (built, parent) = match (j.subtract, j.parent) {
            (true, Some(p)) => {
                let (x, y) = two_mut(&mut self.pool, j.buf, p);
                (x.as_mut_slice(), Some(y.as_mut_slice()))
            }
            _ => (self.pool[j.buf].as_mut_slice(), None),
        };
        let tasks = feature_blocks(&bins.offsets, n_blocks, built, parent);
        let (sp, scales) = (self.sp, self.scales);
        let stripes_ref = &stripes;
        let run = |(lo, hi, hb, mut hp): Block<'_>| {
            let (base, len) = (bins.offsets[lo], hb.len());
            hb.copy_from_slice(&stripes_ref[0][base..base + len]);
            for st in &stripes_ref[1..] {
                for (d, v) in hb.iter_mut().zip(&st[base..base + len]) {
                    *d += v;
                }
            }
            if let Some(hp) = hp.as_deref_mut() {
                histogram::subtract(hp, hb);
            }
            let search = |side: Option<&Side>, h: &[Bin]| {
                side.and_then(|s| {
                    split::best_split(h, base, bins, block_features(&s.features, lo, hi), s.total, s.count, scales, &sp)
                })
            };
            (search(j.a.as_ref(), hb), hp.and_then(|hp| search(j.sib.as_ref(), hp)))
        };
        let results: Vec<_> = tasks.into_par_iter().map(run).collect();
        self.stripes = stripes;
        results.into_iter().fold((None, None), |acc, r| (split::better(acc.0, r.0), split::better(acc.1, r.1)))
    }

    /// Quantized sums over `indices[b..e]` (exact: any chunking gives the same integers).
    fn sum_rows(&self, b: usize, e: usize) -> Packed {
        let q = &self.q;
        self.indices[b..e].par_chunks(CHUNK).map(|c| c.iter().map(|&r| q[r as usize]).sum::<Packed>()).sum()
    }
}

fn two_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b);
    if a < b {
        let (lo, hi) = v.split_at_mut(b);
        (&mut lo[a], &mut hi[0])
    } else {
        let (lo, hi) = v.split_at_mut(a);
        (&mut hi[0], &mut lo[b])
    }
}

/// A feature block: used features `lo..hi`, its stretch of the built histogram and of the
/// parent's (when the parent becomes the sibling).
type Block<'b> = (usize, usize, &'b mut [Bin], Option<&'b mut [Bin]>);

/// Cut the used features (histogram `offsets`) into `n_blocks` even blocks and the two
/// histograms into the matching disjoint stretches.
fn feature_blocks<'b>(
    offsets: &[usize],
    n_blocks: usize,
    built: &'b mut [Bin],
    parent: Option<&'b mut [Bin]>,
) -> Vec<Block<'b>> {
    let nu = offsets.len() - 1;
    let (mut rest_b, mut rest_p) = (built, parent);
    (0..n_blocks)
        .map(|k| {
            let (lo, hi) = (k * nu / n_blocks, (k + 1) * nu / n_blocks);
            let len = offsets[hi] - offsets[lo];
            let (hb, tb) = std::mem::take(&mut rest_b).split_at_mut(len);
            rest_b = tb;
            let hp = rest_p.take().map(|p| {
                let (hp, tp) = p.split_at_mut(len);
                rest_p = Some(tp);
                hp
            });
            (lo, hi, hb, hp)
        })
        .collect()
}

/// Mutable views of the disjoint `ranges` of `v`, in the order given.
fn disjoint_mut<'v, T>(v: &'v mut [T], ranges: &[(usize, usize)]) -> Vec<&'v mut [T]> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| ranges[i].0);
    let mut out: Vec<Option<&'v mut [T]>> = (0..ranges.len()).map(|_| None).collect();
    let (mut rest, mut at) = (v, 0);
    for i in order {
        let (b, e) = ranges[i];
        assert!(b >= at && e >= b, "ranges overlap");
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(b - at);
        let (mine, tail) = tail.split_at_mut(e - b);
        out[i] = Some(mine);
        rest = tail;
        at = e;
    }
    out.into_iter().map(|s| s.expect("every range visited")).collect()
}

/// Stable partition of `idx` into rows going left then rows going right; returns the left count.
fn partition(
    idx: &mut [u32],
    scratch: &mut [u32],
    bins: &BinnedMatrix,
    j: usize,
    nan_bin: usize,
    thr: usize,
    default_left: bool,
) -> usize {
    let n = bins.n_rows;
    match &bins.cols {
        BinData::U8(d) => partition_by(idx, scratch, &d[j * n..(j + 1) * n], nan_bin, thr, default_left),
        BinData::U16(d) => partition_by(idx, scratch, &d[j * n..(j + 1) * n], nan_bin, thr, default_left),
    }
}

/// Partition by the bins `col` of the split feature (one entry per row).
fn partition_by<T: Copy + Into<usize> + Sync>(
    idx: &mut [u32],
    scratch: &mut [u32],
    col: &[T],
    nan_bin: usize,
    thr: usize,
    default_left: bool,
) -> usize {
    let go_left = |r: u32| {
        let b: usize = col[r as usize].into();
        if b == nan_bin { default_left } else { b <= thr }
    };
    // Each chunk writes its left rows forward and its right rows backward into its scratch slot.
    let split_chunk = |src: &[u32], dst: &mut [u32]| -> usize {
        let (mut l, mut r) = (0, dst.len());
        for (k, &i) in src.iter().enumerate() {
            if let Some(&ahead) = src.get(k + crate::gbdt::histogram::PREFETCH_ROWS_LIGHT) {
                crate::gbdt::histogram::prefetch(col.as_ptr().wrapping_add(ahead as usize));
            }
            // Branch-free: a split's direction is close to a coin flip per row, so a branch
            // here mispredicts half the time (a fifth of a 1M-row fit). Write the row to both
            // candidate slots and advance one cursor; `l < r` always holds here, and when
            // `l == r - 1` both writes hit the same slot with the same value.
            let left = go_left(i);
            dst[l] = i;
            dst[r - 1] = i;
            l += usize::from(left);
            r -= usize::from(!left);
        }
        l
    };
    // A stable partition has one possible result, so chunking cannot change it.
    let lefts: Vec<usize> = if idx.len() >= 2 * PART_CHUNK {
        idx.par_chunks(PART_CHUNK).zip(scratch.par_chunks_mut(PART_CHUNK)).map(|(s, d)| split_chunk(s, d)).collect()
    } else {
        vec![split_chunk(idx, scratch)]
    };
    let chunk = if lefts.len() == 1 { idx.len() } else { PART_CHUNK };
    let total_left: usize = lefts.iter().sum();
    let (mut lpos, mut rpos) = (0, total_left);
    for (c, &nl) in lefts.iter().enumerate() {
        let start = c * chunk;
        let len = chunk.min(idx.len() - start);
        let d = &scratch[start..start + len];
        idx[lpos..lpos + nl].copy_from_slice(&d[..nl]);
        lpos += nl;
        for &i in d[nl..].iter().rev() {
            idx[rpos] = i;
            rpos += 1;
        }
    }
    total_left
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn partition_is_stable_for_small_and_chunked_leaves() {
        for n in [100usize, 3 * PART_CHUNK + 17] {
            let x = Array2::from_shape_fn((n, 2), |(r, c)| ((r * (c + 5)) % 11) as f32);
            let bins = BinnedMatrix::fit(x.view(), 255, n + 1);
            let mut idx: Vec<u32> = (0..n as u32).filter(|r| r % 5 != 0).collect();
            let orig = idx.clone();
            let mut scratch = vec![0; idx.len()];
            let nl = partition(&mut idx, &mut scratch, &bins, 1, bins.mappers[1].nan_bin(), 4, false);
            let want_l: Vec<u32> = orig.iter().copied().filter(|&r| bins.get(r as usize, 1) <= 4).collect();
            let want_r: Vec<u32> = orig.iter().copied().filter(|&r| bins.get(r as usize, 1) > 4).collect();
            assert_eq!(nl, want_l.len());
            assert_eq!(&idx[..nl], &want_l[..]);
            assert_eq!(&idx[nl..], &want_r[..]);
        }
    }
}

//! The drift kernel's fast path: a lookup index over one reference's quantiles, and the KS
//! statistic and PSI of a recent column computed through it without sorting the column.
//!
//! The index cuts the central 98 % of the quantile range into [`CELLS`] equal cells and keeps,
//! per cell, how many quantiles lie in earlier cells. Because the cell of a value is a monotone
//! function of it (subtract, multiply by a positive scale, truncate, clamp: each monotone in
//! IEEE arithmetic), every quantile in an earlier cell is below the value and every quantile
//! in a later cell above it, so the count of quantiles ≤ the value (its *bucket*) needs only
//! the few quantiles inside its own cell: four branch-free comparisons, a binary search in the
//! rare wide cell (the tails).
//!
//! The KS statistic is the largest of the merge walk's candidates (see
//! `FeatureReference::ks_statistic`), and every candidate of the values in one bucket is
//! bounded by integers: with `lo`/`hi` the recent values below/through the bucket, F within
//! `[(b−1)/K, b/K]` there (K = quantiles − 1) and G within `[lo/m, hi/m]`. So the kernel
//! histograms the buckets, computes every bucket's bound, evaluates exactly only the buckets
//! whose bound can still beat the largest candidate found (about a quarter of the occupied
//! buckets for a 480-value window), with the walk's own expressions: the result is
//! bit-identical to sorting and walking. PSI comes from the same histogram when the PSI edges
//! are themselves quantiles (as the default 10 bins over 1,001 quantiles are).

/// Cells of the index (2 KB of `u16` per feature).
pub const CELLS: usize = 1024;

/// Quantiles compared branch-free per value (cells holding more use a binary search).
const WIDTH: usize = 4;

/// Slack on the pruning threshold, far above the few ulps by which a computed candidate can
/// exceed its exact integer bound (every quantity involved is ≤ 1).
const SLACK: f64 = 1e-12;

/// Lookup index over one reference's sorted quantiles.
#[derive(Debug, Clone)]
pub(crate) struct QuantileIndex {
    lo: f64,
    scale: f64,
    /// `start[c]`: quantiles in cells before `c` (`CELLS + 1` entries).
    start: Vec<u16>,
    /// Per PSI edge, the quantiles strictly below it, when every edge is a quantile.
    psi_below: Option<Vec<u16>>,
}

impl QuantileIndex {
    /// The index of ascending, finite `quantiles` (none for fewer than two or more than
    /// `u16::MAX − 1`, or unsorted or non-finite ones: the caller then sorts and walks).
    pub(crate) fn build(quantiles: &[f64], psi_edges: &[f64]) -> Option<Self> {
        let nq = quantiles.len();
        if !(2..u16::MAX as usize).contains(&nq)
            || quantiles.iter().any(|v| !v.is_finite())
            || quantiles.windows(2).any(|w| w[0] > w[1])
        {
            return None;
        }
        // The central 98 %: outliers in the tails would otherwise stretch every cell.
        let k = nq / 100;
        let (a, b) = (quantiles[k], quantiles[nq - 1 - k]);
        let scale = if b > a { CELLS as f64 / (b - a) } else { 0.0 };
        let mut ix = QuantileIndex { lo: a, scale, start: vec![0; CELLS + 1], psi_below: None };
        for &v in quantiles {
            let c = ix.cell(v);
            ix.start[c + 1] += 1;
        }
        for c in 0..CELLS {
            ix.start[c + 1] += ix.start[c];
        }
        // A value is below an edge that is a quantile iff at most the quantiles below the edge
        // are ≤ the value.
        ix.psi_below = psi_edges
            .iter()
            .map(|&e| {
                let p = quantiles.partition_point(|&v| v < e);
                (p < nq && quantiles[p] == e).then_some(p as u16)
            })
            .collect();
        Some(ix)
    }

    /// Ask the cache for `q` and this index ahead of use: the kernel reads both at random
    /// places, so a column checked while the next one's lines arrive waits on no memory.
    pub(crate) fn prefetch(&self, q: &[f64]) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let lines = |p: *const i8, bytes: usize| {
                for off in (0..bytes).step_by(64) {
                    // SAFETY: SSE is part of the x86_64 baseline; a prefetch is a hint that never
                    // faults, whatever the address (wrapping_add does not dereference).
                    unsafe { _mm_prefetch(p.wrapping_add(off), _MM_HINT_T0) };
                }
            };
            lines(q.as_ptr().cast(), std::mem::size_of_val(q));
            lines(self.start.as_ptr().cast(), std::mem::size_of_val(&self.start[..]));
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = q;
    }

    /// The cell of `y` (monotone in `y`; NaN cannot occur for finite inputs except as
    /// 0 × ∞ at the lower end, where it truncates to cell 0 like its neighbours).
    #[inline(always)]
    fn cell(&self, y: f64) -> usize {
        (((y - self.lo) * self.scale) as usize).min(CELLS - 1)
    }

    /// Histogram the finite values of `col` by bucket (quantiles ≤ the value) into
    /// `scratch`; returns how many were finite.
    #[inline(always)]
    fn bucket(&self, q: &[f64], col: &[f64], s: &mut Scratch) -> usize {
        // Three passes, so no value waits on the one before: keep the finite values, their
        // cells (independent arithmetic, vectorised), then the lookups.
        s.vals.clear();
        s.vals.extend(col.iter().copied().filter(|v| v.is_finite()));
        let n = s.vals.len();
        s.buckets.clear();
        s.buckets.extend(s.vals.iter().map(|&v| self.cell(v) as u16));
        s.hist.clear();
        s.hist.resize(q.len() + 1, 0);
        let (vals, buckets, hist) = (&s.vals[..], &mut s.buckets[..], &mut s.hist[..]);
        let start = &self.start[..];
        for (&v, cb) in vals.iter().zip(buckets.iter_mut()) {
            let c = *cb as usize;
            let (lo, hi) = (start[c] as usize, start[c + 1] as usize);
            let b = if hi - lo <= WIDTH && lo + WIDTH <= q.len() {
                // Quantiles past the cell are > v, so counting a fixed four is exact.
                let w = &q[lo..lo + WIDTH];
                lo + (w[0] <= v) as usize + (w[1] <= v) as usize + (w[2] <= v) as usize + (w[3] <= v) as usize
            } else {
                lo + q[lo..hi].partition_point(|&t| t <= v)
            };
            *cb = b as u16;
            hist[b] += 1;
        }
        n
    }
}

/// Reusable buffers of the kernel (one per drift check, not per column).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    vals: Vec<f64>,
    buckets: Vec<u16>,
    hist: Vec<u32>,
    cum: Vec<f64>,
    bound: Vec<f64>,
    group: Vec<f64>,
}

/// KS statistic, finite count and (where the index allows) PSI counts of one column.
pub(crate) struct ColumnStats {
    /// KS statistic against the reference.
    pub d: f64,
    /// Finite recent values.
    pub n: usize,
    /// Recent values per PSI bin, when the PSI edges are quantiles.
    pub psi_counts: Option<Vec<usize>>,
}

/// The statistics of `col` against quantiles `q` through index `ix` (compiled for AVX2 too,
/// picked at run time; no fused multiply-add, so both give the same bits).
pub(crate) fn column_stats(q: &[f64], ix: &QuantileIndex, col: &[f64], s: &mut Scratch) -> ColumnStats {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { column_stats_avx2(q, ix, col, s) };
    }
    column_stats_body(q, ix, col, s)
}

/// [`column_stats_body`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn column_stats_avx2(q: &[f64], ix: &QuantileIndex, col: &[f64], s: &mut Scratch) -> ColumnStats {
    column_stats_body(q, ix, col, s)
}

#[inline(always)]
fn column_stats_body(q: &[f64], ix: &QuantileIndex, col: &[f64], s: &mut Scratch) -> ColumnStats {
    let nq = q.len();
    let n = ix.bucket(q, col, s);
    if n == 0 {
        return ColumnStats { d: 0.0, n, psi_counts: None };
    }
    let (m, k) = (n as f64, (nq - 1) as f64);
    // Values below each bucket, as exact f64 integers (cum[b]; cum[nq + 1] = n).
    s.cum.clear();
    s.cum.resize(nq + 2, 0.0);
    let mut c = 0u32;
    for (slot, &h) in s.cum.iter_mut().zip(&s.hist) {
        *slot = c as f64;
        c += h;
    }
    s.cum[nq + 1] = c as f64;
    // Each occupied bucket's bound on its candidates, scaled by m·K (exact integers):
    // max(hi·K − fmin·m, fmax·m − lo·K) with F ∈ [fmin/K, fmax/K] in the bucket.
    s.bound.clear();
    s.bound.resize(nq + 1, f64::NEG_INFINITY);
    let (cum, bound) = (&s.cum[..], &mut s.bound[..]);
    for b in 1..nq {
        let (lo, hi, bf) = (cum[b], cum[b + 1], b as f64);
        let u = (hi * k - (bf - 1.0) * m).max(bf * m - lo * k);
        bound[b] = if hi > lo { u } else { f64::NEG_INFINITY };
    }
    for (b, f) in [(0, 0.0), (nq, k)] {
        let (lo, hi) = (cum[b], cum[b + 1]);
        let u = (hi * k - f * m).max(f * m - lo * k);
        bound[b] = if hi > lo { u } else { f64::NEG_INFINITY };
    }
    let first = argmax(bound);
    let mut d = bucket_candidates(q, first, cum[first] as usize, m, s, 0.0);
    // Then every bucket whose bound can still beat d, eight bounds per test (most chunks
    // hold none: one vector compare instead of eight branches).
    let mut threshold = (d - SLACK) * m * k;
    const CHUNK: usize = 8;
    for c in 0..s.bound.len().div_ceil(CHUNK) {
        let range = c * CHUNK..((c + 1) * CHUNK).min(s.bound.len());
        if !s.bound[range.clone()].iter().fold(false, |any, &u| any | (u > threshold)) {
            continue;
        }
        for b in range {
            if b != first && s.bound[b] > threshold {
                d = bucket_candidates(q, b, s.cum[b] as usize, m, s, d);
                threshold = (d - SLACK) * m * k;
            }
        }
    }
    let psi_counts = ix.psi_below.as_ref().map(|edges| {
        let mut below = 0;
        let mut counts: Vec<usize> = edges
            .iter()
            .map(|&e| {
                let upto = s.cum[e as usize + 1] as usize;
                let c = upto - below;
                below = upto;
                c
            })
            .collect();
        counts.push(n - below);
        counts
    });
    ColumnStats { d, n, psi_counts }
}

/// Index of the first largest of `v` (non-empty, no NaN), with four independent running
/// maxima (a vector max) before one scan for the position.
#[inline(always)]
fn argmax(v: &[f64]) -> usize {
    let mut acc = [f64::NEG_INFINITY; 4];
    let chunks = v.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &u) in acc.iter_mut().zip(c) {
            *a = if u > *a { u } else { *a };
        }
    }
    let best = tail.iter().chain(&acc).fold(f64::NEG_INFINITY, |a, &u| if u > a { u } else { a });
    v.iter().position(|&u| u == best).unwrap_or(0)
}

/// The largest of `d` and the merge walk's candidates for the values in bucket `b` (whose
/// ranks start at `lo`), computed with the walk's expressions.
fn bucket_candidates(q: &[f64], b: usize, lo: usize, m: f64, s: &mut Scratch, mut d: f64) -> f64 {
    let group = &mut s.group;
    group.clear();
    group.extend(s.vals.iter().zip(&s.buckets).filter(|(_, bb)| **bb as usize == b).map(|(v, _)| *v));
    group.sort_unstable_by(f64::total_cmp);
    let mut i = 0;
    while i < group.len() {
        let x = group[i];
        let g_left = (lo + i) as f64 / m;
        while i < group.len() && group[i] <= x {
            i += 1;
        }
        d = group_candidates(q, b, x, g_left, (lo + i) as f64 / m, d);
    }
    d
}

/// The merge walk's candidates for one group of equal recent values `x`, folded into `d`:
/// the recent ECDF G is `g_left` just below `x` and `g` at it, and `upto` quantiles are ≤ `x`.
/// Between two recent values G is flat and the reference F does not fall, so F − G is
/// largest just below a recent value and G − F at it. Shared by the sort-and-walk path and
/// the index kernel, so both give the same bits.
pub(crate) fn group_candidates(q: &[f64], upto: usize, x: f64, g_left: f64, g: f64, mut d: f64) -> f64 {
    let nq = q.len();
    let step = 1.0 / (nq - 1) as f64;
    // Quantiles < x: fewer only where quantiles tie at x (a point mass).
    let mut below = upto;
    while below > 0 && q[below - 1] == x {
        below -= 1;
    }
    let tie = upto > below;
    if tie {
        // Just below x: quantiles equal to x are a jump of the reference ECDF.
        d = d.max(below as f64 * step - g_left);
    }
    // F(x) lies in [(upto − 1)·step, upto·step] (0 or 1 off the ends); interpolate only when
    // a gap could beat d (rarely, once d has grown). Rounding is monotone, so the skipped
    // values really are ≤ d and the result is unchanged.
    let (f_min, f_max) = match upto {
        0 => (0.0, 0.0),
        u if u == nq => (1.0, 1.0),
        u => ((u - 1) as f64 * step, u as f64 * step),
    };
    if g - f_min > d || (!tie && f_max - g_left > d) {
        let f = if upto == 0 || upto == nq {
            f_min
        } else {
            // q[upto − 1] ≤ x < q[upto]: interpolate between the two quantile points.
            let (lo, hi) = (q[upto - 1], q[upto]);
            ((upto - 1) as f64 + (x - lo) / (hi - lo)) * step
        };
        d = d.max(g - f);
        if !tie {
            d = d.max(f - g_left);
        }
    }
    d
}

/// A reference's index, built once on first use; never compared, printed or saved (it is
/// derived from the reference's own fields, which cannot change after construction).
#[derive(Clone, Default)]
pub(crate) struct IndexSlot(std::sync::OnceLock<Option<QuantileIndex>>);

impl IndexSlot {
    /// The index of `quantiles`, building it on the first call.
    pub(crate) fn get_or_build(&self, quantiles: &[f64], psi_edges: &[f64]) -> Option<&QuantileIndex> {
        self.0.get_or_init(|| QuantileIndex::build(quantiles, psi_edges)).as_ref()
    }
}

impl PartialEq for IndexSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for IndexSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "IndexSlot(built)" } else { "IndexSlot(empty)" })
    }
}

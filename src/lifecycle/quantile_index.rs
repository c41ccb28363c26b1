//! The drift kernel's fast path: a lookup index over one reference's quantiles, and the KS
//! statistic and PSI of a recent column computed through it without sorting the column.
//!
//! The index cuts a range of the quantiles (see below) into [`CELLS`] equal cells and keeps,
//! per cell, how many quantiles lie in earlier cells. Because the cell of a value is a monotone
//! function of it (subtract, multiply by a positive scale, clamp, truncate: each monotone in
//! IEEE arithmetic), every quantile in an earlier cell is below the value and every quantile
//! in a later cell above it, so the count of quantiles ≤ the value (its *bucket*) needs only
//! the few quantiles inside its own cell: eight compared in one vector instruction, a binary
//! search in the rare fuller cell. The compares use a 32-bit key per quantile, its cell and
//! its position inside the cell (the same monotone arithmetic, continued), not the quantile
//! itself: a key below or above the value's decides, and only an equal key (a tie, or 1 in
//! 65,536) reads the f64 quantiles. Keys of later cells are above the value's, so the fixed
//! eight need no mask. The range the cells cover is chosen per reference (the whole range,
//! or a central part when the tails are long) to keep the cells within eight quantiles.
//!
//! The KS statistic is the largest of the merge walk's candidates (see
//! `FeatureReference::ks_statistic`), and every candidate of the values in one bucket is
//! bounded by integers: with `lo`/`hi` the recent values below/through the bucket, F within
//! `[(b−1)/K, b/K]` there (K = quantiles − 1) and G within `[lo/m, hi/m]`. So the kernel
//! histograms the buckets, computes every bucket's bound, evaluates exactly only the buckets
//! whose bound can still beat the largest candidate found (one or two for a 480-value window
//! against 1,001 quantiles), with the walk's own expressions: the result is
//! bit-identical to sorting and walking. PSI comes from the same histogram when the PSI edges
//! are themselves quantiles (as the default 10 bins over 1,001 quantiles are).

/// Cells of the index (2 KB of `u16` starts per feature, beside 4 KB of keys).
pub const CELLS: usize = 1024;

/// Most values in one column the kernel takes (its counts are i32 in the vector passes);
/// a longer one is sorted and walked.
pub(crate) const MAX_VALUES: usize = i32::MAX as usize;

/// Quantiles compared branch-free per value (cells holding more use a binary search).
const WIDTH: usize = 8;

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
    /// Per quantile, its key ([`QuantileIndex::key`]), then `WIDTH` pads above every key so
    /// the fixed-width read never runs off the end.
    keys: Vec<u32>,
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
        // The range the cells cover: the whole of it, or a central part when outliers in the
        // tails would stretch every cell. Whichever costs least for values distributed like
        // the reference (each quantile gap carries the same mass, so a cell is hit in
        // proportion to its quantiles): one vector compare in a cell of at most `WIDTH`, a
        // binary search in a fuller one. Any choice gives the same, exact, buckets.
        let mut best = (usize::MAX, 0.0, 0.0);
        let mut occupancy = vec![0u16; CELLS];
        for k in [0, nq / 1000, nq / 200, nq / 100, nq / 20] {
            let (a, b) = (quantiles[k], quantiles[nq - 1 - k]);
            let scale = if b > a { CELLS as f64 / (b - a) } else { 0.0 };
            occupancy.fill(0);
            for &v in quantiles {
                occupancy[(key(a, scale, v) >> 16) as usize] += 1;
            }
            let cost: usize = occupancy
                .iter()
                .map(|&w| match w as usize {
                    w if w <= WIDTH => w * 4,
                    w => w * (12 + 4 * w.ilog2() as usize),
                })
                .sum();
            if cost < best.0 {
                best = (cost, a, scale);
            }
        }
        let (_, lo, scale) = best;
        let mut ix = QuantileIndex {
            lo,
            scale,
            start: vec![0; CELLS + 1],
            keys: Vec::with_capacity(nq + WIDTH),
            psi_below: None,
        };
        for &v in quantiles {
            let key = ix.key(v);
            ix.start[(key >> 16) as usize + 1] += 1;
            ix.keys.push(key);
        }
        ix.keys.extend([u32::MAX; WIDTH]);
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

    /// Ask the cache for this index ahead of use: the kernel reads it at random places, so a
    /// column checked while the next one's lines arrive waits on no memory.
    pub(crate) fn prefetch(&self) {
        prefetch(&self.keys[..]);
        prefetch(&self.start[..]);
    }

    /// The key of `y` ([`key`] with this index's range).
    #[inline(always)]
    fn key(&self, y: f64) -> u32 {
        key(self.lo, self.scale, y)
    }

    /// Histogram the finite values of `col` by bucket (quantiles ≤ the value) into
    /// `scratch`; returns how many were finite.
    #[inline(always)]
    fn bucket(&self, q: &[f64], col: &[f64], s: &mut Scratch) -> usize {
        // Three passes, so no value waits on the one before: keep the finite values, their
        // keys (independent arithmetic, vectorised), then the lookups.
        s.vals.clear();
        if col.iter().fold(true, |all, v| all & v.is_finite()) {
            // The usual column: a copy, no test per value.
            s.vals.extend_from_slice(col);
        } else {
            // Without a branch per value (where NaN occurs it is unpredictable).
            s.vals.resize(col.len(), 0.0);
            let mut n = 0;
            let vals = &mut s.vals[..];
            for &v in col {
                vals[n] = v;
                n += v.is_finite() as usize;
            }
            s.vals.truncate(n);
        }
        let n = s.vals.len();
        s.vkeys.clear();
        s.vkeys.resize(n, 0);
        for (&v, key) in s.vals.iter().zip(s.vkeys.iter_mut()) {
            *key = self.key(v);
        }
        s.buckets.clear();
        s.buckets.resize(n, 0);
        s.hist.clear();
        s.hist.resize(q.len() + 1, 0);
        let (vals, buckets, hist) = (&s.vals[..], &mut s.buckets[..], &mut s.hist[..]);
        let (start, keys) = (&self.start[..], &self.keys[..]);
        for ((&v, &vk), cb) in vals.iter().zip(&s.vkeys).zip(buckets.iter_mut()) {
            let c = (vk >> 16) as usize;
            let (lo, hi) = (start[c] as usize, start[c + 1] as usize);
            // Quantiles in earlier cells are below v, in later ones above (so are their keys,
            // and the pads): only this cell's count, from the keys, unless one equals v's
            // (then the quantiles decide).
            let within = if hi - lo <= WIDTH {
                // A fixed-size window: one vector compare of eight keys.
                let k: &[u32; WIDTH] = keys[lo..lo + WIDTH].try_into().expect("WIDTH keys");
                let below = k.iter().map(|&x| (x < vk) as usize).sum::<usize>();
                let tie = k.iter().fold(false, |t, &x| t | (x == vk));
                if tie { q[lo..hi].partition_point(|&t| t <= v) } else { below }
            } else {
                q[lo..hi].partition_point(|&t| t <= v)
            };
            let b = lo + within;
            *cb = b as u16;
            hist[b] += 1;
        }
        n
    }
}

/// Ask the cache for every line of `data` (a hint: the next column's values and index load
/// while this one is checked).
pub(crate) fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
        let p: *const i8 = data.as_ptr().cast();
        for off in (0..std::mem::size_of_val(data)).step_by(64) {
            // SAFETY: SSE is part of the x86_64 baseline; a prefetch is a hint that never
            // faults, whatever the address (wrapping_add does not dereference).
            unsafe { _mm_prefetch(p.wrapping_add(off), _MM_HINT_T1) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// The key of `y` for cells starting at `lo`, `scale` cells per unit: its cell (high 16
/// bits) and its position inside the cell (low 16), monotone in `y`. The position
/// `t = (y − lo)·scale`, clamped to `[0, CELLS)`, is; its truncation to a cell is; and so is
/// `(t − cell)·65,536` truncated (`t − cell` is exact and below 1). So a smaller key means a
/// smaller `y`, and an equal key decides nothing (below the first cell and past the last
/// everything shares one key; a zero scale, or a NaN from ∞ × 0, maps to key 0).
#[inline(always)]
fn key(lo: f64, scale: f64, y: f64) -> u32 {
    // The largest f64 below CELLS.
    const TOP: f64 = CELLS as f64 * (1.0 - f64::EPSILON / 2.0);
    let t = (y - lo) * scale;
    // Compare-and-select (NaN fails the compare and becomes 0): two vector instructions.
    let t = if t > 0.0 { t } else { 0.0 };
    let t = if t < TOP { t } else { TOP };
    // SAFETY: t is finite and in [0, CELLS), so both conversions are in range of i32.
    let c = unsafe { t.to_int_unchecked::<i32>() };
    let within = unsafe { ((t - c as f64) * 65536.0).to_int_unchecked::<i32>() };
    ((c << 16) | within) as u32
}

/// Reusable buffers of the kernel (one per drift check, not per column).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    vals: Vec<f64>,
    buckets: Vec<u16>,
    vkeys: Vec<u32>,
    hist: Vec<u32>,
    cum: Vec<u32>,
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
    // Values below each bucket (cum[b]; cum[nq + 1] = n).
    // Every entry of cum and bound is written below: sized, not cleared (no fill to redo).
    s.cum.resize(nq + 2, 0);
    let mut c = 0u32;
    for (slot, &h) in s.cum.iter_mut().zip(&s.hist) {
        *slot = c;
        c += h;
    }
    s.cum[nq + 1] = c;
    // Each occupied bucket's bound on its candidates, scaled by m·K (exact integers):
    // max(hi·K − fmin·m, fmax·m − lo·K) with F ∈ [fmin/K, fmax/K] in the bucket.
    s.bound.resize(nq + 1, f64::NEG_INFINITY);
    let (cum, bound) = (&s.cum[..], &mut s.bound[..]);
    for b in 1..nq {
        // i32 → f64 and compare-and-select vectorise; usize → f64 and f64::max do not (the
        // counts are of one column's values: below 2³¹, see MAX_VALUES).
        let (lo, hi, bf) = (cum[b] as i32 as f64, cum[b + 1] as i32 as f64, b as i32 as f64);
        let (x, y) = (hi * k - (bf - 1.0) * m, bf * m - lo * k);
        let u = if x > y { x } else { y };
        bound[b] = if hi > lo { u } else { f64::NEG_INFINITY };
    }
    for (b, f) in [(0, 0.0), (nq, k)] {
        let (lo, hi) = (cum[b] as f64, cum[b + 1] as f64);
        let u = (hi * k - f * m).max(f * m - lo * k);
        bound[b] = if hi > lo { u } else { f64::NEG_INFINITY };
    }
    let first = argmax(bound);
    let mut d = bucket_candidates(q, first, cum[first] as usize, m, s, 0.0);
    // Then every bucket whose bound can still beat d, eight bounds per test (most chunks
    // hold none: the chunk's maximum, a vector reduction, instead of eight branches).
    let mut threshold = (d - SLACK) * m * k;
    const CHUNK: usize = 8;
    for c in 0..s.bound.len().div_ceil(CHUNK) {
        let range = c * CHUNK..((c + 1) * CHUNK).min(s.bound.len());
        if max_of(&s.bound[range.clone()]) <= threshold {
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
    let best = max_of(tail).max(max_of(&acc));
    // Eight at a time to the chunk holding it (a vector reduction per chunk, not a branch per
    // element), then the position inside it.
    let chunk = v.chunks(8).position(|c| max_of(c) == best).unwrap_or(0);
    chunk * 8 + v[chunk * 8..].iter().position(|&u| u == best).unwrap_or(0)
}

/// The largest of `v` (−∞ when empty; no NaN), by compare-and-select, which vectorises.
#[inline(always)]
fn max_of(v: &[f64]) -> f64 {
    v.iter().fold(f64::NEG_INFINITY, |a, &u| if u > a { u } else { a })
}

/// The largest of `d` and the merge walk's candidates for the values in bucket `b` (whose
/// ranks start at `lo`), computed with the walk's expressions.
fn bucket_candidates(q: &[f64], b: usize, lo: usize, m: f64, s: &mut Scratch, mut d: f64) -> f64 {
    let group = &mut s.group;
    group.clear();
    // Sixteen bucket numbers per test (one vector compare; a bucket holds a value or two of
    // hundreds), then the matches inside the chunks that have any.
    let b16 = b as u16;
    for (vals, buckets) in s.vals.chunks(16).zip(s.buckets.chunks(16)) {
        if buckets.iter().fold(false, |any, &x| any | (x == b16)) {
            group.extend(vals.iter().zip(buckets).filter(|(_, x)| **x == b16).map(|(v, _)| *v));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn keys_never_order_values_the_wrong_way() {
        let mut rng = Rng::new(41);
        let quantiles: Vec<f64> = {
            let mut v: Vec<f64> = (0..1001).map(|_| rng.normal()).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let ix = QuantileIndex::build(&quantiles, &[]).unwrap();
        // Neighbours one ulp apart, values far outside the central range and cell edges.
        let mut xs: Vec<f64> = (0..20_000).map(|_| 3.0 * rng.normal()).collect();
        xs.extend(quantiles.iter().flat_map(|&q| [q, q.next_down(), q.next_up()]));
        xs.extend((0..=CELLS).map(|c| ix.lo + c as f64 / ix.scale));
        xs.extend([-1e300, -1e9, 1e9, 1e300, f64::MIN, f64::MAX, 0.0, -0.0]);
        xs.sort_by(f64::total_cmp);
        for w in xs.windows(2) {
            assert!(
                ix.key(w[0]) <= ix.key(w[1]),
                "{} ≤ {} but key {:#x} > {:#x}",
                w[0],
                w[1],
                ix.key(w[0]),
                ix.key(w[1])
            );
        }
        assert!(ix.keys[..quantiles.len()].iter().all(|&k| k < u32::MAX), "pads are above every key");
        // A zero-width range puts everything in one cell with one key: ties, decided exactly.
        let flat = QuantileIndex::build(&[2.0; 5], &[]).unwrap();
        assert_eq!(flat.key(-7.0), flat.key(9.0));
    }
}

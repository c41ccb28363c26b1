//! Gradient histograms: per used feature and bin, the sums of gradient and hessian of a leaf's
//! rows. This is the hot loop of training.
//!
//! Rows are visited in leaf order with their gradients already gathered into a contiguous
//! buffer; each row's bins for a block of features are read together (row-major bins), so a
//! row costs one gradient load and one short byte run. Parallelism splits the *features* into
//! blocks, one task each: every bin is summed by exactly one task in row order, so histograms
//! are bit-identical whatever the number of threads, and no per-thread copies need merging.
//! The sibling of a built child is never built: it is the parent minus the child.

use rayon::prelude::*;

use crate::gbdt::binning::{BinData, BinnedMatrix};

/// One histogram entry: `[sum of gradients, sum of hessians]`.
pub type Bin = [f64; 2];

/// Below this many row×feature updates a histogram is built on one thread (task overhead wins).
const PARALLEL_MIN_WORK: usize = 1 << 16;

/// Fill `hist` (zeroed here) with the sums over `rows` (or all rows when `None`); `gh[i]` is the
/// gradient pair of the i-th listed row.
pub fn build(bins: &BinnedMatrix, rows: Option<&[u32]>, gh: &[[f32; 2]], hist: &mut [Bin]) {
    hist.fill([0.0; 2]);
    let nu = bins.n_used();
    let n_rows = rows.map_or(bins.n_rows, |r| r.len());
    if nu == 0 || n_rows == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    let n_blocks = if n_rows * nu < PARALLEL_MIN_WORK || threads == 1 { 1 } else { (threads * 2).min(nu) };
    // Feature blocks own disjoint, contiguous histogram ranges.
    let mut blocks: Vec<(usize, usize, &mut [Bin])> = Vec::with_capacity(n_blocks);
    let mut rest = hist;
    let mut consumed = 0;
    for b in 0..n_blocks {
        let lo = b * nu / n_blocks;
        let hi = (b + 1) * nu / n_blocks;
        let len = bins.offsets[hi] - bins.offsets[lo];
        let (head, tail) = rest.split_at_mut(len);
        debug_assert_eq!(consumed, bins.offsets[lo]);
        consumed += len;
        blocks.push((lo, hi, head));
        rest = tail;
    }
    let run = |(lo, hi, h): (usize, usize, &mut [Bin])| build_range(bins, lo, hi, rows, 0, gh, h);
    if n_blocks == 1 {
        blocks.into_iter().for_each(run);
    } else {
        blocks.into_par_iter().for_each(run);
    }
}

/// Fill the histogram block of used features `lo..hi` (`hist` starts at `offsets[lo]`; it must
/// be zeroed by the caller) from `rows` (when `None`: the consecutive rows starting at
/// `first_row`, one per entry of `gh`) with gathered gradients `gh`.
#[allow(clippy::too_many_arguments)]
pub fn build_range(
    bins: &BinnedMatrix,
    lo: usize,
    hi: usize,
    rows: Option<&[u32]>,
    first_row: usize,
    gh: &[[f32; 2]],
    hist: &mut [Bin],
) {
    let nu = bins.n_used();
    match &bins.data {
        BinData::U8(d) => build_block(d, nu, &bins.offsets, lo, hi, rows, first_row, gh, hist),
        BinData::U16(d) => build_block(d, nu, &bins.offsets, lo, hi, rows, first_row, gh, hist),
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn build_block<T: Copy + Into<usize>>(
    data: &[T],
    nu: usize,
    offsets: &[usize],
    lo: usize,
    hi: usize,
    rows: Option<&[u32]>,
    first_row: usize,
    gh: &[[f32; 2]],
    hist: &mut [Bin],
) {
    let base = offsets[lo];
    let offs: Vec<usize> = offsets[lo..hi].iter().map(|o| o - base).collect();
    let width = hi - lo;
    let mut add = |r: usize, g: [f32; 2]| {
        let row = &data[r * nu + lo..r * nu + lo + width];
        let (g, h) = (g[0] as f64, g[1] as f64);
        for (&o, &b) in offs.iter().zip(row) {
            let k = o + b.into();
            // SAFETY: `b` is a bin of this feature (≤ its NaN bin), so `o + b` lies inside the
            // block's histogram range by construction of `offsets`.
            let e = unsafe { hist.get_unchecked_mut(k) };
            e[0] += g;
            e[1] += h;
        }
    };
    match rows {
        None => {
            for (i, &g) in gh.iter().enumerate() {
                add(first_row + i, g);
            }
        }
        Some(rows) => {
            for (&r, &g) in rows.iter().zip(gh) {
                add(r as usize, g);
            }
        }
    }
}

/// `parent -= child`, turning the parent's histogram into the sibling's.
pub fn subtract(parent: &mut [Bin], child: &[Bin]) {
    for (p, c) in parent.iter_mut().zip(child) {
        p[0] -= c[0];
        p[1] -= c[1];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn naive(bins: &BinnedMatrix, rows: &[u32], gh_full: &[[f32; 2]]) -> Vec<Bin> {
        let mut h = vec![[0.0; 2]; bins.total_bins()];
        for &r in rows {
            for j in 0..bins.n_used() {
                let k = bins.offsets[j] + bins.get(r as usize, j);
                h[k][0] += gh_full[r as usize][0] as f64;
                h[k][1] += gh_full[r as usize][1] as f64;
            }
        }
        h
    }

    #[test]
    fn matches_naive_sums_for_any_thread_count_and_subtraction_gives_sibling() {
        let n = 5000;
        let x = Array2::from_shape_fn((n, 7), |(r, c)| {
            ((r * (c + 3)) % 97) as f32 + if r % 13 == c { f32::NAN } else { 0.0 }
        });
        let bins = BinnedMatrix::fit(x.view(), 32, 100_000, 1);
        let gh: Vec<[f32; 2]> = (0..n).map(|r| [((r % 17) as f32 - 8.0) * 0.1, 0.25 + (r % 5) as f32 * 0.1]).collect();
        let all: Vec<u32> = (0..n as u32).collect();
        let some: Vec<u32> = (0..n as u32).filter(|r| r % 3 == 1).collect();
        let gh_some: Vec<[f32; 2]> = some.iter().map(|&r| gh[r as usize]).collect();
        let mut reference = None;
        for threads in [1, 2, 4] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut h_all = vec![[0.0; 2]; bins.total_bins()];
            let mut h_some = vec![[0.0; 2]; bins.total_bins()];
            pool.install(|| {
                build(&bins, None, &gh, &mut h_all);
                build(&bins, Some(&some), &gh_some, &mut h_some);
            });
            assert_eq!(h_all, naive(&bins, &all, &gh));
            assert_eq!(h_some, naive(&bins, &some, &gh));
            let rest: Vec<u32> = (0..n as u32).filter(|r| r % 3 != 1).collect();
            subtract(&mut h_all, &h_some);
            let sib = naive(&bins, &rest, &gh);
            for (a, b) in h_all.iter().zip(&sib) {
                assert!((a[0] - b[0]).abs() < 1e-9 && (a[1] - b[1]).abs() < 1e-9);
            }
            match &reference {
                None => reference = Some(h_all),
                Some(r) => assert_eq!(r, &h_all, "thread count changed the histogram"),
            }
        }
    }
}

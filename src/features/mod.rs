//! Causal technical features computed from [`Bars`].
//!
//! A [`FeatureSpec`] lists indicators; [`compute`] evaluates them over one symbol's bars and
//! [`compute_many`] over several symbols (in parallel, inside the caller's rayon pool). The
//! result is a [`FeatureFrame`]: column-major `f64` columns plus per-row symbol and time.
//! Every value at bar t depends on bars <= t only, and the leading warm-up rows (where some
//! indicator has not enough history yet) are reported per symbol, never passed off as data.

pub mod calendar;
pub mod labels;
pub mod momentum;
pub mod spec;
pub mod talib;
pub mod trend;
pub mod volatility;
pub mod volume;

pub use labels::{LabelSpec, Labels};
pub use spec::{Feature, FeatureSpec};

use crate::data::Bars;
use crate::error::Result;
use rayon::prelude::*;

/// A vector of `n` NaNs: the warm-up fill of every kernel.
pub(crate) fn nan_vec(n: usize) -> Vec<f64> {
    let mut v = output_vec(n);
    v.resize(n, f64::NAN);
    v
}

/// An empty vector with room for `n` values, for kernel outputs.
///
/// Large outputs are advised to use transparent huge pages before first touch (as numpy
/// does for arrays of 4 MiB and more): a 1M-bar column otherwise costs ~2,000 page faults,
/// which on virtual machines took longer than computing the indicator.
pub(crate) fn output_vec(n: usize) -> Vec<f64> {
    let v: Vec<f64> = Vec::with_capacity(n);
    #[cfg(target_os = "linux")]
    advise_huge_pages(v.as_ptr() as usize, n * std::mem::size_of::<f64>());
    v
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(addr: usize, bytes: usize) {
    const MIN_BYTES: usize = 4 << 20;
    const PAGE: usize = 4096;
    if bytes < MIN_BYTES {
        return;
    }
    let start = addr.next_multiple_of(PAGE);
    let len = (addr + bytes).saturating_sub(start) / PAGE * PAGE;
    // SAFETY: `start..start + len` lies inside an allocation we own and have not handed
    // out; MADV_HUGEPAGE is advisory and never changes the memory's contents or validity.
    // A failure (THP disabled, old kernel) only means ordinary pages, so it is ignored.
    unsafe {
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
}

/// True range of a bar given the previous close (TA-Lib's `TRUE_RANGE` macro, same order).
#[inline]
pub(crate) fn true_range(high: f64, low: f64, prev_close: f64) -> f64 {
    let mut out = high - low;
    let a = (high - prev_close).abs();
    if a > out {
        out = a;
    }
    let b = (low - prev_close).abs();
    if b > out {
        out = b;
    }
    out
}

/// One symbol's block of rows inside a [`FeatureFrame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Symbol of these rows.
    pub symbol: String,
    /// First row of the block in the frame.
    pub start: usize,
    /// Number of rows.
    pub len: usize,
    /// Leading rows of the block in which at least one column is still warming up.
    pub warmup: usize,
}

/// Feature columns for one or more symbols, concatenated symbol by symbol.
#[derive(Debug, Clone)]
pub struct FeatureFrame {
    /// Column names, in spec order.
    pub names: Vec<String>,
    /// Per-column series over all rows (NaN during each symbol's warm-up).
    pub columns: Vec<Vec<f64>>,
    /// Bar time of each row, UTC epoch ms.
    pub ts: Vec<i64>,
    /// Row blocks per symbol, in input order.
    pub segments: Vec<Segment>,
}

impl FeatureFrame {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ts.len()
    }
    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }
    /// Column by name.
    pub fn column(&self, name: &str) -> Option<&[f64]> {
        self.names.iter().position(|n| n == name).map(|i| self.columns[i].as_slice())
    }
    /// Total warm-up rows over all symbols.
    pub fn warmup_rows(&self) -> usize {
        self.segments.iter().map(|s| s.warmup).sum()
    }
}

/// Compute the spec's columns for one symbol.
pub fn compute(bars: &Bars, spec: &FeatureSpec) -> Result<FeatureFrame> {
    compute_many(std::slice::from_ref(bars), spec)
}

/// Compute the spec's columns for several symbols; symbols and spec items run in parallel
/// in the current rayon pool, and the result does not depend on the thread count.
pub fn compute_many(bars: &[Bars], spec: &FeatureSpec) -> Result<FeatureFrame> {
    compute_many_observed(bars, spec, |_| {})
}

/// [`compute_many`] that calls `done(symbol_index)` as each symbol finishes (for progress
/// bars); the call order may vary, the result does not.
pub fn compute_many_observed(bars: &[Bars], spec: &FeatureSpec, done: impl Fn(usize) + Sync) -> Result<FeatureFrame> {
    spec.validate()?;
    let names = spec.columns();
    let per_symbol: Vec<Vec<Vec<f64>>> = bars
        .par_iter()
        .enumerate()
        .map(|(i, b)| {
            let cols: Vec<Vec<f64>> =
                spec.features.par_iter().map(|f| f.compute(b)).collect::<Vec<_>>().into_iter().flatten().collect();
            done(i);
            cols
        })
        .collect();
    let total: usize = bars.iter().map(Bars::len).sum();
    let mut ts = Vec::with_capacity(total);
    let mut segments = Vec::with_capacity(bars.len());
    for (b, cols) in bars.iter().zip(&per_symbol) {
        // Warm-up is measured, not assumed: the first row from which every column is finite.
        let warmup = cols.iter().map(|c| c.iter().position(|v| !v.is_nan()).unwrap_or(c.len())).max().unwrap_or(0);
        segments.push(Segment { symbol: b.symbol().to_string(), start: ts.len(), len: b.len(), warmup });
        ts.extend_from_slice(b.timestamps());
    }
    let columns = if per_symbol.len() == 1 {
        per_symbol.into_iter().next().unwrap_or_default()
    } else {
        let mut columns: Vec<Vec<f64>> = (0..names.len()).map(|_| output_vec(total)).collect();
        for cols in per_symbol {
            for (dst, src) in columns.iter_mut().zip(cols) {
                dst.extend(src);
            }
        }
        columns
    };
    Ok(FeatureFrame { names, columns, ts, segments })
}

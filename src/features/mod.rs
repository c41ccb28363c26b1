//! Causal technical features computed from [`Bars`].
//!
//! A [`FeatureSpec`] lists indicators; [`compute`] evaluates them over one symbol's bars and
//! [`compute_many`] over several symbols (in parallel, inside the caller's rayon pool). The
//! result is a [`FeatureFrame`]: column-major `f64` columns plus per-row symbol and time.
//! Every value at bar t depends on bars <= t only, and the leading warm-up rows (where some
//! indicator has not enough history yet) are reported per symbol, never passed off as data.

pub mod calendar;
pub mod dataset;
pub mod labels;
pub mod momentum;
pub mod spec;
pub mod talib;
pub mod task;
pub mod trend;
pub mod volatility;
pub mod volume;

pub use dataset::{Dataset, DropReport};
pub use labels::{LabelSpec, Labels};
pub use spec::{Feature, FeatureSpec};
pub use task::Task;

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

/// One symbol's rows of a [`FeatureFrame`]: its own columns, never copied into a pooled
/// table (concatenating 61 columns of a million rows would cost more than computing them).
#[derive(Debug, Clone)]
pub struct Segment {
    /// Symbol of these rows.
    pub symbol: String,
    /// Bar time of each row, UTC epoch ms.
    pub ts: Vec<i64>,
    /// Per-column series, in the frame's name order (NaN during warm-up).
    pub columns: Vec<Vec<f64>>,
    /// Leading rows in which at least one column is still warming up.
    pub warmup: usize,
}

impl Segment {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ts.len()
    }
    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }
    /// True when every column at `row` is finite.
    pub fn row_complete(&self, row: usize) -> bool {
        self.columns.iter().all(|c| c[row].is_finite())
    }
}

/// Feature columns for one or more symbols, one [`Segment`] per symbol in input order.
#[derive(Debug, Clone)]
pub struct FeatureFrame {
    /// Column names, in spec order.
    pub names: Vec<String>,
    /// Per-symbol blocks.
    pub segments: Vec<Segment>,
}

impl FeatureFrame {
    /// Total rows over all symbols.
    pub fn len(&self) -> usize {
        self.segments.iter().map(Segment::len).sum()
    }
    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A column of the `segment`-th symbol, by name.
    pub fn column(&self, segment: usize, name: &str) -> Option<&[f64]> {
        let j = self.names.iter().position(|n| n == name)?;
        self.segments.get(segment).map(|s| s.columns[j].as_slice())
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
    let segments = bars
        .par_iter()
        .enumerate()
        .map(|(i, b)| {
            let columns: Vec<Vec<f64>> =
                spec.features.par_iter().map(|f| f.compute(b)).collect::<Vec<_>>().into_iter().flatten().collect();
            // Warm-up is measured, not assumed: the first row from which every column is finite.
            let warmup =
                columns.iter().map(|c| c.iter().position(|v| !v.is_nan()).unwrap_or(c.len())).max().unwrap_or(0);
            done(i);
            Segment { symbol: b.symbol().to_string(), ts: b.timestamps().to_vec(), columns, warmup }
        })
        .collect();
    Ok(FeatureFrame { names, segments })
}

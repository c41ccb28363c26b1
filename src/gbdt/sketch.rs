//! Mergeable quantile summaries for the bin edges of training sets too large to sort whole.
//!
//! A [`Summary`] is a sorted list of values, each with bounds on its rank (the weight of the
//! rows below it and at or below it) and the weight of the value itself: the weighted
//! Greenwald–Khanna summary XGBoost's `hist` sketch uses (`WQSummary`). A block of rows gives
//! an exact summary (its sorted distinct values with counts); two summaries merge into one
//! whose rank bounds add up ([`Summary::merge`]); [`Summary::prune`] keeps `size` entries at
//! evenly spaced ranks, which adds at most `total / (size − 1)` to the rank uncertainty.
//! Unlike a uniform row sample (LightGBM's `bin_construct_sample_cnt`), every row is seen,
//! values of any frequency survive, and the result depends on no seed. Blocks are fixed row
//! ranges merged in a fixed order, so the summary never depends on the thread count.

/// One summary entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    /// A value that occurs in the data.
    pub value: f32,
    /// Lower bound of the weight strictly below `value`.
    pub rmin: f64,
    /// Upper bound of the weight at or below `value`.
    pub rmax: f64,
    /// Lower bound of the weight exactly at `value`.
    pub w: f64,
}

impl Entry {
    /// Lower bound of the weight at or below the value.
    fn rmin_next(&self) -> f64 {
        self.rmin + self.w
    }
    /// Upper bound of the weight strictly below the value.
    fn rmax_prev(&self) -> f64 {
        self.rmax - self.w
    }
}

/// A weighted quantile summary of one feature's non-NaN values (sorted by value, distinct).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Entries in increasing value order.
    pub entries: Vec<Entry>,
}

impl Summary {
    /// The exact summary of `sorted` (ascending, no NaN): one entry per distinct value, each
    /// row weighing 1.
    pub fn from_sorted(sorted: &[f32]) -> Summary {
        let mut entries: Vec<Entry> = Vec::new();
        for &v in sorted {
            match entries.last_mut() {
                Some(e) if e.value == v => {
                    e.w += 1.0;
                    e.rmax += 1.0;
                }
                _ => {
                    let below = entries.last().map_or(0.0, |e| e.rmax);
                    entries.push(Entry { value: v, rmin: below, rmax: below + 1.0, w: 1.0 });
                }
            }
        }
        Summary { entries }
    }

    /// `Summary::from_sorted(sorted).prune(size)` in effect, without building the exact
    /// summary of a long block first: every distinct value while there are at most `size`,
    /// otherwise the values at `size` evenly spaced ranks (first and last included), each
    /// with the exact bounds of its run of equal values.
    pub fn from_sorted_pruned(sorted: &[f32], size: usize) -> Summary {
        let size = size.max(2);
        let n = sorted.len();
        let distinct = usize::from(n > 0) + sorted.windows(2).filter(|w| w[0] != w[1]).count();
        if distinct <= size {
            return Summary::from_sorted(sorted);
        }
        // One pass over the runs of equal values, keeping each run that holds a target rank.
        let mut entries: Vec<Entry> = Vec::with_capacity(size);
        let (mut k, mut start) = (0, 0);
        while start < n {
            let v = sorted[start];
            let end = start + sorted[start..].iter().take_while(|&&x| x == v).count();
            let mut holds_target = false;
            while k < size && k * (n - 1) / (size - 1) < end {
                holds_target = true;
                k += 1;
            }
            if holds_target {
                let (below, at_or_below) = (start as f64, end as f64);
                entries.push(Entry { value: v, rmin: below, rmax: at_or_below, w: at_or_below - below });
            }
            start = end;
        }
        Summary { entries }
    }

    /// Total weight summarised (the tests' invariant).
    #[cfg(test)]
    pub fn total(&self) -> f64 {
        self.entries.last().map_or(0.0, |e| e.rmax)
    }

    /// Whether every rank is known exactly: each entry's bounds are tight and no weight lies
    /// between neighbours (nothing has been pruned away).
    pub fn is_exact(&self) -> bool {
        let e = &self.entries;
        e.first().is_none_or(|f| f.rmin == 0.0)
            && e.iter().all(|x| x.rmin_next() == x.rmax)
            && e.windows(2).all(|w| w[1].rmin == w[0].rmax)
    }

    /// The summary of both inputs' rows: entries of equal value are combined, and each other
    /// entry's bounds grow by what the other summary knows lies below (and may lie below) it.
    pub fn merge(&self, other: &Summary) -> Summary {
        let (a, b) = (&self.entries, &other.entries);
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        // Weight of the other side's entries already passed (a lower bound of what lies below).
        let (mut a_below, mut b_below) = (0.0, 0.0);
        while i < a.len() && j < b.len() {
            let (x, y) = (a[i], b[j]);
            if x.value < y.value {
                out.push(Entry { value: x.value, rmin: x.rmin + b_below, rmax: x.rmax + y.rmax_prev(), w: x.w });
                a_below = x.rmin_next();
                i += 1;
            } else if y.value < x.value {
                out.push(Entry { value: y.value, rmin: y.rmin + a_below, rmax: y.rmax + x.rmax_prev(), w: y.w });
                b_below = y.rmin_next();
                j += 1;
            } else {
                out.push(Entry { value: x.value, rmin: x.rmin + y.rmin, rmax: x.rmax + y.rmax, w: x.w + y.w });
                a_below = x.rmin_next();
                b_below = y.rmin_next();
                i += 1;
                j += 1;
            }
        }
        let a_total = a.last().map_or(0.0, |e| e.rmax);
        let b_total = b.last().map_or(0.0, |e| e.rmax);
        for x in &a[i..] {
            out.push(Entry { value: x.value, rmin: x.rmin + b_below, rmax: x.rmax + b_total, w: x.w });
        }
        for y in &b[j..] {
            out.push(Entry { value: y.value, rmin: y.rmin + a_below, rmax: y.rmax + a_total, w: y.w });
        }
        Summary { entries: out }
    }

    /// At most `size` (≥ 2) entries: the first, the last, and for each of `size − 2` evenly
    /// spaced ranks the entry whose rank bounds best bracket it (XGBoost's `SetPrune`).
    pub fn prune(&self, size: usize) -> Summary {
        let e = &self.entries;
        if e.len() <= size {
            return self.clone();
        }
        let size = size.max(2);
        let begin = e[0].rmax;
        let range = e[e.len() - 1].rmin - begin;
        let n = (size - 1) as f64;
        let mut out = Vec::with_capacity(size);
        out.push(e[0]);
        let mut last = 0;
        let mut i = 1;
        for k in 1..size - 1 {
            // Twice the target rank, compared with twice an entry's mid-rank (rmin + rmax).
            let dx2 = 2.0 * (k as f64 * range / n + begin);
            while i < e.len() - 1 && dx2 >= e[i + 1].rmax + e[i + 1].rmin {
                i += 1;
            }
            if i == e.len() - 1 {
                break;
            }
            let pick = if dx2 < e[i].rmin_next() + e[i + 1].rmax_prev() { i } else { i + 1 };
            if pick != last {
                out.push(e[pick]);
                last = pick;
            }
        }
        if last != e.len() - 1 {
            out.push(e[e.len() - 1]);
        }
        Summary { entries: out }
    }

    /// Each entry's value with the weight estimated to lie in `(previous value, value]`: the
    /// differences of the mid-point estimates of the weight at or below each value. Exact
    /// (the counts) for an unpruned summary.
    pub fn weighted_values(&self) -> Vec<(f32, f64)> {
        let mut prev = 0.0;
        self.entries
            .iter()
            .map(|e| {
                let at_or_below = 0.5 * (e.rmin_next() + e.rmax);
                let w = (at_or_below - prev).max(0.0);
                prev = prev.max(at_or_below);
                (e.value, w)
            })
            .collect()
    }

    /// Merge summaries pairwise in a fixed tree (neighbours first), pruning every merge to
    /// `size`: the same result for the same list whatever runs it.
    pub fn merge_all(mut parts: Vec<Summary>, size: usize) -> Summary {
        while parts.len() > 1 {
            parts = parts
                .chunks(2)
                .map(|p| match p {
                    [a, b] => a.merge(b).prune(size),
                    [a] => a.clone(),
                    _ => unreachable!("chunks of two"),
                })
                .collect();
        }
        parts.pop().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sorted(mut v: Vec<f32>) -> Vec<f32> {
        v.sort_by(f32::total_cmp);
        v
    }

    /// Rows of `data` strictly below `x` and at or below it.
    fn ranks(data: &[f32], x: f32) -> (f64, f64) {
        (data.iter().filter(|&&v| v < x).count() as f64, data.iter().filter(|&&v| v <= x).count() as f64)
    }

    #[test]
    fn exact_summary_counts_distinct_values() {
        let s = Summary::from_sorted(&[1.0, 1.0, 2.0, 5.0, 5.0, 5.0]);
        let vals: Vec<(f32, f64)> = s.entries.iter().map(|e| (e.value, e.w)).collect();
        assert_eq!(vals, vec![(1.0, 2.0), (2.0, 1.0), (5.0, 3.0)]);
        assert_eq!(s.entries[2].rmin, 3.0);
        assert_eq!(s.total(), 6.0);
        assert_eq!(s.weighted_values(), vals);
    }

    #[test]
    fn merging_exact_summaries_is_the_exact_summary_of_the_union() {
        let a = sorted(vec![3.0, 1.0, 1.0, 7.0]);
        let b = sorted(vec![1.0, 2.0, 7.0, 7.0, 9.0]);
        let mut both = a.clone();
        both.extend(&b);
        let merged = Summary::from_sorted(&a).merge(&Summary::from_sorted(&b));
        assert_eq!(merged, Summary::from_sorted(&sorted(both)));
        assert!(merged.is_exact());
        assert!(!merged.prune(3).is_exact());
    }

    #[test]
    fn pruning_while_building_keeps_exact_bounds_at_even_ranks() {
        let v: Vec<f32> = sorted((0..10_000).map(|i| ((i * 37) % 1_000) as f32 * 0.5 - 100.0).collect());
        assert_eq!(Summary::from_sorted_pruned(&v, 1_000), Summary::from_sorted(&v));
        let s = Summary::from_sorted_pruned(&v, 101);
        assert_eq!(s.entries.len(), 101);
        assert_eq!((s.entries[0].value, s.entries[100].value), (v[0], v[9_999]));
        for e in &s.entries {
            assert_eq!((e.rmin, e.rmax, e.w), (ranks(&v, e.value).0, ranks(&v, e.value).1, 10.0));
        }
    }

    #[test]
    fn a_value_holding_a_quarter_of_the_rows_survives_pruning() {
        let mut v: Vec<f32> = (0..30_000).map(|i| i as f32).collect();
        v.extend(std::iter::repeat_n(12_345.5, 10_000));
        let parts: Vec<Summary> = v.chunks(4_096).map(|c| Summary::from_sorted(&sorted(c.to_vec()))).collect();
        let s = Summary::merge_all(parts, 64);
        assert!(s.entries.len() <= 64);
        let heavy = s.entries.iter().find(|e| e.value == 12_345.5).expect("the heavy value is kept");
        assert!(heavy.w >= 10_000.0);
        assert_eq!(s.total(), 40_000.0);
    }

    proptest! {
        /// Whatever the blocks and the pruning, every kept entry's rank bounds hold for the
        /// true ranks, and the bounds are no looser than the pruning allows.
        #[test]
        fn rank_bounds_hold_after_merges_and_prunes(
            data in prop::collection::vec(prop_oneof![prop::sample::select(vec![-3.0f32, -1.0, 0.0, 0.5, 2.0, 4.0, 8.0]), -100.0f32..100.0], 1..3_000),
            block in 1usize..400,
            size in 8usize..80,
        ) {
            let parts: Vec<Summary> =
                data.chunks(block).map(|c| Summary::from_sorted_pruned(&sorted(c.to_vec()), size)).collect();
            let levels = (parts.len() as f64).log2().ceil() as usize + 1;
            let s = Summary::merge_all(parts, size);
            let n = data.len() as f64;
            prop_assert_eq!(s.total(), n);
            prop_assert!(s.entries.len() <= size.max(data.len()));
            for w in s.entries.windows(2) {
                prop_assert!(w[0].value < w[1].value);
            }
            let slack = levels as f64 * n / (size - 1) as f64;
            for e in &s.entries {
                let (below, at_or_below) = ranks(&data, e.value);
                prop_assert!(e.rmin <= below && e.rmax >= at_or_below, "{:?} vs {} {}", e, below, at_or_below);
                prop_assert!(e.w <= at_or_below - below);
                prop_assert!(e.rmax - e.rmin - e.w <= 2.0 * slack + 1e-9, "{:?} slack {}", e, slack);
            }
            let est: f64 = s.weighted_values().iter().map(|p| p.1).sum();
            prop_assert!((est - n).abs() <= n * 1e-9 + s.entries.last().map_or(0.0, |e| e.rmax - e.rmin_next()));
        }
    }
}

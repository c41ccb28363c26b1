//! Combinatorial purged cross-validation (López de Prado, *Advances in Financial Machine
//! Learning*, ch. 12).
//!
//! `N` contiguous groups; every choice of `k` test groups is one split, `C(N, k)` splits in
//! lexicographic order of their test groups. Each group is tested in `C(N−1, k−1)` splits, so
//! the out-of-sample predictions assemble into `φ = k/N · C(N, k) = C(N−1, k−1)` backtest
//! paths: path `p` takes group `g`'s predictions from the `p`-th split (in split order) whose
//! test groups include `g`. Purge and embargo follow [`super::split`]'s rules.
//!
//! Worked example (`n = 12`, `N = 3`, `k = 2`, horizon 1 bar, no embargo): groups `0..4`,
//! `4..8`, `8..12`; split 0 tests groups {0, 1} (one block `0..8`, label span `[0, 8]`) and
//! trains on `9..12` (row 8 is purged: its `t0 = 8` touches the span); split 1 tests {0, 2}
//! and trains on `5..7`; split 2 tests {1, 2} and trains on `0..3`. Path 0 = group 0 from
//! split 0, group 1 from split 0, group 2 from split 1; path 1 = group 0 from split 1,
//! group 1 from split 2, group 2 from split 2.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::validation::split::{BacktestPath, Embargo, SplitPlan, Splitter, check_times, cut, groups, rename};

/// CPCV settings (defaults: 6 groups, 2 test groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cpcv {
    /// Number of groups `N` (≥ 2).
    pub groups: usize,
    /// Test groups per split `k` (1 ≤ k < N).
    pub test_groups: usize,
    /// Embargo after each test block's label span.
    pub embargo: Embargo,
}

impl Default for Cpcv {
    fn default() -> Self {
        Cpcv { groups: 6, test_groups: 2, embargo: Embargo::Bars(0) }
    }
}

/// `C(n, k)` (saturating; the sizes used here are small).
pub fn binomial(n: usize, k: usize) -> usize {
    if k > n {
        return 0;
    }
    let k = k.min(n - k);
    (0..k).fold(1usize, |acc, i| acc.saturating_mul(n - i) / (i + 1))
}

/// All `k`-subsets of `0..n` in lexicographic order.
pub fn combinations(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::with_capacity(binomial(n, k));
    let mut c: Vec<usize> = (0..k).collect();
    if k == 0 || k > n {
        return out;
    }
    loop {
        out.push(c.clone());
        // Rightmost position that can still advance.
        let Some(i) = (0..k).rev().find(|&i| c[i] < n - k + i) else { return out };
        c[i] += 1;
        for j in i + 1..k {
            c[j] = c[j - 1] + 1;
        }
    }
}

impl Cpcv {
    /// Settings with the given groups and test groups, no embargo.
    pub fn new(groups: usize, test_groups: usize) -> Self {
        Cpcv { groups, test_groups, ..Cpcv::default() }
    }

    /// Set the embargo.
    pub fn embargo(mut self, e: Embargo) -> Self {
        self.embargo = e;
        self
    }

    /// Number of splits `C(N, k)`.
    pub fn n_splits(&self) -> usize {
        binomial(self.groups, self.test_groups)
    }

    /// Number of backtest paths `C(N−1, k−1)`.
    pub fn n_paths(&self) -> usize {
        binomial(self.groups.saturating_sub(1), self.test_groups.saturating_sub(1))
    }

    /// Check `N ≥ 2` and `1 ≤ k < N`, and cap the split count.
    pub fn validate(&self) -> Result<()> {
        if self.groups < 2 {
            return Err(Error::param("groups", format!("CPCV needs at least 2 groups, got {}", self.groups)));
        }
        if self.test_groups == 0 || self.test_groups >= self.groups {
            return Err(Error::param(
                "test_groups",
                format!("must be in 1..{} (fewer than groups), got {}", self.groups, self.test_groups),
            ));
        }
        if self.n_splits() > 100_000 {
            return Err(Error::param("groups", format!("C({}, {}) splits is too many", self.groups, self.test_groups)));
        }
        Ok(())
    }

    /// Path assembly: `paths[p][g]` = the split whose predictions path `p` uses for group `g`.
    pub fn path_table(&self) -> Vec<Vec<usize>> {
        let combos = combinations(self.groups, self.test_groups);
        let mut seen = vec![0usize; self.groups];
        let mut table = vec![vec![0; self.groups]; self.n_paths()];
        for (s, tested) in combos.iter().enumerate() {
            for &g in tested {
                table[seen[g]][g] = s;
                seen[g] += 1;
            }
        }
        table
    }
}

impl Splitter for Cpcv {
    fn plan(&self, t0: &[i64], t1: &[i64]) -> Result<SplitPlan> {
        self.validate()?;
        check_times(t0, t1)?;
        let groups = groups(t0.len(), self.groups).map_err(|e| rename(e, "groups"))?;
        let splits = combinations(self.groups, self.test_groups)
            .into_iter()
            .map(|tested| {
                let train: Vec<usize> = (0..self.groups).filter(|g| !tested.contains(g)).collect();
                cut(t0, t1, &groups, &train, &tested, self.embargo)
            })
            .collect::<Result<Vec<_>>>()?;
        let paths = self
            .path_table()
            .into_iter()
            .map(|row| BacktestPath { segments: row.into_iter().enumerate().collect() })
            .collect();
        Ok(SplitPlan {
            method: format!(
                "CPCV N={} k={} ({} splits, {} paths), embargo {}",
                self.groups,
                self.test_groups,
                self.n_splits(),
                self.n_paths(),
                self.embargo
            ),
            n_rows: t0.len(),
            groups,
            splits,
            paths,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::split::ranges;

    #[test]
    fn counts_and_order() {
        let c = Cpcv::default();
        assert_eq!((c.n_splits(), c.n_paths()), (15, 5));
        assert_eq!(combinations(4, 2), vec![vec![0, 1], vec![0, 2], vec![0, 3], vec![1, 2], vec![1, 3], vec![2, 3]]);
        assert_eq!(binomial(10, 8), 45);
        assert!(Cpcv::new(3, 3).validate().is_err());
        assert!(Cpcv::new(1, 1).validate().is_err());
        assert!(Cpcv::new(6, 0).validate().is_err());
    }

    #[test]
    fn worked_example_from_the_docs() {
        let t0: Vec<i64> = (0..12).collect();
        let t1: Vec<i64> = t0.iter().map(|t| t + 1).collect();
        let plan = Cpcv::new(3, 2).plan(&t0, &t1).unwrap();
        let train: Vec<_> = plan.splits.iter().map(|s| ranges(&s.train)).collect();
        assert_eq!(train, vec![vec![9..12], vec![5..7], vec![0..3]]);
        assert_eq!(plan.paths[0].segments, vec![(0, 0), (1, 0), (2, 1)]);
        assert_eq!(plan.paths[1].segments, vec![(0, 1), (1, 2), (2, 2)]);
    }

    #[test]
    fn each_path_covers_each_group_once() {
        let c = Cpcv::new(7, 3);
        let table = c.path_table();
        assert_eq!(table.len(), 15);
        let combos = combinations(7, 3);
        for row in &table {
            for (g, &s) in row.iter().enumerate() {
                assert!(combos[s].contains(&g));
            }
        }
        // Every (group, split) with the group tested is used by exactly one path.
        let used: usize = table.iter().map(|r| r.len()).sum();
        assert_eq!(used, combos.len() * 3);
    }
}

//! Splits of a time-ordered table into train / validation / test rows, with purging and
//! embargo driven by each row's label interval `[t0, t1]`.
//!
//! Rows must be sorted by `t0` (a [`crate::features::Dataset`] is). The rules, shared by every
//! splitter in this module, [`super::cpcv`] and [`super::walk_forward`]:
//!
//! * **Groups** are contiguous runs of rows: with `n` rows and `N` groups the first `N − 1`
//!   groups hold `⌊n/N⌋` rows and the last takes the remainder.
//! * **Test blocks**: adjacent test groups merge into one block. A block's *label span* is
//!   `[t0 of its first row, max t1 over its rows]`.
//! * **Purge**: a training (or validation) row is dropped when its own `[t0, t1]` overlaps a
//!   test block's label span; touching counts (`t0 ≤ span_end && t1 ≥ span_start`).
//! * **Embargo**: after purging, training rows whose `t0` falls within `embargo` after the
//!   *end of the label span* (after `max t1`, not after the last test row) are dropped:
//!   [`Embargo::Bars`] counts the next `E` distinct timestamps present in the data,
//!   [`Embargo::Time`] is a duration in milliseconds (`span_end < t0 ≤ span_end + d`).
//!   Forward-only splits (chronological, walk-forward) have no training row after a test
//!   row, so there the embargo drops nothing and purging does the work.
//!
//! With a fixed horizon `h` (`t1 = t0 + h` bars) this equals skfolio's
//! `CombinatorialPurgedCV(purged_size=h, embargo_size=e)` row for row
//! (`tests/validation_splits.rs` checks it against a committed skfolio fixture).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How far past a test block's label span training rows are embargoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Embargo {
    /// The next `n` distinct timestamps present in the data (bars of the series).
    Bars(usize),
    /// A duration in milliseconds.
    Time(i64),
}

impl std::fmt::Display for Embargo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Embargo::Bars(n) => write!(f, "{n} bars"),
            Embargo::Time(ms) => write!(f, "{ms} ms"),
        }
    }
}

impl std::str::FromStr for Embargo {
    type Err = Error;

    /// `12` = 12 bars; `90s`, `30m`, `6h`, `2d` = a duration.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let bad =
            || Error::param("embargo", format!("{s:?}: expected bars (`12`) or a duration (`90s`, `30m`, `6h`, `2d`)"));
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let n: i64 = s[..split].parse().map_err(|_| bad())?;
        let unit_ms = match &s[split..] {
            "" => return usize::try_from(n).map(Embargo::Bars).map_err(|_| bad()),
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        n.checked_mul(unit_ms).map(Embargo::Time).ok_or_else(bad)
    }
}

impl Default for Embargo {
    fn default() -> Self {
        Embargo::Bars(0)
    }
}

/// One train/test split: row indices (ascending) into the table the plan was made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Training rows after purge and embargo.
    pub train: Vec<usize>,
    /// Validation rows (chronological splits only; empty otherwise), purged against the test.
    pub validation: Vec<usize>,
    /// Test rows.
    pub test: Vec<usize>,
    /// Indices into [`SplitPlan::groups`] of the groups tested here, ascending.
    pub test_groups: Vec<usize>,
    /// Rows removed because their label overlaps a test (or validation) span.
    pub purged: usize,
    /// Rows removed by the embargo.
    pub embargoed: usize,
}

/// One backtest path: every tested group once, each taken from one split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacktestPath {
    /// `(group, split)` pairs in group order: group `g`'s out-of-sample predictions come from
    /// split `split`.
    pub segments: Vec<(usize, usize)>,
}

/// Everything a splitter decided for a table of `n_rows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitPlan {
    /// Human-readable method and settings.
    pub method: String,
    /// Rows in the table.
    pub n_rows: usize,
    /// Contiguous row groups.
    pub groups: Vec<Range<usize>>,
    /// The splits, in order.
    pub splits: Vec<Split>,
    /// Backtest paths assembled from the splits' test groups.
    pub paths: Vec<BacktestPath>,
}

/// Something that cuts a time-ordered table into splits (a documented extension point).
pub trait Splitter: Send + Sync {
    /// Plan the splits for rows with label intervals `t0[i]..=t1[i]`, sorted by `t0`.
    fn plan(&self, t0: &[i64], t1: &[i64]) -> Result<SplitPlan>;
}

/// Check label times: equal lengths, `t0` non-decreasing, `t1 ≥ t0`.
pub fn check_times(t0: &[i64], t1: &[i64]) -> Result<()> {
    if t0.len() != t1.len() {
        return Err(Error::Shape { what: "t1 (label end times)".into(), expected: t0.len(), got: t1.len() });
    }
    if t0.is_empty() {
        return Err(Error::Empty { source_name: "splitter input".into() });
    }
    if let Some(i) = t0.windows(2).position(|w| w[1] < w[0]) {
        return Err(Error::param(
            "t0",
            format!("rows must be sorted by time: row {} ({}) comes after row {} ({})", i + 1, t0[i + 1], i, t0[i]),
        ));
    }
    if let Some(i) = (0..t0.len()).find(|&i| t1[i] < t0[i]) {
        return Err(Error::param("t1", format!("row {i}: label ends ({}) before it starts ({})", t1[i], t0[i])));
    }
    Ok(())
}

/// Contiguous groups: the first `n_groups − 1` hold `⌊n/n_groups⌋` rows, the last the rest.
pub fn groups(n: usize, n_groups: usize) -> Result<Vec<Range<usize>>> {
    if n_groups < 2 {
        return Err(Error::param("groups", format!("need at least 2 groups, got {n_groups}")));
    }
    let size = n / n_groups;
    if size == 0 {
        return Err(Error::param("groups", format!("{n} rows cannot fill {n_groups} groups")));
    }
    Ok((0..n_groups).map(|g| g * size..if g + 1 == n_groups { n } else { (g + 1) * size }).collect())
}

/// Merge sorted group indices into contiguous row blocks.
pub(crate) fn blocks(groups: &[Range<usize>], tested: &[usize]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for &g in tested {
        let r = groups[g].clone();
        match out.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            _ => out.push(r),
        }
    }
    out
}

/// Row roles while a split is being cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Unused,
    Train,
    Validation,
    Test,
    Purged,
    Embargoed,
}

/// Purge rows of role `victim` whose label overlaps a block's span, then (if `embargo`)
/// embargo `victim` rows after it. Returns the block's label span.
pub(crate) fn purge_around(
    t0: &[i64],
    t1: &[i64],
    roles: &mut [Role],
    block: Range<usize>,
    victim: Role,
    embargo: Option<Embargo>,
) -> (i64, i64) {
    let start = block.clone().map(|r| t0[r]).min().expect("non-empty block");
    let end = block.clone().map(|r| t1[r]).max().expect("non-empty block");
    // Rows after the span cannot overlap it (t0 sorted), so the scan stops at the first one.
    let stop = t0.partition_point(|&t| t <= end);
    for r in 0..stop {
        if roles[r] == victim && t1[r] >= start {
            roles[r] = Role::Purged;
        }
    }
    let Some(embargo) = embargo else { return (start, end) };
    match embargo {
        Embargo::Time(d) => {
            for r in stop..t0.len() {
                if t0[r] > end.saturating_add(d) {
                    break;
                }
                if roles[r] == victim {
                    roles[r] = Role::Embargoed;
                }
            }
        }
        Embargo::Bars(e) => {
            let mut distinct = 0;
            let mut r = stop;
            while r < t0.len() && distinct < e {
                let t = t0[r];
                while r < t0.len() && t0[r] == t {
                    if roles[r] == victim {
                        roles[r] = Role::Embargoed;
                    }
                    r += 1;
                }
                distinct += 1;
            }
        }
    }
    (start, end)
}

/// Collect the split from the final roles.
pub(crate) fn finish(roles: &[Role], test_groups: Vec<usize>) -> Split {
    let pick = |want: Role| roles.iter().enumerate().filter(|&(_, &r)| r == want).map(|(i, _)| i).collect();
    Split {
        train: pick(Role::Train),
        validation: pick(Role::Validation),
        test: pick(Role::Test),
        test_groups,
        purged: roles.iter().filter(|&&r| r == Role::Purged).count(),
        embargoed: roles.iter().filter(|&&r| r == Role::Embargoed).count(),
    }
}

/// Cut one split: `train_groups` train, `test_groups` test, purge + embargo around each block.
/// Errors when a training group loses every row.
pub(crate) fn cut(
    t0: &[i64],
    t1: &[i64],
    groups: &[Range<usize>],
    train_groups: &[usize],
    test_groups: &[usize],
    embargo: Embargo,
) -> Result<Split> {
    let mut roles = vec![Role::Unused; t0.len()];
    for &g in train_groups {
        roles[groups[g].clone()].fill(Role::Train);
    }
    for &g in test_groups {
        roles[groups[g].clone()].fill(Role::Test);
    }
    for b in blocks(groups, test_groups) {
        purge_around(t0, t1, &mut roles, b, Role::Train, Some(embargo));
    }
    if let Some(&g) = train_groups.iter().find(|&&g| !roles[groups[g].clone()].contains(&Role::Train)) {
        return Err(Error::param(
            "purge/embargo",
            format!(
                "training group {g} (rows {}..{}) is emptied by purging and embargo when testing groups {:?}; \
                 use fewer groups, a shorter label horizon or a smaller embargo",
                groups[g].start, groups[g].end, test_groups
            ),
        ));
    }
    Ok(finish(&roles, test_groups.to_vec()))
}

/// Chronological train / validation / test split (default 80 / 10 / 10): training rows are
/// purged against the validation and test spans, validation rows against the test span.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Chronological {
    /// Share of rows for training (the first rows).
    pub train: f64,
    /// Share for validation (the rows after training); the rest is the test set.
    pub validation: f64,
}

impl Default for Chronological {
    fn default() -> Self {
        Chronological { train: 0.8, validation: 0.1 }
    }
}

impl Splitter for Chronological {
    fn plan(&self, t0: &[i64], t1: &[i64]) -> Result<SplitPlan> {
        check_times(t0, t1)?;
        let (tr, va) = (self.train, self.validation);
        if !(tr > 0.0 && va >= 0.0 && tr + va < 1.0) {
            return Err(Error::param(
                "chronological",
                format!("need train > 0, validation >= 0 and train + validation < 1, got {tr} and {va}"),
            ));
        }
        let n = t0.len();
        let a = (n as f64 * tr).round() as usize;
        let b = (n as f64 * (tr + va)).round() as usize;
        if a == 0 || b >= n || (va > 0.0 && b == a) {
            return Err(Error::param("chronological", format!("{n} rows leave an empty part at {tr}/{va}")));
        }
        let mut roles = vec![Role::Train; n];
        roles[a..b].fill(Role::Validation);
        roles[b..].fill(Role::Test);
        purge_around(t0, t1, &mut roles, b..n, Role::Validation, None);
        purge_around(t0, t1, &mut roles, b..n, Role::Train, None);
        if a < b {
            purge_around(t0, t1, &mut roles, a..b, Role::Train, None);
        }
        let split = finish(&roles, vec![2]);
        if split.train.is_empty() || (va > 0.0 && split.validation.is_empty()) {
            return Err(Error::param("chronological", "purging emptied the training or validation part"));
        }
        Ok(SplitPlan {
            method: format!("chronological {:.0}/{:.0}/{:.0}", tr * 100.0, va * 100.0, (1.0 - tr - va) * 100.0),
            n_rows: n,
            groups: vec![0..a, a..b, b..n],
            splits: vec![split],
            paths: vec![BacktestPath { segments: vec![(2, 0)] }],
        })
    }
}

/// Purged k-fold: `k` contiguous groups, each the test set once; one backtest path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PurgedKFold {
    /// Folds (default 5).
    pub k: usize,
    /// Embargo after each test fold's label span.
    pub embargo: Embargo,
}

impl Default for PurgedKFold {
    fn default() -> Self {
        PurgedKFold { k: 5, embargo: Embargo::Bars(0) }
    }
}

impl Splitter for PurgedKFold {
    fn plan(&self, t0: &[i64], t1: &[i64]) -> Result<SplitPlan> {
        check_times(t0, t1)?;
        let groups = groups(t0.len(), self.k).map_err(|e| rename(e, "k"))?;
        let splits = (0..self.k)
            .map(|g| {
                let train: Vec<usize> = (0..self.k).filter(|&o| o != g).collect();
                cut(t0, t1, &groups, &train, &[g], self.embargo)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SplitPlan {
            method: format!("purged {}-fold, embargo {}", self.k, self.embargo),
            n_rows: t0.len(),
            groups,
            splits,
            paths: vec![BacktestPath { segments: (0..self.k).map(|g| (g, g)).collect() }],
        })
    }
}

/// Re-label a parameter error with the field name the caller used.
pub(crate) fn rename(e: Error, field: &str) -> Error {
    match e {
        Error::InvalidParam { reason, .. } => Error::param(field, reason),
        other => other,
    }
}

/// Compress ascending indices into half-open ranges (for printing a split).
pub fn ranges(idx: &[usize]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for &i in idx {
        match out.last_mut() {
            Some(r) if r.end == i => r.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(n: usize, h: i64) -> (Vec<i64>, Vec<i64>) {
        let t0: Vec<i64> = (0..n as i64).collect();
        let t1 = t0.iter().map(|t| t + h).collect();
        (t0, t1)
    }

    #[test]
    fn groups_take_floor_and_remainder() {
        let g = groups(14, 4).unwrap();
        assert_eq!(g, vec![0..3, 3..6, 6..9, 9..14]);
        assert!(groups(3, 4).is_err());
        assert!(groups(10, 1).is_err());
    }

    #[test]
    fn kfold_purges_both_sides_and_embargoes_after_label_span() {
        let (t0, t1) = fixed(20, 2);
        let plan = PurgedKFold { k: 4, embargo: Embargo::Bars(1) }.plan(&t0, &t1).unwrap();
        let s = &plan.splits[1]; // test rows 5..10, label span [5, 11]
        assert_eq!(s.test, (5..10).collect::<Vec<_>>());
        // Purged before: rows 3, 4 (t1 = 5, 6 touch the span). After: rows 10, 11 (t0 ≤ 11).
        // Embargo: the next bar after t = 11 is row 12.
        assert_eq!(ranges(&s.train), vec![0..3, 13..20]);
        assert_eq!((s.purged, s.embargoed), (4, 1));
        assert_eq!(plan.paths.len(), 1);
    }

    #[test]
    fn embargo_in_time_and_pooled_timestamps() {
        // Two symbols per timestamp: rows (0,1) at t=0, (2,3) at t=10, ...
        let t0: Vec<i64> = (0..16).map(|i| (i / 2) * 10).collect();
        let t1: Vec<i64> = t0.iter().map(|t| t + 10).collect();
        let mut roles = vec![Role::Train; 16];
        roles[4..8].fill(Role::Test); // t = 20, 30; span [20, 40]
        let span = purge_around(&t0, &t1, &mut roles, 4..8, Role::Train, Some(Embargo::Bars(1)));
        assert_eq!(span, (20, 40));
        assert_eq!(&roles[2..4], &[Role::Purged; 2]); // t1 = 20 touches
        assert_eq!(&roles[8..10], &[Role::Purged; 2]); // t0 = 40 touches
        assert_eq!(&roles[10..12], &[Role::Embargoed; 2]); // next distinct timestamp, both symbols
        assert_eq!(roles[12], Role::Train);
        let mut roles2 = vec![Role::Train; 16];
        roles2[4..8].fill(Role::Test);
        purge_around(&t0, &t1, &mut roles2, 4..8, Role::Train, Some(Embargo::Time(20)));
        assert_eq!(&roles2[10..14], &[Role::Embargoed; 4]); // t0 in (40, 60]
    }

    #[test]
    fn chronological_purges_at_both_boundaries() {
        let (t0, t1) = fixed(100, 3);
        let plan = Chronological::default().plan(&t0, &t1).unwrap();
        let s = &plan.splits[0];
        assert_eq!(s.test, (90..100).collect::<Vec<_>>());
        assert_eq!(s.validation, (80..87).collect::<Vec<_>>());
        assert_eq!(s.train, (0..77).collect::<Vec<_>>());
        assert_eq!(s.purged, 6);
        assert!(Chronological { train: 0.9, validation: 0.2 }.plan(&t0, &t1).is_err());
    }

    #[test]
    fn bad_times_are_typed_errors() {
        assert!(matches!(check_times(&[1, 0], &[1, 1]), Err(Error::InvalidParam { .. })));
        assert!(matches!(check_times(&[0, 1], &[1]), Err(Error::Shape { .. })));
        assert!(matches!(check_times(&[0, 1], &[1, 0]), Err(Error::InvalidParam { .. })));
        assert_eq!("12".parse::<Embargo>().unwrap(), Embargo::Bars(12));
        assert_eq!("6h".parse::<Embargo>().unwrap(), Embargo::Time(6 * 3_600_000));
        assert!("6w".parse::<Embargo>().is_err() && "-1".parse::<Embargo>().is_err());
        let (t0, t1) = fixed(20, 8);
        let e = PurgedKFold { k: 4, embargo: Embargo::Bars(0) }.plan(&t0, &t1).unwrap_err().to_string();
        assert!(e.contains("emptied"), "{e}");
    }
}

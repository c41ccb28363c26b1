//! Splitters: skfolio parity for CPCV and property tests for the purge/embargo invariants.

use proptest::prelude::*;
use retrain::validation::split::{groups, ranges};
use retrain::validation::{Chronological, Cpcv, Embargo, PurgedKFold, SplitPlan, Splitter, WalkForward, Window};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    n: usize,
    groups: usize,
    test_groups: usize,
    horizon: i64,
    embargo: usize,
    n_splits: usize,
    n_paths: usize,
    splits: Vec<SkSplit>,
    path_ids: Vec<Vec<usize>>,
}

#[derive(Deserialize)]
struct SkSplit {
    train: Vec<(usize, usize)>,
    test: Vec<Vec<(usize, usize)>>,
}

#[test]
fn cpcv_equals_skfolio_combinatorial_purged_cv() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/validation/cpcv_skfolio.json"))
            .unwrap();
    let fx: Fixture = serde_json::from_str(&text).unwrap();
    assert!(fx.cases.len() >= 5);
    for c in &fx.cases {
        let t0: Vec<i64> = (0..c.n as i64).collect();
        let t1: Vec<i64> = t0.iter().map(|t| t + c.horizon).collect();
        let cv = Cpcv::new(c.groups, c.test_groups).embargo(Embargo::Bars(c.embargo));
        let plan = cv.plan(&t0, &t1).unwrap();
        let label = format!("n={} N={} k={} h={} e={}", c.n, c.groups, c.test_groups, c.horizon, c.embargo);
        assert_eq!(plan.splits.len(), c.n_splits, "{label}");
        assert_eq!(plan.paths.len(), c.n_paths, "{label}");
        for (i, (ours, sk)) in plan.splits.iter().zip(&c.splits).enumerate() {
            let train: Vec<(usize, usize)> = ranges(&ours.train).into_iter().map(|r| (r.start, r.end)).collect();
            assert_eq!(train, sk.train, "{label}: split {i} train");
            let tests: Vec<(usize, usize)> =
                ours.test_groups.iter().map(|&g| (plan.groups[g].start, plan.groups[g].end)).collect();
            let sk_tests: Vec<(usize, usize)> = sk.test.iter().map(|t| (t[0].0, t.last().unwrap().1)).collect();
            assert_eq!(tests, sk_tests, "{label}: split {i} test groups");
            // skfolio's path id of the j-th test group of split i.
            for (j, &g) in ours.test_groups.iter().enumerate() {
                let p = plan.paths.iter().position(|p| p.segments[g] == (g, i)).unwrap();
                assert_eq!(p, c.path_ids[i][j], "{label}: split {i} group {g} path");
            }
        }
    }
}

/// Random label intervals: sorted t0 with repeats (pooled symbols) and random horizons.
fn times() -> impl Strategy<Value = (Vec<i64>, Vec<i64>)> {
    (60usize..400).prop_flat_map(|n| {
        (prop::collection::vec(0i64..3, n), prop::collection::vec(0i64..6, n)).prop_map(|(steps, h)| {
            let mut t = 0;
            let t0: Vec<i64> = steps
                .iter()
                .map(|s| {
                    t += s;
                    t
                })
                .collect();
            let t1 = t0.iter().zip(&h).map(|(a, b)| a + b).collect();
            (t0, t1)
        })
    })
}

fn check_invariants(plan: &SplitPlan, t0: &[i64], t1: &[i64], embargo: Embargo, window: Option<Window>) {
    let n = t0.len();
    for s in &plan.splits {
        let mut is_test = vec![false; n];
        for &r in &s.test {
            is_test[r] = true;
        }
        // Disjoint roles, ascending order.
        assert!(s.train.windows(2).all(|w| w[0] < w[1]));
        assert!(s.train.iter().chain(&s.validation).all(|&r| !is_test[r]));
        // No training or validation row's interval touches any test block's label span.
        let blocks = ranges(&s.test);
        for b in &blocks {
            let start = t0[b.start];
            let end = b.clone().map(|r| t1[r]).max().unwrap();
            for &r in s.train.iter().chain(&s.validation) {
                assert!(t1[r] < start || t0[r] > end, "row {r} overlaps block {b:?}");
            }
            // Embargo bounds: no training row within the embargo after the span end.
            let limit = match embargo {
                Embargo::Time(d) => end + d,
                Embargo::Bars(e) => {
                    let mut distinct: Vec<i64> = t0.iter().copied().filter(|&t| t > end).collect();
                    distinct.dedup();
                    if e == 0 { end } else { distinct.get(e - 1).copied().unwrap_or(i64::MAX) }
                }
            };
            for &r in &s.train {
                assert!(!(t0[r] > end && t0[r] <= limit), "row {r} inside the embargo after {end}");
            }
        }
        // Nothing beyond purge + embargo is removed from the groups in play.
        let used = match window {
            None => n,
            Some(w) => {
                let g = s.test_groups[0];
                let first = match w {
                    Window::Expanding => 0,
                    Window::Rolling(k) => g.saturating_sub(k),
                };
                plan.groups[g].end - plan.groups[first].start
            }
        };
        assert_eq!(s.train.len() + s.validation.len() + s.test.len() + s.purged + s.embargoed, used);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn cpcv_invariants((t0, t1) in times(), n_groups in 3usize..8, k_frac in 0.0f64..1.0, e in 0usize..4, by_time in any::<bool>()) {
        let k = 1 + ((n_groups - 1) as f64 * k_frac) as usize % (n_groups - 1);
        let embargo = if by_time { Embargo::Time(e as i64) } else { Embargo::Bars(e) };
        let cv = Cpcv::new(n_groups, k).embargo(embargo);
        let Ok(plan) = cv.plan(&t0, &t1) else { return Ok(()) }; // a group emptied by purging
        prop_assert_eq!(plan.splits.len(), cv.n_splits());
        prop_assert_eq!(plan.paths.len(), cv.n_paths());
        check_invariants(&plan, &t0, &t1, embargo, None);
        // Every row appears in exactly one test group per path.
        for p in &plan.paths {
            let mut seen = vec![0u8; t0.len()];
            for &(g, s) in &p.segments {
                prop_assert!(plan.splits[s].test_groups.contains(&g));
                for r in plan.groups[g].clone() {
                    seen[r] += 1;
                }
            }
            prop_assert!(seen.iter().all(|&c| c == 1));
        }
        // Chronological order: groups are contiguous and ordered.
        prop_assert_eq!(&plan.groups, &groups(t0.len(), n_groups).unwrap());
    }

    #[test]
    fn kfold_walk_forward_chronological_invariants((t0, t1) in times(), k in 2usize..7, e in 0usize..4) {
        if let Ok(plan) = (PurgedKFold { k, embargo: Embargo::Bars(e) }).plan(&t0, &t1) {
            check_invariants(&plan, &t0, &t1, Embargo::Bars(e), None);
            prop_assert_eq!(plan.paths[0].segments.len(), k);
        }
        for window in [Window::Expanding, Window::Rolling(2)] {
            if let Ok(plan) = (WalkForward { n_splits: k, window }).plan(&t0, &t1) {
                check_invariants(&plan, &t0, &t1, Embargo::Bars(0), Some(window));
                for s in &plan.splits {
                    // Training strictly precedes the test rows.
                    prop_assert!(s.train.last().is_none_or(|&r| r < s.test[0]));
                }
            }
        }
        if let Ok(plan) = Chronological::default().plan(&t0, &t1) {
            check_invariants(&plan, &t0, &t1, Embargo::Bars(0), None);
            let s = &plan.splits[0];
            prop_assert!(s.train.last() < s.validation.first().or(s.test.first()));
            prop_assert!(s.validation.last().is_none_or(|v| v < &s.test[0]));
        }
    }
}

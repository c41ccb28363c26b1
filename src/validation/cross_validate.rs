//! [`cross_validate`]: fit a model on every split of a [`Splitter`], keep the out-of-sample
//! predictions and score them per split and per backtest path.
//!
//! Leakage rules: each fit sees only its split's training rows (so bin edges and any other
//! statistic are learned from them alone); when the model early-stops, its validation set
//! is the split's own validation part (chronological splits) or else the *last*
//! `early_stopping_fraction` of the training rows, the remaining rows whose label reaches
//! into that slice purged too — test rows never steer the fit.
//! Splits run in parallel in the caller's rayon pool; a model's own parallel work nests in
//! the same pool, so the total never exceeds the pool's threads — unless the model brings a
//! private pool of its own (`GbdtParams::threads = Some(_)`): leave that `None` here, as
//! `retrain cv` does. Results are identical
//! whatever the thread count (each fit is deterministic, results are kept in split order).

use std::time::Instant;

use ndarray::Array2;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::features::{Dataset, Task, dataset::median_step};
use crate::model::{Fit, Predict};
use crate::validation::overfit::{
    OverfitFlags, OverfitThresholds, SharpeGap, annualised_sharpe_se, deflated_sharpe, pbo, probabilistic_sharpe,
    seed_stability, sharpe_ratio,
};
use crate::validation::report::{
    CvReport, OosPredictions, PathScores, SeedStudy, SplitScores, TradeClock, path_outputs, score, signals, summarize,
};
use crate::validation::split::Splitter;

/// Progress callback: a finished split's scores and the total split count.
pub type SplitCallback<'a> = dyn Fn(&SplitScores, usize) + Sync + 'a;

/// Options of [`cross_validate`].
#[derive(Clone)]
pub struct CvOptions<'a> {
    /// Share of each split's (latest) training rows held out for early stopping, when the
    /// model uses a validation set (default 0.1).
    pub early_stopping_fraction: f64,
    /// Also score each split's training rows, for the record (`None`, the default: no; no
    /// check reads them — the Sharpe gap compares the selection slices with the test paths).
    pub in_sample: Option<bool>,
    /// Fit splits concurrently (each fit then mostly runs on one thread); `false` fits one
    /// split at a time with all threads inside the fit.
    pub parallel_splits: bool,
    /// Keep the out-of-sample predictions in the report.
    pub keep_predictions: bool,
    /// Thresholds of the overfitting flags.
    pub thresholds: OverfitThresholds,
    /// Override the bars-per-year used to annualise Sharpe (default: from the timestamps).
    pub bars_per_year: Option<f64>,
    /// Called after each split finishes with the total split count (progress).
    pub on_split: Option<&'a SplitCallback<'a>>,
}

impl Default for CvOptions<'_> {
    fn default() -> Self {
        CvOptions {
            early_stopping_fraction: 0.1,
            in_sample: None,
            parallel_splits: true,
            keep_predictions: true,
            thresholds: OverfitThresholds::default(),
            bars_per_year: None,
            on_split: None,
        }
    }
}

/// Bars per year from the median positive step between timestamps (ms), 365.25-day years.
pub fn bars_per_year(t0: &[i64]) -> Option<f64> {
    median_step(t0).map(|step| 365.25 * 86_400_000.0 / step as f64)
}

/// How `ds`'s trades turn into annual figures: `bars_per_year` (else the data's own) and the
/// label's horizon; `None` without realised returns or a datable bar interval.
pub fn trade_clock(ds: &Dataset, bars_per_year_override: Option<f64>) -> Option<TradeClock> {
    ds.ret.as_ref()?;
    let bpy = bars_per_year_override.or_else(|| bars_per_year(&ds.t0))?;
    Some(TradeClock { bars_per_year: bpy, horizon: ds.label.as_ref().map_or(1, |l| l.horizon()) as f64 })
}

/// The default embargo, in bars: `days` (5 trading days by default) of bars at the
/// data's median bar interval, or the longest feature lookback if that is longer — rows just
/// after a test block carry the test period in their lagged features.
pub fn default_embargo_bars(t0: &[i64], days: f64, feature_lookback: usize) -> usize {
    let by_days = bars_per_year(t0).map_or(0, |bpy| (bpy / 365.25 * days).round() as usize);
    by_days.max(feature_lookback)
}

/// Rows of `train` kept for fitting and the early-stopping slice (the latest `fraction` of
/// them, with the rows whose label reaches into it purged; both ascending).
pub fn early_stopping_slice(ds: &Dataset, train: &[usize], fraction: f64) -> (Vec<usize>, Vec<usize>) {
    let k = ((train.len() as f64) * fraction).round() as usize;
    if k == 0 || k >= train.len() {
        return (train.to_vec(), Vec::new());
    }
    let cut = train.len() - k;
    let valid = train[cut..].to_vec();
    let start = ds.t0[valid[0]];
    // Every kept row precedes the slice, so only labels reaching into it overlap.
    let fit = train[..cut].iter().copied().filter(|&r| ds.t1[r] < start).collect();
    (fit, valid)
}

fn pick(v: &Option<Vec<f64>>, rows: &[usize]) -> Option<Vec<f64>> {
    v.as_ref().map(|v| rows.iter().map(|&r| v[r]).collect())
}

/// Cross-validate `params` on `ds` with `splitter` (see the module docs).
pub fn cross_validate<F>(params: &F, ds: &Dataset, splitter: &dyn Splitter, opts: &CvOptions<'_>) -> Result<CvReport>
where
    F: Fit + Sync,
    F::Model: Send,
{
    let started = Instant::now();
    if !(0.0..1.0).contains(&opts.early_stopping_fraction) {
        return Err(Error::param(
            "early_stopping_fraction",
            format!("must be in [0, 1), got {}", opts.early_stopping_fraction),
        ));
    }
    let plan = splitter.plan(&ds.t0, &ds.t1)?;
    let task = Task::of(ds);
    let clock = trade_clock(ds, opts.bars_per_year);
    let y = ds.y.as_slice().ok_or_else(|| Error::param("dataset.y", "labels must be contiguous"))?;
    let run_split = |(i, split): (usize, &crate::validation::split::Split)| -> Result<(SplitScores, Array2<f64>)> {
        let t = Instant::now();
        let (fit_rows, es_rows) = if params.uses_validation() && !split.validation.is_empty() {
            // A chronological split brings its own purged validation part.
            (split.train.clone(), split.validation.clone())
        } else if params.uses_validation() {
            early_stopping_slice(ds, &split.train, opts.early_stopping_fraction)
        } else {
            (split.train.clone(), Vec::new())
        };
        if fit_rows.is_empty() {
            return Err(Error::param("split", format!("split {i} has no training rows left")));
        }
        let train = ds.select(&fit_rows)?;
        let valid = if es_rows.is_empty() { None } else { Some(ds.select(&es_rows)?) };
        let model = params.fit(&train, valid.as_ref())?;
        // What model selection saw: the early-stopping slice, scored by the fitted model.
        let selection = match &valid {
            Some(v) if v.ret.is_some() => {
                let out = model.predict(v.x.view())?;
                let ys = v.y.as_slice().expect("contiguous");
                Some(score(task, ys, out.view(), v.ret.as_deref(), v.risk.as_deref(), clock))
            }
            _ => None,
        };
        drop(valid);
        let in_sample = if opts.in_sample.unwrap_or(false) {
            let out = model.predict(train.x.view())?;
            let ys = train.y.as_slice().expect("contiguous");
            Some(score(task, ys, out.view(), train.ret.as_deref(), train.risk.as_deref(), clock))
        } else {
            None
        };
        drop(train);
        let test = ds.select(&split.test)?;
        let out = model.predict(test.x.view())?;
        let scores = SplitScores {
            split: i,
            test_groups: split.test_groups.clone(),
            train_rows: fit_rows.len(),
            early_stopping_rows: es_rows.len(),
            purged: split.purged,
            embargoed: split.embargoed,
            seconds: t.elapsed().as_secs_f64(),
            test: score(
                task,
                test.y.as_slice().expect("contiguous"),
                out.view(),
                test.ret.as_deref(),
                test.risk.as_deref(),
                clock,
            ),
            train: in_sample,
            selection,
        };
        if let Some(cb) = opts.on_split {
            cb(&scores, plan.splits.len());
        }
        Ok((scores, out))
    };
    let results: Vec<(SplitScores, Array2<f64>)> = if opts.parallel_splits {
        plan.splits.par_iter().enumerate().map(run_split).collect::<Result<Vec<_>>>()?
    } else {
        plan.splits.iter().enumerate().map(run_split).collect::<Result<Vec<_>>>()?
    };

    let (splits, oos): (Vec<SplitScores>, Vec<OosPredictions>) = results
        .into_iter()
        .zip(&plan.splits)
        .map(|((s, out), split)| {
            let o = OosPredictions {
                rows: split.test.clone(),
                n_outputs: out.ncols(),
                values: out.into_raw_vec_and_offset().0,
            };
            (s, o)
        })
        .unzip();
    // Each path takes its groups' rows from the splits its segments name, in row order.
    let outs: Vec<(Vec<usize>, Array2<f64>)> =
        plan.paths.iter().map(|path| path_outputs(&plan.groups, &oos, &path.segments)).collect();
    let paths: Vec<PathScores> = plan
        .paths
        .iter()
        .zip(&outs)
        .enumerate()
        .map(|(p, (path, (rows, out)))| {
            let ys: Vec<f64> = rows.iter().map(|&r| y[r]).collect();
            let (ret, risk) = (pick(&ds.ret, rows), pick(&ds.risk, rows));
            let scores = score(task, &ys, out.view(), ret.as_deref(), risk.as_deref(), clock);
            PathScores { path: p, segments: path.segments.clone(), scores }
        })
        .collect();
    let summary = summarize(&paths);
    let mean_of = |name: &str| summary.iter().find(|s| s.metric == name).map(|s| s.mean);
    let gap = clock.and_then(|c| sharpe_gap(&splits, mean_of("sharpe")?, ds.n_rows(), c));
    // The paths' PnL averaged per row, one trade per label horizon: the Probabilistic Sharpe
    // Ratio against 0 (one configuration tried; the seed study deflates it).
    let psr = match (&ds.ret, clock) {
        (Some(ret), Some(c)) => path_pnl(task, &outs, ret, ds.n_rows(), c.horizon as usize)
            .and_then(|pnl| probabilistic_sharpe(&pnl, 0.0).ok())
            .filter(|v| v.is_finite()),
        _ => None,
    };
    drop(outs);
    let flags = OverfitFlags::evaluate(gap, mean_of("ic_spearman"), None, psr.map(|p| (p, 1)), &opts.thresholds);
    Ok(CvReport {
        method: plan.method,
        task,
        rows: ds.n_rows(),
        features: ds.n_features(),
        clock,
        splits,
        paths,
        summary,
        flags,
        seconds: started.elapsed().as_secs_f64(),
        notes: Vec::new(),
        groups: plan.groups,
        seeds: None,
        oos: if opts.keep_predictions { oos } else { Vec::new() },
    })
}

/// Selection-slice Sharpe against the test paths' (`test`), with the standard error of the
/// difference; `None` when no split early-stopped. The slices of different splits overlap, so
/// their mean is as uncertain as one slice (a conservative error).
fn sharpe_gap(splits: &[SplitScores], test: f64, rows: usize, clock: TradeClock) -> Option<SharpeGap> {
    let sel: Vec<(f64, usize)> = splits
        .iter()
        .filter_map(|s| s.selection.as_ref().and_then(|sc| sc.sharpe).map(|v| (v, s.early_stopping_rows)))
        .filter(|(v, _)| v.is_finite())
        .collect();
    if sel.is_empty() {
        return None;
    }
    let h = clock.horizon.max(1.0);
    let periods = clock.bars_per_year / h;
    let selection = sel.iter().map(|s| s.0).sum::<f64>() / sel.len() as f64;
    let slice_trades = sel.iter().map(|s| s.1 as f64).sum::<f64>() / sel.len() as f64 / h;
    let se = annualised_sharpe_se(selection, slice_trades.max(1.0), periods).hypot(annualised_sharpe_se(
        test,
        (rows as f64 / h).max(1.0),
        periods,
    ));
    Some(SharpeGap { selection, test, se })
}

/// Per row, the mean over the backtest paths of position × realised return, kept one row per
/// `horizon` so that trades do not overlap (`None` when a path has no positions).
fn path_pnl(
    task: Task,
    paths: &[(Vec<usize>, Array2<f64>)],
    ret: &[f64],
    n: usize,
    horizon: usize,
) -> Option<Vec<f64>> {
    let (mut sum, mut count) = (vec![0.0f64; n], vec![0u32; n]);
    for (rows, out) in paths {
        let (Some(pos), _) = signals(task, out.view()) else { return None };
        for (&r, p) in rows.iter().zip(pos) {
            sum[r] += p * ret[r];
            count[r] += 1;
        }
    }
    let pnl: Vec<f64> =
        (0..n).step_by(horizon.max(1)).filter(|&r| count[r] > 0).map(|r| sum[r] / count[r] as f64).collect();
    (pnl.len() >= 3).then_some(pnl)
}

/// Seed stability: cross-validate with seeds `0..n` and return the seed-0 report with a
/// [`SeedStudy`] attached (primary-metric variance feeds the `unstable` flag; with realised
/// returns also PBO and the Deflated Sharpe Ratio over the seeds' path-0 PnL) plus the
/// per-seed scores. When seed 1 predicts exactly as seed 0 (nothing in the hyperparameters
/// is random) the study stops there: two identical runs, variance 0, one trial.
pub fn cross_validate_seeds<F>(
    params: &F,
    ds: &Dataset,
    splitter: &dyn Splitter,
    opts: &CvOptions<'_>,
    seeds: usize,
) -> Result<(CvReport, Vec<f64>)>
where
    F: Fit + Sync,
    F::Model: Send,
{
    if seeds < 2 {
        return Err(Error::param("seeds", format!("stability needs at least 2 seeds, got {seeds}")));
    }
    let keep = CvOptions { keep_predictions: true, ..opts.clone() };
    let mut first: Option<CvReport> = None;
    let mut scores = Vec::with_capacity(seeds);
    let mut pnls: Vec<Vec<f64>> = Vec::new();
    for seed in 0..seeds as u64 {
        let r = cross_validate(&params.with_seed(seed), ds, splitter, &keep)?;
        let key = r.task.primary_metric();
        scores.push(r.metric(key).map_or(f64::NAN, |s| s.mean));
        if let (Some(ret), Some((rows, out))) = (&ds.ret, r.path_outputs(0))
            && let (Some(pos), _) = signals(r.task, out.view())
        {
            // One trade per label horizon: overlapping returns would overstate the evidence.
            let h = r.clock.map_or(1, |c| c.horizon.max(1.0) as usize);
            pnls.push(rows.iter().zip(&pos).step_by(h).map(|(&row, p)| p * ret[row]).collect());
        }
        match &first {
            None => first = Some(r),
            // Seed 1 predicting exactly as seed 0 did: the hyperparameters draw nothing from
            // their seed, so further seeds would repeat the same fits.
            Some(f) if seed == 1 && r.oos == f.oos => break,
            Some(_) => {}
        }
        // Hyperparameters known to draw nothing from the seed: seed 1 would repeat seed 0's
        // fits exactly, so its scores are seed 0's (what the measured path above concludes).
        if seed == 0 && params.draws_from_seed() == Some(false) {
            scores.push(scores[0]);
            if let Some(p) = pnls.first().cloned() {
                pnls.push(p);
            }
            break;
        }
    }
    let mut report = first.expect("seeds >= 2");
    if !opts.keep_predictions {
        report.oos.clear();
    }
    let (_, var) = seed_stability(&scores)?;
    report.flags.seed_variance = Some(var);
    report.flags.unstable = var.is_nan() || var > opts.thresholds.max_seed_variance;
    let (mut sharpes, mut pbo_value, mut dsr) = (None, None, None);
    // Seeds that change nothing (no sampling in the params) are one trial, not several: PBO
    // and DSR would only measure ties.
    let distinct = pnls.iter().any(|p| p != &pnls[0]);
    if pnls.len() == seeds && distinct {
        let sr: Vec<f64> = pnls.iter().filter_map(|p| sharpe_ratio(p).ok()).collect();
        if sr.len() == seeds && sr.iter().all(|v| v.is_finite()) {
            dsr = deflated_sharpe(&pnls[0], &sr).ok().filter(|v| v.is_finite());
            sharpes = Some(sr);
        }
        let t = pnls[0].len();
        let matrix: Vec<Vec<f64>> = (0..t).map(|i| pnls.iter().map(|p| p[i]).collect()).collect();
        pbo_value = pbo(&matrix, 8).ok().map(|p| p.pbo);
    }
    if !distinct {
        report.notes.push(if params.draws_from_seed() == Some(false) {
            "the hyperparameters draw nothing from their seed (seed 1 would repeat seed 0): the study stopped there; PBO and DSR across seeds skipped".into()
        } else {
            "seeds 0 and 1 gave the same predictions (nothing random in the hyperparameters): the study stopped there; PBO and DSR across seeds skipped".into()
        });
    }
    if let Some(d) = dsr {
        // The seeds were trials: the paths' Sharpe must beat the best of them by luck.
        report.flags.deflated_sharpe = Some(d);
        report.flags.trials = seeds;
        report.flags.weak_sharpe = d.is_nan() || d < 1.0 - opts.thresholds.alpha;
    }
    report.seeds = Some(SeedStudy { scores: scores.clone(), variance: var, sharpes, pbo: pbo_value, dsr });
    Ok((report, scores))
}

//! The boosting loop and the fitted model: gradients → one tree per output per round →
//! scores, with bagging, feature sampling, early stopping, warm start and cancellation.
//!
//! Every random draw comes from a generator derived from `(seed, round, output)`, every
//! reduction runs in a fixed order over fixed chunks, and histograms are summed by one task
//! per bin, so a seed gives a bit-identical model whatever the thread count. Bin edges come
//! from the training rows only; the validation rows are only ever predicted.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::Dataset;
use crate::gbdt::binning::BinnedMatrix;
use crate::gbdt::grow::{Renew, TreeLearner};
use crate::gbdt::objective::{self, Objective};
use crate::gbdt::params::{GbdtParams, ObjectiveKind};
use crate::gbdt::split::SplitParams;
use crate::gbdt::tree::Tree;
use crate::rng::Rng;

/// Rows per task for gradient and score passes (fixed, for determinism).
const ROW_CHUNK: usize = 1 << 14;

/// Borrowed training or validation rows: features (any layout), labels, optional weights.
#[derive(Clone, Copy, Debug)]
pub struct TrainData<'a> {
    /// `n × features`; NaN marks a missing value.
    pub x: ArrayView2<'a, f32>,
    /// One label per row.
    pub y: &'a [f64],
    /// Optional non-negative sample weights.
    pub weights: Option<&'a [f64]>,
}

impl<'a> TrainData<'a> {
    /// Rows with labels; shapes are checked.
    pub fn new(x: ArrayView2<'a, f32>, y: &'a [f64]) -> Result<Self> {
        if x.nrows() != y.len() {
            return Err(Error::Shape {
                what: "labels (one per feature row)".into(),
                expected: x.nrows(),
                got: y.len(),
            });
        }
        Ok(TrainData { x, y, weights: None })
    }

    /// Attach sample weights (finite, ≥ 0, not all zero).
    pub fn with_weights(mut self, w: &'a [f64]) -> Result<Self> {
        if w.len() != self.y.len() {
            return Err(Error::Shape { what: "sample weights".into(), expected: self.y.len(), got: w.len() });
        }
        if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(Error::param("weights", format!("row {i}: weight {} must be finite and ≥ 0", w[i])));
        }
        if w.iter().all(|&v| v == 0.0) {
            return Err(Error::param("weights", "all weights are zero"));
        }
        self.weights = Some(w);
        Ok(self)
    }

    /// View a [`Dataset`] (its weights included).
    pub fn from_dataset(ds: &'a Dataset) -> Result<Self> {
        let y = ds.y.as_slice().ok_or_else(|| Error::param("dataset.y", "labels must be contiguous"))?;
        let t = TrainData::new(ds.x.view(), y)?;
        match &ds.weights {
            Some(w) => t.with_weights(w.as_slice().ok_or_else(|| Error::param("dataset.weights", "not contiguous"))?),
            None => Ok(t),
        }
    }

    /// Rows.
    pub fn n_rows(&self) -> usize {
        self.y.len()
    }
}

/// Losses after one round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundEval {
    /// 0-based round.
    pub round: usize,
    /// Weighted mean training loss (only when requested: it costs a pass over the rows).
    pub train_loss: Option<f64>,
    /// Weighted mean validation loss, when a validation set was given.
    pub valid_loss: Option<f64>,
}

/// Optional extras for a fit.
#[derive(Default)]
pub struct FitOptions<'a> {
    /// Continue boosting from this model (warm start): its trees are kept and new ones added.
    pub init_model: Option<&'a Gbdt>,
    /// A custom objective instead of `params.objective`.
    pub objective: Option<&'a dyn Objective>,
    /// Record the training loss each round.
    pub eval_train: bool,
    /// Called after every round; return `false` to stop (cooperative cancellation).
    pub on_round: Option<&'a mut (dyn FnMut(&RoundEval) -> bool + Send)>,
}

/// A fitted gradient-boosted tree ensemble.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gbdt {
    /// The parameters it was trained with.
    pub params: GbdtParams,
    /// Built-in objective for output transforms (`None` for a custom objective: outputs are raw).
    pub objective: Option<ObjectiveKind>,
    /// Objective name.
    pub objective_name: String,
    /// Raw scores per row.
    pub num_outputs: usize,
    /// Feature count expected at prediction.
    pub n_features: usize,
    /// Feature names (may be empty).
    pub feature_names: Vec<String>,
    /// Starting raw score per output.
    pub init_score: Vec<f64>,
    /// Trees, round-major: tree `round * num_outputs + k` adds to output `k`.
    pub trees: Vec<Tree>,
    /// Round with the best validation loss when early stopping ran.
    pub best_round: Option<usize>,
    /// Per-round losses.
    pub history: Vec<RoundEval>,
}

impl GbdtParams {
    /// Fit on `train`, optionally watching `valid` (for early stopping and history).
    pub fn fit_data(&self, train: &TrainData<'_>, valid: Option<&TrainData<'_>>) -> Result<Gbdt> {
        self.fit_with(train, valid, FitOptions::default())
    }

    /// Warm start: continue boosting `model` on new rows for `self.rounds` more rounds.
    pub fn fit_continue(&self, model: &Gbdt, train: &TrainData<'_>, valid: Option<&TrainData<'_>>) -> Result<Gbdt> {
        self.fit_with(train, valid, FitOptions { init_model: Some(model), ..FitOptions::default() })
    }

    /// Fit a [`Dataset`] (features, target and weights), optionally watching another; the
    /// model keeps the dataset's feature names. Also available as [`crate::model::Fit::fit`].
    pub fn fit_dataset(&self, train: &Dataset, valid: Option<&Dataset>) -> Result<Gbdt> {
        let t = TrainData::from_dataset(train)?;
        let v = valid.map(TrainData::from_dataset).transpose()?;
        let mut m = self.fit_data(&t, v.as_ref())?;
        m.feature_names = train.feature_names.clone();
        Ok(m)
    }

    /// Fit a custom [`Objective`].
    pub fn fit_with_objective(
        &self,
        obj: &dyn Objective,
        train: &TrainData<'_>,
        valid: Option<&TrainData<'_>>,
    ) -> Result<Gbdt> {
        self.fit_with(train, valid, FitOptions { objective: Some(obj), ..FitOptions::default() })
    }

    /// Fit with every option.
    pub fn fit_with(&self, train: &TrainData<'_>, valid: Option<&TrainData<'_>>, opts: FitOptions<'_>) -> Result<Gbdt> {
        self.validate()?;
        match self.threads {
            Some(t) => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .map_err(|e| Error::param("threads", e.to_string()))?;
                pool.install(|| fit_impl(self, train, valid, opts))
            }
            None => fit_impl(self, train, valid, opts),
        }
    }
}

/// Most rows a fit accepts: a tree's quantized gradient sums need at least one level per sign
/// (`quantize.rs`), and rows are indexed by `u32`.
pub const MAX_ROWS: usize = i32::MAX as usize;

fn check_rows(what: &str, d: &TrainData<'_>, n_features: usize, obj: &dyn Objective) -> Result<()> {
    if d.n_rows() == 0 {
        return Err(Error::Empty { source_name: what.into() });
    }
    if d.n_rows() > MAX_ROWS {
        return Err(Error::param(
            what,
            format!("{} rows: at most {MAX_ROWS} (row indices and quantized gradient sums are 32-bit)", d.n_rows()),
        ));
    }
    if d.x.ncols() != n_features {
        return Err(Error::Shape { what: format!("{what} features"), expected: n_features, got: d.x.ncols() });
    }
    if d.x.nrows() != d.y.len() {
        return Err(Error::Shape { what: format!("{what} labels"), expected: d.x.nrows(), got: d.y.len() });
    }
    if let Some(w) = d.weights
        && w.len() != d.y.len()
    {
        return Err(Error::Shape { what: format!("{what} weights"), expected: d.y.len(), got: w.len() });
    }
    obj.check_labels(d.y).map_err(|e| {
        if let Error::InvalidParam { reason, .. } = e { Error::param(format!("{what}.label"), reason) } else { e }
    })
}

fn fit_impl(
    p: &GbdtParams,
    train: &TrainData<'_>,
    valid: Option<&TrainData<'_>>,
    mut opts: FitOptions<'_>,
) -> Result<Gbdt> {
    let builtin;
    let obj: &dyn Objective = match opts.objective {
        Some(o) => o,
        None => {
            builtin = objective::builtin(p.objective);
            builtin.as_ref()
        }
    };
    let nf = train.x.ncols();
    check_rows("train", train, nf, obj)?;
    if let Some(v) = valid {
        check_rows("valid", v, nf, obj)?;
    }
    if p.early_stopping_rounds.is_some() && valid.is_none() {
        return Err(Error::param("early_stopping_rounds", "needs a validation set"));
    }
    let k = obj.num_outputs();
    if let Some(m) = opts.init_model {
        if m.n_features != nf {
            return Err(Error::Shape { what: "warm-start model features".into(), expected: m.n_features, got: nf });
        }
        if m.num_outputs != k || m.objective_name != obj.name() {
            return Err(Error::param(
                "init_model",
                format!("model was trained with `{}`, this fit uses `{}`", m.objective_name, obj.name()),
            ));
        }
    }
    let n = train.n_rows();
    let bins = BinnedMatrix::fit(train.x, p.max_bin, p.bin_block);
    let mut used_of = vec![usize::MAX; nf];
    for (j, &f) in bins.used.iter().enumerate() {
        used_of[f] = j;
    }

    let (init_score, mut trees, round0) = match opts.init_model {
        Some(m) => (m.init_score.clone(), m.trees.clone(), m.trees.len() / k),
        None => (obj.init_score(train.y, train.weights), Vec::new(), 0),
    };
    // Warm start begins from the old model's raw scores, otherwise from the init score.
    let start = |d: &TrainData<'_>| -> Result<Vec<f64>> {
        match opts.init_model {
            Some(m) => Ok(m.predict_raw(d.x)?.into_raw_vec_and_offset().0),
            None => Ok(init_score.iter().copied().cycle().take(d.n_rows() * k).collect()),
        }
    };
    let mut scores = start(train)?;
    let valid_rows = valid.map(|v| to_row_major(v.x));
    let mut valid_scores = valid.map(start).transpose()?;

    let sp = SplitParams {
        lambda_l1: p.lambda_l1,
        lambda_l2: p.lambda_l2,
        min_data: p.min_data_in_leaf,
        min_hess: p.min_sum_hessian,
        min_gain: p.min_gain_to_split,
    };
    let mut learner = TreeLearner::new(&bins, sp, p.growth, p.feature_fraction_bynode);
    let mut gh = vec![[0f32; 2]; n * k];
    let mut gh_k = if k > 1 { vec![[0f32; 2]; n] } else { Vec::new() };
    let mut bag: Option<Vec<u32>> = None;
    let bagging = p.bagging_freq > 0 && p.bagging_fraction < 1.0;
    let all_features: Vec<usize> = (0..bins.n_used()).collect();
    let renews = obj.renews_leaves();
    let mut history = Vec::with_capacity(p.rounds);
    let mut best: Option<(usize, f64)> = None;
    let mut stopped_early = false;

    for r in 0..p.rounds {
        let round = round0 + r;
        if bagging && r % p.bagging_freq == 0 {
            let m = ((n as f64 * p.bagging_fraction).round() as usize).clamp(1, n);
            let idx = Rng::stream(p.seed, 2 * round as u64).sample_sorted(n, m);
            bag = Some(idx.into_iter().map(|i| i as u32).collect());
        }
        // Gradients in fixed row chunks.
        gh.par_chunks_mut(ROW_CHUNK * k).zip(scores.par_chunks(ROW_CHUNK * k)).enumerate().for_each(|(c, (g, s))| {
            let r0 = c * ROW_CHUNK;
            let rows = g.len() / k;
            obj.gradients(&train.y[r0..r0 + rows], s, g);
            if let Some(w) = train.weights {
                for (i, pair) in g.chunks_mut(k).enumerate() {
                    let wi = w[r0 + i] as f32;
                    for v in pair {
                        v[0] *= wi;
                        v[1] *= wi;
                    }
                }
            }
        });
        for out in 0..k {
            let g: &[[f32; 2]] = if k == 1 {
                &gh
            } else {
                gh_k.par_iter_mut().enumerate().for_each(|(i, d)| *d = gh[i * k + out]);
                &gh_k
            };
            let stream = (round * k + out) as u64;
            let features = if p.feature_fraction < 1.0 && all_features.len() > 1 {
                let m = ((all_features.len() as f64 * p.feature_fraction).round() as usize).max(1);
                Rng::stream(p.seed, 2 * stream + 1).sample_sorted(all_features.len(), m)
            } else {
                all_features.clone()
            };
            let mut rng = Rng::stream(p.seed ^ 0xA5A5_A5A5, stream);
            let scores_ref = &scores;
            let renew_fn = |rows: &[u32]| -> Option<f64> {
                let mut res: Vec<(f64, f64)> = rows
                    .iter()
                    .map(|&i| {
                        let i = i as usize;
                        (train.y[i] - scores_ref[i * k + out], train.weights.map_or(1.0, |w| w[i]))
                    })
                    .collect();
                obj.renew_leaf(&mut res)
            };
            let renew: Option<Renew<'_>> = if renews { Some(&renew_fn) } else { None };
            let tree = learner.grow(g, bag.as_deref(), &features, &mut rng, p.learning_rate, renew);
            add_tree(&tree, &mut learner, bag.is_some(), &bins, &used_of, k, out, &mut scores);
            if let (Some(vs), Some(vr)) = (valid_scores.as_mut(), valid_rows.as_ref()) {
                vs.par_chunks_mut(ROW_CHUNK * k).zip(vr.par_chunks(ROW_CHUNK * nf)).for_each(|(s, x)| {
                    for (srow, xrow) in s.chunks_mut(k).zip(x.chunks(nf)) {
                        srow[out] += tree.predict_row(xrow);
                    }
                });
            }
            trees.push(tree);
        }
        let train_loss = opts.eval_train.then(|| mean_loss(obj, train, &scores, k));
        let valid_loss = valid.zip(valid_scores.as_ref()).map(|(v, s)| mean_loss(obj, v, s, k));
        let ev = RoundEval { round, train_loss, valid_loss };
        let mut go_on = true;
        if let Some(cb) = opts.on_round.as_mut() {
            go_on = cb(&ev);
        }
        history.push(ev);
        if let Some(vl) = valid_loss {
            if best.is_none_or(|(_, b)| vl < b) {
                best = Some((round, vl));
            }
            if let (Some(es), Some((br, _))) = (p.early_stopping_rounds, best)
                && round - br >= es
            {
                stopped_early = true;
                break;
            }
        }
        if !go_on {
            break;
        }
    }
    let best_round = if p.early_stopping_rounds.is_some() { best.map(|b| b.0) } else { None };
    if stopped_early && let Some(br) = best_round {
        trees.truncate((br + 1) * k);
    }
    Ok(Gbdt {
        params: p.clone(),
        objective: if opts.objective.is_some() { None } else { Some(p.objective) },
        objective_name: obj.name(),
        num_outputs: k,
        n_features: nf,
        feature_names: opts.init_model.map(|m| m.feature_names.clone()).unwrap_or_default(),
        init_score,
        trees,
        best_round,
        history,
    })
}

/// Add a freshly grown tree's leaf values to the training scores of output `out`.
#[allow(clippy::too_many_arguments)]
fn add_tree(
    tree: &Tree,
    learner: &mut TreeLearner<'_>,
    bagged: bool,
    bins: &BinnedMatrix,
    used_of: &[usize],
    k: usize,
    out: usize,
    scores: &mut [f64],
) {
    if bagged {
        // Out-of-bag rows did not reach the learner's leaves: route them through the tree.
        scores.par_chunks_mut(ROW_CHUNK * k).enumerate().for_each(|(c, s)| {
            for (i, row) in s.chunks_mut(k).enumerate() {
                row[out] += tree.leaf_values[tree.leaf_of_binned(bins, used_of, c * ROW_CHUNK + i)];
            }
        });
        return;
    }
    // Leaf id per row (small, cache-resident random writes), then one sequential parallel pass.
    let leaf_of = learner.leaf_ids();
    scores.par_chunks_mut(ROW_CHUNK * k).zip(leaf_of.par_chunks(ROW_CHUNK)).for_each(|(s, l)| {
        for (row, &leaf) in s.chunks_mut(k).zip(l) {
            row[out] += tree.leaf_values[leaf as usize];
        }
    });
}

fn mean_loss(obj: &dyn Objective, d: &TrainData<'_>, scores: &[f64], k: usize) -> f64 {
    let parts: Vec<(f64, f64)> = scores
        .par_chunks(ROW_CHUNK * k)
        .enumerate()
        .map(|(c, s)| {
            let mut acc = (0.0, 0.0);
            for (i, raw) in s.chunks(k).enumerate() {
                let r = c * ROW_CHUNK + i;
                let w = d.weights.map_or(1.0, |w| w[r]);
                acc.0 += w * obj.loss(d.y[r], raw);
                acc.1 += w;
            }
            acc
        })
        .collect();
    let (l, w) = parts.into_iter().fold((0.0, 0.0), |a, p| (a.0 + p.0, a.1 + p.1));
    l / w
}

/// Copy any-layout features into a row-major buffer (prediction walks rows).
pub(crate) fn to_row_major(x: ArrayView2<'_, f32>) -> Vec<f32> {
    let (n, nf) = x.dim();
    let mut out = vec![0f32; n * nf];
    out.par_chunks_mut(ROW_CHUNK * nf.max(1)).enumerate().for_each(|(c, o)| copy_rows(x, c * ROW_CHUNK, o));
    out
}

/// Copy rows `r0..r0 + out.len() / ncols` of `x` into `out`, row-major.
fn copy_rows(x: ArrayView2<'_, f32>, r0: usize, out: &mut [f32]) {
    let nf = x.ncols();
    let rows = out.len() / nf.max(1);
    for f in 0..nf {
        let col = x.column(f);
        for i in 0..rows {
            out[i * nf + f] = col[r0 + i];
        }
    }
}

impl Gbdt {
    /// Raw scores of one row into `out` (length `num_outputs`); allocation-free.
    #[inline]
    pub fn predict_row_raw(&self, row: &[f32], out: &mut [f64]) {
        out.copy_from_slice(&self.init_score);
        let k = self.num_outputs;
        if k == 1 {
            // Same summation order as batch prediction, so both give identical bits.
            out[0] = self.trees.iter().fold(out[0], |acc, t| acc + t.predict_row(row));
        } else {
            for (t, tree) in self.trees.iter().enumerate() {
                out[t % k] += tree.predict_row(row);
            }
        }
    }

    /// Transformed output of one row (probability / class probabilities / value).
    /// Allocation-free for up to 64 outputs (the raw scores live on the stack); beyond that
    /// one temporary per call.
    pub fn predict_row(&self, row: &[f32], out: &mut [f64]) {
        self.transformed(out, |raw| self.predict_row_raw(row, raw));
    }

    /// Fill `out` with raw scores via `raw`, then transform them in place; the raw scores
    /// live on the stack for up to 64 outputs (one temporary beyond that).
    pub(crate) fn transformed(&self, out: &mut [f64], raw: impl FnOnce(&mut [f64])) {
        let k = self.num_outputs;
        let mut buf = [0f64; 64];
        if k <= buf.len() {
            raw(&mut buf[..k]);
            self.transform(&buf[..k], out);
        } else {
            raw(out);
            let r = out.to_vec();
            self.transform(&r, out);
        }
    }

    fn transform(&self, raw: &[f64], out: &mut [f64]) {
        match self.objective {
            Some(kind) => kind.transform(raw, out),
            None => out.copy_from_slice(raw),
        }
    }

    fn check_features(&self, x: ArrayView2<'_, f32>) -> Result<()> {
        if x.ncols() != self.n_features {
            return Err(Error::Shape { what: "prediction features".into(), expected: self.n_features, got: x.ncols() });
        }
        Ok(())
    }

    /// Raw scores, `n × num_outputs`, in parallel over fixed row blocks.
    pub fn predict_raw(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        self.check_features(x)?;
        let (n, nf, k) = (x.nrows(), x.ncols(), self.num_outputs);
        let mut out = vec![0.0; n * k];
        const BLOCK: usize = 256;
        out.par_chunks_mut(BLOCK * k).enumerate().for_each(|(c, o)| {
            let r0 = c * BLOCK;
            let rows = o.len() / k;
            let mut buf = vec![0f32; rows * nf];
            copy_rows(x, r0, &mut buf);
            for row in o.chunks_mut(k) {
                row.copy_from_slice(&self.init_score);
            }
            // Trees outer, rows inner: a tree stays in L1 while the block's rows walk it.
            for (t, tree) in self.trees.iter().enumerate() {
                let out_k = t % k;
                for (i, xrow) in buf.chunks(nf.max(1)).enumerate() {
                    o[i * k + out_k] += tree.predict_row(xrow);
                }
            }
        });
        Ok(Array2::from_shape_vec((n, k), out).expect("n × k"))
    }

    /// Transformed outputs (binary: P(y = 1); multiclass: class probabilities), `n × num_outputs`.
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        let mut raw = self.predict_raw(x)?;
        let mut tmp = vec![0.0; self.num_outputs];
        for mut row in raw.rows_mut() {
            let row = row.as_slice_mut().expect("row-major");
            tmp.copy_from_slice(row);
            self.transform(&tmp, row);
        }
        Ok(raw)
    }

    /// Rounds in the model.
    pub fn n_rounds(&self) -> usize {
        self.trees.len() / self.num_outputs.max(1)
    }

    /// Per feature: (number of splits, total gain) over all trees.
    pub fn feature_importance(&self) -> Vec<(usize, f64)> {
        let mut imp = vec![(0usize, 0f64); self.n_features];
        for t in &self.trees {
            for n in &t.nodes {
                let e = &mut imp[n.feature as usize];
                e.0 += 1;
                e.1 += n.gain as f64;
            }
        }
        imp
    }
}

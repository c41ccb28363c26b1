//! Hyperparameters of the boosting engine: a serde struct with documented defaults, linfa-style
//! consuming setters, and one `validate` that names the offending field.
//!
//! The two presets are the model kinds [`GbdtParams::xgboost`] (depth-wise, depth 6,
//! XGBoost's regularisation defaults) and [`GbdtParams::lightgbm`] (leaf-wise, 31 leaves,
//! LightGBM's defaults). They differ only in settings; the engine is the same.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a tree grows.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum Growth {
    /// Level by level up to `max_depth` (XGBoost's `grow_policy=depthwise`).
    DepthWise {
        /// Maximum depth (root = depth 0); at most `2^max_depth` leaves.
        max_depth: u32,
    },
    /// Best-gain leaf first until `num_leaves` (LightGBM's default policy).
    LeafWise {
        /// Maximum number of leaves per tree.
        num_leaves: u32,
        /// Optional depth cap.
        #[serde(default)]
        max_depth: Option<u32>,
    },
}

impl Growth {
    /// Largest number of leaves a tree may have under this policy.
    pub fn max_leaves(&self) -> usize {
        match *self {
            Growth::DepthWise { max_depth } => 1usize << max_depth.min(16),
            Growth::LeafWise { num_leaves, .. } => num_leaves as usize,
        }
    }

    /// Depth cap, if any.
    pub fn max_depth(&self) -> Option<u32> {
        match *self {
            Growth::DepthWise { max_depth } => Some(max_depth),
            Growth::LeafWise { max_depth, .. } => max_depth,
        }
    }
}

/// The loss being boosted (see [`crate::gbdt::objective`] for the formulas).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum ObjectiveKind {
    /// Binary log-loss; labels 0/1; output is a probability.
    Binary,
    /// Squared error.
    Regression,
    /// Softmax over `num_class` classes; labels 0..num_class (e.g. down/flat/up).
    Multiclass {
        /// Number of classes (≥ 2).
        num_class: usize,
    },
    /// Huber loss with transition point `delta`.
    Huber {
        /// Residual size where the loss turns linear.
        delta: f64,
    },
    /// Pinball loss of quantile `alpha`.
    Quantile {
        /// Target quantile in (0, 1).
        alpha: f64,
    },
}

impl ObjectiveKind {
    /// Parse the CLI spelling: `binary`, `regression`, `multiclass:3`, `huber:1.0`, `quantile:0.9`.
    pub fn parse(s: &str) -> Result<ObjectiveKind> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let num = |default: f64| -> Result<f64> {
            match arg {
                None => Ok(default),
                Some(a) => a.parse::<f64>().map_err(|_| Error::param("objective", format!("`{a}` is not a number"))),
            }
        };
        let kind = match name {
            "binary" => ObjectiveKind::Binary,
            "regression" | "l2" => ObjectiveKind::Regression,
            "multiclass" => ObjectiveKind::Multiclass { num_class: num(3.0)? as usize },
            "huber" => ObjectiveKind::Huber { delta: num(1.0)? },
            "quantile" => ObjectiveKind::Quantile { alpha: num(0.5)? },
            other => {
                return Err(Error::param(
                    "objective",
                    format!(
                        "unknown objective `{other}` (binary, regression, multiclass:K, huber:DELTA, quantile:ALPHA)"
                    ),
                ));
            }
        };
        Ok(kind)
    }
}

/// Every setting of a boosting run. `Default` is the `lightgbm` preset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GbdtParams {
    /// Loss to minimise.
    pub objective: ObjectiveKind,
    /// Boosting rounds (trees per output).
    pub rounds: usize,
    /// Shrinkage applied to every leaf value.
    pub learning_rate: f64,
    /// Growth policy and its size limits.
    pub growth: Growth,
    /// Maximum value bins per feature (≤ 255 stores bins as u8, up to 65535 as u16); NaN gets one more.
    pub max_bin: usize,
    /// Minimum training rows in a leaf.
    pub min_data_in_leaf: usize,
    /// Minimum hessian sum in a leaf.
    pub min_sum_hessian: f64,
    /// L1 regularisation of leaf values.
    pub lambda_l1: f64,
    /// L2 regularisation of leaf values.
    pub lambda_l2: f64,
    /// Minimum gain for a split to be made.
    pub min_gain_to_split: f64,
    /// Fraction of rows used per bagging draw (1 = no bagging).
    pub bagging_fraction: f64,
    /// Redraw the bag every `bagging_freq` rounds (0 = no bagging).
    pub bagging_freq: usize,
    /// Fraction of features available to each tree.
    pub feature_fraction: f64,
    /// Fraction of the tree's features available at each node.
    pub feature_fraction_bynode: f64,
    /// Rows up to which bin edges are exact quantiles; larger training sets are summarised in
    /// blocks of this many rows merged by a quantile sketch (every row counts, no sampling).
    /// Read as `bin_sample` too (its name before the sketch replaced row sampling).
    #[serde(alias = "bin_sample")]
    pub bin_block: usize,
    /// Seed for bagging and feature sampling.
    pub seed: u64,
    /// Stop when the validation loss has not improved for this many rounds (needs a validation set).
    pub early_stopping_rounds: Option<usize>,
    /// Run in a private pool of this many threads; `None` uses the caller's rayon pool.
    pub threads: Option<usize>,
}

impl Default for GbdtParams {
    fn default() -> Self {
        GbdtParams::lightgbm()
    }
}

impl GbdtParams {
    /// Kind `lightgbm`: leaf-wise, 31 leaves, LightGBM's defaults (min_data 20, λ2 = 0).
    pub fn lightgbm() -> Self {
        GbdtParams {
            objective: ObjectiveKind::Binary,
            rounds: 100,
            learning_rate: 0.1,
            growth: Growth::LeafWise { num_leaves: 31, max_depth: None },
            max_bin: 255,
            min_data_in_leaf: 20,
            min_sum_hessian: 1e-3,
            lambda_l1: 0.0,
            lambda_l2: 0.0,
            min_gain_to_split: 0.0,
            bagging_fraction: 1.0,
            bagging_freq: 0,
            feature_fraction: 1.0,
            feature_fraction_bynode: 1.0,
            bin_block: 200_000,
            seed: 0,
            early_stopping_rounds: None,
            threads: None,
        }
    }

    /// Kind `xgboost`: depth-wise, max depth 6, XGBoost's defaults (λ2 = 1, min_child_weight 1).
    pub fn xgboost() -> Self {
        GbdtParams {
            growth: Growth::DepthWise { max_depth: 6 },
            min_data_in_leaf: 1,
            min_sum_hessian: 1.0,
            lambda_l2: 1.0,
            ..GbdtParams::lightgbm()
        }
    }

    /// Set the objective.
    pub fn objective(mut self, o: ObjectiveKind) -> Self {
        self.objective = o;
        self
    }
    /// Whether a fit samples anything with the seed: row bagging, or features per tree or per
    /// node (without them every seed grows the same trees).
    pub fn draws_from_seed(&self) -> bool {
        (self.bagging_freq > 0 && self.bagging_fraction < 1.0)
            || self.feature_fraction < 1.0
            || self.feature_fraction_bynode < 1.0
    }
    /// Set the number of rounds.
    pub fn rounds(mut self, n: usize) -> Self {
        self.rounds = n;
        self
    }
    /// Set the learning rate.
    pub fn learning_rate(mut self, lr: f64) -> Self {
        self.learning_rate = lr;
        self
    }
    /// Set the growth policy.
    pub fn growth(mut self, g: Growth) -> Self {
        self.growth = g;
        self
    }
    /// Leaf-wise growth with `n` leaves (keeps an existing leaf-wise depth cap).
    pub fn num_leaves(mut self, n: u32) -> Self {
        let max_depth = match self.growth {
            Growth::LeafWise { max_depth, .. } => max_depth,
            Growth::DepthWise { .. } => None,
        };
        self.growth = Growth::LeafWise { num_leaves: n, max_depth };
        self
    }
    /// Depth-wise growth to depth `d`.
    pub fn max_depth(mut self, d: u32) -> Self {
        self.growth = Growth::DepthWise { max_depth: d };
        self
    }
    /// Set the maximum number of value bins per feature.
    pub fn max_bin(mut self, n: usize) -> Self {
        self.max_bin = n;
        self
    }
    /// Set the minimum rows per leaf.
    pub fn min_data_in_leaf(mut self, n: usize) -> Self {
        self.min_data_in_leaf = n;
        self
    }
    /// Set the minimum hessian sum per leaf.
    pub fn min_sum_hessian(mut self, h: f64) -> Self {
        self.min_sum_hessian = h;
        self
    }
    /// Set L1 regularisation.
    pub fn lambda_l1(mut self, l: f64) -> Self {
        self.lambda_l1 = l;
        self
    }
    /// Set L2 regularisation.
    pub fn lambda_l2(mut self, l: f64) -> Self {
        self.lambda_l2 = l;
        self
    }
    /// Set the minimum split gain.
    pub fn min_gain_to_split(mut self, g: f64) -> Self {
        self.min_gain_to_split = g;
        self
    }
    /// Row bagging: `fraction` of rows, redrawn every `freq` rounds.
    pub fn bagging(mut self, fraction: f64, freq: usize) -> Self {
        self.bagging_fraction = fraction;
        self.bagging_freq = freq;
        self
    }
    /// Feature sampling per tree and per node.
    pub fn feature_fraction(mut self, per_tree: f64, per_node: f64) -> Self {
        self.feature_fraction = per_tree;
        self.feature_fraction_bynode = per_node;
        self
    }
    /// Set the seed.
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = s;
        self
    }
    /// Enable early stopping on the validation set.
    pub fn early_stopping_rounds(mut self, n: usize) -> Self {
        self.early_stopping_rounds = Some(n);
        self
    }
    /// Run in a private pool of `n` threads.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    /// Check every value; the error names the first offending field.
    pub fn validate(&self) -> Result<()> {
        let finite_nonneg = |field: &'static str, v: f64| -> Result<()> {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::param(field, format!("must be finite and ≥ 0, got {v}")))
            }
        };
        let fraction = |field: &'static str, v: f64| -> Result<()> {
            if v > 0.0 && v <= 1.0 { Ok(()) } else { Err(Error::param(field, format!("must be in (0, 1], got {v}"))) }
        };
        match self.objective {
            ObjectiveKind::Multiclass { num_class } if !(2..=1024).contains(&num_class) => {
                return Err(Error::param("objective.num_class", format!("must be in 2..=1024, got {num_class}")));
            }
            ObjectiveKind::Huber { delta } if !(delta.is_finite() && delta > 0.0) => {
                return Err(Error::param("objective.delta", format!("must be finite and > 0, got {delta}")));
            }
            ObjectiveKind::Quantile { alpha } if !(alpha > 0.0 && alpha < 1.0) => {
                return Err(Error::param("objective.alpha", format!("must be in (0, 1), got {alpha}")));
            }
            _ => {}
        }
        if self.rounds == 0 {
            return Err(Error::param("rounds", "must be at least 1"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::param("learning_rate", format!("must be finite and > 0, got {}", self.learning_rate)));
        }
        match self.growth {
            Growth::DepthWise { max_depth } if !(1..=16).contains(&max_depth) => {
                return Err(Error::param("max_depth", format!("must be in 1..=16, got {max_depth}")));
            }
            Growth::LeafWise { num_leaves, max_depth } => {
                if !(2..=131_072).contains(&num_leaves) {
                    return Err(Error::param("num_leaves", format!("must be in 2..=131072, got {num_leaves}")));
                }
                if let Some(d) = max_depth
                    && !(1..=64).contains(&d)
                {
                    return Err(Error::param("max_depth", format!("must be in 1..=64, got {d}")));
                }
            }
            _ => {}
        }
        if !(2..=65_535).contains(&self.max_bin) {
            return Err(Error::param("max_bin", format!("must be in 2..=65535, got {}", self.max_bin)));
        }
        finite_nonneg("min_sum_hessian", self.min_sum_hessian)?;
        finite_nonneg("lambda_l1", self.lambda_l1)?;
        finite_nonneg("lambda_l2", self.lambda_l2)?;
        finite_nonneg("min_gain_to_split", self.min_gain_to_split)?;
        fraction("bagging_fraction", self.bagging_fraction)?;
        fraction("feature_fraction", self.feature_fraction)?;
        fraction("feature_fraction_bynode", self.feature_fraction_bynode)?;
        if self.bin_block < 2 {
            return Err(Error::param("bin_block", "must be at least 2"));
        }
        if self.early_stopping_rounds == Some(0) {
            return Err(Error::param("early_stopping_rounds", "must be at least 1 when set"));
        }
        if self.threads == Some(0) {
            return Err(Error::param("threads", "must be at least 1 when set"));
        }
        Ok(())
    }

    /// Parse from TOML (unknown keys rejected).
    pub fn from_toml_str(s: &str) -> Result<Self> {
        let p: GbdtParams = toml::from_str(s)
            .map_err(|e| Error::Config { source_name: "gbdt params".into(), message: e.to_string() })?;
        p.validate()?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_bad_values_name_the_field() {
        GbdtParams::lightgbm().validate().unwrap();
        GbdtParams::xgboost().validate().unwrap();
        let cases: Vec<(GbdtParams, &str)> = vec![
            (GbdtParams::default().learning_rate(0.0), "learning_rate"),
            (GbdtParams::default().learning_rate(f64::NAN), "learning_rate"),
            (GbdtParams::default().rounds(0), "rounds"),
            (GbdtParams::default().num_leaves(1), "num_leaves"),
            (GbdtParams::default().max_depth(0), "max_depth"),
            (GbdtParams::default().max_bin(1), "max_bin"),
            (GbdtParams::default().max_bin(70_000), "max_bin"),
            (GbdtParams::default().lambda_l2(-1.0), "lambda_l2"),
            (GbdtParams::default().bagging(0.0, 1), "bagging_fraction"),
            (GbdtParams::default().feature_fraction(1.5, 1.0), "feature_fraction"),
            (GbdtParams::default().objective(ObjectiveKind::Quantile { alpha: 1.0 }), "objective.alpha"),
            (GbdtParams::default().objective(ObjectiveKind::Multiclass { num_class: 1 }), "objective.num_class"),
            (GbdtParams::default().threads(0), "threads"),
        ];
        for (p, field) in cases {
            match p.validate() {
                Err(Error::InvalidParam { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected InvalidParam({field}), got {other:?}"),
            }
        }
    }

    #[test]
    fn serde_round_trip_and_unknown_keys() {
        let p = GbdtParams::xgboost().objective(ObjectiveKind::Multiclass { num_class: 3 }).seed(7);
        let s = toml::to_string(&p).unwrap();
        assert_eq!(GbdtParams::from_toml_str(&s).unwrap(), p);
        assert!(matches!(GbdtParams::from_toml_str("rounds = 5\nlearning_rat = 0.1"), Err(Error::Config { .. })));
        assert!(
            matches!(GbdtParams::from_toml_str("rounds = 0"), Err(Error::InvalidParam { ref field, .. }) if field == "rounds")
        );
        // Files and saved models written before the sketch still load.
        assert_eq!(GbdtParams::from_toml_str("bin_sample = 5000").unwrap().bin_block, 5000);
    }

    #[test]
    fn objective_cli_spelling() {
        assert_eq!(ObjectiveKind::parse("multiclass:3").unwrap(), ObjectiveKind::Multiclass { num_class: 3 });
        assert_eq!(ObjectiveKind::parse("quantile:0.9").unwrap(), ObjectiveKind::Quantile { alpha: 0.9 });
        assert!(ObjectiveKind::parse("poisson").is_err());
    }
}

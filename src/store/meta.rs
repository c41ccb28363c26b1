//! What a version records about itself (`meta.json`) and the status lifecycle.
//!
//! `meta.json` is immutable once a version is committed and is covered by the manifest's
//! checksums; its `status` is the status the version was registered with. The *current*
//! status lives in the model's `aliases.json`, so that one atomic rename moves an alias and
//! every status that changes with it (see [`crate::store::state`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Where a version stands in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Being trained or validated; not serving.
    #[default]
    Training,
    /// Predicting beside the active version for comparison (at most one per model).
    Shadow,
    /// Serving (at most one per model).
    Active,
    /// Taken out of service; may be rolled back to.
    Retired,
    /// Training or validation failed; terminal.
    Failed,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 5] = [Status::Training, Status::Shadow, Status::Active, Status::Retired, Status::Failed];

    /// Whether the lifecycle allows going from `self` to `to`.
    ///
    /// TRAINING → SHADOW | ACTIVE | RETIRED | FAILED; SHADOW → ACTIVE | RETIRED | FAILED;
    /// ACTIVE → RETIRED; RETIRED → ACTIVE (rollback); FAILED is terminal.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Training, Shadow | Active | Retired | Failed)
                | (Shadow, Active | Retired | Failed)
                | (Active, Retired)
                | (Retired, Active)
        )
    }

    /// The stored spelling (`ACTIVE`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Training => "TRAINING",
            Status::Shadow => "SHADOW",
            Status::Active => "ACTIVE",
            Status::Retired => "RETIRED",
            Status::Failed => "FAILED",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Status {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Status::ALL.into_iter().find(|st| st.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
            Error::param("status", format!("`{s}` (expected training, shadow, active, retired or failed)"))
        })
    }
}

/// The span of bars a version was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataRange {
    /// First bar's open time.
    pub start: Timestamp,
    /// Last bar's open time.
    pub end: Timestamp,
}

/// Everything a version records about how it was made. The store fills
/// `version_tag`, `created_at` and `crate_version`; the rest comes from the caller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VersionMeta {
    /// Model kind (`lightgbm`, `xgboost`, `patchtst`, …).
    pub model_kind: String,
    /// The version tag (set by the store at registration).
    pub version_tag: String,
    /// Registration time (set by the store from its clock).
    pub created_at: Option<Timestamp>,
    /// Status requested at registration (the current one is in `aliases.json`).
    pub status: Status,
    /// Training data range.
    pub data_range: Option<DataRange>,
    /// Training sample count.
    pub n_samples: Option<u64>,
    /// Feature count.
    pub n_features: Option<u64>,
    /// Feature spec as the caller serialised it.
    pub feature_spec: Option<Value>,
    /// Label spec.
    pub label_spec: Option<Value>,
    /// Hyperparameters.
    pub hyperparameters: Option<Value>,
    /// In-sample metrics by name.
    pub train_metrics: BTreeMap<String, f64>,
    /// Validation (out-of-sample) metrics by name.
    pub validation_metrics: BTreeMap<String, f64>,
    /// Cross-validation report summary.
    pub cv_summary: Option<Value>,
    /// The version this one was warm-started or retrained from.
    pub parent_version: Option<String>,
    /// `retrain` crate version that wrote it (set by the store).
    pub crate_version: String,
    /// Training seed.
    pub seed: Option<u64>,
    /// Free-form host data (kept verbatim).
    pub extra: BTreeMap<String, Value>,
}

impl VersionMeta {
    /// A meta for a model kind with everything else empty.
    pub fn new(model_kind: impl Into<String>) -> Self {
        VersionMeta { model_kind: model_kind.into(), ..Default::default() }
    }

    /// Parse a caller-written `meta.json` (unknown keys are an error naming the file).
    pub fn from_json_str(text: &str, source_name: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| Error::Config { source_name: source_name.to_string(), message: e.to_string() })
    }

    /// Reject values JSON cannot carry faithfully (NaN metrics would come back as `null`).
    pub(crate) fn check(&self) -> Result<()> {
        for (what, map) in [("train_metrics", &self.train_metrics), ("validation_metrics", &self.validation_metrics)] {
            if let Some((k, v)) = map.iter().find(|(_, v)| !v.is_finite()) {
                return Err(Error::param(format!("meta.{what}.{k}"), format!("{v} is not finite")));
            }
        }
        if let Some(r) = self.data_range
            && r.end < r.start
        {
            return Err(Error::param("meta.data_range", format!("end {} is before start {}", r.end, r.start)));
        }
        if let Some(p) = &self.parent_version {
            crate::store::layout::check_tag(p)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_lifecycle() {
        use Status::*;
        let legal: Vec<(Status, Status)> = Status::ALL
            .into_iter()
            .flat_map(|a| Status::ALL.into_iter().map(move |b| (a, b)))
            .filter(|(a, b)| a.can_become(*b))
            .collect();
        assert_eq!(
            legal,
            vec![
                (Training, Shadow),
                (Training, Active),
                (Training, Retired),
                (Training, Failed),
                (Shadow, Active),
                (Shadow, Retired),
                (Shadow, Failed),
                (Active, Retired),
                (Retired, Active),
            ]
        );
        assert_eq!("shadow".parse::<Status>().unwrap(), Shadow);
        assert!("deployed".parse::<Status>().is_err());
        assert_eq!(serde_json::to_string(&Active).unwrap(), "\"ACTIVE\"");
    }

    #[test]
    fn meta_rejects_unknown_keys_and_nan() {
        let e = VersionMeta::from_json_str(r#"{"model_kind":"lightgbm","colour":"red"}"#, "m.json").unwrap_err();
        assert!(e.to_string().contains("m.json") && e.to_string().contains("colour"), "{e}");
        let mut m = VersionMeta::new("lightgbm");
        m.validation_metrics.insert("auc".into(), f64::NAN);
        assert!(m.check().unwrap_err().to_string().contains("validation_metrics.auc"));
    }
}

//! Which versions `gc` may delete: per model keep the last `max_versions`, never
//! delete a version that was ever ACTIVE or that an alias points at, and keep at most
//! `max_non_deployed` never-deployed versions beyond the last `max_versions`. Pure planning
//! over a model's state; the store performs the two-phase delete.

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::state::ModelState;

/// Retention settings (the policy's defaults unless set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Most recent versions always kept per model (default 10).
    pub max_versions: usize,
    /// Never-deployed versions kept beyond those (default 5).
    pub max_non_deployed: usize,
    /// How long a trashed version waits before `gc` purges it (default 24 h).
    pub trash_grace: SignedDuration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy { max_versions: 10, max_non_deployed: 5, trash_grace: SignedDuration::from_hours(24) }
    }
}

impl From<&crate::config::Policy> for RetentionPolicy {
    /// The retention part of a lifecycle policy.
    fn from(p: &crate::config::Policy) -> Self {
        RetentionPolicy {
            max_versions: p.max_versions,
            max_non_deployed: p.max_non_deployed,
            trash_grace: SignedDuration::from_hours(p.trash_grace_hours as i64),
        }
    }
}

impl RetentionPolicy {
    /// Reject settings that would delete everything.
    pub fn check(&self) -> Result<()> {
        if self.max_versions == 0 {
            return Err(Error::param("retention.max_versions", "must be at least 1"));
        }
        if self.trash_grace.is_negative() {
            return Err(Error::param("retention.trash_grace", "must not be negative"));
        }
        Ok(())
    }
}

/// A version retention would delete, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Doomed {
    /// The version tag.
    pub tag: String,
    /// The rule that lets it go.
    pub reason: String,
}

/// The versions of one model that `policy` lets go, oldest first.
pub fn plan(state: &ModelState, policy: &RetentionPolicy) -> Vec<Doomed> {
    let mut by_recency: Vec<(&String, u64, bool)> =
        state.versions.iter().map(|(t, e)| (t, e.seq, e.deployed_at.is_some())).collect();
    by_recency.sort_by_key(|x| std::cmp::Reverse(x.1));
    let aliased =
        |t: &str| [&state.active, &state.shadow, &state.previous_active].iter().any(|a| a.as_deref() == Some(t));
    let mut extra_kept = 0usize;
    let mut doomed = Vec::new();
    for (tag, _, deployed) in by_recency.into_iter().skip(policy.max_versions) {
        if deployed || aliased(tag) {
            continue;
        }
        if extra_kept < policy.max_non_deployed {
            extra_kept += 1;
            continue;
        }
        doomed.push(Doomed {
            tag: tag.clone(),
            reason: format!(
                "retention: older than the last {} versions, never deployed, beyond {} kept non-deployed",
                policy.max_versions, policy.max_non_deployed
            ),
        });
    }
    doomed.reverse();
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::meta::Status;
    use jiff::Timestamp;
    use proptest::prelude::*;

    /// A random history: registrations interleaved with promotions, shadows, rollbacks,
    /// retirements and failures, applied through the real transition code.
    fn history(ops: &[(u8, u8)]) -> ModelState {
        let mut s = ModelState { next_seq: 1, ..Default::default() };
        let mut n = 0u64;
        for &(op, pick) in ops {
            let now = Timestamp::from_second(1_790_000_000 + n as i64).unwrap();
            if op < 3 || s.versions.is_empty() {
                n += 1;
                s.insert(&format!("v{n:04}"), now);
                continue;
            }
            let tags: Vec<String> = s.versions.keys().cloned().collect();
            let tag = &tags[pick as usize % tags.len()];
            let to = [Status::Active, Status::Shadow, Status::Retired, Status::Failed][(op - 3) as usize % 4];
            let _ = s.apply("m", tag, to, "", now, &mut |_: &str| pick % 3 != 0);
        }
        s
    }

    proptest! {
        #[test]
        fn kept_set_satisfies_the_spec(ops in prop::collection::vec((0u8..8, any::<u8>()), 0..120),
                                        max_versions in 1usize..12, max_non_deployed in 0usize..6) {
            let s = history(&ops);
            let policy = RetentionPolicy { max_versions, max_non_deployed, ..Default::default() };
            let doomed: Vec<String> = plan(&s, &policy).into_iter().map(|d| d.tag).collect();
            let mut by_recency: Vec<(&String, u64)> = s.versions.iter().map(|(t, e)| (t, e.seq)).collect();
            by_recency.sort_by_key(|x| std::cmp::Reverse(x.1));
            let recent: Vec<&String> = by_recency.iter().take(max_versions).map(|x| x.0).collect();
            let aliased = |t: &String| [&s.active, &s.shadow, &s.previous_active].iter().any(|a| a.as_ref() == Some(t));
            for t in &doomed {
                let e = &s.versions[t];
                prop_assert!(e.deployed_at.is_none(), "{t} was deployed");
                prop_assert!(!aliased(t), "{t} is aliased");
                prop_assert!(!recent.contains(&t), "{t} is among the last {max_versions}");
            }
            // Beyond the recent window, never-deployed kept versions are capped…
            let kept_extra: Vec<&String> = by_recency.iter().skip(max_versions).map(|x| x.0)
                .filter(|t| s.versions[*t].deployed_at.is_none() && !aliased(t) && !doomed.contains(t)).collect();
            prop_assert!(kept_extra.len() <= max_non_deployed);
            // …and nothing is deleted that the cap did not require: every doomed version is
            // older than every kept extra one, and the cap is full.
            if let Some(oldest_doomed) = doomed.iter().map(|t| s.versions[t].seq).max() {
                prop_assert_eq!(kept_extra.len(), max_non_deployed);
                prop_assert!(kept_extra.iter().all(|t| s.versions[*t].seq > oldest_doomed));
            }
            let mut after = s.clone();
            after.remove(&doomed);
            prop_assert_eq!(after.check(), Ok(()));
        }
    }

    #[test]
    fn spec_defaults() {
        let p = RetentionPolicy::default();
        assert_eq!((p.max_versions, p.max_non_deployed), (10, 5));
        p.check().unwrap();
        assert!(RetentionPolicy { max_versions: 0, ..p }.check().is_err());
        // The lifecycle policy's defaults give the same retention.
        assert_eq!(RetentionPolicy::from(&crate::config::Policy::default()), p);
    }
}

//! Q-tables as versions in the version store: a snapshot is registered like a model version
//! (kind `rl_meta` or `rl_sizing`, one artefact `qtable.json`, checksummed by the store), the
//! live table is the ACTIVE one, and a rollback makes an older snapshot ACTIVE again. The
//! store's crash safety, audit log and retention apply unchanged.

use crate::rl::qtable::{Action, QAgent, QSnapshot};
use crate::store::{Artifact, Change, Status, VersionMeta, VersionStore};
use crate::{Error, Result};

/// The artefact a snapshot is stored as.
pub const ARTIFACT: &str = "qtable.json";

/// Register `agent`'s table as a new version of `model_id` with `kind` (`rl_meta`,
/// `rl_sizing`) in `status` (ACTIVE makes it the live table, retiring the previous one), with
/// `metrics` beside its update count, state count and ε in the version's `train_metrics`.
/// Returns the tag.
pub fn save<A: Action>(
    store: &VersionStore,
    model_id: &str,
    kind: &str,
    agent: &QAgent<A>,
    status: Status,
    metrics: &[(&str, f64)],
    change: &Change,
) -> Result<String> {
    let snap = agent.snapshot(store.now());
    let bytes = serde_json::to_vec(&snap)
        .map_err(|e| Error::param("rl.snapshot", format!("cannot serialise the table: {e}")))?;
    let mut meta = VersionMeta::new(kind);
    meta.status = status;
    meta.seed = Some(agent.config().seed);
    meta.hyperparameters = serde_json::to_value(agent.config()).ok();
    meta.train_metrics.insert("total_updates".into(), agent.total_updates() as f64);
    meta.train_metrics.insert("states".into(), agent.n_states() as f64);
    meta.train_metrics.insert("epsilon".into(), agent.epsilon());
    for &(name, value) in metrics {
        meta.train_metrics.insert(name.into(), value);
    }
    store.register(model_id, meta, &[Artifact::bytes(ARTIFACT, bytes)], change)
}

/// The agent stored as version `tag` of `model_id` (checksums verified by the store).
pub fn load<A: Action>(store: &VersionStore, model_id: &str, tag: &str) -> Result<QAgent<A>> {
    let bytes = store.load_artifact(model_id, tag, ARTIFACT)?;
    let source = format!("{model_id}@{tag}/{ARTIFACT}");
    let snap: QSnapshot = serde_json::from_slice(&bytes)
        .map_err(|e| Error::CorruptModel { source_name: source.clone(), reason: e.to_string() })?;
    QAgent::restore(&snap, &source)
}

/// The live (ACTIVE) table of `model_id` and its tag, if one is deployed.
pub fn load_active<A: Action>(store: &VersionStore, model_id: &str) -> Result<Option<(String, QAgent<A>)>> {
    match store.active(model_id)? {
        Some(v) => {
            let agent = load(store, model_id, &v.meta.version_tag)?;
            Ok(Some((v.meta.version_tag, agent)))
        }
        None => Ok(None),
    }
}

/// Make the stored snapshot `tag` the live table again and return it.
pub fn rollback<A: Action>(store: &VersionStore, model_id: &str, tag: &str, change: &Change) -> Result<QAgent<A>> {
    // Load first: a snapshot that does not restore is never made live.
    let agent = load(store, model_id, tag)?;
    store.rollback(model_id, tag, change)?;
    Ok(agent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rl::meta_strategy::Strategy;
    use crate::rl::qtable::{QConfig, Transition};

    fn trained(reward_of: impl Fn(Strategy) -> f64, n: usize) -> QAgent<Strategy> {
        let mut q = QAgent::new(QConfig { seed: 9, ..QConfig::default() }).unwrap();
        for _ in 0..n {
            let a = q.choose("S");
            q.update(&Transition { state: "S", action: a, reward: reward_of(a), next: None }).unwrap();
        }
        q
    }

    #[test]
    fn snapshots_are_versions_the_live_one_is_active_and_rollback_restores_an_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = VersionStore::open(dir.path()).unwrap();
        let change = Change::new("test", "snapshot");
        assert!(load_active::<Strategy>(&store, "meta").unwrap().is_none());
        let first = trained(|a| if a == Strategy::Breakout { 1.0 } else { 0.0 }, 300);
        let t1 = save(&store, "meta", "rl_meta", &first, Status::Active, &[], &change).unwrap();
        let second = trained(|a| if a == Strategy::Defensive { 1.0 } else { 0.0 }, 300);
        let t2 = save(&store, "meta", "rl_meta", &second, Status::Active, &[], &change).unwrap();
        let (tag, live) = load_active::<Strategy>(&store, "meta").unwrap().unwrap();
        assert_eq!(tag, t2);
        assert_eq!(live.greedy("S").0, Strategy::Defensive);
        assert_eq!(store.get("meta", &t2).unwrap().meta.model_kind, "rl_meta");
        // Back to the first table: it is live again and chooses as it did.
        let back = rollback::<Strategy>(&store, "meta", &t1, &change).unwrap();
        assert_eq!(back.greedy("S").0, Strategy::Breakout);
        let (tag, live) = load_active::<Strategy>(&store, "meta").unwrap().unwrap();
        assert_eq!(tag, t1);
        let snap = |a: &QAgent<Strategy>| a.snapshot(jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(snap(&live), snap(&first));
        assert!(store.history("meta").unwrap().len() >= 3);
    }

    #[test]
    fn a_snapshot_of_other_actions_is_refused_and_never_made_live() {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        struct Only;
        impl Action for Only {
            fn all() -> Vec<Self> {
                vec![Only]
            }
            fn key(&self) -> String {
                "only".into()
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let store = VersionStore::open(dir.path()).unwrap();
        let change = Change::new("test", "snapshot");
        let good = trained(|_| 1.0, 10);
        let t1 = save(&store, "meta", "rl_meta", &good, Status::Active, &[], &change).unwrap();
        let other = QAgent::<Only>::new(QConfig::default()).unwrap();
        let t2 = save(&store, "meta", "rl_meta", &other, Status::Retired, &[], &change).unwrap();
        let e = rollback::<Strategy>(&store, "meta", &t2, &change).unwrap_err().to_string();
        assert!(e.contains(&t2) && e.contains("actions"), "{e}");
        assert_eq!(load_active::<Strategy>(&store, "meta").unwrap().unwrap().0, t1);
    }
}

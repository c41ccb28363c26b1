//! A model's mutable state, `aliases.json`: the current status of every kept version, the
//! `active` / `shadow` / `previous_active` aliases, the deployment history and a generation
//! counter. It is the single commit point of every change to a model: replacing this one file
//! (atomically) moves the aliases and every status that changes with them together, so no
//! crash can leave two ACTIVE versions or an alias pointing at a non-active one.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::atomic::read_optional;
use crate::store::meta::Status;

/// Current state of one kept version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionEntry {
    /// Registration order within the model (1, 2, …); orders versions without parsing tags.
    pub seq: u64,
    /// Current status.
    pub status: Status,
    /// Registration time.
    pub created_at: Timestamp,
    /// When the status last changed.
    pub status_since: Timestamp,
    /// First time it became ACTIVE (`Some` = "was ever deployed", kept forever by retention).
    pub deployed_at: Option<Timestamp>,
}

/// One activation, for the deployment history and fallback choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// The version that became active.
    pub tag: String,
    /// When.
    pub at: Timestamp,
}

/// The contents of `aliases.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelState {
    /// Bumped by every committed change; the compare-and-swap token.
    pub generation: u64,
    /// The serving version.
    pub active: Option<String>,
    /// The version under shadow evaluation.
    pub shadow: Option<String>,
    /// The version that was active before the current one (the rollback / fallback target).
    pub previous_active: Option<String>,
    /// Sequence number the next registration gets.
    pub next_seq: u64,
    /// Kept versions by tag.
    pub versions: BTreeMap<String, VersionEntry>,
    /// Every activation, oldest first.
    pub deployments: Vec<Deployment>,
}

/// One status that a change moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// The version.
    pub tag: String,
    /// Status before.
    pub from: Status,
    /// Status after.
    pub to: Status,
    /// Why (the requested change itself, or the side effect it caused).
    pub why: String,
}

impl ModelState {
    /// Read `path`; a missing file is an empty state (generation 0). Garbage is a typed error.
    pub(crate) fn read(path: &Path) -> Result<ModelState> {
        match read_optional(path)? {
            None => Ok(ModelState { next_seq: 1, ..Default::default() }),
            Some(bytes) => {
                let s: ModelState = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::CorruptStore { path: path.to_path_buf(), reason: e.to_string() })?;
                s.check().map_err(|reason| Error::CorruptStore { path: path.to_path_buf(), reason })?;
                Ok(s)
            }
        }
    }

    /// Serialise for `aliases.json`.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(self).expect("state serialises");
        b.push(b'\n');
        b
    }

    /// The invariants every committed state satisfies.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let with = |st: Status| self.versions.iter().filter(move |(_, e)| e.status == st).map(|(t, _)| t.as_str());
        let actives: Vec<&str> = with(Status::Active).collect();
        if actives.len() > 1 {
            return Err(format!("{} versions are ACTIVE: {}", actives.len(), actives.join(", ")));
        }
        if actives.first().copied() != self.active.as_deref() {
            return Err(format!("alias active = {:?} but the ACTIVE version is {:?}", self.active, actives.first()));
        }
        let shadows: Vec<&str> = with(Status::Shadow).collect();
        if shadows.len() > 1 || shadows.first().copied() != self.shadow.as_deref() {
            return Err(format!("alias shadow = {:?} but SHADOW versions are {shadows:?}", self.shadow));
        }
        if let Some(p) = &self.previous_active
            && !self.versions.contains_key(p)
        {
            return Err(format!("previous_active {p} is not a kept version"));
        }
        for d in &self.deployments {
            match self.versions.get(&d.tag) {
                Some(e) if e.deployed_at.is_some() => {}
                _ => return Err(format!("deployment of {} has no kept, deployed version", d.tag)),
            }
        }
        if let Some(e) = self.versions.values().find(|e| e.seq >= self.next_seq) {
            return Err(format!("version seq {} is not below next_seq {}", e.seq, self.next_seq));
        }
        Ok(())
    }

    /// Add a new version (status TRAINING) and return its entry's tag.
    pub(crate) fn insert(&mut self, tag: &str, now: Timestamp) {
        let seq = self.next_seq.max(1);
        self.next_seq = seq + 1;
        self.versions.insert(
            tag.to_string(),
            VersionEntry { seq, status: Status::Training, created_at: now, status_since: now, deployed_at: None },
        );
    }

    /// Move `tag` to `to` with every side effect, or fail without changing anything.
    ///
    /// To ACTIVE: the old active becomes RETIRED and `previous_active`. To SHADOW: an older
    /// shadow is RETIRED (superseded). Leaving ACTIVE: the most recent earlier deployment
    /// that is RETIRED and passes `intact` becomes active (fallback); with none, the model
    /// has no active version until one is promoted or rolled back to.
    pub(crate) fn apply(
        &mut self,
        model_id: &str,
        tag: &str,
        to: Status,
        why: &str,
        now: Timestamp,
        intact: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Vec<StatusChange>> {
        let from = self
            .versions
            .get(tag)
            .ok_or_else(|| Error::NotFound { model_id: model_id.into(), what: format!("version {tag}") })?
            .status;
        if !from.can_become(to) {
            let hint = match (from, to) {
                (Status::Active, Status::Active) => "; it is already active",
                (Status::Failed, _) => "; FAILED is terminal",
                (Status::Retired, Status::Shadow) => "; roll back to it instead",
                _ => "",
            };
            return Err(Error::IllegalTransition {
                model_id: model_id.into(),
                tag: tag.into(),
                from: from.to_string(),
                to: to.to_string(),
                hint: hint.into(),
            });
        }
        let mut next = self.clone();
        let mut changes = Vec::new();
        next.set(tag, to, why, now, &mut changes);
        match to {
            Status::Active => {
                if let Some(old) = next.active.take().filter(|o| o != tag) {
                    next.set(&old, Status::Retired, &format!("replaced by {tag}"), now, &mut changes);
                    next.previous_active = Some(old);
                }
                if next.shadow.as_deref() == Some(tag) {
                    next.shadow = None;
                }
                next.activate(tag, now);
            }
            Status::Shadow => {
                if let Some(old) = next.shadow.replace(tag.to_string()).filter(|o| o != tag) {
                    next.set(&old, Status::Retired, &format!("superseded as shadow by {tag}"), now, &mut changes);
                }
            }
            Status::Retired | Status::Failed | Status::Training => {
                if next.shadow.as_deref() == Some(tag) {
                    next.shadow = None;
                }
                if next.active.as_deref() == Some(tag) {
                    next.active = None;
                    let fallback = next.fallback(&[tag], intact);
                    if let Some(fb) = fallback {
                        next.set(&fb, Status::Active, &format!("fallback after {tag} left service"), now, &mut changes);
                        next.activate(&fb, now);
                        next.previous_active = next.fallback(&[tag, &fb], intact).or(Some(tag.to_string()));
                    } else {
                        next.previous_active = Some(tag.to_string());
                    }
                }
            }
        }
        next.generation += 1;
        debug_assert_eq!(next.check(), Ok(()));
        *self = next;
        Ok(changes)
    }

    fn set(&mut self, tag: &str, to: Status, why: &str, now: Timestamp, changes: &mut Vec<StatusChange>) {
        let e = self.versions.get_mut(tag).expect("caller checked the tag");
        changes.push(StatusChange { tag: tag.into(), from: e.status, to, why: why.into() });
        e.status = to;
        e.status_since = now;
    }

    fn activate(&mut self, tag: &str, now: Timestamp) {
        self.active = Some(tag.to_string());
        let e = self.versions.get_mut(tag).expect("caller checked the tag");
        e.deployed_at.get_or_insert(now);
        self.deployments.push(Deployment { tag: tag.into(), at: now });
    }

    /// The most recently deployed RETIRED version not in `exclude` that passes `intact`.
    fn fallback(&self, exclude: &[&str], intact: &mut dyn FnMut(&str) -> bool) -> Option<String> {
        let mut seen = std::collections::BTreeSet::new();
        for d in self.deployments.iter().rev() {
            if exclude.contains(&d.tag.as_str()) || !seen.insert(d.tag.as_str()) {
                continue;
            }
            if self.versions.get(&d.tag).is_some_and(|e| e.status == Status::Retired) && intact(&d.tag) {
                return Some(d.tag.clone());
            }
        }
        None
    }

    /// Drop versions (retention); aliases never point at them (the caller keeps alias targets).
    pub(crate) fn remove(&mut self, tags: &[String]) {
        for t in tags {
            self.versions.remove(t);
        }
        self.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Timestamp {
        Timestamp::from_second(1_790_000_000 + s as i64).unwrap()
    }

    fn state(n: usize) -> ModelState {
        let mut s = ModelState { next_seq: 1, ..Default::default() };
        for i in 1..=n {
            s.insert(&format!("v{i}"), t(i as u64));
        }
        s
    }

    #[test]
    fn promotion_retires_the_old_active_and_remembers_it() {
        let mut s = state(3);
        let ok = &mut |_: &str| true;
        s.apply("m", "v1", Status::Active, "first", t(10), ok).unwrap();
        s.apply("m", "v2", Status::Shadow, "candidate", t(11), ok).unwrap();
        let ch = s.apply("m", "v2", Status::Active, "promote", t(12), ok).unwrap();
        assert_eq!(ch.len(), 2);
        assert_eq!((ch[1].tag.as_str(), ch[1].to), ("v1", Status::Retired));
        assert_eq!(s.active.as_deref(), Some("v2"));
        assert_eq!(s.previous_active.as_deref(), Some("v1"));
        assert_eq!(s.shadow, None);
        assert_eq!(s.generation, 3);
        // A new shadow supersedes an old one.
        s.apply("m", "v3", Status::Shadow, "", t(13), ok).unwrap();
        assert_eq!(s.shadow.as_deref(), Some("v3"));
        s.check().unwrap();
    }

    #[test]
    fn retiring_the_active_falls_back_to_the_last_intact_deployment() {
        let mut s = state(4);
        let ok = &mut |_: &str| true;
        for v in ["v1", "v2", "v3"] {
            s.apply("m", v, Status::Active, "", t(10), ok).unwrap();
        }
        // v2 is damaged: the fallback skips it.
        let ch = s.apply("m", "v3", Status::Retired, "ic < 0", t(20), &mut |tag: &str| tag != "v2").unwrap();
        assert_eq!(s.active.as_deref(), Some("v1"));
        assert_eq!(ch.last().unwrap().tag, "v1");
        assert_eq!(s.previous_active.as_deref(), Some("v3"));
        // Retiring the last one leaves no active but remembers it.
        s.apply("m", "v1", Status::Retired, "", t(21), &mut |tag: &str| tag == "v1").unwrap();
        assert_eq!(s.active, None);
        s.check().unwrap();
    }

    #[test]
    fn illegal_moves_change_nothing() {
        let mut s = state(2);
        let ok = &mut |_: &str| true;
        s.apply("m", "v1", Status::Failed, "", t(1), ok).unwrap();
        let before = s.clone();
        let e = s.apply("m", "v1", Status::Active, "", t(2), ok).unwrap_err();
        assert!(matches!(e, Error::IllegalTransition { .. }), "{e}");
        assert!(e.to_string().contains("FAILED is terminal"));
        assert!(matches!(s.apply("m", "v9", Status::Active, "", t(2), ok), Err(Error::NotFound { .. })));
        assert_eq!(s, before);
    }

    #[test]
    fn check_catches_two_actives() {
        let mut s = state(2);
        s.apply("m", "v1", Status::Active, "", t(1), &mut |_: &str| true).unwrap();
        s.versions.get_mut("v2").unwrap().status = Status::Active;
        assert!(s.check().unwrap_err().contains("2 versions are ACTIVE"));
    }
}

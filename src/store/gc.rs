//! Garbage collection: retention (two-phase delete: move to `.trash`, purge after a grace
//! period), orphaned version directories and decision reports, dead staging directories and
//! stale temp files.
//! Nothing else in the store ever deletes.

use std::fs;
use std::path::PathBuf;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use super::atomic::{TMP_PREFIX, io_err, list_dir, sync_dir};
use super::audit::{self, AuditKind, AuditRecord};
use super::chain;
use super::layout::check_model_id;
use super::lock::FileLock;
use super::retention::{self, RetentionPolicy};
use super::{Change, VersionStore};
use crate::error::{Error, Result};

/// One version `gc` moved (or, in a dry run, would move) to the trash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcItem {
    /// The model id.
    pub model_id: String,
    /// The version tag.
    pub tag: String,
    /// The rule that let it go.
    pub reason: String,
}

/// What a `gc` run did (or would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Versions moved to `.trash` (retention and orphans).
    pub trashed: Vec<GcItem>,
    /// Trash entries deleted for good (older than the grace period).
    pub purged: Vec<String>,
    /// Staging directories of dead writers removed.
    pub staging_removed: Vec<String>,
    /// Temp files of interrupted replacements removed.
    pub temp_files_removed: Vec<String>,
    /// Decision reports no audit record references (their writer died before recording
    /// them) removed; none while the audit chain is broken.
    pub reports_removed: Vec<String>,
    /// Models skipped because their state file is corrupt (run `verify`).
    pub skipped: Vec<String>,
}

impl VersionStore {
    /// Apply `policy` to every model, trash orphaned version directories, remove dead
    /// staging directories and temp files, and purge trash older than the grace period.
    /// With `dry_run` nothing changes and the report says what would.
    pub fn gc(&self, policy: &RetentionPolicy, dry_run: bool) -> Result<GcReport> {
        policy.check()?;
        let who = Change::new("gc", "");
        self.locked(|| {
            let mut report = GcReport {
                dry_run,
                staging_removed: self.clean_staging(dry_run)?,
                temp_files_removed: self.clean_temp_files(dry_run)?,
                reports_removed: self.clean_orphan_reports(dry_run)?,
                ..Default::default()
            };
            for model_id in list_dir(&self.layout.models())? {
                if check_model_id(&model_id).is_err() {
                    continue;
                }
                let state = match self.read_state(&model_id) {
                    Ok(s) => s,
                    Err(e @ Error::CorruptStore { .. }) => {
                        report.skipped.push(format!("{model_id}: {e}"));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                for tag in list_dir(&self.layout.versions(&model_id))? {
                    if state.versions.contains_key(&tag) {
                        continue;
                    }
                    let reason = "orphan: written but never committed (its writer stopped first)".to_string();
                    if !dry_run {
                        let now = self.clock.now();
                        let dest = self.trash_name(&model_id, &tag, now);
                        let mut r = self.record(now, AuditKind::Trashed, &model_id, &tag, &who);
                        r.reason = reason.clone();
                        r.reference = Some(format!(".trash/{dest}"));
                        audit::append(&self.layout.audit(), &[r])?;
                        self.move_to_trash(&model_id, &tag, &dest)?;
                    }
                    report.trashed.push(GcItem { model_id: model_id.clone(), tag, reason });
                }
                report.trashed.extend(self.apply_retention(&model_id, &state, policy, dry_run, &who)?);
            }
            report.purged = self.purge_trash(policy.trash_grace, dry_run)?;
            Ok(report)
        })
    }

    /// Retention for one model only, then the trash purge: what the lifecycle runs after
    /// every job, so the store stays bounded however many versions jobs register. Unlike
    /// [`VersionStore::gc`] it never touches staging directories or other models, so it is
    /// safe beside jobs still writing. A corrupt state file is an error here.
    pub fn retain(&self, model_id: &str, policy: &RetentionPolicy) -> Result<GcReport> {
        policy.check()?;
        check_model_id(model_id)?;
        let who = Change::new("retention", "");
        self.locked(|| {
            let state = self.read_state(model_id)?;
            Ok(GcReport {
                trashed: self.apply_retention(model_id, &state, policy, false, &who)?,
                purged: self.purge_trash(policy.trash_grace, false)?,
                ..Default::default()
            })
        })
    }

    /// Move the versions `policy` lets go of to the trash (audited, state committed first);
    /// in a dry run only say which.
    fn apply_retention(
        &self,
        model_id: &str,
        state: &super::state::ModelState,
        policy: &RetentionPolicy,
        dry_run: bool,
        who: &Change,
    ) -> Result<Vec<GcItem>> {
        let doomed = retention::plan(state, policy);
        if !dry_run && !doomed.is_empty() {
            let now = self.clock.now();
            let mut next = state.clone();
            next.remove(&doomed.iter().map(|d| d.tag.clone()).collect::<Vec<_>>());
            let dests: Vec<String> = doomed.iter().map(|d| self.trash_name(model_id, &d.tag, now)).collect();
            let records: Vec<AuditRecord> = doomed
                .iter()
                .zip(&dests)
                .map(|(d, dest)| {
                    let mut r = self.record(now, AuditKind::Trashed, model_id, &d.tag, who);
                    r.reason = d.reason.clone();
                    r.from = state.versions.get(&d.tag).map(|e| e.status);
                    r.generation = Some(next.generation);
                    r.reference = Some(format!(".trash/{dest}"));
                    r
                })
                .collect();
            audit::append(&self.layout.audit(), &records)?;
            self.commit_state(model_id, &next)?;
            for (d, dest) in doomed.iter().zip(&dests) {
                self.move_to_trash(model_id, &d.tag, dest)?;
            }
        }
        Ok(doomed.into_iter().map(|d| GcItem { model_id: model_id.into(), tag: d.tag, reason: d.reason }).collect())
    }

    /// `<millis>.<model>.<tag>`: the time says when it may be purged, the rest what it was.
    fn trash_name(&self, model_id: &str, tag: &str, now: jiff::Timestamp) -> String {
        let base = format!("{}.{model_id}.{tag}", now.as_millisecond());
        (0..)
            .map(|i| if i == 0 { base.clone() } else { format!("{base}.{i}") })
            .find(|n| !self.layout.trash().join(n).exists())
            .expect("some name is free")
    }

    fn move_to_trash(&self, model_id: &str, tag: &str, dest: &str) -> Result<()> {
        let trash = self.layout.trash();
        super::atomic::create_dir_durable(&trash)?;
        let src = self.layout.version(model_id, tag);
        let to = trash.join(dest);
        fs::rename(&src, &to).map_err(io_err(&src))?;
        sync_dir(&self.layout.versions(model_id))?;
        sync_dir(&trash)
    }

    fn purge_trash(&self, grace: SignedDuration, dry_run: bool) -> Result<Vec<String>> {
        let trash = self.layout.trash();
        let now = self.clock.now().as_millisecond();
        let mut purged = Vec::new();
        for name in list_dir(&trash)? {
            let Some(millis) = name.split('.').next().and_then(|m| m.parse::<i64>().ok()) else { continue };
            if now - millis < grace.as_millis() as i64 {
                continue;
            }
            if !dry_run {
                let mut r = AuditRecord::new(self.clock.now(), AuditKind::Purged, "gc", "trash grace period over");
                // `<millis>.<model>.<tag>[.n]`: model ids may contain dots (even ".v"), tags
                // never do, so the tag starts at the last ".v".
                if let Some((model, tag)) = name.split_once('.').and_then(|(_, rest)| rest.rsplit_once(".v")) {
                    r.model = Some(model.to_string());
                    r.version = Some(format!("v{}", tag.split('.').next().unwrap_or(tag)));
                }
                r.reference = Some(format!(".trash/{name}"));
                audit::append(&self.layout.audit(), &[r])?;
                let p = trash.join(&name);
                fs::remove_dir_all(&p).map_err(io_err(&p))?;
            }
            purged.push(name);
        }
        if !dry_run && !purged.is_empty() {
            sync_dir(&trash)?;
        }
        Ok(purged)
    }

    /// Decision reports that none of `records` (the whole audit log's) references.
    pub(crate) fn orphan_reports(&self, records: &[AuditRecord]) -> Result<Vec<PathBuf>> {
        let referenced: std::collections::BTreeSet<PathBuf> = records
            .iter()
            .filter(|r| r.event == AuditKind::Decision)
            .filter_map(|r| r.reference.as_ref().map(|x| self.layout.root().join(x)))
            .collect();
        let mut out = Vec::new();
        for model in list_dir(&self.layout.models())?.into_iter().filter(|m| check_model_id(m).is_ok()) {
            let dir = self.layout.decisions(&model);
            for name in list_dir(&dir)?.into_iter().filter(|n| !n.starts_with(TMP_PREFIX)) {
                let path = dir.join(name);
                if !referenced.contains(&path) {
                    out.push(path);
                }
            }
        }
        Ok(out)
    }

    /// Remove orphaned decision reports (under the lock no writer is between writing a report
    /// and recording it). Nothing is removed while the audit chain is broken: which reports
    /// its lost records referenced is unknown.
    fn clean_orphan_reports(&self, dry_run: bool) -> Result<Vec<String>> {
        let log = chain::check_file(&self.layout.audit(), None)?;
        if log.broken.is_some() {
            return Ok(Vec::new());
        }
        let mut removed = Vec::new();
        for p in self.orphan_reports(&log.records)? {
            if !dry_run {
                fs::remove_file(&p).map_err(io_err(&p))?;
                sync_dir(p.parent().expect("a report lives in a directory"))?;
            }
            removed.push(p.display().to_string());
        }
        Ok(removed)
    }

    /// Remove staging directories whose writer is gone (its lock file is free or missing).
    pub(crate) fn clean_staging(&self, dry_run: bool) -> Result<Vec<String>> {
        let staging = self.layout.staging();
        let mut removed = Vec::new();
        for name in list_dir(&staging)? {
            let path = staging.join(&name);
            let (dir, lock) = match name.strip_suffix(".lock") {
                Some(stem) => (staging.join(stem), path.clone()),
                None => (path.clone(), staging.join(format!("{name}.lock"))),
            };
            if name.ends_with(".lock") && dir.exists() {
                continue; // handled with its directory
            }
            if lock.exists() {
                let Some(held) = FileLock::try_acquire(&lock)? else { continue }; // a live writer
                if !dry_run {
                    if dir.exists() {
                        fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
                    }
                    held.remove()?;
                }
            } else if !dir.exists() {
                continue; // its writer finished after we listed the directory
            } else if !dry_run {
                fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
            }
            removed.push(name);
        }
        if !dry_run && !removed.is_empty() {
            sync_dir(&staging)?;
        }
        Ok(removed)
    }

    /// Remove temp files of replacements interrupted by a crash (all replacements happen
    /// under the store lock, which the caller holds, so none is in flight).
    pub(crate) fn clean_temp_files(&self, dry_run: bool) -> Result<Vec<String>> {
        let mut dirs = vec![self.layout.root().to_path_buf(), self.layout.cache()];
        for m in list_dir(&self.layout.models())? {
            if check_model_id(&m).is_ok() {
                dirs.push(self.layout.model(&m));
                dirs.push(self.layout.decisions(&m));
                dirs.push(self.layout.model(&m).join("shadow"));
            }
        }
        let mut removed = Vec::new();
        for dir in dirs {
            for name in list_dir(&dir)? {
                if name.starts_with(TMP_PREFIX) {
                    let p = dir.join(&name);
                    if !dry_run {
                        fs::remove_file(&p).map_err(io_err(&p))?;
                    }
                    removed.push(p.display().to_string());
                }
            }
        }
        Ok(removed)
    }
}

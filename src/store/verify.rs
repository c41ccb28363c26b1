//! `verify`: walk the whole store and report every corrupt or leftover entry, never
//! changing anything. Problems (damaged versions, garbage state files, two actives, a broken
//! audit chain, a damaged or missing decision report) make the store unhealthy; leftovers (a
//! crashed writer's staging directory, an orphaned version, a torn audit line) are harmless
//! and removed by `open`/`gc`; notes (audit records older than the chain) are information.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::atomic::{TMP_PREFIX, list_dir, read_optional};
use super::audit::{AuditKind, AuditRecord};
use super::chain;
use super::layout::{ALIASES_FILE, check_model_id};
use super::lock::FileLock;
use super::state::ModelState;
use super::{VersionStore, check_format};
use crate::error::{Error, Result};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Damage: a version or state file cannot be trusted.
    Problem,
    /// A crash leftover that `open`/`gc` clean; no data is at risk.
    Leftover,
    /// Worth knowing, nothing wrong (e.g. audit records older than the hash chain).
    Note,
}

/// One thing `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// The file or directory concerned.
    pub path: PathBuf,
    /// The model, when one is concerned.
    pub model_id: Option<String>,
    /// The version, when one is concerned.
    pub tag: Option<String>,
    /// What is wrong.
    pub detail: String,
}

/// The result of [`VersionStore::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Models checked.
    pub models: usize,
    /// Versions checked (every file hashed).
    pub versions: usize,
    /// Bytes hashed.
    pub bytes: u64,
    /// Audit records read (up to a break of the hash chain).
    pub audit_records: usize,
    /// Decision reports checked against their checksums.
    pub reports: usize,
    /// Entries waiting in `.trash`.
    pub trash_entries: usize,
    /// Everything found, problems first.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// No problems (leftovers are fine).
    pub fn is_ok(&self) -> bool {
        self.problems().next().is_none()
    }

    /// The problems only.
    pub fn problems(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Problem)
    }

    fn push(
        &mut self,
        severity: Severity,
        path: PathBuf,
        model: Option<&str>,
        tag: Option<&str>,
        detail: impl Into<String>,
    ) {
        self.findings.push(Finding {
            severity,
            path,
            model_id: model.map(str::to_string),
            tag: tag.map(str::to_string),
            detail: detail.into(),
        });
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let problems = self.problems().count();
        writeln!(
            f,
            "{} models, {} versions ({:.1} MB hashed), {} audit records, {} decision reports, {} in trash: {}",
            self.models,
            self.versions,
            self.bytes as f64 / 1e6,
            self.audit_records,
            self.reports,
            self.trash_entries,
            if problems == 0 { "OK".to_string() } else { format!("{problems} problem(s)") }
        )?;
        for x in &self.findings {
            let what = match (&x.model_id, &x.tag) {
                (Some(m), Some(t)) => format!("{m} {t}: "),
                (Some(m), None) => format!("{m}: "),
                _ => String::new(),
            };
            let sev = match x.severity {
                Severity::Problem => "PROBLEM ",
                Severity::Leftover => "leftover",
                Severity::Note => "note    ",
            };
            writeln!(f, "  {sev} {what}{} ({})", x.detail, x.path.display())?;
        }
        Ok(())
    }
}

impl VersionStore {
    /// Check every decision report the audit records reference against the checksum the
    /// record carries; with an intact chain, report files that no record references.
    fn verify_reports(&self, records: &[AuditRecord], chain_intact: bool, rep: &mut VerifyReport) -> Result<()> {
        let mut unchecked = 0;
        for r in records.iter().filter(|r| r.event == AuditKind::Decision) {
            let Some(reference) = &r.reference else { continue };
            let path = self.layout.root().join(reference);
            let (m, t) = (r.model.as_deref(), r.version.as_deref());
            let Some(sum) = &r.checksum else {
                unchecked += 1;
                continue;
            };
            rep.reports += 1;
            match read_optional(&path)? {
                None => rep.push(Severity::Problem, path, m, t, "decision report is missing"),
                Some(bytes) if blake3::hash(&bytes).to_hex().as_str() != sum => rep.push(
                    Severity::Problem,
                    path,
                    m,
                    t,
                    "decision report does not match the checksum its audit record carries",
                ),
                Some(_) => {}
            }
        }
        if unchecked > 0 {
            rep.push(
                Severity::Note,
                self.layout.audit(),
                None,
                None,
                format!("{unchecked} decision report(s) were recorded before reports were checksummed; not checked"),
            );
        }
        if chain_intact {
            for path in self.orphan_reports(records)? {
                let model = path.parent().and_then(|d| d.parent()).and_then(|m| m.file_name());
                let model = model.map(|m| m.to_string_lossy().into_owned());
                rep.push(
                    Severity::Leftover,
                    path,
                    model.as_deref(),
                    None,
                    "decision report no audit record references (its writer stopped before recording it); gc \
                     removes it",
                );
            }
        }
        Ok(())
    }

    /// Check the hash chain of every shadow-test log of `model`.
    fn verify_shadow_logs(&self, model: &str, rep: &mut VerifyReport) -> Result<()> {
        let dir = self.layout.model(model).join("shadow");
        for name in list_dir(&dir)?.into_iter().filter(|n| n.ends_with(".jsonl")) {
            let path = dir.join(&name);
            let tag = name.trim_end_matches(".jsonl");
            let log = chain::check_file_records::<serde_json::Value>(&path, None)?;
            let m = Some(model);
            match &log.broken {
                Some(b) => rep.push(
                    Severity::Problem,
                    path.clone(),
                    m,
                    Some(tag),
                    format!("shadow-test log's hash chain broken at {b}"),
                ),
                None if log.unchained > 0 => rep.push(
                    Severity::Note,
                    path.clone(),
                    m,
                    Some(tag),
                    format!("the first {} shadow records were written before the hash chain", log.unchained),
                ),
                None => {}
            }
            if log.torn_tail {
                rep.push(Severity::Leftover, path.clone(), m, Some(tag), "torn last line of a shadow log; ignored");
            }
            if log.past_head > 0 {
                rep.push(
                    Severity::Leftover,
                    path,
                    m,
                    Some(tag),
                    "shadow records past the chain's head; the next append moves it",
                );
            }
        }
        Ok(())
    }

    /// Check everything: FORMAT, every model's state invariants, every version's files
    /// against its manifest (full blake3), the audit log's hash chain and head, every decision
    /// report against its record's checksum, staging and trash. Holds the
    /// writers' lock for a consistent view; changes nothing.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with_progress(&mut |_, _| {})
    }

    /// [`VersionStore::verify`], calling `on_version(model_id, tag)` before each version is
    /// hashed (for progress display on large stores).
    pub fn verify_with_progress(&self, on_version: &mut dyn FnMut(&str, &str)) -> Result<VerifyReport> {
        let _lock = FileLock::acquire(&self.layout.lock())?;
        let mut rep = VerifyReport::default();
        let format = self.layout.format();
        match read_optional(&format)? {
            Some(b) => {
                if let Err(e) = check_format(&format, &b) {
                    rep.push(Severity::Problem, format, None, None, e.to_string());
                }
            }
            None => rep.push(Severity::Problem, format, None, None, "FORMAT file is missing"),
        }
        let mut generations = std::collections::BTreeMap::new();
        for model in list_dir(&self.layout.models())? {
            let mdir = self.layout.model(&model);
            if check_model_id(&model).is_err() {
                rep.push(Severity::Leftover, mdir, None, None, format!("`{model}` is not a model id; ignored"));
                continue;
            }
            let m = Some(model.as_str());
            rep.models += 1;
            let state = match ModelState::read(&self.layout.aliases(&model)) {
                Ok(s) => s,
                Err(Error::CorruptStore { path, reason }) => {
                    rep.push(Severity::Problem, path, m, None, format!("{ALIASES_FILE}: {reason}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            generations.insert(model.clone(), state.generation);
            for name in list_dir(&mdir)? {
                if name.starts_with(TMP_PREFIX) {
                    rep.push(Severity::Leftover, mdir.join(&name), m, None, "temp file of an interrupted write");
                } else if !matches!(name.as_str(), ALIASES_FILE | "versions" | "decisions" | "shadow") {
                    rep.push(Severity::Leftover, mdir.join(&name), m, None, "unexpected entry");
                }
            }
            for tag in state.versions.keys() {
                on_version(&model, tag);
                rep.versions += 1;
                let dir = self.layout.version(&model, tag);
                match self.check_version(&model, tag) {
                    Ok(mf) => rep.bytes += mf.files.values().map(|e| e.size).sum::<u64>(),
                    Err(Error::CorruptVersion { reason, .. }) => rep.push(Severity::Problem, dir, m, Some(tag), reason),
                    Err(e) => rep.push(Severity::Problem, dir, m, Some(tag), e.to_string()),
                }
            }
            self.verify_shadow_logs(&model, &mut rep)?;
            for tag in list_dir(&self.layout.versions(&model))? {
                if !state.versions.contains_key(&tag) {
                    rep.push(
                        Severity::Leftover,
                        self.layout.version(&model, &tag),
                        m,
                        Some(&tag),
                        "orphaned version directory (never committed); gc moves it to the trash",
                    );
                }
            }
        }
        let log_path = self.layout.audit();
        let log = chain::check_file(&log_path, None)?;
        rep.audit_records = log.count;
        match &log.broken {
            Some(b) => rep.push(
                Severity::Problem,
                log_path.clone(),
                b.model.as_deref(),
                None,
                format!("audit chain broken at {b}; the records after it cannot be trusted"),
            ),
            None if log.unchained > 0 => rep.push(
                Severity::Note,
                log_path.clone(),
                None,
                None,
                format!(
                    "the first {} audit records were written before the hash chain; the chain starts after them and \
                     seals them",
                    log.unchained
                ),
            ),
            None => {}
        }
        if log.torn_tail {
            rep.push(
                Severity::Leftover,
                log_path.clone(),
                None,
                None,
                "torn last line (a writer died mid-append); ignored",
            );
        }
        if log.past_head > 0 {
            rep.push(
                Severity::Leftover,
                log_path.clone(),
                None,
                None,
                format!(
                    "{} record(s) past the chain's head (a writer died before moving it); the next writer moves it",
                    log.past_head
                ),
            );
        }
        if let Some(last) = log.records.last()
            && last.event != AuditKind::Aborted
            && let (Some(model), Some(g)) = (&last.model, last.generation)
            && generations.get(model).is_some_and(|&c| c < g)
        {
            rep.push(
                Severity::Leftover,
                log_path.clone(),
                Some(model),
                last.version.as_deref(),
                format!("last record (generation {g}) was never committed; the next writer marks it aborted"),
            );
        }
        self.verify_reports(&log.records, log.broken.is_none(), &mut rep)?;
        let staging = self.layout.staging();
        for name in list_dir(&staging)? {
            let lock = if name.ends_with(".lock") { staging.join(&name) } else { staging.join(format!("{name}.lock")) };
            let live = lock.exists() && FileLock::try_acquire(&lock)?.is_none();
            // A lock file whose directory exists is reported with that directory.
            let reported_with_dir = name.ends_with(".lock") && staging.join(name.trim_end_matches(".lock")).exists();
            if !live && !reported_with_dir {
                rep.push(Severity::Leftover, staging.join(&name), None, None, "staging entry of a dead writer");
            }
        }
        rep.trash_entries = list_dir(&self.layout.trash())?.len();
        rep.findings.sort_by_key(|f| f.severity != Severity::Problem);
        Ok(rep)
    }
}

//! The crash-safe, file-based model version store.
//!
//! A store is a directory (layout in [`layout`] and `models/README.md`). Each version is a
//! directory of artifact files plus `meta.json` and a checksum `manifest.json`, written in
//! `.staging/`, fsynced and renamed into place. Each model's statuses and aliases live in one
//! `aliases.json`, replaced atomically under an exclusive `fs4` lock with a generation counter
//! for compare-and-swap; every change is also written to an append-only `audit.jsonl`.
//!
//! Guarantees: a `kill -9` at any instant leaves every visible version complete and
//! checksummed, at most one ACTIVE version per model (exactly one once deployed, unless the
//! last one was retired without a fallback), and no torn file; concurrent writers (threads or
//! processes) never lose a registration; readers take no lock and see the old state or the
//! new one. Nothing is deleted except by [`VersionStore::gc`], in two phases (trash, then
//! purge after a grace period).
//!
//! ```
//! use retrain::store::{Artifact, Change, Status, VersionMeta, VersionStore};
//!
//! let dir = tempfile::tempdir()?;
//! let store = VersionStore::open(dir.path())?;
//! let who = Change::new("example", "first model");
//! let mut meta = VersionMeta::new("lightgbm");
//! meta.status = Status::Shadow;
//! let tag = store.register("btc_1h", meta, &[Artifact::bytes("model.json", b"{}".to_vec())], &who)?;
//! store.promote("btc_1h", &tag, &who)?;
//! assert_eq!(store.active("btc_1h")?.unwrap().tag, tag);
//! assert_eq!(store.load_artifact("btc_1h", &tag, "model.json")?, b"{}");
//! assert!(store.verify()?.is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod atomic;
pub(crate) use chain::{Record as ChainedRecord, append_sealed, check_file_records, payload};
mod audit;
mod chain;
mod gc;
pub mod layout;
mod lock;
mod manifest;
mod meta;
pub mod retention;
mod state;
mod verify;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use audit::{AuditKind, AuditRecord};
pub use chain::ChainBreak;

/// A model's audit history as the hash chain vouches for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditTrail {
    /// The model's committed records up to the first break of the chain, oldest first.
    pub records: Vec<AuditRecord>,
    /// Records of the whole log written before the chain started (older stores): accepted,
    /// but not protected by it.
    pub unchained: usize,
    /// Where the chain broke; records after it are not shown.
    pub broken: Option<ChainBreak>,
}
pub use gc::{GcItem, GcReport};
pub use layout::{FORMAT_VERSION, base_tag, check_model_id, check_tag, is_tag};
pub use manifest::{FileEntry, Manifest};
pub use meta::{DataRange, Status, VersionMeta};
pub use retention::RetentionPolicy;
pub use state::{Deployment, StatusChange};
pub use verify::{Finding, Severity, VerifyReport};

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use atomic::{create_dir_durable, io_err, read_optional, replace, sync_dir, unique_name};
use layout::{FORMAT_MAGIC, Layout, META_FILE};
use lock::FileLock;
use state::ModelState;

/// A file to store with a version: bytes in memory or a file on disk (streamed, not loaded).
#[derive(Debug, Clone)]
pub struct Artifact {
    name: String,
    source: ArtifactSource,
}

#[derive(Debug, Clone)]
enum ArtifactSource {
    Bytes(Vec<u8>),
    File(PathBuf),
}

impl Artifact {
    /// An artifact from bytes.
    pub fn bytes(name: impl Into<String>, data: Vec<u8>) -> Self {
        Artifact { name: name.into(), source: ArtifactSource::Bytes(data) }
    }

    /// An artifact copied from `path`, stored under its file name.
    pub fn file(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::param("artifact", format!("{} has no file name", path.display())))?;
        Ok(Artifact { name, source: ArtifactSource::File(path) })
    }

    /// An artifact copied from `path`, stored under `name`.
    pub fn file_as(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Artifact { name: name.into(), source: ArtifactSource::File(path.into()) }
    }

    /// The name it is stored under.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Who makes a change and why (both go to the audit log), and optionally the alias
/// generation they last read: the change then fails with [`Error::GenerationConflict`] if
/// anyone changed the model since (compare-and-swap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Who (user name, `lifecycle`, `cli`, …).
    pub actor: String,
    /// Why.
    pub reason: String,
    /// Required current generation, if any.
    pub expected_generation: Option<u64>,
}

impl Change {
    /// A change by `actor` for `reason`, unconditional.
    pub fn new(actor: impl Into<String>, reason: impl Into<String>) -> Self {
        Change { actor: actor.into(), reason: reason.into(), expected_generation: None }
    }

    /// Apply only if the model is still at `generation`.
    pub fn if_generation(mut self, generation: u64) -> Self {
        self.expected_generation = Some(generation);
        self
    }
}

/// A model's aliases as last committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aliases {
    /// The compare-and-swap token (0 for a model never written).
    pub generation: u64,
    /// The serving version.
    pub active: Option<String>,
    /// The version in shadow evaluation.
    pub shadow: Option<String>,
    /// The version active before the current one.
    pub previous_active: Option<String>,
}

/// One line of [`VersionStore::list`] (from `aliases.json` alone: no per-version reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSummary {
    /// The version tag.
    pub tag: String,
    /// Registration order within the model.
    pub seq: u64,
    /// Current status.
    pub status: Status,
    /// Registration time.
    pub created_at: Timestamp,
    /// Last status change.
    pub status_since: Timestamp,
    /// First deployment, if ever deployed.
    pub deployed_at: Option<Timestamp>,
}

/// Everything about one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The model id.
    pub model_id: String,
    /// The version tag.
    pub tag: String,
    /// Current status (from `aliases.json`).
    pub status: Status,
    /// Last status change.
    pub status_since: Timestamp,
    /// First deployment, if ever deployed.
    pub deployed_at: Option<Timestamp>,
    /// The version's `meta.json`.
    pub meta: VersionMeta,
    /// Its checksums.
    pub manifest: Manifest,
    /// Its directory.
    pub path: PathBuf,
}

/// The model version store. Cheap to clone-by-reopen; all state is on disk.
#[derive(Debug, Clone)]
pub struct VersionStore {
    layout: Layout,
    clock: Arc<dyn Clock>,
}

impl VersionStore {
    /// Open the store at `root`, creating it if the directory is missing or empty (a lone
    /// `README.md` is allowed, as in the repository's `models/`); checks the
    /// FORMAT and tidies what crashed writers left (dead staging dirs, temp files, an audit
    /// record whose change never committed).
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        Self::open_inner(root.as_ref(), true)
    }

    /// Open an existing store (an error when `root` holds none); for read-only commands.
    pub fn open_existing(root: impl AsRef<Path>) -> Result<Self> {
        Self::open_inner(root.as_ref(), false)
    }

    fn open_inner(root: &Path, create: bool) -> Result<Self> {
        let store = VersionStore { layout: Layout::new(root), clock: Arc::new(SystemClock) };
        let format = store.layout.format();
        match read_optional(&format)? {
            Some(bytes) => check_format(&format, &bytes)?,
            None if !create => {
                if !root.exists() {
                    return Err(io_err(root)(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such store directory",
                    )));
                }
                return Err(Error::CorruptStore {
                    path: format,
                    reason: "missing: this is not a retrain store".into(),
                });
            }
            None => store.init()?,
        }
        match store.tidy() {
            Ok(()) => {}
            Err(e) if !create => tracing::warn!(error = %e, "could not tidy the store (read-only?)"),
            Err(e) => return Err(e),
        }
        Ok(store)
    }

    /// The time on the store's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Use `clock` for version tags and audit timestamps (tests, replays, exchange time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// Where caches of pure values live (`<root>/cache`; never authoritative, safe to delete).
    pub fn cache_dir(&self) -> PathBuf {
        self.layout.cache()
    }

    /// The bytes of cache file `name` (an artifact-style name), `None` when there is none.
    pub fn read_cache(&self, name: &str) -> Result<Option<Vec<u8>>> {
        layout::check_artifact_name(name)?;
        read_optional(&self.layout.cache().join(name))
    }

    /// Replace cache file `name` with `bytes`, atomically and durably (no store lock: a cache
    /// holds pure values, so the last of two concurrent writers simply wins).
    pub fn write_cache(&self, name: &str, bytes: &[u8]) -> Result<()> {
        layout::check_artifact_name(name)?;
        let dir = self.layout.cache();
        create_dir_durable(&dir)?;
        replace(&dir.join(name), bytes)
    }

    fn init(&self) -> Result<()> {
        create_dir_durable(self.layout.root())?;
        let _lock = FileLock::acquire(&self.layout.lock())?;
        let format = self.layout.format();
        if let Some(bytes) = read_optional(&format)? {
            return check_format(&format, &bytes); // another process initialised it meanwhile
        }
        let root = self.layout.root();
        let mut foreign = atomic::list_dir(root)?;
        foreign.retain(|n| n != ".lock" && n != "README.md"); // the repo's models/ ships a README
        if !foreign.is_empty() {
            return Err(Error::CorruptStore {
                path: format,
                reason: format!(
                    "missing, and {} is not empty ({}): refusing to adopt it",
                    root.display(),
                    foreign.join(", ")
                ),
            });
        }
        for d in [self.layout.models(), self.layout.staging(), self.layout.trash()] {
            create_dir_durable(&d)?;
        }
        replace(&format, format!("{FORMAT_MAGIC} {FORMAT_VERSION}\n").as_bytes())
    }

    /// Recover from crashed writers if no writer is busy right now.
    fn tidy(&self) -> Result<()> {
        if let Some(_lock) = FileLock::try_acquire(&self.layout.lock())? {
            self.recover_audit()?;
            self.clean_staging(false)?;
            self.clean_temp_files(false)?;
        }
        Ok(())
    }

    /// Run `f` holding the store's exclusive lock, after recovering any uncommitted audit
    /// record a crashed writer left.
    fn locked<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let _lock = FileLock::acquire(&self.layout.lock())?;
        self.recover_audit()?;
        f()
    }

    /// Move the chain's head over records a writer appended before it died (when they
    /// continue the chain), and if the log ends with a change whose generation was never
    /// committed, mark it aborted.
    fn recover_audit(&self) -> Result<()> {
        let path = self.layout.audit();
        chain::catch_up(&path)?;
        let Some(last) = audit::last(&path)? else { return Ok(()) };
        let (Some(model), Some(generation)) = (last.model.as_deref(), last.generation) else { return Ok(()) };
        if last.event == AuditKind::Aborted || check_model_id(model).is_err() {
            return Ok(());
        }
        let committed = match ModelState::read(&self.layout.aliases(model)) {
            Ok(s) => s.generation,
            Err(Error::CorruptStore { .. }) => return Ok(()), // verify reports it
            Err(e) => return Err(e),
        };
        if committed < generation {
            let mut r = AuditRecord::new(
                self.clock.now(),
                AuditKind::Aborted,
                "store",
                "the writer stopped before committing the change above; it did not happen",
            );
            r.model = Some(model.to_string());
            r.version = last.version.clone();
            r.generation = Some(generation);
            audit::append(&path, &[r])?;
        }
        Ok(())
    }

    fn read_state(&self, model_id: &str) -> Result<ModelState> {
        check_model_id(model_id)?;
        ModelState::read(&self.layout.aliases(model_id))
    }

    /// Like `read_state`, but a model never written is `NotFound`.
    fn existing_state(&self, model_id: &str) -> Result<ModelState> {
        let s = self.read_state(model_id)?;
        if s.generation == 0 && !self.layout.aliases(model_id).exists() {
            return Err(Error::NotFound { model_id: model_id.into(), what: "model".into() });
        }
        Ok(s)
    }

    fn check_generation(model_id: &str, state: &ModelState, change: &Change) -> Result<()> {
        match change.expected_generation {
            Some(g) if g != state.generation => {
                Err(Error::GenerationConflict { model_id: model_id.into(), expected: g, found: state.generation })
            }
            _ => Ok(()),
        }
    }

    fn commit_state(&self, model_id: &str, state: &ModelState) -> Result<()> {
        replace(&self.layout.aliases(model_id), &state.to_bytes())
    }

    fn record(&self, now: Timestamp, kind: AuditKind, model_id: &str, tag: &str, change: &Change) -> AuditRecord {
        let mut r = AuditRecord::new(now, kind, &change.actor, &change.reason);
        r.model = Some(model_id.into());
        r.version = Some(tag.into());
        r
    }

    /// Store a new version and return its tag (`vYYYYMMDD_HHMMSS`, `_N` when the second is
    /// taken). The version starts in `meta.status` (TRAINING by default; SHADOW or ACTIVE
    /// apply the usual side effects). Artifacts are written and fsynced outside the lock, so
    /// concurrent registrations only serialise for the final rename.
    pub fn register(
        &self,
        model_id: &str,
        mut meta: VersionMeta,
        files: &[Artifact],
        change: &Change,
    ) -> Result<String> {
        check_model_id(model_id)?;
        meta.check()?;
        let mut names = std::collections::BTreeSet::new();
        for a in files {
            layout::check_artifact_name(&a.name)?;
            if !names.insert(a.name.as_str()) {
                return Err(Error::param("artifact", format!("`{}` is given twice", a.name)));
            }
        }
        let staging = Staging::create(&self.layout)?;
        let mut manifest = Manifest::new();
        for a in files {
            let path = staging.dir.join(&a.name);
            match &a.source {
                ArtifactSource::Bytes(b) => {
                    atomic::write_new(&path, b)?;
                    manifest.add(&a.name, b.len() as u64, blake3::hash(b));
                }
                ArtifactSource::File(src) => {
                    let (size, hash) = atomic::copy_new(src, &path)?;
                    manifest.add(&a.name, size, hash);
                }
            }
        }
        let tag = self.locked(|| {
            let mut state = self.read_state(model_id)?;
            Self::check_generation(model_id, &state, change)?;
            let now = self.clock.now();
            let base = base_tag(now);
            let tag = (1..)
                .map(|n| layout::nth_tag(&base, n))
                .find(|t| !state.versions.contains_key(t) && !self.layout.version(model_id, t).exists())
                .expect("some suffix is free");
            meta.version_tag = tag.clone();
            meta.created_at = Some(now);
            meta.crate_version = env!("CARGO_PKG_VERSION").to_string();
            let meta_bytes = serde_json::to_vec_pretty(&meta).expect("meta serialises");
            atomic::write_new(&staging.dir.join(META_FILE), &meta_bytes)?;
            manifest.add(META_FILE, meta_bytes.len() as u64, blake3::hash(&meta_bytes));
            let mut mbytes = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
            mbytes.push(b'\n');
            atomic::write_new(&staging.dir.join(layout::MANIFEST_FILE), &mbytes)?;
            sync_dir(&staging.dir)?;

            state.insert(&tag, now);
            let changes = if meta.status == Status::Training {
                state.generation += 1;
                Vec::new()
            } else {
                state.apply(model_id, &tag, meta.status, &change.reason, now, &mut |t| self.intact(model_id, t))?
            };
            let mut records = vec![self.record(now, AuditKind::Registered, model_id, &tag, change)];
            records[0].to = Some(meta.status);
            records.extend(changes.iter().filter(|c| c.tag != tag).map(|c| self.side_effect(now, model_id, c, change)));
            for r in &mut records {
                r.generation = Some(state.generation);
            }
            audit::append(&self.layout.audit(), &records)?;
            let versions = self.layout.versions(model_id);
            create_dir_durable(&versions)?;
            let dest = versions.join(&tag);
            fs::rename(&staging.dir, &dest).map_err(io_err(&dest))?;
            sync_dir(&versions)?;
            sync_dir(&self.layout.staging())?;
            self.commit_state(model_id, &state)?;
            Ok(tag)
        })?;
        staging.finish();
        Ok(tag)
    }

    fn side_effect(&self, now: Timestamp, model_id: &str, c: &StatusChange, change: &Change) -> AuditRecord {
        let mut r = self.record(now, AuditKind::StatusChanged, model_id, &c.tag, change);
        r.from = Some(c.from);
        r.to = Some(c.to);
        r.reason = c.why.clone();
        r
    }

    /// Whether every file of a version matches its manifest.
    fn intact(&self, model_id: &str, tag: &str) -> bool {
        self.verify_version(model_id, tag).is_ok()
    }

    /// Check every file of one version against its manifest (full blake3 pass).
    pub fn verify_version(&self, model_id: &str, tag: &str) -> Result<()> {
        self.check_version(model_id, tag).map(|_| ())
    }

    /// [`VersionStore::verify_version`], returning the checked manifest.
    fn check_version(&self, model_id: &str, tag: &str) -> Result<Manifest> {
        check_tag(tag)?;
        let dir = self.layout.version(model_id, tag);
        let m = Manifest::read(&dir, model_id, tag)?;
        m.verify_dir(&dir, model_id, tag)?;
        let meta = self.read_meta(&m, &dir, model_id, tag)?;
        if meta.version_tag != tag {
            return Err(Error::CorruptVersion {
                model_id: model_id.into(),
                tag: tag.into(),
                reason: format!("meta.json names version {}", meta.version_tag),
            });
        }
        Ok(m)
    }

    fn read_meta(&self, m: &Manifest, dir: &Path, model_id: &str, tag: &str) -> Result<VersionMeta> {
        let bytes = m.load(dir, META_FILE, model_id, tag).map_err(|e| match e {
            Error::NotFound { .. } => Error::CorruptVersion {
                model_id: model_id.into(),
                tag: tag.into(),
                reason: "meta.json is not listed in the manifest".into(),
            },
            e => e,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::CorruptVersion {
            model_id: model_id.into(),
            tag: tag.into(),
            reason: format!("meta.json: {e}"),
        })
    }

    /// Ids of the models in the store, sorted.
    pub fn models(&self) -> Result<Vec<String>> {
        let mut out = atomic::list_dir(&self.layout.models())?;
        out.retain(|n| check_model_id(n).is_ok() && self.layout.aliases(n).is_file());
        Ok(out)
    }

    /// A model's aliases (generation 0 and no aliases for a model never written).
    pub fn aliases(&self, model_id: &str) -> Result<Aliases> {
        let s = self.read_state(model_id)?;
        Ok(Aliases { generation: s.generation, active: s.active, shadow: s.shadow, previous_active: s.previous_active })
    }

    /// A model's kept versions, oldest first, optionally only those in `status`.
    pub fn list(&self, model_id: &str, status: Option<Status>) -> Result<Vec<VersionSummary>> {
        let s = self.existing_state(model_id)?;
        let mut out: Vec<VersionSummary> = s
            .versions
            .into_iter()
            .filter(|(_, e)| status.is_none_or(|st| e.status == st))
            .map(|(tag, e)| VersionSummary {
                tag,
                seq: e.seq,
                status: e.status,
                created_at: e.created_at,
                status_since: e.status_since,
                deployed_at: e.deployed_at,
            })
            .collect();
        out.sort_by_key(|v| v.seq);
        Ok(out)
    }

    /// One version's metadata, manifest and current status (files are not hashed; see
    /// [`VersionStore::load_artifact`] and [`VersionStore::verify_version`]).
    pub fn get(&self, model_id: &str, tag: &str) -> Result<VersionInfo> {
        let s = self.existing_state(model_id)?;
        let e = s
            .versions
            .get(tag)
            .ok_or_else(|| Error::NotFound { model_id: model_id.into(), what: format!("version {tag}") })?;
        let dir = self.layout.version(model_id, tag);
        let loaded =
            Manifest::read(&dir, model_id, tag).and_then(|m| Ok((self.read_meta(&m, &dir, model_id, tag)?, m)));
        let (meta, manifest) = match loaded {
            Ok(x) => x,
            // gc may have committed its removal since we read the state: that is "gone", not corrupt.
            Err(err @ Error::CorruptVersion { .. }) => {
                return Err(match self.read_state(model_id) {
                    Ok(now) if !now.versions.contains_key(tag) => {
                        Error::NotFound { model_id: model_id.into(), what: format!("version {tag}") }
                    }
                    _ => err,
                });
            }
            Err(e) => return Err(e),
        };
        Ok(VersionInfo {
            model_id: model_id.into(),
            tag: tag.into(),
            status: e.status,
            status_since: e.status_since,
            deployed_at: e.deployed_at,
            meta,
            manifest,
            path: dir,
        })
    }

    /// The active version, if the model has one.
    pub fn active(&self, model_id: &str) -> Result<Option<VersionInfo>> {
        match self.read_state(model_id)?.active {
            Some(tag) => self.get(model_id, &tag).map(Some),
            None => Ok(None),
        }
    }

    /// An artifact's bytes, checked against the manifest (a mismatch is
    /// [`Error::CorruptVersion`]).
    pub fn load_artifact(&self, model_id: &str, tag: &str, name: &str) -> Result<Vec<u8>> {
        let info = self.get(model_id, tag)?;
        info.manifest.load(&info.path, name, model_id, tag)
    }

    /// Move a version to `to` (any legal transition) with its side effects; returns every
    /// status that changed.
    pub fn set_status(&self, model_id: &str, tag: &str, to: Status, change: &Change) -> Result<Vec<StatusChange>> {
        self.transition(model_id, tag, to, change, AuditKind::StatusChanged, None)
    }

    /// Make the SHADOW version `tag` active; the old active becomes RETIRED and `previous_active`.
    pub fn promote(&self, model_id: &str, tag: &str, change: &Change) -> Result<Vec<StatusChange>> {
        self.transition(
            model_id,
            tag,
            Status::Active,
            change,
            AuditKind::Promoted,
            Some((Status::Shadow, "promote takes a SHADOW version")),
        )
    }

    /// Make the RETIRED version `tag` active again (it must be intact).
    pub fn rollback(&self, model_id: &str, tag: &str, change: &Change) -> Result<Vec<StatusChange>> {
        self.transition(
            model_id,
            tag,
            Status::Active,
            change,
            AuditKind::RolledBack,
            Some((Status::Retired, "rollback takes a RETIRED version")),
        )
    }

    /// Retire `tag`; retiring the active version activates the most recent intact earlier
    /// deployment (the fallback), if any.
    pub fn retire(&self, model_id: &str, tag: &str, change: &Change) -> Result<Vec<StatusChange>> {
        self.transition(model_id, tag, Status::Retired, change, AuditKind::Retired, None)
    }

    fn transition(
        &self,
        model_id: &str,
        tag: &str,
        to: Status,
        change: &Change,
        kind: AuditKind,
        require: Option<(Status, &str)>,
    ) -> Result<Vec<StatusChange>> {
        self.locked(|| {
            let mut state = self.existing_state(model_id)?;
            Self::check_generation(model_id, &state, change)?;
            if let (Some((need, what)), Some(e)) = (require, state.versions.get(tag))
                && e.status != need
            {
                return Err(Error::IllegalTransition {
                    model_id: model_id.into(),
                    tag: tag.into(),
                    from: e.status.to_string(),
                    to: to.to_string(),
                    hint: format!("; {what}"),
                });
            }
            if to == Status::Active && state.versions.contains_key(tag) {
                self.verify_version(model_id, tag)?;
            }
            let now = self.clock.now();
            let changes = state.apply(model_id, tag, to, &change.reason, now, &mut |t| self.intact(model_id, t))?;
            let records: Vec<AuditRecord> = changes
                .iter()
                .map(|c| {
                    let mut r = self.side_effect(now, model_id, c, change);
                    if c.tag == tag {
                        r.event = kind;
                        r.reason = change.reason.clone();
                    }
                    r.generation = Some(state.generation);
                    r
                })
                .collect();
            audit::append(&self.layout.audit(), &records)?;
            self.commit_state(model_id, &state)?;
            Ok(changes)
        })
    }

    /// Save a deployment decision report about a kept version under its model and reference
    /// it from the audit log.
    pub fn record_decision(
        &self,
        model_id: &str,
        tag: &str,
        report: &serde_json::Value,
        change: &Change,
    ) -> Result<PathBuf> {
        check_model_id(model_id)?;
        check_tag(tag)?;
        self.locked(|| {
            if !self.existing_state(model_id)?.versions.contains_key(tag) {
                return Err(Error::NotFound { model_id: model_id.into(), what: format!("version {tag}") });
            }
            let now = self.clock.now();
            let dir = self.layout.decisions(model_id);
            create_dir_durable(&dir)?;
            let name = format!("{}-{tag}.json", now.as_millisecond());
            let path = dir.join(&name);
            let mut bytes = serde_json::to_vec_pretty(report).expect("JSON values serialise");
            bytes.push(b'\n');
            replace(&path, &bytes)?;
            let mut r = self.record(now, AuditKind::Decision, model_id, tag, change);
            r.reference = Some(format!("models/{model_id}/decisions/{name}"));
            r.checksum = Some(blake3::hash(&bytes).to_hex().to_string());
            audit::append(&self.layout.audit(), &[r])?;
            Ok(path)
        })
    }

    /// Every activation of `model_id`, oldest first (rollbacks included).
    pub fn deployments(&self, model_id: &str) -> Result<Vec<Deployment>> {
        Ok(self.existing_state(model_id)?.deployments)
    }

    /// Where the shadow test of `model_id`'s version `tag` keeps its paired records
    /// (`models/<id>/shadow/<tag>.jsonl`; the directory is created on first use).
    pub fn shadow_log_path(&self, model_id: &str, tag: &str) -> Result<PathBuf> {
        check_model_id(model_id)?;
        check_tag(tag)?;
        Ok(self.layout.shadow_log(model_id, tag))
    }

    /// A model's committed audit history, oldest first (`NotFound` for a model the store has
    /// never heard of). When the log's hash chain is broken, only the records before the break
    /// are returned (and a warning is logged); [`VersionStore::audit_trail`] says where.
    pub fn history(&self, model_id: &str) -> Result<Vec<AuditRecord>> {
        let trail = self.audit_trail(model_id)?;
        if let Some(b) = &trail.broken {
            tracing::warn!(model = model_id, "audit history cut at the broken chain: {b}");
        }
        Ok(trail.records)
    }

    /// The committed audit histories of `model_ids` from one pass over the log (one chain
    /// check for them all, where calling [`VersionStore::history`] per model checks it per
    /// model); a model the store does not know gets an empty history. Cut at a broken chain,
    /// like `history`.
    pub fn histories(&self, model_ids: &[&str]) -> Result<BTreeMap<String, Vec<AuditRecord>>> {
        let c = chain::check_file(&self.layout.audit(), None)?;
        if let Some(b) = &c.broken {
            tracing::warn!("audit histories cut at the broken chain: {b}");
        }
        let mut by_model: BTreeMap<String, Vec<AuditRecord>> =
            model_ids.iter().map(|&m| (m.to_string(), Vec::new())).collect();
        for r in c.records {
            if let Some(v) = r.model.as_deref().and_then(|m| by_model.get_mut(m)) {
                v.push(r);
            }
        }
        for (m, records) in &mut by_model {
            let generation = self.read_state(m)?.generation;
            *records = audit::committed(std::mem::take(records), m, generation);
        }
        Ok(by_model)
    }

    /// A model's committed audit history with the state of the log's hash chain: the records
    /// up to the first break, and where it broke.
    pub fn audit_trail(&self, model_id: &str) -> Result<AuditTrail> {
        let s = self.read_state(model_id)?;
        let c = chain::check_file(&self.layout.audit(), Some(&format!("\"model\":\"{model_id}\"")))?;
        let records = audit::committed(c.records, model_id, s.generation);
        if records.is_empty() && s.generation == 0 && c.broken.is_none() {
            return Err(Error::NotFound { model_id: model_id.into(), what: "model".into() });
        }
        Ok(AuditTrail { records, unchained: c.unchained, broken: c.broken })
    }

    /// Append a lifecycle record (trigger, job, alert) about `model_id` to the audit log; it
    /// changes no version, so it carries no generation.
    pub fn log_event(
        &self,
        model_id: &str,
        event: AuditKind,
        change: &Change,
        details: Option<serde_json::Value>,
    ) -> Result<()> {
        check_model_id(model_id)?;
        self.locked(|| {
            let mut r = AuditRecord::new(self.clock.now(), event, &change.actor, &change.reason);
            r.model = Some(model_id.into());
            r.details = details;
            audit::append(&self.layout.audit(), &[r])
        })
    }
}

/// Parse the FORMAT file.
fn check_format(path: &Path, bytes: &[u8]) -> Result<()> {
    let text = String::from_utf8_lossy(bytes);
    let mut words = text.split_whitespace();
    let corrupt = || Error::CorruptStore {
        path: path.to_path_buf(),
        reason: format!("expected `{FORMAT_MAGIC} <version>`, found {:?}", text.trim()),
    };
    if words.next() != Some(FORMAT_MAGIC) {
        return Err(corrupt());
    }
    let found = words.next().ok_or_else(corrupt)?;
    match found.parse::<u32>() {
        Ok(FORMAT_VERSION) if words.next().is_none() => Ok(()),
        Ok(_) => {
            Err(Error::StoreFormat { path: path.to_path_buf(), found: found.to_string(), supported: FORMAT_VERSION })
        }
        Err(_) => Err(corrupt()),
    }
}

/// A version being written in `.staging/`, guarded by its own lock file so cleanup can tell
/// a live writer from a dead one; removed on drop unless [`Staging::finish`]ed.
struct Staging {
    dir: PathBuf,
    lock: Option<FileLock>,
}

impl Staging {
    fn create(layout: &Layout) -> Result<Self> {
        let root = layout.staging();
        create_dir_durable(&root)?;
        let name = unique_name("v-");
        let lock = FileLock::acquire(&root.join(format!("{name}.lock")))?;
        let dir = root.join(name);
        fs::create_dir(&dir).map_err(io_err(&dir))?;
        Ok(Staging { dir, lock: Some(lock) })
    }

    /// The directory was renamed into place; drop the lock file.
    fn finish(mut self) {
        if let Some(l) = self.lock.take() {
            let _ = l.remove();
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(l) = self.lock.take() {
            let _ = fs::remove_dir_all(&self.dir);
            let _ = l.remove();
        }
    }
}

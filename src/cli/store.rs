//! The version-store commands: `versions`, `rollback`, `history` and `store put | promote |
//! retire | show | list | verify | gc`. Every command takes `--store DIR` (default `models/`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use retrain::store::{
    Artifact, AuditRecord, Change, RetentionPolicy, Status, VersionInfo, VersionMeta, VersionStore, VersionSummary,
};
use serde::Serialize;

/// The store location, shared by every store command.
#[derive(Debug, clap::Args)]
pub struct StoreDir {
    /// Store root directory.
    #[arg(long, default_value = "models")]
    store: PathBuf,
}

impl StoreDir {
    /// The store root.
    pub(super) fn path(&self) -> &std::path::Path {
        &self.store
    }
}

/// Who and why, for the audit log.
#[derive(Debug, clap::Args)]
pub struct Why {
    /// Reason recorded in the audit log.
    #[arg(long)]
    reason: Option<String>,
    /// Actor recorded in the audit log (default: $USER, else `cli`).
    #[arg(long)]
    actor: Option<String>,
}

impl Why {
    /// The audit log's who and why (`default_reason` unless --reason).
    pub(super) fn change(&self, default_reason: &str) -> Change {
        let actor = self.actor.clone().or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "cli".into());
        Change::new(actor, self.reason.clone().unwrap_or_else(|| default_reason.into()))
    }
}

/// `retrain versions`.
#[derive(Debug, clap::Args)]
pub struct VersionsArgs {
    /// The model id.
    model_id: String,
    /// Only versions in this status (training, shadow, active, retired, failed).
    #[arg(long)]
    status: Option<Status>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: StoreDir,
}

/// `retrain history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// The model id.
    model_id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: StoreDir,
}

/// `retrain store …`.
#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Import artifact files as a new version (e.g. a model trained elsewhere); prints the tag.
    Put(PutArgs),
    /// Make a SHADOW version active (the old active becomes RETIRED).
    Promote(TagArgs),
    /// Retire a version (retiring the active one falls back to the last intact deployment).
    Retire(TagArgs),
    /// Show one version (TAG, or `active` / `shadow`): status, meta, files.
    Show(ShowArgs),
    /// List the models with their active and shadow versions.
    List(ListArgs),
    /// Check every version's checksums and every state file; exit 1 on any problem.
    Verify(VerifyArgs),
    /// Apply retention (two-phase delete), clean crash leftovers, purge old trash.
    Gc(GcArgs),
}

/// `retrain store put`.
#[derive(Debug, clap::Args)]
pub struct PutArgs {
    /// The model id.
    model_id: String,
    /// Artifact files (stored under their file names).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// meta.json to record (model_kind, hyperparameters, metrics, …; unknown keys are errors).
    #[arg(long)]
    meta: Option<PathBuf>,
    /// Initial status: training, shadow or active.
    #[arg(long, default_value = "shadow")]
    status: Status,
    #[command(flatten)]
    why: Why,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: StoreDir,
}

/// A model and one of its versions (`rollback`, `store promote`, `store retire`).
#[derive(Debug, clap::Args)]
pub struct TagArgs {
    /// The model id.
    model_id: String,
    /// The version tag.
    tag: String,
    #[command(flatten)]
    why: Why,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: StoreDir,
}

/// `retrain store show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The model id.
    model_id: String,
    /// A version tag, `active` or `shadow`.
    #[arg(default_value = "active")]
    tag: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: StoreDir,
}

/// `retrain store list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: StoreDir,
}

/// `retrain store verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: StoreDir,
}

/// `retrain store gc`.
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Report what would go without changing anything.
    #[arg(long)]
    dry_run: bool,
    /// Most recent versions kept per model.
    #[arg(long, default_value_t = 10)]
    max_versions: usize,
    /// Never-deployed versions kept beyond those.
    #[arg(long, default_value_t = 5)]
    max_non_deployed: usize,
    /// How long trashed versions wait before they are purged (e.g. 24h, 30m, 0s).
    #[arg(long, default_value = "24h")]
    trash_grace: jiff::SignedDuration,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: StoreDir,
}

fn existing(dir: &StoreDir) -> Result<VersionStore> {
    VersionStore::open_existing(&dir.store).with_context(|| format!("opening the store at {}", dir.store.display()))
}

fn writable(dir: &StoreDir) -> Result<VersionStore> {
    VersionStore::open(&dir.store).with_context(|| format!("opening the store at {}", dir.store.display()))
}

fn ts(t: Option<jiff::Timestamp>) -> String {
    t.map_or_else(|| "-".into(), |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
}

/// `retrain versions MODEL_ID`.
pub fn versions(a: VersionsArgs) -> Result<()> {
    let s = existing(&a.dir)?;
    let list = s.list(&a.model_id, a.status)?;
    let aliases = s.aliases(&a.model_id)?;
    if a.json {
        #[derive(Serialize)]
        struct Out<'a> {
            model_id: &'a str,
            aliases: &'a retrain::store::Aliases,
            versions: &'a [VersionSummary],
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&Out { model_id: &a.model_id, aliases: &aliases, versions: &list })?
        );
        return Ok(());
    }
    println!("{:<20} {:<9} {:<19}  {:<19}  alias", "TAG", "STATUS", "CREATED (UTC)", "FIRST DEPLOYED");
    for v in &list {
        let alias =
            [("active", &aliases.active), ("shadow", &aliases.shadow), ("previous_active", &aliases.previous_active)]
                .iter()
                .filter(|(_, t)| t.as_deref() == Some(&v.tag))
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(",");
        println!("{:<20} {:<9} {:<19}  {:<19}  {alias}", v.tag, v.status, ts(Some(v.created_at)), ts(v.deployed_at));
    }
    println!("{} version(s); generation {}", list.len(), aliases.generation);
    Ok(())
}

fn print_changes(json: bool, changes: &[retrain::store::StatusChange]) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(changes)?);
    } else {
        for c in changes {
            println!("{}: {} -> {} ({})", c.tag, c.from, c.to, c.why);
        }
    }
    Ok(())
}

/// `retrain rollback MODEL_ID TAG`.
pub fn rollback(a: TagArgs) -> Result<()> {
    let s = writable(&a.dir)?;
    let changes = s.rollback(&a.model_id, &a.tag, &a.why.change("manual rollback"))?;
    print_changes(a.json, &changes)
}

/// `retrain history MODEL_ID`.
pub fn history(a: HistoryArgs) -> Result<()> {
    let s = existing(&a.dir)?;
    let trail = s.audit_trail(&a.model_id)?;
    let h: &[AuditRecord] = &trail.records;
    if a.json {
        println!("{}", serde_json::to_string_pretty(h)?);
    } else {
        print_history(h)?;
    }
    if let Some(b) = &trail.broken {
        bail!("the audit log's hash chain is broken at {b}; the records above are the ones before the break");
    }
    Ok(())
}

fn print_history(h: &[AuditRecord]) -> Result<()> {
    for r in h {
        let event = serde_json::to_value(r.event)?.as_str().unwrap_or_default().to_string();
        let moved = match (r.from, r.to) {
            (Some(f), Some(t)) => format!("{f} -> {t}"),
            (None, Some(t)) => format!("-> {t}"),
            _ => String::new(),
        };
        let refer = r.reference.as_deref().map(|x| format!(" [{x}]")).unwrap_or_default();
        println!(
            "{}  {:<14} {:<20} {:<21} {}: {}{refer}",
            ts(Some(r.ts)),
            event,
            r.version.as_deref().unwrap_or("-"),
            moved,
            r.actor,
            r.reason
        );
    }
    Ok(())
}

/// `retrain store …`.
pub fn run(cmd: StoreCommand) -> Result<()> {
    match cmd {
        StoreCommand::Put(a) => put(a),
        StoreCommand::Promote(a) => {
            let s = writable(&a.dir)?;
            print_changes(a.json, &s.promote(&a.model_id, &a.tag, &a.why.change("manual promotion"))?)
        }
        StoreCommand::Retire(a) => {
            let s = writable(&a.dir)?;
            print_changes(a.json, &s.retire(&a.model_id, &a.tag, &a.why.change("manual retirement"))?)
        }
        StoreCommand::Show(a) => show(a),
        StoreCommand::List(a) => list(a),
        StoreCommand::Verify(a) => verify(a),
        StoreCommand::Gc(a) => gc(a),
    }
}

fn put(a: PutArgs) -> Result<()> {
    let mut meta = match &a.meta {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            VersionMeta::from_json_str(&text, &p.display().to_string())?
        }
        None => VersionMeta::new("imported"),
    };
    meta.status = a.status;
    let files = a.files.iter().map(Artifact::file).collect::<retrain::Result<Vec<_>>>()?;
    for f in &a.files {
        anyhow::ensure!(f.is_file(), "{}: not a file", f.display());
    }
    let s = writable(&a.dir)?;
    let tag = s.register(&a.model_id, meta, &files, &a.why.change("imported with retrain store put"))?;
    if a.json {
        let info = s.get(&a.model_id, &tag)?;
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!("{tag}");
    }
    Ok(())
}

fn show(a: ShowArgs) -> Result<()> {
    let s = existing(&a.dir)?;
    let aliases = s.aliases(&a.model_id)?;
    let tag = match a.tag.as_str() {
        "active" => aliases.active.clone().with_context(|| format!("model `{}` has no active version", a.model_id))?,
        "shadow" => aliases.shadow.clone().with_context(|| format!("model `{}` has no shadow version", a.model_id))?,
        t => t.to_string(),
    };
    let info: VersionInfo = s.get(&a.model_id, &tag)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!("{} {}  {}  ({})", info.model_id, info.tag, info.status, info.path.display());
    println!(
        "  kind {}  created {}  first deployed {}",
        info.meta.model_kind,
        ts(info.meta.created_at),
        ts(info.deployed_at)
    );
    if let Some(r) = info.meta.data_range {
        println!("  data {} .. {}", r.start, r.end);
    }
    for (what, m) in [("train", &info.meta.train_metrics), ("validation", &info.meta.validation_metrics)] {
        if !m.is_empty() {
            let kv: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
            println!("  {what}: {}", kv.join(" "));
        }
    }
    for (name, e) in &info.manifest.files {
        println!("  {name:<28} {:>12} bytes  blake3 {}", e.size, &e.blake3[..16]);
    }
    Ok(())
}

fn list(a: ListArgs) -> Result<()> {
    let s = existing(&a.dir)?;
    #[derive(Serialize)]
    struct Row {
        model_id: String,
        versions: usize,
        active: Option<String>,
        shadow: Option<String>,
        generation: u64,
    }
    let mut rows = Vec::new();
    for m in s.models()? {
        let al = s.aliases(&m)?;
        let n = s.list(&m, None)?.len();
        rows.push(Row { model_id: m, versions: n, active: al.active, shadow: al.shadow, generation: al.generation });
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{:<24} {:>8}  {:<20} {:<20}", "MODEL", "VERSIONS", "ACTIVE", "SHADOW");
        for r in rows {
            let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
            println!("{:<24} {:>8}  {:<20} {:<20}", r.model_id, r.versions, opt(&r.active), opt(&r.shadow));
        }
    }
    Ok(())
}

fn verify(a: VerifyArgs) -> Result<()> {
    let s = existing(&a.dir)?;
    let bar = if a.json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new_spinner() };
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} verified {pos} versions: {msg}")?);
    let rep = s.verify_with_progress(&mut |model, tag| {
        bar.inc(1);
        bar.set_message(format!("{model} {tag}"));
    })?;
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        print!("{rep}");
    }
    let n = rep.problems().count();
    if n > 0 {
        bail!("the store at {} has {n} problem(s)", a.dir.store.display());
    }
    Ok(())
}

fn gc(a: GcArgs) -> Result<()> {
    let s = existing(&a.dir)?;
    let policy = RetentionPolicy {
        max_versions: a.max_versions,
        max_non_deployed: a.max_non_deployed,
        trash_grace: a.trash_grace,
    };
    let rep = s.gc(&policy, a.dry_run)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
        return Ok(());
    }
    let verb = if a.dry_run { "would trash" } else { "trashed" };
    for i in &rep.trashed {
        println!("{verb} {} {}: {}", i.model_id, i.tag, i.reason);
    }
    for p in &rep.purged {
        println!("{} {p}", if a.dry_run { "would purge" } else { "purged" });
    }
    for m in &rep.skipped {
        println!("skipped {m}");
    }
    println!(
        "{} version(s) {verb}, {} purged, {} dead staging dir(s), {} temp file(s) and {} orphaned decision \
         report(s) removed{}",
        rep.trashed.len(),
        rep.purged.len(),
        rep.staging_removed.len(),
        rep.temp_files_removed.len(),
        rep.reports_removed.len(),
        if a.dry_run { " (dry run: nothing changed)" } else { "" }
    );
    Ok(())
}

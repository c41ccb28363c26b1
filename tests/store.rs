//! Version store behaviour through the public API: lifecycle, tags, checksums, corruption,
//! compare-and-swap, retention/gc, crash leftovers and the audit log.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use retrain::Error;
use retrain::clock::ManualClock;
use retrain::store::{Artifact, AuditKind, Change, RetentionPolicy, Severity, Status, VersionMeta, VersionStore};

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new("2026-11-23T10:15:00Z".parse().unwrap()))
}

fn open(dir: &Path, c: &Arc<ManualClock>) -> VersionStore {
    VersionStore::open(dir).unwrap().with_clock(c.clone())
}

fn who() -> Change {
    Change::new("test", "because")
}

fn meta(status: Status) -> VersionMeta {
    let mut m = VersionMeta::new("lightgbm");
    m.status = status;
    m.n_samples = Some(1000);
    m.validation_metrics.insert("auc".into(), 0.61);
    m
}

fn put(s: &VersionStore, c: &ManualClock, model: &str, status: Status) -> String {
    c.advance(SignedDuration::from_secs(1));
    s.register(model, meta(status), &[Artifact::bytes("model.bin", vec![1, 2, 3])], &who()).unwrap()
}

#[test]
fn register_promote_rollback_and_history() {
    let d = tempfile::tempdir().unwrap();
    let c = clock();
    let s = open(d.path(), &c);
    let v1 = put(&s, &c, "btc", Status::Shadow);
    assert_eq!(v1, "v20261123_101501");
    s.promote("btc", &v1, &who()).unwrap();
    let v2 = put(&s, &c, "btc", Status::Shadow);
    let changes = s.promote("btc", &v2, &Change::new("alice", "beats v1")).unwrap();
    assert_eq!(changes.len(), 2);
    let a = s.aliases("btc").unwrap();
    assert_eq!(
        (a.active.as_deref(), a.previous_active.as_deref(), a.shadow.as_deref()),
        (Some(&*v2), Some(&*v1), None)
    );
    s.rollback("btc", &v1, &Change::new("bob", "v2 misbehaves live")).unwrap();
    let a = s.aliases("btc").unwrap();
    assert_eq!((a.active.as_deref(), a.previous_active.as_deref()), (Some(&*v1), Some(&*v2)));
    let list = s.list("btc", None).unwrap();
    assert_eq!(
        list.iter().map(|v| (v.tag.as_str(), v.status)).collect::<Vec<_>>(),
        vec![(&*v1, Status::Active), (&*v2, Status::Retired)]
    );
    assert!(list.iter().all(|v| v.deployed_at.is_some()));
    assert_eq!(s.list("btc", Some(Status::Retired)).unwrap().len(), 1);

    let info = s.active("btc").unwrap().unwrap();
    assert_eq!(info.tag, v1);
    assert_eq!(info.meta.version_tag, v1);
    assert_eq!(info.meta.status, Status::Shadow, "meta keeps the registration status");
    assert_eq!(info.meta.crate_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.meta.validation_metrics["auc"], 0.61);
    assert_eq!(info.manifest.names(), vec!["meta.json", "model.bin"]);

    let h = s.history("btc").unwrap();
    let kinds: Vec<(AuditKind, &str)> = h.iter().map(|r| (r.event, r.version.as_deref().unwrap())).collect();
    use AuditKind::*;
    assert_eq!(
        kinds,
        vec![
            (Registered, &*v1),
            (Promoted, &*v1),
            (Registered, &*v2),
            (Promoted, &*v2),
            (StatusChanged, &*v1),
            (RolledBack, &*v1),
            (StatusChanged, &*v2)
        ]
    );
    assert_eq!(h[3].actor, "alice");
    assert_eq!(h[4].reason, format!("replaced by {v2}"));
    assert!(h.windows(2).all(|w| w[0].generation <= w[1].generation));
    assert!(s.verify().unwrap().is_ok());
    assert_eq!(s.models().unwrap(), vec!["btc"]);
}

#[test]
fn same_second_registrations_get_suffixes_and_files_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let c = clock();
    let s = open(d.path(), &c);
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let src = d.path().join("weights.safetensors");
    fs::write(&src, &big).unwrap();
    let files = [Artifact::file(&src).unwrap(), Artifact::bytes("config.json", b"{\"d\":16}".to_vec())];
    let tags: Vec<String> = (0..3).map(|_| s.register("nn", meta(Status::Training), &files, &who()).unwrap()).collect();
    assert_eq!(tags, vec!["v20261123_101500", "v20261123_101500_2", "v20261123_101500_3"]);
    assert_eq!(s.load_artifact("nn", &tags[2], "weights.safetensors").unwrap(), big);
    assert_eq!(s.load_artifact("nn", &tags[2], "config.json").unwrap(), b"{\"d\":16}");
    let e = s.load_artifact("nn", &tags[2], "nope.bin").unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }) && e.to_string().contains("weights.safetensors"), "{e}");
    assert!(matches!(s.get("nn", "v20200101_000000"), Err(Error::NotFound { .. })));
    assert!(matches!(s.list("unknown", None), Err(Error::NotFound { .. })));
    assert!(matches!(s.register("a/b", meta(Status::Training), &[], &who()), Err(Error::InvalidParam { .. })));
    let dup = [Artifact::bytes("x", vec![]), Artifact::bytes("x", vec![])];
    assert!(s.register("nn", meta(Status::Training), &dup, &who()).unwrap_err().to_string().contains("twice"));
    let reserved = [Artifact::bytes("manifest.json", vec![])];
    assert!(s.register("nn", meta(Status::Training), &reserved, &who()).is_err());
    // Failed registrations leave nothing behind.
    assert_eq!(fs::read_dir(d.path().join(".staging")).unwrap().count(), 0);
    assert_eq!(s.list("nn", None).unwrap().len(), 3);
}

#[test]
fn damaged_versions_are_typed_errors_and_verify_names_them() {
    let d = tempfile::tempdir().unwrap();
    let c = clock();
    let s = open(d.path(), &c);
    let good = put(&s, &c, "m", Status::Active);
    let trunc = put(&s, &c, "m", Status::Training);
    let flip = put(&s, &c, "m", Status::Training);
    let nomani = put(&s, &c, "m", Status::Training);
    let vdir = |t: &str| d.path().join("models/m/versions").join(t);
    fs::write(vdir(&trunc).join("model.bin"), [1, 2]).unwrap();
    fs::write(vdir(&flip).join("model.bin"), [1, 2, 4]).unwrap();
    fs::remove_file(vdir(&nomani).join("manifest.json")).unwrap();

    let e = s.load_artifact("m", &trunc, "model.bin").unwrap_err();
    assert!(matches!(&e, Error::CorruptVersion { tag, .. } if *tag == trunc), "{e}");
    assert!(e.to_string().contains("2 bytes on disk"), "{e}");
    let e = s.load_artifact("m", &flip, "model.bin").unwrap_err();
    assert!(e.to_string().contains("blake3"), "{e}");
    let e = s.get("m", &nomani).unwrap_err();
    assert!(matches!(e, Error::CorruptVersion { .. }) && e.to_string().contains("manifest.json is missing"), "{e}");
    assert_eq!(s.load_artifact("m", &good, "model.bin").unwrap(), vec![1, 2, 3]);

    let rep = s.verify().unwrap();
    assert!(!rep.is_ok());
    let bad: Vec<&str> = rep.problems().map(|f| f.tag.as_deref().unwrap()).collect();
    assert_eq!(bad, vec![&*trunc, &*flip, &*nomani]);
    assert!(rep.problems().all(|f| f.path.ends_with(f.tag.as_deref().unwrap())));

    // A corrupt version can be neither deployed nor a fallback.
    s.set_status("m", &flip, Status::Shadow, &who()).unwrap();
    assert!(matches!(s.promote("m", &flip, &who()), Err(Error::CorruptVersion { .. })));
    assert_eq!(s.aliases("m").unwrap().active.as_deref(), Some(&*good));
}

#[test]
fn garbage_state_files_and_formats_are_typed_errors() {
    let d = tempfile::tempdir().unwrap();
    let c = clock();
    let s = open(d.path(), &c);
    put(&s, &c, "m", Status::Active);
    put(&s, &c, "ok", Status::Active);
    let aliases = d.path().join("models/m/aliases.json");
    fs::write(&aliases, b"{\"generation\": 3, \"act").unwrap();
    let e = s.list("m", None).unwrap_err();
    assert!(matches!(&e, Error::CorruptStore { path, .. } if *path == aliases), "{e}");
    let rep = s.verify().unwrap();
    let probs: Vec<_> = rep.problems().collect();
    assert_eq!(probs.len(), 1);
    assert_eq!((probs[0].model_id.as_deref(), &probs[0].path), (Some("m"), &aliases));
    // Other models keep working.
    assert!(s.active("ok").unwrap().is_some());

    // Two actives written by hand are caught on read.
    let mut st: serde_json::Value =
        serde_json::from_slice(&fs::read(d.path().join("models/ok/aliases.json")).unwrap()).unwrap();
    st["active"] = serde_json::Value::Null;
    fs::write(d.path().join("models/ok/aliases.json"), serde_json::to_vec(&st).unwrap()).unwrap();
    assert!(s.aliases("ok").unwrap_err().to_string().contains("alias active"));

    fs::write(d.path().join("FORMAT"), "retrain-store 2\n").unwrap();
    let e = VersionStore::open(d.path()).unwrap_err();
    assert!(matches!(e, Error::StoreFormat { ref found, supported: 1, .. } if found == "2"), "{e}");
    fs::write(d.path().join("FORMAT"), "mlflow\n").unwrap();
    assert!(matches!(VersionStore::open(d.path()), Err(Error::CorruptStore { .. })));

    let other = tempfile::tempdir().unwrap();
    fs::write(other.path().join("notes.txt"), "hello").unwrap();
    let e = VersionStore::open(other.path()).unwrap_err();
    assert!(e.to_string().contains("refusing to adopt"), "{e}");
    assert!(VersionStore::open_existing(other.path().join("missing")).is_err());
    assert!(matches!(VersionStore::open_existing(other.path()), Err(Error::CorruptStore { .. })));
}

#[test]
fn compare_and_swap_and_illegal_transitions_change_nothing() {
    let d = tempfile::tempdir().unwrap();
    let c = clock();
    let s = open(d.path(), &c);
    let v1 = put(&s, &c, "m", Status::Shadow);
    let v2 = put(&s, &c, "m", Status::Training);
    let g = s.aliases("m").unwrap().generation;
    s.promote("m", &v1, &who().if_generation(g)).unwrap();
    let e = s.set_status("m", &v2, Status::Shadow, &who().if_generation(g)).unwrap_err();
    assert!(matches!(e, Error::GenerationConflict { expected, found, .. } if expected == g && found == g + 1), "{e}");
    s.set_status("m", &v2, Status::Failed, &who()).unwrap();
    let before = s.aliases("m").unwrap();
    let e = s.rollback("m", &v2, &who()).unwrap_err();
    assert!(matches!(e, Error::IllegalTransition { .. }) && e.to_string().contains("RETIRED"), "{e}");
    let e = s.set_status("m", &v2, Status::Active, &who()).unwrap_err();
    assert!(e.to_string().contains("FAILED is terminal"), "{e}");
    let e = s.promote("m", &v1, &who()).unwrap_err();
    assert!(e.to_string().contains("promote takes a SHADOW"), "{e}");
    assert_eq!(s.aliases("m").unwrap(), before);
}

#[test]
fn retiring_the_active_falls_back_and_records_why() {
    let d = tempfile::tempdir().unwrap();
    let c = clock();
    let s = open(d.path(), &c);
    let v1 = put(&s, &c, "m", Status::Active);
    let v2 = put(&s, &c, "m", Status::Active);
    let ch = s.retire("m", &v2, &Change::new("lifecycle", "IC < 0 for 30 trading days")).unwrap();
    assert_eq!(
        ch.iter().map(|c| (c.tag.as_str(), c.to)).collect::<Vec<_>>(),
        vec![(&*v2, Status::Retired), (&*v1, Status::Active)]
    );
    assert_eq!(s.aliases("m").unwrap().active.as_deref(), Some(&*v1));
    let last = s.history("m").unwrap().pop().unwrap();
    assert_eq!(
        (last.event, last.to, last.reason.contains("fallback")),
        (AuditKind::StatusChanged, Some(Status::Active), true)
    );
}

#[test]
fn gc_applies_retention_in_two_phases() {
    let d = tempfile::tempdir().unwrap();
    let c = clock();
    let s = open(d.path(), &c);
    let mut tags = Vec::new();
    for i in 0..20 {
        tags.push(put(&s, &c, "m", if i % 7 == 0 { Status::Active } else { Status::Training }));
    }
    let policy = RetentionPolicy { max_versions: 4, max_non_deployed: 2, ..Default::default() };
    let dry = s.gc(&policy, true).unwrap();
    assert!(dry.dry_run);
    // 20 versions: last 4 kept, deployed 0/7/14 kept, 2 more non-deployed kept → 11 go.
    assert_eq!(dry.trashed.len(), 11);
    assert_eq!(s.list("m", None).unwrap().len(), 20, "dry run changes nothing");
    let real = s.gc(&policy, false).unwrap();
    assert_eq!(real.trashed, dry.trashed);
    let kept: Vec<String> = s.list("m", None).unwrap().into_iter().map(|v| v.tag).collect();
    let want: Vec<String> = [0, 7, 13, 14, 15, 16, 17, 18, 19].iter().map(|&i| tags[i].clone()).collect();
    assert_eq!(kept, want);
    assert_eq!(fs::read_dir(d.path().join(".trash")).unwrap().count(), 11);
    assert!(s.verify().unwrap().is_ok());
    // Within the grace period nothing is purged; after it, everything trashed is.
    assert!(s.gc(&policy, false).unwrap().purged.is_empty());
    c.advance(SignedDuration::from_hours(25));
    assert_eq!(s.gc(&policy, false).unwrap().purged.len(), 11);
    assert_eq!(fs::read_dir(d.path().join(".trash")).unwrap().count(), 0);
    let h = s.history("m").unwrap();
    assert_eq!(h.iter().filter(|r| r.event == AuditKind::Trashed).count(), 11);
    assert_eq!(h.iter().filter(|r| r.event == AuditKind::Purged).count(), 11);

    // Purge records name model and version even when the model id has dots and ".v" in it.
    let odd = "lgbm.v2.eth";
    for _ in 0..3 {
        put(&s, &c, odd, Status::Training);
    }
    let one = RetentionPolicy { max_versions: 1, max_non_deployed: 0, trash_grace: SignedDuration::ZERO };
    let rep = s.gc(&one, false).unwrap();
    assert_eq!((rep.trashed.len(), rep.purged.len()), (7, 7), "2 of {odd}, 5 more of m");
    let purged: Vec<(String, String)> = s
        .history(odd)
        .unwrap()
        .into_iter()
        .filter(|r| r.event == AuditKind::Purged)
        .map(|r| (r.model.unwrap(), r.version.unwrap()))
        .collect();
    let trashed: Vec<(String, String)> =
        rep.trashed.iter().filter(|i| i.model_id == odd).map(|i| (i.model_id.clone(), i.tag.clone())).collect();
    assert_eq!(trashed.len(), 2);
    assert_eq!(purged, trashed);
}

#[test]
fn crash_leftovers_are_reported_then_cleaned() {
    let d = tempfile::tempdir().unwrap();
    let c = clock();
    let s = open(d.path(), &c);
    let v1 = put(&s, &c, "m", Status::Active);
    // A dead writer's staging dir, an orphaned version (renamed but never committed), a temp
    // file from an interrupted replace, an uncommitted audit record and a torn audit line.
    fs::create_dir_all(d.path().join(".staging/v-999-1-0")).unwrap();
    fs::write(d.path().join(".staging/v-999-1-0/model.bin"), b"partial").unwrap();
    let orphan = d.path().join("models/m/versions/v20261123_999999");
    fs::create_dir_all(&orphan).unwrap();
    fs::write(d.path().join("models/m/.tmp-123-4-5"), b"{").unwrap();
    let generation = s.aliases("m").unwrap().generation;
    // The record a writer appends (chained to the last one) before it dies uncommitted, and
    // before it moves the chain's head; then a torn line from another.
    let log = fs::read_to_string(d.path().join("audit.jsonl")).unwrap();
    let tip: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    let body = format!(
        "{{\"ts\":\"2026-11-23T10:20:00Z\",\"event\":\"promoted\",\"model\":\"m\",\"version\":\"v20261123_999999\",\"actor\":\"x\",\"reason\":\"\",\"generation\":{},\"prev\":\"{}\"",
        generation + 1,
        tip["hash"].as_str().unwrap()
    );
    let ghost = format!("{body},\"hash\":\"{}\"}}\n{{\"ts\":\"2026", blake3::hash(body.as_bytes()).to_hex());
    fs::OpenOptions::new()
        .append(true)
        .open(d.path().join("audit.jsonl"))
        .unwrap()
        .write_all(ghost.as_bytes())
        .unwrap();

    assert!(
        s.history("m").unwrap().iter().all(|r| r.event != AuditKind::Promoted || r.version.as_deref() == Some(&*v1))
    );
    let rep = s.verify().unwrap();
    assert!(rep.is_ok(), "{rep}");
    let left: Vec<&str> =
        rep.findings.iter().filter(|f| f.severity == Severity::Leftover).map(|f| f.detail.as_str()).collect();
    assert_eq!(left.len(), 6, "{rep}");
    assert!(left.iter().any(|l| l.contains("past the chain's head")), "{rep}");

    // open (a writer's open) tidies staging, temp files and the audit; gc trashes the orphan.
    let s = open(d.path(), &c);
    assert_eq!(fs::read_dir(d.path().join(".staging")).unwrap().count(), 0);
    assert!(!d.path().join("models/m/.tmp-123-4-5").exists());
    let gc = s.gc(&RetentionPolicy::default(), false).unwrap();
    assert_eq!(gc.trashed.len(), 1);
    assert!(gc.trashed[0].reason.starts_with("orphan"));
    let rep = s.verify().unwrap();
    assert!(rep.findings.is_empty(), "{rep}");
    let v2 = put(&s, &c, "m", Status::Shadow);
    s.promote("m", &v2, &who()).unwrap();
    let text = fs::read_to_string(d.path().join("audit.jsonl")).unwrap();
    assert!(text.ends_with('\n') && text.contains("\"event\":\"aborted\""));
    assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    let h = s.history("m").unwrap();
    let promoted: Vec<&str> =
        h.iter().filter(|r| r.event == AuditKind::Promoted).map(|r| r.version.as_deref().unwrap()).collect();
    assert_eq!(promoted, vec![&*v2], "the ghost promotion stays out");
}

#[test]
fn decisions_are_saved_and_referenced() {
    let d = tempfile::tempdir().unwrap();
    let c = clock();
    let s = open(d.path(), &c);
    let v1 = put(&s, &c, "m", Status::Shadow);
    let report = serde_json::json!({"decision": "DEPLOY", "score": 0.071});
    let path = s.record_decision("m", &v1, &report, &Change::new("lifecycle", "weighted improvement 7.1%")).unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&fs::read(&path).unwrap()).unwrap(), report);
    let last = s.history("m").unwrap().pop().unwrap();
    assert_eq!(last.event, AuditKind::Decision);
    assert!(d.path().join(last.reference.unwrap()).is_file());
}

#[test]
fn concurrent_threads_never_lose_a_registration() {
    let d = tempfile::tempdir().unwrap();
    let c: Arc<ManualClock> = Arc::new(ManualClock::new(Timestamp::from_second(1_790_000_000).unwrap()));
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (root, c) = (d.path().to_path_buf(), c.clone());
            scope.spawn(move || {
                let s = VersionStore::open(&root).unwrap().with_clock(c);
                for i in 0..15 {
                    let m = meta(if i % 2 == 0 { Status::Shadow } else { Status::Active });
                    let tag = s.register("m", m, &[Artifact::bytes("w", vec![t; 100])], &who()).unwrap();
                    if i % 2 == 0 {
                        // Another thread may have superseded our shadow already.
                        let _ = s.promote("m", &tag, &who());
                    }
                }
            });
        }
    });
    let s = VersionStore::open(d.path()).unwrap();
    let list = s.list("m", None).unwrap();
    assert_eq!(list.len(), 60);
    assert_eq!(list.iter().filter(|v| v.status == Status::Active).count(), 1);
    assert!(s.verify().unwrap().findings.is_empty());
    let regs = s.history("m").unwrap().iter().filter(|r| r.event == AuditKind::Registered).count();
    assert_eq!(regs, 60);
}

#[test]
fn cache_files_round_trip_and_temp_leftovers_are_tidied() {
    let d = tempfile::tempdir().unwrap();
    let c = clock();
    let s = open(d.path(), &c);
    assert_eq!(s.read_cache("ks-exact-p.bin").unwrap(), None);
    s.write_cache("ks-exact-p.bin", b"one").unwrap();
    s.write_cache("ks-exact-p.bin", b"two").unwrap();
    assert_eq!(s.read_cache("ks-exact-p.bin").unwrap().as_deref(), Some(&b"two"[..]));
    assert!(matches!(s.write_cache("../escape", b"x"), Err(Error::InvalidParam { .. })));
    // A writer that died mid-replace leaves a temp file in the cache; reopening removes it,
    // and verify has nothing to say about the cache.
    fs::write(s.cache_dir().join(".tmpXYZ"), b"partial").unwrap();
    let s = open(d.path(), &c);
    assert_eq!(fs::read_dir(s.cache_dir()).unwrap().count(), 1);
    assert!(s.verify().unwrap().is_ok());
}

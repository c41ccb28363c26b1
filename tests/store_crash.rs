//! Real processes, real files: writers killed with SIGKILL at random instants, and several
//! processes registering and promoting at once. The writer is this test binary re-executed
//! in "child" mode (`stress_child`, inert unless `STORE_STRESS_ROOT` is set).
//!
//! CI runs 60 kills; the long variant (300) is `#[ignore]`:
//! `cargo test --release --test store_crash -- --ignored survives_sigkill_300`.
#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use retrain::Error;
use retrain::rng::Rng;
use retrain::store::{Artifact, Change, RetentionPolicy, Severity, Status, VersionMeta, VersionStore};

const MODELS: [&str; 2] = ["alpha", "beta"];

fn child(root: &Path, mode: &str, seed: u64) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "stress_child", "--ignored", "--nocapture", "--test-threads", "1"])
        .env("STORE_STRESS_ROOT", root)
        .env("STORE_STRESS_MODE", mode)
        .env("STORE_STRESS_SEED", seed.to_string());
    c
}

/// Errors a legitimate sequence of random operations may meet (a status moved meanwhile).
fn expected(e: &Error) -> bool {
    matches!(e, Error::IllegalTransition { .. } | Error::NotFound { .. } | Error::GenerationConflict { .. })
}

fn meta(status: Status, seed: u64) -> VersionMeta {
    let mut m = VersionMeta::new("lightgbm");
    m.status = status;
    m.seed = Some(seed);
    m
}

/// One random step of a writer that exercises every mutating path of the store.
fn chaos_step(s: &VersionStore, rng: &mut Rng, seed: u64) -> retrain::Result<()> {
    let model = MODELS[rng.below(2)];
    let who = Change::new("stress", "random step");
    match rng.below(10) {
        0..=3 => {
            let status = [Status::Training, Status::Shadow, Status::Active][rng.below(3)];
            let files: Vec<Artifact> = (0..1 + rng.below(3))
                .map(|i| {
                    let n = rng.below(300_000);
                    Artifact::bytes(format!("part{i}.bin"), (0..n).map(|j| (j as u64 ^ seed) as u8).collect())
                })
                .collect();
            s.register(model, meta(status, seed), &files, &who).map(|_| ())
        }
        4 => match s.aliases(model)?.shadow {
            Some(t) => s.promote(model, &t, &who).map(|_| ()),
            None => Ok(()),
        },
        5 => {
            let a = s.aliases(model)?;
            match a.previous_active {
                Some(t) if a.active.as_deref() != Some(&t) => s.rollback(model, &t, &who).map(|_| ()),
                _ => Ok(()),
            }
        }
        6 => {
            // Retire the active only when a fallback exists, so an active version always remains.
            let a = s.aliases(model)?;
            match (a.active, a.previous_active) {
                (Some(t), Some(_)) => s.retire(model, &t, &who).map(|_| ()),
                _ => Ok(()),
            }
        }
        7 => {
            let training = s.list(model, Some(Status::Training))?;
            match training.first() {
                Some(v) => s.set_status(model, &v.tag, Status::Failed, &who).map(|_| ()),
                None => Ok(()),
            }
        }
        8 => {
            let policy =
                RetentionPolicy { max_versions: 3, max_non_deployed: 1, trash_grace: jiff::SignedDuration::ZERO };
            s.gc(&policy, false).map(|_| ())
        }
        _ => match s.aliases(model)?.active {
            Some(t) => s.record_decision(model, &t, &serde_json::json!({"keep": true}), &who).map(|_| ()),
            None => Ok(()),
        },
    }
}

#[test]
#[ignore = "helper process for the other tests in this file"]
fn stress_child() {
    let Ok(root) = std::env::var("STORE_STRESS_ROOT") else { return };
    let seed: u64 = std::env::var("STORE_STRESS_SEED").unwrap().parse().unwrap();
    let s = VersionStore::open(&root).unwrap();
    match std::env::var("STORE_STRESS_MODE").unwrap().as_str() {
        "chaos" => {
            // Tell the parent we are past process start-up, so its random delay lands in the
            // write loop even on a loaded machine where exec takes longer than the delay.
            println!("READY");
            let mut rng = Rng::new(seed);
            loop {
                if let Err(e) = chaos_step(&s, &mut rng, seed)
                    && !expected(&e)
                {
                    panic!("unexpected store error: {e}");
                }
            }
        }
        "register" => {
            let who = Change::new(format!("proc{seed}"), "concurrency test");
            for i in 0..50 {
                let files = [Artifact::bytes("model.bin", vec![seed as u8; 1000 + i])];
                let tag = s.register("shared", meta(Status::Shadow, seed), &files, &who).unwrap();
                println!("TAG {tag}");
                match s.promote("shared", &tag, &who) {
                    Ok(_) => {}
                    Err(e) if expected(&e) => {} // a newer shadow from another process superseded it
                    Err(e) => panic!("{e}"),
                }
            }
        }
        m => panic!("unknown mode {m}"),
    }
}

/// A reader polling while the writer runs: it must never see a torn or half-made state.
fn read_everything(s: &VersionStore) {
    for m in MODELS {
        match s.active(m) {
            Ok(Some(info)) => {
                for name in info.manifest.names() {
                    s.load_artifact(m, &info.tag, &name).unwrap_or_else(|e| panic!("reader saw {e}"));
                }
            }
            Ok(None) | Err(Error::NotFound { .. }) => {}
            Err(e) => panic!("reader saw {e}"),
        }
    }
}

fn crash_loop(kills: u64) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let reader = VersionStore::open(&root).unwrap();
    let mut rng = Rng::new(42);
    let (mut interrupted, mut versions_seen) = (0, 0);
    for i in 0..kills {
        let stderr = dir.path().join("child.err");
        let mut c = child(&root, "chaos", i)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("READY") {
            line.clear();
            if std::io::BufRead::read_line(&mut out, &mut line).unwrap() == 0 {
                panic!("writer exited before starting: {}", std::fs::read_to_string(&stderr).unwrap());
            }
        }
        let deadline = Instant::now() + Duration::from_millis(5 + rng.below(120) as u64);
        while Instant::now() < deadline {
            read_everything(&reader);
        }
        if let Some(status) = c.try_wait().unwrap() {
            panic!("writer exited on its own ({status}): {}", std::fs::read_to_string(&stderr).unwrap());
        }
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();

        // As the crash left it (no tidying yet), then after a writer's open tidied it.
        let rep = reader.verify().unwrap();
        assert!(rep.is_ok(), "after kill {i}:\n{rep}");
        if rep.findings.iter().any(|f| f.severity == Severity::Leftover) {
            interrupted += 1;
        }
        let s = VersionStore::open(&root).unwrap();
        let rep = s.verify().unwrap();
        assert!(rep.is_ok(), "after kill {i} and open:\n{rep}");
        for m in MODELS {
            let Ok(list) = s.list(m, None) else { continue };
            versions_seen += list.len();
            let actives = list.iter().filter(|v| v.status == Status::Active).count();
            let deployed = list.iter().any(|v| v.deployed_at.is_some());
            assert_eq!(actives, usize::from(deployed), "after kill {i}: model {m} has {actives} active versions");
            if let Some(info) = s.active(m).unwrap() {
                s.verify_version(m, &info.tag).unwrap();
            }
        }
    }
    eprintln!("{kills} kills: {interrupted} left crash leftovers behind; {versions_seen} versions checked");
    assert!(interrupted > 0, "no kill landed mid-write; the test is not exercising anything");
    let s = VersionStore::open(&root).unwrap();
    s.gc(&RetentionPolicy::default(), false).unwrap();
    let rep = s.verify().unwrap();
    assert!(rep.findings.is_empty(), "gc leaves a clean store:\n{rep}");
}

#[test]
fn survives_sigkill_60() {
    crash_loop(60);
}

#[test]
#[ignore = "long variant (about a minute); run with --ignored"]
fn survives_sigkill_300() {
    crash_loop(300);
}

#[test]
fn four_processes_register_and_promote_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    VersionStore::open(&root).unwrap();
    let children: Vec<_> = (0..4)
        .map(|p| child(&root, "register", p).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    let mut tags = std::collections::BTreeSet::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let mine: Vec<&str> = text.lines().filter_map(|l| l.split("TAG ").nth(1)).collect();
        assert_eq!(mine.len(), 50);
        tags.extend(mine.into_iter().map(str::to_string));
    }
    assert_eq!(tags.len(), 200, "every registration got its own tag");
    let s = VersionStore::open(&root).unwrap();
    let list = s.list("shared", None).unwrap();
    assert_eq!(list.iter().map(|v| v.tag.clone()).collect::<std::collections::BTreeSet<_>>(), tags);
    assert_eq!(list.iter().filter(|v| v.status == Status::Active).count(), 1);
    assert!(list.iter().filter(|v| v.status == Status::Shadow).count() <= 1);
    let h = s.history("shared").unwrap();
    assert_eq!(h.iter().filter(|r| r.event == retrain::store::AuditKind::Registered).count(), 200);
    let rep = s.verify().unwrap();
    assert!(rep.findings.is_empty(), "{rep}");
}

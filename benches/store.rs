//! Version store benchmarks (criterion).
//!
//! ```text
//! cargo bench --bench store
//! ```
//! * `register_5mb` / `register_file_5mb`: commit a version holding a 5 MB artifact (from
//!   memory / copied from a file) into a fresh store: staging write, blake3, every fsync,
//!   rename, aliases and audit. `fs_write_fsync_5mb` is the floor: a bare `write` + `fsync`
//!   of the same bytes, so the ratio is what crash safety costs on top of one durable write.
//! * `load_5mb`: read the artifact back with its blake3 check.
//! * `list_10k` / `get_active_10k` / `aliases_10k`: a store of 10,000 versions across 100
//!   models (built once under `target/store-bench/`, reused by later runs): listing one
//!   model's 100 versions and fetching its active version read one `aliases.json` plus that
//!   version's two small files, never a scan. Target: under 10 ms each.

use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use retrain::store::{Artifact, Change, Status, VersionMeta, VersionStore};

const MB5: usize = 5 * 1024 * 1024;

fn payload() -> Vec<u8> {
    (0..MB5).map(|i| ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8).collect()
}

fn meta(status: Status) -> VersionMeta {
    let mut m = VersionMeta::new("lightgbm");
    m.status = status;
    m.n_samples = Some(150_000);
    m.n_features = Some(61);
    m.hyperparameters = Some(serde_json::json!({"num_leaves": 63, "learning_rate": 0.1, "rounds": 100}));
    m.validation_metrics.insert("auc".into(), 0.55);
    m
}

/// 100 models × 100 versions, every 10th promoted; built once.
fn big_store() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/store-bench/10k");
    if root.join("READY").exists() {
        return root;
    }
    let _ = std::fs::remove_dir_all(&root);
    let t = Instant::now();
    eprintln!("building a 10,000-version store in {} (once)…", root.display());
    let who = Change::new("bench", "setup");
    std::thread::scope(|s| {
        for part in 0..4 {
            let root = root.clone();
            let who = who.clone();
            s.spawn(move || {
                let store = VersionStore::open(&root).unwrap();
                for m in (part..100).step_by(4) {
                    let id = format!("model_{m:03}");
                    for v in 0..100 {
                        let status = if v % 10 == 9 { Status::Active } else { Status::Training };
                        let files = [Artifact::bytes("model.json", vec![b'x'; 2048])];
                        store.register(&id, meta(status), &files, &who).unwrap();
                    }
                }
            });
        }
    });
    std::fs::write(root.join("READY"), b"").unwrap();
    eprintln!("built in {:.1} s", t.elapsed().as_secs_f64());
    root
}

fn bench(c: &mut Criterion) {
    let data = payload();
    let who = Change::new("bench", "latency");
    let mut g = c.benchmark_group("store");
    g.sample_size(20).measurement_time(Duration::from_secs(8));

    g.bench_function("fs_write_fsync_5mb", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let mut f = std::fs::File::create(dir.path().join("model.bin")).unwrap();
                f.write_all(&data).unwrap();
                f.sync_all().unwrap();
                dir
            },
            BatchSize::PerIteration,
        )
    });
    // A fresh store per iteration; the routine returns it so its deletion is not timed.
    let fresh = || {
        let dir = tempfile::tempdir().unwrap();
        let store = VersionStore::open(dir.path()).unwrap();
        (dir, store)
    };
    g.bench_function("register_5mb", |b| {
        b.iter_batched(
            fresh,
            |(dir, store)| {
                let tag = store
                    .register("m", meta(Status::Shadow), &[Artifact::bytes("model.bin", data.clone())], &who)
                    .unwrap();
                (dir, tag)
            },
            BatchSize::PerIteration,
        )
    });
    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("model.bin");
    std::fs::write(&src, &data).unwrap();
    g.bench_function("register_file_5mb", |b| {
        b.iter_batched(
            fresh,
            |(dir, store)| {
                let tag = store.register("m", meta(Status::Shadow), &[Artifact::file(&src).unwrap()], &who).unwrap();
                (dir, tag)
            },
            BatchSize::PerIteration,
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let store = VersionStore::open(dir.path()).unwrap();
    let tag = store.register("m", meta(Status::Shadow), &[Artifact::bytes("model.bin", data.clone())], &who).unwrap();
    g.bench_function("load_5mb", |b| b.iter(|| black_box(store.load_artifact("m", &tag, "model.bin").unwrap())));
    g.finish();

    let big = VersionStore::open(big_store()).unwrap();
    assert_eq!(big.models().unwrap().len(), 100);
    assert_eq!(big.list("model_042", None).unwrap().len(), 100);
    let mut g = c.benchmark_group("store");
    g.bench_function("list_10k", |b| b.iter(|| black_box(big.list("model_042", None).unwrap())));
    g.bench_function("get_active_10k", |b| b.iter(|| black_box(big.active("model_042").unwrap().unwrap())));
    g.bench_function("aliases_10k", |b| b.iter(|| black_box(big.aliases("model_042").unwrap())));
    g.bench_function("history_10k", |b| b.iter(|| black_box(big.history("model_042").unwrap())));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

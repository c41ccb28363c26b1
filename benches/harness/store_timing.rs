//! Timings of the version-store operations that `benches/peers/store_mlflow.py` measures for
//! MLflow, on the same artifact and the same registry size; prints one JSON line.
//!
//! usage: store_timing WORKDIR ARTIFACT_FILE [MODELS=10] [VERSIONS=100] [REPEAT=20]

use std::time::Instant;

use retrain::store::{Artifact, Change, Status, VersionMeta, VersionStore};

fn median_ms(repeat: usize, mut f: impl FnMut()) -> f64 {
    let mut ts: Vec<f64> = (0..repeat)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ts.sort_by(f64::total_cmp);
    ts[ts.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: store_timing WORKDIR ARTIFACT_FILE [MODELS] [VERSIONS] [REPEAT]".into());
    }
    let arg = |i: usize, d: usize| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
    let (models, versions, repeat) = (arg(3, 10), arg(4, 100), arg(5, 20));
    let store = VersionStore::open(std::path::Path::new(&args[1]).join("store"))?;
    let who = Change::new("bench", "peer timing");
    let artifact = Artifact::file(&args[2])?;
    let name = artifact.name().to_string();
    let mut meta = VersionMeta::new("lightgbm");
    meta.status = Status::Shadow;
    let mut last = String::new();
    let register_ms = median_ms(repeat, || {
        last = store.register("m", meta.clone(), std::slice::from_ref(&artifact), &who).unwrap();
        store.promote("m", &last, &who).unwrap();
    });
    let load_ms = median_ms(repeat, || {
        std::hint::black_box(store.load_artifact("m", &last, &name).unwrap());
    });
    let t = Instant::now();
    for m in 0..models {
        let id = format!("model_{m:03}");
        for v in 0..versions {
            let mut meta = VersionMeta::new("lightgbm");
            meta.status = if v % 10 == 9 { Status::Active } else { Status::Training };
            store.register(&id, meta, &[Artifact::bytes("model.json", vec![b'x'; 1024])], &who)?;
        }
    }
    let build_s = t.elapsed().as_secs_f64();
    let probe = format!("model_{:03}", models / 2);
    assert_eq!(store.list(&probe, None)?.len(), versions);
    let list_ms = median_ms(repeat, || {
        std::hint::black_box(store.list(&probe, None).unwrap());
    });
    let active_ms = median_ms(repeat, || {
        std::hint::black_box(store.active(&probe).unwrap().unwrap());
    });
    println!(
        "{}",
        serde_json::json!({"lib": "retrain", "register_ms": register_ms, "load_ms": load_ms, "build_s": build_s,
                           "list_ms": list_ms, "active_ms": active_ms})
    );
    Ok(())
}

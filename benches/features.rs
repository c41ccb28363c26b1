//! Criterion benchmarks for feature computation on 1,000,000 stitched real bars
//! (see `benches/support/stitch.rs`): the full default spec and the TA-Lib-covered subset,
//! single-threaded and on 2 threads, plus multi-symbol scaling.
//!
//! `cargo bench --bench features`; side-by-side TA-Lib numbers: `benches/peers/run_features.sh`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use retrain::data::Bars;
#[path = "support/stitch.rs"]
mod support;

use retrain::features::{FeatureSpec, compute_many, talib};
use std::path::Path;
use support::{benchmark_sources, stitch};

const N: usize = 1_000_000;

fn sources() -> Vec<Bars> {
    benchmark_sources(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap()
}

fn bench(c: &mut Criterion) {
    let src = sources();
    let bars = stitch(&src, N, "STITCHED", 1_262_304_000_000, 3_600_000).unwrap();
    let spec = FeatureSpec::default();
    let one = std::slice::from_ref(&bars);

    let mut g = c.benchmark_group("features_1m");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    for threads in [1, 2] {
        let p = pool(threads);
        g.bench_function(format!("default_spec_{threads}t"), |b| {
            b.iter(|| p.install(|| compute_many(one, &spec).unwrap()))
        });
    }
    let p1 = pool(1);
    g.bench_function("talib_subset_1t", |b| b.iter(|| p1.install(|| talib::outputs(&bars))));
    g.finish();

    // Four symbols of 250k bars: the same total work, spread over symbols.
    let quarter: Vec<Bars> = (0..4)
        .map(|i| stitch(&src[i % src.len()..], N / 4, &format!("S{i}"), 1_262_304_000_000, 3_600_000).unwrap())
        .collect();
    let mut g = c.benchmark_group("features_4x250k");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    for threads in [1, 2] {
        let p = pool(threads);
        g.bench_function(format!("default_spec_{threads}t"), |b| {
            b.iter(|| p.install(|| compute_many(&quarter, &spec).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The benchmark data generators in `benches/support/` are code the benchmarks' numbers rest
//! on: their own unit tests run here (a bench target with `harness = false` runs none).

use retrain::rng::Rng;

#[path = "../benches/support/stitch.rs"]
mod stitch;
#[path = "../benches/support/synthetic.rs"]
mod synthetic;

#[test]
fn the_generators_are_reachable() {
    // The modules' own #[test]s do the checking; this keeps their public functions used.
    assert!(synthetic::gbdt_benchmark(100, 16, 1).is_ok());
    assert!(stitch::stitch(&[], 10, "x", 0, 1).is_err());
    let _ = stitch::benchmark_sources;
}

//! Deterministic synthetic data for the GBDT benchmarks (never used for market models).
//!
//! Features: mostly standard normal, every 5th uniform on [-2, 2], every 7th a small integer
//! (few distinct values), every 11th log-normal (skewed). The target is Bernoulli(σ(logit))
//! with interactions, thresholds and smooth terms over the first 16 features; the rest are
//! noise, so trees must find both axis-aligned and curved structure. The same `(rows,
//! features, seed)` always gives the same bits, so Rust and Python peers can read one file.

//!
//! Included by path (`#[path = ".../synthetic.rs"] mod synthetic;`) from the GBDT benches, the
//! `gbdt_data` harness and the booster's unit tests; the including module provides `Rng`
//! (the crate's seeded generator) in scope.

use ndarray::{Array2, ShapeBuilder};

use super::Rng;

fn column(j: usize, n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::stream(seed, j as u64);
    (0..n)
        .map(|_| {
            let v = if j % 7 == 3 {
                (r.normal() * 2.0).round()
            } else if j % 5 == 1 {
                r.next_f64() * 4.0 - 2.0
            } else if j % 11 == 9 {
                (r.normal() * 0.5).exp()
            } else {
                r.normal()
            };
            v as f32
        })
        .collect()
}

/// `rows × features` column-major features and 0/1 labels (features ≥ 16).
pub fn gbdt_benchmark(rows: usize, features: usize, seed: u64) -> Result<(Array2<f32>, Vec<f64>), String> {
    if features < 16 {
        return Err(format!("features: the benchmark target needs at least 16, got {features}"));
    }
    let mut x = Array2::<f32>::zeros((rows, features).f());
    for j in 0..features {
        x.column_mut(j).as_slice_mut().expect("column-major").copy_from_slice(&column(j, rows, seed));
    }
    let mut noise = Rng::stream(seed, 1_000_000);
    let y = (0..rows)
        .map(|i| {
            let v = |j: usize| x[[i, j]] as f64;
            let logit = 1.2 * (2.0 * v(0)).sin() * v(1) + 0.8 * (v(2) * v(2) - 1.0) - 0.9 * v(3).abs()
                + 0.6 * v(4) * v(5)
                + if v(6) > 0.5 { 1.0 } else { -0.3 }
                - if v(7) < -0.2 { 0.7 * v(8) } else { 0.0 }
                + 0.5 * (v(9) + v(10)).tanh()
                + 0.3 * (v(11) - v(12) + v(13) - v(14) + v(15));
            let p = 1.0 / (1.0 + (-logit).exp());
            (noise.next_f64() < p) as u8 as f64
        })
        .collect();
    Ok((x, y))
}

#[cfg(test)]
mod tests {
    #[test]
    fn deterministic_and_balanced_enough() {
        let (x1, y1) = super::gbdt_benchmark(2000, 20, 3).unwrap();
        let (x2, y2) = super::gbdt_benchmark(2000, 20, 3).unwrap();
        assert_eq!(x1, x2);
        assert_eq!(y1, y2);
        let pos = y1.iter().sum::<f64>() / 2000.0;
        assert!((0.25..0.75).contains(&pos), "{pos}");
        assert!(super::gbdt_benchmark(10, 5, 0).is_err());
    }
}

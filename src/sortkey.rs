//! Integer keys that order `f64` values like [`f64::total_cmp`]: sorting the keys is about
//! twice as fast as sorting floats with a comparator (the drift check sorts every recent
//! feature column, health ranks every rolling window), and the map back is exact.

const SIGN: u64 = 1 << 63;

/// The key of `v`: `a.total_cmp(&b)` equals `key(a).cmp(&key(b))`.
pub(crate) fn key(v: f64) -> u64 {
    let b = v.to_bits();
    if b & SIGN != 0 { !b } else { b | SIGN }
}

/// The value whose key is `k`.
pub(crate) fn value(k: u64) -> f64 {
    f64::from_bits(if k & SIGN != 0 { k & !SIGN } else { !k })
}

/// (key, position) pairs of `x`, positions numbered from `first`, sorted: the `total_cmp`
/// order of `x`, ties in position order.
pub(crate) fn sorted_positions(x: &[f64], first: usize) -> Vec<(u64, usize)> {
    let mut keyed: Vec<(u64, usize)> = x.iter().enumerate().map(|(i, &v)| (key(v), first + i)).collect();
    keyed.sort_unstable();
    keyed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_like_total_cmp_and_map_back() {
        let v = [f64::NEG_INFINITY, -3.5, -1e-300, -0.0, 0.0, 5e-324, 1.0, 2.0, f64::INFINITY, f64::NAN, -f64::NAN];
        for &a in &v {
            assert_eq!(value(key(a)).to_bits(), a.to_bits());
            for &b in &v {
                assert_eq!(key(a).cmp(&key(b)), a.total_cmp(&b), "{a} {b}");
            }
        }
    }
}

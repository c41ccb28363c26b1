//! The two-sample Kolmogorov–Smirnov test, p-values as `scipy.stats.ks_2samp` computes them
//! (two-sided, `method='auto'`): exact lattice-path counts when both samples have at most
//! 10,000 values, else the one-sample Kolmogorov distribution `kstwo.sf(d, round(m·n/(m+n)))`
//! (Simard & L'Ecuyer's switch between Ruben–Gambino, Durbin's matrix, Pomeranz, Pelz–Good
//! and Smirnov's one-sided series), ported branch for branch so p-values agree with scipy.

use crate::error::{Error, Result};

/// Above this sample size scipy's `auto` mode leaves the exact computation.
pub(crate) const MAX_EXACT_N: usize = 10_000;

/// The result of a two-sample KS test.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KsResult {
    /// The largest distance between the two empirical CDFs.
    pub statistic: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Whether the exact distribution was used (else the asymptotic one).
    pub exact: bool,
}

/// The KS statistic of two samples already sorted ascending (NaN-free).
pub(crate) fn ks_statistic_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0.0f64);
    while i < a.len() && j < b.len() {
        // Step past every copy of the smaller value in both samples (ties move together).
        let v = a[i].min(b[j]);
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        d = d.max((i as f64 / n1 - j as f64 / n2).abs());
    }
    d
}

/// Two-sided two-sample KS test of `a` against `b` (any order; NaN is an error).
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Result<KsResult> {
    let sort = |x: &[f64], what: &str| -> Result<Vec<f64>> {
        if x.is_empty() {
            return Err(Error::param(what, "the sample is empty"));
        }
        if let Some(i) = x.iter().position(|v| v.is_nan()) {
            return Err(Error::param(what, format!("value {i} is NaN")));
        }
        let mut s = x.to_vec();
        s.sort_by(f64::total_cmp);
        Ok(s)
    };
    let (a, b) = (sort(a, "ks.a")?, sort(b, "ks.b")?);
    let d = ks_statistic_sorted(&a, &b);
    Ok(ks_p_value(d, a.len(), b.len()))
}

/// scipy's two-sided p-value of statistic `d` for sample sizes `n1`, `n2`.
pub fn ks_p_value(d: f64, n1: usize, n2: usize) -> KsResult {
    p_value(d, n1, n2, None, true).expect("no table, nothing to wait for")
}

/// Entries [`ExactPValues`] keeps before it starts over (about 3 MB).
pub(crate) const EXACT_TABLE_CAPACITY: usize = 1 << 16;

/// First bytes of a saved [`ExactPValues`] table (format version 1).
const TABLE_MAGIC: &[u8; 16] = b"retrain-ks-p v1\n";

/// Exact p-values already computed, shared by every KS test that uses the table.
///
/// The exact p-value depends on the sample sizes and the statistic rounded to the lattice,
/// h = round(d · lcm(n1, n2)), only — not on the samples. Features of models that share a
/// training window and a recent window share (n1, n2), and their statistics fall on a few
/// hundred distinct h, so a supervisor cycle over many models runs the lattice recursion
/// once per distinct h instead of once per feature. Values are pure functions of the key:
/// results do not depend on which thread filled an entry or on the order of the tests.
#[derive(Debug, Default)]
pub struct ExactPValues {
    map: std::sync::Mutex<std::collections::HashMap<(u64, u64, u64), Entry>>,
}

/// One table entry: filled once; a thread asking while another computes it waits instead of
/// repeating the recursion.
type Entry = std::sync::Arc<std::sync::OnceLock<Option<f64>>>;

impl ExactPValues {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<(u64, u64, u64), Entry>> {
        // A panic elsewhere cannot leave a half-written entry: every insert is one call.
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The computed entries as bytes, for a later process to start from (see
    /// [`Self::from_bytes`]): a magic line, the entry count, then per entry, ascending by key,
    /// the larger and smaller sample size, h and the p-value (NaN where scipy falls back to
    /// asymptotics) as little-endian 64-bit words, and a BLAKE3 hash of all that.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut entries: Vec<((u64, u64, u64), Option<f64>)> =
            self.lock().iter().filter_map(|(k, v)| v.get().map(|p| (*k, *p))).collect();
        entries.sort_by_key(|e| e.0);
        let mut out = Vec::with_capacity(TABLE_MAGIC.len() + 8 + entries.len() * 32 + 32);
        out.extend_from_slice(TABLE_MAGIC);
        out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        for ((n_max, n_min, h), p) in entries {
            for w in [n_max, n_min, h, p.unwrap_or(f64::NAN).to_bits()] {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        let hash = blake3::hash(&out);
        out.extend_from_slice(hash.as_bytes());
        out
    }

    /// A table holding the entries of [`Self::to_bytes`]'s output (`source` names it in
    /// errors). Anything that is not such a file — wrong magic or length, a hash mismatch, an
    /// entry that is not a p-value of a valid key — is [`Error::CorruptStore`]; at most 65,536
    /// entries are kept.
    pub fn from_bytes(bytes: &[u8], source: &std::path::Path) -> Result<Self> {
        let corrupt = |reason: String| Error::CorruptStore { path: source.to_path_buf(), reason };
        let head = TABLE_MAGIC.len() + 8;
        if bytes.len() < head + 32 || &bytes[..TABLE_MAGIC.len()] != TABLE_MAGIC {
            return Err(corrupt("not an exact KS p-value table".into()));
        }
        let (body, hash) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != hash {
            return Err(corrupt("checksum mismatch".into()));
        }
        let word = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
        let count = word(TABLE_MAGIC.len());
        if (body.len() - head) as u64 != count.saturating_mul(32) {
            return Err(corrupt(format!("{count} entries announced, {} bytes of entries", body.len() - head)));
        }
        let mut map = std::collections::HashMap::new();
        for (i, at) in (head..body.len()).step_by(32).enumerate().take(EXACT_TABLE_CAPACITY) {
            let (n_max, n_min, h, p) = (word(at), word(at + 8), word(at + 16), f64::from_bits(word(at + 24)));
            if n_min == 0
                || n_min > n_max
                || n_max > MAX_EXACT_N as u64
                || h == 0
                || !(p.is_nan() || (0.0..=1.0).contains(&p))
            {
                return Err(corrupt(format!("entry {i}: ({n_max}, {n_min}, {h}) → {p} is not an exact p-value")));
            }
            let entry = Entry::default();
            entry.set(if p.is_nan() { None } else { Some(p) }).expect("a fresh entry");
            map.insert((n_max, n_min, h), entry);
        }
        Ok(ExactPValues { map: std::sync::Mutex::new(map) })
    }

    /// The exact p-value for lattice statistic `h` (inner `None`: scipy falls back to
    /// asymptotics), computed outside the lock on a miss. Where another thread is computing
    /// it right now, waits for it if `wait`, else answers `None`.
    fn lookup(&self, n1: u64, n2: u64, g: u64, h: u64, wait: bool) -> Option<Option<f64>> {
        let key = (n1.max(n2), n1.min(n2), h);
        let entry = {
            let mut map = self.lock();
            match map.get(&key) {
                Some(e) if !wait && e.get().is_none() => return None,
                Some(e) => e.clone(),
                None => {
                    if map.len() >= EXACT_TABLE_CAPACITY {
                        map.clear();
                    }
                    map.entry(key).or_default().clone()
                }
            }
        };
        Some(*entry.get_or_init(|| exact_p(n1, n2, g, h)))
    }
}

/// [`ks_p_value`] reading and filling a shared table of exact p-values.
pub(crate) fn ks_p_value_with(d: f64, n1: usize, n2: usize, table: &ExactPValues) -> KsResult {
    p_value(d, n1, n2, Some(table), true).expect("a waiting lookup always answers")
}

/// [`ks_p_value_with`], or `None` where another thread is computing the exact p-value this
/// one needs right now (the caller does other work and asks [`ks_p_value_with`] later,
/// instead of waiting).
pub(crate) fn ks_p_value_unless_busy(d: f64, n1: usize, n2: usize, table: &ExactPValues) -> Option<KsResult> {
    p_value(d, n1, n2, Some(table), false)
}

/// The p-value, exact where scipy's rule allows; `None` only where `wait` is false and the
/// table's entry is being computed by another thread.
fn p_value(d: f64, n1: usize, n2: usize, table: Option<&ExactPValues>, wait: bool) -> Option<KsResult> {
    if n1.max(n2) <= MAX_EXACT_N
        && let Some((d, p)) = exact_2samp(n1 as u64, n2 as u64, d, table, wait)?
    {
        return Some(KsResult { statistic: d, p_value: p.clamp(0.0, 1.0), exact: true });
    }
    Some(asymptotic(d, n1, n2))
}

/// scipy's asymptotic branch: `kstwo.sf` at the effective sample size.
fn asymptotic(d: f64, n1: usize, n2: usize) -> KsResult {
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let en = (m * n / (m + n)).round_ties_even();
    KsResult { statistic: d, p_value: kolmogn_sf(en as u64, d).clamp(0.0, 1.0), exact: false }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// scipy `_attempt_exact_2kssamp` (two-sided): inner `None` where it falls back to
/// asymptotics; outer `None` where the table is busy with the entry and `wait` is false.
fn exact_2samp(n1: u64, n2: u64, d: f64, table: Option<&ExactPValues>, wait: bool) -> Option<Option<(f64, f64)>> {
    let g = gcd(n1, n2);
    let lcm = (n1 / g) * n2;
    let h = (d * lcm as f64).round_ties_even() as u64;
    let d = h as f64 / lcm as f64;
    if h == 0 {
        return Some(Some((d, 1.0)));
    }
    let p = match table {
        Some(t) => t.lookup(n1, n2, g, h, wait)?,
        None => exact_p(n1, n2, g, h),
    };
    Some(p.map(|p| (d, p)))
}

/// The exact p-value of lattice statistic `h` ≥ 1, `None` where it is not a probability.
fn exact_p(n1: u64, n2: u64, g: u64, h: u64) -> Option<f64> {
    let p = if n1 == n2 { prob_outside_square(n1, h) } else { outer_prob_inside(n1, n2, g, h) };
    (p.is_finite() && (0.0..=1.0).contains(&p)).then_some(p)
}

/// scipy `_compute_prob_outside_square`: share of paths leaving |x − y| < h (n1 = n2 = n).
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    while k >= 0 {
        let kh = k as u64 * h;
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n as f64 - kh as f64 - j as f64) * p1 / (n as f64 + kh as f64 + j as f64 + 1.0);
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// scipy `_compute_outer_prob_inside_method` (Hodges' inside method, Viehmann's 1 − p
/// recursion): share of lattice paths from (0, 0) to (m, n) that leave the band
/// |ng·i − mg·j| < h.
///
/// scipy fills the lattice column by column, `A(i, j) = (i·A(i−1, j) + j·A(i, j−1)) / (i + j)`
/// with cells outside the band at 1 — a loop-carried chain through every cell. The same
/// cells are computed here anti-diagonal by anti-diagonal (k = i + j): both inputs of a
/// cell lie on the previous diagonal and `1 / (i + j)` is one constant per diagonal, so a
/// diagonal is independent multiply-adds that vectorise (AVX2 when the CPU has it; no fused
/// multiply-add, so every path rounds the same and results do not depend on the machine).
fn outer_prob_inside(m: u64, n: u64, g: u64, h: u64) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { outer_prob_inside_avx2(m, n, g, h) };
    }
    outer_prob_inside_diagonals(m, n, g, h)
}

/// [`outer_prob_inside_diagonals`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn outer_prob_inside_avx2(m: u64, n: u64, g: u64, h: u64) -> f64 {
    outer_prob_inside_diagonals(m, n, g, h)
}

/// Cells per step of the anti-diagonal sweep (one AVX2 register of f64).
const LANES: usize = 4;
/// Lane offsets within a chunk.
const STEPS: [f64; LANES] = [0.0, 1.0, 2.0, 3.0];

/// The anti-diagonal sweep (see [`outer_prob_inside`]), over the first half of the lattice.
///
/// The band is symmetric under the half-turn (i, j) → (m − i, n − j) (ng·m = mg·n), so the
/// inside paths from a cell c to (m, n) are the inside paths from the origin to its mirror
/// c'. Every path crosses the middle diagonal K once, hence, with w the hypergeometric
/// share of paths through each cell of it and A the outer probability there,
///
/// ```text
/// p_out = Σ_{c outside} w_c + Σ_{c inside} w_c · (A_c + A_c' · (1 − A_c))
/// ```
///
/// — half the cells of scipy's sweep, and a sum of non-negative terms, so small p-values
/// keep their relative precision.
#[inline(always)]
fn outer_prob_inside_diagonals(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = ((m / g) as i64, (n / g) as i64);
    let (h, mi, ni) = (h as i64, m as i64, n as i64);
    let s = mg + ng;
    // The middle diagonal K and its mirror K' (K + 1 when m + n is odd).
    let half = (mi + ni) / 2;
    let mirror = mi + ni - half;
    // Cell i of a diagonal lives at index i + 1, so index 0 is the (weightless) i = −1.
    // Room for the last chunk's overhang and the ones written past it (cells up to
    // m + 2·LANES).
    let mut prev = vec![1.0f64; m as usize + 2 * LANES + 2];
    let mut cur = prev.clone();
    // 1/k per diagonal, divided up front (a vector division) rather than in the sweep.
    let recip: Vec<f64> = (0..=mirror as usize).map(|k| 1.0 / k as f64).collect();
    let mut middle: Option<(Vec<f64>, usize, usize)> = None;
    // Diagonal 0: the origin, inside the band (h ≥ 1), where no path has left yet.
    prev[1] = 0.0;
    // Inside the band: mg·k − h < s·i < mg·k + h, i.e. floor((mg·k − h)/s) < i ≤
    // floor((mg·k + h − 1)/s). Both floors move by mg < s per diagonal, so they are carried
    // as quotient and remainder instead of two integer divisions per diagonal.
    let (mut q_lo, mut r_lo) = ((-h).div_euclid(s), (-h).rem_euclid(s));
    let (mut q_hi, mut r_hi) = ((h - 1).div_euclid(s), (h - 1).rem_euclid(s));
    let mut band = (0usize, 0usize);
    for k in 1..=mirror {
        r_lo += mg;
        if r_lo >= s {
            r_lo -= s;
            q_lo += 1;
        }
        r_hi += mg;
        if r_hi >= s {
            r_hi -= s;
            q_hi += 1;
        }
        // On the grid: k − n ≤ i ≤ min(m, k).
        let lo = (q_lo + 1).max(k - ni).max(0);
        let hi = q_hi.min(mi).min(k);
        if hi < lo {
            // No cell of this diagonal is inside: every path has left the band.
            return 1.0;
        }
        let (lo, hi) = (lo as usize, hi as usize);
        let (fk, rk) = (k as f64, recip[k as usize]);
        // cur(i) = (i·A(i−1, j) + j·A(i, j−1)) / k with j = k − i: prev(i − 1) and prev(i),
        // in whole chunks of LANES cells from a multiple of LANES (no scalar remainder). The
        // cells a chunk computes outside lo..=hi are outside the band (or off the grid) and
        // are reset to 1 just after.
        let first = lo - lo % LANES;
        let mut i0 = first;
        let mut w0 = first as f64;
        while i0 <= hi {
            // Copies into registers: the compiler then knows the chunk's loads and store do
            // not overlap and packs the lanes into one vector.
            let a: [f64; LANES] = prev[i0..i0 + LANES].try_into().expect("chunk");
            let b: [f64; LANES] = prev[i0 + 1..i0 + 1 + LANES].try_into().expect("chunk");
            let mut c = [0.0; LANES];
            for l in 0..LANES {
                let wi = w0 + STEPS[l];
                c[l] = (a[l] * wi + b[l] * (fk - wi)) * rk;
            }
            cur[i0 + 1..i0 + 1 + LANES].copy_from_slice(&c);
            i0 += LANES;
            w0 += LANES as f64;
        }
        // The next diagonal reads cells lo − 1 ..= hi + 1 of this one; those and the chunks'
        // overhang are outside the band (or off the grid with zero weight): 1.
        // Four fixed stores a side (the overhang is at most three cells) instead of two
        // variable-length fills.
        for t in 0..LANES {
            cur[lo.saturating_sub(t)] = 1.0;
            cur[hi + 2 + t] = 1.0;
        }
        std::mem::swap(&mut prev, &mut cur);
        if k == half {
            band = (lo, hi);
            if mirror != half {
                middle = Some((prev[lo + 1..=hi + 1].to_vec(), lo, hi));
            }
        }
    }
    // A on the middle diagonal (cells band.0 ..= band.1) and on its mirror (all of `prev`).
    let (mid, lo, hi) = match &middle {
        Some((v, lo, hi)) => (&v[..], *lo, *hi),
        None => (&prev[band.0 + 1..=band.1 + 1], band.0, band.1),
    };
    let weights = hypergeometric(m as usize, (half as usize, mirror as usize));
    let first = (half - ni).max(0) as usize;
    let (mut total, mut p) = (0.0f64, 0.0f64);
    for (t, &w) in weights.iter().enumerate() {
        let i = first + t;
        total += w;
        if i < lo || i > hi {
            p += w;
        } else {
            let (a, a_mirror) = (mid[i - lo], prev[m as usize - i + 1]);
            p += w * (a + a_mirror * (1.0 - a));
        }
    }
    p / total
}

/// Unnormalised shares of the paths from (0, 0) to (m, k + k') through each cell (i, k − i)
/// of diagonal k, for i from max(0, k − n) to min(k, m): C(k, i) · C(k', m − i), by the
/// ratio of neighbours from the mode outwards (no factorials, no overflow).
fn hypergeometric(m: usize, (k, k2): (usize, usize)) -> Vec<f64> {
    let n = k + k2 - m;
    let (first, last) = (k.saturating_sub(n), k.min(m));
    let mut w = vec![0.0f64; last - first + 1];
    // w(i + 1) / w(i) = (k − i)(m − i) / ((i + 1)(n − k + i + 1)).
    let ratio = |i: usize| ((k - i) as f64 * (m - i) as f64) / ((i + 1) as f64 * (n + i + 1 - k) as f64);
    let mode = ((m + 1) * (k + 1) / (m + n + 2)).clamp(first, last);
    w[mode - first] = 1.0;
    for i in mode..last {
        w[i + 1 - first] = w[i - first] * ratio(i);
    }
    for i in (first..mode).rev() {
        w[i - first] = w[i + 1 - first] / ratio(i);
    }
    w
}

const E128: i32 = 128;
const EP128: f64 = 3.402_823_669_209_385e38; // 2^128
const EM128: f64 = 2.938_735_877_055_719e-39; // 2^-128
// scipy's coefficients verbatim (more digits than f64 keeps; kept for comparison).
#[allow(clippy::excessive_precision)]
const STIRLING: [f64; 8] = [
    -2.955065359477124183e-2,
    6.4102564102564102564e-3,
    -1.9175269175269175269e-3,
    8.4175084175084175084e-4,
    -5.952380952380952381e-4,
    7.9365079365079365079e-4,
    -2.7777777777777777778e-3,
    8.3333333333333333333e-2,
];

fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    let rn = 1.0 / n;
    let poly = STIRLING.iter().fold(0.0, |acc, c| acc * (rn / n) + c);
    n.ln() / 2.0 - n + (2.0 * std::f64::consts::PI).ln() / 2.0 + rn * poly
}

/// `2^e · x` without overflow in between.
fn ldexp(x: f64, e: i32) -> f64 {
    let mut x = x;
    let mut e = e;
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e)
}

/// `kstwo.sf(x, n)`: survival function of the two-sided one-sample KS statistic (scipy
/// `_kolmogn(n, x, cdf=False)`).
pub(crate) fn kolmogn_sf(n: u64, x: f64) -> f64 {
    if n == 0 || x.is_nan() {
        return f64::NAN;
    }
    let nf = n as f64;
    let cdf_to_sf = |c: f64| (1.0 - c).clamp(0.0, 1.0);
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let t = nf * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        let prob = if n <= 140 {
            (1..=n).fold(1.0, |acc, i| acc * (i as f64 * (1.0 / nf) * (2.0 * t - 1.0)))
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return cdf_to_sf(prob);
    }
    if t >= nf - 1.0 {
        return (2.0 * (1.0 - x).powf(nf)).clamp(0.0, 1.0);
    }
    if x >= 0.5 {
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    let nxsq = t * x;
    if n <= 140 {
        if nxsq <= 0.754693 {
            return cdf_to_sf(kolmogn_dmtw(n, x));
        }
        if nxsq <= 4.0 {
            return cdf_to_sf(kolmogn_pomeranz(n, x));
        }
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    if nxsq >= 370.0 {
        return 0.0;
    }
    if nxsq >= 2.2 {
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    let cdf = if nxsq >= 18.0 {
        1.0
    } else if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        kolmogn_dmtw(n, x)
    } else {
        kolmogn_pelz_good(n, x)
    };
    cdf_to_sf(cdf)
}

/// Pr(D_n ≤ d) by Durbin's matrix (Marsaglia–Tsang–Wang).
fn kolmogn_dmtw(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nd = n as f64 * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut v: Vec<f64> = (1..=m).map(|j| 1.0 - h.powi(j as i32)).collect();
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    let mut hm = vec![0.0; m * m];
    for i in 1..m {
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }
    let matmul = |a: &[f64], b: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; m * m];
        for i in 0..m {
            for l in 0..m {
                let av = a[i * m + l];
                if av != 0.0 {
                    for j in 0..m {
                        out[i * m + j] += av * b[l * m + j];
                    }
                }
            }
        }
        out
    };
    let mut pw = vec![0.0; m * m];
    for i in 0..m {
        pw[i * m + i] = 1.0;
    }
    let (mut nn, mut expnt, mut hexp) = (n, 0i32, 0i32);
    while nn > 0 {
        if nn % 2 == 1 {
            pw = matmul(&pw, &hm);
            expnt += hexp;
        }
        hm = matmul(&hm, &hm);
        hexp *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > EP128 {
            for v in &mut hm {
                *v /= EP128;
            }
            hexp += E128;
        }
        nn /= 2;
    }
    let mut p = pw[(k - 1) * m + (k - 1)];
    for i in 1..=n {
        p = i as f64 * p / n as f64;
        if p.abs() < EM128 {
            p *= EP128;
            expnt -= E128;
        }
    }
    if expnt != 0 {
        p = ldexp(p, expnt);
    }
    p.clamp(0.0, 1.0)
}

/// scipy `_pomeranz_compute_j1j2`.
fn pomeranz_j1j2(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let (d, r) = ((i + 1).div_euclid(2), (i + 1).rem_euclid(2));
        if r == 0 {
            if d == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (d - 1 - ll - roundf - 1, d + ll - 1 + ceilf - 1)
            }
        } else {
            (d - 1 - ll - 1, d + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// Pr(D_n ≤ x) by Pomeranz's recursion.
fn kolmogn_pomeranz(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let n_i = n as i64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let mut gpower = vec![1.0; npwrs];
    let mut twogpower = vec![1.0; npwrs];
    let mut onem2gpower = vec![1.0; npwrs];
    let (a, b, c) = (g / nf, 2.0 * g / nf, (1.0 - 2.0 * g) / nf);
    for m in 1..npwrs {
        gpower[m] = gpower[m - 1] * a / m as f64;
        twogpower[m] = twogpower[m - 1] * b / m as f64;
        onem2gpower[m] = onem2gpower[m - 1] * c / m as f64;
    }
    let mut v0 = vec![0.0; npwrs];
    let mut v1 = vec![0.0; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s) = (0i64, 0i64);
    let mut expnt = 0i32;
    let (mut j1, _) = pomeranz_j1j2(0, n_i, ll, ceilf, roundf);
    for i in 1..(2 * n_i + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.iter_mut().for_each(|v| *v = 0.0);
        let (next_j1, j2) = pomeranz_j1j2(i, n_i, ll, ceilf, roundf);
        j1 = next_j1;
        let pwrs = if i == 1 || i == 2 * n_i + 1 {
            &gpower
        } else if i % 2 == 1 {
            &twogpower
        } else {
            &onem2gpower
        };
        let ln2 = j2 - k1 + 1;
        if ln2 > 0 {
            let ln2 = ln2 as usize;
            let src = &v0[(k1 - v0s) as usize..(k1 - v0s) as usize + ln2];
            let conv_start = (j1 - k1) as usize;
            let conv_len = (j2 - j1 + 1) as usize;
            // Only conv[conv_start .. conv_start + conv_len] of the full convolution is used.
            for (o, slot) in v1.iter_mut().take(conv_len).enumerate() {
                let idx = conv_start + o;
                let lo = idx.saturating_sub(ln2 - 1);
                let mut s = 0.0;
                for q in lo..=idx.min(ln2 - 1) {
                    s += src[q] * pwrs[idx - q];
                }
                *slot = s;
            }
            let max = v1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if 0.0 < max && max < EM128 {
                v1.iter_mut().for_each(|v| *v *= EP128);
                expnt -= E128;
            }
            v1s = v0s + j1 - k1;
        }
    }
    let mut ans = v1[(n_i - v1s) as usize];
    for m in 1..=n {
        if ans.abs() > EP128 {
            ans *= EM128;
            expnt += E128;
        }
        ans *= m as f64;
    }
    if expnt != 0 {
        ans = ldexp(ans, expnt);
    }
    ans.clamp(0.0, 1.0)
}

/// Pr(D_n ≤ x) by the Pelz–Good asymptotic series.
fn kolmogn_pelz_good(n: u64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let z = nf.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let (pi2, pi4, pi6) = (PI * PI, PI.powi(4), PI.powi(6));
    let qlog = -pi2 / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let (k1a, k1b) = (-z2, pi2 / 4.0);
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut kk = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for k in (1..=maxk).rev() {
        let m = (2 * k - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qp = q.powf(8.0 * k as f64);
        let coeffs = [1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6];
        for (v, c) in kk.iter_mut().zip(coeffs) {
            *v = *v * qp + c;
        }
    }
    let sqrt2pi = (2.0 * PI).sqrt();
    let div = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (v, dv) in kk.iter_mut().zip(div) {
        *v = *v * q * sqrt2pi / dv;
    }
    let q = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let (mut k2extra, mut k3extra) = (0.0, 0.0);
    for k in (1..=maxk).rev() {
        let ks = k as f64;
        let ksq = ks * ks;
        let qp = q.powf(ksq);
        k2extra += ksq * qp;
        let kspi = PI * ks;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ksq * qp;
    }
    kk[2] += k2extra * pi2 * sqrt2pi / (-36.0 * z3);
    kk[3] += k3extra * pi2 * sqrt2pi / (216.0 * z6);
    for (i, v) in kk.iter_mut().enumerate() {
        *v /= nf.powf(i as f64 / 2.0);
    }
    kk.iter().sum()
}

/// `scipy.special.smirnov(n, d)`: Pr(D⁺_n ≥ d), the one-sided one-sample statistic, by the
/// Birnbaum–Tingey sum (all terms positive; summed in log space).
pub(crate) fn smirnov(n: u64, d: f64) -> f64 {
    if d.is_nan() {
        return f64::NAN;
    }
    if d <= 0.0 {
        return 1.0;
    }
    if d >= 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    if n == 1 {
        return 1.0 - d;
    }
    let last = (nf * (1.0 - d)).floor() as u64;
    let ln_fact = |k: u64| statrs::function::gamma::ln_gamma(k as f64 + 1.0);
    let lnf_n = ln_fact(n);
    let mut sum = 0.0;
    for j in 0..=last {
        let jf = j as f64;
        let a = 1.0 - d - jf / nf;
        if a <= 0.0 {
            continue;
        }
        let ln_c = lnf_n - ln_fact(j) - ln_fact(n - j);
        let term = ln_c + (nf - jf) * a.ln() + (jf - 1.0) * (d + jf / nf).ln();
        sum += term.exp();
    }
    (d * sum).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kstwo.sf` against scipy 1.17.1 on a grid that reaches every branch (fixture:
    /// `tests/fixtures/ks_scipy.json`, made by `tests/fixtures/ks_scipy.py`).
    #[test]
    fn kolmogorov_survival_matches_scipy_kstwo_on_every_branch() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ks_scipy.json")).unwrap();
        let f: serde_json::Value = serde_json::from_str(&text).unwrap();
        let grid = f["kstwo_sf"].as_array().unwrap();
        assert!(grid.len() > 250);
        for c in grid {
            let (n, x, sf) = (c["n"].as_u64().unwrap(), c["x"].as_f64().unwrap(), c["sf"].as_f64().unwrap());
            // Relative agreement where the value is representable; tiny tails agree absolutely.
            let got = kolmogn_sf(n, x);
            let tol = 1e-9 * sf.abs() + 1e-14;
            assert!((got - sf).abs() <= tol, "kstwo.sf({x}, {n}): got {got:e}, scipy {sf:e}");
        }
    }

    /// scipy's `_compute_outer_prob_inside_method` line for line (with its divisions).
    fn outer_prob_inside_literal(m: u64, n: u64, g: u64, h: u64) -> f64 {
        let (m, n) = if m < n { (n, m) } else { (m, n) };
        let (mg, ng, h, n) = ((m / g) as i64, (n / g) as i64, h as i64, n as i64);
        let mut minj = 0i64;
        let mut maxj = ((h + mg - 1).div_euclid(mg)).min(n + 1);
        let mut curlen = maxj - minj;
        let mut a = vec![1.0f64; (2 * maxj + 2).min(n + 1) as usize];
        for v in a.iter_mut().take(maxj as usize) {
            *v = 0.0;
        }
        for i in 1..=m as i64 {
            let (lastminj, lastlen) = (minj, curlen);
            minj = ((ng * i - h).div_euclid(mg) + 1).max(0).min(n);
            maxj = (ng * i + h + mg - 1).div_euclid(mg).min(n + 1);
            if maxj <= minj {
                return 1.0;
            }
            let mut val = if minj == 0 { 0.0 } else { 1.0 };
            for jj in 0..(maxj - minj) {
                let j = (jj + minj) as f64;
                val = (a[(jj + minj - lastminj) as usize] * i as f64 + val * j) / (i as f64 + j);
                a[jj as usize] = val;
            }
            curlen = maxj - minj;
            if lastlen > curlen {
                let from = curlen as usize;
                let to = (from + (lastlen - curlen) as usize).min(a.len());
                a[from..to].iter_mut().for_each(|v| *v = 1.0);
            }
        }
        a[(maxj - minj - 1) as usize]
    }

    #[test]
    fn the_diagonal_sweep_matches_scipy_literal() {
        let mut rng = crate::rng::Rng::new(5);
        let mut cases = 0;
        while cases < 400 {
            let (n1, n2) = (1 + rng.below(700) as u64, 1 + rng.below(700) as u64);
            if n1 == n2 {
                continue;
            }
            cases += 1;
            let g = gcd(n1, n2);
            let lcm = n1 / g * n2;
            // Mostly the null range (p near 1 down to 1e-6), some far tails.
            let spread = if cases % 4 == 0 { 0.6 } else { 0.15 };
            let h = 1 + (rng.next_f64() * spread * lcm as f64) as u64;
            let slow = outer_prob_inside_literal(n1, n2, g, h);
            let generic = outer_prob_inside_diagonals(n1, n2, g, h);
            let fast = outer_prob_inside(n1, n2, g, h);
            // Every code path rounds alike (no fused multiply-add).
            assert_eq!(fast.to_bits(), generic.to_bits(), "{n1} {n2} {h}");
            assert!((fast - slow).abs() <= 1e-12 * slow.abs().max(1e-300), "{n1} {n2} {h}: {fast} vs {slow}");
        }
        // The drift check's shape: 90 days against 20 days of hourly bars.
        for h in [1, 9, 120, 217, 400, 1500] {
            let (fast, slow) = (outer_prob_inside(2160, 480, 240, h), outer_prob_inside_literal(2160, 480, 240, h));
            assert!((fast - slow).abs() <= 1e-12 * slow.abs().max(1e-300), "h {h}: {fast} vs {slow}");
        }
    }

    #[test]
    fn the_table_paths_give_the_plain_p_values() {
        let table = ExactPValues::new();
        for (n1, n2) in [(2160, 480), (30, 45), (200, 200), (12_000, 100), (7, 3)] {
            for i in 0..=40 {
                let d = i as f64 / 40.0;
                let plain = ks_p_value(d, n1, n2);
                // Twice: the first call fills the table, the second reads it.
                for _ in 0..2 {
                    let shared = ks_p_value_unless_busy(d, n1, n2, &table).expect("no other thread");
                    assert_eq!(shared, plain, "n1={n1} n2={n2} d={d}");
                    assert_eq!(ks_p_value_with(d, n1, n2, &table), plain);
                }
            }
        }
    }

    #[test]
    fn a_saved_table_reads_back_and_damage_is_named() {
        let table = ExactPValues::new();
        let mut expected = Vec::new();
        for (n1, n2, d) in [(2160, 480, 0.045), (480, 2160, 0.2), (50, 7, 0.5), (300, 300, 0.1), (40, 30, 0.01)] {
            expected.push(ks_p_value_with(d, n1, n2, &table));
        }
        let bytes = table.to_bytes();
        let path = std::path::Path::new("cache/ks-exact-p.bin");
        let back = ExactPValues::from_bytes(&bytes, path).unwrap();
        assert_eq!(back.len(), table.len());
        assert_eq!(back.to_bytes(), bytes);
        for ((n1, n2, d), e) in [(2160, 480, 0.045), (480, 2160, 0.2), (50, 7, 0.5), (300, 300, 0.1), (40, 30, 0.01)]
            .into_iter()
            .zip(&expected)
        {
            let got = ks_p_value_with(d, n1, n2, &back);
            assert_eq!((got.p_value.to_bits(), got.exact), (e.p_value.to_bits(), e.exact));
        }
        assert_eq!(back.len(), table.len(), "every p-value came from the loaded table");
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        let mut short = bytes.clone();
        short.truncate(bytes.len() - 5);
        for bad in [flipped, short, b"retrain-ks-p v1\n".to_vec(), Vec::new()] {
            let e = ExactPValues::from_bytes(&bad, path).unwrap_err();
            assert!(matches!(&e, Error::CorruptStore { path: p, .. } if p == path), "{e}");
        }
    }

    #[test]
    fn statistic_handles_ties_like_searchsorted_right() {
        let a = [1.0, 2.0, 2.0, 3.0];
        let b = [2.0, 2.0, 4.0];
        // ECDFs after 1: .25 vs 0; after 2: .75 vs .667; after 3: 1 vs .667; after 4: 1 vs 1.
        assert!((ks_statistic_sorted(&a, &b) - 1.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn identical_samples_have_p_one() {
        let a: Vec<f64> = (0..50).map(f64::from).collect();
        let r = ks_2samp(&a, &a).unwrap();
        assert_eq!(r.statistic, 0.0);
        assert_eq!(r.p_value, 1.0);
    }

    #[test]
    fn bad_samples_are_typed_errors() {
        assert!(matches!(ks_2samp(&[], &[1.0]), Err(Error::InvalidParam { .. })));
        let e = ks_2samp(&[1.0, f64::NAN], &[1.0]).unwrap_err().to_string();
        assert!(e.contains("ks.a") && e.contains("value 1"), "{e}");
    }

    #[test]
    fn smirnov_small_n_matches_closed_forms() {
        // n = 1: Pr(D+ >= d) = 1 - d.
        assert!((smirnov(1, 0.3) - 0.7).abs() < 1e-15);
        // n = 2, d = 0.6: only j = 0 term: d (1-d)^2 / d = (1-d)^2.
        assert!((smirnov(2, 0.6) - 0.16).abs() < 1e-15);
    }
}

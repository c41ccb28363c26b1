//! Runtime dispatch to vector-width copies of plain loops: the GBDT split search and the
//! networks' fused kernels are written as ordinary Rust loops and compiled once more for
//! AVX-512 and AVX2, picked when the CPU has them. Every copy gives the same bits.

/// Run `f` compiled for AVX-512 or AVX2 when the CPU has it: a closure marked
/// `#[inline(always)]` is inlined into that copy, so its plain loops are widened to 16 or 8
/// lanes. Rust never fuses a multiply and an add on its own (no FP contraction), so the
/// arithmetic, and every result bit, is the same on every path.
#[inline(always)]
pub fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the CPU has these AVX-512 subsets.
            return unsafe { run_avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { run_avx2(f) };
        }
    }
    f()
}

/// Whether the CPU has the AVX-512 subsets [`wide`]'s AVX-512 copy is compiled for.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

/// [`wide`]'s AVX-512 copy.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(crate) unsafe fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// [`wide`]'s AVX2 copy.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

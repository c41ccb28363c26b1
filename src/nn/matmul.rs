//! Matrix products on CPU that run in the caller's rayon pool.
//!
//! candle 0.11 hands a whole product to `gemm` with its own threading, which scaled poorly on
//! the shapes these networks use: a `[1792, 512] × [512, 512]ᵀ` product measured 84 GFLOPS on
//! one core and the same 84 on two, and a batched product (attention: thousands of `42 × 4`
//! matrices) is a serial loop of tiny calls. Here a large single product is one `gemm` call
//! split by `gemm` over the current pool (about 180 GFLOPS on two cores, as PyTorch's MKL);
//! smaller and batched ones are cut into tiles — rows (or columns) in blocks of `TILE` (128),
//! and batch items — each computed by a single-threaded `gemm` call, the tiles spread over the
//! pool. Neither split changes the order of any output's sum, so the result is bit-identical
//! whatever the thread count. The backward pass is two more products through the same op.
//! [`linear`] is a layer's `x @ W + b` in one op: the bias is the output's starting value and
//! its gradient a parallel column sum; [`linear_relu`] adds the ReLU. Off CPU (CUDA) or for
//! other dtypes, candle's own `matmul` runs.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Output rows (or columns) per tile.
const TILE: usize = 128;

/// From this many multiply-adds, a single (unbatched) product is one `gemm` call that splits
/// itself over the pool instead of fixed tiles.
const WHOLE: usize = 1 << 22;

/// Below this many multiply-adds per batch item, several items share one task.
const SMALL_ITEM: usize = 1 << 16;

/// `a @ b` over the last two dimensions (leading dimensions must be equal), with gradients.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.device().is_cpu()
        && a.dtype() == DType::F32
        && b.dtype() == DType::F32
        && a.rank() >= 2
        && a.rank() == b.rank()
    {
        let (ra, rb) = (a.rank(), b.rank());
        if a.dims()[..ra - 2] == b.dims()[..rb - 2] && a.dims()[ra - 1] == b.dims()[rb - 2] {
            return a.apply_op2(b, MatMul);
        }
    }
    a.matmul(b)
}

/// The custom op (see the module docs).
struct MatMul;

/// Element offset of every batch item (leading dimensions) of a layout.
fn batch_offsets(l: &Layout) -> Vec<usize> {
    let dims = l.dims();
    let stride = l.stride();
    let lead = dims.len() - 2;
    let mut offs = vec![l.start_offset()];
    for d in 0..lead {
        let mut next = Vec::with_capacity(offs.len() * dims[d]);
        for &o in &offs {
            for i in 0..dims[d] {
                next.push(o + i * stride[d]);
            }
        }
        offs = next;
    }
    offs
}

/// A raw output pointer that tiles write through, each into its own disjoint region.
#[derive(Clone, Copy)]
struct Dst(*mut f32);
// SAFETY: every task writes a distinct set of output elements (disjoint tiles), and the
// buffer outlives the parallel loop that uses the pointer.
unsafe impl Send for Dst {}
unsafe impl Sync for Dst {}

impl Dst {
    /// The address of output element `i` (a method, so closures capture the whole `Dst`).
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

impl CustomOp2 for MatMul {
    fn name(&self) -> &'static str {
        "retrain-matmul"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        product(s1, l1, s2, l2, None, false)
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Operands that no gradient flows to (inputs, constants) get none computed.
        let ga = if a.track_op() { Some(matmul(grad, &b.t()?)?) } else { None };
        let gb = if b.track_op() { Some(matmul(&a.t()?, grad)?) } else { None };
        Ok((ga, gb))
    }
}

/// `x @ w + bias` for a matrix `x` (`[rows, in]`), `w` (`[in, out]`) and `bias` (`[out]`),
/// with gradients: a linear layer in one op (the bias is the product's starting value, and
/// its gradient one parallel column sum), instead of a product and a broadcast add whose
/// backward is a serial reduction.
pub fn linear(x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Tensor> {
    linear_op(x, w, bias, false)
}

/// `relu(x @ w + bias)`: [`linear`] with the ReLU applied to each output tile while it is in
/// cache, and a backward that masks the gradient in the same pass as the bias's column sum
/// (candle's ReLU backward is five ops over the activation).
pub fn linear_relu(x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Tensor> {
    linear_op(x, w, bias, true)
}

fn linear_op(x: &Tensor, w: &Tensor, bias: &Tensor, relu: bool) -> Result<Tensor> {
    if crate::nn::fused::available(x)
        && w.dtype() == DType::F32
        && x.rank() == 2
        && w.rank() == 2
        && bias.rank() == 1
        && x.dims()[1] == w.dims()[0]
    {
        return x.apply_op3(w, &bias.contiguous()?, Linear { relu });
    }
    let y = matmul(x, w)?.broadcast_add(bias)?;
    if relu { y.relu() } else { Ok(y) }
}

/// The custom op of [`linear`] and [`linear_relu`].
struct Linear {
    relu: bool,
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "retrain-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(b) = s3 else { candle_core::bail!("retrain-linear: f32 bias expected") };
        let Some((lo, hi)) = l3.contiguous_offsets() else {
            candle_core::bail!("retrain-linear: contiguous bias expected")
        };
        product(s1, l1, s2, l2, Some(&b[lo..hi]), self.relu)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (grad, gb) = if self.relu {
            crate::nn::fused::relu_backward(res, grad)?
        } else {
            (grad.clone(), crate::nn::fused::column_sum(grad)?)
        };
        // The first layer's input is data: no gradient to compute for it.
        let gx = if x.track_op() { Some(matmul(&grad, &w.t()?)?) } else { None };
        let gw = if w.track_op() { Some(matmul(&x.t()?, &grad)?) } else { None };
        Ok((gx, gw, Some(gb)))
    }
}

/// The tiled product `a @ b` (`+ bias` over the last dimension when given, then ReLU when
/// `relu`) on CPU.
fn product(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    bias: Option<&[f32]>,
    relu: bool,
) -> Result<(CpuStorage, Shape)> {
    let (CpuStorage::F32(a), CpuStorage::F32(b)) = (s1, s2) else {
        candle_core::bail!("retrain-matmul: f32 operands expected");
    };
    let (da, db) = (l1.dims(), l2.dims());
    let r = da.len();
    let (m, k, n) = (da[r - 2], da[r - 1], db[r - 1]);
    let (sa, sb) = (l1.stride(), l2.stride());
    let (a_rs, a_cs, b_rs, b_cs) = (sa[r - 2] as isize, sa[r - 1] as isize, sb[r - 2] as isize, sb[r - 1] as isize);
    let (oa, ob) = (batch_offsets(l1), batch_offsets(l2));
    let batch = oa.len();
    let len = batch * m * n;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let mut dims = da[..r - 2].to_vec();
    dims.extend([m, n]);
    if m == 0 || n == 0 || batch == 0 {
        return Ok((CpuStorage::F32(out), Shape::from(dims)));
    }
    if let Some(bias) = bias {
        if bias.len() != n {
            candle_core::bail!("retrain-linear: bias of {} for {n} outputs", bias.len());
        }
        // The bias is each output row's starting value; `gemm` then adds the product.
        for _ in 0..batch * m {
            out.extend_from_slice(bias);
        }
    } else if k == 0 {
        out.resize(len, 0.0);
    }
    if k == 0 {
        if relu {
            out.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        return Ok((CpuStorage::F32(out), Shape::from(dims)));
    }
    let read_dst = bias.is_some();
    // One large product goes to `gemm` whole, split by `gemm` itself over the current rayon
    // pool: it packs each panel of the shared operand once, where every fixed tile packed
    // it again (12 % slower on `[1792, 512] × [512, 512]`). Its split is over output blocks
    // with the same k order in every block, so the result does not depend on the threads.
    let whole = batch == 1 && m * n * k >= WHOLE;
    // Tiles: (batch item, first row, rows, first column, columns).
    let mut tiles = Vec::new();
    for t in 0..batch {
        if whole {
            tiles.push((t, 0, m, 0, n));
        } else if m >= n && m > TILE {
            tiles.extend((0..m).step_by(TILE).map(|r0| (t, r0, TILE.min(m - r0), 0, n)));
        } else if n > TILE {
            tiles.extend((0..n).step_by(TILE).map(|c0| (t, 0, m, c0, TILE.min(n - c0))));
        } else {
            tiles.push((t, 0, m, 0, n));
        }
    }
    let per_task = (SMALL_ITEM / (m * n * k).max(1)).max(1);
    let dst = Dst(out.as_mut_ptr());
    tiles.par_iter().with_min_len(per_task).for_each(|&(t, r0, rows, c0, cols)| {
        let lhs = a[oa[t] + r0 * a_rs as usize..].as_ptr();
        let rhs = b[ob[t] + c0 * b_cs as usize..].as_ptr();
        // SAFETY: the pointers address the operands' elements as their layouts describe
        // (offsets and strides from candle), and `dst` this tile's disjoint block of the
        // contiguous `[batch, m, n]` output, which is alive for the whole loop; the ReLU
        // rows are inside that block and were written by `gemm` just before.
        unsafe {
            gemm::gemm(
                rows,
                cols,
                k,
                dst.at(t * m * n + r0 * n + c0),
                1,
                n as isize,
                read_dst,
                lhs,
                a_cs,
                a_rs,
                rhs,
                b_cs,
                b_rs,
                1.0,
                1.0,
                false,
                false,
                false,
                if whole { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None },
            );
            if relu && !whole {
                for r in 0..rows {
                    let row = std::slice::from_raw_parts_mut(dst.at(t * m * n + (r0 + r) * n + c0), cols);
                    for v in row {
                        *v = v.max(0.0);
                    }
                }
            }
        }
    });
    if !read_dst {
        // SAFETY: the tiles cover every element of the `len`-element buffer and `gemm`
        // (with `read_dst` false) wrote each of them above without reading it; f32 has no
        // invalid bit patterns. Skipping the zero-fill saves a pass over every output.
        unsafe { out.set_len(len) };
    }
    if relu && whole {
        out.par_chunks_mut(TILE * n).for_each(|c| c.iter_mut().for_each(|v| *v = v.max(0.0)));
    }
    Ok((CpuStorage::F32(out), Shape::from(dims)))
}

/// `dst = a @ b` (or `dst += a @ b` when `accumulate`) for one `[m, k] × [k, n]` product
/// over raw strided operands (element `(i, j)` of `a` at `i·a_rs + j·a_cs`, of `dst` at
/// `i·dst_rs + j`), in the current rayon pool: one self-splitting `gemm` call for large
/// products, fixed row tiles otherwise — bit-identical whatever the thread count.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_into(
    dst: &mut [f32],
    dst_rs: usize,
    mkn: (usize, usize, usize),
    a: &[f32],
    a_s: (usize, usize),
    b: &[f32],
    b_s: (usize, usize),
    accumulate: bool,
) -> Result<()> {
    // SAFETY: `dst` is an initialised slice of `dst.len()` elements.
    unsafe { gemm_raw(dst.as_mut_ptr(), dst.len(), dst_rs, mkn, a, a_s, b, b_s, accumulate) }
}

/// A fresh row-major `[m, n]` product `a @ b` (strides as in [`gemm_into`]); no zero-fill
/// first, as `gemm` writes every element.
pub(crate) fn gemm_new(
    mkn: (usize, usize, usize),
    a: &[f32],
    a_s: (usize, usize),
    b: &[f32],
    b_s: (usize, usize),
) -> Result<Vec<f32>> {
    let (m, k, n) = mkn;
    if k == 0 {
        return Ok(vec![0.0; m * n]);
    }
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    // SAFETY: the capacity holds m·n elements; with k > 0 and `accumulate` false `gemm`
    // writes each of them without reading it, so the length can then be set.
    unsafe {
        gemm_raw(out.as_mut_ptr(), m * n, n, mkn, a, a_s, b, b_s, false)?;
        out.set_len(m * n);
    }
    Ok(out)
}

/// [`gemm_into`] over a raw output of `dst_len` elements.
///
/// # Safety
/// `dst` must be valid for writes of `dst_len` elements (and reads, when `accumulate`, of
/// initialised ones) and not alias `a` or `b`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    dst: *mut f32,
    dst_len: usize,
    dst_rs: usize,
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    accumulate: bool,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    let last = |rows: usize, rs: usize, cols: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs + 1;
    if dst_len < last(m, dst_rs, n, 1) || n > dst_rs {
        candle_core::bail!("retrain-gemm: output of {dst_len} elements for [{m}, {n}] with row stride {dst_rs}");
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                // SAFETY: row r's n elements are inside the checked output.
                unsafe { std::ptr::write_bytes(dst.add(r * dst_rs), 0, n) };
            }
        }
        return Ok(());
    }
    if a.len() < last(m, a_rs, k, a_cs) || b.len() < last(k, b_rs, n, b_cs) {
        candle_core::bail!("retrain-gemm: operands too short for [{m}, {k}] × [{k}, {n}]");
    }
    let whole = m * n * k >= WHOLE || m <= TILE;
    let tiles: Vec<usize> = if whole { vec![0] } else { (0..m).step_by(TILE).collect() };
    let out = Dst(dst);
    tiles.par_iter().for_each(|&r0| {
        let rows = if whole { m } else { TILE.min(m - r0) };
        // SAFETY: the bounds were checked above for the whole product; each tile covers rows
        // r0..r0 + rows of `dst`, disjoint from every other tile's, and the buffers outlive
        // the loop.
        unsafe {
            gemm::gemm(
                rows,
                n,
                k,
                out.at(r0 * dst_rs),
                1,
                dst_rs as isize,
                accumulate,
                a.as_ptr().add(r0 * a_rs),
                a_cs as isize,
                a_rs as isize,
                b.as_ptr(),
                b_cs as isize,
                b_rs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                if whole && m * n * k >= WHOLE { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None },
            );
        }
    });
    Ok(())
}

/// Rows per parallel task when [`by_rows`] fills a buffer.
const FILL_ROWS: usize = 64;

/// A new `[rows, width]` buffer whose rows are written by `f(row, row_buffer)`, in parallel
/// over fixed row chunks, without zero-filling it first (these buffers are megabytes, written
/// once per training step).
pub(crate) fn by_rows(
    rows: usize,
    width: usize,
    f: impl Fn(usize, &mut [std::mem::MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let len = rows * width;
    let mut v: Vec<f32> = Vec::with_capacity(len);
    if width > 0 {
        v.spare_capacity_mut()[..len].par_chunks_mut(FILL_ROWS * width).enumerate().for_each(|(c, chunk)| {
            for (r, row) in chunk.chunks_exact_mut(width).enumerate() {
                f(c * FILL_ROWS + r, row);
            }
        });
    }
    // SAFETY: every caller's `f` writes all `width` elements of each row it is given (each
    // use assigns every element), so all `len` elements are initialised.
    unsafe { v.set_len(len) };
    v
}

/// Rows of `n` copies of `bias` (a product's starting value), written in parallel.
pub(crate) fn bias_rows(n: usize, bias: &[f32]) -> Vec<f32> {
    by_rows(n, bias.len(), |_, row| {
        for (d, &b) in row.iter_mut().zip(bias) {
            d.write(b);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn close(x: &Tensor, y: &Tensor) -> f32 {
        (x - y).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn equals_candle_forward_and_backward_for_strided_and_batched_shapes() {
        let d = Device::Cpu;
        // (a dims, b dims, transpose b?): tiles over rows, over columns, a single tile, batched.
        for (ad, bd, tb) in [
            (vec![300, 70], vec![90, 70], true),
            (vec![5, 40], vec![40, 300], false),
            (vec![7, 9], vec![9, 11], false),
            (vec![3, 4, 42, 4], vec![3, 4, 4, 42], false),
        ] {
            let a = Var::from_tensor(&Tensor::randn(0f32, 1.0, ad.as_slice(), &d).unwrap()).unwrap();
            let braw = Var::from_tensor(&Tensor::randn(0f32, 1.0, bd.as_slice(), &d).unwrap()).unwrap();
            let b = if tb { braw.t().unwrap() } else { braw.as_tensor().clone() };
            let ours = matmul(&a, &b).unwrap();
            let want = a.matmul(&b).unwrap();
            assert_eq!(ours.dims(), want.dims());
            assert!(close(&ours, &want) < 1e-4, "forward {ad:?} {bd:?}");
            let w = Tensor::randn(0f32, 1.0, want.dims(), &d).unwrap();
            let g1 = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (want * &w).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [a.as_tensor(), braw.as_tensor()] {
                assert!(close(g1.get(v).unwrap(), g2.get(v).unwrap()) < 1e-3, "gradient {ad:?} {bd:?}");
            }
        }
    }

    #[test]
    fn linear_and_linear_relu_equal_candle_ops_forward_and_backward() {
        let d = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (600, 30), &d).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (140, 30), &d).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 140, &d).unwrap()).unwrap();
        let wt = w.t().unwrap();
        for relu in [false, true] {
            let (ours, want) = if relu {
                (linear_relu(&x, &wt, &b).unwrap(), x.matmul(&wt).unwrap().broadcast_add(&b).unwrap().relu().unwrap())
            } else {
                (linear(&x, &wt, &b).unwrap(), x.matmul(&wt).unwrap().broadcast_add(&b).unwrap())
            };
            assert!(close(&ours, &want) < 1e-4, "relu {relu}");
            if relu {
                let zeros = ours.eq(0f32).unwrap().to_dtype(DType::F32).unwrap().mean_all().unwrap();
                assert!(zeros.to_scalar::<f32>().unwrap() > 0.3, "about half the outputs are clipped");
            }
            let m = Tensor::randn(0f32, 1.0, (600, 140), &d).unwrap();
            let g1 = (ours * &m).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (want * &m).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [x.as_tensor(), w.as_tensor(), b.as_tensor()] {
                assert!(close(g1.get(v).unwrap(), g2.get(v).unwrap()) < 1e-3, "relu {relu}");
            }
        }
        // A wrong bias length is an error, not a silent broadcast.
        let short = Tensor::zeros(4, DType::F32, &d).unwrap();
        assert!(linear(&x, &wt, &short).is_err());
        assert!(linear_relu(&x, &wt, &short).is_err());
    }

    #[test]
    fn same_bits_whatever_the_thread_count() {
        let d = Device::Cpu;
        let a = Tensor::randn(0f32, 1.0, (700, 300), &d).unwrap();
        let b = Tensor::randn(0f32, 1.0, (300, 500), &d).unwrap();
        let run = |t| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            pool.install(|| matmul(&a, &b).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap())
        };
        assert_eq!(run(1), run(3));
        assert_eq!(run(2), run(3));
    }
}

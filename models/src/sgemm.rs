//! f32 GEMM for the dense layers, `C = A · W + bias`, with `W` packed once at load.
//!
//! Why not only the `gemm` crate candle uses: weights never change, so they are packed
//! once at load into 16-column panels (the `gemm` crate repacks the right-hand side on
//! every call), and the bias is fused into the first store. On the 2-core AVX2 machine of
//! `benches/README.md` this kernel reached 139 GFLOPS against the `gemm` crate's 131 on
//! e5's FFN shape (`cargo run --release -p rapport-models --example gemm_throughput`).
//! The AVX2/FMA micro-kernel keeps a 6 × 16 block of `C` in twelve registers, starting
//! from the bias. `k` is cut into 256-deep slices so a panel slice (16 KiB) and six rows
//! of `A` fit L1 together.
//!
//! Other CPUs (or shapes whose width is not a multiple of 16) use the `gemm` crate.

use crate::kernels::simd::avx2_fma;
use crate::kernels::{SendPtr, for_each_block};

/// Columns per packed panel (two AVX registers).
const NR: usize = 16;
/// Rows per micro-kernel call.
const MR: usize = 6;
/// Depth of one slice of `k`.
const KC: usize = 256;
/// Rows of `A` per work item: its slice (48 × 256 × 4 B = 48 KiB) stays in L2 while the
/// item walks one panel.
const ROWS_PER_ITEM: usize = 48;

/// `W` (`[out, in]` as stored) packed as `[panel][k][16]`.
pub struct PackedWeight {
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

impl PackedWeight {
    pub fn pack(w: &[f32], out_dim: usize, in_dim: usize) -> Option<PackedWeight> {
        if !out_dim.is_multiple_of(NR) || !avx2_fma() {
            return None;
        }
        let mut panels = vec![0.0f32; out_dim * in_dim];
        for panel in 0..out_dim / NR {
            for p in 0..in_dim {
                for j in 0..NR {
                    panels[(panel * in_dim + p) * NR + j] = w[(panel * NR + j) * in_dim + p];
                }
            }
        }
        Some(PackedWeight {
            k: in_dim,
            n: out_dim,
            panels,
        })
    }

    /// `c[m × n] = a[m × k] · W + bias`, split across the current rayon pool.
    pub fn matmul_bias(&self, a: &[f32], m: usize, bias: &[f32], c: &mut [f32]) {
        assert_eq!(a.len(), m * self.k);
        assert_eq!(c.len(), m * self.n);
        assert_eq!(bias.len(), self.n);
        let c_ptr = SendPtr(c.as_mut_ptr());
        for_each_block(m, self.n / NR, ROWS_PER_ITEM, |rows, panel| {
            // Through the whole struct: a closure capturing only the raw field is not Sync.
            let c_ptr = &c_ptr;
            // SAFETY: AVX2 and FMA were detected when packing; each block writes only its
            // rows × its panel's 16 columns of `c`, which no other block touches; all reads
            // stay within `a`, the panel and `bias`.
            unsafe { self.item(a, rows, panel, bias, c_ptr.0) }
        });
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn item(
        &self,
        a: &[f32],
        rows: std::ops::Range<usize>,
        panel: usize,
        bias: &[f32],
        c: *mut f32,
    ) {
        let (k, n) = (self.k, self.n);
        let panel_data = &self.panels[panel * k * NR..(panel + 1) * k * NR];
        let mut depth = 0;
        while depth < k {
            let kc = KC.min(k - depth);
            let b = panel_data[depth * NR..].as_ptr();
            let mut row = rows.start;
            while row < rows.end {
                let a_rows = a[row * k + depth..].as_ptr();
                // SAFETY (all calls): see `matmul_bias`.
                let c_rows = unsafe { c.add(row * n + panel * NR) };
                let start = if depth == 0 {
                    Start::Bias(bias[panel * NR..].as_ptr())
                } else {
                    Start::Accumulate
                };
                unsafe {
                    match rows.end - row {
                        1 => kernel::<1>(kc, a_rows, k, b, c_rows, n, start),
                        2 => kernel::<2>(kc, a_rows, k, b, c_rows, n, start),
                        3 => kernel::<3>(kc, a_rows, k, b, c_rows, n, start),
                        4 => kernel::<4>(kc, a_rows, k, b, c_rows, n, start),
                        5 => kernel::<5>(kc, a_rows, k, b, c_rows, n, start),
                        _ => kernel::<MR>(kc, a_rows, k, b, c_rows, n, start),
                    }
                }
                row += MR;
            }
            depth += kc;
        }
    }
}

#[derive(Clone, Copy)]
enum Start {
    /// First slice of `k`: the block starts from the bias row.
    Bias(*const f32),
    /// Later slices add to what the earlier ones stored.
    Accumulate,
}

/// `R` rows × 16 columns of `C` over `kc` steps of `k`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn kernel<const R: usize>(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    start: Start,
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees R rows of `a` (stride lda) with kc values each, a
    // kc × 16 panel at `b`, and R rows × 16 writable values of `c` (stride ldc).
    unsafe {
        let mut lo = [_mm256_setzero_ps(); R];
        let mut hi = [_mm256_setzero_ps(); R];
        for i in 0..R {
            let (l, h) = match start {
                Start::Bias(bias) => (_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8))),
                Start::Accumulate => (
                    _mm256_loadu_ps(c.add(i * ldc)),
                    _mm256_loadu_ps(c.add(i * ldc + 8)),
                ),
            };
            lo[i] = l;
            hi[i] = h;
        }
        for p in 0..kc {
            let b0 = _mm256_loadu_ps(b.add(p * NR));
            let b1 = _mm256_loadu_ps(b.add(p * NR + 8));
            for i in 0..R {
                let av = _mm256_broadcast_ss(&*a.add(i * lda + p));
                lo[i] = _mm256_fmadd_ps(av, b0, lo[i]);
                hi[i] = _mm256_fmadd_ps(av, b1, hi[i]);
            }
        }
        for i in 0..R {
            _mm256_storeu_ps(c.add(i * ldc), lo[i]);
            _mm256_storeu_ps(c.add(i * ldc + 8), hi[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::ProductCase;

    #[test]
    fn packed_product_matches_the_definition_for_ragged_shapes() {
        if !avx2_fma() {
            eprintln!("SKIP: this CPU has no AVX2/FMA; the gemm crate is used instead");
            return;
        }
        // k = 800 crosses two slice boundaries; m = 53 leaves a 5-row and a partial item.
        let case = ProductCase::new(53, 800, 32);
        let packed = PackedWeight::pack(&case.w, case.n, case.k).unwrap();
        let mut c = vec![0.0; case.m * case.n];
        packed.matmul_bias(&case.a, case.m, &case.bias, &mut c);
        for (at, (got, want)) in c.iter().zip(case.expected()).enumerate() {
            assert!(
                (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                "c[{}][{}] = {got}, want {want}",
                at / case.n,
                at % case.n
            );
        }
    }
}

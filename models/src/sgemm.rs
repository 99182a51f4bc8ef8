//! f32 GEMM for the dense layers, `C = A · W + bias`, with `W` packed once at load.
//!
//! Why not only the `gemm` crate candle uses: weights never change, so they are packed
//! once at load into panels (the `gemm` crate repacks the right-hand side on every call),
//! and the bias is fused into the first store. The AVX2/FMA micro-kernel keeps a 6 × 16
//! block of `C` in twelve registers, starting from the bias; the AVX-512 one a 12 × 32
//! block in 24 registers of sixteen lanes. On e5's FFN shape, 2 threads
//! (`cargo run --release -p rapport-models --example gemm_throughput`): AVX2 139 GFLOPS
//! against the `gemm` crate's 131 on an AVX2-only machine; on an AVX-512 one AVX2 152,
//! AVX-512 284, the `gemm` crate 156 (it ran its AVX2 kernels there).
//! `k` is cut into 256-deep slices so a panel slice (16 or 32 KiB) and the rows of `A` in
//! flight fit L1 together.
//!
//! Other CPUs (or shapes whose width is not a multiple of 16) use the `gemm` crate.

use crate::isa::Isa;
use crate::parallel::{SendPtr, for_each_block};

/// Columns per packed panel: two registers of either width.
fn panel_width(isa: Isa) -> usize {
    if isa >= Isa::Avx512Vnni { 32 } else { 16 }
}
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
    isa: Isa,
}

impl PackedWeight {
    /// `w` is `[out, in]` as stored, packed for `isa`'s kernel. None where it does not
    /// apply: no SIMD (or more than this CPU has), or a width that is not a multiple of
    /// the panel width.
    pub fn pack(w: &[f32], out_dim: usize, in_dim: usize, isa: Isa) -> Option<PackedWeight> {
        let nr = panel_width(isa);
        if !out_dim.is_multiple_of(nr) || isa == Isa::Portable || isa > Isa::detected() {
            return None;
        }
        let mut panels = vec![0.0f32; out_dim * in_dim];
        for panel in 0..out_dim / nr {
            for p in 0..in_dim {
                for j in 0..nr {
                    panels[(panel * in_dim + p) * nr + j] = w[(panel * nr + j) * in_dim + p];
                }
            }
        }
        Some(PackedWeight {
            k: in_dim,
            n: out_dim,
            panels,
            isa,
        })
    }

    /// `c[m × n] = a[m × k] · W + bias`, split across the current rayon pool.
    pub fn matmul_bias(&self, a: &[f32], m: usize, bias: &[f32], c: &mut [f32]) {
        assert_eq!(a.len(), m * self.k);
        assert_eq!(c.len(), m * self.n);
        assert_eq!(bias.len(), self.n);
        let c_ptr = SendPtr(c.as_mut_ptr());
        for_each_block(
            m,
            self.n / panel_width(self.isa),
            ROWS_PER_ITEM,
            |rows, panel| {
                // Through the whole struct: a closure capturing only the raw field is not Sync.
                let c_ptr = &c_ptr;
                // SAFETY: the kernel's features were detected when packing; each block writes
                // only its rows × its panel's columns of `c`, which no other block touches;
                // all reads stay within `a`, the panel and `bias`.
                unsafe { self.item(a, rows, panel, bias, c_ptr.0) }
            },
        );
    }

    unsafe fn item(
        &self,
        a: &[f32],
        rows: std::ops::Range<usize>,
        panel: usize,
        bias: &[f32],
        c: *mut f32,
    ) {
        let (k, n, nr) = (self.k, self.n, panel_width(self.isa));
        let panel_data = &self.panels[panel * k * nr..(panel + 1) * k * nr];
        let mut depth = 0;
        while depth < k {
            let kc = KC.min(k - depth);
            let b = panel_data[depth * nr..].as_ptr();
            let mut row = rows.start;
            while row < rows.end {
                let a_rows = a[row * k + depth..].as_ptr();
                // SAFETY (all calls): see `matmul_bias`.
                let c_rows = unsafe { c.add(row * n + panel * nr) };
                let start = if depth == 0 {
                    Start::Bias(bias[panel * nr..].as_ptr())
                } else {
                    Start::Accumulate
                };
                let rows_left = rows.end - row;
                // SAFETY: see `matmul_bias`; the kernel's features were detected.
                let done = unsafe {
                    match self.isa {
                        Isa::Avx512Vnni => {
                            avx512::block(rows_left, kc, a_rows, k, b, c_rows, n, start)
                        }
                        _ => avx2::block(rows_left, kc, a_rows, k, b, c_rows, n, start),
                    }
                };
                row += done;
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

/// One micro-kernel family: `block` runs up to `MR` rows × one panel's columns of `C` over `kc`
/// steps of `k` and returns how many rows it did. The caller guarantees those rows of
/// `a` (stride `lda`) with `kc` values each, a `kc ×` panel-width slice at `b`, and as many
/// rows × panel-width writable values of `c` (stride `ldc`).
macro_rules! micro_kernel {
    ($module:ident, $features:literal, $mr:literal, [$($rows:literal)*], $kernel:item) => {
        mod $module {
            use super::Start;
            const MR: usize = $mr;

            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn block(
                rows_left: usize,
                kc: usize,
                a: *const f32,
                lda: usize,
                b: *const f32,
                c: *mut f32,
                ldc: usize,
                start: Start,
            ) -> usize {
                // SAFETY: forwarded from the caller.
                unsafe {
                    match rows_left {
                        $($rows => kernel::<$rows>(kc, a, lda, b, c, ldc, start),)*
                        _ => kernel::<MR>(kc, a, lda, b, c, ldc, start),
                    }
                }
                rows_left.min(MR)
            }

            $kernel
        }
    };
}

micro_kernel!(avx2, "avx2,fma", 6, [1 2 3 4 5],
    /// `R` rows × 16 columns in two 8-lane registers per row.
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
        // SAFETY: see the family's contract.
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
                let b0 = _mm256_loadu_ps(b.add(p * 16));
                let b1 = _mm256_loadu_ps(b.add(p * 16 + 8));
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
);

micro_kernel!(avx512, "avx512f", 12, [1 2 3 4 5 6 7 8 9 10 11],
    /// `R` rows × 32 columns in two 16-lane registers per row.
    #[target_feature(enable = "avx512f")]
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
        // SAFETY: see the family's contract.
        unsafe {
            let mut lo = [_mm512_setzero_ps(); R];
            let mut hi = [_mm512_setzero_ps(); R];
            for i in 0..R {
                let (l, h) = match start {
                    Start::Bias(bias) => (_mm512_loadu_ps(bias), _mm512_loadu_ps(bias.add(16))),
                    Start::Accumulate => (
                        _mm512_loadu_ps(c.add(i * ldc)),
                        _mm512_loadu_ps(c.add(i * ldc + 16)),
                    ),
                };
                lo[i] = l;
                hi[i] = h;
            }
            for p in 0..kc {
                let b0 = _mm512_loadu_ps(b.add(p * 32));
                let b1 = _mm512_loadu_ps(b.add(p * 32 + 16));
                for i in 0..R {
                    let av = _mm512_set1_ps(*a.add(i * lda + p));
                    lo[i] = _mm512_fmadd_ps(av, b0, lo[i]);
                    hi[i] = _mm512_fmadd_ps(av, b1, hi[i]);
                }
            }
            for i in 0..R {
                _mm512_storeu_ps(c.add(i * ldc), lo[i]);
                _mm512_storeu_ps(c.add(i * ldc + 16), hi[i]);
            }
        }
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::ProductCase;

    #[test]
    fn packed_product_matches_the_definition_for_ragged_shapes() {
        // k = 800 crosses two slice boundaries; m = 53 leaves partial micro-kernel
        // blocks for both kernels (6- and 12-row) and a partial item.
        let case = ProductCase::new(53, 800, 64);
        let mut checked = 0;
        for isa in Isa::available() {
            let Some(packed) = PackedWeight::pack(&case.w, case.n, case.k, isa) else {
                continue;
            };
            let mut c = vec![0.0; case.m * case.n];
            packed.matmul_bias(&case.a, case.m, &case.bias, &mut c);
            for (at, (got, want)) in c.iter().zip(case.expected()).enumerate() {
                assert!(
                    (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                    "{isa:?}: c[{}][{}] = {got}, want {want}",
                    at / case.n,
                    at % case.n
                );
            }
            checked += 1;
        }
        if checked == 0 {
            eprintln!("SKIP: this CPU has no AVX2/FMA; the gemm crate is used instead");
        }
    }
}

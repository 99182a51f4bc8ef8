//! Int8 GEMM for the dense layers, `C ≈ A · W + bias`, on AVX2 without VNNI.
//!
//! AVX2's `vpmaddubsw` multiplies 32 unsigned by 32 signed bytes and adds neighbouring
//! pairs into 16-bit lanes: twice the multiplies per instruction of an f32 FMA. Its one
//! trap is saturation, which the operand ranges rule out here:
//! - weights: 8 bits per output column (`scale_w = max|W_j| / 127`), stored offset by
//!   128 as unsigned bytes (1..=255);
//! - activations: 7 bits per row (`scale_a = max|A_i| / 63`), signed;
//! - a pair sums to at most 2 · 255 · 63 = 32,130 < 32,767.
//!
//! The offset is taken back exactly in the epilogue: `Σ a·(w + 128) = Σ a·w + 128 · Σ a`.
//! Weights are packed at load as `[panel][k / 4][16 columns][4 bytes]`, so one 32-bit
//! broadcast of four activation bytes meets two registers of weights per step.

use rayon::prelude::*;

use crate::kernels::simd::avx2_fma;
use crate::kernels::{SendPtr, for_each_block};

const NR: usize = 16;
const MR: usize = 4;
/// Rows of `A` per work item.
const ROWS_PER_ITEM: usize = 48;
const WEIGHT_LEVELS: f32 = 127.0;
const ACTIVATION_LEVELS: f32 = 63.0;

pub struct Int8Weight {
    k: usize,
    n: usize,
    /// Offset weights, `[panel][k / 4][16][4]`.
    panels: Vec<u8>,
    /// Per output column.
    scales: Vec<f32>,
}

/// One row of `A`, quantised.
struct QuantisedRows {
    values: Vec<i8>,
    scales: Vec<f32>,
    /// `128 · Σ a` per row: the offset's contribution, subtracted in the epilogue.
    offsets: Vec<i32>,
}

impl Int8Weight {
    /// `w` is `[out, in]` as stored. None where the kernel does not apply (no AVX2, or
    /// sizes that are not multiples of 16 columns and 4 inputs).
    pub fn pack(w: &[f32], out_dim: usize, in_dim: usize) -> Option<Int8Weight> {
        if !out_dim.is_multiple_of(NR) || !in_dim.is_multiple_of(4) || !avx2_fma() {
            return None;
        }
        let scales: Vec<f32> = w
            .chunks_exact(in_dim)
            .map(|row| row.iter().fold(0.0f32, |m, v| m.max(v.abs())) / WEIGHT_LEVELS)
            .map(|s| if s > 0.0 { s } else { 1.0 })
            .collect();
        let mut panels = vec![0u8; out_dim * in_dim];
        for col in 0..out_dim {
            let (panel, lane) = (col / NR, col % NR);
            for p in 0..in_dim {
                let q = (w[col * in_dim + p] / scales[col])
                    .round()
                    .clamp(-127.0, 127.0) as i32;
                let at = panel * in_dim * NR + (p / 4) * NR * 4 + lane * 4 + p % 4;
                panels[at] = (q + 128) as u8;
            }
        }
        Some(Int8Weight {
            k: in_dim,
            n: out_dim,
            panels,
            scales,
        })
    }

    /// `c[m × n] ≈ a[m × k] · W + bias`, split across the current rayon pool.
    pub fn matmul_bias(&self, a: &[f32], m: usize, bias: &[f32], c: &mut [f32]) {
        assert_eq!(a.len(), m * self.k);
        assert_eq!(c.len(), m * self.n);
        assert_eq!(bias.len(), self.n);
        let rows = quantise_rows(a, m, self.k);
        let c_ptr = SendPtr(c.as_mut_ptr());
        for_each_block(m, self.n / NR, ROWS_PER_ITEM, |range, panel| {
            // Through the whole struct: a closure capturing only the raw field is not Sync.
            let c_ptr = &c_ptr;
            // SAFETY: AVX2 was detected when packing; each block writes only its rows × its
            // panel's 16 columns of `c`; reads stay within the buffers.
            unsafe { self.item(&rows, range, panel, bias, c_ptr.0) }
        });
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn item(
        &self,
        rows: &QuantisedRows,
        range: std::ops::Range<usize>,
        panel: usize,
        bias: &[f32],
        c: *mut f32,
    ) {
        let (k, n) = (self.k, self.n);
        let b = self.panels[panel * k * NR..(panel + 1) * k * NR].as_ptr();
        let col = panel * NR;
        let mut row = range.start;
        while row < range.end {
            let count = MR.min(range.end - row);
            let tile = Tile {
                a: rows.values[row * k..].as_ptr(),
                lda: k,
                a_scales: &rows.scales[row..row + count],
                a_offsets: &rows.offsets[row..row + count],
                w_scales: self.scales[col..col + NR].as_ptr(),
                bias: bias[col..col + NR].as_ptr(),
                // SAFETY: see `matmul_bias`.
                c: unsafe { c.add(row * n + col) },
                ldc: n,
            };
            unsafe {
                match count {
                    1 => kernel::<1>(k, b, &tile),
                    2 => kernel::<2>(k, b, &tile),
                    3 => kernel::<3>(k, b, &tile),
                    _ => kernel::<MR>(k, b, &tile),
                }
            }
            row += MR;
        }
    }
}

struct Tile<'a> {
    a: *const i8,
    lda: usize,
    a_scales: &'a [f32],
    a_offsets: &'a [i32],
    w_scales: *const f32,
    bias: *const f32,
    c: *mut f32,
    ldc: usize,
}

/// `R` rows × 16 columns over all of `k`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn kernel<const R: usize>(k: usize, b: *const u8, t: &Tile) {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees R rows of k quantised activations (stride lda), a
    // k × 16 packed panel at `b`, 16 scales and biases, and R × 16 writable outputs.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let mut lo = [_mm256_setzero_si256(); R];
        let mut hi = [_mm256_setzero_si256(); R];
        for step in 0..k / 4 {
            let b0 = _mm256_loadu_si256(b.add(step * 64).cast());
            let b1 = _mm256_loadu_si256(b.add(step * 64 + 32).cast());
            for i in 0..R {
                let four = t.a.add(i * t.lda + step * 4).cast::<i32>().read_unaligned();
                let av = _mm256_set1_epi32(four);
                let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(b0, av), ones);
                let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(b1, av), ones);
                lo[i] = _mm256_add_epi32(lo[i], p0);
                hi[i] = _mm256_add_epi32(hi[i], p1);
            }
        }
        let w_lo = _mm256_loadu_ps(t.w_scales);
        let w_hi = _mm256_loadu_ps(t.w_scales.add(8));
        let bias_lo = _mm256_loadu_ps(t.bias);
        let bias_hi = _mm256_loadu_ps(t.bias.add(8));
        for i in 0..R {
            let offset = _mm256_set1_epi32(t.a_offsets[i]);
            let scale = _mm256_set1_ps(t.a_scales[i]);
            let lo_f = _mm256_cvtepi32_ps(_mm256_sub_epi32(lo[i], offset));
            let hi_f = _mm256_cvtepi32_ps(_mm256_sub_epi32(hi[i], offset));
            let out = t.c.add(i * t.ldc);
            _mm256_storeu_ps(
                out,
                _mm256_fmadd_ps(lo_f, _mm256_mul_ps(scale, w_lo), bias_lo),
            );
            _mm256_storeu_ps(
                out.add(8),
                _mm256_fmadd_ps(hi_f, _mm256_mul_ps(scale, w_hi), bias_hi),
            );
        }
    }
}

fn quantise_rows(a: &[f32], m: usize, k: usize) -> QuantisedRows {
    let mut values = vec![0i8; m * k];
    let mut scales = vec![0.0f32; m];
    let mut offsets = vec![0i32; m];
    values
        .par_chunks_mut(k)
        .zip(scales.par_iter_mut().zip(offsets.par_iter_mut()))
        .zip(a.par_chunks(k))
        .for_each(|((q, (scale, offset)), row)| {
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            *scale = if max > 0.0 {
                max / ACTIVATION_LEVELS
            } else {
                1.0
            };
            let inv = 1.0 / *scale;
            let mut sum = 0i32;
            for (q, v) in q.iter_mut().zip(row) {
                let r = (v * inv).round() as i32;
                sum += r;
                *q = r as i8;
            }
            *offset = 128 * sum;
        });
    QuantisedRows {
        values,
        scales,
        offsets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::ProductCase;

    #[test]
    fn int8_product_is_close_to_the_f32_product() {
        if !avx2_fma() {
            eprintln!("SKIP: this CPU has no AVX2; the int8 kernel is not used");
            return;
        }
        // 7 rows (a 4-row and a 3-row tile), k = 96, two panels.
        let case = ProductCase::new(7, 96, 32);
        let packed = Int8Weight::pack(&case.w, case.n, case.k).unwrap();
        let mut c = vec![0.0; case.m * case.n];
        packed.matmul_bias(&case.a, case.m, &case.bias, &mut c);
        let worst = c
            .iter()
            .zip(case.expected())
            .map(|(got, want)| (got - want).abs())
            .fold(0.0f32, f32::max);
        // Inputs here are multiples of 1/4 and 1/8 within the levels: the error is
        // only the 7-bit rounding of activations (|a| ≤ 1.25 over 63 levels).
        assert!(worst < 0.5, "worst absolute error {worst}");
    }
}

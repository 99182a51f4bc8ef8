//! Int8 GEMM for the dense layers, `C ≈ A · W + bias`: AVX-512 VNNI, or AVX2 without it.
//!
//! With VNNI, `vpdpbusd` multiplies 64 unsigned by 64 signed bytes and adds each group of
//! four products straight into a 32-bit lane: eight times the multiplies of an f32 FMA
//! per instruction, no intermediate 16-bit sum, so activations get all 8 bits
//! (`scale_a = max|A_i| / 127`).
//!
//! Without it, AVX2's `vpmaddubsw` multiplies 32 unsigned by 32 signed bytes and adds neighbouring
//! pairs into 16-bit lanes: twice the multiplies per instruction of an f32 FMA. Its one
//! trap is saturation, which the operand ranges rule out here:
//! - weights: 8 bits per output column (`scale_w = max|W_j| / 127`), stored offset by
//!   128 as unsigned bytes (1..=255);
//! - activations: 7 bits per row (`scale_a = max|A_i| / 63`), signed;
//! - a pair sums to at most 2 · 255 · 63 = 32,130 < 32,767.
//!
//! The offset is taken back exactly in the epilogue: `Σ a·(w + 128) = Σ a·w + 128 · Σ a`.
//!
//! Per-row activation scales are at the mercy of outlier channels: BERT's hidden states
//! carry a few input dimensions far larger than the rest, and one of them sets the scale
//! of the whole row. Where calibration measured each input channel's largest magnitude,
//! the layer is *smoothed* (SmoothQuant, Xiao et al. 2023): input channel `j` is divided
//! by `s_j = sqrt(max|X_j| / max|W_j|)` as activations are quantised and its weights are
//! multiplied by it, which leaves the product unchanged and splits the range evenly
//! between the two sides. With VNNI it took all-MiniLM-L6-v2's worst cosine to its
//! reference from 0.988 to 0.996 and e5-small's from 0.9988 to 0.9995; on AVX2 MiniLM
//! still reaches only 0.987 and runs f32 (`tests/reference.rs`, `catalogue.rs`).
//! Weights are packed at load as `[panel][k / 4][columns][4 bytes]` (panels of 16 columns
//! for AVX2, 32 for AVX-512), so one 32-bit broadcast of four activation bytes meets two
//! registers of weights per step.

use rayon::prelude::*;

use crate::isa::Isa;
use crate::parallel::{SendPtr, for_each_block};

/// Rows of `A` per work item.
const ROWS_PER_ITEM: usize = 48;
const WEIGHT_LEVELS: f32 = 127.0;

/// Columns per packed panel: two registers of either width.
fn panel_width(isa: Isa) -> usize {
    if isa >= Isa::Avx512Vnni { 32 } else { 16 }
}

/// Activation levels each side of zero: 8 bits with VNNI, 7 where `vpmaddubsw`'s 16-bit
/// pair sums must not saturate.
fn activation_levels(isa: Isa) -> f32 {
    if isa >= Isa::Avx512Vnni { 127.0 } else { 63.0 }
}

pub struct Int8Weight {
    k: usize,
    n: usize,
    /// Offset weights, `[panel][k / 4][panel width][4]`.
    panels: Vec<u8>,
    /// Per output column.
    scales: Vec<f32>,
    /// `1 / s_j` per input channel, applied as activations are quantised; empty when the
    /// layer is not smoothed.
    unsmoothing: Vec<f32>,
    isa: Isa,
}

/// One row of `A`, quantised.
struct QuantisedRows {
    values: Vec<i8>,
    scales: Vec<f32>,
    /// `128 · Σ a` per row: the offset's contribution, subtracted in the epilogue.
    offsets: Vec<i32>,
}

impl Int8Weight {
    /// `w` is `[out, in]` as stored, packed for `isa`'s kernel. `input_max`: each input
    /// channel's largest magnitude seen in calibration, to smooth the layer by. None where
    /// the kernel does not apply: no SIMD (or more than this CPU has), or sizes that are
    /// not multiples of the panel width and 4 inputs.
    pub fn pack(
        w: &[f32],
        out_dim: usize,
        in_dim: usize,
        input_max: Option<&[f32]>,
        isa: Isa,
    ) -> Option<Int8Weight> {
        let nr = panel_width(isa);
        if !out_dim.is_multiple_of(nr)
            || !in_dim.is_multiple_of(4)
            || isa == Isa::Portable
            || isa > Isa::detected()
        {
            return None;
        }
        let smoothing = input_max.map(|x_max| smoothing(w, in_dim, x_max));
        let smoothed: Vec<f32>;
        let w = match &smoothing {
            Some(s) => {
                smoothed = w
                    .chunks_exact(in_dim)
                    .flat_map(|row| row.iter().zip(s).map(|(v, s)| v * s))
                    .collect();
                &smoothed[..]
            }
            None => w,
        };
        let scales: Vec<f32> = w
            .chunks_exact(in_dim)
            .map(|row| row.iter().fold(0.0f32, |m, v| m.max(v.abs())) / WEIGHT_LEVELS)
            .map(|s| if s > 0.0 { s } else { 1.0 })
            .collect();
        let mut panels = vec![0u8; out_dim * in_dim];
        for col in 0..out_dim {
            let (panel, lane) = (col / nr, col % nr);
            for p in 0..in_dim {
                let q = (w[col * in_dim + p] / scales[col])
                    .round()
                    .clamp(-127.0, 127.0) as i32;
                let at = panel * in_dim * nr + (p / 4) * nr * 4 + lane * 4 + p % 4;
                panels[at] = (q + 128) as u8;
            }
        }
        Some(Int8Weight {
            k: in_dim,
            n: out_dim,
            panels,
            scales,
            unsmoothing: smoothing
                .map(|s| s.iter().map(|s| 1.0 / s).collect())
                .unwrap_or_default(),
            isa,
        })
    }

    /// `c[m × n] ≈ a[m × k] · W + bias`, split across the current rayon pool.
    pub fn matmul_bias(&self, a: &[f32], m: usize, bias: &[f32], c: &mut [f32]) {
        assert_eq!(a.len(), m * self.k);
        assert_eq!(c.len(), m * self.n);
        assert_eq!(bias.len(), self.n);
        let rows = quantise_rows(
            a,
            m,
            self.k,
            &self.unsmoothing,
            activation_levels(self.isa),
            self.isa,
        );
        let c_ptr = SendPtr(c.as_mut_ptr());
        for_each_block(
            m,
            self.n / panel_width(self.isa),
            ROWS_PER_ITEM,
            |range, panel| {
                // Through the whole struct: a closure capturing only the raw field is not Sync.
                let c_ptr = &c_ptr;
                // SAFETY: the kernel's features were detected when packing; each block writes
                // only its rows × its panel's columns of `c`; reads stay within the buffers.
                unsafe { self.item(&rows, range, panel, bias, c_ptr.0) }
            },
        );
    }

    unsafe fn item(
        &self,
        rows: &QuantisedRows,
        range: std::ops::Range<usize>,
        panel: usize,
        bias: &[f32],
        c: *mut f32,
    ) {
        let (k, n, nr) = (self.k, self.n, panel_width(self.isa));
        let b = self.panels[panel * k * nr..(panel + 1) * k * nr].as_ptr();
        let col = panel * nr;
        let mut row = range.start;
        while row < range.end {
            let count = range.end - row;
            let tile = Tile {
                a: rows.values[row * k..].as_ptr(),
                lda: k,
                a_scales: &rows.scales[row..],
                a_offsets: &rows.offsets[row..],
                w_scales: self.scales[col..col + nr].as_ptr(),
                bias: bias[col..col + nr].as_ptr(),
                // SAFETY: see `matmul_bias`.
                c: unsafe { c.add(row * n + col) },
                ldc: n,
            };
            // SAFETY: see `matmul_bias`; the kernel's features were detected.
            row += unsafe {
                match self.isa {
                    Isa::Avx512Vnni => avx512::block(count, k, b, &tile),
                    _ => avx2::block(count, k, b, &tile),
                }
            };
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

/// One kernel family: `block` runs up to `MR` rows × one panel over all of `k` and
/// returns how many rows it did. The caller guarantees those rows of `k` quantised
/// activations (stride `lda`), a packed panel at `b`, the panel's scales and biases, and
/// as many rows × panel-width writable outputs.
macro_rules! kernel_family {
    ($module:ident, $features:literal, $mr:literal, [$($rows:literal)*], $kernel:item) => {
        mod $module {
            use super::Tile;
            const MR: usize = $mr;

            #[target_feature(enable = $features)]
            pub unsafe fn block(rows_left: usize, k: usize, b: *const u8, tile: &Tile) -> usize {
                // SAFETY: forwarded from the caller.
                unsafe {
                    match rows_left {
                        $($rows => kernel::<$rows>(k, b, tile),)*
                        _ => kernel::<MR>(k, b, tile),
                    }
                }
                rows_left.min(MR)
            }

            $kernel
        }
    };
}

kernel_family!(avx2, "avx2,fma", 4, [1 2 3],
    /// `R` rows × 16 columns: `vpmaddubsw` into 16-bit pairs, `vpmaddwd` into 32 bits.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn kernel<const R: usize>(k: usize, b: *const u8, t: &Tile) {
        use std::arch::x86_64::*;
        // SAFETY: see the family's contract.
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
                _mm256_storeu_ps(out, _mm256_fmadd_ps(lo_f, _mm256_mul_ps(scale, w_lo), bias_lo));
                _mm256_storeu_ps(
                    out.add(8),
                    _mm256_fmadd_ps(hi_f, _mm256_mul_ps(scale, w_hi), bias_hi),
                );
            }
        }
    }
);

kernel_family!(avx512, "avx512f,avx512bw,avx512vnni", 12, [1 2 3 4 5 6 7 8 9 10 11],
    /// `R` rows × 32 columns: `vpdpbusd` straight into 32-bit lanes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn kernel<const R: usize>(k: usize, b: *const u8, t: &Tile) {
        use std::arch::x86_64::*;
        // SAFETY: see the family's contract.
        unsafe {
            let mut lo = [_mm512_setzero_si512(); R];
            let mut hi = [_mm512_setzero_si512(); R];
            for step in 0..k / 4 {
                let b0 = _mm512_loadu_si512(b.add(step * 128).cast());
                let b1 = _mm512_loadu_si512(b.add(step * 128 + 64).cast());
                for i in 0..R {
                    let four = t.a.add(i * t.lda + step * 4).cast::<i32>().read_unaligned();
                    let av = _mm512_set1_epi32(four);
                    lo[i] = _mm512_dpbusd_epi32(lo[i], b0, av);
                    hi[i] = _mm512_dpbusd_epi32(hi[i], b1, av);
                }
            }
            let w_lo = _mm512_loadu_ps(t.w_scales);
            let w_hi = _mm512_loadu_ps(t.w_scales.add(16));
            let bias_lo = _mm512_loadu_ps(t.bias);
            let bias_hi = _mm512_loadu_ps(t.bias.add(16));
            for i in 0..R {
                let offset = _mm512_set1_epi32(t.a_offsets[i]);
                let scale = _mm512_set1_ps(t.a_scales[i]);
                let lo_f = _mm512_cvtepi32_ps(_mm512_sub_epi32(lo[i], offset));
                let hi_f = _mm512_cvtepi32_ps(_mm512_sub_epi32(hi[i], offset));
                let out = t.c.add(i * t.ldc);
                _mm512_storeu_ps(out, _mm512_fmadd_ps(lo_f, _mm512_mul_ps(scale, w_lo), bias_lo));
                _mm512_storeu_ps(
                    out.add(16),
                    _mm512_fmadd_ps(hi_f, _mm512_mul_ps(scale, w_hi), bias_hi),
                );
            }
        }
    }
);

/// `s_j = sqrt(max|X_j| / max|W_j|)` per input channel `j` (SmoothQuant with α = ½), 1
/// where either side never left zero.
fn smoothing(w: &[f32], in_dim: usize, input_max: &[f32]) -> Vec<f32> {
    let mut w_max = vec![0.0f32; in_dim];
    for row in w.chunks_exact(in_dim) {
        for (m, v) in w_max.iter_mut().zip(row) {
            *m = m.max(v.abs());
        }
    }
    input_max
        .iter()
        .zip(&w_max)
        .map(|(&x, &w)| {
            if x > 0.0 && w > 0.0 {
                (x / w).sqrt()
            } else {
                1.0
            }
        })
        .collect()
}

/// Each row divided by the layer's smoothing (when it has one), then rounded to
/// `levels` steps either side of zero at the row's own scale.
fn quantise_rows(
    a: &[f32],
    m: usize,
    k: usize,
    unsmoothing: &[f32],
    levels: f32,
    isa: Isa,
) -> QuantisedRows {
    let mut values = vec![0i8; m * k];
    let mut scales = vec![0.0f32; m];
    let mut offsets = vec![0i32; m];
    values
        .par_chunks_mut(k)
        .zip(scales.par_iter_mut().zip(offsets.par_iter_mut()))
        .zip(a.par_chunks(k))
        .for_each_init(
            || vec![0.0f32; k],
            |scratch, ((q, (scale, offset)), row)| {
                (*scale, *offset) =
                    per_level::quantise_row(isa, row, unsmoothing, levels, scratch, q);
            },
        );
    QuantisedRows {
        values,
        scales,
        offsets,
    }
}

/// One row of `quantise_rows`: returns its scale and `128 · Σ q`. Written for the
/// compiler to vectorise (`simd::quantise_row` compiles it per level): ties round to
/// even, which x86 does in one instruction (`f32::round` is a libm call per value on
/// baseline x86-64 and took a third of e5's time).
#[inline(always)]
pub(crate) fn quantise_row(
    row: &[f32],
    unsmoothing: &[f32],
    levels: f32,
    scratch: &mut [f32],
    out: &mut [i8],
) -> (f32, i32) {
    let row = if unsmoothing.is_empty() {
        row
    } else {
        for ((s, v), u) in scratch.iter_mut().zip(row).zip(unsmoothing) {
            *s = v * u;
        }
        &scratch[..]
    };
    let max = crate::reduce::lanes(row, 0.0, |m, v| crate::reduce::larger(m, v.abs()));
    let scale = if max > 0.0 { max / levels } else { 1.0 };
    let inv = 1.0 / scale;
    let mut sums = [0i32; 16];
    for (q, v) in out.chunks_mut(16).zip(row.chunks(16)) {
        for ((q, v), sum) in q.iter_mut().zip(v).zip(&mut sums) {
            // `max` before `min` also maps NaN to a bound, so the value is always a
            // finite integer in range: the unchecked conversion is one instruction where
            // `as` adds NaN and saturation checks that stop the loop vectorising.
            let clamped = (v * inv).max(-levels).min(levels).round_ties_even();
            // SAFETY: finite and within ±127 (see above).
            let r: i32 = unsafe { clamped.to_int_unchecked() };
            *sum += r;
            *q = r as i8;
        }
    }
    (scale, 128 * sums.iter().sum::<i32>())
}

/// [`quantise_row`] compiled once per instruction-set level.
mod per_level {
    use crate::isa::{Isa, per_isa};

    per_isa! {
        fn quantise_row(row: &[f32], unsmoothing: &[f32], levels: f32, scratch: &mut [f32], out: &mut [i8]) -> (f32, i32) => crate::igemm::quantise_row;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::ProductCase;

    #[test]
    fn int8_product_is_close_to_the_f32_product() {
        // 19 rows: full and partial tiles of both kernels (4-row AVX2, 12-row AVX-512);
        // k = 96; 64 columns: two panels of either width.
        let case = ProductCase::new(19, 96, 64);
        let mut checked = 0;
        for isa in Isa::available() {
            let Some(packed) = Int8Weight::pack(&case.w, case.n, case.k, None, isa) else {
                continue;
            };
            let mut c = vec![0.0; case.m * case.n];
            packed.matmul_bias(&case.a, case.m, &case.bias, &mut c);
            let worst = c
                .iter()
                .zip(case.expected())
                .map(|(got, want)| (got - want).abs())
                .fold(0.0f32, f32::max);
            // Inputs here are multiples of 1/4 and 1/8 within the levels: the error is
            // only the rounding of activations (|a| ≤ 1.25 over 63 or 127 levels).
            let bound = 0.5 * 63.0 / activation_levels(isa);
            assert!(
                worst < bound,
                "{isa:?}: worst absolute error {worst} ≥ {bound}"
            );
            checked += 1;
        }
        if checked == 0 {
            eprintln!("SKIP: this CPU has no AVX2; the int8 kernel is not used");
        }
    }

    #[test]
    fn smoothing_an_outlier_channel_keeps_the_product_and_the_small_channels() {
        let Some(isa) = Isa::available().filter(|i| *i > Isa::Portable).last() else {
            eprintln!("SKIP: this CPU has no AVX2; the int8 kernel is not used");
            return;
        };
        // Channel 0 is a hundred times larger than the others, as BERT's outlier
        // dimensions are: unsmoothed, the row's scale is set by it and the small
        // channels round to almost nothing.
        let mut case = ProductCase::new(8, 64, 32);
        for row in case.a.chunks_exact_mut(case.k) {
            row[0] = 100.0;
        }
        let input_max: Vec<f32> = (0..case.k)
            .map(|j| {
                case.a
                    .chunks_exact(case.k)
                    .map(|r| r[j].abs())
                    .fold(0.0, f32::max)
            })
            .collect();
        let error = |input_max: Option<&[f32]>| {
            let packed = Int8Weight::pack(&case.w, case.n, case.k, input_max, isa).unwrap();
            let mut c = vec![0.0; case.m * case.n];
            packed.matmul_bias(&case.a, case.m, &case.bias, &mut c);
            c.iter()
                .zip(case.expected())
                .map(|(got, want)| (got - want).abs())
                .fold(0.0f32, f32::max)
        };
        let (plain, smoothed) = (error(None), error(Some(&input_max)));
        assert!(
            smoothed < plain / 2.0,
            "{isa:?}: smoothing left the worst error at {smoothed} (unsmoothed {plain})"
        );
    }
}

//! CPU kernels of the packed BERT (see `packed.rs`): dense layers in f32 or int8 on
//! Rapport's own GEMMs (`sgemm.rs`, `igemm.rs`; the `gemm` crate where they do not apply)
//! or with candle's GGML block types, and the fused element-wise steps around them, each
//! compiled per instruction-set level (`simd`). Everything runs on the caller's rayon
//! pool, so `models.threads` bounds it.

use candle_core::quantized::GgmlType;
use candle_core::quantized::k_quants::{BlockQ4_0, BlockQ8_0};
use gemm::Parallelism;
use rayon::prelude::*;

use crate::parallel::SendPtr;
use crate::reduce::{lanes, larger};
use crate::weights::{StoredData, StoredTensor};

pub use crate::matmul::MatmulKind;

/// A linear layer `y = x · Wᵀ + b` over packed rows.
pub struct Dense {
    pub in_dim: usize,
    pub out_dim: usize,
    weight: DenseWeight,
    pub bias: Vec<f32>,
}

enum DenseWeight {
    /// Packed for Rapport's f32 kernels (`sgemm.rs`), bias fused.
    Packed(crate::sgemm::PackedWeight),
    /// Packed 8-bit for Rapport's int8 kernels (`igemm.rs`), bias fused.
    Int8(crate::igemm::Int8Weight),
    /// `[in, out]` row-major for the `gemm` crate (other CPUs, ragged widths).
    F32(Vec<f32>),
    /// `[out][in / 32]` blocks, as GGML lays out a transposed right-hand side.
    Q8_0(Vec<BlockQ8_0>),
    Q4_0(Vec<BlockQ4_0>),
}

/// Columns computed per work item of the quantised product: four share one pass over a
/// row of activations (`vec_dot_4`).
const QUANT_COLUMNS: usize = 4;
/// Activation rows per work item: a tile of rows stays in L1 while four weight rows
/// stream past it.
const QUANT_ROW_TILE: usize = 16;

impl Dense {
    /// Builds a layer from stored weights `[out, in]` (several are stacked along `out`,
    /// e.g. query, key and value into one fused projection). `input_max`: each input
    /// channel's largest magnitude in calibration, which int8 smooths by (`igemm.rs`).
    pub fn new(
        weights: &[&StoredTensor],
        biases: &[&StoredTensor],
        kind: MatmulKind,
        input_max: Option<&[f32]>,
        isa: simd::Isa,
    ) -> Result<Dense, String> {
        let in_dim = weights[0].shape[1];
        if weights
            .iter()
            .any(|w| w.shape.len() != 2 || w.shape[1] != in_dim)
        {
            return Err("stacked weights differ in their input size".into());
        }
        let out_dim: usize = weights.iter().map(|w| w.shape[0]).sum();
        let bias: Vec<f32> = biases.iter().flat_map(|b| b.to_f32()).collect();
        if bias.len() != out_dim {
            return Err(format!(
                "bias has {} values for {out_dim} outputs",
                bias.len()
            ));
        }
        let all_q4 = weights
            .iter()
            .all(|w| matches!(w.data, StoredData::Q4_0(_)));
        let weight = match kind {
            MatmulKind::Q4_0 if all_q4 => {
                // The file's blocks are used as they are: no rounding beyond the file's own.
                let bytes: Vec<u8> = weights
                    .iter()
                    .flat_map(|w| match &w.data {
                        StoredData::Q4_0(b) => b.iter().copied(),
                        StoredData::F32(_) => unreachable!("checked above"),
                    })
                    .collect();
                DenseWeight::Q4_0(q4_0_blocks_from_bytes(&bytes))
            }
            _ => {
                let rows: Vec<f32> = weights.iter().flat_map(|w| w.to_f32()).collect();
                let f32_weight = |rows: &[f32]| match crate::sgemm::PackedWeight::pack(
                    rows, out_dim, in_dim, isa,
                ) {
                    Some(packed) => DenseWeight::Packed(packed),
                    None => DenseWeight::F32(transpose(rows, out_dim, in_dim)),
                };
                match kind {
                    MatmulKind::F32 => f32_weight(&rows),
                    MatmulKind::Int8 => {
                        match crate::igemm::Int8Weight::pack(&rows, out_dim, in_dim, input_max, isa)
                        {
                            Some(packed) => DenseWeight::Int8(packed),
                            None => f32_weight(&rows),
                        }
                    }
                    MatmulKind::Q8_0 => DenseWeight::Q8_0(quantize(&rows)?),
                    MatmulKind::Q4_0 => DenseWeight::Q4_0(quantize(&rows)?),
                }
            }
        };
        Ok(Dense {
            in_dim,
            out_dim,
            weight,
            bias,
        })
    }

    /// `out[rows × out_dim] = x[rows × in_dim] · Wᵀ + b`.
    pub fn forward(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        debug_assert_eq!(x.len(), rows * self.in_dim);
        debug_assert_eq!(out.len(), rows * self.out_dim);
        match &self.weight {
            DenseWeight::Packed(w) => return w.matmul_bias(x, rows, &self.bias, out),
            DenseWeight::Int8(w) => return w.matmul_bias(x, rows, &self.bias, out),
            _ => {}
        }
        match &self.weight {
            DenseWeight::Packed(_) | DenseWeight::Int8(_) => unreachable!("handled above"),
            DenseWeight::F32(w) => {
                let threads = rayon::current_num_threads();
                // SAFETY: the slices hold rows × in, in × out and rows × out values with
                // the strides passed (row-major, column stride 1).
                unsafe {
                    gemm::gemm(
                        rows,
                        self.out_dim,
                        self.in_dim,
                        out.as_mut_ptr(),
                        1,
                        self.out_dim as isize,
                        false,
                        x.as_ptr(),
                        1,
                        self.in_dim as isize,
                        w.as_ptr(),
                        1,
                        self.out_dim as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        if threads > 1 {
                            Parallelism::Rayon(threads)
                        } else {
                            Parallelism::None
                        },
                    )
                }
            }
            DenseWeight::Q8_0(w) => quantized_matmul(x, rows, self.in_dim, w, out),
            DenseWeight::Q4_0(w) => quantized_matmul(x, rows, self.in_dim, w, out),
        }
        add_bias(out, &self.bias);
    }
}

fn transpose(rows: &[f32], out_dim: usize, in_dim: usize) -> Vec<f32> {
    let mut t = vec![0.0; rows.len()];
    for o in 0..out_dim {
        for i in 0..in_dim {
            t[i * out_dim + o] = rows[o * in_dim + i];
        }
    }
    t
}

fn quantize<T: GgmlType>(values: &[f32]) -> Result<Vec<T>, String> {
    if !values.len().is_multiple_of(T::BLCK_SIZE) {
        return Err(format!(
            "{} values are not whole {}-value blocks",
            values.len(),
            T::BLCK_SIZE
        ));
    }
    let mut blocks = vec![T::zeros(); values.len() / T::BLCK_SIZE];
    T::from_float(values, &mut blocks);
    Ok(blocks)
}

/// The file's Q4_0 bytes as candle's block type (same 18-byte GGML layout).
pub fn q4_0_blocks_from_bytes(bytes: &[u8]) -> Vec<BlockQ4_0> {
    const BLOCK: usize = std::mem::size_of::<BlockQ4_0>();
    assert_eq!(bytes.len() % BLOCK, 0, "Q4_0 data is whole blocks");
    let mut blocks = vec![BlockQ4_0::zeros(); bytes.len() / BLOCK];
    // SAFETY: BlockQ4_0 is `repr(C)` {f16 scale, [u8; 16]} with no padding (18 bytes,
    // asserted by candle), which is the byte layout of a GGML Q4_0 block; every bit
    // pattern is a valid value; `blocks` has exactly `bytes.len()` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            blocks.as_mut_ptr().cast::<u8>(),
            bytes.len(),
        );
    }
    blocks
}

/// `out = x · Wᵀ` with `W` in GGML blocks: activations are quantised per row to the
/// weight type's dot-product type (Q8_0), then integer dot products run four columns at
/// a time over tiles of rows, split across the pool.
fn quantized_matmul<T: GgmlType + Sync>(
    x: &[f32],
    rows: usize,
    in_dim: usize,
    w: &[T],
    out: &mut [f32],
) where
    T::VecDotType: Send + Sync,
{
    let k_blocks = in_dim / T::BLCK_SIZE;
    let out_dim = w.len() / k_blocks;
    let mut xq = vec![T::VecDotType::zeros(); rows * k_blocks];
    xq.par_chunks_mut(k_blocks)
        .zip(x.par_chunks(in_dim))
        .for_each(|(q, row)| T::VecDotType::from_float(row, q));
    let column_groups = out_dim.div_ceil(QUANT_COLUMNS);
    let row_tiles = rows.div_ceil(QUANT_ROW_TILE);
    let out_ptr = SendPtr(out.as_mut_ptr());
    (0..row_tiles * column_groups)
        .into_par_iter()
        .with_min_len(4)
        .for_each(|item| {
            let out_ptr = &out_ptr;
            let row_start = (item / column_groups) * QUANT_ROW_TILE;
            let col = (item % column_groups) * QUANT_COLUMNS;
            let weight_row = |c: usize| &w[c * k_blocks..(c + 1) * k_blocks];
            for r in row_start..rows.min(row_start + QUANT_ROW_TILE) {
                let xr = &xq[r * k_blocks..(r + 1) * k_blocks];
                // SAFETY: each (row, column) of `out` belongs to exactly one work item.
                let dst = unsafe { out_ptr.0.add(r * out_dim + col) };
                if col + QUANT_COLUMNS <= out_dim {
                    let (a, b, c, d) = T::vec_dot_4(
                        in_dim,
                        weight_row(col),
                        weight_row(col + 1),
                        weight_row(col + 2),
                        weight_row(col + 3),
                        xr,
                    );
                    unsafe {
                        *dst = a;
                        *dst.add(1) = b;
                        *dst.add(2) = c;
                        *dst.add(3) = d;
                    }
                } else {
                    for (j, c) in (col..out_dim).enumerate() {
                        unsafe { *dst.add(j) = T::vec_dot(in_dim, weight_row(c), xr) };
                    }
                }
            }
        });
}

/// Rows per parallel chunk of the element-wise steps: big enough to amortise the split.
const ROWS_PER_CHUNK: usize = 16;

/// `x += bias` per row.
pub fn add_bias(x: &mut [f32], bias: &[f32]) {
    let n = bias.len();
    x.par_chunks_mut(n * ROWS_PER_CHUNK).for_each(|chunk| {
        for row in chunk.chunks_exact_mut(n) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    });
}

/// `x = gelu(x)` with the exact (erf) GELU BERT was trained with.
pub fn gelu(isa: simd::Isa, x: &mut [f32]) {
    x.par_chunks_mut(4096).for_each(|chunk| {
        simd::gelu(isa, chunk);
    });
}

#[inline(always)]
fn gelu_slice(x: &mut [f32]) {
    for v in x {
        let z = *v;
        *v = 0.5 * z * (1.0 + erf(z * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// In-place softmax of one row of attention scores.
pub fn softmax(isa: simd::Isa, row: &mut [f32]) {
    simd::softmax(isa, row)
}

#[inline(always)]
fn softmax_slice(row: &mut [f32]) {
    let max = lanes(row, f32::NEG_INFINITY, larger);
    row.iter_mut().for_each(|s| *s = exp(*s - max));
    let inv = 1.0 / lanes(row, 0.0, |a, b| a + b);
    row.iter_mut().for_each(|s| *s *= inv);
}

/// Instruction-set levels and the element-wise loops compiled once per level, so they
/// vectorise 8 (AVX2) or 16 (AVX-512) wide; chosen at run time.
pub mod simd {
    use crate::isa::per_isa;
    pub use crate::isa::{Isa, avx2_fma};

    per_isa! {
        fn gelu(x: &mut [f32]) => crate::kernels::gelu_slice;
        fn softmax(row: &mut [f32]) => crate::kernels::softmax_slice;
        fn layer_norm(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) => crate::kernels::layer_norm_slice;
    }
}

/// `hidden = LayerNorm(hidden + x)`: the residual and post-LN of one BERT sub-layer in
/// a single pass.
pub fn add_residual_layer_norm(
    isa: simd::Isa,
    hidden: &mut [f32],
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let n = gamma.len();
    hidden
        .par_chunks_mut(n * ROWS_PER_CHUNK)
        .zip(x.par_chunks(n * ROWS_PER_CHUNK))
        .for_each(|(h_chunk, x_chunk)| {
            for (h, x) in h_chunk.chunks_exact_mut(n).zip(x_chunk.chunks_exact(n)) {
                for (h, x) in h.iter_mut().zip(x) {
                    *h += x;
                }
                layer_norm_row(isa, h, gamma, beta, eps);
            }
        });
}

pub fn layer_norm_row(isa: simd::Isa, row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    simd::layer_norm(isa, row, gamma, beta, eps)
}

#[inline(always)]
fn layer_norm_slice(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = lanes(row, 0.0, |a, b| a + b) / n;
    row.iter_mut().for_each(|v| *v -= mean);
    let mut squares = [0.0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for chunk in &mut chunks {
        for (s, &v) in squares.iter_mut().zip(chunk) {
            *s += v * v;
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    let var = (squares.iter().sum::<f32>() + tail) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = *v * inv * g + b;
    }
}

/// The error function to f32 precision (|error| < 1e-7): Eigen's rational fit on
/// [-3.83, 3.83], beyond which erf is ±1 in f32. No `exp` and no branch, so it
/// vectorises.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const ALPHA: [f32; 7] = [
        -2.726_142_3e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_5e-5,
        -7.349_906e-4,
        -2.954_600_1e-3,
        -1.609_603_3e-2,
    ];
    const BETA: [f32; 5] = [
        -1.456_607_2e-5,
        -2.133_740_6e-4,
        -1.682_827e-3,
        -7.373_329e-3,
        -1.426_474e-2,
    ];
    let x = x.clamp(-3.832_507, 3.832_507);
    let x2 = x * x;
    let p = ALPHA[1..].iter().fold(ALPHA[0], |p, &a| p.mul_add(x2, a)) * x;
    let q = BETA[1..].iter().fold(BETA[0], |q, &b| q.mul_add(x2, b));
    p / q
}

/// `e^x` to about 2 ulp (Cephes' polynomial after reducing by powers of two), without a
/// libm call, so softmax vectorises. Inputs below −87 give ~0, as softmax needs.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    // ln 2 in two parts (0.693359375 is exact in f32), so `n · ln 2` loses nothing.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    const POLY: [f32; 6] = [
        1.987_569_1e-4,
        1.398_2e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ];
    let p = POLY[1..].iter().fold(POLY[0], |p, &c| p.mul_add(r, c));
    let y = p * r * r + r + 1.0;
    // 2ⁿ built from bits. Not `n as i32`: its NaN and saturation checks stop the softmax
    // loop vectorising. Adding 1.5 · 2²³ puts the integer n in the low mantissa bits.
    let n_bits = (n + 12_582_912.0).to_bits().wrapping_sub(0x4B40_0000);
    f32::from_bits(n_bits.wrapping_add(127) << 23) * y
}

/// Self-attention over packed sequences: `qkv` holds, per token, query, key and value
/// (`3 × hidden`, biases added); each sequence attends only to itself, so no padding and
/// no mask exist. Writes the context (`hidden` per token) into `context`. One work item
/// per (sequence, head).
pub fn attention(
    isa: simd::Isa,
    qkv: &[f32],
    lengths: &[usize],
    heads: usize,
    hidden: usize,
    context: &mut [f32],
) {
    let head_dim = hidden / heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let stride = 3 * hidden;
    let mut starts = Vec::with_capacity(lengths.len());
    let mut at = 0;
    for &len in lengths {
        starts.push(at);
        at += len;
    }
    let context_ptr = SendPtr(context.as_mut_ptr());
    (0..lengths.len() * heads).into_par_iter().for_each(|item| {
        let context_ptr = &context_ptr;
        let (seq, head) = (item / heads, item % heads);
        let (start, len) = (starts[seq], lengths[seq]);
        let q = &qkv[start * stride + head * head_dim..];
        let k = &q[hidden..];
        let v = &q[2 * hidden..];
        let mut scores = vec![0.0f32; len * len];
        // SAFETY: q/k/v are read within the sequence's rows (len rows of `stride`),
        // scores is len × len, and the context block (rows of this sequence, columns
        // of this head) is written by this item only.
        unsafe {
            gemm::gemm(
                len,
                len,
                head_dim,
                scores.as_mut_ptr(),
                1,
                len as isize,
                false,
                q.as_ptr(),
                1,
                stride as isize,
                k.as_ptr(),
                stride as isize,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
        for row in scores.chunks_exact_mut(len) {
            softmax(isa, row);
        }
        unsafe {
            gemm::gemm(
                len,
                head_dim,
                len,
                context_ptr.0.add(start * hidden + head * head_dim),
                1,
                hidden as isize,
                false,
                scores.as_ptr(),
                1,
                len as isize,
                v.as_ptr(),
                1,
                stride as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    });
}

/// A product with known inputs and its definition, for the GEMM tests: `a` (m × k) and
/// `w` (n × k) hold multiples of 1/4 and 1/8, the bias `j / 2`.
#[cfg(test)]
pub(crate) struct ProductCase {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a: Vec<f32>,
    pub w: Vec<f32>,
    pub bias: Vec<f32>,
}

#[cfg(test)]
impl ProductCase {
    pub fn new(m: usize, k: usize, n: usize) -> ProductCase {
        ProductCase {
            m,
            k,
            n,
            a: (0..m * k)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0)
                .collect(),
            w: (0..n * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
                .collect(),
            bias: (0..n).map(|j| j as f32 * 0.5).collect(),
        }
    }

    /// `a · wᵀ + bias`, row-major m × n.
    pub fn expected(&self) -> Vec<f32> {
        let (k, n) = (self.k, self.n);
        (0..self.m * n)
            .map(|at| {
                let (r, o) = (at / n, at % n);
                self.bias[o]
                    + (0..k)
                        .map(|p| self.a[r * k + p] * self.w[o * k + p])
                        .sum::<f32>()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-2.0, -0.995_322_3),
            (3.5, 0.999_999_3),
            (9.0, 1.0),
        ] {
            assert!(
                (erf(x) - want).abs() < 2e-7,
                "erf({x}) = {} not {want}",
                erf(x)
            );
        }
    }

    #[test]
    fn exp_is_accurate_to_a_few_ulp() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), x.exp());
            assert!(
                (got - want).abs() <= 4.0 * f32::EPSILON * want,
                "exp({x}) = {got}, want {want}"
            );
            x += 0.173;
        }
        assert!(exp(-1000.0) < 1e-37);
    }

    fn stored(shape: Vec<usize>, values: Vec<f32>) -> StoredTensor {
        StoredTensor {
            shape,
            data: StoredData::F32(values),
        }
    }

    #[test]
    fn every_matmul_kind_computes_x_times_w_transposed() {
        // 3 rows × 64 inputs → 5 outputs (not a multiple of 4 or 16: tail paths run too).
        let case = ProductCase::new(3, 64, 5);
        let weight = stored(vec![case.n, case.k], case.w.clone());
        let bias = stored(vec![case.n], case.bias.clone());
        let want = case.expected();
        for (kind, tolerance) in [
            (MatmulKind::F32, 1e-4),
            (MatmulKind::Q8_0, 0.1),
            (MatmulKind::Q4_0, 0.6),
            (MatmulKind::Int8, 0.3),
        ] {
            let dense =
                Dense::new(&[&weight], &[&bias], kind, None, simd::Isa::detected()).unwrap();
            let mut out = vec![0.0; case.m * case.n];
            dense.forward(&case.a, case.m, &mut out);
            for (got, want) in out.iter().zip(&want) {
                assert!(
                    (got - want).abs() <= tolerance,
                    "{kind:?}: {got} vs {want} ({out:?} vs {want:?})"
                );
            }
        }
    }
}

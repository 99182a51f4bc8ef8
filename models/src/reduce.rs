//! Reductions written so the compiler vectorises them (the element-wise kernels and the
//! int8 quantiser share them).

/// The larger of two values as one `maxps`: a NaN operand is not propagated, which
/// `f32::max` pays for with extra compares in every lane.
#[inline(always)]
pub(crate) fn larger(a: f32, b: f32) -> f32 {
    if b > a { b } else { a }
}

/// A reduction over eight interleaved lanes: strict f32 order would keep the compiler
/// from vectorising a plain fold.
#[inline(always)]
pub(crate) fn lanes(values: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = f(*a, v);
        }
    }
    let tail = chunks.remainder().iter().fold(init, |a, &v| f(a, v));
    acc.iter().fold(tail, |a, &v| f(a, v))
}

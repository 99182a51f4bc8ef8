//! GFLOPS of Rapport's packed f32 GEMM (`sgemm.rs`) against the `gemm` crate on the
//! shape of e5-small's FFN input layer (1024 tokens × 384 → 1536), on 1 and 2 threads.
//! Best of 8 runs of 10 products each.
//!
//!     cargo run --release -p rapport-models --example gemm_throughput

use std::time::Instant;

use rapport_models::kernels::simd::Isa;
use rapport_models::sgemm::PackedWeight;

const M: usize = 1024;
const K: usize = 384;
const N: usize = 1536;

fn best_seconds(mut product: impl FnMut()) -> f64 {
    for _ in 0..3 {
        product();
    }
    (0..8)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..10 {
                product();
            }
            started.elapsed().as_secs_f64() / 10.0
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let a: Vec<f32> = (0..M * K).map(|i| (i % 7) as f32 * 0.1).collect();
    // `[out, in]` as a model stores it, and `[in, out]` for the gemm crate.
    let w: Vec<f32> = (0..N * K).map(|i| (i % 5) as f32 * 0.1).collect();
    let w_t: Vec<f32> = (0..K * N).map(|i| w[(i % N) * K + i / N]).collect();
    let bias = vec![0.0f32; N];
    let mut c = vec![0.0f32; M * N];
    let flops = 2.0 * (M * K * N) as f64;
    let kernels: Vec<(Isa, PackedWeight)> = Isa::available()
        .filter_map(|isa| Some((isa, PackedWeight::pack(&w, N, K, isa)?)))
        .collect();
    if kernels.is_empty() {
        println!("this CPU has no AVX2/FMA: Rapport uses the gemm crate");
        return;
    }
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        pool.install(|| {
            let ours: Vec<String> = kernels
                .iter()
                .map(|(isa, packed)| {
                    let seconds = best_seconds(|| packed.matmul_bias(&a, M, &bias, &mut c));
                    format!("{isa:?} {:.1}", flops / seconds / 1e9)
                })
                .collect();
            let parallelism = if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            };
            let theirs = best_seconds(|| {
                // SAFETY: a is M × K, w_t is K × N, c is M × N, all row-major.
                unsafe {
                    gemm::gemm(
                        M,
                        N,
                        K,
                        c.as_mut_ptr(),
                        1,
                        N as isize,
                        false,
                        a.as_ptr(),
                        1,
                        K as isize,
                        w_t.as_ptr(),
                        1,
                        N as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        parallelism,
                    )
                }
            });
            println!(
                "{threads} thread(s) GFLOPS: rapport sgemm {}; gemm crate {:.1}",
                ours.join(", "),
                flops / theirs / 1e9
            );
        });
    }
}

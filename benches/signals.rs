//! What the signals add on top of the encoder pass, per batch of 256 messages:
//! `cargo bench --bench signals`. The vectors are synthetic (the cost does not depend on
//! their values); the heads are the committed signal branch's and the prototype set has
//! the built-in file's shape (12 labels, 816 phrases). The branch's tuned layers run inside
//! the encoder: `rapport models bench --classify` times them against the embedding alone.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rapport_models::prototypes::{PrototypeScorer, PrototypeSpec};
use rapport_models::signal_branch::SignalBranch;
use rapport_models::train::Rng;
use std::hint::black_box;

const BATCH: usize = 256;
const DIMS: usize = 384;

fn unit_vectors(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let v: Vec<f32> = (0..DIMS).map(|_| rng.unit() as f32 - 0.5).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect()
}

fn signals(c: &mut Criterion) {
    let messages = unit_vectors(BATCH, 1);
    let mut group = c.benchmark_group("signals");
    group.throughput(Throughput::Elements(BATCH as u64));
    let branch = SignalBranch::built_in()
        .expect("a committed branch")
        .unwrap();
    for head in branch.heads() {
        group.bench_function(format!("head_{}", head.name()), |b| {
            b.iter(|| black_box(head.probabilities(black_box(&messages)).unwrap()))
        });
    }
    // 12 labels of 48 examples and 20 near misses, as config/signals.toml.
    let specs: Vec<PrototypeSpec> = (0..12)
        .map(|l| PrototypeSpec {
            name: format!("label{l}"),
            examples: vec![String::new(); 48],
            near_misses: vec![String::new(); 20],
            threshold: Some(0.0),
        })
        .collect();
    let phrases = unit_vectors(12 * 68, 2);
    let scorer = PrototypeScorer::from_vectors(&specs, &phrases, DIMS).unwrap();
    group.bench_function("prototypes_12_labels", |b| {
        b.iter(|| black_box(scorer.score(black_box(&messages)).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, signals);
criterion_main!(benches);
